//! Tests for validation, mostly against the real 0.3.75 `/object_info` fixture.

use serde_json::{Value, json};

use super::*;
use crate::testing::{object_info, txt2img, txt2img_json};

fn check(prompt: &ApiPrompt) -> Report {
    validate(prompt, object_info(), &ValidationOptions::default())
}

fn check_json(raw: Value) -> Report {
    validate_json(&raw, object_info(), &ValidationOptions::default())
}

fn with_input(node_id: &str, input: &str, value: Value) -> ApiPrompt {
    let mut prompt = txt2img();
    prompt
        .get_mut(node_id)
        .unwrap()
        .inputs
        .insert(input.to_owned(), value);
    prompt
}

fn only_error(report: &Report) -> &Diagnostic {
    let errors: Vec<&Diagnostic> = report.errors().collect();
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    errors[0]
}

#[test]
fn txt2img_is_valid() {
    let report = check(&txt2img());
    assert_eq!(report.outcome(), Outcome::Valid, "{report:#?}");
    assert!(report.diagnostics.is_empty(), "{report:#?}");
    assert_eq!(report.queued_outputs(), ["9"]);
}

#[test]
fn steps_zero_is_smaller_than_min() {
    let report = check(&with_input("3", "steps", json!(0)));
    let error = only_error(&report);
    assert_eq!(error.code, "value_smaller_than_min");
    assert_eq!(error.node_id, "3");
    assert_eq!(error.class_type, "KSampler");
    assert_eq!(error.input.as_deref(), Some("steps"));
    assert_eq!(error.message, "Value 0 smaller than min of 1");
    assert_eq!(report.outcome(), Outcome::Rejected);
    assert_eq!(
        report.rejection.as_ref().unwrap().code,
        "prompt_outputs_failed_validation"
    );
    assert_eq!(report.outputs[0].failing_nodes, ["3"]);
    assert!(!report.outputs[0].valid);
}

#[test]
fn misspelt_sampler_suggests_euler() {
    let report = check(&with_input("3", "sampler_name", json!("eulr")));
    let error = only_error(&report);
    assert_eq!(error.code, "value_not_in_list");
    assert_eq!(error.candidates.first().map(String::as_str), Some("euler"));
    assert!(error.suggestion.as_deref().unwrap().contains("'euler'"));
    // Long lists are abbreviated the way ComfyUI does.
    assert!(error.message.contains("(list of length"), "{}", error.message);
}

#[test]
fn unknown_checkpoint_lists_short_choices_and_suggests() {
    let report = check(&with_input("4", "ckpt_name", json!("tiny_sd15.safetensors")));
    let error = only_error(&report);
    assert_eq!(error.code, "value_not_in_list");
    assert!(
        error.message.contains("'tiny-sd15.safetensors'"),
        "{}",
        error.message
    );
    assert_eq!(error.candidates[0], "tiny-sd15.safetensors");
}

#[test]
fn numbers_are_coerced_like_python() {
    assert!(!check(&with_input("3", "steps", json!("16"))).has_errors());
    assert!(!check(&with_input("3", "steps", json!(8.9))).has_errors());
    assert!(!check(&with_input("3", "steps", json!({"__value__": 20}))).has_errors());
    let report = check(&with_input("3", "steps", json!("abc")));
    let error = only_error(&report);
    assert_eq!(error.code, "invalid_input_type");
    assert!(
        error
            .message
            .starts_with("Failed to convert an input value to a INT value")
    );
    assert_eq!(
        only_error(&check(&with_input("3", "steps", json!("8.9")))).code,
        "invalid_input_type"
    );
    assert_eq!(
        only_error(&check(&with_input("3", "cfg", json!(null)))).code,
        "invalid_input_type"
    );
}

#[test]
fn seeds_up_to_two_pow_64_minus_one_are_valid() {
    assert!(!check(&with_input("3", "seed", json!(18_446_744_073_709_551_615u64))).has_errors());
    assert!(!check(&with_input("3", "seed", json!("18446744073709551615"))).has_errors());
    let too_big = check(&with_input("3", "seed", json!("18446744073709551616")));
    assert_eq!(only_error(&too_big).code, "value_bigger_than_max");
    let too_big_float = check(&with_input("3", "seed", json!(18_446_744_073_709_551_616.0)));
    assert_eq!(only_error(&too_big_float).code, "value_bigger_than_max");
    let negative = check(&with_input("3", "seed", json!(-1)));
    assert_eq!(only_error(&negative).code, "value_smaller_than_min");
}

#[test]
fn float_above_max_is_reported() {
    let report = check(&with_input("3", "denoise", json!(1.5)));
    let error = only_error(&report);
    assert_eq!(error.code, "value_bigger_than_max");
    assert_eq!(error.message, "Value 1.5 bigger than max of 1.0");
}

#[test]
fn missing_required_input_is_reported() {
    let mut prompt = txt2img();
    prompt.get_mut("3").unwrap().inputs.remove("latent_image");
    let report = check(&prompt);
    let error = only_error(&report);
    assert_eq!(error.code, "required_input_missing");
    assert_eq!(error.input.as_deref(), Some("latent_image"));
}

#[test]
fn list_of_wrong_length_is_a_bad_link() {
    let report = check(&with_input("3", "model", json!(["4", 0, 1])));
    assert_eq!(only_error(&report).code, "bad_linked_input");
}

#[test]
fn mismatched_link_types_are_reported_with_a_fix() {
    // VAEDecode.vae linked to the checkpoint's CLIP output instead of its VAE output.
    let report = check(&with_input("8", "vae", json!(["4", 1])));
    let error = only_error(&report);
    assert_eq!(error.code, "return_type_mismatch");
    assert!(
        error
            .message
            .contains("received_type(CLIP) mismatch input_type(VAE)")
    );
    assert_eq!(error.suggestion.as_deref(), Some("link to [\"4\", 2] (VAE)"));
}

#[test]
fn broken_links_are_exceptions_on_the_linking_node() {
    let report = check(&with_input("3", "model", json!(["99", 0])));
    let error = only_error(&report);
    assert_eq!(error.code, "exception_during_inner_validation");
    assert!(error.message.contains("'99', which does not exist"));

    let report = check(&with_input("9", "images", json!(["8", 1])));
    let error = only_error(&report);
    assert_eq!(error.code, "exception_during_validation");
    assert!(error.message.contains("which has 1 output"), "{}", error.message);

    let report = check(&with_input("3", "model", json!([4, 0])));
    assert_eq!(only_error(&report).code, "exception_during_inner_validation");
    let report = check(&with_input("3", "model", json!(["4", 0.0])));
    assert_eq!(only_error(&report).code, "exception_during_inner_validation");
}

#[test]
fn negative_output_index_counts_from_the_end() {
    let report = check(&with_input("8", "vae", json!(["4", -1])));
    assert!(!report.has_errors(), "{report:#?}");
    assert_eq!(report.warnings().count(), 1);
}

#[test]
fn type_matching_follows_comfyui() {
    assert!(types_match("IMAGE", "IMAGE"));
    assert!(types_match("*", "IMAGE"));
    assert!(types_match("IMAGE", "*"));
    assert!(types_match("MODEL,CLIP", "CLIP"));
    assert!(types_match("A, B", "B,C"));
    assert!(!types_match("LATENT", "IMAGE"));
    assert!(!types_match("A,B", "C,D"));
}

#[test]
fn missing_class_type_rejects_the_prompt() {
    let mut raw = txt2img_json();
    raw["5"].as_object_mut().unwrap().remove("class_type");
    let report = check_json(raw);
    let rejection = report.rejection.as_ref().unwrap();
    assert_eq!(rejection.code, "invalid_prompt");
    assert!(
        report
            .diagnostics
            .iter()
            .any(|diagnostic| diagnostic.node_id == "5" && diagnostic.code == "invalid_prompt")
    );
    assert_eq!(
        check_json(json!([1, 2])).rejection.unwrap().code,
        "prompt_no_outputs"
    );
    let mut empty_class = txt2img();
    empty_class.get_mut("5").unwrap().class_type = String::new();
    assert_eq!(check(&empty_class).rejection.unwrap().code, "invalid_prompt");
}

#[test]
fn a_current_server_calls_a_missing_class_missing_node_type() {
    let current = ValidationOptions {
        missing_node_type: true,
        ..ValidationOptions::default()
    };
    let mut unknown = txt2img();
    unknown.get_mut("3").unwrap().class_type = "Ksampler".to_owned();
    let report = validate(&unknown, object_info(), &current);
    assert_eq!(report.rejection.as_ref().unwrap().code, "missing_node_type");
    assert_eq!(
        report.errors().find(|error| error.node_id == "3").unwrap().code,
        "missing_node_type"
    );
    let mut raw = txt2img_json();
    raw["5"].as_object_mut().unwrap().remove("class_type");
    let report = validate_json(&raw, object_info(), &current);
    assert_eq!(report.rejection.as_ref().unwrap().code, "missing_node_type");
    // A node that is not an object is malformed on every server.
    let mut raw = txt2img_json();
    raw["5"] = json!("not a node");
    let report = validate_json(&raw, object_info(), &current);
    assert_eq!(report.rejection.as_ref().unwrap().code, "invalid_prompt");
}

#[test]
fn unknown_class_is_suggested_or_attributed_to_a_pack() {
    let mut prompt = txt2img();
    prompt.get_mut("3").unwrap().class_type = "Ksampler".to_owned();
    let report = check(&prompt);
    assert_eq!(report.rejection.as_ref().unwrap().code, "invalid_prompt");
    assert_eq!(
        report.rejection.as_ref().unwrap().message,
        "Cannot execute because node Ksampler does not exist"
    );
    let error = report.errors().find(|error| error.node_id == "3").unwrap();
    assert_eq!(error.candidates[0], "KSampler");

    prompt.get_mut("3").unwrap().class_type = "FaceDetailer".to_owned();
    let options = ValidationOptions {
        custom_node_hints: [("FaceDetailer".to_owned(), "comfyui-impact-pack".to_owned())].into(),
        ..ValidationOptions::default()
    };
    let report = validate(&prompt, object_info(), &options);
    let error = report.errors().find(|error| error.node_id == "3").unwrap();
    assert!(
        error
            .suggestion
            .as_deref()
            .unwrap()
            .contains("comfyui-impact-pack")
    );
}

#[test]
fn prompt_without_outputs_is_rejected() {
    let mut prompt = txt2img();
    prompt.nodes.remove("9");
    let report = check(&prompt);
    assert_eq!(report.rejection.unwrap().code, "prompt_no_outputs");
}

#[test]
fn partial_execution_targets_select_outputs() {
    let mut prompt = txt2img();
    prompt.nodes.insert(
        "10".to_owned(),
        serde_json::from_value(json!({"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}))
            .unwrap(),
    );
    let only_preview = ValidationOptions {
        partial_execution_targets: Some(vec!["10".to_owned()]),
        ..ValidationOptions::default()
    };
    let report = validate(&prompt, object_info(), &only_preview);
    assert_eq!(report.queued_outputs(), ["10"]);
    let not_an_output = ValidationOptions {
        partial_execution_targets: Some(vec!["8".to_owned()]),
        ..ValidationOptions::default()
    };
    let report = validate(&prompt, object_info(), &not_an_output);
    assert_eq!(report.rejection.unwrap().code, "prompt_no_outputs");
}

#[test]
fn one_bad_output_of_two_is_partial() {
    let mut prompt = txt2img();
    prompt.nodes.insert(
        "10".to_owned(),
        serde_json::from_value(
            json!({"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "x"}}),
        )
        .unwrap(),
    );
    prompt.nodes.insert(
        "11".to_owned(),
        serde_json::from_value(json!({"class_type": "LoadImage", "inputs": {"image": "missing.png"}}))
            .unwrap(),
    );
    let report = check(&prompt);
    assert_eq!(report.outcome(), Outcome::Partial);
    assert!(report.is_accepted());
    assert_eq!(report.queued_outputs(), ["9"]);
    let error = only_error(&report);
    assert_eq!(error.code, "custom_validation_failed");
    assert_eq!(error.node_id, "11");
    let bad = report
        .outputs
        .iter()
        .find(|output| output.node_id == "10")
        .unwrap();
    assert_eq!(bad.failing_nodes, ["11"]);
}

#[test]
fn image_files_are_checked_like_load_image_does() {
    let load = |image: &str| {
        let mut prompt = ApiPrompt::new();
        prompt.nodes.insert(
            "1".to_owned(),
            serde_json::from_value(json!({"class_type": "LoadImage", "inputs": {"image": image}})).unwrap(),
        );
        prompt.nodes.insert(
            "2".to_owned(),
            serde_json::from_value(json!({"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}))
                .unwrap(),
        );
        check(&prompt)
    };
    assert_eq!(load("example.png").outcome(), Outcome::Valid);
    assert_eq!(load("example.png [input]").outcome(), Outcome::Valid);
    let report = load("exmple.png");
    let error = only_error(&report);
    assert_eq!(
        error.message,
        "Custom validation failed for node: image - Invalid image file: exmple.png"
    );
    assert_eq!(error.candidates[0], "example.png");
    let subfolder = load("pasted/image.png");
    assert!(!subfolder.has_errors());
    assert_eq!(subfolder.warnings().next().unwrap().code, "unverifiable_file");
}

#[test]
fn v3_combos_are_checked_only_when_asked() {
    let mut prompt = txt2img();
    prompt.nodes.insert(
        "10".to_owned(),
        serde_json::from_value(json!({"class_type": "LatentBatchSeedBehavior",
            "inputs": {"samples": ["5", 0], "seed_behavior": "bogus"}}))
        .unwrap(),
    );
    prompt
        .get_mut("3")
        .unwrap()
        .inputs
        .insert("latent_image".to_owned(), json!(["10", 0]));
    assert!(!check(&prompt).has_errors());
    let newer = ValidationOptions {
        check_v3_combos: true,
        ..ValidationOptions::default()
    };
    let report = validate(&prompt, object_info(), &newer);
    let error = only_error(&report);
    assert_eq!(error.code, "value_not_in_list");
    assert_eq!(
        error.message,
        "Value not in list: seed_behavior: 'bogus' not in ['random', 'fixed']"
    );
}

#[test]
fn cycles_are_reported_on_each_member() {
    let mut prompt = txt2img();
    // The sampler's latent comes from a VAEEncode of the decoded image: 3 -> 8 -> 10 -> 3.
    prompt.nodes.insert(
        "10".to_owned(),
        serde_json::from_value(
            json!({"class_type": "VAEEncode", "inputs": {"pixels": ["8", 0], "vae": ["4", 2]}}),
        )
        .unwrap(),
    );
    prompt
        .get_mut("3")
        .unwrap()
        .inputs
        .insert("latent_image".to_owned(), json!(["10", 0]));
    let report = check(&prompt);
    let cycle: Vec<&str> = report
        .errors()
        .filter(|error| error.code == "dependency_cycle")
        .map(|error| error.node_id.as_str())
        .collect();
    assert_eq!(cycle, ["3", "8", "10"]);
    let message = &report.errors().next().unwrap().message;
    assert_eq!(
        message,
        "Dependency cycle detected: 3 (KSampler) -> 8 (VAEDecode) -> 10 (VAEEncode) -> 3 (KSampler)"
    );
    assert_eq!(report.outcome(), Outcome::Rejected);
}

#[test]
fn self_loop_is_a_cycle() {
    let mut prompt = txt2img();
    prompt.nodes.insert(
        "10".to_owned(),
        serde_json::from_value(json!({"class_type": "ImageInvert", "inputs": {"image": ["10", 0]}})).unwrap(),
    );
    prompt
        .get_mut("9")
        .unwrap()
        .inputs
        .insert("images".to_owned(), json!(["10", 0]));
    let report = check(&prompt);
    let error = only_error(&report);
    assert_eq!(error.code, "dependency_cycle");
    assert_eq!(error.node_id, "10");
}

#[test]
fn deep_chains_do_not_overflow_the_stack() {
    let mut prompt = ApiPrompt::new();
    prompt.nodes.insert(
        "0".to_owned(),
        serde_json::from_value(json!({"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}))
            .unwrap(),
    );
    // As long a chain as validation accepts: the node count is exactly the cap.
    let last = MAXIMUM_GRAPH_NODES - 2;
    for index in 1..=last {
        prompt.nodes.insert(
            index.to_string(),
            serde_json::from_value(
                json!({"class_type": "ImageInvert", "inputs": {"image": [(index - 1).to_string(), 0]}}),
            )
            .unwrap(),
        );
    }
    prompt.nodes.insert(
        "out".to_owned(),
        serde_json::from_value(
            json!({"class_type": "PreviewImage", "inputs": {"images": [last.to_string(), 0]}}),
        )
        .unwrap(),
    );
    let report = check(&prompt);
    assert_eq!(
        report.outcome(),
        Outcome::Valid,
        "{:?}",
        report.diagnostics.first()
    );
}

#[test]
fn misaligned_width_is_a_warning() {
    let report = check(&with_input("5", "width", json!(513)));
    assert_eq!(report.outcome(), Outcome::Valid);
    let warning = report.warnings().next().unwrap();
    assert_eq!(warning.code, "value_not_multiple_of_step");
    assert_eq!(warning.suggestion.as_deref(), Some("use 512 or 520"));
}

#[test]
fn over_precise_cfg_is_a_warning() {
    let report = check(&with_input("3", "cfg", json!(7.125)));
    assert!(!report.has_errors());
    let warning = report.warnings().next().unwrap();
    assert_eq!(warning.code, "value_not_rounded");
    assert_eq!(warning.suggestion.as_deref(), Some("use 7.13"));
    assert!(check(&with_input("3", "cfg", json!(7.1))).diagnostics.is_empty());
}

#[test]
fn unknown_input_names_are_warned_with_a_suggestion() {
    let report = check(&with_input("3", "stpes", json!(30)));
    assert!(!report.has_errors());
    let warning = report.warnings().next().unwrap();
    assert_eq!(warning.code, "unknown_input");
    assert_eq!(warning.candidates, ["steps"]);
}

#[test]
fn string_false_for_a_boolean_is_warned() {
    let mut prompt = ApiPrompt::new();
    prompt.nodes.insert(
        "1".to_owned(),
        serde_json::from_value(json!({"class_type": "PrimitiveBoolean", "inputs": {"value": "false"}}))
            .unwrap(),
    );
    prompt.nodes.insert(
        "2".to_owned(),
        serde_json::from_value(json!({"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}})).unwrap(),
    );
    let report = check(&prompt);
    assert!(!report.has_errors(), "{report:#?}");
    let warning = report.warnings().next().unwrap();
    assert_eq!(warning.code, "boolean_from_non_boolean");
    assert!(warning.message.contains("reads as true"));
}

#[test]
fn linked_values_are_not_range_checked() {
    let mut prompt = txt2img();
    prompt.nodes.insert(
        "10".to_owned(),
        serde_json::from_value(json!({"class_type": "PrimitiveInt", "inputs": {"value": 0}})).unwrap(),
    );
    prompt
        .get_mut("3")
        .unwrap()
        .inputs
        .insert("steps".to_owned(), json!(["10", 0]));
    assert_eq!(check(&prompt).outcome(), Outcome::Valid);
}

#[test]
fn nodes_feeding_no_output_are_warned() {
    let mut prompt = txt2img();
    prompt.nodes.insert(
        "10".to_owned(),
        serde_json::from_value(json!({"class_type": "EmptyLatentImage", "inputs": {"width": 0}})).unwrap(),
    );
    let report = check(&prompt);
    // Like ComfyUI, nodes that will not run are not validated.
    assert!(!report.has_errors());
    assert_eq!(report.warnings().next().unwrap().code, "node_not_executed");
}

#[test]
fn report_serializes_for_tools() {
    let report = check(&with_input("3", "steps", json!(0)));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["rejection"]["code"], "prompt_outputs_failed_validation");
    assert_eq!(json["diagnostics"][0]["code"], "value_smaller_than_min");
    assert_eq!(json["outputs"][0]["valid"], false);
}

#[test]
fn frontend_widget_types_take_constants_without_warning() {
    let mut prompt = ApiPrompt::new();
    prompt.nodes.insert(
        "1".to_owned(),
        serde_json::from_value(json!({"class_type": "Load3D", "inputs": {"model_file": "x.glb", "image": "", "width": 64, "height": 64}}))
            .unwrap(),
    );
    prompt.nodes.insert(
        "2".to_owned(),
        serde_json::from_value(json!({"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}))
            .unwrap(),
    );
    let report = check(&prompt);
    assert!(
        report
            .diagnostics
            .iter()
            .all(|diagnostic| diagnostic.code != "constant_for_socket"),
        "{report:#?}"
    );
}

/// `count` EmptyLatentImage nodes with ids `1..=count`, none feeding an output.
fn latent_nodes(count: usize) -> ApiPrompt {
    let mut prompt = ApiPrompt::new();
    for id in 1..=count {
        prompt.nodes.insert(
            id.to_string(),
            serde_json::from_value(json!({"class_type": "EmptyLatentImage",
                "inputs": {"width": 512, "height": 512, "batch_size": 1}}))
            .unwrap(),
        );
    }
    prompt
}

#[test]
fn a_graph_above_the_node_cap_is_refused_quickly() {
    let prompt = latent_nodes(25_000);
    let started = std::time::Instant::now();
    let report = check(&prompt);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let rejection = report.rejection.as_ref().unwrap();
    assert_eq!(rejection.code, "graph_too_large");
    assert!(
        rejection.message.contains("25000") && rejection.message.contains("20000"),
        "{}",
        rejection.message
    );
    assert_eq!(
        report.diagnostics.len(),
        1,
        "{:#?}",
        &report.diagnostics[..3.min(report.diagnostics.len())]
    );
    assert_eq!(only_error(&report).code, "graph_too_large");
    assert!(report.outputs.is_empty());
    // Raw JSON is refused before it is read into a prompt.
    let raw = serde_json::to_value(&prompt.nodes).unwrap();
    assert_eq!(check_json(raw).rejection.unwrap().code, "graph_too_large");
    // At the cap, it is validated as usual.
    let report = check(&latent_nodes(MAXIMUM_GRAPH_NODES));
    assert_eq!(report.rejection.unwrap().code, "prompt_no_outputs");
}

#[test]
fn diagnostics_are_capped_with_a_summary_and_errors_kept_first() {
    // 300 warnings (nodes that feed nothing) on ids 1..=300, one error on id 5000, after them.
    let mut prompt = latent_nodes(300);
    prompt.nodes.insert(
        "5000".to_owned(),
        serde_json::from_value(json!({"class_type": "PreviewImage", "inputs": {"images": ["4999", 0]}}))
            .unwrap(),
    );
    let report = check(&prompt);
    assert_eq!(report.diagnostics.len(), MAXIMUM_DIAGNOSTICS + 1);
    assert_eq!(only_error(&report).node_id, "5000");
    assert_eq!(report.outputs[0].failing_nodes, ["5000"]);
    let summary = report.diagnostics.last().unwrap();
    assert_eq!(
        (summary.code.as_str(), summary.severity),
        ("diagnostics_omitted", Severity::Warning)
    );
    assert!(
        summary.message.contains("101") && summary.message.contains("200"),
        "{}",
        summary.message
    );
    // Findings about the prompt's shape count too.
    let malformed: serde_json::Map<String, Value> = (1..=300)
        .map(|id| (id.to_string(), json!({"inputs": {}})))
        .collect();
    let report = check_json(Value::Object(malformed));
    assert_eq!(report.diagnostics.len(), MAXIMUM_DIAGNOSTICS + 1);
    let summary = report.diagnostics.last().unwrap();
    assert_eq!(
        (summary.code.as_str(), summary.severity),
        ("diagnostics_omitted", Severity::Error)
    );
}

// V3 dynamic inputs, against hand-written definitions in ComfyUI 0.26's shapes. Every verdict
// here was checked against a real 0.26 server's `POST /prompt`.

fn check_v3(raw: Value) -> Report {
    validate_json(
        &raw,
        crate::testing::v3_object_info(),
        &ValidationOptions::default(),
    )
}

fn check_v3_strict(raw: Value) -> Report {
    let options = ValidationOptions {
        check_v3_combos: true,
        ..ValidationOptions::default()
    };
    validate_json(&raw, crate::testing::v3_object_info(), &options)
}

fn image() -> Value {
    json!({"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}})
}

fn latent() -> Value {
    json!({"class_type": "EmptyLatentImage", "inputs": {"width": 64}})
}

fn preview(source: &str) -> Value {
    json!({"class_type": "PreviewImage", "inputs": {"images": [source, 0]}})
}

/// An image resized by `inputs` (merged over `input: ["1", 0]`) and previewed.
fn resize(inputs: Value) -> Value {
    let mut node_inputs = json!({"input": ["1", 0]});
    for (name, value) in inputs.as_object().unwrap() {
        node_inputs[name] = value.clone();
    }
    json!({"1": image(), "2": {"class_type": "ResizeImageMaskNode", "inputs": node_inputs}, "3": preview("2")})
}

fn only_warning(report: &Report) -> &Diagnostic {
    let warnings: Vec<&Diagnostic> = report.warnings().collect();
    assert_eq!(warnings.len(), 1, "expected one warning, got {warnings:#?}");
    warnings[0]
}

#[test]
fn v3_graphs_that_comfyui_0_26_runs_are_valid() {
    let resized = resize(
        json!({"resize_type": "scale by multiplier", "resize_type.multiplier": 0.5,
                                "scale_method": "nearest-exact"}),
    );
    let batched = json!({"1": image(), "2": image(),
        "3": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["1", 0], "images.image1": ["2", 0]}},
        "4": preview("3")});
    let switched = json!({"1": image(), "2": image(),
        "3": {"class_type": "ComfySwitchNode", "inputs": {"switch": true, "on_false": ["1", 0], "on_true": ["2", 0]}},
        "4": preview("3")});
    for graph in [resized, batched, switched] {
        let report = check_v3_strict(graph.clone());
        assert_eq!(report.outcome(), Outcome::Valid, "{graph:#}\n{report:#?}");
        assert!(report.diagnostics.is_empty(), "{report:#?}");
    }
}

#[test]
fn nested_inputs_of_the_selected_option_are_validated() {
    let report = check_v3(resize(
        json!({"resize_type": "scale by multiplier", "scale_method": "area"}),
    ));
    let error = only_error(&report);
    assert_eq!(error.code, "required_input_missing");
    assert_eq!(error.input.as_deref(), Some("resize_type.multiplier"));
    assert_eq!(report.outcome(), Outcome::Rejected);
    let too_big = check_v3(resize(json!({"resize_type": "scale by multiplier",
                                         "resize_type.multiplier": 9.0, "scale_method": "area"})));
    assert_eq!(only_error(&too_big).code, "value_bigger_than_max");
    assert_eq!(
        only_error(&too_big).input.as_deref(),
        Some("resize_type.multiplier")
    );
    // A nested V3 combo is checked like a top-level one.
    let cropped = check_v3_strict(resize(
        json!({"resize_type": "scale dimensions", "resize_type.width": 4,
        "resize_type.height": 4, "resize_type.crop": "middle", "scale_method": "area"}),
    ));
    let error = only_error(&cropped);
    assert_eq!(
        (error.code.as_str(), error.input.as_deref()),
        ("value_not_in_list", Some("resize_type.crop"))
    );
}

#[test]
fn a_bad_dynamic_combo_choice_is_accepted_by_comfyui_but_warned() {
    // 0.26 skips a dynamic combo whose value is no option key, queues the prompt, and the node
    // then fails with a missing argument; the verdict stays "valid", with a warning and a fix.
    let report = check_v3(resize(json!({"resize_type": "scale by multiplyer",
                                        "resize_type.multiplier": 0.5, "scale_method": "area"})));
    assert_eq!(report.outcome(), Outcome::Valid);
    let warning = only_warning(&report);
    assert_eq!(warning.code, "dynamic_combo_not_in_list");
    assert_eq!(warning.input.as_deref(), Some("resize_type"));
    assert_eq!(
        warning.candidates.first().map(String::as_str),
        Some("scale by multiplier")
    );
    assert!(
        warning.message.contains("fails when it runs"),
        "{}",
        warning.message
    );
    let missing = check_v3(resize(json!({"scale_method": "area"})));
    assert_eq!(only_warning(&missing).code, "dynamic_combo_missing");
    let linked = check_v3(resize(json!({"resize_type": ["1", 0], "scale_method": "area"})));
    assert_eq!(only_warning(&linked).code, "dynamic_combo_not_in_list");
    assert!(!linked.has_errors());
}

#[test]
fn inputs_of_other_options_and_misspelt_nested_names_are_explained() {
    let report = check_v3(resize(
        json!({"resize_type": "scale by multiplier", "resize_type.multiplier": 0.5,
        "resize_type.width": 4, "scale_method": "area"}),
    ));
    let warning = only_warning(&report);
    assert_eq!(warning.code, "unknown_input");
    assert!(
        warning
            .message
            .contains("belongs to option 'scale dimensions' of resize_type"),
        "{}",
        warning.message
    );
    let misspelt = check_v3(resize(
        json!({"resize_type": "scale by multiplier", "resize_type.multiplier": 0.5,
        "resize_type.multipler": 0.5, "scale_method": "area"}),
    ));
    assert_eq!(
        only_warning(&misspelt).candidates.first().map(String::as_str),
        Some("resize_type.multiplier")
    );
}

#[test]
fn autogrow_needs_its_minimum_and_stops_at_its_maximum() {
    let empty = check_v3(json!({"3": {"class_type": "BatchImagesNode", "inputs": {}}, "4": preview("3")}));
    let error = only_error(&empty);
    assert_eq!(error.code, "required_input_missing");
    assert_eq!(error.input.as_deref(), Some("images.image0"));
    assert_eq!(empty.outcome(), Outcome::Rejected);
    // Only the first `min` slots are required: a later one alone does not count.
    let skipped = check_v3(json!({"1": image(),
        "3": {"class_type": "BatchImagesNode", "inputs": {"images.image1": ["1", 0]}}, "4": preview("3")}));
    assert_eq!(only_error(&skipped).input.as_deref(), Some("images.image0"));
    let beyond = check_v3(json!({"1": image(), "3": {"class_type": "BatchImagesNode",
        "inputs": {"images.image0": ["1", 0], "images.image50": ["1", 0]}}, "4": preview("3")}));
    assert_eq!(beyond.outcome(), Outcome::Valid);
    let warning = only_warning(&beyond);
    assert!(
        warning.message.contains("at most 50 inputs"),
        "{}",
        warning.message
    );
    // Slots are type-checked like any socket.
    let wrong = check_v3(json!({"1": latent(),
        "3": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["1", 0]}}, "4": preview("3")}));
    assert_eq!(only_error(&wrong).code, "return_type_mismatch");
}

#[test]
fn autogrow_nested_in_a_dynamic_combo_uses_the_whole_path() {
    let report = check_v3(
        json!({"1": latent(), "2": {"class_type": "ReferenceImageNode", "inputs": {
        "model": "pro", "model.width": 1, "model.images.image_1": ["1", 0]}}}),
    );
    let mut codes: Vec<(String, Option<String>)> = report
        .errors()
        .map(|error| (error.code.clone(), error.input.clone()))
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            (
                "return_type_mismatch".to_owned(),
                Some("model.images.image_1".to_owned())
            ),
            (
                "value_smaller_than_min".to_owned(),
                Some("model.width".to_owned())
            ),
        ]
    );
    // Optional nested inputs and a names autogrow with min 0 may all be left out.
    let lite = check_v3(json!({"2": {"class_type": "ReferenceImageNode", "inputs": {"model": "lite"}}}));
    assert_eq!(lite.outcome(), Outcome::Valid, "{lite:#?}");
}

#[test]
fn match_type_mismatches_are_warnings_because_comfyui_does_not_check_them() {
    // Both switch inputs share one template: an IMAGE and a LATENT are accepted by 0.26, which
    // then fails downstream.
    let mixed = check_v3(json!({"1": image(), "2": latent(),
        "3": {"class_type": "ComfySwitchNode", "inputs": {"switch": true, "on_false": ["1", 0], "on_true": ["2", 0]}},
        "4": preview("3")}));
    assert_eq!(mixed.outcome(), Outcome::Valid);
    let warning = only_warning(&mixed);
    assert_eq!(
        (warning.code.as_str(), warning.input.as_deref()),
        ("match_type_mismatch", Some("on_true"))
    );
    // A type outside the template's allowed types.
    let report = check_v3(
        json!({"1": latent(), "2": {"class_type": "ResizeImageMaskNode", "inputs": {
        "input": ["1", 0], "resize_type": "scale by multiplier", "resize_type.multiplier": 0.5, "scale_method": "area"}},
        "3": preview("2")}),
    );
    assert_eq!(report.outcome(), Outcome::Valid);
    let mismatches: Vec<(&str, Option<&str>)> = report
        .warnings()
        .map(|warning| (warning.node_id.as_str(), warning.input.as_deref()))
        .collect();
    // The resize output follows its LATENT input, so the preview gets a LATENT too.
    assert_eq!(mismatches, [("2", Some("input")), ("3", Some("images"))]);
}

#[test]
fn match_type_outputs_resolve_through_chains_to_the_linked_type() {
    // image -> switch -> switch -> VAEDecode.samples (LATENT): accepted by 0.26, warned here.
    let chained = json!({"1": image(),
        "2": {"class_type": "ComfySwitchNode", "inputs": {"switch": true, "on_false": ["1", 0], "on_true": ["1", 0]}},
        "3": {"class_type": "ComfySwitchNode", "inputs": {"switch": true, "on_false": ["2", 0], "on_true": ["2", 0]}},
        "4": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["1", 0]}},
        "5": preview("4")});
    let report = check_v3(chained);
    let samples: Vec<&Diagnostic> = report
        .diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.input.as_deref() == Some("samples"))
        .collect();
    assert_eq!(samples.len(), 1, "{report:#?}");
    assert_eq!(samples[0].code, "match_type_mismatch");
    assert!(
        samples[0].message.contains("received_type(IMAGE)"),
        "{}",
        samples[0].message
    );
    // The VAE link is an ordinary mismatch that 0.26 rejects.
    assert_eq!(only_error(&report).input.as_deref(), Some("vae"));
    // An autogrow of match types: the list output follows its slots.
    let listed = check_v3(json!({"1": image(),
        "2": {"class_type": "CreateList", "inputs": {"inputs.input0": ["1", 0]}}, "3": preview("2")}));
    assert!(listed.diagnostics.is_empty(), "{listed:#?}");
    // Switches feeding each other: a dependency cycle, and resolution still terminates.
    let looped = check_v3(json!({
        "2": {"class_type": "ComfySwitchNode", "inputs": {"switch": true, "on_false": ["3", 0], "on_true": ["3", 0]}},
        "3": {"class_type": "ComfySwitchNode", "inputs": {"switch": true, "on_false": ["2", 0], "on_true": ["2", 0]}},
        "4": preview("3")}));
    assert!(
        looped.errors().all(|error| error.code == "dependency_cycle"),
        "{looped:#?}"
    );
}

#[test]
fn v3_combo_values_are_checked_only_when_asked() {
    let graph = resize(
        json!({"resize_type": "scale by multiplier", "resize_type.multiplier": 0.5,
                              "scale_method": "lanczoz"}),
    );
    assert_eq!(check_v3(graph.clone()).outcome(), Outcome::Valid);
    let report = check_v3_strict(graph);
    let error = only_error(&report);
    assert_eq!(error.code, "value_not_in_list");
    assert_eq!(error.candidates.first().map(String::as_str), Some("lanczos"));
    assert_eq!(
        error.message,
        "Value not in list: scale_method: 'lanczoz' not in ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos']"
    );
}

#[test]
fn match_types_and_wildcards_in_unions_match_like_comfyui() {
    assert!(types_match("COMFY_MATCHTYPE_V3", "LATENT"));
    assert!(types_match("IMAGE", "COMFY_MATCHTYPE_V3"));
    assert!(types_match("IMAGE,*", "LATENT"));
    assert!(!types_match("IMAGE,MASK", "LATENT"));
}
