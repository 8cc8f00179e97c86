//! The API: sign a row's request with fresh credentials and timestamp, send it, and
//! classify the answer. Every failure, the service's or the network's, becomes an
//! [`ApiError`] that carries its [`Class`], which decides what the pool does next.
//!
//! `classify` holds the classes of SPEC §5, `endpoint` where requests go, and `advice` what
//! to tell the user when an answer stops the job.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;

use serde::Deserialize;

use crate::action::{self, Permission};
use crate::credentials::Provider;
use crate::input::Row;
use crate::sign;

mod advice;
mod classify;
mod endpoint;

pub use advice::{fatal_advice, region_advice};
pub use classify::{
    CANNOT_CONNECT, CLOCK_OUT_OF_RANGE, CONNECTION_ERROR, Class, HTTP_STATUS, INVALID_RESPONSE,
    TIMEOUT, classify,
};

/// The most of an answer that is read: the API's answers are a few hundred bytes, and a
/// server that sends gigabytes is not the API.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;
pub use endpoint::{Endpoint, is_loopback};

/// A failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    pub class: Class,
}

/// A successful attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Success {
    /// `None` for CANCEL.
    pub blueprint_id: Option<String>,
    pub request_id: String,
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

    /// One attempt for `row`, signed now and ready to go: everything that can take time
    /// before the request reaches the server (credentials, which a CVM role may fetch over
    /// HTTP, the signature, the body) happens here, before the limiter's slot is taken, so
    /// the slot paces what reaches the server. A failure here is the attempt's answer.
    pub async fn prepare(&self, row: &Row) -> Prepared {
        let body = action::request_body(&row.image_id, row.permission);
        Prepared {
            request: self
                .build(row.region, action::ACTION, body, row.permission)
                .await,
            permission: row.permission,
        }
    }

    /// Sends a prepared attempt and reads its answer.
    pub async fn send(&self, prepared: Prepared) -> Result<Success, ApiError> {
        let Prepared {
            request,
            permission,
        } = prepared;
        let bytes = self.execute(request?, permission).await?;
        let (request_id, answer): (_, ShareAnswer) = parse_answer(&bytes, permission)?;
        Ok(Success {
            blueprint_id: answer.blueprint_id,
            request_id,
        })
    }

    /// One page of `region`'s blueprints (`DescribeBlueprints`), signed now: those of type
    /// `SHARED`, or of every type (`kind` [`Blueprints::All`]).
    pub async fn describe(
        &self,
        region: &str,
        kind: Blueprints,
        offset: u64,
    ) -> Result<Page, ApiError> {
        let body = action::describe_body(kind == Blueprints::Shared, offset);
        let request = self
            .build(region, action::DESCRIBE_ACTION, body, LOOKUP)
            .await?;
        let bytes = self.execute(request, LOOKUP).await?;
        let (_, answer): (_, DescribeAnswer) = parse_answer(&bytes, LOOKUP)?;
        Ok(Page {
            total: answer.total_count,
            n_listed: answer.blueprint_set.len() as u64,
            ids: answer
                .blueprint_set
                .iter()
                .map(|b| b.blueprint_id.clone())
                .collect(),
            blueprints: answer
                .blueprint_set
                .into_iter()
                .filter_map(|b| Some((b.image_id?, b.blueprint_id)))
                .collect(),
        })
    }

    /// Signs `body` for `action` in `region` now; errors are classified as for `permission`.
    async fn build(
        &self,
        region: &str,
        action: &str,
        body: Vec<u8>,
        permission: Permission,
    ) -> Result<reqwest::Request, ApiError> {
        let Some(Target { url, host }) = self.targets.get(region) else {
            let message = format!("no endpoint for region {region}");
            return Err(transport(CONNECTION_ERROR, message, permission));
        };
        let credentials = self.credentials.current().await.map_err(|e| {
            transport(
                CONNECTION_ERROR,
                format!("cannot get credentials: {e:#}"),
                permission,
            )
        })?;
        let timestamp = crate::clock::unix_now()
            .map_err(|e| transport(CLOCK_OUT_OF_RANGE, e.to_string(), permission))?;
        let headers = sign::headers(
            &credentials,
            &sign::Request {
                host,
                action,
                version: action::VERSION,
                region,
                body: &body,
                timestamp,
            },
        );
        let mut request = self
            .http
            .post(url.clone())
            .timeout(self.timeout)
            .header("Host", host)
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request
            .build()
            .map_err(|e| transport(CONNECTION_ERROR, error_chain(&e), permission))
    }

    /// Sends `request` and returns the answer's bytes if the HTTP exchange went as the
    /// API's do. Errors are classified as for `permission`.
    async fn execute(
        &self,
        request: reqwest::Request,
        permission: Permission,
    ) -> Result<Vec<u8>, ApiError> {
        let url = request.url().clone();
        let network = |e: reqwest::Error| {
            if e.is_timeout() {
                transport(
                    TIMEOUT,
                    format!("no complete answer within {:?}", self.timeout),
                    permission,
                )
            } else if e.is_connect() {
                transport(
                    CANNOT_CONNECT,
                    format!(
                        "cannot connect to {url}: {}; check --endpoint, DNS and the network (firewall, proxy)",
                        error_chain(&e)
                    ),
                    permission,
                )
            } else {
                transport(CONNECTION_ERROR, error_chain(&e), permission)
            }
        };
        let response = self.http.execute(request).await.map_err(network)?;
        let status = response.status();
        if status.is_redirection() {
            let code = format!("{HTTP_STATUS}{}", status.as_u16());
            return Err(transport(
                &code,
                redirect_message(&url, &response),
                permission,
            ));
        }
        if status != reqwest::StatusCode::OK {
            return Err(transport(
                &format!("{HTTP_STATUS}{}", status.as_u16()),
                format!("HTTP {status} from {url}, not an API answer"),
                permission,
            ));
        }
        let bytes = read_capped(response).await.map_err(|e| match e {
            Read::Network(e) => network(e),
            Read::TooLarge => transport(
                INVALID_RESPONSE,
                format!(
                    "the answer from {url} is larger than {} MiB: not the API's",
                    MAX_ANSWER_BYTES >> 20
                ),
                permission,
            ),
        })?;
        Ok(bytes.to_vec())
    }

    /// Opens `n` connections to `region`'s endpoint before its first slot, so that no paced
    /// request waits for a handshake that a later one, finding a warm connection, skips:
    /// the two would reach the server closer together than the limiter spaced them.
    ///
    /// reqwest cannot connect without sending, so each connection carries one unsigned
    /// `GET /`: no action, no credentials, nothing any account is charged for; the service
    /// answers it with an error, the simulator with 405. Answers are read and dropped.
    pub async fn warm(&self, region: &str, n: usize) {
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
                    Ok(response) => drop(read_capped(response).await),
                    Err(error) => tracing::debug!("warming a connection: {error}"),
                }
            });
        }
        warming.join_all().await;
    }
}

/// An attempt ready to send, or why it could not be made.
pub struct Prepared {
    request: Result<reqwest::Request, ApiError>,
    permission: Permission,
}

/// An error of ours, for a failure where the service gave no answer.
fn transport(code: &str, message: String, permission: Permission) -> ApiError {
    ApiError {
        code: code.to_string(),
        message,
        request_id: None,
        class: classify(code, permission),
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

/// How a look-up's errors are classified: as a CANCEL's, since only a SHARE can be "already
/// done" and no look-up answer means that.
const LOOKUP: Permission = Permission::Cancel;

/// Which blueprints a look-up lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blueprints {
    /// Type `SHARED`: those shared from CVM images (SPEC §9).
    Shared,
    /// Every type: the fresh look-up, which must not depend on the inferred `SHARED` type.
    All,
}

/// One page of a look-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// How many blueprints match in all, over every page.
    pub total: u64,
    /// How many blueprints this page lists: the next page starts that much further.
    pub n_listed: u64,
    /// The BlueprintId of every blueprint the page lists, public ones included: what tells a
    /// page that adds something from one that repeats an earlier one.
    pub ids: Vec<String>,
    /// (ImageId, BlueprintId) of this page's blueprints that came from a CVM image.
    pub blueprints: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(rename = "Response")]
    response: Answer<T>,
}

/// An answer of either action: the common parts, and the action's own fields (`T`).
#[derive(Deserialize)]
struct Answer<T> {
    #[serde(rename = "RequestId")]
    request_id: String,
    #[serde(rename = "Error")]
    error: Option<ServiceError>,
    #[serde(flatten)]
    fields: T,
}

#[derive(Debug, Deserialize)]
struct ShareAnswer {
    #[serde(rename = "BlueprintId")]
    blueprint_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DescribeAnswer {
    #[serde(rename = "TotalCount", default)]
    total_count: u64,
    #[serde(rename = "BlueprintSet", default)]
    blueprint_set: Vec<BlueprintEntry>,
}

/// The fields of a `Blueprint` the look-up needs.
#[derive(Debug, Deserialize)]
struct BlueprintEntry {
    #[serde(rename = "BlueprintId")]
    blueprint_id: String,
    #[serde(rename = "ImageId", default)]
    image_id: Option<String>,
}

#[derive(Deserialize)]
struct ServiceError {
    #[serde(rename = "Code")]
    code: String,
    /// Some answers carry a code alone: the code still says what happened.
    #[serde(rename = "Message", default)]
    message: Option<String>,
}

/// The answer's RequestId and fields, or its error, classified as for `permission`.
fn parse_answer<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    permission: Permission,
) -> Result<(String, T), ApiError> {
    let Ok(Envelope { response }) = serde_json::from_slice::<Envelope<T>>(bytes) else {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
        return Err(ApiError {
            code: INVALID_RESPONSE.to_string(),
            message: format!("the answer is not the API's JSON: {start}"),
            request_id: None,
            class: Class::Transient,
        });
    };
    match response.error {
        Some(error) => Err(ApiError {
            class: classify(&error.code, permission),
            code: error.code,
            message: error.message.unwrap_or_default(),
            request_id: Some(response.request_id),
        }),
        None => Ok((response.request_id, response.fields)),
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

    #[test]
    fn answers_parse_into_success_or_classified_errors() {
        let ok = br#"{"Response":{"BlueprintId":"lhbp-su83x02a","RequestId":"r1"}}"#;
        let (_, answer): (_, ShareAnswer) = parse_answer(ok, Permission::Share).unwrap();
        assert_eq!(answer.blueprint_id.as_deref(), Some("lhbp-su83x02a"));
        let error =
            br#"{"Response":{"Error":{"Code":"InternalError","Message":"m"},"RequestId":"r2"}}"#;
        let error = parse_answer::<ShareAnswer>(error, Permission::Share).unwrap_err();
        assert_eq!(
            (error.class, error.request_id.as_deref()),
            (Class::Transient, Some("r2"))
        );
        let bare =
            br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure"},"RequestId":"r3"}}"#;
        let bare = parse_answer::<ShareAnswer>(bare, Permission::Share).unwrap_err();
        assert_eq!(
            (bare.code.as_str(), bare.class),
            ("AuthFailure.SignatureFailure", Class::JobFatal),
            "a code without a message is classified by the code"
        );
        let html = parse_answer::<ShareAnswer>(b"<html>bad gateway</html>", Permission::Share)
            .unwrap_err();
        assert_eq!(
            (html.code.as_str(), html.class),
            (INVALID_RESPONSE, Class::Transient)
        );
    }

    #[test]
    fn a_look_up_page_keeps_the_blueprints_shared_from_an_image() {
        let page = br#"{"Response":{"TotalCount":3,"BlueprintSet":[
            {"BlueprintId":"lhbp-pub","BlueprintType":"APP_OS","ImageId":null},
            {"BlueprintId":"lhbp-a","BlueprintType":"SHARED","ImageId":"img-aaaaaaaa"}],
            "RequestId":"r"}}"#;
        let (_, answer): (_, DescribeAnswer) = parse_answer(page, LOOKUP).unwrap();
        assert_eq!(answer.total_count, 3);
        let images: Vec<_> = answer
            .blueprint_set
            .iter()
            .filter_map(|b| b.image_id.as_deref())
            .collect();
        assert_eq!(images, ["img-aaaaaaaa"]);
        let refused = br#"{"Response":{"Error":{"Code":"UnauthorizedOperation.NoPermission"},"RequestId":"r"}}"#;
        assert_eq!(
            parse_answer::<DescribeAnswer>(refused, LOOKUP)
                .unwrap_err()
                .class,
            Class::JobFatal
        );
    }
}
