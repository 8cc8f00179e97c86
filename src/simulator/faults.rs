//! The faults a `ModifyImageSharePermission` request can draw (`--occupied`, `--reset`, ...),
//! reproducible for one `--seed`, and the fate they give the request.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::config::Faults;
use super::refusal::Refusal;

/// The fate a request draws.
pub enum Fate {
    /// The answer's fields (without `RequestId`), or the error.
    Answer(Result<Map<String, Value>, Refusal>),
    HttpError,
    Reset,
    Stall,
}

/// Draws the faults in a fixed order, so that a seed always gives the same sequence; `None`
/// when the request is to be carried out.
pub fn draw(rng: &mut StdRng, faults: &Faults, action: &str, region: &str) -> Option<Fate> {
    // Drawn only when asked for, so that a seed gives the same faults as before the flag.
    if faults.unauthorized > 0.0 && rng.random_bool(faults.unauthorized) {
        return Some(Fate::Answer(Err(Refusal::no_permission(action, region))));
    }
    if rng.random_bool(faults.reset) {
        return Some(Fate::Reset);
    }
    if rng.random_bool(faults.stall) {
        return Some(Fate::Stall);
    }
    if rng.random_bool(faults.http_error) {
        return Some(Fate::HttpError);
    }
    if rng.random_bool(faults.internal_error) {
        return Some(Fate::Answer(Err(Refusal::new(
            "InternalError",
            "An internal error has occurred. Retry your request.",
        ))));
    }
    if rng.random_bool(faults.occupied) {
        return Some(Fate::Answer(Err(Refusal::new(
            "UnsupportedOperation.ImageOccupied",
            "The image is busy with another operation. Please try again later.",
        ))));
    }
    None
}

/// Whether an image is one of the missing ones (`--missing`): a stable function of seed and
/// id.
pub fn is_missing(faults: &Faults, seed: u64, image_id: &str) -> bool {
    let p = faults.missing;
    p > 0.0 && unit_hash(&[&seed.to_le_bytes(), image_id.as_bytes()]) < p
}

/// A hash of `parts` mapped to [0, 1).
fn unit_hash(parts: &[&[u8]]) -> f64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}
