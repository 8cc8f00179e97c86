//! The run: from a `RunConfig` to a finished results file and an exit code.
//!
//! 1. Take the lock on `OUTPUT.lock`.
//! 2. One pass over the input validates every row (and checks it against the results file
//!    when resuming) before anything is sent, and counts the rows per bucket.
//! 3. Each bucket gets a reader thread that streams its rows from the input and a pool task
//!    that runs them; finished rows go to the journal thread, which appends them at once.
//! 4. The results file is compacted: one row per input row, sorted.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;

use crate::api::{self, Client, Endpoint};
use crate::cli::{LogFormat, RunArgs};
use crate::config::RunConfig;
use crate::credentials::{Credentials, Provider};
use crate::input::{InputError, Reader};
use crate::limiter::UTILISATION;
use crate::pool::{self, BucketReport, Buckets, Context, Incoming, Reason, Settings, Stop};
use crate::progress::{self, Progress};
use crate::results::{self, Counts, Journal, Outcome, Resume, Status};
use crate::simulator::{self, Faults, Simulator, SimulatorConfig};

/// Why a run could not be carried out; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Usage, configuration or input: nothing was sent.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{0:#}")]
    Setup(anyhow::Error),
    #[error(
        "another run is using {output}: it holds the lock {lock}. Wait for it to finish, or give this run another --output"
    )]
    Locked { output: PathBuf, lock: PathBuf },
    /// Something failed after requests were sent (the results file could not be written).
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Input(_) | Error::Setup(_) => 2,
            Error::Locked { .. } => 5,
            Error::Failed(_) => 1,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Report {
    pub output: PathBuf,
    pub counts: Counts,
    pub elapsed: Duration,
    pub buckets: Vec<BucketReport>,
    pub stop: Option<Reason>,
    pub dry_run: bool,
}

impl Report {
    pub fn exit_code(&self) -> i32 {
        match &self.stop {
            Some(Reason::Fatal(_)) => 4,
            Some(Reason::Interrupted) => 130,
            Some(Reason::Journal(_)) => 1,
            None if self.counts.get(Status::Failed) + self.counts.get(Status::Invalid) > 0 => 3,
            None => 0,
        }
    }
}

/// `lighthouse-share run`: resolves the configuration, runs, prints the summary; returns the
/// exit code.
pub async fn main(args: RunArgs) -> i32 {
    let config = match RunConfig::resolve(args, &|key| std::env::var(key).ok()).await {
        Ok(config) => config,
        Err(error) => {
            progress::init_logging(LogFormat::Text, false, 0);
            tracing::error!("{error}");
            return 2;
        }
    };
    progress::init_logging(config.log_format, config.quiet, config.verbose);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let format = config.log_format;
    match run(config, interrupted()).await {
        Ok(report) => {
            print_summary(&report, format);
            report.exit_code()
        }
        Err(error) => {
            tracing::error!("{error}");
            error.exit_code()
        }
    }
}

/// Runs the job until it is done, stopped by a job-fatal answer, or `shutdown` resolves.
pub async fn run(
    mut config: RunConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<Report, Error> {
    let started = Instant::now();
    let spooled = spool_stdin(&config.input)?;
    let input = spooled
        .as_ref()
        .map_or(config.input.clone(), |(_, path)| path.clone());
    let _simulator = match config.simulate {
        true => Some(start_simulator(&mut config).await?),
        false => None,
    };
    let buckets = Buckets {
        scope: config.rate_scope,
        endpoint: config.endpoint.clone(),
    };
    let _lock = claim_output(&config, &input)?;
    let resume = match config.resume {
        true => Resume::load(&config.output).map_err(Error::Setup)?,
        false => Resume::default(),
    };
    let (plan, resume) = {
        let (input, output, buckets) = (input.clone(), config.output.clone(), buckets.clone());
        blocking(move || Plan::make(&input, &buckets, &resume, &output).map(|p| (p, resume)))
            .await??
    };
    plan.log(&config);
    let mut report = Report {
        output: config.output.clone(),
        counts: Counts::default(),
        elapsed: Duration::ZERO,
        buckets: Vec::new(),
        stop: None,
        dry_run: config.dry_run,
    };
    if config.dry_run {
        report
            .counts
            .by_status
            .insert(Status::Invalid, plan.n_invalid);
    } else {
        (report.buckets, report.stop) =
            send(&config, &input, &buckets, &plan, resume, shutdown).await?;
        let output = config.output.clone();
        report.counts = blocking(move || results::compact(&input, &output))
            .await?
            .map_err(Error::Failed)?;
    }
    drop(spooled);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Checks that the input opens (so a mistyped path leaves no lock file behind), then takes
/// the lock on the results file and refuses to overwrite one without `--resume`.
fn claim_output(config: &RunConfig, input: &Path) -> Result<Option<File>, Error> {
    Reader::open(input)?;
    if config.dry_run {
        return Ok(None);
    }
    let lock = lock(&config.output)?;
    if !config.resume && config.output.exists() {
        return Err(Error::Setup(anyhow::anyhow!(
            "the results file {} already exists: add --resume to continue it (finished rows are kept, not sent again), or give another --output, or remove it",
            config.output.display()
        )));
    }
    Ok(Some(lock))
}

/// Sends every planned row: a reader and a pool task per bucket, the journal thread, the
/// progress display. Returns each bucket's report and why the run stopped early, if it did.
async fn send(
    config: &RunConfig,
    input: &Path,
    buckets: &Buckets,
    plan: &Plan,
    resume: Resume,
    shutdown: impl Future<Output = ()>,
) -> Result<(Vec<BucketReport>, Option<Reason>), Error> {
    let credentials = config
        .credentials
        .clone()
        .expect("resolved unless simulating or dry-running");
    tracing::info!("credentials from {}", credentials.source());
    let client =
        Client::new(config.endpoint.clone(), credentials, config.timeout).map_err(Error::Setup)?;
    let journal = Journal::open(&config.output, config.resume).map_err(Error::Setup)?;
    let progress = Arc::new(Progress::new(plan.rows_per_bucket.values().sum()));
    let stop = Stop::default();
    let (outcomes_tx, outcomes_rx) = mpsc::channel(1024);
    let journal = spawn_journal(journal, outcomes_rx, progress.clone(), stop.clone());
    let ctx = Arc::new(Context {
        client,
        settings: Settings {
            rate: config.rate,
            concurrency: config.concurrency,
            max_attempts: config.max_attempts,
            backoff: config.backoff,
        },
        stop: stop.clone(),
        outcomes_tx,
        n_retrying: AtomicU64::new(0),
    });
    let reporter = progress::report(progress, ctx.clone(), config.quiet);
    let resume = Arc::new(resume);
    let mut tasks = tokio::task::JoinSet::new();
    for name in plan.rows_per_bucket.keys() {
        let rows = spawn_reader(input, buckets, name, resume.clone());
        tasks.spawn(pool::drive(name.clone(), rows, ctx.clone()));
    }
    // The journal ends when the last sender, held by the bucket tasks, is gone.
    drop(ctx);
    let mut reports = wait_for(tasks, &stop, shutdown).await?;
    drop(reporter);
    journal
        .await
        .map_err(|e| Error::Failed(e.into()))?
        .map_err(Error::Failed)?;
    if let Some(Reason::Fatal(error)) = stop.reason() {
        tracing::error!("stopped: {}", fatal_advice(&error));
    }
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((reports, stop.reason()))
}

/// Waits for every bucket task; when `shutdown` resolves first, stops them gently.
async fn wait_for(
    mut tasks: tokio::task::JoinSet<BucketReport>,
    stop: &Stop,
    shutdown: impl Future<Output = ()>,
) -> Result<Vec<BucketReport>, Error> {
    let mut reports = Vec::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(report)) => reports.push(report),
                Some(Err(error)) => return Err(Error::Failed(error.into())),
                None => return Ok(reports),
            },
            _ = &mut shutdown, if !stop.is_stopped() => {
                tracing::warn!("interrupted: starting no new rows; letting the requests in flight finish (a second signal stops at once)");
                stop.trigger(Reason::Interrupted);
            }
        }
    }
}

/// Runs blocking file work off the runtime's thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Failed(e.into()))
}

/// What a job-fatal answer most likely means, and what to do about it.
fn fatal_advice(error: &api::ApiError) -> String {
    let advice = match error.code.as_str() {
        "AuthFailure.SignatureFailure" => {
            "the secret key does not match the secret id: check the secret key"
        }
        "AuthFailure.SecretIdNotFound" | "AuthFailure.InvalidSecretId" => {
            "the secret id is unknown: check it, or whether the key was deleted"
        }
        "AuthFailure.SignatureExpire" => {
            "this machine's clock is off by more than 5 minutes: fix it (for example with NTP) and resume"
        }
        "AuthFailure.TokenFailure" => {
            "the session token is wrong or expired: get fresh temporary credentials"
        }
        "AuthFailure.UnauthorizedOperation" | "UnauthorizedOperation.NoPermission" => {
            "these credentials may not call ModifyImageSharePermission: grant the CAM permission"
        }
        "ResourceNotFound.RoleNotFound" => {
            "the Lighthouse service role does not exist: create it in the CAM console (authorise Lighthouse) and resume"
        }
        "UnsupportedOperation.AssumeRoleFailed" => {
            "Lighthouse could not assume its service role: check the role in the CAM console"
        }
        "IpInBlacklist" | "IpNotInWhitelist" => {
            "this machine's IP address is not allowed to call the API: check the account's IP allow list"
        }
        _ => "no row can get past this answer",
    };
    format!(
        "{} ({}): {advice}. The rows not run are marked skipped; fix this and rerun with --resume",
        error.code, error.message
    )
}

/// Standard input is copied to a temporary file first, so that it can be read more than once
/// (validation, the buckets, compaction) without being held in memory.
fn spool_stdin(input: &Path) -> Result<Option<(tempfile::TempPath, PathBuf)>, Error> {
    if input != Path::new("-") {
        return Ok(None);
    }
    let mut file = tempfile::NamedTempFile::new().map_err(|e| Error::Setup(e.into()))?;
    std::io::copy(&mut std::io::stdin().lock(), &mut file)
        .context("cannot read standard input")
        .map_err(Error::Setup)?;
    let path = file.into_temp_path();
    let owned = path.to_path_buf();
    Ok(Some((path, owned)))
}

/// Starts the in-process simulator as `run --simulate` promises: the API's real limit of 20/s,
/// latency 50–150 ms, 5% ImageOccupied, and its built-in credentials.
async fn start_simulator(config: &mut RunConfig) -> Result<simulator::SimulatorHandle, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Setup(e.into()))?;
    let handle = Simulator::start(
        listener,
        SimulatorConfig {
            rate_scope: config.rate_scope,
            faults: Faults {
                occupied: 0.05,
                ..Faults::default()
            },
            seed: rand::random(),
            latency_ms: (50, 150),
            ..SimulatorConfig::default()
        },
    )
    .map_err(|e| Error::Setup(e.into()))?;
    tracing::info!(
        "simulating the API at {} (no request leaves this machine)",
        handle.endpoint()
    );
    config.endpoint = Endpoint::new(&handle.endpoint());
    config.credentials = Some(Provider::Static {
        credentials: Credentials::new(
            simulator::DEFAULT_SECRET_ID,
            simulator::DEFAULT_SECRET_KEY,
            None,
        ),
        source: "the simulator's built-in account".to_string(),
    });
    Ok(handle)
}

/// Holds `OUTPUT.lock` for the whole run.
fn lock(output: &Path) -> Result<File, Error> {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let path = output.with_file_name(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create the lock file {}", path.display()))
        .map_err(Error::Setup)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            output: output.to_path_buf(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Setup(anyhow::anyhow!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// What the validation pass found.
struct Plan {
    /// Rows to send, per bucket.
    rows_per_bucket: BTreeMap<String, u64>,
    n_invalid: u64,
    n_kept: u64,
}

/// How many invalid rows are printed; the rest are in the results file.
const SHOWN_INVALID: u64 = 20;

impl Plan {
    fn make(
        input: &Path,
        buckets: &Buckets,
        resume: &Resume,
        output: &Path,
    ) -> Result<Self, Error> {
        let mut plan = Plan {
            rows_per_bucket: BTreeMap::new(),
            n_invalid: 0,
            n_kept: 0,
        };
        // Kept rows are matched with the input's rows as both go by in line order, so that a
        // kept row whose line the input no longer has is caught too.
        let mut kept_lines = resume.kept_lines().peekable();
        let missing = |line: u64| {
            Error::Setup(anyhow::anyhow!(
                "{} has a finished row for line {line}, which {} no longer has: it belongs to another version of the input. Restore the input, or give it its own --output",
                output.display(),
                input.display()
            ))
        };
        for record in Reader::open(input)? {
            let record = record?;
            while let Some(line) = kept_lines.next_if(|line| *line <= record.line) {
                if line < record.line {
                    return Err(missing(line));
                }
            }
            resume.check(&record, output).map_err(Error::Setup)?;
            match record.validate() {
                Err(message) => {
                    plan.n_invalid += 1;
                    if plan.n_invalid <= SHOWN_INVALID {
                        tracing::warn!("line {}: {message}", record.line);
                    }
                }
                Ok(_) if resume.is_kept(record.line) => plan.n_kept += 1,
                Ok(row) => {
                    *plan
                        .rows_per_bucket
                        .entry(buckets.of(row.region))
                        .or_default() += 1
                }
            }
        }
        if let Some(line) = kept_lines.next() {
            return Err(missing(line));
        }
        if plan.n_invalid > SHOWN_INVALID {
            tracing::warn!(
                "... and {} more invalid rows (each is listed in the results file)",
                plan.n_invalid - SHOWN_INVALID
            );
        }
        Ok(plan)
    }

    fn log(&self, config: &RunConfig) {
        let n_rows: u64 = self.rows_per_bucket.values().sum();
        let pace = config.rate * UTILISATION;
        let slowest = self.rows_per_bucket.values().max().copied().unwrap_or(0);
        let eta = slowest as f64 / pace;
        tracing::info!(
            "plan: {n_rows} rows to send in {} rate bucket(s) at {:.2}/s each ({:?} scope); {} invalid; {} already done (kept); about {} at full rate",
            self.rows_per_bucket.len(),
            pace,
            config.rate_scope,
            self.n_invalid,
            self.n_kept,
            humantime::format_duration(Duration::from_secs(eta.ceil() as u64)),
        );
        for (bucket, rows) in &self.rows_per_bucket {
            tracing::info!("  {bucket}: {}", plural(*rows, "row"));
        }
    }
}

/// Rows the reader sends to its bucket at once.
const READ_BATCH: usize = 64;

/// A thread that streams one bucket's rows (valid, not kept) from the input, in file order.
fn spawn_reader(input: &Path, buckets: &Buckets, name: &str, resume: Arc<Resume>) -> Incoming {
    let (rows_tx, rows_rx) = mpsc::channel(4);
    let (input, buckets, name) = (input.to_path_buf(), buckets.clone(), name.to_string());
    tokio::task::spawn_blocking(move || {
        let Ok(reader) = Reader::open(&input) else {
            return;
        };
        let mut batch = Vec::with_capacity(READ_BATCH);
        for record in reader {
            // The validation pass has read this file whole: an error here cannot be new.
            let Ok(record) = record else { return };
            let Ok(row) = record.validate() else { continue };
            if resume.is_kept(row.line) || buckets.of(row.region) != name {
                continue;
            }
            batch.push(row);
            if batch.len() == READ_BATCH
                && rows_tx.blocking_send(std::mem::take(&mut batch)).is_err()
            {
                return;
            }
        }
        if !batch.is_empty() {
            let _ = rows_tx.blocking_send(batch);
        }
    });
    Incoming::new(rows_rx)
}

/// Rows the journal writes with one flush, when that many finished together.
const JOURNAL_BATCH: usize = 256;
/// How long the journal waits after a write before it looks for more rows: a row waits at
/// most this long to reach the file.
const JOURNAL_PAUSE: Duration = Duration::from_millis(1);

/// The journal's thread: appends each finished row at once (rows that finished together in
/// one write). A write failure stops the run.
fn spawn_journal(
    mut journal: Journal,
    mut outcomes_rx: mpsc::Receiver<Outcome>,
    progress: Arc<Progress>,
    stop: Stop,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(JOURNAL_BATCH);
        while let Some(outcome) = outcomes_rx.blocking_recv() {
            batch.push(outcome);
            while batch.len() < JOURNAL_BATCH {
                match outcomes_rx.try_recv() {
                    Ok(outcome) => batch.push(outcome),
                    Err(_) => break,
                }
            }
            if let Err(error) = journal.append(&batch) {
                stop.trigger(Reason::Journal(error.to_string()));
                return Err(anyhow::Error::new(error).context("cannot append to the results file"));
            }
            batch
                .drain(..)
                .for_each(|outcome| progress.record(&outcome));
            // Rows that finish while this thread sleeps are written together, with one
            // wake-up instead of one each.
            std::thread::sleep(JOURNAL_PAUSE);
        }
        journal.sync().context("cannot sync the results file")
    })
}

/// The summary on stderr: counts per status, elapsed time, rate per bucket, retries, path.
pub fn print_summary(report: &Report, format: LogFormat) {
    let counts: Vec<(&str, u64)> = Status::ALL
        .iter()
        .map(|s| (s.as_str(), report.counts.get(*s)))
        .collect();
    let rates: BTreeMap<&str, Option<f64>> = report
        .buckets
        .iter()
        .map(|b| (b.name.as_str(), b.rate()))
        .collect();
    if format == LogFormat::Json {
        let summary = serde_json::json!({
            "summary": true,
            "dry_run": report.dry_run,
            "rows": report.counts.total(),
            "statuses": counts.iter().copied().collect::<BTreeMap<_, _>>(),
            "retries": report.counts.retries,
            "elapsed_seconds": report.elapsed.as_secs_f64(),
            "requests_per_second": rates,
            "results": report.output,
            "exit_code": report.exit_code(),
        });
        eprintln!("{summary}");
        return;
    }
    if report.dry_run {
        eprintln!(
            "dry run: nothing sent, nothing written; {} invalid rows",
            report.counts.get(Status::Invalid)
        );
        return;
    }
    let statuses: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let colour = std::io::stderr().is_terminal();
    let bold = |s: String| {
        if colour {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s
        }
    };
    eprintln!(
        "{}",
        bold(format!(
            "summary: {} rows: {}",
            report.counts.total(),
            statuses.join(", ")
        ))
    );
    eprintln!(
        "  retries: {}; elapsed: {:.1}s",
        report.counts.retries,
        report.elapsed.as_secs_f64()
    );
    for bucket in &report.buckets {
        match bucket.rate() {
            Some(rate) => eprintln!(
                "  {}: {} requests at {rate:.2}/s",
                bucket.name, bucket.n_requests
            ),
            None => eprintln!(
                "  {}: {}",
                bucket.name,
                plural(bucket.n_requests, "request")
            ),
        }
    }
    eprintln!("  results: {}", report.output.display());
}

/// `1 row`, `2 rows`.
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
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
