//! Runs the end-to-end scripts in `tests/e2e/` against the binaries this
//! package builds: the real `truc` and `trucd`, as a user runs them.

use std::path::Path;
use std::process::Command;

#[path = "../../../tests/skip.rs"]
mod skip;

fn run_script(name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_truc"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    assert!(Path::new(env!("CARGO_BIN_EXE_trucd")).exists());
    let out = Command::new("bash")
        .arg(root.join("tests/e2e").join(name))
        .current_dir(&root)
        .env("TRUC_BIN_DIR", &bin_dir)
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // A script's SKIP lines (a tool it may skip knowingly, with the
    // variable set) are shown and recorded like any test's skip.
    // This script's notes of an earlier run go first.
    if let Ok(d) = std::fs::read_dir(skip::dir()) {
        for e in d.flatten() {
            if e.file_name().to_string_lossy().starts_with(&format!("e2e.{name}.")) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    for (i, line) in stdout.lines().filter_map(|l| l.strip_prefix("SKIP ")).enumerate() {
        skip::record(&format!("e2e.{name}.{i}"), &format!("{name}: {line}"));
    }
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.ends_with(" 0 failed"), "{name}: unexpected summary {last:?}");
}

/// pki init, three agencies and an operator, trucd on a free port, send to
/// two, SIGKILL right after the send returns, restart, both inboxes get the
/// exact bytes; acks survive a second SIGKILL; a re-send is a duplicate.
#[test]
fn sigkill_after_send_loses_nothing() {
    run_script("sigkill.sh");
}

/// The README's walk-through, step by step, from a scratch directory: every
/// step succeeds, the "things to try" fail as promised (exit code, words, a
/// hint), and nothing lands in the repository.
#[test]
fn the_readme_walk_through_runs_from_a_scratch_directory() {
    run_script("walkthrough.sh");
}

/// `truc send` on a real terminal (tmux): the progress line, Ctrl-C midway
/// says how to resume (exit 130), the same command resumes and says where.
/// Without tmux it fails, unless TRUC_SKIP_TERMINAL_TESTS=1.
#[test]
fn a_send_interrupted_at_a_terminal_says_how_to_resume_and_resumes() {
    run_script("terminal.sh");
}

/// deploy/trucd.toml starts a hub as it is (paths aside); bad keys and
/// values exit 64 naming them.
#[test]
fn example_config_starts_the_hub_and_bad_config_exits_64() {
    run_script("deploy_config.sh");
}

/// `truc ops verify-store`: exit 0 on a clean store; a flipped byte in a
/// stored document makes it exit non-zero naming the document, which is
/// quarantined while the queue behind it moves on.
#[test]
fn verify_store_finds_a_damaged_document_and_the_queue_moves_on() {
    run_script("verify_store.sh");
}

/// deploy/: the systemd unit passes `systemd-analyze verify`, the
/// Prometheus config and rules pass `promtool check` and `promtool test
/// rules`, the dashboard and rules use exported metrics, the Kubernetes
/// manifest's config is accepted by trucd (a tool that is not installed
/// fails the test, unless TRUC_SKIP_DEPLOY_TOOLS=1: then it is skipped,
/// shown and recorded).
#[test]
fn deploy_files_pass_their_tools() {
    run_script("deploy_files.sh");
}

/// 2,000 idle mTLS connections and a consumer that never acks: the hub's
/// memory stays bounded and other agencies are served.
#[test]
fn idle_connections_and_a_stuck_consumer_keep_memory_bounded() {
    run_script("idle_connections.sh");
}

/// A 64 MiB document through the hub in chunks: upload and download both
/// killed midway and resumed, exact bytes, bounded memory.
#[test]
fn a_large_document_resumes_and_arrives_intact() {
    run_script("large_document.sh");
}
