//! The Peer service: what a peer hub may ask this hub. Only configured
//! peers reach it (`Trust::judge`, `auth::hub`).

use std::sync::Arc;

use rustls_pki_types::UnixTime;
use tonic::{Request, Response, Status};
use truc_core::routing::{HubId, Route};
use truc_core::AgencyCode;
use truc_proto::v1::peer_server::Peer;
use truc_proto::v1::{
    DirectoryAck, DirectoryView, ForwardRequest, ForwardResponse, PeerHelloRequest, PeerHelloResponse, ReportRequest,
    ReportResponse,
};

use super::axis::Hops;
use crate::federation::NoCheckpoint;
use crate::{auth, status, Shared};

pub(crate) struct PeerService(pub(crate) Arc<Shared>);

#[tonic::async_trait]
impl Peer for PeerService {
    async fn hello(&self, req: Request<PeerHelloRequest>) -> Result<Response<PeerHelloResponse>, Status> {
        let caller = auth::hub(&req)?;
        let f = &self.0.federation;
        let entry = f
            .peers
            .iter()
            .find(|p| p.id == caller.as_str())
            .ok_or_else(|| Status::permission_denied(format!("urn:truc:hub:{caller} is not a peer of this hub")))?;
        let checkpoint = match f.checkpoint(self.0.store.as_ref()).await {
            Ok(note) => note,
            Err(NoCheckpoint::EmptyLog | NoCheckpoint::NoHubId) => String::new(),
            Err(NoCheckpoint::Store) => return Err(Status::unavailable("the receipt log cannot be read now")),
        };
        tracing::info!(peer = %caller, "peer hello");
        Ok(Response::new(PeerHelloResponse {
            hub_id: f.own.as_ref().map(|h| h.to_string()).unwrap_or_default(),
            peer_id: caller.to_string(),
            serves: entry.serves.clone(),
            default_route: f.table.default_peer() == Some(&caller),
            max_hops: u32::try_from(f.max_hops).unwrap_or(u32::MAX),
            checkpoint,
        }))
    }

    async fn forward(&self, req: Request<ForwardRequest>) -> Result<Response<ForwardResponse>, Status> {
        let caller = auth::hub(&req)?;
        // The forwarding hub's W3C trace context, kept in this hub's log
        // lines for the document.
        let trace_id = req
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(truc_core::routing::trace_id_of)
            .map(str::to_string)
            .unwrap_or_default();
        let shared = &self.0;
        let f = &shared.federation;
        let own = f
            .own
            .clone()
            .ok_or_else(|| Status::failed_precondition("this hub's certificate names no urn:truc:hub:<id>"))?;
        let r = req.into_inner();
        let doc = r
            .document
            .ok_or_else(|| Status::invalid_argument("document is missing"))?;
        crate::service::upload::check_size(shared, doc.payload.len() as u64)?;
        // The hop rules first: they cost nothing.
        let ids: Vec<HubId> = r
            .trace
            .iter()
            .map(|h| HubId::parse(&h.hub_id))
            .collect::<Result<_, _>>()
            .map_err(|e| Status::invalid_argument(format!("trace: {e}")))?;
        truc_core::routing::check_arrival(&ids, &own, f.max_hops)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        // Then the signatures, off the reactor: every hop, then the
        // document against its origin hub's CA.
        let anchors = shared.trust.hub_anchors();
        let trace = r.trace;
        let caller_for_check = caller.clone();
        let work = doc.payload.len() as u64;
        let (doc, trace, checked) = shared
            .on_cpu(work, move || {
                let checked = check_forwarded(&doc, &trace, &caller_for_check, &anchors);
                (doc, trace, checked)
            })
            .await
            .ok_or_else(|| Status::unavailable("the hub is shutting down"))?;
        let (checked, origin) = checked?;
        if !f.originates(&origin, &checked.from) {
            return Err(Status::permission_denied(format!(
                "hub {origin} may not originate documents from {}: it does not serve that code here ([[peers]] or \
                 [[origins]] serves)",
                checked.from
            )));
        }
        // The forwarding peer must be on the way back to the sender.
        match f.table.route(&checked.from, false) {
            Route::Peer(p) if p == caller => {}
            _ => {
                return Err(Status::permission_denied(format!(
                    "urn:truc:hub:{caller} is not this hub's route to {}, so it may not forward its documents",
                    checked.from
                )))
            }
        }
        // The recipients asked for: each named by the header, each here or
        // routed onward (never back into the trace).
        let mut to: Vec<AgencyCode> = Vec::with_capacity(r.recipients.len());
        let mut remote = Vec::new();
        for code in &r.recipients {
            let code =
                AgencyCode::parse(code).map_err(|e| Status::invalid_argument(format!("recipients: {code:?}: {e}")))?;
            if !checked.to.contains(&code) {
                return Err(Status::invalid_argument(format!(
                    "recipient {code} is not in the document's header"
                )));
            }
            match f.table.route(&code, shared.store.agency(&code).is_some()) {
                Route::Local => {}
                Route::Peer(next) => {
                    truc_core::routing::check_forward(&ids, &own, &next, f.max_hops)
                        .map_err(|e| Status::failed_precondition(format!("recipient {code}: {e}")))?;
                    remote.push((code.clone(), next));
                }
                Route::Unroutable(why) => return Err(Status::failed_precondition(why.to_string())),
            }
            if !to.contains(&code) {
                to.push(code);
            }
        }
        if to.is_empty() {
            return Err(Status::invalid_argument("recipients is empty"));
        }
        let size = doc.payload.len() as u64;
        let hops = Hops {
            to: Some(to),
            remote,
            arrived_via: Some(caller.clone()),
            trace,
        };
        let sent = super::axis::accept_with(shared, caller.principal(), checked, doc, false, size, hops)
            .await?
            .into_inner();
        tracing::info!(
            peer = %caller, %trace_id, hub_document_id = sent.hub_document_id, duplicate = sent.duplicate,
            "accepted from peer"
        );
        Ok(Response::new(ForwardResponse {
            receipt: sent.receipt,
            duplicate: sent.duplicate,
        }))
    }

    async fn publish_directory(&self, req: Request<DirectoryView>) -> Result<Response<DirectoryAck>, Status> {
        let caller = auth::hub(&req)?;
        let view = req.into_inner().entries;
        let (kept, ignored) = crate::directory::admissible(&self.0, &caller, view);
        let changed = self
            .0
            .store
            .peer_directory(caller.clone(), kept)
            .await
            .map_err(status::from_store)?;
        if changed > 0 {
            tracing::info!(peer = %caller, changed, "directory updated");
        }
        Ok(Response::new(DirectoryAck {
            changed,
            ignored: ignored.len() as u32,
            ignored_examples: ignored.into_iter().take(5).collect(),
        }))
    }

    async fn report(&self, req: Request<ReportRequest>) -> Result<Response<ReportResponse>, Status> {
        let caller = auth::hub(&req)?;
        let receipt = req
            .into_inner()
            .receipt
            .ok_or_else(|| Status::invalid_argument("receipt is missing"))?;
        self.0
            .federation
            .check_peer_receipt(&caller, &receipt)
            .map_err(Status::invalid_argument)?;
        self.0
            .store
            .peer_report(caller, receipt)
            .await
            .map_err(status::from_store)?;
        Ok(Response::new(ReportResponse {}))
    }
}

/// The checks on a forwarded document that cost signatures: every trace
/// hop, then the document's own signature against the CA of the hub that
/// originated it (the trace's first hop). Returns the checked header and
/// that hub.
fn check_forwarded(
    doc: &truc_proto::v1::SignedDocument,
    trace: &[truc_proto::v1::TraceHop],
    caller: &HubId,
    anchors: &crate::trust::HubAnchors,
) -> Result<(truc_core::document::CheckedHeader, HubId), Status> {
    let now = UnixTime::now();
    let header = truc_core::document::check_header(&doc.header).map_err(status::from_core)?;
    let ids = truc_core::routing::verify_trace(trace, &header.header_sha256, caller, |h| anchors.get(h), now).map_err(
        |e| match e {
            truc_core::routing::TraceError::UnknownHub { .. } => Status::permission_denied(e.to_string()),
            e => Status::invalid_argument(e.to_string()),
        },
    )?;
    let origin = ids[0].clone();
    let trust = anchors
        .get(&origin)
        .ok_or_else(|| Status::permission_denied(format!("no trust anchor for the origin hub {origin}")))?;
    let checked = truc_core::document::verify_document(doc, None, trust, now, true).map_err(|e| {
        Status::invalid_argument(format!("the document does not verify against hub {origin}'s CA: {e}"))
    })?;
    Ok((checked, origin))
}
