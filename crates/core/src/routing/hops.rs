//! Hops: the trace of hubs a forwarded document has passed through, loops
//! and the hop limit.
//!
//! The trace lists, origin first, every hub that accepted the document and
//! forwarded it on; each forward is one hop, so a trace of `n` hubs has
//! made `n` hops when it arrives. A hub refuses a document whose trace
//! holds its own id (a loop) or has made more than `max_hops` hops, and
//! never forwards one to a hub already in the trace.

use super::HubId;

/// Hops a document may make unless configured otherwise
/// (`federation.max_hops`): province → national → ministry is 2.
pub const DEFAULT_MAX_HOPS: usize = 8;

/// Why a forward is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HopError {
    /// The hub is already in the trace: the document went round.
    #[error("routing loop: hub {hub} is already in the trace {}", show(trace))]
    Loop {
        /// The hub met twice.
        hub: HubId,
        /// The trace.
        trace: Vec<HubId>,
    },
    /// More hops than allowed.
    #[error("{hops} hops (trace {}) is more than the {max} allowed", show(trace))]
    TooManyHops {
        /// Hops made, or about to be made.
        hops: usize,
        /// The limit.
        max: usize,
        /// The trace.
        trace: Vec<HubId>,
    },
}

fn show(trace: &[HubId]) -> String {
    let ids: Vec<&str> = trace.iter().map(HubId::as_str).collect();
    format!("[{}]", ids.join(" → "))
}

/// Checks a document arriving at hub `own` with `trace` (the hubs that
/// forwarded it, origin first): refused if `own` is in it or it has made
/// more than `max_hops` hops.
pub fn check_arrival(trace: &[HubId], own: &HubId, max_hops: usize) -> Result<(), HopError> {
    if trace.contains(own) {
        return Err(HopError::Loop {
            hub: own.clone(),
            trace: trace.to_vec(),
        });
    }
    if trace.len() > max_hops {
        return Err(HopError::TooManyHops {
            hops: trace.len(),
            max: max_hops,
            trace: trace.to_vec(),
        });
    }
    Ok(())
}

/// The trace to send with a document that hub `own` forwards to `next`:
/// `trace` plus `own`. Refused if `next` is already in it (`own` included)
/// or the forward would make more than `max_hops` hops, so the refusal
/// happens here rather than at the next hub.
pub fn check_forward(trace: &[HubId], own: &HubId, next: &HubId, max_hops: usize) -> Result<Vec<HubId>, HopError> {
    let mut out = trace.to_vec();
    out.push(own.clone());
    if out.contains(next) {
        return Err(HopError::Loop {
            hub: next.clone(),
            trace: out,
        });
    }
    if out.len() > max_hops {
        return Err(HopError::TooManyHops {
            hops: out.len(),
            max: max_hops,
            trace: out,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &[&str]) -> Vec<HubId> {
        s.iter().map(|i| HubId::parse(i).unwrap()).collect()
    }

    fn id(s: &str) -> HubId {
        HubId::parse(s).unwrap()
    }

    #[test]
    fn province_national_ministry_passes() {
        let t = check_forward(&[], &id("h49"), &id("national"), DEFAULT_MAX_HOPS).unwrap();
        assert_eq!(t, ids(&["h49"]));
        check_arrival(&t, &id("national"), DEFAULT_MAX_HOPS).unwrap();
        let t = check_forward(&t, &id("national"), &id("g12"), DEFAULT_MAX_HOPS).unwrap();
        assert_eq!(t, ids(&["h49", "national"]));
        check_arrival(&t, &id("g12"), DEFAULT_MAX_HOPS).unwrap();
    }

    #[test]
    fn loops_are_refused_on_both_sides() {
        let t = ids(&["h49", "national"]);
        let e = check_arrival(&t, &id("h49"), 8).unwrap_err();
        assert_eq!(
            e.to_string(),
            "routing loop: hub h49 is already in the trace [h49 → national]"
        );
        let e = check_forward(&t, &id("g12"), &id("national"), 8).unwrap_err();
        assert!(
            matches!(&e, HopError::Loop { hub, .. } if hub.as_str() == "national"),
            "{e}"
        );
        // Forwarding to oneself is a loop too.
        assert!(matches!(
            check_forward(&[], &id("h49"), &id("h49"), 8),
            Err(HopError::Loop { .. })
        ));
    }

    #[test]
    fn the_hop_limit_is_the_number_of_forwards() {
        let eight = ids(&["a", "b", "c", "d", "e", "f", "g", "h"]);
        // Eight hops made: allowed at the ninth hub, which may not forward.
        check_arrival(&eight, &id("i"), 8).unwrap();
        let e = check_forward(&eight, &id("i"), &id("j"), 8).unwrap_err();
        assert_eq!(
            e.to_string(),
            "9 hops (trace [a → b → c → d → e → f → g → h → i]) is more than the 8 allowed"
        );
        let nine = ids(&["a", "b", "c", "d", "e", "f", "g", "h", "i"]);
        assert!(matches!(
            check_arrival(&nine, &id("j"), 8),
            Err(HopError::TooManyHops { hops: 9, max: 8, .. })
        ));
        // A limit of 1: one forward from the origin, no relay.
        let t = check_forward(&[], &id("a"), &id("b"), 1).unwrap();
        check_arrival(&t, &id("b"), 1).unwrap();
        assert!(check_forward(&t, &id("b"), &id("c"), 1).is_err());
    }
}
