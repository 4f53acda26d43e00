//! Real `trucd` processes for the tools that drive them (`truc-bench`,
//! `truc-chaos`): one launcher instead of one per tool.
//!
//! A [`Trucd`] is spawned with the hub identity of a PKI directory, a data
//! directory that persists across restarts, the PKI's CRL and a fresh port
//! on 127.0.0.1 at every start, in an environment cleared of every other
//! `TRUC_*` setting (so that a caller's shell cannot change what is
//! measured); it is ready when an operator's `ListAgencies` is answered.
//! [`nats::NatsNode`] is a `nats-server` node for the JetStream store;
//! [`federation::Federation`], three federated hubs on fixed ports. The
//! in-process hub of the integration tests is `truc_tests::TestHub`.

pub mod federation;
pub mod nats;
pub mod procs;

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use truc_client::Client;

pub use procs::{free_port, tail};

/// A `trucd` process (or none, between a stop and the next start).
pub struct Trucd {
    bin: PathBuf,
    pki: PathBuf,
    data: PathBuf,
    log: PathBuf,
    operator: PathBuf,
    env: Vec<(String, String)>,
    ready_timeout: Duration,
    port: Option<u16>,
    addr: String,
    child: Option<Child>,
    runs: u32,
}

impl Trucd {
    /// A hub to be started from `bin` with the identity `PKI/hub`, data in
    /// `data` and its output appended to `log`; ready when the operator
    /// `PKI/operators/<operator>` is answered.
    pub fn new(bin: &Path, pki: &Path, data: &Path, log: &Path, operator: &str) -> Trucd {
        Trucd {
            bin: bin.to_path_buf(),
            pki: pki.to_path_buf(),
            data: data.to_path_buf(),
            log: log.to_path_buf(),
            operator: pki.join("operators").join(operator),
            env: Vec::new(),
            ready_timeout: Duration::from_secs(60),
            port: None,
            addr: String::new(),
            child: None,
            runs: 0,
        }
    }

    /// `TRUC_*` settings for every start.
    pub fn env(mut self, env: Vec<(String, String)>) -> Trucd {
        self.env = env;
        self
    }

    /// How long a start may take before it fails (default 60 s).
    pub fn ready_timeout(mut self, t: Duration) -> Trucd {
        self.ready_timeout = t;
        self
    }

    /// Listen on `port` at every start instead of a fresh free port: for a
    /// hub whose peers' configuration names its address (federation), so
    /// it must come back where it was after a restart.
    pub fn port(mut self, port: u16) -> Trucd {
        self.port = Some(port);
        self
    }

    /// `127.0.0.1:PORT` of the current (or last) run.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// The process id of the running hub (0 when none).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Runs started so far.
    pub fn runs(&self) -> u32 {
        self.runs
    }

    /// Spawn `trucd` on a fresh free port (or the one [`Trucd::port`] set) and wait until the operator is
    /// answered (bounded by the ready timeout); returns how long that took.
    pub async fn start(&mut self) -> anyhow::Result<Duration> {
        if self.child.is_some() {
            bail!("internal: trucd is already running");
        }
        let port = match self.port {
            Some(p) => p,
            None => free_port()?,
        };
        self.addr = format!("127.0.0.1:{port}");
        self.runs += 1;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut cmd = Command::new(&self.bin);
        for (k, _) in std::env::vars_os() {
            let name = k.to_string_lossy();
            if name.starts_with("TRUC_") || name == "RUST_LOG" {
                cmd.env_remove(&k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--identity")
            .arg(self.pki.join("hub"))
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--crl")
            .arg(self.pki.join("crl.pem"))
            .arg("--listen")
            .arg(&self.addr)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                bail!(
                    "trucd (run {}) exited with {status} before it answered; {} ends:\n{}",
                    self.runs,
                    self.log.display(),
                    tail(&self.log, 30)
                );
            }
            if let Ok(c) = Client::connect_dir(&self.addr, &self.operator).await {
                if c.list_agencies().await.is_ok() {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() > self.ready_timeout {
                self.kill().ok();
                bail!(
                    "trucd (run {}) did not answer on {} within {} s; {} ends:\n{}",
                    self.runs,
                    self.addr,
                    self.ready_timeout.as_secs(),
                    self.log.display(),
                    tail(&self.log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGKILL the hub (a crash: no checkpoint) and reap it; fails unless it
    /// died of SIGKILL (a hub that had already exited is a failure too).
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("internal: no trucd to kill");
        };
        if let Ok(Some(status)) = child.try_wait() {
            bail!("trucd exited by itself ({status}) before the kill");
        }
        child.kill().context("SIGKILL trucd")?; // SIGKILL on Unix
        let status = child.wait().context("reaping trucd")?;
        if status.signal() != Some(9) {
            bail!("trucd ended with {status} after SIGKILL, not by the signal");
        }
        Ok(())
    }

    /// SIGTERM (graceful: the hub finishes what is in flight and flushes)
    /// and wait; SIGKILL after `grace`. Returns the exit status.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        procs::terminate(&mut child, grace);
        child.wait().ok()
    }

    /// SIGTERM and wait (SIGKILL after 60 s); how long it took.
    pub fn stop(&mut self) -> Duration {
        let started = Instant::now();
        self.terminate(Duration::from_secs(60));
        started.elapsed()
    }

    /// Stop gracefully, then start again on the same data; returns how long
    /// the stop took (trucd checkpoints its store then) and the start.
    pub async fn restart(&mut self) -> anyhow::Result<(Duration, Duration)> {
        let stopped = self.stop();
        Ok((stopped, self.start().await?))
    }

    /// SIGKILL, then start again; returns how long the start took.
    pub async fn crash_restart(&mut self) -> anyhow::Result<Duration> {
        self.kill()?;
        self.start().await
    }
}

impl Drop for Trucd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
