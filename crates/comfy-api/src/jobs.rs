//! What the product knows about one prompt while ComfyUI runs it: a snapshot (phase, progress,
//! outputs, error) that anyone may read at any time, and a stream of updates for live watchers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::types::{HistoryEntry, HistoryOutcome, OutputFile, OutputText};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// Accepted by ComfyUI, waiting in its queue.
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobPhase {
    pub fn is_final(self) -> bool {
        matches!(self, JobPhase::Succeeded | JobPhase::Failed | JobPhase::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobPhase::Queued => "queued",
            JobPhase::Running => "running",
            JobPhase::Succeeded => "succeeded",
            JobPhase::Failed => "failed",
            JobPhase::Cancelled => "cancelled",
        }
    }
}

/// Why a job failed, as precisely as ComfyUI said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobFailure {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception_type: Option<String>,
}

impl JobFailure {
    pub fn from_execution_error(details: &Value) -> Self {
        let text = |key: &str| details.get(key).and_then(Value::as_str).map(str::to_owned);
        JobFailure {
            message: text("exception_message")
                .map_or_else(|| "execution failed".to_owned(), |m| m.trim().to_owned()),
            node_id: text("node_id"),
            node_type: text("node_type"),
            exception_type: text("exception_type"),
        }
    }
}

/// The latest known state of one job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSnapshot {
    pub prompt_id: String,
    pub phase: JobPhase,
    /// Zero-based place among pending prompts, when queued and known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// The node running now, with its title when the prompt gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_node_title: Option<String>,
    /// Progress of the current node (e.g. sampler steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_progress: Option<(f64, f64)>,
    /// Nodes finished or served from cache, out of the prompt's node count.
    pub nodes_done: usize,
    pub nodes_total: usize,
    /// Overall progress in [0, 1], never decreasing.
    pub fraction: f64,
    pub outputs: Vec<OutputFile>,
    /// What output nodes showed as text (`PreviewAny`...), from the history entry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<OutputText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
    /// Milliseconds since the Unix epoch.
    pub submitted_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
}

/// One live update for watchers (progress notifications, previews).
#[derive(Debug, Clone)]
pub enum JobUpdate {
    Started,
    NodeStarted {
        node_id: String,
        title: Option<String>,
    },
    Progress {
        node_id: Option<String>,
        value: f64,
        max: f64,
    },
    Preview {
        node_id: Option<String>,
        media_type: String,
        image: Bytes,
    },
    Finished,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(0))
}

/// The per-job bookkeeping behind a snapshot; lives inside the backend actor.
#[derive(Debug)]
pub(crate) struct JobTracker {
    pub snapshot: JobSnapshot,
    titles: BTreeMap<String, String>,
    finished_nodes: BTreeSet<String>,
}

impl JobTracker {
    pub fn new(prompt_id: &str, titles: BTreeMap<String, String>, nodes_total: usize) -> Self {
        JobTracker {
            snapshot: JobSnapshot {
                prompt_id: prompt_id.to_owned(),
                phase: JobPhase::Queued,
                queue_position: None,
                current_node: None,
                current_node_title: None,
                node_progress: None,
                nodes_done: 0,
                nodes_total,
                fraction: 0.0,
                outputs: Vec::new(),
                texts: Vec::new(),
                failure: None,
                submitted_at_ms: now_ms(),
                started_at_ms: None,
                finished_at_ms: None,
            },
            titles,
            finished_nodes: BTreeSet::new(),
        }
    }

    pub fn title_of(&self, node_id: &str) -> Option<String> {
        self.titles.get(node_id).cloned()
    }

    fn mark_running(&mut self) {
        if self.snapshot.phase == JobPhase::Queued {
            self.snapshot.phase = JobPhase::Running;
            self.snapshot.queue_position = None;
            self.snapshot.started_at_ms.get_or_insert_with(now_ms);
        }
    }

    fn finish_current_node(&mut self) {
        if let Some(node) = self.snapshot.current_node.take() {
            self.finished_nodes.insert(node);
        }
        self.snapshot.current_node_title = None;
        self.snapshot.node_progress = None;
        self.refresh_fraction();
    }

    fn refresh_fraction(&mut self) {
        self.snapshot.nodes_done = self.finished_nodes.len();
        if self.snapshot.nodes_total == 0 {
            return;
        }
        let within = self
            .snapshot
            .node_progress
            .map_or(0.0, |(value, max)| if max > 0.0 { value / max } else { 0.0 });
        let fraction = ((self.snapshot.nodes_done as f64 + within.clamp(0.0, 1.0))
            / self.snapshot.nodes_total as f64)
            .clamp(0.0, 0.99);
        if fraction > self.snapshot.fraction {
            self.snapshot.fraction = fraction;
        }
    }

    pub fn on_start(&mut self) -> Option<JobUpdate> {
        self.mark_running();
        Some(JobUpdate::Started)
    }

    pub fn on_cached(&mut self, nodes: &[String]) -> Option<JobUpdate> {
        self.mark_running();
        self.finished_nodes.extend(nodes.iter().cloned());
        self.refresh_fraction();
        None
    }

    pub fn on_executing(&mut self, node: &str) -> Option<JobUpdate> {
        self.mark_running();
        self.finish_current_node();
        self.snapshot.current_node = Some(node.to_owned());
        self.snapshot.current_node_title = self.title_of(node);
        Some(JobUpdate::NodeStarted {
            node_id: node.to_owned(),
            title: self.title_of(node),
        })
    }

    pub fn on_progress(&mut self, node: Option<&str>, value: f64, max: f64) -> Option<JobUpdate> {
        self.mark_running();
        if let Some(node) = node
            && self.snapshot.current_node.as_deref() != Some(node)
        {
            self.finish_current_node();
            self.snapshot.current_node = Some(node.to_owned());
            self.snapshot.current_node_title = self.title_of(node);
        }
        self.snapshot.node_progress = Some((value, max));
        self.refresh_fraction();
        Some(JobUpdate::Progress {
            node_id: node.map(str::to_owned),
            value,
            max,
        })
    }

    /// Applies the authoritative history entry and makes the snapshot final.
    pub fn finish_from_history(&mut self, entry: &HistoryEntry, cancel_requested: bool) {
        self.snapshot.outputs = entry.files();
        self.snapshot.texts = entry.texts();
        self.take_times_from(entry);
        match entry.outcome {
            HistoryOutcome::Success => self.snapshot.phase = JobPhase::Succeeded,
            HistoryOutcome::Interrupted => {
                self.snapshot.phase = JobPhase::Cancelled;
                if !cancel_requested {
                    self.snapshot.failure = Some(JobFailure {
                        message: "interrupted on ComfyUI by someone else".to_owned(),
                        node_id: None,
                        node_type: None,
                        exception_type: None,
                    });
                }
            }
            HistoryOutcome::Error => {
                self.snapshot.phase = JobPhase::Failed;
                self.snapshot.failure = Some(
                    entry
                        .error
                        .as_ref()
                        .map(JobFailure::from_execution_error)
                        .unwrap_or_else(|| JobFailure {
                            message: "ComfyUI reported an error without details".to_owned(),
                            node_id: None,
                            node_type: None,
                            exception_type: None,
                        }),
                );
            }
        }
        self.close();
    }

    /// Sets the start and end from one clock, so a run never lasts less than nothing. The start
    /// we saw is on our clock, ComfyUI's times on its own (another machine, or the same one a few
    /// milliseconds apart: a fully cached job ran in 1 ms). So the run lasts what ComfyUI measured,
    /// placed on our clock from the start we saw, and ends no later than now; a job nobody saw
    /// start keeps ComfyUI's times.
    fn take_times_from(&mut self, entry: &HistoryEntry) {
        let now = now_ms();
        let (started, finished) = match (
            self.snapshot.started_at_ms,
            entry.started_at_ms,
            entry.finished_at_ms,
        ) {
            (Some(seen), Some(start), Some(end)) => {
                let ran = end.saturating_sub(start).max(0);
                let finished = seen.saturating_add(ran).min(now);
                (Some(finished - ran), finished)
            }
            (Some(seen), _, _) => (Some(seen), now.max(seen)),
            (None, start, end) => {
                let finished = end.unwrap_or(now);
                (start, start.map_or(finished, |start| finished.max(start)))
            }
        };
        self.snapshot.started_at_ms = started;
        self.snapshot.finished_at_ms = Some(finished);
    }

    /// Ends the job without a history entry (dequeued before it ran, or lost).
    pub fn finish_without_history(&mut self, phase: JobPhase, failure: Option<JobFailure>) {
        self.snapshot.phase = phase;
        self.snapshot.failure = failure;
        let now = now_ms();
        self.snapshot.finished_at_ms = Some(
            self.snapshot
                .started_at_ms
                .map_or(now, |started| now.max(started)),
        );
        self.close();
    }

    fn close(&mut self) {
        self.snapshot.current_node = None;
        self.snapshot.current_node_title = None;
        self.snapshot.node_progress = None;
        self.snapshot.queue_position = None;
        if self.snapshot.phase == JobPhase::Succeeded {
            self.snapshot.fraction = 1.0;
            self.snapshot.nodes_done = self.snapshot.nodes_total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn history(start: i64, end: i64) -> HistoryEntry {
        HistoryEntry::from_json(
            "p",
            &json!({"prompt": [1, "p", {}, {}, ["1"]], "outputs": {}, "status": {"status_str": "success",
                "messages": [["execution_start", {"prompt_id": "p", "timestamp": start}],
                             ["execution_cached", {"prompt_id": "p", "nodes": ["1"], "timestamp": start}],
                             ["execution_success", {"prompt_id": "p", "timestamp": end}]]}}),
        )
    }

    fn run_ms(tracker: &JobTracker) -> i64 {
        tracker.snapshot.finished_at_ms.unwrap() - tracker.snapshot.started_at_ms.unwrap()
    }

    #[test]
    fn a_fully_cached_job_never_runs_for_less_than_nothing() {
        // We saw it start 1 ms after ComfyUI had finished it (it ran in 1 ms, all from cache).
        let mut tracker = JobTracker::new("p", BTreeMap::new(), 1);
        tracker.on_cached(&["1".to_owned()]);
        let seen = tracker.snapshot.started_at_ms.unwrap();
        tracker.finish_from_history(&history(seen - 2, seen - 1), false);
        assert_eq!(tracker.snapshot.phase, JobPhase::Succeeded);
        assert_eq!(run_ms(&tracker), 1);
        assert!(tracker.snapshot.started_at_ms.unwrap() <= seen);
    }

    #[test]
    fn a_run_lasts_what_comfyui_measured_and_ends_by_now() {
        // ComfyUI's clock is an hour ahead of ours; the run took 4 s.
        let hour = 3_600_000;
        let mut tracker = JobTracker::new("p", BTreeMap::new(), 1);
        tracker.on_start();
        let seen = tracker.snapshot.started_at_ms.unwrap();
        tracker.finish_from_history(&history(seen + hour, seen + hour + 4_000), false);
        let finished = tracker.snapshot.finished_at_ms.unwrap();
        assert!(finished <= now_ms(), "ends no later than now");
        assert_eq!(run_ms(&tracker), 4_000);
        // Seen late (attached while it ran): the start moves back, the length stays.
        assert!(tracker.snapshot.started_at_ms.unwrap() <= seen);
    }

    #[test]
    fn a_job_nobody_saw_start_keeps_comfyuis_times() {
        let mut tracker = JobTracker::new("p", BTreeMap::new(), 1);
        tracker.finish_from_history(&history(1_000, 1_250), false);
        assert_eq!(tracker.snapshot.started_at_ms, Some(1_000));
        assert_eq!(tracker.snapshot.finished_at_ms, Some(1_250));
        let mut tracker = JobTracker::new("p", BTreeMap::new(), 1);
        tracker.on_start();
        tracker.finish_without_history(JobPhase::Cancelled, None);
        assert!(run_ms(&tracker) >= 0);
    }
}
