//! A faithful local stand-in for the Lighthouse API's `ModifyImageSharePermission` and
//! `DescribeBlueprints`: it checks signatures, timestamps and parameters as the service does,
//! keeps sharing state, enforces a strict one-second rate window per action, and injects
//! reproducible faults. Tests, benchmarks and `run --simulate` talk to it over real HTTP on
//! loopback, and read its counters at `GET /__stats`.

mod check;
mod describe;
mod seed;
mod window;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::io::Write as _;
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
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::action::{Permission, RateScope};
use crate::credentials::Credentials;
use check::{Action, Call, Checked, Refusal};
pub use describe::ACTION as DESCRIBE_ACTION;
use describe::{Blueprint, Query};
pub use window::Count;
use window::Limit;

/// The simulator's built-in account: obviously fake, and documented in the README.
pub const DEFAULT_SECRET_ID: &str = "AKIDsimulator";
pub const DEFAULT_SECRET_KEY: &str = "simulator-secret-key";

/// The largest body the simulator reads; the service refuses larger ones too.
const MAX_BODY: usize = 64 * 1024;
/// How long a `--stall` fault keeps a request unanswered before dropping it.
const STALL: Duration = Duration::from_secs(60);
/// A response carrying this header is turned into a dropped connection.
const DROP_CONNECTION: &str = "x-simulator-drop-connection";
/// How `/__stats` names the action of a request without `X-TC-Action`.
const NO_ACTION: &str = "(none)";

/// The probability of each fault per `ModifyImageSharePermission` request (the look-up,
/// `DescribeBlueprints`, draws none of them: a rehearsal of the writes' faults should not also
/// break the reads), and the one fault of the look-up.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub occupied: f64,
    pub internal_error: f64,
    pub http_error: f64,
    pub reset: f64,
    pub stall: f64,
    /// The share of images that do not exist (always the same images for one seed).
    pub missing: f64,
    /// `UnauthorizedOperation.NoPermission`: a CAM policy that lacks
    /// `lighthouse:ModifyImageSharePermission`, or a condition that denies some requests.
    pub unauthorized: f64,
    /// Every `DescribeBlueprints` answers `UnauthorizedOperation.NoPermission`: a CAM policy
    /// that allows the share but not the look-up (SPEC §9 says the run then warns and goes on).
    pub unauthorized_describe: bool,
}

#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// The accounts whose signatures are accepted.
    pub accounts: Vec<Credentials>,
    /// `ModifyImageSharePermission` requests admitted per bucket in any one-second window.
    pub rate: usize,
    /// `DescribeBlueprints` requests admitted per bucket in any one-second window: the look-up
    /// has its own limit, apart from the share's.
    pub describe_rate: usize,
    pub rate_scope: RateScope,
    /// Whether a refused request uses up the window.
    pub count: Count,
    pub faults: Faults,
    pub seed: u64,
    /// Each answer is delayed by a uniform draw from this range, in milliseconds.
    pub latency_ms: (u64, u64),
    /// Regions where the action is withdrawn: they answer `UnsupportedRegion`.
    pub withdrawn_regions: Vec<String>,
    /// How far the server's clock is ahead of this machine's (negative: behind), to rehearse
    /// `AuthFailure.SignatureExpire`.
    pub clock_skew_secs: i64,
    /// Images shared before the simulator starts, as `(region, image_id)`.
    pub shared: Vec<(String, String)>,
    /// How long the first request on each new connection waits before it is read: what a TLS
    /// handshake costs a client that opens connections instead of reusing them.
    pub connect_latency: Duration,
    /// Each request is counted a uniform draw of 0 to this after it arrives (see
    /// [`window::uplink_delay`]).
    pub uplink_jitter: Duration,
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
            describe_rate: 10,
            rate_scope: RateScope::Region,
            count: Count::Admitted,
            faults: Faults::default(),
            seed: 0,
            latency_ms: (0, 0),
            clock_skew_secs: 0,
            withdrawn_regions: Vec::new(),
            shared: Vec::new(),
            connect_latency: Duration::ZERO,
            uplink_jitter: Duration::ZERO,
        }
    }
}

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
}

/// An image as the sharing state knows it: `(region, image_id)`.
type ImageKey = (&'static str, String);

/// What the simulator remembers between requests.
struct World {
    config: SimulatorConfig,
    rng: StdRng,
    /// The images shared now, and when: `DescribeBlueprints` answers them.
    shared: BTreeMap<ImageKey, SystemTime>,
    share_limit: Limit,
    describe_limit: Limit,
    /// `ModifyImageSharePermission` requests in flight now, per image.
    in_flight: HashMap<ImageKey, u64>,
    stats: Stats,
    n_answers: u64,
}

/// The fate a request draws.
enum Fate {
    /// The answer's fields (without `RequestId`), or the error.
    Answer(Result<Map<String, Value>, Refusal>),
    HttpError,
    Reset,
    Stall,
}

impl World {
    /// Refuses a seed that names an unsupported region or a malformed image id.
    fn new(config: SimulatorConfig) -> io::Result<Self> {
        let started = SystemTime::now();
        let shared = config
            .shared
            .iter()
            .map(|(region, image_id)| seed::image(region, image_id).map(|key| (key, started)))
            .collect::<Result<_, _>>()
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        Ok(Self {
            rng: StdRng::seed_from_u64(config.seed),
            shared,
            share_limit: Limit::new(config.rate, config.count),
            describe_limit: Limit::new(config.describe_rate, config.count),
            in_flight: HashMap::new(),
            config,
            stats: Stats::default(),
            n_answers: 0,
        })
    }

    fn limit(&mut self, action: Action) -> &mut Limit {
        match action {
            Action::ModifyImageSharePermission => &mut self.share_limit,
            Action::DescribeBlueprints => &mut self.describe_limit,
        }
    }

    fn bucket(&self, region: &str) -> String {
        match self.config.rate_scope {
            RateScope::Region => region.to_string(),
            RateScope::Endpoint => "endpoint".to_string(),
        }
    }

    /// Counts the arrival of `action` (as sent), and in its bucket's measuring window, before
    /// any check.
    fn arrive(&mut self, action: &str, headers: &HeaderMap, now: Instant) {
        self.stats.requests += 1;
        *self
            .stats
            .requests_by_action
            .entry(action.to_string())
            .or_default() += 1;
        let region = headers
            .get("x-tc-region")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::action::supported_region);
        if let (Some(action), Some(region)) = (Action::parse(action), region) {
            let bucket = self.bucket(region);
            let seen = self.limit(action).measure(&bucket, now) as u64;
            let max_window = match action {
                Action::ModifyImageSharePermission => &mut self.stats.max_window,
                Action::DescribeBlueprints => &mut self.stats.max_window_describe,
            };
            let max = max_window.entry(bucket).or_default();
            *max = (*max).max(seen);
        }
    }

    fn decide(&mut self, checked: &Checked, now: Instant) -> Fate {
        *self
            .stats
            .by_secret_id
            .entry(checked.secret_id.clone())
            .or_default() += 1;
        match &checked.call {
            Call::Share {
                image_id,
                permission,
            } => self.decide_share(checked.region, image_id, *permission, now),
            Call::Describe(query) => self.decide_describe(checked.region, query, now),
        }
    }

    /// Whether the action's window in the region's bucket admits a request arriving at `now`.
    fn admit(&mut self, action: Action, region: &str, now: Instant) -> Result<(), Refusal> {
        let bucket = self.bucket(region);
        let limit = self.limit(action);
        if limit.admit(&bucket, now) {
            return Ok(());
        }
        let rate = limit.rate();
        Err(Refusal::new(
            "RequestLimitExceeded",
            format!(
                "Your current request times equals to `{rate}` in a second, which exceeds the frequency limit `{rate}` for a second. Please reduce the frequency of calls."
            ),
        ))
    }

    fn decide_describe(&mut self, region: &'static str, query: &Query, now: Instant) -> Fate {
        if let Err(refusal) = self.admit(Action::DescribeBlueprints, region, now) {
            return Fate::Answer(Err(refusal));
        }
        if self.config.faults.unauthorized_describe {
            return Fate::Answer(Err(no_permission(Action::DescribeBlueprints, region)));
        }
        Fate::Answer(Ok(query.answer(&self.blueprints(region))))
    }

    /// The region's blueprints, public and shared, ordered by BlueprintId so that every page
    /// of a listing is cut from the same sequence.
    fn blueprints(&self, region: &str) -> Vec<Blueprint> {
        let shared = self
            .shared
            .iter()
            .filter(|((r, _), _)| *r == region)
            .map(|((r, image_id), at)| Blueprint::shared(image_id, blueprint_id(r, image_id), *at));
        let mut blueprints: Vec<Blueprint> =
            Blueprint::public().into_iter().chain(shared).collect();
        blueprints.sort_by(|a, b| a.id().cmp(b.id()));
        blueprints
    }

    fn decide_share(
        &mut self,
        region: &'static str,
        image_id: &str,
        permission: Permission,
        now: Instant,
    ) -> Fate {
        *self
            .stats
            .by_image
            .entry(format!("{region}/{image_id}"))
            .or_default() += 1;
        if self.config.withdrawn_regions.iter().any(|r| r == region) {
            return Fate::Answer(Err(Refusal::new(
                "UnsupportedRegion",
                format!("The action is not supported in region `{region}`."),
            )));
        }
        if let Err(refusal) = self.admit(Action::ModifyImageSharePermission, region, now) {
            return Fate::Answer(Err(refusal));
        }
        let faults = self.config.faults.clone();
        // Drawn only when asked for, so that a seed gives the same faults as before the flag.
        if faults.unauthorized > 0.0 && self.rng.random_bool(faults.unauthorized) {
            return Fate::Answer(Err(no_permission(
                Action::ModifyImageSharePermission,
                region,
            )));
        }
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
        if self.is_missing(image_id) {
            return Fate::Answer(Err(Refusal::new(
                "ResourceNotFound.ImageIdNotFound",
                format!("The image `{image_id}` does not exist."),
            )));
        }
        Fate::Answer(self.apply(region, image_id, permission))
    }

    /// Whether an image is one of the missing ones: a stable function of seed and id.
    fn is_missing(&self, image_id: &str) -> bool {
        let p = self.config.faults.missing;
        p > 0.0 && unit_hash(&[&self.config.seed.to_le_bytes(), image_id.as_bytes()]) < p
    }

    /// Carries out SHARE or CANCEL; answers the BlueprintId (null for CANCEL).
    fn apply(
        &mut self,
        region: &'static str,
        image_id: &str,
        permission: Permission,
    ) -> Result<Map<String, Value>, Refusal> {
        let key = (region, image_id.to_string());
        let blueprint_id = match permission {
            Permission::Share => {
                if self.shared.contains_key(&key) {
                    return Err(Refusal::new(
                        "UnsupportedOperation.ImageAlreadyShared",
                        format!("The image `{image_id}` has already been shared."),
                    ));
                }
                self.shared.insert(key, SystemTime::now());
                Some(blueprint_id(region, image_id))
            }
            Permission::Cancel => {
                self.shared.remove(&key);
                None
            }
        };
        let mut answer = Map::new();
        answer.insert("BlueprintId".to_string(), blueprint_id.into());
        Ok(answer)
    }

    fn count_answer(&mut self, action: &str, code: &str) {
        *self.stats.answers.entry(code.to_string()).or_default() += 1;
        *self
            .stats
            .answers_by_action
            .entry(action.to_string())
            .or_default()
            .entry(code.to_string())
            .or_default() += 1;
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

/// The service's answer to a caller whose CAM policy does not allow `action`.
fn no_permission(action: Action, region: &str) -> Refusal {
    Refusal::new(
        "UnauthorizedOperation.NoPermission",
        format!(
            "you are not authorized to perform operation (lighthouse:{})\nresource (qcs::lighthouse:{region}:uin/100000000001:*) has no permission\n",
            action.name()
        ),
    )
}

/// Holds one `ModifyImageSharePermission` request's place among those in flight for its
/// image. It is given back on drop, so a request counts until its handler ends by any path:
/// an answer, a reset, a stall, or the client hanging up (which drops the handler).
struct InFlight {
    world: Shared,
    key: ImageKey,
}

impl InFlight {
    /// Enters a share request; `None` for any other action.
    fn enter(world: &Shared, checked: &Checked) -> Option<Self> {
        let Call::Share { image_id, .. } = &checked.call else {
            return None;
        };
        let key = (checked.region, image_id.clone());
        let mut guard = lock(world);
        let world_ref = &mut *guard;
        let n = world_ref.in_flight.entry(key.clone()).or_default();
        *n += 1;
        world_ref.stats.max_in_flight_per_image = world_ref.stats.max_in_flight_per_image.max(*n);
        Some(Self {
            world: world.clone(),
            key,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut world = lock(&self.world);
        if let Some(n) = world.in_flight.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                world.in_flight.remove(&self.key);
            }
        }
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
    /// Serves the API on `listener` until the handle is shut down or dropped. Fails (with
    /// `InvalidInput`) if `config.shared` names an unsupported region or a malformed image id.
    pub fn start(listener: TcpListener, config: SimulatorConfig) -> io::Result<SimulatorHandle> {
        let addr = listener.local_addr()?;
        let connect_latency = config.connect_latency;
        let world: Shared = Arc::new(Mutex::new(World::new(config)?));
        let router = Router::new()
            .route("/", post(answer))
            .route("/__stats", get(stats))
            .with_state(world.clone());
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let server = tokio::spawn(accept_loop(
            listener,
            router,
            Connections {
                world: world.clone(),
                latency: connect_latency,
            },
            shutdown_rx,
        ));
        Ok(SimulatorHandle {
            addr,
            world,
            shutdown_tx: Some(shutdown_tx),
            server,
        })
    }
}

/// What the accept loop needs to know of the world: where to count connections, and how long
/// a new one waits before its first request is read.
struct Connections {
    world: Shared,
    latency: Duration,
}

/// The accept loop. It is ours rather than `axum::serve` so that a fault can close a
/// connection without answering, as a reset does, and so that a new connection can cost a
/// handshake's time.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    accepted_connections: Connections,
    mut shutdown_rx: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown_rx => break,
            Some(_) = connections.join_next() => {}
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                lock(&accepted_connections.world).stats.connections += 1;
                let handshake = accepted_connections.latency;
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
                    // The client has sent its request; it is read only after the "handshake",
                    // so it arrives late, and the connection's later requests do not.
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
    let uplink = {
        let world = &mut *lock(&world);
        window::uplink_delay(&mut world.rng, world.config.uplink_jitter)
    };
    if !uplink.is_zero() {
        tokio::time::sleep(uplink).await;
    }
    let now = Instant::now();
    let (parts, body) = request.into_parts();
    let action = parts
        .headers
        .get("x-tc-action")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(NO_ACTION)
        .to_string();
    lock(&world).arrive(&action, &parts.headers, now);
    let checked = match to_bytes(body, MAX_BODY).await {
        Err(_) => Err(Refusal::new(
            "RequestSizeLimitExceeded",
            format!("The request body exceeds {MAX_BODY} bytes."),
        )),
        Ok(body) => {
            let (accounts, skew) = {
                let world = lock(&world);
                (world.config.accounts.clone(), world.config.clock_skew_secs)
            };
            check::check(
                &parts.headers,
                &body,
                &accounts,
                unix_now().saturating_add_signed(skew),
            )
        }
    };
    let in_flight = checked
        .as_ref()
        .ok()
        .and_then(|checked| InFlight::enter(&world, checked));
    let fate = match checked {
        Err(refusal) => Fate::Answer(Err(refusal)),
        Ok(checked) => lock(&world).decide(&checked, now),
    };
    let response = respond(&world, &action, fate).await;
    drop(in_flight);
    response
}

/// Carries out a fate: waits the latency, then answers, fails or drops the connection.
async fn respond(world: &Shared, action: &str, fate: Fate) -> Response<Body> {
    let delay = lock(world).latency();
    tokio::time::sleep(delay).await;
    match fate {
        Fate::Reset => {
            lock(world).count_answer(action, "Dropped");
            drop_connection()
        }
        Fate::Stall => {
            lock(world).count_answer(action, "Dropped");
            tokio::time::sleep(STALL).await;
            drop_connection()
        }
        Fate::HttpError => {
            lock(world).count_answer(action, "HttpStatus503");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("content-type", "text/html")],
                "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
            )
                .into_response()
        }
        Fate::Answer(result) => {
            let mut world = lock(world);
            let request_id = world.next_request_id();
            let response = match result {
                Ok(mut answer) => {
                    world.count_answer(action, "OK");
                    answer.insert("RequestId".to_string(), request_id.into());
                    serde_json::json!({ "Response": answer })
                }
                Err(refusal) => {
                    world.count_answer(action, refusal.code);
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

/// Reads `--shared FILE`; the error names the file and the line.
pub fn read_seed(path: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read --shared {}: {error}", path.display()))?;
    seed::parse(&text).map_err(|why| format!("--shared {}: {why}", path.display()))
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
    let (rate, describe_rate, scope) = (config.rate, config.describe_rate, config.rate_scope);
    let handle = Simulator::start(listener, config).map_err(ServeError::Start)?;
    let limit = match scope {
        RateScope::Region => "per region".to_string(),
        RateScope::Endpoint => format!("one limit for all regions through {}", handle.endpoint()),
    };
    // Ignored if stderr is gone: the simulator serves on without anyone reading it.
    let _ = writeln!(
        std::io::stderr(),
        "simulator listening on {} (secret id {secret_id}; {rate} shares/s and {describe_rate} look-ups/s {limit}); stats at {}/__stats",
        handle.addr(),
        handle.endpoint()
    );
    shutdown.await;
    handle.shutdown().await;
    Ok(())
}
