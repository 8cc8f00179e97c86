//! The reader as a whole: files in, records and errors out.

use std::io::Cursor;

use super::*;

fn reader(text: &str) -> Result<Reader, InputError> {
    let bytes = text.as_bytes().to_vec();
    Reader::from_reader(Path::new("t.csv"), Box::new(Cursor::new(bytes)))
}

fn read(text: &str) -> Result<Vec<Record>, InputError> {
    reader(text)?.collect()
}

fn error(text: &str) -> String {
    match read(text) {
        Ok(records) => panic!("expected an error, read {records:?}"),
        Err(error) => error.to_string(),
    }
}

fn record(line: u64, region: &str, image_id: &str, permission: &str) -> Record {
    Record {
        line,
        region: region.into(),
        image_id: image_id.into(),
        permission: permission.into(),
        unreadable: None,
    }
}

#[test]
fn reads_a_messy_spreadsheet_export() {
    let text = "\u{feff}Region , Image-ID,PERMISSION,owner\r\n\
                ap-guangzhou, img-abcdefgh ,share,me\r\n\
                \r\n\
                # a comment\r\n\
                AP-TOKYO,img-12345678,CANCEL\r\n";
    let reader = reader(text).unwrap();
    assert!(reader.had_bom());
    assert_eq!(reader.delimiter(), Some(','));
    assert_eq!(
        reader.header(),
        ["Region ", " Image-ID", "PERMISSION", "owner"]
    );
    let entries: Vec<Entry> = reader.entries().collect::<Result<_, _>>().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0].record,
        record(2, "ap-guangzhou", "img-abcdefgh", "share")
    );
    assert_eq!(
        entries[0].cells,
        ["ap-guangzhou", " img-abcdefgh ", "share", "me"],
        "cells are kept as in the file"
    );
    assert_eq!(
        entries[1].record.line, 5,
        "lines count blank and comment lines"
    );
    assert_eq!(entries[1].cells.len(), 3, "a short row keeps its own width");
    let row = entries[1].record.validate().unwrap();
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
fn the_header_must_name_each_required_column_once() {
    let message = error("region,image_id,perm\nap-seoul,img-abcdefgh,SHARE\n");
    assert!(message.contains("`permission`"), "{message}");
    assert!(message.contains("region,image_id,perm"), "{message}");
    assert!(matches!(read(""), Err(InputError::Empty { .. })));
    assert!(matches!(
        read("\n# only a note\n"),
        Err(InputError::Empty { .. })
    ));
    let message = error("region;image_id;perm\nap-seoul;img-abcdefgh;SHARE\n");
    assert!(message.contains("a single cell"), "{message}");
    let message = error("region,image_id,permission,Permission\n");
    assert!(
        message.contains(
            "columns 3 (`permission`) and 4 (`Permission`) both name the `permission` column"
        ),
        "{message}"
    );
}

#[test]
fn lines_are_what_the_user_sees() {
    let cases: [(&str, &[u64]); 7] = [
        ("region,image,permission\na,b,c\nd,e,f\n", &[2, 3]),
        ("region,image,permission\r\na,b,c\r\n\r\nd,e,f", &[2, 4]),
        ("region,image,permission\ra,b,c\r\rd,e,f\r", &[2, 4]),
        (
            "region,image,permission\ra,\"two\rlines\",c\rd,e,f\r",
            &[2, 4],
        ),
        ("# note\n\nregion,image,permission\na,b,c\n", &[4]),
        // Excel hides a `sep=` line, so the header is row 1 and the rows follow it.
        ("sep=,\nregion,image,permission\na,b,c\n\nd,e,f\n", &[2, 4]),
        ("sep=;\r\nregion;image;permission\r\na;b;c\r\n", &[2]),
    ];
    for (text, expected) in cases {
        let lines: Vec<u64> = read(text).unwrap().iter().map(|r| r.line).collect();
        assert_eq!(lines, expected, "{text:?}");
    }
}

#[test]
fn semicolon_and_tab_exports_are_read_with_their_separator() {
    let cases = [
        (
            "region;image_id;permission\nap-seoul;img-abcdefgh;SHARE\n",
            ';',
        ),
        (
            "region\timage_id\tpermission\nap-seoul\timg-abcdefgh\tSHARE\n",
            '\t',
        ),
        (
            "sep=;\nregion;image_id;permission\nap-seoul;img-abcdefgh;SHARE\n",
            ';',
        ),
        (
            "region;image_id;permission;\"a, b\"\nap-seoul;img-abcdefgh;SHARE;x\n",
            ';',
        ),
        (
            "region,image_id,permission\nap-seoul,img-abcdefgh,SHARE\n",
            ',',
        ),
    ];
    for (text, delimiter) in cases {
        let mut reader = reader(text).unwrap();
        assert_eq!(reader.delimiter(), Some(delimiter), "{text:?}");
        let record = reader.next().unwrap().unwrap();
        assert_eq!(record, record_at(2), "{text:?}");
    }
}

fn record_at(line: u64) -> Record {
    record(line, "ap-seoul", "img-abcdefgh", "SHARE")
}

#[test]
fn a_comment_is_a_hash_row_with_no_data() {
    let header = "ticket,region,image_id,permission\n";
    let cases = [
        ("# a note,,,\n", false),
        ("#1234\n", false),
        ("  # a note\n", false),
        ("#,,,\n", false),
        (",,,\n", false),
        ("#1234,ap-seoul,img-abcdefgh,SHARE\n", true),
        ("# only a region?,ap-seoul,,\n", true),
    ];
    for (row, is_data) in cases {
        let records = read(&format!("{header}{row}")).unwrap();
        assert_eq!(records.len(), usize::from(is_data), "{row:?}");
    }
    // With `region` first, the `#` cell is a required one: the other required cells decide.
    let text = "region,image_id,permission,note\n\
                # a note\n\
                #TODO,,,later\n\
                # a note, with a comma\n\
                #N/A,img-abcdefgh,SHARE\n";
    let records = read(text).unwrap();
    let lines: Vec<u64> = records.iter().map(|r| r.line).collect();
    assert_eq!(lines, [4, 5], "a second cell under image_id is data");
    let message = records[1].validate().unwrap_err();
    assert!(
        message
            .contains("region is `#N/A`, a spreadsheet error value: fix the formula in the sheet"),
        "{message}"
    );
}

#[test]
fn an_unclosed_quote_is_an_error_naming_its_line() {
    let cases = [
        (
            "region,image_id,permission\nap-seoul,img-abcdefgh,SHARE\nap-seoul,\"img-12345678,SHARE\nap-tokyo,img-abcdefgh,SHARE\n",
            3,
        ),
        (
            "region,image_id,permission\rap-seoul,img-abcdefgh,SHARE\r\r\"ap-seoul,img-12345678,SHARE\r",
            4,
        ),
    ];
    for (text, line) in cases {
        let results: Vec<Result<Record, InputError>> = reader(text).unwrap().collect();
        assert_eq!(
            results.len(),
            2,
            "one record, then the error, then nothing: {results:?}"
        );
        let message = results[1].as_ref().unwrap_err().to_string();
        assert!(
            message.contains(&format!(
                "line {line}: a quote (\") opens a cell here and is never closed"
            )),
            "{message}"
        );
    }
    let message = error("\"region,image_id,permission\n");
    assert!(message.contains("line 1: a quote"), "{message}");
}

#[test]
fn cells_are_trimmed_of_ascii_spaces_only() {
    let text = "region,image_id,permission\n\t ap-seoul \u{00A0},img-abcdefgh,SHARE \n";
    let records = read(text).unwrap();
    assert_eq!(records[0].region, "ap-seoul \u{00A0}");
    assert_eq!(records[0].permission, "SHARE");
    let message = records[0].validate().unwrap_err();
    assert!(
        message.contains("region `ap-seoul <U+00A0>` contains a non-breaking space (U+00A0)"),
        "{message}"
    );
}

#[test]
fn every_bad_cell_of_a_row_is_reported() {
    let message = record(2, "ap-guangzou", "img-abcdefg", "CANEL")
        .validate()
        .unwrap_err();
    let parts: Vec<&str> = message.split("; ").collect();
    assert_eq!(parts.len(), 3, "{message}");
    assert!(
        parts[0].contains("did you mean `ap-guangzhou`?"),
        "{message}"
    );
    assert!(parts[1].contains("7 characters after img-"), "{message}");
    assert!(parts[2].contains("did you mean `CANCEL`?"), "{message}");
    let long = record(2, "ap-seoul", &"x".repeat(5000), "SHARE");
    let message = long.validate().unwrap_err();
    assert!(message.len() < 300, "the echo is cut: {message}");
}

#[test]
fn a_results_file_read_as_input_tells_our_columns_from_the_users() {
    let text = "line,Region,ticket,image_id,permission,status,blueprint_id,error_message\n\
                2,ap-seoul,T-1,img-abcdefgh,SHARE,shared,lhbp-abcdefgh,\n";
    let reader = reader(text).unwrap();
    assert!(!reader.had_bom());
    assert_eq!(reader.our_columns(), [0, 5, 6, 7]);
    assert_eq!(reader.required_columns().all(), [1, 3, 4]);
    let entries: Vec<Entry> = reader.entries().collect::<Result<_, _>>().unwrap();
    assert_eq!(entries[0].record, record_at(2));
    assert_eq!(entries[0].cells[2], "T-1");
}

#[test]
fn non_utf8_is_an_error_naming_the_line() {
    let mut bytes =
        b"region,image_id,permission\rap-seoul,img-abcdefgh,SHARE\rap-seoul,img-".to_vec();
    bytes.extend([0xff, 0xfe]);
    bytes.extend(b"abcdef,SHARE\r");
    let reader = Reader::from_reader(Path::new("t.csv"), Box::new(io::Cursor::new(bytes))).unwrap();
    let error = reader
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("line 3") && error.contains("CSV UTF-8"),
        "{error}"
    );
}

mod workbooks {
    use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};

    use super::*;

    /// A workbook with a leading blank row (so its header is sheet row 2), numbers, a date,
    /// a boolean, an error cell, a blank row and a comment row, and a second sheet.
    fn xlsx(dir: &Path) -> PathBuf {
        let path = dir.join("images.xlsx");
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet().set_name("Images").unwrap();
        for (column, name) in [
            "region",
            "image_id",
            "permission",
            "ticket",
            "due",
            "done",
            "ratio",
        ]
        .into_iter()
        .enumerate()
        {
            sheet.write(1, column as u16, name).unwrap();
        }
        sheet.write(2, 0, "ap-guangzhou").unwrap();
        sheet.write(2, 1, " img-abcdefgh").unwrap();
        sheet.write(2, 2, "share").unwrap();
        sheet.write_number(2, 3, 1234.0).unwrap();
        let date = ExcelDateTime::from_ymd(2024, 5, 6).unwrap();
        let date_format = Format::new().set_num_format("yyyy-mm-dd");
        sheet
            .write_datetime_with_format(2, 4, &date, &date_format)
            .unwrap();
        sheet.write_boolean(2, 5, true).unwrap();
        sheet.write_number(2, 6, 2.5).unwrap();
        sheet
            .write_formula(4, 0, Formula::new("=NA()").set_result("#N/A"))
            .unwrap();
        sheet.write(4, 1, "img-12345678").unwrap();
        sheet.write(4, 2, "CANCEL").unwrap();
        sheet.write(5, 0, "# a note").unwrap();
        let other = workbook.add_worksheet().set_name("Other").unwrap();
        other.write(0, 0, "region").unwrap();
        workbook.save(&path).unwrap();
        path
    }

    #[test]
    fn an_xlsx_sheet_reads_as_its_csv_export_would() {
        let dir = tempfile::tempdir().unwrap();
        let reader = Reader::open(&xlsx(dir.path())).unwrap();
        assert_eq!(reader.sheet(), Some("Images"));
        assert_eq!((reader.delimiter(), reader.had_bom()), (None, false));
        assert_eq!(reader.header()[3..], ["ticket", "due", "done", "ratio"]);
        let entries: Vec<Entry> = reader.entries().collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(
            entries[0].record,
            record(3, "ap-guangzhou", "img-abcdefgh", "share"),
            "lines are sheet rows"
        );
        assert_eq!(
            entries[0].cells,
            [
                "ap-guangzhou",
                " img-abcdefgh",
                "share",
                "1234",
                "2024-05-06",
                "TRUE",
                "2.5"
            ]
        );
        assert_eq!(
            entries[1].record,
            record(5, "#N/A", "img-12345678", "CANCEL")
        );
        let message = entries[1].record.validate().unwrap_err();
        assert!(message.contains("a spreadsheet error value"), "{message}");
    }

    #[test]
    fn a_sheet_is_chosen_by_name_and_a_wrong_name_lists_the_sheets() {
        let dir = tempfile::tempdir().unwrap();
        let path = xlsx(dir.path());
        let message = match Reader::open_workbook(&path, Some("other")) {
            Ok(reader) => panic!("sheet {:?} has no image_id column", reader.sheet()),
            Err(error) => error.to_string(),
        };
        assert!(message.contains("no `image_id` column"), "{message}");
        let message = match Reader::open_workbook(&path, Some("Sheet1")) {
            Ok(reader) => panic!("opened {:?}", reader.sheet()),
            Err(error) => error.to_string(),
        };
        assert!(
            message.contains("has no sheet named `Sheet1`; its sheets are `Images`, `Other`"),
            "{message}"
        );
        let reader = Reader::open_workbook(&path, Some("IMAGES")).unwrap();
        assert_eq!(reader.sheet(), Some("Images"));
    }

    #[test]
    fn a_file_that_is_not_a_workbook_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.xlsx");
        std::fs::write(&path, "region,image_id,permission\n").unwrap();
        let message = Reader::open(&path).err().map(|e| e.to_string());
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.starts_with("cannot read the workbook")),
            "{message:?}"
        );
    }

    /// `tests/data/images.ods` was saved by LibreOffice (tests/data/README.md says how).
    #[test]
    fn an_ods_sheet_reads_like_an_xlsx_one() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/images.ods");
        let reader = Reader::open(&path).unwrap();
        assert_eq!(reader.sheet(), Some("Images"));
        let entries: Vec<Entry> = reader.entries().collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(
            entries[0].record,
            record(2, "ap-guangzhou", "img-abcdefgh", "SHARE")
        );
        assert_eq!(entries[0].cells[3..], ["1234", "2024-05-06", "TRUE", "2.5"]);
        assert_eq!(
            entries[1].record,
            record(4, "#N/A", "img-12345678", "CANCEL")
        );
    }
}
