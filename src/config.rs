//! Configuration: the command line, the environment and the config file become one validated
//! [`RunConfig`] before the first request. A flag wins over the environment (the
//! `LIGHTHOUSE_SHARE_*` variables, read here rather than by clap so that a bad value is named
//! by its variable), which wins over the file, which wins over the default. Each value keeps
//! where it came from, so that a message names the flag, the variable or the file's key.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;
use serde::Deserialize;

use crate::action::RateScope;
use crate::api::{Endpoint, is_loopback};
use crate::cli::{LogFormat, RunArgs};
use crate::credentials::{self, CredentialsError, Env, FileCredentials, Profile, Provider};
use crate::engine::FailureLimit;
use crate::input::is_workbook;
use crate::results::{Destination, SIMULATOR_TARGET};
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
    /// The sheet of a workbook input; the first visible one if `None`.
    pub sheet: Option<String>,
    /// Where the results file goes.
    pub output: Destination,
    /// The record of the run, `OUTPUT.journal`: the source of truth for `--resume`.
    pub record: PathBuf,
    /// The lock a run holds, `OUTPUT.lock`.
    pub lock: PathBuf,
    /// What the run does and where its requests go.
    pub mode: Mode,
    /// What the record is bound to: `simulator`, or the endpoint template.
    pub target: String,
    pub rate: f64,
    /// `--describe-rate`: the pace of the state look-ups per bucket (their own limit).
    pub describe_rate: f64,
    pub rate_scope: RateScope,
    pub concurrency: usize,
    pub retry: Policy,
    /// `--max-failures`: the job stops once more rows than this have failed.
    pub max_failures: Option<FailureLimit>,
    pub timeout: Duration,
    pub resume: bool,
    /// `--dry-run`: everything but the writes; print the plan.
    pub dry_run: bool,
    /// Read the sharing state first (SPEC §9); off with `--no-lookup`.
    pub lookup: bool,
    pub log_format: LogFormat,
    pub quiet: bool,
    pub verbose: u8,
    /// Said once logging is set up (the config decides its format).
    pub warnings: Vec<String>,
}

/// What a run does, decided before it starts: each mode carries exactly what it needs.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `--dry-run --offline`: check the input and print the plan; no credentials, no
    /// requests, nothing written. The endpoint names the rate buckets of the plan.
    Offline { endpoint: Endpoint },
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
    pub sheet: Option<String>,
    pub profile: Option<String>,
    pub endpoint: Option<String>,
    pub rate: Option<f64>,
    pub describe_rate: Option<f64>,
    pub rate_scope: Option<RateScope>,
    pub concurrency: Option<usize>,
    pub max_attempts: Option<u32>,
    pub max_failures: Option<FailureLimit>,
    pub timeout: Option<f64>,
    pub resume: Option<bool>,
    pub dry_run: Option<bool>,
    pub offline: Option<bool>,
    pub lookup: Option<bool>,
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
            "sheet",
            "profile",
            "endpoint",
            "rate",
            "describe_rate",
            "rate_scope",
            "concurrency",
            "max_attempts",
            "max_failures",
            "timeout",
            "resume",
            "dry_run",
            "offline",
            "lookup",
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
            .map_err(|e| toml_error(path, &text, "is not valid TOML", &e))?;
        check_keys(path, &table)?;
        toml::from_str(&text)
            .map_err(|e| toml_error(path, &text, "has a value of the wrong kind", &e))
    }
}

/// A TOML error by its line and message, never the line itself: it may hold a secret key.
fn toml_error(path: &Path, text: &str, what: &str, e: &toml::de::Error) -> ConfigError {
    let before = e.span().map(|span| &text[..span.start.min(text.len())]);
    let at = before.map_or_else(String::new, |before| {
        format!(", line {}", before.matches('\n').count() + 1)
    });
    // The message may quote the value: in [credentials], a secret.
    let in_credentials = before.is_some_and(|before| {
        before
            .lines()
            .rev()
            .find(|line| line.trim_start().starts_with('['))
            .is_some_and(|table| table.trim().starts_with("[credentials]"))
    });
    let message = match in_credentials {
        true => "the value there cannot be used (not shown: [credentials] holds secrets); quote each value in full, once".to_string(),
        false => e.message().trim_end().to_string(),
    };
    error(format!("{} {what}{at}: {message}", path.display()))
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
        let config_path = args
            .config
            .clone()
            .or_else(|| env_value(env, "LIGHTHOUSE_SHARE_CONFIG").map(PathBuf::from));
        let (file, mut warnings) = match &config_path {
            Some(path) => {
                let file = FileConfig::load(path)?;
                let exposed = file
                    .credentials
                    .secret_key
                    .as_ref()
                    .and_then(|_| readable_by_others(path));
                (file, exposed.into_iter().collect::<Vec<_>>())
            }
            None => (FileConfig::default(), Vec::new()),
        };
        let run = &file.run;
        let sources = Sources {
            env,
            file: config_path.as_deref(),
        };
        let switch = |on: bool, off: bool, name: &str, from_file: Option<bool>| {
            switch(on, off, env, name, from_file.unwrap_or(false))
        };
        let simulate = switch(args.simulate, args.no_simulate, "SIMULATE", run.simulate)?;
        let dry_run = switch(args.dry_run, args.no_dry_run, "DRY_RUN", run.dry_run)?;
        let offline = switch(args.offline, args.no_offline, "OFFLINE", run.offline)?;
        let lookup = self::switch(
            args.lookup,
            args.no_lookup,
            env,
            "LOOKUP",
            run.lookup.unwrap_or(true),
        )?;
        let resume = switch(args.resume, args.no_resume, "RESUME", run.resume)?;
        let quiet = switch(args.quiet, args.no_quiet, "QUIET", run.quiet)?;
        if offline && !dry_run {
            return Err(error(
                "--offline goes with --dry-run (check the file alone): add --dry-run, or leave --offline out to run",
            ));
        }
        let endpoint = sources.pick(
            "endpoint",
            args.endpoint,
            run.endpoint.clone(),
            DEFAULT_ENDPOINT.to_string(),
            text,
        )?;
        if !simulate {
            check_endpoint(&endpoint)?;
        }
        let endpoint = Endpoint::new(&endpoint.value);
        let scope = sources.get("rate_scope", args.rate_scope, run.rate_scope, choice)?;
        let rate_scope =
            scope
                .map(|scope| scope.value)
                .unwrap_or(if endpoint.has_region() || simulate {
                    RateScope::Region
                } else {
                    RateScope::Endpoint
                });
        let numbers = Numbers {
            rate: sources.pick("rate", args.rate, run.rate, 20.0, number)?,
            describe_rate: sources.pick(
                "describe_rate",
                args.describe_rate,
                run.describe_rate,
                10.0,
                number,
            )?,
            concurrency: sources.pick(
                "concurrency",
                args.concurrency,
                run.concurrency,
                32,
                number,
            )?,
            max_attempts: sources.pick(
                "max_attempts",
                args.max_attempts,
                run.max_attempts,
                8,
                number,
            )?,
            timeout: sources.pick("timeout", args.timeout, run.timeout, 10.0, number)?,
            base_ms: sources.retry("base_ms", file.retry.base_ms, 500),
            max_ms: sources.retry("max_ms", file.retry.max_ms, 20_000),
        };
        numbers.check()?;
        let max_failures = sources
            .get("max_failures", args.max_failures, run.max_failures, number)?
            .map(|setting| setting.value);
        let sheet = sources
            .get("sheet", args.sheet, run.sheet.clone(), text)?
            .map(|setting| setting.value);
        let output = sources
            .get("output", args.output, run.output.clone(), path)?
            .map(|setting| setting.value);
        let (output, beside) = match output {
            Some(path) if path == Path::new("-") => {
                (Destination::Stdout, default_output(&args.input))
            }
            Some(path) => (Destination::File(path.clone()), path),
            None => {
                let is_stream = args.input != Path::new("-")
                    && std::fs::metadata(&args.input).is_ok_and(|m| !m.is_file() && !m.is_dir());
                if is_stream {
                    return Err(error(format!(
                        "{} is a pipe or a device, with no folder for its results beside it: give them a place with -o FILE (or -o - for standard output)",
                        args.input.display()
                    )));
                }
                let path = default_output(&args.input);
                (Destination::File(path.clone()), path)
            }
        };
        let record = with_suffix(&beside, ".journal");
        let lock = with_suffix(&beside, ".lock");
        for ours in [&beside, &record, &lock] {
            refuse_input(&args.input, ours)?;
        }
        let named = sources
            .get("profile", args.profile, run.profile.clone(), text)?
            .map(|setting| setting.value);
        let profile = profile(named, env);
        let target = match simulate {
            true => SIMULATOR_TARGET.to_string(),
            false => endpoint.template().to_string(),
        };
        let mode = match (offline, simulate) {
            (_, true) => Mode::Simulator,
            (true, false) => Mode::Offline { endpoint },
            (false, false) => Mode::Remote {
                credentials: credentials::find(env, &file.credentials, &profile)
                    .await?
                    .ok_or_else(|| credentials::not_found(&profile))?,
                endpoint,
            },
        };
        if !simulate
            && profile.named
            && env("TENCENTCLOUD_SECRET_ID").is_some_and(|id| !id.is_empty())
        {
            // Surprising to someone used to the environment winning: said even with -q.
            warnings.push(format!(
                "TENCENTCLOUD_SECRET_ID in the environment is not used: the profile `{}` was named, and a named profile wins",
                profile.name
            ));
        }
        let log_format = sources.pick(
            "log_format",
            args.log_format,
            run.log_format,
            LogFormat::Text,
            choice,
        )?;
        let verbose = verbosity(args.verbose, env, run.verbose)?;
        Ok(Self {
            input: args.input,
            sheet,
            output,
            record,
            lock,
            mode,
            target,
            rate: numbers.rate.value,
            describe_rate: numbers.describe_rate.value,
            rate_scope,
            concurrency: numbers.concurrency.value,
            retry: Policy {
                max_attempts: numbers.max_attempts.value,
                backoff: Backoff {
                    base: Duration::from_millis(numbers.base_ms.value),
                    max: Duration::from_millis(numbers.max_ms.value),
                },
                max_throttled: Duration::from_secs(300),
            },
            max_failures,
            timeout: Duration::from_secs_f64(numbers.timeout.value),
            resume,
            dry_run,
            lookup,
            log_format: log_format.value,
            quiet,
            verbose,
            warnings,
        })
    }
}

impl RunConfig {
    /// The settings in force, for `-v`: where each came from (flag, environment, file,
    /// default) is otherwise invisible.
    pub fn settings(&self) -> String {
        let mode = match &self.mode {
            Mode::Offline { endpoint } => format!("offline dry run for {}", endpoint.template()),
            Mode::Remote { endpoint, .. } if self.dry_run => {
                format!("dry run for {}", endpoint.template())
            }
            Mode::Remote { endpoint, .. } => format!("endpoint {}", endpoint.template()),
            Mode::Simulator if self.dry_run => "dry run for the in-process simulator".into(),
            Mode::Simulator => "the in-process simulator".into(),
        };
        let max_failures = self
            .max_failures
            .map_or_else(|| "off".to_string(), |limit| limit.to_string());
        format!(
            "{mode}; output {}; sheet {}; rate {}/s per {}; lookup {} at describe rate {}/s; concurrency {}; max attempts {}; backoff {}-{} ms; max failures {max_failures}; timeout {}s; resume {}; log format {}; quiet {}; verbose {}",
            self.output,
            self.sheet.as_deref().unwrap_or("the first"),
            self.rate,
            format!("{:?}", self.rate_scope).to_lowercase(),
            self.lookup,
            self.describe_rate,
            self.concurrency,
            self.retry.max_attempts,
            self.retry.backoff.base.as_millis(),
            self.retry.backoff.max.as_millis(),
            self.timeout.as_secs_f64(),
            self.resume,
            format!("{:?}", self.log_format).to_lowercase(),
            self.quiet,
            self.verbose,
        )
    }
}

/// The profile to read: named by `--profile` (or its variable) or the config file, else
/// tccli's `TCCLI_PROFILE` as the default name, else `default`; only a named one wins over
/// the environment's keys (as `AWS_PROFILE` does not, in aws-cli).
fn profile(named: Option<String>, env: Env<'_>) -> Profile {
    match named.filter(|name| !name.is_empty()) {
        Some(name) => Profile { name, named: true },
        None => Profile {
            name: env("TCCLI_PROFILE")
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "default".into()),
            named: false,
        },
    }
}

/// `-v` counted on the command line, else `LIGHTHOUSE_SHARE_VERBOSE`, else the file.
fn verbosity(flags: u8, env: Env<'_>, from_file: Option<u8>) -> Result<u8, ConfigError> {
    if flags > 0 {
        return Ok(flags);
    }
    match env("LIGHTHOUSE_SHARE_VERBOSE").as_deref().map(str::trim) {
        None | Some("") => Ok(from_file.unwrap_or(0)),
        Some(value) => value.parse().map_err(|_| {
            error(format!(
                "LIGHTHOUSE_SHARE_VERBOSE={value}: give 0, 1 (debug) or 2 (every request)"
            ))
        }),
    }
}

/// Where a setting's value came from.
#[derive(Clone, Debug)]
enum Origin {
    Flag,
    Env,
    File(PathBuf),
    Default,
}

/// A setting's value, and where it came from, to name that place in a message.
#[derive(Clone, Debug)]
struct Setting<T> {
    value: T,
    origin: Origin,
    /// The key in snake case: `max_attempts` (the flag `--max-attempts`, the variable
    /// `LIGHTHOUSE_SHARE_MAX_ATTEMPTS`).
    name: &'static str,
    /// The config file's table that holds the key.
    table: &'static str,
}

impl<T: Display> Setting<T> {
    /// The setting as the user wrote it, showing `shown` for its value:
    /// `--rate -5`, `LIGHTHOUSE_SHARE_RATE=-5`, `config.toml: [run] rate = -5`.
    fn written(&self, shown: &str) -> String {
        match &self.origin {
            Origin::Flag | Origin::Default => format!("--{} {shown}", self.name.replace('_', "-")),
            Origin::Env => format!("{}={shown}", env_key(self.name)),
            Origin::File(path) => format!(
                "{}: [{}] {} = {shown}",
                path.display(),
                self.table,
                self.name
            ),
        }
    }

    /// Refuses the value, naming where it was set and the fix.
    fn refuse(&self, fix: &str) -> ConfigError {
        error(format!("{}: {fix}", self.written(&self.value.to_string())))
    }
}

/// `LIGHTHOUSE_SHARE_MAX_ATTEMPTS` for `max_attempts`.
fn env_key(name: &str) -> String {
    format!("LIGHTHOUSE_SHARE_{}", name.to_ascii_uppercase())
}

/// A variable's value; an empty one counts as unset.
fn env_value(env: Env<'_>, key: &str) -> Option<String> {
    env(key).filter(|value| !value.trim().is_empty())
}

/// The places a setting can come from, besides its flag.
struct Sources<'a> {
    env: Env<'a>,
    /// The config file, if there is one.
    file: Option<&'a Path>,
}

impl Sources<'_> {
    /// The `[run]` setting `name`: its flag, else its variable (parsed by `parse`), else the
    /// file's value; `None` if none is given.
    fn get<T>(
        &self,
        name: &'static str,
        flag: Option<T>,
        from_file: Option<T>,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Option<Setting<T>>, ConfigError> {
        let setting = |value, origin| Setting {
            value,
            origin,
            name,
            table: "run",
        };
        if let Some(value) = flag {
            return Ok(Some(setting(value, Origin::Flag)));
        }
        let key = env_key(name);
        if let Some(text) = env_value(self.env, &key) {
            let value = parse(text.trim()).map_err(|why| error(format!("{key}={text}: {why}")))?;
            return Ok(Some(setting(value, Origin::Env)));
        }
        let file = self.file.map(Path::to_path_buf).unwrap_or_default();
        Ok(from_file.map(|value| setting(value, Origin::File(file))))
    }

    /// [`Sources::get`], with `default` when nothing is given.
    fn pick<T>(
        &self,
        name: &'static str,
        flag: Option<T>,
        from_file: Option<T>,
        default: T,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Setting<T>, ConfigError> {
        Ok(self.get(name, flag, from_file, parse)?.unwrap_or(Setting {
            value: default,
            origin: Origin::Default,
            name,
            table: "run",
        }))
    }

    /// A `[retry]` setting: the file alone sets it.
    fn retry(&self, name: &'static str, from_file: Option<u64>, default: u64) -> Setting<u64> {
        let origin = match (from_file, self.file) {
            (Some(_), Some(path)) => Origin::File(path.to_path_buf()),
            _ => Origin::Default,
        };
        Setting {
            value: from_file.unwrap_or(default),
            origin,
            name,
            table: "retry",
        }
    }
}

fn number<T: FromStr>(text: &str) -> Result<T, String>
where
    T::Err: Display,
{
    text.parse()
        .map_err(|e| format!("not a number of the kind expected ({e})"))
}

fn choice<T: ValueEnum>(text: &str) -> Result<T, String> {
    T::from_str(text, true).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        format!("give one of {}", names.join(", "))
    })
}

fn text(text: &str) -> Result<String, String> {
    Ok(text.to_string())
}

fn path(text: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(text))
}

/// An on/off option: `--NAME` or `--no-NAME` on the command line wins, then
/// `LIGHTHOUSE_SHARE_NAME` in the environment, then `otherwise` (the config file's value, else
/// the default).
fn switch(
    on: bool,
    off: bool,
    env: Env<'_>,
    name: &str,
    otherwise: bool,
) -> Result<bool, ConfigError> {
    if on || off {
        // clap lets the later of the two win, so only one can be set here.
        return Ok(on);
    }
    let key = format!("LIGHTHOUSE_SHARE_{name}");
    match env(&key).as_deref().map(str::trim) {
        None | Some("") => Ok(otherwise),
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(error(format!(
                "{key}={value}: give true or false (or 1 / 0, yes / no, on / off)"
            ))),
        },
    }
}

/// The numbers of a run, each with where it was set.
struct Numbers {
    rate: Setting<f64>,
    describe_rate: Setting<f64>,
    concurrency: Setting<usize>,
    max_attempts: Setting<u32>,
    timeout: Setting<f64>,
    base_ms: Setting<u64>,
    max_ms: Setting<u64>,
}

/// The longest wait between attempts: a longer one looks like a hang.
const MAX_BACKOFF_MS: u64 = 600_000;

impl Numbers {
    /// Numbers a run can work with: no zero, no negative, no wait that looks like a hang,
    /// nothing so large a `Duration` cannot hold it.
    fn check(&self) -> Result<(), ConfigError> {
        for (rate, example) in [(&self.rate, 20), (&self.describe_rate, 10)] {
            if !(rate.value.is_finite() && rate.value >= 0.001) {
                return Err(rate.refuse(&format!(
                    "give the most requests per second, at least 0.001, such as {example}"
                )));
            }
        }
        if self.concurrency.value == 0 {
            return Err(self.concurrency.refuse("give at least 1"));
        }
        if self.max_attempts.value == 0 {
            return Err(self
                .max_attempts
                .refuse("give at least 1 (the first attempt counts)"));
        }
        let timeout = self.timeout.value;
        if !(timeout.is_finite() && timeout > 0.0 && timeout <= 86_400.0) {
            return Err(self
                .timeout
                .refuse("give a number of seconds above 0 and at most 86400, such as 10"));
        }
        for wait in [&self.base_ms, &self.max_ms] {
            if wait.value > MAX_BACKOFF_MS {
                return Err(wait.refuse(&format!(
                    "give at most {MAX_BACKOFF_MS} (10 minutes): a longer wait between attempts looks like a hang"
                )));
            }
        }
        if self.base_ms.value > self.max_ms.value {
            return Err(self.base_ms.refuse(&format!(
                "larger than max_ms ({}): make base_ms the smaller",
                self.max_ms.value
            )));
        }
        Ok(())
    }
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

/// `INPUT` with its extension replaced by `.results.csv` (`.results.xlsx` for a workbook);
/// for standard input, `stdin.results.csv`.
fn default_output(input: &Path) -> PathBuf {
    if input == Path::new("-") {
        return PathBuf::from("stdin.results.csv");
    }
    match is_workbook(input) {
        true => input.with_extension("results.xlsx"),
        false => input.with_extension("results.csv"),
    }
}

/// `path` with `suffix` added to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Refuses to write over the input: a results file, record or lock that is the input.
fn refuse_input(input: &Path, ours: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let same = match (std::fs::metadata(input), std::fs::metadata(ours)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => input == ours,
    };
    match same {
        true => Err(error(format!(
            "{} is the input itself: a run never writes over its input. Give the results another name with --output",
            ours.display()
        ))),
        false => Ok(()),
    }
}

/// Only `https://`, or `http://` to a loopback host: nothing signed crosses a network in
/// clear. No user or password in the URL (the client would send it as Basic auth, and it
/// would be shown): it is never echoed. No placeholder but `{region}`.
fn check_endpoint(endpoint: &Setting<String>) -> Result<(), ConfigError> {
    let template = endpoint.value.as_str();
    let shown = without_userinfo(template);
    let refuse = |why: String| error(format!("{}: {why}", endpoint.written(&shown)));
    if let Some(placeholder) = unknown_placeholder(template) {
        return Err(refuse(format!(
            "`{placeholder}` is not a placeholder: the only one is `{{region}}`, replaced by each row's region"
        )));
    }
    let example = Endpoint::new(template).url("ap-guangzhou");
    let url = reqwest::Url::parse(&example).map_err(|e| {
        refuse(format!(
            "not a URL ({e}); give one such as {DEFAULT_ENDPOINT}"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(
            "a user name or password in the endpoint is refused: requests are signed with the credentials, and a password there would be sent in clear text; remove the `user:password@` part".into(),
        ));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url.host()) => Ok(()),
        "http" => Err(refuse("plain http:// is refused for a host that is not loopback, since the request would cross the network unencrypted; use https://".into())),
        scheme => Err(refuse(format!(
            "the scheme `{scheme}` is not supported; use https://"
        ))),
    }
}

/// The first `{...}` (or stray brace) in the template that is not `{region}`.
fn unknown_placeholder(template: &str) -> Option<String> {
    let rest = template.replace("{region}", "");
    let start = rest.find(['{', '}'])?;
    let end = rest[start..]
        .find('}')
        .map_or(rest.len(), |end| start + end + 1);
    Some(rest[start..end].to_string())
}

/// The template with any `user:password@` replaced by `***@`, to show it safely.
fn without_userinfo(template: &str) -> String {
    let Some((scheme, rest)) = template.split_once("://") else {
        return template.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => template.to_string(),
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
    fn a_broken_config_file_is_named_by_line_without_showing_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for text in [
            "[credentials]\nsecret_id = 'AKIDx'\nsecret_key = \"TOPSECRET123\n",
            "[credentials]\nsecret_key = \"TOPSECRET456\"\nsecret_key = \"TOPSECRET456\"\n",
            "[credentials]\nsecret_key = 12345678\n",
        ] {
            std::fs::write(&path, text).unwrap();
            let error = FileConfig::load(&path).unwrap_err().to_string();
            assert!(
                !error.contains("TOPSECRET") && !error.contains("12345678"),
                "{error}"
            );
            assert!(error.contains("line "), "{error}");
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

    fn flag<T>(name: &'static str, value: T) -> Setting<T> {
        Setting {
            value,
            origin: Origin::Flag,
            name,
            table: "run",
        }
    }

    fn numbers() -> Numbers {
        Numbers {
            rate: flag("rate", 20.0),
            describe_rate: flag("describe_rate", 10.0),
            concurrency: flag("concurrency", 32),
            max_attempts: flag("max_attempts", 8),
            timeout: flag("timeout", 10.0),
            base_ms: Setting {
                table: "retry",
                ..flag("base_ms", 500)
            },
            max_ms: Setting {
                table: "retry",
                ..flag("max_ms", 20_000)
            },
        }
    }

    #[test]
    fn numbers_that_cannot_work_are_refused_with_the_fix() {
        assert!(numbers().check().is_ok());
        let refused = |numbers: Numbers| numbers.check().unwrap_err().to_string();
        for rate in [0.0, f64::NAN, 1e-300] {
            let error = refused(Numbers {
                rate: flag("rate", rate),
                ..numbers()
            });
            assert!(error.starts_with("--rate"), "{error}");
        }
        let error = refused(Numbers {
            concurrency: flag("concurrency", 0),
            ..numbers()
        });
        assert!(error.starts_with("--concurrency 0"), "{error}");
        let error = refused(Numbers {
            max_attempts: flag("max_attempts", 0),
            ..numbers()
        });
        assert!(error.starts_with("--max-attempts 0"), "{error}");
        for timeout in [-1.0, 1e300] {
            let error = refused(Numbers {
                timeout: flag("timeout", timeout),
                ..numbers()
            });
            assert!(error.starts_with("--timeout"), "{error}");
        }
        let file = |name, value| Setting {
            value,
            origin: Origin::File(PathBuf::from("c.toml")),
            name,
            table: "retry",
        };
        let error = refused(Numbers {
            max_ms: file("max_ms", 9_223_372_036_854_775_807),
            ..numbers()
        });
        assert_eq!(
            error,
            "c.toml: [retry] max_ms = 9223372036854775807: give at most 600000 (10 minutes): a longer wait between attempts looks like a hang"
        );
        let error = refused(Numbers {
            base_ms: file("base_ms", 30_000),
            ..numbers()
        });
        assert!(
            error.starts_with("c.toml: [retry] base_ms = 30000: larger than max_ms"),
            "{error}"
        );
    }

    /// A value is named where it was set: the flag, the variable, or the file and its key.
    #[tokio::test]
    async fn a_bad_value_is_named_by_its_flag_variable_or_file_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "[run]\nrate = -5\n").unwrap();
        let args = || RunArgs {
            input: "in.csv".into(),
            dry_run: true,
            ..Default::default()
        };
        let resolve = |args: RunArgs, vars: &'static [(&'static str, &'static str)]| async move {
            let env = |key: &str| {
                vars.iter()
                    .find(|(name, _)| *name == key)
                    .map(|(_, value)| value.to_string())
            };
            RunConfig::resolve(args, &env)
                .await
                .unwrap_err()
                .to_string()
        };
        let error = resolve(args(), &[("LIGHTHOUSE_SHARE_RATE", "abc")]).await;
        assert!(
            error.starts_with("LIGHTHOUSE_SHARE_RATE=abc: not a number"),
            "{error}"
        );
        let error = resolve(args(), &[("LIGHTHOUSE_SHARE_RATE", "-5")]).await;
        assert!(
            error.starts_with("LIGHTHOUSE_SHARE_RATE=-5: give"),
            "{error}"
        );
        let error = resolve(args(), &[("LIGHTHOUSE_SHARE_RATE_SCOPE", "zone")]).await;
        assert_eq!(
            error,
            "LIGHTHOUSE_SHARE_RATE_SCOPE=zone: give one of region, endpoint"
        );
        let from_file = RunArgs {
            config: Some(config.clone()),
            ..args()
        };
        let error = resolve(from_file, &[]).await;
        let expected = format!("{}: [run] rate = -5: give", config.display());
        assert!(error.starts_with(&expected), "{error}");
        let flag_wins = RunArgs {
            config: Some(config.clone()),
            rate: Some(0.0),
            ..args()
        };
        let error = resolve(flag_wins, &[("LIGHTHOUSE_SHARE_RATE", "abc")]).await;
        assert!(error.starts_with("--rate 0: give"), "{error}");
        let env_beats_file = RunArgs {
            config: Some(config),
            ..args()
        };
        let error = resolve(env_beats_file, &[("LIGHTHOUSE_SHARE_RATE", "0")]).await;
        assert!(
            error.starts_with("LIGHTHOUSE_SHARE_RATE=0: give"),
            "{error}"
        );
    }

    fn endpoint(template: &str) -> Result<(), ConfigError> {
        check_endpoint(&flag("endpoint", template.to_string()))
    }

    #[test]
    fn plain_http_is_refused_unless_the_host_is_loopback() {
        for ok in [
            "https://lighthouse.{region}.tencentcloudapi.com",
            "http://127.0.0.1:8020",
            "http://localhost:1",
            "http://[::1]:2",
        ] {
            assert!(endpoint(ok).is_ok(), "{ok}");
        }
        let error = endpoint("http://lighthouse.tencentcloudapi.com").unwrap_err();
        assert!(error.to_string().contains("use https://"), "{error}");
    }

    #[test]
    fn a_placeholder_other_than_region_is_named() {
        let error = endpoint("https://lighthouse.{REGION}.tencentcloudapi.com")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`{REGION}` is not a placeholder"), "{error}");
        let error = endpoint("https://lighthouse.{region.tencentcloudapi.com")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`{region.tencentcloudapi.com` is not"),
            "{error}"
        );
    }

    #[test]
    fn user_info_in_the_endpoint_is_refused_and_never_shown() {
        let error = endpoint("https://user:hunter2@lighthouse.{region}.tencentcloudapi.com")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("--endpoint https://***@lighthouse.{region}"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn an_on_off_option_takes_the_flag_then_the_environment_then_the_file() {
        let none = |_: &str| None;
        let env_on = |key: &str| (key == "LIGHTHOUSE_SHARE_RESUME").then(|| "true".to_string());
        assert!(!switch(false, false, &none, "RESUME", false).unwrap());
        assert!(switch(false, false, &none, "RESUME", true).unwrap());
        assert!(
            !switch(false, true, &none, "RESUME", true).unwrap(),
            "--no-resume beats the file"
        );
        assert!(
            switch(false, false, &env_on, "RESUME", false).unwrap(),
            "the environment beats the file"
        );
        assert!(
            !switch(false, true, &env_on, "RESUME", false).unwrap(),
            "a flag beats the environment"
        );
        let bad = |_: &str| Some("maybe".to_string());
        let error = switch(false, false, &bad, "RESUME", false).unwrap_err();
        assert!(
            error.to_string().contains("LIGHTHOUSE_SHARE_RESUME=maybe"),
            "{error}"
        );
    }

    #[test]
    fn only_a_named_profile_wins_and_tccli_profile_names_the_default() {
        let tccli = |key: &str| (key == "TCCLI_PROFILE").then(|| "staging".to_string());
        let none = |_: &str| None;
        let named = |name: &str| Profile {
            name: name.into(),
            named: true,
        };
        assert_eq!(profile(Some("prod".into()), &tccli), named("prod"));
        assert_eq!(profile(Some("file".into()), &tccli), named("file"));
        assert_eq!(
            profile(None, &tccli),
            Profile {
                name: "staging".into(),
                named: false
            }
        );
        assert_eq!(profile(None, &none).name, "default");
    }

    #[test]
    fn the_later_of_a_flag_and_its_no_form_wins() {
        use crate::cli::{Cli, Command};
        use clap::Parser;
        let parse = |args: &[&str]| match Cli::parse_from(args).command {
            Command::Run(run) => (run.resume, run.no_resume),
            _ => unreachable!("a run was parsed"),
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
