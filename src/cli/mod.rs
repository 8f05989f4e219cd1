//! The command line: clap types only, and their conversion to config.
//!
//! Owns flag names, help texts and value parsing (durations, protocol
//! names, `PROTO=ADDR:PORT`). It never opens a socket or runs a protocol:
//! `app` does that with what this module produces. Every parse error is a
//! clap error, so it prints usage and exits 2.

pub mod bench;
pub mod duration;
#[cfg(test)]
mod help_defaults;
pub mod proxy;
pub mod tunstack;

use crate::config::{self, Ipv4Net, Probability, Protocol, ServeConfig};
use crate::reactor::TimerMode;
use crate::time::Duration;
use crate::units;
use crate::wire::hello::HelloId;
use clap::{ArgAction, Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// TCP and UDP protocol lab on one single-threaded mio reactor.
#[derive(Debug, Parser)]
#[command(name = "mioperf", version, about, long_about = None, propagate_version = true)]
#[command(after_help = "\
Every command reads sizes, rates and durations the same way:
  sizes      1400, 10K = 10KB (powers of 1000), 64Ki = 64KiB (of 1024), 1.5G, 64 GiB
  rates      bench -b counts bits: 10M, 1.5Gbit, 100Mbit/s, 1Gbps;
             proxy --rate counts bytes: 10M, 1MiB/s, or bits as 80Mbit/s
  durations  10 (seconds), 0.5, 250ms, 100us, 5s, 2m, 1h, 1m30s")]
pub struct Cli {
    /// More logging: -v debug, with a per-packet protocol trace (clients and serve); -vv
    /// trace (to standard error; other crates' lines stay at warn).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Quieter: -q warnings only, and a client that succeeds prints nothing
    /// but its --json (failures still print); -qq errors only.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub quiet: u8,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve every protocol on one poll loop (prints `listening …` lines, then `ready`).
    Serve(ServeArgs),
    /// Register a connection ID: prints the answer; exit 0 on OK, 1 on RESET, 2 on error or timeout.
    Hello(HelloArgs),
    /// Lab requests: echo text, N (a generated file) or a stream; prints what arrived. Without a request: a prompt.
    Lab(LabArgs),
    /// Send a file (or standard input) as one length-prefixed message and wait for its receipt.
    Msg(MsgArgs),
    /// Fetch a file from a tcpfile server: exit 0 when every byte arrived, 1 when refused.
    Get(GetArgs),
    /// Store a file on a tcpfile server: exit 0 on OK, 1 when refused (exists, forbidden).
    Put(PutArgs),
    /// Classic stop-and-wait over UDP: `stopwait get HOST:PORT NAME` or `stopwait put HOST:PORT FILE`.
    Stopwait(StopwaitArgs),
    /// TFTP: `tftp get HOST:PORT NAME` or `tftp put HOST:PORT FILE`, with options.
    Tftp(TftpArgs),
    /// tcpfile over the userspace TCP engine carried in UDP (no privilege): `window get HOST:PORT NAME` or `window put HOST:PORT FILE`.
    Window(WindowArgs),
    /// UDP impairment proxy: relays between clients and one server, losing, copying, delaying and reordering datagrams.
    Proxy(proxy::ProxyArgs),
    /// Load generator: many sessions of one protocol on one reactor; tables, JSON and SVG.
    Bench(bench::BenchArgs),
    /// The userspace TCP as a client over a TUN device: `tunstack get http://192.0.2.2:PORT/PATH`.
    Tunstack(tunstack::TunstackArgs),
    /// Print a completion script for SHELL to standard output, e.g. `mioperf completions bash > /etc/bash_completion.d/mioperf`.
    Completions(CompletionsArgs),
    /// Print mioperf's manual page (roff) to standard output, e.g. `mioperf man > mioperf.1`.
    Man,
}

/// Arguments of `mioperf completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Flags of `mioperf serve`.
#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "command-line switches: clap maps each flag to a bool of its own"
)]
pub struct ServeArgs {
    /// Address every listener binds.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// Move one protocol's listeners (TCP and UDP); port 0 picks a free port for each. Repeatable.
    #[arg(long, value_name = "PROTO=ADDR:PORT", value_parser = parse_listen)]
    pub listen: Vec<(Protocol, SocketAddr)>,
    /// Serve just these protocols (comma-separated) [default: all but tunstack].
    #[arg(long, value_name = "PROTO,...", value_delimiter = ',', value_parser = parse_protocol)]
    pub only: Option<Vec<Protocol>>,
    /// Folder for the file protocols (created if missing) [default: ./srv].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// PUT/WRQ may replace an existing file.
    #[arg(long)]
    pub allow_overwrite: bool,
    /// Refuse to start (exit 2) when the root is not writable, rather than warn.
    #[arg(long)]
    pub strict: bool,
    /// hello: lifetime of a registered ID, e.g. 30s, 250ms, 2m [default: 30s].
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub id_ttl: Option<Duration>,
    /// hello: most IDs registered at once; beyond it `ERROR busy` [default: 100000].
    #[arg(long, value_name = "N")]
    pub max_ids: Option<usize>,
    /// Every TCP protocol: close a connection that makes no progress for this long; progress is a byte received or output the peer takes, so a transfer that moves is never idle [default: 5m].
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub tcp_idle_timeout: Option<Duration>,
    /// Every TCP protocol: a request line (msg: a frame header) must be complete this long after it began, the first from accept, however slowly it trickles in (slowloris) [default: 10s].
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub tcp_request_timeout: Option<Duration>,
    /// Exit 0 after no request on any listener for this long; without it, serve runs until stopped.
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub idle_exit: Option<Duration>,
    /// stopwait: retransmission timer [default: 5s].
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub stopwait_timeout: Option<Duration>,
    /// stopwait: tries before a silent client's session is dropped [default: 5].
    #[arg(long, value_name = "N")]
    pub stopwait_tries: Option<u32>,
    /// stopwait: sessions at once, in all; at the bound the oldest unvalidated one is evicted, else `E busy` [default: 1024].
    #[arg(long, value_name = "N")]
    pub stopwait_max_sessions: Option<usize>,
    /// stopwait: sessions at once from one IP address [default: 64].
    #[arg(long, value_name = "N")]
    pub stopwait_max_sessions_per_peer: Option<usize>,
    /// stopwait: a session whose peer never answered ends after this long [default: 3s].
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub stopwait_unvalidated_lifetime: Option<Duration>,
    /// How deadlines wake the reactor: timerfd (µs precision) or poll (mio's ms timeout) [default: timerfd].
    #[arg(long, value_name = "MODE", value_parser = config::parse_timer_mode)]
    pub timer: Option<TimerMode>,
    /// How early to wake and spin for a stream's pacing deadline; 0s trusts the timerfd alone [default: 100us].
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub spin: Option<Duration>,
    /// Poll without sleeping for this long after each event: lock-step transfers (TFTP, stopwait) skip a CPU wake-up per block, for up to one CPU while they run; 0s never busy-polls [default: 0s].
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub busy_poll: Option<Duration>,
    /// lab: most segments a stream sends [default: 10000].
    #[arg(long, value_name = "N")]
    pub stream_max_count: Option<u64>,
    /// lab: largest generated file, in bytes, e.g. 100M, 1Gi [default: 123456789].
    #[arg(long, value_name = "BYTES", value_parser = units::parse_size)]
    pub file_max: Option<u64>,
    /// File protocols: largest file an upload may create, in bytes, e.g. 1G, 500MiB [default: 64 GiB].
    #[arg(long, value_name = "BYTES", value_parser = units::parse_size)]
    pub max_file_size: Option<u64>,
    /// tftp: refuse every write request.
    #[arg(long)]
    pub read_only: bool,
    /// File protocols: fsync each upload, then its directory, before the final answer, so an acknowledged upload survives a power loss (costs a disk flush per upload) [default: off].
    #[arg(long)]
    pub durable: bool,
    /// tcpfile: read GETs through user space instead of zero-copy sendfile (for comparison).
    #[arg(long)]
    pub no_sendfile: bool,
    /// msg: largest frame payload, in bytes, e.g. 1M, 16Mi [default: 64Mi].
    #[arg(long, value_name = "BYTES", value_parser = units::parse_size_as::<u32>)]
    pub msg_max: Option<u32>,
    /// Most open connections per TCP listener; lowered (with a warning) if it does not fit the descriptor budget [default: derived from the descriptor limit].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// tunstack: the TUN interface to create (or attach) [default: mio0].
    #[arg(long, value_name = "NAME", value_parser = config::parse_tun_name)]
    pub tun: Option<String>,
    /// tunstack: the device's net; the stack answers as its first address, the kernel side gets the second [default: 192.0.2.0/24].
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    pub tun_net: Option<Ipv4Net>,
    /// tunstack: the device's MTU, 68 to 65535; larger datagrams are fragmented [default: 1500].
    #[arg(long, value_name = "N", value_parser = parse_mtu)]
    pub tun_mtu: Option<u16>,
    /// tunstack: probability that a packet is lost, each way, 0 to 1 (the proxy's seeded model) [default: 0].
    #[arg(long, value_name = "P", value_parser = parse_probability)]
    pub tun_drop: Option<Probability>,
    /// tunstack: probability that a packet is delivered twice, each way [default: 0].
    #[arg(long, value_name = "P", value_parser = parse_probability)]
    pub tun_dup: Option<Probability>,
    /// tunstack: probability that a packet is held back 1-10 ms so later ones overtake it, each way [default: 0].
    #[arg(long, value_name = "P", value_parser = parse_probability)]
    pub tun_reorder: Option<Probability>,
    /// tunstack: seed of the impairment's random choices; the same seed and traffic repeat a run [default: random, logged].
    #[arg(long, value_name = "N")]
    pub tun_seed: Option<u64>,
    /// tunstack: record every packet read from and written to the device (after impairment, marked by direction) in FILE, pcapng with raw IPv4, for Wireshark or `tshark -r`.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// The userspace TCP's congestion control (tunstack): newreno or cubic [default: newreno].
    #[arg(long, value_name = "ALGORITHM", value_parser = config::parse_tcp_cc)]
    pub tcp_cc: Option<crate::proto::tcp::cc::Algorithm>,
    /// Read these settings from a TOML file (most keys are the flags' names with `_` for `-`; `sendfile = false` is --no-sendfile, `tftp_read_only` is --read-only; README shows an example); flags win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ServeArgs {
    /// Defaults, then the config file, then these flags.
    ///
    /// # Errors
    /// The config file cannot be read or is invalid.
    pub fn to_config(&self) -> Result<ServeConfig, String> {
        let mut c = ServeConfig::default();
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
            c.apply_toml(&text)
                .map_err(|e| format!("config {}: {e}", path.display()))?;
        }
        if let Some(v) = self.bind {
            c.bind = v;
        }
        c.listen.extend(self.listen.iter().copied());
        if let Some(v) = &self.only {
            c.only = Some(v.clone());
        }
        if let Some(v) = &self.root {
            c.root.clone_from(v);
        }
        c.allow_overwrite |= self.allow_overwrite;
        c.strict |= self.strict;
        if let Some(v) = self.id_ttl {
            c.id_ttl = v;
        }
        if let Some(v) = self.max_ids {
            c.max_ids = v;
        }
        if let Some(v) = self.idle_exit {
            c.idle_exit = Some(v);
        }
        if let Some(v) = self.tcp_idle_timeout {
            c.tcp_idle_timeout = v;
        }
        if let Some(v) = self.tcp_request_timeout {
            c.tcp_request_timeout = v;
        }
        if let Some(v) = self.stopwait_timeout {
            c.stopwait_timeout = v;
        }
        if let Some(v) = self.stopwait_tries {
            c.stopwait_tries = v;
        }
        if let Some(v) = self.stopwait_max_sessions {
            c.stopwait_max_sessions = v;
        }
        if let Some(v) = self.stopwait_max_sessions_per_peer {
            c.stopwait_max_sessions_per_peer = v;
        }
        if let Some(v) = self.stopwait_unvalidated_lifetime {
            c.stopwait_unvalidated_lifetime = v;
        }
        if let Some(v) = self.timer {
            c.timer = v;
        }
        if let Some(v) = self.spin {
            c.spin = v;
        }
        if let Some(v) = self.busy_poll {
            c.busy_poll = v;
        }
        if let Some(v) = self.stream_max_count {
            c.lab.stream_max_count = v;
        }
        if let Some(v) = self.file_max {
            c.lab.file_max = v;
        }
        if let Some(v) = self.msg_max {
            c.msg_max = v;
        }
        if let Some(v) = self.max_file_size {
            c.max_file_size = v;
        }
        c.durable |= self.durable;
        if self.no_sendfile {
            c.sendfile = false;
        }
        c.tftp.read_only |= self.read_only;
        if let Some(v) = self.max_connections {
            c.max_connections = Some(v);
        }
        self.apply_tun(&mut c.tun);
        if let Some(v) = self.tcp_cc {
            c.tcp_cc = v;
        }
        Ok(c)
    }

    /// The tunstack flags over `t`.
    fn apply_tun(&self, t: &mut config::TunConfig) {
        if let Some(v) = &self.tun {
            t.name.clone_from(v);
        }
        if let Some(v) = self.tun_net {
            t.net = v;
        }
        if let Some(v) = self.tun_mtu {
            t.mtu = v;
        }
        if let Some(v) = self.tun_drop {
            t.drop = v;
        }
        if let Some(v) = self.tun_dup {
            t.dup = v;
        }
        if let Some(v) = self.tun_reorder {
            t.reorder = v;
        }
        if let Some(v) = self.tun_seed {
            t.seed = Some(v);
        }
        if let Some(v) = &self.pcap {
            t.pcap = Some(v.clone());
        }
    }
}

/// Flags of `mioperf hello`.
#[derive(Debug, Args)]
pub struct HelloArgs {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// The ID to register: 1 to 4 decimal digits (sent as written).
    #[arg(value_parser = parse_id)]
    pub id: HelloId,
    /// Use TCP.
    #[arg(long, conflicts_with = "udp")]
    pub tcp: bool,
    /// Use UDP (the default).
    #[arg(long)]
    pub udp: bool,
    /// How long to wait for the answer to each request.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "3s")]
    pub timeout: Duration,
    /// UDP: requests to send before giving up. A retry after a lost answer is answered RESET.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub tries: u32,
    /// Print one JSON object instead of the answer.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `mioperf lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// `N` (a file of N bytes of A–Z), `stream-<interval_ms>-<count>-<size>`,
    /// `stream` (shaped by --interval, --count, --size or -b), or any other
    /// text (echoed). Without it: a prompt, one request per line (see the
    /// README's "lab prompt"); from a pipe, one request per line, no prompt.
    pub request: Option<String>,
    /// Use TCP (the default).
    #[arg(long, conflicts_with = "udp")]
    pub tcp: bool,
    /// Use UDP.
    #[arg(long)]
    pub udp: bool,
    /// Longest silence before giving up (a UDP stream ends after a few
    /// intervals of silence once it has started).
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "5s")]
    pub timeout: Duration,
    /// Segments a stream is expected to have at most (the server's `stream_max_count`).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_count: u64,
    /// `stream`: time between segments, e.g. 1ms, 250us, 0.5ms (a bare number is
    /// seconds, as everywhere; 0 sends as fast as possible; not with -b) [default: 1ms].
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub interval: Option<Duration>,
    /// `stream`: segments to send [default: 1000].
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// `stream`: bytes per segment, its 16-byte header included [default: 1400].
    #[arg(long, value_name = "BYTES", value_parser = units::parse_size)]
    pub size: Option<u64>,
    /// `stream`: target rate in bits/s, e.g. 10M, 100Mbit/s, 1.5Gbps (B counts bytes: 10MB/s is 80M); the interval is size × 8 / RATE.
    #[arg(short = 'b', long, value_name = "RATE", value_parser = units::parse_bit_rate)]
    pub bitrate: Option<u64>,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `mioperf msg`.
#[derive(Debug, Args)]
pub struct MsgArgs {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// The file to send, or `-` for standard input.
    pub file: PathBuf,
    /// Send it this many times on one connection, pipelined (the file is
    /// read into memory once), and report frames per second.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub count: u64,
    /// Longest wait without progress.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "10s")]
    pub timeout: Duration,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `mioperf get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The server, `HOST:PORT`.
    pub server: String,
    /// The file's name on the server.
    pub name: String,
    /// Where to write it (`-` for standard output) [default: the name's last component, here].
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Replace OUT if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// Longest wait without progress.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "30s")]
    pub timeout: Duration,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `mioperf put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The server, `HOST:PORT`.
    pub server: String,
    /// The file to send.
    pub file: PathBuf,
    /// The name to store it under [default: the file's name].
    #[arg(long = "as", value_name = "NAME")]
    pub name: Option<String>,
    /// Longest wait without progress.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "30s")]
    pub timeout: Duration,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// The direction of a stop-and-wait transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StopwaitVerb {
    /// Fetch NAME from the server.
    Get,
    /// Send FILE to the server.
    Put,
}

/// Flags of `mioperf stopwait`.
#[derive(Debug, Args)]
pub struct StopwaitArgs {
    /// `get` or `put`.
    pub verb: StopwaitVerb,
    /// The server, `HOST:PORT`.
    pub server: String,
    /// get: the name on the server; put: the local file to send.
    pub target: String,
    /// get: where to write it (`-` for standard output) [default: the name's last component].
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// get: replace OUT if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// put: the name to store it under [default: the file's name].
    #[arg(long = "as", value_name = "NAME")]
    pub name: Option<String>,
    /// Retransmit the last packet after this long without an answer.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "5s")]
    pub timeout: Duration,
    /// Packets sent without an answer before giving up.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub tries: u32,
    /// Poll without sleeping for this long after each packet: no CPU wake-up per block, for up to one CPU while the transfer runs; 0s never busy-polls.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "0s")]
    pub busy_poll: Duration,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `mioperf window`.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// `get` or `put`.
    pub verb: StopwaitVerb,
    /// The server, `HOST:PORT` (window listens on UDP 50003).
    pub server: String,
    /// get: the name on the server; put: the local file to send.
    pub target: String,
    /// get: where to write it (`-` for standard output) [default: the name's last component].
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// get: replace OUT if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// put: the name to store it under [default: the file's name].
    #[arg(long = "as", value_name = "NAME")]
    pub name: Option<String>,
    /// The engine's congestion control: newreno (RFC 5681/6582) or cubic (RFC 9438).
    #[arg(long, value_name = "ALGORITHM", value_parser = config::parse_tcp_cc, default_value = "newreno")]
    pub cc: crate::proto::tcp::cc::Algorithm,
    /// Give up after this long without progress.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "30s")]
    pub timeout: Duration,
    /// Print one JSON object (with the engine's counters under "tcp") instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `mioperf tftp`.
#[derive(Debug, Args)]
pub struct TftpArgs {
    /// `get` or `put`.
    pub verb: StopwaitVerb,
    /// The server, `HOST:PORT`.
    pub server: String,
    /// get: the name on the server; put: the local file to send.
    pub target: String,
    /// get: where to write it (`-` for standard output) [default: the name's last component].
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// get: replace OUT if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// put: the name to store it under [default: the file's name].
    #[arg(long = "as", value_name = "NAME")]
    pub name: Option<String>,
    /// Ask for this block size in bytes (RFC 2348, 8..=65464, e.g. 1428, 8Ki); without it no option is sent (512).
    #[arg(long, value_name = "BYTES", value_parser = parse_blksize)]
    pub blksize: Option<u16>,
    /// Ask for this window (RFC 7440, blocks per ACK).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub windowsize: Option<u16>,
    /// Transfer mode.
    #[arg(long, value_enum, default_value = "octet")]
    pub mode: TftpMode,
    /// Retransmit after this long without an answer.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "1s")]
    pub timeout: Duration,
    /// Sends of one packet before giving up.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub tries: u32,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// TFTP transfer modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TftpMode {
    /// Bytes as they are.
    Octet,
    /// Text, with CR LF line ends on the wire.
    Netascii,
}

fn parse_id(s: &str) -> Result<HelloId, String> {
    HelloId::parse(s.as_bytes()).map_err(|_| format!("'{s}' is not an ID: 1 to 4 decimal digits"))
}

fn parse_net(s: &str) -> Result<Ipv4Net, String> {
    s.trim().parse()
}

fn parse_mtu(s: &str) -> Result<u16, String> {
    let n = units::parse_size(s).map_err(|_| format!("'{s}' is not an MTU (68 to 65535)"))?;
    config::check_tun_mtu(u32::try_from(n).unwrap_or(u32::MAX))
}

/// A TFTP block size to ask for: bytes, within RFC 2348's 8..=65464.
fn parse_blksize(s: &str) -> Result<u16, String> {
    units::parse_size_within(s, 8, 65_464)
}

fn parse_probability(s: &str) -> Result<Probability, String> {
    s.parse()
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    s.trim().parse()
}

/// `PROTO=ADDR:PORT`, e.g. `hello=127.0.0.1:0` or `tftp=[::1]:6969`.
fn parse_listen(s: &str) -> Result<(Protocol, SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': expected PROTO=ADDR:PORT, e.g. hello=127.0.0.1:0"))?;
    let protocol = parse_protocol(name)?;
    let addr = addr
        .parse()
        .map_err(|_| format!("'{addr}' is not ADDR:PORT (IPv6 as [::1]:PORT)"))?;
    Ok((protocol, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mioperf").chain(args.iter().copied()))
    }

    #[test]
    fn serve_with_no_arguments_uses_defaults() {
        let Command::Serve(args) = parse(&["serve"]).unwrap().command else {
            panic!()
        };
        assert_eq!(args.to_config().unwrap(), ServeConfig::default());
    }

    #[test]
    fn serve_flags_reach_the_config() {
        let cli = parse(&[
            "serve",
            "--bind",
            "0.0.0.0",
            "--listen",
            "hello=127.0.0.1:0",
            "--only",
            "hello,lab",
            "--id-ttl",
            "250ms",
            "--idle-exit",
            "2m",
            "--max-ids",
            "7",
            "--timer",
            "poll",
            "-vv",
        ])
        .unwrap();
        assert_eq!(cli.verbose, 2);
        let Command::Serve(args) = cli.command else {
            panic!()
        };
        let c = args.to_config().unwrap();
        assert_eq!(c.addr(Protocol::Hello), "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.only, Some(vec![Protocol::Hello, Protocol::Lab]));
        assert_eq!(c.id_ttl, Duration::from_millis(250));
        assert_eq!(c.idle_exit, Some(Duration::from_secs(120)));
        assert_eq!(c.max_ids, 7);
        assert_eq!(c.timer, TimerMode::Poll);
    }

    #[test]
    fn tun_flags_reach_the_config() {
        let Command::Serve(args) = parse(&[
            "serve",
            "--only",
            "tunstack",
            "--tun",
            "mt1",
            "--tun-net",
            "10.0.0.0/29",
            "--tun-mtu",
            "576",
            "--tun-drop",
            "0.25",
            "--tun-dup",
            "0.5",
            "--tun-reorder",
            "1",
            "--tun-seed",
            "9",
            "--pcap",
            "/tmp/x.pcapng",
            "--tcp-cc",
            "cubic",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        let c = args.to_config().unwrap();
        assert_eq!(c.only, Some(vec![Protocol::Tunstack]));
        let t = c.tun;
        assert_eq!(t.name, "mt1");
        assert_eq!(t.net.to_string(), "10.0.0.0/29");
        assert_eq!(t.mtu, 576);
        assert_eq!(
            (t.drop.get(), t.dup.get(), t.reorder.get()),
            (0.25, 0.5, 1.0)
        );
        assert_eq!(t.seed, Some(9));
        assert_eq!(t.pcap, Some(PathBuf::from("/tmp/x.pcapng")));
        assert_eq!(c.tcp_cc, crate::proto::tcp::cc::Algorithm::Cubic);
    }

    #[test]
    fn bad_tun_values_are_one_line_usage_errors() {
        for (args, says) in [
            (&["serve", "--tun-mtu", "67"][..], "68 to 65535"),
            (&["serve", "--tcp-cc", "vegas"][..], "newreno or cubic"),
            (&["serve", "--tun-mtu", "big"], "not an MTU"),
            (&["serve", "--tun-net", "192.0.2.1/24"], "host bits"),
            (&["serve", "--tun-net", "192.0.2.0/31"], "two addresses"),
            (&["serve", "--tun-drop", "1.01"], "not a probability"),
            (&["serve", "--tun-dup", "x"], "not a probability"),
            (&["serve", "--tun", "much-too-long-name"], "interface name"),
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            let text = err.to_string();
            let first = text.lines().next().unwrap_or_default();
            assert!(first.contains(says), "{args:?}: {first}");
        }
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["serve", "--only", "gopher"][..],
            &["serve", "--id-ttl", "5x"],
            &["serve", "--listen", "hello:127.0.0.1:1"],
            &["serve", "--listen", "hello=nowhere"],
            &["hello", "h", "1", "2", "--tcp", "--udp"],
            &["hello", "h", "99999", "2"],
            &["hello", "h", "1", "12345"],
            &["hello", "h", "1", "-1"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
