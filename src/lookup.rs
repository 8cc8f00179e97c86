//! Reading the state first (SPEC §9): before a bucket's rows are sent, the images shared in
//! its regions are listed (`DescribeBlueprints`), and a listing is evidence only when it is
//! complete and consistent ([`Listing`]). After the run, rows that ended `already_shared`
//! without a BlueprintId get it from a fresh look-up of their region ([`Lookups::fresh`]).
//! Every page goes through the engine, in the bucket's own `DescribeBlueprints` lane: paced,
//! retried and slowed down when refused exactly as the writes are. What each row's decision
//! makes of the state is `decide`'s.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;

use crate::action::DESCRIBE_LIMIT;
use crate::actions::{Blueprints, DescribeBlueprints, Kind, Page, is_refused};
use crate::api::ApiError;
use crate::decide::{Listed, State};
use crate::engine::{Engine, Unfinished};
use crate::job::{Bucket, Job};

/// The look-ups of a run: the engine they go through, and whether the CAM policy refuses
/// them.
pub struct Lookups {
    engine: Arc<Engine>,
    /// The CAM policy refuses `DescribeBlueprints`: said once, and nothing more is looked up.
    refused: AtomicBool,
    /// `region: why` for each region whose look-up proved nothing: said in the summary.
    unknown: Mutex<Vec<String>>,
}

impl Lookups {
    pub fn new(engine: Arc<Engine>) -> Arc<Self> {
        Arc::new(Self {
            engine,
            refused: AtomicBool::new(false),
            unknown: Mutex::new(Vec::new()),
        })
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

    /// Lists the `SHARED` blueprints of every bucket's regions, all in parallel, each bucket
    /// paced by its own look-up lane. A region whose listing failed, contradicted itself or
    /// was refused by the CAM policy is `Unknown`.
    pub async fn job(self: &Arc<Self>, job: &Job) -> State {
        let mut tasks = JoinSet::new();
        for bucket in job.iter() {
            for region in &bucket.regions {
                let (lookups, bucket, region) = (self.clone(), bucket.clone(), *region);
                tasks.spawn(async move {
                    let listed = lookups.region(&bucket, region, Blueprints::Shared).await;
                    (region, listed)
                });
            }
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
        self.say_unknown(&state);
        state
    }

    /// Says (in the log, and later in the summary) which regions' look-ups prove nothing.
    fn say_unknown(&self, state: &State) {
        let mut unknown: Vec<(&str, &String)> = state
            .iter()
            .filter_map(|(region, listed)| match listed {
                // Said once for the whole job, when the policy refused it.
                Listed::Unknown(why) if why == REFUSED => None,
                Listed::Unknown(why) => Some((*region, why)),
                Listed::Complete(_) => None,
            })
            .collect();
        unknown.sort();
        for (region, why) in unknown {
            if !self.engine.stop().is_stopped() {
                tracing::warn!(
                    region,
                    "{region}: the look-up proves nothing ({why}): every row of {region} is sent, none settled from it"
                );
            }
            self.unknown
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{region}: {why}"));
        }
    }

    /// The fresh look-up (SPEC §9): the blueprints of every type in `region`, image id →
    /// BlueprintId; `None` if a complete, consistent listing could not be had.
    pub async fn fresh(
        &self,
        bucket: &Bucket,
        region: &'static str,
    ) -> Option<HashMap<String, String>> {
        match self.region(bucket, region, Blueprints::All).await {
            Listed::Complete(images) => Some(images),
            Listed::Unknown(_) => None,
        }
    }

    /// One region's blueprints, every page, while the listing stays consistent.
    async fn region(&self, bucket: &Bucket, region: &'static str, kind: Blueprints) -> Listed {
        let lane = bucket.lane(Kind::DescribeBlueprints);
        let mut listing = Listing::new(DESCRIBE_LIMIT);
        let mut offset = 0;
        loop {
            if self.was_refused() {
                return Listed::Unknown(REFUSED.into());
            }
            let call = DescribeBlueprints {
                region,
                kind,
                offset,
            };
            let page = match self.engine.call(lane, &call).await.result {
                Ok(page) => page,
                Err(unfinished) => return Listed::Unknown(self.failed(region, unfinished)),
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

    /// Says why a region could not be listed: a policy that lacks the action (once), a
    /// failure. A job-fatal answer has stopped the job already, in the engine. Returns why
    /// the region's state is unknown.
    fn failed(&self, region: &str, unfinished: Unfinished) -> String {
        let error: ApiError = match unfinished {
            Unfinished::Failed(error) | Unfinished::AlreadyDone(error) => error,
            Unfinished::Left => return "the job stopped during the look-up".into(),
        };
        if is_refused(&error.code) {
            if !self.refused.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    code = %error.code,
                    "the CAM policy of these credentials does not allow `lighthouse:DescribeBlueprints` ({}): the state is unknown, so every row is sent, rows finished by an earlier run too (only a look-up could show they still hold), and rows already shared get no BlueprintId; grant it to have them",
                    error.code
                );
            }
            return REFUSED.into();
        }
        if !self.engine.stop().is_stopped() {
            tracing::warn!(
                region,
                code = %error.code,
                "{region}: the look-up failed ({}: {})",
                error.code,
                error.message
            );
        }
        format!("the look-up failed with {}", error.code.escape_debug())
    }
}

/// Why a region was not listed when the CAM policy refuses the look-up. Its state is unknown,
/// not "not looked up": the user did not choose to go without the look-up, so no finished
/// row is kept on the record's word alone, and exit 0 still means the account is as asked.
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
        /// Pages as (TotalCount, blueprints), and what the listing must say about them.
        type Case<'a> = (&'a [(u64, &'a [u32])], &'a str);
        let cases: [Case; 5] = [
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
