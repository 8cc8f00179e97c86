//! Checks a request the way the service does, in the service's order: action and version,
//! then the signature, then region and body. Each failure is the service's error code.

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::describe::{self, Query};
use crate::action::{self, Permission};
use crate::credentials::Credentials;
use crate::sign::{self, Tc3Input};

/// The service's answer to a request it refused or could not carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The actions the simulator serves: each has its own parameters and its own rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    ModifyImageSharePermission,
    DescribeBlueprints,
}

impl Action {
    pub fn parse(name: &str) -> Option<Self> {
        [Self::ModifyImageSharePermission, Self::DescribeBlueprints]
            .into_iter()
            .find(|action| action.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::ModifyImageSharePermission => action::ACTION,
            Self::DescribeBlueprints => describe::ACTION,
        }
    }

    /// The body parameters the action knows; any other is `UnknownParameter`.
    fn parameters(self) -> &'static [&'static str] {
        match self {
            Self::ModifyImageSharePermission => &["ImageId", "Permission"],
            Self::DescribeBlueprints => describe::PARAMETERS,
        }
    }
}

/// What a checked request asks for.
#[derive(Debug)]
pub enum Call {
    Share {
        image_id: String,
        permission: Permission,
    },
    Describe(Query),
}

/// A request that passed every check.
#[derive(Debug)]
pub struct Checked {
    pub secret_id: String,
    pub region: &'static str,
    pub call: Call,
}

/// How far a request's timestamp may be from the server's clock.
const MAX_SKEW_SECS: u64 = 300;

pub fn check(
    headers: &HeaderMap,
    body: &[u8],
    accounts: &[Credentials],
    now_unix: u64,
) -> Result<Checked, Refusal> {
    let name = required(headers, "x-tc-action")?;
    let action = Action::parse(name).ok_or_else(|| {
        Refusal::new(
            "InvalidAction",
            format!("The action `{name}` is not supported."),
        )
    })?;
    let version = required(headers, "x-tc-version")?;
    if version != action::VERSION {
        return Err(Refusal::new(
            "NoSuchVersion",
            format!("The version `{version}` of this action does not exist."),
        ));
    }
    let secret_id = check_signature(headers, body, accounts, now_unix)?;
    let region = required(headers, "x-tc-region")?;
    let region = action::supported_region(region).ok_or_else(|| {
        Refusal::new(
            "UnsupportedRegion",
            format!("The region `{region}` is not supported by this action."),
        )
    })?;
    let parameters = parameters(headers, body, action.parameters())?;
    let call = match action {
        Action::ModifyImageSharePermission => check_share(&parameters)?,
        Action::DescribeBlueprints => Call::Describe(Query::parse(&parameters)?),
    };
    Ok(Checked {
        secret_id,
        region,
        call,
    })
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn required<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, Refusal> {
    header(headers, name).ok_or_else(|| {
        Refusal::new(
            "MissingParameter",
            format!("The request is missing the required header `{name}`."),
        )
    })
}

/// Verifies the TC3 signature; returns the secret id it was made with.
fn check_signature(
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
    if let Some(token) = &account.token
        && header(headers, "x-tc-token") != Some(token.expose())
    {
        return Err(Refusal::new(
            "AuthFailure.TokenFailure",
            "The session token is missing or does not belong to these credentials.",
        ));
    }
    Ok(account.secret_id.clone())
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

/// The body's parameters, once it is a JSON object naming only parameters in `known`.
fn parameters(
    headers: &HeaderMap,
    body: &[u8],
    known: &[&str],
) -> Result<Map<String, Value>, Refusal> {
    let content_type = header(headers, "content-type").unwrap_or_default();
    if !content_type.starts_with(action::CONTENT_TYPE) {
        return Err(Refusal::new(
            "InvalidParameter",
            format!("Content-Type `{content_type}` is not supported; send application/json."),
        ));
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(Refusal::new(
            "InvalidParameter",
            "The request body is not a JSON object.",
        ));
    };
    if let Some(unknown) = fields.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(Refusal::new(
            "UnknownParameter",
            format!("The parameter `{unknown}` is not recognized."),
        ));
    }
    Ok(fields)
}

fn check_share(fields: &Map<String, Value>) -> Result<Call, Refusal> {
    let field = |name: &str| match fields.get(name) {
        None => Err(Refusal::new(
            "MissingParameter",
            format!("The request is missing the required parameter `{name}`."),
        )),
        Some(Value::String(value)) => Ok(value.clone()),
        Some(_) => Err(Refusal::new(
            "InvalidParameter",
            format!("The parameter `{name}` must be a string."),
        )),
    };
    let image_id = field("ImageId")?;
    if !action::is_image_id(&image_id) {
        return Err(Refusal::new(
            "InvalidParameterValue.InvalidImageIdMalformed",
            format!("The image ID `{image_id}` is malformed."),
        ));
    }
    let permission = field("Permission")?;
    let permission = match permission.as_str() {
        "SHARE" => Permission::Share,
        "CANCEL" => Permission::Cancel,
        _ => {
            return Err(Refusal::new(
                "InvalidParameterValue",
                format!(
                    "The value `{permission}` of parameter `Permission` is invalid: SHARE or CANCEL."
                ),
            ));
        }
    };
    Ok(Call::Share {
        image_id,
        permission,
    })
}
