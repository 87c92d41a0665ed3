//! The graph as the ComfyUI frontend holds it after `loadGraphData` (1.32.9, and where noted
//! 1.45.19): every node with
//! the input slots, output slots and widgets the frontend gives it, and the widget values after
//! loading `widgets_values`. `graphToPrompt` reads this state, so the quirks of loading decide what
//! the server receives:
//!
//! - known nodes get their slots from the definition (sockets first, then one slot per widget),
//!   matched to the saved slots by name; saved slots the definition lacks are kept, unless they
//!   claim a widget the node does not have (`onGraphConfigured` removes them with their link);
//! - `widgets_values` are positional over the widgets that are saved (`serialize !== false`),
//!   including the control, filter and upload values the API never sees;
//! - subgraph definitions are configured before the root, each once: inner nodes are shared by all
//!   instances. An instance promotes, for each of its inputs, the first inner widget that input
//!   links to (found with the saved `target_slot`, before the frontend renumbers slots), and its
//!   `widgets_values` land positionally on the promoted widgets, then by `proxyWidgets` index;
//! - primitive nodes build their widget from the first target's widget definition after the graph
//!   is configured, and take `widgets_values[0]`, even when it is `null`;
//! - DOM widgets (multi-line text, players, 3D viewers) share one value with their promoted
//!   copies; text areas turn any value into a string; viewers ignore assignments.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::generation::FrontendGeneration;
use super::model::{SUBGRAPH_INPUT_NODE, SubgraphSlot, UiGraph, UiLink, UiNode, UiWorkflow};
use super::text::{js_json_stringify, js_string};
use super::widgets::{
    Callback, FrontendLayout, Serialize, Setter, UploadTransform, WidgetTemplate, WidgetType,
    frontend_layout_for, frontend_layout_for_values_as, migrate_widgets_values, value_fits,
    with_custom_combo_options,
};
use crate::object_info::{InputKind, InputSpec, NodeDefinition, ObjectInfo};

/// Frontend-only node types that never reach the prompt.
pub(super) const NOTE_TYPES: &[&str] = &["Note", "MarkdownNote"];

/// Type renames `loadGraphData` applies before creating nodes.
pub(super) const TYPE_RENAMES: &[(&str, &str)] = &[
    ("T2IAdapterLoader", "ControlNetLoader"),
    ("ConditioningAverage ", "ConditioningAverage"),
    ("SDV_img2vid_Conditioning", "SVD_img2vid_Conditioning"),
    ("Load3DAnimation", "Load3D"),
    ("Preview3DAnimation", "Preview3D"),
];

/// Core widget constructors (`ComfyWidgets`), which a primitive node can copy.
const CORE_WIDGET_TYPES: &[&str] = &[
    "INT",
    "FLOAT",
    "BOOLEAN",
    "STRING",
    "MARKDOWN",
    "COMBO",
    "IMAGEUPLOAD",
    "COLOR",
    "IMAGECOMPARE",
    "CHART",
    "GALLERIA",
    "TEXTAREA",
];

/// Graphs nested deeper than this (through instances) are not walked.
pub(super) const MAXIMUM_SUBGRAPH_DEPTH: usize = 32;

/// A widget's value storage. Several widgets share one cell when they are DOM widgets promoted
/// to subgraph instances.
#[derive(Debug, Clone)]
pub(super) struct Cell {
    /// `None` is JavaScript's `undefined`.
    pub value: Option<Value>,
    /// For media combos with an upload transform: whether a value was assigned since creation.
    pub changed: bool,
}

/// One live widget.
#[derive(Debug, Clone)]
pub(super) struct Widget<'w> {
    pub name: String,
    pub cell: usize,
    pub persisted: bool,
    pub sent: bool,
    pub setter: Setter,
    pub callback: Callback,
    pub serialize: Serialize,
    pub widget_type: WidgetType,
    pub upload: Option<UploadTransform>,
    pub spec: Option<&'w InputSpec>,
    pub browser_produced: bool,
    /// A proxy for an inner widget (`properties.proxyWidgets`), only on subgraph instances.
    pub proxy: bool,
    /// Whether loading assigned a value (for diagnostics).
    pub loaded: bool,
    /// A stand-in for a widget of a node type the backend does not know (default mode): its value
    /// is unknown, so it never overrides a known value.
    pub placeholder: bool,
}

/// One live input slot.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Slot {
    pub name: String,
    pub type_name: String,
    pub link: Option<i64>,
    pub widget: Option<String>,
}

/// One live output slot.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OutSlot {
    pub name: String,
    pub type_name: String,
    pub links: Vec<i64>,
}

/// What a node is, as far as conversion cares.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind<'w> {
    Note,
    Reroute,
    Primitive,
    /// An instance of the subgraph definition with this graph index.
    Subgraph(usize),
    GroupNode,
    Known(&'w NodeDefinition),
    Unknown,
}

impl Kind<'_> {
    /// The frontend's `isVirtualNode`.
    pub fn is_virtual(self) -> bool {
        matches!(
            self,
            Kind::Note | Kind::Reroute | Kind::Primitive | Kind::Subgraph(_) | Kind::GroupNode
        )
    }
}

/// One live node.
#[derive(Debug, Clone)]
pub(super) struct LiveNode<'w> {
    pub id: String,
    /// The type after the frontend's renames.
    pub type_name: String,
    pub kind: Kind<'w>,
    pub mode: i64,
    pub title: String,
    pub inputs: Vec<Slot>,
    pub outputs: Vec<OutSlot>,
    /// `None` when the node has no widget array at all (JavaScript `undefined`).
    pub widgets: Option<Vec<Widget<'w>>>,
    pub properties: Map<String, Value>,
    pub saved: &'w UiNode,
}

impl<'w> LiveNode<'w> {
    pub fn widget(&self, name: &str) -> Option<&Widget<'w>> {
        self.widgets.as_ref()?.iter().find(|widget| widget.name == name)
    }

    pub fn is_disabled(&self) -> bool {
        self.mode == super::model::MODE_MUTED || self.mode == super::model::MODE_BYPASSED
    }
}

/// The root graph or one subgraph definition.
#[derive(Debug, Clone)]
pub(super) struct LiveGraph<'w> {
    pub source: &'w UiGraph,
    pub nodes: Vec<LiveNode<'w>>,
    pub positions: BTreeMap<String, usize>,
    pub links: BTreeMap<i64, UiLink>,
    pub inputs: Vec<SubgraphSlot>,
    pub outputs: Vec<SubgraphSlot>,
    /// Instances of this definition created so far: (graph, node position).
    instances: Vec<(usize, usize)>,
}

impl<'w> LiveGraph<'w> {
    pub fn node_position(&self, node_id: &str) -> Option<usize> {
        self.positions.get(node_id).copied()
    }
}

/// Something loading did that changes what is sent, reported as a diagnostic.
#[derive(Debug, Clone)]
pub(super) enum LoadEvent {
    /// A saved input that claims a widget the node lacks was removed with its link.
    InputRemoved {
        graph: usize,
        node: String,
        input: String,
    },
    /// A saved input was removed with its link, for the reason given.
    InputDropped {
        graph: usize,
        node: String,
        input: String,
        detail: String,
    },
    /// Values saved on a subgraph instance that frontend 1.45 does not load.
    InstanceValuesIgnored {
        graph: usize,
        node: usize,
        detail: String,
    },
    /// A subgraph instance promoted fewer widgets than it has saved values, so values moved.
    PromotedValuesShifted {
        graph: usize,
        node: usize,
        detail: String,
    },
    /// A subgraph input promoted another inner widget than the one it links to (the saved slot
    /// index is stale) and the instance saved no value for it, so that widget's value is sent.
    StalePromotion {
        graph: usize,
        node: usize,
        input: String,
        source: String,
    },
    /// Saved values did not fit (count or type) the node's widgets.
    WidgetValues {
        graph: usize,
        node: usize,
        missing: Vec<String>,
        misfits: Vec<String>,
        extra: Vec<Value>,
        migrated: bool,
    },
}

/// The whole live workflow.
#[derive(Debug)]
pub(super) struct Live<'w> {
    pub graphs: Vec<LiveGraph<'w>>,
    pub definitions: BTreeMap<String, usize>,
    pub cells: Vec<Cell>,
    pub events: Vec<LoadEvent>,
    info: &'w ObjectInfo,
    frontend_missing_nodes: bool,
    pub frontend: FrontendGeneration,
    layouts: BTreeMap<String, FrontendLayout<'w>>,
}

pub(super) fn renamed(type_name: &str) -> String {
    TYPE_RENAMES
        .iter()
        .find(|(from, _)| *from == type_name)
        .map_or_else(|| type_name.to_owned(), |(_, to)| (*to).to_owned())
}

/// JavaScript truthiness of a widget value.
pub(super) fn js_truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number
            .as_f64()
            .is_some_and(|float| float != 0.0 && !float.is_nan()),
        Some(Value::String(text)) => !text.is_empty(),
        Some(_) => true,
    }
}

fn has_annotation(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    ["[input]", "[output]", "[temp]"]
        .iter()
        .any(|annotation| lower.contains(annotation))
}

/// JavaScript's `encodeURIComponent`.
fn encode_uri_component(text: &str) -> String {
    let mut encoded = String::new();
    for character in text.chars() {
        if character.is_ascii_alphanumeric() || "-_.!~*'()".contains(character) {
            encoded.push(character);
        } else {
            let mut buffer = [0; 4];
            for byte in character.encode_utf8(&mut buffer).bytes() {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    encoded
}

/// `createAnnotatedPath` for a value of a media combo.
fn annotated_path(value: &Value, folder: &str) -> String {
    match value {
        Value::String(path) => {
            if !has_annotation(path) && folder != "input" {
                format!("{path} [{folder}]")
            } else {
                path.clone()
            }
        }
        Value::Object(item) => {
            let filename = item.get("filename").map(js_string).unwrap_or_default();
            let path = match item.get("subfolder").map(js_string) {
                Some(subfolder) if !subfolder.is_empty() => format!("{subfolder}/{filename}"),
                _ => filename,
            };
            match item.get("type") {
                Some(kind) if js_truthy(Some(kind)) => {
                    let kind = js_string(kind);
                    if !has_annotation(&kind) && folder != "input" {
                        format!("{path} [{folder}]")
                    } else {
                        path
                    }
                }
                _ => path,
            }
        }
        _ => String::new(),
    }
}

/// The image-upload extension's value transform.
fn upload_value(cell: &Cell, transform: &UploadTransform) -> Option<Value> {
    let internal = if cell.changed {
        cell.value.clone()
    } else {
        Some(Value::String(transform.initial.clone()))
    };
    if !js_truthy(internal.as_ref()) {
        return Some(Value::String(transform.initial.clone()));
    }
    Some(match internal? {
        Value::Array(items) => {
            if transform.allow_batch {
                Value::Array(
                    items
                        .iter()
                        .map(|item| Value::String(annotated_path(item, &transform.folder)))
                        .collect(),
                )
            } else {
                Value::String(
                    items
                        .first()
                        .map(|item| annotated_path(item, &transform.folder))
                        .unwrap_or_default(),
                )
            }
        }
        other => Value::String(annotated_path(&other, &transform.folder)),
    })
}

/// What a `<textarea>` holds after `value = v`.
fn textarea_value(value: Option<&Value>) -> Value {
    Value::String(match value {
        None => "undefined".to_owned(),
        Some(Value::Null) => String::new(),
        Some(other) => js_string(other),
    })
}

/// `Math.round` of a JavaScript number (halves round up).
fn js_round(value: f64) -> f64 {
    (value + 0.5).floor()
}

/// JavaScript's `Number(value)` for what a widget callback receives.
fn js_to_number(value: Option<&Value>) -> f64 {
    match value {
        None => f64::NAN,
        Some(Value::Null) => 0.0,
        Some(Value::Bool(flag)) => f64::from(u8::from(*flag)),
        Some(Value::Number(number)) => number.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(text)) => {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                0.0
            } else {
                trimmed.parse().unwrap_or(f64::NAN)
            }
        }
        Some(Value::Array(items)) => match items.as_slice() {
            [] => 0.0,
            [single] => js_to_number(Some(&Value::String(js_string(single)))),
            _ => f64::NAN,
        },
        Some(Value::Object(_)) => f64::NAN,
    }
}

/// A JSON number for a JavaScript number (`NaN` and infinities become `null`, as JSON.stringify
/// writes them); whole numbers stay integers.
pub(super) fn js_number_value(value: f64) -> Value {
    if !value.is_finite() {
        return Value::Null;
    }
    if value.fract() == 0.0 && value.abs() < 9.007_199_254_740_992e15 {
        #[allow(clippy::cast_possible_truncation)]
        let whole = value as i64;
        return Value::from(whole);
    }
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// Integers beyond 2^53 are not representable in JavaScript; the frontend holds (and sends) the
/// nearest double.
fn js_value(value: &Value) -> Value {
    match value {
        Value::Number(number)
            if number
                .as_f64()
                .is_some_and(|float| float.abs() > 9.007_199_254_740_992e15) =>
        {
            if number.is_f64() {
                value.clone()
            } else {
                let float = number.as_f64().unwrap_or(0.0);
                serde_json::Number::from_f64(float).map_or_else(|| value.clone(), Value::Number)
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(js_value).collect()),
        Value::Object(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, item)| (key.clone(), js_value(item)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `properties.proxyWidgets`, which may be stored as a JSON string; `None` when absent or not a
/// list of string pairs (the frontend then fails to load the instance).
pub(super) fn proxy_widgets(properties: &Map<String, Value>) -> Option<Vec<(String, String)>> {
    let raw = properties.get("proxyWidgets")?;
    let parsed;
    let mut list = raw;
    for _ in 0..2 {
        if let Value::String(text) = list {
            parsed = serde_json::from_str::<Value>(text).ok()?;
            list = &parsed;
            break;
        }
    }
    list.as_array()?
        .iter()
        .map(|pair| match pair.as_array()?.as_slice() {
            [Value::String(node), Value::String(widget)] => Some((node.clone(), widget.clone())),
            _ => None,
        })
        .collect()
}

impl<'w> Live<'w> {
    /// Loads a workflow as `loadGraphData` does.
    pub fn load(
        workflow: &'w UiWorkflow,
        info: &'w ObjectInfo,
        frontend_missing_nodes: bool,
        frontend: FrontendGeneration,
    ) -> Self {
        let mut live = Live {
            graphs: Vec::new(),
            definitions: BTreeMap::new(),
            cells: Vec::new(),
            events: Vec::new(),
            info,
            frontend_missing_nodes,
            frontend,
            layouts: BTreeMap::new(),
        };
        live.graphs.push(LiveGraph::new(&workflow.root));
        for id in &workflow.subgraph_order {
            if let Some(graph) = workflow.subgraphs.get(id) {
                live.definitions.insert(id.clone(), live.graphs.len());
                live.graphs.push(LiveGraph::new(graph));
            }
        }
        for index in live.definition_configure_order(workflow) {
            live.configure_graph(index);
        }
        live.configure_graph(0);
        live.fix_link_input_slots(0, 0);
        live.for_each_node(0, 0, &mut |live, graph, position| {
            live.on_graph_configured(graph, position)
        });
        live.for_each_node(0, 0, &mut |live, graph, position| {
            live.on_after_graph_configured(graph, position)
        });
        live.apply_legacy_fixes();
        live
    }

    /// The graph indexes of the subgraph definitions in the order they are configured: file order
    /// for 1.32; for 1.45 `topologicalSortSubgraphs`, definitions used by others first (Kahn's
    /// algorithm over file order), or file order when the uses form a cycle. It counts an edge per
    /// instance but removes it once per used definition, so a definition holding two instances of
    /// another is never ready and also falls back to file order.
    fn definition_configure_order(&self, workflow: &UiWorkflow) -> Vec<usize> {
        let in_file_order: Vec<usize> = (1..self.graphs.len()).collect();
        if !self.frontend.is_v1_45() {
            return in_file_order;
        }
        let ids = &workflow.subgraph_order;
        let mut in_degree: Vec<usize> = vec![0; ids.len()];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); ids.len()];
        for (user, id) in ids.iter().enumerate() {
            let Some(graph) = workflow.subgraphs.get(id) else {
                continue;
            };
            for node in &graph.nodes {
                if let Some(used) = ids.iter().position(|other| *other == node.type_name) {
                    if let Some(list) = dependents.get_mut(used)
                        && !list.contains(&user)
                    {
                        list.push(user);
                    }
                    if let Some(degree) = in_degree.get_mut(user) {
                        *degree += 1;
                    }
                }
            }
        }
        let mut queue: std::collections::VecDeque<usize> = (0..ids.len())
            .filter(|index| in_degree.get(*index) == Some(&0))
            .collect();
        let mut sorted = Vec::new();
        while let Some(index) = queue.pop_front() {
            sorted.push(index);
            for &dependent in dependents.get(index).map(Vec::as_slice).unwrap_or_default() {
                if let Some(degree) = in_degree.get_mut(dependent) {
                    *degree = degree.saturating_sub(1);
                    if *degree == 0 {
                        queue.push_back(dependent);
                    }
                }
            }
        }
        if sorted.len() != ids.len() {
            return in_file_order;
        }
        sorted
            .into_iter()
            .filter_map(|index| ids.get(index).and_then(|id| self.definitions.get(id)).copied())
            .collect()
    }

    pub fn node(&self, graph: usize, position: usize) -> Option<&LiveNode<'w>> {
        self.graphs.get(graph)?.nodes.get(position)
    }

    fn node_mut(&mut self, graph: usize, position: usize) -> Option<&mut LiveNode<'w>> {
        self.graphs.get_mut(graph)?.nodes.get_mut(position)
    }

    fn new_cell(&mut self, value: Option<Value>) -> usize {
        self.cells.push(Cell {
            value,
            changed: false,
        });
        self.cells.len() - 1
    }

    /// A widget's value as the frontend reads it.
    pub fn value(&self, widget: &Widget<'_>) -> Option<Value> {
        let cell = self.cells.get(widget.cell)?;
        match &widget.upload {
            Some(transform) => upload_value(cell, transform),
            None => cell.value.clone(),
        }
    }

    /// Assigns a value as `widget.value = value` does.
    pub fn assign(&mut self, widget: &Widget<'_>, value: Option<Value>) {
        let Some(cell) = self.cells.get_mut(widget.cell) else {
            return;
        };
        match widget.setter {
            Setter::Ignored => {}
            Setter::Text => cell.value = Some(textarea_value(value.as_ref())),
            Setter::TextStore => {
                cell.value = match value {
                    None | Some(Value::Null) => Some(textarea_value(value.as_ref())),
                    Some(other) => Some(other),
                }
            }
            Setter::Plain => {
                cell.value = value;
                if widget.upload.is_some() {
                    cell.changed = true;
                }
            }
        }
    }

    /// Runs the widget's change callback, as a primitive node does after assigning.
    pub fn run_callback(&mut self, widget: &Widget<'_>) {
        let current = self.value(widget);
        match widget.callback {
            Callback::None => {}
            Callback::Int { step, min } => {
                let step = if step == 0.0 || step.is_nan() { 1.0 } else { step };
                let number = js_to_number(current.as_ref());
                let rounded = if step == 1.0 {
                    js_round(number)
                } else {
                    let offset = min % step;
                    js_round((number - offset) / step) * step + offset
                };
                self.assign(widget, Some(js_number_value(rounded)));
            }
            Callback::Float {
                round,
                precision,
                min,
                max,
            } => {
                let Some(round) = round else {
                    return;
                };
                let number = js_to_number(current.as_ref());
                let precision = precision.unwrap_or_else(|| (-round.log10().floor()).max(0.0));
                let rounded = js_round(number / round) * round;
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let digits = precision.clamp(0.0, 100.0) as usize;
                let fixed: f64 = format!("{rounded:.digits$}").parse().unwrap_or(rounded);
                let clamped = if fixed.is_nan() {
                    fixed
                } else {
                    fixed.max(min).min(max)
                };
                self.assign(widget, Some(js_number_value(clamped)));
            }
        }
    }

    fn widget_from_template(&mut self, template: &WidgetTemplate<'w>) -> Widget<'w> {
        let cell = self.new_cell(template.default.clone());
        Widget {
            name: template.name.clone(),
            cell,
            persisted: template.persisted,
            sent: template.sent,
            setter: template.setter,
            callback: template.callback,
            serialize: template.serialize,
            widget_type: template.widget_type,
            upload: template.upload.clone(),
            spec: template.spec,
            browser_produced: template.browser_produced,
            proxy: false,
            loaded: false,
            placeholder: false,
        }
    }

    /// The layout of a fresh node, built once per class.
    fn layout(&mut self, definition: &'w NodeDefinition) -> FrontendLayout<'w> {
        let frontend = self.frontend;
        self.layouts
            .entry(definition.class_type.clone())
            .or_insert_with(|| frontend_layout_for(definition, frontend))
            .clone()
    }

    fn kind(&self, type_name: &str) -> Kind<'w> {
        if NOTE_TYPES.contains(&type_name) {
            Kind::Note
        } else if type_name == "Reroute" {
            Kind::Reroute
        } else if type_name == "PrimitiveNode" {
            Kind::Primitive
        } else if let Some(&graph) = self.definitions.get(type_name) {
            Kind::Subgraph(graph)
        } else if type_name.starts_with("workflow>") || type_name.starts_with("workflow/") {
            Kind::GroupNode
        } else if let Some(definition) = self.info.node(type_name) {
            Kind::Known(definition)
        } else {
            Kind::Unknown
        }
    }

    /// `LGraph.configure`: creates every node, then configures each.
    fn configure_graph(&mut self, graph: usize) {
        let Some(source) = self.graphs.get(graph).map(|graph| graph.source) else {
            return;
        };
        let listeners = self
            .graphs
            .get(graph)
            .map(|graph| graph.instances.clone())
            .unwrap_or_default();
        let mut nodes = Vec::new();
        for saved in &source.nodes {
            let type_name = renamed(&saved.type_name);
            let kind = self.kind(&type_name);
            nodes.push(LiveNode {
                id: saved.id.clone(),
                title: saved
                    .title
                    .clone()
                    .filter(|title| !title.is_empty())
                    .unwrap_or_else(|| match kind {
                        Kind::Known(definition) if !definition.display_name.is_empty() => {
                            definition.display_name.clone()
                        }
                        Kind::Subgraph(definition) => self
                            .graphs
                            .get(definition)
                            .map(|inner| inner.source.name.clone())
                            .filter(|name| !name.is_empty())
                            .unwrap_or_else(|| type_name.clone()),
                        _ => type_name.clone(),
                    }),
                type_name,
                kind,
                mode: saved.mode,
                inputs: Vec::new(),
                outputs: Vec::new(),
                widgets: None,
                properties: Map::new(),
                saved,
            });
        }
        if let Some(live_graph) = self.graphs.get_mut(graph) {
            live_graph.nodes = nodes;
        }
        for position in 0..source.nodes.len() {
            if let Some(Kind::Subgraph(definition)) = self.node(graph, position).map(|node| node.kind)
                && let Some(definition) = self.graphs.get_mut(definition)
            {
                definition.instances.push((graph, position));
            }
        }
        for position in 0..source.nodes.len() {
            self.configure_node(graph, position);
        }
        // `Subgraph.configure` announces its inputs again; instances created before (inside
        // definitions configured earlier) promote widgets they could not find then.
        if graph != 0 {
            for (instance_graph, instance) in listeners {
                self.announce_inputs(graph, instance_graph, instance);
            }
        }
    }

    fn configure_node(&mut self, graph: usize, position: usize) {
        let Some(node) = self.node(graph, position) else {
            return;
        };
        let kind = node.kind;
        let saved = node.saved;
        match kind {
            Kind::Known(definition) => self.configure_known(graph, position, definition),
            Kind::Subgraph(definition) if self.frontend.is_v1_45() => {
                self.configure_instance_1_45(graph, position, definition);
            }
            Kind::Subgraph(definition) => self.configure_instance(graph, position, definition),
            Kind::Unknown | Kind::GroupNode => self.configure_unknown(graph, position),
            Kind::Primitive => {
                let mut outputs = vec![OutSlot {
                    name: "connect to widget input".to_owned(),
                    type_name: "*".to_owned(),
                    links: Vec::new(),
                }];
                overlay_outputs(&mut outputs, saved);
                let mut properties = Map::new();
                properties.insert("Run widget replace on values".to_owned(), Value::Bool(false));
                properties.extend(saved.properties.clone());
                if let Some(node) = self.node_mut(graph, position) {
                    node.inputs = saved_inputs(saved);
                    node.outputs = outputs;
                    node.properties = properties;
                }
            }
            Kind::Reroute => {
                let mut inputs = vec![Slot {
                    name: String::new(),
                    type_name: "*".to_owned(),
                    link: None,
                    widget: None,
                }];
                for (index, input) in saved_inputs(saved).into_iter().enumerate() {
                    match inputs.get_mut(index) {
                        Some(slot) => *slot = input,
                        None => inputs.push(input),
                    }
                }
                let mut outputs = vec![OutSlot {
                    name: String::new(),
                    type_name: "*".to_owned(),
                    links: Vec::new(),
                }];
                overlay_outputs(&mut outputs, saved);
                if let Some(node) = self.node_mut(graph, position) {
                    node.inputs = inputs;
                    node.outputs = outputs;
                    node.properties = saved.properties.clone();
                }
            }
            Kind::Note => {
                if let Some(node) = self.node_mut(graph, position) {
                    node.properties = saved.properties.clone();
                }
            }
        }
    }

    fn configure_known(&mut self, graph: usize, position: usize, definition: &'w NodeDefinition) {
        let Some(saved) = self.node(graph, position).map(|node| node.saved) else {
            return;
        };
        let saved_slots = saved_inputs(saved);
        let layout = match &saved.widgets_values {
            // A dynamic combo's saved value decides which widgets follow it.
            Value::Array(values) if has_dynamic_combo(definition) => {
                let slot_names: Vec<String> = saved_slots.iter().map(|slot| slot.name.clone()).collect();
                frontend_layout_for_values_as(definition, values, &slot_names, self.frontend)
            }
            _ => self.layout(definition),
        };
        let layout = if self.frontend.is_v1_45() && definition.class_type == "CustomCombo" {
            let values = saved
                .widgets_values
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            with_custom_combo_options(layout, values)
        } else {
            layout
        };
        let mut by_name: BTreeMap<&str, &Slot> = BTreeMap::new();
        for slot in &saved_slots {
            by_name.insert(slot.name.as_str(), slot);
        }
        let mut inputs: Vec<Slot> = layout
            .slots
            .iter()
            .map(|template| match by_name.get(template.name.as_str()) {
                Some(saved) => Slot {
                    name: template.name.clone(),
                    type_name: template.type_name.clone(),
                    link: saved.link,
                    widget: template.widget.clone().or_else(|| saved.widget.clone()),
                },
                None => Slot {
                    name: template.name.clone(),
                    type_name: template.type_name.clone(),
                    link: None,
                    widget: template.widget.clone(),
                },
            })
            .collect();
        // Assigning a dynamic combo's saved value rebuilds its group (`combo.*`): saved slots of
        // the group that the shown option lacks are removed with their links.
        let groups: Vec<String> = if saved.widgets_values.is_array() {
            definition
                .settable_inputs()
                .filter(|spec| matches!(spec.kind, InputKind::DynamicCombo(_)))
                .map(|spec| format!("{}.", spec.name))
                .collect()
        } else {
            Vec::new()
        };
        for slot in &saved_slots {
            if layout.slots.iter().any(|template| template.name == slot.name) {
                continue;
            }
            let grown = layout.autogrow_groups.iter().any(|group| {
                slot.name
                    .strip_prefix(group.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
            });
            if !grown && groups.iter().any(|group| slot.name.starts_with(group.as_str())) {
                if slot.link.is_some() {
                    self.events.push(LoadEvent::InputDropped {
                        graph,
                        node: saved.id.clone(),
                        input: slot.name.clone(),
                        detail: "belongs to an option of its dynamic combo that the saved value does not show, so the frontend removes it with its link".to_owned(),
                    });
                }
                continue;
            }
            inputs.push(slot.clone());
        }
        // `addOutputs` gives match-type outputs the type `*`.
        let outputs = merge_outputs(
            definition.outputs.iter().map(|output| {
                let type_name = if output.type_name == crate::object_info::MATCH_TYPE {
                    "*"
                } else {
                    output.type_name.as_str()
                };
                (output.name.as_str(), type_name)
            }),
            saved_outputs(saved),
        );
        let mut widgets: Vec<Widget<'w>> = layout
            .widgets
            .iter()
            .map(|template| self.widget_from_template(template))
            .collect();
        let mut missing = Vec::new();
        let mut misfits = Vec::new();
        let mut extra = Vec::new();
        let mut migrated = false;
        match &saved.widgets_values {
            Value::Array(values) => {
                let values = match migrate_widgets_values(&layout, values) {
                    Some(migrated_values) => {
                        migrated = true;
                        migrated_values
                    }
                    None => values.clone(),
                };
                let persisted: Vec<usize> = (0..widgets.len())
                    .filter(|index| widgets.get(*index).is_some_and(|widget| widget.persisted))
                    .collect();
                for (value_index, value) in values.iter().enumerate() {
                    let Some(&widget_index) = persisted.get(value_index) else {
                        extra.push(value.clone());
                        continue;
                    };
                    if let Some(widget) = widgets.get_mut(widget_index) {
                        widget.loaded = true;
                        if let Some(spec) = widget.spec
                            && widget.sent
                            && !value.is_null()
                            && !value_fits(spec, value)
                        {
                            misfits.push(format!("{} = {value}", widget.name));
                        }
                    }
                    if let Some(widget) = widgets.get(widget_index).cloned() {
                        self.assign(&widget, Some(js_value(value)));
                    }
                }
            }
            Value::Object(entries) => {
                // Custom nodes that save values by name load them in their own code; the core
                // frontend ignores such objects. Matching by name is what those nodes do.
                for widget in &mut widgets {
                    widget.loaded = entries.contains_key(&widget.name);
                }
                for widget in widgets.clone() {
                    if let Some(value) = entries.get(&widget.name) {
                        self.assign(&widget, Some(js_value(value)));
                    }
                }
            }
            _ => {}
        }
        for widget in &widgets {
            if widget.persisted && widget.sent && widget.spec.is_some() && !widget.loaded {
                missing.push(widget.name.clone());
            }
        }
        let mut properties = Map::new();
        if !super::widgets::PREFIX_REPLACING_CLASSES.contains(&definition.class_type.as_str()) {
            properties.insert(
                "Node name for S&R".to_owned(),
                Value::String(definition.class_type.clone()),
            );
        }
        properties.extend(saved.properties.clone());
        if !missing.is_empty() || !misfits.is_empty() || !extra.is_empty() || migrated {
            self.events.push(LoadEvent::WidgetValues {
                graph,
                node: position,
                missing,
                misfits,
                extra,
                migrated,
            });
        }
        if let Some(node) = self.node_mut(graph, position) {
            node.inputs = inputs;
            node.outputs = outputs;
            node.widgets = Some(widgets);
            node.properties = properties;
        }
    }

    fn configure_unknown(&mut self, graph: usize, position: usize) {
        let Some(saved) = self.node(graph, position).map(|node| node.saved) else {
            return;
        };
        let inputs = saved_inputs(saved);
        let mut widgets = Vec::new();
        if self.frontend_missing_nodes {
            // errorNodeWidgets: one "UNKNOWN" widget per saved value, typed by the value.
            if let Value::Array(values) = &saved.widgets_values {
                for value in values {
                    let (stored, setter) = match value {
                        Value::String(text) if text.chars().count() > 20 => (value.clone(), Setter::Text),
                        Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                            (js_value(value), Setter::Plain)
                        }
                        other => (Value::String(js_json_stringify(other)), Setter::Text),
                    };
                    let cell = self.new_cell(Some(stored));
                    widgets.push(Widget {
                        name: "UNKNOWN".to_owned(),
                        cell,
                        persisted: true,
                        sent: true,
                        setter,
                        callback: Callback::None,
                        serialize: Serialize::Raw,
                        widget_type: WidgetType::Other,
                        upload: None,
                        spec: None,
                        browser_produced: false,
                        proxy: false,
                        loaded: true,
                        placeholder: false,
                    });
                }
            }
        } else {
            // Without its definition, the node's widget inputs still name its widgets; their
            // values are unknown unless saved by name.
            let named = saved.widgets_values.as_object();
            for slot in &inputs {
                if let Some(name) = &slot.widget {
                    let value = named.and_then(|entries| entries.get(name)).map(js_value);
                    let sent = value.is_some();
                    let placeholder = value.is_none();
                    let cell = self.new_cell(value);
                    // Saved (persisted) like the real widget would be, so that promoted copies
                    // take their instance's values in the right positions.
                    widgets.push(Widget {
                        name: name.clone(),
                        cell,
                        persisted: true,
                        sent,
                        setter: Setter::Plain,
                        callback: Callback::None,
                        serialize: Serialize::Raw,
                        widget_type: WidgetType::Other,
                        upload: None,
                        spec: None,
                        browser_produced: false,
                        proxy: false,
                        loaded: sent,
                        placeholder,
                    });
                }
            }
            if let Some(entries) = named {
                for (name, value) in entries {
                    if widgets.iter().any(|widget: &Widget<'_>| &widget.name == name) {
                        continue;
                    }
                    let cell = self.new_cell(Some(js_value(value)));
                    widgets.push(Widget {
                        name: name.clone(),
                        cell,
                        persisted: false,
                        sent: true,
                        setter: Setter::Plain,
                        callback: Callback::None,
                        serialize: Serialize::Raw,
                        widget_type: WidgetType::Other,
                        upload: None,
                        spec: None,
                        browser_produced: false,
                        proxy: false,
                        loaded: true,
                        placeholder: false,
                    });
                }
            }
        }
        if let Some(node) = self.node_mut(graph, position) {
            node.inputs = inputs;
            node.outputs = saved_outputs(saved);
            node.widgets = (!widgets.is_empty()).then_some(widgets);
            node.properties = saved.properties.clone();
        }
    }

    /// The widget an input slot of a node points at (`getWidgetFromSlot`).
    fn widget_for_slot(&self, graph: usize, position: usize, slot: &Slot) -> Option<Widget<'w>> {
        let name = slot.widget.as_ref()?;
        self.node(graph, position)?.widget(name).cloned()
    }

    /// The first inner widget a subgraph input links to, found the way `SubgraphNode` does when it
    /// is configured (with the links' current `target_slot`).
    fn promotable_widget(&self, definition: usize, input_name: &str) -> Option<Widget<'w>> {
        self.promotion(definition, input_name).map(|(widget, _)| widget)
    }

    /// Like [`Self::promotable_widget`], also telling whether the widget was found through a stale
    /// slot index: the saved `target_slot` counts only the slots saved in the file (unconnected
    /// widget slots are left out), while the node's slots are all there, so it can point at an
    /// earlier widget than the one the link really feeds.
    fn promotion(&self, definition: usize, input_name: &str) -> Option<(Widget<'w>, bool)> {
        let inner = self.graphs.get(definition)?;
        let subgraph_input = inner.inputs.iter().find(|slot| slot.name == input_name)?;
        for link_id in &subgraph_input.link_ids {
            let Some(link) = inner.links.get(link_id) else {
                continue;
            };
            let Some(target) = inner.node_position(&link.target_id) else {
                continue;
            };
            let Some(slot) = usize::try_from(link.target_slot)
                .ok()
                .and_then(|index| inner.nodes.get(target)?.inputs.get(index))
            else {
                continue;
            };
            if let Some(widget) = self.widget_for_slot(definition, target, slot) {
                let stale = slot.link != Some(*link_id)
                    && inner
                        .nodes
                        .get(target)
                        .and_then(|node| node.inputs.iter().find(|input| input.link == Some(*link_id)))
                        .is_some_and(|real| real.widget.as_deref() != Some(widget.name.as_str()));
                return Some((widget, stale));
            }
        }
        None
    }

    /// `createCopyForNode`: DOM widgets share their value; others copy it.
    fn promoted_copy(&mut self, source: &Widget<'w>, name: &str) -> Widget<'w> {
        let shared = matches!(source.setter, Setter::Text | Setter::Ignored);
        let cell = if shared {
            source.cell
        } else {
            let value = self.value(source);
            self.new_cell(value)
        };
        Widget {
            name: name.to_owned(),
            cell,
            upload: None,
            proxy: false,
            loaded: false,
            ..source.clone()
        }
    }

    /// `SubgraphNode.#setWidget`: inserts the promoted copy after the widgets of the inputs that
    /// already have one.
    fn set_promoted(
        &mut self,
        graph: usize,
        instance: usize,
        input_index: usize,
        source: &Widget<'w>,
        name: &str,
    ) {
        let copy = self.promoted_copy(source, name);
        let Some(node) = self.node_mut(graph, instance) else {
            return;
        };
        let with_widget = node.inputs.iter().filter(|input| input.widget.is_some()).count();
        let widgets = node.widgets.get_or_insert_with(Vec::new);
        let at = with_widget.min(widgets.len());
        widgets.insert(at, copy);
        if let Some(input) = node.inputs.get_mut(input_index) {
            input.widget = Some(name.to_owned());
        }
    }

    fn configure_instance(&mut self, graph: usize, position: usize, definition: usize) {
        let Some(saved) = self.node(graph, position).map(|node| node.saved) else {
            return;
        };
        let Some(inner) = self.graphs.get(definition) else {
            return;
        };
        let definition_slots: Vec<SubgraphSlot> = inner.inputs.clone();
        let definition_outputs: Vec<SubgraphSlot> = inner.outputs.clone();
        // The constructor configures the instance once with no saved data: an input then has a
        // widget when the definition can promote one.
        let constructed: Vec<Slot> = definition_slots
            .iter()
            .map(|slot| Slot {
                name: slot.name.clone(),
                type_name: slot.type_name.clone(),
                link: None,
                widget: self
                    .promotable_widget(definition, &slot.name)
                    .map(|_| slot.name.clone()),
            })
            .collect();
        let saved_slots = saved_inputs(saved);
        let mut by_name: BTreeMap<&str, &Slot> = BTreeMap::new();
        for slot in &saved_slots {
            by_name.insert(slot.name.as_str(), slot);
        }
        let mut inputs: Vec<Slot> = constructed
            .iter()
            .map(|current| match by_name.get(current.name.as_str()) {
                Some(saved) => Slot {
                    name: current.name.clone(),
                    type_name: current.type_name.clone(),
                    link: saved.link,
                    widget: current.widget.clone().or_else(|| saved.widget.clone()),
                },
                None => current.clone(),
            })
            .collect();
        inputs.extend(
            saved_slots
                .iter()
                .filter(|slot| !constructed.iter().any(|current| current.name == slot.name))
                .cloned(),
        );
        let outputs = merge_outputs(
            definition_outputs
                .iter()
                .map(|output| (output.name.as_str(), output.type_name.as_str())),
            saved_outputs(saved),
        );
        if let Some(node) = self.node_mut(graph, position) {
            node.inputs = inputs.clone();
            node.outputs = outputs;
            node.widgets = Some(Vec::new());
            node.properties = saved.properties.clone();
        }
        // _internalConfigureAfterSlots
        let mut stale = Vec::new();
        for (index, input) in inputs.iter().enumerate() {
            if !definition_slots.iter().any(|slot| slot.name == input.name) {
                continue;
            }
            if let Some((source, stale_slot)) = self.promotion(definition, &input.name) {
                if stale_slot {
                    stale.push((input.name.clone(), source.name.clone()));
                }
                self.set_promoted(graph, position, index, &source, &input.name);
            }
        }
        let promoted = self
            .node(graph, position)
            .and_then(|node| node.widgets.as_ref())
            .map_or(0, |widgets| {
                widgets.iter().filter(|widget| widget.persisted).count()
            });
        // Values land on the promoted widgets in order.
        let mut assigned = Vec::new();
        if let Value::Array(values) = &saved.widgets_values {
            let widgets: Vec<Widget<'w>> = self
                .node(graph, position)
                .and_then(|node| node.widgets.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|widget| widget.persisted)
                .collect();
            for (widget, value) in widgets.iter().zip(values) {
                self.assign(widget, Some(js_value(value)));
                assigned.push(widget.name.clone());
            }
        }
        for (input, source) in stale {
            if !assigned.contains(&input) {
                self.events.push(LoadEvent::StalePromotion {
                    graph,
                    node: position,
                    input,
                    source,
                });
            }
        }
        // Comfy's proxy widgets: reorder, add proxies for inner widgets, and assign the values of
        // "-1" entries by index.
        let proxies = proxy_widgets(&saved.properties);
        if let Some(proxies) = &proxies {
            self.apply_proxy_widgets(graph, position, definition, proxies);
        }
        if let Value::Array(values) = &saved.widgets_values {
            let aligned = proxies.as_ref().is_some_and(|proxies| {
                proxies.iter().all(|(node, _)| node == "-1") && proxies.len() >= values.len()
            });
            let own = definition_slots.len();
            if values.len() > promoted && !aligned {
                let detail = format!(
                    "{} saved value(s) for {promoted} promoted widget(s) of {own} subgraph input(s)",
                    values.len()
                );
                self.events.push(LoadEvent::PromotedValuesShifted {
                    graph,
                    node: position,
                    detail,
                });
            }
        }
    }

    /// A 1.45 `SubgraphNode` after `configure`: one input per subgraph input, in the definition's
    /// order, with the saved link of the saved input of that name (saved inputs the definition
    /// lacks are dropped); an input promotes the widget of the first inner input its links reach
    /// (found by link id), as a view that reads and writes that widget, so every instance of a
    /// definition shares the inner values. The instance's own `widgets_values` are not loaded
    /// (promoted views are not serialized) and `proxyWidgets` only chooses what is drawn.
    fn configure_instance_1_45(&mut self, graph: usize, position: usize, definition: usize) {
        let Some(saved) = self.node(graph, position).map(|node| node.saved) else {
            return;
        };
        let Some(inner) = self.graphs.get(definition) else {
            return;
        };
        let definition_slots: Vec<SubgraphSlot> = inner.inputs.clone();
        let definition_outputs: Vec<SubgraphSlot> = inner.outputs.clone();
        let saved_slots = saved_inputs(saved);
        let mut by_name: BTreeMap<&str, &Slot> = BTreeMap::new();
        for slot in &saved_slots {
            by_name.insert(slot.name.as_str(), slot);
        }
        let inputs: Vec<Slot> = definition_slots
            .iter()
            .map(|slot| Slot {
                name: slot.name.clone(),
                type_name: slot.type_name.clone(),
                link: by_name.get(slot.name.as_str()).and_then(|saved| saved.link),
                widget: None,
            })
            .collect();
        let outputs = merge_outputs(
            definition_outputs
                .iter()
                .map(|output| (output.name.as_str(), output.type_name.as_str())),
            saved_outputs(saved),
        );
        if let Some(node) = self.node_mut(graph, position) {
            node.inputs = inputs.clone();
            node.outputs = outputs;
            node.widgets = Some(Vec::new());
            node.properties = saved.properties.clone();
        }
        for (index, input) in inputs.iter().enumerate() {
            let Some(source) = self.linked_widget(definition, &input.name) else {
                continue;
            };
            let view = Widget {
                name: input.name.clone(),
                persisted: false,
                proxy: false,
                loaded: false,
                upload: None,
                ..source
            };
            if let Some(node) = self.node_mut(graph, position) {
                node.widgets.get_or_insert_with(Vec::new).push(view);
                if let Some(slot) = node.inputs.get_mut(index) {
                    slot.widget = Some(input.name.clone());
                }
            }
        }
        // The values an older frontend saved on the instance (one per promoted widget, in order)
        // are not loaded: say which unlinked inputs get another value than the saved one.
        let Value::Array(values) = &saved.widgets_values else {
            return;
        };
        let views: Vec<Widget<'w>> = self
            .node(graph, position)
            .and_then(|node| node.widgets.clone())
            .unwrap_or_default();
        let ignored: Vec<String> = views
            .iter()
            .zip(values)
            .filter(|(view, _)| {
                inputs
                    .iter()
                    .any(|input| input.name == view.name && input.link.is_none())
            })
            .filter_map(|(view, saved_value)| {
                let sent = self.value(view);
                let same = match (&sent, saved_value) {
                    (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
                    (Some(sent), saved_value) => sent == saved_value,
                    (None, _) => false,
                };
                (!same).then(|| {
                    let shown = sent.map_or_else(|| "undefined".to_owned(), |value| value.to_string());
                    format!("{} = {saved_value} (the inner value {shown} is sent)", view.name)
                })
            })
            .collect();
        if !ignored.is_empty() {
            self.events.push(LoadEvent::InstanceValuesIgnored {
                graph,
                node: position,
                detail: ignored.join(", "),
            });
        }
    }

    /// `SubgraphNode._resolveInputWidget`: the widget of the first inner input that a link of the
    /// subgraph input named `input_name` reaches, finding that input by the link's id.
    fn linked_widget(&self, definition: usize, input_name: &str) -> Option<Widget<'w>> {
        let inner = self.graphs.get(definition)?;
        let subgraph_input = inner.inputs.iter().find(|slot| slot.name == input_name)?;
        for link_id in &subgraph_input.link_ids {
            let Some(link) = inner.links.get(link_id) else {
                continue;
            };
            let Some(target) = inner.node_position(&link.target_id) else {
                continue;
            };
            let Some(slot) = inner
                .nodes
                .get(target)
                .and_then(|node| node.inputs.iter().find(|input| input.link == Some(*link_id)))
            else {
                continue;
            };
            if let Some(widget) = self.widget_for_slot(definition, target, slot) {
                return Some(widget);
            }
        }
        None
    }

    fn apply_proxy_widgets(
        &mut self,
        graph: usize,
        position: usize,
        definition: usize,
        proxies: &[(String, String)],
    ) {
        let Some(node) = self.node(graph, position) else {
            return;
        };
        let saved = node.saved;
        let widgets = node.widgets.clone().unwrap_or_default();
        let mut new_widgets = Vec::new();
        for (node_id, widget_name) in proxies {
            if node_id == "-1" {
                if let Some(widget) = widgets.iter().find(|widget| &widget.name == widget_name) {
                    new_widgets.push(widget.clone());
                }
                continue;
            }
            let backing = self.widget_by_execution_id(definition, node_id, widget_name);
            let proxy = match backing {
                Some(backing) => Widget {
                    name: format!("{node_id}: {widget_name}"),
                    persisted: false,
                    proxy: true,
                    loaded: false,
                    ..backing
                },
                None => {
                    let cell = self.new_cell(None);
                    Widget {
                        name: format!("{node_id}: {widget_name}"),
                        cell,
                        persisted: false,
                        sent: true,
                        setter: Setter::Plain,
                        callback: Callback::None,
                        serialize: Serialize::Raw,
                        widget_type: WidgetType::Other,
                        upload: None,
                        spec: None,
                        browser_produced: false,
                        proxy: true,
                        loaded: false,
                        placeholder: false,
                    }
                }
            };
            new_widgets.push(proxy);
        }
        let mut kept: Vec<Widget<'w>> = widgets
            .into_iter()
            .filter(|widget| !widget.proxy && !proxies.iter().any(|(_, name)| &widget.name == name))
            .collect();
        kept.extend(new_widgets);
        if let Some(node) = self.node_mut(graph, position) {
            node.widgets = Some(kept.clone());
        }
        if let Value::Array(values) = &saved.widgets_values {
            for (index, value) in values.iter().enumerate() {
                let Some((node_id, widget_name)) = proxies.get(index) else {
                    continue;
                };
                if node_id != "-1" || value.is_null() {
                    continue;
                }
                if let Some(widget) = kept.iter().find(|widget| &widget.name == widget_name) {
                    self.assign(widget, Some(js_value(value)));
                }
            }
        }
    }

    /// A widget of the node at `execution_id` ("12" or "5:12") under a definition.
    fn widget_by_execution_id(
        &self,
        definition: usize,
        execution_id: &str,
        widget_name: &str,
    ) -> Option<Widget<'w>> {
        let mut graph = definition;
        let parts: Vec<&str> = execution_id.split(':').collect();
        let (last, path) = parts.split_last()?;
        for part in path {
            let position = self.graphs.get(graph)?.node_position(part)?;
            match self.node(graph, position)?.kind {
                Kind::Subgraph(inner) => graph = inner,
                _ => return None,
            }
        }
        let position = self.graphs.get(graph)?.node_position(last)?;
        self.node(graph, position)?.widget(widget_name).cloned()
    }

    /// The `input-added` events of `Subgraph.configure` for an instance created earlier.
    fn announce_inputs(&mut self, definition: usize, graph: usize, instance: usize) {
        let Some(inner) = self.graphs.get(definition) else {
            return;
        };
        let slots = inner.inputs.clone();
        for slot in slots {
            let Some(index) = self
                .node(graph, instance)
                .and_then(|node| node.inputs.iter().position(|input| input.name == slot.name))
            else {
                if let Some(node) = self.node_mut(graph, instance) {
                    node.inputs.push(Slot {
                        name: slot.name.clone(),
                        type_name: slot.type_name.clone(),
                        link: None,
                        widget: None,
                    });
                }
                continue;
            };
            // The listener looks for an inner widget named like the subgraph input.
            let Some(inner) = self.graphs.get(definition) else {
                return;
            };
            let Some(link) = slot.link_ids.first().and_then(|link_id| inner.links.get(link_id)) else {
                continue;
            };
            let Some(target) = inner.node_position(&link.target_id) else {
                continue;
            };
            let Some(widget) = self
                .node(definition, target)
                .and_then(|node| node.widget(&slot.name))
                .cloned()
            else {
                continue;
            };
            self.set_promoted(graph, instance, index, &widget, &slot.name);
        }
    }

    /// `fixLinkInputSlots`: every link's `target_slot` becomes the index of the input holding it,
    /// in the root and (through instances) in every subgraph.
    fn fix_link_input_slots(&mut self, graph: usize, depth: usize) {
        if depth > MAXIMUM_SUBGRAPH_DEPTH {
            return;
        }
        let node_count = self.graphs.get(graph).map_or(0, |graph| graph.nodes.len());
        for position in 0..node_count {
            let Some(node) = self.node(graph, position) else {
                continue;
            };
            let fixes: Vec<(i64, usize)> = node
                .inputs
                .iter()
                .enumerate()
                .filter_map(|(index, input)| input.link.filter(|link| *link != 0).map(|link| (link, index)))
                .collect();
            let kind = node.kind;
            if let Some(live_graph) = self.graphs.get_mut(graph) {
                for (link_id, index) in fixes {
                    if let Some(link) = live_graph.links.get_mut(&link_id) {
                        link.target_slot = i64::try_from(index).unwrap_or(i64::MAX);
                    }
                }
            }
            if let Kind::Subgraph(inner) = kind {
                self.fix_link_input_slots(inner, depth + 1);
            }
        }
    }

    /// `forEachNode`: nodes of a graph in order, each instance's subgraph before the instance.
    fn for_each_node(&mut self, graph: usize, depth: usize, visit: &mut dyn FnMut(&mut Self, usize, usize)) {
        if depth > MAXIMUM_SUBGRAPH_DEPTH {
            return;
        }
        let node_count = self.graphs.get(graph).map_or(0, |graph| graph.nodes.len());
        for position in 0..node_count {
            if let Some(Kind::Subgraph(inner)) = self.node(graph, position).map(|node| node.kind) {
                self.for_each_node(inner, depth + 1, visit);
            }
            visit(self, graph, position);
        }
    }

    /// `Comfy.WidgetInputs` `onGraphConfigured`: inputs of known nodes that claim a widget the
    /// node does not have are removed, with their link.
    fn on_graph_configured(&mut self, graph: usize, position: usize) {
        let Some(node) = self.node(graph, position) else {
            return;
        };
        let Kind::Known(definition) = node.kind else {
            return;
        };
        if self.frontend.is_v1_45() {
            self.show_loaded_audio(graph, position, definition);
        }
        let mut index = 0;
        while let Some(input) = self
            .node(graph, position)
            .and_then(|node| node.inputs.get(index))
            .cloned()
        {
            if let Some(name) = &input.widget
                && self
                    .node(graph, position)
                    .and_then(|node| node.widget(name))
                    .is_none()
            {
                let node_id = self
                    .node(graph, position)
                    .map(|node| node.id.clone())
                    .unwrap_or_default();
                self.remove_input(graph, position, index);
                self.events.push(LoadEvent::InputRemoved {
                    graph,
                    node: node_id,
                    input: input.name.clone(),
                });
                // A for-of loop over an array spliced in place skips the next element.
            }
            index += 1;
        }
    }

    /// `Comfy.UploadAudio` (1.45) points the audio player at the chosen file once the graph is
    /// configured: `/api/view?filename=...&type=input&subfolder=...&rand=<Math.random()>`. The
    /// random part cannot be reproduced; `0.5` stands in for it.
    fn show_loaded_audio(&mut self, graph: usize, position: usize, definition: &NodeDefinition) {
        let uploads = definition.inputs.iter().any(|spec| {
            spec.section == crate::object_info::InputSection::Required
                && spec.name == "audio"
                && spec.option("audio_upload").and_then(Value::as_bool) == Some(true)
        });
        if !uploads {
            return;
        }
        let Some(node) = self.node(graph, position) else {
            return;
        };
        let (Some(audio), Some(player)) = (node.widget("audio").cloned(), node.widget("audioUI").cloned())
        else {
            return;
        };
        let path = match self.value(&audio) {
            None | Some(Value::Null) => String::new(),
            Some(value) => js_string(&value),
        };
        let (subfolder, filename) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        let url = format!(
            "/api/view?filename={}&type=input&subfolder={subfolder}&rand=0.5",
            encode_uri_component(filename)
        );
        self.assign(&player, Some(Value::String(url)));
    }

    /// `LGraphNode.removeInput`: disconnects the input, removes it, and renumbers the links of the
    /// inputs after it.
    fn remove_input(&mut self, graph: usize, position: usize, index: usize) {
        let Some(live_graph) = self.graphs.get_mut(graph) else {
            return;
        };
        let Some(node) = live_graph.nodes.get_mut(position) else {
            return;
        };
        if index >= node.inputs.len() {
            return;
        }
        let removed = node.inputs.remove(index);
        let later: Vec<i64> = node
            .inputs
            .iter()
            .skip(index)
            .filter_map(|input| input.link)
            .collect();
        if let Some(link_id) = removed.link
            && let Some(link) = live_graph.links.remove(&link_id)
        {
            if link.origin_id == SUBGRAPH_INPUT_NODE {
                for slot in &mut live_graph.inputs {
                    slot.link_ids.retain(|id| *id != link_id);
                }
            } else if let Some(origin) = live_graph.node_position(&link.origin_id)
                && let Some(output) = usize::try_from(link.origin_slot)
                    .ok()
                    .and_then(|slot| live_graph.nodes.get_mut(origin)?.outputs.get_mut(slot))
            {
                output.links.retain(|id| *id != link_id);
            }
        }
        for link_id in later {
            if let Some(link) = live_graph.links.get_mut(&link_id) {
                link.target_slot -= 1;
            }
        }
    }

    /// `PrimitiveNode.onAfterGraphConfigured`: builds the widget from the first target's widget
    /// definition, with the target's value, then takes the saved values.
    fn on_after_graph_configured(&mut self, graph: usize, position: usize) {
        let Some(node) = self.node(graph, position) else {
            return;
        };
        if !matches!(node.kind, Kind::Primitive)
            || node.widgets.as_ref().is_some_and(|widgets| !widgets.is_empty())
        {
            return;
        }
        let Some(&first_link) = node.outputs.first().and_then(|output| output.links.first()) else {
            return;
        };
        let saved = node.saved;
        let Some(live_graph) = self.graphs.get(graph) else {
            return;
        };
        let Some(link) = live_graph.links.get(&first_link) else {
            return;
        };
        let Some(target) = live_graph.node_position(&link.target_id) else {
            return;
        };
        let Some(input) = usize::try_from(link.target_slot)
            .ok()
            .and_then(|slot| live_graph.nodes.get(target)?.inputs.get(slot))
            .cloned()
        else {
            return;
        };
        let (widget_name, template) = match &input.widget {
            Some(name) => {
                let Some(template) = self.widget_config(graph, target, &input, name) else {
                    return;
                };
                (name.clone(), template)
            }
            None => {
                if !CORE_WIDGET_TYPES.contains(&input.type_name.as_str()) {
                    return;
                }
                (input.name.clone(), fake_template(&input.type_name))
            }
        };
        let mut widget = self.widget_from_template(&template);
        widget.name = "value".to_owned();
        widget.upload = None;
        widget.serialize = Serialize::Raw;
        let their_value = self
            .node(graph, target)
            .and_then(|node| node.widget(&widget_name))
            .cloned()
            .map(|their| self.value(&their));
        if let Some(value) = their_value {
            self.assign(&widget, value);
        }
        let mut widgets = vec![widget];
        let control = template
            .spec
            .is_some_and(|spec| js_truthy(spec.option("control_after_generate")));
        if !control && matches!(template.widget_type, WidgetType::Number | WidgetType::Combo) {
            for extra in ["control_after_generate", "control_filter_list"].iter().take(
                if template.widget_type == WidgetType::Combo {
                    2
                } else {
                    1
                },
            ) {
                let cell = self.new_cell(Some(Value::String(String::new())));
                widgets.push(Widget {
                    name: (*extra).to_owned(),
                    cell,
                    persisted: true,
                    sent: false,
                    setter: Setter::Plain,
                    callback: Callback::None,
                    serialize: Serialize::Raw,
                    widget_type: WidgetType::Other,
                    upload: None,
                    spec: None,
                    browser_produced: false,
                    proxy: false,
                    loaded: false,
                    placeholder: false,
                });
            }
        }
        if let Value::Array(values) = &saved.widgets_values {
            for (widget, value) in widgets.clone().iter().zip(values) {
                self.assign(widget, Some(js_value(value)));
            }
        }
        if let Some(node) = self.node_mut(graph, position) {
            node.widgets = Some(widgets);
        }
    }

    /// The widget definition (`widget[GET_CONFIG]()`) behind a target input, as a template.
    fn widget_config(
        &self,
        graph: usize,
        target: usize,
        input: &Slot,
        name: &str,
    ) -> Option<WidgetTemplate<'w>> {
        let node = self.node(graph, target)?;
        let source = match node.kind {
            Kind::Known(_) => node.widget(name)?.clone(),
            // An instance input's widget locator inherits the inner input's configuration.
            Kind::Subgraph(inner) => self.promotable_widget(inner, &input.name)?,
            _ => return None,
        };
        source.spec?;
        Some(WidgetTemplate {
            name: "value".to_owned(),
            spec: source.spec,
            default: source.spec.and_then(|spec| spec.default_value().cloned()),
            persisted: true,
            sent: true,
            setter: source.setter,
            callback: source.callback,
            serialize: Serialize::Raw,
            widget_type: source.widget_type,
            upload: None,
            browser_produced: false,
        })
    }

    /// The loader's fixes on root nodes: `sample_` sampler prefixes on KSamplers.
    ///
    /// 1.32 fixes the root's nodes only; 1.45 every node, inside subgraphs too, and also gives a
    /// combo without a value (`null`) its first option.
    fn apply_legacy_fixes(&mut self) {
        let graph_count = if self.frontend.is_v1_45() {
            self.graphs.len()
        } else {
            1
        };
        for graph in 0..graph_count {
            let node_count = self.graphs.get(graph).map_or(0, |live| live.nodes.len());
            for position in 0..node_count {
                self.apply_node_fixes(graph, position);
            }
        }
    }

    fn apply_node_fixes(&mut self, graph: usize, position: usize) {
        let Some(node) = self.node(graph, position) else {
            return;
        };
        if matches!(node.type_name.as_str(), "KSampler" | "KSamplerAdvanced")
            && let Some(widget) = node.widget("sampler_name").cloned()
            && let Some(Value::String(text)) = self.value(&widget)
            && let Some(stripped) = text.strip_prefix("sample_")
        {
            self.assign(&widget, Some(Value::String(stripped.to_owned())));
        }
        if !self.frontend.is_v1_45() {
            return;
        }
        let combos: Vec<(Widget<'w>, Value)> = self
            .node(graph, position)
            .and_then(|node| node.widgets.as_ref())
            .into_iter()
            .flatten()
            .filter(|widget| widget.widget_type == WidgetType::Combo)
            .filter_map(|widget| {
                let first = match &widget.spec?.kind {
                    InputKind::Combo(Some(choices)) => choices.first()?.clone(),
                    _ => return None,
                };
                Some((widget.clone(), first))
            })
            .collect();
        for (widget, first) in combos {
            if matches!(self.value(&widget), None | Some(Value::Null)) {
                self.assign(&widget, Some(first));
            }
        }
    }
}

impl<'w> LiveGraph<'w> {
    fn new(source: &'w UiGraph) -> Self {
        LiveGraph {
            source,
            nodes: Vec::new(),
            positions: source.positions.clone(),
            links: source.links.clone(),
            inputs: source.subgraph_inputs.clone(),
            outputs: source.subgraph_outputs.clone(),
            instances: Vec::new(),
        }
    }
}

/// A primitive node's widget for a target input without a widget (`[type, {}]`).
fn fake_template(type_name: &str) -> WidgetTemplate<'static> {
    let (default, widget_type, callback) = match type_name {
        "INT" => (
            Value::from(0),
            WidgetType::Number,
            Callback::Int { step: 1.0, min: 0.0 },
        ),
        "FLOAT" => (
            Value::from(0),
            WidgetType::Number,
            Callback::Float {
                round: Some(0.1),
                precision: Some(1.0),
                min: 0.0,
                max: 2048.0,
            },
        ),
        "BOOLEAN" => (Value::Bool(false), WidgetType::Other, Callback::None),
        "COMBO" => (Value::Null, WidgetType::Combo, Callback::None),
        _ => (Value::String(String::new()), WidgetType::Other, Callback::None),
    };
    WidgetTemplate {
        name: "value".to_owned(),
        spec: None,
        default: Some(default),
        persisted: true,
        sent: true,
        setter: Setter::Plain,
        callback,
        serialize: Serialize::Raw,
        widget_type,
        upload: None,
        browser_produced: false,
    }
}

fn saved_inputs(node: &UiNode) -> Vec<Slot> {
    node.inputs
        .iter()
        .map(|input| Slot {
            name: input.name.clone(),
            type_name: input.type_name.clone(),
            link: input.link,
            widget: input.widget_name.clone(),
        })
        .collect()
}

/// Declared outputs (name, type) by index, each keeping the links of the saved slot at its index;
/// saved slots beyond the declared ones are kept as saved.
fn merge_outputs<'a>(
    declared: impl Iterator<Item = (&'a str, &'a str)>,
    saved: Vec<OutSlot>,
) -> Vec<OutSlot> {
    let mut saved = saved.into_iter();
    let mut outputs: Vec<OutSlot> = declared
        .map(|(name, type_name)| OutSlot {
            name: name.to_owned(),
            type_name: type_name.to_owned(),
            links: saved.next().map(|slot| slot.links).unwrap_or_default(),
        })
        .collect();
    outputs.extend(saved);
    outputs
}

fn saved_outputs(node: &UiNode) -> Vec<OutSlot> {
    node.outputs
        .iter()
        .map(|output| OutSlot {
            name: output.name.clone(),
            type_name: output.type_name.clone(),
            links: output.links.clone(),
        })
        .collect()
}

/// `cloneObject(saved, current)`: saved entries replace the current ones by index.
fn overlay_outputs(outputs: &mut Vec<OutSlot>, node: &UiNode) {
    for (index, output) in saved_outputs(node).into_iter().enumerate() {
        match outputs.get_mut(index) {
            Some(slot) => *slot = output,
            None => outputs.push(output),
        }
    }
}

/// True when some settable input is a V3 dynamic combo, whose widgets depend on its value.
fn has_dynamic_combo(definition: &NodeDefinition) -> bool {
    definition
        .settable_inputs()
        .any(|spec| matches!(spec.kind, InputKind::DynamicCombo(_)))
}
