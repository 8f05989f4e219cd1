//! Progress bars for long transfers, drawn from the reactor itself.
//!
//! Owns the terminal display of a transfer's progress. There is no drawing
//! thread (indicatif's steady tick would start one): a timer-only job,
//! [`Ticker`] (just [`Driven`], added with the reactor's `add_detached`), runs on the same reactor as the transfer, copies a shared
//! byte count into the bar every 100 ms, and ends itself once the transfer
//! has an outcome. It draws to standard error and only when that is a
//! terminal; callers skip it entirely in `--json` mode and with `-q`. A
//! download whose size the server tells only once it answers (TFTP
//! `tsize`, tcpfile `OK <size>`) gets its total, percentage and ETA then.

use crate::proto::outcome::Progress;
use crate::proto::{CloseReason, Context, Driven};
use crate::time::{Duration, Instant};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

const TICK: Duration = Duration::from_millis(100);

/// A bar with a known total: where it is, how far, how fast, how long left.
const SIZED: &str =
    "{bytes}/{total_bytes} {percent:>3}% [{wide_bar}] {binary_bytes_per_sec} eta {eta}";
/// A bar of unknown total: what moved, and how fast.
const UNSIZED: &str = "{bytes} {binary_bytes_per_sec}";

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
        Some(Self::drawing_to(
            ProgressDrawTarget::stderr(),
            total,
            bytes,
            done,
        ))
    }

    /// The same bar, drawn to `target` (tests draw to a hidden one).
    fn drawing_to(
        target: ProgressDrawTarget,
        total: Option<u64>,
        bytes: Progress,
        done: Box<dyn Fn() -> bool>,
    ) -> Self {
        let bar = ProgressBar::with_draw_target(None, target);
        let ticker = Self {
            bar,
            bytes,
            done,
            next: Instant::ZERO,
            finished: false,
            close: None,
        };
        ticker.style(UNSIZED);
        if let Some(total) = total {
            ticker.size(total);
        }
        ticker
    }

    fn style(&self, template: &str) {
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style.progress_chars("=> "));
        }
    }

    /// The transfer's size is known: total, percentage and ETA from now on.
    fn size(&self, total: u64) {
        self.bar.set_length(total);
        self.style(SIZED);
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
            if self.bar.length().is_none()
                && let Some(total) = self.bytes.total()
            {
                self.size(total);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Context;

    #[test]
    fn a_total_learned_mid_transfer_sizes_the_bar() {
        let bytes = Progress::new();
        let mut t = Ticker::drawing_to(
            ProgressDrawTarget::hidden(),
            None,
            bytes.clone(),
            Box::new(|| false),
        );
        let tick = |t: &mut Ticker, ms| {
            let mut cx = Context::new(Instant::from_millis(ms), 0, None);
            t.handle_timeout(&mut cx);
        };
        tick(&mut t, 0);
        assert_eq!(t.bar.length(), None, "no size yet");
        bytes.set(1_000);
        bytes.set_total(4_000);
        tick(&mut t, 100);
        assert_eq!((t.bar.length(), t.bar.position()), (Some(4_000), 1_000));
        let sized = Ticker::drawing_to(
            ProgressDrawTarget::hidden(),
            Some(10),
            Progress::new(),
            Box::new(|| true),
        );
        assert_eq!(sized.bar.length(), Some(10), "a known size from the start");
    }
}
