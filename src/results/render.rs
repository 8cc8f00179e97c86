//! The results file, rendered from the input and the record at the end of a run: SPEC §4's
//! layout (`line`, the input's own columns as given, then the result columns), one row per
//! input data row in input order, as CSV or as a workbook, written to a fresh temporary file
//! beside the output and renamed over it. Then the record is compacted: one record per row.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Counts, Outcome, Status, guard, journal};
use crate::input::{Entry, RESULT_COLUMNS, Source};

/// Where the results go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A file: `.xlsx` is a workbook, anything else CSV.
    File(PathBuf),
    /// Standard output, as CSV.
    Stdout,
}

impl std::fmt::Display for Destination {
    /// Where the results go, as the user names it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::File(path) => write!(f, "{}", path.display()),
            Destination::Stdout => f.write_str("standard output"),
        }
    }
}

impl Destination {
    fn is_workbook(&self) -> bool {
        matches!(self, Destination::File(path) if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xlsx")))
    }
}

/// What the rendering found.
#[derive(Debug, Default)]
pub struct Rendered {
    pub counts: Counts,
    /// Rows of earlier runs that no row of the input matches any more (the sheet was edited):
    /// left out of the results, kept in the record.
    pub n_unmatched: u64,
}

/// Renders the results of `input` from the record at `record` (made against `target`) to
/// `destination`, then compacts the record.
pub fn render(
    input: &Source,
    repeats: &super::Repeats,
    record: &Path,
    target: &str,
    destination: &Destination,
) -> anyhow::Result<Rendered> {
    let (mut index, n_records) = index(record, target)?;
    let keep = {
        let mut offsets: Vec<u64> = index.values().copied().collect();
        offsets.sort_unstable();
        offsets
    };
    let mut rendered = Rendered::default();
    let mut journal = match index.is_empty() {
        true => None,
        false => Some(journal::open_for_reading(record)?),
    };
    let mut reader = input.reader()?;
    let mut columns: Vec<String> = vec!["line".into()];
    let carried: Vec<usize> = (0..reader.header().len())
        .filter(|i| !reader.our_columns().contains(i))
        .collect();
    columns.extend(carried.iter().map(|i| reader.header()[*i].clone()));
    columns.extend(RESULT_COLUMNS.iter().map(|c| c.to_string()));
    let bom = reader.had_bom() || input.is_workbook();
    let mut sink = Sink::open(destination, bom, &columns)?;
    let mut occurrences = super::Occurrences::new(repeats);
    while let Some(entry) = reader.next_entry() {
        let entry = entry?;
        let outcome = match entry.record.validate() {
            Err(message) => Err(message),
            Ok(mut row) => {
                let identity = occurrences.identify(&mut row);
                match (index.remove(&identity.key()), &mut journal) {
                    (Some(offset), Some(journal)) => Ok(Some(journal::read_at(journal, offset)?)),
                    _ => Ok(None),
                }
            }
        };
        let status = match &outcome {
            Err(_) => Status::Invalid,
            Ok(Some(outcome)) => outcome.status,
            Ok(None) => Status::Skipped,
        };
        rendered.counts.add(status);
        sink.row(&result_cells(&entry, &carried, status, &outcome))?;
    }
    input.check_unchanged()?;
    sink.finish(destination)?;
    rendered.n_unmatched = index.len() as u64;
    if (keep.len() as u64) < n_records {
        compact(record, &keep)?;
    }
    Ok(rendered)
}

/// The row's cells in the results' column order.
fn result_cells(
    entry: &Entry,
    carried: &[usize],
    status: Status,
    outcome: &Result<Option<Outcome>, String>,
) -> Vec<String> {
    let mut cells = vec![entry.record.line.to_string()];
    cells.extend(
        carried
            .iter()
            .map(|i| guard(entry.cells.get(*i).map_or("", String::as_str)).into_owned()),
    );
    let text = |value: &Option<String>| guard(value.as_deref().unwrap_or("")).into_owned();
    match outcome {
        Err(message) => cells.extend([
            status.as_str().to_string(),
            String::new(),
            String::new(),
            super::INVALID_INPUT.to_string(),
            guard(message).into_owned(),
            "0".to_string(),
            String::new(),
        ]),
        Ok(Some(outcome)) => cells.extend([
            status.as_str().to_string(),
            text(&outcome.blueprint_id),
            text(&outcome.request_id),
            text(&outcome.error_code),
            text(&outcome.error_message),
            outcome.attempts.to_string(),
            outcome.finished_at.clone(),
        ]),
        Ok(None) => {
            cells.push(status.as_str().to_string());
            cells.extend(std::iter::repeat_n(String::new(), 4));
            cells.extend(["0".to_string(), String::new()]);
        }
    }
    cells
}

/// The offset of the last record of each row, and how many records there are.
fn index(record: &Path, target: &str) -> anyhow::Result<(HashMap<u64, u64>, u64)> {
    let mut index = HashMap::new();
    let mut n_records = 0;
    for read in journal::read(record, target)? {
        let (offset, outcome) = read?;
        index.insert(outcome.identity.key(), offset);
        n_records += 1;
    }
    Ok((index, n_records))
}

/// Rewrites the record with only the lines at `keep` (sorted): the last one of each row.
fn compact(record: &Path, keep: &[u64]) -> anyhow::Result<()> {
    let dir = parent(record);
    let mut from = journal::open_for_reading(record)?;
    let mut to = temporary_beside(record)?;
    {
        let mut out = BufWriter::new(to.as_file_mut());
        let mut line = String::new();
        from.read_line(&mut line)?;
        out.write_all(line.as_bytes())?;
        for offset in keep {
            from.seek(SeekFrom::Start(*offset))?;
            line.clear();
            from.read_line(&mut line)?;
            out.write_all(line.as_bytes())?;
        }
        out.flush()?;
    }
    to.as_file().sync_all()?;
    to.persist(record)
        .with_context(|| format!("cannot replace {}", record.display()))?;
    sync_dir(dir);
    Ok(())
}

/// A new file beside `path`, to be renamed over it: a fresh random name, created only where
/// nothing exists (never through a planted link), removed if it is not renamed.
/// Its mode is the file's it replaces, or what the umask leaves of 0666, as for any new file.
fn temporary_beside(path: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent(path);
    let temporary = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o666))
        .prefix(".lighthouse-share.")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write a temporary file in {}", dir.display()))?;
    if let Ok(replaced) = std::fs::metadata(path) {
        temporary
            .as_file()
            .set_permissions(replaced.permissions())
            .with_context(|| format!("cannot give {} its mode", path.display()))?;
    }
    Ok(temporary)
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes a rename durable.
fn sync_dir(dir: &Path) {
    File::open(dir).and_then(|d| d.sync_all()).ok();
}

/// Where rendered rows go.
enum Sink {
    Csv(
        Box<csv::Writer<Box<dyn Write>>>,
        Option<tempfile::NamedTempFile>,
    ),
    /// The workbook, the rows written, and the columns.
    Workbook(Box<rust_xlsxwriter::Workbook>, u32, u16),
}

impl Sink {
    fn open(destination: &Destination, bom: bool, columns: &[String]) -> anyhow::Result<Self> {
        let mut sink = if destination.is_workbook() {
            let mut workbook = Box::new(rust_xlsxwriter::Workbook::new());
            workbook.add_worksheet_with_constant_memory()?;
            Sink::Workbook(workbook, 0, columns.len() as u16)
        } else {
            let (mut out, temporary): (Box<dyn Write>, _) = match destination {
                Destination::Stdout => (Box::new(BufWriter::new(io::stdout())), None),
                Destination::File(path) => {
                    let temporary = temporary_beside(path)?;
                    let file = temporary.reopen()?;
                    (Box::new(BufWriter::new(file)), Some(temporary))
                }
            };
            if bom {
                out.write_all("\u{feff}".as_bytes())?;
            }
            Sink::Csv(Box::new(csv::Writer::from_writer(out)), temporary)
        };
        sink.row(columns)?;
        Ok(sink)
    }

    fn row(&mut self, cells: &[String]) -> anyhow::Result<()> {
        match self {
            Sink::Csv(csv, _) => csv.write_record(cells)?,
            Sink::Workbook(workbook, row, width) => {
                let sheet = workbook
                    .worksheets_mut()
                    .first_mut()
                    .context("the workbook has its sheet")?;
                // `line` and `attempts` are numbers, so a spreadsheet sorts them as such.
                let numbers = [0, width.saturating_sub(2)];
                for (column, cell) in (0u16..).zip(cells) {
                    match cell.parse::<u32>() {
                        Ok(n) if *row > 0 && numbers.contains(&column) => {
                            sheet.write_number(*row, column, f64::from(n))?
                        }
                        _ => sheet.write_string(*row, column, cell)?,
                    };
                }
                *row += 1;
            }
        }
        Ok(())
    }

    /// Writes what is left and puts the file in place.
    fn finish(self, destination: &Destination) -> anyhow::Result<()> {
        let Destination::File(path) = destination else {
            if let Sink::Csv(mut csv, _) = self {
                csv.flush()?;
            }
            return Ok(());
        };
        let temporary = match self {
            Sink::Csv(csv, temporary) => {
                let mut out = (*csv).into_inner().map_err(|e| e.into_error())?;
                out.flush()?;
                temporary.context("a file destination has its temporary file")?
            }
            Sink::Workbook(mut workbook, n_rows, width) => {
                let sheet = workbook
                    .worksheets_mut()
                    .first_mut()
                    .context("the workbook has its sheet")?;
                sheet.set_name("results")?;
                sheet.set_freeze_panes(1, 0)?;
                sheet.autofilter(0, 0, n_rows.saturating_sub(1), width.saturating_sub(1))?;
                let temporary = temporary_beside(path)?;
                workbook.save_to_writer(temporary.reopen()?)?;
                temporary
            }
        };
        temporary.as_file().sync_all()?;
        temporary
            .persist(path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        sync_dir(parent(path));
        Ok(())
    }
}
