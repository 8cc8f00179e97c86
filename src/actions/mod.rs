//! What is particular to each API action: its request, how to read its answer, and what
//! each of its error codes means. Everything else (pacing, sending, retrying, adapting,
//! giving up, counting) is the engine's, the same for every action: adding an action adds a
//! type here, not a loop.

mod blueprints;
mod images;
mod share;

pub use blueprints::{Blueprints, DescribeBlueprints, Page, is_refused};
pub use images::{DescribeImages, Image, NORMAL};
pub use share::{Share, Shared};

use crate::api::{ApiError, Class, Request};

/// The actions the tool speaks. Tencent counts a limit per action (and access region, and
/// account), so each has its own lane in every bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `ModifyImageSharePermission`: the writes, at `--rate`.
    Share,
    /// `DescribeBlueprints`: the state look-ups, at `--describe-rate`.
    DescribeBlueprints,
    /// `DescribeImagesToShare`: the preflight, at its own 20/s.
    DescribeImages,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Share, Kind::DescribeBlueprints, Kind::DescribeImages];

    /// The API's name for the action.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Share => crate::action::ACTION,
            Kind::DescribeBlueprints => crate::action::DESCRIBE_ACTION,
            Kind::DescribeImages => crate::action::IMAGES_ACTION,
        }
    }
}

/// One call of an API action.
pub trait Action: Send + Sync {
    /// What a successful answer gives.
    type Output: Send;

    /// Which action this is: which lane of the bucket paces it.
    const KIND: Kind;

    /// The region the request is for (an unsupported region fails all its calls).
    fn region(&self) -> &'static str;

    /// The request, made anew for every attempt (each is signed afresh).
    fn request(&self) -> Request {
        Request {
            region: self.region(),
            action: Self::KIND.name(),
            body: self.body(),
        }
    }

    /// The JSON body.
    fn body(&self) -> Vec<u8>;

    /// What an error code means for this action (SPEC §5).
    fn class(&self, code: &str) -> Class;

    /// The answer's fields, or its error classified by [`Action::class`].
    fn read(&self, answer: &[u8]) -> Result<Self::Output, ApiError>;
}
