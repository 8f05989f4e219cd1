//! The userspace TCP over TUN, talked to by the kernel's own TCP: `wget`,
//! `curl`, `nc`, Python sockets and mioperf's own clients in a network
//! namespace against `mioperf serve --only tunstack` at 192.0.2.1, and
//! `mioperf tunstack get` (our engine as the client) against a kernel HTTP
//! server at 192.0.2.2.
//!
//! Each test creates a namespace of its own (a unique name, deleted by a
//! guard also when the test fails), starts the server there, waits for
//! `ready`, and runs real clients in the same namespace. Every child is
//! bounded in time; files are compared byte for byte with what was served.
//!
//! They need root (namespaces, the device): without it they say so and
//! skip, except under `CI`, where they fail. `.ci/run` installs what they
//! run: iproute2, python3, curl, wget, netcat-openbsd, tshark. The
//! command-line checks of `mioperf tunstack get` need no root and always run.

#![allow(
    clippy::disallowed_methods,
    reason = "tests wait for real processes and real packets"
)]

mod common;

use common::netns::Netns;
use common::tunserve::{TunServe, have};
use common::{Dir, bin, parse_ok, run_with_timeout, temp_path};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The HTTP server on the stack.
const HTTP: &str = "http://192.0.2.1:7000";
/// Bound of one small tool's run (a handshake, a few round trips, a file of
/// a few MiB in a debug build).
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound of a bulk transfer (64 MiB clean, 16 MiB through 5 % loss) by
/// the debug build the tests run.
const BULK_TIMEOUT: Duration = Duration::from_secs(120);
/// curl's own limit for a bulk transfer: under [`BULK_TIMEOUT`], so curl
/// says what it got before the test kills it.
const BULK_CURL_MAX_TIME: &str = "110";
/// curl's own limit for a small transfer, under [`TOOL_TIMEOUT`].
const CURL_MAX_TIME: &str = "25";
/// curl's limit on connecting: three SYNs from the kernel (1 + 2 + 4 s),
/// so a lost SYN is retried but a stack that never answers fails fast.
const CURL_CONNECT_TIME: &str = "15";
/// One MiB.
const MIB: usize = 1 << 20;

/// `len` bytes that differ from file to file (`seed`) and from place to
/// place (xorshift), so a misplaced or repeated segment cannot go unseen.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let take = (len - v.len()).min(8);
        v.extend_from_slice(&x.to_le_bytes()[..take]);
    }
    v
}

/// The file at `got` holds exactly `want` (the first difference is named,
/// never the bytes themselves: they may be 64 MiB).
#[track_caller]
fn assert_file(what: &str, got: &Path, want: &[u8]) {
    let bytes =
        std::fs::read(got).unwrap_or_else(|e| panic!("{what}: cannot read {}: {e}", got.display()));
    if bytes != want {
        let first = bytes
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(bytes.len().min(want.len()));
        panic!(
            "{what}: {} bytes, want {}; first difference at byte {first}",
            bytes.len(),
            want.len()
        );
    }
}

/// `curl -sS --fail --max-time MAX -o OUT URL EXTRA...` in the namespace.
fn curl(s: &mut TunServe, url: &str, out: &Path, max_time: &str, extra: &[&str], limit: Duration) {
    let out = out.to_str().expect("a UTF-8 temporary path");
    let mut args = vec![
        "-sS",
        "--fail",
        "--connect-timeout",
        CURL_CONNECT_TIME,
        "--max-time",
        max_time,
        "-o",
        out,
    ];
    args.extend_from_slice(extra);
    args.push(url);
    s.tool("curl", &args, limit);
}

#[test]
fn wget_saves_an_index_that_lists_the_root() {
    let root = Dir::new("wget-root");
    let Some(mut s) = TunServe::start(
        "wget_saves_an_index_that_lists_the_root",
        &["wget"],
        &["--root", root.s()],
    ) else {
        return;
    };
    std::fs::write(root.path("alpha.txt"), "alpha\n").unwrap();
    std::fs::write(root.path("beta.bin"), pattern(5_000, 1)).unwrap();
    let out = Dir::new("wget-out");
    // As the issue says it: no scheme, no path.
    s.tool(
        "wget",
        &[
            "-q",
            "--tries=1",
            "--timeout=10",
            "-P",
            out.s(),
            "192.0.2.1:7000",
        ],
        TOOL_TIMEOUT,
    );
    let index = std::fs::read_to_string(out.path("index.html")).expect("wget saved index.html");
    for name in ["alpha.txt", "beta.bin"] {
        assert!(index.contains(name), "{name} is not listed:\n{index}");
    }
}

#[test]
fn curl_fetches_files_of_0_b_1_b_1_mib_and_64_mib_exactly() {
    let root = Dir::new("curl-root");
    let Some(mut s) = TunServe::start(
        "curl_fetches_files_of_0_b_1_b_1_mib_and_64_mib_exactly",
        &["curl"],
        &["--root", root.s()],
    ) else {
        return;
    };
    let out = Dir::new("curl-out");
    for (name, len) in [("empty", 0), ("one", 1), ("mib", MIB), ("big", 64 * MIB)] {
        let want = pattern(len, len as u64);
        std::fs::write(root.path(name), &want).unwrap();
        curl(
            &mut s,
            &format!("{HTTP}/{name}"),
            &out.path(name),
            BULK_CURL_MAX_TIME,
            &[],
            BULK_TIMEOUT,
        );
        assert_file(name, &out.path(name), &want);
    }
    // HTTP/1.0 too, and a missing name is a 404, not a hang.
    curl(
        &mut s,
        &format!("{HTTP}/one"),
        &out.path("one-1.0"),
        CURL_MAX_TIME,
        &["--http1.0"],
        TOOL_TIMEOUT,
    );
    assert_file("one over HTTP/1.0", &out.path("one-1.0"), &pattern(1, 1));
    let code = s.tool(
        "curl",
        &[
            "-s",
            "--connect-timeout",
            CURL_CONNECT_TIME,
            "--max-time",
            CURL_MAX_TIME,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{HTTP}/missing"),
        ],
        TOOL_TIMEOUT,
    );
    assert_eq!(code, "404");
}

#[test]
fn nc_echo_on_7007_returns_everything_after_a_half_close() {
    let Some(mut s) = TunServe::start(
        "nc_echo_on_7007_returns_everything_after_a_half_close",
        &["nc"],
        &[],
    ) else {
        return;
    };
    let dir = Dir::new("nc-echo");
    let want = pattern(300_000, 7);
    std::fs::write(dir.path("in"), &want).unwrap();
    // -N: shut the write half down at the end of the input, then read
    // until the server closes: the echo must go on after our FIN.
    s.tool(
        "sh",
        &[
            "-c",
            "exec nc -N -w 10 192.0.2.1 7007 < \"$1\" > \"$2\"",
            "sh",
            dir.path("in").to_str().unwrap(),
            dir.path("out").to_str().unwrap(),
        ],
        TOOL_TIMEOUT,
    );
    assert_file("the echo", &dir.path("out"), &want);
}

#[test]
fn fifty_parallel_curls_of_1_mib_are_all_exact() {
    const CURLS: usize = 50;
    let root = Dir::new("par-root");
    let Some(mut s) = TunServe::start(
        "fifty_parallel_curls_of_1_mib_are_all_exact",
        &["curl"],
        &["--root", root.s()],
    ) else {
        return;
    };
    let want = pattern(MIB, 50);
    std::fs::write(root.path("mib"), &want).unwrap();
    let out = Dir::new("par-out");
    let url = format!("{HTTP}/mib");
    let paths: Vec<String> = (0..CURLS)
        .map(|i| out.path(&i.to_string()).to_str().unwrap().to_owned())
        .collect();
    // One curl, fifty connections at once (HTTP/1.1 with `Connection:
    // close` cannot multiplex, and --parallel-immediate opens them all
    // without waiting for the first).
    let mut args = vec![
        "-sS",
        "--no-progress-meter",
        "--fail",
        "--connect-timeout",
        CURL_CONNECT_TIME,
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        "50",
        "--max-time",
        BULK_CURL_MAX_TIME,
    ];
    for p in &paths {
        args.extend_from_slice(&["-o", p, &url]);
    }
    s.tool("curl", &args, BULK_TIMEOUT);
    for (i, p) in paths.iter().enumerate() {
        assert_file(&format!("curl {i}"), Path::new(p), &want);
    }
}

#[test]
fn a_slow_reader_closes_the_window_and_still_gets_every_byte() {
    const TEST: &str = "a_slow_reader_closes_the_window_and_still_gets_every_byte";
    let root = Dir::new("slow-root");
    let pcap = temp_path("slow.pcapng");
    let pcap_s = pcap.to_str().unwrap().to_owned();
    let Some(mut s) = TunServe::start(
        TEST,
        &["curl", "tshark"],
        &["--root", root.s(), "--pcap", &pcap_s],
    ) else {
        return;
    };
    let want = pattern(2 * MIB, 200);
    std::fs::write(root.path("slow"), &want).unwrap();
    // A small receive buffer in this namespace (autotuning would otherwise
    // take in all 2 MiB at once): the kernel's window closes while curl
    // sleeps, and the stack must wait for it (persist) and resume.
    s.tool(
        "sh",
        &[
            "-c",
            "echo '4096 32768 65536' > /proc/sys/net/ipv4/tcp_rmem",
        ],
        TOOL_TIMEOUT,
    );
    let out = Dir::new("slow-out");
    curl(
        &mut s,
        &format!("{HTTP}/slow"),
        &out.path("slow"),
        "50",
        &["--limit-rate", "200k"],
        Duration::from_secs(60),
    );
    assert_file("the slow read", &out.path("slow"), &want);
    // SIGTERM: the server exits 0, the capture complete.
    s.server.signal(15);
    let status = s.server.wait_exit(Duration::from_secs(5));
    assert!(status.is_some_and(|st| st.success()), "{status:?}");
    // The kernel's window closed: under one MSS (and not in a handshake,
    // a reset or a FIN). A Linux sender drives it to exactly 0; ours, which
    // avoids the silly window syndrome (RFC 9293 section 3.8.6.2.1), does
    // not send into less than an MSS, so Linux's window stops at a few
    // scaled units: either way the sender had to wait for it to open.
    let closed = run_tshark(&[
        "-r",
        &pcap_s,
        "-Y",
        "ip.src == 192.0.2.2 && tcp.window_size < 1460 \
         && tcp.flags.syn == 0 && tcp.flags.reset == 0 && tcp.flags.fin == 0",
        "-T",
        "fields",
        "-e",
        "frame.number",
    ]);
    let _ = std::fs::remove_file(&pcap);
    assert!(
        closed.lines().count() >= 1,
        "the kernel's window never closed: the test did not test it"
    );
}

/// `tshark ARGS...` (bounded), which must succeed.
fn run_tshark(args: &[&str]) -> String {
    let out = common::run_command(Command::new("tshark").args(args), TOOL_TIMEOUT);
    assert!(
        out.status.success(),
        "tshark {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn hello_and_tcpfile_work_over_the_userspace_tcp() {
    let root = Dir::new("own-root");
    let Some(mut s) = TunServe::start(
        "hello_and_tcpfile_work_over_the_userspace_tcp",
        &[],
        &["--root", root.s()],
    ) else {
        return;
    };
    let answer = s.tool(
        bin(),
        &["hello", "192.0.2.1", "20009", "42", "--tcp"],
        TOOL_TIMEOUT,
    );
    let (id, ip, port) = parse_ok(answer.trim());
    assert_eq!((id.as_str(), ip.as_str()), ("42", "192.0.2.2"), "{answer}");
    assert_ne!(port, 0);

    let dir = Dir::new("own-files");
    let want = pattern(MIB + 123, 9);
    std::fs::write(dir.path("up"), &want).unwrap();
    s.tool(
        bin(),
        &[
            "put",
            "192.0.2.1:50002",
            dir.path("up").to_str().unwrap(),
            "--as",
            "up.bin",
        ],
        TOOL_TIMEOUT,
    );
    assert_file("the PUT, on the server", &root.path("up.bin"), &want);
    s.tool(
        bin(),
        &[
            "get",
            "192.0.2.1:50002",
            "up.bin",
            "-o",
            dir.path("down").to_str().unwrap(),
        ],
        TOOL_TIMEOUT,
    );
    assert_file("the GET", &dir.path("down"), &want);
}

/// Connects to each port (argv) and says how it ended.
const CONNECT: &str = r#"
import socket, sys
for port in map(int, sys.argv[1:]):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(("192.0.2.1", port))
        print(port, "connected")
    except ConnectionRefusedError:
        print(port, "refused")
    except OSError as e:
        print(port, "error", e)
    s.close()
"#;

#[test]
fn a_syn_to_a_closed_port_is_refused() {
    let Some(mut s) = TunServe::start("a_syn_to_a_closed_port_is_refused", &["python3"], &[])
    else {
        return;
    };
    let out = s.python(CONNECT, &["9", "7000", "1234"], TOOL_TIMEOUT);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["9 refused", "7000 connected", "1234 refused"]
    );
}

#[test]
fn a_16_mib_curl_through_5_percent_loss_and_reordering_is_exact() {
    let root = Dir::new("lossy-root");
    let Some(mut s) = TunServe::start(
        "a_16_mib_curl_through_5_percent_loss_and_reordering_is_exact",
        &["curl"],
        &[
            "--root",
            root.s(),
            "--tun-drop",
            "0.05",
            "--tun-reorder",
            "0.05",
            "--tun-seed",
            "14",
        ],
    ) else {
        return;
    };
    let want = pattern(16 * MIB, 16);
    std::fs::write(root.path("lossy"), &want).unwrap();
    let out = Dir::new("lossy-out");
    // A lost SYN costs the kernel a 1 s retry: curl's connect timeout is
    // its overall one.
    curl(
        &mut s,
        &format!("{HTTP}/lossy"),
        &out.path("lossy"),
        BULK_CURL_MAX_TIME,
        &[],
        BULK_TIMEOUT,
    );
    assert_file("the lossy transfer", &out.path("lossy"), &want);
}

/// A kernel HTTP server for the client role: Python's, serving a folder at
/// `192.0.2.2:PORT`, bound before the address exists (the device, and so
/// the address, comes with `mioperf tunstack get`; `ip_nonlocal_bind`
/// allows it). Prints `ready` once listening.
const KERNEL_HTTP: &str = r#"
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
handler = functools.partial(Quiet, directory=sys.argv[1])
srv = http.server.ThreadingHTTPServer(("192.0.2.2", int(sys.argv[2])), handler)
print("ready", flush=True)
srv.serve_forever()
"#;

/// The port the kernel HTTP server listens on (the namespace is the
/// test's own: nothing else is there).
const KERNEL_HTTP_PORT: &str = "8080";

/// A child process killed (and reaped) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts [`KERNEL_HTTP`] serving `dir` in `ns` and waits (bounded) for
/// its `ready`.
fn kernel_http(ns: &Netns, dir: &Dir) -> Killed {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), "python3", "-c", KERNEL_HTTP])
        .args([dir.s(), KERNEL_HTTP_PORT])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn python3");
    let stdout = child.stdout.take().expect("stdout piped");
    let child = Killed(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(TOOL_TIMEOUT)
        .expect("the kernel HTTP server did not start in time");
    assert_eq!(line.trim(), "ready", "the kernel HTTP server did not start");
    child
}

#[test]
fn tunstack_get_fetches_1_mib_from_a_kernel_http_server() {
    const TEST: &str = "tunstack_get_fetches_1_mib_from_a_kernel_http_server";
    if !have(TEST, &["ip", "python3"]) {
        return;
    }
    let Some(ns) = Netns::new(TEST) else {
        return;
    };
    let run = |program: &str, args: &[&str]| {
        let out = ns.run(program, args, TOOL_TIMEOUT);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(
        "sh",
        &["-c", "echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind"],
    );
    assert_eq!(code, Some(0), "{err}");
    let served = Dir::new("client-served");
    let want = pattern(MIB, 77);
    std::fs::write(served.path("file.bin"), &want).unwrap();
    let server = kernel_http(&ns, &served);

    let out = Dir::new("client-out");
    let dest = out.path("got.bin");
    let url = format!("http://192.0.2.2:{KERNEL_HTTP_PORT}/file.bin");
    let (code, stdout, err) = run(
        bin(),
        &[
            "tunstack",
            "get",
            &url,
            "-o",
            dest.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{err}");
    assert_file("tunstack get", &dest, &want);
    let doc: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("--json printed {stdout:?}: {e}"));
    assert_eq!(doc["outcome"], "ok", "{doc}");
    assert_eq!(doc["bytes"], MIB, "{doc}");
    // The engine's own counters: the body arrived in segments (64 KiB
    // super-segments when the device has offloads, 1 448-byte ones
    // without).
    assert!(
        doc["tcp"]["segments_in"]
            .as_u64()
            .is_some_and(|n| n > (MIB / 65_536) as u64),
        "{doc}"
    );
    assert!(doc["tcp"]["srtt_ns"].is_u64(), "{doc}");

    // To standard output (`-o -`): the body, and nothing else, there.
    let out_dash = ns.run(bin(), &["tunstack", "get", &url, "-o", "-"], TOOL_TIMEOUT);
    assert_eq!(
        out_dash.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out_dash.stderr)
    );
    assert!(
        out_dash.stdout == want,
        "-o - wrote {} bytes",
        out_dash.stdout.len()
    );

    // A missing file: the server's 404 is a refusal (exit 1), and no
    // partial file is left behind.
    let missing = out.path("missing.bin");
    let url = format!("http://192.0.2.2:{KERNEL_HTTP_PORT}/missing.bin");
    let (code, stdout, err) = run(
        bin(),
        &["tunstack", "get", &url, "-o", missing.to_str().unwrap()],
    );
    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{err}");
    assert!(!missing.exists(), "a 404 left {}", missing.display());
    drop(server);
}

#[test]
fn tunstack_get_takes_only_an_http_url_with_an_address_in_the_tun_net() {
    for (args, says) in [
        (&["ftp://192.0.2.2/x"][..], "is not an http:// URL"),
        (&["http://example.com/x"], "192.0.2.0/24"),
        (&["http://10.1.2.3:80/x"], "192.0.2.0/24"),
        (&["http://192.0.2.1:80/x"], "192.0.2.0/24"),
        (
            &["http://192.0.2.2:80/x", "--tun-net", "10.7.0.0/24"],
            "10.7.0.0/24",
        ),
    ] {
        let mut all = vec!["tunstack", "get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "/nonexistent-dir/never-written"]);
        let out = run_with_timeout(&all, TOOL_TIMEOUT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.trim_end().lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, not:\n{stderr}");
        assert!(
            lines[0].starts_with("mioperf: ") && lines[0].contains(says),
            "{args:?}: want {says:?} in {:?}",
            lines[0]
        );
    }
}
