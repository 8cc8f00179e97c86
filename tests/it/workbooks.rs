//! Hostile workbooks and faithful results: formulas saved without values, a far cell, cells
//! outside Excel's grid, and `.xlsx` results that keep the input's types. The workbooks are
//! written here as zip and XML directly, as tools other than spreadsheets write them.

use std::io::Write;
use std::path::Path;

use calamine::{Data, Reader as _};
use lighthouse_share::input::{Entry, InputError, Kind, Source};
use lighthouse_share::output::Ending;
use lighthouse_share::results::Status;

use crate::common::{Job, fast_simulator, start};

/// Writes a minimal `.xlsx` at `path` whose one sheet's `<sheetData>` is `rows`.
pub fn xlsx(path: &Path, rows: &str) {
    let sheet = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{rows}</sheetData></worksheet>"#
    );
    xlsx_parts(path, &[("xl/worksheets/sheet1.xml", sheet.as_bytes())]);
}

/// Writes an `.xlsx` with the parts a workbook needs and `extra` (which may replace them).
pub fn xlsx_parts(path: &Path, extra: &[(&str, &[u8])]) {
    let parts: [(&str, &str); 4] = [
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#,
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
        ),
        (
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Images" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#,
        ),
    ];
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (name, data) in parts
        .iter()
        .map(|(n, d)| (*n, d.as_bytes()))
        .filter(|(n, _)| !extra.iter().any(|(e, _)| e == n))
        .chain(extra.iter().copied())
    {
        zip.start_file(name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

/// An inline text cell.
fn text(at: &str, value: &str) -> String {
    format!(r#"<c r="{at}" t="inlineStr"><is><t>{value}</t></is></c>"#)
}

const HEADER: &str = r#"<row r="1"><c r="A1" t="inlineStr"><is><t>region</t></is></c><c r="B1" t="inlineStr"><is><t>image_id</t></is></c><c r="C1" t="inlineStr"><is><t>permission</t></is></c></row>"#;

fn entries(path: &Path) -> Result<Vec<Entry>, InputError> {
    Source::open(path, None)?.reader()?.entries().collect()
}

#[test]
fn a_formula_is_its_saved_value_and_one_without_makes_its_row_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("formulas.xlsx");
    let rows = format!(
        r#"{HEADER}<row r="2">{}<c r="B2" t="str"><f>CONCAT("img-","aaaaaaa1")</f><v>img-aaaaaaa1</v></c>{}</row><row r="3"><c r="A3"><f>LOWER("AP-SEOUL")</f><v/></c><c r="B3"><f>"x"</f></c><c r="C3"><f>"SHARE"</f></c></row><row r="4">{}{}<c r="C4"><f>"SHARE"</f></c></row>"#,
        text("A2", "ap-seoul"),
        text("C2", "SHARE"),
        text("A4", "ap-seoul"),
        text("B4", "img-aaaaaaa4"),
    );
    xlsx(&path, &rows);
    let entries = entries(&path).unwrap();
    assert_eq!(
        entries.len(),
        3,
        "a row of formulas is not blank: no row is dropped"
    );
    assert_eq!(entries[0].record.image_id, "img-aaaaaaa1");
    assert!(entries[0].record.validate().is_ok());
    for (entry, cell) in entries[1..].iter().zip(["A3", "C4"]) {
        assert_eq!(
            entry.record.validate().unwrap_err(),
            format!(
                "formula without a saved value in {cell}: open and save the workbook in a spreadsheet program, or paste values"
            )
        );
    }
}

#[test]
fn a_far_cell_costs_one_cell_not_the_rectangle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("far.xlsx");
    let rows = format!(
        r#"{HEADER}<row r="2">{}{}{}</row><row r="1048576">{}</row>"#,
        text("A2", "ap-seoul"),
        text("B2", "img-aaaaaaa1"),
        text("C2", "SHARE"),
        text("XFD1048576", "far"),
    );
    xlsx(&path, &rows);
    // The rectangle up to XFD1048576 is 2^34 cells: reading it whole aborts the process.
    let entries = entries(&path).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].record.line, 1_048_576);
    assert_eq!(entries[1].cells[16_383], "far");
}

#[test]
fn a_cell_outside_excels_grid_is_an_error_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    for far in ["XFE1", "A1048577", "A99999999999"] {
        let path = dir.path().join("outside.xlsx");
        xlsx(&path, &format!("{HEADER}<row>{}</row>", text(far, "x")));
        let error = entries(&path).err().unwrap().to_string();
        assert!(error.contains(far), "{error}");
        assert!(error.contains("outside Excel's grid"), "{error}");
    }
}

#[test]
fn a_shared_string_count_that_lies_is_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sst.xlsx");
    let sst = r#"<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" uniqueCount="2305843009213693951"><si><t>a</t></si></sst>"#;
    let sheet = format!(
        r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{HEADER}</sheetData></worksheet>"#
    );
    xlsx_parts(
        &path,
        &[
            ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
            ("xl/sharedStrings.xml", sst.as_bytes()),
        ],
    );
    let error = entries(&path).err().unwrap().to_string();
    assert!(error.contains("shared strings claim"), "{error}");
}

#[tokio::test]
async fn xlsx_results_keep_the_inputs_types() {
    let sim = start(fast_simulator()).await;
    let mut job = Job::new("");
    job.input = job.dir.path().join("types.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let date = rust_xlsxwriter::ExcelDateTime::from_ymd(2024, 5, 6).unwrap();
    let date_format = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    for (column, name) in ["region", "image_id", "permission", "n", "d", "b", "t", "f"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, column as u16, *name).unwrap();
    }
    sheet.write_string(1, 0, "ap-seoul").unwrap();
    sheet.write_string(1, 1, "img-aaaaaaa1").unwrap();
    sheet.write_string(1, 2, "SHARE").unwrap();
    sheet.write_number(1, 3, 42).unwrap();
    sheet
        .write_datetime_with_format(1, 4, &date, &date_format)
        .unwrap();
    sheet.write_boolean(1, 5, true).unwrap();
    sheet.write_string(1, 6, "=1+1").unwrap();
    sheet
        .write_formula(1, 7, rust_xlsxwriter::Formula::new("=1+1").set_result("2"))
        .unwrap();
    book.save(&job.input).unwrap();
    let report = lighthouse_share::run::run(job.config(&sim).await, std::future::pending())
        .await
        .unwrap();
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(report.counts.get(Status::Shared), 1);
    let mut results =
        calamine::open_workbook_auto(job.dir.path().join("types.results.xlsx")).unwrap();
    let range = results.worksheet_range("results").unwrap();
    let row: Vec<&Data> = range.rows().nth(1).unwrap().iter().collect();
    assert_eq!(row[0], &Data::Float(2.0), "line");
    assert_eq!(row[4], &Data::Float(42.0));
    match row[5] {
        Data::DateTime(d) => assert_eq!(d.to_ymd_hms_milli().0, 2024),
        other => panic!("a date stays a date: {other:?}"),
    }
    assert_eq!(row[6], &Data::Bool(true));
    assert_eq!(row[7], &Data::String("=1+1".into()), "text, no apostrophe");
    assert_eq!(row[8], &Data::Float(2.0), "a formula's saved value");
}

#[test]
fn a_csvs_cells_are_all_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    std::fs::write(
        &path,
        "region,image_id,permission,n\nap-seoul,img-aaaaaaa1,SHARE,42\n",
    )
    .unwrap();
    let entries = entries(&path).unwrap();
    assert!(entries[0].kinds.iter().all(|k| *k == Kind::Text));
}
