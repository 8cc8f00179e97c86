//! The retry policy of SPEC §5 in one place: after a failed attempt, [`Policy::next_step`]
//! decides what happens to the row and the job. It is a pure function of the answer's class
//! and the row's history, so one table test covers every branch.

use std::time::Duration;

use crate::api::Class;

/// Capped exponential backoff with full jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before attempt `attempts + 1`: `jitter` (drawn uniformly from [0, 1)) times
    /// `min(max, base × 2^(attempts-1))`.
    pub fn delay(&self, attempts: u32, jitter: f64) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        let cap = self.base.saturating_mul(1 << exponent).min(self.max);
        cap.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// What a row has been through so far.
#[derive(Clone, Copy, Debug)]
pub struct History {
    /// Attempts sent for the row, the failed one included, less those answered
    /// `RequestLimitExceeded`: what `--max-attempts` counts.
    pub attempts: u32,
    /// Whether `AuthFailure.SignatureExpire` was already retried once.
    pub clock_retried: bool,
    /// How long the row's bucket has been refused without pause (zero if the last answer
    /// was not `RequestLimitExceeded`).
    pub throttled_for: Duration,
}

/// The retry settings of a run.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// How long a bucket may be refused without pause before its rows fail (5 minutes).
    pub max_throttled: Duration,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// Send it again after this wait, through the limiter.
    RetryAfter(Duration),
    /// Send it again now, re-signed: the clock case, once.
    RetryNow,
    /// Send it again through the limiter, whose rate the refusal lowered; the attempt does
    /// not count against `--max-attempts`.
    RetryThrottled,
    /// The row is already as asked (SHARE of a shared image).
    AlreadyDone,
    /// The row fails; nothing else changes.
    Fail,
    /// The row fails, and so does every other row of its region, unsent.
    StopRegion,
    /// The row fails, and so does every other row of its bucket, unsent: the bucket has
    /// been refused for too long.
    StopBucket,
    /// The row fails and the job stops: no new rows start.
    StopJob,
    /// The job is stopping and this row is not finished: leave it unrecorded, so it ends
    /// `skipped` and a `--resume` runs it.
    Leave,
}

impl Policy {
    /// The next step for a row whose last attempt failed with `class`. `stopping` is whether
    /// the job is stopping (a signal, a job-fatal answer elsewhere); `jitter` is a uniform
    /// draw from [0, 1), passed in so the function stays pure.
    pub fn next_step(&self, class: Class, history: History, stopping: bool, jitter: f64) -> Step {
        match class {
            Class::AlreadyDone => Step::AlreadyDone,
            Class::Throttled if history.throttled_for >= self.max_throttled => Step::StopBucket,
            Class::Throttled if stopping => Step::Leave,
            Class::Throttled => Step::RetryThrottled,
            Class::Transient if stopping => Step::Leave,
            Class::Transient if history.attempts < self.max_attempts => {
                Step::RetryAfter(self.backoff.delay(history.attempts, jitter))
            }
            Class::Transient | Class::Permanent => Step::Fail,
            Class::Clock if !history.clock_retried && !stopping => Step::RetryNow,
            Class::Clock | Class::JobFatal => Step::StopJob,
            Class::RegionFatal => Step::StopRegion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Permission;
    use crate::api::classify;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(500),
        max: Duration::from_secs(20),
    };
    const POLICY: Policy = Policy {
        max_attempts: 3,
        backoff: BACKOFF,
        max_throttled: Duration::from_secs(300),
    };

    fn history(attempts: u32, clock_retried: bool) -> History {
        History {
            attempts,
            clock_retried,
            throttled_for: Duration::ZERO,
        }
    }

    /// Every code of SPEC §5 through the classifier and the policy, at every branch.
    #[test]
    fn every_code_and_branch_of_the_table_gets_its_step() {
        use Step::*;
        let first = history(1, false);
        let last = history(3, false);
        let retry = RetryAfter(Duration::from_millis(250));
        let refused_long = History {
            throttled_for: Duration::from_secs(300),
            ..last
        };
        let cases: &[(&str, History, bool, Step)] = &[
            ("RequestLimitExceeded", first, false, RetryThrottled),
            ("RequestLimitExceeded", last, false, RetryThrottled),
            (
                "RequestLimitExceeded.UinLimitExceeded",
                last,
                false,
                RetryThrottled,
            ),
            ("RequestLimitExceeded", first, true, Leave),
            ("RequestLimitExceeded", refused_long, false, StopBucket),
            (
                "RequestLimitExceeded.IPLimitExceeded",
                refused_long,
                true,
                StopBucket,
            ),
            ("UnsupportedOperation.ImageOccupied", first, false, retry),
            ("InternalError", first, false, retry),
            ("InternalError.DbError", first, false, retry),
            ("FailedOperation.RequestError", first, false, retry),
            ("ResourceUnavailable", first, false, retry),
            ("ServiceUnavailable", first, false, retry),
            ("HttpStatus503", first, false, retry),
            ("InvalidResponse", first, false, retry),
            ("ConnectionError", first, false, retry),
            ("Timeout", first, false, retry),
            ("Timeout", last, false, Fail),
            ("Timeout", first, true, Leave),
            ("AuthFailure.SignatureExpire", first, false, RetryNow),
            (
                "AuthFailure.SignatureExpire",
                history(2, true),
                false,
                StopJob,
            ),
            ("AuthFailure.SignatureExpire", first, true, StopJob),
            (
                "UnsupportedOperation.ImageAlreadyShared",
                first,
                false,
                AlreadyDone,
            ),
            (
                "UnsupportedOperation.ImageAlreadyShared",
                first,
                true,
                AlreadyDone,
            ),
            ("AuthFailure.SignatureFailure", first, false, StopJob),
            ("AuthFailure.SecretIdNotFound", first, false, StopJob),
            ("AuthFailure.TokenFailure", first, false, StopJob),
            ("ResourceNotFound.RoleNotFound", first, false, StopJob),
            (
                "UnsupportedOperation.AssumeRoleFailed",
                first,
                false,
                StopJob,
            ),
            ("InvalidAction", first, false, StopJob),
            ("NoSuchVersion", first, false, StopJob),
            ("NoSuchProduct", first, false, StopJob),
            ("ActionOffline", first, false, StopJob),
            ("IpInBlacklist", first, false, StopJob),
            ("IpNotInWhitelist", first, false, StopJob),
            ("UnsupportedProtocol", first, false, StopJob),
            ("UnsupportedRegion", first, false, StopRegion),
            ("ResourceNotFound.ImageIdNotFound", first, false, Fail),
            (
                "UnsupportedOperation.ImageUnableToShare",
                first,
                false,
                Fail,
            ),
            ("ResourceInUse.ImageInUse", first, false, Fail),
            ("SomethingNobodyKnows", first, false, Fail),
            ("SomethingNobodyKnows", first, true, Fail),
        ];
        for (code, history, stopping, step) in cases {
            let class = classify(code, Permission::Share);
            assert_eq!(
                POLICY.next_step(class, *history, *stopping, 0.5),
                *step,
                "{code} after {history:?}, stopping: {stopping}"
            );
        }
    }

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        assert_eq!(BACKOFF.delay(1, 0.0), Duration::ZERO);
        assert_eq!(BACKOFF.delay(1, 1.0), Duration::from_millis(500));
        assert_eq!(BACKOFF.delay(3, 1.0), Duration::from_secs(2));
        assert_eq!(BACKOFF.delay(7, 1.0), Duration::from_secs(20), "capped");
        assert_eq!(BACKOFF.delay(40, 0.5), Duration::from_secs(10));
    }
}
