//! A strict sliding one-second window, by arrival time: the service's rate limit as the
//! simulator enforces it, and the measure of how many requests any one second held.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::Rng;

const WIDTH: Duration = Duration::from_secs(1);

/// Which requests use up a window. Nobody outside Tencent knows which the service does, so the
/// simulator offers both and the client must do well under either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Count {
    /// Only admitted requests count: a refusal costs nothing (the behaviour before the flag).
    #[default]
    Admitted,
    /// Every request that reaches the limit counts, refused or not: a client that keeps
    /// knocking while refused keeps the window full.
    All,
}

/// One action's limit over its buckets: per bucket, the window that admits and the window that
/// only measures (every arrival, for the busiest-second statistic).
pub struct Limit {
    rate: usize,
    count: Count,
    admitted: HashMap<String, Window>,
    arrivals: HashMap<String, Window>,
}

impl Limit {
    pub fn new(rate: usize, count: Count) -> Self {
        Self {
            rate,
            count,
            admitted: HashMap::new(),
            arrivals: HashMap::new(),
        }
    }

    /// The requests one bucket admits per second: refusals quote it.
    pub fn rate(&self) -> usize {
        self.rate
    }

    /// Counts an arrival in `bucket`'s measuring window; returns how many the second ending now
    /// holds.
    pub fn measure(&mut self, bucket: &str, now: Instant) -> usize {
        self.arrivals
            .entry(bucket.to_string())
            .or_default()
            .record(now)
    }

    /// Whether `bucket` admits a request arriving at `now`.
    pub fn admit(&mut self, bucket: &str, now: Instant) -> bool {
        self.admitted
            .entry(bucket.to_string())
            .or_default()
            .admit(now, self.rate, self.count)
    }
}

/// How long after its arrival a request is counted, as if the network had delayed it: a
/// uniform draw from 0 to `jitter`, to the microsecond. Nothing is drawn without jitter, so
/// that a seed gives the same faults as before `--uplink-jitter-ms` existed.
pub fn uplink_delay(rng: &mut impl Rng, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return Duration::ZERO;
    }
    let most = u64::try_from(jitter.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rng.random_range(0..=most))
}

/// Arrival times within the last second.
#[derive(Default)]
pub struct Window {
    arrivals: VecDeque<Instant>,
}

impl Window {
    /// Counts an arrival; returns how many arrivals the second ending now holds.
    pub fn record(&mut self, now: Instant) -> usize {
        self.evict(now);
        self.arrivals.push_back(now);
        self.arrivals.len()
    }

    /// Admits an arrival only if fewer than `limit` counted ones arrived in the second ending
    /// now; under `Count::All` a refused arrival is counted too.
    pub fn admit(&mut self, now: Instant, limit: usize, count: Count) -> bool {
        self.evict(now);
        let admitted = self.arrivals.len() < limit;
        if admitted || count == Count::All {
            self.arrivals.push_back(now);
        }
        admitted
    }

    fn evict(&mut self, now: Instant) {
        while let Some(&oldest) = self.arrivals.front() {
            if now.duration_since(oldest) >= WIDTH {
                self.arrivals.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_limit_per_second_and_no_more() {
        let start = Instant::now();
        let mut window = Window::default();
        let ms = |n| start + Duration::from_millis(n);
        for i in 0..20 {
            assert!(
                window.admit(ms(i * 10), 20, Count::Admitted),
                "request {i} fits"
            );
        }
        assert!(
            !window.admit(ms(999), 20, Count::Admitted),
            "the 21st inside one second is refused"
        );
        assert!(
            window.admit(ms(1000), 20, Count::Admitted),
            "a second after the first, one slot is free"
        );
        assert!(!window.admit(ms(1001), 20, Count::Admitted));
    }

    #[test]
    fn under_count_all_a_refusal_keeps_the_window_full() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        for (count, admitted_at_1100) in [(Count::Admitted, true), (Count::All, false)] {
            let mut window = Window::default();
            assert!(window.admit(ms(0), 1, count));
            assert!(!window.admit(ms(500), 1, count), "over the limit");
            assert_eq!(
                window.admit(ms(1100), 1, count),
                admitted_at_1100,
                "{count:?}: the refusal at 500 ms is still in the window at 1100 ms"
            );
            assert!(window.admit(ms(2200), 1, count), "{count:?}: all aged out");
        }
    }

    #[test]
    fn the_uplink_delay_is_spread_over_0_to_the_jitter_and_drawn_only_with_jitter() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut untouched = rng.clone();
        assert_eq!(uplink_delay(&mut rng, Duration::ZERO), Duration::ZERO);
        assert_eq!(
            rng.random::<u64>(),
            untouched.random::<u64>(),
            "no draw without jitter"
        );
        let jitter = Duration::from_millis(40);
        let delays: Vec<Duration> = (0..2000).map(|_| uplink_delay(&mut rng, jitter)).collect();
        assert!(delays.iter().all(|d| *d <= jitter));
        let low = delays.iter().filter(|d| **d < jitter / 4).count();
        let high = delays.iter().filter(|d| **d > jitter * 3 / 4).count();
        assert!(
            low > 400 && high > 400,
            "uniform: {low} low, {high} high of 2000"
        );
    }

    #[test]
    fn record_counts_the_arrivals_of_the_last_second() {
        let start = Instant::now();
        let mut window = Window::default();
        assert_eq!(window.record(start), 1);
        assert_eq!(window.record(start + Duration::from_millis(999)), 2);
        assert_eq!(window.record(start + Duration::from_millis(1000)), 2);
    }
}
