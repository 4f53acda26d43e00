//! The hub's configuration: defaults, then a TOML file, then `TRUC_*`
//! environment variables, then command-line flags (applied by `trucd`).
//! Unknown keys are refused; every error names the key and the value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

mod federation;
pub mod witnessing;

pub use federation::{peer_url, FederationConfig, OriginConfig, PeerConfig, MAX_HOPS_LIMIT};
mod choice;

pub use choice::{ConsoleMode, LogFormat, StoreBackend, StoreEngine, TlsVersion, UnknownChoice};

/// Everything `trucd` can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Directory of the sled database.
    pub data_dir: PathBuf,
    /// The hub's identity directory (cert.pem, key.pem, ca.pem, receipts.key),
    /// as written by `truc pki init`.
    pub identity: PathBuf,
    /// Seconds to let requests finish on shutdown before dropping them.
    pub shutdown_grace_seconds: u64,
    /// Client certificate checks.
    pub tls: TlsConfig,
    /// Document signature checks.
    pub signing: SigningConfig,
    /// Size limits.
    pub limits: LimitsConfig,
    /// Delivery leases and retries.
    pub delivery: DeliveryConfig,
    /// Legal deadlines for urgent documents.
    pub deadlines: DeadlinesConfig,
    /// The working-day calendar: local time, working days and hours, public
    /// holidays; confirmation deadlines and the indicators' days.
    pub calendar: CalendarConfig,
    /// Logging.
    pub log: LogConfig,
    /// The admin HTTP listener (metrics, health, readiness).
    pub admin: AdminConfig,
    /// Where state is kept: embedded sled, or a NATS JetStream cluster.
    pub store: StoreConfig,
    /// The web console for operators and auditors (`crate::console`).
    pub console: crate::console::ConsoleConfig,
    /// Routing between hubs: this hub's own patterns, the default peer, the
    /// hop limit.
    pub federation: FederationConfig,
    /// The other hubs this hub trusts (`[[peers]]`), each with the CA that
    /// issued it and the agency codes it serves.
    pub peers: Vec<PeerConfig>,
    /// Hubs further away whose agencies' documents may reach this hub
    /// through peers (`[[origins]]`): their CAs and the codes they serve.
    pub origins: Vec<OriginConfig>,
    /// The clock of receipt times and deadlines. Not a configuration key:
    /// the system clock, unless a test sets a manual one.
    #[serde(skip)]
    pub clock: truc_core::Clock,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// "sled" (embedded, one directory, the default) or "jetstream"
    /// (several hubs share a replicated log on a NATS JetStream cluster;
    /// `data_dir` then holds this hub's local view of it).
    pub backend: StoreBackend,
    /// "fjall" (the default) or "sled": the engine of the state kept in
    /// `data_dir`, for a new store; an existing store keeps its own.
    pub engine: StoreEngine,
    /// NATS server URLs, e.g. `["tls://nats-0:4222", "tls://nats-1:4222"]`.
    pub nats_urls: Vec<String>,
    /// CA certificate (PEM) of the NATS servers; default the `ca.pem` of
    /// the hub's identity directory.
    pub nats_ca: Option<PathBuf>,
    /// Client certificate (PEM) for NATS; default the hub's `cert.pem`.
    pub nats_cert: Option<PathBuf>,
    /// Its key; default the hub's `key.pem`.
    pub nats_key: Option<PathBuf>,
    /// Connect without TLS (a lab only: the log would travel in clear).
    pub nats_plaintext: bool,
    /// Replicas of every stream and bucket: 1, 3 or 5.
    pub replicas: usize,
    /// Prefix of the stream, bucket and subject names.
    pub prefix: String,
    /// How long a dead hub's write lease blocks the others, ms.
    pub lease_ms: u64,
    /// Longest wait for one JetStream call, ms.
    pub timeout_ms: u64,
    /// How often sled writes its in-memory changes to its own files, ms.
    /// Durability does not depend on it (every batch is synced to the
    /// store's log before it is answered, and replayed after a crash);
    /// longer means less writing and a longer replay after a crash. Stores
    /// on fjall ignore it (each batch goes to the OS as it is applied).
    pub sled_flush_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sled,
            engine: StoreEngine::Fjall,
            nats_urls: Vec::new(),
            nats_ca: None,
            nats_cert: None,
            nats_key: None,
            nats_plaintext: false,
            replicas: 3,
            prefix: "truc".into(),
            lease_ms: 5000,
            timeout_ms: 10000,
            sled_flush_ms: 500,
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Plain-HTTP address for `/metrics`, `/healthz` and `/readyz`; none
    /// (the default) serves no admin endpoints. No TLS, no authentication:
    /// keep it on loopback or a private network.
    pub listen: Option<SocketAddr>,
}

/// `[tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// CA certificates (PEM) that client certificates must chain to; default
    /// the `ca.pem` of the hub's identity directory.
    pub client_ca: Vec<PathBuf>,
    /// CRL files (PEM); certificates listed there are refused for TLS and
    /// for signing. Unset: the `crl.pem` of the CA directory the identity
    /// sits in (`truc pki init` writes `PKI/crl.pem` beside `PKI/hub/`); if
    /// there is none the hub refuses to start. `"none"`: no revocation
    /// checks, on purpose (the hub warns at start and in `ops reload` and
    /// `/metrics`).
    pub crl: CrlSetting,
    /// How often to look for changed CRL, CA and hub certificate files, ms.
    pub reload_poll_ms: u64,
    /// Oldest TLS version accepted: "1.2" or "1.3".
    pub min_version: TlsVersion,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            client_ca: Vec::new(),
            crl: CrlSetting::Default,
            reload_poll_ms: 2000,
            min_version: TlsVersion::V1_2,
        }
    }
}

/// `tls.crl`: where revocations come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CrlSetting {
    /// Not set (or `[]`): `crl.pem` in the parent of the identity
    /// directory, which must exist ([`CrlSetting::default_path`]).
    #[default]
    Default,
    /// These files.
    Files(Vec<PathBuf>),
    /// `"none"`: no revocation checks, chosen explicitly.
    None,
}

impl CrlSetting {
    /// The setting for a list of paths as flags and variables give them:
    /// empty is the default, `["none"]` is none.
    pub fn from_paths(paths: Vec<PathBuf>) -> CrlSetting {
        match paths.as_slice() {
            [] => CrlSetting::Default,
            [one] if one.as_os_str() == "none" => CrlSetting::None,
            _ => CrlSetting::Files(paths),
        }
    }

    /// Where the CRL is looked for when `tls.crl` is not set: `crl.pem` in
    /// the CA directory that holds the identity directory (`pki/crl.pem`
    /// for `pki/hub`, and for `pki/hubs/<id>`, another hub of that CA).
    pub fn default_path(identity: &std::path::Path) -> PathBuf {
        match identity.parent() {
            Some(p) if p.file_name().is_some_and(|n| n == "hubs") => match p.parent() {
                Some(ca) if !ca.as_os_str().is_empty() => ca.join("crl.pem"),
                _ => PathBuf::from("crl.pem"),
            },
            Some(p) if !p.as_os_str().is_empty() => p.join("crl.pem"),
            _ => PathBuf::from("crl.pem"),
        }
    }
}

impl<'de> Deserialize<'de> for CrlSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CrlSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of CRL files, or \"none\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CrlSetting, E> {
                if v == "none" {
                    Ok(CrlSetting::None)
                } else {
                    Err(E::custom(format!(
                        "expected a list of CRL files, e.g. [{v:?}], or \"none\"; got {v:?}"
                    )))
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<CrlSetting, A::Error> {
                let mut paths = Vec::new();
                while let Some(p) = seq.next_element::<PathBuf>()? {
                    paths.push(p);
                }
                Ok(CrlSetting::from_paths(paths))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[signing]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// CA certificates (PEM) that document signers must chain to; default the
    /// axis CA (`ca.pem` of the hub's identity directory).
    pub trust_anchors: Vec<PathBuf>,
}

/// The largest `limits.max_inline_delivery`: 3.5 MiB, leaving room in
/// gRPC's default 4 MiB message for the header (64 KiB at most) and the
/// signer chain.
pub const MAX_INLINE_DELIVERY: u64 = 3584 << 10;

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest payload sent inline in one Send, bytes. Larger documents
    /// use the chunked Upload.
    pub max_inline_payload: u64,
    /// Largest payload a Delivery carries inline, bytes. A document sent
    /// inline with a larger payload is delivered with `payload_separate`
    /// and downloaded, so that clients with gRPC's default 4 MiB receive
    /// limit get it. At most [`MAX_INLINE_DELIVERY`].
    pub max_inline_delivery: u64,
    /// How far a document's `signed_at_unix_ms` may be ahead of the hub's
    /// clock, seconds; later is refused (INVALID_ARGUMENT).
    pub max_signed_at_ahead_seconds: u64,
    /// Largest document (payload) accepted by Upload, bytes.
    pub max_document_size: u64,
    /// Uploads left unfinished this long are deleted, hours.
    pub upload_expiry_hours: u64,
    /// A payload is kept this long after the last copy that needs it (queued,
    /// leased or dead-lettered) is acknowledged, withdrawn or purged, then
    /// deleted, seconds. 0: at the collector's next pass.
    pub payload_retention_seconds: u64,
    /// How often the payload collector runs, ms. 0: never (payloads are
    /// kept forever).
    pub payload_gc_interval_ms: u64,
    /// Most payload bytes waiting in one agency's outbox; a document that
    /// would exceed it is refused (RESOURCE_EXHAUSTED). 0: no limit.
    pub agency_quota_bytes: u64,
    /// Free disk space the hub keeps in reserve: a send or upload that would
    /// go below it is refused (RESOURCE_EXHAUSTED) before anything is
    /// written, and accepted again once space returns. 0: no check.
    pub min_free_disk_bytes: u64,
    /// How often the background scrub checks every stored body, payload
    /// file and receipt (and quarantines damaged documents), ms; counted
    /// from the end of the previous one. 0: never (`truc ops
    /// verify-store` still works).
    pub scrub_interval_ms: u64,
    /// Most bytes per second the background scrub reads. 0: no limit.
    pub scrub_bytes_per_second: u64,
    /// Connections open at once on the gRPC port (handshaking or not); one
    /// more is closed at once. Also held under half the process's open-file
    /// limit, so that strangers cannot take the descriptors the store needs.
    pub max_connections: u32,
    /// Connections open at once from one IP address.
    pub max_connections_per_address: u32,
    /// TLS handshakes in progress at once; a connection beyond them is
    /// closed at once, not queued.
    pub max_handshakes: u32,
    /// Time a client gets to finish its TLS handshake, ms.
    pub handshake_timeout_ms: u64,
    /// An authenticated connection with no request open for this long is
    /// closed, ms. A Receive stream is an open request: a quiet `inbox
    /// --follow` is not cut (HTTP/2 pings check that its peer is there).
    pub idle_connection_timeout_ms: u64,
    /// HTTP/2 streams (gRPC requests) one connection may have open at once
    /// (`SETTINGS_MAX_CONCURRENT_STREAMS`). A client holds its further
    /// requests until one ends (the SDK does); a stream opened beyond it
    /// is refused (`REFUSED_STREAM`, which the SDK retries). A Receive or
    /// Download stream counts while it runs.
    pub max_streams_per_connection: u32,
    /// Request bytes the hub holds for one connection at once: each
    /// request counts its first message's size (a Send: the whole signed
    /// document) from its arrival until it is answered. A request that
    /// would go beyond it is answered RESOURCE_EXHAUSTED with a retry
    /// pushback (`grpc-retry-pushback-ms`), without being read further;
    /// the SDK waits and sends it again. A connection holding nothing is
    /// always let in, so one message larger than this (up to the message
    /// limit) still goes through, alone.
    pub max_request_bytes_per_connection: u64,
    /// Request memory the hub holds at once over every connection: each
    /// request counts its first message plus 32 KiB (its HTTP/2 stream,
    /// buffers and task) from its arrival until it is answered. Beyond it,
    /// a request is pushed back like one over the per-connection limit,
    /// unless its connection holds nothing (each connection keeps moving).
    /// The per-connection limits alone let memory grow with the number of
    /// clients; this does not.
    pub max_request_memory: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_inline_payload: 16 * 1024 * 1024,
            max_inline_delivery: 3 * 1024 * 1024,
            max_signed_at_ahead_seconds: 300,
            max_document_size: 4 << 30,
            upload_expiry_hours: 24,
            payload_retention_seconds: 7 * 24 * 3600,
            payload_gc_interval_ms: 60_000,
            agency_quota_bytes: 100 << 30,
            min_free_disk_bytes: 256 << 20,
            // Daily, at 8 MiB/s: a 100 GiB store takes under 4 hours, and
            // live traffic keeps most of the disk.
            scrub_interval_ms: 24 * 3_600_000,
            scrub_bytes_per_second: 8 << 20,
            max_connections: 4096,
            max_connections_per_address: 512,
            max_handshakes: 256,
            handshake_timeout_ms: 10_000,
            idle_connection_timeout_ms: 300_000,
            // Throughput: a few connections need this many Sends in flight
            // to fill the writer's group commits (BENCHMARKS.md, session
            // 13: 4 agencies, 5,800 docs/s at 32, 6,350 at 64, 6,780 at
            // 128, 6,940 at 256). Memory is bounded by `max_request_memory`
            // over every connection, not by this (100 agencies, window 256:
            // peak RSS 195 MiB at 128, 189-198 MiB at 32).
            max_streams_per_connection: 128,
            max_request_bytes_per_connection: 64 << 20,
            // About 900 held 4 KiB Sends: more than a group commit takes
            // (1,024 requests of every kind), and a bound on what 100
            // agencies hold whatever the per-connection limits let each
            // (BENCHMARKS.md, issue 18: 190-198 MiB peak RSS).
            max_request_memory: 32 << 20,
        }
    }
}

/// `[delivery]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// How long a delivery stays leased to a receiver before it comes back, ms.
    pub lease_ms: u64,
    /// Leases that may run out before a copy goes to the dead-letter queue.
    pub max_attempts: u32,
    /// Credit of a Receive stream that asks for none.
    pub default_in_flight: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            lease_ms: 30_000,
            max_attempts: 5,
            default_in_flight: 32,
        }
    }
}

/// `[deadlines]`: how long after acceptance a copy must be delivered, by
/// priority (QĐ 28: urgent documents at once). When receipt must be
/// confirmed is the calendar's ([`CalendarConfig`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadlinesConfig {
    /// Hỏa tốc (3) and hỏa tốc hẹn giờ (4): delivery deadline, ms.
    pub express_ms: u64,
    /// Thượng khẩn (2): delivery deadline, ms.
    pub very_urgent_ms: u64,
    /// Khẩn (1): delivery deadline, ms.
    pub urgent_ms: u64,
    /// The old name of `calendar.utc_offset_minutes`, still read: a file
    /// that sets it keeps working. Setting both to different values is
    /// refused.
    pub utc_offset_minutes: Option<i32>,
}

impl Default for DeadlinesConfig {
    fn default() -> Self {
        Self {
            express_ms: 2 * 3_600_000,
            very_urgent_ms: 4 * 3_600_000,
            urgent_ms: 8 * 3_600_000,
            utc_offset_minutes: None,
        }
    }
}

impl DeadlinesConfig {
    /// The delivery deadline (0: none) of a document of `priority` accepted
    /// at `now`, Unix ms. (The confirmation deadline is the store's, from
    /// the calendar and the acceptance receipt's time.)
    pub fn delivery_deadline(&self, priority: i32, now: i64) -> i64 {
        let delivery = match priority {
            3 | 4 => self.express_ms,
            2 => self.very_urgent_ms,
            1 => self.urgent_ms,
            _ => 0,
        };
        if delivery == 0 {
            0
        } else {
            now + delivery as i64
        }
    }
}

/// `[calendar]`: the axis's working-day calendar (`truc_core::calendar`).
/// A copy received during working hours on a working day must be confirmed
/// (01 or 03) by the end of working hours of the next working day; one
/// received after hours, on a weekend day or a holiday counts from the next
/// working morning (NĐ 30/2020 Art. 21.2, 23.1: "the same day, at the
/// latest the next working day").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    /// Offset of the axis's local time from UTC, minutes (default 420,
    /// Vietnam). Also read from `deadlines.utc_offset_minutes`, its old
    /// name.
    pub utc_offset_minutes: Option<i32>,
    /// The public holidays, one `YYYY-MM-DD  name` (or
    /// `YYYY-MM-DD..YYYY-MM-DD  name`) a line; none by default. The
    /// operator keeps it: lunar holidays (Tết, Giỗ Tổ Hùng Vương) move every
    /// year. Example: `deploy/holidays-vn-2027.txt`.
    pub holidays_file: Option<PathBuf>,
    /// Start of working hours, local `HH:MM` (default "07:30").
    pub work_start: Option<String>,
    /// End of working hours, local `HH:MM` (default "17:00"): a copy that
    /// arrives later counts from the next working morning, and deadlines
    /// fall at this time.
    pub work_end: Option<String>,
    /// Weekday names that are not working days (default
    /// `["saturday", "sunday"]`).
    pub weekend: Option<Vec<String>>,
}

impl Config {
    /// The offset of the axis's local time from UTC, minutes:
    /// `calendar.utc_offset_minutes`, else its old name
    /// `deadlines.utc_offset_minutes`, else 420.
    pub fn utc_offset_minutes(&self) -> i32 {
        self.calendar
            .utc_offset_minutes
            .or(self.deadlines.utc_offset_minutes)
            .unwrap_or(truc_core::calendar::DEFAULT_UTC_OFFSET_MINUTES)
    }

    /// The calendar this configuration describes, its holidays file read.
    pub fn calendar(&self) -> Result<truc_core::Calendar, ConfigError> {
        use truc_core::Calendar;
        let c = &self.calendar;
        if let (Some(new), Some(old)) = (c.utc_offset_minutes, self.deadlines.utc_offset_minutes) {
            if new != old {
                return Err(ConfigError::Calendar {
                    key: "deadlines.utc_offset_minutes",
                    value: old.to_string(),
                    reason: format!(
                        "is the old name of calendar.utc_offset_minutes, which is {new}; set only \
                         calendar.utc_offset_minutes"
                    ),
                });
            }
        }
        let bad = |key: &'static str, value: String, e: truc_core::calendar::CalendarError| ConfigError::Calendar {
            key,
            value,
            reason: e.to_string(),
        };
        let offset = self.utc_offset_minutes();
        let key = if c.utc_offset_minutes.is_none() && self.deadlines.utc_offset_minutes.is_some() {
            "deadlines.utc_offset_minutes"
        } else {
            "calendar.utc_offset_minutes"
        };
        let mut cal = Calendar::at_offset(offset).map_err(|e| bad(key, offset.to_string(), e))?;
        if let Some(days) = &c.weekend {
            cal = cal
                .with_weekend(days)
                .map_err(|e| bad("calendar.weekend", format!("{days:?}"), e))?;
        }
        if c.work_start.is_some() || c.work_end.is_some() {
            let start = c.work_start.as_deref().unwrap_or("07:30");
            let end = c.work_end.as_deref().unwrap_or("17:00");
            cal = cal.with_hours(start, end).map_err(|e| {
                let key = match &e {
                    truc_core::calendar::CalendarError::Time(t) if t == end => "calendar.work_end",
                    _ => "calendar.work_start",
                };
                bad(key, format!("{start:?}..{end:?}"), e)
            })?;
        }
        if let Some(path) = &c.holidays_file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Holidays {
                path: path.clone(),
                reason: format!("unreadable: {e}"),
            })?;
            let holidays = truc_core::calendar::Holidays::parse(&text).map_err(|e| ConfigError::Holidays {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            cal = cal.with_holidays(holidays);
        }
        Ok(cal)
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `plain` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `truc_hub=debug`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Plain,
            level: "info".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            data_dir: PathBuf::from("truc-data"),
            identity: PathBuf::from("pki/hub"),
            shutdown_grace_seconds: 10,
            tls: TlsConfig::default(),
            signing: SigningConfig::default(),
            limits: LimitsConfig::default(),
            delivery: DeliveryConfig::default(),
            deadlines: DeadlinesConfig::default(),
            calendar: CalendarConfig::default(),
            clock: truc_core::Clock::system(),
            log: LogConfig::default(),
            admin: AdminConfig::default(),
            store: StoreConfig::default(),
            console: crate::console::ConsoleConfig::default(),
            federation: FederationConfig::default(),
            peers: Vec::new(),
            origins: Vec::new(),
        }
    }
}

/// A configuration that cannot be used. `trucd` exits with code 64.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("config file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The TOML (with the environment applied) does not fit the schema.
    #[error("{source_name}: {message}")]
    Invalid {
        /// The file, or "environment".
        source_name: String,
        /// The parser's message, which names the key.
        message: String,
    },
    /// A `[calendar]` key cannot be used.
    #[error("{key} = {value}: {reason}")]
    Calendar {
        /// Dotted key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The holidays file cannot be read or a line of it does not parse.
    #[error("calendar.holidays_file {path}: {reason}", path = path.display())]
    Holidays {
        /// The file.
        path: PathBuf,
        /// What is wrong (the line and the text for a parse error).
        reason: String,
    },
    /// A key has a value out of range.
    #[error("{key} = {value}{origin}: {reason}")]
    Value {
        /// Dotted key.
        key: &'static str,
        /// The value given.
        value: String,
        /// " (from TRUC_…)" when an environment variable set it.
        origin: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// A `[federation]` key or a `[[peers]]` entry cannot be used, or the
    /// routing table they make is ambiguous. (Both are set in the file
    /// only: peers and their routes go together.)
    #[error("{key}{}: {reason}", if value.is_empty() { String::new() } else { format!(" = {value}") })]
    Federation {
        /// Dotted key, with the peer's id (`peers[1].serves[0] (peer g12)`),
        /// or `routing` for the table as a whole.
        key: String,
        /// The value given (empty for the table as a whole).
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// Environment variables and the keys they set. Values are parsed as TOML
/// values when they can be (numbers, booleans, arrays), else taken as
/// strings. The hub's identity is `TRUC_HUB_IDENTITY`, so that it is not
/// confused with `TRUC_IDENTITY`, the CLI's.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("TRUC_LISTEN", "listen"),
    ("TRUC_DATA_DIR", "data_dir"),
    ("TRUC_HUB_IDENTITY", "identity"),
    ("TRUC_SHUTDOWN_GRACE_SECONDS", "shutdown_grace_seconds"),
    ("TRUC_TLS_CLIENT_CA", "tls.client_ca"),
    ("TRUC_TLS_CRL", "tls.crl"),
    ("TRUC_TLS_RELOAD_POLL_MS", "tls.reload_poll_ms"),
    ("TRUC_TLS_MIN_VERSION", "tls.min_version"),
    ("TRUC_SIGNING_TRUST_ANCHORS", "signing.trust_anchors"),
    ("TRUC_LIMITS_MAX_INLINE_PAYLOAD", "limits.max_inline_payload"),
    ("TRUC_LIMITS_MAX_INLINE_DELIVERY", "limits.max_inline_delivery"),
    (
        "TRUC_LIMITS_MAX_SIGNED_AT_AHEAD_SECONDS",
        "limits.max_signed_at_ahead_seconds",
    ),
    ("TRUC_LIMITS_MAX_DOCUMENT_SIZE", "limits.max_document_size"),
    ("TRUC_LIMITS_UPLOAD_EXPIRY_HOURS", "limits.upload_expiry_hours"),
    (
        "TRUC_LIMITS_PAYLOAD_RETENTION_SECONDS",
        "limits.payload_retention_seconds",
    ),
    ("TRUC_LIMITS_PAYLOAD_GC_INTERVAL_MS", "limits.payload_gc_interval_ms"),
    ("TRUC_LIMITS_AGENCY_QUOTA_BYTES", "limits.agency_quota_bytes"),
    ("TRUC_LIMITS_MIN_FREE_DISK_BYTES", "limits.min_free_disk_bytes"),
    ("TRUC_LIMITS_SCRUB_INTERVAL_MS", "limits.scrub_interval_ms"),
    ("TRUC_LIMITS_SCRUB_BYTES_PER_SECOND", "limits.scrub_bytes_per_second"),
    ("TRUC_LIMITS_MAX_CONNECTIONS", "limits.max_connections"),
    (
        "TRUC_LIMITS_MAX_CONNECTIONS_PER_ADDRESS",
        "limits.max_connections_per_address",
    ),
    ("TRUC_LIMITS_MAX_HANDSHAKES", "limits.max_handshakes"),
    ("TRUC_LIMITS_HANDSHAKE_TIMEOUT_MS", "limits.handshake_timeout_ms"),
    (
        "TRUC_LIMITS_IDLE_CONNECTION_TIMEOUT_MS",
        "limits.idle_connection_timeout_ms",
    ),
    (
        "TRUC_LIMITS_MAX_STREAMS_PER_CONNECTION",
        "limits.max_streams_per_connection",
    ),
    (
        "TRUC_LIMITS_MAX_REQUEST_BYTES_PER_CONNECTION",
        "limits.max_request_bytes_per_connection",
    ),
    ("TRUC_LIMITS_MAX_REQUEST_MEMORY", "limits.max_request_memory"),
    ("TRUC_DELIVERY_LEASE_MS", "delivery.lease_ms"),
    ("TRUC_DELIVERY_MAX_ATTEMPTS", "delivery.max_attempts"),
    ("TRUC_DELIVERY_DEFAULT_IN_FLIGHT", "delivery.default_in_flight"),
    ("TRUC_DEADLINES_EXPRESS_MS", "deadlines.express_ms"),
    ("TRUC_DEADLINES_VERY_URGENT_MS", "deadlines.very_urgent_ms"),
    ("TRUC_DEADLINES_URGENT_MS", "deadlines.urgent_ms"),
    ("TRUC_DEADLINES_UTC_OFFSET_MINUTES", "deadlines.utc_offset_minutes"),
    ("TRUC_CALENDAR_UTC_OFFSET_MINUTES", "calendar.utc_offset_minutes"),
    ("TRUC_CALENDAR_HOLIDAYS_FILE", "calendar.holidays_file"),
    ("TRUC_CALENDAR_WORK_START", "calendar.work_start"),
    ("TRUC_CALENDAR_WORK_END", "calendar.work_end"),
    ("TRUC_CALENDAR_WEEKEND", "calendar.weekend"),
    ("TRUC_LOG_FORMAT", "log.format"),
    ("TRUC_LOG_LEVEL", "log.level"),
    ("TRUC_ADMIN_LISTEN", "admin.listen"),
    ("TRUC_CONSOLE_LISTEN", "console.listen"),
    ("TRUC_CONSOLE_MODE", "console.mode"),
    ("TRUC_STORE_BACKEND", "store.backend"),
    ("TRUC_STORE_ENGINE", "store.engine"),
    ("TRUC_STORE_NATS_URLS", "store.nats_urls"),
    ("TRUC_STORE_NATS_CA", "store.nats_ca"),
    ("TRUC_STORE_NATS_CERT", "store.nats_cert"),
    ("TRUC_STORE_NATS_KEY", "store.nats_key"),
    ("TRUC_STORE_NATS_PLAINTEXT", "store.nats_plaintext"),
    ("TRUC_STORE_REPLICAS", "store.replicas"),
    ("TRUC_STORE_PREFIX", "store.prefix"),
    ("TRUC_STORE_LEASE_MS", "store.lease_ms"),
    ("TRUC_STORE_TIMEOUT_MS", "store.timeout_ms"),
    ("TRUC_STORE_SLED_FLUSH_MS", "store.sled_flush_ms"),
];

impl Config {
    /// Defaults, then the TOML text of `file` (if any), then the variables of
    /// `env` listed in [`ENV_KEYS`]; validated.
    pub fn load(file: Option<(&str, &str)>, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some((name, text)) => {
                // Parse the file alone first: its errors quote the line, so
                // they name the key.
                let invalid = |message: String| ConfigError::Invalid {
                    source_name: name.to_string(),
                    message,
                };
                toml::from_str::<Config>(text).map_err(|e| invalid(e.to_string().trim_end().to_string()))?;
                text.parse::<toml::Table>().map_err(|e| invalid(e.to_string()))?
            }
            None => toml::Table::new(),
        };
        let mut cfg: Option<Config> = None;
        for (var, key) in ENV_KEYS {
            if let Some(raw) = env.get(*var) {
                set_path(&mut table, key, env_value(key, raw));
                // One variable at a time, so an error names it.
                let c: Config = toml::Value::Table(table.clone())
                    .try_into()
                    .map_err(|e: toml::de::Error| ConfigError::Invalid {
                        source_name: format!("{var} ({key} = {raw:?})"),
                        message: e.message().to_string(),
                    })?;
                cfg = Some(c);
            }
        }
        let cfg = match cfg {
            Some(c) => c,
            None => toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    source_name: "config".into(),
                    message: e.message().to_string(),
                })?,
        };
        cfg.validate().map_err(|e| match e {
            ConfigError::Value { key, value, reason, .. } => {
                let var = ENV_KEYS
                    .iter()
                    .find(|(_, k)| *k == key)
                    .map(|(v, _)| *v)
                    .filter(|v| env.contains_key(*v));
                let origin = var.map(|v| format!(" (from {v})")).unwrap_or_default();
                ConfigError::Value {
                    key,
                    value,
                    origin,
                    reason,
                }
            }
            other => other,
        })?;
        Ok(cfg)
    }

    /// Check values the types allow but the hub cannot use.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let CrlSetting::Files(files) = &self.tls.crl {
            if files.iter().any(|p| p.as_os_str() == "none") {
                return Err(value(
                    "tls.crl",
                    &format!("{files:?}"),
                    "\"none\" turns revocation checks off and cannot be listed with CRL files",
                ));
            }
        }
        if self.tls.reload_poll_ms < 100 {
            return Err(value(
                "tls.reload_poll_ms",
                &self.tls.reload_poll_ms,
                "must be at least 100",
            ));
        }
        if self.delivery.lease_ms == 0 {
            return Err(value(
                "delivery.lease_ms",
                &self.delivery.lease_ms,
                "must be at least 1",
            ));
        }
        if self.delivery.max_attempts == 0 {
            return Err(value(
                "delivery.max_attempts",
                &self.delivery.max_attempts,
                "must be at least 1",
            ));
        }
        if !(1..=1024).contains(&self.delivery.default_in_flight) {
            return Err(value(
                "delivery.default_in_flight",
                &self.delivery.default_in_flight,
                "must be in 1..=1024",
            ));
        }
        if !(1..=1 << 30).contains(&self.limits.max_inline_payload) {
            return Err(value(
                "limits.max_inline_payload",
                &self.limits.max_inline_payload,
                "must be in 1..=1073741824",
            ));
        }
        if !(1..=MAX_INLINE_DELIVERY).contains(&self.limits.max_inline_delivery) {
            return Err(value(
                "limits.max_inline_delivery",
                &self.limits.max_inline_delivery,
                "must be in 1..=3670016 (3.5 MiB: a delivery, with its header and signer chain, must fit gRPC's \
                 default 4 MiB receive limit)",
            ));
        }
        if self.limits.max_signed_at_ahead_seconds > 366 * 86_400 {
            return Err(value(
                "limits.max_signed_at_ahead_seconds",
                &self.limits.max_signed_at_ahead_seconds,
                "must be at most 31622400 (a year)",
            ));
        }
        for (key, v) in [
            ("limits.max_connections", self.limits.max_connections),
            (
                "limits.max_connections_per_address",
                self.limits.max_connections_per_address,
            ),
            ("limits.max_handshakes", self.limits.max_handshakes),
            (
                "limits.max_streams_per_connection",
                self.limits.max_streams_per_connection,
            ),
        ] {
            if v == 0 {
                return Err(value(key, &v, "must be at least 1"));
            }
        }
        if self.limits.max_request_bytes_per_connection < 64 << 10 {
            return Err(value(
                "limits.max_request_bytes_per_connection",
                &self.limits.max_request_bytes_per_connection,
                "must be at least 65536 (64 KiB: room for a few small documents)",
            ));
        }
        if self.limits.max_request_memory < 1 << 20 {
            return Err(value(
                "limits.max_request_memory",
                &self.limits.max_request_memory,
                "must be at least 1048576 (1 MiB: room for a few dozen requests)",
            ));
        }
        for (key, v) in [
            ("limits.handshake_timeout_ms", self.limits.handshake_timeout_ms),
            (
                "limits.idle_connection_timeout_ms",
                self.limits.idle_connection_timeout_ms,
            ),
        ] {
            if v < 100 {
                return Err(value(key, &v, "must be at least 100"));
            }
        }
        // The calendar: offset, hours, weekend and the holidays file, which
        // is read here so that a bad line stops start-up and check-config.
        self.calendar()?;
        if let Some((key, v, reason)) = self.console.problem() {
            return Err(value(key, &v, reason));
        }
        if self.store.backend == StoreBackend::Jetstream && self.store.nats_urls.is_empty() {
            return Err(value(
                "store.nats_urls",
                &"[]",
                "must name at least one NATS server when store.backend = \"jetstream\"",
            ));
        }
        if !matches!(self.store.replicas, 1 | 3 | 5) {
            return Err(value("store.replicas", &self.store.replicas, "must be 1, 3 or 5"));
        }
        if self.store.prefix.is_empty()
            || !self
                .store
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(value(
                "store.prefix",
                &format!("{:?}", self.store.prefix),
                "must be letters, digits, '-' and '_'",
            ));
        }
        if self.store.lease_ms < 100 {
            return Err(value("store.lease_ms", &self.store.lease_ms, "must be at least 100"));
        }
        if self.store.timeout_ms < 100 {
            return Err(value(
                "store.timeout_ms",
                &self.store.timeout_ms,
                "must be at least 100",
            ));
        }
        self.routing_table(None)?;
        self.origin_patterns()?;
        witnessing::check(&self.federation, &self.peers)?;
        Ok(())
    }
}

impl Config {
    /// The routing table of `[federation]` and `[[peers]]`, every file and
    /// pattern checked; with this hub's id `own` (from its certificate),
    /// also that no peer has it.
    pub fn routing_table(
        &self,
        own: Option<&truc_core::routing::HubId>,
    ) -> Result<truc_core::routing::RoutingTable, ConfigError> {
        federation::routing_table(&self.federation, &self.peers, own)
    }

    /// `[[origins]]`, checked: each origin hub with the codes it serves.
    pub fn origin_patterns(
        &self,
    ) -> Result<Vec<(truc_core::routing::HubId, Vec<truc_core::routing::CodePattern>)>, ConfigError> {
        federation::origins(&self.origins, &self.peers)
    }
}

fn value(key: &'static str, v: &dyn std::fmt::Display, reason: &'static str) -> ConfigError {
    ConfigError::Value {
        key,
        value: v.to_string(),
        origin: String::new(),
        reason,
    }
}

fn env_value(key: &str, raw: &str) -> toml::Value {
    // Lists of paths may be given comma-separated.
    if matches!(
        key,
        "tls.client_ca" | "tls.crl" | "signing.trust_anchors" | "store.nats_urls" | "calendar.weekend"
    ) && !raw.trim_start().starts_with('[')
    {
        return toml::Value::Array(
            raw.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.into()))
                .collect(),
        );
    }
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

fn set_path(table: &mut toml::Table, dotted: &str, v: toml::Value) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts.pop().unwrap_or(dotted);
    let mut t = table;
    for p in parts {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        t = match entry {
            toml::Value::Table(inner) => inner,
            _ => return,
        };
    }
    t.insert(last.to_string(), v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn layers_apply_in_order() {
        let file = "listen = \"127.0.0.1:9000\"\n[delivery]\nmax_attempts = 3\nlease_ms = 1000\n";
        let cfg = Config::load(Some(("t.toml", file)), &env(&[("TRUC_DELIVERY_MAX_ATTEMPTS", "7")])).unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.delivery.max_attempts, 7);
        assert_eq!(cfg.delivery.lease_ms, 1000);
        assert_eq!(cfg.limits.max_inline_payload, 16 * 1024 * 1024);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = Config::load(Some(("t.toml", "[delivery]\nlease_secs = 3\n")), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lease_secs"), "{err}");
    }

    #[test]
    fn bad_values_name_key_and_value() {
        let err = Config::load(None, &env(&[("TRUC_LISTEN", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TRUC_LISTEN") && err.contains("listen"), "{err}");
        let err = Config::load(Some(("t.toml", "[log]\nformat = \"xml\"\n")), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("log.format") && err.contains("xml"), "{err}");
        let err = Config::load(None, &env(&[("TRUC_DELIVERY_MAX_ATTEMPTS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("delivery.max_attempts = 0 (from TRUC_DELIVERY_MAX_ATTEMPTS)"),
            "{err}"
        );
    }

    #[test]
    fn delivery_and_clock_limits() {
        let cfg = Config::load(None, &env(&[])).unwrap();
        assert_eq!(cfg.limits.max_inline_delivery, 3 << 20);
        assert_eq!(cfg.limits.max_signed_at_ahead_seconds, 300);
        // A delivery must fit a default client's 4 MiB receive limit.
        let err = Config::load(None, &env(&[("TRUC_LIMITS_MAX_INLINE_DELIVERY", "4194304")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("limits.max_inline_delivery = 4194304 (from TRUC_LIMITS_MAX_INLINE_DELIVERY)")
                && err.contains("4 MiB receive limit"),
            "{err}"
        );
        let cfg = Config::load(
            Some((
                "t.toml",
                "[limits]\nmax_inline_delivery = 1000\nmax_signed_at_ahead_seconds = 0\n",
            )),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            (cfg.limits.max_inline_delivery, cfg.limits.max_signed_at_ahead_seconds),
            (1000, 0)
        );
    }

    #[test]
    fn delivery_deadlines_by_priority() {
        let d = DeadlinesConfig::default();
        let now = 1_795_428_000_000;
        assert_eq!(d.delivery_deadline(0, now), 0);
        assert_eq!(d.delivery_deadline(1, now), now + 8 * 3_600_000);
        assert_eq!(d.delivery_deadline(3, now), now + 2 * 3_600_000);
    }

    #[test]
    fn calendar_keys_and_the_old_offset_name() {
        let cfg = Config::load(None, &env(&[])).unwrap();
        assert_eq!(cfg.utc_offset_minutes(), 420);
        assert_eq!(cfg.calendar().unwrap(), truc_core::Calendar::default());
        // The old key still works, from the file or the environment.
        let cfg = Config::load(Some(("t.toml", "[deadlines]\nutc_offset_minutes = 60\n")), &env(&[])).unwrap();
        assert_eq!(cfg.calendar().unwrap().utc_offset_minutes(), 60);
        let cfg = Config::load(None, &env(&[("TRUC_DEADLINES_UTC_OFFSET_MINUTES", "-300")])).unwrap();
        assert_eq!(cfg.utc_offset_minutes(), -300);
        // Both, the same: fine; different: refused, naming both.
        let both = "[deadlines]\nutc_offset_minutes = 420\n[calendar]\nutc_offset_minutes = 420\n";
        assert!(Config::load(Some(("t.toml", both)), &env(&[])).is_ok());
        let err = Config::load(Some(("t.toml", &both.replace("= 420\n[cal", "= 60\n[cal"))), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("deadlines.utc_offset_minutes = 60") && err.contains("calendar.utc_offset_minutes"),
            "{err}"
        );
        let err = Config::load(None, &env(&[("TRUC_CALENDAR_UTC_OFFSET_MINUTES", "900")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("calendar.utc_offset_minutes = 900"), "{err}");
        // Hours and weekend.
        let cfg = Config::load(
            None,
            &env(&[
                ("TRUC_CALENDAR_WEEKEND", "friday,saturday"),
                ("TRUC_CALENDAR_WORK_START", "08:00"),
            ]),
        )
        .unwrap();
        let cal = cfg.calendar().unwrap();
        assert!(
            cal.to_string().contains("08:00–17:00, weekend friday saturday"),
            "{cal}"
        );
        let err = Config::load(Some(("t.toml", "[calendar]\nwork_end = \"5pm\"\n")), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("calendar.work_end") && err.contains("5pm"), "{err}");
        let err = Config::load(Some(("t.toml", "[calendar]\nweekend = [\"caturday\"]\n")), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("calendar.weekend") && err.contains("caturday"), "{err}");
    }

    #[test]
    fn a_bad_holidays_file_names_the_file_and_the_line() {
        let dir = std::env::temp_dir().join(format!("truc-holidays-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.txt");
        std::fs::write(
            &good,
            "# ngày lễ\n2027-01-01  Tết Dương lịch\n2027-04-30 Ngày Chiến thắng\n",
        )
        .unwrap();
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, "2027-01-01  Tết Dương lịch\n2027-04-31  Ngày Chiến thắng\n").unwrap();
        let file = |p: &std::path::Path| format!("[calendar]\nholidays_file = {:?}\n", p.display().to_string());
        let cfg = Config::load(Some(("t.toml", &file(&good))), &env(&[])).unwrap();
        assert_eq!(cfg.calendar().unwrap().holidays().len(), 2);
        let err = Config::load(Some(("t.toml", &file(&bad))), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.txt") && err.contains("line 2") && err.contains("2027-04-31"),
            "{err}"
        );
        let err = Config::load(Some(("t.toml", &file(&dir.join("none.txt")))), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("none.txt") && err.contains("unreadable"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn path_lists_from_env() {
        let cfg = Config::load(None, &env(&[("TRUC_TLS_CRL", "a.pem,b.pem")])).unwrap();
        assert_eq!(
            cfg.tls.crl,
            CrlSetting::Files(vec![PathBuf::from("a.pem"), PathBuf::from("b.pem")])
        );
    }

    #[test]
    fn crl_is_the_default_files_or_explicitly_none() {
        assert_eq!(Config::load(None, &env(&[])).unwrap().tls.crl, CrlSetting::Default);
        let none = |file: Option<&str>, vars: &[(&str, &str)]| {
            Config::load(file.map(|f| ("t.toml", f)), &env(vars)).map(|c| c.tls.crl)
        };
        assert_eq!(none(Some("[tls]\ncrl = \"none\"\n"), &[]).unwrap(), CrlSetting::None);
        assert_eq!(none(None, &[("TRUC_TLS_CRL", "none")]).unwrap(), CrlSetting::None);
        assert_eq!(none(Some("[tls]\ncrl = []\n"), &[]).unwrap(), CrlSetting::Default);
        assert_eq!(
            none(Some("[tls]\ncrl = [\"pki/crl.pem\"]\n"), &[]).unwrap(),
            CrlSetting::Files(vec!["pki/crl.pem".into()])
        );
        let err = none(Some("[tls]\ncrl = \"pki/crl.pem\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("crl") && err.contains("\"none\""), "{err}");
        let err = none(None, &[("TRUC_TLS_CRL", "a.pem,none")]).unwrap_err().to_string();
        assert!(err.contains("tls.crl") && err.contains("TRUC_TLS_CRL"), "{err}");
        assert_eq!(
            CrlSetting::default_path(std::path::Path::new("/etc/truc/pki/hub")),
            PathBuf::from("/etc/truc/pki/crl.pem")
        );
        assert_eq!(
            CrlSetting::default_path(std::path::Path::new("hub")),
            PathBuf::from("crl.pem")
        );
        // Another hub of the same CA (`truc pki issue --hub h49`).
        assert_eq!(
            CrlSetting::default_path(std::path::Path::new("/etc/truc/pki/hubs/h49")),
            PathBuf::from("/etc/truc/pki/crl.pem")
        );
        assert_eq!(
            CrlSetting::default_path(std::path::Path::new("hubs/h49")),
            PathBuf::from("crl.pem")
        );
    }

    #[test]
    fn store_backend_defaults_to_sled_and_jetstream_needs_urls() {
        let cfg = Config::load(None, &env(&[])).unwrap();
        assert_eq!(cfg.store.backend, StoreBackend::Sled);
        assert_eq!(cfg.store.replicas, 3);
        let e = Config::load(None, &env(&[("TRUC_STORE_BACKEND", "jetstream")])).unwrap_err();
        assert!(e.to_string().contains("store.nats_urls"), "{e}");
        let cfg = Config::load(
            None,
            &env(&[
                ("TRUC_STORE_BACKEND", "jetstream"),
                ("TRUC_STORE_NATS_URLS", "tls://a:4222,tls://b:4222"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.store.nats_urls, vec!["tls://a:4222", "tls://b:4222"]);
        let e = Config::load(None, &env(&[("TRUC_STORE_BACKEND", "etcd")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("store.backend = \"etcd\": expected \"sled\" or \"jetstream\""),
            "{e}"
        );
        let e = Config::load(None, &env(&[("TRUC_STORE_REPLICAS", "2")])).unwrap_err();
        assert!(e.to_string().contains("store.replicas"), "{e}");
    }

    #[test]
    fn choices_are_read_once_from_file_or_env_and_refused_naming_the_words() {
        let choices = |c: Config| (c.tls.min_version, c.log.format, c.console.mode);
        let cfg = Config::load(None, &env(&[])).unwrap();
        assert_eq!(choices(cfg), (TlsVersion::V1_2, LogFormat::Plain, ConsoleMode::Mtls));
        let file = "[tls]\nmin_version = \"1.3\"\n[log]\nformat = \"json\"\n[console]\nmode = \"proxy\"\nproxy_peers = [\"127.0.0.1\"]\n";
        let cfg = Config::load(Some(("t.toml", file)), &env(&[])).unwrap();
        assert_eq!(choices(cfg), (TlsVersion::V1_3, LogFormat::Json, ConsoleMode::Proxy));
        // A version given as a number, as an environment variable gives it.
        let cfg = Config::load(None, &env(&[("TRUC_TLS_MIN_VERSION", "1.3")])).unwrap();
        assert_eq!(cfg.tls.min_version, TlsVersion::V1_3);
        let cfg = Config::load(Some(("t.toml", "[tls]\nmin_version = 1.3\n")), &env(&[])).unwrap();
        assert_eq!(cfg.tls.min_version, TlsVersion::V1_3);
        for (file, words) in [
            (
                "[tls]\nmin_version = 1.1\n",
                "tls.min_version = \"1.1\": expected \"1.2\" or \"1.3\"",
            ),
            (
                "[console]\nmode = \"open\"\n",
                "console.mode = \"open\": expected \"mtls\" or \"proxy\"",
            ),
            (
                "[log]\nformat = \"xml\"\n",
                "log.format = \"xml\": expected \"plain\" or \"json\"",
            ),
        ] {
            let err = Config::load(Some(("t.toml", file)), &env(&[])).unwrap_err().to_string();
            assert!(err.contains(words) && err.contains("t.toml"), "{err}");
        }
        let err = Config::load(None, &env(&[("TRUC_LOG_FORMAT", "xml")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TRUC_LOG_FORMAT") && err.contains("expected \"plain\" or \"json\""),
            "{err}"
        );
    }

    #[test]
    fn per_connection_limits_have_defaults_and_are_checked() {
        let cfg = Config::load(None, &env(&[])).unwrap();
        assert_eq!(cfg.limits.max_streams_per_connection, 128);
        assert_eq!(cfg.limits.max_request_bytes_per_connection, 64 << 20);
        let cfg = Config::load(
            Some(("t.toml", "[limits]\nmax_streams_per_connection = 8\n")),
            &env(&[("TRUC_LIMITS_MAX_REQUEST_BYTES_PER_CONNECTION", "1048576")]),
        )
        .unwrap();
        assert_eq!(cfg.limits.max_streams_per_connection, 8);
        assert_eq!(cfg.limits.max_request_bytes_per_connection, 1 << 20);
        let err = Config::load(None, &env(&[("TRUC_LIMITS_MAX_STREAMS_PER_CONNECTION", "0")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("limits.max_streams_per_connection = 0 (from TRUC_LIMITS_MAX_STREAMS_PER_CONNECTION)"),
            "{err}"
        );
        let err = Config::load(
            Some(("t.toml", "[limits]\nmax_request_bytes_per_connection = 1000\n")),
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("limits.max_request_bytes_per_connection = 1000"), "{err}");
    }

    #[test]
    fn admin_listen_is_off_by_default_and_set_by_file_or_env() {
        assert_eq!(Config::load(None, &env(&[])).unwrap().admin.listen, None);
        let cfg = Config::load(Some(("t.toml", "[admin]\nlisten = \"127.0.0.1:7444\"\n")), &env(&[])).unwrap();
        assert_eq!(cfg.admin.listen, Some("127.0.0.1:7444".parse().unwrap()));
        let cfg = Config::load(None, &env(&[("TRUC_ADMIN_LISTEN", "[::1]:9100")])).unwrap();
        assert_eq!(cfg.admin.listen, Some("[::1]:9100".parse().unwrap()));
        let err = Config::load(None, &env(&[("TRUC_ADMIN_LISTEN", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TRUC_ADMIN_LISTEN") && err.contains("admin.listen"),
            "{err}"
        );
    }
}
