//! `DescribeBlueprints` as the service has it: the state look-up a run makes before it shares
//! (SPEC §9). It answers the region's public blueprints and one `SHARED` blueprint per image
//! shared there, selected by `BlueprintIds` or `Filters` and paged by `Offset` and `Limit`,
//! refusing bad parameters with the codes the SDKs list for this action; on demand it answers
//! broken listings (`--describe-fault`).

use serde_json::{Map, Value};

use super::blueprint::Blueprint;
use super::params::{self, Page, Selection};
use super::refusal::Refusal;

/// The look-up's action name (`X-TC-Action`); its version is the share's, 2020-03-24.
pub const ACTION: &str = crate::action::DESCRIBE_ACTION;
/// The parameters the action takes; any other is `UnknownParameter`.
pub const PARAMETERS: &[&str] = &["BlueprintIds", "Filters", "Offset", "Limit"];

const MAX_IDS: usize = 100;
const MAX_FILTERS: usize = 10;
const MAX_VALUES: usize = 100;

/// A checked `DescribeBlueprints` request.
#[derive(Debug)]
pub struct Query {
    select: Select,
    page: Page,
}

#[derive(Debug)]
enum Select {
    All,
    Ids(Vec<String>),
    Filters(Vec<(Field, Vec<String>)>),
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

/// How a broken backend bends an answer (`--describe-fault`); the default bends nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Distortion {
    /// The page comes back empty, `TotalCount` unchanged.
    pub empty: bool,
    /// Every `Offset` answers the first page.
    pub repeat_first_page: bool,
    /// `TotalCount` says this instead of the truth.
    pub total: Option<u64>,
}

impl Query {
    /// Reads the parameters as the service does (unknown ones are already refused).
    pub fn parse(fields: &Map<String, Value>) -> Result<Self, Refusal> {
        let select = match Selection::parse(fields, "BlueprintIds")? {
            Selection::Ids(ids) => Select::Ids(blueprint_ids(ids)?),
            Selection::Filters(filters) => Select::Filters(self::filters(filters)?),
            Selection::All => Select::All,
        };
        let page = Page::parse(fields)?;
        Ok(Self { select, page })
    }

    /// The `Offset` asked for.
    pub fn offset(&self) -> usize {
        self.page.offset
    }

    /// The answer's fields: how many of `blueprints` match, and the page asked for, bent by
    /// `distortion`. `blueprints` must come in the same order every time, so that pages
    /// neither overlap nor skip.
    pub fn answer(&self, blueprints: &[Blueprint], distortion: &Distortion) -> Map<String, Value> {
        let matching: Vec<&Blueprint> = blueprints.iter().filter(|b| self.matches(b)).collect();
        let page = match (distortion.empty, distortion.repeat_first_page) {
            (true, _) => Vec::new(),
            (false, true) => Page {
                offset: 0,
                ..self.page
            }
            .of(&matching),
            (false, false) => self.page.of(&matching),
        };
        let total = distortion.total.unwrap_or(matching.len() as u64);
        let mut answer = Map::new();
        answer.insert("TotalCount".to_string(), total.into());
        answer.insert("BlueprintSet".to_string(), serde_json::json!(page));
        answer
    }

    fn matches(&self, blueprint: &Blueprint) -> bool {
        match &self.select {
            Select::All => true,
            Select::Ids(ids) => ids.contains(&blueprint.blueprint_id),
            Select::Filters(filters) => filters.iter().all(|(field, values)| {
                let value = field.of(blueprint);
                values.iter().any(|v| v == value)
            }),
        }
    }
}

fn blueprint_ids(value: &Value) -> Result<Vec<String>, Refusal> {
    let ids = params::strings(value, "InvalidParameter", "BlueprintIds")?;
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

fn filters(value: &Value) -> Result<Vec<(Field, Vec<String>)>, Refusal> {
    let names = FIELDS.map(|(name, _)| name);
    params::filters(value, &names, MAX_FILTERS, MAX_VALUES)?
        .into_iter()
        .map(|filter| {
            let field = FIELDS[filter.index].1;
            check_values(field, filter.name, &filter.values)?;
            Ok((field, filter.values))
        })
        .collect()
}

/// Refuses a value the service does not take for `field`.
fn check_values(field: Field, name: &str, values: &[String]) -> Result<(), Refusal> {
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
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::blueprint::Blueprint;

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
            .answer(&blueprints, &Distortion::default());
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
