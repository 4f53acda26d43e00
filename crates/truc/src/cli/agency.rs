//! `truc send` and `truc inbox`: what an agency's document system does.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use prost::Message;
use truc_proto::names::Wire;
use truc_proto::v1::{Delivery, DocumentHeader, Priority};

use super::output;
use super::send_note::SendNote;
use super::Conn;

#[derive(Debug, clap::Args)]
pub(crate) struct SendArgs {
    /// Recipient agency codes, comma-separated.
    #[arg(long, value_delimiter = ',', required_unless_present = "abandon", value_name = "CODE[,CODE…]", value_parser = super::agency_code)]
    to: Vec<String>,
    /// Số: the document's number from the records office's register, e.g.
    /// 123. With --notation it makes the document id
    /// <your code>,<--promulgated>,<number>/<notation>, as the axis writes it.
    #[arg(long, required_unless_present_any = ["document_id", "abandon"], requires = "notation")]
    number: Option<String>,
    /// Ký hiệu: the notation, e.g. UBND-VX or VPCP-TTĐT.
    #[arg(long, required_unless_present_any = ["document_id", "abandon"], requires = "number")]
    notation: Option<String>,
    /// Ngày ban hành: the promulgation date, local (yyyy/MM/dd or
    /// yyyy-MM-dd); today in the axis's local time when not given (with
    /// --document-id: not stated unless given).
    #[arg(long, value_name = "DATE", value_parser = local_date)]
    promulgated: Option<jiff::civil::Date>,
    /// Địa danh: where it was promulgated, e.g. "Hà Nội".
    #[arg(long, default_value = "")]
    place: String,
    /// The whole document id instead of --number/--notation (a document
    /// your system already numbered, or a resend). Sending the same id again
    /// is answered with the original acceptance. It must start with your
    /// agency code and a comma.
    #[arg(long, visible_alias = "id", conflicts_with = "abandon")]
    document_id: Option<String>,
    /// Người ký: the signer's full name, e.g. "Nguyễn Văn A".
    #[arg(long, default_value = "")]
    signer: String,
    /// Chức vụ: the signer's position, e.g. "Chánh Văn phòng".
    #[arg(long, default_value = "")]
    position: String,
    /// Thẩm quyền ký: TM., KT., TL. or Q.
    #[arg(long, default_value = "")]
    competence: String,
    /// Hạn xử lý: the processing deadline, a local date (yyyy/MM/dd or
    /// yyyy-MM-dd); due by the end of that day in the axis's local time.
    #[arg(long, value_name = "DATE", value_parser = local_date)]
    due: Option<jiff::civil::Date>,
    /// Tóm tắt nội dung: a summary of the content.
    #[arg(long, default_value = "")]
    content: String,
    /// Nơi nhận as printed on the document, separated by ';' (or repeat the
    /// flag): "Như trên;Lưu: VT". Text only: routing is --to.
    #[arg(long, value_delimiter = ';', value_name = "PLACE[;PLACE…]")]
    to_places: Vec<String>,
    /// A document this one answers, by its DocumentId (another agency's:
    /// carried unchanged). Repeat for several.
    #[arg(long, value_name = "DOCUMENT_ID")]
    response_for: Vec<String>,
    /// Chỉ đạo (edXML SteeringType), the integer your system uses.
    #[arg(long, default_value_t = 0)]
    steering: i32,
    /// Trích yếu: what the document is about.
    #[arg(long, default_value = "")]
    subject: String,
    /// Độ khẩn, by name or number (0..=4).
    #[arg(long, default_value = "thuong", value_parser = super::names::parser::<Priority>())]
    priority: Priority,
    /// Document type, e.g. "Công văn".
    #[arg(long, default_value = "")]
    document_type: String,
    /// Media type of the file.
    #[arg(long, default_value = "application/octet-stream")]
    content_type: String,
    /// Files larger than this many bytes are uploaded in chunks, payload
    /// first (hashed as they are sent, the signed header last), resumable:
    /// run the same command again after an interruption.
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    inline_limit: u64,
    /// Forget the interrupted uploads of FILE noted by earlier runs (to any
    /// recipients) instead of sending it; the hub deletes the bytes it has
    /// after limits.upload_expiry_hours.
    #[arg(long)]
    abandon: bool,
    /// The file to send.
    file: PathBuf,
    #[command(flatten)]
    conn: Conn,
}

/// A local date as records offices write it: `yyyy/MM/dd` (edXML) or `yyyy-MM-dd`.
fn local_date(s: &str) -> Result<jiff::civil::Date, String> {
    truc_edxml::EdDate::parse(&s.replace('-', "/"))
        .date()
        .filter(|_| s.len() == 10)
        .ok_or_else(|| format!("{s:?} is not a date: write yyyy/MM/dd, e.g. 2026/12/06"))
}

/// A ResponseFor from a DocumentId: the id as given, and its parts when it
/// has the axis's form (another agency's: never checked, carried as is).
fn response_for(id: &str) -> truc_proto::v1::ResponseFor {
    let mut r = truc_proto::v1::ResponseFor {
        document_id: id.to_string(),
        ..Default::default()
    };
    if let Some(p) = truc_edxml::DocumentIdParts::split(id) {
        r.organ_id = p.sender.to_string();
        r.promulgation_date = p.date.to_string();
        r.code = p.number_notation.to_string();
    }
    r
}

/// Unix ms of the end of local `date` at `offset_minutes` (the last
/// millisecond of that day): what "due on that date" means.
fn end_of_local_day(date: jiff::civil::Date, offset_minutes: i32) -> i64 {
    let offset = jiff::tz::Offset::from_seconds(offset_minutes * 60).unwrap_or(jiff::tz::Offset::UTC);
    let next = date.tomorrow().unwrap_or(date);
    offset
        .to_timestamp(next.to_datetime(jiff::civil::Time::midnight()))
        .map(|t| t.as_millisecond() - 1)
        .unwrap_or(i64::MAX)
}

pub(crate) async fn send(a: SendArgs) -> anyhow::Result<()> {
    if a.abandon {
        let gone = SendNote::abandon(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
        let row = |(to, id): &(String, String)| serde_json::json!({"to": to, "document_id": id});
        let text = |headers: bool| {
            let mut t = String::new();
            if gone.is_empty() && headers {
                t = format!("no interrupted upload of {} is noted\n", a.file.display());
            }
            for (to, id) in &gone {
                t += &format!("forgot the upload of {} to {to} (document {id:?})\n", a.file.display());
            }
            t
        };
        a.conn
            .out
            .list(&gone, row, |v| serde_json::json!({"abandoned": v}), text);
        return Ok(());
    }
    let size = std::fs::metadata(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?
        .len();
    let priority = a.priority;
    let client = a.conn.client().await?;
    let identity = client.identity();
    let from = identity
        .principal
        .agency()
        .ok_or_else(|| {
            super::errors::Problem::refused(format!(
                "{} is not an agency identity: only an agency sends documents",
                identity.principal
            ))
            .hint("pass --identity PKI/agencies/CODE (TRUC_IDENTITY), the agency that signs and sends")
        })?
        .to_string();
    let chunked = size > a.inline_limit;
    // A large file's resume state: an interrupted send of the same file to
    // the same agencies resumes under the same document and upload ids.
    let mut note = if chunked {
        let note = SendNote::load(&from, &a.to, &a.file).with_context(|| format!("reading {}", a.file.display()))?;
        // Notes of the same file to other recipients: say so, this send
        // starts its own upload.
        for (to, id) in note.others() {
            eprintln!(
                "truc: an interrupted upload of {} to {to} (document {id:?}) is noted too; this send to {} \
                 starts its own (`truc send --abandon {}` forgets the other)",
                a.file.display(),
                a.to.join(","),
                a.file.display()
            );
        }
        Some(note)
    } else {
        None
    };
    // The promulgation date: local, today at the axis's offset by default.
    let offset = output::axis_offset_minutes();
    let promulgated = a.promulgated.unwrap_or_else(|| {
        truc_core::Calendar::at_offset(offset)
            .map(|c| c.local_date(truc_core::now_unix_ms()))
            .unwrap_or_else(|_| truc_core::calendar::date_of_day(truc_core::now_unix_ms().div_euclid(86_400_000)))
    });
    let document_id = match (&a.document_id, &a.number, &a.notation) {
        (Some(id), _, _) => id.clone(),
        (None, Some(number), Some(notation)) => truc_edxml::document_id(&from, promulgated, number, notation),
        // clap requires --number and --notation without --document-id.
        _ => anyhow::bail!("pass --number and --notation (or --document-id)"),
    };
    if let Some(noted) = note.as_ref().and_then(|n| n.document_id.as_ref()) {
        if noted != &document_id {
            eprintln!(
                "truc: an interrupted upload of {} was noted as document {noted:?}; this one is {document_id:?} \
                 and starts its own upload in place of it (the hub deletes the bytes it kept after \
                 limits.upload_expiry_hours)",
                a.file.display(),
            );
            if let Some(n) = note.as_mut() {
                n.upload_id = None;
                n.sha256 = None;
            }
        }
    }
    let signer = (!a.signer.is_empty() || !a.position.is_empty() || !a.competence.is_empty()).then(|| {
        truc_proto::v1::SignerInfo {
            competence: a.competence.clone(),
            position: a.position.clone(),
            full_name: a.signer.clone(),
        }
    });
    let header = DocumentHeader {
        to: a.to.clone(),
        document_id: document_id.clone(),
        subject: a.subject,
        code_number: a.number.clone().unwrap_or_default(),
        code_notation: a.notation.clone().unwrap_or_default(),
        document_type: a.document_type,
        priority: priority as i32,
        due_date_unix_ms: a.due.map(|d| end_of_local_day(d, offset)).unwrap_or(0),
        promulgation_date: if a.document_id.is_some() && a.promulgated.is_none() {
            String::new()
        } else {
            truc_edxml::EdDate::Date(promulgated).to_string()
        },
        promulgation_place: a.place,
        signer,
        content: a.content,
        to_places: a
            .to_places
            .into_iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        response_for: a.response_for.iter().map(|id| response_for(id)).collect(),
        steering_type: a.steering,
        content_type: a.content_type,
        file_name: a
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Default::default()
    };
    let resp = match &mut note {
        None => {
            let payload = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
            client
                .send(truc_client::sign_document(identity, header, payload)?)
                .await?
        }
        Some(note) => {
            note.document_id = Some(document_id.clone());
            let upload_id = note
                .upload_id
                .get_or_insert_with(truc_client::transfer::new_upload_id)
                .clone();
            note.save();
            let name = a
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bar = super::progress::Bar::new(
                &format!("sending {name}"),
                &format!("upload of {}", a.file.display()),
                !a.conn.is_json(),
            );
            let progress = |done, total| bar.update(done, total);
            let upload = async {
                match note.sha256 {
                    // An earlier run read the whole file: if the hub has the
                    // payload whole, the header alone is enough.
                    Some(sha) if hub_has(&client, &document_id, &sha, &upload_id).await? => {
                        let doc = truc_client::transfer::sign_external(identity, header, sha, size)?;
                        Ok::<_, anyhow::Error>(client.upload_file(doc, &a.file, &progress).await)
                    }
                    // Payload first: hashed as it is sent, the header signed
                    // and sent last, so the file is read once.
                    _ => {
                        let sign = |sha, size| {
                            note.sha256 = Some(sha);
                            note.save();
                            truc_client::transfer::sign_external(identity, header, sha, size)
                        };
                        Ok(client
                            .upload_file_payload_first(&upload_id, &a.to, &a.file, sign, &progress)
                            .await)
                    }
                }
            };
            // Ctrl-C: the hub keeps what it has and the note stays; say how
            // to go on (exit 130, as a shell reports SIGINT).
            let resp = tokio::select! {
                r = upload => r?,
                _ = tokio::signal::ctrl_c() => {
                    bar.finish();
                    eprintln!(
                        "truc: interrupted: run the same command to resume (document {document_id:?}; \
                         `truc send --abandon {}` forgets it)",
                        a.file.display()
                    );
                    std::process::exit(130);
                }
            };
            bar.finish();
            let resp = resp.map_err(|e| -> anyhow::Error {
                if !e.is_transient() {
                    return e.into();
                }
                let hint = format!(
                    "interrupted: run the same command to resume (document {document_id}; the hub keeps the \
                     bytes it has until limits.upload_expiry_hours); `truc send --abandon {}` forgets it",
                    a.file.display()
                );
                let f = super::errors::from_client(&e);
                super::errors::Problem::new(f.kind, f.message).hint(hint).into()
            })?;
            note.remove();
            resp
        }
    };
    a.conn.out.object(output::acceptance_json(&document_id, &resp), || {
        let receipt = resp.receipt.as_ref().and_then(|r| {
            let index = truc_proto::v1::Receipt::decode(r.receipt.as_slice()).ok()?.index;
            let head = truc_proto::v1::TreeHead::decode(r.tree_head.as_ref()?.tree_head.as_slice()).ok()?;
            Some(format!(
                "receipt #{index} in signed tree head of size {}",
                head.tree_size
            ))
        });
        let mut t = format!(
            "{} {document_id:?} as hub document {} at {}; {}\n",
            if resp.duplicate {
                "already accepted:"
            } else {
                "accepted:"
            },
            resp.hub_document_id,
            output::time(resp.accepted_at_unix_ms),
            receipt.unwrap_or_else(|| "no receipt".into()),
        );
        for r in &resp.redirects {
            t += &format!(
                "  {} is retired: its copy goes to its successor {}\n",
                r.addressed, r.delivered_to
            );
        }
        for w in &resp.warnings {
            t += &format!("  warning: {w}\n");
        }
        t
    });
    Ok(())
}

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
    /// Directory to save documents in (payload and header JSON).
    #[arg(long, default_value = "inbox", value_name = "DIR")]
    out: PathBuf,
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
            rx.ack(d.delivery_id).await?;
            notices += 1;
            // What is shown is what the hub signed: the notice's receipt.
            let n = &signed_notice(n);
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
        match save(&client, &a.out, &d, &trust, a.conn.format() == output::Format::Table).await {
            Ok((header, path, again)) => {
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
                        "saved_before": again,
                        "header": output::header_json(&header),
                    });
                    emit(v, &mut collected);
                } else {
                    println!(
                        "received {:?} from {} [{}] {:?} → {} ({} bytes, signature verified{})",
                        header.document_id,
                        header.from,
                        Wire::<Priority>::from(header.priority),
                        header.subject,
                        path.display(),
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

/// Verify and save one delivery; returns its header, the payload's path,
/// and whether an earlier run had saved it already (a copy re-delivered
/// because its ack never reached the hub: not written again).
/// A large payload is downloaded to `<name>.part` (resuming a partial file)
/// and checked against the signed size and SHA-256 before it is renamed.
async fn save(
    client: &truc_client::Client,
    dir: &Path,
    d: &Delivery,
    trust: &truc_core::document::SigningTrust,
    show_progress: bool,
) -> anyhow::Result<(DocumentHeader, PathBuf, bool)> {
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
    let name = if h.file_name.is_empty() {
        "payload.bin".to_string()
    } else {
        h.file_name.clone()
    };
    let base = dir.join(format!("{}-{}", d.hub_document_id, name));
    let header_file = dir.join(format!("{}.header.json", d.hub_document_id));
    if saved_before(&header_file, &base, &doc.header) {
        return Ok((h, base, true));
    }
    if d.payload_separate {
        let part = dir.join(format!("{}-{}.part", d.hub_document_id, name));
        let bar = super::progress::Bar::new(
            &format!("receiving {name}"),
            &format!("download of {name} (hub document {})", d.hub_document_id),
            show_progress,
        );
        client
            .download_to(
                d.hub_document_id,
                d.delivery_id,
                &part,
                &h.payload_sha256,
                h.payload_size,
                &|done, total| bar.update(done, total),
            )
            .await?;
        bar.finish();
        std::fs::rename(&part, &base).with_context(|| format!("renaming to {}", base.display()))?;
    } else {
        write_durably(&base, &doc.payload)?;
    }
    let mut meta = output::header_json(&h);
    meta["hub_document_id"] = d.hub_document_id.into();
    meta["signature"] = truc_core::hex(&doc.signature).into();
    meta["header_bytes"] = truc_core::hex(&doc.header).into();
    write_durably(
        &header_file,
        serde_json::to_string_pretty(&output::stamp(meta))?.as_bytes(),
    )?;
    Ok((h, base, false))
}

/// Whether this document is on disk already, whole: its header file (the
/// last thing `save` writes) holds the same signed header bytes and the
/// payload file is there.
fn saved_before(header_file: &Path, payload: &Path, header_bytes: &[u8]) -> bool {
    let Ok(text) = std::fs::read_to_string(header_file) else {
        return false;
    };
    let same = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("header_bytes").and_then(|h| h.as_str()).map(str::to_string))
        .is_some_and(|h| h == truc_core::hex(header_bytes));
    same && payload.is_file()
}

fn rustls_now() -> truc_core::document::UnixTime {
    truc_core::document::UnixTime::now()
}

/// Whether the hub has the payload with this digest whole already.
async fn hub_has(
    client: &truc_client::Client,
    document_id: &str,
    sha: &[u8; 32],
    upload_id: &str,
) -> anyhow::Result<bool> {
    let status = client
        .axis()
        .upload_status(truc_proto::v1::UploadStatusRequest {
            document_id: document_id.to_string(),
            payload_sha256: sha.to_vec(),
            upload_id: upload_id.to_string(),
        })
        .await?
        .into_inner();
    Ok(status.complete)
}

fn write_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("part");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
