//! `comfyui-mcp`: lets AI agents drive ComfyUI servers over MCP (stdio or Streamable HTTP), with
//! the same engine available from the terminal (`generate`, `doctor`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use comfy_engine as engine;
use comfyui_mcp::settings::{self, CommandLineSettings, Settings};
use comfyui_mcp::{audit_commands, cli, serve, workflow_commands};

#[derive(Debug, Parser)]
#[command(
    name = "comfyui-mcp",
    version,
    about = "MCP server that lets AI agents drive ComfyUI"
)]
struct CommandLine {
    #[command(flatten)]
    settings: CommandLineSettings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP over stdio (default) or Streamable HTTP
    Serve {
        /// Serve Streamable HTTP at http://ADDRESS/mcp instead of stdio (e.g. 127.0.0.1:8000)
        #[arg(long, value_name = "ADDRESS")]
        http: Option<String>,
    },
    /// Generate an image from the terminal, with a progress bar
    Generate(cli::GenerateArguments),
    /// Check the configured ComfyUI backend(s) and say how to fix what is wrong
    Doctor,
    /// Convert a UI workflow to the API prompt ComfyUI queues (JSON on stdout, findings on stderr)
    Convert(workflow_commands::ConvertArguments),
    /// Validate a workflow (UI or API format): diagnostics as JSON on stdout, exit 1 on errors
    Validate(workflow_commands::WorkflowFileArguments),
    /// The parameters of a workflow (prompt, seed, steps...) with their JSON Schemas
    Params(workflow_commands::WorkflowFileArguments),
    /// Delete audit-log entries older than a time (an operator's act: no MCP tool can do it)
    AuditPrune(audit_commands::AuditPruneArguments),
    /// Every tool this build has, with its toolset and hints, as JSON lines (no backend needed)
    Tools,
}

/// Library targets whose debug and trace events print whole MCP messages: tool arguments and
/// results, share passwords and one-time access codes among them. (hyper and axum log sizes and
/// states, not content.)
const MESSAGE_LOGGING_TARGETS: &[&str] = &["rmcp"];

fn init_logging(default_filter: &str) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_env(settings::env::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let log_protocol = std::env::var(settings::env::LOG_PROTOCOL)
        .is_ok_and(|value| matches!(value.trim(), "1" | "true" | "yes" | "on"));
    // Checked after the user's filter, so no `COMFYUI_MCP_LOG` (not even `rmcp::service=trace`)
    // can let message content through; only the deliberately named opt-in does.
    let content_guard =
        tracing_subscriber::filter::filter_fn(move |metadata| log_protocol || !prints_messages(metadata));
    // stdout belongs to the MCP protocol in stdio mode: every log line goes to stderr.
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter(filter)
        .with_filter(content_guard);
    tracing_subscriber::registry().with(output).init();
    if log_protocol {
        tracing::warn!(
            "{} is on: debug logs show whole MCP messages, passwords and access codes included",
            settings::env::LOG_PROTOCOL
        );
    }
}

fn prints_messages(metadata: &tracing::Metadata<'_>) -> bool {
    *metadata.level() > tracing::Level::INFO
        && MESSAGE_LOGGING_TARGETS.iter().any(|library| {
            metadata
                .target()
                .strip_prefix(library)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

fn main() -> ExitCode {
    let command_line = CommandLine::parse();
    let command = command_line.command.unwrap_or(Command::Serve { http: None });
    init_logging(match command {
        Command::Serve { .. } => "info",
        _ => "warn",
    });
    let settings = match Settings::load(&command_line.settings) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Workflow commands need neither the database nor the backend actors.
    let command = match command {
        Command::Convert(arguments) => {
            return runtime.block_on(workflow_commands::convert(arguments, &settings));
        }
        Command::Validate(arguments) => {
            return runtime.block_on(workflow_commands::validate_command(arguments, &settings));
        }
        Command::Params(arguments) => {
            return runtime.block_on(workflow_commands::params(arguments, &settings));
        }
        Command::Tools => return cli::print_tools(),
        Command::AuditPrune(arguments) => {
            return runtime.block_on(audit_commands::prune(arguments, &settings));
        }
        other => other,
    };
    if let Err(message) = comfyui_mcp::mcp::check_tool_choices(&settings) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let settings = std::sync::Arc::new(settings);
    runtime.block_on(async move {
        let engine = match engine::Engine::start(settings.engine.clone()).await {
            Ok(engine) => engine,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        };
        let result = match command {
            Command::Serve { http: None } => serve::stdio(engine.clone(), settings.clone()).await,
            Command::Serve { http: Some(address) } => match settings::parse_listen_address(&address) {
                Ok(address) => serve::http(engine.clone(), settings.clone(), address).await,
                Err(error) => Err(error.into()),
            },
            Command::Generate(arguments) => cli::generate(engine.clone(), arguments).await,
            Command::Doctor => {
                let healthy = cli::doctor(engine.clone(), &settings).await;
                engine.shutdown().await;
                return if healthy {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                };
            }
            // Answered above, before the engine started.
            Command::Convert(_)
            | Command::Validate(_)
            | Command::Params(_)
            | Command::AuditPrune(_)
            | Command::Tools => Ok(()),
        };
        engine.shutdown().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        }
    })
}
