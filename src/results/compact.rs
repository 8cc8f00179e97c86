//! Compaction: the results file rewritten as one sorted row per input row.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Counts, HEADER, Outcome, Status, read_rows, write_outcome, writer};
use crate::input;

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
                Outcome::new(&record, Status::Invalid).with_error(super::INVALID_INPUT, &message)
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
    use crate::results::{Journal, read_rows};
    use crate::results::{Record, Status};

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
}
