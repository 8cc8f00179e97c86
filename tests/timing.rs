//! Tests of what the server sees in time: no second above the rate, nothing refused. The margin
//! they check is 8 ms a second, so they run as the benchmark does: the simulator and the run
//! are two processes of the real binary, and this test binary, apart from `it` so that no
//! other test competes with them for the two cores, only waits; its tests take turns.
//!
//! Even so, about one run in fifteen, one request of a test reached the simulator more than
//! 8 ms late (a process of the two woken late), so that the server counted it within a
//! second of the 20th before it: one refusal, and a busiest second of 21. That is the stray
//! refusal the tool is built to take (it widens its margin), not a pacing fault, so each
//! test allows [`STRAY`] of them. What they guard against costs far more: a limiter with a
//! burst puts about 40 in the first second and draws about 20 refusals, and requests that
//! wait for a handshake after their slot put 21 in a second again and again.

#[allow(dead_code)]
#[path = "it/common.rs"]
mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use lighthouse_share::simulator::{DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, Stats};

use common::{Job, finish, wait_until};

/// The refusals a test allows: one request delayed on its way by a late wake-up (see above).
const STRAY: u64 = 1;

/// One test at a time: the other would be the competition this binary exists to avoid.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BINARY: &str = env!("CARGO_BIN_EXE_lighthouse-share");

/// `lighthouse-share simulate` with `args`, on a free loopback port; killed when dropped.
struct Simulator {
    child: Child,
    endpoint: String,
}

impl Simulator {
    fn start(args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(BINARY)
            .args(["simulate", "--listen", &listen])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("the simulator listens", || {
            TcpStream::connect(&listen).is_ok()
        });
        Self {
            child,
            endpoint: format!("http://{listen}"),
        }
    }

    async fn stats(&self) -> Stats {
        reqwest::get(format!("{}/__stats", self.endpoint))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `job` with the binary against `sim` at `--rate 20` per region; returns its exit code.
async fn run(job: &Job, sim: &Simulator) -> Option<i32> {
    run_with(job, sim, &["-q"]).await.0
}

/// Runs `job` as [`run`] does, with `args` added; returns its exit code and its stderr.
async fn run_with(job: &Job, sim: &Simulator, args: &[&str]) -> (Option<i32>, String) {
    let args = [
        &["--rate", "20", "--rate-scope", "region", "--no-lookup"],
        args,
    ]
    .concat();
    run_as(job, sim, &args).await
}

/// Runs `job` with the binary against `sim` with `args` alone; exit code and stderr.
async fn run_as(job: &Job, sim: &Simulator, args: &[&str]) -> (Option<i32>, String) {
    let child = Command::new(BINARY)
        .arg("run")
        .arg(&job.input)
        .args(["--endpoint", &sim.endpoint])
        .args(args)
        .env("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)
        .env_remove("LIGHTHOUSE_SHARE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = finish(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    (output.status.code(), stderr)
}

/// The pacing promise end to end: real requests at `--rate 20` to a simulator that allows
/// 20 per second and measures every arrival. A limiter with a burst, or one that paces what
/// leaves it rather than what it lets go, would put more than 20 in some second.
#[tokio::test]
async fn at_rate_20_no_second_holds_more_than_20_requests_sent_on_time() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let sim = Simulator::start(&["--rate", "20", "--latency-ms", "20-80", "--seed", "5"]);
    let mut csv = String::from("region,image_id,permission\n");
    for i in 0..80 {
        let region = ["ap-guangzhou", "ap-tokyo"][i % 2];
        csv.push_str(&format!("{region},img-{i:08},SHARE\n"));
    }
    let job = Job::new(&csv);
    assert_eq!(run(&job, &sim).await, Some(0));
    let stats = sim.stats().await;
    let refused = stats.answers("RequestLimitExceeded");
    assert!(refused <= STRAY, "{stats:?}");
    assert_eq!(stats.answers("OK"), 80);
    for region in ["ap-guangzhou", "ap-tokyo"] {
        let busiest = stats.max_window[region];
        assert!(
            (19..=20 + refused).contains(&busiest),
            "{region}: {busiest} requests in one second"
        );
    }
}

/// A 200 ms handshake on each new connection, answers in 50–150 ms, 32 in flight: a request
/// that waits for a handshake after taking its slot would reach the server next to a later
/// one that found a warm connection, and put 21 in a second. Warmed connections and
/// requests prepared before their slot keep every second at 20 and nothing refused.
#[tokio::test]
async fn handshakes_do_not_bunch_requests_up_at_the_server() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let sim = Simulator::start(&[
        "--connect-latency-ms",
        "200",
        "--latency-ms",
        "50-150",
        "--seed",
        "3",
    ]);
    let job = Job::with_rows(60, "ap-seoul", lighthouse_share::action::Permission::Share);
    assert_eq!(run(&job, &sim).await, Some(0));
    let stats = sim.stats().await;
    let refused = stats.answers("RequestLimitExceeded");
    assert!(refused <= STRAY, "{stats:?}");
    assert!(stats.max_window["ap-seoul"] <= 20 + refused, "{stats:?}");
}

/// A network that delays each request 0–40 ms on its way (`--uplink-jitter-ms 40`): no pace
/// without refusals beats 1/1.04 of the cap. Cutting the rate for each stray refusal, as
/// contention, kept 0.85 of the cap; widening the margin instead keeps well above 0.9, with a
/// few refusals while it learns.
#[tokio::test]
async fn a_network_that_delays_requests_costs_a_few_refusals_not_the_rate() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let sim = Simulator::start(&[
        "--uplink-jitter-ms",
        "40",
        "--latency-ms",
        "30-90",
        "--seed",
        "4",
    ]);
    let job = Job::with_rows(300, "ap-tokyo", lighthouse_share::action::Permission::Share);
    let (code, stderr) = run_with(&job, &sim, &["--log-format", "json"]).await;
    assert_eq!(code, Some(0));
    let summary: serde_json::Value = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|value| value["summary"] == true)
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let rate = summary["requests_per_second"]["ap-tokyo"].as_f64().unwrap();
    let stats = sim.stats().await;
    let refused = stats.answers("RequestLimitExceeded");
    assert!(refused <= 6, "{refused} refused: {stats:?}");
    assert!(rate >= 0.9 * 20.0, "{rate}/s");
}

/// The look-ups of one bucket keep to their own limits: a dry run over the 15 regions of one
/// endpoint (`--rate-scope endpoint`) reads 15 `DescribeBlueprints` pages at 10/s and 35
/// `DescribeImagesToShare` pages at 20/s (2,100 images in ap-tokyo, one in each other
/// region), to a simulator whose limits are those. A limiter per region, not per bucket,
/// would put 15 of each in the first second.
#[tokio::test]
async fn look_ups_of_one_bucket_keep_to_their_own_limits() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut csv = String::from("region,image_id,permission\n");
    let mut seed = String::new();
    let regions = lighthouse_share::action::REGIONS;
    let others = regions.iter().filter(|region| **region != "ap-tokyo");
    let images = (0..2100)
        .map(|i| ("ap-tokyo", format!("img-{i:08}")))
        .chain(others.map(|region| (*region, "img-elsewhr0".to_string())));
    for (region, image) in images {
        csv.push_str(&format!("{region},{image},SHARE\n"));
        seed.push_str(&format!("{region},{image}\n"));
    }
    let job = Job::new(&csv);
    let seed_file = job.dir.path().join("seed.csv");
    std::fs::write(&seed_file, seed).unwrap();
    let sim = Simulator::start(&[
        "--rate-scope",
        "endpoint",
        "--images",
        seed_file.to_str().unwrap(),
        "--latency-ms",
        "20-80",
        "--seed",
        "6",
    ]);
    let (code, stderr) = run_as(&job, &sim, &["--dry-run", "--rate-scope", "endpoint"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let stats = sim.stats().await;
    assert!(stats.answers("RequestLimitExceeded") <= STRAY, "{stats:?}");
    for (action, pages, limit) in [
        ("DescribeBlueprints", 15, 10),
        ("DescribeImagesToShare", 35, 20),
    ] {
        let refused = stats.answers_by_action[action]
            .get("RequestLimitExceeded")
            .copied()
            .unwrap_or(0);
        assert_eq!(
            stats.requests_by_action[action],
            pages + refused,
            "{stats:?}"
        );
        let busiest = &stats.max_window_by_action[action];
        assert!(
            busiest
                .values()
                .all(|n| (limit..=limit + refused).contains(n)),
            "{action}: {busiest:?}"
        );
    }
}
