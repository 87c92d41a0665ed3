//! Durable jobs. A job is written as `queued` before it is sent to any backend and updated on every
//! state change, so after a restart [`Store::unfinished_jobs`] lists exactly what must be reconciled
//! with the backends. Transitions are checked here so that no caller can, say, revive a finished job.

use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::now_ms;
use crate::error::{StoreError, invalid};
pub use crate::job_state::JobState;
use crate::query::{Conditions, limit_value, text};
use crate::store::Store;

/// A job to persist before it is dispatched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// Chosen by the caller (for example a UUID), unique across the database.
    pub id: String,
    /// The workflow or preset name, for metrics and listing.
    pub workflow: Option<String>,
    /// The client identity that asked for the job.
    pub client: Option<String>,
    pub priority: i64,
    /// Whatever the caller needs to resubmit the job after a restart (typically the API prompt).
    pub request: Value,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub state: JobState,
    pub workflow: Option<String>,
    pub client: Option<String>,
    pub priority: i64,
    pub backend_id: Option<String>,
    /// The backend's id for the prompt, known from `submitted` on.
    pub prompt_id: Option<String>,
    pub request: Value,
    pub outputs: Option<Value>,
    pub error: Option<String>,
    /// From 0 to 1.
    pub progress: f64,
    pub created_at_ms: i64,
    pub submitted_at_ms: Option<i64>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub updated_at_ms: i64,
}

/// A change to a job. Allowed moves: queued to submitted; submitted to running; queued, submitted or
/// running to failed or cancelled; submitted or running to succeeded, or back to queued (the backend
/// lost the job); progress while submitted or running. Final states never change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobUpdate {
    Submitted {
        backend_id: String,
        prompt_id: String,
    },
    Running,
    /// A fraction from 0 to 1; values outside are clamped.
    Progress {
        progress: f64,
    },
    Succeeded {
        outputs: Value,
    },
    Failed {
        error: String,
    },
    Cancelled,
    /// Back to the queue, forgetting the backend; for example after the backend restarted without it.
    Requeued,
}

impl JobUpdate {
    fn target(&self, current: JobState) -> JobState {
        match self {
            JobUpdate::Submitted { .. } => JobState::Submitted,
            JobUpdate::Running => JobState::Running,
            JobUpdate::Progress { .. } => current,
            JobUpdate::Succeeded { .. } => JobState::Succeeded,
            JobUpdate::Failed { .. } => JobState::Failed,
            JobUpdate::Cancelled => JobState::Cancelled,
            JobUpdate::Requeued => JobState::Queued,
        }
    }

    fn allowed_from(&self, current: JobState) -> bool {
        use JobState::{Queued, Running, Submitted};
        match self {
            JobUpdate::Submitted { .. } => current == Queued,
            JobUpdate::Running => matches!(current, Submitted | Running),
            JobUpdate::Progress { .. } | JobUpdate::Succeeded { .. } | JobUpdate::Requeued => {
                matches!(current, Submitted | Running)
            }
            JobUpdate::Failed { .. } | JobUpdate::Cancelled => !current.is_final(),
        }
    }
}

/// Which jobs [`Store::list_jobs`] returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobQuery {
    /// Only jobs in one of these states; `None` for all.
    pub states: Option<Vec<JobState>>,
    pub client: Option<String>,
    pub backend_id: Option<String>,
    pub workflow: Option<String>,
    /// Only jobs created strictly before this time (a page cursor).
    pub created_before_ms: Option<i64>,
    pub limit: Option<u32>,
}

const COLUMNS: &str = "id, state, workflow, client, priority, backend_id, prompt_id, request, outputs, error, \
     progress, created_at, submitted_at, started_at, finished_at, updated_at";

fn json_column(row: &Row<'_>, index: usize, id: &str) -> Result<Option<Value>, StoreError> {
    let raw: Option<String> = row.get(index)?;
    raw.map(|raw| {
        serde_json::from_str(&raw).map_err(|source| StoreError::StoredJson {
            what: "job",
            id: id.to_owned(),
            source,
        })
    })
    .transpose()
}

fn job_from_row(row: &Row<'_>) -> Result<JobRecord, StoreError> {
    let id: String = row.get(0)?;
    let state_name: String = row.get(1)?;
    let state = JobState::parse(&state_name).ok_or_else(|| {
        invalid(
            "stored job state",
            format!("job {id} has unknown state {state_name}"),
        )
    })?;
    Ok(JobRecord {
        state,
        workflow: row.get(2)?,
        client: row.get(3)?,
        priority: row.get(4)?,
        backend_id: row.get(5)?,
        prompt_id: row.get(6)?,
        request: json_column(row, 7, &id)?.unwrap_or(Value::Null),
        outputs: json_column(row, 8, &id)?,
        error: row.get(9)?,
        progress: row.get(10)?,
        created_at_ms: row.get(11)?,
        submitted_at_ms: row.get(12)?,
        started_at_ms: row.get(13)?,
        finished_at_ms: row.get(14)?,
        updated_at_ms: row.get(15)?,
        id,
    })
}

fn collect(
    transaction: &Transaction<'_>,
    sql: &str,
    conditions: &Conditions,
) -> Result<Vec<JobRecord>, StoreError> {
    let mut statement = transaction.prepare(sql)?;
    let mut rows = statement.query(conditions.values())?;
    let mut jobs = Vec::new();
    while let Some(row) = rows.next()? {
        jobs.push(job_from_row(row)?);
    }
    Ok(jobs)
}

pub(crate) fn get(transaction: &Transaction<'_>, id: &str) -> Result<Option<JobRecord>, StoreError> {
    let mut conditions = Conditions::default();
    conditions.push("id = ?", [text(id)]);
    Ok(collect(
        transaction,
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?"),
        &conditions,
    )?
    .pop())
}

fn insert(transaction: &Transaction<'_>, job: &NewJob) -> Result<JobRecord, StoreError> {
    if job.id.is_empty() {
        return Err(invalid("job id", "must not be empty"));
    }
    let exists: Option<i64> = transaction
        .query_row("SELECT 1 FROM jobs WHERE id = ?1", [&job.id], |row| row.get(0))
        .optional()?;
    if exists.is_some() {
        return Err(StoreError::JobExists { id: job.id.clone() });
    }
    let now = now_ms();
    transaction.execute(
        "INSERT INTO jobs (id, state, workflow, client, priority, request, created_at, updated_at)
         VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            job.id,
            job.workflow,
            job.client,
            job.priority,
            job.request.to_string(),
            now
        ],
    )?;
    get(transaction, &job.id)?.ok_or_else(|| StoreError::JobNotFound { id: job.id.clone() })
}

fn update(transaction: &Transaction<'_>, id: &str, change: &JobUpdate) -> Result<JobRecord, StoreError> {
    let current = get(transaction, id)?.ok_or_else(|| StoreError::JobNotFound { id: id.to_owned() })?;
    if !change.allowed_from(current.state) {
        return Err(StoreError::InvalidJobTransition {
            id: id.to_owned(),
            from: current.state,
            to: change.target(current.state),
        });
    }
    let now = now_ms();
    match change {
        JobUpdate::Submitted { backend_id, prompt_id } => transaction.execute(
            "UPDATE jobs SET state = 'submitted', backend_id = ?2, prompt_id = ?3, submitted_at = ?4,
             updated_at = ?4 WHERE id = ?1",
            params![id, backend_id, prompt_id, now],
        )?,
        JobUpdate::Running => transaction.execute(
            "UPDATE jobs SET state = 'running', started_at = coalesce(started_at, ?2), updated_at = ?2
             WHERE id = ?1",
            params![id, now],
        )?,
        JobUpdate::Progress { progress } => {
            if progress.is_nan() {
                return Err(invalid("job progress", "is not a number"));
            }
            transaction.execute(
                "UPDATE jobs SET progress = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, progress.clamp(0.0, 1.0), now],
            )?
        }
        JobUpdate::Succeeded { outputs } => transaction.execute(
            "UPDATE jobs SET state = 'succeeded', outputs = ?2, progress = 1, finished_at = ?3, updated_at = ?3
             WHERE id = ?1",
            params![id, outputs.to_string(), now],
        )?,
        JobUpdate::Failed { error } => transaction.execute(
            "UPDATE jobs SET state = 'failed', error = ?2, finished_at = ?3, updated_at = ?3 WHERE id = ?1",
            params![id, error, now],
        )?,
        JobUpdate::Cancelled => transaction.execute(
            "UPDATE jobs SET state = 'cancelled', finished_at = ?2, updated_at = ?2 WHERE id = ?1",
            params![id, now],
        )?,
        JobUpdate::Requeued => transaction.execute(
            "UPDATE jobs SET state = 'queued', backend_id = NULL, prompt_id = NULL, submitted_at = NULL,
             started_at = NULL, progress = 0, updated_at = ?2 WHERE id = ?1",
            params![id, now],
        )?,
    };
    get(transaction, id)?.ok_or_else(|| StoreError::JobNotFound { id: id.to_owned() })
}

impl Store {
    /// Persists a new job in state `queued`. Call this before sending the job anywhere.
    pub async fn insert_job(&self, job: NewJob) -> Result<JobRecord, StoreError> {
        self.write(move |transaction| insert(transaction, &job)).await
    }

    /// Applies one state change and returns the job as it now is.
    pub async fn update_job(&self, id: &str, change: JobUpdate) -> Result<JobRecord, StoreError> {
        let id = id.to_owned();
        self.write(move |transaction| update(transaction, &id, &change))
            .await
    }

    pub async fn get_job(&self, id: &str) -> Result<JobRecord, StoreError> {
        let id = id.to_owned();
        self.read(move |transaction| get(transaction, &id)?.ok_or(StoreError::JobNotFound { id }))
            .await
    }

    /// The job a backend knows by `prompt_id`, for routing backend events to jobs.
    pub async fn job_by_prompt_id(
        &self,
        backend_id: &str,
        prompt_id: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        let mut conditions = Conditions::default();
        conditions.push("backend_id = ?", [text(backend_id)]);
        conditions.push("prompt_id = ?", [text(prompt_id)]);
        self.read(move |transaction| {
            let sql = format!("SELECT {COLUMNS} FROM jobs{} LIMIT 1", conditions.where_clause());
            Ok(collect(transaction, &sql, &conditions)?.pop())
        })
        .await
    }

    /// Jobs not in a final state (queued, submitted, running), oldest first: what a restarted server
    /// must reconcile with its backends.
    pub async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.read(|transaction| {
            let sql = format!(
                "SELECT {COLUMNS} FROM jobs WHERE state IN ('queued', 'submitted', 'running') ORDER BY created_at, id"
            );
            collect(transaction, &sql, &Conditions::default())
        })
        .await
    }

    /// Jobs matching `query`, newest first.
    pub async fn list_jobs(&self, query: JobQuery) -> Result<Vec<JobRecord>, StoreError> {
        let mut conditions = Conditions::default();
        if let Some(states) = &query.states {
            conditions.push_in("state", states.iter().map(|state| text(state.as_str())).collect());
        }
        if let Some(client) = &query.client {
            conditions.push("client = ?", [text(client)]);
        }
        if let Some(backend_id) = &query.backend_id {
            conditions.push("backend_id = ?", [text(backend_id)]);
        }
        if let Some(workflow) = &query.workflow {
            conditions.push("workflow = ?", [text(workflow)]);
        }
        if let Some(before) = query.created_before_ms {
            conditions.push("created_at < ?", [before.into()]);
        }
        conditions.push_value(limit_value(query.limit));
        self.read(move |transaction| {
            let sql = format!(
                "SELECT {COLUMNS} FROM jobs{} ORDER BY created_at DESC, id DESC LIMIT ?",
                conditions.where_clause()
            );
            collect(transaction, &sql, &conditions)
        })
        .await
    }
}
