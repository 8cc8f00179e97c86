//! The run: from a `RunConfig` to a finished results file and a [`Report`].
//!
//! 1. Claim the output: the input opens, the lock on `OUTPUT.lock` is ours, no results file
//!    is overwritten without `--resume`.
//! 2. The plan: one validation pass over the input before anything is sent.
//! 3. Send: per bucket a reader thread and a pool task; finished rows go to the journal.
//! 4. Compact the results file: one row per input row, sorted.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::api::{Client, Endpoint, fatal_advice};
use crate::config::{Mode, RunConfig};
use crate::credentials::{Credentials, Provider};
use crate::input::{InputError, Reader};
use crate::output::{self, Ending, Progress, Report};
use crate::plan::{self, Buckets, Plan, PlanError};
use crate::pool::{self, BucketReport, Counters, Pool, Reason, Settings, Stop};
use crate::results::{self, Counts, Journal, Resume, Status};
use crate::simulator::{self, Faults, Simulator, SimulatorConfig, SimulatorHandle};

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Usage, configuration or input: nothing was sent.
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Plan(#[from] PlanError),
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
    pub fn ending(&self) -> Ending {
        match self {
            Error::Input(_) | Error::Plan(_) | Error::Setup(_) => Ending::Unusable,
            Error::Locked { .. } => Ending::Locked,
            Error::Failed(error) => Ending::Internal(format!("{error:#}")),
        }
    }
}

/// Runs the job until it is done, stopped by a job-fatal answer, or `shutdown` resolves.
pub async fn run(config: RunConfig, shutdown: impl Future<Output = ()>) -> Result<Report, Error> {
    let started = Instant::now();
    let spooled = spool_stdin(&config.input)?;
    let input = spooled
        .as_ref()
        .map_or(config.input.clone(), |(_, path)| path.clone());
    // The simulator lives as long as this function: it is dropped after the last request.
    let (target, _simulator) = match &config.mode {
        Mode::DryRun { endpoint } => (Target::None(endpoint.clone()), None),
        Mode::Remote {
            endpoint,
            credentials,
        } => (Target::Send(endpoint.clone(), credentials.clone()), None),
        Mode::Simulator => {
            let (handle, endpoint, credentials) = start_simulator(&config).await?;
            (Target::Send(endpoint, credentials), Some(handle))
        }
    };
    let buckets = Buckets {
        scope: config.rate_scope,
        endpoint: target.endpoint().clone(),
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
    plan.log(config.rate, config.rate_scope);
    let mut report = Report {
        output: config.output.clone(),
        counts: Counts::default(),
        elapsed: Duration::ZERO,
        buckets: Vec::new(),
        stop: None,
        dry_run: matches!(target, Target::None(_)),
        problems: Vec::new(),
    };
    match target {
        Target::None(_) => {
            report
                .counts
                .by_status
                .insert(Status::Invalid, plan.n_invalid);
        }
        Target::Send(endpoint, credentials) => {
            tracing::info!("credentials from {}", credentials.source());
            let client =
                Client::new(endpoint, credentials, config.timeout).map_err(Error::Setup)?;
            let sent = send(&config, client, &input, &buckets, &plan, resume, shutdown).await?;
            (report.buckets, report.stop, report.problems) = sent;
            let output = config.output.clone();
            report.counts = blocking(move || results::compact(&input, &output))
                .await?
                .map_err(Error::Failed)?;
        }
    }
    drop(spooled);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Where the run's requests go, once the mode is carried out.
enum Target {
    /// Nothing is sent; the endpoint only names the buckets.
    None(Endpoint),
    Send(Endpoint, Provider),
}

impl Target {
    fn endpoint(&self) -> &Endpoint {
        match self {
            Target::None(endpoint) | Target::Send(endpoint, _) => endpoint,
        }
    }
}

/// Checks that the input opens (so a mistyped path leaves no lock file behind), then takes
/// the lock on the results file and refuses to overwrite one without `--resume`.
fn claim_output(config: &RunConfig, input: &Path) -> Result<Option<File>, Error> {
    Reader::open(input)?;
    if matches!(config.mode, Mode::DryRun { .. }) {
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

/// What sending found: each bucket's report, why the run stopped early if it did, and why
/// rows were left unrun if something other than a stop left them.
type Sent = (Vec<BucketReport>, Option<Reason>, Vec<String>);

/// Sends every planned row: a reader and a pool task per bucket, the journal thread, the
/// progress display.
async fn send(
    config: &RunConfig,
    client: Client,
    input: &Path,
    buckets: &Buckets,
    plan: &Plan,
    resume: Resume,
    shutdown: impl Future<Output = ()>,
) -> Result<Sent, Error> {
    let journal = Journal::open(&config.output, config.resume).map_err(Error::Setup)?;
    let progress = Arc::new(Progress::new(plan.n_to_send()));
    let (outcomes_tx, outcomes_rx) = mpsc::channel(1024);
    let written = progress.clone();
    let journal = results::spawn_journal(journal, outcomes_rx, move |o| written.record(o));
    let counters = Arc::new(Counters::default());
    let pool = Arc::new(Pool {
        client,
        settings: Settings {
            rate: config.rate,
            concurrency: config.concurrency,
            retry: config.retry,
        },
        stop: Stop::default(),
        counters: counters.clone(),
    });
    let stop = pool.stop.clone();
    let reporter = output::report(progress, counters, config.quiet);
    let resume = Arc::new(resume);
    let mut tasks = JoinSet::new();
    let mut readers = Vec::new();
    for (name, n_rows) in &plan.rows_per_bucket {
        let (rows, reader) = plan::spawn_reader(input, buckets, name, resume.clone());
        readers.push(reader);
        tasks.spawn(pool::drive(
            name.clone(),
            *n_rows,
            rows,
            pool.clone(),
            outcomes_tx.clone(),
        ));
    }
    // The journal ends when the last bucket task, holding the last sender, is done.
    drop(outcomes_tx);
    drop(pool);
    let (mut reports, mut problems) = wait_for(tasks, &stop, shutdown).await;
    drop(reporter);
    for reader in readers {
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => problems.push(format!("reading the input failed: {error}")),
            Err(error) => problems.push(format!("a reader thread failed: {error}")),
        }
    }
    let journaled = journal.await.map_err(|e| Error::Failed(e.into()))?;
    if let Err(error) = journaled {
        let why = format!("{error:#}");
        tracing::error!("{why}");
        stop.trigger(Reason::Journal(why));
    }
    if let Some(Reason::Fatal(error)) = stop.reason() {
        tracing::error!("stopped: {}", fatal_advice(&error));
    }
    for problem in &problems {
        tracing::error!("{problem}");
    }
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((reports, stop.reason(), problems))
}

/// Waits for every bucket task; when `shutdown` resolves first, stops them gently. Returns
/// the reports of the tasks that finished and a word for each that did not.
async fn wait_for(
    mut tasks: JoinSet<BucketReport>,
    stop: &Stop,
    shutdown: impl Future<Output = ()>,
) -> (Vec<BucketReport>, Vec<String>) {
    let (mut reports, mut problems) = (Vec::new(), Vec::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(report)) => reports.push(report),
                Some(Err(error)) => problems.push(format!("a bucket task failed: {error}")),
                None => return (reports, problems),
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
async fn start_simulator(
    config: &RunConfig,
) -> Result<(SimulatorHandle, Endpoint, Provider), Error> {
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
    let endpoint = Endpoint::new(&handle.endpoint());
    let credentials = Provider::Static {
        credentials: Credentials::new(
            simulator::DEFAULT_SECRET_ID,
            simulator::DEFAULT_SECRET_KEY,
            None,
        ),
        source: "the simulator's built-in account".to_string(),
    };
    Ok((handle, endpoint, credentials))
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
