//! The streaming parser: edXML text → [`Package`], attachment bytes → the caller's sink.

use std::collections::HashMap;
use std::io::BufRead;

use quick_xml::events::{BytesRef, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use sha2::{Digest, Sha256};

use crate::attach::AttachmentSink;
use crate::b64::{DecodeFailure, Decoder};
use crate::date::{EdDate, EdDateTime};
use crate::error::{Error, Result};
use crate::limit::{Guarded, Limits, Trip};
use crate::model::*;
use crate::NAMESPACE;

/// Local names this crate models. One of them met in another namespace is refused as a
/// wrong namespace (a mistake, not an extension); `Signature` is not among them, since an
/// XML-DSig signature in its own namespace is expected and kept raw.
const MODELLED: &[&str] = &[
    "edXML",
    "edXMLEnvelope",
    "edXMLHeader",
    "edXMLBody",
    "edXMLManifest",
    "MessageHeader",
    "TraceHeaderList",
    "AttachmentEncoded",
    "Attachment",
    "From",
    "To",
    "DocumentId",
    "StatusCode",
];

const HEADER_PATH: &str = "edXML/edXMLEnvelope/edXMLHeader/MessageHeader";

/// Parses an edXML document package or status message from `input`.
///
/// The input is read once, as a stream. Attachment bytes are decoded from base64 as they
/// come and handed to `sink` chunk by chunk (with their size and SHA-256 recorded in
/// [`Attachment`]), so memory use does not grow with attachment size. Everything else is
/// bounded by [`Limits::max_markup_bytes`]. See [`Error`] for the refusals.
///
/// ```
/// # use truc_edxml::{parse, Limits, MemoryAttachments, Message};
/// let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
/// <edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope><edXMLHeader><MessageHeader>
///   <From><OrganId>000.00.00.G22</OrganId></From><To><OrganId>000.00.00.H41</OrganId></To>
///   <DocumentId>000.00.00.G22,2018/09/20,7816/VPCP-TTĐT</DocumentId>
/// </MessageHeader></edXMLHeader></edXMLEnvelope></edXML>"#;
/// let mut files = MemoryAttachments::default();
/// let package = parse(xml.as_bytes(), Limits::new(1 << 20), &mut files).unwrap();
/// let Message::Document(header) = &package.message else { panic!() };
/// assert_eq!(header.to[0].organ_id, "000.00.00.H41");
/// ```
pub fn parse<R: BufRead>(input: R, limits: Limits, sink: &mut dyn AttachmentSink) -> Result<Package> {
    let mut reader = NsReader::from_reader(Guarded::new(input, limits));
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    let mut p = Parser { reader, buf: Vec::new(), path: Vec::new(), sink, limits };
    p.document()
}

/// An element's start, resolved.
struct El {
    ns: Option<String>,
    local: String,
    prefix: Option<String>,
    attrs: Vec<ResolvedAttr>,
}

struct ResolvedAttr {
    qname: String,
    prefix: Option<String>,
    ns: Option<String>,
    value: String,
}

struct Next {
    ev: Event<'static>,
    el: Option<El>,
}

struct Parser<'s, R> {
    reader: NsReader<Guarded<R>>,
    buf: Vec<u8>,
    path: Vec<String>,
    sink: &'s mut dyn AttachmentSink,
    limits: Limits,
}

/// Everything the root holds, gathered before it is checked.
#[derive(Default)]
struct Parts {
    style: Option<PrefixStyle>,
    header: Option<RawHeader>,
    trace: Option<TraceHeaderList>,
    manifest: Option<Manifest>,
    attachments: Vec<Attachment>,
    envelope_seen: bool,
    root_extras: Extras,
    envelope_extras: Extras,
    header_extras: Extras,
    body_extras: Extras,
    attachments_extras: Extras,
}

/// A MessageHeader before it is known to be a document's or a status's.
#[derive(Default)]
struct RawHeader {
    from: Option<Organization>,
    to: Vec<Organization>,
    document_id: Option<String>,
    code: Option<Code>,
    promulgation: Option<PromulgationInfo>,
    document_type: Option<DocumentType>,
    subject: Option<String>,
    content: Option<String>,
    signer: Option<SignerInfo>,
    due_date: Option<EdDate>,
    to_places: Option<Vec<String>>,
    other_info: Option<OtherInfo>,
    response_for: Vec<ResponseFor>,
    steering_type: Option<i32>,
    staff: Option<StaffInfo>,
    status_code: Option<String>,
    description: Option<String>,
    timestamp: Option<EdDateTime>,
    extras: Extras,
}

impl<R: BufRead> Parser<'_, R> {
    fn here(&self) -> String {
        if self.path.is_empty() {
            "(prolog)".to_owned()
        } else {
            self.path.join("/")
        }
    }

    fn child_path(&self, local: &str) -> String {
        if self.path.is_empty() {
            local.to_owned()
        } else {
            format!("{}/{local}", self.here())
        }
    }

    fn not_xml(&self, reason: impl Into<String>) -> Error {
        Error::NotXml { element: self.here(), reason: reason.into(), source: None }
    }

    fn invalid(&self, local: &str, reason: impl Into<String>) -> Error {
        Error::Invalid { element: self.child_path(local), reason: reason.into() }
    }

    fn xml_error(&self, e: quick_xml::Error) -> Error {
        match e {
            quick_xml::Error::Io(io) => match self.reader.get_ref().tripped {
                Some(which) => self.too_large(which),
                None => Error::Io {
                    element: self.here(),
                    source: std::io::Error::new(io.kind(), io.to_string()),
                },
            },
            e => Error::NotXml { element: self.here(), reason: e.to_string(), source: Some(e) },
        }
    }

    fn too_large(&self, which: Trip) -> Error {
        match which {
            Trip::Package => Error::TooLarge {
                element: self.here(),
                what: "package",
                limit: self.limits.max_package_bytes,
            },
            Trip::Markup => Error::TooLarge {
                element: self.here(),
                what: "markup (everything but attachment base64)",
                limit: self.limits.max_markup_bytes,
            },
        }
    }

    /// The next event, owned, with names resolved for starts.
    fn next(&mut self) -> Result<Next> {
        self.buf.clear();
        let (res, ev) = match self.reader.read_resolved_event_into(&mut self.buf) {
            Ok((res, ev)) => (ns_of(res), ev.into_owned()),
            Err(e) => return Err(self.xml_error(e)),
        };
        let el = match &ev {
            Event::Start(s) | Event::Empty(s) => {
                let (local, prefix) = s.name().decompose();
                let local = utf8(local.as_ref());
                let prefix = prefix.map(|p| utf8(p.as_ref()));
                let ns = match res {
                    Ok(ns) => ns,
                    Err(unknown) => {
                        return Err(Error::NotXml {
                            element: self.child_path(&local),
                            reason: format!("prefix {unknown:?} is not bound to a namespace"),
                            source: None,
                        })
                    }
                };
                let mut attrs = Vec::new();
                for a in s.attributes() {
                    let a = a.map_err(|e| Error::NotXml {
                        element: self.child_path(&local),
                        reason: e.to_string(),
                        source: Some(e.into()),
                    })?;
                    let qname = utf8(a.key.as_ref());
                    let value = a.unescape_value().map_err(|e| self.attr_error(&local, &qname, e))?.into_owned();
                    let aprefix = a.key.prefix().map(|p| utf8(p.as_ref()));
                    let ans = if a.key.as_namespace_binding().is_some() {
                        None
                    } else {
                        match ns_of(self.reader.resolve_attribute(a.key).0) {
                            Ok(ns) => ns,
                            Err(unknown) => {
                                return Err(Error::NotXml {
                                    element: self.child_path(&local),
                                    reason: format!("attribute {qname}: prefix {unknown:?} is not bound to a namespace"),
                                    source: None,
                                })
                            }
                        }
                    };
                    attrs.push(ResolvedAttr { qname, prefix: aprefix, ns: ans, value });
                }
                Some(El { ns, local, prefix, attrs })
            }
            Event::DocType(_) => return Err(Error::Doctype { element: self.here() }),
            _ => None,
        };
        Ok(Next { ev, el })
    }

    fn attr_error(&self, local: &str, qname: &str, e: quick_xml::Error) -> Error {
        if let quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(_, name)) = &e {
            return Error::Entity { element: format!("{}@{qname}", self.child_path(local)), name: name.clone() };
        }
        Error::NotXml { element: format!("{}@{qname}", self.child_path(local)), reason: e.to_string(), source: Some(e) }
    }

    fn document(&mut self) -> Result<Package> {
        // Prolog: nothing may come before the XML declaration.
        let mut before_decl: Option<String> = None;
        let mut started = false;
        let (root, root_ev) = loop {
            let n = self.next()?;
            match &n.ev {
                Event::Decl(d) => {
                    self.declaration(d)?;
                    if let Some(text) = before_decl.take() {
                        return Err(self.not_xml(format!("content before the XML declaration: {text:?}")));
                    }
                    if started {
                        return Err(self.not_xml("the XML declaration is not at the start"));
                    }
                    started = true;
                }
                Event::Text(t) => {
                    let text = String::from_utf8_lossy(t.as_ref()).into_owned();
                    if !started {
                        before_decl = Some(text.chars().take(40).collect());
                        started = true;
                    } else if !text.trim().is_empty() {
                        return Err(self.not_xml(format!("text before the root element: {text:?}")));
                    }
                }
                Event::Start(_) | Event::Empty(_) => {
                    if let Some(text) = &before_decl {
                        if !text.trim().is_empty() {
                            return Err(self.not_xml(format!("text before the root element: {text:?}")));
                        }
                    }
                    let Next { ev, el } = n;
                    break (el.expect("start resolved"), ev);
                }
                Event::Eof => return Err(self.not_xml("no root element")),
                Event::GeneralRef(_) | Event::CData(_) => {
                    return Err(self.not_xml("content before the root element"));
                }
                _ => started = true,
            }
        };
        if root.ns.as_deref() != Some(NAMESPACE) {
            return Err(Error::WrongNamespace { element: root.local.clone(), found: show_ns(&root.ns) });
        }
        if root.local != "edXML" {
            return Err(Error::Invalid {
                element: root.local.clone(),
                reason: "the root element must be edXML".into(),
            });
        }
        let empty = matches!(root_ev, Event::Empty(_));
        let mut parts = Parts::default();
        parts.root_extras = self.container(&root, empty, |p, c, e| {
            match c.local.as_str() {
                "edXMLEnvelope" => {
                    parts.envelope_seen = true;
                    parts.style = Some(if c.prefix.is_some() { PrefixStyle::Prefixed } else { PrefixStyle::Default });
                    parts.envelope_extras = p.container(c, e, |p, c, e| {
                        match c.local.as_str() {
                            "edXMLHeader" => {
                                parts.header_extras = p.container(c, e, |p, c, e| {
                                    match c.local.as_str() {
                                        "MessageHeader" => parts.header = Some(p.message_header(c, e)?),
                                        "TraceHeaderList" => parts.trace = Some(p.trace_list(c, e)?),
                                        _ => return Ok(false),
                                    }
                                    Ok(true)
                                })?
                            }
                            "edXMLBody" => {
                                parts.body_extras = p.container(c, e, |p, c, e| {
                                    match c.local.as_str() {
                                        "edXMLManifest" => parts.manifest = Some(p.manifest(c, e)?),
                                        _ => return Ok(false),
                                    }
                                    Ok(true)
                                })?
                            }
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                }
                "AttachmentEncoded" => {
                    parts.attachments_extras = p.container(c, e, |p, c, e| {
                        match c.local.as_str() {
                            "Attachment" => {
                                let index = parts.attachments.len();
                                let a = p.attachment(c, e, index)?;
                                parts.attachments.push(a);
                            }
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        // Epilog: comments and whitespace only.
        loop {
            let n = self.next()?;
            match &n.ev {
                Event::Eof => break,
                Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                Event::Comment(_) | Event::PI(_) => {}
                _ => return Err(self.not_xml("content after the root element")),
            }
        }
        self.finish(parts)
    }

    /// XML 1.0 or 1.1, in UTF-8 (the only encoding read; another would be misread).
    fn declaration(&self, d: &quick_xml::events::BytesDecl<'_>) -> Result<()> {
        let version = d.version().map_err(|e| Error::NotXml {
            element: self.here(),
            reason: "bad XML declaration".into(),
            source: Some(e),
        })?;
        if !matches!(version.as_ref(), b"1.0" | b"1.1") {
            return Err(self.not_xml(format!("XML version {:?} in the declaration", utf8(&version))));
        }
        if let Some(enc) = d.encoding() {
            let enc = enc.map_err(|e| Error::NotXml {
                element: self.here(),
                reason: "bad encoding in the XML declaration".into(),
                source: Some(e.into()),
            })?;
            if !enc.eq_ignore_ascii_case(b"utf-8") && !enc.eq_ignore_ascii_case(b"utf8") {
                return Err(self.not_xml(format!("encoding {:?} is not supported (UTF-8 only)", utf8(&enc))));
            }
        }
        Ok(())
    }

    fn finish(&self, parts: Parts) -> Result<Package> {
        if !parts.envelope_seen {
            return Err(Error::Missing { element: "edXML/edXMLEnvelope".into() });
        }
        let Some(h) = parts.header else {
            return Err(Error::Missing { element: HEADER_PATH.into() });
        };
        let missing = |name: &str| Error::Missing { element: format!("{HEADER_PATH}/{name}") };
        let unexpected = |name: &str, what: &str| Error::Invalid {
            element: format!("{HEADER_PATH}/{name}"),
            reason: format!("not expected in {what}"),
        };
        let message = if let Some(code) = &h.status_code {
            let from = h.from.ok_or_else(|| missing("From"))?;
            if !h.to.is_empty() {
                return Err(unexpected("To", "a status message"));
            }
            if h.document_id.is_some() {
                return Err(unexpected("DocumentId", "a status message (the document is named in ResponseFor)"));
            }
            let doc_only = [
                ("Code", h.code.is_some()),
                ("PromulgationInfo", h.promulgation.is_some()),
                ("DocumentType", h.document_type.is_some()),
                ("Subject", h.subject.is_some()),
                ("Content", h.content.is_some()),
                ("SignerInfo", h.signer.is_some()),
                ("DueDate", h.due_date.is_some()),
                ("ToPlaces", h.to_places.is_some()),
                ("OtherInfo", h.other_info.is_some()),
                ("SteeringType", h.steering_type.is_some()),
            ];
            if let Some((name, _)) = doc_only.iter().find(|(_, present)| *present) {
                return Err(unexpected(name, "a status message"));
            }
            let mut rf = h.response_for.into_iter();
            let response_for = rf.next().ok_or_else(|| missing("ResponseFor"))?;
            if rf.next().is_some() {
                return Err(Error::Invalid {
                    element: format!("{HEADER_PATH}/ResponseFor"),
                    reason: "a status message is about one document: several ResponseFor".into(),
                });
            }
            let status = StatusCode::from_code(code).ok_or_else(|| Error::Invalid {
                element: format!("{HEADER_PATH}/StatusCode"),
                reason: format!("{code:?} is not a status code (01-06, 13, 15, 16)"),
            })?;
            Message::Status(StatusHeader {
                from,
                response_for,
                staff: h.staff,
                status,
                description: h.description,
                timestamp: h.timestamp,
                extras: h.extras,
            })
        } else {
            let from = h.from.ok_or_else(|| missing("From"))?;
            if h.to.is_empty() {
                return Err(missing("To"));
            }
            let document_id = h.document_id.ok_or_else(|| missing("DocumentId"))?;
            if document_id.trim().is_empty() {
                return Err(Error::Invalid {
                    element: format!("{HEADER_PATH}/DocumentId"),
                    reason: "empty".into(),
                });
            }
            for (name, present) in
                [("StaffInfo", h.staff.is_some()), ("Description", h.description.is_some()), ("Timestamp", h.timestamp.is_some())]
            {
                if present {
                    return Err(unexpected(name, "a document's MessageHeader (no StatusCode)"));
                }
            }
            Message::Document(MessageHeader {
                from,
                to: h.to,
                document_id,
                code: h.code,
                promulgation: h.promulgation,
                document_type: h.document_type,
                subject: h.subject,
                content: h.content,
                signer: h.signer,
                due_date: h.due_date,
                to_places: h.to_places,
                other_info: h.other_info,
                response_for: h.response_for,
                steering_type: h.steering_type,
                extras: h.extras,
            })
        };
        if let Some(m) = &parts.manifest {
            for (i, r) in m.references.iter().enumerate() {
                let element = format!("edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference[{}]", i + 1);
                let Some(cid) = &r.content_id else {
                    return Err(Error::Missing { element: format!("{element}/ContentId") });
                };
                let wanted = bare_cid(cid);
                if !parts.attachments.iter().any(|a| a.content_id.as_deref().map(bare_cid) == Some(wanted)) {
                    return Err(Error::DanglingReference { element, content_id: cid.clone() });
                }
            }
        }
        Ok(Package {
            style: parts.style.unwrap_or_default(),
            message,
            trace: parts.trace,
            manifest: parts.manifest,
            attachments: parts.attachments,
            root_extras: parts.root_extras,
            envelope_extras: parts.envelope_extras,
            header_extras: parts.header_extras,
            body_extras: parts.body_extras,
            attachments_extras: parts.attachments_extras,
        })
    }

    /// Reads the children of `el` (already started): QCVN children go to `f`, which returns
    /// whether it modelled (and consumed) the child; the others are kept raw, in place.
    fn container<F>(&mut self, el: &El, empty: bool, mut f: F) -> Result<Extras>
    where
        F: FnMut(&mut Self, &El, bool) -> Result<bool>,
    {
        let mut extras = Vec::new();
        if empty {
            return Ok(Extras(extras));
        }
        self.path.push(el.local.clone());
        let mut last: Option<Anchor> = None;
        let mut counts: HashMap<String, usize> = HashMap::new();
        loop {
            let n = self.next()?;
            match n.ev {
                Event::Start(_) | Event::Empty(_) => {
                    let child = n.el.as_ref().expect("start resolved");
                    let empty = matches!(n.ev, Event::Empty(_));
                    let ours = child.ns.as_deref() == Some(NAMESPACE);
                    if ours && f(self, child, empty)? {
                        let c = counts.entry(child.local.clone()).or_default();
                        *c += 1;
                        last = Some(Anchor { element: child.local.clone(), occurrence: *c });
                    } else {
                        if !ours && MODELLED.contains(&child.local.as_str()) {
                            return Err(Error::WrongNamespace {
                                element: self.child_path(&child.local),
                                found: show_ns(&child.ns),
                            });
                        }
                        let xml = self.capture(n)?;
                        extras.push(Unmodelled { after: last.clone(), xml });
                    }
                }
                Event::End(_) => break,
                Event::Text(t) => {
                    if !t.iter().all(u8::is_ascii_whitespace) {
                        let text: String = String::from_utf8_lossy(t.as_ref()).chars().take(40).collect();
                        return Err(Error::Invalid {
                            element: self.here(),
                            reason: format!("text {text:?} where elements are expected"),
                        });
                    }
                }
                Event::GeneralRef(_) | Event::CData(_) => {
                    return Err(Error::Invalid { element: self.here(), reason: "text where elements are expected".into() })
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Decl(_) => return Err(self.not_xml("XML declaration inside an element")),
                Event::DocType(_) => return Err(Error::Doctype { element: self.here() }),
                Event::Eof => return Err(self.not_xml("unexpected end of input")),
            }
        }
        self.path.pop();
        Ok(Extras(extras))
    }

    /// The text of a leaf element (entities resolved; nested elements refused).
    fn text(&mut self, el: &El, empty: bool) -> Result<String> {
        let mut out = String::new();
        if empty {
            return Ok(out);
        }
        self.path.push(el.local.clone());
        loop {
            let n = self.next()?;
            match &n.ev {
                Event::Text(t) => {
                    let s = t.xml10_content().map_err(|e| self.not_xml(e.to_string()))?;
                    out.push_str(&s);
                }
                Event::CData(c) => {
                    let s = c.xml10_content().map_err(|e| self.not_xml(e.to_string()))?;
                    out.push_str(&s);
                }
                Event::GeneralRef(r) => out.push(self.reference(r)?),
                Event::Comment(_) | Event::PI(_) => {}
                Event::End(_) => break,
                Event::Start(_) | Event::Empty(_) => {
                    let local = n.el.map(|e| e.local).unwrap_or_default();
                    return Err(Error::Invalid {
                        element: self.here(),
                        reason: format!("element {local} inside a text field"),
                    });
                }
                Event::Eof => return Err(self.not_xml("unexpected end of input")),
                Event::Decl(_) | Event::DocType(_) => return Err(self.not_xml("declaration inside an element")),
            }
        }
        self.path.pop();
        Ok(out)
    }

    fn reference(&self, r: &BytesRef<'_>) -> Result<char> {
        if r.is_char_ref() {
            return match r.resolve_char_ref() {
                Ok(Some(c)) => Ok(c),
                Ok(None) => Err(self.not_xml("bad character reference")),
                Err(e) => Err(Error::NotXml { element: self.here(), reason: e.to_string(), source: Some(e) }),
            };
        }
        let name = String::from_utf8_lossy(r.as_ref()).into_owned();
        match name.as_str() {
            "amp" => Ok('&'),
            "lt" => Ok('<'),
            "gt" => Ok('>'),
            "apos" => Ok('\''),
            "quot" => Ok('"'),
            _ => Err(Error::Entity { element: self.here(), name }),
        }
    }

    fn opt_text(&mut self, el: &El, empty: bool) -> Result<Option<String>> {
        self.text(el, empty).map(Some)
    }

    fn int(&mut self, el: &El, empty: bool) -> Result<Option<i64>> {
        let t = self.text(el, empty)?;
        let t = t.trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse().map(Some).map_err(|_| self.invalid(&el.local, format!("{t:?} is not an integer")))
    }

    fn int32(&mut self, el: &El, empty: bool) -> Result<Option<i32>> {
        match self.int(el, empty)? {
            None => Ok(None),
            Some(v) => i32::try_from(v).map(Some).map_err(|_| self.invalid(&el.local, format!("{v} is out of range"))),
        }
    }

    fn date(&mut self, el: &El, empty: bool) -> Result<Option<EdDate>> {
        let t = self.text(el, empty)?;
        Ok((!t.trim().is_empty()).then(|| EdDate::parse(&t)))
    }

    fn datetime(&mut self, el: &El, empty: bool) -> Result<Option<EdDateTime>> {
        let t = self.text(el, empty)?;
        Ok((!t.trim().is_empty()).then(|| EdDateTime::parse(&t)))
    }

    /// A list of leaf elements of one name (`ToPlaces/Place*`, `OrganIdList/OrganId*`).
    fn list(&mut self, el: &El, empty: bool, item: &str) -> Result<(Vec<String>, Extras)> {
        let mut items = Vec::new();
        let extras = self.container(el, empty, |p, c, e| {
            if c.local == item {
                items.push(p.text(c, e)?);
                Ok(true)
            } else {
                Ok(false)
            }
        })?;
        Ok((items, extras))
    }

    /// A list that keeps no extras of its own: unmodelled items there are refused, since
    /// the model has no place for them.
    fn plain_list(&mut self, el: &El, empty: bool, item: &str) -> Result<Vec<String>> {
        let path = self.child_path(&el.local);
        let (items, extras) = self.list(el, empty, item)?;
        if !extras.is_empty() {
            return Err(Error::Invalid { element: path, reason: format!("only {item} elements are expected") });
        }
        Ok(items)
    }

    fn organization(&mut self, el: &El, empty: bool) -> Result<Organization> {
        let mut o = Organization::default();
        let mut id = None;
        o.extras = self.container(el, empty, |p, c, e| {
            match c.local.as_str() {
                "OrganId" => id = Some(p.text(c, e)?),
                "OrganizationInCharge" => o.organization_in_charge = p.opt_text(c, e)?,
                "OrganName" => o.organ_name = p.opt_text(c, e)?,
                "OrganAdd" => o.organ_add = p.opt_text(c, e)?,
                "Email" => o.email = p.opt_text(c, e)?,
                "Telephone" => o.telephone = p.opt_text(c, e)?,
                "Fax" => o.fax = p.opt_text(c, e)?,
                "Website" => o.website = p.opt_text(c, e)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        match id {
            Some(id) if !id.trim().is_empty() => o.organ_id = id,
            _ => return Err(Error::Missing { element: format!("{}/OrganId", self.child_path(&el.local)) }),
        }
        Ok(o)
    }

    fn response_for(&mut self, el: &El, empty: bool) -> Result<ResponseFor> {
        let mut r = ResponseFor::default();
        r.extras = self.container(el, empty, |p, c, e| {
            match c.local.as_str() {
                "OrganId" => r.organ_id = p.opt_text(c, e)?,
                "Code" => r.code = p.opt_text(c, e)?,
                "PromulgationDate" => r.promulgation_date = p.date(c, e)?,
                "DocumentId" => r.document_id = p.opt_text(c, e)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(r)
    }

    fn staff(&mut self, el: &El, empty: bool) -> Result<StaffInfo> {
        let mut s = StaffInfo::default();
        s.extras = self.container(el, empty, |p, c, e| {
            match c.local.as_str() {
                "Department" => s.department = p.opt_text(c, e)?,
                "DepartmentId" => s.department_id = p.opt_text(c, e)?,
                "Staff" => s.staff = p.opt_text(c, e)?,
                "StaffId" => s.staff_id = p.opt_text(c, e)?,
                "Email" => s.email = p.opt_text(c, e)?,
                "Mobile" => s.mobile = p.opt_text(c, e)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(s)
    }

    fn message_header(&mut self, el: &El, empty: bool) -> Result<RawHeader> {
        let mut h = RawHeader::default();
        h.extras = self.container(el, empty, |p, c, e| {
            match c.local.as_str() {
                "From" => h.from = Some(p.organization(c, e)?),
                "To" => h.to.push(p.organization(c, e)?),
                "DocumentId" => h.document_id = p.opt_text(c, e)?,
                "Code" => {
                    let mut code = Code::default();
                    code.extras = p.container(c, e, |p, c, e| {
                        match c.local.as_str() {
                            "CodeNumber" => code.number = p.opt_text(c, e)?,
                            "CodeNotation" => code.notation = p.opt_text(c, e)?,
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    h.code = Some(code);
                }
                "PromulgationInfo" => {
                    let mut info = PromulgationInfo::default();
                    info.extras = p.container(c, e, |p, c, e| {
                        match c.local.as_str() {
                            "Place" => info.place = p.opt_text(c, e)?,
                            "PromulgationDate" => info.date = p.date(c, e)?,
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    h.promulgation = Some(info);
                }
                "DocumentType" => {
                    let mut t = DocumentType::default();
                    t.extras = p.container(c, e, |p, c, e| {
                        match c.local.as_str() {
                            "Type" => t.kind = p.int32(c, e)?,
                            "TypeDetail" => t.detail = p.int32(c, e)?,
                            "TypeName" => t.name = p.opt_text(c, e)?,
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    h.document_type = Some(t);
                }
                "Subject" => h.subject = p.opt_text(c, e)?,
                "Content" => h.content = p.opt_text(c, e)?,
                "SignerInfo" => {
                    let mut s = SignerInfo::default();
                    s.extras = p.container(c, e, |p, c, e| {
                        match c.local.as_str() {
                            "Competence" => s.competence = p.opt_text(c, e)?,
                            "Position" => s.position = p.opt_text(c, e)?,
                            "FullName" => s.full_name = p.opt_text(c, e)?,
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    h.signer = Some(s);
                }
                "DueDate" => h.due_date = p.date(c, e)?,
                "ToPlaces" => h.to_places = Some(p.plain_list(c, e, "Place")?),
                "OtherInfo" => {
                    let mut o = OtherInfo::default();
                    o.extras = p.container(c, e, |p, c, e| {
                        match c.local.as_str() {
                            "Priority" => o.priority = p.int32(c, e)?,
                            "SphereOfPromulgation" => o.sphere_of_promulgation = p.opt_text(c, e)?,
                            "TyperNotation" => o.typer_notation = p.opt_text(c, e)?,
                            "PromulgationAmount" => o.promulgation_amount = p.int(c, e)?,
                            "PageAmount" => o.page_amount = p.int(c, e)?,
                            "Appendixes" => o.appendixes = Some(p.plain_list(c, e, "Appendix")?),
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    h.other_info = Some(o);
                }
                "ResponseFor" => h.response_for.push(p.response_for(c, e)?),
                "SteeringType" => h.steering_type = p.int32(c, e)?,
                "StaffInfo" => h.staff = Some(p.staff(c, e)?),
                "StatusCode" => {
                    let code = p.text(c, e)?;
                    if code.trim().is_empty() {
                        return Err(Error::Invalid {
                            element: format!("{HEADER_PATH}/StatusCode"),
                            reason: "empty".into(),
                        });
                    }
                    h.status_code = Some(code);
                }
                "Description" => h.description = p.opt_text(c, e)?,
                "Timestamp" => h.timestamp = p.datetime(c, e)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(h)
    }

    fn trace_list(&mut self, el: &El, empty: bool) -> Result<TraceHeaderList> {
        let mut t = TraceHeaderList { attributes: attributes(el), ..Default::default() };
        t.extras = self.container(el, empty, |p, c, e| {
            match c.local.as_str() {
                "TraceHeader" => {
                    let mut th = TraceHeader::default();
                    th.extras = p.container(c, e, |p, c, e| {
                        match c.local.as_str() {
                            "OrganId" => th.organ_id = p.opt_text(c, e)?,
                            "Timestamp" => th.timestamp = p.datetime(c, e)?,
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    t.traces.push(th);
                }
                "Bussiness" => t.business = Some(p.business(c, e)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(t)
    }

    fn business(&mut self, el: &El, empty: bool) -> Result<Business> {
        let mut b = Business::default();
        b.extras = self.container(el, empty, |p, c, e| {
            match c.local.as_str() {
                "DocumentId" => b.document_id = p.opt_text(c, e)?,
                "BussinessDocType" => {
                    b.doc_type = match p.int(c, e)? {
                        None => None,
                        Some(v) => Some(BusinessDocType::from_code(v).ok_or_else(|| {
                            p.invalid(&c.local, format!("{v} is not a business type (0 new, 1 revoke, 2 update, 3 replace)"))
                        })?),
                    }
                }
                "BussinessDocReason" => b.reason = p.opt_text(c, e)?,
                "Paper" => b.paper = p.int32(c, e)?,
                "BussinessDocumentInfo" => {
                    let mut info = BusinessDocumentInfo::default();
                    info.extras = p.container(c, e, |p, c, e| {
                        match c.local.as_str() {
                            "DocumentInfo" => info.document_info = p.opt_text(c, e)?,
                            "DocumentReceiver" => info.document_receiver = p.opt_text(c, e)?,
                            "ReceiverList" => {
                                let mut list = Vec::new();
                                let extras = p.container(c, e, |p, c, e| {
                                    if c.local != "Receiver" {
                                        return Ok(false);
                                    }
                                    let mut r = Receiver::default();
                                    r.extras = p.container(c, e, |p, c, e| {
                                        match c.local.as_str() {
                                            "OrganId" => r.organ_id = p.opt_text(c, e)?,
                                            "ReceiverType" => {
                                                r.receiver_type = match p.int(c, e)? {
                                                    None => None,
                                                    Some(0) => Some(ReceiverType::Removed),
                                                    Some(1) => Some(ReceiverType::Added),
                                                    Some(v) => {
                                                        return Err(p.invalid(
                                                            &c.local,
                                                            format!("{v} is not a receiver type (0 removed, 1 added)"),
                                                        ))
                                                    }
                                                }
                                            }
                                            _ => return Ok(false),
                                        }
                                        Ok(true)
                                    })?;
                                    list.push(r);
                                    Ok(true)
                                })?;
                                if !extras.is_empty() {
                                    return Err(p.invalid(&c.local, "only Receiver elements are expected"));
                                }
                                info.receivers = Some(list);
                            }
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    b.document_info = Some(info);
                }
                "ReplacementInfoList" => {
                    let mut list = Vec::new();
                    let extras = p.container(c, e, |p, c, e| {
                        if c.local != "ReplacementInfo" {
                            return Ok(false);
                        }
                        let mut r = ReplacementInfo::default();
                        r.extras = p.container(c, e, |p, c, e| {
                            match c.local.as_str() {
                                "DocumentId" => r.document_id = p.opt_text(c, e)?,
                                "OrganIdList" => r.organ_ids = p.plain_list(c, e, "OrganId")?,
                                _ => return Ok(false),
                            }
                            Ok(true)
                        })?;
                        list.push(r);
                        Ok(true)
                    })?;
                    if !extras.is_empty() {
                        return Err(p.invalid(&c.local, "only ReplacementInfo elements are expected"));
                    }
                    b.replacements = Some(list);
                }
                "StaffInfo" => b.staff = Some(p.staff(c, e)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(b)
    }

    fn manifest(&mut self, el: &El, empty: bool) -> Result<Manifest> {
        let mut m = Manifest { attributes: attributes(el), ..Default::default() };
        m.extras = self.container(el, empty, |p, c, e| {
            if c.local != "Reference" {
                return Ok(false);
            }
            let mut r = Reference { attributes: attributes(c), ..Default::default() };
            r.extras = p.container(c, e, |p, c, e| {
                match c.local.as_str() {
                    "ContentId" => r.content_id = p.opt_text(c, e)?,
                    "ContentType" => r.content_type = p.opt_text(c, e)?,
                    "Description" => r.description = p.opt_text(c, e)?,
                    "AttachmentName" => r.attachment_name = p.opt_text(c, e)?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            m.references.push(r);
            Ok(true)
        })?;
        Ok(m)
    }

    fn attachment(&mut self, el: &El, empty: bool, index: usize) -> Result<Attachment> {
        let mut a = Attachment::default();
        let mut body: Option<(u64, [u8; 32])> = None;
        let path = format!("{}[{}]", self.child_path(&el.local), index + 1);
        a.extras = self.container(el, empty, |p, c, e| {
            match c.local.as_str() {
                "ContentId" => a.content_id = p.opt_text(c, e)?,
                "AttachmentName" => a.name = p.opt_text(c, e)?,
                "Description" => a.description = p.opt_text(c, e)?,
                "ContentType" => a.content_type = p.opt_text(c, e)?,
                "ContentTransferEncoded" => {
                    if body.is_some() {
                        return Err(p.invalid(&c.local, "a second ContentTransferEncoded in one Attachment"));
                    }
                    body = Some(p.base64(c, e, index)?);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let (size, sha256) = body.unwrap_or((0, Sha256::digest(b"").into()));
        a.size = size;
        a.sha256 = sha256;
        self.sink.finish(index, &a).map_err(|source| Error::Attachment {
            element: path,
            index,
            action: "writing to the sink",
            source,
        })?;
        Ok(a)
    }

    /// Streams `ContentTransferEncoded`'s base64 text to the sink, decoding as it goes:
    /// the text is read straight from the input between markup, never as one event.
    fn base64(&mut self, el: &El, empty: bool, index: usize) -> Result<(u64, [u8; 32])> {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut decoder = Decoder::new();
        if empty {
            return Ok((0, hasher.finalize().into()));
        }
        self.path.push(el.local.clone());
        loop {
            // Raw phase: base64 up to the next markup or reference.
            let guarded = self.reader.get_mut();
            guarded.streaming = true;
            let raw: std::io::Result<std::result::Result<(), DecodeFailure>> = (|| loop {
                let buf = guarded.fill_buf()?;
                if buf.is_empty() {
                    return Ok(Ok(()));
                }
                let stop = buf.iter().position(|&b| b == b'<' || b == b'&');
                let n = stop.unwrap_or(buf.len());
                let sink = &mut *self.sink;
                let pushed = decoder.push(&buf[..n], &mut |chunk: &[u8]| {
                    hasher.update(chunk);
                    size += chunk.len() as u64;
                    sink.write(index, chunk)
                });
                if let Err(e) = pushed {
                    return Ok(Err(e));
                }
                guarded.consume(n);
                if stop.is_some() {
                    return Ok(Ok(()));
                }
            })();
            self.reader.get_mut().streaming = false;
            match raw {
                Ok(Ok(())) => {}
                Ok(Err(failure)) => return Err(self.decode_failure(failure, index)),
                Err(io) => {
                    return Err(match self.reader.get_ref().tripped {
                        Some(which) => self.too_large(which),
                        None => Error::Io { element: self.here(), source: io },
                    })
                }
            }
            // Markup phase: the end tag, or something between base64 runs.
            let n = self.next()?;
            let more: Option<Vec<u8>> = match &n.ev {
                Event::End(_) => break,
                Event::GeneralRef(r) => {
                    let c = self.reference(r)?;
                    if !c.is_ascii_whitespace() {
                        return Err(self.invalid_b64(index, format!("character {c:?} from a reference")));
                    }
                    None
                }
                Event::CData(c) => Some(c.to_vec()),
                Event::Text(t) => Some(t.to_vec()),
                Event::Comment(_) | Event::PI(_) => None,
                Event::Start(_) | Event::Empty(_) => {
                    return Err(Error::Invalid { element: self.here(), reason: "an element inside base64 content".into() })
                }
                Event::Eof => return Err(self.not_xml("unexpected end of input")),
                Event::Decl(_) | Event::DocType(_) => return Err(self.not_xml("declaration inside an element")),
            };
            if let Some(bytes) = more {
                let sink = &mut *self.sink;
                decoder
                    .push(&bytes, &mut |chunk: &[u8]| {
                        hasher.update(chunk);
                        size += chunk.len() as u64;
                        sink.write(index, chunk)
                    })
                    .map_err(|f| self.decode_failure(f, index))?;
            }
        }
        let sink = &mut *self.sink;
        decoder
            .finish(&mut |chunk: &[u8]| {
                hasher.update(chunk);
                size += chunk.len() as u64;
                sink.write(index, chunk)
            })
            .map_err(|f| self.decode_failure(f, index))?;
        self.path.pop();
        Ok((size, hasher.finalize().into()))
    }

    fn invalid_b64(&self, _index: usize, what: String) -> Error {
        Error::Invalid { element: self.here(), reason: format!("{what} in base64 content") }
    }

    fn decode_failure(&self, f: DecodeFailure, index: usize) -> Error {
        match f {
            DecodeFailure::Base64(offset, source) => Error::Base64 { element: self.here(), offset, source },
            DecodeFailure::Sink(source) => {
                Error::Attachment { element: self.here(), index, action: "writing to the sink", source }
            }
        }
    }

    /// Captures an unmodelled element (its start already read) as self-contained XML.
    fn capture(&mut self, first: Next) -> Result<String> {
        let root = first.el.expect("start resolved");
        self.path.push(root.local.clone());
        let mut events = vec![(first.ev, Some(root))];
        let mut depth = usize::from(matches!(events[0].0, Event::Start(_)));
        while depth > 0 {
            let n = self.next()?;
            match &n.ev {
                Event::Start(_) => depth += 1,
                Event::End(_) => depth -= 1,
                Event::Eof => return Err(self.not_xml("unexpected end of input")),
                Event::Decl(_) | Event::DocType(_) => return Err(self.not_xml("declaration inside an element")),
                Event::GeneralRef(r) => {
                    self.reference(r)?;
                }
                _ => {}
            }
            events.push((n.ev, n.el));
        }
        self.path.pop();
        // Prefixes used, with the namespace each resolved to where first used, and the
        // prefixes declared somewhere inside (those need no help).
        let mut used: Vec<(Option<String>, Option<String>)> = Vec::new();
        let mut declared: Vec<Option<String>> = Vec::new();
        for el in events.iter().filter_map(|(_, el)| el.as_ref()) {
            let mut note = |prefix: &Option<String>, ns: &Option<String>| {
                if prefix.as_deref() != Some("xml") && !used.iter().any(|(p, _)| p == prefix) {
                    used.push((prefix.clone(), ns.clone()));
                }
            };
            note(&el.prefix, &el.ns);
            for a in &el.attrs {
                if a.qname == "xmlns" {
                    declared.push(None);
                } else if let Some(p) = a.qname.strip_prefix("xmlns:") {
                    declared.push(Some(p.to_owned()));
                } else if a.prefix.is_some() {
                    note(&a.prefix, &a.ns);
                }
            }
        }
        let mut writer = quick_xml::Writer::new(Vec::new());
        let mut iter = events.into_iter();
        let (first_ev, _) = iter.next().expect("one event");
        let add = |mut start: quick_xml::events::BytesStart<'static>| {
            for (prefix, ns) in &used {
                if declared.contains(prefix) {
                    continue;
                }
                let ns = ns.as_deref().unwrap_or("");
                match prefix {
                    Some(p) => start.push_attribute((format!("xmlns:{p}").as_str(), ns)),
                    None => start.push_attribute(("xmlns", ns)),
                }
            }
            start
        };
        let first_ev = match first_ev {
            Event::Start(s) => Event::Start(add(s)),
            Event::Empty(s) => Event::Empty(add(s)),
            other => other,
        };
        let io = |e: std::io::Error| Error::Io { element: "(capture)".into(), source: e };
        writer.write_event(first_ev).map_err(io)?;
        for (ev, _) in iter {
            writer.write_event(ev).map_err(io)?;
        }
        Ok(String::from_utf8(writer.into_inner()).map_err(|_| self.not_xml("invalid UTF-8"))?)
    }
}

fn attributes(el: &El) -> Vec<Attribute> {
    el.attrs
        .iter()
        .filter(|a| a.qname != "xmlns" && !a.qname.starts_with("xmlns:"))
        .map(|a| Attribute { name: a.qname.clone(), namespace: a.ns.clone(), value: a.value.clone() })
        .collect()
}

/// `Ok(namespace)` or `Err(unbound prefix)`.
fn ns_of(res: ResolveResult<'_>) -> std::result::Result<Option<String>, String> {
    match res {
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Bound(ns) => Ok(Some(utf8(ns.as_ref()))),
        ResolveResult::Unknown(p) => Err(utf8(&p)),
    }
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show_ns(ns: &Option<String>) -> String {
    match ns {
        Some(ns) => format!("{ns:?}"),
        None => "(none)".into(),
    }
}

/// A content id without its `cid:` scheme or angle brackets, for matching.
pub(crate) fn bare_cid(cid: &str) -> &str {
    let c = cid.trim();
    let c = c.strip_prefix("cid:").unwrap_or(c);
    c.trim_start_matches('<').trim_end_matches('>')
}

