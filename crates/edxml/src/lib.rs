//! edXML (QCVN 102:2016/BTTTT) for Truc: the typed document model, a streaming parser,
//! a writer, and a normalised comparison.
//!
//! edXML is the package agency document systems (QLVB&ĐH) exchange on Vietnam's document
//! interconnection axis: a `MessageHeader` with the records office's metadata, a
//! `TraceHeaderList` of hops with the `Bussiness` block (new, revoke, update, replace), a
//! manifest, and base64 attachments; or a status message (`StatusCode` 01–06, 13, 15, 16).
//! All elements are in the one namespace [`NAMESPACE`], written with an `edXML:` prefix or
//! in the default namespace: both are accepted and names are checked by namespace
//! resolution, never by prefix text.
//!
//! ```no_run
//! use std::io::BufReader;
//! use truc_edxml::{parse, write, same_content, Limits, MemoryAttachments};
//!
//! let file = BufReader::new(std::fs::File::open("package.edxml")?);
//! let mut files = MemoryAttachments::default();
//! let package = parse(file, Limits::new(2 << 30), &mut files)?;
//! let out = write(&package, Vec::new(), &mut files)?;
//! let again = parse(out.as_slice(), Limits::new(2 << 30), &mut MemoryAttachments::default())?;
//! assert!(same_content(&package, &again));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Reading
//! [`parse`] reads once, as a stream, with `quick-xml`. Attachment bytes are decoded as
//! they come and handed to an [`AttachmentSink`] (a closure, a file writer…), so a 2 GiB
//! attachment is never in memory; the parser records each attachment's size and SHA-256.
//! It refuses, naming the element ([`Error::element`]) and the reason: input that is not
//! XML (bytes before the declaration, an unbound prefix), a wrong namespace, a missing
//! From, To, DocumentId (or, for a status, ResponseFor and StatusCode), base64 that does
//! not decode, a manifest Reference with no attachment, any DOCTYPE (entity expansion
//! bombs and external entities need one; none is ever expanded or fetched), an undefined
//! entity reference, and input over the caller's [`Limits`].
//!
//! It does not refuse what real systems send and the receiver should only be told about:
//! a DocumentId that does not match From, Code or PromulgationDate, or an impossible or
//! `dd/MM/yyyy` date; see [`MessageHeader::warnings`]. Dates are kept as written
//! ([`EdDate`], [`EdDateTime`]): civil local values, never converted to UTC; edXML
//! carries no zone, the axis's is UTC+7 ([`DEFAULT_OFFSET`]).
//!
//! # Writing
//! [`write()`] writes the model back with the namespace, attachments base64-encoded from an
//! [`AttachmentSource`] chunk by chunk. Elements the model does not hold (vendor
//! extensions such as `ResponseForTask`, an XML-DSig `Signature`) are kept by the parser as
//! raw XML in [`Extras`], each after the sibling it followed, and written back unchanged
//! in place (with the namespace declarations they relied on added to their own start
//! tag, so they stay well-formed wherever they go).
//!
//! # Comparing
//! [`same_content`] / [`first_difference`] compare two packages field by field,
//! insensitive to prefixes, attribute order and whitespace, attachments by size and
//! SHA-256.
//!
//! # What is left out, and why
//! - **XML-DSig is carried, not checked or made.** An edXML `Signature` (in the xmldsig
//!   namespace or, unprefixed, in QCVN's) travels unchanged as an unmodelled element; in
//!   Truc the signature that binds a document is Truc's own over its header.
//! - **No DTD at all.** Any DOCTYPE is refused, even a harmless one: edXML defines none,
//!   and refusing them all is what makes entity expansion and external entities
//!   impossible rather than limited.
//! - **UTF-8 only.** A declaration naming another encoding is refused rather than misread.
//! - **Vendor extras are not typed.** `Direction`, `ReplyFors`, `ReferenceCodes`
//!   (OtherInfo), `ResponseForTask`, `ApplicationType` (MessageHeader) and anything
//!   else unknown are kept raw, in place ([`Extras`]), because their meaning differs
//!   between vendors.
//! - **What is between modelled elements.** Comments and processing instructions there
//!   are not kept (inside unmodelled elements they are); attributes on modelled elements
//!   are kept on the root, `TraceHeaderList`, `edXMLManifest` and `Reference`, and
//!   elsewhere reported in [`Package::dropped`] (QCVN 102 defines none there).
//! - **Typed numbers are typed.** `Priority`, `Type`, `PageAmount`… must be integers
//!   (refused otherwise, naming the element); an empty one reads as absent.
//! - **Attachments are streamed only in `AttachmentEncoded/Attachment`.** Base64 met
//!   anywhere else is part of an unmodelled element and counts against
//!   [`Limits::max_markup_bytes`].
//! - **Unmodelled elements nest at most 64 levels** (XML-DSig needs 5).
//! - **A status message is about one document**: several `ResponseFor` are refused.
//!
//! # Mapping onto Truc's signed header
//! This crate depends on nothing else in the workspace. The mapping itself is
//! `truc_client::edxml` (`import`, `export`, `status_request`, `status_package`): every
//! MessageHeader field now has a typed place in `truc.v1.DocumentHeader` (organisation
//! blocks, DocumentType codes, OtherInfo, the Bussiness block, the attachments' manifest),
//! and its `EdxmlForm` keeps what typed fields cannot say (empty elements, odd date forms,
//! unmodelled elements and attributes in place, earlier hops, the manifest as written).
//! StaffInfo's DepartmentId and StaffId travel in statuses too; a status's own Timestamp
//! does not (the hub records its time). The table below was the plan, kept for the
//! element names:
//!
//! | edXML (this crate) | `DocumentHeader` today | not carried yet |
//! |---|---|---|
//! | [`MessageHeader::from`] `.organ_id` | `from` (must match the mTLS and signer identity) | the other 7 organisation fields |
//! | [`MessageHeader::to`] `[i].organ_id` | `to` (routing, fan-out) | the other 7 fields of each |
//! | [`MessageHeader::document_id`] | `document_id` (idempotency with `from`) | — |
//! | [`MessageHeader::subject`] | `subject` | — |
//! | [`Code`] `number`, `notation` | `code_number`, `code_notation` | — |
//! | [`DocumentType`] `name` | `document_type` | `Type`, `TypeDetail` (integers) |
//! | [`OtherInfo`] `priority` 0..4 | `priority` (enum, same 0..4) | the rest of OtherInfo |
//! | [`Business`] `doc_type` | `business_type` (same 0..3) | reason, paper, staff, the update's receiver list, the replacement list (several old documents, each with its agencies) |
//! | [`Business`] `document_id` / [`ReplacementInfo`] `document_id` | `reference_document_id` (one) | several references for a replacement |
//! | [`MessageHeader::due_date`] (civil local date) | `due_date_unix_ms` (an instant) | the local date itself: map with [`DEFAULT_OFFSET`], keep the date |
//! | [`PromulgationInfo`] `date`, `place` | `promulgation_date` (text, `yyyy/MM/dd` local, as written), `promulgation_place` | — |
//! | [`SignerInfo`] | `signer` {competence, position, full_name} | — |
//! | [`MessageHeader::content`], `to_places`, `steering_type` | `content`, `to_places`, `steering_type` | — |
//! | [`MessageHeader::response_for`] | `response_for` {organ_id, code, promulgation_date, document_id}, carried as written | — |
//! | [`TraceHeaderList`] | — (the hub's own receipts and log) | exported as one TraceHeader per hop, hub OrganId and local time |
//! | [`Attachment`]s (content id, name, description, media type, size, SHA-256) | one payload: `payload_sha256`, `payload_size`, `content_type`, `file_name` | several attachments, content id, description |
//! | [`Extras`] (vendor extensions, an edXML XML-DSig `Signature`) | — | to travel as opaque bytes inside the signed document |
//! | status [`StatusHeader`]: `status`, `description`, `staff`, `response_for` | `ReportStatusRequest`: `code`, `description`, `staff` (department, staff, mobile, email), `document_from` + `document_id` | `StaffInfo` `DepartmentId`/`StaffId`, the reporter's `Timestamp` in local time (the hub records its own time in UTC ms) |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod attach;
mod b64;
mod compare;
mod date;
mod error;
mod id;
mod limit;
mod model;
mod parse;
mod write;

pub use attach::{AttachmentSink, AttachmentSource, Discard, MemoryAttachments};
pub use compare::{first_difference, same_content, Difference};
pub use date::{EdDate, EdDateTime, DEFAULT_OFFSET};
pub use error::{Error, Result};
pub use id::{document_id, document_id_warnings, DocumentIdParts};
pub use limit::Limits;
pub use model::*;
pub use parse::parse;
pub use write::write;

/// The one namespace of QCVN 102:2016 edXML.
pub const NAMESPACE: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";
