//! Rendering for people: units, tables, and the run report (`text`).
//!
//! One [`Table`] type serves the scaling report and the benchmarks, as
//! aligned text or GitHub markdown.

pub mod text;

use std::fmt::Write;

/// Bytes with a decimal unit, e.g. `80.0 MB`.
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// Seconds with a readable unit, e.g. `12.3 ms`.
pub fn human_seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} us", s * 1e6)
    }
}

/// A titled table of preformatted cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Printed above the table.
    pub title: String,
    /// Column names.
    pub headers: Vec<&'static str>,
    /// Cells, one vector per row.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Aligned plain text: numbers read best right-aligned, so every column is.
    pub fn text(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.headers[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let padded: Vec<String> = cells
                .zip(&widths)
                .map(|(c, &w)| format!("{c:>w$}"))
                .collect();
            padded.join("  ")
        };
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title);
        let _ = writeln!(out, "{}", line(&mut self.headers.iter().copied()));
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        let _ = writeln!(out, "{}", rule.join("  "));
        for row in &self.rows {
            let _ = writeln!(out, "{}", line(&mut row.iter().map(String::as_str)));
        }
        out
    }

    /// A GitHub markdown table under a `###` heading, right-aligned.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n", self.title);
        let _ = writeln!(out, "| {} |", self.headers.join(" | "));
        let _ = writeln!(out, "|{}", "---:|".repeat(self.headers.len()));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(80_000_000), "80.0 MB");
        assert_eq!(human_seconds(0.0123), "12.300 ms");
        assert_eq!(human_seconds(2.5), "2.500 s");
        assert_eq!(human_seconds(0.0000015), "1.5 us");
    }

    #[test]
    fn tables_align_in_text_and_markdown() {
        let t = Table {
            title: "T".into(),
            headers: vec!["a", "long name"],
            rows: vec![vec!["1".into(), "2".into()], vec!["333".into(), "4".into()]],
        };
        let text = t.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "  a  long name");
        assert_eq!(lines[2].len(), lines[1].len());
        assert_eq!(lines[4], "333          4");
        assert!(t.markdown().contains("| a | long name |\n|---:|---:|"));
    }
}
