//! Debezium's include and exclude lists: `table.include.list` / `table.exclude.list`
//! (matched against `schema.table`) and `column.include.list` / `column.exclude.list`
//! (against `schema.table.column`). Each list is comma-separated regular expressions,
//! each matching the whole name, without regard to case, as Debezium's
//! `Strings.setOfRegex(..., CASE_INSENSITIVE)` and `Pattern.matches` do.

use regex::{Regex, RegexBuilder};

/// One comma-separated list of patterns, compiled. Compared by its text.
#[derive(Debug, Clone)]
pub struct Patterns {
    text: String,
    compiled: Vec<Regex>,
}

impl PartialEq for Patterns {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Patterns {}

impl Patterns {
    /// Compiles `text`; the error names the pattern that does not compile.
    pub fn parse(text: &str) -> Result<Patterns, String> {
        let compiled = text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|pattern| {
                RegexBuilder::new(&format!("^(?:{pattern})$"))
                    .case_insensitive(true)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        let reason = e.to_string();
                        let reason = reason.lines().last().unwrap_or("").trim();
                        format!("{pattern:?} is not a regular expression ({reason})")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if compiled.is_empty() {
            return Err("the list is empty".into());
        }
        Ok(Patterns {
            text: text.to_owned(),
            compiled,
        })
    }

    /// Whether one pattern matches all of `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.compiled.iter().any(|r| r.is_match(name))
    }

    /// The list as written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// An include list or an exclude list (Debezium refuses both at once); neither keeps all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Filter {
    #[default]
    All,
    Include(Patterns),
    Exclude(Patterns),
}

impl Filter {
    /// Whether `name` is kept.
    pub fn keeps(&self, name: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::Include(patterns) => patterns.matches(name),
            Filter::Exclude(patterns) => !patterns.matches(name),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Filter::All)
    }

    /// The filter from the two settings at `path` (`capture.table` for
    /// `capture.table_include_list` and `capture.table_exclude_list`); `Err` names the
    /// setting at fault.
    pub fn from_lists(
        include: Option<&str>,
        exclude: Option<&str>,
        path: &str,
    ) -> Result<Filter, (String, String)> {
        match (include, exclude) {
            (Some(_), Some(_)) => Err((
                format!("{path}_exclude_list"),
                format!("set {path}_include_list or {path}_exclude_list, not both (as Debezium)")
                    .replace("capture.", ""),
            )),
            (Some(text), None) => Patterns::parse(text)
                .map(Filter::Include)
                .map_err(|m| (format!("{path}_include_list"), m)),
            (None, Some(text)) => Patterns::parse(text)
                .map(Filter::Exclude)
                .map_err(|m| (format!("{path}_exclude_list"), m)),
            (None, None) => Ok(Filter::All),
        }
    }
}

/// Which tables capture reads: those named in `capture.tables`, and, with a table
/// filter, every CDC-enabled table the filter keeps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableSelection {
    /// `capture.tables`: each must exist (and have CDC enabled), or capture stops.
    pub named: Vec<String>,
    /// `table.include.list` / `table.exclude.list` over the tables the database offers.
    pub filter: Filter,
}

impl TableSelection {
    /// Exactly `tables`, no filter.
    pub fn named(tables: Vec<String>) -> TableSelection {
        TableSelection {
            named: tables,
            filter: Filter::All,
        }
    }

    /// The tables captured out of `available` (`schema.table`, the database's CDC-enabled
    /// tables): the named ones first, in their order, then the filter's, in `available`'s
    /// order. With names and no filter, only the names (a named table that is missing
    /// is the caller's error to report). A filter applies to named tables too.
    pub fn resolve(&self, available: &[String]) -> Vec<String> {
        let mut chosen: Vec<String> = self
            .named
            .iter()
            .filter(|t| self.filter.keeps(t))
            .cloned()
            .collect();
        if !self.filter.is_all() || self.named.is_empty() {
            for table in available {
                let named = chosen.iter().any(|c| c.eq_ignore_ascii_case(table));
                if !named && self.filter.keeps(table) {
                    chosen.push(table.clone());
                }
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn patterns_match_whole_names_without_case() {
        let p = Patterns::parse(r"dbo\.cust.*, sales\.orders").expect("compiles");
        assert!(p.matches("dbo.customers"));
        assert!(p.matches("DBO.Customers"));
        assert!(p.matches("sales.orders"));
        // Anchored: a pattern is the whole name, not a part of it.
        assert!(!p.matches("sales.orders_archive"));
        assert!(!p.matches("xdbo.customers"));
        let error = Patterns::parse("dbo.(customers").expect_err("unbalanced");
        assert!(error.contains("\"dbo.(customers\""), "{error}");
        assert!(Patterns::parse(" , ").is_err());
    }

    #[test]
    fn include_and_exclude_lists_choose_tables() {
        let available = names(&[
            "dbo.customers",
            "dbo.orders",
            "audit.log",
            "dbo.order_lines",
        ]);
        let include = TableSelection {
            named: Vec::new(),
            filter: Filter::from_lists(Some(r"dbo\.order.*"), None, "capture.table")
                .expect("valid"),
        };
        assert_eq!(
            include.resolve(&available),
            ["dbo.orders", "dbo.order_lines"]
        );
        let exclude = TableSelection {
            named: Vec::new(),
            filter: Filter::from_lists(None, Some(r"audit\..*"), "capture.table").expect("valid"),
        };
        assert_eq!(
            exclude.resolve(&available),
            ["dbo.customers", "dbo.orders", "dbo.order_lines"]
        );
        // Names alone: exactly the names; names with a filter: the names it keeps, then
        // the others it keeps.
        let named = TableSelection {
            named: names(&["dbo.customers"]),
            filter: Filter::All,
        };
        assert_eq!(named.resolve(&available), ["dbo.customers"]);
        let both = TableSelection {
            named: names(&["dbo.customers", "audit.log"]),
            filter: exclude.filter.clone(),
        };
        assert_eq!(
            both.resolve(&available),
            ["dbo.customers", "dbo.orders", "dbo.order_lines"]
        );
        // Neither: every table the database offers, as Debezium with no list.
        assert_eq!(TableSelection::default().resolve(&available), available);
        let (path, message) =
            Filter::from_lists(Some("a"), Some("b"), "capture.table").expect_err("both");
        assert_eq!(path, "capture.table_exclude_list");
        assert!(message.contains("not both"), "{message}");
    }
}
