//! Starting the nodes of a test deployment: free ports, daemonized servers,
//! readiness, and forming a cluster.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::{
    BUS_OFFSET, CLUSTER_SLOTS, CLUSTER_TIMEOUT, COMMAND_TIMEOUT, Failure, Kind,
    NO_PID_FILE_TIMEOUT, READY_TIMEOUT,
};
use super::redis_binaries::Binary;
use super::resp::{Connection, RespValue};

/// Starts the nodes of a deployment, daemonized, each in `data/<port>/`
/// (where the helper finds its pid file to stop it), waits for them and,
/// for a cluster, forms it. Answers the deployment's URL.
pub(super) fn start_nodes(kind: Kind, bin: &Binary, data: &Path) -> Result<String, Failure> {
    let ports = free_ports(kind.nodes(), kind.is_cluster()).map_err(Failure::fatal)?;
    for &port in &ports {
        let node = data.join(port.to_string());
        std::fs::create_dir(&node)
            .map_err(|e| Failure::fatal(format!("cannot create {}: {e}", node.display())))?;
        let log = std::fs::File::create(node.join("start.log"))
            .and_then(|out| Ok((out.try_clone()?, out)))
            .map_err(|e| {
                Failure::fatal(format!("cannot create a log in {}: {e}", node.display()))
            })?;
        let mut command = Command::new(&bin.path);
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--daemonize", "yes", "--pidfile"])
            .arg(node.join("server.pid"))
            .arg("--logfile")
            .arg(node.join("server.log"))
            .arg("--dir")
            .arg(&node)
            .args(["--save", "", "--appendonly", "no"]);
        if kind.is_cluster() {
            command
                .args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(node.join("nodes.conf"))
                .args(["--cluster-node-timeout", "5000"]);
        }
        // With --daemonize the command returns once the node forked away.
        let status = command
            .stdin(Stdio::null())
            .stdout(log.0)
            .stderr(log.1)
            .status()
            .map_err(|e| Failure::fatal(format!("cannot run {}: {e}", bin.path.display())))?;
        if !status.success() {
            return Err(Failure::fatal(format!(
                "the server did not start on port {port} ({status}): {}",
                log_tail(data, port)
            )));
        }
    }
    for &port in &ports {
        wait_for_ping(port, &data.join(port.to_string())).map_err(|e| Failure {
            message: format!("{e}; log: {}", log_tail(data, port)),
            retry: true,
        })?;
    }
    if kind.is_cluster() {
        form_cluster(&ports).map_err(Failure::fatal)?;
    }
    Ok(kind.url(&ports))
}

/// Waits until the node on `port` (files in `node`) answers `PING`.
pub(super) fn wait_for_ping(port: u16, node: &Path) -> Result<(), String> {
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let deadline = started + READY_TIMEOUT;
    loop {
        let error = match Connection::open(&addr, Duration::from_secs(1))
            .and_then(|mut c| c.command(&["PING"]))
        {
            Ok(RespValue::Simple(s)) if s == "PONG" => return Ok(()),
            Ok(other) => format!("PING answered {other:?}"),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "the node on port {port} did not answer PING within {} s ({error})",
                READY_TIMEOUT.as_secs()
            ));
        }
        // A node writes its pid file once it listens and removes it when it
        // exits, so a node that failed (say, its port was taken meanwhile)
        // is told apart from a slow one without waiting for the deadline.
        if started.elapsed() >= NO_PID_FILE_TIMEOUT && !node.join("server.pid").is_file() {
            return Err(format!(
                "the node on port {port} is not running (no pid file after {} s; {error})",
                NO_PID_FILE_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Gives each node its slots, joins them and waits until every node reports
/// `cluster_state:ok` and knows all the others.
pub(super) fn form_cluster(ports: &[u16]) -> Result<(), String> {
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let open = |port: u16| Connection::open(&addr(port), COMMAND_TIMEOUT);
    for (i, (&port, (first, last))) in ports.iter().zip(CLUSTER_SLOTS).enumerate() {
        let mut conn = open(port)?;
        // Distinct epochs up front, as `--cluster create` does, so the nodes
        // need not resolve a collision first.
        conn.command(&["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])?;
        conn.command(&[
            "CLUSTER",
            "ADDSLOTSRANGE",
            &first.to_string(),
            &last.to_string(),
        ])?;
    }
    let Some((&seed, others)) = ports.split_first() else {
        return Err("a cluster without nodes".into());
    };
    let mut conn = open(seed)?;
    for &port in others {
        conn.command(&["CLUSTER", "MEET", "127.0.0.1", &port.to_string()])?;
    }
    let want = ports.len().to_string();
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    loop {
        let mut waiting = Vec::new();
        for &port in ports {
            let info = open(port)
                .and_then(|mut c| c.command(&["CLUSTER", "INFO"]))
                .map(|v| v.as_text().unwrap_or_default());
            match info {
                Ok(info) => {
                    let field = |name: &str| {
                        info.lines()
                            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                            .map(str::trim)
                            .unwrap_or("?")
                            .to_owned()
                    };
                    let (state, known) = (field("cluster_state"), field("cluster_known_nodes"));
                    if state != "ok" || known != want {
                        waiting.push(format!(
                            "{}: cluster_state:{state} cluster_known_nodes:{known}",
                            addr(port)
                        ));
                    }
                }
                Err(e) => waiting.push(format!("{}: {e}", addr(port))),
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the cluster did not report cluster_state:ok with {want} known nodes on every \
                 node within {} s: {}",
                CLUSTER_TIMEOUT.as_secs(),
                waiting.join("; ")
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last lines of a node's log, for error messages.
pub(super) fn log_tail(data: &Path, port: u16) -> String {
    let dir = data.join(port.to_string());
    let mut text = String::new();
    for name in ["start.log", "server.log"] {
        if let Ok(log) = std::fs::read_to_string(dir.join(name)) {
            let lines: Vec<&str> = log.lines().collect();
            text.push_str(&lines[lines.len().saturating_sub(3)..].join(" | "));
            text.push(' ');
        }
    }
    if text.trim().is_empty() {
        "(empty)".into()
    } else {
        text.trim().to_owned()
    }
}

/// `n` distinct free loopback ports (never 6379); for cluster nodes each
/// port + 10000 (its cluster bus) is free too, so all are below 55536.
pub(super) fn free_ports(n: usize, cluster: bool) -> Result<Vec<u16>, String> {
    let bind = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port));
    // Every probe stays bound until all are chosen, so none repeats.
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..200 {
        if ports.len() == n {
            return Ok(ports);
        }
        let listener = bind(0).map_err(|e| format!("cannot find a free loopback port: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("cannot find a free loopback port: {e}"))?
            .port();
        held.push(listener);
        if port == 6379 {
            continue;
        }
        if cluster {
            let Some(bus) = port.checked_add(BUS_OFFSET) else {
                continue;
            };
            match bind(bus) {
                Ok(l) => held.push(l),
                Err(_) => continue,
            }
        }
        ports.push(port);
    }
    if ports.len() == n {
        Ok(ports)
    } else {
        Err(format!("cannot find {n} free loopback ports"))
    }
}
