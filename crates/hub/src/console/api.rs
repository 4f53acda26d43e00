//! The console's JSON API: thin handlers over the same store calls the
//! gRPC services make. GET reads (operators and auditors); POST acts
//! (operators, after `http.rs` checked the CSRF token and the origin).

use hyper::StatusCode;
use prost::Message;
use serde_json::{json, Value};
use tonic::Status;
use truc_core::sync::Locked;
use truc_core::AgencyCode;
use truc_proto::names::{self, Wire};
use truc_proto::v1::{AgencyState, DocumentHeader, Receipt, ReceiptEvent, TransportState, TreeHead};
use truc_store::{indicators, ReceiptFilter, ReceiptQuery};

use super::http::{Caller, Reply};
use super::Console;
use crate::status;

type Answer = Result<Value, Status>;

fn param(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| crate::percent::decode(&v.replace('+', " ")).trim().to_string())
        .unwrap_or_default()
}

fn code(s: &str) -> Result<AgencyCode, Status> {
    AgencyCode::parse(s).map_err(status::from_core)
}

fn http_status(s: &Status) -> StatusCode {
    use tonic::Code::*;
    match s.code() {
        InvalidArgument | OutOfRange => StatusCode::BAD_REQUEST,
        NotFound => StatusCode::NOT_FOUND,
        PermissionDenied => StatusCode::FORBIDDEN,
        Unauthenticated => StatusCode::UNAUTHORIZED,
        FailedPrecondition | AlreadyExists | Aborted => StatusCode::CONFLICT,
        ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn reply(a: Answer) -> Reply {
    match a {
        Ok(v) => Reply::json(v),
        Err(s) => Reply::error(http_status(&s), s.message().to_string()),
    }
}

pub(super) async fn get(console: &Console, caller: &Caller, path: &str, q: &str) -> Reply {
    let c = console;
    match path {
        "/api/session" => reply(Ok(json!({
            "principal": caller.principal.uri(),
            "role": if caller.operator { "operator" } else { "auditor" },
            "csrf": c.csrf_token(&caller.principal.uri()),
            "utc_offset_minutes": c.shared.calendar.utc_offset_minutes(),
        }))),
        "/api/overview" => reply(overview(c).await),
        "/api/agencies" => reply(agencies(c).await),
        "/api/queue" => reply(queue(c, &param(q, "agency")).await),
        "/api/documents" => reply(documents(c, q).await),
        "/api/document" => reply(document(c, &param(q, "from"), &param(q, "id")).await),
        "/api/deadletters" => reply(dead_letters(c, &param(q, "agency")).await),
        "/api/stats" => reply(stats(c, caller, q).await.map(|(rows, _)| rows)),
        "/api/stats.csv" => match stats(c, caller, q).await {
            Ok((_, csv)) => Reply {
                status: StatusCode::OK,
                content_type: "text/csv; charset=utf-8",
                body: csv,
                attachment: Some(format!("truc-stats-{}-{}.csv", param(q, "from"), param(q, "to"))),
            },
            Err(s) => reply(Err(s)),
        },
        "/api/audit/key" => reply(receipts_key(c)),
        "/api/audit/receipts" => reply(audit_receipts(c, &param(q, "from"), &param(q, "id")).await),
        "/api/audit/consistency" => reply(consistency(c, &param(q, "old")).await),
        _ => Reply::error(StatusCode::NOT_FOUND, format!("no such page: {path}")),
    }
}

pub(super) async fn post(console: &Console, caller: &Caller, path: &str, body: &[u8]) -> Reply {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return Reply::error(StatusCode::BAD_REQUEST, "the request body must be JSON"),
    };
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").trim().to_string();
    let ids: Vec<u64> = v
        .get("ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok())))
                .collect()
        })
        .unwrap_or_default();
    let actor = caller.principal.uri();
    let shared = &console.shared;
    let r: Answer = async {
        match path {
            "/api/agency/state" => {
                let state = match s("state").parse() {
                    Ok(state @ (AgencyState::Active | AgencyState::Suspended)) => state,
                    _ => {
                        return Err(Status::invalid_argument(format!(
                            "state {:?}: {} or {}",
                            s("state"),
                            AgencyState::Active,
                            AgencyState::Suspended
                        )))
                    }
                };
                let a = shared
                    .store
                    .set_agency_state(code(&s("code"))?, state, s("reason"), actor.clone())
                    .await
                    .map_err(status::from_store)?;
                tracing::info!(operator = %caller.principal, code = %a.code, %state, "console: agency state changed");
                Ok(json!({"code": a.code, "state": a.state.to_string()}))
            }
            "/api/agency/retire" => {
                let successor = code(&s("successor"))?;
                let a = shared
                    .store
                    .retire_agency(code(&s("code"))?, successor.clone(), s("reason"), actor.clone())
                    .await
                    .map_err(status::from_store)?;
                tracing::info!(operator = %caller.principal, code = %a.code, %successor, "console: agency retired");
                Ok(json!({"code": a.code, "state": a.state.to_string()}))
            }
            "/api/deadletters/redrive" => {
                let agency = code(&s("agency"))?;
                let n = shared
                    .store
                    .redrive(agency.clone(), ids, actor.clone())
                    .await
                    .map_err(status::from_store)?;
                tracing::info!(operator = %caller.principal, %agency, count = n, "console: dead letters redriven");
                Ok(json!({"count": n}))
            }
            "/api/deadletters/purge" => {
                let agency = code(&s("agency"))?;
                let n = shared
                    .store
                    .purge(agency.clone(), ids, actor.clone())
                    .await
                    .map_err(status::from_store)?;
                tracing::warn!(operator = %caller.principal, %agency, count = n, "console: dead letters purged");
                Ok(json!({"count": n}))
            }
            _ => Err(Status::not_found(format!("no such action: {path}"))),
        }
    }
    .await;
    reply(r)
}

/// An agency's state by name.
fn state_name(s: i32) -> String {
    Wire::<AgencyState>::from(s).to_string()
}

async fn overview(c: &Console) -> Answer {
    let shared = c.shared.clone();
    let storage = tokio::task::spawn_blocking(move || crate::disk::storage(&shared))
        .await
        .map_err(|_| Status::unavailable("the hub is shutting down"))?;
    let rows = crate::queues::summaries(&c.shared).await.map_err(status::from_store)?;
    let problem = c.shared.store.commit_problem();
    let connected = rows.iter().filter(|r| r.connected_streams > 0).count();
    let queued: u64 = rows.iter().map(|r| r.queued).sum();
    let dead: u64 = rows.iter().map(|r| r.dead_letters).sum();
    let overdue: u64 = rows.iter().map(|r| r.overdue_urgent).sum();
    let mut alerts = Vec::new();
    if let Some(p) = &problem {
        alerts.push(json!({"name": "TrucStoreCannotCommit", "detail": p}));
    }
    if let Some(free) = storage.disk_free_bytes {
        if storage.disk_reserve_bytes > 0 && free < storage.disk_reserve_bytes.saturating_mul(2) {
            alerts.push(json!({"name": "TrucDiskLow", "detail": format!("{free} bytes free")}));
        }
    }
    if dead > 0 {
        alerts.push(json!({"name": "TrucDeadLetters", "detail": format!("{dead} dead letters")}));
    }
    if overdue > 0 {
        alerts.push(json!({"name": "TrucUrgentOverdue", "detail": format!("{overdue} urgent copies overdue")}));
    }
    let samples: Vec<_> = c.samples.locked().iter().copied().collect();
    let (accepted, acked) = c.shared.metrics.totals();
    Ok(json!({
        "ready": problem.is_none(),
        "commit_problem": problem,
        "storage": {
            "disk_free_bytes": storage.disk_free_bytes, "disk_reserve_bytes": storage.disk_reserve_bytes,
            "store_bytes": storage.store_bytes, "payload_bytes": storage.payload_bytes,
        },
        "agencies": rows.len(), "connected": connected, "queued": queued, "dead_letters": dead,
        "accepted_total": accepted, "acked_total": acked, "now": truc_core::now_unix_ms(),
        "samples": samples, "alerts": alerts,
    }))
}

async fn agencies(c: &Console) -> Answer {
    let rows = crate::queues::summaries(&c.shared).await.map_err(status::from_store)?;
    let today = c.shared.calendar.local_day(c.shared.config.clock.now_unix_ms());
    let late: std::collections::HashMap<String, u64> = c
        .shared
        .store
        .indicators(today, today, None)
        .await
        .map_err(status::from_store)?
        .into_iter()
        .map(|r| (r.agency, r.counts.confirmed_late))
        .collect();
    let dir: std::collections::HashMap<String, String> = c
        .shared
        .store
        .agencies()
        .into_iter()
        .map(|a| (a.code, a.successor))
        .collect();
    let list: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "code": r.agency, "name": r.name, "state": state_name(r.state),
                "queued": r.queued, "in_flight": r.in_flight, "dead_letters": r.dead_letters,
                "bytes": r.bytes, "oldest_age_ms": r.oldest_age_ms, "overdue_urgent": r.overdue_urgent,
                "connected_streams": r.connected_streams, "last_connected_unix_ms": r.last_connected_unix_ms,
                "late_today": late.get(&r.agency).copied().unwrap_or(0),
                "successor": dir.get(&r.agency).cloned().unwrap_or_default(),
            })
        })
        .collect();
    Ok(json!({ "agencies": list }))
}

async fn queue(c: &Console, agency: &str) -> Answer {
    let agency = code(agency)?;
    let items = c
        .shared
        .store
        .queue_page(agency.clone(), 0, 500)
        .await
        .map_err(status::from_store)?;
    let leased = c.shared.engine.leased(&agency);
    let items: Vec<Value> = items
        .into_iter()
        .map(|e| {
            json!({
                "delivery_id": e.delivery_id.to_string(), "hub_document_id": e.hub_document_id,
                "from": e.from, "document_id": e.document_id, "priority": e.priority as i32,
                "enqueued_at_unix_ms": e.enqueued_at_unix_ms, "attempts": e.attempts,
                "status_notice": e.status_notice, "bytes": e.bytes,
                "in_flight": leased.contains(&e.delivery_id),
            })
        })
        .collect();
    Ok(json!({ "agency": agency.as_str(), "items": items }))
}

fn receipt_json(r: &Receipt) -> Value {
    json!({
        "index": r.index, "event": Wire::<ReceiptEvent>::from(r.event).to_string(), "time_unix_ms": r.time_unix_ms, "actor": r.actor,
        "from": r.from, "document_id": r.document_id, "hub_document_id": r.hub_document_id,
        "recipient": r.recipient, "recipients": r.recipients, "attempts": r.attempts,
        "detail": r.detail, "status_code": r.status_code, "description": r.description,
    })
}

/// The ACCEPTED receipts naming an agency (sender or recipient) on a local
/// day, newest last: the document search.
async fn documents(c: &Console, q: &str) -> Answer {
    let agency = code(&param(q, "agency"))?;
    let offset = c.shared.calendar.utc_offset_minutes();
    let date = param(q, "date");
    let (since, until) = if date.is_empty() {
        (0, 0)
    } else {
        let day = indicators::parse_date(&date)
            .ok_or_else(|| Status::invalid_argument(format!("date {date:?}: write YYYY-MM-DD")))?;
        let start = day * 86_400_000 - i64::from(offset) * 60_000;
        (start, start + 86_400_000 - 1)
    };
    let role = param(q, "role");
    let mut found = Vec::new();
    let mut token = 0;
    loop {
        let page = c
            .shared
            .store
            .receipts(ReceiptQuery {
                filter: ReceiptFilter::Agency(agency.clone()),
                since_unix_ms: since,
                until_unix_ms: until,
                page_token: token,
                page_size: 1000,
                visible_to: None,
            })
            .await
            .map_err(status::from_store)?;
        for p in &page.receipts {
            let r = Receipt::decode(p.receipt.as_slice()).unwrap_or_default();
            if r.event != ReceiptEvent::Accepted as i32 {
                continue;
            }
            let sent = r.from == agency.as_str();
            if (role == "sender" && !sent) || (role == "recipient" && sent) {
                continue;
            }
            found.push(receipt_json(&r));
        }
        token = page.next_page_token;
        if token == 0 || found.len() >= 500 {
            break;
        }
    }
    Ok(json!({ "documents": found }))
}

fn sender_of(id: &str, from: &str) -> Result<AgencyCode, Status> {
    let from = if from.is_empty() {
        id.split(',').next().unwrap_or("")
    } else {
        from
    };
    code(from).map_err(|_| Status::invalid_argument(format!("cannot tell the sender of {id:?}: give it")))
}

/// One document: where each copy is (Track) and its receipts, in order.
async fn document(c: &Console, from: &str, id: &str) -> Answer {
    let from = sender_of(id, from)?;
    let track = c
        .shared
        .store
        .track(from.clone(), id.to_string())
        .await
        .map_err(status::from_store)?
        .ok_or_else(|| Status::not_found(format!("no document {id:?} from {from}")))?;
    let page = c
        .shared
        .store
        .receipts(ReceiptQuery {
            filter: ReceiptFilter::Document {
                from: from.clone(),
                document_id: id.to_string(),
            },
            since_unix_ms: 0,
            until_unix_ms: 0,
            page_token: 0,
            page_size: 1000,
            visible_to: None,
        })
        .await
        .map_err(status::from_store)?;
    let receipts: Vec<Value> = page
        .receipts
        .iter()
        .map(|p| receipt_json(&Receipt::decode(p.receipt.as_slice()).unwrap_or_default()))
        .collect();
    let recipients: Vec<Value> = track
        .recipients
        .iter()
        .map(|r| {
            json!({
                "agency": r.agency, "state": Wire::<TransportState>::from(r.state).to_string(), "attempts": r.attempts,
                "state_at_unix_ms": r.state_at_unix_ms, "status": r.status,
                "status_description": r.status_description, "status_at_unix_ms": r.status_at_unix_ms,
                "confirm_deadline_unix_ms": r.confirm_deadline_unix_ms,
                "delivery_deadline_unix_ms": r.delivery_deadline_unix_ms,
            })
        })
        .collect();
    Ok(json!({
        "from": from.as_str(), "document_id": track.document_id, "hub_document_id": track.hub_document_id,
        "accepted_at_unix_ms": track.accepted_at_unix_ms, "priority": track.priority, "subject": track.subject,
        "recipients": recipients, "receipts": receipts,
    }))
}

async fn dead_letters(c: &Console, agency: &str) -> Answer {
    let codes: Vec<AgencyCode> = if agency.is_empty() {
        crate::queues::summaries(&c.shared)
            .await
            .map_err(status::from_store)?
            .into_iter()
            .filter(|r| r.dead_letters > 0)
            .filter_map(|r| AgencyCode::parse(&r.agency).ok())
            .collect()
    } else {
        vec![code(agency)?]
    };
    let mut out = Vec::new();
    for a in codes {
        for i in c
            .shared
            .store
            .dead_letters(a.clone())
            .await
            .map_err(status::from_store)?
        {
            let (from, document_id) = match (&i.document, &i.status) {
                (Some(d), _) => {
                    let h = DocumentHeader::decode(d.header.as_slice()).unwrap_or_default();
                    (h.from, h.document_id)
                }
                (None, Some(s)) => {
                    let r = Receipt::decode(s.receipt.as_slice()).unwrap_or_default();
                    (r.from, r.document_id)
                }
                _ => (String::new(), String::new()),
            };
            out.push(json!({
                "agency": a.as_str(), "delivery_id": i.delivery_id.to_string(),
                "hub_document_id": i.hub_document_id, "from": from, "document_id": document_id,
                "attempts": i.attempts, "reason": names::dead_letter_reason(i.dead_letter_reason).to_string(), "status_notice": i.document.is_none(),
                "accepted_at_unix_ms": i.accepted_at_unix_ms,
            }));
        }
    }
    Ok(json!({ "dead_letters": out }))
}

async fn stats(c: &Console, caller: &Caller, q: &str) -> Result<(Value, String), Status> {
    let by = if param(q, "by") == "month" { 2 } else { 1 };
    let query = crate::stats::StatsQuery::new(param(q, "from"), param(q, "to"), param(q, "agency"), by)?;
    let rows = crate::stats::rows(&c.shared, &caller.principal, query).await?;
    let list: Vec<Value> = rows.iter().map(crate::stats::row_json).collect();
    let csv = crate::stats::csv(&rows);
    Ok((json!({ "rows": list }), csv))
}

/// The hub's receipt key, `receipts.pub` of its identity directory, as
/// DER (SubjectPublicKeyInfo) for WebCrypto.
fn receipts_key(c: &Console) -> Answer {
    let path = c.shared.config.identity.join("receipts.pub");
    let pem = std::fs::read(&path).map_err(|e| Status::unavailable(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&pem);
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    Ok(json!({ "pem": text, "spki_base64": b64 }))
}

fn head_json(h: &truc_proto::v1::SignedTreeHead) -> Value {
    let th = TreeHead::decode(h.tree_head.as_slice()).unwrap_or_default();
    json!({
        "tree_head": truc_core::hex(&h.tree_head), "signature": truc_core::hex(&h.signature),
        "key_id": truc_core::hex(&h.key_id),
        // For display only: the page decodes and checks the signed bytes.
        "tree_size": th.tree_size, "root_hash": truc_core::hex(&th.root_hash), "time_unix_ms": th.time_unix_ms,
    })
}

async fn audit_receipts(c: &Console, from: &str, id: &str) -> Answer {
    let from = sender_of(id, from)?;
    let page = c
        .shared
        .store
        .receipts(ReceiptQuery {
            filter: ReceiptFilter::Document {
                from,
                document_id: id.to_string(),
            },
            since_unix_ms: 0,
            until_unix_ms: 0,
            page_token: 0,
            page_size: 1000,
            visible_to: None,
        })
        .await
        .map_err(status::from_store)?;
    if page.receipts.is_empty() {
        return Err(Status::not_found(format!("no receipts for {id:?}")));
    }
    let receipts: Vec<Value> = page
        .receipts
        .iter()
        .map(|p| {
            let r = Receipt::decode(p.receipt.as_slice()).unwrap_or_default();
            json!({
                "receipt": truc_core::hex(&p.receipt),
                "inclusion_proof": p.inclusion_proof.iter().map(|h| truc_core::hex(h)).collect::<Vec<_>>(),
                "leaf_index": p.leaf_index, "tree_size": p.tree_size, "decoded": receipt_json(&r),
            })
        })
        .collect();
    Ok(json!({ "tree_head": head_json(&page.tree_head), "receipts": receipts }))
}

/// The latest signed head and the consistency proof from `old` to it.
async fn consistency(c: &Console, old: &str) -> Answer {
    let head = c
        .shared
        .store
        .tree_head(0)
        .await
        .map_err(status::from_store)?
        .ok_or_else(|| Status::failed_precondition("the receipt log is empty"))?;
    let new_size = TreeHead::decode(head.tree_head.as_slice())
        .unwrap_or_default()
        .tree_size;
    let proof = match old.parse::<u64>() {
        Ok(0) | Err(_) if !old.is_empty() => return Err(Status::invalid_argument("old must be a tree size above 0")),
        Err(_) => Vec::new(),
        Ok(n) if n > new_size => {
            return Err(Status::failed_precondition(format!(
                "the saved head has {n} leaves but the log has {new_size}: the log shrank or forked"
            )))
        }
        Ok(n) => c
            .shared
            .store
            .consistency_proof(n, new_size)
            .await
            .map_err(status::from_store)?,
    };
    Ok(json!({
        "head": head_json(&head),
        "proof": proof.iter().map(|h| truc_core::hex(h)).collect::<Vec<_>>(),
    }))
}
