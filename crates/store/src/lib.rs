//! Truc's storage: one interface for everything the hub keeps — the agency
//! directory, documents and their payloads, one outbox per agency, dead
//! letters, and the receipt log — and its embedded backend (fjall or sled).
//!
//! Every change goes through one writer that applies concurrent requests as
//! one atomic batch, appends their receipts to the Merkle log, signs one tree
//! head for the batch, flushes once (group commit), and only then answers.
//! The interface is async and backend-neutral so that a replicated backend
//! (NATS JetStream) can implement it later.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use truc_core::routing::HubId;
use truc_core::{AgencyCode, Principal};
use truc_proto::v1::{
    BusinessType, Priority, ProvenReceipt, SignedDocument, SignedTreeHead, StaffInfo, StatusCode, TraceHop,
    TrackResponse,
};

mod error;
mod events;
pub mod keys;
mod machine;
pub mod payloads;
mod records;
mod replica;
mod sled;
mod stats;
/// Tests' skips (tests/skip.rs): shown and recorded, or a failure.
#[cfg(test)]
#[path = "../../../tests/skip.rs"]
pub(crate) mod test_skip;

pub use crate::error::{Cause, Damage, StoreError};
pub use crate::events::{OutboxChange, OutboxEvents};
pub use crate::machine::indicators;
pub use crate::payloads::{FileUsage, PartWriter, PayloadFiles, Resume, UploadMismatch};
pub use crate::replica::{snapshot_entry, Replicator};
pub use crate::sled::{Engine, Reclaimed, SledStore, SledStoreOptions};
pub use crate::stats::CommitObserver;

/// `truc.v1.DeadLetterReason` values, as stored in dead letters.
pub use truc_proto::v1::DeadLetterReason;

/// A boxed future, so that `Store` can be used as `dyn Store`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A document the hub has verified, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewDocument {
    /// Sending agency (already checked against the mTLS certificate and the signer).
    pub from: AgencyCode,
    /// The sender's document id.
    pub document_id: String,
    /// Recipients, without duplicates.
    pub to: Vec<AgencyCode>,
    /// Priority.
    pub priority: Priority,
    /// SHA-256 of the header bytes.
    pub header_sha256: [u8; 32],
    /// SHA-256 of the header without its signing time (the idempotency
    /// check compares this: a re-signed retry of the same document is a
    /// duplicate; different content under the same id is a conflict).
    pub content_sha256: [u8; 32],
    /// The document as received (header bytes, signature, chain, payload).
    pub document: SignedDocument,
    /// Who sent it (the agency of the mTLS certificate).
    pub actor: Principal,
    /// New document, revoke, update or replacement.
    pub business_type: BusinessType,
    /// For revoke, update, replace: the sender's id of the original (for a
    /// revoke or update sent under the original's id: that id, or empty).
    pub reference_document_id: String,
    /// edXML BussinessDocReason.
    pub business_reason: String,
    /// UPDATE: the agencies added (`true`) and removed (`false`), when the
    /// header lists them.
    pub receiver_changes: Vec<(AgencyCode, bool)>,
    /// REPLACE: the old documents (sender's ids), each with the agencies it
    /// is replaced for (empty: all its recipients among `to`); empty: the
    /// one `reference_document_id`, for all of `to`.
    pub replacements: Vec<(String, Vec<AgencyCode>)>,
    /// Trích yếu, kept for Track.
    pub subject: String,
    /// Delivery deadline for each recipient (0 = none), Unix ms.
    pub delivery_deadline_unix_ms: i64,
    /// The header's DueDate (hạn xử lý: by when the recipients are to have
    /// handled it), Unix ms; 0: none.
    pub due_date_unix_ms: i64,
    /// The payload is already in the payload files (a chunked upload) and
    /// `document.payload` is empty.
    pub payload_external: bool,
    /// Payload size in bytes (as signed).
    pub payload_size: u64,
    /// Payload SHA-256 as signed (checked against the payload by the hub).
    pub payload_sha256: [u8; 32],
    /// Federation: the recipients of `to` served by other hubs, each with
    /// the peer it is forwarded to (the routing plan's next hop). Every
    /// other recipient must be registered here.
    pub remote: Vec<(AgencyCode, HubId)>,
    /// Federation: the peer hub that forwarded this document (then `from`
    /// is an agency of another hub and is not checked against the
    /// directory here), and the signed hops it came through.
    pub arrived_via: Option<HubId>,
    /// The trace that came with it, origin hub first.
    pub trace: Vec<TraceHop>,
}

/// Where a document's payload is, for a Download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadRef {
    /// Small: kept in the store; here it is.
    Inline(Vec<u8>),
    /// Large: in the payload files under this SHA-256.
    External {
        /// Its digest.
        sha256: Vec<u8>,
        /// Its size.
        size: u64,
    },
}

/// A payload digest held against collection while an upload decides whether
/// it needs the bytes and until its document is stored (dropping it
/// releases it).
pub struct PayloadPin {
    /// Whether the payload is stored; `None` when the store does not manage
    /// the payload files (the caller looks for itself).
    present: Option<bool>,
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl PayloadPin {
    /// A pin that runs `release` when dropped.
    pub fn new(present: Option<bool>, release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            present,
            release: Some(Box::new(release)),
        }
    }

    /// For a store that does not collect payloads: nothing to hold.
    pub fn unmanaged() -> Self {
        Self {
            present: None,
            release: None,
        }
    }

    /// Whether the payload's file was there when it was pinned.
    pub fn present(&self) -> Option<bool> {
        self.present
    }
}

impl Drop for PayloadPin {
    fn drop(&mut self) {
        if let Some(f) = self.release.take() {
            f()
        }
    }
}

impl std::fmt::Debug for PayloadPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadPin").field("present", &self.present).finish()
    }
}

/// The hub's answer to a Send.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    /// The hub's id for the document.
    pub hub_document_id: u64,
    /// When it was (first) accepted.
    pub accepted_at_unix_ms: i64,
    /// True when this (from, document_id) had been accepted before.
    pub duplicate: bool,
    /// The ACCEPTED receipt, its batch's signed tree head and inclusion proof.
    pub receipt: ProvenReceipt,
    /// Agencies that got something new in their outbox.
    pub notify: Vec<AgencyCode>,
    /// The document had been quarantined and this Send restored it: the
    /// copies in `notify` went back to the outbox under their old delivery
    /// ids (a delivery engine that skips ids it has passed must look again).
    pub restored: bool,
}

/// A business status reported on a document.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// The reporting agency (from its certificate).
    pub reporter: AgencyCode,
    /// The reporter, as authenticated.
    pub actor: Principal,
    /// The document's sender and the sender's document id.
    pub document_from: AgencyCode,
    /// The sender's document id.
    pub document_id: String,
    /// The status (the store refuses a code without a rule: 1–6, 13, 15
    /// and 16 have one).
    pub code: StatusCode,
    /// Reason or note.
    pub description: String,
    /// Who handled it.
    pub staff: Option<StaffInfo>,
}

/// The outcome of a status report.
#[derive(Debug, Clone)]
pub struct StatusOutcome {
    /// The STATUS_REPORTED receipt with its head and proof.
    pub receipt: ProvenReceipt,
    /// Agencies that got a notice (or lost a copy) in their outbox.
    pub notify: Vec<AgencyCode>,
}

/// Which receipts an audit query wants.
#[derive(Debug, Clone)]
pub enum ReceiptFilter {
    /// The whole log.
    All,
    /// One document's receipts.
    Document {
        /// Its sender.
        from: AgencyCode,
        /// The sender's document id.
        document_id: String,
    },
    /// Receipts naming an agency as sender, recipient or actor.
    Agency(AgencyCode),
}

/// An audit query.
#[derive(Debug, Clone)]
pub struct ReceiptQuery {
    /// What to list.
    pub filter: ReceiptFilter,
    /// Receipts at or after this time (0 = unbounded), Unix ms.
    pub since_unix_ms: i64,
    /// Receipts at or before this time (0 = unbounded), Unix ms.
    pub until_unix_ms: i64,
    /// First receipt index to consider.
    pub page_token: u64,
    /// Most receipts to return.
    pub page_size: usize,
    /// Set for an agency: only its own documents and its own agency.
    pub visible_to: Option<AgencyCode>,
}

/// One page of receipts, each with an inclusion proof against `tree_head`.
#[derive(Debug, Clone)]
pub struct ReceiptPage {
    /// The head the proofs are against.
    pub tree_head: SignedTreeHead,
    /// Receipts (their `tree_head` field empty).
    pub receipts: Vec<ProvenReceipt>,
    /// The index to continue from; 0 when there is no more.
    pub next_page_token: u64,
}

/// One copy waiting in an agency's outbox.
#[derive(Debug, Clone)]
pub struct QueuedItem {
    /// Id to acknowledge; encodes priority and queue order.
    pub delivery_id: u64,
    /// Leases of this copy that ran out unacknowledged.
    pub attempts: u32,
    /// The hub's id for the document.
    pub hub_document_id: u64,
    /// When the document was accepted.
    pub accepted_at_unix_ms: i64,
    /// The document exactly as signed, with its payload; `None` for a
    /// status notice.
    pub document: Option<SignedDocument>,
    /// For a status notice: its STATUS_REPORTED receipt with head and proof.
    pub status: Option<ProvenReceipt>,
    /// The payload is not inline: fetch it with Download.
    pub payload_separate: bool,
    /// In the dead-letter queue: why (`truc.v1.DeadLetterReason`; 0 for
    /// an outbox item, and for dead letters from before the reason existed).
    pub dead_letter_reason: i32,
}

/// An agency of another hub, as the federated directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAgency {
    /// Its code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its state, as its hub published it.
    pub state: truc_proto::v1::AgencyState,
    /// For a retired agency: its successor.
    pub successor: String,
    /// The hub that serves it.
    pub hub: String,
    /// The peer this hub learned it from (empty in a view being offered).
    pub via: String,
    /// When this hub last recorded a change of it, Unix ms (0 in a view
    /// being offered).
    pub changed_at_unix_ms: i64,
}

/// An item of a peer hub's outbox (federation): a document to forward, or
/// a receipt of this hub to report there.
#[derive(Debug, Clone)]
pub struct PeerItem {
    /// Its id in the peer's outbox.
    pub delivery_id: u64,
    /// Times the peer refused it.
    pub attempts: u32,
    /// The document it is about.
    pub hub_document_id: u64,
    /// When this hub accepted that document, Unix ms.
    pub accepted_at_unix_ms: i64,
    /// When the item was queued, Unix ms.
    pub enqueued_at_unix_ms: i64,
    /// What to send.
    pub kind: PeerItemKind,
}

/// What a [`PeerItem`] carries.
#[derive(Debug, Clone)]
pub enum PeerItemKind {
    /// A document to forward for `recipients`: as its sender signed it
    /// (payload inline unless `payload_external`), with the trace it came
    /// here with (origin hub first; empty when it was sent here).
    Document {
        /// The signed document.
        document: SignedDocument,
        /// Its payload is in the payload files (`Store::payload`).
        payload_external: bool,
        /// The recipients the peer is asked to handle.
        recipients: Vec<AgencyCode>,
        /// The hops before this hub.
        trace: Vec<TraceHop>,
        /// SHA-256 of the header bytes.
        header_sha256: Vec<u8>,
        /// New document, revoke, update or replacement (a correction must
        /// not overtake the document it corrects).
        business_type: BusinessType,
    },
    /// One of this hub's receipts to report to the peer.
    Report(ProvenReceipt),
}

/// How to scrub the store ([`Store::verify_store`]).
#[derive(Debug, Clone, Default)]
pub struct ScrubOptions {
    /// Read at most this many bytes per second (0: no limit).
    pub bytes_per_second: u64,
    /// Quarantine what is found damaged (documents, payload files); unset,
    /// only report it.
    pub quarantine: bool,
    /// Who runs it (a principal URI), for the receipts it writes.
    pub actor: String,
    /// Set to true to stop early (the hub is shutting down): the scrub then
    /// fails with [`StoreError::Closed`].
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

/// What kind of stored item is damaged (`truc.v1.DamageKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DamageKind {
    /// A document's stored body.
    Document,
    /// A payload file.
    PayloadFile,
    /// A receipt or Merkle node of the log.
    Receipt,
    /// A signed tree head that does not match the log.
    TreeHead,
}

/// One damaged item a scrub found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubFinding {
    /// What kind of item.
    pub kind: DamageKind,
    /// Document: the hub's id (0 otherwise).
    pub hub_document_id: u64,
    /// Document: its sender.
    pub from: String,
    /// Document: the sender's document id.
    pub document_id: String,
    /// Payload file: its SHA-256.
    pub payload_sha256: Vec<u8>,
    /// Receipt: its index; tree head: its size.
    pub receipt_index: u64,
    /// What is wrong.
    pub what: String,
    /// Quarantined by this scrub.
    pub quarantined: bool,
}

/// What a scrub checked and found.
#[derive(Debug, Clone, Default)]
pub struct ScrubReport {
    /// Document bodies checked, and their bytes.
    pub documents: u64,
    /// Bytes of document bodies read.
    pub body_bytes: u64,
    /// Payload files checked.
    pub payload_files: u64,
    /// Bytes of payload files read.
    pub payload_bytes: u64,
    /// Receipts checked.
    pub receipts: u64,
    /// Signed tree heads checked against the log.
    pub tree_heads: u64,
    /// The log's size at its newest signed tree head.
    pub tree_size: u64,
    /// Damage found now.
    pub damaged: Vec<ScrubFinding>,
    /// Documents quarantined before this scrub, not yet sent again.
    pub awaiting_resend: Vec<u64>,
    /// Agencies that got a notice in their outbox (senders of quarantined
    /// documents).
    pub notify: Vec<AgencyCode>,
}

/// What quarantining a document did ([`Store::quarantine`]).
#[derive(Debug, Clone, Default)]
pub struct Quarantined {
    /// It was not quarantined before.
    pub newly: bool,
    /// Copies moved to the dead-letter queue: (agency, delivery id).
    pub dead_lettered: Vec<(AgencyCode, u64)>,
    /// Agencies that got a notice in their outbox (the sender).
    pub notify: Vec<AgencyCode>,
}

/// What happened when a lease ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireOutcome {
    /// The copy is back in the outbox; this many leases have now run out.
    Requeued {
        /// Leases that ran out so far.
        attempts: u32,
    },
    /// The copy went to the dead-letter queue after this many attempts.
    DeadLettered {
        /// Leases that ran out.
        attempts: u32,
    },
    /// The copy had been acknowledged meanwhile.
    Gone,
}

/// An agency as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyInfo {
    /// Agency code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Active, suspended or retired.
    pub state: truc_proto::v1::AgencyState,
    /// When it was registered, Unix ms.
    pub registered_at_unix_ms: i64,
    /// Copies waiting in its outbox.
    pub queued: u64,
    /// For a retired agency: its successor.
    pub successor: String,
}

/// An agency's queue at a glance (for operators).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Items waiting (in flight included).
    pub queued: u64,
    /// Payload bytes waiting.
    pub bytes: u64,
    /// Items in the dead-letter queue.
    pub dead_letters: u64,
    /// When the oldest waiting item was enqueued (0 when none), Unix ms.
    pub oldest_enqueued_unix_ms: i64,
    /// Urgent copies past their delivery deadline.
    pub overdue_urgent: u64,
    /// Copies (waiting or delivered) past their document's DueDate and not
    /// done with (no 06 or 02 from the agency).
    pub past_due: u64,
    /// Copies past their confirmation deadline without a 02 or 03.
    pub past_confirmation: u64,
}

/// One waiting item, without its payload (for operators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Its delivery id.
    pub delivery_id: u64,
    /// The document.
    pub hub_document_id: u64,
    /// Its sender.
    pub from: String,
    /// The sender's document id.
    pub document_id: String,
    /// Its priority.
    pub priority: Priority,
    /// When it was enqueued, Unix ms.
    pub enqueued_at_unix_ms: i64,
    /// Leases that ran out.
    pub attempts: u32,
    /// A status notice rather than a document.
    pub status_notice: bool,
    /// Payload bytes.
    pub bytes: u64,
}

/// Everything the hub stores. Mutating calls return after the change and its
/// receipt are durable on disk.
pub trait Store: Send + Sync + 'static {
    /// Store a verified document: payload once, one outbox entry per
    /// recipient, an ACCEPTED receipt. Idempotent on (from, document_id).
    fn send(&self, doc: NewDocument) -> BoxFuture<'_, Result<SendOutcome, StoreError>>;

    /// Acknowledge deliveries of `agency`; returns how many were newly acked.
    /// Fails with `UnknownDelivery` (and acks nothing) if an id was never
    /// delivered to this agency.
    fn ack(&self, agency: AgencyCode, ids: Vec<u64>, actor: String) -> BoxFuture<'_, Result<u32, StoreError>>;

    /// Record that a lease on `delivery_id` ran out; dead-letter the copy once
    /// `max_attempts` leases have run out.
    fn expire(
        &self,
        agency: AgencyCode,
        delivery_id: u64,
        max_attempts: u32,
    ) -> BoxFuture<'_, Result<ExpireOutcome, StoreError>>;

    /// Up to `limit` copies waiting for `agency`, highest priority first and
    /// FIFO within a priority, leaving out the ids in `skip` (leased now).
    fn fetch(
        &self,
        agency: AgencyCode,
        skip: HashSet<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<QueuedItem>, StoreError>>;

    /// Wait until this hub's view of the store holds every write
    /// acknowledged anywhere before the call. A store with one writer (the
    /// embedded one) always does; a replicated one catches up with its log.
    fn caught_up(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Like [`Store::fetch`], but a backend may skip, in each priority band
    /// (`delivery_id >> 48`, 0 = most urgent), the ids below `from[band]`:
    /// the caller knows those are leased or gone.
    fn fetch_from(
        &self,
        agency: AgencyCode,
        from: [u64; 5],
        skip: HashSet<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<QueuedItem>, StoreError>>;

    /// Register an agency as active, or rename a registered one.
    fn put_agency(
        &self,
        code: AgencyCode,
        name: String,
        actor: String,
    ) -> BoxFuture<'_, Result<AgencyInfo, StoreError>>;

    /// One agency from the directory (in memory; no I/O).
    fn agency(&self, code: &AgencyCode) -> Option<AgencyInfo>;

    /// The whole directory, ordered by code (in memory; no I/O).
    fn agencies(&self) -> Vec<AgencyInfo>;

    /// Why the store cannot commit right now (it is recovering from a
    /// failed commit: a full disk, a failed write), or `None` when it can.
    /// In memory; `/readyz` answers not-ready while it is `Some`.
    fn commit_problem(&self) -> Option<String>;

    /// Copies in the dead-letter queue of `agency`. One whose stored copy
    /// is damaged (reason corrupt) carries only an unsigned header naming
    /// its sender and document id.
    fn dead_letters(&self, agency: AgencyCode) -> BoxFuture<'_, Result<Vec<QueuedItem>, StoreError>>;

    /// The axis's indicators (`indicators`): the stored buckets of local
    /// days `from_day..=to_day` of one agency, or (`None`) of every agency
    /// and of the hub (agency ""), ordered by agency then day. Kept as
    /// receipts are committed: reading them scans no log.
    fn indicators(
        &self,
        from_day: i64,
        to_day: i64,
        agency: Option<AgencyCode>,
    ) -> BoxFuture<'_, Result<Vec<indicators::IndicatorRow>, StoreError>>;

    /// Record a business status, route it to the counterpart's outbox, and
    /// for a take-back (13) withdraw the copies not yet delivered.
    fn report_status(&self, report: StatusReport) -> BoxFuture<'_, Result<StatusOutcome, StoreError>>;

    /// Per recipient, where the sender's document is (`None`: no such
    /// document from this sender). `overdue` is left for the caller, and
    /// so is `past_due`'s time: the store sets it where the copy is still
    /// the recipient's to finish, the caller keeps it where the DueDate has
    /// also passed.
    fn track(&self, from: AgencyCode, document_id: String) -> BoxFuture<'_, Result<Option<TrackResponse>, StoreError>>;

    /// Receipts for an audit query, with proofs against the latest head.
    fn receipts(&self, query: ReceiptQuery) -> BoxFuture<'_, Result<ReceiptPage, StoreError>>;

    /// The latest signed tree head (`tree_size` 0), or the one signed when
    /// the log had exactly `tree_size` leaves.
    fn tree_head(&self, tree_size: u64) -> BoxFuture<'_, Result<Option<SignedTreeHead>, StoreError>>;

    /// Up to `limit` signed tree heads from size `from_size` on, in
    /// increasing size (one per commit batch that appended receipts), and
    /// the size to continue from (0: none left now).
    fn tree_heads(&self, from_size: u64, limit: usize)
        -> BoxFuture<'_, Result<(Vec<SignedTreeHead>, u64), StoreError>>;

    /// Suspend or resume an agency.
    fn set_agency_state(
        &self,
        code: AgencyCode,
        state: truc_proto::v1::AgencyState,
        reason: String,
        actor: String,
    ) -> BoxFuture<'_, Result<AgencyInfo, StoreError>>;

    /// Retire an agency into `successor`, moving its outbox there.
    fn retire_agency(
        &self,
        code: AgencyCode,
        successor: AgencyCode,
        reason: String,
        actor: String,
    ) -> BoxFuture<'_, Result<AgencyInfo, StoreError>>;

    /// Remove an agency that never had traffic (registered by mistake: a
    /// typo). Refused with `Precondition` if any receipt but the
    /// directory's own names it (it sent, received or was routed to):
    /// such an agency is retired instead, so that its history stays
    /// readable. An `AGENCY_CHANGED` receipt records the removal.
    fn remove_agency(&self, code: AgencyCode, reason: String, actor: String) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Dead letters (all when `ids` is empty) back into the outbox.
    fn redrive(&self, agency: AgencyCode, ids: Vec<u64>, actor: String) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Dead letters (all when `ids` is empty) deleted.
    fn purge(&self, agency: AgencyCode, ids: Vec<u64>, actor: String) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Record an operator action that leaves no other trace.
    fn record_action(&self, detail: String, actor: String) -> BoxFuture<'_, Result<(), StoreError>>;

    /// An agency's queue at a glance; `now` decides what is overdue.
    fn queue_stats(&self, agency: AgencyCode, now_unix_ms: i64) -> BoxFuture<'_, Result<QueueStats, StoreError>>;

    /// Up to `limit` waiting items after `after` (a delivery id; 0 = start).
    fn queue_page(
        &self,
        agency: AgencyCode,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<QueueEntry>, StoreError>>;

    /// The payload of document `hub_id`, if `caller` sent or receives it
    /// (`Precondition` once it has been collected).
    fn payload(&self, hub_id: u64, caller: AgencyCode) -> BoxFuture<'_, Result<PayloadRef, StoreError>>;

    /// RFC 9162 consistency proof between two sizes of the log.
    fn consistency_proof(&self, old_size: u64, new_size: u64) -> BoxFuture<'_, Result<Vec<[u8; 32]>, StoreError>>;

    /// Whether a Send of `size` payload bytes from `from` to `to` would pass
    /// the store's checks now (sender active, recipients registered, routed
    /// and under their outbox quota, the disk above its reserve), without
    /// storing anything: an upload asks before its bytes travel. With
    /// `document_id`, a document already accepted passes (its Send is a
    /// duplicate). The Send checks again.
    fn precheck_send(
        &self,
        from: AgencyCode,
        document_id: Option<String>,
        to: Vec<AgencyCode>,
        size: u64,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Hold the payload `sha256` against collection, ordered with every
    /// collection, and say whether its file is stored. An upload takes this
    /// before it decides to skip the bytes, and keeps it until its Send is
    /// stored.
    fn pin_payload(&self, sha256: Vec<u8>) -> BoxFuture<'_, Result<PayloadPin, StoreError>>;

    /// A payload stored for a document the hub then refused (an upload
    /// whose Send failed: quota, unknown recipient, …): if no document
    /// counts it, mark it released now, so that the collector deletes it
    /// after the retention unless a document needs it by then. A payload
    /// documents count is left as it is.
    fn release_payload(&self, sha256: Vec<u8>) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Delete up to `limit` payloads (inline and files) that no queued,
    /// leased or dead-lettered copy has needed since before
    /// `released_before_unix_ms`, except pinned ones; returns how many
    /// (replicated: from the shared store too).
    fn collect_payloads(&self, released_before_unix_ms: i64, limit: usize) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Scrub: check every stored document body against its checksum and
    /// the digests of its signed header, every payload file against its
    /// SHA-256, and every receipt against the Merkle log and its signed tree
    /// heads; with `opts.quarantine`, quarantine the damaged documents and
    /// payload files (see [`Store::quarantine`]). Reads at most
    /// `opts.bytes_per_second`. No default: every backend says how it
    /// checks what it stores.
    fn verify_store(&self, opts: ScrubOptions) -> BoxFuture<'_, Result<ScrubReport, StoreError>>;

    /// Quarantine document `hub_id`, whose stored copy is damaged (`what`):
    /// dead-letter its queued copies with reason corrupt, record a
    /// QUARANTINED receipt by `actor`, and put that receipt in the sender's
    /// outbox as a notice asking it to send the document again (a Send of
    /// the same document id and content then restores it). Idempotent: a
    /// document already quarantined only has copies queued since
    /// dead-lettered. No default (see `verify_store`).
    fn quarantine(&self, hub_id: u64, what: String, actor: String) -> BoxFuture<'_, Result<Quarantined, StoreError>>;

    /// Federation: up to `limit` items of peer hub `peer`'s outbox, highest
    /// priority first, FIFO within each, leaving out `skip`, and no more
    /// than `max_bytes` of payloads (at least one item, whatever its size).
    fn peer_items(
        &self,
        peer: HubId,
        skip: HashSet<u64>,
        limit: usize,
        max_bytes: u64,
    ) -> BoxFuture<'_, Result<Vec<PeerItem>, StoreError>>;

    /// Federation: the peer accepted these items of its outbox, in this
    /// order (for a document, with its ACCEPTED receipt, kept in this hub's
    /// FORWARDED receipt), recorded in one commit. Idempotent.
    fn forwarded(&self, peer: HubId, items: Vec<(u64, Option<ProvenReceipt>)>)
        -> BoxFuture<'_, Result<(), StoreError>>;

    /// Federation: the peer refused item `id`; after `max_attempts`
    /// refusals it is a dead letter of the peer's outbox.
    fn forward_refused(
        &self,
        peer: HubId,
        id: u64,
        max_attempts: u32,
        why: String,
    ) -> BoxFuture<'_, Result<ExpireOutcome, StoreError>>;

    /// Federation: apply a receipt peer `peer` reported about a document
    /// (delivered, dead-lettered, a status); returns the agencies whose
    /// outbox changed.
    fn peer_report(&self, peer: HubId, receipt: ProvenReceipt) -> BoxFuture<'_, Result<Vec<AgencyCode>, StoreError>>;

    /// Federation: the peer's outbox as `queue_stats` counts an agency's.
    fn peer_queue_stats(&self, peer: HubId, now_unix_ms: i64) -> BoxFuture<'_, Result<QueueStats, StoreError>>;

    /// Federation: apply peer `peer`'s whole view of the directory (the
    /// entries it may speak for); returns how many changed.
    fn peer_directory(&self, peer: HubId, entries: Vec<RemoteAgency>) -> BoxFuture<'_, Result<u32, StoreError>>;

    /// Federation: the agencies of other hubs this hub knows, by code.
    fn remote_agencies(&self) -> BoxFuture<'_, Result<Vec<RemoteAgency>, StoreError>>;

    /// Federation: one agency of another hub, if the directory knows it.
    fn remote_agency(&self, code: AgencyCode) -> BoxFuture<'_, Result<Option<RemoteAgency>, StoreError>>;
}
