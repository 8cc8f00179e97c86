//! The writes: for each bucket, one task that takes the rows to send (in file order), never
//! has two rows of one image under way (rows of one image run in file order), hands each
//! row's `ModifyImageSharePermission` to the engine, and turns how the call ended into the
//! row's [`Outcome`]. Pacing, retries and adapting are the engine's; this stage only knows
//! rows.
//!
//! Each bucket's task owns its state; a slow bucket never holds another back beyond what
//! the one reader has buffered for it. Every finished row, sent or settled, goes to the
//! [`Sink`].

mod queue;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::action::Permission;
use crate::actions::{Kind, Share};
use crate::engine::{Engine, Reason, Unfinished};
use crate::input::Row;
use crate::job::Bucket;
use crate::output::Progress;
use crate::results::{Identity, Outcome, Status};
use queue::ImageQueue;

/// How many rows a bucket may hold back behind busy images before it stops reading ahead.
const MAX_PARKED: usize = 4096;

/// Rows under way in a bucket beyond its concurrency: those waiting out a backoff hold no
/// permit, and new rows should keep the lane busy meanwhile.
const MAX_WAITING: usize = 256;

/// Where every finished row goes: the progress display, the engine's `--max-failures` rule,
/// and the record.
#[derive(Clone)]
pub struct Sink {
    outcomes_tx: mpsc::Sender<Outcome>,
    progress: Arc<Progress>,
    engine: Arc<Engine>,
}

impl Sink {
    pub fn new(
        outcomes_tx: mpsc::Sender<Outcome>,
        progress: Arc<Progress>,
        engine: Arc<Engine>,
    ) -> Self {
        Self {
            outcomes_tx,
            progress,
            engine,
        }
    }

    fn count(&self, outcome: &Outcome) {
        self.progress.record(outcome);
        self.engine.row_finished(outcome.status == Status::Failed);
    }

    /// Hands a finished row on; `false` once the record takes no more (the run stops).
    pub async fn emit(&self, outcome: Outcome) -> bool {
        self.count(&outcome);
        let taken = self.outcomes_tx.send(outcome).await.is_ok();
        self.refused(taken)
    }

    /// [`Sink::emit`] from a thread outside the runtime (the reader).
    pub fn emit_blocking(&self, outcome: Outcome) -> bool {
        self.count(&outcome);
        let taken = self.outcomes_tx.blocking_send(outcome).is_ok();
        self.refused(taken)
    }

    fn refused(&self, taken: bool) -> bool {
        if !taken {
            self.engine.stop().trigger(Reason::Journal(
                "the results file stopped taking rows".into(),
            ));
        }
        taken
    }
}

/// Rows as the reader sends them, in batches (one wake-up per batch, not per row), handed
/// out one at a time.
pub struct Incoming {
    rows_rx: mpsc::Receiver<Vec<Row>>,
    batch: std::vec::IntoIter<Row>,
}

impl Incoming {
    pub fn new(rows_rx: mpsc::Receiver<Vec<Row>>) -> Self {
        Self {
            rows_rx,
            batch: Vec::new().into_iter(),
        }
    }

    /// The next row, waiting for the reader if need be; `None` at the end of the input.
    async fn next(&mut self) -> Option<Row> {
        if let Some(row) = self.batch.next() {
            return Some(row);
        }
        self.batch = self.rows_rx.recv().await?.into_iter();
        self.batch.next()
    }
}

/// A row and its outcome; `None` when the job stopped before the row finished.
type Written = (Row, Option<Outcome>);

/// Sends every row that arrives on `rows`, until they are all finished or the run stops.
pub async fn drive(engine: Arc<Engine>, bucket: Arc<Bucket>, mut rows: Incoming, sink: Sink) {
    let stop = engine.stop().clone();
    let most = bucket.n_rows.try_into().unwrap_or(usize::MAX);
    let cap = concurrency(&bucket).saturating_add(MAX_WAITING);
    let mut images = ImageQueue::default();
    let mut under_way: JoinSet<Written> = JoinSet::new();
    let (mut exhausted, mut warmed) = (false, false);
    loop {
        if under_way.is_empty() && (exhausted || stop.is_stopped()) {
            return;
        }
        let may_read = !exhausted
            && !stop.is_stopped()
            && under_way.len() < cap
            && images.n_parked < MAX_PARKED;
        tokio::select! {
            biased;
            Some(joined) = under_way.join_next(), if !under_way.is_empty() => {
                let Ok((row, outcome)) = joined else { continue };
                if let Some(outcome) = outcome && !sink.emit(outcome).await {
                    break;
                }
                if let Some(next) = images.release(&row) {
                    under_way.spawn(write(engine.clone(), bucket.clone(), next));
                }
            }
            row = rows.next(), if may_read => match row {
                Some(row) => {
                    if !warmed {
                        warmed = true;
                        engine.warm(row.region, most.min(concurrency(&bucket))).await;
                    }
                    if let Some(row) = images.admit(row) {
                        under_way.spawn(write(engine.clone(), bucket.clone(), row));
                    }
                }
                None => exhausted = true,
            },
            () = stop.stopped(), if !stop.is_stopped() => {}
        }
    }
}

/// The concurrency of the bucket's write lane.
fn concurrency(bucket: &Bucket) -> usize {
    bucket.lane(Kind::Share).concurrency
}

/// One row's write, start to end.
async fn write(engine: Arc<Engine>, bucket: Arc<Bucket>, row: Row) -> Written {
    let ended = engine
        .call(bucket.lane(Kind::Share), &Share::of(&row))
        .await;
    let mut outcome = Outcome::new(Identity::of(&row), row.line, Status::Failed);
    outcome.attempts = ended.attempts;
    // Why the row was decided again (its image changed outside this tool); a failure's own
    // message replaces it.
    outcome.error_message = row.note.clone();
    match ended.result {
        Ok(shared) => {
            outcome.status = match row.permission {
                Permission::Share => Status::Shared,
                Permission::Cancel => Status::Unshared,
            };
            if outcome.status == Status::Shared && shared.blueprint_id.is_none() {
                outcome.error_message =
                    Some("shared, but the answer did not return the BlueprintId".into());
            }
            outcome.blueprint_id = shared.blueprint_id;
            outcome.request_id = Some(shared.request_id);
        }
        Err(Unfinished::AlreadyDone(error)) => {
            outcome.status = Status::AlreadyShared;
            outcome.request_id = error.request_id;
        }
        Err(Unfinished::Failed(error)) => {
            outcome.request_id = error.request_id.clone();
            outcome = outcome.with_error(&error.code, &error.message);
        }
        Err(Unfinished::Left) => return (row, None),
    }
    (row, Some(outcome))
}
