//! A workbook (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) read with `calamine`: one sheet's
//! rows, each cell rendered as the spreadsheet shows it, so that they become the same
//! records as a CSV export of that sheet would, and its type kept for results that are a
//! workbook again.
//!
//! Memory: a sheet is held as the cells it has, row by row: a far cell (`XFD1048576`) costs
//! one cell, not the rectangle up to it. `.xlsx`, `.xlsm` and `.xlsb` sheets are read cell by
//! cell; `.xls` and `.ods` sheets go through calamine's rectangle (an `.xls` sheet is at most
//! 65,536 × 256 cells). Before calamine opens a zip-based workbook, [`parts::check`] unpacks
//! every part once as a stream to check its bounds (a zip bomb, a lying count, a cell
//! outside Excel's grid).
//!
//! A formula cell is its saved value; a formula saved without one (as some tools write
//! them) is [`Kind::Uncomputed`], which makes its row `invalid` with the fix.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use calamine::{
    CellErrorType, Data, ExcelDateTime, Range, Reader as _, SheetType, SheetVisible, Sheets,
};

use super::parts::{self, MAX_COLUMNS, MAX_ROWS};
use super::{InputError, RawRow, RowSource};

/// The extensions read as workbooks; any other file is delimited text.
const EXTENSIONS: [&str; 5] = ["xlsx", "xlsm", "xlsb", "xls", "ods"];

/// Whether `path` names a workbook, by its extension (any case).
pub fn is_workbook(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            EXTENSIONS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(extension))
        })
}

/// What a cell holds in the workbook, so that `.xlsx` results write it back as the same type.
/// A CSV has only text.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Kind {
    #[default]
    Text,
    Number(f64),
    Bool(bool),
    /// A date, a time or both; its text is ISO 8601 (`2024-05-06`, `12:00:00`, both with `T`).
    Date,
    /// A duration, in days.
    Duration(f64),
    /// A spreadsheet error value (`#N/A`): text in the results.
    Error,
    /// A formula saved without its value: its row cannot be read as the user sees it.
    Uncomputed,
}

/// A cell as the spreadsheet shows it, and its type.
#[derive(Clone, Debug)]
struct Cell {
    text: String,
    kind: Kind,
}

/// One sheet row that has cells: its sheet row number and its cells by column, in order.
struct SheetRow {
    line: u64,
    cells: Vec<(u32, Cell)>,
}

/// A sheet loaded once, read by every phase of a run.
#[derive(Clone)]
pub struct Sheet {
    rows: Arc<Vec<SheetRow>>,
    /// The sheet's name, as the workbook spells it.
    pub name: String,
}

/// The rows of one sheet.
pub(super) struct Source {
    rows: Arc<Vec<SheetRow>>,
    next: usize,
}

/// Opens `path` and loads `sheet` (the first visible worksheet if `None`); returns the
/// rows and the sheet's name.
pub(super) fn open(path: &Path, sheet: Option<&str>) -> Result<(Source, String), InputError> {
    let sheet = load(path, sheet)?;
    Ok((Source::new(&sheet), sheet.name))
}

impl Source {
    pub(super) fn new(sheet: &Sheet) -> Self {
        Self {
            rows: sheet.rows.clone(),
            next: 0,
        }
    }
}

/// Reads `path` and loads `sheet` (the first visible worksheet if `None`) into memory.
pub fn load(path: &Path, sheet: Option<&str>) -> Result<Sheet, InputError> {
    // Checked before opening: opening a FIFO waits for a writer.
    if let Some(problem) = not_a_workbook_file(path) {
        return Err(InputError::Workbook {
            path: path.to_path_buf(),
            problem,
        });
    }
    // The same message as for a CSV file that cannot be opened.
    File::open(path).map_err(|source| InputError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let unreadable = |problem: String| InputError::Workbook {
        path: path.to_path_buf(),
        problem,
    };
    parts::check(path).map_err(unreadable)?;
    // calamine is given a file checked above; should it still panic on a damaged one, that
    // is a damaged file, not a crash of the run.
    let loaded = std::panic::catch_unwind(|| -> Result<Sheet, InputError> {
        let mut workbook =
            calamine::open_workbook_auto(path).map_err(|e| unreadable(opening(path, &e)))?;
        let name = choose_sheet(path.to_path_buf(), workbook.sheets_metadata(), sheet)?;
        let rows = read_sheet(&mut workbook, &name)
            .map_err(|e| unreadable(format!("sheet `{}`: {e}", crate::text::for_line(&name))))?;
        Ok(Sheet {
            rows: Arc::new(rows),
            name,
        })
    });
    loaded.unwrap_or_else(|_| {
        Err(unreadable(
            "the file is damaged; open and save it in a spreadsheet program".to_string(),
        ))
    })
}

/// Why calamine could not open `path`, in the user's words where the cause is plain: a file
/// named like a workbook that is not one (a CSV renamed `.xlsx`, a damaged download).
fn opening(path: &Path, error: &calamine::Error) -> String {
    let text = error.to_string();
    match text.contains("Zip error") || text.contains("Could not find EOCD") {
        true => format!(
            "it is not a workbook its name says it is ({}): a damaged or partial file, or another kind of file named {}; if it is a CSV, name it .csv",
            crate::text::for_line(&text),
            path.extension()
                .map(|e| format!(".{}", e.to_string_lossy()))
                .unwrap_or_default()
        ),
        false => crate::text::for_line(&text).into_owned(),
    }
}

/// Why `path` cannot be read as a workbook before trying, in the user's words: a workbook is
/// read from its end (a pipe cannot seek), and a password-protected `.xlsx` is an OLE
/// container, not the zip an `.xlsx` is.
fn not_a_workbook_file(path: &Path) -> Option<String> {
    use std::io::Read;
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Some(
            "it is a pipe or a device, and a workbook is read from its end: save it to a file first, or send a CSV through the pipe".into(),
        );
    }
    const OLE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    let mut magic = [0u8; 8];
    let is_ole = File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .is_ok_and(|()| magic == OLE);
    let is_xls = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("xls"));
    (is_ole && !is_xls).then(|| {
        "it is protected with a password (encrypted), or is an old .xls under another name: remove the password in Excel (File > Info > Protect Workbook), or save it as .xlsx or .csv, and run again".into()
    })
}

/// The cells of sheet `name`: streamed where calamine can (`.xlsx`, `.xlsm`, `.xlsb`), else
/// through its rectangle.
fn read_sheet<RS: Read + Seek>(
    workbook: &mut Sheets<RS>,
    name: &str,
) -> Result<Vec<SheetRow>, String> {
    let mut cells = Cells::default();
    match workbook {
        Sheets::Xlsx(book) => {
            let mut reader = book
                .worksheet_cells_reader(name)
                .map_err(|e| e.to_string())?;
            while let Some(cell) = reader
                .next_cell_with_formula_metadata()
                .map_err(|e| e.to_string())?
            {
                cells.add(cell.pos, Data::from(cell.value), cell.formula.is_some())?;
            }
        }
        Sheets::Xlsb(book) => {
            let mut reader = book
                .worksheet_cells_reader(name)
                .map_err(|e| e.to_string())?;
            while let Some(cell) = reader.next_cell().map_err(|e| e.to_string())? {
                cells.add(
                    cell.get_position(),
                    Data::from(cell.get_value().clone()),
                    false,
                )?;
            }
        }
        workbook => {
            let range: Range<Data> = workbook.worksheet_range(name).map_err(|e| e.to_string())?;
            for (row, column, value) in range.used_cells() {
                let (top, left) = range.start().unwrap_or_default();
                let at = (top + row as u32, left + column as u32);
                cells.add(at, value.clone(), false)?;
            }
        }
    }
    Ok(cells.finish())
}

/// The cells of a sheet as they are read, by row.
#[derive(Default)]
struct Cells {
    rows: BTreeMap<u32, Vec<(u32, Cell)>>,
}

impl Cells {
    /// Adds the cell at `(row, column)` (0-based); a formula without a value is kept as such.
    fn add(&mut self, (row, column): (u32, u32), value: Data, formula: bool) -> Result<(), String> {
        if row >= MAX_ROWS || column >= MAX_COLUMNS {
            return Err(format!(
                "a cell at row {}, column {} is outside Excel's grid ({MAX_ROWS} rows, {MAX_COLUMNS} columns): the file is damaged; open and save it in a spreadsheet program",
                u64::from(row) + 1,
                u64::from(column) + 1
            ));
        }
        let cell = match (&value, formula) {
            (Data::Empty, true) => Cell {
                text: String::new(),
                kind: Kind::Uncomputed,
            },
            (Data::Empty, false) => return Ok(()),
            (value, _) => typed(value),
        };
        self.rows.entry(row).or_default().push((column, cell));
        Ok(())
    }

    /// The rows in order, each with its cells in column order (the last of a doubled cell).
    fn finish(self) -> Vec<SheetRow> {
        self.rows
            .into_iter()
            .map(|(row, mut cells)| {
                cells.reverse();
                // Stable: of two cells at one place, the one read last comes first and stays.
                cells.sort_by_key(|(column, _)| *column);
                cells.dedup_by_key(|(column, _)| *column);
                SheetRow {
                    line: u64::from(row) + 1,
                    cells,
                }
            })
            .collect()
    }
}

/// The name of column `index` (0-based) as a spreadsheet shows it: `A`, `Z`, `AA`, `XFD`.
pub fn column_name(index: usize) -> String {
    let mut name = Vec::new();
    let mut n = index + 1;
    while n > 0 {
        let digit = (n - 1) % 26;
        name.push(b'A' + digit as u8);
        n = (n - 1) / 26;
    }
    name.reverse();
    String::from_utf8(name).unwrap_or_default()
}

/// The sheet asked for (exactly, else ignoring case, as Excel compares sheet names), or the
/// first visible worksheet: what the user sees on opening the file.
fn choose_sheet(
    path: PathBuf,
    sheets: &[calamine::Sheet],
    wanted: Option<&str>,
) -> Result<String, InputError> {
    let found = match wanted {
        Some(wanted) => sheets
            .iter()
            .find(|sheet| sheet.name == wanted)
            .or_else(|| {
                sheets
                    .iter()
                    .find(|sheet| sheet.name.to_lowercase() == wanted.to_lowercase())
            }),
        None => sheets
            .iter()
            .find(|sheet| {
                sheet.typ == SheetType::WorkSheet && sheet.visible == SheetVisible::Visible
            })
            .or(sheets.first()),
    };
    match (found, wanted) {
        (Some(sheet), _) => Ok(sheet.name.clone()),
        (None, None) => Err(InputError::Workbook {
            path,
            problem: "it has no sheets".to_string(),
        }),
        (None, Some(wanted)) => Err(InputError::NoSheet {
            path,
            sheet: wanted.to_string(),
            sheets: sheets
                .iter()
                .map(|sheet| format!("`{}`", crate::text::for_line(&sheet.name)))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl RowSource for Source {
    fn next_row(&mut self, raw: &mut RawRow) -> Option<Result<(), InputError>> {
        let row = self.rows.get(self.next)?;
        self.next += 1;
        // Dense up to the row's last cell: a row's far cell costs this row only, once.
        let width = row
            .cells
            .last()
            .map_or(0, |(column, _)| *column as usize + 1);
        let mut cells = vec![String::new(); width];
        let mut kinds = vec![Kind::Text; width];
        for (column, cell) in &row.cells {
            cells[*column as usize] = cell.text.clone();
            kinds[*column as usize] = cell.kind;
        }
        *raw = RawRow {
            line: row.line,
            cells,
            kinds,
        };
        Some(Ok(()))
    }
}

/// A cell as the spreadsheet shows it (in its default formats), and its type: integers
/// without `.0`, dates in ISO 8601, booleans and error values as Excel spells them.
fn typed(cell: &Data) -> Cell {
    let kind = match cell {
        Data::Int(n) => Kind::Number(*n as f64),
        Data::Float(x) => Kind::Number(*x),
        Data::Bool(b) => Kind::Bool(*b),
        Data::DateTime(datetime) if datetime.is_duration() => Kind::Duration(datetime.as_f64()),
        Data::DateTime(_) | Data::DateTimeIso(_) => Kind::Date,
        Data::Error(_) => Kind::Error,
        Data::Empty | Data::String(_) | Data::DurationIso(_) => Kind::Text,
    };
    Cell {
        text: render(cell),
        kind,
    }
}

/// A cell as the spreadsheet shows it (in its default formats): integers without `.0`,
/// dates in ISO 8601, booleans and error values as Excel spells them.
fn render(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(text) | Data::DateTimeIso(text) | Data::DurationIso(text) => text.clone(),
        Data::Int(n) => n.to_string(),
        // Below 2^53 every whole float is an exact integer.
        Data::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => format!("{}", *x as i64),
        Data::Float(x) => x.to_string(),
        Data::Bool(true) => "TRUE".to_string(),
        Data::Bool(false) => "FALSE".to_string(),
        Data::DateTime(datetime) => render_datetime(datetime),
        Data::Error(error) => render_error(error).to_string(),
    }
}

fn render_datetime(datetime: &ExcelDateTime) -> String {
    if datetime.is_duration() {
        let seconds = (datetime.as_f64() * 86_400.0).round() as i64;
        return format!(
            "{}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        );
    }
    let (year, month, day, hour, minute, second, _) = datetime.to_ymd_hms_milli();
    let date = format!("{year:04}-{month:02}-{day:02}");
    let time = format!("{hour:02}:{minute:02}:{second:02}");
    match datetime.as_f64() {
        serial if serial < 1.0 => time,
        serial if serial.fract() == 0.0 => date,
        _ => format!("{date}T{time}"),
    }
}

/// Error cells as Excel displays them, so that the check for spreadsheet error values sees
/// the same text in a workbook as in its CSV export. (calamine's own `Display` writes
/// `#DATA!` for `#GETTING_DATA`.)
fn render_error(error: &CellErrorType) -> &'static str {
    match error {
        CellErrorType::Div0 => "#DIV/0!",
        CellErrorType::NA => "#N/A",
        CellErrorType::Name => "#NAME?",
        CellErrorType::Null => "#NULL!",
        CellErrorType::Num => "#NUM!",
        CellErrorType::Ref => "#REF!",
        CellErrorType::Value => "#VALUE!",
        CellErrorType::GettingData => "#GETTING_DATA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::check::SPREADSHEET_ERRORS;
    use calamine::ExcelDateTimeType;

    #[test]
    fn cells_read_as_the_spreadsheet_shows_them() {
        let date = |serial, kind| Data::DateTime(ExcelDateTime::new(serial, kind, false));
        let cases = [
            (Data::Float(1234.0), "1234"),
            (Data::Float(-7.0), "-7"),
            (Data::Float(2.5), "2.5"),
            (Data::Int(42), "42"),
            (Data::Bool(true), "TRUE"),
            (Data::Bool(false), "FALSE"),
            (Data::String(" img-abcdefgh ".into()), " img-abcdefgh "),
            (Data::Empty, ""),
            (date(45_418.0, ExcelDateTimeType::DateTime), "2024-05-06"),
            (
                date(45_418.5, ExcelDateTimeType::DateTime),
                "2024-05-06T12:00:00",
            ),
            (date(0.75, ExcelDateTimeType::DateTime), "18:00:00"),
            (date(1.5, ExcelDateTimeType::TimeDelta), "36:00:00"),
            (Data::DateTimeIso("2024-05-06".into()), "2024-05-06"),
            (Data::Error(CellErrorType::NA), "#N/A"),
        ];
        for (cell, expected) in cases {
            assert_eq!(render(&cell), expected, "{cell:?}");
        }
    }

    #[test]
    fn every_error_cell_reads_as_a_spreadsheet_error_value() {
        use CellErrorType::*;
        for error in [Div0, NA, Name, Null, Num, Ref, Value, GettingData] {
            let shown = render_error(&error);
            assert!(SPREADSHEET_ERRORS.contains(&shown), "{shown}");
        }
    }

    #[test]
    fn workbooks_are_told_by_their_extension() {
        for (path, expected) in [
            ("a.xlsx", true),
            ("a.XLSM", true),
            ("a.xls", true),
            ("a.ods", true),
            ("a.xlsb", true),
            ("a.csv", false),
            ("xlsx", false),
            ("-", false),
        ] {
            assert_eq!(is_workbook(Path::new(path)), expected, "{path}");
        }
    }
}
