//! Forwarding to peer hubs (federation): one task per `[[peers]]` entry
//! takes the items of that peer's outbox in the store — documents for
//! recipients it serves, and this hub's receipts to report back to it — and
//! hands them over with `Peer.Forward` and `Peer.Report` on a mutual-TLS
//! connection (this hub's certificate, the peer's CA).
//!
//! An item leaves the outbox only once the peer has answered (a crash in
//! between forwards it again, and the peer answers a duplicate). A refusal
//! (the peer says the item is wrong: a bad signature, an unroutable
//! recipient, a loop) counts an attempt; after `delivery.max_attempts` the
//! item is a dead letter of the peer's outbox, its recipients
//! DEAD_LETTERED, and an operator can look at it. A peer that cannot be
//! reached counts nothing: its outbox grows until it is back, and items
//! then go in priority, then arrival, order. An operator may pause a link
//! ([`Forwarders::set_paused`]): its task then takes nothing from the
//! outbox, which grows as for a peer that is down, until it is resumed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use truc_core::routing::{HubId, Route};
use truc_core::sync::Locked;
use truc_core::AgencyCode;
use truc_proto::v1::peer_client::PeerClient;
use truc_proto::v1::BusinessType;
use truc_proto::v1::{ForwardRequest, ProvenReceipt, ReportRequest};
use truc_store::{ExpireOutcome, PeerItem, PeerItemKind};

use crate::config::PeerConfig;
use crate::Shared;

/// Items taken from a peer's outbox at a time, and handed over at once…
const BATCH: usize = 64;
/// …holding no more payload bytes than this (one larger item goes alone).
const BATCH_BYTES: u64 = 16 * 1024 * 1024;
/// Longest wait before looking at a peer's outbox again without a commit.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest wait between two tries to reach a peer that is down: a peer
/// back up is used again within seconds (a try costs a TCP connect).
const MAX_RETRY: Duration = Duration::from_secs(5);

/// The recipients of `to` that the routing table sends to a peer, with
/// that peer (none when no peer is configured).
pub(crate) fn remote_recipients(shared: &Shared, to: &[AgencyCode]) -> Vec<(AgencyCode, HubId)> {
    let f = &shared.federation;
    if f.peers.is_empty() {
        return Vec::new();
    }
    to.iter()
        .filter_map(|code| match f.table.route(code, shared.store.agency(code).is_some()) {
            Route::Peer(p) => Some((code.clone(), p)),
            _ => None,
        })
        .collect()
}

/// Refuse a document for a recipient of another hub that the federated
/// directory says is suspended, or retired without a successor: its hub
/// would refuse it, after the sender was told it was accepted. A code the
/// directory does not know yet is forwarded (its hub decides).
pub(crate) async fn refuse_inactive(shared: &Shared, remote: &[(AgencyCode, HubId)]) -> Result<(), tonic::Status> {
    if remote.is_empty() {
        return Ok(());
    }
    for (code, _) in remote {
        let known = shared
            .store
            .remote_agency(code.clone())
            .await
            .map_err(crate::status::from_store)?;
        let Some(a) = known else {
            continue;
        };
        let inactive = match a.state {
            truc_proto::v1::AgencyState::Suspended => true,
            truc_proto::v1::AgencyState::Retired => a.successor.is_empty(),
            _ => false,
        };
        if inactive {
            return Err(tonic::Status::failed_precondition(format!(
                "recipient {code} (an agency of hub {}) is {}: nothing was sent; ask its hub, or send without it",
                a.hub, a.state
            )));
        }
    }
    Ok(())
}

/// The recipients of `to` that are not forwarded to a peer.
pub(crate) fn local_recipients(shared: &Shared, to: &[AgencyCode]) -> Vec<AgencyCode> {
    let remote = remote_recipients(shared, to);
    to.iter()
        .filter(|c| !remote.iter().any(|(r, _)| r == *c))
        .cloned()
        .collect()
}

/// What an operator sees of one peer link.
#[derive(Debug, Clone, Default)]
pub(crate) struct LinkState {
    /// Connected now (the last call reached the peer).
    pub(crate) connected: bool,
    /// Since when it is connected or not, Unix ms.
    pub(crate) since_unix_ms: i64,
    /// The last error, if the last call failed.
    pub(crate) last_error: String,
    /// Items handed over since start.
    pub(crate) forwarded: u64,
    /// Items the peer refused since start.
    pub(crate) refused: u64,
    /// Paused by an operator (filled in by [`Forwarders::states`]).
    pub(crate) paused: bool,
}

/// The forwarding tasks' wake-ups and states, by peer id.
#[derive(Default)]
pub(crate) struct Forwarders {
    links: HashMap<String, Arc<Link>>,
}

struct Link {
    wake: Notify,
    state: Mutex<LinkState>,
    /// True while an operator has the link paused.
    paused: watch::Sender<bool>,
}

impl Forwarders {
    pub(crate) fn new(peers: &[PeerConfig]) -> Forwarders {
        let links = peers
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    Arc::new(Link {
                        wake: Notify::new(),
                        state: Mutex::new(LinkState::default()),
                        paused: watch::Sender::new(false),
                    }),
                )
            })
            .collect();
        Forwarders { links }
    }

    /// An outbox changed: wake its peer's task if `outbox` is a peer's
    /// (`~<id>`). Returns whether it was.
    pub(crate) fn wake(&self, outbox: &str) -> bool {
        let Some(id) = outbox.strip_prefix('~') else {
            return false;
        };
        if let Some(link) = self.links.get(id) {
            link.wake.notify_one();
        }
        true
    }

    /// Each peer's link as it is now.
    pub(crate) fn states(&self) -> HashMap<String, LinkState> {
        self.links
            .iter()
            .map(|(id, l)| {
                let mut s = l.state.locked().clone();
                s.paused = *l.paused.borrow();
                (id.clone(), s)
            })
            .collect()
    }

    /// Pause or resume forwarding to `peer`; returns whether it was paused
    /// before (`None`: no such peer). Its task finishes the item it is
    /// handing over, if any, and takes no other until resumed.
    pub(crate) fn set_paused(&self, peer: &str, paused: bool) -> Option<bool> {
        let link = self.links.get(peer)?;
        Some(link.paused.send_replace(paused))
    }
}

impl Link {
    fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Wait while the link is paused; false if the hub stops meanwhile.
    async fn unpaused(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let mut paused = self.paused.subscribe();
        while *paused.borrow_and_update() {
            tokio::select! {
                _ = paused.changed() => {}
                _ = stop.changed() => return false,
            }
        }
        true
    }
}

/// Start one forwarding task per peer.
pub(crate) fn spawn_all(shared: &Arc<Shared>, tasks: &mut crate::background::Tasks, stop: &watch::Receiver<bool>) {
    for peer in &shared.config.peers {
        let Some(link) = shared.forwarders.links.get(&peer.id).cloned() else {
            continue;
        };
        let Ok(id) = peer.hub_id() else {
            continue;
        };
        tasks.spawn("forward", run(shared.clone(), id, peer.clone(), link, stop.clone()));
    }
}

/// What one attempt to hand an item over came to.
enum Handed {
    /// The peer took it (with its receipt, for a document).
    Taken(Option<ProvenReceipt>),
    /// The peer refused it: an attempt.
    Refused(String),
    /// This hub cannot send it at all (too large to go inline, a loop
    /// before it leaves): a dead letter at once.
    Impossible(String),
    /// The peer could not be reached or could not answer now.
    Unreachable(String),
}

async fn run(shared: Arc<Shared>, peer: HubId, config: PeerConfig, link: Arc<Link>, mut stop: watch::Receiver<bool>) {
    let mut client: Option<PeerClient<Channel>> = None;
    let mut backoff = Duration::from_millis(200);
    // Items the peer refused, and when to try each again (a lease's time
    // later, as a copy whose lease ran out).
    let mut refused: HashMap<u64, Instant> = HashMap::new();
    let retry_after = Duration::from_millis(shared.config.delivery.lease_ms);
    loop {
        if *stop.borrow() || !link.unpaused(&mut stop).await {
            return;
        }
        let now = Instant::now();
        refused.retain(|_, at| *at > now);
        let skip: HashSet<u64> = refused.keys().copied().collect();
        let items = match shared.store.peer_items(peer.clone(), skip, BATCH, BATCH_BYTES).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(%peer, error = %truc_core::error_chain(&e), "reading the peer's outbox");
                Vec::new()
            }
        };
        if items.is_empty() {
            // Until a commit wakes it, a refused item is due again, or now
            // and then anyway (a store error above).
            let due = refused
                .values()
                .min()
                .map_or(MAX_BACKOFF, |at| at.saturating_duration_since(now));
            tokio::select! {
                _ = link.wake.notified() => {}
                _ = stop.changed() => return,
                _ = tokio::time::sleep(due.min(MAX_BACKOFF)) => {}
            }
            continue;
        }
        let mut failed = None;
        let c = match &client {
            Some(c) => c.clone(),
            None => match connect(&shared, &config).await {
                Ok(c) => {
                    client = Some(c.clone());
                    c
                }
                Err(why) => {
                    items_failed(&link, &peer, why, backoff);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(MAX_RETRY);
                    continue;
                }
            },
        };
        if link.is_paused() {
            continue;
        }
        // Items go over at once (HTTP/2 streams on one connection), except
        // that nothing overtakes what it depends on: a correction waits for
        // what is before it and goes alone, and an item about a document
        // waits for the item before it about the same document (a delivery
        // report before a status). The answers are taken in the outbox's
        // order, and the items the peer took are recorded in one commit, in
        // that order.
        let ids: Vec<u64> = items.iter().map(|i| i.delivery_id).collect();
        let mut answers: Vec<Option<Handed>> = (0..ids.len()).map(|_| None).collect();
        let mut inflight = tokio::task::JoinSet::new();
        let mut wave: HashSet<u64> = HashSet::new();
        for (pos, item) in items.into_iter().enumerate() {
            let alone = matches!(
                &item.kind,
                PeerItemKind::Document { business_type, .. } if *business_type != BusinessType::New
            );
            if alone || !wave.insert(item.hub_document_id) {
                drain(&mut inflight, &mut answers).await;
                wave.clear();
                wave.insert(item.hub_document_id);
            }
            let (shared, peer, c) = (shared.clone(), peer.clone(), c.clone());
            inflight.spawn(async move { (pos, hand_over(&shared, &peer, c, item).await) });
            if alone {
                drain(&mut inflight, &mut answers).await;
                wave.clear();
            }
        }
        drain(&mut inflight, &mut answers).await;
        let mut taken = Vec::new();
        for (id, handed) in ids.into_iter().zip(answers) {
            let (max, why) = match handed {
                Some(Handed::Taken(next)) => {
                    taken.push((id, next));
                    continue;
                }
                Some(Handed::Unreachable(why)) => {
                    // The rest waits: items after it that the peer did take
                    // are handed over again, and answered as duplicates.
                    client = None;
                    failed = Some(why);
                    break;
                }
                None => {
                    failed = Some("a forwarding task failed".into());
                    break;
                }
                Some(Handed::Refused(why)) => (shared.config.delivery.max_attempts, why),
                Some(Handed::Impossible(why)) => (1, why),
            };
            tracing::warn!(%peer, delivery_id = id, %why, "forwarded item refused");
            {
                let mut s = link.state.locked();
                s.refused += 1;
                s.last_error = format!("refused: {why}");
            }
            match shared.store.forward_refused(peer.clone(), id, max, why).await {
                Ok(ExpireOutcome::Requeued { .. }) => {
                    refused.insert(id, Instant::now() + retry_after);
                }
                Ok(_) => {}
                Err(e) => {
                    failed = Some(format!("recording the refusal: {e}"));
                    break;
                }
            }
        }
        if !taken.is_empty() {
            let n = taken.len() as u64;
            match shared.store.forwarded(peer.clone(), taken).await {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    let mut s = link.state.locked();
                    if !s.connected {
                        s.connected = true;
                        s.since_unix_ms = truc_core::now_unix_ms();
                        tracing::info!(%peer, "peer reached");
                    }
                    if failed.is_none() {
                        s.last_error.clear();
                    }
                    s.forwarded += n;
                }
                Err(e) => failed = Some(format!("recording the forward: {e}")),
            }
        }
        if let Some(why) = failed {
            items_failed(&link, &peer, why, backoff);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_RETRY);
        }
    }
}

/// Wait for every hand-over in flight and file its answer by position.
async fn drain(inflight: &mut tokio::task::JoinSet<(usize, Handed)>, answers: &mut [Option<Handed>]) {
    while let Some(done) = inflight.join_next().await {
        if let Ok((pos, handed)) = done {
            answers[pos] = Some(handed);
        }
    }
}

/// The link is down (or its answers could not be recorded): say so, once
/// per distinct reason.
fn items_failed(link: &Link, peer: &HubId, why: String, backoff: Duration) {
    let mut s = link.state.locked();
    if s.connected || s.since_unix_ms == 0 {
        s.connected = false;
        s.since_unix_ms = truc_core::now_unix_ms();
    }
    if s.last_error != why {
        tracing::warn!(%peer, error = %why, retry_in_ms = backoff.as_millis() as u64, "peer unreachable");
    }
    s.last_error = why;
}

/// A mutual-TLS channel to `peer`: this hub's certificate; the peer's,
/// checked against its CA and its name (`peer_tls.rs`).
pub(crate) async fn connect(shared: &Shared, peer: &PeerConfig) -> Result<PeerClient<Channel>, String> {
    let url = peer.url()?;
    let id = peer.hub_id().map_err(|e| e.to_string())?;
    let files = shared.trust.files();
    let connector = crate::peer_tls::PeerConnector::new(&id, &peer.ca, &files.hub_cert, &files.hub_key)?;
    // tonic speaks HTTP/2 over the connector's TLS: the URI it sees is plain.
    let plain = url.replacen("https://", "http://", 1);
    let channel = Endpoint::from_shared(plain)
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("connecting to {url}: {}", truc_core::error_chain(&e)))?;
    let limit = (shared.config.limits.max_inline_payload as usize) + crate::router::MESSAGE_OVERHEAD;
    Ok(PeerClient::new(channel)
        .max_encoding_message_size(limit)
        .max_decoding_message_size(64 * 1024 * 1024))
}

/// Whether a peer's answer says the item itself is wrong (an attempt),
/// rather than that the peer cannot take it now.
fn refusal(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::AlreadyExists
            | Code::OutOfRange
            | Code::Unimplemented
    )
}

async fn hand_over(shared: &Shared, peer: &HubId, mut client: PeerClient<Channel>, item: PeerItem) -> Handed {
    let answer = match item.kind {
        PeerItemKind::Report(receipt) => client
            .report(ReportRequest { receipt: Some(receipt) })
            .await
            .map(|_| None),
        PeerItemKind::Document {
            mut document,
            payload_external,
            recipients,
            mut trace,
            header_sha256,
            ..
        } => {
            let f = &shared.federation;
            let Some(own) = f.own.clone() else {
                return Handed::Impossible("this hub's certificate names no urn:truc:hub:<id>".into());
            };
            let before: Vec<HubId> = trace.iter().filter_map(|h| HubId::parse(&h.hub_id).ok()).collect();
            if let Err(e) = truc_core::routing::check_forward(&before, &own, peer, f.max_hops) {
                return Handed::Impossible(e.to_string());
            }
            if payload_external {
                // A file read, off the reactor.
                let files = shared.payloads.clone();
                let limit = shared.config.limits.max_inline_payload;
                let header = document.header.clone();
                match tokio::task::spawn_blocking(move || inline_payload(&files, limit, &header)).await {
                    Ok(Ok(bytes)) => document.payload = bytes,
                    Ok(Err(why)) => return Handed::Impossible(why),
                    Err(e) => return Handed::Unreachable(format!("reading the payload: {e}")),
                }
            }
            match f.sign_hop(item.accepted_at_unix_ms, &header_sha256, trace.last()) {
                Ok(hop) => trace.push(hop),
                Err(why) => return Handed::Impossible(why),
            }
            let mut req = tonic::Request::new(ForwardRequest {
                document: Some(document),
                recipients: recipients.iter().map(ToString::to_string).collect(),
                trace,
            });
            // W3C trace context: one trace id per document at every hub.
            let span: [u8; 8] = rand_span();
            let tp = truc_core::routing::traceparent(&header_sha256, span);
            if let Ok(v) = tp.parse() {
                req.metadata_mut().insert("traceparent", v);
            }
            tracing::info!(%peer, trace_id = %&tp[3..35], "forwarding");
            client.forward(req).await.map(|r| r.into_inner().receipt)
        }
    };
    match answer {
        Ok(Some(next)) => match shared.federation.check_peer_receipt(peer, &next) {
            // Taken, but what it signed does not check out: forwarded
            // again (answered as a duplicate), and said why.
            Err(why) => Handed::Unreachable(why),
            Ok(()) => Handed::Taken(Some(next)),
        },
        Ok(None) => Handed::Taken(None),
        Err(st) if refusal(st.code()) => Handed::Refused(format!("{:?}: {}", st.code(), st.message())),
        Err(st) => Handed::Unreachable(format!("{:?}: {}", st.code(), st.message())),
    }
}

/// The payload of a document whose payload is in the payload files, read
/// whole: a forward carries it inline, so it must fit the inline limit.
fn inline_payload(files: &truc_store::PayloadFiles, limit: u64, header_bytes: &[u8]) -> Result<Vec<u8>, String> {
    let header = truc_core::document::check_header(header_bytes).map_err(|e| e.to_string())?;
    let size = header.header.payload_size;
    if size > limit {
        return Err(format!(
            "the payload is {size} bytes; documents are forwarded with their payload inline, at most \
             limits.max_inline_payload = {limit} bytes (chunked forwarding between hubs is not built yet)"
        ));
    }
    files
        .read_at(&header.header.payload_sha256, 0, size as usize)
        .map_err(|e| format!("reading the payload: {e}"))
}

/// A fresh span id (8 random bytes, not all zero).
fn rand_span() -> [u8; 8] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    if b == [0; 8] {
        b[7] = 1;
    }
    b
}
