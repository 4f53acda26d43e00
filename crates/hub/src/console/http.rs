//! The console's HTTP side: TLS or the proxy's header, who is calling,
//! the CSRF and origin checks, security headers, the embedded files; the
//! JSON handlers are in `api.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, warn};
use truc_core::Principal;

use super::Console;

const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// Largest request body (actions carry a few ids and a reason).
const MAX_BODY: usize = 64 * 1024;

/// The Content-Security-Policy of every response: only this origin's own
/// script and style files, no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const VERIFY_JS: &str = include_str!("assets/verify.js");
const APP_CSS: &str = include_str!("assets/app.css");

pub(super) async fn serve_connection(
    console: Arc<Console>,
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    match acceptor {
        Some(acceptor) => {
            let tls = match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return debug!(error = %e, "console TLS handshake failed"),
                Err(_) => return debug!("console TLS handshake timed out"),
            };
            let chain: Vec<Vec<u8>> = tls
                .get_ref()
                .1
                .peer_certificates()
                .unwrap_or(&[])
                .iter()
                .map(|c| c.to_vec())
                .collect();
            run(console, TokioIo::new(tls), peer, Some(Arc::new(chain)), stop).await
        }
        None => run(console, TokioIo::new(tcp), peer, None, stop).await,
    }
}

async fn run<I>(
    console: Arc<Console>,
    io: I,
    peer: SocketAddr,
    chain: Option<Arc<Vec<Vec<u8>>>>,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let console = console.clone();
        let chain = chain.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&console, req, peer, chain).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(16 * 1024)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    let lifetime = tokio::time::sleep(CONNECTION_LIFETIME);
    tokio::pin!(lifetime);
    let r = tokio::select! {
        r = conn.as_mut() => r,
        _ = &mut lifetime => { conn.as_mut().graceful_shutdown(); conn.as_mut().await }
        _ = stop.changed() => { conn.as_mut().graceful_shutdown(); conn.as_mut().await }
    };
    if let Err(e) = r {
        debug!(error = %e, "console connection ended with an error");
    }
}

/// A response: status, content type, body.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
    /// Offered as a download under this name.
    pub(crate) attachment: Option<String>,
}

impl Reply {
    pub(crate) fn json(v: serde_json::Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            content_type: "application/json; charset=utf-8",
            body: v.to_string(),
            attachment: None,
        }
    }

    pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "application/json; charset=utf-8",
            body: serde_json::json!({ "error": message.into() }).to_string(),
            attachment: None,
        }
    }
}

/// Who is calling and what they may do.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) principal: Principal,
    pub(crate) operator: bool,
}

fn identify(
    console: &Console,
    req: &Request<Incoming>,
    peer: SocketAddr,
    chain: Option<Arc<Vec<Vec<u8>>>>,
) -> Result<Caller, (StatusCode, String)> {
    let cfg = &console.shared.config.console;
    let chain: Vec<Vec<u8>> = match chain {
        Some(c) => c.as_ref().clone(),
        None => {
            if !cfg.proxy_peers.contains(&peer.ip()) {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!("{} is not in console.proxy_peers", peer.ip()),
                ));
            }
            let raw = req
                .headers()
                .get(cfg.proxy_header.as_str())
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let pem = crate::percent::decode(raw);
            CertificateDer::pem_slice_iter(pem.as_bytes())
                .filter_map(Result::ok)
                .map(|c| c.to_vec())
                .collect()
        }
    };
    if chain.is_empty() {
        return Err((
            StatusCode::UNAUTHORIZED,
            "no client certificate: present an operator or auditor certificate of the axis CA".into(),
        ));
    }
    let principal = console
        .shared
        .trust
        .judge(&chain)
        .map_err(|why| (StatusCode::UNAUTHORIZED, format!("client certificate refused: {why}")))?;
    match &principal {
        Principal::Operator(_) => Ok(Caller {
            principal,
            operator: true,
        }),
        Principal::Auditor(_) => Ok(Caller {
            principal,
            operator: false,
        }),
        p => Err((
            StatusCode::FORBIDDEN,
            format!("{p} may not use the console: it is for operators and auditors"),
        )),
    }
}

/// A state-changing request must come from the console's own page: the
/// same origin (when the browser says), and the caller's CSRF token.
fn check_action(console: &Console, req: &Request<Incoming>, caller: &Caller) -> Result<(), (StatusCode, String)> {
    let h = req.headers();
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" {
            return Err((StatusCode::FORBIDDEN, format!("cross-site request ({site})")));
        }
    }
    if let (Some(origin), Some(host)) = (
        h.get("origin").and_then(|v| v.to_str().ok()),
        h.get("host").and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin_host != host {
            return Err((StatusCode::FORBIDDEN, format!("origin {origin} is not this console")));
        }
    }
    let token = h.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
    if token.is_empty() || !console.csrf_ok(&caller.principal.uri(), token) {
        return Err((
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the page and try again".into(),
        ));
    }
    if !caller.operator {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "{} is read-only: actions need an operator certificate",
                caller.principal
            ),
        ));
    }
    Ok(())
}

async fn read_body(body: Incoming) -> Result<Vec<u8>, (StatusCode, String)> {
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                "the request body could not be read".to_string(),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
            if out.len() > MAX_BODY {
                return Err((StatusCode::PAYLOAD_TOO_LARGE, "request body too large".into()));
            }
        }
    }
    Ok(out)
}

fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    Some(match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", INDEX),
        "/app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "/verify.js" => ("text/javascript; charset=utf-8", VERIFY_JS),
        "/app.css" => ("text/css; charset=utf-8", APP_CSS),
        _ => return None,
    })
}

async fn handle(
    console: &Console,
    req: Request<Incoming>,
    peer: SocketAddr,
    chain: Option<Arc<Vec<Vec<u8>>>>,
) -> Response<String> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let reply = match identify(console, &req, peer, chain) {
        Err((status, why)) => {
            warn!(%peer, %method, %path, reason = %why, "console request refused");
            Reply::error(status, why)
        }
        Ok(caller) => match (method.clone(), asset(&path)) {
            (Method::GET, Some((ct, body))) => Reply {
                status: StatusCode::OK,
                content_type: ct,
                body: body.to_string(),
                attachment: None,
            },
            (Method::GET, None) => super::api::get(console, &caller, &path, req.uri().query().unwrap_or("")).await,
            (Method::POST, _) => match check_action(console, &req, &caller) {
                Err((status, why)) => {
                    warn!(%peer, principal = %caller.principal, %path, reason = %why, "console action refused");
                    Reply::error(status, why)
                }
                Ok(()) => match read_body(req.into_body()).await {
                    Err((status, why)) => Reply::error(status, why),
                    Ok(body) => super::api::post(console, &caller, &path, &body).await,
                },
            },
            _ => Reply::error(StatusCode::METHOD_NOT_ALLOWED, "GET or POST only"),
        },
    };
    if reply.status.is_client_error() && reply.status != StatusCode::NOT_FOUND {
        debug!(%peer, %path, status = %reply.status, "console request not served");
    }
    let mut r = Response::new(reply.body);
    *r.status_mut() = reply.status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    if let Some(name) = reply.attachment {
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            h.insert("content-disposition", v);
        }
    }
    r
}
