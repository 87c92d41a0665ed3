//! Workflows through MCP against the real ComfyUI rig: UI-format conversion, validation with
//! structured diagnostics, parameter discovery, `run_workflow` with role-name overrides, and saved
//! workflows exposed as tools that follow their directory. Needs `COMFYUI_MCP_TEST_URL`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use comfyui_mcp::settings::{CommandLineSettings, Settings};
use common::{Harness, assert_txt2img_parameters, connect_with, is_error, json_of, text_of, unique_prompt};
use serde_json::{Value, json};
use test_support::comfyui_url;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).expect("fixture")).expect("fixture JSON")
}

/// A fresh directory under the system temporary folder, removed by the caller.
fn scratch_directory(label: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("comfyui-mcp-{label}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&directory).expect("scratch directory");
    directory
}

async fn harness(workflows_dir: Option<PathBuf>, scratch: &Path) -> Harness {
    let settings = Settings::resolve(
        &CommandLineSettings {
            comfyui_urls: vec![comfyui_url()],
            wait_seconds: Some(120.0),
            toolsets: Some("all".to_owned()),
            database: Some(scratch.join("comfyui-mcp.sqlite")),
            workflows_dir,
            ..Default::default()
        },
        &|_| None,
    )
    .expect("test settings are valid");
    connect_with(settings).await
}

fn diagnostic<'a>(diagnostics: &'a Value, node_id: &str, input: &str) -> &'a Value {
    diagnostics
        .as_array()
        .expect("diagnostics array")
        .iter()
        .find(|diagnostic| diagnostic["node_id"] == node_id && diagnostic["input"] == input)
        .unwrap_or_else(|| panic!("no diagnostic for node {node_id} input {input}: {diagnostics:#}"))
}

fn png_output(result: &rmcp::model::CallToolResult) -> String {
    assert!(!is_error(result), "{}", text_of(result));
    let summary = json_of(result);
    let filename = summary["outputs"][0]["filename"]
        .as_str()
        .unwrap_or_else(|| panic!("no output in {summary:#}"))
        .to_owned();
    assert!(filename.ends_with(".png"), "{summary:#}");
    assert!(
        result.content.iter().any(|block| block.as_image().is_some()),
        "an inline preview"
    );
    filename
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_validate_and_parameters_of_ui_workflows() {
    let scratch = scratch_directory("workflow-tools");
    let harness = harness(None, &scratch).await;
    let workflow = fixture_json("txt2img_ui.json");

    // By path: the primitive's seed lands in the sampler, the bypassed LoRA is bridged, the muted
    // branch, the primitive and the note are gone.
    let converted = harness
        .call(
            "convert_workflow",
            json!({"path": fixture("txt2img_ui.json"), "date": "2024-03-05T06:07:08"}),
        )
        .await;
    assert!(!is_error(&converted), "{}", text_of(&converted));
    let converted = json_of(&converted);
    assert_eq!(converted["format"], "ui");
    assert_eq!(converted["error_count"], 0, "{converted:#}");
    let prompt = &converted["prompt"];
    let mut ids: Vec<&str> = prompt.as_object().unwrap().keys().map(String::as_str).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["3", "4", "5", "6", "7", "8", "9"], "{prompt:#}");
    assert_eq!(prompt["3"]["inputs"]["seed"], 123_456);
    assert_eq!(prompt["3"]["inputs"]["model"], json!(["4", 0]));
    assert_eq!(prompt["6"]["inputs"]["clip"], json!(["4", 1]));
    assert_eq!(prompt["6"]["_meta"]["title"], "Positive Prompt");

    // Inline gives the same prompt.
    let inline = json_of(
        &harness
            .call(
                "convert_workflow",
                json!({"workflow": workflow, "date": "2024-03-05T06:07:08"}),
            )
            .await,
    );
    assert_eq!(inline["prompt"], converted["prompt"]);
    let both = harness
        .call(
            "convert_workflow",
            json!({"workflow": workflow, "path": "x.json"}),
        )
        .await;
    assert!(
        is_error(&both) && text_of(&both).contains("exactly one"),
        "{}",
        text_of(&both)
    );

    let valid = json_of(
        &harness
            .call("validate_workflow", json!({"workflow": workflow}))
            .await,
    );
    assert_eq!(valid["outcome"], "valid", "{valid:#}");
    assert_eq!(valid["queued_outputs"], json!(["9"]));
    assert_eq!(valid["error_count"], 0);

    // The broken one: a misspelled checkpoint and sampler, and an unconnected text encoder.
    let broken = json_of(
        &harness
            .call("validate_workflow", json!({"path": fixture("broken_ui.json")}))
            .await,
    );
    assert_eq!(broken["outcome"], "rejected", "{broken:#}");
    assert_eq!(broken["queued_outputs"], json!([]));
    let diagnostics = &broken["diagnostics"];
    let checkpoint = diagnostic(diagnostics, "4", "ckpt_name");
    assert_eq!(checkpoint["code"], "value_not_in_list");
    assert_eq!(checkpoint["title"], "Load Checkpoint");
    assert_eq!(checkpoint["severity"], "error");
    assert!(
        checkpoint["suggestion"]
            .as_str()
            .unwrap()
            .contains("tiny-sd15-micro.ckpt"),
        "{checkpoint:#}"
    );
    let sampler = diagnostic(diagnostics, "3", "sampler_name");
    assert!(
        sampler["suggestion"].as_str().unwrap().contains("euler"),
        "{sampler:#}"
    );
    let missing = diagnostic(diagnostics, "7", "clip");
    assert_eq!(missing["code"], "required_input_missing");
    assert_eq!(missing["title"], "Negative Prompt");
    assert_eq!(missing["stage"], "validation");

    let parameters = json_of(
        &harness
            .call("workflow_parameters", json!({"workflow": workflow}))
            .await,
    );
    assert_txt2img_parameters(&parameters);
    let properties = &parameters["input_schema"]["properties"];
    assert_eq!(properties["seed"]["type"], "integer");
    assert_eq!(properties["seed"]["default"], 123_456);
    assert_eq!(properties["steps"]["default"], 4);
    assert_eq!(
        properties["prompt"]["default"],
        "a lighthouse at dusk, oil painting"
    );
    assert!(
        properties["checkpoint"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("tiny-sd15-micro.ckpt"))
    );

    harness.engine.shutdown().await;
    std::fs::remove_dir_all(&scratch).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_workflow_takes_ui_workflows_and_role_names() {
    let scratch = scratch_directory("run-ui");
    let harness = harness(None, &scratch).await;
    let workflow = fixture_json("txt2img_ui.json");
    let result = harness
        .call(
            "run_workflow",
            json!({"workflow": workflow, "overrides": {"prompt": unique_prompt("a red fox"), "seed": 7, "steps": 2}}),
        )
        .await;
    let filename = png_output(&result);
    assert!(filename.starts_with("rig-workflows"), "{filename}");

    let misspelled = harness
        .call(
            "run_workflow",
            json!({"workflow": workflow, "overrides": {"sed": 7}}),
        )
        .await;
    assert!(
        is_error(&misspelled) && text_of(&misspelled).contains("'seed'"),
        "{}",
        text_of(&misspelled)
    );
    let wrong_type = harness
        .call(
            "run_workflow",
            json!({"workflow": workflow, "overrides": {"steps": "many"}}),
        )
        .await;
    assert!(
        is_error(&wrong_type) && text_of(&wrong_type).contains("integer"),
        "{}",
        text_of(&wrong_type)
    );
    let broken = harness
        .call(
            "run_workflow",
            json!({"workflow": fixture_json("broken_ui.json")}),
        )
        .await;
    let text = text_of(&broken);
    assert!(
        is_error(&broken) && text.contains("nothing was queued") && text.contains("tiny-sd15-micro.ckpt"),
        "{text}"
    );

    harness.engine.shutdown().await;
    std::fs::remove_dir_all(&scratch).ok();
}

async fn tool_list(harness: &Harness) -> Vec<rmcp::model::Tool> {
    harness.client.list_all_tools().await.expect("tools/list")
}

fn saved_tools(tools: &[rmcp::model::Tool]) -> Vec<String> {
    tools
        .iter()
        .map(|tool| tool.name.to_string())
        .filter(|name| name.starts_with("workflow_") && name != "workflow_parameters")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_workflows_are_tools_that_follow_their_directory() {
    let scratch = scratch_directory("saved");
    let directory = scratch.join("workflows");
    std::fs::create_dir_all(&directory).unwrap();
    std::fs::copy(fixture("txt2img_ui.json"), directory.join("Txt2Img UI.json")).unwrap();
    // A UI workflow whose node type this ComfyUI lacks: skipped with a log line, not a crash.
    let mut unknown = fixture_json("txt2img_ui.json");
    unknown["nodes"][0]["type"] = json!("NoSuchLoader");
    std::fs::write(directory.join("unknown-node.json"), unknown.to_string()).unwrap();
    std::fs::write(directory.join("notes.txt"), "not a workflow").unwrap();

    let harness = harness(Some(directory.clone()), &scratch).await;
    let capabilities = harness
        .client
        .peer_info()
        .expect("server info")
        .capabilities
        .tools
        .clone()
        .expect("tools capability");
    assert_eq!(capabilities.list_changed, Some(true));

    let tools = tool_list(&harness).await;
    assert_eq!(saved_tools(&tools), ["workflow_txt2img_ui"]);
    let tool = tools
        .iter()
        .find(|tool| tool.name == "workflow_txt2img_ui")
        .unwrap();
    let properties = &tool.input_schema["properties"];
    for expected in ["prompt", "seed", "steps", "wait_seconds"] {
        assert!(properties.get(expected).is_some(), "{expected} in {properties:#}");
    }
    assert_eq!(properties["seed"]["default"], 123_456);

    // Stable: the same directory gives byte-identical listings, in this session and another.
    let first = serde_json::to_string(&tools).unwrap();
    assert_eq!(serde_json::to_string(&tool_list(&harness).await).unwrap(), first);
    let other = harness_with_same_directory(&directory, &scratch).await;
    assert_eq!(serde_json::to_string(&tool_list(&other).await).unwrap(), first);
    other.engine.shutdown().await;

    let result = harness
        .call(
            "workflow_txt2img_ui",
            json!({"prompt": unique_prompt("a saved lighthouse"), "seed": 3, "steps": 2, "wait_seconds": 110}),
        )
        .await;
    png_output(&result);
    let bad = harness.call("workflow_txt2img_ui", json!({"stepz": 2})).await;
    assert!(
        is_error(&bad) && text_of(&bad).contains("steps"),
        "{}",
        text_of(&bad)
    );

    // A new file: the server notices, tells the client, and lists the new tool.
    let before = harness.tool_list_changes();
    let api_prompt = json_of(
        &harness
            .call(
                "convert_workflow",
                json!({"workflow": fixture_json("txt2img_ui.json")}),
            )
            .await,
    )["prompt"]
        .clone();
    std::fs::write(directory.join("second.json"), api_prompt.to_string()).unwrap();
    let mut notified = false;
    for _ in 0..150 {
        if harness.tool_list_changes() > before {
            notified = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(notified, "no notifications/tools/list_changed within 15 s");
    let tools = tool_list(&harness).await;
    assert_eq!(saved_tools(&tools), ["workflow_second", "workflow_txt2img_ui"]);
    let second = tools.iter().find(|tool| tool.name == "workflow_second").unwrap();
    assert!(
        second
            .description
            .as_deref()
            .unwrap_or_default()
            .contains("API format")
    );
    let by_name = json_of(&harness.call("validate_workflow", json!({"name": "second"})).await);
    assert_eq!(by_name["outcome"], "valid", "{by_name:#}");

    harness.engine.shutdown().await;
    std::fs::remove_dir_all(&scratch).ok();
}

async fn harness_with_same_directory(directory: &Path, scratch: &Path) -> Harness {
    let private = scratch.join("second-session");
    std::fs::create_dir_all(&private).unwrap();
    harness(Some(directory.to_owned()), &private).await
}

/// The version of the rig's ComfyUI, as `/system_stats` reports it.
async fn rig_comfyui_version() -> String {
    let client = comfy_api::ComfyClient::new(&comfyui_url(), Default::default()).expect("client");
    client
        .system_stats()
        .await
        .expect("system_stats")
        .system
        .comfyui_version
}

/// EmptyImage -> ImageScaleToTotalPixels (a V3 node: its `upscale_method` is a V3 `COMBO` on both
/// rig servers) -> PreviewImage, with `method` as the upscale method.
fn v3_combo_graph(method: &str) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
        // `resolution_steps` is 0.26's; 0.3.75 ignores it (a warning here).
        "2": {"class_type": "ImageScaleToTotalPixels", "inputs": {"image": ["1", 0], "upscale_method": method,
              "megapixels": 0.01, "resolution_steps": 1}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    })
}

/// A current ComfyUI (0.26) checks V3 combo values when a prompt is queued, and so do we for it:
/// a misspelled one is refused before anything is queued, with the value it meant. 0.3.75 does
/// not check them, and neither do we for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_combo_values_are_checked_where_the_server_checks_them() {
    let version = rig_comfyui_version().await;
    let checks = test_support::is_current_comfyui(&version);
    let scratch = scratch_directory("v3-combos");
    let harness = harness(None, &scratch).await;

    let good = json_of(
        &harness
            .call(
                "validate_workflow",
                json!({"workflow": v3_combo_graph("lanczos")}),
            )
            .await,
    );
    assert_eq!(good["error_count"], 0, "{version}: {good:#}");
    let report = json_of(
        &harness
            .call(
                "validate_workflow",
                json!({"workflow": v3_combo_graph("lanczoz")}),
            )
            .await,
    );
    if checks {
        assert_eq!(report["outcome"], "rejected", "{version}: {report:#}");
        let finding = diagnostic(&report["diagnostics"], "2", "upscale_method");
        assert_eq!(finding["code"], "value_not_in_list", "{finding:#}");
        assert!(
            finding["suggestion"]
                .as_str()
                .unwrap_or_default()
                .contains("lanczos"),
            "{finding:#}"
        );
        let refused = harness
            .call("run_workflow", json!({"workflow": v3_combo_graph("lanczoz")}))
            .await;
        let text = text_of(&refused);
        // Refused here ("is not valid for", with the suggestion), not by ComfyUI's /prompt.
        assert!(
            is_error(&refused)
                && text.contains("is not valid for")
                && text.contains("nothing was queued")
                && text.contains("lanczos"),
            "{text}"
        );
    } else {
        assert_eq!(
            report["error_count"], 0,
            "{version} does not check V3 combos: {report:#}"
        );
        assert_ne!(report["outcome"], "rejected", "{version}: {report:#}");
    }

    harness.engine.shutdown().await;
    std::fs::remove_dir_all(&scratch).ok();
}

/// EmptyImage -> ResizeImageMaskNode (0.26's V3 dynamic combo `resize_type`, scaled by a
/// multiplier) -> PreviewImage.
fn dynamic_combo_graph() -> Value {
    json!({
        // Large enough that the new option's default centre crop (to 48x512) keeps some width.
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ResizeImageMaskNode", "inputs": {"input": ["1", 0],
              "resize_type": "scale by multiplier", "resize_type.multiplier": 2.0,
              "scale_method": "nearest-exact"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    })
}

/// A dynamic combo's options as workflow parameters on the real server: an override that switches
/// `resize_type` to "scale dimensions" and sets only its width brings the option's other inputs
/// (height, crop: ComfyUI 0.26 refuses the graph without them) and drops the multiplier, and
/// ComfyUI runs the result. 0.3.75 has no such node, and the call says which one is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_switch_dynamic_combo_options_on_the_real_server() {
    let version = rig_comfyui_version().await;
    let scratch = scratch_directory("dynamic-overrides");
    let harness = harness(None, &scratch).await;
    let overrides = json!({"2.resize_type": "scale dimensions", "2.resize_type.width": 48});
    let result = harness
        .call(
            "run_workflow",
            json!({"workflow": dynamic_combo_graph(), "overrides": overrides}),
        )
        .await;
    if test_support::is_current_comfyui(&version) {
        let filename = png_output(&result);
        assert!(!filename.is_empty(), "{version}");
        // A value outside the option's range is refused here, by the option's own bounds.
        let refused = harness
            .call(
                "run_workflow",
                json!({"workflow": dynamic_combo_graph(),
                       "overrides": {"2.resize_type": "scale dimensions", "2.resize_type.width": 99999}}),
            )
            .await;
        let text = text_of(&refused);
        assert!(is_error(&refused) && text.contains("resize_type.width"), "{text}");
    } else {
        let text = text_of(&result);
        assert!(
            is_error(&result) && text.contains("ResizeImageMaskNode"),
            "{version}: {text}"
        );
    }
    harness.engine.shutdown().await;
    std::fs::remove_dir_all(&scratch).ok();
}

/// Nodes whose definition has no display name (`null` for 154 core nodes on 0.26, 157 on 0.3.75)
/// are shown under their class name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_nodes_names_nodes_without_a_display_name_by_class() {
    let scratch = scratch_directory("display-names");
    let harness = harness(None, &scratch).await;
    let found = json_of(
        &harness
            .call("search_nodes", json!({"query": "scheduler", "limit": 200}))
            .await,
    );
    let nodes = found["nodes"].as_array().expect("nodes");
    let basic = nodes
        .iter()
        .find(|node| node["class_type"] == "BasicScheduler")
        .unwrap_or_else(|| panic!("BasicScheduler in {found:#}"));
    assert_eq!(basic["display_name"], "BasicScheduler", "{basic:#}");
    for node in nodes {
        assert!(
            node["display_name"].as_str().is_some_and(|name| !name.is_empty()),
            "{node:#}"
        );
    }
    harness.engine.shutdown().await;
    std::fs::remove_dir_all(&scratch).ok();
}
