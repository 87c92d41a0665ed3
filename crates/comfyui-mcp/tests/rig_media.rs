//! Video and audio generated for real through MCP against the rig: `generate_video` runs
//! ComfyUI's own Wan 2.1 text-to-video template and `generate_audio` its Stable Audio Open
//! template, with the rig's tiny random-weight models put in place of the declared files by
//! overrides, and the results come back as a keyframe contact sheet and a waveform within the
//! preview budget. Without those overrides the answer names the closest template and every file
//! it lacks, as it does for `edit_image` (no editing model can be made tiny: Qwen-Image-Edit needs
//! Qwen2.5-VL 7B, Flux Kontext T5-XXL); a wish the template has no place for is refused, not
//! dropped. Needs `COMFYUI_MCP_TEST_URL`.

mod common;

use common::{
    Harness, all_toolsets, connect_with, inline_image, is_error, json_of, noise_png, text_of, unique_prompt,
};
use serde_json::{Value, json};

async fn harness() -> Harness {
    connect_with(all_toolsets("media", &|_| None)).await
}

fn seed() -> u64 {
    u64::from(uuid::Uuid::new_v4().as_u128() as u32)
}

/// The rig's Wan 2.1 stand-ins: a one-block model, a narrow VAE, and CLIP-L loaded as SD3's
/// encoder (its 4096-wide padded conditioning is what Wan's text embedding takes).
fn tiny_wan() -> Value {
    json!({
        "unet": "tiny-wan21-t2v.safetensors",
        "vae": "tiny-wan21-vae.safetensors",
        "text_encoder": "tiny-clip-l.pt",
        "text_encoder_type": "sd3",
    })
}

fn succeeded(result: &rmcp::model::CallToolResult) -> Value {
    assert!(!is_error(result), "{}", text_of(result));
    let summary = json_of(result);
    assert_eq!(summary["status"], "succeeded", "{summary:#}");
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_is_generated_from_a_prompt_and_previewed_as_a_contact_sheet() {
    let harness = harness().await;
    let run = harness
        .call(
            "generate_video",
            json!({
                "prompt": unique_prompt("a fox running through snow"),
                "template": "text_to_video_wan",
                "width": 64, "height": 64, "frames": 9, "fps": 8, "steps": 2, "seed": seed(),
                "overrides": tiny_wan(),
                "wait_seconds": 300,
            }),
        )
        .await;
    let summary = succeeded(&run);
    let output = &summary["outputs"][0];
    let filename = output["filename"].as_str().expect("a file name");
    assert!(filename.ends_with(".mp4"), "{summary:#}");

    inline_image(&run, "image/jpeg"); // the contact sheet

    let (_, fetched) = harness
        .get_output(output, json!({"max_preview_bytes": 20000}))
        .await;
    assert_eq!(fetched["preview"]["contact_sheet_of_frames"], 9, "{fetched:#}");
    let video = &fetched["video"];
    assert_eq!(
        (&video["width"], &video["height"]),
        (&json!(64), &json!(64)),
        "{fetched:#}"
    );
    let duration = video["duration_seconds"].as_f64().expect("a duration");
    assert!(
        (duration - 9.0 / 8.0).abs() < 0.2,
        "9 frames at 8 fps: {fetched:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_clip_is_generated_from_a_prompt_and_previewed_as_a_waveform() {
    let harness = harness().await;
    let run = harness
        .call(
            "generate_audio",
            json!({
                "prompt": unique_prompt("a drum loop"),
                "template": "audio_stable_audio_example",
                "seconds": 1.0, "steps": 1, "seed": seed(),
                "overrides": {"checkpoint": "tiny-stable-audio.ckpt", "text_encoder": "tiny-t5-base.pt"},
                "wait_seconds": 600,
            }),
        )
        .await;
    let summary = succeeded(&run);
    let output = &summary["outputs"][0];
    let filename = output["filename"].as_str().expect("a file name");
    assert!(filename.ends_with(".mp3"), "{summary:#}");
    inline_image(&run, "image/png"); // the waveform

    let (_, fetched) = harness.get_output(output, json!({})).await;
    let audio = &fetched["audio"];
    // One second of latent is 22 frames of 2048 samples at 44.1 kHz: 1.02 s (MP3 pads a little).
    let duration = audio["duration_seconds"].as_f64().expect("a duration");
    assert!((duration - 1.02).abs() < 0.1, "{audio:#}");
    assert_eq!(audio["channels"], 2, "{audio:#}");
    let peak = audio["peak_dbfs"].as_f64().expect("a peak");
    assert!(
        peak > -40.0,
        "random weights make loud noise, not silence: {audio:#}"
    );
}

/// Calls `tool`, which must refuse, naming every one of `parts`.
async fn refused(harness: &Harness, tool: &str, arguments: Value, parts: &[&str]) {
    let result = harness.call(tool, arguments).await;
    assert!(is_error(&result), "{}", text_of(&result));
    let message = text_of(&result);
    for part in parts {
        assert!(message.contains(part), "{part} in {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_models_the_answer_names_what_to_download() {
    let harness = harness().await;
    let closest = ["the closest is", "models/", "https://"];
    refused(
        &harness,
        "generate_video",
        json!({"prompt": "a fox", "frames": 9}),
        &[&["video-from-text template"][..], &closest].concat(),
    )
    .await;
    refused(
        &harness,
        "generate_audio",
        json!({"prompt": "rain", "template": "audio_stable_audio_example", "seconds": 2.0}),
        &[
            "stable-audio-open-1.0.safetensors",
            "models/checkpoints",
            "https://huggingface.co/",
        ],
    )
    .await;

    // An image to edit: uploaded, then refused with the closest editing template's files.
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, noise_png(16));
    let uploaded = harness
        .call(
            "upload_image",
            json!({"data_base64": encoded, "filename": format!("edit-{}.png", uuid::Uuid::new_v4())}),
        )
        .await;
    assert!(!is_error(&uploaded), "{}", text_of(&uploaded));
    let name = json_of(&uploaded)["name"].clone();
    refused(
        &harness,
        "edit_image",
        json!({"image": name, "instruction": "make the sky stormy"}),
        &[&["image-edit template", "tagged Image Edit"][..], &closest].concat(),
    )
    .await;
    // The same image as a video's first frame: an image-to-video template's files.
    refused(
        &harness,
        "generate_video",
        json!({"prompt": "the sky clears", "image": name, "frames": 9}),
        &[&["image-to-video template"][..], &closest].concat(),
    )
    .await;
    refused(
        &harness,
        "edit_image",
        json!({"image": name, "instruction": "make it night", "template": "flux_kontext_dev_basic"}),
        &[
            "flux1-dev-kontext",
            "models/diffusion_models",
            "t5xxl",
            "models/text_encoders",
            "https://huggingface.co/",
        ],
    )
    .await;

    // A wish the template cannot take is refused, not dropped.
    refused(
        &harness,
        "generate_video",
        json!({"prompt": "rain", "template": "audio_stable_audio_example", "frames": 9}),
        &["has no frame count to set"],
    )
    .await;

    // Nothing was queued by any of these.
    let jobs = json_of(&harness.call("list_jobs", json!({})).await);
    assert_eq!(jobs["backends"][0]["recorded_jobs"], json!([]), "{jobs:#}");
}
