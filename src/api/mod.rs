//! The API: sign a request with fresh credentials and timestamp, send it, and read the
//! answer. [`Client`] is the production [`Transport`]; [`read_answer`] turns an answer's
//! bytes into an action's fields or an [`ApiError`] that carries its [`Class`], which decides
//! what the engine does next.
//!
//! `classify` holds the classes of SPEC §5, `endpoint` where requests go, `advice` what to
//! tell the user when an answer stops the job, and `transport` the seam the engine sends
//! through.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;

use serde::Deserialize;

use crate::action;
#[cfg(test)]
use crate::action::Permission;
use crate::credentials::Provider;
use crate::sign;

mod advice;
mod classify;
mod endpoint;
mod transport;

pub use advice::{fatal_advice, region_advice};
pub use classify::{
    CANNOT_CONNECT, CLOCK_OUT_OF_RANGE, CONNECTION_ERROR, Class, HTTP_STATUS, INVALID_RESPONSE,
    TIMEOUT, classify,
};

/// The most of an answer that is read: the API's answers are a few hundred bytes, and a
/// server that sends gigabytes is not the API.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;
pub use endpoint::{Endpoint, is_loopback};
pub use transport::{BoxFuture, Fault, Request, Signed, Transport};

/// A failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    pub class: Class,
}

/// Sends signed requests.
pub struct Client {
    http: reqwest::Client,
    /// Each region's URL and Host header, worked out once rather than per request.
    targets: HashMap<&'static str, Target>,
    credentials: Provider,
    timeout: Duration,
}

/// Where a region's requests go.
struct Target {
    url: reqwest::Url,
    /// The Host header sent and signed: with `:port` when the URL has one.
    host: String,
}

impl Target {
    fn new(endpoint: &Endpoint, region: &str) -> anyhow::Result<Self> {
        let url = endpoint.url(region);
        let parsed =
            reqwest::Url::parse(&url).with_context(|| format!("bad endpoint URL {url}"))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => anyhow::bail!("no host in the endpoint URL {url}"),
        };
        Ok(Self { url: parsed, host })
    }
}

impl Client {
    pub fn new(
        endpoint: Endpoint,
        credentials: Provider,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let targets: HashMap<&'static str, Target> = action::REGIONS
            .iter()
            .map(|region| Ok((*region, Target::new(&endpoint, region)?)))
            .collect::<anyhow::Result<_>>()?;
        // The API never redirects; following one would hand the signed request, the session
        // token and (on 307) the body to another host, past the check on plain http.
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true);
        // A proxy from the environment is for the network, not for this machine: without
        // this, `--simulate` behind a corporate HTTP_PROXY would send loopback requests to it.
        if targets
            .values()
            .all(|target| is_loopback(target.url.host()))
        {
            http = http.no_proxy();
        }
        let http = http.build()?;
        Ok(Self {
            http,
            targets,
            credentials,
            timeout,
        })
    }

    fn target(&self, region: &str) -> Result<&Target, Fault> {
        self.targets
            .get(region)
            .ok_or_else(|| Fault::new(CONNECTION_ERROR, format!("no endpoint for region {region}")))
    }

    /// Signs `request` now: fresh credentials (a CVM role may fetch them over HTTP) and
    /// timestamp, so that this happens before the limiter's slot is taken and the slot paces
    /// what reaches the server.
    async fn sign_now(&self, request: Request) -> Result<Signed, Fault> {
        let host = &self.target(request.region)?.host;
        let credentials =
            self.credentials.current().await.map_err(|e| {
                Fault::new(CONNECTION_ERROR, format!("cannot get credentials: {e:#}"))
            })?;
        let timestamp =
            crate::clock::unix_now().map_err(|e| Fault::new(CLOCK_OUT_OF_RANGE, e.to_string()))?;
        let headers = sign::headers(
            &credentials,
            &sign::Request {
                host,
                action: request.action,
                version: action::VERSION,
                region: request.region,
                body: &request.body,
                timestamp,
            },
        );
        Ok(Signed { request, headers })
    }

    /// Sends a signed request and returns the answer's bytes if the HTTP exchange went as
    /// the API's do.
    async fn execute(&self, signed: Signed) -> Result<Vec<u8>, Fault> {
        let Target { url, host } = self.target(signed.request.region)?;
        let mut request = self
            .http
            .post(url.clone())
            .timeout(self.timeout)
            .header("Host", host)
            .body(signed.request.body);
        for (name, value) in signed.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| self.network(url, e))?;
        let status = response.status();
        if status.is_redirection() {
            let code = format!("{HTTP_STATUS}{}", status.as_u16());
            return Err(Fault::new(&code, redirect_message(url, &response)));
        }
        if status != reqwest::StatusCode::OK {
            return Err(Fault::new(
                &format!("{HTTP_STATUS}{}", status.as_u16()),
                format!("HTTP {status} from {url}, not an API answer"),
            ));
        }
        read_capped(response).await.map_err(|e| match e {
            Read::Network(e) => self.network(url, e),
            Read::TooLarge => Fault::new(
                INVALID_RESPONSE,
                format!(
                    "the answer from {url} is larger than {} MiB: not the API's",
                    MAX_ANSWER_BYTES >> 20
                ),
            ),
        })
    }

    /// A network failure as one of our codes: a timeout, no connection at all, or a
    /// connection that broke.
    fn network(&self, url: &reqwest::Url, e: reqwest::Error) -> Fault {
        if e.is_timeout() {
            Fault::new(
                TIMEOUT,
                format!("no complete answer within {:?}", self.timeout),
            )
        } else if e.is_connect() {
            Fault::new(
                CANNOT_CONNECT,
                format!(
                    "cannot connect to {url}: {}; check --endpoint, DNS and the network (firewall, proxy)",
                    error_chain(&e)
                ),
            )
        } else {
            Fault::new(CONNECTION_ERROR, error_chain(&e))
        }
    }

    /// Opens `n` connections to `region`'s endpoint before its first slot, so that no paced
    /// request waits for a handshake that a later one, finding a warm connection, skips:
    /// the two would reach the server closer together than the limiter spaced them.
    ///
    /// reqwest cannot connect without sending, so each connection carries one unsigned
    /// `GET /`: no action, no credentials, nothing any account is charged for; the service
    /// answers it with an error, the simulator with 405. Answers are read and dropped.
    async fn warm_up(&self, region: &str, n: usize) {
        let Some(Target { url, host }) = self.targets.get(region) else {
            return;
        };
        let mut warming = tokio::task::JoinSet::new();
        for _ in 0..n {
            let get = self
                .http
                .get(url.clone())
                .timeout(self.timeout)
                .header("Host", host);
            warming.spawn(async move {
                match get.send().await {
                    // Read (at most the cap) so the connection can be used again.
                    Ok(response) => {
                        drop(read_capped(response).await);
                        None
                    }
                    Err(error) => Some(error),
                }
            });
        }
        let failed: Vec<reqwest::Error> = warming.join_all().await.into_iter().flatten().collect();
        // Harmless (each request connects for itself), but a sign of trouble: said at -v.
        if let Some(error) = failed.first()
            && tracing::enabled!(tracing::Level::DEBUG)
        {
            tracing::warn!(
                "{} of {n} warm-up connections to {region} failed (the requests will connect as they go): {error}",
                failed.len()
            );
        }
    }
}

impl Transport for Client {
    fn sign(&self, request: Request) -> BoxFuture<'_, Result<Signed, Fault>> {
        Box::pin(self.sign_now(request))
    }

    fn send(&self, signed: Signed) -> BoxFuture<'_, Result<Vec<u8>, Fault>> {
        Box::pin(self.execute(signed))
    }

    fn warm(&self, region: &'static str, n: usize) -> BoxFuture<'_, ()> {
        Box::pin(self.warm_up(region, n))
    }
}

/// "the endpoint redirects to HOST: check --endpoint": where to, never followed.
fn redirect_message(url: &reqwest::Url, response: &reqwest::Response) -> String {
    let to = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .and_then(|location| url.join(location).ok());
    match to.as_ref().and_then(|to| to.host_str()) {
        Some(host) => format!(
            "the endpoint redirects to {host} (HTTP {}): check --endpoint; nothing was sent there",
            response.status()
        ),
        None => format!(
            "the endpoint answers with a redirect (HTTP {}): check --endpoint",
            response.status()
        ),
    }
}

/// Why an answer could not be read.
enum Read {
    Network(reqwest::Error),
    TooLarge,
}

/// The answer's body, read as it streams in, up to [`MAX_ANSWER_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, Read> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
    {
        return Err(Read::TooLarge);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Read::Network)? {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Read::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(rename = "Response")]
    response: Answer<T>,
}

/// An answer of any action: the common parts, and the action's own fields (`T`).
#[derive(Deserialize)]
struct Answer<T> {
    #[serde(rename = "RequestId")]
    request_id: String,
    #[serde(rename = "Error")]
    error: Option<ServiceError>,
    #[serde(flatten)]
    fields: T,
}

#[derive(Deserialize)]
struct ServiceError {
    #[serde(rename = "Code")]
    code: String,
    /// Some answers carry a code alone: the code still says what happened.
    #[serde(rename = "Message", default)]
    message: Option<String>,
}

/// The answer's RequestId and an action's fields, or its error, its code classified by
/// `class` (each action has its own classification).
pub fn read_answer<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    class: impl Fn(&str) -> Class,
) -> Result<(String, T), ApiError> {
    let Ok(Envelope { response }) = serde_json::from_slice::<Envelope<T>>(bytes) else {
        // The service's words are shown in logs and results: controls escaped (SPEC §4).
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]);
        let start = crate::text::for_line(&start).into_owned();
        return Err(ApiError {
            code: INVALID_RESPONSE.to_string(),
            message: format!("the answer is not the API's JSON: {start}"),
            request_id: None,
            class: class(INVALID_RESPONSE),
        });
    };
    match response.error {
        Some(error) => Err(ApiError {
            class: class(&error.code),
            code: crate::text::for_line(&error.code).into_owned(),
            message: crate::text::for_line(&error.message.unwrap_or_default()).into_owned(),
            request_id: Some(crate::text::for_line(&response.request_id).into_owned()),
        }),
        None => Ok((
            crate::text::for_line(&response.request_id).into_owned(),
            response.fields,
        )),
    }
}

/// reqwest's error with its causes, which name what actually went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Fields {
        #[serde(rename = "BlueprintId")]
        blueprint_id: Option<String>,
    }

    fn share(code: &str) -> Class {
        classify(code, Permission::Share)
    }

    #[test]
    fn answers_parse_into_fields_or_classified_errors() {
        let ok = br#"{"Response":{"BlueprintId":"lhbp-su83x02a","RequestId":"r1"}}"#;
        let (_, answer): (_, Fields) = read_answer(ok, share).unwrap();
        assert_eq!(answer.blueprint_id.as_deref(), Some("lhbp-su83x02a"));
        let error =
            br#"{"Response":{"Error":{"Code":"InternalError","Message":"m"},"RequestId":"r2"}}"#;
        let error = read_answer::<Fields>(error, share).unwrap_err();
        assert_eq!(
            (error.class, error.request_id.as_deref()),
            (Class::Transient, Some("r2"))
        );
        let bare =
            br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure"},"RequestId":"r3"}}"#;
        let bare = read_answer::<Fields>(bare, share).unwrap_err();
        assert_eq!(
            (bare.code.as_str(), bare.class),
            ("AuthFailure.SignatureFailure", Class::JobFatal),
            "a code without a message is classified by the code"
        );
        let html = read_answer::<Fields>(b"<html>bad gateway</html>", share).unwrap_err();
        assert_eq!(
            (html.code.as_str(), html.class),
            (INVALID_RESPONSE, Class::Transient)
        );
    }
}
