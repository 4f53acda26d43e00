//! The tower layer that counts each gRPC request by service, method and
//! status code, and times it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::{http, Service};
use tonic::server::NamedService;

use truc_core::sync::Locked;

use super::Metrics;

/// The gRPC status code's canonical name.
pub(crate) fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// A gRPC service wrapped to count its requests by method and status code.
/// The code is read from the response headers: tonic answers an error of a
/// unary call (and a refused stream) as trailers-only, so the headers carry
/// `grpc-status`; without it the call succeeded (or is a stream that
/// started).
#[derive(Clone)]
pub(crate) struct Observed<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Observed<S> {
    pub(crate) fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl<S: NamedService> NamedService for Observed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for Observed<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<R>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(S::NAME))
            .and_then(|p| p.strip_prefix('/'))
            .unwrap_or("")
            .to_string();
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let peer_info = req.extensions().get::<crate::PeerInfo>();
        let peer = peer_info.map_or_else(|| "-".to_string(), |p| p.addr.to_string());
        // Who it was, as the connection's certificate names it.
        let principal = peer_info
            .and_then(|p| {
                let judged = p.judged.locked();
                judged.1.as_ref().ok().map(|pr| pr.uri().to_string())
            })
            .unwrap_or_else(|| "-".to_string());
        // The clone that was made ready serves this call; a fresh clone
        // stays for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let resp = inner.call(req).await?;
            let code = resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse::<i32>().ok())
                .unwrap_or(0);
            metrics.grpc_done(S::NAME, &method, code, started.elapsed());
            if code != 0 {
                // Every refusal leaves a line for the operator: who, what, why.
                let why = resp
                    .headers()
                    .get("grpc-message")
                    .and_then(|v| v.to_str().ok())
                    .map(crate::percent::decode)
                    .unwrap_or_default();
                let code = code_name(code);
                tracing::info!(service = S::NAME, %method, code, %peer, %principal, reason = %why, "refused");
            }
            Ok(resp)
        })
    }
}
