//! Typed calls to every ComfyUI HTTP endpoint the product uses (contract section 2).
//!
//! Error bodies are read as text because ComfyUI answers malformed requests with aiohttp's plain-text
//! 500. File names and subfolders are checked before any request so a path that could escape
//! ComfyUI's directories never leaves this process. Every call is bounded by the limit
//! [`Timeouts`] sets for its kind, so a backend that accepts connections and never answers fails
//! with [`ClientError::Timeout`] instead of hanging the caller.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use crate::error::ClientError;

/// Largest JSON reply read (`/object_info` of a server with many custom nodes is tens of MB).
const MAXIMUM_JSON_BYTES: u64 = 256 * 1024 * 1024;

/// Largest template file or template index read (the biggest official ones are under 1 MB).
const MAXIMUM_TEMPLATE_BYTES: u64 = 16 * 1024 * 1024;
use crate::timeouts::{Activity, CallKind, Timeouts, until_idle};
use crate::types::{
    Download, FileRef, HistoryEntry, ModelFile, PromptAccepted, PromptRejection, PromptRequest, QueueItem,
    QueueSnapshot, SystemStats, UploadKind, UploadedFile, ViewStream,
};

/// How to reach one backend. The default sends no extra headers and uses [`Timeouts::default`].
#[derive(Clone, Default)]
pub struct ClientOptions {
    /// Extra headers sent with every request and the websocket handshake (an auth proxy's token...).
    pub headers: Vec<(String, String)>,
    /// How long each kind of call may go unanswered.
    pub timeouts: Timeouts,
}

impl ClientOptions {
    /// These options with other limits (`ClientOptions::default().with_timeouts(...)`).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }
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
            .field("timeouts", &self.timeouts)
            .finish()
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
        // No client-wide total: each call gets its kind's limit, and a download of any size only
        // has to keep moving.
        let http = reqwest::Client::builder()
            .connect_timeout(options.timeouts.connect)
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
        let request = builder.build().map_err(|source| self.unreachable(path, source))?;
        let method = request.method().clone();
        self.http.execute(request).await.map_err(|source| {
            // The only limit reqwest itself enforces is the connect timeout; the others are ours.
            if source.is_timeout() {
                self.timed_out(&method, path, self.options.timeouts.connect)
            } else {
                self.unreachable(path, source)
            }
        })
    }

    fn unreachable(&self, path: &str, source: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.url_of(path),
            source,
        }
    }

    fn timed_out(&self, method: &Method, path: &str, limit: Duration) -> ClientError {
        ClientError::Timeout {
            url: self.base_url().to_owned(),
            call: format!("{method} /{path}"),
            limit,
        }
    }

    /// Runs one whole call (request, status and body) under the limit of its `kind`.
    async fn bounded<T>(
        &self,
        kind: CallKind,
        method: Method,
        path: &str,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let limit = self.options.timeouts.limit(kind);
        tokio::time::timeout(limit, call)
            .await
            .unwrap_or_else(|_| Err(self.timed_out(&method, path, limit)))
    }

    /// Runs a transfer that reports progress to `activity`, failing once it has been silent for
    /// the transfer limit (however long it has been running).
    async fn while_moving<T>(
        &self,
        activity: &Activity,
        method: Method,
        path: &str,
        transfer: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let idle = self.options.timeouts.transfer_idle;
        until_idle(activity, idle, transfer)
            .await
            .unwrap_or_else(|| Err(self.timed_out(&method, path, idle)))
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

    async fn get_json<T: DeserializeOwned>(&self, path: &str, kind: CallKind) -> Result<T, ClientError> {
        self.bounded(kind, Method::GET, path, async {
            let response = self.send(self.request(Method::GET, path), path).await?;
            let response = self.expect_ok(response, path).await?;
            self.decode(response, path).await
        })
        .await
    }

    async fn decode<T: DeserializeOwned>(&self, response: Response, path: &str) -> Result<T, ClientError> {
        let bytes = self.read_within(response, path, MAXIMUM_JSON_BYTES, None).await?;
        serde_json::from_slice(&bytes).map_err(|error| ClientError::Decode {
            url: self.url_of(path),
            message: format!(
                "{error}; body starts with {:?}",
                truncate(&String::from_utf8_lossy(&bytes), 200)
            ),
        })
    }

    /// A control `POST` whose reply body does not matter.
    async fn post_json_empty(&self, path: &str, body: &Value) -> Result<(), ClientError> {
        self.bounded(CallKind::Control, Method::POST, path, async {
            let response = self
                .send(self.request(Method::POST, path).json(body), path)
                .await?;
            self.expect_ok(response, path).await.map(|_| ())
        })
        .await
    }

    /// `POST /prompt`. A 400 becomes [`ClientError::Rejected`] with ComfyUI's error and node errors.
    pub async fn queue_prompt(&self, request: &PromptRequest) -> Result<PromptAccepted, ClientError> {
        let path = "prompt";
        self.bounded(CallKind::Submit, Method::POST, path, async {
            let response = self
                .send(self.request(Method::POST, path).json(request), path)
                .await?;
            if response.status() == StatusCode::BAD_REQUEST {
                return Err(self.rejection(response, path).await);
            }
            let response = self.expect_ok(response, path).await?;
            self.decode(response, path).await
        })
        .await
    }

    /// Reads a 400 from `POST /prompt`: ComfyUI's validation report, or the raw body if it is not one.
    async fn rejection(&self, response: Response, path: &str) -> ClientError {
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(source) => return self.unreachable(path, source),
        };
        match serde_json::from_slice::<PromptRejection>(&bytes) {
            Ok(rejection) => ClientError::Rejected(Box::new(rejection)),
            Err(_) => ClientError::Status {
                url: self.url_of(path),
                status: 400,
                body: truncate(&String::from_utf8_lossy(&bytes), 500),
            },
        }
    }

    /// `GET /queue`, pending items sorted as ComfyUI will run them (its heap order).
    pub async fn queue(&self) -> Result<QueueSnapshot, ClientError> {
        let raw: Value = self.get_json("queue", CallKind::Control).await?;
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
        let raw: Value = self.get_json(&path, CallKind::Control).await?;
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
        // The whole history grows with every prompt ComfyUI keeps: a catalogue read.
        let raw: Value = self
            .bounded(CallKind::Catalog, Method::GET, path, async {
                let response = self.expect_ok(self.send(builder, path).await?, path).await?;
                self.decode(response, path).await
            })
            .await?;
        let mut entries: Vec<HistoryEntry> = raw
            .as_object()
            .map(|entries| {
                entries
                    .iter()
                    .map(|(id, entry)| HistoryEntry::from_json(id, entry))
                    .collect()
            })
            .unwrap_or_default();
        // ComfyUI sends them in the order they ran, but a JSON object loses it here (keys sorted).
        sort_oldest_first(&mut entries);
        Ok(entries)
    }

    /// `GET /object_info` as raw JSON (parse it with `comfy_workflow::ObjectInfo`). Its keys come
    /// back sorted; [`ComfyClient::object_info_text`] keeps the server's order.
    pub async fn object_info(&self) -> Result<Value, ClientError> {
        self.get_json("object_info", CallKind::Catalog).await
    }

    /// `GET /object_info` as the text ComfyUI sent, under the same limit as
    /// [`ComfyClient::object_info`]: the order of every key is the server's (the inputs of a V3
    /// dynamic combo's options are laid out in it; parse it with
    /// `comfy_workflow::ObjectInfo::from_json_text`). Checked to be UTF-8, not to be JSON.
    pub async fn object_info_text(&self) -> Result<String, ClientError> {
        let path = "object_info";
        self.bounded(CallKind::Catalog, Method::GET, path, async {
            let response = self.send(self.request(Method::GET, path), path).await?;
            let response = self.expect_ok(response, path).await?;
            let bytes = self.read_within(response, path, MAXIMUM_JSON_BYTES, None).await?;
            String::from_utf8(bytes).map_err(|error| ClientError::Decode {
                url: self.url_of(path),
                message: format!("the body is not UTF-8: {error}"),
            })
        })
        .await
    }

    /// `GET /object_info/{class}`; `None` for an unknown class.
    pub async fn object_info_for(&self, class_type: &str) -> Result<Option<Value>, ClientError> {
        let raw: Value = self
            .get_json(
                &format!("object_info/{}", urlencode_segment(class_type)),
                CallKind::Control,
            )
            .await?;
        Ok(raw.get(class_type).cloned())
    }

    pub async fn system_stats(&self) -> Result<SystemStats, ClientError> {
        self.get_json("system_stats", CallKind::Control).await
    }

    /// `GET /features`: server feature flags.
    pub async fn features(&self) -> Result<Value, ClientError> {
        self.get_json("features", CallKind::Control).await
    }

    /// Embedding names without extension.
    pub async fn embeddings(&self) -> Result<Vec<String>, ClientError> {
        self.get_json("embeddings", CallKind::Catalog).await
    }

    /// Model folder keys (`checkpoints`, `loras`, ...).
    pub async fn model_folders(&self) -> Result<Vec<String>, ClientError> {
        self.get_json("models", CallKind::Catalog).await
    }

    /// Files in one model folder; `None` when the folder is unknown to this backend.
    pub async fn models(&self, folder: &str) -> Result<Option<Vec<String>>, ClientError> {
        check_segment(folder)?;
        self.optional_json(
            &format!("models/{}", urlencode_segment(folder)),
            CallKind::Catalog,
        )
        .await
    }

    /// Files with sizes and times (`/experiment/models/{folder}`); `None` for an unknown folder.
    pub async fn model_files(&self, folder: &str) -> Result<Option<Vec<ModelFile>>, ClientError> {
        check_segment(folder)?;
        self.optional_json(
            &format!("experiment/models/{}", urlencode_segment(folder)),
            CallKind::Catalog,
        )
        .await
    }

    /// The safetensors `__metadata__` of a model file; `None` when there is none.
    pub async fn view_metadata(&self, folder: &str, filename: &str) -> Result<Option<Value>, ClientError> {
        check_segment(folder)?;
        check_relative_path(filename)?;
        let path = format!("view_metadata/{}", urlencode_segment(folder));
        let builder = self.request(Method::GET, &path).query(&[("filename", filename)]);
        // Reads a safetensors header from disk (possibly a network drive): a catalogue read.
        let value: Option<Value> = self
            .bounded(CallKind::Catalog, Method::GET, &path, async {
                let response = self.send(builder, &path).await?;
                self.optional_body(response, &path).await
            })
            .await?;
        Ok(value.filter(|value| !value.is_null()))
    }

    async fn optional_json<T: DeserializeOwned>(
        &self,
        path: &str,
        kind: CallKind,
    ) -> Result<Option<T>, ClientError> {
        self.bounded(kind, Method::GET, path, async {
            let response = self.send(self.request(Method::GET, path), path).await?;
            self.optional_body(response, path).await
        })
        .await
    }

    /// A 404 as `None`, any other success decoded.
    async fn optional_body<T: DeserializeOwned>(
        &self,
        response: Response,
        path: &str,
    ) -> Result<Option<T>, ClientError> {
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.expect_ok(response, path).await?;
        self.decode(response, path).await.map(Some)
    }

    /// Downloads a file through `/view`, at most `limit` bytes of it: a longer file fails with
    /// [`ClientError::TooLarge`] as soon as its announced length, or the bytes read, pass the
    /// limit, so a large video is never held whole by mistake. `preview` asks ComfyUI for a
    /// re-encoded preview (`"webp;80"`, `"jpeg;75"`).
    pub async fn view(
        &self,
        file: &FileRef,
        preview: Option<&str>,
        limit: u64,
    ) -> Result<Download, ClientError> {
        let path = "view";
        let mut builder = self.view_request(file)?;
        if let Some(preview) = preview {
            builder = builder.query(&[("preview", preview)]);
        }
        let activity = Activity::new();
        self.while_moving(&activity, Method::GET, path, async {
            let response = self.expect_ok(self.send(builder, path).await?, path).await?;
            self.download(response, path, &activity, limit).await
        })
        .await
    }

    /// A `/view` file passed on chunk by chunk, whatever its size: nothing here holds more than
    /// the chunk in hand. The answer's headers come within the control limit; then each chunk
    /// must come within the transfer idle limit, or the stream ends with a timeout error.
    pub async fn view_stream(&self, file: &FileRef) -> Result<ViewStream, ClientError> {
        let path = "view";
        let builder = self.view_request(file)?;
        let response = self
            .bounded(CallKind::Control, Method::GET, path, async {
                self.expect_ok(self.send(builder, path).await?, path).await
            })
            .await?;
        let content_type = content_type(&response);
        let length = response.content_length();
        let idle = self.options.timeouts.transfer_idle;
        let (url, base) = (self.url_of(path), self.base_url().to_owned());
        let body = futures_util::stream::unfold(Some(response), move |response| {
            let (url, base) = (url.clone(), base.clone());
            async move {
                let mut response = response?;
                match tokio::time::timeout(idle, response.chunk()).await {
                    Ok(Ok(Some(chunk))) => Some((Ok(chunk), Some(response))),
                    Ok(Ok(None)) => None,
                    Ok(Err(source)) => Some((Err(ClientError::Unreachable { url, source }), None)),
                    Err(_) => Some((
                        Err(ClientError::Timeout {
                            url: base,
                            call: format!("GET /{path} (no bytes for a while)"),
                            limit: idle,
                        }),
                        None,
                    )),
                }
            }
        });
        Ok(ViewStream {
            content_type,
            length,
            body: Box::pin(body),
        })
    }

    /// `GET /view` for `file`, after the checks that keep it inside ComfyUI's folders.
    fn view_request(&self, file: &FileRef) -> Result<RequestBuilder, ClientError> {
        check_file_name(&file.filename)?;
        check_relative_path(&file.subfolder)?;
        if !matches!(file.kind.as_str(), "output" | "input" | "temp") {
            return Err(ClientError::UnsafePath {
                path: file.kind.clone(),
                reason: "type must be output, input or temp",
            });
        }
        Ok(self.request(Method::GET, "view").query(&[
            ("filename", file.filename.as_str()),
            ("subfolder", file.subfolder.as_str()),
            ("type", file.kind.as_str()),
        ]))
    }

    /// Reads a `/view` body chunk by chunk, each chunk counting as a sign of life.
    async fn download(
        &self,
        response: Response,
        path: &str,
        activity: &Activity,
        limit: u64,
    ) -> Result<Download, ClientError> {
        activity.touch();
        let content_type = content_type(&response);
        let bytes = self.read_within(response, path, limit, Some(activity)).await?;
        Ok(Download {
            bytes: bytes.into(),
            content_type,
        })
    }

    /// A body of at most `limit` bytes: refused on its announced length before any byte is
    /// read, or as soon as the bytes read pass the limit (the connection is dropped then).
    async fn read_within(
        &self,
        mut response: Response,
        path: &str,
        limit: u64,
        activity: Option<&Activity>,
    ) -> Result<Vec<u8>, ClientError> {
        let announced = response.content_length();
        let too_large = |size: Option<u64>| ClientError::TooLarge {
            url: self.url_of(path),
            limit,
            size,
        };
        if announced.is_some_and(|length| length > limit) {
            return Err(too_large(announced));
        }
        // The announced length only sizes the buffer; cap it so a lying header cannot reserve GBs.
        let capacity = announced.unwrap_or(0).min(limit).min(64 << 20);
        let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|source| self.unreachable(path, source))?
        {
            if let Some(activity) = activity {
                activity.touch();
            }
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large(announced));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
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
        let activity = Activity::new();
        let length = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let part =
            reqwest::multipart::Part::stream_with_length(watched_body(bytes.into(), &activity), length)
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
        let builder = self.request(Method::POST, path).multipart(form);
        self.while_moving(&activity, Method::POST, path, async {
            let response = self.send(builder, path).await?;
            let response = self.expect_ok(response, path).await?;
            self.decode(response, path).await
        })
        .await
    }

    /// `GET /templates/index.json` as text: the workflow templates the installed template
    /// packages provide (categories, each with `templates[]`), served by ComfyUI itself; `None`
    /// when this server has none. Text, because template files may hold `NaN` (parse them with
    /// `comfy_workflow::parse_lenient`).
    pub async fn templates_index_text(&self) -> Result<Option<String>, ClientError> {
        self.optional_text("templates/index.json", MAXIMUM_TEMPLATE_BYTES)
            .await
    }

    /// One template's UI workflow as text (`GET /templates/{name}.json`); `None` when there is
    /// no such template.
    pub async fn template_text(&self, name: &str) -> Result<Option<String>, ClientError> {
        check_file_name(name)?;
        let path = format!("templates/{}.json", urlencode_segment(name));
        self.optional_text(&path, MAXIMUM_TEMPLATE_BYTES).await
    }

    /// A UTF-8 body of at most `limit` bytes; `None` on 404.
    async fn optional_text(&self, path: &str, limit: u64) -> Result<Option<String>, ClientError> {
        self.bounded(CallKind::Catalog, Method::GET, path, async {
            let response = self.send(self.request(Method::GET, path), path).await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let response = self.expect_ok(response, path).await?;
            let bytes = self.read_within(response, path, limit, None).await?;
            String::from_utf8(bytes)
                .map(Some)
                .map_err(|error| ClientError::Decode {
                    url: self.url_of(path),
                    message: format!("the body is not UTF-8: {error}"),
                })
        })
        .await
    }

    /// `GET /api/jobs/{id}` on servers that have it (ComfyUI >= 0.2x); `None` when the route is absent
    /// or the job unknown.
    pub async fn job(&self, prompt_id: &str) -> Result<Option<Value>, ClientError> {
        self.optional_json(
            &format!("api/jobs/{}", urlencode_segment(prompt_id)),
            CallKind::Control,
        )
        .await
    }
}

/// An upload body sent in slices, each slice taken counting as a sign of life: hyper asks for the
/// next slice only once the previous one is on its way, so a backend that stops reading stops the
/// clock.
fn watched_body(bytes: Bytes, activity: &Activity) -> reqwest::Body {
    const SLICE: usize = 64 * 1024;
    let activity = activity.clone();
    let total = bytes.len();
    let slices = (0..total)
        .step_by(SLICE)
        .map(move |start| bytes.slice(start..(start + SLICE).min(total)));
    let stream = futures_util::stream::iter(slices).map(move |slice| {
        activity.touch();
        Ok::<_, std::io::Error>(slice)
    });
    reqwest::Body::wrap_stream(stream)
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

/// History entries in the order they ran: by the time ComfyUI finished (else started) them, then
/// by queue number; entries without any time (a ComfyUI that records none) come first.
fn sort_oldest_first(entries: &mut [HistoryEntry]) {
    entries.sort_by(|left, right| {
        let time = |entry: &HistoryEntry| entry.finished_at_ms.or(entry.started_at_ms);
        time(left)
            .cmp(&time(right))
            .then_with(|| {
                let number = |entry: &HistoryEntry| entry.queue_number.unwrap_or(f64::NEG_INFINITY);
                number(left).total_cmp(&number(right))
            })
            .then_with(|| left.prompt_id.cmp(&right.prompt_id))
    });
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

/// The answer's media type, as ComfyUI declares it.
fn content_type(response: &Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned()
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
    fn history_runs_oldest_first_whatever_the_ids() {
        let entry = |id: &str, number: i64, finished: i64| {
            HistoryEntry::from_json(
                id,
                &json!({"prompt": [number, id, {}, {}, []], "outputs": {}, "status": {"status_str": "success",
                    "messages": [["execution_start", {"timestamp": finished - 5}],
                                 ["execution_success", {"timestamp": finished}]]}}),
            )
        };
        // Sorted by id, as a JSON object hands them over; they ran z, m, a.
        let mut entries = vec![entry("a", 3, 300), entry("m", 2, 200), entry("z", 1, 100)];
        sort_oldest_first(&mut entries);
        let ids: Vec<&str> = entries.iter().map(|entry| entry.prompt_id.as_str()).collect();
        assert_eq!(ids, ["z", "m", "a"]);
        // Without times, the queue number decides.
        let untimed = |id: &str, number: i64| {
            HistoryEntry::from_json(id, &json!({"prompt": [number, id, {}, {}, []], "outputs": {}}))
        };
        let mut entries = vec![untimed("a", 2), untimed("b", 1)];
        sort_oldest_first(&mut entries);
        assert_eq!(entries[0].prompt_id, "b");
        assert_eq!(entries[0].queue_number, Some(1.0));
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
