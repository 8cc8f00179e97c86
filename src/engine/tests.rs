//! The engine on tokio's paused clock, with a scripted transport: every answer, delay and
//! send time is decided by the test, so these run in milliseconds and cannot flake.

use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::action::Permission;
use crate::actions::{Blueprints, DescribeBlueprints, Kind, Share};
use crate::api::{BoxFuture, Request, Signed};
use crate::retry::Backoff;

const POLICY: Policy = Policy {
    max_attempts: 4,
    backoff: Backoff {
        base: Duration::from_millis(500),
        max: Duration::from_secs(20),
    },
    max_throttled: Duration::from_secs(300),
};

/// What the fake answers to the n-th request (counting from 0) of an action.
type Script = Box<dyn Fn(&Request, usize) -> Result<Vec<u8>, Fault> + Send + Sync>;

/// A transport whose answers follow a script, each after `latency`; it keeps when each
/// request was sent.
struct Fake {
    script: Script,
    latency: Duration,
    sent: Mutex<Vec<(Instant, Request)>>,
}

impl Fake {
    fn new(
        script: impl Fn(&Request, usize) -> Result<Vec<u8>, Fault> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            latency: Duration::from_millis(40),
            sent: Mutex::new(Vec::new()),
        })
    }

    fn times(&self) -> Vec<Instant> {
        self.sent.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }
}

impl Transport for Fake {
    fn sign(&self, request: Request) -> BoxFuture<'_, Result<Signed, Fault>> {
        Box::pin(async move {
            Ok(Signed {
                request,
                headers: Vec::new(),
            })
        })
    }

    fn send(&self, signed: Signed) -> BoxFuture<'_, Result<Vec<u8>, Fault>> {
        Box::pin(async move {
            let n = {
                let mut sent = self.sent.lock().unwrap();
                sent.push((Instant::now(), signed.request.clone()));
                sent.len() - 1
            };
            tokio::time::sleep(self.latency).await;
            (self.script)(&signed.request, n)
        })
    }

    fn warm(&self, _region: &'static str, _n: usize) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

fn ok() -> Result<Vec<u8>, Fault> {
    Ok(br#"{"Response":{"BlueprintId":"lhbp-aaaaaaaa","RequestId":"ok"}}"#.to_vec())
}

fn code(code: &str) -> Result<Vec<u8>, Fault> {
    Ok(format!(r#"{{"Response":{{"Error":{{"Code":"{code}"}},"RequestId":"e"}}}}"#).into_bytes())
}

fn engine(fake: &Arc<Fake>) -> Engine {
    let mut engine = Engine::new(fake.clone(), POLICY, Stop::default());
    engine.jitter = || 0.5;
    engine
}

fn share(image: usize) -> Share {
    Share {
        region: "ap-seoul",
        image_id: format!("img-{image:08}"),
        permission: Permission::Share,
    }
}

/// The most sends inside any one-second window.
fn busiest_second(times: &[Instant]) -> usize {
    let mut times = times.to_vec();
    times.sort();
    let mut first = 0;
    let mut most = 0;
    for (last, t) in times.iter().enumerate() {
        while *t - times[first] >= Duration::from_secs(1) {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

/// Runs `n` calls at once through one lane; returns how each ended.
async fn calls(
    engine: &Arc<Engine>,
    lane: &Arc<Lane>,
    n: usize,
) -> Vec<Ended<crate::actions::Shared>> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (engine, lane) = (engine.clone(), lane.clone());
        tasks.spawn(async move { engine.call(&lane, &share(i)).await });
    }
    tasks.join_all().await
}

#[tokio::test(start_paused = true)]
async fn no_second_holds_more_than_the_rate_while_throttling_moves_it() {
    // Every 7th request is refused: the rate goes down and climbs back all the time.
    let fake = Fake::new(|_, n| match n % 7 {
        3 => code("RequestLimitExceeded"),
        _ => ok(),
    });
    let engine = Arc::new(engine(&fake));
    let lane = Arc::new(Lane::new("ap-seoul", Kind::Share, 20.0, 32));
    let ended = calls(&engine, &lane, 300).await;
    assert!(
        ended.iter().all(|e| e.result.is_ok()),
        "throttled calls are retried to success"
    );
    let times = fake.times();
    let busiest = busiest_second(&times);
    assert!(
        (2..=20).contains(&busiest),
        "never more than the configured rate: {busiest}"
    );
    let report = lane.report();
    assert!(
        report.n_throttled > 30 && report.lowest_rate < 20.0,
        "{report:?}"
    );
    assert_eq!(report.n_requests as usize, times.len());
    assert_eq!(
        report.retries_by_code.get("RequestLimitExceeded").copied(),
        Some(report.n_throttled)
    );
}

#[tokio::test(start_paused = true)]
async fn each_class_of_answer_gets_its_step() {
    let fake = Fake::new(|request, n| {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let image = |i: usize| body.contains(&format!("img-{i:08}"));
        match () {
            // Transient twice, then fine: two retries after a backoff.
            _ if image(1) && n < 2 => code("UnsupportedOperation.ImageOccupied"),
            // Never fine: retries run out at --max-attempts.
            _ if image(2) => code("InternalError"),
            // Permanent: not retried.
            _ if image(3) => code("ResourceNotFound.ImageIdNotFound"),
            _ if image(4) => code("UnsupportedOperation.ImageAlreadyShared"),
            // The clock: one more attempt, then the job stops.
            _ if image(5) => code("AuthFailure.SignatureExpire"),
            _ => ok(),
        }
    });
    let engine = Arc::new(engine(&fake));
    let lane = Lane::new("ap-seoul", Kind::Share, 20.0, 1);
    let started = Instant::now();
    let first = engine.call(&lane, &share(1)).await;
    assert_eq!((first.result.is_ok(), first.attempts), (true, 3));
    // Backoff with jitter 0.5: 250 ms after the first attempt, 500 ms after the second.
    assert!(
        started.elapsed() >= Duration::from_millis(750),
        "{:?}",
        started.elapsed()
    );
    let exhausted = engine.call(&lane, &share(2)).await;
    assert!(matches!(&exhausted.result, Err(Unfinished::Failed(e)) if e.code == "InternalError"));
    assert_eq!(exhausted.attempts, POLICY.max_attempts);
    let permanent = engine.call(&lane, &share(3)).await;
    assert!(matches!(permanent.result, Err(Unfinished::Failed(_))));
    assert_eq!(permanent.attempts, 1);
    let done = engine.call(&lane, &share(4)).await;
    assert!(matches!(done.result, Err(Unfinished::AlreadyDone(_))));
    assert!(!engine.stop().is_stopped());
    let clock = engine.call(&lane, &share(5)).await;
    assert_eq!(clock.attempts, 2, "retried once");
    assert!(
        matches!(engine.stop().reason(), Some(Reason::Fatal(e)) if e.code == "AuthFailure.SignatureExpire")
    );
    let after = engine.call(&lane, &share(6)).await;
    assert!(
        matches!(after.result, Err(Unfinished::Left)),
        "no new call once stopped"
    );
    assert_eq!(after.attempts, 0);
}

#[tokio::test(start_paused = true)]
async fn throttled_answers_do_not_use_attempts_and_five_minutes_of_them_give_up() {
    let fake = Fake::new(|_, _| code("RequestLimitExceeded"));
    let engine = Arc::new(engine(&fake));
    let lane = Lane::new("ap-seoul", Kind::Share, 20.0, 1);
    let started = Instant::now();
    let ended = engine.call(&lane, &share(1)).await;
    let waited = started.elapsed();
    assert!(
        matches!(&ended.result, Err(Unfinished::Failed(e)) if e.code == "RequestLimitExceeded")
    );
    assert!(
        ended.attempts > POLICY.max_attempts,
        "{} attempts",
        ended.attempts
    );
    assert!(
        (Duration::from_secs(300)..Duration::from_secs(305)).contains(&waited),
        "{waited:?}"
    );
    let report = lane.report();
    assert!(report.lowest_rate < 5.0, "slowed down: {report:?}");
    let n_sent = fake.times().len();
    let next = engine.call(&lane, &share(2)).await;
    assert!(matches!(next.result, Err(Unfinished::Failed(_))));
    assert_eq!(
        (next.attempts, fake.times().len()),
        (0, n_sent),
        "the lane gave up: nothing more is sent"
    );
}

/// A service that admits `limit` requests in any one-second window, counted at arrival, and
/// answers an empty page.
fn strict_window(limit: usize) -> Arc<Fake> {
    let admitted = Mutex::new(Vec::<Instant>::new());
    Fake::new(move |_, _| {
        let now = Instant::now();
        let mut admitted = admitted.lock().unwrap();
        admitted.retain(|t| now - *t < Duration::from_secs(1));
        match admitted.len() < limit {
            true => {
                admitted.push(now);
                Ok(br#"{"Response":{"TotalCount":0,"BlueprintSet":[],"RequestId":"r"}}"#.to_vec())
            }
            false => code("RequestLimitExceeded"),
        }
    })
}

/// Runs `n` look-ups of pages at once through `lane`; whether each ended well.
async fn pages(engine: &Arc<Engine>, lane: &Arc<Lane>, n: u64) -> Vec<bool> {
    let mut tasks = tokio::task::JoinSet::new();
    for offset in 0..n {
        let (engine, lane) = (engine.clone(), lane.clone());
        tasks.spawn(async move {
            let page = DescribeBlueprints {
                region: "ap-seoul",
                kind: Blueprints::Shared,
                offset,
            };
            engine.call(&lane, &page).await.result.is_ok()
        });
    }
    tasks.join_all().await
}

/// A limit of 3/s under the lane's 10/s: the 4th request, 0.3 s in, is refused. The window
/// that refused it holds the first until 1 s: every request sent before then, even one
/// already waiting for its slot at the cut rate, would be refused too, so none is.
#[tokio::test(start_paused = true)]
async fn after_a_cut_no_request_goes_before_the_refusing_window_frees_room() {
    let fake = strict_window(3);
    let engine = Arc::new(engine(&fake));
    let lane = Arc::new(Lane::new("ap-seoul", Kind::DescribeBlueprints, 10.0, 32));
    assert!(pages(&engine, &lane, 12).await.into_iter().all(|ok| ok));
    let times = fake.times();
    let start = times[0];
    let after_the_refusal: Vec<Duration> = times
        .iter()
        .map(|t| *t - start)
        .filter(|t| *t >= Duration::from_millis(350))
        .collect();
    let next = after_the_refusal[0];
    assert!(
        (Duration::from_secs(1)..Duration::from_millis(1020)).contains(&next),
        "the next request waited for the window to free room, and no longer: {next:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_look_up_is_slowed_down_by_refusals_exactly_as_a_write() {
    // A service whose look-up limit is 3/s, under the client's 10/s.
    let fake = strict_window(3);
    let engine = Arc::new(engine(&fake));
    let lane = Arc::new(Lane::new("ap-seoul", Kind::DescribeBlueprints, 10.0, 32));
    assert!(pages(&engine, &lane, 60).await.into_iter().all(|ok| ok));
    let report = lane.report();
    let refused = report.n_throttled as f64 / report.n_requests as f64;
    assert!(refused <= 0.3, "{report:?}");
    assert!(
        report.lowest_rate < 4.0,
        "the rate came down to the service's: {report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unsupported_region_fails_its_calls_unsent_and_the_others_go_on() {
    let fake = Fake::new(|request, _| match request.region {
        "ap-tokyo" => code("UnsupportedRegion"),
        _ => ok(),
    });
    let engine = Arc::new(engine(&fake));
    let lane = Lane::new("endpoint", Kind::Share, 20.0, 4);
    let tokyo = |i| Share {
        region: "ap-tokyo",
        ..share(i)
    };
    assert_eq!(engine.call(&lane, &tokyo(1)).await.attempts, 1);
    let unsent = engine.call(&lane, &tokyo(2)).await;
    assert!(matches!(unsent.result, Err(Unfinished::Failed(ref e)) if e.request_id.is_none()));
    assert_eq!(unsent.attempts, 0);
    assert!(engine.call(&lane, &share(3)).await.result.is_ok());
    assert!(!engine.stop().is_stopped());
}

#[tokio::test(start_paused = true)]
async fn the_failure_limit_stops_the_job_and_a_stop_ends_waiting_calls() {
    let fake = Fake::new(|_, _| code("InternalError"));
    let engine = Arc::new(engine(&fake).with_failure_limit(Some(FailureLimit::Rows(2))));
    for _ in 0..2 {
        engine.row_finished(true);
    }
    engine.row_finished(false);
    assert!(
        !engine.stop().is_stopped(),
        "2 failures are not more than 2"
    );
    let lane = Arc::new(Lane::new("ap-seoul", Kind::Share, 20.0, 4));
    // A call waiting out its backoff when the third failure comes: it is left, not failed.
    let waiting = {
        let (engine, lane) = (engine.clone(), lane.clone());
        tokio::spawn(async move { engine.call(&lane, &share(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    engine.row_finished(true);
    assert!(matches!(
        engine.stop().reason(),
        Some(Reason::TooManyFailures { n_failed: 3, .. })
    ));
    let ended = waiting.await.unwrap();
    assert!(matches!(ended.result, Err(Unfinished::Left)));
    assert_eq!(ended.attempts, 1);
}
