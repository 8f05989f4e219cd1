//! Replays every input under `fuzz/regressions/<target>/` (each one crashed
//! a fuzz target once) and the small seed corpus under `fuzz/corpus/<target>/`
//! through the harness functions the fuzz targets call
//! (`mioperf::fuzzing`), on the stable toolchain: CI checks every input
//! that ever crashed without libFuzzer or nightly.
//!
//! How to add one: `docs/fuzzing.md`.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted (a missing folder has none).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable folder").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every input of `kind` (`regressions` or `corpus`) through its
/// target; returns how many ran. A panic names the file.
fn replay(kind: &str) -> usize {
    let mut ran = 0;
    for (name, target) in mioperf::fuzzing::TARGETS {
        for file in inputs(&fuzz_dir().join(kind).join(name)) {
            let data = std::fs::read(&file).expect("readable input");
            let result = std::panic::catch_unwind(|| target(&data));
            assert!(
                result.is_ok(),
                "{name} panics on {} (replay: cargo +nightly fuzz run {name} {})",
                file.display(),
                file.display()
            );
            ran += 1;
        }
    }
    ran
}

#[test]
fn every_input_that_ever_crashed_a_target_passes() {
    replay("regressions");
}

#[test]
fn the_seed_corpus_passes() {
    assert!(replay("corpus") > 0, "the seed corpus is in fuzz/corpus");
}

/// A folder or a fuzz target with a name no harness has would be silently
/// skipped: refuse both.
#[test]
fn folders_and_fuzz_targets_name_known_harnesses() {
    let known: Vec<&str> = mioperf::fuzzing::TARGETS.iter().map(|(n, _)| *n).collect();
    for kind in ["regressions", "corpus"] {
        for entry in std::fs::read_dir(fuzz_dir().join(kind))
            .into_iter()
            .flatten()
        {
            let entry = entry.expect("readable");
            if !entry.path().is_dir() {
                continue; // a README
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            assert!(known.contains(&&*name), "fuzz/{kind}/{name} is no target");
        }
    }
    let mut targets: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .map(|e| {
            let path = e.expect("readable").path();
            path.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    targets.sort();
    let mut expected: Vec<String> = known.iter().map(|n| (*n).to_owned()).collect();
    expected.sort();
    assert_eq!(
        targets, expected,
        "fuzz/fuzz_targets and fuzzing::TARGETS differ"
    );
}

/// Replays the files named in `FUZZ_REPLAY` (colon-separated, each
/// `target=path`), for debugging a new crash on stable: prints nothing
/// when unset.
#[test]
fn replay_named_files() {
    let Ok(list) = std::env::var("FUZZ_REPLAY") else {
        return;
    };
    for item in list.split(':').filter(|s| !s.is_empty()) {
        let (name, path) = item.split_once('=').expect("target=path");
        let target = mioperf::fuzzing::TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a known target")
            .1;
        target(&std::fs::read(path).expect("readable input"));
    }
}
