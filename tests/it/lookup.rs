//! Reading the state first (SPEC §9): rows already as asked are not sent, every shared row
//! gets its BlueprintId, a dry run shows the real plan and fails as a run would.

use lighthouse_share::action::{ACTION, DESCRIBE_ACTION, Permission};
use lighthouse_share::output::Ending;
use lighthouse_share::results::Status;
use lighthouse_share::simulator::{DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, Faults, SimulatorConfig};

use crate::common::{Job, ResultRow, fast_simulator, start};

/// Pre-shared: img-pre00001 and img-pre00002 in ap-seoul, img-pre00003 in ap-tokyo.
fn pre_shared() -> SimulatorConfig {
    SimulatorConfig {
        shared: vec![
            ("ap-seoul".into(), "img-pre00001".into()),
            ("ap-seoul".into(), "img-pre00002".into()),
            ("ap-tokyo".into(), "img-pre00003".into()),
        ],
        ..fast_simulator()
    }
}

const MIXED: &str = "region,image_id,permission
ap-seoul,img-pre00001,SHARE
ap-seoul,img-new00001,SHARE
ap-seoul,img-pre00002,CANCEL
ap-seoul,img-new00002,CANCEL
ap-tokyo,img-pre00003,SHARE
ap-tokyo,img-pre00003,SHARE
ap-tokyo,img-new00003,SHARE
ap-tokyo,img-new00003,SHARE
";

fn writes(sim: &lighthouse_share::simulator::SimulatorHandle) -> u64 {
    sim.stats()
        .requests_by_action
        .get(ACTION)
        .copied()
        .unwrap_or(0)
}

fn statuses(rows: &[ResultRow]) -> Vec<(Status, u32)> {
    rows.iter().map(|r| (r.status, r.attempts)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_already_as_asked_are_not_sent_and_a_second_run_sends_nothing() {
    let sim = start(pre_shared()).await;
    let mut job = Job::new(MIXED);
    job.lookup = true;
    let (report, first) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done);
    use Status::*;
    assert_eq!(
        statuses(&first),
        [
            (AlreadyShared, 0),
            (Shared, 1),
            (Unshared, 1),
            (AlreadyUnshared, 0),
            (AlreadyShared, 0),
            (AlreadyShared, 0),
            (Shared, 1),
            // Sent too: the row before it might have failed, and a failed row proves
            // nothing; the service answers ImageAlreadyShared.
            (AlreadyShared, 1),
        ]
    );
    assert_eq!(
        writes(&sim),
        4,
        "only the rows that change something, or follow a sent row of their image, are sent"
    );
    assert_eq!(report.n_settled, 4);
    let blueprints: Vec<Option<String>> = first.iter().map(|r| r.blueprint_id.clone()).collect();
    for (row, blueprint) in first.iter().zip(&blueprints) {
        let shared = matches!(row.status, Shared | AlreadyShared);
        assert_eq!(
            blueprint.as_deref().is_some_and(|b| b.starts_with("lhbp-")),
            shared,
            "line {}: {row:?}",
            row.line
        );
    }
    assert_eq!(
        blueprints[6], blueprints[7],
        "the second row of an image shared by the first gets the same BlueprintId"
    );

    // The same sheet again, afresh: nothing to send, the same BlueprintIds.
    job.forget();
    let (report, second) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(
        writes(&sim),
        4,
        "the second run sent no ModifyImageSharePermission"
    );
    assert_eq!(report.n_settled, 8);
    let again: Vec<Option<String>> = second.iter().map(|r| r.blueprint_id.clone()).collect();
    assert_eq!(again, blueprints);
    assert!(second.iter().all(|r| r.attempts == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_with_share_and_cancel_rows_flips_and_is_named() {
    let sim = start(pre_shared()).await;
    let mut job = Job::new(
        "region,image_id,permission\nap-seoul,img-pre00001,CANCEL\nap-seoul,img-pre00001,SHARE\n",
    );
    job.lookup = true;
    let (report, rows) = job.run(&sim).await;
    assert_eq!(
        statuses(&rows),
        [(Status::Unshared, 1), (Status::Shared, 1)]
    );
    assert_eq!(report.flipping.as_deref(), Some("ap-seoul img-pre00001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_sent_but_not_recorded_before_a_crash_gets_its_blueprint_id_on_resume() {
    // The crash: the simulator has the image shared, the record does not have the row.
    for lookup in [true, false] {
        let sim = start(SimulatorConfig {
            shared: vec![("ap-seoul".into(), "img-crash001".into())],
            ..fast_simulator()
        })
        .await;
        let mut job = Job::new(
            "region,image_id,permission\nap-seoul,img-done0001,SHARE\nap-seoul,img-crash001,SHARE\n",
        );
        job.lookup = lookup;
        // The first run recorded line 2 only.
        std::fs::write(
            &job.input,
            "region,image_id,permission\nap-seoul,img-done0001,SHARE\n",
        )
        .unwrap();
        job.run(&sim).await;
        std::fs::remove_file(job.output()).unwrap();
        std::fs::write(
            &job.input,
            "region,image_id,permission\nap-seoul,img-done0001,SHARE\nap-seoul,img-crash001,SHARE\n",
        )
        .unwrap();
        job.resume = true;
        let (report, rows) = job.run(&sim).await;
        assert_eq!(report.ending(), Ending::Done, "lookup {lookup}");
        let crashed = &rows[1];
        assert_eq!(crashed.status, Status::AlreadyShared, "lookup {lookup}");
        assert!(
            crashed
                .blueprint_id
                .as_deref()
                .is_some_and(|b| b.starts_with("lhbp-")),
            "lookup {lookup}: {crashed:?}"
        );
        let by_action = sim.stats().requests_by_action;
        match lookup {
            // Found by the look-up: not sent.
            true => assert_eq!((crashed.attempts, by_action[ACTION]), (0, 1)),
            // Sent, answered ImageAlreadyShared, named by the fresh look-up.
            false => assert_eq!(
                (crashed.attempts, by_action.get(DESCRIBE_ACTION)),
                (1, Some(&1))
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_look_up_pages_through_more_than_100_shared_images_within_its_rate() {
    let n = 250;
    let shared: Vec<(String, String)> = (0..n)
        .map(|i| ("ap-seoul".to_string(), format!("img-{i:08}")))
        .collect();
    let sim = start(SimulatorConfig {
        shared,
        ..fast_simulator()
    })
    .await;
    let mut job = Job::with_rows(n, "ap-seoul", Permission::Share);
    job.lookup = true;
    let (report, rows) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done);
    assert!(
        rows.iter()
            .all(|r| r.status == Status::AlreadyShared && r.blueprint_id.is_some())
    );
    let stats = sim.stats();
    assert_eq!(stats.requests_by_action.get(ACTION), None);
    assert_eq!(stats.requests_by_action[DESCRIBE_ACTION], 3, "pages of 100");
    assert!(
        stats.max_window_describe.values().all(|n| *n <= 10),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_up_refused_by_cam_draws_one_warning_and_the_rows_are_sent() {
    let sim = start(SimulatorConfig {
        faults: Faults {
            unauthorized_describe: true,
            ..Faults::default()
        },
        ..pre_shared()
    })
    .await;
    let job = Job::new(MIXED);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lighthouse-share"))
        .arg("run")
        .arg(&job.input)
        .args(["--endpoint", &sim.endpoint()])
        .env("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)
        .env_remove("LIGHTHOUSE_SHARE_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("lighthouse:DescribeBlueprints").count(),
        1,
        "{stderr}"
    );
    assert_eq!(writes(&sim), 8, "every row is sent, as with --no-lookup");
    assert!(
        job.results().iter().all(|r| r.status != Status::Failed),
        "{stderr}"
    );
}

/// Runs `lighthouse-share run in.csv --dry-run ARGS` in `dir`; returns exit code and stderr.
fn dry_run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lighthouse-share"))
        .args(["run", "in.csv", "--dry-run"])
        .args(args)
        .env_clear()
        .env("HOME", dir)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LIGHTHOUSE_SHARE_METADATA_URL", "http://127.0.0.1:9/")
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_prints_the_real_plan_and_fails_where_a_run_would() {
    let sim = start(pre_shared()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.csv"), MIXED).unwrap();
    let endpoint = sim.endpoint();
    let keys = [
        ("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID),
        ("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY),
    ];
    let (code, stderr) = dry_run(
        dir.path(),
        &["--endpoint", &endpoint, "--rate-scope", "region", "-v"],
        &keys,
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("ap-seoul: 1 to share, 1 to cancel, 2 already as asked")
            && stderr.contains("ap-tokyo: 2 to share, 0 to cancel, 2 already as asked"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 9: ap-tokyo img-new00003 SHARE: would be shared"),
        "{stderr}"
    );
    let names = |dir: &std::path::Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(dir.path()), ["in.csv"], "nothing written");

    let no_keys: [(&str, &str); 0] = [];
    type Cause<'a> = (&'a str, Vec<&'a str>, &'a [(&'a str, &'a str)]);
    let causes: [Cause; 4] = [
        ("no credentials", vec![], &no_keys),
        ("an unwritable output", vec!["-o", "missing/out.csv"], &keys),
        ("an unknown profile", vec!["--profile", "nope"], &keys),
        ("an existing results file", vec![], &keys),
    ];
    for (cause, args, env) in causes {
        if cause == "an existing results file" {
            std::fs::write(dir.path().join("in.results.csv"), "line\n").unwrap();
        }
        let mut all = vec!["--endpoint", endpoint.as_str()];
        all.extend(args);
        let (code, stderr) = dry_run(dir.path(), &all, env);
        assert_eq!(code, Some(2), "{cause}: {stderr}");
    }
    assert_eq!(writes(&sim), 0, "a dry run sends no write");
    let (code, stderr) = dry_run(dir.path(), &["--offline", "-o", "other.csv"], &no_keys);
    assert_eq!(code, Some(0), "offline: the file alone: {stderr}");
}

/// The account's `DescribeBlueprints` limit (3/s) is below `--describe-rate` (10): the
/// look-ups slow down to it as the writes would, every row is settled with its BlueprintId,
/// nothing is written, and the summary names the throttled look-ups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_up_limit_below_the_describe_rate_is_found_and_nothing_is_sent() {
    let regions = ["ap-seoul", "ap-tokyo"];
    let images: Vec<(String, String)> = (0..2000)
        .map(|i| (regions[i % 2].to_string(), format!("img-{i:08}")))
        .collect();
    let sim = start(SimulatorConfig {
        shared: images.clone(),
        describe_rate: 3,
        ..fast_simulator()
    })
    .await;
    let mut csv = String::from("region,image_id,permission\n");
    for (region, image) in &images {
        csv.push_str(&format!("{region},{image},SHARE\n"));
    }
    let mut job = Job::new(&csv);
    job.lookup = true;
    job.rate_scope = Some(lighthouse_share::action::RateScope::Region);
    let mut config = job.config(&sim).await;
    assert_eq!(config.pacing().describe_rate, 10.0, "the default");
    config.pacing_mut().retry = lighthouse_share::retry::Policy {
        max_throttled: std::time::Duration::from_secs(300),
        ..config.pacing().retry
    };
    let report = lighthouse_share::run::run(config, std::future::pending())
        .await
        .unwrap();
    let rows = job.results();
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(rows.len(), 2000);
    assert!(
        rows.iter().all(|r| r.status == Status::AlreadyShared
            && r.blueprint_id.is_some()
            && r.attempts == 0),
        "every row settled with its BlueprintId"
    );
    assert_eq!(writes(&sim), 0, "no write sent");
    let stats = sim.stats();
    let lookups = stats.requests_by_action[DESCRIBE_ACTION];
    let refused = stats.answers_by_action[DESCRIBE_ACTION]
        .get("RequestLimitExceeded")
        .copied()
        .unwrap_or(0);
    assert!(
        refused * 4 <= lookups,
        "at most 25% of look-ups refused: {refused} of {lookups}"
    );
    assert!(
        report
            .lanes
            .iter()
            .filter(|lane| lane.kind == lighthouse_share::actions::Kind::DescribeBlueprints)
            .all(|lane| lane.n_throttled > 0 && lane.lowest_rate < 10.0),
        "each region's look-ups were throttled and slowed down: {:?}",
        report.lanes
    );
    let summary = lighthouse_share::output::summary_lines(&report).join("\n");
    println!("{summary}\nlook-ups: {lookups}, refused: {refused}");
    assert!(
        regions
            .iter()
            .all(|region| summary.contains(&format!("{region} {DESCRIBE_ACTION}: "))),
        "{summary}"
    );
}
