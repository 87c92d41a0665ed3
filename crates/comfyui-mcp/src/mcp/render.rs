//! Turning engine results and errors into MCP tool results: readable text for the model, a
//! size-bounded inline preview, a `resource_link` and the plain URL for every output. Pure: the
//! engine hands over everything shown (previews included); nothing here does IO or waits.

use comfy_engine::types::{FileRef, JobPhase, JobSnapshot, OutputFile};
use rmcp::model::{CallToolResult, ContentBlock, Resource, ResourceTemplate};
use serde_json::{Value, json};

use comfy_engine::jobs::WaitOutcome;
use comfy_engine::media::Preview;
use comfy_engine::{BackendEntry, EngineError};

pub fn error_text(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

pub fn json_result(value: &Value) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(
        serde_json::to_string_pretty(value).unwrap_or_default(),
    )])
}

/// A structured result: `value` as `structuredContent` and, for clients that read only text, the
/// same JSON pretty-printed in a text block (what an unstructured tool shows).
pub fn structured_result<T: serde::Serialize>(value: &T) -> CallToolResult {
    match serde_json::to_value(value) {
        Ok(value) => {
            let mut result = CallToolResult::structured(Value::Null);
            result.content = vec![ContentBlock::text(
                serde_json::to_string_pretty(&value).unwrap_or_default(),
            )];
            result.structured_content = Some(value);
            result
        }
        Err(error) => error_text(format!("the result cannot be written as JSON: {error}")),
    }
}

/// A readable tool error; validation failures list every finding with its suggestion.
pub fn engine_error(error: &EngineError) -> CallToolResult {
    let mut text = error.to_string();
    if let EngineError::Invalid { report, .. } = error {
        if let Some(rejection) = &report.rejection {
            text.push_str(&format!("\n{} ({})", rejection.message, rejection.code));
        }
        text.push_str(&comfy_engine::workflows::describe_errors(report.errors()));
    }
    error_text(text)
}

/// Where the HTTP transport streams backends' files (`serve/downloads.rs`).
pub const DOWNLOAD_ROUTE: &str = "/outputs";

/// `/outputs/BACKEND/TYPE/SUB/FILENAME`: the HTTP transport's path that streams `file` whole.
pub fn download_path(backend: &str, file: &FileRef) -> String {
    let subfolder = if file.subfolder.is_empty() {
        String::new()
    } else {
        format!("{}/", file.subfolder)
    };
    format!(
        "{DOWNLOAD_ROUTE}/{backend}/{}/{subfolder}{}",
        file.kind, file.filename
    )
}

/// `comfyui://BACKEND/TYPE/FILENAME?subfolder=SUB`: a full-size output readable with resources/read.
pub fn output_uri(backend: &str, file: &FileRef) -> String {
    let mut url = url::Url::parse("comfyui://outputs/").unwrap_or_else(|_| unreachable_url());
    url.set_host(Some(backend)).ok();
    url.path_segments_mut()
        .map(|mut segments| {
            segments.clear().push(&file.kind).push(&file.filename);
        })
        .ok();
    if !file.subfolder.is_empty() {
        url.query_pairs_mut().append_pair("subfolder", &file.subfolder);
    }
    url.to_string()
}

fn unreachable_url() -> url::Url {
    // `comfyui://outputs/` always parses; this keeps the function total without a panic path.
    url::Url::parse("comfyui://outputs/").unwrap_or_else(|_| url::Url::parse("data:,").expect("data URL"))
}

pub fn parse_output_uri(uri: &str) -> Option<(String, FileRef)> {
    let url = url::Url::parse(uri).ok()?;
    if url.scheme() != "comfyui" {
        return None;
    }
    let backend = url.host_str()?.to_owned();
    let mut segments = url.path_segments()?;
    let kind = segments.next()?.to_owned();
    let filename = percent_decode(segments.next()?);
    if segments.next().is_some() {
        return None;
    }
    let subfolder = url
        .query_pairs()
        .find(|(key, _)| key == "subfolder")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    Some((
        backend,
        FileRef {
            filename,
            subfolder,
            kind,
        },
    ))
}

fn percent_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| segment.to_owned())
}

pub fn output_resource(entry: &BackendEntry, output: &OutputFile) -> Resource {
    resource(&entry.name, &entry.view_url(&output.file), output)
}

/// The resource of an output of `backend` that ComfyUI serves at `url`.
pub fn resource(backend: &str, url: &str, output: &OutputFile) -> Resource {
    Resource::new(output_uri(backend, &output.file), output.file.filename.clone())
        .with_mime_type(output.media_type())
        .with_description(format!(
            "Full-size output of node {}; also at {url}",
            output.node_id
        ))
}

/// `comfyui://job/JOB_ID/preview`: a job's latest sampler frame, readable and subscribable.
pub fn live_preview_uri(job_id: &str) -> String {
    format!("comfyui://job/{job_id}/preview")
}

/// The job id of a live preview URI. Job ids are UUIDs, so no output URI (whose second segment
/// is output, input or temp) reads as one.
pub fn parse_live_preview_uri(uri: &str) -> Option<String> {
    let job_id = uri.strip_prefix("comfyui://job/")?.strip_suffix("/preview")?;
    let well_formed = job_id.len() == 36 && job_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    well_formed.then(|| job_id.to_ascii_lowercase())
}

pub fn live_preview_template() -> ResourceTemplate {
    serde_json::from_value(json!({
        "uriTemplate": "comfyui://job/{job_id}/preview",
        "name": "Live preview of a job",
        "description": "The latest frame a running job's sampler sent (JPEG or PNG); subscribe for notifications/resources/updated on each new one",
    }))
    .unwrap_or_else(|_| ResourceTemplate::new("comfyui://job/{job_id}/preview", "Live preview of a job"))
}

pub fn output_template() -> ResourceTemplate {
    serde_json::from_value(json!({
        "uriTemplate": "comfyui://{backend}/{type}/{filename}{?subfolder}",
        "name": "ComfyUI output file",
        "description": "A full-size file from a ComfyUI backend: type is output, input or temp",
    }))
    .unwrap_or_else(|_| ResourceTemplate::new("comfyui://{backend}/{type}/{filename}", "ComfyUI output file"))
}

fn outputs_json(entry: &BackendEntry, outputs: &[OutputFile]) -> Value {
    Value::Array(
        outputs
            .iter()
            .map(|output| {
                json!({
                    "filename": output.file.filename,
                    "subfolder": output.file.subfolder,
                    "type": output.file.kind,
                    "node_id": output.node_id,
                    "media_type": output.media_type(),
                    "url": entry.view_url(&output.file),
                    "resource_uri": output_uri(&entry.name, &output.file),
                })
            })
            .collect(),
    )
}

fn snapshot_json(entry: &BackendEntry, snapshot: &JobSnapshot) -> Value {
    let mut summary = json!({
        "job_id": snapshot.prompt_id,
        "status": snapshot.phase.as_str(),
        "backend": entry.name,
    });
    if !snapshot.phase.is_final() {
        // Subscribe to it (resources/subscribe) to hear of each new sampler frame.
        summary["live_preview_uri"] = json!(live_preview_uri(&snapshot.prompt_id));
        summary["progress_percent"] = json!((snapshot.fraction * 100.0).round());
        if let Some(position) = snapshot.queue_position {
            summary["queue_position"] = json!(position);
        }
        if let Some(node) = &snapshot.current_node_title {
            summary["current_node"] = json!(node);
        }
    }
    if let (Some(started), Some(finished)) = (snapshot.started_at_ms, snapshot.finished_at_ms) {
        summary["run_seconds"] = json!(((finished - started) as f64 / 100.0).round() / 10.0);
    }
    if let Some(failure) = &snapshot.failure {
        summary["failure"] = serde_json::to_value(failure).unwrap_or(Value::Null);
    }
    if !snapshot.outputs.is_empty() {
        summary["outputs"] = outputs_json(entry, &snapshot.outputs);
    }
    if !snapshot.texts.is_empty() {
        summary["texts"] = json!(snapshot.texts);
    }
    summary
}

/// Renders how a wait ended: text summary, the previews the engine made, links to every output.
pub fn job_result(
    entry: &BackendEntry,
    outcome: &WaitOutcome,
    parameters: Option<Value>,
    previews: Vec<Preview>,
) -> CallToolResult {
    job_result_with(entry, outcome, parameters, previews, serde_json::Map::new())
}

/// [`job_result`] with what the tool made of the job's results (`findings`) in its summary.
pub fn job_result_with(
    entry: &BackendEntry,
    outcome: &WaitOutcome,
    parameters: Option<Value>,
    previews: Vec<Preview>,
    findings: serde_json::Map<String, Value>,
) -> CallToolResult {
    let snapshot = outcome.snapshot();
    let mut summary = snapshot_json(entry, snapshot);
    if let Some(parameters) = parameters {
        summary["parameters"] = parameters;
    }
    for (name, value) in findings {
        summary[name] = value;
    }
    match outcome {
        WaitOutcome::StillRunning(_) => {
            summary["note"] = json!(format!(
                "still {} after the wait limit; call get_job with job_id {:?} to keep waiting, or cancel_job to stop it",
                snapshot.phase.as_str(),
                snapshot.prompt_id
            ));
        }
        WaitOutcome::Cancelled { outcome, .. } => summary["cancel"] = json!(outcome),
        WaitOutcome::Finished(_) => {}
    }
    let mut content = vec![ContentBlock::text(
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )];
    content.extend(
        previews
            .into_iter()
            .map(|preview| ContentBlock::image(preview.base64, preview.mime_type)),
    );
    for output in &snapshot.outputs {
        content.push(ContentBlock::resource_link(output_resource(entry, output)));
    }
    if snapshot.phase == JobPhase::Failed {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_paths_name_the_backend_type_and_subfolder() {
        let file = FileRef {
            filename: "clip_00001_.mp4".to_owned(),
            subfolder: "video/day".to_owned(),
            kind: "output".to_owned(),
        };
        assert_eq!(
            download_path("backend-1", &file),
            "/outputs/backend-1/output/video/day/clip_00001_.mp4"
        );
        let top = FileRef {
            subfolder: String::new(),
            ..file
        };
        assert_eq!(download_path("b", &top), "/outputs/b/output/clip_00001_.mp4");
    }

    #[test]
    fn live_preview_uris_round_trip() {
        let job_id = "0b6f1d8b-7b4e-4d46-8935-fed39df25019";
        assert_eq!(
            parse_live_preview_uri(&live_preview_uri(job_id)).as_deref(),
            Some(job_id)
        );
        assert_eq!(parse_live_preview_uri("comfyui://job/../preview"), None);
        assert_eq!(parse_live_preview_uri("comfyui://job/output/preview"), None);
        assert_eq!(parse_live_preview_uri("comfyui://backend-1/output/x.png"), None);
        assert!(parse_output_uri(&live_preview_uri(job_id)).is_none_or(|(_, file)| file.kind != "output"));
    }

    #[test]
    fn output_uris_round_trip() {
        let file = FileRef {
            filename: "a b+c_00001_.png".into(),
            subfolder: "x/y".into(),
            kind: "output".into(),
        };
        let uri = output_uri("local", &file);
        assert!(uri.starts_with("comfyui://local/output/"), "{uri}");
        assert_eq!(parse_output_uri(&uri), Some(("local".to_owned(), file)));
        assert_eq!(parse_output_uri("http://x/y/z"), None);
        assert_eq!(parse_output_uri("comfyui://local/output"), None);
    }
}
