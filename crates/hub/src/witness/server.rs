//! The witness: `POST /add-checkpoint` (c2sp.org/tlog-witness) for the
//! peers whose logs this hub witnesses.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{debug, error, info, warn};
use truc_core::c2sp::b64;
use truc_core::c2sp::cosignature::Cosigner;
use truc_core::c2sp::witness::{self, AddCheckpoint, Refusal, SIZE_CONTENT_TYPE};
use truc_core::merkle::Hash;
use truc_core::sync::Locked;
use truc_store::Store;

use super::state::WitnessState;
use super::{WitnessedLog, Witnessing};

/// An HTTP answer: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The status code.
    pub(crate) status: u16,
    /// `Content-Type`.
    pub(crate) content_type: &'static str,
    /// The body.
    pub(crate) body: String,
}

const TEXT: &str = "text/plain; charset=utf-8";

fn text(status: u16, body: impl Into<String>) -> Answer {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    Answer {
        status,
        content_type: TEXT,
        body,
    }
}

pub(super) struct Server {
    cosigner: Cosigner,
    /// origin → the peer and its checkpoint key.
    logs: BTreeMap<String, WitnessedLog>,
    /// What was cosigned; the lock makes each decision and its write one
    /// step (a smaller checkpoint judged before a larger one is written
    /// cannot roll the state back).
    state: tokio::sync::Mutex<WitnessState>,
    /// Conflicts already recorded as receipts: (origin, size, root).
    recorded: std::sync::Mutex<BTreeSet<(String, u64, Hash)>>,
}

impl Server {
    pub(super) fn new(cosigner: Cosigner, logs: BTreeMap<String, WitnessedLog>, state: WitnessState) -> Server {
        Server {
            cosigner,
            logs,
            state: tokio::sync::Mutex::new(state),
            recorded: std::sync::Mutex::new(BTreeSet::new()),
        }
    }

    pub(super) fn vkey(&self) -> String {
        self.cosigner.verifier().vkey()
    }

    pub(super) fn peers(&self) -> Vec<String> {
        self.logs.values().map(|l| l.peer.clone()).collect()
    }

    pub(super) fn origins(&self) -> Vec<String> {
        self.logs.keys().cloned().collect()
    }
}

impl Witnessing {
    /// Answers an `add-checkpoint` request body.
    pub(crate) async fn add_checkpoint(&self, body: &[u8], store: &dyn Store, now_unix_secs: u64) -> Answer {
        let Some(server) = &self.server else {
            return text(
                404,
                "this hub witnesses no log: set peers[].checkpoint_key in its configuration",
            );
        };
        let req = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(e) => return text(400, e.to_string()),
        };
        let origin = req.note.split('\n').next().unwrap_or_default().to_string();
        let mut state = server.state.lock().await;
        let last = state.get(&origin);
        let judged = witness::judge(&req, |o| server.logs.get(o).map(|l| &l.key), last);
        let accepted = match judged {
            Ok(a) => a,
            Err(refusal) => {
                drop(state);
                return self.refuse(server, &origin, refusal, &req, store).await;
            }
        };
        let cp = &accepted.checkpoint;
        if let Err(e) = state.set(&origin, cp.size, &cp.root, &req.note) {
            error!(%origin, size = cp.size, error = %e, "witness: cannot write its state; not cosigning");
            return text(500, "the witness cannot record the checkpoint now; try again later");
        }
        drop(state);
        let line = match server.cosigner.cosign(&accepted.text, now_unix_secs) {
            Ok(l) => l,
            Err(e) => return text(500, format!("cannot cosign: {e}")),
        };
        self.count(&origin, false);
        debug!(%origin, size = cp.size, old = req.old_size, "witness: cosigned");
        Answer {
            status: 200,
            content_type: TEXT,
            body: witness::cosignature_body(&[line]),
        }
    }

    async fn refuse(
        &self,
        server: &Server,
        origin: &str,
        refusal: Refusal,
        req: &AddCheckpoint,
        store: &dyn Store,
    ) -> Answer {
        let status = refusal.status();
        if let Refusal::Stale { witnessed, .. } = refusal {
            debug!(%origin, old = req.old_size, witnessed, "witness: stale old size, answered with the size cosigned");
            return Answer {
                status,
                content_type: SIZE_CONTENT_TYPE,
                body: witness::size_body(witnessed),
            };
        }
        if !refusal.is_conflict() {
            warn!(%origin, status, reason = %refusal, "witness: checkpoint refused");
            return text(status, refusal.to_string());
        }
        let peer = server.logs.get(origin).map(|l| l.peer.clone()).unwrap_or_default();
        error!(
            %origin,
            %peer,
            status,
            reason = %refusal,
            "witness: CONFLICT: peer {peer} signed a checkpoint inconsistent with one this hub cosigned; its log was \
             rewritten or forked (a store restored from an older copy?). The checkpoint is kept as evidence in this \
             hub's log (an OPERATOR_ACTION receipt); compare it with what its auditors hold"
        );
        self.count(origin, true);
        let (size, root) = match &refusal {
            Refusal::Fork { size, root, .. } => (*size, *root),
            _ => note_size_root(&req.note).unwrap_or((0, [0; 32])),
        };
        let first = server.recorded.locked().insert((origin.to_string(), size, root));
        if first {
            let detail = format!(
                "witness conflict: peer {peer} ({origin}) signed a checkpoint inconsistent with the one this hub \
                 cosigned: {refusal}; the checkpoint, as submitted: {}",
                b64(req.note.as_bytes())
            );
            match store.record_action(detail, self.actor.clone()).await {
                Ok(()) => info!(%origin, size, "witness: conflict recorded in this hub's log"),
                Err(e) => error!(%origin, error = %e, "witness: the conflict could not be recorded in this hub's log"),
            }
        }
        text(status, refusal.to_string())
    }
}

/// The size and root of a checkpoint note, its signatures unchecked (it was
/// checked before a conflict is found).
fn note_size_root(note: &str) -> Option<(u64, Hash)> {
    let n = truc_core::c2sp::Note::parse(note.as_bytes()).ok()?;
    let cp = truc_core::c2sp::Checkpoint::parse_text(&n.text).ok()?;
    Some((cp.size, cp.root))
}
