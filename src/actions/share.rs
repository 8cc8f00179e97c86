//! `ModifyImageSharePermission`: share an image to Lighthouse, or cancel the sharing.

use serde::Deserialize;

use super::{Action, Kind};
use crate::action::{self, Permission};
use crate::api::{ApiError, Class, classify, read_answer};
use crate::input::Row;
use crate::text;

/// One row's write.
#[derive(Clone, Debug)]
pub struct Share {
    pub region: &'static str,
    pub image_id: String,
    pub permission: Permission,
}

impl Share {
    pub fn of(row: &Row) -> Self {
        Self {
            region: row.region,
            image_id: row.image_id.clone(),
            permission: row.permission,
        }
    }
}

/// A write that succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shared {
    /// `None` for CANCEL (and for a SHARE answer that left it out).
    pub blueprint_id: Option<String>,
    pub request_id: String,
}

#[derive(Debug, Deserialize)]
struct Fields {
    #[serde(rename = "BlueprintId")]
    blueprint_id: Option<String>,
}

impl Action for Share {
    type Output = Shared;
    const KIND: Kind = Kind::Share;

    fn region(&self) -> &'static str {
        self.region
    }

    fn body(&self) -> Vec<u8> {
        action::request_body(&self.image_id, self.permission)
    }

    fn class(&self, code: &str) -> Class {
        classify(code, self.permission)
    }

    fn read(&self, answer: &[u8]) -> Result<Shared, ApiError> {
        let (request_id, fields): (_, Fields) = read_answer(answer, |code| self.class(code))?;
        Ok(Shared {
            // Outside text that reaches the results and the log: neutralised here.
            blueprint_id: fields
                .blueprint_id
                .map(|id| text::for_line(&id).into_owned()),
            request_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_share_can_be_already_done() {
        let share = Share {
            region: "ap-seoul",
            image_id: "img-aaaaaaaa".into(),
            permission: Permission::Share,
        };
        let answer = br#"{"Response":{"Error":{"Code":"UnsupportedOperation.ImageAlreadyShared"},"RequestId":"r"}}"#;
        assert_eq!(share.read(answer).unwrap_err().class, Class::AlreadyDone);
        let cancel = Share {
            permission: Permission::Cancel,
            ..share
        };
        assert_eq!(cancel.read(answer).unwrap_err().class, Class::Permanent);
        let ok = br#"{"Response":{"BlueprintId":"lhbp-su83x02a","RequestId":"r1"}}"#;
        assert_eq!(
            cancel.read(ok).unwrap(),
            Shared {
                blueprint_id: Some("lhbp-su83x02a".into()),
                request_id: "r1".into()
            }
        );
        let hostile =
            br#"{"Response":{"BlueprintId":"lhbp-1\r\n\u001b[2J\u202e","RequestId":"r2"}}"#;
        assert_eq!(
            cancel.read(hostile).unwrap().blueprint_id.as_deref(),
            Some(r"lhbp-1\u{d}\u{a}\u{1b}[2J\u{202e}"),
            "outside text is neutralised where it is read"
        );
    }
}
