//! Results: the record of a run and the results file rendered from it.
//!
//! The record (`OUTPUT.journal`, [`Journal`]) is the source of truth: every finished row is
//! appended to it the moment it is final, keyed by the row's [`Identity`] (SPEC §2), and a
//! header binds it to the run's target. Only this program writes it, and it is opened so that
//! nothing planted at its name is followed. `--resume` reads it ([`Resume`]); the results
//! file is rendered from it and the input at the end of a run ([`render`]) and atomically
//! replaced, so deleting or editing the results file during a run changes nothing.

mod identity;
mod journal;
mod pairing;
mod render;
mod resume;
mod sorter;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::api::{Class, classify};

pub use identity::{Asks, Identity, Occurrences, Repeats, ask, ask_of};
pub use journal::{Journal, Recorded, SIMULATOR as SIMULATOR_TARGET, refused_link, spawn_journal};
pub use render::{Destination, Fits, MAX_XLSX_CELL, PAST_HEADER, Rendered, columns, render};
pub use resume::{Footprint, Kept, Resume, Sharing, image_key};

/// A row's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Shared,
    Unshared,
    AlreadyShared,
    AlreadyUnshared,
    Failed,
    Invalid,
    Skipped,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Shared,
        Status::Unshared,
        Status::AlreadyShared,
        Status::AlreadyUnshared,
        Status::Failed,
        Status::Invalid,
        Status::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Shared => "shared",
            Status::Unshared => "unshared",
            Status::AlreadyShared => "already_shared",
            Status::AlreadyUnshared => "already_unshared",
            Status::Failed => "failed",
            Status::Invalid => "invalid",
            Status::Skipped => "skipped",
        }
    }

    /// Whether the row is as asked.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Status::Shared | Status::Unshared | Status::AlreadyShared | Status::AlreadyUnshared
        )
    }
}

/// What became of one row: a record of the journal, and the result columns of its row in
/// the results file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub identity: Identity,
    /// Where the row was in the input when it finished; the results file shows where it is
    /// now.
    pub line: u64,
    pub status: Status,
    pub blueprint_id: Option<String>,
    pub request_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: u32,
    pub finished_at: String,
}

impl Outcome {
    /// An outcome for the row `identity` at `line`, finished now, nothing else filled in.
    pub fn new(identity: Identity, line: u64, status: Status) -> Self {
        Self {
            identity,
            line,
            status,
            blueprint_id: None,
            request_id: None,
            error_code: None,
            error_message: None,
            attempts: 0,
            // Empty when the clock reads no date: the sender stops the job on that clock
            // (`clock::ClockError`) before a row could be recorded with a wrong time.
            finished_at: crate::clock::rfc3339(SystemTime::now()).unwrap_or_default(),
        }
    }

    pub fn with_error(mut self, code: &str, message: &str) -> Self {
        self.error_code = Some(code.to_string());
        self.error_message = Some(message.to_string());
        self
    }

    /// Whether a later run keeps this row rather than running it again: successes, and
    /// failures that another attempt cannot mend.
    pub fn is_final(&self) -> bool {
        match self.status {
            Status::Failed => {
                let code = self.error_code.as_deref().unwrap_or_default();
                matches!(
                    classify(code, self.identity.permission),
                    Class::Permanent | Class::RegionFatal
                )
            }
            status => status.is_success(),
        }
    }
}

/// How many rows ended in each status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub by_status: BTreeMap<Status, u64>,
}

impl Counts {
    pub fn get(&self, status: Status) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    pub fn add(&mut self, status: Status) {
        *self.by_status.entry(status).or_default() += 1;
    }

    pub fn total(&self) -> u64 {
        self.by_status.values().sum()
    }
}

/// Guards a CSV cell that came from outside against formula injection: a spreadsheet shows
/// it as text. Anything starting with `=`, `+`, `-`, `@`, a tab or a carriage return is
/// guarded unless it is a plain decimal number (`-5`, `+1.5`, `-2e3`): `-inf`, `+NaN` and
/// `-Infinity` are read by a spreadsheet as formulas, so they are guarded too.
pub fn guard(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) && !is_plain_number(text) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

/// A decimal number as a spreadsheet reads one: an optional sign, digits with at most one
/// point, an optional exponent; nothing else (no `inf`, `NaN`, spaces or hex).
fn is_plain_number(text: &str) -> bool {
    let text = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => {
            (digits(whole) || whole.is_empty())
                && (digits(fraction) || fraction.is_empty())
                && !(whole.is_empty() && fraction.is_empty())
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// The error code of an `invalid` row: its message says which cell is wrong and the fix.
pub const INVALID_INPUT: &str = "InvalidInput";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_a_spreadsheet_would_run_is_quoted_and_numbers_are_not() {
        for text in [
            "=HYPERLINK(1)",
            "+1x",
            "-cmd",
            "@SUM",
            "\tx",
            "\rx",
            "-inf",
            "-NaN",
            "+nan",
            "+Infinity",
            "-infinity",
            "-",
            "+.",
            "-1e",
            "-0x10",
            "- 5",
            "\t5",
        ] {
            assert_eq!(guard(text), format!("'{text}"), "{text:?}");
        }
        for text in [
            "image busy",
            "-5",
            "+1.5",
            "-.5",
            "-5.",
            "-2e3",
            "+1.5E-7",
            "'=already guarded",
            "NaN",
            "inf",
        ] {
            assert_eq!(guard(text), text);
        }
    }
}
