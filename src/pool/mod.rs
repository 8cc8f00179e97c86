//! The pool: for each rate bucket, one task that paces requests through the bucket's
//! limiter, keeps at most `concurrency` in flight, never has two requests for one image in
//! flight (rows of one image run in file order), retries as the retry policy says, and hands
//! every finished row to the journal as an [`Outcome`].
//!
//! Each bucket paces at its own adaptive rate: a `RequestLimitExceeded` lowers it, a while
//! without one lets it climb back to `--rate`, and a bucket refused without pause for
//! `max_throttled` fails its remaining rows. Before its first slot a bucket warms the
//! connections it may use, and each attempt is prepared (credentials, signature) before it
//! takes its slot: the limiter paces what reaches the server.
//!
//! A bucket task owns all of its state; attempts run as spawned tasks whose results come back
//! to it. Buckets share nothing but the client, the [`Stop`] signal and the counters the
//! progress line reads, so a slow bucket never holds another back. Each bucket holds its own
//! sender of finished rows: the journal ends when the last bucket does.

mod queue;
mod stop;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::action::Permission;
use crate::adapt::Adaptive;
use crate::api::{ApiError, Class, Client, Prepared, Success, region_advice};
use crate::input::Row;
use crate::limiter::Limiter;
use crate::results::{Identity, Outcome, Status};
use crate::retry::{Heard, History, Policy, Step};
use queue::{ImageQueue, Job, RetryQueue};
pub use stop::{FailureLimit, Reason, Stop};

/// How many rows a bucket may hold back behind busy images before it stops reading ahead.
const MAX_PARKED: usize = 4096;

/// The pool's settings, the same for every bucket.
#[derive(Clone, Debug)]
pub struct Settings {
    pub rate: f64,
    pub concurrency: usize,
    pub retry: Policy,
}

/// What every bucket task shares.
pub struct Pool {
    /// Shared with the state look-ups, which go through the same client.
    pub client: Arc<Client>,
    pub settings: Settings,
    pub stop: Stop,
    pub counters: Arc<Counters>,
}

/// Live counts over all buckets, for the progress line.
#[derive(Default)]
pub struct Counters {
    /// Rows waiting out a backoff.
    pub n_retrying: AtomicU64,
}

/// What a bucket did, for the summary.
#[derive(Clone, Debug)]
pub struct BucketReport {
    pub name: String,
    pub n_requests: u64,
    pub first_sent: Option<Instant>,
    pub last_sent: Option<Instant>,
    /// Retries by the error code that caused them: the summary tells a quota shared with
    /// another client (`RequestLimitExceeded`) from a busy service.
    pub retries_by_code: BTreeMap<String, u64>,
    /// `--rate`, the most adaptive pacing ever allows.
    pub configured_rate: f64,
    /// The lowest rate adaptive pacing went down to (the configured rate if it never did).
    pub lowest_rate: f64,
    /// Answers `RequestLimitExceeded` (any sub-code).
    pub n_throttled: u64,
}

impl BucketReport {
    fn new(name: String, configured_rate: f64) -> Self {
        Self {
            name,
            n_requests: 0,
            first_sent: None,
            last_sent: None,
            retries_by_code: BTreeMap::new(),
            configured_rate,
            lowest_rate: configured_rate,
            n_throttled: 0,
        }
    }

    /// Requests per second between the first and the last request sent; `None` over less
    /// than a second, where a rate says nothing (two requests 49 ms apart are not "20.4/s").
    pub fn rate(&self) -> Option<f64> {
        let (first, last) = (self.first_sent?, self.last_sent?);
        let span = last.duration_since(first).as_secs_f64();
        (span >= 1.0).then(|| (self.n_requests - 1) as f64 / span)
    }

    fn sent(&mut self) {
        let now = Instant::now();
        self.n_requests += 1;
        self.first_sent.get_or_insert(now);
        self.last_sent = Some(now);
    }
}

/// Rows as the reader sends them, in batches (one wake-up per batch, not per row), handed
/// out one at a time.
pub struct Incoming {
    rows_rx: mpsc::Receiver<Vec<Row>>,
    batch: std::vec::IntoIter<Row>,
    exhausted: bool,
}

impl Incoming {
    pub fn new(rows_rx: mpsc::Receiver<Vec<Row>>) -> Self {
        Self {
            rows_rx,
            batch: Vec::new().into_iter(),
            exhausted: false,
        }
    }

    /// The next row if one is at hand now.
    fn try_next(&mut self) -> Option<Row> {
        if let Some(row) = self.batch.next() {
            return Some(row);
        }
        match self.rows_rx.try_recv() {
            Ok(batch) => {
                self.batch = batch.into_iter();
                self.batch.next()
            }
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                self.exhausted = true;
                None
            }
        }
    }

    /// The next row, waiting for the reader if need be; `None` at the end of the input.
    async fn next(&mut self) -> Option<Row> {
        if let Some(row) = self.batch.next() {
            return Some(row);
        }
        match self.rows_rx.recv().await {
            Some(batch) => {
                self.batch = batch.into_iter();
                self.batch.next()
            }
            None => {
                self.exhausted = true;
                None
            }
        }
    }
}

/// An attempt's job, when it was sent, and its answer.
type Attempt = (Job, tokio::time::Instant, Result<Success, ApiError>);

/// One bucket's state, owned by its task.
struct Bucket {
    pool: Arc<Pool>,
    outcomes_tx: mpsc::Sender<Outcome>,
    report: BucketReport,
    /// Jobs that may start now, in order.
    ready: VecDeque<Job>,
    retries: RetryQueue,
    images: ImageQueue,
    /// Regions that answered `UnsupportedRegion`: their rows fail without being sent.
    dead_regions: HashMap<&'static str, ApiError>,
    /// What the endpoint has answered so far, for telling a wrong endpoint from bad luck.
    heard: Heard,
    /// Set once the bucket has been refused for too long: every row left fails with it.
    given_up: Option<ApiError>,
    /// The rate the limiter follows.
    adaptive: Adaptive,
    /// Since when every answer has been `RequestLimitExceeded`; `None` after any other.
    refused_since: Option<tokio::time::Instant>,
    rows: Incoming,
}

/// Runs every row that arrives on `rows` (in file order), until they are all finished or the
/// run is stopped; each finished row goes to `outcomes_tx`. `n_rows` is how many rows the
/// plan counted for the bucket: no more connections are warmed than it can use.
pub async fn drive(
    name: String,
    n_rows: u64,
    rows: Incoming,
    pool: Arc<Pool>,
    outcomes_tx: mpsc::Sender<Outcome>,
) -> BucketReport {
    let limiter = Limiter::new(pool.settings.rate);
    let concurrency = pool.settings.concurrency.max(1);
    let stop = pool.stop.clone();
    let mut bucket = Bucket {
        report: BucketReport::new(name, pool.settings.rate),
        adaptive: Adaptive::new(pool.settings.rate),
        pool,
        outcomes_tx,
        ready: VecDeque::new(),
        retries: RetryQueue::default(),
        images: ImageQueue::default(),
        dead_regions: HashMap::new(),
        heard: Heard::default(),
        given_up: None,
        refused_since: None,
        rows,
    };
    if let Some(row) = bucket.rows.next().await {
        let n = usize::try_from(n_rows)
            .unwrap_or(usize::MAX)
            .min(concurrency);
        bucket.pool.client.warm(row.region, n).await;
        bucket.admit(row).await;
    }
    let mut in_flight: JoinSet<Attempt> = JoinSet::new();
    // The attempt waiting for the limiter, prepared: taken out of the bucket's queues only
    // when a slot is free, and sent the moment the limiter lets it go.
    let mut next: Option<(Job, Prepared)> = None;
    loop {
        if stop.is_stopped() {
            break;
        }
        while let Some(joined) = in_flight.try_join_next() {
            bucket.joined(joined).await;
        }
        if next.is_none()
            && in_flight.len() < concurrency
            && let Some(job) = bucket.next_job().await
        {
            let prepared = bucket.pool.client.prepare(&job.row).await;
            next = Some((job, prepared));
        }
        let now = tokio::time::Instant::now();
        limiter.set_pace(bucket.adaptive.rate(now), bucket.adaptive.margin(now));
        if next.is_none() && in_flight.is_empty() && bucket.is_idle() {
            break;
        }
        let next_due = bucket.retries.next_due();
        let may_read = next.is_none()
            && bucket.ready.is_empty()
            && !bucket.rows.exhausted
            && bucket.images.n_parked < MAX_PARKED;
        tokio::select! {
            biased;
            _ = stop.stopped() => break,
            Some(joined) = in_flight.join_next() => bucket.joined(joined).await,
            _ = limiter.pace(), if next.is_some() => {
                if let Some((job, prepared)) = next.take() {
                    bucket.send(job, prepared, &mut in_flight);
                }
            }
            _ = sleep_until(next_due), if next_due.is_some() => bucket.promote_due(),
            row = bucket.rows.next(), if may_read => {
                if let Some(row) = row {
                    bucket.admit(row).await;
                }
            }
        }
    }
    // Stopped: start nothing more, let what is in flight finish (each within the timeout).
    while let Some(joined) = in_flight.join_next().await {
        bucket.joined(joined).await;
    }
    let n_retrying = bucket.retries.len() as u64;
    bucket
        .pool
        .counters
        .n_retrying
        .fetch_sub(n_retrying, Ordering::Relaxed);
    bucket.report.lowest_rate = bucket.adaptive.lowest();
    bucket.report.n_throttled = bucket.adaptive.n_throttled();
    bucket.report
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

impl Bucket {
    fn is_idle(&self) -> bool {
        self.rows.exhausted && self.ready.is_empty() && self.retries.is_empty()
    }

    /// Sends one attempt of `job` now.
    fn send(&mut self, mut job: Job, prepared: Prepared, in_flight: &mut JoinSet<Attempt>) {
        self.report.sent();
        let pool = self.pool.clone();
        let sent_at = tokio::time::Instant::now();
        self.adaptive.on_send(sent_at);
        in_flight.spawn(async move {
            job.attempts += 1;
            tracing::trace!(
                line = job.row.line,
                region = job.row.region,
                image_id = %job.row.image_id,
                "line {}: sending attempt {}",
                job.row.line,
                job.attempts
            );
            let result = pool.client.send(prepared).await;
            (job, sent_at, result)
        });
    }

    /// Why a row of `region` fails unsent, if it does: the bucket gave up, or the region
    /// refuses the action. The RequestId is another row's, so it is left out.
    fn dead(&self, region: &str) -> Option<ApiError> {
        let error = self
            .given_up
            .as_ref()
            .or_else(|| self.dead_regions.get(region))?;
        Some(ApiError {
            request_id: None,
            ..error.clone()
        })
    }

    /// The next job that may be sent now, reading rows ahead as far as that takes.
    async fn next_job(&mut self) -> Option<Job> {
        loop {
            if let Some(job) = self.ready.pop_front() {
                if let Some(error) = self.dead(job.row.region) {
                    self.fail(&job, &error).await;
                    continue;
                }
                return Some(job);
            }
            if self.rows.exhausted || self.images.n_parked >= MAX_PARKED {
                return None;
            }
            match self.rows.try_next() {
                Some(row) => self.admit(row).await,
                None => return None,
            }
        }
    }

    /// Takes a new row: it is ready unless its image is busy, in which case it waits its turn.
    async fn admit(&mut self, row: Row) {
        if let Some(error) = self.dead(row.region) {
            return self.fail(&Job::new(row), &error).await;
        }
        if let Some(row) = self.images.admit(row) {
            self.ready.push_back(Job::new(row));
        }
    }

    /// The image of a finished row is free: its next queued row, if any, becomes ready.
    fn release(&mut self, row: &Row) {
        if let Some(next) = self.images.release(row) {
            self.ready.push_back(Job::new(next));
        }
    }

    fn promote_due(&mut self) {
        let now = Instant::now();
        while let Some(job) = self.retries.pop_due(now) {
            self.pool
                .counters
                .n_retrying
                .fetch_sub(1, Ordering::Relaxed);
            self.ready.push_back(job);
        }
    }

    async fn joined(&mut self, joined: Result<Attempt, tokio::task::JoinError>) {
        match joined {
            Ok((job, sent_at, result)) => {
                self.adapt(sent_at, &result);
                self.finish(job, result).await
            }
            Err(error) => tracing::error!("an attempt task failed: {error}"),
        }
    }

    /// Adaptive pacing learns from every answer: a refusal widens the margin or lowers the
    /// rate (`adapt` decides which), and any other answer ends a run of refusals.
    fn adapt(&mut self, sent_at: tokio::time::Instant, result: &Result<Success, ApiError>) {
        let now = tokio::time::Instant::now();
        match result {
            Err(error) if error.class == Class::Throttled => {
                self.refused_since.get_or_insert(now);
                let change = self.adaptive.on_answer(sent_at, now, true);
                if let Some(change) = change {
                    tracing::debug!(bucket = self.report.name, ?change, code = %error.code, "throttled: pacing adapted");
                }
            }
            // A timeout or a lost connection is no round trip of the network's.
            Err(error) if matches!(error.class, Class::Transient | Class::Unreachable) => {
                self.refused_since = None;
            }
            _ => {
                self.refused_since = None;
                self.adaptive.on_answer(sent_at, now, false);
            }
        }
    }

    /// Carries out what an attempt's result means for its row, as the retry policy says.
    async fn finish(&mut self, mut job: Job, result: Result<Success, ApiError>) {
        self.heard.note(&result);
        let error = match result {
            Ok(success) => {
                let status = match job.row.permission {
                    Permission::Share => Status::Shared,
                    Permission::Cancel => Status::Unshared,
                };
                let mut outcome = outcome(&job, status);
                if status == Status::Shared && success.blueprint_id.is_none() {
                    outcome.error_message =
                        Some("shared, but the answer did not return the BlueprintId".into());
                }
                outcome.blueprint_id = success.blueprint_id;
                outcome.request_id = Some(success.request_id);
                return self.emit(&job, outcome).await;
            }
            Err(error) => error,
        };
        tracing::debug!(
            line = job.row.line,
            region = job.row.region,
            image_id = %job.row.image_id,
            code = %error.code,
            "line {}: attempt {} failed: {}",
            job.row.line,
            job.attempts,
            error.code
        );
        let history = History {
            attempts: job.attempts - job.n_throttled,
            clock_retried: job.clock_retried,
            throttled_for: self
                .refused_since
                .map_or(Duration::ZERO, |since| since.elapsed()),
        };
        let stopping = self.pool.stop.is_stopped();
        let jitter = rand::rng().random::<f64>();
        match self
            .pool
            .settings
            .retry
            .next_step(error.class, history, self.heard, stopping, jitter)
        {
            Step::AlreadyDone => {
                let mut outcome = outcome(&job, Status::AlreadyShared);
                outcome.request_id = error.request_id;
                self.emit(&job, outcome).await;
            }
            Step::Leave => self.release(&job.row),
            Step::RetryAfter(delay) => {
                self.retried(&error.code);
                self.pool
                    .counters
                    .n_retrying
                    .fetch_add(1, Ordering::Relaxed);
                self.retries.push(job, Instant::now() + delay);
            }
            Step::RetryNow => {
                self.retried(&error.code);
                job.clock_retried = true;
                self.ready.push_front(job);
            }
            Step::RetryThrottled => {
                self.retried(&error.code);
                job.n_throttled += 1;
                self.ready.push_front(job);
            }
            Step::StopBucket => {
                tracing::error!(bucket = self.report.name, code = %error.code, "refused without pause for {:?}: the bucket's rows fail; --resume runs them later", self.pool.settings.retry.max_throttled);
                self.given_up = Some(error.clone());
                self.fail(&job, &error).await;
            }
            Step::Fail => self.fail(&job, &error).await,
            Step::StopRegion => {
                // Other rows of the region in flight answer the same: say it once.
                if !self.dead_regions.contains_key(job.row.region) {
                    tracing::error!(
                        region = job.row.region,
                        code = %error.code,
                        "{}: {}",
                        job.row.region,
                        region_advice(&error)
                    );
                    self.dead_regions.insert(job.row.region, error.clone());
                }
                self.fail(&job, &error).await;
            }
            Step::StopJob => {
                self.fail(&job, &error).await;
                self.pool.stop.trigger(Reason::Fatal(error));
            }
        }
    }

    fn retried(&mut self, code: &str) {
        *self
            .report
            .retries_by_code
            .entry(code.to_string())
            .or_default() += 1;
    }

    async fn fail(&mut self, job: &Job, error: &ApiError) {
        let mut outcome = outcome(job, Status::Failed);
        outcome.request_id = error.request_id.clone();
        let outcome = outcome.with_error(&error.code, &error.message);
        self.emit(job, outcome).await;
    }

    /// Hands a final row to the journal and frees its image.
    async fn emit(&mut self, job: &Job, outcome: Outcome) {
        if self.outcomes_tx.send(outcome).await.is_err() {
            self.pool.stop.trigger(Reason::Journal(
                "the results file stopped taking rows".into(),
            ));
        }
        self.release(&job.row);
    }
}

fn outcome(job: &Job, status: Status) -> Outcome {
    let mut outcome = Outcome::new(Identity::of(&job.row), job.row.line, status);
    outcome.attempts = job.attempts;
    outcome
}
