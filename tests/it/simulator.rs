//! The simulator answers as the service does.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lighthouse_share::action::{self, Permission, RateScope};
use lighthouse_share::credentials::Credentials;
use lighthouse_share::sign;
use lighthouse_share::simulator::{Count, DESCRIBE_ACTION, Faults, SimulatorConfig};
use serde_json::{Value, json};

use crate::common::{Call, code, simulator_credentials, start, unix_now};

fn share(image_id: &str) -> Call {
    Call::new("ap-guangzhou", image_id, Permission::Share)
}

#[tokio::test]
async fn refuses_bad_credentials_stale_timestamps_regions_and_ids_with_the_service_codes() {
    let sim = start(SimulatorConfig::default()).await;
    let http = reqwest::Client::new();

    let mut wrong_key = share("img-abcdefgh");
    wrong_key.credentials = Credentials::new("AKIDsimulator", "not-the-key", None);
    let mut unknown_id = share("img-abcdefgh");
    unknown_id.credentials = Credentials::new("AKIDnobody", "fake-key", None);
    let mut stale = share("img-abcdefgh");
    stale.timestamp -= 6 * 60;
    let unsupported = Call::new("ap-mars", "img-abcdefgh", Permission::Share);
    let malformed = share("img-BAD");

    for (call, expected) in [
        (wrong_key, "AuthFailure.SignatureFailure"),
        (unknown_id, "AuthFailure.SecretIdNotFound"),
        (stale, "AuthFailure.SignatureExpire"),
        (unsupported, "UnsupportedRegion"),
        (malformed, "InvalidParameterValue.InvalidImageIdMalformed"),
    ] {
        let (status, response) = call.send(&http, sim.addr()).await;
        assert_eq!(status, 200, "errors are answered with HTTP 200");
        assert_eq!(code(&response), expected);
        assert!(response["RequestId"].is_string());
    }
    assert_eq!(sim.stats().signature_failures, 1);
}

#[tokio::test]
async fn accepts_both_signed_header_forms() {
    let sim = start(SimulatorConfig::default()).await;
    let http = reqwest::Client::new();
    let plain = share("img-aaaaaaaa");
    let mut with_action = share("img-bbbbbbbb");
    with_action.signed_action = true;
    for call in [plain, with_action] {
        let (_, response) = call.send(&http, sim.addr()).await;
        assert_eq!(code(&response), "OK", "{response}");
    }
}

#[tokio::test]
async fn share_share_cancel_share_follow_the_image_state() {
    let sim = start(SimulatorConfig::default()).await;
    let http = reqwest::Client::new();
    let image = "img-12345678";
    let cancel = Call::new("ap-guangzhou", image, Permission::Cancel);
    let (_, first) = share(image).send(&http, sim.addr()).await;
    let (_, second) = share(image).send(&http, sim.addr()).await;
    let (_, third) = cancel.send(&http, sim.addr()).await;
    let (_, fourth) = share(image).send(&http, sim.addr()).await;
    let blueprint = first["BlueprintId"]
        .as_str()
        .expect("SHARE answers a BlueprintId");
    assert!(
        blueprint.starts_with("lhbp-") && blueprint.len() == 13,
        "{blueprint}"
    );
    assert_eq!(code(&second), "UnsupportedOperation.ImageAlreadyShared");
    assert_eq!(code(&third), "OK");
    assert!(
        third["BlueprintId"].is_null(),
        "CANCEL answers a null BlueprintId"
    );
    assert_eq!(
        fourth["BlueprintId"].as_str(),
        Some(blueprint),
        "stable per image"
    );
}

/// Sends `calls` all at once and returns the error codes answered.
async fn burst(addr: std::net::SocketAddr, calls: Vec<Call>) -> Vec<String> {
    let http = reqwest::Client::new();
    let sends = calls.into_iter().map(|call| {
        let http = http.clone();
        async move { code(&call.send(&http, addr).await.1) }
    });
    let mut codes = Vec::new();
    for handle in sends.map(tokio::spawn).collect::<Vec<_>>() {
        codes.push(handle.await.unwrap());
    }
    codes
}

/// 40 SHAREs of distinct images, alternating between two regions.
fn two_regions(prefix: &str) -> Vec<Call> {
    (0..40)
        .map(|i| {
            let region = ["ap-guangzhou", "ap-tokyo"][i % 2];
            Call::new(region, &format!("img-{prefix}{i:07}"), Permission::Share)
        })
        .collect()
}

#[tokio::test]
async fn the_window_admits_the_rate_per_region_and_refuses_the_excess() {
    let sim = start(SimulatorConfig::default()).await;
    let calls = (0..21).map(|i| share(&format!("img-a{i:07}"))).collect();
    let codes = burst(sim.addr(), calls).await;
    let limited = codes
        .iter()
        .filter(|c| *c == "RequestLimitExceeded")
        .count();
    assert_eq!(limited, 1, "{codes:?}");
    assert_eq!(sim.stats().max_window["ap-guangzhou"], 21);

    let sim = start(SimulatorConfig::default()).await;
    let calls = two_regions("b");
    let codes = burst(sim.addr(), calls).await;
    assert!(codes.iter().all(|c| c == "OK"), "{codes:?}");
    let stats = sim.stats();
    assert_eq!(stats.max_window["ap-guangzhou"], 20);
    assert_eq!(stats.max_window["ap-tokyo"], 20);

    let endpoint_scope = SimulatorConfig {
        rate_scope: RateScope::Endpoint,
        ..SimulatorConfig::default()
    };
    let sim = start(endpoint_scope).await;
    let calls = two_regions("c");
    let codes = burst(sim.addr(), calls).await;
    let limited = codes
        .iter()
        .filter(|c| *c == "RequestLimitExceeded")
        .count();
    assert_eq!(limited, 20, "one endpoint shares one budget: {codes:?}");
}

fn with_faults(faults: Faults) -> SimulatorConfig {
    SimulatorConfig {
        faults,
        ..SimulatorConfig::default()
    }
}

#[tokio::test]
async fn each_answering_fault_at_probability_one_produces_its_fault() {
    let http = reqwest::Client::new();
    let cases = [
        (
            Faults {
                occupied: 1.0,
                ..Faults::default()
            },
            "UnsupportedOperation.ImageOccupied",
        ),
        (
            Faults {
                internal_error: 1.0,
                ..Faults::default()
            },
            "InternalError",
        ),
        (
            Faults {
                missing: 1.0,
                ..Faults::default()
            },
            "ResourceNotFound.ImageIdNotFound",
        ),
    ];
    for (faults, expected) in cases {
        let sim = start(with_faults(faults)).await;
        let (status, response) = share("img-abcdefgh").send(&http, sim.addr()).await;
        assert_eq!((status, code(&response)), (200, expected.to_string()));
    }

    let sim = start(with_faults(Faults {
        http_error: 1.0,
        ..Faults::default()
    }))
    .await;
    let (status, response) = share("img-abcdefgh").send(&http, sim.addr()).await;
    assert_eq!(status, 503);
    assert!(
        response.as_str().unwrap().contains("<html>"),
        "an HTML body: {response}"
    );
}

/// A request whose connection the simulator drops: the client sees an error, no answer.
async fn send_expecting_no_answer(
    config: SimulatorConfig,
    timeout: std::time::Duration,
) -> reqwest::Error {
    let sim = start(config).await;
    let http = reqwest::Client::builder().timeout(timeout).build().unwrap();
    let body = share("img-abcdefgh").body;
    let request = signed(&http, sim.addr(), action::ACTION, "ap-guangzhou", body);
    let error = request.send().await.expect_err("no answer comes");
    assert_eq!(
        sim.stats().requests,
        1,
        "the request did reach the simulator"
    );
    error
}

#[tokio::test]
async fn reset_closes_the_connection_without_an_answer() {
    let error = send_expecting_no_answer(
        with_faults(Faults {
            reset: 1.0,
            ..Faults::default()
        }),
        std::time::Duration::from_secs(30),
    )
    .await;
    assert!(!error.is_timeout(), "closed, not timed out: {error:?}");
}

#[tokio::test]
async fn stall_keeps_the_request_unanswered() {
    let error = send_expecting_no_answer(
        with_faults(Faults {
            stall: 1.0,
            ..Faults::default()
        }),
        std::time::Duration::from_millis(300),
    )
    .await;
    assert!(error.is_timeout(), "{error:?}");
}

#[tokio::test]
async fn the_same_seed_gives_the_same_fault_sequence() {
    let faults = Faults {
        occupied: 0.3,
        internal_error: 0.3,
        unauthorized: 0.2,
        ..Faults::default()
    };
    let mut sequences = Vec::new();
    for seed in [7, 7, 8] {
        let sim = start(SimulatorConfig {
            faults: faults.clone(),
            seed,
            rate: 1000,
            ..SimulatorConfig::default()
        })
        .await;
        let http = reqwest::Client::new();
        let mut codes = Vec::new();
        for i in 0..40 {
            codes.push(code(
                &share(&format!("img-{i:08}"))
                    .send(&http, sim.addr())
                    .await
                    .1,
            ));
        }
        sequences.push(codes);
    }
    assert_eq!(sequences[0], sequences[1]);
    assert_ne!(sequences[0], sequences[2], "another seed, another sequence");
    assert!(sequences[0].iter().any(|c| c == "OK"));
    assert!(sequences[0].iter().any(|c| c == "InternalError"));
    assert!(
        sequences[0]
            .iter()
            .any(|c| c == "UnauthorizedOperation.NoPermission")
    );
}

#[tokio::test]
async fn garbage_gets_service_errors_and_the_server_keeps_serving() {
    let sim = start(SimulatorConfig::default()).await;
    let http = reqwest::Client::new();
    let url = sim.endpoint();

    let bare = http.post(&url).body("hello").send().await.unwrap();
    assert_eq!(bare.status(), 200);
    let bare: serde_json::Value = bare.json().await.unwrap();
    assert_eq!(bare["Response"]["Error"]["Code"], "MissingParameter");

    let mut not_json = share("img-abcdefgh");
    not_json.body = b"{not json".to_vec();
    assert_eq!(
        code(&not_json.send(&http, sim.addr()).await.1),
        "InvalidParameter"
    );

    let mut huge = share("img-abcdefgh");
    huge.body = vec![b' '; 1 << 20];
    assert_eq!(
        code(&huge.send(&http, sim.addr()).await.1),
        "RequestSizeLimitExceeded"
    );

    let mut unknown = share("img-abcdefgh");
    unknown.body = br#"{"ImageId":"img-abcdefgh","Permission":"SHARE","Extra":1}"#.to_vec();
    assert_eq!(
        code(&unknown.send(&http, sim.addr()).await.1),
        "UnknownParameter"
    );

    let wrong_path = http.post(format!("{url}/nope")).send().await.unwrap();
    assert_eq!(wrong_path.status(), 404);
    let wrong_method = http.get(&url).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);

    let (_, ok) = share("img-abcdefgh").send(&http, sim.addr()).await;
    assert_eq!(code(&ok), "OK", "still serving after all that");
    let stats: serde_json::Value = http
        .get(format!("{url}/__stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["answers"]["OK"], 1);
}

/// A request of `action` signed as the client signs it, ready to send.
pub(crate) fn signed(
    http: &reqwest::Client,
    addr: SocketAddr,
    action: &str,
    region: &str,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let host = addr.to_string();
    let headers = sign::headers(
        &simulator_credentials(),
        &sign::Request {
            host: &host,
            action,
            version: action::VERSION,
            region,
            body: &body,
            timestamp: unix_now(),
        },
    );
    let mut request = http.post(format!("http://{host}/")).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request
}

/// Sends a `DescribeBlueprints` with `body`; returns the `Response` object.
pub(crate) async fn describe(
    http: &reqwest::Client,
    addr: SocketAddr,
    region: &str,
    body: Value,
) -> Value {
    let body = serde_json::to_vec(&body).unwrap();
    let response = signed(http, addr, DESCRIBE_ACTION, region, body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["Response"].clone()
}

pub(crate) fn shared_only(offset: usize, limit: usize) -> Value {
    json!({
        "Filters": [{"Name": "blueprint-type", "Values": ["SHARED"]}],
        "Offset": offset,
        "Limit": limit,
    })
}

/// `n` seeded images in `region`.
fn seeded(region: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (region.to_string(), format!("img-s{i:07}")))
        .collect()
}

#[tokio::test]
async fn describe_pages_through_more_than_a_hundred_shared_images() {
    let mut shared = seeded("ap-guangzhou", 150);
    shared.extend(seeded("ap-tokyo", 3));
    let sim = start(SimulatorConfig {
        shared: shared.clone(),
        describe_rate: 1000,
        ..SimulatorConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let mut listed = Vec::new();
    for (offset, expected) in [(0, 100), (100, 50), (150, 0)] {
        let page = describe(&http, sim.addr(), "ap-guangzhou", shared_only(offset, 100)).await;
        assert_eq!(page["TotalCount"], 150, "{page}");
        let set = page["BlueprintSet"].as_array().unwrap();
        assert_eq!(set.len(), expected, "offset {offset}");
        listed.extend(
            set.iter()
                .map(|b| b["ImageId"].as_str().unwrap().to_string()),
        );
    }
    let mut expected: Vec<String> = shared[..150].iter().map(|(_, id)| id.clone()).collect();
    listed.sort();
    expected.sort();
    assert_eq!(
        listed, expected,
        "every image once, none from another region"
    );

    let small = describe(&http, sim.addr(), "ap-guangzhou", shared_only(148, 20)).await;
    assert_eq!(small["BlueprintSet"].as_array().unwrap().len(), 2);
    let all = describe(&http, sim.addr(), "ap-guangzhou", json!({})).await;
    assert!(all["TotalCount"].as_u64().unwrap() > 150, "public ones too");
    assert_eq!(
        all["BlueprintSet"].as_array().unwrap().len(),
        20,
        "Limit defaults to 20"
    );
}

#[tokio::test]
async fn describe_refuses_bad_parameters_with_the_service_codes() {
    let sim = start(SimulatorConfig::default()).await;
    let http = reqwest::Client::new();
    let filter = |name: &str| json!([{"Name": name, "Values": ["x"]}]);
    for (body, expected) in [
        (
            json!({"BlueprintIds": ["lhbp-aaaaaaaa"], "Filters": filter("blueprint-name")}),
            "InvalidParameter.ParameterConflict",
        ),
        (
            json!({"Filters": filter("image-id")}),
            "InvalidParameter.InvalidFilterNotSupportedName",
        ),
        (json!({"Limit": 101}), "InvalidParameterValue.OutOfRange"),
        (
            json!({"Limit": 100, "ImageId": "img-abcdefgh"}),
            "UnknownParameter",
        ),
    ] {
        let response = describe(&http, sim.addr(), "ap-guangzhou", body.clone()).await;
        assert_eq!(code(&response), expected, "{body}");
        assert!(response["RequestId"].is_string());
    }
    let stats = sim.stats();
    assert_eq!(stats.requests_by_action[DESCRIBE_ACTION], 4);
    assert_eq!(
        stats.answers_by_action[DESCRIBE_ACTION]["UnknownParameter"],
        1
    );
}

/// Every field of the API's `Blueprint` structure.
const BLUEPRINT_FIELDS: [&str; 22] = [
    "BlueprintId",
    "DisplayTitle",
    "DisplayVersion",
    "Description",
    "OsName",
    "Platform",
    "PlatformType",
    "BlueprintType",
    "ImageUrl",
    "RequiredSystemDiskSize",
    "BlueprintState",
    "CreatedTime",
    "BlueprintName",
    "SupportAutomationTools",
    "RequiredMemorySize",
    "ImageId",
    "CommunityUrl",
    "GuideUrl",
    "SceneIdSet",
    "DockerVersion",
    "BlueprintShared",
    "Tags",
];

#[tokio::test]
async fn describe_lists_public_blueprints_and_each_share_with_its_blueprint_id() {
    let sim = start(SimulatorConfig::default()).await;
    let http = reqwest::Client::new();
    let (_, shared) = share("img-abcdefgh").send(&http, sim.addr()).await;
    let blueprint_id = shared["BlueprintId"].as_str().unwrap();

    let all = describe(&http, sim.addr(), "ap-guangzhou", json!({"Limit": 100})).await;
    let set = all["BlueprintSet"].as_array().unwrap();
    assert_eq!(all["TotalCount"].as_u64(), Some(set.len() as u64));
    for blueprint in set {
        for field in BLUEPRINT_FIELDS {
            assert!(
                blueprint.get(field).is_some(),
                "{field} missing: {blueprint}"
            );
        }
    }
    let of_type = |kind: &str| {
        set.iter()
            .filter(|b| b["BlueprintType"] == kind)
            .collect::<Vec<_>>()
    };
    for kind in ["APP_OS", "PURE_OS"] {
        assert!(!of_type(kind).is_empty(), "a public {kind} blueprint");
        assert!(of_type(kind).iter().all(|b| b["ImageId"].is_null()));
    }
    let [shared] = of_type("SHARED")[..] else {
        panic!("one SHARED blueprint: {all}");
    };
    assert_eq!(shared["ImageId"], "img-abcdefgh");
    assert_eq!(
        shared["BlueprintId"], blueprint_id,
        "the share's BlueprintId"
    );
    let ids: Vec<&str> = set
        .iter()
        .map(|b| b["BlueprintId"].as_str().unwrap())
        .collect();
    assert!(ids.is_sorted(), "a stable order for paging: {ids:?}");

    let by_id = describe(
        &http,
        sim.addr(),
        "ap-guangzhou",
        json!({"BlueprintIds": [blueprint_id]}),
    )
    .await;
    assert_eq!(by_id["BlueprintSet"][0]["ImageId"], "img-abcdefgh");
    let elsewhere = describe(&http, sim.addr(), "ap-tokyo", shared_only(0, 100)).await;
    assert_eq!(elsewhere["TotalCount"], 0, "shared in one region only");

    let cancel = Call::new("ap-guangzhou", "img-abcdefgh", Permission::Cancel);
    assert_eq!(code(&cancel.send(&http, sim.addr()).await.1), "OK");
    let after = describe(&http, sim.addr(), "ap-guangzhou", shared_only(0, 100)).await;
    assert_eq!(after["TotalCount"], 0, "CANCEL unshares: {after}");
}

#[tokio::test]
async fn describe_has_its_own_window_of_ten_per_bucket() {
    let sim = start(SimulatorConfig::default()).await;
    let http = reqwest::Client::new();
    let sends = (0..11).map(|_| {
        let http = http.clone();
        let addr = sim.addr();
        tokio::spawn(async move { code(&describe(&http, addr, "ap-guangzhou", json!({})).await) })
    });
    let mut codes = Vec::new();
    for send in sends.collect::<Vec<_>>() {
        codes.push(send.await.unwrap());
    }
    let limited = codes
        .iter()
        .filter(|c| *c == "RequestLimitExceeded")
        .count();
    assert_eq!(limited, 1, "{codes:?}");
    let (_, shared) = share("img-abcdefgh").send(&http, sim.addr()).await;
    assert_eq!(code(&shared), "OK", "the share's limit is another");
    let stats = sim.stats();
    assert_eq!(stats.max_window_describe["ap-guangzhou"], 11);
    assert_eq!(stats.max_window["ap-guangzhou"], 1);
}

/// At a limit of 1/s, one admitted request and then two seconds of back-to-back requests:
/// how many of those were admitted. Under `admitted`, the window frees a second after the first
/// request; under `all`, every refusal keeps it full for another second.
async fn admitted_while_knocking(count: Count) -> usize {
    let sim = start(SimulatorConfig {
        rate: 1,
        count,
        ..SimulatorConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let (_, first) = share("img-00000000").send(&http, sim.addr()).await;
    assert_eq!(code(&first), "OK");
    let start = Instant::now();
    let mut admitted = 0;
    for i in 1.. {
        if start.elapsed() > Duration::from_secs(2) {
            break;
        }
        let (_, answer) = share(&format!("img-{i:08}")).send(&http, sim.addr()).await;
        match code(&answer).as_str() {
            "OK" => admitted += 1,
            "RequestLimitExceeded" => {}
            other => panic!("{other}"),
        }
    }
    admitted
}

#[tokio::test]
async fn count_all_keeps_a_knocking_client_out_and_count_admitted_does_not() {
    let (admitted, all) = tokio::join!(
        admitted_while_knocking(Count::Admitted),
        admitted_while_knocking(Count::All)
    );
    assert!(admitted >= 1, "the window freed a second after the first");
    assert_eq!(all, 0, "every refusal used up the window");
}

#[tokio::test]
async fn images_from_the_seed_are_shared_from_the_start() {
    let sim = start(SimulatorConfig {
        shared: vec![("AP-Guangzhou".to_string(), "img-abcdefgh".to_string())],
        ..SimulatorConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let listed = describe(&http, sim.addr(), "ap-guangzhou", shared_only(0, 100)).await;
    assert_eq!(
        listed["BlueprintSet"][0]["ImageId"], "img-abcdefgh",
        "{listed}"
    );
    let (_, again) = share("img-abcdefgh").send(&http, sim.addr()).await;
    assert_eq!(code(&again), "UnsupportedOperation.ImageAlreadyShared");
    let cancel = Call::new("ap-guangzhou", "img-abcdefgh", Permission::Cancel);
    assert_eq!(code(&cancel.send(&http, sim.addr()).await.1), "OK");
    let (_, shared) = share("img-abcdefgh").send(&http, sim.addr()).await;
    assert_eq!(
        shared["BlueprintId"],
        listed["BlueprintSet"][0]["BlueprintId"]
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad_seed = SimulatorConfig {
        shared: vec![("ap-mars".to_string(), "img-abcdefgh".to_string())],
        ..SimulatorConfig::default()
    };
    let error = lighthouse_share::simulator::Simulator::start(listener, bad_seed)
        .err()
        .expect("an unsupported region in the seed is refused");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

fn simulate(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lighthouse-share"))
        .arg("simulate")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn simulate_names_the_bad_line_of_a_seed_file_and_documents_its_stats() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shared.csv");
    std::fs::write(
        &file,
        "region,image_id\nap-tokyo,img-abcdefgh\n\nap-tokyo,img-BAD\n",
    )
    .unwrap();
    let output = simulate(&[
        "--listen",
        "127.0.0.1:0",
        "--shared",
        file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 4"), "{stderr}");

    let help = simulate(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "GET /__stats",
        "max_in_flight_per_image",
        "--count",
        "--describe-rate",
    ] {
        assert!(help.contains(needle), "{needle} in {help}");
    }
}

/// Sends `calls`, one after another or all at once, to a simulator that answers each after
/// 200 ms; returns the most requests it saw in flight for one image.
async fn max_in_flight(calls: Vec<Call>, concurrently: bool) -> u64 {
    let sim = start(SimulatorConfig {
        latency_ms: (200, 200),
        rate: 1000,
        ..SimulatorConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    if concurrently {
        let addr = sim.addr();
        let sends: Vec<_> = calls
            .into_iter()
            .map(|call| {
                let http = http.clone();
                tokio::spawn(async move { call.send(&http, addr).await })
            })
            .collect();
        for send in sends {
            send.await.unwrap();
        }
    } else {
        for call in &calls {
            call.send(&http, sim.addr()).await;
        }
    }
    sim.stats().max_in_flight_per_image
}

#[tokio::test]
async fn max_in_flight_per_image_counts_overlapping_requests_of_one_image() {
    let one_image = || -> Vec<Call> {
        [
            Permission::Share,
            Permission::Cancel,
            Permission::Share,
            Permission::Cancel,
        ]
        .into_iter()
        .map(|p| Call::new("ap-guangzhou", "img-abcdefgh", p))
        .collect()
    };
    let distinct: Vec<Call> = (0..4).map(|i| share(&format!("img-d{i:07}"))).collect();
    let (sequential, concurrent, spread) = tokio::join!(
        max_in_flight(one_image(), false),
        max_in_flight(one_image(), true),
        max_in_flight(distinct, true),
    );
    assert_eq!(sequential, 1);
    assert!(concurrent > 1, "{concurrent}");
    assert_eq!(spread, 1, "other images do not count");
}

#[tokio::test]
async fn connect_latency_delays_only_the_first_request_of_a_connection() {
    let latency = Duration::from_millis(800);
    let sim = start(SimulatorConfig {
        connect_latency: latency,
        rate: 1000,
        ..SimulatorConfig::default()
    })
    .await;
    let addr = sim.addr();
    let timed = |http: reqwest::Client, image: &'static str| async move {
        let start = Instant::now();
        let (_, answer) = share(image).send(&http, addr).await;
        assert_eq!(code(&answer), "OK");
        start.elapsed()
    };
    let http = reqwest::Client::new();
    assert!(timed(http.clone(), "img-aaaaaaaa").await >= latency);
    assert!(
        timed(http.clone(), "img-bbbbbbbb").await < latency,
        "the same connection"
    );
    assert_eq!(sim.stats().connections, 1);
    assert!(
        timed(reqwest::Client::new(), "img-cccccccc").await >= latency,
        "a new connection pays again"
    );
    assert_eq!(sim.stats().connections, 2);
}

#[tokio::test]
async fn unauthorized_faults_name_the_cam_action_they_lack() {
    let http = reqwest::Client::new();
    let share_denied = start(with_faults(Faults {
        unauthorized: 1.0,
        ..Faults::default()
    }))
    .await;
    let (_, denied) = share("img-abcdefgh").send(&http, share_denied.addr()).await;
    assert_eq!(code(&denied), "UnauthorizedOperation.NoPermission");
    let message = denied["Error"]["Message"].as_str().unwrap();
    assert!(
        message.contains("lighthouse:ModifyImageSharePermission"),
        "{message}"
    );
    let listed = describe(&http, share_denied.addr(), "ap-guangzhou", json!({})).await;
    assert_eq!(code(&listed), "OK", "the look-up is allowed");

    let describe_denied = start(with_faults(Faults {
        unauthorized_describe: true,
        ..Faults::default()
    }))
    .await;
    let denied = describe(&http, describe_denied.addr(), "ap-guangzhou", json!({})).await;
    assert_eq!(code(&denied), "UnauthorizedOperation.NoPermission");
    let message = denied["Error"]["Message"].as_str().unwrap();
    assert!(
        message.contains("lighthouse:DescribeBlueprints"),
        "{message}"
    );
    let (_, shared) = share("img-abcdefgh")
        .send(&http, describe_denied.addr())
        .await;
    assert_eq!(code(&shared), "OK", "the share is allowed");
}
