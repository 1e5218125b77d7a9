//! Every SQL Server type of the mapping table, from values shaped like tiberius's
//! `ColumnData`, against the values and schemas Debezium emits.

use super::*;

fn column(sql_type: SqlType) -> Column {
    Column {
        name: "c".into(),
        sql_type,
        optional: true,
        catalog: Default::default(),
        mask: None,
    }
}

fn json(sql_type: SqlType, value: SqlValue, mode: DecimalMode) -> String {
    let mut out = String::new();
    push_value(&mut out, &column(sql_type), &value, mode).expect("maps");
    out
}

fn precise(sql_type: SqlType, value: SqlValue) -> String {
    json(sql_type, value, DecimalMode::Precise)
}

/// 2024-01-05 as days since 0001-01-01 and since 1900-01-01.
const DAY_0001: u32 = 738_889;
const DAY_1900: i32 = 45_294;
/// 09:30:00 in ms.
const NINE_THIRTY_MS: u64 = 34_200_000;

#[test]
fn integers_booleans_and_text() {
    assert_eq!(precise(SqlType::Bit, SqlValue::Bit(true)), "true");
    assert_eq!(precise(SqlType::TinyInt, SqlValue::U8(255)), "255");
    assert_eq!(precise(SqlType::SmallInt, SqlValue::I16(-32768)), "-32768");
    assert_eq!(precise(SqlType::Int, SqlValue::I32(1001)), "1001");
    // SQL Server stores no NaN; one would still make JSON (found by fuzzing), as
    // Jackson writes it.
    assert_eq!(precise(SqlType::Float, SqlValue::F64(f64::NAN)), r#""NaN""#);
    assert_eq!(
        precise(SqlType::Real, SqlValue::F32(f32::NEG_INFINITY)),
        r#""-Infinity""#
    );
    assert_eq!(
        precise(SqlType::BigInt, SqlValue::I64(i64::MAX)),
        "9223372036854775807"
    );
    assert_eq!(
        precise(SqlType::Text, SqlValue::String("Zoë \"q\"\n".into())),
        r#""Zoë \"q\"\n""#
    );
    assert_eq!(
        precise(SqlType::Xml, SqlValue::Xml("<a/>".into())),
        r#""<a/>""#
    );
    assert_eq!(
        precise(
            SqlType::UniqueIdentifier,
            SqlValue::Guid("6f9619ff-8b86-d011-b42d-00c04fc964ff".into())
        ),
        r#""6F9619FF-8B86-D011-B42D-00C04FC964FF""#
    );
    assert_eq!(
        precise(SqlType::Binary, SqlValue::Binary(vec![0, 1, 2, 255])),
        r#""AAEC/w==""#
    );
    assert_eq!(precise(SqlType::Int, SqlValue::Null), "null");
}

#[test]
fn floats_print_like_java() {
    let cases = [
        (1.0, "1.0"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (100.0, "100.0"),
        (123456.789, "123456.789"),
        (1e7, "1.0E7"),
        (1.2345e10, "1.2345E10"),
        (0.001, "0.001"),
        (1e-4, "1.0E-4"),
        (-2.5e-5, "-2.5E-5"),
        (0.0, "0.0"),
    ];
    for (x, expected) in cases {
        assert_eq!(precise(SqlType::Float, SqlValue::F64(x)), expected, "{x}");
    }
    assert_eq!(precise(SqlType::Real, SqlValue::F32(0.1)), "0.1");
    assert_eq!(precise(SqlType::Real, SqlValue::F32(3.0)), "3.0");
}

#[test]
fn decimals_in_the_three_modes() {
    let decimal = SqlType::Decimal {
        precision: 12,
        scale: 2,
    };
    let value = |v: i128| SqlValue::Numeric { value: v, scale: 2 };
    // The samples' credit limits: 5000.00, 1250.50, 0.00, -250.75.
    assert_eq!(precise(decimal, value(500_000)), r#""B6Eg""#);
    assert_eq!(precise(decimal, value(125_050)), r#""Aeh6""#);
    assert_eq!(precise(decimal, value(0)), r#""AA==""#);
    assert_eq!(precise(decimal, value(-25_075)), r#""ng0=""#);
    assert_eq!(
        json(decimal, value(500_000), DecimalMode::String),
        r#""5000.00""#
    );
    assert_eq!(json(decimal, value(-5), DecimalMode::String), r#""-0.05""#);
    assert_eq!(json(decimal, value(500_000), DecimalMode::Double), "5000.0");
    assert_eq!(
        json(decimal, value(-25_075), DecimalMode::Double),
        "-250.75"
    );
    // A value read at another scale is brought to the column's.
    assert_eq!(
        precise(decimal, SqlValue::Numeric { value: 5, scale: 0 }),
        r#""AfQ=""#
    );
    // Minimal two's complement, like BigInteger.toByteArray.
    assert_eq!(unscaled_bytes(128), vec![0x00, 0x80]);
    assert_eq!(unscaled_bytes(-129), vec![0xff, 0x7f]);
    assert_eq!(unscaled_bytes(-1), vec![0xff]);
    // money: tiberius reads it as f64.
    assert_eq!(
        precise(SqlType::Money, SqlValue::F64(1234.5678)),
        r#""ALxhTg==""#
    );
    assert_eq!(
        json(
            SqlType::SmallMoney,
            SqlValue::F64(1234.5678),
            DecimalMode::String
        ),
        r#""1234.5678""#
    );
    assert_eq!(
        field_schema(&column(decimal), DecimalMode::Precise),
        r#"{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"c"}"#
    );
    assert_eq!(
        field_schema(&column(SqlType::Money), DecimalMode::Precise),
        r#"{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"4","connect.decimal.precision":"19"},"field":"c"}"#
    );
    assert_eq!(
        field_schema(&column(decimal), DecimalMode::Double),
        r#"{"type":"double","optional":true,"field":"c"}"#
    );
    assert_eq!(
        field_schema(&column(decimal), DecimalMode::String),
        r#"{"type":"string","optional":true,"field":"c"}"#
    );
}

#[test]
fn dates_and_times_with_adaptive_precision() {
    // date: days since the epoch (the sample's 1985-03-14 is 5551).
    assert_eq!(
        precise(SqlType::Date, SqlValue::Date { days: 724_713 }),
        "5551"
    );
    assert_eq!(
        precise(
            SqlType::Date,
            SqlValue::Date {
                days: 719_162 - 3159
            }
        ),
        "-3159"
    );
    // time(3) ms, time(6) µs, time(7) ns.
    let t = |scale, increments| SqlValue::Time { increments, scale };
    assert_eq!(
        precise(SqlType::Time { scale: 3 }, t(3, NINE_THIRTY_MS + 125)),
        "34200125"
    );
    assert_eq!(
        precise(SqlType::Time { scale: 0 }, t(0, 34_200)),
        "34200000"
    );
    assert_eq!(
        precise(SqlType::Time { scale: 6 }, t(6, 34_200_123_456)),
        "34200123456"
    );
    assert_eq!(
        precise(SqlType::Time { scale: 7 }, t(7, 342_001_234_567)),
        "34200123456700"
    );
    // datetime: 1/300 s rounded to .000/.003/.007 ms; smalldatetime: minutes.
    let dt = |fragments| SqlValue::DateTime {
        days: DAY_1900,
        fragments,
    };
    assert_eq!(
        precise(SqlType::DateTime, dt(34_200 * 300 + 1)),
        "1704447000003"
    );
    assert_eq!(
        precise(SqlType::DateTime, dt(34_200 * 300 + 2)),
        "1704447000007"
    );
    assert_eq!(
        precise(SqlType::DateTime, dt(34_200 * 300 + 300)),
        "1704447001000"
    );
    assert_eq!(
        precise(
            SqlType::SmallDateTime,
            SqlValue::SmallDateTime {
                days: DAY_1900 as u16,
                minutes: 570
            }
        ),
        "1704447000000"
    );
    // datetime2(3) → Timestamp (the sample's created_at), (6) → MicroTimestamp,
    // (7) → NanoTimestamp (the sample's updated_at).
    let dt2 = |days, increments, scale| SqlValue::DateTime2 {
        days,
        increments,
        scale,
    };
    assert_eq!(
        precise(
            SqlType::DateTime2 { scale: 3 },
            dt2(DAY_0001, NINE_THIRTY_MS + 125, 3)
        ),
        "1704447000125"
    );
    assert_eq!(
        precise(
            SqlType::DateTime2 { scale: 6 },
            dt2(DAY_0001, 34_200_000_001, 6)
        ),
        "1704447000000001"
    );
    assert_eq!(
        precise(
            SqlType::DateTime2 { scale: 7 },
            dt2(739_920, 432_001_234_567, 7)
        ),
        "1793534400123456700"
    );
    // datetimeoffset: ISO-8601 in its own offset.
    let dto = |offset_minutes, increments| SqlValue::DateTimeOffset {
        days: 739_920,
        increments,
        scale: 7,
        offset_minutes,
    };
    assert_eq!(
        precise(
            SqlType::DateTimeOffset { scale: 7 },
            dto(120, 432_001_234_567)
        ),
        r#""2026-11-01T14:00:00.1234567+02:00""#
    );
    assert_eq!(
        precise(
            SqlType::DateTimeOffset { scale: 7 },
            dto(0, 432_000_000_000)
        ),
        r#""2026-11-01T12:00:00Z""#
    );
    assert_eq!(
        precise(SqlType::DateTimeOffset { scale: 7 }, dto(-330, 0)),
        r#""2026-10-31T18:30:00-05:30""#
    );
    // The ends of the type's range (found by the `sqlserver_values` fuzz target: the
    // nanoseconds since 1970 overflowed an i64 before 1677 and after 2262).
    let at = |days, increments, offset_minutes| SqlValue::DateTimeOffset {
        days,
        increments,
        scale: 7,
        offset_minutes,
    };
    assert_eq!(
        precise(SqlType::DateTimeOffset { scale: 7 }, at(0, 0, 0)),
        r#""0001-01-01T00:00:00Z""#
    );
    assert_eq!(
        precise(
            SqlType::DateTimeOffset { scale: 7 },
            at(3_652_058, 863_999_999_999, -300)
        ),
        r#""9999-12-31T18:59:59.9999999-05:00""#
    );
    assert_eq!(
        precise(
            SqlType::DateTimeOffset { scale: 7 },
            at(3_652_058, 863_999_999_999, 0)
        ),
        r#""9999-12-31T23:59:59.9999999Z""#
    );
}

/// A datetime2(7) past 2262 does not fit Debezium's NanoTimestamp (int64 nanoseconds):
/// refused with the value and the way out named, and written in connect mode.
#[test]
fn a_datetime2_beyond_nanosecond_range_names_the_value_and_the_way_out() {
    let end_of_time = SqlValue::DateTime2 {
        days: 3_652_058,
        increments: 863_999_999_999,
        scale: 7,
    };
    let column = column(SqlType::DateTime2 { scale: 7 });
    let mut out = String::new();
    let error = push_value(&mut out, &column, &end_of_time, ValueModes::default())
        .expect_err("9999-12-31 overflows int64 nanoseconds");
    assert_eq!(error.column, "c");
    assert!(
        error.reason.starts_with(
            "9999-12-31T23:59:59.9999999 is outside the range of io.debezium.time.NanoTimestamp"
        ),
        "{}",
        error.reason
    );
    assert!(
        error.reason.contains(r#"time.precision.mode = "connect""#),
        "{}",
        error.reason
    );
    // The last instant that fits, 2262-04-11T23:47:16.8547758 (whole 100 ns), still maps.
    let last = SqlValue::DateTime2 {
        days: 719_162 + 106_751,
        increments: 856_368_547_758,
        scale: 7,
    };
    assert_eq!(
        with_modes(&column, last, ValueModes::default()),
        "9223372036854775800"
    );
    let connect = ValueModes {
        time: TimePrecision::Connect,
        ..ValueModes::default()
    };
    assert_eq!(with_modes(&column, end_of_time, connect), "253402300799999");
}

#[test]
fn schemas_name_the_logical_types() {
    let cases = [
        (
            SqlType::Bit,
            r#"{"type":"boolean","optional":true,"field":"c"}"#,
        ),
        (
            SqlType::TinyInt,
            r#"{"type":"int16","optional":true,"field":"c"}"#,
        ),
        (
            SqlType::Int,
            r#"{"type":"int32","optional":true,"field":"c"}"#,
        ),
        (
            SqlType::Real,
            r#"{"type":"float","optional":true,"field":"c"}"#,
        ),
        (
            SqlType::Binary,
            r#"{"type":"bytes","optional":true,"field":"c"}"#,
        ),
        (
            SqlType::Date,
            r#"{"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"c"}"#,
        ),
        (
            SqlType::Time { scale: 3 },
            r#"{"type":"int32","optional":true,"name":"io.debezium.time.Time","version":1,"field":"c"}"#,
        ),
        (
            SqlType::Time { scale: 5 },
            r#"{"type":"int64","optional":true,"name":"io.debezium.time.MicroTime","version":1,"field":"c"}"#,
        ),
        (
            SqlType::Time { scale: 7 },
            r#"{"type":"int64","optional":true,"name":"io.debezium.time.NanoTime","version":1,"field":"c"}"#,
        ),
        (
            SqlType::DateTime,
            r#"{"type":"int64","optional":true,"name":"io.debezium.time.Timestamp","version":1,"field":"c"}"#,
        ),
        (
            SqlType::DateTime2 { scale: 6 },
            r#"{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"c"}"#,
        ),
        (
            SqlType::DateTime2 { scale: 7 },
            r#"{"type":"int64","optional":true,"name":"io.debezium.time.NanoTimestamp","version":1,"field":"c"}"#,
        ),
        (
            SqlType::DateTimeOffset { scale: 7 },
            r#"{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"c"}"#,
        ),
    ];
    for (sql_type, expected) in cases {
        assert_eq!(
            field_schema(&column(sql_type), DecimalMode::Precise),
            expected,
            "{sql_type:?}"
        );
    }
    assert_eq!(SqlType::from_catalog("nvarchar", 0, 0), Some(SqlType::Text));
    assert_eq!(
        SqlType::from_catalog("datetime2", 27, 7),
        Some(SqlType::DateTime2 { scale: 7 })
    );
    assert_eq!(SqlType::from_catalog("geography", 0, 0), None);
}

#[test]
fn a_value_that_does_not_fit_its_column_is_an_error_naming_the_column() {
    let mut out = String::new();
    let not_null = Column {
        name: "id".into(),
        sql_type: SqlType::Int,
        optional: false,
        catalog: Default::default(),
        mask: None,
    };
    let error = push_value(
        &mut out,
        &not_null,
        &SqlValue::String("x".into()),
        DecimalMode::Precise,
    )
    .expect_err("text");
    assert!(
        error.to_string().starts_with("column id: a String"),
        "{error}"
    );
    let decimal = column(SqlType::Decimal {
        precision: 5,
        scale: 0,
    });
    assert!(
        push_value(
            &mut out,
            &decimal,
            &SqlValue::Numeric {
                value: 15,
                scale: 1
            },
            DecimalMode::Precise
        )
        .is_err()
    );
}

/// CDC leaves NOT NULL columns NULL in some rows (an update's before-image of an
/// unchanged `nvarchar(max)`, a delete's `text`, computed columns): Debezium writes the
/// type's zero, and so does capture.
#[test]
fn null_in_a_not_null_column_is_written_as_debeziums_fallback() {
    let fallback = |sql_type: SqlType, mode: DecimalMode| {
        let not_null = Column {
            name: "c".into(),
            sql_type,
            optional: false,
            catalog: Default::default(),
            mask: None,
        };
        let mut out = String::new();
        push_value(&mut out, &not_null, &SqlValue::Null, mode).expect("a fallback");
        out
    };
    let precise = DecimalMode::Precise;
    assert_eq!(fallback(SqlType::Int, precise), "0");
    assert_eq!(fallback(SqlType::Bit, precise), "false");
    assert_eq!(fallback(SqlType::Float, precise), "0.0");
    assert_eq!(fallback(SqlType::Text, precise), r#""""#);
    assert_eq!(fallback(SqlType::DateTime2 { scale: 7 }, precise), "0");
    assert_eq!(
        fallback(SqlType::DateTimeOffset { scale: 7 }, precise),
        r#""1970-01-01T00:00:00Z""#
    );
    // BigDecimal.ZERO: one zero byte.
    assert_eq!(fallback(SqlType::Money, precise), r#""AA==""#);
    assert_eq!(fallback(SqlType::Money, DecimalMode::String), r#""0.0000""#);
}

/// Money read as f64 (what tiberius gives without capture's cast to decimal) is exact
/// only below 2^51 units; beyond that it is refused, never rounded to a wrong amount.
#[test]
fn money_through_f64_is_exact_or_refused() {
    let money = Column {
        name: "m".into(),
        sql_type: SqlType::Money,
        optional: true,
        catalog: Default::default(),
        mask: None,
    };
    let as_string = |x: f64| {
        let mut out = String::new();
        push_value(&mut out, &money, &SqlValue::F64(x), DecimalMode::String).map(|_| out)
    };
    assert_eq!(as_string(1234.5678).expect("small"), r#""1234.5678""#);
    assert!(
        as_string(274_880_111_431.989_9).is_err(),
        "f64 cannot tell .9899 from .9900 here"
    );
    // Exact through the decimal cast capture selects.
    let mut out = String::new();
    push_value(
        &mut out,
        &money,
        &SqlValue::Numeric {
            value: 2_748_801_114_319_899,
            scale: 4,
        },
        DecimalMode::String,
    )
    .expect("numeric");
    assert_eq!(out, r#""274880111431.9899""#);
}

#[test]
fn strings_are_escaped_as_jackson_escapes_them() {
    let escaped = |text: &str| {
        let mut out = String::new();
        push_json_string(&mut out, text);
        out
    };
    assert_eq!(escaped("plain Zoë ✓"), r#""plain Zoë ✓""#);
    assert_eq!(escaped("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(escaped("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
    // Jackson writes upper-case hex (serde_json would write \u001f).
    assert_eq!(escaped("\u{1f}\u{0}x"), r#""\u001F\u0000x""#);
    assert_eq!(escaped(""), r#""""#);
    // Whatever it escapes, it is JSON that reads back as the text.
    let all: String = (0u8..0x80).map(char::from).chain("é€𝄞".chars()).collect();
    assert_eq!(
        serde_json::from_str::<String>(&escaped(&all)).expect("valid JSON"),
        all
    );
}

/// `schemas_enable = true`: a column's default constraint is the field's `default`, in
/// the field's own form (Debezium's `TableSchemaBuilder`), after its `parameters`.
#[test]
fn field_schemas_carry_the_parsed_default() {
    let column = |sql_type: SqlType, default: &str| Column {
        name: "c".into(),
        sql_type,
        optional: false,
        catalog: crate::sqlserver::catalog::ColumnCatalog {
            default: Some(default.into()),
            ..Default::default()
        },
        mask: None,
    };
    assert_eq!(
        field_schema(&column(SqlType::Int, "((0))"), DecimalMode::Precise),
        r#"{"type":"int32","optional":false,"default":0,"field":"c"}"#
    );
    assert_eq!(
        field_schema(&column(SqlType::Text, "(N'new')"), DecimalMode::Precise),
        r#"{"type":"string","optional":false,"default":"new","field":"c"}"#
    );
    assert_eq!(
        field_schema(
            &column(
                SqlType::Decimal {
                    precision: 12,
                    scale: 2
                },
                "((1.5))"
            ),
            DecimalMode::Precise
        ),
        r#"{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"default":"AJY=","field":"c"}"#
    );
    assert_eq!(
        field_schema(
            &column(SqlType::DateTime, "(getdate())"),
            DecimalMode::Precise
        ),
        r#"{"type":"int64","optional":false,"name":"io.debezium.time.Timestamp","version":1,"field":"c"}"#
    );
}

fn with_modes(column: &Column, value: SqlValue, modes: ValueModes) -> String {
    let mut out = String::new();
    push_value(&mut out, column, &value, modes).expect("maps");
    out
}

/// `time.precision.mode = connect`: Kafka Connect's Date, Time and Timestamp, in ms,
/// whatever the column's precision (finer digits are cut, earlier instants floor).
#[test]
fn connect_time_precision_writes_kafka_connects_types_in_ms() {
    let connect = ValueModes {
        time: TimePrecision::Connect,
        ..ValueModes::default()
    };
    let value = |sql_type, value| with_modes(&column(sql_type), value, connect);
    assert_eq!(
        value(SqlType::Date, SqlValue::Date { days: 724_713 }),
        "5551"
    );
    assert_eq!(
        value(
            SqlType::Time { scale: 7 },
            SqlValue::Time {
                increments: 342_001_234_567,
                scale: 7
            }
        ),
        "34200123"
    );
    assert_eq!(
        value(
            SqlType::DateTime2 { scale: 7 },
            SqlValue::DateTime2 {
                days: 739_920,
                increments: 432_001_234_567,
                scale: 7
            }
        ),
        "1793534400123"
    );
    // 1969-12-31 23:59:59.9999999 floors to -1 ms, as java.sql.Timestamp.getTime().
    assert_eq!(
        value(
            SqlType::DateTime2 { scale: 7 },
            SqlValue::DateTime2 {
                days: 719_161,
                increments: 863_999_999_999,
                scale: 7
            }
        ),
        "-1"
    );
    let schema = |sql_type| field_schema(&column(sql_type), connect);
    assert_eq!(
        schema(SqlType::Time { scale: 7 }),
        r#"{"type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Time","version":1,"field":"c"}"#
    );
    assert_eq!(
        schema(SqlType::DateTime2 { scale: 7 }),
        r#"{"type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp","version":1,"field":"c"}"#
    );
    assert_eq!(
        schema(SqlType::Date),
        r#"{"type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Date","version":1,"field":"c"}"#
    );
    // datetimeoffset stays a ZonedTimestamp string.
    assert!(schema(SqlType::DateTimeOffset { scale: 7 }).contains("ZonedTimestamp"));
}

/// `binary.handling.mode`: bytes (base64 under a bytes schema), base64, base64-url-safe
/// (padded) and hex (lower case) under a string schema.
#[test]
fn binary_handling_modes() {
    let bytes = SqlValue::Binary(vec![0xFB, 0xFF, 0x01]);
    let in_mode = |binary| {
        let modes = ValueModes {
            binary,
            ..ValueModes::default()
        };
        (
            with_modes(&column(SqlType::Binary), bytes.clone(), modes),
            field_schema(&column(SqlType::Binary), modes),
        )
    };
    let (value, schema) = in_mode(BinaryMode::Bytes);
    assert_eq!(value, r#""+/8B""#);
    assert!(schema.starts_with(r#"{"type":"bytes""#), "{schema}");
    let (value, schema) = in_mode(BinaryMode::Base64);
    assert_eq!(value, r#""+/8B""#);
    assert!(schema.starts_with(r#"{"type":"string""#), "{schema}");
    assert_eq!(in_mode(BinaryMode::Base64UrlSafe).0, r#""-_8B""#);
    assert_eq!(
        with_modes(
            &column(SqlType::Binary),
            SqlValue::Binary(vec![0xFB]),
            ValueModes {
                binary: BinaryMode::Base64UrlSafe,
                ..ValueModes::default()
            }
        ),
        r#""-w==""#
    );
    assert_eq!(in_mode(BinaryMode::Hex).0, r#""fbff01""#);
}

/// Masks rewrite character values (NULL too, for `with.N.chars`), add `masked` to the
/// value field's schema, and never touch the key's.
#[test]
fn masks_rewrite_character_values_and_mark_the_schema() {
    use crate::masks::{HashAlgorithm, Mask};
    let masked = |mask: Mask, type_name: &str, max_length: i16| Column {
        name: "c".into(),
        sql_type: SqlType::Text,
        optional: true,
        catalog: crate::sqlserver::catalog::ColumnCatalog {
            type_name: type_name.into(),
            max_length,
            ..Default::default()
        },
        mask: Some(mask),
    };
    let stars = masked(Mask::Chars(5), "nvarchar", 100);
    let text = SqlValue::String("secret".into());
    let modes = ValueModes::default();
    assert_eq!(with_modes(&stars, text.clone(), modes), r#""*****""#);
    assert_eq!(with_modes(&stars, SqlValue::Null, modes), r#""*****""#);
    let mut key = String::new();
    push_key_value(&mut key, &stars, &text, modes).expect("maps");
    assert_eq!(key, r#""secret""#);
    assert_eq!(
        field_schema(&stars, modes),
        r#"{"type":"string","optional":true,"parameters":{"masked":"true"},"field":"c"}"#
    );
    assert_eq!(
        key_field_schema(&stars, modes),
        r#"{"type":"string","optional":true,"field":"c"}"#
    );
    // A hash is cut to the column's length (nvarchar(8): 16 bytes, 8 characters).
    let hash = Mask::Hash {
        algorithm: HashAlgorithm::Sha256,
        salt: "a".into(),
        v2: true,
    };
    let short = masked(hash.clone(), "nvarchar", 16);
    assert_eq!(
        with_modes(&short, SqlValue::String("bc".into()), modes),
        r#""ba7816bf""#
    );
    assert_eq!(with_modes(&short, SqlValue::Null, modes), "null");
    // Other types keep their values; their schema is marked all the same, after the
    // type's own parameters.
    let mut number = masked(Mask::Chars(3), "", 0);
    number.sql_type = SqlType::Decimal {
        precision: 5,
        scale: 2,
    };
    assert_eq!(
        with_modes(
            &number,
            SqlValue::Numeric {
                value: 150,
                scale: 2
            },
            DecimalMode::String.into()
        ),
        r#""1.50""#
    );
    assert_eq!(
        field_schema(&number, modes),
        r#"{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"5","masked":"true"},"field":"c"}"#
    );
}

#[test]
fn integers_are_written_as_display_writes_them() {
    for n in [0, 1, -1, 9, 10, -10, 1_234_567, i64::MIN, i64::MAX] {
        let mut out = String::from("x");
        push_i64(&mut out, n);
        assert_eq!(out, format!("x{n}"));
    }
    for n in [0, 7, 10, u64::MAX] {
        let mut out = String::new();
        push_u64(&mut out, n);
        assert_eq!(out, n.to_string());
    }
}
