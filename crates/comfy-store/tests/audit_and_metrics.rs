//! The audit log and job metrics through the public API.

mod common;

use comfy_store::{
    AuditEntry, AuditOutcome, AuditQuery, JobMetrics, MetricGrouping, MetricQuery, Percentiles, content_hash,
};
use serde_json::json;

fn entry(at_ms: i64, client: &str, tool: &str, outcome: AuditOutcome) -> AuditEntry {
    AuditEntry {
        at_ms,
        client: Some(client.to_owned()),
        tool: tool.to_owned(),
        argument_digest: Some(content_hash(&json!({"at": at_ms}))),
        outcome,
        duration_ms: 12,
        detail: None,
    }
}

#[tokio::test]
async fn audit_entries_are_queried_by_time_tool_and_client_and_pruned() {
    let (_directory, store) = common::open_store("audit").await;
    store
        .record_audit(entry(1_000, "alice", "generate_image", AuditOutcome::Success))
        .await
        .unwrap();
    store
        .record_audit(entry(2_000, "bob", "generate_image", AuditOutcome::Failure))
        .await
        .unwrap();
    store
        .record_audit(entry(3_000, "alice", "list_presets", AuditOutcome::Success))
        .await
        .unwrap();

    let all = store.query_audit(AuditQuery::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|record| record.entry.at_ms).collect::<Vec<_>>(),
        [3_000, 2_000, 1_000]
    );
    assert_eq!(
        all[2].entry,
        entry(1_000, "alice", "generate_image", AuditOutcome::Success)
    );

    let alice = store
        .query_audit(AuditQuery {
            client: Some("alice".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(alice.len(), 2);
    let generate = store
        .query_audit(AuditQuery {
            tool: Some("generate_image".into()),
            since_ms: Some(1_500),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(generate.len(), 1);
    assert_eq!(generate[0].entry.outcome, AuditOutcome::Failure);
    let window = store
        .query_audit(AuditQuery {
            since_ms: Some(1_000),
            until_ms: Some(3_000),
            limit: Some(1),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        window.iter().map(|record| record.entry.at_ms).collect::<Vec<_>>(),
        [2_000]
    );

    assert_eq!(store.prune_audit(2_500).await.unwrap(), 2);
    assert_eq!(store.query_audit(AuditQuery::default()).await.unwrap().len(), 1);
    let error = store
        .record_audit(entry(1, "x", " ", AuditOutcome::Success))
        .await
        .unwrap_err();
    assert!(
        matches!(error, comfy_store::StoreError::InvalidInput { .. }),
        "{error}"
    );
}

fn sample(job: usize, workflow: &str, backend: &str, total_ms: i64, succeeded: bool) -> JobMetrics {
    JobMetrics {
        job_id: format!("job-{job}"),
        workflow: Some(workflow.to_owned()),
        model: Some("sd15.safetensors".to_owned()),
        backend_id: Some(backend.to_owned()),
        succeeded,
        queue_wait_ms: total_ms / 10,
        execution_ms: total_ms / 2,
        transfer_ms: 5,
        total_ms,
        recorded_at_ms: i64::try_from(job).unwrap(),
    }
}

#[tokio::test]
async fn metrics_summaries_give_nearest_rank_percentiles_per_group() {
    let (_directory, store) = common::open_store("metrics").await;
    // txt2img on "a": totals 100, 200, ..., 2000; upscale on "b": one slow failure.
    for index in 1..=20 {
        store
            .record_job_metrics(sample(
                index,
                "txt2img",
                "a",
                i64::try_from(index).unwrap() * 100,
                true,
            ))
            .await
            .unwrap();
    }
    store
        .record_job_metrics(sample(100, "upscale", "b", 9_000, false))
        .await
        .unwrap();

    let by_workflow = store
        .metric_summary(MetricGrouping::Workflow, MetricQuery::default())
        .await
        .unwrap();
    assert_eq!(by_workflow.len(), 2);
    let txt2img = &by_workflow[0];
    assert_eq!(txt2img.key.as_deref(), Some("txt2img"));
    assert_eq!((txt2img.samples, txt2img.succeeded), (20, 20));
    assert_eq!(
        txt2img.total,
        Percentiles {
            p50_ms: 1_000,
            p95_ms: 1_900
        }
    );
    assert_eq!(
        txt2img.execution,
        Percentiles {
            p50_ms: 500,
            p95_ms: 950
        }
    );
    assert_eq!(by_workflow[1].succeeded, 0);

    let by_model = store
        .metric_summary(MetricGrouping::Model, MetricQuery::default())
        .await
        .unwrap();
    assert_eq!(by_model.len(), 1);
    assert_eq!(by_model[0].samples, 21);
    let successful_backends = store
        .metric_summary(
            MetricGrouping::Backend,
            MetricQuery {
                succeeded: Some(true),
                ..MetricQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        successful_backends
            .iter()
            .map(|group| group.key.as_deref())
            .collect::<Vec<_>>(),
        [Some("a")]
    );

    // Recording a job again replaces its sample.
    store
        .record_job_metrics(sample(100, "upscale", "b", 8_000, true))
        .await
        .unwrap();
    let samples = store
        .metric_samples(MetricQuery {
            workflow: Some("upscale".into()),
            ..MetricQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!((samples[0].total_ms, samples[0].succeeded), (8_000, true));
    let newest = store
        .metric_samples(MetricQuery {
            limit: Some(2),
            since_ms: Some(19),
            ..MetricQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        newest
            .iter()
            .map(|sample| sample.job_id.as_str())
            .collect::<Vec<_>>(),
        ["job-100", "job-20"]
    );
}
