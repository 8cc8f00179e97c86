//! What a simulator is asked to be: its account, limits, faults and the account's starting
//! state. `lighthouse-share simulate` builds one from its flags; tests build one in code.

use std::time::Duration;

use crate::action::RateScope;
use crate::credentials::Credentials;

use super::state::SeededImage;
use super::window::Count;

/// The simulator's built-in account: obviously fake, and documented in the README.
pub const DEFAULT_SECRET_ID: &str = "AKIDsimulator";
pub const DEFAULT_SECRET_KEY: &str = "simulator-secret-key";

/// The probability of each fault per `ModifyImageSharePermission` request (the look-ups draw
/// none of them: a rehearsal of the writes' faults should not also break the reads), and the
/// faults of the look-up.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub occupied: f64,
    pub internal_error: f64,
    pub http_error: f64,
    pub reset: f64,
    pub stall: f64,
    /// The share of images that do not exist (always the same images for one seed).
    pub missing: f64,
    /// `UnauthorizedOperation.NoPermission`: a CAM policy that lacks
    /// `lighthouse:ModifyImageSharePermission`, or a condition that denies some requests.
    pub unauthorized: f64,
    /// Every `DescribeBlueprints` answers `UnauthorizedOperation.NoPermission`: a CAM policy
    /// that allows the share but not the look-up (SPEC §9 says the run then warns and goes on).
    pub unauthorized_describe: bool,
    /// Broken `DescribeBlueprints` listings, as a backend in trouble answers them (a rehearsal
    /// aid: the client must not believe an inconsistent listing).
    pub describe: Vec<DescribeFault>,
}

/// A way a `DescribeBlueprints` listing can be broken (`--describe-fault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescribeFault {
    /// The first page (`Offset` 0) comes back empty while `TotalCount` says how many there
    /// are, as during a backend failover: for the first `n` such pages per region, or for
    /// every one when `None`.
    EmptyFirst(Option<u64>),
    /// Every `Offset` answers the first page.
    RepeatPage,
    /// `TotalCount` says this, whatever the listing holds.
    Total(u64),
}

impl DescribeFault {
    /// Reads `empty-first`, `empty-first=N`, `repeat-page` or `total=N`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let number = |n: &str| {
            n.parse::<u64>()
                .map_err(|_| format!("`{value}`: `{n}` is not a whole number"))
        };
        match value.split_once('=') {
            None if value == "empty-first" => Ok(Self::EmptyFirst(None)),
            None if value == "repeat-page" => Ok(Self::RepeatPage),
            Some(("empty-first", n)) => Ok(Self::EmptyFirst(Some(number(n)?))),
            Some(("total", n)) => Ok(Self::Total(number(n)?)),
            _ => Err(format!(
                "`{value}` is not a listing fault: give empty-first, empty-first=N, repeat-page or total=N"
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// The accounts whose signatures are accepted.
    pub accounts: Vec<Credentials>,
    /// `ModifyImageSharePermission` requests admitted per bucket in any one-second window.
    pub rate: usize,
    /// `DescribeBlueprints` requests admitted per bucket in any one-second window: the look-up
    /// has its own limit, apart from the share's.
    pub describe_rate: usize,
    /// `DescribeImagesToShare` requests admitted per bucket in any one-second window (its own
    /// limit too: 20/s as documented).
    pub images_rate: usize,
    pub rate_scope: RateScope,
    /// Whether a refused request uses up the window.
    pub count: Count,
    pub faults: Faults,
    pub seed: u64,
    /// Each answer is delayed by a uniform draw from this range, in milliseconds.
    pub latency_ms: (u64, u64),
    /// Regions where the action is withdrawn: they answer `UnsupportedRegion`.
    pub withdrawn_regions: Vec<String>,
    /// How far the server's clock is ahead of this machine's (negative: behind), to rehearse
    /// `AuthFailure.SignatureExpire`.
    pub clock_skew_secs: i64,
    /// Images shared before the simulator starts, as `(region, image_id)`.
    pub shared: Vec<(String, String)>,
    /// The images that exist, per region. `None`: every image id exists in every region,
    /// shareable and `NORMAL`. `Some`: only these (and those in `shared`) exist, and the
    /// writes agree with `DescribeImagesToShare`.
    pub images: Option<Vec<SeededImage>>,
    /// How long the first request on each new connection waits before it is read: what a TLS
    /// handshake costs a client that opens connections instead of reusing them.
    pub connect_latency: Duration,
    /// Each request is counted a uniform draw of 0 to this after it arrives (see
    /// [`super::window::uplink_delay`]).
    pub uplink_jitter: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            accounts: vec![Credentials::new(
                DEFAULT_SECRET_ID,
                DEFAULT_SECRET_KEY,
                None,
            )],
            rate: 20,
            describe_rate: 10,
            images_rate: 20,
            rate_scope: RateScope::Region,
            count: Count::Admitted,
            faults: Faults::default(),
            seed: 0,
            latency_ms: (0, 0),
            clock_skew_secs: 0,
            withdrawn_regions: Vec::new(),
            shared: Vec::new(),
            images: None,
            connect_latency: Duration::ZERO,
            uplink_jitter: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_faults_parse_and_bad_ones_are_named() {
        assert_eq!(
            DescribeFault::parse("empty-first"),
            Ok(DescribeFault::EmptyFirst(None))
        );
        assert_eq!(
            DescribeFault::parse("empty-first=2"),
            Ok(DescribeFault::EmptyFirst(Some(2)))
        );
        assert_eq!(
            DescribeFault::parse("repeat-page"),
            Ok(DescribeFault::RepeatPage)
        );
        assert_eq!(
            DescribeFault::parse("total=1000000000"),
            Ok(DescribeFault::Total(1_000_000_000))
        );
        for bad in ["total", "total=x", "empty", "repeat-page=1"] {
            let error = DescribeFault::parse(bad).expect_err(bad);
            assert!(error.contains(bad), "{error}");
        }
    }
}
