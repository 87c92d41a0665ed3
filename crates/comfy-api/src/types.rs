//! Typed forms of ComfyUI's HTTP replies (contract sections 2, 3 and 5). Shapes that vary by node or
//! version stay `serde_json::Value`; everything the product reasons about is typed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The reply of a successful `POST /prompt`. `node_errors` may be non-empty: outputs that validated
/// were queued, the others were not.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PromptAccepted {
    pub prompt_id: String,
    #[serde(default)]
    pub number: Option<f64>,
    #[serde(default)]
    pub node_errors: BTreeMap<String, NodeError>,
}

/// The body of a 400 from `POST /prompt`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PromptRejection {
    pub error: PromptError,
    #[serde(default)]
    pub node_errors: BTreeMap<String, NodeError>,
}

impl std::fmt::Display for PromptRejection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.error.message)?;
        if !self.error.details.is_empty() {
            write!(formatter, " ({})", self.error.details.trim())?;
        }
        for (node_id, node_error) in &self.node_errors {
            for error in &node_error.errors {
                write!(
                    formatter,
                    "; node {node_id} ({}): {}",
                    node_error.class_type, error.message
                )?;
                if !error.details.is_empty() {
                    write!(formatter, ": {}", error.details)?;
                }
            }
        }
        Ok(())
    }
}

/// One error object as ComfyUI reports it (`type`, `message`, `details`, `extra_info`).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct PromptError {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: String,
    #[serde(default)]
    pub extra_info: Value,
}

/// The errors of one node in `node_errors`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct NodeError {
    #[serde(default)]
    pub errors: Vec<PromptError>,
    #[serde(default)]
    pub dependent_outputs: Vec<Value>,
    #[serde(default)]
    pub class_type: String,
}

/// What `POST /prompt` is sent.
#[derive(Debug, Clone, Serialize)]
pub struct PromptRequest {
    pub prompt: Value,
    pub client_id: String,
    pub prompt_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_data: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub front: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_execution_targets: Option<Vec<String>>,
}

impl PromptRequest {
    /// A request with a fresh UUID prompt id (what ComfyUI 0.26 requires) and no extras.
    pub fn new(prompt: Value, client_id: impl Into<String>) -> Self {
        PromptRequest {
            prompt,
            client_id: client_id.into(),
            prompt_id: uuid::Uuid::new_v4().to_string(),
            extra_data: None,
            front: false,
            number: None,
            partial_execution_targets: None,
        }
    }
}

/// One item of `GET /queue`: `[number, prompt_id, prompt, extra_data, outputs_to_execute]`.
#[derive(Debug, Clone)]
pub struct QueueItem {
    pub number: f64,
    pub prompt_id: String,
    pub prompt: Value,
    pub extra_data: Value,
}

/// `GET /queue`, with pending items sorted by the order ComfyUI will run them.
#[derive(Debug, Clone, Default)]
pub struct QueueSnapshot {
    pub running: Vec<QueueItem>,
    pub pending: Vec<QueueItem>,
}

impl QueueSnapshot {
    pub fn is_running(&self, prompt_id: &str) -> bool {
        self.running.iter().any(|item| item.prompt_id == prompt_id)
    }

    /// Zero-based position among pending prompts.
    pub fn pending_position(&self, prompt_id: &str) -> Option<usize> {
        self.pending.iter().position(|item| item.prompt_id == prompt_id)
    }
}

/// A file ComfyUI produced or holds, as in `executed` outputs and `/view` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub struct FileRef {
    pub filename: String,
    #[serde(default)]
    pub subfolder: String,
    #[serde(rename = "type", default = "default_file_type")]
    pub kind: String,
}

fn default_file_type() -> String {
    "output".to_owned()
}

/// An output file with the node that made it and what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFile {
    pub node_id: String,
    /// The key in the node's UI dict: `images`, `gifs`, `audio`, `video`, `latents`...
    pub key: String,
    pub file: FileRef,
    /// True for animated images and videos (`"animated": [true]`).
    #[serde(default)]
    pub animated: bool,
}

impl OutputFile {
    /// The media type guessed from the file name.
    pub fn media_type(&self) -> &'static str {
        media_type_for(&self.file.filename)
    }
}

/// A MIME type from a file extension; `application/octet-stream` when unknown.
pub fn media_type_for(filename: &str) -> &'static str {
    let extension = filename
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mov") => "video/quicktime",
        Some("flac") => "audio/flac",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("ogg" | "opus") => "audio/ogg",
        Some("glb") => "model/gltf-binary",
        Some("gltf") => "model/gltf+json",
        Some("json") => "application/json",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// Collects output files from a node-output map (`{node_id: {"images": [...], ...}}`), as found in
/// history entries; text outputs and non-file values are skipped.
pub fn output_files(outputs: &Value) -> Vec<OutputFile> {
    let mut files = Vec::new();
    let Some(nodes) = outputs.as_object() else {
        return files;
    };
    for (node_id, ui) in nodes {
        let Some(ui) = ui.as_object() else { continue };
        let animated = ui
            .get("animated")
            .and_then(Value::as_array)
            .is_some_and(|flags| flags.iter().any(|flag| flag.as_bool() == Some(true)));
        for (key, items) in ui {
            let Some(items) = items.as_array() else { continue };
            for item in items {
                if let Ok(file) = serde_json::from_value::<FileRef>(item.clone())
                    && !file.filename.is_empty()
                {
                    files.push(OutputFile {
                        node_id: node_id.clone(),
                        key: key.clone(),
                        file,
                        animated,
                    });
                }
            }
        }
    }
    files
}

/// A text an output node showed (`{"text": [...]}` in its UI dict: `PreviewAny`, and the
/// show-text nodes of custom packs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputText {
    pub node_id: String,
    pub text: String,
}

/// Most characters kept of one output text: a node can show a whole tensor dump.
pub const MAXIMUM_OUTPUT_TEXT_CHARS: usize = 256 * 1024;

/// Collects the texts of a node-output map, in node order; a text longer than
/// [`MAXIMUM_OUTPUT_TEXT_CHARS`] is cut there.
pub fn output_texts(outputs: &Value) -> Vec<OutputText> {
    let Some(nodes) = outputs.as_object() else {
        return Vec::new();
    };
    let mut texts = Vec::new();
    for (node_id, ui) in nodes {
        let Some(items) = ui.get("text").and_then(Value::as_array) else {
            continue;
        };
        for text in items.iter().filter_map(Value::as_str) {
            texts.push(OutputText {
                node_id: node_id.clone(),
                text: text.chars().take(MAXIMUM_OUTPUT_TEXT_CHARS).collect(),
            });
        }
    }
    texts
}

/// The final state of a prompt according to its history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryOutcome {
    Success,
    Error,
    Interrupted,
}

/// One entry of `GET /history/{prompt_id}`.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub prompt_id: String,
    pub outcome: HistoryOutcome,
    /// Raw node-output map (`outputs`).
    pub outputs: Value,
    /// The `execution_error` payload when the prompt failed.
    pub error: Option<Value>,
    /// `execution_start` and end timestamps (ms since the epoch), when recorded.
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// The prompt as ComfyUI ran it (after coercion).
    pub prompt: Value,
    /// Its number in ComfyUI's queue (`prompt[0]`): later submissions have larger ones, except
    /// those queued at the front.
    pub queue_number: Option<f64>,
}

impl HistoryEntry {
    pub fn from_json(prompt_id: &str, entry: &Value) -> Self {
        let status = entry.get("status").cloned().unwrap_or(Value::Null);
        let messages = status
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let message_named = |name: &str| {
            messages
                .iter()
                .find(|message| message.get(0).and_then(Value::as_str) == Some(name))
                .and_then(|message| message.get(1))
                .cloned()
        };
        let interrupted = message_named("execution_interrupted");
        let error = message_named("execution_error");
        let status_text = status
            .get("status_str")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let outcome = if interrupted.is_some() {
            HistoryOutcome::Interrupted
        } else if status_text == "success" || (status_text.is_empty() && error.is_none()) {
            HistoryOutcome::Success
        } else {
            HistoryOutcome::Error
        };
        let timestamp = |name: &str| message_named(name).and_then(|data| data.get("timestamp")?.as_i64());
        let finished_at_ms = timestamp("execution_success")
            .or_else(|| timestamp("execution_error"))
            .or_else(|| timestamp("execution_interrupted"));
        HistoryEntry {
            prompt_id: prompt_id.to_owned(),
            outcome,
            outputs: entry.get("outputs").cloned().unwrap_or(Value::Null),
            error,
            started_at_ms: timestamp("execution_start"),
            finished_at_ms,
            prompt: entry.pointer("/prompt/2").cloned().unwrap_or(Value::Null),
            queue_number: entry.pointer("/prompt/0").and_then(Value::as_f64),
        }
    }

    pub fn files(&self) -> Vec<OutputFile> {
        output_files(&self.outputs)
    }

    pub fn texts(&self) -> Vec<OutputText> {
        output_texts(&self.outputs)
    }
}

/// `GET /system_stats`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SystemStats {
    pub system: SystemInfo,
    #[serde(default)]
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SystemInfo {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub ram_total: u64,
    #[serde(default)]
    pub ram_free: u64,
    #[serde(default)]
    pub comfyui_version: String,
    #[serde(default)]
    pub python_version: String,
    #[serde(default)]
    pub pytorch_version: String,
    #[serde(default)]
    pub embedded_python: bool,
    #[serde(default)]
    pub argv: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Device {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub index: Option<i64>,
    #[serde(default)]
    pub vram_total: u64,
    #[serde(default)]
    pub vram_free: u64,
}

/// One file of `GET /experiment/models/{folder}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ModelFile {
    pub name: String,
    #[serde(rename = "pathIndex", default)]
    pub path_index: u32,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub modified: Option<f64>,
}

/// The reply of `POST /upload/image` and `/upload/mask`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct UploadedFile {
    pub name: String,
    #[serde(default)]
    pub subfolder: String,
    #[serde(rename = "type", default = "default_input_type")]
    pub kind: String,
}

fn default_input_type() -> String {
    "input".to_owned()
}

impl UploadedFile {
    /// The value a `LoadImage`-style node expects: `subfolder/name` or `name`.
    pub fn node_value(&self) -> String {
        if self.subfolder.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.subfolder, self.name)
        }
    }
}

/// What kind of directory an upload goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadKind {
    Input,
    Temp,
    Output,
}

impl UploadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadKind::Input => "input",
            UploadKind::Temp => "temp",
            UploadKind::Output => "output",
        }
    }
}

/// A downloaded file.
#[derive(Debug, Clone)]
pub struct Download {
    pub bytes: bytes::Bytes,
    pub content_type: String,
}

/// A file from `/view` as a stream of chunks ([`ComfyClient::view_stream`](crate::ComfyClient::view_stream)).
pub struct ViewStream {
    pub content_type: String,
    /// The length ComfyUI announced, when it did.
    pub length: Option<u64>,
    pub body:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, crate::ClientError>> + Send>>,
}

impl std::fmt::Debug for ViewStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ViewStream")
            .field("content_type", &self.content_type)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn history_entry_outcomes() {
        let success = json!({"prompt": [0, "p", {"1": {}}, {}, ["3"]],
            "outputs": {"9": {"images": [{"filename": "a_00001_.png", "subfolder": "", "type": "output"}]}},
            "status": {"status_str": "success", "completed": true, "messages": [
                ["execution_start", {"prompt_id": "p", "timestamp": 10}],
                ["execution_success", {"prompt_id": "p", "timestamp": 25}]]}});
        let entry = HistoryEntry::from_json("p", &success);
        assert_eq!(entry.outcome, HistoryOutcome::Success);
        assert_eq!(entry.files().len(), 1);
        assert_eq!(entry.started_at_ms, Some(10));
        assert_eq!(entry.finished_at_ms, Some(25));
        let interrupted = json!({"status": {"status_str": "error", "completed": false, "messages": [
            ["execution_interrupted", {"prompt_id": "p", "node_id": "3", "timestamp": 5}]]}, "outputs": {}});
        assert_eq!(
            HistoryEntry::from_json("p", &interrupted).outcome,
            HistoryOutcome::Interrupted
        );
        let failed = json!({"status": {"status_str": "error", "messages": [
            ["execution_error", {"exception_message": "boom"}]]}, "outputs": {}});
        let entry = HistoryEntry::from_json("p", &failed);
        assert_eq!(entry.outcome, HistoryOutcome::Error);
        assert_eq!(entry.error.unwrap()["exception_message"], "boom");
    }

    #[test]
    fn output_files_skip_text_and_mark_animation() {
        let outputs = json!({
            "5": {"text": ["hello"]},
            "7": {"images": [{"filename": "v.mp4", "subfolder": "video", "type": "output"}], "animated": [true]}
        });
        let files = output_files(&outputs);
        assert_eq!(files.len(), 1);
        assert!(files[0].animated);
        assert_eq!(files[0].media_type(), "video/mp4");
        let texts = output_texts(&outputs);
        assert_eq!(
            texts,
            vec![OutputText {
                node_id: "5".to_owned(),
                text: "hello".to_owned()
            }]
        );
    }

    #[test]
    fn rejection_reads_well() {
        let rejection: PromptRejection = serde_json::from_value(json!({
            "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
            "node_errors": {"3": {"errors": [{"type": "value_smaller_than_min", "message": "Value 0 smaller than min of 1", "details": "steps", "extra_info": {}}], "dependent_outputs": ["9"], "class_type": "KSampler"}}
        })).unwrap();
        assert_eq!(
            rejection.to_string(),
            "Prompt outputs failed validation; node 3 (KSampler): Value 0 smaller than min of 1: steps"
        );
    }
}
