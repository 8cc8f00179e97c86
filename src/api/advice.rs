//! What a job-fatal answer most likely means, and what to do about it.

use super::{ApiError, Class, HTTP_STATUS, classify};
use crate::action::Permission;

/// The message that ends a job stopped by `error`: the code, the service's words, the
/// likely cause and the fix.
pub fn fatal_advice(error: &ApiError) -> String {
    let advice = match error.code.as_str() {
        "AuthFailure.SignatureFailure" => {
            "the secret key does not match the secret id: check the secret key"
        }
        "AuthFailure.SecretIdNotFound" | "AuthFailure.InvalidSecretId" => {
            "the secret id is unknown: check it, or whether the key was deleted"
        }
        "AuthFailure.SignatureExpire" => {
            "this machine's clock is off by more than 5 minutes: fix it (for example with NTP) and resume"
        }
        "AuthFailure.TokenFailure" => {
            "the session token is wrong or expired: get fresh temporary credentials"
        }
        code if code == "AuthFailure.UnauthorizedOperation"
            || code.starts_with("UnauthorizedOperation") =>
        {
            "the CAM policy of these credentials does not allow the action: grant `lighthouse:ModifyImageSharePermission` (in the CAM console, or a policy with that action on the images' resources) and resume"
        }
        "ResourceNotFound.RoleNotFound" => {
            "the Lighthouse service role does not exist: create it in the CAM console (authorise Lighthouse) and resume"
        }
        "UnsupportedOperation.AssumeRoleFailed" => {
            "Lighthouse could not assume its service role: check the role in the CAM console"
        }
        "IpInBlacklist" | "IpNotInWhitelist" => {
            "this machine's IP address is not allowed to call the API: check the account's IP allow list"
        }
        "ClockOutOfRange" => "nothing can be signed with this clock",
        code if classify(code, Permission::Share) == Class::Rejected => {
            "every answer from this endpoint so far is an HTTP refusal, never the API's: check --endpoint (the default is https://lighthouse.{region}.tencentcloudapi.com)"
        }
        code if code.starts_with(HTTP_STATUS) => {
            "the Lighthouse API never redirects, so --endpoint does not point at it"
        }
        _ => "no row can get past this answer",
    };
    let words = match error.message.as_str() {
        "" => String::new(),
        message => format!(" ({message})"),
    };
    format!(
        "{}{words}: {advice}. The rows not run are marked skipped; fix this and rerun with --resume",
        error.code
    )
}

/// Why a region's rows fail unsent: the region refuses the action, or its endpoint was
/// never reached.
pub fn region_advice(error: &ApiError) -> String {
    match error.class {
        Class::Unreachable => format!(
            "no request to this region's endpoint could connect, so its other rows are not sent ({})",
            error.message
        ),
        _ => format!(
            "the region refuses this action ({}: {}): its rows fail, the others go on",
            error.code, error.message
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_cam_permission_names_the_action_to_grant() {
        for code in [
            "UnauthorizedOperation.NoPermission",
            "UnauthorizedOperation",
            "AuthFailure.UnauthorizedOperation",
        ] {
            let error = ApiError {
                code: code.into(),
                message: "No permission.".into(),
                request_id: None,
                class: Class::JobFatal,
            };
            let advice = fatal_advice(&error);
            assert!(
                advice.contains("lighthouse:ModifyImageSharePermission") && advice.contains(code),
                "{advice}"
            );
        }
    }
}
