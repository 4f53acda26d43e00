//! The federated directory in the writer: agencies of other hubs, as the
//! peers publish them (`Peer.PublishDirectory`). Each peer offers its whole
//! view each time; this hub keeps, per peer, what it offered, records every
//! change as an AGENCY_CHANGED receipt (actor the peer hub), and removes
//! what a peer no longer offers. Which codes a peer may speak for is the
//! hub's routing decision, made before the command reaches the store.

use std::collections::BTreeMap;

use prost::Message;
use truc_core::routing::HubId;
use truc_proto::names::Wire;
use truc_proto::v1::{AgencyState, Receipt, ReceiptEvent};

use super::batch::Batch;
use crate::keys::{self, tag};
use crate::records::RemoteAgencyRecord;
use crate::{RemoteAgency, StoreError};

fn record_of(a: &RemoteAgency, via: &HubId, at: i64) -> RemoteAgencyRecord {
    RemoteAgencyRecord {
        code: a.code.clone(),
        name: a.name.clone(),
        state: a.state as i32,
        successor: a.successor.clone(),
        hub: a.hub.clone(),
        via: via.to_string(),
        changed_at_unix_ms: at,
    }
}

pub(crate) fn remote(r: RemoteAgencyRecord) -> RemoteAgency {
    RemoteAgency {
        state: AgencyState::try_from(r.state).unwrap_or_default(),
        code: r.code,
        name: r.name,
        successor: r.successor,
        hub: r.hub,
        via: r.via,
        changed_at_unix_ms: r.changed_at_unix_ms,
    }
}

fn describe(r: &RemoteAgencyRecord) -> String {
    let mut d = format!(
        "{} {:?} at hub {}: {}",
        r.code,
        r.name,
        r.hub,
        Wire::<AgencyState>::from(r.state)
    );
    if !r.successor.is_empty() {
        d.push_str(&format!(", successor {}", r.successor));
    }
    d
}

/// Apply peer `peer`'s whole view `entries`; returns how many entries
/// changed.
pub(crate) fn apply(p: &mut Batch<'_>, peer: &HubId, entries: Vec<RemoteAgency>) -> Result<u32, StoreError> {
    let actor = peer.principal().uri();
    let mut known: BTreeMap<String, RemoteAgencyRecord> = BTreeMap::new();
    for (_, v) in p.scan(&[tag::REMOTE_AGENCY])? {
        let r = RemoteAgencyRecord::decode(v.as_slice()).map_err(|e| StoreError::corrupt_from("remote agency", e))?;
        known.insert(r.code.clone(), r);
    }
    let mut changed = 0;
    let mut offered = Vec::with_capacity(entries.len());
    for a in &entries {
        offered.push(a.code.clone());
        let old = known.get(&a.code);
        let new = record_of(a, peer, p.time_unix_ms);
        let same = old.is_some_and(|o| {
            (&o.name, o.state, &o.successor, &o.hub, &o.via)
                == (&new.name, new.state, &new.successor, &new.hub, &new.via)
        });
        if same {
            continue;
        }
        p.put(keys::remote_agency(&a.code), new.encode_to_vec());
        p.append_receipt(Receipt {
            event: ReceiptEvent::AgencyChanged as i32,
            actor: actor.clone(),
            recipient: a.code.clone(),
            detail: format!("directory: {}", describe(&new)),
            ..Default::default()
        })?;
        changed += 1;
    }
    for (code, r) in &known {
        if r.via == peer.as_str() && !offered.contains(code) {
            p.del(keys::remote_agency(code));
            p.append_receipt(Receipt {
                event: ReceiptEvent::AgencyChanged as i32,
                actor: actor.clone(),
                recipient: code.clone(),
                detail: format!("directory: {code} at hub {} removed", r.hub),
                ..Default::default()
            })?;
            changed += 1;
        }
    }
    Ok(changed)
}
