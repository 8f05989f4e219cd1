#![no_main]
//! See `mioperf::fuzzing::wire_http`; inputs that crashed it go to
//! `fuzz/regressions/wire_http/`, where `tests/fuzz_regressions.rs` replays them.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mioperf::fuzzing::wire_http(data));
