//! `truc ops connections`: the client connections the hub holds now.

use std::fmt::Write as _;

use serde_json::json;

use super::output;
use super::Conn;

/// `truc ops connections`.
pub(crate) async fn run(conn: &Conn) -> anyhow::Result<()> {
    let list = conn.client().await?.connections().await?;
    let row = |c: &truc_proto::v1::Connection| {
        json!({
            "principal": c.principal, "peer_address": c.peer_address,
            "connected_at_unix_ms": c.connected_at_unix_ms, "open_requests": c.open_requests,
            "requests_total": c.requests_total, "tls_version": c.tls_version,
            "cipher_suite": c.cipher_suite, "caller": c.caller,
            "request_bytes_held": c.request_bytes_held, "request_bytes_held_peak": c.request_bytes_held_peak,
            "requests_held_peak": c.requests_held_peak, "requests_pushed_back": c.requests_pushed_back,
        })
    };
    let table = |headers: bool| {
        let now = truc_core::now_unix_ms();
        let rows: Vec<[String; 6]> = list
            .iter()
            .map(|c| {
                [
                    format!(
                        "{}{}",
                        output::actor(&c.principal),
                        if c.caller { " (you)" } else { "" }
                    ),
                    c.peer_address.clone(),
                    format!(
                        "{} ({} ago)",
                        output::time(c.connected_at_unix_ms),
                        super::ops::age((now - c.connected_at_unix_ms).max(1))
                    ),
                    c.open_requests.to_string(),
                    c.requests_total.to_string(),
                    c.tls_version.clone(),
                ]
            })
            .collect();
        let head = ["PRINCIPAL", "PEER", "CONNECTED", "OPEN", "REQUESTS", "TLS"];
        let mut widths = head.map(|h| h.chars().count());
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut t = String::new();
        let mut line = |cells: [&str; 6]| {
            let _ = writeln!(
                t,
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}  {}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                cells[5],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
            );
        };
        if headers {
            line(head);
        }
        for r in &rows {
            line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]].map(String::as_str));
        }
        if headers {
            let _ = writeln!(t, "{} connection(s)", list.len());
        }
        t
    };
    conn.out.list(&list, row, serde_json::Value::Array, table);
    Ok(())
}
