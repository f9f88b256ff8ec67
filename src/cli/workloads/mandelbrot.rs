//! `mandelbrot`: escape-time iteration counts of the Mandelbrot set, one row per item.
//!
//! An irregular workload: rows that cross the set iterate up to `max_iter`
//! times per pixel, rows far from it escape at once, so equal-sized blocks of
//! rows cost very different amounts.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Answer, Input, Workload};

/// The largest iteration count a `u16` pixel can hold.
pub const MAX_ITER: u32 = u16::MAX as u32;

/// An image of `width` x `height` pixels over the view [-2.25, 0.75] x [-1.5, 1.5].
#[derive(Clone, Debug)]
pub struct Mandelbrot {
    /// Pixels per row.
    pub width: u32,
    /// Rows (the items).
    pub height: u32,
    /// Iterations before a point counts as inside the set.
    pub max_iter: u32,
    /// Optional image file: `.png` or `.pgm`.
    pub output: Option<PathBuf>,
}

impl Mandelbrot {
    fn pixel(&self, x: u32, y: u32) -> u16 {
        let cr = -2.25 + 3.0 * (x as f64 + 0.5) / self.width as f64;
        let ci = -1.5 + 3.0 * (y as f64 + 0.5) / self.height as f64;
        let (mut zr, mut zi) = (0.0f64, 0.0f64);
        let mut n = 0;
        while n < self.max_iter && zr * zr + zi * zi <= 4.0 {
            let t = zr * zr - zi * zi + cr;
            zi = 2.0 * zr * zi + ci;
            zr = t;
            n += 1;
        }
        n as u16
    }

    /// Grey level of an iteration count: black inside, brighter the slower it escaped.
    fn shade(&self, n: u16) -> u8 {
        if u32::from(n) >= self.max_iter {
            0
        } else {
            (255.0 * (f64::from(n) / f64::from(self.max_iter)).sqrt()) as u8
        }
    }
}

/// The rows absorbed so far, by row index, and running totals.
#[derive(Debug, Default)]
pub struct Image {
    rows: Vec<Option<Vec<u16>>>,
    inside: u64,
    iterations: u64,
    pixels: u64,
}

impl Workload for Mandelbrot {
    type Item = u32;
    type Output = Vec<u16>;
    type Summary = Image;

    fn name(&self) -> &'static str {
        "mandelbrot"
    }

    fn input(&self) -> anyhow::Result<Input<'_, u32>> {
        Ok(Input::generated(self.height as usize, |y| y as u32))
    }

    fn map(&self, y: u32) -> Vec<u16> {
        (0..self.width).map(|x| self.pixel(x, y)).collect()
    }

    fn absorb(&self, image: &mut Image, index: usize, row: Vec<u16>) {
        image.inside += row
            .iter()
            .filter(|&&n| u32::from(n) >= self.max_iter)
            .count() as u64;
        image.iterations += row.iter().map(|&n| u64::from(n)).sum::<u64>();
        image.pixels += row.len() as u64;
        // Rows can arrive in any order (unordered runs): place them by index.
        if image.rows.len() <= index {
            image.rows.resize(index + 1, None);
        }
        image.rows[index] = Some(row);
    }

    fn answer(&self, image: &Image) -> Answer {
        let (inside, iterations) = (image.inside, image.iterations);
        Answer {
            text: format!(
                "{inside} of {} pixels inside, {iterations} iterations",
                image.pixels
            ),
            value: serde_json::json!({ "inside": inside, "iterations": iterations }),
        }
    }

    fn output_path(&self) -> Option<&Path> {
        self.output.as_deref()
    }

    fn write_output(&self, image: &Image, out: &mut dyn Write) -> std::io::Result<()> {
        let missing = image.rows.iter().filter(|r| r.is_none()).count()
            + (self.height as usize).saturating_sub(image.rows.len());
        if missing > 0 {
            return Err(std::io::Error::other(format!(
                "{missing} of {} rows are missing: not writing a partial image",
                self.height
            )));
        }
        let pixels: Vec<u8> = image
            .rows
            .iter()
            .flatten()
            .flatten()
            .map(|&n| self.shade(n))
            .collect();
        let is_png = self
            .output
            .as_ref()
            .and_then(|p| p.extension())
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if is_png {
            let mut encoder = png::Encoder::new(out, self.width, self.height);
            encoder.set_color(png::ColorType::Grayscale);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
            writer
                .write_image_data(&pixels)
                .map_err(std::io::Error::other)?;
            writer.finish().map_err(std::io::Error::other)
        } else {
            write!(out, "P5\n{} {}\n255\n", self.width, self.height)?;
            out.write_all(&pixels)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Mandelbrot {
        Mandelbrot {
            width: 8,
            height: 8,
            max_iter: 50,
            output: None,
        }
    }

    #[test]
    fn known_points() {
        let m = tiny();
        // Pixel (5, 3) or (5, 4) is near c = -0.19 -+ 0.19i: inside the main cardioid.
        assert_eq!(u32::from(m.pixel(5, 4)), m.max_iter);
        // Pixel (0, 0) is near c = -2.06 - 1.31i: escapes after one iteration.
        assert_eq!(m.pixel(0, 0), 1);
    }

    #[test]
    fn image_is_symmetric_about_the_real_axis() {
        let m = tiny();
        let rows: Vec<Vec<u16>> = (0..m.height).map(|y| m.map(y)).collect();
        for y in 0..m.height as usize {
            assert_eq!(rows[y], rows[m.height as usize - 1 - y]);
        }
    }

    #[test]
    fn a_partial_image_is_refused() {
        let m = tiny();
        let image = super::super::fold(&m, (0..m.height - 1).map(|y| m.map(y)));
        assert!(m.write_output(&image, &mut Vec::new()).is_err());
    }

    #[test]
    fn pgm_has_header_and_one_byte_per_pixel() {
        let m = tiny();
        let image = super::super::fold(&m, (0..m.height).map(|y| m.map(y)));
        let mut out = Vec::new();
        m.write_output(&image, &mut out).unwrap();
        assert!(out.starts_with(b"P5\n8 8\n255\n"));
        assert_eq!(out.len(), 11 + 64);
    }
}
