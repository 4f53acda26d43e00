//! Bad input gets a clear gRPC status and changes nothing (design.md
//! invariants 1, 2 and 6).

use prost::Message;
use tonic::Code;
use truc_client::{Client, ClientError};
use truc_pki::{Identity, IssueOptions, KeyType, Usage};
use truc_proto::v1::axis_client::AxisClient;
use truc_proto::v1::ops_client::OpsClient;
use truc_proto::v1::{AddAgencyRequest, Receipt, SendRequest, SendResponse, SignedDocument};
use truc_tests::{agency, header, identity, sign, TestHub, TestPki};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";

fn receipt_index(r: &SendResponse) -> u64 {
    Receipt::decode(r.receipt.as_ref().unwrap().receipt.as_slice())
        .unwrap()
        .index
}

fn assert_refused(r: Result<SendResponse, ClientError>, code: Code, words: &str) {
    let err = r.expect_err("must be refused");
    assert_eq!(err.code(), Some(code), "{err:?}");
    assert!(err.to_string().contains(words), "{err} should say {words:?}");
}

struct Setup {
    hub: TestHub,
    g22: Client,
    h26: Client,
    /// Receipts in the log after a first valid send.
    log_size: u64,
}

async fn setup() -> Setup {
    let hub = TestHub::start_with(|c| c.limits.max_inline_payload = 64 * 1024).await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    let first = g22.send(sign(&g22, header(&[H26], "ok/0"), b"first")).await.unwrap();
    let log_size = receipt_index(&first) + 1;
    Setup {
        hub,
        g22,
        h26,
        log_size,
    }
}

impl Setup {
    /// Nothing was stored since setup: the next valid send gets the next
    /// receipt index, and only the first document is queued.
    async fn assert_nothing_stored(&self) {
        let queued = self.hub.queued().await;
        assert_eq!(
            queued,
            vec![(G22.to_string(), 0), (H26.to_string(), 1)],
            "queues changed"
        );
        let next = self
            .g22
            .send(sign(&self.g22, header(&[H26], "ok/after"), b"after"))
            .await
            .unwrap();
        assert_eq!(receipt_index(&next), self.log_size, "the receipt log grew");
    }
}

#[tokio::test]
async fn document_refusals_store_nothing() {
    let s = setup().await;
    let g22 = &s.g22;

    // header.from names another agency than the mTLS certificate.
    let mut h = header(&[H26], "spoof/1");
    h.from = H26.into();
    let doc = sign(g22, h, b"x");
    assert_refused(g22.send(doc).await, Code::PermissionDenied, "not the calling agency");

    // Signed by another agency's key and certificate, from = caller.
    let h26_id = identity(&s.hub.pki.agency_dir(H26));
    let mut h = header(&[H26], "signer/1");
    h.from = G22.into();
    let doc = truc_client::sign_with(&h26_id.signer().unwrap(), &h26_id, &mut h, b"x".to_vec()).unwrap();
    assert_refused(
        g22.send(doc).await,
        Code::PermissionDenied,
        "signed by urn:truc:agency:000.00.00.H26",
    );

    // Signature bytes altered.
    let mut doc = sign(g22, header(&[H26], "badsig/1"), b"x");
    let n = doc.signature.len();
    doc.signature[n - 3] ^= 0x40;
    assert_refused(g22.send(doc).await, Code::InvalidArgument, "signature does not verify");

    // Header altered after signing (a recipient added).
    let mut doc = sign(g22, header(&[H26], "tamper/1"), b"x");
    let mut h = truc_proto::v1::DocumentHeader::decode(doc.header.as_slice()).unwrap();
    h.subject = "changed".into();
    doc.header = h.encode_to_vec();
    assert_refused(g22.send(doc).await, Code::InvalidArgument, "signature does not verify");

    // Payload swapped after signing, same size and different size.
    let mut doc = sign(g22, header(&[H26], "swap/1"), b"original");
    doc.payload = b"forgery!".to_vec();
    assert_refused(g22.send(doc.clone()).await, Code::InvalidArgument, "SHA-256 differs");
    doc.payload = b"longer forgery".to_vec();
    assert_refused(g22.send(doc).await, Code::InvalidArgument, "payload is 14 bytes");

    // Unknown recipient (valid code, not registered), and a bad code.
    let doc = sign(g22, header(&[H26, H29], "unknown/1"), b"x");
    assert_refused(
        g22.send(doc).await,
        Code::FailedPrecondition,
        "000.00.00.H29 is not registered",
    );
    let doc = sign(g22, header(&["h26"], "badcode/1"), b"x");
    assert_refused(g22.send(doc).await, Code::InvalidArgument, "invalid agency code");

    // Malformed header bytes, empty header, missing document.
    let mut doc = sign(g22, header(&[H26], "garbage/1"), b"x");
    doc.header = vec![0x0a, 0xff, 0xff, 0xff, 0x01];
    assert_refused(g22.send(doc).await, Code::InvalidArgument, "malformed document header");
    let err = g22.axis().send(SendRequest { document: None }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // No signer chain.
    let mut doc = sign(g22, header(&[H26], "nochain/1"), b"x");
    doc.signer_chain.clear();
    assert_refused(g22.send(doc).await, Code::InvalidArgument, "no signer certificate");

    // Duplicate recipients.
    let doc = sign(g22, header(&[H26, H26], "dup/1"), b"x");
    assert_refused(g22.send(doc).await, Code::InvalidArgument, "listed twice");

    // Larger than the inline limit.
    let doc = sign(g22, header(&[H26], "big/1"), &vec![7u8; 64 * 1024 + 1]);
    assert_refused(g22.send(doc).await, Code::ResourceExhausted, "at most 65536 bytes");

    // Signed ten years, or six minutes, ahead of the hub's clock (5 minutes
    // are allowed): by Send, and by an Upload, whose header is checked
    // before any byte.
    for (id, ahead_s) in [("future/1", 10 * 365 * 86_400), ("future/2", 360)] {
        let mut h = header(&[H26], id);
        h.signed_at_unix_ms = truc_core::now_unix_ms() + ahead_s * 1000;
        assert_refused(
            g22.send(sign(g22, h.clone(), b"x")).await,
            Code::InvalidArgument,
            "ahead of the hub's clock; at most 300000 ms is allowed",
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.pdf");
        std::fs::write(&path, b"x").unwrap();
        let doc = truc_client::transfer::sign_external(g22.identity(), h, truc_core::sha256(b"x"), 1).unwrap();
        let err = g22.upload_file(doc, &path, &|_, _| {}).await.unwrap_err().to_string();
        assert!(err.contains("ahead of the hub's clock"), "{err}");
    }

    s.assert_nothing_stored().await;
    // The one queued document is intact.
    assert_eq!(truc_tests::drain(&s.h26, 4).await.len(), 2);
    // A minute ahead (clocks differ a little) is accepted.
    let mut h = header(&[H26], "future/3");
    h.signed_at_unix_ms = truc_core::now_unix_ms() + 60_000;
    g22.send(sign(g22, h, b"x")).await.unwrap();
}

#[tokio::test]
async fn connection_refusals() {
    let s = setup().await;

    // No client certificate at all.
    let ch = s.hub.raw_channel(None).await;
    let err = AxisClient::new(ch)
        .send(SendRequest {
            document: Some(SignedDocument::default()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("no client certificate"), "{err:?}");

    // A certificate from another CA, for a registered agency's code.
    let other = TestPki::new();
    let foreign = identity(&other.agency_dir(G22));
    let ch = s.hub.raw_channel(Some((&foreign.cert_pem, &foreign.key_pem))).await;
    let doc = truc_client::sign_document(&foreign, header(&[H26], "foreign/1"), b"x".to_vec()).unwrap();
    let err = AxisClient::new(ch)
        .send(SendRequest { document: Some(doc) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("not issued by a trusted"), "{err:?}");

    // A certificate that may not be used by a client (server-only usage).
    let p = agency("000.00.00.G17");
    let dir = s.hub.pki.identity_with(
        &p,
        &IssueOptions {
            usage: Usage::ServerOnly,
            ..Default::default()
        },
    );
    let id = identity(&dir);
    let ch = s.hub.raw_channel(Some((&id.cert_pem, &id.key_pem))).await;
    let err = AxisClient::new(ch)
        .receive(truc_proto::v1::ReceiveRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // An expired certificate.
    let p = agency("000.00.00.G12");
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(10 * 86_400);
    let opts = IssueOptions {
        not_before: Some(past),
        days: 1,
        ..Default::default()
    };
    let id = identity(&s.hub.pki.identity_with(&p, &opts));
    let ch = s.hub.raw_channel(Some((&id.cert_pem, &id.key_pem))).await;
    let err = AxisClient::new(ch)
        .receive(truc_proto::v1::ReceiveRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("expired"), "{err:?}");

    // An agency calling an operator RPC; an operator calling Send.
    let err = OpsClient::new(s.hub.raw_channel(Some(pem(s.g22.identity()))).await)
        .add_agency(AddAgencyRequest {
            code: H29.into(),
            name: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let op = s.hub.operator().await;
    let doc = sign(&s.g22, header(&[H26], "op/1"), b"x");
    assert_refused(op.send(doc).await, Code::PermissionDenied, "is not an agency");
    let err = op.add_agency("not a code", "x").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));

    s.assert_nothing_stored().await;
}

fn pem(id: &Identity) -> (&str, &str) {
    (&id.cert_pem, &id.key_pem)
}

#[tokio::test]
async fn every_key_type_signs_and_a_revoked_signer_is_refused() {
    let mut hub = TestHub::start().await;
    let h26 = hub.agency(H26).await;
    let cases = [
        ("G09.01", KeyType::EcdsaP256, false),
        ("G09.02", KeyType::Ed25519, false),
        ("G09.03", KeyType::Rsa2048, false),
        ("G09.04", KeyType::Rsa2048, true),
    ];
    for (code, key_type, pss) in cases {
        hub.pki.identity_with(
            &agency(code),
            &IssueOptions {
                key_type,
                ..Default::default()
            },
        );
        let c = hub.agency(code).await;
        let id = c.identity();
        let signer = id.signer().unwrap().rsa_pss(pss);
        let mut h = header(&[H26], &format!("{code}/1"));
        let doc = truc_client::sign_with(&signer, id, &mut h, code.as_bytes().to_vec()).unwrap();
        c.send(doc)
            .await
            .unwrap_or_else(|e| panic!("{code} {key_type:?} pss={pss}: {e:?}"));
    }
    let got = truc_tests::drain(&h26, 8).await;
    assert_eq!(got.len(), 4);
    let trust = truc_client::axis_trust(h26.identity()).unwrap();
    for d in &got {
        truc_client::verify_received(d.document.as_ref().unwrap(), &trust).expect("recipient verifies");
    }

    // Sign a document now, revoke the signer, restart (the hub reads the
    // CRL at start): the connection and the signature are both refused.
    let g0901 = hub.connect(&hub.pki.agency_dir("G09.01")).await;
    let doc = sign(&g0901, header(&[H26], "G09.01/late"), b"late");
    hub.pki.pki.revoke_principal(&agency("G09.01")).unwrap();
    hub.restart().await;
    let err = Client::connect_dir(&hub.addr, &hub.pki.agency_dir("G09.01"))
        .await
        .unwrap()
        .send(doc.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated), "{err:?}");
    assert!(err.to_string().contains("revoked"), "{err:?}");
    // A revoked signer certificate is refused inside a document too, even
    // when another agency's valid connection carries it.
    let g0902 = hub.connect(&hub.pki.agency_dir("G09.02")).await;
    let revoked = identity(&hub.pki.agency_dir("G09.01"));
    let mut h = header(&[H26], "G09.02/revoked-signer");
    h.from = "G09.02".into();
    let doc = truc_client::sign_with(&revoked.signer().unwrap(), &revoked, &mut h, b"x".to_vec()).unwrap();
    assert_refused(
        g0902.send(doc).await,
        Code::InvalidArgument,
        "certificate has been revoked",
    );
}
