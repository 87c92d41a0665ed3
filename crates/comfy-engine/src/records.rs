//! Durable jobs: every job is written to the store before it is sent to a backend and again on
//! every state change, by one owned recorder task per job. When the job ends the recorder indexes
//! its outputs in the library (with a perceptual hash) and records its timings. At start-up, jobs a
//! previous process left unfinished are reconciled with their backends.

use std::sync::Arc;
use std::time::Duration;

use comfy_api::{Backend, JobPhase, JobSnapshot, JobUpdate as JobUpdateEvent, OutputFile};
use comfy_store::{FileReference, JobMetrics, JobRecord, JobState, JobUpdate, NewJob, NewOutput, Store};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::live::LivePreviews;
use super::{Engine, EngineError, media};

/// What the library should remember about a job besides its graph.
#[derive(Debug, Clone, Default)]
pub struct JobContext {
    /// What produced the graph (`generate_image`, `run_workflow`, a preset name...).
    pub workflow: Option<String>,
    pub model: Option<String>,
    pub prompt_text: String,
    pub parameters: Value,
    pub seed: Option<u64>,
}

/// Longest a read of a stored job waits for the reconciliation at start-up (which asks each
/// backend about each job a previous process left unfinished: milliseconds, unless a backend is
/// silent).
pub const RECONCILIATION_WAIT: Duration = Duration::from_secs(10);

fn store_error(error: comfy_store::StoreError) -> EngineError {
    EngineError::Store { source: error }
}

impl Engine {
    /// Writes a new job before anything is sent; the job id is also the ComfyUI prompt id.
    pub(super) async fn record_new_job(
        &self,
        job_id: &str,
        backend: &str,
        prompt: &Value,
        context: &JobContext,
    ) -> Result<(), EngineError> {
        let request = json!({
            "backend": backend,
            "prompt": prompt,
            "prompt_text": context.prompt_text,
            "parameters": context.parameters,
            "model": context.model,
            "seed": context.seed,
        });
        self.store
            .insert_job(NewJob {
                id: job_id.to_owned(),
                workflow: context.workflow.clone(),
                client: None,
                priority: 0,
                request,
            })
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    pub(super) async fn record_update(&self, job_id: &str, update: JobUpdate) {
        if let Err(error) = self.store.update_job(job_id, update).await {
            tracing::error!(%job_id, %error, "cannot record a job state change");
        }
    }

    /// Follows `job_id` on `backend` in an owned task and writes each state change.
    pub(super) fn spawn_recorder(
        &self,
        backend_name: String,
        backend: Backend,
        job_id: String,
        context: JobContext,
    ) {
        let store = self.store.clone();
        let cancel = self.cancel.child_token();
        self.tracker.spawn(record_until_final(
            store,
            self.live.clone(),
            backend_name,
            backend,
            job_id,
            context,
            cancel,
        ));
    }

    /// Reconciles jobs a previous process left unfinished: re-attach what ComfyUI still runs or has
    /// finished, fail what can no longer be followed, with the reason.
    pub async fn reconcile_unfinished_jobs(&self) -> Result<usize, EngineError> {
        let unfinished = self.store.unfinished_jobs().await.map_err(store_error)?;
        let count = unfinished.len();
        for record in unfinished {
            let context = context_of(&record);
            match (&record.backend_id, &record.prompt_id) {
                (Some(backend_name), Some(prompt_id)) => {
                    match self.backends.iter().find(|entry| &entry.name == backend_name) {
                        Some(entry) => {
                            tracing::info!(job_id = %record.id, backend = %backend_name, "re-attaching a job left by a previous run");
                            self.spawn_recorder(
                                backend_name.clone(),
                                entry.backend.clone(),
                                prompt_id.clone(),
                                context,
                            );
                        }
                        None => {
                            let reason = format!(
                                "backend {backend_name:?} is no longer configured, so this job cannot be followed"
                            );
                            self.record_update(&record.id, JobUpdate::Failed { error: reason })
                                .await;
                        }
                    }
                }
                _ => self.reconcile_unsent_job(&record, context).await,
            }
        }
        Ok(count)
    }

    /// A job recorded without a ComfyUI prompt id: the process stopped between writing it and
    /// recording ComfyUI's answer, so the POST may or may not have landed. The job id is the prompt
    /// id, so ComfyUI's queue and history say which; only a backend that answers "unknown" fails it.
    async fn reconcile_unsent_job(&self, record: &JobRecord, context: JobContext) {
        let backend_name = record.request.get("backend").and_then(Value::as_str);
        let Some(entry) = backend_name.and_then(|name| self.backends.iter().find(|entry| entry.name == name))
        else {
            let reason = "the server stopped before this job was sent to ComfyUI".to_owned();
            self.record_update(&record.id, JobUpdate::Failed { error: reason })
                .await;
            return;
        };
        match backend_knows_prompt(&entry.backend, &record.id).await {
            Ok(false) => {
                let reason = "the server stopped before this job reached ComfyUI".to_owned();
                self.record_update(&record.id, JobUpdate::Failed { error: reason })
                    .await;
            }
            known => {
                // Known, or the backend cannot say now: follow it; the backend actor reconciles it
                // once connected and fails it only if ComfyUI does not know it.
                if let Err(error) = known {
                    tracing::warn!(job_id = %record.id, backend = %entry.name, %error, "cannot look up a job left unsent; following it");
                }
                tracing::info!(job_id = %record.id, backend = %entry.name, "re-attaching a job ComfyUI received before the last stop");
                let update = JobUpdate::Submitted {
                    backend_id: entry.name.clone(),
                    prompt_id: record.id.clone(),
                };
                self.record_update(&record.id, update).await;
                self.spawn_recorder(
                    entry.name.clone(),
                    entry.backend.clone(),
                    record.id.clone(),
                    context,
                );
            }
        }
    }

    /// A job as the store remembers it. Right after start, a job a previous process left
    /// unfinished may be being reconciled (found in ComfyUI, or failed as never sent): its record
    /// is read again once that is done, waiting at most [`RECONCILIATION_WAIT`].
    pub async fn stored_job(&self, job_id: &str) -> Option<JobRecord> {
        let record = self.store.get_job(job_id).await.ok()?;
        if record.state.is_final() || self.reconciled.is_cancelled() {
            return Some(record);
        }
        if tokio::time::timeout(RECONCILIATION_WAIT, self.reconciled.cancelled())
            .await
            .is_err()
        {
            return Some(record);
        }
        Some(self.store.get_job(job_id).await.unwrap_or(record))
    }
}

/// Whether ComfyUI has `prompt_id` queued, running or in its history.
async fn backend_knows_prompt(backend: &Backend, prompt_id: &str) -> Result<bool, comfy_api::ClientError> {
    let queue = backend.client().queue().await?;
    if queue.is_running(prompt_id) || queue.pending_position(prompt_id).is_some() {
        return Ok(true);
    }
    Ok(backend.client().history_entry(prompt_id).await?.is_some())
}

fn context_of(record: &JobRecord) -> JobContext {
    JobContext {
        workflow: record.workflow.clone(),
        model: record
            .request
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned),
        prompt_text: record
            .request
            .get("prompt_text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        parameters: record.request.get("parameters").cloned().unwrap_or(Value::Null),
        seed: record.request.get("seed").and_then(Value::as_u64),
    }
}

/// The snapshot a final stored record stands for (for jobs no backend actor tracks any more).
pub fn snapshot_from_record(record: &JobRecord) -> JobSnapshot {
    let outputs: Vec<OutputFile> = record
        .outputs
        .as_ref()
        .and_then(|outputs| serde_json::from_value(outputs.clone()).ok())
        .unwrap_or_default();
    let phase = match record.state {
        JobState::Queued | JobState::Submitted => JobPhase::Queued,
        JobState::Running => JobPhase::Running,
        JobState::Succeeded => JobPhase::Succeeded,
        JobState::Failed => JobPhase::Failed,
        JobState::Cancelled => JobPhase::Cancelled,
    };
    JobSnapshot {
        prompt_id: record.id.clone(),
        phase,
        queue_position: None,
        current_node: None,
        current_node_title: None,
        node_progress: None,
        nodes_done: 0,
        nodes_total: 0,
        fraction: if phase == JobPhase::Succeeded {
            1.0
        } else {
            record.progress
        },
        outputs,
        // Texts are not kept in the record; only a live job's snapshot has them.
        texts: Vec::new(),
        failure: record.error.as_ref().map(|message| comfy_api::JobFailure {
            message: message.clone(),
            node_id: None,
            node_type: None,
            exception_type: None,
        }),
        submitted_at_ms: record.submitted_at_ms.unwrap_or(record.created_at_ms),
        started_at_ms: record.started_at_ms,
        finished_at_ms: record.finished_at_ms,
    }
}

async fn record_until_final(
    store: Store,
    live: Arc<LivePreviews>,
    backend_name: String,
    backend: Backend,
    job_id: String,
    context: JobContext,
    cancel: CancellationToken,
) {
    let mut subscription = match backend.attach(&job_id).await {
        Ok(subscription) => subscription,
        Err(error) => {
            tracing::warn!(%job_id, %error, "cannot follow a job to record it");
            return;
        }
    };
    let mut running_recorded = false;
    let mut updates_open = true;
    let final_snapshot = loop {
        let snapshot = subscription.current();
        if snapshot.phase == JobPhase::Running && !running_recorded {
            running_recorded = true;
            if let Err(error) = store.update_job(&job_id, JobUpdate::Running).await {
                tracing::debug!(%job_id, %error, "running state not recorded");
            }
        }
        if snapshot.phase.is_final() {
            break snapshot;
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = subscription.snapshot.changed() => if changed.is_err() { return },
            update = subscription.updates.recv(), if updates_open => match update {
                Ok(JobUpdateEvent::Preview { node_id, media_type, image }) => {
                    live.store(&job_id, media_type, image, node_id);
                }
                // Lagging only skips frames; once closed, the snapshot says how it ended.
                Err(RecvError::Closed) => updates_open = false,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
            },
        }
    };
    live.end(&job_id);
    let update = match final_snapshot.phase {
        JobPhase::Succeeded => JobUpdate::Succeeded {
            outputs: serde_json::to_value(&final_snapshot.outputs).unwrap_or(Value::Null),
        },
        JobPhase::Cancelled => JobUpdate::Cancelled,
        _ => JobUpdate::Failed {
            error: final_snapshot
                .failure
                .as_ref()
                .map_or_else(|| "failed".to_owned(), |failure| failure.message.clone()),
        },
    };
    if !running_recorded && matches!(update, JobUpdate::Succeeded { .. } | JobUpdate::Failed { .. }) {
        // The store moves through running; a job that ended while nobody watched still did.
        let _ = store.update_job(&job_id, JobUpdate::Running).await;
    }
    if let Err(error) = store.update_job(&job_id, update).await {
        tracing::error!(%job_id, %error, "cannot record the end of a job");
    }
    let transfer_started = std::time::Instant::now();
    if final_snapshot.phase == JobPhase::Succeeded {
        index_outputs(
            &store,
            &backend_name,
            &backend,
            &job_id,
            &context,
            &final_snapshot,
        )
        .await;
    }
    let transfer_ms = i64::try_from(transfer_started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let submitted = final_snapshot.submitted_at_ms;
    let started = final_snapshot.started_at_ms.unwrap_or(submitted);
    let finished = final_snapshot.finished_at_ms.unwrap_or(started);
    let metrics = JobMetrics {
        job_id: job_id.clone(),
        workflow: context.workflow.clone(),
        model: context.model.clone(),
        backend_id: Some(backend_name),
        succeeded: final_snapshot.phase == JobPhase::Succeeded,
        queue_wait_ms: (started - submitted).max(0),
        execution_ms: (finished - started).max(0),
        transfer_ms,
        total_ms: (finished - submitted).max(0) + transfer_ms,
        recorded_at_ms: comfy_store::now_ms(),
    };
    if let Err(error) = store.record_job_metrics(metrics).await {
        tracing::debug!(%job_id, %error, "metrics not recorded");
    }
}

async fn index_outputs(
    store: &Store,
    backend_name: &str,
    backend: &Backend,
    job_id: &str,
    context: &JobContext,
    snapshot: &JobSnapshot,
) {
    for output in &snapshot.outputs {
        let media_type = output.media_type().to_owned();
        let mut record = NewOutput {
            job_id: Some(job_id.to_owned()),
            prompt_text: context.prompt_text.clone(),
            parameters: context.parameters.clone(),
            model: context.model.clone(),
            seed: context.seed,
            width: None,
            height: None,
            media_type: media_type.clone(),
            file: FileReference {
                backend_id: backend_name.to_owned(),
                filename: output.file.filename.clone(),
                subfolder: output.file.subfolder.clone(),
                file_type: output.file.kind.clone(),
            },
            perceptual_hash: None,
            created_at_ms: snapshot.finished_at_ms.unwrap_or_else(comfy_store::now_ms),
        };
        if media_type.starts_with("image/") {
            // A small JPEG preview is enough for size and hash, and cheap to transfer.
            let download = tokio::time::timeout(
                Duration::from_secs(30),
                backend.client().view(
                    &output.file,
                    Some("jpeg;80"),
                    crate::outputs::MAXIMUM_PREVIEW_SOURCE_BYTES,
                ),
            )
            .await;
            if let Ok(Ok(download)) = download
                && let Some(fingerprint) = media::fingerprint_off_the_workers(download.bytes).await
            {
                record.width = Some(fingerprint.width);
                record.height = Some(fingerprint.height);
                record.perceptual_hash = Some(fingerprint.hash);
            }
        }
        if let Err(error) = store.add_output(record).await {
            tracing::warn!(%job_id, %error, "output not indexed");
        }
    }
}
