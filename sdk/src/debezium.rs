//! Decoders for the encodings Debezium gives SQL Server (and other) column types in JSON.
//!
//! With `decimal.handling.mode=precise` and `time.precision.mode=adaptive`, Debezium writes
//! `decimal`/`numeric`/`money` as base64 of the unscaled big-endian two's-complement
//! integer (the scale is in the schema), `date` as days since 1970-01-01,
//! `datetime2`/`datetime` as epoch milliseconds, microseconds or nanoseconds depending on
//! the precision, and `time` as milliseconds or nanoseconds of the day. These functions
//! turn them back into the strings a canonical data model wants: exact (no floating
//! point), total over `i64` (no panics) and without a date library, so that plugins and
//! the host can share them at no cost in component size.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Standard base64, as Kafka Connect's `JsonConverter` writes bytes; padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a Debezium-encoded value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The text is not standard base64; holds the (shortened) text and the reason.
    InvalidBase64(String),
    /// The base64 decodes to no bytes (Debezium writes at least one, even for zero).
    EmptyDecimal,
    /// The unscaled value has this many bytes, more than the 16 of an `i128` (a precision
    /// above 38 digits, beyond SQL Server's `decimal(38, s)`).
    DecimalTooWide(usize),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::InvalidBase64(detail) => {
                write!(f, "an encoded decimal is not valid base64: {detail}")
            }
            DecodeError::EmptyDecimal => f.write_str("an encoded decimal has no bytes"),
            DecodeError::DecimalTooWide(bytes) => write!(
                f,
                "an encoded decimal of {bytes} bytes is wider than 16 bytes (38 digits)"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes Debezium's precise decimal (`org.apache.kafka.connect.data.Decimal`: base64 of
/// the unscaled value as big-endian two's complement, at most 16 bytes) into a plain
/// decimal string with exactly `scale` fraction digits (`scale` is the schema's
/// `"scale"` parameter): `("MDk=", 2)` → `"123.45"`, `("ng0=", 2)` → `"-250.75"`,
/// `("AA==", 2)` → `"0.00"`, `("Kg==", 0)` → `"42"`.
///
/// # Errors
///
/// [`DecodeError`] when `encoded` is not base64, is empty, or holds more than 16 bytes.
pub fn decimal_from_base64(encoded: &str, scale: u32) -> Result<String, DecodeError> {
    let bytes = BASE64.decode(encoded).map_err(|e| {
        let shown: String = encoded.chars().take(48).collect();
        let cut = if shown.len() < encoded.len() {
            "…"
        } else {
            ""
        };
        DecodeError::InvalidBase64(format!("{shown:?}{cut} ({e})"))
    })?;
    if bytes.is_empty() {
        return Err(DecodeError::EmptyDecimal);
    }
    if bytes.len() > 16 {
        return Err(DecodeError::DecimalTooWide(bytes.len()));
    }
    // Sign-extend to 16 bytes.
    let mut wide = [if bytes[0] & 0x80 != 0 { 0xff } else { 0x00 }; 16];
    wide[16 - bytes.len()..].copy_from_slice(&bytes);
    Ok(format_scaled(i128::from_be_bytes(wide), scale as usize))
}

/// `unscaled × 10^-scale` as a decimal string.
fn format_scaled(unscaled: i128, scale: usize) -> String {
    let mut digits = String::with_capacity(40);
    push_u128(&mut digits, unscaled.unsigned_abs(), scale + 1);
    let mut out = String::with_capacity(digits.len() + 2);
    if unscaled < 0 {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(&digits);
        return out;
    }
    let (int, frac) = digits.split_at(digits.len() - scale);
    out.push_str(int);
    out.push('.');
    out.push_str(frac);
    out
}

/// Appends `value` in decimal, left-padded with zeros to at least `width` digits: what
/// `format!("{value:0width$}")` writes, without the formatting machinery (per event,
/// several times, in every plugin that maps dates or decimals; in WebAssembly its
/// dynamic dispatch costs more than natively).
fn push_u64(out: &mut String, mut value: u64, width: usize) {
    let mut buffer = [b'0'; 20];
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // The buffer starts as zeros: padding up to its length is part of the same slice.
    let start = at.min(buffer.len().saturating_sub(width));
    out.extend(std::iter::repeat_n('0', width.saturating_sub(buffer.len())));
    // ASCII digits: always UTF-8.
    out.push_str(std::str::from_utf8(&buffer[start..]).unwrap_or_default());
}

/// [`push_u64`] for the `u128` of a decimal's unscaled value.
fn push_u128(out: &mut String, value: u128, width: usize) {
    match u64::try_from(value) {
        Ok(value) => push_u64(out, value, width),
        Err(_) => {
            let digits = value.to_string();
            out.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
            out.push_str(&digits);
        }
    }
}

/// `(year, month, day)` of a day count since 1970-01-01 in the proleptic Gregorian
/// calendar: Howard Hinnant's `civil_from_days`. Only the shift to 0000-03-01 can leave
/// `i64` (within 719,468 days of `i64::MAX`); that one step is done in `i128`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let (era, doe) = match days.checked_add(719_468) {
        Some(z) => (z.div_euclid(146_097), z.rem_euclid(146_097)),
        None => {
            let z = i128::from(days) + 719_468;
            // Both fit: era is at most i64::MAX / 146_097, doe below 146_097.
            (
                (z.div_euclid(146_097)) as i64,
                (z.rem_euclid(146_097)) as i64,
            )
        }
    };
    // doe: day of the era, [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the year from March 1
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Appends `YYYY-MM-DD` (a sign and more digits outside 0000–9999) of a day count.
fn push_date(out: &mut String, days: i64) {
    let (year, month, day) = civil_from_days(days);
    if year < 0 {
        out.push('-');
    }
    push_u64(out, year.unsigned_abs(), 4);
    out.push('-');
    push_u64(out, u64::from(month), 2);
    out.push('-');
    push_u64(out, u64::from(day), 2);
}

/// `io.debezium.time.Date` (days since 1970-01-01; negative before) → `"YYYY-MM-DD"`,
/// proleptic Gregorian: `20_777` → `"2026-11-20"`, `-3_159` → `"1961-05-09"`. Years
/// outside 0000–9999 get a sign or more digits (`"-0001-12-31"`, `"10000-01-01"`).
pub fn date_from_epoch_days(days: i64) -> String {
    let mut out = String::with_capacity(10);
    push_date(&mut out, days);
    out
}

/// Appends `HH:MM:SS.fraction`, each part zero-padded (hours may have more digits).
fn push_clock(out: &mut String, seconds: u64, fraction: u64, digits: usize) {
    push_u64(out, seconds / 3_600, 2);
    out.push(':');
    push_u64(out, seconds % 3_600 / 60, 2);
    out.push(':');
    push_u64(out, seconds % 60, 2);
    out.push('.');
    push_u64(out, fraction, digits);
}

/// RFC 3339 UTC from seconds since the epoch and a fraction of `digits` digits.
fn timestamp(seconds: i64, fraction: i64, digits: usize) -> String {
    let mut out = String::with_capacity(21 + digits);
    push_date(&mut out, seconds.div_euclid(86_400));
    out.push('T');
    // Both are non-negative: a remainder of `rem_euclid`.
    push_clock(
        &mut out,
        seconds.rem_euclid(86_400).unsigned_abs(),
        fraction.unsigned_abs(),
        digits,
    );
    out.push('Z');
    out
}

/// `io.debezium.time.Timestamp` (epoch milliseconds: `datetime`, `smalldatetime`,
/// `datetime2(0..=3)`) → RFC 3339 UTC with 3 fraction digits:
/// `1_795_162_531_250` → `"2026-11-20T08:15:31.250Z"`, `-1` → `"1969-12-31T23:59:59.999Z"`.
pub fn timestamp_from_epoch_millis(ms: i64) -> String {
    timestamp(ms.div_euclid(1_000), ms.rem_euclid(1_000), 3)
}

/// `io.debezium.time.MicroTimestamp` (epoch microseconds: `datetime2(4..=6)`) → RFC 3339
/// UTC with 6 fraction digits: `"2026-11-20T08:15:30.123456Z"`.
pub fn timestamp_from_epoch_micros(us: i64) -> String {
    timestamp(us.div_euclid(1_000_000), us.rem_euclid(1_000_000), 6)
}

/// `io.debezium.time.NanoTimestamp` (epoch nanoseconds: `datetime2(7)`) → RFC 3339 UTC
/// with 9 fraction digits: `1_793_534_400_123_456_700` → `"2026-11-01T12:00:00.123456700Z"`.
pub fn timestamp_from_epoch_nanos(ns: i64) -> String {
    const NS: i64 = 1_000_000_000;
    timestamp(ns.div_euclid(NS), ns.rem_euclid(NS), 9)
}

/// `HH:MM:SS.fraction` of a count of `per_second` units; a negative count gets a `-`.
fn time_of_day(units: i64, per_second: u64, digits: usize) -> String {
    let mut out = String::with_capacity(13 + digits);
    if units < 0 {
        out.push('-');
    }
    let units = units.unsigned_abs();
    push_clock(&mut out, units / per_second, units % per_second, digits);
    out
}

/// `io.debezium.time.Time` (milliseconds of the day: `time(0..=3)`) → `"HH:MM:SS.mmm"`:
/// `45_296_789` → `"12:34:56.789"`. Values are not wrapped into a day: `86_400_000` is
/// `"24:00:00.000"` and a negative value keeps its sign.
pub fn time_from_millis_of_day(ms: i64) -> String {
    time_of_day(ms, 1_000, 3)
}

/// `io.debezium.time.NanoTime` (nanoseconds of the day: `time(7)`) →
/// `"HH:MM:SS.nnnnnnnnn"`: `45_296_123_456_789` → `"12:34:56.123456789"`. Not wrapped,
/// like [`time_from_millis_of_day`].
pub fn time_from_nanos_of_day(ns: i64) -> String {
    time_of_day(ns, 1_000_000_000, 9)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Java's `BigInteger.toByteArray()`: the shortest two's complement, as Debezium sends.
    fn java_bytes(v: i128) -> Vec<u8> {
        let (all, fill) = (v.to_be_bytes(), if v < 0 { 0xff } else { 0 });
        let mut start = 0;
        while start < 15 && all[start] == fill && (all[start + 1] & 0x80 != 0) == (v < 0) {
            start += 1;
        }
        all[start..].to_vec()
    }

    /// Hinnant's `days_from_civil`, the inverse of `civil_from_days`.
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let (era, yoe) = (y.div_euclid(400), y.rem_euclid(400));
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
    }

    /// `[-]Y…Y-MM-DD[THH:MM:SS.fZ]` back to (seconds since the epoch, fraction digits).
    fn parse(s: &str) -> (i128, i128) {
        let (date, time) = s.split_once('T').unwrap_or((s, "00:00:00.0Z"));
        let n = |t: &str| t.parse::<i64>().expect("digits");
        let dmy: Vec<i64> = date.rsplitn(3, '-').map(n).collect();
        let (hms, fraction) = time[..time.len() - 1].split_once('.').expect("fraction");
        let t: Vec<i64> = hms.split(':').map(n).collect();
        let days = days_from_civil(dmy[2], dmy[1], dmy[0]);
        let seconds = days * 86_400 + t[0] * 3_600 + t[1] * 60 + t[2];
        (i128::from(seconds), i128::from(n(fraction)))
    }

    /// The formatting before `push_u64` and the `i64` calendar: `format!` over `i128`.
    fn date_by_format(days: i64) -> String {
        let z = i128::from(days) + 719_468;
        let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i128::from(month <= 2);
        let sign = if year < 0 { "-" } else { "" };
        format!("{sign}{:04}-{month:02}-{day:02}", year.unsigned_abs())
    }

    #[test]
    fn digits_and_dates_match_format() {
        let mut edges = vec![i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 719_468];
        edges.extend([i64::MAX - 719_467, -719_469, -719_468, -1, 0, 1, 2_932_896]);
        // A deterministic spread over the whole range (an LCG), and every day near 0.
        let mut x: u64 = 0x5eed;
        for _ in 0..2_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            edges.push(x as i64);
            edges.push((x as i64) >> 20);
        }
        edges.extend(-800_000..800_000);
        for days in edges {
            assert_eq!(date_from_epoch_days(days), date_by_format(days), "{days}");
        }
        for (value, width) in [(0, 0), (0, 1), (7, 4), (12_345, 2), (u64::MAX, 25)] {
            let mut out = String::new();
            push_u64(&mut out, value, width);
            assert_eq!(out, format!("{value:0width$}"));
        }
        let mut out = String::new();
        push_u128(&mut out, u128::MAX, 45);
        assert_eq!(out, format!("{:045}", u128::MAX));
    }

    #[test]
    fn decimals() {
        // Python: Decimal(int.from_bytes(b64decode(s), "big", signed=True)).scaleb(-scale);
        // the first twelve are the samples' values.
        for (encoded, scale, expected) in [
            ("AA==", 2, "0.00"),
            ("MDk=", 2, "123.45"),
            ("B6Eg", 2, "5000.00"),
            ("Aeh6", 2, "1250.50"),
            ("fQA=", 2, "320.00"),
            ("C3HJ", 2, "7500.25"),
            ("ng0=", 2, "-250.75"),
            ("AV+Q", 2, "900.00"),
            ("Cbo=", 2, "24.90"),
            ("BLA=", 2, "12.00"),
            ("BH4=", 2, "11.50"),
            ("HS4=", 2, "74.70"),
            ("Kg==", 0, "42"),
            ("/w==", 3, "-0.001"),
            ("BQ==", 4, "0.0005"),
            ("MDk", 2, "123.45"), // padding is optional
        ] {
            assert_eq!(decimal_from_base64(encoded, scale).as_deref(), Ok(expected));
        }
        // decimal(38, 0) and i128 extremes: 16 bytes.
        let nines = "9".repeat(38);
        let wide = |s| decimal_from_base64(s, 0).unwrap();
        assert_eq!(wide("SztMqFqGxHoJiiI//////w=="), nines);
        assert_eq!(wide("tMSzV6V5O4X2dd3AAAAAAQ=="), format!("-{nines}"));
        let s38 = decimal_from_base64("SztMqFqGxHoJiiI//////w==", 38).unwrap();
        assert_eq!(s38, format!("0.{nines}"));
        assert_eq!(wide("f////////////////////w=="), i128::MAX.to_string());
        assert_eq!(wide("gAAAAAAAAAAAAAAAAAAAAA=="), i128::MIN.to_string());
    }

    #[test]
    fn bad_decimals() {
        let err = decimal_from_base64("not base64!", 2).unwrap_err();
        assert!(matches!(&err, DecodeError::InvalidBase64(d) if d.contains("not base64!")));
        let text = err.to_string();
        assert!(text.contains("decimal is not valid base64: "), "{text}");
        let long = decimal_from_base64(&"!".repeat(1_000), 2).unwrap_err();
        assert!(long.to_string().len() < 200, "stays short: {long}");
        assert_eq!(decimal_from_base64("", 2), Err(DecodeError::EmptyDecimal));
        let wide = BASE64.encode([1u8; 17]);
        let err = decimal_from_base64(&wide, 2);
        assert_eq!(err, Err(DecodeError::DecimalTooWide(17)));
    }

    #[test]
    fn decimal_round_trips() {
        assert_eq!(java_bytes(255), [0, 0xff]);
        assert_eq!(java_bytes(-129), [0xff, 0x7f]);
        let mut values = vec![i128::MIN, i128::MAX, 0, 10_i128.pow(38) - 1];
        for p in (0..127).map(|bits| 1_i128 << bits) {
            values.extend([p, p - 1, -p, -p - 1, p / 3, -p / 7]);
        }
        for v in values {
            let encoded = BASE64.encode(java_bytes(v));
            let plain = decimal_from_base64(&encoded, 0);
            assert_eq!(plain, Ok(v.to_string()), "{encoded}");
            let scaled = decimal_from_base64(&encoded, 3).unwrap();
            assert_eq!(scaled.replace('.', "").parse::<i128>(), Ok(v), "{scaled}");
        }
    }

    #[test]
    fn dates() {
        // Python: (date.fromisoformat(expected) - date(1970, 1, 1)).days; five samples.
        for (days, expected) in [
            (5_551, "1985-03-14"),
            (10_956, "1999-12-31"),
            (-3_159, "1961-05-09"),
            (7_470, "1990-06-15"),
            (20_777, "2026-11-20"),
            (0, "1970-01-01"),
            (-1, "1969-12-31"),
            (11_016, "2000-02-29"),
            (-25_508, "1900-03-01"),
            (-135_081, "1600-02-29"),
            (-719_162, "0001-01-01"),
            (2_932_896, "9999-12-31"),
            (-719_529, "-0001-12-31"),
            (2_932_897, "10000-01-01"),
        ] {
            assert_eq!(date_from_epoch_days(days), expected);
        }
        // Total over i64, and every day parses back.
        assert!(date_from_epoch_days(i64::MIN).starts_with('-'));
        assert!(date_from_epoch_days(i64::MAX).ends_with(char::is_numeric));
        for days in (-1_084_000..=3_011_000).step_by(97) {
            let (seconds, _) = parse(&date_from_epoch_days(days));
            assert_eq!(seconds, i128::from(days) * 86_400);
        }
    }

    #[test]
    fn timestamps() {
        // Python: datetime(1970, 1, 1) + timedelta(microseconds=us); ns split by divmod.
        let (ms, us) = (timestamp_from_epoch_millis, timestamp_from_epoch_micros);
        for (v, expected) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (1_704_447_000_125, "2024-01-05T09:30:00.125Z"),
            (1_795_162_531_250, "2026-11-20T08:15:31.250Z"),
            (1_795_162_620_001, "2026-11-20T08:17:00.001Z"),
            (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(ms(v), expected);
        }
        assert_eq!(us(-1_500_000), "1969-12-31T23:59:58.500000Z");
        assert_eq!(us(1_795_162_530_233_417), "2026-11-20T08:15:30.233417Z");
        for (v, expected) in [
            (-1, "1969-12-31T23:59:59.999999999Z"),
            (-2208988799999999999, "1900-01-01T00:00:00.000000001Z"),
            (1793534400123456700, "2026-11-01T12:00:00.123456700Z"),
            (1793609112000001001, "2026-11-02T08:45:12.000001001Z"),
            (1793750399999999999, "2026-11-03T23:59:59.999999999Z"),
            (1795162562123456789, "2026-11-20T08:16:02.123456789Z"),
            (i64::MIN, "1677-09-21T00:12:43.145224192Z"),
            (i64::MAX, "2262-04-11T23:47:16.854775807Z"),
        ] {
            assert_eq!(timestamp_from_epoch_nanos(v), expected);
        }
        assert!(ms(i64::MIN).starts_with('-') && us(i64::MAX).ends_with('Z'));
    }

    #[test]
    fn timestamp_round_trips() {
        for ms in (-62_135_596_800_000_i64..253_402_300_800_000).step_by(7_777_777_777) {
            let (s, f) = parse(&timestamp_from_epoch_millis(ms));
            assert_eq!(s * 1_000 + f, i128::from(ms));
            let us = ms * 1_000 - 7;
            let (s, f) = parse(&timestamp_from_epoch_micros(us));
            assert_eq!(s * 1_000_000 + f, i128::from(us));
            let ns = ms.wrapping_mul(1_000_017) / 1_000; // spread over the i64 range
            let (s, f) = parse(&timestamp_from_epoch_nanos(ns));
            assert_eq!(s * 1_000_000_000 + f, i128::from(ns));
        }
    }

    #[test]
    fn times_of_day() {
        assert_eq!(time_from_millis_of_day(0), "00:00:00.000");
        assert_eq!(time_from_millis_of_day(45_296_789), "12:34:56.789");
        assert_eq!(time_from_millis_of_day(86_399_999), "23:59:59.999");
        assert_eq!(time_from_millis_of_day(86_400_000), "24:00:00.000");
        assert_eq!(time_from_millis_of_day(-1), "-00:00:00.001");
        let nanos = time_from_nanos_of_day;
        assert_eq!(nanos(45_296_000_000_001), "12:34:56.000000001");
        assert_eq!(nanos(86_399_999_999_999), "23:59:59.999999999");
        assert_eq!(nanos(i64::MIN), "-2562047:47:16.854775808");
    }
}
