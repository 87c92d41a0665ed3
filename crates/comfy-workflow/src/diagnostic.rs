//! Structured findings about a graph, shared by validation and UI to API conversion.
//!
//! A diagnostic names the node (id, class, title) and input it is about, carries ComfyUI's own error
//! type string as its code where ComfyUI has one, and may offer a suggestion, so an agent can fix
//! the graph without reading prose.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// How bad a finding is: errors make ComfyUI reject the node, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about one node (or one input of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub node_id: String,
    pub class_type: String,
    /// The node's title (`_meta.title`), else its display name, else its class.
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// ComfyUI's error type (`value_not_in_list`...) or one of ours for checks ComfyUI lacks.
    pub code: String,
    pub severity: Severity,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// Values that the suggestion offers, best first, for callers that want to pick one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Diagnostic codes. ComfyUI's own error types keep ComfyUI's spelling; the rest are ours.
pub mod code {
    // ComfyUI 0.3.75 (`execution.py`).
    pub const INVALID_PROMPT: &str = "invalid_prompt";
    pub const PROMPT_NO_OUTPUTS: &str = "prompt_no_outputs";
    pub const PROMPT_OUTPUTS_FAILED_VALIDATION: &str = "prompt_outputs_failed_validation";
    pub const REQUIRED_INPUT_MISSING: &str = "required_input_missing";
    pub const BAD_LINKED_INPUT: &str = "bad_linked_input";
    pub const RETURN_TYPE_MISMATCH: &str = "return_type_mismatch";
    pub const EXCEPTION_DURING_VALIDATION: &str = "exception_during_validation";
    pub const EXCEPTION_DURING_INNER_VALIDATION: &str = "exception_during_inner_validation";
    pub const INVALID_INPUT_TYPE: &str = "invalid_input_type";
    pub const VALUE_SMALLER_THAN_MIN: &str = "value_smaller_than_min";
    pub const VALUE_BIGGER_THAN_MAX: &str = "value_bigger_than_max";
    pub const VALUE_NOT_IN_LIST: &str = "value_not_in_list";
    pub const CUSTOM_VALIDATION_FAILED: &str = "custom_validation_failed";
    // ComfyUI 0.26: a missing or unknown node class (0.3.75 says `invalid_prompt`).
    pub const MISSING_NODE_TYPE: &str = "missing_node_type";
    // ComfyUI 0.26.
    pub const DEPENDENCY_CYCLE: &str = "dependency_cycle";
    // Ours: warnings for things ComfyUI accepts but that are probably mistakes.
    pub const UNKNOWN_INPUT: &str = "unknown_input";
    pub const VALUE_NOT_MULTIPLE_OF_STEP: &str = "value_not_multiple_of_step";
    pub const VALUE_NOT_ROUNDED: &str = "value_not_rounded";
    pub const BOOLEAN_FROM_NON_BOOLEAN: &str = "boolean_from_non_boolean";
    pub const CONSTANT_FOR_SOCKET: &str = "constant_for_socket";
    pub const NODE_NOT_EXECUTED: &str = "node_not_executed";
    pub const UNVERIFIABLE_FILE: &str = "unverifiable_file";
    // Ours: V3 dynamic inputs that ComfyUI 0.26 accepts unchecked but that fail when the node runs.
    pub const DYNAMIC_COMBO_MISSING: &str = "dynamic_combo_missing";
    pub const DYNAMIC_COMBO_NOT_IN_LIST: &str = "dynamic_combo_not_in_list";
    pub const MATCH_TYPE_MISMATCH: &str = "match_type_mismatch";
    // Ours: UI to API conversion.
    pub const UNREADABLE_WORKFLOW_PART: &str = "unreadable_workflow_part";
    pub const UNKNOWN_NODE_TYPE: &str = "unknown_node_type";
    pub const UNSUPPORTED_NODE: &str = "unsupported_node";
    pub const SUBGRAPH_RECURSION: &str = "subgraph_recursion";
    pub const MISSING_LINK: &str = "missing_link";
    pub const INPUT_DISCONNECTED: &str = "input_disconnected";
    pub const BYPASS_WITHOUT_MATCH: &str = "bypass_without_match";
    pub const DANGLING_LINK_REMOVED: &str = "dangling_link_removed";
    pub const MISSING_WIDGET_VALUE: &str = "missing_widget_value";
    pub const EXTRA_WIDGET_VALUES: &str = "extra_widget_values";
    pub const WIDGET_VALUES_SHIFTED: &str = "widget_values_shifted";
    pub const LEGACY_WIDGET_LAYOUT: &str = "legacy_widget_layout";
    pub const BROWSER_ONLY_VALUE: &str = "browser_only_value";
    pub const UNRESOLVED_PLACEHOLDER: &str = "unresolved_placeholder";
    pub const DISABLED_SUBGRAPH_EXPANDED: &str = "disabled_subgraph_expanded";
    pub const PRIMITIVE_LINK_MISMATCH: &str = "primitive_link_mismatch";
    pub const WORKFLOW_TOO_LARGE: &str = "workflow_too_large";
    // Ours: limits of validation.
    pub const GRAPH_TOO_LARGE: &str = "graph_too_large";
    pub const DIAGNOSTICS_OMITTED: &str = "diagnostics_omitted";
}

/// Orders node ids the way people read them: `"2" < "10" < "10:3"`.
pub fn compare_node_ids(left: &str, right: &str) -> Ordering {
    let mut left_parts = left.split(':');
    let mut right_parts = right.split(':');
    loop {
        match (left_parts.next(), right_parts.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(left_part), Some(right_part)) => {
                let ordering = match (left_part.parse::<u128>(), right_part.parse::<u128>()) {
                    (Ok(left_number), Ok(right_number)) => left_number.cmp(&right_number),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => left_part.cmp(right_part),
                };
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_sort_numerically_by_segment() {
        let mut ids = vec!["10", "9", "75:12", "75:3", "a", "75"];
        ids.sort_by(|left, right| compare_node_ids(left, right));
        assert_eq!(ids, ["9", "10", "75", "75:3", "75:12", "a"]);
    }

    #[test]
    fn serializes_without_empty_fields() {
        let diagnostic = Diagnostic {
            node_id: "3".into(),
            class_type: "KSampler".into(),
            title: "KSampler".into(),
            input: None,
            code: code::REQUIRED_INPUT_MISSING.into(),
            severity: Severity::Error,
            message: "Required input is missing".into(),
            suggestion: None,
            candidates: Vec::new(),
        };
        let json = serde_json::to_value(&diagnostic).unwrap();
        assert_eq!(json["severity"], "error");
        assert!(json.get("input").is_none());
        assert!(json.get("candidates").is_none());
    }
}
