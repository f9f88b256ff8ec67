//! The progress bar: indicatif, drawn on standard error through a terminal
//! handle of our own. Standard error may be a pipe to `mpirun` that ends on
//! a person's terminal; indicatif would hide itself on a pipe, so the
//! handle writes the escape sequences regardless and asks the terminal at
//! the end of the pipe for its width at every redraw (it may be resized).
//!
//! The whole line is rendered here and handed to indicatif as one message,
//! so a redraw never shows the bar of one moment beside the text of
//! another. The root's own messages while the bar is up (warnings, logs)
//! go through [`above`], which lifts the bar, writes, and puts it back.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use crate::progress::Snapshot;

/// The bar being shown, for [`above`].
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Writes `text` to standard error, above the bar if one is shown.
pub fn above(text: &[u8]) {
    let shown = SHOWN.lock().ok().and_then(|b| b.clone());
    let write = || {
        let mut err = io::stderr().lock();
        let _ = err.write_all(text);
        let _ = err.flush();
    };
    match shown {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// The bar on the root's standard error.
pub struct Bar {
    bar: ProgressBar,
    term: Terminal,
}

impl Bar {
    /// A bar drawn at most 4 times a second (into nothing when `hidden`).
    pub fn new(hidden: bool) -> Bar {
        let term = Terminal::new(hidden);
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(term.clone()), 4);
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(ProgressStyle::with_template("{wide_msg}").expect("a valid template"));
        if !hidden && let Ok(mut shown) = SHOWN.lock() {
            *shown = Some(bar.clone());
        }
        Bar { bar, term }
    }

    /// Shows `s`.
    pub fn show(&self, s: &Snapshot) {
        // Static: the root's share is the only measure until the end.
        let (done, of) = match s.root_share {
            Some((done, of)) if s.done == s.resumed => (done, of),
            _ => (s.done, s.total),
        };
        let width = (usize::from(self.term.width()) / 5).clamp(6, 30);
        // Nothing to do counts as all done.
        let filled = (width as u64 * done.min(of))
            .checked_div(of)
            .map_or(width, |f| f as usize);
        let bar = format!(
            "[{}{}{}]",
            "=".repeat(filled.saturating_sub(1)),
            if filled > 0 { ">" } else { "" },
            " ".repeat(width - filled)
        );
        self.bar.set_message(format!("{bar} {}", super::summary(s)));
    }

    /// Removes the bar, leaving the cursor where it was before it.
    pub fn clear(self) {
        if let Ok(mut shown) = SHOWN.lock() {
            *shown = None;
        }
        self.bar.finish_and_clear();
    }
}

/// Standard error as a terminal, as wide as the terminal a person sees it on.
#[derive(Debug, Clone)]
struct Terminal {
    /// Where the width comes from: our standard error or the launcher's.
    size_of: Option<std::sync::Arc<File>>,
    /// Writes nothing.
    hidden: bool,
}

impl Terminal {
    fn new(hidden: bool) -> Terminal {
        let size_of = if width(&io::stderr().as_fd()).is_some() {
            None
        } else {
            super::launcher_terminal().map(std::sync::Arc::new)
        };
        Terminal { size_of, hidden }
    }

    /// Moves the cursor `n` places (none: nothing written) in the ANSI
    /// direction `code` (A up, B down, C right, D left).
    fn cursor(&self, n: usize, code: char) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}{code}"))
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

impl TermLike for Terminal {
    fn width(&self) -> u16 {
        let measured = match &self.size_of {
            Some(tty) => width(&tty.as_fd()),
            None => width(&io::stderr().as_fd()),
        };
        measured
            .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
            .unwrap_or(80)
    }

    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.cursor(n, 'A')
    }

    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.cursor(n, 'B')
    }

    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.cursor(n, 'C')
    }

    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.cursor(n, 'D')
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
