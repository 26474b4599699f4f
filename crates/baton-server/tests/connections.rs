//! What a client sees on the socket: a refused body is answered (not reset),
//! an answer given before reading the body keeps the connection usable, and
//! the server's own limits on the request head answer the API's error body.
//! Spoken as raw HTTP/1.1 over TCP to a served SQLite backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use baton_server::{AppState, ServerConfig};
use serde_json::Value;

const LIMIT: usize = 64 * 1024;

/// Serves a fresh in-memory SQLite backend on a free port; the server runs
/// on its own runtime thread for the rest of the test process.
fn serve(config: ServerConfig) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let backend = baton_sqlite::SqliteBackend::connect("sqlite::memory:")
                .await
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let state = AppState::new(Arc::new(backend), config.with_max_body_bytes(LIMIT));
            baton_server::serve(listener, state, std::future::pending())
                .await
                .unwrap();
        });
    });
    rx.recv().unwrap()
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    BufReader::new(stream)
}

/// One answer: status, headers (names lower-cased), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn error_code(&self) -> String {
        let v: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} not JSON ({e}): {:?}", self.status, self.body));
        v["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// Reads one answer with a `Content-Length` off a (keep-alive) connection.
fn read_answer(conn: &mut BufReader<TcpStream>) -> Answer {
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .unwrap_or_else(|| panic!("no status line: {line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    conn.read_exact(&mut body).unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

fn send(conn: &mut BufReader<TcpStream>, head: &str, body: &[u8]) {
    let s = conn.get_mut();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
}

fn post_head(path: &str, len: usize, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n{extra}\r\n")
}

#[test]
fn an_oversize_body_written_whole_is_answered_413() {
    let addr = serve(ServerConfig::default());
    let body = vec![b' '; 20 * 1024 * 1024];
    let mut conn = connect(addr);
    send(
        &mut conn,
        &post_head("/v1/executions", body.len(), ""),
        &body,
    );
    let a = read_answer(&mut conn);
    assert_eq!(a.status, 413);
    assert_eq!(a.error_code(), "invalid_input");
    assert_eq!(a.header("connection"), Some("close"));

    // The same body sent in chunks, its size not announced.
    let mut conn = connect(addr);
    let head = "POST /v1/executions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut chunked = Vec::new();
    for chunk in body.chunks(1 << 20) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    send(&mut conn, head, &chunked);
    let a = read_answer(&mut conn);
    assert_eq!(a.status, 413);
    assert_eq!(a.error_code(), "invalid_input");
}

#[test]
fn answers_given_before_the_body_keep_the_connection_usable() {
    let open = serve(ServerConfig::default());
    let guarded = serve(ServerConfig::default().with_api_token("s3cret"));
    let body = br#"{"reason": "not needed", "worker_id": "w"}"#;
    for (addr, path, status) in [
        (open, "/v1/executions/nope/cancel", 400),
        (open, "/v1/lanes/bad%20lane/claim", 400),
        (open, "/v1/nothing-here", 404),
        (guarded, "/v1/executions", 401),
    ] {
        let mut conn = connect(addr);
        for _ in 0..2 {
            send(&mut conn, &post_head(path, body.len(), ""), body);
            let a = read_answer(&mut conn);
            assert_eq!(a.status, status, "{path}");
            assert_eq!(a.header("connection"), None, "{path}");
            send(&mut conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"");
            assert_eq!(read_answer(&mut conn).status, 200, "{path}: next request");
        }
    }
}

#[test]
fn heads_over_the_limits_get_the_error_body() {
    let addr = serve(ServerConfig::default());
    let long = format!(
        "/v1/executions?kind={}",
        "k".repeat(baton_server::MAX_URI_BYTES)
    );
    let mut conn = connect(addr);
    send(
        &mut conn,
        &format!("GET {long} HTTP/1.1\r\nHost: x\r\n\r\n"),
        b"",
    );
    let a = read_answer(&mut conn);
    assert_eq!((a.status, a.error_code().as_str()), (414, "invalid_input"));

    let big = "v".repeat(baton_server::MAX_HEADER_BYTES);
    let mut conn = connect(addr);
    let head = format!("GET /v1/stats HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    send(&mut conn, &head, b"");
    let a = read_answer(&mut conn);
    assert_eq!((a.status, a.error_code().as_str()), (431, "invalid_input"));
}
