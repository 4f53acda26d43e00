//! Connecting to a `nats-server` of the benchmarks: mutual TLS as a `truc
//! pki` identity directory. Shared by `truc-bench` and `nats-object-copy`.

use std::path::Path;
use std::time::Duration;

/// Connect with mTLS as the identity in `dir` (cert.pem, key.pem, ca.pem)
/// to `url` (`tls://127.0.0.1:PORT`).
pub(crate) async fn connect(url: &str, dir: &Path) -> anyhow::Result<async_nats::Client> {
    Ok(async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(dir.join("ca.pem"))
        .add_client_certificate(dir.join("cert.pem"), dir.join("key.pem"))
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await?)
}
