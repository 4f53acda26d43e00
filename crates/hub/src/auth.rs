//! Who is calling: taken from the verified client certificate only.

use std::sync::Arc;
use truc_core::sync::Locked;

use tonic::{Request, Status};
use truc_core::routing::HubId;
use truc_core::{AgencyCode, Principal};

use crate::tls::PeerInfo;
use crate::trust::Trust;

/// The principal of a request, set by [`require_identity`].
#[derive(Debug, Clone)]
struct Verified(Principal);

/// The verified principal of a request.
pub(crate) fn caller<T>(req: &Request<T>) -> Result<Principal, Status> {
    match req.extensions().get::<Verified>() {
        Some(Verified(p)) => Ok(p.clone()),
        None => Err(Status::unauthenticated("no verified client identity")),
    }
}

/// The chain the caller presented (for streams that must end on revocation).
pub(crate) fn chain<T>(req: &Request<T>) -> Arc<Vec<Vec<u8>>> {
    req.extensions()
        .get::<PeerInfo>()
        .map(|p| p.chain.clone())
        .unwrap_or_default()
}

/// The calling agency; other roles are refused (a hub saying why: its
/// certificate may not stand for an agency).
pub(crate) fn agency<T>(req: &Request<T>) -> Result<(Principal, AgencyCode), Status> {
    let p = caller(req)?;
    match &p {
        Principal::Agency(code) => {
            let code = code.clone();
            Ok((p, code))
        }
        Principal::Hub(_) => Err(Status::permission_denied(format!(
            "{p} is a hub certificate, which may not act as an agency: this method is for agencies \
             (urn:truc:agency:<code>); hubs call the Peer service"
        ))),
        _ => Err(Status::permission_denied(format!(
            "{p} is not an agency; this method is for agencies"
        ))),
    }
}

/// The calling peer hub. Only a configured peer's certificate, chaining to
/// that peer's CA, is judged a hub at all (`Trust::judge`); any other
/// principal is refused here, saying why.
pub(crate) fn hub<T>(req: &Request<T>) -> Result<HubId, Status> {
    let p = caller(req)?;
    match &p {
        Principal::Hub(name) => {
            HubId::parse(name).map_err(|_| Status::permission_denied(format!("{p} is not a valid hub id")))
        }
        Principal::Agency(_) => Err(Status::permission_denied(format!(
            "{p} is an agency certificate, which may not act as a hub: this method is for peer hubs \
             (urn:truc:hub:<id> with a [[peers]] entry at this hub)"
        ))),
        _ => Err(Status::permission_denied(format!(
            "{p} is not a hub; this method is for peer hubs (urn:truc:hub:<id> with a [[peers]] entry at this hub)"
        ))),
    }
}

/// The calling operator; other roles are refused.
pub(crate) fn operator<T>(req: &Request<T>) -> Result<Principal, Status> {
    let p = caller(req)?;
    if matches!(p, Principal::Operator(_)) {
        Ok(p)
    } else {
        Err(Status::permission_denied(format!(
            "{p} is not an operator; this method is for operators"
        )))
    }
}

/// Interceptor for every service: refuse a connection whose certificate is
/// not (or no longer) acceptable before any handler runs, and hand the
/// handlers the verified principal. The verdict made at the handshake is
/// reused until the trust material is reloaded, then made again once.
pub(crate) fn require_identity(trust: Arc<Trust>) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut req: Request<()>| {
        let peer = req
            .extensions()
            .get::<PeerInfo>()
            .ok_or_else(|| Status::unauthenticated("no TLS client identity"))?;
        let verdict = {
            let mut judged = peer.judged.locked();
            let epoch = trust.epoch();
            if judged.0 != epoch {
                *judged = (epoch, trust.judge(&peer.chain));
            }
            judged.1.clone()
        };
        let principal = verdict.map_err(|why| {
            // Refused after a reload (a revocation): answer, then close the
            // connection rather than keep it for more refusals.
            peer.conn
                .close_by(tokio::time::Instant::now() + crate::tls::REFUSED_LINGER);
            Status::unauthenticated(why)
        })?;
        req.extensions_mut().insert(Verified(principal));
        Ok(req)
    }
}
