//! The journal: each finished row is appended to the results file the moment it is final.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;

use super::{HEADER, Outcome, complete_length, write_outcome, writer};

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

/// Rows the journal writes with one flush, when that many finished together.
const JOURNAL_BATCH: usize = 256;
/// How long the journal waits after a write before it looks for more rows: a row waits at
/// most this long to reach the file.
const JOURNAL_PAUSE: Duration = Duration::from_millis(1);

/// The journal's thread: appends each finished row at once (rows that finished together in
/// one write), then tells `written` about it. It ends when every sender is gone, or at the
/// first write that fails: the senders then find the channel closed and stop the run.
pub fn spawn_journal(
    mut journal: Journal,
    mut outcomes_rx: mpsc::Receiver<Outcome>,
    mut written: impl FnMut(&Outcome) + Send + 'static,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(JOURNAL_BATCH);
        while let Some(outcome) = outcomes_rx.blocking_recv() {
            batch.push(outcome);
            while batch.len() < JOURNAL_BATCH {
                match outcomes_rx.try_recv() {
                    Ok(outcome) => batch.push(outcome),
                    Err(_) => break,
                }
            }
            journal
                .append(&batch)
                .context("cannot append to the results file")?;
            batch.drain(..).for_each(|outcome| written(&outcome));
            // Rows that finish while this thread sleeps are written together, with one
            // wake-up instead of one each.
            std::thread::sleep(JOURNAL_PAUSE);
        }
        journal.sync().context("cannot sync the results file")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Record, Status};
    use crate::results::{Resume, read_rows};
    use std::fs::OpenOptions;

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
}
