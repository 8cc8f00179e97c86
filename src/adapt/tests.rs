//! The adaptive rule on tokio's paused clock: made-up instants for the rule alone, and the
//! rule driving a real [`Limiter`] for what a bucket would send.

use super::*;
use crate::limiter::Limiter;

fn ms(start: Instant, n: u64) -> Instant {
    start + Duration::from_millis(n)
}

/// The round trip of request `i`: 30–90 ms, spread as a network's would be, but fixed.
fn rtt(i: usize) -> Duration {
    Duration::from_millis(30 + (i as u64 * 37) % 61)
}

/// A bucket at 20/s for `seconds` on paused time: paced by a [`Limiter`] that follows the
/// [`Adaptive`], each answer arriving `rtt(i)` after its request; `refused(i, t)` says whether
/// request `i`, sent `t` after the start, is refused. Returns the rule and the send times.
async fn drive(
    seconds: u64,
    refused: impl Fn(usize, Duration) -> bool,
) -> (Adaptive, Vec<Duration>) {
    let mut adaptive = Adaptive::new(20.0);
    let limiter = Limiter::new(20.0);
    let start = Instant::now();
    let mut answers: Vec<(Instant, Instant, bool)> = Vec::new();
    let mut sends = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        let now = Instant::now();
        answers.sort_by_key(|(due, _, _)| *due);
        while answers.first().is_some_and(|(due, _, _)| *due <= now) {
            let (due, sent_at, throttled) = answers.remove(0);
            adaptive.on_answer(sent_at, due, throttled);
        }
        limiter.set_pace(adaptive.rate(now), adaptive.margin(now));
        limiter.pace().await;
        let sent_at = Instant::now();
        adaptive.on_send(sent_at);
        let i = sends.len();
        sends.push(sent_at - start);
        answers.push((sent_at + rtt(i), sent_at, refused(i, sent_at - start)));
    }
    (adaptive, sends)
}

/// Sends from `from` on, per second.
fn rate_from(sends: &[Duration], from: Duration) -> f64 {
    let after: Vec<&Duration> = sends.iter().filter(|t| **t >= from).collect();
    let span = (**after.last().unwrap() - **after.first().unwrap()).as_secs_f64();
    (after.len() - 1) as f64 / span
}

#[tokio::test(start_paused = true)]
async fn a_stray_refusal_keeps_at_least_95_percent_of_the_rate() {
    let (adaptive, sends) = drive(20, |i, _| i == 100).await;
    let after = rate_from(&sends, Duration::from_secs(6));
    assert!(after >= 0.95 * 20.0, "{after}/s after one stray refusal");
    assert_eq!(adaptive.lowest(), 20.0, "the rate was never cut");
    assert_eq!(adaptive.n_throttled(), 1);
    assert_eq!(
        adaptive.margin(Instant::now()),
        BASE_MARGIN * 2,
        "the margin widened"
    );
}

#[tokio::test(start_paused = true)]
async fn stray_refusals_widen_the_margin_up_to_the_spread_of_round_trips_then_cut() {
    // Refusals 3 s apart, like stray late packets; round trips spread over 60 ms.
    let (adaptive, sends) = drive(20, |i, _| [60, 120].contains(&i)).await;
    assert_eq!(adaptive.lowest(), 20.0);
    let after = rate_from(&sends, Duration::from_secs(10));
    // 8 → 16 → 32 ms: still ≥ 0.96 of the rate.
    assert!(after >= 0.96 * 20.0, "{after}/s");
    assert_eq!(adaptive.margin(Instant::now()), BASE_MARGIN * 4);
    // A third: 64 ms would be more than the round trips vary, so the network cannot be why.
    let (adaptive, _) = drive(20, |i, _| [60, 120, 180].contains(&i)).await;
    assert!(adaptive.lowest() < 20.0);
    assert_eq!(adaptive.margin(Instant::now()), BASE_MARGIN * 4);
}

#[tokio::test(start_paused = true)]
async fn sustained_refusals_cut_the_rate() {
    // From 5 s on, half the requests are refused: someone else takes half the quota.
    let (adaptive, sends) = drive(15, |i, t| t >= Duration::from_secs(5) && i % 2 == 0).await;
    assert!(
        adaptive.lowest() <= 20.0 * BETA,
        "lowest {}",
        adaptive.lowest()
    );
    let during = rate_from(&sends, Duration::from_secs(8));
    assert!(during < 0.8 * 20.0, "still {during}/s under contention");
    assert!(
        adaptive.margin(Instant::now()) <= BASE_MARGIN * 4,
        "contention widened the margin at most twice: {:?}",
        adaptive.margin(Instant::now())
    );
}

/// Requests every `every` ms from `from` to `to` (excluded), each admitted 30–40 ms later.
fn admitted(adaptive: &mut Adaptive, start: Instant, (from, to, every): (u64, u64, u64)) {
    for at in (from..to).step_by(every as usize) {
        adaptive.on_send(ms(start, at));
        adaptive.on_answer(ms(start, at), ms(start, at + 30 + at % 11), false);
    }
}

#[test]
fn a_refusal_at_a_lowered_rate_is_contention() {
    let start = Instant::now();
    let mut adaptive = Adaptive::new(20.0);
    admitted(&mut adaptive, start, (0, 1950, 50));
    // Round trips spread over 10 ms: no room to widen into beyond the first doubling: the second refusal cuts.
    assert_eq!(
        adaptive.on_answer(ms(start, 1950), ms(start, 2000), true),
        Some(Change::Widened(BASE_MARGIN * 2))
    );
    admitted(&mut adaptive, start, (2000, 3960, 50));
    let Some(Change::Cut(cut)) = adaptive.on_answer(ms(start, 3960), ms(start, 4000), true) else {
        panic!("a second refusal with the margin at the spread cuts");
    };
    assert!((cut - BETA * 20.0).abs() < 1e-9, "{cut}");
    assert_eq!(
        adaptive.on_answer(ms(start, 3990), ms(start, 4030), true),
        None,
        "sent before the cut: the same evidence"
    );
    assert_eq!(
        adaptive.on_answer(ms(start, 4500), ms(start, 4535), true),
        None,
        "sent within a window of the cut: counted next to requests sent before it"
    );
    admitted(&mut adaptive, start, (4100, 5000, 100));
    assert!(
        matches!(
            adaptive.on_answer(ms(start, 5000), ms(start, 5035), true),
            Some(Change::Cut(_))
        ),
        "below the configured rate, a refusal is someone else's doing"
    );
    assert_eq!(adaptive.n_throttled(), 5);
}

/// Every request refused for a minute: one cut per window, each from what the window
/// admitted (none), so the rate is at the floor after the second cut, not after dozens.
#[test]
fn refusals_within_a_window_of_a_cut_do_not_cut_again() {
    let start = Instant::now();
    let mut adaptive = Adaptive::new(20.0);
    adaptive.margin = MAX_MARGIN; // no room: refusals cut
    let mut cuts = Vec::new();
    for n in 0..600 {
        let at = ms(start, n * 100);
        adaptive.on_send(at);
        if let Some(change) = adaptive.on_answer(at, at + Duration::from_millis(40), true) {
            cuts.push((n * 100, change));
        }
    }
    assert!(
        matches!(cuts[0], (0, Change::Cut(rate)) if (rate - BETA * 20.0).abs() < 1e-9),
        "{cuts:?}"
    );
    assert_eq!(cuts[1], (1100, Change::Cut(MIN_RATE)), "{cuts:?}");
    assert!(
        cuts.windows(2).all(|pair| pair[1].0 - pair[0].0 >= 1000),
        "{cuts:?}"
    );
    assert_eq!(adaptive.lowest(), MIN_RATE);
}

/// After a cut from the full rate, the cubic curve is back at the configured rate within
/// N = 4 seconds when nothing more is refused, and never goes down on the way.
#[test]
fn the_climb_back_reaches_the_configured_rate_within_4_seconds() {
    let start = Instant::now();
    let mut adaptive = Adaptive::new(20.0);
    admitted(&mut adaptive, start, (0, 4900, 50));
    adaptive.margin = MAX_MARGIN; // no room: the refusal cuts
    let Some(Change::Cut(after)) = adaptive.on_answer(ms(start, 4900), ms(start, 5000), true)
    else {
        panic!("cut");
    };
    assert!(
        (after - BETA * 19.0).abs() < 1e-9,
        "β × the 19 admitted in the second before the refused one: {after}"
    );
    let mut previous = after;
    for n in 1..=40 {
        let rate = adaptive.rate(ms(start, 5000 + n * 100));
        assert!(rate >= previous, "the climb never goes down");
        previous = rate;
    }
    assert_eq!(adaptive.rate(ms(start, 9000)), 20.0, "back within 4 s");
    assert!(adaptive.rate(ms(start, 7000)) < 20.0, "a curve, not a jump");
    assert_eq!(
        adaptive.rate(ms(start, 60_000)),
        20.0,
        "never above the configured rate"
    );
}

#[test]
fn a_widened_margin_narrows_back_while_nothing_is_refused() {
    let start = Instant::now();
    let mut adaptive = Adaptive::new(20.0);
    for i in 0..40 {
        adaptive.on_answer(
            ms(start, i * 50),
            ms(start, i * 50 + 30 + i % 5 * 20),
            false,
        );
    }
    adaptive.on_answer(ms(start, 2000), ms(start, 2050), true);
    for i in 0..40 {
        adaptive.on_answer(
            ms(start, 3000 + i * 50),
            ms(start, 3000 + i * 50 + 30 + i % 5 * 20),
            false,
        );
    }
    adaptive.on_answer(ms(start, 5000), ms(start, 5050), true);
    let widened = adaptive.margin(ms(start, 5050));
    assert_eq!(widened, BASE_MARGIN * 4);
    assert!(adaptive.margin(ms(start, 35_050)) < widened);
    assert_eq!(
        adaptive.margin(ms(start, 3_600_000)),
        BASE_MARGIN,
        "an hour later"
    );
}

/// A limit below the configured rate, found in the bucket's first second (a look-up at 10/s
/// on an account that takes 3/s): the curve flattens out at what the window admitted, not
/// at the configured rate, so the climb back does not find the refusal again at once.
#[test]
fn a_refusal_in_the_first_second_flattens_out_at_what_the_window_admitted() {
    let start = Instant::now();
    let mut adaptive = Adaptive::new(10.0);
    for i in 0..3 {
        adaptive.on_send(ms(start, i * 100));
        adaptive.on_answer(ms(start, i * 100), ms(start, i * 100 + 20), false);
    }
    adaptive.on_send(ms(start, 300));
    let Some(Change::Cut(after)) = adaptive.on_answer(ms(start, 300), ms(start, 320), true) else {
        panic!("three admitted, one refused, in the first second: contention");
    };
    assert!(
        (after - BETA * 3.0).abs() < 1e-9,
        "β × the 3 admitted: {after}"
    );
    assert_eq!(
        adaptive.hold(),
        Some(ms(start, 1000) + BASE_MARGIN),
        "nothing more until the first request leaves the window that refused the fourth"
    );
    let plateau = adaptive.rate(ms(start, 320 + 2_000));
    assert!(
        (2.9..3.2).contains(&plateau),
        "flattens out near 3/s: {plateau}"
    );
}
