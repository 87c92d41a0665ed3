//! The services behind every front end (MCP tools and the CLI): backends, node definitions, models,
//! generation, jobs and outputs. Front ends parse arguments, call the engine and render; they never
//! speak HTTP to ComfyUI or edit graphs themselves.

pub mod animation;
pub mod audio;
pub mod config;
pub mod definitions;
pub mod enhance;
pub mod experiments;
pub mod generate;
pub mod gltf;
pub mod grids;
pub mod imaging;
pub mod insights;
pub mod intents;
pub mod jobs;
pub mod learning;
pub mod library;
pub mod live;
pub mod local_files;
pub mod media;
pub mod models;
pub mod outputs;
pub mod png_text;
pub mod presets;
pub mod prompts;
pub mod records;
pub mod statistics;
pub mod stored;
pub mod styles;
pub mod templates;
pub mod timestamps;
pub mod video;
pub mod workflows;

use std::sync::Arc;
use std::time::{Duration, Instant};

use comfy_api::{Backend, BackendOptions, ClientError, ClientOptions};
use comfy_workflow::{ObjectInfo, Report};
use schemars::JsonSchema;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{BackendSettings, EngineConfig};

/// The data front ends show and send, from the layers below. The handles that do IO (ComfyUI
/// clients, the store) stay inside the engine.
pub mod types {
    pub use comfy_api::{
        CancelOutcome, ConnectionState, FileRef, HistoryOutcome, JobPhase, JobSnapshot, JobSubscription,
        OutputFile, OutputText, SubmittedJob, SystemStats, describe_bytes, media_type_for,
    };
    /// The pure image operations and their argument and report types.
    pub use comfy_imaging as pixels;
    pub use comfy_store::{
        AuditEntry, AuditOutcome, AuditQuery, AuditRecord, CatalogFormat, CollectionSummary, JobMetrics,
        JobState, MetricGrouping, MetricQuery, MetricSummary, OutputQuery, OutputRecord, Percentiles,
        PresetSummary, Redemption, RetentionPolicy, ShareRequest, StoreError, Style, Trial, Verdict,
        VersionSummary, content_hash, now_ms,
    };
}

/// A failure the caller can act on. Each variant renders as a readable tool error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request itself is wrong (a value out of range, an unknown key...).
    #[error("{message}")]
    BadInput { message: String },
    /// Local validation against the backend's node definitions failed: nothing was queued.
    #[error("the workflow is not valid for {backend}: nothing was queued")]
    Invalid { backend: String, report: Box<Report> },
    /// Something the request needs is not installed on the backend.
    #[error("{what} is missing on {backend}: {how_to_fix}")]
    Missing {
        backend: String,
        what: String,
        how_to_fix: String,
    },
    /// ComfyUI refused or failed the request.
    #[error("{backend}: {source}")]
    Backend {
        backend: String,
        #[source]
        source: ClientError,
    },
    /// ComfyUI failed a request that several calls waited on together (one fetch of node
    /// definitions serves every call that needs them at that moment).
    #[error("{backend}: {source}")]
    SharedBackend {
        backend: String,
        #[source]
        source: Arc<ClientError>,
    },
    #[error("no job {job_id} on any configured ComfyUI")]
    UnknownJob { job_id: String },
    #[error("no backend named {name:?}; configured: {known}")]
    UnknownBackend { name: String, known: String },
    /// The database failed (full disk, locked by another process past the timeout...).
    #[error("database: {source}")]
    Store {
        #[source]
        source: comfy_store::StoreError,
    },
    /// A file is larger than this server reads whole for the purpose (a resource read, a
    /// preview): it was not fetched; the URL serves it.
    #[error("{what} is {}, more than the {} read whole here; download it from {url}", describe_size(*.size), comfy_api::describe_bytes(*.limit))]
    TooLarge {
        what: String,
        size: Option<u64>,
        limit: u64,
        url: String,
    },
    /// A UI workflow could not be converted faithfully to an API prompt: nothing was queued.
    #[error("the UI workflow cannot be converted faithfully, nothing was queued:{}", workflows::describe_errors(.diagnostics))]
    Unconvertible {
        diagnostics: Vec<comfy_workflow::Diagnostic>,
    },
}

fn describe_size(size: Option<u64>) -> String {
    size.map_or_else(|| "larger".to_owned(), comfy_api::describe_bytes)
}

/// What kind of failure an error is, for front ends that answer with a status (HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request was wrong (a bad value, a path that would escape ComfyUI's folders).
    BadRequest,
    /// The backend has no such thing (ComfyUI answered 404).
    NotFound,
    /// The backend failed or could not be reached.
    Backend,
    /// Anything else.
    Other,
}

impl EngineError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        EngineError::BadInput {
            message: message.into(),
        }
    }

    pub fn kind(&self) -> FailureKind {
        let client = match self {
            EngineError::BadInput { .. } => return FailureKind::BadRequest,
            EngineError::UnknownBackend { .. } => return FailureKind::NotFound,
            EngineError::Backend { source, .. } => source,
            EngineError::SharedBackend { source, .. } => source.as_ref(),
            _ => return FailureKind::Other,
        };
        match client {
            ClientError::UnsafePath { .. } => FailureKind::BadRequest,
            ClientError::Status { status: 404, .. } => FailureKind::NotFound,
            _ => FailureKind::Backend,
        }
    }
}

/// One configured ComfyUI with its actor and cached node definitions.
pub struct BackendEntry {
    pub name: String,
    backend: Backend,
    /// Its node definitions: in memory, on disk, and the fetch in flight.
    definitions: definitions::Definitions,
    /// Its template index and what each template read so far needs.
    templates: templates::TemplateCache,
}

impl BackendEntry {
    /// Drops the cached node definitions, after a change they list (an upload adds a LoadImage
    /// choice); the next call fetches them again.
    pub fn forget_object_info(&self) {
        self.definitions.forget();
    }

    /// How old the cached node definitions are, if there are any ([`Duration::MAX`] for a copy
    /// read from disk that no fetch has confirmed yet).
    pub fn object_info_age(&self) -> Option<Duration> {
        self.definitions.age()
    }

    /// The backend's ComfyUI version, when a fetch of its definitions, a status or their disk
    /// copy told it (no request is made here).
    pub fn comfyui_version(&self) -> Option<String> {
        self.definitions.comfyui_version()
    }

    fn error(&self, source: ClientError) -> EngineError {
        EngineError::Backend {
            backend: self.label(),
            source,
        }
    }

    /// ComfyUI's own report of its versions and devices.
    pub async fn system_stats(&self) -> Result<comfy_api::SystemStats, EngineError> {
        self.backend
            .client()
            .system_stats()
            .await
            .map_err(|source| self.error(source))
    }

    /// Whether the websocket is (or within `limit` becomes) connected.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        self.backend.wait_connected(limit).await
    }

    /// Why the websocket is not connected, when it failed.
    pub fn connection_error(&self) -> Option<String> {
        self.backend.connection().last_error
    }

    /// The websocket's state: connected, reconnects, the last error.
    pub fn connection(&self) -> comfy_api::ConnectionState {
        self.backend.connection()
    }

    /// The jobs this backend's actor knows: queued, running and recent.
    pub async fn jobs(&self) -> Result<Vec<comfy_api::JobSnapshot>, EngineError> {
        self.backend.jobs().await.map_err(|source| self.error(source))
    }

    /// The frontend generation this backend serves (by its ComfyUI version, once a fetch or the
    /// disk copy told it), whose UI -> API conversion is followed for it.
    pub fn frontend_generation(&self) -> comfy_workflow::FrontendGeneration {
        self.definitions
            .comfyui_version()
            .and_then(|version| comfy_workflow::FrontendGeneration::from_comfyui_version(&version))
            .unwrap_or_default()
    }

    /// `name (url)`, for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.backend.url())
    }
}

/// Everything the front ends share. Created once per process.
pub struct Engine {
    pub config: EngineConfig,
    store: comfy_store::Store,
    backends: Vec<BackendEntry>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    workflow_library: workflows::WorkflowLibrary,
    /// Whether [`Engine::prefetch_object_info`] ran.
    prefetched: std::sync::atomic::AtomicBool,
    /// Cancelled once the jobs a previous process left unfinished are reconciled (or could not
    /// be): until then, the store's word on such a job may be about to change.
    reconciled: CancellationToken,
    /// The latest sampler preview of each recent job, filled by the job recorders.
    live: Arc<live::LivePreviews>,
    /// The CLIP tokenizer, loaded on first use from `config.clip_vocabulary` (or why not).
    tokenizer: tokio::sync::OnceCell<Result<Arc<comfy_text::ClipTokenizer>, String>>,
}

impl Engine {
    /// Opens the database and starts one actor per configured backend. No backend is contacted
    /// before this returns, so start-up stays fast; the websockets connect in the background, and
    /// jobs a previous process left unfinished are reconciled in the background too.
    pub async fn start(config: EngineConfig) -> Result<Arc<Engine>, EngineError> {
        let options = match &config.database {
            Some(path) => comfy_store::StoreOptions::new(path.clone()),
            None => comfy_store::StoreOptions::at_default_path()
                .map_err(|error| EngineError::Store { source: error })?,
        };
        let store = comfy_store::Store::open(options)
            .await
            .map_err(|error| EngineError::Store { source: error })?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut backends = Vec::new();
        for backend_settings in &config.backends {
            let options = BackendOptions {
                client: ClientOptions {
                    headers: backend_settings.headers.clone(),
                    ..ClientOptions::default()
                },
                ..BackendOptions::default()
            };
            let backend = Backend::start(&backend_settings.url, options, cancel.child_token(), &tracker)
                .map_err(|source| EngineError::Backend {
                    backend: backend_settings.name.clone(),
                    source,
                })?;
            backends.push(BackendEntry {
                name: backend_settings.name.clone(),
                backend,
                definitions: definitions::Definitions::new(
                    &backend_settings.url,
                    config.cache_dir.as_deref(),
                ),
                templates: templates::TemplateCache::default(),
            });
        }
        let workflow_library = workflows::WorkflowLibrary::new(config.workflows_dir.clone());
        let engine = Arc::new(Engine {
            config,
            store,
            backends,
            cancel,
            tracker,
            workflow_library,
            prefetched: std::sync::atomic::AtomicBool::new(false),
            reconciled: CancellationToken::new(),
            live: Arc::default(),
            tokenizer: tokio::sync::OnceCell::new(),
        });
        engine.watch_workflows_directory();
        // The disk copies of node definitions are read now, while the client is still shaking
        // hands: reading costs ComfyUI nothing, and the first call then finds them in memory.
        for index in 0..engine.backends.len() {
            let reader = engine.clone();
            engine.tracker.spawn(async move {
                reader.backends[index].definitions.load_from_disk().await;
            });
        }
        let reconciling = engine.clone();
        engine.tracker.spawn(async move {
            match reconciling.reconcile_unfinished_jobs().await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "reconciled jobs left unfinished by a previous run"),
                Err(error) => tracing::error!(%error, "cannot reconcile unfinished jobs"),
            }
            reconciling.reconciled.cancel();
        });
        Ok(engine)
    }

    /// Stops every backend actor and waits for their tasks.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.tracker.wait()).await;
        self.store.close().await;
    }

    pub fn backends(&self) -> &[BackendEntry] {
        &self.backends
    }

    /// The backend named `name`, or the best one for new work: connected first, then the shortest
    /// queue, then configuration order.
    pub fn pick_backend(&self, name: Option<&str>) -> Result<&BackendEntry, EngineError> {
        if let Some(name) = name {
            return self
                .backends
                .iter()
                .find(|entry| entry.name == name)
                .ok_or_else(|| EngineError::UnknownBackend {
                    name: name.to_owned(),
                    known: self
                        .backends
                        .iter()
                        .map(|entry| entry.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
        }
        self.backends
            .iter()
            .enumerate()
            .min_by_key(|(index, entry)| {
                let connection = entry.backend.connection();
                (!connection.connected, connection.queue_remaining, *index)
            })
            .map(|(_, entry)| entry)
            .ok_or_else(|| EngineError::bad_input("no ComfyUI backend is configured"))
    }

    /// The backend's node definitions: from memory (or the disk copy) unless `refresh`, else
    /// fetched, sharing a fetch already in flight.
    pub async fn object_info(
        &self,
        entry: &BackendEntry,
        refresh: bool,
    ) -> Result<Arc<ObjectInfo>, EngineError> {
        if !refresh {
            // A call in the first milliseconds waits for the disk copy rather than the network.
            entry.definitions.load_from_disk().await;
            if let Some(info) = entry.definitions.current() {
                return Ok(info);
            }
        }
        // Bounded by the call's wait, so a slow or silent backend cannot hold a tool call past it.
        match entry
            .definitions
            .fetch(entry.backend.client(), self.config.wait)
            .await
        {
            Ok(Some(info)) => Ok(info),
            // The call's wait ran out first: the same typed timeout a slow backend gives.
            Ok(None) => Err(entry.error(ClientError::Timeout {
                url: entry.backend.url().to_owned(),
                call: "GET /object_info (node definitions; nothing was queued)".to_owned(),
                limit: self.config.wait,
            })),
            Err(source) => Err(EngineError::SharedBackend {
                backend: entry.label(),
                source,
            }),
        }
    }

    /// Puts every backend's node definitions from disk in memory and then fetches them afresh, in
    /// the background: the first call of a session finds them ready instead of waiting for
    /// ComfyUI's largest answer, and the disk copy is replaced as soon as ComfyUI sends its own.
    ///
    /// Called by a front end once its client is connected (MCP: after `initialize`), so reading and
    /// parsing megabytes never competes with the handshake; later calls do nothing.
    pub fn prefetch_object_info(self: &Arc<Self>) {
        if self.prefetched.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        for index in 0..self.backends.len() {
            let engine = self.clone();
            let cancel = self.cancel.child_token();
            self.tracker.spawn(async move {
                let entry = &engine.backends[index];
                // Started by `start`; this waits for it to end.
                entry.definitions.load_from_disk().await;
                match entry.object_info_age() {
                    // With a disk copy the fetch can wait: serving /object_info takes ComfyUI's own
                    // CPU (0.2 to 0.6 s), which would slow the session's first job; a copy that is
                    // out of date meanwhile is refetched by the first validation it fails.
                    Some(Duration::MAX) => tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(definitions::REVALIDATE_DISK_COPY_AFTER) => {}
                    },
                    // Something fetched them already.
                    Some(_) => return,
                    None => {}
                }
                tokio::select! {
                    () = cancel.cancelled() => {}
                    result = engine.object_info(entry, true) => if let Err(error) = result {
                        tracing::debug!(backend = %entry.name, %error, "node definitions not prefetched");
                    },
                }
            });
        }
    }

    /// Health and versions of every backend, asked all at once: one silent backend costs one
    /// control timeout, not one per backend.
    pub async fn status(&self) -> Vec<BackendStatus> {
        futures_util::future::join_all(self.backends.iter().map(backend_status)).await
    }

    /// Finds the backend whose actor tracks `job_id`, or whose ComfyUI knows it.
    pub async fn locate_job(&self, job_id: &str) -> Result<&BackendEntry, EngineError> {
        for entry in &self.backends {
            if let Ok(Some(_)) = entry.backend.snapshot(job_id).await {
                return Ok(entry);
            }
        }
        for entry in &self.backends {
            let client = entry.backend.client();
            if let Ok(queue) = client.queue().await
                && (queue.is_running(job_id) || queue.pending_position(job_id).is_some())
            {
                return Ok(entry);
            }
            if let Ok(Some(_)) = client.history_entry(job_id).await {
                return Ok(entry);
            }
        }
        Err(EngineError::UnknownJob {
            job_id: job_id.to_owned(),
        })
    }
}

/// One backend's health: its stats, then (when it answered) its queue.
async fn backend_status(entry: &BackendEntry) -> BackendStatus {
    let started = Instant::now();
    let stats = entry.backend.client().system_stats().await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let queue = match stats {
        Ok(_) => entry.backend.client().queue().await.ok(),
        Err(_) => None,
    };
    let connection = entry.backend.connection();
    if let Ok(stats) = &stats {
        entry
            .definitions
            .note_comfyui_version(&stats.system.comfyui_version);
    }
    match stats {
        Ok(stats) => BackendStatus {
            name: entry.name.clone(),
            url: entry.backend.url().to_owned(),
            reachable: true,
            error: None,
            latency_ms: Some((latency_ms * 10.0).round() / 10.0),
            comfyui_version: Some(stats.system.comfyui_version),
            python_version: Some(stats.system.python_version),
            pytorch_version: Some(stats.system.pytorch_version),
            ram_total: Some(stats.system.ram_total),
            ram_free: Some(stats.system.ram_free),
            devices: stats.devices.into_iter().map(DeviceStatus::from).collect(),
            queue_running: queue.as_ref().map(|queue| queue.running.len()),
            queue_pending: queue.as_ref().map(|queue| queue.pending.len()),
            websocket: WebsocketStatus::from(connection),
        },
        Err(error) => BackendStatus::unreachable(
            entry.name.clone(),
            entry.backend.url().to_owned(),
            error.to_string(),
            WebsocketStatus::from(connection),
        ),
    }
}

impl BackendStatus {
    /// A backend that did not answer `/system_stats`: only its name, URL, why, and its websocket.
    pub fn unreachable(name: String, url: String, error: String, websocket: WebsocketStatus) -> Self {
        BackendStatus {
            name,
            url,
            reachable: false,
            error: Some(error),
            latency_ms: None,
            comfyui_version: None,
            python_version: None,
            pytorch_version: None,
            ram_total: None,
            ram_free: None,
            devices: Vec::new(),
            queue_running: None,
            queue_pending: None,
            websocket,
        }
    }
}

/// What `status` reports for one backend.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BackendStatus {
    pub name: String,
    pub url: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comfyui_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pytorch_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ram_total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ram_free: Option<u64>,
    pub devices: Vec<DeviceStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_running: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_pending: Option<usize>,
    pub websocket: WebsocketStatus,
}

/// One device (GPU, CPU...) as ComfyUI reports it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeviceStatus {
    pub name: String,
    /// cuda, cpu, mps...
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<i64>,
    /// Bytes.
    pub vram_total: u64,
    /// Bytes.
    pub vram_free: u64,
}

impl From<comfy_api::Device> for DeviceStatus {
    fn from(device: comfy_api::Device) -> Self {
        DeviceStatus {
            name: device.name,
            kind: device.kind,
            index: device.index,
            vram_total: device.vram_total,
            vram_free: device.vram_free,
        }
    }
}

/// The backend's websocket, as its actor sees it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WebsocketStatus {
    pub connected: bool,
    /// How many times the socket was re-opened after a drop.
    pub reconnects: u64,
    /// Why it last failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Queue depth from the latest `status` frame.
    pub queue_remaining: u64,
}

impl From<comfy_api::ConnectionState> for WebsocketStatus {
    fn from(state: comfy_api::ConnectionState) -> Self {
        WebsocketStatus {
            connected: state.connected,
            reconnects: state.reconnects,
            last_error: state.last_error,
            queue_remaining: state.queue_remaining,
        }
    }
}
