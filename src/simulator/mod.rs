//! A faithful local stand-in for the Lighthouse API's `ModifyImageSharePermission`,
//! `DescribeBlueprints` and `DescribeImagesToShare`: it checks signatures, timestamps and
//! parameters as the service does, keeps the account's state, enforces a strict one-second
//! rate window per action, and injects reproducible faults. Tests, benchmarks and
//! `run --simulate` talk to it over real HTTP on loopback, and read its counters at
//! `GET /__stats`.
//!
//! Its homes: `server` (HTTP, the accept loop, the handle), `request` with `signature` and
//! `params` (checking a request as the service does), one module per action (`share`,
//! `blueprints` with `blueprint`, `images`), `world` (the decision each request gets),
//! `window` (the limits), `faults`, `state` (images, shares, BlueprintIds) with `seed` (its
//! seed files), `admin` (`/__stats`, `/__state`), `config`, `stats` and `refusal`.

mod admin;
mod blueprint;
mod blueprints;
mod config;
mod faults;
mod images;
mod params;
mod refusal;
mod request;
mod seed;
mod server;
mod share;
mod signature;
mod state;
mod stats;
mod window;
mod world;

use std::io::Write as _;
use std::path::Path;

use tokio::net::TcpListener;

use crate::action::RateScope;
pub use admin::{Change as StateChange, SharedImages};
pub use blueprints::ACTION as DESCRIBE_ACTION;
pub use config::{DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, DescribeFault, Faults, SimulatorConfig};
pub use images::ACTION as IMAGES_ACTION;
pub use server::{Simulator, SimulatorHandle};
pub use state::SeededImage;
pub use stats::Stats;
pub use window::Count;

/// Why `lighthouse-share simulate` could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {listen}: {source}; pick another with --listen HOST:PORT")]
    Listen {
        listen: String,
        source: std::io::Error,
    },
    #[error("cannot start the simulator: {0}")]
    Start(std::io::Error),
}

/// Reads `--shared FILE`; the error names the file and the line.
pub fn read_seed(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read --shared {}: {error}", crate::text::path(path)))?;
    seed::parse(&text).map_err(|why| format!("--shared {}: {why}", crate::text::path(path)))
}

/// Reads `--images FILE`; the error names the file and the line.
pub fn read_images(path: &Path) -> Result<Vec<SeededImage>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read --images {}: {error}", crate::text::path(path)))?;
    seed::parse_images(&text).map_err(|why| format!("--images {}: {why}", crate::text::path(path)))
}

/// `lighthouse-share simulate`: serves on `listen` until `shutdown` resolves.
pub async fn serve(
    listen: &str,
    config: SimulatorConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Listen {
            listen: listen.to_string(),
            source,
        })?;
    let secret_id = config
        .accounts
        .first()
        .map(|account| account.secret_id.clone())
        .unwrap_or_default();
    let (rate, describe_rate, images_rate) =
        (config.rate, config.describe_rate, config.images_rate);
    let scope = config.rate_scope;
    let handle = Simulator::start(listener, config).map_err(ServeError::Start)?;
    let limit = match scope {
        RateScope::Region => "per region".to_string(),
        RateScope::Endpoint => format!("one limit for all regions through {}", handle.endpoint()),
    };
    // Ignored if stderr is gone: the simulator serves on without anyone reading it.
    let _ = writeln!(
        std::io::stderr(),
        "simulator listening on {} (secret id {secret_id}; {rate} shares/s, {describe_rate} look-ups/s and {images_rate} image listings/s {limit}); stats at {}/__stats, shared images at {}/__state",
        handle.addr(),
        handle.endpoint(),
        handle.endpoint()
    );
    shutdown.await;
    handle.shutdown().await;
    Ok(())
}
