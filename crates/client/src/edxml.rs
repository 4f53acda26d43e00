//! edXML (QCVN 102:2016) packages and Truc's signed header, both ways.
//!
//! [`import`] maps a package read by `truc_edxml::parse` onto a
//! `DocumentHeader` (every MessageHeader field typed, the Bussiness block, the
//! manifest's attachments) and an [`pb::EdxmlForm`] of what the typed fields
//! cannot say: elements present with a default value, values written in
//! another form (a `dd/MM/yyyy` DueDate), unmodelled elements (vendor
//! extensions, an XML-DSig `Signature`) and attributes in their places, the
//! hops the package already had, the manifest as written. [`export`] writes
//! a header back as a package with the same content (`truc_edxml::same_content`),
//! plus one TraceHeader for the hub's hop; a header sent without edXML (no
//! form) is exported from its typed fields.
//!
//! Status messages: [`status_request`] reads one as a ReportStatus request,
//! [`status_package`] writes a received StatusNotice as one.
//!
//! Elements are named by paths below `edXMLEnvelope/edXMLHeader` (or the
//! root, for `AttachmentEncoded`): `MessageHeader/To[2]/Fax`,
//! `TraceHeaderList/Bussiness/StaffInfo`, `AttachmentEncoded/Attachment[1]`.

use std::collections::{HashMap, HashSet};

use thiserror::Error;
use truc_edxml as ed;
use truc_proto::v1 as pb;

use crate::transfer::AttachmentMeta;

/// Why a package cannot be sent as it is. Each names the element.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{element}: {reason}")]
pub struct MapError {
    /// The element, as a path from the root.
    pub element: String,
    /// What is wrong and what to do.
    pub reason: String,
}

fn refuse(element: impl Into<String>, reason: impl Into<String>) -> MapError {
    MapError {
        element: format!("edXML/edXMLEnvelope/edXMLHeader/{}", element.into()),
        reason: reason.into(),
    }
}

/// A document package as a header to sign: every field but the payload's
/// digests and the attachments' ranges (which the bytes decide), and what
/// each attachment says of itself, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The header, `attachments` empty.
    pub header: pb::DocumentHeader,
    /// Each attachment's ContentId, AttachmentName, Description, ContentType.
    pub attachments: Vec<AttachmentMeta>,
}

/// Records, while importing, what the typed fields cannot say.
#[derive(Default)]
struct Form(pb::EdxmlForm);

impl Form {
    fn stated(&mut self, path: &str) {
        self.0.stated.push(path.to_string());
    }

    /// A text element: its value; an empty one is recorded as stated.
    fn text(&mut self, path: &str, v: &Option<String>) -> String {
        match v {
            Some(s) if s.is_empty() => {
                self.stated(path);
                String::new()
            }
            Some(s) => s.clone(),
            None => String::new(),
        }
    }

    /// A number: its value; one equal to the default is recorded as stated.
    fn num<T: Copy + Default + PartialEq>(&mut self, path: &str, v: Option<T>) -> T {
        match v {
            Some(x) if x == T::default() => {
                self.stated(path);
                x
            }
            Some(x) => x,
            None => T::default(),
        }
    }

    /// A container: recorded when present (its children may all be absent).
    fn container<T>(&mut self, path: &str, v: &Option<T>) -> bool {
        if v.is_some() {
            self.stated(path);
        }
        v.is_some()
    }

    fn written(&mut self, path: &str, text: String) {
        self.0.written.push(pb::EdxmlText {
            element: path.to_string(),
            text,
        });
    }

    fn extras(&mut self, parent: &str, e: &ed::Extras) {
        for u in &e.0 {
            self.0.elements.push(pb::EdxmlElement {
                parent: parent.to_string(),
                after: u.after.as_ref().map(|a| a.element.clone()).unwrap_or_default(),
                after_occurrence: u.after.as_ref().map_or(0, |a| a.occurrence as u32),
                xml: u.xml.clone(),
            });
        }
    }

    fn attributes(&mut self, element: &str, attrs: &[ed::Attribute]) {
        for a in attrs {
            self.0.attributes.push(pb::EdxmlAttribute {
                element: element.to_string(),
                name: a.name.clone(),
                namespace: a.namespace.clone().unwrap_or_default(),
                value: a.value.clone(),
            });
        }
    }

    fn organization(&mut self, path: &str, o: &ed::Organization) -> pb::Organization {
        self.extras(path, &o.extras);
        pb::Organization {
            organ_id: o.organ_id.clone(),
            organization_in_charge: self.text(&format!("{path}/OrganizationInCharge"), &o.organization_in_charge),
            organ_name: self.text(&format!("{path}/OrganName"), &o.organ_name),
            organ_add: self.text(&format!("{path}/OrganAdd"), &o.organ_add),
            email: self.text(&format!("{path}/Email"), &o.email),
            telephone: self.text(&format!("{path}/Telephone"), &o.telephone),
            fax: self.text(&format!("{path}/Fax"), &o.fax),
            website: self.text(&format!("{path}/Website"), &o.website),
        }
    }

    fn staff(&mut self, path: &str, s: &ed::StaffInfo) -> pb::StaffInfo {
        self.extras(path, &s.extras);
        pb::StaffInfo {
            department: self.text(&format!("{path}/Department"), &s.department),
            department_id: self.text(&format!("{path}/DepartmentId"), &s.department_id),
            staff: self.text(&format!("{path}/Staff"), &s.staff),
            staff_id: self.text(&format!("{path}/StaffId"), &s.staff_id),
            email: self.text(&format!("{path}/Email"), &s.email),
            mobile: self.text(&format!("{path}/Mobile"), &s.mobile),
        }
    }
}

/// Unix ms of the last millisecond of local `date` at `offset`: what "due
/// on that date" means (as `truc send --due` writes it).
pub fn end_of_local_day(date: jiff::civil::Date, offset: jiff::tz::Offset) -> i64 {
    let next = date.tomorrow().unwrap_or(date);
    offset
        .to_timestamp(next.to_datetime(jiff::civil::Time::midnight()))
        .map(|t| t.as_millisecond() - 1)
        .unwrap_or(i64::MAX)
}

/// The local date of `unix_ms` at `offset`.
fn local_date(unix_ms: i64, offset: jiff::tz::Offset) -> Option<jiff::civil::Date> {
    let t = jiff::Timestamp::from_millisecond(unix_ms).ok()?;
    Some(offset.to_datetime(t).date())
}

/// The local time of `unix_ms` at `offset`, as edXML writes timestamps.
pub fn local_timestamp(unix_ms: i64, offset: jiff::tz::Offset) -> ed::EdDateTime {
    let t = jiff::Timestamp::from_millisecond(unix_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ed::EdDateTime::from(offset.to_datetime(t))
}

/// Map a document package onto a header to sign. `offset` is the axis's
/// local time (DueDate is a local date; the header holds its end as an
/// instant). Refused: a status message, a priority out of 0..=4, a receiver
/// or replacement without its OrganId or DocumentId, an attachment name
/// that is not a plain file name. What the hub refuses (an unknown agency
/// code, a DocumentId of another agency…) it says itself.
pub fn import(p: &ed::Package, offset: jiff::tz::Offset) -> Result<Imported, MapError> {
    let Some(m) = p.document() else {
        return Err(refuse(
            "MessageHeader",
            "this is a status message (StatusCode), not a document: send it with `truc status --edxml`",
        ));
    };
    let mut f = Form::default();
    f.0.unprefixed = p.style == ed::PrefixStyle::Default;
    f.attributes("", &p.root_attributes);
    f.extras("", &p.root_extras);
    f.extras("edXMLEnvelope", &p.envelope_extras);
    f.extras("edXMLHeader", &p.header_extras);
    f.extras("edXMLBody", &p.body_extras);
    f.extras("AttachmentEncoded", &p.attachments_extras);
    f.extras("MessageHeader", &m.extras);

    let mut h = pb::DocumentHeader {
        from: m.from.organ_id.clone(),
        document_id: m.document_id.clone(),
        ..Default::default()
    };
    h.sender = Some(f.organization("MessageHeader/From", &m.from));
    for (i, to) in m.to.iter().enumerate() {
        h.to.push(to.organ_id.clone());
        let org = f.organization(&format!("MessageHeader/To[{}]", i + 1), to);
        h.recipients.push(org);
    }
    if f.container("MessageHeader/Code", &m.code) {
        let c = m.code.as_ref().expect("present");
        f.extras("MessageHeader/Code", &c.extras);
        h.code_number = f.text("MessageHeader/Code/CodeNumber", &c.number);
        h.code_notation = f.text("MessageHeader/Code/CodeNotation", &c.notation);
    }
    if f.container("MessageHeader/PromulgationInfo", &m.promulgation) {
        let pi = m.promulgation.as_ref().expect("present");
        f.extras("MessageHeader/PromulgationInfo", &pi.extras);
        h.promulgation_place = f.text("MessageHeader/PromulgationInfo/Place", &pi.place);
        let date = pi.date.as_ref().map(ToString::to_string);
        h.promulgation_date = f.text("MessageHeader/PromulgationInfo/PromulgationDate", &date);
    }
    if f.container("MessageHeader/DocumentType", &m.document_type) {
        let t = m.document_type.as_ref().expect("present");
        f.extras("MessageHeader/DocumentType", &t.extras);
        h.document_type_code = f.num("MessageHeader/DocumentType/Type", t.kind);
        h.document_type_detail = f.num("MessageHeader/DocumentType/TypeDetail", t.detail);
        h.document_type = f.text("MessageHeader/DocumentType/TypeName", &t.name);
    }
    h.subject = f.text("MessageHeader/Subject", &m.subject);
    h.content = f.text("MessageHeader/Content", &m.content);
    if let Some(s) = &m.signer {
        f.extras("MessageHeader/SignerInfo", &s.extras);
        h.signer = Some(pb::SignerInfo {
            competence: f.text("MessageHeader/SignerInfo/Competence", &s.competence),
            position: f.text("MessageHeader/SignerInfo/Position", &s.position),
            full_name: f.text("MessageHeader/SignerInfo/FullName", &s.full_name),
        });
    }
    if let Some(due) = &m.due_date {
        if let Some(d) = due.date() {
            h.due_date_unix_ms = end_of_local_day(d, offset);
        }
        if !due.is_standard() {
            f.written("MessageHeader/DueDate", due.to_string());
        }
    }
    if f.container("MessageHeader/ToPlaces", &m.to_places) {
        h.to_places = m.to_places.clone().unwrap_or_default();
    }
    if f.container("MessageHeader/OtherInfo", &m.other_info) {
        let o = m.other_info.as_ref().expect("present");
        f.extras("MessageHeader/OtherInfo", &o.extras);
        let priority = f.num("MessageHeader/OtherInfo/Priority", o.priority);
        if !(0..=4).contains(&priority) {
            return Err(refuse(
                "MessageHeader/OtherInfo/Priority",
                format!("{priority} is not a priority: 0 thường, 1 khẩn, 2 thượng khẩn, 3 hỏa tốc, 4 hỏa tốc hẹn giờ"),
            ));
        }
        h.priority = priority;
        let appendixes = if f.container("MessageHeader/OtherInfo/Appendixes", &o.appendixes) {
            o.appendixes.clone().unwrap_or_default()
        } else {
            Vec::new()
        };
        h.other_info = Some(pb::OtherInfo {
            sphere_of_promulgation: f.text(
                "MessageHeader/OtherInfo/SphereOfPromulgation",
                &o.sphere_of_promulgation,
            ),
            typer_notation: f.text("MessageHeader/OtherInfo/TyperNotation", &o.typer_notation),
            promulgation_amount: f.num("MessageHeader/OtherInfo/PromulgationAmount", o.promulgation_amount),
            page_amount: f.num("MessageHeader/OtherInfo/PageAmount", o.page_amount),
            appendixes,
        });
    }
    for (i, r) in m.response_for.iter().enumerate() {
        let path = format!("MessageHeader/ResponseFor[{}]", i + 1);
        f.extras(&path, &r.extras);
        let date = r.promulgation_date.as_ref().map(ToString::to_string);
        h.response_for.push(pb::ResponseFor {
            organ_id: f.text(&format!("{path}/OrganId"), &r.organ_id),
            code: f.text(&format!("{path}/Code"), &r.code),
            promulgation_date: f.text(&format!("{path}/PromulgationDate"), &date),
            document_id: f.text(&format!("{path}/DocumentId"), &r.document_id),
        });
    }
    h.steering_type = f.num("MessageHeader/SteeringType", m.steering_type);

    if f.container("TraceHeaderList", &p.trace) {
        let t = p.trace.as_ref().expect("present");
        f.attributes("TraceHeaderList", &t.attributes);
        f.extras("TraceHeaderList", &t.extras);
        for (i, th) in t.traces.iter().enumerate() {
            let path = format!("TraceHeaderList/TraceHeader[{}]", i + 1);
            f.extras(&path, &th.extras);
            let ts = th.timestamp.as_ref().map(ToString::to_string);
            let hop = pb::EdxmlTraceHeader {
                organ_id: f.text(&format!("{path}/OrganId"), &th.organ_id),
                timestamp: f.text(&format!("{path}/Timestamp"), &ts),
            };
            f.0.traces.push(hop);
        }
        if let Some(b) = &t.business {
            import_business(&mut f, &mut h, b)?;
        }
    }

    if f.container("edXMLManifest", &p.manifest) {
        let man = p.manifest.as_ref().expect("present");
        f.attributes("edXMLManifest", &man.attributes);
        f.extras("edXMLManifest", &man.extras);
        for (i, r) in man.references.iter().enumerate() {
            let path = format!("edXMLManifest/Reference[{}]", i + 1);
            f.attributes(&path, &r.attributes);
            f.extras(&path, &r.extras);
            let reference = pb::EdxmlReference {
                content_id: f.text(&format!("{path}/ContentId"), &r.content_id),
                content_type: f.text(&format!("{path}/ContentType"), &r.content_type),
                description: f.text(&format!("{path}/Description"), &r.description),
                attachment_name: f.text(&format!("{path}/AttachmentName"), &r.attachment_name),
            };
            f.0.manifest.push(reference);
        }
    }

    let mut attachments = Vec::with_capacity(p.attachments.len());
    for (i, a) in p.attachments.iter().enumerate() {
        let path = format!("AttachmentEncoded/Attachment[{}]", i + 1);
        f.extras(&path, &a.extras);
        let meta = AttachmentMeta {
            content_id: f.text(&format!("{path}/ContentId"), &a.content_id),
            name: f.text(&format!("{path}/AttachmentName"), &a.name),
            description: f.text(&format!("{path}/Description"), &a.description),
            media_type: f.text(&format!("{path}/ContentType"), &a.content_type),
        };
        if !meta.name.is_empty() && !truc_core::attachments::is_plain_file_name(&meta.name) {
            return Err(MapError {
                element: format!("edXML/{path}/AttachmentName"),
                reason: format!(
                    "{:?} is not a plain file name (no '/', '\\', NUL, not \".\" or \"..\", at most 255 bytes): \
                     rename the attachment in the package",
                    meta.name
                ),
            });
        }
        attachments.push(meta);
    }
    h.edxml = Some(f.0);
    Ok(Imported { header: h, attachments })
}

fn import_business(f: &mut Form, h: &mut pb::DocumentHeader, b: &ed::Business) -> Result<(), MapError> {
    const B: &str = "TraceHeaderList/Bussiness";
    f.stated(B);
    f.extras(B, &b.extras);
    let kind = b.doc_type.map(|t| t.code());
    h.business_type = f.num(&format!("{B}/BussinessDocType"), kind);
    match (&b.document_id, h.business_type) {
        // A new document refers to nothing: the id it names is carried as written.
        (Some(id), 0) => f.written(&format!("{B}/DocumentId"), id.clone()),
        (id, _) => h.reference_document_id = f.text(&format!("{B}/DocumentId"), id),
    }
    h.business_reason = f.text(&format!("{B}/BussinessDocReason"), &b.reason);
    h.business_paper = f.num(&format!("{B}/Paper"), b.paper);
    if let Some(info) = &b.document_info {
        let path = format!("{B}/BussinessDocumentInfo");
        f.stated(&path);
        f.extras(&path, &info.extras);
        h.business_document_info = f.text(&format!("{path}/DocumentInfo"), &info.document_info);
        h.business_document_receiver = f.text(&format!("{path}/DocumentReceiver"), &info.document_receiver);
        if let Some(list) = &info.receivers {
            f.stated(&format!("{path}/ReceiverList"));
            for (i, r) in list.iter().enumerate() {
                let rp = format!("{path}/ReceiverList/Receiver[{}]", i + 1);
                f.extras(&rp, &r.extras);
                let organ_id = required(&r.organ_id, &format!("{rp}/OrganId"), "the agency added or removed")?;
                let t = r
                    .receiver_type
                    .ok_or_else(|| refuse(format!("{rp}/ReceiverType"), "required: 0 (removed) or 1 (added)"))?;
                let receiver_type = f.num(&format!("{rp}/ReceiverType"), Some(t as i32));
                h.receiver_changes.push(pb::ReceiverChange {
                    organ_id,
                    receiver_type,
                });
            }
        }
    }
    if let Some(list) = &b.replacements {
        f.stated(&format!("{B}/ReplacementInfoList"));
        for (i, r) in list.iter().enumerate() {
            let rp = format!("{B}/ReplacementInfoList/ReplacementInfo[{}]", i + 1);
            f.extras(&rp, &r.extras);
            let document_id = required(&r.document_id, &format!("{rp}/DocumentId"), "the document replaced")?;
            h.replacements.push(pb::Replacement {
                document_id,
                organ_ids: r.organ_ids.clone(),
            });
        }
    }
    if let Some(s) = &b.staff {
        f.stated(&format!("{B}/StaffInfo"));
        h.business_staff = Some(f.staff(&format!("{B}/StaffInfo"), s));
    }
    Ok(())
}

/// The text of a required element, refused (naming it and saying what it
/// is for) when absent or empty.
fn required(v: &Option<String>, path: &str, what: &str) -> Result<String, MapError> {
    v.clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| refuse(path, format!("required: {what}")))
}

/// Reads, while exporting, what the form says beyond the typed fields.
struct Look<'a> {
    form: Option<&'a pb::EdxmlForm>,
    stated: HashSet<&'a str>,
    written: HashMap<&'a str, &'a str>,
}

impl<'a> Look<'a> {
    fn new(form: Option<&'a pb::EdxmlForm>) -> Self {
        let stated = form
            .map(|f| f.stated.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let written = form
            .map(|f| {
                f.written
                    .iter()
                    .map(|w| (w.element.as_str(), w.text.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        Look { form, stated, written }
    }

    fn is_stated(&self, path: &str) -> bool {
        self.stated.contains(path)
    }

    /// A text element: written when not empty, or when stated.
    fn text(&self, path: &str, v: &str) -> Option<String> {
        (!v.is_empty() || self.is_stated(path)).then(|| v.to_string())
    }

    /// A number: written when not the default, or when stated.
    fn num<T: Copy + Default + PartialEq>(&self, path: &str, v: T) -> Option<T> {
        (v != T::default() || self.is_stated(path)).then_some(v)
    }

    fn written(&self, path: &str) -> Option<&'a str> {
        self.written.get(path).copied()
    }

    fn extras(&self, parent: &str) -> ed::Extras {
        let Some(form) = self.form else {
            return ed::Extras::default();
        };
        ed::Extras(
            form.elements
                .iter()
                .filter(|e| e.parent == parent)
                .map(|e| ed::Unmodelled {
                    after: (!e.after.is_empty()).then(|| ed::Anchor {
                        element: e.after.clone(),
                        occurrence: e.after_occurrence as usize,
                    }),
                    xml: e.xml.clone(),
                })
                .collect(),
        )
    }

    fn attributes(&self, element: &str) -> Vec<ed::Attribute> {
        let Some(form) = self.form else { return Vec::new() };
        form.attributes
            .iter()
            .filter(|a| a.element == element)
            .map(|a| ed::Attribute {
                name: a.name.clone(),
                namespace: (!a.namespace.is_empty()).then(|| a.namespace.clone()),
                value: a.value.clone(),
            })
            .collect()
    }

    fn organization(&self, path: &str, organ_id: &str, o: Option<&pb::Organization>) -> ed::Organization {
        let d = pb::Organization::default();
        let o = o.unwrap_or(&d);
        ed::Organization {
            organ_id: organ_id.to_string(),
            organization_in_charge: self.text(&format!("{path}/OrganizationInCharge"), &o.organization_in_charge),
            organ_name: self.text(&format!("{path}/OrganName"), &o.organ_name),
            organ_add: self.text(&format!("{path}/OrganAdd"), &o.organ_add),
            email: self.text(&format!("{path}/Email"), &o.email),
            telephone: self.text(&format!("{path}/Telephone"), &o.telephone),
            fax: self.text(&format!("{path}/Fax"), &o.fax),
            website: self.text(&format!("{path}/Website"), &o.website),
            extras: self.extras(path),
        }
    }

    fn staff(&self, path: &str, s: &pb::StaffInfo) -> ed::StaffInfo {
        ed::StaffInfo {
            department: self.text(&format!("{path}/Department"), &s.department),
            department_id: self.text(&format!("{path}/DepartmentId"), &s.department_id),
            staff: self.text(&format!("{path}/Staff"), &s.staff),
            staff_id: self.text(&format!("{path}/StaffId"), &s.staff_id),
            email: self.text(&format!("{path}/Email"), &s.email),
            mobile: self.text(&format!("{path}/Mobile"), &s.mobile),
            extras: self.extras(path),
        }
    }
}

/// A hop to write as a TraceHeader: who and when (local time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// OrganId: the hub's name.
    pub organ_id: String,
    /// When the hub accepted the document, local time.
    pub timestamp: ed::EdDateTime,
}

/// The attachments a package of `h` carries: its manifest; none for a
/// package sent with none (a revoke usually has none); for a header
/// without edXML or a manifest, its one payload (named by `file_name`).
pub fn attachments_of(h: &pb::DocumentHeader) -> Vec<pb::Attachment> {
    if !h.attachments.is_empty() || h.edxml.is_some() {
        return h.attachments.clone();
    }
    vec![pb::Attachment {
        content_id: String::new(),
        name: if h.file_name.is_empty() {
            "payload.bin".into()
        } else {
            h.file_name.clone()
        },
        description: String::new(),
        media_type: h.content_type.clone(),
        offset: 0,
        size: h.payload_size,
        sha256: h.payload_sha256.clone(),
    }]
}

/// Write a header as a document package: every field it holds, written as
/// its edXML form says when it has one (a document sent with `truc send
/// --edxml`), then `hop` after the hops the package already had. The
/// attachments' bytes are not here: the writer reads them from its source,
/// in [`attachments_of`] order.
pub fn export(h: &pb::DocumentHeader, hop: Option<Hop>, offset: jiff::tz::Offset) -> ed::Package {
    let form = h.edxml.as_ref();
    let l = Look::new(form);
    let from_edxml = form.is_some();

    let to =
        h.to.iter()
            .enumerate()
            .map(|(i, code)| l.organization(&format!("MessageHeader/To[{}]", i + 1), code, h.recipients.get(i)))
            .collect();
    let code =
        (l.is_stated("MessageHeader/Code") || !h.code_number.is_empty() || !h.code_notation.is_empty()).then(|| {
            ed::Code {
                number: l.text("MessageHeader/Code/CodeNumber", &h.code_number),
                notation: l.text("MessageHeader/Code/CodeNotation", &h.code_notation),
                extras: l.extras("MessageHeader/Code"),
            }
        });
    let promulgation = (l.is_stated("MessageHeader/PromulgationInfo")
        || !h.promulgation_place.is_empty()
        || !h.promulgation_date.is_empty())
    .then(|| ed::PromulgationInfo {
        place: l.text("MessageHeader/PromulgationInfo/Place", &h.promulgation_place),
        date: l
            .text("MessageHeader/PromulgationInfo/PromulgationDate", &h.promulgation_date)
            .map(|t| ed::EdDate::parse(&t)),
        extras: l.extras("MessageHeader/PromulgationInfo"),
    });
    let document_type = (l.is_stated("MessageHeader/DocumentType")
        || !h.document_type.is_empty()
        || h.document_type_code != 0
        || h.document_type_detail != 0)
        .then(|| ed::DocumentType {
            kind: l.num("MessageHeader/DocumentType/Type", h.document_type_code),
            detail: l.num("MessageHeader/DocumentType/TypeDetail", h.document_type_detail),
            name: l.text("MessageHeader/DocumentType/TypeName", &h.document_type),
            extras: l.extras("MessageHeader/DocumentType"),
        });
    let signer = h.signer.as_ref().map(|s| ed::SignerInfo {
        competence: l.text("MessageHeader/SignerInfo/Competence", &s.competence),
        position: l.text("MessageHeader/SignerInfo/Position", &s.position),
        full_name: l.text("MessageHeader/SignerInfo/FullName", &s.full_name),
        extras: l.extras("MessageHeader/SignerInfo"),
    });
    let due_date = match l.written("MessageHeader/DueDate") {
        Some(text) => Some(ed::EdDate::parse(text)),
        None if h.due_date_unix_ms != 0 => local_date(h.due_date_unix_ms, offset).map(ed::EdDate::Date),
        None => None,
    };
    let to_places = (l.is_stated("MessageHeader/ToPlaces") || !h.to_places.is_empty()).then(|| h.to_places.clone());
    let other = h.other_info.clone().unwrap_or_default();
    let other_info = (!from_edxml || l.is_stated("MessageHeader/OtherInfo")).then(|| ed::OtherInfo {
        priority: if from_edxml {
            l.num("MessageHeader/OtherInfo/Priority", h.priority)
        } else {
            Some(h.priority)
        },
        sphere_of_promulgation: l.text(
            "MessageHeader/OtherInfo/SphereOfPromulgation",
            &other.sphere_of_promulgation,
        ),
        typer_notation: l.text("MessageHeader/OtherInfo/TyperNotation", &other.typer_notation),
        promulgation_amount: l.num("MessageHeader/OtherInfo/PromulgationAmount", other.promulgation_amount),
        page_amount: l.num("MessageHeader/OtherInfo/PageAmount", other.page_amount),
        appendixes: (l.is_stated("MessageHeader/OtherInfo/Appendixes") || !other.appendixes.is_empty())
            .then(|| other.appendixes.clone()),
        extras: l.extras("MessageHeader/OtherInfo"),
    });
    let response_for = h
        .response_for
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let path = format!("MessageHeader/ResponseFor[{}]", i + 1);
            ed::ResponseFor {
                organ_id: l.text(&format!("{path}/OrganId"), &r.organ_id),
                code: l.text(&format!("{path}/Code"), &r.code),
                promulgation_date: l
                    .text(&format!("{path}/PromulgationDate"), &r.promulgation_date)
                    .map(|t| ed::EdDate::parse(&t)),
                document_id: l.text(&format!("{path}/DocumentId"), &r.document_id),
                extras: l.extras(&path),
            }
        })
        .collect();
    let message = ed::MessageHeader {
        from: l.organization("MessageHeader/From", &h.from, h.sender.as_ref()),
        to,
        document_id: h.document_id.clone(),
        code,
        promulgation,
        document_type,
        subject: l.text("MessageHeader/Subject", &h.subject),
        content: l.text("MessageHeader/Content", &h.content),
        signer,
        due_date,
        to_places,
        other_info,
        response_for,
        steering_type: l.num("MessageHeader/SteeringType", h.steering_type),
        extras: l.extras("MessageHeader"),
    };

    let mut traces: Vec<ed::TraceHeader> = form
        .map(|f| {
            f.traces
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let path = format!("TraceHeaderList/TraceHeader[{}]", i + 1);
                    ed::TraceHeader {
                        organ_id: l.text(&format!("{path}/OrganId"), &t.organ_id),
                        timestamp: l
                            .text(&format!("{path}/Timestamp"), &t.timestamp)
                            .map(|t| ed::EdDateTime::parse(&t)),
                        extras: l.extras(&path),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(hop) = hop {
        traces.push(ed::TraceHeader {
            organ_id: Some(hop.organ_id),
            timestamp: Some(hop.timestamp),
            extras: ed::Extras::default(),
        });
    }
    let business = (!from_edxml || l.is_stated("TraceHeaderList/Bussiness")).then(|| export_business(&l, h));
    let trace =
        (!traces.is_empty() || business.is_some() || l.is_stated("TraceHeaderList")).then(|| ed::TraceHeaderList {
            attributes: l.attributes("TraceHeaderList"),
            traces,
            business,
            extras: l.extras("TraceHeaderList"),
        });

    let listed = attachments_of(h);
    let manifest = if from_edxml {
        l.is_stated("edXMLManifest").then(|| ed::Manifest {
            attributes: l.attributes("edXMLManifest"),
            references: form
                .map(|f| f.manifest.as_slice())
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let path = format!("edXMLManifest/Reference[{}]", i + 1);
                    ed::Reference {
                        attributes: l.attributes(&path),
                        content_id: l.text(&format!("{path}/ContentId"), &r.content_id),
                        content_type: l.text(&format!("{path}/ContentType"), &r.content_type),
                        description: l.text(&format!("{path}/Description"), &r.description),
                        attachment_name: l.text(&format!("{path}/AttachmentName"), &r.attachment_name),
                        extras: l.extras(&path),
                    }
                })
                .collect(),
            extras: l.extras("edXMLManifest"),
        })
    } else {
        Some(ed::Manifest {
            attributes: vec![ed::Attribute {
                name: "version".into(),
                namespace: None,
                value: "1.0".into(),
            }],
            references: listed
                .iter()
                .map(|a| ed::Reference {
                    attributes: Vec::new(),
                    content_id: (!a.content_id.is_empty()).then(|| a.content_id.clone()),
                    content_type: (!a.media_type.is_empty()).then(|| a.media_type.clone()),
                    description: (!a.description.is_empty()).then(|| a.description.clone()),
                    attachment_name: (!a.name.is_empty()).then(|| a.name.clone()),
                    extras: ed::Extras::default(),
                })
                .collect(),
            extras: ed::Extras::default(),
        })
    };
    let attachments = listed
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let path = format!("AttachmentEncoded/Attachment[{}]", i + 1);
            let mut sha256 = [0u8; 32];
            if a.sha256.len() == 32 {
                sha256.copy_from_slice(&a.sha256);
            }
            ed::Attachment {
                content_id: l.text(&format!("{path}/ContentId"), &a.content_id),
                name: l.text(&format!("{path}/AttachmentName"), &a.name),
                description: l.text(&format!("{path}/Description"), &a.description),
                content_type: l.text(&format!("{path}/ContentType"), &a.media_type),
                size: a.size,
                sha256,
                extras: l.extras(&path),
            }
        })
        .collect();

    let mut p = ed::Package::new(ed::Message::Document(message));
    p.style = if form.is_some_and(|f| f.unprefixed) {
        ed::PrefixStyle::Default
    } else {
        ed::PrefixStyle::Prefixed
    };
    p.root_attributes = l.attributes("");
    p.trace = trace;
    p.manifest = manifest;
    p.attachments = attachments;
    p.root_extras = l.extras("");
    p.envelope_extras = l.extras("edXMLEnvelope");
    p.header_extras = l.extras("edXMLHeader");
    p.body_extras = l.extras("edXMLBody");
    p.attachments_extras = l.extras("AttachmentEncoded");
    p
}

fn export_business(l: &Look<'_>, h: &pb::DocumentHeader) -> ed::Business {
    const B: &str = "TraceHeaderList/Bussiness";
    let info_path = format!("{B}/BussinessDocumentInfo");
    let has_info = l.is_stated(&info_path)
        || !h.business_document_info.is_empty()
        || !h.business_document_receiver.is_empty()
        || !h.receiver_changes.is_empty();
    let document_info = has_info.then(|| ed::BusinessDocumentInfo {
        document_info: l.text(&format!("{info_path}/DocumentInfo"), &h.business_document_info),
        document_receiver: l.text(&format!("{info_path}/DocumentReceiver"), &h.business_document_receiver),
        receivers: (l.is_stated(&format!("{info_path}/ReceiverList")) || !h.receiver_changes.is_empty()).then(|| {
            h.receiver_changes
                .iter()
                .enumerate()
                .map(|(i, r)| ed::Receiver {
                    organ_id: Some(r.organ_id.clone()),
                    receiver_type: Some(if r.receiver_type == pb::ReceiverType::Added as i32 {
                        ed::ReceiverType::Added
                    } else {
                        ed::ReceiverType::Removed
                    }),
                    extras: l.extras(&format!("{info_path}/ReceiverList/Receiver[{}]", i + 1)),
                })
                .collect()
        }),
        extras: l.extras(&info_path),
    });
    let replacements = (l.is_stated(&format!("{B}/ReplacementInfoList")) || !h.replacements.is_empty()).then(|| {
        h.replacements
            .iter()
            .enumerate()
            .map(|(i, r)| ed::ReplacementInfo {
                document_id: Some(r.document_id.clone()),
                organ_ids: r.organ_ids.clone(),
                extras: l.extras(&format!("{B}/ReplacementInfoList/ReplacementInfo[{}]", i + 1)),
            })
            .collect()
    });
    let document_id = match l.written(&format!("{B}/DocumentId")) {
        Some(id) => Some(id.to_string()),
        None => l.text(&format!("{B}/DocumentId"), &h.reference_document_id),
    };
    let doc_type = if l.form.is_some() {
        l.num(&format!("{B}/BussinessDocType"), h.business_type)
    } else {
        Some(h.business_type)
    };
    ed::Business {
        document_id,
        doc_type: doc_type.and_then(|t| ed::BusinessDocType::from_code(i64::from(t))),
        reason: l.text(&format!("{B}/BussinessDocReason"), &h.business_reason),
        paper: l.num(&format!("{B}/Paper"), h.business_paper),
        document_info,
        replacements,
        staff: h
            .business_staff
            .as_ref()
            .filter(|_| l.form.is_none() || l.is_stated(&format!("{B}/StaffInfo")))
            .map(|s| l.staff(&format!("{B}/StaffInfo"), s)),
        extras: l.extras(B),
    }
}

/// A status message as a ReportStatus request from `caller` (the agency
/// that sends it: From must be it). The document is ResponseFor/DocumentId;
/// its sender is the id's first part (the axis's form), else
/// ResponseFor/OrganId; for 13 (the sender takes its own document back),
/// the caller.
pub fn status_request(p: &ed::Package, caller: &str) -> Result<pb::ReportStatusRequest, MapError> {
    let Some(s) = p.status() else {
        return Err(refuse(
            "MessageHeader",
            "this is a document package, not a status message (no StatusCode): send it with `truc send --edxml`",
        ));
    };
    if s.from.organ_id != caller {
        return Err(refuse(
            "MessageHeader/From/OrganId",
            format!(
                "{:?} is not the agency sending it ({caller}, from your identity): a status is reported by the agency \
                 whose certificate sends it",
                s.from.organ_id
            ),
        ));
    }
    let document_id = required(
        &s.response_for.document_id,
        "MessageHeader/ResponseFor/DocumentId",
        "the DocumentId of the document this status is about",
    )?;
    let code: i32 = s.status.code().parse().unwrap_or(0);
    let document_from = if code == pb::StatusCode::TakeBack as i32 {
        caller.to_string()
    } else if let Some(parts) = ed::DocumentIdParts::split(&document_id) {
        parts.sender.to_string()
    } else {
        s.response_for
            .organ_id
            .clone()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| {
                refuse(
                    "MessageHeader/ResponseFor/OrganId",
                    "required when DocumentId is not of the form <sender code>,<yyyy/MM/dd>,<number>/<notation>: the \
                 document's sender",
                )
            })?
    };
    let staff = s.staff.as_ref().map(|st| pb::StaffInfo {
        department: st.department.clone().unwrap_or_default(),
        staff: st.staff.clone().unwrap_or_default(),
        mobile: st.mobile.clone().unwrap_or_default(),
        email: st.email.clone().unwrap_or_default(),
        department_id: st.department_id.clone().unwrap_or_default(),
        staff_id: st.staff_id.clone().unwrap_or_default(),
    });
    Ok(pb::ReportStatusRequest {
        document_from,
        document_id,
        code,
        description: s.description.clone().unwrap_or_default(),
        staff,
    })
}

/// What of status message `p` does not reach the receiver when it is
/// reported as `req`: the receiver's message ([`status_package`]) is made
/// from what the hub keeps of a status (the reporter's code, the document,
/// code, Description, StaffInfo) and the hub's own time, so anything else
/// the message says is named here, for the sender to be told rather than
/// have it dropped silently. `directory_name` is the reporter's name in the
/// hub's directory (what the receiver's From/OrganName says), if known.
pub fn status_not_carried(
    p: &ed::Package,
    req: &pb::ReportStatusRequest,
    directory_name: Option<&str>,
) -> Vec<ed::Warning> {
    let Some(s) = p.status() else { return Vec::new() };
    let mut out = Vec::new();
    let mut warn = |element: &str, reason: String| {
        out.push(ed::Warning {
            element: if element.is_empty() {
                "edXML".to_string()
            } else {
                format!("edXML/edXMLEnvelope/edXMLHeader/MessageHeader/{element}")
            },
            reason,
        })
    };
    if let Some(t) = &s.timestamp {
        warn(
            "Timestamp",
            format!("{t} is not kept: the hub records its own time of the report, which the receiver's message has"),
        );
    }
    let f = &s.from;
    let details: Vec<&str> = [
        ("OrganizationInCharge", &f.organization_in_charge),
        ("OrganAdd", &f.organ_add),
        ("Email", &f.email),
        ("Telephone", &f.telephone),
        ("Fax", &f.fax),
        ("Website", &f.website),
    ]
    .into_iter()
    .filter(|(_, v)| v.as_deref().is_some_and(|v| !v.is_empty()))
    .map(|(name, _)| name)
    .collect();
    if !details.is_empty() {
        warn(
            "From",
            format!(
                "{} not kept: the receiver's message names the reporter by OrganId and the hub directory's name",
                details.join(", ")
            ),
        );
    }
    if let (Some(name), Some(dir)) = (f.organ_name.as_deref(), directory_name) {
        if name != dir {
            warn(
                "From/OrganName",
                format!("{name:?} is not kept: the receiver's message has the hub directory's name {dir:?}"),
            );
        }
    }
    let parts = ed::DocumentIdParts::split(&req.document_id);
    let r = &s.response_for;
    let derived = [
        ("OrganId", r.organ_id.clone(), Some(req.document_from.clone())),
        ("Code", r.code.clone(), parts.map(|p| p.number_notation.to_string())),
        (
            "PromulgationDate",
            r.promulgation_date.as_ref().map(ToString::to_string),
            parts.map(|p| p.date.to_string()),
        ),
    ];
    for (name, written, comes_back) in derived {
        if let Some(w) = written.filter(|w| Some(w) != comes_back.as_ref()) {
            warn(
                &format!("ResponseFor/{name}"),
                format!(
                    "{w:?} is not kept: the receiver's message has {} (from the document the status is about)",
                    comes_back.map_or("none".to_string(), |c| format!("{c:?}"))
                ),
            );
        }
    }
    let unmodelled = [
        &s.extras,
        &f.extras,
        &r.extras,
        &p.root_extras,
        &p.envelope_extras,
        &p.header_extras,
        &p.body_extras,
        &p.attachments_extras,
    ]
    .iter()
    .map(|e| e.0.len())
    .sum::<usize>()
        + s.staff.as_ref().map_or(0, |st| st.extras.0.len());
    if unmodelled > 0 {
        warn(
            "",
            format!("{unmodelled} element(s) Truc does not model (vendor extensions) are not kept in a status"),
        );
    }
    out
}

/// A received status notice as a status message: From the reporter (with
/// its name from the directory, if known), ResponseFor the document (its
/// code and date read from the DocumentId in the axis's form), StaffInfo,
/// StatusCode, Description, and Timestamp the hub's time of the report in
/// local time. `None` for a notice that is no business status (the hub's
/// own, code 0).
pub fn status_package(n: &pb::StatusNotice, reporter_name: &str, offset: jiff::tz::Offset) -> Option<ed::Package> {
    let status = ed::StatusCode::from_code(&format!("{:02}", n.code))?;
    let parts = ed::DocumentIdParts::split(&n.document_id);
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let header = ed::StatusHeader {
        from: ed::Organization {
            organ_id: n.reporter.clone(),
            organ_name: text(reporter_name),
            ..Default::default()
        },
        response_for: ed::ResponseFor {
            organ_id: text(&n.document_from),
            code: parts.map(|p| p.number_notation.to_string()),
            promulgation_date: parts.map(|p| ed::EdDate::parse(p.date)),
            document_id: text(&n.document_id),
            extras: ed::Extras::default(),
        },
        staff: n.staff.as_ref().map(|s| ed::StaffInfo {
            department: text(&s.department),
            department_id: text(&s.department_id),
            staff: text(&s.staff),
            staff_id: text(&s.staff_id),
            email: text(&s.email),
            mobile: text(&s.mobile),
            extras: ed::Extras::default(),
        }),
        status,
        description: text(&n.description),
        timestamp: Some(local_timestamp(n.time_unix_ms, offset)),
        extras: ed::Extras::default(),
    };
    Some(ed::Package::new(ed::Message::Status(header)))
}

/// A package read from disk to be sent: its model, each attachment decoded
/// into a file of its own as the base64 streamed by (never whole in
/// memory), and the payload's digests, computed in the same pass.
#[derive(Debug)]
pub struct ReadPackage {
    /// The package (attachment bytes are in `files`).
    pub package: ed::Package,
    /// One file per attachment, in order.
    pub files: Vec<std::path::PathBuf>,
    /// The whole payload's SHA-256 and size, and each attachment's.
    pub digests: crate::transfer::Digests,
}

/// Why a package could not be read.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The package is refused: the parser's reason, naming the element, and
    /// where it stopped reading.
    #[error("{source} (near line {line}, column {column})")]
    Refused {
        /// The parser's refusal.
        #[source]
        source: ed::Error,
        /// Where it had read to: line and column from 1 (columns count bytes).
        line: u64,
        /// See `line`.
        column: u64,
    },
    /// The attachments come to more than the hub accepts in one document:
    /// reading stopped there, at `element`.
    #[error(
        "{element}: the attachments come to more than {limit} bytes, the most the hub accepts in one document \
         (its limits.max_document_size) (near line {line}, column {column})"
    )]
    TooLarge {
        /// The attachment being read when the limit was passed.
        element: String,
        /// The hub's maximum document size, bytes.
        limit: u64,
        /// Where it had read to, as in `Refused`.
        line: u64,
        /// See `line`.
        column: u64,
    },
    /// The package or a temporary file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// Counts lines and columns of what a reader hands on, for messages.
struct Where<R> {
    inner: R,
    line: u64,
    column: u64,
}

impl<R: std::io::BufRead> std::io::Read for Where<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let src = std::io::BufRead::fill_buf(self)?;
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        std::io::BufRead::consume(self, n);
        Ok(n)
    }
}

impl<R: std::io::BufRead> std::io::BufRead for Where<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            for &b in &buf[..amt.min(buf.len())] {
                if b == b'\n' {
                    self.line += 1;
                    self.column = 1;
                } else {
                    self.column += 1;
                }
            }
        }
        self.inner.consume(amt);
    }
}

/// Writes each attachment to `dir/attachment-<n>` and hashes the payload
/// (the attachments one after another) as the parser decodes them.
struct FileSink {
    dir: std::path::PathBuf,
    current: Option<(usize, std::io::BufWriter<std::fs::File>)>,
    files: Vec<std::path::PathBuf>,
    whole: ring::digest::Context,
    /// Bytes decoded so far, all attachments together, and the most allowed.
    written: u64,
    max: u64,
}

impl FileSink {
    fn open(&mut self, index: usize) -> std::io::Result<()> {
        if matches!(&self.current, Some((i, _)) if *i == index) {
            return Ok(());
        }
        self.close()?;
        while self.files.len() <= index {
            let path = self.dir.join(format!("attachment-{}", self.files.len() + 1));
            std::fs::File::create(&path)?;
            self.files.push(path);
        }
        let f = std::fs::OpenOptions::new().append(true).open(&self.files[index])?;
        self.current = Some((index, std::io::BufWriter::with_capacity(1 << 20, f)));
        Ok(())
    }

    fn close(&mut self) -> std::io::Result<()> {
        if let Some((_, mut w)) = self.current.take() {
            std::io::Write::flush(&mut w)?;
        }
        Ok(())
    }
}

impl ed::AttachmentSink for FileSink {
    fn write(&mut self, index: usize, chunk: &[u8]) -> std::io::Result<()> {
        self.written += chunk.len() as u64;
        if self.written > self.max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "over the hub's maximum document size",
            ));
        }
        self.open(index)?;
        self.whole.update(chunk);
        let (_, w) = self.current.as_mut().expect("opened");
        std::io::Write::write_all(w, chunk)
    }

    fn finish(&mut self, index: usize, _attachment: &ed::Attachment) -> std::io::Result<()> {
        self.open(index)?;
        self.close()
    }
}

/// Read the package at `path`, decoding attachments into files in `dir`
/// (a temporary directory on disk: a 2 GiB attachment takes 2 GiB there,
/// and no more than a buffer in memory), within `limits`; reading stops as
/// soon as the attachments come to more than `max_document_size` bytes
/// (the hub's, [`crate::Client::hub_info`]).
pub fn read_package(
    path: &std::path::Path,
    dir: &std::path::Path,
    limits: ed::Limits,
    max_document_size: u64,
) -> Result<ReadPackage, ReadError> {
    let io = |p: &std::path::Path| {
        let p = p.display().to_string();
        move |source| ReadError::Io { path: p, source }
    };
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut input = Where {
        inner: std::io::BufReader::with_capacity(1 << 20, file),
        line: 1,
        column: 1,
    };
    let mut sink = FileSink {
        dir: dir.to_path_buf(),
        current: None,
        files: Vec::new(),
        whole: ring::digest::Context::new(&ring::digest::SHA256),
        written: 0,
        max: max_document_size,
    };
    let parsed = ed::parse(&mut input, limits, &mut sink);
    let package = match parsed {
        Ok(p) => p,
        Err(source) if sink.written > sink.max => {
            return Err(ReadError::TooLarge {
                element: source.element().to_string(),
                limit: sink.max,
                line: input.line,
                column: input.column,
            })
        }
        Err(source) => {
            return Err(ReadError::Refused {
                source,
                line: input.line,
                column: input.column,
            })
        }
    };
    sink.close().map_err(io(dir))?;
    let mut files = sink.files;
    // Attachments with no bytes at the end got no file yet.
    while files.len() < package.attachments.len() {
        let p = dir.join(format!("attachment-{}", files.len() + 1));
        std::fs::File::create(&p).map_err(io(&p))?;
        files.push(p);
    }
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(sink.whole.finish().as_ref());
    let digests = crate::transfer::Digests {
        sha256,
        size: package.attachments.iter().map(|a| a.size).sum(),
        attachments: package.attachments.iter().map(|a| a.sha256).collect(),
        sizes: package.attachments.iter().map(|a| a.size).collect(),
    };
    Ok(ReadPackage {
        package,
        files,
        digests,
    })
}

/// Attachment bytes for the package writer, read from files (one per
/// attachment, in order) in blocks.
#[derive(Debug)]
pub struct FileSource(pub Vec<std::path::PathBuf>);

impl ed::AttachmentSource for FileSource {
    fn open(&mut self, index: usize, _attachment: &ed::Attachment) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        let path = self.0.get(index).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no file for attachment {}", index + 1),
            )
        })?;
        Ok(Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(path)?,
        )))
    }
}
