//! Which record each row of the input shows in the results: the last record of the row's
//! identity. Records and rows are paired by sorting both on the identity's key on disk
//! ([`Sorter`]) and walking the two in step, then sorting the pairs back into the input's
//! order; so pairing a million rows holds a few chunks in memory, not an index of every
//! record. The same walk finds the records no row matches any more, and the line of each
//! row's last record, which compaction keeps.

use std::path::Path;

use super::sorter::{Sorted, Sorter};
use super::{Occurrences, Repeats, journal};
use crate::input::Source;

/// The records paired with the rows of the input.
pub struct Paired {
    /// (the row's place among the input's data rows, the offset of its last record), in
    /// the input's order.
    rows: Sorted<(u64, u64)>,
    head: Option<(u64, u64)>,
    /// The offset of the last record of each row recorded: what compaction keeps.
    pub keep: Sorter<u64>,
    /// Records in the record, every one.
    pub n_records: u64,
    /// Rows recorded that no row of the input matches any more (the sheet was edited).
    pub n_unmatched: u64,
}

impl Paired {
    /// Pairs the rows of `input` (numbered with `repeats`) with the record at `record`,
    /// made against `target`.
    pub fn pair(
        input: &Source,
        repeats: &Repeats,
        record: &Path,
        target: &str,
    ) -> anyhow::Result<Self> {
        let mut records = Sorter::default();
        for read in journal::read(record, target)? {
            let (offset, outcome) = read?;
            records.push((outcome.identity.key(), offset))?;
        }
        let n_records = records.len();
        let rows = match records.is_empty() {
            true => Sorter::default(),
            false => keys_of_rows(input, repeats)?,
        };
        let mut join = Join {
            rows: rows.sorted()?,
            row: None,
            by_row: Sorter::default(),
            keep: Sorter::default(),
            n_unmatched: 0,
        };
        join.row = join.rows.next_key()?;
        join.walk(records.sorted()?)?;
        let mut rows = join.by_row.sorted()?;
        Ok(Self {
            head: rows.next_key()?,
            rows,
            keep: join.keep,
            n_records,
            n_unmatched: join.n_unmatched,
        })
    }

    /// Whether no row has a record.
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// The offset of the last record of the data row at `place` (counted from 0 over
    /// every data row, valid or not), if it has one. Asked in the input's order.
    pub fn record_of(&mut self, place: u64) -> anyhow::Result<Option<u64>> {
        while let Some((at, offset)) = self.head {
            if at > place {
                break;
            }
            self.head = self.rows.next_key()?;
            if at == place {
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }
}

/// (identity key, place among the data rows) of every valid row of `input`.
fn keys_of_rows(input: &Source, repeats: &Repeats) -> anyhow::Result<Sorter<(u64, u64)>> {
    let mut keys = Sorter::default();
    let mut occurrences = Occurrences::new(repeats);
    let mut reader = input.reader()?;
    let mut place = 0;
    while let Some(record) = reader.next_record() {
        if let Ok(mut row) = record?.validate() {
            keys.push((occurrences.identify(&mut row).key(), place))?;
        }
        place += 1;
    }
    Ok(keys)
}

/// The walk of the records and the rows, both sorted by key.
struct Join {
    rows: Sorted<(u64, u64)>,
    /// The next row: (key, place).
    row: Option<(u64, u64)>,
    by_row: Sorter<(u64, u64)>,
    keep: Sorter<u64>,
    n_unmatched: u64,
}

impl Join {
    /// Takes the records sorted by (key, offset): the last of each key is the row's.
    fn walk(&mut self, mut records: Sorted<(u64, u64)>) -> anyhow::Result<()> {
        let mut last: Option<(u64, u64)> = None;
        while let Some((key, offset)) = records.next_key()? {
            if let Some((previous, at)) = last
                && previous != key
            {
                self.pair(previous, at)?;
            }
            last = Some((key, offset));
        }
        if let Some((key, offset)) = last {
            self.pair(key, offset)?;
        }
        Ok(())
    }

    /// Pairs the last record of `key`, at `offset`, with the row of that key, if any.
    fn pair(&mut self, key: u64, offset: u64) -> anyhow::Result<()> {
        self.keep.push(offset)?;
        while let Some((row_key, _)) = self.row
            && row_key < key
        {
            self.row = self.rows.next_key()?;
        }
        match self.row {
            Some((row_key, place)) if row_key == key => {
                self.by_row.push((place, offset))?;
                self.row = self.rows.next_key()?;
            }
            _ => self.n_unmatched += 1,
        }
        Ok(())
    }
}
