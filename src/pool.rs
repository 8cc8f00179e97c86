//! The pool: for each rate bucket, one task that paces requests through the bucket's
//! limiter, keeps at most `concurrency` in flight, never has two requests for one image in
//! flight (rows of one image run in file order), retries what is transient after a backoff,
//! and hands every finished row to the journal as an [`Outcome`].
//!
//! A bucket task owns all of its state; attempts run as spawned tasks whose results come back
//! to it. Buckets share nothing but the client, the journal channel and the [`Stop`] signal,
//! so a slow bucket never holds another back.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::action::{Permission, RateScope};
use crate::api::{ApiError, Class, Client, Endpoint, Success};
use crate::input::{Record, Row};
use crate::limiter::Limiter;
use crate::results::{Outcome, Status};

/// How many rows a bucket may hold back behind busy images before it stops reading ahead.
const MAX_PARKED: usize = 4096;

/// Why the run stopped early.
#[derive(Clone, Debug)]
pub enum Reason {
    Interrupted,
    /// An answer that no other row can get past (credentials, account, clock).
    Fatal(ApiError),
    /// The results file could not be written.
    Journal(String),
}

/// A stop signal every task can watch; the first reason given wins.
#[derive(Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<Option<Reason>>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::channel(None).0),
        }
    }
}

impl Stop {
    pub fn trigger(&self, reason: Reason) {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    pub fn is_stopped(&self) -> bool {
        self.tx.borrow().is_some()
    }

    pub fn reason(&self) -> Option<Reason> {
        self.tx.borrow().clone()
    }

    /// Resolves once the stop is triggered.
    pub async fn stopped(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }
}

/// What a rate bucket is, given the scope and the endpoint.
#[derive(Clone, Debug)]
pub struct Buckets {
    pub scope: RateScope,
    pub endpoint: Endpoint,
}

impl Buckets {
    /// The bucket of a row in `region`: the region itself, or the endpoint URL it goes to.
    pub fn of(&self, region: &str) -> String {
        match self.scope {
            RateScope::Region => region.to_string(),
            RateScope::Endpoint => self.endpoint.url(region),
        }
    }
}

/// Capped exponential backoff with full jitter.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before attempt `attempts + 1`: uniform in `[0, min(max, base × 2^(attempts-1))]`.
    pub fn delay(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        let cap = self.base.saturating_mul(1 << exponent).min(self.max);
        cap.mul_f64(rand::rng().random::<f64>())
    }
}

/// The pool's settings, the same for every bucket.
#[derive(Clone, Debug)]
pub struct Settings {
    pub rate: f64,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub backoff: Backoff,
}

/// What every bucket task shares.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub stop: Stop,
    pub outcomes_tx: mpsc::Sender<Outcome>,
    /// Rows waiting for a retry, over all buckets, for the progress line.
    pub n_retrying: AtomicU64,
}

/// What a bucket did, for the summary.
#[derive(Clone, Debug)]
pub struct BucketReport {
    pub name: String,
    pub n_requests: u64,
    pub first_sent: Option<Instant>,
    pub last_sent: Option<Instant>,
}

impl BucketReport {
    /// Requests per second between the first and the last request sent; `None` over less
    /// than a second, where a rate says nothing (two requests 49 ms apart are not "20.4/s").
    pub fn rate(&self) -> Option<f64> {
        let (first, last) = (self.first_sent?, self.last_sent?);
        let span = last.duration_since(first).as_secs_f64();
        (span >= 1.0).then(|| (self.n_requests - 1) as f64 / span)
    }
}

/// A row on its way, with what its attempts so far have taught.
struct Job {
    row: Row,
    attempts: u32,
    /// `AuthFailure.SignatureExpire` gets one more attempt, no more.
    clock_retried: bool,
}

impl Job {
    fn new(row: Row) -> Self {
        Self {
            row,
            attempts: 0,
            clock_retried: false,
        }
    }
}

/// A job waiting for its backoff to end; ordered by due time, earliest first.
struct Due {
    at: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One bucket's state, owned by its task.
struct Bucket {
    ctx: Arc<Context>,
    report: BucketReport,
    /// Jobs that may start now, in order.
    ready: VecDeque<Job>,
    retries: BinaryHeap<Due>,
    n_scheduled: u64,
    /// Images with a row in flight or in backoff, and the rows queued behind it.
    busy: HashMap<(&'static str, String), VecDeque<Row>>,
    n_parked: usize,
    /// Regions that answered `UnsupportedRegion`: their rows fail without being sent.
    dead_regions: HashMap<&'static str, ApiError>,
    rows: Incoming,
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

/// Runs every row that arrives on `rows` (in file order), until they are all finished or the
/// run is stopped.
pub async fn drive(name: String, rows: Incoming, ctx: Arc<Context>) -> BucketReport {
    let limiter = Limiter::new(ctx.settings.rate);
    let concurrency = ctx.settings.concurrency.max(1);
    let stop = ctx.stop.clone();
    let mut bucket = Bucket {
        report: BucketReport {
            name,
            n_requests: 0,
            first_sent: None,
            last_sent: None,
        },
        ctx,
        ready: VecDeque::new(),
        retries: BinaryHeap::new(),
        n_scheduled: 0,
        busy: HashMap::new(),
        n_parked: 0,
        dead_regions: HashMap::new(),
        rows,
    };
    let mut in_flight: JoinSet<(Job, Result<Success, ApiError>)> = JoinSet::new();
    // The job waiting for the limiter: taken out of the bucket's queues only when a slot is
    // free, and sent the moment the limiter lets it go.
    let mut next: Option<Job> = None;
    loop {
        if stop.is_stopped() {
            break;
        }
        while let Some(joined) = in_flight.try_join_next() {
            bucket.joined(joined).await;
        }
        if next.is_none() && in_flight.len() < concurrency {
            next = bucket.next_job().await;
        }
        if next.is_none() && in_flight.is_empty() && bucket.is_idle() {
            break;
        }
        let next_due = bucket.retries.peek().map(|due| due.at);
        let may_read = next.is_none()
            && bucket.ready.is_empty()
            && !bucket.rows.exhausted
            && bucket.n_parked < MAX_PARKED;
        tokio::select! {
            biased;
            _ = stop.stopped() => break,
            Some(joined) = in_flight.join_next() => bucket.joined(joined).await,
            _ = limiter.pace(), if next.is_some() => {
                let mut job = next.take().expect("guarded by the branch condition");
                bucket.sent();
                let ctx = bucket.ctx.clone();
                in_flight.spawn(async move {
                    job.attempts += 1;
                    tracing::trace!(line = job.row.line, region = job.row.region, image_id = %job.row.image_id, attempt = job.attempts, "sending");
                    let result = ctx.client.send(&job.row).await;
                    (job, result)
                });
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
        .ctx
        .n_retrying
        .fetch_sub(n_retrying, AtomicOrdering::Relaxed);
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

    fn sent(&mut self) {
        let now = Instant::now();
        self.report.n_requests += 1;
        self.report.first_sent.get_or_insert(now);
        self.report.last_sent = Some(now);
    }

    /// The next job that may be sent now, reading rows ahead as far as that takes.
    async fn next_job(&mut self) -> Option<Job> {
        loop {
            if let Some(job) = self.ready.pop_front() {
                if let Some(error) = self.dead_regions.get(job.row.region).cloned() {
                    self.fail(&job, &error).await;
                    continue;
                }
                return Some(job);
            }
            if self.rows.exhausted || self.n_parked >= MAX_PARKED {
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
        if let Some(error) = self.dead_regions.get(row.region).cloned() {
            let job = Job::new(row);
            return self.fail(&job, &error).await;
        }
        let key = (row.region, row.image_id.clone());
        match self.busy.get_mut(&key) {
            Some(queue) => {
                queue.push_back(row);
                self.n_parked += 1;
            }
            None => {
                self.busy.insert(key, VecDeque::new());
                self.ready.push_back(Job::new(row));
            }
        }
    }

    /// The image of a finished row is free: its next queued row, if any, becomes ready.
    fn release(&mut self, row: &Row) {
        let key = (row.region, row.image_id.clone());
        let next = self.busy.get_mut(&key).and_then(VecDeque::pop_front);
        match next {
            Some(row) => {
                self.n_parked -= 1;
                self.ready.push_back(Job::new(row));
            }
            None => {
                self.busy.remove(&key);
            }
        }
    }

    fn promote_due(&mut self) {
        let now = Instant::now();
        while self.retries.peek().is_some_and(|due| due.at <= now) {
            let due = self.retries.pop().expect("peeked");
            self.ctx.n_retrying.fetch_sub(1, AtomicOrdering::Relaxed);
            self.ready.push_back(due.job);
        }
    }

    async fn joined(
        &mut self,
        joined: Result<(Job, Result<Success, ApiError>), tokio::task::JoinError>,
    ) {
        match joined {
            Ok((job, result)) => self.finish(job, result).await,
            Err(error) => tracing::error!("an attempt task failed: {error}"),
        }
    }

    /// Decides what an attempt's result means for its row.
    async fn finish(&mut self, mut job: Job, result: Result<Success, ApiError>) {
        let error = match result {
            Ok(success) => {
                let status = match job.row.permission {
                    Permission::Share => Status::Shared,
                    Permission::Cancel => Status::Unshared,
                };
                let mut outcome = outcome(&job, status);
                outcome.blueprint_id = success.blueprint_id;
                outcome.request_id = Some(success.request_id);
                return self.emit(&job, outcome).await;
            }
            Err(error) => error,
        };
        tracing::debug!(line = job.row.line, code = %error.code, attempts = job.attempts, "attempt failed");
        let stopped = self.ctx.stop.is_stopped();
        match error.class {
            Class::AlreadyDone => {
                let mut outcome = outcome(&job, Status::AlreadyShared);
                outcome.request_id = error.request_id;
                self.emit(&job, outcome).await;
            }
            Class::Transient if stopped => self.release(&job.row),
            Class::Transient if job.attempts < self.ctx.settings.max_attempts => {
                let at = Instant::now() + self.ctx.settings.backoff.delay(job.attempts);
                self.n_scheduled += 1;
                self.ctx.n_retrying.fetch_add(1, AtomicOrdering::Relaxed);
                self.retries.push(Due {
                    at,
                    seq: self.n_scheduled,
                    job,
                });
            }
            Class::Clock if !job.clock_retried && !stopped => {
                job.clock_retried = true;
                self.ready.push_front(job);
            }
            Class::Clock | Class::JobFatal => {
                self.fail(&job, &error).await;
                self.ctx.stop.trigger(Reason::Fatal(error));
            }
            Class::RegionFatal => {
                tracing::error!(region = job.row.region, code = %error.code, "the region refuses this action: its rows fail, the others go on");
                self.dead_regions.insert(job.row.region, error.clone());
                self.fail(&job, &error).await;
            }
            Class::Transient | Class::Permanent => self.fail(&job, &error).await,
        }
    }

    async fn fail(&mut self, job: &Job, error: &ApiError) {
        let mut outcome = outcome(job, Status::Failed);
        outcome.request_id = error.request_id.clone();
        let outcome = outcome.with_error(&error.code, &error.message);
        self.emit(job, outcome).await;
    }

    /// Hands a final row to the journal and frees its image.
    async fn emit(&mut self, job: &Job, outcome: Outcome) {
        if self.ctx.outcomes_tx.send(outcome).await.is_err() {
            self.ctx.stop.trigger(Reason::Journal(
                "the results file stopped taking rows".into(),
            ));
        }
        self.release(&job.row);
    }
}

fn outcome(job: &Job, status: Status) -> Outcome {
    let record = Record {
        line: job.row.line,
        region: job.row.region.to_string(),
        image_id: job.row.image_id.clone(),
        permission: job.row.permission.as_str().to_string(),
    };
    let mut outcome = Outcome::new(&record, status);
    outcome.attempts = job.attempts;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let backoff = Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(20),
        };
        for attempts in 1..40 {
            let cap = Duration::from_millis(500 * (1u64 << (attempts - 1).min(30)))
                .min(Duration::from_secs(20));
            assert!(backoff.delay(attempts) <= cap);
        }
        let delays: Vec<_> = (0..20).map(|_| backoff.delay(10)).collect();
        assert!(delays.iter().any(|d| *d != delays[0]), "full jitter varies");
    }
}
