//! Input: a spreadsheet-exported CSV, streamed, becomes validated rows.
//!
//! Header names are matched loosely (case, spaces, `_`, `-`), blank lines and `#` lines are
//! skipped, cells are trimmed. A row that fails a check is not an error of the file: it
//! becomes an invalid row whose message names the column, the value, what is allowed and,
//! for a near miss, the likely fix. Only an unreadable file or a missing column stops the run.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::action::{self, Permission};
use crate::suggest;

/// The file as a whole cannot be used: exit 2, before anything is sent.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path} is a directory: give the CSV file to run")]
    Directory { path: PathBuf },
    #[error(
        "{path}: the file is empty; it needs a header row with region, image_id and permission"
    )]
    Empty { path: PathBuf },
    #[error(
        "{path}: no `{column}` column in the header row ({found}); the header needs region, image_id (or ImageId, image) and permission{hint}"
    )]
    MissingColumn {
        path: PathBuf,
        column: &'static str,
        found: String,
        /// Why the header may look wrong, when it can be told.
        hint: &'static str,
    },
    #[error("{path}, line {line}: {problem}")]
    Malformed {
        path: PathBuf,
        line: u64,
        problem: String,
    },
}

impl InputError {
    /// The same error naming the input as the user gave it (`-`: standard input) rather
    /// than the file it was read from, a temporary copy of standard input.
    pub fn shown_as(self, given: &Path) -> Self {
        let shown = if given == Path::new("-") {
            PathBuf::from("standard input")
        } else {
            given.to_path_buf()
        };
        match self {
            InputError::Open { source, .. } => InputError::Open {
                path: shown,
                source,
            },
            InputError::Directory { .. } => InputError::Directory { path: shown },
            InputError::Empty { .. } => InputError::Empty { path: shown },
            InputError::MissingColumn {
                column,
                found,
                hint,
                ..
            } => InputError::MissingColumn {
                path: shown,
                column,
                found,
                hint,
            },
            InputError::Malformed { line, problem, .. } => InputError::Malformed {
                path: shown,
                line,
                problem,
            },
        }
    }
}

/// One data row as the file gives it, cells trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based line number in the file, the header being line 1: the row's identity.
    pub line: u64,
    pub region: String,
    pub image_id: String,
    pub permission: String,
}

/// A row that passed every check, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub region: &'static str,
    pub image_id: String,
    pub permission: Permission,
}

/// Where each required column is.
struct Columns {
    region: usize,
    image_id: usize,
    permission: usize,
}

/// A streaming reader of records.
pub struct Reader {
    path: PathBuf,
    csv: csv::Reader<Box<dyn Read + Send>>,
    columns: Columns,
    record: csv::StringRecord,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Self, InputError> {
        let file = File::open(path).map_err(|source| InputError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if file.metadata().is_ok_and(|meta| meta.is_dir()) {
            return Err(InputError::Directory {
                path: path.to_path_buf(),
            });
        }
        Self::from_reader(path, Box::new(BufReader::with_capacity(64 * 1024, file)))
    }

    pub fn from_reader(path: &Path, source: Box<dyn Read + Send>) -> Result<Self, InputError> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            // Lines end at `\n`; a `\r` before it is trimmed with the cell. (With the default
            // CRLF terminator the csv crate numbers the lines of CRLF files one short.)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(source);
        let mut header = csv::StringRecord::new();
        let path = path.to_path_buf();
        let found = loop {
            match csv.read_record(&mut header) {
                Ok(false) => return Err(InputError::Empty { path }),
                Ok(true) if is_skipped(&header) => continue,
                Ok(true) => break header,
                Err(error) => return Err(malformed(&path, error)),
            }
        };
        let columns = find_columns(&path, &found)?;
        Ok(Self {
            path,
            csv,
            columns,
            record: csv::StringRecord::new(),
        })
    }

    /// The next data record, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Option<Result<Record, InputError>> {
        loop {
            match self.csv.read_record(&mut self.record) {
                Ok(false) => return None,
                Ok(true) if is_skipped(&self.record) => continue,
                Ok(true) => {}
                Err(error) => return Some(Err(malformed(&self.path, error))),
            }
            let cell = |i: usize| self.record.get(i).unwrap_or("").trim().to_string();
            let line = self.record.position().map_or(0, |p| p.line());
            return Some(Ok(Record {
                line,
                region: cell(self.columns.region),
                image_id: cell(self.columns.image_id),
                permission: cell(self.columns.permission),
            }));
        }
    }
}

impl Iterator for Reader {
    type Item = Result<Record, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// Blank lines and lines whose first cell starts with `#` are not rows.
fn is_skipped(record: &csv::StringRecord) -> bool {
    let first = record
        .get(0)
        .unwrap_or("")
        .trim_start_matches('\u{feff}')
        .trim();
    first.starts_with('#') || record.iter().all(|cell| cell.trim().is_empty())
}

fn malformed(path: &Path, error: csv::Error) -> InputError {
    let Some(line) = error.position().map(|p| p.line()) else {
        // Not a fault at a line: the file could not be read at all.
        let source = match error.into_kind() {
            csv::ErrorKind::Io(source) => source,
            other => io::Error::other(format!("{other:?}")),
        };
        return InputError::Open {
            path: path.to_path_buf(),
            source,
        };
    };
    let problem = match error.kind() {
        csv::ErrorKind::Utf8 { .. } => {
            "not UTF-8 text; save the spreadsheet as \"CSV UTF-8\" and try again".to_string()
        }
        _ => format!("not readable as CSV: {error}"),
    };
    InputError::Malformed {
        path: path.to_path_buf(),
        line,
        problem,
    }
}

/// Header cells compare without case, surrounding spaces, `_`, `-` or inner spaces.
fn normalise(name: &str) -> String {
    name.trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !matches!(c, '_' | '-') && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

fn find_columns(path: &Path, header: &csv::StringRecord) -> Result<Columns, InputError> {
    let names: Vec<String> = header.iter().map(normalise).collect();
    // A spreadsheet set to another locale exports `;` or tab separated "CSV".
    let hint = match header.len() {
        1 if header[0].contains(';') => {
            ". The file is separated by `;`: export it as CSV with commas"
        }
        1 if header[0].contains('\t') => {
            ". The file is separated by tabs: export it as CSV with commas"
        }
        _ => "",
    };
    let find = |column: &'static str, aliases: &[&str]| {
        names
            .iter()
            .position(|name| aliases.contains(&name.as_str()))
            .ok_or_else(|| InputError::MissingColumn {
                path: path.to_path_buf(),
                column,
                found: format!("found: {}", header.iter().collect::<Vec<_>>().join(",")),
                hint,
            })
    };
    Ok(Columns {
        region: find("region", &["region"])?,
        image_id: find("image_id", &["imageid", "image"])?,
        permission: find("permission", &["permission"])?,
    })
}

impl Record {
    /// Checks every cell; the message of a failure says what is wrong and how to fix it.
    pub fn validate(&self) -> Result<Row, String> {
        let problems: Vec<String> = [
            check_region(&self.region).err(),
            check_image_id(&self.image_id).err(),
            check_permission(&self.permission).err(),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Row {
            line: self.line,
            region: action::supported_region(&self.region).expect("checked above"),
            image_id: self.image_id.clone(),
            permission: Permission::parse(&self.permission).expect("checked above"),
        })
    }
}

fn check_region(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("region is empty: give one such as ap-guangzhou".to_string());
    }
    if action::supported_region(value).is_some() {
        return Ok(());
    }
    let zone_of = value
        .rsplit_once('-')
        .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(region, _)| action::supported_region(region));
    let hint = match (zone_of, suggest::nearest(value, &action::REGIONS)) {
        (Some(region), _) => {
            format!("`{value}` is an availability zone; use its region `{region}`")
        }
        (None, Some(region)) => format!("did you mean `{region}`?"),
        (None, None) => format!("supported regions: {}", action::REGIONS.join(", ")),
    };
    Err(format!(
        "region `{value}` is not a region this action supports: {hint}"
    ))
}

fn check_image_id(value: &str) -> Result<(), String> {
    if action::is_image_id(value) {
        return Ok(());
    }
    if value.is_empty() {
        return Err("image_id is empty: give one such as img-xkd784jw".to_string());
    }
    let fixed = value.to_ascii_lowercase().replacen("img_", "img-", 1);
    let hint = if action::is_image_id(&fixed) {
        format!("did you mean `{fixed}`?")
    } else {
        match value.strip_prefix("img-") {
            Some(rest) => format!("it has {} characters after img-", rest.chars().count()),
            None => "it does not start with img-".to_string(),
        }
    };
    Err(format!(
        "image_id `{value}` is not img- followed by 8 lowercase letters or digits: {hint}"
    ))
}

fn check_permission(value: &str) -> Result<(), String> {
    if Permission::parse(value).is_some() {
        return Ok(());
    }
    let hint = match suggest::nearest(value, &Permission::ALL) {
        Some(near) => format!("did you mean `{near}`?"),
        None => "use SHARE to share the image to Lighthouse, CANCEL to stop sharing it".to_string(),
    };
    Err(format!(
        "permission `{value}` is not SHARE or CANCEL: {hint}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Record>, InputError> {
        let reader = Reader::from_reader(
            Path::new("t.csv"),
            Box::new(io::Cursor::new(text.to_string())),
        )?;
        reader.collect()
    }

    #[test]
    fn reads_a_messy_spreadsheet_export() {
        let text = "\u{feff}Region , Image-ID,PERMISSION,owner\r\n\
                    ap-guangzhou, img-abcdefgh ,share,me\r\n\
                    \r\n\
                    # a comment, with commas\r\n\
                    AP-TOKYO,img-12345678,CANCEL\r\n";
        let records = read(text).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0],
            Record {
                line: 2,
                region: "ap-guangzhou".into(),
                image_id: "img-abcdefgh".into(),
                permission: "share".into()
            }
        );
        assert_eq!(records[1].line, 5, "lines count blank and comment lines");
        let row = records[1].validate().unwrap();
        assert_eq!(
            (row.region, row.permission),
            ("ap-tokyo", Permission::Cancel)
        );
    }

    #[test]
    fn header_aliases_are_accepted() {
        for header in [
            "region,ImageId,permission",
            "Region,image,Permission",
            "REGION,image id,permission",
        ] {
            let records = read(&format!("{header}\nap-seoul,img-abcdefgh,SHARE\n")).unwrap();
            assert_eq!(records[0].image_id, "img-abcdefgh", "{header}");
        }
    }

    #[test]
    fn a_missing_column_names_the_column_and_the_header_found() {
        let error = read("region,image_id,perm\nap-seoul,img-abcdefgh,SHARE\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`permission`"), "{error}");
        assert!(error.contains("region,image_id,perm"), "{error}");
        assert!(matches!(read(""), Err(InputError::Empty { .. })));
        let error = read("region;image_id;permission\nap-seoul;img-abcdefgh;SHARE\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("separated by `;`"), "{error}");
    }

    #[test]
    fn bad_cells_get_messages_that_say_how_to_fix_them() {
        let cases = [
            (
                "ap-guangzhou-3",
                "img-abcdefgh",
                "SHARE",
                "use its region `ap-guangzhou`",
            ),
            (
                "ap-guangzou",
                "img-abcdefgh",
                "SHARE",
                "did you mean `ap-guangzhou`?",
            ),
            (
                "ap-seoul",
                "img-abcdefgh",
                "CANEL",
                "did you mean `CANCEL`?",
            ),
            (
                "ap-seoul",
                "img-ABCDEFGH",
                "SHARE",
                "did you mean `img-abcdefgh`?",
            ),
            (
                "ap-seoul",
                "img-abcdefg",
                "SHARE",
                "it has 7 characters after img-",
            ),
            ("ap-seoul", "img-abcdefgh", "DELETE", "use SHARE to share"),
            ("", "img-abcdefgh", "SHARE", "region is empty"),
        ];
        for (region, image_id, permission, expected) in cases {
            let record = Record {
                line: 2,
                region: region.into(),
                image_id: image_id.into(),
                permission: permission.into(),
            };
            let message = record.validate().unwrap_err();
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn non_utf8_is_an_error_naming_the_line() {
        let mut bytes =
            b"region,image_id,permission\nap-seoul,img-abcdefgh,SHARE\nap-seoul,img-".to_vec();
        bytes.extend([0xff, 0xfe]);
        bytes.extend(b"abcdef,SHARE\n");
        let reader =
            Reader::from_reader(Path::new("t.csv"), Box::new(io::Cursor::new(bytes))).unwrap();
        let error = reader
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 3") && error.contains("CSV UTF-8"),
            "{error}"
        );
    }
}
