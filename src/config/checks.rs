//! Checks of single settings that need more than a parser: where the results go (never over
//! the input), and what an endpoint may be (nothing signed crosses a network in clear).

use std::path::{Path, PathBuf};

use super::{ConfigError, DEFAULT_ENDPOINT, error};
use crate::api::{Endpoint, is_loopback};
use crate::input::is_workbook;

/// `INPUT` with its extension replaced by `.results.csv` (`.results.xlsx` for a workbook);
/// for standard input, `stdin.results.csv`.
pub fn default_output(input: &Path) -> PathBuf {
    if input == Path::new("-") {
        return PathBuf::from("stdin.results.csv");
    }
    match is_workbook(input) {
        true => input.with_extension("results.xlsx"),
        false => input.with_extension("results.csv"),
    }
}

/// `path` with `suffix` added to its file name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Refuses to write over the input: a results file, record or lock that is the input.
pub fn refuse_input(input: &Path, ours: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let same = match (std::fs::metadata(input), std::fs::metadata(ours)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => input == ours,
    };
    match same {
        true => Err(error(format!(
            "{} is the input itself: a run never writes over its input. Give the results another name with --output",
            crate::text::path(ours)
        ))),
        false => Ok(()),
    }
}

/// Only `https://`, or `http://` to a loopback host: nothing signed crosses a network in
/// clear. No user or password in the URL (the client would send it as Basic auth, and it
/// would be shown): it is never echoed. No placeholder but `{region}`.
/// `written` shows the setting as the user wrote it, given the template to show.
pub fn check_endpoint(template: &str, written: impl Fn(&str) -> String) -> Result<(), ConfigError> {
    let shown = without_userinfo(template);
    let refuse = |why: String| error(format!("{}: {why}", written(&shown)));
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
