//! gRPC services.

pub(crate) mod audit;
pub(crate) mod axis;
pub(crate) mod download;
pub(crate) mod ops;
pub(crate) mod peer;
pub(crate) mod upload;
