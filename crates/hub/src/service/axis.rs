//! The agency-facing service: Send, Receive, Ack.

use std::sync::Arc;

use rustls_pki_types::UnixTime;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use truc_core::AgencyCode;
use truc_proto::v1::axis_server::Axis;
use truc_proto::v1::{
    AckRequest, AckResponse, Delivery, ReceiveRequest, RecipientTrack, ReportStatusRequest, ReportStatusResponse,
    SendRequest, SendResponse, StatusCode, TrackRequest, TrackResponse, TransportState,
};
use truc_store::{NewDocument, StatusReport};

use crate::{auth, status, Shared};

/// Most delivery ids in one Ack.
const MAX_ACK_IDS: usize = 1024;

pub(crate) struct AxisService(pub(crate) Arc<Shared>);

#[tonic::async_trait]
impl Axis for AxisService {
    async fn send(&self, req: Request<SendRequest>) -> Result<Response<SendResponse>, Status> {
        let (principal, caller) = auth::agency(&req)?;
        let doc = req
            .into_inner()
            .document
            .ok_or_else(|| Status::invalid_argument("document is missing"))?;
        let limit = self.0.config.limits.max_inline_payload;
        if doc.payload.len() as u64 > limit {
            return Err(Status::resource_exhausted(format!(
                "payload is {} bytes; this hub accepts at most {limit} bytes inline",
                doc.payload.len()
            )));
        }
        // The document limit holds inline too (it may be set below the inline one).
        crate::service::upload::check_size(&self.0, doc.payload.len() as u64)?;
        // Signature and chain checks cost CPU: keep them off the reactor.
        let trust = self.0.signing_trust();
        let max_ahead_ms = self.0.max_signed_at_ahead_ms();
        let work = doc.payload.len() as u64;
        let (doc, checked) = self
            .0
            .on_cpu(work, move || {
                let r = truc_core::document::verify_document(&doc, Some(&caller), &trust, UnixTime::now(), true)
                    .and_then(|c| {
                        truc_core::document::check_signed_at(&c.header, truc_core::now_unix_ms(), max_ahead_ms)?;
                        Ok(c)
                    });
                (doc, r)
            })
            .await
            .ok_or_else(|| Status::unavailable("the hub is shutting down"))?;
        let checked = checked.map_err(status::from_core)?;
        let size = doc.payload.len() as u64;
        accept(&self.0, principal, checked, doc, false, size).await
    }

    type ReceiveStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<Delivery, Status>> + Send>>;

    async fn receive(&self, req: Request<ReceiveRequest>) -> Result<Response<Self::ReceiveStream>, Status> {
        let (_, agency) = auth::agency(&req)?;
        let chain = auth::chain(&req);
        let r = req.into_inner();
        let credit = match r.max_in_flight {
            0 => self.0.config.delivery.default_in_flight,
            n @ 1..=1024 => n,
            n => {
                return Err(Status::invalid_argument(format!(
                    "max_in_flight {n} is not in 1..=1024"
                )))
            }
        };
        let rx = self.0.engine.stream(agency.clone(), credit as usize, r.follow, chain);
        // Each document copy handed out is timed from acceptance to its ack.
        let metrics = self.0.metrics.clone();
        let rx = tokio_stream::StreamExt::map(ReceiverStream::new(rx), move |d| {
            if let Ok(d) = &d {
                if d.document.is_some() {
                    metrics.delivered(agency.as_str(), d.delivery_id, d.accepted_at_unix_ms);
                }
            }
            d
        });
        Ok(Response::new(Box::pin(rx)))
    }

    async fn ack(&self, req: Request<AckRequest>) -> Result<Response<AckResponse>, Status> {
        let (principal, agency) = auth::agency(&req)?;
        let ids = req.into_inner().delivery_ids;
        if ids.is_empty() {
            return Ok(Response::new(AckResponse { acknowledged: 0 }));
        }
        if ids.len() > MAX_ACK_IDS {
            return Err(Status::invalid_argument(format!(
                "{} delivery ids; at most {MAX_ACK_IDS} per Ack",
                ids.len()
            )));
        }
        let n = self
            .0
            .store
            .ack(agency.clone(), ids.clone(), principal.uri())
            .await
            .map_err(status::from_store)?;
        self.0.metrics.acked(agency.as_str(), &ids, n);
        Ok(Response::new(AckResponse { acknowledged: n }))
    }

    async fn upload(
        &self,
        req: Request<tonic::Streaming<truc_proto::v1::UploadRequest>>,
    ) -> Result<Response<SendResponse>, Status> {
        super::upload::upload(&self.0, req).await
    }

    async fn upload_status(
        &self,
        req: Request<truc_proto::v1::UploadStatusRequest>,
    ) -> Result<Response<truc_proto::v1::UploadStatusResponse>, Status> {
        super::upload::upload_status(&self.0, req).await
    }

    type DownloadStream = ReceiverStream<Result<truc_proto::v1::DownloadChunk, Status>>;

    async fn download(
        &self,
        req: Request<truc_proto::v1::DownloadRequest>,
    ) -> Result<Response<Self::DownloadStream>, Status> {
        super::download::download(&self.0, req).await
    }

    async fn report_status(&self, req: Request<ReportStatusRequest>) -> Result<Response<ReportStatusResponse>, Status> {
        let (principal, reporter) = auth::agency(&req)?;
        let r = req.into_inner();
        // Which codes exist and who may send them when: one table
        // (truc_core::status_rules), applied by the store.
        if truc_core::status_rules::rule(r.code).is_none() {
            return Err(Status::invalid_argument(format!(
                "status code {} is not one of 1-6, 13, 15, 16",
                r.code
            )));
        }
        let code = StatusCode::try_from(r.code).unwrap_or(StatusCode::Unspecified);
        if code == StatusCode::Refused && r.description.trim().is_empty() {
            return Err(Status::invalid_argument(
                "status 02 (refused) needs a reason in description",
            ));
        }
        if r.description.chars().count() > MAX_DESCRIPTION {
            return Err(Status::invalid_argument(format!(
                "description is longer than {MAX_DESCRIPTION} characters"
            )));
        }
        let document_from = AgencyCode::parse(&r.document_from).map_err(status::from_core)?;
        let outcome = self
            .0
            .store
            .report_status(StatusReport {
                reporter,
                actor: principal.clone(),
                document_from,
                document_id: r.document_id,
                code,
                description: r.description,
                staff: r.staff,
            })
            .await
            .map_err(status::from_store)?;
        tracing::info!(reporter = %principal, code = r.code, "status reported");
        Ok(Response::new(ReportStatusResponse {
            receipt: Some(outcome.receipt),
        }))
    }

    async fn get_inbox_state(
        &self,
        req: Request<truc_proto::v1::GetInboxStateRequest>,
    ) -> Result<Response<truc_proto::v1::InboxState>, Status> {
        let (_, agency) = auth::agency(&req)?;
        let waiting = self.0.store.agency(&agency).map_or(0, |a| a.queued);
        let (leased, first) = self.0.engine.lease_summary(&agency);
        let next_lease_end_unix_ms = first.map_or(0, |t| {
            let left = t.saturating_duration_since(tokio::time::Instant::now());
            truc_core::now_unix_ms() + left.as_millis() as i64
        });
        Ok(Response::new(truc_proto::v1::InboxState {
            waiting,
            leased,
            next_lease_end_unix_ms,
        }))
    }

    async fn lookup_agencies(
        &self,
        req: Request<truc_proto::v1::LookupAgenciesRequest>,
    ) -> Result<Response<truc_proto::v1::LookupAgenciesResponse>, Status> {
        auth::agency(&req)?;
        let codes = req.into_inner().codes;
        if codes.len() > truc_core::document::MAX_RECIPIENTS {
            return Err(Status::invalid_argument(format!(
                "{} codes; at most {} per lookup",
                codes.len(),
                truc_core::document::MAX_RECIPIENTS
            )));
        }
        let mut agencies = Vec::with_capacity(codes.len());
        for c in &codes {
            let code = AgencyCode::parse(c).map_err(status::from_core)?;
            let local = self.0.store.agency(&code);
            // Another hub's agency, from the federated directory.
            let remote = match &local {
                None if !self.0.federation.peers.is_empty() => self
                    .0
                    .store
                    .remote_agency(code.clone())
                    .await
                    .map_err(status::from_store)?,
                _ => None,
            };
            agencies.push(match (local, remote) {
                (Some(a), _) => truc_proto::v1::AgencyEntry {
                    code: a.code,
                    registered: true,
                    state: a.state.to_string(),
                    name: a.name,
                    successor: a.successor,
                    hub_id: String::new(),
                },
                (None, Some(r)) => truc_proto::v1::AgencyEntry {
                    code: r.code,
                    registered: true,
                    state: r.state.to_string(),
                    name: r.name,
                    successor: r.successor,
                    hub_id: r.hub,
                },
                (None, None) => truc_proto::v1::AgencyEntry {
                    code: code.to_string(),
                    ..Default::default()
                },
            });
        }
        Ok(Response::new(truc_proto::v1::LookupAgenciesResponse { agencies }))
    }

    async fn get_hub_info(
        &self,
        req: Request<truc_proto::v1::GetHubInfoRequest>,
    ) -> Result<Response<truc_proto::v1::HubInfo>, Status> {
        auth::caller(&req)?;
        let name = match crate::hub_principal(&self.0) {
            Some(truc_core::Principal::Hub(name)) => name,
            _ => String::new(),
        };
        Ok(Response::new(truc_proto::v1::HubInfo {
            name,
            utc_offset_minutes: self.0.calendar.utc_offset_minutes(),
            max_document_size: self.0.config.limits.max_document_size,
        }))
    }

    async fn track(&self, req: Request<TrackRequest>) -> Result<Response<TrackResponse>, Status> {
        let (_, caller) = auth::agency(&req)?;
        let id = req.into_inner().document_id;
        let mut t = self
            .0
            .store
            .track(caller.clone(), id.clone())
            .await
            .map_err(status::from_store)?
            .ok_or_else(|| Status::not_found(format!("{caller} sent no document {id:?}")))?;
        let now = self.0.config.clock.now_unix_ms();
        for r in &mut t.recipients {
            r.overdue = overdue(r, now);
            r.past_due = r.past_due && t.due_date_unix_ms > 0 && now > t.due_date_unix_ms;
        }
        Ok(Response::new(t))
    }
}

/// Most characters in a status description.
const MAX_DESCRIPTION: usize = 2000;

/// A deadline passed: not delivered in time, or receipt not confirmed (02
/// or 03 and later) by the copy's confirmation deadline (the working-day
/// calendar's, `truc_core::calendar`).
pub(crate) fn overdue(r: &RecipientTrack, now: i64) -> bool {
    let state = TransportState::try_from(r.state).unwrap_or(TransportState::Unspecified);
    if state == TransportState::Withdrawn {
        return false;
    }
    let undelivered = matches!(state, TransportState::Queued | TransportState::DeadLettered);
    let late_delivery = undelivered && r.delivery_deadline_unix_ms > 0 && now > r.delivery_deadline_unix_ms;
    let confirmed = (2..=6).contains(&r.status);
    let late_confirmation = !confirmed && r.confirm_deadline_unix_ms > 0 && now > r.confirm_deadline_unix_ms;
    late_delivery || late_confirmation
}

/// Store a verified document and answer with the acceptance (Send, and
/// Upload once its payload is on disk).
pub(crate) async fn accept(
    shared: &Shared,
    principal: truc_core::Principal,
    checked: truc_core::document::CheckedHeader,
    doc: truc_proto::v1::SignedDocument,
    payload_external: bool,
    payload_size: u64,
) -> Result<Response<SendResponse>, Status> {
    let remote = crate::forward::remote_recipients(shared, &checked.to);
    crate::forward::refuse_inactive(shared, &remote).await?;
    let hops = Hops {
        remote,
        ..Hops::default()
    };
    accept_with(shared, principal, checked, doc, payload_external, payload_size, hops).await
}

/// Federation's part of an acceptance.
#[derive(Debug, Default)]
pub(crate) struct Hops {
    /// The recipients this hub handles when they are not the header's
    /// (a forwarded document: those the previous hub asked for).
    pub(crate) to: Option<Vec<truc_core::AgencyCode>>,
    /// Recipients served by other hubs, with the next hop of each.
    pub(crate) remote: Vec<(truc_core::AgencyCode, truc_core::routing::HubId)>,
    /// The peer that forwarded the document, and the trace it came with.
    pub(crate) arrived_via: Option<truc_core::routing::HubId>,
    pub(crate) trace: Vec<truc_proto::v1::TraceHop>,
}

/// [`accept`] with the recipients and routes given.
pub(crate) async fn accept_with(
    shared: &Shared,
    principal: truc_core::Principal,
    checked: truc_core::document::CheckedHeader,
    doc: truc_proto::v1::SignedDocument,
    payload_external: bool,
    payload_size: u64,
    hops: Hops,
) -> Result<Response<SendResponse>, Status> {
    let delivery_deadline = shared
        .config
        .deadlines
        .delivery_deadline(checked.priority as i32, shared.config.clock.now_unix_ms());
    let h = checked.header;
    let warnings = header_warnings(&h);
    // `check_header` refused any other length.
    let payload_sha256: [u8; 32] = h
        .payload_sha256
        .as_slice()
        .try_into()
        .map_err(|_| Status::invalid_argument("payload_sha256 must be 32 bytes"))?;
    let to = hops.to.unwrap_or(checked.to);
    let redirects = redirects(shared, &to);
    let outcome = shared
        .store
        .send(NewDocument {
            from: checked.from,
            to,
            priority: checked.priority,
            header_sha256: checked.header_sha256,
            content_sha256: checked.content_sha256,
            document: doc,
            actor: principal.clone(),
            business_type: checked.business,
            due_date_unix_ms: h.due_date_unix_ms,
            reference_document_id: h.reference_document_id,
            business_reason: h.business_reason,
            // `check_header` parsed these codes.
            receiver_changes: h
                .receiver_changes
                .iter()
                .filter_map(|c| {
                    let added = c.receiver_type == truc_proto::v1::ReceiverType::Added as i32;
                    Some((truc_core::AgencyCode::parse(&c.organ_id).ok()?, added))
                })
                .collect(),
            replacements: h
                .replacements
                .iter()
                .map(|r| {
                    let organs = r
                        .organ_ids
                        .iter()
                        .filter_map(|c| truc_core::AgencyCode::parse(c).ok())
                        .collect();
                    (r.document_id.clone(), organs)
                })
                .collect(),
            subject: h.subject,
            document_id: h.document_id,
            delivery_deadline_unix_ms: delivery_deadline,
            payload_external,
            payload_size,
            payload_sha256,
            remote: hops.remote,
            arrived_via: hops.arrived_via,
            trace: hops.trace,
        })
        .await
        .map_err(status::from_store)?;
    tracing::debug!(
        from = %principal, hub_document_id = outcome.hub_document_id, notified = outcome.notify.len(),
        duplicate = outcome.duplicate, "accepted"
    );
    shared.metrics.sent(outcome.duplicate);
    Ok(Response::new(SendResponse {
        hub_document_id: outcome.hub_document_id,
        accepted_at_unix_ms: outcome.accepted_at_unix_ms,
        duplicate: outcome.duplicate,
        receipt: Some(outcome.receipt),
        redirects,
        warnings,
    }))
}

/// What the acceptance tells the sender about its header without refusing it
/// (SendResponse.warnings): the document id against the number, notation and
/// promulgation date, and impossible dates. The check is edXML's, the one
/// copy of it; only the field names are the header's.
fn header_warnings(h: &truc_proto::v1::DocumentHeader) -> Vec<String> {
    let code = (!h.code_number.is_empty() || !h.code_notation.is_empty())
        .then(|| format!("{}/{}", h.code_number, h.code_notation));
    let promulgated = (!h.promulgation_date.is_empty()).then(|| truc_edxml::EdDate::parse(&h.promulgation_date));
    truc_edxml::document_id_warnings(&h.document_id, &h.from, code.as_deref(), promulgated.as_ref())
        .into_iter()
        .map(|w| {
            let field = match w.element.as_str() {
                "PromulgationDate" => "promulgation_date",
                _ => "document_id",
            };
            format!("{field}: {}", w.reason)
        })
        .collect()
}

/// The recipients retired with a successor, and where their copies go (the
/// directory in memory; the store follows the same successors).
fn redirects(shared: &Shared, to: &[truc_core::AgencyCode]) -> Vec<truc_proto::v1::Redirect> {
    to.iter()
        .filter_map(|addressed| {
            let mut current = addressed.clone();
            for _ in 0..8 {
                let a = shared.store.agency(&current)?;
                if a.state != truc_proto::v1::AgencyState::Retired || a.successor.is_empty() {
                    break;
                }
                current = truc_core::AgencyCode::parse(&a.successor).ok()?;
            }
            (current != *addressed).then(|| truc_proto::v1::Redirect {
                addressed: addressed.to_string(),
                delivered_to: current.to_string(),
            })
        })
        .collect()
}
