//! `hpcmap report`: the scaling tables (and charts) of the records that
//! `--json` appended, or a `--timeline` drawn again. Reading them needs no
//! MPI.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::plot;
use super::record::parse_records;
use super::scaling::{Report, reduce};
use super::timeline;

/// Prints the scaling tables of the records in `files` to stdout and, with
/// `plot`, draws the charts into that file (`.png` or `.svg`).
///
/// # Errors
/// When a file cannot be read, when no file holds a usable record, when the
/// plot's extension is neither `.png` nor `.svg`, or when drawing fails.
/// Lines that are not records only cost a warning on stderr.
pub fn run(files: &[PathBuf], plot: Option<&Path>, markdown: bool) -> anyhow::Result<()> {
    // Checked first, so a typo in the plot name does not wait for the tables.
    let format = plot.map(plot::Format::of).transpose()?;
    if files.is_empty() {
        bail!("no record files given");
    }
    // A timeline (from --timeline FILE.json) is drawn again, not tabulated.
    if files.iter().any(|f| timeline::is_timeline(f)) {
        let [file] = files else {
            bail!("give one timeline at a time (with --plot)");
        };
        let Some(image) = plot else {
            bail!(
                "{} is a timeline: add --plot FILE.png or FILE.svg to draw it",
                file.display()
            );
        };
        timeline::redraw(file, image)?;
        eprintln!("hpcmap: timeline drawn into {}", image.display());
        return Ok(());
    }
    let mut records = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read run records from {}", file.display()))?;
        let (parsed, warnings) = parse_records(&text, &file.display().to_string());
        for w in warnings {
            eprintln!("hpcmap: warning: {w}");
        }
        records.extend(parsed);
    }
    let partial = records.iter().filter(|r| r.part.is_some()).count();
    if partial > 0 {
        // A part's wall time covers a slice of the input: it cannot be set
        // against whole runs of the same problem.
        eprintln!(
            "hpcmap: warning: left out {partial} partial run(s) (--part): \
             each timed only a slice of its input"
        );
        records.retain(|r| r.part.is_none());
    }
    if records.is_empty() {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        bail!("no usable run records in {}", names.join(", "));
    }
    let report = Report::new(reduce(&records));
    print!("{}", report.render(markdown));
    if let (Some(path), Some(format)) = (plot, format) {
        plot::draw(&report, path, format)
            .with_context(|| format!("cannot draw the charts into {}", path.display()))?;
        eprintln!("hpcmap: charts written to {}", path.display());
    }
    Ok(())
}
