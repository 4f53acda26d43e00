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
use tonic::Code;
use truc_proto::names::grpc_code_name;

use truc_core::sync::Locked;

use super::Metrics;

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
            // A code gRPC does not define reads as UNKNOWN, as the
            // specification says.
            let code = resp
                .headers()
                .get("grpc-status")
                .map_or(Code::Ok, |v| Code::from_bytes(v.as_bytes()));
            metrics.grpc_done(S::NAME, &method, code, started.elapsed());
            if code != Code::Ok {
                // Every refusal leaves a line for the operator: who, what, why.
                let why = resp
                    .headers()
                    .get("grpc-message")
                    .and_then(|v| v.to_str().ok())
                    .map(crate::percent::decode)
                    .unwrap_or_default();
                let code = grpc_code_name(code);
                tracing::info!(service = S::NAME, %method, code, %peer, %principal, reason = %why, "refused");
            }
            Ok(resp)
        })
    }
}
