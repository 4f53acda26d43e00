//! Writes the fuzz targets' trust files and seed corpora.
//!
//! ```text
//! cd fuzz && cargo run --example make_seeds
//! ```
//!
//! Creates a throwaway axis CA with `truc_pki`, issues agencies with every
//! key type (ECDSA P-256, Ed25519, RSA with PKCS#1 v1.5 and PSS) plus
//! certificates that must be refused (revoked, expired, server-only, a hub, a
//! foreign CA), signs real documents with `truc_client::sign_document`, and
//! writes (relative to `fuzz/`):
//!
//! | path | what |
//! |---|---|
//! | `trust/ca.der` | the CA certificate the `document` target trusts |
//! | `trust/crl.der` | its CRL (one agency revoked) |
//! | `trust/now` | the fixed verification time, Unix seconds (generation + 1 h) |
//! | `trust/signed_headers` | hex SHA-256 of every header signed here, one a line |
//! | `corpus/<target>/*` | the seeds |
//!
//! Everything in `trust/` belongs together: regenerate it all at once (the
//! old seeds then no longer verify against the new CA, so they are replaced
//! too).

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use truc_client::sign_document;
use truc_core::document::{check_header, verify_document, SigningTrust, UnixTime};
use truc_core::merkle::{self, MemoryTree, NodeSource};
use truc_core::{AgencyCode, Principal};
use truc_pki::{Identity, IssueOptions, KeyType, Pki, Usage};
use truc_proto::v1::{DocumentHeader, SignedDocument};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Flags byte of a `document` input: check the inline payload.
const CHECK_PAYLOAD: u8 = 1;
/// Flags byte of a `document` input: the caller is `header.from`.
const CALLER_FROM: u8 = 1 << 1;
/// Flags byte of a `document` input: the caller is another agency.
const CALLER_OTHER: u8 = 2 << 1;

fn main() -> Result<()> {
    let out = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir()?;
    let now = SystemTime::now();
    let now_secs = now.duration_since(UNIX_EPOCH)?.as_secs();
    let now_ms = i64::try_from(now.duration_since(UNIX_EPOCH)?.as_millis())?;

    let pki = Pki::init(&tmp.path().join("pki"), "fuzz-hub", &[])?;
    let agency = |code: &str| Principal::Agency(AgencyCode::parse(code).expect("valid code"));
    let issue = |code: &str, opts: IssueOptions| -> Result<Identity> {
        let dir = pki.issue(&agency(code), code, &opts)?;
        Ok(Identity::load(&dir)?)
    };
    let ecdsa = issue("000.00.00.G22", IssueOptions::default())?;
    let ed25519 = issue(
        "G09.01",
        IssueOptions {
            key_type: KeyType::Ed25519,
            ..IssueOptions::default()
        },
    )?;
    let rsa = issue(
        "000.00.00.H26",
        IssueOptions {
            key_type: KeyType::Rsa2048,
            ..IssueOptions::default()
        },
    )?;
    let revoked = issue("000.00.00.H29", IssueOptions::default())?;
    pki.revoke_principal(&revoked.principal)?;
    let expired = issue(
        "000.00.00.G17",
        IssueOptions {
            not_before: Some(now - Duration::from_secs(30 * 86_400)),
            not_after: Some(now - Duration::from_secs(86_400)),
            ..IssueOptions::default()
        },
    )?;
    let server_only = issue(
        "000.00.00.H41",
        IssueOptions {
            usage: Usage::ServerOnly,
            ..IssueOptions::default()
        },
    )?;
    let hub = Identity::load(&pki.hub_dir())?;
    let foreign_pki = Pki::init(&tmp.path().join("foreign"), "foreign-hub", &[])?;
    let foreign = Identity::load(&foreign_pki.issue(&agency("000.00.00.G22"), "foreign", &IssueOptions::default())?)?;

    let crl = truc_pki::read_crl_ders(pki.crl_path())?;
    write(&out.join("trust/ca.der"), pki.ca_der())?;
    write(&out.join("trust/crl.der"), &crl[0])?;
    // Certificates are valid from `now - 5 min`; verify an hour later.
    write(&out.join("trust/now"), format!("{}\n", now_secs + 3600).as_bytes())?;

    let header = |to: &[&str], id: &str| DocumentHeader {
        to: to.iter().map(|s| s.to_string()).collect(),
        document_id: id.into(),
        subject: "Về việc thử nghiệm".into(),
        document_type: "Công văn".into(),
        signed_at_unix_ms: now_ms,
        ..DocumentHeader::default()
    };
    let mut docs: Vec<(&str, u8, SignedDocument)> = Vec::new();

    let d = sign_document(
        &ecdsa,
        header(&["000.00.00.H26", "G09.01"], "000.00.00.G22,2026/01/02,1/VPCP"),
        b"hello".to_vec(),
    )?;
    docs.push(("ecdsa", CHECK_PAYLOAD | CALLER_FROM, d.clone()));
    let mut chain = d.clone();
    chain.signer_chain.push(pki.ca_der().to_vec());
    docs.push(("ecdsa_with_ca_in_chain", CHECK_PAYLOAD, chain));
    let mut bad_payload = d.clone();
    bad_payload.payload = b"hellO".to_vec();
    docs.push(("payload_mismatch", CHECK_PAYLOAD, bad_payload));
    docs.push(("ecdsa_other_caller", CALLER_OTHER, d));

    let mut h = header(&["000.00.00.G22"], "G09.01,2026/01/02,2/UBND");
    h.business_type = 1;
    h.reference_document_id = "G09.01,2026/01/01,1/UBND".into();
    h.priority = 2;
    h.file_name = "cong-van.pdf".into();
    h.content_type = "application/pdf".into();
    docs.push((
        "ed25519_revoke",
        CHECK_PAYLOAD | CALLER_FROM,
        sign_document(&ed25519, h, vec![0x25; 64])?,
    ));

    let h = header(&["000.00.00.G22"], "000.00.00.H26,2026/01/02,3/STC");
    docs.push((
        "rsa_pkcs1",
        CHECK_PAYLOAD | CALLER_FROM,
        sign_document(&rsa, h.clone(), b"rsa".to_vec())?,
    ));
    let mut pss_header = h;
    pss_header.from = rsa.principal.name().into();
    pss_header.payload_sha256 = truc_core::sha256(b"pss").to_vec();
    pss_header.payload_size = 3;
    let pss = rsa.signer()?.rsa_pss(true);
    let bytes = pss_header.encode_to_vec();
    docs.push((
        "rsa_pss",
        CHECK_PAYLOAD,
        SignedDocument {
            signature: pss.sign(&bytes)?,
            signature_scheme: pss.scheme(),
            header: bytes,
            signer_chain: vec![rsa.cert_der.clone()],
            payload: b"pss".to_vec(),
        },
    ));

    let h = |from: &str| header(&["000.00.00.G22"], &format!("{from},2026/01/02,9/X"));
    docs.push((
        "revoked",
        CHECK_PAYLOAD,
        sign_document(&revoked, h("000.00.00.H29"), b"r".to_vec())?,
    ));
    docs.push((
        "expired",
        CHECK_PAYLOAD,
        sign_document(&expired, h("000.00.00.G17"), b"e".to_vec())?,
    ));
    docs.push((
        "server_only",
        CHECK_PAYLOAD,
        sign_document(&server_only, h("000.00.00.H41"), b"s".to_vec())?,
    ));
    let mut from_hub = h("000.00.00.G22");
    from_hub.from = "000.00.00.G22".into();
    docs.push((
        "signed_by_hub",
        CHECK_PAYLOAD,
        sign_document(&hub, from_hub, b"h".to_vec())?,
    ));
    docs.push((
        "foreign_ca",
        CHECK_PAYLOAD,
        sign_document(&foreign, h("000.00.00.G22"), b"f".to_vec())?,
    ));

    let mut signed = String::new();
    let mut headers = std::collections::HashSet::new();
    for (name, flags, doc) in &docs {
        let mut input = vec![*flags];
        input.extend(doc.encode_to_vec());
        write(&out.join(format!("corpus/document/{name}")), &input)?;
        if headers.insert(doc.header.clone()) {
            write(&out.join(format!("corpus/header/{name}")), &doc.header)?;
            if *name != "foreign_ca" {
                signed.push_str(&truc_core::hex(&truc_core::sha256(&doc.header)));
                signed.push('\n');
            }
        }
    }
    write(&out.join("trust/signed_headers"), signed.as_bytes())?;

    // The seeds reach the verdicts they are named for, with the trust and
    // time the `document` target uses.
    let trust = SigningTrust::new(&[pki.ca_der().to_vec()], &crl)?;
    let at = UnixTime::since_unix_epoch(Duration::from_secs(now_secs + 3600));
    for (name, flags, doc) in &docs {
        let from = AgencyCode::parse(&check_header(&doc.header)?.header.from)?;
        let other = AgencyCode::parse("000.00.00.H14")?;
        let caller = match flags >> 1 {
            1 => Some(&from),
            2 => Some(&other),
            _ => None,
        };
        let got = verify_document(doc, caller, &trust, at, flags & CHECK_PAYLOAD != 0);
        let want_ok = matches!(
            *name,
            "ecdsa" | "ecdsa_with_ca_in_chain" | "ed25519_revoke" | "rsa_pkcs1" | "rsa_pss"
        );
        assert_eq!(got.is_ok(), want_ok, "{name}: {got:?}");
        println!(
            "{name:24} {}",
            got.map_or_else(|e| e.to_string(), |_| "accepted".into())
        );
    }

    // A few headers that fail one check each.
    let mut h = header(&["G09.01", "G09.01"], "x");
    h.from = "000.00.00.G22".into();
    h.payload_sha256 = vec![0; 32];
    write(&out.join("corpus/header/duplicate_recipient"), &h.encode_to_vec())?;
    h.to = vec!["G09.01".into()];
    h.file_name = "../etc/passwd".into();
    write(&out.join("corpus/header/bad_file_name"), &h.encode_to_vec())?;

    for (name, s) in [
        ("qcvn102", "000.00.00.G22"),
        ("qcvn102_lenient", "999.010.01.H22"),
        ("qd20", "G09.01"),
        ("qd20_longest", "G09.0123456789012345678901234567890"),
        ("level1_only", "Z22"),
        ("uri_agency", "urn:truc:agency:000.00.00.G22"),
        ("uri_operator", "urn:truc:operator:alice"),
        ("uri_auditor", "urn:truc:auditor:audit-1.vn_x"),
        ("uri_hub", "urn:truc:hub:truc-hub-01"),
        ("full_width", "000.00.00.Ｇ22"),
    ] {
        write(&out.join(format!("corpus/agency_code/{name}")), s.as_bytes())?;
    }

    // `proofs` inputs: mode 0 inclusion, 1 consistency, 2 structured (see
    // fuzz_targets/proofs.rs for the layouts).
    let mut tree = MemoryTree::new();
    for i in 0..300u32 {
        tree.push(&i.to_be_bytes());
    }
    for (index, size) in [(0u64, 1u64), (5, 7), (299, 300), (128, 257)] {
        let proof = merkle::inclusion_proof(index, size, &tree)?;
        let mut input = vec![0u8];
        input.extend(index.to_le_bytes());
        input.extend(size.to_le_bytes());
        input.extend(tree.node(0, index)?);
        input.extend(merkle::root(size, &tree)?);
        input.extend(proof.concat());
        write(&out.join(format!("corpus/proofs/inclusion_{index}_{size}")), &input)?;
    }
    for (old, new) in [(1u64, 2u64), (4, 7), (6, 300), (256, 257)] {
        let proof = merkle::consistency_proof(old, new, &tree)?;
        let mut input = vec![1u8];
        input.extend(old.to_le_bytes());
        input.extend(new.to_le_bytes());
        input.extend(merkle::root(old, &tree)?);
        input.extend(merkle::root(new, &tree)?);
        input.extend(proof.concat());
        write(&out.join(format!("corpus/proofs/consistency_{old}_{new}")), &input)?;
    }
    for (name, input) in [
        ("tree_small", [2u8, 7, 0, 5, 0, 3, 0, 2, 0, 1, 10, 0, 9]),
        ("tree_300", [2u8, 0x2c, 1, 0x2b, 1, 0x10, 0, 0xff, 0, 3, 0x20, 0, 7]),
    ] {
        write(&out.join(format!("corpus/proofs/{name}")), &input)?;
    }
    println!("wrote trust/ and corpus/ under {}", out.display());
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, bytes)?;
    Ok(())
}
