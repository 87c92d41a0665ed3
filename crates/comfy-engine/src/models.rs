//! Model folders and node definitions: listing, availability checks with suggestions, node search
//! and description.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use comfy_workflow::ObjectInfo;
use comfy_workflow::object_info::{InputKind, InputSection, InputSpec, NodeDefinition};
use comfy_workflow::suggest::closest_matches;

use super::{BackendEntry, Engine, EngineError};

/// Folder names that mean the same thing across ComfyUI versions.
const FOLDER_ALIASES: &[(&str, &str)] = &[("unet", "diffusion_models"), ("clip", "text_encoders")];

#[derive(Debug, Serialize, JsonSchema)]
pub struct FolderSummary {
    pub folder: String,
    pub count: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelEntry {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

/// What `list_models` answers: the folders, one folder's files, or whether one file is there.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ModelListing {
    Folders {
        backend: String,
        folders: Vec<FolderSummary>,
    },
    Files {
        backend: String,
        folder: String,
        files: Vec<ModelEntry>,
        total: usize,
    },
    Check {
        backend: String,
        folder: String,
        name: String,
        available: bool,
        suggestions: Vec<String>,
        /// The file's safetensors metadata, when asked for and the file has some.
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata: Option<Map<String, Value>>,
    },
}

impl Engine {
    async fn resolve_folder(&self, entry: &BackendEntry, folder: &str) -> Result<String, EngineError> {
        let folders = entry
            .backend
            .client()
            .model_folders()
            .await
            .map_err(|source| entry.error(source))?;
        if folders.iter().any(|known| known == folder) {
            return Ok(folder.to_owned());
        }
        for (left, right) in FOLDER_ALIASES {
            let other = if folder == *left {
                right
            } else if folder == *right {
                left
            } else {
                continue;
            };
            if folders.iter().any(|known| known == other) {
                return Ok((*other).to_owned());
            }
        }
        let suggestions = closest_matches(folder, folders.iter().map(String::as_str), 3);
        Err(EngineError::bad_input(format!(
            "unknown model folder {folder:?} on {}{}; folders: {}",
            entry.label(),
            comfy_workflow::suggest::did_you_mean(&suggestions)
                .map(|text| format!(" ({text})"))
                .unwrap_or_default(),
            folders.join(", ")
        )))
    }

    /// Lists model folders, the files of one folder (optionally filtered), or checks one name.
    pub async fn list_models(
        &self,
        backend: Option<&str>,
        folder: Option<&str>,
        contains: Option<&str>,
        name: Option<&str>,
    ) -> Result<ModelListing, EngineError> {
        let entry = self.pick_backend(backend)?;
        let client = entry.backend.client();
        let Some(folder) = folder else {
            if name.is_some() {
                return Err(EngineError::bad_input(
                    "give `folder` together with `name` (e.g. folder=\"checkpoints\")",
                ));
            }
            let folders = client
                .model_folders()
                .await
                .map_err(|source| entry.error(source))?;
            let mut summaries = Vec::new();
            for folder in folders {
                if matches!(folder.as_str(), "configs" | "custom_nodes") {
                    continue;
                }
                let count = client
                    .models(&folder)
                    .await
                    .map_err(|source| entry.error(source))?
                    .map_or(0, |files| files.len());
                summaries.push(FolderSummary { folder, count });
            }
            return Ok(ModelListing::Folders {
                backend: entry.name.clone(),
                folders: summaries,
            });
        };
        let folder = self.resolve_folder(entry, folder).await?;
        let files: Vec<ModelEntry> = match client
            .model_files(&folder)
            .await
            .map_err(|source| entry.error(source))?
        {
            Some(files) => files
                .into_iter()
                .map(|file| ModelEntry {
                    name: file.name,
                    size_bytes: file.size,
                })
                .collect(),
            None => client
                .models(&folder)
                .await
                .map_err(|source| entry.error(source))?
                .unwrap_or_default()
                .into_iter()
                .map(|name| ModelEntry {
                    name,
                    size_bytes: None,
                })
                .collect(),
        };
        if let Some(name) = name {
            let available = files.iter().any(|file| file.name == name);
            let suggestions = if available {
                Vec::new()
            } else {
                closest_matches(name, files.iter().map(|file| file.name.as_str()), 5)
            };
            return Ok(ModelListing::Check {
                backend: entry.name.clone(),
                folder,
                name: name.to_owned(),
                available,
                suggestions,
                metadata: None,
            });
        }
        let total = files.len();
        let needle = contains.map(str::to_lowercase);
        let files = files
            .into_iter()
            .filter(|file| {
                needle
                    .as_ref()
                    .is_none_or(|needle| file.name.to_lowercase().contains(needle))
            })
            .collect();
        Ok(ModelListing::Files {
            backend: entry.name.clone(),
            folder,
            files,
            total,
        })
    }

    /// The safetensors metadata of one model file, if it has any.
    pub async fn model_metadata(
        &self,
        backend: Option<&str>,
        folder: &str,
        name: &str,
    ) -> Result<Option<Value>, EngineError> {
        let entry = self.pick_backend(backend)?;
        let folder = self.resolve_folder(entry, folder).await?;
        entry
            .backend
            .client()
            .view_metadata(&folder, name)
            .await
            .map_err(|source| entry.error(source))
    }

    /// Node classes whose name, display name, category or description contain every word of `query`.
    pub async fn search_nodes(
        &self,
        backend: Option<&str>,
        query: &str,
        category: Option<&str>,
        limit: usize,
    ) -> Result<NodeSearch, EngineError> {
        let entry = self.pick_backend(backend)?;
        let info = self.object_info(entry, false).await?;
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let category = category.map(str::to_lowercase);
        // The first search parses every class not parsed yet (800 on ComfyUI 0.26): CPU work that
        // belongs off the async workers.
        let found = crate::media::off_the_workers(move || search(&info, &words, category.as_deref(), limit))
            .await
            .ok_or_else(|| {
                EngineError::bad_input("the node search did not finish: the server is shutting down")
            })?;
        Ok(NodeSearch {
            backend: entry.name.clone(),
            total: found.0,
            nodes: found.1,
        })
    }

    /// Inputs (types, ranges, defaults, choices) and outputs of one node class.
    pub async fn describe_node(
        &self,
        backend: Option<&str>,
        class_type: &str,
    ) -> Result<NodeDescription, EngineError> {
        let entry = self.pick_backend(backend)?;
        let info = self.object_info(entry, false).await?;
        let Some(node) = info.node(class_type) else {
            let candidates = closest_matches(class_type, info.class_types(), 5);
            return Err(EngineError::Missing {
                backend: entry.label(),
                what: format!("node class {class_type:?}"),
                how_to_fix: match comfy_workflow::suggest::did_you_mean(&candidates) {
                    Some(text) => format!("{text} If it comes from a custom-node pack, install that pack into ComfyUI's custom_nodes folder and restart ComfyUI"),
                    None => "install the custom-node pack that provides it into ComfyUI's custom_nodes folder and restart ComfyUI".to_owned(),
                },
            });
        };
        Ok(describe(node))
    }
}

/// The node classes whose name, display name, category or description contain every word (lower
/// case) within `category`, name hits first: how many match, and the first `limit` of them.
fn search(
    info: &ObjectInfo,
    words: &[String],
    category: Option<&str>,
    limit: usize,
) -> (usize, Vec<NodeSummary>) {
    let mut matches: Vec<(usize, &NodeDefinition)> = info
        .definitions()
        .filter(|node| category.is_none_or(|category| node.category.to_lowercase().starts_with(category)))
        .filter_map(|node| {
            let haystack = format!(
                "{} {} {} {}",
                node.class_type.to_lowercase(),
                node.display_name.to_lowercase(),
                node.category.to_lowercase(),
                node.description.to_lowercase()
            );
            if !words.iter().all(|word| haystack.contains(word.as_str())) {
                return None;
            }
            // Name hits rank above description hits.
            let name = format!(
                "{} {}",
                node.class_type.to_lowercase(),
                node.display_name.to_lowercase()
            );
            let rank = words.iter().filter(|word| !name.contains(word.as_str())).count();
            Some((rank, node))
        })
        .collect();
    matches.sort_by(|left, right| {
        left.0
            .cmp(&right.0)
            .then_with(|| left.1.class_type.cmp(&right.1.class_type))
    });
    let total = matches.len();
    let nodes = matches
        .into_iter()
        .take(limit)
        .map(|(_, node)| NodeSummary {
            class_type: node.class_type.clone(),
            display_name: node.display_name.clone(),
            category: node.category.clone(),
            custom_node_pack: node.custom_node_pack().map(str::to_owned),
            output_node: node.output_node,
            deprecated: node.deprecated,
        })
        .collect();
    (total, nodes)
}

/// What `search_nodes` answers: the best matches first, at most the limit of them.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeSearch {
    pub backend: String,
    /// How many node classes match (more than `nodes` holds when the limit cut them).
    pub total: usize,
    pub nodes: Vec<NodeSummary>,
}

/// One node class `search_nodes` found.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeSummary {
    pub class_type: String,
    pub display_name: String,
    pub category: String,
    /// The custom-node pack it comes from (absent: built into ComfyUI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_node_pack: Option<String>,
    /// Present (true) when the node writes a result (SaveImage...).
    #[serde(skip_serializing_if = "is_false")]
    pub output_node: bool,
    /// Present (true) when ComfyUI marks the node deprecated.
    #[serde(skip_serializing_if = "is_false")]
    pub deprecated: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// What `describe_node` answers: a node's inputs and outputs, compact, with long choice lists cut.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeDescription {
    pub class_type: String,
    pub display_name: String,
    pub category: String,
    pub description: String,
    pub output_node: bool,
    pub inputs: Vec<NodeInput>,
    pub outputs: Vec<NodeOutput>,
    /// The custom-node pack it comes from (absent: built into ComfyUI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_node_pack: Option<String>,
}

/// One input of a node (hidden inputs are left out).
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeInput {
    pub name: String,
    /// INT, FLOAT, STRING, COMBO, MODEL, IMAGE...
    #[serde(rename = "type")]
    pub kind: String,
    pub required: bool,
    /// Present (true) when the input takes only a link, never a widget value.
    #[serde(skip_serializing_if = "is_false")]
    pub link_only: bool,
    /// The default value, when the definition gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<WidgetValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tooltip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiline: Option<bool>,
    /// A combo's choices, the first 50 of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<WidgetValue>>,
    /// How many choices there are, when more than `choices` shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices_total: Option<usize>,
}

/// A widget value as the node definition gives it (a default, a combo's choice): a number,
/// string, boolean, list or object, never `null` (a `null` default says nothing and is left out).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct WidgetValue(pub Value);

impl JsonSchema for WidgetValue {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "WidgetValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({"anyOf": [
            {"type": "string"},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "array"},
            {"type": "object"},
        ]})
    }
}

/// One output of a node.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeOutput {
    pub index: usize,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub is_list: bool,
}

/// A node described for agents: compact, with long choice lists cut.
pub fn describe(node: &NodeDefinition) -> NodeDescription {
    const SHOWN: usize = 50;
    let number = |input: &InputSpec, key: &str| match input.option(key) {
        Some(Value::Number(number)) => Some(number.clone()),
        _ => None,
    };
    let inputs = node
        .inputs
        .iter()
        .filter(|input| input.section != InputSection::Hidden)
        .map(|input| {
            let choices = match &input.kind {
                InputKind::Combo(Some(choices)) => Some(choices),
                _ => None,
            };
            NodeInput {
                name: input.name.clone(),
                kind: input.type_name().to_owned(),
                required: input.section == InputSection::Required,
                link_only: !input.is_widget(),
                default: input
                    .option("default")
                    .filter(|value| !value.is_null())
                    .cloned()
                    .map(WidgetValue),
                min: number(input, "min"),
                max: number(input, "max"),
                step: number(input, "step"),
                tooltip: input.option("tooltip").and_then(Value::as_str).map(str::to_owned),
                multiline: input.option("multiline").and_then(Value::as_bool),
                choices: choices.map(|choices| {
                    choices
                        .iter()
                        .filter(|choice| !choice.is_null())
                        .take(SHOWN)
                        .cloned()
                        .map(WidgetValue)
                        .collect()
                }),
                choices_total: choices.map(Vec::len).filter(|total| *total > SHOWN),
            }
        })
        .collect();
    let outputs = node
        .outputs
        .iter()
        .enumerate()
        .map(|(index, output)| NodeOutput {
            index,
            name: output.name.clone(),
            kind: output.type_name.clone(),
            is_list: output.is_list,
        })
        .collect();
    NodeDescription {
        class_type: node.class_type.clone(),
        display_name: node.display_name.clone(),
        category: node.category.clone(),
        description: node.description.clone(),
        output_node: node.output_node,
        inputs,
        outputs,
        custom_node_pack: node.custom_node_pack().map(str::to_owned),
    }
}
