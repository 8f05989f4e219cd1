//! Flags of `mioperf bench` (clap types only).
//!
//! Owns the flag names, help texts and value parsing of the load generator.
//! Which combinations make sense (a mode per protocol, limits, defaults that
//! depend on the mode) is decided by `bench::plan`, not here, so every
//! refusal carries one message in one place.

use crate::cli::duration;
use crate::time::Duration;
use crate::units;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// The protocols `mioperf bench` can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchProto {
    /// hello connection-ID registry: request/response (`rr`) or TCP connection rate (`connect`).
    Hello,
    /// lab: `echo` round trips, generated `file` downloads, paced `stream`s.
    Lab,
    /// msg: length-prefixed frames and their receipts, one outstanding per connection (`rr`).
    Msg,
    /// tcpfile: whole-file `get` or `put` transfers.
    Tcpfile,
    /// stopwait: whole-file `get` or `put` transfers over the alternating-bit protocol.
    Stopwait,
    /// tftp: whole-file `get` or `put` transfers (RFC 1350 with options).
    Tftp,
    /// window: whole-file `get` or `put` transfers (tcpfile over the userspace TCP engine in UDP).
    Window,
}

impl BenchProto {
    /// Whether sessions move whole files (`get`, `put`, `--name`).
    #[must_use]
    pub fn is_file(self) -> bool {
        matches!(
            self,
            Self::Tcpfile | Self::Stopwait | Self::Tftp | Self::Window
        )
    }
}

/// What each session does, over and over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    /// One request outstanding per session, the next sent when the answer arrives (hello, msg).
    Rr,
    /// hello over TCP: connect, one request, its answer, close; repeat.
    Connect,
    /// lab: one echo outstanding per session (`-l` bytes).
    Echo,
    /// lab: download a generated file of `-l` bytes; repeat.
    File,
    /// lab: one paced stream per session at `-b` bits/s of `-l`-byte segments.
    Stream,
    /// File protocols: download a file of `-l` bytes; repeat.
    Get,
    /// File protocols: upload `-l` bytes; repeat.
    Put,
}

/// Flags of `mioperf bench`.
#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "command-line switches: clap maps each flag to a bool of its own"
)]
#[command(after_help = "\
Examples (no server needed: one is started in-process on 127.0.0.1):
  mioperf bench hello -P 16 -t 5s                 UDP HELLO request rate, 16 in flight
  mioperf bench hello --tcp --mode connect -P 16  TCP connect+HELLO+close rate
  mioperf bench lab --mode stream -b 10M -l 1400  paced UDP stream, schedule error
  mioperf bench tcpfile -l 100M -n 10 --json      ten 100 MB downloads, one JSON document
  mioperf bench tftp --mode put -P 4 --windowsize 16 --svg tftp.svg
  mioperf bench tcpfile --bidir -P 2 -t 5s         2 downloads and 2 uploads at once
  mioperf bench window -l 10M -P 4 --json         TCP-engine transfers, its counters in the JSON

Exit status: 0 when the run completed and at least one request or transfer
succeeded; 2 on a usage error, an unreachable server, or a run where nothing
succeeded. Failures and timeouts inside a run are counted, not fatal.")]
pub struct BenchArgs {
    /// Protocol to drive.
    #[arg(value_enum)]
    pub proto: BenchProto,
    /// What each session does [default: hello rr, lab echo, msg rr, file protocols get].
    #[arg(long, value_enum)]
    pub mode: Option<BenchMode>,
    /// File protocols: the server sends, as iperf3's -R; mioperf names
    /// directions from the client, so this is `--mode get` (the default) and
    /// `--mode put` is iperf3's default, the client sending.
    #[arg(short = 'R', long)]
    pub reverse: bool,
    /// File protocols: both directions at once, as iperf3's --bidir: -P N
    /// runs N gets and N puts together, reported per direction and in total.
    #[arg(long)]
    pub bidir: bool,
    /// Use TCP (hello, lab; msg and tcpfile always do) [default: UDP for hello and lab].
    #[arg(long, conflicts_with = "udp")]
    pub tcp: bool,
    /// Use UDP (hello, lab; stopwait, tftp and window always do).
    #[arg(long)]
    pub udp: bool,
    /// Sessions running at once, all on one reactor (at most 10000, and no more
    /// than the open-file limit allows).
    #[arg(short = 'P', long, value_name = "N", default_value_t = 1)]
    pub parallel: u32,
    /// Run for this long, e.g. 10s, 500ms, 2m; a bare number is seconds, as in
    /// iperf3; 0 runs until -n or Ctrl-C [default: 10s unless -n is given].
    #[arg(short = 't', long, value_name = "DUR", value_parser = duration::parse)]
    pub time: Option<Duration>,
    /// Stop after N requests or transfers, each counted once it is answered,
    /// fails or times out (lab stream: N segments per stream, one stream per
    /// session) [at most 1000000000].
    #[arg(short = 'n', long, value_name = "N")]
    pub count: Option<u64>,
    /// Bytes per request, frame, segment or file, e.g. 64, 1400, 10K, 100MB, 64KiB
    /// (K/M/G are powers of 1000, Ki/Mi/Gi of 1024) [default: lab echo 64, msg 64,
    /// stream 1400, lab file and tcpfile/tftp/window 1M, stopwait 100K; hello ignores it].
    #[arg(short = 'l', long, value_name = "BYTES", value_parser = units::parse_size)]
    pub length: Option<u64>,
    /// lab stream: bits per second of each session's stream, e.g. 1M, 100Mbit/s,
    /// 1.5Gbps: a bare number or bit counts bits (as iperf3's -b), B counts bytes
    /// (10MB/s is 80M) [default: 1M].
    #[arg(short = 'b', long, value_name = "RATE", value_parser = units::parse_bit_rate)]
    pub bitrate: Option<u64>,
    // iperf3's -i; clap merges this attribute with the one below.
    #[arg(short = 'i')]
    /// Report every DUR: a table row or a --json-stream line, printed as each
    /// interval ends (-i, as iperf3); a bare number is seconds; 0 turns
    /// interval reports off.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "1s")]
    pub interval: Duration,
    /// The server to load, HOST:PORT [default: an in-process server on 127.0.0.1
    /// with a temporary root holding the generated files].
    #[arg(long, value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// Write one JSON document (inputs, environment, intervals, summary) instead of the table.
    #[arg(long, conflicts_with = "json_stream")]
    pub json: bool,
    /// Write iperf3's --json-stream events, one JSON object per line as it
    /// happens: {"event":"start",...} (inputs, environment, limits), one
    /// "interval" per interval as it ends, then "end" with the summary.
    #[arg(long)]
    pub json_stream: bool,
    /// Write what would go to standard output (table, JSON, events) to FILE
    /// instead, appending as iperf3's --logfile does (FILE is created if
    /// missing); errors and logs still go to standard error.
    #[arg(long, value_name = "FILE")]
    pub logfile: Option<PathBuf>,
    /// Also draw the time series and histograms into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Seed of the run's randomness (hello ID ranges, echo payload bytes).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// How long one request or transfer may wait for the server before it
    /// counts as a timeout [default: 1s for request/response, 5s for transfers].
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub timeout: Option<Duration>,
    /// File protocols: the file name to get or put [default: a generated name; with
    /// --server, a get needs the file to exist there].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// tftp: block size to ask for, in bytes (8..=65464, e.g. 1428, 8Ki) [default: 512, TFTP's own].
    #[arg(long, value_name = "BYTES", value_parser = units::parse_size_as::<u16>)]
    pub blksize: Option<u16>,
    /// tftp: window size to ask for (RFC 7440, 1..=65535) [default: 1].
    #[arg(long, value_name = "N")]
    pub windowsize: Option<u16>,
    /// window: the engine's congestion control, newreno or cubic [default: newreno].
    #[arg(long, value_name = "ALGORITHM", value_parser = crate::config::parse_tcp_cc)]
    pub cc: Option<crate::proto::tcp::cc::Algorithm>,
    /// Poll without sleeping for this long after each event, in the load generator and the
    /// in-process server: lock-step protocols (tftp, stopwait) skip a CPU wake-up per block, at
    /// the price of up to one CPU per reactor while the run lasts; needs a CPU free for each
    /// (docs/bench.md); 0s never busy-polls.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "0s")]
    pub busy_poll: Duration,
}
