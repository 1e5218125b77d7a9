//! Text from outside (a plugin, a producer, a remote endpoint) made safe for a log line
//! or an error message: control characters escaped, so that it cannot write a line of
//! its own or repaint a terminal.

use std::borrow::Cow;

/// `text` with control characters escaped as Rust escapes them (`\n`, `\t`,
/// `\u{1b}`); borrowed when there is none (the common case costs one scan).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(printable("plain ✓"), Cow::Borrowed("plain ✓")));
        assert_eq!(printable("a\nERROR b\u{1b}[31m"), "a\\nERROR b\\u{1b}[31m");
    }
}
