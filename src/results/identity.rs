//! A row's identity (SPEC §2): what it asks for, as validated, and which of the rows asking
//! the same it is. Resume matches rows by identity, not by line, so a sheet may be sorted,
//! extended or shortened between runs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

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

/// What a row asks, as a number: a digest of its image (region and id) with the permission
/// in the lowest bit, so that sorting puts the rows of one image together.
pub fn ask(row: &Row) -> u64 {
    let mut hasher = DefaultHasher::new();
    (row.region, &row.image_id).hash(&mut hasher);
    let permission = match row.permission {
        Permission::Share => 0,
        Permission::Cancel => 1,
    };
    (hasher.finish() << 1) | permission
}

/// The asks that more than one row of the input makes: only those rows need counting to be
/// numbered. Found once per run by [`Asks`]; usually empty.
#[derive(Clone, Debug, Default)]
pub struct Repeats(Arc<HashSet<u64>>);

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
        let what = ask(row);
        row.occurrence = match self.repeats.0.contains(&what) {
            true => {
                let n = self.seen.entry(what).or_default();
                *n += 1;
                *n
            }
            false => 1,
        };
        Identity::of(row)
    }
}

/// Asks sorted in memory before they spill to a temporary file: 2 MiB at a time.
const SORT_CHUNK: usize = 1 << 18;

/// Every valid row's ask, gathered in one pass and sorted on disk in bounded memory, to find
/// the asks more than one row makes and the images with both SHARE and CANCEL rows.
#[derive(Default)]
pub struct Asks {
    chunk: Vec<u64>,
    runs: Vec<BufReader<File>>,
}

/// What [`Asks::finish`] found.
pub struct Found {
    pub repeats: Repeats,
    /// The images (asks without their permission bit) with both SHARE and CANCEL rows.
    pub flipping: HashSet<u64>,
}

impl Asks {
    pub fn push(&mut self, row: &Row) -> io::Result<()> {
        self.chunk.push(ask(row));
        if self.chunk.len() == SORT_CHUNK {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.chunk.sort_unstable();
        let mut file = BufWriter::new(tempfile::tempfile()?);
        for ask in self.chunk.drain(..) {
            file.write_all(&ask.to_le_bytes())?;
        }
        let mut file = file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(BufReader::new(file));
        Ok(())
    }

    /// Merges the sorted runs and reads the asks in order: equal neighbours are repeats,
    /// neighbours that differ only in the permission bit are a flipping image.
    pub fn finish(mut self) -> io::Result<Found> {
        self.chunk.sort_unstable();
        let mut heads = BinaryHeap::new();
        for (i, run) in self.runs.iter_mut().enumerate() {
            if let Some(ask) = next_ask(run)? {
                heads.push(Reverse((ask, i)));
            }
        }
        let mut in_memory = self.chunk.into_iter().peekable();
        let (mut repeats, mut flipping) = (HashSet::new(), HashSet::new());
        let mut previous: Option<u64> = None;
        loop {
            let from_runs = heads.peek().map(|Reverse((ask, _))| *ask);
            let ask = match (from_runs, in_memory.peek().copied()) {
                (Some(run), Some(memory)) if memory < run => in_memory.next(),
                (Some(_), _) => {
                    let Some(Reverse((ask, i))) = heads.pop() else {
                        break;
                    };
                    if let Some(next) = next_ask(&mut self.runs[i])? {
                        heads.push(Reverse((next, i)));
                    }
                    Some(ask)
                }
                (None, _) => in_memory.next(),
            };
            let Some(ask) = ask else { break };
            match previous {
                Some(p) if p == ask => {
                    repeats.insert(ask);
                }
                Some(p) if p >> 1 == ask >> 1 => {
                    flipping.insert(ask >> 1);
                }
                _ => {}
            }
            previous = Some(ask);
        }
        Ok(Found {
            repeats: Repeats(Arc::new(repeats)),
            flipping,
        })
    }
}

fn next_ask(run: &mut BufReader<File>) -> io::Result<Option<u64>> {
    let mut bytes = [0u8; 8];
    match run.read_exact(&mut bytes) {
        Ok(()) => Ok(Some(u64::from_le_bytes(bytes))),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(error) => Err(error),
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
        let mut asks = Asks::default();
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
    /// spilled to disk, and only they are held in memory.
    #[test]
    fn repeats_and_flips_are_found_across_spilled_runs() {
        let n = SORT_CHUNK * 2 + 1000;
        let mut rows: Vec<Row> = (0..n)
            .map(|i| row(i as u64 + 2, &format!("img-{i:08}"), Permission::Share))
            .collect();
        rows.push(row(0, "img-00000007", Permission::Share));
        rows.push(row(
            0,
            &format!("img-{:08}", SORT_CHUNK + 5),
            Permission::Cancel,
        ));
        rows.push(row(0, &format!("img-{:08}", n - 1), Permission::Share));
        let found = found(&rows);
        assert_eq!(found.repeats.0.len(), 2);
        assert_eq!(found.flipping.len(), 1);
        assert!(found.repeats.0.contains(&ask(&rows[7])));
        assert!(found.repeats.0.contains(&ask(&rows[n - 1])));
        assert!(found.flipping.contains(&(ask(&rows[SORT_CHUNK + 5]) >> 1)));
    }
}
