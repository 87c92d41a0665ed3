//! Workflow tools of the `workflows` toolset: `convert_workflow` (UI -> API with every conversion
//! finding), `validate_workflow` (structured diagnostics, outcome, queued outputs) and
//! `workflow_parameters` (the knobs with JSON Schemas). Also saved workflows as tools: with a
//! workflows directory configured, each `*.json` in it is a tool `workflow_<name>` whose arguments
//! are its discovered parameters, run exactly like `run_workflow`; connected clients are told
//! (`notifications/tools/list_changed`) when the directory changes.

use std::sync::Arc;

use comfy_workflow::{ConvertOptions, Format};
use rmcp::RoleServer;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::render::{engine_error, error_text, json_result};
use super::server::ComfyServer;
use super::tool::{Hints, ToolDeclaration, ToolOutcome, declare_tool, follow_job, job_answer, wait_limit};
use comfy_engine::workflows::{
    SavedWorkflow, TOOL_PREFIX, WorkflowSource, conversion_json, current_time, diagnostics_json, format_name,
    parameter_options, parameters_json, parse_date, parse_workflow_text, validation_json,
};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConvertWorkflowArguments {
    /// The workflow JSON: UI format (as ComfyUI's "Save" writes it, with nodes and links) or API
    /// format. Give exactly one of workflow, path, name.
    workflow: Option<Value>,
    /// A workflow file on the machine running this server (only where local files are allowed).
    path: Option<String>,
    /// A workflow of the server's workflows directory: file name, stem or tool name.
    name: Option<String>,
    /// Seed of the choices made for {a|b} dynamic prompts (default 0).
    dynamic_prompt_seed: Option<u64>,
    /// Local time for %date:...% placeholders, e.g. 2024-03-05T06:07:08 (default: now, UTC).
    date: Option<String>,
    /// Backend whose node definitions are used when several are configured.
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ValidateWorkflowArguments {
    /// The workflow JSON, UI or API format. Give exactly one of workflow, path, name.
    workflow: Option<Value>,
    /// A workflow file on the machine running this server (only where local files are allowed).
    path: Option<String>,
    /// A workflow of the server's workflows directory: file name, stem or tool name.
    name: Option<String>,
    /// Overrides to check too, keyed by parameter name (prompt, seed, steps...) or NODE_ID.INPUT.
    #[serde(default)]
    overrides: Map<String, Value>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WorkflowParametersArguments {
    /// The workflow JSON, UI or API format. Give exactly one of workflow, path, name.
    workflow: Option<Value>,
    /// A workflow file on the machine running this server (only where local files are allowed).
    path: Option<String>,
    /// A workflow of the server's workflows directory: file name, stem or tool name.
    name: Option<String>,
    backend: Option<String>,
}

/// This toolset's tools, each declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[
    declare_tool!(
        "convert_workflow",
        "Convert a UI-format workflow to the API format ComfyUI queues, as the ComfyUI frontend does (widgets, primitives, reroutes, bypassed and muted nodes, subgraphs), with every finding of the conversion.",
        Hints::READ_ONLY,
        ConvertWorkflowArguments,
        convert_workflow,
    ),
    declare_tool!(
        "validate_workflow",
        "Check a workflow (UI or API format) against the backend's node definitions without queuing it: outcome valid/partial/rejected, the outputs that would run, and diagnostics naming node, input, code and a suggestion.",
        Hints::READ_ONLY,
        ValidateWorkflowArguments,
        validate_workflow,
    ),
    declare_tool!(
        "workflow_parameters",
        "The knobs of a workflow (UI or API format) by role: prompt, negative_prompt, seed, steps, cfg, size, models, images..., each with a JSON Schema and its current value as default; run_workflow accepts these names as overrides.",
        Hints::READ_ONLY,
        WorkflowParametersArguments,
        workflow_parameters,
    ),
];

/// Exactly one of inline JSON (an object, or a string holding one), a path or a name.
fn workflow_source(
    workflow: Option<Value>,
    path: Option<String>,
    name: Option<String>,
) -> Result<WorkflowSource, CallToolResult> {
    match (workflow, path, name) {
        (Some(Value::String(text)), None, None) => parse_workflow_text(&text, "workflow")
            .map(WorkflowSource::Inline)
            .map_err(|error| engine_error(&error)),
        (Some(value), None, None) => Ok(WorkflowSource::Inline(value)),
        (None, Some(path), None) => Ok(WorkflowSource::File(path.into())),
        (None, None, Some(name)) => Ok(WorkflowSource::Named(name)),
        _ => Err(error_text(
            "give exactly one of workflow (the JSON), path (a file) or name (from the workflows directory)",
        )),
    }
}

async fn read_source(server: &ComfyServer, source: &WorkflowSource) -> Result<Value, CallToolResult> {
    let allow_local = server.local_files_allowed();
    server
        .engine
        .read_workflow(source, allow_local)
        .await
        .map_err(|error| engine_error(&error))
}

async fn convert_workflow(
    server: &ComfyServer,
    arguments: ConvertWorkflowArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let source = workflow_source(arguments.workflow, arguments.path, arguments.name)?;
    let now = match &arguments.date {
        Some(date) => parse_date(date).map_err(|error| engine_error(&error))?,
        None => current_time(),
    };
    let options = ConvertOptions {
        now: Some(now),
        resolve_dynamic_prompts: true,
        dynamic_prompt_seed: arguments.dynamic_prompt_seed.unwrap_or(0),
        ..ConvertOptions::default()
    };
    let value = read_source(server, &source).await?;
    let prepared = server
        .engine
        .prepare_workflow(&value, arguments.backend.as_deref(), &options)
        .await
        .map_err(|error| engine_error(&error))?;
    let mut result = conversion_json(&prepared.loaded);
    result["backend"] = json!(prepared.entry.name);
    if prepared.loaded.format == Format::Api {
        result["note"] = json!("the workflow is already in API format; it is returned as read");
    }
    result["prompt"] = prepared.loaded.prompt.to_json();
    Ok(json_result(&result))
}

async fn validate_workflow(
    server: &ComfyServer,
    arguments: ValidateWorkflowArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let source = workflow_source(arguments.workflow, arguments.path, arguments.name)?;
    let value = read_source(server, &source).await?;
    let checked = server
        .engine
        .check_workflow(&value, &arguments.overrides, arguments.backend.as_deref())
        .await
        .map_err(|error| engine_error(&error))?;
    Ok(json_result(&validation_json(&checked)))
}

async fn workflow_parameters(
    server: &ComfyServer,
    arguments: WorkflowParametersArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let source = workflow_source(arguments.workflow, arguments.path, arguments.name)?;
    let value = read_source(server, &source).await?;
    let prepared = server
        .engine
        .prepare_workflow(&value, arguments.backend.as_deref(), &parameter_options())
        .await
        .map_err(|error| engine_error(&error))?;
    let mut result = parameters_json(&prepared.loaded, &prepared.info);
    result["use"] = json!("pass these names (or \"NODE_ID.INPUT\") as run_workflow overrides");
    Ok(json_result(&result))
}

/// Runs `workflow` like `run_workflow`: queued after validation, followed with progress for at
/// most `wait_seconds`, rendered with previews; conversion warnings and partial queues are noted.
pub async fn run_and_report(
    server: &ComfyServer,
    label: &str,
    workflow: &Value,
    overrides: &Map<String, Value>,
    wait_seconds: Option<f64>,
    backend: Option<&str>,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let engine = &server.engine;
    let limit = wait_limit(server, wait_seconds, engine.config.wait)?;
    let started = engine
        .run_workflow_as(label, workflow, overrides, backend)
        .await
        .map_err(|error| engine_error(&error))?;
    let (entry, mut job) = (started.entry, started.job);
    let outcome = follow_job(server, entry, &mut job.subscription, &limit, &context.ct, context)
        .await
        .map_err(|error| engine_error(&error))?;
    let mut result = job_answer(server, entry, &outcome, None).await;
    if !job.accepted.node_errors.is_empty() {
        let partial = format!(
            "ComfyUI queued only part of the workflow; node errors: {}",
            serde_json::to_string(&job.accepted.node_errors).unwrap_or_default()
        );
        result.content.push(ContentBlock::text(partial));
    }
    if !started.conversion.is_empty() {
        let notes = json!({
            "conversion_warnings": diagnostics_json("conversion", &started.conversion),
        });
        result.content.push(ContentBlock::text(
            serde_json::to_string_pretty(&notes).unwrap_or_default(),
        ));
    }
    Ok(result)
}

/// The tool of one saved workflow: its parameters (plus `wait_seconds`) as the input schema.
fn saved_workflow_tool(workflow: &SavedWorkflow) -> Tool {
    let mut schema = workflow
        .parameters_schema
        .as_object()
        .cloned()
        .unwrap_or_default();
    schema.insert("type".to_owned(), json!("object"));
    let properties = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(properties) = properties {
        properties.insert(
            "wait_seconds".to_owned(),
            json!({
                "type": "number",
                "minimum": 0,
                "description": "Seconds to wait before returning the job id instead (default and maximum: the server's limit)",
            }),
        );
    }
    let names: Vec<&str> = workflow
        .parameters
        .iter()
        .map(|parameter| parameter.name.as_str())
        .collect();
    let knobs = if names.is_empty() {
        "no named parameters".to_owned()
    } else {
        format!("parameters {}", names.join(", "))
    };
    let description = format!(
        "Run the saved ComfyUI workflow {:?} ({} format, {} nodes) with {knobs}. Any input can also be set as \"<node_id>.<input>\". Validated before it is queued; waits like run_workflow and returns previews, or a job_id for get_job.",
        workflow.file_name,
        format_name(workflow.format).to_ascii_uppercase(),
        workflow.node_count,
    );
    Tool::new(workflow.tool_name.clone(), description, Arc::new(schema)).with_annotations(
        ToolAnnotations::new()
            .read_only(false)
            .destructive(false)
            .idempotent(false)
            .open_world(false),
    )
}

/// The tools of the saved workflows (empty without a workflows directory), in name order.
pub async fn saved_workflow_tools(server: &ComfyServer) -> Vec<Tool> {
    match server.engine.workflow_catalog().await {
        Some(catalog) => catalog.workflows.iter().map(saved_workflow_tool).collect(),
        None => Vec::new(),
    }
}

/// A saved workflow's tool from the catalog built last, without IO.
pub fn cached_saved_workflow_tool(server: &ComfyServer, name: &str) -> Option<Tool> {
    if !name.starts_with(TOOL_PREFIX) {
        return None;
    }
    let catalog = server.engine.cached_workflow_catalog()?;
    catalog.find(name).map(saved_workflow_tool)
}

pub async fn is_saved_workflow_tool(server: &ComfyServer, name: &str) -> bool {
    if !name.starts_with(TOOL_PREFIX) {
        return false;
    }
    match server.engine.workflow_catalog().await {
        Some(catalog) => catalog.find(name).is_some(),
        None => false,
    }
}

/// Runs the saved workflow behind tool `name`; `None` when no saved workflow has that name.
pub async fn call_saved_workflow(
    server: &ComfyServer,
    name: &str,
    raw: Option<JsonObject>,
    context: &RequestContext<RoleServer>,
) -> Option<CallToolResult> {
    if !name.starts_with(TOOL_PREFIX) {
        return None;
    }
    let catalog = server.engine.workflow_catalog().await?;
    let saved = catalog.find(name)?.clone();
    Some(
        run_saved_workflow(server, &saved, raw.unwrap_or_default(), context)
            .await
            .unwrap_or_else(|error| error),
    )
}

async fn run_saved_workflow(
    server: &ComfyServer,
    saved: &SavedWorkflow,
    mut overrides: Map<String, Value>,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let wait_seconds = match overrides.remove("wait_seconds") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => number.as_f64(),
        Some(other) => {
            return Err(error_text(format!(
                "wait_seconds must be a number of seconds >= 0, got {other}"
            )));
        }
    };
    let workflow = server
        .engine
        .read_workflow(&WorkflowSource::File(saved.path.clone()), true)
        .await
        .map_err(|error| engine_error(&error))?;
    run_and_report(
        server,
        &saved.tool_name,
        &workflow,
        &overrides,
        wait_seconds,
        None,
        context,
    )
    .await
}
