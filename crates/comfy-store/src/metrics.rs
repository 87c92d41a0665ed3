//! Job timings: queue wait, execution, transfer and total per job, summarized as p50/p95 by
//! workflow, model or backend, and handed out raw for the time-estimate fit done elsewhere.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::query::{Conditions, limit_value, text};
use crate::store::Store;

/// The timings of one finished job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMetrics {
    pub job_id: String,
    pub workflow: Option<String>,
    pub model: Option<String>,
    pub backend_id: Option<String>,
    pub succeeded: bool,
    pub queue_wait_ms: i64,
    pub execution_ms: i64,
    pub transfer_ms: i64,
    pub total_ms: i64,
    pub recorded_at_ms: i64,
}

/// What [`Store::metric_summary`] groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricGrouping {
    Workflow,
    Model,
    Backend,
}

/// Which samples to use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricQuery {
    pub workflow: Option<String>,
    pub model: Option<String>,
    pub backend_id: Option<String>,
    /// Only successful (`true`) or failed (`false`) jobs.
    pub succeeded: Option<bool>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// For [`Store::metric_samples`]: at most this many, newest first.
    pub limit: Option<u32>,
}

/// Nearest-rank percentiles of one duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_ms: i64,
    pub p95_ms: i64,
}

/// One group's statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// The workflow, model or backend; `None` for samples that did not record it.
    pub key: Option<String>,
    pub samples: u64,
    pub succeeded: u64,
    pub queue_wait: Percentiles,
    pub execution: Percentiles,
    pub transfer: Percentiles,
    pub total: Percentiles,
}

/// The nearest-rank percentile of sorted `values`: the smallest value with at least `percent` of
/// the values at or below it. 0 for no values.
fn nearest_rank(sorted: &[i64], percent: u64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let count = u64::try_from(sorted.len()).unwrap_or(u64::MAX);
    let rank = (percent * count).div_ceil(100).max(1);
    let index = usize::try_from(rank - 1)
        .unwrap_or(usize::MAX)
        .min(sorted.len() - 1);
    sorted.get(index).copied().unwrap_or(0)
}

fn percentiles(mut values: Vec<i64>) -> Percentiles {
    values.sort_unstable();
    Percentiles {
        p50_ms: nearest_rank(&values, 50),
        p95_ms: nearest_rank(&values, 95),
    }
}

fn conditions_for(query: &MetricQuery) -> Conditions {
    let mut conditions = Conditions::default();
    if let Some(workflow) = &query.workflow {
        conditions.push("workflow = ?", [text(workflow)]);
    }
    if let Some(model) = &query.model {
        conditions.push("model = ?", [text(model)]);
    }
    if let Some(backend_id) = &query.backend_id {
        conditions.push("backend_id = ?", [text(backend_id)]);
    }
    if let Some(succeeded) = query.succeeded {
        conditions.push("succeeded = ?", [i64::from(succeeded).into()]);
    }
    if let Some(since) = query.since_ms {
        conditions.push("recorded_at >= ?", [since.into()]);
    }
    if let Some(until) = query.until_ms {
        conditions.push("recorded_at < ?", [until.into()]);
    }
    conditions
}

fn summarize(key: Option<String>, samples: &[JobMetrics]) -> MetricSummary {
    let column = |pick: fn(&JobMetrics) -> i64| percentiles(samples.iter().map(pick).collect());
    MetricSummary {
        key,
        samples: u64::try_from(samples.len()).unwrap_or(u64::MAX),
        succeeded: u64::try_from(samples.iter().filter(|sample| sample.succeeded).count())
            .unwrap_or(u64::MAX),
        queue_wait: column(|sample| sample.queue_wait_ms),
        execution: column(|sample| sample.execution_ms),
        transfer: column(|sample| sample.transfer_ms),
        total: column(|sample| sample.total_ms),
    }
}

impl Store {
    /// Records (or replaces) the timings of one job.
    pub async fn record_job_metrics(&self, metrics: JobMetrics) -> Result<(), StoreError> {
        self.write(move |transaction| {
            transaction.execute(
                "INSERT OR REPLACE INTO job_metrics (job_id, workflow, model, backend_id, succeeded, queue_wait_ms,
                 execution_ms, transfer_ms, total_ms, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    metrics.job_id,
                    metrics.workflow,
                    metrics.model,
                    metrics.backend_id,
                    metrics.succeeded,
                    metrics.queue_wait_ms,
                    metrics.execution_ms,
                    metrics.transfer_ms,
                    metrics.total_ms,
                    metrics.recorded_at_ms
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Raw samples matching `query`, newest first: the input of a time-estimate fit.
    pub async fn metric_samples(&self, query: MetricQuery) -> Result<Vec<JobMetrics>, StoreError> {
        let mut conditions = conditions_for(&query);
        conditions.push_value(limit_value(query.limit));
        self.read(move |transaction| {
            let sql = format!(
                "SELECT job_id, workflow, model, backend_id, succeeded, queue_wait_ms, execution_ms, transfer_ms,
                 total_ms, recorded_at FROM job_metrics{} ORDER BY recorded_at DESC, job_id LIMIT ?",
                conditions.where_clause()
            );
            let mut statement = transaction.prepare(&sql)?;
            let samples = statement
                .query_map(conditions.values(), |row| {
                    Ok(JobMetrics {
                        job_id: row.get(0)?,
                        workflow: row.get(1)?,
                        model: row.get(2)?,
                        backend_id: row.get(3)?,
                        succeeded: row.get(4)?,
                        queue_wait_ms: row.get(5)?,
                        execution_ms: row.get(6)?,
                        transfer_ms: row.get(7)?,
                        total_ms: row.get(8)?,
                        recorded_at_ms: row.get(9)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(samples)
        })
        .await
    }

    /// p50/p95 of each duration per workflow, model or backend (ignoring `query.limit`), by key.
    pub async fn metric_summary(
        &self,
        grouping: MetricGrouping,
        query: MetricQuery,
    ) -> Result<Vec<MetricSummary>, StoreError> {
        let samples = self.metric_samples(MetricQuery { limit: None, ..query }).await?;
        let mut groups: BTreeMap<Option<String>, Vec<JobMetrics>> = BTreeMap::new();
        for sample in samples {
            let key = match grouping {
                MetricGrouping::Workflow => sample.workflow.clone(),
                MetricGrouping::Model => sample.model.clone(),
                MetricGrouping::Backend => sample.backend_id.clone(),
            };
            groups.entry(key).or_default().push(sample);
        }
        Ok(groups
            .into_iter()
            .map(|(key, samples)| summarize(key, &samples))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<i64> = (1..=20).collect();
        assert_eq!(nearest_rank(&values, 50), 10);
        assert_eq!(nearest_rank(&values, 95), 19);
        assert_eq!(nearest_rank(&[7], 95), 7);
        assert_eq!(nearest_rank(&[], 50), 0);
        assert_eq!(
            percentiles(vec![300, 100, 200]),
            Percentiles {
                p50_ms: 200,
                p95_ms: 300
            }
        );
    }
}
