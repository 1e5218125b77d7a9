//! A column value in PostgreSQL's text form (what pgoutput and COPY send; user data such
//! as arrays, hstore and numerics is shaped by whoever wrote the row): the mapping to
//! Debezium's JSON must give valid JSON or a reason, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_capture::postgres::types::{Kind, push_value};
use sluice_capture::sqlserver::types::{BinaryMode, DecimalMode};

fn kind(selector: u8) -> Kind {
    let scalar = |n: u8| match n % 36 {
        0 => Kind::Bool,
        1 => Kind::Int16,
        2 => Kind::Int32,
        3 => Kind::Int64,
        4 => Kind::Float32,
        5 => Kind::Float64,
        6 => Kind::Numeric(None),
        7 => Kind::Numeric(Some((10, 2))),
        8 => Kind::Numeric(Some((38, 0))),
        9 => Kind::Money { digits: 2, scale: 2 },
        10 => Kind::Text,
        11 => Kind::Named("io.debezium.data.Json"),
        12 => Kind::Bytea(BinaryMode::Bytes),
        13 => Kind::Date,
        14 => Kind::Time { micros: false },
        15 => Kind::Time { micros: true },
        16 => Kind::TimeTz,
        17 => Kind::Timestamp { micros: true },
        18 => Kind::TimestampTz { width: 6 },
        19 => Kind::Interval { iso: false },
        20 => Kind::Enum("mood".into()),
        21 => Kind::Hstore { map: false },
        22 => Kind::Hstore { map: true },
        23 => Kind::Interval { iso: true },
        24 => Kind::Bytea(BinaryMode::Hex),
        25 => Kind::Bit,
        26 => Kind::Bits { length: 64 },
        27 => Kind::Point,
        28 => Kind::ConnectDate,
        29 => Kind::ConnectTime,
        30 => Kind::ConnectTimestamp,
        31 => Kind::Money { digits: 0, scale: 2 },
        32 => Kind::Money { digits: 3, scale: 2 },
        33 => Kind::Timestamp { micros: false },
        34 => Kind::Bytea(BinaryMode::Base64UrlSafe),
        _ => Kind::Named("io.debezium.data.TsVector"),
    };
    if selector >= 128 {
        Kind::Array(Box::new(scalar(selector - 128)))
    } else {
        scalar(selector)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let kind = kind(selector);
    for mode in [
        DecimalMode::Precise,
        DecimalMode::Double,
        DecimalMode::String,
    ] {
        let mut out = String::new();
        if push_value(&mut out, &kind, text, mode).is_ok() {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&out) {
                panic!("{kind:?} {text:?} ({mode:?}) gave invalid JSON {out:?}: {e}");
            }
        }
    }
});
