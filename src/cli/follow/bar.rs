//! The progress bar: indicatif, drawn on standard error through a terminal
//! handle of our own. Standard error may be a pipe to `mpirun` that ends on
//! a person's terminal; indicatif would hide itself on a pipe, so the
//! handle writes the escape sequences regardless and takes its width from
//! the terminal at the end of the pipe.

use std::io::{self, Write};
use std::os::fd::AsRawFd;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use crate::progress::Snapshot;

/// The bar on the root's standard error.
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar drawn at most 4 times a second (into nothing when `hidden`).
    pub fn new(hidden: bool) -> Bar {
        let term = Stderr {
            hidden,
            ..Stderr::new()
        };
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(term), 4);
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {wide_msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        Bar(bar)
    }

    /// Shows `s`.
    pub fn show(&self, s: &Snapshot) {
        // Static: the root's share is the only measure until the end.
        let (pos, len) = match s.root_share {
            Some((done, of)) if s.done == s.resumed => (done, of),
            _ => (s.done, s.total),
        };
        self.0.set_length(len);
        self.0.set_position(pos);
        self.0.set_message(super::summary(s));
    }

    /// Removes the bar, leaving the cursor where it was before it.
    pub fn clear(self) {
        self.0.finish_and_clear();
    }
}

/// Standard error as a terminal of `columns` width.
#[derive(Debug)]
struct Stderr {
    columns: u16,
    /// Writes nothing.
    hidden: bool,
}

impl Stderr {
    fn new() -> Stderr {
        let columns = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .or_else(|| width(&io::stderr()))
            .or_else(|| super::launcher_terminal().and_then(|t| width(&t)))
            .unwrap_or(80);
        Stderr {
            columns,
            hidden: false,
        }
    }

    fn put(&self, s: &str) -> io::Result<()> {
        if self.hidden {
            return Ok(());
        }
        let mut err = io::stderr().lock();
        err.write_all(s.as_bytes())?;
        err.flush()
    }
}

/// The width of the terminal `fd` is, if it is one.
fn width(fd: &impl AsRawFd) -> Option<u16> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `size`, which lives on
    // this frame; a descriptor that is not a terminal just fails.
    #[allow(unsafe_code)]
    let ok = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &raw mut size) } == 0;
    (ok && size.ws_col > 0).then_some(size.ws_col)
}

impl TermLike for Stderr {
    fn width(&self) -> u16 {
        self.columns
    }

    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}A"))
        }
    }

    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}B"))
        }
    }

    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}C"))
        }
    }

    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}D"))
        }
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.put(&format!("{s}\n"))
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.put(s)
    }

    fn clear_line(&self) -> io::Result<()> {
        self.put("\r\x1b[2K")
    }

    fn flush(&self) -> io::Result<()> {
        io::stderr().flush()
    }
}
