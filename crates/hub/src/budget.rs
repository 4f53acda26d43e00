//! What one connection, and all of them together, may have the hub hold at
//! once, so that the hub's memory is bounded whatever its clients do.
//!
//! Two limits per authenticated connection, and one over every connection:
//!
//! - **streams** (`limits.max_streams_per_connection`): HTTP/2's own
//!   `SETTINGS_MAX_CONCURRENT_STREAMS`, set in `router.rs`. A client keeps
//!   its further requests until a stream ends; h2 refuses a stream opened
//!   beyond it (`REFUSED_STREAM`).
//! - **request bytes** (`limits.max_request_bytes_per_connection`), here:
//!   each request counts the size of its first gRPC message (a Send: the
//!   whole signed document), read from the message's 5-byte length prefix
//!   as soon as it arrives, until the request is answered. One that would
//!   take the connection past the limit is answered at once
//!   RESOURCE_EXHAUSTED with `grpc-retry-pushback-ms`, its body unread;
//!   the SDK waits and sends it again (`truc_client::reconnect`). A
//!   connection that holds nothing is always let in, so a single message
//!   larger than the limit (up to the message size limit) goes through
//!   alone.
//! - **request memory, hub-wide** (`limits.max_request_memory`): the same
//!   count over every connection, each request weighing its first message
//!   plus [`REQUEST_OVERHEAD`] (its HTTP/2 stream, buffers and task: a held
//!   4 KiB Send cost the hub about 45 KiB). Per-connection limits alone
//!   let memory grow with the number of clients (100 agencies × 128 streams:
//!   12,800 Sends held); this one does not. A request beyond it is pushed
//!   back the same way, unless its connection holds nothing (so every
//!   connection keeps moving: the bound is the limit plus one request per
//!   connection, and the door caps connections).
//!
//! What each connection held at most, and how often it was pushed back,
//! is in `Ops.ListConnections`; the hub's total of pushbacks in `/metrics`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};
use tonic::codegen::{http, Bytes, Service};
use tonic::server::NamedService;
use truc_core::sync::Locked;

/// How long the hub asks a pushed-back client to wait, ms (the SDK backs
/// off from there).
pub(crate) const PUSHBACK_MS: u64 = 10;

/// Bytes of a gRPC message's prefix: a compression flag and a big-endian
/// u32 length.
const PREFIX: usize = 5;

/// What a request held weighs in the hub-wide count besides its message:
/// a 4 KiB Send held cost about 45 KiB of resident memory (100 agencies:
/// 375 MiB with 3,200 held, 268 MiB with 800; BENCHMARKS.md, issue 18).
pub(crate) const REQUEST_OVERHEAD: u64 = 32 * 1024;

/// What every connection together has in the hub's hands: the hub-wide
/// half of each connection's [`Budget`].
#[derive(Debug)]
pub(crate) struct HubHeld {
    limit: u64,
    /// Request memory held now, over every connection.
    held: Mutex<u64>,
    peak: AtomicU64,
    /// Pushbacks over every connection (either limit).
    pushed_back: AtomicU64,
}

impl HubHeld {
    /// A hub-wide count of at most `limit` bytes of request memory.
    pub(crate) fn new(limit: u64) -> HubHeld {
        HubHeld {
            limit,
            held: Mutex::new(0),
            peak: AtomicU64::new(0),
            pushed_back: AtomicU64::new(0),
        }
    }

    /// The limit, bytes.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Request memory held now, over every connection.
    pub(crate) fn held(&self) -> u64 {
        *self.held.locked()
    }

    /// The most request memory held at once.
    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Requests answered with a pushback, over every connection.
    pub(crate) fn pushed_back(&self) -> u64 {
        self.pushed_back.load(Ordering::Relaxed)
    }
}

/// Which limit pushed a request back, and what was held then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Over {
    /// This connection's bytes (`limits.max_request_bytes_per_connection`).
    Connection { held: u64, limit: u64 },
    /// Every connection's memory (`limits.max_request_memory`).
    Hub { held: u64, limit: u64 },
}

/// The request bytes one connection has in the hub's hands.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    /// (bytes, requests) held now.
    held: Mutex<(u64, u32)>,
    peak_bytes: AtomicU64,
    peak_requests: AtomicU64,
    pushed_back: AtomicU64,
    /// Every connection's requests together.
    hub: Arc<HubHeld>,
}

impl Budget {
    /// A budget of `limit` bytes for one connection, counted also in the
    /// hub-wide `hub`.
    pub(crate) fn new(limit: u64, hub: Arc<HubHeld>) -> Budget {
        Budget {
            limit,
            held: Mutex::new((0, 0)),
            peak_bytes: AtomicU64::new(0),
            peak_requests: AtomicU64::new(0),
            pushed_back: AtomicU64::new(0),
            hub,
        }
    }

    /// Hold `bytes` for one request until the guard drops; or, when the
    /// connection already holds something and `bytes` more would pass its
    /// limit or the hub's, which one (counted as a pushback).
    pub(crate) fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reserved, Over> {
        let weight = bytes.saturating_add(REQUEST_OVERHEAD);
        let mut held = self.held.locked();
        // The hub's count is checked and added under one lock (taken
        // after the connection's, as everywhere), so that two connections
        // cannot both take the last room.
        let mut hub = self.hub.held.locked();
        let over = if held.0 == 0 {
            None
        } else if held.0.saturating_add(bytes) > self.limit {
            Some(Over::Connection {
                held: held.0,
                limit: self.limit,
            })
        } else {
            (hub.saturating_add(weight) > self.hub.limit).then_some(Over::Hub {
                held: *hub,
                limit: self.hub.limit,
            })
        };
        if let Some(over) = over {
            drop((hub, held));
            self.pushed_back.fetch_add(1, Ordering::Relaxed);
            self.hub.pushed_back.fetch_add(1, Ordering::Relaxed);
            return Err(over);
        }
        held.0 += bytes;
        held.1 += 1;
        *hub += weight;
        self.peak_bytes.fetch_max(held.0, Ordering::Relaxed);
        self.peak_requests.fetch_max(u64::from(held.1), Ordering::Relaxed);
        self.hub.peak.fetch_max(*hub, Ordering::Relaxed);
        Ok(Reserved {
            budget: self.clone(),
            bytes,
            weight,
        })
    }

    /// Bytes held now.
    pub(crate) fn held_bytes(&self) -> u64 {
        self.held.locked().0
    }

    /// The most bytes held at once since the connection opened.
    pub(crate) fn peak_bytes(&self) -> u64 {
        self.peak_bytes.load(Ordering::Relaxed)
    }

    /// The most requests held at once (received, not yet answered).
    pub(crate) fn peak_requests(&self) -> u64 {
        self.peak_requests.load(Ordering::Relaxed)
    }

    /// Requests answered with a pushback.
    pub(crate) fn pushed_back(&self) -> u64 {
        self.pushed_back.load(Ordering::Relaxed)
    }
}

/// One request's bytes, given back on drop.
#[derive(Debug)]
pub(crate) struct Reserved {
    budget: Arc<Budget>,
    bytes: u64,
    /// What it counts for hub-wide.
    weight: u64,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        {
            let mut held = self.budget.held.locked();
            held.0 -= self.bytes;
            held.1 -= 1;
        }
        *self.budget.hub.held.locked() -= self.weight;
    }
}

/// The answer to a request beyond a budget: RESOURCE_EXHAUSTED, what is
/// held and the limit, and when to try again.
pub(crate) fn pushback(over: Over) -> tonic::Status {
    let mut s = tonic::Status::resource_exhausted(match over {
        Over::Connection { held, limit } => format!(
            "this connection has {held} bytes of requests in the hub's hands and may have {limit} \
             (limits.max_request_bytes_per_connection): retry after {PUSHBACK_MS} ms, or send fewer at once"
        ),
        Over::Hub { held, limit } => format!(
            "the hub holds {held} bytes of requests from all its clients and may hold {limit} \
             (limits.max_request_memory): retry after {PUSHBACK_MS} ms"
        ),
    });
    s.metadata_mut().insert(
        "grpc-retry-pushback-ms",
        tonic::metadata::MetadataValue::from(PUSHBACK_MS),
    );
    s
}

/// The size a request is counted for: its first message, from the length
/// prefix at the start of `head` (what has arrived of it when shorter).
fn counted(head: &[u8]) -> u64 {
    match head.get(1..PREFIX) {
        Some(len) => u64::from(u32::from_be_bytes([len[0], len[1], len[2], len[3]])) + PREFIX as u64,
        None => head.len() as u64,
    }
}

/// A service whose requests are held to their connection's [`Budget`].
#[derive(Clone)]
pub(crate) struct Budgeted<S>(pub(crate) S);

impl<S: NamedService> NamedService for Budgeted<S> {
    const NAME: &'static str = S::NAME;
}

type Request = http::Request<tonic::body::Body>;
type Response = http::Response<tonic::body::Body>;

impl<S> Service<Request> for Budgeted<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let budget = req
            .extensions()
            .get::<crate::PeerInfo>()
            .map(|p| p.conn.budget().clone());
        // The clone that was made ready serves this call.
        let clone = self.0.clone();
        let mut inner = std::mem::replace(&mut self.0, clone);
        Box::pin(async move {
            let Some(budget) = budget else {
                return inner.call(req).await;
            };
            let (parts, body) = req.into_parts();
            let body = Prefetched::read_prefix(body).await;
            let reserved = match budget.reserve(counted(&body.head)) {
                Ok(r) => r,
                Err(over) => {
                    tracing::debug!(?over, path = %parts.uri.path(), "pushed back");
                    return Ok(pushback(over).into_http());
                }
            };
            let resp = inner
                .call(http::Request::from_parts(parts, tonic::body::Body::new(body)))
                .await;
            drop(reserved);
            resp
        })
    }
}

/// A request body whose first bytes (at least a message prefix, when the
/// body has one) were read ahead: they come out first, then the rest.
struct Prefetched {
    head: Bytes,
    /// What came after the head when the body ended early: trailers, an
    /// error.
    after: Option<Result<Frame<Bytes>, tonic::Status>>,
    rest: Option<tonic::body::Body>,
    head_taken: bool,
}

impl Prefetched {
    /// Read `body` until its first message's prefix is in (or it ends).
    async fn read_prefix(mut body: tonic::body::Body) -> Prefetched {
        let mut head = Vec::new();
        let mut after = None;
        let mut ended = false;
        while head.len() < PREFIX {
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => head.extend_from_slice(&data),
                    Err(frame) => {
                        after = Some(Ok(frame));
                        break;
                    }
                },
                Some(Err(e)) => {
                    after = Some(Err(e));
                    break;
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        Prefetched {
            head: Bytes::from(head),
            rest: (after.is_none() && !ended).then_some(body),
            after,
            head_taken: false,
        }
    }
}

impl Body for Prefetched {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        if !self.head_taken {
            self.head_taken = true;
            if !self.head.is_empty() {
                let head = std::mem::take(&mut self.head);
                return Poll::Ready(Some(Ok(Frame::data(head))));
            }
        }
        if let Some(after) = self.after.take() {
            return Poll::Ready(Some(after));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        (self.head_taken || self.head.is_empty())
            && self.after.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let pending = if self.head_taken { 0 } else { self.head.len() as u64 };
        let mut hint = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |r| r.size_hint());
        hint.set_lower(hint.lower() + pending);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + pending);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_its_first_message() {
        // Flag 0, length 4096, then the message.
        let mut head = vec![0u8, 0, 0, 0x10, 0];
        head.extend_from_slice(&[7; 100]);
        assert_eq!(counted(&head), 4096 + 5);
        assert_eq!(counted(&[0, 0, 0]), 3);
        assert_eq!(counted(&[]), 0);
    }

    #[test]
    fn the_budget_lets_a_lone_request_in_and_pushes_back_beyond_the_limit() {
        let hub = Arc::new(HubHeld::new(u64::MAX));
        let b = Arc::new(Budget::new(100, hub.clone()));
        let big = b.reserve(150).expect("alone, even over the limit");
        let over = Over::Connection { held: 150, limit: 100 };
        assert_eq!(b.reserve(1).unwrap_err(), over);
        drop(big);
        let a = b.reserve(60).unwrap();
        let c = b.reserve(40).unwrap();
        assert_eq!(b.reserve(1).unwrap_err(), Over::Connection { held: 100, limit: 100 });
        assert_eq!((b.held_bytes(), b.peak_bytes(), b.peak_requests()), (100, 150, 2));
        assert_eq!(hub.held(), 100 + 2 * REQUEST_OVERHEAD);
        drop((a, c));
        assert_eq!((b.held_bytes(), hub.held()), (0, 0));
        assert_eq!((b.pushed_back(), hub.pushed_back()), (2, 2));
        let s = pushback(Over::Connection { held: 100, limit: 100 });
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert_eq!(s.metadata().get("grpc-retry-pushback-ms").unwrap(), "10");
        assert!(
            s.message().contains("limits.max_request_bytes_per_connection"),
            "{}",
            s.message()
        );
    }

    #[test]
    fn the_hub_wide_count_pushes_back_a_connection_that_holds_something() {
        // Room for two requests of 1,000 bytes in all.
        let hub = Arc::new(HubHeld::new(2 * (1000 + REQUEST_OVERHEAD)));
        let (x, y) = (
            Arc::new(Budget::new(1 << 20, hub.clone())),
            Arc::new(Budget::new(1 << 20, hub.clone())),
        );
        let x1 = x.reserve(1000).unwrap();
        let x2 = x.reserve(1000).unwrap();
        let full = 2 * (1000 + REQUEST_OVERHEAD);
        // x holds something: pushed back by the hub's count, not its own.
        assert_eq!(
            x.reserve(1000).unwrap_err(),
            Over::Hub {
                held: full,
                limit: full
            }
        );
        // y holds nothing: let in (every connection keeps moving) …
        let y1 = y.reserve(1000).expect("a connection holding nothing is let in");
        assert_eq!(hub.peak(), full + 1000 + REQUEST_OVERHEAD);
        // … and then held to the hub's count like x.
        assert!(matches!(y.reserve(1000), Err(Over::Hub { .. })));
        drop((x1, x2));
        let y2 = y.reserve(1000).expect("room again");
        drop((y1, y2));
        assert_eq!(hub.held(), 0);
        assert_eq!(hub.pushed_back(), 2);
        let s = pushback(Over::Hub {
            held: full,
            limit: full,
        });
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("limits.max_request_memory"), "{}", s.message());
    }
}
