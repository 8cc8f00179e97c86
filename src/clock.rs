//! The wall clock, read so that a clock outside 1970–9999 (a dead battery, a faked time) is
//! an error that names the fix, not a panic in date formatting.

use std::time::{SystemTime, UNIX_EPOCH};

/// 10000-01-01T00:00:00Z in unix seconds: RFC 3339 (and so `humantime`) stops before it.
const YEAR_10000: u64 = 253_402_300_800;

/// The clock reads a time no date can be written for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "this machine's clock reads {reading}, outside the years 1970 to 9999: set it right (for example with NTP) and run again"
)]
pub struct ClockError {
    reading: String,
}

/// `time` in unix seconds, if its year is 1970 to 9999.
pub fn unix_seconds(time: SystemTime) -> Result<u64, ClockError> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) if since.as_secs() < YEAR_10000 => Ok(since.as_secs()),
        Ok(since) => Err(ClockError {
            reading: format!(
                "{} seconds after 1970 (the year 10000 or later)",
                since.as_secs()
            ),
        }),
        Err(before) => Err(ClockError {
            reading: format!("{} seconds before 1970", before.duration().as_secs()),
        }),
    }
}

/// Now, in unix seconds.
pub fn unix_now() -> Result<u64, ClockError> {
    unix_seconds(SystemTime::now())
}

/// `time` as RFC 3339 UTC to the second, `2025-01-31T12:00:00Z`.
pub fn rfc3339(time: SystemTime) -> Result<String, ClockError> {
    unix_seconds(time)?;
    Ok(humantime::format_rfc3339_seconds(time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_clock_outside_1970_to_9999_is_an_error_not_a_panic() {
        let last = UNIX_EPOCH + Duration::from_secs(YEAR_10000 - 1);
        assert_eq!(rfc3339(last).unwrap(), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(UNIX_EPOCH).unwrap(), "1970-01-01T00:00:00Z");
        let after = rfc3339(UNIX_EPOCH + Duration::from_secs(YEAR_10000)).unwrap_err();
        assert!(after.to_string().contains("10000 or later"), "{after}");
        let before = rfc3339(UNIX_EPOCH - Duration::from_secs(60)).unwrap_err();
        assert!(
            before.to_string().contains("60 seconds before 1970"),
            "{before}"
        );
    }
}
