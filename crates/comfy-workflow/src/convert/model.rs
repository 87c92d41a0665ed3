//! A lenient reading of the UI (litegraph) workflow JSON: nodes, links in both the array form
//! (version 0.4) and the object form (version 1 and subgraph definitions), and subgraph
//! definitions. Anything malformed is reported as a problem instead of failing the whole file.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Node ids of a subgraph's input and output pseudo-nodes.
pub const SUBGRAPH_INPUT_NODE: &str = "-10";
pub const SUBGRAPH_OUTPUT_NODE: &str = "-20";

/// Node modes that remove a node from the prompt.
pub const MODE_MUTED: i64 = 2;
pub const MODE_BYPASSED: i64 = 4;

/// One input slot of a UI node.
#[derive(Debug, Clone)]
pub struct UiInput {
    pub name: String,
    pub type_name: String,
    pub link: Option<i64>,
    /// Set when the slot belongs to a widget (a "converted widget" input).
    pub widget_name: Option<String>,
}

/// One output slot of a UI node.
#[derive(Debug, Clone)]
pub struct UiOutput {
    pub name: String,
    pub type_name: String,
    pub links: Vec<i64>,
}

/// One node of a UI graph.
#[derive(Debug, Clone)]
pub struct UiNode {
    pub id: String,
    pub type_name: String,
    pub mode: i64,
    pub title: Option<String>,
    pub inputs: Vec<UiInput>,
    pub outputs: Vec<UiOutput>,
    pub widgets_values: Value,
    pub properties: Map<String, Value>,
}

impl UiNode {
    pub fn property_text(&self, key: &str) -> Option<&str> {
        self.properties.get(key).and_then(Value::as_str)
    }

    pub fn is_disabled(&self) -> bool {
        self.mode == MODE_MUTED || self.mode == MODE_BYPASSED
    }
}

/// One link of a UI graph.
#[derive(Debug, Clone, PartialEq)]
pub struct UiLink {
    pub origin_id: String,
    pub origin_slot: i64,
    pub target_id: String,
    pub target_slot: i64,
    pub type_name: String,
}

/// An input or output slot of a subgraph definition.
#[derive(Debug, Clone)]
pub struct SubgraphSlot {
    pub name: String,
    pub type_name: String,
    pub link_ids: Vec<i64>,
}

/// A graph: the root workflow or one subgraph definition.
#[derive(Debug, Clone, Default)]
pub struct UiGraph {
    /// The subgraph's name (the default title of its instances); empty for the root.
    pub name: String,
    pub nodes: Vec<UiNode>,
    pub positions: BTreeMap<String, usize>,
    pub links: BTreeMap<i64, UiLink>,
    pub subgraph_inputs: Vec<SubgraphSlot>,
    pub subgraph_outputs: Vec<SubgraphSlot>,
}

impl UiGraph {
    pub fn node(&self, node_id: &str) -> Option<(usize, &UiNode)> {
        let position = *self.positions.get(node_id)?;
        Some((position, self.nodes.get(position)?))
    }
}

/// The whole workflow: the root graph and the subgraph definitions by id.
#[derive(Debug, Clone, Default)]
pub struct UiWorkflow {
    pub root: UiGraph,
    pub subgraphs: BTreeMap<String, UiGraph>,
    /// Subgraph definition ids in file order (the order the frontend configures them in).
    pub subgraph_order: Vec<String>,
}

/// Something in the file that could not be read, with the node it concerns when known.
#[derive(Debug, Clone)]
pub struct ParseProblem {
    pub node_id: Option<String>,
    pub message: String,
}

/// A node id as litegraph writes it: an integer, or a string inside subgraphs.
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => number
            .as_i64()
            .map(|integer| integer.to_string())
            .or_else(|| number.as_u64().map(|integer| integer.to_string()))
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|float| float.fract() == 0.0 && float.abs() < 9.0e15)
                    .map(|float| format!("{float:.0}"))
            }),
        _ => None,
    }
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|float| float.fract() == 0.0 && float.abs() < 9.0e15)
                .map(|float| {
                    #[allow(clippy::cast_possible_truncation)]
                    let whole = float as i64;
                    whole
                })
        }),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    }
}

fn parse_link(raw: &Value) -> Option<(i64, UiLink)> {
    match raw {
        Value::Array(parts) => {
            let id = integer(parts.first()?)?;
            Some((
                id,
                UiLink {
                    origin_id: id_text(parts.get(1)?)?,
                    origin_slot: integer(parts.get(2)?)?,
                    target_id: id_text(parts.get(3)?)?,
                    target_slot: integer(parts.get(4)?)?,
                    type_name: text(parts.get(5)),
                },
            ))
        }
        Value::Object(fields) => {
            let id = integer(fields.get("id")?)?;
            Some((
                id,
                UiLink {
                    origin_id: id_text(fields.get("origin_id")?)?,
                    origin_slot: integer(fields.get("origin_slot")?)?,
                    target_id: id_text(fields.get("target_id")?)?,
                    target_slot: integer(fields.get("target_slot")?)?,
                    type_name: text(fields.get("type")),
                },
            ))
        }
        _ => None,
    }
}

fn parse_node(raw: &Value) -> Option<UiNode> {
    let fields = raw.as_object()?;
    let id = id_text(fields.get("id")?)?;
    let inputs = fields
        .get("inputs")
        .and_then(Value::as_array)
        .map(|inputs| {
            inputs
                .iter()
                .filter_map(Value::as_object)
                .map(|input| UiInput {
                    name: text(input.get("name")),
                    type_name: text(input.get("type")),
                    link: input.get("link").and_then(integer),
                    widget_name: input
                        .get("widget")
                        .and_then(|widget| widget.get("name"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default();
    let outputs = fields
        .get("outputs")
        .and_then(Value::as_array)
        .map(|outputs| {
            outputs
                .iter()
                .filter_map(Value::as_object)
                .map(|output| UiOutput {
                    name: text(output.get("name")),
                    type_name: text(output.get("type")),
                    links: output
                        .get("links")
                        .and_then(Value::as_array)
                        .map(|links| links.iter().filter_map(integer).collect())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(UiNode {
        id,
        type_name: text(fields.get("type")),
        mode: fields.get("mode").and_then(integer).unwrap_or(0),
        title: fields.get("title").and_then(Value::as_str).map(str::to_owned),
        inputs,
        outputs,
        widgets_values: fields.get("widgets_values").cloned().unwrap_or(Value::Null),
        properties: fields
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    })
}

fn parse_slots(raw: Option<&Value>) -> Vec<SubgraphSlot> {
    raw.and_then(Value::as_array)
        .map(|slots| {
            slots
                .iter()
                .filter_map(Value::as_object)
                .map(|slot| SubgraphSlot {
                    name: text(slot.get("name")),
                    type_name: text(slot.get("type")),
                    link_ids: slot
                        .get("linkIds")
                        .and_then(Value::as_array)
                        .map(|links| links.iter().filter_map(integer).collect())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn parse_graph(raw: &Value, problems: &mut Vec<ParseProblem>, context: &str) -> UiGraph {
    let mut graph = UiGraph::default();
    for (index, raw_node) in raw
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        match parse_node(raw_node) {
            Some(node) => {
                if graph.positions.contains_key(&node.id) {
                    problems.push(ParseProblem {
                        node_id: Some(node.id.clone()),
                        message: format!(
                            "{context}: duplicate node id {}; the later node is ignored",
                            node.id
                        ),
                    });
                    continue;
                }
                graph.positions.insert(node.id.clone(), graph.nodes.len());
                graph.nodes.push(node);
            }
            None => problems.push(ParseProblem {
                node_id: raw_node.get("id").and_then(id_text),
                message: format!("{context}: node #{index} has no usable id and is ignored"),
            }),
        }
    }
    for raw_link in raw.get("links").and_then(Value::as_array).into_iter().flatten() {
        match parse_link(raw_link) {
            Some((id, link)) => {
                graph.links.insert(id, link);
            }
            None if raw_link.is_null() => {}
            None => problems.push(ParseProblem {
                node_id: None,
                message: format!("{context}: unreadable link {raw_link} is ignored"),
            }),
        }
    }
    graph.subgraph_inputs = parse_slots(raw.get("inputs"));
    graph.subgraph_outputs = parse_slots(raw.get("outputs"));
    graph
}

/// Collects subgraph definitions, including definitions nested inside definitions.
fn collect_definitions(
    raw: &Value,
    workflow: &mut UiWorkflow,
    problems: &mut Vec<ParseProblem>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    for definition in raw
        .pointer("/definitions/subgraphs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = definition.get("id").and_then(Value::as_str) else {
            problems.push(ParseProblem {
                node_id: None,
                message: "a subgraph definition has no id and is ignored".to_owned(),
            });
            continue;
        };
        let name = definition.get("name").and_then(Value::as_str).unwrap_or(id);
        let mut graph = parse_graph(definition, problems, &format!("subgraph '{name}'"));
        graph.name = definition
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !workflow.subgraphs.contains_key(id) {
            workflow.subgraph_order.push(id.to_owned());
        }
        workflow.subgraphs.entry(id.to_owned()).or_insert(graph);
        collect_definitions(definition, workflow, problems, depth + 1);
    }
}

/// Reads a UI workflow.
pub fn parse_workflow(raw: &Value) -> (UiWorkflow, Vec<ParseProblem>) {
    let mut problems = Vec::new();
    let mut workflow = UiWorkflow {
        root: parse_graph(raw, &mut problems, "workflow"),
        subgraphs: BTreeMap::new(),
        subgraph_order: Vec::new(),
    };
    collect_definitions(raw, &mut workflow, &mut problems, 0);
    (workflow, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_both_link_forms() {
        let raw = json!({
            "nodes": [{"id": 1, "type": "A", "mode": 0}, {"id": "2", "type": "B", "mode": 4}],
            "links": [[5, 1, 0, 2, 0, "IMAGE"], {"id": 6, "origin_id": 1, "origin_slot": 1, "target_id": 2, "target_slot": 1, "type": "MASK"}, null, "junk"]
        });
        let (workflow, problems) = parse_workflow(&raw);
        assert_eq!(workflow.root.nodes.len(), 2);
        assert_eq!(workflow.root.links.len(), 2);
        assert_eq!(workflow.root.links[&6].type_name, "MASK");
        assert_eq!(workflow.root.node("2").unwrap().1.mode, 4);
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn tolerates_garbage() {
        for raw in [
            json!(null),
            json!([]),
            json!({"nodes": 5}),
            json!({"nodes": [1, {"id": null}]}),
        ] {
            let (workflow, _) = parse_workflow(&raw);
            assert!(workflow.root.nodes.is_empty());
        }
    }
}
