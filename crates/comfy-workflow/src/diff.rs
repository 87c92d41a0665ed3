//! Structural diff and three-way merge of API prompts, for preset versions: what changed between
//! two versions (nodes, classes, inputs, links), and combining two edits of one base with the
//! conflicts spelled out per node and input.
//!
//! Values are compared the way ComfyUI reads them, so `8` and `8.0` are the same value.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::coerce::python_equal;
use crate::diagnostic::compare_node_ids;
use crate::graph::{ApiPrompt, InputValue, Node};

/// One difference between two prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    NodeAdded {
        node_id: String,
        class_type: String,
    },
    NodeRemoved {
        node_id: String,
        class_type: String,
    },
    ClassChanged {
        node_id: String,
        old: String,
        new: String,
    },
    /// A constant input was added, removed or changed.
    InputChanged {
        node_id: String,
        input: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    /// An input gained, lost or changed a link (either side is a link).
    LinkRewired {
        node_id: String,
        input: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    TitleChanged {
        node_id: String,
        old: Option<String>,
        new: Option<String>,
    },
}

impl Change {
    pub fn node_id(&self) -> &str {
        match self {
            Change::NodeAdded { node_id, .. }
            | Change::NodeRemoved { node_id, .. }
            | Change::ClassChanged { node_id, .. }
            | Change::InputChanged { node_id, .. }
            | Change::LinkRewired { node_id, .. }
            | Change::TitleChanged { node_id, .. } => node_id,
        }
    }
}

/// All differences from one prompt to another, ordered by node id.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GraphDiff {
    pub changes: Vec<Change>,
}

impl GraphDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

fn values_equal(left: Option<&Value>, right: Option<&Value>) -> bool {
    match (left, right) {
        (None, None) => true,
        (Some(left), Some(right)) => python_equal(left, right),
        _ => false,
    }
}

fn is_link(value: Option<&Value>) -> bool {
    value.is_some_and(|value| matches!(InputValue::from_json(value), InputValue::Link(_)))
}

fn nodes_equal(left: Option<&Node>, right: Option<&Node>) -> bool {
    match (left, right) {
        (None, None) => true,
        (Some(left), Some(right)) => {
            left.class_type == right.class_type
                && left.title() == right.title()
                && left.inputs.len() == right.inputs.len()
                && left
                    .inputs
                    .iter()
                    .all(|(name, value)| values_equal(Some(value), right.inputs.get(name)))
        }
        _ => false,
    }
}

fn sorted_union<'a>(
    left: impl Iterator<Item = &'a String>,
    right: impl Iterator<Item = &'a String>,
) -> Vec<&'a String> {
    let mut all: Vec<&String> = left.chain(right).collect::<BTreeSet<_>>().into_iter().collect();
    all.sort_by(|left, right| compare_node_ids(left, right));
    all
}

/// What changed from `old` to `new`.
pub fn diff(old: &ApiPrompt, new: &ApiPrompt) -> GraphDiff {
    let mut changes = Vec::new();
    for node_id in sorted_union(old.nodes.keys(), new.nodes.keys()) {
        match (old.get(node_id), new.get(node_id)) {
            (None, Some(added)) => changes.push(Change::NodeAdded {
                node_id: node_id.clone(),
                class_type: added.class_type.clone(),
            }),
            (Some(removed), None) => changes.push(Change::NodeRemoved {
                node_id: node_id.clone(),
                class_type: removed.class_type.clone(),
            }),
            (Some(before), Some(after)) => diff_node(node_id, before, after, &mut changes),
            (None, None) => {}
        }
    }
    GraphDiff { changes }
}

fn diff_node(node_id: &str, before: &Node, after: &Node, changes: &mut Vec<Change>) {
    if before.class_type != after.class_type {
        changes.push(Change::ClassChanged {
            node_id: node_id.to_owned(),
            old: before.class_type.clone(),
            new: after.class_type.clone(),
        });
    }
    if before.title() != after.title() {
        changes.push(Change::TitleChanged {
            node_id: node_id.to_owned(),
            old: before.title().map(str::to_owned),
            new: after.title().map(str::to_owned),
        });
    }
    let mut names: Vec<&String> = before.inputs.keys().chain(after.inputs.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let old = before.inputs.get(name);
        let new = after.inputs.get(name);
        if values_equal(old, new) {
            continue;
        }
        let (node_id, input, old, new) = (node_id.to_owned(), name.clone(), old.cloned(), new.cloned());
        changes.push(if is_link(old.as_ref()) || is_link(new.as_ref()) {
            Change::LinkRewired {
                node_id,
                input,
                old,
                new,
            }
        } else {
            Change::InputChanged {
                node_id,
                input,
                old,
                new,
            }
        });
    }
}

/// What kind of disagreement a conflict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// One side deleted the node, the other changed it.
    NodeDeletedAndModified,
    /// Both sides added a node under the same id with different content.
    NodeAddedDifferently,
    /// Both sides changed the class differently.
    ClassChanged,
    /// Both sides changed one input differently.
    InputChanged,
    TitleChanged,
    /// The merged prompt links to a node that one side deleted.
    DanglingLink,
}

/// One place where the two edits disagree. The merged prompt holds "ours" there (or, for a
/// deleted-and-modified node, the modified node), so callers can present or override it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    pub kind: ConflictKind,
    pub base: Option<Value>,
    pub ours: Option<Value>,
    pub theirs: Option<Value>,
}

/// The result of a three-way merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeResult {
    pub merged: ApiPrompt,
    pub conflicts: Vec<Conflict>,
}

impl MergeResult {
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty()
    }
}

/// The three-way choice for one item: the side that changed it, or `None` on a real conflict.
fn choose<'a, T: ?Sized>(
    base: Option<&'a T>,
    ours: Option<&'a T>,
    theirs: Option<&'a T>,
    equal: impl Fn(Option<&T>, Option<&T>) -> bool,
) -> Option<Option<&'a T>> {
    if equal(ours, theirs) || equal(base, theirs) {
        Some(ours)
    } else if equal(base, ours) {
        Some(theirs)
    } else {
        None
    }
}

fn node_json(node: Option<&Node>) -> Option<Value> {
    node.and_then(|node| serde_json::to_value(node).ok())
}

/// Merges the edits `ours` and `theirs` made to `base`.
pub fn merge(base: &ApiPrompt, ours: &ApiPrompt, theirs: &ApiPrompt) -> MergeResult {
    let mut merged = ApiPrompt::new();
    let mut conflicts = Vec::new();
    let mut all_ids: Vec<&String> = base
        .nodes
        .keys()
        .chain(ours.nodes.keys())
        .chain(theirs.nodes.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    all_ids.sort_by(|left, right| compare_node_ids(left, right));
    for node_id in all_ids {
        let (base_node, our_node, their_node) = (base.get(node_id), ours.get(node_id), theirs.get(node_id));
        if let Some(chosen) = choose(base_node, our_node, their_node, nodes_equal) {
            if let Some(node) = chosen {
                merged.nodes.insert(node_id.clone(), node.clone());
            }
            continue;
        }
        let conflict = |kind: ConflictKind| Conflict {
            node_id: node_id.clone(),
            input: None,
            kind,
            base: node_json(base_node),
            ours: node_json(our_node),
            theirs: node_json(their_node),
        };
        match (base_node, our_node, their_node) {
            (Some(_), None, Some(kept)) | (Some(_), Some(kept), None) => {
                // Keeping the modified node loses nothing; the caller can delete it again.
                conflicts.push(conflict(ConflictKind::NodeDeletedAndModified));
                merged.nodes.insert(node_id.clone(), kept.clone());
            }
            (base_node, Some(our_node), Some(their_node)) => {
                if base_node.is_none() && our_node.class_type != their_node.class_type {
                    conflicts.push(conflict(ConflictKind::NodeAddedDifferently));
                    merged.nodes.insert(node_id.clone(), our_node.clone());
                    continue;
                }
                let node = merge_node(node_id, base_node, our_node, their_node, &mut conflicts);
                merged.nodes.insert(node_id.clone(), node);
            }
            _ => {}
        }
    }
    report_dangling_links(&merged, base, ours, theirs, &mut conflicts);
    MergeResult { merged, conflicts }
}

fn merge_node(
    node_id: &str,
    base: Option<&Node>,
    ours: &Node,
    theirs: &Node,
    conflicts: &mut Vec<Conflict>,
) -> Node {
    let base_class = base.map(|node| node.class_type.as_str());
    let class = choose(
        base_class,
        Some(ours.class_type.as_str()),
        Some(theirs.class_type.as_str()),
        |left, right| left == right,
    );
    let Some(Some(class_type)) = class else {
        conflicts.push(Conflict {
            node_id: node_id.to_owned(),
            input: None,
            kind: ConflictKind::ClassChanged,
            base: base_class.map(Value::from),
            ours: Some(Value::from(ours.class_type.as_str())),
            theirs: Some(Value::from(theirs.class_type.as_str())),
        });
        // Inputs of different classes do not combine meaningfully; keep our node whole.
        return ours.clone();
    };
    let mut node = Node::new(class_type);
    node.meta = ours.meta.clone();
    let base_title = base.and_then(Node::title);
    match choose(base_title, ours.title(), theirs.title(), |left, right| {
        left == right
    }) {
        Some(title) => {
            if title != ours.title() {
                node.meta = theirs.meta.clone();
            }
        }
        None => conflicts.push(Conflict {
            node_id: node_id.to_owned(),
            input: None,
            kind: ConflictKind::TitleChanged,
            base: base_title.map(Value::from),
            ours: ours.title().map(Value::from),
            theirs: theirs.title().map(Value::from),
        }),
    }
    let empty = serde_json::Map::new();
    let base_inputs = base.map_or(&empty, |node| &node.inputs);
    let mut names: Vec<&String> = base_inputs
        .keys()
        .chain(ours.inputs.keys())
        .chain(theirs.inputs.keys())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let (base_value, our_value, their_value) = (
            base_inputs.get(name),
            ours.inputs.get(name),
            theirs.inputs.get(name),
        );
        match choose(base_value, our_value, their_value, values_equal) {
            Some(Some(value)) => {
                node.inputs.insert(name.clone(), value.clone());
            }
            Some(None) => {}
            None => {
                conflicts.push(Conflict {
                    node_id: node_id.to_owned(),
                    input: Some(name.clone()),
                    kind: ConflictKind::InputChanged,
                    base: base_value.cloned(),
                    ours: our_value.cloned(),
                    theirs: their_value.cloned(),
                });
                if let Some(value) = our_value {
                    node.inputs.insert(name.clone(), value.clone());
                }
            }
        }
    }
    node
}

/// A merge can combine "they deleted node X" with "we linked to X"; such links are reported.
fn report_dangling_links(
    merged: &ApiPrompt,
    base: &ApiPrompt,
    ours: &ApiPrompt,
    theirs: &ApiPrompt,
    conflicts: &mut Vec<Conflict>,
) {
    for (node_id, node) in &merged.nodes {
        for (input, link) in node.links() {
            if merged.nodes.contains_key(&link.node_id) {
                continue;
            }
            // Links that were already dangling in every version are not the merge's doing.
            let dangling_everywhere = [base, ours, theirs].iter().all(|prompt| {
                prompt
                    .get(node_id)
                    .and_then(|node| node.inputs.get(input))
                    .is_some_and(|value| matches!(InputValue::from_json(value), InputValue::Link(ref other) if other.node_id == link.node_id))
                    && !prompt.nodes.contains_key(&link.node_id)
            });
            if dangling_everywhere {
                continue;
            }
            let input_value = |prompt: &ApiPrompt| {
                prompt
                    .get(node_id)
                    .and_then(|node| node.inputs.get(input))
                    .cloned()
            };
            conflicts.push(Conflict {
                node_id: node_id.clone(),
                input: Some(input.to_owned()),
                kind: ConflictKind::DanglingLink,
                base: input_value(base),
                ours: input_value(ours),
                theirs: input_value(theirs),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::txt2img;
    use serde_json::json;

    fn set(prompt: &mut ApiPrompt, node_id: &str, input: &str, value: Value) {
        prompt
            .get_mut(node_id)
            .unwrap()
            .inputs
            .insert(input.to_owned(), value);
    }

    #[test]
    fn identical_prompts_have_no_diff() {
        assert!(diff(&txt2img(), &txt2img()).is_empty());
        let mut float_steps = txt2img();
        set(&mut float_steps, "3", "steps", json!(20.0));
        assert!(diff(&txt2img(), &float_steps).is_empty());
    }

    #[test]
    fn diff_names_every_kind_of_change() {
        let old = txt2img();
        let mut new = txt2img();
        set(&mut new, "3", "steps", json!(30));
        set(&mut new, "8", "samples", json!(["10", 0]));
        new.get_mut("6").unwrap().inputs.remove("text");
        new.nodes.remove("7");
        new.get_mut("4").unwrap().class_type = "CheckpointLoader".into();
        new.get_mut("5").unwrap().meta = Node::new("x").with_title("Size").meta;
        new.nodes.insert(
            "10".into(),
            Node::new("LatentUpscale").with_link("samples", "3", 0),
        );
        let changes = diff(&old, &new).changes;
        assert_eq!(
            changes,
            [
                Change::InputChanged {
                    node_id: "3".into(),
                    input: "steps".into(),
                    old: Some(json!(20)),
                    new: Some(json!(30))
                },
                Change::ClassChanged {
                    node_id: "4".into(),
                    old: "CheckpointLoaderSimple".into(),
                    new: "CheckpointLoader".into()
                },
                Change::TitleChanged {
                    node_id: "5".into(),
                    old: None,
                    new: Some("Size".into())
                },
                Change::InputChanged {
                    node_id: "6".into(),
                    input: "text".into(),
                    old: Some(json!("masterpiece best quality girl")),
                    new: None
                },
                Change::NodeRemoved {
                    node_id: "7".into(),
                    class_type: "CLIPTextEncode".into()
                },
                Change::LinkRewired {
                    node_id: "8".into(),
                    input: "samples".into(),
                    old: Some(json!(["3", 0])),
                    new: Some(json!(["10", 0]))
                },
                Change::NodeAdded {
                    node_id: "10".into(),
                    class_type: "LatentUpscale".into()
                },
            ]
        );
        let json = serde_json::to_value(&changes[0]).unwrap();
        assert_eq!(json["kind"], "input_changed");
    }

    #[test]
    fn independent_edits_merge_cleanly() {
        let base = txt2img();
        let mut ours = txt2img();
        set(&mut ours, "3", "steps", json!(30));
        ours.nodes
            .insert("10".into(), Node::new("PreviewImage").with_link("images", "8", 0));
        let mut theirs = txt2img();
        set(&mut theirs, "3", "cfg", json!(5.5));
        set(&mut theirs, "6", "text", json!("a cat"));
        theirs.nodes.remove("9");
        let result = merge(&base, &ours, &theirs);
        assert!(result.is_clean(), "{:#?}", result.conflicts);
        let sampler = result.merged.get("3").unwrap();
        assert_eq!(sampler.inputs["steps"], 30);
        assert_eq!(sampler.inputs["cfg"], 5.5);
        assert_eq!(result.merged.get("6").unwrap().inputs["text"], "a cat");
        assert!(result.merged.get("9").is_none());
        assert!(result.merged.get("10").is_some());
    }

    #[test]
    fn same_edit_on_both_sides_is_not_a_conflict() {
        let base = txt2img();
        let mut ours = txt2img();
        set(&mut ours, "3", "steps", json!(30));
        let mut theirs = txt2img();
        set(&mut theirs, "3", "steps", json!(30.0));
        assert!(merge(&base, &ours, &theirs).is_clean());
    }

    #[test]
    fn conflicting_inputs_are_reported_per_input() {
        let base = txt2img();
        let mut ours = txt2img();
        set(&mut ours, "3", "steps", json!(30));
        set(&mut ours, "3", "seed", json!(1));
        let mut theirs = txt2img();
        set(&mut theirs, "3", "steps", json!(40));
        let result = merge(&base, &ours, &theirs);
        assert_eq!(result.conflicts.len(), 1);
        let conflict = &result.conflicts[0];
        assert_eq!(conflict.kind, ConflictKind::InputChanged);
        assert_eq!(conflict.input.as_deref(), Some("steps"));
        assert_eq!(
            (
                conflict.base.clone(),
                conflict.ours.clone(),
                conflict.theirs.clone()
            ),
            (Some(json!(20)), Some(json!(30)), Some(json!(40)))
        );
        assert_eq!(result.merged.get("3").unwrap().inputs["steps"], 30);
        assert_eq!(result.merged.get("3").unwrap().inputs["seed"], 1);
    }

    #[test]
    fn deleted_and_modified_keeps_the_modified_node() {
        let base = txt2img();
        let mut ours = txt2img();
        ours.nodes.remove("7");
        set(&mut ours, "3", "negative", json!(["6", 0]));
        let mut theirs = txt2img();
        set(&mut theirs, "7", "text", json!("blurry"));
        let result = merge(&base, &ours, &theirs);
        assert_eq!(result.conflicts.len(), 1);
        assert_eq!(result.conflicts[0].kind, ConflictKind::NodeDeletedAndModified);
        assert_eq!(result.merged.get("7").unwrap().inputs["text"], "blurry");
    }

    #[test]
    fn both_adding_the_same_id_differently_conflicts() {
        let base = txt2img();
        let mut ours = txt2img();
        ours.nodes
            .insert("10".into(), Node::new("PreviewImage").with_link("images", "8", 0));
        let mut theirs = txt2img();
        theirs
            .nodes
            .insert("10".into(), Node::new("ImageInvert").with_link("image", "8", 0));
        let result = merge(&base, &ours, &theirs);
        assert_eq!(result.conflicts[0].kind, ConflictKind::NodeAddedDifferently);
        assert_eq!(result.merged.get("10").unwrap().class_type, "PreviewImage");
    }

    #[test]
    fn class_conflicts_keep_our_node() {
        let base = txt2img();
        let mut ours = txt2img();
        ours.get_mut("3").unwrap().class_type = "KSamplerAdvanced".into();
        let mut theirs = txt2img();
        theirs.get_mut("3").unwrap().class_type = "SamplerCustom".into();
        let result = merge(&base, &ours, &theirs);
        assert_eq!(result.conflicts[0].kind, ConflictKind::ClassChanged);
        assert_eq!(result.merged.get("3").unwrap().class_type, "KSamplerAdvanced");
    }

    #[test]
    fn links_to_nodes_deleted_by_the_other_side_are_reported() {
        let base = txt2img();
        let mut ours = txt2img();
        ours.nodes
            .insert("10".into(), Node::new("PreviewImage").with_link("images", "8", 0));
        let mut theirs = txt2img();
        theirs.nodes.remove("8");
        theirs.nodes.remove("9");
        let result = merge(&base, &ours, &theirs);
        assert_eq!(result.conflicts.len(), 1);
        assert_eq!(result.conflicts[0].kind, ConflictKind::DanglingLink);
        assert_eq!(result.conflicts[0].node_id, "10");
    }
}
