//! Topic name patterns, as used for a plugin's inputs and allowed outputs.
//!
//! A pattern is a topic name in which `*` matches any run of characters (including
//! none and including dots): `cdm.customer`, `cdm.*`, `server1.testDB.dbo.*`, `*`.

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
}

impl TopicPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*');
        if !text.chars().all(allowed) {
            return Err(PatternError::BadCharacter(text.to_owned()));
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
    fn invalid_patterns() {
        assert_eq!(TopicPattern::parse(""), Err(PatternError::Empty));
        assert!(matches!(
            TopicPattern::parse("cdm customer"),
            Err(PatternError::BadCharacter(_))
        ));
    }
}
