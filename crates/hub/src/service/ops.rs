//! The operator service.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};
use truc_core::AgencyCode;
use truc_proto::v1::ops_server::Ops;
use truc_proto::v1::{
    AddAgencyRequest, Agency, AgencyState, ChangedCount, DeadLetter, DeadLetterReason, DocumentHeader, GetStatsRequest,
    GetStatsResponse, GetStorageRequest, ListAgenciesRequest, ListAgenciesResponse, ListDeadLettersRequest,
    ListDeadLettersResponse, ListQueueRequest, ListQueueResponse, ListQueuesRequest, ListQueuesResponse,
    PurgeDeadLettersRequest, QueueItem, Receipt, RedriveDeadLettersRequest, ReloadRequest, ReloadResponse,
    RemoveAgencyRequest, RetireAgencyRequest, SetAgencyStateRequest, Storage, VerifyStoreRequest, VerifyStoreResponse,
};
use truc_store::AgencyInfo;

use crate::{auth, queues, status, Shared};

pub(crate) struct OpsService(pub(crate) Arc<Shared>);

fn agency(a: AgencyInfo) -> Agency {
    Agency {
        code: a.code,
        name: a.name,
        state: a.state as i32,
        registered_at_unix_ms: a.registered_at_unix_ms,
        queued: a.queued,
        successor: a.successor,
        certificate_not_after_unix_ms: 0,
    }
}

/// Default and largest page of queue items.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

fn code(s: &str) -> Result<AgencyCode, Status> {
    AgencyCode::parse(s).map_err(status::from_core)
}

/// `s` as a registered agency's code: malformed is INVALID_ARGUMENT, not
/// registered NOT_FOUND (an empty answer would look like "nothing there").
fn registered(shared: &Shared, s: &str) -> Result<AgencyCode, Status> {
    let c = code(s)?;
    if shared.store.agency(&c).is_none() {
        return Err(Status::not_found(format!(
            "agency {c} is not registered (`truc ops agencies list` shows the registered ones)"
        )));
    }
    Ok(c)
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
        let metrics = &self.0.metrics;
        let agencies = self
            .0
            .store
            .agencies()
            .into_iter()
            .map(|a| {
                let mut a = agency(a);
                a.certificate_not_after_unix_ms = metrics
                    .client_certificate_expiry(&format!("urn:truc:agency:{}", a.code))
                    .map_or(0, |t| t.saturating_mul(1000));
                a
            })
            .collect();
        Ok(Response::new(ListAgenciesResponse { agencies }))
    }

    async fn list_dead_letters(
        &self,
        req: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        auth::operator(&req)?;
        let code = registered(&self.0, &req.into_inner().agency)?;
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
                    reason: match i.dead_letter_reason {
                        0 => DeadLetterReason::Attempts as i32,
                        r => r,
                    },
                }
            })
            .collect();
        Ok(Response::new(ListDeadLettersResponse { dead_letters }))
    }

    async fn set_agency_state(&self, req: Request<SetAgencyStateRequest>) -> Result<Response<Agency>, Status> {
        let op = auth::operator(&req)?;
        let r = req.into_inner();
        let state = match AgencyState::try_from(r.state) {
            Ok(s @ (AgencyState::Active | AgencyState::Suspended)) => s,
            _ => {
                return Err(Status::invalid_argument(
                    "state must be ACTIVE or SUSPENDED; retire with RetireAgency",
                ))
            }
        };
        let info = self
            .0
            .store
            .set_agency_state(registered(&self.0, &r.code)?, state, r.reason, op.uri())
            .await
            .map_err(status::from_store)?;
        tracing::info!(operator = %op, code = %info.code, %state, "agency state changed");
        Ok(Response::new(agency(info)))
    }

    async fn retire_agency(&self, req: Request<RetireAgencyRequest>) -> Result<Response<Agency>, Status> {
        let op = auth::operator(&req)?;
        let r = req.into_inner();
        let successor = code(&r.successor)?;
        let info = self
            .0
            .store
            .retire_agency(registered(&self.0, &r.code)?, successor.clone(), r.reason, op.uri())
            .await
            .map_err(status::from_store)?;
        tracing::info!(operator = %op, code = %info.code, %successor, "agency retired");
        Ok(Response::new(agency(info)))
    }

    async fn remove_agency(&self, req: Request<RemoveAgencyRequest>) -> Result<Response<Agency>, Status> {
        let op = auth::operator(&req)?;
        let r = req.into_inner();
        let code = registered(&self.0, &r.code)?;
        let before = self.0.store.agency(&code);
        self.0
            .store
            .remove_agency(code.clone(), r.reason, op.uri())
            .await
            .map_err(status::from_store)?;
        tracing::warn!(operator = %op, %code, "agency removed");
        let before = before.ok_or_else(|| Status::not_found(format!("agency {code} is not registered")))?;
        Ok(Response::new(agency(before)))
    }

    async fn list_queues(&self, req: Request<ListQueuesRequest>) -> Result<Response<ListQueuesResponse>, Status> {
        auth::operator(&req)?;
        let queues = queues::summaries(&self.0).await.map_err(status::from_store)?;
        Ok(Response::new(ListQueuesResponse { queues }))
    }

    async fn list_queue(&self, req: Request<ListQueueRequest>) -> Result<Response<ListQueueResponse>, Status> {
        auth::operator(&req)?;
        let r = req.into_inner();
        let agency = registered(&self.0, &r.agency)?;
        let size = match r.page_size {
            0 => DEFAULT_PAGE,
            n if n <= MAX_PAGE => n,
            n => {
                return Err(Status::invalid_argument(format!(
                    "page_size {n} is more than {MAX_PAGE}"
                )))
            }
        } as usize;
        let mut entries = self
            .0
            .store
            .queue_page(agency.clone(), r.after_delivery_id, size + 1)
            .await
            .map_err(status::from_store)?;
        let more = entries.len() > size;
        entries.truncate(size);
        let leased = self.0.engine.leased(&agency);
        let next = if more {
            entries.last().map(|e| e.delivery_id).unwrap_or(0)
        } else {
            0
        };
        let items = entries
            .into_iter()
            .map(|e| QueueItem {
                in_flight: leased.contains(&e.delivery_id),
                delivery_id: e.delivery_id,
                hub_document_id: e.hub_document_id,
                from: e.from,
                document_id: e.document_id,
                priority: e.priority as i32,
                enqueued_at_unix_ms: e.enqueued_at_unix_ms,
                attempts: e.attempts,
                status_notice: e.status_notice,
                bytes: e.bytes,
            })
            .collect();
        Ok(Response::new(ListQueueResponse {
            items,
            next_after_delivery_id: next,
        }))
    }

    async fn redrive_dead_letters(
        &self,
        req: Request<RedriveDeadLettersRequest>,
    ) -> Result<Response<ChangedCount>, Status> {
        let op = auth::operator(&req)?;
        let r = req.into_inner();
        let agency = registered(&self.0, &r.agency)?;
        let count = self
            .0
            .store
            .redrive(agency.clone(), r.delivery_ids, op.uri())
            .await
            .map_err(status::from_store)?;
        tracing::info!(operator = %op, %agency, count, "dead letters redriven");
        Ok(Response::new(ChangedCount { count }))
    }

    async fn purge_dead_letters(
        &self,
        req: Request<PurgeDeadLettersRequest>,
    ) -> Result<Response<ChangedCount>, Status> {
        let op = auth::operator(&req)?;
        let r = req.into_inner();
        let agency = registered(&self.0, &r.agency)?;
        let count = self
            .0
            .store
            .purge(agency.clone(), r.delivery_ids, op.uri())
            .await
            .map_err(status::from_store)?;
        tracing::warn!(operator = %op, %agency, count, "dead letters purged");
        Ok(Response::new(ChangedCount { count }))
    }

    async fn get_storage(&self, req: Request<GetStorageRequest>) -> Result<Response<Storage>, Status> {
        auth::operator(&req)?;
        let shared = self.0.clone();
        let storage = tokio::task::spawn_blocking(move || crate::disk::storage(&shared))
            .await
            .map_err(|_| Status::unavailable("the hub is shutting down"))?;
        Ok(Response::new(storage))
    }

    async fn verify_store(&self, req: Request<VerifyStoreRequest>) -> Result<Response<VerifyStoreResponse>, Status> {
        let op = auth::operator(&req)?;
        let rate = req.into_inner().bytes_per_second;
        let started = std::time::Instant::now();
        tracing::info!(operator = %op, bytes_per_second = rate, "verify-store started");
        let report = crate::scrub::verify(&self.0, op.uri(), rate, Some(self.0.engine.stopping()))
            .await
            .map_err(status::from_store)?;
        tracing::info!(operator = %op, damaged = report.damaged.len(), "verify-store done");
        Ok(Response::new(crate::scrub::response(report, started.elapsed())))
    }

    async fn get_stats(&self, req: Request<GetStatsRequest>) -> Result<Response<GetStatsResponse>, Status> {
        // Agencies too (their own figures only): `stats::rows` scopes them.
        let caller = auth::caller(&req)?;
        let r = req.into_inner();
        let q = crate::stats::StatsQuery::new(r.from_date, r.to_date, r.agency, r.by)?;
        let rows = crate::stats::rows(&self.0, &caller, q).await?;
        Ok(Response::new(GetStatsResponse {
            rows,
            utc_offset_minutes: self.0.calendar.utc_offset_minutes(),
        }))
    }

    async fn get_status(
        &self,
        req: Request<truc_proto::v1::GetStatusRequest>,
    ) -> Result<Response<truc_proto::v1::HubStatus>, Status> {
        auth::operator(&req)?;
        let s = &self.0;
        let files = s.trust.files();
        let (hub_principal, not_after) = crate::hub_certificate(s)
            .map(|(der, p)| {
                let p = p.map(|p| p.uri().to_string()).unwrap_or_default();
                let t = x509_parser::parse_x509_certificate(&der)
                    .map(|(_, c)| c.validity().not_after.timestamp() * 1000)
                    .unwrap_or(0);
                (p, t)
            })
            .unwrap_or_default();
        let tree_size = match s.store.tree_head(0).await.map_err(status::from_store)? {
            Some(sth) => truc_proto::v1::TreeHead::decode(sth.tree_head.as_slice())
                .map(|h| h.tree_size)
                .unwrap_or(0),
            None => 0,
        };
        Ok(Response::new(truc_proto::v1::HubStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at_unix_ms: s.metrics.started_unix_ms(),
            store_backend: s.config.store.backend.to_string(),
            listen: s.config.listen.to_string(),
            admin_listen: s.config.admin.listen.map(|a| a.to_string()).unwrap_or_default(),
            hub_principal,
            hub_certificate_not_after_unix_ms: not_after,
            crl_checked: files.revocation,
            revoked_certificates: s.metrics.revoked_certificates(),
            crl_files: files.crls.iter().map(|p| p.display().to_string()).collect(),
            agencies: s.store.agencies().len() as u64,
            tree_size,
            store_problem: s.store.commit_problem().unwrap_or_default(),
        }))
    }

    async fn list_connections(
        &self,
        req: Request<truc_proto::v1::ListConnectionsRequest>,
    ) -> Result<Response<truc_proto::v1::ListConnectionsResponse>, Status> {
        auth::operator(&req)?;
        let own = req.extensions().get::<crate::PeerInfo>().map(|p| p.conn.clone());
        let mut connections: Vec<_> = self
            .0
            .door
            .held()
            .into_iter()
            .map(|c| {
                let a = c.about();
                truc_proto::v1::Connection {
                    principal: a.principal.clone(),
                    peer_address: a.addr.to_string(),
                    connected_at_unix_ms: a.connected_at_unix_ms,
                    open_requests: u32::try_from(c.open_requests()).unwrap_or(u32::MAX),
                    requests_total: c.requests_total(),
                    tls_version: a.tls_version.clone(),
                    cipher_suite: a.cipher_suite.clone(),
                    caller: own.as_ref().is_some_and(|o| Arc::ptr_eq(o, &c)),
                    request_bytes_held: c.budget().held_bytes(),
                    request_bytes_held_peak: c.budget().peak_bytes(),
                    requests_held_peak: u32::try_from(c.budget().peak_requests()).unwrap_or(u32::MAX),
                    requests_pushed_back: c.budget().pushed_back(),
                }
            })
            .collect();
        connections.sort_by(|x, y| (&x.principal, x.connected_at_unix_ms).cmp(&(&y.principal, y.connected_at_unix_ms)));
        Ok(Response::new(truc_proto::v1::ListConnectionsResponse { connections }))
    }

    async fn list_peers(
        &self,
        req: Request<truc_proto::v1::ListPeersRequest>,
    ) -> Result<Response<truc_proto::v1::ListPeersResponse>, Status> {
        auth::operator(&req)?;
        let peers = crate::peers::links(&self.0).await.map_err(status::from_store)?;
        Ok(Response::new(truc_proto::v1::ListPeersResponse { peers }))
    }

    async fn set_peer_paused(
        &self,
        req: Request<truc_proto::v1::SetPeerPausedRequest>,
    ) -> Result<Response<truc_proto::v1::PeerLink>, Status> {
        let op = auth::operator(&req)?;
        let r = req.into_inner();
        if !self.0.config.peers.iter().any(|p| p.id == r.peer) {
            return Err(Status::not_found(format!(
                "{:?} is not a peer of this hub (`truc ops peers` lists them)",
                r.peer
            )));
        }
        let changed = self.0.pauses.set(&self.0, &r.peer, r.paused, &op, &r.reason).await?;
        if changed {
            let what = if r.paused { "paused" } else { "resumed" };
            tracing::warn!(operator = %op, peer = %r.peer, reason = %r.reason, "forwarding to peer {what}");
        }
        let links = crate::peers::links(&self.0).await.map_err(status::from_store)?;
        links
            .into_iter()
            .find(|l| l.id == r.peer)
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("{:?} is not a peer of this hub", r.peer)))
    }

    async fn reload(&self, req: Request<ReloadRequest>) -> Result<Response<ReloadResponse>, Status> {
        let op = auth::operator(&req)?;
        let shared = self.0.clone();
        let (loaded, ended) = tokio::task::spawn_blocking(move || shared.reload())
            .await
            .map_err(|_| Status::unavailable("the hub is shutting down"))?
            .map_err(|e| Status::failed_precondition(format!("reload refused, nothing changed: {e}")))?;
        let detail = if loaded.revocation {
            format!(
                "reload: {} revoked certificates, {ended} streams ended",
                loaded.revoked_certificates
            )
        } else {
            format!("reload: no CRL configured (revocations not checked), {ended} streams ended")
        };
        self.0
            .store
            .record_action(detail, op.uri())
            .await
            .map_err(status::from_store)?;
        Ok(Response::new(ReloadResponse {
            revoked_certificates: loaded.revoked_certificates,
            streams_ended: ended,
            no_crl: !loaded.revocation,
            crl_files: self
                .0
                .trust
                .files()
                .crls
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        }))
    }
}
