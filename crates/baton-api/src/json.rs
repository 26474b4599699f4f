//! Payloads and results on the wire: JSON text carried verbatim.
//!
//! A payload or result is stored as the JSON text the client sent and is
//! written back as that same text, never parsed into numbers and strings and
//! printed again: an integer of any size, `1e400` or `1.50` come back as
//! sent. What is accepted is decided once, by [`check_json`]:
//!
//! - any JSON text (RFC 8259), numbers of any size and precision included;
//! - nesting of arrays and objects up to [`MAX_JSON_DEPTH`] levels, so that
//!   every answer carrying it stays within the nesting limits of common
//!   JSON parsers (serde_json stops at 128 levels for a whole document);
//! - strings of valid Unicode only: a `\uD800`–`\uDFFF` escape that is not
//!   half of a surrogate pair is refused (RFC 7493, I-JSON), since parsers
//!   either reject it or replace it with another character.

use baton_core::{EngineError, Result};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Most levels of nesting (arrays and objects) a payload or result may have.
pub const MAX_JSON_DEPTH: usize = 100;

/// One JSON value as text, written out exactly as held.
///
/// ```
/// use baton_api::JsonText;
/// let big = JsonText::from_bytes(b"123456789012345678901234567890");
/// assert_eq!(serde_json::to_string(&big).unwrap(), "123456789012345678901234567890");
/// assert_eq!(JsonText::from_bytes(b"plain text").get(), "\"plain text\"");
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonText(Box<RawValue>);

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl JsonText {
    /// Stored payload or result bytes as JSON: the text itself when it is
    /// one JSON value, else a JSON string of the bytes (bytes submitted by a
    /// non-HTTP client), invalid UTF-8 replaced.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        if let Ok(raw) = serde_json::from_slice::<&RawValue>(bytes) {
            return JsonText(raw.to_owned());
        }
        let text = String::from_utf8_lossy(bytes);
        match serde_json::value::to_raw_value(&text) {
            Ok(raw) => JsonText(raw),
            // Encoding a string cannot fail; `null` keeps this total.
            Err(_) => JsonText(RawValue::NULL.to_owned()),
        }
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The bytes `baton-core` stores for it: the text.
    pub fn into_bytes(self) -> Vec<u8> {
        String::from(Box::<str>::from(self.0)).into_bytes()
    }

    /// The raw value, for a request body.
    pub fn into_raw(self) -> Box<RawValue> {
        self.0
    }
}

/// Checks that `text`, one JSON value, is one Baton accepts as a payload or
/// result: at most [`MAX_JSON_DEPTH`] levels of nesting and no lone
/// surrogate escape. `field` names it in the error.
///
/// # Errors
/// `InvalidInput` naming `field` and the rule broken.
///
/// ```
/// use baton_api::{MAX_JSON_DEPTH, check_json};
/// assert!(check_json("payload", r#"{"a": [1e400, "\ud83d\ude00"]}"#).is_ok());
/// assert!(check_json("payload", r#""\ud800""#).is_err());
/// let deep = "[".repeat(MAX_JSON_DEPTH + 1) + &"]".repeat(MAX_JSON_DEPTH + 1);
/// assert!(check_json("payload", &deep).is_err());
/// ```
pub fn check_json(field: &'static str, text: &str) -> Result<()> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut in_string = false;
    // A high surrogate escape waiting for its low half.
    let mut pending_high = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        if !in_string {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_JSON_DEPTH {
                        return Err(EngineError::invalid(
                            field,
                            format!("{depth} levels"),
                            format!(
                                "JSON nested deeper than the maximum nesting depth of {MAX_JSON_DEPTH} levels of arrays and objects"
                            ),
                        ));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            continue;
        }
        let unit = match b {
            b'"' => {
                in_string = false;
                None
            }
            b'\\' => {
                let escape = bytes.get(i).copied();
                i += 1;
                if escape == Some(b'u') {
                    let hex = text.get(i..i + 4).unwrap_or_default();
                    i += 4;
                    u16::from_str_radix(hex, 16).ok()
                } else {
                    None
                }
            }
            _ => None,
        };
        let is_low = unit.is_some_and(|u| (0xDC00..0xE000).contains(&u));
        if pending_high != is_low {
            return Err(lone_surrogate(field));
        }
        pending_high = unit.is_some_and(|u| (0xD800..0xDC00).contains(&u));
    }
    Ok(())
}

fn lone_surrogate(field: &'static str) -> EngineError {
    EngineError::invalid(
        field,
        "\\uD800-\\uDFFF",
        "a JSON string holds a lone surrogate escape (\\uD800 to \\uDFFF not forming a pair); strings must be valid Unicode (RFC 7493)",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn surrogates_must_pair() {
        for ok in [
            r#""\ud83d\ude00""#,
            r#""a\\ud800""#,
            r#"["\u00e9", "\uD834\uDD1E x"]"#,
            r#""\"\\\/""#,
            "\"\u{1F600}\"",
        ] {
            assert!(check_json("payload", ok).is_ok(), "{ok}");
        }
        for bad in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800x""#,
            r#""\ud800\u0041""#,
            r#"["\ud800"]"#,
            r#""\ud83d\ud83d""#,
        ] {
            let e = check_json("result", bad).unwrap_err();
            assert!(e.to_string().contains("surrogate"), "{bad}: {e}");
        }
    }

    #[test]
    fn depth_counts_arrays_and_objects_but_not_strings() {
        let nest = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(check_json("payload", &nest(MAX_JSON_DEPTH)).is_ok());
        let e = check_json("payload", &nest(MAX_JSON_DEPTH + 1)).unwrap_err();
        assert!(e.to_string().contains("depth"), "{e}");
        let brackets = format!("\"{}\"", "[{".repeat(500));
        assert!(check_json("payload", &brackets).is_ok());
        assert!(check_json("payload", r#"{"a": {"b": [1, {"c": []}]}}"#).is_ok());
    }

    #[test]
    fn stored_text_is_written_back_verbatim() {
        for text in [
            "123456789012345678901234567890",
            "-9223372036854775809",
            "1e400",
            "[1.7976931348623157e309]",
            "1.50",
            r#"{"b":1,"a":2}"#,
        ] {
            let j = JsonText::from_bytes(text.as_bytes());
            assert_eq!(serde_json::to_string(&j).unwrap(), text);
            assert_eq!(j.clone().into_bytes(), text.as_bytes());
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(JsonText::from_bytes(deep.as_bytes()).get(), deep);
        assert_eq!(JsonText::from_bytes(b"\xff").get(), "\"\u{FFFD}\"");
    }
}
