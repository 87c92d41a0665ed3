//! The ComfyUI graph model and everything that transforms it without IO: API prompts, node
//! definitions from `/object_info`, graph builders, validation, parameter discovery and UI to API
//! conversion. Nothing in this crate is async or touches the network or the disk.

pub mod builders;
pub mod coerce;
pub mod convert;
pub mod diagnostic;
pub mod diff;
pub mod graph;
pub mod lenient_json;
pub mod object_info;
pub mod parameters;
pub mod suggest;
#[cfg(test)]
mod testing;
pub mod validate;

pub use convert::requirements::{ModelRequirement, NodeRequirement, Requirements, requirements};
pub use convert::{
    Conversion, ConvertOptions, Format, FrontendGeneration, LocalDateTime, MAXIMUM_EXPANDED_NODES,
    detect_format, ui_to_api, ui_to_api_for,
};
pub use diagnostic::{Diagnostic, Severity};
pub use diff::{Change, Conflict, ConflictKind, GraphDiff, MergeResult, diff, merge};
pub use graph::{ApiPrompt, InputValue, Link, Node};
pub use lenient_json::parse_lenient;
pub use object_info::{InputKind, InputSpec, NodeDefinition, ObjectInfo};
pub use parameters::{OverrideError, Parameter, Parameters, apply_overrides, discover_parameters};
pub use validate::{Outcome, OutputStatus, Rejection, Report, ValidationOptions, validate, validate_json};
