//! The terminal table: one row per interval, then totals and percentiles,
//! in the manner of iperf3 and sockperf.
//!
//! Built in three parts so a live run can print each as it happens:
//! [`table_head`] before the run, one [`table_row`] per interval as it
//! closes, [`table_foot`] at the end; [`render_table`] joins them for a
//! finished [`Document`]. A `Retr` column (retransmissions) appears when
//! the run counts them.
//!
//! Pure string building. Sizes and bit rates are the clients' own formats
//! ([`format_bytes`]: IEC, `1.5 MiB`; [`format_bitrate`]: SI bit/s,
//! `941 Mbit/s`), counts per second in 1000 steps (k, M), durations as
//! ns/µs/ms/s with three significant digits. An absent figure prints as
//! `-`; an empty run prints "no samples" lines.

use std::fmt::Write as _;

use super::{
    CpuShare, CpuUsage, Distribution, Document, Environment, Figures, IntervalReport,
    ScheduleError, Summary,
};
use crate::app::output::{format_bitrate, format_bytes};

/// Three significant digits (no exponent), for a finite non-negative `v`.
fn sig3(v: f64) -> String {
    let v = super::finite_or_zero(v);
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Scales `v` by `step` until below it, naming the unit.
fn scaled(v: f64, step: f64, units: &[&str]) -> String {
    let mut v = super::finite_or_zero(v);
    let mut unit = units.first().copied().unwrap_or("");
    for u in units.iter().skip(1) {
        if v.abs() < step {
            break;
        }
        v /= step;
        unit = u;
    }
    format!("{} {unit}", sig3(v))
}

/// `12.3 k/s`: a count per second in 1000 steps.
pub fn human_rate(per_sec: f64) -> String {
    scaled(per_sec, 1000.0, &["/s", "k/s", "M/s", "G/s"]).replace(" /s", "/s")
}

/// `120 µs`: nanoseconds as ns, µs, ms or s.
#[allow(
    clippy::cast_precision_loss,
    reason = "a humanised figure keeps three digits"
)]
pub fn human_ns(ns: u64) -> String {
    if ns < 1_000 {
        return format!("{ns} ns");
    }
    let v = ns as f64;
    if ns < 1_000_000 {
        format!("{} µs", sig3(v / 1e3))
    } else if ns < 1_000_000_000 {
        format!("{} ms", sig3(v / 1e6))
    } else {
        format!("{} s", sig3(v / 1e9))
    }
}

/// Like [`human_ns`], with a sign.
pub fn human_signed_ns(ns: i64) -> String {
    let s = human_ns(ns.unsigned_abs());
    if ns < 0 { format!("-{s}") } else { s }
}

/// `human_ns` of a float (a mean), non-negative.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a humanised mean keeps three digits; `as` saturates"
)]
fn human_mean(ns: f64) -> String {
    let ns = super::finite_or_zero(ns);
    let s = human_ns(ns.abs().round() as u64);
    if ns < 0.0 && !s.starts_with("0 ") {
        format!("-{s}")
    } else {
        s
    }
}

/// The column heads, aligned with [`row`]; `retransmits` adds `Retr`.
fn header(retransmits: bool) -> String {
    let head = format!(
        "{:<18}{:>10}  {:>13}  {:>11}  {:>10}  {:>6} {:>8}  {:>8}  {:>8}",
        "Interval",
        "Transfer",
        "Bitrate",
        "Packets",
        "Requests",
        "Errors",
        "Timeouts",
        "p50 lat",
        "p99 lat"
    );
    if retransmits {
        format!("{head}  {:>6}", "Retr")
    } else {
        head
    }
}

/// The `Retr` cell: `None` when the column is not shown, `-` for a count
/// not known in a shown column.
fn retr_cell(shown: bool, count: Option<u64>) -> Option<String> {
    shown.then(|| count.map_or_else(|| "-".to_owned(), |n| n.to_string()))
}

/// One row; `retr` is the `Retr` cell, if the column is shown.
fn row(label: &str, f: &Figures, retr: Option<String>) -> String {
    let lat = |pick: fn(&Distribution) -> u64| {
        f.latency_ns
            .as_ref()
            .map_or_else(|| "-".to_owned(), |d| human_ns(pick(d)))
    };
    let line = format!(
        "{label:<18}{:>10}  {:>13}  {:>11}  {:>10}  {:>6} {:>8}  {:>8}  {:>8}",
        format_bytes(f.bytes),
        format_bitrate(f.bits_per_sec),
        human_rate(f.packets_per_sec),
        human_rate(f.requests_per_sec),
        f.errors,
        f.timeouts,
        lat(|d| d.p50),
        lat(|d| d.p99),
    );
    match retr {
        None => line,
        Some(cell) => format!("{line}  {cell:>6}"),
    }
}

fn span(f: &Figures) -> String {
    format!("{:.2}-{:.2} s", f.start_s, f.end_s)
}

fn distribution_line(out: &mut String, name: &str, d: Option<&Distribution>) {
    match d {
        None => {
            let _ = writeln!(out, "{name:<15} no samples");
        }
        Some(d) => {
            let _ = write!(
                out,
                "{name:<15} n={}  min {}  mean {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                d.count,
                human_ns(d.min),
                human_mean(d.mean),
                human_ns(d.p50),
                human_ns(d.p90),
                human_ns(d.p99),
                human_ns(d.p999),
                human_ns(d.max),
            );
            if d.clamped > 0 {
                let _ = write!(out, "  ({} above 1 h, clamped)", d.clamped);
            }
            out.push('\n');
        }
    }
}

fn schedule_line(out: &mut String, s: Option<&ScheduleError>) {
    match s {
        None => {
            let _ = writeln!(out, "{:<15} no samples", "Schedule error");
        }
        Some(s) => {
            let _ = writeln!(
                out,
                "{:<15} n={}  early {}  min {}  mean {}  max {}  |err| p50 {}  p99 {}  p99.9 {}",
                "Schedule error",
                s.count,
                s.early,
                human_signed_ns(s.min_ns),
                human_mean(s.mean_ns),
                human_signed_ns(s.max_ns),
                human_ns(s.abs_ns.p50),
                human_ns(s.abs_ns.p99),
                human_ns(s.abs_ns.p999),
            );
        }
    }
}

fn environment_line(e: &Environment) -> String {
    let mut parts = vec![format!("mioperf {}", e.version)];
    if let Some(k) = &e.kernel {
        parts.push(format!("{} {k}", e.os));
    }
    if let Some(c) = e.cpus {
        parts.push(format!("{c} CPUs"));
    }
    if let Some(a) = &e.allowed_cpus {
        parts.push(format!("affinity {a}"));
    }
    if let Some(p) = e.pinned_cpu {
        parts.push(format!("pinned to CPU {p}"));
    }
    if let Some(s) = e.seed {
        parts.push(format!("seed {s}"));
    }
    parts.join(", ")
}

/// Before the run: the environment line and the column heads, ending in a
/// newline. `retransmits`: whether the run counts them (a `Retr` column).
pub fn table_head(environment: &Environment, retransmits: bool) -> String {
    format!(
        "{}\n{}\n",
        environment_line(environment),
        header(retransmits)
    )
}

/// One interval's row, ending in a newline (`retransmits` as for
/// [`table_head`]).
pub fn table_row(interval: &IntervalReport, retransmits: bool) -> String {
    let f = &interval.figures;
    let retr = retr_cell(retransmits, interval.retransmits);
    format!("{}\n", row(&span(f), f, retr))
}

fn cpu_share(s: &CpuShare) -> String {
    format!(
        "{:.1}% (user {:.2} s, system {:.2} s)",
        super::finite_or_zero(s.total_percent),
        super::finite_or_zero(s.user_seconds),
        super::finite_or_zero(s.system_seconds),
    )
}

fn cpu_line(out: &mut String, cpu: &CpuUsage) {
    let _ = write!(out, "{:<15} generator {}", "CPU", cpu_share(&cpu.generator));
    if let Some(server) = &cpu.server {
        let _ = write!(out, "  server {}", cpu_share(server));
    }
    let _ = writeln!(out, "  of {:.2} s", super::finite_or_zero(cpu.seconds));
}

/// After the run: the separator, the totals row and the summary lines,
/// ending in a newline (`retransmits` as for [`table_head`]).
pub fn table_foot(summary: &Summary, retransmits: bool) -> String {
    let mut out = String::new();
    let s = &summary.figures;
    out.push_str(&"- ".repeat(header(retransmits).chars().count() / 2));
    out.push('\n');
    out.push_str(&row(
        &span(s),
        s,
        retr_cell(retransmits, summary.retransmits),
    ));
    out.push_str("  total\n");
    if s.transfers > 0 {
        let _ = writeln!(
            out,
            "{:<15} {} transfers, {}, {}",
            "Transfers",
            s.transfers,
            format_bytes(s.transfer_bytes),
            human_rate(s.transfers_per_sec),
        );
    }
    distribution_line(&mut out, "Latency", s.latency_ns.as_ref());
    if s.transfers > 0 || s.transfer_ns.is_some() {
        distribution_line(&mut out, "Transfer time", s.transfer_ns.as_ref());
    }
    if s.schedule_error.is_some() || s.lost > 0 || s.reordered > 0 || s.duplicates > 0 {
        schedule_line(&mut out, s.schedule_error.as_ref());
        let _ = writeln!(
            out,
            "{:<15} lost {}  reordered {}  duplicates {}",
            "Stream", s.lost, s.reordered, s.duplicates
        );
    }
    if let Some(t) = &summary.tcp {
        let _ = writeln!(
            out,
            "{:<15} {} connections: {} retransmits ({} fast, {} timeouts), \
             {} out of order, {} duplicates in, srtt {}",
            "TCP (client)",
            t.connections,
            t.retransmits,
            t.fast_retransmits,
            t.rto_expiries,
            t.out_of_order,
            t.duplicate_segments,
            human_mean(t.srtt_us_mean * 1e3),
        );
    }
    if let Some(cpu) = &summary.cpu {
        cpu_line(&mut out, cpu);
    }
    out
}

/// The document as a readable terminal table, ending in a newline: what a
/// live run prints, all at once.
pub fn render_table(doc: &Document) -> String {
    let retransmits = doc.summary.retransmits.is_some();
    let mut out = table_head(&doc.environment, retransmits);
    for i in &doc.intervals {
        out.push_str(&table_row(i, retransmits));
    }
    out.push_str(&table_foot(&doc.summary, retransmits));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retr_column_and_cpu_line_when_the_run_has_them() {
        use crate::bench::report::{CpuSpent, Recorder};
        use crate::time::{Duration, Instant};
        let ms = Instant::from_millis;
        let mut r = Recorder::new(ms(0), Some(Duration::from_secs(1))).with_retransmits();
        r.add_transfer(ms(500), 1_000, Duration::from_millis(400));
        r.add_retransmits(ms(500), 12);
        let interval = r.close_interval(ms(1_000));
        let mut summary = r.finish(ms(1_000));
        let spent = |user_ns, system_ns| CpuSpent { user_ns, system_ns };
        summary.cpu = Some(CpuUsage::new(
            1_000_000_000,
            spent(300_000_000, 200_000_000),
            Some(spent(100_000_000, 0)),
        ));
        let head = table_head(&Environment::new(None, None), true);
        assert!(head.lines().nth(1).unwrap().ends_with("Retr"), "{head}");
        let row = table_row(&interval, true);
        assert!(row.trim_end().ends_with("12"), "{row}");
        assert!(row.ends_with('\n') && row.lines().count() == 1, "{row}");
        let foot = table_foot(&summary, true);
        assert!(foot.contains("12  total"), "{foot}");
        assert!(
            foot.contains("CPU             generator 50.0% (user 0.30 s, system 0.20 s)  server 10.0% (user 0.10 s, system 0.00 s)  of 1.00 s"),
            "{foot}"
        );
        // Without them: no column, no line.
        let mut plain = summary.clone();
        plain.cpu = None;
        plain.retransmits = None;
        assert!(!table_head(&Environment::new(None, None), false).contains("Retr"));
        let foot = table_foot(&plain, false);
        assert!(
            !foot.contains("CPU") && !foot.contains("12  total"),
            "{foot}"
        );
    }

    #[test]
    fn units_are_humanised() {
        assert_eq!(human_rate(12_345.0), "12.3 k/s");
        assert_eq!(human_rate(5.0), "5.00/s");
        assert_eq!(human_ns(999), "999 ns");
        assert_eq!(human_ns(120_000), "120 µs");
        assert_eq!(human_ns(1_500_000), "1.50 ms");
        assert_eq!(human_ns(2_000_000_000), "2.00 s");
        assert_eq!(human_signed_ns(-300), "-300 ns");
        assert_eq!(human_mean(-1_500.0), "-1.50 µs");
    }
}
