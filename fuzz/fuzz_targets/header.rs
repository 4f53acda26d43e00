//! `check_header` on arbitrary bytes: never panics, and whatever it accepts
//! satisfies every promise of `CheckedHeader`.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use truc_core::document::{check_header, MAX_DOCUMENT_ID_CHARS, MAX_HEADER_BYTES, MAX_RECIPIENTS};
use truc_core::AgencyCode;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = check_header(data) else {
        return;
    };
    assert!(!data.is_empty() && data.len() <= MAX_HEADER_BYTES);
    assert_eq!(c.header_sha256, truc_core::sha256(data));
    assert_eq!(c.from, AgencyCode::parse(&c.header.from).expect("from parses"));
    assert!(!c.to.is_empty() && c.to.len() <= MAX_RECIPIENTS);
    assert_eq!(c.to.len(), c.header.to.len());
    assert_eq!(
        c.to.iter().collect::<HashSet<_>>().len(),
        c.to.len(),
        "duplicate recipient"
    );
    for (code, raw) in c.to.iter().zip(&c.header.to) {
        assert_eq!(code.as_str(), raw);
    }
    let n = c.header.document_id.chars().count();
    assert!((1..=MAX_DOCUMENT_ID_CHARS).contains(&n));
    assert_eq!(c.priority as i32, c.header.priority);
    assert_eq!(c.header.payload_sha256.len(), 32);
    assert!(!c.header.file_name.contains(['/', '\\', '\0']));
    // The content digest ignores exactly the signing time.
    let mut unsigned = c.header.clone();
    unsigned.signed_at_unix_ms = 0;
    assert_eq!(c.content_sha256, truc_core::sha256(&unsigned.encode_to_vec()));
    // A header re-encoded from what was accepted is accepted too.
    let again = check_header(&c.header.encode_to_vec()).expect("re-encoded header passes");
    assert_eq!(again.content_sha256, c.content_sha256);
});
