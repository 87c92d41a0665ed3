//! Style presets and quality levels through MCP against the real rig: a built-in style puts the
//! prompt in its template (what the library records) with its cfg, `quality: draft` halves the
//! family's default steps, a saved style is listed, used and deleted, and wrong names are
//! refused precisely. Needs `COMFYUI_MCP_TEST_URL`.

mod common;

use common::{Harness, all_toolsets, connect_with, is_error, json_of, text_of};
use serde_json::json;

async fn harness() -> Harness {
    connect_with(all_toolsets("styles", &|_| None)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn styles_shape_the_prompt_and_quality_the_steps() {
    let harness = harness().await;
    let subject = common::unique_prompt("a lighthouse");
    let styled = harness
        .call(
            "generate_image",
            json!({"prompt": subject, "style": "pixel-art", "quality": "draft", "width": 64, "height": 64}),
        )
        .await;
    assert!(!is_error(&styled), "{}", text_of(&styled));
    let summary = json_of(&styled);
    assert_eq!(summary["status"], "succeeded", "{summary:#}");
    assert_eq!(summary["parameters"]["cfg"], 7.0, "the style's cfg: {summary:#}");
    assert_eq!(
        summary["parameters"]["steps"], 10,
        "half of SD1.5's 20: {summary:#}"
    );
    // The job's recorder indexes its output as the job ends, a moment after the answer.
    let mut recorded = String::new();
    for _ in 0..50 {
        let found = harness
            .call("search_outputs", json!({"job_id": summary["job_id"]}))
            .await;
        recorded = json_of(&found)["outputs"][0]["prompt"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !recorded.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        recorded.starts_with(&format!("pixel art of {subject}")),
        "{recorded}"
    );

    let saved = harness
        .call(
            "style_preset",
            json!({"action": "save", "name": "house-test", "prompt": "moody still of {prompt}",
                   "negative_prompt": "bright", "settings": {"steps": 3}}),
        )
        .await;
    assert!(!is_error(&saved), "{}", text_of(&saved));
    let listed = json_of(&harness.call("style_preset", json!({"action": "list"})).await);
    let names: Vec<&str> = listed["styles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|style| style["name"].as_str())
        .collect();
    assert!(
        names.contains(&"house-test") && names.contains(&"cinematic"),
        "{names:?}"
    );
    let own = harness
        .call("generate_image", json!({"prompt": common::unique_prompt("a cat"), "style": "house-test", "width": 64, "height": 64}))
        .await;
    assert_eq!(json_of(&own)["parameters"]["steps"], 3, "{}", text_of(&own));
    let deleted = harness
        .call("style_preset", json!({"action": "delete", "name": "house-test"}))
        .await;
    assert_eq!(json_of(&deleted)["deleted"], true);

    for (tool, arguments, expected) in [
        (
            "generate_image",
            json!({"prompt": "x", "style": "nope"}),
            "no style \"nope\"",
        ),
        (
            "generate_image",
            json!({"prompt": "x", "quality": "ultra"}),
            "none of draft, standard, high",
        ),
        (
            "style_preset",
            json!({"action": "save", "name": "anime", "prompt": "{prompt}"}),
            "built-in style",
        ),
        (
            "style_preset",
            json!({"action": "save", "name": "flat", "prompt": "no placeholder"}),
            "{prompt}",
        ),
        (
            "style_preset",
            json!({"action": "save", "name": "odd", "prompt": "{prompt}", "settings": {"lora": 1}}),
            "not one",
        ),
    ] {
        let refused = harness.call(tool, arguments.clone()).await;
        assert!(is_error(&refused), "{arguments}: {}", text_of(&refused));
        assert!(
            text_of(&refused).contains(expected),
            "{arguments}: {}",
            text_of(&refused)
        );
    }
}
