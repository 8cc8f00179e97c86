//! The HTTP side of the simulator: its own accept loop (so that a fault can drop a connection
//! and a new connection can cost a handshake), the handler of `POST /` that checks, decides
//! and answers each request, and the handle a caller keeps to read counters and shut down.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::admin;
use super::config::SimulatorConfig;
use super::faults::Fate;
use super::refusal::Refusal;
use super::request::{self, Call, Checked};
use super::state::ImageKey;
use super::stats::Stats;
use super::world::{Shared, World, lock};

/// The largest body the simulator reads; the service refuses larger ones too.
const MAX_BODY: usize = 64 * 1024;
/// How long a `--stall` fault keeps a request unanswered before dropping it.
const STALL: Duration = Duration::from_secs(60);
/// A response carrying this header is turned into a dropped connection.
const DROP_CONNECTION: &str = "x-simulator-drop-connection";
/// How `/__stats` names the action of a request without `X-TC-Action`.
const NO_ACTION: &str = "(none)";

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
    /// `InvalidInput`) if `config.shared` or `config.images` names an unsupported region, a
    /// malformed image id or an unknown image state.
    pub fn start(listener: TcpListener, config: SimulatorConfig) -> io::Result<SimulatorHandle> {
        let addr = listener.local_addr()?;
        let connect_latency = config.connect_latency;
        let world =
            World::new(config).map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        let world: Shared = Arc::new(Mutex::new(world));
        let router =
            admin::routes(Router::new().route("/", post(answer))).with_state(world.clone());
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

async fn answer(State(world): State<Shared>, request: Request<Body>) -> Response<Body> {
    // As if the network had delayed the request: it is counted, and answered, that late.
    let uplink = lock(&world).uplink_delay();
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
            request::check(
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
            lock(world).stats.count_answer(action, "Dropped");
            drop_connection()
        }
        Fate::Stall => {
            lock(world).stats.count_answer(action, "Dropped");
            tokio::time::sleep(STALL).await;
            drop_connection()
        }
        Fate::HttpError => {
            lock(world).stats.count_answer(action, "HttpStatus503");
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
                    world.stats.count_answer(action, "OK");
                    answer.insert("RequestId".to_string(), request_id.into());
                    serde_json::json!({ "Response": answer })
                }
                Err(refusal) => {
                    world.stats.count_answer(action, refusal.code);
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
        let Call::Share(request) = &checked.call else {
            return None;
        };
        let key = (checked.region, request.image_id.clone());
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
