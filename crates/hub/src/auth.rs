//! Who is calling: taken from the verified client certificate only.

use tonic::{Request, Status};
use truc_core::{AgencyCode, Principal};

use crate::tls::PeerInfo;

/// The verified principal of a request's connection.
pub(crate) fn caller<T>(req: &Request<T>) -> Result<Principal, Status> {
    match req.extensions().get::<PeerInfo>() {
        Some(PeerInfo { principal: Ok(p), .. }) => Ok(p.clone()),
        Some(PeerInfo {
            principal: Err(why), ..
        }) => Err(Status::unauthenticated(why.clone())),
        None => Err(Status::unauthenticated("no TLS client identity")),
    }
}

/// The calling agency; other roles are refused.
pub(crate) fn agency<T>(req: &Request<T>) -> Result<(Principal, AgencyCode), Status> {
    let p = caller(req)?;
    match p.agency() {
        Some(code) => {
            let code = code.clone();
            Ok((p, code))
        }
        None => Err(Status::permission_denied(format!(
            "{p} is not an agency; this method is for agencies"
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

/// Interceptor for every service: refuse connections without a verified
/// certificate before any handler runs.
pub(crate) fn require_identity(req: Request<()>) -> Result<Request<()>, Status> {
    caller(&req)?;
    Ok(req)
}
