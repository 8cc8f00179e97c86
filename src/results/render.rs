//! The results file, rendered from the input and the record at the end of a run: SPEC §4's
//! layout (`line`, the input's own columns as given, then the result columns), one row per
//! input data row in input order, as CSV or as a workbook, written to a fresh temporary file
//! beside the output and renamed over it. Then the record is compacted: one record per row.
//!
//! Every cell from outside is neutralised (`crate::text`); a CSV cell that a spreadsheet
//! would run as a formula is guarded, while a workbook keeps the input's types (a text cell
//! of an `.xlsx` is never evaluated). What an `.xlsx` cannot hold is found by [`Fits`] in
//! the validation pass, before anything is sent. Temporary files are named after the file
//! they replace, so that a later run holding the lock removes those a crash left.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::pairing::Paired;
use super::sorter::Sorter;
use super::{Counts, Outcome, Status, guard, journal};
use crate::input::{Entry, InputError, Kind, MAX_COLUMNS, MAX_ROWS, RESULT_COLUMNS, Source};
use crate::text::{Sink as To, neutralise};

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
            Destination::File(path) => write!(f, "{}", crate::text::path(path)),
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

/// Renders the results of `input` (`wide` when the plan found a row with cells past the
/// header's last column) from the record at `record` (made against `target`) to
/// `destination`, then compacts the record.
pub fn render(
    input: &Source,
    (repeats, wide): (&super::Repeats, bool),
    record: &Path,
    target: &str,
    destination: &Destination,
) -> anyhow::Result<Rendered> {
    let mut paired = Paired::pair(input, repeats, record, target)?;
    let mut rendered = Rendered::default();
    let mut journal = match paired.is_empty() {
        true => None,
        false => Some(journal::open_for_reading(record)?),
    };
    let mut reader = input.reader()?;
    let columns = columns(reader.header(), reader.our_columns(), wide);
    let carried = reader.header().len();
    let bom = reader.had_bom() || input.is_workbook();
    remove_leftovers(destination, record);
    let mut sink = Sink::open(destination, bom, &columns)?;
    let mut place = 0;
    while let Some(entry) = reader.next_entry() {
        let entry = entry?;
        let outcome = match entry.record.validate() {
            Err(message) => Err(message),
            Ok(_) => match (paired.record_of(place)?, &mut journal) {
                (Some(offset), Some(journal)) => Ok(Some(journal::read_at(journal, offset)?)),
                _ => Ok(None),
            },
        };
        place += 1;
        let status = match &outcome {
            Err(_) => Status::Invalid,
            Ok(Some(outcome)) => outcome.status,
            Ok(None) => Status::Skipped,
        };
        rendered.counts.add(status);
        let mut cells = result_cells(&entry, carried, status, &outcome);
        if wide {
            cells.insert(1 + carried, Out::text(&past_header(&entry.cells, carried)));
        }
        sink.row(&cells)?;
    }
    input.check_unchanged()?;
    sink.finish(destination)?;
    rendered.n_unmatched = paired.n_unmatched;
    if paired.keep.len() < paired.n_records {
        compact(record, paired.keep)?;
    }
    Ok(rendered)
}

/// The column that holds a row's cells past the header's last column, when a row has any.
pub const PAST_HEADER: &str = "cells past the header";

/// The results' header: `line`, every column of the input (one named like a result column
/// kept, renamed `NAME (input)`, so that no value of the user's is lost), [`PAST_HEADER`] if
/// the input is `wide`, then ours.
pub fn columns(header: &[String], ours: &[usize], wide: bool) -> Vec<String> {
    let mut columns: Vec<String> = vec!["line".into()];
    let taken = |name: &str, columns: &[String]| {
        header.iter().chain(columns).any(|c| c == name)
            || RESULT_COLUMNS.contains(&name)
            || name == "line"
    };
    for (i, name) in header.iter().enumerate() {
        let mut name = neutralise(name, To::Cell).into_owned();
        if ours.contains(&i) {
            name = format!("{name} (input)");
            while taken(&name, &columns) {
                name.push_str(" (input)");
            }
        }
        columns.push(name);
    }
    if wide {
        let mut name = PAST_HEADER.to_string();
        while taken(&name, &columns) {
            name.push_str(" (ours)");
        }
        columns.push(name);
    }
    columns.extend(RESULT_COLUMNS.iter().map(|c| c.to_string()));
    columns
}

/// A results cell: its text, neutralised, and its type for a workbook.
struct Out {
    text: String,
    kind: Kind,
}

impl Out {
    fn text(text: &str) -> Self {
        Self {
            text: neutralise(text, To::Cell).into_owned(),
            kind: Kind::Text,
        }
    }

    fn number(n: u64) -> Self {
        Self {
            text: n.to_string(),
            kind: Kind::Number(n as f64),
        }
    }
}

/// The row's cells in the results' column order: `line`, the first `carried` cells of the
/// input row, then the result columns.
fn result_cells(
    entry: &Entry,
    carried: usize,
    status: Status,
    outcome: &Result<Option<Outcome>, String>,
) -> Vec<Out> {
    let mut cells = vec![Out::number(entry.record.line)];
    cells.extend((0..carried).map(|i| {
        let mut cell = Out::text(entry.cells.get(i).map_or("", String::as_str));
        cell.kind = entry.kinds.get(i).copied().unwrap_or_default();
        cell
    }));
    let text = |value: &Option<String>| Out::text(value.as_deref().unwrap_or(""));
    let empty = || Out::text("");
    cells.push(Out::text(status.as_str()));
    match outcome {
        Err(message) => cells.extend([
            empty(),
            empty(),
            Out::text(super::INVALID_INPUT),
            Out::text(message),
            Out::number(0),
            empty(),
        ]),
        Ok(Some(outcome)) => cells.extend([
            text(&outcome.blueprint_id),
            text(&outcome.request_id),
            text(&outcome.error_code),
            text(&outcome.error_message),
            Out::number(u64::from(outcome.attempts)),
            Out::text(&outcome.finished_at),
        ]),
        Ok(None) => {
            cells.extend(std::iter::repeat_with(empty).take(4));
            cells.extend([Out::number(0), empty()]);
        }
    }
    cells
}

/// A row's cells past the header's last column, up to its last non-empty one, as one line of
/// CSV (`,` between them, quoted where a cell needs it): one column however many there are,
/// so that one wide row does not widen every row of the results.
fn past_header(cells: &[String], carried: usize) -> String {
    let extra = cells
        .get(carried..crate::input::used_width(cells))
        .unwrap_or_default();
    if extra.is_empty() {
        return String::new();
    }
    let mut line = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to memory cannot fail, and cells are text: so is the line.
    let _ = line.write_record(extra);
    let line = line.into_inner().unwrap_or_default();
    let line = String::from_utf8(line).unwrap_or_default();
    line.strip_suffix('\n').unwrap_or(&line).to_string()
}

/// The most characters (UTF-16 units, as Excel counts) an `.xlsx` cell holds.
pub const MAX_XLSX_CELL: usize = 32_767;

/// Whether the results of an input fit the destination, checked row by row in the
/// validation pass: an `.xlsx` holds at most [`MAX_XLSX_CELL`] characters per cell,
/// [`MAX_COLUMNS`] columns and [`MAX_ROWS`] rows. Finding it there, before anything is sent,
/// means a run never sends and then fails to write (and a `--resume` fail the same way).
pub struct Fits {
    /// The `.xlsx` output, if that is what the results are; a CSV holds anything.
    workbook: Option<PathBuf>,
    /// The input's header, to name a cell's column.
    header: Vec<String>,
    n_rows: u64,
}

impl Fits {
    /// Checks the width of the results of an input with `header` in `destination`.
    pub fn new(destination: &Destination, header: &[String]) -> Result<Self, InputError> {
        let workbook = match destination {
            Destination::File(path) if destination.is_workbook() => Some(path.clone()),
            _ => None,
        };
        let fits = Self {
            workbook,
            header: header.to_vec(),
            n_rows: 1,
        };
        let width = 1 + header.len() + RESULT_COLUMNS.len();
        if fits.workbook.is_some() && width > MAX_COLUMNS as usize {
            return Err(fits.error(format!(
                "the input has {} columns, and with ours the results would have {width}, more than the {MAX_COLUMNS} an .xlsx sheet holds",
                header.len()
            )));
        }
        Ok(fits)
    }

    /// Checks one input row: each of its cells that the results repeat, and the row count.
    pub fn check(&mut self, entry: &Entry) -> Result<(), InputError> {
        self.check_cells(entry.record.line, &entry.cells)
    }

    /// [`Fits::check`] of the row at `line` with these cells.
    pub fn check_cells(&mut self, line: u64, cells: &[String]) -> Result<(), InputError> {
        if self.workbook.is_none() {
            return Ok(());
        }
        self.n_rows += 1;
        if self.n_rows > u64::from(MAX_ROWS) {
            return Err(self.error(format!(
                "line {} would be results row {}, past the {MAX_ROWS} rows an .xlsx sheet holds",
                line, self.n_rows
            )));
        }
        let carried = self.header.len();
        for (i, cell) in cells.iter().take(carried).enumerate() {
            let length = neutralise(cell, To::Cell).encode_utf16().count();
            if length > MAX_XLSX_CELL {
                return Err(self.error(format!(
                    "cell {}{} (line {}, column `{}`) holds {length} characters, more than the {MAX_XLSX_CELL} an .xlsx cell holds",
                    crate::input::column_name(i),
                    line,
                    line,
                    crate::text::for_line(&self.header[i].chars().take(100).collect::<String>())
                )));
            }
        }
        let past = past_header(cells, carried);
        let length = neutralise(&past, To::Cell).encode_utf16().count();
        if length > MAX_XLSX_CELL {
            return Err(self.error(format!(
                "the cells of line {line} past the header's last column hold {length} characters together (kept in one column, `{PAST_HEADER}`), more than the {MAX_XLSX_CELL} an .xlsx cell holds"
            )));
        }
        if !past.is_empty() && 2 + carried + RESULT_COLUMNS.len() > MAX_COLUMNS as usize {
            return Err(self.error(format!(
                "line {line} has cells past the header's last column, and with them and ours the results would have {} columns, more than the {MAX_COLUMNS} an .xlsx sheet holds",
                2 + carried + RESULT_COLUMNS.len()
            )));
        }
        Ok(())
    }

    fn error(&self, problem: String) -> InputError {
        InputError::Unwritable {
            output: self.workbook.clone().unwrap_or_default(),
            problem,
        }
    }
}

/// Rewrites the record with only the lines at `keep`: the last one of each row, in the
/// record's order.
fn compact(record: &Path, keep: Sorter<u64>) -> anyhow::Result<()> {
    let dir = parent(record);
    let mut from = journal::open_for_reading(record)?;
    let mut to = temporary_beside(record)?;
    {
        let mut out = BufWriter::new(to.as_file_mut());
        let mut line = String::new();
        from.read_line(&mut line)?;
        out.write_all(line.as_bytes())?;
        for offset in keep.sorted()? {
            from.seek(SeekFrom::Start(offset?))?;
            line.clear();
            from.read_line(&mut line)?;
            out.write_all(line.as_bytes())?;
        }
        out.flush()?;
    }
    to.as_file().sync_all()?;
    to.persist(record)
        .with_context(|| format!("cannot replace {}", crate::text::path(record)))?;
    sync_dir(dir);
    Ok(())
}

/// The name a temporary file for `path` starts with: `.NAME.lighthouse-share-tmp.`, so that
/// a later run that writes `path` knows it for its own leftover.
fn temporary_prefix(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    format!(".{name}.lighthouse-share-tmp.")
}

/// A new file beside `path`, to be renamed over it: a fresh random name, created only where
/// nothing exists (never through a planted link), removed if it is not renamed.
/// Its mode is the file's it replaces, or what the umask leaves of 0666, as for any new file.
fn temporary_beside(path: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent(path);
    let temporary = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o666))
        .prefix(&temporary_prefix(path))
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "cannot write a temporary file in {}",
                crate::text::path(dir)
            )
        })?;
    if let Ok(replaced) = std::fs::metadata(path) {
        temporary
            .as_file()
            .set_permissions(replaced.permissions())
            .with_context(|| format!("cannot give {} its mode", crate::text::path(path)))?;
    }
    Ok(temporary)
}

/// Removes the temporary files that a run killed while writing `destination` (or compacting
/// its record) left beside it. Any such file is stale: a run writing `destination` holds
/// its lock for as long as it lives, and this run holds that lock now.
fn remove_leftovers(destination: &Destination, record: &Path) {
    for path in [destination_path(destination), Some(record)]
        .into_iter()
        .flatten()
    {
        remove_leftovers_of(path);
    }
}

fn destination_path(destination: &Destination) -> Option<&Path> {
    match destination {
        Destination::File(path) => Some(path),
        Destination::Stdout => None,
    }
}

fn remove_leftovers_of(path: &Path) {
    let prefix = temporary_prefix(path);
    let Ok(entries) = std::fs::read_dir(parent(path)) else {
        return;
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && name.starts_with(&prefix) && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(crate::text::for_line(&name).into_owned());
        }
    }
    if !removed.is_empty() {
        tracing::info!(
            "removed {} temporary file(s) left by an earlier run that stopped while writing {}: {}",
            removed.len(),
            crate::text::path(path),
            removed.join(", ")
        );
    }
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
    /// The workbook, the rows written, the columns, and the formats of typed cells.
    Workbook(Box<rust_xlsxwriter::Workbook>, u32, u16, Box<Formats>),
}

/// Number formats for the dates, times and durations of a workbook's cells.
struct Formats {
    date: rust_xlsxwriter::Format,
    datetime: rust_xlsxwriter::Format,
    time: rust_xlsxwriter::Format,
    duration: rust_xlsxwriter::Format,
}

impl Formats {
    fn new() -> Self {
        let format = |f: &str| rust_xlsxwriter::Format::new().set_num_format(f);
        Self {
            date: format("yyyy-mm-dd"),
            datetime: format("yyyy-mm-dd hh:mm:ss"),
            time: format("hh:mm:ss"),
            duration: format("[h]:mm:ss"),
        }
    }
}

impl Sink {
    fn open(destination: &Destination, bom: bool, columns: &[String]) -> anyhow::Result<Self> {
        let mut sink = if destination.is_workbook() {
            let mut workbook = Box::new(rust_xlsxwriter::Workbook::new());
            workbook.add_worksheet_with_constant_memory()?;
            let width = u16::try_from(columns.len()).unwrap_or(u16::MAX);
            Sink::Workbook(workbook, 0, width, Box::new(Formats::new()))
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
        let header: Vec<Out> = columns.iter().map(|c| Out::text(c)).collect();
        sink.row(&header)?;
        Ok(sink)
    }

    fn row(&mut self, cells: &[Out]) -> anyhow::Result<()> {
        match self {
            // A CSV cell has no type: what a spreadsheet would run is guarded.
            Sink::Csv(csv, _) => {
                csv.write_record(cells.iter().map(|c| guard(&c.text).into_owned()))?
            }
            Sink::Workbook(workbook, row, _, formats) => {
                let sheet = workbook
                    .worksheets_mut()
                    .first_mut()
                    .context("the workbook has its sheet")?;
                for (column, cell) in (0u16..).zip(cells) {
                    write_cell(sheet, (*row, column), cell, formats)?;
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
            Sink::Workbook(mut workbook, n_rows, width, _) => {
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
            .with_context(|| format!("cannot replace {}", crate::text::path(path)))?;
        sync_dir(parent(path));
        Ok(())
    }
}

/// Writes one cell of a workbook with its type: a number, a boolean, a date (with its
/// format) or text, which a spreadsheet shows as it is and never evaluates.
fn write_cell(
    sheet: &mut rust_xlsxwriter::Worksheet,
    (row, column): (u32, u16),
    cell: &Out,
    formats: &Formats,
) -> anyhow::Result<()> {
    let date = || rust_xlsxwriter::ExcelDateTime::parse_from_str(&cell.text).ok();
    match cell.kind {
        Kind::Number(n) if n.is_finite() => {
            sheet.write_number(row, column, n)?;
        }
        Kind::Bool(b) => {
            sheet.write_boolean(row, column, b)?;
        }
        Kind::Duration(days) if days.is_finite() => {
            sheet.write_number_with_format(row, column, days, &formats.duration)?;
        }
        Kind::Date if date().is_some() => {
            let format = match (cell.text.contains(':'), cell.text.contains('-')) {
                (true, true) => &formats.datetime,
                (true, false) => &formats.time,
                _ => &formats.date,
            };
            if let Some(date) = date() {
                sheet.write_datetime_with_format(row, column, date, format)?;
            }
        }
        _ => {
            sheet.write_string(row, column, clip(&cell.text))?;
        }
    }
    Ok(())
}

/// Text cut to what a cell holds: only the service's words can be longer (the input's cells
/// were checked by [`Fits`] before anything was sent).
fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_XLSX_CELL {
        return text.into();
    }
    let mut units = 0;
    let end = text
        .char_indices()
        .find(|(_, c)| {
            units += c.len_utf16();
            units > MAX_XLSX_CELL - 1
        })
        .map_or(text.len(), |(i, _)| i);
    format!("{}…", &text[..end]).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Record;

    fn names(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn a_users_column_named_like_ours_is_kept_renamed_uniquely() {
        let header = names(&["Status", "region", "status (input)", "x\u{1b}y"]);
        let columns = columns(&header, &[0], false);
        assert_eq!(
            columns[..5],
            [
                "line",
                "Status (input)",
                "region",
                "status (input)",
                "x\\u{1b}y"
            ]
        );
        let header = names(&["status", "status (input)"]);
        assert_eq!(
            columns_of(&header)[1..3],
            ["status (input) (input)", "status (input)"]
        );
    }

    fn columns_of(header: &[String]) -> Vec<String> {
        columns(header, &[0], false)
    }

    fn entry(line: u64, cells: &[&str]) -> Entry {
        Entry {
            record: Record {
                line,
                region: String::new(),
                image_id: String::new(),
                permission: String::new(),
                unreadable: None,
            },
            cells: names(cells),
            kinds: Vec::new(),
        }
    }

    #[test]
    fn fits_finds_what_an_xlsx_cannot_hold_and_a_csv_holds_anything() {
        let xlsx = Destination::File(PathBuf::from("out.xlsx"));
        let header = names(&["region", "note"]);
        let mut fits = Fits::new(&xlsx, &header).unwrap();
        let full = "x".repeat(MAX_XLSX_CELL);
        assert!(fits.check(&entry(2, &["ap-seoul", &full])).is_ok());
        // An escaped control is longer than the character: counted as written.
        let over = format!("{}\u{1b}", "x".repeat(MAX_XLSX_CELL - 1));
        let error = fits
            .check(&entry(3, &["a", &over]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("cell B3 (line 3, column `note`)"), "{error}");
        assert!(error.contains("-o results.csv"), "{error}");
        // Cells past the header's last column are written too, in one cell, so they count
        // together.
        let half = "x".repeat(MAX_XLSX_CELL / 2 + 1);
        let error = fits
            .check(&entry(4, &["a", "b", &half, &half]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("the cells of line 4 past the header's last column hold 32769"),
            "{error}"
        );
        // A cell past column XFD is no column of the results: it is text in that one cell.
        let mut far = vec![""; MAX_COLUMNS as usize + 10];
        far[MAX_COLUMNS as usize + 9] = "x";
        assert!(fits.check(&entry(5, &far)).is_ok());
        fits.n_rows = u64::from(MAX_ROWS);
        let error = fits.check(&entry(9, &["a"])).unwrap_err().to_string();
        assert!(error.contains("past the 1048576 rows"), "{error}");

        let csv = Destination::File(PathBuf::from("out.csv"));
        let wide = vec![String::new(); MAX_COLUMNS as usize];
        assert!(Fits::new(&xlsx, &wide).is_err());
        let mut fits = Fits::new(&csv, &wide).unwrap();
        assert!(fits.check(&entry(2, &[&over])).is_ok());
    }

    #[test]
    fn text_too_long_for_a_cell_is_clipped_to_fit() {
        let long = "é".repeat(MAX_XLSX_CELL + 5);
        let clipped = clip(&long);
        assert_eq!(clipped.encode_utf16().count(), MAX_XLSX_CELL);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
