//! What one connection may have the hub hold for it at once, so that the
//! hub's memory is bounded whatever its clients do.
//!
//! Two limits per authenticated connection:
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

/// The request bytes one connection has in the hub's hands.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    /// (bytes, requests) held now.
    held: Mutex<(u64, u32)>,
    peak_bytes: AtomicU64,
    peak_requests: AtomicU64,
    pushed_back: AtomicU64,
    /// The hub's count of pushbacks, over every connection.
    hub_pushed_back: Arc<AtomicU64>,
}

impl Budget {
    /// A budget of `limit` bytes whose pushbacks also count in
    /// `hub_pushed_back`.
    pub(crate) fn new(limit: u64, hub_pushed_back: Arc<AtomicU64>) -> Budget {
        Budget {
            limit,
            held: Mutex::new((0, 0)),
            peak_bytes: AtomicU64::new(0),
            peak_requests: AtomicU64::new(0),
            pushed_back: AtomicU64::new(0),
            hub_pushed_back,
        }
    }

    /// Hold `bytes` for one request until the guard drops; or, when the
    /// connection already holds something and `bytes` more would pass the
    /// limit, the bytes held now (counted as a pushback).
    pub(crate) fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reserved, u64> {
        let mut held = self.held.locked();
        if held.0 > 0 && held.0.saturating_add(bytes) > self.limit {
            let now = held.0;
            drop(held);
            self.pushed_back.fetch_add(1, Ordering::Relaxed);
            self.hub_pushed_back.fetch_add(1, Ordering::Relaxed);
            return Err(now);
        }
        held.0 += bytes;
        held.1 += 1;
        self.peak_bytes.fetch_max(held.0, Ordering::Relaxed);
        self.peak_requests.fetch_max(u64::from(held.1), Ordering::Relaxed);
        Ok(Reserved {
            budget: self.clone(),
            bytes,
        })
    }

    /// The limit, bytes.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
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
}

impl Drop for Reserved {
    fn drop(&mut self) {
        let mut held = self.budget.held.locked();
        held.0 -= self.bytes;
        held.1 -= 1;
    }
}

/// The answer to a request beyond the budget: RESOURCE_EXHAUSTED, what is
/// held and the limit, and when to try again.
pub(crate) fn pushback(held: u64, limit: u64) -> tonic::Status {
    let mut s = tonic::Status::resource_exhausted(format!(
        "this connection has {held} bytes of requests in the hub's hands and may have {limit} \
         (limits.max_request_bytes_per_connection): retry after {PUSHBACK_MS} ms, or send fewer at once"
    ));
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
                Err(held) => {
                    tracing::debug!(held, limit = budget.limit(), path = %parts.uri.path(), "pushed back");
                    return Ok(pushback(held, budget.limit()).into_http());
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
        let hub = Arc::new(AtomicU64::new(0));
        let b = Arc::new(Budget::new(100, hub.clone()));
        let big = b.reserve(150).expect("alone, even over the limit");
        assert_eq!(b.reserve(1).unwrap_err(), 150);
        drop(big);
        let a = b.reserve(60).unwrap();
        let c = b.reserve(40).unwrap();
        assert_eq!(b.reserve(1).unwrap_err(), 100);
        assert_eq!((b.held_bytes(), b.peak_bytes(), b.peak_requests()), (100, 150, 2));
        drop((a, c));
        assert_eq!(b.held_bytes(), 0);
        assert_eq!((b.pushed_back(), hub.load(Ordering::Relaxed)), (2, 2));
        let s = pushback(100, 100);
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert_eq!(s.metadata().get("grpc-retry-pushback-ms").unwrap(), "10");
        assert!(
            s.message().contains("limits.max_request_bytes_per_connection"),
            "{}",
            s.message()
        );
    }
}
