//! Preflight (SPEC §10): a dry run names every SHARE row the service would refuse, and why,
//! in few `DescribeImagesToShare` requests and no write; a real run's row refused as not
//! found says where its image is.

use lighthouse_share::action::{ACTION, IMAGES_ACTION};
use lighthouse_share::output::Ending;
use lighthouse_share::results::Status;
use lighthouse_share::simulator::{SeededImage, SimulatorConfig, SimulatorHandle};

use crate::common::{Job, binary, fast_simulator, finish, start};

/// The done-when sheet: 1,000 shareable images in ap-tokyo, then one not shareable, one that
/// is in ap-guangzhou, one that is nowhere, and one whose reason holds control characters.
fn sheet() -> (SimulatorConfig, Job) {
    let mut csv = String::from("region,image_id,permission\n");
    let mut images = Vec::new();
    for i in 0..1000 {
        let id = format!("img-{i:08}");
        csv.push_str(&format!("ap-tokyo,{id},SHARE\n"));
        images.push(SeededImage::new("ap-tokyo", &id));
    }
    for id in [
        "img-unshare0",
        "img-elsewhr0",
        "img-nowhere0",
        "img-hostile0",
    ] {
        csv.push_str(&format!("ap-tokyo,{id},SHARE\n"));
    }
    images.push(SeededImage {
        unshareable_reason: Some("the image does not support cloud-init".into()),
        ..SeededImage::new("ap-tokyo", "img-unshare0")
    });
    images.push(SeededImage::new("ap-guangzhou", "img-elsewhr0"));
    images.push(SeededImage {
        unshareable_reason: Some("imported\x1b[2J\x1b]0;pwned\x07\u{202e}image".into()),
        ..SeededImage::new("ap-tokyo", "img-hostile0")
    });
    let config = SimulatorConfig {
        images: Some(images),
        ..fast_simulator()
    };
    (config, Job::new(&csv))
}

fn requests(sim: &SimulatorHandle, action: &str) -> u64 {
    let stats = sim.stats();
    stats.requests_by_action.get(action).copied().unwrap_or(0)
}

/// `run INPUT --dry-run --endpoint SIM ARGS`: exit code and stderr.
async fn dry_run(job: &Job, sim: &SimulatorHandle, args: &[&str]) -> (Option<i32>, String) {
    let child = binary(job)
        .args(["--dry-run", "--endpoint", &sim.endpoint(), "--rate", "1000"])
        .args(args)
        .spawn()
        .unwrap();
    let output = finish(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_names_every_row_that_would_fail_and_exits_3_without_a_write() {
    let (config, job) = sheet();
    let sim = start(config).await;
    let (code, stderr) = dry_run(&job, &sim, &[]).await;
    let failing: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("SHARE would fail"))
        .collect();
    println!("{}", failing.join("\n"));
    let n_images = requests(&sim, IMAGES_ACTION);
    println!(
        "exit {code:?}; {n_images} {IMAGES_ACTION} requests; {} writes",
        requests(&sim, ACTION)
    );
    assert_eq!(code, Some(3), "{stderr}");
    let expected = [
        "line 1002: ap-tokyo img-unshare0 SHARE would fail: img-unshare0 cannot be shared: the image does not support cloud-init",
        "line 1003: ap-tokyo img-elsewhr0 SHARE would fail: img-elsewhr0 is in ap-guangzhou, not ap-tokyo",
        "line 1004: ap-tokyo img-nowhere0 SHARE would fail: img-nowhere0 is not in ap-tokyo, nor in any other region that shares to Lighthouse: check the image id",
        "line 1005: ap-tokyo img-hostile0 SHARE would fail: img-hostile0 cannot be shared: imported\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{202e}image",
    ];
    assert_eq!(failing.len(), expected.len(), "{stderr}");
    for (line, expected) in failing.iter().zip(expected) {
        assert!(line.ends_with(expected), "{line}\nexpected: {expected}");
    }
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\u{202e}'),
        "the service's text reaches the terminal escaped"
    );
    assert!(
        stderr.contains("1004 to share (4 of them would fail)"),
        "{stderr}"
    );
    assert!(stderr.contains("4 SHARE rows would fail"), "{stderr}");
    // 1,004 images in ap-tokyo: 11 requests; the two not there: one per other region.
    assert_eq!(n_images, 11 + 14, "goal: at most 30");
    assert_eq!(requests(&sim, ACTION), 0, "a dry run writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_of_rows_that_would_all_succeed_exits_0_and_no_preflight_asks_nothing() {
    let (config, _) = sheet();
    let sim = start(config).await;
    let job = Job::with_rows(150, "ap-tokyo", lighthouse_share::action::Permission::Share);
    let (code, stderr) = dry_run(&job, &sim, &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("preflight: 0 of the 150 SHARE rows checked would fail"),
        "{stderr}"
    );
    assert_eq!(requests(&sim, IMAGES_ACTION), 2, "150 images: two requests");

    let (config, job) = sheet();
    let sim = start(config).await;
    let (code, stderr) = dry_run(&job, &sim, &["--no-preflight"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("would fail:"), "{stderr}");
    assert_eq!(requests(&sim, IMAGES_ACTION), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_run_sends_every_row_and_a_row_not_found_says_where_its_image_is() {
    let (config, job) = sheet();
    let sim = start(config).await;
    let (report, rows) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::SomeRowsFailed);
    assert_eq!(requests(&sim, ACTION), 1004, "preflight settles no row");
    let row = |id: &str| rows.iter().find(|r| r.image_id == id).unwrap();
    let elsewhere = row("img-elsewhr0");
    println!("{elsewhere:?}");
    assert_eq!(elsewhere.status, Status::Failed);
    assert_eq!(
        elsewhere.error_code.as_deref(),
        Some("ResourceNotFound.ImageIdNotFound")
    );
    let message = elsewhere.error_message.as_deref().unwrap_or_default();
    assert!(
        message.ends_with("(img-elsewhr0 is in ap-guangzhou, not ap-tokyo)"),
        "{message}"
    );
    let nowhere = row("img-nowhere0")
        .error_message
        .as_deref()
        .unwrap_or_default();
    assert!(nowhere.contains("nor in any other region"), "{nowhere}");
    // The two not found: one request per other region.
    assert_eq!(requests(&sim, IMAGES_ACTION), 14);
    let summary = lighthouse_share::output::summary_lines(&report).join("\n");
    assert!(
        summary.contains("requests: 1004 ModifyImageSharePermission, 0 DescribeBlueprints, 14 DescribeImagesToShare;"),
        "the summary counts the hint's requests: {summary}"
    );
}
