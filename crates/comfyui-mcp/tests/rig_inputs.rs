//! Inputs of every kind through MCP against the real rig: a video made by ComfyUI itself
//! (`CreateVideo` + `SaveVideo`, real H.264 in MP4) is passed to `upload_image` by URL, refused
//! while private addresses are not allowed, staged on the backend once they are, and fed to a
//! real `LoadVideo` run; `get_output` on the video answers its size and link without a preview.
//! Needs `COMFYUI_MCP_TEST_URL`.

mod common;

use comfyui_mcp::settings::env;
use common::{Harness, all_toolsets, connect_with, inline_image, is_error, json_of, text_of};
use serde_json::{Value, json};
use test_support::comfyui_url;

async fn harness(allow_private_urls: bool) -> Harness {
    let environment =
        |name: &str| (name == env::ALLOW_PRIVATE_URLS && allow_private_urls).then(|| "true".to_owned());
    connect_with(all_toolsets("inputs", &environment)).await
}

/// Eight frames of one colour as an MP4, made by the rig's ComfyUI.
fn video_workflow(color: u64, prefix: &str) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 8, "color": color}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0}},
        "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": prefix, "format": "auto", "codec": "auto"}}
    })
}

fn first_output(result: &rmcp::model::CallToolResult) -> Value {
    assert!(!is_error(result), "{}", text_of(result));
    let summary = json_of(result);
    assert_eq!(summary["status"], "succeeded", "{summary:#}");
    summary["outputs"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_passed_by_url_is_staged_and_loaded() {
    let guarded = harness(false).await;
    let color = u64::from(uuid::Uuid::new_v4().as_u128() as u32 & 0x00ff_ffff);
    let made = guarded
        .call(
            "run_workflow",
            json!({"workflow": video_workflow(color, "mcp-inputs/source")}),
        )
        .await;
    let video = first_output(&made);
    let filename = video["filename"].as_str().expect("a file name").to_owned();
    assert!(filename.ends_with(".mp4"), "{video:#}");
    let url = video["url"].as_str().expect("its URL").to_owned();

    // The rig listens on loopback: by default a URL there is refused before any request.
    let refused = guarded.call("upload_image", json!({"url": url})).await;
    assert!(is_error(&refused));
    let message = text_of(&refused);
    assert!(message.contains("loopback, private or link-local"), "{message}");
    assert!(message.contains("COMFYUI_MCP_ALLOW_PRIVATE_URLS"), "{message}");
    let not_http = guarded
        .call("upload_image", json!({"url": "file:///etc/passwd"}))
        .await;
    assert!(
        text_of(&not_http).contains("only http and https"),
        "{}",
        text_of(&not_http)
    );

    // get_output on the video: its size, link, and a contact sheet of its eight frames.
    let fetched = guarded
        .call(
            "get_output",
            json!({"filename": filename, "subfolder": video["subfolder"]}),
        )
        .await;
    assert!(!is_error(&fetched), "{}", text_of(&fetched));
    let fetched_summary = json_of(&fetched);
    assert_eq!(fetched_summary["media_type"], "video/mp4", "{fetched_summary:#}");
    assert!(
        fetched_summary["size_bytes"]
            .as_u64()
            .is_some_and(|size| size > 100),
        "{fetched_summary:#}"
    );
    assert_eq!(
        fetched_summary["preview"]["contact_sheet_of_frames"], 8,
        "{fetched_summary:#}"
    );
    assert!(fetched.content.iter().any(|block| block.as_image().is_some()));
    assert!(
        fetched
            .content
            .iter()
            .any(|block| block.as_resource_link().is_some())
    );

    // An operator who allows private networks gets it staged, typed from its bytes.
    let allowed = harness(true).await;
    let staged = allowed
        .call(
            "upload_image",
            json!({"url": url, "filename": format!("from-url-{color}.mp4"), "subfolder": "mcp-inputs"}),
        )
        .await;
    assert!(!is_error(&staged), "{}", text_of(&staged));
    let staged = json_of(&staged);
    assert_eq!(staged["media"], "video", "{staged:#}");
    let name = staged["name"].as_str().expect("the loader value").to_owned();
    assert_eq!(name, format!("mcp-inputs/from-url-{color}.mp4"));
    assert!(
        staged["use"]
            .as_str()
            .is_some_and(|usage| usage.contains("LoadVideo")),
        "{staged:#}"
    );

    // ComfyUI's own LoadVideo reads it back and saves it again: a real run.
    let reloaded = allowed
        .call(
            "run_workflow",
            json!({"workflow": {
                "1": {"class_type": "LoadVideo", "inputs": {"file": name}},
                "2": {"class_type": "SaveVideo", "inputs": {"video": ["1", 0], "filename_prefix": "mcp-inputs/reloaded", "format": "auto", "codec": "auto"}}
            }}),
        )
        .await;
    let output = first_output(&reloaded);
    assert!(
        output["filename"]
            .as_str()
            .is_some_and(|name| name.ends_with(".mp4")),
        "{output:#}"
    );

    // Not media at all: refused by its bytes, whatever the name says.
    let html_url = format!("{}/", comfyui_url().trim_end_matches('/'));
    let not_media = allowed
        .call("upload_image", json!({"url": html_url, "filename": "page.mp4"}))
        .await;
    assert!(is_error(&not_media));
    assert!(
        text_of(&not_media).contains("not an image, video or audio file"),
        "{}",
        text_of(&not_media)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_clip_runs_through_comfyui_and_comes_back_as_a_waveform() {
    use base64::Engine as _;
    let harness = harness(false).await;
    // A new length each run, so ComfyUI cannot answer from its cache.
    let seconds = 1.0 + f64::from(uuid::Uuid::new_v4().as_u128() as u16 % 1000) / 1000.0;
    let wav = test_support::media::sine_wav(seconds, 0.5);
    let staged = harness
        .call(
            "upload_image",
            json!({"data_base64": base64::engine::general_purpose::STANDARD.encode(&wav), "filename": "sine.wav", "subfolder": "mcp-inputs"}),
        )
        .await;
    assert!(!is_error(&staged), "{}", text_of(&staged));
    let staged = json_of(&staged);
    assert_eq!(staged["media"], "audio", "{staged:#}");
    assert!(
        staged["use"]
            .as_str()
            .is_some_and(|usage| usage.contains("LoadAudio")),
        "{staged:#}"
    );

    // ComfyUI loads it and saves it as FLAC; the result previews the waveform.
    let run = harness
        .call(
            "run_workflow",
            json!({"workflow": {
                "1": {"class_type": "LoadAudio", "inputs": {"audio": staged["name"]}},
                "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "mcp-inputs/sine"}}
            }}),
        )
        .await;
    let output = first_output(&run);
    let filename = output["filename"].as_str().expect("a file name").to_owned();
    assert!(filename.ends_with(".flac"), "{output:#}");
    inline_image(&run, "image/png"); // the waveform

    let (fetched, summary) = harness.get_output(&output, json!({})).await;
    let audio = &summary["audio"];
    let duration = audio["duration_seconds"].as_f64().expect("a duration");
    assert!((duration - seconds).abs() < 0.05, "{seconds} s in, {audio:#}");
    assert_eq!(audio["channels"], 2, "{audio:#}");
    // Half scale in: about -6 dBFS peak and -9 dBFS RMS out (FLAC is lossless; ComfyUI may resample).
    let peak = audio["peak_dbfs"].as_f64().expect("a peak");
    let rms = audio["rms_dbfs"].as_f64().expect("a level");
    assert!((peak + 6.0).abs() < 0.5 && (rms + 9.0).abs() < 0.5, "{audio:#}");
    assert_eq!(summary["preview"]["width"], 800, "{summary:#}");
    assert!(fetched.content.iter().any(|block| block.as_image().is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_animation_too_large_to_inline_comes_back_as_a_contact_sheet() {
    let harness = harness(false).await;
    let seed = u64::from(uuid::Uuid::new_v4().as_u128() as u32);
    // Twelve frames of the tiny model's noise, saved by ComfyUI as an animated WebP.
    let run = harness
        .call(
            "run_workflow",
            json!({"workflow": {
                "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15-fp16.safetensors"}},
                "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a flip book", "clip": ["1", 1]}},
                "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
                "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 128, "height": 128, "batch_size": 12}},
                "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "seed": seed, "steps": 2, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
                "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
                "7": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["6", 0], "filename_prefix": "mcp-inputs/flipbook", "fps": 6.0, "lossless": false, "quality": 90, "method": "default"}}
            }}),
        )
        .await;
    let output = first_output(&run);
    let filename = output["filename"].as_str().expect("a file name").to_owned();
    assert!(filename.ends_with(".webp"), "{output:#}");

    let fetched = harness
        .call(
            "get_output",
            json!({"filename": filename, "subfolder": output["subfolder"], "max_preview_bytes": 30000}),
        )
        .await;
    assert!(!is_error(&fetched), "{}", text_of(&fetched));
    let summary = json_of(&fetched);
    let size = summary["size_bytes"].as_u64().expect("a size");
    assert!(
        size * 4 / 3 > 30000,
        "the file itself must not fit the budget: {summary:#}"
    );
    let preview = &summary["preview"];
    assert_eq!(preview["contact_sheet_of_frames"], 12, "{summary:#}");
    assert_eq!(preview["mime_type"], "image/jpeg", "{summary:#}");
    let image = fetched
        .content
        .iter()
        .find_map(|block| block.as_image())
        .expect("the sheet inline");
    assert!(image.data.len() <= 30000, "{}", image.data.len());
}
