//! Where a bench's report goes, as it happens: standard output or the
//! `--logfile`, as a table (head, a row per interval, foot), one JSON
//! document at the end (`--json`), or iperf3's `--json-stream` events
//! (`start`, `interval`…, `end`), one line each.
//!
//! Owns the writer and the order of what is written; every text comes
//! from `report`. Each piece is written whole and flushed at once, so a
//! reader of a pipe or a `tail -f` of the log file sees each interval
//! when it closes, not at the end. It never measures anything. Write
//! errors (a closed pipe) are ignored: the run and its exit status do not
//! depend on a reader.

use super::direction::Directions;
use super::plan;
use super::report::{self, Document, Environment, IntervalReport};
use crate::app::Failure;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// The report's destination and shape.
pub struct Output {
    out: Box<dyn Write>,
    kind: plan::Output,
    /// Whether the table has a `Retr` column.
    retransmits: bool,
}

impl core::fmt::Debug for Output {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Output")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Output {
    /// Standard output, or `logfile` opened for appending (created if
    /// missing, as iperf3's `--logfile`).
    ///
    /// # Errors
    /// The log file cannot be opened (exit 2, naming it and why).
    pub fn open(
        kind: plan::Output,
        logfile: Option<&Path>,
        retransmits: bool,
    ) -> Result<Self, Failure> {
        let out: Box<dyn Write> = match logfile {
            None => Box::new(std::io::stdout()),
            Some(path) => Box::new(
                OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)
                    .map_err(|e| Failure::Error(format!("--logfile {}: {e}", path.display())))?,
            ),
        };
        Ok(Self {
            out,
            kind,
            retransmits,
        })
    }

    /// A writer of `kind` into `out` (tests).
    #[cfg(test)]
    fn to(out: Box<dyn Write>, kind: plan::Output, retransmits: bool) -> Self {
        Self {
            out,
            kind,
            retransmits,
        }
    }

    /// Writes `text`, ending it with a newline, and flushes.
    fn emit(&mut self, text: &str) {
        let mut text = text.to_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    /// Before the run: the table's head, or the `start` event.
    pub fn start(
        &mut self,
        inputs: &serde_json::Value,
        environment: &Environment,
        limits: &serde_json::Value,
    ) {
        match self.kind {
            plan::Output::Table => {
                let head = report::table_head(environment, self.retransmits);
                self.emit(&head);
            }
            plan::Output::JsonStream => {
                self.emit(&report::json_start_line(inputs, environment, limits));
            }
            plan::Output::Json => {}
        }
    }

    /// An interval closed: its row, or its `interval` event.
    pub fn interval(&mut self, interval: &IntervalReport) {
        match self.kind {
            plan::Output::Table => {
                let row = report::table_row(interval, self.retransmits);
                self.emit(&row);
            }
            plan::Output::JsonStream => self.emit(&report::json_line(interval)),
            plan::Output::Json => {}
        }
    }

    /// After the run: the table's foot (and a `--bidir` run's two
    /// directions), the whole document, or the `end` event.
    pub fn end(&mut self, doc: &Document, directions: Option<&Directions>) {
        let text = match self.kind {
            plan::Output::Table => {
                let mut foot = report::table_foot(&doc.summary, self.retransmits);
                if let Some(d) = directions {
                    foot.push_str(&d.render(doc.summary.figures.seconds));
                }
                foot
            }
            plan::Output::Json => report::to_json(doc),
            plan::Output::JsonStream => report::json_summary_line(&doc.summary),
        };
        self.emit(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Recorder;
    use crate::time::{Duration, Instant};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A writer whose bytes the test can read while the `Output` holds it,
    /// and which counts flushes.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<(Vec<u8>, usize)>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.borrow_mut().1 += 1;
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.borrow().0.clone()).unwrap()
        }
        fn flushes(&self) -> usize {
            self.0.borrow().1
        }
    }

    fn run_through(kind: plan::Output) -> Vec<(String, usize)> {
        let sink = Shared::default();
        let mut out = Output::to(Box::new(sink.clone()), kind, true);
        let mut seen = Vec::new();
        let mut r = Recorder::new(Instant::ZERO, Some(Duration::from_secs(1))).with_retransmits();
        let env = Environment::new(Some(1), None);
        let inputs = serde_json::json!({"protocol": "tftp"});
        out.start(&inputs, &env, &serde_json::json!({"max_parallel": 10}));
        seen.push((sink.text(), sink.flushes()));
        let mut intervals = Vec::new();
        for s in 1..=2 {
            r.add_bytes(Instant::from_millis(s * 1_000 - 500), 100);
            let i = r.close_interval(Instant::from_millis(s * 1_000));
            out.interval(&i);
            seen.push((sink.text(), sink.flushes()));
            intervals.push(i);
        }
        let summary = r.finish(Instant::from_millis(2_000));
        out.end(&Document::new(inputs, env, intervals, summary), None);
        seen.push((sink.text(), sink.flushes()));
        seen
    }

    #[test]
    fn the_table_grows_a_row_per_interval_each_flushed() {
        let seen = run_through(plan::Output::Table);
        let lines = |i: usize| seen[i].0.lines().count();
        assert_eq!((lines(0), lines(1), lines(2)), (2, 3, 4), "{seen:?}");
        assert!(seen[0].0.lines().nth(1).unwrap().contains("Retr"));
        assert!(seen[1].0.ends_with('\n') && seen[1].0.contains("0.00-1.00 s"));
        assert!(seen[3].0.contains("total"), "{seen:?}");
        let flushes: Vec<usize> = seen.iter().map(|s| s.1).collect();
        assert_eq!(flushes, [1, 2, 3, 4]);
    }

    #[test]
    fn the_json_stream_is_start_intervals_end_one_line_each() {
        let seen = run_through(plan::Output::JsonStream);
        let text = &seen[3].0;
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["start", "interval", "interval", "end"]);
        assert_eq!(events[0]["data"]["inputs"]["protocol"], "tftp");
        assert_eq!(events[0]["data"]["limits"]["max_parallel"], 10);
        assert_eq!(events[0]["data"]["environment"]["seed"], 1);
        assert_eq!(events[0]["data"]["schema_version"], report::SCHEMA_VERSION);
        assert_eq!(events[1]["data"]["retransmits"], 0);
        assert_eq!(events[3]["data"]["bytes"], 200);
        // Each event was whole, on its own line, when it was flushed.
        for (i, (t, flushes)) in seen.iter().enumerate() {
            assert_eq!(t.lines().count(), i + 1);
            assert_eq!(*flushes, i + 1);
        }
    }

    #[test]
    fn one_json_document_only_at_the_end() {
        let seen = run_through(plan::Output::Json);
        assert!(seen[..3].iter().all(|s| s.0.is_empty()), "{seen:?}");
        let doc: serde_json::Value = serde_json::from_str(&seen[3].0).unwrap();
        assert_eq!(doc["intervals"].as_array().unwrap().len(), 2);
    }
}
