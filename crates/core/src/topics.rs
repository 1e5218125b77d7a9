//! Topic name patterns, as used for a plugin's inputs and allowed outputs.
//!
//! A pattern is a topic name in which `*` matches any run of characters (including
//! none and including dots): `cdm.customer`, `cdm.*`, `server1.testDB.dbo.*`, `*`.
//!
//! [`check_topic_name`] is Kafka's own rule for a topic name. Every topic sluice writes
//! (a plugin's output, the dead-letter topic) and every configured topic is held to it
//! before it reaches a sink: a broker refuses a bad name for the whole producer call,
//! and a file sink would publish what no Kafka could ever carry.

/// A parsed topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    text: String,
}

/// Why a pattern is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("a topic pattern cannot be empty")]
    Empty,
    #[error(
        "{0:?} has a character Kafka does not allow in topic names (allowed: a-z A-Z 0-9 . _ - and * as a wildcard)"
    )]
    BadCharacter(String),
    #[error("{0}")]
    Name(#[from] TopicNameError),
}

/// The longest topic name Kafka accepts (`Topic.MAX_NAME_LENGTH` in Apache Kafka).
pub const MAX_TOPIC_NAME_CHARS: usize = 249;

/// Why a topic name breaks Kafka's rule (1 to 249 characters of `a-z A-Z 0-9 . _ -`,
/// and neither `.` nor `..`). The offending name is shortened so the message stays small
/// however long the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("a topic name cannot be empty (Kafka: 1 to 249 characters)")]
    Empty,
    #[error("topic name {0} is over Kafka's limit of 249 characters")]
    TooLong(String),
    #[error("topic name {0:?} is not allowed by Kafka (\".\" and \"..\" are reserved)")]
    Reserved(String),
    #[error("topic name {0} has a character Kafka does not allow (allowed: a-z A-Z 0-9 . _ -)")]
    BadCharacter(String),
}

/// Checks `name` against Kafka's rule for topic names (see [`TopicNameError`]).
pub fn check_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Reserved(name.to_owned()));
    }
    if !name.chars().all(is_topic_char) {
        return Err(TopicNameError::BadCharacter(shorten(name)));
    }
    // All ASCII from here on, so bytes are characters.
    if name.len() > MAX_TOPIC_NAME_CHARS {
        return Err(TopicNameError::TooLong(shorten(name)));
    }
    Ok(())
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// `name` quoted, cut to its first 64 characters with a marker when longer: enough to
/// recognise it in a log line or a header without copying a huge name.
fn shorten(name: &str) -> String {
    const SHOWN: usize = 64;
    match name.char_indices().nth(SHOWN) {
        None => format!("{name:?}"),
        Some((cut, _)) => format!(
            "{:?}... ({} characters in all)",
            &name[..cut],
            name.chars().count()
        ),
    }
}

impl TopicPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if !text.chars().all(|c| is_topic_char(c) || c == '*') {
            return Err(PatternError::BadCharacter(text.to_owned()));
        }
        // A pattern without a wildcard is a topic name; one with a wildcard can still be
        // no longer than the names it is meant to match.
        if !text.contains('*') {
            check_topic_name(text)?;
        } else if text.len() > MAX_TOPIC_NAME_CHARS {
            return Err(TopicNameError::TooLong(shorten(text)).into());
        }
        Ok(Self {
            text: text.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `topic` matches (glob matching with `*`, no backtracking blow-up: the
    /// pieces between stars are matched greedily left to right, which is exact for `*`).
    pub fn matches(&self, topic: &str) -> bool {
        let mut pieces = self.text.split('*');
        let first = pieces.next().unwrap_or_default();
        let Some(mut rest) = topic.strip_prefix(first) else {
            return false;
        };
        let pieces: Vec<&str> = pieces.collect();
        let Some((last, middle)) = pieces.split_last() else {
            return rest.is_empty();
        };
        for piece in middle {
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

impl std::fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether any pattern of `patterns` matches `topic`.
pub fn any_matches(patterns: &[TopicPattern], topic: &str) -> bool {
    patterns.iter().any(|p| p.matches(topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, topic: &str) -> bool {
        TopicPattern::parse(pattern).expect("valid").matches(topic)
    }

    #[test]
    fn glob_matching() {
        assert!(matches("cdm.customer", "cdm.customer"));
        assert!(!matches("cdm.customer", "cdm.customers"));
        assert!(matches("cdm.*", "cdm.customer"));
        assert!(matches("cdm.*", "cdm."));
        assert!(!matches("cdm.*", "cdm"));
        assert!(matches("*", "anything.at.all"));
        assert!(matches("server1.*.dbo.*", "server1.testDB.dbo.customers"));
        assert!(!matches(
            "server1.*.dbo.*",
            "server1.testDB.sales.customers"
        ));
        assert!(matches("*.customers", "a.b.customers"));
        assert!(matches("a*a", "aa"));
        assert!(!matches("a*a", "a"));
    }

    #[test]
    fn kafka_topic_name_rule() {
        assert_eq!(check_topic_name("cdm.customer_v2-x"), Ok(()));
        assert_eq!(check_topic_name(&"a".repeat(249)), Ok(()));
        assert_eq!(check_topic_name(""), Err(TopicNameError::Empty));
        assert!(matches!(
            check_topic_name("."),
            Err(TopicNameError::Reserved(_))
        ));
        assert!(matches!(
            check_topic_name(".."),
            Err(TopicNameError::Reserved(_))
        ));
        assert_eq!(
            check_topic_name("..."),
            Ok(()),
            "only . and .. are reserved"
        );
        let long = "a".repeat(100_000);
        let error = check_topic_name(&long).expect_err("too long");
        assert!(matches!(error, TopicNameError::TooLong(_)));
        assert!(
            error.to_string().contains("(100000 characters in all)"),
            "{error}"
        );
        assert!(
            error.to_string().len() < 200,
            "the message does not copy the name"
        );
        assert!(matches!(
            check_topic_name("a/b"),
            Err(TopicNameError::BadCharacter(_))
        ));
        assert!(matches!(
            check_topic_name("caf\u{e9}"),
            Err(TopicNameError::BadCharacter(_))
        ));
    }

    #[test]
    fn invalid_patterns() {
        assert!(matches!(
            TopicPattern::parse(".."),
            Err(PatternError::Name(TopicNameError::Reserved(_)))
        ));
        assert!(matches!(
            TopicPattern::parse(&format!("{}*", "a".repeat(300))),
            Err(PatternError::Name(TopicNameError::TooLong(_)))
        ));
        assert_eq!(TopicPattern::parse(""), Err(PatternError::Empty));
        assert!(matches!(
            TopicPattern::parse("cdm customer"),
            Err(PatternError::BadCharacter(_))
        ));
    }
}
