//! Truc's wire contract, generated from `proto/truc/v1/*.proto`.
//!
//! The `.proto` files are the public contract; this crate only compiles them
//! for Rust. Other languages generate their clients from the same files.
//! [`names`] gives the enums their one name each (`Display` and `FromStr`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod names;

/// `truc.v1`: documents, receipts, and the Axis, Ops, Audit and Peer services.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod v1 {
    tonic::include_proto!("truc.v1");
}

/// The encoded `FileDescriptorSet` of all Truc protos (for gRPC reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("truc_descriptor");
