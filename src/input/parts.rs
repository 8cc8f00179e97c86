//! The bounds of a zip-based workbook (`.xlsx`, `.xlsm`, `.xlsb`, `.ods`), checked before
//! calamine reads it: calamine trusts what the file says, so a part that unpacks to gigabytes
//! (a zip bomb), a shared-string count that it reserves room for, or a cell reference past
//! Excel's grid would reach an allocation that grows with them. Each part is unpacked once
//! here, as a stream, counting: memory stays at one buffer whatever the file holds.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// Excel's grid: 1,048,576 rows of 16,384 columns (`XFD`).
pub const MAX_ROWS: u32 = 1_048_576;
pub const MAX_COLUMNS: u32 = 16_384;
/// The most any one part of a workbook may unpack to. A sheet this large holds far more
/// rows than a list of images to share; a CSV export of it is streamed instead.
pub const MAX_PART_BYTES: u64 = 512 * 1024 * 1024;
/// The most parts a workbook may have (a real one has tens).
const MAX_PARTS: usize = 10_000;

/// Checks every part of the zip at `path`; `Ok` also when the file is no zip (an `.xls`, or
/// a file calamine will reject with its own words). The error names the limit and the fix.
pub fn check(path: &Path) -> Result<(), String> {
    let Ok(file) = File::open(path) else {
        return Ok(());
    };
    let Ok(mut archive) = zip::ZipArchive::new(BufReader::new(file)) else {
        return Ok(());
    };
    if archive.len() > MAX_PARTS {
        return Err(format!(
            "it has {} parts, more than the {MAX_PARTS} a workbook can have: open and save it in a spreadsheet program, or export the sheet as CSV",
            archive.len()
        ));
    }
    for index in 0..archive.len() {
        let Ok(mut part) = archive.by_index(index) else {
            continue;
        };
        let name = part.name().map(|n| n.to_string()).unwrap_or_default();
        if part.is_dir() {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        let scan = Scan {
            cells: lower.contains("worksheets/") && lower.ends_with(".xml"),
            shared_strings: lower.ends_with("sharedstrings.xml"),
        };
        check_part(&mut part, &name, scan, MAX_PART_BYTES)?;
    }
    Ok(())
}

/// What to look for in a part besides its size.
#[derive(Clone, Copy)]
struct Scan {
    /// A worksheet: every `r="..."` cell or row reference must lie inside Excel's grid.
    cells: bool,
    /// The shared strings: the count declared (which calamine reserves room for) must not
    /// exceed the elements the part could hold.
    shared_strings: bool,
}

/// Unpacks `part` as a stream, counting, and checks what `scan` asks, and that it unpacks to
/// at most `limit` bytes.
fn check_part(part: &mut impl Read, name: &str, scan: Scan, limit: u64) -> Result<(), String> {
    let shown = crate::text::for_line(name);
    let mut buffer = vec![0u8; 64 * 1024];
    // The end of the previous chunk, so that a reference cut in two is still seen whole.
    let mut carry: Vec<u8> = Vec::new();
    let (mut n_bytes, mut n_elements) = (0u64, 0u64);
    let mut declared: Option<u64> = None;
    loop {
        let n = match part.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            // A broken part: calamine says what is wrong with it if it reads it.
            Err(_) => return Ok(()),
        };
        n_bytes += n as u64;
        if n_bytes > limit {
            return Err(format!(
                "its part `{shown}` unpacks to more than {} MiB (a zip bomb, or a sheet too large to load): export the sheet as CSV, which is read as a stream",
                limit / (1024 * 1024)
            ));
        }
        let chunk = &buffer[..n];
        n_elements += chunk.iter().filter(|&&b| b == b'<').count() as u64;
        carry.extend_from_slice(chunk);
        if scan.shared_strings {
            declared = declared.max(largest_count(&carry));
        }
        if scan.cells {
            check_references(&carry, &shown)?;
        }
        let keep = carry.len().saturating_sub(64);
        carry.drain(..keep);
    }
    match declared {
        Some(count) if count > n_elements => Err(format!(
            "its shared strings claim {count} entries but the part holds at most {n_elements}: the file is damaged; open and save it in a spreadsheet program"
        )),
        _ => Ok(()),
    }
}

/// The largest `uniqueCount` in `xml`. Every one is looked at, not only the first tag's:
/// a comment or a prefix must not hide the count calamine reserves room for. A count still
/// being read at the end of `xml` is left for the next chunk (the carry keeps it whole).
fn largest_count(xml: &[u8]) -> Option<u64> {
    let mut largest = None;
    let mut at = 0;
    while let Some(i) = find(&xml[at..], b"uniqueCount=") {
        let start = at + i + 13;
        at = start;
        let digits: Vec<u8> = xml
            .get(start..)
            .unwrap_or_default()
            .iter()
            .copied()
            .take_while(u8::is_ascii_digit)
            .collect();
        let count = match digits.len() {
            // More digits than any u64: certainly more than the part holds.
            n if n > 20 => u64::MAX,
            // Cut at the end of the chunk: read whole with the next one.
            n if start + n >= xml.len() => continue,
            // Not a number: calamine reserves nothing for it.
            0 => continue,
            _ => std::str::from_utf8(&digits)
                .ok()
                .and_then(|d| d.parse().ok())
                .unwrap_or(u64::MAX),
        };
        largest = largest.max(Some(count));
    }
    largest
}

/// Every `r="..."` in `xml` (rows and cells of a worksheet) inside Excel's grid.
fn check_references(xml: &[u8], shown: &str) -> Result<(), String> {
    let mut at = 0;
    while let Some(i) = find(&xml[at..], b"r=") {
        let start = at + i;
        at = start + 2;
        if start == 0 || !xml[start - 1].is_ascii_whitespace() {
            continue;
        }
        let Some(&quote) = xml.get(start + 2).filter(|q| matches!(q, b'"' | b'\'')) else {
            continue;
        };
        let value = &xml[start + 3..];
        let Some(end) = value.iter().position(|&b| b == quote) else {
            // Cut at the chunk's end: seen whole with the next chunk, unless it is longer
            // than any reference (and than the bytes kept for the next chunk).
            if value.len() > MAX_REFERENCE {
                return Err(format!(
                    "its sheet `{shown}` has a cell reference over {MAX_REFERENCE} characters: the file is damaged; open and save it in a spreadsheet program"
                ));
            }
            break;
        };
        check_reference(&value[..end], shown)?;
    }
    Ok(())
}

/// The longest reference read (`XFD1048576` has 10 characters).
const MAX_REFERENCE: usize = 32;

/// A cell (`XFD1048576`) or row (`1048576`) reference within the grid.
fn check_reference(reference: &[u8], shown: &str) -> Result<(), String> {
    let letters = reference
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    let (column, row) = reference.split_at(letters);
    let too_far = |what: String| {
        Err(format!(
            "its sheet `{shown}` has a cell at {what}, outside Excel's grid ({MAX_ROWS} rows, {MAX_COLUMNS} columns up to XFD): the file is damaged; open and save it in a spreadsheet program"
        ))
    };
    let echo = || crate::text::for_line(&String::from_utf8_lossy(reference)).into_owned();
    if !row.iter().all(u8::is_ascii_digit) {
        // Not a cell reference (some other `r` attribute): not ours to judge.
        return Ok(());
    }
    let column_number = column.iter().try_fold(0u32, |n, b| {
        n.checked_mul(26)?
            .checked_add(u32::from(b.to_ascii_uppercase() - b'A') + 1)
    });
    let row_number = std::str::from_utf8(row).ok().and_then(|r| {
        if r.is_empty() {
            Some(1)
        } else {
            r.parse::<u32>().ok()
        }
    });
    match (column_number, row_number) {
        (Some(c), Some(r)) if c <= MAX_COLUMNS && (1..=MAX_ROWS).contains(&r) => Ok(()),
        _ => too_far(echo()),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part read a few bytes at a time, as a decoder may hand them out.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let n = buffer.len().min(self.0.len()).min(7);
            buffer[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn scan_sheet(xml: &str) -> Result<(), String> {
        let scan = Scan {
            cells: true,
            shared_strings: false,
        };
        check_part(
            &mut xml.as_bytes(),
            "xl/worksheets/sheet1.xml",
            scan,
            MAX_PART_BYTES,
        )
    }

    #[test]
    fn references_inside_the_grid_pass_and_outside_are_named() {
        assert!(scan_sheet(r#"<row r="1048576"><c r="XFD1048576" t="s"/></row>"#).is_ok());
        for far in ["XFE1", "A1048577", "A0", "A99999999999", "AAAAAAAAAA1"] {
            let error = scan_sheet(&format!(r#"<row r="1"><c r="{far}"/></row>"#)).unwrap_err();
            assert!(error.contains(far), "{error}");
            assert!(error.contains("16384 columns"), "{error}");
        }
    }

    #[test]
    fn a_count_behind_a_comment_is_still_read() {
        let scan = Scan {
            cells: false,
            shared_strings: true,
        };
        let lie = r#"<!-- <sst uniqueCount="1"> --><sst uniqueCount="4000000000"><si/></sst>"#;
        let error = check_part(&mut lie.as_bytes(), "s", scan, MAX_PART_BYTES).unwrap_err();
        assert!(error.contains("4000000000"), "{error}");
        let error = check_part(&mut Trickle(lie.as_bytes()), "s", scan, MAX_PART_BYTES);
        assert!(error.unwrap_err().contains("4000000000"));
    }

    #[test]
    fn a_long_sst_tag_split_anywhere_is_still_read() {
        let lie = format!(
            r#"<?xml version="1.0"?>{}<x:sst xmlns:x="{}" uniqueCount="4000000000"><x:si/></x:sst>"#,
            " ".repeat(64 * 1024 - 30),
            "y".repeat(300)
        );
        let scan = Scan {
            cells: false,
            shared_strings: true,
        };
        let error = check_part(&mut Trickle(lie.as_bytes()), "s", scan, MAX_PART_BYTES);
        assert!(error.unwrap_err().contains("4000000000"));
        let error = check_part(&mut lie.as_bytes(), "s", scan, MAX_PART_BYTES).unwrap_err();
        assert!(error.contains("4000000000"), "{error}");
    }

    #[test]
    fn a_reference_longer_than_any_is_refused_even_when_cut() {
        let xml = format!(r#"<row><c r="{}"/></row>"#, "A".repeat(100));
        let scan = Scan {
            cells: true,
            shared_strings: false,
        };
        let error = check_part(&mut Trickle(xml.as_bytes()), "s", scan, MAX_PART_BYTES);
        assert!(error.unwrap_err().contains("over 32 characters"));
        // Read whole, it is outside the grid.
        assert!(
            scan_sheet(&xml)
                .unwrap_err()
                .contains("outside Excel's grid")
        );
    }

    #[test]
    fn a_reference_cut_between_chunks_is_still_checked() {
        let mut xml = " ".repeat(64 * 1024 - 6);
        xml.push_str(r#" r="XFE1"/>"#);
        assert!(scan_sheet(&xml).is_err());
    }

    #[test]
    fn a_part_that_unpacks_past_the_limit_is_refused_while_reading() {
        let scan = Scan {
            cells: false,
            shared_strings: false,
        };
        let mut zeros = std::io::repeat(0).take(3 * 1024 * 1024);
        let error = check_part(&mut zeros, "xl/styles.xml", scan, 2 * 1024 * 1024).unwrap_err();
        assert!(error.contains("more than 2 MiB"), "{error}");
        assert!(error.contains("export the sheet as CSV"), "{error}");
        // An endless stream is refused as soon as it passes the limit.
        let error = check_part(&mut std::io::repeat(0), "x", scan, 1024 * 1024).unwrap_err();
        assert!(error.contains("zip bomb"), "{error}");
    }

    #[test]
    fn a_shared_string_count_past_what_the_part_holds_is_refused() {
        let scan = Scan {
            cells: false,
            shared_strings: true,
        };
        let lie = r#"<sst xmlns="x" count="1" uniqueCount="4000000000"><si><t>a</t></si></sst>"#;
        let error = check_part(
            &mut lie.as_bytes(),
            "xl/sharedStrings.xml",
            scan,
            MAX_PART_BYTES,
        )
        .unwrap_err();
        assert!(error.contains("4000000000"), "{error}");
        let honest = r#"<sst uniqueCount="1"><si><t>a</t></si></sst>"#;
        assert!(check_part(&mut honest.as_bytes(), "s", scan, MAX_PART_BYTES).is_ok());
    }
}
