//! End to end through MCP against the real ComfyUI rig: an rmcp client talks to comfyui-mcp in
//! process, which drives the real server. Needs `COMFYUI_MCP_TEST_URL` (see `scripts/test`).

mod common;

use std::time::Duration;

use base64::Engine as _;
use comfy_api::ComfyClient;
use common::{connect, connect_with, finish, is_error, json_of, settings_for, text_of, unique_prompt};
use rmcp::model::{CancelledNotificationParam, ReadResourceRequestParams, ResourceContents};
use serde_json::json;
use test_support::{FaultProxy, comfyui_url};

const CHECKPOINT: &str = "tiny-sd15-micro.ckpt";

fn rig_client() -> ComfyClient {
    ComfyClient::new(&comfyui_url(), Default::default()).expect("rig URL is valid")
}

async fn history_size(client: &ComfyClient) -> usize {
    client.history(Default::default()).await.expect("history").len()
}

async fn wait_for_progress(harness: &common::Harness, at_least: usize) {
    for _ in 0..600 {
        if harness
            .progress()
            .iter()
            .filter(|notification| notification.message.as_deref().is_some_and(|m| m.contains('/')))
            .count()
            >= at_least
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no sampler progress within 30 s: {:?}", harness.progress());
}

async fn wait_until_idle(client: &ComfyClient) {
    for _ in 0..200 {
        let queue = client.queue().await.expect("queue");
        if queue.running.is_empty() && queue.pending.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ComfyUI's queue did not empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_streams_progress_and_returns_a_png() {
    let harness = connect(&comfyui_url()).await;
    let handle = harness
        .start_call(
            "generate_image",
            json!({"prompt": unique_prompt("a lighthouse at dusk"), "width": 64, "height": 64, "steps": 4, "checkpoint": CHECKPOINT, "seed": 7}),
        )
        .await;
    let result = finish(handle).await;
    assert!(!is_error(&result), "generate failed: {}", text_of(&result));
    let summary = json_of(&result);
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(summary["parameters"]["seed"], 7);
    assert_eq!(summary["parameters"]["model"]["name"], CHECKPOINT);

    let progress = harness.progress();
    assert!(
        progress.len() >= 4,
        "expected at least 4 progress notifications, got {progress:?}"
    );
    assert!(
        progress
            .windows(2)
            .all(|pair| pair[1].progress > pair[0].progress),
        "progress must increase: {progress:?}"
    );
    assert!(
        progress.iter().any(|notification| notification
            .message
            .as_deref()
            .is_some_and(|message| message.contains("Sampler"))),
        "progress names the running node: {progress:?}"
    );

    let image = result
        .content
        .iter()
        .find_map(|block| block.as_image())
        .expect("an inline image");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&image.data)
        .expect("base64");
    let decoded = image::load_from_memory(&bytes).expect("the preview decodes");
    assert_eq!((decoded.width(), decoded.height()), (64, 64));
    assert_eq!(image.mime_type, "image/png");

    let link = result
        .content
        .iter()
        .find_map(|block| block.as_resource_link())
        .expect("a resource_link");
    assert!(
        summary["outputs"][0]["url"]
            .as_str()
            .is_some_and(|url| url.contains("/view?filename=")),
        "{summary}"
    );
    let read = harness
        .client
        .read_resource(ReadResourceRequestParams::new(link.uri.clone()))
        .await
        .expect("resources/read");
    let ResourceContents::BlobResourceContents { blob, mime_type, .. } = &read.contents[0] else {
        panic!("a blob")
    };
    assert_eq!(mime_type.as_deref(), Some("image/png"));
    let full = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .expect("blob is base64");
    assert_eq!(
        image::load_from_memory(&full)
            .expect("full image decodes")
            .width(),
        64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cancellation_interrupts_the_running_job() {
    let rig = rig_client();
    wait_until_idle(&rig).await;
    let harness = connect(&comfyui_url()).await;
    let handle = harness
        .start_call(
            "generate_image",
            json!({"prompt": unique_prompt("a long job"), "width": 64, "height": 64, "steps": 200, "checkpoint": CHECKPOINT}),
        )
        .await;
    wait_for_progress(&harness, 2).await;
    let queue = rig.queue().await.expect("queue");
    assert_eq!(queue.running.len(), 1, "the job runs");
    let job_id = queue.running[0].prompt_id.clone();
    handle
        .peer
        .notify_cancelled(CancelledNotificationParam::new(
            Some(handle.id.clone()),
            Some("test".into()),
        ))
        .await
        .expect("cancel sent");
    drop(handle);
    // The interrupt lands within one sampler step.
    let mut history = None;
    for _ in 0..100 {
        history = rig.history_entry(&job_id).await.expect("history");
        if history.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let history = history.expect("the interrupted job is in ComfyUI's history");
    assert_eq!(history.outcome, comfy_api::HistoryOutcome::Interrupted);
    let queue = rig.queue().await.expect("queue");
    assert!(
        queue.running.is_empty() && queue.pending.is_empty(),
        "ComfyUI's queue is empty after the cancel"
    );
    let status = json_of(&harness.call("get_job", json!({"job_id": job_id})).await);
    assert_eq!(status["status"], "cancelled", "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_job_touches_only_its_own_job() {
    let rig = rig_client();
    wait_until_idle(&rig).await;
    let harness = connect(&comfyui_url()).await;
    let long = json!({"width": 64, "height": 64, "steps": 200, "checkpoint": CHECKPOINT, "wait_seconds": 0});
    let mut first = long.clone();
    first["prompt"] = json!(unique_prompt("first"));
    let mut second = long.clone();
    second["prompt"] = json!(unique_prompt("second"));
    let first = json_of(&harness.call("generate_image", first).await);
    let second = json_of(&harness.call("generate_image", second).await);
    let (first_id, second_id) = (
        first["job_id"].as_str().unwrap().to_owned(),
        second["job_id"].as_str().unwrap().to_owned(),
    );
    assert_ne!(first["status"], "succeeded");

    // The second job waits behind the first: cancelling it dequeues it and leaves the first running.
    let cancelled = json_of(&harness.call("cancel_job", json!({"job_id": second_id})).await);
    assert_eq!(cancelled["cancel"], "dequeued", "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let queue = rig.queue().await.expect("queue");
    assert!(
        queue.is_running(&first_id) || queue.pending_position(&first_id).is_some(),
        "the first job is untouched"
    );
    assert!(queue.pending_position(&second_id).is_none());

    let cancelled = json_of(&harness.call("cancel_job", json!({"job_id": first_id})).await);
    assert_eq!(cancelled["cancel"], "interrupted", "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    wait_until_idle(&rig).await;
    let again = json_of(&harness.call("cancel_job", json!({"job_id": first_id})).await);
    assert_eq!(again["cancel"], "already_finished", "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_readable_and_queue_nothing() {
    let rig = rig_client();
    wait_until_idle(&rig).await;
    let before = history_size(&rig).await;
    let harness = connect(&comfyui_url()).await;
    let base = json!({"prompt": "a cat", "width": 64, "height": 64, "steps": 4, "checkpoint": CHECKPOINT});
    let cases = [
        (json!({"steps": -5}), "steps must be between 1 and 10000"),
        (json!({"width": 65}), "multiple of 8"),
        (json!({"sampler": "eulr"}), "did you mean 'euler'"),
        (json!({"scheduler": "karas"}), "karras"),
        (
            json!({"checkpoint": "tiny-sd15-micr.ckpt"}),
            "tiny-sd15-micro.ckpt",
        ),
        (json!({"loras": [{"name": "tiny-lora"}]}), "tiny-lora.safetensors"),
        (json!({"stepz": 4}), "unknown field `stepz`"),
        (json!({"prompt": "  "}), "prompt must not be empty"),
        // A family the builders do not build for is refused by name, not given an SD1.x graph.
        (
            json!({"checkpoint": "qwen_image_fp8_e4m3fn.safetensors"}),
            "looks like a Qwen-Image model",
        ),
        // ... and pointed at the backend's own templates for that family.
        (
            json!({"checkpoint": "qwen_image_fp8_e4m3fn.safetensors"}),
            "This backend's templates for it: ",
        ),
        (
            json!({"checkpoint": "qwen_image_fp8_e4m3fn.safetensors"}),
            "model files missing)",
        ),
    ];
    for (change, expected) in cases {
        let mut arguments = base.clone();
        for (key, value) in change.as_object().unwrap() {
            arguments[key] = value.clone();
        }
        let result = harness.call("generate_image", arguments.clone()).await;
        assert!(is_error(&result), "{arguments} should fail");
        let text = text_of(&result);
        assert!(
            text.contains(expected),
            "error for {arguments} should mention {expected:?}: {text}"
        );
    }
    let queue = rig.queue().await.expect("queue");
    assert!(
        queue.running.is_empty() && queue.pending.is_empty(),
        "nothing was queued"
    );
    assert_eq!(history_size(&rig).await, before, "nothing ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_cut_mid_job_loses_nothing() {
    let target: std::net::SocketAddr = comfyui_url()
        .trim_start_matches("http://")
        .parse()
        .expect("rig URL is http://IP:PORT");
    let proxy = FaultProxy::start(target).await.expect("proxy");
    let harness = connect_with(settings_for(&proxy.url(), 120.0)).await;
    let handle = harness
        .start_call(
            "generate_image",
            json!({"prompt": unique_prompt("cut me"), "width": 64, "height": 64, "steps": 60, "checkpoint": CHECKPOINT}),
        )
        .await;
    wait_for_progress(&harness, 1).await;
    proxy.cut_all();
    let result = finish(handle).await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let summary = json_of(&result);
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(
        summary["outputs"].as_array().map(Vec::len),
        Some(1),
        "one output, reported once: {summary}"
    );
    let backend = &harness.engine.backends()[0];
    assert!(
        backend.connection().reconnects >= 1,
        "the websocket was re-opened: {:?}",
        backend.connection()
    );
    let jobs = backend.jobs().await.expect("jobs");
    let job_id = summary["job_id"].as_str().unwrap();
    assert_eq!(jobs.iter().filter(|job| job.prompt_id == job_id).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_tools_answer_from_the_real_server() {
    let harness = connect(&comfyui_url()).await;
    let tools = harness.client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    // The list this build declares, not a copy kept by hand.
    let declared = comfyui_mcp::mcp::every_tool();
    let core: Vec<&str> = declared
        .iter()
        .filter(|tool| tool.toolset == "core")
        .map(|tool| tool.name)
        .collect();
    assert!(core.contains(&"generate_image"), "{core:?}");
    for expected in core {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let status = json_of(&harness.call("status", json!({})).await);
    assert_eq!(status["backends"][0]["reachable"], true, "{status}");
    test_support::assert_rig_version(
        status["backends"][0]["comfyui_version"]
            .as_str()
            .unwrap_or_default(),
    );

    let folders = json_of(&harness.call("list_models", json!({})).await);
    assert!(
        folders["folders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|folder| folder["folder"] == "checkpoints" && folder["count"].as_u64() >= Some(1)),
        "{folders}"
    );
    let checkpoints = json_of(
        &harness
            .call("list_models", json!({"folder": "checkpoints"}))
            .await,
    );
    assert!(
        checkpoints["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|file| file["name"] == CHECKPOINT && file["size_bytes"].as_u64() > Some(0)),
        "{checkpoints}"
    );
    let unet = harness.call("list_models", json!({"folder": "unet"})).await;
    assert!(
        !is_error(&unet),
        "unet is an alias of diffusion_models: {}",
        text_of(&unet)
    );
    let check = json_of(
        &harness
            .call(
                "list_models",
                json!({"folder": "loras", "name": "tiny-lora", "metadata": true}),
            )
            .await,
    );
    assert_eq!(check["available"], false);
    assert_eq!(check["suggestions"][0], "tiny-lora.safetensors", "{check}");
    let check = json_of(
        &harness
            .call(
                "list_models",
                json!({"folder": "loras", "name": "tiny-lora.safetensors", "metadata": true}),
            )
            .await,
    );
    assert_eq!(check["available"], true);
    assert!(
        check["metadata"].is_object(),
        "safetensors metadata is returned: {check}"
    );

    let found = json_of(&harness.call("search_nodes", json!({"query": "sampler"})).await);
    assert_eq!(
        found["nodes"][0]["class_type"]
            .as_str()
            .map(|name| name.to_lowercase().contains("sampler")),
        Some(true),
        "{found}"
    );
    let described = json_of(
        &harness
            .call("describe_node", json!({"class_type": "KSampler"}))
            .await,
    );
    let steps = described["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|input| input["name"] == "steps")
        .unwrap();
    assert_eq!(steps["min"], 1);
    let missing = harness
        .call("describe_node", json!({"class_type": "KSamplr"}))
        .await;
    assert!(
        is_error(&missing) && text_of(&missing).contains("KSampler"),
        "{}",
        text_of(&missing)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_workflow_upload_and_get_output() {
    let harness = connect(&comfyui_url()).await;
    // A PNG made here, uploaded through the tool, then used by a workflow.
    let png = common::noise_png(32);
    let uploaded = harness
        .call("upload_image", json!({"data_base64": base64::engine::general_purpose::STANDARD.encode(&png), "filename": format!("test-{}.png", uuid::Uuid::new_v4())}))
        .await;
    assert!(!is_error(&uploaded), "{}", text_of(&uploaded));
    let name = json_of(&uploaded)["name"].as_str().unwrap().to_owned();
    let bad = harness
        .call(
            "upload_image",
            json!({"data_base64": "aGVsbG8=", "filename": "x.png"}),
        )
        .await;
    assert!(
        is_error(&bad) && text_of(&bad).contains("not an image"),
        "{}",
        text_of(&bad)
    );
    let traversal = harness.call("upload_image", json!({"data_base64": base64::engine::general_purpose::STANDARD.encode(&png), "filename": "../evil.png"})).await;
    assert!(
        is_error(&traversal) && text_of(&traversal).contains("refused path"),
        "{}",
        text_of(&traversal)
    );

    let workflow = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "run-workflow"}}
    });
    let result = harness
        .call(
            "run_workflow",
            json!({"workflow": workflow, "overrides": {"3.filename_prefix": "overridden"}}),
        )
        .await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let summary = json_of(&result);
    let output = &summary["outputs"][0];
    assert!(
        output["filename"].as_str().unwrap().starts_with("overridden"),
        "{summary}"
    );

    let fetched = harness.call("get_output", json!({"filename": output["filename"], "subfolder": output["subfolder"], "max_preview_bytes": 100000})).await;
    assert!(!is_error(&fetched), "{}", text_of(&fetched));
    let image = fetched
        .content
        .iter()
        .find_map(|block| block.as_image())
        .expect("a preview");
    let decoded = image::load_from_memory(
        &base64::engine::general_purpose::STANDARD
            .decode(&image.data)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(decoded.width(), 32);
    let escape = harness
        .call(
            "get_output",
            json!({"filename": "x.png", "subfolder": "../../etc"}),
        )
        .await;
    assert!(
        is_error(&escape) && text_of(&escape).contains("refused path"),
        "{}",
        text_of(&escape)
    );

    // UI-format workflows are converted, then validated like any other: an empty one has no outputs.
    let ui_format = harness
        .call("run_workflow", json!({"workflow": {"nodes": [], "links": []}}))
        .await;
    assert!(
        is_error(&ui_format)
            && text_of(&ui_format).contains("nothing was queued")
            && text_of(&ui_format).contains("prompt_no_outputs"),
        "{}",
        text_of(&ui_format)
    );
    let bad_override = harness
        .call(
            "run_workflow",
            json!({"workflow": workflow, "overrides": {"9.seed": 1}}),
        )
        .await;
    assert!(
        is_error(&bad_override) && text_of(&bad_override).contains("no node \"9\""),
        "{}",
        text_of(&bad_override)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_image_edits_uploaded_images() {
    let harness = connect(&comfyui_url()).await;
    let mut pixels = Vec::new();
    for row in 0..64u32 {
        for column in 0..64u32 {
            pixels.extend_from_slice(&[
                (row * 4) as u8,
                (column * 4) as u8,
                90,
                if column < 32 { 0 } else { 255 },
            ]);
        }
    }
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &pixels,
        64,
        64,
        image::ExtendedColorType::Rgba8,
    )
    .unwrap();
    let uploaded = harness
        .call("upload_image", json!({"data_base64": base64::engine::general_purpose::STANDARD.encode(&png), "filename": format!("edit-{}.png", uuid::Uuid::new_v4())}))
        .await;
    let name = json_of(&uploaded)["name"]
        .as_str()
        .expect("uploaded name")
        .to_owned();
    let base = json!({"checkpoint": CHECKPOINT, "steps": 3, "seed": 3});
    let cases = [
        (json!({"image": name}), (64, 64), "image"),
        (json!({"image": name, "mask": "alpha"}), (64, 64), "inpaint"),
        (
            json!({"image": name, "outpaint": [8, 0, 8, 16]}),
            (80, 80),
            "outpaint",
        ),
        (
            json!({"width": 64, "height": 64, "hires_fix": {"scale": 2.0, "steps": 2}}),
            (128, 128),
            "empty",
        ),
    ];
    for (change, (width, height), canvas) in cases {
        let mut arguments = base.clone();
        arguments["prompt"] = json!(unique_prompt("edit"));
        for (key, value) in change.as_object().unwrap() {
            arguments[key] = value.clone();
        }
        let result = harness.call("generate_image", arguments.clone()).await;
        assert!(!is_error(&result), "{arguments}: {}", text_of(&result));
        let summary = json_of(&result);
        assert_eq!(summary["parameters"]["canvas"]["kind"], canvas, "{summary}");
        let image = result
            .content
            .iter()
            .find_map(|block| block.as_image())
            .expect("a preview");
        let decoded = image::load_from_memory(
            &base64::engine::general_purpose::STANDARD
                .decode(&image.data)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (width, height),
            "{arguments}"
        );
    }
    let orphan = harness
        .call(
            "generate_image",
            json!({"prompt": "x", "mask": "alpha", "checkpoint": CHECKPOINT}),
        )
        .await;
    assert!(
        is_error(&orphan) && text_of(&orphan).contains("need `image`"),
        "{}",
        text_of(&orphan)
    );
    let half = harness
        .call(
            "generate_image",
            json!({"prompt": "x", "diffusion_model": "flux.safetensors"}),
        )
        .await;
    assert!(
        is_error(&half) && text_of(&half).contains("text_encoders"),
        "{}",
        text_of(&half)
    );
}

/// A disk copy of the node definitions from before a model was added must not refuse that model:
/// a graph that fails against an unconfirmed copy is checked again against ComfyUI's own. And a
/// fetch leaves a fresh copy for the next process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_definitions_cache_never_rejects_a_valid_request() {
    let url = comfyui_url();
    let directory = std::env::temp_dir().join(format!("comfyui-mcp-cache-{}", uuid::Uuid::new_v4()));
    let file = comfy_engine::definitions::disk_file(&url, &directory);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let client = ComfyClient::new(&url, Default::default()).unwrap();
    let mut stale = client.object_info().await.expect("/object_info");
    stale["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] =
        json!(["an-old-model.safetensors"]);
    std::fs::write(&file, serde_json::to_vec(&stale).unwrap()).unwrap();

    let mut settings = settings_for(&url, 120.0);
    settings.engine.cache_dir = Some(directory.clone());
    let harness = connect_with(settings).await;
    let result = harness
        .call(
            "generate_image",
            json!({"prompt": unique_prompt("stale cache"), "checkpoint": CHECKPOINT, "width": 64, "height": 64, "steps": 1}),
        )
        .await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let cached: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let choices = cached["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0].to_string();
    assert!(
        choices.contains(CHECKPOINT),
        "the copy on disk was refreshed: {choices}"
    );
    std::fs::remove_dir_all(&directory).ok();
}

/// A burst of calls on a cold cache makes one `/object_info` request, not one per call: counted
/// as connections through a proxy in front of the real ComfyUI (the backend's websocket is one
/// more; without sharing there would be one fetch, and so one connection, per call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_one_fetch_of_node_definitions() {
    let url = comfyui_url();
    let target: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .parse()
        .expect("the rig listens on an IP address");
    let proxy = FaultProxy::start(target).await.expect("proxy");
    let mut settings = settings_for(&proxy.url(), 120.0);
    settings.engine.cache_dir = None;
    let harness = connect_with(settings).await;
    let calls = (0..12).map(|_| harness.call("describe_node", json!({"class_type": "KSampler"})));
    for result in futures_util::future::join_all(calls).await {
        assert!(!is_error(&result), "{}", text_of(&result));
    }
    let connections = proxy.connections_accepted();
    assert!(
        connections <= 3,
        "{connections} connections for 12 calls on a cold cache"
    );
}

/// The bound on a call covers the work before a job is queued: a ComfyUI that accepts and never
/// answers costs one wait, and the error says who did not answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_backend_costs_one_wait_and_says_so() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut settings = settings_for(&format!("http://{address}"), 2.0);
    settings.engine.cache_dir = None;
    let harness = connect_with(settings).await;
    let started = std::time::Instant::now();
    let result = harness
        .call(
            "generate_image",
            json!({"prompt": "anything", "checkpoint": CHECKPOINT}),
        )
        .await;
    let elapsed = started.elapsed();
    assert!(is_error(&result));
    let text = text_of(&result);
    assert!(
        text.contains("did not") && text.contains(&address.to_string()),
        "{text}"
    );
    // Generous: the point is one wait (2 s), not the 120 s of a default HTTP timeout.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}: {text}");
}

/// A `filename_prefix` that leaves ComfyUI's output folder is refused before anything is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_prefixes_outside_the_output_folder_are_refused_before_queueing() {
    let url = comfyui_url();
    let client = ComfyClient::new(&url, Default::default()).unwrap();
    wait_until_idle(&client).await;
    let before = history_size(&client).await;
    let harness = connect(&url).await;
    for prefix in ["../../escape", "/tmp/escape"] {
        let result = harness
            .call(
                "generate_image",
                json!({"prompt": unique_prompt("prefix"), "checkpoint": CHECKPOINT, "width": 64, "height": 64, "steps": 1, "filename_prefix": prefix}),
            )
            .await;
        assert!(
            is_error(&result) && text_of(&result).contains("filename_prefix"),
            "{}",
            text_of(&result)
        );
    }
    let queue = client.queue().await.unwrap();
    assert!(queue.running.is_empty() && queue.pending.is_empty());
    assert_eq!(history_size(&client).await, before, "nothing ran");
}

/// A file whose content is not the image its name says is never passed on as that image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_output_of_a_non_image_sends_no_image() {
    let url = comfyui_url();
    let client = ComfyClient::new(&url, Default::default()).unwrap();
    let name = format!("not-an-image-{}.png", uuid::Uuid::new_v4());
    client
        .upload_image(
            b"{\"this is\": \"json\"}".to_vec(),
            &name,
            "",
            comfy_api::UploadKind::Input,
            true,
        )
        .await
        .expect("ComfyUI stores the file");
    let harness = connect(&url).await;
    let result = harness
        .call("get_output", json!({"filename": name, "type": "input"}))
        .await;
    assert!(!is_error(&result), "{}", text_of(&result));
    assert!(
        result.content.iter().all(|block| block.as_image().is_none()),
        "no image block"
    );
    assert!(
        text_of(&result).contains("does not decode"),
        "{}",
        text_of(&result)
    );
}
