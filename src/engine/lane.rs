//! A lane: one action's share of a bucket's quota. It holds what pacing that action in that
//! bucket needs (the limiter, the adaptive rate, the concurrency), what it has learnt of the
//! endpoint (what answered, which regions refuse the action, whether it gave up), and its
//! tallies for the summary.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::actions::Kind;
use crate::adapt::Adaptive;
use crate::api::{ApiError, Class, region_advice};
use crate::limiter::Limiter;
use crate::retry::Heard;

/// One action's pacing, knowledge and tallies in one bucket.
pub struct Lane {
    /// The bucket's name, for logs and the summary.
    bucket: String,
    kind: Kind,
    limiter: Limiter,
    /// One request is signed ahead of its slot at a time, in the order they came (tokio's
    /// mutex is fair): a request signed long before its slot could outlive its timestamp.
    pub(super) turn: tokio::sync::Mutex<()>,
    /// At most `--concurrency` requests between taking their turn and their answer.
    pub(super) permits: Semaphore,
    /// The number of permits: a stage reads no further ahead than it can use.
    pub concurrency: usize,
    state: Mutex<State>,
}

struct State {
    adaptive: Adaptive,
    /// Since when every answer has been `RequestLimitExceeded`; `None` after any other.
    refused_since: Option<Instant>,
    heard: Heard,
    /// Regions that answered `UnsupportedRegion`: their calls fail without being sent.
    dead_regions: HashMap<&'static str, ApiError>,
    /// Set once the lane has been refused for too long: every call left fails with it.
    given_up: Option<ApiError>,
    report: LaneReport,
}

/// What a lane did, for the summary.
#[derive(Clone, Debug)]
pub struct LaneReport {
    pub bucket: String,
    pub kind: Kind,
    pub n_requests: u64,
    pub first_sent: Option<Instant>,
    pub last_sent: Option<Instant>,
    /// Retries by the error code that caused them: the summary tells a quota shared with
    /// another client (`RequestLimitExceeded`) from a busy service.
    pub retries_by_code: BTreeMap<String, u64>,
    /// The configured rate, the most adaptive pacing ever allows.
    pub configured_rate: f64,
    /// The lowest rate adaptive pacing went down to (the configured rate if it never did).
    pub lowest_rate: f64,
    /// Answers `RequestLimitExceeded` (any sub-code).
    pub n_throttled: u64,
}

impl LaneReport {
    /// Requests per second between the first and the last request sent; `None` over less
    /// than a second, where a rate says nothing (two requests 49 ms apart are not "20.4/s").
    pub fn rate(&self) -> Option<f64> {
        let (first, last) = (self.first_sent?, self.last_sent?);
        let span = last.duration_since(first).as_secs_f64();
        (span >= 1.0).then(|| (self.n_requests - 1) as f64 / span)
    }
}

impl Lane {
    pub fn new(bucket: &str, kind: Kind, rate: f64, concurrency: usize) -> Self {
        Self {
            bucket: bucket.to_string(),
            kind,
            limiter: Limiter::new(rate),
            turn: tokio::sync::Mutex::new(()),
            permits: Semaphore::new(concurrency.max(1)),
            concurrency: concurrency.max(1),
            state: Mutex::new(State {
                adaptive: Adaptive::new(rate),
                refused_since: None,
                heard: Heard::default(),
                dead_regions: HashMap::new(),
                given_up: None,
                report: LaneReport {
                    bucket: bucket.to_string(),
                    kind,
                    n_requests: 0,
                    first_sent: None,
                    last_sent: None,
                    retries_by_code: BTreeMap::new(),
                    configured_rate: rate,
                    lowest_rate: rate,
                    n_throttled: 0,
                },
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Only this module touches the state, and never panics holding it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the next slot at the adaptive rate and margin in force now, and takes it.
    pub(super) async fn pace(&self) {
        let (rate, margin) = {
            let state = self.lock();
            let now = Instant::now();
            (state.adaptive.rate(now), state.adaptive.margin(now))
        };
        self.limiter.set_pace(rate, margin);
        self.limiter.pace().await;
    }

    /// Counts a request that goes now.
    pub(super) fn sent(&self, at: Instant) {
        let state = &mut *self.lock();
        state.adaptive.on_send(at);
        let report = &mut state.report;
        report.n_requests += 1;
        report.first_sent.get_or_insert(at);
        report.last_sent = Some(at);
    }

    /// Learns from an answer to a request sent at `sent_at`: what the endpoint answers, and
    /// whether the quota is refusing (adaptive pacing, SPEC §3: `adapt` widens the margin or
    /// cuts the rate).
    pub(super) fn answered<T>(&self, sent_at: Instant, result: &Result<T, ApiError>) {
        let now = Instant::now();
        let mut state = self.lock();
        state.heard.note(result);
        match result {
            Err(error) if error.class == Class::Throttled => {
                state.refused_since.get_or_insert(now);
                if let Some(change) = state.adaptive.on_answer(sent_at, now, true) {
                    tracing::debug!(bucket = self.bucket, action = self.kind.name(), ?change, code = %error.code, "throttled: pacing adapted");
                    if let Some(hold) = state.adaptive.hold() {
                        self.limiter.hold_until(hold);
                    }
                }
            }
            // A timeout or a lost connection is no round trip of the network's.
            Err(error) if matches!(error.class, Class::Transient | Class::Unreachable) => {
                state.refused_since = None;
            }
            _ => {
                state.refused_since = None;
                state.adaptive.on_answer(sent_at, now, false);
            }
        }
    }

    pub(super) fn heard(&self) -> Heard {
        self.lock().heard
    }

    /// How long the lane has been refused without pause.
    pub(super) fn throttled_for(&self) -> Duration {
        self.lock()
            .refused_since
            .map_or(Duration::ZERO, |since| since.elapsed())
    }

    pub(super) fn retried(&self, code: &str) {
        *self
            .lock()
            .report
            .retries_by_code
            .entry(code.to_string())
            .or_default() += 1;
    }

    /// Why a call in `region` fails unsent, if it does: the lane gave up, or the region
    /// refuses the action. The RequestId is another call's, so it is left out.
    pub(super) fn dead(&self, region: &str) -> Option<ApiError> {
        let state = self.lock();
        let error = state
            .given_up
            .as_ref()
            .or_else(|| state.dead_regions.get(region))?;
        Some(ApiError {
            request_id: None,
            ..error.clone()
        })
    }

    /// The region refuses the action: its calls fail from now on. Said once, though every
    /// call of the region in flight answers the same.
    pub(super) fn kill_region(&self, region: &'static str, error: &ApiError) {
        let mut state = self.lock();
        if !state.dead_regions.contains_key(region) {
            tracing::error!(region, action = self.kind.name(), code = %error.code, "{region}: {}", region_advice(error));
            state.dead_regions.insert(region, error.clone());
        }
    }

    /// The lane has been refused for too long: its calls fail from now on. Said once.
    pub(super) fn give_up(&self, error: &ApiError, after: Duration) {
        let mut state = self.lock();
        if state.given_up.is_none() {
            tracing::error!(bucket = self.bucket, action = self.kind.name(), code = %error.code, "{}: {} refused without pause for {after:?}: its calls fail; --resume runs the rows later", self.bucket, self.kind.name());
            state.given_up = Some(error.clone());
        }
    }

    /// The tallies so far.
    pub fn report(&self) -> LaneReport {
        let state = self.lock();
        LaneReport {
            lowest_rate: state.adaptive.lowest(),
            n_throttled: state.adaptive.n_throttled(),
            ..state.report.clone()
        }
    }
}
