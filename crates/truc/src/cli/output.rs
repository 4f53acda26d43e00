//! Printing: tables for people, JSON and CSV for scripts, and error text.
//!
//! One contract for every command that prints results (`-o`, [`OutputArgs`]):
//! the JSON document is the data; CSV is its rows (one column per key of a
//! row's JSON, in the same order, values as in the JSON); a table is the
//! same rows for people (bytes and times made readable).

use serde_json::{json, Value};
use truc_proto::v1::{DocumentHeader, ProvenReceipt, SendResponse};

/// What `-o` chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Tables and sentences for people (the default).
    Table,
    /// One JSON document.
    Json,
    /// JSON Lines: one document per line for streams; elsewhere as json.
    Jsonl,
    /// CSV (RFC 4180 quoting): a header row, then one row per item.
    Csv,
}

/// The output flags every command that prints results takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct OutputArgs {
    /// Output: table (for people), json (one JSON document), jsonl (one
    /// JSON document per line: streams such as `inbox --follow`; elsewhere
    /// as json), csv (RFC 4180: a header row of the JSON keys, then a row
    /// per item; a command that prints one object prints it as one row).
    #[arg(short = 'o', long = "output", value_enum, value_name = "FORMAT")]
    pub(crate) output: Option<Format>,
    /// Same as -o json.
    #[arg(long, conflicts_with = "output")]
    pub(crate) json: bool,
    /// Same as -o jsonl.
    #[arg(long, conflicts_with_all = ["output", "json"])]
    pub(crate) jsonl: bool,
    /// Tables and CSV without their header row (tables without their notes
    /// too: rows only, for `cut`, `awk` and `while read`).
    #[arg(long)]
    pub(crate) no_headers: bool,
}

impl OutputArgs {
    /// The format chosen (`--json` and `--jsonl` are `-o json` and `-o jsonl`).
    pub(crate) fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else if self.jsonl {
            Format::Jsonl
        } else {
            self.output.unwrap_or(Format::Table)
        }
    }

    /// JSON of either kind.
    pub(crate) fn is_json(&self) -> bool {
        matches!(self.format(), Format::Json | Format::Jsonl)
    }

    /// Header rows (and a table's notes) wanted.
    pub(crate) fn headers(&self) -> bool {
        !self.no_headers
    }

    /// Print a list of `items`: `doc` of their `row`s as JSON, the rows as
    /// CSV (columns: the keys of `row(&T::default())`, so an empty list
    /// still has its header), or `table(headers)` for people.
    pub(crate) fn list<T: Default>(
        &self,
        items: &[T],
        row: impl Fn(&T) -> Value,
        doc: impl FnOnce(Vec<Value>) -> Value,
        table: impl FnOnce(bool) -> String,
    ) {
        let cols = columns(&row(&T::default()));
        self.rows(&cols, items.iter().map(&row).collect(), doc, table);
    }

    /// Print `rows` (JSON objects with the keys `cols`): `doc(rows)` as
    /// JSON, the rows as CSV, or `table(headers)` for people.
    pub(crate) fn rows(
        &self,
        cols: &[String],
        rows: Vec<Value>,
        doc: impl FnOnce(Vec<Value>) -> Value,
        table: impl FnOnce(bool) -> String,
    ) {
        match self.format() {
            Format::Json | Format::Jsonl => println!("{}", doc(rows)),
            Format::Csv => print!("{}", csv(cols, &rows, self.headers())),
            Format::Table => print!("{}", table(self.headers())),
        }
    }

    /// Print one object: `doc` as JSON, as one CSV row under a header of
    /// its keys, or `text()` for people.
    pub(crate) fn object(&self, doc: Value, text: impl FnOnce() -> String) {
        match self.format() {
            Format::Json | Format::Jsonl => println!("{doc}"),
            Format::Csv => print!("{}", csv(&columns(&doc), std::slice::from_ref(&doc), self.headers())),
            Format::Table => print!("{}", text()),
        }
    }
}

/// The keys of a JSON object, in order.
pub(crate) fn columns(v: &Value) -> Vec<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// A JSON value as a CSV field: strings as they are, numbers and booleans
/// as JSON writes them, null empty, arrays and objects as compact JSON.
pub(crate) fn field(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `rows` (JSON objects) as CSV under `columns`, the header row first
/// when `headers`.
pub(crate) fn csv(columns: &[String], rows: &[Value], headers: bool) -> String {
    let mut out = String::new();
    if headers {
        truc_core::csv::write_record(&mut out, columns);
    }
    for r in rows {
        truc_core::csv::write_record(
            &mut out,
            columns.iter().map(|c| r.get(c).map(field).unwrap_or_default()),
        );
    }
    out
}

pub(crate) fn priority_name(p: i32) -> &'static str {
    truc_core::priority::name(p)
}

pub(crate) fn header_json(h: &DocumentHeader) -> Value {
    json!({
        "from": h.from,
        "to": h.to,
        "document_id": h.document_id,
        "subject": h.subject,
        "code_number": h.code_number,
        "code_notation": h.code_notation,
        "document_type": h.document_type,
        "priority": h.priority,
        "business_type": h.business_type,
        "reference_document_id": h.reference_document_id,
        "business_reason": h.business_reason,
        "receiver_changes": h.receiver_changes.iter().map(|c| json!({
            "organ_id": c.organ_id, "receiver_type": c.receiver_type,
        })).collect::<Vec<_>>(),
        "replacements": h.replacements.iter().map(|r| json!({
            "document_id": r.document_id, "organ_ids": r.organ_ids,
        })).collect::<Vec<_>>(),
        "due_date_unix_ms": h.due_date_unix_ms,
        "signed_at_unix_ms": h.signed_at_unix_ms,
        "payload_sha256": truc_core::hex(&h.payload_sha256),
        "payload_size": h.payload_size,
        "content_type": h.content_type,
        "file_name": h.file_name,
    })
}

pub(crate) fn receipt_json(r: &ProvenReceipt) -> Value {
    let head = r.tree_head.as_ref();
    json!({
        "receipt": truc_core::hex(&r.receipt),
        "tree_head": head.map(|h| truc_core::hex(&h.tree_head)),
        "tree_head_signature": head.map(|h| truc_core::hex(&h.signature)),
        "inclusion_proof": r.inclusion_proof.iter().map(|p| truc_core::hex(p)).collect::<Vec<_>>(),
    })
}

pub(crate) fn acceptance_json(document_id: &str, r: &SendResponse) -> Value {
    json!({
        "document_id": document_id,
        "hub_document_id": r.hub_document_id,
        "accepted_at_unix_ms": r.accepted_at_unix_ms,
        "duplicate": r.duplicate,
        "redirects": r.redirects.iter().map(|x| json!({"addressed": x.addressed, "delivered_to": x.delivered_to})).collect::<Vec<_>>(),
        "receipt": r.receipt.as_ref().map(receipt_json),
    })
}

/// Unix ms as `YYYY-MM-DD hh:mm:ss UTC`.
pub(crate) fn time(ms: i64) -> String {
    let date = truc_core::document::date_for_document_id(ms).replace('/', "-");
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{date} {:02}:{:02}:{:02} UTC", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Bytes for people: `1.5 GiB`.
pub(crate) fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

/// A receipt event for people, one spelling in every table (`trace`,
/// `audit receipts`): `lease-expired`.
pub(crate) fn event(e: i32) -> String {
    truc_client::audit::event_name(e).to_ascii_lowercase().replace('_', "-")
}

/// An actor for people, one spelling in every table: the principal's URN
/// without `urn:truc:` (`agency:000.00.00.G22`, `operator:ops`); JSON
/// keeps the whole URN.
pub(crate) fn actor(urn: &str) -> &str {
    urn.strip_prefix("urn:truc:").unwrap_or(urn)
}

/// A delivery id for people: `<band>-<sequence>` (`2-17`), where the band
/// is 4 − priority (0 hỏa tốc hẹn giờ … 4 thường) and the sequence the
/// hub's counter: short to read and type. `parse_handle` reads it back, and
/// the full number too.
pub(crate) fn handle(delivery_id: u64) -> String {
    format!("{}-{}", delivery_id >> 48, delivery_id & ((1 << 48) - 1))
}

/// A handle (`2-17`) or a full delivery id, as a delivery id.
pub(crate) fn parse_handle(s: &str) -> Option<u64> {
    match s.split_once('-') {
        Some((band, seq)) => {
            let band: u64 = band.parse().ok()?;
            let seq: u64 = seq.parse().ok()?;
            (band <= 0xFFFF && seq < (1 << 48)).then_some(band << 48 | seq)
        }
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_follow_the_json_keys_and_quote_what_needs_it() {
        let rows = vec![
            json!({"code": "000.00.00.G22", "name": "Bộ Nội vụ, \"Văn phòng\"", "queued": 3, "successor": null}),
            json!({"code": "G09.01", "name": "Sở A", "queued": 0, "successor": "x", "extra": [1, 2]}),
        ];
        let cols = columns(&rows[0]);
        assert_eq!(cols, ["code", "name", "queued", "successor"]);
        assert_eq!(
            csv(&cols, &rows, true),
            "code,name,queued,successor\n000.00.00.G22,\"Bộ Nội vụ, \"\"Văn phòng\"\"\",3,\nG09.01,Sở A,0,x\n"
        );
        assert_eq!(csv(&cols, &rows[1..], false), "G09.01,Sở A,0,x\n");
        assert_eq!(field(&json!([1, "a"])), "[1,\"a\"]");
    }

    #[test]
    fn handles_round_trip_and_full_ids_still_parse() {
        let id = truc_store_delivery_id(4, 17);
        assert_eq!(handle(id), "0-17");
        assert_eq!(parse_handle("0-17"), Some(id));
        assert_eq!(parse_handle(&id.to_string()), Some(id));
        assert_eq!(parse_handle("x-1"), None);
        assert_eq!(parse_handle("000.00.00.G22"), None);
    }

    fn truc_store_delivery_id(priority: u64, seq: u64) -> u64 {
        (4 - priority) << 48 | seq
    }
}
