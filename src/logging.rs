//! Logging setup: `log` + simplelog to standard error.
//!
//! Owns the mapping from `-v`/`-q` to a level: info by default, `-v`
//! debug, `-vv` trace, `-q` warn, `-qq` error. Standard output stays for
//! results (`listening …`, `ready`, answers, JSON). Lines carry no wall-clock
//! time: the prefix that matters is the session's `[#key peer]`.

use log::LevelFilter;
use simplelog::{ConfigBuilder, WriteLogger};

/// The level for `verbose` `-v`s and `quiet` `-q`s.
pub fn level(verbose: u8, quiet: u8) -> LevelFilter {
    match i16::from(verbose) - i16::from(quiet) {
        i16::MIN..=-2 => LevelFilter::Error,
        -1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Installs the logger. A second call is ignored.
pub fn init(level: LevelFilter) {
    let config = ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .build();
    let _ = WriteLogger::init(level, config, std::io::stderr());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_mapping() {
        assert_eq!(level(0, 0), LevelFilter::Info);
        assert_eq!(level(1, 0), LevelFilter::Debug);
        assert_eq!(level(2, 0), LevelFilter::Trace);
        assert_eq!(level(5, 0), LevelFilter::Trace);
        assert_eq!(level(0, 1), LevelFilter::Warn);
        assert_eq!(level(0, 2), LevelFilter::Error);
        assert_eq!(level(0, 9), LevelFilter::Error);
    }
}
