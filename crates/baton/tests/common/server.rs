//! A `baton serve` process for integration tests, spoken to over plain
//! HTTP/1.1 on a loopback socket (no HTTP client crate).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `baton serve` process; killed when dropped.
#[derive(Debug)]
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`, read from the start-up log line.
    pub addr: String,
    /// The backend URL it serves.
    pub url: String,
    /// Sent as `Authorization: Bearer` by [`Server::request`] and the
    /// helpers built on it (not by [`Server::try_request`]); `None` by
    /// default, even when the server was started with a token.
    pub bearer: Option<String>,
    /// Every line the server wrote to standard error so far (the start-up
    /// line included).
    pub log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Asserts the contract's error body and answers its message.
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "body: {}", self.body);
        let message = v["error"]["message"]
            .as_str()
            .expect("an error message")
            .to_owned();
        assert!(!message.is_empty());
        message
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Server {
    /// Starts `baton serve --listen 127.0.0.1:0` on `backend` (`None`: a
    /// fresh SQLite file in a temporary directory), with `env` added to
    /// its environment, reads the bound address from its start-up log
    /// line and waits until `/healthz` answers.
    pub fn launch(backend: Option<&str>, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = match backend {
            Some(url) => url.to_owned(),
            None => format!("sqlite://{}", dir.path().join("baton.db").display()),
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("BATON_BACKEND", &url)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("BATON_API_TOKEN")
            .env_remove("BATON_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("baton serve starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = Arc::clone(&log);
        // Keeps draining stderr so the server never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    // `HOST:PORT`, up to a comma, a space or a path.
                    let addr: String = rest
                        .chars()
                        .take_while(|c| !matches!(c, ',' | ' ' | '/' | ')'))
                        .collect();
                    let _ = tx.send(Ok(addr));
                } else {
                    eprintln!("[baton serve] {line}");
                }
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
            let _ = tx.send(Err("baton serve exited before listening".to_owned()));
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => panic!("{e}"),
            Err(e) => {
                let _ = child.kill();
                panic!("baton serve did not log its address: {e}");
            }
        };
        let server = Server {
            child,
            addr,
            url,
            bearer: None,
            log,
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            if let Ok(a) = server.try_request("GET", "/healthz", None, &[])
                && a.status == 200
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "/healthz never answered"
            );
            thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's standard error so far, one line each.
    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// One request with a JSON `body`, and `headers` as given.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> std::io::Result<Answer> {
        self.send(method, path, body.map(|b| ("application/json", b)), headers)
    }

    /// One request with a body of the given content type (`(type,
    /// bytes)`), and `headers` as given.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        headers: &[(&str, &str)],
    ) -> std::io::Result<Answer> {
        let mut stream = TcpStream::connect(&self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let expect_continue = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("expect"));
        if let Some((content_type, b)) = body {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        // With `Expect: 100-continue` the body is only sent if the server
        // asks for it; these tests use it for bodies the server refuses.
        if let (Some((_, b)), false) = (body, expect_continue) {
            stream.write_all(b)?;
        }
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Ok(parse_answer(&raw))
    }

    /// One request with [`Server::bearer`], if any.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON"));
        let auth = self.bearer.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        self.try_request(method, path, bytes.as_deref(), &headers)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn get(&self, path: &str) -> Answer {
        self.request("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Answer {
        self.request("POST", path, Some(&body))
    }

    /// POST answering 200 or 201, as JSON.
    pub fn ok(&self, path: &str, body: Value) -> Value {
        let a = self.post(path, body);
        assert!(
            a.status == 200 || a.status == 201,
            "POST {path}: {} {}",
            a.status,
            a.body
        );
        a.json()
    }

    pub fn describe(&self, id: &str) -> Value {
        let a = self.get(&format!("/v1/executions/{id}?attempts=true"));
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()
    }

    pub fn submit(&self, body: Value) -> String {
        self.ok("/v1/executions", body)["id"]
            .as_str()
            .expect("an id")
            .to_owned()
    }

    pub fn claim(&self, lane: &str, body: Value) -> Vec<Value> {
        self.ok(&format!("/v1/lanes/{lane}/claim"), body)["claims"]
            .as_array()
            .expect("claims")
            .clone()
    }

    /// Sends SIGTERM to the server process.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the server to exit, and answers its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "baton serve did not exit after SIGTERM"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body: String::from_utf8(body).expect("a UTF-8 body"),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size_text = std::str::from_utf8(&data[..eol]).expect("an ASCII chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("a hex chunk size");
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// `{p:3}-…` with the braces percent-encoded.
pub fn encoded(id: &str) -> String {
    id.replace('{', "%7B").replace('}', "%7D")
}
