//! The output contract through the real `truc`, against a real hub started
//! in this process on `127.0.0.1:0` with a real rcgen CA: `-o json` is one
//! JSON document for every command, `-o csv` RFC 4180 (read back here by
//! the `csv` crate, not by our writer), `--no-headers` drops header rows,
//! and `truc ops connections` shows who is connected.

mod support;

use std::path::PathBuf;
use std::process::Output;
use support::text;

use truc_core::Principal;
use truc_pki::{IssueOptions, Pki};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";
const H29: &str = "000.00.00.H29";
/// A Vietnamese field with a comma, quotes and a line break.
const TRICKY: &str = "Sở Nội vụ, \"Hà Nội\"\nphòng Văn thư";

/// A hub in this process, its CA, and the identities of an operator, an
/// auditor and two agencies.
struct Hub {
    tmp: tempfile::TempDir,
    pki: Pki,
    addr: String,
    rt: tokio::runtime::Runtime,
    running: Option<truc_hub::RunningHub>,
}

impl Hub {
    fn start() -> Hub {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::init(&tmp.path().join("pki"), "test", &[]).unwrap();
        for urn in [
            "urn:truc:operator:ops",
            "urn:truc:auditor:a1",
            &format!("urn:truc:agency:{G22}"),
            &format!("urn:truc:agency:{H26}"),
        ] {
            let p = Principal::parse_uri(urn).unwrap();
            pki.issue(&p, urn, &IssueOptions::default()).unwrap();
        }
        let config = truc_hub::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: tmp.path().join("data"),
            identity: pki.hub_dir(),
            shutdown_grace_seconds: 5,
            ..truc_hub::Config::default()
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let running = rt.block_on(truc_hub::start(config)).expect("hub starts");
        let hub = Hub {
            addr: running.addr.to_string(),
            tmp,
            pki,
            rt,
            running: Some(running),
        };
        for code in [G22, H26] {
            hub.ok(&hub.as_who("ops", &["ops", "agencies", "add", code, "--name", code]));
        }
        hub
    }

    fn dir(&self, who: &str) -> PathBuf {
        let urn = match who {
            "ops" => "urn:truc:operator:ops".to_string(),
            "a1" => "urn:truc:auditor:a1".to_string(),
            code => format!("urn:truc:agency:{code}"),
        };
        self.pki.identity_dir(&Principal::parse_uri(&urn).unwrap()).unwrap()
    }

    fn path(&self, name: &str) -> String {
        self.tmp.path().join(name).to_str().unwrap().to_string()
    }

    /// `args` with --hub and --identity of `who`.
    fn as_who(&self, who: &str, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--hub".into(),
            self.addr.clone(),
            "--identity".into(),
            self.dir(who).to_str().unwrap().into(),
        ]);
        v
    }

    fn truc(&self, args: &[impl AsRef<std::ffi::OsStr>]) -> Output {
        support::truc_command(self.tmp.path(), args).output().expect("run truc")
    }

    fn ok(&self, args: &[impl AsRef<std::ffi::OsStr>]) -> Output {
        let o = self.truc(args);
        assert!(
            o.status.success(),
            "{:?}: {}",
            args.iter().map(|a| a.as_ref().to_owned()).collect::<Vec<_>>(),
            text(&o)
        );
        o
    }

    /// A client of this process holding a connection as `who`.
    fn client(&self, who: &str) -> truc_client::Client {
        self.rt
            .block_on(truc_client::Client::connect_dir(&self.addr, &self.dir(who)))
            .expect("connect")
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.rt.block_on(r.shutdown());
        }
    }
}

/// stdout as CSV records, the header included, read strictly (every
/// record as long as the first).
fn records(o: &Output) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(o.stdout.as_slice());
    r.records()
        .map(|rec| {
            rec.unwrap_or_else(|e| panic!("not RFC 4180 CSV ({e}): {}", text(o)))
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// stdout as one JSON document.
fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", text(o)))
}

/// The column named `name` of `rows` (the header first).
fn column(rows: &[Vec<String>], name: &str) -> Vec<String> {
    let i = rows[0]
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", rows[0]));
    rows[1..].iter().map(|r| r[i].clone()).collect()
}

/// The year now, UTC (for a stats period around today).
fn this_year() -> i64 {
    let days = truc_core::now_unix_ms() / 86_400_000;
    1970 + (days * 400) / 146_097
}

/// Every command that prints results, as `who` would run it, for pass
/// `n` (what changes the hub differs between passes: ids, codes).
fn commands(hub: &Hub, n: usize, id: &str) -> Vec<Vec<String>> {
    let file = hub.path(&format!("f{n}.txt"));
    std::fs::write(&file, format!("pass {n}")).unwrap();
    let export = hub.path(&format!("export{n}.json"));
    let key = hub.pki.hub_dir().join("receipts.pub");
    let key = key.to_str().unwrap();
    let state = hub.path("watch.json");
    let y = this_year();
    let (from, to) = (format!("{}-01-01", y - 1), format!("{}-12-31", y + 1));
    let pki = hub.path("pki");
    let code = ["05", "06"][n % 2];
    // Agencies registered by mistake (removed), merged (retired), and one
    // whose certificate is revoked.
    let (typo, merged, gone) = (
        format!("000.00.00.H3{n}"),
        format!("000.00.00.H4{n}"),
        format!("000.00.00.K1{n}"),
    );
    vec![
        hub.as_who(
            G22,
            &["send", "--to", H26, "--id", &format!("{G22},2026/02/02,{n}/P"), &file],
        ),
        hub.as_who(G22, &["send", "--abandon", &file]),
        hub.as_who(H26, &["inbox", "--out", &hub.path("inbox")]),
        hub.as_who(H26, &["status", id, "--code", code]),
        hub.as_who(G22, &["track", id]),
        hub.as_who(G22, &["stats", "--from", &from, "--to", &to]),
        hub.as_who("ops", &["ops", "agencies", "list"]),
        hub.as_who("ops", &["ops", "agencies", "add", H29, "--name", TRICKY]),
        hub.as_who("ops", &["ops", "agencies", "suspend", H29, "--reason", TRICKY]),
        hub.as_who("ops", &["ops", "agencies", "resume", H29]),
        hub.as_who("ops", &["ops", "agencies", "add", &typo, "--name", "typo"]),
        hub.as_who("ops", &["ops", "agencies", "remove", &typo, "--reason", TRICKY]),
        hub.as_who("ops", &["ops", "agencies", "add", &merged, "--name", "merged"]),
        hub.as_who("ops", &["ops", "agencies", "retire", &merged, "--successor", H26]),
        hub.as_who("ops", &["ops", "queues"]),
        hub.as_who("ops", &["ops", "queue", H26]),
        hub.as_who("ops", &["ops", "dlq", "list", H26]),
        hub.as_who("ops", &["ops", "dlq", "redrive", "--agency", H26]),
        hub.as_who("ops", &["ops", "dlq", "purge", "--agency", H26, "--yes"]),
        hub.as_who("ops", &["ops", "trace", id]),
        hub.as_who("ops", &["ops", "storage"]),
        hub.as_who("ops", &["ops", "verify-store"]),
        hub.as_who("ops", &["ops", "stats", "--from", &from, "--to", &to, "--by", "month"]),
        hub.as_who("ops", &["ops", "status"]),
        hub.as_who("ops", &["ops", "connections"]),
        hub.as_who("ops", &["ops", "reload"]),
        hub.as_who("a1", &["audit", "receipts", "--agency", H26]),
        hub.as_who("a1", &["audit", "receipts", "--document", id, "--out", &export]),
        hub.as_who("a1", &["audit", "heads", "--hub-key", key]),
        hub.as_who("a1", &["audit", "watch", "--once", "--state", &state, "--hub-key", key]),
        ["audit", "verify", &export, "--hub-key", key]
            .map(String::from)
            .to_vec(),
        ["pki", "list", "--dir", &pki].map(String::from).to_vec(),
        ["pki", "init", "--dir", &hub.path(&format!("pki{n}"))]
            .map(String::from)
            .to_vec(),
        ["pki", "issue", "--dir", &pki, "--operator", &format!("op{n}")]
            .map(String::from)
            .to_vec(),
        ["pki", "renew", "--dir", &pki, "--operator", &format!("op{n}")]
            .map(String::from)
            .to_vec(),
        ["pki", "issue", "--dir", &pki, "--agency", &gone]
            .map(String::from)
            .to_vec(),
        ["pki", "revoke", "--dir", &pki, "--agency", &gone]
            .map(String::from)
            .to_vec(),
        [
            "context",
            "add",
            &format!("c{n}"),
            "--hub",
            &hub.addr,
            "--identity",
            hub.dir("ops").to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec(),
        ["context", "use", &format!("c{n}")].map(String::from).to_vec(),
        ["context", "list"].map(String::from).to_vec(),
        ["context", "remove", &format!("c{n}")].map(String::from).to_vec(),
    ]
}

/// Whether running `args` again prints the same rows.
fn reads_only(args: &[String]) -> bool {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    !matches!(
        a[..],
        ["send", ..]
            | ["inbox", ..]
            | ["status", ..]
            | ["pki", "init" | "issue" | "renew" | "revoke", ..]
            | ["context", "add" | "use" | "remove", ..]
            | [
                "ops",
                "agencies",
                "add" | "suspend" | "resume" | "remove" | "retire",
                ..
            ]
            | ["ops", "dlq", "redrive" | "purge", ..]
            | ["ops", "reload", ..]
            | ["audit", "watch", ..]
            | ["audit", "receipts", "--document", ..]
    )
}

/// `-o json` gives one JSON document for every command, `-o csv` strict
/// CSV with one header row, a single object as one row; `--no-headers`
/// drops that row. A Vietnamese agency name and subject with commas,
/// quotes and a line break come back whole.
#[test]
fn every_command_prints_json_and_csv_with_o() {
    let hub = Hub::start();
    let id = format!("{G22},2026/01/01,1/CSV");
    let doc = hub.path("doc.txt");
    std::fs::write(&doc, "nội dung").unwrap();
    hub.ok(&hub.as_who(G22, &["send", "--to", H26, "--id", &id, "--subject", TRICKY, &doc]));

    // The subject, a row of `inbox -o csv` as it arrives.
    let o = hub.ok(&hub.as_who(H26, &["inbox", "-o", "csv", "--out", &hub.path("inbox")]));
    let rows = records(&o);
    assert_eq!(column(&rows, "subject"), [TRICKY], "{}", text(&o));
    assert_eq!(column(&rows, "kind"), ["document"]);
    assert_eq!(column(&rows, "document_id"), [id.as_str()]);
    // The inbox reported 01; 03 comes before the passes' 05 and 06
    // (truc_core::status_rules).
    hub.ok(&hub.as_who(H26, &["status", &id, "--code", "03"]));

    for (n, format) in ["json", "csv"].into_iter().enumerate() {
        for mut args in commands(&hub, n, &id) {
            args.extend(["-o".to_string(), format.to_string()]);
            let o = hub.ok(&args);
            if format == "json" {
                json(&o);
                continue;
            }
            let rows = records(&o);
            assert!(!rows.is_empty(), "{args:?}: no header row: {}", text(&o));
            // A header row of column names (lower-case JSON keys).
            assert!(
                rows[0].iter().all(|c| !c.is_empty()
                    && c.chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')),
                "{args:?}: {:?}",
                rows[0]
            );
            // Without headers: the same rows but the first (for commands
            // that change nothing, so that a second run prints the same).
            if !reads_only(&args) {
                continue;
            }
            args.push("--no-headers".into());
            let bare = records(&hub.ok(&args));
            assert_eq!(bare.len(), rows.len() - 1, "{args:?}: {bare:?} vs {rows:?}");
        }
    }

    // Lists: a row per item under the JSON's keys, values as in the JSON.
    let list = hub.as_who("ops", &["ops", "agencies", "list"]);
    let o = hub.ok(&[&list[..], &["-o".into(), "csv".into()]].concat());
    let rows = records(&o);
    assert_eq!(
        rows[0],
        [
            "code",
            "name",
            "state",
            "registered_at_unix_ms",
            "registered_at",
            "queued",
            "successor",
            "certificate_not_after_unix_ms",
            "certificate_not_after"
        ]
    );
    // By code: G22, H26, H29, then the two retired in the loop.
    assert_eq!(column(&rows, "code")[..3], [G22, H26, H29]);
    assert_eq!(column(&rows, "name")[2], TRICKY);
    let j = json(&hub.ok(&[&list[..], &["-o".into(), "json".into()]].concat()));
    assert_eq!(j[2]["name"], TRICKY);
    assert_eq!(
        column(&rows, "registered_at_unix_ms")[2],
        j[2]["registered_at_unix_ms"].to_string()
    );
    // Tables: --no-headers leaves the rows only.
    let table = String::from_utf8(hub.ok(&list).stdout).unwrap();
    assert!(table.starts_with("CODE "), "{table}");
    let bare = String::from_utf8(hub.ok(&[&list[..], &["--no-headers".into()]].concat()).stdout).unwrap();
    assert_eq!(bare.lines().next().map(|l| l.starts_with(G22)), Some(true), "{bare}");
    assert_eq!(bare.lines().count() + 1, table.lines().count(), "{table}\n{bare}");

    // One object: one row under its keys.
    let o = hub.ok(&hub.as_who("ops", &["ops", "status", "-o", "csv"]));
    let rows = records(&o);
    assert_eq!(rows.len(), 2, "{}", text(&o));
    assert_eq!(column(&rows, "hub_principal"), ["urn:truc:hub:test"]);

    // --json and --jsonl are -o json and -o jsonl; contradictions and
    // unknown formats are usage errors (exit 2), JSON when JSON was asked.
    let o = hub.truc(&hub.as_who("ops", &["ops", "status", "-o", "xml"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("table, json, jsonl, csv"), "{}", text(&o));
    let o = hub.truc(&hub.as_who("ops", &["ops", "status", "--json", "-o", "csv"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = hub.truc(&hub.as_who("ops", &["ops", "queue", "000.00.00.h26", "-o", "json"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(json(&o)["error"]["code"], "usage");
    let o = hub.truc(&hub.as_who("ops", &["ops", "queue", "000.00.00.H62", "-ojson"]));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(json(&o)["error"]["code"], "not_found");
    let o = hub.truc(&hub.as_who("ops", &["ops", "queues", "--watch", "-o", "csv"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// `truc ops connections`: both agencies connected, by URN, in JSON, CSV
/// and the table; the operator's own connection marked; refused (exit 4)
/// to an agency.
#[test]
fn ops_connections_shows_connected_agencies_and_refuses_an_agency() {
    let hub = Hub::start();
    let g22 = hub.client(G22);
    let h26 = hub.client(H26);
    // Both have talked to the hub on the connection they hold.
    hub.rt.block_on(async {
        g22.inbox_state().await.unwrap();
        h26.inbox_state().await.unwrap();
    });
    let urns = [format!("urn:truc:agency:{G22}"), format!("urn:truc:agency:{H26}")];

    let o = hub.ok(&hub.as_who("ops", &["ops", "connections", "-o", "json"]));
    let list = json(&o);
    let list = list.as_array().unwrap_or_else(|| panic!("not an array: {}", text(&o)));
    for urn in &urns {
        let rows: Vec<_> = list.iter().filter(|c| c["principal"] == urn.as_str()).collect();
        assert_eq!(rows.len(), 1, "{urn}: {list:?}");
        assert!(rows[0]["peer_address"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(rows[0]["requests_total"].as_u64().unwrap() >= 1, "{:?}", rows[0]);
        assert_eq!(rows[0]["caller"], false);
    }
    let own: Vec<_> = list.iter().filter(|c| c["caller"] == true).collect();
    assert_eq!(own.len(), 1, "{list:?}");
    assert_eq!(own[0]["principal"], "urn:truc:operator:ops");

    let rows = records(&hub.ok(&hub.as_who("ops", &["ops", "connections", "-o", "csv"])));
    assert_eq!(
        rows[0],
        [
            "principal",
            "peer_address",
            "connected_at_unix_ms",
            "connected_at",
            "open_requests",
            "requests_total",
            "tls_version",
            "cipher_suite",
            "caller",
            "request_bytes_held",
            "request_bytes_held_peak",
            "requests_held_peak",
            "requests_pushed_back"
        ]
    );
    let principals = column(&rows, "principal");
    for urn in &urns {
        assert_eq!(principals.iter().filter(|p| *p == urn).count(), 1, "{rows:?}");
    }
    let bare = records(&hub.ok(&hub.as_who("ops", &["ops", "connections", "-o", "csv", "--no-headers"])));
    assert!(bare.iter().all(|r| r[0].starts_with("urn:truc:")), "{bare:?}");

    let table = text(&hub.ok(&hub.as_who("ops", &["ops", "connections"])));
    assert!(table.starts_with("PRINCIPAL "), "{table}");
    for code in [G22, H26] {
        assert!(table.contains(&format!("agency:{code} ")), "{table}");
    }
    assert!(table.contains("operator:ops (you)"), "{table}");

    // An agency certificate is refused, as for every operator command.
    let o = hub.truc(&hub.as_who(G22, &["ops", "connections", "-o", "json"]));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let e = json(&o);
    assert_eq!(e["error"]["code"], "refused", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("not an operator"),
        "{e}"
    );
    let o = hub.truc(&hub.as_who(H26, &["ops", "connections"]));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(o.stdout.is_empty(), "{}", text(&o));
    drop((g22, h26));
}
