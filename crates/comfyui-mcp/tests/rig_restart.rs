//! Durable jobs across a `kill -9` of comfyui-mcp, with the real binary and a private real ComfyUI:
//! a running job is re-attached and followed to the end, jobs that finished while no server ran
//! get their outputs recorded, and a job ComfyUI forgot (ComfyUI restarted) fails with the reason.

use std::path::Path;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use test_support::RigInstance;

const CHECKPOINT: &str = "tiny-sd15-micro.ckpt";

struct Server {
    client: RunningService<RoleClient, ()>,
    pid: u32,
}

async fn start_server(comfyui: &str, database: &Path) -> Server {
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_comfyui-mcp")).configure(|command| {
        command
            .arg("serve")
            .env("COMFYUI_URL", comfyui)
            .env("COMFYUI_MCP_DATABASE", database)
            .env("COMFYUI_MCP_LOG", "warn");
    });
    let transport = TokioChildProcess::new(command).expect("spawn comfyui-mcp");
    let pid = transport.id().expect("a pid");
    let client = ().serve(transport).await.expect("initialize");
    Server { client, pid }
}

fn kill_hard(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn call(server: &Server, name: &str, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("object")
    };
    server
        .client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(arguments))
        .await
        .expect("tools/call")
}

fn summary(result: &CallToolResult) -> Value {
    let text = result
        .content
        .iter()
        .find_map(|block| block.as_text().map(|text| text.text.clone()))
        .unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|_| json!({"text": text}))
}

async fn submit(server: &Server, steps: u32) -> String {
    let result = call(
        server,
        "generate_image",
        json!({"prompt": format!("durable {}", uuid::Uuid::new_v4()), "width": 64, "height": 64, "steps": steps, "checkpoint": CHECKPOINT, "wait_seconds": 0}),
    )
    .await;
    let summary = summary(&result);
    summary["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a job id: {summary}"))
        .to_owned()
}

async fn wait_for(server: &Server, job_id: &str) -> Value {
    summary(&call(server, "get_job", json!({"job_id": job_id, "wait_seconds": 90})).await)
}

async fn comfyui_idle(url: &str) {
    let client = comfy_api::ComfyClient::new(url, Default::default()).expect("url");
    for _ in 0..600 {
        if let Ok(queue) = client.queue().await
            && queue.running.is_empty()
            && queue.pending.is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ComfyUI did not become idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_kill_9_of_the_server() {
    let rig = RigInstance::start(0).expect("a private ComfyUI");
    let database = std::env::temp_dir().join(format!("comfyui-mcp-restart-{}.sqlite", uuid::Uuid::new_v4()));

    // Two jobs finish while no server runs: their outputs are recorded after the restart.
    let first = start_server(&rig.url, &database).await;
    let long = submit(&first, 120).await;
    let short = submit(&first, 4).await;
    kill_hard(first.pid);
    drop(first);
    comfyui_idle(&rig.url).await;

    // A job still running at the restart is re-attached and followed to the end.
    let second = start_server(&rig.url, &database).await;
    for job in [&long, &short] {
        let status = wait_for(&second, job).await;
        assert_eq!(status["status"], "succeeded", "{status}");
        assert_eq!(status["outputs"].as_array().map(Vec::len), Some(1), "{status}");
    }
    let running = submit(&second, 150).await;
    kill_hard(second.pid);
    drop(second);
    let third = start_server(&rig.url, &database).await;
    let status = wait_for(&third, &running).await;
    assert_eq!(status["status"], "succeeded", "{status}");
    assert_eq!(status["outputs"].as_array().map(Vec::len), Some(1));

    // A job ComfyUI forgets (it restarts) fails with the reason.
    let doomed = submit(&third, 400).await;
    kill_hard(third.pid);
    drop(third);
    let port = rig.port;
    rig.stop().expect("stop ComfyUI");
    let restarted = RigInstance::start(port).expect("ComfyUI again on the same port");
    let fourth = start_server(&restarted.url, &database).await;
    let status = wait_for(&fourth, &doomed).await;
    assert_eq!(status["status"], "failed", "{status}");
    assert!(
        status["failure"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("no longer knows")),
        "{status}"
    );
    // What was recorded before stays readable although this ComfyUI never ran those jobs.
    let status = wait_for(&fourth, &long).await;
    assert_eq!(status["status"], "succeeded", "{status}");
    assert_eq!(status["outputs"].as_array().map(Vec::len), Some(1));
    drop(fourth);
    drop(restarted);
    let _ = std::fs::remove_file(&database);
}

/// A copy of `prompt` with every `seed` input changed, so ComfyUI runs it afresh.
fn with_new_seed(prompt: &Value) -> Value {
    let mut prompt = prompt.clone();
    if let Some(nodes) = prompt.as_object_mut() {
        for node in nodes.values_mut() {
            if let Some(seed) = node.pointer_mut("/inputs/seed") {
                *seed = json!(rand_seed());
            }
        }
    }
    prompt
}

fn rand_seed() -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().expect("8 bytes")) >> 12
}

/// A kill between writing a job and recording ComfyUI's answer leaves a job with no prompt id.
/// Such a job that ComfyUI did receive is followed to its result after the restart, never failed;
/// one that ComfyUI never got is failed with that reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_sent_just_before_a_kill_is_found_in_comfyui() {
    let url = test_support::comfyui_url();
    let database = std::env::temp_dir().join(format!("comfyui-mcp-unsent-{}.sqlite", uuid::Uuid::new_v4()));
    let first = start_server(&url, &database).await;
    let template = submit(&first, 2).await;
    assert_eq!(wait_for(&first, &template).await["status"], "succeeded");
    kill_hard(first.pid);
    drop(first);

    // Write two jobs as the engine does before its POST; send only one of them to ComfyUI.
    let store = comfy_store::Store::open(comfy_store::StoreOptions::new(&database))
        .await
        .expect("the database");
    let mut request = store.get_job(&template).await.expect("the template job").request;
    let insert = async |request: Value| {
        let id = uuid::Uuid::new_v4().to_string();
        let job = comfy_store::NewJob {
            id: id.clone(),
            workflow: Some("generate_image".to_owned()),
            client: None,
            priority: 0,
            request,
        };
        store.insert_job(job).await.expect("insert");
        id
    };
    request["prompt"] = with_new_seed(&request["prompt"]);
    let received_prompt = request["prompt"].clone();
    let received = insert(request.clone()).await;
    request["prompt"] = with_new_seed(&request["prompt"]);
    let never_sent = insert(request).await;
    store.close().await;
    let client = comfy_api::ComfyClient::new(&url, Default::default()).expect("url");
    let mut post = comfy_api::PromptRequest::new(received_prompt, "restart-test");
    post.prompt_id = received.clone();
    client
        .queue_prompt(&post)
        .await
        .expect("ComfyUI takes the prompt");
    comfyui_idle(&url).await;

    let second = start_server(&url, &database).await;
    let status = wait_for(&second, &received).await;
    assert_eq!(status["status"], "succeeded", "{status}");
    assert_eq!(status["outputs"].as_array().map(Vec::len), Some(1), "{status}");
    let status = wait_for(&second, &never_sent).await;
    assert_eq!(status["status"], "failed", "{status}");
    assert!(
        status["failure"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("before this job reached ComfyUI")),
        "{status}"
    );
    drop(second);
    let _ = std::fs::remove_file(&database);
}
