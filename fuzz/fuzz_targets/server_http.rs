#![no_main]
//! See `mioperf::fuzzing::server_http`; inputs that crashed it go to
//! `fuzz/regressions/server_http/`, where `tests/fuzz_regressions.rs` replays them.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mioperf::fuzzing::server_http(data));
