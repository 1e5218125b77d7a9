//! The text-to-Debezium mapping, value by value (expected forms from Debezium's
//! PostgreSQL connector documentation and `PostgresValueConverter`).

use super::*;

fn value(kind: &Kind, text: &str) -> String {
    let mut out = String::new();
    push_value(&mut out, kind, text, DecimalMode::Precise).expect("maps");
    out
}

#[test]
fn integers_floats_and_booleans() {
    assert_eq!(value(&Kind::Int32, "-42"), "-42");
    assert_eq!(value(&Kind::Bool, "t"), "true");
    assert_eq!(value(&Kind::Float64, "1.5"), "1.5");
    assert_eq!(value(&Kind::Float64, "1e+20"), "1.0E20");
    assert_eq!(value(&Kind::Float32, "0.1"), "0.1");
    assert_eq!(value(&Kind::Float64, "NaN"), "\"NaN\"");
    assert!(push_value(&mut String::new(), &Kind::Int16, "x", DecimalMode::Precise).is_err());
}

#[test]
fn numerics_in_the_three_decimal_modes() {
    let fixed = Kind::Numeric(Some((10, 2)));
    // 12345 = 0x3039; -12345 = 0xCFC7.
    assert_eq!(value(&fixed, "123.45"), "\"MDk=\"");
    assert_eq!(value(&fixed, "-123.45"), "\"z8c=\"");
    assert_eq!(
        value(&Kind::Numeric(None), "-1.5"),
        r#"{"scale":1,"value":"8Q=="}"#
    );
    let mut s = String::new();
    push_value(&mut s, &fixed, "-123.45", DecimalMode::String).expect("string");
    assert_eq!(s, "\"-123.45\"");
    let mut d = String::new();
    push_value(&mut d, &fixed, "-123.45", DecimalMode::Double).expect("double");
    assert_eq!(d, "-123.45");
    assert_eq!(twos_complement("128"), vec![0x00, 0x80]);
    assert_eq!(twos_complement("-128"), vec![0x80]);
    assert_eq!(twos_complement("0"), vec![0x00]);
    // Beyond i128.
    assert_eq!(
        twos_complement("340282366920938463463374607431768211456"),
        [&[0x01][..], &[0u8; 16][..]].concat()
    );
    let money = Kind::Money {
        digits: 2,
        scale: 2,
    };
    assert_eq!(value(&money, "-$1,234.50"), value(&fixed, "-1234.50"));
}

#[test]
fn dates_times_and_timestamps() {
    assert_eq!(value(&Kind::Date, "1970-01-02"), "1");
    assert_eq!(value(&Kind::Date, "1969-12-31"), "-1");
    assert_eq!(
        value(&Kind::Date, "0001-01-01 BC"),
        "-719528",
        "year 0, a leap year"
    );
    assert_eq!(
        value(&Kind::Time { micros: true }, "01:00:00.5"),
        "3600500000"
    );
    assert_eq!(
        value(&Kind::Time { micros: false }, "01:00:00.5"),
        "3600500"
    );
    assert_eq!(
        value(
            &Kind::Timestamp { micros: true },
            "1969-12-31 23:59:59.999999"
        ),
        "-1"
    );
    assert_eq!(
        value(&Kind::TimestampTz { width: 6 }, "2020-01-02 03:04:05.5+00"),
        "\"2020-01-02T03:04:05.500000Z\""
    );
    assert_eq!(
        value(&Kind::TimestampTz { width: 0 }, "2020-01-02 03:04:05+05:30"),
        "\"2020-01-01T21:34:05Z\""
    );
    assert_eq!(
        value(&Kind::TimestampTz { width: 6 }, "infinity"),
        "\"infinity\""
    );
    assert_eq!(value(&Kind::TimeTz, "12:00:00.25+02"), "\"10:00:00.25Z\"");
    // One month is 30.4375 days in Debezium's MicroDuration.
    assert_eq!(
        value(&Kind::Interval { iso: false }, "P1M"),
        "2629800000000"
    );
    assert_eq!(value(&Kind::Interval { iso: false }, "PT-1.5S"), "-1500000");
    assert_eq!(
        value(&Kind::Interval { iso: false }, "P1Y2M3DT4H5M6.5S"),
        "37091106500000"
    );
}

/// Found by the `pg_values` fuzz target with overflow checks on: values PostgreSQL does
/// not send, whose arithmetic overflowed (a panic in a debug build, a wrong instant in a
/// release one); now each is refused with its reason.
#[test]
fn times_out_of_range_are_refused_not_overflowed() {
    let refused = |kind: &Kind, text: &str| {
        let mut out = String::new();
        assert!(
            push_value(&mut out, kind, text, DecimalMode::Precise).is_err(),
            "{kind:?} {text:?} gave {out:?}"
        );
    };
    refused(&Kind::Time { micros: true }, "3:599990000013:9");
    refused(&Kind::Time { micros: true }, "25:00:00");
    refused(
        &Kind::Timestamp { micros: true },
        "999999999-01-01 00:00:00",
    );
    refused(
        &Kind::TimestampTz { width: 6 },
        "2020-01-01 00:00:00+99999999999999",
    );
    refused(&Kind::TimestampTz { width: 6 }, "2020-01-01 00:00:00+123");
    refused(&Kind::TimeTz, "12:00:00+9223372036854775807");
    refused(&Kind::Date, "2020-13-01");
    assert_eq!(
        value(&Kind::Time { micros: true }, "24:00:00"),
        "86400000000"
    );
}

#[test]
fn text_like_bytes_arrays_and_hstore() {
    assert_eq!(value(&Kind::Text, "Zoë \"q\""), "\"Zoë \\\"q\\\"\"");
    assert_eq!(
        value(&Kind::Bytea(BinaryMode::Bytes), "\\x0102ff"),
        "\"AQL/\""
    );
    let ints = Kind::Array(Box::new(Kind::Int32));
    assert_eq!(value(&ints, "{1,NULL,-3}"), "[1,null,-3]");
    assert_eq!(value(&ints, "{}"), "[]");
    let texts = Kind::Array(Box::new(Kind::Text));
    assert_eq!(
        value(&texts, r#"{a,"b,c","d\"e",NULL}"#),
        r#"["a","b,c","d\"e",null]"#
    );
    // Lower bounds other than 1 (`UPDATE ... SET a[0] = 5`): the JDBC driver skips the
    // decoration, so Debezium publishes the elements.
    assert_eq!(value(&ints, "[0:2]={5,1,2}"), "[5,1,2]");
    assert_eq!(value(&ints, "[-3:-3]={7}"), "[7]");
    // Multidimensional: one null per sub-array, as Debezium's converter gives them.
    assert_eq!(value(&ints, "{{1,2},{3,4}}"), "[null,null]");
    assert_eq!(value(&ints, "[0:1][1:2]={{1,2},{3,4}}"), "[null,null]");
    assert_eq!(
        value(&texts, r#"{{"}{",b},{"\"}",NULL},{c,d}}"#),
        "[null,null,null]"
    );
    for broken in ["{1,2", "{{1,2}", "[0:2]{1}", "{1}}", "{a{b}"] {
        let mut out = String::new();
        assert!(
            push_value(&mut out, &ints, broken, DecimalMode::Precise).is_err(),
            "{broken:?} gave {out:?}"
        );
    }
    assert_eq!(
        value(&Kind::Hstore { map: false }, r#""a"=>"1", "b"=>NULL"#),
        r#""{\"a\":\"1\",\"b\":null}""#
    );
}

#[test]
fn kinds_from_oids_and_schemas() {
    let none = |_| None;
    assert_eq!(
        kind_of(1700, (10 << 16 | 2) + 4, PgModes::default(), &none),
        Some(Kind::Numeric(Some((10, 2))))
    );
    assert_eq!(
        kind_of(1700, -1, PgModes::default(), &none),
        Some(Kind::Numeric(None))
    );
    assert_eq!(
        kind_of(1083, 3, PgModes::default(), &none),
        Some(Kind::Time { micros: false })
    );
    assert_eq!(
        kind_of(628, -1, PgModes::default(), &none),
        None,
        "line is not mapped"
    );
    let mood = |oid| {
        (oid == 70_000).then(|| UserType {
            name: "mood".into(),
            kind: b'e',
            element: 0,
            enum_labels: vec!["sad".into(), "ok".into()],
        })
    };
    assert_eq!(
        kind_of(70_000, -1, PgModes::default(), &mood),
        Some(Kind::Enum("sad,ok".into()))
    );
    assert_eq!(
        schema(
            &Kind::Numeric(Some((10, 2))),
            true,
            Some("price"),
            DecimalMode::Precise
        ),
        r#"{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"price"}"#
    );
    assert_eq!(
        schema(
            &Kind::Array(Box::new(Kind::Int32)),
            false,
            Some("xs"),
            DecimalMode::Precise
        ),
        r#"{"type":"array","items":{"type":"int32","optional":true},"optional":false,"field":"xs"}"#
    );
}

/// The i128 fast path of a fixed-scale numeric writes what the digit-string path writes
/// (Java's `BigInteger.toByteArray`), and a numeric past 38 digits still maps.
#[test]
fn fixed_numerics_take_the_fast_path_to_the_same_bytes() {
    use base64::Engine;
    let shape = Kind::Numeric(Some((38, 3)));
    for text in [
        "0.000",
        "1.5",
        "-1.5",
        "127.000",
        "128.000",
        "-128.000",
        "-129.000",
        "99999999999999999999999999999999999.999",
        "-99999999999999999999999999999999999.999",
    ] {
        let (digits, scale) = split_decimal(text).expect("decimal");
        let slow = twos_complement(&rescale(&digits, scale, 3));
        let expected = format!(
            "\"{}\"",
            base64::engine::general_purpose::STANDARD.encode(slow)
        );
        assert_eq!(value(&shape, text), expected, "{text}");
    }
    let wide = Kind::Numeric(Some((60, 2)));
    let text = "-123456789012345678901234567890123456789012345678.90";
    let (digits, _) = split_decimal(text).expect("decimal");
    let expected = format!(
        "\"{}\"",
        base64::engine::general_purpose::STANDARD.encode(twos_complement(&digits))
    );
    assert_eq!(value(&wide, text), expected);
}

#[test]
fn timestamps_at_the_edges_of_the_calendar() {
    let tz = |width, text| value(&Kind::TimestampTz { width }, text);
    assert_eq!(
        tz(3, "1969-12-31 23:59:59.5+00"),
        "\"1969-12-31T23:59:59.500Z\""
    );
    assert_eq!(tz(0, "0001-01-01 00:00:00+00"), "\"0001-01-01T00:00:00Z\"");
    assert_eq!(
        tz(6, "10000-01-01 00:00:00.000001+00"),
        "\"+10000-01-01T00:00:00.000001Z\""
    );
    // 44 BC is astronomical year -43: before day 0 by about 2013 years.
    let bc: i64 = value(&Kind::Timestamp { micros: true }, "0044-03-15 12:00:00 BC")
        .parse()
        .expect("µs");
    assert!(bc < -62_000_000_000_000_000, "{bc}");
    // PostgreSQL's last years: past 64 bits of µs since 1970 (as Debezium's
    // `MicroTimestamp`, refused, naming the type), but not of ms or of a zoned text.
    let micro = Kind::Timestamp { micros: true };
    assert_eq!(
        value(&micro, "294247-01-10 04:00:54.775807"),
        i64::MAX.to_string()
    );
    let mut out = String::new();
    let refused = push_value(
        &mut out,
        &micro,
        "294247-01-10 04:00:54.775808",
        DecimalMode::Precise,
    )
    .expect_err("past i64");
    assert!(
        refused
            .to_string()
            .contains("io.debezium.time.MicroTimestamp"),
        "{refused}"
    );
    assert_eq!(
        value(
            &Kind::Timestamp { micros: false },
            "294276-12-31 23:59:59.999"
        ),
        "9224318015999999"
    );
    assert_eq!(
        tz(6, "294276-12-31 23:59:59.999999+00"),
        "\"+294276-12-31T23:59:59.999999Z\""
    );
    assert_eq!(value(&Kind::Time { micros: true }, "00:00:00.000001"), "1");
    assert_eq!(
        value(&Kind::Time { micros: false }, "23:59:59.999"),
        "86399999"
    );
}

#[test]
fn date_and_time_fields_are_read_strictly() {
    assert_eq!(fields::<3>("2026-12-05", b'-'), Some([2026, 12, 5]));
    assert_eq!(fields::<3>("11:16:08", b':'), Some([11, 16, 8]));
    for bad in [
        "2026--05",
        "2026-12",
        "2026-12-05-01",
        "a-b-c",
        "-2026-12-05",
        "2026-12-",
    ] {
        assert_eq!(fields::<3>(bad, b'-'), None, "{bad}");
    }
    assert!(
        push_value(
            &mut String::new(),
            &Kind::Date,
            "2026-1x-05",
            DecimalMode::Precise
        )
        .is_err()
    );
}

fn modes(time: PgTimePrecision) -> PgModes {
    PgModes {
        time,
        ..PgModes::default()
    }
}

/// `time.precision.mode`: `connect` writes Kafka Connect's types in ms,
/// `adaptive_time_microseconds` every `time` in µs; zoned types do not change.
#[test]
fn time_precision_modes_choose_the_time_types() {
    let none = |_| None;
    let connect = modes(PgTimePrecision::Connect);
    assert_eq!(kind_of(1082, -1, connect, &none), Some(Kind::ConnectDate));
    assert_eq!(kind_of(1083, 6, connect, &none), Some(Kind::ConnectTime));
    assert_eq!(
        kind_of(1114, 6, connect, &none),
        Some(Kind::ConnectTimestamp)
    );
    assert_eq!(
        kind_of(1184, 3, connect, &none),
        Some(Kind::TimestampTz { width: 3 })
    );
    assert_eq!(
        kind_of(1115, 6, connect, &none),
        Some(Kind::Array(Box::new(Kind::ConnectTimestamp)))
    );
    let micro = modes(PgTimePrecision::AdaptiveTimeMicroseconds);
    assert_eq!(
        kind_of(1083, 0, micro, &none),
        Some(Kind::Time { micros: true })
    );
    assert_eq!(
        kind_of(1114, 3, micro, &none),
        Some(Kind::Timestamp { micros: false })
    );
    // An array's elements take the column's precision, as Debezium's.
    assert_eq!(
        kind_of(1115, 3, PgModes::default(), &none),
        Some(Kind::Array(Box::new(Kind::Timestamp { micros: false })))
    );
    assert_eq!(value(&Kind::ConnectDate, "1969-12-31"), "-1");
    assert_eq!(value(&Kind::ConnectTime, "12:00:00.123456"), "43200123");
    assert_eq!(
        value(&Kind::ConnectTimestamp, "2000-01-01 00:00:00.5"),
        "946684800500"
    );
    assert_eq!(
        value(&Kind::ConnectTimestamp, "infinity"),
        "9223372036825200000"
    );
    for (kind, expected) in [
        (
            Kind::ConnectDate,
            r#"{"type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Date","version":1,"field":"x"}"#,
        ),
        (
            Kind::ConnectTime,
            r#"{"type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Time","version":1,"field":"x"}"#,
        ),
        (
            Kind::ConnectTimestamp,
            r#"{"type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp","version":1,"field":"x"}"#,
        ),
    ] {
        assert_eq!(
            schema(&kind, true, Some("x"), DecimalMode::Precise),
            expected
        );
    }
}

/// `binary.handling.mode`, `interval.handling.mode = string` and
/// `hstore.handling.mode = map`, values and schemas.
#[test]
fn handling_modes_write_bytea_intervals_and_hstore_as_configured() {
    let none = |_| None;
    let all = PgModes {
        binary: BinaryMode::Hex,
        interval_iso: true,
        hstore_map: true,
        ..PgModes::default()
    };
    assert_eq!(
        kind_of(17, -1, all, &none),
        Some(Kind::Bytea(BinaryMode::Hex))
    );
    assert_eq!(
        kind_of(1001, -1, all, &none),
        Some(Kind::Array(Box::new(Kind::Bytea(BinaryMode::Hex))))
    );
    assert_eq!(
        kind_of(1186, -1, all, &none),
        Some(Kind::Interval { iso: true })
    );
    assert_eq!(
        value(&Kind::Bytea(BinaryMode::Hex), "\\x00ff10"),
        "\"00ff10\""
    );
    assert_eq!(
        value(&Kind::Bytea(BinaryMode::Base64UrlSafe), "\\xfbff"),
        "\"-_8=\""
    );
    assert_eq!(
        value(&Kind::Bytea(BinaryMode::Base64), "\\xfbff"),
        "\"+/8=\""
    );
    assert_eq!(
        schema(
            &Kind::Bytea(BinaryMode::Hex),
            false,
            Some("b"),
            DecimalMode::Precise
        ),
        r#"{"type":"string","optional":false,"field":"b"}"#
    );
    let iso = Kind::Interval { iso: true };
    // Debezium's `Interval.toIsoString`: every field, seconds without trailing zeros.
    for (text, expected) in [
        ("P1Y2M3DT4H5M6.5S", "P1Y2M3DT4H5M6.5S"),
        ("PT0S", "P0Y0M0DT0H0M0S"),
        ("P-1DT2H3M", "P0Y0M-1DT2H3M0S"),
        ("PT-4H-5M-6.25S", "P0Y0M0DT-4H-5M-6.25S"),
        ("P178000000Y", "P178000000Y0M0DT0H0M0S"),
        ("PT0.000001S", "P0Y0M0DT0H0M0.000001S"),
    ] {
        assert_eq!(value(&iso, text), format!("\"{expected}\""), "{text}");
    }
    for broken in ["1 year", "P1.5Y", "PT5", "P1X", "PTS"] {
        let mut out = String::new();
        assert!(
            push_value(&mut out, &iso, broken, DecimalMode::Precise).is_err(),
            "{broken:?} gave {out:?}"
        );
    }
    assert_eq!(
        schema(&iso, true, Some("iv"), DecimalMode::Precise),
        r#"{"type":"string","optional":true,"name":"io.debezium.time.Interval","version":1,"field":"iv"}"#
    );
    let map = Kind::Hstore { map: true };
    assert_eq!(
        value(&map, r#""a"=>"1", "b c"=>NULL"#),
        r#"{"a":"1","b c":null}"#
    );
    assert_eq!(value(&map, ""), "{}");
    assert_eq!(
        schema(&map, true, Some("h"), DecimalMode::Precise),
        r#"{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"string","optional":true},"optional":true,"field":"h"}"#
    );
}

/// Types Debezium maps that sluice left out, or mapped otherwise: ranges, `tsvector`,
/// `citext`, `ltree`, network-address and range arrays, `bit`/`varbit`; and an array
/// Debezium has no schema for (`name[]`) is left out as Debezium leaves it.
#[test]
fn more_types_map_as_debezium_maps_them() {
    let none = |_| None;
    let plain = PgModes::default();
    for range in [3904, 3906, 3908, 3910, 3912, 3926] {
        assert_eq!(
            kind_of(range, -1, plain, &none),
            Some(Kind::Text),
            "{range}"
        );
    }
    for array in [3905, 1041, 651, 1040, 775] {
        assert_eq!(
            kind_of(array, -1, plain, &none),
            Some(Kind::Array(Box::new(Kind::Text))),
            "{array}"
        );
    }
    assert_eq!(kind_of(1003, -1, plain, &none), None, "name[]");
    assert_eq!(
        kind_of(3614, -1, plain, &none),
        Some(Kind::Named("io.debezium.data.TsVector"))
    );
    let contrib = |oid| {
        let name = match oid {
            70_001 => "citext",
            70_002 => "ltree",
            _ => return None,
        };
        Some(UserType {
            name: name.into(),
            kind: b'b',
            element: 0,
            enum_labels: Vec::new(),
        })
    };
    assert_eq!(kind_of(70_001, -1, plain, &contrib), Some(Kind::Text));
    assert_eq!(
        kind_of(70_002, -1, plain, &contrib),
        Some(Kind::Named("io.debezium.data.Ltree"))
    );
    // bit(1) and varbit(1) are booleans; longer ones `Bits`, a little-endian number.
    assert_eq!(kind_of(1560, 1, plain, &none), Some(Kind::Bit));
    assert_eq!(kind_of(1562, 1, plain, &none), Some(Kind::Bit));
    assert_eq!(
        kind_of(1560, 8, plain, &none),
        Some(Kind::Bits { length: 8 })
    );
    assert_eq!(
        kind_of(1562, -1, plain, &none),
        Some(Kind::Bits {
            length: i32::MAX as u32
        })
    );
    assert_eq!(value(&Kind::Bit, "1"), "true");
    assert_eq!(value(&Kind::Bit, "0"), "false");
    let bits = Kind::Bits { length: 16 };
    // 0b10100000 = 0xa0; 0x0102 little-endian: 02 01; zero: no bytes.
    assert_eq!(value(&bits, "10100000"), "\"oA==\"");
    assert_eq!(value(&bits, "0000000100000010"), "\"AgE=\"");
    assert_eq!(value(&bits, "000"), "\"\"");
    let mut out = String::new();
    assert!(push_value(&mut out, &bits, "10x", DecimalMode::Precise).is_err());
    assert_eq!(
        schema(&bits, true, Some("flags"), DecimalMode::Precise),
        r#"{"type":"bytes","optional":true,"name":"io.debezium.data.Bits","version":1,"parameters":{"length":"16"},"field":"flags"}"#
    );
}

/// `point` as Debezium's `io.debezium.data.geometry.Point`: x, y, their OGC WKB, no SRID.
#[test]
fn points_are_debezium_geometry_points() {
    let none = |_| None;
    assert_eq!(
        kind_of(600, -1, PgModes::default(), &none),
        Some(Kind::Point)
    );
    // WKB: 01, type 1 as u32 LE, then x = 1.0 and y = -2.5 as f64 LE.
    assert_eq!(
        value(&Kind::Point, "(1,-2.5)"),
        r#"{"x":1.0,"y":-2.5,"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAATA","srid":null}"#
    );
    let mut out = String::new();
    assert!(push_value(&mut out, &Kind::Point, "(1;2)", DecimalMode::Precise).is_err());
    assert_eq!(
        schema(&Kind::Point, true, Some("p"), DecimalMode::Precise),
        r#"{"type":"struct","fields":[{"type":"double","optional":false,"field":"x"},{"type":"double","optional":false,"field":"y"},{"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,"name":"io.debezium.data.geometry.Point","version":1,"doc":"Geometry (POINT)","field":"p"}"#
    );
}

/// Kafka's JsonConverter names FLOAT32 and FLOAT64 `float` and `double` in a schema (its
/// `JsonSchema`); a schema saying `float64` is refused by a consumer's JsonConverter.
#[test]
fn floating_point_schemas_use_the_json_converters_names() {
    for (kind, mode, name) in [
        (Kind::Float32, DecimalMode::Precise, "float"),
        (Kind::Float64, DecimalMode::Precise, "double"),
        (Kind::Numeric(None), DecimalMode::Double, "double"),
        (
            Kind::Money {
                digits: 2,
                scale: 2,
            },
            DecimalMode::Double,
            "double",
        ),
    ] {
        assert_eq!(
            schema(&kind, false, None, mode),
            format!(r#"{{"type":"{name}","optional":false}}"#),
            "{kind:?}"
        );
    }
}

/// A database whose `lc_monetary` has other than 2 fraction digits stores money in other
/// units: `ja_JP`'s ¥1,235 is stored as 1235, which the C locale capture reads in shows
/// as `$12.35`. The amount is what the database's locale means, at Debezium's scale 2
/// (`money.fraction.digits`), rounded half up where the locale has more digits.
#[test]
fn money_means_what_the_databases_own_locale_stores() {
    let precise = Kind::Numeric(Some((12, 2)));
    let yen = Kind::Money {
        digits: 0,
        scale: 2,
    };
    assert_eq!(value(&yen, "$12.35"), value(&precise, "1235.00"));
    assert_eq!(value(&yen, "-$12.35"), value(&precise, "-1235.00"));
    let mut out = String::new();
    push_value(&mut out, &yen, "$12.35", DecimalMode::String).expect("maps");
    assert_eq!(out, "\"1235\"");
    let dinar = Kind::Money {
        digits: 3,
        scale: 2,
    };
    assert_eq!(value(&dinar, "$1.23"), value(&precise, "0.12"));
    assert_eq!(value(&dinar, "$12.35"), value(&precise, "1.24"));
    assert_eq!(value(&dinar, "$1,999.95"), value(&precise, "200.00"));
    assert_eq!(value(&dinar, "-$0.05"), value(&precise, "-0.01"));
    let mut out = String::new();
    push_value(&mut out, &dinar, "-$12.35", DecimalMode::String).expect("maps");
    assert_eq!(out, "\"-1.235\"");
    assert_eq!(
        kind_of(
            790,
            -1,
            PgModes {
                money_digits: 0,
                ..PgModes::default()
            },
            &|_| None
        ),
        Some(yen)
    );
    // `money.fraction.digits`: another published scale, rounded half up; the schema's
    // scale follows.
    let cents_dropped = Kind::Money {
        digits: 2,
        scale: 0,
    };
    let whole = Kind::Numeric(Some((12, 0)));
    assert_eq!(value(&cents_dropped, "$12.50"), value(&whole, "13"));
    assert_eq!(value(&cents_dropped, "-$12.49"), value(&whole, "-12"));
    assert_eq!(
        value(
            &Kind::Money {
                digits: 2,
                scale: 4
            },
            "$1.25"
        ),
        value(&Kind::Numeric(Some((12, 4))), "1.2500")
    );
    assert!(schema(&cents_dropped, true, None, DecimalMode::Precise).contains(r#""scale":"0""#));
}
