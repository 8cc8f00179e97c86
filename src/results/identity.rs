//! A row's identity (SPEC §2): what it asks for, as validated, and which of the rows asking
//! the same it is. Resume matches rows by identity, not by line, so a sheet may be sorted,
//! extended or shortened between runs.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::action::Permission;
use crate::input::Row;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    pub region: String,
    pub image_id: String,
    pub permission: Permission,
    /// 1 for the first row asking this in the file, 2 for the second, ...
    pub occurrence: u32,
}

impl Identity {
    pub fn of(row: &Row) -> Self {
        Self {
            region: row.region.to_string(),
            image_id: row.image_id.clone(),
            permission: row.permission,
            occurrence: row.occurrence,
        }
    }

    /// A 64-bit digest, the key of the in-memory indexes: eight bytes a row, whatever the
    /// row holds. (`DefaultHasher::new` has fixed keys, so it is the same in every run.)
    pub fn key(&self) -> u64 {
        digest(
            &self.region,
            &self.image_id,
            self.permission,
            self.occurrence,
        )
    }
}

fn digest(region: &str, image_id: &str, permission: Permission, occurrence: u32) -> u64 {
    let mut hasher = DefaultHasher::new();
    (region, image_id, permission, occurrence).hash(&mut hasher);
    hasher.finish()
}

/// Counts the rows asking the same thing, in file order, to number their occurrences.
#[derive(Default)]
pub struct Occurrences {
    seen: HashMap<u64, u32>,
}

impl Occurrences {
    /// Numbers `row`, the next of the rows asking what it asks, and returns its identity.
    pub fn identify(&mut self, row: &mut Row) -> Identity {
        let what = digest(row.region, &row.image_id, row.permission, 0);
        let n = self.seen.entry(what).or_default();
        *n += 1;
        row.occurrence = *n;
        Identity::of(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: u64, image: &str, permission: Permission) -> Row {
        Row {
            line,
            region: "ap-seoul",
            image_id: image.into(),
            permission,
            occurrence: 1,
        }
    }

    #[test]
    fn rows_asking_the_same_are_numbered_in_file_order() {
        let mut occurrences = Occurrences::default();
        let ids: Vec<u32> = [
            row(2, "img-aaaaaaaa", Permission::Share),
            row(3, "img-aaaaaaaa", Permission::Cancel),
            row(4, "img-aaaaaaaa", Permission::Share),
            row(5, "img-bbbbbbbb", Permission::Share),
        ]
        .iter_mut()
        .map(|r| occurrences.identify(r).occurrence)
        .collect();
        assert_eq!(ids, [1, 1, 2, 1]);
        let a = Identity::of(&row(2, "img-aaaaaaaa", Permission::Share));
        let b = Identity::of(&row(9, "img-aaaaaaaa", Permission::Share));
        assert_eq!(a.key(), b.key(), "the line is not part of the identity");
        assert_ne!(
            a.key(),
            Identity {
                occurrence: 2,
                ..a.clone()
            }
            .key()
        );
    }
}
