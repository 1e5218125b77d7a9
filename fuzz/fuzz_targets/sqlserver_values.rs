//! A SQL Server column value, as capture maps it to Debezium's JSON for every column type
//! and value mode: valid JSON or a reason, never a panic. The values are built from the
//! input bytes over every `SqlValue` form, including ones tiberius would not give for the
//! column's type (a mismatch must be a reason, not a panic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_capture::sqlserver::catalog::ColumnCatalog;
use sluice_capture::sqlserver::types::{
    BinaryMode, Column, DecimalMode, SqlType, SqlValue, TimePrecision, ValueModes, field_schema,
    push_key_value, push_value,
};

/// Reads fixed-size numbers off the front of the input.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn rest_text(&mut self) -> String {
        String::from_utf8_lossy(std::mem::take(&mut self.0)).into_owned()
    }
}

fn sql_type(b: &mut Bytes<'_>) -> SqlType {
    let (p, s) = (b.u8(), b.u8());
    match b.u8() % 20 {
        0 => SqlType::Bit,
        1 => SqlType::TinyInt,
        2 => SqlType::SmallInt,
        3 => SqlType::Int,
        4 => SqlType::BigInt,
        5 => SqlType::Real,
        6 => SqlType::Float,
        7 => SqlType::Text,
        8 => SqlType::Xml,
        9 => SqlType::UniqueIdentifier,
        10 => SqlType::Binary,
        11 => SqlType::Decimal {
            precision: p,
            scale: s,
        },
        12 => SqlType::Money,
        13 => SqlType::SmallMoney,
        14 => SqlType::Date,
        15 => SqlType::Time { scale: s },
        16 => SqlType::DateTime,
        17 => SqlType::SmallDateTime,
        18 => SqlType::DateTime2 { scale: s },
        _ => SqlType::DateTimeOffset { scale: s },
    }
}

fn sql_value(b: &mut Bytes<'_>) -> SqlValue {
    match b.u8() % 18 {
        0 => SqlValue::Null,
        1 => SqlValue::Bit(b.u8() & 1 == 1),
        2 => SqlValue::U8(b.u8()),
        3 => SqlValue::I16(i16::from_le_bytes(b.take())),
        4 => SqlValue::I32(i32::from_le_bytes(b.take())),
        5 => SqlValue::I64(i64::from_le_bytes(b.take())),
        6 => SqlValue::F32(f32::from_le_bytes(b.take())),
        7 => SqlValue::F64(f64::from_le_bytes(b.take())),
        8 => SqlValue::Numeric {
            value: i128::from_le_bytes(b.take()),
            scale: b.u8(),
        },
        9 => SqlValue::DateTime {
            days: i32::from_le_bytes(b.take()),
            fragments: u32::from_le_bytes(b.take()),
        },
        10 => SqlValue::SmallDateTime {
            days: u16::from_le_bytes(b.take()),
            minutes: u16::from_le_bytes(b.take()),
        },
        11 => SqlValue::Date {
            days: u32::from_le_bytes(b.take()),
        },
        12 => SqlValue::Time {
            increments: u64::from_le_bytes(b.take()),
            scale: b.u8(),
        },
        13 => SqlValue::DateTime2 {
            days: u32::from_le_bytes(b.take()),
            increments: u64::from_le_bytes(b.take()),
            scale: b.u8(),
        },
        14 => SqlValue::DateTimeOffset {
            days: u32::from_le_bytes(b.take()),
            increments: u64::from_le_bytes(b.take()),
            scale: b.u8(),
            offset_minutes: i16::from_le_bytes(b.take()),
        },
        15 => SqlValue::Binary(b.rest_text().into_bytes()),
        16 => SqlValue::Guid(b.rest_text()),
        _ => SqlValue::String(b.rest_text()),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let modes = b.u8();
    let column = Column {
        name: "c".into(),
        sql_type: sql_type(&mut b),
        optional: modes & 1 == 1,
        catalog: ColumnCatalog::default(),
        mask: None,
    };
    let value = sql_value(&mut b);
    let modes = ValueModes {
        decimal: [
            DecimalMode::Precise,
            DecimalMode::Double,
            DecimalMode::String,
        ][usize::from(modes >> 1) % 3],
        time: if modes & 8 == 0 {
            TimePrecision::Adaptive
        } else {
            TimePrecision::Connect
        },
        binary: [
            BinaryMode::Bytes,
            BinaryMode::Base64,
            BinaryMode::Base64UrlSafe,
            BinaryMode::Hex,
        ][usize::from(modes >> 4) % 4],
    };
    let _ = field_schema(&column, modes);
    for key in [false, true] {
        let mut out = String::new();
        let mapped = if key {
            push_key_value(&mut out, &column, &value, modes)
        } else {
            push_value(&mut out, &column, &value, modes)
        };
        if mapped.is_ok() {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&out) {
                panic!("{column:?} {value:?} gave invalid JSON {out:?}: {e}");
            }
        }
    }
});
