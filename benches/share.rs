//! Benchmarks: how close to the API's cap `lighthouse-share` runs without being refused, and
//! what that costs the machine. Each scenario runs the release binary as a child process
//! against `lighthouse-share simulate`, another child, over loopback, and measures the client
//! alone (CPU time and peak RSS from `wait4`).
//!
//! Linux counts a child's peak RSS from the moment it was spawned, so the parent's own peak
//! leaks into it: this process therefore stays small (inputs are streamed to disk, the
//! simulator is a process of its own), and prints its own peak as the floor of the measure.
//!
//! `cargo bench --bench share` runs every scenario; `cargo bench --bench share -- NAME ...`
//! runs the named ones: memory, validation, utilisation (with five runs over slow
//! handshakes), fifteen, cost, nightly, baseline, contention, lower, jitter. Rows whose goal
//! the bench checks say whether it is met.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::io::{BufRead, BufReader, BufWriter, Write};

use lighthouse_share::action::REGIONS;
use lighthouse_share::simulator::{DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, Stats};

const BINARY: &str = env!("CARGO_BIN_EXE_lighthouse-share");

/// `lighthouse-share simulate` on an ephemeral loopback port, stopped when dropped.
struct Sim {
    child: std::process::Child,
    endpoint: String,
}

impl Sim {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BINARY)
            .args(["simulate", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the simulator starts");
        let mut first = String::new();
        BufReader::new(child.stderr.take().expect("piped"))
            .read_line(&mut first)
            .expect("the simulator says where it listens");
        let addr = first
            .split_whitespace()
            .nth(3)
            .unwrap_or_else(|| panic!("unexpected first line: {first}"));
        Self {
            child,
            endpoint: format!("http://{addr}"),
        }
    }

    fn stats(&self) -> Stats {
        let url = format!("{}/__stats", self.endpoint);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(async { reqwest::get(&url).await?.json::<Stats>().await })
            .expect("the simulator answers its stats")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one run of the binary cost and said.
struct Measured {
    exit_code: i32,
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: i64,
    summary: serde_json::Value,
}

impl Measured {
    /// Rows `failed`, from the run's own summary.
    fn failed(&self) -> u64 {
        self.summary["statuses"]["failed"].as_u64().unwrap_or(0)
    }

    /// Achieved requests per second per bucket, from the run's own summary.
    fn rates(&self) -> BTreeMap<String, f64> {
        self.summary["requests_per_second"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A run of the binary under way.
struct Running {
    pid: u32,
    started: Instant,
    stderr_path: PathBuf,
}

impl Running {
    /// Waits for it to end and measures it.
    fn wait(self) -> Measured {
        let (status, usage) = wait4(self.pid);
        let wall = self.started.elapsed();
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let summary = text
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|value| value["summary"] == true)
            .unwrap_or_else(|| panic!("no summary in: {text}"));
        let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
        Measured {
            exit_code: status,
            wall,
            cpu,
            peak_rss_kib: usage.ru_maxrss,
            summary,
        }
    }
}

struct Bench {
    dir: tempfile::TempDir,
    table: String,
    /// Checked goals not met, for the last line.
    n_missed: usize,
}

impl Bench {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            table: String::from("| scenario | measure | result | goal |\n|---|---|---|---|\n"),
            n_missed: 0,
        }
    }

    fn row(&mut self, scenario: &str, measure: &str, result: String, goal: &str) {
        println!("{scenario:12} {measure:48} {result:>24}   goal: {goal}");
        let _ = writeln!(self.table, "| {scenario} | {measure} | {result} | {goal} |");
    }

    /// A row whose goal is checked here: the bench says whether it is met.
    fn check(&mut self, scenario: &str, measure: &str, result: String, goal: &str, met: bool) {
        let verdict = if met { "met" } else { "NOT MET" };
        self.row(scenario, measure, result, &format!("{goal} ({verdict})"));
        if !met {
            self.n_missed += 1;
        }
    }

    /// Writes `n_per_region` SHARE rows for each region, interleaved.
    fn input(&self, name: &str, regions: &[&str], n_per_region: usize) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.csv"));
        let mut file = BufWriter::new(std::fs::File::create(&path).expect("create the input"));
        writeln!(file, "region,image_id,permission").expect("write the input");
        for i in 0..n_per_region {
            for region in regions {
                writeln!(file, "{region},img-{i:08},SHARE").expect("write the input");
            }
        }
        file.flush().expect("write the input");
        path
    }

    /// Runs the binary to the end and measures it.
    fn run(&self, input: &Path, endpoint: Option<&str>, args: &[&str]) -> Measured {
        self.start(input, endpoint, args).wait()
    }

    /// Starts the binary; [`Running::wait`] measures it.
    fn start(&self, input: &Path, endpoint: Option<&str>, args: &[&str]) -> Running {
        // A fresh start: no earlier results or record.
        for earlier in ["results.csv", "results.csv.journal"] {
            let _ = std::fs::remove_file(input.with_extension(earlier));
        }
        let stderr_path = input.with_extension("stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("a stderr file");
        let mut command = Command::new(BINARY);
        command
            .arg("run")
            .arg(input)
            .args(["--log-format", "json"])
            .args(args)
            .env("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID)
            .env("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some(endpoint) = endpoint {
            command.args(["--endpoint", endpoint]);
        }
        let started = Instant::now();
        // Reaped by `wait4`, which also gives its resource usage.
        #[allow(clippy::zombie_processes)]
        let child = command.spawn().expect("the release binary starts");
        Running {
            pid: child.id(),
            started,
            stderr_path,
        }
    }

    /// 3 regions × 300 rows in region scope, and 1 bucket × 300 rows in endpoint scope, at
    /// 20/s against a strict 20/s window with 50–150 ms latency.
    fn utilisation(&mut self) {
        let cases: [(&str, &[&str]); 2] = [
            ("region", &["ap-guangzhou", "ap-tokyo", "eu-frankfurt"]),
            ("endpoint", &["ap-guangzhou"]),
        ];
        for (scope, regions) in cases {
            let sim = Sim::start(&["--rate-scope", scope, "--latency-ms", "50-150"]);
            let input = self.input(&format!("utilisation-{scope}"), regions, 300);
            let measured = self.run(
                &input,
                Some(&sim.endpoint),
                &["--rate", "20", "--rate-scope", scope],
            );
            assert_eq!(measured.exit_code, 0);
            let stats = sim.stats();
            for (bucket, rate) in measured.rates() {
                let window = stats
                    .max_window
                    .get(&bucket)
                    .or(stats.max_window.get("endpoint"))
                    .copied()
                    .unwrap_or(0);
                let name = if scope == "region" {
                    bucket.as_str()
                } else {
                    "one bucket"
                };
                self.check(
                    "utilisation",
                    &format!("{scope} scope, {name}: rate/cap, busiest 1 s"),
                    format!("{:.3}, {window} req", rate / 20.0),
                    "≥ 0.99, ≤ 20",
                    rate / 20.0 >= 0.99 && window <= 20,
                );
            }
            let refused = limited(&stats);
            self.check(
                "utilisation",
                &format!("{scope} scope: RequestLimitExceeded"),
                refused.to_string(),
                "0",
                refused == 0,
            );
        }
        self.slow_connections();
    }

    /// Five runs of 300 rows at 20/s where each new connection waits 200 ms (a far region's
    /// TLS handshake), answers in 50–150 ms: a request that waits for a handshake after taking
    /// its slot would reach the server next to a later one and put 21 in a second.
    fn slow_connections(&mut self) {
        let mut n_good = 0;
        for run in 1..=5 {
            let seed = run.to_string();
            let sim = Sim::start(&[
                "--connect-latency-ms",
                "200",
                "--latency-ms",
                "50-150",
                "--seed",
                &seed,
            ]);
            let input = self.input(&format!("slow-{run}"), &["ap-seoul"], 300);
            let measured = self.run(&input, Some(&sim.endpoint), &["--rate", "20"]);
            assert_eq!(measured.exit_code, 0);
            let stats = sim.stats();
            let rate = measured.rates().values().sum::<f64>();
            let window = stats.max_window.get("ap-seoul").copied().unwrap_or(0);
            let refused = limited(&stats);
            let good = rate / 20.0 >= 0.98 && window <= 20 && refused == 0;
            n_good += usize::from(good);
            self.check(
                "utilisation",
                &format!("200 ms handshakes, run {run}/5: rate/cap, busiest 1 s, refused"),
                format!("{:.3}, {window} req, {refused}", rate / 20.0),
                "≥ 0.98, ≤ 20, 0",
                good,
            );
        }
        self.check(
            "utilisation",
            "200 ms handshakes: runs meeting all three",
            format!("{n_good}/5"),
            "5/5",
            n_good == 5,
        );
    }

    /// One region at 20/s against a strict 20/s window, each request counted 0..J ms after
    /// it arrives (`--uplink-jitter-ms`), answers in 30–90 ms, 400 rows, no look-up. Without
    /// refusals nothing can do better than 1/(1 + J) of the cap: 20 requests arriving within
    /// a second need their sends spread over a second and J.
    fn jitter(&mut self) {
        for jitter_ms in [0u32, 10, 20, 40] {
            let jitter = jitter_ms.to_string();
            let sim = Sim::start(&[
                "--latency-ms",
                "30-90",
                "--uplink-jitter-ms",
                &jitter,
                "--seed",
                "1",
            ]);
            let input = self.input(&format!("jitter-{jitter_ms}"), &["ap-guangzhou"], 400);
            let measured = self.run(
                &input,
                Some(&sim.endpoint),
                &["--rate", "20", "--no-lookup"],
            );
            assert_eq!(measured.exit_code, 0);
            let stats = sim.stats();
            // One bucket, whatever its name in the default scope.
            let achieved = measured.rates().values().sum::<f64>() / 20.0;
            let bound = 1.0 / (1.0 + f64::from(jitter_ms) / 1000.0);
            let ratio = achieved / bound;
            let refused = limited(&stats);
            let share = refused as f64 / stats.requests.max(1) as f64;
            let (goal, met) = if jitter_ms == 0 {
                ("achieved ≥ 0.99", achieved >= 0.99)
            } else {
                ("ratio ≥ 0.97", ratio >= 0.97)
            };
            self.check(
                "jitter",
                &format!("J = {jitter_ms} ms: achieved/cap, 1/(1+J), ratio"),
                format!("{achieved:.3}, {bound:.3}, {ratio:.3}"),
                goal,
                met,
            );
            let (goal, met) = if jitter_ms == 0 {
                ("0", refused == 0)
            } else {
                ("≤ 1%", share <= 0.01)
            };
            self.check(
                "jitter",
                &format!("J = {jitter_ms} ms: refused / requests"),
                format!("{:.1}% ({refused}/{})", 100.0 * share, stats.requests),
                goal,
                met,
            );
        }
    }

    /// 15 regions × 100 rows at 20/s each.
    fn fifteen(&mut self) {
        let sim = Sim::start(&["--latency-ms", "50-150"]);
        let input = self.input("fifteen", &REGIONS, 100);
        let measured = self.run(
            &input,
            Some(&sim.endpoint),
            &["--rate", "20", "--rate-scope", "region"],
        );
        assert_eq!(measured.exit_code, 0);
        let aggregate: f64 = measured.rates().values().sum();
        self.row(
            "fifteen",
            "aggregate rate / 300",
            format!("{:.3} ({aggregate:.1}/s)", aggregate / 300.0),
            "≥ 0.99",
        );
        self.row(
            "fifteen",
            "RequestLimitExceeded",
            limited(&sim.stats()).to_string(),
            "0",
        );
    }

    /// The nightly cron run (SPEC §9): 10,000 rows over 15 regions, every image already
    /// shared (the simulator is seeded with them), run a second time: nothing to write.
    fn nightly(&mut self) {
        let input = self.input("nightly", &REGIONS, 10_000usize.div_ceil(REGIONS.len()));
        let seed = self.dir.path().join("nightly-shared.csv");
        let text = std::fs::read_to_string(&input).expect("read the input");
        let shared: String = text
            .lines()
            .skip(1)
            .map(|line| line.rsplit_once(',').expect("three columns").0.to_string() + "\n")
            .collect();
        std::fs::write(&seed, shared).expect("write the seed");
        let seed = seed.display().to_string();
        let sim = Sim::start(&["--shared", &seed, "--latency-ms", "50-150"]);
        let measured = self.run(
            &input,
            Some(&sim.endpoint),
            // `-q` prints nothing on success: the summary is what is measured.
            &["--rate", "20", "--rate-scope", "region", "--no-quiet"],
        );
        assert_eq!(measured.exit_code, 0);
        let stats = sim.stats();
        let writes = stats
            .requests_by_action
            .get("ModifyImageSharePermission")
            .copied()
            .unwrap_or(0);
        let lookups = stats
            .requests_by_action
            .get("DescribeBlueprints")
            .copied()
            .unwrap_or(0);
        let rows = measured.summary["rows"].as_u64().unwrap_or(0);
        let named = std::fs::read_to_string(input.with_extension("results.csv"))
            .unwrap_or_default()
            .matches(",already_shared,lhbp-")
            .count();
        self.row(
            "nightly",
            &format!("{rows} rows, all shared: wall time"),
            format!("{:.2} s", measured.wall.as_secs_f64()),
            "≤ 3 s",
        );
        self.row(
            "nightly",
            "ModifyImageSharePermission / DescribeBlueprints",
            format!("{writes} / {lookups}"),
            "0 / -",
        );
        self.row(
            "nightly",
            "rows already_shared with a BlueprintId",
            named.to_string(),
            &rows.to_string(),
        );
    }

    /// A simulator with no limit, no latency and no faults.
    fn unthrottled() -> Sim {
        Sim::start(&["--rate", "1000000000"])
    }

    /// 50,000 rows with no limit on either side: the client's CPU per request.
    fn cost(&mut self) {
        let sim = Self::unthrottled();
        let input = self.input("cost", &["ap-guangzhou"], 50_000);
        // The most --rate takes: far above what one client reaches here.
        let measured = self.run(&input, Some(&sim.endpoint), &["--rate", "10000"]);
        assert_eq!(measured.exit_code, 0);
        let requests = sim.stats().requests as f64;
        self.row(
            "cost",
            "CPU (user + sys) per request",
            format!("{:.1} µs", measured.cpu.as_secs_f64() * 1e6 / requests),
            "≤ 50 µs",
        );
        self.row(
            "cost",
            "requests per second",
            format!("{:.0}", requests / measured.wall.as_secs_f64()),
            "",
        );
    }

    /// Peak RSS in a dry run of 100,000 and 1,000,000 rows, and in unthrottled runs of
    /// 100,000, 200,000 and 1,000,000 rows (a fresh simulator each; the client at the most
    /// `--rate` takes).
    fn memory(&mut self) {
        for n in [100_000, 1_000_000] {
            let input = self.input(&format!("memory-dry-{n}"), &["ap-guangzhou"], n);
            let measured = self.run(&input, None, &["--dry-run", "--offline"]);
            self.row(
                "memory",
                &format!("peak RSS, --dry-run, {n} rows"),
                mib(measured.peak_rss_kib),
                "≤ 25 MB, flat",
            );
        }
        for n in [100_000, 200_000, 1_000_000] {
            let sim = Self::unthrottled();
            let input = self.input(&format!("memory-run-{n}"), &["ap-guangzhou"], n);
            let measured = self.run(&input, Some(&sim.endpoint), &["--rate", "10000"]);
            assert_eq!(measured.exit_code, 0);
            self.row(
                "memory",
                &format!("peak RSS, unthrottled run, {n} rows"),
                mib(measured.peak_rss_kib),
                "≤ 25 MB, flat",
            );
        }
    }

    /// `--dry-run` on 1,000,000 rows.
    fn validation(&mut self) {
        let input = self.input("validation", &["ap-guangzhou"], 1_000_000);
        let measured = self.run(&input, None, &["--dry-run", "--offline"]);
        let rate = 1e6 / measured.wall.as_secs_f64();
        self.row(
            "validation",
            "--dry-run, 1,000,000 rows: rows/s",
            format!("{:.2} M", rate / 1e6),
            "≥ 5 M",
        );
    }

    /// Two runs at once, 300 rows each in one region whose quota is 20/s, under each way of
    /// counting refusals: the perfect share of the quota takes 30 s.
    fn contention(&mut self) {
        for count in ["all", "admitted"] {
            let sim = Sim::start(&["--count", count, "--latency-ms", "50-150"]);
            let inputs = ["a", "b"].map(|run| {
                self.input(&format!("contention-{count}-{run}"), &["ap-guangzhou"], 300)
            });
            let started = Instant::now();
            let running =
                inputs.map(|input| self.start(&input, Some(&sim.endpoint), &["--rate", "20"]));
            let measured = running.map(Running::wait);
            let elapsed = started.elapsed();
            let failed: u64 = measured.iter().map(Measured::failed).sum();
            // Refusals use up the quota under `all`: the tighter goal there.
            let goals = if count == "all" {
                Goals {
                    elapsed: 1.15,
                    refused: 0.03,
                }
            } else {
                Goals {
                    elapsed: 1.10,
                    refused: 0.05,
                }
            };
            self.shared_quota(
                "contention",
                &format!("--count {count}"),
                (elapsed, goals),
                &sim,
                failed,
            );
        }
    }

    /// The account's limit (10/s) is half of `--rate`: 300 rows at the limit take 30 s.
    fn lower(&mut self) {
        let sim = Sim::start(&["--rate", "10", "--latency-ms", "50-150"]);
        let input = self.input("lower", &["ap-guangzhou"], 300);
        let started = Instant::now();
        let measured = self.run(&input, Some(&sim.endpoint), &["--rate", "20"]);
        let elapsed = started.elapsed();
        let goals = Goals {
            elapsed: 1.10,
            refused: 0.03,
        };
        self.shared_quota(
            "lower limit",
            "10/s, --rate 20",
            (elapsed, goals),
            &sim,
            measured.failed(),
        );
    }

    /// The rows of a scenario where the client must find its share of a quota: the time it
    /// took against the perfect share's 30 s, and the refusals, each against its goal.
    fn shared_quota(
        &mut self,
        scenario: &str,
        case: &str,
        (elapsed, goals): (Duration, Goals),
        sim: &Sim,
        failed: u64,
    ) {
        let stats = sim.stats();
        let refused = limited(&stats);
        let ratio = elapsed.as_secs_f64() / 30.0;
        self.check(
            scenario,
            &format!("{case}: elapsed / 30 s"),
            format!("{ratio:.2} ({:.1} s)", elapsed.as_secs_f64()),
            &format!("≤ {:.2}", goals.elapsed),
            ratio <= goals.elapsed,
        );
        let share = refused as f64 / stats.requests.max(1) as f64;
        self.check(
            scenario,
            &format!("{case}: refused / requests"),
            format!("{:.1}% ({refused}/{})", 100.0 * share, stats.requests),
            &format!("≤ {:.0}%", goals.refused * 100.0),
            share <= goals.refused,
        );
        self.check(
            scenario,
            &format!("{case}: failed rows"),
            failed.to_string(),
            "0",
            failed == 0,
        );
    }

    /// The same 300 rows in one region at --concurrency 1 (one call at a time, like a shell
    /// loop over a CLI) and at the default.
    fn baseline(&mut self) {
        let mut walls = Vec::new();
        for concurrency in ["1", "32"] {
            let sim = Sim::start(&["--latency-ms", "50-150"]);
            let input = self.input(&format!("baseline-{concurrency}"), &["ap-guangzhou"], 300);
            let measured = self.run(
                &input,
                Some(&sim.endpoint),
                &["--rate", "20", "--concurrency", concurrency],
            );
            assert_eq!(measured.exit_code, 0);
            self.row(
                "baseline",
                &format!("300 rows, --concurrency {concurrency}: wall time"),
                format!("{:.1} s", measured.wall.as_secs_f64()),
                "",
            );
            walls.push(measured.wall.as_secs_f64());
        }
        self.row(
            "baseline",
            "speed-up of the default over one at a time",
            format!("{:.2}×", walls[0] / walls[1]),
            "",
        );
    }
}

/// The goals of a shared-quota scenario: elapsed time over the perfect share's, and the
/// share of requests refused.
struct Goals {
    elapsed: f64,
    refused: f64,
}

fn limited(stats: &Stats) -> u64 {
    stats.answers("RequestLimitExceeded")
}

fn mib(kib: i64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Waits for the child and returns its exit code and its own resource usage.
fn wait4(pid: u32) -> (i32, libc::rusage) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it in for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid as libc::pid_t, "wait4 failed");
    (libc::WEXITSTATUS(status), usage)
}

/// A scenario's name, for picking it on the command line, and its body.
type Scenario = (&'static str, fn(&mut Bench));

fn main() {
    // Memory first: a child's peak RSS is measured from this process's own peak, which the
    // later scenarios raise a little (they ask the simulator for its stats over HTTP).
    let scenarios: [Scenario; 10] = [
        ("memory", Bench::memory),
        ("validation", Bench::validation),
        ("utilisation", Bench::utilisation),
        ("fifteen", Bench::fifteen),
        ("cost", Bench::cost),
        ("nightly", Bench::nightly),
        ("baseline", Bench::baseline),
        ("contention", Bench::contention),
        ("lower", Bench::lower),
        ("jitter", Bench::jitter),
    ];
    let known: Vec<&str> = scenarios.iter().map(|(name, _)| *name).collect();
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for name in &names {
        assert!(
            known.contains(&name.as_str()),
            "unknown scenario `{name}`; known: {}",
            known.join(", ")
        );
    }
    let mut bench = Bench::new();
    let started = Instant::now();
    for (name, scenario) in scenarios {
        if names.is_empty() || names.iter().any(|n| n == name) {
            scenario(&mut bench);
        }
    }
    println!("\n{}", bench.table);
    println!("checked goals not met: {}", bench.n_missed);
    // This process's own peak (VmHWM; its rusage would also count what cargo, which started
    // it, had peaked at) is what a child's peak RSS can never be measured below.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let floor = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or("unknown".to_string(), mib);
    println!(
        "{} cores; took {:.0} s; this process peaked at {floor} by the end (its peak when a child starts is the floor of that child's peak RSS: memory runs first, while it is smallest)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64(),
    );
}
