//! How a request reaches the service: signed before its slot, sent after it. The engine
//! only sees this trait, so it runs the same against the real service ([`super::Client`],
//! reqwest) and against a scripted fake in its unit tests, on tokio's paused clock.
//!
//! The trait lives beside the client rather than in the engine: the engine sits above the
//! API layer (it uses its classes and errors), and the client implements this without
//! knowing the engine exists.

use std::future::Future;
use std::pin::Pin;

/// A boxed future: the trait is used as `dyn Transport`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One request, before it is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub region: &'static str,
    /// The API action, such as `ModifyImageSharePermission`.
    pub action: &'static str,
    /// The JSON body, exactly as it is signed and sent.
    pub body: Vec<u8>,
}

/// A request signed now, ready to go the moment its slot comes.
#[derive(Clone, Debug)]
pub struct Signed {
    pub request: Request,
    /// The signed headers (`Authorization`, `X-TC-*`): a secret never travels here, only
    /// its signature.
    pub headers: Vec<(&'static str, String)>,
}

/// A failure where the service gave no answer, or an answer that is not the API's: one of
/// our own codes (`Timeout`, `HttpStatus503`, ...) and what happened. Each action classifies
/// it, as it does the service's codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub code: String,
    pub message: String,
}

impl Fault {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// Signs and sends requests.
pub trait Transport: Send + Sync {
    /// Signs `request` now, with fresh credentials (a CVM role may fetch them over HTTP) and
    /// timestamp: everything that can take time before the request leaves.
    fn sign(&self, request: Request) -> BoxFuture<'_, Result<Signed, Fault>>;

    /// Sends a signed request; returns the answer's bytes if the HTTP exchange went as the
    /// API's do (status 200, a body of sensible size).
    fn send(&self, signed: Signed) -> BoxFuture<'_, Result<Vec<u8>, Fault>>;

    /// Opens up to `n` connections to `region`'s endpoint before its first slot.
    fn warm(&self, region: &'static str, n: usize) -> BoxFuture<'_, ()>;
}
