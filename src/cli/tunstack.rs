//! Flags of `mioperf tunstack get`: the userspace TCP as a client, on a TUN
//! device of its own, against a server the kernel runs at the device's
//! other end.
//!
//! Clap types only, like the rest of `cli`; `app::client::tunstack` opens
//! the device and runs the fetch.

use super::{duration, parse_mtu, parse_net};
use crate::config::{self, Ipv4Net, TunConfig};
use crate::time::Duration;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Flags of `mioperf tunstack`.
#[derive(Debug, Args)]
pub struct TunstackArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TunstackCommand,
}

/// The subcommands of `mioperf tunstack`.
#[derive(Debug, Subcommand)]
pub enum TunstackCommand {
    /// Fetch `http://ADDR:PORT/PATH` through our own TCP over a TUN device (ADDR in the device's net, e.g. 192.0.2.2, the kernel's side): exit 0 when every byte arrived, 1 on an HTTP error answer.
    Get(TunstackGetArgs),
}

/// Flags of `mioperf tunstack get`.
#[derive(Debug, Args)]
pub struct TunstackGetArgs {
    /// `http://ADDR[:PORT]/PATH`, ADDR an IPv4 address in the TUN net other than the stack's own.
    pub url: String,
    /// Where to write the body (`-` for standard output) [default: the path's last component, here].
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Replace OUT if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// The TUN interface to create (or attach) [default: mio0].
    #[arg(long, value_name = "NAME", value_parser = config::parse_tun_name)]
    pub tun: Option<String>,
    /// The device's net: the stack is its first address, the kernel side the second [default: 192.0.2.0/24].
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    pub tun_net: Option<Ipv4Net>,
    /// The device's MTU, 68 to 65535 [default: 1500].
    #[arg(long, value_name = "N", value_parser = parse_mtu)]
    pub tun_mtu: Option<u16>,
    /// Give up after this long without a byte of the body arriving.
    #[arg(long, value_name = "DUR", value_parser = duration::parse, default_value = "30s")]
    pub timeout: Duration,
    /// Print one JSON object (with the stack's counters) instead of the summary.
    #[arg(long)]
    pub json: bool,
}

impl TunstackGetArgs {
    /// The device these flags describe: the serve defaults, then the flags.
    pub fn tun_config(&self) -> TunConfig {
        let mut t = TunConfig::default();
        if let Some(v) = &self.tun {
            t.name.clone_from(v);
        }
        if let Some(v) = self.tun_net {
            t.net = v;
        }
        if let Some(v) = self.tun_mtu {
            t.mtu = v;
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mioperf").chain(args.iter().copied()))
    }

    #[test]
    fn get_flags_reach_the_device_config() {
        let Command::Tunstack(TunstackArgs {
            command: TunstackCommand::Get(args),
        }) = parse(&[
            "tunstack",
            "get",
            "http://10.7.0.2:8080/a/b",
            "-o",
            "out",
            "--tun",
            "mt3",
            "--tun-net",
            "10.7.0.0/24",
            "--tun-mtu",
            "576",
            "--json",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(args.url, "http://10.7.0.2:8080/a/b");
        assert_eq!(args.output, Some(PathBuf::from("out")));
        assert!(args.json);
        let t = args.tun_config();
        assert_eq!(
            (t.name.as_str(), t.net.to_string(), t.mtu),
            ("mt3", "10.7.0.0/24".to_owned(), 576)
        );
    }

    #[test]
    fn defaults_are_serves() {
        let Command::Tunstack(TunstackArgs {
            command: TunstackCommand::Get(args),
        }) = parse(&["tunstack", "get", "http://192.0.2.2/"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(args.tun_config(), TunConfig::default());
        assert_eq!(args.timeout, Duration::from_secs(30));
    }
}
