//! The command line, as clap parses it. Raw values only: `config` turns them, the
//! environment and the config file into one validated `RunConfig`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::action::RateScope;
use crate::credentials::Credentials;
use crate::simulator::{Count, Faults, SimulatorConfig};

#[derive(Debug, Parser)]
#[command(
    name = "lighthouse-share",
    version,
    about = "Share CVM custom images to Tencent Cloud Lighthouse (or cancel sharing) in bulk, from a CSV, at the API's rate limit."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every row of INPUT and write a results CSV.
    Run(RunArgs),
    /// Serve a local stand-in for the Lighthouse API, for rehearsals and tests.
    Simulate(SimulateArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `run` options. Those that the config file can also set are `Option`s here, so that
/// "not given" can fall through to the environment, the file and the default.
#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// The CSV to run (columns region, image_id, permission); `-` reads standard input.
    pub input: PathBuf,
    /// Results file [default: INPUT with its extension replaced by .results.csv].
    #[arg(short, long, env = "LIGHTHOUSE_SHARE_OUTPUT")]
    pub output: Option<PathBuf>,
    /// TOML config file.
    #[arg(short, long, env = "LIGHTHOUSE_SHARE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Credentials profile [default: default].
    #[arg(long, env = "LIGHTHOUSE_SHARE_PROFILE")]
    pub profile: Option<String>,
    /// Endpoint template; `{region}` is replaced by the row's region
    /// [default: https://lighthouse.{region}.tencentcloudapi.com].
    #[arg(long, env = "LIGHTHOUSE_SHARE_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Most requests per second per rate bucket; may be fractional [default: 20].
    #[arg(long, env = "LIGHTHOUSE_SHARE_RATE")]
    pub rate: Option<f64>,
    /// What a rate bucket is [default: region if the endpoint contains {region}, else endpoint].
    #[arg(long, env = "LIGHTHOUSE_SHARE_RATE_SCOPE")]
    pub rate_scope: Option<RateScope>,
    /// Most requests in flight per rate bucket [default: 32].
    #[arg(long, env = "LIGHTHOUSE_SHARE_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Attempts per row, the first included [default: 8].
    #[arg(long, env = "LIGHTHOUSE_SHARE_MAX_ATTEMPTS")]
    pub max_attempts: Option<u32>,
    /// Per-request timeout in seconds [default: 10].
    #[arg(long, env = "LIGHTHOUSE_SHARE_TIMEOUT")]
    pub timeout: Option<f64>,
    /// Continue from the results file: keep its finished rows, run the rest.
    #[arg(long, overrides_with = "no_resume")]
    pub resume: bool,
    /// Start afresh even if the config file or the environment says --resume.
    #[arg(long, overrides_with = "resume")]
    pub no_resume: bool,
    /// Validate every row, print the plan and an ETA; send nothing, write nothing.
    #[arg(long, overrides_with = "no_dry_run")]
    pub dry_run: bool,
    /// Really run, even if the config file or the environment says --dry-run.
    #[arg(long, overrides_with = "dry_run")]
    pub no_dry_run: bool,
    /// Run against an in-process simulator with its built-in credentials (no account needed).
    #[arg(long, overrides_with = "no_simulate")]
    pub simulate: bool,
    /// Use the real endpoint, even if the config file or the environment says --simulate.
    #[arg(long, overrides_with = "simulate")]
    pub no_simulate: bool,
    /// Log lines on stderr [default: text].
    #[arg(long, env = "LIGHTHOUSE_SHARE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Only warnings, errors and the final summary.
    #[arg(short, long, conflicts_with = "verbose", overrides_with = "no_quiet")]
    pub quiet: bool,
    /// Every log line, even if the config file or the environment says --quiet.
    #[arg(long, overrides_with = "quiet")]
    pub no_quiet: bool,
    /// More log lines (-vv for every request).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8020")]
    pub listen: String,
    /// The secret id whose signatures are accepted.
    #[arg(long, default_value = crate::simulator::DEFAULT_SECRET_ID)]
    pub secret_id: String,
    /// The secret key whose signatures are accepted.
    #[arg(long, default_value = crate::simulator::DEFAULT_SECRET_KEY)]
    pub secret_key: String,
    /// Requests admitted per bucket in any one-second window.
    #[arg(long, default_value_t = 20)]
    pub rate: usize,
    /// What a rate bucket is.
    #[arg(long, value_enum, default_value_t = RateScope::Region)]
    pub rate_scope: RateScope,
    /// Whether a refused request uses up the rate window (all) or only admitted ones do.
    #[arg(long, value_enum, default_value_t = Count::Admitted)]
    pub count: Count,
    /// Delay the first request on every new connection by this many milliseconds, as a TLS
    /// handshake would.
    #[arg(long, default_value_t = 0)]
    pub connect_latency_ms: u64,
    /// Seed for the faults and latencies, so a run can be reproduced.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Probability per request of UnsupportedOperation.ImageOccupied.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub occupied: f64,
    /// Probability per request of InternalError.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub internal_error: f64,
    /// Probability per request of an HTTP 503 with an HTML body.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub http_error: f64,
    /// Probability per request of closing the connection without an answer.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub reset: f64,
    /// Probability per request of no answer for a minute.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub stall: f64,
    /// Share of images that do not exist (ResourceNotFound.ImageIdNotFound, always).
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub missing: f64,
    /// A region where the action is withdrawn (UnsupportedRegion); may be repeated.
    #[arg(long)]
    pub withdrawn_region: Vec<String>,
    /// Run the server's clock this many seconds ahead (negative: behind), to rehearse a
    /// machine whose clock is off (AuthFailure.SignatureExpire beyond 300).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub clock_skew: i64,
    /// Delay each answer by MIN-MAX milliseconds (uniform), e.g. 50-150.
    #[arg(long, default_value = "0-0", value_parser = latency_range)]
    pub latency_ms: (u64, u64),
}

impl SimulateArgs {
    /// The simulator these options describe.
    pub fn simulator_config(&self) -> SimulatorConfig {
        SimulatorConfig {
            accounts: vec![Credentials::new(&self.secret_id, &self.secret_key, None)],
            rate: self.rate,
            rate_scope: self.rate_scope,
            count: self.count,
            connect_latency_ms: self.connect_latency_ms,
            faults: Faults {
                occupied: self.occupied,
                internal_error: self.internal_error,
                http_error: self.http_error,
                reset: self.reset,
                stall: self.stall,
                missing: self.missing,
            },
            seed: self.seed,
            latency_ms: self.latency_ms,
            clock_skew_secs: self.clock_skew,
            withdrawn_regions: self.withdrawn_region.clone(),
        }
    }
}

fn probability(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "`{value}` is not a probability: give a number from 0 to 1, such as 0.05"
        )),
    }
}

/// Parses `MIN-MAX` (or a single `N`) milliseconds.
pub fn latency_range(value: &str) -> Result<(u64, u64), String> {
    let parse = |s: &str| s.trim().parse::<u64>();
    let range = match value.split_once('-') {
        Some((min, max)) => (parse(min), parse(max)),
        None => (parse(value), parse(value)),
    };
    match range {
        (Ok(min), Ok(max)) if min <= max => Ok((min, max)),
        _ => Err(format!(
            "`{value}` is not a latency range: give MIN-MAX in milliseconds, such as 50-150"
        )),
    }
}
