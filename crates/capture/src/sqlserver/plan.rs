//! Which capture instance to read for each table in a pass. A table has at most two
//! instances; when a second appears (a schema change: SQL Server ignores new columns
//! until one exists), the old one is read up to the new one's `start_lsn` and the new
//! one from there, with a schema-change event at the switch (none when the new instance
//! has the same columns, as Debezium skips it). An instance that disappears (CDC
//! disabled, maybe re-enabled) loses changes: by default it is dropped as Debezium drops
//! it (capture goes on with the table's newer instance, if any, and reports the loss
//! loudly); `on_instance_vanished = "fail"` makes it an error naming the table and the
//! LSN range at risk. Never silent.

use std::collections::BTreeMap;

use super::lsn::Lsn;
use super::tables::CaptureInstance;

/// Read `instance` for `from <= __$start_lsn <= to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub instance: CaptureInstance,
    pub from: Lsn,
    pub to: Lsn,
}

/// Switch `table` from instance `from` to `to` at `at` (`to`'s `start_lsn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub table: String,
    pub from: String,
    pub to: CaptureInstance,
    pub at: Lsn,
    /// The new instance has other columns (else no schema-change event).
    pub schema_changed: bool,
}

/// A capture instance that disappeared and was dropped (`on_instance_vanished = "drop"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub table: String,
    pub instance: String,
    /// Changes from here on were in the vanished change table.
    pub from: Lsn,
    /// The instance read from now on, if the table has one.
    pub replaced_by: Option<String>,
}

/// A pass's reads and switches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub reads: Vec<Read>,
    pub switches: Vec<Switch>,
    pub dropped: Vec<Dropped>,
}

/// What to do when the capture instance being read disappears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VanishedPolicy {
    /// Debezium's way: drop it, log it loudly, count it, carry on.
    #[default]
    Drop,
    Fail,
}

/// `current`'s value for a table whose instance was dropped and which has none left:
/// it is read again once CDC is enabled on it again.
const DROPPED: &str = "";

/// A pass that cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{table}: capture instance {instance} disappeared (CDC disabled or re-enabled on the table); changes from LSN {from} to {to} may be lost: re-snapshot the table or restore CDC before capturing again"
    )]
    InstanceDisappeared {
        table: String,
        instance: String,
        from: Lsn,
        to: String,
    },
    #[error(
        "{table}: no capture instance (CDC is not enabled on it): run `EXEC sys.sp_cdc_enable_table` for it"
    )]
    NoInstance { table: String },
}

/// Plans reading `tables` (`schema.table`) for `[from, to]`. `current` maps each table
/// to the instance read so far (absent: choose the instance that covers `from`); it is
/// updated to the instance in use after the pass.
pub fn plan(
    tables: &[String],
    instances: &[CaptureInstance],
    current: &mut BTreeMap<String, String>,
    (from, to): (Lsn, Lsn),
    vanished: VanishedPolicy,
) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    for table in tables {
        let mut mine: Vec<&CaptureInstance> = instances
            .iter()
            .filter(|i| &i.table.id() == table)
            .collect();
        mine.sort_by_key(|i| i.start_lsn);
        let fresh = |mine: &[&CaptureInstance]| {
            // The newest instance that already existed at `from`, else the oldest.
            mine.iter().rposition(|i| i.start_lsn <= from).unwrap_or(0)
        };
        let index = match current.get(table).map(String::as_str) {
            Some(DROPPED) if mine.is_empty() => continue,
            Some(DROPPED) => fresh(&mine),
            None if mine.is_empty() => {
                return Err(PlanError::NoInstance {
                    table: table.clone(),
                });
            }
            None => fresh(&mine),
            Some(name) => match mine.iter().position(|i| i.name == name) {
                Some(index) => index,
                None => {
                    // Whatever replaced it starts after changes never read.
                    let newest = mine.last().map(|i| i.start_lsn.to_string());
                    if vanished == VanishedPolicy::Fail {
                        return Err(PlanError::InstanceDisappeared {
                            table: table.clone(),
                            instance: name.to_owned(),
                            from,
                            to: newest.unwrap_or_else(|| "now (no instance left)".into()),
                        });
                    }
                    plan.dropped.push(Dropped {
                        table: table.clone(),
                        instance: name.to_owned(),
                        from,
                        replaced_by: mine.last().map(|i| i.name.clone()),
                    });
                    if mine.is_empty() {
                        current.insert(table.clone(), DROPPED.to_owned());
                        continue;
                    }
                    mine.len() - 1
                }
            },
        };
        let instance = mine[index];
        match mine.get(index + 1) {
            Some(next) if next.start_lsn <= to => {
                let end = next.start_lsn.decrement();
                if from <= end {
                    plan.reads.push(Read {
                        instance: instance.clone(),
                        from,
                        to: end,
                    });
                }
                plan.switches.push(Switch {
                    table: table.clone(),
                    from: instance.name.clone(),
                    to: (*next).clone(),
                    at: next.start_lsn,
                    schema_changed: next.table != instance.table,
                });
                plan.reads.push(Read {
                    instance: (*next).clone(),
                    from: from.max(next.start_lsn),
                    to,
                });
                current.insert(table.clone(), next.name.clone());
            }
            _ => {
                plan.reads.push(Read {
                    instance: instance.clone(),
                    from,
                    to,
                });
                current.insert(table.clone(), instance.name.clone());
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::TableSchema;

    fn lsn(n: u8) -> Lsn {
        let mut bytes = [0; 10];
        bytes[9] = n;
        Lsn(bytes)
    }

    fn instance(name: &str, table: &str, start: u8) -> CaptureInstance {
        CaptureInstance {
            name: name.into(),
            table: TableSchema {
                schema: "dbo".into(),
                table: table.into(),
                columns: vec![],
                key: vec![],
            },
            start_lsn: lsn(start),
        }
    }

    #[test]
    fn one_instance_is_read_over_the_whole_window() {
        let mut current = BTreeMap::new();
        let instances = [instance("dbo_customers", "customers", 1)];
        let plan = plan(
            &["dbo.customers".into()],
            &instances,
            &mut current,
            (lsn(5), lsn(9)),
            VanishedPolicy::Fail,
        )
        .expect("plan");
        assert_eq!(plan.reads.len(), 1);
        assert_eq!((plan.reads[0].from, plan.reads[0].to), (lsn(5), lsn(9)));
        assert!(plan.switches.is_empty());
        assert_eq!(current["dbo.customers"], "dbo_customers");
    }

    #[test]
    fn a_second_instance_is_switched_to_at_its_start_lsn() {
        let mut current =
            BTreeMap::from([("dbo.customers".to_owned(), "dbo_customers".to_owned())]);
        let instances = [
            instance("dbo_customers_v2", "customers", 7),
            instance("dbo_customers", "customers", 1),
        ];
        let plan = plan(
            &["dbo.customers".into()],
            &instances,
            &mut current,
            (lsn(5), lsn(9)),
            VanishedPolicy::Fail,
        )
        .expect("plan");
        let reads: Vec<_> = plan
            .reads
            .iter()
            .map(|r| (r.instance.name.as_str(), r.from, r.to))
            .collect();
        assert_eq!(
            reads,
            vec![
                ("dbo_customers", lsn(5), lsn(6)),
                ("dbo_customers_v2", lsn(7), lsn(9))
            ]
        );
        assert_eq!(plan.switches.len(), 1);
        assert_eq!(plan.switches[0].at, lsn(7));
        assert_eq!(current["dbo.customers"], "dbo_customers_v2");

        // Next pass: only the new instance.
        let plan2 = super::plan(
            &["dbo.customers".into()],
            &instances,
            &mut current,
            (lsn(10), lsn(12)),
            VanishedPolicy::Fail,
        )
        .expect("plan");
        assert_eq!(plan2.reads[0].instance.name, "dbo_customers_v2");
        assert!(plan2.switches.is_empty());
    }

    #[test]
    fn a_new_instance_beyond_the_window_waits() {
        let mut current = BTreeMap::new();
        let instances = [
            instance("a", "customers", 1),
            instance("b", "customers", 20),
        ];
        let plan = plan(
            &["dbo.customers".into()],
            &instances,
            &mut current,
            (lsn(5), lsn(9)),
            VanishedPolicy::Fail,
        )
        .expect("plan");
        assert_eq!(plan.reads[0].instance.name, "a");
        assert!(plan.switches.is_empty());
    }

    #[test]
    fn a_disappeared_instance_is_an_error_naming_table_and_range() {
        let mut current =
            BTreeMap::from([("dbo.customers".to_owned(), "dbo_customers".to_owned())]);
        let instances = [instance("dbo_customers_new", "customers", 30)];
        let error = plan(
            &["dbo.customers".into()],
            &instances,
            &mut current,
            (lsn(5), lsn(40)),
            VanishedPolicy::Fail,
        )
        .expect_err("gone");
        let text = error.to_string();
        assert!(
            text.contains("dbo.customers") && text.contains("dbo_customers disappeared"),
            "{text}"
        );
        assert!(
            text.contains(&lsn(5).to_string()) && text.contains(&lsn(30).to_string()),
            "{text}"
        );
        let error = plan(
            &["dbo.orders".into()],
            &instances,
            &mut BTreeMap::new(),
            (lsn(5), lsn(40)),
            VanishedPolicy::Drop,
        )
        .expect_err("none");
        assert!(matches!(error, PlanError::NoInstance { .. }));
    }

    /// Debezium's way: the vanished instance is dropped, the table's newer instance read
    /// from where it starts; with none left, the table waits for CDC to be enabled again.
    #[test]
    fn a_disappeared_instance_is_dropped_by_default() {
        let tables = ["dbo.customers".to_owned()];
        let mut current =
            BTreeMap::from([("dbo.customers".to_owned(), "dbo_customers".to_owned())]);
        let again = [instance("dbo_customers_new", "customers", 30)];
        let plan = plan(
            &tables,
            &again,
            &mut current,
            (lsn(5), lsn(40)),
            VanishedPolicy::Drop,
        )
        .expect("dropped");
        assert_eq!(
            plan.dropped,
            vec![Dropped {
                table: "dbo.customers".into(),
                instance: "dbo_customers".into(),
                from: lsn(5),
                replaced_by: Some("dbo_customers_new".into()),
            }]
        );
        assert_eq!(plan.reads[0].instance.name, "dbo_customers_new");
        assert_eq!(current["dbo.customers"], "dbo_customers_new");

        let mut current =
            BTreeMap::from([("dbo.customers".to_owned(), "dbo_customers".to_owned())]);
        let none = super::plan(
            &tables,
            &[],
            &mut current,
            (lsn(5), lsn(40)),
            VanishedPolicy::Drop,
        )
        .expect("dropped");
        assert_eq!(none.dropped.len(), 1);
        assert!(none.reads.is_empty());
        let later = super::plan(
            &tables,
            &[],
            &mut current,
            (lsn(41), lsn(50)),
            VanishedPolicy::Drop,
        )
        .expect("still waiting");
        assert!(later.reads.is_empty() && later.dropped.is_empty());
        let enabled_again = super::plan(
            &tables,
            &again,
            &mut current,
            (lsn(51), lsn(60)),
            VanishedPolicy::Drop,
        )
        .expect("read again");
        assert_eq!(enabled_again.reads[0].instance.name, "dbo_customers_new");
    }
}
