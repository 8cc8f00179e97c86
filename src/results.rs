//! Results: the journal that each finished row is appended to at once, the compaction that
//! rewrites it as one sorted row per input row, and the reading of it back for `--resume`.
//!
//! Crash safety comes from the order of things: a row is written and flushed to the file the
//! moment it is final (fsynced in small batches), the final rewrite goes through a temporary
//! file, fsync and an atomic rename, and a torn last line is ignored when the file is read.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::api::{self, Class};
use crate::input::{self, Record};

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
            finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
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

/// The results file while the run goes on: rows are appended as they finish.
pub struct Journal {
    csv: csv::Writer<BufWriter<File>>,
    /// Rows written since the last fsync.
    unsynced: bool,
    last_sync: Instant,
}

impl Journal {
    /// Starts a new results file (`resume == false`) or continues an existing one, cutting
    /// off a torn last line first.
    pub fn open(path: &Path, resume: bool) -> anyhow::Result<Self> {
        let mut file = if resume && path.exists() {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .with_context(|| format!("cannot open {} to continue it", path.display()))?;
            let complete = complete_length(&mut file)?;
            file.set_len(complete)?;
            file.seek(SeekFrom::End(0))?;
            if complete == 0 {
                file.write_all(HEADER.as_bytes())?;
            }
            file
        } else {
            let mut file = File::create(path)
                .with_context(|| format!("cannot create the results file {}", path.display()))?;
            file.write_all(HEADER.as_bytes())?;
            file
        };
        file.flush()?;
        Ok(Self {
            csv: writer(BufWriter::new(file)),
            unsynced: false,
            last_sync: Instant::now(),
        })
    }

    /// Appends rows that finished together and flushes them to the file at once, so a crash
    /// of the process loses none; fsyncs at most once a second, so a crash of the machine
    /// loses at most the last second.
    pub fn append(&mut self, outcomes: &[Outcome]) -> io::Result<()> {
        for outcome in outcomes {
            write_outcome(&mut self.csv, outcome)?;
        }
        self.csv.flush()?;
        self.unsynced = true;
        if self.last_sync.elapsed().as_secs() >= 1 {
            self.sync()?;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> io::Result<()> {
        self.csv.flush()?;
        if self.unsynced {
            self.csv.get_ref().get_ref().sync_data()?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }
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

/// What `--resume` takes from a results file: for each line, the fingerprint of the row kept
/// there (0: nothing kept, the row runs again). Four bytes a line, whatever the file holds.
#[derive(Default)]
pub struct Resume {
    kept: Vec<u32>,
}

impl Resume {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let mut resume = Self::default();
        if !path.exists() {
            return Ok(resume);
        }
        for row in read_rows(path)? {
            let row = row?;
            let line = usize::try_from(row.line)?;
            if resume.kept.len() <= line {
                resume.kept.resize(line + 1, 0);
            }
            resume.kept[line] = if row.is_final() {
                Outcome::fingerprint(&row.region, &row.image_id, &row.permission)
            } else {
                0
            };
        }
        Ok(resume)
    }

    /// The lines of the kept rows, in order.
    pub fn kept_lines(&self) -> impl Iterator<Item = u64> + '_ {
        self.kept
            .iter()
            .enumerate()
            .filter(|(_, fingerprint)| **fingerprint != 0)
            .map(|(line, _)| line as u64)
    }

    /// Whether the row at `line` is done and kept.
    pub fn is_kept(&self, line: u64) -> bool {
        self.kept_fingerprint(line) != 0
    }

    fn kept_fingerprint(&self, line: u64) -> u32 {
        usize::try_from(line)
            .ok()
            .and_then(|i| self.kept.get(i).copied())
            .unwrap_or(0)
    }

    /// Checks that a kept row asked for what the input's row at its line asks for.
    pub fn check(&self, record: &Record, results: &Path) -> anyhow::Result<()> {
        let kept = self.kept_fingerprint(record.line);
        if kept != 0
            && kept != Outcome::fingerprint(&record.region, &record.image_id, &record.permission)
        {
            bail!(
                "{} does not belong to this input: its row for line {} is not {},{},{}. Give this input its own --output, or drop --resume to start afresh",
                results.display(),
                record.line,
                record.region,
                record.image_id,
                record.permission
            );
        }
        Ok(())
    }
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

/// Rows sorted in memory before they spill to a temporary file, bounding memory.
const SORT_CHUNK: usize = 20_000;

/// Rewrites the results file as exactly one row per input data row, sorted by line: the last
/// row written for a line wins; a line with none is `invalid` (if its row fails the checks)
/// or `skipped`. Goes through a temporary file, fsync and an atomic rename.
pub fn compact(input: &Path, results: &Path) -> anyhow::Result<Counts> {
    compact_in_chunks(input, results, SORT_CHUNK)
}

fn compact_in_chunks(input: &Path, results: &Path, chunk_rows: usize) -> anyhow::Result<Counts> {
    let mut sorted = sort_by_line(results, chunk_rows)?.peekable();
    let temporary = temporary_path(results);
    let file = File::create(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    let mut sink = BufWriter::new(file);
    sink.write_all(HEADER.as_bytes())?;
    let mut csv = writer(sink);
    let mut counts = Counts::default();
    for record in input::Reader::open(input)? {
        let record = record?;
        let mut last = None;
        while let Some(row) =
            sorted.next_if(|row| row.as_ref().map_or(true, |r| r.line <= record.line))
        {
            let row = row?;
            if row.line == record.line {
                last = Some(row);
            }
        }
        let outcome = last.unwrap_or_else(|| match record.validate() {
            Err(message) => {
                Outcome::new(&record, Status::Invalid).with_error("InvalidInput", &message)
            }
            Ok(_) => Outcome::new(&record, Status::Skipped),
        });
        counts.add(&outcome);
        write_outcome(&mut csv, &outcome)?;
    }
    let sink = csv.into_inner().map_err(|e| e.into_error())?;
    let file = sink.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&temporary, results)
        .with_context(|| format!("cannot replace {}", results.display()))?;
    if let Some(dir) = results.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).ok();
    }
    Ok(counts)
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The results file's rows in (line, order written) order: an external merge sort in chunks
/// of `chunk_rows` rows, so memory stays flat however long the file is.
fn sort_by_line(
    path: &Path,
    chunk_rows: usize,
) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<Outcome>>>> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut runs: Vec<Run> = Vec::new();
    let mut chunk = Vec::new();
    if path.exists() {
        for row in read_rows(path)? {
            chunk.push(row?);
            if chunk.len() == chunk_rows {
                runs.push(spill(&mut chunk, dir)?);
            }
        }
    }
    // The sorts are stable: rows of one line stay in the order they were written.
    if runs.is_empty() {
        chunk.sort_by_key(|row| row.line);
        return Ok(Box::new(chunk.into_iter().map(Ok)));
    }
    if !chunk.is_empty() {
        runs.push(spill(&mut chunk, dir)?);
    }
    Ok(Box::new(Merge::new(runs)))
}

type Run = Box<dyn Iterator<Item = anyhow::Result<Outcome>>>;

/// Sorts `chunk` into a temporary file (deleted when dropped) and returns its reader.
fn spill(chunk: &mut Vec<Outcome>, dir: &Path) -> anyhow::Result<Run> {
    chunk.sort_by_key(|row| row.line);
    let mut file = tempfile::tempfile_in(dir)
        .with_context(|| format!("cannot make a temporary file in {}", dir.display()))?;
    {
        let mut csv = csv::Writer::from_writer(BufWriter::new(&mut file));
        for row in chunk.drain(..) {
            csv.serialize(row)?;
        }
        csv.flush()?;
    }
    file.seek(SeekFrom::Start(0))?;
    let rows = csv::Reader::from_reader(BufReader::new(file))
        .into_deserialize::<Outcome>()
        .map(|row| row.context("cannot read back a sort run"));
    Ok(Box::new(rows))
}

/// A k-way merge of sorted runs; ties go to the earlier run, which was written earlier.
struct Merge {
    runs: Vec<Run>,
    heads: BinaryHeap<Reverse<(u64, usize)>>,
    pending: Vec<Option<Outcome>>,
    error: Option<anyhow::Error>,
}

impl Merge {
    fn new(runs: Vec<Run>) -> Self {
        let n_runs = runs.len();
        let mut merge = Self {
            runs,
            heads: BinaryHeap::new(),
            pending: (0..n_runs).map(|_| None).collect(),
            error: None,
        };
        for i in 0..n_runs {
            merge.advance(i);
        }
        merge
    }

    /// Moves run `i`'s next row into the heap.
    fn advance(&mut self, i: usize) {
        match self.runs[i].next() {
            Some(Ok(row)) => {
                self.heads.push(Reverse((row.line, i)));
                self.pending[i] = Some(row);
            }
            Some(Err(error)) => self.error = Some(error),
            None => {}
        }
    }
}

impl Iterator for Merge {
    type Item = anyhow::Result<Outcome>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
        let Reverse((_, i)) = self.heads.pop()?;
        let row = self.pending[i].take()?;
        self.advance(i);
        Some(Ok(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: u64, image: &str) -> Record {
        Record {
            line,
            region: "ap-seoul".into(),
            image_id: image.into(),
            permission: "SHARE".into(),
        }
    }

    fn read_back(path: &Path) -> Vec<Outcome> {
        read_rows(path).unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn compaction_keeps_the_last_row_per_line_sorted_and_fills_the_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        let mut csv = String::from("region,image_id,permission\n");
        for line in 2..=60 {
            csv.push_str(&format!("ap-seoul,img-{line:08},SHARE\n"));
        }
        csv.push_str("ap-seoul,img-BAD,SHARE\n");
        std::fs::write(&input, csv).unwrap();
        let results = dir.path().join("out.csv");
        let mut journal = Journal::open(&results, false).unwrap();
        // Finished out of order, line 10 twice (skipped first, then shared on a resume), and
        // lines 2..=5 never: they must come out skipped.
        for line in (6..=60).rev() {
            let status = if line == 10 {
                Status::Skipped
            } else {
                Status::Shared
            };
            journal
                .append(&[Outcome::new(
                    &record(line, &format!("img-{line:08}")),
                    status,
                )])
                .unwrap();
        }
        journal
            .append(&[Outcome::new(&record(10, "img-00000010"), Status::Shared)])
            .unwrap();
        journal.sync().unwrap();
        let counts = compact_in_chunks(&input, &results, 7).unwrap();
        let rows = read_back(&results);
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(
            lines,
            (2..=61).collect::<Vec<_>>(),
            "one row per input row, sorted"
        );
        assert_eq!(
            rows[8].status,
            Status::Shared,
            "the last row written for line 10 wins"
        );
        assert_eq!(counts.get(Status::Skipped), 4);
        assert_eq!(counts.get(Status::Invalid), 1);
        assert_eq!(counts.get(Status::Shared), 55);
        assert!(
            rows[59]
                .error_message
                .as_deref()
                .unwrap()
                .contains("img-BAD")
        );
    }

    #[test]
    fn a_torn_last_line_is_dropped_on_reading_and_cut_on_resuming() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("out.csv");
        let mut journal = Journal::open(&results, false).unwrap();
        journal
            .append(&[Outcome::new(&record(2, "img-00000002"), Status::Shared)])
            .unwrap();
        journal.sync().unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&results).unwrap();
        file.write_all(b"3,ap-seoul,img-00000003,SHARE,sha")
            .unwrap();
        let resume = Resume::load(&results).unwrap();
        assert!(resume.is_kept(2) && !resume.is_kept(3));
        let mut journal = Journal::open(&results, true).unwrap();
        journal
            .append(&[Outcome::new(&record(3, "img-00000003"), Status::Unshared)])
            .unwrap();
        journal.sync().unwrap();
        let rows = read_back(&results);
        assert_eq!(
            rows.iter().map(|r| r.status).collect::<Vec<_>>(),
            [Status::Shared, Status::Unshared]
        );
    }

    #[test]
    fn resume_keeps_final_rows_and_refuses_another_input() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("out.csv");
        let mut journal = Journal::open(&results, false).unwrap();
        let failed = |line, code: &str| {
            Outcome::new(&record(line, "img-00000009"), Status::Failed).with_error(code, "m")
        };
        journal
            .append(&[Outcome::new(&record(2, "img-00000002"), Status::Shared)])
            .unwrap();
        journal
            .append(&[Outcome::new(&record(3, "img-00000003"), Status::Skipped)])
            .unwrap();
        journal
            .append(&[failed(4, "ResourceNotFound.ImageIdNotFound")])
            .unwrap();
        journal.append(&[failed(5, "Timeout")]).unwrap();
        journal
            .append(&[failed(6, "AuthFailure.SignatureFailure")])
            .unwrap();
        journal.sync().unwrap();
        let resume = Resume::load(&results).unwrap();
        let kept: Vec<u64> = (2..=6).filter(|line| resume.is_kept(*line)).collect();
        assert_eq!(kept, [2, 4], "successes and permanent failures are kept");
        assert!(resume.check(&record(2, "img-00000002"), &results).is_ok());
        let mut upper = record(2, "img-00000002");
        upper.region = "AP-SEOUL".into();
        assert!(
            resume.check(&upper, &results).is_ok(),
            "case does not matter"
        );
        let error = resume
            .check(&record(2, "img-00000099"), &results)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("does not belong to this input") && error.contains("line 2"),
            "{error}"
        );
    }

    #[test]
    fn free_text_that_a_spreadsheet_would_run_is_quoted() {
        for text in ["=HYPERLINK(1)", "+1", "-1", "@SUM", "\tx", "\rx"] {
            assert_eq!(guard(text), format!("'{text}"));
        }
        assert_eq!(guard("image busy"), "image busy");
    }
}
