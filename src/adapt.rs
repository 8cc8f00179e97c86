//! Adaptive pacing (SPEC §3): what a bucket's answers say about the pace it should keep.
//!
//! Two knobs come out of it, both read by the bucket's [`Limiter`](crate::limiter::Limiter):
//! the **rate** (requests per second, at most the configured one) and the **margin** (how much
//! longer than one second `rate` requests are spread over). A `RequestLimitExceeded` turns
//! one of them, never both; [`Adaptive::judge`] decides which, in one place:
//!
//! - a *stray* refusal means the network delayed one of our own requests so that the server
//!   counted it next to a later one: the margin is too thin for this network and widens;
//! - *contention* means someone else uses the quota (another run, the console, a lower
//!   limit): the rate is cut, as the AWS SDKs' adaptive mode does, and climbs back on their
//!   cubic curve.
//!
//! A change is made once per window: a refusal of a request sent less than a second after the
//! last change was counted next to requests sent before it, so it says nothing new. A cut
//! also says when the window that refused us frees room of ours ([`Adaptive::hold`]): the
//! bucket sends nothing before then.
//!
//! It is a plain value with the clock passed in ([`Adaptive::on_send`],
//! [`Adaptive::on_answer`], [`Adaptive::rate`], [`Adaptive::margin`]): the caller says when
//! things happen, so tests drive it on made-up instants without sleeping.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

pub use crate::limiter::BASE_MARGIN;

/// The widest margin: a delay on the way that varies more than this is not something spacing
/// can absorb at a useful rate (at 250 ms a fifth of the rate is gone).
pub const MAX_MARGIN: Duration = Duration::from_millis(250);

/// The AWS SDKs' multiplicative decrease: a cut keeps 70% of the measured send rate.
pub const BETA: f64 = 0.7;

/// The AWS SDKs' cubic scale: after a cut the rate is `C·(t − K)³ + W_max`, in requests per
/// second with `t` in seconds.
pub const C: f64 = 0.4;

/// The lowest rate pacing goes down to (AWS's floor): one request every two seconds.
const MIN_RATE: f64 = 0.5;

/// A second: the window the service counts in, and the span the send rate is measured over.
const WINDOW: Duration = Duration::from_secs(1);

/// How many recent round trips the spread is taken over: enough to see the network's range,
/// few enough to forget a change of network.
const N_RTTS: usize = 64;

/// For every this long without a refusal, a widened margin gives back a quarter of what it
/// gained: the network may have calmed down, and a margin only ever widened would cost a
/// long run its rate for a stray refusal of its first minute.
const NARROW_EVERY: Duration = Duration::from_secs(30);

/// What a counted refusal changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// A stray refusal: the margin widened to this.
    Widened(Duration),
    /// Contention: the rate was cut to this.
    Cut(f64),
}

/// A bucket's pace: its current rate and margin, learned from its answers.
#[derive(Debug)]
pub struct Adaptive {
    configured: f64,
    /// The margin as last widened, and when: [`Adaptive::margin`] narrows it with time.
    margin: Duration,
    /// The last cut, from which the cubic climb is measured; none: the configured rate.
    cut: Option<Cut>,
    /// The last change (widening or cut): a refusal of a request sent less than a window
    /// after it is the same evidence again, not news (see [`Adaptive::on_answer`]).
    changed_at: Option<Instant>,
    /// When the last counted refusal was answered.
    refused_at: Option<Instant>,
    /// Admitted answers since the last refusal of any kind.
    n_admitted_run: u64,
    /// Send times within the last second: the measured send rate.
    sends: VecDeque<Instant>,
    /// Send times of the requests admitted within about the last second: how many the
    /// service let through in the window a refusal was counted in.
    admitted: VecDeque<Instant>,
    first_send: Option<Instant>,
    /// The most recent round trips of answers from the service.
    rtts: VecDeque<Duration>,
    lowest: f64,
    n_throttled: u64,
    /// No request before this: the window that refused us holds our requests until then.
    hold: Option<Instant>,
}

/// The cubic curve after a cut (botocore's `CubicCalculator`).
#[derive(Clone, Copy, Debug)]
struct Cut {
    at: Instant,
    /// The measured send rate when it was refused: the curve flattens out there.
    w_max: f64,
    /// Seconds from the cut until the curve is back at `w_max`.
    k: f64,
}

/// Which kind of refusal it was.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    Stray,
    Contention,
}

impl Adaptive {
    /// A bucket paced at `configured` requests per second with the base margin.
    pub fn new(configured: f64) -> Self {
        Self {
            configured,
            margin: BASE_MARGIN,
            cut: None,
            changed_at: None,
            refused_at: None,
            n_admitted_run: 0,
            sends: VecDeque::new(),
            admitted: VecDeque::new(),
            first_send: None,
            rtts: VecDeque::new(),
            lowest: configured,
            n_throttled: 0,
            hold: None,
        }
    }

    /// A request left at `now`: the measured send rate counts it.
    pub fn on_send(&mut self, now: Instant) {
        self.first_send.get_or_insert(now);
        self.sends.push_back(now);
        while self
            .sends
            .front()
            .is_some_and(|sent| now.saturating_duration_since(*sent) >= WINDOW)
        {
            self.sends.pop_front();
        }
    }

    /// The service answered at `now` a request sent at `sent_at`; `throttled` when the answer
    /// was `RequestLimitExceeded` (any sub-code). Call it for answers from the service only,
    /// not for timeouts or lost connections: their round trip says nothing of the network's
    /// spread. Returns what a refusal changed; `None` for a refusal of a request sent less
    /// than a window (1 s) after the last change: the service counted it in a window that
    /// still held requests sent before the change, so it is the same evidence again. (Taken
    /// as news, each such refusal cut again: four or five cuts in a second, down to an eighth
    /// of the rate, every time two runs met on one quota.)
    pub fn on_answer(&mut self, sent_at: Instant, now: Instant, throttled: bool) -> Option<Change> {
        if self.rtts.len() == N_RTTS {
            self.rtts.pop_front();
        }
        self.rtts.push_back(now.saturating_duration_since(sent_at));
        if !throttled {
            self.n_admitted_run += 1;
            self.admitted.push_back(sent_at);
            while self.admitted.len() > 1
                && self
                    .admitted
                    .front()
                    .is_some_and(|sent| now.saturating_duration_since(*sent) >= WINDOW * 2)
            {
                self.admitted.pop_front();
            }
            return None;
        }
        self.n_throttled += 1;
        let n_admitted_run = std::mem::take(&mut self.n_admitted_run);
        if self
            .changed_at
            .is_some_and(|changed| sent_at < changed + WINDOW)
        {
            return None;
        }
        let verdict = self.judge(now, n_admitted_run);
        // Narrowing restarts from this refusal, whichever kind it is.
        self.margin = self.margin(now);
        self.refused_at = Some(now);
        self.changed_at = Some(now);
        let change = match verdict {
            Verdict::Stray => {
                self.margin = (self.margin * 2).min(MAX_MARGIN);
                Change::Widened(self.margin)
            }
            Verdict::Contention => Change::Cut(self.cut(sent_at, now)),
        };
        Some(change)
    }

    /// The one place a refusal is told apart: stray (widen the margin) or contention (cut).
    ///
    /// A refusal is stray when all of these hold:
    /// - The bucket paces at its configured rate. Below it (a cut in force) our own requests
    ///   leave so much room that no delay on the way crowds `ceil(rate)` of them into one
    ///   second: the window was filled by someone else.
    /// - The margin has room to widen within the spread of round trips: a delay on the way
    ///   cannot vary more than a whole round trip does, so once the margin covers that spread,
    ///   refusals are not the network's doing.
    /// - The rest of the window was admitted: at least `ceil(rate)` admitted answers came
    ///   since the last refusal (a run's first second, or a look-up's few requests, have
    ///   shown nothing yet), and the last counted refusal was answered a window (1 s) ago
    ///   or more. Refusals closer together mean the window is full for longer than a late
    ///   packet explains. (Each widening doubles the margin, so a few stray refusals cover any
    ///   spread, and contention that starts at the full rate costs one widening before the
    ///   cut.)
    fn judge(&self, now: Instant, n_admitted_run: u64) -> Verdict {
        if self.cut_in_force(now) {
            return Verdict::Contention;
        }
        let spread = self.spread().min(MAX_MARGIN);
        if self.margin(now) * 2 > spread.max(BASE_MARGIN * 2) {
            return Verdict::Contention;
        }
        let window_admitted = n_admitted_run as f64 >= self.configured.ceil();
        let isolated = window_admitted
            && self
                .refused_at
                .is_none_or(|refused| now.saturating_duration_since(refused) >= WINDOW);
        if isolated {
            Verdict::Stray
        } else {
            Verdict::Contention
        }
    }

    /// Cuts the rate to β × the measured send rate and starts the cubic climb from there;
    /// returns the new rate. The curve flattens out (`W_max`) at no more than the service
    /// admitted of ours in the second before the refused request left: a window that held
    /// that many and refused one more says the quota left for us is about that many, and
    /// climbing back past it within the cubic's first seconds would only find the refusal
    /// again. (In a bucket's first second the send rate cannot be measured yet; this count
    /// can.)
    fn cut(&mut self, refused_sent_at: Instant, now: Instant) -> f64 {
        let current = self.rate(now);
        let in_window: Vec<Instant> = self
            .admitted
            .iter()
            .copied()
            .filter(|sent| {
                *sent < refused_sent_at && refused_sent_at.saturating_duration_since(*sent) < WINDOW
            })
            .collect();
        // The window that refused us frees room of ours no sooner than our oldest request
        // in it leaves it: sending before that only draws more refusals (the start of a
        // bucket, when a second of requests went at the full rate, or a limit below it).
        self.hold = in_window
            .iter()
            .min()
            .map(|oldest| *oldest + WINDOW + self.margin(now));
        let in_window = in_window.len() as f64;
        let measured = self.measured_rate(now).unwrap_or(current).min(current);
        // In the bucket's first second, no admitted request in that window says nothing of
        // the quota: the answers may not have come yet. After it, none admitted in a whole
        // window of sends says the quota left for us is none: the curve starts at the floor
        // (one cut per window, so it would otherwise keep sending refused requests at a few
        // per second into a quota someone else holds).
        let sent_a_window = self
            .first_send
            .is_some_and(|first| first + WINDOW <= refused_sent_at);
        let w_max = match in_window >= 1.0 || sent_a_window {
            true => measured.min(in_window),
            false => measured,
        };
        let k = (w_max * (1.0 - BETA) / C).cbrt();
        self.cut = Some(Cut { at: now, w_max, k });
        let after = self.rate(now);
        self.lowest = self.lowest.min(after);
        after
    }

    /// The send rate over the last second (from the spacing of its requests, so that an even
    /// pace of 20/s measures 20), once the bucket has been sending for a second.
    fn measured_rate(&self, now: Instant) -> Option<f64> {
        let first = self.first_send?;
        if now.saturating_duration_since(first) < WINDOW {
            return None;
        }
        let mut recent = self
            .sends
            .iter()
            .filter(|sent| now.saturating_duration_since(**sent) < WINDOW);
        let oldest = recent.next()?;
        let (n, newest) = recent.fold((1, oldest), |(n, _), sent| (n + 1, sent));
        let span = newest.saturating_duration_since(*oldest).as_secs_f64();
        (n > 1 && span > 0.0).then(|| (n - 1) as f64 / span)
    }

    /// The spread of recent round trips (longest − shortest); zero before two answers.
    fn spread(&self) -> Duration {
        let longest = self.rtts.iter().max().copied().unwrap_or_default();
        let shortest = self.rtts.iter().min().copied().unwrap_or_default();
        longest - shortest
    }

    fn cut_in_force(&self, now: Instant) -> bool {
        self.rate(now) < self.configured
    }

    /// The rate at `now`: the configured one, or the cubic climb back to it after a cut.
    pub fn rate(&self, now: Instant) -> f64 {
        let Some(cut) = self.cut else {
            return self.configured;
        };
        let t = now.saturating_duration_since(cut.at).as_secs_f64();
        (C * (t - cut.k).powi(3) + cut.w_max).clamp(self.floor(), self.configured)
    }

    /// The margin at `now`: as last widened, narrowed by a quarter of its excess over the
    /// base for every [`NARROW_EVERY`] since the last refusal.
    pub fn margin(&self, now: Instant) -> Duration {
        let Some(refused) = self.refused_at else {
            return self.margin;
        };
        let quiet = now.saturating_duration_since(refused);
        let steps = (quiet.as_secs_f64() / NARROW_EVERY.as_secs_f64()).floor();
        let excess = self.margin.saturating_sub(BASE_MARGIN).as_secs_f64();
        BASE_MARGIN + Duration::from_secs_f64(excess * 0.75f64.powf(steps))
    }

    /// When the next request may go, if a cut asked to hold it (see [`Adaptive::cut`]).
    pub fn hold(&self) -> Option<Instant> {
        self.hold
    }

    fn floor(&self) -> f64 {
        MIN_RATE.min(self.configured)
    }

    /// `--rate` (or `--describe-rate`): the most this bucket ever paces at.
    pub fn configured(&self) -> f64 {
        self.configured
    }

    /// The lowest rate it went down to.
    pub fn lowest(&self) -> f64 {
        self.lowest
    }

    /// Answers `RequestLimitExceeded`, counted or not.
    pub fn n_throttled(&self) -> u64 {
        self.n_throttled
    }
}

#[cfg(test)]
mod tests;
