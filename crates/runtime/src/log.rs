//! Making untrusted text safe for the host's log: plugin log messages, plugin and
//! manifest names, file paths.
//!
//! sluice's log is line-oriented; a newline or an escape sequence in a name a team chose
//! (a manifest called `a\nERROR forged.toml`) or in a message a plugin logged would let
//! it forge log lines or repaint a terminal. Control characters are therefore escaped
//! (`\n`, `\u{1b}`) wherever such text reaches a log line, and a plugin's message is
//! capped at [`MAX_LOG_LINE_BYTES`].

use std::borrow::Cow;
use std::path::Path;

/// The most bytes of one plugin log message that reach the log. 8 KiB holds any
/// diagnostic a person reads (a stack trace, a whole event of a few KB) while one call
/// can no longer write megabytes into a line.
pub const MAX_LOG_LINE_BYTES: usize = 8 * 1024;

pub use sluice_core::text::printable;

/// A path for a log line or an error message: lossy UTF-8, control characters escaped.
pub fn printable_path(path: &Path) -> String {
    printable(&path.to_string_lossy()).into_owned()
}

/// A plugin's log message made safe: control characters escaped, and cut at
/// [`MAX_LOG_LINE_BYTES`] (on a character boundary) with a marker saying how much was
/// left out.
pub fn plugin_message(message: &str) -> Cow<'_, str> {
    let (kept, cut) = if message.len() > MAX_LOG_LINE_BYTES {
        let mut end = MAX_LOG_LINE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        (&message[..end], message.len() - end)
    } else {
        (message, 0)
    };
    let safe = printable(kept);
    if cut == 0 {
        return safe;
    }
    Cow::Owned(format!("{safe}… [truncated {cut} bytes]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(printable("plain name"), Cow::Borrowed(_)));
        assert_eq!(
            printable("a\nERROR forged\u{1b}[31m"),
            "a\\nERROR forged\\u{1b}[31m"
        );
        assert_eq!(
            printable_path(Path::new("/p/x\r\ny.toml")),
            "/p/x\\r\\ny.toml"
        );
    }

    #[test]
    fn long_messages_are_cut_with_a_marker() {
        let long = "é".repeat(MAX_LOG_LINE_BYTES); // two bytes each
        let cut = plugin_message(&long);
        assert!(cut.len() < MAX_LOG_LINE_BYTES + 40, "{}", cut.len());
        assert!(
            cut.ends_with(&format!("… [truncated {} bytes]", MAX_LOG_LINE_BYTES)),
            "{}",
            &cut[cut.len() - 40..]
        );
        assert_eq!(plugin_message("short"), "short");
    }
}
