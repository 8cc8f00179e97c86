//! Parses the command line, sets up logging, turns signals into the shutdown future, calls
//! the library, and maps how the job ended to the exit code: the one place that does.

use clap::Parser;
use lighthouse_share::cli::{self, Cli, Command, LogFormat, RunArgs};
use lighthouse_share::config::RunConfig;
use lighthouse_share::output::{self, Ending};
use lighthouse_share::simulator;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let ending = match cli.command {
        Command::Run(args) => run(args).await,
        Command::Simulate(args) => match args.simulator_config() {
            Ok(config) => match simulator::serve(&args.listen, config, interrupted()).await {
                Ok(()) => Ending::Done,
                Err(error) => {
                    eprintln!("error: {error}");
                    Ending::Unusable
                }
            },
            Err(error) => {
                eprintln!("error: {error}");
                Ending::Unusable
            }
        },
        Command::Completions { shell } => printed(cli::completions(shell, &mut std::io::stdout())),
        Command::Man { command } => printed(cli::man(command.as_deref(), &mut std::io::stdout())),
    };
    std::process::exit(exit_code(&ending));
}

/// `lighthouse-share run`: resolves the configuration, runs, prints the summary.
async fn run(args: RunArgs) -> Ending {
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
    match lighthouse_share::run::run(config, interrupted()).await {
        Ok(report) => {
            let ending = report.ending();
            // With -q a run that did all it was asked is silent: cron mails nothing.
            if !(quiet && ending == Ending::Done) {
                output::print_summary(&report, format);
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

/// A generated text written to standard output: a reader that closes the pipe early
/// (`| head`) is no failure.
fn printed(written: std::io::Result<()>) -> Ending {
    match written {
        Ok(()) => Ending::Done,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ending::Done,
        Err(error) if error.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("error: {error}");
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

/// Resolves on the first SIGINT or SIGTERM; a second one exits the process at once with 130
/// (what was already flushed to the results file is kept).
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("second signal: stopping at once; rows already written are kept");
        std::process::exit(exit_code(&Ending::Interrupted));
    });
}
