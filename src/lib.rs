//! `lighthouse-share` shares Tencent Cloud CVM custom images to Lighthouse, or cancels the
//! sharing, in bulk.
//!
//! The data's path, one module per stage, each depending only on the ones before it:
//! - `text` (outside text made safe for terminals, logs and cells), `action` (regions, permission, image id: the API's vocabulary), `suggest`, `clock`,
//!   `credentials` and `sign` (TC3-HMAC-SHA256) at the bottom;
//! - `input`: a spreadsheet export → validated rows;
//! - `limiter`: pacing; `api`: sign, send, read answers, classify (with the advice for
//!   job-fatal answers), behind the `Transport` trait; `retry`: what a failed attempt leads
//!   to;
//! - `results`: the row outcome, the journal, compaction, resume;
//! - `actions`: what is particular to each API action (request, answer, classes);
//! - `engine`: the one place that paces, sends, retries, adapts, gives up and counts, for
//!   every action; `job`: the rate buckets, each with one engine lane per action;
//! - `output`: logs, progress, summary, how a run ended;
//! - `lookup`: the state look-up (`DescribeBlueprints`) and when a listing is evidence;
//!   `decide`: each row's decision from the record, the look-up and the rows before it (the
//!   invariant of SPEC §9 in one function);
//! - `preflight`: which SHARE rows the service would refuse, and why (`DescribeImagesToShare`);
//! - `writes`: per bucket, per-image order, each row's write and its outcome;
//! - `config`: CLI + environment + file → one final `RunConfig`; `plan`: the validation
//!   pass, the one numbered pass every later stage reads, and the reader;
//! - `run`: the whole job, from a `RunConfig` to a `Report`.
//!
//! Beside them, `simulator`: a faithful local stand-in for the API that tests, benchmarks and
//! `run --simulate` talk to. `main.rs` only parses, wires signals and maps the ending to an
//! exit code.

pub mod action;
pub mod actions;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod decide;
pub mod engine;
pub mod input;
pub mod job;
pub mod limiter;
pub mod lookup;
pub mod output;
pub mod plan;
pub mod preflight;
pub mod results;
pub mod retry;
pub mod run;
pub mod sign;
pub mod simulator;
pub mod suggest;
pub mod text;
pub mod writes;
