//! Helpers shared by the integration tests.

use std::time::{SystemTime, UNIX_EPOCH};

use lighthouse_share::action::{self, Permission};
use lighthouse_share::credentials::Credentials;
use lighthouse_share::results::Status;
use lighthouse_share::sign::{self, Tc3Input};
use lighthouse_share::simulator::{
    DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, Simulator, SimulatorConfig, SimulatorHandle,
};
use serde_json::Value;

pub async fn start(config: SimulatorConfig) -> SimulatorHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Simulator::start(listener, config).unwrap()
}

pub fn simulator_credentials() -> Credentials {
    Credentials::new(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, None)
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One hand-made request, so that tests can bend any part of it.
pub struct Call {
    pub credentials: Credentials,
    pub region: String,
    pub body: Vec<u8>,
    pub timestamp: u64,
    /// Sign `x-tc-action` too, as newer demos do.
    pub signed_action: bool,
}

impl Call {
    pub fn new(region: &str, image_id: &str, permission: Permission) -> Self {
        Self {
            credentials: simulator_credentials(),
            region: region.to_string(),
            body: action::request_body(image_id, permission),
            timestamp: unix_now(),
            signed_action: false,
        }
    }

    /// Sends it; returns the HTTP status and the `Response` object (or the raw body's text).
    pub async fn send(&self, http: &reqwest::Client, addr: std::net::SocketAddr) -> (u16, Value) {
        let host = addr.to_string();
        let signature = sign::tc3(&Tc3Input {
            secret_key: self.credentials.secret_key.expose(),
            timestamp: self.timestamp,
            service: action::SERVICE,
            host: &host,
            content_type: action::CONTENT_TYPE,
            signed_action: self.signed_action.then_some(action::ACTION),
            body: &self.body,
        });
        let response = http
            .post(format!("http://{host}/"))
            .header(
                "Authorization",
                signature.authorization(&self.credentials.secret_id),
            )
            .header("Content-Type", action::CONTENT_TYPE)
            .header("X-TC-Action", action::ACTION)
            .header("X-TC-Version", action::VERSION)
            .header("X-TC-Region", &self.region)
            .header("X-TC-Timestamp", self.timestamp.to_string())
            .body(self.body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str::<Value>(&text)
            .map(|v| v["Response"].clone())
            .unwrap_or(Value::String(text));
        (status, value)
    }
}

/// The error code of a `Response` object, or `OK`.
pub fn code(response: &Value) -> String {
    response["Error"]["Code"]
        .as_str()
        .unwrap_or("OK")
        .to_string()
}

/// A simulator fast enough for tests: high limits, no latency. Its limits are far above what
/// the tool sends, so that no test here depends on how the two cores schedule it: the tests
/// of pacing at the service's very limit are in `tests/timing.rs`, run alone.
pub fn fast_simulator() -> SimulatorConfig {
    SimulatorConfig {
        rate: 10_000,
        describe_rate: 10_000,
        images_rate: 10_000,
        ..SimulatorConfig::default()
    }
}

/// A job to run: an input file in a temporary directory and the options to run it with.
pub struct Job {
    pub dir: tempfile::TempDir,
    pub input: std::path::PathBuf,
    pub secret_key: String,
    pub rate: f64,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub timeout_secs: f64,
    pub resume: bool,
    pub rate_scope: Option<lighthouse_share::action::RateScope>,
    /// Read the state first; off by default, so that a test's requests are its rows' own.
    pub lookup: bool,
}

impl Job {
    pub fn new(csv: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("images.csv");
        std::fs::write(&input, csv).unwrap();
        Self {
            dir,
            input,
            secret_key: DEFAULT_SECRET_KEY.to_string(),
            rate: 1000.0,
            concurrency: 32,
            max_attempts: 8,
            timeout_secs: 5.0,
            resume: false,
            rate_scope: None,
            lookup: false,
        }
    }

    /// `n` rows of distinct images in one region.
    pub fn with_rows(n: usize, region: &str, permission: Permission) -> Self {
        let mut csv = String::from("region,image_id,permission\n");
        for i in 0..n {
            csv.push_str(&format!("{region},img-{i:08},{permission}\n"));
        }
        Self::new(&csv)
    }

    pub fn output(&self) -> std::path::PathBuf {
        self.dir.path().join("images.results.csv")
    }

    pub async fn config(&self, sim: &SimulatorHandle) -> lighthouse_share::config::RunConfig {
        self.config_for(&sim.endpoint()).await
    }

    /// The job's configuration, sending to `endpoint` (a stand-in other than the simulator).
    pub async fn config_for(&self, endpoint: &str) -> lighthouse_share::config::RunConfig {
        let args = lighthouse_share::cli::RunArgs {
            input: self.input.clone(),
            endpoint: Some(endpoint.to_string()),
            rate: Some(self.rate),
            concurrency: Some(self.concurrency),
            max_attempts: Some(self.max_attempts),
            timeout: Some(self.timeout_secs),
            resume: self.resume,
            rate_scope: self.rate_scope,
            no_lookup: !self.lookup,
            ..Default::default()
        };
        let key = self.secret_key.clone();
        let env = move |name: &str| match name {
            "TENCENTCLOUD_SECRET_ID" => Some(DEFAULT_SECRET_ID.to_string()),
            "TENCENTCLOUD_SECRET_KEY" => Some(key.clone()),
            _ => None,
        };
        let mut config = lighthouse_share::config::RunConfig::resolve(args, &env)
            .await
            .unwrap();
        config.pacing_mut().retry.backoff.base = std::time::Duration::from_millis(5);
        config.pacing_mut().retry.backoff.max = std::time::Duration::from_millis(50);
        config
    }

    /// Runs to the end; returns the report and the results file's rows.
    pub async fn run(
        &self,
        sim: &SimulatorHandle,
    ) -> (lighthouse_share::output::Report, Vec<ResultRow>) {
        let report = lighthouse_share::run::run(self.config(sim).await, std::future::pending())
            .await
            .unwrap();
        (report, self.results())
    }

    pub fn results(&self) -> Vec<ResultRow> {
        read_results(&self.output())
    }

    /// Removes the results and the record, so the next run starts afresh.
    pub fn forget(&self) {
        for path in [self.output(), self.record()] {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The run's record, beside the results.
    pub fn record(&self) -> std::path::PathBuf {
        self.dir.path().join("images.results.csv.journal")
    }

    /// The rows of the record (after its header line), as JSON.
    pub fn recorded(&self) -> Vec<Value> {
        std::fs::read_to_string(self.record())
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

/// A row of a results file, by column name: the input's own columns in these tests are
/// `region,image_id,permission`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ResultRow {
    pub line: u64,
    pub region: String,
    pub image_id: String,
    pub status: Status,
    pub blueprint_id: Option<String>,
    pub request_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: u32,
}

pub fn read_results(path: &std::path::Path) -> Vec<ResultRow> {
    csv::Reader::from_path(path)
        .unwrap()
        .deserialize()
        .map(Result::unwrap)
        .collect()
}

/// `lighthouse-share run INPUT` with the simulator's credentials and no config file.
pub fn binary(job: &Job) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lighthouse-share"));
    command
        .arg("run")
        .arg(&job.input)
        .env("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)
        .env_remove("LIGHTHOUSE_SHARE_CONFIG")
        .env_remove("LIGHTHOUSE_SHARE_RATE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// Waits for a child without blocking the runtime.
pub async fn finish(child: std::process::Child) -> std::process::Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// Waits (polling, with a deadline) until `done` holds.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Lines of a file after its first (a header), 0 if it does not exist.
pub fn rows_in(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count().saturating_sub(1))
}

/// Sends a signal to a child.
pub fn signal(child: &std::process::Child, signal: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}
