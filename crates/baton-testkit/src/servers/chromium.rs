//! Finding a headless Chromium for the dashboard's browser tests.
//!
//! Not a server: the tests start their own browser (one per test, on a
//! pipe, see `crates/baton/tests/dashboard/cdp.rs`); this only finds the
//! binary, checks it runs, and fails or skips like the servers when there
//! is none.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::redis_binaries::on_path;

/// The environment variable naming the Chromium binary to use.
pub const CHROMIUM_VAR: &str = "BATON_TEST_CHROMIUM";

/// Where Debian's `chromium-headless-shell` package puts the real binary
/// (`/usr/bin/chromium-headless-shell` is a shell script that runs it
/// without `exec`).
pub const DEBIAN_HEADLESS_SHELL: &str = "/usr/lib/chromium/chromium-headless-shell";

/// What `scripts/test` installs when no Chromium is found.
const INSTALL_HINT: &str = "apt-get install chromium-headless-shell fonts-dejavu-core \
     (scripts/test does it), or set BATON_TEST_CHROMIUM to a Chromium binary";

/// A Chromium binary and the version it reports.
#[derive(Clone, Debug)]
pub struct Chromium {
    /// The binary to start.
    pub path: PathBuf,
    /// What `--version` printed, e.g. `Chromium 156.0.8078.129`.
    pub version: String,
}

static FOUND: OnceLock<Result<Chromium, String>> = OnceLock::new();

/// The Chromium the browser tests use, looked up once per test process.
///
/// When there is none: under CI ([`in_ci`](super::in_ci)) this panics with
/// the reason and how to install it, failing the test; elsewhere it prints
/// a loud `SKIPPED:` notice (see [`note_skip`](super::note_skip)) and
/// answers `None`, and the caller skips its test.
pub fn chromium() -> Option<&'static Chromium> {
    match FOUND.get_or_init(find_chromium) {
        Ok(found) => Some(found),
        Err(reason) if super::in_ci() => panic!(
            "no Chromium for the browser tests (CI is set, so this fails instead of \
             skipping): {reason}\nTo fix: {INSTALL_HINT}."
        ),
        Err(reason) => {
            super::note_skip(&format!(
                "a browser test needing Chromium: {reason}\n!!! To run it: {INSTALL_HINT}."
            ));
            None
        }
    }
}

/// Looks for Chromium, in this order: [`CHROMIUM_VAR`] (which must work
/// when set), `chromium-headless-shell` on `PATH`, [`DEBIAN_HEADLESS_SHELL`],
/// then `chromium` on `PATH`; the first that answers `--version` wins.
pub fn find_chromium() -> Result<Chromium, String> {
    if let Some(path) = std::env::var_os(CHROMIUM_VAR).filter(|p| !p.is_empty()) {
        return check(Path::new(&path)).map_err(|e| format!("{CHROMIUM_VAR}: {e}"));
    }
    let mut candidates = on_path("chromium-headless-shell");
    candidates.push(PathBuf::from(DEBIAN_HEADLESS_SHELL));
    candidates.extend(on_path("chromium"));
    let mut problems = Vec::new();
    for path in candidates.into_iter().filter(|p| p.is_file()) {
        match check(&path) {
            Ok(found) => return Ok(found),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Err(format!(
            "no Chromium found via {CHROMIUM_VAR}, chromium-headless-shell on PATH, \
             {DEBIAN_HEADLESS_SHELL} or chromium on PATH"
        ))
    } else {
        Err(problems.join("; "))
    }
}

/// Runs `<path> --version` and expects `Chromium <version>` (or
/// `Google Chrome …`, `HeadlessChrome …`) with a zero exit.
fn check(path: &Path) -> Result<Chromium, String> {
    let output = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.lines().map(str::trim).find(|l| {
        l.split_whitespace()
            .any(|w| w.split('.').count() == 4 && w.split('.').all(is_number))
    });
    match version {
        Some(version) if output.status.success() => Ok(Chromium {
            path: path.to_owned(),
            version: version.to_owned(),
        }),
        _ => Err(format!(
            "{} --version did not report a Chromium version ({}: {:?})",
            path.display(),
            output.status,
            text.trim()
        )),
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_without_a_version_is_refused_with_its_output() {
        // `true` runs and prints nothing: no version, so not a Chromium.
        let err = check(Path::new("/bin/true")).unwrap_err();
        assert!(err.contains("did not report a Chromium version"), "{err}");
        let err = check(Path::new("/nonexistent/chromium")).unwrap_err();
        assert!(err.contains("cannot run"), "{err}");
    }
}
