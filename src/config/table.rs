//! The option table: each option of `run` is one row (its key, which gives the flag, the
//! variable and the file key; where it can be set; its default; and the function that parses
//! and checks its text), and [`Low`], every option's value once read. Which place a value is
//! read from is `sources`' concern: one parser per option, so a value is read and refused the
//! same way wherever it was set, and a message names that place.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::ValueEnum;

use crate::action::RateScope;
use crate::cli::{self, LogFormat, RunArgs};
use crate::engine::FailureLimit;

/// The config file's table that holds a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Run,
    Retry,
}

impl Table {
    /// The table's name in the file: `[run]`, `[retry]`.
    pub fn name(self) -> &'static str {
        match self {
            Table::Run => "run",
            Table::Retry => "retry",
        }
    }
}

/// One option: one row of the table.
pub struct Opt {
    /// The key in snake case: the file key (`max_attempts`), the flag (`--max-attempts`) and
    /// the variable (`LIGHTHOUSE_SHARE_MAX_ATTEMPTS`) are all made from it.
    pub key: &'static str,
    pub table: Table,
    /// The command line's value, as text; `None` if the flag was not given (or there is none).
    pub flag: fn(&RunArgs) -> Option<String>,
    /// Whether `LIGHTHOUSE_SHARE_<KEY>` sets it.
    pub env: bool,
    /// The value when nothing sets it, read by the same parser; `None`: off, or derived.
    pub default: Option<&'static str>,
    /// Parses and checks the text, and stores the value; the error says the fix.
    pub apply: fn(&mut Low, &str) -> Result<(), String>,
}

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env,
    File(PathBuf),
    Default,
}

/// Every option's value, once read and checked one by one; `origins` says where each came
/// from, for the checks that compare two of them.
#[derive(Debug, Default)]
pub struct Low {
    pub output: Option<PathBuf>,
    pub sheet: Option<String>,
    pub profile: Option<String>,
    pub endpoint: String,
    pub rate: f64,
    pub describe_rate: f64,
    pub rate_scope: Option<RateScope>,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub max_failures: Option<FailureLimit>,
    pub timeout: f64,
    pub resume: bool,
    pub dry_run: bool,
    pub offline: bool,
    pub lookup: bool,
    pub preflight: bool,
    pub simulate: bool,
    pub log_format: LogFormat,
    pub quiet: bool,
    pub verbose: u8,
    pub base_ms: u64,
    pub max_ms: u64,
    pub origins: BTreeMap<&'static str, Origin>,
}

/// The most requests per second `--rate` and `--describe-rate` take: the API's limits are
/// 20/s and 10/s, so a figure this far above them is a typo, not a quota.
pub const MAX_RATE: f64 = 10_000.0;
/// The shortest `--timeout`: no answer comes back faster (a shorter one fails every request,
/// though the service may have done what it asked).
pub const MIN_TIMEOUT_SECS: f64 = 0.1;
/// The longest `--timeout`: a day; a longer wait for one answer looks like a hang.
pub const MAX_TIMEOUT_SECS: f64 = 86_400.0;
/// The longest wait between attempts: a longer one looks like a hang.
pub const MAX_BACKOFF_MS: u64 = 600_000;

/// An on/off option: `--KEY` and `--no-KEY` on the command line (clap keeps only the later
/// of the two), `true`/`false` (1/0, yes/no, on/off) elsewhere. `$on` names the flag's field
/// and the value's alike.
macro_rules! switch {
    ($key:literal, $on:ident, $off:ident, $default:literal) => {
        Opt {
            key: $key,
            table: Table::Run,
            flag: |a| match (a.$on, a.$off) {
                (false, false) => None,
                (on, _) => Some(on.to_string()),
            },
            env: true,
            default: Some($default),
            apply: |low, text| {
                low.$on = on_off(text)?;
                Ok(())
            },
        }
    };
}

/// A `[retry]` key, in milliseconds: the config file alone sets it.
macro_rules! backoff {
    ($key:literal, $field:ident, $default:literal) => {
        Opt {
            key: $key,
            table: Table::Retry,
            flag: |_| None,
            env: false,
            default: Some($default),
            apply: |low, text| {
                low.$field = millis(text)?;
                Ok(())
            },
        }
    };
}

/// The options of `run`, in the order of `run --help`.
pub const OPTIONS: &[Opt] = &[
    Opt {
        key: "output",
        table: Table::Run,
        flag: |a| a.output.as_ref().map(|p| p.to_string_lossy().into_owned()),
        env: true,
        default: None,
        apply: |low, text| {
            low.output = Some(PathBuf::from(non_empty(
                text,
                "a file name, or - for standard output",
            )?));
            Ok(())
        },
    },
    Opt {
        key: "sheet",
        table: Table::Run,
        flag: |a| a.sheet.clone(),
        env: true,
        default: None,
        apply: |low, text| {
            low.sheet = Some(non_empty(text, "the name of a sheet of the workbook")?);
            Ok(())
        },
    },
    switch!("resume", resume, no_resume, "false"),
    switch!("dry_run", dry_run, no_dry_run, "false"),
    switch!("offline", offline, no_offline, "false"),
    Opt {
        key: "rate",
        table: Table::Run,
        flag: |a| a.rate.map(|v| v.to_string()),
        env: true,
        default: Some("20"),
        apply: |low, text| {
            low.rate = rate(text, 20)?;
            Ok(())
        },
    },
    Opt {
        key: "describe_rate",
        table: Table::Run,
        flag: |a| a.describe_rate.map(|v| v.to_string()),
        env: true,
        default: Some("10"),
        apply: |low, text| {
            low.describe_rate = rate(text, 10)?;
            Ok(())
        },
    },
    switch!("lookup", lookup, no_lookup, "true"),
    switch!("preflight", preflight, no_preflight, "true"),
    Opt {
        key: "rate_scope",
        table: Table::Run,
        flag: |a| a.rate_scope.map(|v| name_of(&v)),
        env: true,
        default: None,
        apply: |low, text| {
            low.rate_scope = Some(choice(text)?);
            Ok(())
        },
    },
    Opt {
        key: "concurrency",
        table: Table::Run,
        flag: |a| a.concurrency.map(|v| v.to_string()),
        env: true,
        default: Some("32"),
        apply: |low, text| {
            low.concurrency = whole(
                text,
                "give a whole number of requests, at least 1, such as 32",
            )?;
            Ok(())
        },
    },
    Opt {
        key: "max_attempts",
        table: Table::Run,
        flag: |a| a.max_attempts.map(|v| v.to_string()),
        env: true,
        default: Some("8"),
        apply: |low, text| {
            low.max_attempts = whole(
                text,
                "give a whole number of attempts, at least 1 (the first attempt counts), such as 8",
            )?;
            Ok(())
        },
    },
    Opt {
        key: "max_failures",
        table: Table::Run,
        flag: |a| a.max_failures.map(|v| v.to_string()),
        env: true,
        default: None,
        apply: |low, text| {
            low.max_failures = Some(cli::failure_limit(text)?);
            Ok(())
        },
    },
    Opt {
        key: "timeout",
        table: Table::Run,
        flag: |a| a.timeout.map(|v| v.to_string()),
        env: true,
        default: Some("10"),
        apply: |low, text| {
            let fix = format!(
                "give a number of seconds from {MIN_TIMEOUT_SECS} to {MAX_TIMEOUT_SECS}, such as 10"
            );
            let secs: f64 = text.parse().map_err(|_| format!("not a number: {fix}"))?;
            if !(secs.is_finite() && (MIN_TIMEOUT_SECS..=MAX_TIMEOUT_SECS).contains(&secs)) {
                return Err(fix);
            }
            low.timeout = secs;
            Ok(())
        },
    },
    Opt {
        key: "profile",
        table: Table::Run,
        flag: |a| a.profile.clone(),
        env: true,
        default: None,
        apply: |low, text| {
            low.profile = Some(profile_name(text)?);
            Ok(())
        },
    },
    Opt {
        key: "endpoint",
        table: Table::Run,
        flag: |a| a.endpoint.clone(),
        env: true,
        default: Some(super::DEFAULT_ENDPOINT),
        apply: |low, text| {
            low.endpoint = text.to_string();
            Ok(())
        },
    },
    switch!("simulate", simulate, no_simulate, "false"),
    Opt {
        key: "log_format",
        table: Table::Run,
        flag: |a| a.log_format.map(|v| name_of(&v)),
        env: true,
        default: Some("text"),
        apply: |low, text| {
            low.log_format = choice(text)?;
            Ok(())
        },
    },
    switch!("quiet", quiet, no_quiet, "false"),
    Opt {
        key: "verbose",
        table: Table::Run,
        // -vvv and more mean what -vv does: every request.
        flag: |a| (a.verbose > 0).then(|| a.verbose.min(2).to_string()),
        env: true,
        default: Some("0"),
        apply: |low, text| {
            low.verbose = match text.parse() {
                Ok(n) if n <= 2 => n,
                _ => return Err("give 0, 1 (debug) or 2 (every request)".into()),
            };
            Ok(())
        },
    },
    backoff!("base_ms", base_ms, "500"),
    backoff!("max_ms", max_ms, "20000"),
];

/// Variables read outside the table: the config file's path, and the metadata service's
/// URL (a test seam of the credentials chain).
pub const OTHER_VARIABLES: [&str; 2] = ["LIGHTHOUSE_SHARE_CONFIG", "LIGHTHOUSE_SHARE_METADATA_URL"];

impl Opt {
    /// `--max-attempts`
    pub fn flag_name(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }

    /// `LIGHTHOUSE_SHARE_MAX_ATTEMPTS`
    pub fn variable(&self) -> String {
        format!("LIGHTHOUSE_SHARE_{}", self.key.to_ascii_uppercase())
    }

    /// The setting as the user wrote it, showing `shown` for its value:
    /// `--rate -5`, `LIGHTHOUSE_SHARE_RATE=-5`, `config.toml: [run] rate = -5`.
    pub fn written(&self, origin: &Origin, shown: &str) -> String {
        match origin {
            Origin::Flag | Origin::Default => format!("{} {shown}", self.flag_name()),
            Origin::Env => format!("{}={shown}", self.variable()),
            Origin::File(path) => format!(
                "{}: [{}] {} = {shown}",
                crate::text::path(path),
                self.table.name(),
                self.key
            ),
        }
    }
}

/// The row of `key`.
pub fn option(key: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|opt| opt.key == key)
}

impl Low {
    /// How `key`'s value was written, for a check that compares two values.
    pub fn written(&self, key: &str, shown: &str) -> String {
        match (option(key), self.origins.get(key)) {
            (Some(opt), Some(origin)) => opt.written(origin, shown),
            _ => format!("{key} {shown}"),
        }
    }
}

/// Every variable the program reads under `LIGHTHOUSE_SHARE_`.
pub fn known_variables() -> Vec<String> {
    OPTIONS
        .iter()
        .filter(|opt| opt.env)
        .map(Opt::variable)
        .chain(OTHER_VARIABLES.iter().map(|name| name.to_string()))
        .collect()
}

/// A value as it can be shown in a message: long ones (a 300-digit number, a pasted file)
/// cut to a few characters, and control characters escaped, so that a message stays one
/// readable line.
pub fn shown(text: &str) -> String {
    const MOST_DIGITS: usize = 24;
    const MOST_TEXT: usize = 60;
    let text = text.trim();
    if text.is_empty() {
        return "\"\"".into();
    }
    let n_chars = text.chars().count();
    let short = match text.parse::<f64>() {
        Ok(number) if n_chars > MOST_DIGITS => format!("{number:.3e}"),
        _ if n_chars > MOST_TEXT => {
            format!("{}...", text.chars().take(MOST_TEXT).collect::<String>())
        }
        _ => text.to_string(),
    };
    short.escape_debug().to_string()
}

fn on_off(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("give true or false (or 1 / 0, yes / no, on / off)".into()),
    }
}

fn non_empty(text: &str, what: &str) -> Result<String, String> {
    match text.is_empty() {
        true => Err(format!("empty: give {what}")),
        false => Ok(text.to_string()),
    }
}

/// A rate: finite, from 0.001 to [`MAX_RATE`] requests per second.
fn rate(text: &str, example: u32) -> Result<f64, String> {
    let fix =
        format!("give the most requests per second, from 0.001 to {MAX_RATE}, such as {example}");
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && (0.001..=MAX_RATE).contains(&rate) => Ok(rate),
        Ok(_) => Err(fix),
        Err(_) => Err(format!("not a number: {fix}")),
    }
}

/// A whole number, at least 1.
fn whole<T: std::str::FromStr + PartialOrd + From<u8>>(text: &str, fix: &str) -> Result<T, String> {
    match text.parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(n),
        _ => Err(fix.to_string()),
    }
}

fn millis(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(ms) if ms <= MAX_BACKOFF_MS => Ok(ms),
        Ok(_) => Err(format!(
            "give at most {MAX_BACKOFF_MS} (10 minutes): a longer wait between attempts looks like a hang"
        )),
        Err(_) => Err(format!(
            "give a whole number of milliseconds, at most {MAX_BACKOFF_MS}"
        )),
    }
}

fn choice<T: ValueEnum>(text: &str) -> Result<T, String> {
    T::from_str(text, true).map_err(|_| {
        let names: Vec<String> = T::value_variants().iter().map(name_of).collect();
        format!("give one of {}", names.join(", "))
    })
}

/// The name clap knows a choice by.
fn name_of<T: ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// The rule a profile name follows, for the message that refuses one.
pub const PROFILE_RULE: &str = "a profile name is letters, digits, `-`, `_` and `.`, not starting with `.` (it names a section of the credentials file and tccli's file ~/.tccli/NAME.credential, never a path)";

/// A profile name: a name, never a path (`../x`, `/tmp/x`) nor empty.
pub fn profile_name(text: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    match !text.is_empty() && !text.starts_with('.') && text.chars().all(allowed) {
        true => Ok(text.to_string()),
        false => Err(format!("not a profile name: {PROFILE_RULE}")),
    }
}
