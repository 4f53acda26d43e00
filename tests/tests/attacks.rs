//! The attack suite: each attack gets its exact gRPC code and message and
//! stores nothing. (Spoofing, signer mismatch, tampering, foreign, expired
//! and revoked certificates, roles and status entitlement are covered in
//! refusals.rs, lifecycle.rs, operators.rs and audit.rs.)

use std::sync::Arc;

use prost::Message;
use tonic::Code;
use truc_client::ClientError;
use truc_pki::IssueOptions;
use truc_proto::v1::axis_client::AxisClient;
use truc_proto::v1::{Receipt, SendResponse};
use truc_tests::{agency, drain, header, identity, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";

fn refused(r: Result<SendResponse, ClientError>, code: Code, words: &str) {
    let e = r.expect_err("must be refused");
    assert_eq!(e.code(), Some(code), "{e:?}");
    assert!(e.to_string().contains(words), "{e} should say {words:?}");
}

fn index(r: &SendResponse) -> u64 {
    Receipt::decode(r.receipt.as_ref().unwrap().receipt.as_slice())
        .unwrap()
        .index
}

#[tokio::test]
async fn document_attacks() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    hub.agency(H29).await;
    let original = sign(&g22, header(&[H26], "replay/1"), b"x");
    let first = g22.send(original.clone()).await.unwrap();

    // Replayed by the sender: the original acceptance, nothing new.
    let again = g22.send(original.clone()).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(index(&again), index(&first));
    // Replayed by someone else, as is: not theirs to send.
    refused(
        h26.send(original.clone()).await,
        Code::PermissionDenied,
        "not the calling agency",
    );

    // A header of 70 KiB, and one cut short.
    let mut h = header(&[H26], "huge-header");
    h.subject = "x".repeat(70 * 1024);
    let mut big = sign(&g22, header(&[H26], "big-hdr"), b"x");
    big.header = h.encode_to_vec();
    refused(g22.send(big).await, Code::InvalidArgument, "at most 65536");
    let mut cut = sign(&g22, header(&[H26], "cut"), b"x");
    cut.header.truncate(cut.header.len() - 5);
    refused(g22.send(cut).await, Code::InvalidArgument, "malformed document header");

    // 10,000 recipients (150 KB of header: refused for its size), and 1,001.
    let many: Vec<String> = (0..10_000)
        .map(|i| format!("{:03}.{:02}.{:02}.H26", i % 1000, i / 1000, 0))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    refused(
        g22.send(sign(&g22, header(&refs, "many"), b"x")).await,
        Code::InvalidArgument,
        "at most 65536",
    );
    refused(
        g22.send(sign(&g22, header(&refs[..1001], "many"), b"x")).await,
        Code::InvalidArgument,
        "at most 1000",
    );

    // Nothing of it was stored: one copy queued, the log grew by nothing.
    let next = g22.send(sign(&g22, header(&[H26], "after"), b"y")).await.unwrap();
    assert_eq!(index(&next), index(&first) + 1);
    assert_eq!(drain(&h26, 8).await.len(), 2);
}

#[tokio::test]
async fn certificate_not_yet_valid() {
    let hub = TestHub::start().await;
    let future = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
    let opts = IssueOptions {
        not_before: Some(future),
        ..Default::default()
    };
    let id = identity(&hub.pki.identity_with(&agency("G09.05"), &opts));
    let ch = hub.raw_channel(Some((&id.cert_pem, &id.key_pem))).await;
    let err = AxisClient::new(ch)
        .receive(truc_proto::v1::ReceiveRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("not valid yet"), "{err:?}");
}

#[tokio::test]
async fn tls12_is_refused_when_the_hub_requires_tls13() {
    let hub = TestHub::start_with(|c| c.tls.min_version = truc_hub::config::TlsVersion::V1_3).await;
    let id = identity(&hub.pki.agency_dir(G22));
    let client = |versions: &'static [&'static rustls::SupportedProtocolVersion]| {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from(id.ca_der.clone()))
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(id.key_pkcs8_der.clone().into());
        let cert = rustls_pki_types::CertificateDer::from(id.cert_der.clone());
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![cert], key)
            .unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
    };
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tcp = tokio::net::TcpStream::connect(&hub.addr).await.unwrap();
    static ONLY_12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    static ONLY_13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let err = client(ONLY_12).connect(name.clone(), tcp).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("protocol"), "{err}");
    // The same client offering TLS 1.3 gets in.
    let tcp = tokio::net::TcpStream::connect(&hub.addr).await.unwrap();
    client(ONLY_13).connect(name, tcp).await.unwrap();
}

#[tokio::test]
async fn a_document_from_a_sender_that_never_had_it_cannot_be_reported_on() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h29 = hub.agency(H29).await;
    hub.agency(H26).await;
    g22.send(sign(&g22, header(&[H26], "private"), b"x")).await.unwrap();
    let err = h29.report_status(G22, "private", 3, "", None).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err:?}");
}
