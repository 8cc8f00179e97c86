//! What `--resume` keeps from the record of earlier runs: the rows whose status is final,
//! by identity. Eight bytes a kept row, whatever the row holds.

use std::collections::HashSet;
use std::path::Path;

use super::{Identity, journal};

#[derive(Default)]
pub struct Resume {
    kept: HashSet<u64>,
}

impl Resume {
    /// Reads the record at `path`, made against `target`; the last record of a row wins.
    pub fn load(path: &Path, target: &str) -> anyhow::Result<Self> {
        let mut kept = HashSet::new();
        for record in journal::read(path, target)? {
            let (_, outcome) = record?;
            let key = outcome.identity.key();
            if outcome.is_final() {
                kept.insert(key);
            } else {
                kept.remove(&key);
            }
        }
        Ok(Self { kept })
    }

    /// Whether the row is done and kept: it is not run again.
    pub fn is_kept(&self, identity: &Identity) -> bool {
        self.kept.contains(&identity.key())
    }

    pub fn n_kept(&self) -> usize {
        self.kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Permission;
    use crate::results::{Journal, Outcome, Status};

    fn identity(image: &str) -> Identity {
        Identity {
            region: "ap-seoul".into(),
            image_id: image.into(),
            permission: Permission::Share,
            occurrence: 1,
        }
    }

    #[test]
    fn successes_and_permanent_failures_are_kept_and_the_last_record_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.journal");
        let mut journal = Journal::create(&path, "t").unwrap();
        let failed = |image, code: &str| {
            Outcome::new(identity(image), 2, Status::Failed).with_error(code, "m")
        };
        journal
            .append(&[
                Outcome::new(identity("img-00000001"), 2, Status::Shared),
                failed("img-00000002", "ResourceNotFound.ImageIdNotFound"),
                failed("img-00000003", "Timeout"),
                failed("img-00000004", "AuthFailure.SignatureFailure"),
                Outcome::new(identity("img-00000005"), 2, Status::AlreadyUnshared),
                failed("img-00000006", "Timeout"),
                Outcome::new(identity("img-00000006"), 9, Status::Shared),
            ])
            .unwrap();
        drop(journal);
        let resume = Resume::load(&path, "t").unwrap();
        let kept: Vec<u32> = (1..=6)
            .filter(|n| resume.is_kept(&identity(&format!("img-{n:08}"))))
            .collect();
        assert_eq!(kept, [1, 2, 5, 6]);
        assert!(!resume.is_kept(&Identity {
            occurrence: 2,
            ..identity("img-00000001")
        }));
        assert_eq!(
            Resume::load(&dir.path().join("none"), "t")
                .unwrap()
                .n_kept(),
            0
        );
    }
}
