//! tracing set-up shared by both binaries: `RUST_LOG` wins over the
//! configured level; the format is plain text or JSON lines.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `json` picks JSON lines on stderr.
pub fn init(level: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
