//! The invariant of SPEC §9, case by case: after a run that exits 0, every image of the sheet
//! is in the account as the sheet's last valid row for it says, and that row's status says
//! so. Each test is one of the ways it used to break (issue 19), run night after night with
//! `--resume` into one results file, against the simulator over real HTTP.

use std::collections::BTreeSet;

use lighthouse_share::action::{ACTION, DESCRIBE_ACTION};
use lighthouse_share::output::{Ending, Report};
use lighthouse_share::results::Status;
use lighthouse_share::simulator::{
    DescribeFault, Faults, SeededImage, SharedImages, SimulatorConfig, SimulatorHandle,
};

use crate::common::{Job, ResultRow, fast_simulator, start};

/// The images shared in `region` now, as the simulator's account holds them (`GET /__state`).
pub async fn shared_in(sim: &SimulatorHandle, region: &str) -> BTreeSet<String> {
    let url = format!("{}/__state", sim.endpoint());
    let state: SharedImages = reqwest::get(url).await.unwrap().json().await.unwrap();
    state
        .shared
        .get(region)
        .map(|images| images.keys().cloned().collect())
        .unwrap_or_default()
}

/// Changes an image out of band (`POST /__state`), as a colleague or the console would: not
/// through this tool. Returns the HTTP status (404 for an image that does not exist).
pub async fn change_outside(sim: &SimulatorHandle, region: &str, image: &str, shared: bool) -> u16 {
    let change = serde_json::json!({"region": region, "image_id": image, "shared": shared});
    reqwest::Client::new()
        .post(format!("{}/__state", sim.endpoint()))
        .json(&change)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Writes `rows` (`region,image_id,permission` lines) as the night's sheet and runs it with
/// `--resume` into the same results file.
async fn night(job: &mut Job, sim: &SimulatorHandle, rows: &[&str]) -> (Report, Vec<ResultRow>) {
    let mut csv = String::from("region,image_id,permission\n");
    for row in rows {
        csv.push_str(row);
        csv.push('\n');
    }
    std::fs::write(&job.input, csv).unwrap();
    let ran = job.run(sim).await;
    job.resume = true;
    ran
}

fn lookup_job() -> Job {
    let mut job = Job::new("region,image_id,permission\n");
    job.lookup = true;
    job
}

fn writes(sim: &SimulatorHandle) -> u64 {
    sim.stats()
        .requests_by_action
        .get(ACTION)
        .copied()
        .unwrap_or(0)
}

fn statuses(rows: &[ResultRow]) -> Vec<Status> {
    rows.iter().map(|r| r.status).collect()
}

const SHARE_A: &str = "ap-seoul,img-aaaaaaaa,SHARE";
const CANCEL_A: &str = "ap-seoul,img-aaaaaaaa,CANCEL";

fn shared_a() -> BTreeSet<String> {
    BTreeSet::from(["img-aaaaaaaa".to_string()])
}

/// Case 1: the sheet's word flips between nights; night 3 must not keep night 1's row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_word_that_flips_between_nights_ends_as_the_last_night_says() {
    let sim = start(fast_simulator()).await;
    let mut job = lookup_job();
    let expected = [
        (SHARE_A, Status::Shared, shared_a()),
        (CANCEL_A, Status::Unshared, BTreeSet::new()),
        (SHARE_A, Status::Shared, shared_a()),
    ];
    for (n, (row, status, shared)) in expected.into_iter().enumerate() {
        let (report, rows) = night(&mut job, &sim, &[row]).await;
        assert_eq!(report.ending(), Ending::Done, "night {}", n + 1);
        assert_eq!(statuses(&rows), [status], "night {}", n + 1);
        assert_eq!(shared_in(&sim, "ap-seoul").await, shared, "night {}", n + 1);
    }
    assert_eq!(writes(&sim), 3, "each night's word was sent");
}

/// A look-up the CAM policy refuses proves nothing: a change made outside this tool since
/// the last run cannot be seen, so no finished row is kept on the record's word alone, and
/// exit 0 still means the account is as the sheet says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_up_the_policy_refuses_keeps_no_finished_row() {
    let sim = start(SimulatorConfig {
        faults: Faults {
            unauthorized_describe: true,
            ..Faults::default()
        },
        ..fast_simulator()
    })
    .await;
    let mut job = lookup_job();
    let sheet = [SHARE_A, "ap-seoul,img-cccccccc,CANCEL"];
    let (report, _) = night(&mut job, &sim, &sheet).await;
    assert_eq!(report.ending(), Ending::Done);
    for (image, shared) in [("img-aaaaaaaa", false), ("img-cccccccc", true)] {
        assert_eq!(change_outside(&sim, "ap-seoul", image, shared).await, 200);
    }
    let before = writes(&sim);

    let (report, rows) = night(&mut job, &sim, &sheet).await;
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(
        writes(&sim) - before,
        2,
        "both rows are sent again: {rows:?}"
    );
    assert_eq!(statuses(&rows), [Status::Shared, Status::Unshared]);
    assert_eq!(shared_in(&sim, "ap-seoul").await, shared_a());
    assert!(
        report.unknown_listings.is_empty(),
        "the policy's refusal is said once, not per region: {:?}",
        report.unknown_listings
    );
}

/// A shared row left without its BlueprintId (the listings of its night were broken) takes
/// it from a later night's look-up, without a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_left_without_its_blueprint_id_takes_it_on_a_later_night() {
    let sim = start(SimulatorConfig {
        shared: vec![("ap-seoul".into(), "img-aaaaaaaa".into())],
        faults: Faults {
            // The run's look-up and its fresh look-up for the BlueprintId: both empty.
            describe: vec![DescribeFault::EmptyFirst(Some(2))],
            ..Faults::default()
        },
        ..fast_simulator()
    })
    .await;
    let mut job = lookup_job();
    let (report, rows) = night(&mut job, &sim, &[SHARE_A]).await;
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(
        (rows[0].status, rows[0].blueprint_id.as_deref()),
        (Status::AlreadyShared, None)
    );
    assert_eq!(report.n_unnamed, 1);
    let before = writes(&sim);

    let (report, rows) = night(&mut job, &sim, &[SHARE_A]).await;
    assert_eq!((report.ending(), report.n_unnamed), (Ending::Done, 0));
    assert_eq!(writes(&sim), before, "nothing sent");
    assert_eq!(rows[0].status, Status::AlreadyShared);
    assert!(rows[0].blueprint_id.is_some(), "{:?}", rows[0]);
}

/// Case 2: someone else unshares an image between two nights of the same sheet: the second
/// night repairs it, says so on the row and in the summary, and sends nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_changed_outside_this_tool_is_repaired_and_reported() {
    let sim = start(fast_simulator()).await;
    let mut job = lookup_job();
    let sheet = [SHARE_A, "ap-seoul,img-bbbbbbbb,SHARE"];
    let (report, _) = night(&mut job, &sim, &sheet).await;
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(
        change_outside(&sim, "ap-seoul", "img-aaaaaaaa", false).await,
        200
    );
    let before = writes(&sim);

    let (report, rows) = night(&mut job, &sim, &sheet).await;
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(writes(&sim) - before, 1, "only the changed image is sent");
    assert_eq!(statuses(&rows), [Status::Shared, Status::Shared]);
    let message = rows[0].error_message.as_deref().unwrap_or_default();
    assert!(
        message.contains("changed outside this tool"),
        "{:?}",
        rows[0]
    );
    assert!(rows[0].blueprint_id.is_some(), "{:?}", rows[0]);
    assert_eq!(report.n_drifted, 1);
    assert_eq!(
        shared_in(&sim, "ap-seoul").await,
        BTreeSet::from(["img-aaaaaaaa".to_string(), "img-bbbbbbbb".to_string()])
    );

    // A third night with nothing changed: nothing sent, nothing reported; the repaired row
    // is kept as it was recorded (its finished_at says when).
    let before = writes(&sim);
    let (report, again) = night(&mut job, &sim, &sheet).await;
    assert_eq!((report.ending(), report.n_drifted), (Ending::Done, 0));
    assert_eq!(writes(&sim), before);
    assert_eq!(again[0].request_id, rows[0].request_id);
}

/// Case 3: the rows of an image are reordered between nights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_rows_end_as_the_new_last_row_says() {
    let sim = start(fast_simulator()).await;
    let mut job = lookup_job();
    let (report, _) = night(&mut job, &sim, &[SHARE_A, CANCEL_A]).await;
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(shared_in(&sim, "ap-seoul").await, BTreeSet::new());

    let (report, rows) = night(&mut job, &sim, &[CANCEL_A, SHARE_A]).await;
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(rows[1].status, Status::Shared, "{rows:?}");
    assert_eq!(shared_in(&sim, "ap-seoul").await, shared_a());
}

/// Case 4: a typo in the middle row, fixed the next night.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typo_fixed_the_next_night_ends_as_the_last_row_says() {
    let sim = start(fast_simulator()).await;
    let mut job = lookup_job();
    let (report, rows) = night(
        &mut job,
        &sim,
        &[SHARE_A, "ap-seoul,img-aaaaaaaa,CANEL", SHARE_A],
    )
    .await;
    assert_eq!(report.ending(), Ending::SomeRowsFailed);
    assert_eq!(
        statuses(&rows),
        [Status::Shared, Status::Invalid, Status::AlreadyShared]
    );

    let (report, rows) = night(&mut job, &sim, &[SHARE_A, CANCEL_A, SHARE_A]).await;
    assert_eq!(report.ending(), Ending::Done);
    assert_eq!(
        statuses(&rows),
        [Status::Shared, Status::Unshared, Status::Shared],
        "{rows:?}"
    );
    assert_eq!(shared_in(&sim, "ap-seoul").await, shared_a());
}

/// Case 5: a failed row proves nothing: the second SHARE of an image that does not exist, or
/// cannot be shared, is sent and fails too, and the run does not exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_row_proves_nothing_about_its_image() {
    let sim = start(SimulatorConfig {
        images: Some(vec![SeededImage {
            unshareable_reason: Some("imported image".into()),
            ..SeededImage::new("ap-seoul", "img-unshare1")
        }]),
        ..fast_simulator()
    })
    .await;
    let mut job = lookup_job();
    let unshareable = "ap-seoul,img-unshare1,SHARE";
    let (report, rows) = night(
        &mut job,
        &sim,
        &[SHARE_A, SHARE_A, unshareable, unshareable],
    )
    .await;
    assert_eq!(report.ending(), Ending::SomeRowsFailed);
    let codes: Vec<(Status, u32, Option<&str>)> = rows
        .iter()
        .map(|r| (r.status, r.attempts, r.error_code.as_deref()))
        .collect();
    let missing = (Status::Failed, 1, Some("ResourceNotFound.ImageIdNotFound"));
    let unable = (
        Status::Failed,
        1,
        Some("UnsupportedOperation.ImageUnableToShare"),
    );
    assert_eq!(codes, [missing, missing, unable, unable]);
    assert_eq!(writes(&sim), 4);
    assert_eq!(shared_in(&sim, "ap-seoul").await, BTreeSet::new());
}

/// Case 6: a listing that contradicts itself proves nothing: its region's rows are all sent
/// (none settled from it, no finished row kept), the summary says why, and paging stops at
/// once however large `TotalCount` says the listing is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inconsistent_listing_settles_nothing_and_stops_at_once() {
    // (faults, other images shared, what the summary says): a full first page is needed for
    // a second page to repeat it.
    let faults = [
        (vec![DescribeFault::EmptyFirst(None)], 0, "empty"),
        (
            vec![
                DescribeFault::RepeatPage,
                DescribeFault::Total(1_000_000_000),
            ],
            150,
            "repeats",
        ),
        (vec![DescribeFault::Total(5)], 0, "short of the 5"),
    ];
    for (describe, n_others, why) in faults {
        let mut shared: Vec<(String, String)> = (0..n_others)
            .map(|i| ("ap-seoul".to_string(), format!("img-{i:08}")))
            .collect();
        shared.push(("ap-seoul".into(), "img-aaaaaaaa".into()));
        shared.push(("ap-seoul".into(), "img-bbbbbbbb".into()));
        let sim = start(SimulatorConfig {
            shared,
            faults: Faults {
                describe,
                ..Faults::default()
            },
            ..fast_simulator()
        })
        .await;
        let mut job = lookup_job();
        let sheet = [
            CANCEL_A,
            "ap-seoul,img-bbbbbbbb,SHARE",
            "ap-seoul,img-cccccccc,CANCEL",
        ];
        let (report, rows) = night(&mut job, &sim, &sheet).await;
        assert_eq!(report.ending(), Ending::Done, "{why}");
        assert!(rows.iter().all(|r| r.attempts == 1), "{why}: {rows:?}");
        assert_eq!(
            statuses(&rows),
            [Status::Unshared, Status::AlreadyShared, Status::Unshared],
            "{why}"
        );
        let shared = shared_in(&sim, "ap-seoul").await;
        assert!(
            shared.contains("img-bbbbbbbb") && !shared.contains("img-aaaaaaaa"),
            "{why}"
        );
        assert!(!shared.contains("img-cccccccc"), "{why}");
        assert!(
            report.unknown_listings.len() == 1 && report.unknown_listings[0].contains(why),
            "{why}: {:?}",
            report.unknown_listings
        );
        let n_pages = sim.stats().requests_by_action[DESCRIBE_ACTION];
        assert!(n_pages <= 4, "{why}: {n_pages} DescribeBlueprints requests");

        // The next night, with the listing still broken, keeps no finished row: each is sent.
        let before = writes(&sim);
        let (report, rows) = night(&mut job, &sim, &sheet).await;
        assert_eq!(report.ending(), Ending::Done, "{why}");
        assert_eq!(writes(&sim) - before, 3, "{why}: {rows:?}");
    }
}
