//! The streaming parser: edXML text → [`Package`], attachment bytes → the caller's sink.

use std::collections::HashMap;
use std::io::BufRead;

use quick_xml::events::{BytesRef, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::attach::AttachmentSink;
use crate::date::{EdDate, EdDateTime};
use crate::error::{Error, Result};
use crate::limit::{Guarded, Limits, Trip};
use crate::model::*;
use crate::NAMESPACE;

mod attachment;
mod capture;
mod header;

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
    let mut p = Parser {
        reader,
        buf: Vec::new(),
        path: Vec::new(),
        sink,
        limits,
        dropped: Vec::new(),
    };
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
    /// Attributes on modelled elements that the model has no place for.
    dropped: Vec<Warning>,
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
    root_attributes: Vec<Attribute>,
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
        Error::NotXml {
            element: self.here(),
            reason: reason.into(),
            source: None,
        }
    }

    fn invalid(&self, local: &str, reason: impl Into<String>) -> Error {
        Error::Invalid {
            element: self.child_path(local),
            reason: reason.into(),
        }
    }

    fn xml_error(&self, e: quick_xml::Error) -> Error {
        match e {
            quick_xml::Error::Io(io) => match self.reader.get_ref().tripped {
                Some(which) => self.too_large(which),
                None => Error::Io {
                    element: self.here(),
                    source: std::io::Error::new(io.kind(), io),
                },
            },
            e => Error::NotXml {
                element: self.here(),
                reason: e.to_string(),
                source: Some(e),
            },
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
                    let value = a
                        .unescape_value()
                        .map_err(|e| self.attr_error(&local, &qname, e))?
                        .into_owned();
                    let aprefix = a.key.prefix().map(|p| utf8(p.as_ref()));
                    let ans = if a.key.as_namespace_binding().is_some() {
                        None
                    } else {
                        match ns_of(self.reader.resolve_attribute(a.key).0) {
                            Ok(ns) => ns,
                            Err(unknown) => {
                                return Err(Error::NotXml {
                                    element: self.child_path(&local),
                                    reason: format!(
                                        "attribute {qname}: prefix {unknown:?} is not bound to a namespace"
                                    ),
                                    source: None,
                                })
                            }
                        }
                    };
                    attrs.push(ResolvedAttr {
                        qname,
                        prefix: aprefix,
                        ns: ans,
                        value,
                    });
                }
                Some(El {
                    ns,
                    local,
                    prefix,
                    attrs,
                })
            }
            Event::DocType(_) => return Err(Error::Doctype { element: self.here() }),
            _ => None,
        };
        Ok(Next { ev, el })
    }

    fn attr_error(&self, local: &str, qname: &str, e: quick_xml::Error) -> Error {
        if let quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(_, name)) = &e {
            return Error::Entity {
                element: format!("{}@{qname}", self.child_path(local)),
                name: name.clone(),
            };
        }
        Error::NotXml {
            element: format!("{}@{qname}", self.child_path(local)),
            reason: e.to_string(),
            source: Some(e),
        }
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
            return Err(Error::WrongNamespace {
                element: root.local.clone(),
                found: show_ns(&root.ns),
            });
        }
        if root.local != "edXML" {
            return Err(Error::Invalid {
                element: root.local.clone(),
                reason: "the root element must be edXML".into(),
            });
        }
        let empty = matches!(root_ev, Event::Empty(_));
        let mut parts = Parts {
            root_attributes: attributes(&root),
            ..Parts::default()
        };
        parts.root_extras = self.container(&root, empty, |p, c, e| {
            match c.local.as_str() {
                "edXMLEnvelope" => {
                    parts.envelope_seen = true;
                    parts.style = Some(if c.prefix.is_some() {
                        PrefixStyle::Prefixed
                    } else {
                        PrefixStyle::Default
                    });
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

    fn finish(&mut self, parts: Parts) -> Result<Package> {
        if !parts.envelope_seen {
            return Err(Error::Missing {
                element: "edXML/edXMLEnvelope".into(),
            });
        }
        let Some(h) = parts.header else {
            return Err(Error::Missing {
                element: HEADER_PATH.into(),
            });
        };
        let missing = |name: &str| Error::Missing {
            element: format!("{HEADER_PATH}/{name}"),
        };
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
                return Err(unexpected(
                    "DocumentId",
                    "a status message (the document is named in ResponseFor)",
                ));
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
            for (name, present) in [
                ("StaffInfo", h.staff.is_some()),
                ("Description", h.description.is_some()),
                ("Timestamp", h.timestamp.is_some()),
            ] {
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
                    return Err(Error::Missing {
                        element: format!("{element}/ContentId"),
                    });
                };
                let wanted = bare_cid(cid);
                if !parts
                    .attachments
                    .iter()
                    .any(|a| a.content_id.as_deref().map(bare_cid) == Some(wanted))
                {
                    return Err(Error::DanglingReference {
                        element,
                        content_id: cid.clone(),
                    });
                }
            }
        }
        Ok(Package {
            style: parts.style.unwrap_or_default(),
            root_attributes: parts.root_attributes,
            message,
            trace: parts.trace,
            manifest: parts.manifest,
            attachments: parts.attachments,
            root_extras: parts.root_extras,
            envelope_extras: parts.envelope_extras,
            header_extras: parts.header_extras,
            body_extras: parts.body_extras,
            attachments_extras: parts.attachments_extras,
            dropped: std::mem::take(&mut self.dropped),
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
                        self.note_dropped_attributes(child);
                        let c = counts.entry(child.local.clone()).or_default();
                        *c += 1;
                        last = Some(Anchor {
                            element: child.local.clone(),
                            occurrence: *c,
                        });
                    } else {
                        if !ours && MODELLED.contains(&child.local.as_str()) {
                            return Err(Error::WrongNamespace {
                                element: self.child_path(&child.local),
                                found: show_ns(&child.ns),
                            });
                        }
                        let xml = self.capture(n)?;
                        extras.push(Unmodelled {
                            after: last.clone(),
                            xml,
                        });
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
                    return Err(Error::Invalid {
                        element: self.here(),
                        reason: "text where elements are expected".into(),
                    })
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

    /// Attributes are kept where the model has a place for them (the root,
    /// TraceHeaderList, edXMLManifest, Reference); elsewhere they are reported.
    fn note_dropped_attributes(&mut self, el: &El) {
        if matches!(el.local.as_str(), "TraceHeaderList" | "edXMLManifest" | "Reference") {
            return;
        }
        for a in attributes(el) {
            self.dropped.push(Warning {
                element: format!("{}@{}", self.child_path(&el.local), a.name),
                reason: format!("attribute {:?} is not kept: the model has no place for it", a.value),
            });
        }
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
                Err(e) => Err(Error::NotXml {
                    element: self.here(),
                    reason: e.to_string(),
                    source: Some(e),
                }),
            };
        }
        let name = String::from_utf8_lossy(r.as_ref()).into_owned();
        match name.as_str() {
            "amp" => Ok('&'),
            "lt" => Ok('<'),
            "gt" => Ok('>'),
            "apos" => Ok('\''),
            "quot" => Ok('"'),
            _ => Err(Error::Entity {
                element: self.here(),
                name,
            }),
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
        t.parse()
            .map(Some)
            .map_err(|_| self.invalid(&el.local, format!("{t:?} is not an integer")))
    }

    fn int32(&mut self, el: &El, empty: bool) -> Result<Option<i32>> {
        match self.int(el, empty)? {
            None => Ok(None),
            Some(v) => i32::try_from(v)
                .map(Some)
                .map_err(|_| self.invalid(&el.local, format!("{v} is out of range"))),
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
            return Err(Error::Invalid {
                element: path,
                reason: format!("only {item} elements are expected"),
            });
        }
        Ok(items)
    }
}

fn attributes(el: &El) -> Vec<Attribute> {
    el.attrs
        .iter()
        .filter(|a| a.qname != "xmlns" && !a.qname.starts_with("xmlns:"))
        .map(|a| Attribute {
            name: a.qname.clone(),
            namespace: a.ns.clone(),
            value: a.value.clone(),
        })
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
