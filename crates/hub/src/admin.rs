//! The admin listener: plain HTTP/1.1 for Prometheus and probes, on its own
//! address (`admin.listen`), never on the gRPC port.
//!
//! - `GET /metrics`: the Prometheus text exposition ([`crate::metrics`]).
//! - `GET /healthz`: 200 while the process runs.
//! - `GET /readyz`: 200 once the store is open and the gRPC listener serves;
//!   503 before that and while shutting down.
//! - `GET /checkpoint`: the receipt log's latest signed tree head as a C2SP
//!   checkpoint (c2sp.org/tlog-checkpoint, a c2sp.org/signed-note with
//!   origin `<hub id>.truc/receipts`, Ed25519 with the receipt key); 404
//!   while the log is empty. It proves nothing by itself: a reader checks
//!   it with the hub's receipt public key. The cosignatures the peers'
//!   witnesses gave that checkpoint follow its signature line.
//! - `POST /add-checkpoint`: the witness of the peers whose logs this hub
//!   witnesses (c2sp.org/tlog-witness, [`crate::witness`]); peers must
//!   reach it. Its body is read up to
//!   [`truc_core::c2sp::witness::MAX_REQUEST_BYTES`].
//!
//! It serves nothing else and reads no other request body. Requests are parsed by
//! hyper with a small header buffer and a header read timeout; connections
//! are capped in number and in lifetime, so a slow or hostile client cannot
//! hold the listener. It has no TLS and no authentication: bind it to
//! loopback or a private network that only the scraper reaches.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn, Instrument};

use crate::metrics::{self, Metrics};
use crate::{HubError, Shared};

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// Time a client gets to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection may stay open, keep-alive included.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Longest a scrape may take to gather the per-agency gauges.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request header buffer (hyper's minimum is 8 KiB).
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What the admin endpoints report on.
pub(crate) struct Admin {
    pub(crate) metrics: Arc<Metrics>,
    /// Set once the services exist; weak, so that the admin listener never
    /// keeps the store open.
    shared: OnceLock<Weak<Shared>>,
    ready: AtomicBool,
    stopping: AtomicBool,
}

impl Admin {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            shared: OnceLock::new(),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        })
    }

    /// The services exist: /metrics can read the queues.
    pub(crate) fn attach(&self, shared: &Arc<Shared>) {
        let _ = self.shared.set(Arc::downgrade(shared));
    }

    /// The store is open and the gRPC listener serves.
    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Shutdown has begun: /readyz answers 503 from now on.
    pub(crate) fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.stopping.load(Ordering::SeqCst) && self.store_problem().is_none()
    }

    /// Why the store cannot commit now (a full disk, a failed write it
    /// is recovering from).
    fn store_problem(&self) -> Option<String> {
        self.shared().and_then(|s| s.store.commit_problem())
    }

    fn shared(&self) -> Option<Arc<Shared>> {
        self.shared.get().and_then(Weak::upgrade)
    }

    async fn metrics_text(&self) -> String {
        let shared = self.shared();
        let (queues, peers, certs, storage) = match &shared {
            Some(s) => {
                let rows = tokio::time::timeout(SCRAPE_TIMEOUT, crate::queues::summaries(s)).await;
                let rows = match rows {
                    Ok(Ok(rows)) => Some(rows),
                    Ok(Err(e)) => {
                        warn!(error = %e, "metrics: cannot read the queues");
                        None
                    }
                    Err(_) => {
                        warn!("metrics: reading the queues timed out");
                        None
                    }
                };
                let peers = match tokio::time::timeout(SCRAPE_TIMEOUT, crate::peers::links(s)).await {
                    Ok(Ok(rows)) => rows,
                    Ok(Err(e)) => {
                        warn!(error = %e, "metrics: cannot read the peers' outboxes");
                        Vec::new()
                    }
                    Err(_) => {
                        warn!("metrics: reading the peers' outboxes timed out");
                        Vec::new()
                    }
                };
                let files = s.trust.files().clone();
                let shared = s.clone();
                let (certs, storage) = tokio::task::spawn_blocking(move || {
                    let mut cas = files.client_cas.clone();
                    cas.extend(files.anchors.iter().cloned());
                    cas.extend(files.peers.iter().map(|p| p.ca.clone()));
                    let certs = metrics::certificate_expiries(&files.hub_cert, &cas);
                    (certs, Some(crate::disk::storage(&shared)))
                })
                .await
                .unwrap_or_default();
                (rows, peers, certs, storage)
            }
            None => (None, Vec::new(), Vec::new(), None),
        };
        let mut text = self
            .metrics
            .render(self.is_ready(), queues.as_deref(), &certs, storage.as_ref());
        metrics::render_peers(&mut text, &peers);
        if let Some(s) = &shared {
            s.witness.render(&mut text);
        }
        text
    }

    /// `/checkpoint`: the latest signed tree head as a signed checkpoint.
    async fn checkpoint(&self) -> Response<String> {
        use crate::federation::NoCheckpoint;
        let Some(shared) = self.shared() else {
            return text(StatusCode::SERVICE_UNAVAILABLE, "not ready: starting\n".into());
        };
        match shared.federation.checkpoint(shared.store.as_ref()).await {
            Ok(mut note) => {
                // The cosignatures of exactly this checkpoint, after the
                // hub's own signature line: still one signed note.
                if let Ok(n) = truc_core::c2sp::Note::parse(note.as_bytes()) {
                    if let Ok(cp) = truc_core::c2sp::Checkpoint::parse_text(&n.text) {
                        note.push_str(&shared.witness.cosigned.lines(cp.size, &cp.root));
                    }
                }
                text(StatusCode::OK, note)
            }
            Err(e @ (NoCheckpoint::EmptyLog | NoCheckpoint::NoHubId)) => text(StatusCode::NOT_FOUND, format!("{e}\n")),
            Err(e @ NoCheckpoint::Store) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        }
    }

    /// `POST /add-checkpoint`: read the body (bounded in size and time)
    /// and let the witness answer.
    async fn add_checkpoint<B>(&self, req: Request<B>) -> Response<String>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(shared) = self.shared() else {
            return text(StatusCode::SERVICE_UNAVAILABLE, "not ready: starting\n".into());
        };
        let limit = truc_core::c2sp::witness::MAX_REQUEST_BYTES;
        let body = tokio::time::timeout(HEADER_TIMEOUT, Limited::new(req.into_body(), limit).collect()).await;
        let body = match body {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("the request body cannot be read (at most {limit} bytes): {e}\n"),
                )
            }
            Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "the request body took too long\n".into()),
        };
        let now = u64::try_from(shared.config.clock.now_unix_ms() / 1000).unwrap_or(0);
        let a = shared.witness.add_checkpoint(&body, shared.store.as_ref(), now).await;
        let mut r = text(
            StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            a.body,
        );
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(a.content_type));
        r
    }

    async fn handle<B>(&self, req: Request<B>) -> Response<String>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if req.uri().path() == truc_core::c2sp::witness::ADD_CHECKPOINT_PATH {
            if req.method() == Method::POST {
                return self.add_checkpoint(req).await;
            }
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only POST\n".into());
            r.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        let path = req.uri().path();
        let is_head = req.method() == Method::HEAD;
        if req.method() != Method::GET && !is_head {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
            r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let mut resp = match path {
            "/metrics" => {
                let mut r = text(StatusCode::OK, self.metrics_text().await);
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE));
                r
            }
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/checkpoint" => self.checkpoint().await,
            "/readyz" => {
                if self.is_ready() {
                    text(StatusCode::OK, "ready\n".into())
                } else if self.stopping.load(Ordering::SeqCst) {
                    text(StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down\n".into())
                } else if let Some(why) = self.store_problem() {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: the store cannot commit: {why}\n"),
                    )
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "not ready: starting\n".into())
                }
            }
            "/" => text(
                StatusCode::OK,
                "trucd admin: /metrics /healthz /readyz /checkpoint /add-checkpoint\n".into(),
            ),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: /metrics /healthz /readyz /checkpoint /add-checkpoint\n".into(),
            ),
        };
        if is_head {
            resp.body_mut().clear();
        }
        resp
    }
}

fn text(status: StatusCode, body: String) -> Response<String> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Bind the admin address, if one is configured.
pub(crate) async fn bind(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, HubError> {
    match addr {
        None => Ok(None),
        Some(a) => TcpListener::bind(a)
            .await
            .map(Some)
            .map_err(|e| HubError::io(format!("cannot listen on {a} (admin.listen)"), e)),
    }
}

/// Serve the admin endpoints on `listener` until `stop` changes or its
/// sender is dropped; open connections are then closed after their current
/// request.
pub(crate) fn spawn(
    listener: TcpListener,
    admin: Arc<Admin>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let addr = listener.local_addr().ok();
    let task = async move {
        if let Some(a) = addr {
            info!(addr = %a, "admin listening: /metrics /healthz /readyz /checkpoint");
        }
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let permit = tokio::select! {
                _ = stop.changed() => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (tcp, peer) = tokio::select! {
                _ = stop.changed() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            while conns.try_join_next().is_some() {}
            let admin = admin.clone();
            let mut stop = stop.clone();
            conns.spawn(
                async move {
                    let _permit = permit;
                    let svc = service_fn(move |req| {
                        let admin = admin.clone();
                        async move { Ok::<_, std::convert::Infallible>(admin.handle(req).await) }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .max_buf_size(MAX_HEADER_BYTES)
                        .serve_connection(TokioIo::new(tcp), svc);
                    tokio::pin!(conn);
                    let lifetime = tokio::time::sleep(CONNECTION_LIFETIME);
                    tokio::pin!(lifetime);
                    let r = tokio::select! {
                        r = conn.as_mut() => r,
                        _ = &mut lifetime => {
                            conn.as_mut().graceful_shutdown();
                            tokio::time::timeout(SCRAPE_TIMEOUT, conn.as_mut()).await.unwrap_or(Ok(()))
                        }
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            tokio::time::timeout(SCRAPE_TIMEOUT, conn.as_mut()).await.unwrap_or(Ok(()))
                        }
                    };
                    if let Err(e) = r {
                        debug!(error = %e, "admin connection ended with an error");
                    }
                }
                .instrument(tracing::debug_span!("admin-conn", %peer)),
            );
        }
        drop(listener);
        while conns.join_next().await.is_some() {}
    };
    tokio::spawn(task.instrument(tracing::info_span!("admin")))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(admin: &Admin, method: Method, path: &str) -> (StatusCode, String) {
        let req = Request::builder().method(method).uri(path).body(String::new()).unwrap();
        let r = admin.handle(req).await;
        (r.status(), r.into_body())
    }

    #[tokio::test]
    async fn readiness_follows_the_hub_and_health_does_not() {
        let admin = Admin::new(Arc::new(Metrics::new()));
        assert_eq!(get(&admin, Method::GET, "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(&admin, Method::GET, "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting\n".into())
        );
        admin.set_ready();
        assert_eq!(
            get(&admin, Method::GET, "/readyz").await,
            (StatusCode::OK, "ready\n".into())
        );
        admin.set_stopping();
        assert_eq!(
            get(&admin, Method::GET, "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down\n".into())
        );
        assert_eq!(get(&admin, Method::GET, "/healthz").await.0, StatusCode::OK);
        let (status, body) = get(&admin, Method::GET, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("truc_ready 0\n"), "{body}");
        assert_eq!(
            get(&admin, Method::POST, "/metrics").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(get(&admin, Method::GET, "/nope").await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            get(&admin, Method::HEAD, "/healthz").await,
            (StatusCode::OK, String::new())
        );
    }
}
