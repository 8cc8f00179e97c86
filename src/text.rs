//! Text from outside (the service's messages and answers, the input's cells, file and profile
//! names) made safe for every place it is shown: a terminal, a log, a results cell.
//!
//! A control character can drive a terminal (ESC colour codes, an OSC title ended by BEL) and
//! a bidi override can make a line read differently from what it holds (U+202E). Such
//! characters are written as a visible escape (`\u{1b}`), so the words stay readable and
//! nothing is hidden. This module depends on nothing but `std`, so every layer can use it.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Where the text goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// A terminal or a log line: every control character is escaped, line breaks too, so one
    /// message stays one line and cannot forge another.
    Line,
    /// A results cell: tabs and line breaks are data a cell may hold (a note on two lines),
    /// and a CSV writer quotes them; every other control character is escaped.
    Cell,
}

/// `text` with every character that could drive a terminal or reorder what is shown written
/// as `\u{..}`; unchanged (borrowed) when it has none.
pub fn neutralise(text: &str, sink: Sink) -> Cow<'_, str> {
    if !text.chars().any(|c| is_hostile(c, sink)) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_hostile(c, sink) {
            // Writing to a String cannot fail.
            let _ = write!(safe, "\\u{{{:x}}}", u32::from(c));
        } else {
            safe.push(c);
        }
    }
    Cow::Owned(safe)
}

/// `text` for a terminal or a log line: [`neutralise`] with [`Sink::Line`].
pub fn for_line(text: &str) -> Cow<'_, str> {
    neutralise(text, Sink::Line)
}

/// A path from outside (a file name, a profile's file) for a message: shown as the terminal
/// would show its bytes, with any control character escaped.
pub fn path(path: &std::path::Path) -> String {
    for_line(&path.to_string_lossy()).into_owned()
}

fn is_hostile(c: char, sink: Sink) -> bool {
    match c {
        '\t' | '\n' | '\r' => sink == Sink::Line,
        // C0, DEL and C1 controls.
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        _ => is_bidi_control(c),
    }
}

/// The characters that change the order in which text is shown: marks, embeddings,
/// overrides and isolates, and the line and paragraph separators some terminals break on.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_overrides_are_escaped_visibly_and_words_stay() {
        let hostile = "\u{1b}[31mred\u{1b}[0m \u{1b}]0;title\u{7} \u{202e}txt.exe \u{9b}x";
        let shown = for_line(hostile);
        assert_eq!(
            shown,
            "\\u{1b}[31mred\\u{1b}[0m \\u{1b}]0;title\\u{7} \\u{202e}txt.exe \\u{9b}x"
        );
        assert!(!shown.chars().any(|c| c.is_control()));
    }

    #[test]
    fn a_cell_keeps_its_line_breaks_and_tabs_a_line_does_not() {
        assert_eq!(
            neutralise("two\nlines\tand\r", Sink::Cell),
            "two\nlines\tand\r"
        );
        assert_eq!(for_line("two\nlines"), "two\\u{a}lines");
        assert_eq!(neutralise("bell\u{7}", Sink::Cell), "bell\\u{7}");
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in ["", "image busy", "Zoë 日本 עברית", "a\\u{1b}"] {
            assert!(matches!(for_line(text), Cow::Borrowed(t) if t == text));
        }
    }
}
