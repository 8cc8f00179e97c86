//! Credentials: where they come from, and a type that never shows its secret.

use std::fmt;

/// A secret string: `Debug` and `Display` print it redacted, so it cannot reach a log line
/// or an error message by accident. Only [`Secret::expose`] gives the value, for signing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

/// A key pair, with the session token of temporary credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub secret_id: String,
    pub secret_key: Secret,
    pub token: Option<Secret>,
}

impl Credentials {
    pub fn new(secret_id: &str, secret_key: &str, token: Option<Secret>) -> Self {
        Self {
            secret_id: secret_id.to_string(),
            secret_key: Secret::new(secret_key),
            token,
        }
    }
}

/// Where the run's credentials come from. The pool asks it before every attempt, so that
/// credentials that expire can be refreshed in the middle of a run.
#[derive(Clone, Debug)]
pub enum Provider {
    Static {
        credentials: Credentials,
        /// Where they were found, for the log line that names the source.
        source: String,
    },
}

impl Provider {
    /// The credentials to sign the next request with.
    pub async fn current(&self) -> anyhow::Result<Credentials> {
        match self {
            Self::Static { credentials, .. } => Ok(credentials.clone()),
        }
    }

    /// Where the credentials come from, for the log: never the secret.
    pub fn source(&self) -> &str {
        match self {
            Self::Static { source, .. } => source,
        }
    }

    /// `TENCENTCLOUD_SECRET_ID` / `TENCENTCLOUD_SECRET_KEY`, with `TENCENTCLOUD_SESSION_TOKEN`
    /// or `TENCENTCLOUD_TOKEN` for temporary credentials.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let secret_id = env("TENCENTCLOUD_SECRET_ID").filter(|v| !v.is_empty())?;
        let secret_key = env("TENCENTCLOUD_SECRET_KEY").filter(|v| !v.is_empty())?;
        let token = env("TENCENTCLOUD_SESSION_TOKEN")
            .or_else(|| env("TENCENTCLOUD_TOKEN"))
            .filter(|v| !v.is_empty())
            .map(Secret::from);
        Some(Self::Static {
            credentials: Credentials::new(&secret_id, &secret_key, token),
            source: "environment (TENCENTCLOUD_SECRET_ID)".to_string(),
        })
    }
}
