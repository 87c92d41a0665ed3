//! Which tools a client sees, through the built binary and rmcp's client: the operator's filters
//! (`--tools`, `--exclude-tools`, `--no-destructive-tools`), typos refused at start, the size of
//! the default list, and dynamic toolsets that a session enables as it goes. No ComfyUI is
//! needed: the configured URL is a closed loopback port.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Client {
    list_changes: Arc<AtomicUsize>,
}

impl ClientHandler for Client {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changes.fetch_add(1, Ordering::SeqCst);
    }
}

fn closed_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    format!("http://127.0.0.1:{port}")
}

fn command(arguments: &[&str]) -> tokio::process::Command {
    let database = std::env::temp_dir().join(format!("comfyui-mcp-toolsets-{}.sqlite", uuid::Uuid::new_v4()));
    let arguments: Vec<String> = arguments.iter().map(|argument| (*argument).to_owned()).collect();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_comfyui-mcp")).configure(move |command| {
        command
            .args(&arguments)
            .arg("serve")
            .env("COMFYUI_URL", closed_url())
            .env("COMFYUI_MCP_DATABASE", &database)
            .env("COMFYUI_MCP_CACHE_DIR", "")
            .env("COMFYUI_MCP_LOG", "error")
            .env_remove("COMFYUI_MCP_TOOLSETS");
    })
}

async fn start(arguments: &[&str]) -> (RunningService<RoleClient, Client>, Client) {
    let client = Client::default();
    let transport = TokioChildProcess::new(command(arguments)).expect("spawn comfyui-mcp");
    let service = client.clone().serve(transport).await.expect("initialize");
    (service, client)
}

async fn names(service: &RunningService<RoleClient, Client>) -> Vec<String> {
    let tools: Vec<Tool> = service.list_all_tools().await.expect("tools/list");
    tools.iter().map(|tool| tool.name.to_string()).collect()
}

#[tokio::test]
async fn operators_choose_single_tools() {
    let (service, _) = start(&["--tools", "status,get_job"]).await;
    assert_eq!(names(&service).await, ["status", "get_job"]);
    let (service, _) = start(&["--exclude-tools", "generate_image"]).await;
    let listed = names(&service).await;
    assert!(
        !listed.contains(&"generate_image".to_owned()) && listed.contains(&"status".to_owned()),
        "{listed:?}"
    );
    let refused = service
        .call_tool(CallToolRequestParams::new("generate_image").with_arguments(Default::default()))
        .await;
    assert!(refused.is_err(), "an excluded tool cannot be called either");
}

#[tokio::test]
async fn one_switch_removes_every_destructive_tool() {
    let (service, _) = start(&["--toolsets", "all"]).await;
    let all: Vec<Tool> = service.list_all_tools().await.expect("tools/list");
    let destructive: Vec<String> = all
        .iter()
        .filter(|tool| {
            tool.annotations
                .as_ref()
                .and_then(|annotations| annotations.destructive_hint)
                == Some(true)
        })
        .map(|tool| tool.name.to_string())
        .collect();
    assert!(!destructive.is_empty(), "some tools are destructive");
    let (service, _) = start(&["--toolsets", "all", "--no-destructive-tools"]).await;
    let kept = names(&service).await;
    for name in &destructive {
        assert!(!kept.contains(name), "{name} is destructive and still listed");
    }
    assert_eq!(kept.len(), all.len() - destructive.len());
}

#[tokio::test]
async fn a_typo_in_the_tool_list_fails_at_start() {
    let output = command(&["--tools", "generate_imag"])
        .output()
        .await
        .expect("run comfyui-mcp");
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("generate_imag") && message.contains("did you mean \"generate_image\""),
        "{message}"
    );
}

#[tokio::test]
async fn the_default_list_stays_small() {
    let (service, _) = start(&[]).await;
    let mut tools: Vec<Tool> = service.list_all_tools().await.expect("tools/list");
    let bytes = serde_json::to_vec(&tools).expect("JSON").len();
    assert!(
        bytes <= 24 * 1024,
        "the default tools/list is {bytes} bytes, over 24 KB"
    );
    // What a model is shown: names, descriptions, input schemas and hints. Output schemas are for
    // the client, which checks structured results against them.
    for tool in &mut tools {
        tool.output_schema = None;
    }
    let shown = serde_json::to_vec(&tools).expect("JSON").len();
    assert!(
        shown <= 15 * 1024,
        "the default tools/list is {shown} bytes without output schemas, over 15 KB"
    );
}

#[tokio::test]
async fn dynamic_sessions_enable_toolsets_as_they_go() {
    let (service, client) = start(&["--dynamic-toolsets"]).await;
    assert_eq!(names(&service).await, ["list_toolsets", "enable_toolset"]);
    let call = |name: &str, arguments: Value| {
        CallToolRequestParams::new(name.to_owned())
            .with_arguments(arguments.as_object().cloned().unwrap_or_default())
    };
    let listing = service
        .call_tool(call("list_toolsets", json!({})))
        .await
        .expect("list_toolsets");
    let text = serde_json::to_string(&listing.content).unwrap_or_default();
    for toolset in ["core", "workflows", "library", "insights"] {
        assert!(text.contains(toolset), "{text}");
    }
    assert!(
        service.call_tool(call("status", json!({}))).await.is_err(),
        "not enabled yet"
    );
    let enabled = service
        .call_tool(call("enable_toolset", json!({"toolset": "library"})))
        .await
        .expect("enable_toolset");
    assert_ne!(enabled.is_error, Some(true), "{:?}", enabled.content);
    let listed = names(&service).await;
    assert!(
        listed.contains(&"search_outputs".to_owned()) && !listed.contains(&"status".to_owned()),
        "{listed:?}"
    );
    for _ in 0..50 {
        if client.list_changes.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        client.list_changes.load(Ordering::SeqCst),
        1,
        "tools/list_changed was sent"
    );
    let unknown = service
        .call_tool(call("enable_toolset", json!({"toolset": "everything"})))
        .await
        .expect("an answer");
    assert_eq!(unknown.is_error, Some(true));
}
