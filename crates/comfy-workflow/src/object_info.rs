//! Node definitions as served by ComfyUI's `GET /object_info`, parsed into typed form.
//!
//! Both node generations are understood: V1 nodes (hidden inputs as bare strings, legacy combos as a
//! list in the type position) and V3 nodes (`"COMBO"` with `options.options`, hidden inputs as
//! one-element lists). Unknown keys are kept in [`InputSpec::options`] so nothing is lost.
//!
//! ComfyUI 0.26's V3 dynamic inputs are parsed into their own kinds: a dynamic combo
//! (`COMFY_DYNAMICCOMBO_V3`) whose options each bring inputs, an autogrow
//! (`COMFY_AUTOGROW_V3`) that repeats a template input under numbered or listed names, and a match
//! type (`COMFY_MATCHTYPE_V3`) whose linked type the node's outputs follow. Nested inputs are named
//! the way the server and the frontend name them, with the path joined by dots
//! (`resize_type.multiplier`, `images.image0`), so a prompt's input names can be looked up directly.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

mod ordered;

/// The type name of a V3 dynamic combo.
pub const DYNAMIC_COMBO_TYPE: &str = "COMFY_DYNAMICCOMBO_V3";
/// The type name of a V3 autogrow input.
pub const AUTOGROW_TYPE: &str = "COMFY_AUTOGROW_V3";
/// The type name of a V3 match-type input or output.
pub const MATCH_TYPE: &str = "COMFY_MATCHTYPE_V3";

/// Most slots an autogrow offers; ComfyUI refuses to define more (`Autogrow._MaxNames`), so a
/// larger count in a definition is cut here rather than trusted.
pub const MAXIMUM_AUTOGROW_SLOTS: usize = 100;

/// Deepest nesting of dynamic inputs that is expanded; deeper ones stay plain sockets. Core nodes
/// nest one level; the bound keeps a hostile definition from costing unbounded work.
pub(crate) const MAXIMUM_NESTING: usize = 8;

/// Every node definition of one backend, by class type.
///
/// Read from text, a class is parsed the first time it is asked for: `/object_info` is 1.35 MB on
/// ComfyUI 0.26 and a prompt uses a handful of its 800 classes, so a fresh process checks its
/// first prompt after a scan of the text (the JSON syntax of all of it) instead of a full parse.
#[derive(Debug, Clone, Default)]
pub struct ObjectInfo {
    nodes: BTreeMap<String, LazyDefinition>,
}

/// One class: its text as the server sent it, parsed once on first use.
#[derive(Debug, Clone)]
struct LazyDefinition {
    /// `None` for a definition given parsed.
    text: Option<Box<RawValue>>,
    parsed: OnceLock<NodeDefinition>,
}

impl LazyDefinition {
    fn get(&self, class_type: &str) -> &NodeDefinition {
        self.parsed.get_or_init(|| {
            // The text was checked as JSON when it was scanned, and its non-finite tokens
            // rewritten, so this parse does not fail; a class that did would read as empty.
            let raw = self
                .text
                .as_ref()
                .and_then(|text| ordered::parse(text.get()).ok())
                .unwrap_or(Value::Null);
            NodeDefinition::from_json(class_type, &raw)
        })
    }
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
    /// A choice among values: a legacy list combo or a V3 `COMBO` (single or multiselect). `None`
    /// when the list is remote (the frontend fetches it from a route) and so unknown here.
    Combo(Option<Vec<Value>>),
    /// A socket type (`IMAGE`, `MODEL`, `*`, `A,B` unions...), only fed by links.
    Socket(String),
    /// `COMFY_DYNAMICCOMBO_V3`: a choice whose selected option brings its own inputs.
    DynamicCombo(Vec<DynamicOption>),
    /// `COMFY_AUTOGROW_V3`: a template input repeated under several names.
    Autogrow(Box<Autogrow>),
    /// `COMFY_MATCHTYPE_V3`: a socket of any allowed type; outputs of the same template carry
    /// whatever type is linked here.
    MatchType(MatchTemplate),
}

/// One option of a dynamic combo.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicOption {
    /// The combo value that selects this option (a string in every core node).
    pub key: Value,
    /// The inputs the option adds, named with the combo's path (`resize_type.multiplier`), each
    /// in the section the option declares it in.
    pub inputs: Vec<InputSpec>,
}

impl DynamicOption {
    /// The key as text, for messages and suggestions.
    pub fn key_text(&self) -> String {
        self.key
            .as_str()
            .map_or_else(|| self.key.to_string(), str::to_owned)
    }
}

/// An autogrow input: the server validates one input per slot name, never the autogrow itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Autogrow {
    /// The input every slot copies, under its declared name (`image`).
    pub template: InputSpec,
    /// The prefix of a numbered template (`image` gives `image0`, `image1`...); `None` when the
    /// template lists its names.
    pub prefix: Option<String>,
    /// The least slots the node needs; binding only when the template input is required.
    pub min: usize,
    /// Every slot the server accepts, in order, named with the autogrow's path
    /// (`images.image0`): the first `min` are required when the template is, the rest optional.
    pub slots: Vec<InputSpec>,
}

impl Autogrow {
    /// The most slots the node takes.
    pub fn max(&self) -> usize {
        self.slots.len()
    }
}

/// The template of a match-type input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchTemplate {
    /// Inputs and outputs with the same id share one type.
    pub template_id: String,
    /// The types the template accepts, comma-separated (`IMAGE,MASK`); `*` for any.
    pub allowed_types: String,
}

/// One declared input of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// The name a prompt uses: the declared id, or for inputs nested in a dynamic input the whole
    /// path joined by dots (`resize_type.multiplier`).
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
            InputKind::DynamicCombo(_) => DYNAMIC_COMBO_TYPE,
            InputKind::Autogrow(_) => AUTOGROW_TYPE,
            InputKind::MatchType(_) => MATCH_TYPE,
        }
    }

    /// True when the input is a widget in the UI (a value, not only a socket).
    pub fn is_widget(&self) -> bool {
        !matches!(
            self.kind,
            InputKind::Socket(_) | InputKind::Autogrow(_) | InputKind::MatchType(_)
        ) && self.options.get("forceInput").and_then(Value::as_bool) != Some(true)
    }

    /// True for a V3 multiselect combo, whose value is a list of choices.
    pub fn is_multiselect(&self) -> bool {
        matches!(self.kind, InputKind::Combo(_))
            && self.options.get("multiselect").and_then(Value::as_bool) == Some(true)
    }

    /// The combo choices as strings, when known; a dynamic combo's are its option keys.
    pub fn choices(&self) -> Option<Vec<String>> {
        match &self.kind {
            InputKind::Combo(Some(values)) => Some(
                values
                    .iter()
                    .map(|value| value.as_str().map_or_else(|| value.to_string(), str::to_owned))
                    .collect(),
            ),
            InputKind::DynamicCombo(options) => Some(options.iter().map(DynamicOption::key_text).collect()),
            _ => None,
        }
    }

    /// The inputs one level down: every option's inputs of a dynamic combo, every slot of an
    /// autogrow; none for other kinds.
    pub fn nested_inputs(&self) -> Box<dyn Iterator<Item = &InputSpec> + '_> {
        match &self.kind {
            InputKind::DynamicCombo(options) => {
                Box::new(options.iter().flat_map(|option| option.inputs.iter()))
            }
            InputKind::Autogrow(autogrow) => Box::new(autogrow.slots.iter()),
            _ => Box::new(std::iter::empty()),
        }
    }

    /// The match template of a match-type input.
    pub fn match_template(&self) -> Option<&MatchTemplate> {
        match &self.kind {
            InputKind::MatchType(template) => Some(template),
            _ => None,
        }
    }
}

/// One node class.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDefinition {
    pub class_type: String,
    /// The display name, or the class type when the server sends none (`null` or `""`).
    pub display_name: String,
    pub description: String,
    pub category: String,
    pub python_module: String,
    pub output_node: bool,
    pub deprecated: bool,
    pub experimental: bool,
    pub api_node: bool,
    /// Required, then optional, then hidden inputs, each in `input_order` when given. Inputs
    /// nested in dynamic inputs are inside their parent's kind, not in this list.
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
    /// For a match-type output (type `COMFY_MATCHTYPE_V3`), the template id whose linked input
    /// type it carries (`output_matchtypes`).
    pub matchtype: Option<String>,
}

impl NodeDefinition {
    /// The input a prompt calls `name`, nested ones included (`resize_type.multiplier`).
    pub fn input(&self, name: &str) -> Option<&InputSpec> {
        self.all_inputs().into_iter().find(|input| input.name == name)
    }

    /// Required and optional inputs (what a prompt may set).
    pub fn settable_inputs(&self) -> impl Iterator<Item = &InputSpec> {
        self.inputs
            .iter()
            .filter(|input| input.section != InputSection::Hidden)
    }

    /// Every declared input, each followed by the inputs nested in it (depth first): all options
    /// of dynamic combos and all slots of autogrows, whichever a prompt selects.
    pub fn all_inputs(&self) -> Vec<&InputSpec> {
        let mut result = Vec::new();
        let mut pending: Vec<&InputSpec> = self.inputs.iter().rev().collect();
        while let Some(input) = pending.pop() {
            result.push(input);
            let nested: Vec<&InputSpec> = input.nested_inputs().collect();
            pending.extend(nested.into_iter().rev());
        }
        result
    }

    /// The inputs ComfyUI 0.26 validates for a node with these `values`, the way its
    /// `get_finalized_class_inputs` expands V3 dynamic inputs before validation:
    ///
    /// - a dynamic combo whose value is one of its option keys stands for itself plus that option's
    ///   inputs (expanded in turn); one with no value, a link or an unknown key stands for nothing,
    ///   so the server checks neither it nor any nested input;
    /// - an autogrow stands for its slots, never for itself;
    /// - every other required or optional input stands for itself. Hidden inputs are left out.
    pub fn expanded_inputs(&self, values: &Map<String, Value>) -> Vec<&InputSpec> {
        self.expansion(values).inputs
    }

    /// [`expanded_inputs`](Self::expanded_inputs), plus the dynamic combos that selected nothing.
    pub fn expansion(&self, values: &Map<String, Value>) -> Expansion<'_> {
        let mut expansion = Expansion::default();
        let mut pending: Vec<&InputSpec> = self.settable_inputs().collect();
        pending.reverse();
        while let Some(input) = pending.pop() {
            match &input.kind {
                InputKind::DynamicCombo(options) => {
                    let selected = values
                        .get(&input.name)
                        .and_then(|value| selected_option(options, value));
                    match selected {
                        Some(option) => {
                            expansion.inputs.push(input);
                            pending.extend(option.inputs.iter().rev());
                        }
                        None => expansion.unselected.push(input),
                    }
                }
                InputKind::Autogrow(autogrow) => pending.extend(autogrow.slots.iter().rev()),
                _ => expansion.inputs.push(input),
            }
        }
        expansion
    }

    /// The dynamic combo or autogrow whose path `name` is under (`resize_type` for
    /// `resize_type.width`), the innermost when they nest; `None` for names outside any.
    pub fn dynamic_parent(&self, name: &str) -> Option<&InputSpec> {
        self.all_inputs()
            .into_iter()
            .filter(|input| matches!(input.kind, InputKind::DynamicCombo(_) | InputKind::Autogrow(_)))
            .filter(|input| {
                name.strip_prefix(input.name.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
            })
            .max_by_key(|input| input.name.len())
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
        for (section_key, section) in SECTIONS {
            let Some(declared) = raw
                .pointer(&format!("/input/{section_key}"))
                .and_then(Value::as_object)
            else {
                continue;
            };
            // The order `from_json_text` records inside `input` stands in for a missing one.
            let order = raw
                .pointer(&format!("/input_order/{section_key}"))
                .or_else(|| raw.pointer(&format!("/input/input_order/{section_key}")))
                .and_then(Value::as_array);
            for name in ordered_names(declared, order) {
                if let Some(spec) = declared.get(&name) {
                    inputs.push(parse_input(&name, section, spec, 0));
                }
            }
        }
        let display_name = Some(text("display_name"))
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| class_type.to_owned());
        NodeDefinition {
            class_type: class_type.to_owned(),
            display_name,
            description: text("description"),
            category: text("category"),
            python_module: text("python_module"),
            output_node: flag("output_node"),
            deprecated: flag("deprecated"),
            experimental: flag("experimental"),
            api_node: flag("api_node"),
            inputs,
            outputs: parse_outputs(raw),
        }
    }
}

/// What a node's dynamic inputs expand to for given values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expansion<'a> {
    /// The inputs the server validates, parents before the inputs they bring.
    pub inputs: Vec<&'a InputSpec>,
    /// Dynamic combos the values select no option of (missing, linked or not a key); the server
    /// skips them and everything nested in them.
    pub unselected: Vec<&'a InputSpec>,
}

/// The input sections in the order ComfyUI lists them.
const SECTIONS: [(&str, InputSection); 3] = [
    ("required", InputSection::Required),
    ("optional", InputSection::Optional),
    ("hidden", InputSection::Hidden),
];

/// The option a dynamic combo value selects: ComfyUI compares with Python's `==`.
pub fn selected_option<'a>(options: &'a [DynamicOption], value: &Value) -> Option<&'a DynamicOption> {
    options
        .iter()
        .find(|option| crate::coerce::python_equal(&option.key, value))
}

/// A section's input names: `input_order` first when given, then any declared name it misses.
fn ordered_names(declared: &Map<String, Value>, order: Option<&Vec<Value>>) -> Vec<String> {
    let mut names: Vec<String> = order
        .map(|names| {
            names
                .iter()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for name in declared.keys() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

fn parse_outputs(raw: &Value) -> Vec<OutputSpec> {
    let list = |key: &str| {
        raw.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let output_names = list("output_name");
    let output_lists = list("output_is_list");
    let output_matchtypes = list("output_matchtypes");
    list("output")
        .iter()
        .enumerate()
        .map(|(index, type_value)| OutputSpec {
            type_name: type_value.as_str().unwrap_or("COMBO").to_owned(),
            name: output_names.get(index).and_then(Value::as_str).map_or_else(
                || type_value.as_str().unwrap_or("COMBO").to_owned(),
                str::to_owned,
            ),
            is_list: output_lists.get(index).and_then(Value::as_bool).unwrap_or(false),
            matchtype: output_matchtypes
                .get(index)
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
        .collect()
}

/// Parses one input spec; `name` is its full path and `depth` how many dynamic inputs enclose it.
fn parse_input(name: &str, section: InputSection, spec: &Value, depth: usize) -> InputSpec {
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
            MATCH_TYPE => match parse_match_template(&options) {
                Some(template) => InputKind::MatchType(template),
                None => InputKind::Socket(type_name.clone()),
            },
            DYNAMIC_COMBO_TYPE if depth < MAXIMUM_NESTING => {
                InputKind::DynamicCombo(parse_dynamic_options(name, &options, depth))
            }
            AUTOGROW_TYPE if depth < MAXIMUM_NESTING => match parse_autogrow(name, &options) {
                Some(autogrow) => InputKind::Autogrow(Box::new(autogrow)),
                None => InputKind::Socket(type_name.clone()),
            },
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

fn parse_match_template(options: &Map<String, Value>) -> Option<MatchTemplate> {
    let template = options.get("template")?;
    Some(MatchTemplate {
        template_id: template.get("template_id")?.as_str()?.to_owned(),
        allowed_types: template
            .get("allowed_types")
            .and_then(Value::as_str)
            .filter(|types| !types.is_empty())
            .unwrap_or("*")
            .to_owned(),
    })
}

/// `options.options`: `[{"key": ..., "inputs": {"required": {...}, "optional": {...}}}, ...]`.
fn parse_dynamic_options(path: &str, options: &Map<String, Value>, depth: usize) -> Vec<DynamicOption> {
    options
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|option| {
            let key = option.get("key")?.clone();
            let inputs = option
                .get("inputs")
                .map(|inputs| parse_nested_sections(path, inputs, depth + 1))
                .unwrap_or_default();
            Some(DynamicOption { key, inputs })
        })
        .collect()
}

/// The required, then optional inputs of a nested V1 input dictionary, named under `path`.
/// ComfyUI 0.26 sends nested dictionaries without `input_order`, so each section is in key order
/// unless one is given.
fn parse_nested_sections(path: &str, sections: &Value, depth: usize) -> Vec<InputSpec> {
    let mut inputs = Vec::new();
    for (section_key, section) in SECTIONS.iter().take(2) {
        let Some(declared) = sections.get(section_key).and_then(Value::as_object) else {
            continue;
        };
        let order = sections
            .pointer(&format!("/input_order/{section_key}"))
            .and_then(Value::as_array);
        for name in ordered_names(declared, order) {
            if let Some(spec) = declared.get(&name) {
                inputs.push(parse_input(&format!("{path}.{name}"), *section, spec, depth));
            }
        }
    }
    inputs
}

/// `options.template`: `{"input": {"required": {name: spec}}, "prefix": "image", "min": 1,
/// "max": 50}` or `{"input": ..., "names": [...], "min": 1}`. The server takes the first input of
/// the required section, else of the optional one, and prefers `names` when both are given.
fn parse_autogrow(path: &str, options: &Map<String, Value>) -> Option<Autogrow> {
    let template = options.get("template")?;
    let (template_name, template_spec, template_section) =
        SECTIONS.iter().take(2).find_map(|(section_key, section)| {
            let declared = template.pointer(&format!("/input/{section_key}"))?.as_object()?;
            let order = template
                .pointer(&format!("/input/input_order/{section_key}"))
                .and_then(Value::as_array);
            let name = ordered_names(declared, order).into_iter().next()?;
            let spec = declared.get(&name)?;
            Some((name, spec, *section))
        })?;
    let count = |key: &str| {
        template
            .get(key)
            .and_then(Value::as_u64)
            .map(|count| usize::try_from(count).unwrap_or(usize::MAX))
    };
    let prefix = template.get("prefix").and_then(Value::as_str);
    let names: Vec<String> = match (template.get("names").and_then(Value::as_array), prefix) {
        (Some(names), _) => names
            .iter()
            .filter_map(Value::as_str)
            .take(MAXIMUM_AUTOGROW_SLOTS)
            .map(str::to_owned)
            .collect(),
        (None, Some(prefix)) => (0..count("max").unwrap_or(10).min(MAXIMUM_AUTOGROW_SLOTS))
            .map(|index| format!("{prefix}{index}"))
            .collect(),
        (None, None) => return None,
    };
    let min = count("min").unwrap_or(1);
    // The server never lets a template be dynamic itself; parsing one at the deepest level keeps
    // it a plain socket instead of repeating a nested expansion per slot.
    let template_input = parse_input(&template_name, template_section, template_spec, MAXIMUM_NESTING);
    let slots = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let section = if index < min && template_section == InputSection::Required {
                InputSection::Required
            } else {
                InputSection::Optional
            };
            parse_input(&format!("{path}.{name}"), section, template_spec, MAXIMUM_NESTING)
        })
        .collect();
    Some(Autogrow {
        template: template_input,
        prefix: if template.get("names").is_some() {
            None
        } else {
            prefix.map(str::to_owned)
        },
        min,
        slots,
    })
}

impl ObjectInfo {
    /// Reads `/object_info` from its text. The whole text is checked as JSON at once, and each
    /// class is parsed when first asked for, keeping the order of the input dictionaries nested in
    /// dynamic inputs, which a parsed `Value` loses (its keys are sorted). UI to API conversion
    /// needs that order for the widgets of a dynamic combo's option when a saved workflow does not
    /// list their slots; [`from_json`](Self::from_json) is otherwise equivalent.
    pub fn from_json_text(text: &str) -> Result<Self, serde_json::Error> {
        let classes = match serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(text) {
            Ok(classes) => classes,
            Err(strict_error) => {
                // Python's `NaN` and `Infinity` tokens, read as `null` (see `lenient_json`).
                let rewritten = crate::lenient_json::replace_non_finite_tokens(text);
                if rewritten == text {
                    return Err(strict_error);
                }
                serde_json::from_str(&rewritten)?
            }
        };
        let nodes = classes
            .into_iter()
            .map(|(class_type, text)| {
                let definition = LazyDefinition {
                    text: Some(text),
                    parsed: OnceLock::new(),
                };
                (class_type, definition)
            })
            .collect();
        Ok(ObjectInfo { nodes })
    }

    /// Parses the whole `/object_info` document.
    pub fn from_json(raw: &Value) -> Self {
        let mut info = ObjectInfo::default();
        if let Some(classes) = raw.as_object() {
            for (class_type, definition) in classes {
                info.insert(NodeDefinition::from_json(class_type, definition));
            }
        }
        info
    }

    /// Adds (or replaces) one class's definition.
    pub fn insert(&mut self, definition: NodeDefinition) {
        let class_type = definition.class_type.clone();
        let definition = LazyDefinition {
            text: None,
            parsed: OnceLock::from(definition),
        };
        self.nodes.insert(class_type, definition);
    }

    pub fn node(&self, class_type: &str) -> Option<&NodeDefinition> {
        let (class_type, definition) = self.nodes.get_key_value(class_type)?;
        Some(definition.get(class_type))
    }

    pub fn has_node(&self, class_type: &str) -> bool {
        self.nodes.contains_key(class_type)
    }

    /// How many node classes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every class type, in order, without parsing any definition.
    pub fn class_types(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// Every definition, in class order (parsing those not parsed yet).
    pub fn definitions(&self) -> impl Iterator<Item = &NodeDefinition> {
        self.nodes
            .iter()
            .map(|(class_type, definition)| definition.get(class_type))
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

    fn v3_node(class_type: &str) -> &'static NodeDefinition {
        crate::testing::v3_object_info().node(class_type).unwrap()
    }

    fn names<'a>(inputs: impl IntoIterator<Item = &'a InputSpec>) -> Vec<&'a str> {
        inputs.into_iter().map(|input| input.name.as_str()).collect()
    }

    #[test]
    fn dynamic_combo_options_carry_nested_inputs_under_the_combo_path() {
        let resize = v3_node("ResizeImageMaskNode");
        let spec = resize.input("resize_type").unwrap();
        let InputKind::DynamicCombo(options) = &spec.kind else {
            panic!("{:?}", spec.kind);
        };
        assert_eq!(
            spec.choices().unwrap(),
            ["scale dimensions", "scale by multiplier", "match size"]
        );
        assert_eq!(spec.type_name(), DYNAMIC_COMBO_TYPE);
        assert!(spec.is_widget());
        // Nested sections carry no input_order, so they are in key order.
        assert_eq!(
            names(&options[0].inputs),
            ["resize_type.crop", "resize_type.height", "resize_type.width"]
        );
        let multiplier = resize.input("resize_type.multiplier").unwrap();
        assert_eq!(multiplier.kind, InputKind::Float);
        assert_eq!(multiplier.section, InputSection::Required);
        assert_eq!(multiplier.option("max"), Some(&Value::from(8.0)));
        assert_eq!(
            resize.input("resize_type.match").unwrap().kind,
            InputKind::Socket("IMAGE,MASK".to_owned())
        );
        // Unknown keys stay in the options, as for every input.
        assert_eq!(spec.tooltip(), Some("How to resize"));
    }

    #[test]
    fn match_types_parse_their_template_and_outputs_follow_it() {
        let resize = v3_node("ResizeImageMaskNode");
        let input = resize.input("input").unwrap();
        assert_eq!(
            input.match_template(),
            Some(&MatchTemplate {
                template_id: "input_type".to_owned(),
                allowed_types: "IMAGE,MASK".to_owned()
            })
        );
        assert!(!input.is_widget());
        assert_eq!(resize.outputs[0].type_name, MATCH_TYPE);
        assert_eq!(resize.outputs[0].matchtype.as_deref(), Some("input_type"));
        assert_eq!(v3_node("BatchImagesNode").outputs[0].matchtype, None);
    }

    #[test]
    fn autogrow_slots_are_numbered_or_listed_with_the_first_min_required() {
        let batch = v3_node("BatchImagesNode");
        let InputKind::Autogrow(autogrow) = &batch.input("images").unwrap().kind else {
            panic!("not an autogrow");
        };
        assert_eq!((autogrow.min, autogrow.max()), (1, 50));
        assert_eq!(autogrow.prefix.as_deref(), Some("image"));
        assert_eq!(autogrow.template.name, "image");
        assert_eq!(autogrow.slots[0].name, "images.image0");
        assert_eq!(autogrow.slots[49].name, "images.image49");
        assert_eq!(autogrow.slots[0].section, InputSection::Required);
        assert_eq!(autogrow.slots[1].section, InputSection::Optional);
        assert_eq!(
            batch.input("images.image7").unwrap().kind,
            InputKind::Socket("IMAGE".to_owned())
        );
        // Listed names, nested in a dynamic combo option: the path joins both.
        let reference = v3_node("ReferenceImageNode");
        let slot = reference.input("model.images.image_2").unwrap();
        assert_eq!(slot.section, InputSection::Optional);
        assert!(reference.input("model.images.image_4").is_none());
        let InputKind::Autogrow(listed) = &reference.input("model.images").unwrap().kind else {
            panic!("not an autogrow");
        };
        assert_eq!((listed.prefix.as_deref(), listed.min, listed.max()), (None, 0, 3));
        // An autogrow of match types keeps the template on every slot.
        assert!(
            v3_node("CreateList")
                .input("inputs.input3")
                .and_then(InputSpec::match_template)
                .is_some()
        );
    }

    #[test]
    fn missing_display_names_fall_back_to_the_class() {
        assert_eq!(v3_node("ResizeImageMaskNode").display_name, "ResizeImageMaskNode");
        assert_eq!(v3_node("ReferenceImageNode").display_name, "ReferenceImageNode");
        assert_eq!(v3_node("BatchImagesNode").display_name, "Batch Images");
    }

    #[test]
    fn expansion_follows_the_selected_option_like_the_server() {
        let resize = v3_node("ResizeImageMaskNode");
        let values = |raw: Value| raw.as_object().cloned().unwrap();
        let selected = resize.expansion(&values(json!({"resize_type": "scale by multiplier"})));
        assert_eq!(
            names(selected.inputs),
            ["input", "resize_type", "resize_type.multiplier", "scale_method"]
        );
        assert!(selected.unselected.is_empty());
        for unusable in [
            json!({}),
            json!({"resize_type": "nope"}),
            json!({"resize_type": ["1", 0]}),
        ] {
            let expansion = resize.expansion(&values(unusable));
            assert_eq!(names(expansion.inputs), ["input", "scale_method"]);
            assert_eq!(names(expansion.unselected), ["resize_type"]);
        }
        let batch = v3_node("BatchImagesNode").expanded_inputs(&Map::new());
        assert_eq!(batch.len(), 50);
        let reference = v3_node("ReferenceImageNode").expanded_inputs(&values(json!({"model": "pro"})));
        assert_eq!(
            names(reference),
            [
                "model",
                "model.images.image_1",
                "model.images.image_2",
                "model.images.image_3",
                "model.width"
            ]
        );
        assert_eq!(
            resize
                .dynamic_parent("resize_type.width")
                .map(|parent| parent.name.as_str()),
            Some("resize_type")
        );
        assert!(resize.dynamic_parent("resize_typo.width").is_none());
    }

    #[test]
    fn hostile_definitions_stay_bounded() {
        // An autogrow claiming a million slots gets ComfyUI's own limit.
        let huge = NodeDefinition::from_json(
            "Huge",
            &json!({"input": {"required": {"many": ["COMFY_AUTOGROW_V3", {"template": {
                "input": {"required": {"x": ["INT", {}]}}, "prefix": "x", "min": 1, "max": 1_000_000}}]}}}),
        );
        let InputKind::Autogrow(autogrow) = &huge.inputs[0].kind else {
            panic!("not an autogrow");
        };
        assert_eq!(autogrow.max(), MAXIMUM_AUTOGROW_SLOTS);
        // Dynamic combos nested past the bound stay plain sockets.
        let mut spec = json!(["INT", {}]);
        for _ in 0..20 {
            spec = json!(["COMFY_DYNAMICCOMBO_V3", {"options": [{"key": "k", "inputs": {"required": {"d": spec}}}]}]);
        }
        let deep = NodeDefinition::from_json("Deep", &json!({"input": {"required": {"d": spec}}}));
        let deepest = deep.all_inputs().into_iter().last().unwrap();
        assert_eq!(deepest.name.matches('.').count(), MAXIMUM_NESTING);
        assert_eq!(deepest.kind, InputKind::Socket(DYNAMIC_COMBO_TYPE.to_owned()));
        // A template that is itself dynamic, or an autogrow without names, is not expanded.
        let odd = NodeDefinition::from_json(
            "Odd",
            &json!({"input": {"required": {
                "nested": ["COMFY_AUTOGROW_V3", {"template": {"input": {"required": {"inner": spec}}, "names": ["a"], "min": 1}}],
                "nameless": ["COMFY_AUTOGROW_V3", {"template": {"input": {"required": {"x": ["INT", {}]}}, "min": 1}}]
            }}}),
        );
        assert_eq!(
            odd.input("nested.a").unwrap().kind,
            InputKind::Socket(DYNAMIC_COMBO_TYPE.to_owned())
        );
        assert_eq!(
            odd.input("nameless").unwrap().kind,
            InputKind::Socket(AUTOGROW_TYPE.to_owned())
        );
    }

    #[test]
    fn text_parsing_keeps_the_document_order_of_nested_inputs() {
        let text = r#"{"Resize": {"input": {"required": {"resize_type": ["COMFY_DYNAMICCOMBO_V3", {"options": [
            {"key": "scale dimensions", "inputs": {"required": {"width": ["INT", {}], "height": ["INT", {}],
                "crop": ["COMBO", {"options": ["center"]}]}, "optional": {"zoom": ["FLOAT", {"max": Infinity}]}}}]}],
            "pick": ["COMFY_AUTOGROW_V3", {"template": {"input": {"required": {"zz": ["IMAGE", {}], "aa": ["MASK", {}]}},
                "names": ["one"], "min": 1}}]}}, "output": []}}"#;
        let ordered = ObjectInfo::from_json_text(text).unwrap();
        let resize = ordered.node("Resize").unwrap();
        let InputKind::DynamicCombo(options) = &resize.input("resize_type").unwrap().kind else {
            panic!("not a dynamic combo");
        };
        assert_eq!(
            names(&options[0].inputs),
            [
                "resize_type.width",
                "resize_type.height",
                "resize_type.crop",
                "resize_type.zoom"
            ]
        );
        // Python's Infinity reads as null, as everywhere else.
        assert_eq!(
            resize.input("resize_type.zoom").unwrap().option("max"),
            Some(&Value::Null)
        );
        // The server takes the first template input in document order.
        assert_eq!(
            resize.input("pick.one").unwrap().kind,
            InputKind::Socket("IMAGE".to_owned())
        );
        // A parsed Value sorts keys; everything else is the same.
        let sorted = ObjectInfo::from_json(&crate::lenient_json::parse_lenient(text).unwrap());
        let sorted_combo = sorted
            .node("Resize")
            .and_then(|node| node.input("resize_type"))
            .unwrap();
        let InputKind::DynamicCombo(sorted_options) = &sorted_combo.kind else {
            panic!("not a dynamic combo");
        };
        assert_eq!(sorted_options[0].inputs[0].name, "resize_type.crop");
        assert!(ObjectInfo::from_json_text("{").is_err());
    }

    #[test]
    fn classes_read_from_text_are_parsed_when_first_asked_for() {
        let text = r#"{"B": {"input": {"required": {"x": ["INT", {"default": 1}]}}, "output": ["INT"]},
            "A": {"input": {"required": {}}, "output": [], "display_name": "Alpha"}}"#;
        let info = ObjectInfo::from_json_text(text).unwrap();
        assert_eq!(info.len(), 2);
        assert_eq!(info.class_types().collect::<Vec<_>>(), ["A", "B"]);
        assert!(
            info.nodes.values().all(|lazy| lazy.parsed.get().is_none()),
            "nothing parsed by the scan"
        );
        assert_eq!(info.node("B").unwrap().inputs[0].name, "x");
        assert!(info.nodes["B"].parsed.get().is_some());
        assert!(info.nodes["A"].parsed.get().is_none(), "A was not asked for");
        let eager = ObjectInfo::from_json(&serde_json::from_str(text).unwrap());
        let lazy: Vec<_> = info.definitions().cloned().collect();
        assert_eq!(lazy, eager.definitions().cloned().collect::<Vec<_>>());
        assert!(info.node("C").is_none() && !info.has_node("C"));
        // Bad syntax anywhere is refused by the scan, not found later in one class.
        assert!(ObjectInfo::from_json_text(r#"{"A": {"input": [1,}, "B": {}}"#).is_err());
        assert!(ObjectInfo::from_json_text("[]").is_err());
        // Non-finite tokens read as null in a class parsed later.
        let info = ObjectInfo::from_json_text(
            r#"{"A": {"input": {"required": {"x": ["FLOAT", {"max": Infinity}]}}, "output": []}}"#,
        )
        .unwrap();
        assert_eq!(
            info.node("A").unwrap().inputs[0].option("max"),
            Some(&Value::Null)
        );
    }
}
