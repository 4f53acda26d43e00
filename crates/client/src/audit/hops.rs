//! A document's receipts across hubs (federation): each hub's export of the
//! document's receipts, gathered by following its FORWARDED receipts, and
//! the offline check that the hops join up.
//!
//! Each hub keeps its own log. When hub A forwards a document to hub B, A's
//! FORWARDED receipt holds B's signed ACCEPTED receipt (`peer_receipt`: the
//! receipt, B's tree head, the inclusion proof); what B reports back
//! (delivered, a status) is recorded at A with B's receipt beside it. The
//! check, with each hub's `receipts.pub`:
//!
//! - every hub's export verifies on its own ([`super::verify_export`]);
//! - every receipt one hub holds of another verifies with that hub's key;
//! - if that hub's export is in the chain, the receipt is in it, byte for
//!   byte, at the same index (else the hop was **rewritten**);
//! - a hop to a hub whose export is not in the chain is a **gap**, named.
//!
//! The JSON is `{"format": "truc-audit-hops/1", "document_from", "document_id",
//! "hubs": [{"hub_id", "export": <truc-audit-export/1>}]}`.

use std::collections::{BTreeMap, HashMap};

use prost::Message;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use truc_core::tree_head::TreeHeadVerifier;
use truc_proto::v1::{ProvenReceipt, Receipt, ReceiptEvent};

use super::{AuditError, AuditExport, AuditQuery, VerifyError};
use crate::Client;

/// The format of a hops export.
pub const HOPS_FORMAT: &str = "truc-audit-hops/1";

/// One hub's part of a hops export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubExport {
    /// The hub's id (`urn:truc:hub:<id>`).
    pub hub_id: String,
    /// Its receipts of the document.
    pub export: AuditExport,
}

/// A document's receipts at every hub it was followed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HopsExport {
    /// Always [`HOPS_FORMAT`].
    pub format: String,
    /// The document's sender.
    pub document_from: String,
    /// The sender's document id.
    pub document_id: String,
    /// The hubs, in the order they were visited (the first is where the
    /// export started).
    pub hubs: Vec<HubExport>,
}

impl HopsExport {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parse (the shape only).
    pub fn from_json(json: &str) -> Result<HopsExport, VerifyError> {
        let e: HopsExport = serde_json::from_str(json).map_err(|e| VerifyError::Format(e.to_string()))?;
        if e.format != HOPS_FORMAT {
            return Err(VerifyError::Format(format!(
                "format is {:?}, expected {HOPS_FORMAT:?}",
                e.format
            )));
        }
        Ok(e)
    }
}

/// Whether `json` is a hops export (rather than one hub's export).
pub fn is_hops(json: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("format").and_then(|f| f.as_str()).map(|f| f == HOPS_FORMAT))
        .unwrap_or(false)
}

/// The hub a receipt's `detail` (`to urn:truc:hub:<id>`) or `actor`
/// (`urn:truc:hub:<id>`) names.
fn hub_named(s: &str) -> Option<&str> {
    let at = s.find("urn:truc:hub:")? + "urn:truc:hub:".len();
    let rest = &s[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The receipts `export` holds of other hubs: (that hub, the receipt as it
/// signed it, what it is here).
fn held(export: &AuditExport) -> Result<Vec<(String, ProvenReceipt, String)>, VerifyError> {
    let mut out = Vec::new();
    for r in &export.receipts {
        let bytes =
            truc_core::unhex(&r.receipt).map_err(|e| VerifyError::Format(format!("receipt {}: {e}", r.index)))?;
        let receipt =
            Receipt::decode(bytes.as_slice()).map_err(|e| VerifyError::Format(format!("receipt {}: {e}", r.index)))?;
        if receipt.peer_receipt.is_empty() {
            continue;
        }
        let other = if receipt.event == ReceiptEvent::Forwarded as i32 {
            hub_named(&receipt.detail)
        } else {
            hub_named(&receipt.actor)
        };
        let Some(other) = other else {
            continue;
        };
        let proven = ProvenReceipt::decode(receipt.peer_receipt.as_slice())
            .map_err(|e| VerifyError::Format(format!("receipt {}: its peer receipt: {e}", r.index)))?;
        out.push((other.to_string(), proven, format!("receipt {} ({})", r.index, r.event)));
    }
    Ok(out)
}

/// Export the receipts of `query`'s document at `first` (hub `first_id`),
/// then at every hub it was forwarded to that `others` can reach, following
/// FORWARDED receipts. Hubs without a client are left out (a gap the check
/// will name).
pub async fn export_hops(
    first_id: &str,
    first: &Client,
    others: &HashMap<String, Client>,
    query: &AuditQuery,
) -> Result<HopsExport, AuditError> {
    let mut hubs: Vec<HubExport> = Vec::new();
    let mut next = vec![first_id.to_string()];
    while let Some(id) = next.pop() {
        if hubs.iter().any(|h| h.hub_id == id) {
            continue;
        }
        let client = if id == first_id { Some(first) } else { others.get(&id) };
        let Some(client) = client else {
            continue;
        };
        let export = super::export(client, query, None).await?;
        for (other, _, _) in held(&export).map_err(|e| AuditError::BadTreeHead(e.to_string()))? {
            if !hubs.iter().any(|h| h.hub_id == other) && !next.contains(&other) {
                next.push(other);
            }
        }
        hubs.push(HubExport { hub_id: id, export });
    }
    Ok(HopsExport {
        format: HOPS_FORMAT.into(),
        document_from: query.document_from.clone().unwrap_or_default(),
        document_id: query.document_id.clone().unwrap_or_default(),
        hubs,
    })
}

/// Why a hops export does not check out.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HopsError {
    /// No key was given for a hub in the chain.
    #[error("no receipts.pub given for hub {0} (--hop-key {0}=PATH)")]
    NoKey(String),
    /// One hub's own export does not verify.
    #[error("hub {hub}: {error}")]
    Hub {
        /// The hub.
        hub: String,
        /// Why.
        error: VerifyError,
    },
    /// A receipt one hub holds of another is not signed by that hub.
    #[error("hub {hub}, {what}: the receipt of hub {other} it holds does not verify with {other}'s key: {why}")]
    NotSigned {
        /// The holding hub.
        hub: String,
        /// Which of its receipts.
        what: String,
        /// The hub that should have signed it.
        other: String,
        /// Why.
        why: String,
    },
    /// The other hub's own log says something else at that index.
    #[error("hub {hub}, {what}: hub {other}'s receipt #{index} it holds is not what {other}'s own export has at #{index}: the hop was rewritten")]
    Rewritten {
        /// The holding hub.
        hub: String,
        /// Which of its receipts.
        what: String,
        /// The other hub.
        other: String,
        /// The index.
        index: u64,
    },
}

/// What [`verify_hops`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HopsReport {
    /// Per hub: its receipts verified.
    pub hubs: BTreeMap<String, usize>,
    /// Receipts of one hub held by another, verified: (holder, other, what).
    pub links: Vec<(String, String, String)>,
    /// Hubs the chain reaches whose export is not in it: (holder, other,
    /// what).
    pub gaps: Vec<(String, String, String)>,
}

/// Check a hops export with each hub's receipt key (`keys`: hub id →
/// verifier).
pub fn verify_hops(export: &HopsExport, keys: &HashMap<String, TreeHeadVerifier>) -> Result<HopsReport, HopsError> {
    let mut report = HopsReport::default();
    let key = |hub: &str| keys.get(hub).ok_or_else(|| HopsError::NoKey(hub.to_string()));
    for h in &export.hubs {
        let r = super::verify_export(&h.export, key(&h.hub_id)?).map_err(|error| HopsError::Hub {
            hub: h.hub_id.clone(),
            error,
        })?;
        report.hubs.insert(h.hub_id.clone(), r.receipts);
    }
    for h in &export.hubs {
        let held = held(&h.export).map_err(|error| HopsError::Hub {
            hub: h.hub_id.clone(),
            error,
        })?;
        for (other, proven, what) in held {
            let verifier = key(&other)?;
            let (receipt, _) = verifier
                .verify_proven_receipt(&proven)
                .map_err(|e| HopsError::NotSigned {
                    hub: h.hub_id.clone(),
                    what: what.clone(),
                    other: other.clone(),
                    why: e.to_string(),
                })?;
            match export.hubs.iter().find(|x| x.hub_id == other) {
                Some(theirs) => {
                    let same = theirs
                        .export
                        .receipts
                        .iter()
                        .find(|r| r.index == receipt.index)
                        .is_some_and(|r| r.receipt == truc_core::hex(&proven.receipt));
                    if !same {
                        return Err(HopsError::Rewritten {
                            hub: h.hub_id.clone(),
                            what,
                            other,
                            index: receipt.index,
                        });
                    }
                    report.links.push((h.hub_id.clone(), other, what));
                }
                None => report.gaps.push((h.hub_id.clone(), other, what)),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::hub_named;

    #[test]
    fn hub_names_are_read_from_details_and_actors() {
        assert_eq!(hub_named("to urn:truc:hub:national"), Some("national"));
        assert_eq!(hub_named("urn:truc:hub:g12"), Some("g12"));
        assert_eq!(hub_named("reported by urn:truc:hub:h49.b, then"), Some("h49.b"));
        assert_eq!(hub_named("urn:truc:agency:000.00.00.G22"), None);
        assert_eq!(hub_named("urn:truc:hub:"), None);
    }
}
