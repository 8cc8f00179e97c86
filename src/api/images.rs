//! `DescribeImagesToShare`'s answer: the account's CVM images in the access region, each with
//! whether it can be shared to Lighthouse and, if not, the service's own reason (SPEC §10).
//! An image that is not in the region is simply absent.

use serde::Deserialize;

use super::{ApiError, LOOKUP, parse_answer};

/// An image as the preflight needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub image_id: String,
    /// `ImageState`: only `NORMAL` images can be shared. Outside text: neutralise it
    /// before showing it.
    pub state: String,
    /// `IsShareable`.
    pub shareable: bool,
    /// `UnshareableReason`: free text, shown as it is (neutralised), never parsed.
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
    /// Absent or null is read as shareable: the preflight only explains, and must not
    /// name a row as failing on a field the answer did not give.
    #[serde(rename = "IsShareable", default)]
    is_shareable: Option<bool>,
    #[serde(rename = "UnshareableReason", default)]
    unshareable_reason: Option<String>,
}

/// The images of one answer, or its error (classified as a look-up's).
pub fn read_images(bytes: &[u8]) -> Result<Vec<Image>, ApiError> {
    let (_, fields): (_, Fields) = parse_answer(bytes, LOOKUP)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Class;

    #[test]
    fn an_answer_gives_each_image_with_its_state_and_whether_it_can_be_shared() {
        let answer = br#"{"Response":{"TotalCount":2,"ImageSet":[
            {"ImageId":"img-aaaaaaaa","ImageName":"a","ImageType":"PRIVATE_IMAGE","ImageState":"NORMAL",
             "IsSupportCloudinit":true,"IsShareable":true,"UnshareableReason":""},
            {"ImageId":"img-bbbbbbbb","ImageState":"CREATING","IsShareable":false,
             "UnshareableReason":"no cloud-init"}],
            "RequestId":"r"}}"#;
        let images = read_images(answer).unwrap();
        assert_eq!(
            images,
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
        assert!(read_images(empty).unwrap().is_empty());
    }

    #[test]
    fn a_refusal_is_an_error_with_its_code() {
        let refused = br#"{"Response":{"Error":{"Code":"UnauthorizedOperation.NoPermission","Message":"no"},"RequestId":"r"}}"#;
        let error = read_images(refused).unwrap_err();
        assert_eq!(error.code, "UnauthorizedOperation.NoPermission");
        let busy = br#"{"Response":{"Error":{"Code":"InternalError"},"RequestId":"r"}}"#;
        assert_eq!(read_images(busy).unwrap_err().class, Class::Transient);
    }
}
