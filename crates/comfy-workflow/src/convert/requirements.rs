//! What a UI workflow needs from a backend before it can run: the node classes its enabled nodes
//! use (with the custom-node pack and version the file names for each) and the model files its
//! loaders declare in `properties.models` (file name, models folder, download URL), as ComfyUI's
//! own templates and the frontend's "missing models" dialog carry them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::live::{NOTE_TYPES, TYPE_RENAMES};
use super::model::{UiNode, parse_workflow};
use crate::object_info::ObjectInfo;

/// Longest file name, folder or URL kept from a workflow's model list (longer ones are dropped).
const MAXIMUM_TEXT: usize = 2048;

/// One node class a workflow uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRequirement {
    pub class_type: String,
    /// The registry id of the pack the file says the node comes from (`comfy-core` for ComfyUI's
    /// own nodes), from `properties.cnr_id` or `aux_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
    /// The pack's (or ComfyUI's) version the workflow was saved with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How many enabled nodes use it.
    pub count: usize,
}

/// One model file a workflow's loaders declare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelRequirement {
    /// The file name as the loader lists it (may hold a subfolder: `wan/model.safetensors`).
    pub name: String,
    /// The models folder it belongs in (`checkpoints`, `diffusion_models`, `text_encoders`...).
    pub directory: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Everything a workflow needs, each entry once, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Requirements {
    pub nodes: Vec<NodeRequirement>,
    pub models: Vec<ModelRequirement>,
}

impl Requirements {
    /// The node classes `info` lacks.
    pub fn missing_nodes<'a>(&'a self, info: &'a ObjectInfo) -> impl Iterator<Item = &'a NodeRequirement> {
        self.nodes.iter().filter(|node| !info.has_node(&node.class_type))
    }
}

/// Reads what `ui` needs. Muted and bypassed nodes need nothing; frontend-only nodes (notes,
/// reroutes, primitives, subgraph instances, group nodes) are not classes a backend provides.
pub fn requirements(ui: &Value) -> Requirements {
    let (workflow, _problems) = parse_workflow(ui);
    let mut nodes: BTreeMap<String, NodeRequirement> = BTreeMap::new();
    let mut models: BTreeMap<(String, String), ModelRequirement> = BTreeMap::new();
    let graphs = std::iter::once(&workflow.root).chain(workflow.subgraphs.values());
    for node in graphs.flat_map(|graph| graph.nodes.iter()) {
        if node.is_disabled() {
            continue;
        }
        let class_type = renamed(&node.type_name);
        if !is_frontend_only(class_type) && !workflow.subgraphs.contains_key(class_type) {
            let entry = nodes
                .entry(class_type.to_owned())
                .or_insert_with(|| NodeRequirement {
                    class_type: class_type.to_owned(),
                    pack: pack_of(node),
                    version: text_property(node, "ver"),
                    count: 0,
                });
            entry.count += 1;
        }
        for model in declared_models(node) {
            models
                .entry((model.directory.clone(), model.name.clone()))
                .or_insert(model);
        }
    }
    Requirements {
        nodes: nodes.into_values().collect(),
        models: models.into_values().collect(),
    }
}

fn renamed(type_name: &str) -> &str {
    TYPE_RENAMES
        .iter()
        .find(|(old, _)| *old == type_name)
        .map_or(type_name, |(_, new)| new)
}

fn is_frontend_only(type_name: &str) -> bool {
    type_name.is_empty()
        || NOTE_TYPES.contains(&type_name)
        || matches!(type_name, "Reroute" | "PrimitiveNode")
        || type_name.starts_with("workflow>")
        || type_name.starts_with("workflow/")
}

fn text_property(node: &UiNode, key: &str) -> Option<String> {
    node.property_text(key)
        .filter(|text| !text.is_empty() && text.len() <= MAXIMUM_TEXT)
        .map(str::to_owned)
}

fn pack_of(node: &UiNode) -> Option<String> {
    text_property(node, "cnr_id").or_else(|| text_property(node, "aux_id"))
}

/// `properties.models: [{name, url, directory}]`; entries without a name or folder are skipped.
fn declared_models(node: &UiNode) -> impl Iterator<Item = ModelRequirement> + '_ {
    node.properties
        .get("models")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|model| {
            let text = |key: &str| {
                model
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|text| !text.is_empty() && text.len() <= MAXIMUM_TEXT)
                    .map(str::to_owned)
            };
            Some(ModelRequirement {
                name: text("name")?,
                directory: text("directory")?,
                url: text("url").filter(|url| url.starts_with("https://") || url.starts_with("http://")),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(id: i64, type_name: &str, mode: i64, properties: Value) -> Value {
        json!({"id": id, "type": type_name, "mode": mode, "inputs": [], "outputs": [], "properties": properties})
    }

    #[test]
    fn reads_classes_packs_and_declared_models_once_each() {
        let checkpoint = json!({
            "cnr_id": "comfy-core", "ver": "0.3.40",
            "models": [
                {"name": "v1-5.safetensors", "directory": "checkpoints", "url": "https://example.org/v1-5.safetensors"},
                {"name": "", "directory": "checkpoints"},
                {"name": "no-folder.safetensors"}
            ]
        });
        let ui = json!({
            "nodes": [
                node(1, "CheckpointLoaderSimple", 0, checkpoint.clone()),
                node(2, "CheckpointLoaderSimple", 0, checkpoint),
                node(3, "VHS_VideoCombine", 0, json!({"cnr_id": "comfyui-videohelpersuite", "ver": "1.7.0"})),
                node(4, "MarkdownNote", 0, json!({})),
                node(5, "Reroute", 0, json!({})),
                node(6, "UpscaleModelLoader", 4, json!({"models": [{"name": "x4.pth", "directory": "upscale_models"}]})),
                node(7, "8a3f-subgraph", 0, json!({})),
                node(8, "Load3DAnimation", 0, json!({}))
            ],
            "links": [],
            "definitions": {"subgraphs": [{
                "id": "8a3f-subgraph", "name": "inner", "inputs": [], "outputs": [], "links": [],
                "nodes": [node(1, "VAELoader", 0, json!({"models": [{"name": "vae.safetensors", "directory": "vae", "url": "file:///etc/passwd"}]}))]
            }]}
        });
        let found = requirements(&ui);
        let classes: Vec<(&str, usize)> = found
            .nodes
            .iter()
            .map(|node| (node.class_type.as_str(), node.count))
            .collect();
        assert_eq!(
            classes,
            [
                ("CheckpointLoaderSimple", 2),
                ("Load3D", 1),
                ("VAELoader", 1),
                ("VHS_VideoCombine", 1)
            ]
        );
        let suite = &found.nodes[3];
        assert_eq!(suite.pack.as_deref(), Some("comfyui-videohelpersuite"));
        assert_eq!(suite.version.as_deref(), Some("1.7.0"));
        assert_eq!(
            found.models,
            [
                ModelRequirement {
                    name: "v1-5.safetensors".to_owned(),
                    directory: "checkpoints".to_owned(),
                    url: Some("https://example.org/v1-5.safetensors".to_owned()),
                },
                // Only http(s) download links are kept.
                ModelRequirement {
                    name: "vae.safetensors".to_owned(),
                    directory: "vae".to_owned(),
                    url: None,
                },
            ]
        );
    }

    #[test]
    fn missing_nodes_are_the_classes_the_backend_lacks() {
        let ui = json!({"nodes": [node(1, "KSampler", 0, json!({})), node(2, "NoSuchNode", 0, json!({}))], "links": []});
        let info = ObjectInfo::from_json(
            &json!({"KSampler": {"input": {"required": {}}, "output": [], "name": "KSampler"}}),
        );
        let found = requirements(&ui);
        let missing: Vec<&str> = found
            .missing_nodes(&info)
            .map(|node| node.class_type.as_str())
            .collect();
        assert_eq!(missing, ["NoSuchNode"]);
    }
}
