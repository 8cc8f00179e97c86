//! The counters the simulator serves at `GET /__stats`: what tests and benchmarks read to
//! judge the client (how many requests, how they were answered, how busy any second was).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters served at `GET /__stats`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Every request to `POST /`, of any action.
    pub requests: u64,
    /// Requests per `X-TC-Action` as sent (`(none)` without one), so that tests can tell the
    /// writes from the look-ups.
    pub requests_by_action: BTreeMap<String, u64>,
    /// Answers of every action by error code; successes count under `OK`, dropped connections
    /// under `Dropped` and 503s under `HttpStatus503`.
    pub answers: BTreeMap<String, u64>,
    /// `answers`, split by `X-TC-Action` as sent.
    pub answers_by_action: BTreeMap<String, BTreeMap<String, u64>>,
    pub signature_failures: u64,
    /// The most `ModifyImageSharePermission` requests that arrived in any one-second window,
    /// per bucket.
    pub max_window: BTreeMap<String, u64>,
    /// The same for `DescribeBlueprints`, whose limit is its own.
    pub max_window_describe: BTreeMap<String, u64>,
    /// The same per action (every action the simulator serves), then per bucket.
    #[serde(default)]
    pub max_window_by_action: BTreeMap<String, BTreeMap<String, u64>>,
    /// The most `ModifyImageSharePermission` requests ever in flight at once (arrived, answer
    /// not yet given nor connection dropped) for one `(region, image_id)`: above 1, the client
    /// broke its per-image order.
    pub max_in_flight_per_image: u64,
    /// TCP connections accepted: how well the client reuses them.
    pub connections: u64,
    /// Requests per secret id (which credentials signed them).
    pub by_secret_id: BTreeMap<String, u64>,
    /// Requests per `region/image_id`.
    pub by_image: BTreeMap<String, u64>,
}

impl Stats {
    pub fn answers(&self, code: &str) -> u64 {
        self.answers.get(code).copied().unwrap_or(0)
    }

    /// Counts an answer of `action` (as sent) under `code`.
    pub fn count_answer(&mut self, action: &str, code: &str) {
        *self.answers.entry(code.to_string()).or_default() += 1;
        *self
            .answers_by_action
            .entry(action.to_string())
            .or_default()
            .entry(code.to_string())
            .or_default() += 1;
        if code == "AuthFailure.SignatureFailure" {
            self.signature_failures += 1;
        }
    }
}
