//! ComfyUI's own workflow templates through MCP against the real rig: the index the server
//! serves, availability with the exact missing files (name, folder, download URL from the
//! template's own metadata), the refusal that names them, a real run of the SD1.5 template with
//! the rig's tiny checkpoint, and a resource read that is too large answering with its size and
//! URL. Needs `COMFYUI_MCP_TEST_URL`.

mod common;

use common::{
    Harness, all_toolsets, assert_txt2img_parameters, connect_with, is_error, json_of, text_of, unique_prompt,
};
use rmcp::model::ReadResourceRequestParams;
use serde_json::{Value, json};

const CHECKPOINT: &str = "tiny-sd15-fp16.safetensors";

async fn harness(resource_limit: Option<&str>) -> Harness {
    let environment = |name: &str| {
        (name == comfyui_mcp::settings::env::MAX_RESOURCE_BYTES)
            .then(|| resource_limit.map(str::to_owned))
            .flatten()
    };
    connect_with(all_toolsets("templates", &environment)).await
}

fn template<'a>(search: &'a Value, name: &str) -> &'a Value {
    search["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .find(|template| template["name"] == name)
        .unwrap_or_else(|| panic!("no template {name} in {search:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_listed_with_what_is_missing() {
    let harness = harness(None).await;

    let search = harness
        .call(
            "search_templates",
            json!({"words": "image generation", "media_type": "image", "model": "SD1.5"}),
        )
        .await;
    assert!(!is_error(&search), "{}", text_of(&search));
    let search = json_of(&search);
    assert!(
        search["total"].as_u64().unwrap_or(0) >= 100,
        "the official index: {search:#}"
    );
    let default = template(&search, "default");
    assert_eq!(default["media_type"], "image");
    assert_eq!(default["api"], false);
    let availability = &default["availability"];
    assert_eq!(availability["runnable"], false, "{availability:#}");
    assert_eq!(
        availability["missing_models"],
        json!([{
            "name": "v1-5-pruned-emaonly-fp16.safetensors",
            "directory": "checkpoints",
            "url": "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/v1-5-pruned-emaonly-fp16.safetensors?download=true"
        }]),
        "{availability:#}"
    );
    assert!(
        availability.get("missing_nodes").is_none(),
        "every core node is there: {availability:#}"
    );

    // Video templates: each names its missing model files with folder and URL.
    let videos = json_of(
        &harness
            .call("search_templates", json!({"media_type": "video", "limit": 5}))
            .await,
    );
    let listed = videos["templates"].as_array().expect("video templates");
    assert!(!listed.is_empty(), "{videos:#}");
    for video in listed {
        assert_eq!(video["media_type"], "video");
        let availability = &video["availability"];
        assert_eq!(
            availability["runnable"], false,
            "no video model on the rig: {video:#}"
        );
        for model in availability["missing_models"].as_array().into_iter().flatten() {
            assert!(
                model["directory"]
                    .as_str()
                    .is_some_and(|folder| !folder.is_empty()),
                "{model}"
            );
            assert!(
                model["url"]
                    .as_str()
                    .is_some_and(|url| url.starts_with("https://")),
                "{model}"
            );
        }
    }

    // Nothing on the rig runs a video template; the filter says so instead of listing them.
    let runnable_videos = json_of(
        &harness
            .call(
                "search_templates",
                json!({"media_type": "video", "runnable_only": true}),
            )
            .await,
    );
    assert_eq!(runnable_videos["templates"], json!([]), "{runnable_videos:#}");

    // API templates are left out unless asked for, and marked when they are.
    let with_api = json_of(
        &harness
            .call(
                "search_templates",
                json!({"include_api": true, "words": "api", "limit": 50}),
            )
            .await,
    );
    let api = with_api["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .find(|template| template["api"] == true)
        .unwrap_or_else(|| panic!("an API template: {with_api:#}"));
    assert_eq!(api["availability"]["runnable"], false);
    assert!(
        api["availability"]["problem"]
            .as_str()
            .is_some_and(|problem| problem.contains("API key")),
        "{api:#}"
    );

    let unknown = harness
        .call("describe_template", json!({"name": "defualt"}))
        .await;
    assert!(is_error(&unknown));
    assert!(
        text_of(&unknown).contains("did you mean 'default'"),
        "{}",
        text_of(&unknown)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_runs_or_names_exactly_what_is_missing() {
    let harness = harness(Some("2048")).await;

    let described = harness
        .call("describe_template", json!({"name": "default"}))
        .await;
    assert!(!is_error(&described), "{}", text_of(&described));
    let described = json_of(&described);
    assert_txt2img_parameters(&described);

    // As shipped, the template needs a checkpoint the rig lacks: refused, naming file, folder and URL.
    let refused = harness.call("run_template", json!({"name": "default"})).await;
    assert!(is_error(&refused));
    let message = text_of(&refused);
    for part in [
        "v1-5-pruned-emaonly-fp16.safetensors",
        "models/checkpoints",
        "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive",
    ] {
        assert!(message.contains(part), "{part} in {message}");
    }
    // This harness's database is new: nothing was recorded, so nothing was queued.
    let jobs = json_of(&harness.call("list_jobs", json!({})).await);
    assert_eq!(jobs["backends"][0]["recorded_jobs"], json!([]), "{jobs:#}");

    // With the rig's checkpoint in its place, it runs for real.
    let prompt = unique_prompt("a lighthouse from a template");
    let run = harness
        .call(
            "run_template",
            json!({"name": "default", "overrides": {
                "checkpoint": CHECKPOINT, "prompt": prompt, "steps": 2, "width": 64, "height": 64, "seed": 3
            }}),
        )
        .await;
    assert!(!is_error(&run), "{}", text_of(&run));
    let summary = json_of(&run);
    assert_eq!(summary["status"], "succeeded", "{summary:#}");
    assert!(
        run.content.iter().any(|block| block.as_image().is_some()),
        "an inline preview"
    );

    // The PNG is more than the 2 KiB this server was told to return inline: a size error with the URL.
    let link = run
        .content
        .iter()
        .find_map(|block| block.as_resource_link())
        .expect("a resource_link");
    let error = harness
        .client
        .read_resource(ReadResourceRequestParams::new(link.uri.clone()))
        .await
        .expect_err("too large to read inline");
    let message = error.to_string();
    assert!(
        message.contains("more than the 2.0 KiB read whole here"),
        "{message}"
    );
    assert!(message.contains("/view?filename="), "{message}");
}
