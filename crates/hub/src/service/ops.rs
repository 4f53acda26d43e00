//! The operator service.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};
use truc_core::AgencyCode;
use truc_proto::v1::ops_server::Ops;
use truc_proto::v1::{
    AddAgencyRequest, Agency, DeadLetter, DocumentHeader, ListAgenciesRequest, ListAgenciesResponse,
    ListDeadLettersRequest, ListDeadLettersResponse, Receipt,
};
use truc_store::AgencyInfo;

use crate::{auth, status, Shared};

pub(crate) struct OpsService(pub(crate) Arc<Shared>);

fn agency(a: AgencyInfo) -> Agency {
    Agency {
        code: a.code,
        name: a.name,
        state: a.state,
        registered_at_unix_ms: a.registered_at_unix_ms,
        queued: a.queued,
    }
}

#[tonic::async_trait]
impl Ops for OpsService {
    async fn add_agency(&self, req: Request<AddAgencyRequest>) -> Result<Response<Agency>, Status> {
        let op = auth::operator(&req)?;
        let r = req.into_inner();
        let code = AgencyCode::parse(&r.code).map_err(status::from_core)?;
        let name = r.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 256 {
            return Err(Status::invalid_argument("name must have 1..=256 characters"));
        }
        let info = self
            .0
            .store
            .put_agency(code, name, op.uri())
            .await
            .map_err(status::from_store)?;
        tracing::info!(operator = %op, code = %info.code, "agency registered");
        Ok(Response::new(agency(info)))
    }

    async fn list_agencies(&self, req: Request<ListAgenciesRequest>) -> Result<Response<ListAgenciesResponse>, Status> {
        auth::operator(&req)?;
        let agencies = self.0.store.agencies().into_iter().map(agency).collect();
        Ok(Response::new(ListAgenciesResponse { agencies }))
    }

    async fn list_dead_letters(
        &self,
        req: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        auth::operator(&req)?;
        let code = AgencyCode::parse(&req.into_inner().agency).map_err(status::from_core)?;
        let items = self.0.store.dead_letters(code).await.map_err(status::from_store)?;
        let dead_letters = items
            .into_iter()
            .map(|i| {
                // A dead status notice names its document through its receipt.
                let h = match (&i.document, &i.status) {
                    (Some(d), _) => DocumentHeader::decode(d.header.as_slice()).unwrap_or_default(),
                    (None, Some(s)) => {
                        let r = Receipt::decode(s.receipt.as_slice()).unwrap_or_default();
                        DocumentHeader {
                            from: r.from,
                            document_id: r.document_id,
                            ..Default::default()
                        }
                    }
                    (None, None) => DocumentHeader::default(),
                };
                DeadLetter {
                    delivery_id: i.delivery_id,
                    hub_document_id: i.hub_document_id,
                    from: h.from,
                    document_id: h.document_id,
                    attempts: i.attempts,
                }
            })
            .collect();
        Ok(Response::new(ListDeadLettersResponse { dead_letters }))
    }
}
