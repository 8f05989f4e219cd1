//! tunstack through a real TUN device, talked to by the kernel's own tools.
//!
//! Each test creates a network namespace of its own (a unique name,
//! deleted by a guard also when the test fails), starts `mioperf serve
//! --only tunstack` inside it, waits for `ready`, and runs real clients in
//! the same namespace: `ping` (small, and 4000 bytes, fragmented both
//! ways), Python UDP sockets (8 000 and 60 000-byte datagrams to the echo
//! port, a closed port), a datagram crafted as out-of-order fragments
//! through a raw socket (`IP_HDRINCL`), a packet with a bad IP header
//! checksum written straight into the device (`AF_PACKET`), and `tshark -r`
//! on the `--pcap` file. Every wait is bounded.
//!
//! They need root (namespaces, the device): without it they say so and
//! skip, except under `CI`, where they fail. `.ci/run` installs what they
//! run: iproute2, iputils-ping, python3, tshark, util-linux.

#![allow(
    clippy::disallowed_methods,
    reason = "tests wait for real processes and real packets"
)]

mod common;

use common::netns::Netns;
use common::tunserve::{TunServe, have};
use common::{run_command, temp_path};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

/// The stack's address on the default net.
const STACK: &str = "192.0.2.1";
/// Bound of one client tool's run (`ping -c 3` takes about 2 s).
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// A namespace and `mioperf serve --only tunstack EXTRA...` inside it,
/// ready; `None` when the test is skipped (not root, and no `CI`): the
/// shared [`TunServe`], with this file's tool timeout.
struct Stack(TunServe);

impl core::ops::Deref for Stack {
    type Target = TunServe;
    fn deref(&self) -> &TunServe {
        &self.0
    }
}

impl core::ops::DerefMut for Stack {
    fn deref_mut(&mut self) -> &mut TunServe {
        &mut self.0
    }
}

impl Stack {
    /// As [`start_with`](Self::start_with), needing only `ip` and `python3`.
    fn start(test: &str, extra: &[&str]) -> Option<Self> {
        Self::start_with(test, &["python3"], extra)
    }

    /// Needs `tools` (and `ip`); a namespace; then the server in it.
    fn start_with(test: &str, tools: &[&str], extra: &[&str]) -> Option<Self> {
        TunServe::start(test, tools, extra).map(Self)
    }

    /// The `listening tunstack tun NAME ADDR` line's name and address.
    fn device(&self) -> (String, IpAddr) {
        self.server.device("tunstack")
    }

    /// Runs `program args...` in the namespace; fails the test (with the
    /// server's log) unless it exits 0. Returns its standard output.
    #[track_caller]
    fn tool(&mut self, program: &str, args: &[&str]) -> String {
        self.0.tool(program, args, TOOL_TIMEOUT)
    }

    /// Runs a Python script with `args` in the namespace, as [`tool`](Self::tool).
    #[track_caller]
    fn python(&mut self, script: &str, args: &[&str]) -> String {
        self.0.python(script, args, TOOL_TIMEOUT)
    }
}

/// `ping`'s summary says every request was answered.
#[track_caller]
fn assert_all_answered(output: &str, count: u32) {
    let want = format!("{count} packets transmitted, {count} received");
    assert!(output.contains(&want), "want {want:?} in:\n{output}");
}

#[test]
fn ping_is_answered_small_and_fragmented_both_ways() {
    let Some(mut s) = Stack::start_with(
        "ping_is_answered_small_and_fragmented_both_ways",
        &["ip", "ping"],
        &[],
    ) else {
        return;
    };
    assert_eq!(
        s.device(),
        ("mio0".to_owned(), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        "the defaults"
    );
    let small = s.tool("ping", &["-n", "-c", "3", "-i", "0.2", "-W", "2", STACK]);
    assert_all_answered(&small, 3);
    // 4000 bytes of payload: the kernel fragments the request, the stack
    // reassembles it, and fragments its reply, which the kernel reassembles.
    let large = s.tool(
        "ping",
        &["-n", "-c", "2", "-i", "0.2", "-W", "2", "-s", "4000", STACK],
    );
    assert_all_answered(&large, 2);
    assert!(large.contains("4008 bytes from 192.0.2.1"), "{large}");
}

/// Sends each size (argv) to the echo port and checks the echo, byte for byte.
const UDP_ECHO: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for size in map(int, sys.argv[1:]):
    data = bytes((i * 7 + size) % 251 for i in range(size))
    s.sendto(data, ("192.0.2.1", 7007))
    got, frm = s.recvfrom(70000)
    assert frm == ("192.0.2.1", 7007), frm
    assert got == data, (size, len(got))
    print("echoed", size)
"#;

#[test]
fn udp_echo_returns_datagrams_larger_than_the_mtu() {
    let Some(mut s) = Stack::start("udp_echo_returns_datagrams_larger_than_the_mtu", &[]) else {
        return;
    };
    let out = s.python(UDP_ECHO, &["8000", "60000", "65507", "1"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["echoed 8000", "echoed 60000", "echoed 65507", "echoed 1"]
    );
}

/// IPv4 and UDP checksums, and a datagram to the echo port cut into
/// fragments by hand, shared by the raw-socket scripts.
const CRAFT: &str = r#"
import os, socket, struct, sys
SRC, DST = "192.0.2.2", "192.0.2.1"

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def udp(sport, payload):
    length = 8 + len(payload)
    pseudo = socket.inet_aton(SRC) + socket.inet_aton(DST) + struct.pack("!BBH", 0, 17, length)
    c = csum(pseudo + struct.pack("!HHHH", sport, 7007, length, 0) + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, 7007, length, c) + payload

def ip(ident, offset, more, data, good=True):
    flags = (1 << 13 if more else 0) | (offset // 8)
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ident, flags, 64, 17, 0,
                    socket.inet_aton(SRC), socket.inet_aton(DST))
    c = csum(h) if good else csum(h) ^ 0x5A5A
    return h[:10] + struct.pack("!H", c) + h[12:] + data

def receiver():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((SRC, 0))
    rx.settimeout(5)
    return rx, rx.getsockname()[1]
"#;

/// Every order of a datagram's three fragments, through a raw socket.
const FRAGMENTS: &str = r#"
import itertools
rx, sport = receiver()
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
for n, order in enumerate(itertools.permutations(range(3))):
    payload = bytes((i + n) % 256 for i in range(3000))
    dgram = udp(sport, payload)
    pieces = [(0, dgram[:1480]), (1480, dgram[1480:2960]), (2960, dgram[2960:])]
    ident = (os.getpid() + n) & 0xFFFF
    for i in order:
        offset, data = pieces[i]
        raw.sendto(ip(ident, offset, offset + len(data) < len(dgram), data), (DST, 0))
    got, frm = rx.recvfrom(70000)
    assert frm == (DST, 7007), frm
    assert got == payload, (order, len(got))
    print("reassembled", "".join(map(str, order)))
"#;

#[test]
fn a_datagram_sent_as_out_of_order_fragments_is_reassembled() {
    let Some(mut s) = Stack::start(
        "a_datagram_sent_as_out_of_order_fragments_is_reassembled",
        &[],
    ) else {
        return;
    };
    let out = s.python(&format!("{CRAFT}{FRAGMENTS}"), &[]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "reassembled 012",
            "reassembled 021",
            "reassembled 102",
            "reassembled 120",
            "reassembled 201",
            "reassembled 210"
        ]
    );
}

/// A datagram with a bad IP header checksum, then the same with a good
/// one, written straight into the device (`AF_PACKET`: the kernel's IP
/// layer never sees them, so nothing fixes the checksum): the first answer
/// must be the good one's.
const BAD_CHECKSUM: &str = r#"
import time
rx, sport = receiver()
dev = sys.argv[1]
pk = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
pk.bind((dev, 0x0800))
pk.send(ip(1, 0, False, udp(sport, b"bad"), good=False))
time.sleep(1)
pk.send(ip(2, 0, False, udp(sport, b"good")))
got, frm = rx.recvfrom(100)
print(got.decode())
"#;

#[test]
fn a_bad_ip_checksum_gets_no_answer() {
    let Some(mut s) = Stack::start("a_bad_ip_checksum_gets_no_answer", &[]) else {
        return;
    };
    let out = s.python(&format!("{CRAFT}{BAD_CHECKSUM}"), &["mio0"]);
    assert_eq!(out.trim(), "good", "the bad datagram was answered");
}

/// A connected UDP socket sends to a closed port: the stack's ICMP port
/// unreachable turns its next receive into ECONNREFUSED.
const CLOSED_PORT: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect(("192.0.2.1", 9))
s.send(b"anyone?")
try:
    s.recv(100)
    print("answered")
except ConnectionRefusedError:
    print("refused")
"#;

#[test]
fn udp_to_a_closed_port_is_refused_with_icmp_port_unreachable() {
    let Some(mut s) = Stack::start(
        "udp_to_a_closed_port_is_refused_with_icmp_port_unreachable",
        &[],
    ) else {
        return;
    };
    assert_eq!(s.python(CLOSED_PORT, &[]).trim(), "refused");
}

#[test]
fn the_pcap_file_opens_in_tshark_with_the_echo_and_its_fragments() {
    let path = temp_path("tunstack.pcapng");
    let path_s = path.to_str().expect("a UTF-8 temporary path").to_owned();
    let Some(mut s) = Stack::start_with(
        "the_pcap_file_opens_in_tshark_with_the_echo_and_its_fragments",
        &["ip", "ping", "tshark"],
        &["--pcap", &path_s],
    ) else {
        return;
    };
    let out = s.tool("ping", &["-n", "-c", "1", "-W", "2", "-s", "4000", STACK]);
    assert_all_answered(&out, 1);
    // SIGTERM: the server exits 0; every packet is already on disk.
    s.server.signal(15);
    let status = s.server.wait_exit(Duration::from_secs(5));
    assert!(status.is_some_and(|st| st.success()), "{status:?}");
    // Without reassembly, each fragment is a line: direction (1 in, 0 out,
    // as Point-to-Point Direction), more-fragments, offset, ICMP type.
    let fields = tshark(&[
        "-r",
        &path_s,
        "-o",
        "ip.defragment:FALSE",
        "-T",
        "fields",
        "-e",
        "frame.p2p_dir",
        "-e",
        "ip.flags.mf",
        "-e",
        "ip.frag_offset",
        "-e",
        "icmp.type",
    ]);
    let lines: Vec<Vec<&str>> = fields.lines().map(|l| l.split('\t').collect()).collect();
    let has = |dir: &str, mf: &str, first: bool, icmp: Option<&str>| {
        lines.iter().any(|l| {
            l.len() >= 4
                && l[0] == dir
                && (l[1] == mf || (mf == "1" && l[1] == "True"))
                && (l[2] == "0") == first
                && icmp.is_none_or(|t| l[3] == t)
        })
    };
    assert!(
        has("1", "1", true, Some("8")),
        "inbound first fragment of the echo request:\n{fields}"
    );
    assert!(
        lines.iter().filter(|l| l[0] == "1").count() >= 3,
        "{fields}"
    );
    assert!(
        has("0", "1", true, Some("0")),
        "outbound first fragment of the echo reply:\n{fields}"
    );
    assert!(
        lines.iter().filter(|l| l[0] == "0").count() >= 3,
        "{fields}"
    );
    assert!(
        lines.iter().any(|l| l[0] == "0" && l[2] != "0"),
        "an outbound fragment at an offset:\n{fields}"
    );
    // With reassembly (tshark's default) the echo shows whole.
    let summary = tshark(&["-r", &path_s]);
    assert!(summary.contains("Echo (ping) request"), "{summary}");
    assert!(summary.contains("Echo (ping) reply"), "{summary}");
    let _ = std::fs::remove_file(&path);
}

/// `tshark ARGS...` (bounded), which must succeed.
fn tshark(args: &[&str]) -> String {
    let out = run_command(Command::new("tshark").args(args), TOOL_TIMEOUT);
    assert!(
        out.status.success(),
        "tshark {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `mioperf serve --only tunstack` through `launcher` in the
/// namespace and returns its exit status and standard error.
fn failing_serve(ns: &Netns, launcher: &[&str], extra: &[&str]) -> (Option<i32>, String) {
    let bin = env!("CARGO_BIN_EXE_mioperf");
    let out = run_command(
        Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .args(launcher)
            .args([bin, "serve", "--only", "tunstack"])
            .args(extra),
        TOOL_TIMEOUT,
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_cap_net_admin_the_error_says_so_in_one_line() {
    const TEST: &str = "without_cap_net_admin_the_error_says_so_in_one_line";
    if !have(TEST, &["ip", "setpriv"]) {
        return;
    }
    let Some(ns) = Netns::new(TEST) else {
        return;
    };
    // Still root, but without the capability: opening the clone device
    // works, creating the interface does not.
    let (code, stderr) = failing_serve(&ns, &["setpriv", "--bounding-set=-net_admin", "--"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end().lines().last(),
        Some("mioperf: creating a TUN device needs CAP_NET_ADMIN (run as root)"),
        "{stderr}"
    );
}

#[test]
fn without_dev_net_tun_the_error_says_so_in_one_line() {
    const TEST: &str = "without_dev_net_tun_the_error_says_so_in_one_line";
    if !have(TEST, &["ip", "unshare", "mount"]) {
        return;
    }
    let Some(ns) = Netns::new(TEST) else {
        return;
    };
    // A mount namespace of its own with an empty /dev/net.
    let (code, stderr) = failing_serve(
        &ns,
        &[
            "unshare",
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs none /dev/net && exec \"$@\"",
            "sh",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end().lines().last(),
        Some("mioperf: no TUN device: /dev/net/tun is missing (load the tun module)"),
        "{stderr}"
    );
}

#[test]
fn sigterm_ends_the_server_and_the_device_goes_with_it() {
    let Some(mut s) = Stack::start("sigterm_ends_the_server_and_the_device_goes_with_it", &[])
    else {
        return;
    };
    let link = s.tool("ip", &["-o", "addr", "show", "dev", "mio0"]);
    assert!(link.contains("inet 192.0.2.2/24"), "{link}");
    let mtu = s.tool("ip", &["-o", "link", "show", "dev", "mio0"]);
    assert!(mtu.contains("mtu 1500") && mtu.contains(",UP"), "{mtu}");
    s.server.signal(15);
    let status = s.server.wait_exit(Duration::from_secs(5));
    assert!(status.is_some_and(|st| st.success()), "{status:?}");
    let gone = s.ns.run_default("ip", &["link", "show", "dev", "mio0"]);
    assert!(!gone.status.success(), "the device outlived its server");
}

#[test]
fn the_device_name_net_and_mtu_follow_the_flags() {
    let Some(mut s) = Stack::start_with(
        "the_device_name_net_and_mtu_follow_the_flags",
        &["ip", "ping"],
        &[
            "--tun",
            "mt9",
            "--tun-net",
            "10.7.0.0/24",
            "--tun-mtu",
            "576",
        ],
    ) else {
        return;
    };
    assert_eq!(
        s.device(),
        ("mt9".to_owned(), IpAddr::V4(Ipv4Addr::new(10, 7, 0, 1)))
    );
    let addr = s.tool("ip", &["-o", "addr", "show", "dev", "mt9"]);
    assert!(addr.contains("inet 10.7.0.2/24"), "{addr}");
    let link = s.tool("ip", &["-o", "link", "show", "dev", "mt9"]);
    assert!(link.contains("mtu 576"), "{link}");
    // 1000 bytes do not fit 576 either way: fragmented by the kernel, and
    // by the stack at the MTU it was given.
    let out = s.tool(
        "ping",
        &[
            "-n", "-c", "2", "-i", "0.2", "-W", "2", "-s", "1000", "10.7.0.1",
        ],
    );
    assert_all_answered(&out, 2);
}

#[test]
fn impairment_flags_reach_the_device() {
    let Some(lossy) = Stack::start_with(
        "impairment_flags_reach_the_device",
        &["ip", "ping"],
        &["--tun-drop", "1", "--tun-seed", "7"],
    ) else {
        return;
    };
    // Everything lost: ping exits 1, with 0 received.
    let out = lossy.ns.run(
        "ping",
        &["-n", "-c", "2", "-i", "0.2", "-W", "1", STACK],
        TOOL_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 packets transmitted, 0 received"), "{text}");
    drop(lossy);
    let Some(mut doubled) = Stack::start_with(
        "impairment_flags_reach_the_device",
        &["ip", "ping"],
        &["--tun-dup", "1", "--tun-seed", "7"],
    ) else {
        return;
    };
    // Every packet twice each way: each request is answered four times.
    // ping stops at the second answer of its second request, so it sees
    // the three copies of the first answer at least.
    let out = doubled.tool("ping", &["-n", "-c", "2", "-i", "0.3", "-W", "2", STACK]);
    let dups: u32 = out
        .split(", +")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dups >= 3, "want at least +3 duplicates:\n{out}");
}

#[test]
fn a_capture_file_that_cannot_be_created_is_one_line_and_exit_2() {
    const TEST: &str = "a_capture_file_that_cannot_be_created_is_one_line_and_exit_2";
    if !have(TEST, &["ip"]) {
        return;
    }
    let Some(ns) = Netns::new(TEST) else {
        return;
    };
    let (code, stderr) = failing_serve(&ns, &[], &["--pcap", "/nonexistent/dir/t.pcapng"]);
    assert_eq!(code, Some(2), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("mioperf: cannot create capture /nonexistent/dir/t.pcapng: "),
        "{stderr}"
    );
}
