//! The agency-facing service: Send, Receive, Ack.

use std::sync::Arc;

use rustls_pki_types::UnixTime;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use truc_proto::v1::axis_server::Axis;
use truc_proto::v1::{AckRequest, AckResponse, Delivery, ReceiveRequest, SendRequest, SendResponse};
use truc_store::NewDocument;

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
        // Signature and chain checks cost CPU: keep them off the reactor.
        let trust = self.0.signing_trust();
        let (doc, checked) = tokio::task::spawn_blocking(move || {
            let r = truc_core::document::verify_document(&doc, Some(&caller), &trust, UnixTime::now(), true);
            (doc, r)
        })
        .await
        .map_err(|_| Status::unavailable("the hub is shutting down"))?;
        let checked = checked.map_err(status::from_core)?;
        let to = checked.to.clone();
        let outcome = self
            .0
            .store
            .send(NewDocument {
                from: checked.from,
                document_id: checked.header.document_id,
                to: checked.to,
                priority: checked.priority as i32,
                header_sha256: checked.header_sha256,
                content_sha256: checked.content_sha256,
                document: doc,
                actor: principal.uri(),
            })
            .await
            .map_err(status::from_store)?;
        if !outcome.duplicate {
            self.0.engine.enqueued(&to);
        }
        tracing::info!(
            from = %principal, hub_document_id = outcome.hub_document_id, recipients = to.len(),
            duplicate = outcome.duplicate, "accepted"
        );
        Ok(Response::new(SendResponse {
            hub_document_id: outcome.hub_document_id,
            accepted_at_unix_ms: outcome.accepted_at_unix_ms,
            duplicate: outcome.duplicate,
            receipt: Some(outcome.receipt),
        }))
    }

    type ReceiveStream = ReceiverStream<Result<Delivery, Status>>;

    async fn receive(&self, req: Request<ReceiveRequest>) -> Result<Response<Self::ReceiveStream>, Status> {
        let (_, agency) = auth::agency(&req)?;
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
        let rx = self.0.engine.stream(agency, credit as usize, r.follow);
        Ok(Response::new(ReceiverStream::new(rx)))
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
        self.0.engine.acked(&agency, &ids);
        Ok(Response::new(AckResponse { acknowledged: n }))
    }
}
