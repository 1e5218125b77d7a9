//! A consumed record's headers, read without trusting their names to be UTF-8.
//!
//! rdkafka's `Headers::iter`/`get`/`try_get` unwrap each header name as UTF-8, so one
//! record whose producer wrote a name of other bytes (any client can; brokers do not
//! check) panics whoever reads it, again at every restart from the committed offset. Here
//! the names are read from librdkafka as bytes: a record with a name that is not UTF-8
//! is still read, with the name made readable (invalid bytes as U+FFFD) and a reason
//! that gives the name's bytes, so that the pipeline dead-letters it and goes on.

use std::ffi::CStr;

use rdkafka::bindings as rdsys;
use rdkafka::message::BorrowedMessage;
use sluice_core::Header;

/// A record's headers as sluice reads them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadHeaders {
    pub headers: Vec<Header>,
    /// Why the record's headers cannot be carried as they are (a name that is not
    /// UTF-8); `headers` then holds the names with the invalid bytes replaced.
    pub unreadable: Option<String>,
}

/// Reads `message`'s headers, in order.
pub fn read_headers(message: &BorrowedMessage<'_>) -> ReadHeaders {
    let mut read = ReadHeaders::default();
    for_each_raw_header(message, |index, name, value| {
        let key = match std::str::from_utf8(name) {
            Ok(name) => name.to_owned(),
            Err(_) => {
                if read.unreadable.is_none() {
                    read.unreadable = Some(format!(
                        "header {index}'s name is not UTF-8 (bytes {}); sluice carries header \
                         names as text",
                        hex_bytes(name)
                    ));
                }
                String::from_utf8_lossy(name).into_owned()
            }
        };
        read.headers.push(Header {
            key: key.into(),
            value: value.map(<[u8]>::to_vec),
        });
    });
    read
}

/// At most the first 64 bytes of `bytes` in hex, space-separated.
fn hex_bytes(bytes: &[u8]) -> String {
    let mut text: Vec<String> = bytes.iter().take(64).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 64 {
        text.push(format!("... ({} bytes)", bytes.len()));
    }
    text.join(" ")
}

/// Calls `visit` with each header's index, name bytes and value (`None`: a null value).
#[allow(unsafe_code)]
fn for_each_raw_header(
    message: &BorrowedMessage<'_>,
    mut visit: impl FnMut(usize, &[u8], Option<&[u8]>),
) {
    let mut list: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `message.ptr()` is the live message that `message` borrows (rdkafka's own
    // `BorrowedMessage::headers` makes the same call on it). The list librdkafka returns
    // is owned by the message and lives as long as it, so as long as this borrow.
    let error = unsafe { rdsys::rd_kafka_message_headers(message.ptr(), &mut list) };
    if error != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || list.is_null() {
        // RD_KAFKA_RESP_ERR__NOENT: the record has no headers.
        return;
    }
    // SAFETY: `list` is the message's valid header list (above).
    let count = unsafe { rdsys::rd_kafka_header_cnt(list) };
    for index in 0..count {
        let mut name: *const std::os::raw::c_char = std::ptr::null();
        let mut value: *const std::os::raw::c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: `index` is below the list's count; librdkafka writes pointers into the
        // list's own storage, valid while the list is (this borrow of `message`).
        let error = unsafe {
            rdsys::rd_kafka_header_get_all(list, index, &mut name, &mut value, &mut size)
        };
        if error != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            continue;
        }
        // SAFETY: librdkafka stores every header name NUL-terminated. (A name with a NUL
        // byte inside reads up to that byte: the C API gives no length for names.)
        let name = unsafe { CStr::from_ptr(name) }.to_bytes();
        let value = (!value.is_null()).then(|| {
            // SAFETY: `value` points at `size` bytes of the list's storage (above).
            unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }
        });
        visit(index, name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_shown_in_part() {
        assert_eq!(hex_bytes(&[0xff, 0x00, 0x41]), "ff 00 41");
        let long = hex_bytes(&[0xfe; 100]);
        assert!(long.ends_with("fe ... (100 bytes)"), "{long}");
        assert_eq!(long.matches("fe").count(), 64);
    }
}
