//! The end of a run: how it ended ([`Ending`], which `main` turns into the exit code) and the
//! summary on stderr.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::LogFormat;
use crate::pool::{BucketReport, Reason};
use crate::results::{Counts, Status};

/// How a run ended: one value per exit code of SPEC §5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Every row is as asked.
    Done,
    /// Finished, and some rows are `failed` or `invalid`.
    SomeRowsFailed,
    /// Usage, configuration or input error; nothing was sent.
    Unusable,
    /// Stopped by a job-fatal answer; rows left are `skipped`.
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
    pub output: PathBuf,
    pub counts: Counts,
    pub elapsed: Duration,
    pub buckets: Vec<BucketReport>,
    pub stop: Option<Reason>,
    pub dry_run: bool,
    /// Why some rows were never run though nothing stopped the job (a reader that failed, a
    /// task that panicked).
    pub problems: Vec<String>,
}

impl Report {
    pub fn ending(&self) -> Ending {
        match &self.stop {
            Some(Reason::Fatal(_)) => return Ending::Stopped,
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
        if self.counts.get(Status::Failed) + self.counts.get(Status::Invalid) > 0 {
            Ending::SomeRowsFailed
        } else {
            Ending::Done
        }
    }
}

/// The summary on stderr: counts per status, elapsed time, per bucket the rate achieved and
/// how adaptive pacing lowered it, retries, path.
pub fn print_summary(report: &Report, format: LogFormat) {
    let counts: Vec<(&str, u64)> = Status::ALL
        .iter()
        .map(|s| (s.as_str(), report.counts.get(*s)))
        .collect();
    let rates: BTreeMap<&str, Option<f64>> = report
        .buckets
        .iter()
        .map(|b| (b.name.as_str(), b.rate()))
        .collect();
    if format == LogFormat::Json {
        let summary = serde_json::json!({
            "summary": true,
            "dry_run": report.dry_run,
            "rows": report.counts.total(),
            "statuses": counts.iter().copied().collect::<BTreeMap<_, _>>(),
            "retries": report.counts.retries,
            "elapsed_seconds": report.elapsed.as_secs_f64(),
            "requests_per_second": rates,
            "buckets": report
                .buckets
                .iter()
                .map(|b| (b.name.as_str(), serde_json::json!({
                    "requests": b.n_requests,
                    "configured_rate": b.configured_rate,
                    "achieved_rate": b.rate(),
                    "lowest_rate": b.lowest_rate,
                    "throttled": b.n_throttled,
                })))
                .collect::<BTreeMap<_, _>>(),
            "results": report.output,
            "ending": report.ending().as_str(),
        });
        eprintln!("{summary}");
        return;
    }
    if report.dry_run {
        eprintln!(
            "dry run: nothing sent, nothing written; {} invalid rows",
            report.counts.get(Status::Invalid)
        );
        return;
    }
    let statuses: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let colour = std::io::stderr().is_terminal();
    let bold = |s: String| {
        if colour {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s
        }
    };
    eprintln!(
        "{}",
        bold(format!(
            "summary: {} rows: {}",
            report.counts.total(),
            statuses.join(", ")
        ))
    );
    eprintln!(
        "  retries: {}; elapsed: {:.1}s",
        report.counts.retries,
        report.elapsed.as_secs_f64()
    );
    for bucket in &report.buckets {
        let pacing = format!(
            "configured {}/s, lowest {:.2}/s, {} throttled",
            bucket.configured_rate, bucket.lowest_rate, bucket.n_throttled
        );
        match bucket.rate() {
            Some(rate) => eprintln!(
                "  {}: {} requests at {rate:.2}/s; {pacing}",
                bucket.name, bucket.n_requests
            ),
            None => eprintln!(
                "  {}: {}; {pacing}",
                bucket.name,
                plural(bucket.n_requests, "request", "requests")
            ),
        }
    }
    eprintln!("  results: {}", report.output.display());
}

/// `1 row`, `2 rows`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}
