//! Progress bars for long transfers, drawn from the reactor itself.
//!
//! Owns the terminal display of a transfer's progress. There is no drawing
//! thread (indicatif's steady tick would start one): a timer-only job,
//! [`Ticker`] (just [`Driven`], added with the reactor's `add_detached`), runs on the same reactor as the transfer, copies a shared
//! byte count into the bar every 100 ms, and ends itself once the transfer
//! has an outcome. It draws to standard error and only when that is a
//! terminal; callers skip it entirely in `--json` mode.

use crate::proto::outcome::Progress;
use crate::proto::{CloseReason, Context, Driven};
use crate::time::{Duration, Instant};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

const TICK: Duration = Duration::from_millis(100);

/// A progress bar fed by a byte counter, as a timer-only reactor job.
pub struct Ticker {
    bar: ProgressBar,
    bytes: Progress,
    done: Box<dyn Fn() -> bool>,
    next: Instant,
    finished: bool,
    close: Option<CloseReason>,
}

impl core::fmt::Debug for Ticker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ticker")
            .field("bytes", &self.bytes.get())
            .finish_non_exhaustive()
    }
}

impl Ticker {
    /// A bar for `total` bytes (if known) that follows `bytes` until
    /// `done()` says the transfer ended. `None` when standard error is not a
    /// terminal: no bar, no job.
    pub fn on_terminal(
        total: Option<u64>,
        bytes: Progress,
        done: Box<dyn Fn() -> bool>,
    ) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = match total {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let template = if total.is_some() {
            "{bytes}/{total_bytes} [{wide_bar}] {binary_bytes_per_sec} eta {eta}"
        } else {
            "{bytes} {binary_bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Some(Self {
            bar,
            bytes,
            done,
            next: Instant::ZERO,
            finished: false,
            close: None,
        })
    }
}

impl Driven for Ticker {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if self.finished || cx.now < self.next {
            return;
        }
        if (self.done)() {
            self.bar.finish_and_clear();
            self.finished = true;
            self.close = Some(CloseReason::Completed);
        } else {
            self.bar.set_position(self.bytes.get());
            self.next = cx.now + TICK;
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (!self.finished).then_some(self.next)
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}
