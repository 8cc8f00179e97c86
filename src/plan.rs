//! The plan: one validation pass over the input before anything is sent (and, when resuming,
//! a check against the earlier results), the rate buckets the rows fall into, and the reader
//! threads that stream each bucket's rows to its pool task.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::action::{Permission, REGIONS, RateScope};
use crate::api::Endpoint;
use crate::decide::{Decided, Decider, Decision, Drift, State};
use crate::input::{InputError, Row, Source};
use crate::limiter::UTILISATION;
use crate::output::plural;
use crate::pool::Incoming;
use crate::results::{
    Asks, INVALID_INPUT, Identity, Occurrences, Outcome, Repeats, Resume, Status, ask,
};

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

/// Why the plan could not be made: exit 2 for the input, 130 for a signal; nothing sent.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Input(#[from] InputError),
    /// The run was told to stop while validating.
    #[error("interrupted while checking the input")]
    Interrupted,
}

/// What the validation pass found.
#[derive(Debug)]
pub struct Plan {
    /// Rows to send, per bucket.
    pub rows_per_bucket: BTreeMap<String, u64>,
    pub n_invalid: u64,
    /// Rows an earlier run finished: kept unless the record or the look-up contradicts them.
    pub n_kept: u64,
    /// The regions of each bucket's rows to send: what its look-up lists.
    pub regions_per_bucket: BTreeMap<String, BTreeSet<&'static str>>,
    /// Images with both SHARE and CANCEL rows: they flip on every run.
    pub flipping: Flipping,
    /// The asks that more than one row makes: what numbering rows needs to hold.
    pub repeats: Repeats,
}

/// Images with both SHARE and CANCEL rows, found in the validation pass: the first few by
/// name, the rest counted.
#[derive(Debug, Default)]
pub struct Flipping {
    pub named: Vec<String>,
    pub n_images: u64,
}

/// How many flipping images are named; the rest are counted.
pub const SHOWN_FLIPPING: usize = 10;

impl Flipping {
    /// `ap-seoul img-aaaaaaaa, ... and 3 more`, or `None` when no image flips.
    pub fn describe(&self) -> Option<String> {
        if self.n_images == 0 {
            return None;
        }
        let mut text = self.named.join(", ");
        let n_more = self.n_images - self.named.len() as u64;
        if n_more > 0 {
            text.push_str(&format!(" and {n_more} more"));
        }
        Some(text)
    }
}

/// How many invalid rows are printed; the rest are in the results file.
const SHOWN_INVALID: u64 = 20;

impl Plan {
    /// Reads every row of `input` once: checks it, and counts it in its bucket unless an
    /// earlier run finished it. Stops early with [`PlanError::Interrupted`] once `cancel` is
    /// set, so that a signal during a long validation ends the run promptly.
    pub fn make(
        input: &Source,
        buckets: &Buckets,
        resume: &Resume,
        cancel: &AtomicBool,
    ) -> Result<Self, PlanError> {
        let mut plan = Plan {
            rows_per_bucket: BTreeMap::new(),
            n_invalid: 0,
            n_kept: 0,
            regions_per_bucket: BTreeMap::new(),
            flipping: Flipping::default(),
            repeats: Repeats::default(),
        };
        let mut asks = Asks::default();
        let mut rows_per_region = [0u64; REGIONS.len()];
        let spill = |e: std::io::Error| InputError::Open {
            path: std::env::temp_dir(),
            source: e,
        };
        let reader = input.reader()?;
        match reader.delimiter() {
            Some(';') => tracing::info!("{} is separated by `;`", input.path().display()),
            Some('\t') => tracing::info!("{} is separated by tabs", input.path().display()),
            _ => {}
        }
        let mut reader = reader;
        for record in reader.by_ref() {
            if cancel.load(Ordering::Relaxed) {
                return Err(PlanError::Interrupted);
            }
            let record = record?;
            match record.validate() {
                Err(message) => {
                    plan.n_invalid += 1;
                    if plan.n_invalid <= SHOWN_INVALID {
                        tracing::warn!(
                            line = record.line,
                            region = record.region,
                            image_id = record.image_id,
                            status = "invalid",
                            code = INVALID_INPUT,
                            "line {}: {message}",
                            record.line
                        );
                    }
                }
                Ok(row) => {
                    asks.push(&row).map_err(spill)?;
                    // Counted per region here (no bucket name to build per row), per
                    // bucket below.
                    if let Some(i) = REGIONS.iter().position(|r| *r == row.region) {
                        rows_per_region[i] += 1;
                    }
                }
            }
        }
        for (region, n) in REGIONS.iter().zip(rows_per_region).filter(|(_, n)| *n > 0) {
            let bucket = buckets.of(region);
            plan.regions_per_bucket
                .entry(bucket.clone())
                .or_default()
                .insert(region);
            *plan.rows_per_bucket.entry(bucket).or_default() += n;
        }
        if let (n, Some(line)) = reader.wide_rows() {
            tracing::warn!(
                line,
                "line {line}{}: more cells than the header has columns; the cells past the last column have no header, so the results do not repeat them (an unquoted comma in a cell?)",
                match n {
                    1 => String::new(),
                    n => format!(" and {} more rows", n - 1),
                }
            );
        }
        let found = asks.finish().map_err(spill)?;
        plan.repeats = found.repeats;
        plan.flipping.n_images = found.flipping.len() as u64;
        if resume.n_kept() > 0 || !found.flipping.is_empty() {
            plan.second_pass(input, buckets, resume, &found.flipping, cancel)?;
        }
        if plan.n_invalid > SHOWN_INVALID {
            tracing::warn!(
                "... and {} more invalid rows (each is listed in the results file)",
                plan.n_invalid - SHOWN_INVALID
            );
        }
        Ok(plan)
    }

    /// Numbers the rows now that the repeated asks are known: the rows an earlier run
    /// finished are not to send; and names the first flipping images.
    fn second_pass(
        &mut self,
        input: &Source,
        buckets: &Buckets,
        resume: &Resume,
        flipping: &HashSet<u64>,
        cancel: &AtomicBool,
    ) -> Result<(), PlanError> {
        let mut occurrences = Occurrences::new(&self.repeats);
        for record in input.reader()? {
            if cancel.load(Ordering::Relaxed) {
                return Err(PlanError::Interrupted);
            }
            let Ok(mut row) = record?.validate() else {
                continue;
            };
            let image = ask(&row) >> 1;
            if self.flipping.named.len() < SHOWN_FLIPPING
                && flipping.contains(&image)
                && !self
                    .flipping
                    .named
                    .iter()
                    .any(|n| n == &flipping_name(&row))
            {
                self.flipping.named.push(flipping_name(&row));
            }
            if resume.is_kept(&occurrences.identify(&mut row)) {
                self.n_kept += 1;
                if let Some(n) = self.rows_per_bucket.get_mut(&buckets.of(row.region)) {
                    *n -= 1;
                }
            }
        }
        // A bucket whose rows were all finished earlier is still looked up and decided: the
        // look-up may contradict them (SPEC §9).
        self.rows_per_bucket.retain(|_, n| *n > 0);
        Ok(())
    }

    /// Rows to send over all buckets.
    pub fn n_to_send(&self) -> u64 {
        self.rows_per_bucket.values().sum()
    }

    pub fn log(&self, rate: f64, buckets: &Buckets) {
        if self.n_to_send() + self.n_invalid + self.n_kept == 0 {
            tracing::warn!("the input has a header but no rows: there is nothing to do");
        }
        let pace = rate * UTILISATION;
        let slowest = self.rows_per_bucket.values().max().copied().unwrap_or(0);
        let eta = slowest as f64 / pace;
        let limit = match buckets.scope {
            RateScope::Region => format!(
                "at {pace:.2}/s per region ({})",
                plural(self.rows_per_bucket.len() as u64, "region", "regions")
            ),
            RateScope::Endpoint if buckets.endpoint.has_region() => format!(
                "at {pace:.2}/s per endpoint ({})",
                plural(self.rows_per_bucket.len() as u64, "endpoint", "endpoints")
            ),
            RateScope::Endpoint => format!(
                "at {pace:.2}/s, one limit for all regions through {}",
                buckets.endpoint.template()
            ),
        };
        tracing::info!(
            "plan: {} to send {limit}; {} invalid; {} finished earlier (kept unless the record or the look-up contradicts them); about {} at full rate",
            plural(self.n_to_send(), "row", "rows"),
            self.n_invalid,
            self.n_kept,
            humantime::format_duration(Duration::from_secs(eta.ceil() as u64)),
        );
        for (bucket, rows) in &self.rows_per_bucket {
            tracing::info!("  {bucket}: {}", plural(*rows, "row", "rows"));
        }
        if let Some(images) = self.flipping.describe() {
            tracing::warn!(
                "{} both SHARE and CANCEL rows, so each run shares and unshares again: {images}",
                plural(self.flipping.n_images, "image has", "images have")
            );
        }
    }
}

/// What a dry run would do in one bucket.
#[derive(Debug, Default, Clone)]
pub struct BucketPlan {
    pub n_share: u64,
    pub n_cancel: u64,
    /// Rows already as asked: not sent.
    pub n_already: u64,
}

/// Decides every row to send against `state` as a run would, without sending: the plan of a
/// dry run, per bucket. With `-v`, one line per row.
pub fn dry_run(
    input: &Source,
    buckets: &Buckets,
    resume: Arc<Resume>,
    repeats: &Repeats,
    state: State,
) -> Result<BTreeMap<String, BucketPlan>, InputError> {
    let mut decider = Decider::new(state, resume, Default::default());
    let mut plans: BTreeMap<String, BucketPlan> = BTreeMap::new();
    let mut occurrences = Occurrences::new(repeats);
    for record in input.reader()? {
        let Ok(mut row) = record?.validate() else {
            continue;
        };
        let identity = occurrences.identify(&mut row);
        let Decided { decision, drift } = decider.decide(&row, &identity);
        if decision == Decision::Keep {
            continue;
        }
        let plan = plans.entry(buckets.of(row.region)).or_default();
        let what = match (&decision, row.permission) {
            (Decision::Keep, _) => continue,
            (Decision::Send, Permission::Share) => {
                plan.n_share += 1;
                "would be shared".to_string()
            }
            (Decision::Send, Permission::Cancel) => {
                plan.n_cancel += 1;
                "would be unshared".to_string()
            }
            (Decision::AlreadyShared(blueprint), _) => {
                plan.n_already += 1;
                format!("already shared ({blueprint}): not sent")
            }
            (Decision::AlreadyUnshared, _) => {
                plan.n_already += 1;
                "already unshared: not sent".to_string()
            }
        };
        let drift = drift.map(|d| format!(" ({d})")).unwrap_or_default();
        tracing::debug!(
            line = row.line,
            region = row.region,
            image_id = %row.image_id,
            "line {}: {} {} {}: {what}{drift}",
            row.line,
            row.region,
            row.image_id,
            row.permission
        );
    }
    Ok(plans)
}

/// Logs a dry run's plan: per bucket what would be sent and what is already as asked, and
/// how long the writes would take at `rate`.
pub fn log_dry_run(plans: &BTreeMap<String, BucketPlan>, n_invalid: u64, rate: f64) {
    let pace = rate * UTILISATION;
    for (bucket, plan) in plans {
        let eta = (plan.n_share + plan.n_cancel) as f64 / pace;
        tracing::info!(
            "dry run: {bucket}: {} to share, {} to cancel, {} already as asked; about {}",
            plan.n_share,
            plan.n_cancel,
            plan.n_already,
            humantime::format_duration(Duration::from_secs(eta.ceil() as u64)),
        );
    }
    let slowest = plans
        .values()
        .map(|p| p.n_share + p.n_cancel)
        .max()
        .unwrap_or(0);
    let (n_share, n_cancel, n_already) = plans.values().fold((0, 0, 0), |(s, c, a), p| {
        (s + p.n_share, c + p.n_cancel, a + p.n_already)
    });
    tracing::info!(
        "dry run: {n_share} to share, {n_cancel} to cancel, {n_already} already as asked, {n_invalid} invalid; the writes would take about {}",
        humantime::format_duration(Duration::from_secs((slowest as f64 / pace).ceil() as u64)),
    );
}

/// Rows the reader sends to its bucket at once.
const READ_BATCH: usize = 64;

/// A reader thread: it streams one bucket's rows (valid, not kept) from the input, in file
/// order, and returns the error that stopped it early, if one did.
pub type ReaderHandle = tokio::task::JoinHandle<Result<(), InputError>>;

/// Starts the reader of bucket `name`. Rows that `decider` settles (already as asked) are not
/// sent: their outcomes go straight to `outcomes_tx`.
pub fn spawn_reader(
    input: Arc<Source>,
    buckets: &Buckets,
    name: &str,
    repeats: Repeats,
    mut decider: Decider,
    outcomes_tx: mpsc::Sender<Outcome>,
) -> (Incoming, ReaderHandle) {
    let (rows_tx, rows_rx) = mpsc::channel(4);
    let (buckets, name) = (buckets.clone(), name.to_string());
    let handle = tokio::task::spawn_blocking(move || {
        let mut batch: Vec<Row> = Vec::with_capacity(READ_BATCH);
        // A row's identity holds its region, so rows asking the same thing are all in one
        // bucket: numbering this bucket's rows numbers them as the plan did.
        let mut occurrences = Occurrences::new(&repeats);
        let mine: Vec<&str> = REGIONS
            .iter()
            .copied()
            .filter(|region| buckets.of(region) == name)
            .collect();
        for record in input.reader()? {
            let Ok(mut row) = record?.validate() else {
                continue;
            };
            if !mine.contains(&row.region) {
                continue;
            }
            let identity = occurrences.identify(&mut row);
            let Decided { decision, drift } = decider.decide(&row, &identity);
            if let Some(drift) = drift {
                note_drift(&mut row, drift);
            }
            let settled = match decision {
                Decision::Keep => continue,
                Decision::Send => {
                    batch.push(row);
                    None
                }
                Decision::AlreadyShared(blueprint) => Some(settled(
                    identity,
                    &row,
                    Status::AlreadyShared,
                    Some(blueprint),
                )),
                Decision::AlreadyUnshared => {
                    Some(settled(identity, &row, Status::AlreadyUnshared, None))
                }
            };
            if let Some(outcome) = settled
                && outcomes_tx.blocking_send(outcome).is_err()
            {
                // The record stopped taking rows: the run is stopping.
                return Ok(());
            }
            if batch.len() == READ_BATCH
                && rows_tx.blocking_send(std::mem::take(&mut batch)).is_err()
            {
                // The bucket stopped taking rows: the run is stopping.
                return Ok(());
            }
        }
        if !batch.is_empty() {
            let _ = rows_tx.blocking_send(batch);
        }
        Ok(())
    });
    (Incoming::new(rows_rx), handle)
}

/// The outcome of a row the look-up settled: not sent, `attempts` 0.
fn settled(identity: Identity, row: &Row, status: Status, blueprint: Option<String>) -> Outcome {
    tracing::debug!(
        line = row.line,
        region = row.region,
        image_id = %row.image_id,
        status = status.as_str(),
        "line {}: {}: not sent",
        row.line,
        status.as_str()
    );
    let mut outcome = Outcome::new(identity, row.line, status);
    outcome.blueprint_id = blueprint;
    outcome.error_message = row.note.clone();
    outcome
}

/// Says in the log (with the row's fields, for JSON logs) and in the row's message that its
/// image changed outside this tool since the last run, so the row is decided again.
fn note_drift(row: &mut Row, drift: Drift) {
    tracing::warn!(
        line = row.line,
        region = row.region,
        image_id = %row.image_id,
        drift = true,
        "line {}: {} {}: {drift}; decided again",
        row.line,
        row.region,
        row.image_id
    );
    row.note = Some(drift.to_string());
}

/// `ap-seoul img-aaaaaaaa`: a flipping image as the plan names it.
fn flipping_name(row: &Row) -> String {
    format!("{} {}", row.region, row.image_id)
}
