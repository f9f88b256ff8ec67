//! `tracing` to stderr, every line tagged with the MPI rank, filtered by `RUST_LOG`.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{self, Format, FormatEvent, FormatFields};
use tracing_subscriber::fmt::{FmtContext, time::Uptime};
use tracing_subscriber::registry::LookupSpan;

/// The default format behind a `[rank N]` prefix.
struct RankFormat {
    rank: usize,
    inner: Format<format::Full, Uptime>,
}

impl<S, N> FormatEvent<S, N> for RankFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "[rank {}] ", self.rank)?;
        self.inner.format_event(ctx, writer, event)
    }
}

/// One log event, written whole to standard error when dropped: above the
/// progress bar when one is shown.
struct AboveBar(Vec<u8>);

impl std::io::Write for AboveBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for AboveBar {
    fn drop(&mut self) {
        crate::cli::follow::above(&self.0);
    }
}

/// Starts logging for `rank`; the level comes from `RUST_LOG` (default: warn).
pub fn init(rank: usize) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let format = RankFormat {
        rank,
        inner: Format::default()
            .with_timer(Uptime::default())
            .with_target(false),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| AboveBar(Vec::new()))
        .event_format(format)
        .try_init();
}
