//! A faithful local stand-in for the Lighthouse API's `ModifyImageSharePermission`: it checks
//! signatures, timestamps and parameters as the service does, keeps sharing state, enforces a
//! strict one-second rate window, and injects reproducible faults. Tests, benchmarks and
//! `run --simulate` talk to it over real HTTP on loopback.

mod check;
mod window;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::action::{Permission, RateScope};
use crate::credentials::Credentials;
use check::{Checked, Refusal};
use window::Window;

/// The simulator's built-in account: obviously fake, and documented in the README.
pub const DEFAULT_SECRET_ID: &str = "AKIDsimulator";
pub const DEFAULT_SECRET_KEY: &str = "simulator-secret-key";

/// The largest body the simulator reads; the service refuses larger ones too.
const MAX_BODY: usize = 64 * 1024;
/// How long a `--stall` fault keeps a request unanswered before dropping it.
const STALL: Duration = Duration::from_secs(60);
/// A response carrying this header is turned into a dropped connection.
const DROP_CONNECTION: &str = "x-simulator-drop-connection";

/// The probability of each fault, per request.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub occupied: f64,
    pub internal_error: f64,
    pub http_error: f64,
    pub reset: f64,
    pub stall: f64,
    /// The share of images that do not exist (always the same images for one seed).
    pub missing: f64,
}

/// Whether a refused request uses up the rate window (SPEC §8): nobody outside Tencent knows
/// which the service does, so the client must do well under both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Count {
    /// Every arrival counts in the window, refused or not.
    All,
    /// Only admitted requests count.
    #[default]
    Admitted,
}

#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// The accounts whose signatures are accepted.
    pub accounts: Vec<Credentials>,
    /// Requests admitted per bucket in any one-second window.
    pub rate: usize,
    pub rate_scope: RateScope,
    pub count: Count,
    /// The first request on each new connection waits this long, standing in for a TCP and
    /// TLS handshake.
    pub connect_latency_ms: u64,
    pub faults: Faults,
    pub seed: u64,
    /// Each answer is delayed by a uniform draw from this range, in milliseconds.
    pub latency_ms: (u64, u64),
    /// Regions where the action is withdrawn: they answer `UnsupportedRegion`.
    pub withdrawn_regions: Vec<String>,
    /// How far the server's clock is ahead of this machine's (negative: behind), to rehearse
    /// `AuthFailure.SignatureExpire`.
    pub clock_skew_secs: i64,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            accounts: vec![Credentials::new(
                DEFAULT_SECRET_ID,
                DEFAULT_SECRET_KEY,
                None,
            )],
            rate: 20,
            rate_scope: RateScope::Region,
            count: Count::default(),
            connect_latency_ms: 0,
            faults: Faults::default(),
            seed: 0,
            latency_ms: (0, 0),
            clock_skew_secs: 0,
            withdrawn_regions: Vec::new(),
        }
    }
}

/// Counters served at `GET /__stats`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    pub requests: u64,
    /// Answers by error code; successes count under `OK`, dropped connections under `Dropped`
    /// and 503s under `HttpStatus503`.
    pub answers: BTreeMap<String, u64>,
    pub signature_failures: u64,
    /// The most requests that arrived in any one-second window, per bucket.
    pub max_window: BTreeMap<String, u64>,
    /// Requests per secret id (which credentials signed them).
    pub by_secret_id: BTreeMap<String, u64>,
    /// Requests per `region/image_id`.
    pub by_image: BTreeMap<String, u64>,
}

impl Stats {
    pub fn answers(&self, code: &str) -> u64 {
        self.answers.get(code).copied().unwrap_or(0)
    }
}

/// What the simulator remembers between requests.
struct World {
    config: SimulatorConfig,
    rng: StdRng,
    /// `(region, image_id)` of the images shared now.
    shared: HashMap<(&'static str, String), ()>,
    /// Admitted requests per bucket: the limit.
    admitted: HashMap<String, Window>,
    /// Every arrival per bucket: the measure.
    arrivals: HashMap<String, Window>,
    stats: Stats,
    n_answers: u64,
}

/// The fate a request draws.
enum Fate {
    Answer(Result<Option<String>, Refusal>),
    HttpError,
    Reset,
    Stall,
}

impl World {
    fn new(config: SimulatorConfig) -> Self {
        Self {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            shared: HashMap::new(),
            admitted: HashMap::new(),
            arrivals: HashMap::new(),
            stats: Stats::default(),
            n_answers: 0,
        }
    }

    fn bucket(&self, region: &str) -> String {
        match self.config.rate_scope {
            RateScope::Region => region.to_string(),
            RateScope::Endpoint => "endpoint".to_string(),
        }
    }

    /// Counts the arrival in its bucket's measuring window, before any check.
    fn arrive(&mut self, headers: &HeaderMap, now: Instant) {
        self.stats.requests += 1;
        let region = headers
            .get("x-tc-region")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::action::supported_region);
        if let Some(region) = region {
            let bucket = self.bucket(region);
            let seen = self.arrivals.entry(bucket.clone()).or_default().record(now) as u64;
            let max = self.stats.max_window.entry(bucket).or_default();
            *max = (*max).max(seen);
        }
    }

    fn decide(&mut self, checked: &Checked, now: Instant) -> Fate {
        *self
            .stats
            .by_secret_id
            .entry(checked.secret_id.clone())
            .or_default() += 1;
        *self
            .stats
            .by_image
            .entry(format!("{}/{}", checked.region, checked.image_id))
            .or_default() += 1;
        if self
            .config
            .withdrawn_regions
            .iter()
            .any(|r| r == checked.region)
        {
            return Fate::Answer(Err(Refusal::new(
                "UnsupportedRegion",
                format!(
                    "The action is not supported in region `{}`.",
                    checked.region
                ),
            )));
        }
        let bucket = self.bucket(checked.region);
        let rate = self.config.rate;
        let window = self.admitted.entry(bucket).or_default();
        let admitted = match self.config.count {
            Count::All => window.record(now) <= rate,
            Count::Admitted => window.admit(now, rate),
        };
        if !admitted {
            return Fate::Answer(Err(Refusal::new(
                "RequestLimitExceeded",
                "Your current request times equals to `20` in a second, which exceeds the frequency limit `20` for a second. Please reduce the frequency of calls.",
            )));
        }
        let faults = self.config.faults.clone();
        if self.rng.random_bool(faults.reset) {
            return Fate::Reset;
        }
        if self.rng.random_bool(faults.stall) {
            return Fate::Stall;
        }
        if self.rng.random_bool(faults.http_error) {
            return Fate::HttpError;
        }
        if self.rng.random_bool(faults.internal_error) {
            return Fate::Answer(Err(Refusal::new(
                "InternalError",
                "An internal error has occurred. Retry your request.",
            )));
        }
        if self.rng.random_bool(faults.occupied) {
            return Fate::Answer(Err(Refusal::new(
                "UnsupportedOperation.ImageOccupied",
                "The image is busy with another operation. Please try again later.",
            )));
        }
        if self.is_missing(&checked.image_id) {
            return Fate::Answer(Err(Refusal::new(
                "ResourceNotFound.ImageIdNotFound",
                format!("The image `{}` does not exist.", checked.image_id),
            )));
        }
        Fate::Answer(self.apply(checked))
    }

    /// Whether an image is one of the missing ones: a stable function of seed and id.
    fn is_missing(&self, image_id: &str) -> bool {
        let p = self.config.faults.missing;
        p > 0.0 && unit_hash(&[&self.config.seed.to_le_bytes(), image_id.as_bytes()]) < p
    }

    /// Carries out SHARE or CANCEL; returns the BlueprintId to answer.
    fn apply(&mut self, checked: &Checked) -> Result<Option<String>, Refusal> {
        let key = (checked.region, checked.image_id.clone());
        match checked.permission {
            Permission::Share => {
                if self.shared.insert(key, ()).is_some() {
                    return Err(Refusal::new(
                        "UnsupportedOperation.ImageAlreadyShared",
                        format!("The image `{}` has already been shared.", checked.image_id),
                    ));
                }
                Ok(Some(blueprint_id(checked.region, &checked.image_id)))
            }
            Permission::Cancel => {
                self.shared.remove(&key);
                Ok(None)
            }
        }
    }

    fn count_answer(&mut self, code: &str) {
        *self.stats.answers.entry(code.to_string()).or_default() += 1;
        if code == "AuthFailure.SignatureFailure" {
            self.stats.signature_failures += 1;
        }
    }

    fn next_request_id(&mut self) -> String {
        self.n_answers += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.n_answers)
    }

    fn latency(&mut self) -> Duration {
        let (min, max) = self.config.latency_ms;
        Duration::from_millis(if max > min {
            self.rng.random_range(min..=max)
        } else {
            min
        })
    }
}

/// `lhbp-` + 8 characters, stable for the same (region, image).
fn blueprint_id(region: &str, image_id: &str) -> String {
    let digest = Sha256::digest(format!("{region}/{image_id}").as_bytes());
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let suffix: String = digest[..8]
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect();
    format!("lhbp-{suffix}")
}

/// A hash of `parts` mapped to [0, 1).
fn unit_hash(parts: &[&[u8]]) -> f64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let n = u64::from_le_bytes(digest[..8].try_into().expect("a digest has 32 bytes"));
    (n >> 11) as f64 / (1u64 << 53) as f64
}

type Shared = Arc<Mutex<World>>;

fn lock(world: &Shared) -> std::sync::MutexGuard<'_, World> {
    // A poisoned lock only means a request task panicked; the counters are still usable.
    world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running simulator.
pub struct SimulatorHandle {
    addr: SocketAddr,
    world: Shared,
    shutdown_tx: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl SimulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the endpoint to give the client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> Stats {
        lock(&self.world).stats.clone()
    }

    /// Stops accepting, closes every connection, and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub struct Simulator;

impl Simulator {
    /// Serves the API on `listener` until the handle is shut down or dropped.
    pub fn start(
        listener: TcpListener,
        config: SimulatorConfig,
    ) -> std::io::Result<SimulatorHandle> {
        let addr = listener.local_addr()?;
        let handshake = Duration::from_millis(config.connect_latency_ms);
        let world: Shared = Arc::new(Mutex::new(World::new(config)));
        let router = Router::new()
            .route("/", post(answer))
            .route("/__stats", get(stats))
            .with_state(world.clone());
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let server = tokio::spawn(accept_loop(listener, router, handshake, shutdown_rx));
        Ok(SimulatorHandle {
            addr,
            world,
            shutdown_tx: Some(shutdown_tx),
            server,
        })
    }
}

/// The accept loop. It is ours rather than `axum::serve` so that a fault can close a
/// connection without answering, as a reset does.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    handshake: Duration,
    mut shutdown_rx: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown_rx => break,
            Some(_) = connections.join_next() => {}
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    async move {
                        let Ok(response) = router.oneshot(request.map(Body::new)).await;
                        if response.headers().contains_key(DROP_CONNECTION) {
                            return Err(ConnectionDropped);
                        }
                        Ok(response)
                    }
                });
                connections.spawn(async move {
                    // Nothing on a new connection is read before its "handshake" is over.
                    tokio::time::sleep(handshake).await;
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("connection dropped by a simulated fault")]
struct ConnectionDropped;

async fn stats(State(world): State<Shared>) -> axum::Json<Stats> {
    axum::Json(lock(&world).stats.clone())
}

async fn answer(State(world): State<Shared>, request: Request<Body>) -> Response<Body> {
    let now = Instant::now();
    let (parts, body) = request.into_parts();
    lock(&world).arrive(&parts.headers, now);
    let fate = match to_bytes(body, MAX_BODY).await {
        Err(_) => Fate::Answer(Err(Refusal::new(
            "RequestSizeLimitExceeded",
            format!("The request body exceeds {MAX_BODY} bytes."),
        ))),
        Ok(body) => {
            let (accounts, skew) = {
                let world = lock(&world);
                (world.config.accounts.clone(), world.config.clock_skew_secs)
            };
            match check::check(
                &parts.headers,
                &body,
                &accounts,
                unix_now().saturating_add_signed(skew),
            ) {
                Err(refusal) => Fate::Answer(Err(refusal)),
                Ok(checked) => lock(&world).decide(&checked, now),
            }
        }
    };
    let delay = lock(&world).latency();
    tokio::time::sleep(delay).await;
    match fate {
        Fate::Reset => {
            lock(&world).count_answer("Dropped");
            drop_connection()
        }
        Fate::Stall => {
            lock(&world).count_answer("Dropped");
            tokio::time::sleep(STALL).await;
            drop_connection()
        }
        Fate::HttpError => {
            lock(&world).count_answer("HttpStatus503");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("content-type", "text/html")],
                "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
            )
                .into_response()
        }
        Fate::Answer(result) => {
            let mut world = lock(&world);
            let request_id = world.next_request_id();
            let response = match result {
                Ok(blueprint_id) => {
                    world.count_answer("OK");
                    serde_json::json!({"Response": {"BlueprintId": blueprint_id, "RequestId": request_id}})
                }
                Err(refusal) => {
                    world.count_answer(refusal.code);
                    serde_json::json!({"Response": {
                        "Error": {"Code": refusal.code, "Message": refusal.message},
                        "RequestId": request_id,
                    }})
                }
            };
            axum::Json(response).into_response()
        }
    }
}

fn drop_connection() -> Response<Body> {
    ([(DROP_CONNECTION, "1")], "").into_response()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

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
    let (rate, scope) = (config.rate, config.rate_scope);
    let handle = Simulator::start(listener, config).map_err(ServeError::Start)?;
    eprintln!(
        "simulator listening on {} (secret id {secret_id}; {rate} requests/s per {scope:?} bucket); stats at {}/__stats",
        handle.addr(),
        handle.endpoint()
    );
    shutdown.await;
    handle.shutdown().await;
    Ok(())
}
