//! `DescribeBlueprints` as the service has it: the state look-up a run makes before it shares
//! (SPEC §9). It answers the region's public blueprints and one `SHARED` blueprint per image
//! shared there, selected by `BlueprintIds` or `Filters` and paged by `Offset` and `Limit`,
//! refusing bad parameters with the codes the SDKs list for this action.

use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Map, Value};

use super::check::Refusal;

/// The look-up's action name (`X-TC-Action`); its version is the share's, 2020-03-24.
pub const ACTION: &str = crate::action::DESCRIBE_ACTION;
/// The parameters the action takes; any other is `UnknownParameter`.
pub const PARAMETERS: &[&str] = &["BlueprintIds", "Filters", "Offset", "Limit"];

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;
const MAX_IDS: usize = 100;
const MAX_FILTERS: usize = 10;
const MAX_VALUES: usize = 100;

/// A checked `DescribeBlueprints` request.
#[derive(Debug)]
pub struct Query {
    select: Select,
    offset: usize,
    limit: usize,
}

#[derive(Debug)]
enum Select {
    All,
    Ids(Vec<String>),
    Filters(Vec<Filter>),
}

/// One filter: a blueprint matches if its field has any of the values.
#[derive(Debug)]
struct Filter {
    field: Field,
    values: Vec<String>,
}

/// The blueprint fields a filter can name.
#[derive(Clone, Copy, Debug)]
enum Field {
    BlueprintId,
    BlueprintType,
    PlatformType,
    BlueprintName,
    BlueprintState,
}

const FIELDS: [(&str, Field); 5] = [
    ("blueprint-id", Field::BlueprintId),
    ("blueprint-type", Field::BlueprintType),
    ("platform-type", Field::PlatformType),
    ("blueprint-name", Field::BlueprintName),
    ("blueprint-state", Field::BlueprintState),
];

const BLUEPRINT_TYPES: &[&str] = &["APP_OS", "PURE_OS", "DOCKER", "PRIVATE", "SHARED"];
const PLATFORM_TYPES: &[&str] = &["LINUX_UNIX", "WINDOWS"];
const BLUEPRINT_STATES: &[&str] = &[
    "NORMAL",
    "SYNCING",
    "OFFLINE",
    "CREATEFAILED",
    "SYNCING_FAILED",
    "ISOLATING",
    "ISOLATED",
    "DELETING",
    "DESTROYING",
];

impl Field {
    /// The values the service takes for this field and the code it refuses others with;
    /// `None` when any value is taken.
    fn allowed(self) -> Option<(&'static [&'static str], &'static str)> {
        match self {
            Self::BlueprintType => Some((
                BLUEPRINT_TYPES,
                "InvalidParameterValue.InvalidBlueprintType",
            )),
            Self::PlatformType => Some((
                PLATFORM_TYPES,
                "InvalidParameterValue.InvalidBlueprintPlatformType",
            )),
            Self::BlueprintState => Some((
                BLUEPRINT_STATES,
                "InvalidParameterValue.InvalidBlueprintState",
            )),
            Self::BlueprintId | Self::BlueprintName => None,
        }
    }

    fn of(self, blueprint: &Blueprint) -> &str {
        match self {
            Self::BlueprintId => &blueprint.blueprint_id,
            Self::BlueprintType => blueprint.blueprint_type,
            Self::PlatformType => blueprint.platform_type,
            Self::BlueprintName => &blueprint.blueprint_name,
            Self::BlueprintState => blueprint.blueprint_state,
        }
    }
}

impl Query {
    /// Reads the parameters as the service does (unknown ones are already refused).
    pub fn parse(fields: &Map<String, Value>) -> Result<Self, Refusal> {
        let select = match (fields.get("BlueprintIds"), fields.get("Filters")) {
            (Some(_), Some(_)) => {
                return Err(Refusal::new(
                    "InvalidParameter.ParameterConflict",
                    "The parameters `BlueprintIds` and `Filters` cannot be specified at the same time.",
                ));
            }
            (Some(ids), None) => Select::Ids(blueprint_ids(ids)?),
            (None, Some(filters)) => Select::Filters(self::filters(filters)?),
            (None, None) => Select::All,
        };
        let offset = integer(fields, "Offset", 0)?;
        let offset = usize::try_from(offset).map_err(|_| {
            Refusal::new(
                "InvalidParameterValue.Negative",
                format!("The value `{offset}` of parameter `Offset` must not be negative."),
            )
        })?;
        let limit = integer(fields, "Limit", DEFAULT_LIMIT)?;
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Refusal::new(
                "InvalidParameterValue.OutOfRange",
                format!(
                    "The value `{limit}` of parameter `Limit` is out of range: 1 to {MAX_LIMIT}."
                ),
            ));
        }
        Ok(Self {
            select,
            offset,
            limit: limit as usize,
        })
    }

    /// The answer's fields: how many of `blueprints` match, and the page asked for.
    /// `blueprints` must come in the same order every time, so that pages neither overlap nor
    /// skip.
    pub fn answer(&self, blueprints: &[Blueprint]) -> Map<String, Value> {
        let matching: Vec<&Blueprint> = blueprints.iter().filter(|b| self.matches(b)).collect();
        let page: Vec<&Blueprint> = matching
            .iter()
            .skip(self.offset)
            .take(self.limit)
            .copied()
            .collect();
        let mut answer = Map::new();
        answer.insert("TotalCount".to_string(), matching.len().into());
        answer.insert("BlueprintSet".to_string(), serde_json::json!(page));
        answer
    }

    fn matches(&self, blueprint: &Blueprint) -> bool {
        match &self.select {
            Select::All => true,
            Select::Ids(ids) => ids.contains(&blueprint.blueprint_id),
            Select::Filters(filters) => filters.iter().all(|filter| {
                let value = filter.field.of(blueprint);
                filter.values.iter().any(|v| v == value)
            }),
        }
    }
}

fn blueprint_ids(value: &Value) -> Result<Vec<String>, Refusal> {
    let ids = strings(value, "InvalidParameter", "BlueprintIds")?;
    if ids.len() > MAX_IDS {
        return Err(Refusal::new(
            "InvalidParameterValue.LimitExceeded",
            format!("The parameter `BlueprintIds` takes at most {MAX_IDS} ids."),
        ));
    }
    if let Some(bad) = ids.iter().find(|id| !is_blueprint_id(id)) {
        return Err(Refusal::new(
            "InvalidParameterValue.BlueprintIdMalformed",
            format!("The blueprint ID `{bad}` is malformed."),
        ));
    }
    if let Some((i, id)) = ids
        .iter()
        .enumerate()
        .find(|(i, id)| ids[..*i].contains(id))
    {
        return Err(Refusal::new(
            "InvalidParameterValue.Duplicated",
            format!("The blueprint ID `{id}` is given twice (BlueprintIds.{i})."),
        ));
    }
    Ok(ids)
}

fn filters(value: &Value) -> Result<Vec<Filter>, Refusal> {
    let Value::Array(filters) = value else {
        return Err(Refusal::new(
            "InvalidParameter.InvalidFilter",
            "The parameter `Filters` must be a list.",
        ));
    };
    if filters.len() > MAX_FILTERS {
        return Err(Refusal::new(
            "InvalidParameterValue.LimitExceeded",
            format!("The parameter `Filters` takes at most {MAX_FILTERS} filters."),
        ));
    }
    filters.iter().map(filter).collect()
}

fn filter(value: &Value) -> Result<Filter, Refusal> {
    let Value::Object(fields) = value else {
        return Err(Refusal::new(
            "InvalidParameter.InvalidFilterNotDict",
            format!("The filter `{value}` is not a dict."),
        ));
    };
    if let Some(key) = fields
        .keys()
        .find(|k| !["Name", "Values"].contains(&k.as_str()))
    {
        return Err(Refusal::new(
            "InvalidParameter.InvalidFilterInvalidKey",
            format!("The filter key `{key}` is invalid: use Name and Values."),
        ));
    }
    let Some(Value::String(name)) = fields.get("Name") else {
        return Err(Refusal::new(
            "InvalidParameter.InvalidFilterInvalidNameNotStr",
            "The filter's Name is missing or not a string.",
        ));
    };
    let field = FIELDS
        .iter()
        .find(|(known, _)| known == name)
        .map(|(_, field)| *field)
        .ok_or_else(|| {
            Refusal::new(
                "InvalidParameter.InvalidFilterNotSupportedName",
                format!("The specified filter Name `{name}` is not supported."),
            )
        })?;
    let values = strings(
        fields.get("Values").unwrap_or(&Value::Null),
        "InvalidParameter.InvalidFilter",
        &format!("Values of filter `{name}`"),
    )?;
    if values.len() > MAX_VALUES {
        return Err(Refusal::new(
            "InvalidParameter.FilterValueLimitExceeded",
            format!("The filter `{name}` has more than {MAX_VALUES} Values."),
        ));
    }
    if let Some((allowed, code)) = field.allowed()
        && let Some(bad) = values.iter().find(|v| !allowed.contains(&v.as_str()))
    {
        return Err(Refusal::new(
            code,
            format!(
                "The value `{bad}` of filter `{name}` is invalid: one of {}.",
                allowed.join(", ")
            ),
        ));
    }
    Ok(Filter { field, values })
}

/// A list of strings, or the refusal `code` naming `what`.
fn strings(value: &Value, code: &'static str, what: &str) -> Result<Vec<String>, Refusal> {
    let not_strings = || {
        Refusal::new(
            code,
            format!("The parameter `{what}` must be a list of strings."),
        )
    };
    let Value::Array(items) = value else {
        return Err(not_strings());
    };
    items
        .iter()
        .map(|item| item.as_str().map(str::to_string).ok_or_else(not_strings))
        .collect()
}

/// An integer parameter, or `default` when it is absent.
fn integer(fields: &Map<String, Value>, name: &str, default: i64) -> Result<i64, Refusal> {
    match fields.get(name) {
        None => Ok(default),
        Some(value) => value.as_i64().ok_or_else(|| {
            Refusal::new(
                "InvalidParameter",
                format!("The parameter `{name}` must be an integer."),
            )
        }),
    }
}

/// `lhbp-` followed by 8 of `[a-z0-9]`, as the simulator makes them.
fn is_blueprint_id(value: &str) -> bool {
    value.strip_prefix("lhbp-").is_some_and(|rest| {
        rest.len() == 8
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// A blueprint as the answer carries it: every field of the API's `Blueprint` structure, so
/// that a client decoding it strictly is tested too.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Blueprint {
    blueprint_id: String,
    display_title: String,
    display_version: String,
    description: String,
    os_name: String,
    platform: String,
    platform_type: &'static str,
    blueprint_type: &'static str,
    image_url: String,
    required_system_disk_size: u64,
    blueprint_state: &'static str,
    created_time: String,
    blueprint_name: String,
    support_automation_tools: bool,
    required_memory_size: u64,
    /// The CVM image a shared blueprint came from; null for the public ones.
    image_id: Option<String>,
    community_url: String,
    guide_url: String,
    scene_id_set: Vec<String>,
    docker_version: Option<String>,
    blueprint_shared: bool,
    /// Always empty: the simulator keeps no tags, but the field is part of the structure.
    tags: Vec<Value>,
}

impl Blueprint {
    pub fn id(&self) -> &str {
        &self.blueprint_id
    }

    /// The blueprint a CVM image becomes once shared to Lighthouse.
    pub fn shared(image_id: &str, blueprint_id: String, shared_at: SystemTime) -> Self {
        Self {
            blueprint_id,
            display_title: image_id.to_string(),
            display_version: String::new(),
            description: format!("Shared from the CVM custom image {image_id}."),
            os_name: "TencentOS Server 3.1 (TK4)".to_string(),
            platform: "TencentOS".to_string(),
            platform_type: "LINUX_UNIX",
            blueprint_type: "SHARED",
            image_url: String::new(),
            required_system_disk_size: 20,
            blueprint_state: "NORMAL",
            created_time: humantime::format_rfc3339_seconds(shared_at).to_string(),
            blueprint_name: image_id.to_string(),
            support_automation_tools: false,
            required_memory_size: 0,
            image_id: Some(image_id.to_string()),
            community_url: String::new(),
            guide_url: String::new(),
            scene_id_set: Vec::new(),
            docker_version: None,
            blueprint_shared: false,
            tags: Vec::new(),
        }
    }

    /// The public blueprints every region offers: enough of them, of both public types and
    /// both platforms, that a client which forgets its `blueprint-type` filter sees them.
    pub fn public() -> Vec<Self> {
        [
            (
                "lhbp-1l4ptuvm",
                "WordPress",
                "6.4",
                "APP_OS",
                "CentOS 7.9 64bit",
                "CentOS",
                "LINUX_UNIX",
            ),
            (
                "lhbp-2ecmd9ar",
                "Ubuntu Server",
                "22.04 LTS 64bit",
                "PURE_OS",
                "Ubuntu Server 22.04 LTS 64bit",
                "Ubuntu",
                "LINUX_UNIX",
            ),
            (
                "lhbp-6m4hjvqd",
                "Docker CE",
                "24.0",
                "APP_OS",
                "TencentOS Server 3.1 (TK4)",
                "TencentOS",
                "LINUX_UNIX",
            ),
            (
                "lhbp-k3x0wdc5",
                "Windows Server",
                "2022 DataCenter 64bit",
                "PURE_OS",
                "Windows Server 2022 DataCenter 64bit",
                "Windows Server",
                "WINDOWS",
            ),
        ]
        .into_iter()
        .map(
            |(id, title, version, kind, os_name, platform, platform_type)| Self {
                blueprint_id: id.to_string(),
                display_title: title.to_string(),
                display_version: version.to_string(),
                description: format!("{title} {version}, offered by Lighthouse."),
                os_name: os_name.to_string(),
                platform: platform.to_string(),
                platform_type,
                blueprint_type: kind,
                image_url: format!("https://lighthouse.example/{id}.png"),
                required_system_disk_size: 20,
                blueprint_state: "NORMAL",
                created_time: "2024-01-01T00:00:00Z".to_string(),
                blueprint_name: title.to_string(),
                support_automation_tools: true,
                required_memory_size: if platform_type == "WINDOWS" { 2 } else { 1 },
                image_id: None,
                community_url: String::new(),
                guide_url: String::new(),
                scene_id_set: Vec::new(),
                docker_version: (title == "Docker CE").then(|| version.to_string()),
                blueprint_shared: false,
                tags: Vec::new(),
            },
        )
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(body: Value) -> Result<Query, Refusal> {
        match body {
            Value::Object(fields) => Query::parse(&fields),
            _ => unreachable!("the tests give objects"),
        }
    }

    fn code(body: Value) -> &'static str {
        query(body).map(|_| "OK").unwrap_or_else(|r| r.code)
    }

    #[test]
    fn refuses_parameters_as_the_service_does() {
        use serde_json::json;
        let f = |name: &str, value: &str| json!([{"Name": name, "Values": [value]}]);
        for (body, expected) in [
            (json!({}), "OK"),
            (
                json!({"BlueprintIds": [], "Filters": []}),
                "InvalidParameter.ParameterConflict",
            ),
            (
                json!({"Filters": f("image-id", "img-abcdefgh")}),
                "InvalidParameter.InvalidFilterNotSupportedName",
            ),
            (json!({"Filters": f("blueprint-type", "SHARED")}), "OK"),
            (
                json!({"Filters": f("blueprint-type", "NOPE")}),
                "InvalidParameterValue.InvalidBlueprintType",
            ),
            (
                json!({"Filters": [{"Name": "blueprint-id"}]}),
                "InvalidParameter.InvalidFilter",
            ),
            (
                json!({"Filters": ["blueprint-id"]}),
                "InvalidParameter.InvalidFilterNotDict",
            ),
            (
                json!({"Filters": [{"Name": 1, "Values": []}]}),
                "InvalidParameter.InvalidFilterInvalidNameNotStr",
            ),
            (
                json!({"Filters": [{"Name": "blueprint-id", "Values": [], "X": 1}]}),
                "InvalidParameter.InvalidFilterInvalidKey",
            ),
            (
                json!({"BlueprintIds": ["lhbp-BAD"]}),
                "InvalidParameterValue.BlueprintIdMalformed",
            ),
            (
                json!({"BlueprintIds": ["lhbp-aaaaaaaa", "lhbp-aaaaaaaa"]}),
                "InvalidParameterValue.Duplicated",
            ),
            (json!({"Limit": 100}), "OK"),
            (json!({"Limit": 101}), "InvalidParameterValue.OutOfRange"),
            (json!({"Limit": 0}), "InvalidParameterValue.OutOfRange"),
            (json!({"Limit": "20"}), "InvalidParameter"),
            (json!({"Offset": -1}), "InvalidParameterValue.Negative"),
        ] {
            assert_eq!(code(body.clone()), expected, "{body}");
        }
    }

    #[test]
    fn pages_are_slices_of_the_matching_blueprints() {
        let blueprints = Blueprint::public();
        let answer = query(serde_json::json!({"Offset": 1, "Limit": 2}))
            .expect("a valid query")
            .answer(&blueprints);
        assert_eq!(answer["TotalCount"], blueprints.len());
        let ids: Vec<&str> = answer["BlueprintSet"]
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|b| b["BlueprintId"].as_str())
            .collect();
        assert_eq!(ids, [blueprints[1].id(), blueprints[2].id()]);
    }
}
