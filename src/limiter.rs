//! Pacing: one governor limiter per rate bucket, so that no one-second window ever holds more
//! than the rate.
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
//! The limiter reads tokio's clock ([`TokioClock`]), so tests pause and advance time and
//! exercise [`Limiter::pace`] itself, without sleeping.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// The share of the rate actually used.
pub const UTILISATION: f64 = 0.992;

/// How far ahead of its slot a request may go, so that a late timer does not cost a slot.
pub const TOLERANCE: Duration = Duration::from_millis(3);

/// governor's clock over `tokio::time::Instant`: real time in a run, paused and advanced
/// time in a test.
#[derive(Clone, Debug)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.start.elapsed())
    }
}

/// The quota that paces requests at `rate` per second (with the margin), and the cells each
/// request weighs.
pub fn quota(rate: f64) -> (Quota, NonZeroU32) {
    let interval = 1.0 / (rate * UTILISATION);
    let cells = (interval / TOLERANCE.as_secs_f64())
        .ceil()
        .clamp(1.0, 1_000_000.0) as u32;
    let cells = NonZeroU32::new(cells).unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_secs_f64(interval / f64::from(cells.get()));
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(cells.saturating_add(1));
    (quota, cells)
}

/// The pacer of one rate bucket.
pub struct Limiter {
    inner: RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>,
    clock: TokioClock,
    /// The cells one request weighs.
    cells: NonZeroU32,
}

impl Limiter {
    pub fn new(rate: f64) -> Self {
        let (quota, cells) = quota(rate);
        let clock = TokioClock::default();
        Self {
            inner: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            cells,
        }
    }

    /// Waits until the next request may be sent. The wait is tokio's own timer (1 ms ticks,
    /// inside the tolerance), not governor's, which would wake a timer thread per request.
    pub async fn pace(&self) {
        loop {
            match self.inner.check_n(self.cells) {
                Ok(Ok(())) => return,
                Ok(Err(not_until)) => {
                    tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await
                }
                // `quota` makes the burst one cell larger than a request, so this cannot
                // happen; if it ever did, sending unpaced would break the promise.
                Err(error) => panic!("the limiter's quota cannot hold one request: {error}"),
            }
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use tokio::time::Instant;

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
}
