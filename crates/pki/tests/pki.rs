//! The PKI end to end: init, issue for every key type and principal kind,
//! chain and signature verification with webpki, revocation via the CRL.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, ServerName, SignatureVerificationAlgorithm, UnixTime};
use truc_core::{AgencyCode, Principal};
use truc_pki::{read_cert_ders, read_crl_ders, Identity, IssueOptions, KeyType, Pki, PkiError, Serial, Usage};
use webpki::ring as algs;
use x509_parser::extensions::GeneralName;

fn agency(code: &str) -> Principal {
    Principal::Agency(AgencyCode::parse(code).unwrap())
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn init(dir: &Path) -> Pki {
    Pki::init(dir, "truc-hub", &["hub.truc.gov.vn".into(), "10.0.0.5".into()]).unwrap()
}

/// Verify `cert` against the PKI's CA (and its CRL when `crl` is set), for
/// `usage`, at `now`.
fn verify(pki: &Pki, cert: &[u8], usage: webpki::KeyUsage, crl: bool, now: UnixTime) -> Result<(), webpki::Error> {
    let ca = CertificateDer::from(pki.ca_der());
    let anchor = webpki::anchor_from_trusted_cert(&ca).unwrap();
    let cert = CertificateDer::from(cert);
    let ee = webpki::EndEntityCert::try_from(&cert)?;
    let crls: Vec<webpki::CertRevocationList<'static>> = read_crl_ders(pki.crl_path())
        .unwrap()
        .iter()
        .map(|d| webpki::OwnedCertRevocationList::from_der(d).unwrap().into())
        .collect();
    let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().collect();
    let revocation = crl.then(|| {
        webpki::RevocationOptionsBuilder::new(&crl_refs)
            .unwrap()
            .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
            .build()
    });
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        now,
        usage,
        revocation,
        None,
    )
    .map(|_| ())
}

/// The certificate in identity directory `dir` names each of `names`.
fn assert_names(dir: &Path, names: &[&str]) {
    let have = truc_pki::CertInfo::from_pem_file(&dir.join("cert.pem")).unwrap().names;
    for n in names {
        assert!(have.iter().any(|x| x == n), "{n} in {have:?}");
    }
}

fn verify_client(pki: &Pki, cert: &[u8]) -> Result<(), webpki::Error> {
    verify(pki, cert, webpki::KeyUsage::client_auth(), true, UnixTime::now())
}

#[test]
fn init_writes_every_file_with_the_right_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("PKI");
    let pki = init(&dir);
    for f in ["ca.pem", "serial", "crlnumber", "issued.tsv", "revoked.tsv", "crl.pem"] {
        assert!(dir.join(f).is_file(), "{f}");
        assert_eq!(mode(&dir.join(f)), 0o644, "{f}");
    }
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    let hub = pki.hub_dir();
    assert_eq!(hub, dir.join("hub"));
    assert_eq!(mode(&hub), 0o700);
    for f in ["cert.pem", "ca.pem", "receipts.pub"] {
        assert_eq!(mode(&hub.join(f)), 0o644, "{f}");
    }
    for f in ["key.pem", "receipts.key"] {
        assert_eq!(mode(&hub.join(f)), 0o600, "{f}");
    }
    assert_eq!(
        fs::read_to_string(hub.join("ca.pem")).unwrap(),
        fs::read_to_string(pki.ca_pem_path()).unwrap()
    );

    // The CRL exists from the start, is signed by the CA and lists nothing.
    let crl = read_crl_ders(pki.crl_path()).unwrap();
    assert_eq!(crl.len(), 1);
    webpki::OwnedCertRevocationList::from_der(&crl[0]).unwrap();
    let (_, ca_x509) = x509_parser::parse_x509_certificate(pki.ca_der()).unwrap();
    let (_, crl_x509) = x509_parser::parse_x509_crl(&crl[0]).unwrap();
    assert_eq!(crl_x509.iter_revoked_certificates().count(), 0);
    assert!(crl_x509.verify_signature(ca_x509.public_key()).is_ok());
    let next = crl_x509.next_update().unwrap().timestamp() - crl_x509.last_update().timestamp();
    assert_eq!(next, 7 * 86_400);

    // The hub identity loads, and the CA is the trust anchor the hub reads.
    let id = Identity::load(&hub).unwrap();
    assert_eq!(id.principal, Principal::Hub("truc-hub".into()));
    assert_eq!(read_cert_ders(pki.ca_pem_path()).unwrap(), vec![pki.ca_der().to_vec()]);

    // The receipt key is an Ed25519 PKCS#8 key whose public half is receipts.pub.
    let key_pem = fs::read_to_string(hub.join("receipts.key")).unwrap();
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let (kind, der) = first_pem(&key_pem);
    assert_eq!(kind, SectionKind::PrivateKey);
    let key = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).unwrap();
    let pub_pem = fs::read_to_string(hub.join("receipts.pub")).unwrap();
    assert!(pub_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let (kind, spki) = first_pem(&pub_pem);
    assert_eq!(kind, SectionKind::PublicKey);
    use ring::signature::KeyPair as _;
    assert!(spki.ends_with(key.public_key().as_ref()));

    // The CA is a CA, the ledger names the hub.
    assert!(ca_x509.is_ca());
    let issued = pki.issued().unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].principal_uri, "urn:truc:hub:truc-hub");
    assert_eq!(issued[0].path, Path::new("hub"));
    let tsv = fs::read_to_string(dir.join("issued.tsv")).unwrap();
    assert_eq!(tsv.lines().next().unwrap().split('\t').count(), 4);
}

/// The kind and DER of the first PEM block in `pem`.
fn first_pem(pem: &str) -> (SectionKind, Vec<u8>) {
    <(SectionKind, Vec<u8>)>::from_pem_slice(pem.as_bytes()).unwrap()
}

#[test]
fn init_refuses_an_existing_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(tmp.path());
    let before = fs::read(pki.ca_pem_path()).unwrap();
    let err = Pki::init(tmp.path(), "other", &[]).unwrap_err();
    assert!(matches!(err, PkiError::AlreadyInitialized { .. }));
    let msg = err.to_string();
    assert!(msg.contains("ca.pem") && msg.contains("already exists"), "{msg}");
    assert_eq!(fs::read(pki.ca_pem_path()).unwrap(), before);
}

#[test]
fn hub_certificate_names_and_usages() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(tmp.path());
    let id = Identity::load(&pki.hub_dir()).unwrap();
    let (_, x509) = x509_parser::parse_x509_certificate(&id.cert_der).unwrap();
    let san = x509.subject_alternative_name().unwrap().unwrap();
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    let mut uris = Vec::new();
    for n in &san.value.general_names {
        match n {
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            GeneralName::IPAddress(b) => ips.push(b.to_vec()),
            GeneralName::URI(u) => uris.push(u.to_string()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    assert_eq!(uris, ["urn:truc:hub:truc-hub"]);
    assert_eq!(dns, ["localhost", "hub.truc.gov.vn"]);
    let mut v6 = vec![0u8; 16];
    v6[15] = 1;
    assert_eq!(ips, [vec![127, 0, 0, 1], v6, vec![10, 0, 0, 5]]);
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);

    let now = UnixTime::now();
    verify(&pki, &id.cert_der, webpki::KeyUsage::server_auth(), true, now).unwrap();
    verify(&pki, &id.cert_der, webpki::KeyUsage::client_auth(), true, now).unwrap();
    let cert = CertificateDer::from(id.cert_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&cert).unwrap();
    for name in ["localhost", "hub.truc.gov.vn", "127.0.0.1", "::1", "10.0.0.5"] {
        ee.verify_is_valid_for_subject_name(&ServerName::try_from(name).unwrap())
            .unwrap();
    }
    assert!(ee
        .verify_is_valid_for_subject_name(&ServerName::try_from("evil.example").unwrap())
        .is_err());

    // Rotating the hub keeps its names and its receipt key.
    let receipts = fs::read(pki.receipt_key_path()).unwrap();
    let dir = pki
        .reissue(&Principal::Hub("truc-hub".into()), "truc-hub", &IssueOptions::default())
        .unwrap()
        .dir;
    assert_eq!(dir, pki.hub_dir());
    let rotated = Identity::load(&dir).unwrap();
    assert_ne!(rotated.cert_der, id.cert_der);
    let cert = CertificateDer::from(rotated.cert_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&cert).unwrap();
    ee.verify_is_valid_for_subject_name(&ServerName::try_from("hub.truc.gov.vn").unwrap())
        .unwrap();
    assert_eq!(fs::read(pki.receipt_key_path()).unwrap(), receipts);
}

fn algs_for(kt: KeyType, pss: bool) -> &'static dyn SignatureVerificationAlgorithm {
    match (kt, pss) {
        (KeyType::EcdsaP256, _) => algs::ECDSA_P256_SHA256,
        (KeyType::Ed25519, _) => algs::ED25519,
        (KeyType::Rsa2048, false) => algs::RSA_PKCS1_2048_8192_SHA256,
        (KeyType::Rsa2048, true) => algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    }
}

#[test]
fn issue_every_key_type_and_principal_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(tmp.path());
    let cases = [
        (
            agency("000.00.00.G22"),
            "Văn phòng Chính phủ",
            KeyType::EcdsaP256,
            "agencies/000.00.00.G22",
        ),
        (agency("G09.01"), "Sở Tài chính", KeyType::Ed25519, "agencies/G09.01"),
        (
            agency("000.00.00.H26"),
            "UBND tỉnh Hà Giang",
            KeyType::Rsa2048,
            "agencies/000.00.00.H26",
        ),
        (
            Principal::Operator("ops".into()),
            "Nguyễn Văn A",
            KeyType::EcdsaP256,
            "operators/ops",
        ),
        (
            Principal::Auditor("kiem-toan".into()),
            "Kiểm toán",
            KeyType::Ed25519,
            "auditors/kiem-toan",
        ),
    ];
    for (principal, display, kt, rel) in cases {
        let opts = IssueOptions {
            key_type: kt,
            ..Default::default()
        };
        let dir = pki.issue(&principal, display, &opts).unwrap();
        assert_eq!(dir, tmp.path().join(rel));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("key.pem")), 0o600);

        let id = Identity::load(&dir).unwrap();
        assert_eq!(id.principal, principal);
        assert_eq!(id.ca_der, pki.ca_der());

        // Exactly one SAN URI, naming the principal; UTF-8 CN; O = Truc.
        let (_, x509) = x509_parser::parse_x509_certificate(&id.cert_der).unwrap();
        let san = x509.subject_alternative_name().unwrap().unwrap();
        let uris: Vec<_> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| if let GeneralName::URI(u) = n { Some(*u) } else { None })
            .collect();
        assert_eq!(uris, [principal.uri()]);
        let cn = x509.subject().iter_common_name().next().unwrap().as_str().unwrap();
        assert_eq!(cn, display);
        let o = x509.subject().iter_organization().next().unwrap().as_str().unwrap();
        assert_eq!(o, "Truc");
        let ku = x509.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature());
        assert_eq!(
            ku.non_repudiation(),
            matches!(principal, Principal::Agency(_)),
            "{principal}"
        );
        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!x509.is_ca());

        verify_client(&pki, &id.cert_der).unwrap();
        assert!(verify(
            &pki,
            &id.cert_der,
            webpki::KeyUsage::server_auth(),
            true,
            UnixTime::now()
        )
        .is_err());

        // The identity's signer makes signatures the certificate verifies.
        let cert = CertificateDer::from(id.cert_der.as_slice());
        let ee = webpki::EndEntityCert::try_from(&cert).unwrap();
        let header = b"serialized DocumentHeader bytes";
        for pss in [false, true] {
            let signer = id.signer().unwrap().rsa_pss(pss);
            assert_eq!(signer.key_type(), kt);
            let sig = signer.sign(header).unwrap();
            ee.verify_signature(algs_for(kt, pss), header, &sig).unwrap();
            assert!(ee.verify_signature(algs_for(kt, pss), b"other bytes", &sig).is_err());
            let want_scheme = match (kt, pss) {
                (KeyType::Rsa2048, false) => 1,
                (KeyType::Rsa2048, true) => 2,
                _ => 0,
            };
            assert_eq!(signer.scheme(), want_scheme);
            // truc-core's document check accepts it too.
            truc_core::document::verify_signature(&id.cert_der, header, &sig, signer.scheme()).unwrap();
        }
    }
    let uris: Vec<String> = pki.issued().unwrap().into_iter().map(|c| c.principal_uri).collect();
    assert_eq!(uris.len(), 6);
    assert_eq!(uris[1], "urn:truc:agency:000.00.00.G22");
}

#[test]
fn server_only_usage_cannot_authenticate_a_client() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(tmp.path());
    let opts = IssueOptions {
        usage: Usage::ServerOnly,
        ..Default::default()
    };
    let dir = pki.issue(&agency("G09.01"), "Sở Tài chính", &opts).unwrap();
    let id = Identity::load(&dir).unwrap();
    let err = verify_client(&pki, &id.cert_der).unwrap_err();
    assert!(matches!(err, webpki::Error::RequiredEkuNotFoundContext(_)), "{err:?}");
    verify(
        &pki,
        &id.cert_der,
        webpki::KeyUsage::server_auth(),
        true,
        UnixTime::now(),
    )
    .unwrap();
}

#[test]
fn validity_period_is_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(tmp.path());
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let future = IssueOptions {
        not_before: Some(now + day),
        ..Default::default()
    };
    let dir = pki.issue(&Principal::Operator("later".into()), "", &future).unwrap();
    let id = Identity::load(&dir).unwrap();
    assert!(matches!(
        verify_client(&pki, &id.cert_der),
        Err(webpki::Error::CertNotValidYet { .. })
    ));

    let past = IssueOptions {
        not_before: Some(now - 10 * day),
        not_after: Some(now - day),
        ..Default::default()
    };
    let dir = pki.issue(&Principal::Operator("expired".into()), "", &past).unwrap();
    let id = Identity::load(&dir).unwrap();
    assert!(matches!(
        verify_client(&pki, &id.cert_der),
        Err(webpki::Error::CertExpired { .. })
    ));

    let short = IssueOptions {
        days: 2,
        ..Default::default()
    };
    let dir = pki.issue(&Principal::Operator("short".into()), "", &short).unwrap();
    let id = Identity::load(&dir).unwrap();
    let (_, x509) = x509_parser::parse_x509_certificate(&id.cert_der).unwrap();
    let v = x509.validity();
    assert_eq!(v.not_after.timestamp() - v.not_before.timestamp(), 2 * 86_400);
    // An empty CN falls back to the name.
    assert_eq!(
        x509.subject().iter_common_name().next().unwrap().as_str().unwrap(),
        "short"
    );

    let backwards = IssueOptions {
        not_before: Some(now),
        not_after: Some(now - day),
        ..Default::default()
    };
    let err = pki.issue(&Principal::Operator("x".into()), "", &backwards).unwrap_err();
    assert!(matches!(err, PkiError::Validity(_)), "{err}");
}

#[test]
fn revocation_reaches_the_crl() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(tmp.path());
    let g22 = agency("000.00.00.G22");
    let h26 = agency("000.00.00.H26");
    let dir = pki
        .issue(&g22, "Văn phòng Chính phủ", &IssueOptions::default())
        .unwrap();
    let old = Identity::load(&dir).unwrap();
    // A rotation: a second certificate for the same principal.
    pki.reissue(&g22, "Văn phòng Chính phủ", &IssueOptions::default())
        .unwrap();
    let new = Identity::load(&dir).unwrap();
    assert_ne!(old.cert_der, new.cert_der);
    let other = Identity::load(&pki.issue(&h26, "UBND", &IssueOptions::default()).unwrap()).unwrap();
    for id in [&old, &new, &other] {
        verify_client(&pki, &id.cert_der).unwrap();
    }

    let revoked = pki.revoke_principal(&g22).unwrap();
    assert_eq!(revoked.len(), 2);
    let crl = read_crl_ders(pki.crl_path()).unwrap();
    webpki::OwnedCertRevocationList::from_der(&crl[0]).unwrap();
    let (_, crl_x509) = x509_parser::parse_x509_crl(&crl[0]).unwrap();
    let listed: Vec<u64> = crl_x509
        .iter_revoked_certificates()
        .map(|r| r.user_certificate.clone().try_into().unwrap())
        .collect();
    assert_eq!(listed, revoked.iter().map(|s| s.0).collect::<Vec<_>>());
    for id in [&old, &new] {
        assert_eq!(verify_client(&pki, &id.cert_der), Err(webpki::Error::CertRevoked));
        // Without the CRL the chain itself is fine: revocation is what refuses it.
        verify(
            &pki,
            &id.cert_der,
            webpki::KeyUsage::client_auth(),
            false,
            UnixTime::now(),
        )
        .unwrap();
    }
    verify_client(&pki, &other.cert_der).unwrap();
    // The same refusal through truc-core, as the hub runs it.
    let trust = truc_core::document::SigningTrust::new(&[pki.ca_der().to_vec()], &crl).unwrap();
    assert!(trust
        .verify_chain(std::slice::from_ref(&new.cert_der), UnixTime::now())
        .is_err());
    assert_eq!(
        trust
            .verify_chain(std::slice::from_ref(&other.cert_der), UnixTime::now())
            .unwrap(),
        h26
    );

    // Revoking again changes nothing; a second revocation keeps the first.
    assert!(pki.revoke_principal(&g22).unwrap().is_empty());
    let other_serial = pki
        .issued()
        .unwrap()
        .iter()
        .find(|c| c.principal_uri == h26.uri())
        .unwrap()
        .serial;
    assert_eq!(pki.revoke_serial(other_serial).unwrap(), vec![other_serial]);
    assert!(pki.revoke_serial(other_serial).unwrap().is_empty());
    for id in [&old, &new, &other] {
        assert_eq!(verify_client(&pki, &id.cert_der), Err(webpki::Error::CertRevoked));
    }
    let issued = pki.issued().unwrap();
    assert_eq!(issued.iter().filter(|c| c.revoked_at.is_some()).count(), 3);

    // Unknown serials and principals are refused.
    let err = pki.revoke_serial(Serial(0xffff)).unwrap_err().to_string();
    assert!(err.contains("serial ffff") && err.contains("issued.tsv"), "{err}");
    let err = pki
        .revoke_principal(&Principal::Auditor("nobody".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("urn:truc:auditor:nobody"), "{err}");
    let err = pki.revoke_serial(Serial(1)).unwrap_err();
    assert!(matches!(err, PkiError::Serial { .. }), "the CA's own serial: {err}");
}

#[test]
fn open_reuses_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let first = init(tmp.path());
    let pki = Pki::open(tmp.path()).unwrap();
    assert_eq!(pki.ca_der(), first.ca_der());
    let dir = pki
        .issue(&Principal::Operator("ops".into()), "Ops", &IssueOptions::default())
        .unwrap();
    let id = Identity::load(&dir).unwrap();
    verify_client(&pki, &id.cert_der).unwrap();
    pki.revoke_principal(&id.principal).unwrap();
    assert_eq!(verify_client(&pki, &id.cert_der), Err(webpki::Error::CertRevoked));
    // Serials never repeat across opens.
    let serials: Vec<Serial> = pki.issued().unwrap().iter().map(|c| c.serial).collect();
    assert_eq!(serials, [Serial(2), Serial(3)]);

    // A CA key that does not match ca.pem is refused, naming the file.
    let other = tempfile::tempdir().unwrap();
    init(other.path());
    fs::copy(other.path().join("ca.key"), tmp.path().join("ca.key")).unwrap();
    let err = Pki::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("ca.key") && err.contains("does not match"), "{err}");
    let err = Pki::open(&tmp.path().join("missing")).unwrap_err().to_string();
    assert!(err.contains("missing/ca.pem"), "{err}");
}

#[test]
fn identity_load_names_the_bad_file() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(tmp.path());
    let a = pki
        .issue(&Principal::Operator("a".into()), "A", &IssueOptions::default())
        .unwrap();
    let b = pki
        .issue(&Principal::Operator("b".into()), "B", &IssueOptions::default())
        .unwrap();

    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let err = Identity::load(&empty).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "identity directory {}: cert.pem: No such file or directory",
            empty.display()
        )
    );

    fs::copy(b.join("key.pem"), a.join("key.pem")).unwrap();
    let err = Identity::load(&a).unwrap_err().to_string();
    assert!(
        err.contains("key.pem: does not match the public key in cert.pem"),
        "{err}"
    );

    fs::write(b.join("cert.pem"), "garbage").unwrap();
    let err = Identity::load(&b).unwrap_err().to_string();
    assert!(err.contains("cert.pem: no usable CERTIFICATE block"), "{err}");
}

#[test]
fn issuing_again_is_refused_and_reissue_keeps_the_old_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(tmp.path());
    let g22 = agency("000.00.00.G22");
    let dir = pki.issue(&g22, "VPCP", &IssueOptions::default()).unwrap();
    let old = Identity::load(&dir).unwrap();
    let old_serial = pki.issued().unwrap().last().unwrap().serial;

    // A second issue changes nothing and says what to do.
    let err = pki.issue(&g22, "VPCP", &IssueOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::IdentityExists { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("serial {old_serial}"))
            && msg.contains("--force")
            && msg.contains(&dir.display().to_string()),
        "{msg}"
    );
    assert_eq!(Identity::load(&dir).unwrap().key_pem, old.key_pem);
    assert_eq!(pki.issued().unwrap().len(), 2, "nothing issued");

    // On purpose: a new key and certificate; the old certificate is kept
    // under its serial, not revoked.
    let done = pki.reissue(&g22, "VPCP", &IssueOptions::default()).unwrap();
    assert_eq!(done.dir, dir);
    let kept = dir.join(format!("cert.pem.old-{old_serial}"));
    assert_eq!(done.replaced, Some((Some(old_serial), kept.clone())));
    assert_eq!(fs::read_to_string(&kept).unwrap(), old.cert_pem);
    let new = Identity::load(&dir).unwrap();
    assert_ne!(new.key_pem, old.key_pem);
    assert_ne!(new.cert_der, old.cert_der);
    assert_eq!(mode(&dir.join("key.pem")), 0o600);
    verify_client(&pki, &old.cert_der).unwrap();
    verify_client(&pki, &new.cert_der).unwrap();
    assert!(pki.issued().unwrap().iter().all(|c| c.revoked_at.is_none()));
    // A principal without an identity: nothing replaced.
    let fresh = pki
        .reissue(&agency("000.00.00.H26"), "x", &IssueOptions::default())
        .unwrap();
    assert_eq!(fresh.replaced, None);
}

#[test]
fn keys_readable_by_others_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(tmp.path());
    let dir = pki
        .issue(&agency("000.00.00.G22"), "VPCP", &IssueOptions::default())
        .unwrap();
    let key = dir.join("key.pem");
    for m in [0o644, 0o640, 0o666] {
        fs::set_permissions(&key, fs::Permissions::from_mode(m)).unwrap();
        let err = Identity::load(&dir).unwrap_err().to_string();
        assert!(err.contains(&format!("run `chmod 600 {}`", key.display())), "{err}");
    }
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    Identity::load(&dir).unwrap();
    // The CA key too.
    let ca_key = tmp.path().join("ca.key");
    fs::set_permissions(&ca_key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = Pki::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains(&format!("chmod 600 {}", ca_key.display())), "{err}");
}

#[test]
fn pkcs1_rsa_keys_load() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(tmp.path());
    let opts = IssueOptions {
        key_type: KeyType::Rsa2048,
        ..Default::default()
    };
    let dir = pki.issue(&agency("G09.01"), "Sở Tài chính", &opts).unwrap();
    let id = Identity::load(&dir).unwrap();
    let key = rsa::RsaPrivateKey::from_pkcs8_der(&id.key_pkcs8_der).unwrap();
    let pem = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    fs::write(dir.join("key.pem"), pem.as_bytes()).unwrap();
    let reloaded = Identity::load(&dir).unwrap();
    let sig = reloaded.signer().unwrap().sign(b"x").unwrap();
    let cert = CertificateDer::from(id.cert_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&cert).unwrap();
    ee.verify_signature(algs::RSA_PKCS1_2048_8192_SHA256, b"x", &sig)
        .unwrap();
}

#[test]
fn bad_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(tmp.path());
    for name in ["../escape", "Upper", ""] {
        let err = pki
            .issue(&Principal::Operator(name.into()), "x", &IssueOptions::default())
            .unwrap_err();
        assert!(matches!(err, PkiError::InvalidName { .. }), "{name:?}: {err}");
    }
    let opts = IssueOptions {
        sans: vec!["not a name".into()],
        ..Default::default()
    };
    let err = pki.issue(&Principal::Hub("peer".into()), "Peer", &opts).unwrap_err();
    assert!(err.to_string().contains("not a name"), "{err}");
    assert!(Pki::init(&tmp.path().join("x"), "Bad Hub", &[]).is_err());
}

/// Renewal keeps the key (unless asked for a new one), the subject and the
/// names, adds names, keeps the old certificate (still valid, its serial
/// given back for revocation); `list` shows every certificate's state.
#[test]
fn renew_keeps_or_replaces_the_key_and_list_shows_what_was_issued() {
    let dir = tempfile::tempdir().unwrap();
    let pki = init(dir.path());
    let g22 = agency("000.00.00.G22");
    let gdir = pki
        .issue(&g22, "Văn phòng Chính phủ", &IssueOptions::default())
        .unwrap();
    let before = Identity::load(&gdir).unwrap();
    let old_serial = before.cert_info().unwrap().serial;

    let r = pki
        .renew(
            &g22,
            &IssueOptions {
                days: 30,
                ..Default::default()
            },
            false,
        )
        .unwrap();
    let after = Identity::load(&gdir).unwrap();
    let info = after.cert_info().unwrap();
    assert_eq!(after.key_pem, before.key_pem, "the same key");
    assert_ne!(info.serial, old_serial);
    assert_eq!(info.subject, "Văn phòng Chính phủ");
    assert!(info.not_after - info.not_before <= 30 * 86_400 + 600, "{info:?}");
    let (serial, kept) = r.replaced.clone().unwrap();
    assert_eq!(serial, Some(old_serial));
    assert!(kept.ends_with(format!("cert.pem.old-{old_serial}")));
    verify_client(&pki, &after.cert_der).unwrap();
    verify_client(&pki, &before.cert_der).expect("the old one stays valid until revoked");

    let r2 = pki.renew(&g22, &IssueOptions::default(), true).unwrap();
    assert_ne!(Identity::load(&gdir).unwrap().key_pem, before.key_pem, "a new key");
    assert_eq!(r2.replaced.unwrap().0, Some(info.serial));

    // The hub: renewing with a new name keeps the old ones.
    let hub = Principal::Hub("truc-hub".into());
    pki.renew(
        &hub,
        &IssueOptions {
            sans: vec!["192.0.2.2".into()],
            ..Default::default()
        },
        false,
    )
    .unwrap();
    assert_names(
        &pki.hub_dir(),
        &["localhost", "127.0.0.1", "hub.truc.gov.vn", "10.0.0.5", "192.0.2.2"],
    );

    pki.revoke_serial(old_serial).unwrap();
    let list = pki.list().unwrap();
    let of = |s: Serial| list.iter().find(|l| l.issued.serial == s).unwrap();
    assert!(of(old_serial).issued.revoked_at.is_some());
    assert!(!of(old_serial).current);
    assert_eq!(
        of(old_serial).subject.as_deref(),
        Some("Văn phòng Chính phủ"),
        "read from the kept copy"
    );
    let current: Vec<_> = list.iter().filter(|l| l.current && l.role == "agency").collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].name, "000.00.00.G22");
    assert!(list.iter().any(|l| l.role == "hub" && l.current));
}

/// A server certificate (NATS, a reverse proxy): the given names, server
/// and client usage, no principal (the hub would not take it as a client),
/// recorded in the ledger; refused without names, and over an existing one
/// without force.
#[test]
fn a_server_certificate_names_hosts_and_no_principal() {
    let dir = tempfile::tempdir().unwrap();
    let pki = init(dir.path());
    let opts = IssueOptions {
        sans: vec!["nats-0.nats".into(), "10.0.0.7".into()],
        ..Default::default()
    };
    let done = pki.issue_server("nats-0", &opts, false).unwrap();
    assert_eq!(done.dir, dir.path().join("servers/nats-0"));
    assert_eq!(mode(&done.dir.join("key.pem")), 0o600);
    let der = read_cert_ders(done.dir.join("cert.pem")).unwrap().remove(0);
    verify(&pki, &der, webpki::KeyUsage::server_auth(), true, UnixTime::now()).unwrap();
    let cert = CertificateDer::from(der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&cert).unwrap();
    ee.verify_is_valid_for_subject_name(&ServerName::try_from("nats-0.nats").unwrap())
        .unwrap();
    assert!(Principal::from_cert_der(&der).is_err(), "names no principal");
    let listed = pki.list().unwrap();
    assert!(listed
        .iter()
        .any(|l| l.role == "server" && l.name == "nats-0" && l.current));

    let err = pki.issue_server("nats-1", &IssueOptions::default(), false).unwrap_err();
    assert!(err.to_string().contains("at least one --san"), "{err}");
    let err = pki.issue_server("nats-0", &opts, false).unwrap_err();
    assert!(matches!(err, PkiError::IdentityExists { .. }), "{err}");
    let again = pki.issue_server("nats-0", &opts, true).unwrap();
    assert!(again.replaced.is_some());
    assert!(pki.issue_server("../x", &opts, false).is_err());
}

/// `truc pki issue --hub <id>` for another hub of this CA (several hubs
/// under one CA): an identity trucd runs with, with its own receipt key;
/// the certificate names urn:truc:hub:<id> and the names given, serves and
/// authenticates TLS; renewing or replacing it keeps the receipt key and
/// the names.
#[test]
fn another_hub_of_this_ca_gets_a_runnable_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = init(tmp.path());
    let h49 = Principal::Hub("h49".into());
    let opts = IssueOptions {
        sans: vec!["h49.truc.gov.vn".into(), "10.49.0.1".into()],
        ..Default::default()
    };
    let dir = pki.issue(&h49, "UBND tỉnh Quảng Ninh (trục tỉnh)", &opts).unwrap();
    assert_eq!(dir, tmp.path().join("hubs/h49"));
    for (f, m) in [
        ("key.pem", 0o600),
        ("receipts.key", 0o600),
        ("receipts.pub", 0o644),
        ("cert.pem", 0o644),
    ] {
        assert_eq!(mode(&dir.join(f)), m, "{f}");
    }
    let id = Identity::load(&dir).unwrap();
    assert_eq!(id.principal, h49);
    let (_, x509) = x509_parser::parse_x509_certificate(&id.cert_der).unwrap();
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(
        eku.server_auth && eku.client_auth,
        "a hub is a server to agencies and a client to its peers"
    );
    verify_client(&pki, &id.cert_der).unwrap();
    verify(
        &pki,
        &id.cert_der,
        webpki::KeyUsage::server_auth(),
        true,
        UnixTime::now(),
    )
    .unwrap();
    assert_names(&dir, &["h49.truc.gov.vn", "10.49.0.1"]);
    // The receipt key is an Ed25519 key the hub can load.
    let pem = fs::read_to_string(dir.join("receipts.pub")).unwrap();
    truc_core::tree_head::TreeHeadVerifier::from_pem(&pem).unwrap();
    let receipts = fs::read(dir.join("receipts.key")).unwrap();
    // This CA's own hub is still hub/, untouched.
    assert_eq!(
        Identity::load(&pki.hub_dir()).unwrap().principal,
        Principal::Hub("truc-hub".into())
    );
    // Issuing it again is refused; renewing adds a name with the same key;
    // replacing it (--force) makes a new TLS key and keeps the names; the
    // receipt key never changes.
    assert!(matches!(
        pki.issue(&h49, "x", &opts),
        Err(PkiError::IdentityExists { .. })
    ));
    pki.renew(
        &h49,
        &IssueOptions {
            sans: vec!["h49-b.truc.gov.vn".into()],
            ..Default::default()
        },
        false,
    )
    .unwrap();
    assert_eq!(Identity::load(&dir).unwrap().key_pem, id.key_pem);
    pki.reissue(&h49, "x", &IssueOptions::default()).unwrap();
    let rotated = Identity::load(&dir).unwrap();
    assert_ne!(rotated.key_pem, id.key_pem);
    assert_names(&dir, &["h49.truc.gov.vn", "10.49.0.1", "h49-b.truc.gov.vn"]);
    assert_eq!(fs::read(dir.join("receipts.key")).unwrap(), receipts);
}
