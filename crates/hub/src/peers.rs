//! Peer hubs for operators and for `/metrics`: each configured peer's link,
//! as its forwarding task sees it (`forward.rs`), joined with its outbox in
//! the store (`Ops.ListPeers`, `truc ops peers`, the `truc_peer_*`
//! gauges), so that the three agree; and an operator's pauses
//! (`Ops.SetPeerPaused`, `truc ops peer pause|resume`).
//!
//! A pause is the forwarding task's to honour ([`Forwarders::set_paused`]);
//! this module records who paused which peer, when and why, in
//! `data_dir/paused-peers.json` (replaced atomically), and reads it back at
//! start, before any forwarding task runs, so that a pause survives a
//! restart. The store is not involved: the file is this hub process's own,
//! as the forwarding tasks are (with the JetStream store, each hub of the
//! cluster keeps its own pauses). A file that cannot be read stops the hub
//! at start rather than resume forwarding an operator paused.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tonic::Status;
use truc_core::sync::Locked;
use truc_core::Principal;
use truc_proto::v1::{PeerLink, PeerLinkState};
use truc_store::StoreError;

use crate::config::PeerConfig;
use crate::forward::Forwarders;
use crate::{status, HubError, Shared};

/// The file of pauses, in `data_dir`.
pub(crate) const PAUSES_FILE: &str = "paused-peers.json";

/// One peer as an operator paused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pause {
    /// When, Unix ms.
    pub(crate) since_unix_ms: i64,
    /// The operator, as a URN.
    pub(crate) by: String,
    /// Why, as the operator said it.
    #[serde(default)]
    pub(crate) reason: String,
}

/// `paused-peers.json`: the paused peers by id.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PausesFile {
    paused: BTreeMap<String, Pause>,
}

/// The pauses in force, and where they are kept.
pub(crate) struct Pauses {
    path: PathBuf,
    /// What the file says now (read by `links` and the scrapes).
    now: std::sync::Mutex<BTreeMap<String, Pause>>,
    /// One change at a time: file, forwarding task and receipt together.
    change: tokio::sync::Mutex<()>,
}

impl Pauses {
    /// Read `data_dir/paused-peers.json` (none: no pause) and pause those
    /// of `peers` it names; a paused id that is no configured peer any more
    /// is dropped with a warning (and from the file at the next change).
    pub(crate) fn load(data_dir: &Path, peers: &[PeerConfig], forwarders: &Forwarders) -> Result<Pauses, HubError> {
        let path = data_dir.join(PAUSES_FILE);
        let mut paused = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<PausesFile>(&bytes)
                    .map_err(|e| {
                        HubError::Config(format!(
                            "{}: {e} (the peers an operator paused; fix the file, or delete it to resume forwarding \
                             to every peer)",
                            path.display()
                        ))
                    })?
                    .paused
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(HubError::io(format!("reading {}", path.display()), e)),
        };
        paused.retain(|id, p| {
            let known = peers.iter().any(|c| &c.id == id);
            if known {
                forwarders.set_paused(id, true);
                tracing::warn!(peer = %id, by = %p.by, reason = %p.reason, "forwarding to this peer is paused (truc ops peer resume)");
            } else {
                tracing::warn!(peer = %id, "{} pauses a peer that is not configured any more; ignored", path.display());
            }
            known
        });
        Ok(Pauses {
            path,
            now: std::sync::Mutex::new(paused),
            change: tokio::sync::Mutex::new(()),
        })
    }

    /// The pause of `peer`, if it is paused.
    pub(crate) fn get(&self, peer: &str) -> Option<Pause> {
        self.now.locked().get(peer).cloned()
    }

    /// Pause (`paused`) or resume forwarding to `peer` for operator `op`:
    /// the file, then the forwarding task, then the operator-action
    /// receipt; if the receipt cannot be recorded, the change is undone and
    /// refused. Returns whether anything changed (pausing a paused peer
    /// does not).
    pub(crate) async fn set(
        &self,
        shared: &Shared,
        peer: &str,
        paused: bool,
        op: &Principal,
        reason: &str,
    ) -> Result<bool, Status> {
        let _one = self.change.lock().await;
        let before = self.now.locked().clone();
        if before.contains_key(peer) == paused {
            return Ok(false);
        }
        let mut after = before.clone();
        if paused {
            after.insert(
                peer.to_string(),
                Pause {
                    since_unix_ms: shared.config.clock.now_unix_ms(),
                    by: op.uri().to_string(),
                    reason: reason.to_string(),
                },
            );
        } else {
            after.remove(peer);
        }
        self.write(&after).await?;
        *self.now.locked() = after;
        shared.forwarders.set_paused(peer, paused);
        let detail = format!("peer {peer} {}: {reason}", if paused { "paused" } else { "resumed" });
        if let Err(e) = shared.store.record_action(detail, op.uri().to_string()).await {
            shared.forwarders.set_paused(peer, !paused);
            *self.now.locked() = before.clone();
            if let Err(undo) = self.write(&before).await {
                tracing::error!(%peer, error = %undo.message(), "the pause could not be recorded and its file not restored");
            }
            return Err(status::from_store(e));
        }
        Ok(true)
    }

    /// Replace the file with `paused`, durably, off the reactor.
    async fn write(&self, paused: &BTreeMap<String, Pause>) -> Result<(), Status> {
        let text = serde_json::to_vec_pretty(&PausesFile { paused: paused.clone() })
            .map_err(|e| Status::internal(format!("encoding the pauses: {e}")))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, &text))
            .await
            .map_err(|_| Status::unavailable("the hub is shutting down"))?
            .map_err(|e| {
                tracing::error!(error = %e, "writing the peer pauses");
                Status::internal(format!("the pause could not be kept: {e}"))
            })
    }
}

/// Replace `path` with `bytes`: a temporary file synced, renamed over it,
/// the directory synced, so that a crash leaves the old file or the new.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("json.tmp");
    let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, e))?;
    }
    Ok(())
}

/// One row per configured peer, ordered by id.
pub(crate) async fn links(shared: &Shared) -> Result<Vec<PeerLink>, StoreError> {
    let now = shared.config.clock.now_unix_ms();
    let states = shared.forwarders.states();
    let default = shared.federation.table.default_peer().map(|h| h.as_str().to_string());
    let mut rows = Vec::new();
    for peer in &shared.config.peers {
        let Ok(id) = peer.hub_id() else { continue };
        let stats = shared.store.peer_queue_stats(id, now).await?;
        let link = states.get(&peer.id).cloned().unwrap_or_default();
        let pause = shared.pauses.get(&peer.id);
        let (state, since) = match (link.paused, link.connected, link.since_unix_ms) {
            (true, _, _) => (PeerLinkState::Paused, pause.as_ref().map_or(0, |p| p.since_unix_ms)),
            (false, _, 0) => (PeerLinkState::Idle, 0),
            (false, true, t) => (PeerLinkState::Connected, t),
            (false, false, t) => (PeerLinkState::Unreachable, t),
        };
        let (paused_by, pause_reason) = pause.map(|p| (p.by, p.reason)).unwrap_or_default();
        rows.push(PeerLink {
            id: peer.id.clone(),
            address: peer.address.clone(),
            state: state as i32,
            state_since_unix_ms: since,
            queued: stats.queued,
            bytes: stats.bytes,
            oldest_age_ms: crate::queues::oldest_age_ms(&stats, now),
            forwarded: link.forwarded,
            refused: link.refused,
            dead_letters: stats.dead_letters,
            last_error: link.last_error,
            serves: peer.serves.clone(),
            default_route: default.as_deref() == Some(peer.id.as_str()),
            paused_by,
            pause_reason,
            unreachable: !link.connected && link.since_unix_ms != 0,
        });
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rows)
}
