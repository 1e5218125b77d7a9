//! A pgoutput message as the server's walsender sends it: decoded or refused with a
//! reason, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_capture::postgres::pgoutput;

fuzz_target!(|data: &[u8]| {
    let _ = pgoutput::decode(bytes::Bytes::copy_from_slice(data));
    let _ = pgoutput::streamed_change(data);
});
