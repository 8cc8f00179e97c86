//! The decision (SPEC §9): what to do with a row, given what is known about its image. The
//! invariant (after exit 0 every image is as the sheet's last valid row for it says, and that
//! row's status says so) lives in [`decide`]; resume, drift and failed rows are cases of it.
//!
//! Evidence comes from three places, freshest last:
//! - the record of earlier runs ([`Resume`]): the row's own final record, and the state this
//!   tool last left the image in;
//! - the look-up of the image's region ([`Listed`]), when it is complete and consistent;
//! - this run: once a row of the image is sent, its state is unknown until the run ends (the
//!   row may fail, and a failed row proves nothing), so every later row of it is sent too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::action::Permission;
use crate::input::Row;
use crate::results::{Footprint, Identity, Kept, Repeats, Resume, Sharing, image_key};

/// What the look-up of one region found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listed {
    /// A complete, consistent listing: image id → BlueprintId of every image shared there.
    Complete(HashMap<String, String>),
    /// The listing could not be had or contradicted itself: the state is unknown, and why.
    Unknown(String),
}

/// The look-ups of a run: region → what was found. A region missing here was not looked up
/// (`--no-lookup`, or the CAM policy refuses the look-up).
pub type State = HashMap<&'static str, Listed>;

/// What the look-up says about one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen<'a> {
    /// Shared, with this BlueprintId.
    Shared(&'a str),
    Unshared,
    /// The region was not looked up: the user chose to send without reading the state.
    NotLookedUp,
    /// The look-up failed or was inconsistent: it proves nothing.
    Unknown,
}

impl Seen<'_> {
    /// The image's state, if the look-up knows it.
    pub fn sharing(self) -> Option<Sharing> {
        match self {
            Seen::Shared(_) => Some(Sharing::Shared),
            Seen::Unshared => Some(Sharing::Unshared),
            Seen::NotLookedUp | Seen::Unknown => None,
        }
    }
}

/// Everything known about a row's image when the row is decided.
#[derive(Clone, Copy, Debug)]
pub struct Evidence<'a> {
    /// The row's own final record from an earlier run.
    pub kept: Option<Kept>,
    /// The state this tool last left the image in, by the record.
    pub recorded: Footprint,
    /// What the look-up of this run found.
    pub seen: Seen<'a>,
    /// An earlier row of the image was sent in this run: its state is unknown until the end.
    pub sent_earlier: bool,
}

/// What to do with a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Its earlier record stands: nothing contradicts it.
    Keep,
    Send,
    /// SHARE of an image the look-up found shared, with its BlueprintId: not sent.
    AlreadyShared(String),
    /// CANCEL of an image a complete look-up found not shared: not sent.
    AlreadyUnshared,
}

/// Decides a row asking `wanted`. A row is settled (kept, or not sent) only on evidence that
/// its image is as asked now; everything else is sent, and the service decides.
pub fn decide(wanted: Permission, evidence: &Evidence) -> Decision {
    // A permanent failure is final (SPEC §5): it is kept, and says nothing about the image.
    if evidence.kept == Some(Kept::Failed) {
        return Decision::Keep;
    }
    if evidence.sent_earlier {
        return Decision::Send;
    }
    // A shared row recorded without its BlueprintId is decided again when the look-up can
    // name it: it then ends `already_shared` with it.
    let kept = match (evidence.kept, evidence.seen) {
        (Some(Kept::Unnamed), Seen::Shared(_)) => None,
        (Some(Kept::Unnamed), _) => Some(Kept::Done(Sharing::Shared)),
        (kept, _) => kept,
    };
    let wanted = Sharing::wanted(wanted);
    // With --no-lookup the record is all there is; else the look-up must agree.
    let seen_agrees = match evidence.seen {
        Seen::NotLookedUp => true,
        seen => seen.sharing() == Some(wanted),
    };
    if kept == Some(Kept::Done(wanted))
        && evidence.recorded == Footprint::Left(wanted)
        && seen_agrees
    {
        return Decision::Keep;
    }
    match (wanted, evidence.seen) {
        (Sharing::Shared, Seen::Shared(blueprint)) => Decision::AlreadyShared(blueprint.into()),
        (Sharing::Unshared, Seen::Unshared) => Decision::AlreadyUnshared,
        _ => Decision::Send,
    }
}

/// An image changed outside this tool: the record says this tool left it one way, the
/// look-up found it the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drift {
    pub left: Sharing,
    pub found: Sharing,
}

impl Drift {
    /// The drift between `recorded` and `seen`, if they disagree.
    pub fn between(recorded: Footprint, seen: Seen) -> Option<Self> {
        match (recorded, seen.sharing()) {
            (Footprint::Left(left), Some(found)) if left != found => Some(Self { left, found }),
            _ => None,
        }
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "changed outside this tool before this row's run: this tool had left it {}, the look-up found it {}",
            self.left.as_str(),
            self.found.as_str()
        )
    }
}

/// A row's decision, and the drift of its image when the row is decided again because of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    pub decision: Decision,
    pub drift: Option<Drift>,
}

/// Decides the rows of one bucket in file order: gathers each row's evidence from the
/// record, the look-up and the rows before it.
pub struct Decider {
    state: State,
    resume: Arc<Resume>,
    /// The images more than one row names, when known ([`Decider::knowing`]): only they
    /// are remembered from one row to the next, so memory does not grow with the rows.
    /// Unknown, every image is.
    repeats: Option<Repeats>,
    /// Images a row of this run was sent for (of those remembered).
    sent: HashSet<u64>,
    /// Images found changed outside this tool, counted once each (of those remembered).
    drifted: HashSet<u64>,
    /// Drifted images over every bucket's decider, for the summary.
    n_drifted: Arc<AtomicU64>,
}

impl Decider {
    pub fn new(state: State, resume: Arc<Resume>, n_drifted: Arc<AtomicU64>) -> Self {
        Self {
            state,
            resume,
            repeats: None,
            sent: HashSet::new(),
            drifted: HashSet::new(),
            n_drifted,
        }
    }

    /// Remembers only the images that `repeats` says more than one row names: an image of
    /// one row has no row after it to decide, and its drift is counted once by itself.
    pub fn knowing(mut self, repeats: &Repeats) -> Self {
        self.repeats = Some(repeats.clone());
        self
    }

    /// Whether a later row may name `image` (an [`image_key`]).
    fn names_again(&self, image: u64) -> bool {
        self.repeats
            .as_ref()
            .is_none_or(|repeats| repeats.names_again(image))
    }

    /// What the look-up says about `image_id` in `region`.
    fn seen(&self, region: &str, image_id: &str) -> Seen<'_> {
        match self.state.get(region) {
            None => Seen::NotLookedUp,
            Some(Listed::Unknown(_)) => Seen::Unknown,
            Some(Listed::Complete(images)) => match images.get(image_id) {
                Some(blueprint) => Seen::Shared(blueprint),
                None => Seen::Unshared,
            },
        }
    }

    /// Decides `row` (numbered: `identity` is its identity), the next row of its bucket.
    pub fn decide(&mut self, row: &Row, identity: &Identity) -> Decided {
        let image = image_key(row.region, &row.image_id);
        let again = self.names_again(image);
        let recorded = self.resume.recorded(row.region, &row.image_id);
        let seen = self.seen(row.region, &row.image_id);
        let evidence = Evidence {
            kept: self.resume.kept(identity),
            recorded,
            seen,
            sent_earlier: again && self.sent.contains(&image),
        };
        let decision = decide(row.permission, &evidence);
        let drift = match decision {
            Decision::Keep => None,
            _ => Drift::between(recorded, seen),
        };
        if drift.is_some() && (!again || self.drifted.insert(image)) {
            self.n_drifted.fetch_add(1, Ordering::Relaxed);
        }
        if again && decision == Decision::Send {
            self.sent.insert(image);
        }
        Decided { decision, drift }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::{Cancel, Share};
    use Sharing::{Shared, Unshared};

    fn evidence(kept: Option<Kept>, recorded: Footprint, seen: Seen<'static>) -> Evidence<'static> {
        Evidence {
            kept,
            recorded,
            seen,
            sent_earlier: false,
        }
    }

    #[test]
    fn a_new_row_is_settled_only_by_a_look_up_that_knows_and_agrees() {
        let new = |seen| evidence(None, Footprint::Untouched, seen);
        let cases = [
            (
                Share,
                Seen::Shared("lhbp-a"),
                Decision::AlreadyShared("lhbp-a".into()),
            ),
            (Share, Seen::Unshared, Decision::Send),
            (Share, Seen::Unknown, Decision::Send),
            (Share, Seen::NotLookedUp, Decision::Send),
            (Cancel, Seen::Unshared, Decision::AlreadyUnshared),
            (Cancel, Seen::Shared("lhbp-a"), Decision::Send),
            (Cancel, Seen::Unknown, Decision::Send),
            (Cancel, Seen::NotLookedUp, Decision::Send),
        ];
        for (wanted, seen, expected) in cases {
            assert_eq!(decide(wanted, &new(seen)), expected, "{wanted} {seen:?}");
        }
    }

    #[test]
    fn a_finished_row_is_kept_only_while_the_record_and_the_look_up_agree_with_it() {
        let done = Some(Kept::Done(Shared));
        let left_shared = Footprint::Left(Shared);
        assert_eq!(
            decide(Share, &evidence(done, left_shared, Seen::Shared("b"))),
            Decision::Keep
        );
        assert_eq!(
            decide(Share, &evidence(done, left_shared, Seen::NotLookedUp)),
            Decision::Keep,
            "with --no-lookup the record is all there is"
        );
        // A later record says otherwise (the sheet flipped, was reordered or fixed).
        assert_eq!(
            decide(
                Share,
                &evidence(done, Footprint::Left(Unshared), Seen::Unshared)
            ),
            Decision::Send
        );
        assert_eq!(
            decide(
                Share,
                &evidence(done, Footprint::Left(Unshared), Seen::Shared("b"))
            ),
            Decision::AlreadyShared("b".into()),
            "decided again like a new row"
        );
        // A later row may have changed the image unseen.
        assert_eq!(
            decide(
                Share,
                &evidence(done, Footprint::Unknown, Seen::NotLookedUp)
            ),
            Decision::Send
        );
        // Drift: someone else unshared it.
        assert_eq!(
            decide(Share, &evidence(done, left_shared, Seen::Unshared)),
            Decision::Send
        );
        // A listing that proves nothing keeps nothing.
        assert_eq!(
            decide(Share, &evidence(done, left_shared, Seen::Unknown)),
            Decision::Send
        );
        let cancelled = Some(Kept::Done(Unshared));
        assert_eq!(
            decide(
                Cancel,
                &evidence(cancelled, Footprint::Left(Unshared), Seen::Unshared)
            ),
            Decision::Keep
        );
        assert_eq!(
            decide(
                Cancel,
                &evidence(cancelled, Footprint::Left(Unshared), Seen::Shared("b"))
            ),
            Decision::Send
        );
    }

    #[test]
    fn a_shared_row_recorded_without_its_blueprint_id_takes_it_from_the_look_up() {
        let unnamed = Some(Kept::Unnamed);
        let left_shared = Footprint::Left(Shared);
        assert_eq!(
            decide(Share, &evidence(unnamed, left_shared, Seen::Shared("b"))),
            Decision::AlreadyShared("b".into())
        );
        assert_eq!(
            decide(Share, &evidence(unnamed, left_shared, Seen::NotLookedUp)),
            Decision::Keep,
            "nothing can name it: the record stands"
        );
        assert_eq!(
            decide(Share, &evidence(unnamed, left_shared, Seen::Unshared)),
            Decision::Send,
            "drift"
        );
        assert_eq!(
            decide(Share, &evidence(unnamed, left_shared, Seen::Unknown)),
            Decision::Send
        );
    }

    #[test]
    fn after_a_row_of_the_image_is_sent_every_later_row_is_sent_but_failures_stay_kept() {
        let mut after_send = evidence(None, Footprint::Untouched, Seen::Shared("b"));
        after_send.sent_earlier = true;
        assert_eq!(decide(Share, &after_send), Decision::Send);
        after_send.seen = Seen::Unshared;
        assert_eq!(decide(Cancel, &after_send), Decision::Send);
        after_send.kept = Some(Kept::Done(Unshared));
        after_send.recorded = Footprint::Left(Unshared);
        assert_eq!(decide(Cancel, &after_send), Decision::Send);
        after_send.kept = Some(Kept::Failed);
        assert_eq!(decide(Share, &after_send), Decision::Keep);
    }

    #[test]
    fn drift_is_a_recorded_state_the_look_up_contradicts() {
        assert_eq!(
            Drift::between(Footprint::Left(Shared), Seen::Unshared),
            Some(Drift {
                left: Shared,
                found: Unshared
            })
        );
        assert_eq!(
            Drift::between(Footprint::Left(Shared), Seen::Shared("b")),
            None
        );
        assert_eq!(Drift::between(Footprint::Left(Shared), Seen::Unknown), None);
        assert_eq!(Drift::between(Footprint::Unknown, Seen::Unshared), None);
        assert_eq!(Drift::between(Footprint::Untouched, Seen::Unshared), None);
    }

    fn row(image: &str, permission: Permission) -> Row {
        Row {
            line: 2,
            region: "ap-seoul",
            image_id: image.into(),
            permission,
            occurrence: 1,
            note: None,
        }
    }

    #[test]
    fn the_decider_sends_every_row_of_an_image_after_one_is_sent_and_counts_drift_once() {
        let state = State::from([
            (
                "ap-seoul",
                Listed::Complete(HashMap::from([("img-shared00".into(), "lhbp-a".into())])),
            ),
            ("ap-tokyo", Listed::Unknown("an empty page".into())),
        ]);
        let n_drifted = Arc::new(AtomicU64::new(0));
        let mut decider = Decider::new(state, Arc::new(Resume::default()), n_drifted.clone());
        let mut decide = |image: &str, permission| {
            let row = row(image, permission);
            decider.decide(&row, &Identity::of(&row)).decision
        };
        assert_eq!(
            decide("img-shared00", Share),
            Decision::AlreadyShared("lhbp-a".into())
        );
        assert_eq!(decide("img-new00000", Cancel), Decision::AlreadyUnshared);
        assert_eq!(decide("img-new00000", Share), Decision::Send);
        assert_eq!(
            decide("img-new00000", Share),
            Decision::Send,
            "the row before may have failed: the service decides"
        );
        assert_eq!(decide("img-new00000", Cancel), Decision::Send);
        let tokyo = Row {
            region: "ap-tokyo",
            ..row("img-shared00", Cancel)
        };
        assert_eq!(
            decider.decide(&tokyo, &Identity::of(&tokyo)).decision,
            Decision::Send,
            "an unknown listing settles nothing"
        );
        assert_eq!(n_drifted.load(Ordering::Relaxed), 0);
    }

    /// Knowing which images more than one row names, the decider remembers only those, and
    /// decides every row as it does remembering all.
    #[test]
    fn a_decider_knowing_the_repeats_remembers_only_repeated_images_and_decides_the_same() {
        use crate::results::{Asks, Occurrences};
        let state = State::from([(
            "ap-seoul",
            Listed::Complete(HashMap::from([("img-shared00".into(), "lhbp-a".into())])),
        )]);
        let mut rows = [
            row("img-single0", Share),
            row("img-twice00", Cancel),
            row("img-shared00", Share),
            row("img-twice00", Share),
            row("img-single1", Cancel),
            row("img-twice00", Share),
        ];
        let mut asks = Asks::default();
        rows.iter().for_each(|row| asks.push(row).unwrap());
        let repeats = asks.finish().unwrap().repeats;
        let mut occurrences = Occurrences::new(&repeats);
        let identities: Vec<Identity> = rows
            .iter_mut()
            .map(|row| occurrences.identify(row))
            .collect();
        let resume = Arc::new(Resume::default());
        let mut all = Decider::new(state.clone(), resume.clone(), Default::default());
        let mut knowing = Decider::new(state, resume, Default::default()).knowing(&repeats);
        for (row, identity) in rows.iter().zip(&identities) {
            assert_eq!(
                knowing.decide(row, identity),
                all.decide(row, identity),
                "{}",
                row.image_id
            );
        }
        assert_eq!(all.sent.len(), 2, "every image sent is remembered");
        assert_eq!(
            knowing.sent,
            HashSet::from([image_key("ap-seoul", "img-twice00")]),
            "only the image of several rows"
        );
    }
}
