//! The dashboard's stylesheet, script and icon, embedded in the binary and
//! linked with a hash of their content (`?v=`), so that a new build is
//! never served a stale copy and an unchanged one is cached for good.

use std::sync::LazyLock;

use axum::extract::{Path, RawQuery};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &[u8] = include_bytes!("baton.css");
const JS: &[u8] = include_bytes!("baton.js");
const ICON: &[u8] = include_bytes!("favicon.svg");

/// One embedded file: its name under `/ui/assets/`, type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: [Asset; 3] = [
    Asset {
        name: "baton.css",
        content_type: "text/css; charset=utf-8",
        bytes: CSS,
    },
    Asset {
        name: "baton.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: JS,
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: ICON,
    },
];

/// The first 12 hex digits of the SHA-256 of `bytes`.
fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    hex::encode(digest).chars().take(12).collect()
}

/// The assets' URLs, each with its content hash.
#[derive(Debug)]
pub(crate) struct Urls {
    pub css: String,
    pub js: String,
    pub icon: String,
    hashes: [String; 3],
}

static URLS: LazyLock<Urls> = LazyLock::new(|| {
    let hashes = [short_hash(CSS), short_hash(JS), short_hash(ICON)];
    Urls {
        css: format!("/ui/assets/baton.css?v={}", hashes[0]),
        js: format!("/ui/assets/baton.js?v={}", hashes[1]),
        icon: format!("/ui/assets/favicon.svg?v={}", hashes[2]),
        hashes,
    }
});

/// The URLs the pages link, computed once.
pub(crate) fn urls() -> &'static Urls {
    &URLS
}

/// `GET /ui/assets/{name}`: public (no token), cached for good when asked
/// with the current hash, revalidated otherwise.
pub(crate) async fn serve(Path(name): Path<String>, RawQuery(query): RawQuery) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let asset = &ASSETS[i];
    let current = query
        .as_deref()
        .and_then(|q| q.strip_prefix("v="))
        .is_some_and(|v| v == urls().hashes[i]);
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
        ],
        asset.bytes,
    )
        .into_response()
}
