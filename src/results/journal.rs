//! The journal: the run's record, one JSON line per finished row, appended the moment the row
//! is final. Its first line names the target the rows were run against, so a rehearsal's
//! record never stands for a real run's.
//!
//! Crash safety comes from the order of things: a row is flushed to the file when it
//! finishes (fsynced at most a second later), each record is one line (JSON escapes the
//! newlines of a message), and a torn last line is ignored when read and cut before appending.
//! The file is only ever opened without following a symbolic link, and created only where
//! nothing exists.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Outcome, Status};

/// What the first line of a record says.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    record: String,
    version: u32,
    /// `simulator`, or the endpoint template the rows were sent to.
    target: String,
}

const RECORD: &str = "lighthouse-share";
const VERSION: u32 = 1;

/// Opens a file that must not be a symbolic link.
fn open_no_follow(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    options
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(refused_link)
}

/// A link at a name this tool writes is refused, not followed: say so in words, not as
/// "Too many levels of symbolic links".
pub fn refused_link(error: io::Error) -> io::Error {
    match error.raw_os_error() == Some(libc::ELOOP) {
        true => io::Error::other(
            "it is a symbolic link, which this tool never follows at the names it writes: remove the link (or give another --output)",
        ),
        false => error,
    }
}

/// The record while the run goes on: rows are appended as they finish.
pub struct Journal {
    file: BufWriter<File>,
    /// Rows written since the last fsync.
    unsynced: bool,
    last_sync: Instant,
}

impl Journal {
    /// Starts a record at `path` for `target`. Nothing may exist there: an existing file or
    /// link is never followed or truncated.
    pub fn create(path: &Path, target: &str) -> anyhow::Result<Self> {
        let file = open_no_follow(OpenOptions::new().write(true).create_new(true), path)
            .with_context(|| format!("cannot create the record {}", crate::text::path(path)))?;
        let mut journal = Self::new(file);
        if let Err(error) = journal.write_header(target) {
            // Half a header is no record: leave nothing that a next run would refuse.
            let _ = std::fs::remove_file(path);
            return Err(error.context(format!(
                "cannot write the record {}",
                crate::text::path(path)
            )));
        }
        Ok(journal)
    }

    /// Continues the record at `path`, which must be for `target`; a torn last line is cut
    /// off first. A record that does not exist yet is created.
    pub fn resume(path: &Path, target: &str) -> anyhow::Result<Self> {
        let mut file = match open_no_follow(OpenOptions::new().read(true).write(true), path) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Self::create(path, target);
            }
            opened => opened
                .with_context(|| format!("cannot open the record {}", crate::text::path(path)))?,
        };
        let complete = complete_length(&mut file)?;
        file.set_len(complete)?;
        file.seek(SeekFrom::Start(0))?;
        let header = read_header(&mut BufReader::new(&mut file), path)?;
        file.seek(SeekFrom::End(0))?;
        let mut journal = Self::new(file);
        match header {
            Some(header) => check_target(&header, target, path)?,
            // A crash before the header was whole: nothing was recorded yet.
            None => journal.write_header(target)?,
        }
        Ok(journal)
    }

    fn new(file: File) -> Self {
        Self {
            file: BufWriter::new(file),
            unsynced: false,
            last_sync: Instant::now(),
        }
    }

    fn write_header(&mut self, target: &str) -> anyhow::Result<()> {
        let header = Header {
            record: RECORD.into(),
            version: VERSION,
            target: target.into(),
        };
        serde_json::to_writer(&mut self.file, &header)?;
        self.file.write_all(b"\n")?;
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        Ok(())
    }

    /// Appends rows that finished together and flushes them to the file at once, so a crash
    /// of the process loses none; fsyncs at most once a second, so a crash of the machine
    /// loses at most the last second.
    pub fn append(&mut self, outcomes: &[Outcome]) -> io::Result<()> {
        for outcome in outcomes {
            serde_json::to_writer(&mut self.file, outcome)?;
            self.file.write_all(b"\n")?;
        }
        self.file.flush()?;
        self.unsynced = true;
        if self.last_sync.elapsed() >= Duration::from_secs(1) {
            self.sync()?;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.unsynced {
            self.file.get_ref().sync_data()?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }
}

/// Refuses a record made against another target.
fn check_target(header: &Header, target: &str, path: &Path) -> anyhow::Result<()> {
    if header.target != target {
        bail!(
            "{} records a run against {}, and this run goes to {}: results from one never stand for the other. Give this run its own --output, or move {} and its results file away to start afresh",
            crate::text::path(path),
            shown(&header.target),
            shown(target),
            crate::text::path(path)
        );
    }
    Ok(())
}

/// A target as the user knows it.
fn shown(target: &str) -> String {
    if target == SIMULATOR {
        "the built-in simulator (--simulate)".into()
    } else {
        format!("the endpoint {target}")
    }
}

/// The target of a run against the in-process simulator.
pub const SIMULATOR: &str = "simulator";

/// Reads the header line; `None` if the file has no whole line yet.
fn read_header(reader: &mut impl BufRead, path: &Path) -> anyhow::Result<Option<Header>> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .with_context(|| damaged(path, 1))?;
    if !line.ends_with('\n') {
        return Ok(None);
    }
    /// What any version's header holds, to tell another version's record from a stranger.
    #[derive(serde::Deserialize)]
    struct Kind {
        record: String,
        version: serde_json::Value,
    }
    match serde_json::from_str::<Header>(&line) {
        Ok(header) if header.record == RECORD && header.version == VERSION => Ok(Some(header)),
        _ => match serde_json::from_str::<Kind>(&line) {
            Ok(kind) if kind.record == RECORD => bail!(
                "{} is a record of another version of lighthouse-share (format {}; this one reads format {VERSION}): finish it with the version that wrote it, or give this run another --output",
                crate::text::path(path),
                kind.version
            ),
            _ => bail!(
                "{} is not a record of lighthouse-share: give this run another --output, or move that file away",
                crate::text::path(path)
            ),
        },
    }
}

/// The intact rows of a record at `path`, made against `target`, with the byte offset of
/// each; nothing if there is no record.
pub fn read(path: &Path, target: &str) -> anyhow::Result<Records> {
    let file = match open_no_follow(OpenOptions::new().read(true), path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        opened => Some(
            opened
                .with_context(|| format!("cannot read the record {}", crate::text::path(path)))?,
        ),
    };
    let mut reader = file.map(BufReader::new);
    let mut offset = 0;
    if let Some(reader) = &mut reader {
        if let Some(header) = read_header(reader, path)? {
            check_target(&header, target, path)?;
        }
        offset = reader.stream_position()?;
    }
    Ok(Records {
        reader,
        path: path.to_path_buf(),
        offset,
        line: String::new(),
        n_line: 1,
    })
}

/// The rows of a record, in the order they were written.
pub struct Records {
    reader: Option<BufReader<File>>,
    path: PathBuf,
    offset: u64,
    line: String,
    n_line: u64,
}

impl Iterator for Records {
    type Item = anyhow::Result<(u64, Outcome)>;

    fn next(&mut self) -> Option<Self::Item> {
        let reader = self.reader.as_mut()?;
        self.line.clear();
        let read = match reader.read_line(&mut self.line) {
            Ok(n) => n,
            // Bytes that are not text: found by fuzzing, named like any other damage.
            Err(error) => {
                self.reader = None;
                return Some(Err(error).with_context(|| damaged(&self.path, self.n_line + 1)));
            }
        };
        // The end, or a torn last line: a crash in the middle of a write.
        if read == 0 || !self.line.ends_with('\n') {
            self.reader = None;
            return None;
        }
        let at = self.offset;
        self.offset += read as u64;
        self.n_line += 1;
        Some(
            serde_json::from_str::<Outcome>(&self.line)
                .map(|outcome| (at, outcome))
                .with_context(|| damaged(&self.path, self.n_line)),
        )
    }
}

/// What a damaged record is told with.
fn damaged(path: &Path, n_line: u64) -> String {
    format!(
        "{} is damaged at line {n_line}: it was edited, or is not a record of this program. Move it away to start afresh",
        crate::text::path(path)
    )
}

/// Reads the record line at `offset`.
pub fn read_at(file: &mut BufReader<File>, offset: u64) -> anyhow::Result<Outcome> {
    file.seek(SeekFrom::Start(offset))?;
    let mut line = String::new();
    file.read_line(&mut line)?;
    Ok(serde_json::from_str(&line)?)
}

/// Opens the record for [`read_at`].
pub fn open_for_reading(path: &Path) -> anyhow::Result<BufReader<File>> {
    let file = open_no_follow(OpenOptions::new().read(true), path)
        .with_context(|| format!("cannot read the record {}", crate::text::path(path)))?;
    Ok(BufReader::new(file))
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

/// Rows the journal writes with one flush, when that many finished together.
const JOURNAL_BATCH: usize = 256;
/// How long the journal waits after a write before it looks for more rows: a row waits at
/// most this long to reach the file.
const JOURNAL_PAUSE: Duration = Duration::from_millis(1);

/// What the record saw of the rows this run finished.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Rows that ended shared without a BlueprintId: the fresh look-up gives them theirs.
    pub unnamed: Vec<Outcome>,
    /// Rows settled without a request: already as asked.
    pub n_settled: u64,
    /// Rows refused because their image is not in their region: the preflight says where
    /// it is (SPEC §10).
    pub not_found: Vec<Outcome>,
}

impl Recorded {
    fn note(&mut self, outcome: Outcome) {
        let settled = matches!(
            outcome.status,
            Status::AlreadyShared | Status::AlreadyUnshared
        );
        self.n_settled += u64::from(settled && outcome.attempts == 0);
        let shared = matches!(outcome.status, Status::AlreadyShared | Status::Shared);
        let not_found = outcome.status == Status::Failed
            && outcome.error_code.as_deref() == Some(crate::action::IMAGE_NOT_FOUND);
        if shared && outcome.blueprint_id.is_none() {
            self.unnamed.push(outcome);
        } else if not_found {
            self.not_found.push(outcome);
        }
    }
}

/// The journal's thread: appends each finished row at once (rows that finished together in
/// one write), and returns what it recorded. It ends when every sender is gone, or at the
/// first write that fails: the senders then find the channel closed and stop the run.
pub fn spawn_journal(
    mut journal: Journal,
    path: PathBuf,
    mut outcomes_rx: mpsc::Receiver<Outcome>,
) -> tokio::task::JoinHandle<anyhow::Result<Recorded>> {
    tokio::task::spawn_blocking(move || {
        let mut recorded = Recorded::default();
        let mut batch = Vec::with_capacity(JOURNAL_BATCH);
        let failed = || format!("cannot append to the record {}", crate::text::path(&path));
        while let Some(outcome) = outcomes_rx.blocking_recv() {
            batch.push(outcome);
            while batch.len() < JOURNAL_BATCH {
                match outcomes_rx.try_recv() {
                    Ok(outcome) => batch.push(outcome),
                    Err(_) => break,
                }
            }
            journal.append(&batch).with_context(failed)?;
            batch.drain(..).for_each(|outcome| recorded.note(outcome));
            // Rows that finish while this thread sleeps are written together, with one
            // wake-up instead of one each.
            std::thread::sleep(JOURNAL_PAUSE);
        }
        journal.sync().with_context(failed)?;
        Ok(recorded)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Permission;
    use crate::results::{Identity, Status};

    fn outcome(image: &str, status: Status, message: &str) -> Outcome {
        let identity = Identity {
            region: "ap-seoul".into(),
            image_id: image.into(),
            permission: Permission::Share,
            occurrence: 1,
        };
        Outcome::new(identity, 2, status).with_error("Code", message)
    }

    fn images(path: &Path) -> Vec<String> {
        read(path, "t")
            .unwrap()
            .map(|r| r.unwrap().1.identity.image_id)
            .collect()
    }

    #[test]
    fn a_record_torn_at_any_byte_of_its_last_row_resumes_with_the_rows_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.journal");
        let mut journal = Journal::create(&path, "t").unwrap();
        journal
            .append(&[
                outcome("img-00000001", Status::Shared, "ok"),
                outcome(
                    "img-00000002",
                    Status::Failed,
                    "a message\nover two lines, \"quoted\"",
                ),
            ])
            .unwrap();
        drop(journal);
        let whole = std::fs::read(&path).unwrap();
        let last_start = whole[..whole.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap()
            + 1;
        assert_eq!(images(&path), ["img-00000001", "img-00000002"]);
        for cut in last_start..whole.len() {
            std::fs::write(&path, &whole[..cut]).unwrap();
            assert_eq!(images(&path), ["img-00000001"], "cut at byte {cut}");
            let mut journal = Journal::resume(&path, "t").unwrap();
            journal
                .append(&[outcome("img-00000003", Status::Shared, "ok")])
                .unwrap();
            drop(journal);
            assert_eq!(
                images(&path),
                ["img-00000001", "img-00000003"],
                "cut at byte {cut}"
            );
        }
    }

    #[test]
    fn a_record_of_another_target_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.journal");
        drop(Journal::create(&path, SIMULATOR).unwrap());
        let error = Journal::resume(&path, "https://lighthouse.{region}.tencentcloudapi.com")
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("the built-in simulator") && error.contains("tencentcloudapi.com"),
            "{error}"
        );
        assert!(read(&path, "https://x").is_err());
    }

    #[test]
    fn nothing_planted_at_the_record_name_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("r.journal");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(Journal::create(&path, "t").is_err());
        assert!(Journal::resume(&path, "t").is_err());
        assert!(read(&path, "t").is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
