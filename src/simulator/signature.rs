//! The TC3-HMAC-SHA256 signature, checked as the service checks it: the Authorization header's
//! form, the timestamp's distance from the server's clock, the scope and service, the signed
//! headers (both forms), the secret id, the signature itself and a session token.

use axum::http::HeaderMap;

use super::params::{header, required};
use super::refusal::Refusal;
use crate::action;
use crate::credentials::Credentials;
use crate::sign::{self, Tc3Input};

/// How far a request's timestamp may be from the server's clock.
const MAX_SKEW_SECS: u64 = 300;

/// Verifies the TC3 signature; returns the secret id it was made with.
pub fn check_signature(
    headers: &HeaderMap,
    body: &[u8],
    accounts: &[Credentials],
    now_unix: u64,
) -> Result<String, Refusal> {
    let invalid = |why: &str| Refusal::new("AuthFailure.InvalidAuthorization", why.to_string());
    let authorization = header(headers, "authorization")
        .ok_or_else(|| invalid("The Authorization header is missing."))?;
    let parts = Authorization::parse(authorization)
        .ok_or_else(|| invalid("The Authorization header is malformed."))?;
    let timestamp = timestamp(headers, now_unix)?;
    let signed_action = match parts.signed_headers {
        sign::SIGNED_HEADERS => None,
        sign::SIGNED_HEADERS_WITH_ACTION => Some(required(headers, "x-tc-action")?),
        _ => {
            return Err(invalid(
                "SignedHeaders must be content-type;host[;x-tc-action].",
            ));
        }
    };
    let [date, service, "tc3_request"] = parts.scope[..] else {
        return Err(invalid(
            "The credential scope must be DATE/SERVICE/tc3_request.",
        ));
    };
    if service != action::SERVICE {
        return Err(invalid("The credential scope names another service."));
    }
    let account = accounts
        .iter()
        .find(|account| account.secret_id == parts.secret_id)
        .ok_or_else(|| {
            Refusal::new(
                "AuthFailure.SecretIdNotFound",
                "The SecretId is not found, please ensure that your SecretId is correct.",
            )
        })?;
    let expected = sign::tc3(&Tc3Input {
        secret_key: account.secret_key.expose(),
        timestamp,
        service: action::SERVICE,
        host: header(headers, "host").unwrap_or_default(),
        content_type: header(headers, "content-type").unwrap_or_default(),
        signed_action,
        body,
    });
    if expected.date != date || expected.signature != parts.signature {
        return Err(Refusal::new(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is correct.",
        ));
    }
    check_token(headers, account)?;
    Ok(account.secret_id.clone())
}

/// The request's timestamp, if it is within [`MAX_SKEW_SECS`] of the server's clock.
fn timestamp(headers: &HeaderMap, now_unix: u64) -> Result<u64, Refusal> {
    let timestamp: u64 = required(headers, "x-tc-timestamp")?
        .parse()
        .map_err(|_| Refusal::new("InvalidParameter", "X-TC-Timestamp is not a number."))?;
    if timestamp.abs_diff(now_unix) > MAX_SKEW_SECS {
        return Err(Refusal::new(
            "AuthFailure.SignatureExpire",
            format!(
                "Signature expired. Timestamp: {timestamp}, server time: {now_unix}; they may differ by {MAX_SKEW_SECS} seconds at most."
            ),
        ));
    }
    Ok(timestamp)
}

/// Temporary credentials are only good with their session token.
fn check_token(headers: &HeaderMap, account: &Credentials) -> Result<(), Refusal> {
    if let Some(token) = &account.token
        && header(headers, "x-tc-token") != Some(token.expose())
    {
        return Err(Refusal::new(
            "AuthFailure.TokenFailure",
            "The session token is missing or does not belong to these credentials.",
        ));
    }
    Ok(())
}

/// The parts of `TC3-HMAC-SHA256 Credential=ID/SCOPE, SignedHeaders=..., Signature=...`.
struct Authorization<'a> {
    secret_id: &'a str,
    scope: Vec<&'a str>,
    signed_headers: &'a str,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(value: &'a str) -> Option<Self> {
        let rest = value.strip_prefix(sign::ALGORITHM)?.strip_prefix(' ')?;
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(',') {
            let (key, value) = part.trim().split_once('=')?;
            match key {
                "Credential" => credential = Some(value),
                "SignedHeaders" => signed_headers = Some(value),
                "Signature" => signature = Some(value),
                _ => return None,
            }
        }
        let (secret_id, scope) = credential?.split_once('/')?;
        Some(Self {
            secret_id,
            scope: scope.split('/').collect(),
            signed_headers: signed_headers?,
            signature: signature?,
        })
    }
}
