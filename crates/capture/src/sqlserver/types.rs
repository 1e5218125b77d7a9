//! SQL Server column types → Debezium's values and Kafka Connect schemas, in the modes
//! Debezium's SQL Server connector offers ([`ValueModes`]): `decimal.handling.mode`
//! (`precise`, `double`, `string`), `time.precision.mode` (`adaptive`, `connect`) and
//! `binary.handling.mode` (`bytes`, `base64`, `base64-url-safe`, `hex`); and a column's
//! mask ([`crate::masks`]).
//!
//! Values arrive as [`SqlValue`], shaped like tiberius's `ColumnData` (raw TDS
//! representations: days since 0001-01-01, time increments at a scale, unscaled
//! decimals), so the mapping is tested without a server. JSON is written by hand, in
//! order, because byte-for-byte equality with Debezium's `JsonConverter` is the point.

use base64::Engine as _;

/// A column value as read from SQL Server (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Bit(bool),
    U8(u8),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    String(String),
    /// A `uniqueidentifier` in its textual byte order (as `uuid::Uuid` prints it).
    Guid(String),
    Binary(Vec<u8>),
    /// `decimal`/`numeric` (and `money` when read as such): `value / 10^scale`.
    Numeric {
        value: i128,
        scale: u8,
    },
    /// `datetime`: days since 1900-01-01 and 1/300 s since midnight.
    DateTime {
        days: i32,
        fragments: u32,
    },
    /// `smalldatetime`: days since 1900-01-01 and minutes since midnight.
    SmallDateTime {
        days: u16,
        minutes: u16,
    },
    /// `date`: days since 0001-01-01.
    Date {
        days: u32,
    },
    /// `time(n)`: `increments` of 10^-scale s since midnight.
    Time {
        increments: u64,
        scale: u8,
    },
    /// `datetime2(n)`.
    DateTime2 {
        days: u32,
        increments: u64,
        scale: u8,
    },
    /// `datetimeoffset(n)`: the UTC date and time, and the offset in minutes.
    DateTimeOffset {
        days: u32,
        increments: u64,
        scale: u8,
        offset_minutes: i16,
    },
    Xml(String),
}

/// A SQL Server data type as `sys.columns` / `INFORMATION_SCHEMA.COLUMNS` describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Bit,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Real,
    Float,
    /// char, varchar, nchar, nvarchar, text, ntext, sysname.
    Text,
    Xml,
    UniqueIdentifier,
    /// binary, varbinary, image, rowversion/timestamp.
    Binary,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Money,
    SmallMoney,
    Date,
    Time {
        scale: u8,
    },
    DateTime,
    SmallDateTime,
    DateTime2 {
        scale: u8,
    },
    DateTimeOffset {
        scale: u8,
    },
}

impl SqlType {
    /// From a type name and its precision and scale (`sys.types.name`,
    /// `sys.columns.precision/scale`); `None` for types capture does not map
    /// (sql_variant, geography, hierarchyid, ...).
    pub fn from_catalog(name: &str, precision: u8, scale: u8) -> Option<SqlType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "bit" => SqlType::Bit,
            "tinyint" => SqlType::TinyInt,
            "smallint" => SqlType::SmallInt,
            "int" => SqlType::Int,
            "bigint" => SqlType::BigInt,
            "real" => SqlType::Real,
            "float" => SqlType::Float,
            "char" | "varchar" | "nchar" | "nvarchar" | "text" | "ntext" | "sysname" => {
                SqlType::Text
            }
            "xml" => SqlType::Xml,
            "uniqueidentifier" => SqlType::UniqueIdentifier,
            "binary" | "varbinary" | "image" | "timestamp" | "rowversion" => SqlType::Binary,
            "decimal" | "numeric" => SqlType::Decimal { precision, scale },
            "money" => SqlType::Money,
            "smallmoney" => SqlType::SmallMoney,
            "date" => SqlType::Date,
            "time" => SqlType::Time { scale },
            "datetime" => SqlType::DateTime,
            "smalldatetime" => SqlType::SmallDateTime,
            "datetime2" => SqlType::DateTime2 { scale },
            "datetimeoffset" => SqlType::DateTimeOffset { scale },
            _ => return None,
        })
    }
}

/// `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalMode {
    /// base64 of the unscaled two's-complement integer, scale in the schema.
    #[default]
    Precise,
    Double,
    String,
}

/// `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePrecision {
    /// Debezium's own types at the column's precision (`io.debezium.time.*`).
    #[default]
    Adaptive,
    /// Kafka Connect's `Date`, `Time` (ms) and `Timestamp` (ms): finer digits are cut.
    Connect,
}

/// `binary.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinaryMode {
    /// Schema `bytes` (the JSON converter writes base64).
    #[default]
    Bytes,
    /// Schema `string`, base64 text.
    Base64,
    /// Schema `string`, URL-safe base64 (`-` and `_`, padded, as Java's `getUrlEncoder`).
    Base64UrlSafe,
    /// Schema `string`, lower-case hex.
    Hex,
}

/// How values are written: the three `*.mode` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValueModes {
    pub decimal: DecimalMode,
    pub time: TimePrecision,
    pub binary: BinaryMode,
}

impl From<DecimalMode> for ValueModes {
    fn from(decimal: DecimalMode) -> Self {
        ValueModes {
            decimal,
            ..ValueModes::default()
        }
    }
}

/// One captured column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub sql_type: SqlType,
    pub optional: bool,
    /// What schema-change events report of it ([`super::catalog`]).
    pub catalog: super::catalog::ColumnCatalog,
    /// `column.mask.*`: applied to the value's fields, never the key's.
    pub mask: Option<crate::masks::Mask>,
}

impl Column {
    /// Whether a mask rewrites this column's values (character columns, as JDBC types
    /// them); other masked columns only carry the schema parameter.
    fn masks_values(&self) -> bool {
        matches!(self.jdbc_type(), 1 | 12 | -1 | -15 | -9 | -16)
    }
}

/// A value the mapper cannot turn into its column's Debezium form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {reason}")]
pub struct MapError {
    pub column: String,
    pub reason: String,
}

/// Days between 0001-01-01 and 1970-01-01.
const DAYS_0001_TO_1970: i64 = 719_162;
/// Days between 1900-01-01 and 1970-01-01.
const DAYS_1900_TO_1970: i64 = 25_567;
const MS_PER_DAY: i64 = 86_400_000;

/// Appends `text` as a JSON string, escaped as Jackson (Kafka's `JsonConverter`) escapes
/// it: `"` and `\`, `\b \f \n \r \t`, other control characters as `\u00XX` in upper-case
/// hex (`WRITE_HEX_UPPER_CASE`, Jackson's default; serde_json writes lower case), and
/// everything else, non-ASCII included, as is. Written in place: it runs for every field
/// of every event.
pub fn push_json_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(text.len() + 2);
    out.push('"');
    let mut plain = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[plain..at]);
        plain = at + 1;
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[(byte >> 4) as usize] as char);
            out.push(HEX[(byte & 0xf) as usize] as char);
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(&text[plain..]);
    out.push('"');
}

/// Appends `n` in decimal, without going through `std::fmt` (it runs several times for
/// every event: positions, times, orders).
pub fn push_i64(out: &mut String, n: i64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// [`push_i64`] of an unsigned number.
pub fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends a float as Jackson writes it: [`java_float`], and a non-finite one as a
/// string (`QUOTE_NON_NUMERIC_NUMBERS`), so that the line stays JSON.
pub fn push_float(out: &mut String, v: f64, shortest: &str) {
    let text = java_float(v, shortest);
    if v.is_finite() {
        out.push_str(&text);
    } else {
        out.push('"');
        out.push_str(&text);
        out.push('"');
    }
}

/// Java's `Double.toString`/`Float.toString` (what Jackson writes for float64/float32):
/// the shortest digits that round-trip, `1.0` not `1`, and `1.0E7` / `1.0E-4` outside
/// [10^-3, 10^7).
pub fn java_float(value: f64, shortest: &str) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .into();
    }
    // `shortest` is Rust's `{:e}`: `[-]d[.ddd]e[-]n`.
    let (mantissa, exponent) = shortest.split_once('e').unwrap_or((shortest, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    let abs = value.abs();
    if (1e-3..1e7).contains(&abs) {
        let point = exponent + 1; // digits before the decimal point
        if point <= 0 {
            let zeros = "0".repeat((-point) as usize);
            format!("{sign}0.{zeros}{digits}")
        } else {
            let point = point as usize;
            let padded = if digits.len() < point {
                format!("{digits}{}", "0".repeat(point - digits.len()))
            } else {
                digits.clone()
            };
            let (int, frac) = padded.split_at(point);
            let frac = if frac.is_empty() { "0" } else { frac };
            format!("{sign}{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exponent}")
    }
}

/// Java's `BigInteger.toByteArray`: minimal big-endian two's complement.
pub fn unscaled_bytes(value: i128) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

/// `BigDecimal.toPlainString` of `value / 10^scale`.
pub fn plain_decimal(value: i128, scale: u8) -> String {
    let negative = value < 0;
    let digits = value.unsigned_abs().to_string();
    let scale = scale as usize;
    let text = if scale == 0 {
        digits
    } else if digits.len() <= scale {
        format!("0.{}{digits}", "0".repeat(scale - digits.len()))
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        format!("{int}.{frac}")
    };
    if negative { format!("-{text}") } else { text }
}

fn pow10(n: u8) -> u64 {
    10u64.pow(n as u32)
}

/// Nanoseconds since midnight of `increments` at `scale`.
fn time_nanos(increments: u64, scale: u8) -> Option<i64> {
    if scale > 9 {
        return None;
    }
    i64::try_from(increments.checked_mul(pow10(9 - scale))?).ok()
}

/// Adaptive precision of `time(n)` / `datetime2(n)`: 0-3 ms, 4-6 µs, 7 ns.
fn adaptive_divisor(scale: u8) -> i64 {
    match scale {
        0..=3 => 1_000_000,
        4..=6 => 1_000,
        _ => 1,
    }
}

/// The Kafka Connect schema of a column, as JsonConverter writes it (keys in its order),
/// with `field` last. `masked`: the column is a value field and has a mask.
pub fn field_schema(column: &Column, modes: impl Into<ValueModes>) -> String {
    field_schema_of(column, modes.into(), column.mask.is_some())
}

/// The schema of a key field: never masked.
pub fn key_field_schema(column: &Column, modes: ValueModes) -> String {
    field_schema_of(column, modes, false)
}

fn field_schema_of(column: &Column, modes: ValueModes, masked: bool) -> String {
    let mode = modes.decimal;
    let connect = modes.time == TimePrecision::Connect;
    let (kind, logical, mut params): (&str, Option<&str>, Option<String>) = match column.sql_type {
        SqlType::Bit => ("boolean", None, None),
        SqlType::TinyInt | SqlType::SmallInt => ("int16", None, None),
        SqlType::Int => ("int32", None, None),
        SqlType::BigInt => ("int64", None, None),
        // Kafka's JsonConverter names FLOAT32 and FLOAT64 "float" and "double".
        SqlType::Real => ("float", None, None),
        SqlType::Float => ("double", None, None),
        SqlType::Text | SqlType::UniqueIdentifier => ("string", None, None),
        SqlType::Xml => ("string", Some("io.debezium.data.Xml"), None),
        SqlType::Binary if modes.binary == BinaryMode::Bytes => ("bytes", None, None),
        SqlType::Binary => ("string", None, None),
        SqlType::Date if connect => ("int32", Some("org.apache.kafka.connect.data.Date"), None),
        SqlType::Time { .. } if connect => {
            ("int32", Some("org.apache.kafka.connect.data.Time"), None)
        }
        SqlType::DateTime | SqlType::SmallDateTime | SqlType::DateTime2 { .. } if connect => (
            "int64",
            Some("org.apache.kafka.connect.data.Timestamp"),
            None,
        ),
        SqlType::Decimal { .. } | SqlType::Money | SqlType::SmallMoney => {
            let (precision, scale) = decimal_shape(column.sql_type);
            match mode {
                DecimalMode::Precise => (
                    "bytes",
                    Some("org.apache.kafka.connect.data.Decimal"),
                    Some(format!(
                        r#"{{"scale":"{scale}","connect.decimal.precision":"{precision}"}}"#
                    )),
                ),
                DecimalMode::Double => ("double", None, None),
                DecimalMode::String => ("string", None, None),
            }
        }
        SqlType::Date => ("int32", Some("io.debezium.time.Date"), None),
        SqlType::Time { scale } => match scale {
            0..=3 => ("int32", Some("io.debezium.time.Time"), None),
            4..=6 => ("int64", Some("io.debezium.time.MicroTime"), None),
            _ => ("int64", Some("io.debezium.time.NanoTime"), None),
        },
        SqlType::DateTime | SqlType::SmallDateTime => {
            ("int64", Some("io.debezium.time.Timestamp"), None)
        }
        SqlType::DateTime2 { scale } => match scale {
            0..=3 => ("int64", Some("io.debezium.time.Timestamp"), None),
            4..=6 => ("int64", Some("io.debezium.time.MicroTimestamp"), None),
            _ => ("int64", Some("io.debezium.time.NanoTimestamp"), None),
        },
        SqlType::DateTimeOffset { .. } => ("string", Some("io.debezium.time.ZonedTimestamp"), None),
    };
    if masked {
        // Appended last, as Debezium's mapper adds it after the type's own parameters.
        params = Some(match params {
            Some(p) => format!(r#"{},"masked":"true"}}"#, &p[..p.len() - 1]),
            None => r#"{"masked":"true"}"#.to_owned(),
        });
    }
    let mut out = format!(r#"{{"type":"{kind}","optional":{}"#, column.optional);
    if let Some(name) = logical {
        out.push_str(&format!(r#","name":"{name}","version":1"#));
    }
    if let Some(params) = params {
        out.push_str(&format!(r#","parameters":{params}"#));
    }
    // JsonConverter writes `default` after `parameters`, in the field's own form.
    if let Some(default) = column.default_value() {
        let mut value = String::new();
        if push_unmasked(&mut value, column, &default, modes).is_ok() {
            out.push_str(",\"default\":");
            out.push_str(&value);
        }
    }
    out.push_str(",\"field\":");
    push_json_string(&mut out, &column.name);
    out.push('}');
    out
}

fn decimal_shape(sql_type: SqlType) -> (u8, u8) {
    match sql_type {
        SqlType::Decimal { precision, scale } => (precision, scale),
        SqlType::Money => (19, 4),
        SqlType::SmallMoney => (10, 4),
        _ => (0, 0),
    }
}

/// Appends the JSON value of `value` in `column`'s Debezium form, masked if the column
/// has a mask (a value field; keys use [`push_key_value`]).
pub fn push_value(
    out: &mut String,
    column: &Column,
    value: &SqlValue,
    modes: impl Into<ValueModes>,
) -> Result<(), MapError> {
    let modes = modes.into();
    match &column.mask {
        Some(mask) if column.masks_values() => {
            let text = match value {
                SqlValue::Null => None,
                SqlValue::String(s) | SqlValue::Xml(s) => Some(s.clone()),
                SqlValue::Guid(g) => Some(g.to_ascii_uppercase()),
                _ => return push_unmasked(out, column, value, modes),
            };
            let length = usize::try_from(column.jdbc_length()).ok();
            match mask.apply(text.as_deref(), length) {
                Some(masked) => push_json_string(out, &masked),
                None => push_unmasked(out, column, &SqlValue::Null, modes)?,
            }
            Ok(())
        }
        _ => push_unmasked(out, column, value, modes),
    }
}

/// Appends the JSON value of a key field: as [`push_value`], never masked.
pub fn push_key_value(
    out: &mut String,
    column: &Column,
    value: &SqlValue,
    modes: ValueModes,
) -> Result<(), MapError> {
    push_unmasked(out, column, value, modes)
}

fn push_unmasked(
    out: &mut String,
    column: &Column,
    value: &SqlValue,
    modes: ValueModes,
) -> Result<(), MapError> {
    let mode = modes.decimal;
    let connect = modes.time == TimePrecision::Connect;
    let fail = |reason: String| MapError {
        column: column.name.clone(),
        reason,
    };
    let mismatch = || fail(format!("a {value:?} in a {:?} column", column.sql_type));
    use SqlType as T;
    use SqlValue as V;
    match (column.sql_type, value) {
        (_, V::Null) if column.optional => out.push_str("null"),
        // CDC writes NULL into NOT NULL columns: unchanged (max) columns of an update's
        // before-image, text/ntext/image of deletes, computed columns. Debezium then
        // writes the type's zero (`JdbcValueConverters`' fallback); so does capture.
        (_, V::Null) => push_fallback(out, column.sql_type, modes),
        (T::Bit, V::Bit(b)) => out.push_str(if *b { "true" } else { "false" }),
        (T::TinyInt, V::U8(n)) => out.push_str(&n.to_string()),
        (T::SmallInt, V::I16(n)) => out.push_str(&n.to_string()),
        (T::Int, V::I32(n)) => out.push_str(&n.to_string()),
        (T::BigInt, V::I64(n)) => out.push_str(&n.to_string()),
        // SQL Server stores no NaN or infinity; one would still be written as JSON.
        (T::Real, V::F32(x)) => push_float(out, *x as f64, &format!("{x:e}")),
        (T::Float, V::F64(x)) => push_float(out, *x, &format!("{x:e}")),
        (T::Text | T::Xml, V::String(s) | V::Xml(s)) => push_json_string(out, s),
        (T::UniqueIdentifier, V::Guid(g) | V::String(g)) => {
            push_json_string(out, &g.to_ascii_uppercase())
        }
        (T::Binary, V::Binary(bytes)) => push_json_string(out, &binary_text(bytes, modes.binary)),
        (T::Decimal { .. } | T::Money | T::SmallMoney, V::Numeric { value, scale }) => {
            let (_, column_scale) = decimal_shape(column.sql_type);
            let unscaled = rescale(*value, *scale, column_scale)
                .ok_or_else(|| fail(format!("{value} at scale {scale} does not fit")))?;
            push_decimal(out, unscaled, column_scale, mode);
        }
        // tiberius reads money and smallmoney as f64 (capture's queries cast them to
        // decimals, so this is for other readers): rounding back to 1/10000 is exact
        // only below 2^51 units (x * 10^4 adds an error of up to ulp/2 that must stay
        // under 0.5), ~2.25e11; beyond, refuse rather than publish a wrong amount.
        (T::Money | T::SmallMoney, V::F64(x)) => {
            let unscaled = (x * 10_000.0).round();
            if unscaled.abs() >= 2_251_799_813_685_248.0 {
                return Err(fail(format!("money {x} beyond exact f64 range")));
            }
            push_decimal(out, unscaled as i128, 4, mode);
        }
        (T::Date, V::Date { days }) => {
            out.push_str(&(*days as i64 - DAYS_0001_TO_1970).to_string())
        }
        (
            T::Time { scale },
            V::Time {
                increments,
                scale: s,
            },
        ) => {
            let nanos = time_nanos(*increments, *s).ok_or_else(mismatch)?;
            let divisor = if connect {
                1_000_000
            } else {
                adaptive_divisor(scale)
            };
            out.push_str(&(nanos / divisor).to_string());
        }
        (T::DateTime, V::DateTime { days, fragments }) => {
            // 1/300 s → ms, rounded like SQL Server shows it (.000, .003, .007).
            let ms = (*fragments as i64 * 10 + 1) / 3;
            let epoch = (*days as i64 - DAYS_1900_TO_1970) * MS_PER_DAY + ms;
            out.push_str(&epoch.to_string());
        }
        (T::SmallDateTime, V::SmallDateTime { days, minutes }) => {
            let epoch = (*days as i64 - DAYS_1900_TO_1970) * MS_PER_DAY + *minutes as i64 * 60_000;
            out.push_str(&epoch.to_string());
        }
        (
            T::DateTime2 { scale },
            V::DateTime2 {
                days,
                increments,
                scale: s,
            },
        ) => {
            let nanos = time_nanos(*increments, *s).ok_or_else(mismatch)?;
            let days = *days as i64 - DAYS_0001_TO_1970;
            let divisor = if connect {
                1_000_000
            } else {
                adaptive_divisor(scale)
            };
            let per_day = 86_400_000_000_000 / divisor;
            let value = days
                .checked_mul(per_day)
                .and_then(|d| d.checked_add(nanos / divisor))
                .ok_or_else(|| {
                    // Only datetime2(7) in adaptive mode (io.debezium.time.NanoTimestamp,
                    // an int64 of nanoseconds) can miss: it reaches 1677-09-21 to
                    // 2262-04-11, and the column 0001 to 9999 (`9999-12-31`, the usual
                    // "valid until further notice", included). Debezium 3.6 and older wrap
                    // such a value silently into a wrong instant; newer ones refuse it as
                    // capture does, naming the value.
                    fail(format!(
                        "{} is outside the range of io.debezium.time.NanoTimestamp (int64 \
                         nanoseconds since 1970: 1677-09-21 to 2262-04-11); with \
                         time.precision.mode = \"connect\" the column is written in \
                         milliseconds, which hold it",
                        local_timestamp_text(days, nanos)
                    ))
                })?;
            out.push_str(&value.to_string());
        }
        (
            T::DateTimeOffset { .. },
            V::DateTimeOffset {
                days,
                increments,
                scale,
                offset_minutes,
            },
        ) => {
            let nanos = time_nanos(*increments, *scale).ok_or_else(mismatch)?;
            push_json_string(out, &zoned_timestamp(*days, nanos, *offset_minutes));
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// Binary bytes as the JSON string `binary.handling.mode` asks for (`bytes` and
/// `base64` write the same text; the schema differs).
pub(crate) fn binary_text(bytes: &[u8], mode: BinaryMode) -> String {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    match mode {
        BinaryMode::Bytes | BinaryMode::Base64 => STANDARD.encode(bytes),
        BinaryMode::Base64UrlSafe => URL_SAFE.encode(bytes),
        BinaryMode::Hex => hex::encode(bytes),
    }
}

/// The value Debezium writes for NULL in a NOT NULL column: zero, false, "", epoch.
fn push_fallback(out: &mut String, sql_type: SqlType, modes: ValueModes) {
    let mode = modes.decimal;
    use SqlType as T;
    match sql_type {
        T::Bit => out.push_str("false"),
        T::TinyInt
        | T::SmallInt
        | T::Int
        | T::BigInt
        | T::Date
        | T::Time { .. }
        | T::DateTime
        | T::SmallDateTime
        | T::DateTime2 { .. } => out.push('0'),
        T::Real | T::Float => out.push_str("0.0"),
        T::Text | T::Xml | T::UniqueIdentifier | T::Binary => out.push_str("\"\""),
        T::Decimal { .. } | T::Money | T::SmallMoney => {
            let (_, scale) = decimal_shape(sql_type);
            push_decimal(out, 0, scale, mode);
        }
        T::DateTimeOffset { .. } => out.push_str("\"1970-01-01T00:00:00Z\""),
    }
}

fn rescale(value: i128, from: u8, to: u8) -> Option<i128> {
    match from.cmp(&to) {
        std::cmp::Ordering::Equal => Some(value),
        std::cmp::Ordering::Less => value.checked_mul(10i128.checked_pow((to - from) as u32)?),
        std::cmp::Ordering::Greater => {
            let factor = 10i128.checked_pow((from - to) as u32)?;
            (value % factor == 0).then(|| value / factor)
        }
    }
}

fn push_decimal(out: &mut String, unscaled: i128, scale: u8, mode: DecimalMode) {
    match mode {
        DecimalMode::Precise => push_json_string(
            out,
            &base64::engine::general_purpose::STANDARD.encode(unscaled_bytes(unscaled)),
        ),
        DecimalMode::String => push_json_string(out, &plain_decimal(unscaled, scale)),
        DecimalMode::Double => {
            // BigDecimal.doubleValue: parse the exact decimal text (correctly rounded).
            let x: f64 = plain_decimal(unscaled, scale).parse().unwrap_or(f64::NAN);
            push_float(out, x, &format!("{x:e}"));
        }
    }
}

/// `io.debezium.time.ZonedTimestamp`: ISO-8601 in the value's own offset, the fraction
/// without trailing zeros, `Z` for a zero offset (`DateTimeFormatter.ISO_OFFSET_DATE_TIME`).
fn zoned_timestamp(utc_days: u32, utc_nanos: i64, offset_minutes: i16) -> String {
    // In i128: nanoseconds since 1970 in an i64 reach only 1677-2262, and a
    // datetimeoffset runs from 0001 to 9999 (`9999-12-31 ... +00:00`, the usual "valid
    // until further notice", overflowed: a wrong instant in a release build).
    const NANOS_PER_DAY: i128 = 86_400_000_000_000;
    let total = (i128::from(utc_days) - i128::from(DAYS_0001_TO_1970)) * NANOS_PER_DAY
        + i128::from(utc_nanos)
        + i128::from(offset_minutes) * 60_000_000_000;
    // Both fit an i64: days within u32 (plus a few from the time and offset), the
    // nanoseconds within a day.
    let days = total.div_euclid(NANOS_PER_DAY) as i64;
    let nanos = total.rem_euclid(NANOS_PER_DAY) as i64;
    let mut text = local_timestamp_text(days, nanos);
    if offset_minutes == 0 {
        text.push('Z');
    } else {
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let abs = offset_minutes.unsigned_abs();
        text.push_str(&format!("{sign}{:02}:{:02}", abs / 60, abs % 60));
    }
    text
}

/// A local date and time, days since 1970 and nanoseconds into the day, as ISO-8601
/// (`9999-12-31T23:59:59.9999999`), for messages.
fn local_timestamp_text(days: i64, nanos: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    let secs = nanos / 1_000_000_000;
    let mut text = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    let frac = nanos % 1_000_000_000;
    if frac != 0 {
        let digits = format!("{frac:09}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text
}

/// Proleptic Gregorian (year, month, day) of days since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests;
