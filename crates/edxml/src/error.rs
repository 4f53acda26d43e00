//! The crate's one error type.

use std::io;

/// Why a package was refused, or why writing one failed.
///
/// Every refusal names the element it concerns as a path of local names from the root,
/// e.g. `edXML/edXMLEnvelope/edXMLHeader/MessageHeader/From`, available as
/// [`Error::element`]; the message gives the reason. Causes (XML syntax, base64, I/O) are
/// kept as [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not well-formed XML: bytes before the XML declaration, an unbound
    /// namespace prefix, mismatched tags, bad UTF-8, truncated input.
    #[error("{element}: not well-formed XML: {reason}")]
    NotXml {
        /// The element being read when it was found (or `(prolog)` before the root).
        element: String,
        /// What was wrong.
        reason: String,
        /// The XML reader's error, when it found the problem.
        #[source]
        source: Option<quick_xml::Error>,
    },
    /// An element is in another namespace than QCVN 102's
    /// (`http://www.mic.gov.vn/TBT/QCVN_102_2016`), or in none.
    #[error("{element}: namespace {found} is not {}", crate::NAMESPACE)]
    WrongNamespace {
        /// The element.
        element: String,
        /// The namespace it resolved to, or `(none)`.
        found: String,
    },
    /// A required element is absent (From, To, DocumentId, MessageHeader, StatusCode…).
    #[error("{element}: required element missing")]
    Missing {
        /// The missing element, as the path where it was expected.
        element: String,
    },
    /// An element is present but its value or shape is not acceptable (an integer field
    /// that is not an integer, an unknown status code, text where elements are expected…).
    #[error("{element}: {reason}")]
    Invalid {
        /// The element.
        element: String,
        /// What was wrong.
        reason: String,
    },
    /// An attachment's `ContentTransferEncoded` is not valid base64.
    #[error("{element}: base64 does not decode (at base64 character {offset})")]
    Base64 {
        /// The `ContentTransferEncoded` element.
        element: String,
        /// Offset, in base64 characters (whitespace not counted), where decoding failed.
        offset: u64,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },
    /// A manifest `Reference` names a content id that no `Attachment` carries.
    #[error("{element}: content id {content_id:?} has no attachment in AttachmentEncoded")]
    DanglingReference {
        /// The `Reference` element (with its position).
        element: String,
        /// The content id that was not found.
        content_id: String,
    },
    /// A document type declaration was found. Any DOCTYPE is refused: entity
    /// declarations are how entity-expansion bombs (billion laughs) and external entities
    /// (XXE) are written, and edXML needs none.
    #[error(
        "{element}: DOCTYPE refused: no DTD or entity declaration is accepted (entity expansion, external entities)"
    )]
    Doctype {
        /// Where it was found (`(prolog)` before the root).
        element: String,
    },
    /// A reference to an entity that is not one of XML's five predefined ones or a
    /// character reference (it could only come from a DTD, which is refused).
    #[error("{element}: entity reference &{name}; refused: only XML's predefined entities and character references are accepted")]
    Entity {
        /// The element whose text held it.
        element: String,
        /// The entity's name.
        name: String,
    },
    /// The package is larger than the caller's limit, or its markup (everything except
    /// the base64 of attachments) is larger than [`crate::Limits::max_markup_bytes`].
    #[error("{element}: package over the size limit: {what} larger than {limit} bytes")]
    TooLarge {
        /// The element being read when the limit was reached.
        element: String,
        /// Which limit: `package` or `markup`.
        what: &'static str,
        /// The limit in bytes.
        limit: u64,
    },
    /// The caller's attachment sink or source failed.
    #[error("{element}: attachment {index}: {action} failed")]
    Attachment {
        /// The attachment element.
        element: String,
        /// The attachment's position in AttachmentEncoded, from 0.
        index: usize,
        /// `writing to the sink` or `reading from the source`.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Reading the package or writing the output failed.
    #[error("{element}: I/O error")]
    Io {
        /// The element being read or written.
        element: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The element the error concerns: a path of local names from the root, e.g.
    /// `edXML/edXMLEnvelope/edXMLHeader/MessageHeader/DocumentId`.
    pub fn element(&self) -> &str {
        match self {
            Error::NotXml { element, .. }
            | Error::WrongNamespace { element, .. }
            | Error::Missing { element }
            | Error::Invalid { element, .. }
            | Error::Base64 { element, .. }
            | Error::DanglingReference { element, .. }
            | Error::Doctype { element }
            | Error::Entity { element, .. }
            | Error::TooLarge { element, .. }
            | Error::Attachment { element, .. }
            | Error::Io { element, .. } => element,
        }
    }
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
