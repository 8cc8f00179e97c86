//! "Did you mean ...?" for near misses, in input cells and config keys alike.

/// The candidate closest to `value` (ignoring case), if it is close enough to be a typo.
///
/// The distance is Levenshtein's, from `strsim` (already in the tree through clap), so the
/// crate keeps no edit-distance code of its own. The limit grows with the value's length (a
/// third of it, 1 to 3 edits) so that short words are not "corrected" into unrelated ones.
pub fn nearest<'a>(value: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let value = value.to_ascii_lowercase();
    let limit = value.chars().count().div_ceil(3).clamp(1, 3);
    candidates
        .iter()
        .map(|candidate| {
            let distance = strsim::levenshtein(&value, &candidate.to_ascii_lowercase());
            (distance, *candidate)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
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
        // The limit grows with the length: three edits are too many for six letters, not for seven.
        assert_eq!(nearest("kitten", &["sitting"]), None);
        assert_eq!(nearest("kittens", &["sitting"]), Some("sitting"));
    }
}
