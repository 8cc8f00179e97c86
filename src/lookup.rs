//! Reading the state first (SPEC §9): before a bucket's rows are sent, the images shared in
//! its regions are listed (`DescribeBlueprints`, paced per bucket at `--describe-rate`), and
//! the listing is evidence only when it is complete and consistent ([`Listing`]). After the
//! run, rows that ended `already_shared` without a BlueprintId get it from a fresh look-up of
//! their region ([`Lookups::fresh`]). What each row's decision makes of it is `decide`'s.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinSet;

use crate::action::DESCRIBE_LIMIT;
use crate::api::{ApiError, Blueprints, Class, Client, Page};
use crate::decide::{Listed, State};
use crate::limiter::Limiter;
use crate::pool::{Reason, Stop};
use crate::retry::{Heard, History, Policy, Step};

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
    /// Regions whose state is unknown, and why: said in the summary.
    unknown: Mutex<Vec<String>>,
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
            unknown: Mutex::new(Vec::new()),
        }
    }

    /// Whether `DescribeBlueprints` was refused by the CAM policy.
    pub fn was_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// `region: why` for each region whose look-up proved nothing, in the order found.
    pub fn unknown(&self) -> Vec<String> {
        self.unknown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn limiter(&self, bucket: &str) -> Arc<Limiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        limiters
            .entry(bucket.to_string())
            .or_insert_with(|| Arc::new(Limiter::new(self.rate)))
            .clone()
    }

    /// Lists the `SHARED` blueprints of `regions`, all in bucket `bucket`, in parallel
    /// through the bucket's describe limiter. A region the CAM policy refuses to list is left
    /// out (as with `--no-lookup`).
    pub async fn bucket(self: &Arc<Self>, bucket: &str, regions: &[&'static str]) -> State {
        let mut state = self.regions(bucket, regions, Blueprints::Shared).await;
        state.retain(|_, listed| !matches!(listed, Listed::Unknown(why) if why == REFUSED));
        for (region, listed) in &state {
            if let Listed::Unknown(why) = listed {
                tracing::warn!(
                    region,
                    "{region}: the look-up proves nothing ({why}): every row of {region} is sent, none settled from it"
                );
                self.unknown
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("{region}: {why}"));
            }
        }
        state
    }

    /// The fresh look-up (SPEC §9): the blueprints of every type in `region`, image id →
    /// BlueprintId; `None` if a complete, consistent listing could not be had.
    pub async fn fresh(
        self: &Arc<Self>,
        bucket: &str,
        region: &'static str,
    ) -> Option<HashMap<String, String>> {
        let mut state = self.regions(bucket, &[region], Blueprints::All).await;
        match state.remove(region) {
            Some(Listed::Complete(images)) => Some(images),
            _ => None,
        }
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
                Ok((region, listed)) => {
                    state.insert(region, listed);
                }
                Err(error) => tracing::error!("a look-up task failed: {error}"),
            }
        }
        state
    }

    /// One region's blueprints, every page, while the listing stays consistent.
    async fn region(&self, limiter: &Limiter, region: &'static str, kind: Blueprints) -> Listed {
        let mut listing = Listing::new(DESCRIBE_LIMIT);
        let mut offset = 0;
        loop {
            if self.was_refused() {
                return Listed::Unknown(REFUSED.into());
            }
            let page = match self.page(limiter, region, kind, offset).await {
                Ok(page) => page,
                Err(failure) => return Listed::Unknown(self.failed(region, failure)),
            };
            match listing.add(page) {
                Next::Continue(next) => offset = next,
                Next::Complete => {
                    let images = listing.into_images();
                    tracing::debug!(
                        region,
                        "{region}: the look-up found {} shared images",
                        images.len()
                    );
                    return Listed::Complete(images);
                }
                Next::Inconsistent(why) => return Listed::Unknown(why),
            }
        }
    }

    /// Says what a failed look-up means, once; returns why the region's state is unknown.
    fn failed(&self, region: &str, failure: Failure) -> String {
        match failure {
            Failure::Refused(error) => {
                if !self.refused.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        code = %error.code,
                        "the CAM policy of these credentials does not allow `lighthouse:DescribeBlueprints` ({}): every row is sent without reading the state first (as with --no-lookup), and rows already shared get no BlueprintId; grant it to have them",
                        error.code
                    );
                }
                REFUSED.into()
            }
            Failure::Fatal(error) => {
                let why = format!("refused with {}", error.code.escape_debug());
                self.stop.trigger(Reason::Fatal(error));
                why
            }
            Failure::Failed(error) => {
                tracing::warn!(
                    region,
                    code = %error.code,
                    "{region}: the look-up failed ({}: {})",
                    error.code,
                    error.message
                );
                format!("the look-up failed with {}", error.code.escape_debug())
            }
            Failure::Stopped => "the job stopped during the look-up".into(),
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

/// Why a region was not listed when the CAM policy refuses the look-up: the run goes on as
/// with `--no-lookup`, so the region counts as not looked up rather than unknown.
const REFUSED: &str = "the CAM policy refuses DescribeBlueprints";

/// What the paging of a listing does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Ask for the page at this `Offset`.
    Continue(u64),
    /// Every blueprint `TotalCount` announced was listed, each once.
    Complete,
    /// The listing contradicts itself: the state it shows proves nothing. Why, in words.
    Inconsistent(String),
}

/// The stopping rule of a paged listing (SPEC §9): a listing is evidence only when its pages
/// deliver exactly the `TotalCount` they announce, each blueprint once. Paging stops at the
/// first page that adds nothing new, so the number of pages is bounded by what the pages
/// deliver, never by `TotalCount` alone.
pub struct Listing {
    /// Page size asked for: a shorter page is the last one.
    limit: u64,
    /// Every BlueprintId listed so far.
    seen: HashSet<String>,
    /// Image id → BlueprintId of the blueprints made from a CVM image.
    images: HashMap<String, String>,
    offset: u64,
    /// `TotalCount` as the first page said it.
    total: Option<u64>,
}

impl Listing {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            seen: HashSet::new(),
            images: HashMap::new(),
            offset: 0,
            total: None,
        }
    }

    /// Takes in the page asked for at the offset last returned (0 first).
    pub fn add(&mut self, page: Page) -> Next {
        let at = self.offset;
        let total = *self.total.get_or_insert(page.total);
        if page.total != total {
            return Next::Inconsistent(format!(
                "TotalCount changed from {total} to {} between pages",
                page.total
            ));
        }
        let n_listed = page.ids.len() as u64;
        let n_before = self.seen.len();
        self.seen.extend(page.ids);
        let n_new = (self.seen.len() - n_before) as u64;
        self.images.extend(page.blueprints);
        self.offset += n_listed;
        let n_seen = self.seen.len() as u64;
        if n_new < n_listed {
            return Next::Inconsistent(format!(
                "the page at Offset {at} repeats blueprints listed before"
            ));
        }
        if n_seen > total {
            return Next::Inconsistent(format!(
                "the pages list {n_seen} blueprints, more than the {total} TotalCount says"
            ));
        }
        if n_seen == total {
            return Next::Complete;
        }
        if n_listed == 0 {
            return Next::Inconsistent(format!(
                "the page at Offset {at} is empty while TotalCount says {total}"
            ));
        }
        if n_listed < self.limit {
            return Next::Inconsistent(format!(
                "the listing ended after {n_seen} blueprints, short of the {total} TotalCount says"
            ));
        }
        Next::Continue(self.offset)
    }

    /// Image id → BlueprintId of the blueprints listed.
    pub fn into_images(self) -> HashMap<String, String> {
        self.images
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page of `ids` (each the blueprint of image `img-` + its id) announcing `total`.
    fn page(total: u64, ids: &[u32]) -> Page {
        Page {
            total,
            n_listed: ids.len() as u64,
            ids: ids.iter().map(|i| format!("lhbp-{i:08}")).collect(),
            blueprints: ids
                .iter()
                .map(|i| (format!("img-{i:08}"), format!("lhbp-{i:08}")))
                .collect(),
        }
    }

    #[test]
    fn a_listing_is_complete_when_its_pages_deliver_the_total_each_once() {
        let mut listing = Listing::new(2);
        assert_eq!(listing.add(page(3, &[1, 2])), Next::Continue(2));
        assert_eq!(listing.add(page(3, &[3])), Next::Complete);
        assert_eq!(listing.into_images().len(), 3);
        assert_eq!(Listing::new(2).add(page(0, &[])), Next::Complete);
        assert_eq!(Listing::new(2).add(page(2, &[1, 2])), Next::Complete);
    }

    #[test]
    fn a_listing_that_contradicts_itself_stops_at_once_and_says_why() {
        let cases: [(&[(u64, &[u32])], &str); 5] = [
            (&[(5, &[])], "empty while TotalCount says 5"),
            (
                &[(1_000_000_000, &[1, 2]), (1_000_000_000, &[1, 2])],
                "repeats",
            ),
            (&[(5, &[1, 2]), (5, &[3])], "short of the 5"),
            (&[(1, &[1, 2])], "more than the 1"),
            (&[(4, &[1, 2]), (5, &[3, 4])], "changed from 4 to 5"),
        ];
        for (pages, why) in cases {
            let mut listing = Listing::new(2);
            let mut last = None;
            for (total, ids) in pages {
                last = Some(listing.add(page(*total, ids)));
            }
            match last {
                Some(Next::Inconsistent(said)) => assert!(said.contains(why), "{said}"),
                other => panic!("{pages:?}: {other:?}"),
            }
        }
    }
}
