//! `comfyui-mcp-convert-bench`: how fast UI -> API conversion and local validation run over whole
//! template corpora in one process, the way `comfyui-mcp convert --batch` and a busy server use
//! them. Files are read and parsed before the clock starts: what is timed is conversion plus
//! validation of every workflow, repeated, and reported as the median pass.
//!
//! `comfyui-mcp-convert-bench --object-info FILE --corpus NAME=DIR [--corpus NAME=DIR] [--repeat N]`

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use comfy_workflow::{ConvertOptions, FrontendGeneration, ObjectInfo, ValidationOptions};
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(
    name = "comfyui-mcp-convert-bench",
    about = "Times UI -> API conversion and validation over workflow corpora"
)]
struct Arguments {
    /// The backend's node definitions (`GET /object_info` saved as a file)
    #[arg(long)]
    object_info: PathBuf,
    /// A corpus: a name and a folder of UI workflows (searched recursively); repeat for several
    #[arg(long, value_name = "NAME=DIR", required = true)]
    corpus: Vec<String>,
    /// Timed passes over each corpus; the median is reported
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    repeat: u16,
    /// The frontend generation to convert as: 1.32 (ComfyUI 0.3.x) or 1.45 (ComfyUI 0.26)
    #[arg(long, default_value = "1.32")]
    frontend: String,
}

/// Every `.json` file under `folder` that reads as a UI workflow (an object with `nodes`).
fn ui_workflows(folder: &Path) -> anyhow::Result<Vec<Value>> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let entries =
            std::fs::read_dir(&directory).with_context(|| format!("cannot read {}", directory.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "json") {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if let Ok(value) = serde_json::from_str::<Value>(&text)
                    && value.get("nodes").is_some_and(Value::is_array)
                {
                    found.push(value);
                }
            }
        }
    }
    Ok(found)
}

/// One timed pass: every workflow converted and its prompt validated. Answers the time and how
/// many conversions reported errors.
fn pass(
    workflows: &[Value],
    info: &ObjectInfo,
    frontend: FrontendGeneration,
    validation: &ValidationOptions,
) -> (Duration, usize) {
    let options = ConvertOptions::default();
    let started = Instant::now();
    let mut with_errors = 0;
    for workflow in workflows {
        let conversion = comfy_workflow::ui_to_api_for(workflow, info, &options, frontend);
        let report = comfy_workflow::validate(&conversion.prompt, info, validation);
        if report.has_errors() {
            with_errors += 1;
        }
    }
    (started.elapsed(), with_errors)
}

fn run(arguments: Arguments) -> anyhow::Result<()> {
    let frontend = match arguments.frontend.as_str() {
        "1.32" => FrontendGeneration::V1_32,
        "1.45" => FrontendGeneration::V1_45,
        other => bail!("--frontend {other:?}: use 1.32 or 1.45"),
    };
    let text = std::fs::read_to_string(&arguments.object_info)
        .with_context(|| format!("cannot read {}", arguments.object_info.display()))?;
    let parse_started = Instant::now();
    let info = ObjectInfo::from_json_text(&text).context("the node definitions are not JSON")?;
    let parse_time = parse_started.elapsed();
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "node definitions: {} classes, parsed in {:.1} ms",
        info.len(),
        parse_time.as_secs_f64() * 1000.0
    )?;
    let validation = ValidationOptions::default();
    for corpus in &arguments.corpus {
        let (name, folder) = corpus
            .split_once('=')
            .with_context(|| format!("--corpus {corpus:?}: write NAME=DIR"))?;
        let workflows = ui_workflows(Path::new(folder))?;
        let mut times = Vec::new();
        let mut with_errors = 0;
        for _ in 0..arguments.repeat {
            let (time, errors) = pass(&workflows, &info, frontend, &validation);
            times.push(time);
            with_errors = errors;
        }
        times.sort();
        let median = times[times.len() / 2];
        writeln!(
            stdout,
            "{name}: {} UI workflows converted and validated in {:.0} ms (median of {} passes; fastest {:.0} ms); {} with validation errors",
            workflows.len(),
            median.as_secs_f64() * 1000.0,
            times.len(),
            times[0].as_secs_f64() * 1000.0,
            with_errors
        )?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Arguments::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
