//! Local validation of an API prompt against a backend's `/object_info`, predicting what ComfyUI's
//! `POST /prompt` would answer (contract section 4) without sending anything.
//!
//! The rules and error codes are ComfyUI 0.3.75's: unknown or missing classes, output nodes and
//! `partial_execution_targets`, required inputs, link shape and type checks, Python-style coercion,
//! min/max and combo lists, plus 0.26's dependency cycles, V3 dynamic inputs (expanded the way the
//! server expands them, see `dynamic.rs`) and (optionally) V3 combo checks. On top of
//! that it warns about things ComfyUI accepts but that are likely mistakes (misaligned steps,
//! unknown input names, the string `"false"` for a BOOLEAN) and suggests the closest valid value.
//!
//! Where ComfyUI stops at the first problem or skips nodes behind a failed link, this module keeps
//! going, so one round trip shows everything that needs fixing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::coerce::{self, Numeric};
use crate::diagnostic::{Diagnostic, Severity, code, compare_node_ids};
use crate::graph::{ApiPrompt, Node};
use crate::object_info::{
    InputKind, InputSection, InputSpec, MATCH_TYPE, NodeDefinition, ObjectInfo, OutputSpec,
};
use crate::suggest::{closest_matches, did_you_mean};

/// How many candidates a suggestion lists.
const SUGGESTION_LIMIT: usize = 3;

/// ComfyUI abbreviates combo lists longer than this in its messages.
const LIST_DISPLAY_LIMIT: usize = 20;

/// Most nodes a prompt may have to be validated. ComfyUI workflows have at most a few thousand;
/// validating far larger graphs takes seconds and hundreds of megabytes, so a prompt above this
/// is refused with one `graph_too_large` error instead.
pub const MAXIMUM_GRAPH_NODES: usize = 20_000;

/// Most diagnostics a report lists; the rest are summed up in one `diagnostics_omitted` finding,
/// so a graph with thousands of mistakes does not make a response of megabytes.
pub const MAXIMUM_DIAGNOSTICS: usize = 200;

/// What to validate against, beyond the prompt and the node definitions.
#[derive(Debug, Clone, Default)]
pub struct ValidationOptions {
    /// Only these output nodes run (ComfyUI's `partial_execution_targets`).
    pub partial_execution_targets: Option<Vec<String>>,
    /// Check V3 `COMBO` values against their options, as ComfyUI 0.26 does (0.3.75 does not).
    pub check_v3_combos: bool,
    /// Call a missing or unknown node class `missing_node_type`, as ComfyUI 0.26 does (0.3.75
    /// calls it `invalid_prompt`).
    pub missing_node_type: bool,
    /// Known providers of node classes the backend lacks: class type -> custom-node pack.
    pub custom_node_hints: BTreeMap<String, String>,
}

/// The top-level error `POST /prompt` would answer with (HTTP 400).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    /// `invalid_prompt` (0.26: `missing_node_type` for node classes), `prompt_no_outputs` or
    /// `prompt_outputs_failed_validation`.
    pub code: String,
    pub message: String,
}

/// Whether one output node would be queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputStatus {
    pub node_id: String,
    pub class_type: String,
    pub title: String,
    /// True when the output and everything upstream of it validates.
    pub valid: bool,
    /// Upstream nodes (the output included) that have errors of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_nodes: Vec<String>,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every output would run.
    Valid,
    /// ComfyUI would accept the prompt but queue only some outputs.
    Partial,
    /// Nothing would be queued.
    Rejected,
}

/// Everything validation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
    /// Node-level findings, ordered by node id.
    pub diagnostics: Vec<Diagnostic>,
    /// The selected output nodes, ordered by node id.
    pub outputs: Vec<OutputStatus>,
}

impl Report {
    pub fn outcome(&self) -> Outcome {
        if self.rejection.is_some() {
            Outcome::Rejected
        } else if self.outputs.iter().all(|output| output.valid) {
            Outcome::Valid
        } else {
            Outcome::Partial
        }
    }

    /// True when ComfyUI would queue at least one output.
    pub fn is_accepted(&self) -> bool {
        self.rejection.is_none()
    }

    /// The output node ids ComfyUI would execute.
    pub fn queued_outputs(&self) -> Vec<&str> {
        if self.rejection.is_some() {
            return Vec::new();
        }
        self.outputs
            .iter()
            .filter(|output| output.valid)
            .map(|output| output.node_id.as_str())
            .collect()
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|diagnostic| diagnostic.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// ComfyUI's link type check: equal types, `*` or a match type (`COMFY_MATCHTYPE_V3`, which
/// 0.26 leaves to the frontend) on either side, or intersecting comma-separated sets.
pub fn types_match(received: &str, expected: &str) -> bool {
    if received == expected
        || [received, expected]
            .iter()
            .any(|side| *side == "*" || *side == MATCH_TYPE)
    {
        return true;
    }
    let received_types: BTreeSet<&str> = received.split(',').map(str::trim).collect();
    let expected_types: BTreeSet<&str> = expected.split(',').map(str::trim).collect();
    received_types.contains("*")
        || expected_types.contains("*")
        || !received_types.is_disjoint(&expected_types)
}

/// Validates a prompt given as raw JSON, which may be malformed in ways [`ApiPrompt`] cannot hold
/// (a node without `class_type`, a node that is not an object, a prompt that is not an object).
pub fn validate_json(raw: &Value, info: &ObjectInfo, options: &ValidationOptions) -> Report {
    let Some(entries) = raw.as_object() else {
        return Report {
            rejection: Some(Rejection {
                code: code::PROMPT_NO_OUTPUTS.to_owned(),
                message: "Prompt has no outputs: the prompt must be an object of node id to node".to_owned(),
            }),
            diagnostics: Vec::new(),
            outputs: Vec::new(),
        };
    };
    if entries.len() > MAXIMUM_GRAPH_NODES {
        return too_large(entries.len());
    }
    let mut prompt = ApiPrompt::new();
    let mut shape_diagnostics = Vec::new();
    for (node_id, raw_node) in entries {
        let class_type = raw_node.get("class_type").and_then(Value::as_str);
        let problem = if !raw_node.is_object() {
            Some("node is not a JSON object")
        } else if class_type.is_none() {
            Some("Cannot execute because a node is missing the class_type property")
        } else if raw_node.get("inputs").is_some_and(|inputs| !inputs.is_object()) {
            Some("node inputs must be a JSON object")
        } else {
            None
        };
        match (problem, serde_json::from_value::<Node>(raw_node.clone())) {
            (None, Ok(node)) => {
                prompt.nodes.insert(node_id.clone(), node);
            }
            (problem, _) => shape_diagnostics.push(Diagnostic {
                node_id: node_id.clone(),
                class_type: class_type.unwrap_or_default().to_owned(),
                title: class_type.unwrap_or_default().to_owned(),
                input: None,
                code: if raw_node.is_object() && class_type.is_none() {
                    missing_class_code(options)
                } else {
                    code::INVALID_PROMPT
                }
                .to_owned(),
                severity: Severity::Error,
                message: problem.unwrap_or("node is malformed").to_owned(),
                suggestion: None,
                candidates: Vec::new(),
            }),
        }
    }
    let mut report = Validator::new(&prompt, info, options).run();
    if !shape_diagnostics.is_empty() {
        // ComfyUI stops at the first malformed node; the first one by id stands for it.
        let first = shape_diagnostics
            .iter()
            .min_by(|left, right| compare_node_ids(&left.node_id, &right.node_id))
            .map_or(code::INVALID_PROMPT, |diagnostic| diagnostic.code.as_str())
            .to_owned();
        report.diagnostics.extend(shape_diagnostics);
        report
            .diagnostics
            .sort_by(|left, right| compare_node_ids(&left.node_id, &right.node_id));
        report.rejection = Some(Rejection {
            code: first,
            message: "Cannot execute because a node is malformed or missing the class_type property"
                .to_owned(),
        });
    }
    cap_diagnostics(&mut report.diagnostics);
    report
}

/// Validates `prompt` the way ComfyUI's `POST /prompt` would, and more. A prompt of more than
/// [`MAXIMUM_GRAPH_NODES`] nodes is refused unvalidated; at most [`MAXIMUM_DIAGNOSTICS`] findings
/// are listed.
pub fn validate(prompt: &ApiPrompt, info: &ObjectInfo, options: &ValidationOptions) -> Report {
    if prompt.nodes.len() > MAXIMUM_GRAPH_NODES {
        return too_large(prompt.nodes.len());
    }
    let mut report = Validator::new(prompt, info, options).run();
    cap_diagnostics(&mut report.diagnostics);
    report
}

/// The refusal of a prompt of more than [`MAXIMUM_GRAPH_NODES`] nodes: one finding, no outputs.
fn too_large(node_count: usize) -> Report {
    let diagnostic = Diagnostic {
        node_id: String::new(),
        class_type: String::new(),
        title: String::new(),
        input: None,
        code: code::GRAPH_TOO_LARGE.to_owned(),
        severity: Severity::Error,
        message: format!(
            "the prompt has {node_count} nodes, more than the {MAXIMUM_GRAPH_NODES} this server validates, so it is not validated"
        ),
        suggestion: Some(
            "ComfyUI workflows have at most a few thousand nodes: check that the graph was not duplicated or generated by mistake, or split it into several prompts".to_owned(),
        ),
        candidates: Vec::new(),
    };
    Report {
        rejection: Some(Rejection {
            code: code::GRAPH_TOO_LARGE.to_owned(),
            message: format!(
                "Prompt is too large to validate: {node_count} nodes, more than {MAXIMUM_GRAPH_NODES}"
            ),
        }),
        diagnostics: vec![diagnostic],
        outputs: Vec::new(),
    }
}

/// Keeps [`MAXIMUM_DIAGNOSTICS`] findings in node order, errors before warnings so no error hides
/// behind warnings, and sums up the rest in one `diagnostics_omitted` finding (an error when any
/// omitted one is).
fn cap_diagnostics(diagnostics: &mut Vec<Diagnostic>) {
    if diagnostics.len() <= MAXIMUM_DIAGNOSTICS {
        return;
    }
    // Stable sorts: errors first, each group still in node order; then node order again.
    diagnostics.sort_by_key(|diagnostic| !diagnostic.is_error());
    let omitted = diagnostics.split_off(MAXIMUM_DIAGNOSTICS);
    diagnostics.sort_by(|left, right| compare_node_ids(&left.node_id, &right.node_id));
    let errors = omitted.iter().filter(|diagnostic| diagnostic.is_error()).count();
    let warnings = omitted.len() - errors;
    diagnostics.push(Diagnostic {
        node_id: String::new(),
        class_type: String::new(),
        title: String::new(),
        input: None,
        code: code::DIAGNOSTICS_OMITTED.to_owned(),
        severity: if errors > 0 { Severity::Error } else { Severity::Warning },
        message: format!(
            "{} more findings ({errors} errors, {warnings} warnings) are not listed: a report lists at most {MAXIMUM_DIAGNOSTICS}",
            omitted.len()
        ),
        suggestion: Some("fix the findings listed and validate again to see the rest".to_owned()),
        candidates: Vec::new(),
    });
}

/// Inputs that core nodes check with their own `VALIDATE_INPUTS` (the file must exist), which makes
/// ComfyUI skip the min/max/list checks for them: (class, input, kind of file).
const CUSTOM_VALIDATED_INPUTS: &[(&str, &str, &str)] = &[
    ("LoadImage", "image", "image"),
    ("LoadImageMask", "image", "image"),
    ("LoadImageOutput", "image", "image"),
    ("LoadLatent", "latent", "latent"),
    ("LoadAudio", "audio", "audio"),
    ("LoadVideo", "file", "video"),
];

/// A link parsed strictly, the way Python would index with it.
enum LinkTarget<'a> {
    Valid { node_id: &'a str, slot: i128 },
    Malformed(String),
}

struct Validator<'a> {
    prompt: &'a ApiPrompt,
    info: &'a ObjectInfo,
    options: &'a ValidationOptions,
    /// Node ids in reading order; graph algorithms use positions in this list.
    ids: Vec<&'a str>,
    /// For each node, the positions of the existing nodes its inputs link to.
    upstream: Vec<Vec<usize>>,
    diagnostics: Vec<Diagnostic>,
    /// The type each (node id, match template id) resolves to, once looked up.
    matched_types: BTreeMap<(&'a str, &'a str), Option<String>>,
}

impl<'a> Validator<'a> {
    fn new(prompt: &'a ApiPrompt, info: &'a ObjectInfo, options: &'a ValidationOptions) -> Self {
        let mut ids: Vec<&str> = prompt.nodes.keys().map(String::as_str).collect();
        ids.sort_by(|left, right| compare_node_ids(left, right));
        let positions: BTreeMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(position, id)| (*id, position))
            .collect();
        let upstream = ids
            .iter()
            .map(|id| {
                let mut sources: Vec<usize> = prompt
                    .get(id)
                    .map(|node| {
                        node.inputs
                            .values()
                            .filter_map(|value| match value {
                                Value::Array(items) if items.len() == 2 => {
                                    items.first().and_then(Value::as_str)
                                }
                                _ => None,
                            })
                            .filter_map(|source| positions.get(source).copied())
                            .collect()
                    })
                    .unwrap_or_default();
                sources.sort_unstable();
                sources.dedup();
                sources
            })
            .collect();
        Validator {
            prompt,
            info,
            options,
            ids,
            upstream,
            diagnostics: Vec::new(),
            matched_types: BTreeMap::new(),
        }
    }

    fn node(&self, position: usize) -> Option<(&'a str, &'a Node)> {
        let id = *self.ids.get(position)?;
        Some((id, self.prompt.get(id)?))
    }

    fn title(&self, node: &Node) -> String {
        if let Some(title) = node.title().filter(|title| !title.is_empty()) {
            return title.to_owned();
        }
        self.info
            .node(&node.class_type)
            .map(|definition| definition.display_name.as_str())
            .filter(|name| !name.is_empty())
            .unwrap_or(&node.class_type)
            .to_owned()
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        node_id: &str,
        node: &Node,
        input: Option<&str>,
        code: &str,
        severity: Severity,
        message: String,
        candidates: Vec<String>,
    ) {
        let suggestion = did_you_mean(&candidates);
        self.push_with_suggestion(
            node_id, node, input, code, severity, message, suggestion, candidates,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn push_with_suggestion(
        &mut self,
        node_id: &str,
        node: &Node,
        input: Option<&str>,
        code: &str,
        severity: Severity,
        message: String,
        suggestion: Option<String>,
        candidates: Vec<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            node_id: node_id.to_owned(),
            class_type: node.class_type.clone(),
            title: self.title(node),
            input: input.map(str::to_owned),
            code: code.to_owned(),
            severity,
            message,
            suggestion,
            candidates,
        });
    }

    fn run(mut self) -> Report {
        let class_rejection = self.check_classes();
        let outputs = self.select_outputs();
        let reachable = self.reachable_from(&outputs);
        for position in 0..self.ids.len() {
            if reachable.get(position).copied().unwrap_or(false) {
                self.check_node(position, outputs.contains(&position));
            }
        }
        self.check_cycles(&reachable);
        if self.options.partial_execution_targets.is_none() {
            self.warn_unreachable(&reachable);
        }
        let statuses = self.output_statuses(&outputs);
        self.diagnostics
            .sort_by(|left, right| compare_node_ids(&left.node_id, &right.node_id));
        let rejection = if let Some(rejection) = class_rejection {
            Some(rejection)
        } else if outputs.is_empty() {
            Some(Rejection {
                code: code::PROMPT_NO_OUTPUTS.to_owned(),
                message: if self.options.partial_execution_targets.is_some() {
                    "Prompt has no outputs: none of the partial execution targets is an output node"
                        .to_owned()
                } else {
                    "Prompt has no outputs: add an output node such as SaveImage or PreviewImage".to_owned()
                },
            })
        } else if statuses.iter().all(|status| !status.valid) {
            Some(Rejection {
                code: code::PROMPT_OUTPUTS_FAILED_VALIDATION.to_owned(),
                message: "Prompt outputs failed validation".to_owned(),
            })
        } else {
            None
        };
        Report {
            rejection,
            diagnostics: self.diagnostics,
            outputs: statuses,
        }
    }

    /// Missing and unknown classes; ComfyUI rejects the whole prompt for either.
    fn check_classes(&mut self) -> Option<Rejection> {
        let mut rejection = None;
        for position in 0..self.ids.len() {
            let Some((node_id, node)) = self.node(position) else {
                continue;
            };
            let class_code = missing_class_code(self.options);
            if node.class_type.trim().is_empty() {
                let message = "Cannot execute because a node is missing the class_type property".to_owned();
                rejection.get_or_insert_with(|| Rejection {
                    code: class_code.to_owned(),
                    message: format!("{message}: node '{node_id}'"),
                });
                self.push(
                    node_id,
                    node,
                    None,
                    class_code,
                    Severity::Error,
                    message,
                    Vec::new(),
                );
            } else if !self.info.has_node(&node.class_type) {
                let message = format!("Cannot execute because node {} does not exist", node.class_type);
                rejection.get_or_insert_with(|| Rejection {
                    code: class_code.to_owned(),
                    message: message.clone(),
                });
                if let Some(pack) = self.options.custom_node_hints.get(&node.class_type) {
                    let suggestion = Some(format!(
                        "install the custom node pack '{pack}', which provides {}",
                        node.class_type
                    ));
                    self.push_with_suggestion(
                        node_id,
                        node,
                        None,
                        class_code,
                        Severity::Error,
                        message,
                        suggestion,
                        Vec::new(),
                    );
                } else {
                    let candidates =
                        closest_matches(&node.class_type, self.info.class_types(), SUGGESTION_LIMIT);
                    self.push(
                        node_id,
                        node,
                        None,
                        class_code,
                        Severity::Error,
                        message,
                        candidates,
                    );
                }
            }
        }
        rejection
    }

    fn definition(&self, node: &Node) -> Option<&'a NodeDefinition> {
        self.info.node(&node.class_type)
    }

    fn select_outputs(&self) -> Vec<usize> {
        (0..self.ids.len())
            .filter(|position| {
                self.node(*position).is_some_and(|(node_id, node)| {
                    self.definition(node)
                        .is_some_and(|definition| definition.output_node)
                        && self
                            .options
                            .partial_execution_targets
                            .as_ref()
                            .is_none_or(|targets| targets.iter().any(|target| target == node_id))
                })
            })
            .collect()
    }

    /// Nodes that some selected output depends on (the outputs included).
    fn reachable_from(&self, starts: &[usize]) -> Vec<bool> {
        let mut reached = vec![false; self.ids.len()];
        let mut queue: VecDeque<usize> = starts.iter().copied().collect();
        while let Some(position) = queue.pop_front() {
            match reached.get_mut(position) {
                Some(flag) if !*flag => *flag = true,
                _ => continue,
            }
            if let Some(sources) = self.upstream.get(position) {
                queue.extend(sources.iter().copied());
            }
        }
        reached
    }

    fn check_node(&mut self, position: usize, is_output: bool) {
        let Some((node_id, node)) = self.node(position) else {
            return;
        };
        let Some(definition) = self.definition(node) else {
            return;
        };
        // V3 dynamic inputs stand for what the node's values select, as on the server.
        let expansion = definition.expansion(&node.inputs);
        for spec in &expansion.inputs {
            self.check_input(node_id, node, definition, spec, is_output);
        }
        self.check_unselected(node_id, node, &expansion.unselected);
        self.check_match_templates(node_id, node, &expansion.inputs);
        self.warn_unknown_inputs(node_id, node, definition, &expansion);
    }

    fn check_input(
        &mut self,
        node_id: &str,
        node: &Node,
        definition: &NodeDefinition,
        spec: &InputSpec,
        is_output: bool,
    ) {
        let Some(value) = node.inputs.get(&spec.name) else {
            if spec.section == InputSection::Required {
                self.push(
                    node_id,
                    node,
                    Some(&spec.name),
                    code::REQUIRED_INPUT_MISSING,
                    Severity::Error,
                    format!("Required input is missing: {}", spec.name),
                    Vec::new(),
                );
            }
            return;
        };
        match value {
            Value::Array(items) if items.len() != 2 => self.push(
                node_id,
                node,
                Some(&spec.name),
                code::BAD_LINKED_INPUT,
                Severity::Error,
                format!(
                    "Bad linked input, must be a length-2 list of [node_id, slot_index]: {} (wrap a list value as {{\"__value__\": [...]}})",
                    spec.name
                ),
                Vec::new(),
            ),
            Value::Array(items) => self.check_link(node_id, node, spec, items, is_output),
            constant => self.check_constant(node_id, node, definition, spec, constant),
        }
    }

    fn check_link(&mut self, node_id: &str, node: &Node, spec: &InputSpec, items: &[Value], is_output: bool) {
        let exception_code = if is_output {
            code::EXCEPTION_DURING_VALIDATION
        } else {
            code::EXCEPTION_DURING_INNER_VALIDATION
        };
        let (source_id, slot) = match parse_link(items) {
            LinkTarget::Valid { node_id, slot } => (node_id, slot),
            LinkTarget::Malformed(problem) => {
                self.push(
                    node_id,
                    node,
                    Some(&spec.name),
                    exception_code,
                    Severity::Error,
                    format!("Exception when validating node: input '{}' {problem}", spec.name),
                    Vec::new(),
                );
                return;
            }
        };
        let Some(source) = self.prompt.get(source_id) else {
            let candidates: Vec<String> = Vec::new();
            self.push(
                node_id,
                node,
                Some(&spec.name),
                exception_code,
                Severity::Error,
                format!(
                    "Exception when validating node: input '{}' links to node '{source_id}', which does not exist",
                    spec.name
                ),
                candidates,
            );
            return;
        };
        // An unknown source class is already reported; its outputs cannot be checked.
        let Some(source_definition) = self.definition(source) else {
            return;
        };
        let output_count = source_definition.outputs.len();
        let Some(output) = output_at(source_definition, slot) else {
            self.push(
                node_id,
                node,
                Some(&spec.name),
                exception_code,
                Severity::Error,
                format!(
                    "Exception when validating node: input '{}' links to output {slot} of node '{source_id}' ({}), which has {output_count} output{}",
                    spec.name,
                    source.class_type,
                    if output_count == 1 { "" } else { "s" }
                ),
                Vec::new(),
            );
            return;
        };
        if slot < 0 {
            self.push(
                node_id,
                node,
                Some(&spec.name),
                code::EXCEPTION_DURING_VALIDATION,
                Severity::Warning,
                format!(
                    "input '{}' uses the negative output index {slot}, which ComfyUI counts from the end",
                    spec.name
                ),
                Vec::new(),
            );
        }
        let expected = spec.type_name();
        if output.matchtype.is_some() || spec.match_template().is_some() {
            // ComfyUI passes links from or to match types unchecked; see `dynamic.rs`.
            self.check_matched_link(node_id, node, spec, source_id, output);
        } else if !types_match(&output.type_name, expected) {
            let compatible: Vec<String> = source_definition
                .outputs
                .iter()
                .enumerate()
                .filter(|(_, candidate)| types_match(&candidate.type_name, expected))
                .map(|(index, candidate)| format!("[\"{source_id}\", {index}] ({})", candidate.name))
                .collect();
            let suggestion = (!compatible.is_empty()).then(|| format!("link to {}", compatible.join(" or ")));
            self.push_with_suggestion(
                node_id,
                node,
                Some(&spec.name),
                code::RETURN_TYPE_MISMATCH,
                Severity::Error,
                format!(
                    "Return type mismatch between linked nodes: {}, received_type({}) mismatch input_type({expected})",
                    spec.name, output.type_name
                ),
                suggestion,
                Vec::new(),
            );
        }
    }

    fn check_constant(
        &mut self,
        node_id: &str,
        node: &Node,
        definition: &NodeDefinition,
        spec: &InputSpec,
        raw: &Value,
    ) {
        // ComfyUI unwraps `{"__value__": ...}` before anything else.
        let value = match raw {
            Value::Object(entries) => entries.get("__value__").unwrap_or(raw),
            other => other,
        };
        let name = spec.name.as_str();
        let custom_file = CUSTOM_VALIDATED_INPUTS
            .iter()
            .find(|(class_type, input, _)| *class_type == definition.class_type && *input == name)
            .map(|(_, _, kind)| *kind);
        match &spec.kind {
            InputKind::Int => match coerce::to_integer(value) {
                Ok(number) => {
                    if custom_file.is_none() && self.check_range(node_id, node, spec, number) {
                        self.check_step(node_id, node, spec, number);
                    }
                }
                Err(problem) => self.invalid_type(node_id, node, spec, value, &problem),
            },
            InputKind::Float => match coerce::to_float(value) {
                Ok(number) => {
                    if custom_file.is_none() && self.check_range(node_id, node, spec, Numeric::Float(number))
                    {
                        self.check_rounding(node_id, node, spec, number);
                    }
                }
                Err(problem) => self.invalid_type(node_id, node, spec, value, &problem),
            },
            InputKind::String => {}
            InputKind::Boolean => {
                if !value.is_boolean() && !value.is_number() {
                    let read_as = coerce::to_boolean(value);
                    self.push(
                        node_id,
                        node,
                        Some(name),
                        code::BOOLEAN_FROM_NON_BOOLEAN,
                        Severity::Warning,
                        format!("BOOLEAN input {name} got {value}, which ComfyUI reads as {read_as}"),
                        Vec::new(),
                    );
                }
            }
            InputKind::Combo(choices) => {
                if let Some(kind) = custom_file {
                    self.check_file(node_id, node, spec, value, choices.as_deref(), kind);
                } else if let Some(choices) = choices
                    && (!is_v3_combo(spec) || self.options.check_v3_combos)
                {
                    self.check_choice(node_id, node, spec, value, choices);
                }
            }
            // The server checks neither; a bad option key is reported with the unselected combos.
            InputKind::DynamicCombo(_) | InputKind::Autogrow(_) => {}
            InputKind::Socket(_) | InputKind::MatchType(_) => {
                let type_name = match &spec.kind {
                    InputKind::MatchType(template) => template.allowed_types.as_str(),
                    _ => spec.type_name(),
                };
                // Frontend widget types (LOAD_3D, WEBCAM...) carry constants by design.
                if type_name != "*" && !crate::convert::widgets::has_widget(spec) {
                    self.push(
                        node_id,
                        node,
                        Some(name),
                        code::CONSTANT_FOR_SOCKET,
                        Severity::Warning,
                        format!(
                            "input {name} expects a {type_name} link but got a constant; ComfyUI passes it through unchecked"
                        ),
                        Vec::new(),
                    );
                }
            }
        }
    }

    fn invalid_type(&mut self, node_id: &str, node: &Node, spec: &InputSpec, value: &Value, problem: &str) {
        self.push(
            node_id,
            node,
            Some(&spec.name),
            code::INVALID_INPUT_TYPE,
            Severity::Error,
            format!(
                "Failed to convert an input value to a {} value: {}, {}, {problem}",
                spec.type_name(),
                spec.name,
                coerce::to_python_string(value)
            ),
            Vec::new(),
        );
    }

    /// Min/max checks; false when one failed.
    fn check_range(&mut self, node_id: &str, node: &Node, spec: &InputSpec, number: Numeric) -> bool {
        let bound = |key: &str| spec.option(key).and_then(Numeric::from_json);
        if let Some(minimum) = bound("min")
            && number.compare(minimum) == Some(std::cmp::Ordering::Less)
        {
            self.push_with_suggestion(
                node_id,
                node,
                Some(&spec.name),
                code::VALUE_SMALLER_THAN_MIN,
                Severity::Error,
                format!("Value {number} smaller than min of {minimum}"),
                Some(format!("use a value of at least {minimum}")),
                Vec::new(),
            );
            return false;
        }
        if let Some(maximum) = bound("max")
            && number.compare(maximum) == Some(std::cmp::Ordering::Greater)
        {
            self.push_with_suggestion(
                node_id,
                node,
                Some(&spec.name),
                code::VALUE_BIGGER_THAN_MAX,
                Severity::Error,
                format!("Value {number} bigger than max of {maximum}"),
                Some(format!("use a value of at most {maximum}")),
                Vec::new(),
            );
            return false;
        }
        true
    }

    /// The UI only produces multiples of an INT's step; other values usually mean a typo, and some
    /// models need them (latent sizes in multiples of 8).
    fn check_step(&mut self, node_id: &str, node: &Node, spec: &InputSpec, number: Numeric) {
        let (Some(Numeric::Integer(step)), Numeric::Integer(value)) =
            (spec.option("step").and_then(Numeric::from_json), number)
        else {
            return;
        };
        if step <= 1 {
            return;
        }
        let minimum = match spec.option("min").and_then(Numeric::from_json) {
            Some(Numeric::Integer(minimum)) => minimum,
            _ => 0,
        };
        if value.rem_euclid(step) == 0 || value.saturating_sub(minimum).rem_euclid(step) == 0 {
            return;
        }
        let lower = value.saturating_sub(value.rem_euclid(step));
        let upper = lower.saturating_add(step);
        self.push_with_suggestion(
            node_id,
            node,
            Some(&spec.name),
            code::VALUE_NOT_MULTIPLE_OF_STEP,
            Severity::Warning,
            format!("Value {value} is not a multiple of the step {step}"),
            Some(format!("use {lower} or {upper}")),
            Vec::new(),
        );
    }

    /// FLOAT inputs with a `round` option are rounded by the UI; a value off that grid would not
    /// survive a round trip through the UI.
    fn check_rounding(&mut self, node_id: &str, node: &Node, spec: &InputSpec, value: f64) {
        let Some(round) = spec
            .option("round")
            .and_then(Numeric::from_json)
            .map(Numeric::as_f64)
            .filter(|round| *round > 0.0 && round.is_finite())
        else {
            return;
        };
        if !value.is_finite() {
            return;
        }
        let units = value / round;
        if (units - units.round()).abs() <= 1e-6 * units.abs().max(1.0) {
            return;
        }
        let rounded = units.round() * round;
        self.push_with_suggestion(
            node_id,
            node,
            Some(&spec.name),
            code::VALUE_NOT_ROUNDED,
            Severity::Warning,
            format!("Value {value} is finer than the rounding {round} the UI applies"),
            Some(format!("use {}", format_float(rounded, round))),
            Vec::new(),
        );
    }

    fn check_choice(
        &mut self,
        node_id: &str,
        node: &Node,
        spec: &InputSpec,
        value: &Value,
        choices: &[Value],
    ) {
        let multiselect = spec.option("multiselect").and_then(Value::as_bool) == Some(true);
        let received: Vec<&Value> = match value {
            Value::Array(items) if multiselect => items.iter().collect(),
            single => vec![single],
        };
        let invalid: Vec<&Value> = received
            .into_iter()
            .filter(|item| !choices.iter().any(|choice| coerce::python_equal(choice, item)))
            .collect();
        let Some(first_invalid) = invalid.first() else {
            return;
        };
        let list_info = if choices.len() > LIST_DISPLAY_LIMIT {
            format!("(list of length {})", choices.len())
        } else {
            format!(
                "[{}]",
                choices.iter().map(python_repr).collect::<Vec<_>>().join(", ")
            )
        };
        let shown = invalid
            .iter()
            .map(|item| python_repr(item))
            .collect::<Vec<_>>()
            .join(", ");
        let candidates = match first_invalid {
            Value::String(text) => {
                closest_matches(text, choices.iter().filter_map(Value::as_str), SUGGESTION_LIMIT)
            }
            _ => Vec::new(),
        };
        self.push(
            node_id,
            node,
            Some(&spec.name),
            code::VALUE_NOT_IN_LIST,
            Severity::Error,
            format!("Value not in list: {}: {shown} not in {list_info}", spec.name),
            candidates,
        );
    }

    /// Predicts the `VALIDATE_INPUTS` of file loaders: the file must exist, which the combo list
    /// (the backend's folder listing) tells us, except for files it does not list.
    fn check_file(
        &mut self,
        node_id: &str,
        node: &Node,
        spec: &InputSpec,
        value: &Value,
        choices: Option<&[Value]>,
        kind: &str,
    ) {
        let Value::String(file) = value else {
            self.push(
                node_id,
                node,
                Some(&spec.name),
                code::CUSTOM_VALIDATION_FAILED,
                Severity::Error,
                format!(
                    "Custom validation failed for node: {} - Invalid {kind} file: {}",
                    spec.name,
                    coerce::to_python_string(value)
                ),
                Vec::new(),
            );
            return;
        };
        let Some(choices) = choices else {
            return;
        };
        let listed = |name: &str| choices.iter().any(|choice| choice.as_str() == Some(name));
        let (name, annotation) = match file.strip_suffix(']').and_then(|rest| rest.rsplit_once(" [")) {
            Some((name, annotation)) => (name, Some(annotation)),
            None => (file.as_str(), None),
        };
        if listed(file) || (annotation == Some("input") && listed(name)) {
            return;
        }
        let unverifiable = matches!(annotation, Some("output" | "temp")) || name.contains(['/', '\\']);
        let candidates = closest_matches(name, choices.iter().filter_map(Value::as_str), SUGGESTION_LIMIT);
        if unverifiable {
            self.push(
                node_id,
                node,
                Some(&spec.name),
                code::UNVERIFIABLE_FILE,
                Severity::Warning,
                format!(
                    "{kind} file {file} is not in the backend's list; it may still exist in a subfolder or another folder"
                ),
                candidates,
            );
        } else {
            self.push(
                node_id,
                node,
                Some(&spec.name),
                code::CUSTOM_VALIDATION_FAILED,
                Severity::Error,
                format!(
                    "Custom validation failed for node: {} - Invalid {kind} file: {file}",
                    spec.name
                ),
                candidates,
            );
        }
    }

    /// ComfyUI 0.26 reports `dependency_cycle` on every node of a cycle; 0.3.75 overflows its stack.
    fn check_cycles(&mut self, reachable: &[bool]) {
        let adjacency: Vec<Vec<usize>> = self
            .upstream
            .iter()
            .enumerate()
            .map(|(position, sources)| {
                if reachable.get(position).copied().unwrap_or(false) {
                    sources.clone()
                } else {
                    Vec::new()
                }
            })
            .collect();
        for component in strongly_connected_components(&adjacency) {
            let is_cycle = match component.as_slice() {
                [single] => adjacency
                    .get(*single)
                    .is_some_and(|sources| sources.contains(single)),
                members => members.len() > 1,
            };
            if !is_cycle {
                continue;
            }
            let path = cycle_path(&adjacency, &component);
            let described = path
                .iter()
                .filter_map(|position| self.node(*position))
                .map(|(node_id, node)| format!("{node_id} ({})", node.class_type))
                .collect::<Vec<_>>()
                .join(" -> ");
            let mut members = component.clone();
            members.sort_unstable();
            for position in members {
                if let Some((node_id, node)) = self.node(position) {
                    self.push(
                        node_id,
                        node,
                        None,
                        code::DEPENDENCY_CYCLE,
                        Severity::Error,
                        format!("Dependency cycle detected: {described}"),
                        Vec::new(),
                    );
                }
            }
        }
    }

    fn warn_unreachable(&mut self, reachable: &[bool]) {
        for position in 0..self.ids.len() {
            if reachable.get(position).copied().unwrap_or(false) {
                continue;
            }
            let Some((node_id, node)) = self.node(position) else {
                continue;
            };
            if self.definition(node).is_none() {
                continue;
            }
            self.push(
                node_id,
                node,
                None,
                code::NODE_NOT_EXECUTED,
                Severity::Warning,
                "node feeds no output node, so ComfyUI will not run it".to_owned(),
                Vec::new(),
            );
        }
    }

    fn output_statuses(&self, outputs: &[usize]) -> Vec<OutputStatus> {
        let failing: BTreeSet<&str> = self
            .diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.is_error())
            .map(|diagnostic| diagnostic.node_id.as_str())
            .collect();
        outputs
            .iter()
            .filter_map(|output| {
                let (node_id, node) = self.node(*output)?;
                let upstream = self.reachable_from(&[*output]);
                let failing_nodes: Vec<String> = upstream
                    .iter()
                    .enumerate()
                    .filter(|(_, reached)| **reached)
                    .filter_map(|(position, _)| self.ids.get(position).copied())
                    .filter(|id| failing.contains(id))
                    .map(str::to_owned)
                    .collect();
                Some(OutputStatus {
                    node_id: node_id.to_owned(),
                    class_type: node.class_type.clone(),
                    title: self.title(node),
                    valid: failing_nodes.is_empty(),
                    failing_nodes,
                })
            })
            .collect()
    }
}

/// The output a link's slot names: Python indexing, so negative slots count from the end, which
/// ComfyUI accepts.
fn output_at(definition: &NodeDefinition, slot: i128) -> Option<&OutputSpec> {
    let count = i128::try_from(definition.outputs.len()).unwrap_or(i128::MAX);
    let index = if slot < 0 { count + slot } else { slot };
    usize::try_from(index)
        .ok()
        .and_then(|index| definition.outputs.get(index))
}

/// A V3 `COMBO` declares its choices in `options.options`; a legacy combo puts the list in the
/// type position and has no such key.
/// The code of a missing or unknown node class: the server generation's.
fn missing_class_code(options: &ValidationOptions) -> &'static str {
    if options.missing_node_type {
        code::MISSING_NODE_TYPE
    } else {
        code::INVALID_PROMPT
    }
}

fn is_v3_combo(spec: &InputSpec) -> bool {
    spec.option("options").is_some_and(Value::is_array)
}

fn parse_link(items: &[Value]) -> LinkTarget<'_> {
    let (Some(first), Some(second)) = (items.first(), items.get(1)) else {
        return LinkTarget::Malformed("is not a link".to_owned());
    };
    let Value::String(node_id) = first else {
        return LinkTarget::Malformed(format!(
            "links to node {first}, but node ids are strings (write [\"{}\", {second}])",
            coerce::to_python_string(first)
        ));
    };
    let slot = match second {
        Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(signed), _) => i128::from(signed),
            (None, Some(unsigned)) => i128::from(unsigned),
            (None, None) => {
                return LinkTarget::Malformed(format!(
                    "uses the output index {second}, which is not an integer"
                ));
            }
        },
        other => {
            return LinkTarget::Malformed(format!("uses the output index {other}, which is not an integer"));
        }
    };
    LinkTarget::Valid { node_id, slot }
}

/// Python's `repr` for the values that appear in combo lists.
fn python_repr(value: &Value) -> String {
    match value {
        Value::String(text) => format!("'{text}'"),
        other => coerce::to_python_string(other),
    }
}

fn format_float(value: f64, round: f64) -> String {
    let decimals = if round >= 1.0 {
        0
    } else {
        // The number of decimals the rounding step has, e.g. 2 for 0.01.
        let digits = (-round.log10()).ceil();
        if digits.is_finite() && digits > 0.0 && digits < 16.0 {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let digits = digits as usize;
            digits
        } else {
            6
        }
    };
    format!("{value:.decimals$}")
}

/// Tarjan's algorithm without recursion, so deep graphs cannot overflow the stack.
fn strongly_connected_components(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let count = adjacency.len();
    let mut index_of: Vec<Option<usize>> = vec![None; count];
    let mut low_link: Vec<usize> = vec![0; count];
    let mut on_stack = vec![false; count];
    let mut stack: Vec<usize> = Vec::new();
    let mut components = Vec::new();
    let mut next_index = 0;
    for start in 0..count {
        if index_of.get(start).copied().flatten().is_some() {
            continue;
        }
        let mut calls: Vec<(usize, usize)> = vec![(start, 0)];
        visit(
            start,
            &mut next_index,
            &mut index_of,
            &mut low_link,
            &mut on_stack,
            &mut stack,
        );
        while let Some((node, edge)) = calls.last().copied() {
            let successor = adjacency.get(node).and_then(|edges| edges.get(edge)).copied();
            if let Some(call) = calls.last_mut() {
                call.1 += 1;
            }
            match successor {
                Some(next) if next < count => match index_of.get(next).copied().flatten() {
                    None => {
                        visit(
                            next,
                            &mut next_index,
                            &mut index_of,
                            &mut low_link,
                            &mut on_stack,
                            &mut stack,
                        );
                        calls.push((next, 0));
                    }
                    Some(next_index_value) => {
                        if on_stack.get(next).copied().unwrap_or(false)
                            && let Some(low) = low_link.get_mut(node)
                        {
                            *low = (*low).min(next_index_value);
                        }
                    }
                },
                Some(_) => {}
                None => {
                    calls.pop();
                    let node_low = low_link.get(node).copied().unwrap_or(0);
                    if let Some((parent, _)) = calls.last()
                        && let Some(parent_low) = low_link.get_mut(*parent)
                    {
                        *parent_low = (*parent_low).min(node_low);
                    }
                    if index_of.get(node).copied().flatten() == Some(node_low) {
                        let mut component = Vec::new();
                        while let Some(member) = stack.pop() {
                            if let Some(flag) = on_stack.get_mut(member) {
                                *flag = false;
                            }
                            component.push(member);
                            if member == node {
                                break;
                            }
                        }
                        components.push(component);
                    }
                }
            }
        }
    }
    components
}

fn visit(
    node: usize,
    next_index: &mut usize,
    index_of: &mut [Option<usize>],
    low_link: &mut [usize],
    on_stack: &mut [bool],
    stack: &mut Vec<usize>,
) {
    if let Some(slot) = index_of.get_mut(node) {
        *slot = Some(*next_index);
    }
    if let Some(slot) = low_link.get_mut(node) {
        *slot = *next_index;
    }
    if let Some(slot) = on_stack.get_mut(node) {
        *slot = true;
    }
    stack.push(node);
    *next_index += 1;
}

/// One concrete cycle inside a strongly connected component, in data-flow order, starting and
/// ending at the component's first member.
fn cycle_path(adjacency: &[Vec<usize>], component: &[usize]) -> Vec<usize> {
    let Some(start) = component.iter().min().copied() else {
        return Vec::new();
    };
    let members: BTreeSet<usize> = component.iter().copied().collect();
    // Breadth-first search from the start's sources back to the start gives a shortest cycle.
    let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue: VecDeque<usize> = VecDeque::from([start]);
    let mut found = false;
    while let Some(node) = queue.pop_front() {
        for next in adjacency.get(node).into_iter().flatten().copied() {
            if !members.contains(&next) {
                continue;
            }
            if next == start {
                parent.insert(start, node);
                found = true;
                break;
            }
            if let std::collections::btree_map::Entry::Vacant(entry) = parent.entry(next) {
                entry.insert(node);
                queue.push_back(next);
            }
        }
        if found {
            break;
        }
    }
    // Walk the parents from the start: start <- ... <- start, following upstream edges, which read
    // as data flow when reversed.
    let mut path = vec![start];
    let mut current = parent.get(&start).copied();
    while let Some(node) = current {
        path.push(node);
        if node == start || path.len() > component.len() + 1 {
            break;
        }
        current = parent.get(&node).copied();
    }
    path
}

mod dynamic;
#[cfg(test)]
mod tests;
