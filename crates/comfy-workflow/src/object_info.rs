//! Node definitions as served by ComfyUI's `GET /object_info`, parsed into typed form.
//!
//! Both node generations are understood: V1 nodes (hidden inputs as bare strings, legacy combos as a
//! list in the type position) and V3 nodes (`"COMBO"` with `options.options`, hidden inputs as
//! one-element lists). Unknown keys are kept in [`InputSpec::options`] so nothing is lost.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Every node definition of one backend, by class type.
#[derive(Debug, Clone, Default)]
pub struct ObjectInfo {
    pub nodes: BTreeMap<String, NodeDefinition>,
}

/// Where an input is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSection {
    Required,
    Optional,
    Hidden,
}

/// The type of an input, as far as validation and schemas care.
#[derive(Debug, Clone, PartialEq)]
pub enum InputKind {
    Int,
    Float,
    String,
    Boolean,
    /// A choice among values: a legacy list combo or a V3 `COMBO`. `None` when the list is remote
    /// (the frontend fetches it from a route) and so unknown here.
    Combo(Option<Vec<Value>>),
    /// A socket type (`IMAGE`, `MODEL`, `*`, `A,B` unions...), only fed by links.
    Socket(String),
}

/// One declared input of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub section: InputSection,
    pub kind: InputKind,
    /// The raw options object (`default`, `min`, `max`, `step`, `tooltip`, `forceInput`...).
    pub options: Map<String, Value>,
}

impl InputSpec {
    pub fn option(&self, key: &str) -> Option<&Value> {
        self.options.get(key)
    }

    pub fn default_value(&self) -> Option<&Value> {
        self.options.get("default")
    }

    pub fn tooltip(&self) -> Option<&str> {
        self.options.get("tooltip").and_then(Value::as_str)
    }

    /// The type name ComfyUI uses for link type checks (`INT`, `IMAGE`, `COMBO`...).
    pub fn type_name(&self) -> &str {
        match &self.kind {
            InputKind::Int => "INT",
            InputKind::Float => "FLOAT",
            InputKind::String => "STRING",
            InputKind::Boolean => "BOOLEAN",
            InputKind::Combo(_) => "COMBO",
            InputKind::Socket(name) => name,
        }
    }

    /// True when the input is a widget in the UI (a value, not only a socket).
    pub fn is_widget(&self) -> bool {
        !matches!(self.kind, InputKind::Socket(_))
            && self.options.get("forceInput").and_then(Value::as_bool) != Some(true)
    }

    /// The combo choices as strings, when known.
    pub fn choices(&self) -> Option<Vec<String>> {
        match &self.kind {
            InputKind::Combo(Some(values)) => Some(
                values
                    .iter()
                    .map(|value| value.as_str().map_or_else(|| value.to_string(), str::to_owned))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// One node class.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDefinition {
    pub class_type: String,
    pub display_name: String,
    pub description: String,
    pub category: String,
    pub python_module: String,
    pub output_node: bool,
    pub deprecated: bool,
    pub experimental: bool,
    pub api_node: bool,
    /// Required, then optional, then hidden inputs, each in `input_order` when given.
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
}

/// One output slot of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    /// The type name; a V3 combo output carries its option list, rendered here as `COMBO`.
    pub type_name: String,
    pub name: String,
    pub is_list: bool,
}

impl NodeDefinition {
    pub fn input(&self, name: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|input| input.name == name)
    }

    /// Required and optional inputs (what a prompt may set).
    pub fn settable_inputs(&self) -> impl Iterator<Item = &InputSpec> {
        self.inputs
            .iter()
            .filter(|input| input.section != InputSection::Hidden)
    }

    /// The custom-node pack that provides this class, when it is not a core node.
    pub fn custom_node_pack(&self) -> Option<&str> {
        self.python_module.strip_prefix("custom_nodes.")
    }

    /// Parses one `node_info` object; `class_type` is its key in `/object_info`.
    pub fn from_json(class_type: &str, raw: &Value) -> Self {
        let text = |key: &str| {
            raw.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let flag = |key: &str| raw.get(key).and_then(Value::as_bool).unwrap_or(false);
        let mut inputs = Vec::new();
        for (section_key, section) in [
            ("required", InputSection::Required),
            ("optional", InputSection::Optional),
            ("hidden", InputSection::Hidden),
        ] {
            let Some(declared) = raw
                .pointer(&format!("/input/{section_key}"))
                .and_then(Value::as_object)
            else {
                continue;
            };
            let order: Vec<String> = raw
                .pointer(&format!("/input_order/{section_key}"))
                .and_then(Value::as_array)
                .map(|names| {
                    names
                        .iter()
                        .filter_map(|name| name.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_else(|| declared.keys().cloned().collect());
            let mut names = order;
            for name in declared.keys() {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            for name in names {
                if let Some(spec) = declared.get(&name) {
                    inputs.push(parse_input(&name, section, spec));
                }
            }
        }
        let output_types = raw
            .get("output")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let output_names = raw
            .get("output_name")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let output_lists = raw
            .get("output_is_list")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let outputs = output_types
            .iter()
            .enumerate()
            .map(|(index, type_value)| OutputSpec {
                type_name: type_value.as_str().unwrap_or("COMBO").to_owned(),
                name: output_names.get(index).and_then(Value::as_str).map_or_else(
                    || type_value.as_str().unwrap_or("COMBO").to_owned(),
                    str::to_owned,
                ),
                is_list: output_lists.get(index).and_then(Value::as_bool).unwrap_or(false),
            })
            .collect();
        NodeDefinition {
            class_type: class_type.to_owned(),
            display_name: text("display_name"),
            description: text("description"),
            category: text("category"),
            python_module: text("python_module"),
            output_node: flag("output_node"),
            deprecated: flag("deprecated"),
            experimental: flag("experimental"),
            api_node: flag("api_node"),
            inputs,
            outputs,
        }
    }
}

fn parse_input(name: &str, section: InputSection, spec: &Value) -> InputSpec {
    let (type_value, options) = match spec {
        Value::Array(parts) => (
            parts.first().cloned().unwrap_or(Value::Null),
            parts
                .get(1)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        ),
        other => (other.clone(), Map::new()),
    };
    let kind = match &type_value {
        Value::Array(choices) => InputKind::Combo(Some(choices.clone())),
        Value::String(type_name) => match type_name.as_str() {
            "INT" => InputKind::Int,
            "FLOAT" => InputKind::Float,
            "STRING" => InputKind::String,
            "BOOLEAN" => InputKind::Boolean,
            "COMBO" => InputKind::Combo(options.get("options").and_then(Value::as_array).cloned()),
            other => InputKind::Socket(other.to_owned()),
        },
        _ => InputKind::Socket("*".to_owned()),
    };
    InputSpec {
        name: name.to_owned(),
        section,
        kind,
        options,
    }
}

impl ObjectInfo {
    /// Parses the whole `/object_info` document.
    pub fn from_json(raw: &Value) -> Self {
        let nodes = raw
            .as_object()
            .map(|classes| {
                classes
                    .iter()
                    .map(|(class_type, info)| {
                        (class_type.clone(), NodeDefinition::from_json(class_type, info))
                    })
                    .collect()
            })
            .unwrap_or_default();
        ObjectInfo { nodes }
    }

    pub fn node(&self, class_type: &str) -> Option<&NodeDefinition> {
        self.nodes.get(class_type)
    }

    pub fn has_node(&self, class_type: &str) -> bool {
        self.nodes.contains_key(class_type)
    }

    /// The choices of a combo input, e.g. `("KSampler", "sampler_name")`.
    pub fn combo_choices(&self, class_type: &str, input: &str) -> Option<Vec<String>> {
        self.node(class_type)?.input(input)?.choices()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_v1_and_v3_inputs() {
        let raw = json!({
            "KSampler": {
                "input": {"required": {
                    "model": ["MODEL"],
                    "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615u64, "control_after_generate": true}],
                    "sampler_name": [["euler", "ddim"], {}],
                }, "hidden": {"prompt": "PROMPT"}},
                "input_order": {"required": ["model", "seed", "sampler_name"], "hidden": ["prompt"]},
                "output": ["LATENT"], "output_is_list": [false], "output_name": ["LATENT"],
                "name": "KSampler", "display_name": "KSampler", "description": "", "python_module": "nodes",
                "category": "sampling", "output_node": false
            },
            "V3": {
                "input": {"required": {"mode": ["COMBO", {"options": ["a", "b"], "multiselect": false}]}, "hidden": {"p": ["PROMPT"]}},
                "output": [], "name": "V3", "python_module": "custom_nodes.pack", "output_node": true
            }
        });
        let info = ObjectInfo::from_json(&raw);
        let sampler = info.node("KSampler").unwrap();
        assert_eq!(
            sampler
                .inputs
                .iter()
                .map(|input| input.name.as_str())
                .collect::<Vec<_>>(),
            ["model", "seed", "sampler_name", "prompt"]
        );
        assert_eq!(sampler.input("seed").unwrap().kind, InputKind::Int);
        assert_eq!(
            info.combo_choices("KSampler", "sampler_name").unwrap(),
            ["euler", "ddim"]
        );
        assert_eq!(info.combo_choices("V3", "mode").unwrap(), ["a", "b"]);
        assert_eq!(info.node("V3").unwrap().custom_node_pack(), Some("pack"));
        assert!(info.node("V3").unwrap().output_node);
        assert_eq!(sampler.outputs[0].type_name, "LATENT");
    }
}
