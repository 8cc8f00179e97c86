//! Facts about the API actions this tool calls (the share, and the state look-up), shared by
//! the client and the simulator.

use std::fmt;

/// The product's service name: it goes into the credential scope, never taken from the host.
pub const SERVICE: &str = "lighthouse";
pub const ACTION: &str = "ModifyImageSharePermission";
/// The state look-up (SPEC §9); same version, signing and endpoint as the share.
pub const DESCRIBE_ACTION: &str = "DescribeBlueprints";
/// The preflight (SPEC §10): which images exist and can be shared; its own limit of 20/s.
pub const IMAGES_ACTION: &str = "DescribeImagesToShare";
/// The most blueprints one look-up page holds.
pub const DESCRIBE_LIMIT: u64 = 100;
/// The most image ids one preflight request names: no maximum is documented, and 100 is the
/// most images one answer lists (`Limit`).
pub const IMAGES_LIMIT: usize = 100;
/// The code of a share refused because the image is not in the row's region.
pub const IMAGE_NOT_FOUND: &str = "ResourceNotFound.ImageIdNotFound";
pub const VERSION: &str = "2020-03-24";
pub const CONTENT_TYPE: &str = "application/json";

/// The regions where `ModifyImageSharePermission` is offered.
pub const REGIONS: [&str; 15] = [
    "ap-bangkok",
    "ap-beijing",
    "ap-chengdu",
    "ap-guangzhou",
    "ap-hongkong",
    "ap-jakarta",
    "ap-nanjing",
    "ap-seoul",
    "ap-shanghai",
    "ap-singapore",
    "ap-tokyo",
    "eu-frankfurt",
    "na-ashburn",
    "na-siliconvalley",
    "sa-saopaulo",
];

/// What a row asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Permission {
    Share,
    Cancel,
}

impl Permission {
    pub const ALL: [&'static str; 2] = ["SHARE", "CANCEL"];

    /// Parses the API's spelling, in any case.
    pub fn parse(value: &str) -> Option<Self> {
        if value.eq_ignore_ascii_case("SHARE") {
            Some(Self::Share)
        } else if value.eq_ignore_ascii_case("CANCEL") {
            Some(Self::Cancel)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Share => "SHARE",
            Self::Cancel => "CANCEL",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one rate-limit budget covers. Tencent counts the limit per action, access region (the
/// endpoint that receives the request) and account: region-pinned endpoints give each region
/// its own budget, and one endpoint for all regions shares a single one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RateScope {
    Region,
    Endpoint,
}

/// The region in its canonical spelling, if `value` names a supported one (any case).
pub fn supported_region(value: &str) -> Option<&'static str> {
    // Nearly every cell is spelled as the list spells it: an exact match first is cheaper.
    let exact = REGIONS.iter().copied().find(|region| *region == value);
    exact.or_else(|| {
        REGIONS
            .iter()
            .copied()
            .find(|region| region.eq_ignore_ascii_case(value))
    })
}

/// `img-` followed by exactly 8 of `[a-z0-9]`.
pub fn is_image_id(value: &str) -> bool {
    value.strip_prefix("img-").is_some_and(|rest| {
        rest.len() == 8
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// The request body, serialised exactly as it is signed and sent.
pub fn request_body(image_id: &str, permission: Permission) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ImageId": image_id,
        "Permission": permission.as_str(),
    }))
    .expect("a map of two strings always serialises")
}

/// The body of one look-up page: the region's `SHARED` blueprints (`shared_only`), or all of
/// them, [`DESCRIBE_LIMIT`] from `offset`.
pub fn describe_body(shared_only: bool, offset: u64) -> Vec<u8> {
    let mut body = serde_json::json!({ "Offset": offset, "Limit": DESCRIBE_LIMIT });
    if shared_only {
        body["Filters"] = serde_json::json!([{ "Name": "blueprint-type", "Values": ["SHARED"] }]);
    }
    serde_json::to_vec(&body).expect("a map of numbers and strings always serialises")
}

/// The body of one preflight request: these images (at most [`IMAGES_LIMIT`]), all in one
/// answer. `Limit` is said because its default (20) would leave images out of the answer,
/// and an image left out reads as "not in this region".
pub fn images_body(image_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ImageIds": image_ids,
        "Offset": 0,
        "Limit": IMAGES_LIMIT,
    }))
    .expect("a list of strings and numbers always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_are_img_dash_eight_lowercase_alphanumerics() {
        assert!(is_image_id("img-xkd784jw"));
        assert!(!is_image_id("img-BAD"));
        assert!(!is_image_id("img-XKD784JW"));
        assert!(!is_image_id("img-xkd784j"));
        assert!(!is_image_id("img-xkd784jww"));
        assert!(!is_image_id("xkd784jw"));
    }

    #[test]
    fn regions_and_permissions_match_in_any_case() {
        assert_eq!(supported_region("AP-Guangzhou"), Some("ap-guangzhou"));
        assert_eq!(supported_region("ap-guangzhou-3"), None);
        assert_eq!(Permission::parse("cancel"), Some(Permission::Cancel));
        assert_eq!(Permission::parse("CANEL"), None);
    }

    #[test]
    fn body_has_the_exact_bytes_of_the_vectors() {
        assert_eq!(
            request_body("img-xkd784jw", Permission::Share),
            br#"{"ImageId":"img-xkd784jw","Permission":"SHARE"}"#
        );
    }

    #[test]
    fn a_preflight_body_asks_for_every_image_named_in_one_answer() {
        let ids = ["img-aaaaaaaa".to_string(), "img-bbbbbbbb".to_string()];
        assert_eq!(
            images_body(&ids),
            br#"{"ImageIds":["img-aaaaaaaa","img-bbbbbbbb"],"Limit":100,"Offset":0}"#
        );
    }
}
