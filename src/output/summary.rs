//! The end of a run: how it ended ([`Ending`], which `main` turns into the exit code) and the
//! summary on stderr.

use std::collections::BTreeMap;
use std::time::Duration;

use super::say;
use crate::actions::Kind;
use crate::cli::LogFormat;
use crate::engine::{LaneReport, Reason};
use crate::results::{Counts, Destination, Status};

/// How a run ended: one value per exit code of SPEC §5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Every row is as asked.
    Done,
    /// Finished, and some rows are `failed` or `invalid`.
    SomeRowsFailed,
    /// Usage, configuration or input error; nothing was sent.
    Unusable,
    /// Stopped by a job-fatal answer or `--max-failures`; rows left are `skipped`.
    Stopped,
    /// Another run holds the lock.
    Locked,
    /// A signal stopped it; rows left are `skipped`.
    Interrupted,
    /// Something went wrong inside: a row could not be recorded, or was never run.
    Internal(String),
}

impl Ending {
    /// The name in the JSON summary.
    pub fn as_str(&self) -> &'static str {
        match self {
            Ending::Done => "done",
            Ending::SomeRowsFailed => "some_rows_failed",
            Ending::Unusable => "unusable",
            Ending::Stopped => "stopped",
            Ending::Locked => "locked",
            Ending::Interrupted => "interrupted",
            Ending::Internal(_) => "internal_failure",
        }
    }
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub output: Destination,
    /// Rows of earlier runs that no input row matches any more.
    pub n_unmatched: u64,
    pub counts: Counts,
    pub elapsed: Duration,
    /// What each action's lane of each bucket sent, by bucket then action.
    pub lanes: Vec<LaneReport>,
    pub stop: Option<Reason>,
    pub dry_run: bool,
    /// Why some rows were never run though nothing stopped the job (a reader that failed, a
    /// task that panicked).
    pub problems: Vec<String>,
    /// Rows the look-up settled: already as asked, not sent.
    pub n_settled: u64,
    /// Images with both SHARE and CANCEL rows, which flip on every run: named.
    pub flipping: Option<String>,
    /// Images found changed outside this tool since the last run (and decided again).
    pub n_drifted: u64,
    /// `region: why` for each region whose look-up proved nothing: its rows were all sent.
    pub unknown_listings: Vec<String>,
    /// Shared rows left without a BlueprintId: the fresh look-up could not name them.
    pub n_unnamed: u64,
    /// SHARE rows a dry run's preflight says the service would refuse (SPEC §10).
    pub n_would_fail: u64,
    /// SHARE rows a dry run's preflight asked about and got no answer for: it cannot vouch
    /// for them, so they count against exit 0 as those that would fail do.
    pub n_unchecked: u64,
}

impl Report {
    /// The report of a run that has sent nothing yet: its invalid rows counted.
    pub fn new(
        output: Destination,
        dry_run: bool,
        n_invalid: u64,
        flipping: Option<String>,
    ) -> Self {
        let mut counts = Counts::default();
        counts.by_status.insert(Status::Invalid, n_invalid);
        Self {
            output,
            n_unmatched: 0,
            counts,
            elapsed: Duration::ZERO,
            lanes: Vec::new(),
            stop: None,
            dry_run,
            problems: Vec::new(),
            n_settled: 0,
            flipping,
            n_drifted: 0,
            unknown_listings: Vec::new(),
            n_unnamed: 0,
            n_would_fail: 0,
            n_unchecked: 0,
        }
    }

    /// Requests sent again after a failed attempt, over every action and bucket: the sum of
    /// the retries by error code.
    pub fn n_retries(&self) -> u64 {
        self.lanes
            .iter()
            .flat_map(|lane| lane.retries_by_code.values())
            .sum()
    }

    /// Requests sent for `kind` over all buckets.
    pub fn n_requests(&self, kind: Kind) -> u64 {
        self.lanes
            .iter()
            .filter(|lane| lane.kind == kind)
            .map(|lane| lane.n_requests)
            .sum()
    }

    pub fn ending(&self) -> Ending {
        match &self.stop {
            Some(Reason::Fatal(_) | Reason::TooManyFailures { .. }) => return Ending::Stopped,
            Some(Reason::Interrupted) => return Ending::Interrupted,
            Some(Reason::Journal(why)) => return Ending::Internal(why.clone()),
            None => {}
        }
        let n_skipped = self.counts.get(Status::Skipped);
        if !self.problems.is_empty() || (n_skipped > 0 && !self.dry_run) {
            let mut why = self.problems.join("; ");
            if why.is_empty() {
                why = "no stage reported a reason".into();
            }
            return Ending::Internal(format!(
                "{} never run though nothing stopped the job ({why}); run again with --resume",
                plural(n_skipped, "row was", "rows were"),
            ));
        }
        let n_failed = self.counts.get(Status::Failed) + self.counts.get(Status::Invalid);
        if n_failed + self.n_would_fail + self.n_unchecked > 0 {
            Ending::SomeRowsFailed
        } else {
            Ending::Done
        }
    }
}

/// Retries per error code over all buckets.
fn retries_by_code(report: &Report) -> BTreeMap<&str, u64> {
    let mut total = BTreeMap::new();
    for (code, n) in report.lanes.iter().flat_map(|b| &b.retries_by_code) {
        *total.entry(code.as_str()).or_default() += n;
    }
    total
}

/// `RequestLimitExceeded 150, UnsupportedOperation.ImageOccupied 3`, most first; and, when
/// most retries were throttled answers, what that means.
fn retries_lines(by_code: &BTreeMap<&str, u64>) -> Vec<String> {
    if by_code.is_empty() {
        return Vec::new();
    }
    let mut sorted: Vec<(&str, u64)> = by_code.iter().map(|(c, n)| (*c, *n)).collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let listed: Vec<String> = sorted.iter().map(|(c, n)| format!("{c} {n}")).collect();
    let mut lines = vec![format!("  retries by error code: {}", listed.join(", "))];
    let total: u64 = sorted.iter().map(|(_, n)| n).sum();
    let throttled: u64 = sorted
        .iter()
        .filter(|(c, _)| *c == "RequestLimitExceeded" || c.starts_with("RequestLimitExceeded."))
        .map(|(_, n)| n)
        .sum();
    if throttled * 2 > total {
        lines.push(
            "  most retries were RequestLimitExceeded: another client (a second run, a colleague, the console, Terraform) is using this account's quota; lower --rate, or run when it is idle"
                .into(),
        );
    }
    lines
}

/// The summary on stderr: counts per status, elapsed time, rate per bucket, retries, path.
pub fn print_summary(report: &Report, format: LogFormat) {
    match format {
        LogFormat::Json => say(&json_summary(report).to_string()),
        LogFormat::Text => summary_lines(report).iter().for_each(|line| say(line)),
    }
}

/// The text summary, line by line.
pub fn summary_lines(report: &Report) -> Vec<String> {
    let flipping = report.flipping.as_ref().map(|images| {
        format!("  images with both SHARE and CANCEL rows (shared and unshared again on every run): {images}")
    });
    if report.dry_run {
        let mut lines = vec![format!(
            "dry run: no share sent, nothing written; {} invalid rows; {} would fail{}; {} DescribeBlueprints and {} DescribeImagesToShare requests",
            report.counts.get(Status::Invalid),
            plural(report.n_would_fail, "SHARE row", "SHARE rows"),
            match report.n_unchecked {
                0 => String::new(),
                n => format!(", {n} could not be checked"),
            },
            report.n_requests(Kind::DescribeBlueprints),
            report.n_requests(Kind::DescribeImages)
        )];
        lines.extend(lane_lines(report, |kind| kind != Kind::Share));
        lines.extend(flipping);
        return lines;
    }
    let mut lines = Vec::from(text_head(report));
    lines.extend(retries_lines(&retries_by_code(report)));
    lines.extend(flipping);
    lines.extend(lookup_lines(report));
    if let Some(passed) = report.stop.as_ref().and_then(Reason::threshold_passed) {
        lines.push(format!("  stopped: {passed}"));
    }
    lines.extend(lane_lines(report, |_| true));
    if report.n_unmatched > 0 {
        lines.push(format!(
            "  {} of earlier runs no longer in the input: left out of the results, kept in the record",
            plural(report.n_unmatched, "row", "rows")
        ));
    }
    lines.push(format!("  results: {}", report.output));
    lines
}

/// What the look-up found that the user should know: images changed outside this tool
/// (repaired), and regions whose listing proved nothing (every row of them sent).
fn lookup_lines(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    if report.n_drifted > 0 {
        lines.push(format!(
            "  {} changed outside this tool since the last run: decided again (each row's message says so)",
            plural(report.n_drifted, "image was", "images were")
        ));
    }
    for why in &report.unknown_listings {
        lines.push(format!(
            "  the look-up proved nothing in {why}: its rows were all sent, none settled from it"
        ));
    }
    if report.n_unnamed > 0 {
        lines.push(format!(
            "  {} shared but without a BlueprintId: the look-up could not name {} (see the warnings above); the blueprint_id column is empty there",
            plural(report.n_unnamed, "row is", "rows are"),
            if report.n_unnamed == 1 { "it" } else { "them" }
        ));
    }
    lines
}

/// The summary as one JSON object.
fn json_summary(report: &Report) -> serde_json::Value {
    let counts: BTreeMap<&str, u64> = Status::ALL
        .iter()
        .map(|s| (s.as_str(), report.counts.get(*s)))
        .collect();
    let writes = report.lanes.iter().filter(|lane| lane.kind == Kind::Share);
    let rates: BTreeMap<&str, Option<f64>> =
        writes.map(|b| (b.bucket.as_str(), b.rate())).collect();
    let lanes = |kind: Kind| -> BTreeMap<&str, serde_json::Value> {
        report
            .lanes
            .iter()
            .filter(|lane| lane.kind == kind)
            .map(|b| {
                let lane = serde_json::json!({
                    "requests": b.n_requests,
                    "configured_rate": b.configured_rate,
                    "achieved_rate": b.rate(),
                    "lowest_rate": b.lowest_rate,
                    "throttled": b.n_throttled,
                });
                (b.bucket.as_str(), lane)
            })
            .collect()
    };
    serde_json::json!({
        "timestamp": crate::clock::rfc3339(std::time::SystemTime::now()).unwrap_or_default(),
        "level": "INFO",
        "summary": true,
        "dry_run": report.dry_run,
        "rows": report.counts.total(),
        "statuses": counts,
        "retries": report.n_retries(),
        "requests_by_action": Kind::ALL
            .iter()
            .map(|kind| (kind.name(), report.n_requests(*kind)))
            .collect::<BTreeMap<_, _>>(),
        "settled_by_lookup": report.n_settled,
        "would_fail": report.n_would_fail,
        "unchecked": report.n_unchecked,
        "flipping_images": report.flipping,
        "changed_outside_images": report.n_drifted,
        "lookups_proving_nothing": report.unknown_listings,
        "shared_without_blueprint_id": report.n_unnamed,
        "retries_by_code": retries_by_code(report),
        "stopped_by": report.stop.as_ref().and_then(Reason::threshold_passed),
        "elapsed_seconds": report.elapsed.as_secs_f64(),
        "requests_per_second": rates,
        "buckets": lanes(Kind::Share),
        "lookups": lanes(Kind::DescribeBlueprints),
        "preflight": lanes(Kind::DescribeImages),
        "results": report.output.to_string(),
        "earlier_rows_not_in_input": report.n_unmatched,
        "ending": report.ending().as_str(),
    })
}

/// The first lines of the text summary: statuses, retries, requests.
fn text_head(report: &Report) -> [String; 3] {
    let statuses: Vec<String> = Status::ALL
        .iter()
        .map(|s| format!("{} {}", report.counts.get(*s), s.as_str()))
        .collect();
    let head = format!(
        "summary: {}: {}",
        plural(report.counts.total(), "row", "rows"),
        statuses.join(", ")
    );
    let head = match super::colour() {
        true => format!("\x1b[1m{head}\x1b[0m"),
        false => head,
    };
    [
        head,
        format!(
            "  retries: {}; elapsed: {:.1}s",
            report.n_retries(),
            report.elapsed.as_secs_f64()
        ),
        format!(
            "  requests: {}; the look-up settled {} (not sent)",
            Kind::ALL
                .map(|kind| format!("{} {}", report.n_requests(kind), kind.name()))
                .join(", "),
            plural(report.n_settled, "row", "rows")
        ),
    ]
}

/// One line per lane of the kinds `shown` that sent anything: requests, achieved rate, and
/// how far adaptive pacing went. A look-up lane says it is one, so throttled look-ups are
/// named as such (the JSON summary has every lane).
fn lane_lines(report: &Report, shown: impl Fn(Kind) -> bool) -> impl Iterator<Item = String> {
    report
        .lanes
        .iter()
        // A look-up or preflight lane is named when it was refused: its requests are
        // counted on the requests line already.
        .filter(move |lane| {
            shown(lane.kind)
                && lane.n_requests > 0
                && (lane.kind == Kind::Share || lane.n_throttled > 0)
        })
        .map(|lane| {
            let name = match lane.kind {
                Kind::Share => lane.bucket.clone(),
                kind => format!("{} {}", lane.bucket, kind.name()),
            };
            let pacing = format!(
                "configured {}/s, lowest {:.2}/s, {} throttled",
                lane.configured_rate, lane.lowest_rate, lane.n_throttled
            );
            match lane.rate() {
                Some(rate) => format!(
                    "  {name}: {} requests at {rate:.2}/s; {pacing}",
                    lane.n_requests
                ),
                None => format!(
                    "  {name}: {}; {pacing}",
                    plural(lane.n_requests, "request", "requests")
                ),
            }
        })
}

/// `1 row`, `2 rows`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_listed_per_code_and_a_shared_quota_is_named_when_most_are_throttled() {
        let throttled = BTreeMap::from([
            ("RequestLimitExceeded", 5),
            ("RequestLimitExceeded.UinLimitExceeded", 2),
            ("UnsupportedOperation.ImageOccupied", 6),
        ]);
        let lines = retries_lines(&throttled);
        assert_eq!(
            lines[0],
            "  retries by error code: UnsupportedOperation.ImageOccupied 6, RequestLimitExceeded 5, RequestLimitExceeded.UinLimitExceeded 2"
        );
        assert!(lines[1].contains("another client"), "{lines:?}");
        let busy = BTreeMap::from([("RequestLimitExceeded", 3), ("InternalError", 3)]);
        assert_eq!(retries_lines(&busy).len(), 1, "half is not most");
        assert!(retries_lines(&BTreeMap::new()).is_empty());
    }

    fn report(stop: Option<Reason>, statuses: &[Status], problems: &[&str]) -> Report {
        let mut counts = Counts::default();
        statuses.iter().for_each(|status| counts.add(*status));
        Report {
            counts,
            stop,
            problems: problems.iter().map(|p| p.to_string()).collect(),
            ..Report::new(Destination::Stdout, false, 0, None)
        }
    }

    #[test]
    fn a_row_left_unrun_without_a_stop_is_an_internal_failure_that_says_why() {
        use Status::*;
        assert_eq!(
            report(None, &[Shared, AlreadyUnshared], &[]).ending(),
            Ending::Done
        );
        assert_eq!(
            report(None, &[Shared, Invalid], &[]).ending(),
            Ending::SomeRowsFailed
        );
        assert_eq!(
            report(Some(Reason::Interrupted), &[Shared, Skipped], &[]).ending(),
            Ending::Interrupted
        );
        let Ending::Internal(why) =
            report(None, &[Shared, Skipped], &["reading the input failed: x"]).ending()
        else {
            panic!("a skipped row with no stop is not a success");
        };
        assert!(
            why.contains("1 row was never run") && why.contains("reading the input failed"),
            "{why}"
        );
        assert!(matches!(
            report(None, &[Skipped], &[]).ending(),
            Ending::Internal(_)
        ));
    }
}
