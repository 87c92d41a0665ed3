//! Presets and their git-like versions through the public API.

mod common;

use comfy_store::{SavePreset, StoreError, content_hash};
use serde_json::{Value, json};

fn save(name: &str, content: Value) -> SavePreset {
    SavePreset {
        name: name.to_owned(),
        description: None,
        tags: None,
        content,
        message: None,
    }
}

fn graph(seed: i64) -> Value {
    json!({"3": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": 20}}})
}

#[tokio::test]
async fn save_list_get_apply_delete() {
    let (_directory, store) = common::open_store("presets-crud").await;
    let mut request = save("portrait", graph(1));
    request.description = Some("soft light".into());
    request.tags = Some(vec!["people".into(), " sdxl ".into(), "people".into()]);
    let created = store.save_preset(request).await.unwrap();
    assert_eq!(
        created.summary.tags,
        ["people", "sdxl"],
        "tags are trimmed, sorted and deduplicated"
    );
    assert_eq!(created.content, graph(1));
    store
        .save_preset(SavePreset {
            tags: Some(vec!["sdxl".into()]),
            ..save("landscape", graph(2))
        })
        .await
        .unwrap();

    let all = store.list_presets(None).await.unwrap();
    assert_eq!(
        all.iter().map(|preset| preset.name.as_str()).collect::<Vec<_>>(),
        ["landscape", "portrait"]
    );
    let people = store.list_presets(Some("people".into())).await.unwrap();
    assert_eq!(people.len(), 1);
    assert_eq!(people[0].name, "portrait");

    store
        .apply_preset("portrait", Some("client-a".into()))
        .await
        .unwrap();
    let applied = store.apply_preset("portrait", None).await.unwrap();
    assert_eq!(applied.summary.use_count, 2);
    assert!(applied.summary.last_used_at_ms.is_some());
    assert_eq!(store.get_preset("landscape").await.unwrap().summary.use_count, 0);

    store.delete_preset("portrait").await.unwrap();
    assert!(matches!(
        store.get_preset("portrait").await,
        Err(StoreError::PresetNotFound { .. })
    ));
    assert!(matches!(
        store.delete_preset("portrait").await,
        Err(StoreError::PresetNotFound { .. })
    ));
    assert!(matches!(
        store.save_preset(save("  ", graph(1))).await,
        Err(StoreError::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn versions_are_content_addressed_and_linked_to_their_parents() {
    let (_directory, store) = common::open_store("presets-versions").await;
    let first = store.save_preset(save("p", graph(1))).await.unwrap();
    let unchanged = store
        .save_preset(save(
            "p",
            json!({"3": {"inputs": {"steps": 20, "seed": 1}, "class_type": "KSampler"}}),
        ))
        .await
        .unwrap();
    assert_eq!(
        unchanged.summary.head_version, first.summary.head_version,
        "same content in another key order is no change"
    );

    let second = store
        .save_preset(SavePreset {
            message: Some("seed 2".into()),
            ..save("p", graph(2))
        })
        .await
        .unwrap();
    let log = store.preset_log("p", None).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].id, second.summary.head_version);
    assert_eq!(log[0].parents, std::slice::from_ref(&first.summary.head_version));
    assert_eq!(log[0].message.as_deref(), Some("seed 2"));
    assert_eq!(log[0].content_hash, content_hash(&graph(2)));
    assert!(log[1].parents.is_empty());

    // A version can be named by tag, by id, by prefix, or as head.
    store
        .tag_preset_version("p", "v1", &first.summary.head_version)
        .await
        .unwrap();
    let by_tag = store.get_preset_version("p", "v1").await.unwrap();
    assert_eq!(by_tag.content, graph(1));
    assert_eq!(by_tag.summary.tags, ["v1"]);
    let by_prefix = store
        .get_preset_version("p", &second.summary.head_version[..10])
        .await
        .unwrap();
    assert_eq!(by_prefix.content, graph(2));
    assert_eq!(
        store.get_preset_version("p", "HEAD").await.unwrap().content,
        graph(2)
    );
    assert!(matches!(
        store.get_preset_version("p", "nope").await,
        Err(StoreError::VersionNotFound { .. })
    ));
    assert!(store.untag_preset_version("p", "v1").await.unwrap());
    assert!(!store.untag_preset_version("p", "v1").await.unwrap());
}

#[tokio::test]
async fn rollback_adds_a_version_with_old_content() {
    let (_directory, store) = common::open_store("presets-rollback").await;
    let first = store.save_preset(save("p", graph(1))).await.unwrap();
    let second = store.save_preset(save("p", graph(2))).await.unwrap();
    store
        .tag_preset_version("p", "good", &first.summary.head_version)
        .await
        .unwrap();
    let rolled = store.rollback_preset("p", "good", None).await.unwrap();
    assert_eq!(rolled.content, graph(1));
    assert_eq!(
        rolled.summary.parents,
        std::slice::from_ref(&second.summary.head_version)
    );
    assert_ne!(
        rolled.summary.id, first.summary.head_version,
        "a rollback is a new version"
    );
    assert_eq!(rolled.summary.content_hash, content_hash(&graph(1)));
    assert_eq!(store.preset_log("p", None).await.unwrap().len(), 3);
    assert_eq!(store.get_preset("p").await.unwrap().content, graph(1));
    assert_eq!(
        store.preset_log("p", Some(1)).await.unwrap()[0].id,
        rolled.summary.id
    );
}

#[tokio::test]
async fn fork_and_merge_make_a_shared_history() {
    let (_directory, store) = common::open_store("presets-fork").await;
    let source = store
        .save_preset(SavePreset {
            tags: Some(vec!["base".into()]),
            ..save("source", graph(1))
        })
        .await
        .unwrap();
    let fork = store.fork_preset("source", None, "fork", None).await.unwrap();
    assert_eq!(fork.content, graph(1));
    assert_eq!(fork.summary.tags, ["base"]);
    let fork_log = store.preset_log("fork", None).await.unwrap();
    assert_eq!(fork_log.len(), 2, "the fork's history runs into the source's");
    assert_eq!(
        fork_log[0].parents,
        std::slice::from_ref(&source.summary.head_version)
    );

    let fork_edit = store.save_preset(save("fork", graph(5))).await.unwrap();
    let source_edit = store.save_preset(save("source", graph(7))).await.unwrap();
    let merged = store
        .merge_preset(
            "source",
            &fork_edit.summary.head_version,
            json!({"merged": true}),
            Some("merge fork".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        merged.summary.parents,
        [
            source_edit.summary.head_version.clone(),
            fork_edit.summary.head_version.clone()
        ]
    );
    let log = store.preset_log("source", None).await.unwrap();
    // merge, source edit, fork edit, fork root, source root: each once.
    assert_eq!(log.len(), 5);
    let mut ids: Vec<&str> = log.iter().map(|version| version.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5);

    // Deleting the fork keeps what the source's merge still reaches.
    store.delete_preset("fork").await.unwrap();
    assert_eq!(store.preset_log("source", None).await.unwrap().len(), 5);
    let error = store
        .fork_preset("source", None, "source", None)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::PresetExists { .. }), "{error}");
}

#[tokio::test]
async fn deleting_a_preset_removes_versions_nothing_else_reaches() {
    let (_directory, store) = common::open_store("presets-garbage").await;
    let first = store.save_preset(save("gone", graph(1))).await.unwrap();
    store.save_preset(save("gone", graph(2))).await.unwrap();
    store.save_preset(save("kept", graph(3))).await.unwrap();
    store.delete_preset("gone").await.unwrap();
    let error = store
        .get_preset_version("kept", &first.summary.head_version)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::VersionNotFound { .. }), "{error}");
    assert_eq!(store.get_preset("kept").await.unwrap().content, graph(3));
}

#[tokio::test]
async fn tags_must_point_into_the_presets_history() {
    let (_directory, store) = common::open_store("presets-tag-history").await;
    store.save_preset(save("a", graph(1))).await.unwrap();
    let other = store.save_preset(save("b", graph(2))).await.unwrap();
    let error = store
        .tag_preset_version("a", "x", &other.summary.head_version)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::VersionNotFound { .. }), "{error}");
}
