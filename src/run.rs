//! The run: from a `RunConfig` to a finished results file and an exit code.

use crate::cli::RunArgs;

/// `lighthouse-share run`: returns the exit code.
pub async fn main(_args: RunArgs) -> i32 {
    eprintln!("error: `run` is not built yet");
    1
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits the process at once with 130
/// (what was already flushed to the results file is kept).
pub async fn interrupted() {
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
        std::process::exit(130);
    });
}
