//! The requests the writer takes: a command of the state machine with the
//! way to answer it once its batch is committed, or one of the few
//! requests that are the writer's own (pins, moving a damaged payload file
//! aside, catching up with a shared log).

use tokio::sync::oneshot;

use super::writer::{commit_error, reply, Committed, Completion};
use super::{gc, Cache};
use crate::machine::{self, Batch, Command, Outcome};
use crate::StoreError;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// How a command is answered: with its outcome and, once the batch is
/// committed, the committed batch (`None` for a read-only command,
/// answered at once); or with the error that refused it or its batch.
pub(super) type Answer = Box<dyn FnOnce(Result<(Outcome, Option<&Committed>), StoreError>) + Send>;

pub(super) enum Op {
    /// A command of the state machine.
    Command(Command, Answer),
    /// Hold a payload against collection (answered at once).
    Pin {
        sha256: Vec<u8>,
        reply: Reply<crate::PayloadPin>,
    },
    /// A damaged payload file: moved aside, then its documents quarantined.
    QuarantinePayload {
        sha256: Vec<u8>,
        hub_ids: Vec<u64>,
        what: String,
        actor: String,
        reply: Reply<Vec<crate::Quarantined>>,
    },
    /// Replicated store: apply what other hubs appended to the log (and
    /// answer once the local view has caught up with the log's end). The
    /// writer handles it itself; it is never applied to a batch.
    Sync(Option<Reply<()>>),
}

impl Op {
    /// Apply the request to the batch; returns what to do once the batch
    /// is committed (or failed).
    pub(super) fn apply(self, p: &mut Batch<'_>, cache: &Cache) -> Completion {
        match self {
            Op::Command(cmd, answer) => {
                if cmd.read_only() {
                    answer(machine::apply(p, cache, cmd).map(|o| (o, None)));
                    return Box::new(|_| {});
                }
                match machine::apply(p, cache, cmd) {
                    Ok(outcome) => Box::new(move |c: Result<&Committed, &StoreError>| match c {
                        Ok(c) => answer(Ok((outcome, Some(c)))),
                        Err(e) => answer(Err(commit_error(e))),
                    }),
                    Err(e) => Box::new(move |_| answer(Err(e))),
                }
            }
            Op::Pin { sha256, reply: tx } => {
                // Answered at once: a pin writes nothing.
                reply(tx, Ok(gc::pin(cache, sha256)));
                Box::new(|_| {})
            }
            Op::QuarantinePayload {
                sha256,
                hub_ids,
                what,
                actor,
                reply: tx,
            } => {
                let r = gc::quarantine_payload_file(cache, &sha256).and_then(|moved| {
                    if let Some(to) = moved {
                        tracing::error!(payload = %truc_core::hex(&sha256), to = %to.display(), "damaged payload file moved to quarantine");
                    }
                    hub_ids
                        .iter()
                        .map(|&id| machine::quarantine::quarantine(p, id, &what, &actor))
                        .collect::<Result<Vec<_>, _>>()
                });
                Box::new(move |c: Result<&Committed, &StoreError>| match (c, r) {
                    (_, Err(e)) => reply(tx, Err(e)),
                    (Err(e), Ok(_)) => reply(tx, Err(commit_error(e))),
                    (Ok(_), Ok(v)) => reply(tx, Ok(v)),
                })
            }
            Op::Sync(tx) => Box::new(move |c: Result<&Committed, &StoreError>| {
                if let Some(tx) = tx {
                    reply(tx, c.map(|_| ()).map_err(commit_error))
                }
            }),
        }
    }
}

impl Op {
    /// Refuse the request without applying it (the writer cannot commit
    /// now): nothing of it is stored.
    pub(super) fn refuse(self, e: &StoreError) {
        match self {
            Op::Command(_, answer) => answer(Err(commit_error(e))),
            Op::Pin { reply: tx, .. } => reply(tx, Err(commit_error(e))),
            Op::QuarantinePayload { reply: tx, .. } => reply(tx, Err(commit_error(e))),
            Op::Sync(tx) => {
                if let Some(tx) = tx {
                    reply(tx, Err(commit_error(e)))
                }
            }
        }
    }
}

/// The error for an outcome that is not the one a command gives (a bug in
/// the store, said as such rather than a panic in the writer).
pub(super) fn unexpected(cmd: &str, o: &Outcome) -> StoreError {
    StoreError::corrupt(format!("the store's {cmd} command gave an unexpected outcome ({o:?})"))
}
