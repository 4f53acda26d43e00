//! A real `trucd` process on a fresh data directory, as a user runs it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use truc_client::Client;

use crate::procs;

/// A running `trucd`.
pub(crate) struct Trucd {
    bin: PathBuf,
    pki: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Trucd {
    /// Spawn `bin` with the hub identity of `pki`, data in `data`; returns
    /// it and the time from spawn to the first successful RPC.
    pub(crate) async fn start(bin: &Path, pki: &Path, data: &Path, log: &Path) -> anyhow::Result<(Trucd, Duration)> {
        let mut t = Trucd {
            bin: bin.to_path_buf(),
            pki: pki.to_path_buf(),
            data: data.to_path_buf(),
            log: log.to_path_buf(),
            port: procs::free_port()?,
            child: None,
        };
        let ready = t.spawn().await?;
        Ok((t, ready))
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    async fn spawn(&mut self) -> anyhow::Result<Duration> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let started = Instant::now();
        let child = Command::new(&self.bin)
            .arg("--identity")
            .arg(self.pki.join("hub"))
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--crl")
            .arg(self.pki.join("crl.pem"))
            .arg("--listen")
            .arg(self.addr())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        let operator = self.pki.join("operators/bench");
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!(
                    "trucd exited with {status} before it answered; its log ends:\n{}",
                    procs::tail(&self.log, 20)
                );
            }
            if let Ok(c) = Client::connect_dir(&self.addr(), &operator).await {
                if c.list_agencies().await.is_ok() {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!("trucd did not answer within 300 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stop gracefully (SIGTERM), then start again on the same data and
    /// port; returns how long the stop took (trucd checkpoints its store
    /// then) and the time from spawn to the first successful RPC.
    pub(crate) async fn restart(&mut self) -> anyhow::Result<(Duration, Duration)> {
        let stopped = self.stop();
        Ok((stopped, self.spawn().await?))
    }

    /// Kill (SIGKILL: a crash, no checkpoint), then start again; returns
    /// the time from spawn to the first successful RPC.
    pub(crate) async fn crash_restart(&mut self) -> anyhow::Result<Duration> {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn().await
    }

    /// SIGTERM and wait (SIGKILL after 60 s); how long it took.
    pub(crate) fn stop(&mut self) -> Duration {
        let started = Instant::now();
        if let Some(mut c) = self.child.take() {
            procs::terminate(&mut c, Duration::from_secs(60));
        }
        started.elapsed()
    }
}

impl Drop for Trucd {
    fn drop(&mut self) {
        self.stop();
    }
}
