//! Request extractors whose rejections are the API's error body instead of
//! axum's plain-text defaults.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use baton_core::{ExecutionId, Lane};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// A JSON request body. Any content type is accepted (so `curl -d` works
/// without a header); an empty body reads as `{}`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        // Refuse an announced oversize body before reading any of it, so a
        // client sending `Expect: 100-continue` never has to send it.
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > state.body_limit() as u64) {
            return Err(ApiError::too_large(state.body_limit()));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(state.body_limit())
            } else {
                ApiError::invalid(format!("cannot read the request body: {}", e.body_text()))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON document, naming the offending field on a type error.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            if path == "." {
                ApiError::invalid(format!("invalid request body: {inner}"))
            } else {
                let message = format!("invalid field {path}: {inner}");
                ApiError::invalid_field(path, message)
            }
        } else {
            ApiError::invalid(format!(
                "malformed JSON body: {inner}; send one JSON object"
            ))
        }
    })?;
    de.end().map_err(|e| {
        ApiError::invalid(format!(
            "malformed JSON body: {e}; send exactly one JSON object"
        ))
    })?;
    Ok(value)
}

/// Query parameters, rejected with the API's error body.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::invalid(format!("invalid query string: {}", e.body_text())))
    }
}

/// The `{id}` segment of a path, raw (`{p:3}-…`) or percent-encoded
/// (`%7Bp:3%7D-…`).
#[derive(Debug)]
pub struct IdPath(pub ExecutionId);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let text = one_segment(parts, state).await?;
        Ok(IdPath(text.parse()?))
    }
}

/// The `{id}` and second segment of a path (`{name}` of a step or a
/// signal, `{key}` of a state entry or a tag), each checked by its type.
#[derive(Debug)]
pub struct IdAnd<T>(pub ExecutionId, pub T);

impl<S: Send + Sync, T: std::str::FromStr<Err = baton_core::EngineError>> FromRequestParts<S>
    for IdAnd<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((id, second)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(format!("invalid path: {}", e.body_text())))?;
        Ok(IdAnd(id.parse()?, second.parse()?))
    }
}

/// The `{lane}` segment of a path.
#[derive(Debug)]
pub struct LanePath(pub Lane);

impl<S: Send + Sync> FromRequestParts<S> for LanePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let text = one_segment(parts, state).await?;
        Ok(LanePath(Lane::new(text)?))
    }
}

/// The `{namespace}` segment of a path.
#[derive(Debug)]
pub struct NamespacePath(pub baton_core::Namespace);

impl<S: Send + Sync> FromRequestParts<S> for NamespacePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let text = one_segment(parts, state).await?;
        Ok(NamespacePath(baton_core::Namespace::new(text)?))
    }
}

/// The `{name}` segment of a limit's path.
#[derive(Debug)]
pub struct LimitPath(pub baton_core::LimitName);

impl<S: Send + Sync> FromRequestParts<S> for LimitPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let text = one_segment(parts, state).await?;
        Ok(LimitPath(baton_core::LimitName::new(text)?))
    }
}

async fn one_segment<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<String, ApiError> {
    Path::<String>::from_request_parts(parts, state)
        .await
        .map(|Path(s)| s)
        .map_err(|e| ApiError::invalid(format!("invalid path: {}", e.body_text())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        kind: String,
        #[serde(default)]
        priority: i32,
    }

    #[test]
    fn malformed_json_is_invalid_input() {
        let e = parse_json::<Body>(b"{\"kind\": ").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.message.starts_with("malformed JSON body"),
            "{}",
            e.message
        );
        let e = parse_json::<Body>(b"{\"kind\": \"a\"} trailing").unwrap_err();
        assert!(
            e.message.starts_with("malformed JSON body"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_type_error_names_the_field() {
        let e = parse_json::<Body>(br#"{"kind": "a", "priority": "high"}"#).unwrap_err();
        assert_eq!(e.code, "invalid_input");
        assert!(e.message.contains("priority"), "{}", e.message);
        assert_eq!(e.field.as_deref(), Some("priority"));
        let e = parse_json::<Body>(br#"{"kind": "a", "prio": 1}"#).unwrap_err();
        assert!(e.message.contains("unknown field `prio`"), "{}", e.message);
    }

    #[test]
    fn an_empty_body_reads_as_an_empty_object() {
        let e = parse_json::<Body>(b"  ").unwrap_err();
        assert!(e.message.contains("missing field `kind`"), "{}", e.message);
        let b = parse_json::<Body>(br#"{"kind": "a"}"#).unwrap();
        assert_eq!((b.kind.as_str(), b.priority), ("a", 0));
    }
}
