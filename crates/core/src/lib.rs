//! Truc's domain: what an agency code is, who a principal is, what makes a
//! signed document acceptable, and how receipts form a Merkle log.
//!
//! Pure logic without I/O, shared by the hub, the client SDK and the CLI.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agency;
pub mod attachments;
pub mod c2sp;
pub mod calendar;
pub mod clock;
pub mod csv;
pub mod document;
mod error;
mod hex_text;
pub mod merkle;
pub mod notice;
pub mod principal;
pub mod routing;
pub mod status_rules;
pub mod sync;
pub mod tree_head;

pub use agency::AgencyCode;
pub use calendar::Calendar;
pub use clock::Clock;
pub use error::{chain as error_chain, CoreError};
pub use hex_text::{hex, unhex, HexError};
pub use principal::Principal;

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
