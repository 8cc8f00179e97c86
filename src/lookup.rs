//! Reading the state first (SPEC §9): before a bucket's rows are sent, the images shared in
//! its regions are listed (`DescribeBlueprints`, paced per bucket at `--describe-rate`), and
//! each row is decided against that state as the earlier rows of its image leave it
//! ([`Decider`]). After the run, rows that ended `already_shared` without a BlueprintId get
//! it from a fresh look-up of their region ([`Lookups::fresh`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinSet;

use crate::action::Permission;
use crate::api::{ApiError, Blueprints, Class, Client, Page};
use crate::input::Row;
use crate::limiter::Limiter;
use crate::pool::{Reason, Stop};
use crate::retry::{Heard, History, Policy, Step};

/// The images shared in each region looked up: image id → BlueprintId. A region missing
/// here was not looked up (its rows are sent blind).
pub type State = HashMap<&'static str, HashMap<String, String>>;

/// What the look-ups of a run share: the client, the pacing of each bucket, and what they
/// found out about the account.
pub struct Lookups {
    client: Arc<Client>,
    retry: Policy,
    stop: Stop,
    rate: f64,
    /// One describe limiter per bucket name, kept for the fresh look-ups at the end.
    limiters: Mutex<HashMap<String, Arc<Limiter>>>,
    /// The CAM policy refuses `DescribeBlueprints`: said once, and nothing more is looked up.
    refused: AtomicBool,
    /// `DescribeBlueprints` requests sent, for the summary.
    pub n_requests: AtomicU64,
}

/// Why a region could not be listed.
enum Failure {
    /// `UnauthorizedOperation.*`: the policy allows the share but not the look-up.
    Refused(ApiError),
    /// A job-fatal answer: the job stops (SPEC §5).
    Fatal(ApiError),
    /// Retries ran out, or the answer cannot be mended: the region is sent blind.
    Failed(ApiError),
    /// The job is stopping.
    Stopped,
}

impl Lookups {
    pub fn new(client: Arc<Client>, retry: Policy, stop: Stop, rate: f64) -> Self {
        Self {
            client,
            retry,
            stop,
            rate,
            limiters: Mutex::new(HashMap::new()),
            refused: AtomicBool::new(false),
            n_requests: AtomicU64::new(0),
        }
    }

    /// Whether `DescribeBlueprints` was refused by the CAM policy.
    pub fn was_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    fn limiter(&self, bucket: &str) -> Arc<Limiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        limiters
            .entry(bucket.to_string())
            .or_insert_with(|| Arc::new(Limiter::new(self.rate)))
            .clone()
    }

    /// Lists the `SHARED` blueprints of `regions`, all in bucket `bucket`, in parallel
    /// through the bucket's describe limiter. A region whose look-up failed is left out.
    pub async fn bucket(self: &Arc<Self>, bucket: &str, regions: &[&'static str]) -> State {
        self.regions(bucket, regions, Blueprints::Shared).await
    }

    /// The fresh look-up (SPEC §9): the blueprints of every type in `region`, image id →
    /// BlueprintId; `None` if it could not be made.
    pub async fn fresh(
        self: &Arc<Self>,
        bucket: &str,
        region: &'static str,
    ) -> Option<HashMap<String, String>> {
        let mut state = self.regions(bucket, &[region], Blueprints::All).await;
        state.remove(region)
    }

    async fn regions(
        self: &Arc<Self>,
        bucket: &str,
        regions: &[&'static str],
        kind: Blueprints,
    ) -> State {
        let limiter = self.limiter(bucket);
        let mut tasks = JoinSet::new();
        for region in regions {
            let (lookups, limiter, region) = (self.clone(), limiter.clone(), *region);
            tasks.spawn(async move { (region, lookups.region(&limiter, region, kind).await) });
        }
        let mut state = State::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((region, Some(images))) => {
                    state.insert(region, images);
                }
                Ok((_, None)) => {}
                Err(error) => tracing::error!("a look-up task failed: {error}"),
            }
        }
        state
    }

    /// One region's blueprints, every page; `None` (said in the log) if not to be had.
    async fn region(
        &self,
        limiter: &Limiter,
        region: &'static str,
        kind: Blueprints,
    ) -> Option<HashMap<String, String>> {
        let mut images = HashMap::new();
        let mut offset = 0;
        loop {
            if self.was_refused() {
                return None;
            }
            let page = match self.page(limiter, region, kind, offset).await {
                Ok(page) => page,
                Err(failure) => {
                    self.failed(region, failure);
                    return None;
                }
            };
            images.extend(page.blueprints);
            offset += page.n_listed;
            if page.n_listed == 0 || offset >= page.total {
                tracing::debug!(
                    region,
                    "{region}: the look-up found {} shared images",
                    images.len()
                );
                return Some(images);
            }
        }
    }

    fn failed(&self, region: &str, failure: Failure) {
        match failure {
            Failure::Refused(error) => {
                if !self.refused.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        code = %error.code,
                        "the CAM policy of these credentials does not allow `lighthouse:DescribeBlueprints` ({}): every row is sent without reading the state first (as with --no-lookup), and rows already shared get no BlueprintId; grant it to have them",
                        error.code
                    );
                }
            }
            Failure::Fatal(error) => self.stop.trigger(Reason::Fatal(error)),
            Failure::Failed(error) => tracing::warn!(
                region,
                code = %error.code,
                "{region}: the look-up failed ({}: {}): its rows are sent without it",
                error.code,
                error.message
            ),
            Failure::Stopped => {}
        }
    }

    /// One page, retried as a row would be.
    async fn page(
        &self,
        limiter: &Limiter,
        region: &str,
        kind: Blueprints,
        offset: u64,
    ) -> Result<Page, Failure> {
        let mut history = History {
            attempts: 0,
            clock_retried: false,
            throttled_for: Duration::ZERO,
        };
        let mut heard = Heard::default();
        // Since when every answer has been `RequestLimitExceeded`.
        let mut refused_since = None;
        loop {
            if self.stop.is_stopped() {
                return Err(Failure::Stopped);
            }
            limiter.pace().await;
            self.n_requests.fetch_add(1, Ordering::Relaxed);
            history.attempts += 1;
            let result = self.client.describe(region, kind, offset).await;
            heard.note(&result);
            let error = match result {
                Ok(page) => return Ok(page),
                Err(error) if is_refused(&error.code) => return Err(Failure::Refused(error)),
                Err(error) => error,
            };
            if error.class == Class::Throttled {
                // The service did nothing: not an attempt that --max-attempts counts.
                history.attempts -= 1;
                let now = tokio::time::Instant::now();
                history.throttled_for = now - *refused_since.get_or_insert(now);
            } else {
                refused_since = None;
                history.throttled_for = Duration::ZERO;
            }
            let jitter = rand::rng().random::<f64>();
            let stopping = self.stop.is_stopped();
            match self
                .retry
                .next_step(error.class, history, heard, stopping, jitter)
            {
                Step::RetryAfter(delay) => tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.stop.stopped() => return Err(Failure::Stopped),
                },
                Step::RetryNow => history.clock_retried = true,
                // Through the limiter again, at once.
                Step::RetryThrottled => {}
                Step::StopJob => return Err(Failure::Fatal(error)),
                Step::Leave => return Err(Failure::Stopped),
                Step::Fail | Step::StopRegion | Step::StopBucket | Step::AlreadyDone => {
                    return Err(Failure::Failed(error));
                }
            }
        }
    }
}

/// `UnauthorizedOperation.*` (or its `AuthFailure.` form): the CAM policy lacks the action.
fn is_refused(code: &str) -> bool {
    code == "UnauthorizedOperation"
        || code.starts_with("UnauthorizedOperation.")
        || code == "AuthFailure.UnauthorizedOperation"
}

/// What to do with a row, given the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Send,
    /// SHARE of a shared image: not sent. The BlueprintId is `None` when an earlier row of
    /// this run shares the image: the fresh look-up at the end gives it.
    AlreadyShared(Option<String>),
    /// CANCEL of an image not shared: not sent.
    AlreadyUnshared,
}

/// Decides rows in file order against the looked-up state, as the earlier rows of the same
/// image leave it (each row sent counted as if it succeeded). Decided statically, as rows
/// are read, not when each is about to be sent: a decision depends only on the state looked
/// up and the earlier rows' asks, never on their answers, so both give the same result, and
/// this one needs nothing from the pool.
#[derive(Default)]
pub struct Decider {
    state: State,
    /// Images whose sharing an earlier row of this run changes: shared or not after it.
    changed: HashMap<(&'static str, String), bool>,
}

impl Decider {
    pub fn new(state: State) -> Self {
        Self {
            state,
            changed: HashMap::new(),
        }
    }

    pub fn decide(&mut self, row: &Row) -> Decision {
        let Some(images) = self.state.get(row.region) else {
            return Decision::Send;
        };
        let key = (row.region, row.image_id.clone());
        let looked_up = images.get(&row.image_id);
        let shared = self
            .changed
            .get(&key)
            .copied()
            .unwrap_or(looked_up.is_some());
        match (row.permission, shared) {
            (Permission::Share, true) => {
                let blueprint = match self.changed.contains_key(&key) {
                    true => None,
                    false => looked_up.cloned(),
                };
                Decision::AlreadyShared(blueprint)
            }
            (Permission::Cancel, false) => Decision::AlreadyUnshared,
            (permission, _) => {
                self.changed.insert(key, permission == Permission::Share);
                Decision::Send
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(region: &'static str, image: &str, permission: Permission) -> Row {
        Row {
            line: 2,
            region,
            image_id: image.into(),
            permission,
            occurrence: 1,
        }
    }

    #[test]
    fn rows_are_decided_against_the_state_the_earlier_rows_leave() {
        use Permission::{Cancel, Share};
        let state = State::from([(
            "ap-seoul",
            HashMap::from([("img-shared00".to_string(), "lhbp-a".to_string())]),
        )]);
        let mut decider = Decider::new(state);
        let decide =
            |d: &mut Decider, image, permission| d.decide(&row("ap-seoul", image, permission));
        assert_eq!(
            decide(&mut decider, "img-shared00", Share),
            Decision::AlreadyShared(Some("lhbp-a".into()))
        );
        assert_eq!(
            decide(&mut decider, "img-new00000", Cancel),
            Decision::AlreadyUnshared
        );
        assert_eq!(decide(&mut decider, "img-new00000", Share), Decision::Send);
        assert_eq!(
            decide(&mut decider, "img-new00000", Share),
            Decision::AlreadyShared(None),
            "shared by the row before: its BlueprintId comes later"
        );
        assert_eq!(decide(&mut decider, "img-shared00", Cancel), Decision::Send);
        assert_eq!(
            decide(&mut decider, "img-shared00", Cancel),
            Decision::AlreadyUnshared
        );
        assert_eq!(decide(&mut decider, "img-shared00", Share), Decision::Send);
        assert_eq!(
            decider.decide(&row("ap-tokyo", "img-shared00", Cancel)),
            Decision::Send,
            "a region not looked up is sent blind"
        );
    }
}
