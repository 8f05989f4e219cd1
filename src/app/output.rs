//! How a client command shows its outcome: text for the terminal, one JSON
//! object for `--json`, and the [`Failure`] that `main` maps to the exit
//! code.
//!
//! Owns the one rendering of every [`ClientError`] and the contract's
//! exit codes: a success is 0; a refusal is 1; a timeout, an I/O error, a
//! protocol error or a local failure is 2 (with its message on standard
//! error, printed by `main`). A protocol supplies only its success report,
//! through [`Report`]; a command supplies the few words that differ per
//! client through a [`View`]. Nothing here opens a socket or runs a
//! reactor, so every rendering is unit-tested below.
//!
//! JSON objects are `serde_json` maps, which keep their keys sorted: the
//! order in which fields are added does not show.

use super::Failure;
use crate::proto::outcome::{ClientError, Outcome};
use serde_json::{Value, json};
use std::net::SocketAddr;

/// `-q`: a successful client prints nothing (its summary included);
/// failures, refusals and `--json` still print. Set once by `main`.
static QUIET: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Makes every later [`View::show`] of a success print nothing but its
/// `--json` (`-q`, as curl's `-s`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, core::sync::atomic::Ordering::Relaxed);
}

/// Whether `-q` was given.
pub fn quiet() -> bool {
    QUIET.load(core::sync::atomic::Ordering::Relaxed)
}

/// A protocol's success report, as a command shows it.
pub trait Report {
    /// The summary for the terminal (it may span lines; no final newline).
    fn text(&self) -> String;

    /// Adds the report's fields, `outcome` included, to the JSON object.
    fn json(&self, doc: &mut Value);

    /// What the answer means for the exit code. `Ok` unless the server's
    /// answer is itself a refusal or an error (hello's `RESET`, a lab echo
    /// that came back different).
    ///
    /// # Errors
    /// The [`Failure`] the answer amounts to.
    fn verdict(&self) -> Result<(), Failure> {
        Ok(())
    }
}

/// Where a command's text goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output: the exchange clients (hello, lab, msg).
    Stdout,
    /// Standard error: the file transfers, whose standard output may be
    /// the file itself (`-o -`).
    Stderr,
}

/// What a timeout says, per command (the wording predates this module and
/// is part of the CLI's contract).
pub struct Timeout {
    /// The message after `mioperf: `, from the tries made.
    pub message: Box<dyn Fn(u32) -> String>,
    /// The JSON object carries `tries` (hello).
    pub tries_in_json: bool,
    /// The message is also the command's text (lab, which shows what had
    /// arrived before it).
    pub as_text: bool,
}

impl Timeout {
    /// A timeout said as `message(tries)`, on standard error only.
    pub fn said(message: impl Fn(u32) -> String + 'static) -> Self {
        Self {
            message: Box::new(message),
            tries_in_json: false,
            as_text: false,
        }
    }
}

/// How one command shows outcomes: what every JSON object carries and the
/// words that differ between clients.
pub struct View {
    /// The fields every JSON object carries (`protocol`, `server`, …).
    pub header: Value,
    /// `--json`: one object on standard output and no text.
    pub json: bool,
    /// Where the text goes.
    pub text: Stream,
    /// Failures other than timeouts and refusals name this server first
    /// (`127.0.0.1:80: connection refused`); `None`: said plainly (the
    /// UDP transfer clients).
    pub server: Option<SocketAddr>,
    /// Put before a refusal's text (`server: ` for the UDP transfers).
    pub refusal_prefix: &'static str,
    /// Put before a success's text, with `: ` (the transfers: `get NAME`).
    pub title: Option<String>,
    /// What a timeout says.
    pub timeout: Timeout,
}

/// What a command prints and returns: the result of [`View::render`]
/// before it is printed.
#[derive(Debug)]
pub struct Rendered {
    /// The text for [`View::text`], unless `--json`.
    pub text: Option<String>,
    /// The JSON object, printed with `--json`.
    pub json: Value,
    /// What `main` turns into the exit code.
    pub result: Result<(), Failure>,
}

impl View {
    /// Shows `outcome` (`None`: the session ended without one, a bug),
    /// with what had been measured before a failure (`partial`), and
    /// returns the command's result.
    ///
    /// # Errors
    /// The outcome's [`Failure`], as [`View::render`] describes.
    pub fn show<R: Report>(
        &self,
        outcome: Option<Outcome<R>>,
        partial: Option<&R>,
    ) -> Result<(), Failure> {
        let rendered = self.render(outcome, partial);
        if self.json {
            println!("{}", rendered.json);
        } else if quiet() && rendered.result.is_ok() {
            // -q: a success says nothing; the exit status says it.
        } else if let Some(text) = rendered.text.as_deref().filter(|t| !t.is_empty()) {
            match self.text {
                Stream::Stdout => println!("{text}"),
                Stream::Stderr => eprintln!("{text}"),
            }
        }
        rendered.result
    }

    /// The text, the JSON object and the result of `outcome`, unprinted.
    pub fn render<R: Report>(&self, outcome: Option<Outcome<R>>, partial: Option<&R>) -> Rendered {
        let mut json = self.header.clone();
        let (text, result) = match outcome {
            Some(Ok(report)) => {
                report.json(&mut json);
                let text = match &self.title {
                    Some(title) => format!("{title}: {}", report.text()),
                    None => report.text(),
                };
                (Some(text), report.verdict())
            }
            Some(Err(error)) => self.failure(&error, partial, &mut json),
            None => {
                json["outcome"] = json!("failed");
                let why = "the session ended without an outcome";
                (None, Err(Failure::Error(why.into())))
            }
        };
        Rendered { text, json, result }
    }

    fn failure<R: Report>(
        &self,
        error: &ClientError,
        partial: Option<&R>,
        json: &mut Value,
    ) -> (Option<String>, Result<(), Failure>) {
        match error {
            // `main` prints nothing more for a refusal: the text said it.
            ClientError::Refused(refusal) => {
                json["outcome"] = json!("refused");
                json["answer"] = json!(refusal.answer);
                if let Some(code) = refusal.code {
                    json["error_code"] = json!(code);
                }
                let text = format!("{}{refusal}", self.refusal_prefix);
                (Some(text), Err(Failure::Refused(refusal.answer.clone())))
            }
            ClientError::TimedOut { tries } => {
                let mut message = (self.timeout.message)(*tries);
                if let Some(partial) = partial {
                    partial.json(json);
                    message = format!("{}\n{message}", partial.text());
                }
                json["outcome"] = json!("timeout");
                if self.timeout.tries_in_json {
                    json["tries"] = json!(tries);
                }
                let text = self.timeout.as_text.then(|| message.clone());
                (text, Err(Failure::Error(message)))
            }
            ClientError::Io(_) | ClientError::Protocol(_) | ClientError::Local(_) => {
                json["outcome"] = json!("failed");
                json["error"] = json!(error.to_string());
                let message = match self.server {
                    Some(server) => format!("{server}: {error}"),
                    None => error.to_string(),
                };
                (None, Err(Failure::Error(message)))
            }
        }
    }
}

/// A size for people, in IEC units as curl shows them: `512 B`, `1.5 KiB`,
/// `118 MiB`, `1 GiB`. Three significant digits, trailing zeros dropped.
/// The one size format of the terminal output (client summaries, progress
/// bars, the bench table); JSON carries exact `bytes` instead.
pub fn format_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[expect(clippy::cast_precision_loss, reason = "three digits are shown")]
    let value = bytes as f64;
    scaled(
        value,
        1024.0,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
    )
}

/// A rate for people, in bit/s with SI prefixes as iperf3 shows them:
/// `941 Mbit/s`, `2.5 Gbit/s`, `0 bit/s`. Three significant digits,
/// trailing zeros dropped; a non-finite or negative rate shows as 0. The
/// one rate format of the terminal output.
pub fn format_bitrate(bits_per_second: f64) -> String {
    let bps = if bits_per_second.is_finite() {
        bits_per_second.max(0.0)
    } else {
        0.0
    };
    scaled(
        bps,
        1000.0,
        &["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s", "Pbit/s"],
    )
}

/// `value` divided by `step` until it shows below `step`, with three
/// significant digits and the unit reached. The choice is made on the
/// rounded text, so 999.96 kbit/s is `1 Mbit/s`, never `1000 kbit/s`.
fn scaled(mut value: f64, step: f64, units: &[&str]) -> String {
    let last = units.len().saturating_sub(1);
    let mut unit = 0;
    loop {
        let shown = significant3(value);
        let rounded: f64 = shown.parse().unwrap_or(value);
        if rounded < step || unit == last {
            return format!("{shown} {}", units[unit]);
        }
        value /= step;
        unit += 1;
    }
}

/// Three significant digits (none after the point from 100 up), then
/// trailing zeros and a bare point dropped: `1.5`, `941`, `10`, `0`.
fn significant3(value: f64) -> String {
    let text = if value >= 99.95 {
        format!("{value:.0}")
    } else if value >= 9.995 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// `count` (bytes, frames, blocks) per second over `secs` seconds; 0 for
/// an instant.
pub fn rate(count: u64, secs: f64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "a rate for display")]
    let count = count as f64;
    if secs > 0.0 { count / secs } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::outcome::Refusal;
    use std::io::ErrorKind;

    /// A report of `n` bytes; `n == 0` is an answer that is an error.
    #[derive(Debug)]
    struct Got(u64);

    impl Report for Got {
        fn text(&self) -> String {
            format!("got {}\nbytes", self.0)
        }

        fn json(&self, doc: &mut Value) {
            doc["outcome"] = json!(if self.0 > 0 { "ok" } else { "empty" });
            doc["bytes"] = json!(self.0);
        }

        fn verdict(&self) -> Result<(), Failure> {
            if self.0 > 0 {
                Ok(())
            } else {
                Err(Failure::Error("nothing came".into()))
            }
        }
    }

    fn server() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    fn view(server: Option<SocketAddr>) -> View {
        View {
            header: json!({"protocol": "test", "server": "127.0.0.1:9"}),
            json: false,
            text: Stream::Stderr,
            server,
            refusal_prefix: "server: ",
            title: None,
            timeout: Timeout::said(|tries| format!("no answer after {tries} tries")),
        }
    }

    fn exit(r: &Result<(), Failure>) -> i32 {
        r.as_ref().map_or_else(Failure::exit_code, |()| 0)
    }

    fn message(r: &Result<(), Failure>) -> &str {
        match r {
            Err(Failure::Error(m) | Failure::Refused(m)) => m,
            Err(Failure::Signal(_)) | Ok(()) => "",
        }
    }

    #[test]
    fn a_success_shows_its_report() {
        let r = view(Some(server())).render(Some(Ok(Got(5))), None);
        assert_eq!(r.text.as_deref(), Some("got 5\nbytes"));
        assert_eq!(
            r.json,
            json!({"protocol": "test", "server": "127.0.0.1:9", "outcome": "ok", "bytes": 5})
        );
        assert_eq!(exit(&r.result), 0);
        assert_eq!(
            r.json.to_string(),
            r#"{"bytes":5,"outcome":"ok","protocol":"test","server":"127.0.0.1:9"}"#,
            "keys sorted, whatever the order they were added in"
        );
    }

    #[test]
    fn a_title_comes_first() {
        let mut v = view(None);
        v.title = Some("get f".into());
        let r = v.render(Some(Ok(Got(5))), None);
        assert_eq!(r.text.as_deref(), Some("get f: got 5\nbytes"));
    }

    #[test]
    fn an_answer_can_be_a_failure() {
        let r = view(None).render(Some(Ok(Got(0))), None);
        assert_eq!(r.json["outcome"], "empty");
        assert_eq!(r.text.as_deref(), Some("got 0\nbytes"));
        assert_eq!((exit(&r.result), message(&r.result)), (2, "nothing came"));
    }

    #[test]
    fn a_refusal_exits_1_with_its_answer() {
        let r = view(Some(server()))
            .render::<Got>(Some(Err(ClientError::refused("file not found"))), None);
        assert_eq!(r.text.as_deref(), Some("server: file not found"));
        assert_eq!(
            r.json,
            json!({"protocol": "test", "server": "127.0.0.1:9",
                   "outcome": "refused", "answer": "file not found"})
        );
        assert_eq!((exit(&r.result), message(&r.result)), (1, "file not found"));

        let coded = ClientError::Refused(Refusal {
            answer: "File not found".into(),
            code: Some(1),
        });
        let r = view(None).render::<Got>(Some(Err(coded)), None);
        assert_eq!(r.text.as_deref(), Some("server: error 1: File not found"));
        assert_eq!(r.json["error_code"], 1);
        assert_eq!(r.json["answer"], "File not found");
        assert_eq!(exit(&r.result), 1);
    }

    #[test]
    fn a_timeout_exits_2_with_the_commands_words() {
        let timed_out = || Some(Err(ClientError::TimedOut { tries: 3 }));
        let r = view(Some(server())).render::<Got>(timed_out(), None);
        assert_eq!(r.text, None, "said on standard error only, by main");
        assert_eq!(
            r.json,
            json!({"protocol": "test", "server": "127.0.0.1:9", "outcome": "timeout"})
        );
        assert_eq!(
            (exit(&r.result), message(&r.result)),
            (2, "no answer after 3 tries")
        );

        let mut v = view(None);
        v.timeout.tries_in_json = true;
        v.timeout.as_text = true;
        let r = v.render::<Got>(timed_out(), None);
        assert_eq!(r.json["tries"], 3);
        assert_eq!(r.text.as_deref(), Some("no answer after 3 tries"));
    }

    #[test]
    fn a_timeout_shows_what_had_arrived() {
        let mut v = view(None);
        v.timeout.as_text = true;
        let r = v.render(Some(Err(ClientError::TimedOut { tries: 1 })), Some(&Got(7)));
        let both = "got 7\nbytes\nno answer after 1 tries";
        assert_eq!(r.text.as_deref(), Some(both));
        assert_eq!((exit(&r.result), message(&r.result)), (2, both));
        assert_eq!(r.json["bytes"], 7, "the partial report's fields");
        assert_eq!(r.json["outcome"], "timeout", "not the partial report's");
    }

    #[test]
    fn failures_exit_2_and_name_the_server_where_the_view_says() {
        let cases = [
            (
                ClientError::Io(ErrorKind::ConnectionRefused),
                "connection refused",
            ),
            (
                ClientError::Protocol("malformed answer".into()),
                "malformed answer",
            ),
            (
                ClientError::Local("writing the output: disk full".into()),
                "writing the output: disk full",
            ),
        ];
        for (error, said) in cases {
            let r = view(Some(server())).render::<Got>(Some(Err(error.clone())), None);
            assert_eq!(r.text, None);
            assert_eq!(r.json["outcome"], "failed");
            assert_eq!(r.json["error"], said);
            assert_eq!(
                (exit(&r.result), message(&r.result)),
                (2, format!("127.0.0.1:9: {said}").as_str())
            );
            let r = view(None).render::<Got>(Some(Err(error)), None);
            assert_eq!(message(&r.result), said);
        }
    }

    #[test]
    fn no_outcome_is_a_failure() {
        let r = view(Some(server())).render::<Got>(None, None);
        assert_eq!(r.json["outcome"], "failed");
        assert_eq!(r.json["protocol"], "test");
        assert_eq!(
            (exit(&r.result), message(&r.result)),
            (2, "the session ended without an outcome")
        );
    }

    #[test]
    fn sizes_are_iec_with_three_digits() {
        let cases = [
            (0, "0 B"),
            (512, "512 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (10 * 1024 + 512, "10.5 KiB"),
            (1_000_000, "977 KiB"),
            (1_048_575, "1 MiB"),
            (1_572_864, "1.5 MiB"),
            (123_456_789, "118 MiB"),
            (1 << 30, "1 GiB"),
            (u64::MAX, "16 EiB"),
        ];
        for (bytes, shown) in cases {
            assert_eq!(format_bytes(bytes), shown, "{bytes}");
        }
    }

    #[test]
    fn rates_are_bits_per_second_with_si_prefixes() {
        let cases = [
            (0.0, "0 bit/s"),
            (f64::NAN, "0 bit/s"),
            (f64::INFINITY, "0 bit/s"),
            (-5.0, "0 bit/s"),
            (999.0, "999 bit/s"),
            (1000.0, "1 kbit/s"),
            (12_345.0, "12.3 kbit/s"),
            (941e6, "941 Mbit/s"),
            (999_960.0, "1 Mbit/s"),
            (2.5e9, "2.5 Gbit/s"),
            (14.624e9, "14.6 Gbit/s"),
            (5e18, "5000 Pbit/s"),
        ];
        for (bps, shown) in cases {
            assert_eq!(format_bitrate(bps), shown, "{bps}");
        }
    }

    #[test]
    fn rates() {
        assert!((rate(1000, 2.0) - 500.0).abs() < 1e-9);
        assert!(rate(1000, 0.0).abs() < f64::EPSILON);
    }
}
