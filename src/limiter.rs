//! Pacing: one governor limiter per rate bucket, so that no one-second window ever holds
//! more than the bucket's current rate, and the rate it adapts to when others share the quota.
//!
//! governor's usual quota has a burst as large as the rate, which lets about twice the rate
//! through in the first second. Here the burst is one: requests are spaced evenly, one every
//! `1 / (rate × UTILISATION)` seconds, so any window of one second holds at most
//! `ceil(rate)`. The small margin absorbs the jitter between the moment a request is sent and
//! the moment the server counts it: at 20/s, 20 requests span 1.008 s, 8 ms more than a second.
//!
//! A timer never wakes exactly on time, and a GCRA limiter with burst one re-bases its
//! schedule on every late wake-up, so the lateness would add up and cost utilisation. Each
//! request therefore weighs `cells` fine-grained cells with one spare cell of burst: that lets
//! a request go up to [`TOLERANCE`] ahead of its slot, so a wake-up that late keeps the
//! schedule. Any one-second window still holds at most `ceil(rate)`, since the tolerance
//! (3 ms) is smaller than the margin (8 ms at 20/s), leaving 5 ms for network jitter.
//!
//! A governor quota cannot change in place, so a new rate gets a new limiter; a fresh one
//! would let its first request go at once, next to the last ones at the old rate, so that
//! first request waits until the last one's time plus the new interval.
//!
//! [`Adaptive`] is the rate itself: lowered on a `RequestLimitExceeded`, climbing back while
//! none comes (SPEC §3). Both read tokio's clock ([`TokioClock`]), so tests pause and advance
//! time and exercise [`Limiter::pace`] itself, without sleeping.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// The share of the rate actually used.
pub const UTILISATION: f64 = 0.992;

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

/// The time between two requests at `rate`, margin included.
fn interval(rate: f64) -> Duration {
    Duration::try_from_secs_f64(1.0 / (rate * UTILISATION)).unwrap_or(Duration::MAX)
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
    /// The time between two requests at the current rate.
    interval: Duration,
    /// When the last request went.
    last: Option<Instant>,
    /// Set by a rate change: the earliest moment for the new limiter's first request.
    not_before: Option<Instant>,
}

impl Limiter {
    pub fn new(rate: f64) -> Self {
        let clock = TokioClock {
            start: Instant::now(),
        };
        let interval = interval(rate);
        let (quota, cells) = quota(interval);
        Self {
            state: Mutex::new(State {
                gcra: RateLimiter::direct_with_clock(quota, clock.clone()),
                cells,
                interval,
                last: None,
                not_before: None,
            }),
            clock,
        }
    }

    /// Paces from now on at `rate`: the next request goes no sooner than the last one plus
    /// the new interval.
    pub fn set_rate(&self, rate: f64) {
        let interval = interval(rate);
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

    /// Waits until the next request may be sent, and takes its slot. The wait is tokio's own
    /// timer (1 ms ticks, inside the tolerance), not governor's, which would wake a timer
    /// thread per request.
    pub async fn pace(&self) {
        loop {
            let wait = {
                let mut state = self.lock();
                let now = Instant::now();
                match state.not_before {
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

/// How much a throttled answer lowers the rate (AWS's adaptive retry mode uses 0.7 too).
pub const DECREASE: f64 = 0.7;

/// The lowest rate pacing goes down to (AWS's floor): one request every two seconds.
const MIN_RATE: f64 = 0.5;

/// How fast the rate climbs back while no refusal comes: requests per second gained per
/// second. Additive rather than AWS's cubic: measured against the simulator (two runs on one
/// quota, a limit at half the rate), cubic returned faster but drew 8–9% refusals against
/// 4.5–6% for this; refusals spend the quota of whoever shares it.
const CLIMB: f64 = 1.0;

/// A bucket's current rate, at most the configured one: multiplicative decrease on a
/// throttled answer, at most once per round trip; an additive climb back while none comes.
#[derive(Debug)]
pub struct Adaptive {
    configured: f64,
    /// The last decrease, from which the climb is measured; none yet: the configured rate.
    decrease: Option<Decrease>,
    lowest: f64,
    n_throttled: u64,
}

#[derive(Clone, Copy, Debug)]
struct Decrease {
    at: Instant,
    /// The rate it went down to, from which the climb starts.
    after: f64,
}

impl Adaptive {
    pub fn new(configured: f64) -> Self {
        Self {
            configured,
            decrease: None,
            lowest: configured,
            n_throttled: 0,
        }
    }

    /// The rate at `now`.
    pub fn rate(&self, now: Instant) -> f64 {
        let Some(decrease) = self.decrease else {
            return self.configured;
        };
        let t = now.saturating_duration_since(decrease.at).as_secs_f64();
        (decrease.after + CLIMB * t).clamp(self.floor(), self.configured)
    }

    /// A `RequestLimitExceeded` answer to a request sent at `sent_at`: returns the lowered
    /// rate, or `None` when the request left before the last decrease (that burst of
    /// refusals already counted).
    pub fn throttled(&mut self, sent_at: Instant, now: Instant) -> Option<f64> {
        self.n_throttled += 1;
        if self.decrease.is_some_and(|d| sent_at < d.at) {
            return None;
        }
        let before = self.rate(now);
        let after = (before * DECREASE).max(self.floor());
        self.decrease = Some(Decrease { at: now, after });
        self.lowest = self.lowest.min(after);
        Some(after)
    }

    fn floor(&self) -> f64 {
        MIN_RATE.min(self.configured)
    }

    pub fn configured(&self) -> f64 {
        self.configured
    }

    /// The lowest rate it went down to.
    pub fn lowest(&self) -> f64 {
        self.lowest
    }

    pub fn n_throttled(&self) -> u64 {
        self.n_throttled
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

    #[test]
    fn throttling_lowers_the_rate_once_per_round_trip_and_it_climbs_back() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let mut adaptive = Adaptive::new(20.0);
        assert_eq!(adaptive.rate(ms(0)), 20.0);
        let first = adaptive.throttled(ms(0), ms(100)).unwrap();
        assert!((first - 14.0).abs() < 1e-9, "{first}");
        assert_eq!(
            adaptive.throttled(ms(60), ms(120)),
            None,
            "sent before the decrease: the same burst"
        );
        let climbed = adaptive.rate(ms(200));
        assert!((first..20.0).contains(&climbed), "{climbed}");
        let second = adaptive.throttled(ms(110), ms(200)).unwrap();
        assert!((second - climbed * DECREASE).abs() < 1e-9, "{second}");
        assert_eq!((adaptive.lowest(), adaptive.n_throttled()), (second, 3));
        let mut previous = second;
        for s in 1..60 {
            let rate = adaptive.rate(ms(200 + s * 1000));
            assert!(
                rate >= previous,
                "the climb never goes down: {rate} after {previous}"
            );
            previous = rate;
        }
        assert_eq!(previous, 20.0, "back at the configured rate, never above");
        for n in 0..40 {
            let at = ms(100_000 + n * 10);
            adaptive.throttled(at, at + Duration::from_millis(5));
        }
        assert_eq!(adaptive.lowest(), MIN_RATE, "never below the floor");
    }
}
