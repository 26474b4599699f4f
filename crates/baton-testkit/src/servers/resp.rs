//! A tiny blocking RESP2 client, enough to start, check and poke the test
//! Valkey/Redis servers without a client library: one connection, one
//! command at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest bulk string accepted (the servers' default `proto-max-bulk-len`).
const MAX_BULK: usize = 512 * 1024 * 1024;

/// How deeply arrays may nest in a reply.
const MAX_DEPTH: usize = 32;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespValue {
    /// A simple string (`+OK`).
    Simple(String),
    /// An error reply nested in an array (a top-level error reply is
    /// returned as `Err` by the functions sending commands).
    Error(String),
    /// An integer (`:1`).
    Integer(i64),
    /// A bulk string (`$3\r\nfoo`).
    Bulk(Vec<u8>),
    /// A nil bulk string or array (`$-1`, `*-1`).
    Nil,
    /// An array (`*2\r\n…`).
    Array(Vec<RespValue>),
}

impl RespValue {
    /// A simple or bulk string as text (invalid UTF-8 replaced), else `None`.
    pub fn as_text(&self) -> Option<String> {
        match self {
            RespValue::Simple(s) => Some(s.clone()),
            RespValue::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// One connection to a server.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    /// Connects to `addr` (`host:port`), waiting at most `timeout` for the
    /// connection and for each reply.
    pub(crate) fn open(addr: &str, timeout: Duration) -> Result<Self, String> {
        let addrs = addr
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {addr}: {e}"))?;
        let mut last = format!("{addr} resolves to no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(timeout))
                        .and_then(|()| stream.set_write_timeout(Some(timeout)))
                        .and_then(|()| stream.set_nodelay(true))
                        .map_err(|e| format!("cannot set up the connection to {addr}: {e}"))?;
                    return Ok(Connection {
                        stream: BufReader::new(stream),
                    });
                }
                Err(e) => last = format!("cannot connect to {addr}: {e}"),
            }
        }
        Err(last)
    }

    /// Sends one command and reads its reply; an error reply is `Err`.
    pub(crate) fn command(&mut self, args: &[&str]) -> Result<RespValue, String> {
        let name = args.first().copied().unwrap_or("");
        self.stream
            .get_mut()
            .write_all(&encode(args))
            .map_err(|e| format!("cannot send {name}: {e}"))?;
        match read_value(&mut self.stream, 0).map_err(|e| format!("{name}: {e}"))? {
            RespValue::Error(e) => Err(format!("{name}: {e}")),
            reply => Ok(reply),
        }
    }
}

/// The command as a RESP array of bulk strings.
pub(crate) fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply.
pub(crate) fn read_value(r: &mut impl BufRead, depth: usize) -> Result<RespValue, String> {
    if depth > MAX_DEPTH {
        return Err("reply nested too deeply".into());
    }
    let line = read_line(r)?;
    let Some(kind) = line.chars().next() else {
        return Err("empty reply line".into());
    };
    let rest = &line[kind.len_utf8()..];
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| format!("bad number in reply line {line:?}"))
    };
    match kind {
        '+' => Ok(RespValue::Simple(rest.to_owned())),
        '-' => Ok(RespValue::Error(rest.to_owned())),
        ':' => Ok(RespValue::Integer(number()?)),
        '$' => {
            let len = number()?;
            if len < 0 {
                return Ok(RespValue::Nil);
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= MAX_BULK)
                .ok_or_else(|| format!("bulk string too long: {len}"))?;
            let mut data = Vec::new();
            r.take(len as u64 + 2)
                .read_to_end(&mut data)
                .map_err(|e| format!("cannot read a reply: {e}"))?;
            if data.len() != len + 2 || !data.ends_with(b"\r\n") {
                return Err("truncated bulk string in reply".into());
            }
            data.truncate(len);
            Ok(RespValue::Bulk(data))
        }
        '*' => {
            let len = number()?;
            if len < 0 {
                return Ok(RespValue::Nil);
            }
            let mut items = Vec::new();
            for _ in 0..len {
                items.push(read_value(r, depth + 1)?);
            }
            Ok(RespValue::Array(items))
        }
        _ => Err(format!("unexpected reply line {line:?}")),
    }
}

/// One `\r\n`-terminated line, without the terminator.
fn read_line(r: &mut impl BufRead) -> Result<String, String> {
    let mut line = Vec::new();
    // A line is a type byte and a number or a short status text.
    r.take(64 * 1024)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read a reply: {e}"))?;
    if line.is_empty() {
        return Err("the server closed the connection".into());
    }
    if !line.ends_with(b"\r\n") {
        return Err("truncated reply line".into());
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| "reply line is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<RespValue, String> {
        read_value(&mut &bytes[..], 0)
    }

    #[test]
    fn encodes_commands_as_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&["SET", "k", ""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn parses_every_reply_type() {
        assert_eq!(parse(b"+PONG\r\n"), Ok(RespValue::Simple("PONG".into())));
        assert_eq!(parse(b"-ERR no\r\n"), Ok(RespValue::Error("ERR no".into())));
        assert_eq!(parse(b":-42\r\n"), Ok(RespValue::Integer(-42)));
        assert_eq!(
            parse(b"$5\r\na\r\nbc\r\n"),
            Ok(RespValue::Bulk(b"a\r\nbc".to_vec()))
        );
        assert_eq!(parse(b"$-1\r\n"), Ok(RespValue::Nil));
        assert_eq!(parse(b"*-1\r\n"), Ok(RespValue::Nil));
        assert_eq!(
            parse(b"*3\r\n:1\r\n*1\r\n$0\r\n\r\n-WRONGTYPE x\r\n"),
            Ok(RespValue::Array(vec![
                RespValue::Integer(1),
                RespValue::Array(vec![RespValue::Bulk(Vec::new())]),
                RespValue::Error("WRONGTYPE x".into()),
            ]))
        );
    }

    #[test]
    fn rejects_broken_replies() {
        assert!(parse(b"").is_err());
        assert!(parse(b"+OK").is_err());
        assert!(parse(b"$5\r\nab\r\n").is_err());
        assert!(parse(b":x\r\n").is_err());
        assert!(parse(b"?\r\n").is_err());
        assert!(parse(b"*2\r\n:1\r\n").is_err());
    }
}
