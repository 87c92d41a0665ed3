//! Terminal front ends: `generate` (the same engine as the MCP tool, with a progress bar) and
//! `doctor` (checks each backend and says how to fix what is wrong). Human output goes to stderr;
//! stdout carries only machine-readable results.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio_util::sync::CancellationToken;

use comfy_engine::generate::{GenerateRequest, LoraRequest};
use comfy_engine::jobs::WaitOutcome;
use comfy_engine::{Engine, EngineError};

/// Arguments of `comfyui-mcp generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArguments {
    /// What the image should show
    pub prompt: String,
    /// Where to write the image (PNG); with a batch, NAME_2.png... are written too
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub negative: Option<String>,
    #[arg(long)]
    pub steps: Option<i64>,
    #[arg(long)]
    pub width: Option<i64>,
    #[arg(long)]
    pub height: Option<i64>,
    #[arg(long)]
    pub seed: Option<i128>,
    #[arg(long)]
    pub cfg: Option<f64>,
    #[arg(long)]
    pub sampler: Option<String>,
    #[arg(long)]
    pub scheduler: Option<String>,
    #[arg(long)]
    pub denoise: Option<f64>,
    #[arg(long)]
    pub batch_size: Option<i64>,
    /// Checkpoint file (default: the backend's first)
    #[arg(long = "model")]
    pub checkpoint: Option<String>,
    /// LoRA as NAME or NAME:STRENGTH; repeat for several
    #[arg(long = "lora")]
    pub loras: Vec<String>,
    /// Backend name when several are configured
    #[arg(long)]
    pub backend: Option<String>,
    /// Give up after this many seconds (the job is cancelled); 1 to 604800
    #[arg(long, default_value_t = 3600.0, value_parser = parse_timeout)]
    pub timeout: f64,
}

/// Longest `--timeout`: a week.
const MAXIMUM_TIMEOUT_SECONDS: f64 = 7.0 * 86_400.0;

/// Largest image `generate` writes to disk.
const MAXIMUM_SAVED_BYTES: u64 = 1 << 30;

/// `--timeout` as a finite number of seconds in range, refused at the boundary (NaN or 1e20 would
/// otherwise reach `Duration::from_secs_f64`, which panics).
fn parse_timeout(raw: &str) -> Result<f64, String> {
    let seconds: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds: {raw:?}"))?;
    if seconds.is_finite() && (1.0..=MAXIMUM_TIMEOUT_SECONDS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!(
            "must be between 1 and {MAXIMUM_TIMEOUT_SECONDS} seconds, got {raw}"
        ))
    }
}

fn parse_lora(raw: &str) -> anyhow::Result<LoraRequest> {
    match raw.rsplit_once(':') {
        Some((name, strength)) if strength.parse::<f64>().is_ok() => Ok(LoraRequest {
            name: name.to_owned(),
            strength: strength.parse().ok(),
            clip_strength: None,
        }),
        _ if raw.is_empty() => bail!("--lora needs a name"),
        _ => Ok(LoraRequest {
            name: raw.to_owned(),
            strength: None,
            clip_strength: None,
        }),
    }
}

fn draw_bar(percent: f64, message: &str) {
    let width = 30usize;
    let filled = ((percent / 100.0) * width as f64)
        .round()
        .clamp(0.0, width as f64) as usize;
    let mut stderr = std::io::stderr().lock();
    let _ = write!(
        stderr,
        "\r[{}{}] {:>5.1}% {:<40.40}",
        "#".repeat(filled),
        ".".repeat(width - filled),
        percent,
        message
    );
    let _ = stderr.flush();
}

/// Writes `bytes` to `path` atomically: a reader never sees a half-written file.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let directory = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs_err::create_dir_all(directory).with_context(|| format!("cannot create {}", directory.display()))?;
    let temporary = directory.join(format!(
        ".{}.partial-{}",
        path.file_name()
            .map_or_else(|| "output".into(), |name| name.to_string_lossy()),
        std::process::id()
    ));
    fs_err::write(&temporary, bytes).with_context(|| format!("cannot write {}", temporary.display()))?;
    fs_err::rename(&temporary, path)
        .with_context(|| format!("cannot move the image to {}", path.display()))?;
    Ok(())
}

fn numbered(path: &Path, index: usize) -> PathBuf {
    if index == 0 {
        return path.to_owned();
    }
    let stem = path
        .file_stem()
        .map_or_else(|| "output".into(), |stem| stem.to_string_lossy());
    let extension = path.extension().map_or_else(String::new, |extension| {
        format!(".{}", extension.to_string_lossy())
    });
    path.with_file_name(format!("{stem}_{}{extension}", index + 1))
}

/// Runs `generate`; prints the result as JSON on stdout.
pub async fn generate(engine: Arc<Engine>, arguments: GenerateArguments) -> anyhow::Result<()> {
    let loras = arguments
        .loras
        .iter()
        .map(|raw| parse_lora(raw))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let request = GenerateRequest {
        prompt: arguments.prompt.clone(),
        negative_prompt: arguments.negative.clone(),
        width: arguments.width,
        height: arguments.height,
        steps: arguments.steps,
        cfg: arguments.cfg,
        sampler: arguments.sampler.clone(),
        scheduler: arguments.scheduler.clone(),
        seed: arguments.seed,
        denoise: arguments.denoise,
        batch_size: arguments.batch_size,
        checkpoint: arguments.checkpoint.clone(),
        loras,
        filename_prefix: None,
        backend: arguments.backend.clone(),
        ..Default::default()
    };
    let (entry, mut job, parameters) = engine.generate(&request).await.map_err(explain)?;
    eprintln!(
        "queued job {} on {} (checkpoint {}, seed {})",
        job.prompt_id,
        entry.label(),
        parameters.model_name(),
        parameters.seed
    );
    let cancel = CancellationToken::new();
    // Ctrl-C cancels the follow, which cancels the ComfyUI job; the watcher then waits for the
    // follow to say so.
    let watcher = async {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
        std::future::pending::<()>().await;
    };
    let limit = Duration::from_secs_f64(arguments.timeout.clamp(1.0, MAXIMUM_TIMEOUT_SECONDS));
    let follow = engine.follow(
        entry,
        &mut job.subscription,
        limit,
        &cancel,
        |report| async move { draw_bar(report.percent, &report.message) },
    );
    let outcome = tokio::select! {
        outcome = follow => outcome,
        () = watcher => unreachable!("the watcher never ends"),
    };
    eprintln!();
    let snapshot = match outcome.map_err(explain)? {
        WaitOutcome::Finished(snapshot) => snapshot,
        WaitOutcome::StillRunning(snapshot) => {
            let _ = engine.cancel_job(&snapshot.prompt_id).await;
            bail!(
                "job {} did not finish within {:.0} s; it was cancelled",
                snapshot.prompt_id,
                arguments.timeout
            )
        }
        WaitOutcome::Cancelled { snapshot, .. } => bail!("job {} cancelled", snapshot.prompt_id),
    };
    if let Some(failure) = &snapshot.failure {
        bail!(
            "job {} {}: {}{}",
            snapshot.prompt_id,
            snapshot.phase.as_str(),
            failure.message,
            failure
                .node_type
                .as_ref()
                .map(|node| format!(" (in {node})"))
                .unwrap_or_default()
        );
    }
    let images: Vec<_> = snapshot
        .outputs
        .iter()
        .filter(|output| output.media_type().starts_with("image/"))
        .collect();
    if images.is_empty() {
        bail!("job {} finished without an image output", snapshot.prompt_id);
    }
    let mut written = Vec::new();
    for (index, output) in images.iter().enumerate() {
        let bytes = engine
            .download(entry, &output.file, MAXIMUM_SAVED_BYTES)
            .await
            .map_err(explain)?;
        let path = numbered(&arguments.output, index);
        write_atomically(&path, &bytes)?;
        written.push(path.display().to_string());
    }
    let summary = serde_json::json!({
        "job_id": snapshot.prompt_id,
        "files": written,
        "parameters": parameters,
        "run_seconds": snapshot.started_at_ms.zip(snapshot.finished_at_ms).map(|(start, end)| (end - start) as f64 / 1000.0),
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{summary}")?;
    eprintln!("wrote {}", written.join(", "));
    Ok(())
}

fn explain(error: EngineError) -> anyhow::Error {
    let mut text = error.to_string();
    if let EngineError::Invalid { report, .. } = &error {
        for diagnostic in report.errors() {
            text.push_str(&format!(
                "\n  node {} ({}): {}",
                diagnostic.node_id, diagnostic.class_type, diagnostic.message
            ));
            if let Some(suggestion) = &diagnostic.suggestion {
                text.push_str(&format!(" - {suggestion}"));
            }
        }
    }
    anyhow::anyhow!(text)
}

/// Runs `tools`: one JSON object a line for every tool this build declares.
pub fn print_tools() -> std::process::ExitCode {
    let mut stdout = std::io::stdout().lock();
    for tool in crate::mcp::every_tool() {
        let line = serde_json::to_string(&tool).unwrap_or_default();
        if writeln!(stdout, "{line}").is_err() {
            return std::process::ExitCode::FAILURE;
        }
    }
    std::process::ExitCode::SUCCESS
}

/// Runs `doctor`: true when every backend is usable.
pub async fn doctor(engine: Arc<Engine>, settings: &crate::settings::Settings) -> bool {
    let mut healthy = true;
    let mut report = |ok: bool, line: String| {
        healthy &= ok;
        eprintln!("{} {line}", if ok { "ok  " } else { "FAIL" });
    };
    report(
        true,
        format!(
            "configuration: {} backend(s), toolsets {}",
            engine.config.backends.len(),
            settings.toolsets.join(",")
        ),
    );
    for entry in engine.backends() {
        match entry.system_stats().await {
            Ok(stats) => report(
                true,
                format!(
                    "{}: ComfyUI {} (Python {}, PyTorch {}), devices: {}",
                    entry.label(),
                    stats.system.comfyui_version,
                    stats
                        .system
                        .python_version
                        .split_whitespace()
                        .next()
                        .unwrap_or_default(),
                    stats.system.pytorch_version,
                    stats
                        .devices
                        .iter()
                        .map(|device| device.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Err(error) => {
                report(false, format!("{}: {error}", entry.label()));
                eprintln!(
                    "     fix: start ComfyUI (python main.py --listen 127.0.0.1 --port 8188) or set COMFYUI_URL to where it runs"
                );
                continue;
            }
        }
        let connected = entry.wait_connected(Duration::from_secs(5)).await;
        report(
            connected,
            format!(
                "{}: websocket {}",
                entry.name,
                if connected {
                    "connected".to_owned()
                } else {
                    format!("not connected: {}", entry.connection_error().unwrap_or_default())
                }
            ),
        );
        match engine.object_info(entry, true).await {
            Ok(info) => {
                report(true, format!("{}: {} node types", entry.name, info.len()));
                let missing: Vec<&str> = [
                    "CheckpointLoaderSimple",
                    "CLIPTextEncode",
                    "KSampler",
                    "VAEDecode",
                    "SaveImage",
                    "EmptyLatentImage",
                    "LoraLoader",
                ]
                .into_iter()
                .filter(|class| !info.has_node(class))
                .collect();
                report(
                    missing.is_empty(),
                    format!(
                        "{}: core nodes {}",
                        entry.name,
                        if missing.is_empty() {
                            "present".to_owned()
                        } else {
                            format!("missing: {}", missing.join(", "))
                        }
                    ),
                );
                let checkpoints = info
                    .combo_choices("CheckpointLoaderSimple", "ckpt_name")
                    .unwrap_or_default();
                report(
                    !checkpoints.is_empty(),
                    format!(
                        "{}: {} checkpoint(s){}",
                        entry.name,
                        checkpoints.len(),
                        if checkpoints.is_empty() {
                            " - put a model into ComfyUI's models/checkpoints folder".to_owned()
                        } else {
                            String::new()
                        }
                    ),
                );
            }
            Err(error) => report(
                false,
                format!("{}: cannot read node definitions: {error}", entry.name),
            ),
        }
    }
    healthy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lora_arguments() {
        let lora = parse_lora("style.safetensors:0.7").unwrap();
        assert_eq!(
            (lora.name.as_str(), lora.strength),
            ("style.safetensors", Some(0.7))
        );
        let lora = parse_lora("C:weird").unwrap();
        assert_eq!((lora.name.as_str(), lora.strength), ("C:weird", None));
        assert!(parse_lora("").is_err());
    }

    #[test]
    fn refuses_timeouts_that_are_not_a_finite_range() {
        for bad in ["NaN", "nan", "inf", "-inf", "1e20", "0", "-5", "604801", "soon"] {
            assert!(parse_timeout(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(parse_timeout("1"), Ok(1.0));
        assert_eq!(parse_timeout("604800"), Ok(604_800.0));
    }

    #[test]
    fn numbers_batch_outputs() {
        assert_eq!(numbered(Path::new("out/a.png"), 0), PathBuf::from("out/a.png"));
        assert_eq!(numbered(Path::new("out/a.png"), 2), PathBuf::from("out/a_3.png"));
    }
}
