//! gRPC services.

pub(crate) mod axis;
pub(crate) mod ops;
