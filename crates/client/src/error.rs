//! What can go wrong in the SDK: one [`ClientError`] for every call, with
//! its cause kept and, for a hub's refusal, its gRPC code.

use std::fmt;
use std::path::PathBuf;

use tonic::{Code, Status};
use truc_core::CoreError;
use truc_pki::PkiError;
use truc_proto::names::grpc_code_name;

/// Why a call of the SDK failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The identity directory is missing or unusable.
    Identity(PkiError),
    /// The hub address is malformed or the hub cannot be reached.
    Connect {
        /// The address given.
        hub: String,
        /// Why, with every cause the transport gave.
        reason: String,
    },
    /// A document could not be signed or verified.
    Document(CoreError),
    /// The hub refused or failed the call, or the connection to it broke
    /// mid-call: its status, code and message as received.
    Rpc(Status),
    /// A file of a transfer could not be read or written.
    File {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The hub answered, but not as the protocol says: a field missing,
    /// a chunk at an offset not due, more bytes than were signed.
    Answer(String),
    /// A chunked upload or download could not finish here: a worker
    /// stopped, or the bytes downloaded do not match the signed size and
    /// digest.
    Transfer(String),
}

impl ClientError {
    /// The gRPC code of the hub's answer; `None` for a failure of the SDK's
    /// own (an identity, a file, a connection never made).
    pub fn code(&self) -> Option<Code> {
        self.status().map(Status::code)
    }

    /// The hub's answer, for its message and metadata.
    pub fn status(&self) -> Option<&Status> {
        match self {
            ClientError::Rpc(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is the hub going away or not being there (worth
    /// waiting for), as opposed to an answer (refused, not found, …);
    /// see [`crate::reconnect::is_transient`].
    pub fn is_transient(&self) -> bool {
        self.status().is_some_and(crate::reconnect::is_transient)
    }

    /// A file error of a transfer.
    pub(crate) fn file(path: &std::path::Path, source: std::io::Error) -> ClientError {
        ClientError::File {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        ClientError::Rpc(s)
    }
}

impl From<PkiError> for ClientError {
    fn from(e: PkiError) -> Self {
        ClientError::Identity(e)
    }
}

impl From<CoreError> for ClientError {
    fn from(e: CoreError) -> Self {
        ClientError::Document(e)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Identity(e) => e.fmt(f),
            ClientError::Connect { hub, reason } => write!(f, "cannot connect to {hub}: {reason}"),
            ClientError::Document(e) => e.fmt(f),
            ClientError::Rpc(s) if s.message().is_empty() => f.write_str(grpc_code_name(s.code())),
            ClientError::Rpc(s) => write!(f, "{}: {}", grpc_code_name(s.code()), s.message()),
            ClientError::File { path, source } => write!(f, "{}: {source}", path.display()),
            ClientError::Answer(what) => write!(f, "the hub's answer: {what}"),
            ClientError::Transfer(what) => write!(f, "transfer: {what}"),
        }
    }
}

impl std::error::Error for ClientError {
    /// The cause below what [`Display`](fmt::Display) says: an identity's
    /// or a document's own cause, the transport error under a status (a
    /// broken connection), the OS error of a file.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Identity(e) => e.source(),
            ClientError::Document(e) => e.source(),
            ClientError::Rpc(s) => s.source(),
            ClientError::File { source, .. } => Some(source),
            ClientError::Connect { .. } | ClientError::Answer(_) | ClientError::Transfer(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_status_keeps_its_code_and_message() {
        let e = ClientError::from(Status::not_found("agency 000.00.00.H99 is not registered"));
        assert_eq!(e.code(), Some(Code::NotFound));
        assert_eq!(e.to_string(), "NOT_FOUND: agency 000.00.00.H99 is not registered");
        assert_eq!(
            e.status().map(Status::message),
            Some("agency 000.00.00.H99 is not registered")
        );
        assert!(!e.is_transient());
        assert!(ClientError::from(Status::unavailable("the hub is shutting down")).is_transient());
        assert_eq!(ClientError::from(Status::cancelled("")).to_string(), "CANCELLED");
    }

    #[test]
    fn a_status_over_a_broken_connection_keeps_the_transport_error_as_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        let e = ClientError::from(Status::from_error(Box::new(io)));
        let source = e.source().expect("the transport error");
        assert!(source.to_string().contains("connection reset"), "{source}");
        assert!(truc_core::error_chain(&e).contains("connection reset"), "{e}");
    }

    #[test]
    fn failures_of_the_sdk_itself_have_no_code() {
        let e = ClientError::file(
            std::path::Path::new("/nowhere/x.pdf"),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        );
        assert_eq!(e.code(), None);
        assert_eq!(e.to_string(), "/nowhere/x.pdf: no such file");
        assert_eq!(e.source().map(ToString::to_string), Some("no such file".to_string()));
        assert_eq!(ClientError::Transfer("hub sent offset 3".into()).code(), None);
    }
}
