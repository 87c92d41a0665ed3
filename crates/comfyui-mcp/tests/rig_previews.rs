//! Live previews through MCP against the rig: a job still running when its call returns names
//! its `live_preview_uri`; a client that subscribes to it hears `notifications/resources/updated`
//! as the sampler sends frames (every prompt asks ComfyUI for latent2rgb previews), and reading
//! it gives the latest frame as an image. Only live previews can be subscribed to. Needs
//! `COMFYUI_MCP_TEST_URL`.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{connect, is_error, json_of, text_of, unique_prompt};
use rmcp::model::{
    ReadResourceRequestParams, ResourceContents, SubscribeRequestParams, UnsubscribeRequestParams,
};
use serde_json::json;
use test_support::comfyui_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)] // resources/subscribe: rmcp marks it legacy, 2025 clients use it
async fn a_running_job_announces_its_sampler_frames() {
    let harness = connect(&comfyui_url()).await;
    // Long enough to subscribe while it samples: 80 steps of the tiny model at 128 px.
    let started = harness
        .call(
            "generate_image",
            json!({"prompt": unique_prompt("a slow lighthouse"), "width": 128, "height": 128, "steps": 80,
                   "checkpoint": "tiny-sd15-fp16.safetensors", "wait_seconds": 0}),
        )
        .await;
    assert!(!is_error(&started), "{}", text_of(&started));
    let summary = json_of(&started);
    let uri = summary["live_preview_uri"]
        .as_str()
        .unwrap_or_else(|| panic!("a running job names its preview: {summary:#}"))
        .to_owned();
    harness
        .client
        .subscribe(SubscribeRequestParams::new(uri.clone()))
        .await
        .expect("subscribed");

    let mut updates = 0;
    for _ in 0..600 {
        updates = harness
            .resource_updates()
            .iter()
            .filter(|updated| **updated == uri)
            .count();
        if updates >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(updates >= 2, "frames announced: {:?}", harness.resource_updates());

    let read = harness
        .client
        .read_resource(ReadResourceRequestParams::new(uri.clone()))
        .await
        .expect("the latest frame reads");
    let ResourceContents::BlobResourceContents { blob, mime_type, .. } = &read.contents[0] else {
        panic!("a blob: {read:?}");
    };
    assert!(
        mime_type
            .as_deref()
            .is_some_and(|mime| mime.starts_with("image/")),
        "{mime_type:?}"
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .expect("base64");
    image::load_from_memory(&bytes).expect("the frame decodes");

    harness
        .client
        .unsubscribe(UnsubscribeRequestParams::new(uri.clone()))
        .await
        .expect("unsubscribed");
    let finished = harness
        .call(
            "get_job",
            json!({"job_id": summary["job_id"], "wait_seconds": 120}),
        )
        .await;
    assert_eq!(
        json_of(&finished)["status"],
        "succeeded",
        "{}",
        text_of(&finished)
    );

    // The finished job's last frame still reads, and subscribing to it is fine (nothing comes).
    harness
        .client
        .read_resource(ReadResourceRequestParams::new(uri.clone()))
        .await
        .expect("the last frame reads after the job");
    harness
        .client
        .subscribe(SubscribeRequestParams::new(uri))
        .await
        .expect("a finished job can be subscribed to");

    // Outputs are read, not subscribed to; a job that does not exist cannot be.
    for uri in [
        "comfyui://backend-1/output/x.png".to_owned(),
        format!("comfyui://job/{}/preview", uuid::Uuid::new_v4()),
    ] {
        let refused = harness.client.subscribe(SubscribeRequestParams::new(uri)).await;
        assert!(refused.is_err(), "{refused:?}");
    }
}
