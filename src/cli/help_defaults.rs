//! Every default `--help` shows is accepted back by its own flag.
//!
//! Walks the whole clap command tree of [`super::Cli`]: each argument's
//! clap default (`default_value`, `default_value_t`), and each
//! `[default: X]` written in prose in its help, goes through that
//! argument's own value parser. A user who copies a default from the help
//! must never be told it is invalid (issue 16: `serve --max-file-size`
//! showed `64 GiB` and refused it).

use super::Cli;
use clap::{CommandFactory, Parser};

/// First words of a prose default that names no value, only a behaviour.
const NO_VALUE: &[&str] = &[
    "never",
    "none",
    "unlimited",
    "random",
    "derived",
    "all",
    "a",
    "an",
    "the",
    "off",
];

/// Whether `arg` accepts `text`, through its own value parser: a command
/// of one flag carrying that parser (clap keeps a parser's own entry point
/// private), given `--probe=TEXT`.
fn accepts(arg: &clap::Arg, text: &str) -> bool {
    let probe = clap::Arg::new("probe")
        .long("probe")
        .action(clap::ArgAction::Set)
        .value_parser(arg.get_value_parser().clone());
    clap::Command::new("probe")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--probe={text}")])
        .is_ok()
}

/// Checks one prose default `text`: a value the flag accepts, a phrase
/// that names no value (`never`, `derived from …`), or a list of cases
/// (`lab echo 64, msg 64`; `10s unless -n is given`; `1s for …, 5s for
/// …`) in which some case ends in an accepted value and every case that
/// holds a number ends in an accepted value or is one.
fn check_prose(text: &str, accepts: &dyn Fn(&str) -> bool) -> Result<(), String> {
    let first = text
        .split(|c: char| !c.is_alphabetic())
        .next()
        .unwrap_or_default();
    if accepts(text) || NO_VALUE.contains(&first) {
        return Ok(());
    }
    let qualified = [",", ";", " unless ", " for "]
        .iter()
        .any(|sep| text.contains(sep));
    if !qualified {
        return Err(format!("'{text}' is refused by the flag"));
    }
    let mut any = false;
    for piece in text.split([',', ';']) {
        let piece = [" unless ", " for "]
            .iter()
            .fold(piece, |p, sep| p.split(sep).next().unwrap_or(p))
            .trim();
        let last = piece.split_whitespace().last().unwrap_or_default();
        if accepts(piece) || accepts(last) {
            any = true;
        } else if piece
            .split_whitespace()
            .any(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        {
            return Err(format!("'{piece}' (in '{text}') is refused by the flag"));
        }
    }
    if any {
        Ok(())
    } else {
        Err(format!("no value in '{text}' is accepted by the flag"))
    }
}

/// The `X` of every `[default: X]` in `help`.
fn prose_defaults(help: &str) -> Vec<String> {
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut found = Vec::new();
    let mut rest = help.as_str();
    while let Some(at) = rest.find("[default: ") {
        let after = &rest[at + "[default: ".len()..];
        let Some(end) = after.find(']') else { break };
        found.push(after[..end].to_owned());
        rest = &after[end..];
    }
    found
}

/// Every problem under `cmd`, each naming its command path and flag.
fn problems(cmd: &clap::Command, path: &str, out: &mut Vec<String>, checked: &mut usize) {
    for arg in cmd.get_arguments() {
        if !arg.get_action().takes_values() {
            continue;
        }
        let name = arg
            .get_long()
            .map_or_else(|| arg.get_id().to_string(), |l| format!("--{l}"));
        for default in arg.get_default_values() {
            let text = default.to_string_lossy();
            *checked += 1;
            if !accepts(arg, &text) {
                out.push(format!("{path} {name}: its default '{text}' is refused"));
            }
        }
        let helps = [arg.get_help(), arg.get_long_help()];
        let mut seen = Vec::new();
        for help in helps.into_iter().flatten() {
            for text in prose_defaults(&help.to_string()) {
                if seen.contains(&text) {
                    continue;
                }
                *checked += 1;
                if let Err(e) = check_prose(&text, &|t| accepts(arg, t)) {
                    out.push(format!("{path} {name}: [default: {text}] in its help: {e}"));
                }
                seen.push(text);
            }
        }
    }
    for sub in cmd.get_subcommands() {
        problems(sub, &format!("{path} {}", sub.get_name()), out, checked);
    }
}

#[test]
fn every_default_shown_in_help_is_accepted_back() {
    let mut cmd = Cli::command();
    cmd.build();
    let (mut found, mut checked) = (Vec::new(), 0);
    problems(&cmd, "mioperf", &mut found, &mut checked);
    assert!(found.is_empty(), "{}", found.join("\n"));
    // The walk reaches the subcommands' flags, not just the top level.
    assert!(checked > 50, "only {checked} defaults checked");
}

#[test]
fn the_prose_check_refuses_what_a_flag_refuses() {
    // The bug of issue 16: a plain integer flag showing `64 GiB`.
    let integer = |t: &str| t.parse::<u64>().is_ok();
    assert!(check_prose("64 GiB", &integer).is_err());
    assert!(check_prose("123456789", &integer).is_ok());
    assert!(check_prose("lab echo 64, stream 1400, file 1M", &integer).is_err());
    assert!(check_prose("lab echo 64, stream 1400; hello ignores it", &integer).is_ok());
    assert!(check_prose("10s unless -n is given", &integer).is_err());
    assert!(check_prose("derived from the descriptor limit", &integer).is_ok());
    assert!(check_prose("lots", &integer).is_err());
    let size = |t: &str| crate::units::parse_size(t).is_ok();
    assert!(check_prose("64 GiB", &size).is_ok());
    assert_eq!(
        prose_defaults("Largest [default: 64\n  GiB]; other [default: never]."),
        ["64 GiB", "never"]
    );
}

#[test]
fn the_issue_16_examples_are_accepted() {
    use super::Command;
    let parse =
        |args: &[&str]| Cli::try_parse_from(std::iter::once("mioperf").chain(args.iter().copied()));
    let Command::Serve(serve) = parse(&["serve", "--max-file-size", "1G"]).unwrap().command else {
        panic!("not serve")
    };
    assert_eq!(serve.to_config().unwrap().max_file_size, 1_000_000_000);
    let Command::Serve(serve) = parse(&["serve", "--max-file-size", "64 GiB"])
        .unwrap()
        .command
    else {
        panic!("not serve")
    };
    assert_eq!(serve.max_file_size, Some(64 << 30));
    let Command::Proxy(proxy) = parse(&["proxy", "--rate", "1Mi"]).unwrap().command else {
        panic!("not proxy")
    };
    assert_eq!(proxy.rate, Some(1 << 20));
    let Command::Bench(bench) = parse(&["bench", "lab", "-l", "10Mi", "-b", "1.5Gbit", "-t", "0"])
        .unwrap()
        .command
    else {
        panic!("not bench")
    };
    assert_eq!(bench.length, Some(10 << 20));
    assert_eq!(bench.bitrate, Some(1_500_000_000));
    assert_eq!(bench.time, Some(crate::time::Duration::ZERO));
    // `-t 0` is no time limit, as in iperf3: the run ends at -n or Ctrl-C.
    for (args, count) in [
        (&["bench", "hello", "-t", "0"][..], None),
        (&["bench", "hello", "-t", "0", "-n", "5"], Some(5)),
    ] {
        let Command::Bench(bench) = parse(args).unwrap().command else {
            panic!("not bench")
        };
        let stop = crate::bench::plan::Plan::from_args(&bench).unwrap().stop;
        assert_eq!((stop.time, stop.count), (None, count), "{args:?}");
    }
    let Command::Tftp(tftp) = parse(&[
        "tftp",
        "get",
        "h:1",
        "f",
        "--blksize",
        "8Ki",
        "--timeout",
        "2",
    ])
    .unwrap()
    .command
    else {
        panic!("not tftp")
    };
    assert_eq!(tftp.blksize, Some(8192));
    assert_eq!(tftp.timeout, crate::time::Duration::from_secs(2));
    for bad in [
        &["serve", "--max-file-size", "lots"][..],
        &["proxy", "--rate", "0"],
        &["tftp", "get", "h:1", "f", "--blksize", "7"],
        &["tftp", "get", "h:1", "f", "--blksize", "64Ki"],
        &["bench", "lab", "-b", "fast"],
    ] {
        let e = parse(bad).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{bad:?}");
    }
}
