//! What the simulator remembers between requests (the account, the rate windows, the fault
//! draws, the counters), and the decision each checked request gets from it: which window
//! counts it, which faults it draws, and what the account answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::blueprint::Blueprint;
use super::blueprints::{Distortion, Query};
use super::config::{DescribeFault, SimulatorConfig};
use super::faults::{self, Fate};
use super::refusal::Refusal;
use super::request::{Action, Call, Checked};
use super::share::{self, ShareRequest};
use super::state::{self, ImageKey, State};
use super::stats::Stats;
use super::window::Limit;
use crate::action::{Permission, RateScope};

/// The world, shared by every connection.
pub type Shared = Arc<Mutex<World>>;

pub fn lock(world: &Shared) -> MutexGuard<'_, World> {
    // A poisoned lock only means a request task panicked; the counters are still usable.
    world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the simulator remembers between requests.
pub struct World {
    pub config: SimulatorConfig,
    rng: StdRng,
    /// The account: its images and its shares.
    pub state: State,
    share_limit: Limit,
    describe_limit: Limit,
    images_limit: Limit,
    /// `ModifyImageSharePermission` requests in flight now, per image.
    pub in_flight: HashMap<ImageKey, u64>,
    pub stats: Stats,
    n_answers: u64,
    /// First pages (`Offset` 0) of `DescribeBlueprints` answered per region, for
    /// `--describe-fault empty-first=N`.
    first_pages: HashMap<&'static str, u64>,
}

impl World {
    /// Refuses a seed that names an unsupported region, a malformed image id or an unknown
    /// image state.
    pub fn new(config: SimulatorConfig) -> Result<Self, String> {
        let state = State::new(&config.shared, config.images.as_deref())?;
        Ok(Self {
            rng: StdRng::seed_from_u64(config.seed),
            state,
            share_limit: Limit::new(config.rate, config.count),
            describe_limit: Limit::new(config.describe_rate, config.count),
            images_limit: Limit::new(config.images_rate, config.count),
            in_flight: HashMap::new(),
            config,
            stats: Stats::default(),
            n_answers: 0,
            first_pages: HashMap::new(),
        })
    }

    fn limit(&mut self, action: Action) -> &mut Limit {
        match action {
            Action::ModifyImageSharePermission => &mut self.share_limit,
            Action::DescribeBlueprints => &mut self.describe_limit,
            Action::DescribeImagesToShare => &mut self.images_limit,
        }
    }

    fn bucket(&self, region: &str) -> String {
        match self.config.rate_scope {
            RateScope::Region => region.to_string(),
            RateScope::Endpoint => "endpoint".to_string(),
        }
    }

    /// Counts the arrival of `action` (as sent), and in its bucket's measuring window, before
    /// any check.
    pub fn arrive(&mut self, action: &str, headers: &HeaderMap, now: Instant) {
        self.stats.requests += 1;
        *self
            .stats
            .requests_by_action
            .entry(action.to_string())
            .or_default() += 1;
        let region = headers
            .get("x-tc-region")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::action::supported_region);
        if let (Some(action), Some(region)) = (Action::parse(action), region) {
            let bucket = self.bucket(region);
            let seen = self.limit(action).measure(&bucket, now) as u64;
            let by_action = self
                .stats
                .max_window_by_action
                .entry(action.name().to_string())
                .or_default();
            let max = by_action.entry(bucket.clone()).or_default();
            *max = (*max).max(seen);
            let max_window = match action {
                Action::ModifyImageSharePermission => &mut self.stats.max_window,
                Action::DescribeBlueprints => &mut self.stats.max_window_describe,
                Action::DescribeImagesToShare => return,
            };
            let max = max_window.entry(bucket).or_default();
            *max = (*max).max(seen);
        }
    }

    pub fn decide(&mut self, checked: &Checked, now: Instant) -> Fate {
        *self
            .stats
            .by_secret_id
            .entry(checked.secret_id.clone())
            .or_default() += 1;
        match &checked.call {
            Call::Share(request) => self.decide_share(checked.region, request, now),
            Call::Blueprints(query) => self.decide_blueprints(checked.region, query, now),
            Call::Images(query) => {
                let images = self.admit(Action::DescribeImagesToShare, checked.region, now);
                let named = query.named();
                let answer =
                    images.map(|()| query.answer(&self.state.images_in(checked.region, &named)));
                Fate::Answer(answer)
            }
        }
    }

    /// Whether the action's window in the region's bucket admits a request arriving at `now`.
    fn admit(&mut self, action: Action, region: &str, now: Instant) -> Result<(), Refusal> {
        let bucket = self.bucket(region);
        let limit = self.limit(action);
        if limit.admit(&bucket, now) {
            return Ok(());
        }
        Err(Refusal::limit_exceeded(limit.rate()))
    }

    fn decide_blueprints(&mut self, region: &'static str, query: &Query, now: Instant) -> Fate {
        if let Err(refusal) = self.admit(Action::DescribeBlueprints, region, now) {
            return Fate::Answer(Err(refusal));
        }
        if self.config.faults.unauthorized_describe {
            return Fate::Answer(Err(Refusal::no_permission(
                Action::DescribeBlueprints.name(),
                region,
            )));
        }
        let distortion = self.distortion(region, query);
        Fate::Answer(Ok(query.answer(&self.blueprints(region), &distortion)))
    }

    /// How `--describe-fault` bends this answer.
    fn distortion(&mut self, region: &'static str, query: &Query) -> Distortion {
        let mut distortion = Distortion::default();
        let first_page = query.offset() == 0;
        let n_first_pages = if first_page {
            let n = self.first_pages.entry(region).or_default();
            *n += 1;
            *n
        } else {
            0
        };
        for fault in &self.config.faults.describe {
            match *fault {
                DescribeFault::EmptyFirst(times) => {
                    distortion.empty |= first_page && times.is_none_or(|n| n_first_pages <= n);
                }
                DescribeFault::RepeatPage => distortion.repeat_first_page = true,
                DescribeFault::Total(n) => distortion.total = Some(n),
            }
        }
        distortion
    }

    /// The region's blueprints, public and shared, ordered by BlueprintId so that every page
    /// of a listing is cut from the same sequence.
    fn blueprints(&self, region: &str) -> Vec<Blueprint> {
        let shared = self.state.shared_in(region).map(|(image_id, at)| {
            Blueprint::shared(image_id, state::blueprint_id(region, image_id), at)
        });
        let mut blueprints: Vec<Blueprint> =
            Blueprint::public().into_iter().chain(shared).collect();
        blueprints.sort_by(|a, b| a.id().cmp(b.id()));
        blueprints
    }

    fn decide_share(&mut self, region: &'static str, request: &ShareRequest, now: Instant) -> Fate {
        let image_id = &request.image_id;
        *self
            .stats
            .by_image
            .entry(format!("{region}/{image_id}"))
            .or_default() += 1;
        if self.config.withdrawn_regions.iter().any(|r| r == region) {
            return Fate::Answer(Err(Refusal::new(
                "UnsupportedRegion",
                format!("The action is not supported in region `{region}`."),
            )));
        }
        if let Err(refusal) = self.admit(Action::ModifyImageSharePermission, region, now) {
            return Fate::Answer(Err(refusal));
        }
        let action = Action::ModifyImageSharePermission.name();
        if let Some(fate) = faults::draw(&mut self.rng, &self.config.faults, action, region) {
            return fate;
        }
        if faults::is_missing(&self.config.faults, self.config.seed, image_id) {
            return Fate::Answer(Err(Refusal::new(
                "ResourceNotFound.ImageIdNotFound",
                format!("The image `{image_id}` does not exist."),
            )));
        }
        let blueprint_id = match request.permission {
            Permission::Share => self.state.share(region, image_id).map(Some),
            Permission::Cancel => self.state.cancel(region, image_id).map(|()| None),
        };
        Fate::Answer(blueprint_id.map(share::answer))
    }

    pub fn next_request_id(&mut self) -> String {
        self.n_answers += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.n_answers)
    }

    /// How long after its arrival a request is counted (`--uplink-jitter-ms`).
    pub fn uplink_delay(&mut self) -> Duration {
        super::window::uplink_delay(&mut self.rng, self.config.uplink_jitter)
    }

    pub fn latency(&mut self) -> Duration {
        let (min, max) = self.config.latency_ms;
        Duration::from_millis(if max > min {
            self.rng.random_range(min..=max)
        } else {
            min
        })
    }
}
