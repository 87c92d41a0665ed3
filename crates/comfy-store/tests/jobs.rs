//! Durable jobs through the public API: lifecycle, refused transitions, queries, and survival of
//! unfinished jobs across a restart.

mod common;

use comfy_store::{JobQuery, JobState, JobUpdate, NewJob, Store, StoreError, StoreOptions};
use serde_json::json;

fn new_job(id: &str) -> NewJob {
    NewJob {
        id: id.to_owned(),
        workflow: Some("txt2img".to_owned()),
        client: Some("claude".to_owned()),
        priority: 0,
        request: json!({"prompt": {"3": {"class_type": "KSampler", "inputs": {"seed": 1}}}}),
    }
}

#[tokio::test]
async fn a_job_walks_its_lifecycle_with_timestamps() {
    let (_directory, store) = common::open_store("job-lifecycle").await;
    let job = store.insert_job(new_job("job-1")).await.unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.request["prompt"]["3"]["inputs"]["seed"], 1);
    assert!(job.submitted_at_ms.is_none());

    let job = store
        .update_job(
            "job-1",
            JobUpdate::Submitted {
                backend_id: "local".into(),
                prompt_id: "p-9".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (job.state, job.prompt_id.as_deref()),
        (JobState::Submitted, Some("p-9"))
    );
    assert!(job.submitted_at_ms.is_some());

    let job = store.update_job("job-1", JobUpdate::Running).await.unwrap();
    assert!(job.started_at_ms.is_some());
    let job = store
        .update_job("job-1", JobUpdate::Progress { progress: 7.5 })
        .await
        .unwrap();
    assert_eq!(job.progress, 1.0, "progress is clamped");
    let job = store
        .update_job("job-1", JobUpdate::Progress { progress: 0.25 })
        .await
        .unwrap();
    assert_eq!(job.progress, 0.25);

    let outputs = json!({"9": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}});
    let job = store
        .update_job(
            "job-1",
            JobUpdate::Succeeded {
                outputs: outputs.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.outputs, Some(outputs));
    assert!(job.finished_at_ms.is_some());

    let found = store.job_by_prompt_id("local", "p-9").await.unwrap().unwrap();
    assert_eq!(found.id, "job-1");
    assert!(store.job_by_prompt_id("other", "p-9").await.unwrap().is_none());
}

#[tokio::test]
async fn final_states_and_skipped_steps_are_refused() {
    let (_directory, store) = common::open_store("job-transitions").await;
    store.insert_job(new_job("a")).await.unwrap();
    let error = store.update_job("a", JobUpdate::Running).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::InvalidJobTransition {
                from: JobState::Queued,
                to: JobState::Running,
                ..
            }
        ),
        "{error}"
    );
    store.update_job("a", JobUpdate::Cancelled).await.unwrap();
    for change in [
        JobUpdate::Running,
        JobUpdate::Failed { error: "late".into() },
        JobUpdate::Requeued,
    ] {
        let error = store.update_job("a", change).await.unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::InvalidJobTransition {
                    from: JobState::Cancelled,
                    ..
                }
            ),
            "{error}"
        );
    }
    assert_eq!(store.get_job("a").await.unwrap().state, JobState::Cancelled);

    let error = store.insert_job(new_job("a")).await.unwrap_err();
    assert!(matches!(error, StoreError::JobExists { .. }), "{error}");
    let error = store.update_job("missing", JobUpdate::Running).await.unwrap_err();
    assert!(
        matches!(error, StoreError::JobNotFound { ref id } if id == "missing"),
        "{error}"
    );
    store.insert_job(new_job("b")).await.unwrap();
    store
        .update_job(
            "b",
            JobUpdate::Submitted {
                backend_id: "x".into(),
                prompt_id: "y".into(),
            },
        )
        .await
        .unwrap();
    let error = store
        .update_job("b", JobUpdate::Progress { progress: f64::NAN })
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::InvalidInput {
                field: "job progress",
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn requeue_forgets_the_backend() {
    let (_directory, store) = common::open_store("job-requeue").await;
    store.insert_job(new_job("r")).await.unwrap();
    store
        .update_job(
            "r",
            JobUpdate::Submitted {
                backend_id: "b".into(),
                prompt_id: "p".into(),
            },
        )
        .await
        .unwrap();
    store.update_job("r", JobUpdate::Running).await.unwrap();
    let job = store.update_job("r", JobUpdate::Requeued).await.unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(
        (job.backend_id, job.prompt_id, job.started_at_ms),
        (None, None, None)
    );
}

#[tokio::test]
async fn unfinished_jobs_survive_a_restart() {
    let directory = common::TempDirectory::new("job-restart");
    let store = Store::open(StoreOptions::new(directory.database()))
        .await
        .unwrap();
    for id in ["q", "s", "r", "done", "failed"] {
        store.insert_job(new_job(id)).await.unwrap();
    }
    let submitted = |prompt: &str| JobUpdate::Submitted {
        backend_id: "b".into(),
        prompt_id: prompt.into(),
    };
    store.update_job("s", submitted("ps")).await.unwrap();
    store.update_job("r", submitted("pr")).await.unwrap();
    store.update_job("r", JobUpdate::Running).await.unwrap();
    store.update_job("done", submitted("pd")).await.unwrap();
    store
        .update_job("done", JobUpdate::Succeeded { outputs: json!({}) })
        .await
        .unwrap();
    store
        .update_job(
            "failed",
            JobUpdate::Failed {
                error: "out of memory".into(),
            },
        )
        .await
        .unwrap();
    store.close().await;
    assert!(matches!(store.get_job("q").await, Err(StoreError::Closed)));

    let reopened = Store::open(StoreOptions::new(directory.database()))
        .await
        .unwrap();
    let mut unfinished: Vec<(String, JobState)> = reopened
        .unfinished_jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|job| (job.id, job.state))
        .collect();
    unfinished.sort_by(|left, right| left.0.cmp(&right.0));
    assert_eq!(
        unfinished,
        vec![
            ("q".into(), JobState::Queued),
            ("r".into(), JobState::Running),
            ("s".into(), JobState::Submitted)
        ]
    );
    assert_eq!(
        reopened.get_job("failed").await.unwrap().error.as_deref(),
        Some("out of memory")
    );
}

#[tokio::test]
async fn list_filters_by_state_and_pages_newest_first() {
    let (_directory, store) = common::open_store("job-list").await;
    for index in 0..5 {
        store.insert_job(new_job(&format!("job-{index}"))).await.unwrap();
        // Distinct creation times make the order by time observable.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    store.update_job("job-1", JobUpdate::Cancelled).await.unwrap();
    let all = store.list_jobs(JobQuery::default()).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(ids, ["job-4", "job-3", "job-2", "job-1", "job-0"]);

    let page = store
        .list_jobs(JobQuery {
            limit: Some(2),
            created_before_ms: Some(all[1].created_at_ms),
            ..JobQuery::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = page.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(ids, ["job-2", "job-1"]);

    let cancelled = store
        .list_jobs(JobQuery {
            states: Some(vec![JobState::Cancelled]),
            ..JobQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    assert!(
        store
            .list_jobs(JobQuery {
                states: Some(vec![]),
                ..JobQuery::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    let by_client = store
        .list_jobs(JobQuery {
            client: Some("nobody".into()),
            ..JobQuery::default()
        })
        .await
        .unwrap();
    assert!(by_client.is_empty());
}
