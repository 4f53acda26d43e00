//! A real `nats-server` node with JetStream and mTLS, for the JetStream
//! store's tests, `truc-bench --vs nats` and `truc-chaos --topology
//! cluster`: one launcher instead of one per tool; and a 3-node cluster
//! of them on loopback ([`NatsCluster`]), for `truc-chaos --topology
//! cluster` and `truc-bench --store jetstream`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// What a node is started with.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `server_name`.
    pub name: String,
    /// Client port on 127.0.0.1.
    pub port: u16,
    /// An identity directory (`cert.pem`, `key.pem`, `ca.pem`): the
    /// server's certificate, and the CA its clients must chain to.
    pub tls: PathBuf,
    /// `sync_interval: always` (fsync before every acknowledgement; NATS
    /// 2.10 or newer).
    pub sync_always: bool,
    /// (cluster name, cluster port, the other nodes' cluster ports).
    pub cluster: Option<(String, u16, Vec<u16>)>,
}

impl NatsConfig {
    /// A single node named `name` on a free port, TLS from `tls`.
    pub fn single(name: &str, tls: &Path) -> anyhow::Result<NatsConfig> {
        Ok(NatsConfig {
            name: name.to_string(),
            port: crate::free_port()?,
            tls: tls.to_path_buf(),
            sync_always: false,
            cluster: None,
        })
    }

    /// The configuration file's text, JetStream stored under `dir`.
    fn render(&self, dir: &Path) -> String {
        let q = |p: PathBuf| format!("{:?}", p.display().to_string());
        let mut conf = format!(
            "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\nmax_payload: 8MB\n\
             jetstream {{\n  store_dir: {store}\n{sync}}}\n\
             tls {{\n  cert_file: {cert}\n  key_file: {key}\n  ca_file: {ca}\n  verify: true\n  timeout: 5\n}}\n",
            name = self.name,
            port = self.port,
            store = q(dir.join("jetstream")),
            sync = if self.sync_always {
                "  sync_interval: always\n"
            } else {
                ""
            },
            cert = q(self.tls.join("cert.pem")),
            key = q(self.tls.join("key.pem")),
            ca = q(self.tls.join("ca.pem")),
        );
        if let Some((cluster, port, routes)) = &self.cluster {
            let routes: Vec<String> = routes
                .iter()
                .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
                .collect();
            conf.push_str(&format!(
                "cluster {{\n  name: {cluster}\n  listen: \"127.0.0.1:{port}\"\n  routes: [{}]\n}}\n",
                routes.join(", ")
            ));
        }
        conf
    }
}

/// One `nats-server` process over a directory (configuration, log,
/// JetStream store) that outlives its restarts; killed on drop.
pub struct NatsNode {
    name: String,
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl NatsNode {
    /// Write `config` into `dir` and start `bin` on it; ready when its log
    /// says so (bounded: 60 s).
    pub fn start(bin: &Path, dir: &Path, config: &NatsConfig) -> anyhow::Result<NatsNode> {
        let mut node = NatsNode::prepare(bin, dir, config)?;
        node.spawn()?;
        node.wait_ready()?;
        Ok(node)
    }

    /// Write `config` into `dir` without starting (a cluster starts all its
    /// nodes before waiting for any).
    pub fn prepare(bin: &Path, dir: &Path, config: &NatsConfig) -> anyhow::Result<NatsNode> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("nats.conf"), config.render(dir))?;
        Ok(NatsNode {
            name: config.name.clone(),
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            port: config.port,
            child: None,
        })
    }

    /// Its log (appended to at every start).
    pub fn log(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `tls://127.0.0.1:PORT`, for a hub's `store.nats_urls`.
    pub fn url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    /// The process id (0 when stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Start the process (not waiting: see [`NatsNode::wait_ready`]).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("internal: {} is already running", self.name);
        }
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

    /// Wait until its log says it is ready since its last start (60 s at
    /// most; every start logs "Starting nats-server", then "Server is
    /// ready" once it serves).
    pub fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(self.log()).unwrap_or_default();
            let starts = text.matches("Starting nats-server").count();
            if starts > 0 && text.matches("Server is ready").count() >= starts {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                bail!(
                    "{} exited with {status}; {} ends:\n{}",
                    self.name,
                    self.log().display(),
                    crate::tail(&self.log(), 20)
                );
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("{} not ready within 60 s; see {}", self.name, self.log().display());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL it (its directory stays); nothing when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, SIGKILL after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            crate::procs::terminate(&mut c, grace);
        }
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three `nats-server` nodes on loopback forming one JetStream cluster
/// (separate ports and directories, mTLS with one identity), killed on
/// drop.
pub struct NatsCluster {
    /// The nodes, `nats-0` to `nats-2`.
    pub nodes: Vec<NatsNode>,
}

impl NatsCluster {
    /// Start three nodes of cluster `name` from `bin` under `root`
    /// (`root/nats-0` …), TLS with the identity directory `tls`,
    /// `sync_interval: always` on each when `sync_always`; ready when
    /// every node says so (each waits for the others).
    pub fn start(bin: &Path, root: &Path, name: &str, tls: &Path, sync_always: bool) -> anyhow::Result<NatsCluster> {
        let ports: Vec<(u16, u16)> = (0..3)
            .map(|_| Ok((crate::free_port()?, crate::free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let mut nodes = Vec::new();
        for (i, (port, cport)) in ports.iter().enumerate() {
            let node = format!("nats-{i}");
            let routes = ports.iter().map(|(_, c)| *c).filter(|c| c != cport).collect();
            let config = NatsConfig {
                name: node.clone(),
                port: *port,
                tls: tls.to_path_buf(),
                sync_always,
                cluster: Some((name.to_string(), *cport, routes)),
            };
            nodes.push(NatsNode::prepare(bin, &root.join(&node), &config)?);
        }
        // All started before waiting for any: a node is ready once it has
        // found the others.
        for n in &mut nodes {
            n.spawn()?;
        }
        for n in &mut nodes {
            n.wait_ready()?;
        }
        Ok(NatsCluster { nodes })
    }

    /// `tls://127.0.0.1:P1,tls://…`, for `TRUC_STORE_NATS_URLS`.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(NatsNode::url).collect::<Vec<_>>().join(",")
    }

    /// The nodes' process ids (0 for a stopped one).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(NatsNode::pid).collect()
    }

    /// SIGTERM every node, SIGKILL after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        for n in &mut self.nodes {
            n.terminate(grace);
        }
    }
}
