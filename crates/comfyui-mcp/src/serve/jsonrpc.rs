//! JSON-RPC error answers both transports send themselves, before a message reaches rmcp.

use serde_json::{Value, json};

/// JSON-RPC 2.0: the text is not JSON.
pub(super) const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: the JSON is not a valid request.
pub(super) const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC 2.0, implementation-defined server error: used for the session limit.
pub(super) const SERVER_BUSY: i64 = -32000;

/// An error response to the request `id` (null when it had none we could read).
pub(super) fn error_answer(id: Option<Value>, code: i64, message: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": {"code": code, "message": message},
    })
}

/// JSON-RPC ids are strings or integers; anything else is answered with a null id.
pub(super) fn is_usable_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}
