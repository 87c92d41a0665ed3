//! How many nodes a UI workflow becomes once every subgraph instance is expanded, counted on the
//! parsed file before anything is built. Definitions that each hold several instances of the next
//! one multiply with every level, so a file of a few kilobytes could otherwise expand to millions
//! of nodes and gigabytes.

use std::collections::BTreeMap;

use super::live::{MAXIMUM_SUBGRAPH_DEPTH, renamed};
use super::model::{UiGraph, UiWorkflow};

/// Totals already counted, by definition id and depth.
type Counted<'w> = BTreeMap<(&'w str, usize), u64>;

/// The nodes loading visits: every node of the root and, through every instance, every node of
/// its definition, [`MAXIMUM_SUBGRAPH_DEPTH`] levels deep. Expansion visits fewer (it refuses
/// recursive definitions, which loading still walks), so this bounds the work of both. Each
/// definition is counted once per depth, so counting itself stays linear in the file's size;
/// the total saturates at `u64::MAX`.
pub(super) fn expanded_node_count(workflow: &UiWorkflow) -> u64 {
    count_graph(workflow, &workflow.root, 0, &mut Counted::new())
}

fn count_graph<'w>(
    workflow: &'w UiWorkflow,
    graph: &'w UiGraph,
    depth: usize,
    counted: &mut Counted<'w>,
) -> u64 {
    graph.nodes.iter().fold(0, |total: u64, node| {
        let inner = if depth < MAXIMUM_SUBGRAPH_DEPTH {
            count_instance(workflow, &renamed(&node.type_name), depth + 1, counted)
        } else {
            0
        };
        total.saturating_add(1).saturating_add(inner)
    })
}

/// The nodes inside one instance of `type_name` at `depth`; 0 when it is not a subgraph.
fn count_instance<'w>(
    workflow: &'w UiWorkflow,
    type_name: &str,
    depth: usize,
    counted: &mut Counted<'w>,
) -> u64 {
    let Some((id, definition)) = workflow.subgraphs.get_key_value(type_name) else {
        return 0;
    };
    if let Some(&total) = counted.get(&(id.as_str(), depth)) {
        return total;
    }
    let total = count_graph(workflow, definition, depth, counted);
    counted.insert((id.as_str(), depth), total);
    total
}
