//! Plain-data settings with the spec's defaults, and the TOML file loader.
//!
//! Owns every named limit and default of `mioperf serve`, and the rule for
//! combining them: built-in defaults, then `--config FILE`, then flags. It
//! never opens a socket; it may read the one config file it is given.

use crate::cli::duration::ConfigDuration;
use crate::proto::budget::BudgetConfig;
use crate::proto::lab::LabConfig;
use crate::reactor::TimerMode;
use crate::time::Duration;
use crate::units::{Bounded, ConfigByteRate, ConfigSize};
use core::fmt;
use core::str::FromStr;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Every protocol of the contract (`shared/spec/protocols.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// Connection-ID registry (TCP and UDP).
    Hello,
    /// Echo / generated file / paced stream (TCP and UDP).
    Lab,
    /// Length-prefixed message with receipt (TCP).
    Msg,
    /// File GET/PUT (TCP).
    Tcpfile,
    /// Classic stop-and-wait file transfer (UDP).
    Stopwait,
    /// RFC 1350 TFTP with options (UDP).
    Tftp,
    /// UDP impairment proxy.
    Proxy,
    /// Sliding-window congestion-controlled transfer (UDP).
    Window,
    /// Userspace TCP/IPv4 over TUN.
    Tunstack,
}

impl Protocol {
    /// All protocols, in the order of the spec's table.
    pub const ALL: [Self; 9] = [
        Self::Hello,
        Self::Lab,
        Self::Msg,
        Self::Tcpfile,
        Self::Stopwait,
        Self::Tftp,
        Self::Proxy,
        Self::Window,
        Self::Tunstack,
    ];

    /// The name used on the command line and in `listening` lines.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hello => "hello",
            Self::Lab => "lab",
            Self::Msg => "msg",
            Self::Tcpfile => "tcpfile",
            Self::Stopwait => "stopwait",
            Self::Tftp => "tftp",
            Self::Proxy => "proxy",
            Self::Window => "window",
            Self::Tunstack => "tunstack",
        }
    }

    /// The spec's default port.
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Hello => 20009,
            Self::Lab => 8120,
            Self::Msg => 7001,
            Self::Tcpfile => 50002,
            Self::Stopwait => 50001,
            Self::Tftp => 6969,
            Self::Proxy => 50000,
            Self::Window => 50003,
            Self::Tunstack => 7000,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|p| p.name()).collect();
                format!("unknown protocol '{s}' (known: {})", names.join(", "))
            })
    }
}

/// Everything `mioperf serve` needs, after defaults, file and flags.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent switches of the command line and file, one bool each"
)]
pub struct ServeConfig {
    /// Address every listener binds unless moved by `listen`.
    pub bind: IpAddr,
    /// Per-protocol listener addresses (`--listen PROTO=ADDR:PORT`).
    pub listen: BTreeMap<Protocol, SocketAddr>,
    /// Serve just these; `None` means every implemented protocol but tunstack.
    pub only: Option<Vec<Protocol>>,
    /// Folder for the file protocols.
    pub root: PathBuf,
    /// PUT/WRQ may replace an existing file.
    pub allow_overwrite: bool,
    /// Refuse to start when the root is not writable (otherwise: a warning,
    /// and uploads fail as they come).
    pub strict: bool,
    /// Largest file an upload may create.
    pub max_file_size: u64,
    /// File protocols: `fsync` an upload and its directory before the
    /// final answer (off: the benchmarks' default).
    pub durable: bool,
    /// hello: lifetime of a registered ID.
    pub id_ttl: Duration,
    /// hello: most IDs registered at once; beyond it `ERROR busy`.
    pub max_ids: usize,
    /// Every TCP protocol: a connection without progress this long is
    /// closed (`proto::idle`).
    pub tcp_idle_timeout: Duration,
    /// Every TCP protocol: a request line or frame header must be complete
    /// this long after it began (slowloris; `proto::idle`).
    pub tcp_request_timeout: Duration,
    /// Exit 0 after no request for this long.
    pub idle_exit: Option<Duration>,
    /// stopwait: retransmission timer.
    pub stopwait_timeout: Duration,
    /// stopwait: tries before a session is dropped.
    pub stopwait_tries: u32,
    /// stopwait: sessions at once, in all (`StopwaitConfig::max_sessions`).
    pub stopwait_max_sessions: usize,
    /// stopwait: sessions at once from one IP address.
    pub stopwait_max_sessions_per_peer: usize,
    /// stopwait: longest life of a session whose peer never answered.
    pub stopwait_unvalidated_lifetime: Duration,
    /// How the reactor wakes for deadlines.
    pub timer: TimerMode,
    /// How early the reactor wakes to spin for a pacing deadline.
    pub spin: Duration,
    /// How long after the last event the reactor polls without sleeping.
    pub busy_poll: Duration,
    /// lab: stream and file limits.
    pub lab: LabConfig,
    /// msg: largest frame payload.
    pub msg_max: u32,
    /// tcpfile: send GETs with zero-copy `sendfile`.
    pub sendfile: bool,
    /// tftp: negotiation limits, timers, session bounds, read-only.
    pub tftp: crate::proto::tftp::TftpConfig,
    /// UDP send budgets for peers whose address is not validated.
    pub udp_budget: BudgetConfig,
    /// Most open connections per TCP listener; `None` derives it from the
    /// descriptor limit (`app/budget.rs`), and a value that does not fit
    /// that budget is lowered to it, with a warning.
    pub max_connections: Option<usize>,
    /// proxy: the server it relays to; `None` is wherever stopwait
    /// listens (the seed's arrangement). `serve` relays without impairing;
    /// `mioperf proxy` is the one with impairment flags.
    pub proxy_upstream: Option<SocketAddr>,
    /// tunstack: the TUN device, its net and MTU, its impairment and
    /// capture.
    pub tun: TunConfig,
    /// The userspace TCP engine's congestion control (`--tcp-cc`).
    pub tcp_cc: crate::proto::tcp::cc::Algorithm,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            listen: BTreeMap::new(),
            only: None,
            root: PathBuf::from("./srv"),
            allow_overwrite: false,
            strict: false,
            max_file_size: crate::store::StoreConfig::default().max_file_size,
            durable: false,
            id_ttl: Duration::from_secs(30),
            max_ids: 100_000,
            tcp_idle_timeout: crate::proto::idle::DEFAULT_IDLE_TIMEOUT,
            tcp_request_timeout: crate::proto::idle::DEFAULT_REQUEST_TIMEOUT,
            idle_exit: None,
            stopwait_timeout: Duration::from_secs(5),
            stopwait_tries: 5,
            stopwait_max_sessions: crate::proto::stopwait::StopwaitConfig::DEFAULT.max_sessions,
            stopwait_max_sessions_per_peer: crate::proto::stopwait::StopwaitConfig::DEFAULT
                .max_sessions_per_peer,
            stopwait_unvalidated_lifetime: crate::proto::stopwait::StopwaitConfig::DEFAULT
                .unvalidated_lifetime,
            timer: TimerMode::Timerfd,
            spin: Duration::from_micros(100),
            busy_poll: Duration::ZERO,
            lab: LabConfig::default(),
            msg_max: crate::wire::msg::DEFAULT_MAX,
            sendfile: true,
            tftp: crate::proto::tftp::TftpConfig::default(),
            udp_budget: BudgetConfig::default(),
            proxy_upstream: None,
            max_connections: None,
            tun: TunConfig::default(),
            tcp_cc: crate::proto::tcp::cc::Algorithm::default(),
        }
    }
}

impl ServeConfig {
    /// The protocols to serve, in spec order.
    pub fn protocols(&self) -> Vec<Protocol> {
        match &self.only {
            Some(list) => Protocol::ALL
                .into_iter()
                .filter(|p| list.contains(p))
                .collect(),
            None => Protocol::ALL
                .into_iter()
                .filter(|p| *p != Protocol::Tunstack)
                .collect(),
        }
    }

    /// Where `protocol` listens.
    pub fn addr(&self, protocol: Protocol) -> SocketAddr {
        self.listen
            .get(&protocol)
            .copied()
            .unwrap_or_else(|| SocketAddr::new(self.bind, protocol.default_port()))
    }

    /// Applies the settings of a TOML config file over `self`.
    ///
    /// # Errors
    /// A message for the user: a syntax error, an unknown key, a bad value.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        self.apply_server(&file)?;
        self.apply_tftp(&file)?;
        self.apply_lab(&file)?;
        self.apply_tun(&file)?;
        let b = &mut self.udp_budget;
        set(&mut b.peer_rate, file.udp_peer_rate.map(|r| r.0));
        size(&mut b.peer_burst, "udp_peer_burst", file.udp_peer_burst)?;
        set(&mut b.global_rate, file.udp_global_rate.map(|r| r.0));
        size(
            &mut b.global_burst,
            "udp_global_burst",
            file.udp_global_burst,
        )?;
        set(&mut b.trust_loopback, file.udp_trust_loopback);
        Ok(())
    }

    /// The server-wide keys and those of hello, stopwait, msg, tcpfile and
    /// the proxy.
    fn apply_server(&mut self, file: &ConfigFile) -> Result<(), String> {
        if let Some(v) = &file.bind {
            self.bind = v
                .parse()
                .map_err(|_| format!("bind: '{v}' is not an IP address"))?;
        }
        for (name, addr) in file.listen.iter().flatten() {
            let protocol: Protocol = name.parse().map_err(|e| format!("listen: {e}"))?;
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| format!("listen.{name}: '{addr}' is not ADDR:PORT"))?;
            self.listen.insert(protocol, addr);
        }
        if let Some(list) = &file.only {
            let parsed: Result<Vec<Protocol>, String> = list.iter().map(|s| s.parse()).collect();
            self.only = Some(parsed.map_err(|e| format!("only: {e}"))?);
        }
        if let Some(v) = &file.root {
            self.root.clone_from(v);
        }
        set(&mut self.allow_overwrite, file.allow_overwrite);
        set(&mut self.strict, file.strict);
        set(&mut self.id_ttl, file.id_ttl.map(|d| d.0));
        set(&mut self.max_ids, file.max_ids);
        set(
            &mut self.tcp_idle_timeout,
            file.tcp_idle_timeout.map(|d| d.0),
        );
        set(
            &mut self.tcp_request_timeout,
            file.tcp_request_timeout.map(|d| d.0),
        );
        if let Some(v) = file.idle_exit {
            self.idle_exit = Some(v.0);
        }
        set(
            &mut self.stopwait_timeout,
            file.stopwait_timeout.map(|d| d.0),
        );
        set(&mut self.stopwait_tries, file.stopwait_tries);
        set(&mut self.stopwait_max_sessions, file.stopwait_max_sessions);
        set(
            &mut self.stopwait_max_sessions_per_peer,
            file.stopwait_max_sessions_per_peer,
        );
        set(
            &mut self.stopwait_unvalidated_lifetime,
            file.stopwait_unvalidated_lifetime.map(|d| d.0),
        );
        if let Some(v) = &file.timer {
            self.timer = parse_timer_mode(v).map_err(|e| format!("timer: {e}"))?;
        }
        set(&mut self.spin, file.spin.map(|d| d.0));
        set(&mut self.busy_poll, file.busy_poll.map(|d| d.0));
        size(&mut self.msg_max, "msg_max", file.msg_max)?;
        size(&mut self.max_file_size, "max_file_size", file.max_file_size)?;
        set(&mut self.durable, file.durable);
        set(&mut self.sendfile, file.sendfile);
        if let Some(v) = file.max_connections {
            self.max_connections = Some(v);
        }
        if let Some(v) = &file.tcp_cc {
            self.tcp_cc = parse_tcp_cc(v).map_err(|e| format!("tcp_cc: {e}"))?;
        }
        if let Some(v) = &file.proxy_upstream {
            self.proxy_upstream = Some(
                v.parse()
                    .map_err(|_| format!("proxy_upstream: '{v}' is not ADDR:PORT"))?,
            );
        }
        Ok(())
    }

    /// The `tftp_*` keys, then their ranges.
    fn apply_tftp(&mut self, file: &ConfigFile) -> Result<(), String> {
        let t = &mut self.tftp;
        size(
            &mut t.max_blksize,
            "tftp_max_blksize",
            file.tftp_max_blksize,
        )?;
        set(&mut t.max_windowsize, file.tftp_max_windowsize);
        set(&mut t.tries, file.tftp_tries);
        set(&mut t.read_only, file.tftp_read_only);
        set(&mut t.max_sessions, file.tftp_max_sessions);
        set(
            &mut t.max_sessions_per_peer,
            file.tftp_max_sessions_per_peer,
        );
        set(&mut t.timeout, file.tftp_timeout.map(|d| d.0));
        set(
            &mut t.unvalidated_lifetime,
            file.tftp_unvalidated_lifetime.map(|d| d.0),
        );
        if !(8..=65_464).contains(&t.max_blksize) || t.max_windowsize == 0 {
            return Err(
                "tftp_max_blksize must be 8..=65464 and tftp_max_windowsize at least 1".into(),
            );
        }
        Ok(())
    }

    /// The tunstack keys (`tun`, `tun_net`, `tun_mtu`, `tun_drop`,
    /// `tun_dup`, `tun_reorder`, `tun_seed`, `pcap`), each checked as its
    /// flag is.
    fn apply_tun(&mut self, file: &ConfigFile) -> Result<(), String> {
        let t = &mut self.tun;
        if let Some(v) = &file.tun {
            t.name = parse_tun_name(v).map_err(|e| format!("tun: {e}"))?;
        }
        if let Some(v) = &file.tun_net {
            t.net = v.parse().map_err(|e| format!("tun_net: {e}"))?;
        }
        if let Some(v) = file.tun_mtu {
            let mtu = v.get::<u32>("tun_mtu")?;
            t.mtu = check_tun_mtu(mtu).map_err(|e| format!("tun_mtu: {e}"))?;
        }
        for (key, slot, value) in [
            ("tun_drop", &mut t.drop, file.tun_drop),
            ("tun_dup", &mut t.dup, file.tun_dup),
            ("tun_reorder", &mut t.reorder, file.tun_reorder),
        ] {
            if let Some(v) = value {
                *slot = Probability::new(v).map_err(|e| format!("{key}: {e}"))?;
            }
        }
        if let Some(v) = file.tun_seed {
            t.seed = Some(v);
        }
        if let Some(v) = &file.pcap {
            t.pcap = Some(v.clone());
        }
        Ok(())
    }

    /// The lab keys, then their ranges.
    fn apply_lab(&mut self, file: &ConfigFile) -> Result<(), String> {
        let lab = &mut self.lab;
        set(&mut lab.stream_max_count, file.stream_max_count);
        size(&mut lab.file_max, "file_max", file.file_max)?;
        size(&mut lab.segment, "segment", file.segment)?;
        size(&mut lab.line_max, "line_max", file.line_max)?;
        size(
            &mut lab.tcp_segment_max,
            "tcp_segment_max",
            file.tcp_segment_max,
        )?;
        if !(1..=crate::wire::lab::MAX_UDP_PAYLOAD).contains(&lab.segment) {
            return Err("segment: must be 1..=65507".into());
        }
        if lab.line_max < 2 {
            return Err("line_max: must be at least 2".into());
        }
        Ok(())
    }
}

/// Sets `slot` to a size of the config file, if given and if it fits.
fn size<T: TryFrom<u64> + Bounded>(
    slot: &mut T,
    key: &str,
    value: Option<ConfigSize>,
) -> Result<(), String> {
    if let Some(v) = value {
        *slot = v.get(key)?;
    }
    Ok(())
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// `timerfd` or `poll`.
///
/// # Errors
/// Any other word.
pub fn parse_timer_mode(s: &str) -> Result<TimerMode, String> {
    match s {
        "timerfd" => Ok(TimerMode::Timerfd),
        "poll" => Ok(TimerMode::Poll),
        _ => Err(format!("'{s}': use timerfd or poll")),
    }
}

/// The TUN device's name when `--tun` is not given.
pub const DEFAULT_TUN_NAME: &str = "mio0";
/// The TUN device's MTU when `--tun-mtu` is not given: Ethernet's.
pub const DEFAULT_TUN_MTU: u16 = 1500;
/// The smallest MTU IPv4 allows (RFC 791: every host must forward a
/// 68-byte datagram without fragmenting it).
pub const MIN_TUN_MTU: u16 = 68;
/// Shortest hold-back of a packet `--tun-reorder` reorders: the proxy's
/// default, long enough for the next packets of a burst to overtake it.
pub const TUN_REORDER_MIN: Duration = Duration::from_millis(1);
/// Longest hold-back of a reordered packet: the proxy's default, well
/// below a TCP retransmission timeout, so reordering is not mistaken for
/// loss more often than a real path would make it.
pub const TUN_REORDER_MAX: Duration = Duration::from_millis(10);
/// Longest prefix a device's net may have: it needs two host addresses,
/// the stack's (the first) and the kernel side's (the second).
pub const MAX_TUN_PREFIX: u8 = 30;

/// The congestion control named `s`: `newreno` or `cubic`.
///
/// # Errors
/// Any other name, in a one-line message.
pub fn parse_tcp_cc(s: &str) -> Result<crate::proto::tcp::cc::Algorithm, String> {
    use crate::proto::tcp::cc::Algorithm;
    match s.to_ascii_lowercase().as_str() {
        "newreno" => Ok(Algorithm::NewReno),
        "cubic" => Ok(Algorithm::Cubic),
        _ => Err(format!(
            "'{s}' is not a congestion control (newreno or cubic)"
        )),
    }
}

/// tunstack's settings: the device, its net and MTU, the impairment on it
/// (both directions, the proxy's model) and where to capture it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunConfig {
    /// The interface to create or attach (`--tun`).
    pub name: String,
    /// The device's net: the stack answers as its first address, the
    /// kernel side gets the second (`--tun-net`).
    pub net: Ipv4Net,
    /// The device's MTU, at least [`MIN_TUN_MTU`] (`--tun-mtu`).
    pub mtu: u16,
    /// Probability that a packet is lost, each way (`--tun-drop`).
    pub drop: Probability,
    /// Probability that a packet is delivered twice, each way (`--tun-dup`).
    pub dup: Probability,
    /// Probability that a packet is held back so later ones overtake it,
    /// each way (`--tun-reorder`).
    pub reorder: Probability,
    /// Seed of the impairment's random choices; `None`: a random one,
    /// logged (`--tun-seed`).
    pub seed: Option<u64>,
    /// Record every packet read from and written to the device here, as
    /// pcapng (`--pcap`).
    pub pcap: Option<PathBuf>,
}

impl Default for TunConfig {
    fn default() -> Self {
        Self {
            name: DEFAULT_TUN_NAME.to_owned(),
            net: Ipv4Net::DEFAULT_TUN,
            mtu: DEFAULT_TUN_MTU,
            drop: Probability::ZERO,
            dup: Probability::ZERO,
            reorder: Probability::ZERO,
            seed: None,
            pcap: None,
        }
    }
}

impl TunConfig {
    /// Whether any impairment is asked for.
    pub fn impaired(&self) -> bool {
        [self.drop, self.dup, self.reorder]
            .iter()
            .any(|p| p.get() > 0.0)
    }
}

/// An IPv4 net, `ADDR/PREFIX` with no host bits set, with room for the
/// two addresses a device needs (at most `/30`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    network: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Net {
    /// `192.0.2.0/24` (TEST-NET-1, RFC 5737: never routed on the Internet).
    pub const DEFAULT_TUN: Self = Self {
        network: Ipv4Addr::new(192, 0, 2, 0),
        prefix_len: 24,
    };

    /// The net's own address (host bits zero).
    pub fn network(self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix_len(self) -> u8 {
        self.prefix_len
    }

    /// The first address: the stack's.
    pub fn stack_addr(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The second address: the kernel side's.
    pub fn kernel_addr(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 2)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not ADDR/PREFIX, e.g. 192.0.2.0/24"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an IPv4 address"))?;
        let prefix_len: u8 = prefix
            .parse()
            .ok()
            .filter(|&p| p <= 32)
            .ok_or_else(|| format!("'{prefix}' is not a prefix length (0 to 32)"))?;
        if prefix_len > MAX_TUN_PREFIX {
            return Err(format!(
                "'{s}' is too small: the stack and the kernel need two addresses (at most /{MAX_TUN_PREFIX})"
            ));
        }
        let mask = u32::MAX
            .checked_shl(32 - u32::from(prefix_len))
            .unwrap_or(0);
        let network = Ipv4Addr::from(u32::from(addr) & mask);
        if network != addr {
            return Err(format!(
                "'{s}' has host bits set: the net is {network}/{prefix_len}"
            ));
        }
        Ok(Self {
            network,
            prefix_len,
        })
    }
}

/// A probability: a number within 0 and 1 (never NaN, hence `Eq`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Probability(f64);

// Lawful: `new` refuses NaN, the one value not equal to itself.
impl Eq for Probability {}

impl Probability {
    /// Never.
    pub const ZERO: Self = Self(0.0);

    /// `p` if it is within 0 and 1.
    ///
    /// # Errors
    /// A number outside (or NaN).
    pub fn new(p: f64) -> Result<Self, String> {
        if (0.0..=1.0).contains(&p) {
            Ok(Self(p))
        } else {
            Err(format!("{p} is not a probability (0 to 1)"))
        }
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl FromStr for Probability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let p: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a probability (0 to 1)"))?;
        Self::new(p)
    }
}

/// A TUN interface name the kernel can take: 1 to 15 bytes, none of them
/// a NUL, `/` or white space.
///
/// # Errors
/// Any other name.
pub fn parse_tun_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && !s
            .bytes()
            .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{}' is not an interface name (1 to 15 bytes, no '/' or spaces)",
            s.escape_debug()
        ))
    }
}

/// An MTU from [`MIN_TUN_MTU`] to 65535.
///
/// # Errors
/// Any other number.
pub fn check_tun_mtu(mtu: u32) -> Result<u16, String> {
    u16::try_from(mtu)
        .ok()
        .filter(|&m| m >= MIN_TUN_MTU)
        .ok_or_else(|| format!("{mtu} is not an MTU ({MIN_TUN_MTU} to 65535)"))
}

/// The TOML file: the same keys as the flags, with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    bind: Option<String>,
    listen: Option<BTreeMap<String, String>>,
    only: Option<Vec<String>>,
    root: Option<PathBuf>,
    allow_overwrite: Option<bool>,
    strict: Option<bool>,
    id_ttl: Option<ConfigDuration>,
    max_ids: Option<usize>,
    tcp_idle_timeout: Option<ConfigDuration>,
    tcp_request_timeout: Option<ConfigDuration>,
    idle_exit: Option<ConfigDuration>,
    stopwait_timeout: Option<ConfigDuration>,
    stopwait_tries: Option<u32>,
    stopwait_max_sessions: Option<usize>,
    stopwait_max_sessions_per_peer: Option<usize>,
    stopwait_unvalidated_lifetime: Option<ConfigDuration>,
    timer: Option<String>,
    spin: Option<ConfigDuration>,
    busy_poll: Option<ConfigDuration>,
    stream_max_count: Option<u64>,
    file_max: Option<ConfigSize>,
    segment: Option<ConfigSize>,
    line_max: Option<ConfigSize>,
    tcp_segment_max: Option<ConfigSize>,
    msg_max: Option<ConfigSize>,
    max_file_size: Option<ConfigSize>,
    durable: Option<bool>,
    sendfile: Option<bool>,
    tftp_max_blksize: Option<ConfigSize>,
    tftp_max_windowsize: Option<u16>,
    tftp_timeout: Option<ConfigDuration>,
    tftp_tries: Option<u32>,
    tftp_read_only: Option<bool>,
    tftp_max_sessions: Option<usize>,
    tftp_max_sessions_per_peer: Option<usize>,
    tftp_unvalidated_lifetime: Option<ConfigDuration>,
    udp_peer_rate: Option<ConfigByteRate>,
    udp_peer_burst: Option<ConfigSize>,
    udp_global_rate: Option<ConfigByteRate>,
    udp_global_burst: Option<ConfigSize>,
    udp_trust_loopback: Option<bool>,
    proxy_upstream: Option<String>,
    max_connections: Option<usize>,
    tun: Option<String>,
    tun_net: Option<String>,
    tun_mtu: Option<ConfigSize>,
    tun_drop: Option<f64>,
    tun_dup: Option<f64>,
    tun_reorder: Option<f64>,
    tun_seed: Option<u64>,
    pcap: Option<PathBuf>,
    tcp_cc: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec() {
        let c = ServeConfig::default();
        assert_eq!(c.addr(Protocol::Hello), "127.0.0.1:20009".parse().unwrap());
        assert_eq!(c.id_ttl, Duration::from_secs(30));
        assert_eq!(c.max_ids, 100_000);
        assert_eq!(c.idle_exit, None);
        assert!(!c.protocols().contains(&Protocol::Tunstack));
        assert!(c.protocols().contains(&Protocol::Hello));
    }

    #[test]
    fn protocol_names_round_trip() {
        for p in Protocol::ALL {
            assert_eq!(p.name().parse::<Protocol>(), Ok(p));
        }
        assert!(
            "gopher"
                .parse::<Protocol>()
                .unwrap_err()
                .contains("known: hello")
        );
    }

    #[test]
    fn toml_file_sets_every_key() {
        let mut c = ServeConfig::default();
        c.apply_toml(
            r#"
            bind = "0.0.0.0"
            only = ["hello"]
            root = "/tmp/x"
            allow_overwrite = true
            strict = true
            id_ttl = "250ms"
            max_ids = 5
            idle_exit = "2m"
            stopwait_timeout = "1s"
            stopwait_tries = 3
            stopwait_max_sessions = 7
            stopwait_max_sessions_per_peer = 2
            stopwait_unvalidated_lifetime = "1500ms"
            timer = "poll"
            [listen]
            hello = "127.0.0.1:0"
            "#,
        )
        .unwrap();
        assert_eq!(c.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.only, Some(vec![Protocol::Hello]));
        assert_eq!(c.root, PathBuf::from("/tmp/x"));
        assert!(c.allow_overwrite);
        assert!(c.strict);
        assert_eq!(c.id_ttl, Duration::from_millis(250));
        assert_eq!(c.max_ids, 5);
        assert_eq!(c.idle_exit, Some(Duration::from_secs(120)));
        assert_eq!(c.stopwait_timeout, Duration::from_secs(1));
        assert_eq!(c.stopwait_tries, 3);
        assert_eq!(c.stopwait_max_sessions, 7);
        assert_eq!(c.stopwait_max_sessions_per_peer, 2);
        assert_eq!(c.stopwait_unvalidated_lifetime, Duration::from_millis(1500));
        assert_eq!(c.timer, TimerMode::Poll);
        assert_eq!(c.addr(Protocol::Hello), "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.addr(Protocol::Lab), "0.0.0.0:8120".parse().unwrap());
    }

    #[test]
    fn tcp_timeouts_default_and_toml() {
        let mut c = ServeConfig::default();
        assert_eq!(c.tcp_idle_timeout, Duration::from_secs(300));
        assert_eq!(c.tcp_request_timeout, Duration::from_secs(10));
        c.apply_toml("tcp_idle_timeout = \"1m\"\ntcp_request_timeout = \"2s\"")
            .unwrap();
        assert_eq!(c.tcp_idle_timeout, Duration::from_secs(60));
        assert_eq!(c.tcp_request_timeout, Duration::from_secs(2));
    }

    #[test]
    fn toml_sets_lab_limits_and_budgets() {
        let mut c = ServeConfig::default();
        c.apply_toml(
            "stream_max_count = 5\nfile_max = 1000\nsegment = 512\nspin = \"0s\"\n\
             udp_peer_rate = 10\nudp_trust_loopback = false\n\
             tftp_unvalidated_lifetime = \"5s\"",
        )
        .unwrap();
        assert_eq!(c.tftp.unvalidated_lifetime, Duration::from_secs(5));
        assert_eq!(c.lab.stream_max_count, 5);
        assert_eq!(c.lab.file_max, 1000);
        assert_eq!(c.lab.segment, 512);
        assert_eq!(c.spin, Duration::ZERO);
        assert_eq!(c.udp_budget.peer_rate, 10);
        assert!(!c.udp_budget.trust_loopback);
        assert!(c.apply_toml("segment = 70000").is_err());
    }

    #[test]
    fn toml_sizes_rates_and_durations_speak_the_flags_language() {
        let mut c = ServeConfig::default();
        c.apply_toml(
            "max_file_size = \"1G\"\nmsg_max = \"16Mi\"\nfile_max = 1000\n\
             segment = \"1.4K\"\nudp_peer_rate = \"8Mbit/s\"\nudp_peer_burst = \"256KiB\"\n\
             id_ttl = 30\nspin = 0.5\ntftp_timeout = \"1m30s\"\ntun_mtu = \"9K\"",
        )
        .unwrap();
        assert_eq!(c.max_file_size, 1_000_000_000);
        assert_eq!(c.msg_max, 16 << 20);
        assert_eq!(c.lab.file_max, 1000);
        assert_eq!(c.lab.segment, 1400);
        assert_eq!(c.udp_budget.peer_rate, 1_000_000);
        assert_eq!(c.udp_budget.peer_burst, 256 << 10);
        assert_eq!(c.id_ttl, Duration::from_secs(30));
        assert_eq!(c.spin, Duration::from_millis(500));
        assert_eq!(c.tftp.timeout, Duration::from_secs(90));
        assert_eq!(c.tun.mtu, 9000);
        let e = ServeConfig::default()
            .apply_toml("msg_max = \"8G\"")
            .unwrap_err();
        assert!(e.starts_with("msg_max") && e.contains("at most"), "{e}");
        let e = ServeConfig::default()
            .apply_toml("max_file_size = \"big\"")
            .unwrap_err();
        assert!(e.contains("not a size"), "{e}");
    }

    #[test]
    fn max_connections_is_derived_unless_set() {
        let mut c = ServeConfig::default();
        assert_eq!(c.max_connections, None);
        c.apply_toml("max_connections = 500").unwrap();
        assert_eq!(c.max_connections, Some(500));
    }

    #[test]
    fn tun_defaults_follow_the_spec() {
        let t = ServeConfig::default().tun;
        assert_eq!(t.name, "mio0");
        assert_eq!(t.net.to_string(), "192.0.2.0/24");
        assert_eq!(t.net.stack_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(t.net.kernel_addr(), Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(t.mtu, 1500);
        assert!(!t.impaired());
        assert_eq!((t.seed, t.pcap), (None, None));
    }

    #[test]
    fn tun_nets_need_two_addresses_and_no_host_bits() {
        let net: Ipv4Net = "10.9.8.0/30".parse().unwrap();
        assert_eq!(
            (net.stack_addr(), net.kernel_addr(), net.prefix_len()),
            (Ipv4Addr::new(10, 9, 8, 1), Ipv4Addr::new(10, 9, 8, 2), 30)
        );
        for (bad, why) in [
            ("192.0.2.0", "ADDR/PREFIX"),
            ("192.0.2.0/31", "two addresses"),
            ("192.0.2.0/33", "prefix length"),
            ("192.0.2.0/x", "prefix length"),
            ("192.0.2/24", "IPv4 address"),
            ("192.0.2.5/24", "host bits set: the net is 192.0.2.0/24"),
        ] {
            let e = bad.parse::<Ipv4Net>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn tun_values_are_checked() {
        assert_eq!(check_tun_mtu(68), Ok(68));
        assert_eq!(check_tun_mtu(65_535), Ok(65_535));
        assert!(check_tun_mtu(67).unwrap_err().contains("68 to 65535"));
        assert!(check_tun_mtu(65_536).is_err());
        assert!("0.5".parse::<Probability>().is_ok());
        for bad in ["1.5", "-0.1", "NaN", "often"] {
            assert!(bad.parse::<Probability>().is_err(), "{bad}");
        }
        assert!(parse_tun_name("mio0").is_ok());
        for bad in ["", "sixteen-bytes-xx", "a/b", "a b"] {
            assert!(parse_tun_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn toml_sets_the_tun_keys() {
        let mut c = ServeConfig::default();
        c.apply_toml(
            "tun = \"mt7\"\ntun_net = \"10.1.0.0/16\"\ntun_mtu = 9000\n\
             tun_drop = 0.1\ntun_dup = 0.2\ntun_reorder = 0.3\ntun_seed = 42\n\
             pcap = \"/tmp/t.pcapng\"",
        )
        .unwrap();
        let t = &c.tun;
        assert_eq!(t.name, "mt7");
        assert_eq!(t.net.kernel_addr(), Ipv4Addr::new(10, 1, 0, 2));
        assert_eq!(t.mtu, 9000);
        assert_eq!(
            (t.drop.get(), t.dup.get(), t.reorder.get()),
            (0.1, 0.2, 0.3)
        );
        assert!(t.impaired());
        assert_eq!(t.seed, Some(42));
        assert_eq!(t.pcap, Some(PathBuf::from("/tmp/t.pcapng")));
        for (bad, key) in [
            ("tun_mtu = 20", "tun_mtu"),
            ("tun_drop = 2.0", "tun_drop"),
            ("tun_net = \"1.2.3.4/24\"", "tun_net"),
            ("tun = \"\"", "tun"),
        ] {
            let e = ServeConfig::default().apply_toml(bad).unwrap_err();
            assert!(e.starts_with(key), "{bad}: {e}");
        }
    }

    #[test]
    fn toml_errors_are_clear() {
        let mut c = ServeConfig::default();
        assert!(
            c.apply_toml("id_ttl = \"5x\"")
                .unwrap_err()
                .contains("id_ttl")
        );
        assert!(
            c.apply_toml("only = [\"gopher\"]")
                .unwrap_err()
                .contains("unknown protocol")
        );
        assert!(c.apply_toml("colour = 1").unwrap_err().contains("colour"));
        assert!(
            c.apply_toml("[listen]\nhello = \"nowhere\"")
                .unwrap_err()
                .contains("ADDR:PORT")
        );
    }
}
