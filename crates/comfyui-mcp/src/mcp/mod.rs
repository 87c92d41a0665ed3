//! The MCP face of the engine: one rmcp `ServerHandler` that lists the enabled toolsets' tools,
//! dispatches calls to them, and serves full-size outputs as resources. Only this module knows rmcp.

mod catalog;
mod core;
mod insights;
mod library;
mod presets;
pub mod render;
mod workflows;

use std::sync::Arc;

use futures_util::FutureExt as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, JsonObject,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    ResourceContents, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use comfy_engine::Engine;
use comfy_engine::jobs::ProgressReport;

const INSTRUCTIONS: &str = "Drives ComfyUI servers. Start with generate_image (text to image) or run_workflow \
(any workflow, API or UI format; overrides by parameter name such as prompt or seed). Long jobs return a job_id after a bounded wait: call get_job to keep waiting. \
Use list_models and search_nodes/describe_node to discover what the backend has; errors name what is \
missing and suggest close matches.";

/// The MCP server. Cheap to clone: the HTTP transport makes one per request.
#[derive(Clone)]
pub struct ComfyServer {
    engine: Arc<Engine>,
    /// The front end's configuration (toolsets, local files).
    settings: Arc<crate::settings::Settings>,
    /// Every tool the operator lets through, with its toolset.
    catalog: Arc<catalog::Catalog>,
    /// The toolsets this session enabled (dynamic mode); one set per session.
    enabled: Arc<std::sync::RwLock<std::collections::BTreeSet<String>>>,
    /// Whether tools may read this machine's files (true for stdio unless configured otherwise).
    local_files: bool,
    /// Sessions told when the saved workflows (and so the tools) change.
    list_changed: Arc<workflows::ListChangedPeers>,
}

/// Every toolset: its name, its tools, and its dispatcher (which answers `None` for tools that are
/// not its own). A new toolset is one file and one line here.
type Dispatch = for<'a> fn(
    &'a ComfyServer,
    &'a str,
    Option<Map<String, Value>>,
    &'a RequestContext<RoleServer>,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Option<CallToolResult>> + Send + 'a>,
>;

struct Toolset {
    name: &'static str,
    /// What the toolset is for, as `list_toolsets` tells a client.
    description: &'static str,
    tools: fn() -> Vec<Tool>,
    call: Dispatch,
}

const TOOLSETS: &[Toolset] = &[
    Toolset {
        name: "core",
        description: "Generate images, run workflows, follow and cancel jobs, models and nodes, outputs and uploads.",
        tools: core::tools,
        call: |server, name, raw, context| Box::pin(core::call(server, name, raw, context)),
    },
    Toolset {
        name: "workflows",
        description: "Convert, validate and inspect workflows; presets with versions and sharing.",
        tools: presets::tools,
        call: |server, name, raw, context| Box::pin(presets::call(server, name, raw, context)),
    },
    Toolset {
        name: "workflows",
        description: "Convert, validate and inspect workflows; presets with versions and sharing.",
        tools: workflows::tools,
        call: |server, name, raw, context| Box::pin(workflows::call(server, name, raw, context)),
    },
    Toolset {
        name: "library",
        description: "Search, compare, tag and export the outputs this server produced; retention.",
        tools: library::tools,
        call: |server, name, raw, context| Box::pin(library::call(server, name, raw, context)),
    },
    Toolset {
        name: "insights",
        description: "Job timings, generation-time estimates and the audit log.",
        tools: insights::tools,
        call: |server, name, raw, context| Box::pin(insights::call(server, name, raw, context)),
    },
];

/// Names of every toolset this build has.
pub fn toolset_names() -> Vec<&'static str> {
    TOOLSETS.iter().map(|toolset| toolset.name).collect()
}

impl ComfyServer {
    pub fn new(engine: Arc<Engine>, settings: Arc<crate::settings::Settings>, local_files: bool) -> Self {
        let catalog = Arc::new(catalog::Catalog::new(&settings, TOOLSETS));
        let list_changed = Arc::new(workflows::ListChangedPeers::default());
        workflows::forward_list_changes(&engine, list_changed.clone());
        ComfyServer {
            engine,
            settings,
            catalog,
            enabled: Arc::default(),
            local_files,
            list_changed,
        }
    }

    /// A server for a new session: the same engine and tools, its own enabled toolsets.
    pub fn for_session(&self) -> Self {
        ComfyServer {
            enabled: Arc::default(),
            ..self.clone()
        }
    }

    fn enabled_toolsets(&self) -> std::collections::BTreeSet<String> {
        self.enabled
            .read()
            .map(|enabled| enabled.clone())
            .unwrap_or_default()
    }

    /// The tools this session sees now (saved workflows aside).
    fn visible_tools(&self) -> Vec<Tool> {
        self.catalog.visible(&self.enabled_toolsets())
    }

    /// `list_toolsets` and `enable_toolset`, the dynamic mode's own tools.
    async fn call_catalog_tool(
        &self,
        name: &str,
        raw: Option<Map<String, Value>>,
        context: &RequestContext<RoleServer>,
    ) -> Option<CallToolResult> {
        let answer = match name {
            catalog::LIST_TOOLSETS => arguments::<catalog::ListToolsetsArguments>(name, raw)
                .map(|_| render::json_result(&self.catalog.describe(&self.enabled_toolsets()))),
            catalog::ENABLE_TOOLSET => match arguments::<catalog::EnableToolsetArguments>(name, raw) {
                Err(error) => Err(error),
                Ok(arguments) => Ok(self.enable_toolset(&arguments.toolset, context).await),
            },
            _ => return None,
        };
        Some(answer.unwrap_or_else(|error| error))
    }

    async fn enable_toolset(&self, toolset: &str, context: &RequestContext<RoleServer>) -> CallToolResult {
        let Some(known) = self.catalog.toolset(toolset) else {
            return render::error_text(format!(
                "no toolset {toolset:?} on this server; list_toolsets names them"
            ));
        };
        let added = self
            .enabled
            .write()
            .map(|mut enabled| enabled.insert(known.to_owned()))
            .unwrap_or(false);
        if added && let Err(error) = context.peer.notify_tool_list_changed().await {
            tracing::debug!(%error, "tools/list_changed not delivered");
        }
        let tools: Vec<String> = self
            .visible_tools()
            .iter()
            .map(|tool| tool.name.to_string())
            .collect();
        render::json_result(&serde_json::json!({"enabled": known, "newly": added, "tools": tools}))
    }
}

/// Checks the operator's tool choices against the tools this build has, so a typo in `--tools`
/// fails at start instead of silently hiding a tool.
pub fn check_tool_choices(settings: &crate::settings::Settings) -> Result<(), String> {
    if settings.tools.is_none() && settings.exclude_tools.is_empty() {
        // Nothing to check, and building every tool's schema would only slow the start.
        return Ok(());
    }
    let known = catalog::Catalog::known_names(TOOLSETS);
    let chosen = settings.tools.iter().flatten().chain(&settings.exclude_tools);
    let unknown: Vec<&String> = chosen.filter(|name| !known.contains(*name)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let suggestions: Vec<String> = unknown
        .iter()
        .map(|name| {
            let close = comfy_workflow::suggest::closest_matches(name, known.iter().map(String::as_str), 1);
            match close.first() {
                Some(close) => format!("{name:?} (did you mean {close:?}?)"),
                None => format!("{name:?}"),
            }
        })
        .collect();
    Err(format!(
        "unknown tools in --tools/--exclude-tools: {}",
        suggestions.join(", ")
    ))
}

/// Largest tool result sent, all content blocks together (previews have their own, smaller budget):
/// past it the answer is an error that says how to ask for less, not megabytes a client may choke on.
const MAXIMUM_RESULT_BYTES: usize = 8 * 1024 * 1024;

/// Bytes of a result's content: text and base64 data counted as they are, so the check costs no
/// copy of a result that may hold a preview; other blocks (links) are small and serialized.
fn result_size(result: &CallToolResult) -> usize {
    result
        .content
        .iter()
        .map(|block| match (block.as_text(), block.as_image()) {
            (Some(text), _) => text.text.len(),
            (_, Some(image)) => image.data.len(),
            _ => serde_json::to_string(block).map_or(0, |text| text.len()),
        })
        .sum()
}

/// `result`, or an error in its place when it is over [`MAXIMUM_RESULT_BYTES`].
fn bounded(tool: &str, result: CallToolResult) -> CallToolResult {
    let size = result_size(&result);
    if size <= MAXIMUM_RESULT_BYTES {
        return result;
    }
    render::error_text(format!(
        "the result of {tool} would be {size} bytes, more than the {MAXIMUM_RESULT_BYTES} this server sends in one answer; \
         ask for less (a smaller limit, narrower filters, fewer nodes) or write it to a file where local files are allowed"
    ))
}

/// Argument keys whose values never reach the audit log.
const SECRET_KEYS: &[&str] = &[
    "password",
    "token",
    "secret",
    "code",
    "data_base64",
    "authorization",
];

fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|secret| lower.contains(secret))
}

/// Every value under a secret key, as text (a password sent as a number is still a password).
fn secret_values(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                if is_secret_key(key) {
                    collect_scalars(value, found);
                } else {
                    secret_values(value, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| secret_values(item, found)),
        _ => {}
    }
}

fn collect_scalars(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) if !text.is_empty() => found.push(text.clone()),
        Value::Number(number) => found.push(number.to_string()),
        Value::Bool(_) | Value::Null | Value::String(_) => {}
        Value::Array(items) => items.iter().for_each(|item| collect_scalars(item, found)),
        Value::Object(map) => map.values().for_each(|item| collect_scalars(item, found)),
    }
}

/// `text` with every secret argument value cut out, for what is stored (an error message may quote
/// the value it could not parse).
fn redact_text(text: &str, arguments: &Value) -> String {
    let mut secrets = Vec::new();
    secret_values(arguments, &mut secrets);
    // Longest first, so a secret that contains another is cut whole.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.iter().fold(text.to_owned(), |text, secret| {
        text.replace(secret.as_str(), "<redacted>")
    })
}

fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    if is_secret_key(key) {
                        (key.clone(), Value::String("<redacted>".to_owned()))
                    } else {
                        (key.clone(), redact(value))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// A tool whose input schema is derived from `T`, made portable.
pub(crate) fn tool<T: JsonSchema + 'static>(
    name: &'static str,
    description: &'static str,
    annotations: ToolAnnotations,
) -> Tool {
    let mut tool = Tool::new(name, description, Arc::new(JsonObject::new()))
        .with_input_schema::<T>()
        .with_annotations(annotations);
    let mut schema = Value::Object(tool.input_schema.as_ref().clone());
    portable_schema(&mut schema);
    if let Value::Object(schema) = schema {
        tool.input_schema = Arc::new(schema);
    }
    tool
}

/// Rewrites a schema so every client's schema handling takes it: an optional argument is simply
/// not `required`, so `"type": [T, "null"]`, `anyOf: [S, {"type": "null"}]`, null enum members and
/// `"default": null` (which schemars writes for `Option`) say nothing a client needs and trip some.
pub(crate) fn portable_schema(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(kinds)) = map.get_mut("type") {
                kinds.retain(|kind| kind != "null");
                if kinds.len() == 1 {
                    let only = kinds.remove(0);
                    map.insert("type".to_owned(), only);
                }
            }
            if let Some(Value::Array(choices)) = map.get_mut("enum") {
                choices.retain(|choice| !choice.is_null());
            }
            if map.get("default").is_some_and(Value::is_null) {
                map.remove("default");
            }
            for key in ["anyOf", "oneOf"] {
                let Some(Value::Array(alternatives)) = map.get_mut(key) else {
                    continue;
                };
                alternatives.retain(|alternative| alternative.get("type").is_none_or(|kind| kind != "null"));
                if alternatives.len() == 1
                    && let Some(Value::Object(only)) = alternatives.pop()
                {
                    map.remove(key);
                    for (inner, value) in only {
                        map.entry(inner).or_insert(value);
                    }
                }
            }
            map.values_mut().for_each(portable_schema);
        }
        Value::Array(items) => items.iter_mut().for_each(portable_schema),
        _ => {}
    }
}

/// Tool hints; every tool here acts only on the configured backends and database (closed world).
pub(crate) fn annotations(read_only: bool, destructive: bool, idempotent: bool) -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(read_only)
        .destructive(destructive)
        .idempotent(idempotent)
        .open_world(false)
}

pub(crate) fn read_only() -> ToolAnnotations {
    annotations(true, false, true)
}

impl ComfyServer {
    /// Whether tools may read and write files on this machine: the configured value, else true on
    /// stdio and false on HTTP.
    pub(crate) fn local_files_allowed(&self) -> bool {
        self.settings.allow_local_files.unwrap_or(self.local_files)
    }
}

/// When one call's bounded wait ends. It starts when the call does, so the work before a job is
/// queued (node definitions, validation, recording) counts against it, not only the follow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitBound {
    deadline: std::time::Instant,
}

impl WaitBound {
    fn new(limit: std::time::Duration) -> Self {
        WaitBound {
            deadline: std::time::Instant::now() + limit,
        }
    }

    /// What is left of the wait now (zero once it has passed).
    pub(crate) fn remaining(&self) -> std::time::Duration {
        self.deadline.saturating_duration_since(std::time::Instant::now())
    }
}

/// The bounded wait of one call: what the caller asked for (or `default`), never more than the
/// configured limit.
pub(crate) fn wait_limit(
    server: &ComfyServer,
    requested: Option<f64>,
    default: std::time::Duration,
) -> Result<WaitBound, CallToolResult> {
    wait_duration(server.engine.config.wait, requested, default).map(WaitBound::new)
}

fn wait_duration(
    limit: std::time::Duration,
    requested: Option<f64>,
    default: std::time::Duration,
) -> Result<std::time::Duration, CallToolResult> {
    match requested {
        None => Ok(default.min(limit)),
        // Clamped before the conversion: `Duration::from_secs_f64` panics past about 1.8e19.
        Some(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(std::time::Duration::from_secs_f64(
            seconds.min(limit.as_secs_f64()),
        )),
        Some(seconds) => Err(render::error_text(format!(
            "wait_seconds must be a number of seconds >= 0, got {seconds}"
        ))),
    }
}

/// Parses tool arguments; a mistake becomes a readable tool error the model can correct.
fn arguments<T: DeserializeOwned>(tool: &str, raw: Option<Map<String, Value>>) -> Result<T, CallToolResult> {
    serde_json::from_value(Value::Object(raw.unwrap_or_default()))
        .map_err(|error| render::error_text(format!("invalid arguments for {tool}: {error}")))
}

/// Follows a job until it ends or the call's wait is over, sending the client progress
/// notifications (when it asked for them) that name the running node.
pub(crate) async fn follow_job(
    server: &ComfyServer,
    entry: &comfy_engine::BackendEntry,
    subscription: &mut comfy_engine::types::JobSubscription,
    limit: &WaitBound,
    cancel: &tokio_util::sync::CancellationToken,
    context: &RequestContext<RoleServer>,
) -> Result<comfy_engine::jobs::WaitOutcome, comfy_engine::EngineError> {
    let progress = ProgressSender::new(context);
    let report = |report| {
        let progress = progress.clone();
        async move { progress.send(report).await }
    };
    server
        .engine
        .follow(entry, subscription, limit.remaining(), cancel, report)
        .await
}

/// How a wait ended, rendered with previews of the first images (which the engine fetches).
pub(crate) async fn job_answer(
    server: &ComfyServer,
    entry: &comfy_engine::BackendEntry,
    outcome: &comfy_engine::jobs::WaitOutcome,
    parameters: Option<Value>,
) -> CallToolResult {
    let previews = server
        .engine
        .result_previews(entry, &outcome.snapshot().outputs)
        .await;
    render::job_result(entry, outcome, parameters, previews)
}

/// The address an HTTP connection comes from; the HTTP transport puts it in each request's
/// extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddress(pub std::net::SocketAddr);

/// What limits on guessing count against: the connection, never the client's self-declared name
/// (a client can call itself anything, including another client's name). Over HTTP the peer's IP
/// address, whatever session it opens; over stdio this process, which serves one local user.
pub(crate) fn connection_key(context: &RequestContext<RoleServer>) -> String {
    match context.extensions.get::<http::request::Parts>() {
        Some(parts) => match parts.extensions.get::<PeerAddress>() {
            Some(PeerAddress(address)) => format!("http {}", address.ip()),
            None => "http (peer unknown)".to_owned(),
        },
        None => format!("stdio process {}", std::process::id()),
    }
}

/// Sends MCP progress notifications for a request that asked for them.
#[derive(Clone)]
struct ProgressSender {
    token: Option<rmcp::model::ProgressToken>,
    peer: rmcp::Peer<RoleServer>,
}

impl ProgressSender {
    fn new(context: &RequestContext<RoleServer>) -> Self {
        ProgressSender {
            token: context.meta.get_progress_token(),
            peer: context.peer.clone(),
        }
    }

    async fn send(&self, report: ProgressReport) {
        if let Some(token) = &self.token {
            let notification = ProgressNotificationParam::new(token.clone(), report.percent)
                .with_total(100.0)
                .with_message(report.message);
            // A client that went away only means nobody is listening.
            let _ = self.peer.notify_progress(notification).await;
        }
    }
}

impl ServerHandler for ComfyServer {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::builder().enable_tools();
        // Saved workflows are tools, so a workflows directory makes the tool list change; so does
        // enabling a toolset.
        if self.engine.workflows_directory().is_some() || self.catalog.is_dynamic() {
            capabilities = capabilities.enable_tool_list_changed();
        }
        ServerConfig::new(capabilities.enable_resources().build())
            .with_server_info(Implementation::new("comfyui-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = self.visible_tools();
        tools.extend(workflows::saved_workflow_tools(self).await);
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.catalog
            .find(name, &self.enabled_toolsets())
            .or_else(|| workflows::cached_saved_workflow_tool(self, name))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.engine.prefetch_object_info();
        if self.engine.workflows_directory().is_some() {
            self.list_changed.register(context.peer);
        }
    }

    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        let _ = requested;
        self.engine.workflows_directory().map(|_| {
            rmcp::model::SubscriptionFilter::builder()
                .tools_list_changed()
                .build()
        })
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let Some(mut changes) = self.engine.workflow_changes() else {
            context.cancelled().await;
            return Ok(());
        };
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if let Err(error) = context.sink().notify_tool_list_changed().await {
                        tracing::debug!(%error, "tools/list_changed not delivered");
                    }
                }
            }
        }
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let listed = self.catalog.is_visible(&request.name, &self.enabled_toolsets());
        if !listed && !workflows::is_saved_workflow_tool(self, &request.name).await {
            return Err(ErrorData::invalid_params(
                format!("unknown tool {:?}", request.name),
                None,
            ));
        }
        let name = request.name.to_string();
        let started = std::time::Instant::now();
        let raw_arguments = Value::Object(request.arguments.clone().unwrap_or_default());
        let digest = comfy_engine::types::content_hash(&redact(&raw_arguments));
        let dispatch = async {
            if let Some(answer) = self
                .call_catalog_tool(&name, request.arguments.clone(), &context)
                .await
            {
                return Some(answer);
            }
            for toolset in TOOLSETS {
                if let Some(answer) = (toolset.call)(self, &name, request.arguments.clone(), &context).await {
                    return Some(answer);
                }
            }
            if listed {
                return None;
            }
            workflows::call_saved_workflow(self, &name, request.arguments.clone(), &context).await
        };
        // Input is checked at the boundary; this is the net under a bug that slipped past it: one
        // call fails, the server and every other session go on.
        let result = match std::panic::AssertUnwindSafe(dispatch).catch_unwind().await {
            Ok(result) => result,
            Err(_) => {
                tracing::error!(tool = %name, "a tool call panicked; answered with an error");
                Some(render::error_text(format!(
                    "internal error in {name}: this is a bug in comfyui-mcp (the server keeps running); please report it with the arguments"
                )))
            }
        };
        let result = result
            .unwrap_or_else(|| render::error_text(format!("tool {name:?} has no handler in this build")));
        let result = bounded(&name, result);
        let failed = result.is_error.unwrap_or(false);
        let elapsed_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        tracing::info!(tool = %name, error = failed, elapsed_ms, "tool call");
        let client = context
            .peer
            .peer_info()
            .map(|info| format!("{} {}", info.client_info.name, info.client_info.version));
        let detail = if failed {
            result.content.iter().find_map(|block| {
                block.as_text().map(|text| {
                    redact_text(&text.text, &raw_arguments)
                        .chars()
                        .take(300)
                        .collect::<String>()
                })
            })
        } else {
            None
        };
        let entry = comfy_engine::types::AuditEntry {
            at_ms: comfy_engine::types::now_ms(),
            client,
            tool: name,
            argument_digest: Some(digest),
            outcome: if failed {
                comfy_engine::types::AuditOutcome::Failure
            } else {
                comfy_engine::types::AuditOutcome::Success
            },
            duration_ms: elapsed_ms,
            detail,
        };
        if let Err(error) = self.engine.record_audit(entry).await {
            tracing::warn!(%error, "audit entry not recorded");
        }
        Ok(CallToolResponse::Complete(result))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = self
            .engine
            .recent_outputs(50)
            .await
            .iter()
            .map(|(entry, output)| render::output_resource(entry, output))
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            render::output_template(),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let (backend, file) = render::parse_output_uri(&request.uri).ok_or_else(|| {
            ErrorData::resource_not_found(format!("not a comfyui output URI: {}", request.uri), None)
        })?;
        let (bytes, media_type) = self
            .engine
            .read_output(&backend, &file)
            .await
            .map_err(|error| ErrorData::resource_not_found(error.to_string(), None))?;
        use base64::Engine as _;
        let blob = base64::engine::general_purpose::STANDARD.encode(&bytes);
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(vec![
            ResourceContents::BlobResourceContents {
                uri: request.uri,
                mime_type: Some(media_type.to_owned()),
                blob,
                meta: None,
            },
        ])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_toolset_is_configurable() {
        // Several entries may share one toolset name: compare each name once, in first-seen order.
        let mut names: Vec<&str> = Vec::new();
        for name in toolset_names() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        assert_eq!(names, crate::settings::KNOWN_TOOLSETS);
    }

    #[test]
    fn waits_of_any_size_are_bounded_without_panicking() {
        let limit = std::time::Duration::from_secs(45);
        let zero = std::time::Duration::ZERO;
        for huge in [1e20, f64::MAX, 1.8e19, 45.000_001] {
            assert_eq!(wait_duration(limit, Some(huge), zero).ok(), Some(limit), "{huge}");
        }
        assert_eq!(
            wait_duration(limit, Some(1.5), zero).ok(),
            Some(std::time::Duration::from_millis(1500))
        );
        for bad in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(wait_duration(limit, Some(bad), zero).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_never_reach_the_audit_digest() {
        let arguments = json!({"name": "p", "password": "hunter2", "nested": [{"access_code": "ABCD"}], "data_base64": "xx"});
        let redacted = redact(&arguments);
        let text = redacted.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("ABCD") && !text.contains("\"xx\""),
            "{text}"
        );
        assert_eq!(redacted["name"], "p");
    }

    #[test]
    fn schemas_have_no_null_unions() {
        let mut all = Vec::new();
        for toolset in TOOLSETS {
            all.extend((toolset.tools)());
        }
        for tool in all {
            let text = serde_json::to_string(tool.input_schema.as_ref()).unwrap();
            assert!(!text.contains("\"null\""), "{}: {text}", tool.name);
            assert!(!text.contains("\"default\":null"), "{}: {text}", tool.name);
        }
        let mut schema = json!({"anyOf": [{"$ref": "#/$defs/X"}, {"type": "null"}], "description": "d"});
        portable_schema(&mut schema);
        assert_eq!(schema, json!({"$ref": "#/$defs/X", "description": "d"}));
    }

    #[test]
    fn oversized_results_become_errors() {
        let small = CallToolResult::success(vec![rmcp::model::ContentBlock::text("ok")]);
        assert_eq!(bounded("t", small).is_error, Some(false));
        let huge = CallToolResult::success(vec![rmcp::model::ContentBlock::text(
            "x".repeat(MAXIMUM_RESULT_BYTES + 1),
        )]);
        let answer = bounded("validate_workflow", huge);
        assert_eq!(answer.is_error, Some(true));
        assert!(result_size(&answer) < 1024);
    }

    #[test]
    fn secrets_are_cut_from_stored_error_text() {
        let arguments =
            json!({"action": "import_code", "code": "ABCD-EFGH", "password": 123456789, "name": "p"});
        let error = "invalid arguments for preset_share: invalid type: integer `123456789`, expected a string; code ABCD-EFGH";
        let stored = redact_text(error, &arguments);
        assert!(
            !stored.contains("123456789") && !stored.contains("ABCD-EFGH"),
            "{stored}"
        );
        assert!(stored.contains("preset_share"), "{stored}");
    }
}
