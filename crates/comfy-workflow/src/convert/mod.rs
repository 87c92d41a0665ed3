//! UI workflow to API prompt conversion, following the ComfyUI frontend's `graphToPrompt`
//! (contract section 9): widget values, primitive nodes, reroutes, muted and bypassed nodes,
//! subgraphs with nested execution ids, promoted widgets, filename placeholders and dynamic prompts.
//!
//! Whatever cannot be converted faithfully becomes a [`Diagnostic`]; nothing is dropped silently.

pub mod model;
pub mod text;
pub mod widgets;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostic, Severity, code, compare_node_ids};
use crate::graph::{ApiPrompt, InputValue, Node, NodeMeta, link_value};
use crate::object_info::{InputKind, NodeDefinition, ObjectInfo};
use crate::suggest::{closest_matches, did_you_mean};

use model::{
    MODE_BYPASSED, MODE_MUTED, SUBGRAPH_INPUT_NODE, SUBGRAPH_OUTPUT_NODE, UiGraph, UiNode, UiWorkflow,
    parse_workflow,
};
pub use text::LocalDateTime;
use text::{ChoiceRandom, PlaceholderProblem, process_dynamic_prompt, replace_placeholders};
use widgets::{BROWSER_PRODUCED_TYPES, default_widget_value, map_widgets, value_fits};

/// Save nodes whose `filename_prefix` the frontend runs through placeholder replacement.
const PREFIX_REPLACING_CLASSES: &[&str] = &[
    "SaveImage",
    "SaveVideo",
    "SaveAnimatedWEBP",
    "SaveWEBM",
    "SaveAudio",
    "SaveGLB",
    "SaveAnimatedPNG",
    "CLIPSave",
    "VAESave",
    "ModelSave",
    "LoraSave",
    "SaveLatent",
];

/// Frontend-only node types that never reach the prompt.
const NOTE_TYPES: &[&str] = &["Note", "MarkdownNote"];

/// Deeper link chains (reroutes, bypasses, subgraph levels) are treated as cycles.
const MAXIMUM_RESOLUTION_DEPTH: usize = 512;

/// Subgraphs nested deeper than this are not expanded.
const MAXIMUM_SUBGRAPH_DEPTH: usize = 32;

/// Which kind of workflow JSON a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// An API prompt: node id -> `{class_type, inputs}`.
    Api,
    /// A UI (litegraph) workflow with `nodes` and `links`.
    Ui,
    Unknown,
}

/// Tells API prompts from UI workflows.
pub fn detect_format(value: &Value) -> Format {
    let Some(entries) = value.as_object() else {
        return Format::Unknown;
    };
    if entries.get("nodes").is_some_and(Value::is_array) {
        return Format::Ui;
    }
    let is_api = !entries.is_empty()
        && entries
            .values()
            .all(|node| node.get("class_type").is_some_and(Value::is_string));
    if is_api { Format::Api } else { Format::Unknown }
}

/// Inputs the frontend takes from the browser environment, injected for determinism.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// The local time for `%date:...%` placeholders; without it they are left as they are.
    pub now: Option<LocalDateTime>,
    /// Resolve `{a|b}` dynamic prompts and strip comments, as the frontend does.
    pub resolve_dynamic_prompts: bool,
    /// Seed of the choices made for dynamic prompts.
    pub dynamic_prompt_seed: u64,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            now: None,
            resolve_dynamic_prompts: true,
            dynamic_prompt_seed: 0,
        }
    }
}

/// The converted prompt and everything worth knowing about the conversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    pub prompt: ApiPrompt,
    pub diagnostics: Vec<Diagnostic>,
}

/// Converts a UI workflow to an API prompt the way the frontend's `graphToPrompt` does.
pub fn ui_to_api(ui: &Value, info: &ObjectInfo, options: &ConvertOptions) -> Conversion {
    let (workflow, problems) = parse_workflow(ui);
    let mut converter = Converter::new(&workflow, info, options);
    for problem in problems {
        converter.diagnostics.push(Diagnostic {
            node_id: problem.node_id.unwrap_or_default(),
            class_type: String::new(),
            title: String::new(),
            input: None,
            code: code::UNREADABLE_WORKFLOW_PART.to_owned(),
            severity: Severity::Warning,
            message: problem.message,
            suggestion: None,
            candidates: Vec::new(),
        });
    }
    if !ui.is_object() || !ui.get("nodes").is_some_and(Value::is_array) {
        converter.diagnostics.push(Diagnostic {
            node_id: String::new(),
            class_type: String::new(),
            title: String::new(),
            input: None,
            code: code::UNREADABLE_WORKFLOW_PART.to_owned(),
            severity: Severity::Error,
            message: "not a UI workflow: expected an object with a nodes array".to_owned(),
            suggestion: (detect_format(ui) == Format::Api)
                .then(|| "this is already an API prompt; use it as it is".to_owned()),
            candidates: Vec::new(),
        });
    }
    converter.run()
}

/// What a UI node is, as far as conversion cares.
#[derive(Debug, Clone, Copy)]
enum NodeKind<'w> {
    Note,
    Reroute,
    Primitive,
    Subgraph,
    GroupNode,
    Known(&'w NodeDefinition),
    Unknown,
}

/// One graph being flattened: the root, or one expanded subgraph instance.
#[derive(Debug, Clone)]
struct Context<'w> {
    graph: &'w UiGraph,
    /// Ids of the subgraph instances from the root down to this graph.
    path: Vec<String>,
    /// The instance this graph was expanded from: (context, node position).
    parent: Option<(usize, usize)>,
    /// Subgraph definition ids from the root down, to refuse recursive definitions.
    definitions: Vec<String>,
}

/// Where an input's value comes from after following links.
#[derive(Debug, Clone, PartialEq)]
enum Resolved {
    Link(String, u32),
    Value(Value),
}

/// A node's widget values before text processing.
type WidgetValues = Vec<(String, Value)>;

struct Converter<'w> {
    workflow: &'w UiWorkflow,
    info: &'w ObjectInfo,
    options: &'w ConvertOptions,
    contexts: Vec<Context<'w>>,
    children: BTreeMap<(usize, usize), usize>,
    /// Values that primitive nodes push into widgets: (context, node) -> widget -> value.
    primitive_values: BTreeMap<(usize, usize), BTreeMap<String, Value>>,
    widget_values: BTreeMap<(usize, usize), WidgetValues>,
    diagnostics: Vec<Diagnostic>,
    random: ChoiceRandom,
}

impl<'w> Converter<'w> {
    fn new(workflow: &'w UiWorkflow, info: &'w ObjectInfo, options: &'w ConvertOptions) -> Self {
        Converter {
            workflow,
            info,
            options,
            contexts: vec![Context {
                graph: &workflow.root,
                path: Vec::new(),
                parent: None,
                definitions: Vec::new(),
            }],
            children: BTreeMap::new(),
            primitive_values: BTreeMap::new(),
            widget_values: BTreeMap::new(),
            diagnostics: Vec::new(),
            random: ChoiceRandom::new(options.dynamic_prompt_seed),
        }
    }

    fn kind(&self, node: &UiNode) -> NodeKind<'w> {
        let type_name = node.type_name.as_str();
        if NOTE_TYPES.contains(&type_name) {
            NodeKind::Note
        } else if type_name == "Reroute" {
            NodeKind::Reroute
        } else if type_name == "PrimitiveNode" {
            NodeKind::Primitive
        } else if self.workflow.subgraphs.contains_key(type_name) {
            NodeKind::Subgraph
        } else if type_name.starts_with("workflow>") || type_name.starts_with("workflow/") {
            NodeKind::GroupNode
        } else if let Some(definition) = self.info.node(type_name) {
            NodeKind::Known(definition)
        } else {
            NodeKind::Unknown
        }
    }

    fn node(&self, context: usize, position: usize) -> Option<&'w UiNode> {
        self.contexts.get(context)?.graph.nodes.get(position)
    }

    fn execution_id(&self, context: usize, position: usize) -> String {
        let Some(node) = self.node(context, position) else {
            return String::new();
        };
        let mut parts: Vec<&str> = self
            .contexts
            .get(context)
            .map(|context| context.path.iter().map(String::as_str).collect())
            .unwrap_or_default();
        parts.push(&node.id);
        parts.join(":")
    }

    /// The title the frontend shows: the node's own, else its class's display name.
    fn title(&self, node: &UiNode) -> String {
        if let Some(title) = node.title.as_deref().filter(|title| !title.is_empty()) {
            return title.to_owned();
        }
        self.info
            .node(&node.type_name)
            .map(|definition| definition.display_name.as_str())
            .filter(|name| !name.is_empty())
            .unwrap_or(&node.type_name)
            .to_owned()
    }

    fn diagnose(
        &mut self,
        location: (usize, usize),
        input: Option<&str>,
        code: &str,
        severity: Severity,
        message: String,
    ) {
        self.diagnose_with(location, input, code, severity, message, Vec::new());
    }

    fn diagnose_with(
        &mut self,
        (context, position): (usize, usize),
        input: Option<&str>,
        code: &str,
        severity: Severity,
        message: String,
        candidates: Vec<String>,
    ) {
        let (class_type, title) = self
            .node(context, position)
            .map(|node| (node.type_name.clone(), self.title(node)))
            .unwrap_or_default();
        self.diagnostics.push(Diagnostic {
            node_id: self.execution_id(context, position),
            class_type,
            title,
            input: input.map(str::to_owned),
            code: code.to_owned(),
            severity,
            suggestion: did_you_mean(&candidates),
            candidates,
            message,
        });
    }

    fn run(mut self) -> Conversion {
        self.expand_subgraphs();
        self.apply_primitives();
        self.collect_widget_values();
        let mut prompt = ApiPrompt::new();
        for context in 0..self.contexts.len() {
            let node_count = self
                .contexts
                .get(context)
                .map_or(0, |context| context.graph.nodes.len());
            for position in 0..node_count {
                if let Some(node) = self.emit(context, position) {
                    prompt.nodes.insert(self.execution_id(context, position), node);
                }
            }
        }
        self.remove_dangling_links(&mut prompt);
        self.diagnostics
            .sort_by(|left, right| compare_node_ids(&left.node_id, &right.node_id));
        Conversion {
            prompt,
            diagnostics: self.diagnostics,
        }
    }

    /// Creates a context for every active subgraph instance, breadth first.
    fn expand_subgraphs(&mut self) {
        let mut context = 0;
        while context < self.contexts.len() {
            let Some(current) = self.contexts.get(context).cloned() else {
                break;
            };
            for (position, node) in current.graph.nodes.iter().enumerate() {
                if !matches!(self.kind(node), NodeKind::Subgraph) {
                    continue;
                }
                // The newer frontend does not expand muted or bypassed subgraphs; running the
                // inner nodes of a disabled subgraph (as 1.32.9 does) is never what was meant.
                if node.is_disabled() {
                    continue;
                }
                let Some(graph) = self.workflow.subgraphs.get(&node.type_name) else {
                    continue;
                };
                if current.definitions.contains(&node.type_name)
                    || current.path.len() >= MAXIMUM_SUBGRAPH_DEPTH
                {
                    self.diagnose(
                        (context, position),
                        None,
                        code::SUBGRAPH_RECURSION,
                        Severity::Error,
                        "subgraph contains itself (or nests too deeply) and is not expanded".to_owned(),
                    );
                    continue;
                }
                let mut path = current.path.clone();
                path.push(node.id.clone());
                let mut definitions = current.definitions.clone();
                definitions.push(node.type_name.clone());
                self.children.insert((context, position), self.contexts.len());
                self.contexts.push(Context {
                    graph,
                    path,
                    parent: Some((context, position)),
                    definitions,
                });
            }
            context += 1;
        }
    }

    /// Primitive nodes copy their value into every widget they are linked to (`applyToGraph`).
    fn apply_primitives(&mut self) {
        for context in 0..self.contexts.len() {
            let Some(graph) = self.contexts.get(context).map(|context| context.graph) else {
                continue;
            };
            for (position, node) in graph.nodes.iter().enumerate() {
                if !matches!(self.kind(node), NodeKind::Primitive) {
                    continue;
                }
                let Some(value) = node
                    .widgets_values
                    .get(0)
                    .filter(|value| !value.is_null())
                    .cloned()
                else {
                    if node
                        .outputs
                        .first()
                        .is_some_and(|output| !output.links.is_empty())
                    {
                        self.diagnose(
                            (context, position),
                            None,
                            code::MISSING_WIDGET_VALUE,
                            Severity::Warning,
                            "primitive node has no value; its targets keep their own".to_owned(),
                        );
                    }
                    continue;
                };
                let replace = node
                    .properties
                    .get("Run widget replace on values")
                    .and_then(Value::as_bool)
                    == Some(true);
                let value = match (&value, replace) {
                    (Value::String(text), true) => {
                        Value::String(self.replace_text((context, position), text))
                    }
                    _ => value,
                };
                let links: Vec<i64> = node
                    .outputs
                    .first()
                    .map(|output| output.links.clone())
                    .unwrap_or_default();
                let mut pending: Vec<(i64, usize)> = links.into_iter().map(|link| (link, 0)).collect();
                while let Some((link_id, hops)) = pending.pop() {
                    let Some(link) = graph.links.get(&link_id) else {
                        self.diagnose(
                            (context, position),
                            None,
                            code::MISSING_LINK,
                            Severity::Warning,
                            format!("primitive output link {link_id} does not exist"),
                        );
                        continue;
                    };
                    let Some((target_position, target)) = graph.node(&link.target_id) else {
                        continue;
                    };
                    if matches!(self.kind(target), NodeKind::Reroute) && hops < MAXIMUM_RESOLUTION_DEPTH {
                        for output in &target.outputs {
                            pending.extend(output.links.iter().map(|next| (*next, hops + 1)));
                        }
                        continue;
                    }
                    let input = target
                        .inputs
                        .iter()
                        .find(|input| input.link == Some(link_id))
                        .or_else(|| {
                            usize::try_from(link.target_slot)
                                .ok()
                                .and_then(|slot| target.inputs.get(slot))
                        });
                    let Some(input) = input else {
                        continue;
                    };
                    let widget = input.widget_name.clone().unwrap_or_else(|| input.name.clone());
                    self.primitive_values
                        .entry((context, target_position))
                        .or_default()
                        .insert(widget, value.clone());
                }
            }
        }
    }

    /// The widget values of every known node, with primitive values applied and missing values
    /// defaulted, before any text processing.
    fn collect_widget_values(&mut self) {
        for context in 0..self.contexts.len() {
            let Some(graph) = self.contexts.get(context).map(|context| context.graph) else {
                continue;
            };
            for (position, node) in graph.nodes.iter().enumerate() {
                let NodeKind::Known(definition) = self.kind(node) else {
                    continue;
                };
                let location = (context, position);
                let mapped = map_widgets(definition, &node.widgets_values);
                let primitive = self.primitive_values.get(&location).cloned().unwrap_or_default();
                let mut values = Vec::new();
                let mut missing = Vec::new();
                let mut misfits = Vec::new();
                for (spec, saved) in mapped.values {
                    let value = match (primitive.get(&spec.name), saved) {
                        (Some(from_primitive), _) => from_primitive.clone(),
                        (None, Some(saved)) if !saved.is_null() => {
                            if !value_fits(spec, &saved) {
                                misfits.push(format!("{} = {saved}", spec.name));
                            }
                            saved
                        }
                        (None, _) => {
                            missing.push(spec.name.clone());
                            default_widget_value(spec)
                        }
                    };
                    if let InputKind::Socket(type_name) = &spec.kind
                        && BROWSER_PRODUCED_TYPES.contains(&type_name.as_str())
                        && !node.is_disabled()
                    {
                        self.diagnose(
                            location,
                            Some(&spec.name),
                            code::BROWSER_ONLY_VALUE,
                            Severity::Warning,
                            format!("the browser produces the {type_name} value of {}; the saved value is only a placeholder", spec.name),
                        );
                    }
                    values.push((spec.name.clone(), value));
                }
                if !node.is_disabled() {
                    self.report_widget_problems(
                        location,
                        &missing,
                        &misfits,
                        &mapped.extra_values,
                        mapped.used_legacy_layout,
                    );
                }
                self.widget_values.insert(location, values);
            }
        }
    }

    fn report_widget_problems(
        &mut self,
        location: (usize, usize),
        missing: &[String],
        misfits: &[String],
        extra_values: &[Value],
        used_legacy_layout: bool,
    ) {
        if !missing.is_empty() {
            self.diagnose(
                location,
                None,
                code::MISSING_WIDGET_VALUE,
                Severity::Warning,
                format!("no saved value for {}; the defaults are used", missing.join(", ")),
            );
        }
        if !misfits.is_empty() {
            self.diagnose(
                location,
                None,
                code::WIDGET_VALUES_SHIFTED,
                Severity::Warning,
                format!(
                    "saved values do not fit their inputs ({}); widgets_values is probably out of step with this backend's node definition",
                    misfits.join(", ")
                ),
            );
        }
        // Frontend-only widgets (3D viewers, audio players) leave empty values behind; anything
        // else beyond the layout is probably a definition mismatch.
        let meaningful: Vec<&Value> = extra_values
            .iter()
            .filter(|value| !value.is_null() && value.as_str() != Some(""))
            .collect();
        if !meaningful.is_empty() {
            self.diagnose(
                location,
                None,
                code::EXTRA_WIDGET_VALUES,
                Severity::Warning,
                format!(
                    "{} saved value(s) beyond this node's widgets are ignored: {}",
                    meaningful.len(),
                    meaningful
                        .iter()
                        .map(|value| value.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if used_legacy_layout {
            self.diagnose(
                location,
                None,
                code::LEGACY_WIDGET_LAYOUT,
                Severity::Warning,
                "widgets_values has values for inputs that are now sockets (forceInput); they are ignored"
                    .to_owned(),
            );
        }
    }

    /// Replaces `%date:...%` and `%Node.widget%` in `text`, reporting what stayed.
    fn replace_text(&mut self, location: (usize, usize), text: &str) -> String {
        let lookup = |node_name: &str, widget: &str| self.placeholder_value(node_name, widget);
        let (replaced, problems) = replace_placeholders(text, self.options.now.as_ref(), &lookup);
        for problem in problems {
            let message = match problem {
                PlaceholderProblem::NoClock(placeholder) => {
                    format!("{placeholder} is left as it is: no clock value was given for the conversion")
                }
                PlaceholderProblem::Unresolved(placeholder) => {
                    format!("{placeholder} names no node title or widget, so it is left as it is")
                }
            };
            self.diagnose(
                location,
                None,
                code::UNRESOLVED_PLACEHOLDER,
                Severity::Warning,
                message,
            );
        }
        replaced
    }

    /// The frontend looks nodes up by their "Node name for S&R" property first, then by title.
    fn placeholder_value(&self, node_name: &str, widget: &str) -> Option<String> {
        let all_nodes = || {
            self.contexts
                .iter()
                .enumerate()
                .flat_map(|(context, graph_context)| {
                    graph_context
                        .graph
                        .nodes
                        .iter()
                        .enumerate()
                        .map(move |(position, node)| ((context, position), node))
                })
        };
        let found = all_nodes()
            .find(|(_, node)| node.property_text("Node name for S&R") == Some(node_name))
            .or_else(|| all_nodes().find(|(_, node)| self.title(node) == node_name))?;
        let (location, node) = found;
        let value = self
            .widget_values
            .get(&location)
            .and_then(|values| values.iter().find(|(name, _)| name == widget))
            .map(|(_, value)| value.clone())
            .or_else(|| {
                // Primitive nodes have a single widget named after their target.
                matches!(self.kind(node), NodeKind::Primitive)
                    .then(|| node.widgets_values.get(0).cloned())
                    .flatten()
            })?;
        Some(javascript_text(&value))
    }

    fn emit(&mut self, context: usize, position: usize) -> Option<Node> {
        let node = self.node(context, position)?;
        let location = (context, position);
        let kind = self.kind(node);
        match kind {
            NodeKind::Note | NodeKind::Reroute | NodeKind::Primitive | NodeKind::Subgraph => return None,
            NodeKind::GroupNode => {
                if !node.is_disabled() {
                    self.diagnose(
                        location,
                        None,
                        code::UNSUPPORTED_NODE,
                        Severity::Error,
                        "legacy group nodes are not supported; convert the group node to a subgraph in the UI".to_owned(),
                    );
                }
                return None;
            }
            NodeKind::Known(_) | NodeKind::Unknown => {}
        }
        if node.mode == MODE_MUTED || node.mode == MODE_BYPASSED {
            return None;
        }
        if node.type_name.is_empty() {
            self.diagnose(
                location,
                None,
                code::UNKNOWN_NODE_TYPE,
                Severity::Error,
                "node has no type and is left out".to_owned(),
            );
            return None;
        }
        let mut inputs = Map::new();
        match kind {
            NodeKind::Known(definition) => {
                let values = self.widget_values.get(&location).cloned().unwrap_or_default();
                for (name, value) in values {
                    let processed = self.process_widget_value(location, definition, &name, value);
                    inputs.insert(name, InputValue::constant(processed));
                }
            }
            _ => {
                let candidates =
                    closest_matches(&node.type_name, self.info.nodes.keys().map(String::as_str), 3);
                let detail = match &node.widgets_values {
                    Value::Object(entries) => {
                        for (name, value) in entries {
                            inputs.insert(name.clone(), InputValue::constant(value.clone()));
                        }
                        "its widget values are copied by name"
                    }
                    Value::Array(values) if !values.is_empty() => {
                        "its widget values cannot be mapped without a definition"
                    }
                    _ => "only its links are converted",
                };
                self.diagnose_with(
                    location,
                    None,
                    code::UNKNOWN_NODE_TYPE,
                    Severity::Error,
                    format!(
                        "node type {} is not known to this backend (a missing custom node?); {detail}",
                        node.type_name
                    ),
                    candidates,
                );
            }
        }
        for (index, input) in node.inputs.iter().enumerate() {
            if input.link.is_none() {
                continue;
            }
            match self.resolve_input(context, position, index, None, 0) {
                Ok(Some(Resolved::Link(source, slot))) => {
                    inputs.insert(input.name.clone(), link_value(&source, slot));
                }
                Ok(Some(Resolved::Value(value))) => {
                    inputs.insert(input.name.clone(), InputValue::constant(value));
                }
                Ok(None) => {
                    if !inputs.contains_key(&input.name) {
                        self.diagnose(
                            location,
                            Some(&input.name),
                            code::INPUT_DISCONNECTED,
                            Severity::Warning,
                            format!("input {} is linked, but the link leads to no value (an unconnected reroute, subgraph input or bypass), so it is left out", input.name),
                        );
                    }
                }
                Err(problem) => {
                    self.diagnose(
                        location,
                        Some(&input.name),
                        code::MISSING_LINK,
                        Severity::Error,
                        problem,
                    );
                }
            }
        }
        let mut result = Node::new(node.type_name.clone());
        result.inputs = inputs;
        result.meta = Some(NodeMeta {
            title: Some(self.title(node)),
            other: Map::new(),
        });
        Some(result)
    }

    /// What the widget's `serializeValue` does: dynamic prompts, filename placeholders, and the
    /// legacy `sample_` sampler prefix.
    fn process_widget_value(
        &mut self,
        location: (usize, usize),
        definition: &NodeDefinition,
        name: &str,
        value: Value,
    ) -> Value {
        let Some(spec) = definition.input(name) else {
            return value;
        };
        let Value::String(text) = value else {
            return value;
        };
        if name == "sampler_name"
            && let Some(stripped) = text.strip_prefix("sample_")
        {
            return Value::String(stripped.to_owned());
        }
        if name == "filename_prefix" && PREFIX_REPLACING_CLASSES.contains(&definition.class_type.as_str()) {
            return Value::String(self.replace_text(location, &text));
        }
        if spec.kind == InputKind::String
            && spec.option("dynamicPrompts").and_then(Value::as_bool) == Some(true)
            && self.options.resolve_dynamic_prompts
        {
            return Value::String(process_dynamic_prompt(&text, &mut self.random));
        }
        Value::String(text)
    }

    /// `resolveInput`: follows the link of input `index` of a node to where its value comes from.
    fn resolve_input(
        &mut self,
        context: usize,
        position: usize,
        index: usize,
        wanted_type: Option<String>,
        depth: usize,
    ) -> Result<Option<Resolved>, String> {
        if depth > MAXIMUM_RESOLUTION_DEPTH {
            return Err(
                "link resolution loops (a cycle through reroutes, bypassed nodes or subgraphs)".to_owned(),
            );
        }
        let Some(node) = self.node(context, position) else {
            return Ok(None);
        };
        let Some(input) = node.inputs.get(index) else {
            return Ok(None);
        };
        let Some(link_id) = input.link else {
            return Ok(None);
        };
        let Some(graph) = self.contexts.get(context).map(|context| context.graph) else {
            return Ok(None);
        };
        let Some(link) = graph.links.get(&link_id) else {
            return Err(format!(
                "input {} uses link {link_id}, which is not in the workflow's links",
                input.name
            ));
        };
        let wanted = wanted_type.unwrap_or_else(|| input.type_name.clone());
        if link.origin_id == SUBGRAPH_INPUT_NODE {
            return self.resolve_subgraph_input(context, link.origin_slot, depth + 1);
        }
        let Some((origin_position, _)) = graph.node(&link.origin_id) else {
            return Err(format!(
                "input {} is linked from node {}, which does not exist",
                input.name, link.origin_id
            ));
        };
        self.resolve_output(context, origin_position, link.origin_slot, wanted, depth + 1)
    }

    /// A link from a subgraph's input pseudo-node: the instance's input if it is linked in the
    /// parent graph, else the instance's promoted widget value.
    fn resolve_subgraph_input(
        &mut self,
        context: usize,
        subgraph_slot: i64,
        depth: usize,
    ) -> Result<Option<Resolved>, String> {
        let Some(current) = self.contexts.get(context) else {
            return Ok(None);
        };
        let Some((parent_context, instance_position)) = current.parent else {
            return Err("a link comes from a subgraph input outside of any subgraph".to_owned());
        };
        let slot = usize::try_from(subgraph_slot)
            .ok()
            .and_then(|slot| current.graph.subgraph_inputs.get(slot))
            .ok_or_else(|| {
                format!("a link comes from subgraph input {subgraph_slot}, which does not exist")
            })?;
        let name = slot.name.clone();
        let Some(instance) = self.node(parent_context, instance_position) else {
            return Ok(None);
        };
        if let Some(instance_input) = instance
            .inputs
            .iter()
            .position(|input| input.name == name && input.link.is_some())
        {
            return self.resolve_input(parent_context, instance_position, instance_input, None, depth + 1);
        }
        Ok(self
            .promoted_value(parent_context, instance_position, context, &name)
            .map(Resolved::Value))
    }

    /// The value of the instance widget that promotes subgraph input `name`.
    fn promoted_value(
        &self,
        parent_context: usize,
        instance_position: usize,
        inner_context: usize,
        name: &str,
    ) -> Option<Value> {
        if let Some(value) = self
            .primitive_values
            .get(&(parent_context, instance_position))
            .and_then(|values| values.get(name))
        {
            return Some(value.clone());
        }
        let instance = self.node(parent_context, instance_position)?;
        let saved = instance.widgets_values.as_array()?;
        if let Some(proxies) = proxy_widgets(instance) {
            let index = proxies
                .iter()
                .position(|(node_id, widget)| node_id == "-1" && widget == name)?;
            return saved.get(index).filter(|value| !value.is_null()).cloned();
        }
        // Without proxyWidgets the instance has one widget per subgraph input that feeds a widget,
        // in subgraph input order.
        let inner = self.contexts.get(inner_context)?.graph;
        let promoted: Vec<&str> = inner
            .subgraph_inputs
            .iter()
            .filter(|slot| {
                slot.link_ids.iter().any(|link_id| {
                    inner.links.get(link_id).is_some_and(|link| {
                        inner.node(&link.target_id).is_some_and(|(_, target)| {
                            target
                                .inputs
                                .iter()
                                .any(|input| input.link == Some(*link_id) && input.widget_name.is_some())
                        })
                    })
                })
            })
            .map(|slot| slot.name.as_str())
            .collect();
        let index = promoted.iter().position(|promoted_name| *promoted_name == name)?;
        saved.get(index).filter(|value| !value.is_null()).cloned()
    }

    /// `resolveOutput`: what output `slot` of a node stands for.
    fn resolve_output(
        &mut self,
        context: usize,
        position: usize,
        slot: i64,
        wanted: String,
        depth: usize,
    ) -> Result<Option<Resolved>, String> {
        if depth > MAXIMUM_RESOLUTION_DEPTH {
            return Err(
                "link resolution loops (a cycle through reroutes, bypassed nodes or subgraphs)".to_owned(),
            );
        }
        let Some(node) = self.node(context, position) else {
            return Ok(None);
        };
        let Ok(output_slot) = u32::try_from(slot) else {
            return Err(format!("a link uses output slot {slot} of node {}", node.id));
        };
        if node.mode == MODE_BYPASSED {
            let Some(index) = bypass_input(node, slot, &wanted) else {
                self.diagnose(
                    (context, position),
                    None,
                    code::BYPASS_WITHOUT_MATCH,
                    Severity::Warning,
                    format!("bypassed node has no input matching type {wanted}, so the linked input downstream is dropped"),
                );
                return Ok(None);
            };
            return self.resolve_input(context, position, index, None, depth + 1);
        }
        match self.kind(node) {
            NodeKind::Subgraph => {
                let Some(&inner_context) = self.children.get(&(context, position)) else {
                    // Not expanded (muted or recursive): the link points at nothing that is emitted.
                    return Ok(Some(Resolved::Link(
                        self.execution_id(context, position),
                        output_slot,
                    )));
                };
                let Some(inner) = self.contexts.get(inner_context).map(|context| context.graph) else {
                    return Ok(None);
                };
                let inner_link = inner
                    .subgraph_outputs
                    .get(usize::try_from(output_slot).unwrap_or(usize::MAX))
                    .and_then(|output| output.link_ids.iter().find_map(|id| inner.links.get(id)))
                    .filter(|link| link.target_id == SUBGRAPH_OUTPUT_NODE)
                    .or_else(|| {
                        inner
                            .links
                            .values()
                            .find(|link| link.target_id == SUBGRAPH_OUTPUT_NODE && link.target_slot == slot)
                    });
                let Some(inner_link) = inner_link else {
                    return Ok(None);
                };
                if inner_link.origin_id == SUBGRAPH_INPUT_NODE {
                    return self.resolve_subgraph_input(inner_context, inner_link.origin_slot, depth + 1);
                }
                let Some((origin_position, _)) = inner.node(&inner_link.origin_id) else {
                    return Err(format!(
                        "subgraph output {slot} comes from node {}, which does not exist",
                        inner_link.origin_id
                    ));
                };
                self.resolve_output(
                    inner_context,
                    origin_position,
                    inner_link.origin_slot,
                    wanted,
                    depth + 1,
                )
            }
            NodeKind::Reroute => {
                let index = usize::try_from(output_slot).unwrap_or(usize::MAX);
                self.resolve_input(context, position, index, Some(wanted), depth + 1)
            }
            NodeKind::Primitive | NodeKind::Note => Ok(None),
            NodeKind::GroupNode => {
                Err("the link comes from a legacy group node, which is not supported".to_owned())
            }
            NodeKind::Known(_) | NodeKind::Unknown => Ok(Some(Resolved::Link(
                self.execution_id(context, position),
                output_slot,
            ))),
        }
    }

    /// Step 5 of `graphToPrompt`: links to nodes that are not in the prompt (muted, unknown
    /// virtual nodes) are removed; the server then reports missing required inputs.
    fn remove_dangling_links(&mut self, prompt: &mut ApiPrompt) {
        let present: BTreeSet<String> = prompt.nodes.keys().cloned().collect();
        let mut removed = Vec::new();
        for (node_id, node) in &mut prompt.nodes {
            let dangling: Vec<(String, String)> = node
                .links()
                .filter(|(_, link)| !present.contains(&link.node_id))
                .map(|(input, link)| (input.to_owned(), link.node_id))
                .collect();
            for (input, source) in dangling {
                node.inputs.remove(&input);
                removed.push((
                    node_id.clone(),
                    node.class_type.clone(),
                    node.title().unwrap_or_default().to_owned(),
                    input,
                    source,
                ));
            }
        }
        for (node_id, class_type, title, input, source) in removed {
            self.diagnostics.push(Diagnostic {
                node_id,
                class_type,
                title,
                input: Some(input.clone()),
                code: code::DANGLING_LINK_REMOVED.to_owned(),
                severity: Severity::Warning,
                message: format!("input {input} was linked to node {source}, which is muted or not emitted, so the link is removed"),
                suggestion: None,
                candidates: Vec::new(),
            });
        }
    }
}

/// `properties.proxyWidgets` as (node id, widget name) pairs; it may be stored as a JSON string.
fn proxy_widgets(node: &UiNode) -> Option<Vec<(String, String)>> {
    let raw = node.properties.get("proxyWidgets")?;
    let parsed;
    let list = match raw {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).ok()?;
            parsed.as_array()?
        }
        Value::Array(list) => list,
        _ => return None,
    };
    Some(
        list.iter()
            .filter_map(|pair| {
                let node_id = model::id_text(pair.get(0)?)?;
                let widget = pair.get(1)?.as_str()?.to_owned();
                Some((node_id, widget))
            })
            .collect(),
    )
}

/// LiteGraph's `isValidConnection`: empty and `*` match anything, otherwise case-insensitive
/// equality or a shared member of comma-separated lists.
fn litegraph_compatible(left: &str, right: &str) -> bool {
    if left.is_empty() || left == "*" || right.is_empty() || right == "*" || left == right {
        return true;
    }
    let left = left.to_lowercase();
    let right = right.to_lowercase();
    if !left.contains(',') && !right.contains(',') {
        return left == right;
    }
    left.split(',')
        .any(|left_part| right.split(',').any(|right_part| left_part == right_part))
}

/// The frontend's choice of which input a bypassed node passes to output `slot`.
fn bypass_input(node: &UiNode, slot: i64, wanted: &str) -> Option<usize> {
    let slot = usize::try_from(slot).ok()?;
    if wanted.is_empty() || wanted == "*" {
        return Some(if node.inputs.len() > slot { slot } else { 0 });
    }
    let output_type = node
        .outputs
        .get(slot)
        .map_or("", |output| output.type_name.as_str());
    let fits = |type_name: &str| {
        litegraph_compatible(type_name, output_type) && litegraph_compatible(type_name, wanted)
    };
    if node.inputs.get(slot).is_some_and(|input| fits(&input.type_name)) {
        return Some(slot);
    }
    node.inputs
        .iter()
        .position(|input| input.type_name == wanted)
        .or_else(|| node.inputs.iter().position(|input| fits(&input.type_name)))
}

/// JavaScript's `String(value)` for widget values.
fn javascript_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(integer), _, _) => integer.to_string(),
            (None, Some(integer), _) => integer.to_string(),
            (None, None, Some(float)) if float.fract() == 0.0 && float.abs() < 1e21 => format!("{float:.0}"),
            _ => number.to_string(),
        },
        Value::Array(items) => items.iter().map(javascript_text).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

#[cfg(test)]
mod tests;
