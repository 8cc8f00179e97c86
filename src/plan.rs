//! The plan: one validation pass over the input before anything is sent (and, when resuming,
//! a check against the earlier results), the rows to send per region (which make the job's
//! buckets), the dry run's decisions, and the one reader that streams the rows to send to
//! their buckets. Every later pass reads the input through [`Numbered`]: the one place that
//! checks a row, numbers it and says whether an earlier run finished it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::action::{Permission, REGIONS, RateScope};
use crate::decide::{Decided, Decider, Decision, Drift, State};
use crate::input::{InputError, Reader, Row, Source};
use crate::job::{Bucket, Buckets, Job};
use crate::limiter::UTILISATION;
use crate::output::plural;
use crate::results::{
    Asks, Destination, Fits, INVALID_INPUT, Identity, Occurrences, Outcome, Repeats, Resume,
    Status, ask, ask_of,
};
use crate::writes::{Incoming, Sink};

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
    /// Valid rows, per region: what the job's buckets are made of. Rows an earlier run
    /// finished count too: the look-up of their region may contradict them (SPEC §9).
    pub rows_per_region: BTreeMap<&'static str, u64>,
    pub n_invalid: u64,
    /// Rows an earlier run finished: kept unless the record or the look-up contradicts them.
    pub n_kept: u64,
    /// Images with both SHARE and CANCEL rows: they flip on every run.
    pub flipping: Flipping,
    /// The asks that more than one row makes: what numbering rows needs to hold.
    pub repeats: Repeats,
    /// Some row has cells past the header's last column: the results keep them in a column
    /// of their own.
    pub wide: bool,
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
        resume: &Resume,
        destination: &Destination,
        cancel: &AtomicBool,
    ) -> Result<Self, PlanError> {
        let mut plan = Plan {
            rows_per_region: BTreeMap::new(),
            n_invalid: 0,
            n_kept: 0,
            flipping: Flipping::default(),
            repeats: Repeats::default(),
            wide: false,
        };
        let mut asks = Asks::default();
        let mut reader = input.reader()?;
        match reader.delimiter() {
            Some(';') => tracing::info!("{} is separated by `;`", crate::text::path(input.path())),
            Some('\t') => {
                tracing::info!("{} is separated by tabs", crate::text::path(input.path()))
            }
            _ => {}
        }
        let mut fits = Fits::new(destination, reader.header())?;
        let rows_per_region = plan.first_pass(&mut reader, &mut asks, &mut fits, cancel)?;
        plan.rows_per_region = REGIONS
            .iter()
            .copied()
            .zip(rows_per_region)
            .filter(|(_, n)| *n > 0)
            .collect();
        warn_wide_rows(&reader);
        plan.wide = reader.wide_rows().0 > 0;
        let found = asks.finish().map_err(spill)?;
        plan.repeats = found.repeats;
        plan.flipping.n_images = found.flipping.len() as u64;
        if resume.n_kept() > 0 || !found.flipping.is_empty() {
            plan.second_pass(input, resume, &found.flipping, cancel)?;
        }
        if plan.n_invalid > SHOWN_INVALID {
            tracing::warn!(
                "... and {} more invalid rows (each is listed in the results file)",
                plan.n_invalid - SHOWN_INVALID
            );
        }
        Ok(plan)
    }

    /// Checks every row; counts the valid ones per region (no bucket name is built per row)
    /// and their asks, and says why the first invalid ones are.
    fn first_pass(
        &mut self,
        reader: &mut Reader,
        asks: &mut Asks,
        fits: &mut Fits,
        cancel: &AtomicBool,
    ) -> Result<[u64; REGIONS.len()], PlanError> {
        let mut rows_per_region = [0u64; REGIONS.len()];
        // Rows are borrowed from the reader, not copied: this pass is what validation costs.
        while let Some(view) = reader.next_view() {
            if cancel.load(Ordering::Relaxed) {
                return Err(PlanError::Interrupted);
            }
            let view = view?;
            // What the results file cannot hold is found now, before anything is sent.
            fits.check_cells(view.line, view.cells)?;
            match view.check() {
                Err(message) => {
                    self.n_invalid += 1;
                    if self.n_invalid <= SHOWN_INVALID {
                        tracing::warn!(
                            line = view.line,
                            region = view.region(),
                            image_id = view.image_id(),
                            status = "invalid",
                            code = INVALID_INPUT,
                            "line {}: {message}",
                            view.line
                        );
                    }
                }
                Ok(row) => {
                    asks.push_ask(ask_of(row.region, row.image_id, row.permission))
                        .map_err(spill)?;
                    if let Some(i) = REGIONS.iter().position(|r| *r == row.region) {
                        rows_per_region[i] += 1;
                    }
                }
            }
        }
        Ok(rows_per_region)
    }

    /// Numbers the rows now that the repeated asks are known: the rows an earlier run
    /// finished are not to send; and names the first flipping images.
    fn second_pass(
        &mut self,
        input: &Source,
        resume: &Resume,
        flipping: &HashSet<u64>,
        cancel: &AtomicBool,
    ) -> Result<(), PlanError> {
        for numbered in Numbered::new(input, &self.repeats, resume)? {
            if cancel.load(Ordering::Relaxed) {
                return Err(PlanError::Interrupted);
            }
            let numbered = numbered?;
            let row = &numbered.row;
            if self.flipping.named.len() < SHOWN_FLIPPING
                && flipping.contains(&(ask(row) >> 1))
                && !self.flipping.named.iter().any(|n| *n == flipping_name(row))
            {
                self.flipping.named.push(flipping_name(row));
            }
            self.n_kept += u64::from(numbered.kept);
        }
        Ok(())
    }

    /// Rows to send over all buckets, at most: the look-up settles some, and a row finished
    /// earlier that it contradicts is sent again.
    pub fn n_to_send(&self) -> u64 {
        self.rows_per_region.values().sum::<u64>() - self.n_kept
    }

    /// Says what the run will do: rows to send per bucket, invalid rows, rows kept, images
    /// that flip, and how long the writes take at `rate`.
    pub fn log(&self, rate: f64, job: &Job) {
        let buckets = &job.buckets;
        if self.n_to_send() + self.n_invalid + self.n_kept == 0 {
            tracing::warn!("the input has a header but no rows: there is nothing to do");
        }
        let pace = rate * UTILISATION;
        let slowest = job.iter().map(|b| b.n_rows).max().unwrap_or(0);
        let eta = slowest as f64 / pace;
        let limit = match buckets.scope {
            RateScope::Region => format!(
                "at {pace:.2}/s per region ({})",
                plural(job.iter().count() as u64, "region", "regions")
            ),
            RateScope::Endpoint if buckets.endpoint.has_region() => format!(
                "at {pace:.2}/s per endpoint ({})",
                plural(job.iter().count() as u64, "endpoint", "endpoints")
            ),
            RateScope::Endpoint => format!(
                "at {pace:.2}/s, one limit for all regions through {}",
                buckets.endpoint.template()
            ),
        };
        tracing::info!(
            "plan: {} to send {limit}; {} invalid; {} finished earlier (kept, unless the record or the look-up contradicts them or their image has both SHARE and CANCEL rows: then sent again); about {} at full rate",
            plural(self.n_to_send(), "row", "rows"),
            self.n_invalid,
            self.n_kept,
            humantime::format_duration(Duration::from_secs(eta.ceil() as u64)),
        );
        for bucket in job.iter() {
            tracing::info!(
                "  {}: {}",
                bucket.name,
                plural(bucket.n_rows, "row", "rows")
            );
        }
        if let Some(images) = self.flipping.describe() {
            tracing::warn!(
                "{} both SHARE and CANCEL rows, so a run may share and unshare again: {images}",
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

/// A valid row of the input, numbered among the rows that ask the same thing.
pub struct Numbered {
    pub row: Row,
    pub identity: Identity,
    /// An earlier run finished it: it is kept unless the record or the look-up contradicts
    /// it (the decision's to say).
    pub kept: bool,
}

impl Numbered {
    /// The valid rows of `input`, in file order, each checked, numbered and matched
    /// against the earlier run's record: the one pass every stage after the plan reads.
    pub fn new<'a>(
        input: &Source,
        repeats: &Repeats,
        resume: &'a Resume,
    ) -> Result<impl Iterator<Item = Result<Numbered, InputError>> + 'a, InputError> {
        let records: Reader = input.reader()?;
        let mut occurrences = Occurrences::new(repeats);
        Ok(records.filter_map(move |record| {
            let mut row = match record {
                Ok(record) => record.validate().ok()?,
                Err(error) => return Some(Err(error)),
            };
            let identity = occurrences.identify(&mut row);
            let kept = resume.is_kept(&identity);
            Some(Ok(Numbered {
                row,
                identity,
                kept,
            }))
        }))
    }
}

/// Decides every row to send against `state` as a run would, without sending: the plan of a
/// dry run, per bucket, and the SHARE rows that would be sent, for the preflight. With `-v`,
/// one line per row.
pub fn dry_run(
    input: &Source,
    buckets: &Buckets,
    resume: Arc<Resume>,
    repeats: &Repeats,
    state: State,
) -> Result<(BTreeMap<String, BucketPlan>, Vec<Row>), InputError> {
    let mut decider = Decider::new(state, resume.clone(), Default::default()).knowing(repeats);
    let mut plans: BTreeMap<String, BucketPlan> = BTreeMap::new();
    let mut to_share = Vec::new();
    for numbered in Numbered::new(input, repeats, &resume)? {
        let Numbered { row, identity, .. } = numbered?;
        let Decided { decision, drift } = decider.decide(&row, &identity);
        if decision == Decision::Keep {
            continue;
        }
        let plan = plans.entry(buckets.of(row.region)).or_default();
        let what = plan.count(&decision, row.permission);
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
        if decision == Decision::Send && row.permission == Permission::Share {
            to_share.push(row);
        }
    }
    Ok((plans, to_share))
}

impl BucketPlan {
    /// Counts a row's decision; says what it would do.
    fn count(&mut self, decision: &Decision, permission: Permission) -> String {
        match (decision, permission) {
            (Decision::Send, Permission::Share) => {
                self.n_share += 1;
                "would be shared".to_string()
            }
            (Decision::Send, Permission::Cancel) => {
                self.n_cancel += 1;
                "would be unshared".to_string()
            }
            (Decision::AlreadyShared(blueprint), _) => {
                self.n_already += 1;
                format!("already shared ({blueprint}): not sent")
            }
            (Decision::AlreadyUnshared, _) => {
                self.n_already += 1;
                "already unshared: not sent".to_string()
            }
            (Decision::Keep, _) => "finished earlier: kept".to_string(),
        }
    }
}

/// Logs a dry run's plan: per bucket what would be sent and what is already as asked, and
/// how long the writes would take at `rate`; and how many SHARE rows the preflight says
/// would fail (`None`: it was not made).
pub fn log_dry_run(
    plans: &BTreeMap<String, BucketPlan>,
    n_invalid: u64,
    n_would_fail: Option<u64>,
    rate: f64,
) {
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
    let would_fail = match n_would_fail {
        Some(n) => format!(" ({n} of them would fail)"),
        None => String::new(),
    };
    tracing::info!(
        "dry run: {n_share} to share{would_fail}, {n_cancel} to cancel, {n_already} already as asked, {n_invalid} invalid; the writes would take about {}",
        humantime::format_duration(Duration::from_secs((slowest as f64 / pace).ceil() as u64)),
    );
}

/// Rows the reader sends to its bucket at once.
const READ_BATCH: usize = 64;

/// Batches of rows buffered per bucket: a slow bucket holds the reader (and so the others)
/// back only once this many are waiting for it.
const BUFFERED_BATCHES: usize = 64;

/// The reader thread: it streams the rows to send (valid, decided `Send`) from the input to
/// their buckets, in file order, and returns the error that stopped it early, if one did.
pub type ReaderHandle = tokio::task::JoinHandle<Result<(), InputError>>;

/// Each region's sender, by the region's place in `REGIONS` (no bucket name is built per
/// row), and each bucket's rows.
type Channels = (
    Vec<Option<mpsc::Sender<Vec<Row>>>>,
    Vec<(Arc<Bucket>, Incoming)>,
);

fn channels(job: &Job) -> Channels {
    let mut senders = vec![None; REGIONS.len()];
    let mut incoming = Vec::new();
    for bucket in job.iter() {
        let (rows_tx, rows_rx) = mpsc::channel(BUFFERED_BATCHES);
        for region in &bucket.regions {
            if let Some(i) = REGIONS.iter().position(|r| r == region) {
                senders[i] = Some(rows_tx.clone());
            }
        }
        incoming.push((bucket.clone(), Incoming::new(rows_rx)));
    }
    (senders, incoming)
}

/// Starts the one reader of the input, and returns each bucket's rows. Rows that `decider`
/// keeps are left as recorded; rows it settles (already as asked) are not sent: they go
/// straight to `sink`.
pub fn spawn_reader(
    input: Arc<Source>,
    job: &Job,
    resume: Arc<Resume>,
    repeats: Repeats,
    decider: Decider,
    sink: Sink,
) -> (Vec<(Arc<Bucket>, Incoming)>, ReaderHandle) {
    let (senders, incoming) = channels(job);
    let mut decider = decider.knowing(&repeats);
    let handle = tokio::task::spawn_blocking(move || {
        let mut batches: Vec<Vec<Row>> = vec![Vec::new(); REGIONS.len()];
        for numbered in Numbered::new(&input, &repeats, &resume)? {
            let Numbered {
                mut row, identity, ..
            } = numbered?;
            let Some(i) = REGIONS.iter().position(|r| *r == row.region) else {
                continue;
            };
            let Some(rows_tx) = &senders[i] else {
                continue;
            };
            let Decided { decision, drift } = decider.decide(&row, &identity);
            if let Some(drift) = drift {
                note_drift(&mut row, drift);
            }
            let taken = match decision {
                Decision::Keep => true,
                Decision::Send => {
                    batches[i].push(row);
                    batches[i].len() < READ_BATCH
                        || rows_tx
                            .blocking_send(std::mem::take(&mut batches[i]))
                            .is_ok()
                }
                decision => sink.emit_blocking(settled(identity, &row, decision)),
            };
            if !taken {
                // Either end closed: the run is stopping.
                return Ok(());
            }
        }
        for (batch, rows_tx) in batches.into_iter().zip(&senders) {
            if let (false, Some(rows_tx)) = (batch.is_empty(), rows_tx) {
                let _ = rows_tx.blocking_send(batch);
            }
        }
        Ok(())
    });
    (incoming, handle)
}

/// The outcome of a row the look-up settled: not sent, `attempts` 0.
fn settled(identity: Identity, row: &Row, decision: Decision) -> Outcome {
    let (status, blueprint) = match decision {
        Decision::AlreadyShared(blueprint) => (Status::AlreadyShared, Some(blueprint)),
        _ => (Status::AlreadyUnshared, None),
    };
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

/// The temporary files that hold the asks of a large input could not be written.
fn spill(e: std::io::Error) -> InputError {
    InputError::Open {
        path: std::env::temp_dir(),
        source: e,
    }
}

/// Says which rows had more cells than the header has columns.
fn warn_wide_rows(reader: &Reader) {
    if let (n, Some(line)) = reader.wide_rows() {
        tracing::warn!(
            line,
            "line {line}{}: more cells than the header has columns (an unquoted comma in a cell?); the results keep the cells past the last column, as one comma-separated text, in the column `{}`",
            match n {
                1 => String::new(),
                n => format!(" and {} more rows", n - 1),
            },
            crate::results::PAST_HEADER,
        );
    }
}

/// `ap-seoul img-aaaaaaaa`: a flipping image as the plan names it.
fn flipping_name(row: &Row) -> String {
    format!("{} {}", row.region, row.image_id)
}
