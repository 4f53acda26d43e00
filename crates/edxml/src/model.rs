//! The typed QCVN 102:2016 model: a document package or a status message.
//!
//! Field docs give the edXML element each field comes from. Optional elements are
//! `Option`s (an absent element and an empty one both read as `None` for numbers and
//! dates; text keeps `Some("")` for an empty element). Every container also keeps the
//! elements it does not model in [`Extras`], with their place, so that a package written
//! back carries them unchanged.

use crate::date::{EdDate, EdDateTime};

/// A whole edXML file: the root `edXML` with its envelope and attachments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// How the QCVN elements were (or will be) written: `edXML:`-prefixed or in the
    /// default namespace. Not content: [`crate::same_content`] ignores it.
    pub style: PrefixStyle,
    /// Attributes of the root `edXML` other than namespace declarations (e.g.
    /// `xsi:schemaLocation`), kept with their namespace.
    pub root_attributes: Vec<Attribute>,
    /// `edXMLEnvelope/edXMLHeader/MessageHeader`: a document's or a status message's.
    pub message: Message,
    /// `edXMLEnvelope/edXMLHeader/TraceHeaderList`, with the Bussiness block.
    pub trace: Option<TraceHeaderList>,
    /// `edXMLEnvelope/edXMLBody/edXMLManifest`.
    pub manifest: Option<Manifest>,
    /// `AttachmentEncoded/Attachment*`, in order. Their bytes are not here: the parser
    /// hands them to an [`crate::AttachmentSink`], the writer reads them from an
    /// [`crate::AttachmentSource`], both by position in this list.
    pub attachments: Vec<Attachment>,
    /// Unmodelled children of the root `edXML`.
    pub root_extras: Extras,
    /// Unmodelled children of `edXMLEnvelope`.
    pub envelope_extras: Extras,
    /// Unmodelled children of `edXMLHeader`: typically the XML-DSig `Signature`.
    pub header_extras: Extras,
    /// Unmodelled children of `edXMLBody`.
    pub body_extras: Extras,
    /// Unmodelled children of `AttachmentEncoded`.
    pub attachments_extras: Extras,
    /// What the parser read but the model does not keep: attributes on modelled elements
    /// other than the root, `TraceHeaderList`, `edXMLManifest` and `Reference` (none are
    /// defined by QCVN 102 there). Not written, not compared; for the caller to report.
    pub dropped: Vec<Warning>,
}

impl Package {
    /// A package holding `message` and nothing else (no trace, manifest, attachments or
    /// unmodelled elements), in the prefixed style.
    ///
    /// ```
    /// use truc_edxml::*;
    ///
    /// let status = Package::new(Message::Status(StatusHeader {
    ///     from: Organization { organ_id: "000.00.00.H41".into(), ..Default::default() },
    ///     response_for: ResponseFor {
    ///         document_id: Some("000.00.00.G22,2018/09/20,7816/VPCP-TTĐT".into()),
    ///         ..Default::default()
    ///     },
    ///     staff: None,
    ///     status: StatusCode::Accepted,
    ///     description: Some("Tiếp nhận văn bản điện tử, vào sổ văn bản đến".into()),
    ///     timestamp: Some(EdDateTime::from(jiff::civil::datetime(2018, 9, 20, 9, 30, 0, 0))),
    ///     extras: Extras::default(),
    /// }));
    /// let xml = write(&status, Vec::new(), &mut MemoryAttachments::default()).unwrap();
    /// let text = String::from_utf8(xml).unwrap();
    /// assert!(text.contains("<edXML:StatusCode>03</edXML:StatusCode>"));
    /// assert!(text.contains("<edXML:Timestamp>2018/09/20 09:30:00</edXML:Timestamp>"));
    /// ```
    pub fn new(message: Message) -> Self {
        Package {
            style: PrefixStyle::default(),
            root_attributes: Vec::new(),
            message,
            trace: None,
            manifest: None,
            attachments: Vec::new(),
            root_extras: Extras::default(),
            envelope_extras: Extras::default(),
            header_extras: Extras::default(),
            body_extras: Extras::default(),
            attachments_extras: Extras::default(),
            dropped: Vec::new(),
        }
    }

    /// The document's MessageHeader, if this is a document package.
    pub fn document(&self) -> Option<&MessageHeader> {
        match &self.message {
            Message::Document(h) => Some(h),
            Message::Status(_) => None,
        }
    }

    /// The status MessageHeader, if this is a status message.
    pub fn status(&self) -> Option<&StatusHeader> {
        match &self.message {
            Message::Status(s) => Some(s),
            Message::Document(_) => None,
        }
    }

    /// The Bussiness block, if there is one.
    pub fn business(&self) -> Option<&Business> {
        self.trace.as_ref()?.business.as_ref()
    }
}

/// How QCVN elements are named on the wire. Both forms are in the one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrefixStyle {
    /// `edXML:` prefix bound on `edXMLEnvelope` (as the VPCP sample writes).
    #[default]
    Prefixed,
    /// Unprefixed, in the default namespace declared on the root.
    Default,
}

/// What the MessageHeader holds: a document, or a status about one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A document package (edoc): new, revoke, update or replace (see [`Business`]).
    Document(MessageHeader),
    /// A status message (`StatusCode` present).
    Status(StatusHeader),
}

/// A document's `MessageHeader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    /// `From`: the sending agency. Required.
    pub from: Organization,
    /// `To*`: the recipients, routing. At least one is required.
    pub to: Vec<Organization>,
    /// `DocumentId`: `<sender OrganId>,<yyyy/MM/dd>,<number>/<notation>`, the natural key.
    /// Required. Kept as text: real systems send ids that disagree with Code or
    /// PromulgationDate; see [`MessageHeader::warnings`].
    pub document_id: String,
    /// `Code` (số, ký hiệu).
    pub code: Option<Code>,
    /// `PromulgationInfo` (địa danh, ngày ban hành).
    pub promulgation: Option<PromulgationInfo>,
    /// `DocumentType`.
    pub document_type: Option<DocumentType>,
    /// `Subject` (trích yếu).
    pub subject: Option<String>,
    /// `Content` (tóm tắt nội dung).
    pub content: Option<String>,
    /// `SignerInfo`.
    pub signer: Option<SignerInfo>,
    /// `DueDate` (hạn xử lý), local date.
    pub due_date: Option<EdDate>,
    /// `ToPlaces/Place*` (nơi nhận as printed on the document; not routing).
    pub to_places: Option<Vec<String>>,
    /// `OtherInfo`.
    pub other_info: Option<OtherInfo>,
    /// `ResponseFor*`: the documents this one answers. Carried unchanged (ids and dates
    /// belong to other agencies).
    pub response_for: Vec<ResponseFor>,
    /// `SteeringType` (chỉ đạo). Sources disagree on the codes (0/1/2 or 1/2/3): kept as
    /// the integer written.
    pub steering_type: Option<i32>,
    /// Unmodelled children (vendor extras such as `ResponseForTask`, `ApplicationType`).
    pub extras: Extras,
}

/// A status message's `MessageHeader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusHeader {
    /// `From`: the agency reporting the status. Required.
    pub from: Organization,
    /// `ResponseFor`: the document the status is about. Required.
    pub response_for: ResponseFor,
    /// `StaffInfo`: who acted.
    pub staff: Option<StaffInfo>,
    /// `StatusCode`, two digits. Required.
    pub status: StatusCode,
    /// `Description`.
    pub description: Option<String>,
    /// `Timestamp`, local time.
    pub timestamp: Option<EdDateTime>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// An organisation block (`From`, `To`): the 8 children QCVN 102 defines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Organization {
    /// `OrganId`: the agency code (e.g. `000.00.00.G22`). Required in From and To.
    pub organ_id: String,
    /// `OrganizationInCharge` (cơ quan chủ quản).
    pub organization_in_charge: Option<String>,
    /// `OrganName`.
    pub organ_name: Option<String>,
    /// `OrganAdd` (address).
    pub organ_add: Option<String>,
    /// `Email`.
    pub email: Option<String>,
    /// `Telephone`.
    pub telephone: Option<String>,
    /// `Fax`.
    pub fax: Option<String>,
    /// `Website`.
    pub website: Option<String>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `Code`: the document's number and notation (số, ký hiệu), e.g. `7816` and `VPCP-TTĐT`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Code {
    /// `CodeNumber`, as text (numbers may carry leading zeros).
    pub number: Option<String>,
    /// `CodeNotation`.
    pub notation: Option<String>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `PromulgationInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PromulgationInfo {
    /// `Place` (địa danh).
    pub place: Option<String>,
    /// `PromulgationDate`, local date.
    pub date: Option<EdDate>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `DocumentType`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DocumentType {
    /// `Type` (1 is used for both "Công văn" and "Thông tư").
    pub kind: Option<i32>,
    /// `TypeDetail`.
    pub detail: Option<i32>,
    /// `TypeName`, e.g. "Công văn".
    pub name: Option<String>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `SignerInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignerInfo {
    /// `Competence` (thẩm quyền: TM., KT., TL., Q.).
    pub competence: Option<String>,
    /// `Position` (chức vụ).
    pub position: Option<String>,
    /// `FullName`.
    pub full_name: Option<String>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `OtherInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OtherInfo {
    /// `Priority` (độ khẩn) 0..4.
    pub priority: Option<i32>,
    /// `SphereOfPromulgation` (phạm vi ban hành).
    pub sphere_of_promulgation: Option<String>,
    /// `TyperNotation` (ký hiệu người đánh máy).
    pub typer_notation: Option<String>,
    /// `PromulgationAmount` (số bản).
    pub promulgation_amount: Option<i64>,
    /// `PageAmount` (số trang).
    pub page_amount: Option<i64>,
    /// `Appendixes/Appendix*` (phụ lục).
    pub appendixes: Option<Vec<String>>,
    /// Unmodelled children (vendor extras such as `Direction`, `ReplyFors`, `ReferenceCodes`).
    pub extras: Extras,
}

/// `ResponseFor`: a reference to another document (the one answered, or for a status the
/// one reported on). Carried unchanged; its date may be impossible in test data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseFor {
    /// `OrganId`.
    pub organ_id: Option<String>,
    /// `Code`, as one text, e.g. `7816/VPCP-TTĐT`.
    pub code: Option<String>,
    /// `PromulgationDate`.
    pub promulgation_date: Option<EdDate>,
    /// `DocumentId`.
    pub document_id: Option<String>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `TraceHeaderList`: the hops the package went through, and the Bussiness block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceHeaderList {
    /// Its attributes (`id`, `version`; the .NET variant adds `mustUnderstand`, `actor`).
    pub attributes: Vec<Attribute>,
    /// `TraceHeader*`, in order.
    pub traces: Vec<TraceHeader>,
    /// `Bussiness` (spelled so in QCVN 102).
    pub business: Option<Business>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `TraceHeader`: one hop.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceHeader {
    /// `OrganId` of the system the package passed through.
    pub organ_id: Option<String>,
    /// `Timestamp`, local time.
    pub timestamp: Option<EdDateTime>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `Bussiness`: what the package does to a document (new, revoke, update, replace).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Business {
    /// `DocumentId`: for revoke and update, the target document (absent in some samples).
    pub document_id: Option<String>,
    /// `BussinessDocType`.
    pub doc_type: Option<BusinessDocType>,
    /// `BussinessDocReason`, free text (e.g. "Thu hồi văn bản điện tử").
    pub reason: Option<String>,
    /// `Paper`: 0/1 (0 = no paper copy sent, unverified).
    pub paper: Option<i32>,
    /// `BussinessDocumentInfo`, with the update's receiver list.
    pub document_info: Option<BusinessDocumentInfo>,
    /// `ReplacementInfoList/ReplacementInfo*`: the documents a replacement replaces.
    pub replacements: Option<Vec<ReplacementInfo>>,
    /// `StaffInfo`.
    pub staff: Option<StaffInfo>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `BussinessDocType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusinessDocType {
    /// 0: a new document.
    New = 0,
    /// 1: revoke (thu hồi) the document named by MessageHeader/DocumentId.
    Revoke = 1,
    /// 2: update (cập nhật) its receivers.
    Update = 2,
    /// 3: replace (thay thế) older documents with this one.
    Replace = 3,
}

impl BusinessDocType {
    /// From the integer edXML writes.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::New,
            1 => Self::Revoke,
            2 => Self::Update,
            3 => Self::Replace,
            _ => return None,
        })
    }

    /// The integer edXML writes.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// `BussinessDocumentInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BusinessDocumentInfo {
    /// `DocumentInfo` (as written; its meaning is vendor-specific).
    pub document_info: Option<String>,
    /// `DocumentReceiver` (as written).
    pub document_receiver: Option<String>,
    /// `ReceiverList/Receiver*`: the update's changes to the receivers.
    pub receivers: Option<Vec<Receiver>>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `Receiver` in an update's `ReceiverList`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receiver {
    /// `OrganId`.
    pub organ_id: Option<String>,
    /// `ReceiverType`: 0 removed, 1 added.
    pub receiver_type: Option<ReceiverType>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `ReceiverType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverType {
    /// 0: the agency is removed from the receivers.
    Removed = 0,
    /// 1: the agency is added.
    Added = 1,
}

/// `ReplacementInfo`: one old document and the agencies it is replaced for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplacementInfo {
    /// `DocumentId` of the old document.
    pub document_id: Option<String>,
    /// `OrganIdList/OrganId*`.
    pub organ_ids: Vec<String>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `StaffInfo`: the person who acted (in Bussiness and in status messages).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StaffInfo {
    /// `Department`.
    pub department: Option<String>,
    /// `DepartmentId` (written by some vendors).
    pub department_id: Option<String>,
    /// `Staff` (name).
    pub staff: Option<String>,
    /// `StaffId` (written by some vendors).
    pub staff_id: Option<String>,
    /// `Email`.
    pub email: Option<String>,
    /// `Mobile`.
    pub mobile: Option<String>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// `StatusCode` of a status message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// 01 Đã đến: arrived, the records office has not acted.
    Arrived,
    /// 02 Từ chối tiếp nhận: refused or returned.
    Refused,
    /// 03 Đã tiếp nhận: accepted and registered.
    Accepted,
    /// 04 Phân công: assigned by a leader.
    Assigned,
    /// 05 Đang xử lý: being processed.
    InProgress,
    /// 06 Hoàn thành: completed.
    Completed,
    /// 13: the sender asks to retrieve (lấy lại) the document.
    RetrievalRequested,
    /// 15: the receiver agrees to an update or retrieval.
    ChangeAgreed,
    /// 16: the receiver refuses an update or retrieval.
    ChangeRefused,
}

impl StatusCode {
    /// Every code, in order.
    pub const ALL: [StatusCode; 9] = [
        Self::Arrived,
        Self::Refused,
        Self::Accepted,
        Self::Assigned,
        Self::InProgress,
        Self::Completed,
        Self::RetrievalRequested,
        Self::ChangeAgreed,
        Self::ChangeRefused,
    ];

    /// The two-digit code edXML writes.
    pub fn code(self) -> &'static str {
        match self {
            Self::Arrived => "01",
            Self::Refused => "02",
            Self::Accepted => "03",
            Self::Assigned => "04",
            Self::InProgress => "05",
            Self::Completed => "06",
            Self::RetrievalRequested => "13",
            Self::ChangeAgreed => "15",
            Self::ChangeRefused => "16",
        }
    }

    /// From the two-digit code (a one-digit `1` is read as `01`).
    pub fn from_code(code: &str) -> Option<Self> {
        let code = code.trim();
        let code = if code.len() == 1 {
            format!("0{code}")
        } else {
            code.to_owned()
        };
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// `edXMLManifest`: the list of attachments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Its attributes (`version="1.0"`).
    pub attributes: Vec<Attribute>,
    /// `Reference*`.
    pub references: Vec<Reference>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// A manifest `Reference`. Its content id must match an attachment's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reference {
    /// Its attributes (e.g. `xlink:href`, kept with its namespace).
    pub attributes: Vec<Attribute>,
    /// `ContentId`, e.g. `cid:…`.
    pub content_id: Option<String>,
    /// `ContentType`.
    pub content_type: Option<String>,
    /// `Description`.
    pub description: Option<String>,
    /// `AttachmentName`.
    pub attachment_name: Option<String>,
    /// Unmodelled children.
    pub extras: Extras,
}

/// An `Attachment` in `AttachmentEncoded`: its metadata. The bytes go to the caller's
/// sink when parsing and come from the caller's source when writing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attachment {
    /// `ContentId`.
    pub content_id: Option<String>,
    /// `AttachmentName` (the file name; trust `ContentType` and the bytes, not the name:
    /// a `.doc` may hold a ZIP).
    pub name: Option<String>,
    /// `Description`.
    pub description: Option<String>,
    /// `ContentType` (media type).
    pub content_type: Option<String>,
    /// Decoded size in bytes. Set by the parser; the writer does not read it.
    pub size: u64,
    /// SHA-256 of the decoded bytes. Set by the parser; the writer does not read it.
    pub sha256: [u8; 32],
    /// Unmodelled children.
    pub extras: Extras,
}

/// An attribute kept as written, with the namespace its prefix resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The qualified name as written (`version`, `xlink:href`).
    pub name: String,
    /// The namespace of a prefixed name, written back with the attribute.
    pub namespace: Option<String>,
    /// The value (unescaped).
    pub value: String,
}

/// The unmodelled children of one element, each with its place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extras(pub Vec<Unmodelled>);

impl Extras {
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An element this crate does not model (a vendor extension, an XML-DSig `Signature`),
/// kept as raw XML and written back unchanged, in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmodelled {
    /// The modelled sibling it followed (`None`: it came before every modelled sibling).
    pub after: Option<Anchor>,
    /// The element as written, made self-contained: the namespace declarations it relied
    /// on from its ancestors are added to its start tag. Written back verbatim, so one
    /// built by hand must be a well-formed element.
    pub xml: String,
}

/// A modelled sibling, by local name and occurrence (1 for the first `To`, 2 for the
/// second…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The sibling's local name.
    pub element: String,
    /// Which occurrence of it, from 1.
    pub occurrence: usize,
}

/// Something in a package that a receiver should be told about but that does not make the
/// package unacceptable (real systems send such packages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The element concerned.
    pub element: String,
    /// What is odd about it.
    pub reason: String,
}

impl MessageHeader {
    /// Checks the document's own id and dates: a `DocumentId` not of the form
    /// `<From/OrganId>,<yyyy/MM/dd>,<number>/<notation>`, or disagreeing with `Code` or
    /// `PromulgationDate`; an impossible or non-standard own date. These are warnings,
    /// not refusals; `ResponseFor` is not checked (it names other agencies' documents).
    pub fn warnings(&self) -> Vec<Warning> {
        let code = self.code.as_ref().map(|code| {
            format!(
                "{}/{}",
                code.number.as_deref().unwrap_or(""),
                code.notation.as_deref().unwrap_or("")
            )
        });
        let promulgated = self.promulgation.as_ref().and_then(|p| p.date.as_ref());
        let mut out: Vec<Warning> =
            crate::id::document_id_warnings(&self.document_id, &self.from.organ_id, code.as_deref(), promulgated)
                .into_iter()
                .map(|w| Warning {
                    element: match w.element.as_str() {
                        "PromulgationDate" => "MessageHeader/PromulgationInfo/PromulgationDate".into(),
                        other => format!("MessageHeader/{other}"),
                    },
                    reason: w.reason,
                })
                .collect();
        let mut warn = |element: &str, reason: String| {
            out.push(Warning {
                element: format!("MessageHeader/{element}"),
                reason,
            });
        };
        if let Some(d) = &self.due_date {
            if !d.is_standard() {
                warn("DueDate", format!("{d:?} is not a valid yyyy/MM/dd date"));
            }
        }
        out
    }
}
