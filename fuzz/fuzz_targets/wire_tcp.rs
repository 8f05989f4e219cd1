#![no_main]
//! See `mioperf::fuzzing::wire_tcp`; inputs that crashed it go to
//! `fuzz/regressions/wire_tcp/`, where `tests/fuzz_regressions.rs` replays them.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mioperf::fuzzing::wire_tcp(data));
