//! Which column is which: the three required ones, found by loose names, and the columns
//! that the results file writes itself.

use std::path::Path;

use super::{InputError, check};

/// The required columns: the name messages use, and the normalised names that match it.
const REQUIRED: [(&str, &[&str]); 3] = [
    ("region", &["region"]),
    ("image_id", &["imageid", "image"]),
    ("permission", &["permission"]),
];

/// The columns the results file writes after the input's own (SPEC §4).
pub const RESULT_COLUMNS: [&str; 7] = [
    "status",
    "blueprint_id",
    "request_id",
    "error_code",
    "error_message",
    "attempts",
    "finished_at",
];

/// The columns the results file writes fresh: `line` and the result columns. A results
/// file fed back as input has them; a results writer copies every other column.
fn is_ours(normalised: &str) -> bool {
    normalised == normalise("line")
        || RESULT_COLUMNS
            .iter()
            .any(|name| normalise(name) == normalised)
}

/// Where each required column is: indices into a row's cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Columns {
    pub region: usize,
    pub image_id: usize,
    pub permission: usize,
}

impl Columns {
    /// The three indices, in the order region, image_id, permission.
    pub fn all(self) -> [usize; 3] {
        [self.region, self.image_id, self.permission]
    }
}

/// The header row, and what each of its cells means.
pub(super) struct Header {
    /// The cells as in the file (a BOM before the first one removed), so that results can
    /// repeat the user's own column names exactly.
    pub(super) cells: Vec<String>,
    pub(super) columns: Columns,
    /// Columns named like one the results file writes itself.
    pub(super) ours: Vec<usize>,
}

impl Header {
    pub(super) fn parse(path: &Path, cells: Vec<String>) -> Result<Self, InputError> {
        let names: Vec<String> = cells.iter().map(|cell| normalise(cell)).collect();
        let mut found = [0; 3];
        for (slot, (column, aliases)) in found.iter_mut().zip(REQUIRED) {
            match positions(&names, aliases)[..] {
                [] => return Err(missing(path, column, &cells)),
                [i] => *slot = i,
                [first, second, ..] => {
                    return Err(InputError::DuplicateColumn {
                        path: path.to_path_buf(),
                        column,
                        first: describe(first, &cells),
                        second: describe(second, &cells),
                    });
                }
            }
        }
        let [region, image_id, permission] = found;
        let ours = (0..names.len()).filter(|i| is_ours(&names[*i])).collect();
        Ok(Self {
            cells,
            columns: Columns {
                region,
                image_id,
                permission,
            },
            ours,
        })
    }
}

/// Whether every required column is named in `cells`: how a `;`- or tab-separated export is
/// told from a comma-separated file whose header happens to hold a `;`.
pub(super) fn names_required_columns(cells: &[String]) -> bool {
    let names: Vec<String> = cells.iter().map(|cell| normalise(cell)).collect();
    REQUIRED
        .iter()
        .all(|(_, aliases)| !positions(&names, aliases).is_empty())
}

/// Header cells compare without case, spaces (inside or around), `_`, `-` or invisible
/// characters: a spreadsheet user types `Image ID` or pastes a name with a zero-width space.
fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-') && !c.is_whitespace() && check::invisible(*c).is_none())
        .flat_map(char::to_lowercase)
        .collect()
}

fn positions(names: &[String], aliases: &[&str]) -> Vec<usize> {
    (0..names.len())
        .filter(|i| aliases.contains(&names[*i].as_str()))
        .collect()
}

/// A header cell as messages name it: its 1-based column number and its text.
fn describe(index: usize, cells: &[String]) -> String {
    format!("{} (`{}`)", index + 1, check::echo(&cells[index]))
}

fn missing(path: &Path, column: &'static str, cells: &[String]) -> InputError {
    let found: Vec<String> = cells.iter().map(|cell| check::echo(cell)).collect();
    InputError::MissingColumn {
        path: path.to_path_buf(),
        column,
        found: format!("found: {}", found.join(",")),
        hint: if cells.len() == 1 {
            ". The header row is a single cell: separate the columns with commas (`;` and tabs are read too)"
        } else {
            ""
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(header: &[&str]) -> Result<Header, InputError> {
        let cells = header.iter().map(|cell| cell.to_string()).collect();
        Header::parse(Path::new("t.csv"), cells)
    }

    #[test]
    fn names_match_loosely() {
        let cases: [(&[&str], [usize; 3]); 5] = [
            (&["region", "image_id", "permission"], [0, 1, 2]),
            (&["Permission", " Region ", "ImageId"], [1, 2, 0]),
            (&["REGION", "image id", "PERMISSION"], [0, 1, 2]),
            (&["note", "region", "Image-ID", "per_mission"], [1, 2, 3]),
            (
                &["region\u{200B}", "image\u{00A0}", "permission"],
                [0, 1, 2],
            ),
        ];
        for (header, expected) in cases {
            let columns = parse(header).unwrap().columns;
            assert_eq!(columns.all(), expected, "{header:?}");
        }
    }

    #[test]
    fn two_columns_for_one_name_are_an_error_naming_both() {
        let cases: [(&[&str], &str); 2] = [
            (
                &["region", "image_id", "permission", "Permission"],
                "columns 3 (`permission`) and 4 (`Permission`) both name the `permission` column",
            ),
            (
                &["image", "region", "ImageId", "permission"],
                "columns 1 (`image`) and 3 (`ImageId`) both name the `image_id` column",
            ),
        ];
        for (header, expected) in cases {
            let message = parse(header)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn a_missing_column_names_the_column_and_the_header_found() {
        let message = parse(&["region", "image_id", "perm"])
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("no `permission` column"), "{message}");
        assert!(message.contains("found: region,image_id,perm"), "{message}");
        let message = parse(&["region|image_id|permission"])
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("a single cell"), "{message}");
    }

    #[test]
    fn our_columns_are_found_for_the_results_writer() {
        let header = parse(&[
            "Line",
            "region",
            "ticket",
            "image_id",
            "permission",
            "Status",
            "blueprint-id",
            "request_id",
            "Error Code",
            "error_message",
            "attempts",
            "finished_at",
        ])
        .unwrap();
        assert_eq!(header.ours, [0, 5, 6, 7, 8, 9, 10, 11]);
        assert!(names_required_columns(&header.cells));
        assert!(!names_required_columns(&["region".into(), "image".into()]));
    }
}
