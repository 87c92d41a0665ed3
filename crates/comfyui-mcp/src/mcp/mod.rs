//! The MCP face of the engine: one rmcp `ServerHandler` that lists the enabled toolsets' tools,
//! dispatches calls to them, audits every call and serves full-size outputs as resources. This
//! module wires the children together; they import the shared plumbing (`tool`, `server`,
//! `render`), never this module, so no child imports its parent.

mod analysis;
mod ask;
mod catalog;
mod core;
mod edit;
mod enhance;
mod experiments;
mod images;
mod insights;
mod library;
mod presets;
mod prompting;
pub mod render;
mod server;
mod styles;
mod templates;
mod tool;
mod toolsets;
mod workflows;

use std::sync::Arc;

use futures_util::FutureExt as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, JsonObject,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
    ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig, SubscribeRequestParams, Tool,
    UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;

use catalog::{Catalog, Toolset};
use comfy_engine::Engine;
pub use server::ComfyServer;
pub use tool::PeerAddress;

const INSTRUCTIONS: &str = "Drives ComfyUI servers. Start with generate_image (text to image) or run_workflow \
(any workflow, API or UI format; overrides by parameter name such as prompt or seed). Long jobs return a job_id after a bounded wait: call get_job to keep waiting. \
Use list_models and search_nodes/describe_node to discover what the backend has; errors name what is \
missing and suggest close matches. ComfyUI's official templates (video, audio, image editing, 3D, every \
model family) are the templates toolset (enable it with enable_toolset, or --toolsets core,templates): \
search_templates says what runs here and what is missing, run_template runs one.";

/// Every toolset. A new toolset is one file with its `TOOLS` and one entry here.
const TOOLSETS: &[Toolset] = &[
    Toolset {
        name: "core",
        description: "Generate images, run workflows, follow and cancel jobs, models and nodes, outputs and uploads.",
        tools: core::TOOLS,
    },
    Toolset {
        name: "workflows",
        description: "Convert, validate and inspect workflows; presets with versions and sharing.",
        tools: presets::TOOLS,
    },
    Toolset {
        name: "workflows",
        description: "Convert, validate and inspect workflows; presets with versions and sharing.",
        tools: workflows::TOOLS,
    },
    Toolset {
        name: "workflows",
        description: "Convert, validate and inspect workflows; presets with versions and sharing.",
        tools: styles::TOOLS,
    },
    Toolset {
        name: "templates",
        description: "ComfyUI's official workflow templates for image, editing, video, audio and 3D: search with availability, describe, run.",
        tools: templates::TOOLS,
    },
    Toolset {
        name: "library",
        description: "Search, compare, tag and export the outputs this server produced; retention.",
        tools: library::TOOLS,
    },
    Toolset {
        name: "insights",
        description: "Job timings, generation-time estimates, the audit log, and experiments: A/B tests of prompts or parameters with a stated verdict.",
        tools: insights::TOOLS,
    },
    Toolset {
        name: "insights",
        description: "Job timings, generation-time estimates, the audit log, and experiments: A/B tests of prompts or parameters with a stated verdict.",
        tools: experiments::TOOLS,
    },
    Toolset {
        name: "edit",
        description: "Native pixel tools, no backend work: masks from alpha, colours, luminance and shapes; blends; colour correction; crop, rotate, flip, resize, pad for outpainting.",
        tools: edit::TOOLS,
    },
    Toolset {
        name: "enhance",
        description: "Backend work on existing images: upscaling with a model or resampling, progressive passes, tiled img2img refinement.",
        tools: enhance::TOOLS,
    },
    Toolset {
        name: "analysis",
        description: "Native image measures: SSIM, PSNR, perceptual-hash and histogram comparison with a difference heatmap; exposure, contrast, colour, sharpness, palette and rule-of-thirds statistics; prompt rewriting by the client's model.",
        tools: analysis::TOOLS,
    },
    Toolset {
        name: "analysis",
        description: "Native image measures: SSIM, PSNR, perceptual-hash and histogram comparison with a difference heatmap; exposure, contrast, colour, sharpness, palette and rule-of-thirds statistics; prompt rewriting by the client's model.",
        tools: prompting::TOOLS,
    },
];

/// Names of every toolset this build has.
pub fn toolset_names() -> Vec<&'static str> {
    TOOLSETS.iter().map(|toolset| toolset.name).collect()
}

/// One tool as this build declares it, for `comfyui-mcp tools` and tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ToolSummary {
    pub name: &'static str,
    pub toolset: &'static str,
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub description: &'static str,
}

/// Every tool this build has (saved-workflow tools aside, which depend on a directory), with the
/// dynamic mode's own two under the toolset name `dynamic`.
pub fn every_tool() -> Vec<ToolSummary> {
    let dynamic = toolsets::TOOLS.iter().map(|declaration| ("dynamic", declaration));
    catalog::every_tool(TOOLSETS)
        .chain(dynamic)
        .map(|(toolset, declaration)| ToolSummary {
            name: declaration.name,
            toolset,
            read_only: declaration.hints.read_only,
            destructive: declaration.hints.destructive,
            idempotent: declaration.hints.idempotent,
            description: declaration.description,
        })
        .collect()
}

impl ComfyServer {
    pub fn new(engine: Arc<Engine>, settings: Arc<crate::settings::Settings>, local_files: bool) -> Self {
        let catalog = Arc::new(Catalog::new(&settings, TOOLSETS, toolsets::TOOLS));
        let list_changed = Arc::new(server::ListChangedPeers::default());
        server::forward_list_changes(&engine, list_changed.clone());
        ComfyServer {
            engine,
            settings,
            catalog,
            enabled: Arc::default(),
            local_files,
            download_route: false,
            subscriptions: Arc::default(),
            list_changed,
        }
    }

    /// This server is reached over HTTP, which also streams files at [`render::DOWNLOAD_ROUTE`].
    pub fn with_download_route(mut self) -> Self {
        self.download_route = true;
        self
    }
}

impl ComfyServer {
    /// A job's latest sampler frame as a resource.
    fn read_live_preview(&self, uri: String, job_id: &str) -> Result<ReadResourceResponse, ErrorData> {
        let frame = self.engine.live_preview(job_id).ok_or_else(|| {
            ErrorData::resource_not_found(
                format!(
                    "no preview frame has come for job {job_id} (ComfyUI sends them while a sampler runs, when asked: COMFYUI_MCP_PREVIEW_METHOD)"
                ),
                None,
            )
        })?;
        use base64::Engine as _;
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(vec![
            ResourceContents::BlobResourceContents {
                uri,
                mime_type: Some(frame.media_type),
                blob: base64::engine::general_purpose::STANDARD.encode(&frame.image),
                meta: None,
            },
        ])))
    }
}

/// Checks the operator's tool choices against the tools this build has, so a typo in `--tools`
/// fails at start instead of silently hiding a tool.
pub fn check_tool_choices(settings: &crate::settings::Settings) -> Result<(), String> {
    if settings.tools.is_none() && settings.exclude_tools.is_empty() {
        // Nothing to check, and building every tool's schema would only slow the start.
        return Ok(());
    }
    let known: std::collections::BTreeSet<String> = catalog::every_tool(TOOLSETS)
        .map(|(_, declaration)| declaration.name.to_owned())
        .collect();
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
/// copy of a result that may hold a preview; other blocks (links) are small and serialized, and so
/// is the structured content (a structured result holds no preview).
fn result_size(result: &CallToolResult) -> usize {
    let content: usize = result
        .content
        .iter()
        .map(|block| match (block.as_text(), block.as_image()) {
            (Some(text), _) => text.text.len(),
            (_, Some(image)) => image.data.len(),
            _ => serde_json::to_string(block).map_or(0, |text| text.len()),
        })
        .sum();
    let structured = result.structured_content.as_ref().map_or(0, |value| {
        serde_json::to_string(value).map_or(0, |text| text.len())
    });
    content + structured
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

/// Longest secret value kept to cut from stored text: a stored error detail is 300 characters, and
/// longer values under secret keys are uploads (`data_base64`), not passwords; copying them would
/// copy the upload.
const LONGEST_SECRET: usize = 4096;

fn collect_scalars(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) if !text.is_empty() && text.len() <= LONGEST_SECRET => found.push(text.clone()),
        Value::Number(number) => found.push(number.to_string()),
        Value::Bool(_) | Value::Null | Value::String(_) => {}
        Value::Array(items) => items.iter().for_each(|item| collect_scalars(item, found)),
        Value::Object(map) => map.values().for_each(|item| collect_scalars(item, found)),
    }
}

/// The secret values among a call's arguments, longest first (so a secret that contains another
/// is cut whole).
fn secrets_of(arguments: &JsonObject) -> Vec<String> {
    let mut secrets = Vec::new();
    for (key, value) in arguments {
        if is_secret_key(key) {
            collect_scalars(value, &mut secrets);
        } else {
            secret_values(value, &mut secrets);
        }
    }
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets
}

/// `text` with every secret argument value cut out, for what is stored (an error message may quote
/// the value it could not parse).
fn redact_text(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_owned(), |text, secret| {
        text.replace(secret.as_str(), "<redacted>")
    })
}

/// A call's arguments (or any object in them) with every secret value replaced; what its audit
/// digest is taken of.
fn redact_object(arguments: &JsonObject) -> Value {
    Value::Object(
        arguments
            .iter()
            .map(|(key, value)| {
                if is_secret_key(key) {
                    (key.clone(), Value::String("<redacted>".to_owned()))
                } else {
                    (key.clone(), redact(value))
                }
            })
            .collect(),
    )
}

fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => redact_object(map),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
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
        ServerConfig::new(
            capabilities
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
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
        mut request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let handler = self.catalog.handler(&request.name, &self.enabled_toolsets());
        if handler.is_none() && !workflows::is_saved_workflow_tool(self, &request.name).await {
            return Err(ErrorData::invalid_params(
                format!("unknown tool {:?}", request.name),
                None,
            ));
        }
        let name = request.name.to_string();
        let started = std::time::Instant::now();
        // The arguments move into the handler; what the audit needs is taken first: a digest of
        // their redacted form, and the secret values to cut from a stored error message.
        let arguments = request.arguments.take().unwrap_or_default();
        let digest = comfy_engine::types::content_hash(&redact_object(&arguments));
        let secrets = secrets_of(&arguments);
        // Answers a retried call brought (2026-07-28 era), and room for the questions this one asks.
        let exchange =
            ask::InputExchange::new(request.input_responses.take(), request.request_state.as_deref());
        context.extensions.insert(exchange.clone());
        let dispatch = async {
            match handler {
                Some(handler) => Some(handler(self, arguments, &context).await),
                None => workflows::call_saved_workflow(self, &name, Some(arguments), &context).await,
            }
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
        if let Some(input_required) = exchange.input_required() {
            tracing::info!(tool = %name, "tool call waits for the client's input");
            return Ok(CallToolResponse::InputRequired(input_required));
        }
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
                    redact_text(&text.text, &secrets)
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
            render::live_preview_template(),
        ]))
    }

    #[allow(deprecated)] // rmcp marks resources/subscribe legacy: 2025 clients still use it.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let Some(job_id) = render::parse_live_preview_uri(&request.uri) else {
            return Err(ErrorData::invalid_params(
                format!(
                    "only live previews can be subscribed to ({}), not {}",
                    render::live_preview_uri("JOB_ID"),
                    request.uri
                ),
                None,
            ));
        };
        // An unknown job is an error; a finished one sends no more frames, so needs no watcher
        // (its last frame can still be read).
        let (_, job) = self
            .engine
            .job(&job_id)
            .await
            .map_err(|error| ErrorData::invalid_params(error.to_string(), None))?;
        if job.current().phase.is_final() {
            return Ok(());
        }
        let stop = self.subscriptions.replace(&request.uri);
        let (peer, uri) = (context.peer.clone(), request.uri);
        self.engine.watch_live_preview(job_id, stop, move || {
            let (peer, uri) = (peer.clone(), uri.clone());
            async move {
                peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                    .await
                    .is_ok()
            }
        });
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions.remove(&request.uri);
        Ok(())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if let Some(job_id) = render::parse_live_preview_uri(&request.uri) {
            return self.read_live_preview(request.uri, &job_id);
        }
        let (backend, file) = render::parse_output_uri(&request.uri).ok_or_else(|| {
            ErrorData::resource_not_found(format!("not a comfyui output URI: {}", request.uri), None)
        })?;
        let (bytes, media_type) = self.engine.read_output(&backend, &file).await.map_err(|error| {
            let mut message = error.to_string();
            if self.download_route && matches!(error, comfy_engine::EngineError::TooLarge { .. }) {
                let path = render::download_path(&backend, &file);
                message.push_str(&format!("; this server streams it whole at GET {path}"));
            }
            ErrorData::resource_not_found(message, None)
        })?;
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
        use tool::wait_duration;
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
        let all = catalog::every_tool(TOOLSETS)
            .chain(toolsets::TOOLS.iter().map(|declaration| ("dynamic", declaration)));
        for tool in all.map(|(_, declaration)| declaration.tool()) {
            let text = serde_json::to_string(tool.input_schema.as_ref()).unwrap();
            assert!(!text.contains("\"null\""), "{}: {text}", tool.name);
            assert!(!text.contains("\"default\":null"), "{}: {text}", tool.name);
        }
        let mut schema = json!({"anyOf": [{"$ref": "#/$defs/X"}, {"type": "null"}], "description": "d"});
        tool::portable_schema(&mut schema);
        assert_eq!(schema, json!({"$ref": "#/$defs/X", "description": "d"}));
    }

    /// Every `$ref` in `schema`, with where it is.
    fn references(schema: &serde_json::Value, found: &mut Vec<String>) {
        match schema {
            serde_json::Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(serde_json::Value::as_str) {
                    found.push(reference.to_owned());
                }
                map.values().for_each(|value| references(value, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|value| references(value, found)),
            _ => {}
        }
    }

    /// What the Inspector's portability check refuses in a schema: a bare `true` or `false` where a
    /// schema belongs, a schema with no validating keyword (anything goes), a `type` array.
    fn unportable(schema: &serde_json::Value, at: &str, found: &mut Vec<String>) {
        const VALIDATING: &[&str] = &["type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const"];
        let Some(map) = schema.as_object() else {
            found.push(format!("{at}: bare {schema}"));
            return;
        };
        if !VALIDATING.iter().any(|keyword| map.contains_key(*keyword)) {
            found.push(format!("{at}: no validating keyword"));
        }
        if map.get("type").is_some_and(serde_json::Value::is_array) {
            found.push(format!("{at}: a type array"));
        }
        for key in ["properties", "$defs"] {
            for (name, inner) in map
                .get(key)
                .and_then(serde_json::Value::as_object)
                .into_iter()
                .flatten()
            {
                unportable(inner, &format!("{at}/{key}/{name}"), found);
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            for (index, inner) in map
                .get(key)
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                unportable(inner, &format!("{at}/{key}/{index}"), found);
            }
        }
        if let Some(items) = map.get("items") {
            unportable(items, &format!("{at}/items"), found);
        }
    }

    #[test]
    fn output_schemas_are_portable_objects() {
        let all: Vec<_> = catalog::every_tool(TOOLSETS)
            .chain(toolsets::TOOLS.iter().map(|declaration| ("dynamic", declaration)))
            .collect();
        let mut structured = Vec::new();
        for (_, declaration) in &all {
            let tool = declaration.tool();
            let Some(schema) = tool.output_schema.as_deref() else {
                continue;
            };
            structured.push(declaration.name);
            let name = declaration.name;
            assert_eq!(schema.get("type"), Some(&json!("object")), "{name}: {schema:?}");
            let text = serde_json::to_string(schema).unwrap();
            assert!(!text.contains("\"null\""), "{name}: {text}");
            assert!(!text.contains("\"default\":null"), "{name}: {text}");
            let root = serde_json::Value::Object(schema.clone());
            let mut findings = Vec::new();
            unportable(&root, "", &mut findings);
            assert!(findings.is_empty(), "{name}: {findings:#?}");
            let mut found = Vec::new();
            references(&root, &mut found);
            for reference in found {
                let target = reference
                    .strip_prefix('#')
                    .and_then(|pointer| root.pointer(pointer));
                assert!(target.is_some(), "{name}: $ref {reference} resolves to nothing");
            }
        }
        for expected in [
            "status",
            "list_models",
            "search_nodes",
            "describe_node",
            "list_jobs",
            "cancel_job",
            "upload_image",
            "search_outputs",
            "find_similar_images",
            "job_metrics",
            "estimate_generation_time",
            "audit_log",
            "list_toolsets",
            "enable_toolset",
        ] {
            assert!(structured.contains(&expected), "{expected} has no output schema");
        }
    }

    #[test]
    fn only_declared_outputs_become_structured_content() {
        // A structured result comes only from a declaration with an output type (the macro renders
        // it with render::structured_result), so no tool answers structured content without a schema.
        for (file, text) in [
            ("core.rs", include_str!("core.rs")),
            ("insights.rs", include_str!("insights.rs")),
            ("library.rs", include_str!("library.rs")),
            ("presets.rs", include_str!("presets.rs")),
            ("toolsets.rs", include_str!("toolsets.rs")),
            ("workflows.rs", include_str!("workflows.rs")),
            (
                "mod.rs",
                include_str!("mod.rs")
                    .split("#[cfg(test)]")
                    .next()
                    .unwrap_or_default(),
            ),
        ] {
            for pattern in [
                "structured_content =",
                "structured_content: Some",
                "CallToolResult::structured",
                "structured_result(",
            ] {
                assert!(
                    !text.contains(pattern),
                    "{file} makes structured content itself ({pattern})"
                );
            }
        }
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
        let arguments = arguments.as_object().cloned().unwrap_or_default();
        let stored = redact_text(error, &secrets_of(&arguments));
        assert!(
            !stored.contains("123456789") && !stored.contains("ABCD-EFGH"),
            "{stored}"
        );
        assert!(stored.contains("preset_share"), "{stored}");
    }
}
