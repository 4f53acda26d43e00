//! Every failure of `truc`, in one place: its exit code, a short code name,
//! the message and the next step (a hint). Printed as text on stderr, or
//! as `{"error":{"code":…,"message":…,"hint":…}}` on stdout with `--json`.
//!
//! Exit codes (also in `truc --help` and the README):
//!
//! | code | meaning | from |
//! |---|---|---|
//! | 0 | ok | |
//! | 1 | failed | anything else (a local file, an internal error) |
//! | 2 | usage | bad arguments (clap), INVALID_ARGUMENT |
//! | 3 | not found | NOT_FOUND, an unknown agency or document |
//! | 4 | refused | PERMISSION_DENIED, UNAUTHENTICATED, FAILED_PRECONDITION, ALREADY_EXISTS, RESOURCE_EXHAUSTED; an unusable identity |
//! | 5 | unavailable | UNAVAILABLE, DEADLINE_EXCEEDED; the hub cannot be reached |
//! | 6 | verification failed | a signature, receipt or proof that does not verify |

use serde_json::json;
use tonic::Code;
use truc_proto::names::grpc_code_name;

/// What kind of failure, and so the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Failed = 1,
    Usage = 2,
    NotFound = 3,
    Refused = 4,
    Unavailable = 5,
    Verification = 6,
}

impl Kind {
    /// The code name in JSON errors.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Failed => "failed",
            Kind::Usage => "usage",
            Kind::NotFound => "not_found",
            Kind::Refused => "refused",
            Kind::Unavailable => "unavailable",
            Kind::Verification => "verification_failed",
        }
    }
}

/// A failure the CLI itself states: its kind, message and next step.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) kind: Kind,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

#[allow(dead_code)] // the constructors each command needs
impl Problem {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Problem {
        Problem {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn usage(message: impl Into<String>) -> Problem {
        Self::new(Kind::Usage, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Problem {
        Self::new(Kind::NotFound, message)
    }

    pub(crate) fn refused(message: impl Into<String>) -> Problem {
        Self::new(Kind::Refused, message)
    }

    pub(crate) fn verification(message: impl Into<String>) -> Problem {
        Self::new(Kind::Verification, message)
    }
}

/// The kind of a gRPC status code.
pub(crate) fn kind_of(code: Code) -> Kind {
    match code {
        Code::Ok => Kind::Failed,
        Code::InvalidArgument | Code::OutOfRange => Kind::Usage,
        Code::NotFound => Kind::NotFound,
        Code::PermissionDenied
        | Code::Unauthenticated
        | Code::FailedPrecondition
        | Code::AlreadyExists
        | Code::ResourceExhausted => Kind::Refused,
        Code::Unavailable | Code::DeadlineExceeded => Kind::Unavailable,
        _ => Kind::Failed,
    }
}

/// A failure, classified: what is printed and the exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) kind: Kind,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl Failure {
    pub(crate) fn exit_code(&self) -> u8 {
        self.kind as u8
    }

    /// `{"error":{"code":…,"message":…,"hint":…}}`.
    pub(crate) fn json(&self) -> serde_json::Value {
        json!({"error": {"code": self.kind.name(), "message": self.message, "hint": self.hint}})
    }

    /// `truc: message` and, on its own line, `  hint: …`.
    pub(crate) fn text(&self) -> String {
        match &self.hint {
            Some(h) => format!("truc: {}\n  hint: {h}", self.message),
            None => format!("truc: {}", self.message),
        }
    }
}

/// Classify any error a command returned.
pub(crate) fn classify(e: &anyhow::Error) -> Failure {
    for cause in e.chain() {
        if let Some(p) = cause.downcast_ref::<Problem>() {
            return Failure {
                kind: p.kind,
                message: format!("{e:#}"),
                hint: p.hint.clone(),
            };
        }
        if let Some(s) = cause.downcast_ref::<tonic::Status>() {
            return from_status(s);
        }
        if let Some(c) = cause.downcast_ref::<truc_client::ClientError>() {
            return from_client(c);
        }
        if let Some(v) = cause.downcast_ref::<truc_client::audit::VerifyError>() {
            return Failure {
                kind: Kind::Verification,
                message: format!("{e:#}"),
                hint: verify_hint(v),
            };
        }
        if let Some(a) = cause.downcast_ref::<truc_client::audit::AuditError>() {
            use truc_client::audit::AuditError as A;
            match a {
                A::Rpc(c) => return from_client(c),
                A::BadTreeHead(_) | A::Inconsistent(_) => {
                    return Failure {
                        kind: Kind::Verification,
                        message: format!("{e:#}"),
                        hint: Some("keep the state file and the hub's answers: they are the evidence".into()),
                    }
                }
                _ => {}
            }
        }
        if let Some(p) = cause.downcast_ref::<truc_pki::PkiError>() {
            return from_pki(p, format!("{e:#}"));
        }
    }
    Failure {
        kind: Kind::Failed,
        message: format!("{e:#}"),
        hint: None,
    }
}

fn verify_hint(v: &truc_client::audit::VerifyError) -> Option<String> {
    let _ = v;
    Some("the export or the key is not what the hub signed: check --hub-key (the hub's receipts.pub)".into())
}

/// A status from the hub: its code names the kind; the message is the
/// hub's, which says what was wrong.
pub(crate) fn from_status(s: &tonic::Status) -> Failure {
    let kind = kind_of(s.code());
    let transient = truc_client::reconnect::is_transient(s);
    let hint = match s.code() {
        _ if transient => Some(
            "the hub went away or cannot be reached: is trucd running at the address in --hub (TRUC_HUB)? \
             `truc inbox --follow` and `truc ops queues --watch` reconnect by themselves"
                .to_string(),
        ),
        Code::Unauthenticated => Some("check --identity (TRUC_IDENTITY): a certificate from this hub's CA".into()),
        Code::PermissionDenied => {
            Some("the identity in --identity (TRUC_IDENTITY) may not do this: an agency sends and receives, an operator runs `truc ops`, an auditor `truc audit`".into())
        }
        Code::FailedPrecondition if s.message().contains("not registered") => Some(
            "check the code; `truc ops agencies list` (an operator) shows the registered agencies, \
             `truc ops agencies add` registers one"
                .into(),
        ),
        Code::FailedPrecondition if s.message().contains("suspended") => {
            Some("an operator resumes it with `truc ops agencies resume CODE`".into())
        }
        Code::FailedPrecondition => Some("the hub's state does not allow this now; the message says why".into()),
        Code::NotFound => Some("check the code or id; the list commands show what exists".into()),
        Code::ResourceExhausted => Some(
            "a quota or the disk reserve was reached: retry later, or ask an operator (`truc ops queues`, `truc ops storage`)".into(),
        ),
        Code::InvalidArgument | Code::OutOfRange => Some("fix the value the message names and run it again".into()),
        Code::AlreadyExists => Some("it exists already; nothing was changed".into()),
        Code::DataLoss => Some("send the document again with the same document id".into()),
        _ => Some("this is the hub's own failure: its log says more (an operator can read it)".into()),
    };
    let message = if s.code() == Code::Unknown && transient {
        format!("connection to the hub lost: {}", s.message())
    } else {
        format!("{}: {}", grpc_code_name(s.code()), s.message())
    };
    Failure {
        kind: if transient { Kind::Unavailable } else { kind },
        message,
        hint,
    }
}

/// A failure of the SDK: the hub's answer as [`from_status`] says it, a
/// connection that could not be made, an identity, a document.
pub(crate) fn from_client(c: &truc_client::ClientError) -> Failure {
    match c {
        truc_client::ClientError::Rpc(s) => from_status(s),
        truc_client::ClientError::Connect { hub, reason } => super::connect_failure(hub, reason),
        truc_client::ClientError::Identity(p) => from_pki(p, c.to_string()),
        truc_client::ClientError::Document(e) => Failure {
            kind: Kind::Verification,
            message: e.to_string(),
            hint: None,
        },
        other => Failure {
            kind: Kind::Failed,
            message: other.to_string(),
            hint: None,
        },
    }
}

fn from_pki(p: &truc_pki::PkiError, message: String) -> Failure {
    use truc_pki::PkiError as P;
    let (kind, hint) = match p {
        P::KeyPermissions { .. } | P::KeyOwner { .. } => (Kind::Refused, None),
        P::Identity { .. } => (
            Kind::Refused,
            Some("an identity directory is what `truc pki issue` writes: cert.pem, key.pem, ca.pem".to_string()),
        ),
        P::IdentityExists { .. } | P::AlreadyInitialized { .. } => (Kind::Refused, None),
        P::InvalidName { .. } | P::UnknownKeyType(_) | P::Validity(_) | P::Serial { .. } => (Kind::Usage, None),
        P::NotIssued(_) => (
            Kind::NotFound,
            Some("`truc pki list --dir DIR` shows what was issued".into()),
        ),
        _ => (Kind::Failed, None),
    };
    Failure { kind, message, hint }
}
