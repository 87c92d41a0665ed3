//! Following, waiting on and cancelling jobs across backends. A wait is always bounded: when the
//! bound passes, the caller gets the job's current state and its id to continue with.

use std::time::Duration;

use comfy_api::{CancelOutcome, HistoryOutcome, JobSnapshot, JobSubscription, JobUpdate};
use comfy_store::JobState;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::{BackendEntry, Engine, EngineError};

/// One progress step for a front end (MCP progress notification, terminal bar).
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressReport {
    /// Percent done, 0 to 100, strictly increasing between reports.
    pub percent: f64,
    pub message: String,
}

/// How a wait ended.
#[derive(Debug)]
pub enum WaitOutcome {
    /// The job reached a final phase.
    Finished(JobSnapshot),
    /// The wait bound passed first; the job goes on.
    StillRunning(JobSnapshot),
    /// The caller cancelled the wait, and so the job.
    Cancelled {
        snapshot: JobSnapshot,
        outcome: CancelOutcome,
    },
}

impl WaitOutcome {
    /// The job as the wait left it.
    pub fn snapshot(&self) -> &JobSnapshot {
        match self {
            WaitOutcome::Finished(snapshot)
            | WaitOutcome::StillRunning(snapshot)
            | WaitOutcome::Cancelled { snapshot, .. } => snapshot,
        }
    }
}

fn describe_update(update: &JobUpdate, snapshot: &JobSnapshot) -> Option<String> {
    let node_name = |node: Option<&str>| -> String {
        match (&snapshot.current_node_title, node) {
            (Some(title), _) => format!("'{title}'"),
            (None, Some(node)) => format!("node {node}"),
            (None, None) => "a node".to_owned(),
        }
    };
    match update {
        JobUpdate::Started => Some("started".to_owned()),
        JobUpdate::NodeStarted { node_id, title } => Some(match title {
            Some(title) => format!("running '{title}'"),
            None => format!("running node {node_id}"),
        }),
        JobUpdate::Progress { node_id, value, max } => Some(format!(
            "{}: {}/{}",
            node_name(node_id.as_deref()),
            value.round(),
            max.round()
        )),
        JobUpdate::Preview { .. } => None,
        JobUpdate::Finished => Some(snapshot.phase.as_str().to_owned()),
    }
}

impl Engine {
    /// Waits for the job behind `subscription` until it ends, `limit` passes or `cancel` fires
    /// (which cancels the job itself). `on_progress` sees every step that advanced.
    pub async fn follow<F, Fut>(
        &self,
        entry: &BackendEntry,
        subscription: &mut JobSubscription,
        limit: Duration,
        cancel: &CancellationToken,
        mut on_progress: F,
    ) -> Result<WaitOutcome, EngineError>
    where
        F: FnMut(ProgressReport) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        let mut last_percent = -1.0f64;
        loop {
            let snapshot = subscription.current();
            if snapshot.phase.is_final() {
                return Ok(WaitOutcome::Finished(snapshot));
            }
            tokio::select! {
                () = cancel.cancelled() => {
                    let outcome = entry
                        .backend
                        .cancel(&snapshot.prompt_id)
                        .await
                        .map_err(|source| entry.error(source))?;
                    // The interrupt lands within one node or one sampler step; wait briefly for it.
                    let settled = tokio::time::timeout(Duration::from_secs(10), subscription.finished()).await;
                    let snapshot = settled.ok().flatten().unwrap_or_else(|| subscription.current());
                    return Ok(WaitOutcome::Cancelled { snapshot, outcome });
                }
                () = tokio::time::sleep_until(deadline) => return Ok(WaitOutcome::StillRunning(subscription.current())),
                update = subscription.updates.recv() => match update {
                    Ok(update) => {
                        let snapshot = subscription.current();
                        let percent = (snapshot.fraction * 100.0 * 10.0).round() / 10.0;
                        if percent > last_percent && let Some(message) = describe_update(&update, &snapshot) {
                            last_percent = percent;
                            on_progress(ProgressReport { percent, message }).await;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => {
                        if !subscription.current().phase.is_final() {
                            return Err(EngineError::Backend {
                                backend: entry.label(),
                                source: comfy_api::ClientError::Closed { url: entry.backend.url().to_owned() },
                            });
                        }
                    }
                },
            }
        }
    }

    /// The latest state of a job, following it from now on if this process did not submit it.
    pub async fn job(&self, job_id: &str) -> Result<(&BackendEntry, JobSubscription), EngineError> {
        let entry = self.locate_job(job_id).await?;
        let subscription = entry
            .backend
            .attach(job_id)
            .await
            .map_err(|source| entry.error(source))?;
        Ok((entry, subscription))
    }

    /// Cancels one job: dequeued if waiting, interrupted by id if running.
    pub async fn cancel_job(&self, job_id: &str) -> Result<(CancelOutcome, JobSnapshot), EngineError> {
        if let Some(record) = self.stored_job(job_id).await
            && record.state.is_final()
        {
            return Ok((
                CancelOutcome::AlreadyFinished,
                super::records::snapshot_from_record(&record),
            ));
        }
        let (entry, mut subscription) = self.job(job_id).await?;
        let outcome = entry
            .backend
            .cancel(job_id)
            .await
            .map_err(|source| entry.error(source))?;
        let snapshot = if matches!(outcome, CancelOutcome::Interrupted | CancelOutcome::Dequeued) {
            tokio::time::timeout(Duration::from_secs(10), subscription.finished())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| subscription.current())
        } else {
            subscription.current()
        };
        Ok((outcome, snapshot))
    }

    /// Queues of every backend and the jobs this process knows, newest first.
    pub async fn list_jobs(&self, limit: usize) -> Result<JobListing, EngineError> {
        let mut backends = Vec::new();
        for entry in self.backends() {
            let client = entry.backend.client();
            let queue = client.queue().await.map_err(|source| entry.error(source))?;
            let query = comfy_store::JobQuery {
                backend_id: Some(entry.name.clone()),
                limit: Some(u32::try_from(limit).unwrap_or(20)),
                ..Default::default()
            };
            let recorded = self
                .store
                .list_jobs(query)
                .await
                .map_err(|error| EngineError::Store { source: error })?;
            let recorded_jobs = recorded
                .into_iter()
                .map(|job| RecordedJob {
                    outputs: job.outputs.as_ref().and_then(Value::as_array).map_or(0, Vec::len),
                    job_id: job.id,
                    status: job.state,
                    workflow: job.workflow,
                    error: job.error,
                    created_at_ms: job.created_at_ms,
                })
                .collect();
            let history = client
                .history(comfy_api::HistoryQuery {
                    max_items: Some(u32::try_from(limit).unwrap_or(20)),
                    offset: None,
                })
                .await
                .map_err(|source| entry.error(source))?;
            let comfyui_history = history
                .iter()
                .rev()
                .map(|item| HistoryJob {
                    job_id: item.prompt_id.clone(),
                    outcome: item.outcome.clone(),
                    outputs: item.files().len(),
                    finished_at_ms: item.finished_at_ms,
                })
                .collect();
            backends.push(BackendJobs {
                backend: entry.name.clone(),
                running: queue.running.iter().map(|item| item.prompt_id.clone()).collect(),
                pending: queue.pending.iter().map(|item| item.prompt_id.clone()).collect(),
                recorded_jobs,
                comfyui_history,
            });
        }
        Ok(JobListing { backends })
    }
}

/// What `list_jobs` answers: every backend's queue and recent jobs.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JobListing {
    pub backends: Vec<BackendJobs>,
}

/// One backend's queue, the jobs the database recorded on it and ComfyUI's own history.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BackendJobs {
    pub backend: String,
    /// Job ids running now.
    pub running: Vec<String>,
    /// Job ids waiting, in queue order.
    pub pending: Vec<String>,
    /// Jobs this server recorded, newest first.
    pub recorded_jobs: Vec<RecordedJob>,
    /// Prompts in ComfyUI's history (whoever queued them), newest first.
    pub comfyui_history: Vec<HistoryJob>,
}

/// A job as the database recorded it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RecordedJob {
    pub job_id: String,
    /// queued, submitted, running, succeeded, failed or cancelled.
    #[schemars(with = "String")]
    pub status: JobState,
    /// The saved workflow or preset it ran, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// How many output files it made.
    pub outputs: usize,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at_ms: i64,
}

/// A prompt in ComfyUI's history.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryJob {
    pub job_id: String,
    /// success, error or interrupted.
    #[schemars(with = "String")]
    pub outcome: HistoryOutcome,
    /// How many output files it made.
    pub outputs: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
}
