//! The invariant of SPEC §9, case by case: after a run that exits 0, every image of the sheet
//! is in the account as the sheet's last valid row for it says, and that row's status says
//! so. Each test is one of the ways it used to break (issue 19), run night after night with
//! `--resume` into one results file, against the simulator over real HTTP.

use std::collections::BTreeSet;

use lighthouse_share::action::{ACTION, Permission};
use lighthouse_share::actions::{Action, Blueprints, DescribeBlueprints};
use lighthouse_share::api::{Client, Endpoint, Transport};
use lighthouse_share::credentials::Provider;
use lighthouse_share::output::{Ending, Report};
use lighthouse_share::results::Status;
use lighthouse_share::simulator::{Faults, SimulatorConfig, SimulatorHandle};

use crate::common::{Call, Job, ResultRow, code, fast_simulator, simulator_credentials, start};

/// The images shared in `region`, as the account says (a listing made by hand, every page).
pub async fn shared_in(sim: &SimulatorHandle, region: &'static str) -> BTreeSet<String> {
    let client = Client::new(
        Endpoint::new(&sim.endpoint()),
        Provider::Static {
            credentials: simulator_credentials(),
            source: "test".into(),
        },
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let (mut images, mut offset) = (BTreeSet::new(), 0);
    loop {
        let call = DescribeBlueprints {
            region,
            kind: Blueprints::Shared,
            offset,
        };
        let signed = client.sign(call.request()).await.unwrap();
        let page = call.read(&client.send(signed).await.unwrap()).unwrap();
        images.extend(page.blueprints.into_iter().map(|(image, _)| image));
        offset += page.n_listed;
        if page.n_listed == 0 || offset >= page.total {
            return images;
        }
    }
}

/// Changes an image out of band, as a colleague or the console would: straight through the
/// API, not through this tool.
async fn change_outside(sim: &SimulatorHandle, region: &str, image: &str, to: Permission) {
    let http = reqwest::Client::new();
    let (status, response) = Call::new(region, image, to).send(&http, sim.addr()).await;
    assert_eq!((status, code(&response)), (200, "OK".to_string()));
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

/// Case 2: someone else unshares an image between two nights of the same sheet: the second
/// night repairs it, says so on the row and in the summary, and sends nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_changed_outside_this_tool_is_repaired_and_reported() {
    let sim = start(fast_simulator()).await;
    let mut job = lookup_job();
    let sheet = [SHARE_A, "ap-seoul,img-bbbbbbbb,SHARE"];
    let (report, _) = night(&mut job, &sim, &sheet).await;
    assert_eq!(report.ending(), Ending::Done);
    change_outside(&sim, "ap-seoul", "img-aaaaaaaa", Permission::Cancel).await;
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

/// Case 5: a failed row proves nothing: the second SHARE of an image that does not exist is
/// sent and fails too, and the run does not exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_row_proves_nothing_about_its_image() {
    let sim = start(SimulatorConfig {
        faults: Faults {
            missing: 1.0,
            ..Faults::default()
        },
        ..fast_simulator()
    })
    .await;
    let mut job = lookup_job();
    let (report, rows) = night(&mut job, &sim, &[SHARE_A, SHARE_A]).await;
    assert_eq!(report.ending(), Ending::SomeRowsFailed);
    assert_eq!(statuses(&rows), [Status::Failed, Status::Failed]);
    assert!(
        rows.iter().all(|r| r.attempts == 1
            && r.error_code.as_deref() == Some("ResourceNotFound.ImageIdNotFound")),
        "{rows:?}"
    );
    assert_eq!(writes(&sim), 2);
    assert_eq!(shared_in(&sim, "ap-seoul").await, BTreeSet::new());
}
