//! A typed client for ComfyUI: every HTTP endpoint the product uses ([`ComfyClient`]), the websocket
//! event stream ([`events`]), and one actor per backend ([`Backend`]) that follows jobs by listening,
//! never by sleeping; plus the one call that is not to ComfyUI, fetching an input a caller names by
//! URL ([`remote`]), guarded against reaching the operator's own network. Nothing here knows MCP
//! or SQL.

pub mod backend;
pub mod error;
pub mod events;
pub mod http;
pub mod jobs;
pub mod remote;
pub mod timeouts;
pub mod types;

pub use backend::{
    Backend, BackendOptions, CancelOutcome, ConnectionState, JobSubscription, SubmitOptions, SubmittedJob,
};
pub use error::{ClientError, describe_bytes};
pub use http::{ClientOptions, ComfyClient, HistoryQuery};
pub use jobs::{JobFailure, JobPhase, JobSnapshot, JobUpdate};
pub use timeouts::Timeouts;
pub use types::*;
