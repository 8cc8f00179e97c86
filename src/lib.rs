//! `lighthouse-share` shares Tencent Cloud CVM custom images to Lighthouse, or cancels the
//! sharing, in bulk.
//!
//! The data's path, one module per stage, each depending only on the ones before it:
//! - `action` (regions, permission, image id: the API's vocabulary), `suggest`, `clock`,
//!   `credentials` and `sign` (TC3-HMAC-SHA256) at the bottom;
//! - `input`: a spreadsheet export → validated rows;
//! - `adapt` (what the answers say about the pace) and `limiter` (keeping it); `api`: sign,
//!   call, classify (with the advice for job-fatal answers); `retry`: what a failed attempt
//!   leads to;
//! - `results`: the row outcome, the journal, compaction, resume;
//! - `pool`: per bucket, pacing, concurrency, per-image order, retries;
//! - `lookup`: the state look-up (`DescribeBlueprints`) and each row's decision against it;
//! - `config`: CLI + environment + file → one final `RunConfig`; `plan`: the validation
//!   pass, the buckets and their readers; `output`: logs, progress, summary, how a run ended;
//! - `run`: the whole job, from a `RunConfig` to a `Report`.
//!
//! Beside them, `simulator`: a faithful local stand-in for the API that tests, benchmarks and
//! `run --simulate` talk to. `main.rs` only parses, wires signals and maps the ending to an
//! exit code.

pub mod action;
pub mod adapt;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod input;
pub mod limiter;
pub mod lookup;
pub mod output;
pub mod plan;
pub mod pool;
pub mod results;
pub mod retry;
pub mod run;
pub mod sign;
pub mod simulator;
pub mod suggest;
