//! The command line, as clap parses it. Raw values only: `config` turns them, the
//! environment and the config file into one validated `RunConfig`.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::action::RateScope;
use crate::credentials::Credentials;
use crate::engine::FailureLimit;
use crate::simulator::{Count, DescribeFault, Faults, SimulatorConfig};

/// Help headings: the options of `run`, grouped as a user looks for them.
const INPUT_OUTPUT: &str = "Input and output";
const PACING: &str = "Pacing and retries";
const CREDENTIALS: &str = "Credentials and endpoint";
const LOGGING: &str = "Logging";

/// The end of `run --help`: an example, the credential order and the exit codes. Lines are
/// kept under 80 columns, since clap does not wrap this text.
const RUN_AFTER_HELP: &str = "\
Example:
  lighthouse-share run images.csv --profile prod --max-failures 5% -q

On/off options are also read from LIGHTHOUSE_SHARE_<OPTION> (true/false, 1/0,
yes/no, on/off); -v from LIGHTHOUSE_SHARE_VERBOSE. A flag wins over the
environment, which wins over the config file. A LIGHTHOUSE_SHARE_* variable
or config key that is a near miss of a known one (DRYRUN for DRY_RUN) stops
the run (exit 2); any other unknown one is a warning.

-q hides progress, info lines and the summary of a run that exits 0;
warnings and errors are always printed, and --dry-run -q prints the plan.

Credentials, first found wins (the log names the source, never the secret):
  1. a profile named by --profile (or LIGHTHOUSE_SHARE_PROFILE, or the config
     file): its section of the file in 4, else its tccli file in 5; one that
     does not exist is an error listing the profiles found. A profile name is
     letters, digits, -, _ and . (not first), never a path
  2. TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY (+ _SESSION_TOKEN)
  3. the config file's [credentials] table
  4. TENCENTCLOUD_CREDENTIALS_FILE (an error if it cannot be read), else
     ~/.tencentcloud/credentials, section [PROFILE] (PROFILE: $TCCLI_PROFILE,
     else default)
  5. tccli's ~/.tccli/PROFILE.credential
  6. the CAM role of this CVM instance

Exit codes:
  0    every row shared, unshared, already shared or already unshared
  1    internal failure (the results file could not be written)
  2    usage, configuration or input error; nothing was sent
  3    finished, and some rows are failed or invalid (a dry run: some rows are
       invalid or would fail)
  4    stopped by a job-fatal answer or --max-failures; the rest are skipped
  5    another run holds the lock on the results file
  130  interrupted; the rest are skipped; --resume continues";

const SIMULATE_AFTER_HELP: &str = "\
GET /__stats answers the counters as JSON: requests (in all and per action),
answers per error code (in all and per action), signature failures, connections
accepted, the most requests that arrived in any one second per bucket
(max_window for ModifyImageSharePermission, max_window_describe for
DescribeBlueprints, max_window_by_action for every action), requests per image
and per secret id, and the most ModifyImageSharePermission requests ever in
flight at once for one (region, image) (max_in_flight_per_image).

Rehearsal aids: GET /__state lists the images shared now, per region, with their
BlueprintIds; POST /__state with {\"region\": \"ap-guangzhou\", \"image_id\":
\"img-...\", \"shared\": true|false} shares or unshares an image out of band, as
another person or tool would between two runs, and answers its new state.

Example: lighthouse-share simulate --rate-scope region --missing 0.1
then: lighthouse-share run images.csv --endpoint http://127.0.0.1:8020
with TENCENTCLOUD_SECRET_ID=AKIDsimulator
and TENCENTCLOUD_SECRET_KEY=simulator-secret-key";

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
    /// Run every row of INPUT and write the results beside it.
    #[command(after_help = RUN_AFTER_HELP)]
    Run(RunArgs),
    /// Serve a local stand-in for the Lighthouse API, for rehearsals and tests.
    #[command(after_help = SIMULATE_AFTER_HELP)]
    Simulate(SimulateArgs),
    /// Print a shell completion script (see the README for where to put it).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page in roff: the program's, or that of one subcommand (run, simulate).
    Man {
        /// The subcommand whose page to print.
        command: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `run` options. Those that the config file can also set are `Option`s here, so that
/// "not given" can fall through to the environment, the file and the default. `config`
/// reads the environment, not clap, so that a bad value is named by its variable.
#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// The sheet to run: a CSV file or a workbook (columns region, image_id, permission);
    /// `-` reads a CSV from standard input.
    pub input: PathBuf,
    /// Results file; `-` writes the results CSV to standard output [default: INPUT with its
    /// extension replaced by .results.csv, or .results.xlsx for a workbook]. [env: LIGHTHOUSE_SHARE_OUTPUT]
    #[arg(short, long, help_heading = INPUT_OUTPUT)]
    pub output: Option<PathBuf>,
    /// The sheet of a workbook input [default: the first visible sheet]. [env: LIGHTHOUSE_SHARE_SHEET]
    #[arg(long, help_heading = INPUT_OUTPUT)]
    pub sheet: Option<String>,
    /// TOML config file (every key: config.example.toml). [env: LIGHTHOUSE_SHARE_CONFIG]
    #[arg(short, long, help_heading = INPUT_OUTPUT)]
    pub config: Option<PathBuf>,
    /// Continue from the record of earlier runs (OUTPUT.journal): keep their finished rows,
    /// run the rest.
    #[arg(long, overrides_with = "no_resume", help_heading = INPUT_OUTPUT)]
    pub resume: bool,
    /// Start afresh even if the config file or the environment says --resume.
    #[arg(long, overrides_with = "resume", help_heading = INPUT_OUTPUT)]
    pub no_resume: bool,
    /// Everything but the writes: credentials, output, the state look-up, the preflight;
    /// print the plan per bucket, each row that would fail and why, and an ETA (-v: one line
    /// per row); write nothing. Exit 3 when rows are invalid or would fail.
    #[arg(long, overrides_with = "no_dry_run", help_heading = INPUT_OUTPUT)]
    pub dry_run: bool,
    /// Really run, even if the config file or the environment says --dry-run.
    #[arg(long, overrides_with = "dry_run", help_heading = INPUT_OUTPUT)]
    pub no_dry_run: bool,
    /// With --dry-run: check the input file alone; no credentials, no requests.
    #[arg(long, overrides_with = "no_offline", help_heading = INPUT_OUTPUT)]
    pub offline: bool,
    /// A dry run with credentials and the look-up, even if the config file or the
    /// environment says --offline.
    #[arg(long, overrides_with = "offline", help_heading = INPUT_OUTPUT)]
    pub no_offline: bool,
    /// Most requests per second per region (or per endpoint, see --rate-scope); may be
    /// fractional [default: 20]. [env: LIGHTHOUSE_SHARE_RATE]
    #[arg(long, help_heading = PACING)]
    pub rate: Option<f64>,
    /// The same for the state look-ups (DescribeBlueprints, its own limit) [default: 10]. [env: LIGHTHOUSE_SHARE_DESCRIBE_RATE]
    #[arg(long, help_heading = PACING)]
    pub describe_rate: Option<f64>,
    /// Read what is already shared first (DescribeBlueprints), so rows already as asked
    /// are not sent and get their BlueprintId [default: on]. [env: LIGHTHOUSE_SHARE_LOOKUP]
    #[arg(long, overrides_with = "no_lookup", help_heading = PACING)]
    pub lookup: bool,
    /// Send every row without reading the state first.
    #[arg(long, overrides_with = "lookup", help_heading = PACING)]
    pub no_lookup: bool,
    /// With --dry-run, ask DescribeImagesToShare which SHARE rows would fail and why; in a
    /// run, say where the image of a row refused as not found is [default: on]. [env: LIGHTHOUSE_SHARE_PREFLIGHT]
    #[arg(long, overrides_with = "no_preflight", help_heading = PACING)]
    pub preflight: bool,
    /// Send no DescribeImagesToShare: the dry run does not check the images.
    #[arg(long, overrides_with = "preflight", help_heading = PACING)]
    pub no_preflight: bool,
    /// Whether each region has its own limit, or one endpoint has one limit for all
    /// regions [default: region if the endpoint contains {region}, else endpoint]. [env: LIGHTHOUSE_SHARE_RATE_SCOPE]
    #[arg(long, help_heading = PACING)]
    pub rate_scope: Option<RateScope>,
    /// Most requests in flight per region (or endpoint) [default: 32]. [env: LIGHTHOUSE_SHARE_CONCURRENCY]
    #[arg(long, help_heading = PACING)]
    pub concurrency: Option<usize>,
    /// Attempts per row, the first included [default: 8]. [env: LIGHTHOUSE_SHARE_MAX_ATTEMPTS]
    #[arg(long, help_heading = PACING)]
    pub max_attempts: Option<u32>,
    /// Stop the job (exit 4) once more than N rows, or P% of the rows finished so far (after
    /// at least 20), have failed [default: off]. [env: LIGHTHOUSE_SHARE_MAX_FAILURES]
    #[arg(long, value_name = "N|P%", value_parser = failure_limit, help_heading = PACING)]
    pub max_failures: Option<FailureLimit>,
    /// Per-request timeout in seconds, from 0.1 to 86400 [default: 10]. [env: LIGHTHOUSE_SHARE_TIMEOUT]
    #[arg(long, help_heading = PACING)]
    pub timeout: Option<f64>,
    /// Credentials profile: a section of ~/.tencentcloud/credentials or a tccli profile.
    /// Named, it wins over TENCENTCLOUD_SECRET_ID/KEY [default: $TCCLI_PROFILE, else default]. [env: LIGHTHOUSE_SHARE_PROFILE]
    #[arg(long, help_heading = CREDENTIALS)]
    pub profile: Option<String>,
    /// Endpoint template; `{region}` is replaced by the row's region
    /// [default: https://lighthouse.{region}.tencentcloudapi.com]. [env: LIGHTHOUSE_SHARE_ENDPOINT]
    #[arg(long, help_heading = CREDENTIALS)]
    pub endpoint: Option<String>,
    /// Run against an in-process simulator with its built-in credentials (no account needed).
    #[arg(long, overrides_with = "no_simulate", help_heading = CREDENTIALS)]
    pub simulate: bool,
    /// Use the real endpoint, even if the config file or the environment says --simulate.
    #[arg(long, overrides_with = "simulate", help_heading = CREDENTIALS)]
    pub no_simulate: bool,
    /// Log lines on stderr [default: text]. [env: LIGHTHOUSE_SHARE_LOG_FORMAT]
    #[arg(long, help_heading = LOGGING)]
    pub log_format: Option<LogFormat>,
    /// No progress, no info lines, no summary when all went well; warnings and errors are
    /// always printed, and a dry run still prints its plan. [env: LIGHTHOUSE_SHARE_QUIET]
    #[arg(short, long, conflicts_with = "verbose", overrides_with = "no_quiet", help_heading = LOGGING)]
    pub quiet: bool,
    /// Every log line, even if the config file or the environment says --quiet.
    #[arg(long, overrides_with = "quiet", help_heading = LOGGING)]
    pub no_quiet: bool,
    /// More log lines (-vv for every request). [env: LIGHTHOUSE_SHARE_VERBOSE=1 or 2]
    #[arg(short, long, action = clap::ArgAction::Count, help_heading = LOGGING)]
    pub verbose: u8,
}

/// Writes the completion script for `shell` to `out`.
pub fn completions(
    shell: clap_complete::Shell,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    // Generated into memory first: clap_complete panics on a write error, and a reader
    // such as `head` may close the pipe early.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "lighthouse-share", &mut script);
    out.write_all(&script)
}

/// Writes the man page of the program, or of its subcommand `command`, to `out`.
pub fn man(command: Option<&str>, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let cli = Cli::command();
    let page = match command {
        None => cli,
        Some(name) => {
            let known: Vec<String> = cli
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            let Some(sub) = cli.find_subcommand(name) else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("no subcommand `{name}`: give one of {}", known.join(", ")),
                ));
            };
            // Named as man pages of subcommands usually are: lighthouse-share-run(1).
            sub.clone()
                .display_name(format!("lighthouse-share-{name}"))
                .bin_name(format!("lighthouse-share {name}"))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff)?;
    out.write_all(&roff)
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
    /// ModifyImageSharePermission requests admitted per bucket in any one-second window.
    #[arg(long, default_value_t = 20)]
    pub rate: usize,
    /// DescribeBlueprints requests admitted per bucket in any one-second window (its own
    /// limit).
    #[arg(long, default_value_t = 10)]
    pub describe_rate: usize,
    /// What a rate bucket is.
    #[arg(long, value_enum, default_value_t = RateScope::Region)]
    pub rate_scope: RateScope,
    /// Which requests use up the rate window: only the admitted ones (the default, and the
    /// simulator's behaviour by default), or all, refused ones (RequestLimitExceeded)
    /// included. Nobody outside Tencent knows which the service does.
    #[arg(long, value_enum, default_value_t = Count::Admitted)]
    pub count: Count,
    /// A file of `region,image_id` lines (header optional): images shared before the
    /// simulator starts.
    #[arg(long, value_name = "FILE")]
    pub shared: Option<PathBuf>,
    /// A file of `region,image_id[,state[,unshareable reason]]` lines (header optional): the
    /// images that exist, per region (state NORMAL unless given; a reason makes an image not
    /// shareable). DescribeImagesToShare lists them and the writes agree: an image not in
    /// the region is ImageIdNotFound, one not shareable or not NORMAL ImageUnableToShare.
    /// Without it every image exists in every region, shareable.
    #[arg(long, value_name = "FILE")]
    pub images: Option<PathBuf>,
    /// DescribeImagesToShare requests admitted per bucket in any one-second window (its own
    /// limit).
    #[arg(long, default_value_t = 20)]
    pub images_rate: usize,
    /// Break DescribeBlueprints listings on purpose (a rehearsal aid; may be repeated):
    /// `empty-first` (every first page comes back empty while TotalCount says more;
    /// `empty-first=N`: only the first N per region), `repeat-page` (every Offset answers the
    /// first page), `total=N` (TotalCount says N).
    #[arg(long, value_name = "FAULT", value_parser = DescribeFault::parse)]
    pub describe_fault: Vec<DescribeFault>,
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
    /// Probability per ModifyImageSharePermission request of UnauthorizedOperation.NoPermission
    /// (lighthouse:ModifyImageSharePermission not allowed).
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub unauthorized: f64,
    /// Answer every DescribeBlueprints with UnauthorizedOperation.NoPermission, as for a CAM
    /// policy that allows the share but not lighthouse:DescribeBlueprints.
    #[arg(long)]
    pub unauthorized_describe: bool,
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
    /// Delay the first request on each new connection by N milliseconds, standing in for a
    /// TLS handshake; later requests on the same connection are not delayed by it.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub connect_latency_ms: u64,
    /// Count each request 0 to J milliseconds (uniform) after it arrives, as a network that
    /// delays some packets more than others: a request sent first may be counted after a
    /// later one, in the same second.
    #[arg(long, default_value_t = 0, value_name = "J")]
    pub uplink_jitter_ms: u64,
}

impl SimulateArgs {
    /// The simulator these options describe; the error names a `--shared` or `--images` file that cannot
    /// be used, and why.
    pub fn simulator_config(&self) -> Result<SimulatorConfig, String> {
        let shared = match &self.shared {
            Some(path) => crate::simulator::read_seed(path)?,
            None => Vec::new(),
        };
        let images = match &self.images {
            Some(path) => Some(crate::simulator::read_images(path)?),
            None => None,
        };
        Ok(SimulatorConfig {
            accounts: vec![Credentials::new(&self.secret_id, &self.secret_key, None)],
            rate: self.rate,
            describe_rate: self.describe_rate,
            images_rate: self.images_rate,
            rate_scope: self.rate_scope,
            count: self.count,
            faults: Faults {
                occupied: self.occupied,
                internal_error: self.internal_error,
                http_error: self.http_error,
                reset: self.reset,
                stall: self.stall,
                missing: self.missing,
                unauthorized: self.unauthorized,
                unauthorized_describe: self.unauthorized_describe,
                describe: self.describe_fault.clone(),
            },
            seed: self.seed,
            latency_ms: self.latency_ms,
            clock_skew_secs: self.clock_skew,
            withdrawn_regions: self.withdrawn_region.clone(),
            shared,
            images,
            connect_latency: std::time::Duration::from_millis(self.connect_latency_ms),
            uplink_jitter: std::time::Duration::from_millis(self.uplink_jitter_ms),
        })
    }
}

/// `--max-failures`: a number of failed rows, at least 1, or a percentage of the rows
/// finished, above 0 and at most 100; the error states the range.
pub fn failure_limit(value: &str) -> Result<FailureLimit, String> {
    let value = value.trim();
    let range = "give a number of failed rows, at least 1, such as 10, or a percentage of the rows finished, above 0% and at most 100%, such as 5%";
    match value.strip_suffix('%') {
        Some(percent) => match percent.trim().parse::<f64>() {
            Ok(p) if p > 0.0 && p <= 100.0 => Ok(FailureLimit::Percent(p)),
            Ok(_) => Err(format!("out of range: {range}")),
            Err(_) => Err(format!("not a percentage: {range}")),
        },
        None => match value.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(FailureLimit::Rows(n)),
            Ok(_) => Err(format!("out of range: {range}")),
            Err(_) => Err(format!("not a number of rows: {range}")),
        },
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
