//! The `library` and `insights` toolsets end to end: an rmcp client talks to comfyui-mcp in process,
//! which drives the real ComfyUI rig (`COMFYUI_MCP_TEST_URL`, see `scripts/test`). Every test has its
//! own fresh database, generates its own images, and waits for the engine to index them (it does so
//! a moment after each job ends) by polling the library, never by sleeping a fixed time.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use comfy_api::{ComfyClient, FileRef, PromptRequest};
use common::{Harness, connect_with, is_error, json_of, settings_for, text_of, unique_prompt};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use test_support::{RigInstance, comfyui_url};

const CHECKPOINT: &str = "tiny-sd15-micro.ckpt";

/// A harness with the library and insights toolsets, a fresh database and, optionally, the
/// backend's local output directory.
async fn library_harness(url: &str, output_dir: Option<PathBuf>) -> Harness {
    let mut settings = settings_for(url, 120.0);
    settings.toolsets = ["core", "library", "insights"].map(str::to_owned).to_vec();
    settings.engine.database =
        Some(std::env::temp_dir().join(format!("comfyui-mcp-library-{}.sqlite", uuid::Uuid::new_v4())));
    settings.engine.backends[0].output_dir = output_dir;
    connect_with(settings).await
}

fn client_for(url: &str) -> ComfyClient {
    ComfyClient::new(url, Default::default()).expect("rig URL is valid")
}

/// Calls a tool that must succeed and returns its first text block as JSON.
async fn call_ok(harness: &Harness, tool: &str, arguments: Value) -> Value {
    let result = harness.call(tool, arguments.clone()).await;
    assert!(
        !is_error(&result),
        "{tool} {arguments} failed: {}",
        text_of(&result)
    );
    json_of(&result)
}

/// The second text block of a result (an inline catalog).
fn second_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.clone()))
        .nth(1)
        .unwrap_or_default()
}

/// Generates one 64x64 image and returns the job summary.
async fn generate(harness: &Harness, prompt: &str, steps: u32, seed: u64) -> Value {
    let summary = call_ok(
        harness,
        "generate_image",
        json!({"prompt": prompt, "width": 64, "height": 64, "steps": steps, "seed": seed, "checkpoint": CHECKPOINT}),
    )
    .await;
    assert_eq!(summary["status"], "succeeded", "{summary}");
    summary
}

/// Polls the library until it holds at least `count` outputs (the engine indexes them after each
/// job ends), returning them newest first.
async fn wait_for_library(harness: &Harness, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = call_ok(harness, "search_outputs", json!({"limit": 200})).await;
        let outputs = found["outputs"].as_array().cloned().unwrap_or_default();
        if outputs.len() >= count {
            return outputs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the library holds {} outputs, expected {count}: {found}",
            outputs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The library output of a job.
fn output_of<'a>(outputs: &'a [Value], job_id: &Value) -> &'a Value {
    outputs
        .iter()
        .find(|output| &output["job_id"] == job_id)
        .unwrap_or_else(|| panic!("no library output for job {job_id} in {outputs:?}"))
}

fn ids(answer: &Value, key: &str) -> Vec<i64> {
    answer[key]
        .as_array()
        .map(|items| items.iter().filter_map(|item| item["id"].as_i64()).collect())
        .unwrap_or_default()
}

fn file_of(output: &Value) -> FileRef {
    FileRef {
        filename: output["filename"].as_str().unwrap_or_default().to_owned(),
        subfolder: output["subfolder"].as_str().unwrap_or_default().to_owned(),
        kind: output["type"].as_str().unwrap_or("output").to_owned(),
    }
}

/// The shared rig's output directory, from the `rig.json` that `rig/rig.py start` writes into its
/// instance directory (under the temporary directory unless told otherwise).
fn shared_rig_output_directory(url: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(std::env::temp_dir()).ok()?;
    entries.flatten().find_map(|entry| {
        let text = std::fs::read_to_string(entry.path().join("rig.json")).ok()?;
        let description: Value = serde_json::from_str(&text).ok()?;
        if description["url"].as_str()? != url {
            return None;
        }
        let directory = PathBuf::from(description["instance_dir"].as_str()?).join("output");
        directory.is_dir().then_some(directory)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_similar_metadata_and_organize_round_trip() {
    let url = comfyui_url();
    let harness = library_harness(&url, None).await;
    let finch = generate(
        &harness,
        &unique_prompt("a zebrafinch perched on barbed wire"),
        4,
        11,
    )
    .await;
    let quokka = generate(&harness, &unique_prompt("a quokka surfing a tidal wave"), 4, 12).await;
    let narwhal = generate(
        &harness,
        &unique_prompt("a narwhal knitting a woollen scarf"),
        4,
        13,
    )
    .await;
    let outputs = wait_for_library(&harness, 3).await;
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    let finch_id = output_of(&outputs, &finch["job_id"])["id"].as_i64().unwrap();
    let quokka_output = output_of(&outputs, &quokka["job_id"]).clone();
    let quokka_id = quokka_output["id"].as_i64().unwrap();
    let narwhal_id = output_of(&outputs, &narwhal["job_id"])["id"].as_i64().unwrap();
    // Newest first without text.
    assert_eq!(outputs[0]["id"], narwhal_id, "{outputs:?}");

    // Full text finds the right one by a word of its prompt, with its URL and resource URI.
    let found = call_ok(&harness, "search_outputs", json!({"text": "quokka"})).await;
    assert_eq!(ids(&found, "outputs"), vec![quokka_id], "{found}");
    let hit = &found["outputs"][0];
    assert!(hit["prompt"].as_str().unwrap().contains("quokka"), "{hit}");
    assert_eq!(hit["model"], CHECKPOINT);
    assert_eq!(hit["seed"], 12);
    assert_eq!(
        (hit["width"].as_u64(), hit["height"].as_u64()),
        (Some(64), Some(64))
    );
    assert!(hit["url"].as_str().unwrap().starts_with(&url), "{hit}");
    assert!(hit["url"].as_str().unwrap().contains("/view?"), "{hit}");
    assert!(
        hit["resource_uri"].as_str().unwrap().starts_with("comfyui://"),
        "{hit}"
    );
    // Stemmed, and over the parameters too (every job used the euler sampler).
    let stemmed = call_ok(&harness, "search_outputs", json!({"text": "narwhals knitted"})).await;
    assert_eq!(ids(&stemmed, "outputs"), vec![narwhal_id], "{stemmed}");
    let by_parameter = call_ok(&harness, "search_outputs", json!({"text": "euler"})).await;
    assert_eq!(by_parameter["count"], 3, "{by_parameter}");
    let by_model = call_ok(
        &harness,
        "search_outputs",
        json!({"model": CHECKPOINT, "media_type": "image/png"}),
    )
    .await;
    assert_eq!(by_model["count"], 3, "{by_model}");
    let other_model = call_ok(&harness, "search_outputs", json!({"model": "other.safetensors"})).await;
    assert_eq!(other_model["count"], 0, "{other_model}");
    let future = call_ok(&harness, "search_outputs", json!({"since": "2999-01-01"})).await;
    assert_eq!(future["count"], 0, "{future}");
    let recent = call_ok(&harness, "search_outputs", json!({"since": "1h", "limit": 2})).await;
    assert_eq!(ids(&recent, "outputs"), vec![narwhal_id, quokka_id], "{recent}");
    assert_eq!(recent["next_offset"], 2, "{recent}");
    let bad_time = harness
        .call("search_outputs", json!({"since": "last tuesday"}))
        .await;
    assert!(
        is_error(&bad_time) && text_of(&bad_time).contains("since"),
        "{}",
        text_of(&bad_time)
    );

    // Similar images: an output's own hash ranks it first, at distance 0.
    let similar = call_ok(
        &harness,
        "find_similar_images",
        json!({"output_id": quokka_id, "max_distance": 64}),
    )
    .await;
    assert_eq!(similar["matches"][0]["id"], quokka_id, "{similar}");
    assert_eq!(similar["matches"][0]["distance"], 0, "{similar}");
    assert_eq!(similar["count"], 3, "{similar}");
    // The same picture uploaded as bytes (the full PNG, not the indexed preview) is still nearest.
    let client = client_for(&url);
    let png = client
        .view(&file_of(&quokka_output), None, 1 << 30)
        .await
        .expect("the PNG")
        .bytes;
    let uploaded = call_ok(
        &harness,
        "find_similar_images",
        json!({"data_base64": base64::engine::general_purpose::STANDARD.encode(&png), "max_distance": 64}),
    )
    .await;
    assert_eq!(uploaded["matches"][0]["id"], quokka_id, "{uploaded}");
    assert!(
        uploaded["matches"][0]["distance"].as_u64().unwrap() <= 6,
        "{uploaded}"
    );
    let neither = harness.call("find_similar_images", json!({})).await;
    assert!(is_error(&neither), "{}", text_of(&neither));

    // Metadata: the API prompt ComfyUI embedded in a real output.
    let metadata = call_ok(&harness, "image_metadata", json!({"output_id": quokka_id})).await;
    assert_eq!(metadata["format"], "png", "{metadata}");
    let prompt = metadata["prompt"]
        .as_object()
        .expect("the prompt chunk is a JSON object");
    assert!(
        prompt.values().any(|node| node["class_type"] == "KSampler"),
        "{metadata}"
    );
    assert!(
        prompt.values().any(|node| node["inputs"]["text"]
            .as_str()
            .is_some_and(|text| text.contains("quokka"))),
        "{metadata}"
    );
    assert!(
        metadata["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|chunk| chunk["keyword"] == "prompt" && chunk["chunk_type"] == "tEXt"),
        "{metadata}"
    );
    // A prompt queued with a UI workflow in extra_pnginfo gets a workflow chunk too.
    let marker = uuid::Uuid::new_v4().to_string();
    let workflow_file = queue_with_workflow(&client, &marker).await;
    let with_workflow = call_ok(
        &harness,
        "image_metadata",
        json!({"filename": workflow_file.filename, "subfolder": workflow_file.subfolder, "type": "output"}),
    )
    .await;
    assert_eq!(with_workflow["workflow"]["marker"], marker, "{with_workflow}");
    assert!(
        with_workflow["prompt"]["5"]["class_type"] == "KSampler",
        "{with_workflow}"
    );
    assert!(
        with_workflow["source"]["resource_uri"]
            .as_str()
            .unwrap()
            .starts_with("comfyui://")
    );
    // And from bytes: the same chunks.
    let bytes = client
        .view(&workflow_file, None, 1 << 30)
        .await
        .expect("the PNG")
        .bytes;
    let from_bytes = call_ok(
        &harness,
        "image_metadata",
        json!({"data_base64": base64::engine::general_purpose::STANDARD.encode(&bytes), "include_workflow": false}),
    )
    .await;
    assert!(from_bytes["workflow"].is_null(), "{from_bytes}");
    assert_eq!(from_bytes["prompt"], with_workflow["prompt"]);
    let not_png = harness
        .call(
            "image_metadata",
            json!({"data_base64": base64::engine::general_purpose::STANDARD.encode(b"GIF89a not really")}),
        )
        .await;
    assert!(
        is_error(&not_png) && text_of(&not_png).contains("not a PNG"),
        "{}",
        text_of(&not_png)
    );

    // Tags round trip.
    let tagged = call_ok(
        &harness,
        "organize_outputs",
        json!({"action": "tag", "output_ids": [quokka_id, narwhal_id], "tags": ["favourite", "ocean"]}),
    )
    .await;
    assert_eq!(
        tagged["outputs"][0]["tags"],
        json!(["favourite", "ocean"]),
        "{tagged}"
    );
    let favourites = call_ok(&harness, "search_outputs", json!({"tag": "favourite"})).await;
    assert_eq!(favourites["count"], 2, "{favourites}");
    let untagged = call_ok(
        &harness,
        "organize_outputs",
        json!({"action": "untag", "output_ids": [narwhal_id], "tags": ["favourite"]}),
    )
    .await;
    assert_eq!(untagged["removed"], 1, "{untagged}");
    assert_eq!(untagged["outputs"][0]["tags"], json!(["ocean"]), "{untagged}");
    let favourites = call_ok(&harness, "search_outputs", json!({"tag": "favourite"})).await;
    assert_eq!(ids(&favourites, "outputs"), vec![quokka_id], "{favourites}");

    // Collections round trip.
    call_ok(
        &harness,
        "organize_outputs",
        json!({"action": "create_collection", "collection": "bestiary", "description": "odd animals"}),
    )
    .await;
    let added = call_ok(
        &harness,
        "organize_outputs",
        json!({"action": "add_to_collection", "collection": "bestiary", "output_ids": [finch_id, quokka_id]}),
    )
    .await;
    assert_eq!(added["outputs"][1]["collections"], json!(["bestiary"]), "{added}");
    let listed = call_ok(
        &harness,
        "organize_outputs",
        json!({"action": "list_collections"}),
    )
    .await;
    assert_eq!(listed["collections"][0]["name"], "bestiary", "{listed}");
    assert_eq!(listed["collections"][0]["outputs"], 2, "{listed}");
    let in_collection = call_ok(&harness, "search_outputs", json!({"collection": "bestiary"})).await;
    assert_eq!(
        ids(&in_collection, "outputs"),
        vec![quokka_id, finch_id],
        "{in_collection}"
    );
    let removed = call_ok(
        &harness,
        "organize_outputs",
        json!({"action": "remove_from_collection", "collection": "bestiary", "output_ids": [quokka_id]}),
    )
    .await;
    assert_eq!(removed["removed"], 1, "{removed}");
    call_ok(
        &harness,
        "organize_outputs",
        json!({"action": "delete_collection", "collection": "bestiary"}),
    )
    .await;
    let listed = call_ok(
        &harness,
        "organize_outputs",
        json!({"action": "list_collections"}),
    )
    .await;
    assert_eq!(listed["collections"], json!([]), "{listed}");
    assert_eq!(
        wait_for_library(&harness, 3).await.len(),
        3,
        "deleting a collection keeps its outputs"
    );
    let unknown_collection = harness
        .call(
            "organize_outputs",
            json!({"action": "add_to_collection", "collection": "nope", "output_ids": [finch_id]}),
        )
        .await;
    assert!(
        is_error(&unknown_collection) && text_of(&unknown_collection).contains("collection nope not found"),
        "{}",
        text_of(&unknown_collection)
    );
    let unknown_output = harness
        .call(
            "organize_outputs",
            json!({"action": "tag", "output_ids": [999_999], "tags": ["x"]}),
        )
        .await;
    assert!(
        is_error(&unknown_output) && text_of(&unknown_output).contains("output 999999 not found"),
        "{}",
        text_of(&unknown_output)
    );
    let missing_tags = harness
        .call(
            "organize_outputs",
            json!({"action": "tag", "output_ids": [finch_id]}),
        )
        .await;
    assert!(is_error(&missing_tags) && text_of(&missing_tags).contains("missing field `tags`"));
}

/// Queues a txt2img prompt straight to ComfyUI with a UI workflow in `extra_pnginfo`, as the
/// ComfyUI frontend does, and returns the file it saved.
async fn queue_with_workflow(client: &ComfyClient, marker: &str) -> FileRef {
    let prompt_id = uuid::Uuid::new_v4().to_string();
    let prompt = json!({
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": format!("an okapi reading {marker}"), "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
              "latent_image": ["4", 0], "seed": 5, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
              "scheduler": "normal", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "library-metadata"}},
    });
    client
        .queue_prompt(&PromptRequest {
            prompt,
            client_id: format!("library-test-{marker}"),
            prompt_id: prompt_id.clone(),
            extra_data: Some(
                json!({"extra_pnginfo": {"workflow": {"marker": marker, "nodes": [], "links": []}}}),
            ),
            front: false,
            number: None,
            partial_execution_targets: None,
        })
        .await
        .expect("ComfyUI accepts the prompt");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(entry) = client.history_entry(&prompt_id).await.expect("history") {
            let image = &entry.outputs["7"]["images"][0];
            assert!(image.is_object(), "no image in {:?}", entry.outputs);
            return serde_json::from_value(image.clone()).expect("a file reference");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the prompt did not finish within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_exports_contain_the_records_and_cleanup_without_a_directory_keeps_files() {
    let url = comfyui_url();
    let harness = library_harness(&url, None).await;
    let axolotl = generate(
        &harness,
        &unique_prompt("an axolotl <b>juggling</b> & lanterns"),
        4,
        21,
    )
    .await;
    let pangolin = generate(&harness, &unique_prompt("a pangolin playing the bagpipes"), 4, 22).await;
    let outputs = wait_for_library(&harness, 2).await;
    let axolotl_output = output_of(&outputs, &axolotl["job_id"]).clone();
    let pangolin_output = output_of(&outputs, &pangolin["job_id"]).clone();

    // JSON: every record, with its URL and resource URI.
    let result = harness.call("export_catalog", json!({"format": "json"})).await;
    assert!(!is_error(&result), "{}", text_of(&result));
    assert_eq!(json_of(&result)["records"], 2);
    let catalog: Vec<Value> = serde_json::from_str(&second_text(&result)).expect("a JSON catalog");
    let catalog_ids: Vec<i64> = catalog.iter().filter_map(|item| item["id"].as_i64()).collect();
    assert_eq!(
        catalog_ids,
        vec![
            pangolin_output["id"].as_i64().unwrap(),
            axolotl_output["id"].as_i64().unwrap()
        ]
    );
    assert!(catalog[0]["prompt"].as_str().unwrap().contains("bagpipes"));
    assert!(catalog[0]["url"].as_str().unwrap().starts_with(&url));
    assert_eq!(catalog[0]["parameters"]["steps"], 4);

    // CSV: a header and one row per output.
    let result = harness.call("export_catalog", json!({"format": "csv"})).await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let csv = second_text(&result);
    let lines: Vec<&str> = csv.split("\r\n").filter(|line| !line.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("id,created_at_ms,job_id"), "{csv}");
    assert!(
        csv.contains(pangolin_output["filename"].as_str().unwrap()),
        "{csv}"
    );
    assert!(csv.contains("bagpipes") && csv.contains("axolotl"), "{csv}");
    let filtered = harness
        .call("export_catalog", json!({"format": "csv", "text": "pangolin"}))
        .await;
    let filtered_csv = second_text(&filtered);
    assert_eq!(
        filtered_csv.split("\r\n").filter(|line| !line.is_empty()).count(),
        2,
        "{filtered_csv}"
    );

    // HTML: a contact sheet with an inline thumbnail per image and the prompts escaped.
    let result = harness
        .call(
            "export_catalog",
            json!({"format": "html", "thumbnail_size": 48, "title": "Menagerie"}),
        )
        .await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let html = second_text(&result);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<title>Menagerie</title>"));
    assert_eq!(html.matches("src=\"data:image/jpeg;base64,").count(), 2, "{html}");
    assert!(html.contains("bagpipes"));
    assert!(
        html.contains("&lt;b&gt;juggling&lt;/b&gt; &amp; lanterns"),
        "{html}"
    );
    assert!(!html.contains("<b>juggling"), "prompts must be escaped");
    assert!(html.contains(&format!("id=\"output-{}\"", axolotl_output["id"])));
    // Written to a file where local files are allowed.
    let path = std::env::temp_dir().join(format!("comfyui-mcp-sheet-{}.html", uuid::Uuid::new_v4()));
    let written = call_ok(
        &harness,
        "export_catalog",
        json!({"format": "html", "path": path.to_str().unwrap(), "thumbnail_size": 48}),
    )
    .await;
    assert_eq!(written["records"], 2, "{written}");
    let on_disk = std::fs::read_to_string(&path).expect("the sheet was written");
    std::fs::remove_file(&path).ok();
    assert_eq!(on_disk.matches("data:image/jpeg;base64,").count(), 2);

    // Cleanup with no output directory configured: records go, files stay, and the answer says why.
    let cutoff = comfy_store::now_ms() + 60_000;
    let dry = call_ok(&harness, "cleanup_outputs", json!({"created_before": cutoff})).await;
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["records"], 2, "{dry}");
    assert!(
        dry["explanation"]
            .as_str()
            .unwrap()
            .contains("nothing was removed"),
        "{dry}"
    );
    assert_eq!(
        wait_for_library(&harness, 2).await.len(),
        2,
        "a dry run keeps the records"
    );
    let real = call_ok(
        &harness,
        "cleanup_outputs",
        json!({"created_before": cutoff, "dry_run": false}),
    )
    .await;
    assert_eq!(real["records"], 2, "{real}");
    assert_eq!(real["files"]["deleted"], 0, "{real}");
    assert_eq!(real["files"]["staying"], 2, "{real}");
    assert!(
        real["outputs"][0]["file_reason"]
            .as_str()
            .unwrap()
            .contains("COMFYUI_MCP_OUTPUT_DIR"),
        "{real}"
    );
    let left = call_ok(&harness, "search_outputs", json!({})).await;
    assert_eq!(left["count"], 0, "{left}");
    let client = client_for(&url);
    assert!(
        client
            .view(&file_of(&pangolin_output), None, 1 << 30)
            .await
            .is_ok(),
        "the file must stay on ComfyUI"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_dry_run_keeps_and_real_run_removes_records_and_files() {
    let shared = comfyui_url();
    // The output directory of the shared rig, or of a private one when it cannot be found.
    let (url, directory, _private) = match shared_rig_output_directory(&shared) {
        Some(directory) => (shared, directory, None),
        None => {
            let rig = RigInstance::start(0).expect("a private rig");
            let directory = rig.instance_dir.join("output");
            (rig.url.clone(), directory, Some(rig))
        }
    };
    let harness = library_harness(&url, Some(directory.clone())).await;
    let kept = generate(&harness, &unique_prompt("a capybara in a hot spring"), 4, 31).await;
    let doomed = generate(&harness, &unique_prompt("a tapir wearing galoshes"), 4, 32).await;
    let outputs = wait_for_library(&harness, 2).await;
    let kept_output = output_of(&outputs, &kept["job_id"]).clone();
    let doomed_output = output_of(&outputs, &doomed["job_id"]).clone();
    let doomed_path: PathBuf = directory
        .join(doomed_output["subfolder"].as_str().unwrap())
        .join(doomed_output["filename"].as_str().unwrap());
    assert!(doomed_path.is_file(), "{} should exist", doomed_path.display());
    call_ok(
        &harness,
        "organize_outputs",
        json!({"action": "tag", "output_ids": [kept_output["id"]], "tags": ["keep"]}),
    )
    .await;

    let cutoff = comfy_store::now_ms() + 60_000;
    let dry = call_ok(&harness, "cleanup_outputs", json!({"created_before": cutoff})).await;
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["records"], 1, "the tagged output is kept: {dry}");
    assert_eq!(dry["outputs"][0]["id"], doomed_output["id"], "{dry}");
    assert_eq!(dry["outputs"][0]["file"], "would_delete", "{dry}");
    assert_eq!(dry["files"]["would_delete"], 1, "{dry}");
    assert_eq!(
        Path::new(dry["outputs"][0]["file_path"].as_str().unwrap()),
        doomed_path.as_path()
    );
    assert!(doomed_path.is_file(), "a dry run deletes nothing");
    assert_eq!(
        wait_for_library(&harness, 2).await.len(),
        2,
        "a dry run keeps the records"
    );

    let real = call_ok(
        &harness,
        "cleanup_outputs",
        json!({"created_before": cutoff, "dry_run": false}),
    )
    .await;
    assert_eq!(real["dry_run"], false, "{real}");
    assert_eq!(real["records"], 1, "{real}");
    assert_eq!(real["files"]["deleted"], 1, "{real}");
    assert_eq!(real["outputs"][0]["file"], "deleted", "{real}");
    assert!(!doomed_path.exists(), "the file must be gone");
    let client = client_for(&url);
    assert!(
        client
            .view(&file_of(&doomed_output), None, 1 << 30)
            .await
            .is_err(),
        "ComfyUI must no longer serve the deleted file"
    );
    let left = call_ok(&harness, "search_outputs", json!({})).await;
    assert_eq!(
        ids(&left, "outputs"),
        vec![kept_output["id"].as_i64().unwrap()],
        "{left}"
    );
    let kept_path = directory
        .join(kept_output["subfolder"].as_str().unwrap())
        .join(kept_output["filename"].as_str().unwrap());
    assert!(kept_path.is_file(), "the tagged output's file stays");

    // Without keep_tagged but with delete_files=false: the record goes, the file stays.
    let records_only = call_ok(
        &harness,
        "cleanup_outputs",
        json!({"created_before": cutoff, "dry_run": false, "keep_tagged": false, "delete_files": false}),
    )
    .await;
    assert_eq!(records_only["records"], 1, "{records_only}");
    assert_eq!(records_only["outputs"][0]["file"], "kept", "{records_only}");
    assert!(kept_path.is_file());
    std::fs::remove_file(&kept_path).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_estimate_and_audit_log_after_real_jobs() {
    let url = comfyui_url();
    let harness = library_harness(&url, None).await;
    let started = comfy_store::now_ms();

    // Before any job, the estimate says there is no history.
    let empty = call_ok(
        &harness,
        "estimate_generation_time",
        json!({"model": CHECKPOINT, "steps": 4, "width": 64, "height": 64}),
    )
    .await;
    assert_eq!(empty["method"], "none", "{empty}");
    assert_eq!(empty["matching_jobs"], 0, "{empty}");
    assert!(
        empty["note"].as_str().unwrap().contains("no usable history"),
        "{empty}"
    );

    let mut job_ids = Vec::new();
    for (steps, seed) in [(2, 41), (4, 42), (6, 43)] {
        let summary = generate(&harness, &unique_prompt("an ibex climbing a dam"), steps, seed).await;
        job_ids.push(summary["job_id"].clone());
    }
    // Timings are recorded after the outputs are indexed: poll the metrics.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let metrics = call_ok(
            &harness,
            "job_metrics",
            json!({"group_by": "model", "recent": 10}),
        )
        .await;
        if metrics["groups"][0]["samples"] == 3 {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never reached 3 samples: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let group = &metrics["groups"][0];
    assert_eq!(group["key"], CHECKPOINT, "{metrics}");
    assert_eq!(group["succeeded"], 3, "{metrics}");
    for timing in ["queue_wait", "execution", "transfer", "total"] {
        let (p50, p95) = (
            group[timing]["p50_ms"].as_i64().unwrap(),
            group[timing]["p95_ms"].as_i64().unwrap(),
        );
        assert!(0 <= p50 && p50 <= p95, "{timing}: {metrics}");
    }
    assert!(group["execution"]["p95_ms"].as_i64().unwrap() > 0, "{metrics}");
    assert!(
        group["total"]["p50_ms"].as_i64().unwrap() >= group["execution"]["p50_ms"].as_i64().unwrap(),
        "{metrics}"
    );
    let recent: Vec<Value> = metrics["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sample| sample["job_id"].clone())
        .collect();
    for job_id in &job_ids {
        assert!(recent.contains(job_id), "{job_id} missing from {metrics}");
    }
    let by_workflow = call_ok(&harness, "job_metrics", json!({"group_by": "workflow"})).await;
    assert_eq!(by_workflow["groups"][0]["key"], "generate_image", "{by_workflow}");
    let by_backend = call_ok(
        &harness,
        "job_metrics",
        json!({"group_by": "backend", "succeeded": true}),
    )
    .await;
    assert_eq!(by_backend["groups"][0]["key"], "backend-1", "{by_backend}");
    assert_eq!(by_backend["groups"][0]["samples"], 3, "{by_backend}");
    let none_yet = call_ok(&harness, "job_metrics", json!({"until": started - 1})).await;
    assert_eq!(none_yet["groups"], json!([]), "{none_yet}");

    // The estimate fits the three jobs (2, 4 and 6 steps) and says how many it used.
    let estimate = call_ok(
        &harness,
        "estimate_generation_time",
        json!({"model": CHECKPOINT, "backend": "backend-1", "steps": 8, "width": 64, "height": 64}),
    )
    .await;
    assert_eq!(estimate["matching_jobs"], 3, "{estimate}");
    assert_eq!(estimate["samples_used"], 3, "{estimate}");
    assert_eq!(estimate["method"], "least_squares", "{estimate}");
    assert!(
        estimate["execution_seconds"].as_f64().unwrap() >= 0.0,
        "{estimate}"
    );
    assert!(estimate["total_seconds"].as_f64().unwrap() >= estimate["execution_seconds"].as_f64().unwrap());
    assert!(
        estimate["fit"]["seconds_per_megapixel_step"].is_number(),
        "{estimate}"
    );
    assert!(
        estimate["note"].as_str().unwrap().contains("3 job(s)"),
        "{estimate}"
    );
    let other = call_ok(
        &harness,
        "estimate_generation_time",
        json!({"model": "unknown.safetensors"}),
    )
    .await;
    assert_eq!(other["method"], "none", "{other}");
    let invalid = harness
        .call("estimate_generation_time", json!({"steps": 0}))
        .await;
    assert!(is_error(&invalid), "{}", text_of(&invalid));

    // The audit log holds the earlier calls with digests and outcomes.
    let generated = call_ok(&harness, "audit_log", json!({"tool": "generate_image"})).await;
    assert_eq!(generated["count"], 3, "{generated}");
    let entries = generated["entries"].as_array().unwrap();
    let mut digests: Vec<&str> = entries
        .iter()
        .map(|entry| entry["argument_digest"].as_str().unwrap())
        .collect();
    assert!(
        digests
            .iter()
            .all(|digest| digest.len() == 64 && digest.bytes().all(|byte| byte.is_ascii_hexdigit())),
        "{generated}"
    );
    digests.sort_unstable();
    digests.dedup();
    assert_eq!(
        digests.len(),
        3,
        "different arguments, different digests: {generated}"
    );
    assert!(
        entries.iter().all(|entry| entry["outcome"] == "success"),
        "{generated}"
    );
    let client = entries[0]["client"]
        .as_str()
        .expect("the client identity")
        .to_owned();
    let failures = call_ok(&harness, "audit_log", json!({"outcome": "failure"})).await;
    assert_eq!(failures["count"], 1, "{failures}");
    assert_eq!(
        failures["entries"][0]["tool"], "estimate_generation_time",
        "{failures}"
    );
    assert!(
        failures["entries"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("steps"),
        "{failures}"
    );
    let by_client = call_ok(
        &harness,
        "audit_log",
        json!({"client": client, "tool": "generate_image"}),
    )
    .await;
    assert_eq!(by_client["count"], 3, "{by_client}");
    let other_client = call_ok(&harness, "audit_log", json!({"client": "someone else"})).await;
    assert_eq!(other_client["count"], 0, "{other_client}");
    let before_start = call_ok(&harness, "audit_log", json!({"until": started})).await;
    assert_eq!(before_start["count"], 0, "{before_start}");
    let limited = call_ok(&harness, "audit_log", json!({"since": started, "limit": 2})).await;
    assert_eq!(limited["count"], 2, "{limited}");
    assert!(
        limited["entries"][0]["at_ms"].as_i64() >= limited["entries"][1]["at_ms"].as_i64(),
        "newest first: {limited}"
    );

    // Pruning is the operator's command, not a tool: a dry run counts, the real run deletes exactly
    // the entries before the cutoff.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = comfy_store::now_ms();
    let everything = call_ok(&harness, "audit_log", json!({"until": cutoff, "limit": 1000})).await;
    let total = everything["count"].as_u64().unwrap();
    assert!(total >= 10, "{everything}");
    let tools = harness.client.list_all_tools().await.expect("tools/list");
    assert!(
        tools.iter().all(|tool| !tool.name.contains("prune")),
        "no client may erase the audit log"
    );
    let database = harness.engine.config.database.clone().expect("a database file");
    let prune = |dry_run: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_comfyui-mcp"));
        command
            .arg("--database")
            .arg(&database)
            .args(["audit-prune", "--before", &cutoff.to_string()]);
        if dry_run {
            command.arg("--dry-run");
        }
        let output = command.output().expect("run audit-prune");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout).expect("a JSON summary")
    };
    let dry = prune(true);
    assert_eq!(dry["would_delete"], total, "{dry}");
    let pruned = prune(false);
    assert_eq!(pruned["deleted"], total, "{pruned}");
    let remaining_before = call_ok(&harness, "audit_log", json!({"until": cutoff})).await;
    assert_eq!(remaining_before["count"], 0, "{remaining_before}");
    let after = call_ok(&harness, "audit_log", json!({"since": cutoff})).await;
    assert!(
        after["count"].as_u64() >= Some(1),
        "what came after the cutoff stays: {after}"
    );
}
