//! The plumbing every toolset shares: one declaration per tool (name, description, hints, the
//! argument type its schema and its parser come from, the output type its output schema and its
//! structured content come from, and the handler), argument parsing, the
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

/// What a handler with a declared output type answers: the typed result, which the declaration
/// renders as structured content and as the same JSON in a text block, or a tool error.
pub(crate) type Structured<T> = Result<T, CallToolResult>;

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
    /// The output schema, derived from the very type the handler answers, for a tool whose result
    /// is structured (`None`: its result is content blocks only, images and links among them).
    pub output_schema: Option<fn() -> JsonObject>,
    pub handler: Handler,
}

impl ToolDeclaration {
    /// The tool as `tools/list` shows it.
    pub(crate) fn tool(&self) -> Tool {
        let tool = Tool::new(self.name, self.description, Arc::new((self.schema)()))
            .with_annotations(self.hints.annotations());
        match self.output_schema {
            Some(schema) => tool.with_raw_output_schema(Arc::new(schema())),
            None => tool,
        }
    }
}

/// Declares a tool from its name, description, hints, argument type and typed handler
/// (`async fn(&ComfyServer, Arguments, &RequestContext<RoleServer>) -> ToolOutcome`). The schema
/// and the parser both come from the argument type, so they cannot disagree.
///
/// A tool whose result is structured names its output type after the arguments' (`Arguments =>
/// Output`) and its handler answers [`Structured<Output>`]: the output schema and the result's
/// `structuredContent` both come from that type, and the result's text block is the same JSON,
/// for clients that read only text.
macro_rules! declare_tool {
    ($name:literal, $description:expr, $hints:expr, $arguments:ty => $output:ty, $handler:path $(,)?) => {
        $crate::mcp::tool::ToolDeclaration {
            name: $name,
            description: $description,
            hints: $hints,
            schema: $crate::mcp::tool::schema_of::<$arguments>,
            output_schema: Some($crate::mcp::tool::output_schema_of::<$output>),
            handler: |server, raw, context| {
                Box::pin(async move {
                    match $crate::mcp::tool::parse::<$arguments>($name, raw) {
                        Ok(arguments) => match $handler(server, arguments, context).await {
                            Ok(output) => $crate::mcp::render::structured_result::<$output>(&output),
                            Err(error) => error,
                        },
                        Err(error) => error,
                    }
                })
            },
        }
    };
    ($name:literal, $description:expr, $hints:expr, $arguments:ty, $handler:path $(,)?) => {
        $crate::mcp::tool::ToolDeclaration {
            name: $name,
            description: $description,
            hints: $hints,
            schema: $crate::mcp::tool::schema_of::<$arguments>,
            output_schema: None,
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

/// The portable JSON Schema of what `T` serializes to, as a tool's output schema: `type: object`
/// at the top (MCP requires it; an untagged enum of objects is merged into one, see
/// [`merge_shapes`]), no
/// `null` alternatives (an output field that can be absent is skipped, never written as `null`),
/// and `$defs` kept at the top, where every `$ref` points.
pub(crate) fn output_schema_of<T: JsonSchema + 'static>() -> JsonObject {
    let derived = rmcp::handler::server::common::schema_for_output::<T>();
    let mut schema = Value::Object(derived.as_ref().clone());
    without_null(&mut schema);
    let Value::Object(mut schema) = schema else {
        return JsonObject::new();
    };
    merge_shapes(&mut schema);
    schema.remove("title");
    schema.remove("description");
    schema
}

/// An output with several shapes (an untagged enum of objects: `anyOf` at the top) as one object:
/// every property of every shape, required where every shape requires it. MCP wants `type:
/// object` at the top, and not every client takes an `anyOf` there. Shapes that give one property
/// different schemas stay alternatives, under `type: object`.
fn merge_shapes(schema: &mut JsonObject) {
    if schema.contains_key("type") {
        return;
    }
    let Some((key, shapes)) = ["anyOf", "oneOf"]
        .iter()
        .find_map(|key| Some((*key, schema.get(*key)?.as_array()?.clone())))
    else {
        return;
    };
    if !shapes
        .iter()
        .all(|shape| shape.get("type").and_then(Value::as_str) == Some("object"))
    {
        return;
    }
    schema.insert("type".to_owned(), Value::String("object".to_owned()));
    let mut properties = serde_json::Map::new();
    let mut required: Option<Vec<Value>> = None;
    for shape in &shapes {
        for (name, property) in shape
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            match properties.get(name) {
                Some(known) if known != property => return,
                Some(_) => {}
                None => {
                    properties.insert(name.clone(), property.clone());
                }
            }
        }
        let needs = shape
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        required = Some(match required {
            None => needs,
            Some(before) => before.into_iter().filter(|name| needs.contains(name)).collect(),
        });
    }
    schema.remove(key);
    schema.insert("properties".to_owned(), Value::Object(properties));
    schema.insert("required".to_owned(), Value::Array(required.unwrap_or_default()));
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
    rewrite_portably(schema, true);
}

/// [`portable_schema`] without declaring free-form properties objects: an output's free-form
/// value (a workflow, a node's raw option) may be any JSON.
fn without_null(schema: &mut Value) {
    rewrite_portably(schema, false);
}

fn rewrite_portably(schema: &mut Value, free_form_is_object: bool) {
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
            if free_form_is_object && let Some(Value::Object(properties)) = map.get_mut("properties") {
                properties.values_mut().for_each(declare_free_form);
            }
            map.values_mut()
                .for_each(|value| rewrite_portably(value, free_form_is_object));
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_portably(item, free_form_is_object)),
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

/// The MCP client's self-declared name (what audits, usage counts and judgements record until
/// the shared server knows principals).
pub(crate) fn client_name(context: &RequestContext<RoleServer>) -> Option<String> {
    context
        .peer
        .peer_info()
        .map(|info| info.client_info.name.trim().to_owned())
        .filter(|name| !name.is_empty())
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

/// [`job_answer`] with what the tool made of the job's results in its summary.
pub(crate) async fn job_answer_with(
    server: &ComfyServer,
    entry: &comfy_engine::BackendEntry,
    outcome: &comfy_engine::jobs::WaitOutcome,
    parameters: Option<Value>,
    findings: serde_json::Map<String, Value>,
) -> CallToolResult {
    let previews = server
        .engine
        .result_previews(entry, &outcome.snapshot().outputs)
        .await;
    render::job_result_with(entry, outcome, parameters, previews, findings)
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

/// Checks that structured results conform to their tools' output schemas: a small JSON Schema
/// validator (the keywords schemars writes) and a helper that renders a sample the way a call does.
#[cfg(test)]
pub(crate) mod conformance {
    use serde_json::Value;

    use super::ToolDeclaration;

    /// Where `value` breaks `schema` (whose `$ref`s point into `root`), if it does.
    pub(crate) fn violation(root: &Value, schema: &Value, value: &Value, at: &str) -> Option<String> {
        let map = match schema {
            Value::Bool(true) => return None,
            Value::Bool(false) => return Some(format!("{at}: nothing is allowed here")),
            Value::Object(map) => map,
            _ => return Some(format!("{at}: the schema {schema} is not a schema")),
        };
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            let target = reference
                .strip_prefix('#')
                .and_then(|pointer| root.pointer(pointer));
            match target {
                Some(target) => {
                    if let Some(found) = violation(root, target, value, at) {
                        return Some(found);
                    }
                }
                None => return Some(format!("{at}: $ref {reference} resolves to nothing")),
            }
        }
        if let Some(kind) = map.get("type") {
            let kinds: Vec<&str> = match kind {
                Value::String(kind) => vec![kind.as_str()],
                Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let matches = |kind: &str| match kind {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "boolean" => value.is_boolean(),
                "null" => value.is_null(),
                "number" => value.is_number(),
                "integer" => value.is_i64() || value.is_u64(),
                _ => false,
            };
            if !kinds.iter().any(|kind| matches(kind)) {
                return Some(format!("{at}: {value} is not of type {kind}"));
            }
        }
        if let Some(Value::Array(choices)) = map.get("enum")
            && !choices.contains(value)
        {
            return Some(format!("{at}: {value} is not one of {choices:?}"));
        }
        if let Some(constant) = map.get("const")
            && constant != value
        {
            return Some(format!("{at}: {value} is not {constant}"));
        }
        if let (Some(minimum), Some(number)) = (map.get("minimum").and_then(Value::as_f64), value.as_f64())
            && number < minimum
        {
            return Some(format!("{at}: {number} < {minimum}"));
        }
        if let (Some(maximum), Some(number)) = (map.get("maximum").and_then(Value::as_f64), value.as_f64())
            && number > maximum
        {
            return Some(format!("{at}: {number} > {maximum}"));
        }
        for (key, fits) in [("anyOf", 1..=usize::MAX), ("oneOf", 1..=1)] {
            if let Some(Value::Array(alternatives)) = map.get(key) {
                let fitting = alternatives
                    .iter()
                    .filter(|alternative| violation(root, alternative, value, at).is_none())
                    .count();
                if !fits.contains(&fitting) {
                    return Some(format!("{at}: {fitting} alternatives of {key} fit {value}"));
                }
            }
        }
        if let Some(Value::Array(all)) = map.get("allOf") {
            for part in all {
                if let Some(found) = violation(root, part, value, at) {
                    return Some(found);
                }
            }
        }
        if let Value::Object(object) = value {
            for name in map
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = name.as_str()
                    && !object.contains_key(name)
                {
                    return Some(format!("{at}: {name} is required"));
                }
            }
            let properties = map.get("properties").and_then(Value::as_object);
            for (name, field) in object {
                let place = format!("{at}/{name}");
                let found = match properties.and_then(|properties| properties.get(name)) {
                    Some(property) => violation(root, property, field, &place),
                    None => map
                        .get("additionalProperties")
                        .and_then(|extra| violation(root, extra, field, &place)),
                };
                if found.is_some() {
                    return found;
                }
            }
        }
        if let Value::Array(items) = value {
            if let Some(least) = map.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < least
            {
                return Some(format!("{at}: fewer than {least} items"));
            }
            if let Some(most) = map.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > most
            {
                return Some(format!("{at}: more than {most} items"));
            }
            if let Some(item) = map.get("items") {
                for (index, element) in items.iter().enumerate() {
                    if let Some(found) = violation(root, item, element, &format!("{at}/{index}")) {
                        return Some(found);
                    }
                }
            }
        }
        None
    }

    /// Renders `sample` as `tool`'s handler result is rendered and checks that the structured
    /// content is an object, conforms to the tool's declared output schema and is exactly the JSON
    /// of the text block.
    pub(crate) fn assert_conforms<T: serde::Serialize>(tools: &[ToolDeclaration], tool: &str, sample: &T) {
        let declaration = tools
            .iter()
            .find(|declaration| declaration.name == tool)
            .unwrap_or_else(|| panic!("no tool {tool}"));
        let schema = declaration
            .output_schema
            .unwrap_or_else(|| panic!("{tool} declares no output schema"))();
        let schema = Value::Object(schema);
        let result = super::render::structured_result(sample);
        assert_eq!(result.is_error, Some(false), "{tool}");
        let structured = result
            .structured_content
            .clone()
            .unwrap_or_else(|| panic!("{tool}: no structured content"));
        assert!(structured.is_object(), "{tool}: {structured}");
        let text = result.content[0].as_text().expect("a text block").text.clone();
        assert_eq!(
            serde_json::from_str::<Value>(&text).ok(),
            Some(structured.clone()),
            "{tool}: the text block is not the structured content"
        );
        if let Some(found) = violation(&schema, &schema, &structured, "") {
            panic!("{tool}: {found}\nschema: {schema:#}\nvalue: {structured:#}");
        }
    }

    #[test]
    fn the_validator_finds_what_breaks_a_schema() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/A"}, "n": {"type": "integer", "minimum": 0}},
            "required": ["a"],
            "$defs": {"A": {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}}},
        });
        let check = |value: Value| violation(&schema, &schema, &value, "");
        assert_eq!(check(serde_json::json!({"a": ["x"], "n": 3})), None);
        assert!(check(serde_json::json!({"a": ["z"]})).is_some());
        assert!(check(serde_json::json!({"n": 1})).is_some());
        assert!(check(serde_json::json!({"a": [], "n": -1})).is_some());
        assert!(check(serde_json::json!({"a": [], "n": null})).is_some());
    }
}
