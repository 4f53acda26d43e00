//! The audit service: signed tree heads, receipts with inclusion proofs,
//! consistency proofs. Auditors and operators see everything; an agency sees
//! its own documents and its own agency's receipts.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use truc_core::{AgencyCode, Principal};
use truc_proto::v1::audit_server::Audit;
use truc_proto::v1::{
    GetCheckpointsRequest, GetCheckpointsResponse, GetConsistencyProofRequest, GetConsistencyProofResponse,
    GetTreeHeadRequest, ListReceiptsRequest, ListReceiptsResponse, ListTreeHeadsRequest, ListTreeHeadsResponse,
    SignedTreeHead,
};
use truc_store::{ReceiptFilter, ReceiptQuery};

use crate::{auth, status, Shared};

/// Default and largest page of receipts (and of tree heads).
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

fn page_size(field: &str, n: u32) -> Result<usize, Status> {
    match n {
        0 => Ok(DEFAULT_PAGE as usize),
        n if n <= MAX_PAGE => Ok(n as usize),
        n => Err(Status::invalid_argument(format!("{field} {n} is more than {MAX_PAGE}"))),
    }
}

pub(crate) struct AuditService(pub(crate) Arc<Shared>);

/// `None` for those who may see everything; the agency otherwise.
fn scope<T>(req: &Request<T>) -> Result<Option<AgencyCode>, Status> {
    match auth::caller(req)? {
        Principal::Auditor(_) | Principal::Operator(_) => Ok(None),
        Principal::Agency(code) => Ok(Some(code)),
        p => Err(Status::permission_denied(format!("{p} may not query receipts"))),
    }
}

#[tonic::async_trait]
impl Audit for AuditService {
    async fn get_tree_head(&self, req: Request<GetTreeHeadRequest>) -> Result<Response<SignedTreeHead>, Status> {
        scope(&req)?;
        let size = req.into_inner().tree_size;
        match self.0.store.tree_head(size).await.map_err(status::from_store)? {
            Some(h) => Ok(Response::new(h)),
            None if size == 0 => Err(Status::failed_precondition("the receipt log is empty")),
            None => Err(Status::not_found(format!("no commit batch ended at tree size {size}"))),
        }
    }

    async fn list_receipts(&self, req: Request<ListReceiptsRequest>) -> Result<Response<ListReceiptsResponse>, Status> {
        let visible_to = scope(&req)?;
        let r = req.into_inner();
        let filter = match (r.document_id.is_empty(), r.agency.is_empty()) {
            (true, true) => ReceiptFilter::All,
            (false, true) => ReceiptFilter::Document {
                from: AgencyCode::parse(&r.document_from).map_err(status::from_core)?,
                document_id: r.document_id,
            },
            (true, false) => ReceiptFilter::Agency(AgencyCode::parse(&r.agency).map_err(status::from_core)?),
            (false, false) => return Err(Status::invalid_argument("give a document or an agency, not both")),
        };
        let page_size = page_size("page_size", r.page_size)?;
        // An agency the directory does not know, named by no receipt: a
        // mistyped code, not "nothing happened" (a removed or never
        // registered agency with receipts still lists them).
        let unknown_agency = match &filter {
            ReceiptFilter::Agency(a) if self.0.store.agency(a).is_none() && r.page_token == 0 => Some(a.clone()),
            _ => None,
        };
        let page = self
            .0
            .store
            .receipts(ReceiptQuery {
                filter,
                since_unix_ms: r.since_unix_ms,
                until_unix_ms: r.until_unix_ms,
                page_token: r.page_token,
                page_size,
                visible_to,
            })
            .await
            .map_err(status::from_store)?;
        if let Some(a) = unknown_agency {
            if page.receipts.is_empty() && r.since_unix_ms == 0 && r.until_unix_ms == 0 {
                return Err(Status::not_found(format!(
                    "agency {a} is not registered and no receipt names it"
                )));
            }
        }
        Ok(Response::new(ListReceiptsResponse {
            tree_head: Some(page.tree_head),
            receipts: page.receipts,
            next_page_token: page.next_page_token,
        }))
    }

    async fn list_tree_heads(
        &self,
        req: Request<ListTreeHeadsRequest>,
    ) -> Result<Response<ListTreeHeadsResponse>, Status> {
        scope(&req)?;
        let r = req.into_inner();
        let limit = page_size("limit", r.limit)?;
        let (tree_heads, next_from_size) = self
            .0
            .store
            .tree_heads(r.from_size, limit)
            .await
            .map_err(status::from_store)?;
        Ok(Response::new(ListTreeHeadsResponse {
            tree_heads,
            next_from_size,
        }))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<GetConsistencyProofResponse>, Status> {
        scope(&req)?;
        let r = req.into_inner();
        let proof = self
            .0
            .store
            .consistency_proof(r.old_size, r.new_size)
            .await
            .map_err(status::from_store)?;
        Ok(Response::new(GetConsistencyProofResponse {
            proof: proof.into_iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn get_checkpoints(
        &self,
        req: Request<GetCheckpointsRequest>,
    ) -> Result<Response<GetCheckpointsResponse>, Status> {
        scope(&req)?;
        let cosigned = self.0.witness.cosigned.notes();
        let checkpoints = match self.0.federation.checkpoint(self.0.store.as_ref()).await {
            // The latest first, with its cosignatures if it has any.
            Ok(latest) => {
                let (with_sigs, others): (Vec<String>, Vec<String>) =
                    cosigned.into_iter().partition(|n| n.starts_with(latest.as_str()));
                let first = with_sigs.into_iter().next().unwrap_or(latest);
                std::iter::once(first).chain(others).collect()
            }
            Err(_) => cosigned,
        };
        Ok(Response::new(GetCheckpointsResponse { checkpoints }))
    }
}
