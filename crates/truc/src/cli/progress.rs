//! A progress line for long transfers on a terminal: percentage, bytes,
//! rate and time left, redrawn in place on stderr. Nothing when stderr is
//! not a terminal (piped, in scripts) or when turned off.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct Bar {
    label: String,
    on: bool,
    started: Instant,
    last: Mutex<Option<Instant>>,
    first_done: Mutex<Option<u64>>,
}

impl Bar {
    pub(crate) fn new(label: &str, wanted: bool) -> Bar {
        Bar {
            label: label.to_string(),
            on: wanted && std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: Mutex::new(None),
            first_done: Mutex::new(None),
        }
    }

    /// `done` of `total` bytes; redrawn at most 10 times a second.
    pub(crate) fn update(&self, done: u64, total: u64) {
        if !self.on {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) && done < total {
            return;
        }
        *last = Some(Instant::now());
        // A resumed transfer's rate counts only what moved in this run.
        let start = *self
            .first_done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(done);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = (done - start.min(done)) as f64 / secs;
        let pct = if total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / total as f64
        };
        let eta = if rate > 0.0 {
            format!("{:.0}s", (total - done) as f64 / rate)
        } else {
            "-".into()
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} {pct:5.1}% {} / {}  {}/s  ETA {eta}   ",
            self.label,
            super::output::human_bytes(done as f64),
            super::output::human_bytes(total as f64),
            super::output::human_bytes(rate)
        );
        let _ = err.flush();
    }

    pub(crate) fn finish(&self) {
        if self.on {
            eprintln!();
        }
    }
}
