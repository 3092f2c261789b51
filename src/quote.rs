//! Text taken from an input, shown in a message. A file may hold anything: a newline would break
//! the one-line message, a terminal escape (`\x1b[31m`) would act on the user's terminal, and a
//! 1 MB field would make a 1 MB message. So control and invisible characters are escaped (as
//! Rust's `escape_debug` writes them: `\n`, `\u{1b}`), and quoted text is cut.

use std::borrow::Cow;

/// At most this many characters of an input's text appear in a message ([`field`]).
pub const MAX_CHARS: usize = 40;

/// Characters that must not reach a terminal as they are: control characters (C0, DEL, C1) and
/// the invisible ones that reorder or hide text (bidirectional overrides, zero-width marks, BOM).
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

fn push_escaped(out: &mut String, c: char) {
    if hidden(c) {
        out.extend(c.escape_debug());
    } else {
        out.push(c);
    }
}

/// `s` with its hidden characters escaped: safe to print as one line.
pub fn one_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// `'text'`: an input's bytes for a message (invalid UTF-8 as U+FFFD), hidden characters escaped,
/// cut after [`MAX_CHARS`] characters with `…`.
pub fn field(bytes: &[u8]) -> String {
    // A character takes at most 4 bytes: this prefix holds more than MAX_CHARS of them whenever
    // the whole does, so the cut shows.
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4 * MAX_CHARS + 8)]);
    let mut out = String::from("'");
    let mut chars = text.chars();
    for c in chars.by_ref().take(MAX_CHARS) {
        push_escaped(&mut out, c);
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out.push('\'');
    out
}

/// [`field`] of a string.
pub fn text(s: &str) -> String {
    field(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_and_cut() {
        assert_eq!(field(b"abc"), "'abc'");
        assert_eq!(field(b"\x1b[31mRED\n"), "'\\u{1b}[31mRED\\n'");
        assert_eq!(field(&[b'x'; 1 << 20]), format!("'{}…'", "x".repeat(MAX_CHARS)));
        assert_eq!(field(&"é".repeat(MAX_CHARS).into_bytes()), format!("'{}'", "é".repeat(MAX_CHARS)));
        assert_eq!(field(&"é".repeat(MAX_CHARS + 1).into_bytes()), format!("'{}…'", "é".repeat(MAX_CHARS)));
        assert_eq!(field(b"\xff1"), "'\u{fffd}1'");
        assert_eq!(field("a\u{202e}b".as_bytes()), "'a\\u{202e}b'");
        assert_eq!(one_line("x.csv: line 2: 'a'"), "x.csv: line 2: 'a'");
        assert_eq!(one_line("a\r\nb\tc\x07"), "a\\r\\nb\\tc\\u{7}");
    }
}
