//! Running the MCP server over stdio (`stdio.rs`) or Streamable HTTP (`http.rs`).
//!
//! Stdio answers every line it cannot use (not JSON, not a JSON-RPC message, longer than 16 MiB)
//! with a JSON-RPC error instead of leaving the client waiting. HTTP binds to loopback unless told
//! otherwise, checks `Host` and `Origin` (DNS rebinding), requires a bearer token when one is
//! configured, and bounds what one client can hold: sessions, connections, and the time to send a
//! request's headers and body. Over HTTP it also streams backends' files whole
//! (`downloads.rs`), for clients that cannot reach ComfyUI and for files too large to read as a
//! resource.

mod downloads;
mod http;
mod jsonrpc;
mod signal;
mod stdio;

pub use http::http;
pub use stdio::stdio;
