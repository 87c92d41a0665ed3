//! Websocket frames from ComfyUI parsed into typed events (contract section 6): JSON messages and
//! the binary preview/text frames, including the preview-with-metadata format negotiated through
//! `feature_flags`.

use bytes::Bytes;
use serde_json::Value;

/// One message from ComfyUI's websocket.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Queue depth changed; `sid` only on the first frame of a connection.
    Status {
        queue_remaining: u64,
        sid: Option<String>,
    },
    ExecutionStart {
        prompt_id: String,
    },
    ExecutionCached {
        prompt_id: String,
        nodes: Vec<String>,
    },
    /// A node starts; `node: None` with a prompt id means that prompt is finished.
    Executing {
        prompt_id: Option<String>,
        node: Option<String>,
        display_node: Option<String>,
    },
    Progress {
        prompt_id: Option<String>,
        node: Option<String>,
        value: f64,
        max: f64,
    },
    ProgressState {
        prompt_id: String,
        nodes: Value,
    },
    Executed {
        prompt_id: String,
        node: String,
        output: Value,
    },
    ExecutionSuccess {
        prompt_id: String,
    },
    ExecutionError {
        prompt_id: String,
        node_id: Option<String>,
        node_type: Option<String>,
        message: String,
        details: Value,
    },
    ExecutionInterrupted {
        prompt_id: String,
        node_id: Option<String>,
        node_type: Option<String>,
    },
    FeatureFlags(Value),
    /// A latent or image preview. `prompt_id`/`node_id` are known only with preview metadata.
    Preview {
        prompt_id: Option<String>,
        node_id: Option<String>,
        media_type: String,
        image: Bytes,
    },
    /// Text a node sent (`send_progress_text`), always broadcast by ComfyUI.
    Text {
        node_id: String,
        text: String,
    },
    /// Any other message type (custom nodes may send their own).
    Other {
        kind: String,
        data: Value,
    },
}

impl Event {
    /// The prompt this event belongs to, when it says.
    pub fn prompt_id(&self) -> Option<&str> {
        match self {
            Event::ExecutionStart { prompt_id }
            | Event::ExecutionCached { prompt_id, .. }
            | Event::ProgressState { prompt_id, .. }
            | Event::Executed { prompt_id, .. }
            | Event::ExecutionSuccess { prompt_id }
            | Event::ExecutionError { prompt_id, .. }
            | Event::ExecutionInterrupted { prompt_id, .. } => Some(prompt_id),
            Event::Executing { prompt_id, .. }
            | Event::Progress { prompt_id, .. }
            | Event::Preview { prompt_id, .. } => prompt_id.as_deref(),
            _ => None,
        }
    }
}

fn text(data: &Value, key: &str) -> Option<String> {
    match data.get(key)? {
        Value::String(value) => Some(value.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Parses a text frame. `None` for frames that are not JSON objects with a `type`.
pub fn parse_text_frame(frame: &str) -> Option<Event> {
    let message: Value = serde_json::from_str(frame).ok()?;
    let kind = message.get("type")?.as_str()?.to_owned();
    let data = message.get("data").cloned().unwrap_or(Value::Null);
    let prompt_id = || text(&data, "prompt_id");
    let event = match kind.as_str() {
        "status" => Event::Status {
            queue_remaining: data
                .pointer("/status/exec_info/queue_remaining")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            sid: text(&data, "sid"),
        },
        "execution_start" => Event::ExecutionStart {
            prompt_id: prompt_id()?,
        },
        "execution_cached" => Event::ExecutionCached {
            prompt_id: prompt_id()?,
            nodes: data
                .get("nodes")
                .and_then(Value::as_array)
                .map(|nodes| {
                    nodes
                        .iter()
                        .filter_map(|node| node.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        },
        "executing" => Event::Executing {
            prompt_id: prompt_id(),
            node: text(&data, "node"),
            display_node: text(&data, "display_node"),
        },
        "progress" => Event::Progress {
            prompt_id: prompt_id(),
            node: text(&data, "node"),
            value: data.get("value").and_then(Value::as_f64).unwrap_or(0.0),
            max: data.get("max").and_then(Value::as_f64).unwrap_or(0.0),
        },
        "progress_state" => Event::ProgressState {
            prompt_id: prompt_id()?,
            nodes: data.get("nodes").cloned().unwrap_or(Value::Null),
        },
        "executed" => Event::Executed {
            prompt_id: prompt_id()?,
            node: text(&data, "node").unwrap_or_default(),
            output: data.get("output").cloned().unwrap_or(Value::Null),
        },
        "execution_success" => Event::ExecutionSuccess {
            prompt_id: prompt_id()?,
        },
        "execution_error" => Event::ExecutionError {
            prompt_id: prompt_id()?,
            node_id: text(&data, "node_id"),
            node_type: text(&data, "node_type"),
            message: text(&data, "exception_message")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            details: data.clone(),
        },
        "execution_interrupted" => Event::ExecutionInterrupted {
            prompt_id: prompt_id()?,
            node_id: text(&data, "node_id"),
            node_type: text(&data, "node_type"),
        },
        "feature_flags" => Event::FeatureFlags(data),
        _ => Event::Other { kind, data },
    };
    Some(event)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let chunk: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(chunk))
}

/// Parses a binary frame (contract section 6.3). `None` for unknown or truncated frames.
pub fn parse_binary_frame(frame: &Bytes) -> Option<Event> {
    match read_u32(frame, 0)? {
        1 => {
            let media_type = match read_u32(frame, 4)? {
                1 => "image/jpeg",
                2 => "image/png",
                _ => "application/octet-stream",
            };
            Some(Event::Preview {
                prompt_id: None,
                node_id: None,
                media_type: media_type.to_owned(),
                image: frame.slice(8..),
            })
        }
        3 => {
            let length = usize::try_from(read_u32(frame, 4)?).ok()?;
            let node_end = 8usize.checked_add(length)?;
            let node_id = String::from_utf8_lossy(frame.get(8..node_end)?).into_owned();
            let text = String::from_utf8_lossy(frame.get(node_end..)?).into_owned();
            Some(Event::Text { node_id, text })
        }
        4 => {
            let length = usize::try_from(read_u32(frame, 4)?).ok()?;
            let metadata_end = 8usize.checked_add(length)?;
            let metadata: Value = serde_json::from_slice(frame.get(8..metadata_end)?).ok()?;
            Some(Event::Preview {
                prompt_id: text(&metadata, "prompt_id"),
                node_id: text(&metadata, "node_id"),
                media_type: text(&metadata, "image_type").unwrap_or_else(|| "image/jpeg".to_owned()),
                image: frame.slice(metadata_end..),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_trace_frames() {
        let trace = include_str!("../tests/fixtures/txt2img.jsonl");
        let mut kinds = Vec::new();
        for line in trace.lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            if record["dir"] == "ws" {
                let event = parse_text_frame(&record["msg"].to_string()).expect("every traced frame parses");
                kinds.push(event);
            }
        }
        assert!(matches!(kinds.first(), Some(Event::Status { sid: Some(_), .. })));
        assert!(
            kinds
                .iter()
                .filter(|event| matches!(event, Event::Progress { .. }))
                .count()
                >= 4
        );
        assert!(matches!(
            kinds.last(),
            Some(Event::Executing {
                node: None,
                prompt_id: Some(_),
                ..
            })
        ));
        assert!(
            kinds
                .iter()
                .any(|event| matches!(event, Event::Executed { node, .. } if node == "9"))
        );
    }

    #[test]
    fn parses_binary_frames() {
        let mut frame = vec![0, 0, 0, 1, 0, 0, 0, 2];
        frame.extend_from_slice(b"PNGDATA");
        let event = parse_binary_frame(&Bytes::from(frame)).unwrap();
        assert!(matches!(event, Event::Preview { ref media_type, .. } if media_type == "image/png"));

        let metadata = br#"{"node_id":"3","prompt_id":"p1","image_type":"image/jpeg"}"#;
        let mut frame = vec![0, 0, 0, 4];
        frame.extend_from_slice(&(metadata.len() as u32).to_be_bytes());
        frame.extend_from_slice(metadata);
        frame.extend_from_slice(b"JPEG");
        match parse_binary_frame(&Bytes::from(frame)).unwrap() {
            Event::Preview {
                prompt_id,
                node_id,
                image,
                ..
            } => {
                assert_eq!(prompt_id.as_deref(), Some("p1"));
                assert_eq!(node_id.as_deref(), Some("3"));
                assert_eq!(&image[..], b"JPEG");
            }
            other => panic!("unexpected {other:?}"),
        }

        let mut frame = vec![0, 0, 0, 3, 0, 0, 0, 1, b'2'];
        frame.extend_from_slice(b"width: 32");
        assert_eq!(
            parse_binary_frame(&Bytes::from(frame)),
            Some(Event::Text {
                node_id: "2".into(),
                text: "width: 32".into()
            })
        );
        assert_eq!(
            parse_binary_frame(&Bytes::from_static(&[0, 0, 0, 4, 255, 255, 255, 255])),
            None
        );
        assert_eq!(parse_binary_frame(&Bytes::from_static(&[0, 0])), None);
    }
}
