//! The writer: [`Package`] → edXML text, attachment bytes base64-encoded from a source.

use std::collections::HashMap;
use std::io::Write;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::attach::AttachmentSource;
use crate::error::{Error, Result};
use crate::model::*;
use crate::NAMESPACE;

/// Writes `package` as edXML to `out`, returning `out`.
///
/// The root is `<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">`; with
/// [`PrefixStyle::Prefixed`] the envelope binds `edXML:` to the same namespace and its
/// elements carry the prefix, as the VPCP sample does. Element order follows the VPCP
/// sample. Unmodelled elements ([`Extras`]) are written back as they were read, after the
/// modelled sibling they followed. Attachment bytes are read from `source` and
/// base64-encoded chunk by chunk (one line, no breaks), never held whole. The recorded
/// size and SHA-256 of [`Attachment`] are not used.
pub fn write<W: Write>(package: &Package, out: W, source: &mut dyn AttachmentSource) -> Result<W> {
    let mut o = Out {
        w: quick_xml::Writer::new(out),
        prefix: "",
        depth: 0,
        bodies: Bodies::Source(source),
    };
    o.package(package)?;
    Ok(o.w.into_inner())
}

/// Writes the canonical form [`crate::same_content`] compares: default-namespace style,
/// attachment bodies replaced by their size and SHA-256.
pub(crate) fn canonical(package: &Package) -> Result<Vec<u8>> {
    let mut p = package.clone();
    p.style = PrefixStyle::Default;
    let mut o = Out {
        w: quick_xml::Writer::new(Vec::new()),
        prefix: "",
        depth: 0,
        bodies: Bodies::Digests,
    };
    o.package(&p)?;
    Ok(o.w.into_inner())
}

enum Bodies<'s> {
    Source(&'s mut dyn AttachmentSource),
    Digests,
}

struct Out<'s, W: Write> {
    w: quick_xml::Writer<W>,
    prefix: &'static str,
    depth: usize,
    bodies: Bodies<'s>,
}

/// Places the unmodelled children of one element after the sibling they followed.
struct Placer<'e> {
    extras: &'e [Unmodelled],
    done: Vec<bool>,
    counts: HashMap<String, usize>,
}

impl<'e> Placer<'e> {
    fn new(extras: &'e Extras) -> Self {
        Placer {
            extras: &extras.0,
            done: vec![false; extras.0.len()],
            counts: HashMap::new(),
        }
    }
}

fn io(element: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        element: element.to_owned(),
        source,
    }
}

impl<W: Write> Out<'_, W> {
    fn newline(&mut self) -> Result<()> {
        let mut s = String::from("\n");
        s.push_str(&"  ".repeat(self.depth));
        self.w.get_mut().write_all(s.as_bytes()).map_err(io("(output)"))
    }

    fn place(&mut self, pl: &mut Placer<'_>, after: Option<&str>) -> Result<()> {
        let anchor = after.map(|name| {
            let c = pl.counts.entry(name.to_owned()).or_default();
            *c += 1;
            Anchor {
                element: name.to_owned(),
                occurrence: *c,
            }
        });
        for i in 0..pl.extras.len() {
            if !pl.done[i] && pl.extras[i].after == anchor {
                pl.done[i] = true;
                self.raw(&pl.extras[i].xml)?;
            }
        }
        Ok(())
    }

    fn place_rest(&mut self, pl: &mut Placer<'_>) -> Result<()> {
        for i in 0..pl.extras.len() {
            if !pl.done[i] {
                pl.done[i] = true;
                self.raw(&pl.extras[i].xml)?;
            }
        }
        Ok(())
    }

    fn raw(&mut self, xml: &str) -> Result<()> {
        self.newline()?;
        self.w
            .get_mut()
            .write_all(xml.as_bytes())
            .map_err(io("(unmodelled element)"))
    }

    fn start(&mut self, name: &str, attrs: &[Attribute], extra: &[(&str, &str)]) -> Result<()> {
        self.newline()?;
        let qname = format!("{}{name}", self.prefix);
        let mut s = BytesStart::new(qname.as_str());
        for (k, v) in extra {
            s.push_attribute((*k, *v));
        }
        let mut bound: Vec<String> = Vec::new();
        for a in attrs {
            if let (Some((p, _)), Some(ns)) = (a.name.split_once(':'), &a.namespace) {
                if p != "xml" && !bound.iter().any(|b| b == p) {
                    s.push_attribute((format!("xmlns:{p}").as_str(), ns.as_str()));
                    bound.push(p.to_owned());
                }
            }
            s.push_attribute((a.name.as_str(), a.value.as_str()));
        }
        self.w.write_event(Event::Start(s)).map_err(io(name))?;
        self.depth += 1;
        Ok(())
    }

    fn end(&mut self, name: &str) -> Result<()> {
        self.depth -= 1;
        self.newline()?;
        let qname = format!("{}{name}", self.prefix);
        self.w.write_event(Event::End(BytesEnd::new(qname))).map_err(io(name))
    }

    /// A modelled element with children, then the extras placed after it.
    fn node<F>(&mut self, pl: &mut Placer<'_>, name: &str, attrs: &[Attribute], extras: &Extras, body: F) -> Result<()>
    where
        F: FnOnce(&mut Self, &mut Placer<'_>) -> Result<()>,
    {
        self.start(name, attrs, &[])?;
        let mut inner = Placer::new(extras);
        self.place(&mut inner, None)?;
        body(self, &mut inner)?;
        self.place_rest(&mut inner)?;
        self.end(name)?;
        self.place(pl, Some(name))
    }

    fn leaf(&mut self, pl: &mut Placer<'_>, name: &str, value: Option<&str>) -> Result<()> {
        let Some(value) = value else { return Ok(()) };
        self.newline()?;
        let qname = format!("{}{name}", self.prefix);
        let e = io(name);
        self.w
            .write_event(Event::Start(BytesStart::new(qname.as_str())))
            .map_err(&e)?;
        if !value.is_empty() {
            self.w.write_event(Event::Text(BytesText::new(value))).map_err(&e)?;
        }
        self.w
            .write_event(Event::End(BytesEnd::new(qname.as_str())))
            .map_err(&e)?;
        self.place(pl, Some(name))
    }

    fn leaf_show<T: std::fmt::Display>(&mut self, pl: &mut Placer<'_>, name: &str, value: Option<&T>) -> Result<()> {
        self.leaf(pl, name, value.map(ToString::to_string).as_deref())
    }

    fn package(&mut self, p: &Package) -> Result<()> {
        self.w
            .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
            .map_err(io("(declaration)"))?;
        self.start("edXML", &p.root_attributes, &[("xmlns", NAMESPACE)])?;
        let mut rp = Placer::new(&p.root_extras);
        self.place(&mut rp, None)?;

        let prefixed = p.style == PrefixStyle::Prefixed;
        if prefixed {
            self.prefix = "edXML:";
        }
        let env_decl: &[(&str, &str)] = if prefixed { &[("xmlns:edXML", NAMESPACE)] } else { &[] };
        self.start("edXMLEnvelope", &[], env_decl)?;
        let mut ep = Placer::new(&p.envelope_extras);
        self.place(&mut ep, None)?;
        self.node(&mut ep, "edXMLHeader", &[], &p.header_extras, |o, hp| {
            match &p.message {
                Message::Document(h) => o.message_header(hp, h)?,
                Message::Status(s) => o.status_header(hp, s)?,
            }
            if let Some(t) = &p.trace {
                o.trace(hp, t)?;
            }
            Ok(())
        })?;
        if p.manifest.is_some() || !p.body_extras.is_empty() {
            self.node(&mut ep, "edXMLBody", &[], &p.body_extras, |o, bp| match &p.manifest {
                Some(m) => o.manifest(bp, m),
                None => Ok(()),
            })?;
        }
        self.place_rest(&mut ep)?;
        self.end("edXMLEnvelope")?;
        self.prefix = "";
        self.place(&mut rp, Some("edXMLEnvelope"))?;

        if !p.attachments.is_empty() || !p.attachments_extras.is_empty() {
            self.node(&mut rp, "AttachmentEncoded", &[], &p.attachments_extras, |o, ap| {
                for (i, a) in p.attachments.iter().enumerate() {
                    o.attachment(ap, i, a)?;
                }
                Ok(())
            })?;
        }
        self.place_rest(&mut rp)?;
        self.end("edXML")?;
        self.w.get_mut().write_all(b"\n").map_err(io("(output)"))
    }

    fn organization(&mut self, pl: &mut Placer<'_>, name: &str, o: &Organization) -> Result<()> {
        self.node(pl, name, &[], &o.extras, |w, p| {
            w.leaf(p, "OrganId", Some(&o.organ_id))?;
            w.leaf(p, "OrganizationInCharge", o.organization_in_charge.as_deref())?;
            w.leaf(p, "OrganName", o.organ_name.as_deref())?;
            w.leaf(p, "OrganAdd", o.organ_add.as_deref())?;
            w.leaf(p, "Email", o.email.as_deref())?;
            w.leaf(p, "Telephone", o.telephone.as_deref())?;
            w.leaf(p, "Fax", o.fax.as_deref())?;
            w.leaf(p, "Website", o.website.as_deref())
        })
    }

    fn list(&mut self, pl: &mut Placer<'_>, name: &str, item: &str, items: Option<&Vec<String>>) -> Result<()> {
        let Some(items) = items else { return Ok(()) };
        self.node(pl, name, &[], &Extras::default(), |w, p| {
            for i in items {
                w.leaf(p, item, Some(i))?;
            }
            Ok(())
        })
    }

    fn response_for(&mut self, pl: &mut Placer<'_>, r: &ResponseFor) -> Result<()> {
        self.node(pl, "ResponseFor", &[], &r.extras, |w, p| {
            w.leaf(p, "OrganId", r.organ_id.as_deref())?;
            w.leaf(p, "Code", r.code.as_deref())?;
            w.leaf_show(p, "PromulgationDate", r.promulgation_date.as_ref())?;
            w.leaf(p, "DocumentId", r.document_id.as_deref())
        })
    }

    fn staff(&mut self, pl: &mut Placer<'_>, s: &StaffInfo) -> Result<()> {
        self.node(pl, "StaffInfo", &[], &s.extras, |w, p| {
            w.leaf(p, "Department", s.department.as_deref())?;
            w.leaf(p, "DepartmentId", s.department_id.as_deref())?;
            w.leaf(p, "Staff", s.staff.as_deref())?;
            w.leaf(p, "StaffId", s.staff_id.as_deref())?;
            w.leaf(p, "Email", s.email.as_deref())?;
            w.leaf(p, "Mobile", s.mobile.as_deref())
        })
    }

    fn message_header(&mut self, pl: &mut Placer<'_>, h: &MessageHeader) -> Result<()> {
        self.node(pl, "MessageHeader", &[], &h.extras, |w, p| {
            w.organization(p, "From", &h.from)?;
            for to in &h.to {
                w.organization(p, "To", to)?;
            }
            w.leaf(p, "DocumentId", Some(&h.document_id))?;
            if let Some(c) = &h.code {
                w.node(p, "Code", &[], &c.extras, |w, p| {
                    w.leaf(p, "CodeNumber", c.number.as_deref())?;
                    w.leaf(p, "CodeNotation", c.notation.as_deref())
                })?;
            }
            if let Some(i) = &h.promulgation {
                w.node(p, "PromulgationInfo", &[], &i.extras, |w, p| {
                    w.leaf(p, "Place", i.place.as_deref())?;
                    w.leaf_show(p, "PromulgationDate", i.date.as_ref())
                })?;
            }
            if let Some(t) = &h.document_type {
                w.node(p, "DocumentType", &[], &t.extras, |w, p| {
                    w.leaf_show(p, "Type", t.kind.as_ref())?;
                    w.leaf_show(p, "TypeDetail", t.detail.as_ref())?;
                    w.leaf(p, "TypeName", t.name.as_deref())
                })?;
            }
            w.leaf(p, "Subject", h.subject.as_deref())?;
            w.leaf(p, "Content", h.content.as_deref())?;
            if let Some(s) = &h.signer {
                w.node(p, "SignerInfo", &[], &s.extras, |w, p| {
                    w.leaf(p, "Competence", s.competence.as_deref())?;
                    w.leaf(p, "Position", s.position.as_deref())?;
                    w.leaf(p, "FullName", s.full_name.as_deref())
                })?;
            }
            w.leaf_show(p, "DueDate", h.due_date.as_ref())?;
            w.list(p, "ToPlaces", "Place", h.to_places.as_ref())?;
            if let Some(o) = &h.other_info {
                w.node(p, "OtherInfo", &[], &o.extras, |w, p| {
                    w.leaf_show(p, "Priority", o.priority.as_ref())?;
                    w.leaf(p, "SphereOfPromulgation", o.sphere_of_promulgation.as_deref())?;
                    w.leaf(p, "TyperNotation", o.typer_notation.as_deref())?;
                    w.leaf_show(p, "PromulgationAmount", o.promulgation_amount.as_ref())?;
                    w.leaf_show(p, "PageAmount", o.page_amount.as_ref())?;
                    w.list(p, "Appendixes", "Appendix", o.appendixes.as_ref())
                })?;
            }
            for r in &h.response_for {
                w.response_for(p, r)?;
            }
            w.leaf_show(p, "SteeringType", h.steering_type.as_ref())
        })
    }

    fn status_header(&mut self, pl: &mut Placer<'_>, s: &StatusHeader) -> Result<()> {
        self.node(pl, "MessageHeader", &[], &s.extras, |w, p| {
            w.organization(p, "From", &s.from)?;
            w.response_for(p, &s.response_for)?;
            if let Some(staff) = &s.staff {
                w.staff(p, staff)?;
            }
            w.leaf(p, "StatusCode", Some(s.status.code()))?;
            w.leaf(p, "Description", s.description.as_deref())?;
            w.leaf_show(p, "Timestamp", s.timestamp.as_ref())
        })
    }

    fn trace(&mut self, pl: &mut Placer<'_>, t: &TraceHeaderList) -> Result<()> {
        self.node(pl, "TraceHeaderList", &t.attributes, &t.extras, |w, p| {
            for th in &t.traces {
                w.node(p, "TraceHeader", &[], &th.extras, |w, p| {
                    w.leaf(p, "OrganId", th.organ_id.as_deref())?;
                    w.leaf_show(p, "Timestamp", th.timestamp.as_ref())
                })?;
            }
            if let Some(b) = &t.business {
                w.business(p, b)?;
            }
            Ok(())
        })
    }

    fn business(&mut self, pl: &mut Placer<'_>, b: &Business) -> Result<()> {
        self.node(pl, "Bussiness", &[], &b.extras, |w, p| {
            w.leaf(p, "DocumentId", b.document_id.as_deref())?;
            w.leaf_show(p, "BussinessDocType", b.doc_type.map(BusinessDocType::code).as_ref())?;
            w.leaf(p, "BussinessDocReason", b.reason.as_deref())?;
            w.leaf_show(p, "Paper", b.paper.as_ref())?;
            if let Some(info) = &b.document_info {
                w.node(p, "BussinessDocumentInfo", &[], &info.extras, |w, p| {
                    w.leaf(p, "DocumentInfo", info.document_info.as_deref())?;
                    w.leaf(p, "DocumentReceiver", info.document_receiver.as_deref())?;
                    if let Some(list) = &info.receivers {
                        w.node(p, "ReceiverList", &[], &Extras::default(), |w, p| {
                            for r in list {
                                w.node(p, "Receiver", &[], &r.extras, |w, p| {
                                    w.leaf(p, "OrganId", r.organ_id.as_deref())?;
                                    w.leaf_show(p, "ReceiverType", r.receiver_type.map(|t| t as i32).as_ref())
                                })?;
                            }
                            Ok(())
                        })?;
                    }
                    Ok(())
                })?;
            }
            if let Some(list) = &b.replacements {
                w.node(p, "ReplacementInfoList", &[], &Extras::default(), |w, p| {
                    for r in list {
                        w.node(p, "ReplacementInfo", &[], &r.extras, |w, p| {
                            w.leaf(p, "DocumentId", r.document_id.as_deref())?;
                            w.list(p, "OrganIdList", "OrganId", Some(&r.organ_ids))
                        })?;
                    }
                    Ok(())
                })?;
            }
            if let Some(s) = &b.staff {
                w.staff(p, s)?;
            }
            Ok(())
        })
    }

    fn manifest(&mut self, pl: &mut Placer<'_>, m: &Manifest) -> Result<()> {
        self.node(pl, "edXMLManifest", &m.attributes, &m.extras, |w, p| {
            for r in &m.references {
                w.node(p, "Reference", &r.attributes, &r.extras, |w, p| {
                    w.leaf(p, "ContentId", r.content_id.as_deref())?;
                    w.leaf(p, "ContentType", r.content_type.as_deref())?;
                    w.leaf(p, "Description", r.description.as_deref())?;
                    w.leaf(p, "AttachmentName", r.attachment_name.as_deref())
                })?;
            }
            Ok(())
        })
    }

    fn attachment(&mut self, pl: &mut Placer<'_>, index: usize, a: &Attachment) -> Result<()> {
        self.node(pl, "Attachment", &[], &a.extras, |w, p| {
            w.leaf(p, "ContentId", a.content_id.as_deref())?;
            w.leaf(p, "AttachmentName", a.name.as_deref())?;
            w.leaf(p, "Description", a.description.as_deref())?;
            w.leaf(p, "ContentType", a.content_type.as_deref())?;
            w.newline()?;
            let element = format!(
                "edXML/AttachmentEncoded/Attachment[{}]/ContentTransferEncoded",
                index + 1
            );
            let e = |source| Error::Io {
                element: element.clone(),
                source,
            };
            let out = w.w.get_mut();
            out.write_all(b"<ContentTransferEncoded>").map_err(e)?;
            match &mut w.bodies {
                Bodies::Source(src) => {
                    let mut reader = src.open(index, a).map_err(|source| Error::Attachment {
                        element: element.clone(),
                        index,
                        action: "reading from the source",
                        source,
                    })?;
                    crate::b64::encode(&mut reader, out).map_err(|r| match r {
                        Ok(source) => Error::Attachment {
                            element: element.clone(),
                            index,
                            action: "reading from the source",
                            source,
                        },
                        Err(source) => Error::Io {
                            element: element.clone(),
                            source,
                        },
                    })?;
                }
                Bodies::Digests => {
                    let hex: String = a.sha256.iter().map(|b| format!("{b:02x}")).collect();
                    write!(out, "{} bytes, sha256 {hex}", a.size).map_err(e)?;
                }
            }
            out.write_all(b"</ContentTransferEncoded>").map_err(e)?;
            w.place(p, Some("ContentTransferEncoded"))
        })
    }
}
