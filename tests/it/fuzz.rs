//! Fuzzing the readers with proptest: the CSV reader, the workbook reader and the record
//! reader, given arbitrary bytes (and bytes close to a real file, which reach deeper), give
//! rows or a clear error: never a panic, an abort or an allocation that grows with a number
//! in the file. Case counts are kept to a few hundred per reader so the suite stays quick;
//! a failure shrinks to a small input, which is then kept below as a regression case.

use std::io::Cursor;
use std::path::Path;

use lighthouse_share::input::{Reader, Source};
use lighthouse_share::results::Resume;
use proptest::prelude::*;

use crate::workbooks::xlsx_parts;

/// Cases per property: a few hundred, so the three readers take seconds together.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrunk failures are copied into a regression test by hand, not kept in files.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes from the pieces CSV and XML are made of, so that random input is close to a file.
fn close_to(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(pieces).prop_map(|p| p.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..4),
        ],
        0..max,
    )
    .prop_map(|chunks| chunks.concat())
}

const CSV_PIECES: &[&str] = &[
    "region",
    "image_id",
    "permission",
    ",",
    ";",
    "\t",
    "\"",
    "\n",
    "\r\n",
    "\r",
    "#",
    "sep=;",
    "\u{feff}",
    "ap-seoul",
    "img-abcdefgh",
    "SHARE",
    "CANCEL",
    "=1+1",
    " ",
    "\u{1b}",
    "line",
    "status",
];

/// Reads every entry of a CSV given as bytes; whether it read to the end without an error.
fn read_csv(bytes: Vec<u8>) -> Result<usize, String> {
    let path = Path::new("fuzz.csv");
    let reader =
        Reader::from_reader(path, Box::new(Cursor::new(bytes))).map_err(|e| e.to_string())?;
    let mut n = 0;
    for entry in reader.entries() {
        entry.map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(n)
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn the_csv_reader_gives_rows_or_a_clear_error(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        close_to(CSV_PIECES, 80),
    ]) {
        if let Err(error) = read_csv(bytes) {
            prop_assert!(error.contains("fuzz.csv"), "the error names the file: {}", error);
        }
    }
}

const XML_PIECES: &[&str] = &[
    "<row>",
    "</row>",
    "<row r=\"2\">",
    "<c r=\"A1\">",
    "<c r=\"XFD1048576\">",
    "<c r=\"B2\" t=\"s\">",
    "<c t=\"inlineStr\">",
    "<c t=\"b\">",
    "<c t=\"e\">",
    "<c t=\"str\">",
    "</c>",
    "<v>",
    "</v>",
    "<v/>",
    "<f>",
    "</f>",
    "<f t=\"shared\" si=\"0\" ref=\"A1:A9\">",
    "<is><t>",
    "</t></is>",
    "0",
    "1",
    "45418.5",
    "img-abcdefgh",
    "#N/A",
    "&amp;",
    "&#27;",
    "<",
    ">",
    "\"",
];

const SST_PIECES: &[&str] = &[
    "<sst uniqueCount=\"3\">",
    "<sst count=\"99999999999\">",
    "<si>",
    "</si>",
    "<t>",
    "</t>",
    "<r><t>a</t></r>",
    "region",
    "img-abcdefgh",
    "</sst>",
    "<",
    ">",
];

/// Opens a workbook written from `parts` and reads every entry.
fn read_workbook(dir: &Path, parts: &[(&str, &[u8])]) -> Result<usize, String> {
    let path = dir.join("fuzz.xlsx");
    xlsx_parts(&path, parts);
    read_workbook_at(&path)
}

fn read_workbook_at(path: &Path) -> Result<usize, String> {
    let source = Source::open(path, None).map_err(|e| e.to_string())?;
    let reader = source.reader().map_err(|e| e.to_string())?;
    let mut n = 0;
    for entry in reader.entries() {
        entry.map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(n)
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn the_workbook_reader_gives_rows_or_a_clear_error_for_any_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
        extension in prop::sample::select(&["xlsx", "xlsb", "xls", "ods"][..]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("fuzz.{extension}"));
        std::fs::write(&path, &bytes).unwrap();
        if let Err(error) = read_workbook_at(&path) {
            prop_assert!(error.contains("fuzz."), "the error names the file: {}", error);
        }
    }

    #[test]
    fn the_workbook_reader_gives_rows_or_a_clear_error_for_any_sheet(
        rows in close_to(XML_PIECES, 60),
        strings in close_to(SST_PIECES, 20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut sheet = br#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>region</t></is></c><c r="B1" t="inlineStr"><is><t>image_id</t></is></c><c r="C1" t="inlineStr"><is><t>permission</t></is></c></row>"#.to_vec();
        sheet.extend_from_slice(&rows);
        sheet.extend_from_slice(b"</sheetData></worksheet>");
        let parts: [(&str, &[u8]); 2] = [
            ("xl/worksheets/sheet1.xml", &sheet),
            ("xl/sharedStrings.xml", &strings),
        ];
        if let Err(error) = read_workbook(dir.path(), &parts) {
            prop_assert!(error.contains("fuzz.xlsx"), "the error names the file: {}", error);
        }
    }
}

const HEADER: &str = "{\"record\":\"lighthouse-share\",\"version\":1,\"target\":\"simulator\"}\n";
const ROW: &str = r#"{"region":"ap-seoul","image_id":"img-aaaaaaa1","permission":"SHARE","occurrence":1,"line":2,"status":"shared","blueprint_id":"lhbp-cz2inwta","request_id":"r","error_code":null,"error_message":null,"attempts":1,"finished_at":"2026-12-03T06:02:08Z"}"#;

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn the_record_reader_resumes_or_says_why_not(
        header in prop_oneof![Just(HEADER.as_bytes().to_vec()), prop::collection::vec(any::<u8>(), 0..80)],
        row in prop_oneof![
            Just(ROW.as_bytes().to_vec()),
            // A real row with bytes overwritten: a torn or edited record.
            (0..ROW.len(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, junk)| {
                let mut row = ROW.as_bytes().to_vec();
                let end = (at + junk.len()).min(row.len());
                row.splice(at..end, junk);
                row
            }),
            prop::collection::vec(any::<u8>(), 0..200),
        ],
        n_rows in 0usize..4,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.csv.journal");
        let mut bytes = header;
        for _ in 0..n_rows {
            bytes.extend_from_slice(&row);
            bytes.push(b'\n');
        }
        std::fs::write(&path, &bytes).unwrap();
        if let Err(error) = Resume::load(&path, "simulator") {
            let error = format!("{error:#}");
            prop_assert!(error.contains("fuzz.csv.journal"), "the error names the file: {}", error);
        }
    }
}

/// Found by the property above: a record whose first line is not UTF-8 failed with
/// "stream did not contain valid UTF-8", naming no file.
#[test]
fn a_record_that_is_not_text_is_named_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.csv.journal");
    for bytes in [
        &b"{\"record\xff\n"[..],
        &[HEADER.as_bytes(), b"\xc3(\n"].concat(),
    ] {
        std::fs::write(&path, bytes).unwrap();
        let error = format!("{:#}", Resume::load(&path, "simulator").err().unwrap());
        assert!(
            error.contains("fuzz.csv.journal is damaged at line"),
            "{error}"
        );
    }
}
