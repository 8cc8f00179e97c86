//! What a person or a cron mail sees: log lines (text or JSON) on stderr, progress while a
//! run goes on, and the summary at its end.

mod logging;
mod progress;
mod summary;

pub use logging::{init_logging, say};
pub use progress::{Progress, Reporter, report};
pub use summary::{Ending, Report, plural, print_summary, summary_lines};

/// Whether stderr gets colour: a terminal, and no `NO_COLOR` (https://no-color.org).
pub(crate) fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
