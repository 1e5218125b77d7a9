//! Decoders for Debezium's encodings of SQL Server (and other) column types.
//!
//! Debezium encodes values so they survive JSON: `decimal`/`numeric`/`money` as base64
//! of the unscaled two's-complement integer (`decimal.handling.mode=precise`), `date` as
//! days since the epoch, `datetime2`/`datetime` as epoch milliseconds, microseconds or
//! nanoseconds depending on precision (`time.precision.mode=adaptive`), `time` as
//! milliseconds or nanoseconds of the day. These functions turn them back into the
//! strings a canonical data model wants, without floating point and without a date
//! library (they run inside plugins, where every dependency costs component size).

use base64::Engine as _;

/// Why a Debezium-encoded value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The text is not valid standard base64.
    InvalidBase64(String),
    /// A decimal with no bytes at all (Debezium always writes at least one).
    EmptyDecimal,
    /// More bytes than an i128 holds (precision above 38 digits).
    DecimalTooWide(usize),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::InvalidBase64(text) => {
                write!(f, "{text:?} is not a base64-encoded decimal")
            }
            DecodeError::EmptyDecimal => f.write_str("an encoded decimal has no bytes"),
            DecodeError::DecimalTooWide(bytes) => {
                write!(
                    f,
                    "an encoded decimal of {bytes} bytes is wider than 16 bytes (38 digits)"
                )
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a precise decimal (base64 of the big-endian two's-complement unscaled value)
/// into a plain decimal string with exactly `scale` fraction digits:
/// `("MDk=", 2)` → `"123.45"`.
pub fn decimal_from_base64(encoded: &str, scale: u32) -> Result<String, DecodeError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| DecodeError::InvalidBase64(encoded.to_owned()))?;
    if bytes.is_empty() {
        return Err(DecodeError::EmptyDecimal);
    }
    if bytes.len() > 16 {
        return Err(DecodeError::DecimalTooWide(bytes.len()));
    }
    // Sign-extend into 16 bytes.
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0x00 };
    let mut wide = [fill; 16];
    wide[16 - bytes.len()..].copy_from_slice(&bytes);
    Ok(format_scaled(i128::from_be_bytes(wide), scale))
}

/// Formats `unscaled × 10^-scale` as a decimal string.
fn format_scaled(unscaled: i128, scale: u32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    let scale = scale as usize;
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// `(year, month, day)` of a day count since 1970-01-01 (proleptic Gregorian), after
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `io.debezium.time.Date` (days since the epoch) → `"YYYY-MM-DD"`.
pub fn date_from_epoch_days(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// RFC 3339 UTC from whole seconds since the epoch and a fraction printed with `digits`.
fn timestamp(seconds: i64, fraction: u64, digits: usize) -> String {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}.{fraction:0digits$}Z",
        date_from_epoch_days(days),
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60,
    )
}

/// `io.debezium.time.Timestamp` (epoch ms) → `"2026-11-20T08:15:30.123Z"`.
pub fn timestamp_from_epoch_millis(ms: i64) -> String {
    timestamp(ms.div_euclid(1_000), ms.rem_euclid(1_000) as u64, 3)
}

/// `io.debezium.time.MicroTimestamp` (epoch µs) → `"...30.123456Z"`.
pub fn timestamp_from_epoch_micros(us: i64) -> String {
    timestamp(us.div_euclid(1_000_000), us.rem_euclid(1_000_000) as u64, 6)
}

/// `io.debezium.time.NanoTimestamp` (epoch ns) → `"...30.123456789Z"`.
pub fn timestamp_from_epoch_nanos(ns: i64) -> String {
    timestamp(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u64,
        9,
    )
}

/// `io.debezium.time.Time` (ms of the day) → `"HH:MM:SS.mmm"`.
pub fn time_from_millis_of_day(ms: i64) -> String {
    let seconds = ms.div_euclid(1_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        seconds / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
        ms.rem_euclid(1_000)
    )
}

/// `io.debezium.time.NanoTime` (ns of the day) → `"HH:MM:SS.nnnnnnnnn"`.
pub fn time_from_nanos_of_day(ns: i64) -> String {
    let seconds = ns.div_euclid(1_000_000_000);
    format!(
        "{:02}:{:02}:{:02}.{:09}",
        seconds / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
        ns.rem_euclid(1_000_000_000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(decimal_from_base64("MDk=", 2).as_deref(), Ok("123.45"));
        assert_eq!(decimal_from_base64("AA==", 2).as_deref(), Ok("0.00"));
        assert_eq!(decimal_from_base64("Kg==", 0).as_deref(), Ok("42"));
        // -25075 = 0x9E0D → "ng0="
        assert_eq!(decimal_from_base64("ng0=", 2).as_deref(), Ok("-250.75"));
        // -1 with scale 3
        assert_eq!(decimal_from_base64("/w==", 3).as_deref(), Ok("-0.001"));
        // 5 with scale 4: leading zeros are padded.
        assert_eq!(decimal_from_base64("BQ==", 4).as_deref(), Ok("0.0005"));
        // i128::MAX in 16 bytes.
        let max = base64::engine::general_purpose::STANDARD.encode(i128::MAX.to_be_bytes());
        assert_eq!(decimal_from_base64(&max, 0), Ok(i128::MAX.to_string()));
        let min = base64::engine::general_purpose::STANDARD.encode(i128::MIN.to_be_bytes());
        assert_eq!(decimal_from_base64(&min, 0), Ok(i128::MIN.to_string()));
    }

    #[test]
    fn bad_decimals() {
        assert!(matches!(
            decimal_from_base64("not base64!", 2),
            Err(DecodeError::InvalidBase64(_))
        ));
        assert_eq!(decimal_from_base64("", 2), Err(DecodeError::EmptyDecimal));
        let wide = base64::engine::general_purpose::STANDARD.encode([1u8; 17]);
        assert_eq!(
            decimal_from_base64(&wide, 2),
            Err(DecodeError::DecimalTooWide(17))
        );
    }

    #[test]
    fn dates() {
        assert_eq!(date_from_epoch_days(0), "1970-01-01");
        assert_eq!(date_from_epoch_days(-1), "1969-12-31");
        assert_eq!(date_from_epoch_days(11_029), "2000-03-13");
        assert_eq!(date_from_epoch_days(19_782), "2024-02-29");
        assert_eq!(date_from_epoch_days(-3_653), "1960-01-01");
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp_from_epoch_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp_from_epoch_millis(-1), "1969-12-31T23:59:59.999Z");
        // Cross-checked with Python's datetime.fromtimestamp(1763626530.123, utc).
        assert_eq!(
            timestamp_from_epoch_millis(1_763_626_530_123),
            "2025-11-20T08:15:30.123Z"
        );
        assert_eq!(
            timestamp_from_epoch_micros(1_763_626_530_123_456),
            "2025-11-20T08:15:30.123456Z"
        );
        assert_eq!(
            timestamp_from_epoch_nanos(1_763_626_530_123_456_789),
            "2025-11-20T08:15:30.123456789Z"
        );
        assert_eq!(
            timestamp_from_epoch_nanos(-1),
            "1969-12-31T23:59:59.999999999Z"
        );
    }

    #[test]
    fn times_of_day() {
        assert_eq!(time_from_millis_of_day(0), "00:00:00.000");
        assert_eq!(time_from_millis_of_day(86_399_999), "23:59:59.999");
        assert_eq!(
            time_from_nanos_of_day(45_296_000_000_001),
            "12:34:56.000000001"
        );
    }
}
