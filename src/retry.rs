//! The retry policy of SPEC §5 in one place: after a failed attempt, [`Policy::next_step`]
//! decides what happens to the row and the job. It is a pure function of the answer's class
//! and the row's history, so one table test covers every branch.

use std::time::Duration;

use crate::api::{ApiError, Class, HTTP_STATUS, INVALID_RESPONSE};

/// How many attempts of a bucket must fail to connect, with nothing ever answering, before
/// its region is given up: enough to ride out one dropped packet, few enough that a
/// mistyped host does not cost every row its attempts.
pub const UNREACHABLE_LIMIT: u64 = 3;

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

/// What a bucket has heard from its endpoint so far, to tell a wrong endpoint (nothing but
/// refusals, or nothing at all) from a row's bad luck.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heard {
    /// Attempts the API answered (a success, or one of its error codes).
    pub n_api_answers: u64,
    /// Attempts that got any HTTP answer.
    pub n_http_answers: u64,
    /// Attempts that could not connect at all.
    pub n_unreachable: u64,
}

impl Heard {
    /// Counts one attempt's result.
    pub fn note<T>(&mut self, result: &Result<T, ApiError>) {
        let (api, http) = match result {
            Ok(_) => (true, true),
            Err(error) if error.request_id.is_some() => (true, true),
            Err(error) => {
                if error.class == Class::Unreachable {
                    self.n_unreachable += 1;
                }
                let http = error.code.starts_with(HTTP_STATUS) || error.code == INVALID_RESPONSE;
                (false, http)
            }
        };
        self.n_api_answers += u64::from(api);
        self.n_http_answers += u64::from(http);
    }
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
    /// The next step for a row whose last attempt failed with `class`. `heard` is what the
    /// row's bucket has heard so far, that attempt included; `stopping` is whether the job
    /// is stopping (a signal, a job-fatal answer elsewhere); `jitter` is a uniform draw from
    /// [0, 1), passed in so the function stays pure.
    pub fn next_step(
        &self,
        class: Class,
        history: History,
        heard: Heard,
        stopping: bool,
        jitter: f64,
    ) -> Step {
        let never_answered = heard.n_http_answers == 0;
        match class {
            Class::AlreadyDone => Step::AlreadyDone,
            Class::Throttled if history.throttled_for >= self.max_throttled => Step::StopBucket,
            Class::Throttled if stopping => Step::Leave,
            Class::Throttled => Step::RetryThrottled,
            Class::Unreachable if never_answered && heard.n_unreachable >= UNREACHABLE_LIMIT => {
                Step::StopRegion
            }
            Class::Unreachable => {
                self.next_step(Class::Transient, history, heard, stopping, jitter)
            }
            // Every answer so far is an HTTP refusal: the endpoint is not the API.
            Class::Rejected if heard.n_api_answers == 0 => Step::StopJob,
            Class::Rejected => Step::Fail,
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
            ("AuthFailure.UnauthorizedOperation", first, false, StopJob),
            ("UnauthorizedOperation.NoPermission", first, false, StopJob),
            ("UnauthorizedOperation.NoPermission", first, true, StopJob),
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
                POLICY.next_step(class, *history, ANSWERING, *stopping, 0.5),
                *step,
                "{code} after {history:?}, stopping: {stopping}"
            );
        }
    }

    /// A bucket whose endpoint has answered as the API does.
    const ANSWERING: Heard = Heard {
        n_api_answers: 5,
        n_http_answers: 5,
        n_unreachable: 0,
    };

    /// A wrong endpoint is told from bad luck by what the bucket has heard.
    #[test]
    fn an_endpoint_that_never_answers_as_the_api_stops_early() {
        use Step::*;
        let first = history(1, false);
        let silent = |n_unreachable| Heard {
            n_unreachable,
            ..Heard::default()
        };
        let step = |code: &str, heard: Heard| {
            POLICY.next_step(classify(code, Permission::Share), first, heard, false, 0.5)
        };
        let retry = RetryAfter(Duration::from_millis(250));
        assert_eq!(step("CannotConnect", silent(UNREACHABLE_LIMIT - 1)), retry);
        assert_eq!(step("CannotConnect", silent(UNREACHABLE_LIMIT)), StopRegion);
        let answered_once = Heard {
            n_http_answers: 1,
            ..silent(UNREACHABLE_LIMIT)
        };
        assert_eq!(
            step("CannotConnect", answered_once),
            retry,
            "it did answer once"
        );
        assert_eq!(step("CannotConnect", ANSWERING), retry);
        let refused = Heard {
            n_http_answers: 3,
            ..Heard::default()
        };
        assert_eq!(step("HttpStatus404", refused), StopJob);
        assert_eq!(step("HttpStatus404", ANSWERING), Fail, "not transient");
        assert_eq!(step("HttpStatus429", refused), retry);
        assert_eq!(step("HttpStatus408", refused), retry);
        assert_eq!(step("HttpStatus301", ANSWERING), StopJob);
    }

    #[test]
    fn heard_counts_api_answers_http_answers_and_connect_failures() {
        let mut heard = Heard::default();
        let error = |code: &str, request_id: Option<&str>| ApiError {
            code: code.to_string(),
            message: String::new(),
            request_id: request_id.map(str::to_string),
            class: classify(code, Permission::Share),
        };
        heard.note::<()>(&Err(error("CannotConnect", None)));
        heard.note::<()>(&Err(error("HttpStatus404", None)));
        heard.note::<()>(&Err(error("Timeout", None)));
        heard.note::<()>(&Err(error("InternalError", Some("r"))));
        heard.note(&Ok(()));
        assert_eq!(
            heard,
            Heard {
                n_api_answers: 2,
                n_http_answers: 3,
                n_unreachable: 1
            }
        );
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
