//! Delimited text: a CSV file, or the `;`- or tab-separated "CSV" that spreadsheets in some
//! locales export, streamed through the `csv` crate.
//!
//! Before the parser starts, the first lines are looked at (at most `PREFIX_LIMIT` bytes,
//! held until the file is read): a UTF-8 BOM is dropped, an Excel `sep=` line sets the
//! separator, and otherwise the header row chooses it. While the parser reads, [`Scan`]
//! watches the same bytes to tell what the parser cannot: the line each record starts on,
//! whatever the line ends are, and a quote still open at the end of the file.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{InputError, RawRow, RowSource, header};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How far the header row is looked for. A file with more comment lines than this before
/// its header is read as comma-separated.
const PREFIX_LIMIT: usize = 1 << 20;

/// How a file is laid out, as told by its first lines.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    had_bom: bool,
    /// Bytes the parser does not see: the BOM and a `sep=` line.
    skip: usize,
    delimiter: u8,
}

/// An opened file: rows to read, and what was learned from its first lines.
pub(super) struct Opened {
    pub(super) rows: Source,
    pub(super) had_bom: bool,
    pub(super) delimiter: u8,
}

/// Reads `input` far enough to know its layout, and readies the parser for the rest.
pub(super) fn open(path: &Path, mut input: Box<dyn Read + Send>) -> Result<Opened, InputError> {
    let prefix = read_prefix(&mut input).map_err(|source| InputError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let layout = Layout::of(&prefix);
    let mut prefix = io::Cursor::new(prefix);
    prefix.set_position(layout.skip as u64);
    let scan = Scan::new(prefix.chain(input), layout.delimiter);
    let csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(layout.delimiter)
        // The default terminator ends a record at `\r`, `\n` or `\r\n`: CR-only files from
        // old Mac Excel read as rows, not as one long line.
        .from_reader(scan);
    Ok(Opened {
        rows: Source {
            path: path.to_path_buf(),
            csv,
            record: csv::StringRecord::new(),
        },
        had_bom: layout.had_bom,
        delimiter: layout.delimiter,
    })
}

/// The beginning of the file, up to the end of its header row (or `PREFIX_LIMIT`).
fn read_prefix(input: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut prefix = Vec::new();
    let mut chunk = [0; 8 * 1024];
    while prefix.len() < PREFIX_LIMIT {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        prefix.extend_from_slice(&chunk[..n]);
        let layout = Layout::of(&prefix);
        if let Some((_, true)) = content_line(&prefix[layout.skip..]) {
            break;
        }
    }
    Ok(prefix)
}

impl Layout {
    fn of(prefix: &[u8]) -> Self {
        let had_bom = prefix.starts_with(BOM);
        let mut skip = if had_bom { BOM.len() } else { 0 };
        let delimiter = match sep_line(&prefix[skip..]) {
            Some((delimiter, length)) => {
                skip += length;
                delimiter
            }
            None => content_line(&prefix[skip..]).map_or(b',', |(line, _)| sniff(line)),
        };
        Self {
            had_bom,
            skip,
            delimiter,
        }
    }
}

/// The separator an Excel `sep=X` first line names, and the line's length with its end.
/// Excel writes it and hides it; the header is the next line.
fn sep_line(bytes: &[u8]) -> Option<(u8, usize)> {
    let (&delimiter, rest) = bytes
        .get(..4)
        .filter(|start| start.eq_ignore_ascii_case(b"sep="))
        .and_then(|_| bytes[4..].split_first())?;
    if !delimiter.is_ascii() || matches!(delimiter, b'\r' | b'\n' | b'"') {
        return None;
    }
    let end = match rest {
        [b'\r', b'\n', ..] => 2,
        [b'\r' | b'\n', ..] => 1,
        [] => 0,
        _ => return None,
    };
    Some((delimiter, 5 + end))
}

/// The first line that is neither blank nor a `#` comment, and whether its end was seen.
fn content_line(bytes: &[u8]) -> Option<(&[u8], bool)> {
    let mut lines = bytes.split(|b| matches!(b, b'\r' | b'\n')).peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_ascii();
        if !trimmed.is_empty() && !trimmed.starts_with(b"#") {
            return Some((line, lines.peek().is_some()));
        }
    }
    None
}

/// The separator of a header row: a comma, unless the row names the required columns only
/// when split on `;` or a tab (a spreadsheet's export in a locale whose decimal mark is
/// the comma).
fn sniff(header: &[u8]) -> u8 {
    [b',', b';', b'\t']
        .into_iter()
        .find(|delimiter| {
            (*delimiter == b',' || header.contains(delimiter))
                && header::names_required_columns(&split(header, *delimiter))
        })
        .unwrap_or(b',')
}

fn split(line: &[u8], delimiter: u8) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .from_reader(line);
    let mut record = csv::ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => record
            .iter()
            .map(|cell| String::from_utf8_lossy(cell).into_owned())
            .collect(),
        _ => Vec::new(),
    }
}

type Stream = io::Chain<io::Cursor<Vec<u8>>, Box<dyn Read + Send>>;

/// The rows of a delimited file, one record at a time.
pub(super) struct Source {
    path: PathBuf,
    csv: csv::Reader<Scan<Stream>>,
    record: csv::StringRecord,
}

impl RowSource for Source {
    fn next_row(&mut self, row: &mut RawRow) -> Option<Result<(), InputError>> {
        match self.csv.read_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                row.line = self.line_of(self.record.position().cloned());
                // The cells' strings are refilled, not made anew: no allocation per row.
                row.cells.truncate(self.record.len());
                for (i, field) in self.record.iter().enumerate() {
                    match row.cells.get_mut(i) {
                        Some(cell) => {
                            cell.clear();
                            cell.push_str(field);
                        }
                        None => row.cells.push(field.to_string()),
                    }
                }
                row.kinds.clear();
                Some(Ok(()))
            }
            Err(error) => Some(Err(self.error(error))),
        }
    }
}

impl Source {
    /// The line a record starts on, from what [`Scan`] saw.
    fn line_of(&mut self, position: Option<csv::Position>) -> u64 {
        let Some(position) = position else { return 0 };
        self.csv
            .get_mut()
            .line_of_record(position.byte())
            .unwrap_or(position.line())
    }

    fn error(&mut self, error: csv::Error) -> InputError {
        let path = self.path.clone();
        let line = self.line_of(error.position().cloned());
        let text = error.to_string();
        let problem = match error.into_kind() {
            csv::ErrorKind::Io(source) => {
                return match source
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<UnclosedQuote>())
                {
                    Some(quote) => InputError::Malformed {
                        path,
                        line: quote.line,
                        problem: quote.to_string(),
                    },
                    None => InputError::Open { path, source },
                };
            }
            csv::ErrorKind::Utf8 { .. } => {
                "not UTF-8 text; save the spreadsheet as \"CSV UTF-8\" and try again".to_string()
            }
            _ => format!("not readable as CSV: {text}"),
        };
        InputError::Malformed {
            path,
            line,
            problem,
        }
    }
}

/// The file ended inside a quoted cell: the parser would take everything after the quote,
/// to the end of the file, as one cell.
#[derive(Debug)]
struct UnclosedQuote {
    /// The line where the quote opened.
    line: u64,
}

impl fmt::Display for UnclosedQuote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a quote (\") opens a cell here and is never closed, so the rest of the file would be read as that one cell: close the quote, or delete it",
        )
    }
}

impl std::error::Error for UnclosedQuote {}

/// Where the scanner is in the CSV grammar: the states of `csv_core`'s parser (default
/// quoting, `""` for a quote inside a quoted cell, `\r`, `\n` or `\r\n` ending a record),
/// so that the records it sees start where the parser's do.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Between records: line ends here are blank lines, which the parser skips.
    RecordStart,
    FieldStart,
    Unquoted,
    Quoted {
        opened: u64,
    },
    /// A quote inside a quoted cell: it closes the cell, or a second one follows.
    ClosingQuote {
        opened: u64,
    },
}

/// A reader between the file and the parser that learns, byte by byte, the line on which
/// each record starts and whether the file ends inside quotes (then its last read is an
/// [`UnclosedQuote`] error, which the parser hands back). Lines are counted as a text
/// editor counts them: `\n`, `\r\n` and a lone `\r` each end one.
struct Scan<R> {
    inner: R,
    delimiter: u8,
    state: State,
    /// Bytes passed to the parser so far.
    offset: u64,
    /// The line of the next byte, 1-based.
    line: u64,
    after_cr: bool,
    /// (byte offset, line) of the records the parser has not yet returned. The parser reads
    /// ahead by one buffer at most, so this stays small however long the file is.
    starts: VecDeque<(u64, u64)>,
    /// The bytes that end a run inside an unquoted cell: the separator and the line ends.
    stops_unquoted: [bool; 256],
}

/// The bytes that end a run inside a quoted cell: a quote and the line ends.
const STOPS_QUOTED: [bool; 256] = stops(b'"');

/// Every byte: outside a cell each one is stepped through.
const ALWAYS: [bool; 256] = [true; 256];

/// A table of `special` and the line ends.
const fn stops(special: u8) -> [bool; 256] {
    let mut table = [false; 256];
    table[special as usize] = true;
    table[b'\r' as usize] = true;
    table[b'\n' as usize] = true;
    table
}

impl<R: Read> Scan<R> {
    fn new(inner: R, delimiter: u8) -> Self {
        Self {
            inner,
            delimiter,
            state: State::RecordStart,
            offset: 0,
            line: 1,
            after_cr: false,
            starts: VecDeque::new(),
            stops_unquoted: stops(delimiter),
        }
    }

    /// The line of the record the parser returned at `byte`: the first record seen at or
    /// after it (the parser's position is before the blank lines it skipped).
    fn line_of_record(&mut self, byte: u64) -> Option<u64> {
        while let Some((offset, line)) = self.starts.pop_front() {
            if offset >= byte {
                return Some(line);
            }
        }
        None
    }

    fn step(&mut self, byte: u8) {
        let ends_line = matches!(byte, b'\r' | b'\n');
        if matches!(self.state, State::RecordStart) && !ends_line {
            self.starts.push_back((self.offset, self.line));
            self.state = State::FieldStart;
        }
        self.state = match self.state {
            State::RecordStart => State::RecordStart,
            State::FieldStart if byte == b'"' => State::Quoted { opened: self.line },
            State::Quoted { opened } if byte == b'"' => State::ClosingQuote { opened },
            State::Quoted { opened } => State::Quoted { opened },
            State::ClosingQuote { opened } if byte == b'"' => State::Quoted { opened },
            _ if byte == self.delimiter => State::FieldStart,
            _ if ends_line => State::RecordStart,
            // Past the start of a cell a quote is an ordinary character, as it is to the parser.
            _ => State::Unquoted,
        };
        match byte {
            b'\r' => self.line += 1,
            b'\n' if !self.after_cr => self.line += 1,
            _ => {}
        }
        self.after_cr = byte == b'\r';
        self.offset += 1;
    }
}

impl<R: Read> Read for Scan<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let (0, State::Quoted { opened }) = (n, self.state) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                UnclosedQuote { line: opened },
            ));
        }
        let mut i = 0;
        while i < n {
            // Inside a cell, a run of bytes that cannot change the state only moves the
            // offset: skip it whole rather than a byte at a time.
            // A table look-up per byte: runs are a few bytes long, too short for memchr's
            // set-up to pay.
            let stops = match self.state {
                State::Unquoted => &self.stops_unquoted,
                State::Quoted { .. } => &STOPS_QUOTED,
                _ => &ALWAYS,
            };
            let run = buf[i..n]
                .iter()
                .position(|b| stops[usize::from(*b)])
                .unwrap_or(n - i);
            if run > 0 {
                self.offset += run as u64;
                self.after_cr = false;
                i += run;
                continue;
            }
            self.step(buf[i]);
            i += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start line of every record that `Scan` sees, and whether it ends inside quotes.
    fn scan(text: &str) -> (Vec<u64>, Option<u64>) {
        let mut scan = Scan::new(text.as_bytes(), b',');
        let unclosed = io::copy(&mut scan, &mut io::sink())
            .err()
            .and_then(|e| e.into_inner())
            .and_then(|e| e.downcast::<UnclosedQuote>().ok())
            .map(|quote| quote.line);
        let lines = scan.starts.iter().map(|(_, line)| *line).collect();
        (lines, unclosed)
    }

    #[test]
    fn records_start_on_the_lines_an_editor_shows() {
        let cases: [(&str, &[u64]); 9] = [
            ("a\nb\nc\n", &[1, 2, 3]),
            ("a\r\nb\r\n\r\nc", &[1, 2, 4]),
            ("a\rb\r\rc\r", &[1, 2, 4]),
            ("a\n\"two\nlines\",x\nb\n", &[1, 2, 4]),
            ("a\r\"two\rlines\"\rb", &[1, 2, 4]),
            ("\"say \"\"hi\"\"\nthere\",x\nb", &[1, 3]),
            ("a\"b,c\nd", &[1, 2]),
            ("\"a\"b\nc", &[1, 2]),
            ("\n\n  \nx", &[3, 4]),
        ];
        for (text, expected) in cases {
            assert_eq!(scan(text), (expected.to_vec(), None), "{text:?}");
        }
    }

    #[test]
    fn a_quote_left_open_names_its_line() {
        let cases = [
            ("a,b\n\"c,d\ne,f\n", 2),
            ("a\r\rb,\"c\"\"\rd", 3),
            ("a\r\nb\r\n\"\r\n", 3),
        ];
        for (text, expected) in cases {
            assert_eq!(scan(text).1, Some(expected), "{text:?}");
        }
        // A quote inside an unquoted cell is a character, as the parser takes it.
        assert_eq!(scan("a,b\"c\nd\n").1, None);
    }

    #[test]
    fn the_first_lines_choose_the_separator() {
        let cases: [(&[u8], Layout); 8] = [
            (b"region,image_id,permission\n", layout(false, 0, b',')),
            (b"region;image_id;permission\r\n", layout(false, 0, b';')),
            (b"region\timage_id\tpermission", layout(false, 0, b'\t')),
            (
                b"\xEF\xBB\xBFregion;image_id;permission\n",
                layout(true, 3, b';'),
            ),
            (
                b"sep=;\r\nregion,image,permission\r\n",
                layout(false, 7, b';'),
            ),
            (
                b"\xEF\xBB\xBFSEP=,\nregion;image;permission\n",
                layout(true, 9, b','),
            ),
            (
                b"# notes; more\n\nregion;image;permission;\"a, b\"\n",
                layout(false, 0, b';'),
            ),
            (b"region;image;perm\n", layout(false, 0, b',')),
        ];
        for (prefix, expected) in cases {
            assert_eq!(
                Layout::of(prefix),
                expected,
                "{}",
                String::from_utf8_lossy(prefix)
            );
        }
    }

    fn layout(had_bom: bool, skip: usize, delimiter: u8) -> Layout {
        Layout {
            had_bom,
            skip,
            delimiter,
        }
    }

    #[test]
    fn the_prefix_ends_with_the_header_row() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(3);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let text = b"sep=,\n# a note\nregion,image_id,permission\nap-seoul,img-abcdefgh,SHARE\n";
        let prefix = read_prefix(&mut Trickle(text)).unwrap();
        assert_eq!(prefix, &text[..42], "{}", String::from_utf8_lossy(&prefix));
    }
}
