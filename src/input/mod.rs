//! Input: a spreadsheet, exported as CSV or read as the workbook itself, becomes records,
//! and records become validated rows.
//!
//! - `delimited`: CSV (or a `;`- or tab-separated export), streamed; its separator, BOM,
//!   `sep=` line, line ends and unclosed quotes.
//! - `workbook`: `.xlsx`, `.xlsm`, `.xlsb`, `.xls` and `.ods` through `calamine`, held as
//!   the cells they have; `parts`: a zip-based workbook's bounds, checked before calamine.
//! - `header`: which column is which, by loose names.
//! - `check`: the checks of one row's cells, and messages that say how to fix them.
//!
//! Both kinds of file give the [`Reader`] the same raw rows (a line number and the cells as in
//! the file); the rules for the header, blank rows, comments and trimming live here, once.
//! A row that fails a check is not an error of the file: it becomes an invalid row whose
//! message names the column, the value, what is allowed and, for a near miss, the likely fix.
//! Only a file that cannot be read as a whole (unreadable, no header, a missing or doubled
//! column, an unclosed quote) stops the run.

mod check;
mod delimited;
mod header;
mod parts;
mod source;
mod workbook;

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::action::Permission;

pub use header::{Columns, RESULT_COLUMNS};
pub use parts::{MAX_COLUMNS, MAX_ROWS};
pub use source::Source;
pub use workbook::{Kind, column_name, is_workbook};

/// The file as a whole cannot be used: exit 2, before anything is sent.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {shown}: {source}", shown = crate::text::path(.path))]
    Open { path: PathBuf, source: io::Error },
    #[error("{shown} is a directory: give the CSV file or workbook to run", shown = crate::text::path(.path))]
    Directory { path: PathBuf },
    #[error(
        "{shown}: the file is empty; it needs a header row with region, image_id and permission", shown = crate::text::path(.path)
    )]
    Empty { path: PathBuf },
    #[error(
        "{shown}: no `{column}` column in the header row ({found}); the header needs region, image_id (or ImageId, image) and permission{hint}", shown = crate::text::path(.path)
    )]
    MissingColumn {
        path: PathBuf,
        column: &'static str,
        found: String,
        /// Why the header may look wrong, when it can be told.
        hint: &'static str,
    },
    #[error(
        "{shown}: columns {first} and {second} both name the `{column}` column; keep one of them and rename or delete the other", shown = crate::text::path(.path)
    )]
    DuplicateColumn {
        path: PathBuf,
        column: &'static str,
        /// Each as its 1-based column number and its header text.
        first: String,
        second: String,
    },
    #[error("{shown}, line {line}: {problem}", shown = crate::text::path(.path))]
    Malformed {
        path: PathBuf,
        line: u64,
        problem: String,
    },
    #[error(
        "{shown} changed while this run was reading it (it was edited, or replaced by a save): start the run again once the file is as you want it; with --resume nothing recorded is lost or sent twice", shown = crate::text::path(.path)
    )]
    Changed { path: PathBuf },
    #[error("cannot read the workbook {shown}: {problem}", shown = crate::text::path(.path))]
    Workbook { path: PathBuf, problem: String },
    #[error(
        "{shown} has no sheet named `{sheet}`; its sheets are {sheets}: give one of them with --sheet", shown = crate::text::path(.path)
    )]
    NoSheet {
        path: PathBuf,
        sheet: String,
        sheets: String,
    },
    #[error(
        "{shown} cannot hold these results: {problem}. Write them as CSV instead (`-o results.csv`); nothing was sent",
        shown = crate::text::path(.output)
    )]
    Unwritable {
        /// The `.xlsx` output.
        output: PathBuf,
        problem: String,
    },
}

/// One data row as the file gives it: the required cells trimmed of ASCII spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based line number in the file (sheet row number in a workbook), the header being
    /// line 1: the row's identity. An Excel `sep=` line is not counted: Excel hides it, so
    /// the header is row 1 there.
    pub line: u64,
    pub region: String,
    pub image_id: String,
    pub permission: String,
    /// Why the row cannot be read as the user sees it (a formula saved without its value),
    /// with the fix: the row is `invalid` with this message.
    pub unreadable: Option<String>,
}

/// A record with all of its cells, for a results writer that repeats the user's columns.
///
/// The cells live beside the record, not in it, so that code building a `Record` from a
/// finished row does not have to invent them.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub record: Record,
    /// Every cell of the row as in the file (untrimmed, unquoted), in the header's order;
    /// a row may have fewer or more cells than the header.
    pub cells: Vec<String>,
    /// The type of each cell in a workbook (numbers, dates, booleans), for results that are a
    /// workbook again; empty for a CSV, whose cells are all text.
    pub kinds: Vec<Kind>,
}

/// A row that passed every check, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub region: &'static str,
    pub image_id: String,
    pub permission: Permission,
    /// Which of the rows asking the same thing this is, counted in file order from 1: with
    /// the three values, the row's identity (SPEC §2). A row numbers only among others, so
    /// it is 1 until the run numbers it.
    pub occurrence: u32,
    /// Why the row is decided again, when its message should say so (its image changed
    /// outside this tool since the last run): set by the decision, carried to its outcome.
    pub note: Option<String>,
}

/// One row as a source gives it: where it is and its cells as in the file. The reader keeps
/// one and the source refills it, so that reading a row need not allocate.
#[derive(Default)]
struct RawRow {
    line: u64,
    cells: Vec<String>,
    /// The cells' types in a workbook; empty for delimited text.
    kinds: Vec<Kind>,
}

impl RawRow {
    /// Why the row cannot be read as shown: the first formula cell saved without a value.
    fn unreadable(&self) -> Option<String> {
        Self::unreadable_in(self.line, &self.kinds)
    }

    fn unreadable_in(line: u64, kinds: &[Kind]) -> Option<String> {
        let column = kinds.iter().position(|k| *k == Kind::Uncomputed)?;
        Some(format!(
            "formula without a saved value in {}{line}: open and save the workbook in a spreadsheet program, or paste values",
            column_name(column),
        ))
    }
}

/// Where rows come from: delimited text or a workbook's sheet.
trait RowSource: Send {
    /// Puts the next row in `row` (its buffers reused); `None` at the end.
    fn next_row(&mut self, row: &mut RawRow) -> Option<Result<(), InputError>>;
}

/// What was read, for the log.
enum Format {
    Delimited { delimiter: u8, had_bom: bool },
    Workbook { sheet: String },
}

/// A reader of records, from a CSV file (streamed: memory does not grow with the rows) or
/// a workbook's sheet (loaded whole by calamine).
pub struct Reader {
    rows: Box<dyn RowSource>,
    format: Format,
    header: header::Header,
    /// Set after an error: a file that failed once yields nothing more.
    failed: bool,
    /// Rows with cells past the header's last column, and the line of the first.
    wide: (u64, Option<u64>),
    /// The row last read, refilled by the next.
    row: RawRow,
}

impl Reader {
    /// Opens a CSV file, or a workbook's first visible sheet if the extension names one.
    pub fn open(path: &Path) -> Result<Self, InputError> {
        if is_workbook(path) {
            return Self::open_workbook(path, None);
        }
        let file = File::open(path).map_err(|source| InputError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(path, Box::new(BufReader::with_capacity(64 * 1024, file)))
    }

    /// Reads CSV from `source`; `path` names it in messages.
    pub fn from_reader(path: &Path, source: Box<dyn Read + Send>) -> Result<Self, InputError> {
        let opened = delimited::open(path, source)?;
        let format = Format::Delimited {
            delimiter: opened.delimiter,
            had_bom: opened.had_bom,
        };
        Self::start(path, Box::new(opened.rows), format)
    }

    /// Reads the sheet named `sheet` (compared as Excel does, ignoring case), or the first
    /// visible worksheet. The whole sheet is loaded into memory first.
    pub fn open_workbook(path: &Path, sheet: Option<&str>) -> Result<Self, InputError> {
        let (rows, sheet) = workbook::open(path, sheet)?;
        Self::start(path, Box::new(rows), Format::Workbook { sheet })
    }

    /// Reads a sheet loaded earlier (see [`Source`]).
    pub fn from_sheet(path: &Path, sheet: &workbook::Sheet) -> Result<Self, InputError> {
        let format = Format::Workbook {
            sheet: sheet.name.clone(),
        };
        Self::start(path, Box::new(workbook::Source::new(sheet)), format)
    }

    /// Reads up to the header row: the first row neither blank nor starting with `#`.
    fn start(
        path: &Path,
        mut rows: Box<dyn RowSource>,
        format: Format,
    ) -> Result<Self, InputError> {
        let path = path.to_path_buf();
        let mut row = RawRow::default();
        let cells = loop {
            match rows.next_row(&mut row) {
                None => return Err(InputError::Empty { path }),
                Some(Err(error)) => return Err(error),
                Some(Ok(())) if is_blank(&row.cells) || starts_with_hash(&row.cells) => {}
                Some(Ok(())) => break std::mem::take(&mut row.cells),
            }
        };
        let header = header::Header::parse(&path, cells)?;
        Ok(Self {
            rows,
            format,
            header,
            failed: false,
            wide: (0, None),
            row,
        })
    }

    /// The header row's cells as in the file (a BOM before the first one removed).
    pub fn header(&self) -> &[String] {
        &self.header.cells
    }

    /// Where the required columns are in the header and in every row.
    pub fn required_columns(&self) -> Columns {
        self.header.columns
    }

    /// The columns named like one that the results file writes itself (`line`, `status`,
    /// `blueprint_id`, ...): a results writer writes those fresh instead of copying them.
    pub fn our_columns(&self) -> &[usize] {
        &self.header.ours
    }

    /// The separator of a delimited file (`,`, or `;` or a tab chosen from the header row,
    /// or what a `sep=` line named); `None` for a workbook.
    pub fn delimiter(&self) -> Option<char> {
        match self.format {
            Format::Delimited { delimiter, .. } => Some(char::from(delimiter)),
            Format::Workbook { .. } => None,
        }
    }

    /// Whether the file began with a UTF-8 byte order mark (a results CSV then gets one too).
    pub fn had_bom(&self) -> bool {
        matches!(self.format, Format::Delimited { had_bom: true, .. })
    }

    /// How many rows so far have cells past the header's last column, and the line of the
    /// first.
    pub fn wide_rows(&self) -> (u64, Option<u64>) {
        self.wide
    }

    /// The sheet read, for a workbook.
    pub fn sheet(&self) -> Option<&str> {
        match &self.format {
            Format::Workbook { sheet } => Some(sheet),
            Format::Delimited { .. } => None,
        }
    }

    /// The next data row with all of its cells, or `None` at the end of the file (or after
    /// an error).
    ///
    /// Blank rows are skipped, and so are comments (see `is_comment`): a `#1234` ticket
    /// number or an `#N/A` in a row that has data is data.
    pub fn next_entry(&mut self) -> Option<Result<Entry, InputError>> {
        if let Err(error) = self.next_row()? {
            return Some(Err(error));
        }
        let row = &mut self.row;
        let cell = |i: usize| row.cells.get(i).map_or("", |cell| cell.trim_ascii());
        let [region, image_id, permission] = self.header.columns.all().map(cell);
        let record = Record {
            line: row.line,
            region: region.to_string(),
            image_id: image_id.to_string(),
            permission: permission.to_string(),
            unreadable: row.unreadable(),
        };
        Some(Ok(Entry {
            record,
            cells: std::mem::take(&mut row.cells),
            kinds: std::mem::take(&mut row.kinds),
        }))
    }

    /// The next data row, borrowed from the reader until the next read: the validation
    /// pass reads a row this way without allocating.
    pub fn next_view(&mut self) -> Option<Result<View<'_>, InputError>> {
        if let Err(error) = self.next_row()? {
            return Some(Err(error));
        }
        Some(Ok(View {
            line: self.row.line,
            cells: &self.row.cells,
            kinds: &self.row.kinds,
            columns: self.header.columns,
        }))
    }

    /// Reads the next data row into `self.row`: blank rows and comments skipped.
    fn next_row(&mut self) -> Option<Result<(), InputError>> {
        if self.failed {
            return None;
        }
        loop {
            match self.rows.next_row(&mut self.row)? {
                // A row of formulas saved without values looks blank, but it is not: it is
                // data the user sees, to be told about.
                Ok(())
                    if (is_blank(&self.row.cells) && self.row.unreadable().is_none())
                        || self.is_comment(&self.row.cells) => {}
                Ok(()) => {
                    if used_width(&self.row.cells) > self.header.cells.len() {
                        self.wide.0 += 1;
                        self.wide.1.get_or_insert(self.row.line);
                    }
                    return Some(Ok(()));
                }
                Err(error) => {
                    self.failed = true;
                    return Some(Err(error));
                }
            }
        }
    }

    /// A row whose first cell starts with `#` and whose other required cells are empty.
    ///
    /// "Other": when the first column is a required one (`region` usually is), the `#` cell
    /// is that column's, and `# note` alone on a line must still be a comment, while
    /// `#N/A,img-abcdefgh,SHARE` is a row with a broken formula in it.
    fn is_comment(&self, cells: &[String]) -> bool {
        starts_with_hash(cells)
            && self
                .header
                .columns
                .all()
                .iter()
                .all(|&i| i == 0 || cells.get(i).is_none_or(|cell| cell.trim_ascii().is_empty()))
    }

    /// The next data record, or `None` at the end of the file. Its cells are moved out of
    /// the row rather than copied (the row is not kept): this is every phase's hot path.
    pub fn next_record(&mut self) -> Option<Result<Record, InputError>> {
        if let Err(error) = self.next_row()? {
            return Some(Err(error));
        }
        let row = &mut self.row;
        let unreadable = row.unreadable();
        let mut take = |i: usize| match row.cells.get_mut(i) {
            Some(cell) if cell.trim_ascii().len() == cell.len() => std::mem::take(cell),
            Some(cell) => cell.trim_ascii().to_string(),
            None => String::new(),
        };
        let [region, image_id, permission] = self.header.columns.all().map(&mut take);
        Some(Ok(Record {
            line: row.line,
            region,
            image_id,
            permission,
            unreadable,
        }))
    }

    /// The rest of the rows with all of their cells.
    pub fn entries(mut self) -> impl Iterator<Item = Result<Entry, InputError>> {
        std::iter::from_fn(move || self.next_entry())
    }
}

impl Iterator for Reader {
    type Item = Result<Record, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// The cells of a row up to its last non-empty one.
pub fn used_width(cells: &[String]) -> usize {
    cells
        .iter()
        .rposition(|cell| !cell.is_empty())
        .map_or(0, |last| last + 1)
}

fn is_blank(cells: &[String]) -> bool {
    cells.iter().all(|cell| cell.trim_ascii().is_empty())
}

fn starts_with_hash(cells: &[String]) -> bool {
    cells
        .first()
        .is_some_and(|cell| cell.trim_ascii().starts_with('#'))
}

impl Record {
    /// Checks every cell; the message of a failure says what is wrong and how to fix it,
    /// for each bad cell, joined by `; `.
    pub fn validate(&self) -> Result<Row, String> {
        let checked = check(
            self.unreadable.clone(),
            &self.region,
            &self.image_id,
            &self.permission,
        )?;
        Ok(Row {
            line: self.line,
            region: checked.region,
            image_id: self.image_id.clone(),
            permission: checked.permission,
            occurrence: 1,
            note: None,
        })
    }
}

/// A data row borrowed from the [`Reader`] that read it.
pub struct View<'a> {
    pub line: u64,
    /// Every cell as in the file, as [`Entry::cells`].
    pub cells: &'a [String],
    kinds: &'a [Kind],
    columns: Columns,
}

impl<'a> View<'a> {
    /// A required cell, trimmed of ASCII spaces.
    fn cell(&self, i: usize) -> &'a str {
        self.cells.get(i).map_or("", |cell| cell.trim_ascii())
    }

    pub fn region(&self) -> &'a str {
        self.cell(self.columns.all()[0])
    }

    pub fn image_id(&self) -> &'a str {
        self.cell(self.columns.all()[1])
    }

    /// Checks the row as [`Record::validate`] does, without copying a cell.
    pub fn check(&self) -> Result<Checked<'a>, String> {
        let unreadable = RawRow::unreadable_in(self.line, self.kinds);
        let permission = self.cell(self.columns.all()[2]);
        check(unreadable, self.region(), self.image_id(), permission)
    }
}

/// A row's checked values, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked<'a> {
    pub region: &'static str,
    pub image_id: &'a str,
    pub permission: Permission,
}

/// Checks a row's required cells; the message of a failure says what is wrong and how to
/// fix it, for each bad cell, joined by `; `.
fn check<'a>(
    unreadable: Option<String>,
    region: &str,
    image_id: &'a str,
    permission: &str,
) -> Result<Checked<'a>, String> {
    if let Some(problem) = unreadable {
        return Err(problem);
    }
    match (
        check::region(region),
        check::image_id(image_id),
        check::permission(permission),
    ) {
        (Ok(region), Ok(()), Ok(permission)) => Ok(Checked {
            region,
            image_id,
            permission,
        }),
        (region, image_id, permission) => {
            let problems: Vec<String> = [region.err(), image_id.err(), permission.err()]
                .into_iter()
                .flatten()
                .collect();
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests;
