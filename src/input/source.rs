//! The input of a run, opened once. Every phase (validation, the buckets' readers, the final
//! rendering) reads it from the same open file, so an editor's atomic save in the middle of
//! a run cannot mix two versions of the sheet; and [`Source::check_unchanged`] tells whether
//! the file changed under the run, so that it can stop instead of recording outcomes against
//! rows that moved. Standard input, a FIFO and `<(...)` are copied once to an anonymous
//! temporary file; a workbook's sheet is loaded once.

use std::fs::{File, Metadata};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::workbook::{self, Sheet};
use super::{InputError, Reader, is_workbook};

/// An input opened for the whole run.
pub struct Source {
    /// The user's name for it, for messages.
    path: PathBuf,
    data: Data,
    /// What the file was when opened, to notice a change; `None` for a copy of a stream.
    seen: Option<Seen>,
}

enum Data {
    Text(Arc<File>),
    Sheet(Sheet),
}

/// The facts about a file that change when it is written or replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl Seen {
    fn of(metadata: &Metadata) -> Self {
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
            len: metadata.len(),
            modified: metadata.modified().ok(),
        }
    }
}

impl Source {
    /// Opens `path` (`-` is standard input); `sheet` picks a workbook's sheet.
    pub fn open(path: &Path, sheet: Option<&str>) -> Result<Self, InputError> {
        let failed = |source: io::Error| InputError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let (Some(sheet), false) = (sheet, is_workbook(path)) {
            tracing::warn!(
                "--sheet {} is for a workbook; {} is read as CSV, so it is not used",
                crate::text::for_line(sheet),
                crate::text::path(path)
            );
        }
        if path == Path::new("-") {
            let stdin = Path::new("standard input");
            let copy = spool(&mut io::stdin().lock()).map_err(|source| InputError::Open {
                path: stdin.to_path_buf(),
                source,
            })?;
            return Ok(Self::text(stdin, copy, None));
        }
        if is_workbook(path) {
            let before = std::fs::metadata(path).map_err(failed)?;
            let sheet = workbook::load(path, sheet)?;
            return Ok(Self {
                path: path.to_path_buf(),
                data: Data::Sheet(sheet),
                seen: Some(Seen::of(&before)),
            });
        }
        let mut file = File::open(path).map_err(failed)?;
        let metadata = file.metadata().map_err(failed)?;
        if metadata.is_dir() {
            return Err(InputError::Directory {
                path: path.to_path_buf(),
            });
        }
        if metadata.is_file() {
            return Ok(Self::text(path, file, Some(Seen::of(&metadata))));
        }
        // A FIFO, `<(...)` or a device: it can be read only once.
        let copy = spool(&mut file).map_err(failed)?;
        Ok(Self::text(path, copy, None))
    }

    fn text(path: &Path, file: File, seen: Option<Seen>) -> Self {
        Self {
            path: path.to_path_buf(),
            data: Data::Text(Arc::new(file)),
            seen,
        }
    }

    /// The user's name for the input.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the input is a workbook (its results get a BOM when written as CSV).
    pub fn is_workbook(&self) -> bool {
        matches!(self.data, Data::Sheet(_))
    }

    /// A reader from the first row.
    pub fn reader(&self) -> Result<Reader, InputError> {
        match &self.data {
            Data::Text(file) => Reader::from_reader(
                &self.path,
                Box::new(BufReader::with_capacity(
                    64 * 1024,
                    Positional {
                        file: file.clone(),
                        at: 0,
                    },
                )),
            ),
            Data::Sheet(sheet) => Reader::from_sheet(&self.path, sheet),
        }
        .and_then(|reader| self.check_unchanged().map(|()| reader))
    }

    /// Fails if the file was written or replaced since it was opened.
    pub fn check_unchanged(&self) -> Result<(), InputError> {
        let Some(seen) = self.seen else {
            return Ok(());
        };
        let now = std::fs::metadata(&self.path).ok().map(|m| Seen::of(&m));
        let held = match &self.data {
            Data::Text(file) => file.metadata().ok().map(|m| Seen::of(&m)),
            Data::Sheet(_) => now,
        };
        if now == Some(seen) && held == Some(seen) {
            return Ok(());
        }
        Err(InputError::Changed {
            path: self.path.clone(),
        })
    }
}

/// Copies a stream into an anonymous temporary file, deleted when closed.
fn spool(stream: &mut impl Read) -> io::Result<File> {
    let mut copy = tempfile::tempfile()?;
    io::copy(stream, &mut copy)?;
    Ok(copy)
}

/// Reads a shared file from its own position, so that several readers share one open file.
struct Positional {
    file: Arc<File>,
    at: u64,
}

impl Read for Positional {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buffer, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(source: &Source) -> Vec<u64> {
        source
            .reader()
            .unwrap()
            .map(|record| record.unwrap().line)
            .collect()
    }

    #[test]
    fn every_phase_reads_the_same_rows_and_a_change_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(
            &path,
            "region,image_id,permission\nap-seoul,img-aaaaaaaa,SHARE\n",
        )
        .unwrap();
        let source = Source::open(&path, None).unwrap();
        assert_eq!(lines(&source), [2]);
        assert_eq!(lines(&source), [2], "a second phase reads it again");
        // An editor's atomic save: a new file renamed over the old one.
        let new = dir.path().join("new.csv");
        std::fs::write(
            &new,
            "region,image_id,permission\nap-tokyo,img-bbbbbbbb,SHARE\n",
        )
        .unwrap();
        std::fs::rename(&new, &path).unwrap();
        let error = source.check_unchanged().unwrap_err().to_string();
        assert!(error.contains("changed"), "{error}");
        assert!(source.reader().is_err());
    }

    #[test]
    fn a_directory_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let error = Source::open(dir.path(), None).err().unwrap().to_string();
        assert!(error.contains("is a directory"), "{error}");
        assert!(!error.contains("line 0"), "{error}");
    }

    #[test]
    fn a_fifo_is_read_once_and_every_phase_reads_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::fs::write(
                    path,
                    "region,image_id,permission\nap-seoul,img-aaaaaaaa,SHARE\n",
                )
                .unwrap()
            })
        };
        let source = Source::open(&path, None).unwrap();
        writer.join().unwrap();
        assert_eq!(lines(&source), [2]);
        assert_eq!(lines(&source), [2]);
    }
}
