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
use serde::Deserialize;
use serde_json::{Value, json};

use super::library::{TimeArgument, optional_time};
use super::render::{engine_error, error_text, json_result};
use super::server::ComfyServer;
use super::tool::{Hints, ToolDeclaration, ToolOutcome, declare_tool};
use comfy_engine::insights::{EstimateRequest, Work};
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
        JobMetricsArguments,
        job_metrics,
    ),
    declare_tool!(
        "estimate_generation_time",
        "Estimate how long a generation takes from recorded history: execution seconds fitted by least squares on steps x megapixels x batch per model/backend, an approximate 95% range, the sample count, and typical queue wait and transfer. Says plainly when there is too little history.",
        Hints::READ_ONLY,
        EstimateArguments,
        estimate_generation_time,
    ),
    declare_tool!(
        "audit_log",
        "The audit log of tool calls, newest first: time, client, tool, a digest of the (redacted) arguments, outcome, duration and a short failure detail. Filter by time range, tool, client and outcome.",
        Hints::READ_ONLY,
        AuditLogArguments,
        audit_log,
    ),
];

fn store_failure(error: comfy_engine::types::StoreError) -> CallToolResult {
    engine_error(&library_error(error))
}

fn summary_json(summary: &MetricSummary) -> Value {
    let pair = |percentiles: comfy_engine::types::Percentiles| json!({"p50_ms": percentiles.p50_ms, "p95_ms": percentiles.p95_ms});
    json!({
        "key": summary.key,
        "samples": summary.samples,
        "succeeded": summary.succeeded,
        "queue_wait": pair(summary.queue_wait),
        "execution": pair(summary.execution),
        "transfer": pair(summary.transfer),
        "total": pair(summary.total),
    })
}

fn sample_json(sample: &JobMetrics) -> Value {
    json!({
        "job_id": sample.job_id,
        "recorded_at": format_rfc3339(sample.recorded_at_ms),
        "workflow": sample.workflow,
        "model": sample.model,
        "backend": sample.backend_id,
        "succeeded": sample.succeeded,
        "queue_wait_ms": sample.queue_wait_ms,
        "execution_ms": sample.execution_ms,
        "transfer_ms": sample.transfer_ms,
        "total_ms": sample.total_ms,
    })
}

async fn job_metrics(
    server: &ComfyServer,
    arguments: JobMetricsArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
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
    let mut answer = json!({
        "group_by": grouping_name,
        "groups": summaries.iter().map(summary_json).collect::<Vec<_>>(),
        "percentiles": "nearest rank; queue_wait is submission to start, execution start to finish in ComfyUI, transfer is fetching and indexing the outputs afterwards, total all of it",
    });
    let recent = arguments.recent.unwrap_or(0).min(200);
    if recent > 0 {
        let samples = store
            .metric_samples(MetricQuery {
                limit: Some(recent),
                ..query
            })
            .await
            .map_err(store_failure)?;
        answer["recent"] = Value::Array(samples.iter().map(sample_json).collect());
    }
    if summaries.is_empty() {
        answer["note"] = json!("no finished job matches; timings are recorded when a job ends");
    }
    Ok(json_result(&answer))
}

async fn estimate_generation_time(
    server: &ComfyServer,
    arguments: EstimateArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
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
    let estimate = server
        .engine
        .estimate_generation_time(EstimateRequest {
            model: arguments.model,
            backend: arguments.backend,
            work,
        })
        .await
        .map_err(|error| engine_error(&error))?;
    Ok(json_result(
        &serde_json::to_value(&estimate).unwrap_or(Value::Null),
    ))
}

fn audit_json(record: &AuditRecord) -> Value {
    let entry = &record.entry;
    json!({
        "id": record.id,
        "at": format_rfc3339(entry.at_ms),
        "at_ms": entry.at_ms,
        "tool": entry.tool,
        "client": entry.client,
        "outcome": entry.outcome.as_str(),
        "duration_ms": entry.duration_ms,
        "argument_digest": entry.argument_digest,
        "detail": entry.detail,
    })
}

async fn audit_log(
    server: &ComfyServer,
    arguments: AuditLogArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
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
    let mut answer = json!({
        "count": entries.len(),
        "entries": entries.iter().map(audit_json).collect::<Vec<_>>(),
        "argument_digest": "SHA-256 of the arguments as canonical JSON with secrets (passwords, tokens, codes, image data) redacted: equal digests mean equal calls",
    });
    if entries.len() == limit as usize {
        answer["note"] = json!(format!(
            "limit {limit} reached; narrow the time range or raise limit"
        ));
    }
    Ok(json_result(&answer))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
