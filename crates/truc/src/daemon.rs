//! `trucd`: load the configuration (defaults → TOML file → `TRUC_*`
//! environment → flags), set up logging, serve until SIGINT or SIGTERM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, ValueEnum};
use truc_hub::config::LogFormat;
use truc_hub::{Config, ConfigError, HubError};

/// Exit code for a configuration that cannot be used (sysexits EX_USAGE).
pub const EX_USAGE: u8 = 64;
/// Exit code for a damaged store (sysexits EX_DATAERR): `trucd repair`.
pub const EX_DATAERR: u8 = 65;

const LONG_ABOUT: &str = "\
The Truc hub: routes digitally signed documents between agencies over gRPC
with mutual TLS, keeps a durable outbox per agency (sled in --data-dir, or a
replicated log on NATS JetStream: store.backend) and
records signed receipts in a Merkle log.

Configuration is layered: built-in defaults, then the TOML file (--config or
TRUC_CONFIG), then environment variables, then flags. Unknown keys are
refused; an unusable configuration exits with code 64 naming the key.

Environment variables:
  TRUC_CONFIG                      TOML file
  TRUC_LISTEN                      listen            (127.0.0.1:7443)
  TRUC_DATA_DIR                    data_dir          (truc-data)
  TRUC_HUB_IDENTITY                identity          (pki/hub)
  TRUC_SHUTDOWN_GRACE_SECONDS      shutdown_grace_seconds (10)
  TRUC_TLS_CLIENT_CA               tls.client_ca     (identity's ca.pem)
  TRUC_TLS_CRL                     tls.crl           (PKI/crl.pem beside the identity; comma-separated; none: no checks)
  TRUC_TLS_RELOAD_POLL_MS          tls.reload_poll_ms (2000; CRL/cert files re-read on change)
  TRUC_TLS_MIN_VERSION             tls.min_version   (1.2 | 1.3)
  TRUC_SIGNING_TRUST_ANCHORS       signing.trust_anchors (identity's ca.pem)
  TRUC_LIMITS_MAX_INLINE_PAYLOAD   limits.max_inline_payload (16777216)
  TRUC_LIMITS_MAX_INLINE_DELIVERY  limits.max_inline_delivery (3145728; larger payloads are downloaded)
  TRUC_LIMITS_MAX_SIGNED_AT_AHEAD_SECONDS limits.max_signed_at_ahead_seconds (300)
  TRUC_LIMITS_MAX_DOCUMENT_SIZE    limits.max_document_size (4294967296)
  TRUC_LIMITS_UPLOAD_EXPIRY_HOURS  limits.upload_expiry_hours (24)
  TRUC_LIMITS_PAYLOAD_RETENTION_SECONDS limits.payload_retention_seconds (604800: 7 days after the last copy)
  TRUC_LIMITS_PAYLOAD_GC_INTERVAL_MS limits.payload_gc_interval_ms (60000; 0 keeps payloads forever)
  TRUC_LIMITS_AGENCY_QUOTA_BYTES   limits.agency_quota_bytes (107374182400)
  TRUC_LIMITS_MIN_FREE_DISK_BYTES  limits.min_free_disk_bytes (268435456)
  TRUC_LIMITS_SCRUB_INTERVAL_MS    limits.scrub_interval_ms (86400000; 0 = no background scrub)
  TRUC_LIMITS_SCRUB_BYTES_PER_SECOND limits.scrub_bytes_per_second (8388608; 0 = no limit)
  TRUC_LIMITS_MAX_CONNECTIONS      limits.max_connections (4096; at most half the open-file limit)
  TRUC_LIMITS_MAX_CONNECTIONS_PER_ADDRESS limits.max_connections_per_address (512)
  TRUC_LIMITS_MAX_HANDSHAKES       limits.max_handshakes (256 TLS handshakes at once)
  TRUC_LIMITS_HANDSHAKE_TIMEOUT_MS limits.handshake_timeout_ms (10000)
  TRUC_LIMITS_IDLE_CONNECTION_TIMEOUT_MS limits.idle_connection_timeout_ms (300000; an open stream is not idle)
  TRUC_LIMITS_MAX_STREAMS_PER_CONNECTION limits.max_streams_per_connection (128 HTTP/2 streams at once)
  TRUC_LIMITS_MAX_REQUEST_BYTES_PER_CONNECTION limits.max_request_bytes_per_connection (67108864; beyond: pushback)
  TRUC_DELIVERY_LEASE_MS           delivery.lease_ms (30000)
  TRUC_DELIVERY_MAX_ATTEMPTS       delivery.max_attempts (5)
  TRUC_DELIVERY_DEFAULT_IN_FLIGHT  delivery.default_in_flight (32)
  TRUC_DEADLINES_EXPRESS_MS        deadlines.express_ms (7200000: hỏa tốc, 2 h)
  TRUC_DEADLINES_VERY_URGENT_MS    deadlines.very_urgent_ms (14400000)
  TRUC_DEADLINES_URGENT_MS         deadlines.urgent_ms (28800000)
  TRUC_DEADLINES_UTC_OFFSET_MINUTES deadlines.utc_offset_minutes (old name of calendar.utc_offset_minutes)
  TRUC_CALENDAR_UTC_OFFSET_MINUTES calendar.utc_offset_minutes (420: local time, UTC+7)
  TRUC_CALENDAR_HOLIDAYS_FILE      calendar.holidays_file (none; YYYY-MM-DD  name a line)
  TRUC_CALENDAR_WORK_START         calendar.work_start (07:30)
  TRUC_CALENDAR_WORK_END           calendar.work_end (17:00)
  TRUC_CALENDAR_WEEKEND            calendar.weekend  (saturday,sunday)
  TRUC_LOG_FORMAT                  log.format        (plain | json)
  TRUC_LOG_LEVEL                   log.level         (info; RUST_LOG wins)
  TRUC_ADMIN_LISTEN                admin.listen      (none; HTTP /metrics /healthz /readyz /checkpoint /add-checkpoint)
  TRUC_STORE_BACKEND               store.backend     (sled | jetstream; docs/storage.md)
  TRUC_STORE_ENGINE                store.engine      (fjall | sled: a new store's engine; an existing one keeps its own)
  TRUC_STORE_NATS_URLS             store.nats_urls   (none; comma-separated tls://host:port)
  TRUC_STORE_NATS_CA               store.nats_ca     (identity's ca.pem)
  TRUC_STORE_NATS_CERT             store.nats_cert   (identity's cert.pem)
  TRUC_STORE_NATS_KEY              store.nats_key    (identity's key.pem)
  TRUC_STORE_NATS_PLAINTEXT        store.nats_plaintext (false)
  TRUC_STORE_REPLICAS              store.replicas    (3)
  TRUC_STORE_PREFIX                store.prefix      (truc)
  TRUC_STORE_LEASE_MS              store.lease_ms    (5000)
  TRUC_STORE_TIMEOUT_MS            store.timeout_ms  (10000)
  TRUC_STORE_SLED_FLUSH_MS         store.sled_flush_ms (500; sled's own flush; durability comes from the log)

Federation: [federation] (serves, default_peer, max_hops) and [[peers]] (id,
address, ca, crl, serves) are set in the configuration file only; a hub
certificate is accepted only from a configured peer. docs/federation.md.

Revocation: certificates listed in the CRL are refused (TLS and document
signers); the CRL is re-read when it changes. Without --crl the hub uses
crl.pem of the CA directory holding the identity (pki/crl.pem for pki/hub)
and refuses to start if there is none; --crl none runs without revocation
checks, on purpose, with a warning.

GETTING STARTED:
  truc pki init --dir pki
  trucd --identity pki/hub --data-dir truc-data --crl pki/crl.pem
See README.md for the walk-through.";

/// Flags of `trucd`.
#[derive(Debug, Parser)]
#[command(name = "trucd", version, about = "The Truc hub daemon", long_about = LONG_ABOUT)]
pub struct Args {
    /// TOML configuration file.
    #[arg(long, env = "TRUC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// gRPC listen address [config: listen].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for the sled database [config: data_dir].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The hub's identity directory from `truc pki init` [config: identity].
    #[arg(long, value_name = "DIR")]
    pub identity: Option<PathBuf>,
    /// CRL file (PEM); repeat for several. Default: crl.pem beside the
    /// identity directory (PKI/crl.pem). `none`: no revocation checks, on
    /// purpose [config: tls.crl].
    #[arg(long, value_name = "FILE")]
    pub crl: Vec<PathBuf>,
    /// Log format [config: log.format].
    #[arg(
        long,
        value_name = "FORMAT",
        value_parser = PossibleValuesParser::new(LogFormat::WORDS).try_map(|s| s.parse::<LogFormat>())
    )]
    pub log_format: Option<LogFormat>,
    /// Plain-HTTP address for Prometheus /metrics, /healthz, /readyz and
    /// the receipt log's /checkpoint (keep it private) [config:
    /// admin.listen].
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Instead of serving: a maintenance command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Which way `trucd migrate` moves the hub's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    /// From the sled store in data_dir into the empty JetStream log.
    ToJetstream,
    /// From the JetStream log into data_dir, a sled store.
    ToSled,
}

impl Direction {
    /// As the command line writes it: `to-jetstream`.
    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

/// Maintenance commands (the hub is not serving).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check the configuration, the identity and keys, the trust anchors
    /// and CRLs and the data directory as a start would, without serving or
    /// opening the store; prints what was checked. Exit 0 when the hub
    /// would start, 64 naming the problem otherwise (before a deploy, or
    /// in a unit's ExecStartPre).
    CheckConfig,
    /// Move the hub's state between sled and JetStream, offline, with
    /// receipts, tree heads and proofs unchanged. Uses the same
    /// configuration as serving: data_dir and the store section.
    Migrate {
        /// `to-jetstream`: the sled store in data_dir (no hub running on it)
        /// becomes the first entry of the empty log the store section names.
        /// `to-sled`: data_dir becomes a full, flushed copy of that log's
        /// state, served afterwards with store.backend = "sled" (stop every
        /// hub first).
        #[arg(value_enum)]
        direction: Direction,
    },
    /// Check the embedded store in data_dir as the hub does at start (the
    /// log against the database, and the last signed tree head), offline.
    /// A sound store is left as it is. A damaged one is described (file,
    /// offset, what would be lost) and left as it is, unless
    /// --accept-loss is given.
    ///
    /// Examples:
    ///   trucd repair --data-dir /var/lib/truc
    ///   trucd repair --data-dir /var/lib/truc --accept-loss
    #[command(verbatim_doc_comment)]
    Repair {
        /// Accept losing the damaged part: it is moved aside (into
        /// bodies/lost-TIME/, never deleted), the signed-head file is
        /// rewritten from what remains, and an operator receipt records
        /// what was dropped. Restore a backup instead if you have one.
        #[arg(long)]
        accept_loss: bool,
    },
}

fn config(args: &Args) -> Result<Config, ConfigError> {
    let env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("TRUC_")).collect();
    let text = match &args.config {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| ConfigError::Unreadable {
            path: p.clone(),
            reason: e.to_string(),
        })?),
        None => None,
    };
    let name = args
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut cfg = Config::load(text.as_deref().map(|t| (name.as_str(), t)), &env)?;
    if let Some(v) = args.listen {
        cfg.listen = v;
    }
    if let Some(v) = &args.data_dir {
        cfg.data_dir = v.clone();
    }
    if let Some(v) = &args.identity {
        cfg.identity = v.clone();
    }
    if !args.crl.is_empty() {
        cfg.tls.crl = truc_hub::CrlSetting::from_paths(args.crl.clone());
    }
    if let Some(v) = args.log_format {
        cfg.log.format = v;
    }
    if let Some(v) = args.admin_listen {
        cfg.admin.listen = Some(v);
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Entry point of `trucd`.
pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EX_USAGE);
        }
    };
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trucd: invalid configuration: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    crate::logging::init(&cfg.log.level, cfg.log.format == LogFormat::Json);
    // Blocking threads: a few serve any number of clients (none waits for
    // one), and each costs a stack and allocator caches.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(truc_hub::max_blocking_threads())
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trucd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &args.command {
        None => rt.block_on(run(cfg)),
        Some(Command::CheckConfig) => truc_hub::check_config(&cfg).map(|lines| {
            for l in lines {
                println!("{l}");
            }
            println!("ok: trucd would start with this configuration");
        }),
        Some(Command::Migrate { direction }) => rt.block_on(async {
            let m = match direction {
                Direction::ToJetstream => truc_hub::migrate_to_jetstream(&cfg).await?,
                Direction::ToSled => truc_hub::migrate_to_sled(&cfg).await?,
            };
            println!(
                "migrated {}: receipt log of {} entries, root {}{}",
                direction.name(),
                m.tree_size,
                m.root_hex,
                if m.keys > 0 {
                    format!(" ({} keys)", m.keys)
                } else {
                    String::new()
                }
            );
            Ok(())
        }),
        Some(Command::Repair { accept_loss }) => rt.block_on(async {
            let r = truc_hub::repair(&cfg, *accept_loss).await?;
            if r.dropped.is_empty() {
                println!(
                    "the store in {} is sound: receipt log of {} entries, root {}; nothing changed",
                    cfg.data_dir.display(),
                    r.tree_size,
                    r.root_hex
                );
            } else {
                println!("repaired {} with the loss accepted:", cfg.data_dir.display());
                for d in &r.dropped {
                    println!("  - {d}");
                }
                println!(
                    "receipt log now {} entries, root {}; an operator receipt records the repair",
                    r.tree_size, r.root_hex
                );
            }
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_damage() => {
            eprintln!("trucd: {}", truc_core::error_chain(&e));
            ExitCode::from(EX_DATAERR)
        }
        Err(e @ (HubError::Identity(_) | HubError::Config(_))) => {
            eprintln!("trucd: {}", truc_core::error_chain(&e));
            ExitCode::from(EX_USAGE)
        }
        Err(e) => {
            eprintln!("trucd: {}", truc_core::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: Config) -> Result<(), HubError> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| HubError::io(format!("cannot listen on {}", cfg.listen), e))?;
    truc_hub::serve(cfg, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
        _ = term.recv() => tracing::info!("SIGTERM"),
    }
}
