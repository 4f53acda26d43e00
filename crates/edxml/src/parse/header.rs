//! The MessageHeader, TraceHeaderList (with Bussiness) and manifest.

use std::io::BufRead;

use super::{attributes, El, Parser, RawHeader, HEADER_PATH};
use crate::error::{Error, Result};
use crate::model::*;

impl<R: BufRead> Parser<'_, R> {
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
            _ => {
                return Err(Error::Missing {
                    element: format!("{}/OrganId", self.child_path(&el.local)),
                })
            }
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

    pub(super) fn message_header(&mut self, el: &El, empty: bool) -> Result<RawHeader> {
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

    pub(super) fn trace_list(&mut self, el: &El, empty: bool) -> Result<TraceHeaderList> {
        let mut t = TraceHeaderList {
            attributes: attributes(el),
            ..Default::default()
        };
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
                            p.invalid(
                                &c.local,
                                format!("{v} is not a business type (0 new, 1 revoke, 2 update, 3 replace)"),
                            )
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

    pub(super) fn manifest(&mut self, el: &El, empty: bool) -> Result<Manifest> {
        let mut m = Manifest {
            attributes: attributes(el),
            ..Default::default()
        };
        m.extras = self.container(el, empty, |p, c, e| {
            if c.local != "Reference" {
                return Ok(false);
            }
            let mut r = Reference {
                attributes: attributes(c),
                ..Default::default()
            };
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
}
