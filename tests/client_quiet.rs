//! `-q` and `-v` on every client against a real `serve`: with `-q` a
//! success prints nothing at all (the exit status says it) while a failure
//! still does; with `-v` each client logs a per-packet trace naming the
//! packet kinds, and no other crate's internals; so does a server with `-v`.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use common::{Dir, Server, run_with_timeout};
use std::time::Duration;

/// Bound of one client run.
const CLIENT_LIMIT: Duration = Duration::from_secs(30);

/// Every protocol with a client, each on a port of its own.
const PROTOCOLS: [&str; 7] = [
    "hello", "lab", "msg", "tcpfile", "stopwait", "tftp", "window",
];

/// A server of every protocol on loopback, and its root holding `f.bin`.
fn serve_all(root: &Dir) -> Server {
    std::fs::write(root.path("f.bin"), vec![b'x'; 3_000]).unwrap();
    let mut args = vec![
        "--only".to_owned(),
        PROTOCOLS.join(","),
        "--root".to_owned(),
        root.s().to_owned(),
        "--allow-overwrite".to_owned(),
    ];
    for p in PROTOCOLS {
        args.push("--listen".into());
        args.push(format!("{p}=127.0.0.1:0"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::spawn(&args)
}

#[test]
fn quiet_clients_print_nothing_on_success_and_still_say_failures() {
    let root = Dir::new("client-quiet-root");
    let out = Dir::new("client-quiet-out");
    let server = serve_all(&root);
    let upload = out.path("up.bin");
    std::fs::write(&upload, vec![b'y'; 2_000]).unwrap();
    let upload = upload.to_str().unwrap();
    let host = |p: &str, udp: bool| {
        let a = if udp { server.udp(p) } else { server.tcp(p) };
        (a.ip().to_string(), a.port().to_string(), a.to_string())
    };
    let (hu_ip, hu_port, _) = host("hello", true);
    let (ht_ip, ht_port, _) = host("hello", false);
    let (lab_ip, lab_port, _) = host("lab", false);
    let (msg_ip, msg_port, _) = host("msg", false);
    let (.., tcpfile) = host("tcpfile", false);
    let (.., stopwait) = host("stopwait", true);
    let (.., tftp) = host("tftp", true);
    let (.., window) = host("window", true);
    let o = |name: &str| out.path(name).to_str().unwrap().to_owned();
    let (o1, o2, o3, o4) = (o("1"), o("2"), o("3"), o("4"));
    let clients: Vec<Vec<&str>> = vec![
        vec!["hello", &hu_ip, &hu_port, "41"],
        vec!["hello", "--tcp", &ht_ip, &ht_port, "42"],
        vec!["lab", &lab_ip, &lab_port, "hi"],
        vec!["msg", &msg_ip, &msg_port, upload],
        vec!["get", &tcpfile, "f.bin", "-o", &o1],
        vec!["put", &tcpfile, upload, "--as", "q1.bin"],
        vec!["stopwait", "get", &stopwait, "f.bin", "-o", &o2],
        vec!["stopwait", "put", &stopwait, upload, "--as", "q2.bin"],
        vec!["tftp", "get", &tftp, "f.bin", "-o", &o3],
        vec!["tftp", "put", &tftp, upload, "--as", "q3.bin"],
        vec!["window", "get", &window, "f.bin", "-o", &o4],
        vec!["window", "put", &window, upload, "--as", "q4.bin"],
    ];
    for client in &clients {
        let mut args = vec!["-q"];
        args.extend_from_slice(client);
        let run = run_with_timeout(&args, CLIENT_LIMIT);
        let stdout = String::from_utf8_lossy(&run.stdout);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(0), "{client:?}: {stderr}");
        assert!(stdout.is_empty(), "{client:?} printed {stdout:?}");
        assert!(stderr.is_empty(), "{client:?} printed {stderr:?}");
    }
    for n in ["1", "2", "3", "4"] {
        assert_eq!(std::fs::read(out.path(n)).unwrap().len(), 3_000, "{n}");
    }
    // Without -q the same success says so, so the silence above is -q's.
    let loud = run_with_timeout(
        &["tftp", "get", &tftp, "f.bin", "-o", &o3, "-f"],
        CLIENT_LIMIT,
    );
    assert!(!loud.stderr.is_empty(), "a success has a summary");
    // A failure still prints, -q or not.
    let o5 = o("5");
    let missing = run_with_timeout(
        &["-q", "tftp", "get", &tftp, "nope", "-o", &o5],
        CLIENT_LIMIT,
    );
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
    // -q with --json still writes the JSON.
    let json = run_with_timeout(
        &["-q", "hello", &hu_ip, &hu_port, "43", "--json"],
        CLIENT_LIMIT,
    );
    assert!(String::from_utf8_lossy(&json.stdout).contains("\"protocol\""));
}

#[test]
fn verbose_clients_trace_each_packet_and_not_their_dependencies() {
    let root = Dir::new("client-verbose-root");
    let out = Dir::new("client-verbose-out");
    let server = serve_all(&root);
    let o = out.path("f").to_str().unwrap().to_owned();
    let tftp = server.udp("tftp").to_string();
    let stopwait = server.udp("stopwait").to_string();
    let tcpfile = server.tcp("tcpfile").to_string();
    let window = server.udp("window").to_string();
    let hello = server.udp("hello");
    let (ip, port) = (hello.ip().to_string(), hello.port().to_string());
    let lab = server.tcp("lab").port().to_string();
    let cases: [(Vec<&str>, &[&str]); 6] = [
        (
            vec!["tftp", "get", &tftp, "f.bin", "-o", &o, "-f"],
            &[
                "tftp > ",
                "RRQ \"f.bin\" octet tsize=0",
                "tftp < ",
                "OACK tsize=3000",
                "DATA #6 440 bytes",
                "ACK #6",
            ],
        ),
        (
            vec!["stopwait", "get", &stopwait, "f.bin", "-o", &o, "-f"],
            &["stopwait > ", "stopwait < "],
        ),
        (
            vec!["get", &tcpfile, "f.bin", "-o", &o, "-f"],
            &["tcpfile > ", "f.bin:GET", "tcpfile < ", "OK 3000"],
        ),
        (
            vec!["window", "get", &window, "f.bin", "-o", &o, "-f"],
            &["window > ", "Syn", "window < "],
        ),
        (vec!["hello", &ip, &port, "44"], &["hello > ", "HELLO 44"]),
        (
            vec!["lab", "127.0.0.1", &lab, "ping"],
            &["lab > ", "\"ping\\n\"", "lab < "],
        ),
    ];
    for (client, needles) in cases {
        let mut args = vec!["-v"];
        args.extend_from_slice(&client);
        let run = run_with_timeout(&args, CLIENT_LIMIT);
        let stderr = String::from_utf8_lossy(&run.stderr);
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert_eq!(run.status.code(), Some(0), "{client:?}: {stderr}");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{client:?}: no {needle:?} in {stderr}"
            );
        }
        assert!(
            !stdout.contains(" > "),
            "{client:?}: trace on stdout: {stdout}"
        );
        assert!(
            !stderr.lines().any(|l| l.contains("mio::")),
            "{client:?}: {stderr}"
        );
    }
}

#[test]
fn a_verbose_server_traces_each_packet_too() {
    let root = Dir::new("server-verbose-root");
    std::fs::write(root.path("f.bin"), vec![b'x'; 1_000]).unwrap();
    let server = Server::spawn(&[
        "-v",
        "--only",
        "tftp,hello",
        "--listen",
        "tftp=127.0.0.1:0",
        "--listen",
        "hello=127.0.0.1:0",
        "--root",
        root.s(),
    ]);
    let tftp = server.udp("tftp").to_string();
    let hello = server.udp("hello");
    let out = Dir::new("server-verbose-out");
    let o = out.path("f").to_str().unwrap().to_owned();
    let get = run_with_timeout(
        &["-q", "tftp", "get", &tftp, "f.bin", "-o", &o],
        CLIENT_LIMIT,
    );
    assert!(get.status.success());
    let (ip, port) = (hello.ip().to_string(), hello.port().to_string());
    let id = run_with_timeout(&["-q", "hello", &ip, &port, "45"], CLIENT_LIMIT);
    assert!(id.status.success());
    let needles = [
        "tftp < ",
        "RRQ \"f.bin\" octet tsize=0",
        "tftp > ",
        "OACK tsize=1000",
        "DATA #2 488 bytes",
        "ACK #2",
        "hello < ",
        "\"HELLO 45\"",
        "hello > ",
        "\"OK 45 ",
    ];
    let stderr = server.stderr_with(&needles, CLIENT_LIMIT);
    for needle in needles {
        assert!(stderr.contains(needle), "no {needle:?} in {stderr}");
    }
}
