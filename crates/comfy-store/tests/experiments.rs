//! Experiments: created, trials recorded and replaced, judgements checked all-or-none against the
//! experiment's variants and seeds, measures cleared by source, read back after a reopen, listed
//! and deleted with everything they hold.

mod common;

use comfy_store::{Judgement, NewExperiment, Store, StoreError, StoreOptions, Trial, Verdict};
use serde_json::json;

fn judgement(seed_index: usize, verdict: Verdict, source: &str) -> Judgement {
    Judgement {
        seed_index,
        verdict,
        source: source.to_owned(),
        client: Some("tester".to_owned()),
        created_at_ms: 0,
    }
}

fn new_experiment(id: &str) -> NewExperiment {
    NewExperiment {
        id: id.to_owned(),
        name: "fox prompts".to_owned(),
        definition: json!({"variants": [{"name": "A"}, {"name": "B"}, {"name": "C"}], "seeds": [1, 2]}),
        variants: 3,
        seeds: 2,
        client: Some("tester".to_owned()),
    }
}

#[tokio::test]
async fn experiments_keep_trials_and_judgements_across_a_reopen() {
    let (directory, store) = common::open_store("experiments").await;
    let created = store.create_experiment(new_experiment("e1")).await.unwrap();
    assert_eq!((created.variants, created.seeds), (3, 2));
    assert!(created.trials.is_empty() && created.judgements.is_empty());
    let trial = |variant, seed_index, job: &str| Trial {
        variant,
        seed_index,
        job_id: Some(job.to_owned()),
        error: None,
    };
    store.record_trial("e1", trial(0, 0, "job-a")).await.unwrap();
    store.record_trial("e1", trial(0, 0, "job-a2")).await.unwrap();
    store.record_trial("e1", trial(2, 1, "job-c")).await.unwrap();
    let wrong_trial = store.record_trial("e1", trial(3, 0, "job-x")).await;
    assert!(
        matches!(wrong_trial, Err(StoreError::InvalidInput { .. })),
        "{wrong_trial:?}"
    );

    let added = store
        .add_judgements(
            "e1",
            vec![
                judgement(0, Verdict::Choice { winner: 0, loser: 1 }, "person"),
                judgement(1, Verdict::Tie { first: 1, second: 2 }, "person"),
                judgement(
                    1,
                    Verdict::Rating {
                        variant: 2,
                        score: 0.75,
                    },
                    "sharpness",
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(added, 3);
    // One bad judgement refuses the lot: nothing of this call is kept.
    for bad in [
        judgement(2, Verdict::Choice { winner: 0, loser: 1 }, "person"),
        judgement(0, Verdict::Choice { winner: 1, loser: 1 }, "person"),
        judgement(
            0,
            Verdict::Rating {
                variant: 5,
                score: 1.0,
            },
            "person",
        ),
        judgement(
            0,
            Verdict::Rating {
                variant: 0,
                score: f64::NAN,
            },
            "person",
        ),
        judgement(
            0,
            Verdict::Rating {
                variant: 0,
                score: 1.0,
            },
            " ",
        ),
    ] {
        let refused = store
            .add_judgements(
                "e1",
                vec![
                    judgement(0, Verdict::Choice { winner: 2, loser: 0 }, "person"),
                    bad,
                ],
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::InvalidInput { .. })),
            "{refused:?}"
        );
    }
    let missing = store.add_judgements("nope", vec![]).await;
    assert!(
        matches!(missing, Err(StoreError::ExperimentNotFound { .. })),
        "{missing:?}"
    );
    store.close().await;

    let store = Store::open(StoreOptions::new(directory.database()))
        .await
        .unwrap();
    let experiment = store.get_experiment("e1").await.unwrap();
    assert_eq!(experiment.definition["seeds"], json!([1, 2]));
    assert_eq!(experiment.trials.len(), 2);
    assert_eq!(experiment.trials[0].job_id.as_deref(), Some("job-a2"));
    assert_eq!(experiment.judgements.len(), 3);
    assert_eq!(
        experiment.judgements[0].verdict,
        Verdict::Choice { winner: 0, loser: 1 }
    );
    assert_eq!(experiment.judgements[2].source, "sharpness");

    assert_eq!(store.clear_judgements("e1", "sharpness").await.unwrap(), 1);
    let listed = store.list_experiments(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].judgements, 2);
    assert!(store.delete_experiment("e1").await.unwrap());
    assert!(!store.delete_experiment("e1").await.unwrap());
    let gone = store.get_experiment("e1").await;
    assert!(
        matches!(gone, Err(StoreError::ExperimentNotFound { .. })),
        "{gone:?}"
    );
}

#[tokio::test]
async fn an_experiment_needs_two_variants_and_a_name() {
    let (_directory, store) = common::open_store("experiments-refused").await;
    let mut one = new_experiment("e2");
    one.variants = 1;
    assert!(matches!(
        store.create_experiment(one).await,
        Err(StoreError::InvalidInput { .. })
    ));
    let mut unnamed = new_experiment("e3");
    unnamed.name = "  ".to_owned();
    assert!(matches!(
        store.create_experiment(unnamed).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(store.list_experiments(10).await.unwrap().is_empty());
}
