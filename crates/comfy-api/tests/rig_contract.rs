//! The client's contract with a real ComfyUI (the rig's 0.3.75 or 0.26.0): every endpoint the
//! product uses, error shapes, path-traversal refusals, and job following through the backend actor.
//! Needs `COMFYUI_MCP_TEST_URL` (see `scripts/test`); fails without it.

use std::collections::BTreeMap;
use std::time::Duration;

use comfy_api::{
    Backend, BackendOptions, ClientError, ComfyClient, FileRef, HistoryOutcome, JobPhase, PromptRequest,
    SubmitOptions, UploadKind,
};
use serde_json::{Value, json};
use test_support::comfyui_url;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn client() -> ComfyClient {
    ComfyClient::new(&comfyui_url(), Default::default()).expect("valid URL")
}

fn model_free_prompt(prefix: &str, color: u64) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}}
    })
}

/// A backend actor on the rig, its websocket connected, with what stops it.
async fn connected_backend() -> (Backend, CancellationToken, TaskTracker) {
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let backend = Backend::start(
        &comfyui_url(),
        BackendOptions::default(),
        cancel.clone(),
        &tracker,
    )
    .expect("backend");
    assert!(
        backend.wait_connected(Duration::from_secs(5)).await,
        "websocket connects"
    );
    (backend, cancel, tracker)
}

fn png(side: u32) -> Vec<u8> {
    let pixels: Vec<u8> = (0..side * side).map(|index| (index * 13 % 256) as u8).collect();
    let mut bytes = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut bytes),
        &pixels,
        side,
        side,
        image::ExtendedColorType::L8,
    )
    .expect("PNG encodes");
    bytes
}

#[tokio::test]
async fn information_endpoints() {
    let client = client();
    let stats = client.system_stats().await.expect("system_stats");
    test_support::assert_rig_version(&stats.system.comfyui_version);
    assert!(!stats.devices.is_empty());
    let features = client.features().await.expect("features");
    assert_eq!(features["supports_preview_metadata"], true);
    let info = client.object_info().await.expect("object_info");
    assert!(info.as_object().map_or(0, serde_json::Map::len) > 400);
    // The same document as text, in the server's order.
    let text = client.object_info_text().await.expect("object_info as text");
    let reparsed: Value = serde_json::from_str(&text).expect("the text is JSON");
    assert_eq!(
        reparsed.as_object().map(serde_json::Map::len),
        info.as_object().map(serde_json::Map::len)
    );
    assert!(text.trim_start().starts_with('{'));
    assert!(
        client
            .object_info_for("KSampler")
            .await
            .expect("one class")
            .is_some()
    );
    assert!(
        client
            .object_info_for("NoSuchNode")
            .await
            .expect("unknown class")
            .is_none()
    );
    let folders = client.model_folders().await.expect("models");
    assert!(folders.iter().any(|folder| folder == "checkpoints"));
    let checkpoints = client
        .models("checkpoints")
        .await
        .expect("checkpoints")
        .expect("known folder");
    assert!(checkpoints.iter().any(|name| name == "tiny-sd15-micro.ckpt"));
    assert!(
        client
            .models("no_such_folder")
            .await
            .expect("unknown folder answers")
            .is_none()
    );
    let files = client
        .model_files("checkpoints")
        .await
        .expect("experiment models")
        .expect("known folder");
    assert!(files.iter().all(|file| file.size.unwrap_or(0) > 0));
    let embeddings = client.embeddings().await.expect("embeddings");
    assert!(
        embeddings.iter().any(|name| name == "tiny-embedding"),
        "{embeddings:?}"
    );
    let metadata = client
        .view_metadata("loras", "tiny-lora.safetensors")
        .await
        .expect("view_metadata");
    assert!(metadata.is_some_and(|metadata| metadata.is_object()));
    assert!(
        client
            .view_metadata("checkpoints", "tiny-sd15-micro.ckpt")
            .await
            .expect("no metadata in .ckpt")
            .is_none()
    );
    assert!(
        client
            .job("anything")
            .await
            .expect("an unknown job is None: 0.3.75 has no /api/jobs, 0.26 answers 404")
            .is_none()
    );
    client.free(false, false).await.expect("free");
}

#[tokio::test]
async fn rejections_and_plain_text_errors() {
    let client = client();
    let mut invalid = model_free_prompt("contract", 0);
    invalid["1"]["inputs"]["width"] = json!(0);
    let request = PromptRequest::new(invalid, "contract-test");
    match client.queue_prompt(&request).await {
        Err(ClientError::Rejected(rejection)) => {
            assert_eq!(rejection.error.kind, "prompt_outputs_failed_validation");
            let node = &rejection.node_errors["1"];
            assert_eq!(node.class_type, "EmptyImage");
            assert_eq!(node.errors[0].kind, "value_smaller_than_min");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // A prompt that is not an object makes ComfyUI raise: aiohttp answers a text/plain 500.
    let request = PromptRequest {
        prompt: json!("abc"),
        ..request
    };
    match client.queue_prompt(&request).await {
        Err(ClientError::Status {
            status: 500, body, ..
        }) => assert!(body.contains("Internal Server Error"), "{body}"),
        other => panic!("expected a plain-text 500, got {other:?}"),
    }
}

#[tokio::test]
async fn files_upload_view_and_traversal() {
    let client = client();
    let name = format!("contract-{}.png", uuid::Uuid::new_v4());
    let image = png(8);
    let uploaded = client
        .upload_image(image.clone(), &name, "contract", UploadKind::Input, false)
        .await
        .expect("upload");
    assert_eq!(uploaded.name, name);
    assert_eq!(uploaded.node_value(), format!("contract/{name}"));
    // The same bytes again reuse the file; different bytes get a new name.
    let again = client
        .upload_image(image.clone(), &name, "contract", UploadKind::Input, false)
        .await
        .expect("re-upload");
    assert_eq!(again.name, name);
    let different = client
        .upload_image(png(9), &name, "contract", UploadKind::Input, false)
        .await
        .expect("upload");
    assert_ne!(different.name, name);
    let original = FileRef {
        filename: name.clone(),
        subfolder: "contract".into(),
        kind: "input".into(),
    };
    let mask = client
        .upload_mask(png(8), &format!("mask-{name}"), &original, true)
        .await
        .expect("mask");
    assert!(mask.name.starts_with("mask-"));
    let download = client.view(&original, None, 1 << 30).await.expect("view");
    assert_eq!(download.bytes.as_ref(), image.as_slice());
    assert_eq!(download.content_type, "image/png");
    let preview = client
        .view(&original, Some("jpeg;50"), 1 << 30)
        .await
        .expect("view preview");
    assert_eq!(preview.content_type, "image/jpeg");
    let missing = FileRef {
        filename: "missing.png".into(),
        subfolder: String::new(),
        kind: "input".into(),
    };
    assert!(matches!(
        client.view(&missing, None, 1 << 30).await,
        Err(ClientError::Status { status: 404, .. })
    ));

    for (filename, subfolder) in [
        ("../x.png", ""),
        ("x.png", "../.."),
        ("a/b.png", ""),
        ("x.png", "/etc"),
    ] {
        let file = FileRef {
            filename: filename.into(),
            subfolder: subfolder.into(),
            kind: "output".into(),
        };
        assert!(
            matches!(
                client.view(&file, None, 1 << 30).await,
                Err(ClientError::UnsafePath { .. })
            ),
            "{filename} {subfolder}"
        );
        assert!(matches!(
            client
                .upload_image(image.clone(), filename, subfolder, UploadKind::Input, false)
                .await,
            Err(ClientError::UnsafePath { .. })
        ));
    }
    let bad_type = FileRef {
        filename: "x.png".into(),
        subfolder: String::new(),
        kind: "models".into(),
    };
    assert!(matches!(
        client.view(&bad_type, None, 1 << 30).await,
        Err(ClientError::UnsafePath { .. })
    ));
}

/// A prompt run twice is served from ComfyUI's cache the second time: its run lasts zero or more
/// milliseconds (start seen on our clock, end from ComfyUI's). And the history lists jobs in the
/// order they ran, not by id.
#[tokio::test]
async fn cached_jobs_take_no_negative_time_and_history_runs_in_order() {
    let (backend, cancel, tracker) = connected_backend().await;
    let color = u64::from(uuid::Uuid::new_v4().as_fields().0 & 0xff_ffff);
    let prompt = model_free_prompt("contract-cached", color);
    // Ids that sort against the order they run in.
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let ids = [
        format!("ffffffff-0000-4000-8000-{}", &suffix[..12]),
        format!("00000000-0000-4000-8000-{}", &suffix[..12]),
    ];
    let mut runs = Vec::new();
    for id in &ids {
        let options = SubmitOptions {
            prompt_id: Some(id.clone()),
            ..SubmitOptions::default()
        };
        let mut job = backend
            .submit(&prompt, BTreeMap::new(), options)
            .await
            .expect("submit");
        let finished = tokio::time::timeout(Duration::from_secs(60), job.subscription.finished())
            .await
            .expect("finishes")
            .expect("final");
        assert_eq!(finished.phase, JobPhase::Succeeded, "{id}");
        let started = finished.started_at_ms.expect("a start");
        let ended = finished.finished_at_ms.expect("an end");
        assert!(ended >= started, "{id} ran for {} ms", ended - started);
        runs.push(ended - started);
    }
    let history = backend
        .client()
        .history(comfy_api::HistoryQuery {
            max_items: Some(2),
            offset: None,
        })
        .await
        .expect("history");
    let order: Vec<&str> = history.iter().map(|entry| entry.prompt_id.as_str()).collect();
    assert_eq!(
        order,
        [ids[0].as_str(), ids[1].as_str()],
        "oldest first; runs took {runs:?} ms"
    );
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}

#[tokio::test]
async fn backend_follows_a_job_by_listening() {
    let (backend, cancel, tracker) = connected_backend().await;
    let color = u64::from(uuid::Uuid::new_v4().as_fields().0 & 0xff_ffff);
    let prompt = model_free_prompt("contract-job", color);
    let titles = BTreeMap::from([("3".to_owned(), "Save".to_owned())]);
    let mut job = backend
        .submit(&prompt, titles, SubmitOptions::default())
        .await
        .expect("submit");
    assert!(job.accepted.node_errors.is_empty());
    let finished = tokio::time::timeout(Duration::from_secs(60), job.subscription.finished())
        .await
        .expect("finishes")
        .expect("final");
    assert_eq!(finished.phase, JobPhase::Succeeded);
    assert_eq!(finished.outputs.len(), 1);
    assert!(finished.outputs[0].file.filename.starts_with("contract-job"));
    let history = backend
        .client()
        .history_entry(&job.prompt_id)
        .await
        .expect("history")
        .expect("entry");
    assert_eq!(history.outcome, HistoryOutcome::Success);
    let queue = backend.client().queue().await.expect("queue");
    assert!(!queue.is_running(&job.prompt_id));

    // A job this actor never saw is found in ComfyUI's history; an unknown id ends as lost.
    let other = Backend::start(
        &comfyui_url(),
        BackendOptions::default(),
        cancel.clone(),
        &tracker,
    )
    .expect("second backend");
    let mut attached = other.attach(&job.prompt_id).await.expect("attach");
    let seen = tokio::time::timeout(Duration::from_secs(10), attached.finished())
        .await
        .expect("settles")
        .expect("final");
    assert_eq!(seen.phase, JobPhase::Succeeded);
    assert_eq!(seen.outputs, finished.outputs);
    let mut lost = other.attach("no-such-prompt").await.expect("attach");
    let lost = tokio::time::timeout(Duration::from_secs(10), lost.finished())
        .await
        .expect("settles")
        .expect("final");
    assert_eq!(lost.phase, JobPhase::Failed);
    assert!(
        lost.failure
            .is_some_and(|failure| failure.message.contains("no longer knows"))
    );

    // A runtime error: LoadImage of a file that is not an image.
    let bogus = format!("broken-{}.png", uuid::Uuid::new_v4());
    let uploaded = backend
        .client()
        .upload_image(b"not a png".to_vec(), &bogus, "", UploadKind::Input, true)
        .await
        .expect("upload");
    let failing = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": uploaded.node_value()}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "never"}}
    });
    match backend
        .submit(&failing, BTreeMap::new(), SubmitOptions::default())
        .await
    {
        // 0.3.75 checks the file in LoadImage's VALIDATE_INPUTS only by existence, so it runs and fails.
        Ok(mut job) => {
            let failed = tokio::time::timeout(Duration::from_secs(60), job.subscription.finished())
                .await
                .expect("ends")
                .expect("final");
            assert_eq!(failed.phase, JobPhase::Failed);
            let failure = failed.failure.expect("a failure");
            assert_eq!(failure.node_type.as_deref(), Some("LoadImage"));
        }
        Err(ClientError::Rejected(rejection)) => assert!(rejection.to_string().contains("LoadImage")),
        Err(other) => panic!("unexpected {other:?}"),
    }
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}
