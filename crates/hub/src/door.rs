//! The public port's door: how many connections may be open, from one
//! address and in all, how many TLS handshakes may run at once, and when an
//! authenticated connection has been idle long enough to be closed.
//!
//! A connection over a cap is closed the moment it is accepted, and
//! counted; nothing waits in a queue. Every cap and its refusals are in
//! `/metrics` (`truc_connections_*`, `truc_tls_handshakes_in_progress`).
//! Unauthenticated connections are handled in [`crate::tls`].

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use truc_core::sync::Locked;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;
use tonic::codegen::{http, Bytes, Service, StdError};
use tonic::server::NamedService;

use crate::budget::Budget;

/// Why a connection was refused at the door.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refused {
    Total,
    PerAddress,
    Handshakes,
}

/// Why the hub closed a connection it had accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Closed {
    HandshakeFailed,
    HandshakeTimeout,
    NoCertificate,
    CertificateRefused,
    Idle,
}

const CLOSED: [(Closed, &str); 5] = [
    (Closed::HandshakeFailed, "handshake_failed"),
    (Closed::HandshakeTimeout, "handshake_timeout"),
    (Closed::NoCertificate, "no_certificate"),
    (Closed::CertificateRefused, "certificate_refused"),
    (Closed::Idle, "idle"),
];

/// The caps and what they hold now. One per running hub.
#[derive(Debug)]
pub(crate) struct Door {
    max_total: u64,
    max_per_address: u32,
    max_handshakes: u64,
    open: AtomicU64,
    handshaking: AtomicU64,
    per_address: Mutex<HashMap<IpAddr, u32>>,
    refused: [AtomicU64; 3],
    closed: [AtomicU64; 5],
    /// The authenticated connections held now, by a number given in
    /// accept order (`Ops.ListConnections`).
    held: Mutex<BTreeMap<u64, Arc<ConnState>>>,
    next_held: AtomicU64,
    /// `limits.max_streams_per_connection` (enforced by HTTP/2; shown
    /// here).
    max_streams_per_connection: u32,
    /// `limits.max_request_bytes_per_connection`, each connection's
    /// [`Budget`].
    max_request_bytes: u64,
    /// `limits.max_request_memory`: every connection's requests together,
    /// and the pushbacks of both limits.
    hub_held: Arc<crate::budget::HubHeld>,
}

impl Door {
    pub(crate) fn new(limits: &crate::config::LimitsConfig, max_total: u32) -> Door {
        let (max_per_address, max_handshakes) = (limits.max_connections_per_address, limits.max_handshakes);
        Door {
            max_total: u64::from(max_total),
            max_per_address,
            max_handshakes: u64::from(max_handshakes),
            open: AtomicU64::new(0),
            handshaking: AtomicU64::new(0),
            per_address: Mutex::new(HashMap::new()),
            refused: Default::default(),
            closed: Default::default(),
            held: Mutex::new(BTreeMap::new()),
            next_held: AtomicU64::new(0),
            max_streams_per_connection: limits.max_streams_per_connection,
            max_request_bytes: limits.max_request_bytes_per_connection,
            hub_held: Arc::new(crate::budget::HubHeld::new(limits.max_request_memory)),
        }
    }

    /// The request budget of a new connection.
    pub(crate) fn budget(&self) -> Budget {
        Budget::new(self.max_request_bytes, self.hub_held.clone())
    }

    /// Let a new connection from `ip` in, or say which cap it is over (and
    /// count it). The connection is counted until the guard is dropped.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refused> {
        let refuse = |why: Refused| {
            self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
            Err(why)
        };
        if self.open.fetch_add(1, Ordering::SeqCst) >= self.max_total {
            self.open.fetch_sub(1, Ordering::SeqCst);
            return refuse(Refused::Total);
        }
        {
            let mut map = self.per_address.locked();
            let n = map.entry(ip).or_insert(0);
            if *n >= self.max_per_address {
                drop(map);
                self.open.fetch_sub(1, Ordering::SeqCst);
                return refuse(Refused::PerAddress);
            }
            *n += 1;
        }
        Ok(Admitted { door: self.clone(), ip })
    }

    /// A slot for one TLS handshake, or `None` (counted) when all are taken.
    pub(crate) fn handshake(self: &Arc<Self>) -> Option<Handshaking> {
        if self.handshaking.fetch_add(1, Ordering::SeqCst) >= self.max_handshakes {
            self.handshaking.fetch_sub(1, Ordering::SeqCst);
            self.refused[Refused::Handshakes as usize].fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Handshaking(self.clone()))
    }

    /// The hub closed an accepted connection, for `why`.
    pub(crate) fn closed(&self, why: Closed) {
        self.closed[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// List an authenticated connection until the guard is dropped (with
    /// the connection).
    pub(crate) fn hold(self: &Arc<Self>, conn: Arc<ConnState>) -> Held {
        let id = self.next_held.fetch_add(1, Ordering::Relaxed);
        self.held.locked().insert(id, conn);
        Held { door: self.clone(), id }
    }

    /// The authenticated connections held now, in accept order.
    pub(crate) fn held(&self) -> Vec<Arc<ConnState>> {
        self.held.locked().values().cloned().collect()
    }

    /// Connections open now (handshaking or not).
    pub(crate) fn open(&self) -> u64 {
        self.open.load(Ordering::SeqCst)
    }

    /// The `truc_connections_*` and `truc_tls_handshakes_in_progress`
    /// families, in the text exposition format.
    pub(crate) fn render(&self, out: &mut String) {
        let busiest = self.per_address.locked().values().copied().max().unwrap_or(0);
        let mut family = |name: &str, kind: &str, help: &str, rows: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        family(
            "truc_connections_open",
            "gauge",
            "Connections open on the gRPC port now, TLS handshakes included (cap: limits.max_connections).",
            &[("", self.open())],
        );
        family(
            "truc_connections_busiest_address",
            "gauge",
            "Connections open now from the address that holds the most (cap: limits.max_connections_per_address).",
            &[("", u64::from(busiest))],
        );
        family(
            "truc_tls_handshakes_in_progress",
            "gauge",
            "TLS handshakes running now on the gRPC port (cap: limits.max_handshakes).",
            &[("", self.handshaking.load(Ordering::SeqCst))],
        );
        family(
            "truc_connection_limits",
            "gauge",
            "The caps in force: total, per_address, handshakes; per connection: streams, request_bytes; \
             over every connection: request_memory.",
            &[
                ("{limit=\"total\"}", self.max_total),
                ("{limit=\"per_address\"}", u64::from(self.max_per_address)),
                ("{limit=\"handshakes\"}", self.max_handshakes),
                ("{limit=\"streams\"}", u64::from(self.max_streams_per_connection)),
                ("{limit=\"request_bytes\"}", self.max_request_bytes),
                ("{limit=\"request_memory\"}", self.hub_held.limit()),
            ],
        );
        family(
            "truc_request_memory_bytes",
            "gauge",
            "Request memory the hub holds now over every connection (each request: its first message plus \
             32 KiB), and the most it held since it started.",
            &[
                ("{at=\"now\"}", self.hub_held.held()),
                ("{at=\"peak\"}", self.hub_held.peak()),
            ],
        );
        family(
            "truc_requests_pushed_back_total",
            "counter",
            "Requests answered RESOURCE_EXHAUSTED with a retry pushback because their connection held \
             limits.max_request_bytes_per_connection already, or the hub limits.max_request_memory.",
            &[("", self.hub_held.pushed_back())],
        );
        let refused = |r: Refused| self.refused[r as usize].load(Ordering::Relaxed);
        family(
            "truc_connections_refused_total",
            "counter",
            "Connections closed as soon as accepted because a cap was reached, by cap.",
            &[
                ("{cap=\"total\"}", refused(Refused::Total)),
                ("{cap=\"per_address\"}", refused(Refused::PerAddress)),
                ("{cap=\"handshakes\"}", refused(Refused::Handshakes)),
            ],
        );
        let rows: Vec<(String, u64)> = CLOSED
            .iter()
            .map(|(c, name)| {
                (
                    format!("{{reason=\"{name}\"}}"),
                    self.closed[*c as usize].load(Ordering::Relaxed),
                )
            })
            .collect();
        let refs: Vec<(&str, u64)> = rows.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            "truc_connections_closed_total",
            "counter",
            "Accepted connections the hub closed, by reason: a failed or slow TLS handshake, no client certificate, a refused certificate, idle.",
            &refs,
        );
    }
}

/// A connection counted at the door (in all and for its address).
#[derive(Debug)]
pub(crate) struct Admitted {
    door: Arc<Door>,
    ip: IpAddr,
}

impl Admitted {
    pub(crate) fn door(&self) -> &Arc<Door> {
        &self.door
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut map = self.door.per_address.locked();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        drop(map);
        self.door.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An authenticated connection listed by the door, unlisted on drop.
#[derive(Debug)]
pub(crate) struct Held {
    door: Arc<Door>,
    id: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.door.held.locked().remove(&self.id);
    }
}

/// Who is on an authenticated connection and how it was set up: fixed
/// when the handshake completed.
#[derive(Debug, Clone)]
pub(crate) struct About {
    /// The principal's URN, as judged at the handshake.
    pub(crate) principal: String,
    pub(crate) addr: SocketAddr,
    pub(crate) connected_at_unix_ms: i64,
    /// "TLSv1.3" or "TLSv1.2".
    pub(crate) tls_version: String,
    /// IANA name of the negotiated suite.
    pub(crate) cipher_suite: String,
}

/// A TLS handshake slot, released on drop.
#[derive(Debug)]
pub(crate) struct Handshaking(Arc<Door>);

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.handshaking.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What one authenticated connection is doing: requests open, idle since
/// when, and whether it must close (its certificate was refused after a
/// reload). Shared by the connection (which closes itself) and its
/// requests (which keep it busy).
#[derive(Debug)]
pub(crate) struct ConnState {
    about: About,
    /// The request bytes it has in the hub's hands.
    budget: Arc<Budget>,
    active: AtomicUsize,
    /// Requests since it connected.
    requests: AtomicU64,
    idle_since: Mutex<Instant>,
    close_at: Mutex<Option<Instant>>,
    waker: Mutex<Option<Waker>>,
}

impl ConnState {
    pub(crate) fn new(about: About, budget: Budget) -> Arc<ConnState> {
        Arc::new(ConnState {
            about,
            budget: Arc::new(budget),
            active: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since: Mutex::new(Instant::now()),
            close_at: Mutex::new(None),
            waker: Mutex::new(None),
        })
    }

    /// A request started; the connection is busy until the guard drops
    /// (when its response, a stream's included, has ended).
    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Who is connected, from where, since when, over what.
    pub(crate) fn about(&self) -> &About {
        &self.about
    }

    /// The request bytes it has in the hub's hands.
    pub(crate) fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Requests open now.
    pub(crate) fn open_requests(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Requests made since it connected.
    pub(crate) fn requests_total(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Since when nothing is open, or `None` while a request is.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        (self.active.load(Ordering::SeqCst) == 0).then(|| *self.idle_since.locked())
    }

    /// When the connection must close, if it must.
    pub(crate) fn close_at(&self) -> Option<Instant> {
        *self.close_at.locked()
    }

    /// Close the connection at `at` (the first call wins), waking it.
    pub(crate) fn close_by(&self, at: Instant) {
        let mut c = self.close_at.locked();
        if c.is_none() {
            *c = Some(at);
            drop(c);
            self.wake();
        }
    }

    /// Remember the connection's waker, to wake it when something changes.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut w = self.waker.locked();
        if !w.as_ref().is_some_and(|old| old.will_wake(waker)) {
            *w = Some(waker.clone());
        }
    }

    fn wake(&self) {
        if let Some(w) = self.waker.locked().take() {
            w.wake();
        }
    }
}

/// One open request of a connection.
#[derive(Debug)]
pub(crate) struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        // Idle from now if this was the last one.
        let mut since = self.0.idle_since.locked();
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            *since = Instant::now();
        }
    }
}

/// A service wrapped so that each of its requests keeps the connection
/// busy until its response has ended (see [`ConnState`]).
#[derive(Clone)]
pub(crate) struct Tracked<S>(pub(crate) S);

impl<S: NamedService> NamedService for Tracked<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for Tracked<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Body<Data = Bytes> + Unpin + Send + 'static,
    R::Error: Into<StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let busy = req.extensions().get::<crate::PeerInfo>().map(|p| p.conn.begin());
        // The clone that was made ready serves this call.
        let clone = self.0.clone();
        let mut inner = std::mem::replace(&mut self.0, clone);
        Box::pin(async move {
            let resp = inner.call(req).await?;
            Ok(resp.map(|body| {
                tonic::body::Body::new(BusyBody {
                    inner: body,
                    _busy: busy,
                })
            }))
        })
    }
}

/// A response body that keeps its connection busy until it is dropped.
struct BusyBody<R> {
    inner: R,
    _busy: Option<Busy>,
}

impl<R: Body + Unpin> Body for BusyBody<R> {
    type Data = R::Data;
    type Error = R::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
