//! The API call: sign a row's request with fresh credentials and timestamp, send it, and
//! classify the answer. Every failure, the service's or the network's, becomes an
//! [`ApiError`] that carries its [`Class`], which decides what the pool does next.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use serde::Deserialize;

use crate::action::{self, Permission};
use crate::credentials::Provider;
use crate::input::Row;
use crate::sign;

/// What an error means for the row and the job (SPEC §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Worth another attempt, after a backoff, through the limiter again.
    Transient,
    /// The clock is off: one more attempt, then the job stops.
    Clock,
    /// SHARE of an image already shared: the image is as asked.
    AlreadyDone,
    /// Nothing else can work either (credentials, account, endpoint): stop the job.
    JobFatal,
    /// The region cannot do this: its rows fail, the others go on.
    RegionFatal,
    /// This row cannot work: fail it, do not retry.
    Permanent,
}

/// Classifies an error code (the service's, or one of ours for transport failures).
pub fn classify(code: &str, permission: Permission) -> Class {
    let family = |prefix: &str| code == prefix || code.starts_with(&format!("{prefix}."));
    match code {
        "UnsupportedOperation.ImageAlreadyShared" if permission == Permission::Share => {
            Class::AlreadyDone
        }
        "AuthFailure.SignatureExpire" => Class::Clock,
        "UnsupportedOperation.ImageOccupied"
        | "FailedOperation.RequestError"
        | "ResourceUnavailable"
        | "ServiceUnavailable"
        | TIMEOUT
        | CONNECTION_ERROR
        | INVALID_RESPONSE => Class::Transient,
        _ if family("RequestLimitExceeded") || family("InternalError") => Class::Transient,
        _ if code.starts_with(HTTP_STATUS) => Class::Transient,
        "ResourceNotFound.RoleNotFound"
        | "UnsupportedOperation.AssumeRoleFailed"
        | "InvalidAction"
        | "NoSuchVersion"
        | "NoSuchProduct"
        | "ActionOffline"
        | "IpInBlacklist"
        | "IpNotInWhitelist"
        | "UnsupportedProtocol" => Class::JobFatal,
        _ if family("AuthFailure") => Class::JobFatal,
        "UnsupportedRegion" => Class::RegionFatal,
        _ => Class::Permanent,
    }
}

/// Our own codes, for failures where the service gave none.
pub const TIMEOUT: &str = "Timeout";
pub const CONNECTION_ERROR: &str = "ConnectionError";
pub const INVALID_RESPONSE: &str = "InvalidResponse";
/// Followed by the status number: `HttpStatus503`.
pub const HTTP_STATUS: &str = "HttpStatus";

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

/// The endpoint template, `{region}` replaced per row.
#[derive(Clone, Debug)]
pub struct Endpoint {
    template: String,
}

impl Endpoint {
    pub fn new(template: &str) -> Self {
        Self {
            template: template.trim_end_matches('/').to_string(),
        }
    }

    pub fn has_region(&self) -> bool {
        self.template.contains("{region}")
    }

    pub fn url(&self, region: &str) -> String {
        self.template.replace("{region}", region)
    }

    pub fn template(&self) -> &str {
        &self.template
    }
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
        let mut http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true);
        // A proxy from the environment is for the network, not for this machine: without
        // this, `--simulate` behind a corporate HTTP_PROXY would send loopback requests to it.
        if targets
            .values()
            .all(|target| crate::config::is_loopback(target.url.host()))
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

    /// One attempt for `row`, signed now.
    pub async fn send(&self, row: &Row) -> Result<Success, ApiError> {
        let transport = |code: &str, message: String| ApiError {
            code: code.to_string(),
            message,
            request_id: None,
            class: classify(code, row.permission),
        };
        let Some(Target { url, host }) = self.targets.get(row.region) else {
            let message = format!("no endpoint for region {}", row.region);
            return Err(transport(CONNECTION_ERROR, message));
        };
        let credentials =
            self.credentials.current().await.map_err(|e| {
                transport(CONNECTION_ERROR, format!("cannot get credentials: {e:#}"))
            })?;
        let body = action::request_body(&row.image_id, row.permission);
        let headers = sign::headers(
            &credentials,
            &sign::Request {
                host,
                action: action::ACTION,
                version: action::VERSION,
                region: row.region,
                body: &body,
                timestamp: unix_now(),
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
        let network = |e: reqwest::Error| {
            if e.is_timeout() {
                transport(
                    TIMEOUT,
                    format!("no complete answer within {:?}", self.timeout),
                )
            } else {
                transport(CONNECTION_ERROR, error_chain(&e))
            }
        };
        let response = request.send().await.map_err(network)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(network)?;
        if status != reqwest::StatusCode::OK {
            return Err(transport(
                &format!("{HTTP_STATUS}{}", status.as_u16()),
                format!("HTTP {status} from {url}, not an API answer"),
            ));
        }
        parse_answer(&bytes, row.permission)
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Response")]
    response: Answer,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "RequestId")]
    request_id: String,
    #[serde(rename = "BlueprintId")]
    blueprint_id: Option<String>,
    #[serde(rename = "Error")]
    error: Option<ServiceError>,
}

#[derive(Deserialize)]
struct ServiceError {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Message")]
    message: String,
}

fn parse_answer(bytes: &[u8], permission: Permission) -> Result<Success, ApiError> {
    let Ok(Envelope { response }) = serde_json::from_slice::<Envelope>(bytes) else {
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
            message: error.message,
            request_id: Some(response.request_id),
        }),
        None => Ok(Success {
            blueprint_id: response.blueprint_id,
            request_id: response.request_id,
        }),
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_the_table_has_its_class() {
        use Class::*;
        let share = Permission::Share;
        let cases = [
            ("UnsupportedOperation.ImageOccupied", Transient),
            ("RequestLimitExceeded", Transient),
            ("RequestLimitExceeded.UinLimitExceeded", Transient),
            ("InternalError", Transient),
            ("InternalError.RequestError", Transient),
            ("FailedOperation.RequestError", Transient),
            ("ResourceUnavailable", Transient),
            ("ServiceUnavailable", Transient),
            ("HttpStatus503", Transient),
            ("Timeout", Transient),
            ("ConnectionError", Transient),
            ("InvalidResponse", Transient),
            ("AuthFailure.SignatureExpire", Clock),
            ("UnsupportedOperation.ImageAlreadyShared", AlreadyDone),
            ("AuthFailure.SignatureFailure", JobFatal),
            ("AuthFailure.SecretIdNotFound", JobFatal),
            ("ResourceNotFound.RoleNotFound", JobFatal),
            ("UnsupportedOperation.AssumeRoleFailed", JobFatal),
            ("InvalidAction", JobFatal),
            ("IpNotInWhitelist", JobFatal),
            ("UnsupportedRegion", RegionFatal),
            ("ResourceNotFound.ImageIdNotFound", Permanent),
            ("UnsupportedOperation.ImageUnableToShare", Permanent),
            ("ResourceInUse.ImageInUse", Permanent),
            ("UnauthorizedOperation.NoPermission", Permanent),
            ("InternalErrorish", Permanent),
            ("SomethingNew", Permanent),
        ];
        for (code, class) in cases {
            assert_eq!(classify(code, share), class, "{code}");
        }
        assert_eq!(
            classify(
                "UnsupportedOperation.ImageAlreadyShared",
                Permission::Cancel
            ),
            Permanent,
            "only SHARE can be already done"
        );
    }

    #[test]
    fn answers_parse_into_success_or_classified_errors() {
        let ok = br#"{"Response":{"BlueprintId":"lhbp-su83x02a","RequestId":"r1"}}"#;
        assert_eq!(
            parse_answer(ok, Permission::Share)
                .unwrap()
                .blueprint_id
                .as_deref(),
            Some("lhbp-su83x02a")
        );
        let error =
            br#"{"Response":{"Error":{"Code":"InternalError","Message":"m"},"RequestId":"r2"}}"#;
        let error = parse_answer(error, Permission::Share).unwrap_err();
        assert_eq!(
            (error.class, error.request_id.as_deref()),
            (Class::Transient, Some("r2"))
        );
        let html = parse_answer(b"<html>bad gateway</html>", Permission::Share).unwrap_err();
        assert_eq!(
            (html.code.as_str(), html.class),
            (INVALID_RESPONSE, Class::Transient)
        );
    }
}
