//! Logging setup: `log` + simplelog to standard error.
//!
//! Owns the mapping from `-v`/`-q` to a level: info by default, `-v`
//! debug, `-vv` trace, `-q` warn, `-qq` error. Standard output stays for
//! results (`listening …`, `ready`, answers, JSON). Lines carry no wall-clock
//! time: the prefix that matters is the session's `[#key peer]`. Other
//! crates' records stay at warn whatever the level (mio's internals are not
//! the protocol trace `-v` asks for).

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

/// The level other crates' records are held to, whatever `-v` says: `-v`
/// is for mioperf's own lines (the packet trace), not mio's internals.
pub const DEPENDENCY_LEVEL: LevelFilter = LevelFilter::Warn;

/// Installs the logger. A second call is ignored.
pub fn init(level: LevelFilter) {
    let config = ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .build();
    let inner = WriteLogger::new(level, config, std::io::stderr());
    if log::set_boxed_logger(Box::new(OwnFirst { inner })).is_ok() {
        log::set_max_level(level);
    }
}

/// Whether a record at `level` from `target` is shown: mioperf's at the
/// level asked for (the logger's own filter), anyone else's only up to
/// [`DEPENDENCY_LEVEL`].
fn shown(target: &str, level: log::Level) -> bool {
    let own = target == "mioperf" || target.starts_with("mioperf::");
    own || level <= DEPENDENCY_LEVEL
}

/// simplelog's writer behind the per-crate rule of [`shown`] (simplelog's
/// own filters allow or ignore a module whole, at every level).
struct OwnFirst<L> {
    inner: Box<L>,
}

impl<L: log::Log> log::Log for OwnFirst<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        shown(metadata.target(), metadata.level()) && self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if shown(record.target(), record.level()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
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

    #[test]
    fn dependencies_stay_at_warn() {
        use log::Level;
        assert!(shown("mioperf::trace", Level::Debug));
        assert!(shown("mioperf", Level::Trace));
        assert!(!shown("mio::poll", Level::Debug));
        assert!(!shown("mioperfx", Level::Info));
        assert!(shown("mio::poll", Level::Warn));
        assert!(shown("indicatif", Level::Error));
    }
}
