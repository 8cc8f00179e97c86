//! The simulator answers as the service does.

use lighthouse_share::action::{Permission, RateScope};
use lighthouse_share::credentials::Credentials;
use lighthouse_share::simulator::{Faults, SimulatorConfig};

use crate::common::{Call, code, start};

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
    let call = share("img-abcdefgh");
    let body = call.body.clone();
    let host = sim.addr().to_string();
    let headers = lighthouse_share::sign::headers(
        &call.credentials,
        &lighthouse_share::sign::Request {
            host: &host,
            action: lighthouse_share::action::ACTION,
            version: lighthouse_share::action::VERSION,
            region: "ap-guangzhou",
            body: &body,
            timestamp: call.timestamp,
        },
    );
    let mut request = http.post(format!("http://{host}/")).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
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
