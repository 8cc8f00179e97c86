//! Checks a request the way the service does, in the service's order: action and version,
//! then the signature, then region and body; each action reads its own parameters. Each
//! failure is the service's error code.

use axum::http::HeaderMap;

use super::blueprints::{self, Query};
use super::images::{self, ImagesQuery};
use super::params::{self, required};
use super::refusal::Refusal;
use super::share::{self, ShareRequest};
use super::signature::check_signature;
use crate::action;
use crate::credentials::Credentials;

/// The actions the simulator serves: each has its own parameters and its own rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    ModifyImageSharePermission,
    DescribeBlueprints,
    DescribeImagesToShare,
}

impl Action {
    const ALL: [Self; 3] = [
        Self::ModifyImageSharePermission,
        Self::DescribeBlueprints,
        Self::DescribeImagesToShare,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::ModifyImageSharePermission => action::ACTION,
            Self::DescribeBlueprints => blueprints::ACTION,
            Self::DescribeImagesToShare => images::ACTION,
        }
    }

    /// The body parameters the action knows; any other is `UnknownParameter`.
    fn parameters(self) -> &'static [&'static str] {
        match self {
            Self::ModifyImageSharePermission => share::PARAMETERS,
            Self::DescribeBlueprints => blueprints::PARAMETERS,
            Self::DescribeImagesToShare => images::PARAMETERS,
        }
    }
}

/// What a checked request asks for.
#[derive(Debug)]
pub enum Call {
    Share(ShareRequest),
    Blueprints(Query),
    Images(ImagesQuery),
}

/// A request that passed every check.
#[derive(Debug)]
pub struct Checked {
    pub secret_id: String,
    pub region: &'static str,
    pub call: Call,
}

pub fn check(
    headers: &HeaderMap,
    body: &[u8],
    accounts: &[Credentials],
    now_unix: u64,
) -> Result<Checked, Refusal> {
    let name = required(headers, "x-tc-action")?;
    let action = Action::parse(name).ok_or_else(|| {
        Refusal::new(
            "InvalidAction",
            format!("The action `{name}` is not supported."),
        )
    })?;
    let version = required(headers, "x-tc-version")?;
    if version != action::VERSION {
        return Err(Refusal::new(
            "NoSuchVersion",
            format!("The version `{version}` of this action does not exist."),
        ));
    }
    let secret_id = check_signature(headers, body, accounts, now_unix)?;
    let region = required(headers, "x-tc-region")?;
    let region = action::supported_region(region).ok_or_else(|| {
        Refusal::new(
            "UnsupportedRegion",
            format!("The region `{region}` is not supported by this action."),
        )
    })?;
    let parameters = params::parameters(headers, body, action.parameters())?;
    let call = match action {
        Action::ModifyImageSharePermission => Call::Share(ShareRequest::parse(&parameters)?),
        Action::DescribeBlueprints => Call::Blueprints(Query::parse(&parameters)?),
        Action::DescribeImagesToShare => Call::Images(ImagesQuery::parse(&parameters)?),
    };
    Ok(Checked {
        secret_id,
        region,
        call,
    })
}
