//! A private ComfyUI for the run when none is given: started, warmed and stopped with the
//! project's `rig/rig.py`. Stopping also happens on drop, so an error part-way through a run
//! never leaves a ComfyUI behind (its directory then stays, for the log).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// `rig/rig.py` in this checkout.
pub fn rig_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rig/rig.py")
}

/// Runs one `rig.py` subcommand; its last stdout line is a JSON object, its logs go to stderr.
fn run_rig(arguments: &[&str]) -> anyhow::Result<Value> {
    let script = rig_script();
    if !script.is_file() {
        bail!(
            "{} is missing: run the bench from the comfyui-mcp checkout, or pass --comfyui-url",
            script.display()
        );
    }
    let output = Command::new("python3")
        .arg(&script)
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run python3 {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last_line = stdout
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_default();
    let answer: Value = serde_json::from_str(last_line)
        .with_context(|| format!("rig.py {} printed no JSON: {stdout:?}", arguments.join(" ")))?;
    if !output.status.success() || answer.get("error").is_some() {
        bail!("rig.py {} failed: {answer}", arguments.join(" "));
    }
    Ok(answer)
}

/// A ComfyUI this bench started; stopped on [`PrivateComfyUi::stop`] or drop.
#[derive(Debug)]
pub struct PrivateComfyUi {
    pub url: String,
    pub process_id: u64,
    /// The fresh directory `rig.py start` made for this instance (outputs, log, database).
    instance_directory: Option<PathBuf>,
    stopped: bool,
}

impl PrivateComfyUi {
    /// Starts an instance (`rig.py start`) and warms torch up (`rig.py warm`).
    pub fn start() -> anyhow::Result<PrivateComfyUi> {
        let started = run_rig(&["start"])?;
        let url = started["url"]
            .as_str()
            .context("rig.py start printed no url")?
            .to_owned();
        let process_id = started["pid"].as_u64().context("rig.py start printed no pid")?;
        let instance = PrivateComfyUi {
            url,
            process_id,
            instance_directory: started["instance_dir"].as_str().map(PathBuf::from),
            stopped: false,
        };
        // From here on, dropping `instance` stops the server, also when warming fails.
        run_rig(&["warm", "--url", &instance.url])?;
        Ok(instance)
    }

    /// Stops the instance (`rig.py stop --pid`); later calls do nothing. Its directory is
    /// removed after a good run and kept (with ComfyUI's log) after a failed one.
    pub fn stop(&mut self, remove_files: bool) -> anyhow::Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        run_rig(&["stop", "--pid", &self.process_id.to_string()])?;
        let Some(directory) = self.instance_directory.take() else {
            return Ok(());
        };
        if !remove_files {
            eprintln!("ComfyUI's files and log are kept in {}", directory.display());
            return Ok(());
        }
        // Only a directory the rig made for this instance, and only once its server is gone.
        if directory.join("rig.json").is_file() {
            std::fs::remove_dir_all(&directory)
                .with_context(|| format!("cannot remove the instance directory {}", directory.display()))?;
        }
        Ok(())
    }
}

impl Drop for PrivateComfyUi {
    fn drop(&mut self) {
        if let Err(error) = self.stop(false) {
            eprintln!(
                "warning: could not stop the private ComfyUI (pid {}): {error:#}",
                self.process_id
            );
        }
    }
}
