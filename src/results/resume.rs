//! What `--resume` keeps from an earlier run's results.

use std::path::Path;

use anyhow::bail;

use super::{Outcome, read_rows};
use crate::input::Record;

/// What `--resume` takes from a results file: for each line, the fingerprint of the row kept
/// there (0: nothing kept, the row runs again). Four bytes a line, whatever the file holds.
#[derive(Default)]
pub struct Resume {
    kept: Vec<u32>,
}

impl Resume {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let mut resume = Self::default();
        if !path.exists() {
            return Ok(resume);
        }
        for row in read_rows(path)? {
            let row = row?;
            let line = usize::try_from(row.line)?;
            if resume.kept.len() <= line {
                resume.kept.resize(line + 1, 0);
            }
            resume.kept[line] = if row.is_final() {
                Outcome::fingerprint(&row.region, &row.image_id, &row.permission)
            } else {
                0
            };
        }
        Ok(resume)
    }

    /// The lines of the kept rows, in order.
    pub fn kept_lines(&self) -> impl Iterator<Item = u64> + '_ {
        self.kept
            .iter()
            .enumerate()
            .filter(|(_, fingerprint)| **fingerprint != 0)
            .map(|(line, _)| line as u64)
    }

    /// Whether the row at `line` is done and kept.
    pub fn is_kept(&self, line: u64) -> bool {
        self.kept_fingerprint(line) != 0
    }

    fn kept_fingerprint(&self, line: u64) -> u32 {
        usize::try_from(line)
            .ok()
            .and_then(|i| self.kept.get(i).copied())
            .unwrap_or(0)
    }

    /// Checks that a kept row asked for what the input's row at its line asks for.
    pub fn check(&self, record: &Record, results: &Path) -> anyhow::Result<()> {
        let kept = self.kept_fingerprint(record.line);
        if kept != 0
            && kept != Outcome::fingerprint(&record.region, &record.image_id, &record.permission)
        {
            bail!(
                "{} does not belong to this input: its row for line {} is not {},{},{}. Give this input its own --output, or drop --resume to start afresh",
                results.display(),
                record.line,
                record.region,
                record.image_id,
                record.permission
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Journal;
    use crate::results::Status;

    fn record(line: u64, image: &str) -> Record {
        Record {
            line,
            region: "ap-seoul".into(),
            image_id: image.into(),
            permission: "SHARE".into(),
        }
    }

    #[test]
    fn resume_keeps_final_rows_and_refuses_another_input() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("out.csv");
        let mut journal = Journal::open(&results, false).unwrap();
        let failed = |line, code: &str| {
            Outcome::new(&record(line, "img-00000009"), Status::Failed).with_error(code, "m")
        };
        journal
            .append(&[Outcome::new(&record(2, "img-00000002"), Status::Shared)])
            .unwrap();
        journal
            .append(&[Outcome::new(&record(3, "img-00000003"), Status::Skipped)])
            .unwrap();
        journal
            .append(&[failed(4, "ResourceNotFound.ImageIdNotFound")])
            .unwrap();
        journal.append(&[failed(5, "Timeout")]).unwrap();
        journal
            .append(&[failed(6, "AuthFailure.SignatureFailure")])
            .unwrap();
        journal.sync().unwrap();
        let resume = Resume::load(&results).unwrap();
        let kept: Vec<u64> = (2..=6).filter(|line| resume.is_kept(*line)).collect();
        assert_eq!(kept, [2, 4], "successes and permanent failures are kept");
        assert!(resume.check(&record(2, "img-00000002"), &results).is_ok());
        let mut upper = record(2, "img-00000002");
        upper.region = "AP-SEOUL".into();
        assert!(
            resume.check(&upper, &results).is_ok(),
            "case does not matter"
        );
        let error = resume
            .check(&record(2, "img-00000099"), &results)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("does not belong to this input") && error.contains("line 2"),
            "{error}"
        );
    }
}
