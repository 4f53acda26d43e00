//! Riding out a hub restart: exponential backoff with jitter, a notice per
//! outage, and a Receive stream that resumes without losing an
//! acknowledgement.
//!
//! A hub that restarts (a deploy, a SIGTERM) ends every Receive stream with
//! `UNAVAILABLE: the hub is shutting down`, and refuses connections until it
//! listens again. [`Receiver`] opens a new stream then, after
//! [`Reconnect::delay`]s that double from 200 ms to 10 s with ±25 % jitter
//! (so that a thousand agencies do not come back in the same millisecond),
//! and tells its caller once when the hub went away and once when it is
//! back ([`Notice`]).
//!
//! Acknowledgements: an ack the hub could not take (the hub was going down)
//! is kept and sent again first thing after reconnecting. A copy that was in
//! flight when the stream broke and was not acknowledged comes again (the
//! hub re-delivers unacknowledged copies after their lease, or at once after
//! a restart) under the same delivery id; [`Receiver::next`] does not hand
//! out again a copy whose ack it already holds or sent: it acks it again
//! (the hub counts an ack of an acknowledged copy as nothing new: one
//! receipt, one delivery) and goes on. The caller's own records cover the
//! rest (`truc inbox` does not write a file it already wrote).
//!
//! Back-pressure: a hub bounds what one connection may have in its hands
//! (streams, request bytes); beyond that it pushes a request back without
//! processing it. [`with_pushback`] sends it again after a short backoff;
//! [`Client::send`] and [`Client::ack`] go through it, so a client with a
//! deep window is slowed, not failed. Sends also wait, before going out,
//! for a slot under a limit the client learns from the pushbacks
//! (`admission.rs`), so a deep window waits in the client instead of
//! having the hub refuse most attempts.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tonic::{Code, Status, Streaming};
use truc_proto::v1::Delivery;

use crate::admission::{Admission, Answer};
use crate::{Client, ClientError};

/// Whether and how to reconnect.
#[derive(Debug, Clone)]
pub struct Reconnect {
    /// Reconnect at all (`truc … --no-reconnect`: fail at the first break).
    pub enabled: bool,
    /// First wait.
    pub initial: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            enabled: true,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl Reconnect {
    /// No reconnection: the first transient error is returned.
    pub fn never() -> Self {
        Reconnect {
            enabled: false,
            ..Self::default()
        }
    }

    /// The wait before attempt `attempt` (0-based): `initial · 2^attempt`,
    /// at most `max`, then ±25 % at random.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.initial.saturating_mul(1 << attempt.min(16)).min(self.max);
        let mut b = [0u8; 2];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).ok();
        // 0.75 ..= 1.25
        let factor = 0.75 + f64::from(u16::from_be_bytes(b)) / f64::from(u16::MAX) / 2.0;
        base.mul_f64(factor)
    }
}

/// What a reconnecting caller is told, once per outage each.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// The hub went away (`reason`: what the stream or the call said);
    /// reconnecting.
    Reconnecting {
        /// The error that broke the stream or the call.
        reason: String,
    },
    /// The hub answers again, `after` the break.
    Reconnected {
        /// From the break to the first answer.
        after: Duration,
    },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Reconnecting { reason } => write!(f, "hub restarting ({reason}), reconnecting…"),
            Notice::Reconnected { after } => write!(f, "reconnected after {:.1} s", after.as_secs_f64()),
        }
    }
}

/// Whether `s` is the hub going away or not being there (worth waiting
/// for), as opposed to an answer (refused, not found, …).
pub fn is_transient(s: &Status) -> bool {
    match s.code() {
        Code::Unavailable => true,
        // A stream cut mid-way (h2 reset, connection closed) surfaces as
        // UNKNOWN or INTERNAL with a transport error as its message.
        Code::Unknown | Code::Internal | Code::Cancelled => {
            let m = s.message().to_ascii_lowercase();
            [
                "transport",
                "connection",
                "broken pipe",
                "h2 protocol",
                "stream no longer needed",
                "reset",
            ]
            .iter()
            .any(|w| m.contains(w))
        }
        _ => false,
    }
}

/// Longest a request keeps being sent again while the hub pushes it back
/// ([`with_pushback`]); after that its last answer is returned.
pub const PUSHBACK_PATIENCE: Duration = Duration::from_secs(120);

/// The backoff between pushbacks of one request: from 10 ms, doubling to
/// 1 s, ±25 % ([`Reconnect::delay`]).
const PUSHBACK_BACKOFF: Reconnect = Reconnect {
    enabled: true,
    initial: Duration::from_millis(10),
    max: Duration::from_secs(1),
};

/// Whether `s` is the hub's back-pressure — it did not take the request
/// for now, and did nothing with it — and how long it asked to wait:
/// RESOURCE_EXHAUSTED with `grpc-retry-pushback-ms` (the connection has
/// `limits.max_request_bytes_per_connection` in the hub's hands already),
/// or a stream refused by HTTP/2 (`REFUSED_STREAM`: the connection's
/// stream limit; no wait asked). Other RESOURCE_EXHAUSTED answers (an
/// outbox quota, the disk reserve, a payload too large) are not.
pub fn pushback(s: &Status) -> Option<Duration> {
    match s.code() {
        Code::ResourceExhausted => s
            .metadata()
            .get("grpc-retry-pushback-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis),
        Code::Unavailable if refused_stream(s) => Some(Duration::ZERO),
        _ => None,
    }
}

/// Whether `s` comes from an HTTP/2 stream the hub reset with
/// `REFUSED_STREAM` (tonic says "h2 protocol error: http2 error"; the
/// reason is in its sources).
fn refused_stream(s: &Status) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = cause {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        cause = e.source();
    }
    false
}

/// Call `f` until the hub takes the request: after each pushback
/// ([`pushback`]) wait the longer of what the hub asked and a backoff (10 ms
/// doubling to 1 s, with jitter), then send it again; for at most
/// [`PUSHBACK_PATIENCE`] in all. Any other answer is returned as it is.
/// Safe for every request, idempotent or not: a pushed-back request was
/// not processed.
pub async fn with_pushback<T, F, Fut>(f: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    admitted(None, f).await
}

/// [`with_pushback`], each attempt waiting first for a slot of `admission`
/// (and telling it how the attempt ended).
pub(crate) async fn admitted<T, F, Fut>(admission: Option<&Admission>, mut f: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let slot = match admission {
            Some(a) => Some(a.slot().await),
            None => None,
        };
        let r = f().await;
        let asked = r.as_ref().err().and_then(pushback);
        if let (Some(a), Some(slot)) = (admission, slot) {
            let answer = match (&r, asked) {
                (Ok(_), _) => Answer::Accepted,
                (Err(_), Some(_)) => Answer::PushedBack,
                (Err(_), None) => Answer::Other,
            };
            a.done(slot, answer);
        }
        match (r, asked) {
            (Err(_), Some(asked)) if started.elapsed() < PUSHBACK_PATIENCE => {
                tokio::time::sleep(asked.max(PUSHBACK_BACKOFF.delay(attempt))).await;
                attempt += 1;
            }
            (r, _) => return r,
        }
    }
}

/// Call `f` until it answers or fails with something else than the hub
/// being away; notices through `notify`. With reconnection off, the first
/// error is returned.
pub async fn retry<T, F, Fut>(
    policy: &Reconnect,
    notify: &(dyn Fn(Notice) + Send + Sync),
    mut f: F,
) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut broke: Option<Instant> = None;
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => {
                if let Some(t) = broke {
                    notify(Notice::Reconnected { after: t.elapsed() });
                }
                return Ok(v);
            }
            Err(e) if policy.enabled && e.is_transient() => {
                if broke.is_none() {
                    broke = Some(Instant::now());
                    notify(Notice::Reconnecting { reason: reason(&e) });
                }
                tokio::time::sleep(policy.delay(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What a break said, for [`Notice::Reconnecting`]: the hub's message.
fn reason(e: &ClientError) -> String {
    match e.status() {
        Some(s) => s.message().to_string(),
        None => e.to_string(),
    }
}

/// A Receive stream that reopens itself across hub restarts.
pub struct Receiver {
    client: Client,
    max_in_flight: u32,
    follow: bool,
    policy: Reconnect,
    notify: Box<dyn Fn(Notice) + Send + Sync>,
    stream: Option<Streaming<Delivery>>,
    /// Acks the hub could not take yet: sent first after reconnecting.
    pending: Vec<u64>,
    /// Delivery ids acknowledged (or pending) by this receiver: a copy
    /// coming again under one of them is acked again, not handed out.
    acked: HashSet<u64>,
    /// Break time of the outage in progress.
    broke: Option<Instant>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("follow", &self.follow)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver for `client` (the stream is opened by the first `next`).
    pub fn new(
        client: Client,
        max_in_flight: u32,
        follow: bool,
        policy: Reconnect,
        notify: impl Fn(Notice) + Send + Sync + 'static,
    ) -> Receiver {
        Receiver {
            client,
            max_in_flight,
            follow,
            policy,
            notify: Box::new(notify),
            stream: None,
            pending: Vec::new(),
            acked: HashSet::new(),
            broke: None,
        }
    }

    /// The next delivery; `None` when the stream ends (without `follow`,
    /// when nothing more is waiting). Reconnects on a transient break.
    pub async fn next(&mut self) -> Result<Option<Delivery>, ClientError> {
        let mut attempt = 0;
        loop {
            if self.stream.is_none() {
                match self.open().await {
                    Ok(()) => attempt = 0,
                    Err(e) => {
                        self.on_break(e)?;
                        tokio::time::sleep(self.policy.delay(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                }
            }
            let stream = self.stream.as_mut().expect("opened above");
            match stream.message().await {
                Ok(Some(d)) => {
                    if self.acked.contains(&d.delivery_id) {
                        // Already ours: its ack goes again (a no-op at the
                        // hub if the first one landed).
                        self.ack(d.delivery_id).await?;
                        continue;
                    }
                    return Ok(Some(d));
                }
                Ok(None) => return Ok(None),
                Err(s) => {
                    self.stream = None;
                    self.on_break(ClientError::from(s))?;
                    tokio::time::sleep(self.policy.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Acknowledge `id`. If the hub is away, the ack is kept and sent
    /// after reconnecting (by `next`), and this returns Ok: the caller has
    /// done its part.
    pub async fn ack(&mut self, id: u64) -> Result<(), ClientError> {
        self.acked.insert(id);
        match self.client.ack(vec![id]).await {
            Ok(_) => Ok(()),
            Err(e) if self.policy.enabled && e.is_transient() => {
                self.pending.push(id);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Acks kept for after the reconnection.
    pub fn pending_acks(&self) -> &[u64] {
        &self.pending
    }

    /// The client this receiver uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Send the kept acks, then open the stream.
    async fn open(&mut self) -> Result<(), ClientError> {
        if !self.pending.is_empty() {
            self.client.ack(self.pending.clone()).await?;
            self.pending.clear();
        }
        let stream = self.client.receive(self.max_in_flight, self.follow).await?;
        self.stream = Some(stream);
        if let Some(t) = self.broke.take() {
            (self.notify)(Notice::Reconnected { after: t.elapsed() });
        }
        Ok(())
    }

    /// A break: the error itself unless it is transient and reconnecting
    /// is on; the first of an outage is noticed.
    fn on_break(&mut self, e: ClientError) -> Result<(), ClientError> {
        if !self.policy.enabled || !e.is_transient() {
            return Err(e);
        }
        if self.broke.is_none() {
            self.broke = Some(Instant::now());
            (self.notify)(Notice::Reconnecting { reason: reason(&e) });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        let p = Reconnect::default();
        for (attempt, base) in [(0, 200), (1, 400), (2, 800), (5, 6400), (6, 10_000), (30, 10_000)] {
            let d = p.delay(attempt).as_millis() as u64;
            assert!(d >= base * 3 / 4 && d <= base * 5 / 4, "attempt {attempt}: {d} ms");
        }
        let spread: HashSet<_> = (0..20).map(|_| p.delay(3)).collect();
        assert!(spread.len() > 1, "no jitter");
    }

    #[test]
    fn transient_errors_are_the_hub_away_not_its_answers() {
        assert!(is_transient(&Status::unavailable("the hub is shutting down")));
        assert!(is_transient(&Status::unknown("transport error")));
        assert!(!is_transient(&Status::permission_denied("suspended")));
        assert!(!is_transient(&Status::unknown("something else")));
        assert!(!is_transient(&Status::not_found("no such agency")));
    }

    #[test]
    fn pushback_is_the_hubs_back_pressure_only() {
        let mut s = Status::resource_exhausted("this connection has 70000 bytes of requests in the hub's hands");
        s.metadata_mut()
            .insert("grpc-retry-pushback-ms", tonic::metadata::MetadataValue::from(25u64));
        assert_eq!(pushback(&s), Some(Duration::from_millis(25)));
        // A quota or the disk reserve: an answer, not back-pressure.
        assert_eq!(pushback(&Status::resource_exhausted("outbox quota")), None);
        // As tonic makes it of a stream the hub refused.
        let refused = Status::from_error(Box::new(h2::Error::from(h2::Reason::REFUSED_STREAM)));
        assert_eq!(refused.code(), Code::Unavailable);
        assert_eq!(pushback(&refused), Some(Duration::ZERO));
        let other = Status::from_error(Box::new(h2::Error::from(h2::Reason::INTERNAL_ERROR)));
        assert_eq!(pushback(&other), None);
        assert_eq!(pushback(&Status::unavailable("refused stream, in words only")), None);
        assert_eq!(pushback(&Status::unavailable("the hub is shutting down")), None);
    }

    #[tokio::test]
    async fn pushed_back_requests_are_sent_again_until_taken() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let r = with_pushback(|| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                match n {
                    0 => Err(Status::from_error(Box::new(h2::Error::from(
                        h2::Reason::REFUSED_STREAM,
                    )))),
                    1 | 2 => {
                        let mut s = Status::resource_exhausted("full");
                        s.metadata_mut()
                            .insert("grpc-retry-pushback-ms", tonic::metadata::MetadataValue::from(10u64));
                        Err(s)
                    }
                    _ => Ok(n),
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
        // Other answers come back at once.
        let calls = std::sync::atomic::AtomicU32::new(0);
        let r: Result<(), Status> = with_pushback(|| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Err(Status::resource_exhausted("outbox quota")) }
        })
        .await;
        assert_eq!(r.unwrap_err().message(), "outbox quota");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn notices_read_as_one_line() {
        let n = Notice::Reconnected {
            after: Duration::from_millis(2100),
        };
        assert_eq!(n.to_string(), "reconnected after 2.1 s");
    }
}
