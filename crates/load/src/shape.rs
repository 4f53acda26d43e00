//! The flags that shape a load, shared by `truc bench` and `truc-bench`
//! (flattened into each command's own flags).

use crate::{LoadSpec, PriorityMix};

/// How much is sent, how big, at which priorities, and how much is in
/// flight.
#[derive(Debug, Clone, clap::Args)]
pub struct Shape {
    /// Payload bytes per document.
    #[arg(long, default_value_t = 4096)]
    pub size: usize,
    /// Recipients per document.
    #[arg(long, default_value_t = 1)]
    pub fanout: usize,
    /// gRPC connections per sending agency.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Sends in flight (awaiting their acceptance) per sending agency.
    #[arg(long, default_value_t = 256)]
    pub window: usize,
    /// Pace the sends at this many documents per second in all, on a fixed
    /// schedule (latency counts from each document's scheduled time),
    /// instead of as fast as the windows allow.
    #[arg(long, value_name = "DOCS_PER_S")]
    pub rate: Option<f64>,
    /// Unacknowledged deliveries per receiving agency (1..=1024).
    #[arg(long, default_value_t = 256)]
    pub credit: u32,
    /// Documents sent before the clock starts (default: two windows per
    /// sender; 0 for none).
    #[arg(long, value_name = "N")]
    pub warmup: Option<u64>,
    /// Most MiB of payload to sign ahead for a timed run.
    #[arg(long, default_value_t = 3072, value_name = "MIB")]
    pub presign_mib: u64,
    /// Priorities with weights, e.g. thuong=90,khan=9,hoa-toc=1 (a
    /// priority by name or number; a bare one weighs 1).
    #[arg(long, default_value = "thuong", value_name = "MIX")]
    pub priority_mix: PriorityMix,
}

impl Shape {
    /// Set these on `spec`.
    pub fn apply(&self, spec: &mut LoadSpec) {
        spec.size = self.size;
        spec.fanout = self.fanout;
        spec.connections = self.connections;
        spec.window = self.window;
        spec.rate = self.rate;
        spec.credit = self.credit;
        spec.warmup = self.warmup;
        spec.max_presign_bytes = self.presign_mib << 20;
        spec.priority_mix = self.priority_mix.clone();
    }
}
