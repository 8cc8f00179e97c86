//! A strict sliding one-second window, by arrival time: the service's rate limit as the
//! simulator enforces it, and the measure of how many requests any one second held.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const WIDTH: Duration = Duration::from_secs(1);

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

    /// Counts an arrival only if fewer than `limit` arrived in the second ending now.
    pub fn admit(&mut self, now: Instant, limit: usize) -> bool {
        self.evict(now);
        if self.arrivals.len() < limit {
            self.arrivals.push_back(now);
            true
        } else {
            false
        }
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
            assert!(window.admit(ms(i * 10), 20), "request {i} fits");
        }
        assert!(
            !window.admit(ms(999), 20),
            "the 21st inside one second is refused"
        );
        assert!(
            window.admit(ms(1000), 20),
            "a second after the first, one slot is free"
        );
        assert!(!window.admit(ms(1001), 20));
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
