//! The bucket's waiting rooms: rows held back behind a busy image (so that one image never has
//! two requests in flight and its rows run in file order), and rows waiting out a backoff.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

use crate::input::Row;

/// A row on its way, with what its attempts so far have taught.
#[derive(Debug)]
pub struct Job {
    pub row: Row,
    pub attempts: u32,
    /// Attempts answered `RequestLimitExceeded`: sent, but not counted against
    /// `--max-attempts`.
    pub n_throttled: u32,
    /// `AuthFailure.SignatureExpire` gets one more attempt, no more.
    pub clock_retried: bool,
}

impl Job {
    pub fn new(row: Row) -> Self {
        Self {
            row,
            attempts: 0,
            n_throttled: 0,
            clock_retried: false,
        }
    }
}

/// Images with a row in flight or in backoff, and the rows queued behind each.
#[derive(Default)]
pub struct ImageQueue {
    busy: HashMap<(&'static str, String), VecDeque<Row>>,
    /// Rows queued behind a busy image, over all images.
    pub n_parked: usize,
}

impl ImageQueue {
    /// Takes a new row: returns it if its image is free (the image is now busy), or parks it
    /// behind the row that holds the image.
    pub fn admit(&mut self, row: Row) -> Option<Row> {
        let key = (row.region, row.image_id.clone());
        match self.busy.get_mut(&key) {
            Some(queue) => {
                queue.push_back(row);
                self.n_parked += 1;
                None
            }
            None => {
                self.busy.insert(key, VecDeque::new());
                Some(row)
            }
        }
    }

    /// The row holding its image is finished: returns the image's next row, which now holds
    /// it, or frees the image.
    pub fn release(&mut self, row: &Row) -> Option<Row> {
        let key = (row.region, row.image_id.clone());
        let next = self.busy.get_mut(&key).and_then(VecDeque::pop_front);
        match next {
            Some(row) => {
                self.n_parked -= 1;
                Some(row)
            }
            None => {
                self.busy.remove(&key);
                None
            }
        }
    }
}

/// Jobs waiting for their backoff to end, earliest first.
#[derive(Default)]
pub struct RetryQueue {
    heap: BinaryHeap<Due>,
    n_scheduled: u64,
}

impl RetryQueue {
    pub fn push(&mut self, job: Job, at: Instant) {
        self.n_scheduled += 1;
        self.heap.push(Due {
            at,
            seq: self.n_scheduled,
            job,
        });
    }

    /// When the earliest job is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|due| due.at)
    }

    /// The earliest job if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Job> {
        match self.heap.peek() {
            Some(due) if due.at <= now => self.heap.pop().map(|due| due.job),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// A job and when it is due; ties keep the order they were scheduled in.
struct Due {
    at: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Permission;
    use std::time::Duration;

    fn row(line: u64, image: &str) -> Row {
        Row {
            line,
            region: "ap-seoul",
            image_id: image.into(),
            permission: Permission::Share,
            occurrence: 1,
            note: None,
        }
    }

    #[test]
    fn an_image_holds_one_row_at_a_time_and_hands_over_in_file_order() {
        let mut queue = ImageQueue::default();
        assert_eq!(queue.admit(row(2, "img-a")).map(|r| r.line), Some(2));
        assert!(queue.admit(row(3, "img-a")).is_none(), "img-a is busy");
        assert!(queue.admit(row(4, "img-a")).is_none());
        assert_eq!(queue.admit(row(5, "img-b")).map(|r| r.line), Some(5));
        assert_eq!(queue.n_parked, 2);
        assert_eq!(queue.release(&row(2, "img-a")).map(|r| r.line), Some(3));
        assert_eq!(queue.release(&row(3, "img-a")).map(|r| r.line), Some(4));
        assert!(queue.release(&row(4, "img-a")).is_none());
        assert_eq!(queue.n_parked, 0);
        assert_eq!(
            queue.admit(row(6, "img-a")).map(|r| r.line),
            Some(6),
            "free again"
        );
    }

    #[test]
    fn retries_come_due_earliest_first() {
        let now = Instant::now();
        let mut queue = RetryQueue::default();
        queue.push(Job::new(row(2, "img-a")), now + Duration::from_secs(2));
        queue.push(Job::new(row(3, "img-b")), now + Duration::from_secs(1));
        assert_eq!(queue.next_due(), Some(now + Duration::from_secs(1)));
        assert!(queue.pop_due(now).is_none());
        let later = now + Duration::from_secs(5);
        assert_eq!(queue.pop_due(later).map(|j| j.row.line), Some(3));
        assert_eq!(queue.pop_due(later).map(|j| j.row.line), Some(2));
        assert!(queue.is_empty());
    }
}
