//! The web console for operators and auditors (issue 17), served by trucd
//! on a listener of its own (`console.listen`) from files embedded in the
//! binary: a hand-written HTML/JS/CSS bundle (`assets/`), no build step and
//! no external CDN, so it works on an isolated network and what is served
//! is what was reviewed.
//!
//! Who may use it is decided like the gRPC services decide: by a client
//! certificate of the axis CA, judged by `crate::trust::Trust::judge`
//! (chain, validity, CRL, the `urn:truc:` principal). In `mtls` mode the
//! browser presents it in the TLS handshake; in `proxy` mode a
//! TLS-terminating reverse proxy passes it in `console.proxy_header`
//! (URL-escaped PEM, as nginx's `$ssl_client_escaped_cert`), accepted only
//! from `console.proxy_peers`. Operators may act; auditors only read;
//! agencies and hubs are refused. Every action (POST) needs the CSRF token
//! of `/api/session` in `X-CSRF-Token`, and a same-origin request. Refused
//! requests are logged with who, what and why.

mod api;
mod http;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use truc_core::sync::Locked;

use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn, Instrument};

use crate::config::ConsoleMode;
use crate::{HubError, Shared};

/// `[console]`: the web console.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Address of the console's listener; none (the default) serves no
    /// console.
    pub listen: Option<SocketAddr>,
    /// "mtls" (HTTPS; the browser presents an operator or auditor
    /// certificate) or "proxy" (plain HTTP behind a TLS-terminating proxy
    /// that passes the client certificate in `proxy_header`).
    pub mode: ConsoleMode,
    /// The header a proxy puts the client's certificate in ("proxy" mode).
    pub proxy_header: String,
    /// The only addresses whose `proxy_header` is believed ("proxy" mode);
    /// requests from elsewhere are refused.
    pub proxy_peers: Vec<IpAddr>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: None,
            mode: ConsoleMode::Mtls,
            proxy_header: "x-client-cert".into(),
            proxy_peers: Vec::new(),
        }
    }
}

impl ConsoleConfig {
    /// A value the hub cannot use: (key, value, why).
    pub(crate) fn problem(&self) -> Option<(&'static str, String, &'static str)> {
        if self.mode == ConsoleMode::Proxy && self.proxy_peers.is_empty() {
            return Some((
                "console.proxy_peers",
                "[]".into(),
                "must name the reverse proxy's addresses when console.mode = \"proxy\"",
            ));
        }
        if self.mode == ConsoleMode::Proxy
            && hyper::header::HeaderName::from_bytes(self.proxy_header.as_bytes()).is_err()
        {
            return Some((
                "console.proxy_header",
                format!("{:?}", self.proxy_header),
                "is not a header name",
            ));
        }
        None
    }
}

/// Bind `console.listen`, if set.
pub(crate) async fn bind(config: &ConsoleConfig) -> Result<Option<TcpListener>, HubError> {
    match config.listen {
        None => Ok(None),
        Some(a) => TcpListener::bind(a)
            .await
            .map(Some)
            .map_err(|e| HubError::io(format!("cannot listen on {a} (console.listen)"), e)),
    }
}

/// Connections served at once.
const MAX_CONNECTIONS: usize = 128;
/// One sample of the overview's series every this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// An hour of samples.
const SAMPLES: usize = 360;

/// One point of the overview's last hour.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Sample {
    pub(crate) t: i64,
    pub(crate) accepted: u64,
    pub(crate) acked: u64,
    pub(crate) queued: u64,
}

/// What the console's handlers share.
pub(crate) struct Console {
    pub(crate) shared: Arc<Shared>,
    /// Key of the CSRF tokens (random per start: a restart asks pages to
    /// reload their session).
    csrf: ring::hmac::Key,
    pub(crate) samples: Mutex<std::collections::VecDeque<Sample>>,
}

impl Console {
    /// The CSRF token of `principal` (hex HMAC of its URI).
    pub(crate) fn csrf_token(&self, principal: &str) -> String {
        truc_core::hex(ring::hmac::sign(&self.csrf, principal.as_bytes()).as_ref())
    }

    pub(crate) fn csrf_ok(&self, principal: &str, token: &str) -> bool {
        match truc_core::unhex(token) {
            Ok(tag) => ring::hmac::verify(&self.csrf, principal.as_bytes(), &tag).is_ok(),
            Err(_) => false,
        }
    }

    async fn sample(&self) {
        let (accepted, acked) = self.shared.metrics.totals();
        let queued = self.shared.store.agencies().iter().map(|a| a.queued).sum();
        let mut s = self.samples.locked();
        if s.len() == SAMPLES {
            s.pop_front();
        }
        s.push_back(Sample {
            t: truc_core::now_unix_ms(),
            accepted,
            acked,
            queued,
        });
    }
}

/// Serve the console on `listener` until `stop` changes.
pub(crate) fn spawn(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<rustls::ServerConfig>,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, HubError> {
    let rng = ring::rand::SystemRandom::new();
    let csrf = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
        .map_err(|_| HubError::Server("console: no randomness for the CSRF key".into()))?;
    let console = Arc::new(Console {
        shared,
        csrf,
        samples: Mutex::default(),
    });
    let acceptor = tls.map(|mut c| {
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(c))
    });
    let addr = listener.local_addr().ok();
    let sampler = {
        let console = console.clone();
        let mut stop = stop.clone();
        async move {
            loop {
                console.sample().await;
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                }
            }
        }
    };
    tokio::spawn(sampler.instrument(tracing::info_span!("console-sampler")));
    let task = async move {
        if let Some(a) = addr {
            let mode = &console.shared.config.console.mode;
            info!(addr = %a, %mode, "console listening");
        }
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let permit = tokio::select! {
                _ = stop.changed() => break,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let (tcp, peer) = tokio::select! {
                _ = stop.changed() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "console accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            while conns.try_join_next().is_some() {}
            let console = console.clone();
            let acceptor = acceptor.clone();
            let stop = stop.clone();
            conns.spawn(
                async move {
                    let _permit = permit;
                    http::serve_connection(console, tcp, peer, acceptor, stop).await;
                }
                .instrument(tracing::debug_span!("console-conn", %peer)),
            );
        }
        drop(listener);
        // Connections end after their current request (they hold the store).
        while conns.join_next().await.is_some() {}
    };
    Ok(tokio::spawn(task.instrument(tracing::info_span!("console"))))
}
