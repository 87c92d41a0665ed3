//! Access to the real ComfyUI that tests run against.
//!
//! The shared instance is started once by `scripts/test` (through `rig/rig.py`) and passed in
//! `COMFYUI_MCP_TEST_URL`. A test that needs it and does not get it fails with instructions: it
//! never skips. Tests that must kill or restart a ComfyUI start a private instance with
//! [`RigInstance::start`].

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// The environment variable that carries the shared rig's URL.
pub const TEST_URL_VARIABLE: &str = "COMFYUI_MCP_TEST_URL";

/// The shared real ComfyUI's URL. Panics (failing the test) when it is not configured.
pub fn comfyui_url() -> String {
    match std::env::var(TEST_URL_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
        _ => panic!(
            "this test needs a real ComfyUI: run `scripts/test` (it installs and starts the rig), or start one with \
             `python3 rig/rig.py start` and export {TEST_URL_VARIABLE}=<its url>"
        ),
    }
}

/// The environment variable naming the ComfyUI version of the shared rig, when the caller knows
/// it (`scripts/test` sets it for each server of its matrix).
pub const TEST_VERSION_VARIABLE: &str = "COMFYUI_MCP_TEST_COMFYUI_VERSION";

/// The ComfyUI versions the rig installs by name (`rig.py install --comfyui VERSION`).
pub const RIG_VERSIONS: &[&str] = &["0.3.75", "0.26.0"];

/// The version the shared rig is expected to run: the one in [`TEST_VERSION_VARIABLE`] if set.
pub fn expected_comfyui_version() -> Option<String> {
    std::env::var(TEST_VERSION_VARIABLE)
        .ok()
        .map(|version| version.trim().to_owned())
        .filter(|version| !version.is_empty())
}

/// Fails the test unless `reported` (a server's `system.comfyui_version`) is the expected
/// version, or, when none is set, one of the [`RIG_VERSIONS`].
pub fn assert_rig_version(reported: &str) {
    match expected_comfyui_version() {
        Some(expected) => assert_eq!(
            reported, expected,
            "the server runs ComfyUI {reported}, but {TEST_VERSION_VARIABLE} says {expected}"
        ),
        None => assert!(
            RIG_VERSIONS.contains(&reported),
            "the server runs ComfyUI {reported}, which is none of the rig's {RIG_VERSIONS:?}"
        ),
    }
}

/// Whether a ComfyUI version is 0.4 or later (0.26 is): the V3-era servers, which check V3 combo
/// values, have `/api/jobs` and send V3 dynamic inputs. `false` for anything unparseable.
pub fn is_current_comfyui(version: &str) -> bool {
    let mut parts = version.trim().trim_start_matches('v').split('.');
    let number = |part: Option<&str>| -> Option<u64> {
        let digits: String = part?.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    match (number(parts.next()), number(parts.next())) {
        (Some(major), Some(minor)) => (major, minor) >= (0, 4),
        _ => false,
    }
}

/// The repository root (two levels above this crate).
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// A private ComfyUI started for one test and stopped when dropped.
#[derive(Debug)]
pub struct RigInstance {
    pub url: String,
    pub port: u16,
    pub pid: u32,
    pub instance_dir: PathBuf,
}

fn run_rig(arguments: &[&str]) -> anyhow::Result<Value> {
    let script = repository_root().join("rig/rig.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(arguments)
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "rig.py {} failed: {}",
            arguments.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("rig.py printed no JSON: {stdout}"))
}

impl RigInstance {
    /// Starts a private instance (tens of seconds). `port` 0 picks a free one.
    pub fn start(port: u16) -> anyhow::Result<RigInstance> {
        let directory =
            std::env::temp_dir().join(format!("comfyui-mcp-rig-{}-{}", std::process::id(), uuid_like()));
        let port_text = port.to_string();
        let mut arguments = vec!["start", "--instance-dir", directory.to_str().unwrap_or_default()];
        if port != 0 {
            arguments.extend(["--port", &port_text]);
        }
        let reply = run_rig(&arguments)?;
        Ok(RigInstance {
            url: reply["url"].as_str().unwrap_or_default().to_owned(),
            port: u16::try_from(reply["port"].as_u64().unwrap_or_default()).unwrap_or_default(),
            pid: u32::try_from(reply["pid"].as_u64().unwrap_or_default()).unwrap_or_default(),
            instance_dir: directory,
        })
    }

    /// Stops the instance (SIGTERM to its process group, then SIGKILL).
    pub fn stop(&self) -> anyhow::Result<()> {
        run_rig(&["stop", "--pid", &self.pid.to_string()]).map(|_| ())
    }
}

impl Drop for RigInstance {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("{nanos:x}")
}
