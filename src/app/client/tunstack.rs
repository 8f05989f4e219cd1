//! `mioperf tunstack get http://ADDR:PORT/PATH [-o OUT]`: our own TCP
//! engine as the client, on a TUN device of its own, fetching from a
//! server the kernel runs at the device's other end (in the same network
//! namespace), so the engine's active open, receive path and close are
//! tested against the kernel's TCP.
//!
//! Owns the wiring of that one command: checking the URL (an IPv4 literal
//! in the device's net, never the stack's own address: nothing is routed
//! beyond the device), opening the device as `serve` does, a stack with no
//! listeners whose one connection carries the HTTP client session, the
//! loop that runs until the session's outcome is in (the device session
//! never ends by itself), a no-progress watchdog, and the outcome shown as
//! every transfer is (`output.rs`: exit 0, 1 on an HTTP error answer, 2 on
//! a failure). The body goes through the same temp-file-and-rename sink
//! as `mioperf get -o`.

use super::{client_reactor, local_sink};
use crate::app::output::{Report, Stream, Timeout, View, format_bitrate, format_bytes, rate};
use crate::app::{Failure, error};
use crate::cli::tunstack::{TunstackArgs, TunstackCommand, TunstackGetArgs};
use crate::config::Ipv4Net;
use crate::config::TunConfig;
use crate::proto::data::Sink;
use crate::proto::http::client::{Get, GetReport};
use crate::proto::outcome::{ClientError, OutcomeSlot, Progress};
use crate::proto::tcp::conn;
use crate::proto::tcp::session::CounterCell;
use crate::proto::tunstack::{Counters, SharedCounters, Stack, StackConfig};
use crate::proto::{CloseReason, Context, Driven, StreamSession};
use crate::reactor::{Reactor, TunDevice, TunSetup};
use crate::time::{Duration, Instant};
use core::cell::Cell;
use serde_json::{Value, json};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;

/// The port of an `http://` URL that names none (RFC 9110 section 4.2.1).
const HTTP_PORT: u16 = 80;

/// How long, at most, the fetch waits after its outcome for the
/// connection to finish closing (our FIN acknowledged: one round trip
/// over the device, well under a millisecond; generous for a loaded
/// machine, and short enough not to be noticed).
const LINGER: Duration = Duration::from_millis(200);

/// `mioperf tunstack ...`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn tunstack_client(args: &TunstackArgs) -> Result<(), Failure> {
    match &args.command {
        TunstackCommand::Get(get) => get_client(get),
    }
}

/// What `tunstack get` fetches: where, and what to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    /// The server: an address in the device's net, and its port.
    remote: SocketAddrV4,
    /// The `Host` header: the URL's authority as written.
    host: String,
    /// The request target: the URL's path (and query), `/` if empty.
    path: String,
}

impl Target {
    /// Parses `url` (`http://ADDR[:PORT][/PATH]`), which must name an
    /// address of `net` other than the stack's own.
    fn parse(url: &str, net: Ipv4Net) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("'{url}' is not an http:// URL"))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        let in_net = || {
            format!(
                "'{url}': the server must be an IPv4 address in the TUN net {net} other than \
                 the stack's own {} (nothing is routed beyond the device)",
                net.stack_addr()
            )
        };
        let (addr, port) = match authority.rsplit_once(':') {
            Some((addr, port)) => (
                addr,
                port.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("'{url}': '{port}' is not a port"))?,
            ),
            None => (authority, HTTP_PORT),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| in_net())?;
        if !contains(net, addr) || addr == net.stack_addr() {
            return Err(in_net());
        }
        Ok(Self {
            remote: SocketAddrV4::new(addr, port),
            host: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// Whether `addr` is one of `net`'s host addresses (not its network or
/// broadcast address).
fn contains(net: Ipv4Net, addr: Ipv4Addr) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(net.prefix_len()))
        .unwrap_or(0);
    let host = u32::from(addr) & !mask;
    u32::from(addr) & mask == u32::from(net.network()) && host != 0 && host != !mask
}

/// `mioperf tunstack get`.
fn get_client(args: &TunstackGetArgs) -> Result<(), Failure> {
    let tun = args.tun_config();
    // Before anything is opened or created: a bad URL is a one-line
    // usage error, root or not.
    let target = Target::parse(&args.url, tun.net).map_err(Failure::Error)?;
    super::output_and_json(args.output.as_deref(), args.json)?;
    let progress = Progress::new();
    let sink = Counted {
        inner: Box::new(local_sink(
            &target.path,
            args.output.as_deref(),
            args.force,
        )?),
        progress: progress.clone(),
    };
    let slot = OutcomeSlot::new();
    let mut reactor = client_reactor()?;
    let session = Get::new(&target.host, &target.path, Box::new(sink), slot.clone())
        .with_timeout(args.timeout);
    let (counters, engine) = start(&mut reactor, &tun, target.remote, Box::new(session))?;
    if !args.json
        && let Some(t) = crate::progress::Ticker::on_terminal(None, progress.clone(), {
            let done = slot.clone();
            Box::new(move || done.is_set())
        })
    {
        reactor.add_detached(Box::new(t));
    }
    // The session's own timeout runs once the connection is up; the
    // watchdog also bounds the opening (SYN retries would take minutes).
    let stalled = Watchdog::arm(&mut reactor, args.timeout, progress.clone());
    // Ctrl-C or SIGTERM: the reactor (and with it the sink, whose part
    // file goes) is dropped, and the exit is 130 or 143, as for the other
    // clients.
    reactor.watch_signals().map_err(|e| error("signals", e))?;
    // Bounded by the watchdog: a turn returns at the latest at its deadline.
    while !slot.is_set() && !stalled.get() {
        reactor.turn().map_err(|e| error("poll", e))?;
        if let Some(crate::reactor::Exit::Signal(number)) = reactor.exit() {
            drop(reactor);
            return Err(Failure::Signal(number));
        }
    }
    // Let the close finish (our FIN out and acknowledged), so the kernel's
    // side ends cleanly and `-v` logs the engine's counters; bounded.
    let linger = Watchdog::arm(&mut reactor, LINGER, Progress::new());
    while counters.get().tcp_closed == 0 && !linger.get() {
        reactor.turn().map_err(|e| error("poll", e))?;
    }
    let outcome = slot
        .take()
        .unwrap_or(Err(ClientError::TimedOut { tries: 1 }));
    let remote = target.remote;
    let view = View {
        header: json!({
            "protocol": "http", "transport": "tunstack", "verb": "get", "url": args.url,
            "server": remote.to_string(), "stack": stack_json(&counters.get()),
            "tcp": engine.get().map(|c| super::engine_json(&c)),
        }),
        json: args.json,
        text: Stream::Stderr,
        server: Some(SocketAddr::V4(remote)),
        refusal_prefix: "",
        title: Some(format!("get {}", target.path)),
        timeout: Timeout::said(move |_| format!("{remote}: no progress, gave up")),
    };
    view.show(Some(outcome), None)
}

/// Opens the device as `serve` does and puts a stack on it (no listeners)
/// whose one connection, to `remote`, carries `session`. Returns the
/// stack's counters and the connection's engine counters.
fn start(
    reactor: &mut Reactor,
    tun: &TunConfig,
    remote: SocketAddrV4,
    session: Box<dyn StreamSession>,
) -> Result<(SharedCounters, CounterCell), Failure> {
    let setup = TunSetup {
        name: tun.name.clone(),
        kernel_addr: tun.net.kernel_addr(),
        prefix_len: tun.net.prefix_len(),
        mtu: tun.mtu,
    };
    // The error is the whole line (which privilege, which call).
    let device = TunDevice::open(&setup).map_err(|e| Failure::Error(e.to_string()))?;
    let mut stack = Stack::new(StackConfig {
        addr: tun.net.stack_addr(),
        mtu: usize::from(tun.mtu),
        ..StackConfig::default()
    })
    .map_err(|e| Failure::Error(format!("tunstack: {e}")))?
    // The MSS follows the MTU (the stack derives it).
    .with_tcp(Vec::new(), conn::Config::default());
    let counters = stack.shared_counters();
    let now = reactor.now();
    let engine = stack
        .connect(now, remote, session)
        .map_err(|e| Failure::Error(format!("{remote}: {e}")))?;
    let name = device.name().to_owned();
    reactor
        .add_device_session(device, None, Box::new(stack))
        .map_err(|e| error(&format!("cannot register TUN device {name}"), e))?;
    Ok((counters, engine))
}

/// The stack's TCP counters for `--json` (the connection's own are under
/// `"tcp"`).
fn stack_json(c: &Counters) -> Value {
    json!({
        "datagrams_in": c.datagrams_in, "datagrams_out": c.datagrams_out,
        "tcp_segments_in": c.tcp_segments_in, "tcp_segments_out": c.tcp_segments_out,
        "tcp_bad_checksum": c.tcp_bad_checksum, "tcp_resets": c.tcp_resets,
        "tcp_closed": c.tcp_closed, "queue_dropped": c.queue_dropped,
    })
}

/// A sink that counts what passes through it into a [`Progress`]: the
/// bytes of the body, for the report, the progress bar and the watchdog.
struct Counted {
    inner: Box<dyn Sink>,
    progress: Progress,
}

impl Sink for Counted {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        self.inner.write_all(bytes)?;
        self.progress
            .set(self.progress.get() + u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<u64, ErrorKind> {
        self.inner.commit()
    }
}

/// A timer-only job that raises its flag when a whole `timeout` has
/// passed with no byte of the body counted: the fetch then ends as timed
/// out. Checked once per `timeout`, so a stall is noticed after one to two
/// of them.
struct Watchdog {
    timeout: Duration,
    progress: Progress,
    seen: u64,
    next: Instant,
    stalled: Rc<Cell<bool>>,
}

impl Watchdog {
    /// Adds the watchdog to `reactor`; the flag it raises.
    fn arm(reactor: &mut Reactor, timeout: Duration, progress: Progress) -> Rc<Cell<bool>> {
        let stalled = Rc::new(Cell::new(false));
        let next = reactor.now().saturating_add(timeout);
        reactor.add_detached(Box::new(Self {
            timeout,
            seen: progress.get(),
            progress,
            next,
            stalled: Rc::clone(&stalled),
        }));
        stalled
    }
}

impl Driven for Watchdog {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if self.stalled.get() || cx.now < self.next {
            return;
        }
        let now = self.progress.get();
        if now == self.seen {
            self.stalled.set(true);
        } else {
            self.seen = now;
            self.next = cx.now.saturating_add(self.timeout);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (!self.stalled.get()).then_some(self.next)
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.stalled
            .get()
            .then_some(CloseReason::TimedOut { tries: 1 })
    }
}

impl Report for GetReport {
    fn text(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "{} in {secs:.3} s = {}",
            format_bytes(self.bytes),
            format_bitrate(rate(self.bytes.saturating_mul(8), secs))
        )
    }

    fn json(&self, doc: &mut Value) {
        let secs = self.elapsed.as_secs_f64();
        doc["outcome"] = json!("ok");
        doc["http"] = json!({"status": self.status});
        doc["bytes"] = json!(self.bytes);
        doc["seconds"] = json!(secs);
        doc["bits_per_second"] = json!(rate(self.bytes.saturating_mul(8), secs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn a_url_in_the_net_names_server_host_and_path() {
        let t = Target::parse("http://192.0.2.2:8080/a/b.bin?x=1", Ipv4Net::DEFAULT_TUN).unwrap();
        assert_eq!(t.remote, "192.0.2.2:8080".parse().unwrap());
        assert_eq!(t.host, "192.0.2.2:8080");
        assert_eq!(t.path, "/a/b.bin?x=1");
        let t = Target::parse("http://192.0.2.77", Ipv4Net::DEFAULT_TUN).unwrap();
        assert_eq!(t.remote, "192.0.2.77:80".parse().unwrap());
        assert_eq!((t.host.as_str(), t.path.as_str()), ("192.0.2.77", "/"));
    }

    #[test]
    fn anything_else_is_refused_in_one_line() {
        for (url, net_s, says) in [
            ("https://192.0.2.2/", "192.0.2.0/24", "not an http:// URL"),
            ("192.0.2.2:80/x", "192.0.2.0/24", "not an http:// URL"),
            (
                "http://example.com/x",
                "192.0.2.0/24",
                "TUN net 192.0.2.0/24",
            ),
            ("http://10.1.2.3/x", "192.0.2.0/24", "TUN net 192.0.2.0/24"),
            ("http://192.0.2.1:80/", "192.0.2.0/24", "own 192.0.2.1"),
            ("http://192.0.2.0/", "192.0.2.0/24", "TUN net"),
            ("http://192.0.2.255/", "192.0.2.0/24", "TUN net"),
            ("http://192.0.2.2:0/", "192.0.2.0/24", "not a port"),
            ("http://192.0.2.2:http/", "192.0.2.0/24", "not a port"),
            ("http://192.0.2.2/", "10.7.0.0/24", "TUN net 10.7.0.0/24"),
            ("http://[::1]:80/", "192.0.2.0/24", "TUN net"),
        ] {
            let e = Target::parse(url, net(net_s)).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains('\n'), "{url}: {e}");
        }
    }

    #[test]
    fn host_addresses_only() {
        let n = net("10.0.0.0/29");
        let ok: Vec<u8> = (0..=8)
            .filter(|i| contains(n, Ipv4Addr::new(10, 0, 0, *i)))
            .collect();
        assert_eq!(ok, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn the_counted_sink_counts_what_it_passes_on() {
        #[derive(Default)]
        struct Vec8(Rc<core::cell::RefCell<Vec<u8>>>);
        impl Sink for Vec8 {
            fn write_all(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
                self.0.borrow_mut().extend_from_slice(bytes);
                Ok(())
            }
            fn commit(self: Box<Self>) -> Result<u64, ErrorKind> {
                Ok(u64::try_from(self.0.borrow().len()).unwrap())
            }
        }
        let progress = Progress::new();
        let mut s = Box::new(Counted {
            inner: Box::new(Vec8::default()),
            progress: progress.clone(),
        });
        s.write_all(b"abc").unwrap();
        s.write_all(b"de").unwrap();
        assert_eq!(progress.get(), 5);
        assert_eq!(s.commit(), Ok(5));
    }

    #[test]
    fn the_watchdog_fires_only_after_a_whole_timeout_without_progress() {
        let progress = Progress::new();
        let stalled = Rc::new(Cell::new(false));
        let t = Duration::from_secs(2);
        let mut w = Watchdog {
            timeout: t,
            progress: progress.clone(),
            seen: 0,
            next: Instant::from_millis(2_000),
            stalled: Rc::clone(&stalled),
        };
        let mut at = |ms| {
            let mut cx = Context::new(Instant::from_millis(ms), 0, None);
            w.handle_timeout(&mut cx);
            (stalled.get(), w.poll_timeout())
        };
        assert_eq!(at(1_999), (false, Some(Instant::from_millis(2_000))));
        progress.set(10);
        // Progress since the arming: re-armed a whole timeout later.
        assert_eq!(at(2_000), (false, Some(Instant::from_millis(4_000))));
        assert_eq!(at(4_000), (true, None));
        assert_eq!(w.poll_close(), Some(CloseReason::TimedOut { tries: 1 }));
    }

    #[test]
    fn a_fetch_in_gigabits() {
        let f = GetReport {
            status: 200,
            bytes: 1_000_000,
            elapsed: Duration::from_millis(4),
        };
        assert_eq!(f.text(), "977 KiB in 0.004 s = 2 Gbit/s");
        let mut doc = json!({});
        f.json(&mut doc);
        assert_eq!(doc["outcome"], "ok");
        assert_eq!(doc["bytes"], 1_000_000);
        assert_eq!(doc["http"]["status"], 200);
    }
}
