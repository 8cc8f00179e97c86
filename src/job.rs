//! The job: the rate buckets a run's rows fall into, each one quota of the account. A
//! bucket is an access region (`--rate-scope region`) or one endpoint URL with all its
//! regions (`endpoint`), and holds one [`Lane`] per action, since Tencent counts each
//! action's limit on its own (SPEC §3). Every stage of the run (look-up, preflight, writes)
//! goes through the same buckets, so their tallies end up in one place for the summary.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::action::RateScope;
use crate::actions::Kind;
use crate::api::Endpoint;
use crate::engine::{Lane, LaneReport};

/// The most requests per second `DescribeImagesToShare` takes (its documented limit).
pub const IMAGES_RATE: f64 = 20.0;

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

/// The rates and concurrency of each action's lane.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// `--rate`: the writes.
    pub rate: f64,
    /// `--describe-rate`: the state look-ups.
    pub describe_rate: f64,
    /// `--concurrency`: requests in flight per lane.
    pub concurrency: usize,
}

impl Pacing {
    fn rate(&self, kind: Kind) -> f64 {
        match kind {
            Kind::Share => self.rate,
            Kind::DescribeBlueprints => self.describe_rate,
            Kind::DescribeImages => IMAGES_RATE,
        }
    }
}

/// One quota: its name, the regions of the rows in it, and a lane per action.
pub struct Bucket {
    pub name: String,
    pub regions: BTreeSet<&'static str>,
    /// Rows the plan counted to send: no more connections are warmed than they can use.
    pub n_rows: u64,
    lanes: Vec<(Kind, Lane)>,
}

impl Bucket {
    fn new(name: &str, regions: BTreeSet<&'static str>, n_rows: u64, pacing: &Pacing) -> Self {
        let lanes = Kind::ALL
            .iter()
            .map(|kind| {
                let lane = Lane::new(name, *kind, pacing.rate(*kind), pacing.concurrency);
                (*kind, lane)
            })
            .collect();
        Self {
            name: name.to_string(),
            regions,
            n_rows,
            lanes,
        }
    }

    /// The lane of `kind`'s calls.
    pub fn lane(&self, kind: Kind) -> &Lane {
        // `new` makes a lane for every kind.
        let (_, lane) = self
            .lanes
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("every bucket has a lane per action");
        lane
    }
}

/// The buckets of a run, by name.
pub struct Job {
    pub buckets: Buckets,
    by_name: BTreeMap<String, Arc<Bucket>>,
    /// Buckets of regions without rows, made when a stage asks there (the preflight asks
    /// every region where an image is) and kept, so that every request to one quota goes
    /// through one lane, and is counted in the summary.
    others: Mutex<BTreeMap<String, Arc<Bucket>>>,
    pacing: Pacing,
}

impl Job {
    /// The buckets of the regions in `rows_per_region` (rows to send per region).
    pub fn new(
        buckets: Buckets,
        rows_per_region: &BTreeMap<&'static str, u64>,
        pacing: &Pacing,
    ) -> Self {
        let mut grouped: BTreeMap<String, (BTreeSet<&'static str>, u64)> = BTreeMap::new();
        for (region, n) in rows_per_region {
            let (regions, n_rows) = grouped.entry(buckets.of(region)).or_default();
            regions.insert(region);
            *n_rows += n;
        }
        let by_name = grouped
            .into_iter()
            .map(|(name, (regions, n))| {
                let bucket = Bucket::new(&name, regions, n, pacing);
                (name, Arc::new(bucket))
            })
            .collect();
        Self {
            buckets,
            by_name,
            others: Mutex::new(BTreeMap::new()),
            pacing: *pacing,
        }
    }

    /// The bucket of any `region`: the job's own if it has rows there, else one made for
    /// it (with no rows) on first use.
    pub fn any(&self, region: &'static str) -> Arc<Bucket> {
        if let Some(bucket) = self.of(region) {
            return bucket.clone();
        }
        let name = self.buckets.of(region);
        let mut others = self.others.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = others.entry(name.clone()).or_insert_with(|| {
            Arc::new(Bucket::new(
                &name,
                BTreeSet::from([region]),
                0,
                &self.pacing,
            ))
        });
        bucket.clone()
    }

    /// Every bucket, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Bucket>> {
        self.by_name.values()
    }

    /// The bucket of `region`, if the job has rows there.
    pub fn of(&self, region: &str) -> Option<&Arc<Bucket>> {
        self.by_name.get(&self.buckets.of(region))
    }

    /// What every lane that sent anything did, by bucket then action.
    pub fn reports(&self) -> Vec<LaneReport> {
        let others = self.others.lock().unwrap_or_else(|e| e.into_inner());
        let mut reports: Vec<LaneReport> = self
            .iter()
            .chain(others.values())
            .flat_map(|bucket| bucket.lanes.iter().map(|(_, lane)| lane.report()))
            .filter(|report| report.n_requests > 0)
            .collect();
        reports.sort_by(|a, b| (&a.bucket, a.kind).cmp(&(&b.bucket, b.kind)));
        reports
    }

    /// The reports of `kind`'s lanes, every bucket's, whether they sent or not.
    pub fn reports_of(&self, kind: Kind) -> Vec<LaneReport> {
        self.iter()
            .map(|bucket| bucket.lane(kind).report())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_without_rows_gets_one_bucket_on_first_use_and_a_shared_quota_stays_one() {
        let pacing = Pacing {
            rate: 20.0,
            describe_rate: 10.0,
            concurrency: 4,
        };
        let rows = BTreeMap::from([("ap-tokyo", 3)]);
        let per_region = Buckets {
            scope: RateScope::Region,
            endpoint: Endpoint::new("https://lighthouse.{region}.tencentcloudapi.com"),
        };
        let job = Job::new(per_region, &rows, &pacing);
        assert!(Arc::ptr_eq(
            &job.any("ap-tokyo"),
            job.of("ap-tokyo").unwrap()
        ));
        let other = job.any("ap-seoul");
        assert!(Arc::ptr_eq(&other, &job.any("ap-seoul")), "made once");
        assert_eq!((other.name.as_str(), other.n_rows), ("ap-seoul", 0));
        assert_eq!(
            job.iter().count(),
            1,
            "the job's own buckets are those with rows"
        );

        let one_endpoint = Buckets {
            scope: RateScope::Endpoint,
            endpoint: Endpoint::new("https://lighthouse.tencentcloudapi.com"),
        };
        let job = Job::new(one_endpoint, &rows, &pacing);
        assert!(
            Arc::ptr_eq(&job.any("ap-seoul"), job.of("ap-tokyo").unwrap()),
            "one endpoint for all regions is one quota"
        );
    }
}
