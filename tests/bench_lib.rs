//! `benches/lib.sh`, the reference identification and verdict rules every
//! compare script sources (issue 17, item 5), checked by `benches/lib_test.sh`
//! with fake references: an `in.tftpd` that is atftpd's must give SKIPPED, a
//! NaN or implausible reference figure SUSPECT, never PASS.

use std::path::Path;
use std::process::Command;

#[test]
fn bench_lib_refuses_wrong_references_and_suspect_figures() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/lib_test.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("bash runs benches/lib_test.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "lib_test.sh failed:\n{stdout}\n{stderr}"
    );
    let checks: u32 = stdout
        .trim()
        .strip_prefix("ok ")
        .and_then(|s| s.strip_suffix(" checks"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("lib_test.sh printed no 'ok N checks': {stdout}"));
    // The script has 40+ checks; far fewer means it stopped early.
    assert!(checks >= 40, "only {checks} checks ran: {stdout}");
}
