//! Progress while a run goes on: a bar on a terminal, and off a terminal a progress line
//! every 10 seconds.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::logging::BAR;
use crate::engine::Engine;
use crate::results::{Outcome, Status};

/// Counts of finished rows, kept by the journal as rows are written.
pub struct Progress {
    /// Rows this run has to finish.
    pub total: u64,
    counts: [AtomicU64; Status::ALL.len()],
    started: Instant,
}

impl Progress {
    pub fn new(total: u64) -> Self {
        Self {
            total,
            counts: Default::default(),
            started: Instant::now(),
        }
    }

    pub fn record(&self, outcome: &Outcome) {
        let i = Status::ALL
            .iter()
            .position(|s| *s == outcome.status)
            .unwrap_or(0);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Rows finished so far by this run.
    pub fn n_finished(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// `138/600 rows, 58.7/s, eta 8s; 138 shared; 9 waiting to retry`.
    fn line(&self, n_retrying: u64) -> String {
        let done = self.n_finished();
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let eta = match self.total.saturating_sub(done) {
            0 => "0s".to_string(),
            _ if rate <= 0.0 => "unknown".to_string(),
            left => format!("{}s", (left as f64 / rate).round() as u64),
        };
        format!(
            "{done}/{} rows, {rate:.1}/s, eta {eta}; {}; {n_retrying} waiting to retry",
            self.total,
            self.by_status()
        )
    }

    /// `12 shared, 1 failed` — the statuses seen so far.
    fn by_status(&self) -> String {
        let parts: Vec<String> = Status::ALL
            .iter()
            .zip(&self.counts)
            .map(|(status, n)| (status, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .map(|(status, n)| format!("{n} {}", status.as_str()))
            .collect();
        if parts.is_empty() {
            "nothing finished yet".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Shows progress until dropped: a bar on a terminal, else an info line every 10 seconds.
pub struct Reporter {
    task: tokio::task::JoinHandle<()>,
    bar: Option<ProgressBar>,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

pub fn report(progress: Arc<Progress>, engine: Arc<Engine>, quiet: bool) -> Reporter {
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(Some(progress.total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {msg}").expect("the template is valid"),
        );
        let _ = BAR.set(bar.clone());
        bar
    });
    let shown = bar.clone();
    let task = tokio::spawn(async move {
        let period = if shown.is_some() {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(10)
        };
        let mut ticks = tokio::time::interval(period);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let line = progress.line(engine.n_retrying.load(Ordering::Relaxed));
            match &shown {
                Some(bar) => {
                    bar.set_position(progress.n_finished());
                    bar.set_message(line);
                }
                None if !quiet => tracing::info!("progress: {line}"),
                None => {}
            }
        }
    });
    Reporter { task, bar }
}
