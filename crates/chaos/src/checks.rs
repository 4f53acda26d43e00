//! The checks run against a hub's state, with no client connected: what
//! waits in each receiver's outbox and dead-letter queue, and the whole
//! receipt log. With several hubs (federation), each receiver is looked up
//! at its own hub and each hub's log is checked with its own key.

use std::collections::HashMap;

use truc_client::audit::{self, AuditQuery, ExportTreeHead, WatchState};
use truc_client::Client;
use truc_core::tree_head::TreeHeadVerifier;

use crate::ledger::DocKey;
use crate::load::Ctx;

/// What waits for each receiver, from the operator's view.
pub(crate) struct Snapshot {
    pub(crate) queued: Vec<HashMap<DocKey, u64>>,
    pub(crate) dead: Vec<HashMap<DocKey, u64>>,
    pub(crate) unknown: Vec<Vec<String>>,
}

impl Snapshot {
    /// Copies queued for every receiver together.
    pub(crate) fn queued_total(&self) -> usize {
        self.queued.iter().map(|m| m.len()).sum()
    }
}

/// Each receiver's outbox and dead letters, read by `operators[hub]` of
/// its hub.
pub(crate) async fn queues(ctx: &Ctx, operators: &[Client]) -> anyhow::Result<Snapshot> {
    let n = ctx.receivers.len();
    let mut snap = Snapshot {
        queued: vec![HashMap::new(); n],
        dead: vec![HashMap::new(); n],
        unknown: vec![Vec::new(); n],
    };
    for (r, a) in ctx.receivers.iter().enumerate() {
        let operator = &operators[a.hub];
        let mut after = 0;
        loop {
            let page = operator.list_queue(&a.code, after, 1000).await?;
            for it in page.items.iter().filter(|i| !i.status_notice) {
                match ctx.key_of(&it.from, &it.document_id) {
                    Some(k) => {
                        snap.queued[r].insert(k, it.hub_document_id);
                    }
                    None => snap.unknown[r].push(format!("{} {:?}", it.from, it.document_id)),
                }
            }
            if page.next_after_delivery_id == 0 {
                break;
            }
            after = page.next_after_delivery_id;
        }
        for d in operator.dead_letters(&a.code).await? {
            match ctx.key_of(&d.from, &d.document_id) {
                Some(k) => {
                    snap.dead[r].insert(k, d.hub_document_id);
                }
                None => snap.unknown[r].push(format!("{} {:?} (dead letter)", d.from, d.document_id)),
            }
        }
    }
    Ok(snap)
}

/// After a restart, with no client connected: every receiver's queues,
/// checked against the ledger ([`crate::ledger::Ledger::check_queues`]) as
/// of `when`. Returns them and the pairs newly found lost.
pub(crate) async fn check_queues_now(ctx: &Ctx, operators: &[Client], when: &str) -> anyhow::Result<(Snapshot, u64)> {
    let snapshot = queues(ctx, operators).await?;
    let newly_lost = ctx.ledger().check_queues(
        when,
        &ctx.receiver_names,
        &snapshot.queued,
        &snapshot.dead,
        &snapshot.unknown,
    );
    Ok((snapshot, newly_lost))
}

/// The whole receipt log, at rest: latest head consistent with `head` (the
/// chain of every head checked before), exported and verified offline
/// (complete, every inclusion proof against one signed head, itself
/// consistent with the latest), every ACCEPTED receipt handed to a sender
/// present byte for byte at its index, a DELIVERED receipt for every
/// acknowledged pair. Of hub `hub`: the receipts of its senders and the
/// acknowledgements of its receivers. Failures go to the ledger, named
/// `what` (the hub). Returns (log size, receipts cross-checked).
pub(crate) async fn check_log(
    ctx: &Ctx,
    (hub, what): (usize, &str),
    auditor: &Client,
    verifier: &TreeHeadVerifier,
    head: &WatchState,
) -> (u64, u64) {
    let fail = |m: String| ctx.ledger().log_failures.add(format!("{what}{m}"));
    if let Err(e) = audit::check_consistency(auditor, verifier, head).await {
        fail(format!("at the end: {e}"));
    }
    let export = match audit::export(auditor, &AuditQuery::all(), Some(verifier)).await {
        Ok(x) => x,
        Err(e) => {
            fail(format!("exporting the log: {e}"));
            return (0, 0);
        }
    };
    let report = match audit::verify_export(&export, verifier) {
        Ok(r) => r,
        Err(e) => {
            fail(format!("the exported log does not verify: {e}"));
            return (export.tree_head.tree_size, 0);
        }
    };
    let size = report.tree_size;
    match report.complete_range {
        Some(r) if r.first == 0 && r.last + 1 == size => {}
        other => fail(format!("the export covers {other:?}, not every receipt 0..{size}")),
    }
    if let Ok(state) = export_state(&export.tree_head, verifier) {
        if let Err(e) = audit::check_consistency(auditor, verifier, &state).await {
            fail(format!("the export's tree head: {e}"));
        }
    }
    // Receipts handed to senders, byte for byte.
    let label = |k: &DocKey| format!("{} {:?}", ctx.senders[k.0 as usize].code, ctx.document_id(k));
    let given = ctx
        .ledger()
        .sender_receipts(|k| ctx.senders[k.0 as usize].hub == hub, label);
    let mut by_index = HashMap::with_capacity(export.receipts.len());
    let mut delivered = std::collections::HashSet::new();
    for r in &export.receipts {
        by_index.insert(r.index, r);
        if r.event == "DELIVERED" {
            delivered.insert((r.from.clone(), r.document_id.clone(), r.recipient.clone()));
        }
    }
    let mut checked = 0;
    for (index, (hash, what)) in &given {
        checked += 1;
        match by_index.get(index).and_then(|r| truc_core::unhex(&r.receipt).ok()) {
            Some(bytes) if truc_core::sha256(&bytes) == *hash => {}
            Some(_) => fail(format!(
                "the ACCEPTED receipt handed to the sender of {what} is not the receipt at index {index} any more"
            )),
            None => fail(format!(
                "the ACCEPTED receipt handed to the sender of {what} (index {index}) is not in the log"
            )),
        }
    }
    let acked = ctx.ledger().acked_pairs(|pk| ctx.pair_label(pk));
    let here = |code: &String| ctx.receivers.iter().any(|a| &a.code == code && a.hub == hub);
    for (from, id, to) in acked.iter().filter(|(_, _, to)| here(to)) {
        checked += 1;
        if !delivered.contains(&(from.clone(), id.clone(), to.clone())) {
            fail(format!(
                "{to} acknowledged {from} {id:?} (the Ack returned OK) but the log has no DELIVERED receipt for it"
            ));
        }
    }
    (size, checked)
}

pub(crate) fn export_state(th: &ExportTreeHead, verifier: &TreeHeadVerifier) -> Result<WatchState, String> {
    let sth = th.signed()?;
    let head = verifier.verify(&sth).map_err(|e| e.to_string())?;
    Ok(WatchState::new(&sth, &head))
}
