//! `mioperf bench hello -n 2000 --svg FILE` against the real binary, and
//! the picture read back: every label short (no `0.30000000000000004`),
//! p50 and p99 marked, the run's parameters in the title; then rendered to
//! PNG with `rsvg-convert` (librsvg2-bin) when present, so a renderer that
//! is not plotters' author accepts the document. Without `rsvg-convert`
//! the render is skipped with a note, except under `CI`, where it fails.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests run a real process in real time"
)]

mod common;

use common::{run_with_timeout, temp_path};
use std::process::Command;
use std::time::Duration;

/// Bound of the bench run: 2000 loopback requests take well under a second.
const BENCH_LIMIT: Duration = Duration::from_secs(20);

/// Most digits in a row a label may carry: "123457" µs fits, a float's
/// binary expansion (17 digits) does not.
const MAX_LABEL_DIGITS: usize = 6;

/// The text of every `<text>` element.
fn labels(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let t = &t[t.find('>')? + 1..];
            Some(t[..t.find("</text>")?].trim().to_owned())
        })
        .collect()
}

fn longest_digits(label: &str) -> usize {
    label
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[test]
fn hello_svg_reads_well_and_renders() {
    let svg_path = temp_path("bench.svg");
    let out = run_with_timeout(
        &[
            "bench",
            "hello",
            "-n",
            "2000",
            "--svg",
            svg_path.to_str().unwrap(),
        ],
        BENCH_LIMIT,
    );
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let labels = labels(&svg);
    for l in &labels {
        assert!(
            longest_digits(l) <= MAX_LABEL_DIGITS,
            "label {l:?} in {labels:?}"
        );
    }
    let title = &labels[0];
    for part in [
        "mioperf bench hello rr",
        "-P 1",
        "-n 2000",
        "server 127.0.0.1:",
    ] {
        assert!(title.contains(part), "title {title:?} lacks {part:?}");
    }
    assert!(labels.iter().any(|l| l.starts_with("p50 ")), "{labels:?}");
    assert!(labels.iter().any(|l| l.starts_with("p99 ")), "{labels:?}");

    let png_path = temp_path("bench.png");
    let rendered = Command::new("rsvg-convert")
        .arg(&svg_path)
        .arg("-o")
        .arg(&png_path)
        .output();
    let _ = std::fs::remove_file(&svg_path);
    match rendered {
        Ok(r) => {
            assert!(
                r.status.success(),
                "rsvg-convert: {}",
                String::from_utf8_lossy(&r.stderr)
            );
            let png = std::fs::read(&png_path).unwrap();
            let _ = std::fs::remove_file(&png_path);
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
            // A blank 900x720 PNG compresses to a few hundred bytes.
            assert!(png.len() > 5_000, "PNG of {} bytes: blank?", png.len());
        }
        Err(e) => {
            let why = format!("rsvg-convert not runnable ({e}): install librsvg2-bin");
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipping the PNG render: {why}");
        }
    }
}
