//! Typed calls to every ComfyUI HTTP endpoint the product uses (contract section 2).
//!
//! Error bodies are read as text because ComfyUI answers malformed requests with aiohttp's plain-text
//! 500. File names and subfolders are checked before any request so a path that could escape
//! ComfyUI's directories never leaves this process.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use crate::error::ClientError;
use crate::types::{
    Download, FileRef, HistoryEntry, ModelFile, PromptAccepted, PromptRejection, PromptRequest, QueueItem,
    QueueSnapshot, SystemStats, UploadKind, UploadedFile,
};

/// How to reach one backend.
#[derive(Clone)]
pub struct ClientOptions {
    /// Extra headers sent with every request and the websocket handshake (an auth proxy's token...).
    pub headers: Vec<(String, String)>,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are often credentials: show only their names.
        formatter
            .debug_struct("ClientOptions")
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            headers: Vec::new(),
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A stateless HTTP client for one ComfyUI backend. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ComfyClient {
    base: Url,
    http: reqwest::Client,
    options: ClientOptions,
}

/// How far back `GET /history` should look.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryQuery {
    pub max_items: Option<u32>,
    pub offset: Option<u32>,
}

impl ComfyClient {
    /// `base` is the server root, e.g. `http://127.0.0.1:8188`.
    pub fn new(base: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let mut url = Url::parse(base.trim()).map_err(|error| ClientError::InvalidUrl {
            url: base.to_owned(),
            reason: error.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::InvalidUrl {
                url: base.to_owned(),
                reason: "the scheme must be http or https".to_owned(),
            });
        }
        if url.host().is_none() {
            return Err(ClientError::InvalidUrl {
                url: base.to_owned(),
                reason: "no host".to_owned(),
            });
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| ClientError::InvalidUrl {
                url: base.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(ComfyClient {
            base: url,
            http,
            options,
        })
    }

    /// The server root this client talks to, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The websocket URL for `client_id` (`ws://host/ws?clientId=...`).
    pub fn websocket_url(&self, client_id: &str) -> String {
        let mut url = self.base.clone();
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        // Changing http -> ws is always accepted for URLs with a host.
        let _ = url.set_scheme(scheme);
        let mut url = url.join("ws").unwrap_or(url);
        url.query_pairs_mut().append_pair("clientId", client_id);
        url.to_string()
    }

    /// The public `/view` URL of a file (what a person or a client can open).
    pub fn view_url(&self, file: &FileRef) -> String {
        let mut url = self.endpoint("view");
        url.query_pairs_mut()
            .append_pair("filename", &file.filename)
            .append_pair("subfolder", &file.subfolder)
            .append_pair("type", &file.kind);
        url.to_string()
    }

    fn endpoint(&self, path: &str) -> Url {
        // `path` never starts with '/', so it joins below the base path (reverse proxies with a prefix).
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut builder = self.http.request(method, self.endpoint(path));
        for (name, value) in &self.options.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
    }

    async fn send(&self, builder: RequestBuilder, path: &str) -> Result<Response, ClientError> {
        builder.send().await.map_err(|source| ClientError::Unreachable {
            url: self.url_of(path),
            source,
        })
    }

    fn url_of(&self, path: &str) -> String {
        self.endpoint(path).to_string()
    }

    async fn expect_ok(&self, response: Response, path: &str) -> Result<Response, ClientError> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Err(ClientError::Status {
            url: self.url_of(path),
            status,
            body: truncate(&body, 500),
        })
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.send(self.request(Method::GET, path), path).await?;
        let response = self.expect_ok(response, path).await?;
        self.decode(response, path).await
    }

    async fn decode<T: DeserializeOwned>(&self, response: Response, path: &str) -> Result<T, ClientError> {
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.url_of(path),
                source,
            })?;
        serde_json::from_slice(&bytes).map_err(|error| ClientError::Decode {
            url: self.url_of(path),
            message: format!(
                "{error}; body starts with {:?}",
                truncate(&String::from_utf8_lossy(&bytes), 200)
            ),
        })
    }

    async fn post_json_empty(&self, path: &str, body: &Value) -> Result<(), ClientError> {
        let response = self
            .send(self.request(Method::POST, path).json(body), path)
            .await?;
        self.expect_ok(response, path).await.map(|_| ())
    }

    /// `POST /prompt`. A 400 becomes [`ClientError::Rejected`] with ComfyUI's error and node errors.
    pub async fn queue_prompt(&self, request: &PromptRequest) -> Result<PromptAccepted, ClientError> {
        let path = "prompt";
        let response = self
            .send(self.request(Method::POST, path).json(request), path)
            .await?;
        if response.status() == StatusCode::BAD_REQUEST {
            let bytes = response
                .bytes()
                .await
                .map_err(|source| ClientError::Unreachable {
                    url: self.url_of(path),
                    source,
                })?;
            return Err(match serde_json::from_slice::<PromptRejection>(&bytes) {
                Ok(rejection) => ClientError::Rejected(Box::new(rejection)),
                Err(_) => ClientError::Status {
                    url: self.url_of(path),
                    status: 400,
                    body: truncate(&String::from_utf8_lossy(&bytes), 500),
                },
            });
        }
        let response = self.expect_ok(response, path).await?;
        self.decode(response, path).await
    }

    /// `GET /queue`, pending items sorted as ComfyUI will run them (its heap order).
    pub async fn queue(&self) -> Result<QueueSnapshot, ClientError> {
        let raw: Value = self.get_json("queue").await?;
        let parse = |key: &str| -> Vec<QueueItem> {
            raw.get(key)
                .and_then(Value::as_array)
                .map(|items| items.iter().filter_map(parse_queue_item).collect())
                .unwrap_or_default()
        };
        let mut pending = parse("queue_pending");
        pending.sort_by(|left, right| {
            left.number
                .total_cmp(&right.number)
                .then_with(|| left.prompt_id.cmp(&right.prompt_id))
        });
        Ok(QueueSnapshot {
            running: parse("queue_running"),
            pending,
        })
    }

    /// Removes pending prompts from the queue (running ones are never touched by ComfyUI here).
    pub async fn delete_from_queue(&self, prompt_ids: &[String]) -> Result<(), ClientError> {
        self.post_json_empty("queue", &json!({ "delete": prompt_ids }))
            .await
    }

    /// Interrupts `prompt_id` if it is the running prompt; with `None`, whatever runs.
    pub async fn interrupt(&self, prompt_id: Option<&str>) -> Result<(), ClientError> {
        let body = match prompt_id {
            Some(id) => json!({ "prompt_id": id }),
            None => json!({}),
        };
        self.post_json_empty("interrupt", &body).await
    }

    /// `POST /free`: unload models and/or free cached memory between prompts.
    pub async fn free(&self, unload_models: bool, free_memory: bool) -> Result<(), ClientError> {
        self.post_json_empty(
            "free",
            &json!({ "unload_models": unload_models, "free_memory": free_memory }),
        )
        .await
    }

    /// `GET /history/{prompt_id}`; `None` when ComfyUI has no entry (still queued, running or unknown).
    pub async fn history_entry(&self, prompt_id: &str) -> Result<Option<HistoryEntry>, ClientError> {
        let path = format!("history/{}", urlencode_segment(prompt_id));
        let raw: Value = self.get_json(&path).await?;
        Ok(raw
            .get(prompt_id)
            .map(|entry| HistoryEntry::from_json(prompt_id, entry)))
    }

    /// `GET /history`, oldest first.
    pub async fn history(&self, query: HistoryQuery) -> Result<Vec<HistoryEntry>, ClientError> {
        let path = "history";
        let mut builder = self.request(Method::GET, path);
        if let Some(max_items) = query.max_items {
            builder = builder.query(&[("max_items", max_items)]);
        }
        if let Some(offset) = query.offset {
            builder = builder.query(&[("offset", offset)]);
        }
        let response = self.expect_ok(self.send(builder, path).await?, path).await?;
        let raw: Value = self.decode(response, path).await?;
        Ok(raw
            .as_object()
            .map(|entries| {
                entries
                    .iter()
                    .map(|(id, entry)| HistoryEntry::from_json(id, entry))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `GET /object_info` as raw JSON (parse it with `comfy_workflow::ObjectInfo`).
    pub async fn object_info(&self) -> Result<Value, ClientError> {
        self.get_json("object_info").await
    }

    /// `GET /object_info/{class}`; `None` for an unknown class.
    pub async fn object_info_for(&self, class_type: &str) -> Result<Option<Value>, ClientError> {
        let raw: Value = self
            .get_json(&format!("object_info/{}", urlencode_segment(class_type)))
            .await?;
        Ok(raw.get(class_type).cloned())
    }

    pub async fn system_stats(&self) -> Result<SystemStats, ClientError> {
        self.get_json("system_stats").await
    }

    /// `GET /features`: server feature flags.
    pub async fn features(&self) -> Result<Value, ClientError> {
        self.get_json("features").await
    }

    /// Embedding names without extension.
    pub async fn embeddings(&self) -> Result<Vec<String>, ClientError> {
        self.get_json("embeddings").await
    }

    /// Model folder keys (`checkpoints`, `loras`, ...).
    pub async fn model_folders(&self) -> Result<Vec<String>, ClientError> {
        self.get_json("models").await
    }

    /// Files in one model folder; `None` when the folder is unknown to this backend.
    pub async fn models(&self, folder: &str) -> Result<Option<Vec<String>>, ClientError> {
        check_segment(folder)?;
        self.optional_json(&format!("models/{}", urlencode_segment(folder)))
            .await
    }

    /// Files with sizes and times (`/experiment/models/{folder}`); `None` for an unknown folder.
    pub async fn model_files(&self, folder: &str) -> Result<Option<Vec<ModelFile>>, ClientError> {
        check_segment(folder)?;
        self.optional_json(&format!("experiment/models/{}", urlencode_segment(folder)))
            .await
    }

    /// The safetensors `__metadata__` of a model file; `None` when there is none.
    pub async fn view_metadata(&self, folder: &str, filename: &str) -> Result<Option<Value>, ClientError> {
        check_segment(folder)?;
        check_relative_path(filename)?;
        let path = format!("view_metadata/{}", urlencode_segment(folder));
        let builder = self.request(Method::GET, &path).query(&[("filename", filename)]);
        let response = self.send(builder, &path).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.expect_ok(response, &path).await?;
        let value: Value = self.decode(response, &path).await?;
        Ok(if value.is_null() { None } else { Some(value) })
    }

    async fn optional_json<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ClientError> {
        let response = self.send(self.request(Method::GET, path), path).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.expect_ok(response, path).await?;
        self.decode(response, path).await.map(Some)
    }

    /// Downloads a file through `/view`. `preview` asks ComfyUI for a re-encoded preview
    /// (`"webp;80"`, `"jpeg;75"`).
    pub async fn view(&self, file: &FileRef, preview: Option<&str>) -> Result<Download, ClientError> {
        check_file_name(&file.filename)?;
        check_relative_path(&file.subfolder)?;
        if !matches!(file.kind.as_str(), "output" | "input" | "temp") {
            return Err(ClientError::UnsafePath {
                path: file.kind.clone(),
                reason: "type must be output, input or temp",
            });
        }
        let path = "view";
        let mut builder = self.request(Method::GET, path).query(&[
            ("filename", file.filename.as_str()),
            ("subfolder", file.subfolder.as_str()),
            ("type", file.kind.as_str()),
        ]);
        if let Some(preview) = preview {
            builder = builder.query(&[("preview", preview)]);
        }
        let response = self.expect_ok(self.send(builder, path).await?, path).await?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.url_of(path),
                source,
            })?;
        Ok(Download { bytes, content_type })
    }

    /// `POST /upload/image`. Without `overwrite`, ComfyUI reuses an identical file and renames a
    /// different one (`name (1).png`); the reply has the final name.
    pub async fn upload_image(
        &self,
        bytes: Vec<u8>,
        filename: &str,
        subfolder: &str,
        kind: UploadKind,
        overwrite: bool,
    ) -> Result<UploadedFile, ClientError> {
        self.upload("upload/image", bytes, filename, subfolder, kind, overwrite, None)
            .await
    }

    /// `POST /upload/mask`: stores `original`'s pixels with the uploaded mask's alpha.
    pub async fn upload_mask(
        &self,
        bytes: Vec<u8>,
        filename: &str,
        original: &FileRef,
        overwrite: bool,
    ) -> Result<UploadedFile, ClientError> {
        check_file_name(&original.filename)?;
        check_relative_path(&original.subfolder)?;
        let original_ref = serde_json::to_string(original).unwrap_or_default();
        self.upload(
            "upload/mask",
            bytes,
            filename,
            &original.subfolder,
            UploadKind::Input,
            overwrite,
            Some(original_ref),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload(
        &self,
        path: &str,
        bytes: Vec<u8>,
        filename: &str,
        subfolder: &str,
        kind: UploadKind,
        overwrite: bool,
        original_ref: Option<String>,
    ) -> Result<UploadedFile, ClientError> {
        check_file_name(filename)?;
        check_relative_path(subfolder)?;
        let mime = crate::types::media_type_for(filename);
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(filename.to_owned())
            .mime_str(mime)
            .map_err(|error| ClientError::Decode {
                url: self.url_of(path),
                message: error.to_string(),
            })?;
        let mut form = reqwest::multipart::Form::new()
            .part("image", part)
            .text("type", kind.as_str())
            .text("subfolder", subfolder.to_owned())
            .text("overwrite", if overwrite { "true" } else { "false" });
        if let Some(original_ref) = original_ref {
            form = form.text("original_ref", original_ref);
        }
        let response = self
            .send(self.request(Method::POST, path).multipart(form), path)
            .await?;
        let response = self.expect_ok(response, path).await?;
        self.decode(response, path).await
    }

    /// `GET /api/jobs/{id}` on servers that have it (ComfyUI >= 0.2x); `None` when the route is absent
    /// or the job unknown.
    pub async fn job(&self, prompt_id: &str) -> Result<Option<Value>, ClientError> {
        self.optional_json(&format!("api/jobs/{}", urlencode_segment(prompt_id)))
            .await
    }
}

fn parse_queue_item(item: &Value) -> Option<QueueItem> {
    let parts = item.as_array()?;
    Some(QueueItem {
        number: parts.first()?.as_f64().unwrap_or_default(),
        prompt_id: parts.get(1)?.as_str()?.to_owned(),
        prompt: parts.get(2).cloned().unwrap_or(Value::Null),
        extra_data: parts.get(3).cloned().unwrap_or(Value::Null),
    })
}

fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

fn urlencode_segment(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A bare file name: no separators, no `..`, not empty.
pub fn check_file_name(name: &str) -> Result<(), ClientError> {
    let refuse = |reason| {
        Err(ClientError::UnsafePath {
            path: name.to_owned(),
            reason,
        })
    };
    if name.trim().is_empty() {
        return refuse("empty file name");
    }
    if name.contains(['/', '\\', '\0']) {
        return refuse("a file name may not contain path separators");
    }
    if name == "." || name == ".." || name.contains("..") {
        return refuse("a file name may not contain '..'");
    }
    Ok(())
}

/// A relative path below a ComfyUI directory: no absolute paths, no `..` components.
pub fn check_relative_path(path: &str) -> Result<(), ClientError> {
    let refuse = |reason| {
        Err(ClientError::UnsafePath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return Ok(());
    }
    if path.starts_with(['/', '\\']) || path.contains('\0') || path.get(1..2) == Some(":") {
        return refuse("the path must be relative");
    }
    if path.split(['/', '\\']).any(|component| component == "..") {
        return refuse("the path may not contain '..'");
    }
    Ok(())
}

fn check_segment(segment: &str) -> Result<(), ClientError> {
    if segment.is_empty() || segment.contains(['/', '\\', '\0']) || segment.contains("..") {
        return Err(ClientError::UnsafePath {
            path: segment.to_owned(),
            reason: "not a valid folder name",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_traversal() {
        for bad in ["../x.png", "a/b.png", "..", "x\\y.png", "", "a..b"] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
        for bad in ["../..", "/etc", "a/../../b", "C:\\x", "\\\\server"] {
            assert!(check_relative_path(bad).is_err(), "{bad}");
        }
        assert!(check_file_name("ComfyUI_00001_.png").is_ok());
        assert!(check_relative_path("video/clips").is_ok());
    }

    #[test]
    fn urls_keep_a_proxy_prefix() {
        let client = ComfyClient::new("http://host:8188/comfy", ClientOptions::default()).unwrap();
        assert_eq!(
            client.websocket_url("abc"),
            "ws://host:8188/comfy/ws?clientId=abc"
        );
        let file = FileRef {
            filename: "a b.png".into(),
            subfolder: String::new(),
            kind: "output".into(),
        };
        assert_eq!(
            client.view_url(&file),
            "http://host:8188/comfy/view?filename=a+b.png&subfolder=&type=output"
        );
        assert!(ComfyClient::new("ftp://x", ClientOptions::default()).is_err());
    }
}
