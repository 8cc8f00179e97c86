//! The run: from a `RunConfig` to a finished results file and a [`Report`], as a short
//! sequence of stages over one [`Job`]:
//!
//! 1. Open the input once; claim the output: the lock on `OUTPUT.lock` is ours, no earlier
//!    results or record are overwritten without `--resume`.
//! 2. Plan: one validation pass over the input before anything is sent; its rows to send
//!    make the job's buckets.
//! 3. Look up what is shared in every bucket's regions (SPEC §9). A dry run stops here: it
//!    asks which SHARE rows the service would refuse (the preflight, SPEC §10) and prints
//!    the plan.
//! 4. Write: the one reader settles the rows already as asked and streams the rest to their
//!    buckets' write tasks; finished rows go to the record.
//! 5. Give rows shared without a BlueprintId theirs from a fresh look-up of their region;
//!    tell rows refused as not found where their image is.
//! 6. Render the results file from the input and the record.
//!
//! Every request of every stage goes through the one [`Engine`]; a signal at any stage
//! stops it the same way (the engine's [`Stop`]).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::api::{Client, Endpoint, fatal_advice};
use crate::config::{Connection, RunConfig};
use crate::credentials::{Credentials, Provider};
use crate::decide::{Decider, State};
use crate::engine::{Engine, Reason, Stop};
use crate::input::{InputError, Row, Source};
use crate::job::{Buckets, Job, Pacing};
use crate::lookup::Lookups;
use crate::output::{self, Ending, Progress, Report, plural};
use crate::plan::{self, Plan, PlanError};
use crate::preflight::{self, Findings};
use crate::results::{self, Destination, Journal, Outcome, Recorded, Resume};
use crate::simulator::{self, Faults, Simulator, SimulatorConfig, SimulatorHandle};
use crate::writes::{self, Sink};

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
        let (path, sheet) = (config.input().path.clone(), config.input().sheet.clone());
        Arc::new(blocking(move || Source::open(&path, sheet.as_deref())).await??)
    };
    // The simulator lives as long as this function: it is dropped after the last request.
    let (target, _simulator) = target(&config).await?;
    let _lock = claim_output(&config)?;
    let resume = match config.mode().resume {
        true => Resume::load(&config.output().record, &config.mode().record_target)
            .map_err(Error::Setup)?,
        false => Resume::default(),
    };
    let output = config.output().results.clone();
    let (plan, resume) = make_plan(input.clone(), resume, output, shutdown.as_mut()).await?;
    let buckets = Buckets {
        scope: config.pacing().rate_scope,
        endpoint: target.endpoint().clone(),
    };
    let pacing = pacing(&config, &buckets, &plan);
    let job = Job::new(buckets, &plan.rows_per_region, &pacing);
    plan.log(config.pacing().rate, &job);
    let flipping = plan.flipping.describe();
    let mut report = Report::new(
        config.output().results.clone(),
        config.mode().dry_run,
        plan.n_invalid,
        flipping,
    );
    if let Target::Send(endpoint, credentials) = target {
        tracing::info!("credentials from {}", credentials.source());
        let client =
            Client::new(endpoint, credentials, config.pacing().timeout).map_err(Error::Setup)?;
        let engine = Arc::new(
            Engine::new(Arc::new(client), config.pacing().retry, Stop::default())
                .with_failure_limit(config.pacing().max_failures),
        );
        let stages = Stages {
            config: &config,
            engine,
            job: &job,
            input,
            plan: &plan,
        };
        match config.mode().dry_run {
            true => (report.n_would_fail, report.n_unchecked) = stages.dry_run(resume).await?,
            false => stages.write(resume, shutdown, &mut report).await?,
        }
        report.lanes = job.reports();
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The pace of each action's lanes. Every bucket sends at once, so the requests in flight
/// per lane are capped to share the open-files limit among the buckets (said once when that
/// cuts `--concurrency`).
fn pacing(config: &RunConfig, buckets: &Buckets, plan: &Plan) -> Pacing {
    let n_buckets = plan
        .rows_per_region
        .keys()
        .map(|region| buckets.of(region))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let (concurrency, capped) = config.pacing().in_flight_per_bucket(n_buckets);
    if let Some(capped) = capped {
        tracing::warn!("{capped}");
    }
    Pacing {
        rate: config.pacing().rate,
        describe_rate: config.pacing().describe_rate,
        concurrency,
    }
}

/// Where requests go: nowhere (offline), the configured endpoint, or a simulator started
/// here for the run.
async fn target(config: &RunConfig) -> Result<(Target, Option<SimulatorHandle>), Error> {
    Ok(match &config.mode().connection {
        Connection::Offline { endpoint } => (Target::None(endpoint.clone()), None),
        Connection::Remote {
            endpoint,
            credentials,
        } => (Target::Send(endpoint.clone(), credentials.clone()), None),
        Connection::Simulator => {
            // A rehearsal that resumes meets the account its last run left.
            let shared = match config.mode().resume && config.output().record.exists() {
                true => {
                    Resume::shared_images(&config.output().record, &config.mode().record_target)
                        .map_err(Error::Setup)?
                }
                false => Vec::new(),
            };
            let (handle, endpoint, credentials) = start_simulator(config, shared).await?;
            (Target::Send(endpoint, credentials), Some(handle))
        }
    })
}

/// The validation pass, off the runtime's threads; a signal stops it at its next row.
async fn make_plan(
    input: Arc<Source>,
    resume: Resume,
    output: Destination,
    shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<(Plan, Resume), Error> {
    let cancel = Arc::new(AtomicBool::new(false));
    let cancelled = cancel.clone();
    let mut planning = std::pin::pin!(blocking(move || {
        Plan::make(&input, &resume, &output, &cancelled).map(|p| (p, resume))
    }));
    tokio::select! {
        biased;
        () = shutdown => {
            // The validation pass stops at its next row; the lock is let go after it.
            cancel.store(true, Ordering::Relaxed);
            let _ = planning.await;
            Err(Error::Interrupted)
        }
        planned = &mut planning => Ok(planned??),
    }
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
fn claim_output(config: &RunConfig) -> Result<Option<Lock>, Error> {
    if matches!(config.mode().connection, Connection::Offline { .. }) {
        return Ok(None);
    }
    if let Destination::File(path) = &config.output().results
        && path.is_dir()
    {
        return Err(Error::Setup(anyhow::anyhow!(
            "the output {} is a directory: give --output a file path, such as {}",
            crate::text::path(path),
            crate::text::path(&path.join("images.results.csv"))
        )));
    }
    if config.output().results == Destination::Stdout && stdout_is_null() {
        tracing::warn!(
            "standard output is /dev/null (or was closed, which the system makes /dev/null): the results written there (-o -) are lost; the record {} keeps every row, and --output FILE writes them where they stay",
            crate::text::path(&config.output().record)
        );
    }
    check_writable(&config.output().record)?;
    let lock = match config.mode().dry_run && !config.output().lock.exists() {
        true => None,
        false => Some(lock(
            &config.output().lock,
            &config.output().results,
            !config.mode().dry_run,
        )?),
    };
    let output = match &config.output().results {
        Destination::File(path) if path.symlink_metadata().is_ok() => Some(path),
        _ => None,
    };
    let has_record = config.output().record.symlink_metadata().is_ok();
    match (config.mode().resume, output, has_record) {
        // A file at the output with no record of ours beside it is not our results file
        // (or its record is gone): nothing can be continued, and it is not ours to replace.
        (_, Some(output), false) => Err(Error::Setup(anyhow::anyhow!(
            "{} already exists and no record of a run that wrote it ({}) is beside it: it is not a results file this tool can continue. Give another --output, or move that file away",
            crate::text::path(output),
            crate::text::path(&config.output().record)
        ))),
        (false, _, true) => Err(Error::Setup(anyhow::anyhow!(
            "an earlier run's record {} exists: add --resume to continue it (finished rows are kept, not sent again), or give another --output, or move the results file and {} away",
            crate::text::path(&config.output().record),
            crate::text::path(&config.output().record)
        ))),
        _ => Ok(()),
    }?;
    Ok(lock)
}

/// Whether standard output is the null device: a program started with it closed gets
/// /dev/null there, so a closed one looks the same.
fn stdout_is_null() -> bool {
    use std::os::unix::fs::MetadataExt;
    let null = std::fs::metadata("/dev/null").map(|m| m.rdev());
    let stdout = std::fs::metadata("/proc/self/fd/1").map(|m| m.rdev());
    matches!((null, stdout), (Ok(null), Ok(stdout)) if null == stdout)
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
                crate::text::path(dir),
                crate::text::path(output)
            )
        })
        .map_err(Error::Setup)
}

/// What the stages after the plan share.
struct Stages<'a> {
    config: &'a RunConfig,
    engine: Arc<Engine>,
    job: &'a Job,
    input: Arc<Source>,
    plan: &'a Plan,
}

impl Stages<'_> {
    fn stop(&self) -> &Stop {
        self.engine.stop()
    }

    /// The state of every bucket's regions, unless `--no-lookup`.
    async fn look_up(&self, lookups: &Arc<Lookups>) -> State {
        match self.config.mode().lookup {
            true => lookups.job(self.job).await,
            false => State::new(),
        }
    }

    /// A dry run after its checks: looks up the state, asks which SHARE rows would fail, and
    /// logs the plan; returns how many would, and how many could not be checked (no
    /// answer). A job-fatal answer is what would stop the run: exit 2, nothing having been
    /// written.
    async fn dry_run(&self, resume: Resume) -> Result<(u64, u64), Error> {
        let state = self.look_up(&Lookups::new(self.engine.clone())).await;
        if let Some(Reason::Fatal(error)) = self.stop().reason() {
            return Err(Error::Setup(anyhow::anyhow!(
                "the look-up was refused, so a run would stop: {}",
                fatal_advice(&error)
            )));
        }
        let (input, buckets) = (self.input.clone(), self.job.buckets.clone());
        let repeats = self.plan.repeats.clone();
        let resume = Arc::new(resume);
        let (plans, to_share) =
            blocking(move || plan::dry_run(&input, &buckets, resume, &repeats, state)).await??;
        let findings = self.preflight(&to_share).await?;
        let n_would_fail = findings.as_ref().and_then(|findings| {
            preflight::log(findings);
            let judged = findings.refused.is_none();
            judged.then_some(findings.failing.len() as u64)
        });
        let rate = self.config.pacing().rate;
        plan::log_dry_run(&plans, self.plan.n_invalid, n_would_fail, rate);
        let n_unchecked = findings.map_or(0, |findings| findings.n_unchecked);
        Ok((n_would_fail.unwrap_or(0), n_unchecked))
    }

    /// The preflight of a dry run (SPEC §10): `None` with `--no-preflight`.
    async fn preflight(&self, to_share: &[Row]) -> Result<Option<Findings>, Error> {
        if !self.config.mode().preflight {
            return Ok(None);
        }
        let ask = preflight::through(self.engine.clone(), self.job);
        match preflight::check(to_share, ask).await {
            Ok(findings) => Ok(Some(findings)),
            Err(error) => Err(Error::Setup(anyhow::anyhow!(
                "the preflight (DescribeImagesToShare) was refused, so a run would stop: {}",
                fatal_advice(&error)
            ))),
        }
    }

    /// The run proper: look-up, writes, BlueprintIds, results file; the report says what
    /// happened. A signal at any point stops the stages through the engine's stop.
    async fn write(
        &self,
        resume: Resume,
        shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
        report: &mut Report,
    ) -> Result<(), Error> {
        let journal = match self.config.mode().resume {
            true => Journal::resume(
                &self.config.output().record,
                &self.config.mode().record_target,
            ),
            false => Journal::create(
                &self.config.output().record,
                &self.config.mode().record_target,
            ),
        }
        .map_err(Error::Setup)?;
        let (outcomes_tx, outcomes_rx) = mpsc::channel(1024);
        let recording =
            results::spawn_journal(journal, self.config.output().record.clone(), outcomes_rx);
        let progress = Arc::new(Progress::new(self.plan.n_to_send()));
        let reporter = output::report(
            progress.clone(),
            self.engine.clone(),
            self.config.output().quiet,
        );
        let sink = Sink::new(outcomes_tx, progress.clone(), self.engine.clone());
        let lookups = Lookups::new(self.engine.clone());
        let n_drifted = Arc::new(AtomicU64::new(0));
        let sending = self.send(&lookups, resume, sink, n_drifted.clone());
        report.problems = until_done(sending, shutdown, self.stop()).await;
        report.n_drifted = n_drifted.load(Ordering::Relaxed);
        report.unknown_listings = lookups.unknown();
        drop(reporter);
        let recorded = match recording.await.map_err(|e| Error::Failed(e.into()))? {
            Ok(recorded) => recorded,
            Err(error) => {
                let why = format!("{error:#}");
                tracing::error!("{why}");
                self.stop().trigger(Reason::Journal(why));
                Recorded::default()
            }
        };
        report.n_settled = recorded.n_settled;
        let (n_unnamed, problem) = self.name_blueprints(&lookups, recorded.unnamed).await;
        report.n_unnamed = n_unnamed;
        report.problems.extend(problem);
        report.stop = self.stop().reason();
        say_why_stopped(report);
        // After the ending is known: the hint only explains, and changes no ending.
        if let Some(problem) = self.explain(recorded.not_found).await {
            tracing::error!("{problem}");
            report.problems.push(problem);
        }
        self.render(report).await
    }

    /// Looks up the state, then streams the rows to their buckets' write tasks until every
    /// row is finished or the job stops. Returns why rows were left unrun, if anything but
    /// a stop left them.
    async fn send(
        &self,
        lookups: &Arc<Lookups>,
        resume: Resume,
        sink: Sink,
        n_drifted: Arc<AtomicU64>,
    ) -> Vec<String> {
        let state = self.look_up(lookups).await;
        let resume = Arc::new(resume);
        let (incoming, reader) = plan::spawn_reader(
            self.input.clone(),
            self.job,
            resume.clone(),
            self.plan.repeats.clone(),
            Decider::new(state, resume, n_drifted),
            sink.clone(),
        );
        let mut tasks = JoinSet::new();
        for (bucket, rows) in incoming {
            tasks.spawn(writes::drive(
                self.engine.clone(),
                bucket,
                rows,
                sink.clone(),
            ));
        }
        drop(sink);
        let mut problems = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Err(error) = joined {
                problems.push(format!("a bucket task failed: {error}"));
            }
        }
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => problems.push(format!("reading the input failed: {error}")),
            Err(error) => problems.push(format!("the reader thread failed: {error}")),
        }
        problems
    }
}

impl Stages<'_> {
    /// Rows that ended shared without a BlueprintId get it from one fresh look-up of their
    /// region each (SPEC §9), appended to the record. Made with --no-lookup too: it sends no
    /// row, and every shared row should say its BlueprintId. Returns what went wrong, if
    /// the BlueprintIds found could not be recorded, and how many rows are left without one.
    async fn name_blueprints(
        &self,
        lookups: &Arc<Lookups>,
        rows: Vec<Outcome>,
    ) -> (u64, Option<String>) {
        let n_rows = rows.len() as u64;
        if rows.is_empty() || lookups.was_refused() || self.stop().is_stopped() {
            return (n_rows, None);
        }
        let mended = self.mend(lookups, rows).await;
        let problem = self
            .append(&mended)
            .err()
            .map(|error| format!("the BlueprintIds found could not be recorded: {error:#}"));
        (n_rows - mended.len() as u64, problem)
    }

    /// Rows refused because their image is not in their region get, in their message, the
    /// region where it is (SPEC §10), appended to the record; not with `--no-preflight`.
    /// Returns what went wrong, if the messages could not be recorded.
    async fn explain(&self, rows: Vec<Outcome>) -> Option<String> {
        if rows.is_empty() || !self.config.mode().preflight || self.stop().is_stopped() {
            return None;
        }
        let ask = preflight::through(self.engine.clone(), self.job);
        let hinted = match preflight::hint(rows, &ask).await {
            Ok(hinted) => hinted,
            Err(error) => {
                tracing::warn!(
                    "cannot say where the images not found are: {}",
                    fatal_advice(&error)
                );
                return None;
            }
        };
        self.append(&hinted)
            .err()
            .map(|error| format!("where the images not found are could not be recorded: {error:#}"))
    }

    /// Appends rows mended after the writes to the record: the last record of a row is its
    /// result.
    fn append(&self, rows: &[Outcome]) -> anyhow::Result<()> {
        let mut journal = Journal::resume(
            &self.config.output().record,
            &self.config.mode().record_target,
        )?;
        journal.append(rows)?;
        Ok(journal.sync()?)
    }

    /// The rows of `rows` whose image a fresh look-up of its region finds, with the
    /// BlueprintId found.
    async fn mend(&self, lookups: &Arc<Lookups>, rows: Vec<Outcome>) -> Vec<Outcome> {
        let mut by_region: BTreeMap<&'static str, Vec<Outcome>> = BTreeMap::new();
        for outcome in rows {
            if let Some(region) = crate::action::supported_region(&outcome.identity.region) {
                by_region.entry(region).or_default().push(outcome);
            }
        }
        let mut tasks = JoinSet::new();
        for (region, rows) in by_region {
            let Some(bucket) = self.job.of(region).cloned() else {
                continue;
            };
            let lookups = lookups.clone();
            tasks.spawn(async move { (region, lookups.fresh(&bucket, region).await, rows) });
        }
        let mut mended = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let Ok((region, images, rows)) = joined else {
                continue;
            };
            let Some(images) = images else {
                tracing::warn!(
                    region,
                    "{region}: the fresh look-up for the BlueprintIds of {} could not be made whole: their blueprint_id is left empty",
                    plural(rows.len() as u64, "shared row", "shared rows")
                );
                continue;
            };
            mended.extend(
                rows.into_iter()
                    .filter_map(|outcome| named(outcome, &images)),
            );
        }
        mended
    }

    /// Renders the results file from the input and the record; fills the report's counts.
    async fn render(&self, report: &mut Report) -> Result<(), Error> {
        let (input, repeats, wide) = (
            self.input.clone(),
            self.plan.repeats.clone(),
            self.plan.wide,
        );
        let (record, target, output) = (
            self.config.output().record.clone(),
            self.config.mode().record_target.clone(),
            self.config.output().results.clone(),
        );
        let rendered =
            blocking(move || results::render(&input, (&repeats, wide), &record, &target, &output))
                .await?
                .map_err(|error| {
                    let recorded = match &report.stop {
                        Some(Reason::Journal(_)) => {
                            "the rows recorded before the record failed are in"
                        }
                        _ => "every finished row is in",
                    };
                    Error::Failed(error.context(format!(
                        "the results file {} was not written; {recorded} the record {}: run again with --resume to write it",
                        self.config.output().results,
                        crate::text::path(&self.config.output().record)
                    )))
                })?;
        report.counts = rendered.counts;
        report.n_unmatched = rendered.n_unmatched;
        Ok(())
    }
}

/// `outcome` with the BlueprintId of its image in `images`, or `None` (said in the log).
fn named(
    mut outcome: Outcome,
    images: &std::collections::HashMap<String, String>,
) -> Option<Outcome> {
    match images.get(&outcome.identity.image_id) {
        Some(blueprint) => {
            outcome.blueprint_id = Some(blueprint.clone());
            outcome.error_message = None;
            Some(outcome)
        }
        None => {
            tracing::warn!(
                line = outcome.line,
                image_id = %outcome.identity.image_id,
                "line {}: {} is shared, but no blueprint of {} was found: its BlueprintId is left empty",
                outcome.line,
                outcome.identity.image_id,
                outcome.identity.region
            );
            None
        }
    }
}

/// Runs `stages` to their end; when `shutdown` resolves first, stops them gently (no new
/// rows, the requests in flight finish) and still waits for them.
async fn until_done<T>(
    stages: impl Future<Output = T>,
    shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    stop: &Stop,
) -> T {
    let mut stages = std::pin::pin!(stages);
    tokio::select! {
        biased;
        done = &mut stages => done,
        () = shutdown => {
            tracing::warn!("interrupted: starting no new rows; letting the requests in flight finish (a second signal stops at once)");
            stop.trigger(Reason::Interrupted);
            stages.await
        }
    }
}

/// Says in the log why the job stopped early, if it did, and what was left unrun.
fn say_why_stopped(report: &Report) {
    match &report.stop {
        Some(Reason::Fatal(error)) => tracing::error!("stopped: {}", fatal_advice(error)),
        Some(reason @ Reason::TooManyFailures { .. }) => {
            if let Some(passed) = reason.threshold_passed() {
                tracing::error!("stopped: {passed}; the rest are skipped");
            }
        }
        _ => {}
    }
    for problem in &report.problems {
        tracing::error!("{problem}");
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
    shared: Vec<(String, String)>,
) -> Result<(SimulatorHandle, Endpoint, Provider), Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Setup(e.into()))?;
    let handle = Simulator::start(
        listener,
        SimulatorConfig {
            rate_scope: config.pacing().rate_scope,
            faults: Faults {
                occupied: 0.05,
                ..Faults::default()
            },
            seed: rand::random(),
            latency_ms: (50, 150),
            shared,
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

/// The lock beside the results, held for the whole run and let go when dropped.
///
/// Let go explicitly rather than by closing the file: a `flock` belongs to the open file,
/// and a process that forks (to run another program) lends its open files to the child
/// until the child's `exec`, so closing our descriptor alone could leave the lock held for
/// that moment, and a run that follows at once would find its own results locked.
struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Takes the lock beside the results. It is never a link: a link planted at its name is
/// refused rather than followed. A dry run (`create` false) only opens a lock that exists.
fn lock(path: &Path, output: &Destination, create: bool) -> Result<Lock, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .create(create)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(results::refused_link)
        .with_context(|| format!("cannot create the lock file {}", crate::text::path(path)))
        .map_err(Error::Setup)?;
    match file.try_lock() {
        Ok(()) => Ok(Lock(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            output: match output {
                Destination::File(path) => path.clone(),
                Destination::Stdout => path.to_path_buf(),
            },
            lock: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Setup(anyhow::anyhow!(
            "cannot lock {}: {e}",
            crate::text::path(path)
        ))),
    }
}
