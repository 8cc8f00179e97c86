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
