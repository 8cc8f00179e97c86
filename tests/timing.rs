//! Tests of what the server sees in time: no second above the rate, nothing refused. They
//! build as their own binary, apart from `it`, so that no other test competes with them for
//! the two cores: the margin they check is 8 ms a second, and a test runner starting forty
//! other tests beside them can delay one arrival by more than that. For the same reason they
//! take turns.

#[allow(dead_code)]
#[path = "it/common.rs"]
mod common;

use std::time::Duration;

use lighthouse_share::action::{Permission, RateScope};
use lighthouse_share::output::Ending;
use lighthouse_share::simulator::SimulatorConfig;

use common::{Job, start};

/// One test at a time: the other would be the competition this binary exists to avoid.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The pacing promise end to end: real requests at `--rate 20` to a simulator that allows
/// 20 per second and measures every arrival. A limiter with a burst, or one that paces what
/// leaves it rather than what it lets go, would put more than 20 in some second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_rate_20_no_second_holds_more_than_20_requests_and_none_is_refused() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let sim = start(SimulatorConfig {
        rate: 20,
        latency_ms: (20, 80),
        seed: 5,
        ..SimulatorConfig::default()
    })
    .await;
    let mut csv = String::from("region,image_id,permission\n");
    for i in 0..80 {
        let region = ["ap-guangzhou", "ap-tokyo"][i % 2];
        csv.push_str(&format!("{region},img-{i:08},SHARE\n"));
    }
    let mut job = Job::new(&csv);
    job.rate = 20.0;
    job.rate_scope = Some(RateScope::Region);
    let (report, rows) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done, "{rows:?}");
    let stats = sim.stats();
    assert_eq!(stats.answers("RequestLimitExceeded"), 0, "{stats:?}");
    assert_eq!(stats.answers("OK"), 80);
    for region in ["ap-guangzhou", "ap-tokyo"] {
        let busiest = stats.max_window[region];
        assert!(
            (19..=20).contains(&busiest),
            "{region}: {busiest} requests in one second; {:?}",
            report.buckets
        );
    }
}

/// A 200 ms handshake on each new connection, answers in 50–150 ms, 32 in flight: a request
/// that waits for a handshake after taking its slot would reach the server next to a later
/// one that found a warm connection, and put 21 in a second. Warmed connections and
/// requests prepared before their slot keep every second at 20 and nothing refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_do_not_bunch_requests_up_at_the_server() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let sim = start(SimulatorConfig {
        connect_latency: Duration::from_millis(200),
        latency_ms: (50, 150),
        seed: 3,
        ..SimulatorConfig::default()
    })
    .await;
    let mut job = Job::with_rows(60, "ap-seoul", Permission::Share);
    job.rate = 20.0;
    let (report, rows) = job.run(&sim).await;
    assert_eq!(report.ending(), Ending::Done, "{rows:?}");
    let stats = sim.stats();
    assert_eq!(stats.answers("RequestLimitExceeded"), 0, "{stats:?}");
    assert!(stats.max_window["ap-seoul"] <= 20, "{stats:?}");
}
