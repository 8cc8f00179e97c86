//! Log lines on stderr, text or JSON, written around the progress bar when there is one.
//!
//! Text on a terminal is for a person: no timestamps, and no `key=value` tail for the fields
//! that a row's messages already say in words (`line`, `region`, `image_id`, `status`,
//! `code`). Off a terminal (cron mail, journald, a file) text keeps its timestamps, and JSON
//! always carries timestamps and those fields, for a machine to filter on.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use indicatif::ProgressBar;
use tracing::Level;
use tracing::field::Field;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{Writer, debug_fn};
use tracing_subscriber::prelude::*;

use crate::cli::LogFormat;

/// The bar, when there is one: log lines are written around it.
pub(super) static BAR: OnceLock<ProgressBar> = OnceLock::new();

/// The module whose info lines are the plan (per bucket: to share, to cancel, already as
/// asked): the output of a dry run, so `-q` keeps them there.
const PLAN_TARGET: &str = "lighthouse_share::plan";

/// Sets up logging on stderr: `-q` warnings and errors only (and, in a dry run, the plan:
/// `plan_kept`), `-v` debug, `-vv` trace (for this program; other crates say only
/// warnings). Warnings and errors are written when they happen, whatever the level. `RUST_LOG`,
/// when set, replaces that choice with its own `target=level` list, as in other Rust programs.
pub fn init_logging(format: LogFormat, quiet: bool, verbose: u8, plan_kept: bool) {
    let level = match (quiet, verbose) {
        (true, _) => Level::WARN,
        (false, 0) => Level::INFO,
        (false, 1) => Level::DEBUG,
        _ => Level::TRACE,
    };
    let targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|value| value.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            let targets = Targets::new()
                .with_default(Level::WARN)
                .with_target("lighthouse_share", level);
            match quiet && plan_kept {
                true => targets.with_target(PLAN_TARGET, Level::INFO),
                false => targets,
            }
        });
    // A failed write to stderr (a full disk, a reader gone) is ignored, as `rg` and `fd` do:
    // the results file is what matters. The default would report it with `eprintln!`,
    // which panics on the same broken stderr.
    let layer = tracing_subscriber::fmt::layer()
        .log_internal_errors(false)
        .with_writer(BarAwareStderr)
        .with_ansi(super::colour());
    let _ = match format {
        LogFormat::Text if std::io::stderr().is_terminal() => tracing_subscriber::registry()
            .with(
                layer
                    .with_target(false)
                    .without_time()
                    .fmt_fields(debug_fn(text_field))
                    .with_filter(targets),
            )
            .try_init(),
        LogFormat::Text => tracing_subscriber::registry()
            .with(
                layer
                    .with_target(false)
                    .fmt_fields(debug_fn(text_field))
                    .with_filter(targets),
            )
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().flatten_event(true).with_filter(targets))
            .try_init(),
    };
}

/// Fields that messages say in words: in JSON they are fields, in text only words.
const SAID_IN_WORDS: [&str; 5] = ["line", "region", "image_id", "status", "code"];

/// One field of a text log line: the message as it is, the fields it says in words left out,
/// any other as `name=value`.
fn text_field(writer: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    match field.name() {
        "message" => write!(writer, "{value:?}"),
        name if SAID_IN_WORDS.contains(&name) => Ok(()),
        name => write!(writer, " {name}={value:?}"),
    }
}

/// Writes to stderr, suspending the progress bar while it does.
struct BarAwareStderr;

impl<'a> MakeWriter<'a> for BarAwareStderr {
    type Writer = BarAwareWriter;
    fn make_writer(&'a self) -> Self::Writer {
        BarAwareWriter
    }
}

struct BarAwareWriter;

impl Write for BarAwareWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BAR.get() {
            Some(bar) if !bar.is_finished() => bar.suspend(|| std::io::stderr().write_all(buf))?,
            _ => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Writes `text` and a newline to stderr, ignoring a failure: output that nobody can read
/// must neither panic nor change how the run ends (`eprintln!` panics).
pub fn say(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_all(text.as_bytes())
        .and_then(|()| stderr.write_all(b"\n"));
}
