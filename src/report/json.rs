//! The `--json` record: one JSON object per line, appended per run.

use std::io::Write;

use super::RunRecord;

/// Writes `record` as one line of JSON followed by a newline.
///
/// # Errors
/// When writing fails.
pub fn write_line(record: &RunRecord, out: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, record)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes one per-item result as a JSON line `[index, result]` (`--results`).
///
/// # Errors
/// When serializing or writing fails.
pub fn write_item<U: serde::Serialize>(
    index: usize,
    result: &U,
    out: &mut impl Write,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &(index, result))?;
    out.write_all(b"\n")
}
