//! A signed document from arbitrary bytes through `verify_document`, against
//! a fixed signing trust (`trust/ca.der`, `trust/crl.der`) at a fixed time
//! (`trust/now`), and the chain and signature checks on their own.
//!
//! Input: one flags byte, then a `truc.v1.SignedDocument` protobuf (the
//! seeds are real documents signed by `examples/make_seeds.rs`). Bytes that
//! do not decode are split into the document's fields with `arbitrary`
//! instead, so no input is wasted.
//!
//! Flags: bit 0 checks the inline payload; bits 1-2 pick the calling agency
//! (0 and 3: none, 1: `header.from`, 2: another agency).
//!
//! Never panics, and accepts only headers that `make_seeds` signed
//! (`trust/signed_headers`): the fuzzer cannot forge a signature, so any
//! other acceptance is a hole in the checks.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use truc_core::document::{verify_document, verify_signature, SigningTrust, UnixTime, MAX_CHAIN_LEN};
use truc_core::{AgencyCode, CoreError, Principal};
use truc_proto::v1::SignedDocument;

struct Fixed {
    trust: SigningTrust,
    now: UnixTime,
    signed: HashSet<String>,
    other: AgencyCode,
}

fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(|| {
        let ca = include_bytes!("../trust/ca.der").to_vec();
        let crl = include_bytes!("../trust/crl.der").to_vec();
        let now: u64 = include_str!("../trust/now")
            .trim()
            .parse()
            .expect("trust/now is Unix seconds");
        Fixed {
            trust: SigningTrust::new(&[ca], &[crl]).expect("trust/ca.der and trust/crl.der load"),
            now: UnixTime::since_unix_epoch(Duration::from_secs(now)),
            signed: include_str!("../trust/signed_headers")
                .lines()
                .map(str::to_owned)
                .collect(),
            other: AgencyCode::parse("000.00.00.H14").unwrap(),
        }
    })
}

/// The document's fields when the bytes are not a protobuf message.
#[derive(Arbitrary, Debug)]
struct Fields {
    header: Vec<u8>,
    signature: Vec<u8>,
    signature_scheme: i32,
    signer_chain: Vec<Vec<u8>>,
    payload: Vec<u8>,
}

fn document(bytes: &[u8]) -> Option<SignedDocument> {
    if let Ok(doc) = SignedDocument::decode(bytes) {
        return Some(doc);
    }
    let f = Fields::arbitrary_take_rest(Unstructured::new(bytes)).ok()?;
    Some(SignedDocument {
        header: f.header,
        signature: f.signature,
        signature_scheme: f.signature_scheme,
        signer_chain: f.signer_chain,
        payload: f.payload,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some(doc) = document(rest) else {
        return;
    };
    let f = fixed();
    let check_payload = flags & 1 == 1;
    let from = truc_core::document::check_header(&doc.header).ok().map(|c| c.from);
    let caller = match (flags >> 1) & 3 {
        1 => from.as_ref(),
        2 => Some(&f.other),
        _ => None,
    };

    let verdict = verify_document(&doc, caller, &f.trust, f.now, check_payload);

    // The steps on their own, whatever the header: chain, principal, signature.
    let chain = f.trust.verify_chain(&doc.signer_chain, f.now);
    if let Some(leaf) = doc.signer_chain.first() {
        let named = Principal::from_cert_der(leaf);
        if let Ok(p) = &chain {
            assert_eq!(named.as_ref(), Ok(p), "verify_chain and from_cert_der disagree");
        }
        let _ = verify_signature(leaf, &doc.header, &doc.signature, doc.signature_scheme);
    } else {
        assert!(matches!(chain, Err(CoreError::BadChain(_))));
    }
    if doc.signer_chain.len() > MAX_CHAIN_LEN {
        assert!(chain.is_err());
    }

    let Ok(checked) = verdict else {
        return;
    };
    let digest = truc_core::hex(&truc_core::sha256(&doc.header));
    assert!(
        f.signed.contains(&digest),
        "accepted a header that was never signed: {digest}"
    );
    let signer = chain.expect("accepted with a chain that does not verify");
    assert_eq!(
        signer.agency(),
        Some(&checked.from),
        "accepted a document signed by another principal"
    );
    if let Some(caller) = caller {
        assert_eq!(caller, &checked.from);
    }
    verify_signature(&doc.signer_chain[0], &doc.header, &doc.signature, doc.signature_scheme)
        .expect("accepted with a signature that does not verify");
    if check_payload {
        assert_eq!(doc.payload.len() as u64, checked.header.payload_size);
        assert_eq!(
            truc_core::sha256(&doc.payload).as_slice(),
            checked.header.payload_sha256.as_slice()
        );
    }
});
