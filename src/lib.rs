//! `lighthouse-share` shares Tencent Cloud CVM custom images to Lighthouse, or cancels the
//! sharing, in bulk.
//!
//! The data's path, one module per stage:
//! `input` (CSV → validated rows) → `limiter` / `pool` (pacing, concurrency, per-image
//! order) → `api` (sign, call, classify) → `results` (append, compact, resume).
//! Beside them: `config` (CLI + environment + file → one `RunConfig`), `credentials`,
//! `sign` (TC3-HMAC-SHA256), `progress`, and `simulator`, a faithful local stand-in for the
//! API that tests, benchmarks and `run --simulate` talk to.

pub mod action;
pub mod api;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod input;
pub mod limiter;
pub mod pool;
pub mod progress;
pub mod results;
pub mod run;
pub mod sign;
pub mod simulator;
pub mod suggest;
