//! The habits of cron and terminal users: silent success with `-q`, a named profile that
//! wins, a missing CAM permission that stops the job, a failure threshold, every option in
//! the environment, help that fits the terminal, completions.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use lighthouse_share::action::Permission;
use lighthouse_share::cli::Cli;
use lighthouse_share::results::Status;
use lighthouse_share::simulator::{
    DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, Faults, SimulatorConfig, SimulatorHandle,
};

use crate::common::{Job, fast_simulator, start};

/// The binary with a clean environment: `home` as HOME, no metadata service, and `env`.
fn binary(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lighthouse-share"));
    command
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // A closed port: no metadata service, answered at once.
        .env("LIGHTHOUSE_SHARE_METADATA_URL", "http://127.0.0.1:9/")
        .envs(env.iter().copied())
        .args(args)
        .current_dir(home)
        .stdin(Stdio::null());
    command
}

/// Runs it to the end off the test's runtime thread, so the simulator keeps answering.
async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// `run INPUT` against `sim` with the simulator's keys in the environment.
async fn run_against(job: &Job, sim: &SimulatorHandle, extra: &[&str]) -> Output {
    let endpoint = sim.endpoint();
    let mut args = vec!["run", job.input.to_str().unwrap(), "--endpoint", &endpoint];
    args.extend_from_slice(extra);
    output(binary(
        job.dir.path(),
        &args,
        &[
            ("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID),
            ("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY),
        ],
    ))
    .await
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_quiet_a_run_that_exits_0_prints_nothing_and_one_that_does_not_prints_the_summary() {
    let sim = start(fast_simulator()).await;
    let job = Job::with_rows(5, "ap-seoul", Permission::Share);
    let quiet = run_against(&job, &sim, &["-q"]).await;
    assert_eq!(quiet.status.code(), Some(0), "{}", stderr(&quiet));
    assert!(quiet.stderr.is_empty(), "{}", stderr(&quiet));
    assert!(quiet.stdout.is_empty());

    let failing = start(SimulatorConfig {
        faults: Faults {
            missing: 1.0,
            ..Faults::default()
        },
        ..fast_simulator()
    })
    .await;
    job.forget();
    let failed = run_against(&job, &failing, &["-q"]).await;
    assert_eq!(failed.status.code(), Some(3));
    assert!(
        stderr(&failed).contains("summary: 5 rows"),
        "{}",
        stderr(&failed)
    );
}

/// A home with the profiles `default` (unknown to the simulator) and `prod` (the
/// simulator's account) in the INI file, and the tccli profile `staging`.
fn home_with_profiles() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    std::fs::create_dir_all(dir.join(".tencentcloud")).unwrap();
    std::fs::write(
        dir.join(".tencentcloud/credentials"),
        format!(
            "[default]\nsecret_id = AKIDdefault\nsecret_key = k\n[prod]\nsecret_id = {DEFAULT_SECRET_ID}\nsecret_key = {DEFAULT_SECRET_KEY}\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join(".tccli")).unwrap();
    std::fs::write(
        dir.join(".tccli/staging.credential"),
        r#"{"secretId": "AKIDstaging", "secretKey": "k"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("in.csv"),
        "region,image_id,permission\nap-seoul,img-aaaaaaaa,SHARE\n",
    )
    .unwrap();
    home
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_profile_wins_over_the_environment_and_a_missing_one_lists_the_profiles() {
    let sim = start(fast_simulator()).await;
    let home = home_with_profiles();
    let endpoint = sim.endpoint();
    let wrong_keys = [
        ("TENCENTCLOUD_SECRET_ID", "AKIDfromenv"),
        ("TENCENTCLOUD_SECRET_KEY", "wrong"),
    ];
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["run", "in.csv", "--endpoint", &endpoint, "-q"];
        args.extend_from_slice(extra);
        binary(home.path(), &args, env)
    };
    let named = output(run(&["--profile", "prod", "--no-quiet"], &wrong_keys)).await;
    assert_eq!(named.status.code(), Some(0), "{}", stderr(&named));
    assert!(
        stderr(&named).contains("TENCENTCLOUD_SECRET_ID in the environment is not used"),
        "the surprise is said as a warning: {}",
        stderr(&named)
    );
    assert_eq!(
        sim.stats().by_secret_id.keys().collect::<Vec<_>>(),
        [DEFAULT_SECRET_ID],
        "only the profile's key signed"
    );

    let missing = output(run(&["--profile", "nope"], &wrong_keys)).await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("the profile `nope` does not exist")
            && stderr(&missing).contains("the profiles found: default, prod, staging"),
        "{}",
        stderr(&missing)
    );

    // TCCLI_PROFILE only names the default profile: the environment's keys still win.
    let tccli = [wrong_keys[0], wrong_keys[1], ("TCCLI_PROFILE", "prod")];
    let env_wins = output(run(&["-o", "other.csv"], &tccli)).await;
    assert_eq!(env_wins.status.code(), Some(4), "{}", stderr(&env_wins));
    let dry = output(binary(
        home.path(),
        &[
            "run",
            "in.csv",
            "--dry-run",
            "-o",
            "dry.csv",
            "--endpoint",
            &endpoint,
        ],
        &[("TCCLI_PROFILE", "staging")],
    ))
    .await;
    assert_eq!(
        dry.status.code(),
        Some(2),
        "the staging key is unknown to the simulator: the look-up finds it out"
    );
    assert!(
        stderr(&dry).contains("credentials from") && stderr(&dry).contains("staging.credential"),
        "a dry run names the source: {}",
        stderr(&dry)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cam_policy_without_the_action_stops_the_job_after_at_most_concurrency_requests() {
    let sim = start(SimulatorConfig {
        faults: Faults {
            unauthorized: 1.0,
            ..Faults::default()
        },
        ..fast_simulator()
    })
    .await;
    let mut csv = String::from("region,image_id,permission\n");
    for i in 0..100 {
        let region = ["ap-seoul", "ap-tokyo"][i % 2];
        csv.push_str(&format!("{region},img-{i:08},SHARE\n"));
    }
    let job = Job::new(&csv);
    let stopped = run_against(&job, &sim, &["--concurrency", "4"]).await;
    assert_eq!(stopped.status.code(), Some(4), "{}", stderr(&stopped));
    assert!(
        stderr(&stopped).contains("lighthouse:ModifyImageSharePermission"),
        "{}",
        stderr(&stopped)
    );
    let stats = sim.stats();
    for region in ["ap-seoul", "ap-tokyo"] {
        let sent: u64 = stats
            .by_image
            .iter()
            .filter(|(key, _)| key.starts_with(region))
            .map(|(_, n)| n)
            .sum();
        assert!(sent <= 4, "{region}: {sent} requests");
    }
    let results = job.results();
    assert_eq!(results.len(), 100);
    assert!(
        results
            .iter()
            .filter(|r| r.status == Status::Skipped)
            .count()
            >= 92
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_failures_as_a_share_stops_the_job_with_exit_4_and_the_summary_names_it() {
    let sim = start(SimulatorConfig {
        faults: Faults {
            missing: 0.5,
            ..Faults::default()
        },
        ..fast_simulator()
    })
    .await;
    let job = Job::with_rows(300, "ap-seoul", Permission::Share);
    // At 100/s the 300 rows would take 3 s: the threshold is passed long before.
    let stopped = run_against(&job, &sim, &["--max-failures", "10%", "--rate", "100"]).await;
    assert_eq!(stopped.status.code(), Some(4), "{}", stderr(&stopped));
    assert!(
        stderr(&stopped).contains("stopped: --max-failures 10% passed"),
        "{}",
        stderr(&stopped)
    );
    let results = job.results();
    let n = |status| results.iter().filter(|r| r.status == status).count();
    assert!(n(Status::Skipped) > 0, "no new rows after the stop");
    assert!(
        n(Status::Failed) + n(Status::Shared) >= 20,
        "judged after 20 rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_that_refuses_the_action_is_logged_once() {
    let sim = start(SimulatorConfig {
        withdrawn_regions: vec!["ap-tokyo".into()],
        ..fast_simulator()
    })
    .await;
    let job = Job::with_rows(40, "ap-tokyo", Permission::Share);
    let refused = run_against(&job, &sim, &["--concurrency", "8"]).await;
    assert_eq!(refused.status.code(), Some(3));
    assert_eq!(
        stderr(&refused).matches("refuses this action").count(),
        1,
        "{}",
        stderr(&refused)
    );
}

/// Every `run` option and the variable that sets it in the test below.
const EVERY_OPTION_IN_THE_ENVIRONMENT: [(&str, &str, &str); 19] = [
    // (variable, value, what the settings line or the run shows)
    (
        "LIGHTHOUSE_SHARE_DRY_RUN",
        "true",
        "dry run for http://127.0.0.1:9",
    ),
    // Not offline: the dry run looks the credentials up.
    ("LIGHTHOUSE_SHARE_OFFLINE", "false", "credentials from"),
    ("LIGHTHOUSE_SHARE_LOOKUP", "false", "lookup false"),
    ("LIGHTHOUSE_SHARE_PREFLIGHT", "false", "preflight false"),
    ("LIGHTHOUSE_SHARE_DESCRIBE_RATE", "4", "describe rate 4/s"),
    (
        "LIGHTHOUSE_SHARE_ENDPOINT",
        "http://127.0.0.1:9",
        "127.0.0.1:9",
    ),
    ("LIGHTHOUSE_SHARE_OUTPUT", "out.csv", "output out.csv"),
    ("LIGHTHOUSE_SHARE_SHEET", "Sheet2", "sheet Sheet2"),
    ("LIGHTHOUSE_SHARE_CONFIG", "c.toml", "backoff 500-999 ms"),
    ("LIGHTHOUSE_SHARE_TIMEOUT", "3", "timeout 3s"),
    ("LIGHTHOUSE_SHARE_PROFILE", "prod", "profile `prod`"),
    ("LIGHTHOUSE_SHARE_RATE", "7", "rate 7/s"),
    ("LIGHTHOUSE_SHARE_RATE_SCOPE", "endpoint", "per endpoint"),
    ("LIGHTHOUSE_SHARE_CONCURRENCY", "3", "concurrency 3"),
    ("LIGHTHOUSE_SHARE_MAX_ATTEMPTS", "2", "max attempts 2"),
    ("LIGHTHOUSE_SHARE_MAX_FAILURES", "5%", "max failures 5%"),
    ("LIGHTHOUSE_SHARE_RESUME", "yes", "resume true"),
    ("LIGHTHOUSE_SHARE_LOG_FORMAT", "json", "log format json"),
    ("LIGHTHOUSE_SHARE_VERBOSE", "1", "verbose 1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_option_can_be_set_in_the_environment_and_a_flag_wins() {
    // Every long option of `run` (but the --no- forms) has its variable in the list above,
    // or is one of the two the second run covers.
    let cli = Cli::command();
    let run = cli.find_subcommand("run").unwrap();
    for arg in run.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long.starts_with("no-") || ["help", "simulate", "quiet"].contains(&long) {
            continue;
        }
        let var = format!("LIGHTHOUSE_SHARE_{}", long.replace('-', "_").to_uppercase());
        assert!(
            EVERY_OPTION_IN_THE_ENVIRONMENT
                .iter()
                .any(|(v, ..)| *v == var),
            "--{long} has no test of {var}"
        );
    }
    let home = home_with_profiles();
    std::fs::write(home.path().join("c.toml"), "[retry]\nmax_ms = 999\n").unwrap();
    std::fs::write(
        home.path().join("in.csv"),
        "region,image_id,permission\nap-seoul,img-aaaaaaaa,SHARE\nap-seoul,img-BAD,SHARE\n",
    )
    .unwrap();
    let env: Vec<(&str, &str)> = EVERY_OPTION_IN_THE_ENVIRONMENT
        .iter()
        .map(|(var, value, _)| (*var, *value))
        .collect();
    let dry = output(binary(home.path(), &["run", "in.csv"], &env)).await;
    let text = stderr(&dry);
    for (var, _, shown) in EVERY_OPTION_IN_THE_ENVIRONMENT {
        assert!(text.contains(shown), "{var}: `{shown}` not in {text}");
    }
    // JSON lines carry a row's identity as fields, not only in the message.
    let invalid = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|value| value["level"] == "WARN" && value["image_id"] == "img-BAD")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        (&invalid["line"], &invalid["status"], &invalid["code"]),
        (&3.into(), &"invalid".into(), &"InvalidInput".into())
    );
    let flag_wins = output(binary(home.path(), &["run", "in.csv", "--rate", "2"], &env)).await;
    assert!(
        stderr(&flag_wins).contains("rate 2/s"),
        "{}",
        stderr(&flag_wins)
    );

    // The other two: --simulate and -q, from the environment, on a real (simulated) run.
    let sim_quiet = output(binary(
        home.path(),
        &["run", "in.csv", "-o", "sim.csv"],
        &[
            ("LIGHTHOUSE_SHARE_SIMULATE", "true"),
            ("LIGHTHOUSE_SHARE_QUIET", "on"),
        ],
    ))
    .await;
    assert_eq!(sim_quiet.status.code(), Some(3), "one invalid row");
    let text = stderr(&sim_quiet);
    assert!(
        !text.contains("INFO") && text.contains("summary: 2 rows"),
        "{text}"
    );
    assert!(home.path().join("sim.csv").exists());
}

#[test]
fn help_fits_80_columns_groups_the_options_and_ends_with_the_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let help = binary(home.path(), &["run", "--help"], &[("COLUMNS", "80")])
        .output()
        .unwrap();
    let text = String::from_utf8(help.stdout).unwrap();
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "{} columns: {line}", line.len());
    }
    for heading in [
        "Input and output:",
        "Pacing and retries:",
        "Credentials and endpoint:",
        "Logging:",
        "Example:",
        "Credentials, first found wins",
        "Exit codes:",
    ] {
        assert!(text.contains(heading), "{heading} missing from:\n{text}");
    }
    assert!(text.contains("LIGHTHOUSE_SHARE_MAX_FAILURES"));
    let simulate = binary(home.path(), &["simulate", "--help"], &[])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&simulate.stdout).contains("/__stats"));
}

#[test]
fn completions_and_man_pages_are_printed() {
    let home = tempfile::tempdir().unwrap();
    let print = |args: &[&str]| {
        let out = binary(home.path(), args, &[]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = print(&["completions", "bash"]);
    assert!(bash.starts_with("_lighthouse__share() {"), "{bash}");
    assert!(bash.contains("--max-failures") && bash.contains("complete -F"));
    assert!(print(&["completions", "zsh"]).starts_with("#compdef lighthouse-share"));
    for shell in ["fish", "elvish", "powershell"] {
        assert!(
            print(&["completions", shell]).contains("max-failures"),
            "{shell}"
        );
    }
    assert!(print(&["man"]).contains(".TH lighthouse-share 1"));
    let run = print(&["man", "run"]);
    assert!(run.contains(".TH lighthouse-share-run 1") && run.contains("max\\-failures"));
    let unknown = binary(home.path(), &["man", "nope"], &[]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

/// A rehearsal resumed with `--simulate --resume` meets the account its last run left (its
/// in-process simulator is seeded from the record), so nothing is found changed outside
/// and only what the sheet itself flips is sent again.
#[test]
fn a_resumed_rehearsal_starts_from_the_account_its_last_run_left() {
    let job = Job::new(
        "region,image_id,permission\nap-seoul,img-aaaaaaaa,SHARE\nap-seoul,img-bbbbbbbb,SHARE\nap-tokyo,img-cccccccc,CANCEL\n",
    );
    let first = crate::common::binary(&job)
        .args(["--simulate", "-q"])
        .output()
        .unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = crate::common::binary(&job)
        .args(["--simulate", "--resume", "--log-format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("changed outside"), "{stderr}");
    let summary: serde_json::Value = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["summary"] == true)
        .expect("a JSON summary");
    assert_eq!(
        summary["requests_by_action"]["ModifyImageSharePermission"], 0,
        "{summary}"
    );
    let rows = job.results();
    assert!(
        rows.iter()
            .take(2)
            .all(|r| r.status == Status::Shared && r.blueprint_id.is_some()),
        "{rows:?}"
    );
}
