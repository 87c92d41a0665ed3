//! Every numeric argument of every tool, at the extremes a careless or hostile client sends, must
//! come back as an answer: no panic, no hang, and the server still serves afterwards. The tool list
//! and schemas come from the running server, so a new tool is probed without editing this file.
//!
//! The backend is a closed loopback port: calls that get past argument checks fail fast on the
//! connection instead of queueing work anywhere.

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt, service::RunningService};
use serde_json::{Map, Value, json};

/// Values that break naive conversions: beyond `Duration::from_secs_f64`, beyond `u64`, negative
/// where only positives make sense, and the largest finite double.
const EXTREMES: &[&str] = &[
    "1e20",
    "-1e20",
    "1.7976931348623157e308",
    "18446744073709551616",
    "-1",
    "0",
];

async fn start_server(database: &std::path::Path) -> RunningService<RoleClient, ()> {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_comfyui-mcp")).configure(|command| {
        command
            .arg("serve")
            .env("COMFYUI_URL", format!("http://127.0.0.1:{closed_port}"))
            .env("COMFYUI_MCP_DATABASE", database)
            .env("COMFYUI_MCP_TOOLSETS", "all")
            .env("COMFYUI_MCP_ALLOW_LOCAL_FILES", "false")
            .env("COMFYUI_MCP_LOG", "error");
    });
    ().serve(TokioChildProcess::new(command).expect("spawn comfyui-mcp"))
        .await
        .expect("initialize")
}

/// A plausible value for a required property, so the call gets past "missing field".
fn filler(schema: &Value) -> Value {
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        return choices.first().cloned().unwrap_or(Value::Null);
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("integer" | "number") => json!(1),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        Some("object") => json!({}),
        _ => json!("x"),
    }
}

fn is_numeric(schema: &Value) -> bool {
    let numeric = |kind: &Value| matches!(kind.as_str(), Some("integer" | "number"));
    match schema.get("type") {
        Some(Value::Array(kinds)) => kinds.iter().any(numeric),
        Some(kind) => numeric(kind),
        None => false,
    }
}

/// `(property, arguments)` pairs: each numeric top-level property at each extreme, the required
/// properties filled in.
fn probes(tool: &Tool) -> Vec<(String, Map<String, Value>)> {
    let schema = Value::Object(tool.input_schema.as_ref().clone());
    let properties = schema["properties"].as_object().cloned().unwrap_or_default();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut base = Map::new();
    for name in &required {
        base.insert((*name).to_owned(), filler(&properties[*name]));
    }
    let mut probes = Vec::new();
    for (name, property) in &properties {
        if !is_numeric(property) {
            continue;
        }
        for extreme in EXTREMES {
            let mut arguments = base.clone();
            let value: Value = serde_json::from_str(extreme).expect("a JSON number");
            arguments.insert(name.clone(), value);
            probes.push((format!("{}.{name}={extreme}", tool.name), arguments));
        }
    }
    probes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_numbers_never_kill_or_hang_the_server() {
    let database = std::env::temp_dir().join(format!("comfyui-mcp-probe-{}.sqlite", uuid::Uuid::new_v4()));
    let client = start_server(&database).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.len() > 20, "every toolset is on: {}", tools.len());
    let mut probed = 0;
    for tool in &tools {
        for (label, arguments) in probes(tool) {
            let request = CallToolRequestParams::new(tool.name.clone()).with_arguments(arguments);
            let answer = tokio::time::timeout(Duration::from_secs(20), client.call_tool(request))
                .await
                .unwrap_or_else(|_| panic!("{label}: no answer within 20 s"));
            // A protocol error is an answer too; what must not happen is silence or a panic.
            if let Ok(result) = answer {
                let text = serde_json::to_string(&result.content).unwrap_or_default();
                assert!(!text.contains("internal error"), "{label} panicked: {text}");
            }
            probed += 1;
        }
    }
    assert!(probed > 100, "only {probed} probes");
    let again = client.list_all_tools().await.expect("the server still answers");
    assert_eq!(again.len(), tools.len());
    drop(client);
    let _ = std::fs::remove_file(&database);
}
