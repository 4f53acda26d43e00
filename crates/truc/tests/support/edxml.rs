//! What the edXML tests share: the fixtures, receiving as edXML, and the
//! comparison of what came out of the hub with what went in.

use std::path::{Path, PathBuf};

use truc_edxml::{first_difference, parse, EdDateTime, Limits, MemoryAttachments, Message, Package};

use super::Hub;

/// A package of tests/fixtures/edxml (`suite/…` for the round-trip suite's).
pub(crate) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/edxml")
        .join(name)
}

/// The package at `path` and its attachments' bytes.
pub(crate) fn read(path: &Path) -> (Package, MemoryAttachments) {
    let mut files = MemoryAttachments::default();
    let p = parse(
        std::io::BufReader::new(std::fs::File::open(path).unwrap()),
        Limits::new(1 << 30),
        &mut files,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (p, files)
}

/// The package at `path`, its attachments read for their size and SHA-256
/// only (streamed: a package of any size).
pub(crate) fn read_digests(path: &Path) -> Package {
    parse(
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).unwrap()),
        Limits::new(8 << 30),
        &mut truc_edxml::Discard,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The hub's name, as its certificate states it (`truc ops status`).
pub(crate) fn hub_name(hub: &Hub) -> String {
    let v = hub.json("ops", &["ops", "status"]);
    v["hub_principal"]
        .as_str()
        .unwrap()
        .strip_prefix("urn:truc:hub:")
        .unwrap()
        .to_string()
}

/// What one `truc inbox --format edxml` run saved.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// The document packages, in the order they came.
    pub(crate) documents: Vec<PathBuf>,
    /// The status messages: (status code "03", reporter, file).
    pub(crate) statuses: Vec<(String, String, PathBuf)>,
}

/// `who` receives as edXML into `inbox-<who>`, with `extra` flags
/// (`--no-arrived`): the packages and status messages written.
pub(crate) fn receive_edxml(hub: &Hub, who: &str, extra: &[&str]) -> Received {
    let dir = hub.path(&format!("inbox-{who}"));
    let mut args = vec!["inbox", "--format", "edxml", "--out", &dir];
    args.extend_from_slice(extra);
    let v = hub.json(who, &args);
    let mut got = Received::default();
    for d in v["deliveries"].as_array().unwrap() {
        if d.get("header").is_some() {
            got.documents.push(PathBuf::from(d["saved_to"].as_str().unwrap()));
            continue;
        }
        // <hub id>-status-<code>-<delivery id>.edxml
        let code = d["status"].as_str().unwrap().to_string();
        let suffix = format!("-status-{code}-{}.edxml", d["delivery_id"]);
        let path = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(&suffix))
            .unwrap_or_else(|| panic!("no file *{suffix} in {dir} for {d}"));
        got.statuses
            .push((code, d["reporter"].as_str().unwrap().to_string(), path));
    }
    got
}

/// `who` receives as edXML into `inbox-<who>`: the document packages written.
pub(crate) fn inbox_edxml(hub: &Hub, who: &str) -> Vec<PathBuf> {
    receive_edxml(hub, who, &[]).documents
}

/// `t` (local time at the axis's offset) as Unix ms.
fn unix_ms(t: &EdDateTime) -> i64 {
    t.to_timestamp(truc_edxml::DEFAULT_OFFSET)
        .expect("a timestamp in local time")
        .as_millisecond()
}

/// The package `received` compares equal to `sent` once the hub's
/// TraceHeader (the last, naming the hub, timed between `before_ms` and
/// now) is set aside.
pub(crate) fn same_as_sent(hub: &Hub, received: &Path, sent: &Path, before_ms: i64) {
    if let Some(d) = difference_after(hub, received, sent, before_ms, |_| {}) {
        panic!("{}: differs from {}: {d}", received.display(), sent.display());
    }
}

/// [`same_as_sent`]'s comparison: the first difference between the package
/// sent and the one received, the latter changed by `change` first (to show
/// that a change is found). Attachments compare by size and SHA-256, read
/// as they stream by.
pub(crate) fn difference_after(
    hub: &Hub,
    received: &Path,
    sent: &Path,
    before_ms: i64,
    change: impl FnOnce(&mut Package),
) -> Option<truc_edxml::Difference> {
    let p = read_digests(sent);
    let mut q = read_digests(received);
    let t = q.trace.as_mut().expect("a TraceHeaderList");
    let hop = t.traces.pop().expect("the hub's TraceHeader");
    assert_eq!(hop.organ_id.as_deref(), Some(hub_name(hub).as_str()));
    let at = unix_ms(hop.timestamp.as_ref().expect("the hub's time"));
    // Timestamps are whole seconds (rounded).
    assert!(
        at >= before_ms - 1000 && at <= truc_core::now_unix_ms() + 1000,
        "{}: the hub's TraceHeader time {at} is not when it accepted the document (sent after {before_ms})",
        received.display()
    );
    if p.trace.is_none() && t.traces.is_empty() && t.business.is_none() && t.extras.is_empty() {
        q.trace = None;
    }
    change(&mut q);
    first_difference(&p, &q)
}

/// The status message `received` says what `sent` said, reported between
/// `before_ms` and `after_ms`. Set aside, because the hub does not keep
/// them: the Timestamp (the hub writes its own time of the report, checked
/// here to be within the report's window) and From's details other than
/// OrganId and OrganName (the hub keeps the reporter's code; the name is
/// its directory's, which the suite's hub registers as the messages
/// write it). `change` alters the received message before the comparison.
pub(crate) fn status_difference(
    received: &Path,
    sent: &Path,
    (before_ms, after_ms): (i64, i64),
    change: impl FnOnce(&mut Package),
) -> Option<truc_edxml::Difference> {
    let (mut p, _) = read(sent);
    let (mut q, _) = read(received);
    let Message::Status(s) = &mut q.message else {
        panic!("{}: not a status message", received.display())
    };
    let at = unix_ms(s.timestamp.as_ref().expect("the hub's time of the report"));
    assert!(
        at >= before_ms - 1000 && at <= after_ms + 1000,
        "{}: Timestamp {at} is not when the status was reported ({before_ms}..{after_ms})",
        received.display()
    );
    let Message::Status(sent_status) = &mut p.message else {
        panic!("{}: not a status message", sent.display())
    };
    sent_status.timestamp = s.timestamp.clone();
    sent_status.from = truc_edxml::Organization {
        organ_id: sent_status.from.organ_id.clone(),
        organ_name: sent_status.from.organ_name.clone(),
        ..Default::default()
    };
    change(&mut q);
    first_difference(&p, &q)
}
