//! `DescribeImagesToShare` as the service documents it: the account's CVM custom images in the
//! access region, for sharing to Lighthouse, selected by `ImageIds` or `Filters` (`image-id`,
//! `image-name`, `image-type`, at most 5 values each; not both) and paged by `Offset` and
//! `Limit`. An id that is not in the region is simply absent from the answer.

use serde::Serialize;
use serde_json::{Map, Value};

use super::params::{self, Page, Selection};
use super::refusal::Refusal;
use super::state::ImageRecord;

/// The action's name (`X-TC-Action`); its version is the share's, 2020-03-24.
pub const ACTION: &str = "DescribeImagesToShare";
/// The parameters the action takes; any other is `UnknownParameter`.
pub const PARAMETERS: &[&str] = &["ImageIds", "Filters", "Offset", "Limit"];

const MAX_FILTERS: usize = 10;
const MAX_VALUES: usize = 5;
/// The filter names the action takes, in the order of [`Image::attribute`].
const FILTER_NAMES: [&str; 3] = ["image-id", "image-name", "image-type"];

/// Every image the simulator lists is a private custom image of this type.
const IMAGE_TYPE: &str = "PRIVATE_IMAGE";

/// A checked `DescribeImagesToShare` request.
#[derive(Debug)]
pub struct ImagesQuery {
    select: Select,
    page: Page,
}

#[derive(Debug)]
enum Select {
    All,
    Ids(Vec<String>),
    /// Per filter: the index of its name in [`FILTER_NAMES`], and its values.
    Filters(Vec<(usize, Vec<String>)>),
}

impl ImagesQuery {
    /// Reads the parameters as the service does (unknown ones are already refused).
    pub fn parse(fields: &Map<String, Value>) -> Result<Self, Refusal> {
        let select = match Selection::parse(fields, "ImageIds")? {
            Selection::Ids(ids) => Select::Ids(image_ids(ids)?),
            Selection::Filters(filters) => Select::Filters(
                params::filters(filters, &FILTER_NAMES, MAX_FILTERS, MAX_VALUES)?
                    .into_iter()
                    .map(|filter| (filter.index, filter.values))
                    .collect(),
            ),
            Selection::All => Select::All,
        };
        let page = Page::parse(fields)?;
        Ok(Self { select, page })
    }

    /// The image ids the query names: where a simulator without a catalog looks.
    pub fn named(&self) -> Vec<String> {
        match &self.select {
            Select::All => Vec::new(),
            Select::Ids(ids) => ids.clone(),
            Select::Filters(filters) => filters
                .iter()
                .filter(|(index, _)| FILTER_NAMES[*index] == "image-id")
                .flat_map(|(_, values)| values.iter().cloned())
                .collect(),
        }
    }

    /// The answer's fields: how many of `images` (ordered by id) match, and the page.
    pub fn answer(&self, images: &[(String, ImageRecord)]) -> Map<String, Value> {
        let matching: Vec<Image> = images
            .iter()
            .map(|(id, record)| Image::new(id, record))
            .filter(|image| self.matches(image))
            .collect();
        let mut answer = Map::new();
        answer.insert("TotalCount".to_string(), matching.len().into());
        answer.insert(
            "ImageSet".to_string(),
            serde_json::json!(self.page.of(&matching)),
        );
        answer
    }

    fn matches(&self, image: &Image) -> bool {
        match &self.select {
            Select::All => true,
            Select::Ids(ids) => ids.contains(&image.image_id),
            Select::Filters(filters) => filters.iter().all(|(index, values)| {
                let value = image.attribute(*index);
                values.iter().any(|v| v == value)
            }),
        }
    }
}

fn image_ids(value: &Value) -> Result<Vec<String>, Refusal> {
    let ids = params::strings(value, "InvalidParameter", "ImageIds")?;
    if let Some(bad) = ids.iter().find(|id| !crate::action::is_image_id(id)) {
        return Err(Refusal::new(
            "InvalidParameterValue.InvalidImageIdMalformed",
            format!("The image ID `{bad}` is malformed."),
        ));
    }
    Ok(ids)
}

/// An image as the answer carries it: every field of the API's `Image` structure, so that a
/// client decoding it strictly is tested too.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Image {
    image_id: String,
    image_name: String,
    image_type: &'static str,
    image_state: String,
    image_source: &'static str,
    image_class: &'static str,
    /// In GB.
    image_size: u64,
    created_time: &'static str,
    is_support_cloudinit: bool,
    architecture: &'static str,
    os_name: &'static str,
    platform: &'static str,
    is_shareable: bool,
    /// Free text from the service; empty when the image can be shared.
    unshareable_reason: String,
}

impl Image {
    fn new(image_id: &str, record: &ImageRecord) -> Self {
        Self {
            image_id: image_id.to_string(),
            // The simulator knows no names: an image is named by its id.
            image_name: image_id.to_string(),
            image_type: IMAGE_TYPE,
            image_state: record.state.clone(),
            image_source: "CREATE_IMAGE",
            image_class: "Standard",
            image_size: 50,
            created_time: "2024-01-01T00:00:00Z",
            is_support_cloudinit: true,
            architecture: "x86_64",
            os_name: "TencentOS Server 3.1 (TK4)",
            platform: "TencentOS",
            is_shareable: record.is_shareable(),
            unshareable_reason: record.reason(),
        }
    }

    /// The field the filter at `index` of [`FILTER_NAMES`] matches.
    fn attribute(&self, index: usize) -> &str {
        match index {
            0 => &self.image_id,
            1 => &self.image_name,
            _ => self.image_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(body: Value) -> &'static str {
        let Value::Object(fields) = body else {
            unreachable!("the tests give objects")
        };
        ImagesQuery::parse(&fields)
            .map(|_| "OK")
            .unwrap_or_else(|r| r.code)
    }

    #[test]
    fn refuses_parameters_as_the_service_does() {
        let six: Vec<String> = (0..6).map(|i| format!("img-0000000{i}")).collect();
        for (body, expected) in [
            (json!({}), "OK"),
            (
                json!({"ImageIds": [], "Filters": []}),
                "InvalidParameter.ParameterConflict",
            ),
            (
                json!({"Filters": [{"Name": "image-state", "Values": ["NORMAL"]}]}),
                "InvalidParameter.InvalidFilterNotSupportedName",
            ),
            (
                json!({"Filters": [{"Name": "image-id", "Values": six}]}),
                "InvalidParameter.FilterValueLimitExceeded",
            ),
            (
                json!({"ImageIds": ["img-BAD"]}),
                "InvalidParameterValue.InvalidImageIdMalformed",
            ),
            (json!({"Limit": 100}), "OK"),
            (json!({"Limit": 101}), "InvalidParameterValue.OutOfRange"),
        ] {
            assert_eq!(code(body.clone()), expected, "{body}");
        }
    }
}
