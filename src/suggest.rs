//! "Did you mean ...?" for near misses, in input cells and config keys alike.

/// The candidate closest to `value` (ignoring case), if it is close enough to be a typo.
pub fn nearest<'a>(value: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let value = value.to_ascii_lowercase();
    let limit = value.chars().count().div_ceil(3).clamp(1, 3);
    candidates
        .iter()
        .map(|candidate| {
            (
                distance(&value, &candidate.to_ascii_lowercase()),
                *candidate,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_ignores_strangers() {
        assert_eq!(nearest("CANEL", &["SHARE", "CANCEL"]), Some("CANCEL"));
        assert_eq!(nearest("shar", &["SHARE", "CANCEL"]), Some("SHARE"));
        assert_eq!(nearest("delete", &["SHARE", "CANCEL"]), None);
        assert_eq!(
            nearest("ap-guangzou", &crate::action::REGIONS),
            Some("ap-guangzhou")
        );
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
