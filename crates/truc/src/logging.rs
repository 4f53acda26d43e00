//! tracing set-up shared by both binaries: `RUST_LOG` wins over the
//! configured level; the format is plain text or JSON lines.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `json` picks JSON lines on stderr.
/// Plain text is coloured only on a terminal, and never with `NO_COLOR`
/// set (<https://no-color.org>): a log file or journald gets no escape
/// codes.
pub fn init(level: &str, json: bool) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour && !json)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
