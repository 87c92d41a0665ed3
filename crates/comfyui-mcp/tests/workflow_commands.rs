//! The `convert`, `validate` and `params` commands of the built binary, with node definitions from
//! a recorded `/object_info` file: no ComfyUI is needed (nor contacted: the configured URL points
//! nowhere).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn object_info() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../comfy-workflow/tests/fixtures/object_info-0.3.75.json")
}

fn scratch_directory(label: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("comfyui-mcp-{label}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&directory).expect("scratch directory");
    directory
}

/// Runs the binary with a configuration that reaches no ComfyUI and reads no user files.
fn run(arguments: &[&str]) -> Output {
    let home = std::env::temp_dir().join("comfyui-mcp-cli-home");
    Command::new(env!("CARGO_BIN_EXE_comfyui-mcp"))
        .args(arguments)
        .env_clear()
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("COMFYUI_URL", "http://127.0.0.1:9")
        .output()
        .expect("the binary runs")
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn convert_prints_the_api_prompt() {
    let object_info = object_info();
    let output = run(&[
        "convert",
        path_text(&fixture("txt2img_ui.json")),
        "--object-info",
        path_text(&object_info),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let prompt = stdout_json(&output);
    let mut ids: Vec<&str> = prompt.as_object().unwrap().keys().map(String::as_str).collect();
    ids.sort_unstable();
    // The primitive (12), the note (11), the bypassed LoRA (10) and the muted branch (13, 14) are gone.
    assert_eq!(ids, ["3", "4", "5", "6", "7", "8", "9"]);
    assert_eq!(prompt["3"]["inputs"]["seed"], 123_456);
    assert_eq!(prompt["3"]["inputs"]["model"], json!(["4", 0]));
    assert_eq!(prompt["7"]["inputs"]["clip"], json!(["4", 1]));
    assert_eq!(prompt["5"]["inputs"]["width"], 64);
}

#[test]
fn convert_is_deterministic_with_a_date() {
    let scratch = scratch_directory("cli-date");
    let mut workflow: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("txt2img_ui.json")).unwrap()).unwrap();
    for node in workflow["nodes"].as_array_mut().unwrap() {
        if node["id"] == 9 {
            node["widgets_values"] = json!(["%date:yyyy-MM-dd%/fox"]);
        }
        if node["id"] == 6 {
            node["widgets_values"] = json!(["a {red|blue|green} fox"]);
        }
    }
    let path = scratch.join("dated.json");
    std::fs::write(&path, workflow.to_string()).unwrap();
    let object_info = object_info();
    let arguments = [
        "convert",
        path_text(&path),
        "--object-info",
        path_text(&object_info),
        "--date",
        "2024-03-05T06:07:08",
        "--dynamic-prompt-seed",
        "5",
    ];
    let first = run(&arguments);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let prompt = stdout_json(&first);
    assert_eq!(prompt["9"]["inputs"]["filename_prefix"], "2024-03-05/fox");
    let text = prompt["6"]["inputs"]["text"].as_str().unwrap();
    assert!(
        ["a red fox", "a blue fox", "a green fox"].contains(&text),
        "{text}"
    );
    assert_eq!(run(&arguments).stdout, first.stdout);
    std::fs::remove_dir_all(&scratch).ok();
}

#[test]
fn validate_names_node_input_and_suggestion_and_exits_1() {
    let object_info = object_info();
    let output = run(&[
        "validate",
        path_text(&fixture("broken_ui.json")),
        "--object-info",
        path_text(&object_info),
    ]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = stdout_json(&output);
    assert_eq!(report["outcome"], "rejected");
    let diagnostics = report["diagnostics"].as_array().unwrap();
    let find = |node_id: &str, input: &str| {
        diagnostics
            .iter()
            .find(|diagnostic| diagnostic["node_id"] == node_id && diagnostic["input"] == input)
            .unwrap_or_else(|| panic!("no diagnostic for {node_id}.{input}: {report:#}"))
    };
    let checkpoint = find("4", "ckpt_name");
    assert_eq!(checkpoint["code"], "value_not_in_list");
    assert!(
        checkpoint["candidates"]
            .as_array()
            .unwrap()
            .contains(&json!("tiny-sd15-micro.ckpt"))
    );
    assert_eq!(find("3", "sampler_name")["suggestion"], "did you mean 'euler'?");
    assert_eq!(find("7", "clip")["code"], "required_input_missing");

    let valid = run(&[
        "validate",
        path_text(&fixture("txt2img_ui.json")),
        "--object-info",
        path_text(&object_info),
    ]);
    assert_eq!(
        valid.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&valid.stdout)
    );
    assert_eq!(stdout_json(&valid)["outcome"], "valid");
}

#[test]
fn params_lists_the_knobs_with_schemas() {
    let object_info = object_info();
    let output = run(&[
        "params",
        path_text(&fixture("txt2img_ui.json")),
        "--object-info",
        path_text(&object_info),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parameters = stdout_json(&output);
    let properties = &parameters["input_schema"]["properties"];
    assert_eq!(properties["seed"]["default"], 123_456);
    assert_eq!(properties["steps"]["type"], "integer");
    assert_eq!(properties["prompt"]["type"], "string");
    let seed = parameters["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|parameter| parameter["name"] == "seed")
        .unwrap();
    assert_eq!(seed["node_id"], "3");
    assert_eq!(seed["input"], "seed");
}

#[test]
fn batch_converts_a_folder() {
    let scratch = scratch_directory("cli-batch");
    let input = scratch.join("in");
    std::fs::create_dir_all(input.join("nested")).unwrap();
    std::fs::copy(fixture("txt2img_ui.json"), input.join("nested/one.json")).unwrap();
    std::fs::write(
        input.join("api.json"),
        r#"{"1": {"class_type": "SaveImage", "inputs": {}}}"#,
    )
    .unwrap();
    // A frontend ground-truth record (tests/frontend/record) stands for the workflow it names.
    std::fs::create_dir_all(input.join("templates")).unwrap();
    std::fs::write(
        input.join("templates/recorded.json"),
        json!({"workflow_file": fixture("txt2img_ui.json"), "output": {}}).to_string(),
    )
    .unwrap();
    std::fs::write(
        input.join("templates/gone.json"),
        json!({"workflow_file": "/nonexistent/gone.json"}).to_string(),
    )
    .unwrap();
    let out = scratch.join("out");
    let object_info = object_info();
    let output = run(&[
        "convert",
        "--batch",
        path_text(&input),
        "--out",
        path_text(&out),
        "--object-info",
        path_text(&object_info),
        "--date",
        "2024-03-05T06:07:08",
    ]);
    // 1: the record naming a missing workflow failed (and says so in its output file).
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = stdout_json(&output);
    assert_eq!(summary["converted"], 2, "{summary:#}");
    assert_eq!(summary["skipped"][0]["file"], "api.json");
    assert_eq!(summary["failed"][0]["file"], "templates/gone.json");
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("templates/recorded.json")).unwrap()).unwrap();
    assert_eq!(recorded["output"]["3"]["inputs"]["seed"], 123_456);
    let gone: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("templates/gone.json")).unwrap()).unwrap();
    assert!(
        gone["error"].as_str().unwrap().contains("cannot read"),
        "{gone:#}"
    );
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("nested/one.json")).unwrap()).unwrap();
    assert_eq!(record["output"]["3"]["inputs"]["seed"], 123_456);
    assert_eq!(record["error_count"], 0);
    std::fs::remove_dir_all(&scratch).ok();
}

#[test]
fn without_node_definitions_the_error_says_what_to_do() {
    let output = run(&["params", path_text(&fixture("txt2img_ui.json"))]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--object-info"), "{stderr}");
    let missing = run(&[
        "convert",
        "/nonexistent/workflow.json",
        "--object-info",
        path_text(&object_info()),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

/// A device or a FIFO given as a workflow or as node definitions is refused at once, by what it
/// is, instead of being read without end (or blocking on open).
#[test]
fn files_that_never_end_are_refused() {
    let object_info = object_info();
    let output = run(&["convert", "/dev/zero", "--object-info", path_text(&object_info)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("not a regular file"),
        "{stderr}"
    );
    let output = run(&[
        "validate",
        path_text(&fixture("txt2img_ui.json")),
        "--object-info",
        "/dev/zero",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("not a regular file"),
        "{stderr}"
    );
}
