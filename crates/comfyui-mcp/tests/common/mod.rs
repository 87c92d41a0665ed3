//! An in-process MCP client connected to an in-process comfyui-mcp server, for tests: it records
//! progress notifications and offers small helpers to call tools and read results.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use comfy_engine::Engine;
use comfyui_mcp::mcp::ComfyServer;
use comfyui_mcp::settings::{CommandLineSettings, Settings};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientRequest, ProgressNotificationParam, Request,
    ResourceUpdatedNotificationParam, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestHandle, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

#[derive(Clone, Default)]
pub struct RecordingClient {
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    /// How many `notifications/tools/list_changed` arrived.
    pub tool_list_changes: Arc<AtomicUsize>,
    /// The URIs of `notifications/resources/updated`, in order.
    pub resource_updates: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for RecordingClient {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut progress) = self.progress.lock() {
            progress.push(params);
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tool_list_changes.fetch_add(1, Ordering::SeqCst);
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut updates) = self.resource_updates.lock() {
            updates.push(params.uri);
        }
    }
}

pub struct Harness {
    pub engine: Arc<Engine>,
    pub client: RunningService<RoleClient, RecordingClient>,
    pub recorder: RecordingClient,
}

pub fn settings_for(url: &str, wait_seconds: f64) -> Settings {
    Settings::resolve(
        &CommandLineSettings {
            comfyui_urls: vec![url.to_owned()],
            wait_seconds: Some(wait_seconds),
            ..Default::default()
        },
        &|_| None,
    )
    .expect("test settings are valid")
}

pub async fn connect(url: &str) -> Harness {
    connect_with(settings_for(url, 120.0)).await
}

pub async fn connect_with(settings: Settings) -> Harness {
    let engine = Engine::start(settings.engine.clone())
        .await
        .expect("engine starts");
    let server = ComfyServer::new(engine.clone(), Arc::new(settings), true);
    let (server_side, client_side) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(service) = server.serve(server_side).await {
            let _ = service.waiting().await;
        }
    });
    let recorder = RecordingClient::default();
    let client = recorder.clone().serve(client_side).await.expect("MCP initialize");
    Harness {
        engine,
        client,
        recorder,
    }
}

impl Harness {
    /// Calls a tool without progress.
    pub async fn call(&self, name: &str, arguments: Value) -> CallToolResult {
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object")
        };
        self.client
            .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(arguments))
            .await
            .expect("tools/call answers")
    }

    /// Starts a tool call with a progress token; await the handle for the result.
    pub async fn start_call(&self, name: &str, arguments: Value) -> RequestHandle<RoleClient> {
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object")
        };
        self.client
            .send_cancellable_request(
                ClientRequest::CallToolRequest(Request::new(
                    CallToolRequestParams::new(name.to_owned()).with_arguments(arguments),
                )),
                PeerRequestOptions::no_options(),
            )
            .await
            .expect("request sent")
    }

    /// `get_output` on `output` (an entry of a result's `outputs`) with more `arguments`,
    /// checked to answer; the result and its JSON.
    pub async fn get_output(&self, output: &Value, arguments: Value) -> (CallToolResult, Value) {
        let mut request = json!({"filename": output["filename"], "subfolder": output["subfolder"]});
        if let (Some(request), Value::Object(more)) = (request.as_object_mut(), arguments) {
            request.extend(more);
        }
        let fetched = self.call("get_output", request).await;
        assert!(!is_error(&fetched), "{}", text_of(&fetched));
        let summary = json_of(&fetched);
        (fetched, summary)
    }

    pub fn resource_updates(&self) -> Vec<String> {
        self.recorder
            .resource_updates
            .lock()
            .map(|updates| updates.clone())
            .unwrap_or_default()
    }

    pub fn tool_list_changes(&self) -> usize {
        self.recorder.tool_list_changes.load(Ordering::SeqCst)
    }

    /// The progress notifications received, by progress value. rmcp's client runs each incoming
    /// notification's handler on a task of its own, so the order they are recorded in here is
    /// not the order they came in (the wire order is checked by the Python SDK's conformance
    /// test, `checks.check_progress`); two with the same value still show as a repeat.
    pub fn progress(&self) -> Vec<ProgressNotificationParam> {
        let mut progress = self
            .recorder
            .progress
            .lock()
            .map(|progress| progress.clone())
            .unwrap_or_default();
        progress.sort_by(|left, right| left.progress.total_cmp(&right.progress));
        progress
    }
}

pub async fn finish(handle: RequestHandle<RoleClient>) -> CallToolResult {
    match handle.await_response().await.expect("response") {
        ServerResult::CallToolResult(result) => result,
        other => panic!("unexpected response {other:?}"),
    }
}

/// The first text block, parsed as JSON when it is JSON.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|block| block.as_text().map(|text| text.text.clone()))
        .unwrap_or_default()
}

pub fn json_of(result: &CallToolResult) -> Value {
    serde_json::from_str(&text_of(result)).unwrap_or_else(|_| json!({ "text": text_of(result) }))
}

pub fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

/// A `side` x `side` RGB PNG of hashed noise (hardly compressible), made here.
pub fn noise_png(side: u32) -> Vec<u8> {
    let mut png = Vec::new();
    let pixels: Vec<u8> = (0..side * side * 3)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &pixels,
        side,
        side,
        image::ExtendedColorType::Rgb8,
    )
    .expect("a PNG");
    png
}

/// The result's first inline image, checked to be of `mime_type`; its base64 data.
pub fn inline_image(result: &CallToolResult, mime_type: &str) -> String {
    let image = result
        .content
        .iter()
        .find_map(|block| block.as_image())
        .unwrap_or_else(|| panic!("an inline {mime_type} in {}", text_of(result)));
    assert_eq!(image.mime_type, mime_type);
    image.data.clone()
}

/// A prompt text no earlier test used, so ComfyUI cannot serve it from cache.
pub fn unique_prompt(base: &str) -> String {
    format!("{base} {}", uuid::Uuid::new_v4())
}

/// Settings for the rig with every toolset, a database of its own, and `environment` for the
/// variables a test sets.
pub fn all_toolsets(label: &str, environment: &dyn Fn(&str) -> Option<String>) -> Settings {
    let database = std::env::temp_dir().join(format!("comfyui-mcp-{label}-{}.sqlite", uuid::Uuid::new_v4()));
    Settings::resolve(
        &CommandLineSettings {
            comfyui_urls: vec![test_support::comfyui_url()],
            wait_seconds: Some(120.0),
            toolsets: Some("all".to_owned()),
            database: Some(database),
            ..Default::default()
        },
        environment,
    )
    .expect("test settings are valid")
}

/// Checks that a `parameters` list (`workflow_parameters`, `describe_template`) has every name
/// of the usual txt2img roles.
pub fn assert_txt2img_parameters(answer: &Value) {
    let names: Vec<&str> = answer["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|parameter| parameter["name"].as_str())
        .collect();
    for expected in [
        "prompt",
        "negative_prompt",
        "seed",
        "steps",
        "checkpoint",
        "width",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
}
