//! The HTTP transport: the public API (`docs/HTTP-API.md`) over HTTP/1.1,
//! with a small pool of keep-alive connections. Every body and answer is a
//! `baton-api` type, and errors are read from the error body's `code`,
//! `field` and `state`, never from its message.//!
//! `conn` holds the connection pool and the one request path every call
//! takes; `calls` maps each transport operation to its route.

mod calls;
mod conn;

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use baton_core::{EngineError, ExecutionId, Result};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;

pub(crate) struct HttpTransport {
    authority: String,
    base_path: String,
    token: Option<String>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    /// The server takes a claim's extra lanes in its body (false once an
    /// older server has refused them).
    lanes_in_body: AtomicBool,
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// What the caller knows about a request, to turn an error body into the
/// right [`EngineError`].
#[derive(Clone, Copy)]
struct Op<'a> {
    name: &'static str,
    id: Option<&'a ExecutionId>,
}

impl HttpTransport {
    /// Parses `http://host[:port][/prefix]`.
    pub(crate) fn new(url: &str, token: Option<String>) -> Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(EngineError::Configuration {
                message: format!(
                    "{url:?} is not an http:// URL; https is not built in, so put a TLS-terminating proxy next to the worker or use plain http on a private network"
                ),
            });
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(EngineError::Configuration {
                message: format!("{url:?} names no host; write it as http://HOST:PORT"),
            });
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(HttpTransport {
            authority,
            base_path: path.to_owned(),
            token,
            idle: Mutex::new(Vec::new()),
            lanes_in_body: AtomicBool::new(true),
        })
    }

    pub(crate) fn with_token(&self, token: Option<String>) -> Self {
        HttpTransport {
            authority: self.authority.clone(),
            base_path: self.base_path.clone(),
            token,
            idle: Mutex::new(Vec::new()),
            lanes_in_body: AtomicBool::new(self.lanes_in_body.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn urls_are_parsed() {
        let t = HttpTransport::new("http://127.0.0.1:7420/", None).unwrap();
        assert_eq!(
            (t.authority.as_str(), t.base_path.as_str()),
            ("127.0.0.1:7420", "")
        );
        let t = HttpTransport::new("http://baton/api", None).unwrap();
        assert_eq!(
            (t.authority.as_str(), t.base_path.as_str()),
            ("baton:80", "/api")
        );
        assert!(HttpTransport::new("https://baton", None).is_err());
        assert!(HttpTransport::new("http:///x", None).is_err());
    }
}
