//! The federated agency directory at this hub: what it offers each peer
//! (`Peer.PublishDirectory`), and what it keeps of theirs.
//!
//! Every hub offers each peer the agencies that peer reaches through it:
//! its own, and those it learned from its *other* peers (never back to the
//! peer it learned them from). With the national hub in the middle, a
//! province's agencies go up to it and from it down to every other hub;
//! a change reaches the whole axis within a couple of offers (a second
//! each). A hub keeps from a peer only the codes its routing table sends
//! to that peer, so no hub can speak for agencies it is not the way to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use truc_core::routing::{HubId, Route};
use truc_core::AgencyCode;
use truc_proto::v1::{DirectoryEntry, DirectoryView};
use truc_store::RemoteAgency;

use crate::config::PeerConfig;
use crate::Shared;

/// How often a hub looks whether its view changed.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// A view unchanged for this long is offered again anyway.
const REFRESH: Duration = Duration::from_secs(60);

/// Start one publishing task per peer.
pub(crate) fn spawn_all(shared: &Arc<Shared>, tasks: &mut crate::background::Tasks, stop: &watch::Receiver<bool>) {
    if shared.federation.own.is_none() {
        return;
    }
    for peer in &shared.config.peers {
        let Ok(id) = peer.hub_id() else {
            continue;
        };
        tasks.spawn("directory", publish(shared.clone(), id, peer.clone(), stop.clone()));
    }
}

/// The view this hub offers `peer`, sorted by code.
async fn view_for(shared: &Shared, peer: &HubId) -> Result<Vec<DirectoryEntry>, String> {
    let own = shared
        .federation
        .own
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut entries: Vec<DirectoryEntry> = shared
        .store
        .agencies()
        .into_iter()
        .map(|a| DirectoryEntry {
            code: a.code,
            name: a.name,
            state: a.state as i32,
            successor: a.successor,
            hub_id: own.clone(),
        })
        .collect();
    let remote = shared.store.remote_agencies().await.map_err(|e| e.to_string())?;
    entries.extend(
        remote
            .into_iter()
            .filter(|r| r.via != peer.as_str() && r.hub != peer.as_str())
            .map(|r| DirectoryEntry {
                code: r.code,
                name: r.name,
                state: r.state as i32,
                successor: r.successor,
                hub_id: r.hub,
            }),
    );
    entries.sort_by(|a, b| a.code.cmp(&b.code));
    Ok(entries)
}

async fn publish(shared: Arc<Shared>, peer: HubId, config: PeerConfig, mut stop: watch::Receiver<bool>) {
    let mut sent: Option<(Vec<DirectoryEntry>, Instant)> = None;
    // One connection kept while it works, as the forwarding task does.
    let mut client = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = stop.changed() => return,
        }
        let view = match view_for(&shared, &peer).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "reading the directory to offer");
                continue;
            }
        };
        if matches!(&sent, Some((v, at)) if *v == view && at.elapsed() < REFRESH) {
            continue;
        }
        let mut c = match client.take() {
            Some(c) => c,
            None => match crate::forward::connect(&shared, &config).await {
                Ok(c) => c,
                Err(why) => {
                    tracing::debug!(%peer, error = %why, "directory: peer unreachable");
                    continue;
                }
            },
        };
        let answer = c.publish_directory(DirectoryView { entries: view.clone() }).await;
        if answer.is_ok() {
            client = Some(c);
        }
        match answer {
            Ok(ack) => {
                let ack = ack.into_inner();
                if ack.ignored > 0 {
                    tracing::warn!(
                        %peer, ignored = ack.ignored, examples = ?ack.ignored_examples,
                        "the peer does not route some of the agencies offered to it through this hub"
                    );
                }
                sent = Some((view, Instant::now()));
            }
            Err(st) => tracing::warn!(%peer, code = ?st.code(), error = st.message(), "directory not taken"),
        }
    }
}

/// The entries of `view` that `caller` may speak for here (its route, not
/// this hub's own), as the store keeps them, and the codes left out.
pub(crate) fn admissible(
    shared: &Shared,
    caller: &HubId,
    view: Vec<DirectoryEntry>,
) -> (Vec<RemoteAgency>, Vec<String>) {
    let mut kept = Vec::with_capacity(view.len());
    let mut ignored = Vec::new();
    for e in view {
        let ok = AgencyCode::parse(&e.code).ok().filter(|code| {
            shared.store.agency(code).is_none()
                && matches!(shared.federation.table.route(code, false), Route::Peer(p) if &p == caller)
        });
        let state = truc_proto::v1::AgencyState::try_from(e.state).ok();
        match (ok, state, HubId::parse(&e.hub_id)) {
            (Some(_), Some(state), Ok(_)) if state != truc_proto::v1::AgencyState::Unspecified => {
                kept.push(RemoteAgency {
                    code: e.code,
                    name: e.name,
                    state,
                    successor: e.successor,
                    hub: e.hub_id,
                    via: String::new(),
                    changed_at_unix_ms: 0,
                })
            }
            _ => ignored.push(e.code),
        }
    }
    (kept, ignored)
}
