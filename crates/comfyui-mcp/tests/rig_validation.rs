//! Local validation agrees with the real server: a corpus of deliberately broken API workflows is
//! validated locally (against the server's own `/object_info`) and posted to the real `/prompt`;
//! both must reject the same way and name the same nodes and inputs.

use std::collections::BTreeSet;

use comfy_api::{ClientError, ComfyClient, PromptRequest};
use comfy_workflow::{ObjectInfo, ValidationOptions, validate_json};
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

#[tokio::test]
async fn local_validation_flags_what_the_real_server_flags() {
    let client = ComfyClient::new(&comfyui_url(), Default::default()).expect("client");
    let info = ObjectInfo::from_json(&client.object_info().await.expect("object_info"));
    let (mut rejected, mut server_flags) = (0, 0);
    for (name, graph) in corpus() {
        let report = validate_json(&graph, &info, &ValidationOptions::default());
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
                    "{name}: the server rejected it ({rejection}) but we accepted it"
                );
                let rejection_code = report
                    .rejection
                    .as_ref()
                    .map(|rejection| rejection.code.clone())
                    .unwrap_or_default();
                assert_eq!(
                    rejection_code, rejection.error.kind,
                    "{name}: top-level error type"
                );
                let theirs = server_findings(&rejection);
                rejected += 1;
                server_flags += theirs.len();
                // Every node and input the server names, we name too (we may name more: we keep
                // validating where ComfyUI stops at the first failure of a node).
                for finding in &theirs {
                    assert!(
                        ours.contains(finding)
                            || (finding.1.is_empty() && ours.iter().any(|ours| ours.0 == finding.0)),
                        "{name}: the server flags {finding:?}, we flag {ours:?}"
                    );
                }
            }
            Ok(accepted) => {
                assert!(
                    report.is_accepted(),
                    "{name}: the server queued it but we rejected it: {:?}",
                    report.rejection
                );
                let theirs: BTreeSet<String> = accepted.node_errors.keys().cloned().collect();
                let failing: BTreeSet<String> = report
                    .errors()
                    .map(|diagnostic| diagnostic.node_id.clone())
                    .collect();
                assert_eq!(failing, theirs, "{name}: partial acceptance flags the same nodes");
                // It was queued: don't leave work behind for other tests.
                let _ = client
                    .delete_from_queue(std::slice::from_ref(&accepted.prompt_id))
                    .await;
            }
            Err(other) => panic!("{name}: unexpected reply {other}"),
        }
    }
    // The comparison must have had something to compare.
    assert!(
        rejected >= 12 && server_flags >= 10,
        "only {rejected} rejections with {server_flags} findings"
    );
}
