//! PostgreSQL types as Debezium's PostgreSQL connector maps them
//! (`PostgresValueConverter`, the connector's documented type table), from the values'
//! text form (pgoutput's, and the snapshot's COPY, both under
//! [`super::protocol::SESSION_SETTINGS`]) to JSON and the Kafka Connect field schema.
//!
//! Time values: `time.precision.mode=adaptive` (`time(0-3)`/`timestamp(0-3)` in ms,
//! 4-6 in µs; `adaptive_time_microseconds`: every `time` in µs; `connect`: Kafka
//! Connect's `Date`, `Time` and `Timestamp`, in ms); `timestamptz` is `ZonedTimestamp`
//! in UTC with the column's fraction width, `timetz` `ZonedTime`. `interval` is
//! `MicroDuration` (a month is 30.4375 days, as Debezium's `DAYS_PER_MONTH_AVG`) or, with
//! `interval.handling.mode=string`, ISO 8601 text. `hstore` is JSON text
//! (`hstore.handling.mode=json`) or a map; `bytea` as `binary.handling.mode` says;
//! `money` a decimal of scale 2. The modes that change a column's type are decided once,
//! when its table is read ([`PgModes`], [`kind_of`]); the decimal mode is applied as
//! values are written.

use base64::Engine;

use crate::sqlserver::types::{
    BinaryMode, DecimalMode, binary_text, push_float, push_i64, push_json_string, unscaled_bytes,
};

/// `time.precision.mode` of Debezium's PostgreSQL connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PgTimePrecision {
    /// `io.debezium.time.*` at the column's precision.
    #[default]
    Adaptive,
    /// As `adaptive`, but every `time` in µs (`MicroTime`).
    AdaptiveTimeMicroseconds,
    /// Kafka Connect's `Date`, `Time` and `Timestamp`: ms, finer digits cut.
    Connect,
}

/// The connector's modes that decide a column's type (`*.handling.mode`,
/// `time.precision.mode`), and the database's money digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgModes {
    pub time: PgTimePrecision,
    pub binary: BinaryMode,
    /// `interval.handling.mode = string`: ISO 8601 text (`io.debezium.time.Interval`).
    pub interval_iso: bool,
    /// `hstore.handling.mode = map`: a Kafka Connect map of strings.
    pub hstore_map: bool,
    /// The fraction digits of `money` under the database's own `lc_monetary` (2 in most
    /// locales, 0 in `ja_JP`, 3 in some): capture reads money in the C locale, whose text
    /// always shows 2, so this says what the stored amount means.
    pub money_digits: u32,
    /// `money.fraction.digits`: the scale money is published at (precise mode).
    pub money_scale: u32,
}

impl Default for PgModes {
    fn default() -> Self {
        PgModes {
            time: PgTimePrecision::default(),
            binary: BinaryMode::default(),
            interval_iso: false,
            hstore_map: false,
            money_digits: 2,
            money_scale: 2,
        }
    }
}

/// What a column holds, as far as the mapping cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// `numeric(p,s)`; `None`: no declared scale (`VariableScaleDecimal`).
    Numeric(Option<(u32, u32)>),
    /// `money`, stored in units of 10^-`digits` (see [`PgModes::money_digits`]),
    /// published at `scale` (`money.fraction.digits`).
    Money {
        digits: u32,
        scale: u32,
    },
    Text,
    /// Text with a Debezium logical name (`Uuid`, `Json`, `Xml`).
    Named(&'static str),
    /// `bytea`, as `binary.handling.mode` writes it.
    Bytea(BinaryMode),
    /// `bit(1)` and `varbit(1)`: a boolean.
    Bit,
    /// `bit(n)` and `varbit(n)`, n > 1: `io.debezium.data.Bits`, the bits as a
    /// little-endian number.
    Bits {
        length: u32,
    },
    Date,
    /// `time(p)`, p ≤ 3: ms (`Time`); else µs (`MicroTime`).
    Time {
        micros: bool,
    },
    TimeTz,
    Timestamp {
        micros: bool,
    },
    /// `time.precision.mode = connect`: Kafka Connect's `Date` (days), `Time` (ms) and
    /// `Timestamp` (ms).
    ConnectDate,
    ConnectTime,
    ConnectTimestamp,
    /// `timestamptz(p)`: the fraction width.
    TimestampTz {
        width: u32,
    },
    /// `point`: `io.debezium.data.geometry.Point` (x, y, its WKB, no SRID).
    Point,
    /// `iso`: `interval.handling.mode = string`.
    Interval {
        iso: bool,
    },
    /// An enum type and its labels.
    Enum(String),
    /// `map`: `hstore.handling.mode = map`.
    Hstore {
        map: bool,
    },
    Array(Box<Kind>),
}

/// A user type the catalog describes (enums, domains, hstore, their arrays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserType {
    pub name: String,
    /// `typtype`: `e` enum, `d` domain, `b` base.
    pub kind: u8,
    /// Arrays: the element type; domains: the base type.
    pub element: u32,
    pub enum_labels: Vec<String>,
}

/// The kind of a column of type `oid` with `typmod` under `modes` (`None`: a type
/// Debezium does not map either; the column is left out with a warning). `user` looks
/// up a non-built-in type.
pub fn kind_of(
    oid: u32,
    typmod: i32,
    modes: PgModes,
    user: &dyn Fn(u32) -> Option<UserType>,
) -> Option<Kind> {
    let precision = |default: i32| if typmod >= 0 { typmod } else { default };
    let connect = modes.time == PgTimePrecision::Connect;
    let array = |element: u32| {
        Kind::Array(Box::new(
            kind_of(element, typmod, modes, &|_| None).unwrap_or(Kind::Text),
        ))
    };
    Some(match oid {
        16 => Kind::Bool,
        21 => Kind::Int16,
        23 => Kind::Int32,
        20 | 26 => Kind::Int64,
        700 => Kind::Float32,
        701 => Kind::Float64,
        1700 => Kind::Numeric((typmod >= 4).then(|| {
            let t = (typmod - 4) as u32;
            (t >> 16, t & 0xffff)
        })),
        790 => Kind::Money {
            digits: modes.money_digits,
            scale: modes.money_scale,
        },
        25 | 1043 | 1042 | 18 | 19 | 869 | 650 | 829 | 774 => Kind::Text,
        // Ranges (int4, num, ts, tstz, date, int8): their text, as Debezium.
        3904 | 3906 | 3908 | 3910 | 3912 | 3926 => Kind::Text,
        3614 => Kind::Named("io.debezium.data.TsVector"),
        600 => Kind::Point,
        // bit(n) / varbit(n) (varbit without a length: the JDBC driver's unknown length).
        1560 | 1562 => {
            let length = if typmod >= 0 { typmod } else { i32::MAX };
            if length <= 1 {
                Kind::Bit
            } else {
                Kind::Bits {
                    length: length as u32,
                }
            }
        }
        2950 => Kind::Named("io.debezium.data.Uuid"),
        114 | 3802 => Kind::Named("io.debezium.data.Json"),
        142 => Kind::Named("io.debezium.data.Xml"),
        17 => Kind::Bytea(modes.binary),
        1082 if connect => Kind::ConnectDate,
        1082 => Kind::Date,
        1083 if connect => Kind::ConnectTime,
        1083 => Kind::Time {
            micros: modes.time == PgTimePrecision::AdaptiveTimeMicroseconds || precision(6) > 3,
        },
        1266 => Kind::TimeTz,
        1114 if connect => Kind::ConnectTimestamp,
        1114 => Kind::Timestamp {
            micros: precision(6) > 3,
        },
        1184 => Kind::TimestampTz {
            width: precision(6) as u32,
        },
        1186 => Kind::Interval {
            iso: modes.interval_iso,
        },
        1000 => array(16),
        1005 => array(21),
        1007 => array(23),
        1016 => array(20),
        1021 => array(700),
        1022 => array(701),
        1231 => Kind::Array(Box::new(Kind::Numeric(None))),
        // Text-like arrays (name[], 1003, has no schema in Debezium: left out).
        1009 | 1015 | 1014 | 1002 => array(25),
        1041 | 651 | 1040 | 775 | 3905 | 3907 | 3909 | 3911 | 3913 | 3927 => array(25),
        1028 => array(26),
        1001 => array(17),
        1182 => array(1082),
        1183 => array(1083),
        1270 => array(1266),
        2951 => array(2950),
        199 | 3807 => array(114),
        1115 => array(1114),
        1185 => array(1184),
        _ => {
            let t = user(oid)?;
            match t.kind {
                b'e' => Kind::Enum(t.enum_labels.join(",")),
                b'd' => kind_of(t.element, typmod, modes, user)?,
                _ if t.name == "hstore" => Kind::Hstore {
                    map: modes.hstore_map,
                },
                _ if t.name == "citext" || t.name == "isbn" => Kind::Text,
                _ if t.name == "ltree" => Kind::Named("io.debezium.data.Ltree"),
                _ if t.element != 0 => Kind::Array(Box::new(kind_of(t.element, -1, modes, user)?)),
                _ => return None,
            }
        }
    })
}

/// The Kafka Connect schema of a field of `kind` (keys in JsonConverter's order);
/// `field` is `None` for an array's items.
pub fn schema(kind: &Kind, optional: bool, field: Option<&str>, mode: DecimalMode) -> String {
    let decimal = |scale: u32, precision: Option<u32>| -> (String, Option<String>) {
        let params = match precision {
            Some(p) => format!(r#"{{"scale":"{scale}","connect.decimal.precision":"{p}"}}"#),
            None => format!(r#"{{"scale":"{scale}"}}"#),
        };
        (
            r#""type":"bytes","optional":OPT,"name":"org.apache.kafka.connect.data.Decimal","version":1"#.into(),
            Some(params),
        )
    };
    let plain = |t: &str| (format!(r#""type":"{t}","optional":OPT"#), None);
    let named = |t: &str, name: &str| {
        (
            format!(r#""type":"{t}","optional":OPT,"name":"{name}","version":1"#),
            None,
        )
    };
    let (head, params): (String, Option<String>) = match kind {
        Kind::Bool => plain("boolean"),
        Kind::Int16 => plain("int16"),
        Kind::Int32 => plain("int32"),
        Kind::Int64 => plain("int64"),
        Kind::Float32 => plain("float"),
        Kind::Float64 => plain("double"),
        Kind::Numeric(shape) => match (mode, shape) {
            (DecimalMode::Double, _) => plain("double"),
            (DecimalMode::String, _) => plain("string"),
            (DecimalMode::Precise, Some((p, s))) => decimal(*s, Some(*p)),
            (DecimalMode::Precise, None) => (
                r#""type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":OPT,"name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal""#.into(),
                None,
            ),
        },
        Kind::Money { scale, .. } => match mode {
            DecimalMode::Double => plain("double"),
            DecimalMode::String => plain("string"),
            DecimalMode::Precise => decimal(*scale, None),
        },
        Kind::Text => plain("string"),
        Kind::Named(name) => named("string", name),
        Kind::Bytea(BinaryMode::Bytes) => plain("bytes"),
        Kind::Bytea(_) => plain("string"),
        Kind::Bit => plain("boolean"),
        Kind::Bits { length } => (
            r#""type":"bytes","optional":OPT,"name":"io.debezium.data.Bits","version":1"#.into(),
            Some(format!(r#"{{"length":"{length}"}}"#)),
        ),
        Kind::ConnectDate => named("int32", "org.apache.kafka.connect.data.Date"),
        Kind::ConnectTime => named("int32", "org.apache.kafka.connect.data.Time"),
        Kind::ConnectTimestamp => named("int64", "org.apache.kafka.connect.data.Timestamp"),
        Kind::Date => named("int32", "io.debezium.time.Date"),
        Kind::Time { micros: false } => named("int32", "io.debezium.time.Time"),
        Kind::Time { micros: true } => named("int64", "io.debezium.time.MicroTime"),
        Kind::TimeTz => named("string", "io.debezium.time.ZonedTime"),
        Kind::Timestamp { micros: false } => named("int64", "io.debezium.time.Timestamp"),
        Kind::Timestamp { micros: true } => named("int64", "io.debezium.time.MicroTimestamp"),
        Kind::TimestampTz { .. } => named("string", "io.debezium.time.ZonedTimestamp"),
        Kind::Point => (
            r#""type":"struct","fields":[{"type":"double","optional":false,"field":"x"},{"type":"double","optional":false,"field":"y"},{"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":OPT,"name":"io.debezium.data.geometry.Point","version":1,"doc":"Geometry (POINT)""#.into(),
            None,
        ),
        Kind::Interval { iso: false } => named("int64", "io.debezium.time.MicroDuration"),
        Kind::Interval { iso: true } => named("string", "io.debezium.time.Interval"),
        Kind::Enum(labels) => (
            r#""type":"string","optional":OPT,"name":"io.debezium.data.Enum","version":1"#.into(),
            Some({
                let mut p = String::from(r#"{"allowed":"#);
                push_json_string(&mut p, labels);
                p.push('}');
                p
            }),
        ),
        Kind::Hstore { map: false } => named("string", "io.debezium.data.Json"),
        Kind::Hstore { map: true } => (
            r#""type":"map","keys":{"type":"string","optional":false},"values":{"type":"string","optional":true},"optional":OPT"#.into(),
            None,
        ),
        Kind::Array(item) => (
            format!(
                r#""type":"array","items":{},"optional":OPT"#,
                schema(item, true, None, mode)
            ),
            None,
        ),
    };
    let mut out = String::from("{");
    out.push_str(&head.replacen("OPT", if optional { "true" } else { "false" }, 1));
    if let Some(params) = params {
        out.push_str(",\"parameters\":");
        out.push_str(&params);
    }
    if let Some(field) = field {
        out.push_str(",\"field\":");
        push_json_string(&mut out, field);
    }
    out.push('}');
    out
}

/// A value that does not parse as its column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} value {text:?}: {reason}")]
pub struct ValueError {
    pub kind: Kind,
    pub text: String,
    pub reason: &'static str,
}

/// Appends the JSON value of `text` (a value of `kind` in PostgreSQL's text form).
pub fn push_value(
    out: &mut String,
    kind: &Kind,
    text: &str,
    mode: DecimalMode,
) -> Result<(), ValueError> {
    let bad = |reason: &'static str| ValueError {
        kind: kind.clone(),
        text: text.chars().take(100).collect(),
        reason,
    };
    match kind {
        Kind::Bool => out.push_str(match text {
            "t" => "true",
            "f" => "false",
            _ => return Err(bad("not t or f")),
        }),
        Kind::Int16 | Kind::Int32 | Kind::Int64 => {
            let n: i64 = text.parse().map_err(|_| bad("not an integer"))?;
            push_i64(out, n);
        }
        Kind::Float32 => {
            let v: f32 = parse_float(text).ok_or_else(|| bad("not a number"))? as f32;
            push_float(out, v as f64, &format!("{v:e}"));
        }
        Kind::Float64 => {
            let v = parse_float(text).ok_or_else(|| bad("not a number"))?;
            push_float(out, v, &format!("{v:e}"));
        }
        Kind::Numeric(shape) => {
            if text == "NaN" || text.ends_with("Infinity") {
                // Debezium: not representable as a decimal.
                match mode {
                    DecimalMode::Double => {
                        push_float(out, parse_float(text).unwrap_or(f64::NAN), "0e0")
                    }
                    DecimalMode::String => push_json_string(out, text),
                    DecimalMode::Precise => out.push_str("null"),
                }
                return Ok(());
            }
            let split = || split_decimal(text).ok_or_else(|| bad("not a decimal"));
            match (mode, shape) {
                (DecimalMode::Double, _) => {
                    let v: f64 = text.parse().map_err(|_| bad("not a decimal"))?;
                    push_float(out, v, &format!("{v:e}"));
                }
                (DecimalMode::String, _) => {
                    split()?;
                    push_json_string(out, text)
                }
                (DecimalMode::Precise, Some((_, s))) => {
                    // Up to 38 digits (every numeric(p,s) with p <= 38): an i128.
                    match unscaled_i128(text, *s) {
                        Some(unscaled) => push_base64(out, &unscaled_bytes(unscaled)),
                        None => {
                            let (digits, scale) = split()?;
                            let digits = rescale(&digits, scale, *s);
                            push_base64(out, &twos_complement(&digits));
                        }
                    }
                }
                (DecimalMode::Precise, None) => {
                    let (digits, scale) = split()?;
                    out.push_str(&format!("{{\"scale\":{scale},\"value\":"));
                    push_base64(out, &twos_complement(&digits));
                    out.push('}');
                }
            }
        }
        Kind::Money {
            digits: stored,
            scale: published,
        } => {
            let cleaned: String = text
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
                .collect();
            let negative = cleaned.starts_with('-') || text.starts_with('(');
            let unsigned = cleaned.trim_start_matches('-');
            // The C locale's text shows the stored amount with 2 decimals: its digits are
            // the amount in units of 10^-stored.
            let (amount, scale) = split_decimal(unsigned).ok_or_else(|| bad("not money"))?;
            let amount = rescale(&amount, scale, 2);
            let sign = if negative { "-" } else { "" };
            match mode {
                // Debezium's `money.fraction.digits`: the amount at that scale, rounded
                // half up.
                DecimalMode::Precise => {
                    let scaled = rescale_half_up(&amount, *stored, *published);
                    push_base64(out, &twos_complement(&format!("{sign}{scaled}")))
                }
                DecimalMode::Double | DecimalMode::String => {
                    let plain = insert_point(&format!("{sign}{amount}"), *stored as usize);
                    if mode == DecimalMode::String {
                        push_json_string(out, &plain)
                    } else {
                        let v: f64 = plain.parse().map_err(|_| bad("not money"))?;
                        push_float(out, v, &format!("{v:e}"));
                    }
                }
            }
        }
        Kind::Text | Kind::Named(_) | Kind::Enum(_) => push_json_string(out, text),
        Kind::Bytea(binary) => {
            let hex = text.strip_prefix("\\x").ok_or_else(|| bad("not \\x hex"))?;
            let bytes = hex::decode(hex).map_err(|_| bad("not \\x hex"))?;
            match binary {
                BinaryMode::Bytes | BinaryMode::Base64 => push_base64(out, &bytes),
                _ => push_json_string(out, &binary_text(&bytes, *binary)),
            }
        }
        Kind::Bit => out.push_str(match text {
            "0" => "false",
            "1" => "true",
            _ => return Err(bad("not a bit")),
        }),
        Kind::Bits { .. } => {
            let bytes = bits_little_endian(text).ok_or_else(|| bad("not a bit string"))?;
            push_base64(out, &bytes);
        }
        Kind::Date | Kind::ConnectDate => {
            let days = match text {
                // PostgreSQL's infinite dates, as the JDBC driver hands them to Debezium
                // (`PGStatement.DATE_POSITIVE_INFINITY` / `DATE_NEGATIVE_INFINITY` ms).
                "infinity" => 9_223_372_036_825_200_000 / 86_400_000,
                "-infinity" => -9_223_372_036_832_400_000 / 86_400_000,
                _ => parse_date(text).ok_or_else(|| bad("not a date"))?,
            };
            push_i64(out, days);
        }
        Kind::Time { .. } | Kind::ConnectTime => {
            let us = parse_time(text).ok_or_else(|| bad("not a time"))?;
            let micros = matches!(kind, Kind::Time { micros: true });
            push_i64(out, if micros { us } else { us / 1_000 });
        }
        Kind::TimeTz => {
            let (time, offset) = split_offset(text).ok_or_else(|| bad("not a timetz"))?;
            let us = (parse_time(time).ok_or_else(|| bad("not a timetz"))? - offset * 1_000_000)
                .rem_euclid(86_400_000_000);
            out.push('"');
            push_clock(out, us);
            push_fraction(out, us % 1_000_000, None);
            out.push_str("Z\"");
        }
        Kind::Timestamp { .. } | Kind::ConnectTimestamp => {
            let micros = &matches!(kind, Kind::Timestamp { micros: true });
            // Infinite timestamps: the JDBC driver's sentinels in ms
            // (`PGStatement.DATE_POSITIVE_INFINITY`), saturated in µs.
            let value = match (text, micros) {
                ("infinity", false) => 9_223_372_036_825_200_000,
                ("-infinity", false) => -9_223_372_036_832_400_000,
                ("infinity", true) => i64::MAX,
                ("-infinity", true) => i64::MIN,
                _ => {
                    let us = parse_timestamp(text).ok_or_else(|| bad("not a timestamp"))?;
                    // PostgreSQL's last years (to 294276 AD) hold more µs since 1970 than
                    // 64 bits do: as Debezium (whose `MicroTimestamp` overflows and stops),
                    // such a value is refused; in ms (timestamp(0) to (3)) it fits.
                    let value = if *micros { us } else { us.div_euclid(1_000) };
                    i64::try_from(value).map_err(|_| {
                        bad("beyond io.debezium.time.MicroTimestamp's range (µs since 1970 in 64 bits, to 294247 AD)")
                    })?
                }
            };
            push_i64(out, value);
        }
        Kind::TimestampTz { width } => {
            if text == "infinity" || text == "-infinity" {
                push_json_string(out, text);
                return Ok(());
            }
            let (local, offset) = split_offset(text).ok_or_else(|| bad("not a timestamptz"))?;
            let us = parse_timestamp(local).ok_or_else(|| bad("not a timestamptz"))?
                - i128::from(offset) * 1_000_000;
            // Days fit in 64 bits (PostgreSQL's years have at most 7 digits); µs may not.
            let days = us.div_euclid(86_400_000_000) as i64;
            let of_day = us.rem_euclid(86_400_000_000) as i64;
            // Digits, signs and separators only: no escaping needed.
            out.push('"');
            push_civil(out, days);
            out.push('T');
            push_clock(out, of_day);
            push_fraction(out, of_day % 1_000_000, (*width > 0).then_some(*width));
            out.push_str("Z\"");
        }
        Kind::Point => {
            let (x, y) = text
                .strip_prefix('(')
                .and_then(|t| t.strip_suffix(')'))
                .and_then(|t| t.split_once(','))
                .and_then(|(x, y)| Some((parse_float(x)?, parse_float(y)?)))
                .ok_or_else(|| bad("not a point"))?;
            // OGC WKB, as Debezium's `Point.createValue`: byte order 1 (little-endian),
            // type 1 (point), x, y.
            let mut wkb = Vec::with_capacity(21);
            wkb.push(1);
            wkb.extend_from_slice(&1u32.to_le_bytes());
            wkb.extend_from_slice(&x.to_le_bytes());
            wkb.extend_from_slice(&y.to_le_bytes());
            out.push_str("{\"x\":");
            push_float(out, x, &format!("{x:e}"));
            out.push_str(",\"y\":");
            push_float(out, y, &format!("{y:e}"));
            out.push_str(",\"wkb\":");
            push_base64(out, &wkb);
            out.push_str(",\"srid\":null}");
        }
        Kind::Interval { iso: false } => {
            let us = parse_interval(text).ok_or_else(|| bad("not an ISO 8601 interval"))?;
            push_i64(out, us);
        }
        Kind::Interval { iso: true } => {
            let iso = interval_iso(text).ok_or_else(|| bad("not an ISO 8601 interval"))?;
            push_json_string(out, &iso);
        }
        Kind::Hstore { map: true } => {
            let pairs = parse_hstore(text).ok_or_else(|| bad("not an hstore"))?;
            out.push('{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, key);
                out.push(':');
                match value {
                    Some(v) => push_json_string(out, v),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
        Kind::Hstore { map: false } => {
            let pairs = parse_hstore(text).ok_or_else(|| bad("not an hstore"))?;
            let mut json = String::from("{");
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                push_json_string(&mut json, key);
                json.push(':');
                match value {
                    Some(v) => push_json_string(&mut json, v),
                    None => json.push_str("null"),
                }
            }
            json.push('}');
            push_json_string(out, &json);
        }
        Kind::Array(item) => {
            let items = parse_array(text).ok_or_else(|| bad("not an array"))?;
            out.push('[');
            for (i, value) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match value {
                    ArrayItem::Value(v) => push_value(out, item, v, mode)?,
                    ArrayItem::Null => out.push_str("null"),
                    // Debezium's element converter is handed the sub-array (the JDBC
                    // driver's nested Java array), which it cannot convert: null, with a
                    // warning.
                    ArrayItem::Nested => {
                        warn_multidimensional();
                        out.push_str("null")
                    }
                }
            }
            out.push(']');
        }
    }
    Ok(())
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

fn push_base64(out: &mut String, bytes: &[u8]) {
    out.push('"');
    base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
    out.push('"');
}

/// `-12.340` → (`-12340`, 3).
fn split_decimal(text: &str) -> Option<(String, u32)> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{}{int}{frac}", if negative { "-" } else { "" });
    Some((digits, frac.len() as u32))
}

/// `text` (`-123.45`) as an unscaled integer at `scale` (12345 at 2), when it fits an
/// i128 and has no more fraction digits than `scale`.
fn unscaled_i128(text: &str, scale: u32) -> Option<i128> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() || frac.len() > scale as usize {
        return None;
    }
    let mut value: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add((b - b'0') as i128)?;
    }
    value = value.checked_mul(10i128.checked_pow(scale - frac.len() as u32)?)?;
    Some(if negative { -value } else { value })
}

/// The unscaled digits of a value at `scale`, moved to `target` (PostgreSQL already
/// writes a `numeric(p,s)` with `s` digits; this only pads).
fn rescale(digits: &str, scale: u32, target: u32) -> String {
    if target >= scale {
        format!("{digits}{}", "0".repeat((target - scale) as usize))
    } else {
        digits[..digits.len() - (scale - target) as usize].to_owned()
    }
}

/// `digits` (unsigned) at `scale` brought to `target`, rounded half up (Java's
/// `setScale(target, HALF_UP)`).
fn rescale_half_up(digits: &str, scale: u32, target: u32) -> String {
    if target >= scale {
        return rescale(digits, scale, target);
    }
    let cut = (scale - target) as usize;
    let padded = format!("{digits:0>width$}", width = cut + 1);
    let (kept, dropped) = padded.split_at(padded.len() - cut);
    if dropped.as_bytes()[0] < b'5' {
        return kept.to_owned();
    }
    // Add one to the kept digits.
    let mut bytes = kept.as_bytes().to_vec();
    let mut at = bytes.len();
    loop {
        if at == 0 {
            bytes.insert(0, b'1');
            break;
        }
        at -= 1;
        if bytes[at] == b'9' {
            bytes[at] = b'0';
        } else {
            bytes[at] += 1;
            break;
        }
    }
    String::from_utf8(bytes).unwrap_or_default()
}

fn insert_point(digits: &str, scale: usize) -> String {
    if scale == 0 {
        return digits.to_owned();
    }
    let (sign, body) = digits
        .strip_prefix('-')
        .map_or(("", digits), |rest| ("-", rest));
    let body = format!("{:0>width$}", body, width = scale + 1);
    let (int, frac) = body.split_at(body.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Java's `BigInteger.toByteArray` of a decimal digit string of any length: minimal
/// big-endian two's complement.
pub fn twos_complement(digits: &str) -> Vec<u8> {
    let (negative, body) = match digits.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, digits),
    };
    // Magnitude, little-endian base 256.
    let mut magnitude: Vec<u8> = Vec::new();
    for d in body.bytes() {
        let mut carry = (d - b'0') as u32;
        for byte in magnitude.iter_mut() {
            let v = *byte as u32 * 10 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            magnitude.push(carry as u8);
            carry >>= 8;
        }
    }
    magnitude.push(0); // room for the sign bit
    if negative {
        let mut carry = 1u16;
        for byte in magnitude.iter_mut() {
            let v = (!*byte) as u16 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
    }
    magnitude.reverse();
    let mut start = 0;
    while start + 1 < magnitude.len() {
        let (b, next) = (magnitude[start], magnitude[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    magnitude[start..].to_vec()
}

/// `YYYY-MM-DD` of days since 1970-01-01 (years before 1 as Java prints them: `-0001`).
fn push_civil(out: &mut String, days: i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    if y > 9999 {
        out.push('+');
        push_i64(out, y);
    } else {
        if y < 0 {
            out.push('-');
        }
        push_padded(out, y.abs(), 4);
    }
    out.push('-');
    push_padded(out, m, 2);
    out.push('-');
    push_padded(out, d, 2);
}

/// `n` (not negative) in at least `width` digits, zeros in front.
fn push_padded(out: &mut String, n: i64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// `YYYY-MM-DD[ BC]` → days since 1970-01-01.
fn parse_date(text: &str) -> Option<i64> {
    match text.strip_suffix(" BC") {
        Some(date) => parse_date_of(date, true),
        None => parse_date_of(text, false),
    }
}

/// `YYYY-MM-DD`, a year before Christ if `bc` → days since 1970-01-01.
fn parse_date_of(date: &str, bc: bool) -> Option<i64> {
    let [y, m, d] = fields(date, b'-')?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if bc { 1 - y } else { y };
    Some(sluice_core::settings::days_from_civil(y, m, d))
}

/// `N` unsigned decimal numbers separated by `separator` (`2026-12-05`, `11:16:08`),
/// read byte by byte: it runs for every date and time of every event. At most 9 digits
/// each (PostgreSQL's years have 7), so that no sum made of them overflows.
fn fields<const N: usize>(text: &str, separator: u8) -> Option<[i64; N]> {
    let mut out = [0i64; N];
    let mut at = 0;
    let mut digits = 0;
    for b in text.bytes() {
        if b == separator {
            if digits == 0 || at + 1 == N {
                return None;
            }
            at += 1;
            digits = 0;
        } else if b.is_ascii_digit() && digits < 9 {
            out[at] = out[at] * 10 + (b - b'0') as i64;
            digits += 1;
        } else {
            return None;
        }
    }
    (digits > 0 && at + 1 == N).then_some(out)
}

/// `HH:MM:SS[.ffffff]` → µs since midnight.
fn parse_time(text: &str) -> Option<i64> {
    let (hms, frac) = text.split_once('.').unwrap_or((text, ""));
    let [h, m, s] = fields(hms, b':')?;
    // PostgreSQL's `time` allows 24:00:00; a leap second reads as :60.
    if h > 24 || m > 59 || s > 60 {
        return None;
    }
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The digits as µs: `.5` is 500000.
    let micros = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(6)
        .fold(0i64, |n, b| n * 10 + (b - b'0') as i64);
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + micros)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][ BC]` → µs since the epoch.
fn parse_timestamp(text: &str) -> Option<i128> {
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, " BC"),
        None => (text, ""),
    };
    let (date, time) = body.split_once(' ')?;
    let days = parse_date_of(date, !bc.is_empty())?;
    // 128 bits: PostgreSQL's last timestamps (294276 AD) are past i64's µs since 1970.
    Some(i128::from(days) * 86_400_000_000 + i128::from(parse_time(time)?))
}

/// Splits `...+HH[:MM[:SS]]` (or `-`) into the local part and the offset in seconds.
/// A BC value with an offset is refused (rare; better an error than a wrong instant).
fn split_offset(text: &str) -> Option<(&str, i64)> {
    if text.ends_with(" BC") {
        return None;
    }
    let time_start = text.find(' ').map_or(0, |i| i + 1);
    let at = time_start + text[time_start..].rfind(['+', '-'])?;
    let (local, offset) = text.split_at(at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut seconds = 0;
    for (i, part) in offset[1..].split(':').enumerate() {
        // Two digits each (PostgreSQL's offsets are within ±15:59:59).
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: i64 = part.parse().ok()?;
        seconds += n * [3_600, 60, 1].get(i)?;
    }
    Some((local, sign * seconds))
}

/// `HH:MM:SS` of µs since midnight.
fn push_clock(out: &mut String, of_day_us: i64) {
    let s = of_day_us / 1_000_000;
    push_padded(out, s / 3_600, 2);
    out.push(':');
    push_padded(out, s / 60 % 60, 2);
    out.push(':');
    push_padded(out, s % 60, 2);
}

/// The fraction of a second: exactly `width` digits, or (None) as Java's ISO formatters
/// print it (none for zero, else the digits without trailing zeros).
fn push_fraction(out: &mut String, micros: i64, width: Option<u32>) {
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let digits = std::str::from_utf8(&digits).unwrap_or("000000");
    match width {
        Some(w) => {
            let w = w.min(9) as usize;
            out.push('.');
            out.push_str(&digits[..w.min(6)]);
            for _ in 6..w {
                out.push('0');
            }
        }
        None if micros == 0 => {}
        None => {
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
    }
}

/// An ISO 8601 interval (`IntervalStyle=iso_8601`: `P1Y2M3DT4H5M6.5S`, parts may be
/// negative) → µs, as Debezium's `MicroDuration.durationMicros`.
fn parse_interval(text: &str) -> Option<i64> {
    let body = text.strip_prefix('P')?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let mut fields = [0f64; 6]; // Y M D H M S
    let mut parse = |part: &str, units: &[(char, usize)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == '-' {
                number.push(c);
                continue;
            }
            let &(_, slot) = units.iter().find(|(u, _)| *u == c)?;
            fields[slot] = number.parse().ok()?;
            number.clear();
        }
        number.is_empty().then_some(())
    };
    parse(date, &[('Y', 0), ('M', 1), ('D', 2)])?;
    parse(time, &[('H', 3), ('M', 4), ('S', 5)])?;
    let [years, months, days, hours, minutes, seconds] = fields;
    let days_total = (years * 12.0 + months) * (365.25 / 12.0) + days;
    let seconds_total = ((days_total * 24.0 + hours) * 60.0 + minutes) * 60.0 + seconds;
    Some((seconds_total * 1_000_000.0).round() as i64)
}

/// A bit string (`0101`) as Debezium's `Bits` holds it: the string read as a binary
/// number, its bytes little-endian, as many as its highest set bit needs (none for 0).
fn bits_little_endian(text: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(text.len().div_ceil(8));
    for (i, bit) in text.bytes().rev().enumerate() {
        match bit {
            b'0' => {}
            b'1' => {
                bytes.resize(bytes.len().max(i / 8 + 1), 0);
                bytes[i / 8] |= 1 << (i % 8);
            }
            _ => return None,
        }
    }
    Some(bytes)
}

/// PostgreSQL's ISO 8601 interval (`P1Y2M3DT4H5M6.5S`, zero fields left out) as
/// Debezium's `Interval.toIsoString` writes it: every field, seconds without trailing
/// zeros (`P1Y2M3DT4H5M6.5S`, `P0Y0M0DT0H0M0S`).
fn interval_iso(text: &str) -> Option<String> {
    let body = text.strip_prefix('P')?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    // Y M D H M S, as PostgreSQL wrote them.
    let mut fields: [&str; 6] = ["0"; 6];
    interval_fields(date, &[('Y', 0), ('M', 1), ('D', 2)], &mut fields)?;
    interval_fields(time, &[('H', 3), ('M', 4), ('S', 5)], &mut fields)?;
    let seconds = match fields[5].split_once('.') {
        Some((whole, fraction)) => {
            // At most 6 digits, cut (as Debezium's `setScale(6, DOWN)`), then no trailing zeros.
            let fraction = &fraction[..fraction.len().min(6)];
            let fraction = fraction.trim_end_matches('0');
            match (whole, fraction.is_empty()) {
                ("-0" | "-", true) => "0".to_owned(),
                (_, true) => whole.to_owned(),
                _ => format!("{whole}.{fraction}"),
            }
        }
        None => fields[5].to_owned(),
    };
    let [y, mo, d, h, mi, _] = fields;
    Some(format!("P{y}Y{mo}M{d}DT{h}H{mi}M{seconds}S"))
}

/// Reads `12Y-3M` into `fields` by `units` (unit letter → slot); only seconds (slot 5)
/// may have a fraction.
fn interval_fields<'t>(
    part: &'t str,
    units: &[(char, usize)],
    fields: &mut [&'t str; 6],
) -> Option<()> {
    let mut start = 0;
    for (at, c) in part.char_indices() {
        if c.is_ascii_digit() || c == '.' || c == '-' {
            continue;
        }
        let &(_, slot) = units.iter().find(|(u, _)| *u == c)?;
        let number = &part[start..at];
        if number.is_empty() || (slot < 5 && number.contains('.')) {
            return None;
        }
        number.parse::<f64>().ok()?;
        fields[slot] = number;
        start = at + c.len_utf8();
    }
    (start == part.len()).then_some(())
}

/// An element of an array in PostgreSQL's text form.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ArrayItem {
    Null,
    Value(String),
    /// A sub-array: the element of a multidimensional array.
    Nested,
}

/// `{a,"b c",NULL}` → its items. The bounds decoration of an array whose lower bound is
/// not 1 (`[0:2]={5,1,2}`, from `a[0] = 5`) is skipped, as the JDBC driver skips it for
/// Debezium; a multidimensional array's items are its sub-arrays.
fn parse_array(text: &str) -> Option<Vec<ArrayItem>> {
    let text = match text.starts_with('[') {
        true => &text[text.find('=')? + 1..],
        false => text,
    };
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    if inner.is_empty() {
        return Some(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        match chars.peek() {
            Some('"') => {
                chars.next();
                let mut item = String::new();
                loop {
                    match chars.next()? {
                        '\\' => item.push(chars.next()?),
                        '"' => break,
                        c => item.push(c),
                    }
                }
                items.push(ArrayItem::Value(item));
            }
            Some('{') => {
                skip_sub_array(&mut chars)?;
                items.push(ArrayItem::Nested);
            }
            _ => {
                let mut item = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    if c == '{' || c == '}' {
                        return None;
                    }
                    item.push(c);
                    chars.next();
                }
                items.push(match item.as_str() {
                    "NULL" => ArrayItem::Null,
                    _ => ArrayItem::Value(item),
                });
            }
        }
        match chars.next() {
            None => return Some(items),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// Consumes a balanced `{...}` (quoted elements may hold braces).
fn skip_sub_array(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<()> {
    let mut depth = 0usize;
    let mut quoted = false;
    loop {
        match (chars.next()?, quoted) {
            ('\\', true) => {
                chars.next()?;
            }
            ('"', _) => quoted = !quoted,
            ('{', false) => depth += 1,
            ('}', false) => {
                depth -= 1;
                if depth == 0 {
                    return Some(());
                }
            }
            _ => {}
        }
    }
}

/// Warns, once per process, that multidimensional arrays lose their values.
fn warn_multidimensional() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "a multidimensional array is published as Debezium publishes it: one null per sub-array (its values are not carried; this warning is given once)"
        )
    });
}

/// `"a"=>"1", "b"=>NULL` → pairs.
fn parse_hstore(text: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    let quoted = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<String> {
        if chars.next()? != '"' {
            return None;
        }
        let mut s = String::new();
        loop {
            match chars.next()? {
                '\\' => s.push(chars.next()?),
                '"' => return Some(s),
                c => s.push(c),
            }
        }
    };
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(pairs);
        }
        let key = quoted(&mut chars)?;
        if chars.next()? != '=' || chars.next()? != '>' {
            return None;
        }
        let value = if chars.peek() == Some(&'N') {
            for expected in "NULL".chars() {
                if chars.next()? != expected {
                    return None;
                }
            }
            None
        } else {
            Some(quoted(&mut chars)?)
        };
        pairs.push((key, value));
        match chars.next() {
            None => return Some(pairs),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests;
