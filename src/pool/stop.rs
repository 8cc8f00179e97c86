//! The stop signal: why a run stops early, seen by every bucket task.

use std::sync::Arc;

use tokio::sync::watch;

use crate::api::ApiError;

/// Why the run stopped early.
#[derive(Clone, Debug)]
pub enum Reason {
    Interrupted,
    /// An answer that no other row can get past (credentials, account, clock).
    Fatal(ApiError),
    /// The results file could not be written.
    Journal(String),
}

/// A stop signal every task can watch; the first reason given wins.
#[derive(Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<Option<Reason>>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::channel(None).0),
        }
    }
}

impl Stop {
    pub fn trigger(&self, reason: Reason) {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    pub fn is_stopped(&self) -> bool {
        self.tx.borrow().is_some()
    }

    pub fn reason(&self) -> Option<Reason> {
        self.tx.borrow().clone()
    }

    /// Resolves once the stop is triggered.
    pub async fn stopped(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }
}
