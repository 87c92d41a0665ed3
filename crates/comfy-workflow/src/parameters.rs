//! Parameter discovery: finds the knobs of a workflow by their role in the graph (prompt, negative
//! prompt, seed, steps, size, models, input media, output prefix...) and gives each a stable name
//! and a JSON Schema fragment, so an agent can run a saved workflow with `{"prompt": "...",
//! "seed": 5}` instead of editing node ids.
//!
//! Every settable input also stays addressable as `"<node_id>.<input>"`, and [`apply_overrides`]
//! accepts both forms.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::coerce::{self, Numeric};
use crate::diagnostic::compare_node_ids;
use crate::graph::{ApiPrompt, InputValue, Node};
use crate::object_info::{InputKind, InputSection, InputSpec, NodeDefinition, ObjectInfo};
use crate::suggest::{closest_matches, did_you_mean};

/// Role names in the order parameters are listed.
const ROLE_ORDER: &[&str] = &[
    "prompt",
    "negative_prompt",
    "seed",
    "steps",
    "cfg",
    "guidance",
    "sampler_name",
    "scheduler",
    "denoise",
    "width",
    "height",
    "length",
    "fps",
    "seconds",
    "batch_size",
    "checkpoint",
    "unet",
    "vae",
    "text_encoder",
    "text_encoder_type",
    "lora",
    "lora_strength",
    "lora_clip_strength",
    "controlnet",
    "controlnet_strength",
    "upscale_model",
    "image",
    "mask",
    "video",
    "audio",
    "filename_prefix",
];

/// Inputs recognised by name alone, on any node: (input name, role).
const ROLES_BY_INPUT_NAME: &[(&str, &str)] = &[
    ("seed", "seed"),
    ("noise_seed", "seed"),
    ("steps", "steps"),
    ("cfg", "cfg"),
    ("guidance", "guidance"),
    ("sampler_name", "sampler_name"),
    ("scheduler", "scheduler"),
    ("denoise", "denoise"),
    ("fps", "fps"),
    ("frame_rate", "fps"),
    ("seconds", "seconds"),
    ("ckpt_name", "checkpoint"),
    ("unet_name", "unet"),
    ("vae_name", "vae"),
    ("clip_name", "text_encoder"),
    ("clip_name1", "text_encoder"),
    ("clip_name2", "text_encoder"),
    ("clip_name3", "text_encoder"),
    ("clip_name4", "text_encoder"),
    ("lora_name", "lora"),
    ("control_net_name", "controlnet"),
    ("filename_prefix", "filename_prefix"),
];

/// Size inputs, recognised on nodes that create an empty latent.
const LATENT_SIZE_INPUTS: &[&str] = &["width", "height", "length", "batch_size"];

/// Maximum number of combo choices copied into a schema's `enum`; longer lists are left out so a
/// schema stays small (validation still checks the value).
const ENUM_LIMIT: usize = 1000;

/// One discovered knob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    /// Stable name: the role, numbered from the second one on (`seed`, `seed_2`...).
    pub name: String,
    /// The role without numbering (`seed`).
    pub role: String,
    pub node_id: String,
    pub input: String,
    pub class_type: String,
    pub title: String,
    /// A JSON Schema fragment; `default` is the workflow's current value.
    pub schema: Value,
}

impl Parameter {
    /// The `"<node_id>.<input>"` address of this parameter.
    pub fn address(&self) -> String {
        format!("{}.{}", self.node_id, self.input)
    }
}

/// What kind of value an addressable input takes, for checking overrides.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    Integer,
    Number,
    Text,
    Boolean,
    /// A combo; `None` when its choices are unknown or open (uploads, remote lists).
    Choice(Option<Vec<Value>>),
    /// A socket or an undeclared input: any value, and a link array is kept as a link.
    Any,
}

/// An input that can be overridden.
#[derive(Debug, Clone, PartialEq)]
pub struct InputAddress {
    pub node_id: String,
    pub input: String,
    pub kind: ValueKind,
}

/// The discovered parameters of one workflow, plus every input addressable by `node_id.input`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parameters {
    pub parameters: Vec<Parameter>,
    pub addresses: BTreeMap<String, InputAddress>,
}

impl Parameters {
    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|parameter| parameter.name == name)
    }

    /// Resolves a role name or a `node_id.input` key.
    pub fn resolve(&self, key: &str) -> Option<&InputAddress> {
        if let Some(parameter) = self.get(key) {
            return self.addresses.get(&parameter.address());
        }
        self.addresses.get(key)
    }

    /// A JSON Schema object whose properties are the named parameters.
    pub fn json_schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .parameters
            .iter()
            .map(|parameter| (parameter.name.clone(), parameter.schema.clone()))
            .collect();
        json!({
            "type": "object",
            "properties": properties,
            "description": "Named workflow parameters; any input can also be set as \"<node_id>.<input>\"",
        })
    }
}

/// Why overrides could not be applied.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OverrideError {
    #[error("unknown parameter '{key}'{}", suggestion_suffix(.candidates))]
    UnknownKey { key: String, candidates: Vec<String> },
    #[error("parameter '{key}' expects {expected}, got {received}{}", suggestion_suffix(.candidates))]
    InvalidValue {
        key: String,
        expected: String,
        received: String,
        candidates: Vec<String>,
    },
    #[error("parameters '{first}' and '{second}' both set input {address} to different values")]
    Conflict {
        first: String,
        second: String,
        address: String,
    },
}

fn suggestion_suffix(candidates: &[String]) -> String {
    did_you_mean(candidates).map_or_else(String::new, |sentence| format!("; {sentence}"))
}

/// Finds the parameters of `prompt`.
pub fn discover_parameters(prompt: &ApiPrompt, info: &ObjectInfo) -> Parameters {
    let mut discovery = Discovery {
        prompt,
        info,
        ids: sorted_ids(prompt),
        found: Vec::new(),
        taken: BTreeSet::new(),
    };
    discovery.find_prompts();
    discovery.find_by_name();
    discovery.find_latent_sizes();
    discovery.find_media();
    discovery.find_api_prompts();
    let found = std::mem::take(&mut discovery.found);
    let mut parameters = name_parameters(found, prompt, info);
    parameters.addresses = addresses(prompt, info);
    parameters
}

/// Applies overrides keyed by parameter name or `node_id.input` to a copy of `prompt`. A V3
/// dynamic combo switched to another option then carries that option's inputs, as the frontend
/// does when the combo changes (see [`settle_dynamic_inputs`]).
pub fn apply_overrides(
    prompt: &ApiPrompt,
    parameters: &Parameters,
    overrides: &Map<String, Value>,
    info: &ObjectInfo,
) -> Result<ApiPrompt, OverrideError> {
    let mut result = prompt.clone();
    let mut assigned: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for (key, value) in overrides {
        let Some(address) = parameters.resolve(key) else {
            return Err(OverrideError::UnknownKey {
                key: key.clone(),
                candidates: key_candidates(parameters, key),
            });
        };
        let converted = convert_value(key, value, &address.kind)?;
        let target = format!("{}.{}", address.node_id, address.input);
        if let Some((first, previous)) = assigned.get(&target) {
            if *previous != converted {
                return Err(OverrideError::Conflict {
                    first: first.clone(),
                    second: key.clone(),
                    address: target,
                });
            }
            continue;
        }
        if let Some(node) = result.get_mut(&address.node_id) {
            node.inputs.insert(address.input.clone(), converted.clone());
        }
        assigned.insert(target, (key.clone(), converted));
    }
    let touched: BTreeSet<&str> = nodes_touched(parameters, overrides);
    for node_id in touched {
        let (Some(before), Some(after)) = (prompt.get(node_id), result.get_mut(node_id)) else {
            continue;
        };
        if let Some(definition) = info.node(&after.class_type) {
            let set_here = |input: &str| assigned.contains_key(&format!("{node_id}.{input}"));
            settle_dynamic_inputs(definition, &before.inputs, &mut after.inputs, set_here);
        }
    }
    Ok(result)
}

/// The nodes the overrides set inputs of.
fn nodes_touched<'a>(parameters: &'a Parameters, overrides: &Map<String, Value>) -> BTreeSet<&'a str> {
    overrides
        .keys()
        .filter_map(|key| parameters.resolve(key))
        .map(|address| address.node_id.as_str())
        .collect()
}

/// After `before` became `after` on a node of `definition`: the inputs a dynamic combo's newly
/// selected option brings get their declared defaults when not set, and the inputs only the
/// previous option had are dropped unless `set_here` says an override set them. Repeated for
/// options nested in options (a default can select one), as deep as definitions nest.
pub fn settle_dynamic_inputs(
    definition: &NodeDefinition,
    before: &Map<String, Value>,
    after: &mut Map<String, Value>,
    set_here: impl Fn(&str) -> bool,
) {
    let brought_by_an_option = |spec: &InputSpec| {
        definition
            .dynamic_parent(&spec.name)
            .is_some_and(|parent| matches!(parent.kind, InputKind::DynamicCombo(_)))
    };
    let previous: BTreeSet<&str> = definition
        .expanded_inputs(before)
        .into_iter()
        .filter(|spec| brought_by_an_option(spec))
        .map(|spec| spec.name.as_str())
        .collect();
    for _ in 0..=crate::object_info::MAXIMUM_NESTING {
        let missing: Vec<(String, Value)> = definition
            .expanded_inputs(after)
            .into_iter()
            .filter(|spec| brought_by_an_option(spec) && !after.contains_key(&spec.name))
            .filter_map(|spec| Some((spec.name.clone(), spec.default_value()?.clone())))
            .collect();
        if missing.is_empty() {
            break;
        }
        after.extend(missing);
    }
    let current: BTreeSet<String> = definition
        .expanded_inputs(after)
        .into_iter()
        .map(|spec| spec.name.clone())
        .collect();
    for name in previous {
        if !current.contains(name) && !set_here(name) {
            after.remove(name);
        }
    }
}

/// Keys resembling an unknown `key`: for `node_id.input`, the inputs of that node; otherwise the
/// parameter names and addresses.
fn key_candidates(parameters: &Parameters, key: &str) -> Vec<String> {
    if let Some((node_id, input)) = key.split_once('.') {
        let inputs: Vec<&str> = parameters
            .addresses
            .values()
            .filter(|address| address.node_id == node_id)
            .map(|address| address.input.as_str())
            .collect();
        if !inputs.is_empty() {
            return closest_matches(input, inputs, 3)
                .into_iter()
                .map(|input| format!("{node_id}.{input}"))
                .collect();
        }
    }
    let names = parameters
        .parameters
        .iter()
        .map(|parameter| parameter.name.as_str())
        .chain(parameters.addresses.keys().map(String::as_str));
    closest_matches(key, names, 3)
}

fn convert_value(key: &str, value: &Value, kind: &ValueKind) -> Result<Value, OverrideError> {
    let invalid = |expected: &str, candidates: Vec<String>| OverrideError::InvalidValue {
        key: key.to_owned(),
        expected: expected.to_owned(),
        received: value.to_string(),
        candidates,
    };
    match kind {
        ValueKind::Integer => match value {
            Value::Number(_) | Value::String(_) => match coerce::to_integer(value) {
                Ok(Numeric::Integer(integer))
                    if value.is_string()
                        || Numeric::from_json(value).is_some_and(|number| {
                            number
                                .compare(Numeric::Integer(integer))
                                .is_some_and(|order| order.is_eq())
                        }) =>
                {
                    Ok(Numeric::Integer(integer).to_json())
                }
                _ => Err(invalid("an integer", Vec::new())),
            },
            _ => Err(invalid("an integer", Vec::new())),
        },
        ValueKind::Number => match value {
            Value::Number(_) => Ok(value.clone()),
            Value::String(_) => coerce::to_float(value)
                .ok()
                .filter(|number| number.is_finite())
                .map(Value::from)
                .ok_or_else(|| invalid("a number", Vec::new())),
            _ => Err(invalid("a number", Vec::new())),
        },
        ValueKind::Text => match value {
            Value::String(_) => Ok(value.clone()),
            _ => Err(invalid("a string", Vec::new())),
        },
        ValueKind::Boolean => match value {
            Value::Bool(_) => Ok(value.clone()),
            Value::String(text) if text.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(text) if text.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(invalid("a boolean", Vec::new())),
        },
        ValueKind::Choice(Some(choices)) => {
            if choices.iter().any(|choice| coerce::python_equal(choice, value)) {
                Ok(InputValue::constant(value.clone()))
            } else {
                let candidates = match value {
                    Value::String(text) => closest_matches(text, choices.iter().filter_map(Value::as_str), 3),
                    _ => Vec::new(),
                };
                Err(invalid(&format!("one of {} choices", choices.len()), candidates))
            }
        }
        ValueKind::Choice(None) => Ok(InputValue::constant(value.clone())),
        ValueKind::Any => Ok(value.clone()),
    }
}

/// A knob found during discovery, before naming.
struct Found {
    role: &'static str,
    node_id: String,
    input: String,
}

struct Discovery<'a> {
    prompt: &'a ApiPrompt,
    info: &'a ObjectInfo,
    ids: Vec<&'a str>,
    found: Vec<Found>,
    taken: BTreeSet<(String, String)>,
}

impl<'a> Discovery<'a> {
    fn node(&self, node_id: &str) -> Option<(&'a Node, &'a NodeDefinition)> {
        let node = self.prompt.get(node_id)?;
        let definition = self.info.node(&node.class_type)?;
        Some((node, definition))
    }

    fn record(&mut self, role: &'static str, node_id: &str, input: &str) {
        let key = (node_id.to_owned(), input.to_owned());
        if self.taken.insert(key) {
            self.found.push(Found {
                role,
                node_id: node_id.to_owned(),
                input: input.to_owned(),
            });
        }
    }

    /// The input that actually holds the value of `node_id.input`: the input itself when it is a
    /// constant, or the `value` of a primitive node it is linked to.
    fn knob(&self, node_id: &'a str, input: &'a str) -> Option<(&'a str, &'a str)> {
        let (node, _) = self.node(node_id)?;
        let value = node.inputs.get(input)?;
        match InputValue::from_json(value) {
            InputValue::Constant(_) => Some((node_id, input)),
            InputValue::Link(link) => {
                let (source_id, source) = self.prompt.nodes.get_key_value(&link.node_id)?;
                let (_, definition) = self.node(source_id)?;
                let primitive = definition.category.starts_with("utils/primitive")
                    || definition.class_type.starts_with("Primitive");
                let (name, source_value) = source.inputs.get_key_value("value")?;
                (primitive && matches!(InputValue::from_json(source_value), InputValue::Constant(_)))
                    .then_some((source_id.as_str(), name.as_str()))
            }
        }
    }

    /// Positive and negative prompts: from every consumer of conditioning (samplers, guiders), walk
    /// back through conditioning nodes to the text encoders' text inputs.
    fn find_prompts(&mut self) {
        let mut positive_starts: Vec<(String, u32)> = Vec::new();
        let mut negative_starts: Vec<(String, u32)> = Vec::new();
        for node_id in self.ids.clone() {
            let Some((node, definition)) = self.node(node_id) else {
                continue;
            };
            if definition
                .outputs
                .iter()
                .any(|output| output.type_name == "CONDITIONING")
            {
                continue;
            }
            for spec in definition.expanded_inputs(&node.inputs) {
                if spec.type_name() != "CONDITIONING" {
                    continue;
                }
                let Some(InputValue::Link(link)) = node.inputs.get(&spec.name).map(InputValue::from_json)
                else {
                    continue;
                };
                let start = (link.node_id, link.output_index);
                if leaf(&spec.name).starts_with("negative") {
                    negative_starts.push(start);
                } else {
                    positive_starts.push(start);
                }
            }
        }
        // Positives first, so text shared by both (rare) is called the prompt.
        for start in positive_starts {
            self.walk_conditioning(start, "prompt");
        }
        for start in negative_starts {
            self.walk_conditioning(start, "negative_prompt");
        }
    }

    fn walk_conditioning(&mut self, start: (String, u32), role: &'static str) {
        let mut queue: VecDeque<(String, u32)> = VecDeque::from([start]);
        let mut visited: BTreeSet<(String, u32)> = BTreeSet::new();
        while let Some((node_id, output_index)) = queue.pop_front() {
            if !visited.insert((node_id.clone(), output_index)) {
                continue;
            }
            let Some((node_id, _)) = self.prompt.nodes.get_key_value(&node_id) else {
                continue;
            };
            let Some((node, definition)) = self.node(node_id) else {
                continue;
            };
            for spec in definition.expanded_inputs(&node.inputs) {
                if is_prompt_text(spec)
                    && let Some((knob_node, knob_input)) = self.knob(node_id, &spec.name)
                {
                    self.record(role, knob_node, knob_input);
                }
            }
            // A zeroed conditioning carries no text, so its source is not this prompt.
            if definition.class_type.contains("ZeroOut") {
                continue;
            }
            // Pair nodes (ControlNetApplyAdvanced, WanImageToVideo...) map their `positive`
            // output to their `positive*` inputs; follow only the matching side.
            let side = definition
                .outputs
                .get(usize::try_from(output_index).unwrap_or(usize::MAX))
                .map(|output| output.name.to_lowercase())
                .and_then(|name| {
                    ["positive", "negative"]
                        .into_iter()
                        .find(|side| name.starts_with(side))
                });
            for spec in definition.expanded_inputs(&node.inputs) {
                if spec.type_name() != "CONDITIONING" {
                    continue;
                }
                if let Some(side) = side
                    && !leaf(&spec.name).starts_with(side)
                {
                    continue;
                }
                if let Some(InputValue::Link(link)) = node.inputs.get(&spec.name).map(InputValue::from_json) {
                    queue.push_back((link.node_id, link.output_index));
                }
            }
        }
    }

    fn find_by_name(&mut self) {
        for node_id in self.ids.clone() {
            let Some((node, definition)) = self.node(node_id) else {
                continue;
            };
            let has_lora = definition.input("lora_name").is_some();
            let is_controlnet_apply = definition.class_type.starts_with("ControlNetApply");
            for spec in definition.expanded_inputs(&node.inputs) {
                if !spec.is_widget() || !node.inputs.contains_key(&spec.name) {
                    continue;
                }
                let by_name = ROLES_BY_INPUT_NAME
                    .iter()
                    .find(|(name, _)| *name == leaf(&spec.name))
                    .map(|(_, role)| *role);
                let role = match (leaf(&spec.name), by_name) {
                    (_, Some(role)) if kind_fits(role, &spec.kind) => Some(role),
                    ("strength_model", _) if has_lora => Some("lora_strength"),
                    ("strength_clip", _) if has_lora => Some("lora_clip_strength"),
                    ("strength", _) if is_controlnet_apply => Some("controlnet_strength"),
                    ("model_name", _) if definition.class_type == "UpscaleModelLoader" => {
                        Some("upscale_model")
                    }
                    // Which family a text encoder file is loaded as (`wan`, `sd3`, `stable_audio`...).
                    ("type", _) if definition.class_type.ends_with("CLIPLoader") => Some("text_encoder_type"),
                    _ => None,
                };
                if let Some(role) = role
                    && let Some((knob_node, knob_input)) = self.knob(node_id, &spec.name)
                {
                    self.record(role, knob_node, knob_input);
                }
            }
        }
    }

    /// Width, height, length and batch size of nodes that create an empty latent.
    fn find_latent_sizes(&mut self) {
        for node_id in self.ids.clone() {
            let Some((_, definition)) = self.node(node_id) else {
                continue;
            };
            let makes_latent = definition
                .outputs
                .iter()
                .any(|output| output.type_name == "LATENT");
            let takes_media = definition
                .inputs
                .iter()
                .any(|spec| matches!(spec.type_name(), "LATENT" | "IMAGE" | "VIDEO"));
            if !makes_latent || takes_media {
                continue;
            }
            for name in LATENT_SIZE_INPUTS {
                if definition
                    .input(name)
                    .is_some_and(|spec| spec.kind == InputKind::Int)
                    && let Some((knob_node, knob_input)) = self.knob(node_id, name)
                {
                    self.record(name, knob_node, knob_input);
                }
            }
        }
    }

    /// Inputs with an upload widget: images, masks, videos, audio.
    fn find_media(&mut self) {
        for node_id in self.ids.clone() {
            let Some((node, definition)) = self.node(node_id) else {
                continue;
            };
            for spec in definition.expanded_inputs(&node.inputs) {
                let Some(role) = media_role(definition, spec) else {
                    continue;
                };
                if node.inputs.contains_key(&spec.name)
                    && let Some((knob_node, knob_input)) = self.knob(node_id, &spec.name)
                {
                    self.record(role, knob_node, knob_input);
                }
            }
        }
    }

    /// Nodes that take a prompt directly rather than through conditioning (API nodes, some video
    /// models): a multiline `prompt` or `negative_prompt` input.
    fn find_api_prompts(&mut self) {
        for node_id in self.ids.clone() {
            let Some((node, definition)) = self.node(node_id) else {
                continue;
            };
            for spec in definition.expanded_inputs(&node.inputs) {
                if spec.kind != InputKind::String || !node.inputs.contains_key(&spec.name) {
                    continue;
                }
                let role = match leaf(&spec.name) {
                    "prompt" | "positive_prompt" | "text_prompt" => "prompt",
                    "negative_prompt" => "negative_prompt",
                    _ => continue,
                };
                if let Some((knob_node, knob_input)) = self.knob(node_id, &spec.name) {
                    self.record(role, knob_node, knob_input);
                }
            }
        }
    }
}

/// A text input of a text encoder: a STRING that takes dynamic prompts or is called text/prompt.
fn is_prompt_text(spec: &InputSpec) -> bool {
    spec.kind == InputKind::String
        && (spec.option("dynamicPrompts").and_then(Value::as_bool) == Some(true)
            || matches!(leaf(&spec.name), "text" | "prompt"))
}

/// The declared name of an input, without the path of the dynamic inputs it is nested in
/// (`width` for `model.width`): roles are recognised by it.
fn leaf(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

fn kind_fits(role: &str, kind: &InputKind) -> bool {
    match role {
        "seed" | "steps" => *kind == InputKind::Int,
        "cfg" | "guidance" | "denoise" => *kind == InputKind::Float,
        // A frame rate is an INT on some nodes (CreateVideo in 0.3.x) and a FLOAT on others.
        "fps" | "seconds" => matches!(kind, InputKind::Int | InputKind::Float),
        "filename_prefix" => *kind == InputKind::String,
        _ => matches!(kind, InputKind::Combo(_)),
    }
}

fn media_role(definition: &NodeDefinition, spec: &InputSpec) -> Option<&'static str> {
    if !matches!(spec.kind, InputKind::Combo(_)) {
        return None;
    }
    let flag = |key: &str| spec.option(key).and_then(Value::as_bool) == Some(true);
    if flag("image_upload") || flag("animated_image_upload") {
        Some(if definition.class_type.contains("Mask") {
            "mask"
        } else {
            "image"
        })
    } else if flag("video_upload") {
        Some("video")
    } else if flag("audio_upload") {
        Some("audio")
    } else {
        None
    }
}

fn is_upload(spec: &InputSpec) -> bool {
    [
        "image_upload",
        "animated_image_upload",
        "video_upload",
        "audio_upload",
        "file_upload",
    ]
    .iter()
    .any(|key| spec.option(key).and_then(Value::as_bool) == Some(true))
}

fn sorted_ids(prompt: &ApiPrompt) -> Vec<&str> {
    let mut ids: Vec<&str> = prompt.nodes.keys().map(String::as_str).collect();
    ids.sort_by(|left, right| compare_node_ids(left, right));
    ids
}

fn name_parameters(found: Vec<Found>, prompt: &ApiPrompt, info: &ObjectInfo) -> Parameters {
    let mut by_role: BTreeMap<usize, Vec<Found>> = BTreeMap::new();
    for item in found {
        let order = ROLE_ORDER
            .iter()
            .position(|role| *role == item.role)
            .unwrap_or(ROLE_ORDER.len());
        by_role.entry(order).or_default().push(item);
    }
    let mut parameters = Vec::new();
    for items in by_role.into_values() {
        for (index, item) in items.into_iter().enumerate() {
            let Some(node) = prompt.get(&item.node_id) else {
                continue;
            };
            let definition = info.node(&node.class_type);
            let spec = definition.and_then(|definition| definition.input(&item.input));
            let title = node
                .title()
                .filter(|title| !title.is_empty())
                .map(str::to_owned)
                .or_else(|| {
                    definition
                        .map(|definition| definition.display_name.clone())
                        .filter(|name| !name.is_empty())
                })
                .unwrap_or_else(|| node.class_type.clone());
            let name = if index == 0 {
                item.role.to_owned()
            } else {
                format!("{}_{}", item.role, index + 1)
            };
            let schema = schema_for(spec, node.inputs.get(&item.input), &item, &title);
            parameters.push(Parameter {
                name,
                role: item.role.to_owned(),
                node_id: item.node_id,
                input: item.input,
                class_type: node.class_type.clone(),
                title,
                schema,
            });
        }
    }
    Parameters {
        parameters,
        addresses: BTreeMap::new(),
    }
}

/// A JSON Schema fragment for one input, with the workflow's value as default.
fn schema_for(spec: Option<&InputSpec>, current: Option<&Value>, found: &Found, title: &str) -> Value {
    let mut schema = Map::new();
    let location = format!("{title} (node {}, input {})", found.node_id, found.input);
    let description = match spec.and_then(InputSpec::tooltip) {
        Some(tooltip) => format!("{tooltip} [{location}]"),
        None => format!("{} of {location}", found.input),
    };
    if let Some(spec) = spec {
        let bound = |key: &str| spec.option(key).and_then(Numeric::from_json);
        match &spec.kind {
            InputKind::Int => {
                schema.insert("type".into(), json!("integer"));
                if let Some(minimum) = bound("min") {
                    schema.insert("minimum".into(), minimum.to_json());
                }
                if let Some(maximum) = bound("max") {
                    schema.insert("maximum".into(), maximum.to_json());
                }
                // Only when the grid starts at the minimum, or the schema would reject the minimum.
                if let Some(Numeric::Integer(step)) = bound("step")
                    && step > 1
                    && match bound("min") {
                        Some(Numeric::Integer(minimum)) => minimum.rem_euclid(step) == 0,
                        _ => true,
                    }
                {
                    schema.insert("multipleOf".into(), Numeric::Integer(step).to_json());
                }
            }
            InputKind::Float => {
                schema.insert("type".into(), json!("number"));
                if let Some(minimum) = bound("min") {
                    schema.insert("minimum".into(), minimum.to_json());
                }
                if let Some(maximum) = bound("max") {
                    schema.insert("maximum".into(), maximum.to_json());
                }
            }
            InputKind::String => {
                schema.insert("type".into(), json!("string"));
            }
            InputKind::Boolean => {
                schema.insert("type".into(), json!("boolean"));
            }
            InputKind::Combo(choices) => {
                if let Some(choices) = choices
                    && choices.iter().all(Value::is_string)
                {
                    schema.insert("type".into(), json!("string"));
                }
                if let Some(choices) = choices
                    && !is_upload(spec)
                    && choices.len() <= ENUM_LIMIT
                {
                    schema.insert("enum".into(), Value::Array(choices.clone()));
                }
            }
            InputKind::DynamicCombo(options) => {
                let keys: Vec<Value> = options.iter().map(|option| option.key.clone()).collect();
                if keys.iter().all(Value::is_string) {
                    schema.insert("type".into(), json!("string"));
                }
                schema.insert("enum".into(), Value::Array(keys));
            }
            InputKind::Socket(_) | InputKind::Autogrow(_) | InputKind::MatchType(_) => {}
        }
    }
    let default = current
        .filter(|value| matches!(InputValue::from_json(value), InputValue::Constant(_)))
        .map(|value| match value {
            Value::Object(entries) => entries.get("__value__").cloned().unwrap_or_else(|| value.clone()),
            other => other.clone(),
        })
        .or_else(|| spec.and_then(InputSpec::default_value).cloned());
    if let Some(default) = default {
        schema.insert("default".into(), default);
    }
    schema.insert("description".into(), Value::String(description));
    Value::Object(schema)
}

/// Every input of every node as `node_id.input`: the declared settable inputs and the V3 nested
/// inputs of every dynamic combo option and autogrow slot (`node_id.resize_type.multiplier`,
/// `node_id.values.c`), plus undeclared inputs already present in the prompt (custom nodes with
/// dynamic inputs).
fn addresses(prompt: &ApiPrompt, info: &ObjectInfo) -> BTreeMap<String, InputAddress> {
    let mut result = BTreeMap::new();
    for (node_id, node) in &prompt.nodes {
        let definition = info.node(&node.class_type);
        if let Some(definition) = definition {
            // Every option's inputs, not only the selected one's: an override may switch the
            // option and set the inputs it brings in one call.
            let settable = definition.all_inputs().into_iter().filter(|spec| {
                spec.section != InputSection::Hidden && !matches!(spec.kind, InputKind::Autogrow(_))
            });
            for spec in settable {
                let kind = match &spec.kind {
                    InputKind::Int => ValueKind::Integer,
                    InputKind::Float => ValueKind::Number,
                    InputKind::String => ValueKind::Text,
                    InputKind::Boolean => ValueKind::Boolean,
                    InputKind::Combo(choices) if !is_upload(spec) => ValueKind::Choice(choices.clone()),
                    InputKind::Combo(_) => ValueKind::Choice(None),
                    InputKind::DynamicCombo(options) => {
                        ValueKind::Choice(Some(options.iter().map(|option| option.key.clone()).collect()))
                    }
                    InputKind::Socket(_) | InputKind::Autogrow(_) | InputKind::MatchType(_) => ValueKind::Any,
                };
                result.insert(
                    format!("{node_id}.{}", spec.name),
                    InputAddress {
                        node_id: node_id.clone(),
                        input: spec.name.clone(),
                        kind,
                    },
                );
            }
        }
        for input in node.inputs.keys() {
            result
                .entry(format!("{node_id}.{input}"))
                .or_insert_with(|| InputAddress {
                    node_id: node_id.clone(),
                    input: input.clone(),
                    kind: ValueKind::Any,
                });
        }
    }
    result
}

#[cfg(test)]
mod tests;
