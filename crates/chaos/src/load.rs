//! The load: senders with a window of Sends in flight each, receivers with a
//! following Receive stream each that acknowledge in batches (and now and
//! then leave a first delivery unacknowledged so its lease runs out), all
//! recording into the [`Ledger`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use truc_core::sync::Locked;

use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use truc_client::audit::WatchState;
use truc_client::proto::{Delivery, DocumentHeader, ReceiptEvent, SignedDocument};
use truc_client::Client;
use truc_core::document::SigningTrust;
use truc_core::tree_head::TreeHeadVerifier;
use truc_pki::{DocumentSigner, Identity};

use crate::ledger::{self, Acceptance, Answer, Arrival, DocKey, Ledger, PairKey};
use crate::rng::Rng;

/// Most delivery ids per Ack.
const ACK_BATCH: usize = 256;

/// How the load behaves.
#[derive(Debug, Clone)]
pub(crate) struct LoadOpts {
    /// Sends in flight per sender.
    pub(crate) window: usize,
    /// Receive credit per receiver.
    pub(crate) credit: u32,
    /// Most recipients per document.
    pub(crate) fanout: usize,
    /// Percent of first deliveries left unacknowledged (their lease runs out
    /// and they come back).
    pub(crate) skip_ack_percent: u32,
    /// The hub's delivery lease, ms.
    pub(crate) lease_ms: i64,
    /// Payload sizes, bytes.
    pub(crate) min_payload: usize,
    pub(crate) max_payload: usize,
    /// Send only to receivers on another hub than the sender's (federation:
    /// every document is relayed).
    pub(crate) remote_only: bool,
}

/// One agency the load acts as.
pub(crate) struct Agency {
    pub(crate) code: String,
    pub(crate) dir: std::path::PathBuf,
    pub(crate) identity: Identity,
    pub(crate) signer: Option<DocumentSigner>,
    /// The hub it connects to (an index into the run's hubs; 0 with one).
    pub(crate) hub: usize,
}

/// A signed document waiting to be (re)sent.
struct Pending {
    key: DocKey,
    document_id: String,
    doc: SignedDocument,
}

/// Shared by every task of every cycle.
pub(crate) struct Ctx {
    pub(crate) ledger: Mutex<Ledger>,
    pub(crate) senders: Vec<Agency>,
    pub(crate) receivers: Vec<Agency>,
    pub(crate) receiver_names: Vec<String>,
    /// Per hub: its receipt key.
    pub(crate) verifiers: Vec<TreeHeadVerifier>,
    /// Per hub: its CA, which its agencies' signatures verify against
    /// wherever they are delivered.
    trust: Vec<SigningTrust>,
    pub(crate) opts: LoadOpts,
    /// Per hub: false from just before a kill until the restarted hub
    /// answered: errors of its clients then are expected.
    pub(crate) hub_up: Vec<AtomicBool>,
    /// Per sender: the receivers it may send to.
    targets: Vec<Vec<u32>>,
    /// Per sender: documents whose Send did not return OK, to send again.
    retry: Vec<Mutex<VecDeque<Pending>>>,
    next_seq: Vec<AtomicU64>,
    date: String,
}

impl Ctx {
    /// `verifiers` and `trust` hold one entry per hub, by index.
    pub(crate) fn new(
        senders: Vec<Agency>,
        receivers: Vec<Agency>,
        verifiers: Vec<TreeHeadVerifier>,
        trust: Vec<SigningTrust>,
        opts: LoadOpts,
    ) -> Ctx {
        let receiver_names = receivers.iter().map(|a| a.code.clone()).collect();
        let targets = senders
            .iter()
            .map(|s| {
                (0..receivers.len() as u32)
                    .filter(|r| !opts.remote_only || receivers[*r as usize].hub != s.hub)
                    .collect()
            })
            .collect();
        Ctx {
            ledger: Mutex::default(),
            retry: senders.iter().map(|_| Mutex::default()).collect(),
            next_seq: senders.iter().map(|_| AtomicU64::new(1)).collect(),
            senders,
            receivers,
            receiver_names,
            hub_up: verifiers.iter().map(|_| AtomicBool::new(true)).collect(),
            verifiers,
            trust,
            opts,
            targets,
            date: truc_core::document::date_for_document_id(truc_core::now_unix_ms()),
        }
    }

    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.locked()
    }

    /// The sender's document id of a document.
    pub(crate) fn document_id(&self, key: &DocKey) -> String {
        ledger::document_id(&self.senders[key.0 as usize].code, &self.date, key.1)
    }

    /// (from, document id, recipient) of a pair.
    pub(crate) fn pair_label(&self, pk: &PairKey) -> (String, String, String) {
        (
            self.senders[pk.0 .0 as usize].code.clone(),
            self.document_id(&pk.0),
            self.receivers[pk.1 as usize].code.clone(),
        )
    }

    /// Our document key for a (from, document id), if it is one of ours.
    pub(crate) fn key_of(&self, from: &str, document_id: &str) -> Option<DocKey> {
        let s = self.senders.iter().position(|a| a.code == from)?;
        let seq = ledger::parse_seq(document_id)?;
        (ledger::document_id(from, &self.date, seq) == document_id).then_some((s as u32, seq))
    }

    /// An error of a client of hub `hub`: unexpected unless that hub is
    /// being killed or restarted.
    fn unexpected(&self, hub: usize, what: String) {
        if self.hub_up[hub].load(Ordering::SeqCst) {
            self.ledger().error(what);
        }
    }

    /// Hub `hub` is up (its clients' errors are unexpected) or not.
    pub(crate) fn set_up(&self, hub: usize, up: bool) {
        self.hub_up[hub].store(up, Ordering::SeqCst);
    }

    /// Documents still to be sent again.
    pub(crate) fn pending(&self) -> usize {
        self.retry.iter().map(|q| q.locked().len()).sum()
    }

    fn pop_retry(&self, s: usize) -> Option<Pending> {
        self.retry[s].locked().pop_front()
    }

    fn push_retry(&self, s: usize, p: Pending) {
        self.retry[s].locked().push_back(p);
    }

    /// A new signed document from sender `s`, recorded as attempted.
    fn new_document(&self, s: usize, rng: &mut Rng) -> anyhow::Result<Pending> {
        let seq = self.next_seq[s].fetch_add(1, Ordering::Relaxed);
        let key = (s as u32, seq);
        let agency = &self.senders[s];
        let targets = &self.targets[s];
        let n = targets.len();
        let fanout = 1 + rng.below(self.opts.fanout.min(n) as u64) as usize;
        let mut to: Vec<u32> = Vec::with_capacity(fanout);
        while to.len() < fanout {
            let r = targets[rng.below(n as u64) as usize];
            if !to.contains(&r) {
                to.push(r);
            }
        }
        let document_id = self.document_id(&key);
        let mut header = DocumentHeader {
            to: to.iter().map(|r| self.receivers[*r as usize].code.clone()).collect(),
            document_id: document_id.clone(),
            subject: format!("Kiểm tra SIGKILL {seq}"),
            priority: rng.below(4) as i32,
            ..Default::default()
        };
        let size = rng.range(self.opts.min_payload as u64, self.opts.max_payload as u64) as usize;
        let signer = agency.signer.as_ref().expect("senders have signers");
        let doc = truc_client::sign_with(signer, &agency.identity, &mut header, rng.bytes(size))?;
        let relayed = to
            .iter()
            .copied()
            .filter(|r| self.receivers[*r as usize].hub != agency.hub)
            .collect();
        self.ledger().attempt(key, to, relayed);
        Ok(Pending { key, document_id, doc })
    }

    /// Send one pending document; true when the hub accepted it (else it is
    /// queued to be sent again).
    async fn send_one(&self, client: &Client, s: usize, p: Pending) -> bool {
        let (from, hub) = (&self.senders[s].code, self.senders[s].hub);
        let label = format!("{from} {:?}", p.document_id);
        match client.send(p.doc.clone()).await {
            Ok(resp) => {
                let now = truc_core::now_unix_ms();
                let acceptance = Acceptance {
                    hub_document_id: resp.hub_document_id,
                    accepted_at_unix_ms: resp.accepted_at_unix_ms,
                };
                let (receipt, head) = match self.check_receipt(hub, &resp, from, &p.document_id) {
                    Ok(x) => x,
                    Err(why) => {
                        self.ledger()
                            .log_failures
                            .add(format!("the receipt for {label} does not check: {why}"));
                        (None, None)
                    }
                };
                self.ledger().accepted(
                    p.key,
                    Answer {
                        acceptance,
                        now_ms: now,
                        duplicate: resp.duplicate,
                        receipt,
                        head,
                        hub,
                    },
                    &label,
                );
                true
            }
            Err(e) => {
                self.unexpected(hub, format!("Send {label}: {e}"));
                self.ledger().send_failed();
                self.push_retry(s, p);
                false
            }
        }
    }

    /// The ACCEPTED receipt of a Send to hub `hub`: its tree head verifies
    /// with that hub's key, it is included in it, and it names this document. Returns its
    /// (index, SHA-256 of the bytes) and the head.
    #[allow(clippy::type_complexity)]
    fn check_receipt(
        &self,
        hub: usize,
        resp: &truc_client::proto::SendResponse,
        from: &str,
        document_id: &str,
    ) -> Result<(Option<(u64, [u8; 32])>, Option<WatchState>), String> {
        let proven = resp.receipt.as_ref().ok_or("no receipt")?;
        let (receipt, head) = self.verifiers[hub]
            .verify_proven_receipt(proven)
            .map_err(|e| e.to_string())?;
        if receipt.event != ReceiptEvent::Accepted as i32
            || receipt.from != from
            || receipt.document_id != document_id
            || receipt.hub_document_id != resp.hub_document_id
        {
            return Err(format!(
                "it is {} of {} {:?} (hub document {})",
                truc_proto::names::Wire::<ReceiptEvent>::from(receipt.event),
                receipt.from,
                receipt.document_id,
                receipt.hub_document_id
            ));
        }
        let sth = proven.tree_head.as_ref().ok_or("no tree head")?;
        Ok((
            Some((receipt.index, truc_core::sha256(&proven.receipt))),
            Some(WatchState::new(sth, &head)),
        ))
    }

    /// Decode and check a delivery (outside the ledger's lock).
    fn arrival(&self, d: &Delivery) -> Arrival {
        let now = truc_core::now_unix_ms();
        let mut a = Arrival {
            delivery_id: d.delivery_id,
            previous_attempts: d.previous_attempts,
            acceptance: Acceptance {
                hub_document_id: d.hub_document_id,
                accepted_at_unix_ms: d.accepted_at_unix_ms,
            },
            leased_ms: d.lease_expires_unix_ms - self.opts.lease_ms,
            received_ms: now,
            label: format!("hub document {}", d.hub_document_id),
            key: None,
            invalid: None,
        };
        let Some(doc) = &d.document else {
            a.invalid = Some(if d.status.is_some() {
                "a status notice (nobody reported a status)".into()
            } else {
                "no document".into()
            });
            return a;
        };
        let origin = match DocumentHeader::decode(doc.header.as_slice()) {
            Ok(h) => {
                a.label = format!("{} {:?} (hub document {})", h.from, h.document_id, d.hub_document_id);
                a.key = self.key_of(&h.from, &h.document_id);
                self.senders.iter().find(|s| s.code == h.from).map(|s| s.hub)
            }
            Err(_) => {
                a.invalid = Some("the header does not decode".into());
                return a;
            }
        };
        // Against the CA of the hub its sender belongs to, wherever it is
        // delivered.
        if d.payload_separate {
            a.invalid = Some("payload sent separately (all payloads here are small)".into());
        } else if let Some(hub) = origin {
            if let Err(e) = truc_client::verify_received(doc, &self.trust[hub]) {
                a.invalid = Some(format!("it does not verify against its origin hub's CA: {e}"));
            }
        } else {
            a.invalid = Some("its sender is none of this run's".into());
        }
        a
    }
}

/// The tasks of one cycle's load.
pub(crate) struct Load {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Connect every agency to its hub (`addrs[hub]`) and start sending
    /// and receiving.
    pub(crate) async fn start(ctx: &Arc<Ctx>, addrs: &[String], rng: &mut Rng) -> anyhow::Result<Load> {
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for r in 0..ctx.receivers.len() {
            let a = &ctx.receivers[r];
            let client = Client::connect_dir(&addrs[a.hub], &a.dir).await?;
            let (ctx, stop, rng) = (ctx.clone(), stop_rx.clone(), rng.fork());
            let skip = ctx.opts.skip_ack_percent;
            tasks.push(tokio::spawn(async move {
                receive(&ctx, r, &client, true, skip, rng, stop).await;
            }));
        }
        for s in 0..ctx.senders.len() {
            let a = &ctx.senders[s];
            let client = Client::connect_dir(&addrs[a.hub], &a.dir).await?;
            for _ in 0..ctx.opts.window {
                let (ctx, client, stop, rng) = (ctx.clone(), client.clone(), stop_rx.clone(), rng.fork());
                tasks.push(tokio::spawn(
                    async move { send_loop(&ctx, s, &client, rng, stop).await },
                ));
            }
        }
        Ok(Load { stop, tasks })
    }

    /// Tell every task to stop and wait for them (at most `timeout`, then
    /// abort the rest).
    pub(crate) async fn stop(self, timeout: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + timeout;
        for t in self.tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
            }
        }
    }
}

async fn send_loop(ctx: &Ctx, s: usize, client: &Client, mut rng: Rng, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let p = match ctx.pop_retry(s) {
            Some(p) => p,
            None => match ctx.new_document(s, &mut rng) {
                Ok(p) => p,
                Err(e) => {
                    ctx.ledger().error(format!("signing: {e}"));
                    return;
                }
            },
        };
        // Not cancelled by `stop`: a Send in flight at the kill fails by
        // itself at once, and its document goes back to the retry queue.
        if !ctx.send_one(client, s, p).await {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// Send again, until accepted, every document whose Send did not return
/// OK (in flight at a kill). Returns how many are still not accepted.
pub(crate) async fn resolve_pending(ctx: &Arc<Ctx>, addrs: &[String]) -> anyhow::Result<usize> {
    for s in 0..ctx.senders.len() {
        let a = &ctx.senders[s];
        let client = Client::connect_dir(&addrs[a.hub], &a.dir).await?;
        let mut tries = 0;
        while let Some(p) = ctx.pop_retry(s) {
            if !ctx.send_one(&client, s, p).await {
                tries += 1;
                if tries > 100 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Ok(ctx.pending())
}

/// Receive everything waiting for every receiver with `follow = false`,
/// acknowledging all of it; returns the number of deliveries.
pub(crate) async fn drain(ctx: &Arc<Ctx>, addrs: &[String]) -> anyhow::Result<u64> {
    let before = ctx.ledger().c.deliveries;
    let (_stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for r in 0..ctx.receivers.len() {
        let a = &ctx.receivers[r];
        let client = Client::connect_dir(&addrs[a.hub], &a.dir).await?;
        let (ctx, stop) = (ctx.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            receive(&ctx, r, &client, false, 0, Rng::new(0), stop).await;
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(ctx.ledger().c.deliveries - before)
}

/// One Receive stream for receiver `r`, acknowledging what arrives (except
/// `skip_percent` of first deliveries) from a second task, until the
/// stream ends, fails, or `stop`.
async fn receive(
    ctx: &Arc<Ctx>,
    r: usize,
    client: &Client,
    follow: bool,
    skip_percent: u32,
    mut rng: Rng,
    mut stop: watch::Receiver<bool>,
) {
    let (name, hub) = (&ctx.receivers[r].code, ctx.receivers[r].hub);
    let mut stream = match client.receive(ctx.opts.credit, follow).await {
        Ok(s) => s,
        Err(e) => {
            ctx.unexpected(hub, format!("Receive as {name}: {e}"));
            return;
        }
    };
    let (tx, rx) = mpsc::channel::<(u64, Option<PairKey>)>(4096);
    let acker = {
        let (ctx, client) = (ctx.clone(), client.clone());
        tokio::spawn(async move { ack_loop(&ctx, r, &client, rx).await })
    };
    loop {
        let msg = tokio::select! {
            m = stream.message() => m,
            _ = stop.changed() => break,
        };
        let d = match msg {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e) => {
                ctx.unexpected(
                    hub,
                    format!("Receive stream of {name}: {}", truc_client::ClientError::from(e)),
                );
                break;
            }
        };
        let arrival = ctx.arrival(&d);
        let pair = ctx.ledger().arrived(r as u32, name, &arrival);
        if let Some((_, true)) = pair {
            if d.previous_attempts == 0 && rng.percent(skip_percent) {
                ctx.ledger().skipped_ack();
                continue; // its lease runs out; it comes back
            }
        }
        if tx.send((d.delivery_id, pair.map(|(pk, _)| pk))).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = acker.await;
}

async fn ack_loop(ctx: &Ctx, r: usize, client: &Client, mut rx: mpsc::Receiver<(u64, Option<PairKey>)>) {
    let name = &ctx.receivers[r].code;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < ACK_BATCH {
            match rx.try_recv() {
                Ok(x) => batch.push(x),
                Err(_) => break,
            }
        }
        let ids: Vec<u64> = batch.iter().map(|(id, _)| *id).collect();
        let pairs: Vec<PairKey> = batch.iter().filter_map(|(_, pk)| *pk).collect();
        ctx.ledger().ack_attempt(&pairs);
        match client.ack(ids).await {
            Ok(_) => ctx.ledger().acked(batch.len(), &pairs, truc_core::now_unix_ms()),
            Err(e) => {
                ctx.unexpected(ctx.receivers[r].hub, format!("Ack as {name}: {e}"));
                ctx.ledger().ack_failed(batch.len());
                // The hub is gone: the rest will be delivered again.
                return;
            }
        }
    }
}
