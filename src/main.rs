//! Parses the command line, sets up logging, turns signals into the shutdown future, calls
//! the library, and maps how the job ended to the exit code: the one place that does.

use clap::Parser;
use lighthouse_share::cli::{self, Cli, Command, LogFormat, RunArgs};
use lighthouse_share::config::RunConfig;
use lighthouse_share::output::{self, Ending};
use lighthouse_share::simulator;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // A file-size limit (`ulimit -f`) would kill the process with SIGXFSZ and no word;
    // ignored, the write fails with EFBIG and the run reports it with the file's path.
    // SAFETY: only sets the signal's disposition, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // Each request in flight holds a descriptor: the soft limit is raised to the hard one,
    // as any process may, before the configuration works out how many fit.
    lighthouse_share::config::raise_open_files_limit();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => std::process::exit(parse_failed(&error)),
    };
    let shutdown = interrupted();
    let ending = match cli.command {
        Command::Run(args) => run(args, shutdown).await,
        Command::Simulate(args) => match args.simulator_config() {
            Ok(config) => match simulator::serve(&args.listen, config, shutdown).await {
                Ok(()) => Ending::Done,
                Err(error) => {
                    output::say(&format!("error: {error}"));
                    Ending::Unusable
                }
            },
            Err(error) => {
                output::say(&format!("error: {error}"));
                Ending::Unusable
            }
        },
        Command::Completions { shell } => printed(cli::completions(shell, &mut std::io::stdout())),
        Command::Man { command } => printed(cli::man(command.as_deref(), &mut std::io::stdout())),
    };
    std::process::exit(exit_code(&ending));
}

/// `lighthouse-share run`: resolves the configuration, runs, prints the summary.
async fn run(args: RunArgs, shutdown: impl Future<Output = ()>) -> Ending {
    let config = match RunConfig::from_process(args).await {
        Ok(config) => config,
        Err(error) => {
            output::init_logging(LogFormat::Text, false, 0, false);
            tracing::error!("{error}");
            return Ending::Unusable;
        }
    };
    let (out, dry_run) = (config.output().clone(), config.mode().dry_run);
    output::init_logging(out.log_format, out.quiet, out.verbose, dry_run);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    match lighthouse_share::run::run(config, shutdown).await {
        Ok(report) => {
            let ending = report.ending();
            // -q hides the summary of a run that did all it was asked (cron mails nothing);
            // a dry run's summary is its output, and any other ending needs saying.
            if !(out.quiet && ending == Ending::Done && !dry_run) {
                output::print_summary(&report, out.log_format);
            }
            if let Ending::Internal(why) = &ending {
                tracing::error!("{why}");
            }
            ending
        }
        Err(error) => {
            tracing::error!("{error}");
            error.ending()
        }
    }
}

/// The exit code after clap stopped: help and version are printed to standard output and
/// exit 0, unless they could not be written (a full disk: 1; a reader that closed the pipe
/// early is no failure); a usage error is printed to stderr and exits 2.
fn parse_failed(error: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    use std::io::Write;
    if !matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return error.exit_code();
    }
    use std::io::IsTerminal;
    let text = error.render();
    let mut stdout = std::io::stdout().lock();
    let styled = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let written = match styled {
        true => write!(stdout, "{}", text.ansi()),
        false => write!(stdout, "{text}"),
    }
    .and_then(|()| stdout.flush());
    exit_code(&printed(written))
}

/// A generated text written to standard output: a reader that closes the pipe early
/// (`| head`) is no failure.
fn printed(written: std::io::Result<()>) -> Ending {
    match written {
        Ok(()) => Ending::Done,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ending::Done,
        Err(error) if error.kind() == std::io::ErrorKind::InvalidInput => {
            output::say(&format!("error: {error}"));
            Ending::Unusable
        }
        Err(error) => {
            let why = format!("cannot write to standard output: {error}");
            output::say(&format!("error: {why}"));
            Ending::Internal(why)
        }
    }
}

/// SPEC §5's exit codes.
fn exit_code(ending: &Ending) -> i32 {
    match ending {
        Ending::Done => 0,
        Ending::Internal(_) => 1,
        Ending::Unusable => 2,
        Ending::SomeRowsFailed => 3,
        Ending::Stopped => 4,
        Ending::Locked => 5,
        Ending::Interrupted => 130,
    }
}

/// Resolves on the first SIGINT, SIGTERM or SIGHUP (a closed terminal, an ssh session
/// gone); a second one exits the process at once with 130 (what was already flushed to the
/// results file is kept). The handlers are installed when this is called, before any work,
/// so that a signal during validation stops the run as cleanly as one during sending.
fn interrupted() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    );
    async move {
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = signals else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            output::say("second signal: stopping at once; rows already written are kept");
            std::process::exit(exit_code(&Ending::Interrupted));
        });
    }
}
