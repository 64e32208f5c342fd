//! Text for messages and decisions: values from a token shown so that they cannot forge what a
//! reader sees, and I/O errors said in one lowercase phrase.

/// Longest rendering of a token-provided value in a decision or message.
const MAX_SHOWN: usize = 120;

/// A value from a token, quoted for a decision: in backticks, control characters escaped (so a
/// claim cannot forge lines in a log or the text explanation), long values cut.
pub(crate) fn quote(value: &str) -> String {
    format!("`{}`", escape(value))
}

/// A value from a token with control characters escaped and its length cut to a readable size.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_SHOWN));
    for (i, c) in value.chars().enumerate() {
        if i == MAX_SHOWN {
            out.push('…');
            break;
        }
        if c.is_control() || is_deceptive(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that are not control characters but still change what a reader sees: the Unicode
/// line and paragraph separators (many log viewers break lines there) and the bidirectional
/// formatting characters (they reorder the text around them, "Trojan Source").
pub(crate) fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// An I/O error as one lowercase phrase for messages ("file not found", not "No such file or
/// directory (os error 2)").
pub(crate) fn io_message(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "file not found".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::InvalidData => "not UTF-8 text".into(),
        ErrorKind::IsADirectory => "is a directory".into(),
        _ => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            let mut chars = text.chars();
            chars
                .next()
                .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
        }
    }
}
