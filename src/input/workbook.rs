//! A workbook (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) read with `calamine`: one sheet's
//! rows, each cell rendered as the spreadsheet shows it, so that they become the same
//! records as a CSV export of that sheet would.
//!
//! Memory: calamine loads the whole sheet before the first row is read, so a workbook's
//! input is held in memory (a CSV file is streamed). Sheets the size of a hand-kept list
//! are a few megabytes at most.

use std::fs::File;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use calamine::{CellErrorType, Data, ExcelDateTime, Range, Reader as _, SheetType, SheetVisible};

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

/// A sheet loaded once, read by every phase of a run.
#[derive(Clone)]
pub struct Sheet {
    range: Arc<Range<Data>>,
    /// The sheet's name, as the workbook spells it.
    pub name: String,
}

/// The rows of one sheet.
pub(super) struct Source {
    range: Arc<Range<Data>>,
    /// The sheet row number of the range's first row, less one: the range starts at the
    /// first row that holds anything.
    rows_above: u64,
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
        let rows_above = sheet.range.start().map_or(0, |(row, _)| u64::from(row));
        Self {
            range: sheet.range.clone(),
            rows_above,
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
    let mut workbook = calamine::open_workbook_auto(path).map_err(|e| unreadable(e.to_string()))?;
    let name = choose_sheet(path.to_path_buf(), workbook.sheets_metadata(), sheet)?;
    let range = workbook
        .worksheet_range(&name)
        .map_err(|e| unreadable(format!("sheet `{name}`: {e}")))?;
    Ok(Sheet {
        range: Arc::new(range),
        name,
    })
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
                .map(|sheet| format!("`{}`", sheet.name))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl RowSource for Source {
    fn next_row(&mut self) -> Option<Result<RawRow, InputError>> {
        let (height, width) = self.range.get_size();
        if self.next >= height {
            return None;
        }
        let row = self.next;
        self.next += 1;
        let mut cells: Vec<String> = (0..width)
            .map(|column| {
                self.range
                    .get((row, column))
                    .map_or_else(String::new, render)
            })
            .collect();
        // A sheet's range is as wide as its widest row; the others end where they end.
        while cells.last().is_some_and(String::is_empty) {
            cells.pop();
        }
        let line = self.rows_above + row as u64 + 1;
        Some(Ok(RawRow { line, cells }))
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
