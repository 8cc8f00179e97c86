//! A row's identity (SPEC §2): what it asks for, as validated, and which of the rows asking
//! the same it is. Resume matches rows by identity, not by line, so a sheet may be sorted,
//! extended or shortened between runs.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::sorter::Sorter;
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

/// What a row asks, as a number: a digest of its image (region and id) with the permission
/// in the lowest bit, so that sorting puts the rows of one image together.
pub fn ask(row: &Row) -> u64 {
    ask_of(row.region, &row.image_id, row.permission)
}

/// [`ask`] of a row's three values.
pub fn ask_of(region: &str, image_id: &str, permission: Permission) -> u64 {
    let permission = match permission {
        Permission::Share => 0,
        Permission::Cancel => 1,
    };
    (super::image_key(region, image_id) << 1) | permission
}

/// An image's key as an ask holds it ([`ask`] without its permission bit): the image key
/// without its top bit.
fn image_of_ask(ask: u64) -> u64 {
    ask >> 1
}

/// What the input repeats, found once per run by [`Asks`] (usually nothing): the asks that
/// more than one row makes (only those rows need counting to be numbered), and the images
/// that more than one row names (only those need remembering from one row to the next).
#[derive(Clone, Debug, Default)]
pub struct Repeats {
    asks: Arc<HashSet<u64>>,
    /// Images as [`image_of_ask`] gives them.
    images: Arc<HashSet<u64>>,
}

impl Repeats {
    /// Whether more than one row names the image of `image_key` (`results::image_key`).
    pub fn names_again(&self, image_key: u64) -> bool {
        self.images.contains(&image_of_ask(image_key << 1))
    }
}

/// Counts the rows asking the same thing, in file order, to number their occurrences. It
/// holds only the repeated asks, so memory does not grow with the rows.
pub struct Occurrences {
    repeats: Repeats,
    seen: HashMap<u64, u32>,
}

impl Occurrences {
    pub fn new(repeats: &Repeats) -> Self {
        Self {
            repeats: repeats.clone(),
            seen: HashMap::new(),
        }
    }

    /// Numbers `row`, the next of the rows asking what it asks, and returns its identity.
    pub fn identify(&mut self, row: &mut Row) -> Identity {
        row.occurrence = self.number(ask(row));
        Identity::of(row)
    }

    /// The occurrence of the next row asking `what` (its [`ask`]).
    pub fn number(&mut self, what: u64) -> u32 {
        match self.repeats.asks.contains(&what) {
            true => {
                let n = self.seen.entry(what).or_default();
                *n += 1;
                *n
            }
            false => 1,
        }
    }
}

/// Every valid row's ask, gathered in one pass and sorted on disk in bounded memory, to find
/// the asks more than one row makes and the images with both SHARE and CANCEL rows.
pub struct Asks(Sorter<u64>);

/// Asks sorted in memory before they spill: 2 MiB at a time (nothing else of a run is held
/// while they are gathered, and fewer runs merge faster).
const ASKS_CHUNK: usize = 1 << 18;

impl Default for Asks {
    fn default() -> Self {
        Self(Sorter::with_capacity(ASKS_CHUNK))
    }
}

/// What [`Asks::finish`] found.
pub struct Found {
    pub repeats: Repeats,
    /// The images (asks without their permission bit) with both SHARE and CANCEL rows.
    pub flipping: HashSet<u64>,
}

impl Asks {
    pub fn push(&mut self, row: &Row) -> io::Result<()> {
        self.push_ask(ask(row))
    }

    /// Takes a row's [`ask`].
    pub fn push_ask(&mut self, ask: u64) -> io::Result<()> {
        self.0.push(ask)
    }

    /// Reads the asks in order: equal neighbours are repeats, neighbours that differ only in
    /// the permission bit are a flipping image. An image is named again when either is.
    pub fn finish(self) -> io::Result<Found> {
        let (mut asks, mut images, mut flipping) = (HashSet::new(), HashSet::new(), HashSet::new());
        let mut previous: Option<u64> = None;
        let mut sorted = self.0.sorted()?;
        while let Some(ask) = sorted.next_key()? {
            match previous {
                Some(p) if p == ask => {
                    asks.insert(ask);
                    images.insert(image_of_ask(ask));
                }
                Some(p) if image_of_ask(p) == image_of_ask(ask) => {
                    flipping.insert(image_of_ask(ask));
                    images.insert(image_of_ask(ask));
                }
                _ => {}
            }
            previous = Some(ask);
        }
        Ok(Found {
            repeats: Repeats {
                asks: Arc::new(asks),
                images: Arc::new(images),
            },
            flipping,
        })
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
            note: None,
        }
    }

    fn found(rows: &[Row]) -> Found {
        found_spilling(rows, 1 << 17)
    }

    /// What `Asks` finds when it spills every `chunk` asks.
    fn found_spilling(rows: &[Row], chunk: usize) -> Found {
        let mut asks = Asks(Sorter::with_capacity(chunk));
        rows.iter().for_each(|row| asks.push(row).unwrap());
        asks.finish().unwrap()
    }

    #[test]
    fn rows_asking_the_same_are_numbered_in_file_order() {
        let mut rows = [
            row(2, "img-aaaaaaaa", Permission::Share),
            row(3, "img-aaaaaaaa", Permission::Cancel),
            row(4, "img-aaaaaaaa", Permission::Share),
            row(5, "img-bbbbbbbb", Permission::Share),
        ];
        let found = found(&rows);
        assert_eq!(
            found.flipping.len(),
            1,
            "img-aaaaaaaa has SHARE and CANCEL rows"
        );
        let mut occurrences = Occurrences::new(&found.repeats);
        let ids: Vec<u32> = rows
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

    /// More rows than one sorted chunk: the repeats and flips are found across the runs
    /// spilled to disk, and only they are held in memory; the images named again are those.
    #[test]
    fn repeats_and_flips_are_found_across_spilled_runs() {
        const CHUNK: usize = 1000;
        let n = CHUNK * 2 + 100;
        let mut rows: Vec<Row> = (0..n)
            .map(|i| row(i as u64 + 2, &format!("img-{i:08}"), Permission::Share))
            .collect();
        rows.push(row(0, "img-00000007", Permission::Share));
        rows.push(row(0, &format!("img-{:08}", CHUNK + 5), Permission::Cancel));
        rows.push(row(0, &format!("img-{:08}", n - 1), Permission::Share));
        let found = found_spilling(&rows, CHUNK);
        assert_eq!(found.repeats.asks.len(), 2);
        assert_eq!(found.flipping.len(), 1);
        assert!(found.repeats.asks.contains(&ask(&rows[7])));
        assert!(found.repeats.asks.contains(&ask(&rows[n - 1])));
        assert!(found.flipping.contains(&(ask(&rows[CHUNK + 5]) >> 1)));
        let again: Vec<usize> = (0..n)
            .filter(|&i| {
                let image = super::super::image_key(rows[i].region, &rows[i].image_id);
                found.repeats.names_again(image)
            })
            .collect();
        assert_eq!(again, [7, CHUNK + 5, n - 1]);
    }
}
