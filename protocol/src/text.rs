//! Bounded text: every string a message or a record carries from outside (a worker's note, an
//! error message, an unknown code) is cut to a known number of characters, at a char boundary.

/// Cut `s` to at most `max` characters.
pub(crate) fn cut(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
    }
}
