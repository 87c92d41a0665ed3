//! Frontend 1.45's `deduplicateSubgraphNodeIds`, which the root graph's `configure` runs on the
//! saved data before it creates anything: an inner node of a subgraph definition whose numeric id
//! is already taken (by a root node, or by a node of a definition listed earlier) gets the next
//! free id after the graph's `lastNodeId`, and the definition's links, promoted widgets and the
//! `proxyWidgets` of its instances follow. The execution ids the server receives (`"2:107"`) use
//! the new ids. Frontend 1.32 keeps every id as saved.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// A JavaScript number that is an integer, the only ids this is about (`typeof id === "number"`;
/// string ids are left alone).
fn numeric_id(value: &Value) -> Option<i64> {
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
        _ => None,
    }
}

/// `state.lastNodeId` when the definitions are deduplicated: `clear()` zeroes it, a version 1 file
/// raises it to `state.lastNodeId`, and a `last_node_id` key (version 0.4) then sets it through
/// the setter, whatever it holds.
fn last_node_id(workflow: &Value) -> i64 {
    let mut last = 0;
    let version_04 = workflow.get("version").and_then(Value::as_f64) == Some(0.4);
    if !version_04
        && let Some(state) = workflow.get("state").and_then(|state| state.get("lastNodeId"))
        && !state.is_null()
    {
        last = last.max(js_number(state));
    }
    if let Some(value) = workflow.get("last_node_id") {
        last = js_number(value);
    }
    last
}

/// What `lastNodeId + 1` starts from for a saved value (`null` counts as 0).
fn js_number(value: &Value) -> i64 {
    match value {
        Value::String(text) => text.trim().parse().unwrap_or(0),
        Value::Bool(flag) => i64::from(*flag),
        other => numeric_id(other).unwrap_or(0),
    }
}

/// The workflow with colliding inner node ids renumbered as frontend 1.45 does, or `None` when no
/// id changes.
pub(super) fn deduplicate_subgraph_node_ids(workflow: &Value) -> Option<Value> {
    let definitions = workflow.pointer("/definitions/subgraphs")?.as_array()?;
    let mut used: BTreeSet<i64> = workflow
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|node| node.get("id").and_then(numeric_id))
        .collect();
    let mut last = last_node_id(workflow);
    // Per definition: old id -> new id, and the new id of each renumbered node (by position).
    let mut remaps: Vec<BTreeMap<i64, i64>> = Vec::new();
    let mut renumbered: Vec<Vec<(usize, i64)>> = Vec::new();
    for definition in definitions {
        let mut remap = BTreeMap::new();
        let mut nodes = Vec::new();
        for (position, node) in definition
            .get("nodes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(id) = node.get("id").and_then(numeric_id) else {
                continue;
            };
            if used.contains(&id) {
                loop {
                    last += 1;
                    if !used.contains(&last) {
                        break;
                    }
                }
                remap.insert(id, last);
                nodes.push((position, last));
                used.insert(last);
            } else {
                used.insert(id);
                last = last.max(id);
            }
        }
        remaps.push(remap);
        renumbered.push(nodes);
    }
    if remaps.iter().all(BTreeMap::is_empty) {
        return None;
    }
    let mut result = workflow.clone();
    // Definition id -> remap, for the proxyWidgets of instances. A later definition with the same
    // id replaces an earlier one, as the JavaScript Map does.
    let mut by_definition: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    if let Some(definitions) = result
        .pointer_mut("/definitions/subgraphs")
        .and_then(Value::as_array_mut)
    {
        for ((definition, remap), nodes) in definitions.iter_mut().zip(&remaps).zip(&renumbered) {
            if remap.is_empty() {
                continue;
            }
            if let Some(id) = definition.get("id").and_then(Value::as_str) {
                by_definition.insert(id.to_owned(), remap.clone());
            }
            renumber_definition(definition, remap, nodes);
        }
    }
    let definition_ids: BTreeSet<String> = result
        .pointer("/definitions/subgraphs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|definition| definition.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if let Some(definitions) = result
        .pointer_mut("/definitions/subgraphs")
        .and_then(Value::as_array_mut)
    {
        for definition in definitions {
            if let Some(nodes) = definition.get_mut("nodes").and_then(Value::as_array_mut) {
                patch_proxy_widgets(nodes, &definition_ids, &by_definition);
            }
        }
    }
    if let Some(nodes) = result.get_mut("nodes").and_then(Value::as_array_mut) {
        patch_proxy_widgets(nodes, &definition_ids, &by_definition);
    }
    Some(result)
}

/// `remapNodeIds`' writes, `patchSerialisedLinks` and `patchPromotedWidgets` for one definition.
fn renumber_definition(definition: &mut Value, remap: &BTreeMap<i64, i64>, renumbered: &[(usize, i64)]) {
    if let Some(nodes) = definition.get_mut("nodes").and_then(Value::as_array_mut) {
        for &(position, new) in renumbered {
            if let Some(id) = nodes.get_mut(position).and_then(|node| node.get_mut("id")) {
                *id = Value::from(new);
            }
        }
    }
    let renumber = |value: &mut Value| {
        if let Some(new) = numeric_id(value).and_then(|id| remap.get(&id)) {
            *value = Value::from(*new);
        }
    };
    if let Some(links) = definition.get_mut("links").and_then(Value::as_array_mut) {
        for link in links {
            if let Some(link) = link.as_object_mut() {
                if let Some(origin) = link.get_mut("origin_id") {
                    renumber(origin);
                }
                if let Some(target) = link.get_mut("target_id") {
                    renumber(target);
                }
            }
        }
    }
    if let Some(widgets) = definition.get_mut("widgets").and_then(Value::as_array_mut) {
        for widget in widgets {
            if let Some(id) = widget.get_mut("id") {
                renumber(id);
            }
        }
    }
}

/// `patchProxyWidgets`: instances of a renumbered definition point their `proxyWidgets` (when
/// saved as a list) at the new ids.
fn patch_proxy_widgets(
    nodes: &mut [Value],
    definition_ids: &BTreeSet<String>,
    by_definition: &BTreeMap<String, BTreeMap<i64, i64>>,
) {
    for node in nodes {
        let Some(type_name) = node.get("type").and_then(Value::as_str) else {
            continue;
        };
        if !definition_ids.contains(type_name) {
            continue;
        }
        let Some(remap) = by_definition.get(type_name) else {
            continue;
        };
        let Some(entries) = node
            .pointer_mut("/properties/proxyWidgets")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for entry in entries {
            let Some(first) = entry.as_array_mut().and_then(|pair| pair.first_mut()) else {
                continue;
            };
            if let Some(new) = js_to_id(first).and_then(|id| remap.get(&id)) {
                *first = Value::String(new.to_string());
            }
        }
    }
}

/// `Number(entry[0])` as an id.
fn js_to_id(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                Some(0)
            } else {
                trimmed.parse().ok()
            }
        }
        Value::Null => Some(0),
        other => numeric_id(other),
    }
}
