#![no_main]
//! See `mioperf::fuzzing::server_stopwait`; inputs that crashed it go to
//! `fuzz/regressions/server_stopwait/`, where `tests/fuzz_regressions.rs` replays them.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mioperf::fuzzing::server_stopwait(data));
