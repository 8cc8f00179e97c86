//! `DescribeBlueprints`: one page of a region's blueprints, for the state look-up (SPEC §9).

use serde::Deserialize;

use super::{Action, Kind};
use crate::action::{self, Permission};
use crate::api::{ApiError, Class, classify, read_answer};
use crate::text;

/// Which blueprints a look-up lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blueprints {
    /// Type `SHARED`: those shared from CVM images (SPEC §9).
    Shared,
    /// Every type: the fresh look-up, which must not depend on the inferred `SHARED` type.
    All,
}

/// One page request.
#[derive(Clone, Copy, Debug)]
pub struct DescribeBlueprints {
    pub region: &'static str,
    pub kind: Blueprints,
    pub offset: u64,
}

/// One page of a look-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// How many blueprints match in all, over every page, as this page says.
    pub total: u64,
    /// How many blueprints this page lists: the next page starts that much further.
    pub n_listed: u64,
    /// The BlueprintId of every blueprint the page lists, public ones included: what tells a
    /// page that adds something from one that repeats an earlier one.
    pub ids: Vec<String>,
    /// (ImageId, BlueprintId) of this page's blueprints that came from a CVM image.
    pub blueprints: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
struct Fields {
    #[serde(rename = "TotalCount", default)]
    total_count: u64,
    #[serde(rename = "BlueprintSet", default)]
    blueprint_set: Vec<Entry>,
}

/// The fields of a `Blueprint` the look-up needs.
#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "BlueprintId")]
    blueprint_id: String,
    #[serde(rename = "ImageId", default)]
    image_id: Option<String>,
}

/// `UnauthorizedOperation.*` (or its `AuthFailure.` form): the CAM policy lacks the action.
pub fn is_refused(code: &str) -> bool {
    code == "UnauthorizedOperation"
        || code.starts_with("UnauthorizedOperation.")
        || code == "AuthFailure.UnauthorizedOperation"
}

impl Action for DescribeBlueprints {
    type Output = Page;
    const KIND: Kind = Kind::DescribeBlueprints;

    fn region(&self) -> &'static str {
        self.region
    }

    fn body(&self) -> Vec<u8> {
        action::describe_body(self.kind == Blueprints::Shared, self.offset)
    }

    /// As a CANCEL's (no look-up answer means "already done"), except that a policy
    /// without this action is not job-fatal: the look-up is left out (SPEC §9), and the
    /// look-up stage tells it by [`is_refused`].
    fn class(&self, code: &str) -> Class {
        match is_refused(code) {
            true => Class::Permanent,
            false => classify(code, Permission::Cancel),
        }
    }

    fn read(&self, answer: &[u8]) -> Result<Page, ApiError> {
        let (_, fields): (_, Fields) = read_answer(answer, |code| self.class(code))?;
        Ok(Page {
            total: fields.total_count,
            n_listed: fields.blueprint_set.len() as u64,
            ids: fields
                .blueprint_set
                .iter()
                .map(|b| b.blueprint_id.clone())
                .collect(),
            blueprints: fields
                .blueprint_set
                .into_iter()
                // Outside text that reaches the results and the log: neutralised here.
                .filter_map(|b| Some((b.image_id?, text::for_line(&b.blueprint_id).into_owned())))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: DescribeBlueprints = DescribeBlueprints {
        region: "ap-seoul",
        kind: Blueprints::Shared,
        offset: 0,
    };

    #[test]
    fn a_page_keeps_the_blueprints_shared_from_an_image() {
        let page = br#"{"Response":{"TotalCount":3,"BlueprintSet":[
            {"BlueprintId":"lhbp-pub","BlueprintType":"APP_OS","ImageId":null},
            {"BlueprintId":"lhbp-a","BlueprintType":"SHARED","ImageId":"img-aaaaaaaa"}],
            "RequestId":"r"}}"#;
        let page = PAGE.read(page).unwrap();
        assert_eq!((page.total, page.n_listed), (3, 2));
        assert_eq!(
            page.blueprints,
            [("img-aaaaaaaa".to_string(), "lhbp-a".to_string())]
        );
    }

    #[test]
    fn a_policy_without_the_look_up_is_not_job_fatal() {
        let refused = br#"{"Response":{"Error":{"Code":"UnauthorizedOperation.NoPermission"},"RequestId":"r"}}"#;
        let error = PAGE.read(refused).unwrap_err();
        assert_eq!(error.class, Class::Permanent);
        assert!(is_refused(&error.code));
        let bad_key =
            br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure"},"RequestId":"r"}}"#;
        assert_eq!(PAGE.read(bad_key).unwrap_err().class, Class::JobFatal);
    }
}
