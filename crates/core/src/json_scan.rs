//! A validating JSON scanner for the hot path: finds where a value ends, and walks an
//! object's fields as borrowed text, without building anything.
//!
//! It is a fast path in front of `serde_json`, not a replacement: it is *sound* (every
//! text it accepts, `serde_json` accepts too, with the same value spans) but not
//! complete. It gives up (`None`) on whatever it does not handle itself: invalid JSON,
//! nesting deeper than [`MAX_DEPTH`], and, in [`walk_object`], names with escapes.
//! Callers then ask `serde_json`, so that what is accepted and every error message stay
//! `serde_json`'s. The tests check soundness against `serde_json` on generated and
//! mutated texts.
//!
//! Why it exists: a file lane checks every event's ~1 KB envelope and every plugin's
//! output as JSON. The scanner checks a value in ~0.74x `serde_json`'s time, and lets
//! the decoder read the envelope in one pass where serde took two (BENCHMARKS.md, "JSON
//! checks by a scanner in front of `serde_json`"; `lanes -- --stages` measures it).

/// The deepest nesting the scanner follows; deeper texts are left to `serde_json` (whose
/// own limit is 127 levels).
pub const MAX_DEPTH: usize = 100;

/// Whether `text` is one JSON value with only whitespace around it; `Some((start, end))`
/// is the value's span without that whitespace. `None` when the scanner cannot tell
/// (see the module's doc): ask `serde_json`.
pub fn value_span(text: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let start = skip_whitespace(bytes, 0);
    let end = value_end(bytes, start)?;
    (skip_whitespace(bytes, end) == bytes.len()).then_some((start, end))
}

/// Walks the object that starts at `start` (its `{`), nested at most `max_depth` levels
/// deep counting itself. For each field, `field(name, value_start)` reads the value that
/// starts at `value_start` and returns where it ends, or `None` to give up; a value it
/// does not care about it hands to [`value_end`] (or [`value_end_within`] with
/// `max_depth - 1`), a nested object it wants to read to [`walk_object`], so that every
/// byte is scanned once. Returns the index after the closing `}`.
pub fn walk_object<'a>(
    text: &'a str,
    start: usize,
    max_depth: usize,
    mut field: impl FnMut(&'a str, usize) -> Option<usize>,
) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.get(start) != Some(&b'{') || max_depth == 0 {
        return None;
    }
    let mut at = skip_whitespace(bytes, start + 1);
    if bytes.get(at) == Some(&b'}') {
        return Some(at + 1);
    }
    loop {
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let name_end = string_end(bytes, at + 1)?;
        // A name with an escape would need decoding: left to serde.
        let name = &text[at + 1..name_end - 1];
        if name.as_bytes().contains(&b'\\') {
            return None;
        }
        at = skip_whitespace(bytes, name_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let value_start = skip_whitespace(bytes, at + 1);
        let value_end = field(name, value_start)?;
        at = skip_whitespace(bytes, value_end);
        match bytes.get(at) {
            Some(b',') => at = skip_whitespace(bytes, at + 1),
            Some(b'}') => return Some(at + 1),
            _ => return None,
        }
    }
}

/// Where the JSON value starting at `start` ends (the index after its last byte).
pub fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    value_end_within(bytes, start, MAX_DEPTH)
}

/// A string `text` as JSON (with its quotes) needs escaping for: a quote, a backslash or
/// a control character. Branch-free over the bytes, so the compiler vectorises it.
pub fn needs_escaping(text: &str) -> bool {
    text.bytes().fold(false, |found, b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(at) {
        at += 1;
    }
    at
}

/// [`value_end`] following at most `max_depth` levels of nesting (for a value inside
/// containers already: [`MAX_DEPTH`] less their count). The scanner proper: iterative,
/// with the kinds of the enclosing containers as bits of a `u128` (1 = object), so that
/// nesting costs no allocation.
pub fn value_end_within(bytes: &[u8], start: usize, max_depth: usize) -> Option<usize> {
    let max_depth = max_depth.min(128);
    let mut objects: u128 = 0;
    let mut depth = 0usize;
    let mut at = start;
    loop {
        // A value starts at `at`.
        match *bytes.get(at)? {
            b'"' => at = string_end(bytes, at + 1)?,
            b'{' | b'[' => {
                let object = bytes[at] == b'{';
                if depth + 1 >= max_depth {
                    return None;
                }
                at = skip_whitespace(bytes, at + 1);
                let close = if object { b'}' } else { b']' };
                if bytes.get(at) == Some(&close) {
                    at += 1;
                } else {
                    objects = (objects << 1) | u128::from(object);
                    depth += 1;
                    if object {
                        at = field_name(bytes, at)?;
                    }
                    continue;
                }
            }
            b't' => at = literal(bytes, at, b"true")?,
            b'f' => at = literal(bytes, at, b"false")?,
            b'n' => at = literal(bytes, at, b"null")?,
            b'-' | b'0'..=b'9' => at = number_end(bytes, at)?,
            _ => return None,
        }
        // After a value: close containers until one continues with a comma.
        loop {
            if depth == 0 {
                return Some(at);
            }
            at = skip_whitespace(bytes, at);
            let in_object = objects & 1 == 1;
            match *bytes.get(at)? {
                b',' => {
                    at = skip_whitespace(bytes, at + 1);
                    if in_object {
                        at = field_name(bytes, at)?;
                    }
                    break;
                }
                b'}' if in_object => {}
                b']' if !in_object => {}
                _ => return None,
            }
            at += 1;
            objects >>= 1;
            depth -= 1;
        }
    }
}

/// A field's name and colon starting at `at`; returns where its value starts.
fn field_name(bytes: &[u8], at: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let at = skip_whitespace(bytes, string_end(bytes, at + 1)?);
    (bytes.get(at) == Some(&b':')).then(|| skip_whitespace(bytes, at + 1))
}

fn literal(bytes: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    let end = at + word.len();
    (bytes.get(at..end) == Some(word)).then_some(end)
}

/// The end of a number starting at `at`: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    let digits = |bytes: &[u8], at: usize| {
        let end = digits_end(bytes, at);
        (end > at).then_some(end)
    };
    if bytes.get(at) == Some(&b'-') {
        at += 1;
    }
    match *bytes.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at = digits(bytes, at)?,
        _ => return None,
    }
    if bytes.get(at) == Some(&b'.') {
        at = digits(bytes, at + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        at = digits(bytes, at)?;
    }
    // `01` or `1x` would be caught by whoever reads on (a delimiter must follow); a
    // digit right after a leading zero is caught here so the span is never wrong.
    if bytes.get(at).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(at)
}

/// Where the run of ASCII digits from `at` ends; eight bytes at a time (Debezium's
/// timestamps in nanoseconds have 19 digits).
fn digits_end(bytes: &[u8], mut at: usize) -> usize {
    const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // A byte is a digit when it is 0x3_ and stays 0x3_ with 6 added. Carries only
        // run upwards from a byte that is not a digit, so the lowest flagged byte is exact.
        let not_digits = ((word & HIGH_NIBBLES) ^ ZEROS)
            | ((word.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES) ^ ZEROS);
        if not_digits != 0 {
            return at + not_digits.trailing_zeros() as usize / 8;
        }
        at += 8;
    }
    while bytes.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    at
}

/// The end of a string whose opening quote is just before `at` (the index after the
/// closing quote). Eight bytes at a time until a quote, a backslash or a control byte.
fn string_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    loop {
        while let Some(chunk) = bytes.get(at..at + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            let quote = word ^ (ONES * u64::from(b'"'));
            let backslash = word ^ (ONES * u64::from(b'\\'));
            // A zero byte in `quote`/`backslash`, or a byte below 0x20 in `word`: the
            // lowest flagged byte is exact (borrows only run upwards).
            let flags = (quote.wrapping_sub(ONES) & !quote
                | backslash.wrapping_sub(ONES) & !backslash
                | word.wrapping_sub(ONES * 0x20) & !word)
                & HIGHS;
            if flags != 0 {
                at += flags.trailing_zeros() as usize / 8;
                break;
            }
            at += 8;
        }
        match *bytes.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => match *bytes.get(at + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at += 2,
                b'u' => {
                    let hex = bytes.get(at + 2..at + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    at += 6;
                }
                _ => return None,
            },
            0..=0x1f => return None,
            _ => at += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json says: the span of the value (without surrounding whitespace).
    fn serde_span(text: &str) -> Option<(usize, usize)> {
        let raw: &serde_json::value::RawValue = serde_json::from_str(text).ok()?;
        let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        Some((start, start + raw.get().len()))
    }

    /// Soundness: whatever the scanner accepts, serde accepts with the same span.
    fn check(text: &str) -> bool {
        let ours = value_span(text);
        if let Some(span) = ours {
            assert_eq!(
                serde_span(text),
                Some(span),
                "accepted by the scanner: {text:?}"
            );
        }
        ours.is_some()
    }

    #[test]
    fn accepts_what_json_is_and_refuses_what_it_is_not() {
        let valid = [
            "0",
            "-0",
            "-12.5e+3",
            "1E7",
            " true ",
            "null",
            "\"\"",
            r#""a\"b\\c\/\b\f\n\r\t\u00e9\ud800""#,
            "\"ünïcødé ✓ 𝄞\"",
            "[]",
            "{}",
            "[1,[2,[3]],{\"a\":{\"b\":[]}}]",
            " { \"a\" : 1 , \"b\" : [ true , null ] } \n",
            "{\"long string that crosses several words\":\"and a value that does too!!\"}",
        ];
        for text in valid {
            assert!(check(text), "valid: {text:?}");
        }
        let invalid = [
            "",
            " ",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "1 2",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{a:1}",
            "[1}",
            "{\"a\":1]",
            "\"unterminated",
            "\"bad \\x escape\"",
            "\"short \\u12\"",
            "\"control \u{1} char\"",
            "\"tab\tinside\"",
            "tru",
            "nul",
            "[",
            "{",
            "NaN",
        ];
        for text in invalid {
            assert!(!check(text), "invalid: {text:?}");
            assert!(serde_span(text).is_none(), "serde refuses {text:?} too");
        }
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_left_to_serde() {
        let nested = |depth: usize| "[".repeat(depth) + &"]".repeat(depth);
        assert!(check(&nested(MAX_DEPTH - 1)));
        assert!(!check(&nested(MAX_DEPTH)));
        assert!(!check(&nested(5000)), "no stack is used for depth");
    }

    /// A small xorshift, so the generated texts are the same in every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn generate(rng: &mut Rng, depth: usize, out: &mut String) {
        const ATOMS: [&str; 12] = [
            "0",
            "-1",
            "12.5",
            "3e-2",
            "true",
            "false",
            "null",
            "\"\"",
            "\"text\"",
            "\"esc\\\"aped\\\\\"",
            "\"\\u00e9t\u{e9}\"",
            "\"a longer string of words\"",
        ];
        match rng.below(if depth > 4 { 1 } else { 3 }) {
            0 => out.push_str(ATOMS[rng.below(ATOMS.len())]),
            1 => {
                out.push('[');
                for at in 0..rng.below(4) {
                    if at > 0 {
                        out.push(',');
                    }
                    generate(rng, depth + 1, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for at in 0..rng.below(4) {
                    if at > 0 {
                        out.push_str(if rng.below(2) == 0 { "," } else { " , " });
                    }
                    out.push_str(&format!("\"k{at}\":"));
                    generate(rng, depth + 1, out);
                }
                out.push('}');
            }
        }
    }

    #[test]
    fn agrees_with_serde_on_generated_and_mutated_texts() {
        const MUTATIONS: [&[u8]; 14] = [
            b"", b" ", b",", b":", b"\"", b"\\", b"{", b"}", b"[", b"]", b"0", b"-", b"e", b"\x01",
        ];
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let (mut accepted, mut mutated_accepted) = (0, 0);
        for _ in 0..20_000 {
            let mut text = String::new();
            generate(&mut rng, 0, &mut text);
            assert!(check(&text), "generated JSON is accepted: {text}");
            accepted += 1;
            // One byte replaced, inserted or removed; the result stays UTF-8 by only
            // touching ASCII positions.
            let mut bytes = text.into_bytes();
            let at = rng.below(bytes.len() + 1);
            if at < bytes.len() && !bytes[at].is_ascii() {
                continue;
            }
            let insert = MUTATIONS[rng.below(MUTATIONS.len())];
            match rng.below(3) {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 if at < bytes.len() && !insert.is_empty() => bytes[at] = insert[0],
                _ => bytes.splice(at..at, insert.iter().copied()).for_each(drop),
            }
            if let Ok(mutated) = String::from_utf8(bytes) {
                mutated_accepted += usize::from(check(&mutated));
            }
        }
        assert_eq!(accepted, 20_000);
        // Some mutations keep the text valid (a space, a digit in a number): they
        // must be accepted too, or the fast path would rarely be taken.
        assert!(mutated_accepted > 1_000, "{mutated_accepted}");
    }

    /// Every field of the object at the start of `text`, as name and raw value, and
    /// whether only whitespace follows it; `None` where the walk gives up.
    fn fields(text: &str) -> Option<(Vec<(&str, &str)>, bool)> {
        let mut fields = Vec::new();
        let start = skip_whitespace(text.as_bytes(), 0);
        let end = walk_object(text, start, MAX_DEPTH, |name, at| {
            let end = value_end_within(text.as_bytes(), at, MAX_DEPTH - 1)?;
            fields.push((name, &text[at..end]));
            Some(end)
        })?;
        Some((fields, skip_whitespace(text.as_bytes(), end) == text.len()))
    }

    #[test]
    fn walks_an_objects_fields_in_order() {
        let text = r#" {"a": 1, "b" :{"c":[1,2]},"d":"x"} "#;
        let (walked, whole) = fields(text).expect("an object");
        assert_eq!(
            walked,
            [("a", "1"), ("b", r#"{"c":[1,2]}"#), ("d", "\"x\"")]
        );
        assert!(whole);
        assert_eq!(fields("{}"), Some((vec![], true)));
        assert_eq!(fields(r#"{"a":1} x"#).map(|(_, whole)| whole), Some(false));
        for refused in [r#"{"a\n":1}"#, "[1]", r#"{"a":01}"#, r#"{"a":1,}"#] {
            assert_eq!(fields(refused), None, "{refused}");
        }
        assert_eq!(
            walk_object(r#"{"a":1,"b":2}"#, 0, MAX_DEPTH, |name, at| {
                (name == "a").then_some(at + 1)
            }),
            None,
            "the callback can give up"
        );
        assert_eq!(
            walk_object("{}", 0, 0, |_, at| Some(at)),
            None,
            "no depth left"
        );
    }

    #[test]
    fn tells_strings_that_need_escaping() {
        assert!(!needs_escaping("sluice.source.topic"));
        assert!(!needs_escaping("ünïcødé"));
        assert!(needs_escaping("a\"b"));
        assert!(needs_escaping("a\\b"));
        assert!(needs_escaping("line\nbreak"));
        assert!(needs_escaping("\u{7f}\u{1f}"));
    }
}
