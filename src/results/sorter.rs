//! Sorting more keys than a run should hold in memory: a chunk is sorted in memory, spilled
//! to an anonymous temporary file when full, and the spilled runs are merged as they are
//! read back. Memory stays at one chunk and one read buffer per run, whatever the count, so
//! the passes that pair rows with their records (the asks of the plan, the record's index
//! of the results) do not grow with the rows.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

/// A fixed-size, ordered value that can be spilled as bytes.
pub trait Key: Copy + Ord {
    /// Its size on disk.
    const BYTES: usize;
    fn put(self, out: &mut impl Write) -> io::Result<()>;
    /// Reads one from exactly [`Key::BYTES`] bytes.
    fn get(bytes: &[u8]) -> Self;
}

impl Key for u64 {
    const BYTES: usize = 8;
    fn put(self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.to_le_bytes())
    }
    fn get(bytes: &[u8]) -> Self {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[..8]);
        u64::from_le_bytes(word)
    }
}

impl Key for (u64, u64) {
    const BYTES: usize = 16;
    fn put(self, out: &mut impl Write) -> io::Result<()> {
        self.0.put(out)?;
        self.1.put(out)
    }
    fn get(bytes: &[u8]) -> Self {
        (u64::get(&bytes[..8]), u64::get(&bytes[8..16]))
    }
}

/// The memory a sorter's chunk takes before it spills: 1 MiB.
const CHUNK_BYTES: usize = 1 << 20;

/// Keys pushed in any order, read back sorted (duplicates kept).
pub struct Sorter<K> {
    chunk: Vec<K>,
    /// Keys a chunk holds before it spills.
    capacity: usize,
    runs: Vec<BufReader<File>>,
    n_pushed: u64,
}

impl<K: Key> Default for Sorter<K> {
    fn default() -> Self {
        Self::with_capacity(CHUNK_BYTES / K::BYTES)
    }
}

impl<K: Key> Sorter<K> {
    /// A sorter that spills every `capacity` keys (tests use a small one to spill).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            chunk: Vec::new(),
            capacity: capacity.max(1),
            runs: Vec::new(),
            n_pushed: 0,
        }
    }

    pub fn push(&mut self, key: K) -> io::Result<()> {
        if self.chunk.capacity() == 0 {
            // The whole chunk at once: growing it by doubling would hold the old half and
            // the new whole together. Pages not yet written take no memory.
            self.chunk.reserve_exact(self.capacity);
        }
        self.chunk.push(key);
        self.n_pushed += 1;
        if self.chunk.len() >= self.capacity {
            self.spill()?;
        }
        Ok(())
    }

    /// How many keys were pushed.
    pub fn len(&self) -> u64 {
        self.n_pushed
    }

    pub fn is_empty(&self) -> bool {
        self.n_pushed == 0
    }

    fn spill(&mut self) -> io::Result<()> {
        self.chunk.sort_unstable();
        let mut file = BufWriter::new(tempfile::tempfile()?);
        for key in self.chunk.drain(..) {
            key.put(&mut file)?;
        }
        let mut file = file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(BufReader::new(file));
        Ok(())
    }

    /// Every key pushed, in order.
    pub fn sorted(mut self) -> io::Result<Sorted<K>> {
        self.chunk.sort_unstable();
        let mut heads = BinaryHeap::with_capacity(self.runs.len());
        for (i, run) in self.runs.iter_mut().enumerate() {
            if let Some(key) = next_key(run)? {
                heads.push(Reverse((key, i)));
            }
        }
        Ok(Sorted {
            heads,
            runs: self.runs,
            in_memory: self.chunk.into_iter().peekable(),
        })
    }
}

/// The keys of a [`Sorter`] in order: its last chunk and its spilled runs, merged.
pub struct Sorted<K> {
    heads: BinaryHeap<Reverse<(K, usize)>>,
    runs: Vec<BufReader<File>>,
    in_memory: std::iter::Peekable<std::vec::IntoIter<K>>,
}

impl<K: Key> Sorted<K> {
    /// The next key, or `None` at the end.
    pub fn next_key(&mut self) -> io::Result<Option<K>> {
        let from_runs = self.heads.peek().map(|Reverse((key, _))| *key);
        match (from_runs, self.in_memory.peek()) {
            (Some(run), Some(memory)) if *memory < run => Ok(self.in_memory.next()),
            (Some(_), _) => {
                let Some(mut head) = self.heads.peek_mut() else {
                    return Ok(None);
                };
                let Reverse((key, i)) = *head;
                // The run's next key takes its place: one sift, not a pop and a push.
                match next_key(&mut self.runs[i])? {
                    Some(next) => *head = Reverse((next, i)),
                    None => drop(std::collections::binary_heap::PeekMut::pop(head)),
                }
                Ok(Some(key))
            }
            (None, _) => Ok(self.in_memory.next()),
        }
    }
}

impl<K: Key> Iterator for Sorted<K> {
    type Item = io::Result<K>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_key().transpose()
    }
}

fn next_key<K: Key>(run: &mut BufReader<File>) -> io::Result<Option<K>> {
    let mut bytes = [0u8; 16];
    let bytes = &mut bytes[..K::BYTES];
    match run.read_exact(bytes) {
        Ok(()) => Ok(Some(K::get(bytes))),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_back_sorted_across_spilled_runs_and_memory() {
        // A fixed scramble of 0..1000 (7 is prime to 1000), with repeats.
        let keys: Vec<(u64, u64)> = (0..1000u64)
            .map(|i| ((i * 7) % 1000, i % 3))
            .chain([(5, 9), (5, 0)])
            .collect();
        for capacity in [1, 64, 10_000] {
            let mut sorter = Sorter::with_capacity(capacity);
            for key in &keys {
                sorter.push(*key).unwrap();
            }
            assert_eq!(sorter.len(), 1002);
            let sorted: Vec<(u64, u64)> = sorter.sorted().unwrap().map(Result::unwrap).collect();
            let mut expected = keys.clone();
            expected.sort_unstable();
            assert_eq!(sorted, expected, "capacity {capacity}");
        }
        let empty = Sorter::<u64>::default();
        assert!(empty.is_empty());
        assert_eq!(empty.sorted().unwrap().count(), 0);
    }
}
