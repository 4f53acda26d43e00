//! The gRPC services on the public port: Axis, Ops, Audit, Peer, health and
//! reflection, each behind the identity check, counted by method and code,
//! and keeping its connection busy while a request runs; Axis, Ops and
//! Audit held to their connection's request budget (`budget.rs`); with the
//! HTTP/2 settings large documents need and the per-connection stream
//! limit.

use std::sync::Arc;
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Router;
use tonic_health::pb::health_server::HealthServer;
use truc_proto::v1::audit_server::AuditServer;
use truc_proto::v1::axis_server::AxisServer;
use truc_proto::v1::ops_server::OpsServer;
use truc_proto::v1::peer_server::PeerServer;

use crate::budget::Budgeted;
use crate::metrics::{Metrics, Observed};
use crate::trust::Trust;
use crate::{auth, door, health, service, HubError, Shared};

/// Allowance over the payload limit for the rest of a message.
pub(crate) const MESSAGE_OVERHEAD: usize = 1024 * 1024;
/// HTTP/2 flow-control window of one stream, bytes.
const H2_STREAM_WINDOW: u32 = 8 << 20;
/// HTTP/2 flow-control window of one connection, bytes.
const H2_CONNECTION_WINDOW: u32 = 16 << 20;
/// Largest HTTP/2 frame the hub accepts, bytes.
const H2_MAX_FRAME: u32 = 1 << 20;

/// The router of every service of the public port.
pub(crate) fn build(
    shared: &Arc<Shared>,
    trust: &Arc<Trust>,
    metrics: &Arc<Metrics>,
    health: HealthServer<health::Checks>,
) -> Result<Router, HubError> {
    let config = &shared.config;
    // Room for an inline payload, or an upload chunk, and the rest.
    let limit = (config.limits.max_inline_payload as usize).max(service::upload::MAX_UPLOAD_CHUNK) + MESSAGE_OVERHEAD;
    let axis = AxisServer::new(service::axis::AxisService(shared.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let ops = OpsServer::new(service::ops::OpsService(shared.clone()));
    let audit =
        AuditServer::new(service::audit::AuditService(shared.clone())).max_encoding_message_size(64 * 1024 * 1024);
    // A forwarded document carries its payload inline, as a Send does.
    let peer = PeerServer::new(service::peer::PeerService(shared.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    // Server reflection (for grpcurl; any verified certificate).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(truc_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| HubError::Server(format!("reflection: {e}")))?;
    let reflection = reflection()
        .build_v1()
        .map_err(|e| HubError::Server(format!("reflection: {e}")))?;
    Ok(tonic::transport::Server::builder()
        // A ping every 30 s on every connection; one unanswered for 20 s
        // closes it (a peer gone without a word, even mid-stream).
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        // Large documents: windows that hold a few chunks in flight and
        // large frames (h2's defaults, 64 KiB and 16 KiB, stall a 1 GiB
        // upload on window updates); both bound what one stream buffers.
        .initial_stream_window_size(Some(H2_STREAM_WINDOW))
        .initial_connection_window_size(Some(H2_CONNECTION_WINDOW))
        .max_frame_size(Some(H2_MAX_FRAME))
        // Memory: streams a connection may have open at once (h2 sends it
        // in SETTINGS and refuses a stream beyond it); the bytes they may
        // hold are budget.rs's.
        .max_concurrent_streams(Some(config.limits.max_streams_per_connection))
        // door::Tracked: a request keeps its connection from being idle.
        // Budgeted outside Observed: a pushback is counted on its own
        // (truc_requests_pushed_back_total), not logged as a refusal.
        .add_service(Budgeted(door::Tracked(Observed::new(
            InterceptedService::new(axis, auth::require_identity(trust.clone())),
            metrics.clone(),
        ))))
        .add_service(Budgeted(door::Tracked(Observed::new(
            InterceptedService::new(ops, auth::require_identity(trust.clone())),
            metrics.clone(),
        ))))
        .add_service(Budgeted(door::Tracked(Observed::new(
            InterceptedService::new(audit, auth::require_identity(trust.clone())),
            metrics.clone(),
        ))))
        .add_service(Budgeted(door::Tracked(Observed::new(
            InterceptedService::new(peer, auth::require_identity(trust.clone())),
            metrics.clone(),
        ))))
        .add_service(door::Tracked(health))
        .add_service(door::Tracked(InterceptedService::new(
            reflection,
            auth::require_identity(trust.clone()),
        )))
        .add_service(door::Tracked(InterceptedService::new(
            reflection_v1alpha,
            auth::require_identity(trust.clone()),
        ))))
}
