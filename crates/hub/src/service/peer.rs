//! The Peer service: what a peer hub may ask this hub. Only configured
//! peers reach it (`Trust::judge`, `auth::hub`).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use truc_proto::v1::peer_server::Peer;
use truc_proto::v1::{PeerHelloRequest, PeerHelloResponse};

use crate::federation::NoCheckpoint;
use crate::{auth, Shared};

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
}
