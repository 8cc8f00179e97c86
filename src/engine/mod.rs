//! The engine: the only place that paces, signs, sends, classifies, retries, adapts, gives
//! up and counts, for every action alike (SPEC §3, §5). A stage hands it one call (an
//! [`Action`]) and the lane of the bucket it belongs to, and gets back how the call
//! [`Ended`]; what the answer means for a row or a look-up is the stage's business.
//!
//! A call's attempts each wait for a concurrency permit and then for their turn: one request
//! is signed ahead of its slot at a time, so the slot paces what reaches the server and no
//! signature waits long enough to expire. Retries wait out their backoff holding nothing.
//! Everything runs on tokio's clock behind the [`Transport`] trait, so the unit tests drive
//! the engine on a paused clock with a scripted transport.

mod lane;
mod stop;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub use lane::{Lane, LaneReport};
pub use stop::{FailureLimit, Reason, Stop};

use crate::actions::Action;
use crate::api::{ApiError, Fault, Transport};
use crate::retry::{History, Policy, Step};

/// Why a call did not end with the action's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unfinished {
    /// The service says it is as asked already (SHARE of a shared image).
    AlreadyDone(ApiError),
    /// It failed for good: a permanent answer, retries ran out, the region or the lane gave
    /// up, or the job is stopping because of this very answer.
    Failed(ApiError),
    /// The job is stopping and the call did not finish: nothing is known about it.
    Left,
}

/// How a call ended, and how many requests it sent.
#[derive(Debug)]
pub struct Ended<T> {
    pub result: Result<T, Unfinished>,
    /// Requests sent, throttled ones included.
    pub attempts: u32,
}

/// What a call has been through so far.
#[derive(Default)]
struct Tries {
    attempts: u32,
    /// Attempts answered `RequestLimitExceeded`: not counted against `--max-attempts`.
    n_throttled: u32,
    /// `AuthFailure.SignatureExpire` gets one more attempt, no more.
    clock_retried: bool,
    /// The RequestId of the call's own last answer.
    request_id: Option<String>,
    /// The code of the failed attempt the next one retries: counted as a retry when that
    /// attempt is made, so that a retry decided but never sent (the job stopped) is not.
    retrying: Option<String>,
}

impl Tries {
    /// A failure that is not the call's own answer (its lane or region gave up meanwhile)
    /// carries the RequestId of the call's own last answer, if it had one.
    fn own(&self, unfinished: Unfinished) -> Unfinished {
        match unfinished {
            Unfinished::Failed(mut error) if error.request_id.is_none() => {
                error.request_id.clone_from(&self.request_id);
                Unfinished::Failed(error)
            }
            other => other,
        }
    }
}

/// After a failed attempt: try again after a wait, or end.
enum Next {
    Retry(Duration),
    End(Unfinished),
}

/// Rows finished and failed so far, for `--max-failures`.
#[derive(Default)]
struct Failures {
    limit: Option<FailureLimit>,
    n_finished: AtomicU64,
    n_failed: AtomicU64,
}

/// The engine a run's stages share.
pub struct Engine {
    transport: Arc<dyn Transport>,
    retry: Policy,
    stop: Stop,
    failures: Failures,
    /// A uniform draw from [0, 1) for the backoff's full jitter; fixed in tests.
    jitter: fn() -> f64,
    /// Calls waiting out a backoff now, for the progress line.
    pub n_retrying: AtomicU64,
}

impl Engine {
    pub fn new(transport: Arc<dyn Transport>, retry: Policy, stop: Stop) -> Self {
        Self {
            transport,
            retry,
            stop,
            failures: Failures::default(),
            jitter: || rand::random::<f64>(),
            n_retrying: AtomicU64::new(0),
        }
    }

    /// Stops the job once more rows failed than `limit` allows (`--max-failures`).
    pub fn with_failure_limit(mut self, limit: Option<FailureLimit>) -> Self {
        self.failures.limit = limit;
        self
    }

    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    /// Opens up to `n` connections to `region` before the first slot (see
    /// [`Transport::warm`]).
    pub async fn warm(&self, region: &'static str, n: usize) {
        self.transport.warm(region, n).await;
    }

    /// Counts a finished row, sent or not; past `--max-failures`, the job stops.
    pub fn row_finished(&self, failed: bool) {
        let n_finished = self.failures.n_finished.fetch_add(1, Ordering::Relaxed) + 1;
        let n_failed = self
            .failures
            .n_failed
            .fetch_add(u64::from(failed), Ordering::Relaxed)
            + u64::from(failed);
        if let Some(threshold) = self.failures.limit
            && failed
            && threshold.is_passed(n_failed, n_finished)
        {
            self.stop.trigger(Reason::TooManyFailures {
                threshold,
                n_failed,
                n_finished,
            });
        }
    }

    /// Makes `action`'s call through `lane` until it succeeds, fails for good, or the job
    /// stops.
    pub async fn call<A: Action>(&self, lane: &Lane, action: &A) -> Ended<A::Output> {
        let mut tries = Tries::default();
        // Held from one attempt to the next when the retry is at once, so that the call
        // keeps its place; let go while a backoff is waited out.
        let mut permit = None;
        let unfinished = loop {
            let result = match self.attempt(lane, action, &mut permit).await {
                Ok(result) => result,
                Err(unsent) => break unsent,
            };
            tries.attempts += 1;
            if let Some(code) = tries.retrying.take() {
                lane.retried(&code);
            }
            let error = match result {
                Ok(output) => {
                    return Ended {
                        result: Ok(output),
                        attempts: tries.attempts,
                    };
                }
                Err(error) => error,
            };
            if error.request_id.is_some() {
                tries.request_id.clone_from(&error.request_id);
            }
            match self.next::<A>(lane, action.region(), error, &mut tries) {
                Next::Retry(delay) if delay.is_zero() => {}
                Next::Retry(delay) => {
                    permit = None;
                    if !self.wait(delay).await {
                        break Unfinished::Left;
                    }
                }
                Next::End(unfinished) => break unfinished,
            }
        };
        Ended {
            result: Err(tries.own(unfinished)),
            attempts: tries.attempts,
        }
    }

    /// One attempt: a permit, the turn, the signature, the slot, the request, the answer.
    /// `Err` if it is not to be sent: the job stopped, or the lane or the region gave up
    /// (checked again once the slot is taken: an answer may have come meanwhile).
    async fn attempt<'l, A: Action>(
        &self,
        lane: &'l Lane,
        action: &A,
        permit: &mut Option<tokio::sync::SemaphorePermit<'l>>,
    ) -> Result<Result<A::Output, ApiError>, Unfinished> {
        let unsent = || match lane.dead(action.region()) {
            Some(error) => Err(Unfinished::Failed(error)),
            None if self.stop.is_stopped() => Err(Unfinished::Left),
            None => Ok(()),
        };
        unsent()?;
        if permit.is_none() {
            *permit = tokio::select! {
                biased;
                () = self.stop.stopped() => return Err(Unfinished::Left),
                acquired = lane.permits.acquire() => Some(acquired.map_err(|_| Unfinished::Left)?),
            };
        }
        let signed = {
            let _turn = tokio::select! {
                biased;
                () = self.stop.stopped() => return Err(Unfinished::Left),
                turn = lane.turn.lock() => turn,
            };
            unsent()?;
            let signed = self.transport.sign(action.request()).await;
            if signed.is_ok() {
                tokio::select! {
                    biased;
                    () = self.stop.stopped() => return Err(Unfinished::Left),
                    () = lane.pace() => {}
                }
            }
            signed
        };
        unsent()?;
        let sent_at = Instant::now();
        let answer = match signed {
            Ok(signed) => {
                lane.sent(sent_at);
                tracing::trace!(action = A::KIND.name(), region = action.region(), "sending");
                self.transport.send(signed).await
            }
            Err(fault) => Err(fault),
        };
        let result = answer
            .map_err(|fault| error_of(action, fault))
            .and_then(|bytes| action.read(&bytes));
        lane.answered(sent_at, &result);
        Ok(result)
    }

    /// What a failed attempt leads to, as the retry policy says; carries out what it means
    /// for the lane and the job.
    fn next<A: Action>(
        &self,
        lane: &Lane,
        region: &'static str,
        error: ApiError,
        tries: &mut Tries,
    ) -> Next {
        let history = History {
            attempts: tries.attempts - tries.n_throttled,
            clock_retried: tries.clock_retried,
            throttled_for: lane.throttled_for(),
        };
        let stopping = self.stop.is_stopped();
        let step = self.retry.next_step(
            error.class,
            history,
            lane.heard(),
            stopping,
            (self.jitter)(),
        );
        tracing::debug!(action = A::KIND.name(), region, code = %error.code, ?step, "attempt {} failed", tries.attempts);
        match step {
            Step::RetryAfter(delay) => {
                tries.retrying = Some(error.code);
                Next::Retry(delay)
            }
            Step::RetryNow => {
                tries.retrying = Some(error.code);
                tries.clock_retried = true;
                Next::Retry(Duration::ZERO)
            }
            Step::RetryThrottled => {
                tries.retrying = Some(error.code);
                tries.n_throttled += 1;
                Next::Retry(Duration::ZERO)
            }
            Step::AlreadyDone => Next::End(Unfinished::AlreadyDone(error)),
            Step::Leave => Next::End(Unfinished::Left),
            Step::Fail => Next::End(Unfinished::Failed(error)),
            Step::StopRegion => {
                lane.kill_region(region, &error);
                Next::End(Unfinished::Failed(error))
            }
            Step::StopBucket => {
                lane.give_up(&error, self.retry.max_throttled);
                Next::End(Unfinished::Failed(error))
            }
            Step::StopJob => {
                self.stop.trigger(Reason::Fatal(error.clone()));
                Next::End(Unfinished::Failed(error))
            }
        }
    }

    /// Waits out a backoff; `false` if the job stopped meanwhile.
    async fn wait(&self, delay: Duration) -> bool {
        self.n_retrying.fetch_add(1, Ordering::Relaxed);
        let waited = tokio::select! {
            biased;
            () = self.stop.stopped() => false,
            () = tokio::time::sleep(delay) => true,
        };
        self.n_retrying.fetch_sub(1, Ordering::Relaxed);
        waited
    }
}

/// A transport failure as an error of `action`, classified by it.
fn error_of<A: Action>(action: &A, fault: Fault) -> ApiError {
    ApiError {
        class: action.class(&fault.code),
        code: fault.code,
        message: fault.message,
        request_id: None,
    }
}
