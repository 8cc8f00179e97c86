//! Credentials: where they come from (the chain of SPEC §6, as Tencent Cloud's own tools
//! keep them), and types that never show a secret.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Deserialize;

use std::fmt;

/// A secret string: `Debug` prints it redacted, so it cannot reach a log line
/// or an error message by accident. Only [`Secret::expose`] gives the value, for signing.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
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

/// Where the run's credentials come from. The client asks it before every attempt, so that
/// credentials that expire (a CVM role's) are refreshed in the middle of a run.
#[derive(Clone, Debug)]
pub enum Provider {
    Static {
        credentials: Credentials,
        /// Where they were found, for the log line that names the source.
        source: String,
    },
    CvmRole(Arc<CvmRole>),
}

impl Provider {
    /// The credentials to sign the next request with.
    pub async fn current(&self) -> anyhow::Result<Credentials> {
        match self {
            Self::Static { credentials, .. } => Ok(credentials.clone()),
            Self::CvmRole(role) => role.current().await,
        }
    }

    /// Where the credentials come from, for the log: never the secret.
    pub fn source(&self) -> String {
        match self {
            Self::Static { source, .. } => source.clone(),
            Self::CvmRole(role) => format!("the CAM role `{}` of this CVM instance", role.name),
        }
    }
}

/// The config file's `[credentials]` table (SPEC §7).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCredentials {
    pub secret_id: Option<String>,
    pub secret_key: Option<Secret>,
    pub token: Option<Secret>,
}

/// No credentials, or a place that holds broken ones: exit 2, with a message naming the
/// places and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CredentialsError(pub String);

/// The environment, as a function, so that tests hand in their own.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The metadata service of a Tencent Cloud instance.
pub const METADATA_URL: &str = "http://metadata.tencentyun.com/latest/meta-data/";
/// Refresh role credentials when fewer than this many seconds remain, as the SDKs do.
const REFRESH_BEFORE_SECS: u64 = 300;
/// A machine that is not a CVM must not be slowed down by asking.
const METADATA_TIMEOUT: Duration = Duration::from_secs(1);

/// The places credentials are looked for, in order, for the message when none is found.
const PLACES: &str = "1. a profile named by --profile (or LIGHTHOUSE_SHARE_PROFILE, or `profile` in the config file): its section of the credentials file (4), else its tccli file (5)\n  \
  2. TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY in the environment (with TENCENTCLOUD_SESSION_TOKEN or TENCENTCLOUD_TOKEN for temporary ones)\n  \
  3. the config file's [credentials] table (secret_id, secret_key, token)\n  \
  4. TENCENTCLOUD_CREDENTIALS_FILE, else ~/.tencentcloud/credentials (INI, section [PROFILE], keys secret_id, secret_key, token)\n  \
  5. tccli's ~/.tccli/PROFILE.credential (JSON secretId, secretKey, token)\n  \
  6. the CAM role of this CVM instance, from the metadata service";

/// The profile whose credentials to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    /// Named by the user (`--profile`, its variable, the config file): it then wins over
    /// credentials in the environment, as a named profile does in aws-cli, and one that does
    /// not exist is an error rather than a silent fall-through.
    pub named: bool,
}

/// The files that hold profiles: the INI credentials file and tccli's folder.
struct ProfileFiles {
    ini: Option<PathBuf>,
    /// The INI file was named by `TENCENTCLOUD_CREDENTIALS_FILE`: it must then be there
    /// and readable, rather than be passed over for the next place (another account's
    /// keys, perhaps).
    ini_named: bool,
    tccli_dir: Option<PathBuf>,
}

impl ProfileFiles {
    fn new(env: Env<'_>) -> Self {
        let var = |key: &str| env(key).filter(|value| !value.is_empty());
        let home = var("HOME").map(PathBuf::from);
        let named = var("TENCENTCLOUD_CREDENTIALS_FILE").map(PathBuf::from);
        Self {
            ini_named: named.is_some(),
            ini: named.or_else(|| home.as_ref().map(|h| h.join(".tencentcloud/credentials"))),
            tccli_dir: home.map(|h| h.join(".tccli")),
        }
    }

    /// The INI file to read: `None` if it is not there and was not named; an error naming
    /// `TENCENTCLOUD_CREDENTIALS_FILE` if it was named and cannot be read.
    fn ini(&self) -> Result<Option<&Path>, CredentialsError> {
        let Some(path) = self.ini.as_deref() else {
            return Ok(None);
        };
        match (std::fs::File::open(path), self.ini_named) {
            (Ok(_), _) => Ok(Some(path)),
            (Err(e), true) => Err(CredentialsError(format!(
                "TENCENTCLOUD_CREDENTIALS_FILE names {}, which cannot be read ({e}); nothing was sent. Fix the path, or unset the variable to use the usual places",
                crate::text::path(path)
            ))),
            (Err(_), false) => Ok(None),
        }
    }

    /// The profile's credentials and where they were found: the INI section first, then
    /// tccli's file.
    fn find(
        &self,
        wanted: &Profile,
        warnings: &mut Vec<String>,
    ) -> Result<Option<(Credentials, String)>, CredentialsError> {
        let profile = wanted.name.as_str();
        let unreadable = |e: anyhow::Error| CredentialsError(format!("{e:#}"));
        if let Some(path) = self.ini()?
            && let Some(credentials) = from_ini(path, profile).map_err(unreadable)?
        {
            warnings.extend(readable_by_others(path, "secret keys"));
            return Ok(Some((
                credentials,
                format!("profile `{profile}` of {}", crate::text::path(path)),
            )));
        }
        // In the implicit chain, a file the user named is where the keys are meant to come
        // from: without the profile's section it is an error, not a reason to sign with the
        // next place's keys (another account's, perhaps). A named profile may be in tccli's
        // folder instead, and says where it looked when it is in neither.
        if self.ini_named
            && !wanted.named
            && let Some(path) = self.ini()?
        {
            return Err(CredentialsError(format!(
                "TENCENTCLOUD_CREDENTIALS_FILE names {}, which has no [{}] section with secret_id and secret_key; nothing was sent. Add the section, name another profile with --profile, or unset the variable to use the usual places",
                crate::text::path(path),
                crate::text::for_line(profile)
            )));
        }
        let tccli = self
            .tccli_dir
            .as_ref()
            .map(|dir| dir.join(format!("{profile}.credential")));
        if let Some(path) = tccli.filter(|p| p.exists())
            && let Some(credentials) = from_tccli(&path).map_err(unreadable)?
        {
            warnings.extend(readable_by_others(&path, "a secret key"));
            return Ok(Some((credentials, crate::text::path(&path).to_string())));
        }
        Ok(None)
    }

    /// Every profile these files hold, sorted: the INI sections and tccli's profiles.
    fn names(&self) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        if let Some(text) = self
            .ini
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            names.extend(text.lines().filter_map(|line| {
                let name = line.trim().strip_prefix('[')?.strip_suffix(']')?;
                Some(name.trim().to_string())
            }));
        }
        if let Some(entries) = self
            .tccli_dir
            .as_ref()
            .and_then(|d| std::fs::read_dir(d).ok())
        {
            names.extend(entries.filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                Some(name.strip_suffix(".credential")?.to_string())
            }));
        }
        names.into_iter().collect()
    }

    /// A named profile that is nowhere: the places looked at and the profiles found there.
    fn missing(&self, profile: &str) -> CredentialsError {
        let profile = crate::text::for_line(profile);
        let places: Vec<String> = [
            self.ini.as_ref().map(|p| crate::text::path(p).to_string()),
            self.tccli_dir
                .as_ref()
                .map(|d| format!("{}/{profile}.credential", crate::text::path(d))),
        ]
        .into_iter()
        .flatten()
        .collect();
        let found = match self.names() {
            names if names.is_empty() => "no profiles were found there".to_string(),
            // Names read from files: shown with any control character escaped.
            names => format!(
                "the profiles found: {}",
                names
                    .iter()
                    .map(|n| crate::text::for_line(n).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        CredentialsError(format!(
            "the profile `{profile}` does not exist (looked in {}); {found}. Give one of them with --profile, or add [{profile}] with secret_id and secret_key to the credentials file",
            places.join(" and ")
        ))
    }
}

/// The error when no place holds credentials.
pub fn not_found(profile: &Profile) -> CredentialsError {
    CredentialsError(format!(
        "no credentials found (profile `{}`); they are looked for in this order:\n  {PLACES}",
        profile.name
    ))
}

/// Finds credentials along the chain of SPEC §6; the first place that has them wins.
/// `None`: no place has any (a dry run goes on without; a run stops with [`not_found`]).
/// Warnings (a file of keys that others can read) are added to `warnings`.
pub async fn find(
    env: Env<'_>,
    file: &FileCredentials,
    profile: &Profile,
    warnings: &mut Vec<String>,
) -> Result<Option<Provider>, CredentialsError> {
    let found = |credentials, source: String| {
        Ok(Some(Provider::Static {
            credentials,
            source,
        }))
    };
    let files = ProfileFiles::new(env);
    if profile.named {
        return match files.find(profile, warnings)? {
            Some((credentials, source)) => found(credentials, source),
            None => Err(files.missing(&profile.name)),
        };
    }
    let var = |key: &str| env(key).filter(|value| !value.is_empty());
    if let (Some(id), Some(key)) = (
        var("TENCENTCLOUD_SECRET_ID"),
        var("TENCENTCLOUD_SECRET_KEY"),
    ) {
        let token = var("TENCENTCLOUD_SESSION_TOKEN").or_else(|| var("TENCENTCLOUD_TOKEN"));
        return found(
            Credentials::new(&id, &key, token.map(Secret::from)),
            "the environment (TENCENTCLOUD_SECRET_ID)".into(),
        );
    }
    if let (Some(id), Some(key)) = (&file.secret_id, &file.secret_key) {
        return found(
            Credentials::new(id, key.expose(), file.token.clone()),
            "the config file's [credentials]".into(),
        );
    }
    if let Some((credentials, source)) = files.find(profile, warnings)? {
        return found(credentials, source);
    }
    let metadata = var("LIGHTHOUSE_SHARE_METADATA_URL").unwrap_or_else(|| METADATA_URL.to_string());
    if let Some(role) = CvmRole::discover(&metadata).await {
        return Ok(Some(Provider::CvmRole(Arc::new(role))));
    }
    Ok(None)
}

/// A warning if `path`, which holds `what` (a secret key), can be read by group or others.
pub fn readable_by_others(path: &Path, what: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} holds {what} and can be read by group or others (mode {:o}): run `chmod 600 {}`",
            crate::text::path(path),
            mode & 0o777,
            crate::text::path(path)
        )
    })
}

/// `[PROFILE]` of an INI credentials file; `None` if the file has no such section.
fn from_ini(path: &Path, profile: &str) -> anyhow::Result<Option<Credentials>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", crate::text::path(path)))?;
    let mut section = String::new();
    let mut keys = std::collections::HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
        } else if section == profile
            && let Some((key, value)) = line.split_once('=')
        {
            keys.insert(key.trim().to_string(), value.trim().to_string());
        }
    }
    if keys.is_empty() {
        return Ok(None);
    }
    match (keys.get("secret_id"), keys.get("secret_key")) {
        (Some(id), Some(key)) => Ok(Some(Credentials::new(
            id,
            key,
            keys.get("token").cloned().map(Secret::from),
        ))),
        _ => bail!(
            "{}: section [{profile}] needs both secret_id and secret_key",
            crate::text::path(path)
        ),
    }
}

/// tccli's profile file: JSON with `secretId`, `secretKey` and `token`.
fn from_tccli(path: &Path) -> anyhow::Result<Option<Credentials>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Tccli {
        secret_id: Option<String>,
        secret_key: Option<Secret>,
        token: Option<Secret>,
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", crate::text::path(path)))?;
    let parsed: Tccli = serde_json::from_str(&text)
        .with_context(|| format!("{} is not tccli's JSON", crate::text::path(path)))?;
    Ok(
        match (
            parsed.secret_id.filter(|s| !s.is_empty()),
            parsed.secret_key,
        ) {
            (Some(id), Some(key)) if !key.expose().is_empty() => Some(Credentials::new(
                &id,
                key.expose(),
                parsed.token.filter(|t| !t.expose().is_empty()),
            )),
            _ => None,
        },
    )
}

/// Temporary credentials of the instance's CAM role, refreshed before they expire.
#[derive(Debug)]
pub struct CvmRole {
    name: String,
    base_url: String,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<(Credentials, u64)>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleAnswer {
    tmp_secret_id: String,
    tmp_secret_key: Secret,
    token: Secret,
    expired_time: u64,
    code: String,
}

impl CvmRole {
    /// Asks the metadata service for the instance's role; `None` off a CVM or without a role.
    async fn discover(base_url: &str) -> Option<Self> {
        let http = reqwest::Client::builder()
            .timeout(METADATA_TIMEOUT)
            .no_proxy()
            .build()
            .ok()?;
        let base_url = format!("{}/", base_url.trim_end_matches('/'));
        let url = format!("{base_url}cam/security-credentials/");
        let response = http.get(&url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let text = response.text().await.ok()?;
        let name = text.lines().next()?.trim().to_string();
        if name.is_empty() {
            return None;
        }
        let role = Self {
            name,
            base_url,
            http,
            cached: tokio::sync::Mutex::new(None),
        };
        role.current().await.ok()?;
        Some(role)
    }

    async fn current(&self) -> anyhow::Result<Credentials> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        if let Some((credentials, expires)) = cached.as_ref()
            && expires.saturating_sub(now) > REFRESH_BEFORE_SECS
        {
            return Ok(credentials.clone());
        }
        let url = format!("{}cam/security-credentials/{}", self.base_url, self.name);
        let answer: RoleAnswer = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("cannot get the credentials of CAM role `{}`", self.name))?
            .json()
            .await
            .with_context(|| {
                format!(
                    "the metadata service's answer for role `{}` is not its JSON",
                    self.name
                )
            })?;
        if answer.code != "Success" {
            bail!(
                "the metadata service answered {} for role `{}`",
                answer.code,
                self.name
            );
        }
        let credentials = Credentials::new(
            &answer.tmp_secret_id,
            answer.tmp_secret_key.expose(),
            Some(answer.token),
        );
        tracing::debug!(secret_id = %credentials.secret_id, expires = answer.expired_time, "CAM role credentials refreshed");
        *cached = Some((credentials.clone(), answer.expired_time));
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let credentials = Credentials::new(
            "AKIDfake",
            "fake-secret-key",
            Some(Secret::from("fake-token")),
        );
        let shown = format!(
            "{credentials:?} {:?}",
            Provider::Static {
                credentials: credentials.clone(),
                source: "x".into()
            }
        );
        assert!(
            !shown.contains("fake-secret-key") && !shown.contains("fake-token"),
            "{shown}"
        );
        assert!(shown.contains("AKIDfake"), "the id is not a secret");
        let section: FileCredentials =
            toml::from_str("secret_id = 'a'\nsecret_key = 'fake-secret-key'").unwrap();
        assert!(!format!("{section:?}").contains("fake-secret-key"));
    }

    #[test]
    fn ini_sections_are_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "; comment\n[default]\nsecret_id = AKIDa\nsecret_key = ka\n\n[prod]\nsecret_id=AKIDb\nsecret_key=kb\ntoken=tb\n").unwrap();
        assert_eq!(
            from_ini(&path, "default").unwrap().unwrap().secret_id,
            "AKIDa"
        );
        let prod = from_ini(&path, "prod").unwrap().unwrap();
        assert_eq!(
            (prod.secret_id.as_str(), prod.token.unwrap().expose()),
            ("AKIDb", "tb")
        );
        assert!(from_ini(&path, "staging").unwrap().is_none());
    }
}
