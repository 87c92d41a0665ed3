//! The plumbing every toolset shares: one declaration per tool (name, description, hints, the
//! argument type its schema and its parser come from, and the handler), argument parsing, the
//! bounded wait of a call, following a job with progress, and rendering how a wait ended.
//! Toolset files import this module and `server`; nothing here imports a toolset.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use rmcp::RoleServer;
use rmcp::model::{CallToolResult, JsonObject, ProgressNotificationParam, Tool, ToolAnnotations};
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::render;
use super::server::ComfyServer;
use comfy_engine::jobs::ProgressReport;

/// What a handler answers: `Err` is a tool error too (a result with `is_error`), so `?` works on
/// anything that renders as one.
pub(crate) type ToolOutcome = Result<CallToolResult, CallToolResult>;

/// A tool's handler: takes the arguments as they came (owned: nothing is copied on the way) and
/// answers. Made by [`declare_tool!`] from a typed handler.
pub(crate) type Handler =
    for<'a> fn(&'a ComfyServer, JsonObject, &'a RequestContext<RoleServer>) -> BoxFuture<'a, CallToolResult>;

/// What a tool does to the world, as MCP's annotations say it. Every tool here acts only on the
/// configured backends and database (a closed world).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
}

impl Hints {
    /// Reads only; asking twice answers the same.
    pub const READ_ONLY: Hints = Hints::new(true, false, true);
    /// Adds something (a job, a record, a file) and removes nothing.
    pub const CREATES: Hints = Hints::new(false, false, false);
    /// Changes something in place; doing it twice changes nothing more.
    pub const UPDATES: Hints = Hints::new(false, false, true);
    /// Removes or stops something; doing it twice changes nothing more.
    pub const REMOVES: Hints = Hints::new(false, true, true);

    pub const fn new(read_only: bool, destructive: bool, idempotent: bool) -> Hints {
        Hints {
            read_only,
            destructive,
            idempotent,
        }
    }

    fn annotations(self) -> ToolAnnotations {
        ToolAnnotations::new()
            .read_only(self.read_only)
            .destructive(self.destructive)
            .idempotent(self.idempotent)
            .open_world(false)
    }
}

/// One tool, declared once: everything `tools/list` shows and the handler `tools/call` runs.
pub(crate) struct ToolDeclaration {
    pub name: &'static str,
    pub description: &'static str,
    pub hints: Hints,
    /// The input schema, derived from the very type the handler receives.
    pub schema: fn() -> JsonObject,
    pub handler: Handler,
}

impl ToolDeclaration {
    /// The tool as `tools/list` shows it.
    pub(crate) fn tool(&self) -> Tool {
        Tool::new(self.name, self.description, Arc::new((self.schema)()))
            .with_annotations(self.hints.annotations())
    }
}

/// Declares a tool from its name, description, hints, argument type and typed handler
/// (`async fn(&ComfyServer, Arguments, &RequestContext<RoleServer>) -> ToolOutcome`). The schema
/// and the parser both come from the argument type, so they cannot disagree.
macro_rules! declare_tool {
    ($name:literal, $description:expr, $hints:expr, $arguments:ty, $handler:path $(,)?) => {
        $crate::mcp::tool::ToolDeclaration {
            name: $name,
            description: $description,
            hints: $hints,
            schema: $crate::mcp::tool::schema_of::<$arguments>,
            handler: |server, raw, context| {
                Box::pin(async move {
                    match $crate::mcp::tool::parse::<$arguments>($name, raw) {
                        Ok(arguments) => $handler(server, arguments, context)
                            .await
                            .unwrap_or_else(|error| error),
                        Err(error) => error,
                    }
                })
            },
        }
    };
}
pub(crate) use declare_tool;

/// The portable JSON Schema of `T` (see [`portable_schema`]). A multi-action tool's arguments are
/// a tagged enum; its schema is flattened into one object (see [`flatten_actions`]).
pub(crate) fn schema_of<T: JsonSchema + 'static>() -> JsonObject {
    let derived = rmcp::handler::server::common::schema_for_type::<T>();
    let mut schema = Value::Object(derived.as_ref().clone());
    flatten_actions(&mut schema);
    portable_schema(&mut schema);
    match schema {
        Value::Object(mut schema) => {
            // As rmcp does for structs: the tool's own description says what the schema's would.
            schema.remove("title");
            schema.remove("description");
            schema
        }
        _ => JsonObject::new(),
    }
}

/// Rewrites the `oneOf` of a tagged enum (one object per action, each with an `action` constant)
/// as one object: `action` is an enum whose description lists every action with what it does and
/// the fields it takes (`*` required), and each field says which actions use it. Clients see
/// every action's own fields without a top-level `oneOf`, which several MCP clients and model
/// APIs refuse in a tool's input schema; the server still parses each action with its own fields.
fn flatten_actions(schema: &mut Value) {
    let Some(Value::Array(variants)) = schema.get("oneOf").cloned() else {
        return;
    };
    let mut actions = Vec::new();
    let mut lines = Vec::new();
    let mut properties = serde_json::Map::new();
    let mut users: Vec<(String, Vec<String>)> = Vec::new();
    for variant in &variants {
        let Some(action) = variant
            .pointer("/properties/action/const")
            .or_else(|| variant.pointer("/properties/action/enum/0"))
            .and_then(Value::as_str)
        else {
            return;
        };
        let required: Vec<&str> = variant["required"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields = Vec::new();
        for (field, field_schema) in variant["properties"].as_object().into_iter().flatten() {
            if field == "action" {
                continue;
            }
            let mark = if required.contains(&field.as_str()) {
                "*"
            } else {
                ""
            };
            fields.push(format!("{field}{mark}"));
            properties
                .entry(field.clone())
                .or_insert_with(|| field_schema.clone());
            let use_line = format!("{action}{}", if mark.is_empty() { "" } else { " (required)" });
            match users.iter_mut().find(|(name, _)| name == field) {
                Some((_, list)) => list.push(use_line),
                None => users.push((field.clone(), vec![use_line])),
            }
        }
        let what = variant["description"]
            .as_str()
            .unwrap_or_default()
            .replace('\n', " ");
        lines.push(format!(
            "{action}: {what} Takes: {}.",
            if fields.is_empty() {
                "nothing else".to_owned()
            } else {
                fields.join(", ")
            }
        ));
        actions.push(Value::String(action.to_owned()));
    }
    for (field, list) in users {
        if let Some(Value::Object(property)) = properties.get_mut(&field) {
            let description = property
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let everywhere =
                list.len() == actions.len() && list.iter().all(|line| line.ends_with("(required)"));
            let used = if everywhere {
                "Required by every action.".to_owned()
            } else {
                format!("Used by: {}.", list.join(", "))
            };
            let text = format!("{description} {used}").trim().to_owned();
            property.insert("description".to_owned(), Value::String(text));
        }
    }
    properties.insert(
        "action".to_owned(),
        serde_json::json!({"type": "string", "enum": actions, "description": lines.join("\n")}),
    );
    // Properties first, so a client that shows them in order shows `action` first.
    let mut ordered = serde_json::Map::new();
    ordered.insert(
        "action".to_owned(),
        properties.remove("action").unwrap_or(Value::Null),
    );
    ordered.extend(properties);
    if let Value::Object(map) = schema {
        map.remove("oneOf");
        map.insert("type".to_owned(), Value::String("object".to_owned()));
        map.insert("properties".to_owned(), Value::Object(ordered));
        map.insert("required".to_owned(), serde_json::json!(["action"]));
        map.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
}

/// A property that accepts any JSON (a workflow, a bundle) says it is a free-form object: a schema
/// without any validation keyword reads as "anything" and clients warn about it. The server still
/// takes such a value sent as a JSON string.
fn declare_free_form(property: &mut Value) {
    const VALIDATING: &[&str] = &[
        "type",
        "$ref",
        "anyOf",
        "oneOf",
        "allOf",
        "enum",
        "const",
        "properties",
        "items",
        "not",
    ];
    if let Value::Object(map) = property
        && !VALIDATING.iter().any(|keyword| map.contains_key(*keyword))
    {
        map.insert("type".to_owned(), Value::String("object".to_owned()));
        map.insert("additionalProperties".to_owned(), Value::Bool(true));
    }
}

/// Parses a tool's arguments; a mistake becomes a readable tool error the model can correct.
pub(crate) fn parse<T: DeserializeOwned>(tool: &str, raw: JsonObject) -> Result<T, CallToolResult> {
    serde_json::from_value(Value::Object(raw))
        .map_err(|error| render::error_text(format!("invalid arguments for {tool}: {error}")))
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
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                properties.values_mut().for_each(declare_free_form);
            }
            map.values_mut().for_each(portable_schema);
        }
        Value::Array(items) => items.iter_mut().for_each(portable_schema),
        _ => {}
    }
}

/// When one call's bounded wait ends. It starts when the call does, so the work before a job is
/// queued (node definitions, validation, recording) counts against it, not only the follow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitBound {
    deadline: std::time::Instant,
}

impl WaitBound {
    pub(crate) fn new(limit: std::time::Duration) -> Self {
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

pub(crate) fn wait_duration(
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
