//! Results: the journal that each finished row is appended to at once, the compaction that
//! rewrites it as one sorted row per input row, and the reading of it back for `--resume`.
//!
//! Crash safety comes from the order of things: a row is written and flushed to the file the
//! moment it is final (fsynced in small batches), the final rewrite goes through a temporary
//! file, fsync and an atomic rename, and a torn last line is ignored when the file is read.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::api::{self, Class};
use crate::input::Record;

mod compact;
mod journal;
mod resume;

pub use compact::compact;
pub use journal::{Journal, spawn_journal};
pub use resume::Resume;

/// A row's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Shared,
    Unshared,
    AlreadyShared,
    Failed,
    Invalid,
    Skipped,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Shared,
        Status::Unshared,
        Status::AlreadyShared,
        Status::Failed,
        Status::Invalid,
        Status::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Shared => "shared",
            Status::Unshared => "unshared",
            Status::AlreadyShared => "already_shared",
            Status::Failed => "failed",
            Status::Invalid => "invalid",
            Status::Skipped => "skipped",
        }
    }
}

/// One row of the results file, in its column order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub line: u64,
    pub region: String,
    pub image_id: String,
    pub permission: String,
    pub status: Status,
    pub blueprint_id: Option<String>,
    pub request_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: u32,
    pub finished_at: String,
}

impl Outcome {
    /// An outcome for `record`, finished now, with nothing else filled in.
    pub fn new(record: &Record, status: Status) -> Self {
        Self {
            line: record.line,
            region: record.region.clone(),
            image_id: record.image_id.clone(),
            permission: record.permission.clone(),
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

    /// Whether a later run keeps this row rather than running it again: successes, invalid
    /// rows, and failures that another attempt cannot mend.
    pub fn is_final(&self) -> bool {
        match self.status {
            Status::Shared | Status::Unshared | Status::AlreadyShared | Status::Invalid => true,
            Status::Skipped => false,
            Status::Failed => {
                let code = self.error_code.as_deref().unwrap_or_default();
                let permission = crate::action::Permission::parse(&self.permission)
                    .unwrap_or(crate::action::Permission::Share);
                matches!(
                    api::classify(code, permission),
                    Class::Permanent | Class::RegionFatal
                )
            }
        }
    }

    /// A stable digest of what the row asked for, to tell whether a results file belongs to
    /// an input. Never zero, so that zero can mean "no row".
    pub fn fingerprint(region: &str, image_id: &str, permission: &str) -> u32 {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in [region, image_id, permission]
            .join("\u{1f}")
            .to_ascii_lowercase()
            .bytes()
        {
            hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
        hash.max(1)
    }
}

/// Guards a free-text cell against formula injection: a spreadsheet shows it as text.
fn guard(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

fn writer<W: Write>(sink: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(sink)
}

const HEADER: &str = "line,region,image_id,permission,status,blueprint_id,request_id,error_code,error_message,attempts,finished_at\n";

fn write_outcome<W: Write>(csv: &mut csv::Writer<W>, outcome: &Outcome) -> io::Result<()> {
    let guarded = outcome.error_message.as_deref().map(guard);
    if guarded == outcome.error_message {
        // Nearly every row: nothing to guard, nothing to copy.
        return csv.serialize(outcome).map_err(io::Error::other);
    }
    let guarded = Outcome {
        error_message: guarded,
        ..outcome.clone()
    };
    csv.serialize(&guarded).map_err(io::Error::other)
}

/// The length of the file up to its last newline: what a crash left intact.
fn complete_length(file: &mut File) -> io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut position = len;
    let mut buffer = [0u8; 4096];
    while position > 0 {
        let chunk = position.min(buffer.len() as u64);
        position -= chunk;
        file.seek(SeekFrom::Start(position))?;
        file.read_exact(&mut buffer[..chunk as usize])?;
        if let Some(i) = buffer[..chunk as usize].iter().rposition(|b| *b == b'\n') {
            return Ok(position + i as u64 + 1);
        }
    }
    Ok(0)
}

/// Reads the intact rows of a results file, in the order they were written.
fn read_rows(path: &Path) -> anyhow::Result<impl Iterator<Item = anyhow::Result<Outcome>>> {
    let mut file = File::open(path)
        .with_context(|| format!("cannot read the results file {}", path.display()))?;
    let complete = complete_length(&mut file)?;
    file.seek(SeekFrom::Start(0))?;
    let csv = csv::ReaderBuilder::new().from_reader(BufReader::new(file.take(complete)));
    let path = path.to_path_buf();
    Ok(csv.into_deserialize::<Outcome>().map(move |row| {
        row.with_context(|| {
            format!(
                "{} is not a results file of lighthouse-share (or was edited); give another --output",
                path.display()
            )
        })
    }))
}

/// How many rows ended in each status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub by_status: std::collections::BTreeMap<Status, u64>,
    /// Attempts beyond the first, over all rows.
    pub retries: u64,
}

impl Counts {
    pub fn get(&self, status: Status) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    pub fn add(&mut self, outcome: &Outcome) {
        *self.by_status.entry(outcome.status).or_default() += 1;
        self.retries += u64::from(outcome.attempts.saturating_sub(1));
    }

    pub fn total(&self) -> u64 {
        self.by_status.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_that_a_spreadsheet_would_run_is_quoted() {
        for text in ["=HYPERLINK(1)", "+1", "-1", "@SUM", "\tx", "\rx"] {
            assert_eq!(guard(text), format!("'{text}"));
        }
        assert_eq!(guard("image busy"), "image busy");
    }
}
