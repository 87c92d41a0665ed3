//! `comfyui-mcp-bench`: measures in one run, side by side, what the MCP layer costs: spawn to a
//! completed `initialize`, the size of `tools/list`, the server's memory, and a txt2img job through
//! `generate_image` against the same graph posted straight to ComfyUI. It prints a table (and a
//! Markdown one with `--markdown`) with the targets beside the figures. A missed target is a
//! finding, not a failure: the exit code is 0 whenever the measurements could be taken.
//!
//! Run it with `cargo run --release -p bench -- [--comfyui-url URL] [--runs N] [--markdown]`.

mod direct;
mod measure;
mod probe;
mod report;
mod rig;
mod server;
mod statistics;
mod summary;
mod workload;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Parser;

use crate::measure::Plan;
use crate::rig::PrivateComfyUi;
use crate::server::ServerCommand;
use crate::summary::Conditions;

#[derive(Debug, Parser)]
#[command(
    name = "comfyui-mcp-bench",
    about = "Measures comfyui-mcp against the same work sent straight to ComfyUI"
)]
struct Arguments {
    /// ComfyUI to measure against; without it, a private one is started with rig/rig.py
    #[arg(long, env = "COMFYUI_URL")]
    comfyui_url: Option<String>,
    /// Measured server spawns, and measured txt2img pairs
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    runs: u16,
    /// Unmeasured txt2img pairs first (model load, the server's node-definition cache)
    #[arg(long, default_value_t = 2)]
    warmup_runs: u16,
    /// Also print the tables in Markdown, ready for the README
    #[arg(long)]
    markdown: bool,
    /// The server binary [default: comfyui-mcp next to this binary, i.e. target/release]
    #[arg(long)]
    server_binary: Option<PathBuf>,
}

fn server_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let binary = match given {
        Some(binary) => binary,
        None => std::env::current_exe()
            .context("cannot locate this binary")?
            .with_file_name("comfyui-mcp"),
    };
    if !binary.is_file() {
        bail!(
            "the server binary {} does not exist; build it with `cargo build --release -p bench -p comfyui-mcp`",
            binary.display()
        );
    }
    Ok(binary)
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn run(arguments: Arguments) -> anyhow::Result<()> {
    let binary = server_binary(arguments.server_binary)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let load_before = load_average();

    let mut private = None;
    let (comfyui_url, comfyui_origin) = match arguments.comfyui_url {
        Some(urls) => {
            // COMFYUI_URL may list several backends for the server; the bench needs one.
            let url = urls.split(',').next().unwrap_or_default().trim().to_owned();
            if url.is_empty() {
                bail!("the ComfyUI URL is empty");
            }
            (
                url,
                "given; started elsewhere, so its OMP_NUM_THREADS is unknown here".to_owned(),
            )
        }
        None => {
            eprintln!("starting and warming a private ComfyUI with rig/rig.py (this takes a while)");
            let instance = PrivateComfyUi::start()?;
            let url = instance.url.clone();
            private = Some(instance);
            let threads = std::env::var("OMP_NUM_THREADS").unwrap_or_else(|_| "1".to_owned());
            (
                url,
                format!("private rig instance, warmed with rig.py warm, OMP_NUM_THREADS={threads}"),
            )
        }
    };

    // A fresh job database for this run, so the user's own is neither touched nor measured.
    let scratch = std::env::temp_dir().join(format!("comfyui-mcp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    let server = ServerCommand {
        binary: binary.clone(),
        comfyui_url: comfyui_url.clone(),
        database: scratch.join("comfyui-mcp.sqlite3"),
        cache_dir: Some(scratch.join("cache")),
    };
    let plan = Plan {
        runs: usize::from(arguments.runs),
        warmup_pairs: usize::from(arguments.warmup_runs),
    };
    let measured = runtime.block_on(async {
        tokio::select! {
            measured = measure::run(&server, &comfyui_url, plan) => measured,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // Server sessions are gone with the runtime's tasks; stop ComfyUI before reporting.
    drop(runtime);
    if let Err(error) = std::fs::remove_dir_all(&scratch) {
        eprintln!("warning: could not remove {}: {error}", scratch.display());
    }
    if let Some(mut instance) = private.take()
        && let Err(error) = instance.stop(measured.is_ok())
    {
        eprintln!("warning: could not stop the private ComfyUI: {error:#}");
    }
    let measurements = measured?;

    let conditions = Conditions {
        comfyui_url,
        comfyui_origin,
        server_binary: binary.display().to_string(),
        processors: std::thread::available_parallelism().map_or(0, usize::from),
        load_before,
        load_after: load_average(),
    };
    let summary = summary::summarize(&measurements, &conditions);
    let mut output = std::io::stdout().lock();
    writeln!(output, "{}", summary.plain()).context("cannot write to stdout")?;
    if arguments.markdown {
        writeln!(output, "{}", summary.markdown()).context("cannot write to stdout")?;
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
