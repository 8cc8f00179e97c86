//! Where an option's value comes from (SPEC §7): the first of the flag, the variable
//! `LIGHTHOUSE_SHARE_<KEY>`, the config file and the default that sets it. Every value is read
//! by its row's parser in the option table, so a message names the place it came from.

use super::file::FileConfig;
use super::table::{Low, OPTIONS, Opt, Origin, shown};
use super::{ConfigError, error};
use crate::cli::RunArgs;
use crate::credentials::Env;

/// Reads every option from the first place that sets it, each through its own parser.
pub fn walk(args: &RunArgs, env: Env<'_>, file: &FileConfig) -> Result<Low, ConfigError> {
    let mut low = Low::default();
    for opt in OPTIONS {
        let Some((text, origin)) = given(opt, args, env, file)? else {
            continue;
        };
        // A variable's stray spaces (`export X= 5`) are not part of its value; a flag's
        // or a file's text is taken as written (a sheet name may end in a space).
        let value = match origin {
            Origin::Env => text.trim(),
            _ => text.as_str(),
        };
        (opt.apply)(&mut low, value)
            .map_err(|why| error(format!("{}: {why}", opt.written(&origin, &shown(&text)))))?;
        low.origins.insert(opt.key, origin);
    }
    Ok(low)
}

/// The first place that sets `opt`, and its text there; the default last.
fn given(
    opt: &Opt,
    args: &RunArgs,
    env: Env<'_>,
    file: &FileConfig,
) -> Result<Option<(String, Origin)>, ConfigError> {
    if let Some(text) = (opt.flag)(args) {
        return Ok(Some((text, Origin::Flag)));
    }
    if opt.env
        && let Some(text) = env(&opt.variable()).filter(|text| !text.trim().is_empty())
    {
        return Ok(Some((text, Origin::Env)));
    }
    if let Some(text) = file.text(opt.table.name(), opt.key)? {
        return Ok(Some((text, Origin::File(file.path().to_path_buf()))));
    }
    Ok(opt.default.map(|text| (text.to_string(), Origin::Default)))
}
