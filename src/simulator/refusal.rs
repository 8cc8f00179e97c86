//! The service's refusals: an error code and a message, answered with HTTP 200. Every other
//! part of the simulator speaks in these, so this module depends on nothing else of it.

/// The service's answer to a request it refused or could not carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The service's answer to a caller whose CAM policy does not allow `action`.
    pub fn no_permission(action: &str, region: &str) -> Self {
        Self::new(
            "UnauthorizedOperation.NoPermission",
            format!(
                "you are not authorized to perform operation (lighthouse:{action})\nresource (qcs::lighthouse:{region}:uin/100000000001:*) has no permission\n"
            ),
        )
    }

    /// `RequestLimitExceeded`, quoting the limit as the service does.
    pub fn limit_exceeded(rate: usize) -> Self {
        Self::new(
            "RequestLimitExceeded",
            format!(
                "Your current request times equals to `{rate}` in a second, which exceeds the frequency limit `{rate}` for a second. Please reduce the frequency of calls."
            ),
        )
    }
}
