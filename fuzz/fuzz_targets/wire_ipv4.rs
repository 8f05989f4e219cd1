#![no_main]
//! See `mioperf::fuzzing::wire_ipv4`; inputs that crashed it go to
//! `fuzz/regressions/wire_ipv4/`, where `tests/fuzz_regressions.rs` replays them.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mioperf::fuzzing::wire_ipv4(data));
