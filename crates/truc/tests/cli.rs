//! The CLI as people live with it, through the real `truc` and `trucd`:
//! long-running commands across a hub restart, and (further down) the
//! output contract, exit codes and errors.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::text;

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";

/// A CA, a hub on a port of its own, an operator and two agencies.
struct Hub {
    tmp: tempfile::TempDir,
    addr: String,
    trucd: Option<Child>,
    /// trucd's --log-format, its stderr going to `log_path()`.
    log_format: &'static str,
}

impl Hub {
    fn start() -> Hub {
        Self::start_logging("plain")
    }

    fn start_logging(log_format: &'static str) -> Hub {
        let tmp = tempfile::tempdir().unwrap();
        let port = support::free_port();
        let mut hub = Hub {
            addr: format!("127.0.0.1:{port}"),
            tmp,
            trucd: None,
            log_format,
        };
        let pki = hub.pki();
        let pki = pki.to_str().unwrap();
        hub.ok(&["pki", "init", "--dir", pki]);
        hub.ok(&["pki", "issue", "--dir", pki, "--operator", "ops"]);
        hub.ok(&["pki", "issue", "--dir", pki, "--auditor", "a1"]);
        for code in [G22, H26] {
            hub.ok(&["pki", "issue", "--dir", pki, "--agency", code, "--name", code]);
        }
        hub.run_trucd();
        for code in [G22, H26] {
            hub.ok(&hub.as_ops(&["ops", "agencies", "add", code, "--name", code]));
        }
        hub
    }

    fn log_path(&self) -> PathBuf {
        self.tmp.path().join(format!("trucd-{}.log", self.log_format))
    }

    fn pki(&self) -> PathBuf {
        self.tmp.path().join("pki")
    }

    fn run_trucd(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_trucd"))
            .args(["--identity", self.pki().join("hub").to_str().unwrap()])
            .args(["--data-dir", self.tmp.path().join("data").to_str().unwrap()])
            .args(["--listen", &self.addr, "--log-format", self.log_format])
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log_path()).unwrap())
            .spawn()
            .expect("start trucd");
        self.trucd = Some(child);
        // Ready when an operator command answers.
        let deadline = Instant::now() + Duration::from_secs(60);
        let args = self.as_ops(&["ops", "agencies", "list"]);
        loop {
            if self.truc(&args).status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "trucd did not come up on {}", self.addr);
            std::thread::sleep(Duration::from_millis(50)); // polling, not a sync point
        }
    }

    /// SIGTERM and wait: trucd drains and exits.
    fn stop(&mut self) {
        if let Some(mut c) = self.trucd.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let status = c.wait().unwrap();
            assert!(status.success(), "trucd exit {status}");
        }
    }

    fn identity(&self, who: &str) -> String {
        let dir = if who == "ops" {
            self.pki().join("operators/ops")
        } else if who == "a1" {
            self.pki().join("auditors/a1")
        } else {
            self.pki().join("agencies").join(who)
        };
        dir.to_str().unwrap().to_string()
    }

    /// `args` with --hub and --identity of `who` appended.
    fn as_who(&self, who: &str, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--hub".into(),
            self.addr.clone(),
            "--identity".into(),
            self.identity(who),
        ]);
        v
    }

    fn as_ops(&self, args: &[&str]) -> Vec<String> {
        self.as_who("ops", args)
    }

    fn cmd(&self, args: &[impl AsRef<std::ffi::OsStr>]) -> Command {
        support::truc_command(self.tmp.path(), args)
    }

    fn truc(&self, args: &[impl AsRef<std::ffi::OsStr>]) -> Output {
        self.cmd(args).output().expect("run truc")
    }

    fn ok(&self, args: &[impl AsRef<std::ffi::OsStr>]) -> Output {
        let o = self.truc(args);
        assert!(o.status.success(), "{}", text(&o));
        o
    }

    /// Send `content` as G22 to H26 with document id `id`.
    fn send(&self, id: &str, content: &str) {
        let file = self.tmp.path().join(format!("{}.txt", id.replace(['/', ','], "_")));
        std::fs::write(&file, content).unwrap();
        let args = self.as_who(G22, &["send", "--to", H26, "--id", id, file.to_str().unwrap()]);
        self.ok(&args);
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut c) = self.trucd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A child whose stdout and stderr lines arrive on channels.
struct Watched {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
}

impl Watched {
    fn spawn(mut cmd: Command) -> Watched {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let lines = |r: Box<dyn Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
            rx
        };
        let out = lines(Box::new(child.stdout.take().unwrap()));
        let err = lines(Box::new(child.stderr.take().unwrap()));
        Watched { child, out, err }
    }

    /// The next stdout line (60 s at most).
    fn line(&self, what: &str) -> String {
        self.out.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            panic!(
                "no line from {what}; stderr: {:?}",
                self.err.try_iter().collect::<Vec<_>>()
            )
        })
    }

    /// Stderr lines until one contains `needle` (60 s at most).
    fn wait_err(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no {needle:?} on stderr"),
            }
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `truc inbox --follow` and `truc ops queues --watch` across a trucd
/// restart (SIGTERM, start again on the same port): both say once that
/// they reconnect and once that they did, and go on; the document sent
/// after the restart arrives; each document is written once and the hub
/// holds nothing unacknowledged.
#[test]
fn inbox_follow_and_queues_watch_continue_across_a_hub_restart() {
    let mut hub = Hub::start();
    let out = hub.tmp.path().join("inbox-h26");
    let inbox =
        Watched::spawn(hub.cmd(&hub.as_who(H26, &["inbox", "--follow", "--jsonl", "--out", out.to_str().unwrap()])));
    let watch = Watched::spawn(hub.cmd(&hub.as_ops(&["ops", "queues", "--watch", "--jsonl"])));
    watch.line("ops queues --watch");

    hub.send("000.00.00.G22,2026/01/01,1/R", "before the restart");
    let first: serde_json::Value = serde_json::from_str(&inbox.line("inbox --follow")).unwrap();
    assert_eq!(first["header"]["document_id"], "000.00.00.G22,2026/01/01,1/R");

    hub.stop();
    inbox.wait_err("reconnecting…");
    watch.wait_err("reconnecting…");
    hub.run_trucd();
    hub.send("000.00.00.G22,2026/01/01,2/R", "after the restart");
    let second: serde_json::Value = serde_json::from_str(&inbox.line("inbox --follow")).unwrap();
    assert_eq!(second["header"]["document_id"], "000.00.00.G22,2026/01/01,2/R");
    let l = inbox.wait_err("reconnected after");
    assert!(l.starts_with("truc: reconnected after ") && l.ends_with(" s"), "{l}");
    watch.wait_err("reconnected after");
    // The watch goes on refreshing after the restart.
    let _ = watch.out.try_iter().count();
    let rows: serde_json::Value = serde_json::from_str(&watch.line("ops queues --watch after the restart")).unwrap();
    assert!(rows.as_array().is_some_and(|r| r.len() == 2), "{rows}");

    // Each document once on disk (payload and header), none twice.
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".header.json")).count(),
        2,
        "{names:?}"
    );
    // Nothing waits or is in flight for H26: both acked.
    let q = hub.ok(&hub.as_ops(&["ops", "queues", "--json"]));
    let q: serde_json::Value = serde_json::from_slice(&q.stdout).unwrap();
    let row = q
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agency"] == H26)
        .unwrap()
        .clone();
    assert_eq!(
        (row["queued"].as_u64(), row["in_flight"].as_u64()),
        (Some(0), Some(0)),
        "{row}"
    );
}

/// `--no-reconnect`: the first break ends the command with exit 5
/// (unavailable), for scripts that restart it themselves.
#[test]
fn no_reconnect_stops_at_the_break_with_exit_5() {
    let mut hub = Hub::start();
    let out = hub.tmp.path().join("inbox");
    let mut inbox = Watched::spawn(hub.cmd(&hub.as_who(
        H26,
        &["inbox", "--follow", "--no-reconnect", "--out", out.to_str().unwrap()],
    )));
    hub.send("000.00.00.G22,2026/01/01,3/R", "one");
    inbox.line("inbox");
    hub.stop();
    let status = inbox.child.wait().unwrap();
    assert_eq!(status.code(), Some(5), "{:?}", inbox.err.try_iter().collect::<Vec<_>>());
}

/// The output of a failed command: its exit code and, with --json, the
/// error document on stdout.
fn json_error(o: &Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", text(o)));
    assert!(
        v["error"]["code"].is_string() && v["error"]["message"].is_string(),
        "{v}"
    );
    v
}

/// No silent wrong answers: an unregistered code is "not found" (exit 3),
/// a malformed one a usage error (exit 2) naming both formats, a bare
/// level-1 code is refused unless asked for, a typo can be removed (an
/// agency with traffic cannot: retire it), and the sender's acceptance
/// names a redirect to a successor.
#[test]
fn unknown_and_malformed_codes_fail_and_typos_can_be_removed() {
    let hub = Hub::start();
    let o = hub.truc(&hub.as_ops(&["ops", "queue", "000.00.00.H62"]));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("000.00.00.H62 is not registered"), "{}", text(&o));
    let o = hub.truc(&hub.as_ops(&["ops", "dlq", "list", "000.00.00.H62", "--json"]));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(json_error(&o)["error"]["code"], "not_found");

    let o = hub.truc(&hub.as_who("a1", &["audit", "receipts", "--agency", "000.00.00.H62"]));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));

    // Malformed: refused before anything is sent, naming both formats.
    let o = hub.truc(&hub.as_ops(&["ops", "dlq", "list", "000.00.00.h62"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("000.00.00.G22") && text(&o).contains("G09.01"),
        "{}",
        text(&o)
    );
    let o = hub.truc(&hub.as_ops(&["ops", "queue", "G2", "--json"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(json_error(&o)["error"]["code"], "usage");

    // A code where a delivery id belongs: says what it expected.
    let o = hub.truc(&hub.as_ops(&["ops", "dlq", "redrive", H26]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains(&format!("pass it as --agency {H26}")), "{}", text(&o));

    // A bare level-1 code is refused unless asked for; then it can be
    // removed, as it never had traffic.
    let o = hub.truc(&hub.as_ops(&["ops", "agencies", "add", "G22", "--name", "typo"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("did you mean 000.00.00.G22?"), "{}", text(&o));
    hub.ok(&hub.as_ops(&["ops", "agencies", "add", "G22", "--name", "typo", "--allow-short"]));
    let o = hub.ok(&hub.as_ops(&["ops", "agencies", "remove", "G22", "--reason", "typo", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["code"].as_str(), v["removed"].as_bool()),
        (Some("G22"), Some(true)),
        "{v}"
    );
    let list = hub.ok(&hub.as_ops(&["ops", "agencies", "list", "--json"]));
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(list.as_array().unwrap().iter().all(|a| a["code"] != "G22"), "{list}");
    let o = hub.truc(&hub.as_ops(&["ops", "agencies", "remove", "G22"]));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));

    // An agency with traffic is retired, not removed.
    hub.send("000.00.00.G22,2026/01/01,9/R", "traffic");
    let o = hub.truc(&hub.as_ops(&["ops", "agencies", "remove", H26]));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("retire it instead"), "{}", text(&o));

    // A document to a retired agency: the acceptance names the successor.
    hub.ok(&hub.as_ops(&["ops", "agencies", "add", "000.00.00.H29", "--name", "H29"]));
    hub.ok(&hub.as_ops(&[
        "ops",
        "agencies",
        "retire",
        H26,
        "--successor",
        "000.00.00.H29",
        "--json",
    ]));
    let file = hub.tmp.path().join("r.txt");
    std::fs::write(&file, "to a retired agency").unwrap();
    let o = hub.ok(&hub.as_who(
        G22,
        &[
            "send",
            "--to",
            H26,
            "--number",
            "1",
            "--notation",
            "R",
            file.to_str().unwrap(),
        ],
    ));
    assert!(
        text(&o).contains(&format!(
            "{H26} is retired: its copy goes to its successor 000.00.00.H29"
        )),
        "{}",
        text(&o)
    );
    let o = hub.ok(&hub.as_who(
        G22,
        &[
            "send",
            "--to",
            H26,
            "--number",
            "2",
            "--notation",
            "R",
            "--json",
            file.to_str().unwrap(),
        ],
    ));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["redirects"][0]["delivered_to"], "000.00.00.H29", "{v}");
}

/// Every command that talks to the hub prints one JSON document with
/// --json (parsed here by a JSON parser), and JSON Lines with --jsonl.
#[test]
fn every_command_prints_json_with_json() {
    let hub = Hub::start();
    let id = "000.00.00.G22,2026/01/01,5/R";
    hub.send(id, "json");
    let file = hub.tmp.path().join("j.txt");
    std::fs::write(&file, "j").unwrap();
    let out = hub.tmp.path().join("inbox-json");
    let receipts = hub.tmp.path().join("receipts.json");
    let hub_key = hub.pki().join("hub/receipts.pub");
    let state = hub.tmp.path().join("watch-state.json");
    let commands: Vec<Vec<String>> = vec![
        hub.as_who(
            G22,
            &[
                "send",
                "--to",
                H26,
                "--number",
                "6",
                "--notation",
                "R",
                "--json",
                file.to_str().unwrap(),
            ],
        ),
        hub.as_who(H26, &["inbox", "--json", "--out", out.to_str().unwrap()]),
        hub.as_who(H26, &["status", id, "--code", "03", "--json"]),
        hub.as_who(G22, &["track", id, "--json"]),
        hub.as_ops(&["ops", "agencies", "list", "--json"]),
        hub.as_ops(&["ops", "agencies", "add", "000.00.00.H29", "--name", "H29", "--json"]),
        hub.as_ops(&["ops", "agencies", "suspend", "000.00.00.H29", "--json"]),
        hub.as_ops(&["ops", "agencies", "resume", "000.00.00.H29", "--json"]),
        hub.as_ops(&["ops", "queues", "--json"]),
        hub.as_ops(&["ops", "queue", H26, "--json"]),
        hub.as_ops(&["ops", "dlq", "list", H26, "--json"]),
        hub.as_ops(&["ops", "dlq", "redrive", "--agency", H26, "--json"]),
        hub.as_ops(&["ops", "dlq", "purge", "--agency", H26, "--yes", "--json"]),
        hub.as_ops(&["ops", "trace", id, "--json"]),
        hub.as_ops(&["ops", "storage", "--json"]),
        hub.as_ops(&["ops", "status", "--json"]),
        hub.as_ops(&["ops", "reload", "--json"]),
        hub.as_ops(&["ops", "verify-store", "--json"]),
        hub.as_who("a1", &["audit", "receipts", "--json", "--agency", H26]),
        hub.as_who(
            "a1",
            &[
                "audit",
                "receipts",
                "--document",
                id,
                "--out",
                receipts.to_str().unwrap(),
                "--json",
            ],
        ),
        hub.as_who(
            "a1",
            &["audit", "heads", "--json", "--hub-key", hub_key.to_str().unwrap()],
        ),
        hub.as_who(
            "a1",
            &[
                "audit",
                "watch",
                "--once",
                "--json",
                "--state",
                state.to_str().unwrap(),
                "--hub-key",
                hub_key.to_str().unwrap(),
            ],
        ),
        vec![
            "audit".into(),
            "verify".into(),
            receipts.to_str().unwrap().into(),
            "--hub-key".into(),
            hub_key.to_str().unwrap().into(),
            "--json".into(),
        ],
    ];
    for args in &commands {
        let o = hub.truc(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        serde_json::from_str::<serde_json::Value>(stdout.trim())
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {stdout}"));
    }
    // --jsonl: a line per delivery, each a document.
    hub.send("000.00.00.G22,2026/01/01,6/R", "a");
    hub.send("000.00.00.G22,2026/01/01,7/R", "b");
    let o = hub.ok(&hub.as_who(H26, &["inbox", "--jsonl", "--out", out.to_str().unwrap()]));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    // A stream asked for as one document: a usage error saying --jsonl.
    let o = hub.truc(&hub.as_who(H26, &["inbox", "--follow", "--json"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(json_error(&o)["error"]["hint"].as_str().unwrap().contains("--jsonl"));
}

/// Exit codes per class, each error with a hint; --json errors on stdout.
#[test]
fn exit_codes_say_what_kind_of_failure_and_errors_say_what_to_do() {
    let hub = Hub::start();
    // 2 usage (clap), JSON too.
    let o = hub.truc(&["send", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(json_error(&o)["error"]["code"], "usage");
    // 4 refused: an agency is not an operator.
    let o = hub.truc(&hub.as_who(G22, &["ops", "queues"]));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("hint: "), "{}", text(&o));
    // 5 unavailable: nothing listens there; the error names the address
    // and TRUC_HUB, once.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut args = hub.as_ops(&["ops", "queues", "--json"]);
    let at = args.iter().position(|a| a == "--hub").unwrap();
    args[at + 1] = dead.clone();
    let o = hub.truc(&args);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let e = json_error(&o);
    assert_eq!(e["error"]["code"], "unavailable");
    assert!(
        e["error"]["hint"]
            .as_str()
            .unwrap()
            .contains(&format!("is trucd running at {dead}? (--hub, TRUC_HUB)")),
        "{e}"
    );
    let msg = e["error"]["message"].as_str().unwrap();
    assert_eq!(msg.matches("tcp connect error").count(), 1, "said once: {msg}");
    // A port out of range: a usage error before any connection.
    args[at + 1] = "127.0.0.1:99999".into();
    let o = hub.truc(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        json_error(&o)["error"]["message"].as_str().unwrap().contains("99999"),
        "{}",
        text(&o)
    );
    // 6 verification failed: an export checked against another key.
    let receipts = hub.tmp.path().join("r.json");
    hub.send("000.00.00.G22,2026/01/01,8/R", "v");
    hub.ok(&hub.as_who(
        "a1",
        &[
            "audit",
            "receipts",
            "--document",
            "000.00.00.G22,2026/01/01,8/R",
            "--out",
            receipts.to_str().unwrap(),
        ],
    ));
    let other = hub.tmp.path().join("other");
    hub.ok(&["pki", "init", "--dir", other.to_str().unwrap()]);
    let o = hub.truc(&[
        "audit",
        "verify",
        receipts.to_str().unwrap(),
        "--hub-key",
        other.join("hub/receipts.pub").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
}

/// `truc … | head`: the reader goes away; truc ends quietly, no panic.
#[test]
fn a_closed_pipe_ends_quietly() {
    let hub = Hub::start();
    for i in 0..3 {
        hub.ok(&hub.as_ops(&[
            "ops",
            "agencies",
            "add",
            &format!("000.00.00.H{:02}", 40 + i),
            "--name",
            "x",
        ]));
    }
    let mut child = hub
        .cmd(&hub.as_ops(&["ops", "agencies", "list"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // as `head` does once it has its lines
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(0), "{err}");
}

/// A client dialling the hub by an address its certificate does not name
/// is told so, with the command that fixes it; `truc pki renew --hub
/// --san` (same key) adds the name, the running hub picks the certificate
/// up, and `truc pki list` shows both certificates.
#[test]
fn dialling_the_hub_by_ip_after_pki_renew_with_san() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let p = pki.to_str().unwrap();
    let truc = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_truc"))
            .args(args)
            .env_remove("TRUC_HUB")
            .env_remove("TRUC_IDENTITY")
            .output()
            .unwrap()
    };
    assert!(truc(&["pki", "init", "--dir", p]).status.success());
    assert!(truc(&["pki", "issue", "--dir", p, "--operator", "ops"])
        .status
        .success());
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.2:{port}");
    let mut trucd = Command::new(env!("CARGO_BIN_EXE_trucd"))
        .args(["--identity", pki.join("hub").to_str().unwrap()])
        .args(["--data-dir", tmp.path().join("data").to_str().unwrap()])
        .args(["--listen", &addr])
        .env("TRUC_TLS_RELOAD_POLL_MS", "200")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ops = pki.join("operators/ops");
    let list = || {
        truc(&[
            "ops",
            "agencies",
            "list",
            "--json",
            "--hub",
            &addr,
            "--identity",
            ops.to_str().unwrap(),
        ])
    };
    // Up, but not valid for that name.
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let o = list();
        if String::from_utf8_lossy(&o.stdout).contains("not valid for name") || Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(Duration::from_millis(50)); // polling, not a sync point
    };
    assert_eq!(refused.status.code(), Some(5), "{}", text(&refused));
    let hint = json_error(&refused)["error"]["hint"].as_str().unwrap().to_string();
    assert!(hint.contains("--san 127.0.0.2"), "{hint}");

    let o = truc(&[
        "pki",
        "renew",
        "--dir",
        p,
        "--hub",
        "axis",
        "--san",
        "127.0.0.2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let renewed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        renewed["names"].as_array().unwrap().iter().any(|n| n == "127.0.0.2"),
        "{renewed}"
    );
    let old = renewed["replaced_serial"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !list().status.success() {
        assert!(
            Instant::now() < deadline,
            "the hub never served the renewed certificate: {}",
            text(&list())
        );
        std::thread::sleep(Duration::from_millis(50)); // polling, not a sync point
    }
    let _ = trucd.kill();
    let _ = trucd.wait();

    let o = truc(&["pki", "list", "--dir", p, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let hub_rows: Vec<_> = rows.as_array().unwrap().iter().filter(|r| r["role"] == "hub").collect();
    assert_eq!(hub_rows.len(), 2, "{rows}");
    assert!(
        hub_rows
            .iter()
            .any(|r| r["serial"] == old.as_str() && r["state"] == "replaced"),
        "{rows}"
    );
    let table = truc(&["pki", "list", "--dir", p]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.starts_with("SERIAL") && table.contains("operator") && table.contains("replaced"),
        "{table}"
    );
}

/// An expired identity: refused before connecting, saying when it expired
/// and the renew command; renewed, it works.
#[test]
fn an_expired_identity_says_when_and_how_to_renew() {
    let hub = Hub::start();
    let pki = truc_pki::Pki::open(&hub.pki()).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(10 * 86_400);
    let opts = truc_pki::IssueOptions {
        not_before: Some(old),
        not_after: Some(old + Duration::from_secs(86_400)),
        ..Default::default()
    };
    let late = truc_core::Principal::parse_uri("urn:truc:operator:late").unwrap();
    pki.issue(&late, "late", &opts).unwrap();
    let mut args = hub.as_ops(&["ops", "queues"]);
    let dir = hub.pki().join("operators/late");
    *args.last_mut().unwrap() = dir.to_str().unwrap().to_string();
    let o = hub.truc(&args);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("expired at"), "{out}");
    let renew = format!("truc pki renew --dir {} --operator late", hub.pki().display());
    assert!(out.contains(&renew), "{out}");
    let r = hub.ok(&renew.split(' ').skip(1).collect::<Vec<_>>());
    assert!(text(&r).contains("the same key"), "{}", text(&r));
    hub.ok(&args);
}

/// Logs for people and machines: a plain log written to a file has no
/// colour codes; a refusal says who (the principal's URN), the code by
/// name and the message as written; JSON lines are valid JSON with one
/// `message` key each.
#[test]
fn logs_without_colour_in_files_and_refusals_that_read() {
    for format in ["plain", "json"] {
        let hub = Hub::start_logging(format);
        hub.ok(&hub.as_ops(&["ops", "agencies", "suspend", H26, "--reason", "bảo trì"]));
        let file = hub.tmp.path().join("f.txt");
        std::fs::write(&file, "x").unwrap();
        let o = hub.truc(&hub.as_who(
            H26,
            &[
                "send",
                "--to",
                G22,
                "--number",
                "1",
                "--notation",
                "L",
                file.to_str().unwrap(),
            ],
        ));
        assert_eq!(o.status.code(), Some(4), "{}", text(&o));
        let deadline = Instant::now() + Duration::from_secs(30);
        let log = loop {
            let log = std::fs::read_to_string(hub.log_path()).unwrap();
            if log.contains("suspended") || Instant::now() > deadline {
                break log;
            }
            std::thread::sleep(Duration::from_millis(50)); // polling, not a sync point
        };
        assert!(!log.contains('\x1b'), "{format}: colour codes in a file:\n{log}");
        let line = log
            .lines()
            .find(|l| l.contains("refused") && l.contains("suspended"))
            .unwrap_or_else(|| panic!("{format}: no refusal line:\n{log}"));
        assert!(line.contains("urn:truc:agency:000.00.00.H26"), "{line}");
        assert!(
            line.contains("FAILED_PRECONDITION") || line.contains("PERMISSION_DENIED"),
            "{line}"
        );
        assert!(
            line.contains("000.00.00.H26 is suspended") && !line.contains("%20"),
            "{line}"
        );
        assert!(!line.contains("Some("), "{line}");
        if format == "json" {
            for l in log.lines() {
                serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                assert!(l.matches("\"message\"").count() <= 1, "a repeated message key: {l}");
            }
        }
    }
}

/// Chunked sends that talk: a note left by a failed send of the same file
/// to other recipients is mentioned (this send starts its own), progress
/// goes to stderr as lines off a terminal, `--abandon` forgets the notes.
#[test]
fn chunked_sends_mention_other_notes_and_abandon_forgets_them() {
    let hub = Hub::start();
    let file = hub.tmp.path().join("big.bin");
    std::fs::write(&file, vec![7u8; 3 << 20]).unwrap();
    let f = file.to_str().unwrap();
    let notes = hub.tmp.path().join("notes");
    std::fs::create_dir(&notes).unwrap();
    let run = |args: &[&str]| {
        let mut c = hub.cmd(&hub.as_who(G22, args));
        c.env("TMPDIR", &notes).output().unwrap()
    };
    // Refused (not registered), the note stays.
    let o = run(&[
        "send",
        "--to",
        "000.00.00.H99",
        "--number",
        "1",
        "--notation",
        "BIG",
        "--inline-limit",
        "1024",
        f,
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let o = run(&[
        "send",
        "--to",
        H26,
        "--number",
        "2",
        "--notation",
        "BIG",
        "--inline-limit",
        "1024",
        f,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("an interrupted upload of {f} to 000.00.00.H99")),
        "{err}"
    );
    assert!(err.contains("truc: sending big.bin 100% (3.0 MiB of 3.0 MiB)"), "{err}");
    let o = run(&["send", "--abandon", f, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["abandoned"][0]["to"], "000.00.00.H99", "{v}");
    assert_eq!(std::fs::read_dir(&notes).unwrap().count(), 0, "notes left");
}

/// Everyday tools: completions and man pages from the CLI's definitions,
/// `trucd check-config`, `truc ops status`, saved contexts.
#[test]
fn completions_man_pages_check_config_status_and_contexts() {
    let hub = Hub::start();
    for shell in ["bash", "zsh", "fish"] {
        let o = hub.ok(&["completions", shell]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("truc"), "{shell}");
    }
    let o = hub.ok(&["completions", "bash", "--bin", "trucd"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("check-config"));
    let man = hub.tmp.path().join("man");
    hub.ok(&["man", "--out", man.to_str().unwrap()]);
    for page in [
        "truc.1",
        "truc-ops-status.1",
        "truc-pki-renew.1",
        "trucd.1",
        "trucd-check-config.1",
    ] {
        let text = std::fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}: {text}");
    }

    // check-config: what a start would check, without serving.
    let check = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_trucd"))
            .args(["--identity", hub.pki().join("hub").to_str().unwrap()])
            .args(["--data-dir", hub.tmp.path().join("other-data").to_str().unwrap()])
            .args(extra)
            .arg("check-config")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let o = check(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("ok: trucd would start") && out.contains("revocation: ") && out.contains("will be created"),
        "{out}"
    );
    assert!(
        !hub.tmp.path().join("other-data").exists(),
        "check-config created the data directory"
    );
    let o = check(&["--crl", "/nonexistent/crl.pem"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(text(&o).contains("/nonexistent/crl.pem"), "{}", text(&o));

    // ops status.
    let o = hub.ok(&hub.as_ops(&["ops", "status"]));
    let out = text(&o);
    for w in [
        "urn:truc:hub:axis",
        "store        sled, committing",
        "revocation   0 revoked",
        "2 agencies",
    ] {
        assert!(out.contains(w), "{w:?} in {out}");
    }

    // Contexts: --hub and --identity from the current one.
    hub.ok(&[
        "context",
        "add",
        "ops",
        "--hub",
        &hub.addr,
        "--identity",
        &hub.identity("ops"),
    ]);
    hub.ok(&[
        "context",
        "add",
        "g22",
        "--hub",
        &hub.addr,
        "--identity",
        &hub.identity(G22),
    ]);
    let o = hub.ok(&["ops", "queues", "--json"]);
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap();
    hub.ok(&["context", "use", "g22"]);
    let o = hub.truc(&["ops", "queues"]);
    assert_eq!(o.status.code(), Some(4), "now as G22: {}", text(&o));
    let o = hub.ok(&["context", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let current: Vec<_> = v.as_array().unwrap().iter().filter(|c| c["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["name"], "g22");
    // A flag still wins over the context.
    hub.ok(&hub.as_ops(&["ops", "queues"]));
    let o = hub.truc(&["context", "use", "nope"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
}

/// A rerun of `truc inbox` after a run that died with a document leased:
/// it says the document is leased elsewhere and when it comes back, rather
/// than a bare "0 received".
#[test]
fn inbox_says_when_a_document_is_leased_to_an_earlier_run() {
    let hub = Hub::start();
    hub.send("000.00.00.G22,2026/01/01,20/R", "leased");
    let out = hub.tmp.path().join("inbox-dead");
    let mut dead = Watched::spawn(hub.cmd(&hub.as_who(
        H26,
        &[
            "inbox",
            "--follow",
            "--no-ack",
            "--jsonl",
            "--out",
            out.to_str().unwrap(),
        ],
    )));
    dead.line("the first run");
    let _ = dead.child.kill(); // as Ctrl-C or a crash would: the lease stays
    let _ = dead.child.wait();
    let o = hub.ok(&hub.as_who(H26, &["inbox", "--out", out.to_str().unwrap()]));
    let out_text = text(&o);
    assert!(
        out_text.contains("0 document(s) and 0 status notice(s) received"),
        "{out_text}"
    );
    assert!(
        out_text.contains("1 more still leased to another receiver"),
        "{out_text}"
    );
    assert!(out_text.contains("run `truc inbox` again then"), "{out_text}");
    let o = hub.ok(&hub.as_who(H26, &["inbox", "--json", "--out", out.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["leased_elsewhere"], 1, "{v}");
    assert!(v["leased_until_unix_ms"].as_i64().unwrap() > 0, "{v}");
}

/// `truc send` builds the id as the axis writes it from the records
/// office's fields (issue 15 item 4), prints the hub's warnings, and shows
/// times in the axis's local time (item 8): +07:00 by default,
/// TRUC_UTC_OFFSET, --utc; JSON has the ms and RFC 3339 side by side.
#[test]
fn send_builds_the_document_id_and_times_are_local() {
    let hub = Hub::start();
    let file = hub.tmp.path().join("cv.txt");
    std::fs::write(&file, "Công văn số 12").unwrap();
    let f = file.to_str().unwrap();
    let o = hub.ok(&hub.as_who(
        G22,
        &[
            "send",
            "--to",
            H26,
            "--number",
            "12",
            "--notation",
            "VPCP-KSTT",
            "--promulgated",
            "2026/12/06",
            "--place",
            "Hà Nội",
            "--signer",
            "Nguyễn Văn A",
            "--position",
            "Phó Chủ nhiệm",
            "--competence",
            "KT. BỘ TRƯỞNG",
            "--due",
            "2026-12-20",
            "--content",
            "Tóm tắt",
            "--to-places",
            "Như trên;Lưu: VT",
            "--response-for",
            "000.00.00.H26,2026/02/30,7/UBND",
            "--steering",
            "1",
            "--subject",
            "Về việc thử",
            "--json",
            f,
        ],
    ));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["document_id"], format!("{G22},2026/12/06,12/VPCP-KSTT"), "{v}");
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
    let at = v["accepted_at"].as_str().unwrap();
    assert!(at.ends_with("+07:00") && at.contains('T'), "{v}");
    assert!(v["accepted_at_unix_ms"].as_i64().unwrap() > 0, "{v}");

    // What H26 receives: every field as sent, the ResponseFor unchanged.
    let out = hub.tmp.path().join("in-h26");
    let o = hub.ok(&hub.as_who(H26, &["inbox", "--json", "--out", out.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let h = &v["deliveries"][0]["header"];
    assert_eq!(h["code_number"], "12", "{v}");
    assert_eq!(h["code_notation"], "VPCP-KSTT", "{v}");
    assert_eq!(h["promulgation_date"], "2026/12/06", "{v}");
    assert_eq!(h["signer"]["full_name"], "Nguyễn Văn A", "{v}");
    assert_eq!(h["signer"]["position"], "Phó Chủ nhiệm", "{v}");
    assert_eq!(h["to_places"], serde_json::json!(["Như trên", "Lưu: VT"]), "{v}");
    assert_eq!(
        h["response_for"][0]["document_id"], "000.00.00.H26,2026/02/30,7/UBND",
        "{v}"
    );
    assert_eq!(h["response_for"][0]["promulgation_date"], "2026/02/30", "{v}");
    assert_eq!(h["steering_type"], 1, "{v}");
    // Due by the end of 2026-12-20 at +07:00.
    assert_eq!(h["due_date"], "2026-12-20T23:59:59.999+07:00", "{v}");

    // Disagreements are warnings, printed; the time is local, or UTC.
    let id = format!("{G22},2026/02/30,13/VPCP-KSTT");
    let args = hub.as_who(
        G22,
        &[
            "send",
            "--to",
            H26,
            "--document-id",
            &id,
            "--number",
            "14",
            "--notation",
            "VPCP-KSTT",
            f,
        ],
    );
    let o = hub.ok(&args);
    let t = text(&o);
    assert!(
        t.contains("warning: document_id: date \"2026/02/30\" is not a valid yyyy/MM/dd date"),
        "{t}"
    );
    assert!(
        t.contains("warning: document_id: number/notation \"13/VPCP-KSTT\" differs"),
        "{t}"
    );
    assert!(t.contains(" +07:00; "), "{t}");
    // The same id again: the duplicate, shown in UTC, then at another offset.
    let o = hub.ok(&[&args[..], &["--utc".to_string()]].concat());
    assert!(
        text(&o).starts_with("already accepted: ") && text(&o).contains(" UTC; "),
        "{}",
        text(&o)
    );
    let o = hub.cmd(&args).env("TRUC_UTC_OFFSET", "-05:30").output().unwrap();
    assert!(text(&o).contains(" -05:30; "), "{}", text(&o));
    let o = hub.cmd(&args).env("TRUC_UTC_OFFSET", "nowhere").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("TRUC_UTC_OFFSET"), "{}", text(&o));

    // No number, no id: a usage error; another agency's prefix: refused by the hub.
    let o = hub.truc(&hub.as_who(G22, &["send", "--to", H26, f]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--number"), "{}", text(&o));
    let o = hub.truc(&hub.as_who(
        G22,
        &["send", "--to", H26, "--document-id", "000.00.00.H26,2026/12/06,1/X", f],
    ));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("document_id must start with the sender's code \"{G22},\"")),
        "{}",
        text(&o)
    );
}
