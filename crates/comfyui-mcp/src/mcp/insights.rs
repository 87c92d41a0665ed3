//! The `insights` toolset: job timings (queue wait, execution, transfer, total) as p50/p95 by
//! workflow, model or backend; a generation-time estimate fitted on recorded history; and the audit
//! log of tool calls, queryable and pruned by age. Each tool parses, calls the engine or store, and
//! renders.

use comfy_engine::types::{
    AuditOutcome, AuditQuery, AuditRecord, JobMetrics, MetricGrouping, MetricQuery, MetricSummary,
};
use rmcp::RoleServer;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::library::{TimeArgument, optional_time};
use super::render::{engine_error, error_text};
use super::server::ComfyServer;
use super::tool::{Hints, Structured, ToolDeclaration, declare_tool};
use comfy_engine::insights::{EstimateRequest, TimeEstimate, Work};
use comfy_engine::library::library_error;
use comfy_engine::timestamps::format_rfc3339;

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum GroupBy {
    Workflow,
    /// The default.
    #[default]
    Model,
    Backend,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JobMetricsArguments {
    /// Group by workflow (generate_image, run_workflow...), model (default) or backend.
    #[serde(default)]
    group_by: GroupBy,
    /// Only jobs of this workflow.
    workflow: Option<String>,
    /// Only jobs of this model.
    model: Option<String>,
    /// Only jobs on this backend.
    backend: Option<String>,
    /// Only successful (true) or failed (false) jobs; default both.
    succeeded: Option<bool>,
    /// Jobs recorded at or after this time.
    since: Option<TimeArgument>,
    /// Jobs recorded before this time.
    until: Option<TimeArgument>,
    /// Also list this many most recent jobs with their own timings (default 0, at most 200).
    recent: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EstimateArguments {
    /// Checkpoint or model name as jobs recorded it (default: every model pooled).
    model: Option<String>,
    /// Backend name (default: every backend pooled).
    backend: Option<String>,
    /// Sampling steps (default 20).
    steps: Option<u32>,
    /// Pixels (default 512).
    width: Option<u32>,
    /// Pixels (default 512).
    height: Option<u32>,
    /// Images per run (default 1).
    batch_size: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum OutcomeArgument {
    Success,
    Failure,
    Denied,
    RateLimited,
}

impl From<OutcomeArgument> for AuditOutcome {
    fn from(outcome: OutcomeArgument) -> Self {
        match outcome {
            OutcomeArgument::Success => AuditOutcome::Success,
            OutcomeArgument::Failure => AuditOutcome::Failure,
            OutcomeArgument::Denied => AuditOutcome::Denied,
            OutcomeArgument::RateLimited => AuditOutcome::RateLimited,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AuditLogArguments {
    /// Entries at or after this time.
    since: Option<TimeArgument>,
    /// Entries before this time.
    until: Option<TimeArgument>,
    /// Only calls of this tool.
    tool: Option<String>,
    /// Only calls from this client ("name version" as the client introduced itself).
    client: Option<String>,
    /// Only calls that ended this way.
    outcome: Option<OutcomeArgument>,
    /// At most this many entries, newest first (default 50, at most 1000).
    limit: Option<u32>,
}

/// This toolset's tools, each declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[
    declare_tool!(
        "job_metrics",
        "Timings of finished jobs: queue wait, execution, transfer (indexing outputs) and total, as nearest-rank p50/p95 in milliseconds grouped by workflow, model or backend, with filters and optionally the most recent jobs one by one.",
        Hints::READ_ONLY,
        JobMetricsArguments => JobMetricsReport,
        job_metrics,
    ),
    declare_tool!(
        "estimate_generation_time",
        "Estimate how long a generation takes from recorded history: execution seconds fitted by least squares on steps x megapixels x batch per model/backend, an approximate 95% range, the sample count, and typical queue wait and transfer. Says plainly when there is too little history.",
        Hints::READ_ONLY,
        EstimateArguments => TimeEstimate,
        estimate_generation_time,
    ),
    declare_tool!(
        "audit_log",
        "The audit log of tool calls, newest first: time, client, tool, a digest of the (redacted) arguments, outcome, duration and a short failure detail. Filter by time range, tool, client and outcome.",
        Hints::READ_ONLY,
        AuditLogArguments => AuditLogReport,
        audit_log,
    ),
];

fn store_failure(error: comfy_engine::types::StoreError) -> CallToolResult {
    engine_error(&library_error(error))
}

/// What `job_metrics` answers.
#[derive(Debug, Serialize, JsonSchema)]
struct JobMetricsReport {
    /// workflow, model or backend.
    group_by: String,
    groups: Vec<MetricGroup>,
    /// What the percentiles measure.
    percentiles: String,
    /// The most recent jobs one by one, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    recent: Option<Vec<MetricSample>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// The timings of one group of finished jobs.
#[derive(Debug, Serialize, JsonSchema)]
struct MetricGroup {
    /// The workflow, model or backend (absent: jobs that recorded none).
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    samples: u64,
    succeeded: u64,
    queue_wait: PercentilePair,
    execution: PercentilePair,
    transfer: PercentilePair,
    total: PercentilePair,
}

/// Nearest-rank percentiles, in milliseconds.
#[derive(Debug, Serialize, JsonSchema)]
struct PercentilePair {
    p50_ms: i64,
    p95_ms: i64,
}

impl From<comfy_engine::types::Percentiles> for PercentilePair {
    fn from(percentiles: comfy_engine::types::Percentiles) -> Self {
        PercentilePair {
            p50_ms: percentiles.p50_ms,
            p95_ms: percentiles.p95_ms,
        }
    }
}

impl From<&MetricSummary> for MetricGroup {
    fn from(summary: &MetricSummary) -> Self {
        MetricGroup {
            key: summary.key.clone(),
            samples: summary.samples,
            succeeded: summary.succeeded,
            queue_wait: summary.queue_wait.into(),
            execution: summary.execution.into(),
            transfer: summary.transfer.into(),
            total: summary.total.into(),
        }
    }
}

/// One finished job's timings.
#[derive(Debug, Serialize, JsonSchema)]
struct MetricSample {
    job_id: String,
    /// RFC 3339, UTC.
    recorded_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
    succeeded: bool,
    queue_wait_ms: i64,
    execution_ms: i64,
    transfer_ms: i64,
    total_ms: i64,
}

impl From<&JobMetrics> for MetricSample {
    fn from(sample: &JobMetrics) -> Self {
        MetricSample {
            job_id: sample.job_id.clone(),
            recorded_at: format_rfc3339(sample.recorded_at_ms),
            workflow: sample.workflow.clone(),
            model: sample.model.clone(),
            backend: sample.backend_id.clone(),
            succeeded: sample.succeeded,
            queue_wait_ms: sample.queue_wait_ms,
            execution_ms: sample.execution_ms,
            transfer_ms: sample.transfer_ms,
            total_ms: sample.total_ms,
        }
    }
}

async fn job_metrics(
    server: &ComfyServer,
    arguments: JobMetricsArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<JobMetricsReport> {
    let now = comfy_engine::types::now_ms();
    let query = MetricQuery {
        workflow: arguments.workflow,
        model: arguments.model,
        backend_id: arguments.backend,
        succeeded: arguments.succeeded,
        since_ms: optional_time("since", arguments.since.as_ref(), now)?,
        until_ms: optional_time("until", arguments.until.as_ref(), now)?,
        limit: None,
    };
    let (grouping, grouping_name) = match arguments.group_by {
        GroupBy::Workflow => (MetricGrouping::Workflow, "workflow"),
        GroupBy::Model => (MetricGrouping::Model, "model"),
        GroupBy::Backend => (MetricGrouping::Backend, "backend"),
    };
    let store = &*server.engine;
    let summaries = store
        .metric_summary(grouping, query.clone())
        .await
        .map_err(store_failure)?;
    let recent = arguments.recent.unwrap_or(0).min(200);
    let recent = if recent > 0 {
        let samples = store
            .metric_samples(MetricQuery {
                limit: Some(recent),
                ..query
            })
            .await
            .map_err(store_failure)?;
        Some(samples.iter().map(MetricSample::from).collect())
    } else {
        None
    };
    Ok(JobMetricsReport {
        group_by: grouping_name.to_owned(),
        groups: summaries.iter().map(MetricGroup::from).collect(),
        percentiles: "nearest rank; queue_wait is submission to start, execution start to finish in ComfyUI, transfer is fetching and indexing the outputs afterwards, total all of it".to_owned(),
        recent,
        note: summaries
            .is_empty()
            .then(|| "no finished job matches; timings are recorded when a job ends".to_owned()),
    })
}

async fn estimate_generation_time(
    server: &ComfyServer,
    arguments: EstimateArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<TimeEstimate> {
    let check = |name: &str, value: u32, maximum: u32| {
        if value == 0 || value > maximum {
            Err(error_text(format!(
                "{name} must be between 1 and {maximum}, got {value}"
            )))
        } else {
            Ok(value)
        }
    };
    let work = Work {
        steps: check("steps", arguments.steps.unwrap_or(20), 10_000)?,
        width: check("width", arguments.width.unwrap_or(512), 16_384)?,
        height: check("height", arguments.height.unwrap_or(512), 16_384)?,
        batch_size: check("batch_size", arguments.batch_size.unwrap_or(1), 4096)?,
    };
    server
        .engine
        .estimate_generation_time(EstimateRequest {
            model: arguments.model,
            backend: arguments.backend,
            work,
        })
        .await
        .map_err(|error| engine_error(&error))
}

/// What `audit_log` answers.
#[derive(Debug, Serialize, JsonSchema)]
struct AuditLogReport {
    count: usize,
    /// Newest first.
    entries: Vec<AuditLine>,
    /// What an entry's argument digest is.
    argument_digest: String,
    /// Present when the limit cut the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// One audited tool call.
#[derive(Debug, Serialize, JsonSchema)]
struct AuditLine {
    id: i64,
    /// RFC 3339, UTC.
    at: String,
    at_ms: i64,
    tool: String,
    /// "name version" as the client introduced itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    /// success, failure, denied or rate_limited.
    outcome: String,
    duration_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    argument_digest: Option<String>,
    /// A short failure detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl From<&AuditRecord> for AuditLine {
    fn from(record: &AuditRecord) -> Self {
        let entry = &record.entry;
        AuditLine {
            id: record.id,
            at: format_rfc3339(entry.at_ms),
            at_ms: entry.at_ms,
            tool: entry.tool.clone(),
            client: entry.client.clone(),
            outcome: entry.outcome.as_str().to_owned(),
            duration_ms: entry.duration_ms,
            argument_digest: entry.argument_digest.clone(),
            detail: entry.detail.clone(),
        }
    }
}

async fn audit_log(
    server: &ComfyServer,
    arguments: AuditLogArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<AuditLogReport> {
    let now = comfy_engine::types::now_ms();
    let limit = arguments.limit.unwrap_or(50).clamp(1, 1000);
    let entries = server
        .engine
        .query_audit(AuditQuery {
            since_ms: optional_time("since", arguments.since.as_ref(), now)?,
            until_ms: optional_time("until", arguments.until.as_ref(), now)?,
            tool: arguments.tool,
            client: arguments.client,
            outcome: arguments.outcome.map(AuditOutcome::from),
            limit: Some(limit),
        })
        .await
        .map_err(store_failure)?;
    Ok(AuditLogReport {
        count: entries.len(),
        entries: entries.iter().map(AuditLine::from).collect(),
        argument_digest: "SHA-256 of the arguments as canonical JSON with secrets (passwords, tokens, codes, image data) redacted: equal digests mean equal calls".to_owned(),
        note: (entries.len() == limit as usize)
            .then(|| format!("limit {limit} reached; narrow the time range or raise limit")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_insight_is_read_only_and_pruning_is_no_tool() {
        // Erasing the audit log is the operator's `comfyui-mcp audit-prune`, never a client's call.
        for tool in TOOLS.iter().map(ToolDeclaration::tool) {
            let annotations = tool.annotations.clone().unwrap();
            assert_eq!(annotations.read_only_hint, Some(true), "{}", tool.name);
            assert!(!tool.name.contains("prune"), "{}", tool.name);
        }
    }

    #[test]
    fn arguments_are_strict() {
        assert!(serde_json::from_value::<AuditLogArguments>(json!({"outcome": "maybe"})).is_err());
        assert!(serde_json::from_value::<EstimateArguments>(json!({"steps": -1})).is_err());
        let parsed: AuditLogArguments =
            serde_json::from_value(json!({"outcome": "rate_limited", "since": "1h"})).unwrap();
        assert!(matches!(parsed.outcome, Some(OutcomeArgument::RateLimited)));
    }

    fn sample(job_id: &str, model: Option<&str>) -> JobMetrics {
        JobMetrics {
            job_id: job_id.into(),
            workflow: model.map(|_| "generate_image".to_owned()),
            model: model.map(str::to_owned),
            backend_id: model.map(|_| "local".to_owned()),
            succeeded: model.is_some(),
            queue_wait_ms: 10,
            execution_ms: 2000,
            transfer_ms: 30,
            total_ms: 2040,
            recorded_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn insights_conform_to_their_schemas() {
        use crate::mcp::tool::conformance::assert_conforms;
        let pair = comfy_engine::types::Percentiles { p50_ms: 1, p95_ms: 2 };
        let summary = |key: Option<&str>| MetricSummary {
            key: key.map(str::to_owned),
            samples: 3,
            succeeded: 2,
            queue_wait: pair,
            execution: pair,
            transfer: pair,
            total: pair,
        };
        let samples = [sample("a", Some("sd15.safetensors")), sample("b", None)];
        let listed: Vec<MetricSample> = samples.iter().map(MetricSample::from).collect();
        for (recent, note) in [(None, Some("none".to_owned())), (Some(listed), None)] {
            let report = JobMetricsReport {
                group_by: "model".into(),
                groups: [summary(Some("sd15")), summary(None)]
                    .iter()
                    .map(MetricGroup::from)
                    .collect(),
                percentiles: "nearest rank".into(),
                recent,
                note,
            };
            assert_conforms(TOOLS, "job_metrics", &report);
        }
        let work = Work {
            steps: 20,
            width: 512,
            height: 512,
            batch_size: 1,
        };
        for (model, points) in [
            (None, Vec::new()),
            (Some("sd15".to_owned()), vec![(1.0, 2.0)]),
            (
                Some("sd15".to_owned()),
                vec![(1.0, 2.0), (2.0, 4.1), (3.0, 5.9), (4.0, 8.2)],
            ),
        ] {
            let request = EstimateRequest {
                model,
                backend: None,
                work,
            };
            let estimate = comfy_engine::insights::estimate_from(&request, &samples, &points);
            assert_conforms(TOOLS, "estimate_generation_time", &estimate);
        }
        let record = |id: i64, client: Option<&str>| AuditRecord {
            id,
            entry: comfy_engine::types::AuditEntry {
                at_ms: 1_700_000_000_000,
                client: client.map(str::to_owned),
                tool: "status".into(),
                argument_digest: client.map(|_| "abc".to_owned()),
                outcome: AuditOutcome::RateLimited,
                duration_ms: 4,
                detail: client.map(|_| "slow down".to_owned()),
            },
        };
        let entries = [record(1, Some("inspector 1.0")), record(2, None)];
        for note in [None, Some("limit 2 reached".to_owned())] {
            let report = AuditLogReport {
                count: entries.len(),
                entries: entries.iter().map(AuditLine::from).collect(),
                argument_digest: "SHA-256".into(),
                note,
            };
            assert_conforms(TOOLS, "audit_log", &report);
        }
    }
}
