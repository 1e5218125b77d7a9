//! The hot path's JSON scanner in front of serde_json: sound (whatever it accepts, serde
//! accepts with the same span), and it never panics, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::json_scan;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(span) = json_scan::value_span(text) {
        let raw: &serde_json::value::RawValue = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("the scanner accepts what serde refuses ({e}): {text:?}"));
        let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        assert_eq!(span, (start, start + raw.get().len()), "{text:?}");
    }
    let _ = json_scan::needs_escaping(text);
});
