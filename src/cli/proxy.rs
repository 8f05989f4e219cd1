//! Flags of `mioperf proxy` and their conversion to a [`ProxyConfig`].
//!
//! Owns flag names, help texts and the per-direction `KEY=VALUE,...`
//! syntax. It never opens a socket: `app::proxy` does.

use super::duration;
use crate::proto::proxy::ProxyConfig;
use crate::proto::proxy::impair::ImpairConfig;
use crate::time::Duration;
use crate::units;
use clap::Args;
use std::net::SocketAddr;

/// Bytes that may wait for the serializer when `--queue` is not given.
pub const DEFAULT_QUEUE_BYTES: usize = 256 * 1024;

/// Flags of `mioperf proxy`. Impairment flags apply to both directions;
/// `--to-server` and `--to-client` then override single settings of one.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address clients send to.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:50000")]
    pub listen: SocketAddr,
    /// The server. Replies are accepted from its IP on any port (TFTP answers from a new one).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:50001")]
    pub upstream: SocketAddr,
    /// Probability that a datagram is lost, 0 to 1.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub drop: f64,
    /// Probability that a datagram is delivered twice.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub dup: f64,
    /// Probability that a datagram is held back so later ones overtake it.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub reorder: f64,
    /// Shortest hold-back of a reordered datagram.
    #[arg(long, value_name = "DUR", default_value = "1ms", value_parser = duration::parse)]
    pub reorder_min: Duration,
    /// Longest hold-back of a reordered datagram.
    #[arg(long, value_name = "DUR", default_value = "10ms", value_parser = duration::parse)]
    pub reorder_max: Duration,
    /// Probability that a datagram gets an extra delay from --delay-min..--delay-max.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub delay_prob: f64,
    /// Shortest extra delay.
    #[arg(long, value_name = "DUR", default_value = "0ms", value_parser = duration::parse)]
    pub delay_min: Duration,
    /// Longest extra delay.
    #[arg(long, value_name = "DUR", default_value = "0ms", value_parser = duration::parse)]
    pub delay_max: Duration,
    /// Propagation delay added to every datagram, each way.
    #[arg(long, value_name = "DUR", default_value = "0ms", value_parser = duration::parse)]
    pub latency: Duration,
    /// Link rate in bytes per second, e.g. 125000, 10M, 1Mi, 1MiB/s: a bare number
    /// or B counts bytes (as curl's --limit-rate), bit or b counts bits (80Mbit/s,
    /// 1Gbps); K/M/G are powers of 1000, Ki/Mi/Gi of 1024; without it, no limit.
    #[arg(long, value_name = "BYTES_PER_S", value_parser = parse_rate)]
    pub rate: Option<u64>,
    /// Bytes that may wait for the link when --rate is set, e.g. 256Ki, 1M; beyond it, tail drop.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_QUEUE_BYTES, value_parser = units::parse_size_as::<usize>)]
    pub queue: usize,
    /// Seed of the random choices; the same seed and the same traffic repeat a run [default: random, printed].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Settings for client-to-server datagrams only, e.g. `drop=0.2,latency=20ms`
    /// (keys: drop dup reorder reorder-min reorder-max delay-prob delay-min delay-max latency rate queue).
    #[arg(long, value_name = "KEY=VALUE,...")]
    pub to_server: Option<String>,
    /// Settings for server-to-client datagrams only (same keys as --to-server).
    #[arg(long, value_name = "KEY=VALUE,...")]
    pub to_client: Option<String>,
    /// Forget a client mapping after this long without a datagram either way.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = duration::parse)]
    pub idle: Duration,
    /// Most client mappings at once; further clients are ignored until one idles out.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_clients: usize,
    /// Most bytes held by all mappings together (queued or in flight), e.g. 64Mi; beyond it, drop.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, value_parser = units::parse_size_as::<usize>)]
    pub max_held: usize,
    /// How early to wake and spin for a release, so it leaves on time; 0s trusts the timerfd alone.
    #[arg(long, value_name = "DUR", default_value = "100us", value_parser = duration::parse)]
    pub spin: Duration,
    /// Exit 0 after no datagram for this long (scripts); without it, the proxy runs until stopped.
    #[arg(long, value_name = "DUR", value_parser = duration::parse)]
    pub idle_exit: Option<Duration>,
    /// Print the final counters as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl ProxyArgs {
    /// The proxy's settings, with `seed` for the random choices.
    ///
    /// # Errors
    /// A probability, range or `KEY=VALUE` setting is wrong; the text says which.
    pub fn to_config(&self, seed: u64) -> Result<ProxyConfig, String> {
        let both = ImpairConfig {
            rate_bytes_per_sec: self.rate,
            latency: self.latency,
            queue_bytes: Some(self.queue),
            drop: self.drop,
            duplicate: self.dup,
            delay: self.delay_prob,
            delay_min: self.delay_min,
            delay_max: self.delay_max,
            reorder: self.reorder,
            reorder_min: self.reorder_min,
            reorder_max: self.reorder_max,
            seed,
        };
        let direction = |spec: &Option<String>, flag: &str| match spec {
            Some(spec) => apply_spec(both, spec).map_err(|e| format!("--{flag}: {e}")),
            None => Ok(both),
        };
        let config = ProxyConfig {
            upstream: self.upstream,
            to_server: direction(&self.to_server, "to-server")?,
            to_client: direction(&self.to_client, "to-client")?,
            idle: self.idle,
            max_clients: self.max_clients,
            max_held_bytes: self.max_held,
        };
        config
            .validate()
            .map_err(|(way, e)| format!("{way}: {e}"))?;
        if self.max_clients == 0 {
            return Err("--max-clients must be at least 1".into());
        }
        Ok(config)
    }
}

/// `base` with the settings of `KEY=VALUE,...` applied.
fn apply_spec(mut base: ImpairConfig, spec: &str) -> Result<ImpairConfig, String> {
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("'{item}': expected KEY=VALUE"))?;
        let prob = || parse_probability(value);
        let dur = || duration::parse(value);
        match key.trim() {
            "drop" => base.drop = prob()?,
            "dup" => base.duplicate = prob()?,
            "reorder" => base.reorder = prob()?,
            "reorder-min" => base.reorder_min = dur()?,
            "reorder-max" => base.reorder_max = dur()?,
            "delay-prob" => base.delay = prob()?,
            "delay-min" => base.delay_min = dur()?,
            "delay-max" => base.delay_max = dur()?,
            "latency" => base.latency = dur()?,
            "rate" => base.rate_bytes_per_sec = Some(parse_rate(value)?),
            "queue" => {
                base.queue_bytes =
                    Some(units::parse_size_as(value).map_err(|e| format!("queue: {e}"))?);
            }
            other => return Err(format!("unknown setting '{other}'")),
        }
    }
    Ok(base)
}

fn parse_probability(text: &str) -> Result<f64, String> {
    let p: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a probability"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("'{text}': a probability is within 0 and 1"))
    }
}

/// Bytes per second in the one rate language ([`units::parse_byte_rate`]),
/// above zero.
fn parse_rate(text: &str) -> Result<u64, String> {
    match units::parse_byte_rate(text)? {
        0 => Err("a rate of 0 would hold every datagram forever".into()),
        rate => Ok(rate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<ProxyArgs, String> {
        let mut argv = vec!["mioperf", "proxy"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Proxy(p) => Ok(p),
            _ => Err("not proxy".into()),
        }
    }

    #[test]
    fn defaults_follow_the_spec_and_always_bound_the_queue() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.listen, "127.0.0.1:50000".parse().unwrap());
        assert_eq!(args.upstream, "127.0.0.1:50001".parse().unwrap());
        let config = args.to_config(7).unwrap();
        assert_eq!(config.to_server.queue_bytes, Some(DEFAULT_QUEUE_BYTES));
        assert_eq!(config.to_server, config.to_client);
        assert_eq!(config.to_server.seed, 7);
    }

    #[test]
    fn per_direction_settings_override_the_shared_ones() {
        let args = parse(&[
            "--drop",
            "0.1",
            "--latency",
            "5ms",
            "--to-client",
            "drop=0.5, rate=10M,queue=1000",
        ])
        .unwrap();
        let c = args.to_config(1).unwrap();
        assert!((c.to_server.drop - 0.1).abs() < 1e-12);
        assert!((c.to_client.drop - 0.5).abs() < 1e-12);
        assert_eq!(c.to_client.latency, Duration::from_millis(5));
        assert_eq!(c.to_client.rate_bytes_per_sec, Some(10_000_000));
        assert_eq!(c.to_client.queue_bytes, Some(1000));
        assert_eq!(c.to_server.rate_bytes_per_sec, None);
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        assert!(parse(&["--drop", "1.5"]).unwrap().to_config(0).is_err());
        assert!(parse(&["--rate", "0"]).is_err());
        assert!(parse(&["--rate", "fast"]).is_err());
        let e = parse(&["--to-server", "loss=0.1"])
            .unwrap()
            .to_config(0)
            .unwrap_err();
        assert!(e.contains("--to-server") && e.contains("loss"), "{e}");
        let e = parse(&["--delay-min", "5ms", "--delay-max", "1ms"])
            .unwrap()
            .to_config(0)
            .unwrap_err();
        assert!(e.contains("delay"), "{e}");
        assert!(
            parse(&["--max-clients", "0"])
                .unwrap()
                .to_config(0)
                .is_err()
        );
    }

    #[test]
    fn rates_take_decimal_suffixes() {
        assert_eq!(parse_rate("1250000"), Ok(1_250_000));
        assert_eq!(parse_rate("10k"), Ok(10_000));
        assert_eq!(parse_rate("2G"), Ok(2_000_000_000));
        assert!(parse_rate("99999999999999999G").is_err());
    }

    /// Issue 16: `proxy --rate 1Mi` was refused while `bench -l 10Mi` was
    /// accepted; every size and rate flag now speaks one language.
    #[test]
    fn rates_and_sizes_take_the_one_language() {
        let args = parse(&["--rate", "1Mi", "--queue", "64KiB", "--max-held", "1G"]).unwrap();
        assert_eq!(args.rate, Some(1 << 20));
        assert_eq!(args.queue, 65_536);
        assert_eq!(args.max_held, 1_000_000_000);
        assert_eq!(
            parse(&["--rate", "80Mbit/s"]).unwrap().rate,
            Some(10_000_000)
        );
        let c = parse(&["--to-server", "rate=1MiB/s,queue=1Ki"])
            .unwrap()
            .to_config(0)
            .unwrap();
        assert_eq!(c.to_server.rate_bytes_per_sec, Some(1 << 20));
        assert_eq!(c.to_server.queue_bytes, Some(1024));
        let e = parse(&["--to-client", "queue=lots"])
            .unwrap()
            .to_config(0)
            .unwrap_err();
        assert!(e.contains("--to-client") && e.contains("not a size"), "{e}");
    }
}
