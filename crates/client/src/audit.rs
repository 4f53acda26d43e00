//! What an auditor does with the receipt log (design invariant 5), shared by
//! `truc audit` and the integration tests:
//!
//! * [`export`] lists receipts matching a query and packages them, with
//!   their inclusion proofs and the one signed tree head they are proven
//!   against, as an [`AuditExport`] (JSON, format `truc-audit-export/1`);
//! * [`verify`] checks such an export offline with nothing but the hub's
//!   receipt public key (`PKI/hub/receipts.pub`), and names the first
//!   receipt that fails;
//! * [`check_consistency`] proves that the hub's latest signed tree head
//!   extends the one an auditor saw before ([`WatchState`]), so a history
//!   rewritten by an operator is detected;
//! * [`verify_export_witnessed`] also requires the receipts to be under a
//!   checkpoint that enough of the auditor's witnesses cosigned, and
//!   [`tlog_proofs`] writes them as c2sp.org/tlog-proof files
//!   (`witnessed.rs`).
//!
//! # The export format
//!
//! ```json
//! { "format": "truc-audit-export/1",
//!   "query": { "agency": "000.00.00.G22" },
//!   "tree_head": { "tree_head": "<hex of the signed TreeHead bytes>", "signature": "<hex>",
//!                  "key_id": "<hex>", "tree_size": 42, "root_hash": "<hex>", "time_unix_ms": 1 },
//!   "complete_range": { "first": 0, "last": 41 },
//!   "receipts": [ { "index": 3, "receipt": "<hex of the exact Receipt bytes>",
//!                   "inclusion_proof": ["<hex>", …],
//!                   "event": "ACCEPTED", "time_unix_ms": 1, "time": "…", "actor": "…", … } ] }
//! ```
//!
//! The signed parts are `tree_head.{tree_head,signature,key_id}` and each
//! receipt's `receipt` bytes, tied to the head by its `inclusion_proof`.
//! Every other field is a copy for people reading the file, and [`verify`]
//! requires it to be exactly what the signed bytes say: the tree head's
//! `tree_size`, `root_hash` and `time_unix_ms`, and each receipt's `index`,
//! `event`, `time_unix_ms`, `time`, `actor`, `from`, `document_id`,
//! `recipient`, `status_code` and `description` (a field left out counts as
//! empty). An edited word fails naming the receipt and the field, so what a
//! verified export shows is what the hub signed. Fields the format does not
//! define are refused. The JSON Schema is `docs/audit-export.schema.json`.
//!
//! `checkpoint` (optional) is the hub's c2sp.org/tlog-checkpoint note with
//! the cosignatures its peers' witnesses gave it, and the consistency proof
//! from its size to the tree head's: `{ "note": "<the signed note>",
//! "consistency_proof": ["<hex>", …] }`. It is signed by the hub and by
//! each witness; `truc audit verify --witnesses K` checks it (older
//! verifiers refuse an export that has it, as they refuse every field they
//! do not know).
//!
//! `complete_range` is written only for a query without a document, agency
//! or time filter; it claims that every index in `first..=last` is present,
//! so a dropped receipt is detected. Like `query`, it is not signed: whoever
//! strips it only loses the claim, and the verification report says whether
//! it was made.

use std::fmt;
use std::path::Path;

use prost::Message;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use truc_core::merkle::{self, Hash};
use truc_core::tree_head::TreeHeadVerifier;
use truc_core::unhex;
use truc_core::CoreError;
use truc_proto::names::Wire;
use truc_proto::v1::{ListReceiptsRequest, Receipt, ReceiptEvent, SignedTreeHead, StatusCode, TreeHead};

use crate::{Client, ClientError};

pub mod hops;
mod witnessed;

pub use witnessed::{
    open_cosigned, tlog_proofs, verify_tlog_proof, ExportCheckpoint, ProofReport, WitnessPolicy, Witnessed,
};

/// The `format` of an [`AuditExport`].
pub const EXPORT_FORMAT: &str = "truc-audit-export/1";

/// How many times [`export`] lists the receipts before giving up on getting
/// every page against the same tree head.
pub const EXPORT_ATTEMPTS: u32 = 3;

/// Receipts per page when exporting (the hub's maximum).
const EXPORT_PAGE: u32 = 1000;

/// Why an audit call to the hub failed.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The hub refused or could not answer (the code:
    /// [`ClientError::code`]).
    #[error(transparent)]
    Rpc(#[from] ClientError),
    /// The log grew between pages on every attempt, so no single tree head
    /// covers the whole listing.
    #[error(
        "the receipt log grew while listing, on each of {0} attempts, so the receipts are not all proven against \
         one tree head; try again, or narrow the query"
    )]
    Unstable(u32),
    /// A tree head from the hub (or in the state file) does not verify with
    /// the hub's key, or is malformed.
    #[error("{0}")]
    BadTreeHead(String),
    /// The hub's latest tree head does not extend the one seen before: the
    /// history was rewritten.
    #[error("{0}")]
    Inconsistent(String),
    /// The watch state file cannot be read or written.
    #[error("{0}")]
    State(String),
}

/// What an export was asked for. Informational: [`verify`] does not trust
/// it (it is not signed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The document's sender, with `document_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_from: Option<String>,
    /// The sender's document id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    /// Receipts naming this agency as sender, recipient or actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// Receipts at or after this time, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_unix_ms: Option<i64>,
    /// Receipts at or before this time, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_unix_ms: Option<i64>,
}

impl AuditQuery {
    /// Every receipt in the log.
    pub fn all() -> AuditQuery {
        AuditQuery::default()
    }

    /// The receipts of one document, named by its sender and the sender's id.
    pub fn document(from: &str, document_id: &str) -> AuditQuery {
        AuditQuery {
            document_from: Some(from.into()),
            document_id: Some(document_id.into()),
            ..AuditQuery::default()
        }
    }

    /// Every receipt naming `agency` as sender, recipient or actor.
    pub fn agency(agency: &str) -> AuditQuery {
        AuditQuery {
            agency: Some(agency.into()),
            ..AuditQuery::default()
        }
    }

    /// Whether the query lists the whole log (no filter, no time range), so
    /// that an export of it is complete.
    pub fn is_unfiltered(&self) -> bool {
        self.document_id.is_none()
            && self.agency.is_none()
            && self.since_unix_ms.is_none()
            && self.until_unix_ms.is_none()
    }

    /// The first page's request.
    pub fn request(&self) -> ListReceiptsRequest {
        ListReceiptsRequest {
            document_from: self.document_from.clone().unwrap_or_default(),
            document_id: self.document_id.clone().unwrap_or_default(),
            agency: self.agency.clone().unwrap_or_default(),
            since_unix_ms: self.since_unix_ms.unwrap_or(0),
            until_unix_ms: self.until_unix_ms.unwrap_or(0),
            page_token: 0,
            page_size: EXPORT_PAGE,
        }
    }
}

/// A signed tree head as written in an export: the signed bytes, signature
/// and key id (checked) and the decoded fields (which must match).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportTreeHead {
    /// Hex of the serialized `TreeHead` the hub signed.
    pub tree_head: String,
    /// Hex of the Ed25519 signature over those bytes.
    pub signature: String,
    /// Hex of SHA-256 of the hub's receipt public key.
    pub key_id: String,
    /// Leaves in the tree.
    pub tree_size: u64,
    /// Hex of the Merkle root.
    pub root_hash: String,
    /// When the hub committed the batch, Unix ms.
    pub time_unix_ms: i64,
}

impl ExportTreeHead {
    /// From a signed tree head whose bytes decode to `head`.
    pub fn new(sth: &SignedTreeHead, head: &TreeHead) -> ExportTreeHead {
        ExportTreeHead {
            tree_head: truc_core::hex(&sth.tree_head),
            signature: truc_core::hex(&sth.signature),
            key_id: truc_core::hex(&sth.key_id),
            tree_size: head.tree_size,
            root_hash: truc_core::hex(&head.root_hash),
            time_unix_ms: head.time_unix_ms,
        }
    }

    /// The signed tree head, from hex.
    pub fn signed(&self) -> Result<SignedTreeHead, String> {
        Ok(SignedTreeHead {
            tree_head: unhex(&self.tree_head).map_err(|e| format!("tree_head: {e}"))?,
            signature: unhex(&self.signature).map_err(|e| format!("signature: {e}"))?,
            key_id: unhex(&self.key_id).map_err(|e| format!("key_id: {e}"))?,
        })
    }
}

/// `complete_range`: every index in `first..=last` is in the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexRange {
    /// The first index.
    pub first: u64,
    /// The last index (inclusive).
    pub last: u64,
}

/// One receipt in an export: its exact bytes and inclusion proof, and
/// decoded fields for people, which [`verify`] requires to be exactly what
/// the bytes say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportReceipt {
    /// Leaf index in the log.
    pub index: u64,
    /// Hex of the serialized `Receipt`: the leaf data.
    pub receipt: String,
    /// Hex hashes of the RFC 6962 audit path, bottom up.
    pub inclusion_proof: Vec<String>,
    /// Decoded: the event, e.g. `DELIVERED`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub event: String,
    /// Decoded: when the hub recorded it, Unix ms.
    #[serde(default)]
    pub time_unix_ms: i64,
    /// Decoded: the same time, `YYYY-MM-DDThh:mm:ss.mmmZ`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time: String,
    /// Decoded: who caused it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    /// Decoded: the document's sender.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// Decoded: the sender's document id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub document_id: String,
    /// Decoded: the recipient it is about.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recipient: String,
    /// Decoded: a reported status, e.g. `03 REGISTERED`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_code: String,
    /// Decoded: the status description or the receipt's detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl ExportReceipt {
    /// From receipt bytes and their proof. The decoded fields are filled in
    /// when the bytes decode.
    pub fn new(index: u64, bytes: &[u8], proof: &[Vec<u8>]) -> ExportReceipt {
        let mut out = ExportReceipt {
            index,
            receipt: truc_core::hex(bytes),
            inclusion_proof: proof.iter().map(|h| truc_core::hex(h)).collect(),
            ..ExportReceipt::default()
        };
        if let Ok(r) = Receipt::decode(bytes) {
            out.event = export_event(r.event);
            out.time_unix_ms = r.time_unix_ms;
            out.time = rfc3339(r.time_unix_ms);
            out.actor = r.actor;
            out.from = r.from;
            out.document_id = r.document_id;
            out.recipient = r.recipient;
            out.status_code = export_status(r.status_code);
            out.description = if r.description.is_empty() {
                r.detail
            } else {
                r.description
            };
        }
        out
    }
}

impl ExportReceipt {
    /// The first readable field that differs from `signed` (the same receipt
    /// decoded from its signed bytes): its name, what is written, what is
    /// signed.
    fn first_edited_field(&self, signed: &ExportReceipt) -> Option<(&'static str, String, String)> {
        let text = |name, a: &String, b: &String| (a != b).then(|| (name, format!("{a:?}"), format!("{b:?}")));
        if self.time_unix_ms != signed.time_unix_ms {
            return Some((
                "time_unix_ms",
                self.time_unix_ms.to_string(),
                signed.time_unix_ms.to_string(),
            ));
        }
        text("event", &self.event, &signed.event)
            .or_else(|| text("time", &self.time, &signed.time))
            .or_else(|| text("actor", &self.actor, &signed.actor))
            .or_else(|| text("from", &self.from, &signed.from))
            .or_else(|| text("document_id", &self.document_id, &signed.document_id))
            .or_else(|| text("recipient", &self.recipient, &signed.recipient))
            .or_else(|| text("status_code", &self.status_code, &signed.status_code))
            .or_else(|| text("description", &self.description, &signed.description))
    }
}

/// Receipts with their proofs and the one signed tree head they are proven
/// against; see the [module documentation](self) for the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditExport {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// What was asked (not signed).
    #[serde(default)]
    pub query: AuditQuery,
    /// The head every inclusion proof is against.
    pub tree_head: ExportTreeHead,
    /// For a complete listing: every index in the range is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_range: Option<IndexRange>,
    /// The hub's checkpoint with its witnesses' cosignatures, and the
    /// proof that the tree head extends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<ExportCheckpoint>,
    /// The receipts, oldest first.
    pub receipts: Vec<ExportReceipt>,
}

impl AuditExport {
    /// Pretty JSON, as `truc audit receipts --out` writes it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parse an export's JSON (without checking anything but its shape).
    pub fn from_json(json: &str) -> Result<AuditExport, VerifyError> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| VerifyError::Format(format!("not JSON: {e}")))?;
        match v.get("format").and_then(|f| f.as_str()) {
            Some(EXPORT_FORMAT) => {}
            Some(other) => return Err(unknown_format(other)),
            None => return Err(VerifyError::Format(format!("no \"format\": {EXPORT_FORMAT:?}"))),
        }
        serde_json::from_value(v).map_err(|e| VerifyError::Format(e.to_string()))
    }
}

fn unknown_format(format: &str) -> VerifyError {
    VerifyError::Format(if format.starts_with("truc-audit-export/") {
        format!(
            "format {format:?} is a version this truc does not know (it reads {EXPORT_FORMAT:?}); verify the file \
             with the truc that wrote it or a later one"
        )
    } else {
        format!("format is {format:?}, expected {EXPORT_FORMAT:?}")
    })
}

/// List every receipt matching `query` and package them against one signed
/// tree head.
///
/// The hub proves each page against its latest head, so when receipts are
/// recorded while the pages are fetched, later pages carry a later head than
/// earlier ones. Pages are as large as the hub allows (1000 receipts), so
/// most exports are a single page; when the heads of the pages differ the
/// whole listing is fetched again from the start, up to [`EXPORT_ATTEMPTS`]
/// times in all, and [`AuditError::Unstable`] is returned if no attempt
/// saw one head throughout. The head is checked with `verifier` when one is
/// given.
pub async fn export(
    client: &Client,
    query: &AuditQuery,
    verifier: Option<&TreeHeadVerifier>,
) -> Result<AuditExport, AuditError> {
    export_paged(client, query, verifier, EXPORT_PAGE).await
}

/// [`export`] with pages of `page_size` receipts (1..=1000).
pub async fn export_paged(
    client: &Client,
    query: &AuditQuery,
    verifier: Option<&TreeHeadVerifier>,
    page_size: u32,
) -> Result<AuditExport, AuditError> {
    let req = ListReceiptsRequest {
        page_size,
        ..query.request()
    };
    for _ in 0..EXPORT_ATTEMPTS {
        let pages = client.all_receipts(req.clone()).await?;
        let Some(sth) = pages.first().and_then(|p| p.tree_head.clone()) else {
            return Err(AuditError::BadTreeHead(
                "the hub sent receipts without a tree head".into(),
            ));
        };
        if pages.iter().any(|p| p.tree_head.as_ref() != Some(&sth)) {
            continue;
        }
        let head = match verifier {
            Some(v) => v.verify(&sth).map_err(|e| bad_head("the hub's tree head", e))?,
            None => TreeHead::decode(sth.tree_head.as_slice())
                .map_err(|_| AuditError::BadTreeHead("the hub's tree head is malformed".into()))?,
        };
        let mut receipts = Vec::new();
        for r in pages.iter().flat_map(|p| &p.receipts) {
            let index = Receipt::decode(r.receipt.as_slice())
                .map_err(|_| AuditError::BadTreeHead("the hub sent a receipt that does not decode".into()))?
                .index;
            receipts.push(ExportReceipt::new(index, &r.receipt, &r.inclusion_proof));
        }
        let complete_range = match (query.is_unfiltered(), receipts.first(), receipts.last()) {
            (true, Some(first), Some(last)) => Some(IndexRange {
                first: first.index,
                last: last.index,
            }),
            _ => None,
        };
        // A hub that predates witnessing does not know GetCheckpoints.
        let checkpoint = match witnessed::export_checkpoint(client, head.tree_size).await {
            Err(AuditError::Rpc(e)) if e.code() == Some(tonic::Code::Unimplemented) => None,
            r => r?,
        };
        return Ok(AuditExport {
            format: EXPORT_FORMAT.into(),
            query: query.clone(),
            tree_head: ExportTreeHead::new(&sth, &head),
            complete_range,
            checkpoint,
            receipts,
        });
    }
    Err(AuditError::Unstable(EXPORT_ATTEMPTS))
}

/// What [`verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Receipts whose signature (through the tree head) and inclusion verified.
    pub receipts: usize,
    /// The signed tree head's size.
    pub tree_size: u64,
    /// Its root, hex.
    pub root_hash: String,
    /// When the hub signed it, Unix ms.
    pub time_unix_ms: i64,
    /// The key id, hex.
    pub key_id: String,
    /// The export's completeness claim, checked: no index in it is missing.
    pub complete_range: Option<IndexRange>,
    /// With a witness policy: the cosigned checkpoint every receipt is
    /// under.
    pub witnessed: Option<Witnessed>,
}

/// Why an export does not verify. Messages name the receipt: its position
/// in the file (`#1` is the first), its index, and its event and document
/// when its bytes decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// Not an export, or not this version.
    #[error("not a Truc audit export: {0}")]
    Format(String),
    /// The hub key cannot be used.
    #[error("hub key: {0}")]
    Key(String),
    /// The tree head's signature or fields do not verify.
    #[error("tree head: {0}")]
    TreeHead(String),
    /// One receipt fails.
    #[error("{label}: {problem}")]
    Receipt {
        /// Position in the file, 1-based.
        position: usize,
        /// The index it is listed at.
        index: u64,
        /// `receipt #p (index i, EVENT of "document")`.
        label: String,
        /// What is wrong.
        problem: String,
    },
    /// Two receipts are out of order (or one is listed twice).
    #[error("{label} comes after {previous_label}: {problem}")]
    Order {
        /// Position of the later one in the file, 1-based.
        position: usize,
        /// Its index.
        index: u64,
        /// Index of the one before it.
        previous_index: u64,
        /// The later receipt.
        label: String,
        /// The one before it.
        previous_label: String,
        /// What is wrong.
        problem: String,
    },
    /// The witnesses' part fails: no cosigned checkpoint, too few
    /// cosignatures, or a checkpoint the tree head does not extend.
    #[error("witnesses: {0}")]
    Witness(String),
    /// The export claims a complete range but an index in it is absent.
    #[error("receipt index {index} is missing: {context}")]
    Missing {
        /// The first absent index.
        index: u64,
        /// Where it should have been.
        context: String,
    },
}

/// Check an export offline with the hub's receipt public key (PEM): the tree
/// head's key id and Ed25519 signature, that its written fields match the
/// signed bytes, then each receipt in file order (its bytes decode, its
/// `index` field equals the index it is listed at, every readable field
/// equals what its bytes say, indexes strictly increase, and its leaf hash
/// is included at that index in the signed tree), and finally that no index
/// of `complete_range` is missing.
pub fn verify(export_json: &str, hub_key_pem: &str) -> Result<VerifyReport, VerifyError> {
    let verifier = TreeHeadVerifier::from_pem(hub_key_pem).map_err(|e| VerifyError::Key(core_text(&e)))?;
    verify_export(&AuditExport::from_json(export_json)?, &verifier)
}

/// [`verify_export`], then the receipts under a checkpoint cosigned as
/// `policy` requires (`truc audit verify --witnesses K --witness-key …`):
/// signed by the hub's receipt key, cosigned by at least `policy.required`
/// of its witness keys, extended by the tree head (its consistency proof),
/// every receipt's index below its size.
pub fn verify_export_witnessed(
    export: &AuditExport,
    verifier: &TreeHeadVerifier,
    policy: &WitnessPolicy,
) -> Result<VerifyReport, VerifyError> {
    let mut report = verify_export(export, verifier)?;
    let sth = export.tree_head.signed().map_err(VerifyError::TreeHead)?;
    let head = verifier
        .verify(&sth)
        .map_err(|e| VerifyError::TreeHead(core_text(&e)))?;
    report.witnessed = Some(witnessed::verify_witnessed(export, &head, verifier, policy)?);
    Ok(report)
}

/// [`verify`] on a parsed export.
pub fn verify_export(export: &AuditExport, verifier: &TreeHeadVerifier) -> Result<VerifyReport, VerifyError> {
    if export.format != EXPORT_FORMAT {
        return Err(unknown_format(&export.format));
    }
    let th = &export.tree_head;
    let sth = th.signed().map_err(VerifyError::TreeHead)?;
    let head = verifier
        .verify(&sth)
        .map_err(|e| VerifyError::TreeHead(core_text(&e)))?;
    let root = Hash::try_from(head.root_hash.as_slice())
        .map_err(|_| VerifyError::TreeHead("root hash is not 32 bytes".into()))?;
    let mismatch = |field: &str, written: String, signed: String| {
        VerifyError::TreeHead(format!(
            "{field} is written as {written} but the signed tree head says {signed}"
        ))
    };
    if th.tree_size != head.tree_size {
        return Err(mismatch(
            "tree_size",
            th.tree_size.to_string(),
            head.tree_size.to_string(),
        ));
    }
    if !th.root_hash.eq_ignore_ascii_case(&truc_core::hex(&head.root_hash)) {
        return Err(mismatch(
            "root_hash",
            th.root_hash.clone(),
            truc_core::hex(&head.root_hash),
        ));
    }
    if th.time_unix_ms != head.time_unix_ms {
        return Err(mismatch(
            "time_unix_ms",
            th.time_unix_ms.to_string(),
            head.time_unix_ms.to_string(),
        ));
    }

    let mut previous: Option<(u64, String)> = None;
    for (i, r) in export.receipts.iter().enumerate() {
        let position = i + 1;
        let bytes = unhex(&r.receipt);
        let decoded = bytes.as_ref().ok().and_then(|b| Receipt::decode(b.as_slice()).ok());
        let label = receipt_label(position, r.index, decoded.as_ref());
        let fail = |problem: String| VerifyError::Receipt {
            position,
            index: r.index,
            label: label.clone(),
            problem,
        };
        let bytes = bytes.map_err(|e| fail(format!("receipt bytes are not hex: {e}")))?;
        let receipt = decoded.ok_or_else(|| fail("receipt bytes do not decode as a Receipt".into()))?;
        if receipt.index != r.index {
            return Err(fail(format!(
                "it is listed at index {} but its signed bytes say index {}",
                r.index, receipt.index
            )));
        }
        if let Some((field, written, signed)) = r.first_edited_field(&ExportReceipt::new(r.index, &bytes, &[])) {
            return Err(fail(format!(
                "its {field} is written as {written} but the signed receipt bytes say {signed}"
            )));
        }
        if let Some((prev_index, prev_label)) = &previous {
            if r.index <= *prev_index {
                return Err(VerifyError::Order {
                    position,
                    index: r.index,
                    previous_index: *prev_index,
                    label,
                    previous_label: prev_label.clone(),
                    problem: if r.index == *prev_index {
                        "the same receipt is listed twice".into()
                    } else {
                        "receipts are out of order (indexes must increase)".into()
                    },
                });
            }
        }
        if r.index >= head.tree_size {
            return Err(fail(format!(
                "index {} is beyond the signed tree head of size {}",
                r.index, head.tree_size
            )));
        }
        let proof = hex_hashes(&r.inclusion_proof)
            .ok_or_else(|| fail("inclusion proof has a hash that is not 32 bytes of hex".into()))?;
        merkle::verify_inclusion(&merkle::leaf_hash(&bytes), r.index, head.tree_size, &proof, &root)
            .map_err(|_| fail("inclusion proof does not match the signed tree head".into()))?;
        previous = Some((r.index, label));
    }

    if let Some(range) = export.complete_range {
        check_complete(range, &export.receipts, head.tree_size)?;
    }
    Ok(VerifyReport {
        receipts: export.receipts.len(),
        tree_size: head.tree_size,
        root_hash: truc_core::hex(&head.root_hash),
        time_unix_ms: head.time_unix_ms,
        key_id: truc_core::hex(&sth.key_id),
        complete_range: export.complete_range,
        witnessed: None,
    })
}

/// Hex strings as 32-byte hashes, if every one is.
fn hex_hashes(v: &[String]) -> Option<Vec<Hash>> {
    v.iter()
        .map(|h| unhex(h).ok().and_then(|b| Hash::try_from(b.as_slice()).ok()))
        .collect()
}

/// With indexes already known to increase strictly: every index of `range`
/// is present.
fn check_complete(range: IndexRange, receipts: &[ExportReceipt], tree_size: u64) -> Result<(), VerifyError> {
    if range.first > range.last || range.last >= tree_size {
        return Err(VerifyError::Format(format!(
            "complete_range {}..={} does not fit the signed tree of size {tree_size}",
            range.first, range.last
        )));
    }
    let label = |i: usize| {
        let r = &receipts[i];
        let decoded = unhex(&r.receipt).ok().and_then(|b| Receipt::decode(b.as_slice()).ok());
        receipt_label(i + 1, r.index, decoded.as_ref())
    };
    let mut expected = range.first;
    for (i, r) in receipts.iter().enumerate() {
        if r.index < range.first || r.index > range.last {
            return Err(VerifyError::Format(format!(
                "{} is outside complete_range {}..={}",
                label(i),
                range.first,
                range.last
            )));
        }
        if r.index != expected {
            let context = if i == 0 {
                format!(
                    "the export claims {}..={} but starts with {}",
                    range.first,
                    range.last,
                    label(i)
                )
            } else {
                format!("expected between {} and {}", label(i - 1), label(i))
            };
            return Err(VerifyError::Missing {
                index: expected,
                context,
            });
        }
        expected = r.index + 1;
    }
    if expected <= range.last {
        let context = match receipts.len() {
            0 => format!("the export claims {}..={} but has no receipts", range.first, range.last),
            n => format!(
                "the export claims {}..={} but ends with {}",
                range.first,
                range.last,
                label(n - 1)
            ),
        };
        return Err(VerifyError::Missing {
            index: expected,
            context,
        });
    }
    Ok(())
}

/// The last signed tree head an auditor saw, kept between runs of
/// `truc audit watch` in a JSON file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchState {
    /// Leaves in the tree.
    pub tree_size: u64,
    /// Hex of the root.
    pub root_hash: String,
    /// Hex of the signed `TreeHead` bytes.
    pub tree_head: String,
    /// Hex of the hub's signature over them.
    pub signature: String,
    /// Hex of the key id.
    pub key_id: String,
    /// When the hub signed it, Unix ms.
    pub time_unix_ms: i64,
    /// When this auditor first saw it, Unix ms.
    pub seen_at_unix_ms: i64,
}

impl WatchState {
    /// From a verified signed tree head, seen now.
    pub fn new(sth: &SignedTreeHead, head: &TreeHead) -> WatchState {
        WatchState {
            tree_size: head.tree_size,
            root_hash: truc_core::hex(&head.root_hash),
            tree_head: truc_core::hex(&sth.tree_head),
            signature: truc_core::hex(&sth.signature),
            key_id: truc_core::hex(&sth.key_id),
            time_unix_ms: head.time_unix_ms,
            seen_at_unix_ms: truc_core::now_unix_ms(),
        }
    }

    /// The state in `path`, or `None` when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<WatchState>, AuditError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(AuditError::State(format!("cannot read {}: {e}", path.display()))),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| AuditError::State(format!("{} is not a watch state file: {e}", path.display())))
    }

    /// Write the state to `path` (a temporary file renamed over it, so a
    /// crash leaves the old state or the new, never half of one).
    pub fn save(&self, path: &Path) -> Result<(), AuditError> {
        let err = |e: std::io::Error| AuditError::State(format!("cannot write {}: {e}", path.display()));
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let json = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(&tmp, json + "\n").map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// The signed tree head it holds, checked with `verifier` again (so an
    /// edited state file is noticed), with its decoded fields.
    pub fn verified(&self, verifier: &TreeHeadVerifier) -> Result<TreeHead, AuditError> {
        let sth = ExportTreeHead {
            tree_head: self.tree_head.clone(),
            signature: self.signature.clone(),
            key_id: self.key_id.clone(),
            tree_size: self.tree_size,
            root_hash: self.root_hash.clone(),
            time_unix_ms: self.time_unix_ms,
        }
        .signed()
        .map_err(|e| AuditError::State(format!("the saved tree head is malformed: {e}")))?;
        let head = verifier.verify(&sth).map_err(|e| bad_head("the saved tree head", e))?;
        if head.tree_size != self.tree_size || !self.root_hash.eq_ignore_ascii_case(&truc_core::hex(&head.root_hash)) {
            return Err(AuditError::State(
                "the saved tree_size or root_hash differs from the signed tree head it is saved with".into(),
            ));
        }
        Ok(head)
    }
}

impl fmt::Display for WatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tree head of size {} root {} signed at {}",
            self.tree_size,
            self.root_hash,
            rfc3339(self.time_unix_ms)
        )
    }
}

/// The signed tree heads the hub has from size `from_size` on, in increasing
/// size, at most `max` of them (following pages): the sizes an auditor can
/// ask a head or a consistency proof for. Each head is decoded from its
/// signed bytes, and checked with `verifier` when one is given; a head out
/// of order or below `from_size` is refused.
pub async fn tree_heads(
    client: &Client,
    from_size: u64,
    max: usize,
    verifier: Option<&TreeHeadVerifier>,
) -> Result<Vec<(SignedTreeHead, TreeHead)>, AuditError> {
    let mut out: Vec<(SignedTreeHead, TreeHead)> = Vec::new();
    let mut from = from_size;
    while out.len() < max {
        let limit = (max - out.len()).min(EXPORT_PAGE as usize) as u32;
        let page = client.list_tree_heads(from, limit).await?;
        for sth in page.tree_heads {
            let head = match verifier {
                Some(v) => v.verify(&sth).map_err(|e| bad_head("a tree head from the hub", e))?,
                None => TreeHead::decode(sth.tree_head.as_slice())
                    .map_err(|_| AuditError::BadTreeHead("the hub sent a malformed tree head".into()))?,
            };
            let floor = out.last().map_or(from_size, |(_, h)| h.tree_size + 1);
            if head.tree_size < floor {
                return Err(AuditError::BadTreeHead(format!(
                    "the hub listed a tree head of size {} where sizes of at least {floor} were due",
                    head.tree_size
                )));
            }
            out.push((sth, head));
        }
        if page.next_from_size == 0 || page.next_from_size <= from {
            break;
        }
        from = page.next_from_size;
    }
    out.truncate(max);
    Ok(out)
}

/// The hub's latest signed tree head, verified.
pub async fn latest_head(client: &Client, verifier: &TreeHeadVerifier) -> Result<WatchState, AuditError> {
    let sth = client.tree_head(0).await?;
    let head = verifier
        .verify(&sth)
        .map_err(|e| bad_head("the hub's latest tree head", e))?;
    Ok(WatchState::new(&sth, &head))
}

/// Prove that the hub's latest signed tree head extends `state`, the last
/// one seen: its signature verifies; when the log grew, the hub's
/// consistency proof between the two sizes verifies (RFC 9162 §2.1.4.2);
/// when it did not, the roots are equal; a log that shrank is a rewritten
/// history. Returns the state to keep: the new head, or `state` itself when
/// nothing changed.
pub async fn check_consistency(
    client: &Client,
    verifier: &TreeHeadVerifier,
    state: &WatchState,
) -> Result<WatchState, AuditError> {
    let old = state.verified(verifier)?;
    let new = latest_head(client, verifier).await?;
    let (m, n) = (old.tree_size, new.tree_size);
    let not_consistent = |why: &str| {
        AuditError::Inconsistent(format!(
            "tree head of size {n} is not consistent with the tree head of size {m} seen at {}: {why}",
            rfc3339(state.seen_at_unix_ms)
        ))
    };
    if n < m {
        return Err(not_consistent(&format!(
            "the log shrank from {m} to {n}: history rewritten"
        )));
    }
    let old_root = Hash::try_from(old.root_hash.as_slice()).map_err(|_| not_consistent("bad old root"))?;
    let new_root = unhex(&new.root_hash)
        .ok()
        .and_then(|b| Hash::try_from(b.as_slice()).ok())
        .ok_or_else(|| not_consistent("bad new root"))?;
    if n == m {
        return if old_root == new_root {
            Ok(state.clone())
        } else {
            Err(not_consistent("same size, different root: history rewritten"))
        };
    }
    let proof = client
        .consistency_proof(m, n)
        .await?
        .iter()
        .map(|h| Hash::try_from(h.as_slice()))
        .collect::<Result<Vec<Hash>, _>>()
        .map_err(|_| not_consistent("the consistency proof has a hash that is not 32 bytes"))?;
    merkle::verify_consistency(m, n, &old_root, &new_root, &proof).map_err(|e| {
        not_consistent(&format!(
            "{}; the first {m} receipts are not the ones seen before: history rewritten",
            core_text(&e)
        ))
    })?;
    Ok(new)
}

fn bad_head(what: &str, e: CoreError) -> AuditError {
    AuditError::BadTreeHead(format!("{what} does not verify with the hub's key: {}", core_text(&e)))
}

fn core_text(e: &CoreError) -> String {
    match e {
        CoreError::BadProof(s) | CoreError::BadKey(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `receipt #3 (index 17, DELIVERED of "000.00.00.G22,…")`.
fn receipt_label(position: usize, index: u64, r: Option<&Receipt>) -> String {
    match r {
        Some(r) if !r.document_id.is_empty() => format!(
            "receipt #{position} (index {index}, {} of {:?})",
            export_event(r.event),
            r.document_id
        ),
        Some(r) => format!("receipt #{position} (index {index}, {})", export_event(r.event)),
        None => format!("receipt #{position} (index {index})"),
    }
}

/// A name as the export format writes it: the value's one name
/// (`truc_proto::names`) in upper case with `_` between words, which is
/// the proto constant's spelling (`DEAD_LETTERED`). Exports already
/// written say so, and [`verify`] compares these fields word for word.
fn export_name(name: impl fmt::Display) -> String {
    name.to_string().to_ascii_uppercase().replace('-', "_")
}

/// `ACCEPTED`, `DELIVERED`, …; `UNKNOWN(14)` for an event this build does
/// not know.
fn export_event(event: i32) -> String {
    export_name(Wire::<ReceiptEvent>::from(event))
}

/// `03 REGISTERED`; empty for none.
fn export_status(code: i32) -> String {
    match Wire::<StatusCode>::from(code) {
        Wire::Known(StatusCode::Unspecified) => String::new(),
        status => format!("{code:02} {}", export_name(status)),
    }
}

/// Unix ms as `YYYY-MM-DDThh:mm:ss.mmmZ`.
pub fn rfc3339(ms: i64) -> String {
    let date = truc_core::document::date_for_document_id(ms).replace('/', "-");
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times_as_the_export_writes_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(export_event(2), "DELIVERED");
        assert_eq!(export_event(3), "LEASE_EXPIRED");
        assert_eq!(export_event(99), "UNKNOWN(99)");
        assert_eq!(export_status(3), "03 REGISTERED");
        assert_eq!(export_status(13), "13 TAKE_BACK");
        assert_eq!(export_status(0), "");
    }

    fn range_export(indexes: &[u64]) -> Vec<ExportReceipt> {
        indexes
            .iter()
            .map(|&index| ExportReceipt {
                index,
                ..ExportReceipt::default()
            })
            .collect()
    }

    #[test]
    fn complete_range_names_the_missing_index() {
        let r = IndexRange { first: 0, last: 4 };
        assert!(check_complete(r, &range_export(&[0, 1, 2, 3, 4]), 5).is_ok());
        for (list, missing) in [
            (&[0, 1, 3, 4][..], 2),
            (&[1, 2, 3, 4][..], 0),
            (&[0, 1, 2, 3][..], 4),
            (&[][..], 0),
        ] {
            match check_complete(r, &range_export(list), 5) {
                Err(VerifyError::Missing { index, .. }) => assert_eq!(index, missing, "{list:?}"),
                other => panic!("{list:?}: {other:?}"),
            }
        }
        assert!(matches!(
            check_complete(IndexRange { first: 0, last: 5 }, &range_export(&[0, 1, 2, 3, 4, 5]), 5),
            Err(VerifyError::Format(_))
        ));
    }
}
