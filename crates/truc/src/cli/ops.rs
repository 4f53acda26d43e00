//! `truc ops`: operator commands.

use std::fmt::Write as _;

use clap::Subcommand;
use serde_json::json;
use truc_proto::names::{self, Wire};
use truc_proto::v1::{AgencyState, Priority, ReceiptEvent};

use super::output;
use super::Conn;

#[derive(Debug, Subcommand)]
pub(crate) enum OpsCommand {
    /// The agency directory: add, list, suspend, resume, retire.
    #[command(subcommand)]
    Agencies(AgenciesCommand),
    /// One row per agency: waiting, in flight, dead, bytes, oldest, overdue
    /// urgent, last connected; what needs attention first.
    Queues {
        /// Refresh in place every 2 seconds until interrupted; across a hub
        /// restart it waits and goes on (see --no-reconnect).
        #[arg(long)]
        watch: bool,
        /// With --watch: stop (exit 5) when the hub goes away instead of
        /// reconnecting with backoff.
        #[arg(long)]
        no_reconnect: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// The items waiting for one agency, in delivery order.
    Queue {
        /// Agency code (a registered one).
        #[arg(value_parser = super::agency_code)]
        code: String,
        /// Continue after this delivery id (from a previous page).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Items per page.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        conn: Conn,
    },
    /// Dead letters: list, redrive, purge.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Every event of one document across all recipients, in time order.
    Trace {
        /// The document id.
        document_id: String,
        /// Its sender; default: the code before the first comma of the id.
        #[arg(long, value_name = "CODE", value_parser = super::agency_code)]
        from: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// The hub's data disk: free space against the upload reserve, and what
    /// the store, large-document payloads and incomplete uploads take.
    Storage {
        #[command(flatten)]
        conn: Conn,
    },
    /// Check every stored document body, payload file and receipt against
    /// its checksum and digests now, and quarantine damaged documents (their
    /// queued copies are dead-lettered as corrupt, their senders asked to
    /// send them again). Exits non-zero when anything is damaged. The hub
    /// also does this by itself every limits.scrub_interval_ms.
    VerifyStore {
        /// Read at most this many bytes per second (0: as fast as the hub
        /// can), to spare the disk for live traffic.
        #[arg(long, value_name = "BYTES", default_value_t = 0)]
        rate: u64,
        #[command(flatten)]
        conn: Conn,
    },
    /// The axis's indicators for a period, per agency and day (or month)
    /// in the axis's local time, with the hub's totals: sent, received,
    /// refused (02), confirmed (01/03) on time and late, dead-lettered,
    /// bytes. Operators and auditors see every agency.
    ///
    /// Example: truc ops stats --from 2026-11-01 --to 2026-11-30 --by month -o csv
    Stats {
        #[command(flatten)]
        args: super::stats::StatsArgs,
        /// One agency only.
        #[arg(long, value_name = "CODE", default_value = "")]
        agency: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The hub at a glance: version, uptime, store, listeners, its
    /// certificate's expiry, the CRL state, agencies and the receipt log.
    Status {
        #[command(flatten)]
        conn: Conn,
    },
    /// The client connections the hub holds now: who (the principal's URN),
    /// from where, since when, requests open (a Receive stream counts while
    /// it runs) and made, TLS version. Yours is marked. Connections in
    /// their TLS handshake or refused are counted in /metrics only.
    ///
    /// -o json prints an array, -o csv a row per connection, with the keys
    /// principal (the whole URN), peer_address, connected_at_unix_ms,
    /// open_requests, requests_total, tls_version, cipher_suite, caller,
    /// request_bytes_held, request_bytes_held_peak, requests_held_peak,
    /// requests_pushed_back (what the hub holds for the connection against
    /// limits.max_request_bytes_per_connection and
    /// limits.max_streams_per_connection).
    Connections {
        #[command(flatten)]
        conn: Conn,
    },
    /// The peer hubs this hub forwards to (federation), one row per
    /// [[peers]] entry: the link's state (connected, unreachable, paused,
    /// idle: nothing routed there since the hub started) and since when,
    /// what waits in the peer's outbox (items: documents and receipts to
    /// report back; payload bytes; the oldest item's age), items forwarded
    /// and refused since the hub started, dead letters, the last error. The
    /// same figures are the truc_peer_* gauges of /metrics.
    ///
    /// -o json prints an array, -o csv a row per peer, with the keys id,
    /// address, state, state_since_unix_ms, queued, bytes, oldest_age_ms,
    /// forwarded, refused, dead_letters, last_error, serves, default_route,
    /// paused_by, pause_reason, unreachable.
    ///
    /// Example: truc ops peers --hub h49.truc.gov.vn:7443 --identity pki/operators/ops
    Peers {
        #[command(flatten)]
        conn: Conn,
    },
    /// Pause or resume forwarding to one peer hub.
    #[command(subcommand)]
    Peer(super::peers::PeerCommand),
    /// Re-read CRLs and the hub certificate now (the hub also does this by
    /// itself when the files change).
    Reload {
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// Dead letters of one agency.
    List {
        /// Agency code (a registered one).
        #[arg(value_parser = super::agency_code)]
        code: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Put dead letters back in the outbox (one by id, or all of an agency).
    Redrive {
        /// Delivery ids or handles (as `dlq list` shows them); none means
        /// all of the agency's.
        #[arg(value_parser = super::delivery_id, value_name = "DELIVERY")]
        ids: Vec<u64>,
        /// The agency whose dead letters these are.
        #[arg(long, value_name = "CODE", value_parser = super::agency_code)]
        agency: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete dead letters for good (their receipts stay).
    Purge {
        /// Delivery ids or handles (as `dlq list` shows them); none means
        /// all of the agency's.
        #[arg(value_parser = super::delivery_id, value_name = "DELIVERY")]
        ids: Vec<u64>,
        /// The agency whose dead letters these are.
        #[arg(long, value_name = "CODE", value_parser = super::agency_code)]
        agency: String,
        /// Confirm: purging cannot be undone.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgenciesCommand {
    /// Register an agency (or rename a registered one).
    Add {
        /// Agency code: QCVN 102 (000.00.00.G22) or QĐ 20 (G09.01) form.
        #[arg(value_parser = super::agency_code)]
        code: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Register a bare level-1 code such as G22 (QĐ 20 form, the
        /// ministry or province itself). Without it such a code is refused,
        /// as it is most often a QCVN 102 code typed short (000.00.00.G22).
        #[arg(long)]
        allow_short: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// List registered agencies with their state and queue depth.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Suspend an agency: it may neither send nor be addressed; its queue is kept.
    Suspend {
        /// Agency code.
        #[arg(value_parser = super::agency_code)]
        code: String,
        /// Why (recorded in the receipt).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Make a suspended agency active again.
    Resume {
        /// Agency code.
        #[arg(value_parser = super::agency_code)]
        code: String,
        /// Why (recorded in the receipt).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Retire an agency for good; its queue and future documents go to the successor.
    Retire {
        /// Agency code.
        #[arg(value_parser = super::agency_code)]
        code: String,
        /// The agency that takes over (registered and active).
        #[arg(long, value_name = "CODE", value_parser = super::agency_code)]
        successor: String,
        /// Why (recorded in the receipt), e.g. the merger decision.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove an agency registered by mistake (a typo) that never had
    /// traffic; one that sent or received anything is refused: retire it.
    Remove {
        /// Agency code.
        #[arg(value_parser = super::agency_code)]
        code: String,
        /// Why (recorded in the receipt).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// An agency's state, by name.
fn state(s: i32) -> Wire<AgencyState> {
    Wire::from(s)
}

/// An agency after a change: its JSON (one CSV row), or `text`.
fn agency_line(a: &truc_proto::v1::Agency, conn: &Conn, text: &str) {
    conn.out.object(
        json!({"code": a.code, "name": a.name, "state": state(a.state).to_string(), "successor": a.successor}),
        || format!("{text}\n"),
    );
}

/// An age for people: `45s`, `12m`, `3h`, `2d` (`-` for 0).
pub(crate) fn age(ms: i64) -> String {
    match ms / 1000 {
        0 if ms == 0 => "-".into(),
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn queue_json(r: &truc_proto::v1::QueueSummary) -> serde_json::Value {
    json!({
        "agency": r.agency, "name": r.name, "state": state(r.state).to_string(), "queued": r.queued,
        "in_flight": r.in_flight, "dead_letters": r.dead_letters, "bytes": r.bytes,
        "oldest_age_ms": r.oldest_age_ms, "overdue_urgent": r.overdue_urgent,
        "past_due": r.past_due, "past_confirmation": r.past_confirmation,
        "connected_streams": r.connected_streams, "last_connected_unix_ms": r.last_connected_unix_ms,
    })
}

fn queues_json(q: &[truc_proto::v1::QueueSummary]) -> serde_json::Value {
    serde_json::Value::Array(q.iter().map(queue_json).collect())
}

fn queues_table(q: &[truc_proto::v1::QueueSummary], headers: bool) -> String {
    let mut out = String::new();
    if headers {
        out = format!(
            "{:<20} {:<9} {:>7} {:>8} {:>5} {:>10} {:>7} {:>7} {:>8} {:>11}  {:<20}\n",
            "AGENCY",
            "STATE",
            "QUEUED",
            "INFLIGHT",
            "DEAD",
            "BYTES",
            "OLDEST",
            "OVERDUE",
            "PAST-DUE",
            "UNCONFIRMED",
            "CONNECTED"
        );
    }
    let now = truc_core::now_unix_ms();
    for r in q {
        let connected = match (r.connected_streams, r.last_connected_unix_ms) {
            (1, _) => "now".into(),
            (n, _) if n > 0 => format!("now ({n} streams)"),
            (_, 0) => "never".into(),
            (_, t) => format!("{} ago", age(now - t)),
        };
        out.push_str(&format!(
            "{:<20} {:<9} {:>7} {:>8} {:>5} {:>10} {:>7} {:>7} {:>8} {:>11}  {}\n",
            r.agency,
            state(r.state),
            r.queued,
            r.in_flight,
            r.dead_letters,
            output::human_bytes(r.bytes as f64),
            age(r.oldest_age_ms),
            r.overdue_urgent,
            r.past_due,
            r.past_confirmation,
            connected
        ));
    }
    out
}

pub(crate) async fn run(cmd: OpsCommand) -> anyhow::Result<()> {
    match cmd {
        OpsCommand::Agencies(AgenciesCommand::Suspend { code, reason, conn }) => {
            let a = conn
                .client()
                .await?
                .set_agency_state(&code, AgencyState::Suspended, &reason)
                .await?;
            agency_line(&a, &conn, &format!("{} is {}", a.code, state(a.state)));
        }
        OpsCommand::Agencies(AgenciesCommand::Resume { code, reason, conn }) => {
            let a = conn
                .client()
                .await?
                .set_agency_state(&code, AgencyState::Active, &reason)
                .await?;
            agency_line(&a, &conn, &format!("{} is {}", a.code, state(a.state)));
        }
        OpsCommand::Agencies(AgenciesCommand::Retire {
            code,
            successor,
            reason,
            conn,
        }) => {
            let a = conn.client().await?.retire_agency(&code, &successor, &reason).await?;
            agency_line(
                &a,
                &conn,
                &format!("{} is retired; its documents go to {}", a.code, a.successor),
            );
        }
        OpsCommand::Agencies(AgenciesCommand::Remove { code, reason, conn }) => {
            let a = conn.client().await?.remove_agency(&code, &reason).await?;
            conn.out
                .object(json!({"code": a.code, "name": a.name, "removed": true}), || {
                    format!("removed {} {:?} (recorded in the receipt log)\n", a.code, a.name)
                });
        }
        OpsCommand::Queues {
            watch,
            no_reconnect,
            conn,
        } => {
            if watch && conn.format() == output::Format::Json {
                return Err(
                    super::errors::Problem::usage("--watch is a stream: it prints JSON Lines")
                        .hint("use --jsonl (the table as one JSON array per refresh, a line each)")
                        .into(),
                );
            }
            if watch && conn.format() == output::Format::Csv {
                return Err(super::errors::Problem::usage(
                    "--watch redraws a table or prints JSON Lines (-o table|jsonl); -o csv is a snapshot",
                )
                .hint("drop --watch for one CSV snapshot, or use --watch -o jsonl")
                .into());
            }
            let client = conn.client().await?;
            let policy = super::reconnect_policy(no_reconnect || !watch);
            loop {
                let q = truc_client::reconnect::retry(&policy, &super::print_notice, || client.list_queues()).await?;
                if watch && conn.is_json() {
                    output::json_line(queues_json(&q));
                } else if watch {
                    // Clear the screen and redraw in place.
                    print!("\x1b[2J\x1b[H{}", queues_table(&q, conn.out.headers()));
                    println!("{}  (Ctrl-C to stop)", output::time(truc_core::now_unix_ms()));
                } else {
                    conn.out
                        .list(&q, queue_json, serde_json::Value::Array, |h| queues_table(&q, h));
                }
                if !watch {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
        OpsCommand::Queue {
            code,
            after,
            limit,
            conn,
        } => {
            let page = conn.client().await?.list_queue(&code, after, limit).await?;
            let now = truc_core::now_unix_ms();
            let row = |i: &truc_proto::v1::QueueItem| {
                json!({
                    "delivery_id": i.delivery_id, "handle": output::handle(i.delivery_id),
                    "hub_document_id": i.hub_document_id, "from": i.from,
                    "document_id": i.document_id, "priority": i.priority,
                    "enqueued_at_unix_ms": i.enqueued_at_unix_ms, "attempts": i.attempts,
                    "status_notice": i.status_notice, "in_flight": i.in_flight, "bytes": i.bytes,
                })
            };
            let table = |headers: bool| {
                let mut out = String::new();
                if headers {
                    out += &format!(
                        "{:<10} {:<20} {:<16} {:>7} {:>8}  {:<6} DOCUMENT\n",
                        "DELIVERY", "FROM", "PRIORITY", "AGE", "ATTEMPTS", "KIND"
                    );
                }
                for i in &page.items {
                    out += &format!(
                        "{:<10} {:<20} {:<16} {:>7} {:>8}  {:<6} {}{}\n",
                        output::handle(i.delivery_id),
                        i.from,
                        Wire::<Priority>::from(i.priority),
                        age(now - i.enqueued_at_unix_ms),
                        i.attempts,
                        if i.status_notice { "status" } else { "doc" },
                        i.document_id,
                        if i.in_flight { "  (in flight)" } else { "" }
                    );
                }
                if headers && page.next_after_delivery_id > 0 {
                    out += &format!("more: --after {}\n", page.next_after_delivery_id);
                }
                out
            };
            conn.out.list(
                &page.items,
                row,
                |items| json!({"items": items, "next_after": page.next_after_delivery_id}),
                table,
            );
        }
        OpsCommand::Dlq(DlqCommand::List { code, conn }) => {
            let dead = conn.client().await?.dead_letters(&code).await?;
            let row = |d: &truc_proto::v1::DeadLetter| {
                json!({
                    "delivery_id": d.delivery_id, "handle": output::handle(d.delivery_id),
                    "hub_document_id": d.hub_document_id, "from": d.from, "document_id": d.document_id,
                    "attempts": d.attempts, "reason": names::dead_letter_reason(d.reason).to_string(),
                })
            };
            let table = |headers: bool| {
                let mut out = String::new();
                if headers {
                    out += &format!(
                        "{:<10} {:<20} {:>8}  {:<8}  DOCUMENT\n",
                        "DELIVERY", "FROM", "ATTEMPTS", "REASON"
                    );
                }
                for d in &dead {
                    out += &format!(
                        "{:<10} {:<20} {:>8}  {:<8}  {}\n",
                        output::handle(d.delivery_id),
                        d.from,
                        d.attempts,
                        names::dead_letter_reason(d.reason),
                        d.document_id
                    );
                }
                out
            };
            conn.out.list(&dead, row, serde_json::Value::Array, table);
        }
        OpsCommand::Dlq(DlqCommand::Redrive { ids, agency, conn }) => {
            let n = conn.client().await?.redrive(&agency, ids).await?;
            conn.out.object(json!({"agency": agency, "redriven": n}), || {
                format!("{n} dead letter(s) of {agency} back in the outbox\n")
            });
        }
        OpsCommand::Dlq(DlqCommand::Purge { ids, agency, yes, conn }) => {
            if !yes {
                return Err(super::errors::Problem::usage("purging deletes dead letters for good")
                    .hint("add --yes to confirm")
                    .into());
            }
            let n = conn.client().await?.purge(&agency, ids).await?;
            conn.out.object(json!({"agency": agency, "purged": n}), || {
                format!("{n} dead letter(s) of {agency} purged (their receipts stay)\n")
            });
        }
        OpsCommand::Trace {
            document_id,
            from,
            conn,
        } => {
            let from = match from {
                Some(f) => f,
                None => super::lifecycle::sender_of(&document_id)
                    .ok_or_else(|| anyhow::anyhow!("cannot tell the sender from {document_id:?}; pass --from CODE"))?
                    .to_string(),
            };
            trace(&conn, &from, &document_id).await?;
        }
        OpsCommand::Storage { conn } => {
            let s = conn.client().await?.storage().await?;
            conn.out.object(
                json!({
                    "disk_free_bytes": s.disk_free_bytes, "disk_reserve_bytes": s.disk_reserve_bytes,
                    "store_bytes": s.store_bytes, "payloads": s.payloads, "payload_bytes": s.payload_bytes,
                    "uploads_incomplete": s.uploads_incomplete, "upload_part_bytes": s.upload_part_bytes,
                }),
                || {
                    let mut t = String::new();
                    let h = |b: u64| output::human_bytes(b as f64);
                    let free = s.disk_free_bytes.map_or("unknown".to_string(), h);
                    let reserve = match s.disk_reserve_bytes {
                        0 => "no reserve".to_string(),
                        r => format!("{} kept free (uploads that would go below are refused)", h(r)),
                    };
                    let _ = writeln!(t, "data disk           {free} free; {reserve}");
                    let _ = writeln!(t, "store               {} (database and log)", h(s.store_bytes));
                    let _ = writeln!(t, "payload files       {} ({})", s.payloads, h(s.payload_bytes));
                    let _ = writeln!(
                        t,
                        "incomplete uploads  {} ({})",
                        s.uploads_incomplete,
                        h(s.upload_part_bytes)
                    );
                    t
                },
            );
        }
        OpsCommand::VerifyStore { rate, conn } => {
            let r = conn.client().await?.verify_store(rate).await?;
            verify_store_report(&r, &conn);
            if !r.damaged.is_empty() {
                anyhow::bail!(
                    "the store is damaged: {} item(s); damaged documents were quarantined and their senders asked \
                     to send them again (docs/storage.md, \"Scrub\")",
                    r.damaged.len()
                );
            }
        }
        OpsCommand::Stats { args, agency, conn } => super::stats::run(args, &agency, conn).await?,
        OpsCommand::Status { conn } => {
            let s = conn.client().await?.status().await?;
            let now = truc_core::now_unix_ms();
            conn.out.object(
                json!({
                    "version": s.version, "started_at_unix_ms": s.started_at_unix_ms,
                    "uptime_ms": now - s.started_at_unix_ms, "store_backend": s.store_backend,
                    "store_problem": s.store_problem, "listen": s.listen, "admin_listen": s.admin_listen,
                    "hub_principal": s.hub_principal,
                    "hub_certificate_not_after_unix_ms": s.hub_certificate_not_after_unix_ms,
                    "crl_checked": s.crl_checked, "revoked_certificates": s.revoked_certificates,
                    "crl_files": s.crl_files, "agencies": s.agencies, "tree_size": s.tree_size,
                }),
                || {
                    let mut t = String::new();
                    let cert_left = s.hub_certificate_not_after_unix_ms - now;
                    let _ = writeln!(t, "hub          {} (trucd {})", s.hub_principal, s.version);
                    let _ = writeln!(
                        t,
                        "up           {} (since {})",
                        age(now - s.started_at_unix_ms),
                        output::time(s.started_at_unix_ms)
                    );
                    let _ = writeln!(
                        t,
                        "store        {}{}",
                        s.store_backend,
                        if s.store_problem.is_empty() {
                            ", committing".to_string()
                        } else {
                            format!(", NOT committing: {}", s.store_problem)
                        }
                    );
                    let _ = writeln!(
                        t,
                        "listeners    gRPC {}; admin {}",
                        s.listen,
                        if s.admin_listen.is_empty() {
                            "off"
                        } else {
                            &s.admin_listen
                        }
                    );
                    let _ = writeln!(
                        t,
                        "certificate  expires {} ({}{})",
                        output::time(s.hub_certificate_not_after_unix_ms),
                        if cert_left < 0 { "EXPIRED" } else { "in " },
                        if cert_left < 0 { String::new() } else { age(cert_left) }
                    );
                    if s.crl_checked {
                        let _ = writeln!(
                            t,
                            "revocation   {} revoked certificate(s) in {}",
                            s.revoked_certificates,
                            s.crl_files.join(", ")
                        );
                    } else {
                        let _ = writeln!(t, "revocation   NOT CHECKED (tls.crl = \"none\")");
                    }
                    let _ = writeln!(
                        t,
                        "directory    {} agencies; receipt log of {} entries",
                        s.agencies, s.tree_size
                    );
                    t
                },
            );
        }
        OpsCommand::Reload { conn } => {
            let r = conn.client().await?.reload().await?;
            conn.out.object(
                json!({
                    "no_crl": r.no_crl, "revoked_certificates": r.revoked_certificates,
                    "crl_files": r.crl_files, "streams_ended": r.streams_ended,
                }),
                || {
                    let mut t = String::new();
                    if r.no_crl {
                        let _ = writeln!(t,
                    "reloaded: no CRL configured (tls.crl = \"none\"): revocations are NOT checked; {} streams ended",
                    r.streams_ended
                );
                    } else {
                        let _ = writeln!(
                            t,
                            "reloaded: {} revoked certificates in the CRLs ({}), {} streams ended",
                            r.revoked_certificates,
                            r.crl_files.join(", "),
                            r.streams_ended
                        );
                    }
                    t
                },
            );
        }
        OpsCommand::Agencies(AgenciesCommand::Add {
            code,
            name,
            allow_short,
            conn,
        }) => {
            let parsed = truc_core::AgencyCode::parse(&code)?;
            if parsed.is_bare_level1() && !allow_short {
                return Err(super::errors::Problem::usage(format!(
                    "{code} is a bare level-1 code: in QĐ 20 form it is the ministry or province itself, \
                     in QCVN 102 form the same agency is 000.00.00.{code}"
                ))
                .hint(format!(
                    "did you mean 000.00.00.{code}? To register {code} itself, add --allow-short"
                ))
                .into());
            }
            let a = conn.client().await?.add_agency(&code, &name).await?;
            conn.out.object(
                json!({"code": a.code, "name": a.name, "state": state(a.state).to_string()}),
                || format!("registered {} {:?} ({})\n", a.code, a.name, state(a.state)),
            );
        }
        OpsCommand::Agencies(AgenciesCommand::List { conn }) => {
            let list = conn.client().await?.list_agencies().await?;
            let row = |a: &truc_proto::v1::Agency| {
                json!({
                    "code": a.code, "name": a.name, "state": state(a.state).to_string(),
                    "registered_at_unix_ms": a.registered_at_unix_ms, "queued": a.queued,
                    "successor": a.successor,
                    "certificate_not_after_unix_ms": a.certificate_not_after_unix_ms,
                })
            };
            let table = |headers: bool| {
                let mut t = String::new();
                if headers {
                    let _ = writeln!(
                        t,
                        "{:<20} {:<10} {:>7}  {:<24} {:<16} NAME",
                        "CODE", "STATE", "QUEUED", "REGISTERED", "CERT EXPIRES"
                    );
                }
                let now = truc_core::now_unix_ms();
                for a in &list {
                    // As seen on its last connection since the hub started.
                    let expires = match a.certificate_not_after_unix_ms {
                        0 => "-".to_string(),
                        t if t < now => "EXPIRED".to_string(),
                        t if t - now < 30 * 86_400_000 => format!("in {} SOON", age(t - now)),
                        t => format!("in {}", age(t - now)),
                    };
                    let _ = writeln!(
                        t,
                        "{:<20} {:<10} {:>7}  {:<24} {:<16} {}",
                        a.code,
                        state(a.state),
                        a.queued,
                        output::time(a.registered_at_unix_ms),
                        expires,
                        a.name
                    );
                }
                t
            };
            conn.out.list(&list, row, serde_json::Value::Array, table);
        }
        OpsCommand::Connections { conn } => super::connections::run(&conn).await?,
        OpsCommand::Peers { conn } => super::peers::list(&conn).await?,
        OpsCommand::Peer(cmd) => super::peers::run(cmd).await?,
    }
    Ok(())
}

/// Every receipt of one document, in log (= time) order.
/// The receipts of other hubs nested in `r` (`peer_receipt`), outermost
/// first: what the next hub signed, and what it held of the hub after it.
fn peer_chain(r: &truc_proto::v1::Receipt) -> Vec<truc_proto::v1::Receipt> {
    use prost::Message;
    let mut out = Vec::new();
    let mut bytes = r.peer_receipt.clone();
    while !bytes.is_empty() && out.len() < 16 {
        let Ok(proven) = truc_proto::v1::ProvenReceipt::decode(bytes.as_slice()) else {
            break;
        };
        let Ok(inner) = truc_proto::v1::Receipt::decode(proven.receipt.as_slice()) else {
            break;
        };
        bytes = inner.peer_receipt.clone();
        out.push(inner);
    }
    out
}

async fn trace(conn: &Conn, from: &str, document_id: &str) -> anyhow::Result<()> {
    use prost::Message;
    let client = conn.client().await?;
    let req = truc_proto::v1::ListReceiptsRequest {
        document_from: from.into(),
        document_id: document_id.into(),
        page_size: 1000,
        ..Default::default()
    };
    let pages = client.all_receipts(req).await?;
    let receipts: Vec<truc_proto::v1::Receipt> = pages
        .iter()
        .flat_map(|p| &p.receipts)
        .filter_map(|r| truc_proto::v1::Receipt::decode(r.receipt.as_slice()).ok())
        .collect();
    let row = |r: &truc_proto::v1::Receipt| {
        let hops: Vec<serde_json::Value> = peer_chain(r)
            .iter()
            .map(|p| {
                json!({
                    "index": p.index, "time_unix_ms": p.time_unix_ms,
                    "event": Wire::<ReceiptEvent>::from(p.event).to_string(), "actor": p.actor, "detail": p.detail,
                })
            })
            .collect();
        json!({
            "index": r.index, "time_unix_ms": r.time_unix_ms, "event": Wire::<ReceiptEvent>::from(r.event).to_string(),
            "actor": r.actor, "recipient": r.recipient, "attempts": r.attempts,
            "status_code": output::status_code(r.status_code), "description": r.description, "detail": r.detail,
            "peer_receipts": hops,
        })
    };
    let table = |headers: bool| {
        let mut t = String::new();
        if headers {
            let _ = writeln!(
                t,
                "{:<6} {:<24} {:<15} {:<20} {:<36} NOTE",
                "INDEX", "TIME", "EVENT", "RECIPIENT", "ACTOR"
            );
        }
        for r in &receipts {
            let mut note = r.detail.clone();
            if r.status_code != 0 {
                note = format!("{} {}", output::status(r.status_code), r.description);
            }
            if r.attempts > 0 {
                note = format!("{note} (attempts {})", r.attempts);
            }
            let _ = writeln!(
                t,
                "{:<6} {:<24} {:<15} {:<20} {:<36} {}",
                r.index,
                output::time(r.time_unix_ms),
                Wire::<ReceiptEvent>::from(r.event),
                if r.recipient.is_empty() { "-" } else { &r.recipient },
                output::actor(&r.actor),
                note.trim()
            );
            // Federation: the other hubs' own receipts this one holds, as
            // each hop signed them (the next hub's acceptance, a delivery
            // or status relayed back).
            for (depth, p) in peer_chain(r).iter().enumerate() {
                let _ = writeln!(
                    t,
                    "{:>w$}↳ receipt #{} of the next hub: {} at {} by {} {}",
                    "",
                    p.index,
                    Wire::<ReceiptEvent>::from(p.event),
                    output::time(p.time_unix_ms),
                    output::actor(&p.actor),
                    p.detail,
                    w = 7 + 2 * depth
                );
            }
        }
        t
    };
    conn.out.list(&receipts, row, serde_json::Value::Array, table);
    Ok(())
}

/// What `truc ops verify-store` prints.
fn verify_store_report(r: &truc_proto::v1::VerifyStoreResponse, conn: &Conn) {
    use truc_proto::v1::DamageKind;
    let name = |d: &truc_proto::v1::DamagedItem| match Wire::<DamageKind>::from(d.kind) {
        Wire::Known(DamageKind::Document) => {
            format!("document {} ({} {:?})", d.hub_document_id, d.from, d.document_id)
        }
        Wire::Known(DamageKind::PayloadFile) => format!("payload {}", truc_core::hex(&d.payload_sha256)),
        Wire::Known(DamageKind::Receipt) => format!("receipt {}", d.receipt_index),
        Wire::Known(DamageKind::TreeHead) => format!("tree head {}", d.receipt_index),
        other => format!("{other} item"),
    };
    let damaged: Vec<_> = r
        .damaged
        .iter()
        .map(|d| {
            json!({
                "kind": Wire::<DamageKind>::from(d.kind).to_string(), "hub_document_id": d.hub_document_id, "from": d.from,
                "document_id": d.document_id, "payload_sha256": truc_core::hex(&d.payload_sha256),
                "receipt_index": d.receipt_index, "what": d.what, "quarantined": d.quarantined,
            })
        })
        .collect();
    let doc = json!({
        "documents_checked": r.documents_checked, "body_bytes_checked": r.body_bytes_checked,
        "payload_files_checked": r.payload_files_checked, "payload_bytes_checked": r.payload_bytes_checked,
        "receipts_checked": r.receipts_checked, "tree_heads_checked": r.tree_heads_checked,
        "tree_size": r.tree_size, "damaged": damaged, "awaiting_resend": r.awaiting_resend,
        "elapsed_ms": r.elapsed_ms,
    });
    conn.out.object(doc, || {
        let mut t = String::new();
        let h = |b: u64| output::human_bytes(b as f64);
        let _ = writeln!(
            t,
            "documents      {} checked ({})",
            r.documents_checked,
            h(r.body_bytes_checked)
        );
        let _ = writeln!(
            t,
            "payload files  {} checked ({})",
            r.payload_files_checked,
            h(r.payload_bytes_checked)
        );
        let _ = writeln!(
            t,
            "receipt log    {} receipts and {} signed tree heads checked (size {})",
            r.receipts_checked, r.tree_heads_checked, r.tree_size
        );
        if !r.awaiting_resend.is_empty() {
            let _ = writeln!(
                t,
                "quarantined earlier, awaiting their senders: {} document(s) ({})",
                r.awaiting_resend.len(),
                r.awaiting_resend
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if r.damaged.is_empty() {
            let _ = writeln!(t, "the store is sound ({} ms)", r.elapsed_ms);
            return t;
        }
        let _ = writeln!(t, "DAMAGED ({}):", r.damaged.len());
        for d in &r.damaged {
            let q = if d.quarantined { " [quarantined]" } else { "" };
            let _ = writeln!(t, "  {}: {}{q}", name(d), d.what);
        }
        t
    });
}
