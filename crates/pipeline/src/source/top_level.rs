//! A fast reader of a JSON object's top level: where each of its fields lies, found by
//! reading the top level exactly and skipping over nested values without validating them.
//!
//! The file source tells a line's form from a few top-level fields (`value`, `op`,
//! `source`, ...). Reading the whole line with serde for that validated every byte of
//! the ~1 KB envelope once here and then again when the envelope was decoded; this reader
//! finds the fields' bytes in a cheaper pass (strings eight bytes at a time) and
//! leaves validation to whoever reads a field's bytes. It gives up (`None`) on whatever
//! it does not handle (escaped or repeated names, nesting past [`MAX_DEPTH`], a
//! structure that does not close), and the caller then uses serde's reader, which stays
//! the authority on what the line is.

use std::ops::Range;

/// How deep nested values may go; deeper is left to serde (whose limit is 128 too).
const MAX_DEPTH: usize = 128;

/// One top-level field: its name (as written, unescaped names only) and where its raw
/// JSON value lies in the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    pub name: &'a [u8],
    pub value: Range<usize>,
}

/// Hands `visit` each top-level field of `text`, which must be one JSON object
/// (whitespace around it allowed), in the order written (no list is built: this runs per
/// line). `None` if the reader cannot tell (see the module's comment) or `visit` says
/// `None`; fields visited before that are to be forgotten. A field's value range is
/// exact: what serde's `RawValue` of it would hold. Nested values are not validated: a
/// field's bytes are only known to be balanced.
pub(crate) fn visit_fields<'a>(
    text: &'a [u8],
    mut visit: impl FnMut(Field<'a>) -> Option<()>,
) -> Option<()> {
    let mut at = skip_whitespace(text, 0);
    if text.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_whitespace(text, at + 1);
    if text.get(at) == Some(&b'}') {
        return only_whitespace_after(text, at + 1).then_some(());
    }
    loop {
        if text.get(at) != Some(&b'"') {
            return None;
        }
        let name_start = at + 1;
        let name_end = name_start + memchr::memchr2(b'"', b'\\', &text[name_start..])?;
        if text[name_end] == b'\\' {
            return None;
        }
        at = skip_whitespace(text, name_end + 1);
        if text.get(at) != Some(&b':') {
            return None;
        }
        let value_start = skip_whitespace(text, at + 1);
        let value_end = skip_value(text, value_start)?;
        visit(Field {
            name: &text[name_start..name_end],
            value: value_start..value_end,
        })?;
        at = skip_whitespace(text, value_end);
        match text.get(at) {
            Some(b',') => at = skip_whitespace(text, at + 1),
            Some(b'}') => return only_whitespace_after(text, at + 1).then_some(()),
            _ => return None,
        }
    }
}

fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_whitespace(text: &[u8], mut at: usize) -> usize {
    while text.get(at).is_some_and(|&b| is_whitespace(b)) {
        at += 1;
    }
    at
}

fn only_whitespace_after(text: &[u8], at: usize) -> bool {
    text[at..].iter().all(|&b| is_whitespace(b))
}

/// The end of the value starting at `at`: a string, an object or array (brackets
/// matched, strings inside skipped), or a bare token (number, `true`, `null`, ...) up to
/// the next delimiter.
fn skip_value(text: &[u8], at: usize) -> Option<usize> {
    match *text.get(at)? {
        b'"' => skip_string(text, at),
        b'{' | b'[' => skip_container(text, at),
        b',' | b'}' | b']' | b':' => None,
        _ => {
            let end = text[at..]
                .iter()
                .position(|&b| matches!(b, b',' | b'}' | b']') || is_whitespace(b))
                .map_or(text.len(), |n| at + n);
            Some(end)
        }
    }
}

/// The end of the string whose opening quote is at `at` (just past its closing quote).
/// Eight bytes at a time while none of them is a quote or a backslash.
fn skip_string(text: &[u8], at: usize) -> Option<usize> {
    let mut from = at + 1;
    loop {
        while let Some(chunk) = text.get(from..from + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            let found = has_byte(word, b'"') | has_byte(word, b'\\');
            if found != 0 {
                // The lowest flagged byte is the first quote or backslash (flags above
                // it may be false, never below it).
                from += (found.trailing_zeros() / 8) as usize;
                break;
            }
            from += 8;
        }
        match *text.get(from)? {
            b'"' => return Some(from + 1),
            // An escape: the next byte is escaped (`\"` does not end the string).
            b'\\' => from += 2,
            _ => from += 1,
        }
    }
}

/// The high bit of each byte of `word` that may equal `byte`: exact for the lowest one.
fn has_byte(word: u64, byte: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// What a byte means to [`skip_container`]: most mean nothing.
const PLAIN: u8 = 0;
const QUOTE: u8 = 1;
const OPEN: u8 = 2;
const CLOSE: u8 = 3;

static CLASS: [u8; 256] = {
    let mut class = [PLAIN; 256];
    class[b'"' as usize] = QUOTE;
    class[b'{' as usize] = OPEN;
    class[b'[' as usize] = OPEN;
    class[b'}' as usize] = CLOSE;
    class[b']' as usize] = CLOSE;
    class
};

/// The end of the object or array opening at `at` (just past its closing bracket).
fn skip_container(text: &[u8], at: usize) -> Option<usize> {
    let mut closers: Vec<u8> = Vec::with_capacity(8);
    let mut from = at;
    while let Some(&byte) = text.get(from) {
        match CLASS[byte as usize] {
            PLAIN => {}
            QUOTE => {
                from = skip_string(text, from)?;
                continue;
            }
            OPEN => {
                if closers.len() == MAX_DEPTH {
                    return None;
                }
                closers.push(if byte == b'{' { b'}' } else { b']' });
            }
            _ => {
                if closers.pop() != Some(byte) {
                    return None;
                }
                if closers.is_empty() {
                    return Some(from + 1);
                }
            }
        }
        from += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields [`visit_fields`] hands over, in order.
    fn fields(text: &[u8]) -> Option<Vec<Field<'_>>> {
        let mut fields = Vec::new();
        visit_fields(text, |field| {
            fields.push(field);
            Some(())
        })?;
        Some(fields)
    }
    use serde_json::value::RawValue;
    use std::collections::BTreeMap;

    /// What serde's reader sees: each top-level field's raw text, or `None` when the text
    /// is not one JSON object.
    fn by_serde(text: &str) -> Option<Vec<(String, String)>> {
        let map: BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
        Some(
            map.into_iter()
                .map(|(k, v)| (k, v.get().to_owned()))
                .collect(),
        )
    }

    fn by_scanner(text: &str) -> Option<Vec<(String, String)>> {
        let mut fields: Vec<(String, String)> = fields(text.as_bytes())?
            .into_iter()
            .map(|f| {
                (
                    String::from_utf8(f.name.to_vec()).expect("names are UTF-8 here"),
                    text[f.value].to_owned(),
                )
            })
            .collect();
        fields.sort();
        Some(fields)
    }

    #[test]
    fn finds_what_serde_finds_in_valid_objects() {
        let lines = [
            r#"{}"#,
            r#"  { }  "#,
            r#"{"a":1}"#,
            r#"{"topic":"t","key":{"id":1},"value":{"before":null,"after":{"s":"x\"}y","n":[1,{"z":"]"}]},"op":"u"}}"#,
            "{\"a\" : [ 1 , 2 ] ,\n\t\"b\":\"\\\\\",\"c\":-1.5e3, \"d\":true,\"e\":null}\r\n",
            r#"{"value":"{not an object}","key":"\u00e9"}"#,
            r#"{"schema":{"type":"struct","fields":[[],[[]],{}]},"payload":{"op":"c"}}"#,
            r#"{"value":"é ünïcödé 🚀"}"#,
        ];
        for line in lines {
            assert_eq!(by_scanner(line), by_serde(line), "{line}");
            assert!(by_scanner(line).is_some(), "{line}");
        }
    }

    #[test]
    fn gives_up_where_it_cannot_tell() {
        for line in [
            "",
            "   ",
            "[1,2]",
            "\"text\"",
            "{",
            r#"{"a":1"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            r#"{"a":{"b":1]}"#,
            r#"{"a":[1}"#,
            r#"{"a":"unterminated}"#,
            r#"{"a":1} trailing"#,
            r#"{"a":1}{"b":2}"#,
            r#"{"esc\"aped":1}"#,
            r#"{"a":1 "b":2}"#,
            r#"{a:1}"#,
        ] {
            assert_eq!(by_scanner(line), None, "{line}");
        }
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert_eq!(by_scanner(&deep), None, "nesting past the limit");
        let fine = format!(r#"{{"a":{}{}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(by_scanner(&fine).is_some());
    }

    #[test]
    fn nested_values_are_delimited_not_validated() {
        // Balanced but not JSON inside: the bytes are found; their reader must refuse them.
        let fields = by_scanner(r#"{"value":{"a":tru},"key":1}"#).expect("balanced");
        assert_eq!(fields[1], ("value".to_owned(), r#"{"a":tru}"#.to_owned()));
        // A bare token runs to the next delimiter, whatever it is.
        let fields = by_scanner(r#"{"value":nul,"key":1x}"#).expect("delimited");
        assert_eq!(fields[0], ("key".to_owned(), "1x".to_owned()));
    }

    /// The eight-at-a-time search finds the quote that ends a string wherever the
    /// quotes, escapes and bytes past 0x7f fall against the eight-byte steps.
    #[test]
    fn strings_end_where_a_byte_at_a_time_reading_ends_them() {
        fn slow(text: &[u8], at: usize) -> Option<usize> {
            let mut from = at + 1;
            loop {
                match *text.get(from)? {
                    b'"' => return Some(from + 1),
                    b'\\' => from += 2,
                    _ => from += 1,
                }
            }
        }
        let alphabet: [&[u8]; 7] = [
            b"a",
            b"\\\"",
            b"\\\\",
            b"\\",
            "é".as_bytes(),
            b"\xff",
            b"\x00",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            let mut text = b"\"".to_vec();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let length = (seed % 40) as usize;
            let mut bits = seed;
            for _ in 0..length {
                bits = bits.rotate_left(5) ^ 0x9e37_79b9;
                text.extend_from_slice(alphabet[(bits % 7) as usize]);
            }
            if !seed.is_multiple_of(5) {
                text.extend_from_slice(b"\"tail\"");
            }
            assert_eq!(skip_string(&text, 0), slow(&text, 0), "{text:?}");
        }
    }

    #[test]
    fn never_panics_on_truncated_or_odd_input() {
        let line = r#"{"topic":"t","key":{"id":1},"value":{"s":"a\\\"b","n":[1,[2,{"c":"}"}]]}}"#;
        for end in 0..=line.len() {
            let _ = fields(&line.as_bytes()[..end]);
        }
        for bytes in [
            &b"{\"a\":\"\\"[..],
            b"{\"a\\",
            b"{\"a\":[\"\\\"]",
            b"{\"\xff\":1}",
        ] {
            let _ = fields(bytes);
        }
    }
}
