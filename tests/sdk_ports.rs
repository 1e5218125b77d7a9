//! The JavaScript and Python SDKs' Debezium decoders against the Rust SDK's, input for
//! input: the same thousands of values (i64 extremes, dates before year 1 and after 9999,
//! decimals of every width, rounding ties) must give the same strings, so a plugin's
//! output does not depend on its language. The ports run natively here (node, python3);
//! the golden tests run them inside the components.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use sluice_sdk::debezium;
use sluice_tests::repo_root;

/// Reads `{"decimals": [[text, scale]], "days": [..], ...}` (integers as strings) from
/// standard input and prints the decoded strings as the same shape.
const NODE_SCRIPT: &str = r#"
import * as d from "./debezium.js";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const x = JSON.parse(input);
const attempt = (f) => { try { return f(); } catch (e) { return `error: ${e.message}`; } };
// Integers come as BigInt or, when exact, Number (what JSON.parse gives): both must agree.
const both = (f) => (v) => {
  const big = f(BigInt(v));
  const n = Number(v);
  return Number.isSafeInteger(n) && f(n) !== big ? `Number ${n} gives ${f(n)}` : big;
};
console.log(JSON.stringify({
  decimals: x.decimals.map(([text, scale]) => attempt(() => d.decimalFromBase64(text, scale))),
  days: x.days.map(both(d.dateFromEpochDays)),
  millis: x.millis.map(both(d.timestampFromEpochMillis)),
  micros: x.micros.map(both(d.timestampFromEpochMicros)),
  nanos: x.nanos.map(both(d.timestampFromEpochNanos)),
  time_millis: x.time_millis.map(both(d.timeFromMillisOfDay)),
  time_nanos: x.time_nanos.map(both(d.timeFromNanosOfDay)),
  fixed: x.fixed.map(([v, digits]) => d.fixed(v, digits)),
}));
"#;

const PYTHON_SCRIPT: &str = r#"
import json, sys
from sluice_sdk import debezium as d
x = json.load(sys.stdin)
def attempt(f):
    try:
        return f()
    except d.DecodeError as e:
        return f"error: {e}"
print(json.dumps({
    "decimals": [attempt(lambda: d.decimal_from_base64(t, s)) for t, s in x["decimals"]],
    "days": [d.date_from_epoch_days(int(v)) for v in x["days"]],
    "millis": [d.timestamp_from_epoch_millis(int(v)) for v in x["millis"]],
    "micros": [d.timestamp_from_epoch_micros(int(v)) for v in x["micros"]],
    "nanos": [d.timestamp_from_epoch_nanos(int(v)) for v in x["nanos"]],
    "time_millis": [d.time_from_millis_of_day(int(v)) for v in x["time_millis"]],
    "time_nanos": [d.time_from_nanos_of_day(int(v)) for v in x["time_nanos"]],
    "fixed": [d.fixed(v, n) for v, n in x["fixed"]],
}, ensure_ascii=False))
"#;

/// Integers spread over the whole i64 range, with the edges.
fn spread() -> Vec<i64> {
    let mut values = vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
    for bits in 0..63 {
        let p = 1i64 << bits;
        values.extend([p, p - 1, -p, -p + 1, p / 3, -(p / 7)]);
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..400 {
        // xorshift: deterministic pseudo-random i64s.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        values.push(x as i64);
        values.push((x as i64) % 100_000_000_000);
    }
    values
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        out.push_str(&"=".repeat(3 - chunk.len()));
    }
    out
}

fn inputs() -> Value {
    let values = spread();
    let mut decimals: Vec<(String, u32)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let wide = i128::from(*v) * i128::from(values[(i * 7) % values.len()]);
        for n in [i128::from(*v), wide] {
            let bytes = n.to_be_bytes();
            let keep = 1 + (i % 16);
            decimals.push((base64(&bytes[16 - keep..]), (i % 39) as u32));
        }
    }
    for bad in [
        "not base64!",
        "",
        "A",
        "AB=",
        "AAA=",
        "////////////////////////",
        "MDk",
    ] {
        decimals.push((bad.to_owned(), 2));
    }
    let text = |vs: &[i64]| vs.iter().map(i64::to_string).collect::<Vec<_>>();
    let days: Vec<i64> = values.iter().map(|v| v % 4_000_000).collect();
    let fixed: Vec<(f64, u32)> = [
        0.125, 0.375, 2.5, 1.5, -0.5, -0.0, 0.1, 1e21, 123.456, -250.755, 1e-7, 5e-324, 1e300,
    ]
    .into_iter()
    .enumerate()
    .flat_map(|(i, v)| [(v, 0), (v, 2), (v, (i % 5) as u32)])
    .collect();
    json!({
        "decimals": decimals,
        "days": text(&days),
        "millis": text(&values),
        "micros": text(&values),
        "nanos": text(&values),
        "time_millis": text(&values),
        "time_nanos": text(&values),
        "fixed": fixed,
    })
}

/// What the Rust SDK gives for `inputs`.
fn expected(inputs: &Value) -> Value {
    let ints = |key: &str| -> Vec<i64> {
        inputs[key]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_str().expect("text").parse().expect("i64"))
            .collect()
    };
    let map = |key: &str, f: fn(i64) -> String| ints(key).into_iter().map(f).collect::<Vec<_>>();
    let decimals: Vec<String> = inputs["decimals"]
        .as_array()
        .expect("array")
        .iter()
        .map(|pair| {
            let text = pair[0].as_str().expect("text");
            let scale = pair[1].as_u64().expect("scale") as u32;
            debezium::decimal_from_base64(text, scale).unwrap_or_else(|e| format!("error: {e}"))
        })
        .collect();
    let fixed: Vec<String> = inputs["fixed"]
        .as_array()
        .expect("array")
        .iter()
        .map(|pair| {
            let value = pair[0].as_f64().expect("f64");
            format!(
                "{value:.prec$}",
                prec = pair[1].as_u64().expect("digits") as usize
            )
        })
        .collect();
    json!({
        "decimals": decimals,
        "days": map("days", debezium::date_from_epoch_days),
        "millis": map("millis", debezium::timestamp_from_epoch_millis),
        "micros": map("micros", debezium::timestamp_from_epoch_micros),
        "nanos": map("nanos", debezium::timestamp_from_epoch_nanos),
        "time_millis": map("time_millis", debezium::time_from_millis_of_day),
        "time_nanos": map("time_nanos", debezium::time_from_nanos_of_day),
        "fixed": fixed,
    })
}

fn run(program: &str, args: &[&str], dir: &std::path::Path, input: &Value) -> Value {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("running {program}: {e} (the JS and Python SDKs need node and python3)")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write the inputs");
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from the port")
}

fn assert_same(language: &str, actual: &Value, expected: &Value) {
    for (key, want) in expected.as_object().expect("object") {
        let (got, want) = (
            actual[key].as_array().expect("array"),
            want.as_array().expect("array"),
        );
        assert_eq!(got.len(), want.len(), "{language} {key}");
        for (index, (got, want)) in got.iter().zip(want).enumerate() {
            assert_eq!(got, want, "{language} {key}[{index}]");
        }
    }
}

#[test]
fn the_javascript_decoders_match_the_rust_ones() {
    let input = inputs();
    let dir = repo_root().join("sdk").join("js");
    let actual = run(
        "node",
        &["--input-type=module", "-e", NODE_SCRIPT],
        &dir,
        &input,
    );
    assert_same("javascript", &actual, &expected(&input));
}

#[test]
fn the_python_decoders_match_the_rust_ones() {
    let input = inputs();
    let dir = repo_root().join("sdk").join("python");
    let actual = run("python3", &["-B", "-c", PYTHON_SCRIPT], &dir, &input);
    assert_same("python", &actual, &expected(&input));
}

/// `parseJson` of the JavaScript SDK keeps integers beyond 2^53 exact (and `toJson`
/// writes them back as integers). Row images (flat
/// objects) take a fast path that reads such an integer's literal again from the text;
/// every case where that could pick the wrong literal must go to the reviver instead,
/// which gives the right value (or, on an engine without `JSON.parse` source text, such
/// as older node, says so): never a wrong value.
#[test]
fn the_javascript_json_parser_keeps_long_integers_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sdk = repo_root().join("sdk").join("js");
    let sluice = std::fs::read_to_string(sdk.join("sluice.js"))
        .expect("sluice.js")
        .replace("\"sluice:transform/host@0.1.0\"", "\"./host.js\"");
    std::fs::write(dir.path().join("sluice.js"), sluice).expect("write");
    std::fs::copy(sdk.join("debezium.js"), dir.path().join("debezium.js")).expect("copy");
    std::fs::write(dir.path().join("host.js"), "export function log() {}\n").expect("write");
    let script = r#"
import { parseJson, toJson } from "./sluice.js";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const written = [
  toJson({ a: 12345678901234567890n, n: [-9223372036854775808n, 2], s: "x", u: undefined }),
  // A string that looks like what BigInts may be marked with stays a string.
  toJson({ s: "\u0000bigint:5", b: 5n }),
];
const out = JSON.parse(input).map((text) => {
  try {
    const value = parseJson(text);
    return Object.entries(value).map(([k, v]) => `${k}=${typeof v}:${String(v)}`).join(" ");
  } catch (e) {
    return `error: ${e.message}`;
  }
});
console.log(JSON.stringify([...written, ...out]));
"#;
    let cases = [
        (
            r#"{"id":1,"updated_at":1763900000123456789,"name":"a"}"#,
            "id=number:1 updated_at=bigint:1763900000123456789 name=string:a",
        ),
        (
            r#"{"b":-12345678901234567890 ,"c":"x,\"b\":1"}"#,
            "b=bigint:-12345678901234567890 c=string:x,\"b\":1",
        ),
        (
            r#"{"b":12345678901234567890,"b":12345678901234567892}"#,
            "b=bigint:12345678901234567892",
        ),
        (
            r#"{"small":9007199254740991,"big":9007199254740993}"#,
            "small=number:9007199254740991 big=bigint:9007199254740993",
        ),
        // Text that could fool the fast path: a nested member a later duplicate dropped,
        // braces inside a string, a key written with an escape.
        (
            r#"{"b":12345678901234567890,"a":{"b":99999999999999999999},"a":1}"#,
            "b=bigint:12345678901234567890 a=number:1",
        ),
        (
            r#"{"s":"{[","b":12345678901234567891}"#,
            "s=string:{[ b=bigint:12345678901234567891",
        ),
        (
            r#"{"\u0062":12345678901234567893}"#,
            "b=bigint:12345678901234567893",
        ),
    ];
    let input =
        serde_json::to_vec(&cases.iter().map(|(text, _)| *text).collect::<Vec<_>>()).expect("JSON");
    let mut child = Command::new("node")
        .args(["--input-type=module", "-e", script])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write");
    let output = child.wait_with_output().expect("node");
    assert!(output.status.success());
    let mut got: Vec<String> = serde_json::from_slice(&output.stdout).expect("JSON lines");
    // `toJson` writes BigInts as plain integers, whatever the strings around them hold.
    assert_eq!(
        got.drain(..2).collect::<Vec<_>>(),
        [
            r#"{"a":12345678901234567890,"n":[-9223372036854775808,2],"s":"x"}"#,
            r#"{"s":"\u0000bigint:5","b":5}"#,
        ]
    );
    let no_source_text = "error: this engine's JSON.parse does not expose source text";
    for ((text, want), got) in cases.iter().zip(&got) {
        assert!(
            got == want || got.starts_with(no_source_text),
            "{text}: {got} (want {want})"
        );
    }
    // The row images Debezium writes (flat) never need the reviver.
    for (index, got) in got.iter().enumerate().take(4) {
        assert_eq!(got, cases[index].1);
    }
}
