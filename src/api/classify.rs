//! What an answer means (SPEC §5): every error code, the service's or one of ours for a
//! transport failure, falls in one [`Class`].

use crate::action::Permission;

/// What an error means for the row and the job (SPEC §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `RequestLimitExceeded`: the service did nothing and asks for a slower pace; retried
    /// through the limiter without using one of the row's attempts.
    Throttled,
    /// Worth another attempt, after a backoff, through the limiter again.
    Transient,
    /// The endpoint could not be reached at all (DNS, refused, TLS): transient, unless the
    /// bucket has never reached it (see `retry`).
    Unreachable,
    /// An HTTP 4xx (not 408 or 429): the API answers everything with 200, so this is some
    /// other server's refusal; the endpoint is wrong if nothing else answered (see `retry`).
    Rejected,
    /// The clock is off: one more attempt, then the job stops.
    Clock,
    /// SHARE of an image already shared: the image is as asked.
    AlreadyDone,
    /// Nothing else can work either (credentials, account, endpoint): stop the job.
    JobFatal,
    /// The region cannot do this: its rows fail, the others go on.
    RegionFatal,
    /// This row cannot work: fail it, do not retry.
    Permanent,
}

/// Classifies an error code (the service's, or one of ours for transport failures).
pub fn classify(code: &str, permission: Permission) -> Class {
    let family = |prefix: &str| code == prefix || code.starts_with(&format!("{prefix}."));
    match code {
        "UnsupportedOperation.ImageAlreadyShared" if permission == Permission::Share => {
            Class::AlreadyDone
        }
        "AuthFailure.SignatureExpire" => Class::Clock,
        "UnsupportedOperation.ImageOccupied"
        | "FailedOperation.RequestError"
        | "ResourceUnavailable"
        | "ServiceUnavailable"
        | TIMEOUT
        | CONNECTION_ERROR
        | INVALID_RESPONSE => Class::Transient,
        CANNOT_CONNECT => Class::Unreachable,
        _ if family("RequestLimitExceeded") => Class::Throttled,
        _ if family("InternalError") => Class::Transient,
        _ if code.starts_with(HTTP_STATUS) => match code[HTTP_STATUS.len()..].parse::<u16>() {
            // The API never redirects: a redirect is the endpoint's, and is not followed.
            Ok(300..=399) => Class::JobFatal,
            Ok(408 | 429) => Class::Transient,
            Ok(400..=499) => Class::Rejected,
            _ => Class::Transient,
        },
        "ResourceNotFound.RoleNotFound"
        | "UnsupportedOperation.AssumeRoleFailed"
        | "InvalidAction"
        | "NoSuchVersion"
        | "NoSuchProduct"
        | "ActionOffline"
        | "IpInBlacklist"
        | "IpNotInWhitelist"
        | "UnsupportedProtocol"
        | CLOCK_OUT_OF_RANGE => Class::JobFatal,
        // The CAM policy lacks the action: no other row can get past it either.
        _ if family("AuthFailure") || family("UnauthorizedOperation") => Class::JobFatal,
        "UnsupportedRegion" => Class::RegionFatal,
        _ => Class::Permanent,
    }
}

/// Our own codes, for failures where the service gave none.
pub const TIMEOUT: &str = "Timeout";
pub const CONNECTION_ERROR: &str = "ConnectionError";
/// No connection could be made: the name did not resolve, the port refused, TLS failed.
pub const CANNOT_CONNECT: &str = "CannotConnect";
/// This machine's clock reads a time outside 1970–9999: nothing can be signed.
pub const CLOCK_OUT_OF_RANGE: &str = "ClockOutOfRange";
pub const INVALID_RESPONSE: &str = "InvalidResponse";
/// Followed by the status number: `HttpStatus503`.
pub const HTTP_STATUS: &str = "HttpStatus";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_the_table_has_its_class() {
        use Class::*;
        let share = Permission::Share;
        let cases = [
            ("UnsupportedOperation.ImageOccupied", Transient),
            ("RequestLimitExceeded", Throttled),
            ("RequestLimitExceeded.UinLimitExceeded", Throttled),
            ("RequestLimitExceeded.IPLimitExceeded", Throttled),
            ("RequestLimitExceededish", Permanent),
            ("InternalError", Transient),
            ("InternalError.RequestError", Transient),
            ("FailedOperation.RequestError", Transient),
            ("ResourceUnavailable", Transient),
            ("ServiceUnavailable", Transient),
            ("HttpStatus503", Transient),
            ("HttpStatus500", Transient),
            ("HttpStatus408", Transient),
            ("HttpStatus429", Transient),
            ("HttpStatus404", Rejected),
            ("HttpStatus401", Rejected),
            ("HttpStatus403", Rejected),
            ("HttpStatus405", Rejected),
            ("HttpStatus301", JobFatal),
            ("HttpStatus307", JobFatal),
            ("CannotConnect", Unreachable),
            ("ClockOutOfRange", JobFatal),
            ("Timeout", Transient),
            ("ConnectionError", Transient),
            ("InvalidResponse", Transient),
            ("AuthFailure.SignatureExpire", Clock),
            ("UnsupportedOperation.ImageAlreadyShared", AlreadyDone),
            ("AuthFailure.SignatureFailure", JobFatal),
            ("AuthFailure.SecretIdNotFound", JobFatal),
            ("ResourceNotFound.RoleNotFound", JobFatal),
            ("UnsupportedOperation.AssumeRoleFailed", JobFatal),
            ("InvalidAction", JobFatal),
            ("IpNotInWhitelist", JobFatal),
            ("UnsupportedRegion", RegionFatal),
            ("ResourceNotFound.ImageIdNotFound", Permanent),
            ("UnsupportedOperation.ImageUnableToShare", Permanent),
            ("ResourceInUse.ImageInUse", Permanent),
            ("UnauthorizedOperation.NoPermission", JobFatal),
            ("UnauthorizedOperation", JobFatal),
            ("AuthFailure.UnauthorizedOperation", JobFatal),
            ("InternalErrorish", Permanent),
            ("SomethingNew", Permanent),
        ];
        for (code, class) in cases {
            assert_eq!(classify(code, share), class, "{code}");
        }
        assert_eq!(
            classify(
                "UnsupportedOperation.ImageAlreadyShared",
                Permission::Cancel
            ),
            Permanent,
            "only SHARE can be already done"
        );
    }
}
