//! `ModifyImageSharePermission`: its parameters, checked as the service checks them, and its
//! answer. The state change itself is the account's (`state.rs`), so that the listings and
//! the admin requests see the same images.

use serde_json::{Map, Value};

use super::refusal::Refusal;
use crate::action::{self, Permission};

/// The parameters the action takes; any other is `UnknownParameter`.
pub const PARAMETERS: &[&str] = &["ImageId", "Permission"];

/// A checked `ModifyImageSharePermission` request.
#[derive(Debug)]
pub struct ShareRequest {
    pub image_id: String,
    pub permission: Permission,
}

impl ShareRequest {
    pub fn parse(fields: &Map<String, Value>) -> Result<Self, Refusal> {
        let image_id = string(fields, "ImageId")?;
        if !action::is_image_id(&image_id) {
            return Err(Refusal::new(
                "InvalidParameterValue.InvalidImageIdMalformed",
                format!("The image ID `{image_id}` is malformed."),
            ));
        }
        let permission = string(fields, "Permission")?;
        let permission = match permission.as_str() {
            "SHARE" => Permission::Share,
            "CANCEL" => Permission::Cancel,
            _ => {
                return Err(Refusal::new(
                    "InvalidParameterValue",
                    format!(
                        "The value `{permission}` of parameter `Permission` is invalid: SHARE or CANCEL."
                    ),
                ));
            }
        };
        Ok(Self {
            image_id,
            permission,
        })
    }
}

fn string(fields: &Map<String, Value>, name: &str) -> Result<String, Refusal> {
    match fields.get(name) {
        None => Err(Refusal::new(
            "MissingParameter",
            format!("The request is missing the required parameter `{name}`."),
        )),
        Some(Value::String(value)) => Ok(value.clone()),
        Some(_) => Err(Refusal::new(
            "InvalidParameter",
            format!("The parameter `{name}` must be a string."),
        )),
    }
}

/// The answer's fields: the BlueprintId of a SHARE, null for a CANCEL.
pub fn answer(blueprint_id: Option<String>) -> Map<String, Value> {
    let mut answer = Map::new();
    answer.insert("BlueprintId".to_string(), blueprint_id.into());
    answer
}
