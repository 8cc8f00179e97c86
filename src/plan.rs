//! The plan: one validation pass over the input before anything is sent (and, when resuming,
//! a check against the earlier results), the rate buckets the rows fall into, and the reader
//! threads that stream each bucket's rows to its pool task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::action::RateScope;
use crate::api::Endpoint;
use crate::input::{InputError, Row, Source};
use crate::limiter::UTILISATION;
use crate::output::plural;
use crate::pool::Incoming;
use crate::results::{INVALID_INPUT, Occurrences, Resume};

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
    /// Rows an earlier run finished, kept as they are.
    pub n_kept: u64,
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
        };
        let mut occurrences = Occurrences::default();
        for record in input.reader()? {
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
                Ok(mut row) => {
                    if resume.is_kept(&occurrences.identify(&mut row)) {
                        plan.n_kept += 1;
                    } else {
                        *plan
                            .rows_per_bucket
                            .entry(buckets.of(row.region))
                            .or_default() += 1;
                    }
                }
            }
        }
        if plan.n_invalid > SHOWN_INVALID {
            tracing::warn!(
                "... and {} more invalid rows (each is listed in the results file)",
                plan.n_invalid - SHOWN_INVALID
            );
        }
        Ok(plan)
    }

    /// Rows to send over all buckets.
    pub fn n_to_send(&self) -> u64 {
        self.rows_per_bucket.values().sum()
    }

    pub fn log(&self, rate: f64, buckets: &Buckets) {
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
            "plan: {} to send {limit}; {} invalid; {} already done (kept); about {} at full rate",
            plural(self.n_to_send(), "row", "rows"),
            self.n_invalid,
            self.n_kept,
            humantime::format_duration(Duration::from_secs(eta.ceil() as u64)),
        );
        for (bucket, rows) in &self.rows_per_bucket {
            tracing::info!("  {bucket}: {}", plural(*rows, "row", "rows"));
        }
    }
}

/// Rows the reader sends to its bucket at once.
const READ_BATCH: usize = 64;

/// A reader thread: it streams one bucket's rows (valid, not kept) from the input, in file
/// order, and returns the error that stopped it early, if one did.
pub type ReaderHandle = tokio::task::JoinHandle<Result<(), InputError>>;

/// Starts the reader of bucket `name`.
pub fn spawn_reader(
    input: Arc<Source>,
    buckets: &Buckets,
    name: &str,
    resume: Arc<Resume>,
) -> (Incoming, ReaderHandle) {
    let (rows_tx, rows_rx) = mpsc::channel(4);
    let (buckets, name) = (buckets.clone(), name.to_string());
    let handle = tokio::task::spawn_blocking(move || {
        let mut batch: Vec<Row> = Vec::with_capacity(READ_BATCH);
        // A row's identity holds its region, so rows asking the same thing are all in one
        // bucket: numbering this bucket's rows numbers them as the plan did.
        let mut occurrences = Occurrences::default();
        for record in input.reader()? {
            let Ok(mut row) = record?.validate() else {
                continue;
            };
            if buckets.of(row.region) != name || resume.is_kept(&occurrences.identify(&mut row)) {
                continue;
            }
            batch.push(row);
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
