//! The bucket's waiting room: rows held back behind a busy image, so that one image never has
//! two requests in flight and its rows run in file order.

use std::collections::{HashMap, VecDeque};

use crate::input::Row;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Permission;

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
}
