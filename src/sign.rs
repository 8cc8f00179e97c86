//! TC3-HMAC-SHA256, byte for byte as Tencent Cloud's official SDKs sign a POST request.
//!
//! [`tc3`] computes every intermediate value (so tests can compare each one with the
//! published vectors, and the simulator can verify what a client sent); [`headers`] turns
//! credentials and a request into the headers to send.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::credentials::Credentials;

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The signed-header list of the SDKs, and of newer official demos that also sign the action.
pub const SIGNED_HEADERS: &str = "content-type;host";
pub const SIGNED_HEADERS_WITH_ACTION: &str = "content-type;host;x-tc-action";

/// What goes into a signature, apart from the secret id (which only appears in the header).
#[derive(Clone, Copy)]
pub struct Tc3Input<'a> {
    pub secret_key: &'a str,
    pub timestamp: u64,
    pub service: &'a str,
    /// The `Host` header exactly as sent, with `:port` when the URL has one.
    pub host: &'a str,
    pub content_type: &'a str,
    /// `Some(action)` signs `x-tc-action` too (value lowercased), as newer demos do.
    pub signed_action: Option<&'a str>,
    /// The exact bytes sent.
    pub body: &'a [u8],
}

/// A signature with every intermediate value of the algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tc3 {
    pub date: String,
    pub signed_headers: &'static str,
    pub hashed_payload: String,
    pub canonical_request: String,
    pub hashed_canonical_request: String,
    pub credential_scope: String,
    pub string_to_sign: String,
    pub signature: String,
}

impl Tc3 {
    /// The `Authorization` header value.
    pub fn authorization(&self, secret_id: &str) -> String {
        format!(
            "{ALGORITHM} Credential={secret_id}/{}, SignedHeaders={}, Signature={}",
            self.credential_scope, self.signed_headers, self.signature
        )
    }
}

/// Signs one request.
pub fn tc3(input: &Tc3Input<'_>) -> Tc3 {
    let date = utc_date(input.timestamp);
    let hashed_payload = hex::encode(Sha256::digest(input.body));
    let (canonical_headers, signed_headers) = match input.signed_action {
        None => (
            format!("content-type:{}\nhost:{}\n", input.content_type, input.host),
            SIGNED_HEADERS,
        ),
        Some(action) => (
            format!(
                "content-type:{}\nhost:{}\nx-tc-action:{}\n",
                input.content_type,
                input.host,
                action.to_ascii_lowercase()
            ),
            SIGNED_HEADERS_WITH_ACTION,
        ),
    };
    let canonical_request =
        format!("POST\n/\n\n{canonical_headers}\n{signed_headers}\n{hashed_payload}");
    let hashed_canonical_request = hex::encode(Sha256::digest(canonical_request.as_bytes()));
    let credential_scope = format!("{date}/{}/tc3_request", input.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{credential_scope}\n{hashed_canonical_request}",
        input.timestamp
    );
    let k_date = hmac(
        format!("TC3{}", input.secret_key).as_bytes(),
        date.as_bytes(),
    );
    let k_service = hmac(&k_date, input.service.as_bytes());
    let k_signing = hmac(&k_service, b"tc3_request");
    let signature = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    Tc3 {
        date,
        signed_headers,
        hashed_payload,
        canonical_request,
        hashed_canonical_request,
        credential_scope,
        string_to_sign,
        signature,
    }
}

/// One API request, ready to be signed.
pub struct Request<'a> {
    pub host: &'a str,
    pub action: &'a str,
    pub version: &'a str,
    pub region: &'a str,
    pub body: &'a [u8],
    pub timestamp: u64,
}

/// The headers of a signed request, as the SDKs send them (session token included when the
/// credentials are temporary). `Host` is left to the HTTP client, which sends the same value.
pub fn headers(credentials: &Credentials, request: &Request<'_>) -> Vec<(&'static str, String)> {
    let signature = tc3(&Tc3Input {
        secret_key: credentials.secret_key.expose(),
        timestamp: request.timestamp,
        service: crate::action::SERVICE,
        host: request.host,
        content_type: crate::action::CONTENT_TYPE,
        signed_action: None,
        body: request.body,
    });
    let mut headers = vec![
        (
            "Authorization",
            signature.authorization(&credentials.secret_id),
        ),
        ("Content-Type", crate::action::CONTENT_TYPE.to_string()),
        ("X-TC-Action", request.action.to_string()),
        ("X-TC-Timestamp", request.timestamp.to_string()),
        ("X-TC-Version", request.version.to_string()),
        ("X-TC-Region", request.region.to_string()),
        ("X-TC-Language", "en-US".to_string()),
        ("X-TC-RequestClient", request_client()),
    ];
    if let Some(token) = &credentials.token {
        headers.push(("X-TC-Token", token.expose().to_string()));
    }
    headers
}

/// `lighthouse-share_<version>`: the header allows only `[0-9a-zA-Z-_,;.]`.
pub fn request_client() -> String {
    format!("lighthouse-share_{}", env!("CARGO_PKG_VERSION"))
}

/// `YYYY-MM-DD` of a unix timestamp, in UTC. Plain arithmetic (the civil calendar from days,
/// after Howard Hinnant), so that no timestamp, not even one from a request the simulator
/// checks, can make it panic; the sender refuses a clock outside 1970–9999 before this.
fn utc_date(timestamp: u64) -> String {
    let days = timestamp / 86_400 + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Vectors {
        vectors: Vec<Vector>,
    }

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        secret_id: String,
        secret_key: String,
        timestamp: u64,
        service: String,
        host: String,
        content_type: String,
        body: String,
        signed_headers: String,
        action: Option<String>,
        date: String,
        hashed_payload: String,
        canonical_request: String,
        hashed_canonical_request: String,
        string_to_sign: String,
        signature: String,
        authorization: String,
    }

    fn vectors() -> Vec<Vector> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tc3.json");
        let text = std::fs::read_to_string(path).expect("tests/data/tc3.json is in the repo");
        serde_json::from_str::<Vectors>(&text)
            .expect("the vectors parse")
            .vectors
    }

    #[test]
    fn every_vector_reproduces_every_intermediate_value() {
        let vectors = vectors();
        assert_eq!(vectors.len(), 6, "all six published vectors are checked");
        for v in vectors {
            let got = tc3(&Tc3Input {
                secret_key: &v.secret_key,
                timestamp: v.timestamp,
                service: &v.service,
                host: &v.host,
                content_type: &v.content_type,
                signed_action: v.action.as_deref(),
                body: v.body.as_bytes(),
            });
            let name = &v.name;
            assert_eq!(got.date, v.date, "{name}: date");
            assert_eq!(
                got.signed_headers, v.signed_headers,
                "{name}: signed headers"
            );
            assert_eq!(
                got.hashed_payload, v.hashed_payload,
                "{name}: hashed payload"
            );
            assert_eq!(
                got.canonical_request, v.canonical_request,
                "{name}: canonical request"
            );
            assert_eq!(
                got.hashed_canonical_request, v.hashed_canonical_request,
                "{name}: hashed canonical request"
            );
            assert_eq!(
                got.string_to_sign, v.string_to_sign,
                "{name}: string to sign"
            );
            assert_eq!(got.signature, v.signature, "{name}: signature");
            assert_eq!(
                got.authorization(&v.secret_id),
                v.authorization,
                "{name}: authorization"
            );
        }
    }

    #[test]
    fn headers_carry_the_token_only_when_there_is_one() {
        let mut credentials = Credentials::new("AKIDfake", "fake-key", None);
        let request = Request {
            host: "lighthouse.ap-guangzhou.tencentcloudapi.com",
            action: "ModifyImageSharePermission",
            version: "2020-03-24",
            region: "ap-guangzhou",
            body: b"{}",
            timestamp: 1_700_000_000,
        };
        let without_token = headers(&credentials, &request);
        assert!(!without_token.iter().any(|(name, _)| *name == "X-TC-Token"));
        credentials = Credentials::new("AKIDfake", "fake-key", Some("fake-token".into()));
        let with_token = headers(&credentials, &request);
        assert!(with_token.contains(&("X-TC-Token", "fake-token".to_string())));
        assert!(
            request_client()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_,;.".contains(&b))
        );
    }

    #[test]
    fn the_date_is_the_calendar_date_and_never_panics() {
        use std::time::{Duration, UNIX_EPOCH};
        let mut timestamp = 0u64;
        while timestamp < 253_402_300_800 {
            let expected =
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(timestamp))
                    .to_string();
            assert_eq!(utc_date(timestamp), expected[..10], "{timestamp}");
            timestamp += 7_777_777;
        }
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(253_402_300_800), "10000-01-01");
        utc_date(u64::MAX);
    }
}
