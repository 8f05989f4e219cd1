//! SVG plots of a [`Document`]: two stacked charts, the throughput time
//! series over the latency (or schedule-error, or transfer-time) histogram.
//!
//! Drawn with `plotters`' SVG backend only (no bitmap, no `ttf`): text is
//! written as `<text>` elements and sized by plotters' built-in naive
//! estimator, so no system font library is linked or read. The viewer's
//! font draws the labels.
//!
//! Pure except [`write_svg`], which writes the file. Every coordinate given
//! to plotters is finite and every axis range non-empty, so nothing in here
//! divides by zero or panics on an empty run: an empty chart says
//! "no samples".
//!
//! Readability rules: the log axis is ticked at 1-2-5 steps of each decade
//! (thinned to 1s when the decades would crowd them) and labelled with at
//! most three significant digits, never an `f64`'s binary expansion
//! (`0.30000000000000004`); the histogram carries its p50 and p99 as
//! labelled vertical lines; the title names the run's parameters, read from
//! the document's `inputs`.

use std::io;

use plotters::prelude::*;

use super::{Bucket, Distribution, Document, Figures, finite_or_zero};

/// Width and height of the whole picture, pixels.
const SIZE: (u32, u32) = (900, 720);

/// Most log-axis ticks drawn with all of 1, 2 and 5 per decade; beyond it
/// only the decades are ticked. At [`SIZE`]'s width a decade then still
/// has ~90 px, so "500" and "1000" never touch.
const MAX_TICKS: usize = 9;

/// The p50 line's colour: plotters' `GREEN` is too light to read as text.
const DARK_GREEN: RGBColor = RGBColor(0, 130, 0);

/// Height of the run's title band at the top, pixels.
const TITLE_HEIGHT: u32 = 36;

/// What the top chart shows.
struct Series {
    title: &'static str,
    unit: &'static str,
    /// `(seconds, value)` steps: each interval as a flat segment.
    points: Vec<(f64, f64)>,
}

/// Requests/s when the run counted requests, else bits/s (scaled to the
/// largest value's unit).
fn throughput(doc: &Document) -> Series {
    let spans: Vec<&Figures> = if doc.intervals.is_empty() {
        vec![&doc.summary.figures]
    } else {
        doc.intervals.iter().map(|i| &i.figures).collect()
    };
    let by_requests = doc.summary.figures.requests > 0;
    let raw = |f: &Figures| {
        if by_requests {
            f.requests_per_sec
        } else {
            f.bits_per_sec
        }
    };
    let peak = spans.iter().map(|f| raw(f)).fold(0.0, f64::max);
    let (title, unit, scale) = if by_requests {
        ("Requests per second", "requests/s", 1.0)
    } else if peak >= 1e9 {
        ("Throughput", "Gbit/s", 1e9)
    } else if peak >= 1e6 {
        ("Throughput", "Mbit/s", 1e6)
    } else if peak >= 1e3 {
        ("Throughput", "Kbit/s", 1e3)
    } else {
        ("Throughput", "bit/s", 1.0)
    };
    let points = spans
        .iter()
        .flat_map(|f| {
            let v = finite_or_zero(raw(f) / scale);
            [(f.start_s, v), (f.end_s, v)]
        })
        .collect();
    Series {
        title,
        unit,
        points,
    }
}

/// The histogram to draw: latency, else schedule error, else transfer time;
/// with the distribution its percentiles come from.
fn histogram(doc: &Document) -> (&'static str, &[Bucket], Option<&Distribution>) {
    let h = &doc.summary.histograms;
    let f = &doc.summary.figures;
    if !h.latency_ns.is_empty() {
        ("Request latency", &h.latency_ns, f.latency_ns.as_ref())
    } else if !h.schedule_error_abs_ns.is_empty() {
        (
            "Schedule error |arrival - schedule|",
            &h.schedule_error_abs_ns,
            f.schedule_error.as_ref().map(|s| &s.abs_ns),
        )
    } else if !h.transfer_ns.is_empty() {
        ("Transfer time", &h.transfer_ns, f.transfer_ns.as_ref())
    } else {
        ("Latency", &[], None)
    }
}

/// A number with at most three significant digits and no trailing zeros:
/// `0.3`, `2`, `150`, `1000` (integers are kept whole).
#[expect(
    clippy::cast_possible_truncation,
    reason = "log10 of a finite positive f64 lies within ±324"
)]
fn tidy(v: f64) -> String {
    let v = finite_or_zero(v);
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor();
    if magnitude >= 2.0 {
        return format!("{v:.0}");
    }
    // Digits after the point for three significant ones: 2 - magnitude.
    let decimals = usize::try_from((2.0 - magnitude) as i64).unwrap_or(0);
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A duration in its own unit: `9.06 µs`, `1.12 ms` (each percentile
/// label reads on its own, whatever the axis's unit).
#[allow(
    clippy::cast_precision_loss,
    reason = "a label, three significant digits"
)]
fn tidy_ns(ns: u64) -> String {
    let (unit, per) = time_unit(ns);
    format!("{} {unit}", tidy(ns as f64 / per))
}

/// Tick values for a log axis over `lo..hi` (both > 0): 1, 2 and 5 times
/// each power of ten inside it, or only the powers when that would be
/// more than [`MAX_TICKS`]. Always at least the two ends when no step falls
/// inside (a range narrower than 1-2-5).
#[expect(
    clippy::cast_possible_truncation,
    reason = "log10 of a finite positive f64 lies within ±324"
)]
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let steps = |mantissas: &[f64]| -> Vec<f64> {
        (first..=last)
            .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
            // A relative slack so 0.1 * 10 == 1 style rounding keeps ends.
            .filter(|v| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9))
            .collect()
    };
    let all = steps(&[1.0, 2.0, 5.0]);
    let ticks = if all.len() > MAX_TICKS {
        steps(&[1.0])
    } else {
        all
    };
    if ticks.len() >= 2 {
        ticks
    } else {
        vec![lo, hi]
    }
}

/// The run's parameters from the document's `inputs`, one line:
/// `bench hello rr · TCP · -P 4 · -l 64 B · 10 s · server 127.0.0.1:1`.
fn run_title(inputs: &serde_json::Value) -> String {
    let s = |k: &str| inputs.get(k).and_then(serde_json::Value::as_str);
    let n = |k: &str| inputs.get(k).and_then(serde_json::Value::as_f64);
    let mut head = String::from("mioperf bench");
    for k in ["protocol", "mode"] {
        if let Some(v) = s(k) {
            head.push(' ');
            head.push_str(v);
        }
    }
    let mut parts = vec![head];
    if let Some(v) = s("transport") {
        parts.push(v.to_uppercase());
    }
    if let Some(v) = n("parallel") {
        parts.push(format!("-P {}", tidy(v)));
    }
    if let Some(v) = n("length").filter(|v| *v > 0.0) {
        parts.push(format!("-l {} B", tidy(v)));
    }
    if let Some(v) = n("bitrate") {
        let (prefix, per) = [("G", 1e9), ("M", 1e6), ("K", 1e3)]
            .into_iter()
            .find(|(_, per)| v >= *per)
            .unwrap_or(("", 1.0));
        parts.push(format!("-b {} {prefix}bit/s", tidy(v / per)));
    }
    if let Some(v) = n("time_s") {
        parts.push(format!("-t {} s", tidy(v)));
    }
    if let Some(v) = n("count") {
        parts.push(format!("-n {}", tidy(v)));
    }
    if let Some(v) = s("name") {
        parts.push(format!("file {v}"));
    }
    if let Some(v) = s("cc") {
        parts.push(format!("cc {v}"));
    }
    if let Some(v) = s("server") {
        let local = inputs
            .get("in_process_server")
            .and_then(serde_json::Value::as_bool)
            == Some(true);
        parts.push(format!(
            "server {v}{}",
            if local { " (in-process)" } else { "" }
        ));
    }
    if let Some(v) = n("seed") {
        parts.push(format!("seed {}", tidy(v)));
    }
    parts.join(" · ")
}

/// The unit for a largest value in ns, and its size in ns.
fn time_unit(max_ns: u64) -> (&'static str, f64) {
    if max_ns >= 1_000_000_000 {
        ("s", 1e9)
    } else if max_ns >= 1_000_000 {
        ("ms", 1e6)
    } else if max_ns >= 1_000 {
        ("µs", 1e3)
    } else {
        ("ns", 1.0)
    }
}

/// A non-empty, finite `lo..hi`.
fn range(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let lo = finite_or_zero(lo);
    let hi = finite_or_zero(hi);
    if hi > lo { lo..hi } else { lo..lo + 1.0 }
}

/// The histogram's bars `(lo, hi, count)` in units of `per` ns, and the
/// log axis's non-empty positive range.
#[allow(
    clippy::cast_precision_loss,
    reason = "plot coordinates are floating point"
)]
fn bars(buckets: &[Bucket], per: f64) -> (Vec<(f64, f64, f64)>, std::ops::Range<f64>) {
    // Log x: a bucket starting at 0 is drawn from half its end.
    let bars: Vec<(f64, f64, f64)> = buckets
        .iter()
        .map(|b| {
            let hi = b.hi_ns.max(1) as f64 / per;
            let lo = if b.lo_ns == 0 {
                hi / 2.0
            } else {
                b.lo_ns as f64 / per
            };
            (lo, hi, b.count as f64)
        })
        .collect();
    let x_lo = bars.first().map_or(1.0, |b| b.0);
    let x_hi = bars.last().map_or(10.0, |b| b.1);
    let x_range = if x_hi > x_lo && x_lo > 0.0 {
        x_lo..x_hi
    } else {
        let lo = if x_lo > 0.0 { x_lo } else { 1.0 };
        lo..lo * 10.0
    };
    (bars, x_range)
}

fn other<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(format!("cannot draw the plot: {e}"))
}

/// The plots as one SVG document (a string starting with `<svg`).
///
/// # Errors
/// If plotters reports a drawing error (it should not, for finite input).
#[allow(
    clippy::cast_precision_loss,
    reason = "plot coordinates are floating point"
)]
pub fn render_svg(doc: &Document) -> io::Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(other)?;
        let (band, plots) = root.split_vertically(TITLE_HEIGHT);
        band.draw(&Text::new(
            run_title(&doc.inputs),
            (12, 10),
            ("sans-serif", 16).into_font(),
        ))
        .map_err(other)?;
        let (top, bottom) = plots.split_vertically((SIZE.1 - TITLE_HEIGHT) / 2);

        let series = throughput(doc);
        let x_max = series.points.iter().map(|p| p.0).fold(0.0, f64::max);
        let y_max = series.points.iter().map(|p| p.1).fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(&top)
            .caption(series.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(range(0.0, x_max), range(0.0, y_max * 1.1))
            .map_err(other)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|v| tidy(*v))
            .y_label_formatter(&|v| tidy(*v))
            .x_desc("time (s)")
            .y_desc(series.unit)
            .draw()
            .map_err(other)?;
        chart
            .draw_series(LineSeries::new(series.points, BLUE.stroke_width(2)))
            .map_err(other)?;

        let (title, buckets, dist) = histogram(doc);
        let max_ns = buckets.last().map_or(1, |b| b.hi_ns);
        // The unit of the p99, not of the slowest outlier: the labels that
        // matter then read "25.8 µs", not "0.0258 ms".
        let (unit, per) = time_unit(dist.map_or(max_ns, |d| d.p99.max(1)));
        let (bars, x_range) = bars(buckets, per);
        let count_max = bars.iter().map(|b| b.2).fold(0.0, f64::max);
        let ticks = log_ticks(x_range.start, x_range.end);
        let caption = if buckets.is_empty() {
            format!("{title}: no samples")
        } else {
            format!("{title} histogram")
        };
        let mut chart = ChartBuilder::on(&bottom)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                x_range.clone().log_scale().with_key_points(ticks),
                range(0.0, count_max * 1.25),
            )
            .map_err(other)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|v| tidy(*v))
            .y_label_formatter(&|v| tidy(*v))
            .x_desc(format!("{} ({unit}, log scale)", title.to_lowercase()))
            .y_desc("samples")
            .draw()
            .map_err(other)?;
        chart
            .draw_series(bars.iter().map(|&(lo, hi, count)| {
                Rectangle::new([(lo, 0.0), (hi, count)], BLUE.mix(0.6).filled())
            }))
            .map_err(other)?;
        if let Some(d) = dist.filter(|_| !buckets.is_empty()) {
            // p99 above p50 so the two labels never share a row.
            for (name, ns, row, colour) in [
                ("p50", d.p50, 1.18, &DARK_GREEN),
                ("p99", d.p99, 1.08, &RED),
            ] {
                let x = (ns as f64 / per).clamp(x_range.start, x_range.end);
                let top = count_max.max(1.0) * row;
                chart
                    .draw_series(LineSeries::new(
                        [(x, 0.0), (x, top)],
                        colour.stroke_width(2),
                    ))
                    .map_err(other)?;
                chart
                    .draw_series(std::iter::once(
                        // Four pixels right of the line, not on it.
                        EmptyElement::at((x, top))
                            + Text::new(
                                format!("{name} {}", tidy_ns(ns)),
                                (4, 0),
                                ("sans-serif", 14).into_font().color(colour),
                            ),
                    ))
                    .map_err(other)?;
            }
        }
        root.present().map_err(other)?;
    }
    Ok(buf)
}

/// Writes [`render_svg`] to `path`.
///
/// # Errors
/// When drawing fails or the file can't be written.
pub fn write_svg(doc: &Document, path: &std::path::Path) -> io::Result<()> {
    std::fs::write(path, render_svg(doc)?)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{empty_document, fixed_document};
    use super::super::{Environment, Recorder};
    use super::*;
    use crate::time::{Duration, Instant};

    fn well_formed(svg: &str) {
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn plots_throughput_and_latency() {
        let svg = render_svg(&fixed_document()).unwrap();
        well_formed(&svg);
        assert!(svg.contains("<polyline"), "no line series");
        assert!(svg.matches("<rect").count() > 3, "no histogram bars");
        assert!(svg.matches("<text").count() > 10, "no labels");
        for label in [
            "Requests per second",
            "time (s)",
            "requests/s",
            "Request latency histogram",
            "request latency (µs, log scale)",
            "samples",
        ] {
            assert!(svg.contains(label), "missing {label}");
        }
    }

    #[test]
    fn plots_bits_and_schedule_error_for_a_stream() {
        let ms = Instant::from_millis;
        let mut r = Recorder::new(ms(0), Some(Duration::from_secs(1)));
        let mut intervals = Vec::new();
        for sec in 0..2u64 {
            for i in 0..50i64 {
                r.add_bytes(ms(sec * 1_000), 250_000);
                r.add_schedule_error(ms(sec * 1_000), i * 1_000 - 10_000);
            }
            intervals.push(r.close_interval(ms((sec + 1) * 1_000)));
        }
        let summary = r.finish(ms(2_000));
        let doc = Document::new(
            serde_json::Value::Null,
            Environment::new(None, None),
            intervals,
            summary,
        );
        let svg = render_svg(&doc).unwrap();
        well_formed(&svg);
        assert!(svg.contains("Mbit/s") && svg.contains("Throughput"));
        assert!(svg.contains("Schedule error"));
    }

    #[test]
    fn empty_run_still_draws() {
        let svg = render_svg(&empty_document()).unwrap();
        well_formed(&svg);
        assert!(svg.contains("no samples"));
        // One interval, one value: still a visible segment.
        let mut r = Recorder::new(Instant::ZERO, None);
        r.add_request(Instant::from_millis(5), Duration::from_nanos(42));
        let summary = r.finish(Instant::from_millis(10));
        let doc = Document::new(
            serde_json::Value::Null,
            Environment::new(None, None),
            Vec::new(),
            summary,
        );
        well_formed(&render_svg(&doc).unwrap());
    }

    /// The text of every `<text>` element (plotters may break the tag
    /// over lines).
    pub(crate) fn labels(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let t = &t[t.find('>')? + 1..];
                Some(t[..t.find("</text>")?].trim().to_owned())
            })
            .collect()
    }

    /// The longest run of digits in a label (a float's binary expansion
    /// shows as 17 of them).
    fn longest_digits(label: &str) -> usize {
        label
            .split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn tidy_numbers() {
        assert_eq!(tidy(0.1 + 0.2), "0.3");
        assert_eq!(tidy(0.300_000_000_000_000_04), "0.3");
        assert_eq!(tidy(2.0), "2");
        assert_eq!(tidy(25.33), "25.3");
        assert_eq!(tidy(0.0258), "0.0258");
        assert_eq!(tidy(1000.0), "1000");
        assert_eq!(tidy(123_456.7), "123457");
        assert_eq!(tidy(0.0), "0");
        assert_eq!(tidy(f64::NAN), "0");
        assert_eq!(tidy_ns(9_056), "9.06 µs");
        assert_eq!(tidy_ns(1_120_000), "1.12 ms");
    }

    #[test]
    fn log_ticks_are_1_2_5_and_thinned() {
        let t: Vec<String> = log_ticks(0.015, 2.5).into_iter().map(tidy).collect();
        assert_eq!(t, ["0.02", "0.05", "0.1", "0.2", "0.5", "1", "2"]);
        // Six decades: 1-2-5 would be 18 ticks, crowded; only the decades.
        let t: Vec<String> = log_ticks(0.5, 200_000.0).into_iter().map(tidy).collect();
        assert_eq!(t, ["1", "10", "100", "1000", "10000", "100000"]);
        // Narrower than one step: the ends.
        assert_eq!(log_ticks(3.0, 4.0), [3.0, 4.0]);
        assert!(log_ticks(0.0, 1.0).is_empty());
    }

    #[test]
    fn title_names_the_run() {
        let t = run_title(&serde_json::json!({
            "protocol": "hello", "mode": "rr", "transport": "udp", "parallel": 4,
            "time_s": null, "count": 2000, "length": 0, "bitrate": 1.5e9,
            "server": "127.0.0.1:9",
            "in_process_server": true, "seed": 1,
        }));
        assert_eq!(
            t,
            "mioperf bench hello rr · UDP · -P 4 · -b 1.5 Gbit/s · -n 2000 · server 127.0.0.1:9 (in-process) · seed 1"
        );
    }

    #[test]
    fn histogram_marks_percentiles_and_labels_stay_short() {
        let svg = render_svg(&fixed_document()).unwrap();
        let labels = labels(&svg);
        assert!(labels.iter().any(|l| l.starts_with("p50 ")), "{labels:?}");
        assert!(labels.iter().any(|l| l.starts_with("p99 ")), "{labels:?}");
        assert!(
            labels
                .iter()
                .any(|l| l.starts_with("mioperf bench lab echo · -P 4")),
            "{labels:?}"
        );
        for l in &labels {
            assert!(longest_digits(l) <= 6, "long label {l:?}");
        }
    }

    #[test]
    fn writes_the_file() {
        let path =
            std::env::temp_dir().join(format!("mioperf-report-test-{}.svg", std::process::id()));
        write_svg(&fixed_document(), &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        well_formed(&text);
    }
}
