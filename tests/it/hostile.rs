//! A hostile world: endpoints that redirect, refuse, never connect, or answer too much or
//! too little; broken stderr, signals at awkward moments, file-size limits, bad values. Where
//! the simulator cannot play the part, a small raw HTTP server on 127.0.0.1:0 does.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lighthouse_share::action::Permission;
use lighthouse_share::output::Ending;
use lighthouse_share::results::Status;
use lighthouse_share::retry::UNREACHABLE_LIMIT;
use lighthouse_share::simulator::{DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, SimulatorConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{Job, ResultRow, binary, fast_simulator, finish, rows_in, start, wait_until};

/// A server that answers every request with the same bytes and counts the API calls (POSTs:
/// not the unsigned GETs that open a bucket's connections ahead of its first slot).
struct Hostile {
    endpoint: String,
    n_requests: Arc<AtomicUsize>,
}

impl Hostile {
    async fn start(answer: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let n_requests = Arc::new(AtomicUsize::new(0));
        let (counted, answer) = (n_requests.clone(), Arc::new(answer));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counted, answer) = (counted.clone(), answer.clone());
                tokio::spawn(async move {
                    if read_request(stream, &answer).await {
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        Self {
            endpoint,
            n_requests,
        }
    }

    fn n_requests(&self) -> usize {
        self.n_requests.load(Ordering::SeqCst)
    }
}

/// Reads one request (head and body), writes `answer`, closes; whether an API call came.
async fn read_request(mut stream: TcpStream, answer: &[u8]) -> bool {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |n| n.trim().parse().unwrap_or(0));
    while seen.len() < head_end + length {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
    }
    let _ = stream.write_all(answer).await;
    let _ = stream.shutdown().await;
    head.starts_with("post ")
}

/// An HTTP answer with `status`, extra header lines and a body.
fn answer(status: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Runs `job` against `endpoint` with one request at a time (so counts are exact).
async fn run_against(
    job: &Job,
    endpoint: &str,
) -> (lighthouse_share::output::Report, Vec<ResultRow>) {
    let mut config = job.config_for(endpoint).await;
    config.pacing_mut().concurrency = 1;
    let report = lighthouse_share::run::run(config, std::future::pending())
        .await
        .unwrap();
    (report, job.results())
}

#[tokio::test]
async fn a_redirect_is_job_fatal_and_nothing_reaches_its_target() {
    let target = Hostile::start(answer(
        "200 OK",
        "",
        r#"{"Response":{"BlueprintId":"lhbp-evil0000","RequestId":"x"}}"#,
    ))
    .await;
    let location = format!("Location: {}/steal\r\n", target.endpoint);
    let redirector = Hostile::start(answer("307 Temporary Redirect", &location, "")).await;
    let job = Job::with_rows(3, "ap-guangzhou", Permission::Share);
    let (report, rows) = run_against(&job, &redirector.endpoint).await;
    assert_eq!(report.ending(), Ending::Stopped);
    assert_eq!(target.n_requests(), 0, "the redirect is not followed");
    assert_eq!(redirector.n_requests(), 1);
    let message = rows[0].error_message.as_deref().unwrap_or_default();
    assert!(
        message.contains("the endpoint redirects to 127.0.0.1")
            && message.contains("check --endpoint"),
        "{message}"
    );
    assert!(rows.iter().all(|row| row.status != Status::Shared));
}

#[tokio::test]
async fn an_endpoint_with_a_password_is_refused_at_start_and_never_shown() {
    let job = Job::with_rows(1, "ap-guangzhou", Permission::Share);
    let output = binary(&job)
        .args([
            "--endpoint",
            "https://user:hunter2@127.0.0.1:9/",
            "--max-attempts",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("user name or password"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!job.output().exists());
}

#[tokio::test]
async fn an_answer_over_1_mib_is_an_invalid_response_read_no_further() {
    // No Content-Length: the cap must hold while the body streams in.
    let mut huge =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b' ', 3 << 20));
    let server = Hostile::start(huge).await;
    let mut job = Job::with_rows(1, "ap-guangzhou", Permission::Share);
    job.max_attempts = 1;
    let (_, rows) = run_against(&job, &server.endpoint).await;
    assert_eq!(rows[0].error_code.as_deref(), Some("InvalidResponse"));
    let message = rows[0].error_message.as_deref().unwrap_or_default();
    assert!(message.contains("larger than 1 MiB"), "{message}");
}

#[tokio::test]
async fn http_404_from_every_request_stops_the_job_with_the_fix() {
    let server = Hostile::start(answer("404 Not Found", "", "not here")).await;
    let job = Job::with_rows(5, "ap-guangzhou", Permission::Share);
    let (report, rows) = run_against(&job, &server.endpoint).await;
    assert_eq!(report.ending(), Ending::Stopped);
    assert_eq!(server.n_requests(), 1, "not retried as transient");
    assert_eq!(rows[0].error_code.as_deref(), Some("HttpStatus404"));
    assert!(rows[1..].iter().all(|row| row.status == Status::Skipped));
    let Some(lighthouse_share::engine::Reason::Fatal(error)) = &report.stop else {
        panic!("{:?}", report.stop);
    };
    let advice = lighthouse_share::api::fatal_advice(error);
    assert!(advice.contains("check --endpoint"), "{advice}");
}

#[tokio::test]
async fn an_endpoint_that_never_connects_stops_its_region_after_a_few_attempts() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let job = Job::with_rows(10, "ap-guangzhou", Permission::Share);
    let (report, rows) = run_against(&job, &endpoint).await;
    assert_eq!(report.ending(), Ending::SomeRowsFailed);
    let attempts: u32 = rows.iter().map(|row| row.attempts).sum();
    assert_eq!(
        u64::from(attempts),
        UNREACHABLE_LIMIT,
        "not 10 rows × 8 attempts"
    );
    assert!(
        rows.iter()
            .all(|row| row.error_code.as_deref() == Some("CannotConnect"))
    );
    let message = rows[9].error_message.as_deref().unwrap_or_default();
    assert!(
        message.contains("cannot connect to") && message.contains("check --endpoint"),
        "{message}"
    );
}

#[tokio::test]
async fn a_template_placeholder_other_than_region_is_refused_at_start() {
    let job = Job::with_rows(1, "ap-guangzhou", Permission::Share);
    let output = binary(&job)
        .args([
            "--endpoint",
            "https://lighthouse.{REGION}.tencentcloudapi.com",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`{REGION}` is not a placeholder"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_error_code_without_a_message_is_classified_by_the_code() {
    let body = r#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure"},"RequestId":"r1"}}"#;
    let server = Hostile::start(answer("200 OK", "", body)).await;
    let job = Job::with_rows(3, "ap-guangzhou", Permission::Share);
    let (report, rows) = run_against(&job, &server.endpoint).await;
    assert_eq!(report.ending(), Ending::Stopped, "job-fatal, not retried");
    assert_eq!(server.n_requests(), 1);
    assert_eq!(
        rows[0].error_code.as_deref(),
        Some("AuthFailure.SignatureFailure")
    );
}

#[tokio::test]
async fn a_share_answered_without_a_blueprint_id_says_so() {
    let server = Hostile::start(answer("200 OK", "", r#"{"Response":{"RequestId":"r1"}}"#)).await;
    let job = Job::with_rows(1, "ap-guangzhou", Permission::Share);
    let (_, rows) = run_against(&job, &server.endpoint).await;
    assert_eq!(rows[0].status, Status::Shared);
    let message = rows[0].error_message.as_deref().unwrap_or_default();
    assert!(
        message.contains("did not return the BlueprintId"),
        "{message}"
    );
}

#[tokio::test]
async fn retry_waits_have_an_upper_bound() {
    let job = Job::with_rows(1, "ap-guangzhou", Permission::Share);
    let config = job.dir.path().join("config.toml");
    std::fs::write(&config, "[retry]\nmax_ms = 9223372036854775807\n").unwrap();
    let output = binary(&job)
        .arg("--simulate")
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[retry] max_ms = 9223372036854775807: give at most 600000"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_that_cannot_be_written_changes_nothing() {
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(5, "ap-guangzhou", Permission::Share);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let child = binary(&job)
        .args(["--endpoint", &sim.endpoint(), "--rate", "1000"])
        .stderr(full)
        .spawn()
        .unwrap();
    let output = finish(child).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "no panic (101) on a full stderr"
    );
    assert_eq!(job.results().len(), 5);
}

/// Whether the process handles `signal` (its bit in /proc's SigCgt mask).
fn catches(pid: u32, signal: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

fn send_signal(pid: u32, signal: i32) {
    assert_eq!(
        unsafe { libc::kill(i32::try_from(pid).unwrap(), signal) },
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_is_an_interrupt_with_the_results_written() {
    let sim = start(SimulatorConfig {
        latency_ms: (20, 20),
        ..fast_simulator()
    })
    .await;
    let job = Job::with_rows(400, "ap-guangzhou", Permission::Share);
    let child = binary(&job)
        .args(["--endpoint", &sim.endpoint(), "--rate", "50"])
        .spawn()
        .unwrap();
    let record = job.record();
    wait_until("a row is recorded", || rows_in(&record) > 0);
    send_signal(child.id(), libc::SIGHUP);
    let finished = finish(child).await;
    let stderr = String::from_utf8_lossy(&finished.stderr);
    assert_eq!(finished.status.code(), Some(130), "{stderr}");
    let rows = job.results();
    assert_eq!(rows.len(), 400, "the final results hold every row");
    assert!(rows.iter().any(|row| row.status == Status::Skipped));
}

/// Standard input held open keeps the run before its first request; the signal comes then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_before_sending_stops_cleanly_with_130_and_writes_nothing() {
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(1, "ap-guangzhou", Permission::Share);
    let results = job.dir.path().join("stdin.results.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lighthouse-share"))
        .args(["run", "-", "--endpoint", &sim.endpoint()])
        .current_dir(job.dir.path())
        .env("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)
        .env_remove("LIGHTHOUSE_SHARE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write as _;
    // A long sheet: its validation pass is still going when the signal is taken, however
    // the two cores are shared out.
    let mut sheet = String::from("region,image_id,permission\n");
    for i in 0..200_000 {
        sheet.push_str(&format!("ap-guangzhou,img-{i:08},SHARE\n"));
    }
    stdin.write_all(sheet.as_bytes()).unwrap();
    let pid = child.id();
    wait_until("SIGTERM is handled", || catches(pid, libc::SIGTERM));
    send_signal(pid, libc::SIGTERM);
    drop(stdin);
    let finished = finish(child).await;
    let stderr = String::from_utf8_lossy(&finished.stderr);
    assert_eq!(finished.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!results.exists(), "nothing written");
    assert_eq!(sim.stats().requests, 0, "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_size_limit_is_an_error_naming_the_file_not_a_kill() {
    use std::os::unix::process::CommandExt;
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(200, "ap-guangzhou", Permission::Share);
    let mut command = binary(&job);
    command.args(["--endpoint", &sim.endpoint(), "--rate", "1000"]);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let finished = finish(command.spawn().unwrap()).await;
    let stderr = String::from_utf8_lossy(&finished.stderr);
    assert_eq!(finished.status.code(), Some(1), "{stderr}");
    let output = job.output();
    assert!(stderr.contains(&output.display().to_string()), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
}

#[tokio::test]
async fn bad_values_are_named_where_they_were_set() {
    let job = Job::with_rows(1, "ap-guangzhou", Permission::Share);
    let failure = |command: &mut Command| {
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(2));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = failure(
        binary(&job)
            .arg("--simulate")
            .env("LIGHTHOUSE_SHARE_RATE", "abc"),
    );
    assert!(stderr.contains("LIGHTHOUSE_SHARE_RATE=abc"), "{stderr}");
    let config = job.dir.path().join("config.toml");
    std::fs::write(&config, "[run]\nrate = -5\n").unwrap();
    let stderr = failure(binary(&job).arg("--simulate").arg("-c").arg(&config));
    assert!(stderr.contains("config.toml: [run] rate = -5"), "{stderr}");
    let dir = job.dir.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    let stderr = failure(binary(&job).arg("--simulate").arg("-o").arg(&dir));
    assert!(stderr.contains("is a directory"), "{stderr}");
    assert!(!stderr.contains("already exists"), "{stderr}");
    let stderr = failure(
        Command::new(env!("CARGO_BIN_EXE_lighthouse-share"))
            .args(["run", "--simulate"])
            .arg(&dir),
    );
    assert!(
        stderr.contains("is a directory") && !stderr.contains("line 0"),
        "{stderr}"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_lighthouse-share"))
        .args(["run", "--simulate", "-"])
        .current_dir(job.dir.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"nothing,here\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("standard input: no `region` column"),
        "{stderr}"
    );
    assert!(!stderr.contains("/tmp/"), "{stderr}");
}

/// Words that drive a terminal: colour codes, an OSC title ended by BEL, a bidi override.
const DRIVING: &str = r#"\u001b[31mred\u001b[0m \u001b]0;owned\u0007 \u202etxt.exe"#;

#[tokio::test]
async fn the_services_words_reach_no_terminal_or_sheet_raw() {
    let body = format!(
        r#"{{"Response":{{"Error":{{"Code":"ResourceInUse.ImageInUse","Message":"{DRIVING}"}},"RequestId":"r\u001b1"}}}}"#
    );
    let server = Hostile::start(answer("200 OK", "", &body)).await;
    let job = Job::with_rows(1, "ap-guangzhou", Permission::Share);
    let (_, rows) = run_against(&job, &server.endpoint).await;
    assert_eq!(rows[0].status, Status::Failed);
    assert_eq!(
        rows[0].error_message.as_deref(),
        Some("\\u{1b}[31mred\\u{1b}[0m \\u{1b}]0;owned\\u{7} \\u{202e}txt.exe"),
        "escaped visibly, the words readable"
    );
    assert_eq!(rows[0].request_id.as_deref(), Some("r\\u{1b}1"));
    let bytes = std::fs::read(job.output()).unwrap();
    assert!(!bytes.contains(&0x1b) && !bytes.contains(&0x07));
    assert!(!String::from_utf8(bytes).unwrap().contains('\u{202e}'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_is_not_json_is_echoed_at_v_without_its_controls() {
    let body = "<html>\u{1b}]0;owned\u{7}\u{1b}[2J busy</html>";
    let server = Hostile::start(answer("200 OK", "", body)).await;
    let job = Job::with_rows(1, "ap-guangzhou", Permission::Share);
    let output = finish(
        binary(&job)
            .args(["--endpoint", &server.endpoint, "-v", "--max-attempts", "2"])
            .args(["-o", "-"])
            .spawn()
            .unwrap(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stderr.contains("\\u{1b}]0;owned\\u{7}"), "{stderr}");
    assert!(stdout.contains("\\u{1b}[2J busy"), "{stdout}");
    for text in [&stderr, &stdout] {
        assert!(
            !text.contains(['\u{1b}', '\u{7}']),
            "no raw control reaches a terminal"
        );
    }
}

/// A file name is outside text too: a sheet named with an OSC title and a bidi override
/// is shown escaped in the summary, in warnings and in the error of a second run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_name_that_drives_a_terminal_is_shown_escaped() {
    let mut job = Job::with_rows(2, "ap-guangzhou", Permission::Share);
    let named = job.dir.path().join("ev\u{1b}]0;pwned\u{7}\u{202e}X.csv");
    std::fs::rename(&job.input, &named).unwrap();
    job.input = named;
    let run = || {
        binary(&job)
            .args(["--simulate", "--sheet", "s\u{1b}[2J"])
            .spawn()
            .unwrap()
    };
    let first = finish(run()).await;
    assert_eq!(first.status.code(), Some(0));
    let second = finish(run()).await;
    assert_eq!(
        second.status.code(),
        Some(2),
        "an earlier run's results exist"
    );
    for output in [&first, &second] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("ev\\u{1b}]0;pwned\\u{7}\\u{202e}X"),
            "{stderr}"
        );
        assert!(
            !stderr.contains(['\u{1b}', '\u{7}', '\u{202e}']),
            "no raw control reaches a terminal: {stderr}"
        );
    }
}

/// A dry run that cannot reach the service cannot vouch for its SHARE rows: exit 3, the
/// rows it could not check counted, so a cron job that runs `--dry-run` first stops there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_that_cannot_reach_the_service_does_not_exit_0() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let job = Job::with_rows(3, "ap-guangzhou", Permission::Share);
    let output = finish(
        binary(&job)
            .args(["--dry-run", "--endpoint", &endpoint])
            .spawn()
            .unwrap(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("0 SHARE rows would fail, 3 could not be checked"),
        "{stderr}"
    );
}
