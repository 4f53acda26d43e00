//! The real `trucd`, as a child process: spawned on a free port over a data
//! directory that persists across restarts, killed with SIGKILL.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use truc_client::Client;

/// How long a (re)start may take before the run fails.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A `trucd` process (or none, between a kill and the next start).
pub(crate) struct Hub {
    bin: PathBuf,
    pki: PathBuf,
    data: PathBuf,
    log: PathBuf,
    operator: PathBuf,
    env: Vec<(String, String)>,
    /// `127.0.0.1:PORT` of the current (or last) run.
    pub(crate) addr: String,
    child: Option<Child>,
    /// Runs started so far.
    pub(crate) runs: u32,
}

impl Hub {
    /// A hub to be started from `bin` with the identity in `PKI/hub`, data in
    /// `data`, its output appended to `log`, and `env` (`TRUC_*` settings)
    /// on top of an environment cleared of every other `TRUC_*` variable.
    pub(crate) fn new(bin: &Path, pki: &Path, data: &Path, log: &Path, env: Vec<(String, String)>) -> Hub {
        Hub {
            bin: bin.to_path_buf(),
            pki: pki.to_path_buf(),
            data: data.to_path_buf(),
            log: log.to_path_buf(),
            operator: pki.join("operators/chaos"),
            env,
            addr: String::new(),
            child: None,
            runs: 0,
        }
    }

    /// The process id of the running hub (0 when none).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Spawn `trucd` on a fresh free port and wait until an operator RPC
    /// succeeds (bounded); returns how long that took.
    pub(crate) async fn start(&mut self) -> anyhow::Result<Duration> {
        if self.child.is_some() {
            bail!("internal: trucd is already running");
        }
        self.addr = format!("127.0.0.1:{}", free_port()?);
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
            if started.elapsed() > READY_TIMEOUT {
                self.kill().ok();
                bail!(
                    "trucd (run {}) did not answer on {} within {} s; {} ends:\n{}",
                    self.runs,
                    self.addr,
                    READY_TIMEOUT.as_secs(),
                    self.log.display(),
                    tail(&self.log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL the hub and reap it; fails unless it died of SIGKILL (a hub
    /// that had already exited is a failure too).
    pub(crate) fn kill(&mut self) -> anyhow::Result<()> {
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
    pub(crate) fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        // Through kill(1): this crate has no unsafe code.
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The last `n` lines of a file.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
