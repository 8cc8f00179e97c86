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
//! runs the named ones: memory, validation, utilisation, fifteen, cost, nightly, baseline,
//! contention, lower.

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
}

impl Bench {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            table: String::from("| scenario | measure | result | goal |\n|---|---|---|---|\n"),
        }
    }

    fn row(&mut self, scenario: &str, measure: &str, result: String, goal: &str) {
        println!("{scenario:12} {measure:48} {result:>24}   goal: {goal}");
        let _ = writeln!(self.table, "| {scenario} | {measure} | {result} | {goal} |");
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
                self.row(
                    "utilisation",
                    &format!(
                        "{scope} scope, {}: rate/cap, busiest 1 s",
                        if scope == "region" {
                            &bucket
                        } else {
                            "one bucket"
                        }
                    ),
                    format!("{:.3}, {window} req", rate / 20.0),
                    "≥ 0.99, ≤ 20",
                );
            }
            self.row(
                "utilisation",
                &format!("{scope} scope: RequestLimitExceeded"),
                limited(&stats).to_string(),
                "0",
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
        let measured = self.run(&input, Some(&sim.endpoint), &["--rate", "1000000000"]);
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
            self.shared_quota(
                "contention",
                &format!("--count {count}"),
                elapsed,
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
        self.shared_quota(
            "lower limit",
            "10/s, --rate 20",
            elapsed,
            &sim,
            measured.failed(),
        );
    }

    /// The rows of a scenario where the client must find its share of a quota.
    fn shared_quota(
        &mut self,
        scenario: &str,
        case: &str,
        elapsed: Duration,
        sim: &Sim,
        failed: u64,
    ) {
        let stats = sim.stats();
        let refused = limited(&stats);
        self.row(
            scenario,
            &format!("{case}: elapsed / 30 s"),
            format!(
                "{:.2} ({:.1} s)",
                elapsed.as_secs_f64() / 30.0,
                elapsed.as_secs_f64()
            ),
            "≤ 1.25",
        );
        self.row(
            scenario,
            &format!("{case}: refused / requests"),
            format!(
                "{:.1}% ({refused}/{})",
                100.0 * refused as f64 / stats.requests.max(1) as f64,
                stats.requests
            ),
            "≤ 5%",
        );
        self.row(
            scenario,
            &format!("{case}: failed rows"),
            failed.to_string(),
            "0",
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
    let scenarios: [Scenario; 9] = [
        ("memory", Bench::memory),
        ("validation", Bench::validation),
        ("utilisation", Bench::utilisation),
        ("fifteen", Bench::fifteen),
        ("cost", Bench::cost),
        ("nightly", Bench::nightly),
        ("baseline", Bench::baseline),
        ("contention", Bench::contention),
        ("lower", Bench::lower),
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
