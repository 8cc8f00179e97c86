//! Unattended runs: the real binary, killed, signalled, run twice at once, and resumed.

use std::process::{Command, Output};

use lighthouse_share::results::Status;
use lighthouse_share::simulator::{Faults, SimulatorConfig, SimulatorHandle};

use crate::common::{Job, binary, fast_simulator, finish, rows_in, signal, start, wait_until};

fn command(job: &Job, sim: &SimulatorHandle, extra: &[&str]) -> Command {
    let mut command = binary(job);
    command
        .args(["--endpoint", &sim.endpoint(), "--rate-scope", "region"])
        .args(extra);
    command
}

fn exit_code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

/// Runs `--resume` to the end; it must exit 0.
async fn resume(job: &Job, sim: &SimulatorHandle) {
    let resumed = finish(
        command(job, sim, &["--rate", "1000", "--resume"])
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(
        exit_code(&resumed),
        0,
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_resume_finishes_every_row_once_and_resends_nothing_final() {
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(
        300,
        "ap-guangzhou",
        lighthouse_share::action::Permission::Share,
    );
    let mut child = command(&job, &sim, &["--rate", "100"]).spawn().unwrap();
    wait_until("50 rows are written", || rows_in(&job.record()) >= 50);
    signal(&child, libc::SIGKILL);
    let _ = child.wait();

    let kept_lines: Vec<u64> = job
        .recorded()
        .iter()
        .filter(|row| row["status"] == "shared")
        .map(|row| row["line"].as_u64().unwrap())
        .collect();
    assert!(
        kept_lines.len() >= 50 && kept_lines.len() < 300,
        "killed mid-run: {}",
        kept_lines.len()
    );
    let before = sim.stats().by_image;

    resume(&job, &sim).await;
    let rows = job.results();
    assert_eq!(
        rows.iter().map(|r| r.line).collect::<Vec<_>>(),
        (2..=301).collect::<Vec<_>>()
    );
    assert!(
        rows.iter()
            .all(|r| matches!(r.status, Status::Shared | Status::AlreadyShared))
    );
    let after = sim.stats().by_image;
    for line in kept_lines {
        let key = format!("ap-guangzhou/img-{:08}", line - 2);
        assert_eq!(
            after[&key], before[&key],
            "line {line} was final before the kill and was sent again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_130_with_the_rest_skipped_and_resume_finishes() {
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(200, "ap-tokyo", lighthouse_share::action::Permission::Share);
    let child = command(&job, &sim, &["--rate", "50"]).spawn().unwrap();
    wait_until("20 rows are written", || rows_in(&job.record()) >= 20);
    signal(&child, libc::SIGTERM);
    let stopped = finish(child).await;
    assert_eq!(
        exit_code(&stopped),
        130,
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let rows = job.results();
    assert_eq!(
        rows.len(),
        200,
        "the file was rewritten with one row per input row"
    );
    let skipped = rows.iter().filter(|r| r.status == Status::Skipped).count();
    assert!(
        skipped > 0
            && rows
                .iter()
                .all(|r| matches!(r.status, Status::Shared | Status::Skipped))
    );

    resume(&job, &sim).await;
    assert!(job.results().iter().all(|r| r.status == Status::Shared));
    assert_eq!(
        sim.stats().answers_by_action["ModifyImageSharePermission"]["OK"],
        200,
        "no row was shared twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_results_file_exits_5_naming_the_lock() {
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(100, "ap-seoul", lighthouse_share::action::Permission::Share);
    let first = command(&job, &sim, &["--rate", "20"]).spawn().unwrap();
    wait_until("the first run has started writing", || {
        rows_in(&job.record()) >= 1
    });
    let second = finish(command(&job, &sim, &["--resume"]).spawn().unwrap()).await;
    assert_eq!(exit_code(&second), 5);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("images.results.csv.lock"), "{stderr}");
    signal(&first, libc::SIGTERM);
    assert_eq!(exit_code(&finish(first).await), 130);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_and_quiet_keeps_only_problems_and_the_summary() {
    let sim = start(fast_simulator()).await;
    let job = Job::new(
        "region,image_id,permission\nap-seoul,img-aaaaaaaa,SHARE\nap-seoul,img-BAD,SHARE\n",
    );
    let json = finish(
        command(&job, &sim, &["--log-format", "json"])
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(exit_code(&json), 3);
    let stderr = String::from_utf8(json.stderr).unwrap();
    assert!(stderr.lines().count() >= 3);
    for line in stderr.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value.is_object());
    }
    assert!(stderr.contains(r#""summary":true"#));

    job.forget();
    let quiet = finish(command(&job, &sim, &["-q"]).spawn().unwrap()).await;
    let stderr = String::from_utf8(quiet.stderr).unwrap();
    assert!(!stderr.contains("INFO"), "{stderr}");
    assert!(
        stderr.contains("WARN") && stderr.contains("img-BAD"),
        "{stderr}"
    );
    assert!(stderr.contains("summary: 2 rows"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once_keeping_what_was_written() {
    let sim = start(SimulatorConfig {
        faults: Faults {
            stall: 1.0,
            ..Faults::default()
        },
        ..fast_simulator()
    })
    .await;
    let job = Job::with_rows(10, "ap-seoul", lighthouse_share::action::Permission::Share);
    let log = job.dir.path().join("stderr.log");
    let child = command(&job, &sim, &["--timeout", "60", "--concurrency", "2"])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let logged = |what: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(what)
    };
    wait_until("two requests are stalled at the simulator", || {
        sim.stats().requests >= 2
    });
    signal(&child, libc::SIGTERM);
    wait_until("the first signal is taken", || {
        logged("interrupted: starting no new rows")
    });
    signal(&child, libc::SIGTERM);
    let output = finish(child).await;
    assert_eq!(exit_code(&output), 130);
    assert!(logged("second signal: stopping at once"));
    assert!(
        !job.output().exists(),
        "it did not wait the minute for the stalled requests to write the results"
    );
}
