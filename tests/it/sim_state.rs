//! The simulator's account: `DescribeImagesToShare` over seeded images (and the writes agreeing
//! with it), the out-of-band `/__state` requests, and the broken listings of
//! `--describe-fault`.

use std::net::SocketAddr;

use lighthouse_share::action::Permission;
use lighthouse_share::simulator::{
    DescribeFault, Faults, IMAGES_ACTION, SeededImage, SimulatorConfig,
};
use serde_json::{Value, json};

use crate::common::{Call, code, start};
use crate::simulator::{describe, shared_only, signed};

/// Sends a `DescribeImagesToShare` with `body`; returns the `Response` object.
async fn images(http: &reqwest::Client, addr: SocketAddr, region: &str, body: Value) -> Value {
    let body = serde_json::to_vec(&body).unwrap();
    let response = signed(http, addr, IMAGES_ACTION, region, body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["Response"].clone()
}

fn ids(answer: &Value) -> Vec<String> {
    answer["ImageSet"]
        .as_array()
        .unwrap_or_else(|| panic!("an ImageSet in {answer}"))
        .iter()
        .map(|image| image["ImageId"].as_str().unwrap().to_string())
        .collect()
}

fn unshareable(region: &str, image_id: &str, reason: &str) -> SeededImage {
    SeededImage {
        unshareable_reason: Some(reason.to_string()),
        ..SeededImage::new(region, image_id)
    }
}

/// 120 shareable images in Guangzhou, one not shareable, one syncing, one in Tokyo only.
fn seeded() -> SimulatorConfig {
    let mut images: Vec<SeededImage> = (0..120)
        .map(|i| SeededImage::new("ap-guangzhou", &format!("img-g{i:07}")))
        .collect();
    images.push(unshareable(
        "ap-guangzhou",
        "img-nosharex",
        "imported image\u{1b}[31m, cannot be shared",
    ));
    images.push(SeededImage {
        state: "SYNCING".to_string(),
        ..SeededImage::new("ap-guangzhou", "img-syncingx")
    });
    images.push(SeededImage::new("ap-tokyo", "img-tokyoxxx"));
    SimulatorConfig {
        images: Some(images),
        images_rate: 1000,
        describe_rate: 1000,
        rate: 1000,
        ..SimulatorConfig::default()
    }
}

#[tokio::test]
async fn images_to_share_lists_the_seeded_images_of_the_region_page_by_page() {
    let sim = start(seeded()).await;
    let http = reqwest::Client::new();
    let mut listed = Vec::new();
    for (offset, expected) in [(0, 100), (100, 22), (122, 0)] {
        let page = images(
            &http,
            sim.addr(),
            "ap-guangzhou",
            json!({"Offset": offset, "Limit": 100}),
        )
        .await;
        assert_eq!(page["TotalCount"], 122, "{page}");
        assert_eq!(ids(&page).len(), expected, "offset {offset}");
        listed.extend(ids(&page));
    }
    assert!(
        !listed.contains(&"img-tokyoxxx".to_string()),
        "Tokyo's image stays there"
    );
    let mut sorted = listed.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 122, "every image once");
    let default = images(&http, sim.addr(), "ap-guangzhou", json!({})).await;
    assert_eq!(ids(&default).len(), 20, "Limit defaults to 20");
    let tokyo = images(&http, sim.addr(), "ap-tokyo", json!({})).await;
    assert_eq!(ids(&tokyo), ["img-tokyoxxx"]);
}

#[tokio::test]
async fn images_to_share_answers_every_field_and_why_an_image_cannot_be_shared() {
    let sim = start(seeded()).await;
    let http = reqwest::Client::new();
    let asked =
        json!({"ImageIds": ["img-nosharex", "img-syncingx", "img-g0000000", "img-tokyoxxx"]});
    let answer = images(&http, sim.addr(), "ap-guangzhou", asked).await;
    assert_eq!(
        answer["TotalCount"], 3,
        "the Tokyo image is absent: {answer}"
    );
    let set = answer["ImageSet"].as_array().unwrap();
    let fields = [
        "ImageId",
        "ImageName",
        "ImageType",
        "ImageState",
        "ImageSource",
        "ImageClass",
        "ImageSize",
        "CreatedTime",
        "IsSupportCloudinit",
        "Architecture",
        "OsName",
        "Platform",
        "IsShareable",
        "UnshareableReason",
    ];
    for image in set {
        for field in fields {
            assert!(image.get(field).is_some(), "{field} in {image}");
        }
    }
    let by_id = |id: &str| set.iter().find(|i| i["ImageId"] == id).unwrap().clone();
    let normal = by_id("img-g0000000");
    assert_eq!(
        (&normal["IsShareable"], &normal["ImageState"]),
        (&json!(true), &json!("NORMAL"))
    );
    let refused = by_id("img-nosharex");
    assert_eq!(refused["IsShareable"], false);
    assert_eq!(
        refused["UnshareableReason"], "imported image\u{1b}[31m, cannot be shared",
        "the reason is the service's text, control characters and all"
    );
    let syncing = by_id("img-syncingx");
    assert_eq!(
        (&syncing["IsShareable"], &syncing["ImageState"]),
        (&json!(false), &json!("SYNCING"))
    );
    assert!(
        syncing["UnshareableReason"]
            .as_str()
            .unwrap()
            .contains("SYNCING")
    );
}

#[tokio::test]
async fn images_to_share_filters_and_refuses_as_the_service_does() {
    let sim = start(seeded()).await;
    let http = reqwest::Client::new();
    let filter = |name: &str, values: Value| json!({"Filters": [{"Name": name, "Values": values}]});
    let by_id = images(
        &http,
        sim.addr(),
        "ap-guangzhou",
        filter("image-id", json!(["img-g0000001", "img-tokyoxxx"])),
    )
    .await;
    assert_eq!(ids(&by_id), ["img-g0000001"]);
    let by_name = images(
        &http,
        sim.addr(),
        "ap-guangzhou",
        filter("image-name", json!(["img-g0000002"])),
    )
    .await;
    assert_eq!(ids(&by_name), ["img-g0000002"]);
    let by_type = images(
        &http,
        sim.addr(),
        "ap-guangzhou",
        filter("image-type", json!(["PRIVATE_IMAGE"])),
    )
    .await;
    assert_eq!(by_type["TotalCount"], 122);
    let six = json!(["img-a", "img-b", "img-c", "img-d", "img-e", "img-f"]);
    for (body, expected) in [
        (
            json!({"ImageIds": ["img-g0000001"], "Filters": []}),
            "InvalidParameter.ParameterConflict",
        ),
        (
            filter("image-state", json!(["NORMAL"])),
            "InvalidParameter.InvalidFilterNotSupportedName",
        ),
        (
            filter("image-id", six),
            "InvalidParameter.FilterValueLimitExceeded",
        ),
        (json!({"Limit": 101}), "InvalidParameterValue.OutOfRange"),
        (json!({"Offset": -1}), "InvalidParameterValue.Negative"),
        (
            json!({"ImageIds": ["img-BAD"]}),
            "InvalidParameterValue.InvalidImageIdMalformed",
        ),
        (json!({"BlueprintIds": []}), "UnknownParameter"),
    ] {
        let answer = images(&http, sim.addr(), "ap-guangzhou", body.clone()).await;
        assert_eq!(code(&answer), expected, "{body}: {answer}");
    }
}

#[tokio::test]
async fn without_a_seed_every_named_image_exists_and_is_shareable() {
    let sim = start(SimulatorConfig::default()).await;
    let http = reqwest::Client::new();
    let none = images(&http, sim.addr(), "ap-tokyo", json!({})).await;
    assert_eq!(
        none["TotalCount"], 0,
        "nothing named, nothing shared: {none}"
    );
    let named = images(
        &http,
        sim.addr(),
        "ap-tokyo",
        json!({"ImageIds": ["img-abcdefgh"]}),
    )
    .await;
    assert_eq!(ids(&named), ["img-abcdefgh"]);
    assert_eq!(named["ImageSet"][0]["IsShareable"], true);
    let shared = Call::new("ap-tokyo", "img-zzzzzzzz", Permission::Share);
    assert_eq!(code(&shared.send(&http, sim.addr()).await.1), "OK");
    let listed = images(&http, sim.addr(), "ap-tokyo", json!({})).await;
    assert_eq!(ids(&listed), ["img-zzzzzzzz"], "a shared image is known");
}

#[tokio::test]
async fn with_a_seed_the_writes_agree_with_the_listing() {
    let sim = start(seeded()).await;
    let http = reqwest::Client::new();
    let send = |region: &str, image: &str, permission| {
        let call = Call::new(region, image, permission);
        let http = http.clone();
        let addr = sim.addr();
        async move { code(&call.send(&http, addr).await.1) }
    };
    use Permission::{Cancel, Share};
    for (region, image, permission, expected) in [
        ("ap-guangzhou", "img-g0000000", Share, "OK"),
        (
            "ap-guangzhou",
            "img-tokyoxxx",
            Share,
            "ResourceNotFound.ImageIdNotFound",
        ),
        (
            "ap-guangzhou",
            "img-tokyoxxx",
            Cancel,
            "ResourceNotFound.ImageIdNotFound",
        ),
        ("ap-tokyo", "img-tokyoxxx", Share, "OK"),
        (
            "ap-guangzhou",
            "img-nosharex",
            Share,
            "UnsupportedOperation.ImageUnableToShare",
        ),
        (
            "ap-guangzhou",
            "img-syncingx",
            Share,
            "UnsupportedOperation.ImageUnableToShare",
        ),
        ("ap-guangzhou", "img-nosharex", Cancel, "OK"),
    ] {
        assert_eq!(
            send(region, image, permission).await,
            expected,
            "{permission:?} {region} {image}"
        );
    }
}

#[tokio::test]
async fn images_to_share_has_its_own_window_per_bucket() {
    assert_eq!(
        SimulatorConfig::default().images_rate,
        20,
        "the documented limit"
    );
    // A small limit keeps the burst inside one second even on a loaded machine.
    let sim = start(SimulatorConfig {
        images_rate: 3,
        ..SimulatorConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let sends: Vec<_> = (0..4)
        .map(|_| {
            let http = http.clone();
            let addr = sim.addr();
            tokio::spawn(async move { code(&images(&http, addr, "ap-guangzhou", json!({})).await) })
        })
        .collect();
    let mut codes = Vec::new();
    for send in sends {
        codes.push(send.await.unwrap());
    }
    let limited = codes
        .iter()
        .filter(|c| *c == "RequestLimitExceeded")
        .count();
    assert_eq!(limited, 1, "{codes:?}");
    let (_, shared) = Call::new("ap-guangzhou", "img-abcdefgh", Permission::Share)
        .send(&http, sim.addr())
        .await;
    assert_eq!(code(&shared), "OK", "the share's limit is another");
    let stats = sim.stats();
    assert_eq!(stats.requests_by_action[IMAGES_ACTION], 4);
    assert_eq!(stats.max_window_by_action[IMAGES_ACTION]["ap-guangzhou"], 4);
    assert_eq!(
        stats.max_window_by_action["ModifyImageSharePermission"]["ap-guangzhou"],
        1
    );
    assert_eq!(
        stats.answers_by_action[IMAGES_ACTION]["RequestLimitExceeded"],
        1
    );
}

/// `POST /__state` with `body`: the HTTP status and the JSON answer.
async fn set_state(http: &reqwest::Client, addr: SocketAddr, body: &str) -> (u16, Value) {
    let response = http
        .post(format!("http://{addr}/__state"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn get_state(http: &reqwest::Client, addr: SocketAddr) -> Value {
    let response = http
        .get(format!("http://{addr}/__state"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn state_changes_out_of_band_as_another_tool_would() {
    let sim = start(SimulatorConfig::default()).await;
    let http = reqwest::Client::new();
    let addr = sim.addr();
    let share_body = r#"{"region": "AP-Guangzhou", "image_id": "img-outofbdx", "shared": true}"#;
    let (status, shared) = set_state(&http, addr, share_body).await;
    assert_eq!(status, 200, "{shared}");
    assert_eq!(shared["region"], "ap-guangzhou");
    assert_eq!(shared["shared"], true);
    let blueprint = shared["blueprint_id"].as_str().unwrap().to_string();
    assert_eq!(
        set_state(&http, addr, share_body).await.1,
        shared,
        "sharing twice changes nothing"
    );

    let listed = describe(&http, addr, "ap-guangzhou", shared_only(0, 100)).await;
    assert_eq!(
        listed["BlueprintSet"][0]["ImageId"], "img-outofbdx",
        "{listed}"
    );
    assert_eq!(listed["BlueprintSet"][0]["BlueprintId"], blueprint.as_str());
    let again = Call::new("ap-guangzhou", "img-outofbdx", Permission::Share);
    assert_eq!(
        code(&again.send(&http, addr).await.1),
        "UnsupportedOperation.ImageAlreadyShared"
    );
    assert_eq!(
        get_state(&http, addr).await,
        json!({"shared": {"ap-guangzhou": {"img-outofbdx": blueprint}}})
    );

    let unshare = r#"{"region": "ap-guangzhou", "image_id": "img-outofbdx", "shared": false}"#;
    let (status, unshared) = set_state(&http, addr, unshare).await;
    assert_eq!(
        (status, &unshared["blueprint_id"]),
        (200, &Value::Null),
        "{unshared}"
    );
    assert_eq!(get_state(&http, addr).await, json!({"shared": {}}));
    let (_, reshared) = again.send(&http, addr).await;
    assert_eq!(
        reshared["BlueprintId"],
        blueprint.as_str(),
        "the BlueprintId is stable"
    );
    assert_eq!(
        sim.stats().requests,
        3,
        "admin requests are not API requests: {:?}",
        sim.stats().requests_by_action
    );
}

#[tokio::test]
async fn state_changes_are_refused_as_the_account_would_refuse_them() {
    let sim = start(seeded()).await;
    let http = reqwest::Client::new();
    let addr = sim.addr();
    for (body, status, error) in [
        (r#"{"region": "ap-guangzhou"}"#, 400, "InvalidRequest"),
        (
            r#"{"region": "ap-mars", "image_id": "img-g0000000", "shared": true}"#,
            400,
            "InvalidRequest",
        ),
        (
            r#"{"region": "ap-guangzhou", "image_id": "img-BAD", "shared": true}"#,
            400,
            "InvalidRequest",
        ),
        (
            r#"{"region": "ap-guangzhou", "image_id": "img-tokyoxxx", "shared": true}"#,
            404,
            "ResourceNotFound.ImageIdNotFound",
        ),
        (
            r#"{"region": "ap-guangzhou", "image_id": "img-nosharex", "shared": true}"#,
            409,
            "UnsupportedOperation.ImageUnableToShare",
        ),
    ] {
        let (got, answer) = set_state(&http, addr, body).await;
        assert_eq!(
            (got, answer["Error"]["Code"].as_str()),
            (status, Some(error)),
            "{body}: {answer}"
        );
    }
    assert_eq!(get_state(&http, addr).await, json!({"shared": {}}));
}

/// A simulator with 150 images shared in Guangzhou and the listing faults `faults`.
async fn broken_listing(
    faults: Vec<DescribeFault>,
) -> lighthouse_share::simulator::SimulatorHandle {
    start(SimulatorConfig {
        shared: (0..150)
            .map(|i| ("ap-guangzhou".to_string(), format!("img-s{i:07}")))
            .collect(),
        describe_rate: 1000,
        faults: Faults {
            describe: faults,
            ..Faults::default()
        },
        ..SimulatorConfig::default()
    })
    .await
}

fn blueprint_ids(page: &Value) -> Vec<String> {
    page["BlueprintSet"]
        .as_array()
        .unwrap_or_else(|| panic!("a BlueprintSet in {page}"))
        .iter()
        .map(|b| b["BlueprintId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn empty_first_answers_an_empty_first_page_while_the_total_says_more() {
    let http = reqwest::Client::new();
    let sim = broken_listing(vec![DescribeFault::EmptyFirst(None)]).await;
    for _ in 0..2 {
        let first = describe(&http, sim.addr(), "ap-guangzhou", shared_only(0, 100)).await;
        assert_eq!(
            (first["TotalCount"].as_u64(), blueprint_ids(&first).len()),
            (Some(150), 0)
        );
    }
    let second = describe(&http, sim.addr(), "ap-guangzhou", shared_only(100, 100)).await;
    assert_eq!(blueprint_ids(&second).len(), 50, "later pages are whole");

    let sim = broken_listing(vec![DescribeFault::EmptyFirst(Some(1))]).await;
    let first = describe(&http, sim.addr(), "ap-guangzhou", shared_only(0, 100)).await;
    assert!(blueprint_ids(&first).is_empty(), "{first}");
    let tokyo = describe(&http, sim.addr(), "ap-tokyo", json!({"Offset": 0})).await;
    assert!(
        blueprint_ids(&tokyo).is_empty(),
        "counted per region: {tokyo}"
    );
    let retried = describe(&http, sim.addr(), "ap-guangzhou", shared_only(0, 100)).await;
    assert_eq!(blueprint_ids(&retried).len(), 100, "the failover is over");
}

#[tokio::test]
async fn repeat_page_and_total_bend_the_listing_as_asked() {
    let http = reqwest::Client::new();
    let sim = broken_listing(vec![
        DescribeFault::RepeatPage,
        DescribeFault::Total(1_000_000_000),
    ])
    .await;
    let first = describe(&http, sim.addr(), "ap-guangzhou", shared_only(0, 100)).await;
    let later = describe(&http, sim.addr(), "ap-guangzhou", shared_only(500, 100)).await;
    assert_eq!(blueprint_ids(&first).len(), 100);
    assert_eq!(
        blueprint_ids(&later),
        blueprint_ids(&first),
        "every Offset answers the first page"
    );
    assert_eq!(later["TotalCount"], 1_000_000_000u64);

    let sim = broken_listing(vec![DescribeFault::Total(3)]).await;
    let page = describe(&http, sim.addr(), "ap-guangzhou", shared_only(100, 100)).await;
    assert_eq!(
        (page["TotalCount"].as_u64(), blueprint_ids(&page).len()),
        (Some(3), 50)
    );
}

fn simulate(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lighthouse-share"))
        .arg("simulate")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn simulate_names_a_bad_images_line_a_bad_listing_fault_and_documents_the_aids() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("images.csv");
    std::fs::write(
        &file,
        "region,image_id,state,reason\nap-tokyo,img-abcdefgh\nap-tokyo,img-bbbbbbbb,ASLEEP\n",
    )
    .unwrap();
    let output = simulate(&[
        "--listen",
        "127.0.0.1:0",
        "--images",
        file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("line 3") && stderr.contains("ASLEEP"),
        "{stderr}"
    );

    let output = simulate(&["--listen", "127.0.0.1:0", "--describe-fault", "sometimes"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("repeat-page"), "the fix is named: {stderr}");

    let help = simulate(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "--images",
        "--images-rate",
        "--describe-fault",
        "GET /__state",
        "POST /__state",
    ] {
        assert!(help.contains(needle), "{needle} in {help}");
    }
}
