//! The config file (SPEC §7): TOML, every key optional. `[run]` and `[retry]` are read as
//! text through the option table's parsers, like a flag or a variable; `[credentials]` is
//! read as secrets. A key the table does not know draws a warning naming the nearest known
//! one, or stops the run when it is that close to one (a typo of an option the user meant).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::table::OPTIONS;
use super::{ConfigError, error};
use crate::credentials::FileCredentials;
use crate::suggest;

/// The config file, read and checked; empty when there is none.
#[derive(Debug, Default)]
pub struct FileConfig {
    path: PathBuf,
    run: toml::Table,
    retry: toml::Table,
    pub credentials: FileCredentials,
    /// Unknown keys far from every known one: said, and otherwise ignored.
    pub warnings: Vec<String>,
}

/// The `[credentials]` table alone, read with its line numbers for errors.
#[derive(Deserialize)]
struct CredentialsOnly {
    #[serde(default)]
    credentials: FileCredentials,
}

/// The tables the file may hold.
const TABLES: [&str; 3] = ["run", "retry", "credentials"];
/// The keys of `[credentials]` (SPEC §6).
const CREDENTIAL_KEYS: [&str; 3] = ["secret_id", "secret_key", "token"];

impl FileConfig {
    /// Reads and checks the file at `path`: exit 2 for what cannot be read or is a near
    /// miss of a known key; a warning for any other unknown key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            error(format!(
                "cannot read the config file {}: {e}",
                crate::text::path(path)
            ))
        })?;
        let mut table: toml::Table = text
            .parse()
            .map_err(|e| toml_error(path, &text, "is not valid TOML", &e))?;
        let warnings = check_keys(path, &table)?;
        let CredentialsOnly { credentials } = toml::from_str(&text)
            .map_err(|e| toml_error(path, &text, "has a value of the wrong kind", &e))?;
        let mut take = |name: &str| match table.remove(name) {
            Some(toml::Value::Table(inner)) => inner,
            _ => toml::Table::new(),
        };
        Ok(Self {
            path: path.to_path_buf(),
            run: take("run"),
            retry: take("retry"),
            credentials,
            warnings,
        })
    }

    /// The file's path; empty when there is no file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text of `[table] key`, as the option's parser reads it; `None` if unset.
    pub fn text(&self, table: &str, key: &str) -> Result<Option<String>, ConfigError> {
        let values = match table {
            "retry" => &self.retry,
            _ => &self.run,
        };
        Ok(match values.get(key) {
            None => None,
            Some(toml::Value::String(text)) => Some(text.clone()),
            Some(toml::Value::Integer(n)) => Some(n.to_string()),
            Some(toml::Value::Float(x)) => Some(x.to_string()),
            Some(toml::Value::Boolean(on)) => Some(on.to_string()),
            Some(_) => {
                return Err(error(format!(
                    "{}: [{table}] {key}: give one value (a number, true or false, or text in quotes)",
                    crate::text::path(&self.path)
                )));
            }
        })
    }
}

/// The keys `[table]` may hold.
fn known_keys(table: &str) -> Vec<&'static str> {
    match table {
        "credentials" => CREDENTIAL_KEYS.to_vec(),
        name => OPTIONS
            .iter()
            .filter(|opt| opt.table.name() == name)
            .map(|opt| opt.key)
            .collect(),
    }
}

/// An unknown table or key: a typo of a known one (near it) stops the run, since the option
/// meant is not in force; any other is a warning, and ignored.
fn check_keys(path: &Path, table: &toml::Table) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    let mut unknown = |what: &str, name: &str, known: &[&str]| match suggest::nearest(name, known) {
        Some(near) => Err(error(format!(
            "{}: unknown {what} `{name}`: did you mean `{near}`?",
            crate::text::path(path)
        ))),
        None => {
            warnings.push(format!(
                "{}: unknown {what} `{}` is ignored (known: {})",
                crate::text::path(path),
                super::table::shown(name),
                known.join(", ")
            ));
            Ok(())
        }
    };
    for (name, value) in table {
        let home = ["run", "retry"]
            .into_iter()
            .find(|table| known_keys(table).contains(&name.as_str()));
        if let (Some(home), false) = (home, value.is_table()) {
            return Err(error(format!(
                "{}: `{name}` is a key of [{home}]: put it below a [{home}] line",
                crate::text::path(path)
            )));
        }
        if !TABLES.contains(&name.as_str()) {
            unknown("table", name, &TABLES)?;
            continue;
        }
        let Some(inner) = value.as_table() else {
            return Err(error(format!(
                "{}: `{name}` must be a table ([{name}])",
                crate::text::path(path)
            )));
        };
        let keys = known_keys(name);
        for key in inner.keys().filter(|key| !keys.contains(&key.as_str())) {
            unknown(&format!("key in [{name}]"), key, &keys)?;
        }
    }
    Ok(warnings)
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
    error(format!("{} {what}{at}: {message}", crate::text::path(path)))
}

/// `[table]` keys, for the test that checks the example file names each.
#[cfg(test)]
pub fn all_keys() -> Vec<(&'static str, Vec<&'static str>)> {
    TABLES.iter().map(|t| (*t, known_keys(t))).collect()
}
