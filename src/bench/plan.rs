//! What a bench run will do, checked before any socket opens.
//!
//! Owns the defaults that depend on the protocol and mode, and every limit
//! a run is held to. It turns [`BenchArgs`] into a [`Plan`] or one message
//! for the user; it never touches the network.

use crate::cli::bench::{BenchArgs, BenchMode, BenchProto};
use crate::time::Duration;
use clap::ValueEnum;

/// A flag value as written on the command line (`tcpfile`, `stream`).
pub fn flag_name<T: ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned())
}

/// Most sessions one run may hold: each is a socket (two with the
/// in-process server over TCP), and hello IDs are 4 digits.
pub const MAX_PARALLEL: u32 = 10_000;
/// Most requests or transfers `-n` may ask for.
pub const MAX_COUNT: u64 = 1_000_000_000;
/// Longest `-t`.
pub const MAX_TIME: Duration = Duration::from_secs(24 * 3600);
/// Shortest report interval: below this the reports cost more than the load.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Run time when neither `-t` nor `-n` is given (iperf3's default).
pub const DEFAULT_TIME: Duration = Duration::from_secs(10);
/// Per-request timeout of request/response modes.
pub const DEFAULT_RR_TIMEOUT: Duration = Duration::from_secs(1);
/// Per-transfer silence timeout of transfer modes.
pub const DEFAULT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `-l` of echo and msg round trips.
pub const DEFAULT_RR_LENGTH: u64 = 64;
/// Default `-l` of a stream segment (one Ethernet-sized datagram).
pub const DEFAULT_SEGMENT: u64 = 1400;
/// Default `-l` of a file transfer.
pub const DEFAULT_FILE: u64 = 1_000_000;
/// Default `-l` of a stopwait transfer: 1000 blocks of 100 bytes.
pub const DEFAULT_STOPWAIT_FILE: u64 = 100_000;
/// Largest stopwait file (99 999 blocks of 100 bytes, from the spec).
pub const MAX_STOPWAIT_FILE: u64 = 9_999_900;
/// Largest generated lab file (the server's `file_max`).
pub const MAX_LAB_FILE: u64 = 123_456_789;
/// Largest file the bench generates or uploads.
pub const MAX_FILE: u64 = 64 << 30;
/// Largest lab echo: one UDP datagram, or a TCP line under `line_max`.
pub const MAX_ECHO: u64 = 65_507;
/// Largest msg frame the default server accepts (`msg_max`).
pub const MAX_FRAME: u64 = 64 << 20;
/// Smallest lab stream segment: its 16-byte header.
pub const MIN_SEGMENT: u64 = 16;
/// Largest UDP stream segment.
pub const MAX_SEGMENT: u64 = 65_507;
/// Default stream bitrate per session (iperf3's UDP default).
pub const DEFAULT_BITRATE: u64 = 1_000_000;
/// Highest stream bitrate: a segment interval under 1 µs cannot be written
/// in the request's millisecond decimal with any meaning.
pub const MAX_BITRATE: u64 = 100_000_000_000;
/// Segments one stream request may ask for (the server's `stream_max_count`).
pub const MAX_STREAM_COUNT: u64 = 10_000;

/// The transport a session uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// What the run prints on standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The terminal table: its head, a row as each interval closes, its foot.
    Table,
    /// One JSON document at the end.
    Json,
    /// One JSON line per interval, then one with the summary.
    JsonStream,
}

/// When the run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    /// After this long.
    pub time: Option<Duration>,
    /// After this many completed requests or transfers.
    pub count: Option<u64>,
}

/// A checked bench run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The protocol.
    pub proto: BenchProto,
    /// What each session does (with `bidir`, the first `parallel` sessions;
    /// see [`Plan::mode_of`]).
    pub mode: BenchMode,
    /// File protocols: `parallel` gets and `parallel` puts at once.
    pub bidir: bool,
    /// Over what.
    pub transport: Transport,
    /// Sessions at once.
    pub parallel: u32,
    /// When it ends.
    pub stop: Stop,
    /// Bytes per request, frame, segment or file.
    pub length: u64,
    /// Stream: bits per second per session.
    pub bitrate: Option<u64>,
    /// Report interval, `None` for totals only.
    pub interval: Option<Duration>,
    /// Per-request or per-transfer timeout.
    pub timeout: Duration,
    /// `HOST:PORT`, or `None` for the in-process server.
    pub server: Option<String>,
    /// File protocols: the remote name.
    pub name: String,
    /// tftp options.
    pub blksize: Option<u16>,
    /// tftp options.
    pub windowsize: Option<u16>,
    /// window: the engine's congestion control.
    pub cc: crate::proto::tcp::cc::Algorithm,
    /// How long the generator's reactor, and the in-process server's,
    /// poll without sleeping after each event.
    pub busy_poll: Duration,
    /// The run's seed.
    pub seed: u64,
    /// What goes to standard output.
    pub output: Output,
    /// Where the SVG goes, if anywhere.
    pub svg: Option<std::path::PathBuf>,
}

impl Plan {
    /// Checks `args` and fills in the defaults of the chosen mode.
    ///
    /// # Errors
    /// One message naming the flag that is out of range or does not apply.
    pub fn from_args(args: &BenchArgs) -> Result<Self, String> {
        let proto = args.proto;
        let mode = mode(proto, asked_mode(args)?)?;
        let transport = transport(proto, mode, args)?;
        let most = if args.bidir {
            MAX_PARALLEL / 2
        } else {
            MAX_PARALLEL
        };
        if args.parallel == 0 || args.parallel > most {
            let with = if args.bidir { " with --bidir" } else { "" };
            return Err(format!(
                "-P {} is out of range{with}: 1..={most}",
                args.parallel
            ));
        }
        let stop = stop(args)?;
        if args.bidir && stop.count == Some(1) {
            return Err("--bidir -n 1 cannot go both ways: use -n 2 or more".into());
        }
        let length = length(proto, mode, args.length)?;
        let bitrate = bitrate(mode, args)?;
        let (interval, timeout) = timing(mode, args)?;
        check_file_options(proto, args)?;
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| format!("bench-{length}.bin"));
        Ok(Self {
            proto,
            mode,
            bidir: args.bidir,
            transport,
            parallel: args.parallel,
            stop,
            length,
            bitrate,
            interval,
            timeout,
            server: args.server.clone(),
            name,
            blksize: args.blksize,
            windowsize: args.windowsize,
            cc: args.cc.unwrap_or_default(),
            busy_poll: args.busy_poll,
            seed: args.seed,
            output: if args.json {
                Output::Json
            } else if args.json_stream {
                Output::JsonStream
            } else {
                Output::Table
            },
            svg: args.svg.clone(),
        })
    }

    /// Sessions at once: `-P`, twice that with `--bidir`.
    pub fn sessions(&self) -> u32 {
        if self.bidir {
            self.parallel.saturating_mul(2)
        } else {
            self.parallel
        }
    }

    /// What the session in `slot` does: with `--bidir`, even slots get and
    /// odd ones put (interleaved, so slots claimed in order and a `-n`
    /// budget taken in order go both ways alike); otherwise every slot does
    /// [`Plan::mode`].
    pub fn mode_of(&self, slot: usize) -> BenchMode {
        if self.bidir && slot % 2 == 1 {
            BenchMode::Put
        } else {
            self.mode
        }
    }

    /// The stream's segment interval in ns, from `-b` and `-l` (at least 1 µs).
    pub fn stream_interval_ns(&self) -> u64 {
        let bits = self.length.saturating_mul(8);
        let bitrate = self.bitrate.unwrap_or(DEFAULT_BITRATE).max(1);
        let ns = u128::from(bits) * 1_000_000_000 / u128::from(bitrate);
        u64::try_from(ns).unwrap_or(u64::MAX).max(1_000)
    }

    /// The inputs as given and resolved, for the JSON document.
    pub fn inputs(&self, server: &str) -> serde_json::Value {
        serde_json::json!({
            "protocol": flag_name(&self.proto),
            "mode": flag_name(&self.mode),
            "bidir": self.bidir,
            "transport": self.transport,
            "parallel": self.parallel,
            "time_s": self.stop.time.map(|t| t.as_secs_f64()),
            "count": self.stop.count,
            "length": self.length,
            "bitrate": self.bitrate,
            "interval_s": self.interval.map(|t| t.as_secs_f64()),
            "timeout_s": self.timeout.as_secs_f64(),
            "server": server,
            "in_process_server": self.server.is_none(),
            "name": self.proto.is_file().then_some(&self.name),
            "blksize": self.blksize,
            "windowsize": self.windowsize,
            "cc": (self.proto == BenchProto::Window).then_some(match self.cc {
                crate::proto::tcp::cc::Algorithm::NewReno => "newreno",
                crate::proto::tcp::cc::Algorithm::Cubic => "cubic",
            }),
            "busy_poll_s": self.busy_poll.as_secs_f64(),
            "seed": self.seed,
        })
    }
}

/// The plan of `mioperf bench ARGS`, for unit tests here and in the
/// modules that turn a plan into reactors.
#[cfg(test)]
pub(crate) fn plan_of(args: &[&str]) -> Result<Plan, String> {
    use crate::cli::{Cli, Command};
    use clap::Parser;
    let argv = ["mioperf", "bench"].into_iter().chain(args.iter().copied());
    match Cli::try_parse_from(argv)
        .map_err(|e| e.to_string())?
        .command
    {
        Command::Bench(b) => Plan::from_args(&b),
        _ => Err("not bench".into()),
    }
}

/// The mode `--mode`, `-R` and `--bidir` ask for together (`None`: the
/// protocol's default). `-R` is the server sending, which mioperf calls
/// `get`; `--bidir` runs gets (its [`Plan::mode`]) beside puts. Only the file
/// protocols have a direction to choose, and contradictions are refused
/// rather than one flag silently winning.
fn asked_mode(args: &BenchArgs) -> Result<Option<BenchMode>, String> {
    let flag = match (args.reverse, args.bidir) {
        (false, false) => return Ok(args.mode),
        (true, true) => {
            return Err(
                "-R (the server sends) and --bidir (both send) contradict: drop one".into(),
            );
        }
        (true, false) => "-R",
        (false, true) => "--bidir",
    };
    if !args.proto.is_file() {
        return Err(format!(
            "{flag} applies to the file protocols only (tcpfile, stopwait, tftp, window)"
        ));
    }
    match (args.bidir, args.mode) {
        (false, Some(BenchMode::Put)) => {
            Err("-R (the server sends) contradicts --mode put (the client sends): drop one".into())
        }
        (true, Some(m)) => Err(format!(
            "--bidir runs get and put at once: drop --mode {}",
            flag_name(&m)
        )),
        _ => Ok(Some(BenchMode::Get)),
    }
}

/// The mode asked for, or the protocol's default; one the protocol has.
fn mode(proto: BenchProto, asked: Option<BenchMode>) -> Result<BenchMode, String> {
    use BenchMode as M;
    use BenchProto as P;
    let mode = asked.unwrap_or(match proto {
        P::Hello | P::Msg => M::Rr,
        P::Lab => M::Echo,
        P::Tcpfile | P::Stopwait | P::Tftp | P::Window => M::Get,
    });
    let allowed: &[BenchMode] = match proto {
        P::Hello => &[M::Rr, M::Connect],
        P::Lab => &[M::Echo, M::File, M::Stream],
        P::Msg => &[M::Rr],
        P::Tcpfile | P::Stopwait | P::Tftp | P::Window => &[M::Get, M::Put],
    };
    if !allowed.contains(&mode) {
        let names: Vec<String> = allowed
            .iter()
            .map(|m| format!("{m:?}").to_lowercase())
            .collect();
        return Err(format!(
            "--mode {} does not apply to {}: use one of {}",
            format!("{mode:?}").to_lowercase(),
            format!("{proto:?}").to_lowercase(),
            names.join(", ")
        ));
    }
    Ok(mode)
}

/// TCP or UDP: what the protocol and mode run over, and `--tcp`/`--udp`
/// where there is a choice.
fn transport(proto: BenchProto, mode: BenchMode, args: &BenchArgs) -> Result<Transport, String> {
    use BenchProto as P;
    Ok(match proto {
        P::Msg | P::Tcpfile => {
            if args.udp {
                return Err(format!(
                    "{} runs over TCP only: drop --udp",
                    flag_name(&proto)
                ));
            }
            Transport::Tcp
        }
        P::Stopwait | P::Tftp | P::Window => {
            if args.tcp {
                return Err(format!(
                    "{} runs over UDP only: drop --tcp",
                    flag_name(&proto)
                ));
            }
            Transport::Udp
        }
        P::Hello if mode == BenchMode::Connect => {
            if args.udp {
                return Err("--mode connect measures TCP connections: drop --udp".into());
            }
            Transport::Tcp
        }
        P::Hello | P::Lab => {
            if args.tcp {
                Transport::Tcp
            } else {
                Transport::Udp
            }
        }
    })
}

/// When the run ends: `-t`, `-n`, or the default time. `-t 0` is no
/// time limit, as in iperf3: the run ends at `-n`, or at SIGINT/SIGTERM
/// with its report.
fn stop(args: &BenchArgs) -> Result<Stop, String> {
    if let Some(n) = args.count
        && (n == 0 || n > MAX_COUNT)
    {
        return Err(format!("-n {n} is out of range: 1..={MAX_COUNT}"));
    }
    if let Some(t) = args.time
        && t > MAX_TIME
    {
        return Err(format!(
            "-t {} is out of range: at most 24h, or 0 for no time limit",
            crate::cli::duration::format(t)
        ));
    }
    Ok(Stop {
        time: match (args.time, args.count) {
            (None, None) => Some(DEFAULT_TIME),
            (Some(t), _) if t.is_zero() => None,
            (t, _) => t,
        },
        count: args.count,
    })
}

/// `-l`, or the mode's default, within the mode's range.
fn length(proto: BenchProto, mode: BenchMode, asked: Option<u64>) -> Result<u64, String> {
    use BenchMode as M;
    use BenchProto as P;
    let (default_length, min_length, max_length) = match (proto, mode) {
        (P::Hello, _) => (0, 0, u64::MAX),
        (P::Lab, M::Echo) => (DEFAULT_RR_LENGTH, 1, MAX_ECHO),
        (P::Lab, M::Stream) => (DEFAULT_SEGMENT, MIN_SEGMENT, MAX_SEGMENT),
        (P::Lab, _) => (DEFAULT_FILE, 1, MAX_LAB_FILE),
        (P::Msg, _) => (DEFAULT_RR_LENGTH, 0, MAX_FRAME),
        (P::Stopwait, _) => (DEFAULT_STOPWAIT_FILE, 0, MAX_STOPWAIT_FILE),
        (P::Tcpfile | P::Tftp | P::Window, _) => (DEFAULT_FILE, 0, MAX_FILE),
    };
    let length = asked.unwrap_or(default_length);
    if proto != P::Hello && !(min_length..=max_length).contains(&length) {
        return Err(format!(
            "-l {length} is out of range for {} {}: {min_length}..={max_length} bytes",
            flag_name(&proto),
            flag_name(&mode)
        ));
    }
    Ok(length)
}

/// A stream's `-b` (and its segment cap on `-n`); no other mode takes `-b`.
fn bitrate(mode: BenchMode, args: &BenchArgs) -> Result<Option<u64>, String> {
    let stream = mode == BenchMode::Stream;
    let bitrate = if stream {
        let b = args.bitrate.unwrap_or(DEFAULT_BITRATE);
        if b == 0 || b > MAX_BITRATE {
            return Err(format!("-b {b} is out of range: 1..={MAX_BITRATE} bits/s"));
        }
        Some(b)
    } else {
        if args.bitrate.is_some() {
            return Err("-b applies to --mode stream only".into());
        }
        None
    };
    if stream && args.count.is_some_and(|n| n > MAX_STREAM_COUNT) {
        return Err(format!(
            "-n of a stream counts its segments: at most {MAX_STREAM_COUNT} (the server's cap)"
        ));
    }
    Ok(bitrate)
}

/// The report interval (`None` for totals only) and the per-request or
/// per-transfer timeout.
fn timing(mode: BenchMode, args: &BenchArgs) -> Result<(Option<Duration>, Duration), String> {
    use BenchMode as M;
    let interval = if args.interval.is_zero() {
        None
    } else if args.interval < MIN_INTERVAL {
        return Err(format!(
            "--interval {} is too short: at least 10ms, or 0s for none",
            crate::cli::duration::format(args.interval)
        ));
    } else {
        Some(args.interval)
    };
    let transfer = matches!(mode, M::File | M::Get | M::Put | M::Stream);
    let timeout = args.timeout.unwrap_or(if transfer {
        DEFAULT_TRANSFER_TIMEOUT
    } else {
        DEFAULT_RR_TIMEOUT
    });
    if timeout.is_zero() {
        return Err("--timeout must be above 0".into());
    }
    Ok((interval, timeout))
}

/// `--name` for the file protocols only; `--blksize` and `--windowsize`
/// for tftp only, and in range.
fn check_file_options(proto: BenchProto, args: &BenchArgs) -> Result<(), String> {
    use BenchProto as P;
    if !proto.is_file() && args.name.is_some() {
        return Err(
            "--name applies to the file protocols only (tcpfile, stopwait, tftp, window)".into(),
        );
    }
    if proto != P::Window && args.cc.is_some() {
        return Err("--cc applies to window only".into());
    }
    if proto != P::Tftp && (args.blksize.is_some() || args.windowsize.is_some()) {
        return Err("--blksize and --windowsize apply to tftp only".into());
    }
    if let Some(b) = args.blksize
        && !(8..=65_464).contains(&b)
    {
        return Err(format!("--blksize {b} is out of range: 8..=65464"));
    }
    if args.windowsize == Some(0) {
        return Err("--windowsize must be at least 1".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        plan_of(args)
    }

    #[test]
    fn reverse_is_get_and_bidir_interleaves_get_and_put() {
        let r = plan(&["tftp", "-R"]).unwrap();
        assert_eq!((r.mode, r.bidir, r.sessions()), (BenchMode::Get, false, 1));
        let p = plan(&["tftp", "--mode", "put"]).unwrap();
        assert_eq!(
            (p.mode_of(0), p.mode_of(1)),
            (BenchMode::Put, BenchMode::Put)
        );
        let b = plan(&["tcpfile", "--bidir", "-P", "3"]).unwrap();
        assert_eq!(b.sessions(), 6);
        let modes: Vec<BenchMode> = (0..6).map(|s| b.mode_of(s)).collect();
        assert_eq!(
            modes.iter().filter(|m| **m == BenchMode::Put).count(),
            3,
            "{modes:?}"
        );
        assert_eq!((modes[0], modes[1]), (BenchMode::Get, BenchMode::Put));
        assert_eq!(b.inputs("x")["bidir"], true);
    }

    #[test]
    fn contradictory_directions_are_refused() {
        for (args, needle) in [
            (
                &["tcpfile", "-R", "--mode", "put"][..],
                "contradicts --mode put",
            ),
            (&["tcpfile", "-R", "--bidir"][..], "contradict"),
            (
                &["stopwait", "--bidir", "--mode", "get"][..],
                "drop --mode get",
            ),
            (&["msg", "--bidir"][..], "file protocols only"),
            (&["hello", "-R"][..], "file protocols only"),
            (&["window", "--bidir", "-n", "1"][..], "both ways"),
            (&["window", "--bidir", "-P", "5001"][..], "1..=5000"),
        ] {
            let err = plan(args).expect_err(needle);
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        assert!(plan(&["tcpfile", "-R", "--mode", "get"]).is_ok());
        assert!(plan(&["window", "--bidir", "-P", "5000"]).is_ok());
    }
}
