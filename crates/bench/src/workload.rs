//! The txt2img job both paths run: one set of parameters, the graph the direct path posts (built
//! with the same builder `generate_image` uses), the tool arguments the server path sends, and a
//! check that ComfyUI really received the same graph from both.

use comfy_workflow::builders::TextToImage;
use serde_json::{Map, Value, json};

pub const CHECKPOINT: &str = "tiny-sd15-micro.ckpt";
pub const SIDE: u32 = 64;
pub const STEPS: u32 = 4;
/// Fixed, so that the two paths differ only in the prompt text.
pub const SEED: u64 = 424_242;

/// `generate_image`'s defaults for what the tool call leaves out. The bench does not trust these
/// to match: every server run's graph is compared with this one in ComfyUI's history.
const CFG: f64 = 7.0;
const SAMPLER: &str = "euler";
const SCHEDULER: &str = "normal";
const FILENAME_PREFIX: &str = "comfyui-mcp";

/// A prompt text no earlier run used, so ComfyUI's cache cannot skip the text encoder and sampler.
/// Every text has the same length, so both paths tokenize the same amount.
pub fn distinct_prompt() -> String {
    format!("a tiny benchmark picture {}", uuid::Uuid::new_v4())
}

/// The graph `generate_image` builds for [`tool_arguments`] with the same text.
pub fn graph(prompt: &str) -> Value {
    TextToImage {
        checkpoint: CHECKPOINT.to_owned(),
        prompt: prompt.to_owned(),
        negative_prompt: String::new(),
        width: SIDE,
        height: SIDE,
        batch_size: 1,
        steps: STEPS,
        cfg: CFG,
        sampler: SAMPLER.to_owned(),
        scheduler: SCHEDULER.to_owned(),
        seed: SEED,
        denoise: 1.0,
        loras: Vec::new(),
        filename_prefix: FILENAME_PREFIX.to_owned(),
    }
    .build()
    .prompt
    .to_json()
}

/// What a user would pass to `generate_image` for this job; the server fills in the rest.
pub fn tool_arguments(prompt: &str) -> Map<String, Value> {
    let arguments = json!({
        "prompt": prompt,
        "width": SIDE,
        "height": SIDE,
        "steps": STEPS,
        "seed": SEED,
        "checkpoint": CHECKPOINT,
    });
    match arguments {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Where `received` differs from `expected`, as `node.input: expected != received` lines; empty
/// when the graphs are the same.
pub fn differences(expected: &Value, received: &Value) -> Vec<String> {
    let (Some(expected), Some(received)) = (expected.as_object(), received.as_object()) else {
        return vec!["one of the graphs is not a JSON object".to_owned()];
    };
    let mut found = Vec::new();
    for (node_id, expected_node) in expected {
        let Some(received_node) = received.get(node_id) else {
            found.push(format!("node {node_id} is missing"));
            continue;
        };
        if expected_node.get("class_type") != received_node.get("class_type") {
            found.push(format!(
                "node {node_id}: class {} != {}",
                expected_node["class_type"], received_node["class_type"]
            ));
            continue;
        }
        let empty = Map::new();
        let expected_inputs = expected_node
            .get("inputs")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let received_inputs = received_node
            .get("inputs")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (input, value) in expected_inputs {
            match received_inputs.get(input) {
                Some(other) if same_value(value, other) => {}
                Some(other) => found.push(format!("node {node_id}.{input}: {value} != {other}")),
                None => found.push(format!("node {node_id}.{input} is missing")),
            }
        }
        for input in received_inputs.keys() {
            if !expected_inputs.contains_key(input) {
                found.push(format!("node {node_id}.{input} is extra"));
            }
        }
    }
    for node_id in received.keys() {
        if !expected.contains_key(node_id) {
            found.push(format!("node {node_id} is extra"));
        }
    }
    found
}

/// JSON equality where 7 and 7.0 are the same number (ComfyUI hands back what Python parsed).
fn same_value(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(left), Value::Number(right)) => match (left.as_f64(), right.as_f64()) {
            (Some(left), Some(right)) => left == right,
            _ => left == right,
        },
        _ => left == right,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_carries_the_parameters() {
        let graph = graph("a fox");
        let nodes: Vec<&Value> = graph.as_object().unwrap().values().collect();
        let sampler = nodes
            .iter()
            .find(|node| node["class_type"] == "KSampler")
            .unwrap();
        assert_eq!(sampler["inputs"]["seed"], json!(SEED));
        assert_eq!(sampler["inputs"]["steps"], json!(STEPS));
        assert!(nodes.iter().any(|node| node["inputs"]["text"] == "a fox"));
        assert!(nodes.iter().any(|node| node["inputs"]["ckpt_name"] == CHECKPOINT));
    }

    #[test]
    fn differences_name_the_input() {
        let expected = graph("a fox");
        assert!(differences(&expected, &expected).is_empty());
        let mut changed = expected.clone();
        let sampler_id = changed
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, node)| node["class_type"] == "KSampler")
            .map(|(id, _)| id.clone())
            .unwrap();
        changed[&sampler_id]["inputs"]["cfg"] = json!(8.0);
        let found = differences(&expected, &changed);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains(&format!("node {sampler_id}.cfg")), "{found:?}");
    }

    #[test]
    fn integers_and_floats_compare_by_value() {
        assert!(same_value(&json!(7), &json!(7.0)));
        assert!(!same_value(&json!(7), &json!(7.5)));
    }

    #[test]
    fn prompts_are_distinct_and_equally_long() {
        let (first, second) = (distinct_prompt(), distinct_prompt());
        assert_ne!(first, second);
        assert_eq!(first.len(), second.len());
    }
}
