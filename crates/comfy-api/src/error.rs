//! Errors of the ComfyUI client, each carrying the backend URL and what was being done.

use std::time::Duration;

use crate::types::PromptRejection;

/// Everything that can go wrong talking to one ComfyUI backend.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The backend could not be reached at all (refused, reset, DNS).
    #[error("cannot reach ComfyUI at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The backend did not answer `call` (e.g. `GET /system_stats`) within `limit`, the bound
    /// [`Timeouts`](crate::Timeouts) sets for that kind of call. Usually a hung or overloaded
    /// ComfyUI, or a proxy in front of a stopped one. `url` is the backend's root.
    #[error("ComfyUI at {url} did not answer {call} within {}", crate::timeouts::describe(*.limit))]
    Timeout {
        url: String,
        call: String,
        limit: Duration,
    },
    /// The backend answered with an unexpected status. `body` is the start of the body, which
    /// ComfyUI often sends as plain text (aiohttp's "500 Internal Server Error").
    #[error("ComfyUI at {url} answered {status}{}", body_suffix(.body))]
    Status { url: String, status: u16, body: String },
    /// The backend answered 200 but the body was not what its API promises.
    #[error("unexpected reply from ComfyUI at {url}: {message}")]
    Decode { url: String, message: String },
    /// A body was larger than the caller allows; nothing past `limit` bytes was read. `size` is
    /// the length the backend announced, when it did.
    #[error("{url} is {} (the limit is {})", describe_size(*.size), describe_bytes(*.limit))]
    TooLarge {
        url: String,
        limit: u64,
        size: Option<u64>,
    },
    /// `POST /prompt` refused the prompt (validation failed).
    #[error("ComfyUI rejected the prompt: {0}")]
    Rejected(Box<PromptRejection>),
    /// A file name or subfolder that could escape ComfyUI's directories; never sent.
    #[error("refused path {path:?}: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    /// The backend URL given in the configuration is not usable.
    #[error("invalid ComfyUI URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The backend actor has shut down.
    #[error("the connection to ComfyUI at {url} has been shut down")]
    Closed { url: String },
}

fn describe_size(size: Option<u64>) -> String {
    size.map_or_else(
        || "larger than allowed".to_owned(),
        |size| format!("{} long", describe_bytes(size)),
    )
}

/// A byte count for people: `532 bytes`, `1.5 MiB`.
pub fn describe_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn body_suffix(body: &str) -> String {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!(": {trimmed}")
    }
}

impl ClientError {
    /// True when retrying later could succeed (network trouble, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } | ClientError::Timeout { .. } | ClientError::Closed { .. } => {
                true
            }
            ClientError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
