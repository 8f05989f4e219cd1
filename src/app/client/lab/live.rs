//! The live line of a lab request while it runs: a file's bytes against
//! its size, or a stream's packets, loss and rate.
//!
//! Owns that one line on standard error. It is drawn only when standard
//! error is a terminal, not in `--json` mode and not with `-q`; it is
//! redrawn between reactor turns, at most every [`REDRAW`], so a stream of
//! 100 000 segments a second costs ten redraws a second, and a slow stream
//! is redrawn as its segments arrive. It never runs a reactor or reads the
//! clock: the caller passes `now`.

use crate::proto::lab::{LiveCounts, StreamLive};
use crate::proto::outcome::Progress;
use crate::time::{Duration, Instant};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Least time between two redraws (indicatif's own default rate).
pub(super) const REDRAW: Duration = Duration::from_millis(100);

/// What the line follows.
pub(super) enum Follow {
    /// A file of this many bytes.
    File(u64, Progress),
    /// A stream of this many segments.
    Stream(u64, StreamLive),
}

/// The line, if there is a terminal to draw it on.
pub(super) struct Live {
    bar: ProgressBar,
    follow: Follow,
    next: Instant,
}

/// Whether the live line may be drawn at all: a terminal, no `--json`,
/// no `-q` (which sets the log level below info).
pub(super) fn wanted(json: bool) -> bool {
    !json && log::max_level() >= log::LevelFilter::Info && std::io::stderr().is_terminal()
}

impl Live {
    /// A line following `follow`, or `None` when it is not [`wanted`].
    pub(super) fn new(follow: Follow, json: bool) -> Option<Self> {
        if !wanted(json) {
            return None;
        }
        let bar = match &follow {
            Follow::File(total, _) => {
                let bar = ProgressBar::with_draw_target(Some(*total), ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template(
                    "{bytes}/{total_bytes} [{wide_bar}] {binary_bytes_per_sec} eta {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar
            }
            Follow::Stream(..) => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template("{msg}") {
                    bar.set_style(style);
                }
                bar
            }
        };
        Some(Self {
            bar,
            follow,
            next: Instant::ZERO,
        })
    }

    /// Redraws if [`REDRAW`] has passed since the last time.
    pub(super) fn tick(&mut self, now: Instant) {
        if self.next == Instant::ZERO {
            // Nothing before the first REDRAW: a request that is over by
            // then leaves no flash of a line behind.
            self.next = now + REDRAW;
            return;
        }
        if now < self.next {
            return;
        }
        self.next = now + REDRAW;
        match &self.follow {
            Follow::File(_, progress) => self.bar.set_position(progress.get()),
            Follow::Stream(count, live) => self.bar.set_message(stream_line(*count, live.get())),
        }
    }

    /// Takes the line away, before the summary is printed.
    pub(super) fn clear(self) {
        self.bar.finish_and_clear();
    }
}

/// `stream 523/1000 packets, lost 2 (0.4 %), 5.86 Mbit/s`.
pub(super) fn stream_line(count: u64, c: LiveCounts) -> String {
    let lost = c.expected_so_far.saturating_sub(c.received);
    #[expect(clippy::cast_precision_loss, reason = "for display")]
    let (percent, bits) = (
        if c.expected_so_far == 0 {
            0.0
        } else {
            lost as f64 * 100.0 / c.expected_so_far as f64
        },
        // Over the span from the first arrival to the last, the first
        // segment's bytes had arrived already: count the others.
        (c.bytes - c.bytes / c.received.max(1)) as f64 * 8.0,
    );
    let span_ns = c.last_rx_ns.saturating_sub(c.first_rx_ns);
    let rate = if span_ns == 0 || c.received < 2 {
        "-".to_owned()
    } else {
        #[expect(clippy::cast_precision_loss, reason = "for display")]
        let bps = bits / (span_ns as f64 / 1e9);
        format!("{:.3} Mbit/s", bps / 1e6)
    };
    format!(
        "stream {}/{count} packets, lost {lost} ({percent:.1} %), {rate}",
        c.received
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_line_counts_what_should_have_come() {
        let c = LiveCounts {
            received: 8,
            expected_so_far: 10,
            bytes: 8 * 1000,
            first_rx_ns: 0,
            last_rx_ns: 7_000_000,
        };
        assert_eq!(
            stream_line(100, c),
            "stream 8/100 packets, lost 2 (20.0 %), 8.000 Mbit/s"
        );
        assert_eq!(
            stream_line(100, LiveCounts::default()),
            "stream 0/100 packets, lost 0 (0.0 %), -"
        );
    }
}
