//! Reading the state first (SPEC §9): before a bucket's rows are sent, the images shared in
//! its regions are listed (`DescribeBlueprints`, paced per bucket at `--describe-rate`), and
//! each row is decided against that state as the earlier rows of its image leave it
//! ([`Decider`]). After the run, rows that ended `already_shared` without a BlueprintId get
//! it from a fresh look-up of their region ([`Lookups::fresh`]). Every page goes through the
//! engine, in the bucket's own `DescribeBlueprints` lane: paced, retried and slowed down when
//! refused exactly as the writes are.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinSet;

use crate::action::Permission;
use crate::actions::{Blueprints, DescribeBlueprints, Kind, is_refused};
use crate::api::ApiError;
use crate::engine::{Engine, Unfinished};
use crate::input::Row;
use crate::job::{Bucket, Job};

/// The images shared in each region looked up: image id → BlueprintId. A region missing
/// here was not looked up (its rows are sent blind).
pub type State = HashMap<&'static str, HashMap<String, String>>;

/// The look-ups of a run: the engine they go through, and whether the CAM policy refuses
/// them.
pub struct Lookups {
    engine: Arc<Engine>,
    /// The CAM policy refuses `DescribeBlueprints`: said once, and nothing more is looked up.
    refused: AtomicBool,
}

impl Lookups {
    pub fn new(engine: Arc<Engine>) -> Arc<Self> {
        Arc::new(Self {
            engine,
            refused: AtomicBool::new(false),
        })
    }

    /// Whether `DescribeBlueprints` was refused by the CAM policy.
    pub fn was_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// Lists the `SHARED` blueprints of every bucket's regions, all in parallel, each bucket
    /// paced by its own look-up lane. A region whose look-up failed is left out.
    pub async fn job(self: &Arc<Self>, job: &Job) -> State {
        let mut tasks = JoinSet::new();
        for bucket in job.iter() {
            for region in &bucket.regions {
                let (lookups, bucket, region) = (self.clone(), bucket.clone(), *region);
                tasks.spawn(async move {
                    let images = lookups.region(&bucket, region, Blueprints::Shared).await;
                    (region, images)
                });
            }
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

    /// The fresh look-up (SPEC §9): the blueprints of every type in `region`, image id →
    /// BlueprintId; `None` if it could not be made.
    pub async fn fresh(
        &self,
        bucket: &Bucket,
        region: &'static str,
    ) -> Option<HashMap<String, String>> {
        self.region(bucket, region, Blueprints::All).await
    }

    /// One region's blueprints, every page; `None` (said in the log) if not to be had.
    async fn region(
        &self,
        bucket: &Bucket,
        region: &'static str,
        kind: Blueprints,
    ) -> Option<HashMap<String, String>> {
        let lane = bucket.lane(Kind::DescribeBlueprints);
        let mut images = HashMap::new();
        let mut offset = 0;
        loop {
            if self.was_refused() {
                return None;
            }
            let call = DescribeBlueprints {
                region,
                kind,
                offset,
            };
            let page = match self.engine.call(lane, &call).await.result {
                Ok(page) => page,
                Err(unfinished) => {
                    self.failed(region, unfinished);
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

    /// Says why a region could not be listed: a policy that lacks the action (once), a
    /// failure (its rows are sent without the look-up). A job-fatal answer has stopped the
    /// job already, in the engine.
    fn failed(&self, region: &str, unfinished: Unfinished) {
        let error: ApiError = match unfinished {
            Unfinished::Failed(error) | Unfinished::AlreadyDone(error) => error,
            Unfinished::Left => return,
        };
        if is_refused(&error.code) {
            if !self.refused.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    code = %error.code,
                    "the CAM policy of these credentials does not allow `lighthouse:DescribeBlueprints` ({}): every row is sent without reading the state first (as with --no-lookup), and rows already shared get no BlueprintId; grant it to have them",
                    error.code
                );
            }
        } else if !self.engine.stop().is_stopped() {
            tracing::warn!(
                region,
                code = %error.code,
                "{region}: the look-up failed ({}: {}): its rows are sent without it",
                error.code,
                error.message
            );
        }
    }
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
