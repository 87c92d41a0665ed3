//! Local validation agrees with the real server: a corpus of deliberately broken API workflows is
//! validated locally (against the server's own `/object_info`) and posted to the real `/prompt`;
//! both must reject the same way and name the same nodes and inputs.

use std::collections::BTreeSet;

use comfy_api::{ClientError, ComfyClient, PromptRequest};
use comfy_workflow::{ObjectInfo, validate_json};
use serde_json::{Value, json};
use test_support::comfyui_url;

/// A valid model-free graph: EmptyImage -> ImageInvert -> SaveImage.
fn valid() -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "validation"}}
    })
}

fn txt2img() -> Value {
    json!({
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15-micro.ckpt"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
              "seed": 1, "steps": 4, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "validation"}}
    })
}

fn broken(base: Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut graph = base;
    edit(&mut graph);
    graph
}

/// The broken corpus: each case breaks one or more rules of ComfyUI's `/prompt` validation.
fn corpus() -> Vec<(&'static str, Value)> {
    vec![
        (
            "steps below min",
            broken(txt2img(), |graph| graph["3"]["inputs"]["steps"] = json!(0)),
        ),
        (
            "cfg above max",
            broken(txt2img(), |graph| graph["3"]["inputs"]["cfg"] = json!(1000.0)),
        ),
        (
            "unknown sampler",
            broken(txt2img(), |graph| {
                graph["3"]["inputs"]["sampler_name"] = json!("eulr")
            }),
        ),
        (
            "unknown checkpoint",
            broken(txt2img(), |graph| {
                graph["4"]["inputs"]["ckpt_name"] = json!("missing.safetensors")
            }),
        ),
        (
            "missing required input",
            broken(txt2img(), |graph| {
                graph["3"]["inputs"].as_object_mut().unwrap().remove("seed");
            }),
        ),
        (
            "wrong link type",
            broken(txt2img(), |graph| {
                graph["8"]["inputs"]["samples"] = json!(["4", 0])
            }),
        ),
        (
            "not a number",
            broken(valid(), |graph| graph["1"]["inputs"]["width"] = json!("wide")),
        ),
        (
            "bad link shape",
            broken(valid(), |graph| {
                graph["2"]["inputs"]["image"] = json!(["1", 0, 5])
            }),
        ),
        (
            "two errors on two nodes",
            broken(txt2img(), |graph| {
                graph["3"]["inputs"]["scheduler"] = json!("karas");
                graph["5"]["inputs"]["width"] = json!(8);
            }),
        ),
        (
            "width not a multiple and too small",
            broken(valid(), |graph| graph["1"]["inputs"]["height"] = json!(0)),
        ),
        (
            "missing input on the output",
            broken(valid(), |graph| {
                graph["3"]["inputs"].as_object_mut().unwrap().remove("images");
            }),
        ),
        (
            "unknown node type",
            broken(valid(), |graph| graph["2"]["class_type"] = json!("ImageInvertt")),
        ),
        (
            "no output node",
            broken(valid(), |graph| {
                graph.as_object_mut().unwrap().remove("3");
            }),
        ),
        (
            "partly valid: one output fails",
            broken(valid(), |graph| {
                graph["4"] = json!({"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}});
                graph["5"] = json!({"class_type": "EmptyImage", "inputs": {"width": 0, "height": 64, "batch_size": 1, "color": 0}});
            }),
        ),
    ]
}

/// (node id, input name) pairs of errors, from ComfyUI's `node_errors`.
fn server_findings(rejection: &comfy_api::PromptRejection) -> BTreeSet<(String, String)> {
    let mut findings = BTreeSet::new();
    for (node_id, node) in &rejection.node_errors {
        for error in &node.errors {
            let input = error
                .extra_info
                .get("input_name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            findings.insert((node_id.clone(), input));
        }
    }
    findings
}

/// What a comparison saw: how many graphs each side rejected and accepted, and how many findings
/// the server named.
#[derive(Debug, Default)]
struct Compared {
    rejected: usize,
    accepted: usize,
    server_flags: usize,
}

/// Validates every graph locally, with the checks the engine picks for this server's version, and
/// posts it to the real `/prompt`: both sides must accept or reject it alike, with the same
/// top-level error, and every node and input the server names we name too (we may name more: we
/// keep validating where ComfyUI stops at the first failure of a node).
async fn compare_with_the_server(corpus: Vec<(&'static str, Value)>) -> (String, Compared) {
    let client = ComfyClient::new(&comfyui_url(), Default::default()).expect("client");
    // Parsed as the engine parses them: from the text, in the server's order.
    let text = client.object_info_text().await.expect("object_info");
    let info = ObjectInfo::from_json_text(&text).expect("object_info is JSON");
    let version = client
        .system_stats()
        .await
        .expect("system_stats")
        .system
        .comfyui_version;
    let options = comfy_engine::definitions::validation_options(Some(&version));
    let mut compared = Compared::default();
    for (name, graph) in corpus {
        let report = validate_json(&graph, &info, &options);
        let request = PromptRequest::new(graph.clone(), "validation-test");
        let ours: BTreeSet<(String, String)> = report
            .errors()
            .map(|diagnostic| {
                (
                    diagnostic.node_id.clone(),
                    diagnostic.input.clone().unwrap_or_default(),
                )
            })
            .collect();
        match client.queue_prompt(&request).await {
            Err(ClientError::Rejected(rejection)) => {
                assert!(
                    !report.is_accepted(),
                    "{version}, {name}: the server rejected it ({rejection}) but we accepted it"
                );
                let rejection_code = report
                    .rejection
                    .as_ref()
                    .map(|rejection| rejection.code.clone())
                    .unwrap_or_default();
                assert_eq!(
                    rejection_code, rejection.error.kind,
                    "{version}, {name}: top-level error type"
                );
                let theirs = server_findings(&rejection);
                compared.rejected += 1;
                compared.server_flags += theirs.len();
                for finding in &theirs {
                    assert!(
                        ours.contains(finding)
                            || (finding.1.is_empty() && ours.iter().any(|ours| ours.0 == finding.0)),
                        "{version}, {name}: the server flags {finding:?}, we flag {ours:?}"
                    );
                }
            }
            Ok(accepted) => {
                assert!(
                    report.is_accepted(),
                    "{version}, {name}: the server queued it but we rejected it: {:?} {ours:?}",
                    report.rejection
                );
                compared.accepted += 1;
                let theirs: BTreeSet<String> = accepted.node_errors.keys().cloned().collect();
                let failing: BTreeSet<String> = report
                    .errors()
                    .map(|diagnostic| diagnostic.node_id.clone())
                    .collect();
                assert_eq!(
                    failing, theirs,
                    "{version}, {name}: partial acceptance flags the same nodes"
                );
                // It was queued: don't leave work behind for other tests.
                let _ = client
                    .delete_from_queue(std::slice::from_ref(&accepted.prompt_id))
                    .await;
            }
            Err(other) => panic!("{version}, {name}: unexpected reply {other}"),
        }
    }
    (version, compared)
}

#[tokio::test]
async fn local_validation_flags_what_the_real_server_flags() {
    let (_, compared) = compare_with_the_server(corpus()).await;
    // The comparison must have had something to compare.
    assert!(
        compared.rejected >= 12 && compared.server_flags >= 10,
        "only {compared:?}"
    );
}

fn image() -> Value {
    json!({"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}})
}

fn preview(source: &str) -> Value {
    json!({"class_type": "PreviewImage", "inputs": {"images": [source, 0]}})
}

/// An image resized by ResizeImageMaskNode with `inputs` (besides its image) and previewed.
fn resize(inputs: Value) -> Value {
    let mut node_inputs = json!({"input": ["1", 0]});
    for (name, value) in inputs.as_object().expect("inputs") {
        node_inputs[name] = value.clone();
    }
    json!({"1": image(), "2": {"class_type": "ResizeImageMaskNode", "inputs": node_inputs}, "3": preview("2")})
}

/// Graphs that use 0.26's V3 dynamic inputs (dynamic combos with nested inputs, autogrow slots,
/// match types) and V3 combos, valid and broken. On 0.3.75, which has none of these nodes but the
/// last, they are all rejected for their missing classes, by both sides.
fn v3_corpus() -> Vec<(&'static str, Value)> {
    let multiplier = json!({"resize_type": "scale by multiplier", "resize_type.multiplier": 0.5,
                            "scale_method": "nearest-exact"});
    vec![
        ("dynamic combo with its nested input", resize(multiplier.clone())),
        (
            "dynamic combo without its nested input",
            resize(json!({"resize_type": "scale by multiplier", "scale_method": "area"})),
        ),
        (
            "nested input above its max",
            resize(
                json!({"resize_type": "scale by multiplier", "resize_type.multiplier": 9.0,
                          "scale_method": "area"}),
            ),
        ),
        (
            "nested V3 combo not in its options",
            resize(json!({"resize_type": "scale dimensions", "resize_type.width": 4,
                          "resize_type.height": 4, "resize_type.crop": "middle", "scale_method": "area"})),
        ),
        (
            "V3 combo beside a dynamic combo not in its options",
            resize(
                json!({"resize_type": "scale by multiplier", "resize_type.multiplier": 0.5,
                          "scale_method": "lanczoz"}),
            ),
        ),
        (
            "autogrow with two slots",
            json!({"1": image(), "2": image(),
                "3": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["1", 0], "images.image1": ["2", 0]}},
                "4": preview("3")}),
        ),
        (
            "autogrow below its minimum",
            json!({"3": {"class_type": "BatchImagesNode", "inputs": {}}, "4": preview("3")}),
        ),
        (
            "autogrow slot of the wrong type",
            json!({"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
                "3": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["1", 0]}},
                "4": preview("3")}),
        ),
        (
            "match-type switch",
            json!({"1": image(), "2": image(),
                "3": {"class_type": "ComfySwitchNode", "inputs": {"switch": true, "on_false": ["1", 0], "on_true": ["2", 0]}},
                "4": preview("3")}),
        ),
        (
            "V3 combo of a V3 node not in its options",
            json!({"1": image(),
                "2": {"class_type": "ImageScaleToTotalPixels", "inputs": {"image": ["1", 0],
                      "upscale_method": "lanczoz", "megapixels": 0.01, "resolution_steps": 1}},
                "3": preview("2")}),
        ),
    ]
}

/// The V3 graphs get the same verdicts here as on the real server; on a current ComfyUI (which
/// has these nodes) some are accepted and several rejected for their nested inputs.
#[tokio::test]
async fn v3_dynamic_inputs_are_judged_as_the_real_server_judges_them() {
    let (version, compared) = compare_with_the_server(v3_corpus()).await;
    if test_support::is_current_comfyui(&version) {
        assert!(
            compared.accepted >= 3 && compared.rejected >= 6,
            "{version}: only {compared:?}"
        );
    } else {
        // 0.3.75: every graph but the last names a class it lacks; the last it does not check.
        assert_eq!(
            (compared.rejected, compared.accepted),
            (9, 1),
            "{version}: {compared:?}"
        );
    }
}
