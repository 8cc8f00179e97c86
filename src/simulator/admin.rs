//! The simulator's admin endpoints, beside the API at `/`: `GET /__stats` (the counters), and
//! the rehearsal aids `GET /__state` (the images shared now, per region) and `POST /__state`
//! (share or unshare an image out of band, as another person or tool would between two runs).
//! None of them counts as a request to the API.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::state;
use super::stats::Stats;
use super::world::{Shared, lock};

/// Adds the admin routes to `router`.
pub fn routes(router: Router<Shared>) -> Router<Shared> {
    router
        .route("/__stats", get(stats))
        .route("/__state", get(shared).post(change))
}

async fn stats(State(world): State<Shared>) -> axum::Json<Stats> {
    axum::Json(lock(&world).stats.clone())
}

/// `GET /__state`: the images shared now.
#[derive(Debug, Serialize, Deserialize)]
pub struct SharedImages {
    /// Region → image id → BlueprintId.
    pub shared: BTreeMap<String, BTreeMap<String, String>>,
}

async fn shared(State(world): State<Shared>) -> axum::Json<SharedImages> {
    axum::Json(SharedImages {
        shared: lock(&world).state.all_shared(),
    })
}

/// `POST /__state`: what to change, and (in the answer) the image's state after it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub region: String,
    pub image_id: String,
    pub shared: bool,
    /// In the answer: the image's BlueprintId while it is shared.
    #[serde(default, skip_deserializing)]
    pub blueprint_id: Option<String>,
}

async fn change(State(world): State<Shared>, body: Bytes) -> Response {
    let change: Change = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(error) => {
            let why = format!(
                "expected {{\"region\": \"ap-guangzhou\", \"image_id\": \"img-...\", \"shared\": true|false}}: {error}"
            );
            return refuse(StatusCode::BAD_REQUEST, "InvalidRequest", why);
        }
    };
    let (region, image_id) = match state::key(&change.region, &change.image_id) {
        Ok(key) => key,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, "InvalidRequest", why),
    };
    let mut world = lock(&world);
    let done = match change.shared {
        true => match world.state.share(region, &image_id) {
            Err(refusal) if refusal.code == "UnsupportedOperation.ImageAlreadyShared" => Ok(()),
            other => other.map(|_| ()),
        },
        false => world.state.cancel(region, &image_id),
    };
    if let Err(refusal) = done {
        let status = match refusal.code {
            "ResourceNotFound.ImageIdNotFound" => StatusCode::NOT_FOUND,
            _ => StatusCode::CONFLICT,
        };
        return refuse(status, refusal.code, refusal.message);
    }
    let answer = Change {
        blueprint_id: change
            .shared
            .then(|| state::blueprint_id(region, &image_id)),
        region: region.to_string(),
        image_id,
        shared: change.shared,
    };
    axum::Json(answer).into_response()
}

/// An admin refusal: the HTTP status says it, the JSON body says why.
fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"Error": {"Code": code, "Message": message.into()}});
    (status, axum::Json(body)).into_response()
}
