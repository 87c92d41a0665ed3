//! Validation of ComfyUI 0.26's V3 dynamic inputs, beyond the per-input checks they share with
//! plain inputs once expanded.
//!
//! The server is lenient here: it skips a dynamic combo whose value selects no option (and every
//! input nested in it), and it passes any link from or to a match type unchecked, leaving both to
//! the frontend. Such graphs are accepted by `POST /prompt` and then fail when the node runs, so
//! they are warnings here, never errors: the verdict stays the server's, and the warning says
//! what will go wrong. Unknown input names get messages that know the nesting (an input of
//! another option, a slot past an autogrow's end).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    LIST_DISPLAY_LIMIT, LinkTarget, SUGGESTION_LIMIT, Validator, output_at, parse_link, python_repr,
    types_match,
};
use crate::diagnostic::{Severity, code};
use crate::graph::Node;
use crate::object_info::{
    Expansion, InputKind, InputSection, InputSpec, MATCH_TYPE, NodeDefinition, OutputSpec,
};
use crate::suggest::closest_matches;

/// Longest chain of match-type nodes (switch into switch...) followed to find a linked type.
const MAXIMUM_MATCH_DEPTH: usize = 64;

/// What the warnings about server-accepted mistakes add: when and how the graph breaks.
const FAILS_WHEN_RUN: &str = "ComfyUI 0.26 accepts the prompt, but the node fails when it runs";

impl<'a> Validator<'a> {
    /// Dynamic combos with no usable option: missing, linked, or set to a value that is no key.
    pub(super) fn check_unselected(&mut self, node_id: &str, node: &Node, unselected: &[&InputSpec]) {
        for spec in unselected {
            let InputKind::DynamicCombo(options) = &spec.kind else {
                continue;
            };
            let keys: Vec<String> = options.iter().map(|option| option.key_text()).collect();
            let listed = list_info(&keys);
            match node.inputs.get(&spec.name) {
                None if spec.section == InputSection::Required => self.push_with_suggestion(
                    node_id,
                    node,
                    Some(&spec.name),
                    code::DYNAMIC_COMBO_MISSING,
                    Severity::Warning,
                    format!(
                        "Required input is missing: {}; the server skips a dynamic combo it cannot resolve, so {FAILS_WHEN_RUN}",
                        spec.name
                    ),
                    Some(format!("set {} to one of {listed}", spec.name)),
                    Vec::new(),
                ),
                None => {}
                Some(Value::Array(items)) if items.len() == 2 => self.push_with_suggestion(
                    node_id,
                    node,
                    Some(&spec.name),
                    code::DYNAMIC_COMBO_NOT_IN_LIST,
                    Severity::Warning,
                    format!(
                        "{} is a dynamic combo and is linked, but only a constant selects its option; {FAILS_WHEN_RUN}",
                        spec.name
                    ),
                    Some(format!("set {} to one of {listed}", spec.name)),
                    Vec::new(),
                ),
                Some(value) => {
                    let candidates = match value {
                        Value::String(text) => {
                            closest_matches(text, keys.iter().map(String::as_str), SUGGESTION_LIMIT)
                        }
                        _ => Vec::new(),
                    };
                    self.push(
                        node_id,
                        node,
                        Some(&spec.name),
                        code::DYNAMIC_COMBO_NOT_IN_LIST,
                        Severity::Warning,
                        format!(
                            "Value not in list: {}: {} not in {listed}; the server skips a dynamic combo it cannot resolve, so {FAILS_WHEN_RUN}",
                            spec.name,
                            python_repr(value)
                        ),
                        candidates,
                    );
                }
            }
        }
    }

    /// Inputs of one match template must carry one type, as the frontend enforces.
    pub(super) fn check_match_templates(&mut self, node_id: &str, node: &'a Node, inputs: &[&InputSpec]) {
        let mut first_of_template: BTreeMap<&str, (&str, String)> = BTreeMap::new();
        for spec in inputs {
            let Some(template) = spec.match_template() else {
                continue;
            };
            let Some(received) = self.linked_type(node, &spec.name) else {
                continue;
            };
            match first_of_template.get(template.template_id.as_str()) {
                None => {
                    first_of_template.insert(&template.template_id, (&spec.name, received));
                }
                Some((first_name, first_type)) if !types_match(&received, first_type) => {
                    let message = format!(
                        "{} receives {received} but {first_name} receives {first_type}, and both share the type of match template '{}'; match types are left unchecked: ComfyUI 0.26 accepts the prompt, but the node fails or passes on the wrong type when it runs",
                        spec.name, template.template_id
                    );
                    let suggestion = Some(format!("link {} to a {first_type} output", spec.name));
                    self.push_with_suggestion(
                        node_id,
                        node,
                        Some(&spec.name),
                        code::MATCH_TYPE_MISMATCH,
                        Severity::Warning,
                        message,
                        suggestion,
                        Vec::new(),
                    );
                }
                Some(_) => {}
            }
        }
    }

    /// A link from a match-type output or into a match-type input: ComfyUI accepts it whatever
    /// the types, so a mismatch of the resolved types is a warning.
    pub(super) fn check_matched_link(
        &mut self,
        node_id: &str,
        node: &Node,
        spec: &InputSpec,
        source_id: &str,
        output: &'a OutputSpec,
    ) {
        let Some((source_id, _)) = self.prompt.nodes.get_key_value(source_id) else {
            return;
        };
        let Some(received) = self.output_type(source_id, output, 0) else {
            return;
        };
        let (expected, problem) = match spec.match_template() {
            Some(template) => (
                template.allowed_types.as_str(),
                format!(
                    "{} accepts {} (match template '{}') but receives {received}",
                    spec.name, template.allowed_types, template.template_id
                ),
            ),
            None => (
                spec.type_name(),
                format!(
                    "Return type mismatch between linked nodes: {}, received_type({received}) mismatch input_type({}); the source's output follows its match-type input",
                    spec.name,
                    spec.type_name()
                ),
            ),
        };
        if types_match(&received, expected) {
            return;
        }
        self.push_with_suggestion(
            node_id,
            node,
            Some(&spec.name),
            code::MATCH_TYPE_MISMATCH,
            Severity::Warning,
            format!("{problem}; match types are left unchecked: {FAILS_WHEN_RUN}"),
            Some(format!("link {} to a {expected} output", spec.name)),
            Vec::new(),
        );
    }

    /// The concrete type of the output a node's input links to, following match types.
    fn linked_type(&mut self, node: &'a Node, input: &str) -> Option<String> {
        let Some(Value::Array(items)) = node.inputs.get(input) else {
            return None;
        };
        let LinkTarget::Valid { node_id, slot } = parse_link(items) else {
            return None;
        };
        let (source_id, source) = self.prompt.nodes.get_key_value(node_id)?;
        let output = output_at(self.info.node(&source.class_type)?, slot)?;
        self.output_type(source_id, output, 0)
    }

    /// An output's type: its declared one, or for a match-type output the type linked into an
    /// input of the same template; `None` when nothing decides it.
    fn output_type(&mut self, node_id: &'a str, output: &'a OutputSpec, depth: usize) -> Option<String> {
        let Some(template_id) = output.matchtype.as_deref() else {
            return Some(output.type_name.clone());
        };
        if depth >= MAXIMUM_MATCH_DEPTH {
            return None;
        }
        if let Some(known) = self.matched_types.get(&(node_id, template_id)) {
            return known.clone();
        }
        // Marked before looking, so a cycle of match-type nodes resolves to nothing.
        self.matched_types.insert((node_id, template_id), None);
        let resolved = self.template_type(node_id, template_id, depth);
        self.matched_types
            .insert((node_id, template_id), resolved.clone());
        resolved
    }

    /// The first concrete type linked into an input of `template_id` on node `node_id`.
    fn template_type(&mut self, node_id: &'a str, template_id: &str, depth: usize) -> Option<String> {
        let node = self.prompt.get(node_id)?;
        let definition = self.info.node(&node.class_type)?;
        for spec in definition.expanded_inputs(&node.inputs) {
            if spec
                .match_template()
                .is_none_or(|template| template.template_id != template_id)
            {
                continue;
            }
            let Some(Value::Array(items)) = node.inputs.get(&spec.name) else {
                continue;
            };
            let LinkTarget::Valid {
                node_id: source_id,
                slot,
            } = parse_link(items)
            else {
                continue;
            };
            let Some((source_id, source)) = self.prompt.nodes.get_key_value(source_id) else {
                continue;
            };
            let Some(output) = self
                .info
                .node(&source.class_type)
                .and_then(|source_definition| output_at(source_definition, slot))
            else {
                continue;
            };
            if let Some(found) = self.output_type(source_id, output, depth + 1)
                && found != "*"
                && found != MATCH_TYPE
            {
                return Some(found);
            }
        }
        None
    }

    /// Inputs the server ignores, with messages that know where a nested name went wrong.
    pub(super) fn warn_unknown_inputs(
        &mut self,
        node_id: &str,
        node: &Node,
        definition: &NodeDefinition,
        expansion: &Expansion<'_>,
    ) {
        let accepted: Vec<&str> = expansion.inputs.iter().map(|spec| spec.name.as_str()).collect();
        for name in node.inputs.keys() {
            // Inputs under an unselected combo are covered by the combo's own finding, when it has one.
            let known = accepted.contains(&name.as_str())
                || expansion.unselected.iter().any(|spec| {
                    let reported =
                        spec.section == InputSection::Required || node.inputs.contains_key(&spec.name);
                    reported
                        && name
                            .strip_prefix(spec.name.as_str())
                            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
                })
                || definition
                    .inputs
                    .iter()
                    .any(|spec| spec.section == InputSection::Hidden && spec.name == *name);
            if known {
                continue;
            }
            let candidates = unknown_input_candidates(definition, name, &accepted);
            let message = unknown_input_message(definition, node, name);
            self.push(
                node_id,
                node,
                Some(name),
                code::UNKNOWN_INPUT,
                Severity::Warning,
                message,
                candidates,
            );
        }
    }
}

/// What an unknown name probably meant: a nested name is compared with its siblings first, or a
/// near miss like `resize_type.multipler` would suggest its parent `resize_type`, which contains it.
fn unknown_input_candidates(definition: &NodeDefinition, name: &str, accepted: &[&str]) -> Vec<String> {
    if let Some(parent) = definition.dynamic_parent(name) {
        let siblings = accepted.iter().copied().filter(|candidate| {
            candidate
                .strip_prefix(parent.name.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
        });
        let candidates = closest_matches(name, siblings, SUGGESTION_LIMIT);
        if !candidates.is_empty() {
            return candidates;
        }
    }
    closest_matches(name, accepted.iter().copied(), SUGGESTION_LIMIT)
}

/// Why the server ignores input `name`: not declared, an input of an option that is not selected,
/// a slot past an autogrow's last, or an autogrow's own name.
fn unknown_input_message(definition: &NodeDefinition, node: &Node, name: &str) -> String {
    let ignored = format!("so ComfyUI ignores {name}");
    if let Some(spec) = definition.settable_inputs().find(|spec| spec.name == name)
        && let InputKind::Autogrow(autogrow) = &spec.kind
    {
        return format!(
            "{name} is an autogrow: the node reads its inputs as {}, {ignored}",
            slot_range(autogrow.slots.as_slice())
        );
    }
    match definition
        .dynamic_parent(name)
        .map(|parent| (parent, &parent.kind))
    {
        Some((parent, InputKind::DynamicCombo(options))) => {
            let owners: Vec<String> = options
                .iter()
                .filter(|option| option.inputs.iter().any(|input| input.name == name))
                .map(|option| format!("'{}'", option.key_text()))
                .collect();
            let selected = node
                .inputs
                .get(&parent.name)
                .map_or_else(|| "nothing".to_owned(), python_repr);
            if owners.is_empty() {
                format!(
                    "no option of {} has an input {name} ({} selects {selected}), {ignored}",
                    parent.name, parent.name
                )
            } else {
                format!(
                    "{name} belongs to option {} of {}, but {} selects {selected}, {ignored}",
                    owners.join(" or "),
                    parent.name,
                    parent.name
                )
            }
        }
        Some((parent, InputKind::Autogrow(autogrow))) => format!(
            "{} takes at most {} inputs, named {}, {ignored}",
            parent.name,
            autogrow.max(),
            slot_range(autogrow.slots.as_slice())
        ),
        _ => format!(
            "{} declares no input '{name}', so ComfyUI ignores it",
            node.class_type
        ),
    }
}

/// `images.image0 to images.image49`, or the single slot, or a note that there are none.
fn slot_range(slots: &[InputSpec]) -> String {
    match slots {
        [] => "nothing (it has no slots)".to_owned(),
        [only] => only.name.clone(),
        [first, .., last] => format!("{} to {}", first.name, last.name),
    }
}

/// A list of choices the way ComfyUI shows one, abbreviated when long.
fn list_info(keys: &[String]) -> String {
    if keys.len() > LIST_DISPLAY_LIMIT {
        format!("(list of length {})", keys.len())
    } else {
        format!(
            "[{}]",
            keys.iter()
                .map(|key| format!("'{key}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
