//! Signed trace hops: each hub that forwards a document signs one entry
//! (its id, when it accepted the document), chained to the entry before it,
//! so that no hop can be forged, removed, reordered or moved to another
//! document (`truc.v1.TraceHop`, proto/truc/v1/peer.proto).

use rustls_pki_types::UnixTime;
use truc_proto::v1::TraceHop;

use super::HubId;
use crate::document::{verify_signature, SigningTrust};
use crate::hex_text::hex;
use crate::{CoreError, Principal};

/// The bytes a hub signs for its hop: `truc.v1.TraceHop`, the hub id, the
/// acceptance time (decimal Unix ms), the hex SHA-256 of the document
/// header and the hex SHA-256 of the previous hop's signature (empty for
/// the first hop), one per line.
pub fn hop_message(hub: &str, accepted_at_unix_ms: i64, header_sha256: &[u8], previous: Option<&TraceHop>) -> Vec<u8> {
    let prev = previous.map(|h| hex(&crate::sha256(&h.signature))).unwrap_or_default();
    format!(
        "truc.v1.TraceHop\n{hub}\n{accepted_at_unix_ms}\n{}\n{prev}\n",
        hex(header_sha256)
    )
    .into_bytes()
}

/// A trace that does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// A hop names a hub id that is not valid.
    #[error("trace hop {index}: hub id {id:?} is not a hub id")]
    BadId {
        /// Position in the trace, 0 = origin hub.
        index: usize,
        /// The id as written.
        id: String,
    },
    /// This hub knows no CA for the hub a hop names.
    #[error("trace hop {index}: this hub has no trust anchor for hub {hub} ([[peers]] or [[origins]] ca)")]
    UnknownHub {
        /// Position in the trace.
        index: usize,
        /// The hub.
        hub: HubId,
    },
    /// The hop's certificate does not chain to its hub's CA, or names
    /// another principal, or the signature does not verify.
    #[error("trace hop {index} ({hub}): {why}")]
    Forged {
        /// Position in the trace.
        index: usize,
        /// The hub it claims.
        hub: HubId,
        /// What failed.
        why: String,
    },
    /// The last hop is not the hub that handed the document over.
    #[error("the trace ends with {last}, but the document was forwarded by {caller}: a hub signs its own hop")]
    NotCaller {
        /// The trace's last hub, or "(empty)".
        last: String,
        /// The forwarding peer.
        caller: HubId,
    },
}

/// Checks every hop of `trace` for a document whose header hashes to
/// `header_sha256`, handed over by `caller`: each hop's chain verifies
/// against the CA of the hub it names (`anchor_of`), names that hub, and
/// signs its hop message chained to the previous hop; the last hop is
/// `caller`'s. Returns the hub ids, origin first.
pub fn verify_trace<'a>(
    trace: &[TraceHop],
    header_sha256: &[u8],
    caller: &HubId,
    anchor_of: impl Fn(&HubId) -> Option<&'a SigningTrust>,
    now: UnixTime,
) -> Result<Vec<HubId>, TraceError> {
    let mut ids = Vec::with_capacity(trace.len());
    for (index, hop) in trace.iter().enumerate() {
        let hub = HubId::parse(&hop.hub_id).map_err(|_| TraceError::BadId {
            index,
            id: hop.hub_id.clone(),
        })?;
        let trust = anchor_of(&hub).ok_or_else(|| TraceError::UnknownHub {
            index,
            hub: hub.clone(),
        })?;
        let forged = |why: String| TraceError::Forged {
            index,
            hub: hub.clone(),
            why,
        };
        let signer = trust
            .verify_chain(&hop.signer_chain, now)
            .map_err(|e: CoreError| forged(e.to_string()))?;
        if signer != Principal::Hub(hub.as_str().to_string()) {
            return Err(forged(format!("signed by {signer}, not by urn:truc:hub:{hub}")));
        }
        let previous = index.checked_sub(1).map(|i| &trace[i]);
        let msg = hop_message(hub.as_str(), hop.accepted_at_unix_ms, header_sha256, previous);
        verify_signature(&hop.signer_chain[0], &msg, &hop.signature, hop.signature_scheme)
            .map_err(|_| forged("the signature does not verify".into()))?;
        ids.push(hub);
    }
    match ids.last() {
        Some(last) if last == caller => Ok(ids),
        last => Err(TraceError::NotCaller {
            last: last.map_or_else(|| "(empty)".to_string(), |h| h.to_string()),
            caller: caller.clone(),
        }),
    }
}

/// The W3C Trace Context `traceparent` a hub sends with a forward: version
/// 00, a trace id that is the first 16 bytes of the document header's
/// SHA-256 (so every hub's logs of one document share it, with no state
/// kept), the span id given (8 bytes), sampled.
pub fn traceparent(header_sha256: &[u8], span_id: [u8; 8]) -> String {
    let mut trace_id = [0u8; 16];
    let n = header_sha256.len().min(16);
    trace_id[..n].copy_from_slice(&header_sha256[..n]);
    format!("00-{}-{}-01", hex(&trace_id), hex(&span_id))
}

/// The trace id of a `traceparent` value, if it is one (W3C Trace Context
/// level 1: `00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero).
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let hexes = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    match parts.as_slice() {
        [v, t, s, f]
            if hexes(v, 2)
                && *v != "ff"
                && hexes(t, 32)
                && hexes(s, 16)
                && hexes(f, 2)
                && t.bytes().any(|b| b != b'0')
                && s.bytes().any(|b| b != b'0') =>
        {
            Some(t)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{trace_id_of, traceparent};

    #[test]
    fn traceparent_is_w3c_and_names_the_document() {
        let sha = [0xabu8; 32];
        let tp = traceparent(&sha, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(tp, "00-abababababababababababababababab-0102030405060708-01");
        assert_eq!(trace_id_of(&tp), Some("abababababababababababababababab"));
        // The specification's example.
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6-00f067aa0ba902b7-01",
            "nonsense",
        ] {
            assert_eq!(trace_id_of(bad), None, "{bad}");
        }
    }
}
