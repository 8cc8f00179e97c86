//! The batch runner end to end: real files, real HTTP to the simulator on loopback.

use lighthouse_share::action::Permission;
use lighthouse_share::output::Ending;
use lighthouse_share::results::Status;
use lighthouse_share::simulator::{Faults, SimulatorConfig};

use crate::common::{Job, fast_simulator, start};

#[tokio::test]
async fn a_mixed_file_gets_the_right_status_for_every_row_and_exit_3() {
    let sim = start(fast_simulator()).await;
    let job = Job::new(
        "region,image_id,permission\n\
         ap-guangzhou,img-aaaaaaa1,SHARE\n\
         ap-guangzhou-3,img-aaaaaaa2,SHARE\n\
         ap-tokyo,img-aaaaaaa3,CANCEL\n\
         ap-tokyo,img-BAD,SHARE\n\
         eu-frankfurt,img-aaaaaaa4,CANEL\n",
    );
    let (report, rows) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::SomeRowsFailed);
    let statuses: Vec<_> = rows.iter().map(|r| (r.line, r.status)).collect();
    assert_eq!(
        statuses,
        [
            (2, Status::Shared),
            (3, Status::Invalid),
            (4, Status::Unshared),
            (5, Status::Invalid),
            (6, Status::Invalid)
        ]
    );
    assert!(
        rows[0]
            .blueprint_id
            .as_deref()
            .unwrap()
            .starts_with("lhbp-")
    );
    assert!(
        rows[1]
            .error_message
            .as_deref()
            .unwrap()
            .contains("`ap-guangzhou`")
    );
    assert!(
        rows[4]
            .error_message
            .as_deref()
            .unwrap()
            .contains("`CANCEL`")
    );
    assert_eq!(sim.stats().requests, 2, "invalid rows are not sent");
}

#[tokio::test]
async fn transient_faults_are_retried_to_success_with_the_attempts_counted() {
    let faults = [
        Faults {
            occupied: 0.5,
            ..Faults::default()
        },
        Faults {
            internal_error: 0.5,
            ..Faults::default()
        },
        Faults {
            http_error: 0.5,
            ..Faults::default()
        },
        Faults {
            reset: 0.5,
            ..Faults::default()
        },
        Faults {
            stall: 0.3,
            ..Faults::default()
        },
    ];
    for faults in faults {
        let sim = start(SimulatorConfig {
            faults: faults.clone(),
            seed: 3,
            ..fast_simulator()
        })
        .await;
        let mut job = Job::with_rows(30, "ap-guangzhou", Permission::Share);
        job.max_attempts = 30;
        job.timeout_secs = 0.5;
        let (report, rows) = job.run(&sim).await;
        assert_eq!(report.ending(), Ending::Done, "{faults:?}: {rows:?}");
        assert!(
            rows.iter().all(|r| r.status == Status::Shared),
            "{faults:?}"
        );
        let attempts: u64 = rows.iter().map(|r| u64::from(r.attempts)).sum();
        assert_eq!(
            attempts,
            sim.stats().requests,
            "{faults:?}: every request counted"
        );
        assert!(
            rows.iter().any(|r| r.attempts > 1),
            "{faults:?}: some rows were retried"
        );
        assert_eq!(report.n_retries(), attempts - 30, "every retry was sent");
    }
}

#[tokio::test]
async fn a_missing_image_fails_with_its_code_after_one_attempt() {
    let sim = start(SimulatorConfig {
        faults: Faults {
            missing: 1.0,
            ..Faults::default()
        },
        ..fast_simulator()
    })
    .await;
    let (report, rows) = Job::with_rows(3, "ap-seoul", Permission::Share)
        .run(&sim)
        .await;
    assert_eq!(report.ending(), Ending::SomeRowsFailed);
    for row in rows {
        assert_eq!(row.status, Status::Failed);
        assert_eq!(
            row.error_code.as_deref(),
            Some("ResourceNotFound.ImageIdNotFound")
        );
        assert_eq!(row.attempts, 1);
    }
}

#[tokio::test]
async fn rows_for_one_image_run_in_file_order() {
    let sim = start(fast_simulator()).await;
    let job = Job::new(
        "region,image_id,permission\n\
         ap-guangzhou,img-sameimg1,SHARE\n\
         ap-guangzhou,img-sameimg1,CANCEL\n\
         ap-guangzhou,img-sameimg1,SHARE\n\
         ap-guangzhou,img-sameimg1,SHARE\n",
    );
    let (report, rows) = job.run(&sim).await;
    let statuses: Vec<_> = rows.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            Status::Shared,
            Status::Unshared,
            Status::Shared,
            Status::AlreadyShared
        ],
        "SHARE, CANCEL, SHARE, SHARE in that order"
    );
    assert_eq!(rows[0].blueprint_id, rows[2].blueprint_id);
    assert_eq!(report.ending(), Ending::Done, "already_shared is a success");
}

#[tokio::test]
async fn a_wrong_key_stops_the_job_with_exit_4_and_the_rest_skipped() {
    let sim = start(fast_simulator()).await;
    let regions = ["ap-guangzhou", "ap-tokyo", "eu-frankfurt"];
    let mut csv = String::from("region,image_id,permission\n");
    for i in 0..300 {
        csv.push_str(&format!("{},img-{i:08},SHARE\n", regions[i % 3]));
    }
    let mut job = Job::new(&csv);
    job.secret_key = "not-the-simulator-key".into();
    job.concurrency = 4;
    job.rate = 50.0;
    let (report, rows) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Stopped);
    let skipped = rows.iter().filter(|r| r.status == Status::Skipped).count();
    let failed: Vec<_> = rows.iter().filter(|r| r.status == Status::Failed).collect();
    assert_eq!(failed.len() + skipped, 300);
    assert!(
        failed
            .iter()
            .all(|r| r.error_code.as_deref() == Some("AuthFailure.SignatureFailure"))
    );
    for region in regions {
        let sent = failed.iter().filter(|r| r.region == region).count();
        assert!(
            sent <= 4,
            "{region}: {sent} requests, more than --concurrency"
        );
    }
    assert_eq!(
        sim.stats().requests,
        failed.len() as u64,
        "each request was one row's only attempt"
    );
}

#[tokio::test]
async fn a_clock_off_by_more_than_five_minutes_is_retried_once_then_stops_the_job() {
    let sim = start(SimulatorConfig {
        clock_skew_secs: 600,
        ..fast_simulator()
    })
    .await;
    let mut job = Job::with_rows(50, "ap-guangzhou", Permission::Share);
    job.concurrency = 1;
    let (report, rows) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Stopped);
    let failed: Vec<_> = rows.iter().filter(|r| r.status == Status::Failed).collect();
    assert_eq!(failed.len(), 1, "one row in flight at a time");
    assert_eq!(
        failed[0].error_code.as_deref(),
        Some("AuthFailure.SignatureExpire")
    );
    assert_eq!(
        failed[0].attempts, 2,
        "retried once, with a fresh timestamp"
    );
    assert_eq!(
        rows.iter().filter(|r| r.status == Status::Skipped).count(),
        49
    );
    assert_eq!(sim.stats().requests, 2);
}

#[tokio::test]
async fn a_region_that_refuses_the_action_fails_its_rows_and_the_others_go_on() {
    let sim = start(SimulatorConfig {
        withdrawn_regions: vec!["ap-tokyo".into()],
        ..fast_simulator()
    })
    .await;
    let mut csv = String::from("region,image_id,permission\n");
    for i in 0..40 {
        let region = ["ap-tokyo", "ap-seoul"][i % 2];
        csv.push_str(&format!("{region},img-{i:08},SHARE\n"));
    }
    let mut job = Job::new(&csv);
    job.concurrency = 1;
    let (report, rows) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::SomeRowsFailed);
    let (tokyo, seoul): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.region == "ap-tokyo");
    assert!(seoul.iter().all(|r| r.status == Status::Shared));
    assert!(tokyo.iter().all(
        |r| r.status == Status::Failed && r.error_code.as_deref() == Some("UnsupportedRegion")
    ));
    let sent: u32 = tokyo.iter().map(|r| r.attempts).sum();
    assert_eq!(
        sent, 1,
        "after the first refusal the region's rows are not sent"
    );
}

/// Per-image order: with random latency and many rows per image, the simulator never sees
/// two requests for one image in flight at once.
#[tokio::test]
async fn one_image_never_has_two_requests_in_flight() {
    let sim = start(SimulatorConfig {
        latency_ms: (1, 30),
        seed: 11,
        ..fast_simulator()
    })
    .await;
    let mut csv = String::from("region,image_id,permission\n");
    for i in 0..200 {
        let permission = ["SHARE", "CANCEL"][(i / 4) % 2];
        csv.push_str(&format!("ap-seoul,img-{:08},{permission}\n", i % 4));
    }
    let job = Job::new(&csv);
    let (report, rows) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done, "{rows:?}");
    let stats = sim.stats();
    assert_eq!(stats.requests_by_action["ModifyImageSharePermission"], 200);
    assert_eq!(stats.max_in_flight_per_image, 1, "{stats:?}");
}
