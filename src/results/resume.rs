//! What `--resume` reads from the record of earlier runs: for each row, its last finished
//! record (kept unless something contradicts it, SPEC §9), and for each image, the state this
//! tool last left it in. The decision itself is `decide`'s; this only reads the evidence.
//! Sixteen bytes a recorded row and an image, whatever the row holds.

use std::collections::HashMap;
use std::path::Path;

use super::{Identity, Outcome, Status, journal};
use crate::action::Permission;
use crate::api::{Class, classify};

/// Whether an image is shared to Lighthouse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sharing {
    Shared,
    Unshared,
}

impl Sharing {
    /// What a row asking `permission` wants the image to be.
    pub fn wanted(permission: Permission) -> Self {
        match permission {
            Permission::Share => Sharing::Shared,
            Permission::Cancel => Sharing::Unshared,
        }
    }

    /// What a row's status says the image is, if it says anything: a failed row says nothing.
    pub fn of(status: Status) -> Option<Self> {
        match status {
            Status::Shared | Status::AlreadyShared => Some(Sharing::Shared),
            Status::Unshared | Status::AlreadyUnshared => Some(Sharing::Unshared),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::Unshared => "not shared",
        }
    }
}

/// What the record says this tool last left an image in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Footprint {
    /// No row of this image succeeded in an earlier run.
    Untouched,
    /// The last row of the image that succeeded left it so, and nothing after it may have
    /// changed it.
    Left(Sharing),
    /// A later row failed in a way that may have gone through (a timeout, a transient
    /// error): the image may be either way.
    Unknown,
}

/// A row's own last record, when its status is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// It succeeded: the image was left so (unless a later record says otherwise).
    Done(Sharing),
    /// It succeeded in sharing, but its record lacks the BlueprintId (the fresh look-up
    /// could not name it then).
    Unnamed,
    /// It failed with an error another attempt cannot mend (SPEC §5): kept, and says
    /// nothing about the image.
    Failed,
}

#[derive(Default)]
pub struct Resume {
    /// Row identity key → its final record.
    kept: HashMap<u64, Kept>,
    /// Image key ([`image_key`]) → what the last record about it says.
    images: HashMap<u64, Footprint>,
}

/// A 64-bit digest of an image (region and id): the key of the per-image knowledge. The same
/// digest as `identity::ask` without its permission bit. Computed for every row of the
/// validation pass, so a fast hash (foldhash's, with a fixed seed: the same in every run;
/// digests are never stored) rather than SipHash.
pub fn image_key(region: &str, image_id: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x6c69_6768_7468_6f75).hash_one((region, image_id))
}

impl Resume {
    /// Reads the record at `path`, made against `target`; the last record of a row wins, and
    /// the last record of an image that says anything about it gives its recorded state.
    pub fn load(path: &Path, target: &str) -> anyhow::Result<Self> {
        let mut resume = Self::default();
        for record in journal::read(path, target)? {
            let (_, outcome) = record?;
            resume.note(&outcome);
        }
        Ok(resume)
    }

    /// Takes in one record, in the order the record holds them.
    fn note(&mut self, outcome: &Outcome) {
        let key = outcome.identity.key();
        let sharing = Sharing::of(outcome.status);
        match (outcome.is_final(), sharing) {
            (true, Some(Sharing::Shared)) if outcome.blueprint_id.is_none() => {
                self.kept.insert(key, Kept::Unnamed)
            }
            (true, Some(sharing)) => self.kept.insert(key, Kept::Done(sharing)),
            (true, None) => self.kept.insert(key, Kept::Failed),
            (false, _) => self.kept.remove(&key),
        };
        let image = image_key(&outcome.identity.region, &outcome.identity.image_id);
        match sharing {
            Some(sharing) => {
                self.images.insert(image, Footprint::Left(sharing));
            }
            None if might_have_gone_through(outcome) => {
                self.images.insert(image, Footprint::Unknown);
            }
            // The service refused it, or it was never sent: the image is as before.
            None => {}
        }
    }

    /// The row's own final record, if it has one.
    pub fn kept(&self, identity: &Identity) -> Option<Kept> {
        self.kept.get(&identity.key()).copied()
    }

    /// Whether the row has a final record (it may still be decided again: see `decide`).
    pub fn is_kept(&self, identity: &Identity) -> bool {
        self.kept.contains_key(&identity.key())
    }

    /// What the record says this tool last left the image in.
    pub fn recorded(&self, region: &str, image_id: &str) -> Footprint {
        self.images
            .get(&image_key(region, image_id))
            .copied()
            .unwrap_or(Footprint::Untouched)
    }

    /// The images the record says this tool last left shared, by name: what a rehearsal
    /// on a fresh simulator starts from, so that `--simulate --resume` meets the account its
    /// last run left (SPEC §8), not an empty one.
    pub fn shared_images(path: &Path, target: &str) -> anyhow::Result<Vec<(String, String)>> {
        let mut images: HashMap<(String, String), bool> = HashMap::new();
        for record in journal::read(path, target)? {
            let (_, outcome) = record?;
            if let Some(sharing) = Sharing::of(outcome.status) {
                let image = (outcome.identity.region, outcome.identity.image_id);
                images.insert(image, sharing == Sharing::Shared);
            }
        }
        let mut shared: Vec<_> = images
            .into_iter()
            .filter(|(_, s)| *s)
            .map(|(i, _)| i)
            .collect();
        shared.sort();
        Ok(shared)
    }

    /// Rows with a final record.
    pub fn n_kept(&self) -> usize {
        self.kept.len()
    }
}

/// Whether a failed row may have changed its image: a transient failure (a timeout, a reset
/// connection, an internal error) may come after the service did the work.
fn might_have_gone_through(outcome: &Outcome) -> bool {
    outcome.status == Status::Failed
        && classify(
            outcome.error_code.as_deref().unwrap_or_default(),
            outcome.identity.permission,
        ) == Class::Transient
}

#[cfg(test)]
mod tests {
    use super::*;
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
                Outcome {
                    blueprint_id: Some("lhbp-6".into()),
                    ..Outcome::new(identity("img-00000006"), 9, Status::Shared)
                },
            ])
            .unwrap();
        drop(journal);
        let resume = Resume::load(&path, "t").unwrap();
        let kept: Vec<u32> = (1..=6)
            .filter(|n| resume.is_kept(&identity(&format!("img-{n:08}"))))
            .collect();
        assert_eq!(kept, [1, 2, 5, 6]);
        assert_eq!(
            resume.kept(&identity("img-00000002")),
            Some(Kept::Failed),
            "a permanent failure is kept, and says nothing about the image"
        );
        assert_eq!(
            resume.kept(&identity("img-00000006")),
            Some(Kept::Done(Sharing::Shared))
        );
        assert_eq!(
            resume.kept(&identity("img-00000001")),
            Some(Kept::Unnamed),
            "shared, but recorded without its BlueprintId"
        );
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

    /// The image's recorded state is the last record that says anything about it: a
    /// permanent failure says nothing, a transient one may have gone through.
    #[test]
    fn an_image_is_recorded_as_its_last_success_left_it_unless_a_later_failure_may_have_changed_it()
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.journal");
        let mut journal = Journal::create(&path, "t").unwrap();
        let cancel = |image: &str| Identity {
            permission: Permission::Cancel,
            ..identity(image)
        };
        journal
            .append(&[
                Outcome::new(identity("img-00000001"), 2, Status::Shared),
                Outcome::new(cancel("img-00000001"), 3, Status::Unshared),
                Outcome::new(identity("img-00000002"), 4, Status::Shared),
                Outcome::new(identity("img-00000002"), 5, Status::Failed)
                    .with_error("UnsupportedOperation.ImageUnableToShare", "m"),
                Outcome::new(identity("img-00000003"), 6, Status::AlreadyShared),
                Outcome::new(cancel("img-00000003"), 7, Status::Failed).with_error("Timeout", "m"),
            ])
            .unwrap();
        drop(journal);
        let resume = Resume::load(&path, "t").unwrap();
        let recorded = |image| resume.recorded("ap-seoul", image);
        assert_eq!(
            recorded("img-00000001"),
            Footprint::Left(Sharing::Unshared),
            "the later row wins"
        );
        assert_eq!(recorded("img-00000002"), Footprint::Left(Sharing::Shared));
        assert_eq!(recorded("img-00000003"), Footprint::Unknown);
        assert_eq!(recorded("img-00000004"), Footprint::Untouched);
        assert_eq!(
            resume.recorded("ap-tokyo", "img-00000001"),
            Footprint::Untouched
        );
        assert_eq!(
            resume.kept(&cancel("img-00000001")),
            Some(Kept::Done(Sharing::Unshared))
        );
    }
}
