//! Configuration: the command line, the environment and the config file become one validated
//! [`RunConfig`] before the first request. A flag wins over the environment (clap reads the
//! `LIGHTHOUSE_SHARE_*` variables), which wins over the file, which wins over the default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::action::RateScope;
use crate::api::{Endpoint, is_loopback};
use crate::cli::{LogFormat, RunArgs};
use crate::credentials::{self, CredentialsError, Env, FileCredentials, Provider};
use crate::retry::{Backoff, Policy};
use crate::suggest;

pub const DEFAULT_ENDPOINT: &str = "https://lighthouse.{region}.tencentcloudapi.com";

/// A configuration mistake: exit 2, with a message that names the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl From<CredentialsError> for ConfigError {
    fn from(error: CredentialsError) -> Self {
        Self(error.0)
    }
}

fn error(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// Everything a run needs, validated: final once resolved.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The input file; `-` is standard input.
    pub input: PathBuf,
    pub output: PathBuf,
    /// What the run does and where its requests go.
    pub mode: Mode,
    pub rate: f64,
    pub rate_scope: RateScope,
    pub concurrency: usize,
    pub retry: Policy,
    pub timeout: Duration,
    pub resume: bool,
    pub log_format: LogFormat,
    pub quiet: bool,
    pub verbose: u8,
    /// Said once logging is set up (the config decides its format).
    pub warnings: Vec<String>,
}

/// What a run does, decided before it starts: each mode carries exactly what it needs.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `--dry-run`: check the input and print the plan; send nothing, write nothing. The
    /// endpoint names the rate buckets of the plan.
    DryRun { endpoint: Endpoint },
    /// Send to an endpoint with the credentials found for it.
    Remote {
        endpoint: Endpoint,
        credentials: Provider,
    },
    /// `--simulate`: send to an in-process simulator, with its built-in account.
    Simulator,
}

/// The config file, as TOML. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub run: RunSection,
    #[serde(default)]
    pub credentials: FileCredentials,
    #[serde(default)]
    pub retry: RetrySection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    pub output: Option<PathBuf>,
    pub profile: Option<String>,
    pub endpoint: Option<String>,
    pub rate: Option<f64>,
    pub rate_scope: Option<RateScope>,
    pub concurrency: Option<usize>,
    pub max_attempts: Option<u32>,
    pub timeout: Option<f64>,
    pub resume: Option<bool>,
    pub dry_run: Option<bool>,
    pub simulate: Option<bool>,
    pub log_format: Option<LogFormat>,
    pub quiet: Option<bool>,
    pub verbose: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySection {
    pub base_ms: Option<u64>,
    pub max_ms: Option<u64>,
}

/// The keys the file may hold, per table, for "did you mean" on a typo.
const KNOWN_KEYS: [(&str, &[&str]); 3] = [
    (
        "run",
        &[
            "output",
            "profile",
            "endpoint",
            "rate",
            "rate_scope",
            "concurrency",
            "max_attempts",
            "timeout",
            "resume",
            "dry_run",
            "simulate",
            "log_format",
            "quiet",
            "verbose",
        ],
    ),
    ("credentials", &["secret_id", "secret_key", "token"]),
    ("retry", &["base_ms", "max_ms"]),
];

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            error(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))
        })?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| error(format!("{} is not valid TOML: {e}", path.display())))?;
        check_keys(path, &table)?;
        toml::from_str(&text).map_err(|e| error(format!("{}: {e}", path.display())))
    }
}

/// Names an unknown table or key, and the known one it is nearest to.
fn check_keys(path: &Path, table: &toml::Table) -> Result<(), ConfigError> {
    let tables: Vec<&str> = KNOWN_KEYS.iter().map(|(name, _)| *name).collect();
    let unknown = |what: &str, name: &str, known: &[&str]| {
        let hint = match suggest::nearest(name, known) {
            Some(near) => format!("did you mean `{near}`?"),
            None => format!("known: {}", known.join(", ")),
        };
        error(format!(
            "{}: unknown {what} `{name}`: {hint}",
            path.display()
        ))
    };
    for (name, value) in table {
        let Some((_, keys)) = KNOWN_KEYS.iter().find(|(table, _)| table == name) else {
            return Err(unknown("table", name, &tables));
        };
        let Some(inner) = value.as_table() else {
            return Err(error(format!(
                "{}: `{name}` must be a table ([{name}])",
                path.display()
            )));
        };
        if let Some(key) = inner.keys().find(|key| !keys.contains(&key.as_str())) {
            return Err(unknown(&format!("key in [{name}]"), key, keys));
        }
    }
    Ok(())
}

impl RunConfig {
    /// Resolves the arguments, the environment (through `env`) and the config file.
    pub async fn resolve(args: RunArgs, env: Env<'_>) -> Result<Self, ConfigError> {
        let (file, warnings) = match &args.config {
            Some(path) => {
                let file = FileConfig::load(path)?;
                let exposed = file
                    .credentials
                    .secret_key
                    .as_ref()
                    .and_then(|_| readable_by_others(path));
                (file, exposed.into_iter().collect())
            }
            None => (FileConfig::default(), Vec::new()),
        };
        let run = &file.run;
        let switch = |on: bool, off: bool, name: &str, from_file: Option<bool>| {
            switch(on, off, env, name, from_file)
        };
        let simulate = switch(args.simulate, args.no_simulate, "SIMULATE", run.simulate)?;
        let dry_run = switch(args.dry_run, args.no_dry_run, "DRY_RUN", run.dry_run)?;
        let resume = switch(args.resume, args.no_resume, "RESUME", run.resume)?;
        let quiet = switch(args.quiet, args.no_quiet, "QUIET", run.quiet)?;
        let endpoint = Endpoint::new(
            args.endpoint
                .as_deref()
                .or(run.endpoint.as_deref())
                .unwrap_or(DEFAULT_ENDPOINT),
        );
        if !simulate {
            check_endpoint(&endpoint)?;
        }
        let rate_scope =
            args.rate_scope
                .or(run.rate_scope)
                .unwrap_or(if endpoint.has_region() || simulate {
                    RateScope::Region
                } else {
                    RateScope::Endpoint
                });
        let rate = args.rate.or(run.rate).unwrap_or(20.0);
        let concurrency = args.concurrency.or(run.concurrency).unwrap_or(32);
        let max_attempts = args.max_attempts.or(run.max_attempts).unwrap_or(8);
        let timeout = args.timeout.or(run.timeout).unwrap_or(10.0);
        let backoff = Backoff {
            base: Duration::from_millis(file.retry.base_ms.unwrap_or(500)),
            max: Duration::from_millis(file.retry.max_ms.unwrap_or(20_000)),
        };
        check_numbers(rate, concurrency, max_attempts, timeout, backoff)?;
        let output = args
            .output
            .or(run.output.clone())
            .unwrap_or_else(|| default_output(&args.input));
        let profile = args
            .profile
            .or(run.profile.clone())
            .unwrap_or_else(|| "default".into());
        let mode = match (dry_run, simulate) {
            (true, _) => Mode::DryRun { endpoint },
            (false, true) => Mode::Simulator,
            (false, false) => Mode::Remote {
                credentials: credentials::find(env, &file.credentials, &profile).await?,
                endpoint,
            },
        };
        Ok(Self {
            input: args.input,
            output,
            mode,
            rate,
            rate_scope,
            concurrency,
            retry: Policy {
                max_attempts,
                backoff,
                max_throttled: Duration::from_secs(300),
            },
            timeout: Duration::from_secs_f64(timeout),
            resume,
            log_format: args
                .log_format
                .or(run.log_format)
                .unwrap_or(LogFormat::Text),
            quiet,
            verbose: if args.verbose > 0 {
                args.verbose
            } else {
                run.verbose.unwrap_or(0)
            },
            warnings,
        })
    }
}

/// An on/off option: `--NAME` or `--no-NAME` on the command line wins, then
/// `LIGHTHOUSE_SHARE_NAME` in the environment, then the config file, then off.
fn switch(
    on: bool,
    off: bool,
    env: Env<'_>,
    name: &str,
    from_file: Option<bool>,
) -> Result<bool, ConfigError> {
    if on || off {
        // clap lets the later of the two win, so only one can be set here.
        return Ok(on);
    }
    let key = format!("LIGHTHOUSE_SHARE_{name}");
    match env(&key).as_deref().map(str::trim) {
        None | Some("") => Ok(from_file.unwrap_or(false)),
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(error(format!(
                "{key}={value}: give true or false (or 1 / 0, yes / no, on / off)"
            ))),
        },
    }
}

/// Numbers a run can work with: no zero, no negative, nothing so large a `Duration` cannot
/// hold it.
fn check_numbers(
    rate: f64,
    concurrency: usize,
    max_attempts: u32,
    timeout: f64,
    backoff: Backoff,
) -> Result<(), ConfigError> {
    if !(rate.is_finite() && rate >= 0.001) {
        return Err(error(format!(
            "--rate {rate}: give the most requests per second, at least 0.001, such as 20"
        )));
    }
    if concurrency == 0 {
        return Err(error("--concurrency 0: give at least 1"));
    }
    if max_attempts == 0 {
        return Err(error(
            "--max-attempts 0: give at least 1 (the first attempt counts)",
        ));
    }
    if !(timeout.is_finite() && timeout > 0.0 && timeout <= 86_400.0) {
        return Err(error(format!(
            "--timeout {timeout}: give a number of seconds above 0 and at most 86400, such as 10"
        )));
    }
    if backoff.base > backoff.max {
        return Err(error(
            "[retry] base_ms is larger than max_ms: make base_ms the smaller",
        ));
    }
    Ok(())
}

/// A warning if a file holding a secret key can be read by group or others.
fn readable_by_others(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} holds a secret key and can be read by others (mode {:o}): run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

/// `INPUT` with its extension replaced by `.results.csv`; for standard input,
/// `stdin.results.csv`.
fn default_output(input: &Path) -> PathBuf {
    if input == Path::new("-") {
        return PathBuf::from("stdin.results.csv");
    }
    input.with_extension("results.csv")
}

/// Only `https://`, or `http://` to a loopback host: nothing signed crosses a network in clear.
fn check_endpoint(endpoint: &Endpoint) -> Result<(), ConfigError> {
    let example = endpoint.url("ap-guangzhou");
    let url = reqwest::Url::parse(&example).map_err(|e| {
        error(format!(
            "--endpoint {}: not a URL ({e}); give one such as {DEFAULT_ENDPOINT}",
            endpoint.template()
        ))
    })?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url.host()) => Ok(()),
        "http" => Err(error(format!(
            "--endpoint {}: plain http:// is refused for a host that is not loopback, since the request would cross the network unencrypted; use https://",
            endpoint.template()
        ))),
        scheme => Err(error(format!(
            "--endpoint {}: the scheme `{scheme}` is not supported; use https://",
            endpoint.template()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_loads_and_names_every_key() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"));
        FileConfig::load(path).expect("config.example.toml is valid");
        let text = std::fs::read_to_string(path).unwrap();
        for (table, keys) in KNOWN_KEYS {
            assert!(text.contains(&format!("[{table}]")), "[{table}]");
            for key in keys {
                assert!(
                    text.contains(&format!("{key} = ")),
                    "{key} is in the example"
                );
            }
        }
    }

    #[test]
    fn an_unknown_key_is_named_with_the_nearest_known_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[run]\nconcurency = 4\n").unwrap();
        let error = FileConfig::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("`concurency`") && error.contains("did you mean `concurrency`?"),
            "{error}"
        );
        std::fs::write(&path, "[retries]\nbase_ms = 4\n").unwrap();
        let error = FileConfig::load(&path).unwrap_err().to_string();
        assert!(error.contains("did you mean `retry`?"), "{error}");
    }

    #[test]
    fn numbers_that_cannot_work_are_refused_with_the_fix() {
        let backoff = Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(20),
        };
        assert!(check_numbers(20.0, 32, 8, 10.0, backoff).is_ok());
        assert!(check_numbers(0.5, 1, 1, 0.1, backoff).is_ok());
        for (rate, concurrency, attempts, timeout, flag) in [
            (0.0, 32, 8, 10.0, "--rate"),
            (f64::NAN, 32, 8, 10.0, "--rate"),
            (1e-300, 32, 8, 10.0, "--rate"),
            (20.0, 0, 8, 10.0, "--concurrency"),
            (20.0, 32, 0, 10.0, "--max-attempts"),
            (20.0, 32, 8, -1.0, "--timeout"),
            (20.0, 32, 8, 1e300, "--timeout"),
        ] {
            let error = check_numbers(rate, concurrency, attempts, timeout, backoff).unwrap_err();
            assert!(error.to_string().starts_with(flag), "{error}");
        }
        let upside_down = Backoff {
            base: Duration::from_secs(30),
            max: Duration::from_secs(20),
        };
        assert!(check_numbers(20.0, 32, 8, 10.0, upside_down).is_err());
    }

    #[test]
    fn plain_http_is_refused_unless_the_host_is_loopback() {
        for ok in [
            "https://lighthouse.{region}.tencentcloudapi.com",
            "http://127.0.0.1:8020",
            "http://localhost:1",
            "http://[::1]:2",
        ] {
            assert!(check_endpoint(&Endpoint::new(ok)).is_ok(), "{ok}");
        }
        let error =
            check_endpoint(&Endpoint::new("http://lighthouse.tencentcloudapi.com")).unwrap_err();
        assert!(error.to_string().contains("use https://"), "{error}");
    }

    #[test]
    fn an_on_off_option_takes_the_flag_then_the_environment_then_the_file() {
        let none = |_: &str| None;
        let env_on = |key: &str| (key == "LIGHTHOUSE_SHARE_RESUME").then(|| "true".to_string());
        assert!(!switch(false, false, &none, "RESUME", None).unwrap());
        assert!(switch(false, false, &none, "RESUME", Some(true)).unwrap());
        assert!(
            !switch(false, true, &none, "RESUME", Some(true)).unwrap(),
            "--no-resume beats the file"
        );
        assert!(
            switch(false, false, &env_on, "RESUME", Some(false)).unwrap(),
            "the environment beats the file"
        );
        assert!(
            !switch(false, true, &env_on, "RESUME", None).unwrap(),
            "a flag beats the environment"
        );
        let bad = |_: &str| Some("maybe".to_string());
        let error = switch(false, false, &bad, "RESUME", None).unwrap_err();
        assert!(
            error.to_string().contains("LIGHTHOUSE_SHARE_RESUME=maybe"),
            "{error}"
        );
    }

    #[test]
    fn the_later_of_a_flag_and_its_no_form_wins() {
        use crate::cli::{Cli, Command};
        use clap::Parser;
        let parse = |args: &[&str]| match Cli::parse_from(args).command {
            Command::Run(run) => (run.resume, run.no_resume),
            Command::Simulate(_) => unreachable!("a run was parsed"),
        };
        let run = ["lighthouse-share", "run", "in.csv"];
        assert_eq!(
            parse(&[&run[..], &["--resume", "--no-resume"]].concat()),
            (false, true)
        );
        assert_eq!(
            parse(&[&run[..], &["--no-resume", "--resume"]].concat()),
            (true, false)
        );
    }
}
