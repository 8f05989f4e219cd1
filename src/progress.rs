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

use crate::app::output::{format_bitrate, format_bytes};
use crate::proto::outcome::Progress;
use crate::proto::{CloseReason, Context, Driven};
use crate::time::{Duration, Instant};
use core::fmt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
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

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        ticker.style(template(false));
        if let Some(total) = total {
            ticker.size(total);
        }
        ticker
    }

    fn style(&self, template: &str) {
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(units(style).progress_chars("=> "));
        }
    }

    /// The transfer's size is known: total, percentage and ETA from now on.
    fn size(&self, total: u64) {
        self.bar.set_length(total);
        self.style(template(true));
    }
}

/// The bar's line: sizes and the rate in the units of every summary line
/// (`size`, `total`, `bitrate`: see [`units`]), not indicatif's own.
fn template(total_known: bool) -> &'static str {
    if total_known {
        "{size}/{total} {percent:>3}% [{wide_bar}] {bitrate} eta {eta}"
    } else {
        "{size} {bitrate}"
    }
}

/// The template keys of [`template`], drawn with the one pair of unit
/// formats ([`format_bytes`]: IEC sizes; [`format_bitrate`]: SI bit/s), so
/// the bar and the summary that replaces it read alike.
fn units(style: ProgressStyle) -> ProgressStyle {
    style
        .with_key("size", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = w.write_str(&format_bytes(s.pos()));
        })
        .with_key("total", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = w.write_str(&s.len().map_or_else(|| "?".to_owned(), format_bytes));
        })
        .with_key("bitrate", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = w.write_str(&format_bitrate(s.per_sec() * 8.0));
        })
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

    use indicatif::TermLike;
    use std::sync::{Arc, Mutex};

    /// A terminal that keeps what is written to it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The line a bar draws at `pos` of `total`.
    fn drawn(total: Option<u64>, pos: u64) -> String {
        let screen = Screen::default();
        let target = ProgressDrawTarget::term_like(Box::new(screen.clone()));
        let bar = ProgressBar::with_draw_target(total, target);
        let style = ProgressStyle::with_template(template(total.is_some())).unwrap();
        bar.set_style(units(style));
        bar.set_position(pos);
        screen.0.lock().unwrap().clone()
    }

    #[test]
    fn the_bar_speaks_the_summarys_units() {
        let line = drawn(Some(3 << 20), 3 << 19);
        assert!(line.starts_with("1.5 MiB/3 MiB  50% ["), "{line}");
        assert!(line.contains("bit/s eta "), "{line}");
        assert!(!line.contains("MiB/s"), "{line}");
        let line = drawn(None, 1536);
        assert!(
            line.starts_with("1.5 KiB ") && line.trim_end().ends_with("bit/s"),
            "{line}"
        );
    }
}
