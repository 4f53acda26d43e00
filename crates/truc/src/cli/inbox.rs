//! `truc inbox`: what an agency's document system receives.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use truc_proto::v1::{Delivery, DocumentHeader, Priority};

use super::output;
use super::Conn;

/// The notice's words as its signed STATUS_REPORTED receipt states them
/// (the notice's own fields are unsigned copies); the notice as it came,
/// marked, if the receipt is missing or does not decode.
fn signed_notice(n: &truc_proto::v1::StatusNotice) -> truc_proto::v1::StatusNotice {
    let signed = n.receipt.as_ref().and_then(truc_core::notice::from_receipt);
    match signed {
        Some(signed) => signed,
        None => truc_proto::v1::StatusNotice {
            reporter: format!("{} (unsigned: the notice has no receipt)", n.reporter),
            ..n.clone()
        },
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct InboxArgs {
    /// Keep the stream open and receive new documents as they arrive.
    #[arg(long)]
    follow: bool,
    /// Directory to save documents in: each attachment as a file of its
    /// own (`<hub id>-<name>`), and the header as `<hub id>.header.json`.
    #[arg(long, default_value = "inbox", value_name = "DIR")]
    out: PathBuf,
    /// files: the attachments as files (the default). edxml: one edXML
    /// package (QCVN 102:2016) per document, `<hub id>.edxml`, for a
    /// QLVB&ĐH system to import: every MessageHeader field, the Bussiness
    /// block, the manifest, the attachments in base64, and a TraceHeader for
    /// the hub (its name and when it accepted the document, local time);
    /// and status notices as edXML status messages,
    /// `<hub id>-status-<code>-<delivery id>.edxml`.
    #[arg(long, value_enum, default_value_t = SaveFormat::Files)]
    format: SaveFormat,
    /// Most unacknowledged deliveries at once.
    #[arg(long, default_value_t = 16)]
    max_in_flight: u32,
    /// Do not report status 01 (arrived) to the sender for each new document.
    #[arg(long)]
    no_arrived: bool,
    /// Print what arrives without saving or acknowledging it (to watch
    /// redelivery and dead-lettering, or test a hub under a stuck consumer).
    #[arg(long)]
    no_ack: bool,
    /// Stop (exit 5) when the hub goes away instead of reconnecting with
    /// backoff (for scripts that restart the command themselves).
    #[arg(long)]
    no_reconnect: bool,
    #[command(flatten)]
    conn: Conn,
}

/// How `truc inbox` saves what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SaveFormat {
    /// Each attachment as a file, the header as JSON.
    Files,
    /// One edXML package per document or status notice.
    Edxml,
}

/// What an edXML export needs from the hub: its name (the TraceHeader's
/// OrganId) and its offset (edXML times are local, without a zone).
struct HubSide {
    name: String,
    offset: jiff::tz::Offset,
}

/// `inbox -o csv`: one row per delivery as it comes, whatever its kind
/// (document, status notice, not acknowledged); a kind leaves the other
/// kinds' columns empty.
const INBOX_COLUMNS: [&str; 14] = [
    "kind",
    "delivery_id",
    "hub_document_id",
    "from",
    "document_id",
    "subject",
    "priority",
    "payload_size",
    "saved_to",
    "saved_before",
    "status",
    "reporter",
    "description",
    "time_unix_ms",
];

/// One `inbox -o csv` row of `fields` (name, value) under INBOX_COLUMNS.
fn inbox_row(fields: serde_json::Value) -> String {
    let columns = INBOX_COLUMNS.map(String::from);
    output::csv(&columns, &[fields], false)
}

pub(crate) async fn inbox(a: InboxArgs) -> anyhow::Result<()> {
    let csv = a.conn.format() == output::Format::Csv;
    if a.follow && a.conn.format() == output::Format::Json {
        return Err(
            super::errors::Problem::usage("--follow is a stream: it prints JSON Lines")
                .hint("use --jsonl (one JSON document per delivery, a line each)")
                .into(),
        );
    }
    // --json: one document at the end; --jsonl: a line per delivery.
    let mut collected: Vec<serde_json::Value> = Vec::new();
    let emit = |v: serde_json::Value, collected: &mut Vec<serde_json::Value>| {
        if a.conn.format() == output::Format::Jsonl {
            output::json_line(v);
        } else {
            collected.push(v);
        }
    };
    let client = a.conn.client().await?;
    let trust = truc_client::axis_trust(client.identity())?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let hub = match a.format {
        SaveFormat::Files => None,
        SaveFormat::Edxml => {
            let info = client.hub_info().await?;
            output::use_hub_offset(info.utc_offset_minutes);
            Some(HubSide {
                name: info.name,
                offset: jiff::tz::Offset::from_seconds(info.utc_offset_minutes * 60).unwrap_or(jiff::tz::Offset::UTC),
            })
        }
    };
    // The header once connected (a failure to connect prints none).
    if csv && a.conn.out.headers() {
        print!("{}", output::csv(&INBOX_COLUMNS.map(String::from), &[], true));
    }
    let mut rx = truc_client::reconnect::Receiver::new(
        client.clone(),
        a.max_in_flight,
        a.follow,
        super::reconnect_policy(a.no_reconnect),
        super::print_notice,
    );
    let (mut count, mut notices) = (0usize, 0usize);
    while let Some(d) = rx.next().await? {
        if let Some(n) = &d.status {
            // What is shown is what the hub signed: the notice's receipt.
            let n = &signed_notice(n);
            if let Some(hub) = &hub {
                // Written (fsync'd) before the hub forgets it.
                match save_status(&client, &a.out, &d, n, hub).await {
                    Ok(Some(path)) => eprintln!("truc: status saved as {}", path.display()),
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!(
                            "truc: status notice {} not saved, not acknowledged: {e:#}",
                            d.delivery_id
                        );
                        continue;
                    }
                }
            }
            rx.ack(d.delivery_id).await?;
            notices += 1;
            if csv {
                print!(
                    "{}",
                    inbox_row(serde_json::json!({
                        "kind": "status", "delivery_id": d.delivery_id, "from": n.document_from,
                        "document_id": n.document_id, "status": output::status_code(n.code), "reporter": n.reporter,
                        "description": n.description, "time_unix_ms": n.time_unix_ms,
                    }))
                );
            } else if a.conn.is_json() {
                let v = serde_json::json!({
                    "delivery_id": d.delivery_id, "status": output::status_code(n.code), "reporter": n.reporter,
                    "document_from": n.document_from, "document_id": n.document_id,
                    "description": n.description, "time_unix_ms": n.time_unix_ms,
                });
                emit(v, &mut collected);
            } else {
                println!(
                    "status {} from {} on {:?} at {}{}",
                    output::status(n.code),
                    n.reporter,
                    n.document_id,
                    output::time(n.time_unix_ms),
                    if n.description.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", n.description)
                    }
                );
            }
            continue;
        }
        if a.no_ack {
            if csv {
                print!(
                    "{}",
                    inbox_row(serde_json::json!({
                        "kind": "unacknowledged", "delivery_id": d.delivery_id,
                        "hub_document_id": d.hub_document_id,
                    }))
                );
                continue;
            }
            if a.conn.is_json() {
                let v = serde_json::json!({
                    "delivery_id": d.delivery_id, "handle": output::handle(d.delivery_id),
                    "hub_document_id": d.hub_document_id, "attempt": d.previous_attempts + 1,
                    "acknowledged": false,
                });
                emit(v, &mut collected);
                continue;
            }
            println!(
                "delivery {} (hub document {}, attempt {}) not acknowledged",
                output::handle(d.delivery_id),
                d.hub_document_id,
                d.previous_attempts + 1
            );
            continue;
        }
        match save(
            &client,
            &a.out,
            &d,
            &trust,
            a.conn.format() == output::Format::Table,
            hub.as_ref(),
        )
        .await
        {
            Ok(Saved { header, files, again }) => {
                let path = files.first().cloned().unwrap_or_default();
                // The file is on disk (fsync'd) before the hub forgets it.
                rx.ack(d.delivery_id).await?;
                count += 1;
                // 01 (đã đến) tells the sender it arrived; revoke and update
                // notices are answered with 15 or 16 instead.
                let new_document = matches!(header.business_type, 0 | 3);
                if new_document && !a.no_arrived {
                    if let Err(e) = client
                        .report_status(&header.from, &header.document_id, 1, "", None)
                        .await
                    {
                        eprintln!("truc: could not report 01 on {:?}: {e}", header.document_id);
                    }
                }
                if csv {
                    print!(
                        "{}",
                        inbox_row(serde_json::json!({
                            "kind": "document", "delivery_id": d.delivery_id,
                            "hub_document_id": d.hub_document_id, "from": header.from,
                            "document_id": header.document_id, "subject": header.subject,
                            "priority": header.priority, "payload_size": header.payload_size,
                            "saved_to": path, "saved_before": again,
                            "time_unix_ms": header.signed_at_unix_ms,
                        }))
                    );
                } else if a.conn.is_json() {
                    let v = serde_json::json!({
                        "delivery_id": d.delivery_id,
                        "hub_document_id": d.hub_document_id,
                        "signature": "verified",
                        "saved_to": path,
                        "files": files,
                        "saved_before": again,
                        "header": output::header_json(&header),
                    });
                    emit(v, &mut collected);
                } else {
                    let shown = match files.as_slice() {
                        [one] => one.display().to_string(),
                        many => format!(
                            "{} files: {}",
                            many.len(),
                            many.iter()
                                .map(|f| f.file_name().unwrap_or_default().to_string_lossy())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    println!(
                        "received {:?} from {} [{}] {:?} → {} ({} bytes, signature verified{})",
                        header.document_id,
                        header.from,
                        truc_proto::names::Wire::<Priority>::from(header.priority),
                        header.subject,
                        shown,
                        header.payload_size,
                        if again {
                            "; already saved by an earlier run, acknowledged now"
                        } else {
                            ""
                        }
                    );
                }
            }
            Err(e) => {
                // Not acknowledged: it comes back after its lease and is
                // dead-lettered after the hub's attempt limit.
                eprintln!(
                    "truc: delivery {} refused locally, not acknowledged: {e:#}",
                    d.delivery_id
                );
            }
        }
    }
    // Copies still leased elsewhere (an earlier run that died holds them
    // until their lease runs out): say so, and when they come back.
    let held = match client.inbox_state().await {
        Ok(st) if st.leased > 0 => Some(st),
        _ => None,
    };
    if a.conn.format() == output::Format::Json {
        output::json_line(serde_json::json!({
            "documents": count, "status_notices": notices, "deliveries": collected,
            "leased_elsewhere": held.as_ref().map_or(0, |h| h.leased),
            "leased_until_unix_ms": held.as_ref().map(|h| h.next_lease_end_unix_ms),
        }));
    } else if a.conn.format() == output::Format::Table {
        println!("{count} document(s) and {notices} status notice(s) received");
    }
    if let Some(h) = held {
        if csv {
            eprintln!(
                "truc: {} more still leased to another receiver until {}",
                h.leased,
                output::time(h.next_lease_end_unix_ms)
            );
        } else if !a.conn.is_json() {
            let left = (h.next_lease_end_unix_ms - truc_core::now_unix_ms()).max(0);
            println!(
                "{} more still leased to another receiver (an earlier run that was stopped?): the first comes \
                 back at {} (in {} s); run `truc inbox` again then",
                h.leased,
                output::time(h.next_lease_end_unix_ms),
                (left + 999) / 1000
            );
        }
    }
    Ok(())
}

/// What `save` did with one document.
struct Saved {
    header: DocumentHeader,
    /// The attachments' files, in manifest order (one for a document
    /// without a manifest), or the edXML package.
    files: Vec<PathBuf>,
    /// An earlier run had saved it already (a copy re-delivered because its
    /// ack never reached the hub): not written again.
    again: bool,
}

/// A file name from an attachment's name that is safe to create in the
/// output directory: no separators or control characters, no leading dot,
/// not empty (`attachment-<n>` then).
fn safe_name(name: &str, index: usize) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_control() || c == '/' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect();
    if s.starts_with('.') {
        s.insert(0, '_');
    }
    if s.trim().is_empty() {
        s = format!("attachment-{}", index + 1);
    }
    s
}

/// The files a document's attachments are saved as in `dir`:
/// `<hub id>-<name>`, a second `x.pdf` becoming `x (2).pdf`.
fn attachment_paths(dir: &Path, hub_id: u64, attachments: &[truc_proto::v1::Attachment]) -> Vec<PathBuf> {
    let mut taken = std::collections::HashSet::new();
    attachments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let name = safe_name(&a.name, i);
            let (stem, ext) = match name.rsplit_once('.') {
                Some((stem, ext)) if !stem.is_empty() => (stem.to_string(), format!(".{ext}")),
                _ => (name.clone(), String::new()),
            };
            let mut candidate = format!("{hub_id}-{name}");
            let mut n = 2;
            while !taken.insert(candidate.to_lowercase()) {
                candidate = format!("{hub_id}-{stem} ({n}){ext}");
                n += 1;
            }
            dir.join(candidate)
        })
        .collect()
}

/// `path` with `.part` added to its name (where it is written before it is
/// checked).
fn part_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Verify and save one delivery. Every attachment is checked against its
/// signed SHA-256 (and the payload against its own) before anything is
/// renamed into place; a large payload is downloaded straight into the
/// attachments' `.part` files (resuming partial ones). With `hub` (edXML
/// output), the attachments are staged, written into `<hub id>.edxml`
/// (base64, streamed from the files) and the staging removed. The header
/// file is written last: its presence says the document is saved.
async fn save(
    client: &truc_client::Client,
    dir: &Path,
    d: &Delivery,
    trust: &truc_core::document::SigningTrust,
    show_progress: bool,
    hub: Option<&HubSide>,
) -> anyhow::Result<Saved> {
    let doc = d
        .document
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("delivery without a document"))?;
    let checked = if d.payload_separate {
        truc_core::document::verify_document(doc, None, trust, rustls_now(), false)?
    } else {
        truc_client::verify_received(doc, trust)?
    };
    let h = checked.header;
    let listed = truc_client::edxml::attachments_of(&h);
    let header_file = dir.join(format!("{}.header.json", d.hub_document_id));
    let package = dir.join(format!("{}.edxml", d.hub_document_id));
    let staging = dir.join(format!(".{}.attachments", d.hub_document_id));
    let files = match hub {
        Some(_) => attachment_paths(&staging, d.hub_document_id, &listed),
        None => attachment_paths(dir, d.hub_document_id, &listed),
    };
    let outputs = match hub {
        Some(_) => vec![package.clone()],
        None => files.clone(),
    };
    if saved_before(&header_file, &outputs, &doc.header) {
        return Ok(Saved {
            header: h,
            files: outputs,
            again: true,
        });
    }
    if hub.is_some() {
        std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    }
    let parts: Vec<PathBuf> = files.iter().map(|f| part_of(f)).collect();
    if d.payload_separate {
        let label = match listed.as_slice() {
            [one] => one.name.clone(),
            many => format!("{} attachments", many.len()),
        };
        let bar = super::progress::Bar::new(
            &format!("receiving {label}"),
            &format!("download of {label} (hub document {})", d.hub_document_id),
            show_progress,
        );
        client
            .download_attachments(d.hub_document_id, d.delivery_id, &h, &parts, &|done, total| {
                bar.update(done, total)
            })
            .await?;
        bar.finish();
    } else {
        // Checked already, attachment by attachment (verify_received).
        for (a, part) in listed.iter().zip(&parts) {
            let bytes = &doc.payload[a.offset as usize..(a.offset + a.size) as usize];
            write_synced(part, bytes)?;
        }
    }
    for (part, file) in parts.iter().zip(&files) {
        std::fs::rename(part, file).with_context(|| format!("renaming to {}", file.display()))?;
    }
    if let Some(hub) = hub {
        let hop = truc_client::edxml::Hop {
            organ_id: hub.name.clone(),
            timestamp: truc_client::edxml::local_timestamp(d.accepted_at_unix_ms, hub.offset),
        };
        let p = truc_client::edxml::export(&h, Some(hop), hub.offset);
        let tmp = part_of(&package);
        let out = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut source = truc_client::edxml::FileSource(files.clone());
        let out = truc_edxml::write(&p, std::io::BufWriter::with_capacity(1 << 20, out), &mut source)
            .with_context(|| format!("writing {}", tmp.display()))?;
        let out = out.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
        std::fs::rename(&tmp, &package).with_context(|| format!("renaming to {}", package.display()))?;
        std::fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    let mut meta = output::header_json(&h);
    meta["hub_document_id"] = d.hub_document_id.into();
    meta["signature"] = truc_core::hex(&doc.signature).into();
    meta["header_bytes"] = truc_core::hex(&doc.header).into();
    meta["saved"] = listed
        .iter()
        .zip(&files)
        .map(|(a, f)| {
            serde_json::json!({
                "name": a.name, "content_id": a.content_id, "media_type": a.media_type,
                "description": a.description, "size": a.size, "sha256": truc_core::hex(&a.sha256),
                "saved_to": if hub.is_some() { package.clone() } else { f.clone() },
            })
        })
        .collect::<Vec<_>>()
        .into();
    write_durably(
        &header_file,
        serde_json::to_string_pretty(&output::stamp(meta))?.as_bytes(),
    )?;
    Ok(Saved {
        header: h,
        files: outputs,
        again: false,
    })
}

/// Save a status notice as an edXML status message (the reporter's name
/// from the directory, if known); `None` for a notice that is no business
/// status (the hub's own, e.g. a quarantine), which is shown but not
/// written.
async fn save_status(
    client: &truc_client::Client,
    dir: &Path,
    d: &Delivery,
    n: &truc_proto::v1::StatusNotice,
    hub: &HubSide,
) -> anyhow::Result<Option<PathBuf>> {
    let name = match client.lookup_agencies(std::slice::from_ref(&n.reporter)).await {
        Ok(list) => list.into_iter().next().map(|e| e.name).unwrap_or_default(),
        Err(_) => String::new(),
    };
    let Some(p) = truc_client::edxml::status_package(n, &name, hub.offset) else {
        return Ok(None);
    };
    let path = dir.join(format!(
        "{}-status-{:02}-{}.edxml",
        n.hub_document_id, n.code, d.delivery_id
    ));
    let xml = truc_edxml::write(&p, Vec::new(), &mut truc_edxml::MemoryAttachments::default())?;
    write_durably(&path, &xml)?;
    Ok(Some(path))
}

/// Whether this document is on disk already, whole: its header file (the
/// last thing `save` writes) holds the same signed header bytes and every
/// file it saved is there.
fn saved_before(header_file: &Path, files: &[PathBuf], header_bytes: &[u8]) -> bool {
    let Ok(text) = std::fs::read_to_string(header_file) else {
        return false;
    };
    let same = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("header_bytes").and_then(|h| h.as_str()).map(str::to_string))
        .is_some_and(|h| h == truc_core::hex(header_bytes));
    same && files.iter().all(|f| f.is_file())
}

fn rustls_now() -> truc_core::document::UnixTime {
    truc_core::document::UnixTime::now()
}

/// Write `bytes` to `path` and sync them.
fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Write `bytes` to `path` through a synced `.part` renamed into place.
fn write_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = part_of(path);
    write_synced(&tmp, bytes)?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_are_made_safe_and_distinct() {
        let att = |name: &str| truc_proto::v1::Attachment {
            name: name.into(),
            ..Default::default()
        };
        let list = [
            att("Phụ lục.pdf"),
            att("phụ LỤC.pdf"),
            att(".bashrc"),
            att(""),
            att("a\nb"),
            att("x"),
        ];
        let paths = attachment_paths(Path::new("/in"), 7, &list);
        let names: Vec<String> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "7-Phụ lục.pdf",
                "7-phụ LỤC (2).pdf",
                "7-_.bashrc",
                "7-attachment-4",
                "7-a_b",
                "7-x"
            ]
        );
        assert!(paths.iter().all(|p| p.parent() == Some(Path::new("/in"))));
    }
}
