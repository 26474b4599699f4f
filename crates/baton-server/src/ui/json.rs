//! Re-indents stored JSON for reading, token by token: strings, numbers and
//! literals are copied as stored, so a number keeps the exact text the API
//! promises (`1e400`, `12345678901234567890`, `1.50`) where a parse into
//! `serde_json::Value` would round or refuse it.

/// Longest text shown on a page; longer values are cut with a note.
pub(crate) const MAX_SHOWN: usize = 64 * 1024;

/// A value ready to show: the indented text and whether it was cut.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shown {
    pub text: String,
    pub cut: bool,
}

/// `bytes` indented by two spaces per level, cut at [`MAX_SHOWN`]. Bytes
/// that are not JSON (never stored by Baton, but shown rather than hidden)
/// come back as text, unindented.
pub(crate) fn pretty(bytes: &[u8]) -> Shown {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len().min(MAX_SHOWN) + 64);
    let ok = indent(&text, &mut out);
    let mut shown = if ok {
        Shown {
            text: out,
            cut: false,
        }
    } else {
        Shown {
            text: text.into_owned(),
            cut: false,
        }
    };
    if shown.text.len() > MAX_SHOWN {
        let mut end = MAX_SHOWN;
        while !shown.text.is_char_boundary(end) {
            end -= 1;
        }
        shown.text.truncate(end);
        shown.cut = true;
    }
    shown
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// Writes `text` indented into `out`; false when it is not well-formed
/// enough to indent (an unterminated string, unbalanced brackets).
fn indent(text: &str, out: &mut String) -> bool {
    let bytes = text.as_bytes();
    let mut depth: usize = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Stop early: the page shows only the first MAX_SHOWN bytes.
        if out.len() > MAX_SHOWN {
            return true;
        }
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'{' | b'[' => {
                let close = if b == b'{' { b'}' } else { b']' };
                let next = next_token(bytes, i + 1);
                out.push(b as char);
                if next.is_some_and(|j| bytes[j] == close) {
                    out.push(close as char);
                    i = next.map_or(bytes.len(), |j| j + 1);
                } else {
                    depth += 1;
                    newline(out, depth);
                    i += 1;
                }
            }
            b'}' | b']' => {
                let Some(d) = depth.checked_sub(1) else {
                    return false;
                };
                depth = d;
                newline(out, depth);
                out.push(b as char);
                i += 1;
            }
            b',' => {
                out.push(',');
                newline(out, depth);
                i += 1;
            }
            b':' => {
                out.push_str(": ");
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return false,
                        Some(b'\\') => i += 2,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                let Some(token) = text.get(start..i) else {
                    return false;
                };
                out.push_str(token);
            }
            _ => {
                // A number or a literal: everything up to the next
                // structural character or space, verbatim.
                let start = i;
                while i < bytes.len()
                    && !matches!(
                        bytes[i],
                        b',' | b':'
                            | b'{'
                            | b'}'
                            | b'['
                            | b']'
                            | b'"'
                            | b' '
                            | b'\t'
                            | b'\n'
                            | b'\r'
                    )
                {
                    i += 1;
                }
                let Some(token) = text.get(start..i) else {
                    return false;
                };
                out.push_str(token);
            }
        }
    }
    depth == 0
}

/// The index of the next byte that is not white space.
fn next_token(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len()).find(|&j| !matches!(bytes[j], b' ' | b'\t' | b'\n' | b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_text() {
        let shown = pretty(br#"{"big":12345678901234567890,"huge":1e400,"x":1.50,"neg":-0.0}"#);
        assert_eq!(
            shown.text,
            "{\n  \"big\": 12345678901234567890,\n  \"huge\": 1e400,\n  \"x\": 1.50,\n  \"neg\": -0.0\n}"
        );
        assert!(!shown.cut);
    }

    #[test]
    fn nesting_strings_and_empty_containers() {
        let shown = pretty(br#" [ {"a" : [ ] , "b":{}}, "x,\"y\":[", true, null ] "#);
        assert_eq!(
            shown.text,
            "[\n  {\n    \"a\": [],\n    \"b\": {}\n  },\n  \"x,\\\"y\\\":[\",\n  true,\n  null\n]"
        );
    }

    #[test]
    fn not_json_is_shown_as_it_is() {
        assert_eq!(pretty(b"{\"a\": [1}").text, "{\"a\": [1}");
        assert_eq!(pretty(b"\"open").text, "\"open");
        assert_eq!(pretty(b"42").text, "42");
    }

    #[test]
    fn a_long_value_is_cut() {
        let long = format!("[\"{}\"]", "é".repeat(MAX_SHOWN));
        let shown = pretty(long.as_bytes());
        assert!(shown.cut);
        assert!(shown.text.len() <= MAX_SHOWN);
    }
}
