//! What the tests of the real `truc` binary share.
// Each test file uses part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) mod edxml;

pub(crate) const G22: &str = "000.00.00.G22";
pub(crate) const H26: &str = "000.00.00.H26";
pub(crate) const H29: &str = "000.00.00.H29";
pub(crate) const G0901: &str = "G09.01";

/// stdout then stderr, for assertion messages.
pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `truc args` run in `dir`, with nothing of the caller's environment that
/// would change what it does (no hub, identity, context, UTC offset or
/// colour from the shell); its saved contexts live in `dir`.
pub(crate) fn truc_command(dir: &Path, args: &[impl AsRef<OsStr>]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_truc"));
    c.args(args)
        .current_dir(dir)
        .env_remove("TRUC_HUB")
        .env_remove("TRUC_IDENTITY")
        .env_remove("TRUC_CONTEXT")
        .env_remove("TRUC_UTC_OFFSET")
        .env("TRUC_CONTEXTS", dir.join("contexts.json"))
        .env("NO_COLOR", "1");
    c
}

/// A port on 127.0.0.1 that was free a moment ago (for a `trucd` child).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// What a test may set in its hub.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Setup<'a> {
    /// `trucd` settings as `TRUC_*` environment variables, e.g.
    /// `("TRUC_LIMITS_MAX_DOCUMENT_SIZE", "1048576")`.
    pub(crate) env: &'a [(&'a str, &'a str)],
    /// An agency's name in the hub's directory (and its certificate); the
    /// code when not listed.
    pub(crate) names: &'a [(&'a str, &'a str)],
}

/// A CA, a hub on a port of its own, an operator and four agencies.
pub(crate) struct Hub {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) addr: String,
    trucd: Option<Child>,
}

impl Hub {
    pub(crate) fn start() -> Hub {
        Hub::start_with(Setup::default())
    }

    pub(crate) fn start_with(setup: Setup<'_>) -> Hub {
        let name = |code: &str| {
            setup
                .names
                .iter()
                .find(|(c, _)| *c == code)
                .map_or(code.to_string(), |(_, n)| n.to_string())
        };
        let tmp = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut hub = Hub {
            addr: format!("127.0.0.1:{port}"),
            tmp,
            trucd: None,
        };
        let pki = hub.tmp.path().join("pki");
        let pki = pki.to_str().unwrap();
        hub.ok(&["pki", "init", "--dir", pki]);
        hub.ok(&["pki", "issue", "--dir", pki, "--operator", "ops"]);
        for code in [G22, H26, H29, G0901] {
            hub.ok(&["pki", "issue", "--dir", pki, "--agency", code, "--name", &name(code)]);
        }
        let child = Command::new(env!("CARGO_BIN_EXE_trucd"))
            .args(["--identity", hub.tmp.path().join("pki/hub").to_str().unwrap()])
            .args(["--data-dir", hub.tmp.path().join("data").to_str().unwrap()])
            .args(["--listen", &hub.addr])
            .env_remove("RUST_LOG")
            .envs(setup.env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(hub.tmp.path().join("trucd.log")).unwrap())
            .spawn()
            .expect("start trucd");
        hub.trucd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let list = hub.as_who("ops", &["ops", "agencies", "list"]);
        while !hub.truc(&list).status.success() {
            assert!(Instant::now() < deadline, "trucd did not come up on {}", hub.addr);
            std::thread::sleep(Duration::from_millis(50)); // polling, not a sync point
        }
        for code in [G22, H26, H29, G0901] {
            hub.ok(&hub.as_who("ops", &["ops", "agencies", "add", code, "--name", &name(code)]));
        }
        hub
    }

    pub(crate) fn path(&self, name: &str) -> String {
        self.tmp.path().join(name).to_str().unwrap().to_string()
    }

    pub(crate) fn as_who(&self, who: &str, args: &[&str]) -> Vec<String> {
        let dir: PathBuf = if who == "ops" {
            self.tmp.path().join("pki/operators/ops")
        } else {
            self.tmp.path().join("pki/agencies").join(who)
        };
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--hub".into(),
            self.addr.clone(),
            "--identity".into(),
            dir.to_str().unwrap().to_string(),
        ]);
        v
    }

    pub(crate) fn truc(&self, args: &[impl AsRef<std::ffi::OsStr>]) -> Output {
        truc_command(self.tmp.path(), args).output().expect("run truc")
    }

    pub(crate) fn ok(&self, args: &[impl AsRef<std::ffi::OsStr>]) -> Output {
        let o = self.truc(args);
        assert!(
            o.status.success(),
            "{:?}: {}",
            args.iter().map(|a| a.as_ref().to_owned()).collect::<Vec<_>>(),
            text(&o)
        );
        o
    }

    /// `args` as `who`, with --json, parsed.
    pub(crate) fn json(&self, who: &str, args: &[&str]) -> Value {
        let mut args = self.as_who(who, args);
        args.push("--json".into());
        serde_json::from_slice(&self.ok(&args).stdout).unwrap()
    }

    /// G22 sends a file with id `id` to `to`.
    pub(crate) fn send(&self, id: &str, to: &str) {
        let file = self.path(&format!("{}.txt", id.replace(['/', ','], "_")));
        std::fs::write(&file, id).unwrap();
        self.ok(&self.as_who(G22, &["send", "--to", to, "--id", id, &file]));
    }

    /// `who` runs its inbox: what arrived, as (business_type, document_id).
    pub(crate) fn inbox(&self, who: &str) -> Vec<(i64, String)> {
        let dir = self.path(&format!("inbox-{who}"));
        let v = self.json(who, &["inbox", "--out", &dir]);
        v["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d.get("header").is_some())
            .map(|d| {
                (
                    d["header"]["business_type"].as_i64().unwrap(),
                    d["header"]["document_id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
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

/// Run `cmd` to its end, sampling its peak resident set (VmHWM in
/// /proc/PID/status, which only grows) every few milliseconds: its output
/// and the last peak seen, KiB. The last sample is at most a few ms before
/// it exits, when what it does is done.
pub(crate) fn run_measured(mut cmd: Command) -> (Output, u64) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start truc");
    let status_file = format!("/proc/{}/status", child.id());
    // Pipes drained on threads of their own, so a full pipe never blocks it.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v)
            .map(|_| v)
            .unwrap_or_default()
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v)
            .map(|_| v)
            .unwrap_or_default()
    });
    let mut peak = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        if let Some(status) = child.try_wait().expect("wait for truc") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2)); // sampling, not a sync point
    };
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, peak)
}
