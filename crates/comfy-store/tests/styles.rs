//! Saved style presets: saved, replaced by name, listed, read back after a reopen, deleted; a
//! template without `{prompt}` is refused.

mod common;

use comfy_store::{Store, StoreError, StoreOptions, Style};
use serde_json::json;

fn style(name: &str, prompt: &str) -> Style {
    Style {
        name: name.to_owned(),
        description: "test".to_owned(),
        prompt: prompt.to_owned(),
        negative_prompt: "blurry".to_owned(),
        settings: json!({"cfg": 6.5, "steps": 30})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

#[tokio::test]
async fn styles_are_saved_replaced_listed_and_deleted() {
    let (directory, store) = common::open_store("styles").await;
    store
        .save_style(style("moody", "{prompt}, low key light"))
        .await
        .unwrap();
    store
        .save_style(style(" moody ", "{prompt}, low key light, fog"))
        .await
        .unwrap();
    store
        .save_style(style("bright", "high key photo of {prompt}"))
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_styles()
        .await
        .unwrap()
        .into_iter()
        .map(|style| style.name)
        .collect();
    assert_eq!(names, ["bright", "moody"]);
    let refused = store
        .save_style(style("flat", "no placeholder"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::InvalidInput { field: "prompt", .. }),
        "{refused}"
    );
    store.close().await;

    let store = Store::open(StoreOptions::new(directory.database()))
        .await
        .unwrap();
    let moody = store
        .get_style("moody")
        .await
        .unwrap()
        .expect("kept across a reopen");
    assert_eq!(moody.prompt, "{prompt}, low key light, fog");
    assert_eq!(moody.settings["steps"], json!(30));
    assert!(store.delete_style("moody").await.unwrap());
    assert!(!store.delete_style("moody").await.unwrap());
    assert_eq!(store.get_style("moody").await.unwrap(), None);
}
