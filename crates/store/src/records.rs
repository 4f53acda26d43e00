//! Records as stored: protobuf messages private to the store, so that fields
//! can be added later without a migration.

use prost::Message;

/// An agency in the directory.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct AgencyRecord {
    /// Agency code (QCVN 102 or QĐ 20 form).
    #[prost(string, tag = "1")]
    pub(crate) code: String,
    /// Display name.
    #[prost(string, tag = "2")]
    pub(crate) name: String,
    /// `truc.v1.AgencyState` value.
    #[prost(int32, tag = "3")]
    pub(crate) state: i32,
    /// When it was first registered, Unix ms.
    #[prost(int64, tag = "4")]
    pub(crate) registered_at_unix_ms: i64,
    /// For a retired agency: the agency that took over.
    #[prost(string, tag = "5")]
    pub(crate) successor: String,
}

/// An accepted document, stored once for all its recipients.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct DocumentRecord {
    /// The hub's id.
    #[prost(uint64, tag = "1")]
    pub(crate) hub_id: u64,
    /// Serialized header exactly as signed.
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) header: Vec<u8>,
    /// Signature over `header`.
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) signature: Vec<u8>,
    /// `truc.v1.SignatureScheme` value.
    #[prost(int32, tag = "4")]
    pub(crate) signature_scheme: i32,
    /// Signer chain, DER, leaf first.
    #[prost(bytes = "vec", repeated, tag = "5")]
    pub(crate) signer_chain: Vec<Vec<u8>>,
    /// Key of the payload in the `P` keyspace.
    #[prost(bytes = "vec", tag = "6")]
    pub payload_sha256: Vec<u8>,
    /// When it was accepted, Unix ms.
    #[prost(int64, tag = "7")]
    pub(crate) accepted_at_unix_ms: i64,
    /// Log index of its ACCEPTED receipt.
    #[prost(uint64, tag = "8")]
    pub(crate) accepted_receipt: u64,
    /// SHA-256 of `header`.
    #[prost(bytes = "vec", tag = "9")]
    pub header_sha256: Vec<u8>,
    /// Sender agency code.
    #[prost(string, tag = "10")]
    pub(crate) from: String,
    /// The sender's document id.
    #[prost(string, tag = "11")]
    pub(crate) document_id: String,
    /// SHA-256 of the header without its signing time.
    #[prost(bytes = "vec", tag = "12")]
    pub(crate) content_sha256: Vec<u8>,
    /// Recipients, in header order (for UPDATE: grows with added ones).
    #[prost(string, repeated, tag = "13")]
    pub(crate) recipients: Vec<String>,
    /// Priority, 0..=4.
    #[prost(int32, tag = "14")]
    pub(crate) priority: i32,
    /// Trích yếu, for Track.
    #[prost(string, tag = "15")]
    pub(crate) subject: String,
    /// Payload size in bytes.
    #[prost(uint64, tag = "16")]
    pub(crate) payload_size: u64,
    /// The payload is in the payload files, not under `P`.
    #[prost(bool, tag = "17")]
    pub(crate) external_payload: bool,
    /// Where the body is (`bodies::BodyRef`): the `SignedDocument` as
    /// received, with its payload unless `external_payload`. Empty in stores
    /// written before bodies moved out of sled: then `header`, `signature`
    /// and `signer_chain` are here and the payload is under `P`.
    #[prost(bytes = "vec", tag = "18")]
    pub(crate) body: Vec<u8>,
    /// When its stored body (or payload file) was found damaged and the
    /// document quarantined (0: it is not); cleared when the sender sends
    /// it again (`sled/quarantine.rs`).
    #[prost(int64, tag = "19")]
    pub(crate) quarantined_at_unix_ms: i64,
    /// What was damaged.
    #[prost(string, tag = "20")]
    pub(crate) quarantine_reason: String,
    /// `truc.v1.BusinessType` (0 also in records written before it).
    #[prost(int32, tag = "21")]
    pub(crate) business_type: i32,
    /// edXML BussinessDocReason of a revoke, update or replacement.
    #[prost(string, tag = "22")]
    pub(crate) business_reason: String,
    /// The header's DueDate (hạn xử lý), Unix ms; 0: none.
    #[prost(int64, tag = "23")]
    pub(crate) due_date_unix_ms: i64,
    /// Federation: the peer hub that forwarded it here (empty: its sender
    /// is an agency of this hub). What happens to its copies here is
    /// reported back there.
    #[prost(string, tag = "24")]
    pub(crate) arrived_via: String,
    /// The signed hops it came through, origin hub first (empty for a
    /// document sent here).
    #[prost(message, repeated, tag = "25")]
    pub(crate) trace: Vec<truc_proto::v1::TraceHop>,
}

/// One recipient's copy of one document: where it is and its latest
/// business status.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct RecipientState {
    /// `truc.v1.TransportState` value.
    #[prost(int32, tag = "1")]
    pub(crate) state: i32,
    /// Its outbox key's delivery id (valid while queued).
    #[prost(uint64, tag = "2")]
    pub(crate) delivery_id: u64,
    /// Leases that ran out.
    #[prost(uint32, tag = "3")]
    pub(crate) attempts: u32,
    /// When `state` last changed.
    #[prost(int64, tag = "4")]
    pub(crate) state_at_unix_ms: i64,
    /// Latest `truc.v1.StatusCode` reported by the recipient (0 = none).
    #[prost(int32, tag = "5")]
    pub(crate) status: i32,
    /// Its description.
    #[prost(string, tag = "6")]
    pub(crate) status_description: String,
    /// When it was reported.
    #[prost(int64, tag = "7")]
    pub(crate) status_at_unix_ms: i64,
    /// Delivery deadline (0 = none).
    #[prost(int64, tag = "8")]
    pub(crate) delivery_deadline_unix_ms: i64,
    /// Deadline to confirm receipt (status 02 or 03).
    #[prost(int64, tag = "9")]
    pub(crate) confirm_deadline_unix_ms: i64,
    /// The sender took it back, revoked, replaced or updated it after
    /// delivery: a 15 or 16 from this recipient is expected.
    #[prost(bool, tag = "10")]
    pub(crate) reply_expected: bool,
    /// The latest of 01–06 this recipient reported (0 = none): where its
    /// copy is in the status rules (`truc_core::status_rules`), which
    /// `status` no longer says once it holds a 15 or 16. Records written
    /// before it have 0 here; [`RecipientState::progress`] reads `status`
    /// for them.
    #[prost(int32, tag = "11")]
    pub(crate) progress: i32,
    /// Federation: the peer hub this recipient's copy goes to (empty: an
    /// agency of this hub). Its transport state then says how far the
    /// forward got (queued in the peer's outbox, forwarded) until that hub
    /// reports delivery.
    #[prost(string, tag = "12")]
    pub(crate) via: String,
}

impl RecipientState {
    /// The latest of 01–06 reported (0 = none), for records written before
    /// `progress` too.
    pub(crate) fn progress(&self) -> i32 {
        if self.progress != 0 {
            self.progress
        } else if (1..=6).contains(&self.status) {
            self.status
        } else {
            0
        }
    }
}

/// One copy waiting for one recipient.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct OutboxEntry {
    /// The document.
    #[prost(uint64, tag = "1")]
    pub(crate) hub_id: u64,
    /// Leases that ran out without an ack.
    #[prost(uint32, tag = "2")]
    pub(crate) attempts: u32,
    /// When it was enqueued, Unix ms.
    #[prost(int64, tag = "3")]
    pub(crate) enqueued_at_unix_ms: i64,
    /// Set for a status notice: the index of its STATUS_REPORTED receipt.
    #[prost(uint64, optional, tag = "4")]
    pub(crate) status_receipt: Option<u64>,
    /// Payload bytes this item delivers (0 for a status notice).
    #[prost(uint64, tag = "5")]
    pub(crate) bytes: u64,
    /// In the dead-letter queue: why (`truc.v1.DeadLetterReason`; 0 in
    /// records written before it existed, meaning attempts).
    #[prost(int32, tag = "6")]
    pub(crate) dead_reason: i32,
    /// In a peer hub's outbox (federation), a document: the recipients it
    /// is forwarded for.
    #[prost(string, repeated, tag = "7")]
    pub(crate) recipients: Vec<String>,
}

/// Counters the writer keeps, stored with every batch.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Meta {
    /// Next hub document id.
    #[prost(uint64, tag = "1")]
    pub(crate) next_hub_id: u64,
    /// Next queue sequence number.
    #[prost(uint64, tag = "2")]
    pub(crate) next_seq: u64,
    /// Leaves in the receipt log.
    #[prost(uint64, tag = "3")]
    pub(crate) tree_size: u64,
    /// Time of the last batch: receipt times never go backwards, so a time
    /// range is a contiguous run of the log.
    #[prost(int64, tag = "4")]
    pub(crate) last_time_unix_ms: i64,
    /// Where the log record of the batch that wrote this value starts: its
    /// segment…
    #[prost(uint32, tag = "5")]
    pub(crate) log_segment: u32,
    /// …and offset. Batches after it are replayed into sled at open.
    #[prost(uint64, tag = "6")]
    pub(crate) log_offset: u64,
    /// The `N` payload reference counts exist (a store from before payload
    /// collection has them built once when it is opened).
    #[prost(bool, tag = "7")]
    pub(crate) payload_refs_counted: bool,
    /// Every open cuts off the torn write it finds at the log's end (a
    /// store from before that may have torn tails in older segments, which
    /// replay then accepts once).
    #[prost(bool, tag = "8")]
    pub(crate) torn_tails_cut: bool,
    /// `signed-head` exists (`sled/head.rs`): from then on, a store whose
    /// file is missing has lost it.
    #[prost(bool, tag = "9")]
    pub(crate) signed_head_file: bool,
    /// The deadline index (`U`) exists (a store from before it has it built
    /// once when it is opened).
    #[prost(bool, tag = "10")]
    pub(crate) deadlines_indexed: bool,
}

/// How many document copies (queued, leased or dead-lettered) still need a
/// payload, and since when none has.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct PayloadRefs {
    /// Copies in an outbox or a dead-letter queue.
    #[prost(uint64, tag = "1")]
    pub(crate) refs: u64,
    /// When `refs` last fell to 0 (0 while it is above), Unix ms; the
    /// payload's `K` key carries the same time.
    #[prost(int64, tag = "2")]
    pub(crate) released_at_unix_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recipient record written before `progress` (tag 11) existed, as
    /// main writes it, reads its progress from `status`.
    #[test]
    fn progress_of_records_written_before_it() {
        let old = |status: i32| RecipientState {
            state: truc_proto::v1::TransportState::Delivered as i32,
            status,
            ..Default::default()
        };
        let read = |r: RecipientState| RecipientState::decode(r.encode_to_vec().as_slice()).unwrap();
        assert_eq!(read(old(3)).progress(), 3);
        assert_eq!(read(old(0)).progress(), 0);
        // An answer (15/16) hid the progress in such a record.
        assert_eq!(read(old(15)).progress(), 0);
        let new = RecipientState { progress: 6, ..old(16) };
        assert_eq!(read(new).progress(), 6);
    }
}

/// An agency of another hub, as the federated directory published it
/// (`W` keys; `machine/directory.rs`).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct RemoteAgencyRecord {
    /// Agency code.
    #[prost(string, tag = "1")]
    pub(crate) code: String,
    /// Display name.
    #[prost(string, tag = "2")]
    pub(crate) name: String,
    /// `truc.v1.AgencyState` value.
    #[prost(int32, tag = "3")]
    pub(crate) state: i32,
    /// For a retired agency: its successor.
    #[prost(string, tag = "4")]
    pub(crate) successor: String,
    /// The hub that serves it.
    #[prost(string, tag = "5")]
    pub(crate) hub: String,
    /// The peer this hub learned it from.
    #[prost(string, tag = "6")]
    pub(crate) via: String,
    /// When this hub last recorded a change of it, Unix ms.
    #[prost(int64, tag = "7")]
    pub(crate) changed_at_unix_ms: i64,
}
