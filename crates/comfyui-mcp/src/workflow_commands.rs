//! Terminal commands for workflows: `convert` (UI -> API prompt on stdout, diagnostics on stderr;
//! `--batch` converts a whole folder), `validate` (diagnostics as JSON on stdout, exit 1 on
//! errors) and `params` (the discovered parameters with their JSON Schemas). They open no database;
//! with `--object-info FILE` they contact no ComfyUI either, otherwise they fetch `/object_info`
//! from the configured backend.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use comfy_workflow::{
    ConvertOptions, Diagnostic, Format, FrontendGeneration, ObjectInfo, ValidationOptions, validate,
};
use serde_json::{Value, json};

use crate::settings::Settings;
use comfy_engine::EngineError;
use comfy_engine::workflows::{
    CheckedWorkflow, LoadedWorkflow, conversion_json, current_time, load_workflow, parameter_options,
    parameters_json, parse_date, parse_workflow_text, validation_json,
};

/// Where node definitions come from.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeDefinitionsArguments {
    /// Read node definitions from this `/object_info` JSON file; no ComfyUI is contacted
    #[arg(long, value_name = "FILE")]
    pub object_info: Option<PathBuf>,
    /// Backend name when several are configured (without --object-info)
    #[arg(long)]
    pub backend: Option<String>,
}

/// Arguments of `comfyui-mcp convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArguments {
    /// The UI workflow file (an API-format file is printed as read)
    #[arg(required_unless_present = "batch", conflicts_with = "batch")]
    pub workflow: Option<PathBuf>,
    /// Convert every UI workflow (*.json) under DIR, recursively, into --out; a JSON file with a
    /// `workflow_file` key (a tests/frontend/record record) stands for the UI workflow it names
    #[arg(long, value_name = "DIR", requires = "out")]
    pub batch: Option<PathBuf>,
    /// With --batch: the folder receiving one {output, diagnostics} JSON per workflow, at the same
    /// relative path
    #[arg(long, value_name = "DIR", requires = "batch")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub definitions: NodeDefinitionsArguments,
    /// Seed of the choices made for {a|b} dynamic prompts
    #[arg(long, default_value_t = 0)]
    pub dynamic_prompt_seed: u64,
    /// Local time for %date:...% placeholders, e.g. 2024-03-05T06:07:08 [default: now, UTC]
    #[arg(long)]
    pub date: Option<String>,
    /// Leave {a|b} dynamic prompts and their comments as written
    #[arg(long)]
    pub keep_dynamic_prompts: bool,
    /// Treat unknown node types exactly as the frontend does when their custom nodes are missing
    /// (no class_type, values collapsed into an UNKNOWN input), for comparisons with it
    #[arg(long)]
    pub frontend_missing_nodes: bool,
    /// Convert as this frontend does: 1.32 (ComfyUI 0.3.x), 1.45 (ComfyUI 0.26) or a frontend
    /// version [default: the one the backend serves, by its version; 1.32 with --object-info]
    #[arg(long, value_name = "VERSION")]
    pub frontend: Option<String>,
}

/// Arguments of `comfyui-mcp validate` and `comfyui-mcp params`.
#[derive(Debug, clap::Args)]
pub struct WorkflowFileArguments {
    /// The workflow file, UI or API format
    pub workflow: PathBuf,
    #[command(flatten)]
    pub definitions: NodeDefinitionsArguments,
}

/// A failure of a workflow command: its message and exit code.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn input_error(message: impl Into<String>) -> CommandError {
    CommandError::Input(message.into())
}

/// Node definitions and the checks of the server they come from.
struct NodeDefinitions {
    info: ObjectInfo,
    /// From the backend's version; a file's definitions get the default checks.
    validation: ValidationOptions,
    /// The frontend generation the backend serves (the oldest for a file's definitions).
    frontend: FrontendGeneration,
}

/// Reads the node definitions from a file, or fetches them (and the version) from the configured
/// backend.
async fn node_definitions(
    arguments: &NodeDefinitionsArguments,
    settings: &Settings,
) -> Result<NodeDefinitions, CommandError> {
    if let Some(path) = &arguments.object_info {
        let text = read_text(path).await?;
        // The text keeps the order of nested inputs, which a parsed value loses; a text the strict
        // reader refuses gets the lenient one, and its precise error when that fails too.
        let info = match ObjectInfo::from_json_text(&text) {
            Ok(info) => info,
            Err(_) => {
                let raw = parse_workflow_text(&text, &path.display().to_string())?;
                if !raw.is_object() {
                    return Err(input_error(format!(
                        "{} is not an /object_info document (a JSON object of node classes)",
                        path.display()
                    )));
                }
                ObjectInfo::from_json(&raw)
            }
        };
        return Ok(NodeDefinitions {
            info,
            validation: ValidationOptions::default(),
            frontend: FrontendGeneration::default(),
        });
    }
    let backend = match &arguments.backend {
        Some(name) => settings
            .engine
            .backends
            .iter()
            .find(|backend| &backend.name == name)
            .ok_or_else(|| input_error(format!("no backend named {name:?}")))?,
        None => settings
            .engine
            .backends
            .first()
            .ok_or_else(|| input_error("no ComfyUI backend is configured"))?,
    };
    let fetched = comfy_engine::definitions::fetch_once(backend).await.map_err(|error| {
        input_error(format!(
            "cannot fetch node definitions: {error}; start ComfyUI, pass --comfyui-url, or use --object-info FILE"
        ))
    })?;
    let frontend = fetched
        .comfyui_version
        .as_deref()
        .and_then(FrontendGeneration::from_comfyui_version)
        .unwrap_or_default();
    Ok(NodeDefinitions {
        frontend,
        validation: fetched.validation_options(),
        info: fetched.info,
    })
}

async fn read_workflow(path: &Path) -> Result<Value, CommandError> {
    let text = read_text(path).await?;
    Ok(parse_workflow_text(&text, &path.display().to_string())?)
}

/// A user's document (a workflow, node definitions): a regular file of at most
/// [`MAXIMUM_DOCUMENT_BYTES`](comfy_engine::local_files::MAXIMUM_DOCUMENT_BYTES), as UTF-8.
async fn read_text(path: &Path) -> Result<String, CommandError> {
    let limit = comfy_engine::local_files::MAXIMUM_DOCUMENT_BYTES;
    let bytes = comfy_engine::local_files::read_bounded(path, limit)
        .await
        .map_err(|error| input_error(error.to_string()))?;
    String::from_utf8(bytes).map_err(|_| input_error(format!("{} is not UTF-8 text", path.display())))
}

/// Writes `value` to stdout, the only place machine-readable results go.
fn print_json(value: &Value) -> Result<(), CommandError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    )
    .and_then(|()| stdout.flush())
    .map_err(|error| input_error(format!("cannot write the result to stdout: {error}")))
}

/// One human line per diagnostic, on stderr.
fn print_diagnostics(origin: &str, diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        let severity = if diagnostic.is_error() { "error" } else { "warning" };
        let mut line = format!(
            "{severity}: {origin}: node {} '{}' ({})",
            diagnostic.node_id, diagnostic.title, diagnostic.class_type
        );
        if let Some(input) = &diagnostic.input {
            line.push_str(&format!(", input {input}"));
        }
        line.push_str(&format!(": {} [{}]", diagnostic.message, diagnostic.code));
        if let Some(suggestion) = &diagnostic.suggestion {
            line.push_str(&format!(" - {suggestion}"));
        }
        eprintln!("{line}");
    }
}

fn exit_code(result: Result<bool, CommandError>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn convert_options(
    arguments: &ConvertArguments,
    detected: FrontendGeneration,
) -> Result<ConvertOptions, CommandError> {
    let now = match &arguments.date {
        Some(date) => parse_date(date)?,
        None => current_time(),
    };
    let frontend = match &arguments.frontend {
        None => detected,
        Some(text) => FrontendGeneration::parse(text).ok_or_else(|| {
            input_error(format!(
                "--frontend {text:?}: give 1.32, 1.45 or a frontend version such as 1.45.19"
            ))
        })?,
    };
    Ok(ConvertOptions {
        now: Some(now),
        resolve_dynamic_prompts: !arguments.keep_dynamic_prompts,
        dynamic_prompt_seed: arguments.dynamic_prompt_seed,
        frontend_missing_nodes: arguments.frontend_missing_nodes,
        frontend,
    })
}

/// `comfyui-mcp convert`: exit 0, 1 when the conversion found errors (the prompt is printed
/// anyway), 2 when the command could not run.
pub async fn convert(arguments: ConvertArguments, settings: &Settings) -> ExitCode {
    exit_code(run_convert(&arguments, settings).await)
}

async fn run_convert(arguments: &ConvertArguments, settings: &Settings) -> Result<bool, CommandError> {
    let definitions = node_definitions(&arguments.definitions, settings).await?;
    let options = convert_options(arguments, definitions.frontend)?;
    let info = definitions.info;
    if let (Some(batch), Some(out)) = (&arguments.batch, &arguments.out) {
        return convert_batch(batch, out, &info, &options).await;
    }
    let Some(path) = &arguments.workflow else {
        return Err(input_error("give a workflow file, or --batch DIR --out DIR"));
    };
    let value = read_workflow(path).await?;
    let loaded = load_workflow(&value, &info, &options)?;
    print_diagnostics(&path.display().to_string(), &loaded.conversion);
    print_json(&loaded.prompt.to_json())?;
    Ok(loaded.conversion_errors().next().is_none())
}

/// Every `*.json` file under `directory`, sorted, as paths relative to it.
fn json_files(directory: &Path) -> Result<Vec<PathBuf>, CommandError> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let folder = directory.join(&relative);
        let entries = fs_err::read_dir(&folder)
            .map_err(|error| input_error(format!("cannot list {}: {error}", folder.display())))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let path = relative.join(&name);
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(path);
            } else if name.to_string_lossy().to_ascii_lowercase().ends_with(".json") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// What one JSON file of a batch directory holds.
enum BatchItem {
    /// A UI workflow to convert.
    Workflow(Value),
    /// A file to leave out, and why.
    Skip(String),
    /// A workflow that should have been converted but could not be read.
    Failed(String),
}

/// Reads one batch file: a UI workflow, or a frontend ground-truth record (`tests/frontend/record`)
/// whose `workflow_file` names the UI workflow.
async fn batch_item(path: &Path) -> BatchItem {
    let value = match read_workflow(path).await {
        Ok(value) => value,
        Err(error) => return BatchItem::Skip(error.to_string()),
    };
    if let Some(referenced) = value.get("workflow_file").and_then(Value::as_str) {
        let referenced = path
            .parent()
            .map_or_else(|| PathBuf::from(referenced), |folder| folder.join(referenced));
        return match read_workflow(&referenced).await {
            Ok(workflow) if comfy_workflow::detect_format(&workflow) == Format::Ui => {
                BatchItem::Workflow(workflow)
            }
            Ok(_) => BatchItem::Failed(format!("{} is not a UI workflow", referenced.display())),
            Err(error) => BatchItem::Failed(error.to_string()),
        };
    }
    if comfy_workflow::detect_format(&value) == Format::Ui {
        BatchItem::Workflow(value)
    } else {
        BatchItem::Skip("not a UI workflow".to_owned())
    }
}

fn write_record(target: &Path, record: &Value) -> Result<(), CommandError> {
    if let Some(parent) = target.parent() {
        fs_err::create_dir_all(parent)
            .map_err(|error| input_error(format!("cannot create {}: {error}", parent.display())))?;
    }
    let text = serde_json::to_string_pretty(record).unwrap_or_default() + "\n";
    fs_err::write(target, text)
        .map_err(|error| input_error(format!("cannot write {}: {error}", target.display())))
}

/// Converts every UI workflow under `directory` into `out`: one `{source, format, output,
/// diagnostics}` file per workflow at the same relative path (`{source, error}` when the workflow
/// a record names cannot be read). Other JSON files are listed as skipped. Prints a JSON summary;
/// false when a conversion found errors or a workflow could not be read.
async fn convert_batch(
    directory: &Path,
    out: &Path,
    info: &ObjectInfo,
    options: &ConvertOptions,
) -> Result<bool, CommandError> {
    let files = json_files(directory)?;
    let mut converted = 0usize;
    let mut with_errors = Vec::new();
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    for relative in &files {
        let shown = relative.display().to_string();
        let target = out.join(relative);
        match batch_item(&directory.join(relative)).await {
            BatchItem::Skip(reason) => skipped.push(json!({"file": shown, "reason": reason})),
            BatchItem::Failed(reason) => {
                write_record(&target, &json!({"source": shown, "error": reason}))?;
                failed.push(json!({"file": shown, "reason": reason}));
            }
            BatchItem::Workflow(value) => {
                let loaded: LoadedWorkflow = load_workflow(&value, info, options)?;
                let mut record = conversion_json(&loaded);
                record["source"] = json!(shown);
                record["output"] = loaded.prompt.to_json();
                write_record(&target, &record)?;
                converted += 1;
                if loaded.conversion_errors().next().is_some() {
                    with_errors.push(shown);
                }
            }
        }
    }
    print_json(&json!({
        "converted": converted,
        "with_errors": with_errors,
        "failed": failed,
        "skipped": skipped,
        "out": out.display().to_string(),
    }))?;
    Ok(with_errors.is_empty() && failed.is_empty())
}

/// `comfyui-mcp validate`: exit 0 when nothing is wrong, 1 on any error diagnostic, 2 when the
/// command could not run.
pub async fn validate_command(arguments: WorkflowFileArguments, settings: &Settings) -> ExitCode {
    exit_code(run_validate(&arguments, settings).await)
}

async fn run_validate(arguments: &WorkflowFileArguments, settings: &Settings) -> Result<bool, CommandError> {
    let NodeDefinitions {
        info,
        validation,
        frontend,
    } = node_definitions(&arguments.definitions, settings).await?;
    let value = read_workflow(&arguments.workflow).await?;
    let options = ConvertOptions {
        now: Some(current_time()),
        frontend,
        ..ConvertOptions::default()
    };
    let loaded = load_workflow(&value, &info, &options)?;
    let report = validate(&loaded.prompt, &info, &validation);
    let checked = CheckedWorkflow {
        format: loaded.format,
        conversion: loaded.conversion,
        report,
    };
    print_json(&validation_json(&checked))?;
    Ok(!checked.has_errors())
}

/// `comfyui-mcp params`: exit 0, or 2 when the command could not run.
pub async fn params(arguments: WorkflowFileArguments, settings: &Settings) -> ExitCode {
    exit_code(run_params(&arguments, settings).await)
}

async fn run_params(arguments: &WorkflowFileArguments, settings: &Settings) -> Result<bool, CommandError> {
    let info = node_definitions(&arguments.definitions, settings).await?.info;
    let value = read_workflow(&arguments.workflow).await?;
    let loaded = load_workflow(&value, &info, &parameter_options())?;
    print_diagnostics(&arguments.workflow.display().to_string(), &loaded.conversion);
    print_json(&parameters_json(&loaded, &info))?;
    Ok(true)
}
