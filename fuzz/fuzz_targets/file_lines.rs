//! A line of a file source (a bare envelope, or a keyed line with `topic`, `key`,
//! `value`, `headers`): read without a panic, and the scanner's reading equal to serde's.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice_pipeline::source::file::fuzzing::parse_line(data);
});
