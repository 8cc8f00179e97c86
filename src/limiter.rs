//! Pacing: one governor limiter per rate bucket, so that no one-second window ever holds
//! more than the bucket's current rate, and the rate it adapts to when others share the quota.
//!
//! governor's usual quota has a burst as large as the rate, which lets about twice the rate
//! through in the first second. Here the burst is one: requests are spaced evenly, one every
//! `(1 s + margin) / rate`, so any window of one second holds at most `ceil(rate)`. The margin
//! absorbs the jitter between the moment a request is sent and the moment the server counts
//! it: at the base margin, 20 requests at 20/s span 1.008 s, 8 ms more than a second. Each
//! bucket's margin is its own: `adapt` widens it on a network that needs more.
//!
//! A timer never wakes exactly on time, and a GCRA limiter with burst one re-bases its
//! schedule on every late wake-up, so the lateness would add up and cost utilisation. Each
//! request therefore weighs `cells` fine-grained cells with one spare cell of burst: that lets
//! a request go up to [`TOLERANCE`] ahead of its slot, so a wake-up that late keeps the
//! schedule. Any one-second window still holds at most `ceil(rate)`, since the tolerance
//! (3 ms) is smaller than the margin (never under 8 ms), leaving the rest for network jitter.
//!
//! A governor quota cannot change in place, so a new rate gets a new limiter; a fresh one
//! would let its first request go at once, next to the last ones at the old rate, so that
//! first request waits until the last one's time plus the new interval.
//!
//! `adapt::Adaptive` decides the rate and the margin from the answers (SPEC §3); the
//! limiter only keeps them. It reads tokio's clock ([`TokioClock`]), so tests pause and
//! advance time and exercise [`Limiter::pace`] itself, without sleeping.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// The share of the rate used at the base margin (1 / 1.008), for estimates of how long a run
/// takes.
pub const UTILISATION: f64 = 0.992;

/// The margin a bucket starts with: at 20/s, 20 requests span 1.008 s. It covers a late timer
/// (the limiter's 3 ms tolerance) and a few milliseconds of network jitter, which is all a
/// quiet network needs.
pub const BASE_MARGIN: Duration = Duration::from_millis(8);

/// How far ahead of its slot a request may go, so that a late timer does not cost a slot.
pub const TOLERANCE: Duration = Duration::from_millis(3);

/// governor's clock over `tokio::time::Instant`: real time in a run, paused and advanced
/// time in a test.
#[derive(Clone, Debug)]
pub struct TokioClock {
    start: Instant,
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.start.elapsed())
    }
}

/// The time between two requests at `rate`, so that `rate` requests span a second and
/// `margin`. A margin under the base would no longer cover the tolerance.
fn interval(rate: f64, margin: Duration) -> Duration {
    let span = (Duration::from_secs(1) + margin.max(BASE_MARGIN)).as_secs_f64();
    Duration::try_from_secs_f64(span / rate).unwrap_or(Duration::MAX)
}

/// The quota that paces requests `interval` apart, and the cells each request weighs.
fn quota(interval: Duration) -> (Quota, NonZeroU32) {
    let cells = (interval.as_secs_f64() / TOLERANCE.as_secs_f64())
        .ceil()
        .clamp(1.0, 1_000_000.0) as u32;
    let cells = NonZeroU32::new(cells).unwrap_or(NonZeroU32::MIN);
    let period = interval / cells.get();
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(cells.saturating_add(1));
    (quota, cells)
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// The pacer of one rate bucket.
pub struct Limiter {
    clock: TokioClock,
    state: Mutex<State>,
}

struct State {
    gcra: Gcra,
    /// The cells one request weighs.
    cells: NonZeroU32,
    /// The time between two requests at the current rate and margin.
    interval: Duration,
    /// When the last request went.
    last: Option<Instant>,
    /// Set by a rate change: the earliest moment for the new limiter's first request.
    not_before: Option<Instant>,
    /// Set by [`Limiter::hold_until`]: no request before it.
    hold: Option<Instant>,
}

impl Limiter {
    /// A pacer at `rate` requests per second with the base margin.
    pub fn new(rate: f64) -> Self {
        let clock = TokioClock {
            start: Instant::now(),
        };
        let interval = interval(rate, BASE_MARGIN);
        let (quota, cells) = quota(interval);
        Self {
            state: Mutex::new(State {
                gcra: RateLimiter::direct_with_clock(quota, clock.clone()),
                cells,
                interval,
                last: None,
                not_before: None,
                hold: None,
            }),
            clock,
        }
    }

    /// Paces from now on at `rate` with the base margin; see [`Limiter::set_pace`].
    pub fn set_rate(&self, rate: f64) {
        self.set_pace(rate, BASE_MARGIN);
    }

    /// Paces from now on at `rate`, `rate` requests spanning one second and `margin` (never
    /// less than the base): the next request goes no sooner than the last one plus the new
    /// interval.
    pub fn set_pace(&self, rate: f64, margin: Duration) {
        let interval = interval(rate, margin);
        let mut state = self.lock();
        if interval == state.interval {
            return;
        }
        let (quota, cells) = quota(interval);
        state.gcra = RateLimiter::direct_with_clock(quota, self.clock.clone());
        state.cells = cells;
        state.interval = interval;
        // A full interval after the last request, without the tolerance: while the rate
        // climbs it changes before every request, and a request let go early each time
        // would add up to more than the rate in a second.
        state.not_before = state.last.map(|last| last + interval);
    }

    /// Lets no request go before `at`, whatever the pace: requests already waiting for their
    /// slot wait for it too. After it, the pace resumes with one request, not a burst.
    pub fn hold_until(&self, at: Instant) {
        let mut state = self.lock();
        state.hold = state.hold.max(Some(at));
    }

    /// Waits until the next request may be sent, and takes its slot. The wait is tokio's own
    /// timer (1 ms ticks, inside the tolerance), not governor's, which would wake a timer
    /// thread per request.
    pub async fn pace(&self) {
        loop {
            let wait = {
                let mut state = self.lock();
                let now = Instant::now();
                match state.not_before.max(state.hold) {
                    Some(not_before) if now < not_before => not_before - now,
                    _ => match state.gcra.check_n(state.cells) {
                        Ok(Ok(())) => {
                            state.last = Some(now);
                            state.not_before = None;
                            return;
                        }
                        Ok(Err(not_until)) => not_until.wait_time_from(self.clock.now()),
                        // `quota` makes the burst one cell larger than a request, so this
                        // cannot happen; sending unpaced instead would break the promise.
                        Err(error) => {
                            panic!("the limiter's quota cannot hold one request: {error}")
                        }
                    },
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Only this module touches the state, and never panics holding it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Sends `n` requests through `pace()` as fast as it allows, on paused time; returns the
    /// send times. `lateness` is added after every wake-up, as a busy machine's timers would.
    pub async fn send_times(rate: f64, n: usize, lateness: Duration) -> Vec<Duration> {
        let limiter = Limiter::new(rate);
        let start = Instant::now();
        let mut times = Vec::new();
        while times.len() < n {
            limiter.pace().await;
            times.push(start.elapsed());
            tokio::time::advance(lateness).await;
        }
        times
    }

    /// The most sends inside any one-second window `[t, t + 1s)`.
    pub fn busiest_second(times: &[Duration]) -> usize {
        let mut most = 0;
        let mut first = 0;
        for (last, t) in times.iter().enumerate() {
            while *t - times[first] >= Duration::from_secs(1) {
                first += 1;
            }
            most = most.max(last - first + 1);
        }
        most
    }

    #[tokio::test(start_paused = true)]
    async fn no_one_second_window_holds_more_than_the_rate() {
        for rate in [20.0, 7.0, 0.5] {
            for lateness in [
                Duration::ZERO,
                Duration::from_micros(300),
                Duration::from_millis(3),
            ] {
                let times = send_times(rate, 200, lateness).await;
                let allowed = rate.ceil() as usize;
                assert_eq!(
                    busiest_second(&times),
                    allowed,
                    "rate {rate}, lateness {lateness:?}"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_second_gets_no_burst() {
        let times = send_times(20.0, 40, Duration::ZERO).await;
        let in_first_second = times
            .iter()
            .filter(|t| **t < Duration::from_secs(1))
            .count();
        assert_eq!(in_first_second, 20, "a burst-20 quota would let 40 through");
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_keeps_the_utilisation_it_promises() {
        let times = send_times(20.0, 201, Duration::ZERO).await;
        let achieved = 200.0 / times[200].as_secs_f64();
        assert!((achieved / 20.0 - UTILISATION).abs() < 2e-3, "{achieved}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_within_the_tolerance_costs_nothing() {
        let on_time = send_times(20.0, 201, Duration::ZERO).await;
        let late = send_times(20.0, 201, Duration::from_micros(900)).await;
        let drift = late[200].as_secs_f64() - on_time[200].as_secs_f64();
        assert!(
            drift < 0.002,
            "lateness must not add up over 200 requests: {drift}"
        );
    }

    /// The rate changes every few requests, down and up, with late wake-ups: every window
    /// of one second holds at most the highest rate in force inside it, so after a decrease
    /// the new rate holds from the first request sent at it (a rebuilt limiter would let that
    /// one go at once, next to the last ones at the old rate).
    #[tokio::test(start_paused = true)]
    async fn a_rate_change_keeps_the_window_promise() {
        let changes = [
            (0, 20.0),
            (30, 7.0),
            (50, 13.0),
            (80, 2.0),
            (90, 20.0),
            (130, 5.0),
        ];
        let limiter = Limiter::new(20.0);
        let start = Instant::now();
        let mut sends = Vec::new();
        for i in 0..150 {
            let rate = changes.iter().rev().find(|(from, _)| i >= *from).unwrap().1;
            limiter.set_rate(rate);
            limiter.pace().await;
            sends.push((start.elapsed(), rate));
            tokio::time::advance(Duration::from_micros(900)).await;
        }
        for (i, (first, _)) in sends.iter().enumerate() {
            let inside: Vec<f64> = sends[i..]
                .iter()
                .take_while(|(t, _)| *t - *first < Duration::from_secs(1))
                .map(|(_, rate)| *rate)
                .collect();
            let allowed = inside.iter().copied().fold(0.0, f64::max).ceil() as usize;
            assert!(
                inside.len() <= allowed,
                "{} requests in the second from request {i} ({first:?}), rates {inside:?}",
                inside.len()
            );
        }
        let at_two: Vec<Duration> = sends[81..90].iter().map(|(t, _)| *t).collect();
        assert_eq!(
            busiest_second(&at_two),
            2,
            "the lowered rate is used, not only capped"
        );
    }

    /// A wider margin spreads `rate` requests over a second and the margin, no more.
    #[tokio::test(start_paused = true)]
    async fn a_wider_margin_spreads_the_rate_over_a_second_and_the_margin() {
        let limiter = Limiter::new(20.0);
        limiter.set_pace(20.0, Duration::from_millis(50));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..201 {
            limiter.pace().await;
            times.push(start.elapsed());
        }
        let achieved = 200.0 / times[200].as_secs_f64();
        assert!((achieved - 20.0 / 1.05).abs() < 0.05, "{achieved}");
        assert_eq!(busiest_second(&times), 20);
    }
}
