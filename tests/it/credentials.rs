//! The credential chain and the configuration, as Tencent Cloud users keep them; and the
//! promise that no secret ever shows.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use lighthouse_share::action::Permission;
use lighthouse_share::cli::RunArgs;
use lighthouse_share::config::RunConfig;
use lighthouse_share::credentials::{Credentials, Secret};
use lighthouse_share::output::Ending;
use lighthouse_share::simulator::{DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, SimulatorConfig};

use crate::common::{Job, fast_simulator, start, unix_now};

/// A fake metadata service: the role `lighthouse-role`, whose first credentials expire
/// soon (302 s: inside the 300 s refresh margin between one and two seconds later, wherever
/// the second boundary falls) and later ones do not.
async fn metadata_service() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/cam/security-credentials/",
            get(|| async { "lighthouse-role" }),
        )
        .route(
            "/cam/security-credentials/lighthouse-role",
            get(|State(calls): State<Arc<AtomicUsize>>| async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                let (id, lifetime) = if n == 1 {
                    ("AKIDrole1", 302)
                } else {
                    ("AKIDrole2", 3600)
                };
                axum::Json(serde_json::json!({
                    "TmpSecretId": id,
                    "TmpSecretKey": format!("{id}-fake-key"),
                    "Token": format!("{id}-fake-token"),
                    "ExpiredTime": unix_now() + lifetime,
                    "Expiration": "",
                    "Code": "Success",
                }))
            }),
        )
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, calls)
}

fn role_account(id: &str) -> Credentials {
    Credentials::new(
        id,
        &format!("{id}-fake-key"),
        Some(Secret::from(format!("{id}-fake-token"))),
    )
}

/// A home directory with every file-based source, each with its own secret id.
fn home_with_every_file() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    std::fs::create_dir_all(dir.join(".tencentcloud")).unwrap();
    std::fs::write(
        dir.join(".tencentcloud/credentials"),
        "[default]\nsecret_id = AKIDini\nsecret_key = ini-fake-key\n[prod]\nsecret_id = AKIDiniprod\nsecret_key = k\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("other.ini"),
        "[default]\nsecret_id = AKIDenvfile\nsecret_key = k\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join(".tccli")).unwrap();
    for profile in ["default", "prod"] {
        std::fs::write(
            dir.join(format!(".tccli/{profile}.credential")),
            format!(r#"{{"type": "default", "secretId": "AKIDtccli{profile}", "secretKey": "k", "token": ""}}"#),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("config.toml"),
        "[credentials]\nsecret_id = 'AKIDconfig'\nsecret_key = 'k'\n",
    )
    .unwrap();
    home
}

async fn source_of(
    vars: &HashMap<&str, String>,
    config: Option<&Path>,
    profile: Option<&str>,
) -> (String, String) {
    let args = RunArgs {
        input: "in.csv".into(),
        config: config.map(Path::to_path_buf),
        profile: profile.map(str::to_string),
        ..Default::default()
    };
    let env = |key: &str| vars.get(key).cloned();
    let config = RunConfig::resolve(args, &env).await.unwrap();
    let provider = config
        .credentials()
        .expect("a run without --dry-run or --simulate sends to an endpoint");
    (
        provider.current().await.unwrap().secret_id,
        provider.source(),
    )
}

#[tokio::test]
async fn each_source_is_used_in_order_of_precedence() {
    let (metadata, _) = metadata_service().await;
    let home = home_with_every_file();
    let config = home.path().join("config.toml");
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("HOME", home.path().display().to_string()),
        ("LIGHTHOUSE_SHARE_METADATA_URL", metadata),
        ("TENCENTCLOUD_SECRET_ID", "AKIDenv".into()),
        ("TENCENTCLOUD_SECRET_KEY", "env-fake-key".into()),
    ]);
    let id = |(id, _): (String, String)| id;
    assert_eq!(id(source_of(&vars, Some(&config), None).await), "AKIDenv");
    vars.remove("TENCENTCLOUD_SECRET_KEY");
    assert_eq!(
        id(source_of(&vars, Some(&config), None).await),
        "AKIDconfig"
    );
    assert_eq!(id(source_of(&vars, None, None).await), "AKIDini");
    assert_eq!(
        id(source_of(&vars, None, Some("prod")).await),
        "AKIDiniprod",
        "--profile picks the section"
    );
    vars.insert(
        "TENCENTCLOUD_CREDENTIALS_FILE",
        home.path().join("other.ini").display().to_string(),
    );
    assert_eq!(id(source_of(&vars, None, None).await), "AKIDenvfile");
    vars.remove("TENCENTCLOUD_CREDENTIALS_FILE");
    std::fs::remove_file(home.path().join(".tencentcloud/credentials")).unwrap();
    let (tccli, source) = source_of(&vars, None, Some("prod")).await;
    assert_eq!(tccli, "AKIDtccliprod", "--profile picks the tccli profile");
    assert!(
        source.ends_with(".tccli/prod.credential"),
        "the log names the file: {source}"
    );
    std::fs::remove_dir_all(home.path().join(".tccli")).unwrap();
    let (role, source) = source_of(&vars, None, None).await;
    assert_eq!(role, "AKIDrole1");
    assert!(source.contains("lighthouse-role"), "{source}");
}

#[tokio::test]
async fn the_session_token_is_sent_when_present() {
    let sim = start(SimulatorConfig {
        accounts: vec![role_account("AKIDtemp")],
        ..fast_simulator()
    })
    .await;
    let job = Job::with_rows(5, "ap-seoul", Permission::Share);
    let args = || RunArgs {
        input: job.input.clone(),
        endpoint: Some(sim.endpoint()),
        no_lookup: true,
        ..Default::default()
    };
    let run = |token: Option<&'static str>| {
        let env = move |key: &str| match key {
            "TENCENTCLOUD_SECRET_ID" => Some("AKIDtemp".to_string()),
            "TENCENTCLOUD_SECRET_KEY" => Some("AKIDtemp-fake-key".to_string()),
            "TENCENTCLOUD_SESSION_TOKEN" => token.map(str::to_string),
            _ => None,
        };
        let args = args();
        async move {
            let config = RunConfig::resolve(args, &env).await.unwrap();
            lighthouse_share::run::run(config, std::future::pending())
                .await
                .unwrap()
        }
    };
    let without = run(None).await;
    assert_eq!(
        without.ending(),
        Ending::Stopped,
        "temporary credentials without their token are refused"
    );
    assert_eq!(sim.stats().answers("AuthFailure.TokenFailure"), 1);
    job.forget();
    let with = run(Some("AKIDtemp-fake-token")).await;
    assert_eq!(with.ending(), Ending::Done);
    assert_eq!(sim.stats().answers("OK"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cvm_role_credentials_are_refreshed_before_they_expire() {
    let (metadata, calls) = metadata_service().await;
    let sim = start(SimulatorConfig {
        accounts: vec![role_account("AKIDrole1"), role_account("AKIDrole2")],
        ..fast_simulator()
    })
    .await;
    // 100 rows at 20/s take 5 s: the refresh falls inside the run.
    let job = Job::with_rows(100, "ap-seoul", Permission::Share);
    let home = tempfile::tempdir().unwrap();
    let vars = HashMap::from([
        ("HOME", home.path().display().to_string()),
        ("LIGHTHOUSE_SHARE_METADATA_URL", metadata),
    ]);
    let args = RunArgs {
        input: job.input.clone(),
        endpoint: Some(sim.endpoint()),
        rate: Some(20.0),
        no_lookup: true,
        ..Default::default()
    };
    let config = RunConfig::resolve(args, &|key| vars.get(key).cloned())
        .await
        .unwrap();
    let report = lighthouse_share::run::run(config, std::future::pending())
        .await
        .unwrap();
    assert_eq!(report.ending(), Ending::Done);
    let by_id = sim.stats().by_secret_id;
    assert!(
        by_id["AKIDrole1"] > 0 && by_id["AKIDrole2"] > 0,
        "{by_id:?}"
    );
    assert_eq!(by_id["AKIDrole1"] + by_id["AKIDrole2"], 100);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "refreshed once, not per request"
    );
}

/// An empty home directory holding `in.csv` with one valid row.
fn home_with_one_row() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("in.csv"),
        "region,image_id,permission\nap-seoul,img-aaaaaaaa,SHARE\n",
    )
    .unwrap();
    home
}

fn binary(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lighthouse-share"));
    command
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // A closed port: no metadata service, answered at once.
        .env("LIGHTHOUSE_SHARE_METADATA_URL", "http://127.0.0.1:9/");
    command
}

fn every_file_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(every_file_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_output_or_file_even_at_the_most_verbose_level() {
    const KEY: &str = "SECRET-KEY-that-must-never-show-4f2a";
    const TOKEN: &str = "SESSION-TOKEN-that-must-never-show-9c1e";
    let account = Credentials::new("AKIDleaktest", KEY, Some(Secret::from(TOKEN)));
    let sim = start(SimulatorConfig {
        accounts: vec![account],
        ..fast_simulator()
    })
    .await;
    let job = Job::new(
        "region,image_id,permission\nap-seoul,img-aaaaaaaa,SHARE\nap-seoul,img-aaaaaaaa,SHARE\nap-seoul,img-BAD,SHARE\nap-mars,img-bbbbbbbb,SHARE\n",
    );
    let endpoint = sim.endpoint();
    let input = job.input.clone();
    let home = job.dir.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        binary(&home)
            .args([
                "run",
                input.to_str().unwrap(),
                "-vv",
                "--endpoint",
                &endpoint,
            ])
            .env("TENCENTCLOUD_SECRET_ID", "AKIDleaktest")
            .env("TENCENTCLOUD_SECRET_KEY", KEY)
            .env("TENCENTCLOUD_TOKEN", TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DEBUG") || stderr.contains("TRACE"),
        "the most verbose level ran: {stderr}"
    );
    let mut texts = vec![
        stderr.to_string(),
        String::from_utf8_lossy(&output.stdout).to_string(),
    ];
    for file in every_file_under(job.dir.path()) {
        texts.push(String::from_utf8_lossy(&std::fs::read(file).unwrap()).to_string());
    }
    assert!(
        texts.len() >= 4,
        "stdout, stderr, the input, the results and the lock"
    );
    for text in texts {
        assert!(
            !text.contains(KEY) && !text.contains(TOKEN),
            "a secret leaked: {text}"
        );
    }
}

#[test]
fn plain_http_to_a_remote_host_is_refused_and_no_credentials_lists_the_six_places() {
    let home = home_with_one_row();
    let input = home.path().join("in.csv");
    let refused = binary(home.path())
        .args([
            "run",
            input.to_str().unwrap(),
            "--endpoint",
            "http://lighthouse.tencentcloudapi.com",
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("plain http:// is refused") && stderr.contains("use https://"),
        "{stderr}"
    );

    let none = binary(home.path())
        .args(["run", input.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&none.stderr);
    for place in [
        "1. a profile named by --profile",
        "2. TENCENTCLOUD_SECRET_ID",
        "3. the config file",
        "4. TENCENTCLOUD_CREDENTIALS_FILE",
        "5. tccli",
        "6. the CAM role",
    ] {
        assert!(stderr.contains(place), "{place} missing from: {stderr}");
    }
    assert!(
        !home.path().join("in.results.csv").exists(),
        "nothing was written"
    );
}

/// The rate a dry run plans with, as it prints it.
fn planned_rate(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let output = binary(home)
        .args(["run", "in.csv", "--dry-run", "--offline"])
        .args(extra)
        .envs(env.iter().copied())
        .current_dir(home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let plan = stderr
        .lines()
        .find(|l| l.contains("plan:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    plan.split(" at ")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    let home = home_with_one_row();
    std::fs::write(home.path().join("c.toml"), "[run]\nrate = 5\n").unwrap();
    let file = [("LIGHTHOUSE_SHARE_CONFIG", "c.toml")];
    let file_and_env = [
        ("LIGHTHOUSE_SHARE_CONFIG", "c.toml"),
        ("LIGHTHOUSE_SHARE_RATE", "7"),
    ];
    assert_eq!(
        planned_rate(home.path(), &[], &[]),
        "19.84",
        "default 20, paced at 99.2%"
    );
    assert_eq!(planned_rate(home.path(), &[], &file), "4.96");
    assert_eq!(planned_rate(home.path(), &[], &file_and_env), "6.94");
    assert_eq!(
        planned_rate(home.path(), &["--rate", "3"], &file_and_env),
        "2.98"
    );
}

#[test]
fn a_config_file_with_a_secret_readable_by_others_draws_a_chmod_warning() {
    use std::os::unix::fs::PermissionsExt;
    let home = home_with_one_row();
    let config = home.path().join("c.toml");
    std::fs::write(
        &config,
        "[credentials]\nsecret_id = 'AKIDx'\nsecret_key = 'fake'\n",
    )
    .unwrap();
    let warned = |mode| {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).unwrap();
        let output = binary(home.path())
            .args(["run", "in.csv", "--dry-run", "--offline", "-c", "c.toml"])
            .current_dir(home.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stderr).contains("chmod 600")
    };
    assert!(warned(0o644));
    assert!(!warned(0o600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_from_the_environment_is_not_used_for_a_loopback_endpoint() {
    let sim = start(fast_simulator()).await;
    let home = home_with_one_row();
    let output = binary(home.path())
        .args([
            "run",
            "in.csv",
            "--no-lookup",
            "--endpoint",
            &sim.endpoint(),
        ])
        .env("TENCENTCLOUD_SECRET_ID", DEFAULT_SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", DEFAULT_SECRET_KEY)
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:9")
        .env("ALL_PROXY", "http://127.0.0.1:9")
        .current_dir(home.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("1 shared"), "{stderr}");
    assert_eq!(
        sim.stats().answers("OK"),
        1,
        "the request reached the simulator"
    );
}
