//! The run: from a `RunConfig` to a finished results file and a [`Report`].
//!
//! 1. Open the input once; claim the output: the lock on `OUTPUT.lock` is ours, no earlier
//!    results or record are overwritten without `--resume`.
//! 2. The plan: one validation pass over the input before anything is sent.
//! 3. Send: per bucket, look up what is shared in its regions (SPEC §9), then a reader thread
//!    that settles the rows already as asked and a pool task that sends the rest; finished
//!    rows go to the record. A dry run stops after the look-up and prints the plan.
//! 4. Give rows shared without a BlueprintId theirs from a fresh look-up of their region.
//! 5. Render the results file from the input and the record.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::api::{Client, Endpoint, fatal_advice};
use crate::config::{Mode, RunConfig};
use crate::credentials::{Credentials, Provider};
use crate::decide::{Decider, State};
use crate::input::{InputError, Source};
use crate::lookup::Lookups;
use crate::output::{self, Ending, Progress, Report};
use crate::plan::{self, Buckets, Plan, PlanError};
use crate::pool::{self, BucketReport, Counters, Pool, Reason, Settings, Stop};
use crate::results::{self, Counts, Destination, Journal, Outcome, Resume, Status};
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
    /// A signal came before anything was sent: nothing was sent or written.
    #[error("interrupted before anything was sent: nothing was sent, no results were written")]
    Interrupted,
}

impl Error {
    pub fn ending(&self) -> Ending {
        match self {
            Error::Plan(PlanError::Interrupted) => Ending::Interrupted,
            Error::Input(_) | Error::Plan(_) | Error::Setup(_) => Ending::Unusable,
            Error::Locked { .. } => Ending::Locked,
            Error::Failed(error) => Ending::Internal(format!("{error:#}")),
            Error::Interrupted => Ending::Interrupted,
        }
    }
}

/// Runs the job until it is done, stopped by a job-fatal answer, or `shutdown` resolves.
pub async fn run(config: RunConfig, shutdown: impl Future<Output = ()>) -> Result<Report, Error> {
    let started = Instant::now();
    tracing::debug!("settings: {}", config.settings());
    let mut shutdown = std::pin::pin!(shutdown);
    let input = {
        let (path, sheet) = (config.input.clone(), config.sheet.clone());
        Arc::new(blocking(move || Source::open(&path, sheet.as_deref())).await??)
    };
    // The simulator lives as long as this function: it is dropped after the last request.
    let (target, _simulator) = match &config.mode {
        Mode::Offline { endpoint } => (Target::None(endpoint.clone()), None),
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
    let _lock = claim_output(&config)?;
    let resume = match config.resume {
        true => Resume::load(&config.record, &config.target).map_err(Error::Setup)?,
        false => Resume::default(),
    };
    let (plan, resume) = {
        let (input, buckets) = (input.clone(), buckets.clone());
        let cancel = Arc::new(AtomicBool::new(false));
        let cancelled = cancel.clone();
        let mut planning = std::pin::pin!(blocking(move || {
            Plan::make(&input, &buckets, &resume, &cancelled).map(|p| (p, resume))
        }));
        tokio::select! {
            biased;
            () = shutdown.as_mut() => {
                // The validation pass stops at its next row; the lock is let go after it.
                cancel.store(true, Ordering::Relaxed);
                let _ = planning.await;
                return Err(Error::Interrupted);
            }
            planned = &mut planning => planned??,
        }
    };
    plan.log(config.rate, &buckets);
    let mut report = Report {
        output: config.output.clone(),
        n_unmatched: 0,
        counts: Counts::default(),
        elapsed: Duration::ZERO,
        buckets: Vec::new(),
        stop: None,
        dry_run: config.dry_run,
        problems: Vec::new(),
        n_lookups: 0,
        n_settled: 0,
        flipping: plan.flipping.describe(),
        n_drifted: 0,
        unknown_listings: Vec::new(),
    };
    match target {
        Target::None(_) => {
            report
                .counts
                .by_status
                .insert(Status::Invalid, plan.n_invalid);
        }
        Target::Send(endpoint, credentials) if config.dry_run => {
            tracing::info!("credentials from {}", credentials.source());
            let client =
                Client::new(endpoint, credentials, config.timeout).map_err(Error::Setup)?;
            report.n_lookups = dry_run(&config, client, &input, &buckets, &plan, resume).await?;
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
            let retries = sent.retries;
            (report.buckets, report.stop, report.problems) =
                (sent.reports, sent.stop, sent.problems);
            (report.n_lookups, report.n_settled) = (sent.n_lookups, sent.n_settled);
            (report.n_drifted, report.unknown_listings) = (sent.n_drifted, sent.unknown_listings);
            let (record, target, output) = (
                config.record.clone(),
                config.target.clone(),
                config.output.clone(),
            );
            let repeats = plan.repeats.clone();
            let rendered = blocking(move || {
                results::render(&input, &repeats, &record, &target, &output)
            })
                .await?
                .map_err(|error| {
                    let recorded = match &report.stop {
                        Some(Reason::Journal(_)) => "the rows recorded before the record failed are in",
                        _ => "every finished row is in",
                    };
                    Error::Failed(error.context(format!(
                        "the results file {} was not written; {recorded} the record {}: run again with --resume to write it",
                        config.output,
                        config.record.display()
                    )))
                })?;
            report.counts = rendered.counts;
            report.counts.retries = retries;
            report.n_unmatched = rendered.n_unmatched;
        }
    }
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

/// Takes the lock, and refuses to start over an earlier run's results or record without
/// `--resume`. Whatever could stop the run at its end (an output that is a directory, a
/// directory that cannot take the final rewrite) is found here, before the first request.
/// A dry run checks the same but leaves nothing behind: it only tests a lock that exists
/// (a run holding it made it), and creates none.
fn claim_output(config: &RunConfig) -> Result<Option<File>, Error> {
    if matches!(config.mode, Mode::Offline { .. }) {
        return Ok(None);
    }
    if let Destination::File(path) = &config.output
        && path.is_dir()
    {
        return Err(Error::Setup(anyhow::anyhow!(
            "the output {} is a directory: give --output a file path, such as {}",
            path.display(),
            path.join("images.results.csv").display()
        )));
    }
    check_writable(&config.record)?;
    let lock = match config.dry_run && !config.lock.exists() {
        true => None,
        false => Some(lock(&config.lock, &config.output, !config.dry_run)?),
    };
    let output = match &config.output {
        Destination::File(path) if path.symlink_metadata().is_ok() => Some(path),
        _ => None,
    };
    let has_record = config.record.symlink_metadata().is_ok();
    match (config.resume, output, has_record) {
        // A file at the output with no record of ours beside it is not our results file
        // (or its record is gone): nothing can be continued, and it is not ours to replace.
        (_, Some(output), false) => Err(Error::Setup(anyhow::anyhow!(
            "{} already exists and no record of a run that wrote it ({}) is beside it: it is not a results file this tool can continue. Give another --output, or move that file away",
            output.display(),
            config.record.display()
        ))),
        (false, _, true) => Err(Error::Setup(anyhow::anyhow!(
            "an earlier run's record {} exists: add --resume to continue it (finished rows are kept, not sent again), or give another --output, or move the results file and {} away",
            config.record.display(),
            config.record.display()
        ))),
        _ => Ok(()),
    }?;
    Ok(lock)
}

/// Creates and removes a file beside the results file: the final rewrite needs to, and a
/// directory that refuses it should stop the run before the first request, not after the
/// last.
fn check_writable(output: &Path) -> Result<(), Error> {
    let dir = match output.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".lighthouse-share-check")
        .tempfile_in(dir)
        .map(drop)
        .with_context(|| {
            format!(
                "cannot write in {}, where this run keeps {}: make the directory writable, or give another --output",
                dir.display(),
                output.display()
            )
        })
        .map_err(Error::Setup)
}

/// What sending found.
struct Sent {
    reports: Vec<BucketReport>,
    /// Why the run stopped early, if it did.
    stop: Option<Reason>,
    /// Why rows were left unrun, if something other than a stop left them.
    problems: Vec<String>,
    retries: u64,
    /// `DescribeBlueprints` requests.
    n_lookups: u64,
    /// Rows the look-up settled: already as asked, not sent.
    n_settled: u64,
    /// Images found changed outside this tool since the last run.
    n_drifted: u64,
    /// Regions whose look-up proved nothing, and why.
    unknown_listings: Vec<String>,
}

/// A dry run after its checks: looks up every bucket's regions in parallel (paced per bucket)
/// and logs the plan. Returns the number of look-up requests. A job-fatal look-up answer is
/// what would stop the run: exit 2, nothing having been written.
async fn dry_run(
    config: &RunConfig,
    client: Client,
    input: &Arc<Source>,
    buckets: &Buckets,
    plan: &Plan,
    resume: Resume,
) -> Result<u64, Error> {
    let stop = Stop::default();
    let lookups = Arc::new(Lookups::new(
        Arc::new(client),
        config.retry,
        stop.clone(),
        config.describe_rate,
    ));
    let mut state = State::new();
    if config.lookup {
        let mut tasks = JoinSet::new();
        for (name, regions) in &plan.regions_per_bucket {
            let (lookups, name) = (lookups.clone(), name.clone());
            let regions: Vec<&'static str> = regions.iter().copied().collect();
            tasks.spawn(async move { lookups.bucket(&name, &regions).await });
        }
        while let Some(joined) = tasks.join_next().await {
            state.extend(joined.map_err(|e| Error::Failed(e.into()))?);
        }
    }
    if let Some(Reason::Fatal(error)) = stop.reason() {
        return Err(Error::Setup(anyhow::anyhow!(
            "the look-up was refused, so a run would stop: {}",
            fatal_advice(&error)
        )));
    }
    let (input, buckets, repeats) = (input.clone(), buckets.clone(), plan.repeats.clone());
    let resume = Arc::new(resume);
    let plans =
        blocking(move || plan::dry_run(&input, &buckets, resume, &repeats, state)).await??;
    plan::log_dry_run(&plans, plan.n_invalid, config.rate);
    Ok(lookups.n_requests.load(Ordering::Relaxed))
}

/// Rows that ended shared without a BlueprintId get it from one fresh look-up of their
/// region each (SPEC §9); returns the rows it mended, to be appended to the record.
async fn mend(lookups: &Arc<Lookups>, buckets: &Buckets, rows: Vec<Outcome>) -> Vec<Outcome> {
    let mut by_region: BTreeMap<&'static str, Vec<Outcome>> = BTreeMap::new();
    for outcome in rows {
        if let Some(region) = crate::action::supported_region(&outcome.identity.region) {
            by_region.entry(region).or_default().push(outcome);
        }
    }
    let mut tasks = JoinSet::new();
    for (region, rows) in by_region {
        let (lookups, bucket) = (lookups.clone(), buckets.of(region));
        tasks.spawn(async move { (lookups.fresh(&bucket, region).await, rows) });
    }
    let mut mended = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((Some(images), rows)) = joined else {
            continue;
        };
        for mut outcome in rows {
            match images.get(&outcome.identity.image_id) {
                Some(blueprint) => {
                    outcome.blueprint_id = Some(blueprint.clone());
                    outcome.error_message = None;
                    mended.push(outcome);
                }
                None => tracing::warn!(
                    line = outcome.line,
                    image_id = %outcome.identity.image_id,
                    "line {}: {} is shared, but no blueprint of {} was found: its BlueprintId is left empty",
                    outcome.line,
                    outcome.identity.image_id,
                    outcome.identity.region
                ),
            }
        }
    }
    mended
}

/// Sends every planned row: a reader and a pool task per bucket, the journal thread, the
/// progress display.
async fn send(
    config: &RunConfig,
    client: Client,
    input: &Arc<Source>,
    buckets: &Buckets,
    plan: &Plan,
    resume: Resume,
    shutdown: impl Future<Output = ()>,
) -> Result<Sent, Error> {
    let client = Arc::new(client);
    let journal = match config.resume {
        true => Journal::resume(&config.record, &config.target),
        false => Journal::create(&config.record, &config.target),
    }
    .map_err(Error::Setup)?;
    let progress = Arc::new(Progress::new(plan.n_to_send()));
    let (outcomes_tx, outcomes_rx) = mpsc::channel(1024);
    let stop = Stop::default();
    let lookups = Arc::new(Lookups::new(
        client.clone(),
        config.retry,
        stop.clone(),
        config.describe_rate,
    ));
    // Rows shared without a BlueprintId, for the fresh look-up; and the rows the look-up
    // settled, for the summary.
    let unnamed = Arc::new(Mutex::new(Vec::new()));
    let n_settled = Arc::new(AtomicU64::new(0));
    let written = (
        progress.clone(),
        stop.clone(),
        config.max_failures,
        unnamed.clone(),
        n_settled.clone(),
    );
    let journal = results::spawn_journal(
        journal,
        config.record.clone(),
        outcomes_rx,
        move |outcome| {
            let (progress, stop, max_failures, unnamed, n_settled) = &written;
            progress.record(outcome);
            match outcome.status {
                Status::AlreadyShared | Status::Shared if outcome.blueprint_id.is_none() => {
                    unnamed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(outcome.clone());
                }
                _ => {}
            }
            if outcome.attempts == 0
                && matches!(
                    outcome.status,
                    Status::AlreadyShared | Status::AlreadyUnshared
                )
            {
                n_settled.fetch_add(1, Ordering::Relaxed);
            }
            // Counted here, where every finished row of every bucket passes once.
            if let Some(threshold) = *max_failures {
                let (n_failed, n_finished) = (progress.n_failed(), progress.n_finished());
                if threshold.is_passed(n_failed, n_finished) {
                    stop.trigger(Reason::TooManyFailures {
                        threshold,
                        n_failed,
                        n_finished,
                    });
                }
            }
        },
    );
    let counters = Arc::new(Counters::default());
    let pool = Arc::new(Pool {
        client,
        settings: Settings {
            rate: config.rate,
            concurrency: config.concurrency,
            retry: config.retry,
        },
        stop: stop.clone(),
        counters: counters.clone(),
    });
    let reporter = output::report(progress.clone(), counters, config.quiet);
    let resume = Arc::new(resume);
    let n_drifted = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for (name, regions) in &plan.regions_per_bucket {
        let regions: Vec<&'static str> = regions.iter().copied().collect();
        let n_rows = plan.rows_per_bucket.get(name).copied().unwrap_or(0);
        let (input, buckets, name, resume) =
            (input.clone(), buckets.clone(), name.clone(), resume.clone());
        let (pool, outcomes_tx, lookups) = (pool.clone(), outcomes_tx.clone(), lookups.clone());
        let (lookup, repeats) = (config.lookup, plan.repeats.clone());
        let n_drifted = n_drifted.clone();
        // The bucket's writes start as soon as its own regions are looked up.
        tasks.spawn(async move {
            let state = match lookup {
                true => lookups.bucket(&name, &regions).await,
                false => State::new(),
            };
            let (rows, reader) = plan::spawn_reader(
                input,
                &buckets,
                &name,
                repeats,
                Decider::new(state, resume, n_drifted),
                outcomes_tx.clone(),
            );
            let report = pool::drive(name, n_rows, rows, pool, outcomes_tx).await;
            let problem = match reader.await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(format!("reading the input failed: {error}")),
                Err(error) => Some(format!("a reader thread failed: {error}")),
            };
            (report, problem)
        });
    }
    // The journal ends when the last bucket task, holding the last sender, is done.
    drop(outcomes_tx);
    drop(pool);
    let (mut reports, mut problems) = wait_for(tasks, &stop, shutdown).await;
    drop(reporter);
    let journaled = journal.await.map_err(|e| Error::Failed(e.into()))?;
    if let Err(error) = journaled {
        let why = format!("{error:#}");
        tracing::error!("{why}");
        stop.trigger(Reason::Journal(why));
    }
    let unnamed = std::mem::take(&mut *unnamed.lock().unwrap_or_else(|e| e.into_inner()));
    // Made with --no-lookup too: it sends no row, and every shared row should say its BlueprintId.
    if !unnamed.is_empty() && !lookups.was_refused() && !stop.is_stopped() {
        let mended = mend(&lookups, buckets, unnamed).await;
        let appended = Journal::resume(&config.record, &config.target).and_then(|mut journal| {
            journal.append(&mended)?;
            Ok(journal.sync()?)
        });
        if let Err(error) = appended {
            problems.push(format!(
                "the BlueprintIds found could not be recorded: {error:#}"
            ));
        }
    }
    match stop.reason() {
        Some(Reason::Fatal(error)) => tracing::error!("stopped: {}", fatal_advice(&error)),
        Some(reason @ Reason::TooManyFailures { .. }) => {
            if let Some(passed) = reason.threshold_passed() {
                tracing::error!("stopped: {passed}; the rest are skipped");
            }
        }
        _ => {}
    }
    for problem in &problems {
        tracing::error!("{problem}");
    }
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Sent {
        reports,
        stop: stop.reason(),
        problems,
        retries: progress.retries(),
        n_lookups: lookups.n_requests.load(Ordering::Relaxed),
        n_settled: n_settled.load(Ordering::Relaxed),
        n_drifted: n_drifted.load(Ordering::Relaxed),
        unknown_listings: lookups.unknown(),
    })
}

/// Waits for every bucket task; when `shutdown` resolves first, stops them gently. Returns
/// the reports of the tasks that finished and a word for each that did not.
async fn wait_for(
    mut tasks: JoinSet<(BucketReport, Option<String>)>,
    stop: &Stop,
    shutdown: impl Future<Output = ()>,
) -> (Vec<BucketReport>, Vec<String>) {
    let (mut reports, mut problems) = (Vec::new(), Vec::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok((report, problem))) => {
                    reports.push(report);
                    problems.extend(problem);
                }
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

/// Holds the lock beside the results for the whole run. It is never a link: a link planted
/// at its name is refused rather than followed.
/// A dry run (`create` false) only opens a lock that exists.
fn lock(path: &Path, output: &Destination, create: bool) -> Result<File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .create(create)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot create the lock file {}", path.display()))
        .map_err(Error::Setup)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            output: match output {
                Destination::File(path) => path.clone(),
                Destination::Stdout => path.to_path_buf(),
            },
            lock: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Setup(anyhow::anyhow!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}
