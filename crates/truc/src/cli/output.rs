//! Printing: tables for people, JSON and CSV for scripts, and error text.
//!
//! One contract for every command that prints results (`-o`, [`OutputArgs`]):
//! the JSON document is the data; CSV is its rows (one column per key of a
//! row's JSON, in the same order, values as in the JSON); a table is the
//! same rows for people (bytes and times made readable).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use serde_json::{json, Value};
use truc_proto::names::Wire;
use truc_proto::v1::{DocumentHeader, ProvenReceipt, SendResponse, StatusCode};

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
            Format::Json | Format::Jsonl => println!("{}", stamp(doc(rows))),
            Format::Csv => print!("{}", csv(cols, &rows, self.headers())),
            Format::Table => print!("{}", table(self.headers())),
        }
    }

    /// Print one object: `doc` as JSON, as one CSV row under a header of
    /// its keys, or `text()` for people.
    pub(crate) fn object(&self, doc: Value, text: impl FnOnce() -> String) {
        match self.format() {
            Format::Json | Format::Jsonl => println!("{}", stamp(doc)),
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
    let columns = &stamp_columns(columns)[..];
    let rows: Vec<Value> = rows.iter().cloned().map(stamp).collect();
    let mut out = String::new();
    if headers {
        truc_core::csv::write_record(&mut out, columns);
    }
    for r in &rows {
        truc_core::csv::write_record(
            &mut out,
            columns.iter().map(|c| r.get(c).map(field).unwrap_or_default()),
        );
    }
    out
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
        "promulgation_date": h.promulgation_date,
        "promulgation_place": h.promulgation_place,
        "signer": h.signer.as_ref().map(|s| json!({"competence": s.competence, "position": s.position, "full_name": s.full_name})),
        "content": h.content,
        "to_places": h.to_places,
        "response_for": h.response_for.iter().map(|r| json!({
            "organ_id": r.organ_id, "code": r.code, "promulgation_date": r.promulgation_date, "document_id": r.document_id,
        })).collect::<Vec<_>>(),
        "steering_type": h.steering_type,
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
        "warnings": r.warnings,
        "receipt": r.receipt.as_ref().map(receipt_json),
    })
}

/// The environment variable that sets the axis's UTC offset for the CLI
/// (`+07:00`, `-05:30`, `+7`); +07:00 when unset.
pub(crate) const UTC_OFFSET_ENV: &str = "TRUC_UTC_OFFSET";

/// The axis's offset from UTC in minutes (what local times are shown in).
static AXIS_OFFSET_MINUTES: AtomicI32 = AtomicI32::new(truc_core::calendar::DEFAULT_UTC_OFFSET_MINUTES);
/// `--utc`: times shown in UTC instead.
static SHOW_UTC: AtomicBool = AtomicBool::new(false);

/// Set how times are shown, once at start: in UTC with `--utc`, otherwise in
/// the axis's local time, at the offset TRUC_UTC_OFFSET names (+07:00 when
/// unset).
pub(crate) fn init_zone(utc: bool) -> anyhow::Result<()> {
    SHOW_UTC.store(utc, Ordering::Relaxed);
    if let Ok(v) = std::env::var(UTC_OFFSET_ENV) {
        let minutes = parse_offset(&v).ok_or_else(|| {
            super::errors::Problem::usage(format!("{UTC_OFFSET_ENV}={v:?} is not a UTC offset"))
                .hint("write it as +07:00 (or -05:30, +7), or unset it for +07:00")
        })?;
        AXIS_OFFSET_MINUTES.store(minutes, Ordering::Relaxed);
    }
    Ok(())
}

/// The hub said what its offset is (`GetStats`'s `utc_offset_minutes`): show
/// times at that one from here on.
pub(crate) fn use_hub_offset(minutes: i32) {
    AXIS_OFFSET_MINUTES.store(minutes, Ordering::Relaxed);
}

/// The axis's offset from UTC in minutes (not changed by `--utc`): for
/// local dates such as a document's promulgation date.
pub(crate) fn axis_offset_minutes() -> i32 {
    AXIS_OFFSET_MINUTES.load(Ordering::Relaxed)
}

/// `+07:00`, `-05:30`, `+7`, `+0700` as minutes east of UTC (at most ±18 h).
pub(crate) fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let digits = |t: &str| !t.is_empty() && t.len() <= 2 && t.bytes().all(|c| c.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 18 && m < 60 && h * 60 + m <= 18 * 60).then_some(sign * (h * 60 + m))
}

/// The zone times are shown in: `None` for UTC (`--utc`), else the axis's
/// offset in minutes.
fn shown_zone() -> Option<i32> {
    (!SHOW_UTC.load(Ordering::Relaxed)).then(axis_offset_minutes)
}

/// Unix ms for people, the one format of every table:
/// `2026-12-06 17:15:02 +07:00` in the axis's local time, or
/// `2026-12-06 10:15:02 UTC` with `--utc`.
pub(crate) fn time(ms: i64) -> String {
    time_in(ms, shown_zone())
}

/// Unix ms as RFC 3339 with its offset, beside each `*_unix_ms` in JSON:
/// `2026-12-06T17:15:02.000+07:00` (`+00:00` with `--utc`).
pub(crate) fn rfc3339(ms: i64) -> String {
    rfc3339_in(ms, shown_zone())
}

fn civil(ms: i64, zone: Option<i32>) -> (jiff::civil::DateTime, String) {
    let minutes = zone.unwrap_or(0);
    let offset = jiff::tz::Offset::from_seconds(minutes * 60).unwrap_or(jiff::tz::Offset::UTC);
    let ts = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    (offset.to_datetime(ts), offset_label(minutes))
}

/// Minutes east of UTC as `+07:00`.
pub(crate) fn offset_label(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60)
}

/// [`time`] in `zone` (minutes east of UTC; `None`: UTC).
pub(crate) fn time_in(ms: i64, zone: Option<i32>) -> String {
    let (dt, off) = civil(ms, zone);
    let suffix = if zone.is_some() { off } else { "UTC".into() };
    format!("{} {suffix}", dt.strftime("%Y-%m-%d %H:%M:%S"))
}

/// [`rfc3339`] in `zone` (minutes east of UTC; `None`: UTC).
pub(crate) fn rfc3339_in(ms: i64, zone: Option<i32>) -> String {
    let (dt, off) = civil(ms, zone);
    format!("{}{off}", dt.strftime("%Y-%m-%dT%H:%M:%S%.3f"))
}

/// The JSON key suffix of a time in Unix milliseconds.
const UNIX_MS: &str = "_unix_ms";

/// The RFC 3339 key beside a `*_unix_ms` key: `accepted_at_unix_ms` →
/// `accepted_at`.
fn rfc3339_key(key: &str) -> Option<&str> {
    key.strip_suffix(UNIX_MS).filter(|k| !k.is_empty())
}

/// Every `*_unix_ms` number in `v` (at any depth) gets its time as RFC 3339
/// with offset beside it, under the key without the suffix
/// (`accepted_at_unix_ms` and `accepted_at`); 0 (no time) gets null. Keys
/// already there are left alone, so stamping twice changes nothing.
pub(crate) fn stamp(v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(stamp).collect()),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            let taken: std::collections::HashSet<String> = map.keys().cloned().collect();
            for (k, v) in map {
                let extra = rfc3339_key(&k).filter(|b| !taken.contains(*b)).map(|b| {
                    let t = match v.as_i64() {
                        Some(ms) if ms != 0 => Value::String(rfc3339(ms)),
                        _ => Value::Null,
                    };
                    (b.to_string(), t)
                });
                out.insert(k, stamp(v));
                if let Some((b, t)) = extra {
                    out.insert(b, t);
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

/// CSV columns with the RFC 3339 column after each `*_unix_ms` one, as
/// [`stamp`] adds it to each row.
fn stamp_columns(columns: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(columns.len());
    for c in columns {
        out.push(c.clone());
        if let Some(b) = rfc3339_key(c) {
            if !columns.iter().any(|x| x == b) {
                out.push(b.to_string());
            }
        }
    }
    out
}

/// Print one JSON document on a line (JSON Lines streams), times stamped.
pub(crate) fn json_line(v: Value) {
    println!("{}", stamp(v));
}

/// A business status code as the axis writes it, two digits (`"03"`); null
/// for none (0).
pub(crate) fn status_code(code: i32) -> Value {
    if code == 0 {
        Value::Null
    } else {
        Value::String(format!("{code:02}"))
    }
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

/// A business status for people: its two digits and its name
/// (`03 registered`); `-` for none (0).
pub(crate) fn status(code: i32) -> String {
    match Wire::<StatusCode>::from(code) {
        Wire::Known(StatusCode::Unspecified) => "-".into(),
        status => format!("{code:02} {status}"),
    }
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
    fn statuses_read_with_their_number_and_name() {
        assert_eq!(status(3), "03 registered");
        assert_eq!(status(13), "13 take-back");
        assert_eq!(status(0), "-");
        assert_eq!(status(7), "07 unknown(7)");
    }

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

    const MS: i64 = 1_796_552_102_000; // 2026-12-06 10:15:02 UTC

    #[test]
    fn times_are_local_with_their_offset_or_utc() {
        assert_eq!(time_in(MS, Some(420)), "2026-12-06 17:15:02 +07:00");
        assert_eq!(time_in(MS, None), "2026-12-06 10:15:02 UTC");
        assert_eq!(time_in(MS, Some(-330)), "2026-12-06 04:45:02 -05:30");
        assert_eq!(rfc3339_in(MS + 7, Some(420)), "2026-12-06T17:15:02.007+07:00");
        assert_eq!(rfc3339_in(MS, None), "2026-12-06T10:15:02.000+00:00");
    }

    #[test]
    fn local_time_crosses_midnight_before_utc_does() {
        // 17:30 UTC is already the next day at +07:00, and still the day at -05:00.
        let ms = 1_796_578_200_000; // 2026-12-06 17:30:00 UTC
        assert_eq!(time_in(ms, None), "2026-12-06 17:30:00 UTC");
        assert_eq!(time_in(ms, Some(420)), "2026-12-07 00:30:00 +07:00");
        assert_eq!(time_in(ms - 3_600_000, Some(420)), "2026-12-06 23:30:00 +07:00");
        assert_eq!(
            time_in(ms + 6 * 3_600_000 + 60_000, Some(-300)),
            "2026-12-06 18:31:00 -05:00"
        );
        assert_eq!(rfc3339_in(ms, Some(420)), "2026-12-07T00:30:00.000+07:00");
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("+07:00"), Some(420));
        assert_eq!(parse_offset("+7"), Some(420));
        assert_eq!(parse_offset("-05:30"), Some(-330));
        assert_eq!(parse_offset("+0700"), Some(420));
        for bad in ["07:00", "+25:00", "+07:60", "UTC", "", "+", "+7:0x"] {
            assert_eq!(parse_offset(bad), None, "{bad}");
        }
    }

    #[test]
    fn json_carries_unix_ms_and_rfc3339_side_by_side() {
        use std::sync::atomic::Ordering;
        SHOW_UTC.store(false, Ordering::Relaxed);
        AXIS_OFFSET_MINUTES.store(420, Ordering::Relaxed);
        let v = stamp(json!({
            "accepted_at_unix_ms": MS, "due_date_unix_ms": 0, "n": 1,
            "rows": [{"time_unix_ms": MS, "time": "kept"}],
        }));
        assert_eq!(
            v.to_string(),
            json!({
                "accepted_at_unix_ms": MS, "accepted_at": "2026-12-06T17:15:02.000+07:00",
                "due_date_unix_ms": 0, "due_date": null, "n": 1,
                "rows": [{"time_unix_ms": MS, "time": "kept"}],
            })
            .to_string()
        );
        assert_eq!(stamp(v.clone()), v, "stamping twice changes nothing");
        let cols: Vec<String> = ["a", "time_unix_ms", "b"].map(String::from).to_vec();
        assert_eq!(
            csv(&cols, &[json!({"a": 1, "time_unix_ms": MS, "b": 2})], true),
            "a,time_unix_ms,time,b\n1,1796552102000,2026-12-06T17:15:02.000+07:00,2\n"
        );
        assert_eq!(status_code(3), json!("03"));
        assert_eq!(status_code(15), json!("15"));
        assert_eq!(status_code(0), Value::Null);
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
