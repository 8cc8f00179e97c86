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

/// The places credentials are looked for, in order, for the message when none is found.
const PLACES: &str = "1. TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY in the environment\n\
  2. the config file's [credentials] table (secret_id, secret_key)\n\
  3. TENCENTCLOUD_CREDENTIALS_FILE, else ~/.tencentcloud/credentials (INI, section [PROFILE])\n\
  4. tccli's ~/.tccli/PROFILE.credential\n\
  5. the CAM role of this CVM instance, from the metadata service";

/// Finds credentials along the chain of SPEC §6; the first place that has them wins.
pub fn find(
    env: &dyn Fn(&str) -> Option<String>,
    file: &crate::config::CredentialsSection,
    profile: &str,
) -> Result<Provider, crate::config::ConfigError> {
    if let Some(provider) = Provider::from_env(env) {
        return Ok(provider);
    }
    if let (Some(id), Some(key)) = (&file.secret_id, &file.secret_key) {
        return Ok(Provider::Static {
            credentials: Credentials::new(id, key, file.token.clone().map(Secret::from)),
            source: "the config file's [credentials]".to_string(),
        });
    }
    Err(crate::config::ConfigError(format!(
        "no credentials found (profile `{profile}`); they are looked for in:\n  {PLACES}"
    )))
}
