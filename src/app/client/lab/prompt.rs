//! `mioperf lab HOST PORT` without a request: the socket-lab seed's prompt.
//!
//! Owns reading requests: each line is one (see `line.rs`), answered in
//! turn by the [`Runner`] before the next is read. On a terminal the lines
//! come from `rustyline` (line editing, history for the session, `lab> `);
//! from a pipe they are read plainly, with no prompt, so a script can drive
//! it. `quit`, end of input or Ctrl-D end it.
//!
//! Why a reader thread: reading a terminal or a pipe blocks, and so does
//! the reactor, which has no way to watch standard input. So a thread
//! reads one line when asked and hands it over a channel; the main thread
//! runs that request on the reactor to completion, then asks for the next
//! line. Nothing overlaps: the reactor turns only while a request is in
//! flight, the reader reads only while none is. A second thread turns
//! SIGINT and SIGTERM into messages on the same channel, so a signal while
//! the main thread waits for a line ends the prompt at once (130/143, as
//! every client), where a blocked read alone would swallow it. Ctrl-C
//! while `rustyline` edits a line is a key, not a signal: it ends the
//! prompt the same way.

use super::line::{self, Line, Pace};
use super::run::Runner;
use crate::app::Failure;
use crate::cli::LabArgs;
use std::io::{BufRead, IsTerminal};
use std::sync::mpsc::{self, Receiver, Sender};

/// A stream's interval when none is given, in ms.
pub(super) const DEFAULT_INTERVAL_MS: &str = "1";
/// A stream's segment count when none is given.
pub(super) const DEFAULT_COUNT: u64 = 1000;
/// A stream's segment size when none is given: a datagram that fits an
/// Ethernet MTU with room for the headers.
pub(super) const DEFAULT_SIZE: u64 = 1400;

/// What the reader thread (or the signal thread) says.
enum Event {
    /// A line, without its `\n`.
    Line(String),
    /// End of input (Ctrl-D on a terminal).
    Eof,
    /// Ctrl-C while editing a line.
    Interrupted,
    /// Reading failed.
    Failed(String),
    /// SIGINT or SIGTERM arrived.
    Signal(i32),
}

/// Where lines come from: a thread that reads one each time it is asked.
struct Input {
    ask: Sender<String>,
    events: Receiver<Event>,
}

impl Input {
    fn start() -> Result<Self, Failure> {
        let (ask, asked) = mpsc::channel::<String>();
        let (tell, events) = mpsc::channel();
        let signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])
        .map_err(|e| crate::app::error("signals", e))?;
        let told = tell.clone();
        std::thread::Builder::new()
            .name("lab-signals".into())
            .spawn(move || {
                let mut signals = signals;
                for number in signals.forever() {
                    if told.send(Event::Signal(number)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| crate::app::error("thread", e))?;
        std::thread::Builder::new()
            .name("lab-input".into())
            .spawn(move || read_lines(&asked, &tell))
            .map_err(|e| crate::app::error("thread", e))?;
        Ok(Self { ask, events })
    }

    /// The next line, shown `prompt` on a terminal; `None` at the end of
    /// input.
    fn line(&self, prompt: &str) -> Result<Option<String>, Failure> {
        let gone = || Failure::Error("standard input: the reader stopped".into());
        self.ask.send(prompt.to_owned()).map_err(|_| gone())?;
        match self.events.recv().map_err(|_| gone())? {
            Event::Line(line) => Ok(Some(line)),
            Event::Eof => Ok(None),
            Event::Interrupted => Err(Failure::Signal(signal_hook::consts::SIGINT)),
            Event::Signal(number) => Err(Failure::Signal(number)),
            Event::Failed(why) => Err(Failure::Error(format!("standard input: {why}"))),
        }
    }
}

/// The reader thread: one line per prompt received, until the main
/// thread hangs up.
fn read_lines(asked: &Receiver<String>, tell: &Sender<Event>) {
    // Only a terminal gets an editor: rustyline on a pipe would read it
    // unbuffered and print prompts nobody sees.
    let mut editor = std::io::stdin()
        .is_terminal()
        .then(|| rustyline::DefaultEditor::new().ok())
        .flatten();
    let mut stdin = std::io::stdin().lock();
    for prompt in asked {
        let event = if let Some(editor) = &mut editor {
            edit_line(editor, &prompt)
        } else {
            plain_line(&mut stdin)
        };
        if tell.send(event).is_err() {
            break;
        }
    }
}

/// One line from the terminal, edited, kept in the session's history.
fn edit_line(editor: &mut rustyline::DefaultEditor, prompt: &str) -> Event {
    match editor.readline(prompt) {
        Ok(line) => {
            if !line.trim().is_empty() {
                let _ = editor.add_history_entry(line.as_str());
            }
            Event::Line(line)
        }
        Err(rustyline::error::ReadlineError::Eof) => Event::Eof,
        Err(rustyline::error::ReadlineError::Interrupted) => Event::Interrupted,
        Err(e) => Event::Failed(e.to_string()),
    }
}

/// One line from a pipe or a file, no prompt. Bytes that are not UTF-8
/// are replaced (U+FFFD) rather than refused.
fn plain_line(stdin: &mut impl BufRead) -> Event {
    let mut bytes = Vec::new();
    match stdin.read_until(b'\n', &mut bytes) {
        Ok(0) => Event::Eof,
        Ok(_) => {
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            }
            Event::Line(String::from_utf8_lossy(&bytes).into_owned())
        }
        Err(e) => Event::Failed(e.to_string()),
    }
}

/// The worst of the answers so far, for the exit code.
#[derive(Default)]
struct Tally {
    requests: u32,
    refused: u32,
    failed: u32,
    refusal: Option<String>,
}

impl Tally {
    fn note(&mut self, result: Result<(), Failure>) -> Result<(), Failure> {
        self.requests += 1;
        match result {
            Ok(()) => {}
            Err(Failure::Signal(number)) => return Err(Failure::Signal(number)),
            // The answer was printed already.
            Err(Failure::Refused(answer)) => {
                self.refused += 1;
                self.refusal = Some(answer);
            }
            Err(Failure::Error(message)) => {
                self.failed += 1;
                eprintln!("mioperf: {message}");
            }
        }
        Ok(())
    }

    /// 0 when every request succeeded, else 2 if any failed, else 1.
    fn result(self) -> Result<(), Failure> {
        if self.failed > 0 {
            let Self {
                requests, failed, ..
            } = self;
            Err(Failure::Error(format!(
                "{failed} of {requests} requests failed"
            )))
        } else if let Some(answer) = self.refusal {
            Err(Failure::Refused(answer))
        } else {
            Ok(())
        }
    }
}

/// Runs the prompt until `quit` or the end of input.
///
/// # Errors
/// [`Failure::Signal`] on Ctrl-C or SIGTERM; otherwise the worst answer:
/// 2 if a request failed (timeout, mismatch, bad line), 1 if one was
/// refused, as a single request would exit.
pub(super) fn prompt(args: &LabArgs) -> Result<(), Failure> {
    let mut runner = Runner::new(args)?;
    let input = Input::start()?;
    if std::io::stdin().is_terminal() {
        eprintln!(
            "lab {}:{} over {}: N asks for a file of N bytes, `stream` for a stream, \
             other text is echoed; `quit` or Ctrl-D ends",
            args.host,
            args.port,
            if args.udp { "UDP" } else { "TCP" }
        );
    }
    let mut tally = Tally::default();
    while let Some(text) = input.line("lab> ")? {
        let result = match line::parse(&text) {
            Ok(Line::Empty) => continue,
            Ok(Line::Quit) => break,
            Ok(Line::Request(request)) => runner.request(&request),
            Ok(Line::Stream) => match ask_stream(args, &input)? {
                Some(Ok(request)) => runner.request(&request),
                Some(Err(why)) => Err(Failure::Error(why)),
                None => break,
            },
            Err(why) => Err(Failure::Error(why)),
        };
        tally.note(result)?;
    }
    tally.result()
}

/// Asks a stream's interval (unless `-b` derives it), count and size,
/// each with its default (the flag's, or the built-in one) taken on an
/// empty answer. `None` at the end of input.
fn ask_stream(args: &LabArgs, input: &Input) -> Result<Option<Result<String, String>>, Failure> {
    let pace = if let Some(rate) = args.bitrate {
        Pace::Bitrate(rate)
    } else {
        let flag = args
            .interval
            .map(|d| line::interval_ms_text(super::duration_ns(d)));
        let default = flag.as_deref().unwrap_or(DEFAULT_INTERVAL_MS);
        let Some(answer) = input.line(&format!("interval ms [{default}]: "))? else {
            return Ok(None);
        };
        let answer = answer.trim();
        Pace::Interval(if answer.is_empty() { default } else { answer }.to_owned())
    };
    let count_default = args.count.unwrap_or(DEFAULT_COUNT);
    let Some(count) = input.line(&format!("count [{count_default}]: "))? else {
        return Ok(None);
    };
    let size_default = args.size.unwrap_or(DEFAULT_SIZE);
    let Some(size) = input.line(&format!("size bytes [{size_default}]: "))? else {
        return Ok(None);
    };
    Ok(Some((|| {
        let count = line::answer_number("count", &count, count_default)?;
        let size = line::answer_number("size", &size, size_default)?;
        line::stream_request(&pace, count, size)
    })()))
}
