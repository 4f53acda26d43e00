use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk or the embedded database failed (full disk, I/O error).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored record does not decode.
    #[error("stored record {0} is corrupt")]
    Corrupt(String),
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
        /// "suspended" or "retired".
        state: &'static str,
    },
    /// The document id was already used for a different document.
    #[error("document id {document_id:?} was already used by {from} for a different document")]
    Conflict {
        /// Sender.
        from: String,
        /// Its document id.
        document_id: String,
    },
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
    Damaged {
        /// The hub's id of the document.
        hub_document_id: u64,
        /// What is wrong.
        what: String,
    },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { .. } => StoreError::Corrupt("in the database files".into()),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}
