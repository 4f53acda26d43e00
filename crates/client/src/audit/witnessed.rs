//! Receipts under a checkpoint that witnesses cosigned: what `truc audit
//! verify --witnesses K --witness-key VKEY…` requires, so that no single
//! operator can show auditors a history of its own making.
//!
//! An export carries, besides its signed tree head (size `N`), the hub's
//! checkpoint with its witnesses' cosignatures (size `M ≤ N`) and the
//! consistency proof from `M` to `N`. A receipt at index `i < M` proven in
//! the tree of `N` is then in the tree of `M` that the witnesses saw. A
//! receipt recorded after `M` is not witnessed yet.
//!
//! The same receipts can be written as c2sp.org/tlog-proof files
//! ([`tlog_proofs`]): the receipt bytes as `extra`, the inclusion proof in
//! the tree of `M`, the cosigned checkpoint.

use prost::Message;
use serde::{Deserialize, Serialize};
use truc_core::c2sp::note::TYPE_ED25519;
use truc_core::c2sp::proof::TlogProof;
use truc_core::c2sp::{Checkpoint, Note, NoteVerifier};
use truc_core::merkle::{self, Hash};
use truc_core::tree_head::TreeHeadVerifier;
use truc_core::unhex;
use truc_proto::v1::{Receipt, TreeHead};

use super::{AuditError, AuditExport, VerifyError};
use crate::Client;

/// The cosigned checkpoint of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportCheckpoint {
    /// The signed note: the hub's checkpoint (origin
    /// `<hub id>.truc/receipts`), its signature by the receipt key, then
    /// the witnesses' cosignatures.
    pub note: String,
    /// Hex hashes of the RFC 9162 consistency proof from the checkpoint's
    /// size to the export's tree head (empty when they are equal).
    pub consistency_proof: Vec<String>,
}

/// Which witnesses an auditor trusts, and how many must have cosigned.
#[derive(Debug, Clone)]
pub struct WitnessPolicy {
    /// Witness keys (cosignature type `0x04`).
    pub keys: Vec<NoteVerifier>,
    /// Cosignatures needed, of distinct keys among `keys`.
    pub required: usize,
}

impl WitnessPolicy {
    /// From verifier key strings (`name+keyid+base64`, as a hub's `trucd
    /// check-config` prints its witness key), each a cosignature key.
    pub fn new(vkeys: &[String], required: usize) -> Result<WitnessPolicy, VerifyError> {
        let keys = vkeys
            .iter()
            .map(|k| {
                let v = NoteVerifier::from_vkey(k).map_err(|e| VerifyError::Witness(e.to_string()))?;
                if v.signature_type() == TYPE_ED25519 {
                    return Err(VerifyError::Witness(format!(
                        "{} is a log's checkpoint key, not a witness key (cosignature keys are \
                         <hub id>.truc/witness+...)",
                        v.key()
                    )));
                }
                Ok(v)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if required > keys.len() {
            return Err(VerifyError::Witness(format!(
                "{required} witnesses are required but {} witness keys are given: give each with --witness-key",
                keys.len()
            )));
        }
        Ok(WitnessPolicy { keys, required })
    }
}

/// What the witnesses' part of a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    /// The cosigned checkpoint's size.
    pub size: u64,
    /// The witness keys (`name+keyid`) whose cosignatures verified.
    pub cosigned_by: Vec<String>,
}

fn witness_err(s: impl Into<String>) -> VerifyError {
    VerifyError::Witness(s.into())
}

/// The hub's checkpoint verifier for `origin`: the receipt key, named
/// after the log.
fn log_key(verifier: &TreeHeadVerifier, origin: &str) -> Result<NoteVerifier, VerifyError> {
    if !origin.ends_with(".truc/receipts") {
        return Err(witness_err(format!(
            "the checkpoint's origin {origin:?} is not a Truc hub's (<hub id>.truc/receipts)"
        )));
    }
    let spki = verifier.public_key_spki_der();
    NoteVerifier::new(origin, TYPE_ED25519, &spki[spki.len().saturating_sub(32)..])
        .map_err(|e| witness_err(e.to_string()))
}

/// Opens a cosigned checkpoint note: signed by the hub's receipt key, then
/// counts the cosignatures of `policy`'s keys that verify (a known key's
/// that fails refuses the note). Fails with fewer than `required`.
pub fn open_cosigned(
    note: &str,
    verifier: &TreeHeadVerifier,
    policy: &WitnessPolicy,
) -> Result<(Checkpoint, Vec<String>), VerifyError> {
    let parsed = Note::parse(note.as_bytes()).map_err(|e| witness_err(format!("the checkpoint: {e}")))?;
    let origin = parsed.text.split('\n').next().unwrap_or_default();
    let (cp, parsed) = Checkpoint::open(note.as_bytes(), &log_key(verifier, origin)?)
        .map_err(|e| witness_err(format!("the checkpoint does not verify with the hub's key: {e}")))?;
    let keys: Vec<&NoteVerifier> = policy.keys.iter().collect();
    let verified = match parsed.verify(&keys) {
        Ok(v) => v,
        Err(truc_core::c2sp::NoteError::NotSigned(_)) => Vec::new(),
        Err(e) => return Err(witness_err(format!("a cosignature of the checkpoint fails: {e}"))),
    };
    let cosigned_by: Vec<String> = verified.iter().map(|&i| policy.keys[i].key()).collect();
    if cosigned_by.len() < policy.required {
        return Err(witness_err(format!(
            "the checkpoint of size {} is cosigned by {} of the {} witnesses required{}: it is not witnessed. \
             Export again once the hub's peers have cosigned a checkpoint (`curl http://<admin>/checkpoint` shows \
             its cosignatures), and check that --witness-key names their keys",
            cp.size,
            cosigned_by.len(),
            policy.required,
            if cosigned_by.is_empty() {
                String::new()
            } else {
                format!(" ({})", cosigned_by.join(", "))
            }
        )));
    }
    Ok((cp, cosigned_by))
}

/// The witnesses' part of verifying `export` (its tree head `head` and
/// receipts already verified): the cosigned checkpoint, its consistency
/// with the head, and every receipt under it.
pub(crate) fn verify_witnessed(
    export: &AuditExport,
    head: &TreeHead,
    verifier: &TreeHeadVerifier,
    policy: &WitnessPolicy,
) -> Result<Witnessed, VerifyError> {
    let ec = export.checkpoint.as_ref().ok_or_else(|| {
        witness_err(
            "the export carries no cosigned checkpoint: export it with `truc audit receipts --out` from a hub \
             whose peers witness it (federation.md, \"Witnessing\")",
        )
    })?;
    let (cp, cosigned_by) = open_cosigned(&ec.note, verifier, policy)?;
    let root =
        Hash::try_from(head.root_hash.as_slice()).map_err(|_| witness_err("the tree head's root is not 32 bytes"))?;
    let proof = super::hex_hashes(&ec.consistency_proof)
        .ok_or_else(|| witness_err("the checkpoint's consistency proof has a hash that is not 32 bytes of hex"))?;
    merkle::verify_consistency(cp.size, head.tree_size, &cp.root, &root, &proof).map_err(|e| {
        witness_err(format!(
            "the tree head of size {} does not extend the cosigned checkpoint of size {}: {e}",
            head.tree_size, cp.size
        ))
    })?;
    for (i, r) in export.receipts.iter().enumerate() {
        if r.index >= cp.size {
            let decoded = unhex(&r.receipt).ok().and_then(|b| Receipt::decode(b.as_slice()).ok());
            return Err(VerifyError::Receipt {
                position: i + 1,
                index: r.index,
                label: super::receipt_label(i + 1, r.index, decoded.as_ref()),
                problem: format!(
                    "it is not under the cosigned checkpoint (size {}): it was recorded after what the witnesses \
                     saw; export again once they have cosigned a later checkpoint",
                    cp.size
                ),
            });
        }
    }
    Ok(Witnessed {
        size: cp.size,
        cosigned_by,
    })
}

/// Picks the checkpoint an export carries among the hub's (newest first):
/// the one with the most cosignatures, the newest of those, no larger than
/// the export's head.
pub(crate) fn pick(checkpoints: &[String], max_size: u64) -> Option<(String, Checkpoint)> {
    let mut best: Option<(usize, String, Checkpoint)> = None;
    for n in checkpoints {
        let Ok(note) = Note::parse(n.as_bytes()) else { continue };
        let Ok(cp) = Checkpoint::parse_text(&note.text) else {
            continue;
        };
        if cp.size > max_size {
            continue;
        }
        let cosigs = note.signatures.iter().filter(|s| s.name != cp.origin).count();
        if best
            .as_ref()
            .is_none_or(|(c, _, b)| cosigs > *c || (cosigs == *c && cp.size > b.size))
        {
            best = Some((cosigs, n.clone(), cp));
        }
    }
    best.map(|(_, n, cp)| (n, cp))
}

/// The hub's cosigned checkpoint for an export whose head has `head_size`
/// leaves, with the consistency proof to it; `None` when the hub has no
/// checkpoint (its certificate names no hub).
pub(crate) async fn export_checkpoint(client: &Client, head_size: u64) -> Result<Option<ExportCheckpoint>, AuditError> {
    let all = client.checkpoints().await?;
    let Some((note, cp)) = pick(&all, head_size) else {
        return Ok(None);
    };
    let proof = if cp.size == head_size || cp.size == 0 {
        Vec::new()
    } else {
        client.consistency_proof(cp.size, head_size).await?
    };
    Ok(Some(ExportCheckpoint {
        note,
        consistency_proof: proof.iter().map(|h| truc_core::hex(h)).collect(),
    }))
}

/// Each receipt of `export` under its cosigned checkpoint as a
/// c2sp.org/tlog-proof: (index, text). Receipts recorded after the
/// checkpoint are left out (they have no witnessed proof yet). The proofs
/// are re-made for the checkpoint's tree from the hub's consistency proofs
/// and checked against its root.
pub async fn tlog_proofs(client: &Client, export: &AuditExport) -> Result<Vec<(u64, String)>, AuditError> {
    let Some(ec) = &export.checkpoint else {
        return Err(AuditError::BadTreeHead(
            "the hub gave no checkpoint to prove the receipts under (its certificate names no hub)".into(),
        ));
    };
    let note = Note::parse(ec.note.as_bytes()).map_err(|e| AuditError::BadTreeHead(e.to_string()))?;
    let cp = Checkpoint::parse_text(&note.text).map_err(|e| AuditError::BadTreeHead(e.to_string()))?;
    let latest = export.tree_head.tree_size;
    let mut out = Vec::new();
    for r in export.receipts.iter().filter(|r| r.index < cp.size) {
        let bad = |what: &str| AuditError::BadTreeHead(format!("receipt index {}: {what}", r.index));
        let bytes = unhex(&r.receipt).map_err(|_| bad("its bytes are not hex"))?;
        let latest_proof =
            super::hex_hashes(&r.inclusion_proof).ok_or_else(|| bad("its inclusion proof is not hashes"))?;
        let consistency = match merkle::reprove_consistency_sizes(r.index, cp.size, latest) {
            Some((a, b)) => client
                .consistency_proof(a, b)
                .await?
                .iter()
                .map(|h| Hash::try_from(h.as_slice()).map_err(|_| bad("a proof hash is not 32 bytes")))
                .collect::<Result<Vec<Hash>, _>>()?,
            None => Vec::new(),
        };
        let proof = merkle::inclusion_in_older_tree(
            &merkle::leaf_hash(&bytes),
            r.index,
            cp.size,
            &cp.root,
            latest,
            &latest_proof,
            &consistency,
        )
        .map_err(|e| bad(&e.to_string()))?;
        let p = TlogProof {
            extra: Some(bytes),
            index: r.index,
            proof,
            checkpoint: ec.note.clone(),
        };
        out.push((r.index, p.to_text()));
    }
    Ok(out)
}

/// What [`verify_tlog_proof`] checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ProofReport {
    /// The receipt (the proof's `extra`), decoded.
    pub receipt: Receipt,
    /// The checkpoint's size.
    pub size: u64,
    /// The witness keys whose cosignatures verified.
    pub cosigned_by: Vec<String>,
}

/// Checks a c2sp.org/tlog-proof of a Truc receipt offline: the checkpoint
/// with the hub's receipt key and `policy`'s witnesses, and the receipt
/// (`extra`) included at `index` in its tree.
pub fn verify_tlog_proof(
    text: &str,
    verifier: &TreeHeadVerifier,
    policy: &WitnessPolicy,
) -> Result<ProofReport, VerifyError> {
    let p = TlogProof::parse(text).map_err(|e| VerifyError::Format(e.to_string()))?;
    let (cp, cosigned_by) = open_cosigned(&p.checkpoint, verifier, policy)?;
    let bytes = p.extra.ok_or_else(|| {
        VerifyError::Format("the proof has no extra line: a Truc proof carries the receipt there".into())
    })?;
    let receipt = Receipt::decode(bytes.as_slice())
        .map_err(|_| VerifyError::Format("the extra data is not a Truc receipt".into()))?;
    let fail = |problem: String| VerifyError::Receipt {
        position: 1,
        index: p.index,
        label: super::receipt_label(1, p.index, Some(&receipt)),
        problem,
    };
    if receipt.index != p.index {
        return Err(fail(format!(
            "the proof is for index {} but the receipt says {}",
            p.index, receipt.index
        )));
    }
    merkle::verify_inclusion(&merkle::leaf_hash(&bytes), p.index, cp.size, &p.proof, &cp.root).map_err(|e| {
        fail(format!(
            "its inclusion proof does not lead to the cosigned checkpoint's root: {e}"
        ))
    })?;
    Ok(ProofReport {
        receipt,
        size: cp.size,
        cosigned_by,
    })
}
