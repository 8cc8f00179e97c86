//! Preflight (SPEC §10): a dry run asks `DescribeImagesToShare` about the images of the SHARE
//! rows the look-up did not settle, region by region, up to 100 ids a request, and names
//! every row the service would refuse and why: not in its region (and where it is), not
//! shareable (the service's reason), or not `NORMAL`. A real run never settles a row from
//! it, since what the listing says may differ from what the share accepts; it only explains
//! a row refused with `ResourceNotFound.ImageIdNotFound` by saying where the image is
//! ([`hint`]).
//!
//! The stage is written against [`Ask`], one request's worth of "which of these images does
//! this region have?", so that its batching and its verdicts are tested without HTTP; the
//! run hands it a real one that goes through the pacing and retries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::action::{IMAGE_NOT_FOUND, IMAGES_LIMIT, REGIONS, supported_region};
use crate::actions::{DescribeImages, Image, Kind, NORMAL, is_refused};
use crate::api::{ApiError, Class};
use crate::engine::{Engine, Unfinished};
use crate::input::Row;
use crate::job::{Bucket, Job};
use crate::output::plural;
use crate::results::{Outcome, Status};
use crate::text;

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// It failed for good, its retries spent: the last answer's error.
    Failed(ApiError),
    /// The job is stopping.
    Left,
}

/// One request: the images of `image_ids` (at most [`IMAGES_LIMIT`]) that `region` has.
/// An image the region does not have is absent from the answer.
pub trait Ask: Clone + Send + Sync + 'static {
    fn ask(
        &self,
        region: &'static str,
        image_ids: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Image>, Unanswered>> + Send + 'static;
}

impl<F, Fut> Ask for F
where
    F: Fn(&'static str, Vec<String>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<Image>, Unanswered>> + Send + 'static,
{
    fn ask(
        &self,
        region: &'static str,
        image_ids: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Image>, Unanswered>> + Send + 'static {
        self(region, image_ids)
    }
}

/// The [`Ask`] of a run: each request through `engine`, in the `DescribeImagesToShare` lane
/// of its region's bucket (paced at that action's own 20/s, retried, adapted, counted).
pub fn through(engine: Arc<Engine>, job: &Job) -> impl Ask {
    let buckets: Arc<HashMap<&'static str, Arc<Bucket>>> = Arc::new(
        REGIONS
            .iter()
            .map(|region| (*region, job.any(region)))
            .collect(),
    );
    move |region: &'static str, image_ids: Vec<String>| {
        let (engine, buckets) = (engine.clone(), buckets.clone());
        async move {
            // Every region the preflight asks is one of REGIONS.
            let Some(bucket) = buckets.get(region) else {
                return Err(Unanswered::Left);
            };
            let request = DescribeImages { region, image_ids };
            let lane = bucket.lane(Kind::DescribeImages);
            match engine.call(lane, &request).await.result {
                Ok(images) => Ok(images),
                Err(Unfinished::Left) => Err(Unanswered::Left),
                Err(Unfinished::Failed(error) | Unfinished::AlreadyDone(error)) => {
                    Err(Unanswered::Failed(error))
                }
            }
        }
    }
}

/// Why a SHARE row would fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The image is not in the row's region. `found_in`: the other regions that have it;
    /// `searched`: every other region answered, so an empty `found_in` means nowhere.
    NotInRegion {
        found_in: Vec<&'static str>,
        searched: bool,
    },
    /// `IsShareable` is false: the service's reason, neutralised.
    NotShareable { reason: String },
    /// Shareable, but not `NORMAL`: its `ImageState`, neutralised.
    NotNormal { state: String },
}

impl Failure {
    /// What the failure means for `image_id` in `region`, with the fix.
    pub fn describe(&self, region: &str, image_id: &str) -> String {
        match self {
            Failure::NotInRegion { found_in, .. } if !found_in.is_empty() => {
                format!("{image_id} is in {}, not {region}", found_in.join(" and "))
            }
            Failure::NotInRegion { searched: true, .. } => format!(
                "{image_id} is not in {region}, nor in any other region that shares to Lighthouse: check the image id"
            ),
            Failure::NotInRegion {
                searched: false, ..
            } => format!(
                "{image_id} is not in {region} (the other regions could not all be asked where it is)"
            ),
            Failure::NotShareable { reason } if reason.is_empty() => {
                format!("{image_id} cannot be shared (the service gives no reason)")
            }
            Failure::NotShareable { reason } => format!("{image_id} cannot be shared: {reason}"),
            Failure::NotNormal { state } => format!(
                "{image_id} is {state}, and only NORMAL images can be shared: run again once it is NORMAL"
            ),
        }
    }
}

/// A row that would fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub line: u64,
    pub region: &'static str,
    pub image_id: String,
    pub failure: Failure,
}

impl Finding {
    pub fn message(&self) -> String {
        self.failure.describe(self.region, &self.image_id)
    }
}

/// What the preflight found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// The rows that would fail, in input order.
    pub failing: Vec<Finding>,
    /// Rows whose image was asked about and answered.
    pub n_checked: u64,
    /// Rows whose request got no answer (retries spent, or the job stopping): not judged.
    pub n_unchecked: u64,
    /// The CAM policy refuses `DescribeImagesToShare`: nothing was judged.
    pub refused: Option<ApiError>,
}

/// Judges each of `rows` (SHARE rows about to be sent) from `DescribeImagesToShare`: one
/// request per region per 100 distinct images, then, for the images not in their row's
/// region, one per other region per 100 of them. `Err` is a job-fatal answer.
pub async fn check(rows: &[Row], ask: impl Ask) -> Result<Findings, ApiError> {
    let mut requests: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for row in rows {
        requests
            .entry(row.region)
            .or_default()
            .insert(row.image_id.clone());
    }
    let answers = ask_all(&ask, requests).await;
    if let Some(error) = answers.fatal {
        return Err(error);
    }
    if let Some(error) = answers.refused {
        return Ok(Findings {
            n_unchecked: rows.len() as u64,
            refused: Some(error),
            ..Findings::default()
        });
    }
    // Image → the regions whose rows name it but do not have it.
    let mut missing: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for row in rows {
        if let Some(None) = answers.get(row.region, &row.image_id) {
            missing
                .entry(row.image_id.clone())
                .or_default()
                .insert(row.region);
        }
    }
    let located = locate(&missing, &ask).await?;
    let mut findings = Findings::default();
    for row in rows {
        let failure = match answers.get(row.region, &row.image_id) {
            None => {
                findings.n_unchecked += 1;
                continue;
            }
            Some(Some(image)) => judge(image),
            Some(None) => Some(located.failure(&row.image_id)),
        };
        findings.n_checked += 1;
        if let Some(failure) = failure {
            findings.failing.push(Finding {
                line: row.line,
                region: row.region,
                image_id: row.image_id.clone(),
                failure,
            });
        }
    }
    Ok(findings)
}

/// Why a listed image cannot be shared, if it cannot.
fn judge(image: &Image) -> Option<Failure> {
    if !image.shareable {
        let mut reason = neutralise(&image.unshareable_reason);
        if image.state != NORMAL {
            let state = neutralise(&image.state);
            reason = match reason.is_empty() {
                true => format!("its state is {state}"),
                false => format!("{reason} (its state is {state})"),
            };
        }
        Some(Failure::NotShareable { reason })
    } else if image.state != NORMAL {
        Some(Failure::NotNormal {
            state: neutralise(&image.state),
        })
    } else {
        None
    }
}

/// Where the images not found in their rows' regions are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Located {
    /// Image → the other regions that have it (sorted).
    pub found_in: HashMap<String, Vec<&'static str>>,
    /// Every region asked answered: an image in none of them is nowhere.
    pub complete: bool,
    /// The CAM policy refuses `DescribeImagesToShare`.
    pub refused: bool,
}

impl Located {
    fn failure(&self, image_id: &str) -> Failure {
        Failure::NotInRegion {
            found_in: self.found_in.get(image_id).cloned().unwrap_or_default(),
            searched: self.complete,
        }
    }
}

/// Asks every region but an image's own (`missing`: image → the regions known not to have
/// it) where it is: one request per region per 100 images. `Err` is a job-fatal answer.
pub async fn locate(
    missing: &BTreeMap<String, BTreeSet<&'static str>>,
    ask: &impl Ask,
) -> Result<Located, ApiError> {
    let mut requests = BTreeMap::new();
    for region in REGIONS {
        let ids: BTreeSet<String> = missing
            .iter()
            .filter(|(_, homes)| !homes.contains(region))
            .map(|(id, _)| id.clone())
            .collect();
        if !ids.is_empty() {
            requests.insert(region, ids);
        }
    }
    let answers = ask_all(ask, requests).await;
    if let Some(error) = answers.fatal {
        return Err(error);
    }
    let mut found_in: HashMap<String, Vec<&'static str>> = HashMap::new();
    for ((region, id), image) in answers.answered {
        if image.is_some() {
            found_in.entry(id).or_default().push(region);
        }
    }
    found_in.values_mut().for_each(|regions| regions.sort());
    Ok(Located {
        found_in,
        complete: answers.refused.is_none() && answers.n_unanswered == 0,
        refused: answers.refused.is_some(),
    })
}

/// After a real run: the rows refused with [`IMAGE_NOT_FOUND`] get, in their message, the regions
/// where their image is (SPEC §10), found once per region per 100 such rows. Returns the
/// rows whose message it amended, to be appended to the record. `Err` is a job-fatal answer.
pub async fn hint(outcomes: Vec<Outcome>, ask: &impl Ask) -> Result<Vec<Outcome>, ApiError> {
    let mut missing: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    let mut rows = Vec::new();
    for outcome in outcomes {
        let region = supported_region(&outcome.identity.region);
        if let (Some(region), Status::Failed, Some(IMAGE_NOT_FOUND)) =
            (region, outcome.status, outcome.error_code.as_deref())
        {
            missing
                .entry(outcome.identity.image_id.clone())
                .or_default()
                .insert(region);
            rows.push((region, outcome));
        }
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let located = locate(&missing, ask).await?;
    if located.refused {
        tracing::warn!(
            "the CAM policy of these credentials does not allow `lighthouse:DescribeImagesToShare`: the rows refused as not found cannot be told where their image is; grant it to have them told"
        );
    }
    let mut hinted = Vec::new();
    for (region, mut outcome) in rows {
        let failure = located.failure(&outcome.identity.image_id);
        if matches!(&failure, Failure::NotInRegion { found_in, searched } if found_in.is_empty() && !searched)
        {
            continue;
        }
        let hint = failure.describe(region, &outcome.identity.image_id);
        tracing::warn!(
            line = outcome.line,
            region,
            image_id = %outcome.identity.image_id,
            "line {}: {hint}",
            outcome.line
        );
        outcome.error_message = Some(match outcome.error_message.as_deref() {
            Some(message) if !message.is_empty() => format!("{message} ({hint})"),
            _ => hint,
        });
        hinted.push(outcome);
    }
    Ok(hinted)
}

/// What a set of requests found.
#[derive(Default)]
struct Answers {
    /// Each (region, image id) asked and answered: the image, if the region has it.
    answered: HashMap<(&'static str, String), Option<Image>>,
    /// The CAM policy refuses the action.
    refused: Option<ApiError>,
    /// A job-fatal answer: nothing more is asked.
    fatal: Option<ApiError>,
    /// Images whose request got no answer.
    n_unanswered: u64,
}

impl Answers {
    /// `None`: not answered; `Some(None)`: the region does not have it.
    fn get(&self, region: &'static str, image_id: &str) -> Option<Option<&Image>> {
        self.answered
            .get(&(region, image_id.to_string()))
            .map(Option::as_ref)
    }
}

/// Sends every request at once (the pacing is the [`Ask`]'s), [`IMAGES_LIMIT`] ids each.
async fn ask_all(ask: &impl Ask, requests: BTreeMap<&'static str, BTreeSet<String>>) -> Answers {
    let mut tasks = JoinSet::new();
    for (region, ids) in requests {
        let ids: Vec<String> = ids.into_iter().collect();
        for chunk in ids.chunks(IMAGES_LIMIT) {
            spawn(ask, &mut tasks, region, chunk.to_vec());
        }
    }
    let mut answers = Answers::default();
    while let Some(joined) = tasks.join_next().await {
        let Ok((region, ids, result)) = joined else {
            // Cancelled below, or a task that panicked: its images stay unanswered.
            answers.n_unanswered += 1;
            continue;
        };
        match answers.take(region, ids, result) {
            Then::Done => {}
            Then::Again(first, second) => {
                spawn(ask, &mut tasks, region, first);
                spawn(ask, &mut tasks, region, second);
            }
            // Every other request would be refused the same way.
            Then::Stop => tasks.abort_all(),
        }
    }
    answers
}

/// A request's answer, with what it asked.
type Asked = (&'static str, Vec<String>, Result<Vec<Image>, Unanswered>);

fn spawn(ask: &impl Ask, tasks: &mut JoinSet<Asked>, region: &'static str, ids: Vec<String>) {
    let ask = ask.clone();
    tasks.spawn(async move {
        let result = ask.ask(region, ids.clone()).await;
        (region, ids, result)
    });
}

/// What to do after an answer.
enum Then {
    Done,
    /// Ask again about these two halves of the list.
    Again(Vec<String>, Vec<String>),
    /// Ask nothing more.
    Stop,
}

impl Answers {
    /// Notes the answer about `ids` in `region`. A list refused as such
    /// (`InvalidParameterValue.*`) is asked again in halves, since the most ids a request
    /// may name is not documented.
    fn take(
        &mut self,
        region: &'static str,
        mut ids: Vec<String>,
        result: Result<Vec<Image>, Unanswered>,
    ) -> Then {
        let error = match result {
            Ok(images) => {
                let mut listed: HashMap<String, Image> = images
                    .into_iter()
                    .map(|image| (image.image_id.clone(), image))
                    .collect();
                for id in ids {
                    let image = listed.remove(&id);
                    self.answered.insert((region, id), image);
                }
                return Then::Done;
            }
            Err(Unanswered::Left) => {
                self.n_unanswered += ids.len() as u64;
                return Then::Done;
            }
            Err(Unanswered::Failed(error)) => error,
        };
        if is_refused(&error.code) {
            self.refused.get_or_insert(error);
            Then::Stop
        } else if error.class == Class::JobFatal {
            self.fatal.get_or_insert(error);
            Then::Stop
        } else if error.code.starts_with("InvalidParameterValue") && ids.len() > 1 {
            let second = ids.split_off(ids.len() / 2);
            Then::Again(ids, second)
        } else {
            tracing::warn!(
                region,
                code = %error.code,
                "{region}: a preflight request failed ({}: {}): {} not checked",
                error.code,
                neutralise(&error.message),
                plural(ids.len() as u64, "image", "images")
            );
            self.n_unanswered += ids.len() as u64;
            Then::Done
        }
    }
}

/// Logs what a dry run's preflight found: each row that would fail, with why, and the count.
pub fn log(findings: &Findings) {
    if let Some(error) = &findings.refused {
        tracing::warn!(
            code = %error.code,
            "the CAM policy of these credentials does not allow `lighthouse:DescribeImagesToShare` ({}): the dry run goes on without preflight, so it cannot say which SHARE rows the service would refuse; grant it to have them checked",
            error.code
        );
        return;
    }
    for finding in &findings.failing {
        tracing::warn!(
            line = finding.line,
            region = finding.region,
            image_id = %finding.image_id,
            "line {}: {} {} SHARE would fail: {}",
            finding.line,
            finding.region,
            finding.image_id,
            finding.message()
        );
    }
    if findings.n_unchecked > 0 {
        tracing::warn!(
            "preflight: {} could not be checked (see above)",
            plural(findings.n_unchecked, "SHARE row", "SHARE rows")
        );
    }
    tracing::info!(
        "preflight: {} of the {} checked would fail",
        findings.failing.len(),
        plural(findings.n_checked, "SHARE row", "SHARE rows")
    );
}

/// The service's text made safe to show ([`text::for_line`]: control and bidi characters
/// escaped, so an answer cannot move the cursor, clear the screen or reorder a line), cut
/// to [`SHOWN_CHARS`] characters: a reason is a few words, and a plan line should stay one.
fn neutralise(text: &str) -> String {
    let cut: String = text.chars().take(SHOWN_CHARS).collect();
    let mut shown = text::for_line(&cut).into_owned();
    if cut.len() < text.len() {
        shown.push('…');
    }
    shown
}

/// The most characters of the service's text shown.
const SHOWN_CHARS: usize = 300;

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::action::Permission;
    use crate::results::Identity;

    /// A stand-in for the service: the images of each region, and the requests it got.
    #[derive(Default)]
    struct Account {
        images: HashMap<&'static str, Vec<Image>>,
        /// (region, number of ids) of every request, in the order answered.
        requests: Mutex<Vec<(&'static str, usize)>>,
        /// Answer every request with this error instead.
        refuse: Option<&'static str>,
        /// Refuse lists longer than this with `InvalidParameterValue`.
        most_ids: Option<usize>,
        /// Regions whose requests fail for good.
        failing: Vec<&'static str>,
    }

    fn image(id: &str, state: &str, reason: Option<&str>) -> Image {
        Image {
            image_id: id.into(),
            state: state.into(),
            shareable: reason.is_none(),
            unshareable_reason: reason.unwrap_or_default().into(),
        }
    }

    fn error(code: &str, class: Class) -> ApiError {
        ApiError {
            code: code.into(),
            message: "m".into(),
            request_id: Some("r".into()),
            class,
        }
    }

    impl Account {
        fn with(mut self, region: &'static str, images: Vec<Image>) -> Self {
            self.images.entry(region).or_default().extend(images);
            self
        }

        fn asker(self) -> (Arc<Self>, impl Ask) {
            let account = Arc::new(self);
            let asked = account.clone();
            let ask = move |region: &'static str, ids: Vec<String>| {
                let account = asked.clone();
                async move { account.answer(region, &ids) }
            };
            (account, ask)
        }

        fn answer(&self, region: &'static str, ids: &[String]) -> Result<Vec<Image>, Unanswered> {
            assert!(
                ids.len() <= IMAGES_LIMIT,
                "{} ids in one request",
                ids.len()
            );
            self.requests.lock().unwrap().push((region, ids.len()));
            if let Some(code) = self.refuse {
                let class = crate::api::classify(code, Permission::Cancel);
                return Err(Unanswered::Failed(error(code, class)));
            }
            if self.most_ids.is_some_and(|most| ids.len() > most) {
                let code = "InvalidParameterValue.LimitExceeded";
                return Err(Unanswered::Failed(error(code, Class::Permanent)));
            }
            if self.failing.contains(&region) {
                return Err(Unanswered::Failed(error("InternalError", Class::Transient)));
            }
            let listed = self.images.get(region).into_iter().flatten();
            Ok(listed
                .filter(|i| ids.contains(&i.image_id))
                .cloned()
                .collect())
        }

        fn n_requests(&self) -> usize {
            self.requests.lock().unwrap().len()
        }
    }

    fn share(line: u64, region: &'static str, image_id: &str) -> Row {
        Row {
            line,
            region,
            image_id: image_id.into(),
            permission: Permission::Share,
            occurrence: 1,
            note: None,
        }
    }

    /// The done-when sheet: 1,000 shareable images in ap-tokyo, one not shareable, one in
    /// ap-guangzhou, one nowhere, one whose reason holds control characters.
    fn sheet() -> (Account, Vec<Row>) {
        let mut tokyo: Vec<Image> = (0..1000)
            .map(|i| image(&format!("img-{i:08}"), "NORMAL", None))
            .collect();
        tokyo.push(image("img-unshare0", "NORMAL", Some("no cloud-init")));
        tokyo.push(image(
            "img-hostile0",
            "NORMAL",
            Some("bad\x1b[2Jreason\u{202e}"),
        ));
        let account = Account::default()
            .with("ap-tokyo", tokyo)
            .with("ap-guangzhou", vec![image("img-elsewhr0", "NORMAL", None)]);
        let mut rows: Vec<Row> = (0..1000)
            .map(|i| share(i + 2, "ap-tokyo", &format!("img-{i:08}")))
            .collect();
        for (i, id) in [
            "img-unshare0",
            "img-elsewhr0",
            "img-nowhere0",
            "img-hostile0",
        ]
        .iter()
        .enumerate()
        {
            rows.push(share(1002 + i as u64, "ap-tokyo", id));
        }
        (account, rows)
    }

    #[tokio::test]
    async fn every_row_that_would_fail_is_named_with_why_in_few_requests() {
        let (account, rows) = sheet();
        let (account, ask) = account.asker();
        let findings = check(&rows, ask).await.unwrap();
        let lines: Vec<(u64, String)> = findings
            .failing
            .iter()
            .map(|f| (f.line, f.message()))
            .collect();
        assert_eq!(
            lines,
            [
                (1002, "img-unshare0 cannot be shared: no cloud-init".to_string()),
                (1003, "img-elsewhr0 is in ap-guangzhou, not ap-tokyo".to_string()),
                (
                    1004,
                    "img-nowhere0 is not in ap-tokyo, nor in any other region that shares to Lighthouse: check the image id".to_string()
                ),
                (
                    1005,
                    "img-hostile0 cannot be shared: bad\\u{1b}[2Jreason\\u{202e}".to_string()
                ),
            ]
        );
        assert_eq!((findings.n_checked, findings.n_unchecked), (1004, 0));
        // 1,004 images in ap-tokyo: 11 requests; the two not there: one per other region.
        assert_eq!(account.n_requests(), 11 + 14);
    }

    #[tokio::test]
    async fn requests_hold_at_most_100_distinct_images_of_one_region() {
        let rows: Vec<Row> = (0..250)
            .flat_map(|i| {
                let id = format!("img-{i:08}");
                [
                    share(i, "ap-seoul", &id),
                    share(i, "ap-seoul", &id),
                    share(i, "ap-tokyo", &id),
                ]
            })
            .collect();
        let images: Vec<Image> = (0..250)
            .map(|i| image(&format!("img-{i:08}"), "NORMAL", None))
            .collect();
        let account = Account::default()
            .with("ap-seoul", images.clone())
            .with("ap-tokyo", images);
        let (account, ask) = account.asker();
        let findings = check(&rows, ask).await.unwrap();
        assert!(findings.failing.is_empty());
        assert_eq!(findings.n_checked, 750);
        let mut requests = account.requests.lock().unwrap().clone();
        requests.sort();
        assert_eq!(
            requests,
            [
                ("ap-seoul", 50),
                ("ap-seoul", 100),
                ("ap-seoul", 100),
                ("ap-tokyo", 50),
                ("ap-tokyo", 100),
                ("ap-tokyo", 100)
            ]
        );
    }

    #[tokio::test]
    async fn a_list_refused_as_too_long_is_asked_again_in_halves() {
        let (account, rows) = sheet();
        let account = Account {
            most_ids: Some(30),
            ..account
        };
        let (account, ask) = account.asker();
        let findings = check(&rows, ask).await.unwrap();
        assert_eq!(findings.failing.len(), 4);
        assert_eq!(findings.n_checked, 1004);
        let requests = account.requests.lock().unwrap();
        assert!(requests.iter().any(|(_, n)| *n == 25), "{requests:?}");
    }

    #[tokio::test]
    async fn a_state_other_than_normal_is_named() {
        let account = Account::default().with(
            "ap-seoul",
            vec![
                image("img-creating", "CREATING", None),
                image("img-import00", "IMPORTFAILED", Some("imported")),
            ],
        );
        let (_, ask) = account.asker();
        let rows = [
            share(2, "ap-seoul", "img-creating"),
            share(3, "ap-seoul", "img-import00"),
        ];
        let findings = check(&rows, ask).await.unwrap();
        let messages: Vec<String> = findings.failing.iter().map(Finding::message).collect();
        assert_eq!(
            messages,
            [
                "img-creating is CREATING, and only NORMAL images can be shared: run again once it is NORMAL",
                "img-import00 cannot be shared: imported (its state is IMPORTFAILED)"
            ]
        );
    }

    #[tokio::test]
    async fn a_policy_without_the_action_leaves_every_row_unjudged() {
        let (account, rows) = sheet();
        let account = Account {
            refuse: Some("UnauthorizedOperation.NoPermission"),
            ..account
        };
        let (_, ask) = account.asker();
        let findings = check(&rows, ask).await.unwrap();
        assert!(findings.failing.is_empty());
        assert_eq!(findings.n_unchecked, 1004);
        assert_eq!(
            findings.refused.map(|e| e.code).as_deref(),
            Some("UnauthorizedOperation.NoPermission")
        );
    }

    #[tokio::test]
    async fn a_job_fatal_answer_is_the_error() {
        let (account, rows) = sheet();
        let account = Account {
            refuse: Some("AuthFailure.SecretIdNotFound"),
            ..account
        };
        let (_, ask) = account.asker();
        let error = check(&rows, ask).await.unwrap_err();
        assert_eq!(error.code, "AuthFailure.SecretIdNotFound");
    }

    #[tokio::test]
    async fn a_failed_request_leaves_its_rows_unchecked_and_the_search_incomplete() {
        let (account, rows) = sheet();
        let account = Account {
            failing: vec!["ap-seoul"],
            ..account
        };
        let (_, ask) = account.asker();
        let findings = check(&rows, ask).await.unwrap();
        let nowhere = &findings.failing[2];
        assert_eq!(
            nowhere.message(),
            "img-nowhere0 is not in ap-tokyo (the other regions could not all be asked where it is)"
        );
        assert_eq!(
            findings.failing[1].message(),
            "img-elsewhr0 is in ap-guangzhou, not ap-tokyo",
            "the regions that answered still say where"
        );
        let account = Account {
            failing: vec!["ap-tokyo"],
            ..Account::default()
        };
        let (_, ask) = account.asker();
        let findings = check(&rows[..3], ask).await.unwrap();
        assert_eq!((findings.n_checked, findings.n_unchecked), (0, 3));
        assert!(findings.failing.is_empty());
    }

    fn outcome(region: &str, image_id: &str, status: Status, code: Option<&str>) -> Outcome {
        let identity = Identity {
            region: region.into(),
            image_id: image_id.into(),
            permission: Permission::Share,
            occurrence: 1,
        };
        let outcome = Outcome::new(identity, 2, status);
        match code {
            Some(code) => outcome.with_error(code, "The image ID does not exist."),
            None => outcome,
        }
    }

    #[tokio::test]
    async fn a_row_refused_as_not_found_is_told_where_its_image_is() {
        let account = Account::default()
            .with("ap-guangzhou", vec![image("img-elsewhr0", "NORMAL", None)])
            .with("ap-seoul", vec![image("img-elsewhr0", "NORMAL", None)]);
        let (account, ask) = account.asker();
        let outcomes = vec![
            outcome(
                "ap-tokyo",
                "img-elsewhr0",
                Status::Failed,
                Some(IMAGE_NOT_FOUND),
            ),
            outcome(
                "ap-tokyo",
                "img-nowhere0",
                Status::Failed,
                Some(IMAGE_NOT_FOUND),
            ),
            outcome(
                "ap-tokyo",
                "img-busy0000",
                Status::Failed,
                Some("ResourceInUse.ImageInUse"),
            ),
            outcome("ap-tokyo", "img-shared00", Status::Shared, None),
        ];
        let hinted = hint(outcomes, &ask).await.unwrap();
        let messages: Vec<(&str, &str)> = hinted
            .iter()
            .map(|o| {
                let message = o.error_message.as_deref().unwrap_or_default();
                (o.identity.image_id.as_str(), message)
            })
            .collect();
        assert_eq!(
            messages,
            [
                (
                    "img-elsewhr0",
                    "The image ID does not exist. (img-elsewhr0 is in ap-guangzhou and ap-seoul, not ap-tokyo)"
                ),
                (
                    "img-nowhere0",
                    "The image ID does not exist. (img-nowhere0 is not in ap-tokyo, nor in any other region that shares to Lighthouse: check the image id)"
                ),
            ]
        );
        assert_eq!(account.n_requests(), 14, "one request per other region");
        assert!(hint(Vec::new(), &ask).await.unwrap().is_empty());
        assert_eq!(
            account.n_requests(),
            14,
            "nothing to explain, nothing asked"
        );
        let refused = Account {
            refuse: Some("UnauthorizedOperation.NoPermission"),
            ..Account::default()
        };
        let (_, ask) = refused.asker();
        let not_found = vec![outcome(
            "ap-tokyo",
            "img-elsewhr0",
            Status::Failed,
            Some(IMAGE_NOT_FOUND),
        )];
        assert!(
            hint(not_found, &ask).await.unwrap().is_empty(),
            "nothing is said that was not found out"
        );
    }

    #[test]
    fn outside_text_is_shown_escaped_and_cut() {
        assert_eq!(neutralise("plain reason"), "plain reason");
        assert_eq!(
            neutralise("a\x07b\r\nc\u{2066}"),
            "a\\u{7}b\\u{d}\\u{a}c\\u{2066}"
        );
        let long = "x".repeat(SHOWN_CHARS + 5);
        assert_eq!(neutralise(&long).chars().count(), SHOWN_CHARS + 1);
    }
}
