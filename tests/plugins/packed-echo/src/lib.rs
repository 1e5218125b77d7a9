//! `packed-echo`: a `packed-transformer` plugin written against `wit/packed.wit` alone,
//! without an SDK, so the host's packed writer and reader meet an independent reader and
//! writer of the layout in a real component. Config `mode`:
//!
//! - `echo` (default): one record per event on `packed.echo`, its key the event's key,
//!   its value a JSON object of every field of the event entry as this plugin read it,
//!   its headers the event's headers; events whose `after` image holds `"reject"` are
//!   rejected with code `asked`.
//! - `short`: one outcome too few. `extra`: a byte after the last outcome.
//!   `wild-count`: a record count of 2^32 - 2. `bad-utf8`: a topic that is not UTF-8.
//!   `version-2`: outcomes of another format version.

#![allow(unsafe_code)] // wit-bindgen's generated glue

wit_bindgen::generate!({ path: "../../../wit", world: "packed-transformer" });

use std::cell::RefCell;

use exports::sluice::transform::transform_packed::Guest;

const NONE: u32 = u32::MAX;

thread_local! {
    static MODE: RefCell<String> = const { RefCell::new(String::new()) };
}

struct Echo;

impl Guest for Echo {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let mode = config
            .into_iter()
            .rev()
            .find(|(key, _)| key == "mode")
            .map_or_else(|| "echo".to_owned(), |(_, value)| value);
        MODE.with_borrow_mut(|m| *m = mode);
        Ok(())
    }

    fn transform_packed(batch: Vec<u8>) -> Vec<u8> {
        let mode = MODE.with_borrow(Clone::clone);
        let batch = Batch(&batch);
        let (count, stride, headers_at) = (
            batch.word(1) as usize,
            batch.word(2) as usize,
            16 + batch.word(1) as usize * batch.word(2) as usize * 4,
        );
        let mut out = Out::default();
        out.word(if mode == "version-2" { 2 } else { 1 });
        let reported = if mode == "short" { count - 1 } else { count };
        out.word(reported as u32);
        for index in 0..reported {
            let entry = |word: usize| batch.word(4 + index * stride + word);
            let text = |word: usize| batch.text(entry(word), entry(word + 1));
            let s64 =
                |word: usize| (u64::from(entry(word + 1)) << 32 | u64::from(entry(word))) as i64;
            let opt_s64 = |word: usize| (entry(word) == 1).then(|| s64(word + 1));
            let value_at = entry(1);
            let span = |word: usize| {
                (entry(word) != NONE).then(|| batch.text(value_at + entry(word), entry(word + 1)))
            };
            if span(7)
                .flatten()
                .is_some_and(|after| after.contains("\"reject\""))
            {
                out.word(1);
                out.bytes(Some(b"the row asks for it"));
                out.bytes(Some(b"asked"));
                continue;
            }
            let headers: Vec<(String, Option<Vec<u8>>)> = (entry(42)..entry(42) + entry(43))
                .map(|h| {
                    let at = headers_at / 4 + h as usize * 4;
                    let key = batch
                        .text(batch.word(at), batch.word(at + 1))
                        .unwrap_or_default();
                    let value = (batch.word(at + 2) != NONE)
                        .then(|| batch.bytes(batch.word(at + 2), batch.word(at + 3)).to_vec());
                    (key.to_owned(), value)
                })
                .collect();
            let fields = [
                ("op", entry(0).to_string()),
                ("value", quote(text(1))),
                ("key", quote(text(3))),
                ("before", quote(span(5).flatten())),
                ("after", quote(span(7).flatten())),
                ("valueSchema", quote(span(9).flatten())),
                ("connector", quote(text(11))),
                ("name", quote(text(13))),
                ("db", quote(text(15))),
                ("schema", quote(text(17))),
                ("table", quote(text(19))),
                ("changeLsn", quote(text(21))),
                ("commitLsn", quote(text(23))),
                ("eventSerialNo", number(opt_s64(25))),
                ("snapshot", entry(28).to_string()),
                ("sourceTsMs", number(opt_s64(29))),
                ("tsMs", number(opt_s64(32))),
                ("txId", quote((entry(35) == 1).then(|| text(36)).flatten())),
                ("txTotalOrder", number((entry(35) == 1).then(|| s64(38)))),
                (
                    "txCollectionOrder",
                    number((entry(35) == 1).then(|| s64(40))),
                ),
                ("topic", quote(text(44))),
                ("partition", (entry(46) as i32).to_string()),
                ("offset", s64(47).to_string()),
            ];
            let json = fields
                .iter()
                .map(|(name, value)| format!("\"{name}\":{value}"))
                .collect::<Vec<_>>()
                .join(",");
            out.word(0);
            out.word(if mode == "wild-count" {
                u32::MAX - 1
            } else {
                1
            });
            if mode == "bad-utf8" {
                out.bytes(Some(&[0xc3, 0x28]));
            } else {
                out.bytes(Some(b"packed.echo"));
            }
            let key = (entry(3) != NONE).then(|| batch.bytes(entry(3), entry(4)));
            out.bytes(key);
            out.bytes(Some(format!("{{{json}}}").as_bytes()));
            out.word(headers.len() as u32);
            for (key, value) in &headers {
                out.bytes(Some(key.as_bytes()));
                out.bytes(value.as_deref());
            }
        }
        if mode == "extra" {
            out.0.push(0);
        }
        out.0
    }
}

/// The batch as `wit/packed.wit` lays it out.
struct Batch<'a>(&'a [u8]);

impl Batch<'_> {
    fn word(&self, index: usize) -> u32 {
        let at = index * 4;
        u32::from_le_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }

    fn bytes(&self, offset: u32, len: u32) -> &[u8] {
        &self.0[offset as usize..offset as usize + len as usize]
    }

    fn text(&self, offset: u32, len: u32) -> Option<&str> {
        (offset != NONE).then(|| std::str::from_utf8(self.bytes(offset, len)).expect("UTF-8"))
    }
}

/// The outcome stream.
#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn word(&mut self, word: u32) {
        self.0.extend_from_slice(&word.to_le_bytes());
    }

    fn bytes(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(bytes) => {
                self.word(bytes.len() as u32);
                self.0.extend_from_slice(bytes);
            }
            None => self.word(NONE),
        }
    }
}

/// A JSON string (text without quotes or backslashes needs no escaping; others are
/// escaped crudely but faithfully enough for the test's comparisons) or `null`.
fn quote(text: Option<&str>) -> String {
    match text {
        None => "null".to_owned(),
        Some(text) => {
            let mut quoted = String::from("\"");
            for c in text.chars() {
                match c {
                    '"' => quoted.push_str("\\\""),
                    '\\' => quoted.push_str("\\\\"),
                    c if (c as u32) < 0x20 => quoted.push_str(&format!("\\u{:04x}", c as u32)),
                    c => quoted.push(c),
                }
            }
            quoted.push('"');
            quoted
        }
    }
}

fn number(value: Option<i64>) -> String {
    value.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

export!(Echo);
