//! Workflows from anywhere: inline JSON, a file, or a name in the configured workflows directory;
//! in API or UI format (detected). UI workflows are converted to API prompts with the backend's
//! own node definitions, and every conversion finding is returned to the caller, never dropped.
//! Here too: validation, parameter discovery, overrides by parameter name or `NODE_ID.INPUT`,
//! and the library of saved workflows that the MCP server exposes as one tool each. The library
//! watches its directory by polling the listing and modification times in an owned task, and
//! announces every change on a watch channel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use comfy_api::{SubmitOptions, SubmittedJob};
use comfy_workflow::diagnostic::compare_node_ids;
use comfy_workflow::{
    ApiPrompt, ConvertOptions, Diagnostic, Format, LocalDateTime, ObjectInfo, OverrideError, Parameter,
    Report, apply_overrides, detect_format, discover_parameters, parse_lenient, ui_to_api,
};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::generate::parse_api_workflow;
use super::records::JobContext;
use super::{BackendEntry, Engine, EngineError};

/// How often the workflows directory is listed.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Prefix of every saved workflow's tool name.
pub const TOOL_PREFIX: &str = "workflow_";

/// Tool names a saved workflow must not take (the `workflows` toolset's own tools).
const RESERVED_TOOL_NAMES: &[&str] = &["workflow_parameters"];

/// Longest file-stem part of a tool name, so names stay within the 64 characters some clients allow.
const MAXIMUM_STEM_LENGTH: usize = 48;

/// Largest workflow file read.
const MAXIMUM_WORKFLOW_BYTES: u64 = 32 * 1024 * 1024;

/// Where a workflow comes from.
#[derive(Debug, Clone)]
pub enum WorkflowSource {
    /// The workflow JSON itself.
    Inline(Value),
    /// A file on this machine.
    File(PathBuf),
    /// A file of the workflows directory: its file name, its stem, or its tool name.
    Named(String),
}

/// A workflow read and, when it was in UI format, converted.
#[derive(Debug, Clone)]
pub struct LoadedWorkflow {
    /// The format it came in.
    pub format: Format,
    pub prompt: ApiPrompt,
    /// What the UI to API conversion found (empty for API-format workflows).
    pub conversion: Vec<Diagnostic>,
}

impl LoadedWorkflow {
    pub fn conversion_errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.conversion.iter().filter(|diagnostic| diagnostic.is_error())
    }
}

/// A workflow prepared against one backend's node definitions.
pub struct PreparedWorkflow<'engine> {
    pub entry: &'engine BackendEntry,
    pub info: Arc<ObjectInfo>,
    pub loaded: LoadedWorkflow,
}

/// A workflow that was queued.
pub struct StartedWorkflow<'engine> {
    pub entry: &'engine BackendEntry,
    pub job: SubmittedJob,
    pub format: Format,
    /// Conversion warnings (errors refuse the run), for the caller to show.
    pub conversion: Vec<Diagnostic>,
}

/// A workflow checked against a backend: conversion findings plus the validation report.
pub struct CheckedWorkflow {
    pub format: Format,
    pub conversion: Vec<Diagnostic>,
    pub report: Report,
}

/// Reads workflow JSON text; ComfyUI's files may hold `NaN` and `Infinity`, which are accepted.
pub fn parse_workflow_text(text: &str, origin: &str) -> Result<Value, EngineError> {
    parse_lenient(text)
        .map_err(|error| EngineError::bad_input(format!("{origin} is not valid JSON: {error}")))
}

/// Reads an API- or UI-format workflow; UI workflows are converted with `info` and `options`.
pub fn load_workflow(
    workflow: &Value,
    info: &ObjectInfo,
    options: &ConvertOptions,
) -> Result<LoadedWorkflow, EngineError> {
    match detect_format(workflow) {
        Format::Ui => {
            let conversion = ui_to_api(workflow, info, options);
            Ok(LoadedWorkflow {
                format: Format::Ui,
                prompt: conversion.prompt,
                conversion: conversion.diagnostics,
            })
        }
        // Unknown formats get the API reader's precise message (and `{"prompt": {...}}` wrappers work).
        Format::Api | Format::Unknown => Ok(LoadedWorkflow {
            format: Format::Api,
            prompt: parse_api_workflow(workflow)?,
            conversion: Vec::new(),
        }),
    }
}

/// Applies overrides keyed by parameter name (`prompt`, `seed`, `steps`...) or `NODE_ID.INPUT`.
pub fn apply_workflow_overrides(
    prompt: &ApiPrompt,
    info: &ObjectInfo,
    overrides: &Map<String, Value>,
) -> Result<ApiPrompt, OverrideFailure> {
    if overrides.is_empty() {
        return Ok(prompt.clone());
    }
    let parameters = discover_parameters(prompt, info);
    for key in overrides.keys() {
        if parameters.resolve(key).is_some() {
            continue;
        }
        let Some((node_id, _)) = key.split_once('.') else {
            continue;
        };
        if let Some(node) = prompt.get(node_id)
            && !info.has_node(&node.class_type)
        {
            // Fresher definitions may have the class (a node pack installed since): a value
            // failure, which is checked again against a fresh fetch.
            return Err(OverrideFailure::Value(EngineError::bad_input(format!(
                "override {key:?}: node {node_id} is a {}, which this ComfyUI does not have, so \
                 its inputs are unknown; install the node pack that provides it",
                node.class_type
            ))));
        }
        if prompt.get(node_id).is_none() {
            let mut known: Vec<&str> = prompt.nodes.keys().map(String::as_str).collect();
            known.sort_by(|left, right| compare_node_ids(left, right));
            return Err(OverrideFailure::Input(EngineError::bad_input(format!(
                "override {key:?}: the workflow has no node {node_id:?}; its nodes are {}",
                known.join(", ")
            ))));
        }
    }
    apply_overrides(prompt, &parameters, overrides, info).map_err(|error| match error {
        OverrideError::InvalidValue { .. } => {
            OverrideFailure::Value(EngineError::bad_input(error.to_string()))
        }
        other => OverrideFailure::Input(EngineError::bad_input(other.to_string())),
    })
}

/// Why overrides were refused: a value (which fresher node definitions may accept: a model file
/// added since they were fetched) or anything else.
#[derive(Debug)]
pub enum OverrideFailure {
    Value(EngineError),
    Input(EngineError),
}

impl OverrideFailure {
    pub fn into_error(self) -> EngineError {
        match self {
            OverrideFailure::Value(error) | OverrideFailure::Input(error) => error,
        }
    }
}

/// One line per error diagnostic: node, title, class, input, message, code and suggestion.
pub fn describe_errors<'a>(diagnostics: impl IntoIterator<Item = &'a Diagnostic>) -> String {
    diagnostics
        .into_iter()
        .filter(|diagnostic| diagnostic.is_error())
        .map(describe_diagnostic)
        .collect()
}

/// `\n- node ID 'TITLE' (CLASS), input NAME: MESSAGE [CODE] - SUGGESTION`; findings about the
/// whole graph (no node) start with `- workflow`.
fn describe_diagnostic(diagnostic: &Diagnostic) -> String {
    let mut text = if diagnostic.node_id.is_empty() {
        "\n- workflow".to_owned()
    } else {
        format!(
            "\n- node {} '{}' ({})",
            diagnostic.node_id, diagnostic.title, diagnostic.class_type
        )
    };
    if let Some(input) = &diagnostic.input {
        text.push_str(&format!(", input {input}"));
    }
    text.push_str(&format!(": {} [{}]", diagnostic.message, diagnostic.code));
    if let Some(suggestion) = &diagnostic.suggestion {
        text.push_str(&format!(" - {suggestion}"));
    }
    text
}

/// The name of a format in results: `api`, `ui` or `unknown`.
pub fn format_name(format: Format) -> &'static str {
    match format {
        Format::Api => "api",
        Format::Ui => "ui",
        Format::Unknown => "unknown",
    }
}

/// Diagnostics as JSON objects (node id, class, title, input, code, severity, message,
/// suggestion, candidates), each marked with the stage that found it.
pub fn diagnostics_json<'a>(
    stage: &str,
    diagnostics: impl IntoIterator<Item = &'a Diagnostic>,
) -> Vec<Value> {
    diagnostics
        .into_iter()
        .map(|diagnostic| {
            let mut value = serde_json::to_value(diagnostic).unwrap_or(Value::Null);
            if let Value::Object(entries) = &mut value {
                entries.insert("stage".to_owned(), Value::String(stage.to_owned()));
            }
            value
        })
        .collect()
}

fn count_errors(diagnostics: &[Diagnostic]) -> usize {
    diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.is_error())
        .count()
}

/// What `convert_workflow` and `comfyui-mcp convert` report besides the prompt.
pub fn conversion_json(loaded: &LoadedWorkflow) -> Value {
    let errors = count_errors(&loaded.conversion);
    json!({
        "format": format_name(loaded.format),
        "error_count": errors,
        "warning_count": loaded.conversion.len() - errors,
        "diagnostics": diagnostics_json("conversion", &loaded.conversion),
    })
}

/// The verdict on a checked workflow: outcome (conversion errors make it `rejected`, since a run
/// refuses it), the outputs that would be queued, and every diagnostic of both stages.
pub fn validation_json(checked: &CheckedWorkflow) -> Value {
    let conversion_errors = count_errors(&checked.conversion);
    let report = &checked.report;
    let outcome = if conversion_errors > 0 {
        comfy_workflow::Outcome::Rejected
    } else {
        report.outcome()
    };
    let mut diagnostics = diagnostics_json("conversion", &checked.conversion);
    diagnostics.extend(diagnostics_json("validation", &report.diagnostics));
    let errors = conversion_errors + report.errors().count();
    let queued: Vec<&str> = if conversion_errors > 0 {
        Vec::new()
    } else {
        report.queued_outputs()
    };
    json!({
        "outcome": outcome,
        "format": format_name(checked.format),
        "queued_outputs": queued,
        "outputs": report.outputs,
        "rejection": report.rejection,
        "error_count": errors,
        "warning_count": diagnostics.len() - errors,
        "diagnostics": diagnostics,
    })
}

impl CheckedWorkflow {
    pub fn has_errors(&self) -> bool {
        count_errors(&self.conversion) > 0 || self.report.has_errors()
    }
}

/// The discovered parameters of a loaded workflow with their schemas.
pub fn parameters_json(loaded: &LoadedWorkflow, info: &ObjectInfo) -> Value {
    let parameters = discover_parameters(&loaded.prompt, info);
    json!({
        "format": format_name(loaded.format),
        "parameters": parameters.parameters,
        "input_schema": parameters.json_schema(),
        "addressable_inputs": parameters.addresses.len(),
        "conversion_diagnostics": diagnostics_json("conversion", &loaded.conversion),
    })
}

/// Options that make the parameters' defaults the workflow's values as written.
pub fn parameter_options() -> ConvertOptions {
    ConvertOptions {
        now: None,
        resolve_dynamic_prompts: false,
        dynamic_prompt_seed: 0,
        ..ConvertOptions::default()
    }
}

/// The current time in UTC, for `%date:...%` placeholders.
pub fn current_time() -> LocalDateTime {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    time_from_unix_seconds(seconds)
}

/// The civil date and time of a Unix timestamp (UTC).
pub fn time_from_unix_seconds(seconds: u64) -> LocalDateTime {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let of_day = seconds % 86_400;
    let (year, month, day) = crate::timestamps::civil_from_days(days);
    LocalDateTime {
        year: i32::try_from(year).unwrap_or(i32::MAX),
        month: u32::try_from(month).unwrap_or(1),
        day: u32::try_from(day).unwrap_or(1),
        hour: u32::try_from(of_day / 3600).unwrap_or(0),
        minute: u32::try_from(of_day % 3600 / 60).unwrap_or(0),
        second: u32::try_from(of_day % 60).unwrap_or(0),
    }
}

/// Reads `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS` (a space works as separator).
pub fn parse_date(raw: &str) -> Result<LocalDateTime, EngineError> {
    let invalid = || {
        EngineError::bad_input(format!(
            "date {raw:?} must look like 2024-03-05T06:07:08 (or 2024-03-05)"
        ))
    };
    let raw = raw.trim();
    let (date, time) = raw
        .split_once(['T', ' '])
        .map_or((raw, None), |(date, time)| (date, Some(time)));
    let number = |text: &str| text.parse::<u32>().map_err(|_| invalid());
    let date_parts: Vec<&str> = date.split('-').collect();
    let [year, month, day] = date_parts.as_slice() else {
        return Err(invalid());
    };
    let year = year.parse::<i32>().map_err(|_| invalid())?;
    let (month, day) = (number(month)?, number(day)?);
    let (hour, minute, second) = match time {
        None => (0, 0, 0),
        Some(time) => {
            let parts: Vec<&str> = time.trim_end_matches('Z').split(':').collect();
            match parts.as_slice() {
                [hour, minute] => (number(hour)?, number(minute)?, 0),
                [hour, minute, second] => (number(hour)?, number(minute)?, number(second)?),
                _ => return Err(invalid()),
            }
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(invalid());
    }
    Ok(LocalDateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
    })
}

/// The stem part of a tool name: lower-case ASCII letters and digits, other runs become one `_`.
pub fn sanitize_stem(stem: &str) -> String {
    let mut result = String::new();
    for character in stem.chars() {
        if character.is_ascii_alphanumeric() {
            result.push(character.to_ascii_lowercase());
        } else if !result.ends_with('_') {
            result.push('_');
        }
    }
    let trimmed: String = result
        .trim_matches('_')
        .chars()
        .take(MAXIMUM_STEM_LENGTH)
        .collect();
    let trimmed = trimmed.trim_end_matches('_');
    if trimmed.is_empty() {
        "unnamed".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Tool names for workflow files given in sorted order: `workflow_<stem>`, with `_2`, `_3`...
/// when two stems sanitize alike or a name is reserved. Deterministic for a given list.
pub fn tool_names(file_names: &[String]) -> Vec<String> {
    let mut taken: Vec<String> = RESERVED_TOOL_NAMES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let mut names = Vec::new();
    for file_name in file_names {
        let stem = Path::new(file_name)
            .file_stem()
            .map_or_else(String::new, |stem| stem.to_string_lossy().into_owned());
        let base = format!("{TOOL_PREFIX}{}", sanitize_stem(&stem));
        let mut name = base.clone();
        let mut counter = 2;
        while taken.contains(&name) {
            name = format!("{base}_{counter}");
            counter += 1;
        }
        taken.push(name.clone());
        names.push(name);
    }
    names
}

/// A file of the workflows directory as the poller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListedFile {
    modified: Option<SystemTime>,
    size: u64,
}

/// `*.json` files of `directory` (not hidden), by file name.
async fn list_directory(directory: &Path) -> std::io::Result<BTreeMap<String, ListedFile>> {
    let mut listing = BTreeMap::new();
    let mut entries = fs_err::tokio::read_dir(directory).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.to_ascii_lowercase().ends_with(".json") {
            continue;
        }
        // Follows symbolic links; a broken one is skipped.
        let Ok(metadata) = fs_err::tokio::metadata(entry.path()).await else {
            continue;
        };
        if metadata.is_file() {
            listing.insert(
                name,
                ListedFile {
                    modified: metadata.modified().ok(),
                    size: metadata.len(),
                },
            );
        }
    }
    Ok(listing)
}

async fn read_workflow_file(path: &Path) -> Result<Value, EngineError> {
    let shown = path.display().to_string();
    let bytes = super::local_files::read_bounded(path, MAXIMUM_WORKFLOW_BYTES)
        .await
        .map_err(|error| EngineError::bad_input(error.to_string()))?;
    let text = String::from_utf8(bytes)
        .map_err(|error| EngineError::bad_input(format!("{shown} is not UTF-8 text: {error}")))?;
    parse_workflow_text(&text, &shown)
}

/// One saved workflow exposed as a tool.
#[derive(Debug, Clone)]
pub struct SavedWorkflow {
    pub tool_name: String,
    pub file_name: String,
    pub path: PathBuf,
    pub format: Format,
    pub node_count: usize,
    pub parameters: Vec<Parameter>,
    /// A JSON Schema object whose properties are the named parameters.
    pub parameters_schema: Value,
    /// Conversion warnings (workflows with conversion errors are skipped).
    pub warnings: Vec<Diagnostic>,
}

/// The saved workflows of one directory state, in tool-name order.
#[derive(Debug, Clone, Default)]
pub struct WorkflowCatalog {
    pub generation: u64,
    pub workflows: Vec<SavedWorkflow>,
    /// Files left out: file name and why.
    pub skipped: Vec<(String, String)>,
}

impl WorkflowCatalog {
    pub fn find(&self, tool_name: &str) -> Option<&SavedWorkflow> {
        self.workflows
            .iter()
            .find(|workflow| workflow.tool_name == tool_name)
    }
}

/// The saved workflows of the configured directory: a cached catalog invalidated by the poller.
pub struct WorkflowLibrary {
    directory: Option<PathBuf>,
    shared: Arc<LibraryShared>,
}

/// What the poller and the callers share.
struct LibraryShared {
    state: Mutex<LibraryState>,
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct LibraryState {
    generation: u64,
    catalog: Option<Arc<WorkflowCatalog>>,
}

impl WorkflowLibrary {
    pub fn new(directory: Option<PathBuf>) -> Self {
        WorkflowLibrary {
            directory,
            shared: Arc::new(LibraryShared {
                state: Mutex::new(LibraryState::default()),
                changes: watch::channel(0).0,
            }),
        }
    }
}

impl LibraryShared {
    fn generation(&self) -> u64 {
        self.state.lock().map_or(0, |state| state.generation)
    }

    fn cached(&self) -> Option<Arc<WorkflowCatalog>> {
        let state = self.state.lock().ok()?;
        state
            .catalog
            .clone()
            .filter(|catalog| catalog.generation == state.generation)
    }

    /// Keeps `catalog` unless the directory changed while it was built.
    fn store(&self, catalog: Arc<WorkflowCatalog>) {
        if let Ok(mut state) = self.state.lock()
            && state.generation == catalog.generation
        {
            state.catalog = Some(catalog);
        }
    }

    /// Forgets the catalog and tells every listener.
    fn changed(&self) {
        let generation = match self.state.lock() {
            Ok(mut state) => {
                state.generation += 1;
                state.catalog = None;
                state.generation
            }
            Err(_) => return,
        };
        self.changes.send_replace(generation);
    }
}

/// Lists `directory` every [`POLL_INTERVAL`] and marks the library changed when a `*.json` file
/// appears, disappears, or changes size or modification time.
async fn poll_directory(directory: PathBuf, shared: Arc<LibraryShared>, cancel: CancellationToken) {
    let mut previous: Option<BTreeMap<String, ListedFile>> = None;
    let mut reported_error = false;
    loop {
        let listing = match list_directory(&directory).await {
            Ok(listing) => {
                reported_error = false;
                listing
            }
            Err(error) => {
                if !reported_error {
                    tracing::warn!(directory = %directory.display(), %error, "cannot list the workflows directory");
                    reported_error = true;
                }
                BTreeMap::new()
            }
        };
        if let Some(previous) = &previous
            && *previous != listing
        {
            tracing::info!(directory = %directory.display(), files = listing.len(), "workflows directory changed");
            shared.changed();
        }
        previous = Some(listing);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

impl Engine {
    /// The configured workflows directory, if any.
    pub fn workflows_directory(&self) -> Option<&Path> {
        self.workflow_library.directory.as_deref()
    }

    /// A receiver that sees a new value each time the workflows directory changes; `None` when no
    /// directory is configured.
    pub fn workflow_changes(&self) -> Option<watch::Receiver<u64>> {
        self.workflow_library
            .directory
            .as_ref()
            .map(|_| self.workflow_library.shared.changes.subscribe())
    }

    /// Starts the owned task that polls the workflows directory (when one is configured).
    pub(super) fn watch_workflows_directory(&self) {
        if let Some(directory) = self.workflow_library.directory.clone() {
            self.tracker.spawn(poll_directory(
                directory,
                self.workflow_library.shared.clone(),
                self.cancel.child_token(),
            ));
        }
    }

    /// Runs `on_change` after each change of the workflows directory, in an owned task, until
    /// shutdown. Does nothing when no directory is configured.
    pub fn on_workflow_changes<F, Fut>(&self, on_change: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let Some(mut changes) = self.workflow_changes() else {
            return;
        };
        let cancel = self.cancel.child_token();
        self.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        on_change().await;
                    }
                }
            }
        });
    }

    /// The catalog built last, if it is still current (no IO; for synchronous lookups).
    pub fn cached_workflow_catalog(&self) -> Option<Arc<WorkflowCatalog>> {
        self.workflow_library.shared.cached()
    }

    /// The saved workflows, built on first use with the first backend's node definitions and
    /// cached until the directory changes. `None` when no directory is configured. A workflow
    /// that cannot be read or converted is logged and left out; when the node definitions cannot
    /// be fetched, the catalog is empty and not cached, so the next call tries again.
    pub async fn workflow_catalog(&self) -> Option<Arc<WorkflowCatalog>> {
        let directory = self.workflow_library.directory.as_ref()?;
        let shared = &self.workflow_library.shared;
        if let Some(catalog) = shared.cached() {
            return Some(catalog);
        }
        let generation = shared.generation();
        let entry = self.backends.first()?;
        let info = match self.object_info(entry, false).await {
            Ok(info) => info,
            Err(error) => {
                tracing::warn!(%error, "saved workflows are not offered as tools yet: node definitions are unavailable");
                return Some(Arc::new(WorkflowCatalog {
                    generation,
                    ..WorkflowCatalog::default()
                }));
            }
        };
        let catalog = Arc::new(build_catalog(directory, &info, generation).await);
        shared.store(catalog.clone());
        Some(catalog)
    }

    /// The workflow JSON of `source`. Files are read only when `allow_local_files` is true;
    /// names are looked up in the workflows directory only.
    pub async fn read_workflow(
        &self,
        source: &WorkflowSource,
        allow_local_files: bool,
    ) -> Result<Value, EngineError> {
        match source {
            WorkflowSource::Inline(value) => Ok(value.clone()),
            WorkflowSource::File(path) => {
                if !allow_local_files {
                    return Err(EngineError::bad_input(
                        "reading local files is disabled on this server (set COMFYUI_MCP_ALLOW_LOCAL_FILES=true to allow it); pass the workflow inline, or a name from the workflows directory",
                    ));
                }
                read_workflow_file(path).await
            }
            WorkflowSource::Named(name) => {
                let path = self.named_workflow_path(name).await?;
                read_workflow_file(&path).await
            }
        }
    }

    /// The file of the workflows directory that `name` designates (file name, stem or tool name).
    pub async fn named_workflow_path(&self, name: &str) -> Result<PathBuf, EngineError> {
        let Some(directory) = self.workflows_directory() else {
            return Err(EngineError::bad_input(
                "no workflows directory is configured (COMFYUI_MCP_WORKFLOWS_DIR, workflows_dir or --workflows-dir)",
            ));
        };
        let name = name.trim();
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) || name.contains("..") {
            return Err(EngineError::bad_input(format!(
                "workflow name {name:?} must be a file name of the workflows directory, without a path"
            )));
        }
        let listing = list_directory(directory).await.map_err(|error| {
            EngineError::bad_input(format!("cannot list {}: {error}", directory.display()))
        })?;
        let files: Vec<String> = listing.into_keys().collect();
        let names = tool_names(&files);
        let found = files.iter().zip(&names).find(|(file, tool_name)| {
            let stem = Path::new(file.as_str())
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default();
            file.as_str() == name
                || stem == name
                || tool_name.as_str() == name
                || sanitize_stem(&stem) == name
        });
        match found {
            Some((file, _)) => Ok(directory.join(file)),
            None => {
                let candidates =
                    comfy_workflow::suggest::closest_matches(name, files.iter().map(String::as_str), 3);
                let hint = comfy_workflow::suggest::did_you_mean(&candidates)
                    .map_or_else(String::new, |sentence| format!("; {sentence}"));
                Err(EngineError::bad_input(format!(
                    "no workflow {name:?} in {} ({} workflows){hint}",
                    directory.display(),
                    files.len()
                )))
            }
        }
    }

    /// Reads `workflow` against a backend: UI workflows are converted with its node definitions.
    pub async fn prepare_workflow(
        &self,
        workflow: &Value,
        backend: Option<&str>,
        options: &ConvertOptions,
    ) -> Result<PreparedWorkflow<'_>, EngineError> {
        let entry = self.pick_backend(backend)?;
        let info = self.object_info(entry, false).await?;
        let options = ConvertOptions {
            frontend: entry.frontend_generation(),
            ..options.clone()
        };
        let loaded = load_workflow(workflow, &info, &options)?;
        Ok(PreparedWorkflow { entry, info, loaded })
    }

    /// Converts (when needed), applies `overrides` and validates `workflow` without queuing it.
    pub async fn check_workflow(
        &self,
        workflow: &Value,
        overrides: &Map<String, Value>,
        backend: Option<&str>,
    ) -> Result<CheckedWorkflow, EngineError> {
        let prepared = self.prepare_workflow(workflow, backend, &run_options()).await?;
        let prompt = self
            .overridden_prompt(prepared.entry, &prepared.loaded.prompt, prepared.info, overrides)
            .await?;
        let report = self.validate_prompt(prepared.entry, &prompt).await?;
        Ok(CheckedWorkflow {
            format: prepared.loaded.format,
            conversion: prepared.loaded.conversion,
            report,
        })
    }

    /// `prompt` with `overrides` applied; a refused value is tried once more with fresh node
    /// definitions (a model file may have been added since they were fetched).
    pub(super) async fn overridden_prompt(
        &self,
        entry: &BackendEntry,
        prompt: &ApiPrompt,
        info: Arc<ObjectInfo>,
        overrides: &Map<String, Value>,
    ) -> Result<ApiPrompt, EngineError> {
        match apply_workflow_overrides(prompt, &info, overrides) {
            Ok(prompt) => Ok(prompt),
            Err(OverrideFailure::Value(_)) => {
                let fresh = self.object_info(entry, true).await?;
                apply_workflow_overrides(prompt, &fresh, overrides).map_err(OverrideFailure::into_error)
            }
            Err(failure) => Err(failure.into_error()),
        }
    }
}

/// Conversion options for a run: the current time for date placeholders and a fresh seed for
/// dynamic prompts, as the frontend does on every queue.
pub fn run_options() -> ConvertOptions {
    ConvertOptions {
        now: Some(current_time()),
        resolve_dynamic_prompts: true,
        dynamic_prompt_seed: uuid::Uuid::new_v4().as_u64_pair().0,
        ..ConvertOptions::default()
    }
}

async fn build_catalog(directory: &Path, info: &ObjectInfo, generation: u64) -> WorkflowCatalog {
    let listing = match list_directory(directory).await {
        Ok(listing) => listing,
        Err(error) => {
            tracing::warn!(directory = %directory.display(), %error, "cannot list the workflows directory");
            BTreeMap::new()
        }
    };
    let files: Vec<String> = listing.into_keys().collect();
    let names = tool_names(&files);
    let mut catalog = WorkflowCatalog {
        generation,
        ..WorkflowCatalog::default()
    };
    for (file_name, tool_name) in files.into_iter().zip(names) {
        let path = directory.join(&file_name);
        match saved_workflow(&path, info).await {
            Ok((loaded, parameters_schema, parameters)) => {
                let warnings = loaded.conversion;
                if !warnings.is_empty() {
                    tracing::info!(file = %file_name, warnings = warnings.len(), "saved workflow converted with warnings");
                }
                catalog.workflows.push(SavedWorkflow {
                    tool_name,
                    file_name,
                    path,
                    format: loaded.format,
                    node_count: loaded.prompt.nodes.len(),
                    parameters,
                    parameters_schema,
                    warnings,
                });
            }
            Err(reason) => {
                tracing::warn!(file = %file_name, %reason, "saved workflow skipped");
                catalog.skipped.push((file_name, reason));
            }
        }
    }
    catalog
        .workflows
        .sort_by(|left, right| left.tool_name.cmp(&right.tool_name));
    catalog
}

async fn saved_workflow(
    path: &Path,
    info: &ObjectInfo,
) -> Result<(LoadedWorkflow, Value, Vec<Parameter>), String> {
    let value = read_workflow_file(path)
        .await
        .map_err(|error| error.to_string())?;
    let loaded = load_workflow(&value, info, &parameter_options()).map_err(|error| error.to_string())?;
    let errors: Vec<Diagnostic> = loaded.conversion_errors().cloned().collect();
    if !errors.is_empty() {
        return Err(format!(
            "the UI workflow cannot be converted:{}",
            describe_errors(&errors)
        ));
    }
    if loaded.prompt.nodes.is_empty() {
        return Err("the workflow has no nodes".to_owned());
    }
    // No clock and dynamic prompts as written: the schemas' defaults stay the same day to day.
    let parameters = discover_parameters(&loaded.prompt, info);
    let schema = parameters.json_schema();
    Ok((loaded, schema, parameters.parameters))
}

impl Engine {
    /// Runs a workflow in API or UI format (UI workflows are converted with the backend's node
    /// definitions; conversion errors refuse the run) with overrides keyed by parameter name
    /// (`prompt`, `seed`, `steps`...) or `NODE_ID.INPUT`, validated before it is queued.
    /// Conversion warnings are logged; [`Engine::run_workflow_as`] returns them.
    pub async fn run_workflow(
        &self,
        workflow: &Value,
        overrides: &Map<String, Value>,
        backend: Option<&str>,
    ) -> Result<(&BackendEntry, SubmittedJob), EngineError> {
        let started = self
            .run_workflow_as("run_workflow", workflow, overrides, backend)
            .await?;
        for warning in &started.conversion {
            tracing::info!(node = %warning.node_id, code = %warning.code, message = %warning.message, "workflow conversion warning");
        }
        Ok((started.entry, started.job))
    }

    /// Like [`Engine::run_workflow`], recorded under `label` (`run_workflow`, a saved workflow's
    /// tool name...), and returning the conversion warnings too.
    pub async fn run_workflow_as(
        &self,
        label: &str,
        workflow: &Value,
        overrides: &Map<String, Value>,
        backend: Option<&str>,
    ) -> Result<StartedWorkflow<'_>, EngineError> {
        let prepared = self.prepare_workflow(workflow, backend, &run_options()).await?;
        let (entry, loaded) = (prepared.entry, prepared.loaded);
        if loaded.conversion_errors().next().is_some() {
            return Err(EngineError::Unconvertible {
                diagnostics: loaded.conversion,
            });
        }
        let prompt = self
            .overridden_prompt(entry, &loaded.prompt, prepared.info, overrides)
            .await?;
        let mut context = workflow_context(&prompt, overrides);
        context.workflow = Some(label.to_owned());
        let job = self
            .submit(entry, &prompt, SubmitOptions::default(), context)
            .await?;
        Ok(StartedWorkflow {
            entry,
            job,
            format: loaded.format,
            conversion: loaded.conversion,
        })
    }
}

/// What the library records for an arbitrary workflow: its text prompts, model and seed where the
/// graph has the usual nodes.
fn workflow_context(prompt: &ApiPrompt, overrides: &Map<String, Value>) -> JobContext {
    let texts: Vec<&str> = prompt
        .nodes
        .values()
        .filter(|node| node.class_type.starts_with("CLIPTextEncode"))
        .filter_map(|node| node.inputs.get("text").and_then(Value::as_str))
        .collect();
    let model = prompt.nodes.values().find_map(|node| {
        ["ckpt_name", "unet_name"]
            .iter()
            .find_map(|input| node.inputs.get(*input).and_then(Value::as_str))
            .map(str::to_owned)
    });
    let seed = prompt.nodes.values().find_map(|node| {
        ["seed", "noise_seed"]
            .iter()
            .find_map(|input| node.inputs.get(*input).and_then(Value::as_u64))
    });
    JobContext {
        workflow: Some("run_workflow".to_owned()),
        model,
        prompt_text: texts.join("\n"),
        parameters: Value::Object(overrides.clone()),
        seed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_names_are_sanitized_unique_and_stable() {
        let files: Vec<String> = [
            "My Flow.json",
            "my-flow.json",
            "parameters.json",
            "Ünïcode.json",
            "___.json",
        ]
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
        let names = tool_names(&files);
        assert_eq!(
            names,
            [
                "workflow_my_flow",
                "workflow_my_flow_2",
                "workflow_parameters_2",
                "workflow_n_code",
                "workflow_unnamed"
            ]
        );
        assert_eq!(tool_names(&files), names);
        let long = "x".repeat(200);
        assert!(sanitize_stem(&long).len() <= MAXIMUM_STEM_LENGTH);
    }

    #[test]
    fn civil_time_from_unix_seconds() {
        assert_eq!(
            time_from_unix_seconds(0),
            LocalDateTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
        // 2024-03-05T06:07:08Z, the frontend recorder's pinned time; 2024 is a leap year.
        assert_eq!(
            time_from_unix_seconds(1_709_618_828),
            LocalDateTime {
                year: 2024,
                month: 3,
                day: 5,
                hour: 6,
                minute: 7,
                second: 8
            }
        );
        assert_eq!(time_from_unix_seconds(951_782_400).day, 29); // 2000-02-29
    }

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(
            parse_date("2024-03-05T06:07:08").unwrap(),
            time_from_unix_seconds(1_709_618_828)
        );
        assert_eq!(parse_date("2024-03-05 06:07").unwrap().minute, 7);
        assert_eq!(parse_date("2024-03-05").unwrap().hour, 0);
        for bad in ["2024-13-01", "yesterday", "2024-03-05T25:00:00", "2024-03"] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_are_detected_and_wrappers_unwrapped() {
        let info = ObjectInfo::default();
        let api = json!({"1": {"class_type": "SaveImage", "inputs": {}}});
        let loaded = load_workflow(&api, &info, &ConvertOptions::default()).unwrap();
        assert_eq!(loaded.format, Format::Api);
        let wrapped = json!({"prompt": api});
        assert_eq!(
            load_workflow(&wrapped, &info, &ConvertOptions::default())
                .unwrap()
                .prompt
                .nodes
                .len(),
            1
        );
        let ui = json!({"nodes": [], "links": []});
        let loaded = load_workflow(&ui, &info, &ConvertOptions::default()).unwrap();
        assert_eq!(loaded.format, Format::Ui);
        assert!(load_workflow(&json!([1, 2]), &info, &ConvertOptions::default()).is_err());
    }

    #[test]
    fn overrides_by_role_name_and_address_with_suggestions() {
        let info = ObjectInfo::from_json(&json!({
            "KSampler": {"input": {"required": {"seed": ["INT", {"default": 0, "min": 0, "max": 100}], "steps": ["INT", {"default": 20, "min": 1, "max": 100}]}},
                         "output": ["LATENT"], "output_node": false, "name": "KSampler", "display_name": "KSampler", "category": "sampling"}
        }));
        let prompt: ApiPrompt = serde_json::from_value(
            json!({"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 4}}}),
        )
        .unwrap();
        let overrides = json!({"seed": 42, "3.steps": 8}).as_object().cloned().unwrap();
        let result = apply_workflow_overrides(&prompt, &info, &overrides).unwrap();
        assert_eq!(result.get("3").unwrap().inputs["seed"], 42);
        assert_eq!(result.get("3").unwrap().inputs["steps"], 8);
        let unknown = json!({"sed": 1}).as_object().cloned().unwrap();
        let error = apply_workflow_overrides(&prompt, &info, &unknown)
            .unwrap_err()
            .into_error();
        assert!(error.to_string().contains("seed"), "{error}");
        let missing_node = json!({"9.seed": 1}).as_object().cloned().unwrap();
        let error = apply_workflow_overrides(&prompt, &info, &missing_node)
            .unwrap_err()
            .into_error();
        assert!(error.to_string().contains("no node \"9\""), "{error}");
        let out_of_type = json!({"steps": "many"}).as_object().cloned().unwrap();
        assert!(matches!(
            apply_workflow_overrides(&prompt, &info, &out_of_type),
            Err(OverrideFailure::Value(_))
        ));
    }
}
