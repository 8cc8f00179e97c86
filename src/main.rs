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
    let cli = Cli::parse();
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
    let config = match RunConfig::resolve(args, &|key| std::env::var(key).ok()).await {
        Ok(config) => config,
        Err(error) => {
            output::init_logging(LogFormat::Text, false, 0);
            tracing::error!("{error}");
            return Ending::Unusable;
        }
    };
    output::init_logging(config.log_format, config.quiet, config.verbose);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let (format, quiet) = (config.log_format, config.quiet);
    match lighthouse_share::run::run(config, shutdown).await {
        Ok(report) => {
            let ending = report.ending();
            // With -q a run that did all it was asked is silent: cron mails nothing. Any
            // other ending shows the warnings held back, then the summary.
            output::release_held(ending != Ending::Done);
            if !(quiet && ending == Ending::Done) {
                output::print_summary(&report, format);
            }
            if let Ending::Internal(why) = &ending {
                tracing::error!("{why}");
            }
            ending
        }
        Err(error) => {
            output::release_held(true);
            tracing::error!("{error}");
            error.ending()
        }
    }
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
        Err(error) => Ending::Internal(format!("cannot write to standard output: {error}")),
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
