//! Adaptive pacing end to end (SPEC §3): sharing the quota with another run, a limit lower
//! than `--rate`, handshakes that would bunch requests up, and a bucket refused for good.

use std::time::Duration;

use lighthouse_share::output::Ending;
use lighthouse_share::results::Status;
use lighthouse_share::simulator::{Count, SimulatorConfig};

use crate::common::{Job, start};

/// `n` SHARE rows in ap-seoul, images numbered from `first`.
fn rows(first: usize, n: usize) -> Job {
    let mut csv = String::from("region,image_id,permission\n");
    for i in first..first + n {
        csv.push_str(&format!("ap-seoul,img-{i:08},SHARE\n"));
    }
    let mut job = Job::new(&csv);
    job.rate = 20.0;
    job
}

/// Two runs at once on one region's 20/s: each paces at 20/s until refusals lower it, and
/// every row of both succeeds, whether or not refused requests use up the window. One
/// attempt per row (`--max-attempts 1`): throttled answers must not use it up.
async fn two_runs_at_once(count: Count) {
    let sim = start(SimulatorConfig {
        count,
        latency_ms: (20, 60),
        ..SimulatorConfig::default()
    })
    .await;
    let (mut first, mut second) = (rows(0, 60), rows(1000, 60));
    first.max_attempts = 1;
    second.max_attempts = 1;
    let ((report_a, rows_a), (report_b, rows_b)) = tokio::join!(first.run(&sim), second.run(&sim));
    for (report, rows) in [(report_a, rows_a), (report_b, rows_b)] {
        assert_eq!(report.ending(), Ending::Done, "{count:?}: {rows:?}");
        assert_eq!(report.counts.get(Status::Shared), 60);
        let bucket = &report.lanes[0];
        assert!(
            bucket.lowest_rate < 20.0 && bucket.n_throttled > 0,
            "{count:?}: two runs at 20/s on a 20/s quota never lowered the pace: {bucket:?}"
        );
    }
    assert_eq!(sim.stats().answers("OK"), 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_both_finish_when_refusals_use_up_the_window() {
    two_runs_at_once(Count::All).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_both_finish_when_only_admitted_requests_count() {
    two_runs_at_once(Count::Admitted).await;
}

/// The account's real limit is half of `--rate`: pacing comes down to it, and every row
/// succeeds on one attempt.
#[tokio::test]
async fn a_limit_below_the_rate_is_found_and_every_row_succeeds() {
    let sim = start(SimulatorConfig {
        rate: 10,
        latency_ms: (20, 60),
        ..SimulatorConfig::default()
    })
    .await;
    let mut job = rows(0, 60);
    job.max_attempts = 1;
    let (report, rows) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done, "{rows:?}");
    let bucket = &report.lanes[0];
    assert!(bucket.lowest_rate <= 10.0, "{bucket:?}");
    assert_eq!(
        bucket.n_throttled,
        sim.stats().answers("RequestLimitExceeded")
    );
    let n_sent: u32 = rows.iter().map(|row| row.attempts).sum();
    assert_eq!(
        u64::from(n_sent),
        sim.stats().requests,
        "every request counted"
    );
}

/// A bucket refused without pause gives up after `max_throttled` (5 minutes in a run; less
/// here): every row fails with the refusal, none loops for ever, and `--resume` would run
/// them again.
#[tokio::test]
async fn a_bucket_refused_without_pause_fails_its_rows_and_ends() {
    let sim = start(SimulatorConfig {
        rate: 0,
        ..SimulatorConfig::default()
    })
    .await;
    let mut job = rows(0, 20);
    job.max_attempts = 1;
    // One row at a time: the row in flight is retried through the limiter until the bucket
    // gives up (with more, refused rows take turns).
    job.concurrency = 1;
    let mut config = job.config(&sim).await;
    config.pacing_mut().retry.max_throttled = Duration::from_millis(300);
    let report = lighthouse_share::run::run(config, std::future::pending())
        .await
        .unwrap();
    let rows = job.results();
    assert_eq!(report.ending(), Ending::SomeRowsFailed);
    assert!(
        rows.iter().all(|row| row.status == Status::Failed
            && (row.attempts > 0) == row.request_id.is_some()
            && row.error_code.as_deref() == Some("RequestLimitExceeded")),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|row| row.attempts > 1),
        "throttled attempts do not use up --max-attempts: {rows:?}"
    );
}
