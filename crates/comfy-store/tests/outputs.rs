//! The outputs library through the public API: indexing, full-text search, similarity, tags,
//! collections, catalogs and retention.

mod common;

use comfy_store::{CatalogFormat, FileReference, NewOutput, OutputQuery, RetentionPolicy, Store, StoreError};
use serde_json::json;

fn output(filename: &str, prompt: &str, created_at_ms: i64, perceptual_hash: Option<u64>) -> NewOutput {
    NewOutput {
        job_id: Some(format!("job-{filename}")),
        prompt_text: prompt.to_owned(),
        parameters: json!({"sampler_name": "euler", "steps": 20, "cfg": 7.5}),
        model: Some("sd15.safetensors".to_owned()),
        seed: Some(u64::MAX - 1),
        width: Some(512),
        height: Some(768),
        media_type: "image/png".to_owned(),
        file: FileReference {
            backend_id: "local".to_owned(),
            filename: filename.to_owned(),
            subfolder: String::new(),
            file_type: "output".to_owned(),
        },
        perceptual_hash,
        created_at_ms,
    }
}

async fn library(label: &str) -> (common::TempDirectory, Store, Vec<i64>) {
    let (directory, store) = common::open_store(label).await;
    let mut ids = Vec::new();
    for (filename, prompt, at, hash) in [
        (
            "a.png",
            "a red cat sitting on a sofa",
            1_000,
            Some(0x0000_0000_0000_00ffu64),
        ),
        (
            "b.png",
            "two cats playing in snow",
            2_000,
            Some(0x0000_0000_0000_00fe),
        ),
        (
            "c.png",
            "portrait of an astronaut",
            3_000,
            Some(0xffff_0000_0000_0000),
        ),
        ("d.png", "red sports car", 4_000, None),
    ] {
        ids.push(
            store
                .add_output(output(filename, prompt, at, hash))
                .await
                .unwrap()
                .id,
        );
    }
    (directory, store, ids)
}

fn filenames(records: &[comfy_store::OutputRecord]) -> Vec<&str> {
    records
        .iter()
        .map(|record| record.output.file.filename.as_str())
        .collect()
}

#[tokio::test]
async fn records_round_trip_and_reindexing_is_idempotent() {
    let (_directory, store, ids) = library("outputs-records").await;
    let record = store.get_output(ids[0]).await.unwrap();
    assert_eq!(
        record.output,
        output("a.png", "a red cat sitting on a sofa", 1_000, Some(0xff))
    );
    let again = store
        .add_output(output("a.png", "different text", 9_000, None))
        .await
        .unwrap();
    assert_eq!(again.id, ids[0]);
    let updated = store.set_output_perceptual_hash(ids[3], u64::MAX).await.unwrap();
    assert_eq!(updated.output.perceptual_hash, Some(u64::MAX));
    store.delete_output(ids[3]).await.unwrap();
    assert!(matches!(
        store.get_output(ids[3]).await,
        Err(StoreError::OutputNotFound { .. })
    ));
    assert!(matches!(
        store.delete_output(ids[3]).await,
        Err(StoreError::OutputNotFound { .. })
    ));
}

#[tokio::test]
async fn full_text_search_finds_stemmed_words_in_prompts_and_parameters() {
    let (_directory, store, ids) = library("outputs-search").await;
    let search = |text: &str| OutputQuery {
        text: Some(text.to_owned()),
        ..OutputQuery::default()
    };
    let found = store.search_outputs(search("cat")).await.unwrap();
    let mut cats = filenames(&found);
    cats.sort_unstable();
    assert_eq!(cats, ["a.png", "b.png"], "\"cat\" also finds \"cats\"");
    assert_eq!(
        filenames(&store.search_outputs(search("RED cat")).await.unwrap()),
        ["a.png"]
    );
    assert_eq!(
        store.search_outputs(search("euler")).await.unwrap().len(),
        4,
        "parameters are searched too"
    );
    assert!(store.search_outputs(search("dragon")).await.unwrap().is_empty());
    // FTS5 syntax in user text is just words.
    assert!(
        store
            .search_outputs(search("\"unbalanced AND OR NEAR("))
            .await
            .unwrap()
            .is_empty()
    );

    let newest = store
        .search_outputs(OutputQuery {
            limit: Some(2),
            ..OutputQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(filenames(&newest), ["d.png", "c.png"]);
    let window = OutputQuery {
        since_ms: Some(2_000),
        until_ms: Some(4_000),
        ..OutputQuery::default()
    };
    assert_eq!(
        filenames(&store.search_outputs(window).await.unwrap()),
        ["c.png", "b.png"]
    );

    // The index follows deletions.
    store.delete_output(ids[0]).await.unwrap();
    assert_eq!(
        filenames(&store.search_outputs(search("red")).await.unwrap()),
        ["d.png"]
    );
}

#[tokio::test]
async fn similar_images_are_ranked_by_hamming_distance() {
    let (_directory, store, _ids) = library("outputs-similar").await;
    let near = store.similar_outputs(0xff, 4, None).await.unwrap();
    let found: Vec<(&str, u32)> = near
        .iter()
        .map(|similar| (similar.output.output.file.filename.as_str(), similar.distance))
        .collect();
    assert_eq!(found, [("a.png", 0), ("b.png", 1)]);
    assert_eq!(store.similar_outputs(0xff, 64, Some(1)).await.unwrap().len(), 1);
    assert_eq!(
        store.similar_outputs(0xff, 64, None).await.unwrap().len(),
        3,
        "outputs without a hash are skipped"
    );
}

#[tokio::test]
async fn tags_and_collections_filter_and_show_on_records() {
    let (_directory, store, ids) = library("outputs-tags").await;
    store
        .tag_outputs(vec![ids[0], ids[1]], vec!["cats".into(), "favourite".into()])
        .await
        .unwrap();
    assert!(store.untag_output(ids[1], "favourite").await.unwrap());
    let tagged = store
        .search_outputs(OutputQuery {
            tag: Some("favourite".into()),
            ..OutputQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(filenames(&tagged), ["a.png"]);
    assert_eq!(tagged[0].tags, ["cats", "favourite"]);
    assert!(matches!(
        store.tag_outputs(vec![999], vec!["x".into()]).await,
        Err(StoreError::OutputNotFound { id: 999 })
    ));

    store
        .create_collection("best", Some("keepers".into()))
        .await
        .unwrap();
    assert!(matches!(
        store.create_collection("best", None).await,
        Err(StoreError::InvalidInput { .. })
    ));
    store
        .add_to_collection("best", vec![ids[2], ids[3]])
        .await
        .unwrap();
    let best = store
        .search_outputs(OutputQuery {
            collection: Some("best".into()),
            ..OutputQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(filenames(&best), ["d.png", "c.png"]);
    assert_eq!(best[0].collections, ["best"]);
    assert_eq!(store.list_collections().await.unwrap()[0].outputs, 2);
    assert!(store.remove_from_collection("best", ids[3]).await.unwrap());
    store.delete_collection("best").await.unwrap();
    assert!(store.list_collections().await.unwrap().is_empty());
    assert!(store.get_output(ids[2]).await.unwrap().collections.is_empty());
    assert!(matches!(
        store.add_to_collection("best", vec![ids[0]]).await,
        Err(StoreError::CollectionNotFound { .. })
    ));
}

#[tokio::test]
async fn catalogs_export_as_json_and_csv() {
    let (_directory, store, ids) = library("outputs-catalog").await;
    store
        .add_output(output("e.png", "=cmd(), \"quoted\"\nnext line", 5_000, None))
        .await
        .unwrap();
    store
        .tag_outputs(vec![ids[0]], vec!["one".into(), "two".into()])
        .await
        .unwrap();

    let json_text = store
        .export_catalog(OutputQuery::default(), CatalogFormat::Json)
        .await
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 5);
    assert_eq!(parsed[4]["file"]["filename"], "a.png");
    assert_eq!(parsed[4]["tags"], json!(["one", "two"]));
    assert_eq!(parsed[4]["seed"], json!(u64::MAX - 1));

    let csv = store
        .export_catalog(OutputQuery::default(), CatalogFormat::Csv)
        .await
        .unwrap();
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert!(lines[0].starts_with("id,created_at_ms,job_id,"));
    assert_eq!(
        lines.len(),
        1 + 5 + 1,
        "header, five records, and the final line end"
    );
    assert!(
        lines[1].contains("\"'=cmd(), \"\"quoted\"\"\nnext line\""),
        "{}",
        lines[1]
    );
    assert!(lines[5].contains(",00000000000000ff,"), "{}", lines[5]);
    assert!(lines[5].contains(",one;two,"), "{}", lines[5]);
}

#[tokio::test]
async fn retention_cleanup_has_a_dry_run_and_keeps_what_is_asked() {
    let (_directory, store, ids) = library("outputs-retention").await;
    store
        .tag_outputs(vec![ids[0]], vec!["keep".into()])
        .await
        .unwrap();
    store.create_collection("album", None).await.unwrap();
    store.add_to_collection("album", vec![ids[1]]).await.unwrap();
    let policy = RetentionPolicy {
        created_before_ms: 3_500,
        keep_tagged: true,
        keep_in_collections: true,
        dry_run: true,
    };

    let preview = store.cleanup_outputs(policy.clone()).await.unwrap();
    assert!(preview.dry_run);
    assert_eq!(filenames(&preview.outputs), ["c.png"]);
    assert_eq!(
        store.search_outputs(OutputQuery::default()).await.unwrap().len(),
        4,
        "a dry run deletes nothing"
    );

    let done = store
        .cleanup_outputs(RetentionPolicy {
            dry_run: false,
            ..policy.clone()
        })
        .await
        .unwrap();
    assert_eq!(filenames(&done.outputs), ["c.png"]);
    assert_eq!(
        done.outputs[0].output.file.backend_id, "local",
        "the caller learns which file to delete"
    );
    assert_eq!(
        store.search_outputs(OutputQuery::default()).await.unwrap().len(),
        3
    );

    let everything_old = RetentionPolicy {
        keep_tagged: false,
        keep_in_collections: false,
        dry_run: false,
        ..policy
    };
    assert_eq!(
        store.cleanup_outputs(everything_old).await.unwrap().outputs.len(),
        2
    );
    assert_eq!(
        filenames(&store.search_outputs(OutputQuery::default()).await.unwrap()),
        ["d.png"]
    );
}
