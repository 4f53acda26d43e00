//! Property tests: the CI-run twins of the cargo-fuzz targets in `fuzz/`
//! (header decoding, agency codes and principal URIs, Merkle proofs, signed
//! document verification). Each property runs a bounded number of cases so
//! the whole file stays within a few seconds.

use std::sync::OnceLock;

use prop::collection::vec;
use proptest::prelude::*;
use prost::Message;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use truc_core::agency::CodeFormat;
use truc_core::document::{check_header, verify_document, SigningTrust, UnixTime};
use truc_core::merkle::{self, Hash, MemoryTree, NodeSource};
use truc_core::{AgencyCode, CoreError, Principal};
use truc_proto::v1::{DocumentHeader, SignedDocument};

/// `cases` per property, or `PROPTEST_CASES` when set (for longer local runs).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>()
}

/// Tree sizes and indexes: small ones, arbitrary ones, and the edges of u64.
fn size() -> impl Strategy<Value = u64> {
    prop_oneof![0..1100u64, any::<u64>(), (u64::MAX - 4)..=u64::MAX]
}

fn valid_header() -> DocumentHeader {
    DocumentHeader {
        from: "000.00.00.G22".into(),
        to: vec!["000.00.00.H26".into(), "G09.01".into()],
        document_id: "000.00.00.G22,2026/11/23,1/VPCP".into(),
        subject: "Về việc thử nghiệm".into(),
        payload_sha256: truc_core::sha256(b"payload").to_vec(),
        payload_size: 7,
        signed_at_unix_ms: 1_795_000_000_000,
        ..DocumentHeader::default()
    }
}

// ---------------------------------------------------------------- headers

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn check_header_never_panics(bytes in vec(any::<u8>(), 0..600)) {
        let _ = check_header(&bytes);
    }

    #[test]
    fn check_header_on_a_mutated_valid_header(flips in vec((any::<prop::sample::Index>(), 1..=255u8), 1..4)) {
        let mut bytes = valid_header().encode_to_vec();
        for (at, mask) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        if let Ok(c) = check_header(&bytes) {
            prop_assert_eq!(c.header_sha256, truc_core::sha256(&bytes));
            prop_assert!(!c.to.is_empty());
            prop_assert_eq!(c.header.payload_sha256.len(), 32);
        }
    }
}

// ----------------------------------------------------------- agency codes

fn is_level1(g: &str) -> bool {
    let b = g.as_bytes();
    b.len() == 3 && b[0].is_ascii_uppercase() && b[1].is_ascii_digit() && b[2].is_ascii_digit()
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn parsers_never_panic_on_any_string(s in any::<String>()) {
        check_any_code(&s)?;
    }

    #[test]
    fn parsers_never_panic_on_near_codes(s in "[0-9A-Za-z.: _-]{0,40}") {
        check_any_code(&s)?;
        check_any_code(&format!("urn:truc:agency:{s}"))?;
        check_any_code(&format!("urn:truc:operator:{s}"))?;
    }

    #[test]
    fn qcvn102_codes_parse(s in "([0-9A-Z]{1,3}\\.){0,3}[A-Z][0-9]{2}") {
        let code = AgencyCode::parse(&s).unwrap();
        prop_assert_eq!(code.as_str(), s.as_str());
        let bare_qd20 = !s.contains('.') && !s.starts_with('Z');
        let want = if bare_qd20 { CodeFormat::Qd20 } else { CodeFormat::Qcvn102 };
        prop_assert_eq!(code.format(), want);
        round_trip(&code)?;
    }

    #[test]
    fn qd20_codes_parse(s in "[A-Y][0-9]{2}(\\.[0-9A-Z]{1,10}){0,4}") {
        prop_assume!(s.len() <= truc_core::agency::MAX_LEN);
        let code = AgencyCode::parse(&s).unwrap();
        prop_assert_eq!(code.as_str(), s.as_str());
        // Only a code that also reads as QCVN 102 with a level-1 group last
        // is classified QCVN 102.
        let groups: Vec<&str> = s.split('.').collect();
        let also_qcvn = groups.len() >= 2
            && groups.len() <= 4
            && is_level1(groups[groups.len() - 1])
            && groups[..groups.len() - 1].iter().all(|g| g.len() <= 3);
        let want = if also_qcvn { CodeFormat::Qcvn102 } else { CodeFormat::Qd20 };
        prop_assert_eq!(code.format(), want);
        round_trip(&code)?;
    }

    #[test]
    fn principal_names_round_trip(role in "operator|auditor|hub", name in "[a-z0-9][a-z0-9._-]{0,63}") {
        let uri = format!("urn:truc:{role}:{name}");
        let p = Principal::parse_uri(&uri).unwrap();
        prop_assert_eq!(p.uri(), uri);
        prop_assert_eq!(p.name(), name.as_str());
    }
}

fn check_any_code(s: &str) -> Result<(), TestCaseError> {
    match AgencyCode::parse(s) {
        Ok(code) => {
            prop_assert_eq!(code.as_str(), s);
            prop_assert!(s.len() <= truc_core::agency::MAX_LEN);
            prop_assert!(s
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase() || b == b'.'));
            let _ = code.format();
        }
        Err(e) => prop_assert!(matches!(e, CoreError::InvalidAgencyCode(_))),
    }
    match Principal::parse_uri(s) {
        Ok(p) => prop_assert_eq!(p.uri(), s),
        Err(e) => prop_assert!(matches!(
            e,
            CoreError::InvalidPrincipal(_) | CoreError::InvalidAgencyCode(_)
        )),
    }
    Ok(())
}

fn round_trip(code: &AgencyCode) -> Result<(), TestCaseError> {
    let again: AgencyCode = code.to_string().parse().unwrap();
    prop_assert_eq!(&again, code);
    let p = Principal::parse_uri(&format!("urn:truc:agency:{code}")).unwrap();
    prop_assert_eq!(p.agency(), Some(code));
    Ok(())
}

// ---------------------------------------------------------- Merkle proofs

fn tree(n: u64, salt: u8) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        t.push(&[&[salt][..], &i.to_be_bytes()].concat());
    }
    t
}

/// A change that must make a valid proof fail (see `fuzz/fuzz_targets/proofs.rs`).
fn mutate(kind: u8, at: prop::sample::Index, first: &mut Hash, proof: &mut Vec<Hash>, root: &mut Hash) -> bool {
    let bit = at.index(256);
    match kind % 6 {
        0 => first[bit / 8] ^= 1 << (bit % 8),
        1 => root[bit / 8] ^= 1 << (bit % 8),
        2 | 3 if proof.is_empty() => return false,
        2 => {
            let i = at.index(proof.len());
            proof[i][bit / 8] ^= 1 << (bit % 8);
        }
        3 => {
            proof.remove(at.index(proof.len()));
        }
        4 => proof.push([kind; 32]),
        _ => proof.insert(0, *root),
    }
    true
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn verify_inclusion_never_panics(
        leaf in hash(), index in size(), size in size(), proof in vec(hash(), 0..70), root in hash(),
    ) {
        let _ = merkle::verify_inclusion(&leaf, index, size, &proof, &root);
    }

    #[test]
    fn verify_consistency_never_panics(
        old in size(), new in size(), old_root in hash(), new_root in hash(), proof in vec(hash(), 0..70),
    ) {
        let _ = merkle::verify_consistency(old, new, &old_root, &new_root, &proof);
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn generated_proofs_verify_and_mutated_ones_do_not(
        n in 1..=300u64,
        picks in any::<(prop::sample::Index, prop::sample::Index, prop::sample::Index)>(),
        salt in any::<u8>(),
        kind in any::<u8>(),
        at in any::<prop::sample::Index>(),
    ) {
        let t = tree(n, salt);
        let size = 1 + picks.0.index(n as usize) as u64;
        let index = picks.1.index(size as usize) as u64;
        let old = 1 + picks.2.index(size as usize) as u64;
        let root = merkle::root(size, &t).unwrap();
        let old_root = merkle::root(old, &t).unwrap();
        prop_assert_eq!(tree(size, salt).root(), root);

        let leaf = t.node(0, index).unwrap();
        let proof = merkle::inclusion_proof(index, size, &t).unwrap();
        prop_assert!(merkle::verify_inclusion(&leaf, index, size, &proof, &root).is_ok());
        let (mut l, mut p, mut r) = (leaf, proof, root);
        if mutate(kind, at, &mut l, &mut p, &mut r) {
            prop_assert!(merkle::verify_inclusion(&l, index, size, &p, &r).is_err());
        }

        let proof = merkle::consistency_proof(old, size, &t).unwrap();
        prop_assert!(merkle::verify_consistency(old, size, &old_root, &root, &proof).is_ok());
        let (mut o, mut p, mut r) = (old_root, proof, root);
        if mutate(kind, at, &mut o, &mut p, &mut r) {
            prop_assert!(merkle::verify_consistency(old, size, &o, &r, &p).is_err());
        }
    }
}

// ------------------------------------------------------ signed documents

struct Signed {
    trust: SigningTrust,
    doc: SignedDocument,
    from: AgencyCode,
}

/// A CA, an agency certificate issued by it, and one document the agency
/// signed (ECDSA P-256), made once.
fn signed() -> &'static Signed {
    static S: OnceLock<Signed> = OnceLock::new();
    S.get_or_init(|| {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.distinguished_name.push(DnType::CommonName, "prop test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_der = ca.self_signed(&ca_key).unwrap().der().to_vec();
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::default();
        leaf.distinguished_name.push(DnType::CommonName, "000.00.00.G22");
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.subject_alt_names = vec![SanType::URI("urn:truc:agency:000.00.00.G22".try_into().unwrap())];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let leaf_der = leaf.signed_by(&key, &issuer).unwrap().der().to_vec();

        let rng = SystemRandom::new();
        let signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &key.serialize_der(), &rng).unwrap();
        let header = valid_header().encode_to_vec();
        let signature = signer.sign(&rng, &header).unwrap().as_ref().to_vec();
        Signed {
            trust: SigningTrust::new(&[ca_der], &[]).unwrap(),
            doc: SignedDocument {
                header,
                signature,
                signature_scheme: 0,
                signer_chain: vec![leaf_der],
                payload: b"payload".to_vec(),
            },
            from: AgencyCode::parse("000.00.00.G22").unwrap(),
        }
    })
}

fn verify(doc: &SignedDocument) -> Result<(), CoreError> {
    let s = signed();
    verify_document(doc, Some(&s.from), &s.trust, UnixTime::now(), true).map(|_| ())
}

#[test]
fn the_unmutated_document_verifies() {
    verify(&signed().doc).unwrap();
}

/// One change to a signed document: which field, where, and how.
#[derive(Debug, Clone)]
enum Change {
    /// XOR one byte with a non-zero mask.
    Flip(u8, prop::sample::Index, u8),
    /// Cut the field to a shorter length.
    Truncate(u8, prop::sample::Index),
    /// Append bytes to the field.
    Extend(u8, Vec<u8>),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        6 => (0..4u8, any::<prop::sample::Index>(), 1..=255u8).prop_map(|(f, at, m)| Change::Flip(f, at, m)),
        1 => (0..4u8, any::<prop::sample::Index>()).prop_map(|(f, at)| Change::Truncate(f, at)),
        1 => (0..4u8, vec(any::<u8>(), 1..8)).prop_map(|(f, b)| Change::Extend(f, b)),
    ]
}

fn field(doc: &mut SignedDocument, f: u8) -> &mut Vec<u8> {
    match f {
        0 => &mut doc.header,
        1 => &mut doc.signature,
        2 => &mut doc.signer_chain[0],
        _ => &mut doc.payload,
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn mutated_documents_are_refused(changes in vec(change(), 1..4)) {
        let original = &signed().doc;
        let mut doc = original.clone();
        for c in changes {
            match c {
                Change::Flip(f, at, mask) => {
                    let bytes = field(&mut doc, f);
                    if !bytes.is_empty() {
                        let i = at.index(bytes.len());
                        bytes[i] ^= mask;
                    }
                }
                Change::Truncate(f, at) => {
                    let bytes = field(&mut doc, f);
                    let len = at.index(bytes.len().max(1));
                    bytes.truncate(len);
                }
                Change::Extend(f, more) => field(&mut doc, f).extend(more),
            }
        }
        let verdict = verify(&doc);
        if &doc == original {
            prop_assert!(verdict.is_ok(), "{verdict:?}");
        } else {
            prop_assert!(verdict.is_err(), "a changed document verifies: {doc:?}");
        }
    }
}
