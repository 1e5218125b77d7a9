//! Test fixtures: `dbo.customers` as in `samples/README.md`, and the sample rows as
//! tiberius would read them.

use crate::envelope::{EventSettings, TableSchema};
use crate::sqlserver::types::{Column, DecimalMode, SqlType, SqlValue};

pub fn settings(schemas: bool) -> EventSettings {
    EventSettings {
        prefix: "server1".into(),
        database: "testDB".into(),
        version: "3.0.0.Final".into(),
        decimal_mode: DecimalMode::Precise,
        time_precision: Default::default(),
        binary_mode: Default::default(),
        schemas,
    }
}

fn column(name: &str, sql_type: SqlType, optional: bool) -> Column {
    Column {
        name: name.into(),
        sql_type,
        optional,
        catalog: Default::default(),
        mask: None,
    }
}

pub fn customers() -> TableSchema {
    TableSchema {
        schema: "dbo".into(),
        table: "customers".into(),
        columns: vec![
            column("id", SqlType::Int, false),
            column("first_name", SqlType::Text, false),
            column("last_name", SqlType::Text, false),
            column("email", SqlType::Text, true),
            column(
                "credit_limit",
                SqlType::Decimal {
                    precision: 12,
                    scale: 2,
                },
                true,
            ),
            column("birth_date", SqlType::Date, true),
            column("created_at", SqlType::DateTime2 { scale: 3 }, false),
            column("updated_at", SqlType::DateTime2 { scale: 7 }, false),
            column("customer_guid", SqlType::UniqueIdentifier, false),
            column("is_active", SqlType::Bit, false),
        ],
        key: vec![0],
    }
}

/// A customers row: `birth` and `created_day`/`updated_day` are days since 0001-01-01,
/// `created_ms` ms and `updated_100ns` 100 ns since midnight.
#[allow(clippy::too_many_arguments)]
pub fn customer(
    id: i32,
    first: &str,
    last: &str,
    email: Option<&str>,
    credit_cents: i128,
    birth: Option<u32>,
    created: (u32, u64),
    updated: (u32, u64),
    guid: &str,
    active: bool,
) -> Vec<SqlValue> {
    vec![
        SqlValue::I32(id),
        SqlValue::String(first.into()),
        SqlValue::String(last.into()),
        email.map_or(SqlValue::Null, |e| SqlValue::String(e.into())),
        SqlValue::Numeric {
            value: credit_cents,
            scale: 2,
        },
        birth.map_or(SqlValue::Null, |days| SqlValue::Date { days }),
        SqlValue::DateTime2 {
            days: created.0,
            increments: created.1,
            scale: 3,
        },
        SqlValue::DateTime2 {
            days: updated.0,
            increments: updated.1,
            scale: 7,
        },
        SqlValue::Guid(guid.to_ascii_lowercase()),
        SqlValue::Bit(active),
    ]
}

pub fn sally() -> Vec<SqlValue> {
    customer(
        1001,
        "Sally",
        "Thomas",
        Some("sally.thomas@example.com"),
        500_000,
        Some(724_713),
        (738_889, 34_200_125),
        (739_920, 432_001_234_567),
        "6F9619FF-8B86-D011-B42D-00C04FC964FF",
        true,
    )
}

pub fn sally_updated() -> Vec<SqlValue> {
    let mut row = sally();
    row[3] = SqlValue::String("sally.t@example.org".into());
    row[4] = SqlValue::Numeric {
        value: 750_025,
        scale: 2,
    };
    row[7] = SqlValue::DateTime2 {
        days: 739_939,
        increments: 297_621_234_567,
        scale: 7,
    };
    row
}

pub fn anne() -> Vec<SqlValue> {
    customer(
        1004,
        "Anne",
        "Kretchmar",
        Some("annek@noanswer.example.org"),
        32_000,
        Some(730_118),
        (739_939, 29_731_250),
        (739_939, 297_312_500_000),
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        true,
    )
}

pub fn george() -> Vec<SqlValue> {
    customer(
        1002,
        "George",
        "Bailey",
        Some("gbailey@example.org"),
        125_050,
        Some(720_074),
        (738_926, 50_710_500),
        (739_921, 315_120_000_010),
        "0E984725-C51C-4BF4-9960-E1C80E27ABA0",
        true,
    )
}

/// Line `n` (1-based) of a sample file: its raw `key` and `value` JSON text.
pub fn sample_line(file: &str, n: usize) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        key: &'a serde_json::value::RawValue,
        #[serde(borrow)]
        value: &'a serde_json::value::RawValue,
    }
    let text = match file {
        "customers.jsonl" => include_str!("../../../samples/customers.jsonl"),
        "customers.schema.jsonl" => include_str!("../../../samples/customers.schema.jsonl"),
        other => panic!("no sample {other}"),
    };
    let line = text.lines().nth(n - 1).expect("sample line");
    let parsed: Line<'_> = serde_json::from_str(line).expect("sample JSON");
    (parsed.key.get().to_owned(), parsed.value.get().to_owned())
}
