//! Reading a request's parts as the service does: headers, the JSON body and its parameters,
//! and the `Filters`, `Offset` and `Limit` the listing actions share. Each failure is the
//! service's error code.

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::refusal::Refusal;
use crate::action;

/// A listing's `Limit` when none is given, and the most it may be.
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

pub fn required<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, Refusal> {
    header(headers, name).ok_or_else(|| {
        Refusal::new(
            "MissingParameter",
            format!("The request is missing the required header `{name}`."),
        )
    })
}

/// The body's parameters, once it is a JSON object naming only parameters in `known`.
pub fn parameters(
    headers: &HeaderMap,
    body: &[u8],
    known: &[&str],
) -> Result<Map<String, Value>, Refusal> {
    let content_type = header(headers, "content-type").unwrap_or_default();
    if !content_type.starts_with(action::CONTENT_TYPE) {
        return Err(Refusal::new(
            "InvalidParameter",
            format!("Content-Type `{content_type}` is not supported; send application/json."),
        ));
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(Refusal::new(
            "InvalidParameter",
            "The request body is not a JSON object.",
        ));
    };
    if let Some(unknown) = fields.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(Refusal::new(
            "UnknownParameter",
            format!("The parameter `{unknown}` is not recognized."),
        ));
    }
    Ok(fields)
}

/// A list of strings, or the refusal `code` naming `what`.
pub fn strings(value: &Value, code: &'static str, what: &str) -> Result<Vec<String>, Refusal> {
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

/// The `ImageIds`/`BlueprintIds` list or the `Filters` of a listing: never both.
pub enum Selection<'a> {
    All,
    Ids(&'a Value),
    Filters(&'a Value),
}

impl<'a> Selection<'a> {
    pub fn parse(fields: &'a Map<String, Value>, ids: &str) -> Result<Self, Refusal> {
        match (fields.get(ids), fields.get("Filters")) {
            (Some(_), Some(_)) => Err(Refusal::new(
                "InvalidParameter.ParameterConflict",
                format!(
                    "The parameters `{ids}` and `Filters` cannot be specified at the same time."
                ),
            )),
            (Some(ids), None) => Ok(Self::Ids(ids)),
            (None, Some(filters)) => Ok(Self::Filters(filters)),
            (None, None) => Ok(Self::All),
        }
    }
}

/// The page a listing asks for.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    pub fn parse(fields: &Map<String, Value>) -> Result<Self, Refusal> {
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
            offset,
            limit: limit as usize,
        })
    }

    /// This page of `items`.
    pub fn of<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .skip(self.offset)
            .take(self.limit)
            .cloned()
            .collect()
    }
}

/// One filter as given: a known name and its values.
#[derive(Debug)]
pub struct Filter {
    pub name: &'static str,
    /// Where `name` is in the list of names the action takes.
    pub index: usize,
    pub values: Vec<String>,
}

/// The `Filters` of a listing whose filter names are `names`, with at most `max_filters`
/// filters of at most `max_values` values each.
pub fn filters(
    value: &Value,
    names: &[&'static str],
    max_filters: usize,
    max_values: usize,
) -> Result<Vec<Filter>, Refusal> {
    let Value::Array(filters) = value else {
        return Err(Refusal::new(
            "InvalidParameter.InvalidFilter",
            "The parameter `Filters` must be a list.",
        ));
    };
    if filters.len() > max_filters {
        return Err(Refusal::new(
            "InvalidParameterValue.LimitExceeded",
            format!("The parameter `Filters` takes at most {max_filters} filters."),
        ));
    }
    filters
        .iter()
        .map(|filter| self::filter(filter, names, max_values))
        .collect()
}

fn filter(value: &Value, names: &[&'static str], max_values: usize) -> Result<Filter, Refusal> {
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
    let index = names
        .iter()
        .position(|known| known == name)
        .ok_or_else(|| {
            Refusal::new(
                "InvalidParameter.InvalidFilterNotSupportedName",
                format!("The specified filter Name `{name}` is not supported."),
            )
        })?;
    let name = names[index];
    let values = strings(
        fields.get("Values").unwrap_or(&Value::Null),
        "InvalidParameter.InvalidFilter",
        &format!("Values of filter `{name}`"),
    )?;
    if values.len() > max_values {
        return Err(Refusal::new(
            "InvalidParameter.FilterValueLimitExceeded",
            format!("The filter `{name}` has more than {max_values} Values."),
        ));
    }
    Ok(Filter {
        name,
        index,
        values,
    })
}
