//! Experiments through MCP against the real rig: two variants (steps 2 and 6) run on the same
//! three seeds as one batch, the sheet is kept and every trial's output tagged; the person's
//! choices give an exact binomial verdict (3 of 3 is not significant: p = 0.25), a measure
//! (contrast, then SSIM to a reference) scores all six images and gives a Mann-Whitney verdict;
//! the winner is saved as a preset version that runs; wrong seeds, variants and measures are
//! refused by name, and a client without elicitation gets the precise answer to `ask`.
//! Needs `COMFYUI_MCP_TEST_URL`.

mod common;

use common::{Harness, all_toolsets, connect_with, is_error, json_of, noise_png, text_of};
use serde_json::{Value, json};

async fn harness() -> Harness {
    connect_with(all_toolsets("experiments", &|_| None)).await
}

async fn call_ok(harness: &Harness, arguments: Value) -> Value {
    let result = harness.call("experiment", arguments.clone()).await;
    assert!(!is_error(&result), "{arguments}: {}", text_of(&result));
    json_of(&result)
}

async fn call_refused(harness: &Harness, arguments: Value, expected: &str) {
    let result = harness.call("experiment", arguments.clone()).await;
    assert!(
        is_error(&result),
        "{arguments} was accepted: {}",
        text_of(&result)
    );
    assert!(
        text_of(&result).contains(expected),
        "{arguments}: {}",
        text_of(&result)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_runs_is_judged_measured_reported_and_saved() {
    let harness = harness().await;
    let seeds = [101u64, 202, 303];
    let created = call_ok(
        &harness,
        json!({"action": "create", "name": "steps test", "prompt": common::unique_prompt("a harbour"),
               "width": 64, "height": 64, "checkpoint": "tiny-sd15-micro.ckpt", "seeds": seeds,
               "variants": [{"name": "few", "steps": 2}, {"name": "more", "steps": 6}]}),
    )
    .await;
    let id = created["experiment_id"].as_str().expect("an id").to_owned();
    assert_eq!(created["variants"], json!(["few", "more"]), "{created:#}");
    let trials = created["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 6);
    assert!(
        trials.iter().all(|trial| trial["status"] == "succeeded"),
        "{created:#}"
    );
    assert_eq!(trials[1]["settings"], json!({"variant": "more", "seed": 101}));
    assert_eq!(created["tag"], format!("experiment {id}"));
    assert_eq!(created["tagged"], 6, "{created:#}");

    let report = call_ok(&harness, json!({"action": "report", "experiment_id": id})).await;
    assert!(
        report["conclusion"]
            .as_str()
            .unwrap()
            .contains("no judgements yet"),
        "{report:#}"
    );

    // Refusals name what is wrong and record nothing.
    call_refused(
        &harness,
        json!({"action": "judge", "experiment_id": id, "choices": [{"seed": 999, "winner": "more", "loser": "few"}]}),
        "seed 999 is not one of",
    )
    .await;
    call_refused(
        &harness,
        json!({"action": "judge", "experiment_id": id, "choices": [{"seed": 101, "winner": "most", "loser": "few"}]}),
        "no variant \"most\"; the variants are few, more",
    )
    .await;
    call_refused(
        &harness,
        json!({"action": "judge", "experiment_id": id, "choices": [{"seed": 101, "winner": "few", "loser": "few"}]}),
        "two different variants",
    )
    .await;
    call_refused(
        &harness,
        json!({"action": "measure", "experiment_id": id, "measure": "beauty"}),
        "the measures are",
    )
    .await;
    call_refused(
        &harness,
        json!({"action": "report", "experiment_id": "nope"}),
        "no experiment nope",
    )
    .await;
    // This test client declares no elicitation capability.
    call_refused(
        &harness,
        json!({"action": "ask", "experiment_id": id}),
        "does not support elicitation",
    )
    .await;

    let judged = call_ok(
        &harness,
        json!({"action": "judge", "experiment_id": id, "choices": seeds.iter().map(|seed| json!({"seed": seed, "winner": "more", "loser": "few"})).collect::<Vec<_>>()}),
    )
    .await;
    assert_eq!(judged["recorded"], 3);
    let binomial = &judged["choices"]["binomial"];
    assert!(
        (binomial["p_value"].as_f64().unwrap() - 0.25).abs() < 1e-12,
        "{judged:#}"
    );
    assert_eq!(
        judged.get("winner"),
        None,
        "3 of 3 is not significant at 0.05: {judged:#}"
    );
    assert!(
        judged["conclusion"].as_str().unwrap().contains("3 of 3"),
        "{judged:#}"
    );
    // At a looser level, the same evidence names the winner.
    let loose = call_ok(
        &harness,
        json!({"action": "report", "experiment_id": id, "alpha": 0.3}),
    )
    .await;
    assert_eq!(loose["winner"], "more", "{loose:#}");

    // What the choices teach: steps=6 won all three comparisons with steps=2.
    let insights = call_ok(&harness, json!({"action": "insights"})).await;
    assert_eq!(insights["choices"], 3, "{insights:#}");
    let six = insights["insights"]
        .as_array()
        .unwrap()
        .iter()
        .find(|insight| insight["name"] == "steps=6")
        .cloned();
    let six = six.unwrap_or_else(|| panic!("no steps=6 in {insights:#}"));
    assert_eq!(
        (six["wins"].as_u64(), six["decided"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(
        insights["suggestions"].as_array().unwrap().is_empty(),
        "nothing is significant at 0.05: {insights:#}"
    );
    let loose = call_ok(&harness, json!({"action": "insights", "alpha": 0.3})).await;
    let suggestions = loose["suggestions"].as_array().unwrap();
    assert!(
        suggestions.iter().any(|suggestion| suggestion
            .as_str()
            .unwrap()
            .starts_with("prefer steps=6: it won 3 of 3")),
        "{loose:#}"
    );
    call_refused(
        &harness,
        json!({"action": "preset_from_history", "preset": format!("history-{id}"), "prompt": "a boat"}),
        "no parameter value is preferred at the 0.05 level",
    )
    .await;
    let built = call_ok(
        &harness,
        json!({"action": "preset_from_history", "preset": format!("history-{id}"), "prompt": "a boat",
               "checkpoint": "tiny-sd15-micro.ckpt", "alpha": 0.3}),
    )
    .await;
    assert_eq!(built["rests_on"][0]["name"], "steps=6", "{built:#}");
    let stored = harness
        .call(
            "preset",
            json!({"action": "get", "name": format!("history-{id}")}),
        )
        .await;
    assert!(text_of(&stored).contains("\"steps\": 6"), "{}", text_of(&stored));

    let measured = call_ok(
        &harness,
        json!({"action": "measure", "experiment_id": id, "measure": "contrast"}),
    )
    .await;
    assert_eq!(measured["scored"], 6, "{measured:#}");
    let ratings = &measured["ratings"][0];
    assert_eq!(ratings["source"], "contrast");
    assert_eq!(ratings["counts"], json!([3, 3]));
    assert_eq!(ratings["test"]["test"], "mann_whitney_u");
    let p = ratings["test"]["p_value"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p), "{measured:#}");
    // Measuring again replaces the measure's scores, never doubles them.
    let again = call_ok(
        &harness,
        json!({"action": "measure", "experiment_id": id, "measure": "contrast"}),
    )
    .await;
    assert_eq!(again["ratings"][0]["counts"], json!([3, 3]));
    let reference = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, noise_png(64));
    let similar = call_ok(
        &harness,
        json!({"action": "measure", "experiment_id": id, "measure": "similarity", "reference": {"data_base64": reference}}),
    )
    .await;
    assert_eq!(similar["scored"], 6, "{similar:#}");
    call_refused(
        &harness,
        json!({"action": "measure", "experiment_id": id, "measure": "similarity"}),
        "needs a reference",
    )
    .await;

    let preset = format!("experiment-{id}");
    call_refused(
        &harness,
        json!({"action": "save_winner", "experiment_id": id, "preset": preset}),
        "has no winner yet",
    )
    .await;
    let saved = call_ok(
        &harness,
        json!({"action": "save_winner", "experiment_id": id, "preset": preset, "variant": "more"}),
    )
    .await;
    assert_eq!(saved["variant"], "more");
    let applied = harness
        .call(
            "preset",
            json!({"action": "apply", "name": preset, "overrides": {"seed": 7}}),
        )
        .await;
    assert!(!is_error(&applied), "{}", text_of(&applied));
    assert_eq!(json_of(&applied)["status"], "succeeded", "{}", text_of(&applied));

    let listed = call_ok(&harness, json!({"action": "list"})).await;
    assert!(
        listed["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|experiment| experiment["id"] == id.as_str()),
        "{listed:#}"
    );
    let deleted = call_ok(&harness, json!({"action": "delete", "experiment_id": id})).await;
    assert_eq!(deleted["deleted"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_the_backend_refuses_leaves_nothing_behind() {
    let harness = harness().await;
    call_refused(
        &harness,
        json!({"action": "create", "name": "bad", "prompt": "a cat", "width": 64, "height": 64,
               "variants": [{"name": "a", "checkpoint": "no-such-model.safetensors"}, {"name": "b", "checkpoint": "no-such-model.safetensors"}],
               "seeds": [1]}),
        "no-such-model.safetensors",
    )
    .await;
    call_refused(
        &harness,
        json!({"action": "create", "name": "one", "prompt": "a cat", "variants": [{"name": "a"}]}),
        "2 to 8 variants",
    )
    .await;
    let listed = call_ok(&harness, json!({"action": "list", "limit": 100})).await;
    assert!(
        !listed["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|experiment| experiment["name"] == "bad"),
        "{listed:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_prompt_counts_tokens_and_checks_embeddings_on_the_backend() {
    let vocabulary = std::env::var("COMFYUI_MCP_CLIP_VOCABULARY")
        .expect("set COMFYUI_MCP_CLIP_VOCABULARY to the rig's comfy/sd1_tokenizer (scripts/test does)");
    let environment = move |name: &str| (name == "COMFYUI_MCP_CLIP_VOCABULARY").then(|| vocabulary.clone());
    let harness = connect_with(all_toolsets("prompts", &environment)).await;
    let result = harness
        .call(
            "analyze_prompt",
            json!({"prompt": "a photo of a cat, a photo of a cat, (whiskers:1.8), embedding:no-such-embedding, {red|blue} collar"}),
        )
        .await;
    assert!(!is_error(&result), "{}", text_of(&result));
    let analysis = json_of(&result);
    assert_eq!(analysis["tokens_counted"], true, "{analysis:#}");
    assert!(analysis["tokens"].as_u64().unwrap() > 10, "{analysis:#}");
    assert_eq!(analysis["windows"].as_array().unwrap().len(), 1);
    assert_eq!(
        analysis["missing_embeddings"],
        json!(["no-such-embedding"]),
        "{analysis:#}"
    );
    assert_eq!(analysis["duplicates"], json!(["a photo of a cat"]));
    assert_eq!(analysis["combinations"], 2);
    assert!(
        analysis["history"]["basis"]
            .as_str()
            .unwrap()
            .contains("0 decided choices"),
        "{analysis:#}"
    );
    // Without the vocabulary the rest still comes, with the reason tokens were not counted.
    let bare = connect_with(all_toolsets("prompts-bare", &|_| None)).await;
    let plain = json_of(&bare.call("analyze_prompt", json!({"prompt": "a cat"})).await);
    assert_eq!(plain["tokens_counted"], false, "{plain:#}");
    assert!(
        plain["warnings"][0]
            .as_str()
            .unwrap()
            .contains("COMFYUI_MCP_CLIP_VOCABULARY"),
        "{plain:#}"
    );
}
