//! Revocation fails safe: without `tls.crl` the hub uses the CA directory's
//! `crl.pem`; with no CRL anywhere it refuses to start; only an explicit
//! `tls.crl = "none"` runs without one, and says so (ops reload, /metrics).

use tonic::Code;
use truc_client::Client;
use truc_hub::metrics::parse_exposition;
use truc_hub::{Config, CrlSetting, HubError};
use truc_tests::{agency, header, sign, TestHub, TestPki};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";

/// `/metrics` of a hub started with `admin.listen`: the value of `name`.
async fn metric(hub: &TestHub, name: &str) -> Option<f64> {
    let body = truc_tests::admin_get(hub, "/metrics").await.body;
    parse_exposition(&body)
        .into_iter()
        .find(|s| s.name == name && s.labels.is_empty())
        .map(|s| s.value)
}

#[tokio::test]
async fn without_tls_crl_the_ca_directory_crl_is_used_and_a_revocation_takes_effect() {
    let hub = TestHub::start_with(|c| {
        c.tls.reload_poll_ms = 100;
        c.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    assert_eq!(
        hub.config.tls.crl,
        CrlSetting::Default,
        "the test starts without tls.crl"
    );
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    g22.send(sign(&g22, header(&[H26], "before"), b"x")).await.unwrap();
    let op = hub.operator().await;
    let r = op.reload().await.unwrap();
    assert!(!r.no_crl);
    assert_eq!(r.crl_files, vec![hub.pki.pki.crl_path().display().to_string()]);
    assert_eq!(r.revoked_certificates, 0);
    assert_eq!(metric(&hub, "truc_crl_configured").await, Some(1.0));

    hub.pki.pki.revoke_principal(&agency(G22)).unwrap();
    // The rewritten crl.pem is picked up by itself: the live connection is
    // refused on its next call, and so is a new one.
    truc_tests::eventually("the revocation to apply to the live connection", || async {
        g22.track("before")
            .await
            .is_err_and(|e| e.code() == Some(Code::Unauthenticated))
    })
    .await;
    let doc = sign(&g22, header(&[H26], "after"), b"y");
    assert_eq!(
        g22.send(doc.clone()).await.unwrap_err().code(),
        Some(Code::Unauthenticated)
    );
    let fresh = Client::connect_dir(&hub.addr, &hub.pki.agency_dir(G22)).await.unwrap();
    let err = fresh.send(doc).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated), "{err:?}");
    assert!(err.to_string().contains("revoked"), "{err:?}");
    assert_eq!(op.reload().await.unwrap().revoked_certificates, 1);
    assert_eq!(metric(&hub, "truc_crl_revoked_certificates").await, Some(1.0));
    // Only the document sent before the revocation is queued.
    assert_eq!(truc_tests::drain(&h26, 4).await.len(), 1);
}

#[tokio::test]
async fn with_no_crl_anywhere_the_hub_refuses_to_start_and_says_what_to_set() {
    let pki = TestPki::new();
    std::fs::remove_file(pki.pki.crl_path()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().join("store"),
        identity: pki.pki.hub_dir(),
        ..Config::default()
    };
    let err = match truc_hub::start(config.clone()).await {
        Ok(_) => panic!("a hub without a CRL must not start"),
        Err(e) => e,
    };
    assert!(matches!(err, HubError::Config(_)), "{err}");
    let msg = err.to_string();
    for words in [
        pki.pki.crl_path().display().to_string().as_str(),
        "--crl",
        "tls.crl = \"none\"",
        "revoked certificates would be accepted",
    ] {
        assert!(msg.contains(words), "{msg:?} should say {words:?}");
    }
    // Nothing was created: the refusal comes before the store.
    assert!(!config.data_dir.exists());

    // A CRL named explicitly that does not exist is refused too.
    let mut named = config.clone();
    named.tls.crl = CrlSetting::Files(vec![pki.dir.path().join("elsewhere.pem")]);
    let err = truc_hub::start(named).await.err().expect("refused");
    assert!(err.to_string().contains("elsewhere.pem"), "{err}");
}

#[tokio::test]
async fn crl_none_starts_and_says_revocations_are_not_checked() {
    let hub = TestHub::start_with(|c| {
        c.tls.crl = CrlSetting::None;
        c.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let r = hub.operator().await.reload().await.unwrap();
    assert!(r.no_crl, "{r:?}");
    assert!(r.crl_files.is_empty(), "{r:?}");
    assert_eq!(metric(&hub, "truc_crl_configured").await, Some(0.0));
    // What "none" means: a revoked agency is still let in.
    let g22 = hub.agency(G22).await;
    hub.agency(H26).await;
    hub.pki.pki.revoke_principal(&agency(G22)).unwrap();
    hub.operator().await.reload().await.unwrap();
    let fresh = Client::connect_dir(&hub.addr, &hub.pki.agency_dir(G22)).await.unwrap();
    fresh.send(sign(&g22, header(&[H26], "unchecked"), b"x")).await.unwrap();
}
