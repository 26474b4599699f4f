//! The process-group watchdog of one `--exec` command.
//!
//! The command runs in a process group of its own, so everything it starts
//! (pipelines, `cmd &`, subshells) can be signalled at once. Killing only
//! the `sh` would leave its children running after a cancel, a lost lease
//! or a shutdown, while another worker may already run the same execution.
//!
//! The group is watched by a small `sh` started next to the command, in a
//! process group of its own (so a terminal's Ctrl-C reaches neither the
//! command nor the watchdog; the worker's own shutdown decides). The
//! watchdog reads one line from a pipe whose only writer is the worker:
//! - `done` (the command ended by itself): it exits and touches nothing;
//! - end of file without `done` (the command was stopped, or the worker
//!   ended, even by SIGKILL, since the kernel closes the pipe of a dead
//!   process): it sends SIGTERM to the group, and SIGKILL to whatever is
//!   left after [`KILL_GRACE`].
//!
//! This needs no `unsafe` (no `prctl(PR_SET_PDEATHSIG)` in a `pre_exec`)
//! and no dependency. What it cannot cover: a worker killed in the instant
//! between starting the command and starting its watchdog, and a command
//! that leaves its process group on purpose (`setsid`).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, Command};

/// How long the group has between SIGTERM and SIGKILL.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(5);

/// `$1` is the group id, `$2` the grace in tenths of a second. `kill -SIG
/// -PGID` (no `--`, no `-s`) is the form both dash and bash accept.
const SCRIPT: &str = r#"read -r line
[ "$line" = done ] && exit 0
kill -TERM "-$1" 2>/dev/null || exit 0
i=0
while [ "$i" -lt "$2" ]; do
    sleep 0.1 2>/dev/null || sleep 1
    kill -0 "-$1" 2>/dev/null || exit 0
    i=$((i + 1))
done
kill -KILL "-$1" 2>/dev/null
exit 0
"#;

/// Kills process group `pgid` when dropped, unless [`disarm`](Self::disarm)ed.
pub(crate) struct GroupWatchdog {
    pgid: u32,
    line: Option<ChildStdin>,
}

impl GroupWatchdog {
    /// Starts the watchdog of process group `pgid` (the id of the command's
    /// `sh`, which leads the group). If it cannot start, the group is killed
    /// at once, since nothing would stop it later.
    pub(crate) fn start(pgid: u32) -> std::io::Result<Self> {
        let tenths = KILL_GRACE.as_millis() / 100;
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("baton-watchdog")
            .arg(pgid.to_string())
            .arg(tenths.to_string())
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // The watchdog must outlive this handle (and this process);
            // Tokio reaps it once it exits.
            .kill_on_drop(false)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                kill_group_now(pgid);
                return Err(e);
            }
        };
        let line = child.stdin.take();
        Ok(GroupWatchdog { pgid, line })
    }

    /// The command ended by itself: the watchdog exits without signalling.
    pub(crate) async fn disarm(mut self) {
        if let Some(mut line) = self.line.take() {
            // If the watchdog is gone, there is nobody left to tell.
            let _ = line.write_all(b"done\n").await;
        }
    }
}

impl Drop for GroupWatchdog {
    fn drop(&mut self) {
        if self.line.take().is_some() {
            tracing::debug!(pgid = self.pgid, "stopping the command's process group");
        }
    }
}

/// SIGKILL to the whole group, best effort.
fn kill_group_now(pgid: u32) {
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"kill -KILL "-$1""#)
        .arg("baton-kill")
        .arg(pgid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
