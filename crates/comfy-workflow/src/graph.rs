//! The API-format graph ("prompt") that ComfyUI's `POST /prompt` accepts: node id -> node.
//!
//! Node ids are always strings (ids from subgraphs look like `"75:12"`). An input value is either a
//! constant or a link `[source_node_id, output_index]`; ComfyUI treats any two-element list whose first
//! element is a string and second a number as a link, so constant lists must be wrapped as
//! `{"__value__": [...]}` (see [`InputValue::constant`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A link from an input to output `output_index` of node `node_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Link {
    pub node_id: String,
    pub output_index: u32,
}

/// The value of one node input, classified the way ComfyUI's `is_link` classifies it.
#[derive(Debug, Clone, PartialEq)]
pub enum InputValue {
    Link(Link),
    Constant(Value),
}

impl InputValue {
    /// Classifies a raw JSON input value.
    pub fn from_json(value: &Value) -> Self {
        if let Value::Array(items) = value
            && items.len() == 2
            && let (Value::String(node_id), Value::Number(index)) = (&items[0], &items[1])
            && let Some(output_index) = index.as_u64().or_else(|| index.as_f64().map(|f| f as u64))
        {
            return InputValue::Link(Link {
                node_id: node_id.clone(),
                output_index: u32::try_from(output_index).unwrap_or(u32::MAX),
            });
        }
        InputValue::Constant(value.clone())
    }

    /// The JSON for a constant, wrapping arrays in `{"__value__": [...]}` so ComfyUI does not read
    /// them as links.
    pub fn constant(value: Value) -> Value {
        match value {
            Value::Array(_) => {
                let mut wrapper = Map::new();
                wrapper.insert("__value__".to_owned(), value);
                Value::Object(wrapper)
            }
            other => other,
        }
    }
}

/// The JSON for a link input.
pub fn link_value(node_id: &str, output_index: u32) -> Value {
    Value::Array(vec![Value::String(node_id.to_owned()), Value::from(output_index)])
}

/// One node of an API prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Empty only for nodes the frontend sends without one (types it does not know); such a
    /// node is written without the key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub class_type: String,
    #[serde(default)]
    pub inputs: Map<String, Value>,
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<NodeMeta>,
}

/// The optional `_meta` block; ComfyUI ignores it, the frontend writes the node title there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NodeMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Node {
    pub fn new(class_type: impl Into<String>) -> Self {
        Node {
            class_type: class_type.into(),
            inputs: Map::new(),
            meta: None,
        }
    }

    /// Sets a constant input (arrays are wrapped, see [`InputValue::constant`]).
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.inputs
            .insert(name.to_owned(), InputValue::constant(value.into()));
        self
    }

    /// Sets a link input.
    pub fn with_link(mut self, name: &str, node_id: &str, output_index: u32) -> Self {
        self.inputs
            .insert(name.to_owned(), link_value(node_id, output_index));
        self
    }

    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.meta = Some(NodeMeta {
            title: Some(title.into()),
            other: Map::new(),
        });
        self
    }

    /// The title from `_meta`, if any.
    pub fn title(&self) -> Option<&str> {
        self.meta.as_ref().and_then(|meta| meta.title.as_deref())
    }

    /// The links among this node's inputs, by input name.
    pub fn links(&self) -> impl Iterator<Item = (&str, Link)> {
        self.inputs
            .iter()
            .filter_map(|(name, value)| match InputValue::from_json(value) {
                InputValue::Link(link) => Some((name.as_str(), link)),
                InputValue::Constant(_) => None,
            })
    }
}

/// An API-format prompt: node id -> node, in a stable (sorted) order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct ApiPrompt {
    pub nodes: BTreeMap<String, Node>,
}

impl ApiPrompt {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node under the next free numeric id and returns that id.
    pub fn add(&mut self, node: Node) -> String {
        let next = self
            .nodes
            .keys()
            .filter_map(|id| id.parse::<u64>().ok())
            .max()
            .map_or(1, |max| max + 1);
        let id = next.to_string();
        self.nodes.insert(id.clone(), node);
        id
    }

    pub fn get(&self, node_id: &str) -> Option<&Node> {
        self.nodes.get(node_id)
    }

    pub fn get_mut(&mut self, node_id: &str) -> Option<&mut Node> {
        self.nodes.get_mut(node_id)
    }

    /// Node ids whose class is one of `class_types`.
    pub fn nodes_of_class<'a>(
        &'a self,
        class_types: &'a [&str],
    ) -> impl Iterator<Item = (&'a str, &'a Node)> {
        self.nodes
            .iter()
            .filter(move |(_, node)| class_types.contains(&node.class_type.as_str()))
            .map(|(id, node)| (id.as_str(), node))
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn links_are_classified_like_comfyui() {
        assert!(matches!(
            InputValue::from_json(&json!(["4", 0])),
            InputValue::Link(_)
        ));
        assert!(matches!(
            InputValue::from_json(&json!([4, 0])),
            InputValue::Constant(_)
        ));
        assert!(matches!(
            InputValue::from_json(&json!(["a", "b"])),
            InputValue::Constant(_)
        ));
        assert!(matches!(
            InputValue::from_json(&json!(["4", 0, 1])),
            InputValue::Constant(_)
        ));
    }

    #[test]
    fn constant_arrays_are_wrapped() {
        let node = Node::new("X").with("list", json!([1, 2]));
        assert_eq!(node.inputs["list"], json!({"__value__": [1, 2]}));
    }

    #[test]
    fn add_uses_next_numeric_id() {
        let mut prompt = ApiPrompt::new();
        assert_eq!(prompt.add(Node::new("A")), "1");
        prompt.nodes.insert("9".into(), Node::new("B"));
        assert_eq!(prompt.add(Node::new("C")), "10");
    }

    #[test]
    fn round_trips_json() {
        let raw = json!({"3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": 5}, "_meta": {"title": "K"}}});
        let prompt: ApiPrompt = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(prompt.get("3").unwrap().title(), Some("K"));
        assert_eq!(prompt.to_json(), raw);
    }
}
