//! The run record and the results rendered from it: resume by identity on an edited sheet,
//! the binding to a target, files changed under a run, planted links, the user's own columns,
//! workbooks.

use std::path::Path;

use calamine::Reader as _;
use lighthouse_share::action::Permission;
use lighthouse_share::cli::RunArgs;
use lighthouse_share::config::RunConfig;
use lighthouse_share::output::Ending;
use lighthouse_share::results::Status;

use crate::common::{
    Job, ResultRow, binary, fast_simulator, finish, read_results, rows_in, start, wait_until,
};

const MODIFY: &str = "ModifyImageSharePermission";

fn modify_requests(sim: &lighthouse_share::simulator::SimulatorHandle) -> u64 {
    sim.stats()
        .requests_by_action
        .get(MODIFY)
        .copied()
        .unwrap_or(0)
}

fn blueprint_ids(rows: &[ResultRow]) -> Vec<(String, Option<String>)> {
    rows.iter()
        .map(|r| (r.image_id.clone(), r.blueprint_id.clone()))
        .collect()
}

#[tokio::test]
async fn a_fixed_row_runs_on_resume_and_the_earlier_blueprint_ids_stay() {
    let sim = start(fast_simulator()).await;
    let mut job = Job::new(
        "region,image_id,permission\n\
         ap-guangzhou,img-aaaaaaa1,SHARE\n\
         ap-tokyo,img-aaaaaaa2,SHARE\n\
         ap-tokyo,img-aaaaaaa3,CANEL\n",
    );
    let (report, first) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::SomeRowsFailed);
    assert_eq!(first[2].status, Status::Invalid);
    assert_eq!(modify_requests(&sim), 2);

    let fixed = std::fs::read_to_string(&job.input)
        .unwrap()
        .replace("CANEL", "CANCEL");
    std::fs::write(&job.input, fixed).unwrap();
    job.resume = true;
    let (report, second) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(modify_requests(&sim), 3, "only the fixed row was sent");
    assert_eq!(second[2].status, Status::Unshared);
    assert_eq!(blueprint_ids(&second)[..2], blueprint_ids(&first)[..2]);
    assert!(
        second[0]
            .blueprint_id
            .as_deref()
            .unwrap()
            .starts_with("lhbp-")
    );
}

#[tokio::test]
async fn a_sorted_extended_and_shortened_sheet_resumes_without_sending_a_finished_row() {
    let sim = start(fast_simulator()).await;
    let mut job = Job::with_rows(10, "ap-seoul", Permission::Share);
    let (_, first) = job.run(&sim).await;
    // Reversed, two rows removed, three inserted (one of them a second SHARE of a kept image:
    // a row asking the same as another is its own row).
    let mut lines: Vec<String> = (2..10)
        .rev()
        .map(|i| format!("ap-seoul,img-{i:08},SHARE"))
        .collect();
    lines.insert(3, "ap-seoul,img-new00001,SHARE".into());
    lines.push("ap-tokyo,img-new00002,SHARE".into());
    lines.push("ap-seoul,img-00000005,SHARE".into());
    std::fs::write(
        &job.input,
        format!("region,image_id,permission\n{}\n", lines.join("\n")),
    )
    .unwrap();
    job.resume = true;
    let (report, second) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(
        modify_requests(&sim),
        13,
        "only the three new rows were sent"
    );
    assert_eq!(
        report.n_unmatched, 2,
        "img-00000000 and img-00000001 left the sheet"
    );
    assert_eq!(second.len(), 11);
    let was = |image: &str| first.iter().find(|r| r.image_id == image).unwrap();
    for row in &second[..8] {
        if row.image_id.starts_with("img-new") {
            continue;
        }
        assert_eq!(row.blueprint_id, was(&row.image_id).blueprint_id, "{row:?}");
    }
    assert_eq!(
        second.last().unwrap().status,
        Status::AlreadyShared,
        "the second SHARE of img-00000005 was sent and found it shared"
    );
    assert_eq!(second[3].line, 5, "lines are where the rows are now");
}

#[tokio::test]
async fn a_rehearsal_never_stands_for_a_real_run() {
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(3, "ap-seoul", Permission::Share);
    let rehearsal = RunArgs {
        input: job.input.clone(),
        simulate: true,
        ..Default::default()
    };
    let config = RunConfig::resolve(rehearsal, &|_| None).await.unwrap();
    let report = lighthouse_share::run::run(config, std::future::pending())
        .await
        .unwrap();
    assert_eq!(report.ending(), Ending::Done);

    let mut real = Job {
        resume: true,
        ..job
    };
    real.rate = 1000.0;
    let error = lighthouse_share::run::run(real.config(&sim).await, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(error.ending(), Ending::Unusable);
    let message = error.to_string();
    assert!(
        message.contains("simulator") && message.contains(&sim.endpoint()),
        "{message}"
    );
    assert_eq!(modify_requests(&sim), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_results_file_replaced_during_the_run_changes_nothing() {
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(100, "ap-seoul", Permission::Share);
    let child = binary(&job)
        .args(["--endpoint", &sim.endpoint(), "--rate", "100"])
        .spawn()
        .unwrap();
    wait_until("rows are recorded", || rows_in(&job.record()) >= 5);
    std::fs::write(job.output(), "line,status\n2,failed\n99999999999,shared\n").unwrap();
    let output = finish(child).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = job.results();
    assert_eq!(rows.len(), 100);
    assert!(rows.iter().all(|r| r.status == Status::Shared));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_replaced_during_the_run_stops_it_and_resume_finishes() {
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(60, "ap-seoul", Permission::Share);
    let child = binary(&job)
        .args(["--endpoint", &sim.endpoint(), "--rate", "40"])
        .spawn()
        .unwrap();
    wait_until("rows are recorded", || rows_in(&job.record()) >= 5);
    // An editor's atomic save: the sheet sorted the other way, with one row more.
    let mut text = String::from("region,image_id,permission\nap-seoul,img-new00001,SHARE\n");
    for i in (0..60).rev() {
        text.push_str(&format!("ap-seoul,img-{i:08},SHARE\n"));
    }
    let saved = job.dir.path().join("saved.csv");
    std::fs::write(&saved, text).unwrap();
    std::fs::rename(&saved, &job.input).unwrap();
    let output = finish(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("changed while this run was reading it"),
        "{stderr}"
    );

    let resumed = finish(
        binary(&job)
            .args(["--endpoint", &sim.endpoint(), "--rate", "1000", "--resume"])
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let rows = job.results();
    assert_eq!(rows.len(), 61);
    assert!(rows.iter().all(|r| r.status == Status::Shared));
    assert_eq!(
        sim.stats().answers_by_action[MODIFY]["OK"],
        61,
        "no row was shared twice"
    );
}

#[tokio::test]
async fn the_input_is_never_the_output() {
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(2, "ap-seoul", Permission::Share);
    for resume in [false, true] {
        let args = RunArgs {
            input: job.input.clone(),
            output: Some(job.input.clone()),
            endpoint: Some(sim.endpoint()),
            resume,
            ..Default::default()
        };
        let env = |name: &str| match name {
            "TENCENTCLOUD_SECRET_ID" | "TENCENTCLOUD_SECRET_KEY" => Some("x".to_string()),
            _ => None,
        };
        let error = RunConfig::resolve(args, &env)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("is the input itself"), "{error}");
    }
    assert_eq!(modify_requests(&sim), 0);
}

#[tokio::test]
async fn resume_never_replaces_a_file_that_no_record_says_is_ours() {
    let sim = start(fast_simulator()).await;
    let mut job = Job::with_rows(2, "ap-seoul", Permission::Share);
    // Someone else's file at the output, and another run's record given as the output.
    std::fs::write(job.output(), "precious,data\n").unwrap();
    job.resume = true;
    let error = lighthouse_share::run::run(job.config(&sim).await, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(error.ending(), Ending::Unusable);
    assert!(error.to_string().contains("no record"), "{error}");
    assert_eq!(
        std::fs::read_to_string(job.output()).unwrap(),
        "precious,data\n"
    );
    std::fs::remove_file(job.output()).unwrap();
    let (report, _) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done);
    let record = std::fs::read(job.record()).unwrap();
    let mut config = job.config(&sim).await;
    config.output_mut().results = lighthouse_share::results::Destination::File(job.record());
    config.output_mut().record = job.dir.path().join("images.results.csv.journal.journal");
    config.output_mut().lock = job.dir.path().join("images.results.csv.journal.lock");
    let error = lighthouse_share::run::run(config, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(error.ending(), Ending::Unusable);
    assert_eq!(
        std::fs::read(job.record()).unwrap(),
        record,
        "the record is untouched"
    );
    assert_eq!(modify_requests(&sim), 2);
}

/// A row with more cells than the header (an unquoted comma in a note): its extra cells
/// are kept, as one comma-separated text, in one more column after the input's, which other
/// rows leave empty. Nothing the user gave is left out of the results, and one wide row does
/// not widen the others.
#[tokio::test]
async fn cells_past_the_headers_last_column_are_kept_in_a_column_of_their_own() {
    let sim = start(fast_simulator()).await;
    let job = Job::new(
        "region,image_id,permission,note\n\
         ap-seoul,img-aaaaaaa1,SHARE,rebuilt, then tested,\"by ops, mostly\"\n\
         ap-seoul,img-aaaaaaa2,SHARE,fine\n",
    );
    let (report, rows) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done);
    assert!(rows.iter().all(|row| row.status == Status::Shared));
    let text = std::fs::read_to_string(job.output()).unwrap();
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header[..7],
        [
            "line",
            "region",
            "image_id",
            "permission",
            "note",
            "cells past the header",
            "status"
        ]
    );
    let cells = |record: csv::StringRecord| -> Vec<String> {
        record.iter().skip(4).take(2).map(String::from).collect()
    };
    let mut records = csv.records().map(Result::unwrap);
    assert_eq!(
        cells(records.next().unwrap()),
        ["rebuilt", " then tested,\"by ops, mostly\""]
    );
    assert_eq!(cells(records.next().unwrap()), ["fine", ""]);
}

#[tokio::test]
async fn our_columns_in_the_input_are_written_fresh_and_the_users_are_kept_renamed() {
    let sim = start(fast_simulator()).await;
    let job = Job::new(
        "line,region,image_id,permission,Status,BlueprintId,Error Message,finished_at\n\
         99999999999,ap-seoul,img-aaaaaaa1,SHARE,failed,lhbp-forged00,mine,yesterday\n",
    );
    let (report, rows) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(rows[0].line, 2);
    assert_eq!(rows[0].status, Status::Shared);
    assert_ne!(rows[0].blueprint_id.as_deref(), Some("lhbp-forged00"));
    let text = std::fs::read_to_string(job.output()).unwrap();
    let mut csv = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header[..9],
        [
            "line",
            "line (input)",
            "region",
            "image_id",
            "permission",
            "Status (input)",
            "BlueprintId (input)",
            "Error Message (input)",
            "finished_at (input)"
        ]
    );
    let row = csv.records().next().unwrap().unwrap();
    assert_eq!(
        row.iter().skip(1).take(8).collect::<Vec<_>>(),
        [
            "99999999999",
            "ap-seoul",
            "img-aaaaaaa1",
            "SHARE",
            "failed",
            "lhbp-forged00",
            "mine",
            "yesterday"
        ],
        "no value of the user's is dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_an_xlsx_cannot_hold_are_refused_before_anything_is_sent() {
    let sim = start(fast_simulator()).await;
    let long = "x".repeat(40_000);
    let wide: String = (0..16_380).map(|i| format!(",c{i}")).collect();
    let cases = [
        (
            format!("region,image_id,permission,note\nap-seoul,img-aaaaaaa1,SHARE,{long}\n"),
            "cell D2 (line 2, column `note`) holds 40000 characters, more than the 32767",
        ),
        (
            format!("region,image_id,permission{wide}\nap-seoul,img-aaaaaaa2,SHARE\n"),
            "the results would have 16391, more than the 16384",
        ),
    ];
    for (input, expected) in cases {
        let job = Job::new(&input);
        let xlsx = job.dir.path().join("out.xlsx");
        for dry_run in [true, false] {
            let mut command = binary(&job);
            command.args(["--endpoint", &sim.endpoint(), "-o", xlsx.to_str().unwrap()]);
            if dry_run {
                command.arg("--dry-run");
            }
            let output = finish(command.spawn().unwrap()).await;
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{stderr}");
            assert!(stderr.contains(expected), "{stderr}");
            assert!(stderr.contains("-o results.csv"), "{stderr}");
            assert!(!xlsx.exists());
        }
        // As CSV, the same input runs.
        let output = finish(
            binary(&job)
                .args(["--endpoint", &sim.endpoint()])
                .spawn()
                .unwrap(),
        )
        .await;
        assert_eq!(output.status.code(), Some(0));
    }
    assert_eq!(modify_requests(&sim), 2, "only the CSV runs sent");
}

#[tokio::test]
async fn a_crashed_runs_temporary_files_are_removed_by_the_next_run() {
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(2, "ap-seoul", Permission::Share);
    let dir = job.dir.path();
    let leftovers = [
        ".images.results.csv.lighthouse-share-tmp.Ab12Cd",
        ".images.results.csv.journal.lighthouse-share-tmp.Ef34Gh",
    ];
    let others = [".other.csv.lighthouse-share-tmp.Ij56Kl", "notes.txt"];
    for name in leftovers.iter().chain(&others) {
        std::fs::write(dir.join(name), "half written").unwrap();
    }
    let (report, _) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done);
    for name in leftovers {
        assert!(!dir.join(name).exists(), "{name} is removed");
    }
    for name in others {
        assert!(dir.join(name).exists(), "{name} is not ours");
    }
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("images.results.csv.lighthouse-share-tmp")),
        "{names:?}"
    );
}

#[tokio::test]
async fn every_form_a_spreadsheet_runs_is_guarded_in_csv_and_numbers_are_not() {
    let sim = start(fast_simulator()).await;
    let job = Job::new(
        "region,image_id,permission,a,b,c,d,e,f,g\n\
         ap-seoul,img-aaaaaaa1,SHARE,-inf,-NaN,+nan,+Infinity,=1+1,-5,+1.5e3\n",
    );
    job.run(&sim).await;
    let text = std::fs::read_to_string(job.output()).unwrap();
    let row = csv::Reader::from_reader(text.as_bytes())
        .records()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        row.iter().skip(4).take(7).collect::<Vec<_>>(),
        [
            "'-inf",
            "'-NaN",
            "'+nan",
            "'+Infinity",
            "'=1+1",
            "-5",
            "+1.5e3"
        ]
    );
}

#[tokio::test]
async fn a_link_planted_at_any_name_a_run_writes_is_never_followed() {
    let sim = start(fast_simulator()).await;
    for (name, resume) in [
        ("images.results.csv.journal", false),
        ("images.results.csv.lock", false),
        ("images.results.csv", true),
    ] {
        let mut job = Job::with_rows(2, "ap-seoul", Permission::Share);
        job.resume = resume;
        let victim = job.dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, job.dir.path().join(name)).unwrap();
        let result =
            lighthouse_share::run::run(job.config(&sim).await, std::future::pending()).await;
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious",
            "{name}"
        );
        // A link at the results with no record beside it is nobody's results to continue.
        assert_eq!(result.unwrap_err().ending(), Ending::Unusable, "{name}");
    }
}

/// The user's columns, with what spreadsheets put in cells.
const OWN_COLUMNS: &str = "owner,Region,notes,Image ID,permission,ticket\n\
    Zoë 日本,ap-seoul,\"a, b and \"\"c\"\"\",img-aaaaaaa1,SHARE,#1234\n\
    bob,ap-seoul,\"two\nlines\",img-aaaaaaa2,SHARE,=HYPERLINK(\"x\")\n\
    ,ap-seoul,,img-aaaaaaa3,SHARE,-5\n";

#[tokio::test]
async fn the_users_columns_survive_the_round_trip_and_results_are_a_next_input() {
    let sim = start(fast_simulator()).await;
    let job = Job::new(OWN_COLUMNS);
    let report = lighthouse_share::run::run(job.config(&sim).await, std::future::pending())
        .await
        .unwrap();
    assert_eq!(report.ending(), Ending::Done);
    let first = std::fs::read_to_string(job.output()).unwrap();
    let mut csv = csv::Reader::from_reader(first.as_bytes());
    assert_eq!(
        csv.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "line",
            "owner",
            "Region",
            "notes",
            "Image ID",
            "permission",
            "ticket",
            "status",
            "blueprint_id",
            "request_id",
            "error_code",
            "error_message",
            "attempts",
            "finished_at"
        ]
    );
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    let own = |row: &csv::StringRecord| {
        row.iter()
            .skip(1)
            .take(6)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        own(&rows[0]),
        [
            "Zoë 日本",
            "ap-seoul",
            "a, b and \"c\"",
            "img-aaaaaaa1",
            "SHARE",
            "#1234"
        ]
    );
    assert_eq!(own(&rows[1])[2], "two\nlines");
    assert_eq!(
        own(&rows[1])[5],
        "'=HYPERLINK(\"x\")",
        "a formula is shown as text"
    );
    assert_eq!(own(&rows[2])[5], "-5", "a number is not a formula");

    // The results as the next input: our columns are written fresh, the user's stay.
    let next = job.dir.path().join("next.csv");
    std::fs::copy(job.output(), &next).unwrap();
    let again = Job {
        input: next,
        ..Job::new("")
    };
    let again_output = again.input.with_extension("results.csv");
    let report = lighthouse_share::run::run(again.config(&sim).await, std::future::pending())
        .await
        .unwrap();
    assert_eq!(report.counts.get(Status::AlreadyShared), 3);
    let second = std::fs::read_to_string(again_output).unwrap();
    // The user's columns by name: the first results' own `line` and result columns are kept
    // too, renamed (`line (input)`, `status (input)`), so that no value is dropped.
    let own_of = |text: &str| {
        let mut csv = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
        let at: Vec<usize> = [
            "owner",
            "Region",
            "notes",
            "Image ID",
            "permission",
            "ticket",
        ]
        .iter()
        .map(|name| header.iter().position(|h| h == name).unwrap())
        .collect();
        csv.records()
            .map(|r| {
                let r = r.unwrap();
                at.iter().map(|i| r[*i].to_string()).collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(own_of(&second), own_of(&first), "byte for byte");
    assert!(second.starts_with("line,line (input),owner,"), "{second}");
    assert!(second.contains(",status (input),"), "{second}");
}

/// Builds a workbook with the user's columns.
fn workbook(path: &Path) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("Images").unwrap();
    for (row, cells) in csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(OWN_COLUMNS.as_bytes())
        .records()
        .enumerate()
    {
        for (column, cell) in cells.unwrap().iter().enumerate() {
            sheet.write_string(row as u32, column as u16, cell).unwrap();
        }
    }
    book.save(path).unwrap();
}

fn cells_of(path: &Path) -> Vec<Vec<String>> {
    let mut book = calamine::open_workbook_auto(path).unwrap();
    let name = book.sheet_names()[0].clone();
    let range = book.worksheet_range(&name).unwrap();
    range
        .rows()
        .map(|row| row.iter().map(|cell| cell.to_string()).collect())
        .collect()
}

#[tokio::test]
async fn a_workbook_in_gives_a_workbook_out_with_the_users_cells() {
    let sim = start(fast_simulator()).await;
    let mut job = Job::new("");
    job.input = job.dir.path().join("images.xlsx");
    workbook(&job.input);
    let config = job.config(&sim).await;
    let report = lighthouse_share::run::run(config, std::future::pending())
        .await
        .unwrap();
    assert_eq!(report.ending(), Ending::Done);
    let cells = cells_of(&job.dir.path().join("images.results.xlsx"));
    assert_eq!(&cells[0][..3], ["line", "owner", "Region"]);
    assert_eq!(cells[0][7], "status");
    assert_eq!(cells[1][0], "2");
    assert_eq!(
        &cells[1][1..7],
        [
            "Zoë 日本",
            "ap-seoul",
            "a, b and \"c\"",
            "img-aaaaaaa1",
            "SHARE",
            "#1234"
        ]
    );
    assert_eq!(cells[2][3], "two\nlines");
    assert_eq!(
        cells[2][6], "=HYPERLINK(\"x\")",
        "an .xlsx text cell is never run: no apostrophe"
    );
    assert!(cells.iter().skip(1).all(|row| row[7] == "shared"));
}

#[tokio::test]
async fn an_ods_workbook_runs_and_a_csv_output_gets_a_bom() {
    let sim = start(fast_simulator()).await;
    let mut job = Job::new("");
    job.input = job.dir.path().join("images.ods");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/images.ods"),
        &job.input,
    )
    .unwrap();
    let mut config = job.config(&sim).await;
    config.output_mut().results = lighthouse_share::results::Destination::File(job.output());
    let report = lighthouse_share::run::run(config, std::future::pending())
        .await
        .unwrap();
    assert!(report.counts.get(Status::Shared) >= 1, "{report:?}");
    let bytes = std::fs::read(job.output()).unwrap();
    assert!(
        bytes.starts_with("\u{feff}".as_bytes()),
        "a workbook's CSV gets a BOM"
    );
    assert!(
        read_results(&job.output())
            .iter()
            .any(|r| r.status == Status::Invalid)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheet_named_for_a_csv_and_a_sheet_without_rows_are_said() {
    let sim = start(fast_simulator()).await;
    let job = Job::new("region,image_id,permission\n");
    let output = finish(
        binary(&job)
            .args(["--endpoint", &sim.endpoint(), "--sheet", "Images"])
            .spawn()
            .unwrap(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("--sheet Images is for a workbook"),
        "{stderr}"
    );
    assert!(stderr.contains("a header but no rows"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_o_dash_writes_the_results_to_standard_output() {
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(3, "ap-seoul", Permission::Share);
    let output = finish(
        binary(&job)
            .args(["--endpoint", &sim.endpoint(), "-o", "-"])
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with("line,region,image_id,permission,status,"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 4);
    assert!(job.record().exists(), "the record lives beside the input");
    assert!(!job.output().exists());
}
