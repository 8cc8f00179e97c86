//! `DescribeImagesToShare`: which of some images a region has, each with whether it can be
//! shared to Lighthouse and, if not, the service's own reason (SPEC §10). An image that is
//! not in the region is simply absent from the answer.

use serde::Deserialize;

use super::{Action, Kind, is_refused};
use crate::action::{self, Permission};
use crate::api::{ApiError, Class, classify, read_answer};

/// One preflight request: these images (at most [`action::IMAGES_LIMIT`]) in `region`.
#[derive(Clone, Debug)]
pub struct DescribeImages {
    pub region: &'static str,
    pub image_ids: Vec<String>,
}

/// An image as the preflight needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub image_id: String,
    /// `ImageState`: only `NORMAL` images can be shared. Outside text: neutralise it
    /// before showing it.
    pub state: String,
    /// `IsShareable`.
    pub shareable: bool,
    /// `UnshareableReason`: free text, shown (neutralised), never parsed.
    pub unshareable_reason: String,
}

/// The state a shareable image is in.
pub const NORMAL: &str = "NORMAL";

#[derive(Debug, Deserialize)]
struct Fields {
    #[serde(rename = "ImageSet", default)]
    image_set: Vec<Entry>,
}

/// The fields of an `Image` the preflight reads; the rest are left alone.
#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "ImageId")]
    image_id: String,
    #[serde(rename = "ImageState", default)]
    image_state: Option<String>,
    /// Absent or null reads as shareable: the preflight must not name a row as failing on a
    /// field the answer did not give.
    #[serde(rename = "IsShareable", default)]
    is_shareable: Option<bool>,
    #[serde(rename = "UnshareableReason", default)]
    unshareable_reason: Option<String>,
}

impl Action for DescribeImages {
    type Output = Vec<Image>;
    const KIND: Kind = Kind::DescribeImages;

    fn region(&self) -> &'static str {
        self.region
    }

    fn body(&self) -> Vec<u8> {
        action::images_body(&self.image_ids)
    }

    /// As a look-up's, except that a policy without this action is not job-fatal: the dry
    /// run goes on without preflight (SPEC §10), and the preflight tells it by
    /// [`is_refused`].
    fn class(&self, code: &str) -> Class {
        match is_refused(code) {
            true => Class::Permanent,
            false => classify(code, Permission::Cancel),
        }
    }

    fn read(&self, answer: &[u8]) -> Result<Vec<Image>, ApiError> {
        let (_, fields): (_, Fields) = read_answer(answer, |code| self.class(code))?;
        Ok(fields
            .image_set
            .into_iter()
            .map(|entry| Image {
                image_id: entry.image_id,
                // Absent: nothing says it is not NORMAL.
                state: entry.image_state.unwrap_or_else(|| NORMAL.to_string()),
                shareable: entry.is_shareable.unwrap_or(true),
                unshareable_reason: entry.unshareable_reason.unwrap_or_default(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> DescribeImages {
        DescribeImages {
            region: "ap-seoul",
            image_ids: vec!["img-aaaaaaaa".into(), "img-bbbbbbbb".into()],
        }
    }

    #[test]
    fn an_answer_gives_each_image_with_its_state_and_whether_it_can_be_shared() {
        let answer = br#"{"Response":{"TotalCount":2,"ImageSet":[
            {"ImageId":"img-aaaaaaaa","ImageName":"a","ImageType":"PRIVATE_IMAGE","ImageState":"NORMAL",
             "IsSupportCloudinit":true,"IsShareable":true,"UnshareableReason":""},
            {"ImageId":"img-bbbbbbbb","ImageState":"CREATING","IsShareable":false,
             "UnshareableReason":"no cloud-init"}],
            "RequestId":"r"}}"#;
        assert_eq!(
            request().read(answer).unwrap(),
            [
                Image {
                    image_id: "img-aaaaaaaa".into(),
                    state: "NORMAL".into(),
                    shareable: true,
                    unshareable_reason: String::new(),
                },
                Image {
                    image_id: "img-bbbbbbbb".into(),
                    state: "CREATING".into(),
                    shareable: false,
                    unshareable_reason: "no cloud-init".into(),
                },
            ]
        );
        let empty = br#"{"Response":{"TotalCount":0,"ImageSet":[],"RequestId":"r"}}"#;
        assert!(request().read(empty).unwrap().is_empty());
    }

    #[test]
    fn a_policy_without_the_action_is_not_job_fatal() {
        let refused = br#"{"Response":{"Error":{"Code":"UnauthorizedOperation.NoPermission","Message":"no"},"RequestId":"r"}}"#;
        let error = request().read(refused).unwrap_err();
        assert_eq!(error.class, Class::Permanent);
        assert!(is_refused(&error.code));
        let bad_key =
            br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure"},"RequestId":"r"}}"#;
        assert_eq!(request().read(bad_key).unwrap_err().class, Class::JobFatal);
        let busy = br#"{"Response":{"Error":{"Code":"InternalError"},"RequestId":"r"}}"#;
        assert_eq!(request().read(busy).unwrap_err().class, Class::Transient);
    }

    #[test]
    fn the_body_names_the_images() {
        assert_eq!(
            request().body(),
            br#"{"ImageIds":["img-aaaaaaaa","img-bbbbbbbb"],"Limit":100,"Offset":0}"#
        );
    }
}
