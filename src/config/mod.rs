//! Configuration: the command line, the environment and the config file become one validated
//! [`RunConfig`] before the first request (ripgrep's low → high arguments). Each option is
//! one row of the option table ([`table`]); [`sources::walk`] reads each from the first place
//! that sets it (flag, `LIGHTHOUSE_SHARE_<KEY>`, the config file, the default) through its
//! own parser, so a message names the flag, the variable or the file's key. Then the values
//! that depend on one another (paths, the mode, the credentials, the open-files cap) are
//! worked out, and the result is final.

mod checks;
mod file;
mod limits;
mod sources;
mod table;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::action::RateScope;
use crate::api::Endpoint;
use crate::cli::{LogFormat, RunArgs};
use crate::credentials::{self, CredentialsError, Env, Profile, Provider};
use crate::engine::FailureLimit;
use crate::results::{Destination, SIMULATOR_TARGET};
use crate::retry::{Backoff, Policy};
use crate::suggest;
use file::FileConfig;
pub use limits::{open_files_limit, raise_open_files_limit};
use table::Low;

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

/// Everything a run needs, validated: final once resolved. Read through its groups.
#[derive(Debug, Clone)]
pub struct RunConfig {
    input: Input,
    output: Output,
    pacing: Pacing,
    mode: Mode,
    /// Said once logging is set up (the config decides its format), even with `-q`.
    warnings: Vec<String>,
}

/// What is read.
#[derive(Debug, Clone)]
pub struct Input {
    /// The input file; `-` is standard input.
    pub path: PathBuf,
    /// The sheet of a workbook input; the first visible one if `None`.
    pub sheet: Option<String>,
}

/// What is written, and what is said.
#[derive(Debug, Clone)]
pub struct Output {
    /// Where the results file goes.
    pub results: Destination,
    /// The record of the run, `OUTPUT.journal`: the source of truth for `--resume`.
    pub record: PathBuf,
    /// The lock a run holds, `OUTPUT.lock`.
    pub lock: PathBuf,
    pub log_format: LogFormat,
    /// `-q`: no progress, no INFO lines, no summary of a run that did all it was asked.
    pub quiet: bool,
    pub verbose: u8,
}

/// How fast, how many at once, how often again.
#[derive(Debug, Clone)]
pub struct Pacing {
    pub rate: f64,
    /// `--describe-rate`: the pace of the state look-ups per bucket (their own limit).
    pub describe_rate: f64,
    pub rate_scope: RateScope,
    /// `--concurrency`: requests in flight per bucket, as asked; the effective figure is
    /// [`Pacing::in_flight_per_bucket`], which the open-files limit may cut.
    pub concurrency: usize,
    /// The most requests in flight the open-files limit allows, all buckets together,
    /// warm-up connections included.
    pub max_in_flight: usize,
    /// The soft open-files limit the cap was worked out from, for the warning.
    pub open_files: u64,
    pub retry: Policy,
    /// `--max-failures`: the job stops once more rows than this have failed.
    pub max_failures: Option<FailureLimit>,
    pub timeout: Duration,
}

/// What the run does.
#[derive(Debug, Clone)]
pub struct Mode {
    /// Where its requests go, with what each way needs.
    pub connection: Connection,
    /// `--dry-run`: everything but the writes; print the plan.
    pub dry_run: bool,
    pub resume: bool,
    /// Read the sharing state first (SPEC §9); off with `--no-lookup`.
    pub lookup: bool,
    /// Ask `DescribeImagesToShare` (SPEC §10); off with `--no-preflight`.
    pub preflight: bool,
    /// What the record is bound to: `simulator`, or the endpoint template.
    pub record_target: String,
}

/// Where a run's requests go, decided before it starts: each way carries exactly what it
/// needs.
#[derive(Debug, Clone)]
pub enum Connection {
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

impl RunConfig {
    /// What is read: the input file and its sheet.
    pub fn input(&self) -> &Input {
        &self.input
    }

    /// What is written (results, record, lock) and said (log format, -q, -v).
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Rates, concurrency, retries, the failure threshold, the timeout.
    pub fn pacing(&self) -> &Pacing {
        &self.pacing
    }

    /// Where the requests go, and dry run, resume, look-up.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The credentials requests are signed with; `None` offline and for the simulator.
    pub fn credentials(&self) -> Option<&Provider> {
        match &self.mode.connection {
            Connection::Remote { credentials, .. } => Some(credentials),
            _ => None,
        }
    }

    /// What to say once logging is set up, even with `-q`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The pacing, to change what no flag sets (tests shorten the backoff): unchecked.
    pub fn pacing_mut(&mut self) -> &mut Pacing {
        &mut self.pacing
    }

    /// The output, to change where it goes (tests): unchecked.
    pub fn output_mut(&mut self) -> &mut Output {
        &mut self.output
    }

    /// Resolves the process's own command line and environment: [`RunConfig::resolve`],
    /// after checking the names of the `LIGHTHOUSE_SHARE_*` variables set.
    pub async fn from_process(args: RunArgs) -> Result<Self, ConfigError> {
        let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
        let unknown = check_variables(names)?;
        let mut config = Self::resolve(args, &|key| std::env::var(key).ok()).await?;
        config.warnings.splice(0..0, unknown);
        Ok(config)
    }

    /// Resolves the arguments, the environment (through `env`) and the config file.
    pub async fn resolve(args: RunArgs, env: Env<'_>) -> Result<Self, ConfigError> {
        let file = match args.config.clone().or_else(|| {
            env("LIGHTHOUSE_SHARE_CONFIG")
                .filter(|value| !value.trim().is_empty())
                .map(PathBuf::from)
        }) {
            Some(path) => FileConfig::load(&path)?,
            None => FileConfig::default(),
        };
        let mut warnings = file.warnings.clone();
        if file.credentials.secret_key.is_some() {
            warnings.extend(credentials::readable_by_others(file.path(), "a secret key"));
        }
        let low = sources::walk(&args, env, &file)?;
        check_together(&low)?;
        let endpoint = endpoint(&low)?;
        let input = Input {
            path: args.input,
            sheet: low.sheet.clone(),
        };
        let output = output(&low, &input.path)?;
        let pacing = pacing(&low, &endpoint, limits::open_files_limit());
        let mode = mode(&low, endpoint, env, &file, &mut warnings).await?;
        Ok(Self {
            input,
            output,
            pacing,
            mode,
            warnings,
        })
    }
}

/// Refuses the values that do not go together.
fn check_together(low: &Low) -> Result<(), ConfigError> {
    if low.offline && !low.dry_run {
        return Err(error(
            "--offline goes with --dry-run (check the file alone): add --dry-run, or leave --offline out to run",
        ));
    }
    if low.base_ms > low.max_ms {
        return Err(error(format!(
            "{}: larger than max_ms ({}): make base_ms the smaller",
            low.written("base_ms", &low.base_ms.to_string()),
            low.max_ms
        )));
    }
    Ok(())
}

/// The endpoint template, checked unless the simulator stands in for it.
fn endpoint(low: &Low) -> Result<Endpoint, ConfigError> {
    if !low.simulate {
        checks::check_endpoint(&low.endpoint, |shown| low.written("endpoint", shown))?;
    }
    Ok(Endpoint::new(&low.endpoint))
}

/// The results file, the record and the lock beside it; none of them the input.
fn output(low: &Low, input: &Path) -> Result<Output, ConfigError> {
    let (results, beside) = match &low.output {
        Some(path) if path == Path::new("-") => {
            (Destination::Stdout, checks::default_output(input))
        }
        Some(path) => (Destination::File(path.clone()), path.clone()),
        None => {
            let is_stream = input != Path::new("-")
                && std::fs::metadata(input).is_ok_and(|m| !m.is_file() && !m.is_dir());
            if is_stream {
                return Err(error(format!(
                    "{} is a pipe or a device, with no folder for its results beside it: give them a place with -o FILE (or -o - for standard output)",
                    crate::text::path(input)
                )));
            }
            let path = checks::default_output(input);
            (Destination::File(path.clone()), path)
        }
    };
    let record = checks::with_suffix(&beside, ".journal");
    let lock = checks::with_suffix(&beside, ".lock");
    for ours in [&beside, &record, &lock] {
        checks::refuse_input(input, ours)?;
    }
    Ok(Output {
        results,
        record,
        lock,
        log_format: low.log_format,
        quiet: low.quiet,
        verbose: low.verbose,
    })
}

/// The pacing, with the requests in flight capped by `open_files`.
fn pacing(low: &Low, endpoint: &Endpoint, open_files: u64) -> Pacing {
    let rate_scope = low
        .rate_scope
        .unwrap_or(if endpoint.has_region() || low.simulate {
            RateScope::Region
        } else {
            RateScope::Endpoint
        });
    let max_in_flight = limits::max_in_flight(open_files, low.simulate);
    Pacing {
        rate: low.rate,
        describe_rate: low.describe_rate,
        rate_scope,
        concurrency: low.concurrency,
        max_in_flight,
        open_files,
        retry: Policy {
            max_attempts: low.max_attempts,
            backoff: Backoff {
                base: Duration::from_millis(low.base_ms),
                max: Duration::from_millis(low.max_ms),
            },
            max_throttled: Duration::from_secs(300),
        },
        max_failures: low.max_failures,
        timeout: Duration::from_secs_f64(low.timeout),
    }
}

impl Pacing {
    /// Requests in flight per bucket when `n_buckets` send at once: `--concurrency`, or the
    /// open-files cap shared among them; and the warning to give when the cap cut it.
    pub fn in_flight_per_bucket(&self, n_buckets: usize) -> (usize, Option<String>) {
        let n_buckets = n_buckets.max(1);
        let asked = self.concurrency.max(1);
        let per_bucket = (self.max_in_flight / n_buckets).clamp(1, asked);
        let warning = (per_bucket < asked).then(|| {
            format!(
                "at most {per_bucket} requests in flight per bucket ({} in all over {n_buckets} {}), not --concurrency {asked}: this process may open {} files (ulimit -n), and each request in flight holds one; raise the hard limit (ulimit -Hn) to allow more",
                per_bucket * n_buckets,
                if n_buckets == 1 { "bucket" } else { "buckets" },
                self.open_files
            )
        });
        (per_bucket, warning)
    }
}

/// The mode: the connection (with credentials for a remote one) and the on/off choices.
async fn mode(
    low: &Low,
    endpoint: Endpoint,
    env: Env<'_>,
    file: &FileConfig,
    warnings: &mut Vec<String>,
) -> Result<Mode, ConfigError> {
    let record_target = match low.simulate {
        true => SIMULATOR_TARGET.to_string(),
        false => endpoint.template().to_string(),
    };
    let connection = match (low.offline, low.simulate) {
        (_, true) => Connection::Simulator,
        (true, false) => Connection::Offline { endpoint },
        (false, false) => {
            let profile = profile(low.profile.clone(), env)?;
            let credentials = credentials::find(env, &file.credentials, &profile, warnings)
                .await?
                .ok_or_else(|| credentials::not_found(&profile))?;
            if profile.named && env("TENCENTCLOUD_SECRET_ID").is_some_and(|id| !id.is_empty()) {
                // Surprising to someone used to the environment winning: said even with -q.
                warnings.push(format!(
                    "TENCENTCLOUD_SECRET_ID in the environment is not used: the profile `{}` was named, and a named profile wins",
                    profile.name
                ));
            }
            Connection::Remote {
                endpoint,
                credentials,
            }
        }
    };
    Ok(Mode {
        connection,
        dry_run: low.dry_run,
        resume: low.resume,
        lookup: low.lookup,
        preflight: low.preflight,
        record_target,
    })
}

/// The profile to read: named by `--profile` (or its variable) or the config file, else
/// tccli's `TCCLI_PROFILE` as the default name, else `default`; only a named one wins over
/// the environment's keys (as `AWS_PROFILE` does not, in aws-cli). A name is a name, never
/// a path: `TCCLI_PROFILE` is held to the same rule as `--profile`.
fn profile(named: Option<String>, env: Env<'_>) -> Result<Profile, ConfigError> {
    if let Some(name) = named {
        return Ok(Profile { name, named: true });
    }
    let name = match env("TCCLI_PROFILE").filter(|name| !name.is_empty()) {
        Some(name) => table::profile_name(&name)
            .map_err(|why| error(format!("TCCLI_PROFILE={}: {why}", table::shown(&name))))?,
        None => "default".into(),
    };
    Ok(Profile { name, named: false })
}

/// Checks the names of the `LIGHTHOUSE_SHARE_*` variables set: one near a known name is a
/// typo of an option that is then not in force (`_DRYRUN` for `_DRY_RUN` would send for
/// real), so the run stops; any other unknown one is a warning.
pub fn check_variables(names: impl Iterator<Item = String>) -> Result<Vec<String>, ConfigError> {
    const PREFIX: &str = "LIGHTHOUSE_SHARE_";
    let known = table::known_variables();
    let suffixes: Vec<&str> = known.iter().map(|name| &name[PREFIX.len()..]).collect();
    let mut warnings = Vec::new();
    for name in names {
        let Some(suffix) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if known.contains(&name) {
            continue;
        }
        let shown = table::shown(&name);
        match suggest::nearest(suffix, &suffixes) {
            Some(near) => {
                return Err(error(format!(
                    "unknown variable {shown}: did you mean {PREFIX}{near}? Nothing was sent: rename it, or unset it"
                )));
            }
            None => warnings.push(format!(
                "unknown variable {shown} is ignored (run `lighthouse-share run --help` for the LIGHTHOUSE_SHARE_* variables)"
            )),
        }
    }
    Ok(warnings)
}

impl RunConfig {
    /// The settings in force, for `-v`: where each came from (flag, environment, file,
    /// default) is otherwise invisible.
    pub fn settings(&self) -> String {
        let (mode, pacing, output) = (&self.mode, &self.pacing, &self.output);
        let connection = match &mode.connection {
            Connection::Offline { endpoint } => {
                format!("offline dry run for {}", endpoint.template())
            }
            Connection::Remote { endpoint, .. } if mode.dry_run => {
                format!("dry run for {}", endpoint.template())
            }
            Connection::Remote { endpoint, .. } => format!("endpoint {}", endpoint.template()),
            Connection::Simulator if mode.dry_run => "dry run for the in-process simulator".into(),
            Connection::Simulator => "the in-process simulator".into(),
        };
        let max_failures = pacing
            .max_failures
            .map_or_else(|| "off".to_string(), |limit| limit.to_string());
        format!(
            "{connection}; output {}; sheet {}; rate {}/s per {}; lookup {} at describe rate {}/s; preflight {}; concurrency {} per bucket (at most {} in flight in all); max attempts {}; backoff {}-{} ms; max failures {max_failures}; timeout {}s; resume {}; log format {}; quiet {}; verbose {}",
            output.results,
            self.input.sheet.as_deref().unwrap_or("the first visible"),
            pacing.rate,
            format!("{:?}", pacing.rate_scope).to_lowercase(),
            mode.lookup,
            pacing.describe_rate,
            mode.preflight,
            pacing.concurrency,
            pacing.max_in_flight,
            pacing.retry.max_attempts,
            pacing.retry.backoff.base.as_millis(),
            pacing.retry.backoff.max.as_millis(),
            pacing.timeout.as_secs_f64(),
            mode.resume,
            format!("{:?}", output.log_format).to_lowercase(),
            output.quiet,
            output.verbose,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolves `args` with `vars` as the environment; the error's text if it fails.
    async fn resolve(args: RunArgs, vars: &[(&str, &str)]) -> Result<RunConfig, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |key: &str| {
            vars.iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.clone())
        };
        RunConfig::resolve(args, &env)
            .await
            .map_err(|e| e.to_string())
    }

    fn dry() -> RunArgs {
        RunArgs {
            input: "in.csv".into(),
            dry_run: true,
            offline: true,
            ..Default::default()
        }
    }

    #[test]
    fn the_example_config_loads_and_names_every_key() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"));
        let file = FileConfig::load(path).expect("config.example.toml is valid");
        assert!(file.warnings.is_empty(), "{:?}", file.warnings);
        let text = std::fs::read_to_string(path).unwrap();
        for (table, keys) in file::all_keys() {
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
    fn a_near_miss_key_stops_with_the_nearest_known_one_and_a_stranger_is_a_warning() {
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
        std::fs::write(&path, "rate = 5\n").unwrap();
        let error = FileConfig::load(&path).unwrap_err().to_string();
        assert!(
            error.ends_with("`rate` is a key of [run]: put it below a [run] line"),
            "{error}"
        );
        std::fs::write(&path, "[run]\nparallelism = 4\n[extra]\n").unwrap();
        let file = FileConfig::load(&path).unwrap();
        assert_eq!(file.warnings.len(), 2, "{:?}", file.warnings);
        for said in [
            "unknown key in [run] `parallelism` is ignored",
            "unknown table `extra` is ignored",
        ] {
            assert!(
                file.warnings.iter().any(|w| w.contains(said)),
                "{said}: {:?}",
                file.warnings
            );
        }
    }

    #[tokio::test]
    async fn numbers_that_cannot_work_are_refused_with_the_fix_and_a_short_value() {
        let with = |f: fn(&mut RunArgs)| {
            let mut args = dry();
            f(&mut args);
            args
        };
        assert!(resolve(dry(), &[]).await.is_ok());
        for (args, starts) in [
            (with(|a| a.rate = Some(0.0)), "--rate 0: give"),
            (with(|a| a.rate = Some(f64::NAN)), "--rate NaN: give"),
            (with(|a| a.rate = Some(f64::INFINITY)), "--rate inf: give"),
            (with(|a| a.rate = Some(1e-300)), "--rate 1.000e-300: give"),
            (with(|a| a.rate = Some(1e300)), "--rate 1.000e300: give"),
            (
                with(|a| a.describe_rate = Some(-1.0)),
                "--describe-rate -1: give",
            ),
            (with(|a| a.concurrency = Some(0)), "--concurrency 0: give"),
            (with(|a| a.max_attempts = Some(0)), "--max-attempts 0: give"),
            (with(|a| a.timeout = Some(-1.0)), "--timeout -1: give"),
            (
                with(|a| a.timeout = Some(1e300)),
                "--timeout 1.000e300: give",
            ),
            (with(|a| a.timeout = Some(f64::NAN)), "--timeout NaN: give"),
        ] {
            let error = resolve(args, &[]).await.unwrap_err();
            assert!(error.starts_with(starts), "{error}");
            assert!(error.len() < 200, "one short line: {error}");
        }
    }

    #[tokio::test]
    async fn backoff_keys_are_checked_alone_and_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let args = || RunArgs {
            config: Some(path.clone()),
            ..dry()
        };
        std::fs::write(&path, "[retry]\nmax_ms = 9223372036854775807\n").unwrap();
        assert_eq!(
            resolve(args(), &[]).await.unwrap_err(),
            format!(
                "{}: [retry] max_ms = 9223372036854775807: give at most 600000 (10 minutes): a longer wait between attempts looks like a hang",
                crate::text::path(&path)
            )
        );
        std::fs::write(&path, "[retry]\nbase_ms = 30000\n").unwrap();
        let error = resolve(args(), &[]).await.unwrap_err();
        let expected = format!(
            "{}: [retry] base_ms = 30000: larger than max_ms",
            crate::text::path(&path)
        );
        assert!(error.starts_with(&expected), "{error}");
    }

    /// A value is named where it was set: the flag, the variable, or the file and its key.
    #[tokio::test]
    async fn a_bad_value_is_named_by_its_flag_variable_or_file_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "[run]\nrate = -5\n").unwrap();
        let error = resolve(dry(), &[("LIGHTHOUSE_SHARE_RATE", "abc")])
            .await
            .unwrap_err();
        assert!(
            error.starts_with("LIGHTHOUSE_SHARE_RATE=abc: not a number"),
            "{error}"
        );
        let error = resolve(dry(), &[("LIGHTHOUSE_SHARE_RATE", "-5")])
            .await
            .unwrap_err();
        assert!(
            error.starts_with("LIGHTHOUSE_SHARE_RATE=-5: give"),
            "{error}"
        );
        let error = resolve(dry(), &[("LIGHTHOUSE_SHARE_RATE_SCOPE", "zone")])
            .await
            .unwrap_err();
        assert_eq!(
            error,
            "LIGHTHOUSE_SHARE_RATE_SCOPE=zone: give one of region, endpoint"
        );
        let from_file = RunArgs {
            config: Some(config.clone()),
            ..dry()
        };
        let error = resolve(from_file, &[]).await.unwrap_err();
        let expected = format!("{}: [run] rate = -5: give", crate::text::path(&config));
        assert!(error.starts_with(&expected), "{error}");
        let flag_wins = RunArgs {
            config: Some(config.clone()),
            rate: Some(0.0),
            ..dry()
        };
        let error = resolve(flag_wins, &[("LIGHTHOUSE_SHARE_RATE", "abc")])
            .await
            .unwrap_err();
        assert!(error.starts_with("--rate 0: give"), "{error}");
        let env_beats_file = RunArgs {
            config: Some(config),
            ..dry()
        };
        let error = resolve(env_beats_file, &[("LIGHTHOUSE_SHARE_RATE", "0")])
            .await
            .unwrap_err();
        assert!(
            error.starts_with("LIGHTHOUSE_SHARE_RATE=0: give"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn max_failures_states_its_range_wherever_it_is_set() {
        for bad in ["0", "0%", "100.5%", "-3", "lots"] {
            let error = resolve(dry(), &[("LIGHTHOUSE_SHARE_MAX_FAILURES", bad)])
                .await
                .unwrap_err();
            assert!(
                error.contains("at least 1") && error.contains("at most 100%"),
                "{error}"
            );
        }
        for good in ["1", "100%", "0.5%"] {
            let config = resolve(dry(), &[("LIGHTHOUSE_SHARE_MAX_FAILURES", good)]).await;
            assert!(config.is_ok(), "{good}: {config:?}");
        }
    }

    fn endpoint(template: &str) -> Result<(), ConfigError> {
        checks::check_endpoint(template, |shown| format!("--endpoint {shown}"))
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

    #[tokio::test]
    async fn an_on_off_option_takes_the_flag_then_the_environment_then_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[run]\nresume = true\n").unwrap();
        let resume = |args: RunArgs, vars: &'static [(&'static str, &'static str)]| async move {
            resolve(args, vars).await.map(|c| c.mode().resume)
        };
        let file = || RunArgs {
            config: Some(path.clone()),
            ..dry()
        };
        assert_eq!(resume(dry(), &[]).await, Ok(false));
        assert_eq!(resume(file(), &[]).await, Ok(true));
        let no_resume = RunArgs {
            no_resume: true,
            ..file()
        };
        assert_eq!(
            resume(no_resume, &[]).await,
            Ok(false),
            "--no-resume beats the file"
        );
        let env_off = &[("LIGHTHOUSE_SHARE_RESUME", "off")];
        assert_eq!(
            resume(file(), env_off).await,
            Ok(false),
            "the environment beats the file"
        );
        let flag = RunArgs {
            resume: true,
            ..dry()
        };
        assert_eq!(
            resume(flag, env_off).await,
            Ok(true),
            "a flag beats the environment"
        );
        let error = resume(dry(), &[("LIGHTHOUSE_SHARE_RESUME", "maybe")])
            .await
            .unwrap_err();
        assert!(
            error.starts_with("LIGHTHOUSE_SHARE_RESUME=maybe: give true or false"),
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
        assert_eq!(profile(Some("prod".into()), &tccli).unwrap(), named("prod"));
        assert_eq!(
            profile(None, &tccli).unwrap(),
            Profile {
                name: "staging".into(),
                named: false
            }
        );
        assert_eq!(profile(None, &none).unwrap().name, "default");
        let path = |key: &str| (key == "TCCLI_PROFILE").then(|| "../../x".to_string());
        let error = profile(None, &path).unwrap_err().to_string();
        assert!(
            error.starts_with("TCCLI_PROFILE=../../x: not a profile name"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_profile_name_is_a_name_never_a_path_nor_empty() {
        for bad in ["../../x", "/tmp/x", "", ".hidden", "a\\b", "a b"] {
            let args = RunArgs {
                profile: Some(bad.to_string()),
                ..dry()
            };
            let error = resolve(args, &[]).await.unwrap_err();
            let shown = match bad {
                "" => "\"\"".to_string(),
                bad => bad.escape_debug().to_string(),
            };
            assert!(
                error.starts_with(&format!("--profile {shown}: not a profile name"))
                    && error.contains("letters, digits"),
                "{error}"
            );
        }
        for good in ["prod", "team-a_2", "v1.2"] {
            let args = RunArgs {
                profile: Some(good.to_string()),
                ..dry()
            };
            assert!(resolve(args, &[]).await.is_ok(), "{good}");
        }
    }

    #[tokio::test]
    async fn more_v_than_two_means_every_request_and_the_variable_takes_0_to_2() {
        let loud = RunArgs {
            verbose: 5,
            ..dry()
        };
        assert_eq!(resolve(loud, &[]).await.unwrap().output().verbose, 2);
        let env = resolve(dry(), &[("LIGHTHOUSE_SHARE_VERBOSE", "1")]).await;
        assert_eq!(env.unwrap().output().verbose, 1);
        let error = resolve(dry(), &[("LIGHTHOUSE_SHARE_VERBOSE", "9")])
            .await
            .unwrap_err();
        assert!(
            error.starts_with("LIGHTHOUSE_SHARE_VERBOSE=9: give 0, 1"),
            "{error}"
        );
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

    #[test]
    fn a_misspelt_variable_stops_the_run_and_a_stranger_is_a_warning() {
        let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let error = check_variables(names(&["PATH", "LIGHTHOUSE_SHARE_DRYRUN"]).into_iter())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "unknown variable LIGHTHOUSE_SHARE_DRYRUN: did you mean LIGHTHOUSE_SHARE_DRY_RUN?"
            ),
            "{error}"
        );
        let warnings = check_variables(
            names(&[
                "LIGHTHOUSE_SHARE_RATE",
                "LIGHTHOUSE_SHARE_CONFIG",
                "LIGHTHOUSE_SHARE_METADATA_URL",
                "LIGHTHOUSE_SHARE_VERBOSE",
                "LIGHTHOUSE_SHARE_SOMETHING_ELSE_ENTIRELY",
            ])
            .into_iter(),
        )
        .unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(
                "unknown variable LIGHTHOUSE_SHARE_SOMETHING_ELSE_ENTIRELY is ignored"
            )
        );
    }

    #[test]
    fn every_option_in_the_table_is_in_the_help_with_its_variable() {
        use clap::CommandFactory;
        let mut cli = crate::cli::Cli::command();
        let help = cli
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for opt in table::OPTIONS
            .iter()
            .filter(|opt| opt.table == table::Table::Run)
        {
            assert!(
                flat.contains(&opt.flag_name()),
                "{} in the help",
                opt.flag_name()
            );
        }
        for opt in table::OPTIONS
            .iter()
            .filter(|o| o.env && o.default.is_some_and(|d| d != "false"))
        {
            assert!(
                flat.contains(&opt.variable()),
                "{} in the help",
                opt.variable()
            );
        }
    }

    #[test]
    fn the_open_files_cap_is_shared_among_buckets_and_said_once_when_it_cuts() {
        let low = Low {
            concurrency: 100_000,
            endpoint: DEFAULT_ENDPOINT.into(),
            ..Low::default()
        };
        let pacing = pacing(&low, &Endpoint::new(DEFAULT_ENDPOINT), 128);
        assert_eq!(pacing.max_in_flight, 64);
        let (per_bucket, warning) = pacing.in_flight_per_bucket(3);
        assert_eq!(per_bucket, 21);
        let warning = warning.expect("the cap cut --concurrency");
        assert!(
            warning.contains("not --concurrency 100000") && warning.contains("128 files"),
            "{warning}"
        );
        let roomy = Pacing {
            concurrency: 8,
            ..pacing
        };
        assert_eq!(roomy.in_flight_per_bucket(3), (8, None));
        assert_eq!(roomy.in_flight_per_bucket(1000).0, 1, "never none");
    }
}
