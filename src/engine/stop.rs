//! The stop signal: why a run stops early, seen by every bucket task; and the failure
//! threshold (`--max-failures`) that is one of those reasons.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

use crate::api::ApiError;

/// Why the run stopped early.
#[derive(Clone, Debug)]
pub enum Reason {
    Interrupted,
    /// An answer that no other row can get past (credentials, account, clock).
    Fatal(ApiError),
    /// The results file could not be written.
    Journal(String),
    /// More rows failed than `--max-failures` allows: sending more would most likely fail
    /// too, and cost the quota of the other clients of the account.
    TooManyFailures {
        threshold: FailureLimit,
        n_failed: u64,
        n_finished: u64,
    },
}

/// `--max-failures N|P%`: how many failed rows a job takes before it stops (SPEC §1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FailureLimit {
    /// More than this many `failed` rows.
    Rows(u64),
    /// More than this percentage of the rows finished so far, once enough have finished for
    /// a share to mean something.
    Percent(f64),
}

impl FailureLimit {
    /// A percentage is judged only once this many rows have finished: one failure among the
    /// first three rows is not "33% failed".
    pub const MIN_FINISHED_FOR_PERCENT: u64 = 20;

    /// Whether `n_failed` failed rows out of `n_finished` finished ones pass the threshold.
    pub fn is_passed(&self, n_failed: u64, n_finished: u64) -> bool {
        match *self {
            FailureLimit::Rows(limit) => n_failed > limit,
            FailureLimit::Percent(percent) => {
                n_finished >= Self::MIN_FINISHED_FOR_PERCENT
                    && n_failed as f64 * 100.0 > percent * n_finished as f64
            }
        }
    }
}

impl std::str::FromStr for FailureLimit {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{value}` is not a failure threshold: give a number of rows, such as 10, or a percentage of the rows finished, such as 5%"
            )
        };
        let value = value.trim();
        match value.strip_suffix('%') {
            Some(percent) => match percent.trim().parse::<f64>() {
                Ok(p) if (0.0..100.0).contains(&p) => Ok(FailureLimit::Percent(p)),
                _ => Err(bad()),
            },
            None => value.parse().map(FailureLimit::Rows).map_err(|_| bad()),
        }
    }
}

impl fmt::Display for FailureLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureLimit::Rows(n) => write!(f, "{n}"),
            FailureLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// In the config file, `max_failures = 10` or `max_failures = "5%"`.
impl<'de> serde::Deserialize<'de> for FailureLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Given {
            Rows(u64),
            Text(String),
        }
        match Given::deserialize(deserializer)? {
            Given::Rows(n) => Ok(FailureLimit::Rows(n)),
            Given::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Reason {
    /// What the summary says about a stop by `--max-failures`.
    pub fn threshold_passed(&self) -> Option<String> {
        match self {
            Reason::TooManyFailures {
                threshold,
                n_failed,
                n_finished,
            } => Some(match threshold {
                FailureLimit::Rows(_) => format!(
                    "--max-failures {threshold} passed: {n_failed} rows failed; no new rows were started"
                ),
                FailureLimit::Percent(_) => format!(
                    "--max-failures {threshold} passed: {n_failed} of the {n_finished} rows finished failed; no new rows were started"
                ),
            }),
            _ => None,
        }
    }
}

/// A stop signal every task can watch; the first reason given wins.
#[derive(Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<Option<Reason>>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::channel(None).0),
        }
    }
}

impl Stop {
    pub fn trigger(&self, reason: Reason) {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    pub fn is_stopped(&self) -> bool {
        self.tx.borrow().is_some()
    }

    pub fn reason(&self) -> Option<Reason> {
        self.tx.borrow().clone()
    }

    /// Resolves once the stop is triggered.
    pub async fn stopped(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_is_passed_by_more_than_its_rows_or_its_share_after_twenty() {
        let rows: FailureLimit = "3".parse().unwrap();
        assert!(!rows.is_passed(3, 3) && rows.is_passed(4, 4));
        let share: FailureLimit = "10%".parse().unwrap();
        assert!(
            !share.is_passed(5, 19),
            "fewer than 20 finished: not judged"
        );
        assert!(!share.is_passed(2, 20), "exactly 10% is not more than 10%");
        assert!(share.is_passed(3, 20));
        assert!(
            FailureLimit::Rows(0).is_passed(1, 1),
            "0: the first failure stops"
        );
    }

    #[test]
    fn a_threshold_parses_from_the_command_line_and_the_config_file() {
        assert_eq!("12".parse(), Ok(FailureLimit::Rows(12)));
        assert_eq!(" 2.5% ".parse(), Ok(FailureLimit::Percent(2.5)));
        for bad in ["", "x", "-1", "100%", "150%", "%"] {
            let error = bad.parse::<FailureLimit>().unwrap_err();
            assert!(error.contains("such as 5%"), "{bad}: {error}");
        }
        #[derive(serde::Deserialize)]
        struct File {
            max_failures: FailureLimit,
        }
        let file: File = toml::from_str("max_failures = 7").unwrap();
        assert_eq!(file.max_failures, FailureLimit::Rows(7));
        let file: File = toml::from_str("max_failures = '50%'").unwrap();
        assert_eq!(file.max_failures, FailureLimit::Percent(50.0));
        assert!(toml::from_str::<File>("max_failures = 'lots'").is_err());
    }
}
