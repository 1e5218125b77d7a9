//! What users moving from Debezium set per column: `column.include.list` /
//! `column.exclude.list` (columns left out of the events and of the queries),
//! `column.mask.*` (masked values) and `message.key.columns` (the record key of a table,
//! e.g. one without a primary key). Applied to every capture instance as it is listed,
//! so the snapshot, the streaming reads and the schema-change events agree.

use super::tables::{CaptureInstance, TablesError};
use crate::filters::Filter;
use crate::masks::{MaskRule, mask_for};

/// The per-column settings, by `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnSettings {
    /// Which `schema.table.column` names are kept.
    pub filter: Filter,
    /// `column.mask.*`, first match wins.
    pub masks: Vec<MaskRule>,
    /// `(schema.table, key columns)`: the record key instead of the primary key.
    pub keys: Vec<(String, Vec<String>)>,
}

impl ColumnSettings {
    /// Parses `message.key.columns`: `schema.table:col1,col2;schema.table2:col`.
    pub fn parse_keys(text: &str) -> Result<Vec<(String, Vec<String>)>, String> {
        text.split(';')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                let (table, columns) = part
                    .split_once(':')
                    .ok_or_else(|| format!("{part:?} is not \"schema.table:column,...\""))?;
                let columns: Vec<String> = columns
                    .split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect();
                if table.trim().split('.').count() != 2 || columns.is_empty() {
                    return Err(format!("{part:?} is not \"schema.table:column,...\""));
                }
                Ok((table.trim().to_owned(), columns))
            })
            .collect()
    }

    /// Applies the settings to `instances` (see the module docs).
    pub fn apply(&self, instances: &mut [CaptureInstance]) -> Result<(), TablesError> {
        if self.filter.is_all() && self.keys.is_empty() && self.masks.is_empty() {
            return Ok(());
        }
        for instance in instances {
            let table = &mut instance.table;
            let id = table.id();
            let key_names: Vec<String> = table
                .key
                .iter()
                .map(|&i| table.columns[i].name.clone())
                .collect();
            table
                .columns
                .retain(|c| self.filter.keeps(&format!("{id}.{}", c.name)));
            for column in &mut table.columns {
                column.mask = mask_for(&self.masks, &format!("{id}.{}", column.name)).cloned();
            }
            let wanted = match self.keys.iter().find(|(t, _)| *t == id) {
                Some((_, columns)) => columns.clone(),
                None => key_names,
            };
            table.key = wanted
                .iter()
                .map(|name| {
                    table
                        .columns
                        .iter()
                        .position(|c| &c.name == name)
                        .ok_or_else(|| {
                            TablesError::Query(format!(
                                "{id}: key column {name} is left out by column_include_list / column_exclude_list, or does not exist (message_key_columns)"
                            ))
                        })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::Patterns;
    use crate::fixtures::customers;
    use crate::masks::Mask;
    use crate::sqlserver::lsn::Lsn;

    fn instance() -> CaptureInstance {
        CaptureInstance {
            name: "dbo_customers".into(),
            table: customers(),
            start_lsn: Lsn::ZERO,
        }
    }

    #[test]
    fn excluded_columns_go_and_keys_follow_their_columns() {
        let settings = ColumnSettings {
            filter: Filter::Exclude(Patterns::parse(r"dbo\.customers\.first_.*").expect("valid")),
            keys: ColumnSettings::parse_keys("dbo.customers:email,id").expect("keys"),
            masks: vec![MaskRule {
                columns: Patterns::parse(r"dbo\.customers\.email").expect("valid"),
                mask: Mask::Chars(4),
            }],
        };
        let mut instances = [instance()];
        settings.apply(&mut instances).expect("applies");
        let table = &instances[0].table;
        assert!(table.columns.iter().all(|c| c.name != "first_name"));
        let key: Vec<&str> = table
            .key
            .iter()
            .map(|&i| table.columns[i].name.as_str())
            .collect();
        assert_eq!(key, ["email", "id"]);
        let masked: Vec<&str> = table
            .columns
            .iter()
            .filter(|c| c.mask == Some(Mask::Chars(4)))
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(masked, ["email"]);
        // An include list keeps only what it matches (without regard to case).
        let settings = ColumnSettings {
            filter: Filter::Include(Patterns::parse(r"DBO\.customers\.(id|email)").expect("valid")),
            ..ColumnSettings::default()
        };
        let mut instances = [instance()];
        settings.apply(&mut instances).expect("applies");
        let names: Vec<&str> = instances[0]
            .table
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["id", "email"]);
        // Leaving out a key column is refused, by name.
        let settings = ColumnSettings {
            filter: Filter::Exclude(Patterns::parse("dbo.customers.id").expect("valid")),
            ..ColumnSettings::default()
        };
        let error = settings.apply(&mut [instance()]).expect_err("key excluded");
        assert!(error.to_string().contains("key column id"), "{error}");
        assert!(ColumnSettings::parse_keys("customers").is_err());
    }
}
