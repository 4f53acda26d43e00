use std::path::PathBuf;

use thiserror::Error;

/// Damage found in the store's files: what, where, what it costs, and how
/// to recover. The store refuses to open (or to go on) rather than lose or
/// fork what it acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The damaged (or missing) file.
    pub file: PathBuf,
    /// Where in it, when known.
    pub offset: Option<u64>,
    /// What is wrong.
    pub what: String,
    /// What would be lost by going on without it.
    pub lost: String,
    /// `trucd repair --accept-loss` can set the damage aside (damage to the
    /// log); otherwise only a backup helps (damage to sled's own files).
    pub repairable: bool,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(o) = self.offset {
            write!(f, " at offset {o}")?;
        }
        write!(f, ": {}; going on would lose {}. ", self.what, self.lost)?;
        if self.repairable {
            write!(
                f,
                "Restore the data directory from a backup, or accept the loss with `trucd repair \
                 --accept-loss` (it keeps the damaged files aside and writes a receipt of what was dropped)"
            )?;
        } else {
            write!(
                f,
                "Restore the data directory from a backup (a JetStream hub: move data_dir aside and start \
                 again to rebuild it from the shared log); `trucd repair` cannot rebuild it"
            )?;
        }
        write!(f, "; see docs/storage.md, \"Damage at rest\"")
    }
}

/// Why a store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk or the embedded database failed (full disk, I/O error).
    #[error("storage unavailable: {what}")]
    Unavailable {
        /// What failed.
        what: String,
        /// Why, when a lower layer said.
        #[source]
        source: Option<Cause>,
    },
    /// A stored record does not decode.
    #[error("stored record {what} is corrupt")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why, when the decoder said.
        #[source]
        source: Option<Cause>,
    },
    /// The store's files are damaged: it will not open, or go on, until
    /// an operator restores or repairs it.
    #[error("the store is damaged: {0}")]
    Damaged(Damage),
    /// A file of the store could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A batch reached the log but could not be finished (its sync, or
    /// applying it, failed): it may be durable, and will then be kept. The
    /// caller must retry with the same ids, which are then answered as
    /// duplicates if it was kept.
    #[error("the outcome is unknown: {0}")]
    OutcomeUnknown(String),
    /// The store is shutting down.
    #[error("the store is shutting down")]
    Closed,
    /// An agency is not registered.
    #[error("agency {0} is not registered")]
    UnknownAgency(String),
    /// An agency may not send or be addressed now.
    #[error("agency {code} is {state}")]
    AgencyInactive {
        /// The agency.
        code: String,
        /// Its state (suspended, retired).
        state: truc_proto::names::Wire<truc_proto::v1::AgencyState>,
    },
    /// The document id was already used for a different document.
    #[error("document id {document_id:?} was already used by {from} for a different document")]
    Conflict {
        /// Sender.
        from: String,
        /// Its document id.
        document_id: String,
    },
    /// The business action was already taken with other content (a
    /// document revoked twice, differently).
    #[error("{0}")]
    AlreadyDone(String),
    /// No such delivery for this agency.
    #[error("no delivery {0} for this agency")]
    UnknownDelivery(u64),
    /// No such document from this sender.
    #[error("no document {document_id:?} from {from}")]
    UnknownDocument {
        /// Sender.
        from: String,
        /// Its document id.
        document_id: String,
    },
    /// The caller may not do this to this document or query.
    #[error("{0}")]
    NotEntitled(String),
    /// The request does not fit the document's state.
    #[error("{0}")]
    Precondition(String),
    /// The disk is nearly full; nothing was written.
    #[error("{0}")]
    DiskFull(String),
    /// A storage quota would be exceeded.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A request argument is out of range.
    #[error("{0}")]
    InvalidArgument(String),
    /// One document's stored copy is damaged at rest (its body fails its
    /// checksum or does not decode): the caller quarantines it
    /// ([`crate::Store::quarantine`]) and goes on with the others.
    #[error("the stored copy of document {hub_document_id} is damaged: {what}")]
    DocumentDamaged {
        /// The hub's id of the document.
        hub_document_id: u64,
        /// What is wrong.
        what: String,
    },
}

/// The error a lower layer (sled, the OS, a decoder, NATS) gave.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl StoreError {
    /// Storage unavailable: `what` failed.
    pub fn unavailable(what: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            what: what.into(),
            source: None,
        }
    }

    /// Storage unavailable: `what` failed, because of `source`.
    pub fn unavailable_from(what: impl Into<String>, source: impl Into<Cause>) -> StoreError {
        StoreError::Unavailable {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// The stored record `what` does not decode.
    pub fn corrupt(what: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            what: what.into(),
            source: None,
        }
    }

    /// The stored record `what` does not decode, as `source` says.
    pub fn corrupt_from(what: impl Into<String>, source: impl Into<Cause>) -> StoreError {
        StoreError::Corrupt {
            what: what.into(),
            source: Some(source.into()),
        }
    }
}

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        use fjall::Error as E;
        let damaged = |what: String| {
            StoreError::Damaged(Damage {
                file: PathBuf::from("fjall"),
                offset: None,
                what,
                lost: "the hub's state held there (agencies, queues, receipts)".into(),
                repairable: false,
            })
        };
        match e {
            E::Storage(lsm_tree::Error::Io(io)) | E::Io(io) => {
                StoreError::unavailable_from("the embedded database (fjall) failed", io)
            }
            E::Poisoned => StoreError::unavailable("the embedded database (fjall) refuses writes after a failed sync"),
            E::Storage(inner) => damaged(format!("the store's database fails its checks ({inner})")),
            other => damaged(format!("the store's database cannot be read ({other})")),
        }
    }
}

impl From<lsm_tree::Error> for StoreError {
    fn from(e: lsm_tree::Error) -> Self {
        fjall::Error::Storage(e).into()
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { at, .. } => StoreError::Damaged(Damage {
                file: PathBuf::from("db"),
                offset: at.map(|a| a.lid()),
                what: "sled's database file fails its checksums".into(),
                lost: "the hub's state held there (agencies, queues, receipts)".into(),
                repairable: false,
            }),
            other => StoreError::unavailable_from("the embedded database (sled) failed", other),
        }
    }
}
