//! The `truc` and `trucd` binaries, as a library so both stay thin.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod daemon;
pub mod logging;
