//! Progress of long transfers on stderr: on a terminal a line redrawn in
//! place (percentage, bytes, rate, time left); elsewhere (a log, a script)
//! a plain line per 10 %. A transfer that starts past 0 says it resumes,
//! and where. Nothing but the resume line when turned off (`--json`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use truc_core::sync::Locked;

pub(crate) struct Bar {
    label: String,
    /// What is moving, for the resume line: "upload of cv.pdf".
    what: String,
    on: bool,
    /// Off a terminal: a line per 10 % (unless turned off).
    lines: bool,
    started: Instant,
    last: Mutex<Option<Instant>>,
    first_done: Mutex<Option<u64>>,
    /// The last 10 % step printed off a terminal.
    step: Mutex<u64>,
}

impl Bar {
    /// `label` leads the progress line ("sending cv.pdf"), `what` the
    /// resume line ("upload of cv.pdf").
    pub(crate) fn new(label: &str, what: &str, wanted: bool) -> Bar {
        let tty = std::io::stderr().is_terminal();
        Bar {
            label: label.to_string(),
            what: what.to_string(),
            on: wanted && tty,
            lines: wanted && !tty,
            started: Instant::now(),
            last: Mutex::new(None),
            first_done: Mutex::new(None),
            step: Mutex::new(0),
        }
    }

    /// `done` of `total` bytes; redrawn at most 10 times a second.
    pub(crate) fn update(&self, done: u64, total: u64) {
        let h = |b: u64| super::output::human_bytes(b as f64);
        {
            let mut first = self.first_done.locked();
            if first.is_none() {
                *first = Some(done);
                if done > 0 && done < total {
                    // Said whatever the output: a rerun must say it resumes.
                    eprintln!("truc: resuming {} at {} of {}", self.what, h(done), h(total));
                }
                *self.step.locked() = done.saturating_mul(10) / total.max(1);
            }
        }
        if self.lines {
            let step = done.saturating_mul(10) / total.max(1);
            let mut last = self.step.locked();
            if step > *last {
                *last = step;
                eprintln!("truc: {} {}% ({} of {})", self.label, step * 10, h(done), h(total));
            }
            return;
        }
        if !self.on {
            return;
        }
        let mut last = self.last.locked();
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) && done < total {
            return;
        }
        *last = Some(Instant::now());
        // A resumed transfer's rate counts only what moved in this run.
        let start = *self.first_done.locked().get_or_insert(done);
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
