//! The commands the machine applies, and what each returns.

use truc_core::routing::HubId;
use truc_core::AgencyCode;
use truc_proto::v1::{AgencyState, ProvenReceipt};

use super::batch::Batch;
use super::documents::Sent;
use super::{agencies, copies, directory, documents, payloads, peers, quarantine, Env};
use crate::{AgencyInfo, ExpireOutcome, NewDocument, Quarantined, RemoteAgency, StatusReport, StoreError};

/// A change asked of the store, typed.
#[derive(Debug)]
pub(crate) enum Command {
    /// Store a verified document (idempotent on sender and document id).
    Send(Box<NewDocument>),
    /// Whether a Send would pass the store's checks now (writes nothing).
    Precheck {
        from: AgencyCode,
        document_id: Option<String>,
        to: Vec<AgencyCode>,
        size: u64,
    },
    /// Record a business status and route it to the counterpart.
    Status(Box<StatusReport>),
    /// Acknowledge deliveries.
    Ack {
        agency: AgencyCode,
        ids: Vec<u64>,
        actor: String,
    },
    /// A lease on a copy ran out.
    Expire {
        agency: AgencyCode,
        id: u64,
        max_attempts: u32,
    },
    /// Register an agency, or rename one.
    PutAgency {
        code: AgencyCode,
        name: String,
        actor: String,
    },
    /// Suspend or resume an agency.
    SetState {
        code: AgencyCode,
        state: AgencyState,
        reason: String,
        actor: String,
    },
    /// Retire an agency into its successor.
    Retire {
        code: AgencyCode,
        successor: AgencyCode,
        reason: String,
        actor: String,
    },
    /// Remove an agency that never had traffic.
    RemoveAgency {
        code: AgencyCode,
        reason: String,
        actor: String,
    },
    /// Dead letters back into the outbox (all when `ids` is empty).
    Redrive {
        agency: AgencyCode,
        ids: Vec<u64>,
        actor: String,
    },
    /// Dead letters deleted (all when `ids` is empty).
    Purge {
        agency: AgencyCode,
        ids: Vec<u64>,
        actor: String,
    },
    /// An operator action that leaves no other trace.
    Record { detail: String, actor: String },
    /// A payload stored for a refused document becomes collectable.
    Release { sha256: Vec<u8> },
    /// Delete payloads released before the time.
    Collect { released_before_unix_ms: i64, limit: usize },
    /// Quarantine a damaged document.
    Quarantine { hub_id: u64, what: String, actor: String },
    /// A peer hub accepted an item of its outbox (federation); for a
    /// document, with its ACCEPTED receipt.
    Forwarded {
        peer: HubId,
        items: Vec<(u64, Option<ProvenReceipt>)>,
    },
    /// A peer hub refused an item of its outbox.
    ForwardRefused {
        peer: HubId,
        id: u64,
        max_attempts: u32,
        why: String,
    },
    /// A peer hub reported one of its receipts about a document.
    PeerReport { peer: HubId, receipt: ProvenReceipt },
    /// A peer hub's view of the federated directory.
    PeerDirectory { peer: HubId, entries: Vec<RemoteAgency> },
}

impl Command {
    /// A command that writes nothing: answered at once, not after a commit.
    pub(crate) fn read_only(&self) -> bool {
        matches!(self, Command::Precheck { .. })
    }
}

/// What a command did, once its batch commits.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A Send: the document's ids, its receipt's index, who to notify.
    Sent(Sent),
    /// A Precheck passed.
    Checked,
    /// A status was recorded: its receipt's index, who got a notice.
    StatusReported {
        receipt_index: u64,
        notify: Vec<AgencyCode>,
    },
    /// Copies newly acknowledged.
    Acked(u32),
    /// What the lease's end did.
    Expired(ExpireOutcome),
    /// The agency as it now is.
    Agency(AgencyInfo),
    /// The agency was removed.
    Removed,
    /// Dead letters redriven or purged.
    Moved(u64),
    /// An operator action recorded, or a payload released.
    Done,
    /// Payloads collected.
    Collected(u64),
    /// What quarantining did.
    Quarantined(Quarantined),
    /// A peer's report applied: the agencies whose outbox changed.
    Reported(Vec<AgencyCode>),
    /// Directory entries changed.
    Changed(u32),
}

/// Apply `cmd` to the batch. A refused command leaves nothing in it: every
/// command checks first and writes only when it will succeed. One that
/// fails after it has begun to write (a read failing half-way) spoils the
/// batch, and the writer commits none of it ([`Batch::spoiled`]).
pub(crate) fn apply(p: &mut Batch<'_>, env: &dyn Env, cmd: Command) -> Result<Outcome, StoreError> {
    let mark = p.write_mark();
    let r = apply_checked(p, env, cmd);
    if let Err(e) = &r {
        if p.wrote_since(mark) {
            p.spoil(e);
        }
    }
    r
}

fn apply_checked(p: &mut Batch<'_>, env: &dyn Env, cmd: Command) -> Result<Outcome, StoreError> {
    Ok(match cmd {
        Command::Send(doc) => Outcome::Sent(documents::send(p, env, *doc)?),
        Command::Precheck {
            from,
            document_id,
            to,
            size,
        } => {
            documents::precheck(p, env, &from, document_id.as_deref(), &to, size)?;
            Outcome::Checked
        }
        Command::Status(report) => {
            let (receipt_index, notify) = documents::report_status(p, *report)?;
            Outcome::StatusReported { receipt_index, notify }
        }
        Command::Ack { agency, ids, actor } => Outcome::Acked(copies::ack(p, &agency, &ids, &actor)?),
        Command::Expire {
            agency,
            id,
            max_attempts,
        } => Outcome::Expired(copies::expire(p, &agency, id, max_attempts)?),
        Command::PutAgency { code, name, actor } => Outcome::Agency(agencies::put(p, env, code, name, &actor)?),
        Command::SetState {
            code,
            state,
            reason,
            actor,
        } => Outcome::Agency(agencies::set_state(p, env, &code, state, &reason, &actor)?),
        Command::Retire {
            code,
            successor,
            reason,
            actor,
        } => Outcome::Agency(agencies::retire(p, env, &code, &successor, &reason, &actor)?),
        Command::RemoveAgency { code, reason, actor } => {
            agencies::remove(p, env, &code, &reason, &actor)?;
            Outcome::Removed
        }
        Command::Redrive { agency, ids, actor } => Outcome::Moved(copies::redrive(p, &agency, &ids, &actor)?),
        Command::Purge { agency, ids, actor } => Outcome::Moved(copies::purge(p, &agency, &ids, &actor)?),
        Command::Record { detail, actor } => {
            copies::record(p, detail, &actor)?;
            Outcome::Done
        }
        Command::Release { sha256 } => {
            payloads::release_unreferenced(p, &sha256)?;
            Outcome::Done
        }
        Command::Collect {
            released_before_unix_ms,
            limit,
        } => Outcome::Collected(payloads::collect(p, env, released_before_unix_ms, limit)?),
        Command::Quarantine { hub_id, what, actor } => {
            Outcome::Quarantined(quarantine::quarantine(p, hub_id, &what, &actor)?)
        }
        Command::Forwarded { peer, items } => {
            for (id, next) in items {
                peers::forwarded(p, &peer, id, next)?;
            }
            Outcome::Done
        }
        Command::ForwardRefused {
            peer,
            id,
            max_attempts,
            why,
        } => Outcome::Expired(peers::refused(p, &peer, id, max_attempts, &why)?),
        Command::PeerReport { peer, receipt } => Outcome::Reported(peers::apply_report(p, &peer, &receipt)?),
        Command::PeerDirectory { peer, entries } => Outcome::Changed(directory::apply(p, &peer, entries)?),
    })
}
