//! gRPC health checking (`grpc.health.v1.Health`) on the gRPC port, for
//! load balancers and `grpc_health_probe`: the server ("") and each Truc
//! service are SERVING while the hub serves and NOT_SERVING from the moment
//! it begins to shut down. `Watch` streams see that change and then end, so
//! that they do not hold the drain until the grace period runs out.
//!
//! Open to any TLS client, with or without a certificate: a health check
//! reveals nothing, and many load balancers cannot present one.

use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;
use truc_proto::v1::audit_server::AuditServer;
use truc_proto::v1::axis_server::AxisServer;
use truc_proto::v1::ops_server::OpsServer;

use crate::service;

/// Set the status of the whole server ("") and of each Truc service.
pub(crate) async fn set(reporter: &HealthReporter, status: ServingStatus) {
    for name in [
        "",
        <AxisServer<service::axis::AxisService> as NamedService>::NAME,
        <OpsServer<service::ops::OpsService> as NamedService>::NAME,
        <AuditServer<service::audit::AuditService> as NamedService>::NAME,
    ] {
        reporter.set_service_status(name, status).await;
    }
}

/// The health service over `reporter`; its Watch streams end once `stop`
/// changes.
pub(crate) fn service(reporter: &HealthReporter, stop: watch::Receiver<bool>) -> HealthServer<Checks> {
    HealthServer::new(Checks {
        inner: HealthService::from_health_reporter(reporter.clone()),
        stop,
    })
}

pub(crate) struct Checks {
    inner: HealthService,
    stop: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl Health for Checks {
    async fn check(&self, req: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(req).await
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(&self, req: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let mut updates = self.inner.watch(req).await?.into_inner();
        let mut stop = self.stop.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    u = updates.next() => match u {
                        Some(u) => {
                            if tx.send(u).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                    _ = tx.closed() => return,
                    _ = stop.changed() => break,
                }
            }
            // NOT_SERVING was set before the stop: pass it on, then end.
            while let Ok(Some(u)) = tokio::time::timeout(Duration::from_millis(100), updates.next()).await {
                if tx.send(u).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
