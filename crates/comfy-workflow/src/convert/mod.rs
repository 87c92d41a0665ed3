//! UI workflow to API prompt conversion that reproduces what the ComfyUI frontend sends:
//! `loadGraphData` followed by `graphToPrompt` (contract section 9), checked against the real
//! frontend on the template corpora (`tests/frontend`). [`FrontendGeneration`] chooses whose
//! conversion: frontend 1.32.9 (ComfyUI 0.3.75, the default) or 1.45.19 (ComfyUI 0.26.0), which
//! renumbers colliding subgraph node ids, leaves out disabled root subgraphs, shares promoted values
//! between instances and builds some widgets differently (`tests/frontend/README.md` lists it all).
//!
//! [`live`] rebuilds the graph the frontend holds after loading (slots, widgets and their values,
//! promoted subgraph widgets, primitive nodes); this module then does what `graphToPrompt` does:
//! primitive nodes push their values, subgraph instances sync their promoted values, every node of
//! every (nested) subgraph becomes an executable node with an id like `"75:12"`, widget values go
//! through `serializeValue` (dynamic prompts, filename placeholders) and links are resolved through
//! reroutes, bypassed nodes and subgraph boundaries. Muted nodes are left out, with every link to
//! them.
//!
//! Whatever cannot be converted faithfully becomes a [`Diagnostic`]; nothing is dropped silently.

mod dedupe;
mod generation;
mod live;
pub mod model;
pub mod requirements;
mod size;
pub mod text;
pub mod widgets;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostic, Severity, code, compare_node_ids};
use crate::graph::{ApiPrompt, InputValue, Node, NodeMeta, link_value};
use crate::object_info::ObjectInfo;
use crate::suggest::{closest_matches, did_you_mean};

pub use generation::FrontendGeneration;
use live::{Kind, Live, LoadEvent, MAXIMUM_SUBGRAPH_DEPTH, Widget, js_truthy};
use model::{MODE_BYPASSED, MODE_MUTED, SUBGRAPH_INPUT_NODE, parse_workflow};
pub use text::LocalDateTime;
use text::{ChoiceRandom, PlaceholderProblem, js_string, process_dynamic_prompt, replace_placeholders};

/// Deeper link chains (reroutes, bypasses, subgraph levels) are treated as cycles.
const MAXIMUM_RESOLUTION_DEPTH: usize = 512;

/// Most nodes a UI workflow may expand to: the root's plus those inside every subgraph instance,
/// nested ones included. Real workflows have at most a few thousand; a workflow above this is
/// refused with one `workflow_too_large` error before anything is expanded. The same figure as
/// [`MAXIMUM_GRAPH_NODES`](crate::validate::MAXIMUM_GRAPH_NODES), since the prompt that comes
/// out is validated next.
pub const MAXIMUM_EXPANDED_NODES: usize = crate::validate::MAXIMUM_GRAPH_NODES;

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

/// Inputs the frontend takes from the browser environment, injected for determinism, and how to
/// treat node types the backend does not know.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// The local time for `%date:...%` placeholders; without it they are left as they are.
    pub now: Option<LocalDateTime>,
    /// Resolve `{a|b}` dynamic prompts and strip comments, as the frontend does.
    pub resolve_dynamic_prompts: bool,
    /// Seed of the choices made for dynamic prompts.
    pub dynamic_prompt_seed: u64,
    /// Treat node types this backend does not know exactly as the frontend does when their custom
    /// nodes are missing, for byte-for-byte comparisons with it: such nodes are emitted without
    /// `class_type`, their `widgets_values` become widgets named `UNKNOWN` (so the input `UNKNOWN`
    /// holds the last value), and the widgets of their inputs do not exist, so subgraph instances
    /// that promote them put their saved values on the wrong widgets. Off by default: unknown
    /// nodes keep their type as `class_type`, their widget inputs stay promotable, and each one is
    /// reported as an error naming the class and, when the file says, its custom-node pack.
    pub frontend_missing_nodes: bool,
    /// Whose conversion [`ui_to_api`] reproduces: the frontend generation of the backend the
    /// prompt is for.
    pub frontend: FrontendGeneration,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            now: None,
            resolve_dynamic_prompts: true,
            dynamic_prompt_seed: 0,
            frontend_missing_nodes: false,
            frontend: FrontendGeneration::V1_32,
        }
    }
}

/// The converted prompt and everything worth knowing about the conversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    pub prompt: ApiPrompt,
    pub diagnostics: Vec<Diagnostic>,
}

/// Converts a UI workflow to an API prompt the way the frontend's `graphToPrompt` does, as the
/// generation in `options.frontend` does it (frontend 1.32.9 by default): [`ui_to_api_for`].
pub fn ui_to_api(ui: &Value, info: &ObjectInfo, options: &ConvertOptions) -> Conversion {
    ui_to_api_for(ui, info, options, options.frontend)
}

/// Converts a UI workflow to an API prompt the way the given frontend generation's
/// `loadGraphData` and `graphToPrompt` do.
pub fn ui_to_api_for(
    ui: &Value,
    info: &ObjectInfo,
    options: &ConvertOptions,
    frontend: FrontendGeneration,
) -> Conversion {
    // 1.45 renumbers inner nodes whose ids collide before anything is created.
    let deduplicated = if frontend.is_v1_45() {
        dedupe::deduplicate_subgraph_node_ids(ui)
    } else {
        None
    };
    let ui = deduplicated.as_ref().unwrap_or(ui);
    let (workflow, problems) = parse_workflow(ui);
    let expanded = size::expanded_node_count(&workflow);
    if expanded > MAXIMUM_EXPANDED_NODES as u64 {
        return too_large(expanded);
    }
    let live = Live::load(&workflow, info, options.frontend_missing_nodes, frontend);
    let mut converter = Converter::new(live, info, options, frontend);
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

/// The refusal of a workflow that expands to more than [`MAXIMUM_EXPANDED_NODES`] nodes.
fn too_large(expanded: u64) -> Conversion {
    Conversion {
        prompt: ApiPrompt::new(),
        diagnostics: vec![Diagnostic {
            node_id: String::new(),
            class_type: String::new(),
            title: String::new(),
            input: None,
            code: code::WORKFLOW_TOO_LARGE.to_owned(),
            severity: Severity::Error,
            message: format!(
                "the workflow expands to {expanded} nodes (counting the nodes inside every subgraph instance, nested ones included), more than the {MAXIMUM_EXPANDED_NODES} this server converts, so it is not converted"
            ),
            suggestion: Some(
                "subgraph definitions that each hold several instances of the next one multiply with every level: remove the repeated instances or flatten the nesting".to_owned(),
            ),
            candidates: Vec::new(),
        }],
    }
}

/// One graph being flattened: the root, or one expanded subgraph instance.
#[derive(Debug, Clone)]
struct Context {
    /// The live graph (0 is the root; others are subgraph definitions).
    graph: usize,
    /// Ids of the subgraph instances from the root down to this graph.
    path: Vec<String>,
    /// The instance this graph was expanded from: (context, node position).
    parent: Option<(usize, usize)>,
    /// Definitions from the root down, to refuse recursive definitions.
    definitions: Vec<usize>,
}

/// Where an input's value comes from after following links.
#[derive(Debug, Clone, PartialEq)]
enum Resolved {
    Link(String, u32),
    /// A promoted widget's value (`None` is `undefined`).
    Value(Option<Value>),
}

struct Converter<'w> {
    live: Live<'w>,
    info: &'w ObjectInfo,
    options: &'w ConvertOptions,
    frontend: FrontendGeneration,
    contexts: Vec<Context>,
    children: BTreeMap<(usize, usize), usize>,
    diagnostics: Vec<Diagnostic>,
    random: ChoiceRandom,
    /// Did-you-mean candidates by unknown type name.
    suggestions: BTreeMap<String, Vec<String>>,
}

impl<'w> Converter<'w> {
    fn new(
        live: Live<'w>,
        info: &'w ObjectInfo,
        options: &'w ConvertOptions,
        frontend: FrontendGeneration,
    ) -> Self {
        Converter {
            live,
            info,
            options,
            frontend,
            contexts: vec![Context {
                graph: 0,
                path: Vec::new(),
                parent: None,
                definitions: Vec::new(),
            }],
            children: BTreeMap::new(),
            diagnostics: Vec::new(),
            random: ChoiceRandom::new(options.dynamic_prompt_seed),
            suggestions: BTreeMap::new(),
        }
    }

    fn graph_of(&self, context: usize) -> usize {
        self.contexts.get(context).map_or(0, |context| context.graph)
    }

    fn node(&self, context: usize, position: usize) -> Option<&live::LiveNode<'w>> {
        self.live.node(self.graph_of(context), position)
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
            .map(|node| (node.type_name.clone(), node.title.clone()))
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
        self.report_load_events();
        let order = self.dto_order();
        // graphToPrompt step 1: virtual nodes apply themselves (primitive nodes push values).
        for &(context, position) in &order {
            if self
                .node(context, position)
                .is_some_and(|node| matches!(node.kind, Kind::Primitive))
            {
                self.apply_primitive(context, position);
            }
        }
        // Step 2: serializing the workflow syncs promoted values into the inner widgets.
        self.sync_promoted_values();
        let mut prompt = ApiPrompt::new();
        for &(context, position) in &order {
            if let Some(node) = self.emit(context, position) {
                prompt.nodes.insert(self.execution_id(context, position), node);
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

    /// Creates a context for every subgraph instance, breadth first. The frontend expands muted
    /// and bypassed instances too (their inner nodes keep their own mode).
    fn expand_subgraphs(&mut self) {
        let mut context = 0;
        while context < self.contexts.len() {
            let Some(current) = self.contexts.get(context).cloned() else {
                break;
            };
            let node_count = self
                .live
                .graphs
                .get(current.graph)
                .map_or(0, |graph| graph.nodes.len());
            for position in 0..node_count {
                let Some(node) = self.live.node(current.graph, position) else {
                    continue;
                };
                let Kind::Subgraph(definition) = node.kind else {
                    continue;
                };
                let disabled = node.is_disabled();
                let mode = node.mode;
                let node_id = node.id.clone();
                if current.definitions.contains(&definition) || current.path.len() >= MAXIMUM_SUBGRAPH_DEPTH {
                    self.diagnose(
                        (context, position),
                        None,
                        code::SUBGRAPH_RECURSION,
                        Severity::Error,
                        "subgraph contains itself (or nests too deeply) and is not expanded".to_owned(),
                    );
                    continue;
                }
                if disabled {
                    let how = if mode == MODE_MUTED { "muted" } else { "bypassed" };
                    // 1.45 leaves out the inner nodes of muted and bypassed instances in the root
                    // graph, but not of those nested inside another subgraph.
                    if self.frontend.is_v1_45() && context == 0 {
                        continue;
                    }
                    let message = if self.frontend.is_v1_45() {
                        format!(
                            "subgraph instance is {how}, but it sits inside another subgraph, where the frontend (1.45.19) still sends its inner nodes with their own modes. Mute or bypass the inner nodes to disable them"
                        )
                    } else {
                        format!(
                            "subgraph instance is {how}, but the frontend (1.32.9) still sends its inner nodes with their own modes; newer frontends leave them out. Mute or bypass the inner nodes to disable them"
                        )
                    };
                    self.diagnose(
                        (context, position),
                        None,
                        code::DISABLED_SUBGRAPH_EXPANDED,
                        Severity::Warning,
                        message,
                    );
                }
                let mut path = current.path.clone();
                path.push(node_id);
                let mut definitions = current.definitions.clone();
                definitions.push(definition);
                self.children.insert((context, position), self.contexts.len());
                self.contexts.push(Context {
                    graph: definition,
                    path,
                    parent: Some((context, position)),
                    definitions,
                });
            }
            context += 1;
        }
    }

    /// The executable nodes in the frontend's order: root nodes, each instance followed by its
    /// inner nodes (depth first).
    fn dto_order(&self) -> Vec<(usize, usize)> {
        let mut order = Vec::new();
        self.collect_dtos(0, &mut order, 0);
        order
    }

    fn collect_dtos(&self, context: usize, order: &mut Vec<(usize, usize)>, depth: usize) {
        if depth > MAXIMUM_SUBGRAPH_DEPTH {
            return;
        }
        let node_count = self
            .live
            .graphs
            .get(self.graph_of(context))
            .map_or(0, |graph| graph.nodes.len());
        for position in 0..node_count {
            order.push((context, position));
            if let Some(&child) = self.children.get(&(context, position)) {
                self.collect_dtos(child, order, depth + 1);
            }
        }
    }

    /// Turns what loading did into diagnostics.
    fn report_load_events(&mut self) {
        let events = std::mem::take(&mut self.live.events);
        for event in events {
            match event {
                LoadEvent::InputRemoved { graph, node, input } => self.warn_at_every_location(
                    graph,
                    &node,
                    Some(&input),
                    code::INPUT_DISCONNECTED,
                    format!("input {input} claims a widget this node does not have, so the frontend removes it with its link"),
                ),
                LoadEvent::InputDropped {
                    graph,
                    node,
                    input,
                    detail,
                } => self.warn_at_every_location(
                    graph,
                    &node,
                    Some(&input),
                    code::INPUT_DISCONNECTED,
                    format!("input {input} {detail}"),
                ),
                LoadEvent::InstanceValuesIgnored { graph, node, detail } => {
                    let node_id = self.live_node_id(graph, node);
                    self.warn_at_every_location(
                        graph,
                        &node_id,
                        None,
                        code::EXTRA_WIDGET_VALUES,
                        format!(
                            "the frontend (1.45.19) does not load the values saved on a subgraph instance, only those of its inner nodes, which every instance of the subgraph shares: {detail}; set the values inside the subgraph to send them"
                        ),
                    );
                }
                LoadEvent::PromotedValuesShifted { graph, node, detail } => {
                    let node_id = self.live_node_id(graph, node);
                    self.warn_at_every_location(
                        graph,
                        &node_id,
                        None,
                        code::WIDGET_VALUES_SHIFTED,
                        format!(
                            "{detail}: the frontend assigns the saved values in order to the widgets it could promote, so values can land on the wrong inputs"
                        ),
                    );
                }
                LoadEvent::StalePromotion {
                    graph,
                    node,
                    input,
                    source,
                } => {
                    let node_id = self.live_node_id(graph, node);
                    self.warn_at_every_location(
                        graph,
                        &node_id,
                        Some(&input),
                        code::WIDGET_VALUES_SHIFTED,
                        format!(
                            "the frontend promotes the inner widget {source} for subgraph input {input} (the link's saved slot index points at it) and the instance saves no value for it, so {source}'s value is sent for {input}; set the value on the subgraph node and save to fix it"
                        ),
                    );
                }
                LoadEvent::WidgetValues {
                    graph,
                    node,
                    missing,
                    misfits,
                    extra,
                    migrated,
                } => {
                    let Some(live_node) = self.live.node(graph, node) else {
                        continue;
                    };
                    if live_node.is_disabled() {
                        continue;
                    }
                    let node_id = live_node.id.clone();
                    for location in self.locations(graph, &node_id) {
                        self.report_widget_problems(location, &missing, &misfits, &extra, migrated);
                    }
                }
            }
        }
    }

    /// Every context position of a node of a live graph (one per instance of its definition).
    /// The id of the node at `position` in live graph `graph` (empty when it is gone).
    fn live_node_id(&self, graph: usize, position: usize) -> String {
        self.live
            .node(graph, position)
            .map(|node| node.id.clone())
            .unwrap_or_default()
    }

    /// One warning at every place node `node_id` of `graph` ends up in the prompt (a node inside a
    /// subgraph appears once per instance).
    fn warn_at_every_location(
        &mut self,
        graph: usize,
        node_id: &str,
        input: Option<&str>,
        code: &str,
        message: String,
    ) {
        for location in self.locations(graph, node_id) {
            self.diagnose(location, input, code, Severity::Warning, message.clone());
        }
    }

    fn locations(&self, graph: usize, node_id: &str) -> Vec<(usize, usize)> {
        let Some(position) = self
            .live
            .graphs
            .get(graph)
            .and_then(|live| live.node_position(node_id))
        else {
            return Vec::new();
        };
        self.contexts
            .iter()
            .enumerate()
            .filter(|(_, context)| context.graph == graph)
            .map(|(context, _)| (context, position))
            .take(1)
            .collect()
    }

    fn report_widget_problems(
        &mut self,
        location: (usize, usize),
        missing: &[String],
        misfits: &[String],
        extra_values: &[Value],
        migrated: bool,
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
        if migrated {
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

    /// `PrimitiveNode.applyToGraph`: copies the primitive's value into the widget behind every
    /// input it is linked to, then runs that widget's change callback (INT and FLOAT widgets round).
    /// The frontend looks the link ids up in the root graph, even for primitives in subgraphs.
    fn apply_primitive(&mut self, context: usize, position: usize) {
        let graph = self.graph_of(context);
        let Some(node) = self.live.node(graph, position) else {
            return;
        };
        let Some(links) = node.outputs.first().map(|output| output.links.clone()) else {
            return;
        };
        if links.is_empty() {
            return;
        }
        let mut value = node
            .widgets
            .as_ref()
            .and_then(|widgets| widgets.first())
            .cloned()
            .and_then(|widget| self.live.value(&widget));
        let replace = js_truthy(node.properties.get("Run widget replace on values"));
        if replace
            && js_truthy(value.as_ref())
            && let Some(Value::String(text)) = &value
        {
            let text = text.clone();
            value = Some(Value::String(self.replace_text((context, position), &text)));
        }
        for link_id in links {
            let root_link = self
                .live
                .graphs
                .first()
                .and_then(|root| root.links.get(&link_id))
                .cloned();
            let own_link = self
                .live
                .graphs
                .get(graph)
                .and_then(|live| live.links.get(&link_id))
                .cloned();
            let link = if graph == 0 {
                own_link
            } else {
                if root_link.is_none() && own_link.is_some() {
                    self.diagnose(
                        (context, position),
                        None,
                        code::PRIMITIVE_LINK_MISMATCH,
                        Severity::Warning,
                        format!("the frontend (1.32.9) looks up link {link_id} of this primitive node in the root graph, where it does not exist, so it fails to queue the workflow; converted with the subgraph's own link"),
                    );
                } else if root_link.is_some() && root_link != own_link {
                    self.diagnose(
                        (context, position),
                        None,
                        code::PRIMITIVE_LINK_MISMATCH,
                        Severity::Warning,
                        format!("the frontend (1.32.9) looks up link {link_id} of this primitive node in the root graph, where it is another link, so its value goes to the wrong widget"),
                    );
                }
                root_link.or(own_link)
            };
            let Some(link) = link else {
                self.diagnose(
                    (context, position),
                    None,
                    code::MISSING_LINK,
                    Severity::Warning,
                    format!("primitive output link {link_id} does not exist"),
                );
                continue;
            };
            let Some(target) = self
                .live
                .graphs
                .get(graph)
                .and_then(|live| live.node_position(&link.target_id))
            else {
                continue;
            };
            let Some(widget) = usize::try_from(link.target_slot)
                .ok()
                .and_then(|slot| self.live.node(graph, target)?.inputs.get(slot))
                .and_then(|input| input.widget.clone())
                .and_then(|name| self.live.node(graph, target)?.widget(&name).cloned())
            else {
                continue;
            };
            self.live.assign(&widget, value.clone());
            self.live.run_callback(&widget);
        }
    }

    /// `SubgraphNode.serialize`: every promoted widget's value is written into the inner widgets
    /// its subgraph input links to (root instances first, then instances inside definitions).
    fn sync_promoted_values(&mut self) {
        let mut instances = Vec::new();
        for graph in 0..self.live.graphs.len() {
            let node_count = self.live.graphs.get(graph).map_or(0, |live| live.nodes.len());
            for position in 0..node_count {
                if let Some(Kind::Subgraph(definition)) =
                    self.live.node(graph, position).map(|node| node.kind)
                {
                    instances.push((graph, position, definition));
                }
            }
        }
        for (graph, position, definition) in instances {
            let Some(node) = self.live.node(graph, position) else {
                continue;
            };
            let widgets = node.widgets.clone().unwrap_or_default();
            let input_names: Vec<String> = node.inputs.iter().map(|input| input.name.clone()).collect();
            for widget in widgets {
                if !input_names.contains(&widget.name) {
                    continue;
                }
                let value = self.live.value(&widget);
                if value.is_none() && widget.placeholder {
                    continue;
                }
                for inner in self.connected_widgets(definition, &widget.name) {
                    self.live.assign(&inner, value.clone());
                }
            }
        }
    }

    /// `SubgraphInput.getConnectedWidgets`.
    fn connected_widgets(&self, definition: usize, input_name: &str) -> Vec<Widget<'w>> {
        let Some(inner) = self.live.graphs.get(definition) else {
            return Vec::new();
        };
        let Some(slot) = inner.inputs.iter().find(|slot| slot.name == input_name) else {
            return Vec::new();
        };
        let mut widgets = Vec::new();
        for link_id in &slot.link_ids {
            let Some(link) = inner.links.get(link_id) else {
                continue;
            };
            let Some(target) = inner.node_position(&link.target_id) else {
                continue;
            };
            let Some(node) = inner.nodes.get(target) else {
                continue;
            };
            let Some(input) = usize::try_from(link.target_slot)
                .ok()
                .and_then(|slot| node.inputs.get(slot))
            else {
                continue;
            };
            if let Some(widget) = input.widget.as_ref().and_then(|name| node.widget(name)) {
                widgets.push(widget.clone());
            }
        }
        widgets
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

    /// The nodes `collectAllNodes` visits: each instance's subgraph before the instance.
    fn all_nodes(&self, graph: usize, depth: usize, found: &mut Vec<(usize, usize)>) {
        if depth > MAXIMUM_SUBGRAPH_DEPTH {
            return;
        }
        let node_count = self.live.graphs.get(graph).map_or(0, |live| live.nodes.len());
        for position in 0..node_count {
            if let Some(Kind::Subgraph(definition)) = self.live.node(graph, position).map(|node| node.kind) {
                self.all_nodes(definition, depth + 1, found);
            }
            found.push((graph, position));
        }
    }

    /// The frontend looks nodes up by their "Node name for S&R" property first, then by title.
    fn placeholder_value(&self, node_name: &str, widget: &str) -> Option<String> {
        let mut nodes = Vec::new();
        self.all_nodes(0, 0, &mut nodes);
        let live_nodes: Vec<&live::LiveNode<'w>> = nodes
            .iter()
            .filter_map(|(graph, position)| self.live.node(*graph, *position))
            .collect();
        let node = live_nodes
            .iter()
            .find(|node| node.properties.get("Node name for S&R").and_then(Value::as_str) == Some(node_name))
            .or_else(|| live_nodes.iter().find(|node| node.title == node_name))?;
        let widget = node.widget(widget)?;
        Some(match self.live.value(widget) {
            None | Some(Value::Null) => String::new(),
            Some(value) => js_string(&value),
        })
    }

    fn emit(&mut self, context: usize, position: usize) -> Option<Node> {
        let graph = self.graph_of(context);
        let node = self.live.node(graph, position)?;
        let location = (context, position);
        let kind = node.kind;
        if kind.is_virtual() {
            if matches!(kind, Kind::GroupNode) && !node.is_disabled() {
                self.diagnose(
                    location,
                    None,
                    code::UNSUPPORTED_NODE,
                    Severity::Error,
                    "legacy group nodes are not supported; convert the group node to a subgraph in the UI"
                        .to_owned(),
                );
            }
            return None;
        }
        if node.mode == MODE_MUTED || node.mode == MODE_BYPASSED {
            return None;
        }
        let widgets = node.widgets.clone().unwrap_or_default();
        let inputs_slots = node.inputs.clone();
        let type_name = node.type_name.clone();
        let title = node.title.clone();
        let mut inputs = Map::new();
        for widget in &widgets {
            if widget.name.is_empty() || !widget.sent {
                continue;
            }
            if widget.browser_produced {
                self.diagnose(
                    location,
                    Some(&widget.name),
                    code::BROWSER_ONLY_VALUE,
                    Severity::Warning,
                    format!(
                        "the browser produces the value of {} when it queues the workflow (a webcam frame, a 3D render or a recording); an empty placeholder is sent",
                        widget.name
                    ),
                );
            }
            match self.serialize_value(location, widget) {
                Some(value) => {
                    let value = self.tag_curve(value, widget.widget_type == widgets::WidgetType::Curve);
                    inputs.insert(widget.name.clone(), InputValue::constant(value));
                }
                None => {
                    inputs.remove(&widget.name);
                }
            }
        }
        let class_type = match kind {
            Kind::Known(definition) => definition.class_type.clone(),
            _ => {
                self.report_unknown(location);
                if self.options.frontend_missing_nodes {
                    String::new()
                } else {
                    type_name
                }
            }
        };
        for (index, input) in inputs_slots.iter().enumerate() {
            if input.link.is_none() {
                continue;
            }
            match self.resolve_input(context, position, index, None, 0) {
                Ok(Some(Resolved::Link(source, slot))) => {
                    inputs.insert(input.name.clone(), link_value(&source, slot));
                }
                Ok(Some(Resolved::Value(Some(value)))) => {
                    inputs.insert(input.name.clone(), InputValue::constant(value));
                }
                Ok(Some(Resolved::Value(None))) => {
                    inputs.remove(&input.name);
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
        let mut result = Node::new(class_type);
        result.inputs = inputs;
        result.meta = Some(NodeMeta {
            title: Some(title),
            other: Map::new(),
        });
        Some(result)
    }

    /// Reports a node type the backend does not know, with the custom-node pack when the file
    /// names it (`properties.cnr_id` / `aux_id`).
    fn report_unknown(&mut self, location: (usize, usize)) {
        let Some(node) = self.node(location.0, location.1) else {
            return;
        };
        let type_name = node.type_name.clone();
        if type_name.is_empty() {
            self.diagnose(
                location,
                None,
                code::UNKNOWN_NODE_TYPE,
                Severity::Error,
                "node has no type".to_owned(),
            );
            return;
        }
        let text = |key: &str| {
            node.properties
                .get(key)
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        let pack = text("cnr_id").or_else(|| text("aux_id"));
        let version = text("ver");
        let origin = match (pack.as_deref(), version) {
            (Some("comfy-core"), Some(version)) => {
                format!(" (a core node of ComfyUI {version}, newer than this backend)")
            }
            (Some("comfy-core"), None) => " (a core node of a newer ComfyUI)".to_owned(),
            (Some(pack), Some(version)) => format!(" from the custom-node pack {pack} {version}"),
            (Some(pack), None) => format!(" from the custom-node pack {pack}"),
            (None, _) => " (a missing custom node?)".to_owned(),
        };
        let saved = node.saved;
        let detail = if self.options.frontend_missing_nodes {
            "sent without class_type, as the frontend does; its values are collapsed into one UNKNOWN input"
        } else {
            match &saved.widgets_values {
                Value::Object(_) => "its widget values are copied by name",
                Value::Array(values) if !values.is_empty() => {
                    "its widget values cannot be mapped without a definition"
                }
                _ => "only its links are converted",
            }
        };
        // A type named with its pack is a real node, not a typo: no did-you-mean then.
        let info = self.info;
        let candidates = if pack.is_some() {
            Vec::new()
        } else {
            self.suggestions
                .entry(type_name.clone())
                .or_insert_with(|| closest_matches(&type_name, info.class_types(), 3))
                .clone()
        };
        self.diagnose_with(
            location,
            None,
            code::UNKNOWN_NODE_TYPE,
            Severity::Error,
            format!("node type {type_name} is not known to this backend{origin}; {detail}"),
            candidates,
        );
    }

    /// What `Comfy.Preview3DAdvanced`'s `viewport_state.serializeValue` returns in a browser
    /// whose viewer has loaded no model: no captures, no model info, and the camera it restored
    /// from the saved `Camera Config` (or its initial one), whose aspect ratio is `NaN` (`null`)
    /// until the viewer has a size.
    fn viewport_state(&self, (context, position): (usize, usize)) -> Value {
        let saved = self.node(context, position).and_then(|node| {
            node.properties
                .get("Camera Config")
                .and_then(|config| config.get("state"))
                .filter(|state| state.is_object())
                .cloned()
        });
        let mut camera = saved.unwrap_or_else(|| {
            serde_json::json!({
                "position": {"x": 10, "y": 10, "z": 10.000_000_000_000_002},
                "target": {"x": 0, "y": 0, "z": 0},
                "zoom": 1,
                "cameraType": "perspective",
                "quaternion": {"x": -0.279_848_142_333_121_3, "y": 0.364_705_199_631_000_8, "z": 0.115_916_895_959_295_11, "w": 0.880_476_239_217_149_3},
                "fov": 35,
                "near": 0.01,
                "far": 10000,
                "frustum": {"left": -5, "right": 5, "top": 5, "bottom": -5}
            })
        });
        if let Some(fields) = camera.as_object_mut() {
            fields.insert("aspect".to_owned(), Value::Null);
        }
        serde_json::json!({
            "image": "",
            "mask": "",
            "normal": "",
            "camera_info": camera,
            "recording": "",
            "model_3d_info": []
        })
    }

    /// `CustomCombo`'s `index`: `widgets.slice(2).findIndex(w => w.value === combo.value)`.
    fn option_index(&self, (context, position): (usize, usize)) -> Value {
        let Some(widgets) = self
            .node(context, position)
            .and_then(|node| node.widgets.as_ref())
        else {
            return Value::from(-1);
        };
        let chosen = widgets.first().and_then(|widget| self.live.value(widget));
        let found = widgets
            .iter()
            .skip(2)
            .position(|widget| js_strict_equal(self.live.value(widget).as_ref(), chosen.as_ref()));
        found.map_or(Value::from(-1), Value::from)
    }

    /// List values are sent as `{"__value__": list}` ([`InputValue::constant`]); 1.45 tags a
    /// curve widget's list `{"__type__": "CURVE", "__value__": list}`.
    fn tag_curve(&self, value: Value, curve: bool) -> Value {
        if !self.frontend.is_v1_45() || !curve || !value.is_array() {
            return value;
        }
        let mut wrapped = Map::new();
        wrapped.insert("__type__".to_owned(), Value::String("CURVE".to_owned()));
        wrapped.insert("__value__".to_owned(), value);
        Value::Object(wrapped)
    }

    /// `serializeValue`: dynamic prompts, filename placeholders; `None` is `undefined`.
    fn serialize_value(&mut self, location: (usize, usize), widget: &Widget<'w>) -> Option<Value> {
        let value = self.live.value(widget);
        match widget.serialize {
            widgets::Serialize::Undefined => None,
            widgets::Serialize::OptionIndex => Some(self.option_index(location)),
            widgets::Serialize::ViewportState => Some(self.viewport_state(location)),
            widgets::Serialize::Raw => value,
            widgets::Serialize::DynamicPrompt => match value {
                Some(Value::String(text)) if self.options.resolve_dynamic_prompts => {
                    Some(Value::String(process_dynamic_prompt(&text, &mut self.random)))
                }
                other => other,
            },
            widgets::Serialize::FilenamePrefix => match value {
                Some(Value::String(text)) => Some(Value::String(self.replace_text(location, &text))),
                other => other,
            },
        }
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
        let graph = self.graph_of(context);
        let Some(node) = self.live.node(graph, position) else {
            return Ok(None);
        };
        let Some(input) = node.inputs.get(index).cloned() else {
            return Err(format!("node {} has no input slot {index}", node.id));
        };
        let Some(link_id) = input.link else {
            return Ok(None);
        };
        let Some(link) = self
            .live
            .graphs
            .get(graph)
            .and_then(|live| live.links.get(&link_id))
            .cloned()
        else {
            return Err(format!(
                "input {} uses link {link_id}, which is not in the workflow's links",
                input.name
            ));
        };
        let parent = self.contexts.get(context).and_then(|current| current.parent);
        if let Some((parent_context, instance)) = parent
            && link.origin_id == SUBGRAPH_INPUT_NODE
        {
            return self.resolve_subgraph_input(
                parent_context,
                instance,
                link.origin_slot,
                &input.name,
                depth + 1,
            );
        }
        let Some(origin) = self
            .live
            .graphs
            .get(graph)
            .and_then(|live| live.node_position(&link.origin_id))
        else {
            return Err(format!(
                "input {} is linked from node {}, which does not exist",
                input.name, link.origin_id
            ));
        };
        let wanted = wanted_type.unwrap_or(input.type_name);
        self.resolve_output(context, origin, link.origin_slot, wanted, depth + 1)
    }

    /// A link from a subgraph's input pseudo-node: the instance's input if it is linked in the
    /// parent graph, else the value of the instance widget behind that input.
    fn resolve_subgraph_input(
        &mut self,
        parent_context: usize,
        instance: usize,
        subgraph_slot: i64,
        inner_name: &str,
        depth: usize,
    ) -> Result<Option<Resolved>, String> {
        let parent_graph = self.graph_of(parent_context);
        let Some(node) = self.live.node(parent_graph, instance) else {
            return Ok(None);
        };
        let Some(instance_input) = usize::try_from(subgraph_slot)
            .ok()
            .and_then(|slot| node.inputs.get(slot))
            .cloned()
        else {
            return Err(format!("no subgraph input {subgraph_slot} for {inner_name}"));
        };
        let Some(link_id) = instance_input.link else {
            let widget = instance_input
                .widget
                .as_ref()
                .and_then(|name| node.widget(name))
                .cloned();
            return Ok(widget.and_then(|widget| {
                let value = self.live.value(&widget);
                // A stand-in for an unknown node's widget with no saved value says nothing; the
                // inner node keeps its own value.
                (value.is_some() || !widget.placeholder).then_some(Resolved::Value(value))
            }));
        };
        let Some(outer_link) = self
            .live
            .graphs
            .get(parent_graph)
            .and_then(|live| live.links.get(&link_id))
            .cloned()
        else {
            return Err(format!(
                "no outer link {link_id} for subgraph input {}",
                instance_input.name
            ));
        };
        let slot = usize::try_from(outer_link.target_slot).unwrap_or(usize::MAX);
        self.resolve_input(parent_context, instance, slot, None, depth + 1)
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
        let graph = self.graph_of(context);
        let Some(node) = self.live.node(graph, position) else {
            return Ok(None);
        };
        let Ok(output_slot) = u32::try_from(slot) else {
            return Err(format!("a link uses output slot {slot} of node {}", node.id));
        };
        if node.mode == MODE_BYPASSED {
            let Some(output) = node.outputs.get(usize::try_from(slot).unwrap_or(usize::MAX)) else {
                return Err(format!("bypassed node {} has no output {slot}", node.id));
            };
            let Some(index) = bypass_input(&node.inputs, slot, &output.type_name, &wanted) else {
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
        match node.kind {
            Kind::Subgraph(definition) => {
                if node
                    .outputs
                    .get(usize::try_from(slot).unwrap_or(usize::MAX))
                    .is_none()
                {
                    return Err(format!("subgraph node {} has no output {slot}", node.id));
                }
                let Some(&inner_context) = self.children.get(&(context, position)) else {
                    return Ok(Some(Resolved::Link(
                        self.execution_id(context, position),
                        output_slot,
                    )));
                };
                let Some(inner) = self.live.graphs.get(definition) else {
                    return Ok(None);
                };
                let inner_link = inner
                    .outputs
                    .get(usize::try_from(output_slot).unwrap_or(usize::MAX))
                    .and_then(|output| output.link_ids.iter().find_map(|id| inner.links.get(id)))
                    .cloned();
                let Some(inner_link) = inner_link else {
                    return Ok(None);
                };
                let Some(origin) = inner.node_position(&inner_link.origin_id) else {
                    return Err(format!(
                        "subgraph output {slot} comes from node {}, which does not exist",
                        inner_link.origin_id
                    ));
                };
                self.resolve_output(inner_context, origin, inner_link.origin_slot, wanted, depth + 1)
            }
            Kind::Reroute | Kind::Primitive | Kind::Note | Kind::GroupNode => {
                let Some(link_id) = node
                    .inputs
                    .get(usize::try_from(output_slot).unwrap_or(usize::MAX))
                    .and_then(|input| input.link)
                else {
                    return Ok(None);
                };
                let Some(link) = self
                    .live
                    .graphs
                    .get(graph)
                    .and_then(|live| live.links.get(&link_id))
                    .cloned()
                else {
                    return Ok(None);
                };
                let Some(target) = self
                    .live
                    .graphs
                    .get(graph)
                    .and_then(|live| live.node_position(&link.target_id))
                else {
                    return Err(format!("virtual node {} has a broken input link", node.id));
                };
                let slot = usize::try_from(link.target_slot).unwrap_or(usize::MAX);
                self.resolve_input(context, target, slot, Some(wanted), depth + 1)
            }
            Kind::Known(_) | Kind::Unknown => Ok(Some(Resolved::Link(
                self.execution_id(context, position),
                output_slot,
            ))),
        }
    }

    /// Step 5 of `graphToPrompt`: links to nodes that are not in the prompt (muted, virtual) are
    /// removed; the server then reports missing required inputs.
    fn remove_dangling_links(&mut self, prompt: &mut ApiPrompt) {
        let present: BTreeSet<String> = prompt.nodes.keys().cloned().collect();
        let mut removed = Vec::new();
        for (node_id, node) in &mut prompt.nodes {
            let dangling: Vec<(String, String)> = node
                .inputs
                .iter()
                .filter_map(|(input, value)| match value.as_array().map(Vec::as_slice) {
                    Some([source, _]) => {
                        let key = match source {
                            Value::String(text) => text.clone(),
                            other => js_string(other),
                        };
                        (!present.contains(&key)).then(|| (input.clone(), key))
                    }
                    _ => None,
                })
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

/// JavaScript's `===` on widget values (objects compare by identity, so never equal here).
fn js_strict_equal(left: Option<&Value>, right: Option<&Value>) -> bool {
    match (left, right) {
        (None, None) => true,
        (Some(Value::Number(a)), Some(Value::Number(b))) => a.as_f64() == b.as_f64(),
        (Some(Value::Null), Some(Value::Null)) => true,
        (Some(Value::Bool(a)), Some(Value::Bool(b))) => a == b,
        (Some(Value::String(a)), Some(Value::String(b))) => a == b,
        _ => false,
    }
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
    left.split(',').any(|left_part| {
        right
            .split(',')
            .any(|right_part| litegraph_compatible(left_part, right_part))
    })
}

/// The frontend's choice of which input a bypassed node passes to output `slot`.
fn bypass_input(inputs: &[live::Slot], slot: i64, output_type: &str, wanted: &str) -> Option<usize> {
    let slot = usize::try_from(slot).ok()?;
    if wanted.is_empty() || wanted == "*" {
        return Some(if inputs.len() > slot { slot } else { 0 });
    }
    let fits = |type_name: &str| {
        litegraph_compatible(type_name, output_type) && litegraph_compatible(type_name, wanted)
    };
    if inputs.get(slot).is_some_and(|input| fits(&input.type_name)) {
        return Some(slot);
    }
    inputs
        .iter()
        .position(|input| input.type_name == wanted)
        .or_else(|| inputs.iter().position(|input| fits(&input.type_name)))
}

#[cfg(test)]
mod tests;
