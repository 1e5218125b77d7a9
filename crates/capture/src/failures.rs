//! Debezium's `event.processing.failure.handling.mode`: what capture does with a change
//! it cannot turn into an event (a value outside the range of its Debezium type, say).
//! `fail` (the default) stops capture with the error, which names the table, the column
//! and the position, before anything after it is published, so nothing is lost; `warn`
//! logs the error and goes on without the event; `skip` goes on without a word. Both
//! count the events left out (`sluice_capture_events_skipped_total`).

use std::fmt::Display;

use sluice_core::settings::Problem;

use crate::config::add;

/// `event.processing.failure.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Stop capture with the error (Debezium's default).
    #[default]
    Fail,
    /// Log the error (table, column, position) and leave the event out.
    Warn,
    /// Leave the event out, logging nothing (the metric still counts it).
    Skip,
}

impl FailureMode {
    /// The mode named by `raw` (`None`: the default); a problem at `path` for any other
    /// name.
    pub fn parse(raw: Option<&str>, path: &str, problems: &mut Vec<Problem>) -> FailureMode {
        match raw {
            None | Some("fail") => FailureMode::Fail,
            Some("warn") => FailureMode::Warn,
            Some("skip") => FailureMode::Skip,
            Some(other) => {
                add(
                    problems,
                    path,
                    format!("unknown mode {other:?} (expected \"fail\", \"warn\" or \"skip\")"),
                );
                FailureMode::Fail
            }
        }
    }

    /// What becomes of an event that failed with `error`: `Err(error)` stops capture;
    /// `Ok(())` means it is left out (logged as the mode says), and the caller counts it.
    pub fn handle<E: Display>(self, error: E) -> Result<(), E> {
        match self {
            FailureMode::Fail => Err(error),
            FailureMode::Warn => {
                tracing::warn!(
                    %error,
                    "change left out (event.processing.failure.handling.mode = warn)"
                );
                Ok(())
            }
            FailureMode::Skip => Ok(()),
        }
    }
}

/// The hint a stopping row error ends with.
pub const HINT: &str = "to leave such a change out and go on, set capture.event_processing_failure_handling_mode = \"warn\" (or \"skip\")";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_debezium_names_them_and_others_are_refused() {
        let mut problems = Vec::new();
        assert_eq!(
            FailureMode::parse(None, "capture.x", &mut problems),
            FailureMode::Fail
        );
        assert_eq!(
            FailureMode::parse(Some("warn"), "capture.x", &mut problems),
            FailureMode::Warn
        );
        assert_eq!(
            FailureMode::parse(Some("skip"), "capture.x", &mut problems),
            FailureMode::Skip
        );
        assert!(problems.is_empty());
        FailureMode::parse(Some("ignore"), "capture.x", &mut problems);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "capture.x");
        assert!(
            problems[0].message.contains("\"ignore\""),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn only_fail_hands_the_error_back() {
        assert_eq!(FailureMode::Fail.handle("bad"), Err("bad"));
        assert_eq!(FailureMode::Warn.handle("bad"), Ok(()));
        assert_eq!(FailureMode::Skip.handle("bad"), Ok(()));
    }
}
