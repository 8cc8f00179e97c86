//! Parses the command line, sets up logging, calls the library, maps the outcome to an exit
//! code. Everything else lives in the library.

use clap::Parser;
use lighthouse_share::cli::{Cli, Command};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => lighthouse_share::run::main(args).await,
        Command::Simulate(args) => lighthouse_share::simulator::main(args).await,
    };
    std::process::exit(code);
}
