//! The checks of one record's required cells, and the messages that say how to fix them.
//!
//! Every message names the column, echoes the bad value (cut, with invisible characters
//! made visible, so a message stays one readable line whatever the cell holds) and says what
//! is allowed. Checks that any cell can fail (too long, a spreadsheet error value, an
//! invisible character) run before the column's own check, so that a near-miss suggestion is
//! never computed for a value that is not a typo.

use crate::action::{self, Permission};
use crate::suggest;

/// A required cell longer than this (in bytes) is not a typo: it is refused without a
/// suggestion search, which would cost time in proportion to its length.
const MAX_VALUE_BYTES: usize = 1024;

/// Echoes of a value are cut to this many characters, the `…` included.
const MAX_ECHO_CHARS: usize = 100;

/// What a spreadsheet shows in a cell whose formula failed. Such a value in a required cell
/// is a broken formula, not a typo.
pub(super) const SPREADSHEET_ERRORS: [&str; 10] = [
    "#N/A",
    "#REF!",
    "#VALUE!",
    "#NAME?",
    "#DIV/0!",
    "#NUM!",
    "#NULL!",
    "#SPILL!",
    "#CALC!",
    "#GETTING_DATA",
];

/// The region in its canonical spelling, or why `value` is not one.
pub(super) fn region(value: &str) -> Result<&'static str, String> {
    check_cell("region", value)?;
    if value.is_empty() {
        return Err("region is empty: give one such as ap-guangzhou".to_string());
    }
    if let Some(region) = action::supported_region(value) {
        return Ok(region);
    }
    let zone_of = value
        .rsplit_once('-')
        .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(region, _)| action::supported_region(region));
    let hint = match (zone_of, suggest::nearest(value, &action::REGIONS)) {
        (Some(region), _) => format!(
            "`{}` is an availability zone; use its region `{region}`",
            echo(value)
        ),
        (None, Some(region)) => format!("did you mean `{region}`?"),
        (None, None) => format!("supported regions: {}", action::REGIONS.join(", ")),
    };
    Err(format!(
        "region `{}` is not a region this action supports: {hint}",
        echo(value)
    ))
}

/// Nothing, or why `value` is not an image ID.
pub(super) fn image_id(value: &str) -> Result<(), String> {
    check_cell("image_id", value)?;
    if action::is_image_id(value) {
        return Ok(());
    }
    if value.is_empty() {
        return Err("image_id is empty: give one such as img-xkd784jw".to_string());
    }
    let fixed = value.to_ascii_lowercase().replacen("img_", "img-", 1);
    let hint = if action::is_image_id(&fixed) {
        format!("did you mean `{fixed}`?")
    } else {
        match value.strip_prefix("img-") {
            Some(rest) => format!("it has {} characters after img-", rest.chars().count()),
            None => "it does not start with img-".to_string(),
        }
    };
    Err(format!(
        "image_id `{}` is not img- followed by 8 lowercase letters or digits: {hint}",
        echo(value)
    ))
}

/// The permission, or why `value` is not one.
pub(super) fn permission(value: &str) -> Result<Permission, String> {
    check_cell("permission", value)?;
    if let Some(permission) = Permission::parse(value) {
        return Ok(permission);
    }
    let hint = match suggest::nearest(value, &Permission::ALL) {
        Some(near) => format!("did you mean `{near}`?"),
        None => "use SHARE to share the image to Lighthouse, CANCEL to stop sharing it".to_string(),
    };
    Err(format!(
        "permission `{}` is not SHARE or CANCEL: {hint}",
        echo(value)
    ))
}

/// The checks every required cell gets before its column's own.
fn check_cell(column: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "{column} is {} characters long, more than a cell of this column can hold (1 KiB): `{}`; put only the {column} in the cell",
            value.chars().count(),
            echo(value)
        ));
    }
    if value.starts_with('#')
        && let Some(error) = SPREADSHEET_ERRORS
            .iter()
            .find(|error| error.eq_ignore_ascii_case(value))
    {
        return Err(format!(
            "{column} is `{error}`, a spreadsheet error value: fix the formula in the sheet"
        ));
    }
    // Printable ASCII, nearly every cell, holds nothing invisible.
    if value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Ok(());
    }
    if let Some((c, name)) = value
        .chars()
        .find_map(|c| invisible(c).map(|name| (c, name)))
    {
        return Err(format!(
            "{column} `{}` contains {name} (U+{:04X}), which the API would receive too: delete it (retyping the cell does)",
            echo(value),
            u32::from(c)
        ));
    }
    Ok(())
}

/// What to call `c` if a reader cannot see it (or cannot tell it from an ordinary space).
///
/// Ordinary ASCII spaces are not here: at the ends of a cell they are trimmed, and inside
/// one they are visible enough for the column's own check to explain.
pub(super) fn invisible(c: char) -> Option<&'static str> {
    let name = match c {
        '\u{00A0}' => "a non-breaking space",
        '\u{202F}' => "a narrow non-breaking space",
        '\u{2007}' => "a figure space",
        '\u{3000}' => "an ideographic (full-width) space",
        '\u{200B}' => "a zero-width space",
        '\u{200C}' => "a zero-width non-joiner",
        '\u{200D}' => "a zero-width joiner",
        '\u{2060}' => "a word joiner",
        '\u{FEFF}' => "a byte order mark (zero-width no-break space)",
        '\u{00AD}' => "a soft hyphen",
        '\u{200E}' => "a left-to-right mark",
        '\u{200F}' => "a right-to-left mark",
        '\t' => "a tab",
        '\n' | '\r' | '\u{2028}' | '\u{2029}' | '\u{0085}' => "a line break",
        // Bidirectional embeddings and isolates, invisible operators, Mongolian vowel
        // separator, Arabic letter mark, interlinear annotations, tag characters: the
        // other format characters (Unicode category Cf) that text copied from the web or
        // a chat may carry.
        '\u{202A}'..='\u{202E}'
        | '\u{2061}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{180E}'
        | '\u{061C}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}' => "an invisible formatting character",
        c if c.is_control() => "a control character",
        c if c.is_whitespace() && c != ' ' => "a special space",
        _ => return None,
    };
    Some(name)
}

/// `value` as a message may quote it: invisible characters written as `<U+XXXX>`, and cut to
/// `MAX_ECHO_CHARS` characters with a `…`.
pub(super) fn echo(value: &str) -> String {
    let mut echoed = String::new();
    let mut n_chars = 0;
    for c in value.chars() {
        let piece = match invisible(c) {
            Some(_) => format!("<U+{:04X}>", u32::from(c)),
            None => c.to_string(),
        };
        let n_piece = piece.chars().count();
        if n_chars + n_piece > MAX_ECHO_CHARS - 1 {
            echoed.push('…');
            return echoed;
        }
        echoed.push_str(&piece);
        n_chars += n_piece;
    }
    echoed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_checks_suggest_fixes_for_near_misses() {
        let cases: [(&str, Result<(), String>, &str); 8] = [
            (
                "ap-guangzhou-3",
                region("ap-guangzhou-3").map(drop),
                "use its region `ap-guangzhou`",
            ),
            (
                "ap-guangzou",
                region("ap-guangzou").map(drop),
                "did you mean `ap-guangzhou`?",
            ),
            ("", region("").map(drop), "region is empty"),
            (
                "CANEL",
                permission("CANEL").map(drop),
                "did you mean `CANCEL`?",
            ),
            (
                "DELETE",
                permission("DELETE").map(drop),
                "use SHARE to share",
            ),
            (
                "img-ABCDEFGH",
                image_id("img-ABCDEFGH"),
                "did you mean `img-abcdefgh`?",
            ),
            (
                "img-abcdefg",
                image_id("img-abcdefg"),
                "it has 7 characters after img-",
            ),
            ("", image_id(""), "image_id is empty"),
        ];
        for (value, result, expected) in cases {
            let message = result.expect_err(value);
            assert!(message.contains(expected), "{value}: {message}");
        }
        assert_eq!(region("AP-Tokyo"), Ok("ap-tokyo"));
        assert_eq!(permission("share"), Ok(Permission::Share));
        assert_eq!(image_id("img-0a1b2c3d"), Ok(()));
    }

    #[test]
    fn spreadsheet_error_values_ask_for_the_formula_to_be_fixed() {
        for error in SPREADSHEET_ERRORS {
            for column in [
                region(error).map(drop),
                image_id(error),
                permission(error).map(drop),
            ] {
                let message = column.expect_err(error);
                assert!(
                    message.contains(&format!(
                        "`{error}`, a spreadsheet error value: fix the formula in the sheet"
                    )),
                    "{message}"
                );
            }
        }
        let message = region("#n/a").unwrap_err();
        assert!(
            message.contains("`#N/A`, a spreadsheet error value"),
            "{message}"
        );
    }

    #[test]
    fn invisible_characters_are_named_wherever_they_are() {
        let cases = [
            (
                "ap-guangzhou\u{00A0}",
                "contains a non-breaking space (U+00A0)",
            ),
            (
                "\u{00A0}ap-guangzhou",
                "contains a non-breaking space (U+00A0)",
            ),
            (
                "ap-guang\u{200B}zhou",
                "contains a zero-width space (U+200B)",
            ),
            (
                "ap-guang\u{200C}zhou",
                "contains a zero-width non-joiner (U+200C)",
            ),
            (
                "ap-guang\u{200D}zhou",
                "contains a zero-width joiner (U+200D)",
            ),
            ("ap-guang\u{FEFF}zhou", "contains a byte order mark"),
            (
                "ap-\u{202E}guangzhou",
                "contains an invisible formatting character (U+202E)",
            ),
            ("ap-\u{2003}guangzhou", "contains a special space (U+2003)"),
            (
                "ap-\u{0007}guangzhou",
                "contains a control character (U+0007)",
            ),
            ("ap-guangzhou\ncn", "contains a line break (U+000A)"),
        ];
        for (value, expected) in cases {
            let message = region(value).unwrap_err();
            assert!(message.contains(expected), "{message}");
            assert!(message.starts_with("region `"), "{message}");
            assert!(message.contains("guang"), "the value is echoed: {message}");
        }
        let message = image_id("img-abcdefgh\u{00A0}").unwrap_err();
        assert!(
            message.contains("image_id `img-abcdefgh<U+00A0>` contains a non-breaking space"),
            "the echo shows where it is: {message}"
        );
    }

    #[test]
    fn long_values_are_refused_at_once_and_echoes_are_cut() {
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        let message = permission(&long).unwrap_err();
        assert!(message.contains("1025 characters long"), "{message}");
        assert!(
            message.contains("put only the permission in the cell"),
            "{message}"
        );
        assert!(!message.contains("did you mean"), "{message}");
        let echoed = format!("`{}…`", "x".repeat(MAX_ECHO_CHARS - 1));
        assert!(message.contains(&echoed), "{message}");

        let message = region(&"y".repeat(500)).unwrap_err();
        assert!(
            message.contains(&format!("`{}…`", "y".repeat(99))),
            "{message}"
        );
        assert!(!message.contains(&"y".repeat(100)), "{message}");

        assert_eq!(
            echo(&"z".repeat(99)),
            "z".repeat(99),
            "short values are whole"
        );
        assert_eq!(echo(&"é".repeat(150)).chars().count(), MAX_ECHO_CHARS);
        let escaped = echo(&format!("{}\u{200B}", "a".repeat(95)));
        assert_eq!(
            escaped,
            format!("{}…", "a".repeat(95)),
            "no escape is cut in half"
        );
    }
}
