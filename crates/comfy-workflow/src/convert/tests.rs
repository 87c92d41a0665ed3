//! Tests for UI to API conversion on small hand-written UI workflows, one rule at a time.

use serde_json::{Value, json};

use super::*;
use crate::testing::{object_info, txt2img};
use crate::validate::{Outcome, ValidationOptions, validate};

const NOON: LocalDateTime = LocalDateTime {
    year: 2026,
    month: 3,
    day: 7,
    hour: 14,
    minute: 5,
    second: 9,
};

fn input(name: &str, type_name: &str, link: Option<i64>) -> Value {
    json!({"name": name, "type": type_name, "link": link})
}

fn widget_input(name: &str, type_name: &str, link: Option<i64>) -> Value {
    json!({"name": name, "type": type_name, "link": link, "widget": {"name": name}})
}

fn output(name: &str, type_name: &str, links: &[i64]) -> Value {
    json!({"name": name, "type": type_name, "links": links})
}

/// The SD1.5 txt2img graph as the UI saves it (version 0.4, link arrays).
fn txt2img_ui() -> Value {
    json!({
        "version": 0.4,
        "nodes": [
            {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0, "inputs": [],
             "outputs": [output("MODEL", "MODEL", &[1]), output("CLIP", "CLIP", &[3, 5]), output("VAE", "VAE", &[8])],
             "widgets_values": ["tiny-sd15.safetensors"]},
            {"id": 5, "type": "EmptyLatentImage", "mode": 0, "inputs": [], "outputs": [output("LATENT", "LATENT", &[2])],
             "widgets_values": [512, 512, 1]},
            {"id": 6, "type": "CLIPTextEncode", "mode": 0, "inputs": [input("clip", "CLIP", Some(3))],
             "outputs": [output("CONDITIONING", "CONDITIONING", &[4])], "widgets_values": ["masterpiece best quality girl"]},
            {"id": 7, "type": "CLIPTextEncode", "mode": 0, "inputs": [input("clip", "CLIP", Some(5))],
             "outputs": [output("CONDITIONING", "CONDITIONING", &[6])], "widgets_values": ["bad hands"]},
            {"id": 3, "type": "KSampler", "mode": 0, "properties": {"Node name for S&R": "KSampler"},
             "inputs": [input("model", "MODEL", Some(1)), input("positive", "CONDITIONING", Some(4)),
                        input("negative", "CONDITIONING", Some(6)), input("latent_image", "LATENT", Some(2))],
             "outputs": [output("LATENT", "LATENT", &[7])],
             "widgets_values": [156_680_208_700_286_u64, "randomize", 20, 8.0, "euler", "normal", 1.0]},
            {"id": 8, "type": "VAEDecode", "mode": 0, "inputs": [input("samples", "LATENT", Some(7)), input("vae", "VAE", Some(8))],
             "outputs": [output("IMAGE", "IMAGE", &[9])]},
            {"id": 9, "type": "SaveImage", "mode": 0, "inputs": [input("images", "IMAGE", Some(9))], "outputs": [],
             "widgets_values": ["ComfyUI"]}
        ],
        "links": [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"], [4, 6, 0, 3, 1, "CONDITIONING"],
                  [5, 4, 1, 7, 0, "CLIP"], [6, 7, 0, 3, 2, "CONDITIONING"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
                  [9, 8, 0, 9, 0, "IMAGE"]]
    })
}

fn convert(ui: &Value) -> Conversion {
    ui_to_api(ui, object_info(), &ConvertOptions::default())
}

fn node_mut(ui: &mut Value, id: i64) -> &mut Value {
    ui["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|node| node["id"] == id)
        .unwrap()
}

fn push_node(ui: &mut Value, node: Value) {
    ui["nodes"].as_array_mut().unwrap().push(node);
}

fn push_link(ui: &mut Value, link: Value) {
    ui["links"].as_array_mut().unwrap().push(link);
}

fn inputs(conversion: &Conversion, node_id: &str) -> Value {
    Value::Object(
        conversion
            .prompt
            .get(node_id)
            .unwrap_or_else(|| panic!("no node {node_id} in {:#?}", conversion.prompt))
            .inputs
            .clone(),
    )
}

fn codes(conversion: &Conversion) -> Vec<&str> {
    conversion
        .diagnostics
        .iter()
        .map(|diagnostic| diagnostic.code.as_str())
        .collect()
}

#[test]
fn txt2img_converts_to_the_api_prompt() {
    let conversion = convert(&txt2img_ui());
    assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
    let expected = txt2img();
    assert_eq!(conversion.prompt.nodes.len(), expected.nodes.len());
    for (node_id, node) in &expected.nodes {
        let converted = conversion.prompt.get(node_id).unwrap();
        assert_eq!(converted.class_type, node.class_type);
        assert_eq!(converted.inputs, node.inputs, "node {node_id}");
    }
    assert_eq!(
        conversion.prompt.get("5").unwrap().title(),
        Some("Empty Latent Image")
    );
    let report = validate(&conversion.prompt, object_info(), &ValidationOptions::default());
    assert_eq!(report.outcome(), Outcome::Valid);
}

#[test]
fn link_objects_of_version_1_are_read() {
    let mut ui = txt2img_ui();
    let links: Vec<Value> = ui["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|link| {
            json!({"id": link[0], "origin_id": link[1], "origin_slot": link[2], "target_id": link[3],
                   "target_slot": link[4], "type": link[5], "parentId": 1})
        })
        .collect();
    ui["links"] = Value::Array(links);
    ui["version"] = json!(1);
    ui["extra"] = json!({"reroutes": [{"id": 1, "pos": [0, 0], "linkIds": [1]}]});
    let conversion = convert(&ui);
    assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
    assert_eq!(inputs(&conversion, "3")["model"], json!(["4", 0]));
}

#[test]
fn titles_go_to_meta() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 6)["title"] = json!("Positive");
    let conversion = convert(&ui);
    assert_eq!(conversion.prompt.get("6").unwrap().title(), Some("Positive"));
    assert_eq!(conversion.prompt.get("3").unwrap().title(), Some("KSampler"));
}

#[test]
fn upload_widgets_and_frontend_extras_are_not_sent() {
    let ui = json!({"nodes": [
        {"id": 1, "type": "LoadImage", "mode": 0, "outputs": [output("IMAGE", "IMAGE", &[1]), output("MASK", "MASK", &[])],
         "widgets_values": ["example.png", "image"]},
        {"id": 2, "type": "PreviewImage", "mode": 0, "inputs": [input("images", "IMAGE", Some(1))], "widgets_values": []},
        {"id": 3, "type": "LoadAudio", "mode": 0, "outputs": [output("AUDIO", "AUDIO", &[])],
         "widgets_values": ["a.mp3", null, null]}
    ], "links": [[1, 1, 0, 2, 0, "IMAGE"]]});
    let conversion = convert(&ui);
    assert_eq!(inputs(&conversion, "1"), json!({"image": "example.png"}));
    assert_eq!(inputs(&conversion, "2"), json!({"images": ["1", 0]}));
    assert!(
        !codes(&conversion).contains(&"extra_widget_values"),
        "{:#?}",
        conversion.diagnostics
    );
}

#[test]
fn muted_nodes_are_removed_with_their_links() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 3)["mode"] = json!(2);
    let conversion = convert(&ui);
    assert!(conversion.prompt.get("3").is_none());
    assert!(inputs(&conversion, "8").get("samples").is_none());
    let dangling = conversion
        .diagnostics
        .iter()
        .find(|diagnostic| diagnostic.code == "dangling_link_removed")
        .unwrap();
    assert_eq!(dangling.node_id, "8");
    assert_eq!(dangling.input.as_deref(), Some("samples"));
}

#[test]
fn bypassed_nodes_pass_matching_inputs_through() {
    let mut ui = txt2img_ui();
    // A bypassed LoRA between the checkpoint and its consumers.
    push_node(
        &mut ui,
        json!({"id": 10, "type": "LoraLoader", "mode": 4,
               "inputs": [input("model", "MODEL", Some(20)), input("clip", "CLIP", Some(21))],
               "outputs": [output("MODEL", "MODEL", &[1]), output("CLIP", "CLIP", &[3])],
               "widgets_values": ["tiny-sd15-lora.safetensors", 1, 1]}),
    );
    push_link(&mut ui, json!([20, 4, 0, 10, 0, "MODEL"]));
    push_link(&mut ui, json!([21, 4, 1, 10, 1, "CLIP"]));
    let links = ui["links"].as_array_mut().unwrap();
    links[0] = json!([1, 10, 0, 3, 0, "MODEL"]);
    links[2] = json!([3, 10, 1, 6, 0, "CLIP"]);
    let conversion = convert(&ui);
    assert!(conversion.prompt.get("10").is_none());
    assert_eq!(inputs(&conversion, "3")["model"], json!(["4", 0]));
    assert_eq!(inputs(&conversion, "6")["clip"], json!(["4", 1]));
}

#[test]
fn bypass_without_a_matching_input_drops_the_link() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 8)["mode"] = json!(4);
    let conversion = convert(&ui);
    assert!(inputs(&conversion, "9").get("images").is_none());
    let codes = codes(&conversion);
    assert!(codes.contains(&"bypass_without_match"), "{codes:?}");
    assert!(codes.contains(&"input_disconnected"), "{codes:?}");
}

#[test]
fn legacy_reroutes_are_followed() {
    let mut ui = txt2img_ui();
    push_node(
        &mut ui,
        json!({"id": 30, "type": "Reroute", "mode": 0, "inputs": [input("", "*", Some(40))],
               "outputs": [output("", "MODEL", &[1])], "properties": {"showOutputText": false}}),
    );
    push_node(
        &mut ui,
        json!({"id": 31, "type": "Reroute", "mode": 0, "inputs": [input("", "*", Some(41))],
               "outputs": [output("", "MODEL", &[40])]}),
    );
    push_link(&mut ui, json!([41, 4, 0, 31, 0, "MODEL"]));
    push_link(&mut ui, json!([40, 31, 0, 30, 0, "MODEL"]));
    ui["links"][0] = json!([1, 30, 0, 3, 0, "MODEL"]);
    let conversion = convert(&ui);
    assert!(conversion.prompt.get("30").is_none());
    assert_eq!(inputs(&conversion, "3")["model"], json!(["4", 0]));
    assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
}

#[test]
fn primitive_node_values_win_over_the_targets_own() {
    let mut ui = txt2img_ui();
    push_node(
        &mut ui,
        json!({"id": 40, "type": "PrimitiveNode", "mode": 0,
               "outputs": [{"name": "INT", "type": "INT", "links": [50], "widget": {"name": "steps"}}],
               "widgets_values": [33, "fixed"], "properties": {"Run widget replace on values": false}}),
    );
    push_link(&mut ui, json!([50, 40, 0, 3, 4, "INT"]));
    node_mut(&mut ui, 3)["inputs"]
        .as_array_mut()
        .unwrap()
        .push(widget_input("steps", "INT", Some(50)));
    let conversion = convert(&ui);
    assert_eq!(inputs(&conversion, "3")["steps"], 33);
    assert!(conversion.prompt.get("40").is_none());
    assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
}

#[test]
fn filename_placeholders_are_replaced_like_the_frontend() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 9)["widgets_values"] =
        json!(["%date:yyyy-MM-dd%/img_%Empty Latent Image.width%_%KSampler.steps%_%width%"]);
    let options = ConvertOptions {
        now: Some(NOON),
        ..ConvertOptions::default()
    };
    let conversion = ui_to_api(&ui, object_info(), &options);
    assert_eq!(
        inputs(&conversion, "9")["filename_prefix"],
        "2026-03-07/img_512_20_%width%"
    );
    assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
    // Without a clock the date stays, and that is reported.
    let conversion = convert(&ui);
    assert!(
        inputs(&conversion, "9")["filename_prefix"]
            .as_str()
            .unwrap()
            .starts_with("%date:yyyy-MM-dd%/")
    );
    assert_eq!(codes(&conversion), ["unresolved_placeholder"]);
}

#[test]
fn dynamic_prompts_are_resolved_from_the_seed() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 6)["widgets_values"] = json!(["a {red|blue} cat // a comment\nby \\{me\\}"]);
    let options = ConvertOptions {
        dynamic_prompt_seed: 42,
        ..ConvertOptions::default()
    };
    let first = ui_to_api(&ui, object_info(), &options);
    let text = inputs(&first, "6")["text"].as_str().unwrap().to_owned();
    assert!(
        ["a red cat \nby {me}", "a blue cat \nby {me}"].contains(&text.as_str()),
        "{text:?}"
    );
    let again = ui_to_api(&ui, object_info(), &options);
    assert_eq!(inputs(&again, "6")["text"], text.as_str());
    let untouched = ui_to_api(
        &ui,
        object_info(),
        &ConvertOptions {
            resolve_dynamic_prompts: false,
            ..ConvertOptions::default()
        },
    );
    assert_eq!(
        inputs(&untouched, "6")["text"],
        "a {red|blue} cat // a comment\nby \\{me\\}"
    );
}

#[test]
fn shifted_widget_values_are_reported() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 3)["widgets_values"] = json!([5, "randomize", "randomize", 8, "euler", "normal", 1]);
    let conversion = convert(&ui);
    assert_eq!(codes(&conversion), ["widget_values_shifted"]);
    assert_eq!(conversion.diagnostics[0].node_id, "3");
}

#[test]
fn missing_values_use_defaults_and_are_reported() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 5)["widgets_values"] = json!([640]);
    let conversion = convert(&ui);
    assert_eq!(
        inputs(&conversion, "5"),
        json!({"width": 640, "height": 512, "batch_size": 1})
    );
    assert_eq!(codes(&conversion), ["missing_widget_value"]);
}

#[test]
fn unknown_nodes_are_kept_and_reported() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 8)["type"] = json!("VAEDecodeTiledPlus");
    let conversion = convert(&ui);
    let node = conversion.prompt.get("8").unwrap();
    assert_eq!(node.class_type, "VAEDecodeTiledPlus");
    assert_eq!(node.inputs["samples"], json!(["3", 0]));
    let diagnostic = &conversion.diagnostics[0];
    assert_eq!(diagnostic.code, "unknown_node_type");
    assert_eq!(diagnostic.severity, Severity::Error);
}

#[test]
fn a_missing_link_is_reported_not_fatal() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 9)["inputs"][0]["link"] = json!(99);
    let conversion = convert(&ui);
    assert!(inputs(&conversion, "9").get("images").is_none());
    assert_eq!(codes(&conversion), ["missing_link"]);
}

#[test]
fn notes_and_group_nodes_are_handled() {
    let mut ui = txt2img_ui();
    push_node(
        &mut ui,
        json!({"id": 50, "type": "MarkdownNote", "mode": 0, "widgets_values": ["# hi"]}),
    );
    push_node(&mut ui, json!({"id": 51, "type": "workflow>My group", "mode": 0}));
    let conversion = convert(&ui);
    assert!(conversion.prompt.get("50").is_none());
    assert_eq!(codes(&conversion), ["unsupported_node"]);
}

/// A subgraph that scales an image; its `scale_by` widget is promoted to the instance.
fn scale_subgraph(id: &str) -> Value {
    json!({
        "id": id, "name": "Scale",
        "inputs": [{"id": "a", "name": "image", "type": "IMAGE", "linkIds": [21]},
                   {"id": "b", "name": "scale_by", "type": "FLOAT", "linkIds": [23]}],
        "outputs": [{"id": "c", "name": "IMAGE", "type": "IMAGE", "linkIds": [11]}],
        "nodes": [
            {"id": 1, "type": "ImageScaleBy", "mode": 0,
             "inputs": [input("image", "IMAGE", Some(21)), widget_input("scale_by", "FLOAT", Some(23))],
             "outputs": [output("IMAGE", "IMAGE", &[11])], "widgets_values": ["nearest-exact", 2.0]}
        ],
        "links": [
            {"id": 21, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "IMAGE"},
            {"id": 23, "origin_id": -10, "origin_slot": 1, "target_id": 1, "target_slot": 1, "type": "FLOAT"},
            {"id": 11, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}
        ]
    })
}

fn subgraph_ui(instance: Value) -> Value {
    json!({
        "nodes": [
            {"id": 10, "type": "LoadImage", "mode": 0, "outputs": [output("IMAGE", "IMAGE", &[30])],
             "widgets_values": ["example.png", "image"]},
            instance,
            {"id": 20, "type": "SaveImage", "mode": 0, "inputs": [input("images", "IMAGE", Some(31))],
             "widgets_values": ["sub"]}
        ],
        "links": [[30, 10, 0, 19, 0, "IMAGE"], [31, 19, 0, 20, 0, "IMAGE"]],
        "definitions": {"subgraphs": [scale_subgraph("sg-scale")]}
    })
}

fn scale_instance(widgets_values: Value, properties: Value) -> Value {
    json!({"id": 19, "type": "sg-scale", "mode": 0, "inputs": [input("image", "IMAGE", Some(30))],
           "outputs": [output("IMAGE", "IMAGE", &[31])], "widgets_values": widgets_values, "properties": properties})
}

#[test]
fn subgraphs_expand_with_nested_ids_and_promoted_widgets() {
    let ui = subgraph_ui(scale_instance(
        json!([3.0]),
        json!({"proxyWidgets": [["-1", "scale_by"]]}),
    ));
    let conversion = convert(&ui);
    assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
    assert_eq!(
        inputs(&conversion, "19:1"),
        json!({"image": ["10", 0], "upscale_method": "nearest-exact", "scale_by": 3.0})
    );
    assert_eq!(inputs(&conversion, "20")["images"], json!(["19:1", 0]));
    assert!(conversion.prompt.get("19").is_none());
    let report = validate(&conversion.prompt, object_info(), &ValidationOptions::default());
    assert_eq!(report.outcome(), Outcome::Valid, "{report:#?}");
}

#[test]
fn promoted_widgets_without_proxy_widgets_follow_input_order() {
    let conversion = convert(&subgraph_ui(scale_instance(json!([4.0]), json!({}))));
    assert_eq!(inputs(&conversion, "19:1")["scale_by"], 4.0);
    assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
}

#[test]
fn promotion_follows_the_saved_slot_index_like_the_frontend() {
    // The saved link into scale_by has target_slot 1 (the unconnected upscale_method slot is not
    // saved), but the live node has all its slots, so slot 1 is upscale_method: the frontend
    // promotes that widget. Without a saved instance value, its value is what scale_by gets.
    let conversion = convert(&subgraph_ui(scale_instance(json!([]), json!({}))));
    assert_eq!(inputs(&conversion, "19:1")["scale_by"], "nearest-exact");
    let shifted = conversion
        .diagnostics
        .iter()
        .find(|diagnostic| diagnostic.code == "widget_values_shifted")
        .unwrap();
    assert_eq!(shifted.node_id, "19");
    assert!(shifted.message.contains("upscale_method"), "{}", shifted.message);
    // With the slot index of the full slot list, the inner widget's own value stands.
    let mut ui = subgraph_ui(scale_instance(json!([]), json!({})));
    ui["definitions"]["subgraphs"][0]["links"][1]["target_slot"] = json!(2);
    let conversion = convert(&ui);
    assert_eq!(inputs(&conversion, "19:1")["scale_by"], 2.0);
    assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
}

#[test]
fn proxy_widgets_may_be_a_json_string() {
    let conversion = convert(&subgraph_ui(scale_instance(
        json!([5.0]),
        json!({"proxyWidgets": "[[\"-1\", \"scale_by\"]]"}),
    )));
    assert_eq!(inputs(&conversion, "19:1")["scale_by"], 5.0);
}

#[test]
fn nested_subgraphs_get_colon_separated_ids() {
    let outer = json!({
        "id": "sg-outer", "name": "Outer",
        "inputs": [{"id": "x", "name": "image", "type": "IMAGE", "linkIds": [1]}],
        "outputs": [{"id": "y", "name": "IMAGE", "type": "IMAGE", "linkIds": [2]}],
        "nodes": [{"id": 5, "type": "sg-scale", "mode": 0, "inputs": [input("image", "IMAGE", Some(1))],
                   "outputs": [output("IMAGE", "IMAGE", &[2])], "widgets_values": [6.0]}],
        "links": [
            {"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 5, "target_slot": 0, "type": "IMAGE"},
            {"id": 2, "origin_id": 5, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}
        ]
    });
    let mut ui = subgraph_ui(
        json!({"id": 19, "type": "sg-outer", "mode": 0, "inputs": [input("image", "IMAGE", Some(30))],
                                    "outputs": [output("IMAGE", "IMAGE", &[31])]}),
    );
    ui["definitions"]["subgraphs"].as_array_mut().unwrap().push(outer);
    let conversion = convert(&ui);
    assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
    assert_eq!(inputs(&conversion, "19:5:1")["image"], json!(["10", 0]));
    assert_eq!(inputs(&conversion, "19:5:1")["scale_by"], 6.0);
    assert_eq!(inputs(&conversion, "20")["images"], json!(["19:5:1", 0]));
}

#[test]
fn recursive_subgraphs_are_refused() {
    let mut definition = scale_subgraph("sg-scale");
    definition["nodes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": 2, "type": "sg-scale", "mode": 0}));
    let mut ui = subgraph_ui(scale_instance(json!([]), json!({})));
    ui["definitions"]["subgraphs"] = json!([definition]);
    let conversion = convert(&ui);
    assert!(codes(&conversion).contains(&"subgraph_recursion"));
}

/// Definition `sg-K` holds two instances of `sg-K+1`, down to `sg-DEPTH`, which holds one
/// EmptyLatentImage: a workflow of a few kilobytes that expands to 2^depth prompt nodes.
fn doubling_subgraphs(depth: usize) -> Value {
    let definitions: Vec<Value> = (0..=depth)
        .map(|level| {
            let nodes = if level == depth {
                json!([{"id": 1, "type": "EmptyLatentImage", "mode": 0,
                        "outputs": [output("LATENT", "LATENT", &[])], "widgets_values": [512, 512, 1]}])
            } else {
                let inner = format!("sg-{}", level + 1);
                json!([{"id": 1, "type": inner, "mode": 0}, {"id": 2, "type": inner, "mode": 0}])
            };
            json!({"id": format!("sg-{level}"), "name": format!("Level {level}"),
                   "inputs": [], "outputs": [], "nodes": nodes, "links": []})
        })
        .collect();
    json!({"nodes": [{"id": 1, "type": "sg-0", "mode": 0}], "links": [],
           "definitions": {"subgraphs": definitions}})
}

#[test]
fn doubling_subgraphs_expand_exponentially_below_the_cap() {
    for depth in [4, 5, 10] {
        let conversion = convert(&doubling_subgraphs(depth));
        assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
        assert_eq!(conversion.prompt.nodes.len(), 1 << depth);
    }
    // The root instance, the second instance on each of the ten levels, the leaf.
    let deepest = format!("1{}:1", ":2".repeat(10));
    assert!(convert(&doubling_subgraphs(10)).prompt.get(&deepest).is_some());
}

#[test]
fn a_subgraph_expansion_bomb_is_refused_before_expanding() {
    let started = std::time::Instant::now();
    let conversion = convert(&doubling_subgraphs(20));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(conversion.prompt.nodes.is_empty());
    assert_eq!(codes(&conversion), ["workflow_too_large"]);
    // Every instance counts, with the nodes inside it: 3 * 2^20 - 1.
    let message = &conversion.diagnostics[0].message;
    assert!(
        message.contains("3145727") && message.contains("20000"),
        "{message}"
    );
}

#[test]
fn a_subgraph_holding_itself_twice_is_refused_before_loading() {
    // Expansion refuses recursion, but loading walks every instance 32 levels deep: 2^33 nodes.
    let mut definition = scale_subgraph("sg-scale");
    for id in [2, 3] {
        definition["nodes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": id, "type": "sg-scale", "mode": 0}));
    }
    let mut ui = subgraph_ui(scale_instance(json!([]), json!({})));
    ui["definitions"]["subgraphs"] = json!([definition]);
    let started = std::time::Instant::now();
    let conversion = convert(&ui);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(codes(&conversion), ["workflow_too_large"]);
}

#[test]
fn muted_subgraphs_are_still_expanded_like_frontend_1_32() {
    let mut instance = scale_instance(json!([3.0]), json!({}));
    instance["mode"] = json!(2);
    let conversion = convert(&subgraph_ui(instance));
    assert_eq!(inputs(&conversion, "19:1")["scale_by"], 3.0);
    assert_eq!(inputs(&conversion, "20")["images"], json!(["19:1", 0]));
    assert_eq!(codes(&conversion), ["disabled_subgraph_expanded"]);
}

#[test]
fn bypassed_subgraphs_pass_through_but_their_nodes_still_run() {
    let mut instance = scale_instance(json!([3.0]), json!({}));
    instance["mode"] = json!(4);
    let conversion = convert(&subgraph_ui(instance));
    assert!(conversion.prompt.get("19:1").is_some());
    assert_eq!(inputs(&conversion, "20")["images"], json!(["10", 0]));
    assert_eq!(codes(&conversion), ["disabled_subgraph_expanded"]);
}

#[test]
fn array_values_are_wrapped() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 9)["widgets_values"] = json!([["a", "b"]]);
    let conversion = convert(&ui);
    assert_eq!(
        inputs(&conversion, "9")["filename_prefix"],
        json!({"__value__": ["a", "b"]})
    );
}

#[test]
fn formats_are_detected() {
    assert_eq!(detect_format(&txt2img_ui()), Format::Ui);
    assert_eq!(detect_format(&crate::testing::txt2img_json()), Format::Api);
    assert_eq!(detect_format(&json!({})), Format::Unknown);
    assert_eq!(detect_format(&json!([1])), Format::Unknown);
    assert_eq!(detect_format(&json!({"a": {"inputs": {}}})), Format::Unknown);
}

#[test]
fn an_api_prompt_given_as_ui_is_reported() {
    let conversion = convert(&crate::testing::txt2img_json());
    assert!(conversion.prompt.nodes.is_empty());
    assert_eq!(conversion.diagnostics[0].severity, Severity::Error);
    assert!(conversion.diagnostics[0].suggestion.is_some());
}

#[test]
fn reroute_cycles_do_not_hang() {
    let mut ui = txt2img_ui();
    push_node(
        &mut ui,
        json!({"id": 30, "type": "Reroute", "mode": 0, "inputs": [input("", "*", Some(40))], "outputs": [output("", "*", &[41, 1])]}),
    );
    push_node(
        &mut ui,
        json!({"id": 31, "type": "Reroute", "mode": 0, "inputs": [input("", "*", Some(41))], "outputs": [output("", "*", &[40])]}),
    );
    push_link(&mut ui, json!([40, 31, 0, 30, 0, "*"]));
    push_link(&mut ui, json!([41, 30, 0, 31, 0, "*"]));
    ui["links"][0] = json!([1, 30, 0, 3, 0, "MODEL"]);
    let conversion = convert(&ui);
    assert!(inputs(&conversion, "3").get("model").is_none());
    assert!(codes(&conversion).contains(&"missing_link"));
}

fn frontend_options() -> ConvertOptions {
    ConvertOptions {
        frontend_missing_nodes: true,
        ..ConvertOptions::default()
    }
}

/// A node of a type the backend does not know, fed by the checkpoint and feeding the decoder.
fn with_unknown_node(widgets_values: Value) -> Value {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 8)["type"] = json!("VAEDecodeTiledPlus");
    node_mut(&mut ui, 8)["properties"] = json!({"cnr_id": "comfyui-tiled-plus", "ver": "1.2.0"});
    node_mut(&mut ui, 8)["widgets_values"] = widgets_values;
    ui
}

#[test]
fn unknown_nodes_are_reported_with_their_pack_by_default() {
    let conversion = convert(&with_unknown_node(json!([512, "tile"])));
    let node = conversion.prompt.get("8").unwrap();
    assert_eq!(node.class_type, "VAEDecodeTiledPlus");
    assert_eq!(
        inputs(&conversion, "8"),
        json!({"samples": ["3", 0], "vae": ["4", 2]})
    );
    let diagnostic = &conversion.diagnostics[0];
    assert_eq!(diagnostic.code, "unknown_node_type");
    assert!(
        diagnostic.message.contains("comfyui-tiled-plus 1.2.0"),
        "{}",
        diagnostic.message
    );
}

#[test]
fn frontend_missing_nodes_mode_sends_them_like_the_frontend() {
    let ui = with_unknown_node(json!([512, {"a": [1, 2.0]}, true, "a very long value of many words"]));
    let conversion = ui_to_api(&ui, object_info(), &frontend_options());
    let node = conversion.prompt.get("8").unwrap();
    assert_eq!(node.class_type, "");
    assert!(conversion.prompt.to_json()["8"].get("class_type").is_none());
    // One UNKNOWN widget per value; the last one wins.
    assert_eq!(
        inputs(&conversion, "8"),
        json!({"UNKNOWN": "a very long value of many words", "samples": ["3", 0], "vae": ["4", 2]})
    );
    // Objects and nulls become their JSON text, written as JavaScript writes it.
    let conversion = ui_to_api(
        &with_unknown_node(json!([{"a": [1, 2.0]}])),
        object_info(),
        &frontend_options(),
    );
    assert_eq!(inputs(&conversion, "8")["UNKNOWN"], "{\"a\":[1,2]}");
    let conversion = ui_to_api(&with_unknown_node(json!([])), object_info(), &frontend_options());
    assert!(inputs(&conversion, "8").get("UNKNOWN").is_none());
    // Links to the unknown node stay: it is in the prompt.
    assert_eq!(inputs(&conversion, "9")["images"], json!(["8", 0]));
}

#[test]
fn frontend_only_widget_values_are_sent() {
    let ui = json!({"nodes": [
        {"id": 1, "type": "PreviewAny", "mode": 0, "inputs": [input("source", "*", None)], "widgets_values": []},
        {"id": 2, "type": "SaveGLB", "mode": 0, "inputs": [input("mesh", "MESH", None)], "widgets_values": ["mesh/x", ""]},
        {"id": 3, "type": "Load3D", "mode": 0,
         "widgets_values": ["cube.glb", "upload3dmodel", "uploadExtraResources", "clear", "", 512, 768]}
    ], "links": []});
    let conversion = convert(&ui);
    assert_eq!(inputs(&conversion, "1"), json!({"preview": ""}));
    assert_eq!(
        inputs(&conversion, "2"),
        json!({"filename_prefix": "mesh/x", "image": ""})
    );
    assert_eq!(
        inputs(&conversion, "3"),
        json!({"model_file": "cube.glb", "upload 3d model": "upload3dmodel",
               "upload extra resources": "uploadExtraResources", "clear": "clear", "image": "",
               "width": 512, "height": 768})
    );
    assert!(codes(&conversion).contains(&"browser_only_value"));
}

#[test]
fn audio_players_are_sent_empty() {
    let mut info = object_info().clone();
    info.insert(crate::object_info::NodeDefinition::from_json(
        "LoadAudio",
        &json!({"input": {"required": {"audio": [["a.wav", "b.wav"], {"audio_upload": true}]}},
                "input_order": {"required": ["audio"]}, "output": ["AUDIO"]}),
    ));
    // audioUI is not saved (widget.serialize === false): the upload value follows the file.
    let ui = json!({"nodes": [{"id": 1, "type": "LoadAudio", "mode": 0, "widgets_values": ["b.wav", null, null]}], "links": []});
    let conversion = ui_to_api(&ui, &info, &ConvertOptions::default());
    assert_eq!(inputs(&conversion, "1"), json!({"audio": "b.wav", "audioUI": ""}));
}

#[test]
fn media_combos_follow_the_upload_transform() {
    let ui = json!({"nodes": [
        {"id": 1, "type": "LoadImageOutput", "mode": 0, "widgets_values": ["render.png", "refresh", "image"]},
        {"id": 2, "type": "LoadImageOutput", "mode": 0, "widgets_values": ["done.png [output]"]},
        {"id": 3, "type": "LoadImage", "mode": 0, "widgets_values": ["", "image"]}
    ], "links": []});
    let conversion = convert(&ui);
    assert_eq!(
        inputs(&conversion, "1"),
        json!({"image": "render.png [output]", "refresh": "refresh"})
    );
    assert_eq!(inputs(&conversion, "2")["image"], "done.png [output]");
    // An empty value falls back to the value the combo had when it was created.
    let first = object_info()
        .node("LoadImage")
        .unwrap()
        .input("image")
        .unwrap()
        .choices();
    let first = first
        .and_then(|choices| choices.first().cloned())
        .unwrap_or_else(|| "undefined".to_owned());
    assert_eq!(inputs(&conversion, "3")["image"], first.as_str());
}

#[test]
fn multiline_text_widgets_hold_strings() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 6)["widgets_values"] = json!([true]);
    node_mut(&mut ui, 7)["widgets_values"] = json!([null]);
    let conversion = convert(&ui);
    assert_eq!(inputs(&conversion, "6")["text"], "true");
    assert_eq!(inputs(&conversion, "7")["text"], "");
}

#[test]
fn dynamic_prompts_keep_the_frontend_quirks() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 6)["widgets_values"] = json!(["see https://example.com/x\r{only} end\\"]);
    let conversion = convert(&ui);
    assert_eq!(
        inputs(&conversion, "6")["text"],
        "see https:\ronly end\\undefined"
    );
}

#[test]
fn date_placeholders_format_only_up_to_the_first_dot() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 9)["widgets_values"] = json!(["%date:yyyy.MM.dd%_%date:hh-mm%"]);
    let options = ConvertOptions {
        now: Some(NOON),
        ..ConvertOptions::default()
    };
    let conversion = ui_to_api(&ui, object_info(), &options);
    assert_eq!(inputs(&conversion, "9")["filename_prefix"], "2026_14-05");
}

#[test]
fn primitive_nodes_round_and_can_send_null() {
    let primitive = |id: i64, value: Value, link: i64| {
        json!({"id": id, "type": "PrimitiveNode", "mode": 0,
               "outputs": [{"name": "INT", "type": "INT", "links": [link], "widget": {"name": "steps"}}],
               "widgets_values": [value, "fixed"]})
    };
    let with_primitive = |value: Value| {
        let mut ui = txt2img_ui();
        push_node(&mut ui, primitive(40, value, 50));
        push_link(&mut ui, json!([50, 40, 0, 3, 4, "INT"]));
        node_mut(&mut ui, 3)["inputs"]
            .as_array_mut()
            .unwrap()
            .push(widget_input("steps", "INT", Some(50)));
        ui
    };
    // INT widgets round what a primitive pushes into them.
    let conversion = convert(&with_primitive(json!(12.6)));
    assert_eq!(inputs(&conversion, "3")["steps"], 13);
    // A saved null is taken as it is: Math.round(null) is 0 for an INT widget, and a combo sends
    // null.
    let conversion = convert(&with_primitive(Value::Null));
    assert_eq!(inputs(&conversion, "3")["steps"], 0);
    let mut ui = txt2img_ui();
    push_node(
        &mut ui,
        json!({"id": 41, "type": "PrimitiveNode", "mode": 0,
               "outputs": [{"name": "COMBO", "type": "COMBO", "links": [51], "widget": {"name": "sampler_name"}}],
               "widgets_values": [null, "fixed", ""]}),
    );
    push_link(&mut ui, json!([51, 41, 0, 3, 4, "COMBO"]));
    node_mut(&mut ui, 3)["inputs"]
        .as_array_mut()
        .unwrap()
        .push(widget_input("sampler_name", "COMBO", Some(51)));
    let conversion = convert(&ui);
    assert_eq!(inputs(&conversion, "3")["sampler_name"], Value::Null);
    // Without saved values the primitive takes the target's value.
    let mut ui = with_primitive(json!(1));
    node_mut(&mut ui, 40)["widgets_values"] = json!([]);
    let conversion = convert(&ui);
    assert_eq!(inputs(&conversion, "3")["steps"], 20);
}

#[test]
fn saved_inputs_the_definition_lacks_are_kept_unless_they_claim_a_widget() {
    let mut ui = txt2img_ui();
    // An extra socket linked to the checkpoint stays; an extra "widget" slot is removed.
    node_mut(&mut ui, 8)["inputs"].as_array_mut().unwrap().extend([
        input("extra_model", "MODEL", Some(60)),
        widget_input("tile_size", "INT", Some(61)),
    ]);
    push_link(&mut ui, json!([60, 4, 0, 8, 2, "MODEL"]));
    push_link(&mut ui, json!([61, 5, 0, 8, 3, "INT"]));
    let conversion = convert(&ui);
    assert_eq!(
        inputs(&conversion, "8"),
        json!({"samples": ["3", 0], "vae": ["4", 2], "extra_model": ["4", 0]})
    );
    assert!(codes(&conversion).contains(&"input_disconnected"));
}

#[test]
fn huge_integers_are_sent_as_the_frontend_holds_them() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 3)["widgets_values"][0] = json!(18_446_744_073_709_551_615_u64);
    let conversion = convert(&ui);
    assert_eq!(
        inputs(&conversion, "3")["seed"].as_f64(),
        Some(18_446_744_073_709_551_615_u64 as f64)
    );
}

/// A subgraph whose only input feeds a widget of a node the backend does not know.
fn unknown_inner_ui() -> Value {
    let definition = json!({
        "id": "sg-mixed", "name": "Mixed",
        "inputs": [{"id": "a", "name": "text", "type": "STRING", "linkIds": [1]},
                   {"id": "b", "name": "scale_by", "type": "FLOAT", "linkIds": [2]}],
        "outputs": [],
        "nodes": [
            {"id": 1, "type": "FancyTextNode", "mode": 0, "inputs": [widget_input("text", "STRING", Some(1))],
             "widgets_values": ["inner"]},
            {"id": 2, "type": "ImageScaleBy", "mode": 0,
             "inputs": [input("image", "IMAGE", None), widget_input("scale_by", "FLOAT", Some(2))],
             "widgets_values": ["nearest-exact", 1.5]}
        ],
        "links": [
            {"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "STRING"},
            {"id": 2, "origin_id": -10, "origin_slot": 1, "target_id": 2, "target_slot": 2, "type": "FLOAT"}
        ]
    });
    json!({"nodes": [{"id": 5, "type": "sg-mixed", "mode": 0, "widgets_values": ["outer text", 3.0]}],
           "links": [], "definitions": {"subgraphs": [definition]}})
}

#[test]
fn promoted_values_shift_only_in_frontend_missing_nodes_mode() {
    // Default: the unknown node's widget input is promotable, so each value lands on its input.
    let conversion = convert(&unknown_inner_ui());
    assert_eq!(inputs(&conversion, "5:2")["scale_by"], 3.0);
    assert_eq!(inputs(&conversion, "5:1")["text"], "outer text");
    // The frontend has no widget on the unknown node, promotes only scale_by, and gives it the
    // first saved value.
    let conversion = ui_to_api(&unknown_inner_ui(), object_info(), &frontend_options());
    assert_eq!(inputs(&conversion, "5:2")["scale_by"], "outer text");
    assert_eq!(inputs(&conversion, "5:1"), json!({"UNKNOWN": "inner"}));
    assert!(codes(&conversion).contains(&"widget_values_shifted"));
}

#[test]
fn proxy_widget_entries_for_inner_nodes_hide_promoted_widgets_of_that_name() {
    // ["1", "scale_by"] names an inner widget directly: the promoted "scale_by" widget is removed,
    // so the saved instance value is lost and the inner node keeps its own value.
    let mut ui = subgraph_ui(scale_instance(
        json!([7.0]),
        json!({"proxyWidgets": [["1", "scale_by"]]}),
    ));
    ui["definitions"]["subgraphs"][0]["links"][1]["target_slot"] = json!(2);
    let conversion = convert(&ui);
    assert_eq!(inputs(&conversion, "19:1")["scale_by"], 2.0);
    // With a "-1" entry the promoted widget stays and takes the value at that index.
    let mut ui = subgraph_ui(scale_instance(
        json!([null, 7.0]),
        json!({"proxyWidgets": [["1", "upscale_method"], ["-1", "scale_by"]]}),
    ));
    ui["definitions"]["subgraphs"][0]["links"][1]["target_slot"] = json!(2);
    let conversion = convert(&ui);
    assert_eq!(inputs(&conversion, "19:1")["scale_by"], 7.0);
}

#[test]
fn bypass_uses_the_definition_slot_order() {
    let mut ui = txt2img_ui();
    // A bypassed LoRA saved with its slots in another order: the frontend rebuilds them from the
    // definition (model, clip), so output 1 (CLIP) passes input 1 (clip) through.
    push_node(
        &mut ui,
        json!({"id": 10, "type": "LoraLoader", "mode": 4,
               "inputs": [input("clip", "CLIP", Some(21)), input("model", "MODEL", Some(20))],
               "outputs": [output("MODEL", "MODEL", &[1]), output("CLIP", "CLIP", &[3])],
               "widgets_values": ["tiny-sd15-lora.safetensors", 1, 1]}),
    );
    push_link(&mut ui, json!([20, 4, 0, 10, 1, "MODEL"]));
    push_link(&mut ui, json!([21, 4, 1, 10, 0, "CLIP"]));
    let links = ui["links"].as_array_mut().unwrap();
    links[0] = json!([1, 10, 0, 3, 0, "MODEL"]);
    links[2] = json!([3, 10, 1, 6, 0, "CLIP"]);
    let conversion = convert(&ui);
    assert_eq!(inputs(&conversion, "3")["model"], json!(["4", 0]));
    assert_eq!(inputs(&conversion, "6")["clip"], json!(["4", 1]));
}

#[test]
fn primitives_inside_subgraphs_are_reported_like_the_frontend_fails_them() {
    // The frontend looks a primitive's link ids up in the root graph; link 7 exists only in the
    // subgraph, so the frontend throws. We convert with the subgraph's link and say so.
    let mut definition = scale_subgraph("sg-scale");
    definition["links"][1]["target_slot"] = json!(2);
    definition["nodes"].as_array_mut().unwrap().push(json!(
        {"id": 3, "type": "PrimitiveNode", "mode": 0,
         "outputs": [{"name": "FLOAT", "type": "FLOAT", "links": [7], "widget": {"name": "upscale_method"}}],
         "widgets_values": ["bicubic"]}
    ));
    definition["nodes"][0]["inputs"]
        .as_array_mut()
        .unwrap()
        .push(widget_input("upscale_method", "COMBO", Some(7)));
    definition["links"].as_array_mut().unwrap().push(
        json!({"id": 7, "origin_id": 3, "origin_slot": 0, "target_id": 1, "target_slot": 1, "type": "COMBO"}),
    );
    let mut ui = subgraph_ui(scale_instance(json!([3.0]), json!({})));
    ui["definitions"]["subgraphs"] = json!([definition]);
    let conversion = convert(&ui);
    assert_eq!(inputs(&conversion, "19:1")["upscale_method"], "bicubic");
    assert_eq!(inputs(&conversion, "19:1")["scale_by"], 3.0);
    assert_eq!(codes(&conversion), ["primitive_link_mismatch"]);
}

// V3 dynamic inputs, against the hand-written 0.26-shaped definitions.

fn convert_v3(ui: &Value) -> Conversion {
    ui_to_api(ui, crate::testing::v3_object_info(), &ConvertOptions::default())
}

/// An EmptyImage resized by a ResizeImageMaskNode with these widget values, then previewed, as
/// frontend 1.45.19 saves it: the nested widgets follow their combo, each with its input slot.
fn resize_ui(nested: &[(&str, &str)], values: Value) -> Value {
    let mut slots = vec![
        input("input", "IMAGE,MASK", Some(1)),
        widget_input("resize_type", "COMBO", None),
    ];
    for (name, type_name) in nested {
        slots.push(widget_input(name, type_name, None));
    }
    slots.push(widget_input("scale_method", "COMBO", None));
    json!({
        "version": 0.4,
        "nodes": [
            {"id": 1, "type": "EmptyImage", "mode": 0, "inputs": [], "outputs": [output("IMAGE", "IMAGE", &[1])],
             "widgets_values": [8, 8]},
            {"id": 2, "type": "ResizeImageMaskNode", "mode": 0, "inputs": slots,
             "outputs": [output("resized", "IMAGE", &[2])], "widgets_values": values},
            {"id": 3, "type": "PreviewImage", "mode": 0, "inputs": [input("images", "IMAGE", Some(2))], "outputs": []}
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]]
    })
}

#[test]
fn dynamic_combo_widgets_follow_the_selected_option() {
    let ui = resize_ui(
        &[("resize_type.multiplier", "FLOAT")],
        json!(["scale by multiplier", 0.5, "nearest-exact"]),
    );
    let conversion = convert_v3(&ui);
    assert_eq!(
        inputs(&conversion, "2"),
        json!({"input": ["1", 0], "resize_type": "scale by multiplier",
               "resize_type.multiplier": 0.5, "scale_method": "nearest-exact"}),
        "{:#?}",
        conversion.diagnostics
    );
    assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
}

#[test]
fn an_option_with_several_widgets_takes_the_saved_slot_order() {
    // The server lists width, height, crop; the parsed definition keeps them by name, and the
    // saved slots restore the frontend's order.
    let ui = resize_ui(
        &[
            ("resize_type.width", "INT"),
            ("resize_type.height", "INT"),
            ("resize_type.crop", "COMBO"),
        ],
        json!(["scale dimensions", 640, 360, "disabled", "bilinear"]),
    );
    let conversion = convert_v3(&ui);
    assert_eq!(
        inputs(&conversion, "2"),
        json!({"input": ["1", 0], "resize_type": "scale dimensions", "resize_type.width": 640,
               "resize_type.height": 360, "resize_type.crop": "disabled", "scale_method": "bilinear"}),
        "{:#?}",
        conversion.diagnostics
    );
    assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
}

#[test]
fn autogrow_and_match_type_slots_convert_by_name() {
    let ui = json!({
        "version": 0.4,
        "nodes": [
            {"id": 1, "type": "EmptyImage", "mode": 0, "inputs": [], "outputs": [output("IMAGE", "IMAGE", &[1, 3])],
             "widgets_values": [8, 8]},
            {"id": 2, "type": "EmptyImage", "mode": 0, "inputs": [], "outputs": [output("IMAGE", "IMAGE", &[2, 4])],
             "widgets_values": [16, 16]},
            {"id": 3, "type": "BatchImagesNode", "mode": 0,
             "inputs": [input("images.image0", "IMAGE", Some(1)), input("images.image1", "IMAGE", Some(2)),
                        input("images.image2", "IMAGE", None)],
             "outputs": [output("IMAGE", "IMAGE", &[5])], "widgets_values": []},
            {"id": 4, "type": "ComfySwitchNode", "mode": 0,
             "inputs": [input("on_false", "IMAGE", Some(3)), input("on_true", "IMAGE", Some(4)),
                        widget_input("switch", "BOOLEAN", None)],
             "outputs": [output("output", "IMAGE", &[6])], "widgets_values": [true]},
            {"id": 5, "type": "PreviewImage", "mode": 0, "inputs": [input("images", "IMAGE", Some(5))], "outputs": []},
            {"id": 6, "type": "PreviewImage", "mode": 0, "inputs": [input("images", "IMAGE", Some(6))], "outputs": []}
        ],
        "links": [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "IMAGE"], [3, 1, 0, 4, 0, "IMAGE"],
                  [4, 2, 0, 4, 1, "IMAGE"], [5, 3, 0, 5, 0, "IMAGE"], [6, 4, 0, 6, 0, "IMAGE"]]
    });
    let conversion = convert_v3(&ui);
    assert!(conversion.diagnostics.is_empty(), "{:#?}", conversion.diagnostics);
    assert_eq!(
        inputs(&conversion, "3"),
        json!({"images.image0": ["1", 0], "images.image1": ["2", 0]})
    );
    assert_eq!(
        inputs(&conversion, "4"),
        json!({"on_false": ["1", 0], "on_true": ["2", 0], "switch": true})
    );
    let report = validate(
        &conversion.prompt,
        crate::testing::v3_object_info(),
        &ValidationOptions::default(),
    );
    assert_eq!(report.outcome(), Outcome::Valid, "{report:#?}");
}

#[test]
fn a_fresh_dynamic_combo_shows_its_first_option() {
    let definition = crate::testing::v3_object_info()
        .node("ResizeImageMaskNode")
        .unwrap();
    let layout = widgets::frontend_layout(definition);
    let names: Vec<&str> = layout.widgets.iter().map(|widget| widget.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "resize_type",
            "resize_type.crop",
            "resize_type.height",
            "resize_type.width",
            "scale_method"
        ]
    );
    assert_eq!(layout.widgets[0].default, Some(json!("scale dimensions")));
    // A value that is no option key shows no option widgets.
    let unknown = widgets::frontend_layout_for_values(definition, &[json!("nope"), json!("area")], &[]);
    let names: Vec<&str> = unknown
        .widgets
        .iter()
        .map(|widget| widget.name.as_str())
        .collect();
    assert_eq!(names, ["resize_type", "scale_method"]);
    let slots: Vec<&str> = layout.slots.iter().map(|slot| slot.name.as_str()).collect();
    assert_eq!(slots[0], "input");
    assert_eq!(layout.slots[0].type_name, "IMAGE,MASK");
}

#[test]
fn without_saved_slots_the_option_order_comes_from_the_definition_text() {
    // Templates often save no slots at all; then only `from_json_text` knows the server's order.
    let text = serde_json::to_string(&crate::testing::v3_object_info_json()).unwrap();
    // serde_json writes keys sorted; put the server's order back into the option's inputs.
    let text = text.replace(
        r#""crop":["COMBO",{"default":"center","multiselect":false,"options":["disabled","center"]}],"height":["INT",{"default":512,"max":16384,"min":0,"step":1}],"width":["INT",{"default":512,"max":16384,"min":0,"step":1}]"#,
        r#""width":["INT",{"default":512,"max":16384,"min":0,"step":1}],"height":["INT",{"default":512,"max":16384,"min":0,"step":1}],"crop":["COMBO",{"default":"center","multiselect":false,"options":["disabled","center"]}]"#,
    );
    let info = ObjectInfo::from_json_text(&text).unwrap();
    let mut ui = resize_ui(&[], json!(["scale dimensions", 640, 360, "disabled", "bilinear"]));
    node_mut(&mut ui, 2)["inputs"] = json!([input("input", "IMAGE,MASK", Some(1))]);
    let conversion = ui_to_api(&ui, &info, &ConvertOptions::default());
    assert_eq!(
        inputs(&conversion, "2"),
        json!({"input": ["1", 0], "resize_type": "scale dimensions", "resize_type.width": 640,
               "resize_type.height": 360, "resize_type.crop": "disabled", "scale_method": "bilinear"}),
        "{:#?}",
        conversion.diagnostics
    );
}

// ----------------------------------------------------------------------------- frontend 1.45

fn convert_1_45(ui: &Value) -> Conversion {
    convert_1_45_with(ui, object_info())
}

fn convert_1_45_with(ui: &Value, info: &ObjectInfo) -> Conversion {
    ui_to_api_for(ui, info, &ConvertOptions::default(), FrontendGeneration::V1_45)
}

#[test]
fn frontend_generations_come_from_versions() {
    assert_eq!(FrontendGeneration::default(), FrontendGeneration::V1_32);
    assert_eq!(
        FrontendGeneration::from_frontend_version("1.32.9"),
        Some(FrontendGeneration::V1_32)
    );
    assert_eq!(
        FrontendGeneration::from_frontend_version("v1.45.19"),
        Some(FrontendGeneration::V1_45)
    );
    assert_eq!(
        FrontendGeneration::from_frontend_version("1.33.0"),
        Some(FrontendGeneration::V1_45)
    );
    assert_eq!(
        FrontendGeneration::from_frontend_version("2.0"),
        Some(FrontendGeneration::V1_45)
    );
    assert_eq!(
        FrontendGeneration::from_frontend_version("1.9.18"),
        Some(FrontendGeneration::V1_32)
    );
    assert_eq!(FrontendGeneration::from_frontend_version("latest"), None);
    assert_eq!(
        FrontendGeneration::from_comfyui_version("0.3.75"),
        Some(FrontendGeneration::V1_32)
    );
    assert_eq!(
        FrontendGeneration::from_comfyui_version("0.26.0"),
        Some(FrontendGeneration::V1_45)
    );
    assert_eq!(FrontendGeneration::parse("1.45"), Some(FrontendGeneration::V1_45));
    assert_eq!(FrontendGeneration::V1_45.as_str(), "1.45");
    assert_eq!(FrontendGeneration::V1_45.reference_version(), "1.45.19");
}

#[test]
fn the_same_workflow_converts_alike_when_nothing_differs() {
    let ui = txt2img_ui();
    assert_eq!(convert_1_45(&ui).prompt, convert(&ui).prompt);
}

#[test]
fn frontend_1_45_leaves_out_muted_and_bypassed_root_subgraphs() {
    let mut instance = scale_instance(json!([3.0]), json!({}));
    instance["mode"] = json!(2);
    let conversion = convert_1_45(&subgraph_ui(instance));
    assert!(
        conversion.prompt.get("19:1").is_none(),
        "{:#?}",
        conversion.prompt
    );
    assert!(!codes(&conversion).contains(&"disabled_subgraph_expanded"));
    let mut instance = scale_instance(json!([3.0]), json!({}));
    instance["mode"] = json!(4);
    let conversion = convert_1_45(&subgraph_ui(instance));
    assert!(conversion.prompt.get("19:1").is_none());
    assert_eq!(inputs(&conversion, "20")["images"], json!(["10", 0]));
}

#[test]
fn frontend_1_45_ignores_the_instance_values_and_sends_the_inner_ones() {
    // 1.45's promoted widgets are views of the inner widget and are not serialized, so the
    // instance's saved value (3.0) is not loaded: the inner node's 2.0 is sent.
    let ui = subgraph_ui(scale_instance(
        json!([3.0]),
        json!({"proxyWidgets": [["-1", "scale_by"]]}),
    ));
    assert_eq!(inputs(&convert(&ui), "19:1")["scale_by"], 3.0);
    let conversion = convert_1_45(&ui);
    assert_eq!(inputs(&conversion, "19:1")["scale_by"], 2.0);
    let ignored = conversion
        .diagnostics
        .iter()
        .find(|diagnostic| diagnostic.code == "extra_widget_values")
        .unwrap();
    assert_eq!(ignored.node_id, "19");
    assert!(ignored.message.contains("scale_by = 3.0"), "{}", ignored.message);
    // The promoted widget is found by the link's id, not by its saved slot index.
    let conversion = convert_1_45(&subgraph_ui(scale_instance(json!([]), json!({}))));
    assert_eq!(inputs(&conversion, "19:1")["scale_by"], 2.0);
    assert!(
        !codes(&conversion).contains(&"widget_values_shifted"),
        "{:#?}",
        conversion.diagnostics
    );
}

#[test]
fn frontend_1_45_renumbers_inner_nodes_whose_ids_collide() {
    // Root node 1 and inner node 1 collide; last_node_id is 20, so the inner node becomes 21,
    // and its links follow.
    let mut ui = subgraph_ui(scale_instance(json!([]), json!({})));
    ui["version"] = json!(0.4);
    ui["last_node_id"] = json!(20);
    node_mut(&mut ui, 10)["id"] = json!(1);
    ui["links"][0] = json!([30, 1, 0, 19, 0, "IMAGE"]);
    let conversion = convert(&ui);
    assert!(conversion.prompt.get("19:1").is_some());
    let conversion = convert_1_45(&ui);
    assert!(
        conversion.prompt.get("19:1").is_none(),
        "{:#?}",
        conversion.prompt
    );
    assert_eq!(inputs(&conversion, "19:21")["image"], json!(["1", 0]));
    assert_eq!(inputs(&conversion, "20")["images"], json!(["19:21", 0]));
}

#[test]
fn ids_are_deduplicated_like_frontend_1_45() {
    let ui = json!({
        "version": 0.4, "last_node_id": 3,
        "nodes": [{"id": 1, "type": "sg-a"}, {"id": 2, "type": "sg-b", "properties": {"proxyWidgets": [["2", "seed"]]}}],
        "definitions": {"subgraphs": [
            {"id": "sg-a", "nodes": [{"id": 1}, {"id": 5}], "links": [{"id": 1, "origin_id": 1, "target_id": 5}]},
            {"id": "sg-b", "nodes": [{"id": 5}, {"id": 2}, {"id": "7"}], "widgets": [{"id": 2, "name": "seed"}],
             "links": [{"id": 2, "origin_id": 5, "target_id": 2}]}
        ]}
    });
    let renumbered = dedupe::deduplicate_subgraph_node_ids(&ui).unwrap();
    let ids = |definition: usize| -> Vec<Value> {
        renumbered["definitions"]["subgraphs"][definition]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|node| node["id"].clone())
            .collect()
    };
    // sg-a: 1 collides with the root's 1 and becomes 4 (after last_node_id 3); 5 is new.
    assert_eq!(ids(0), [json!(4), json!(5)]);
    assert_eq!(
        renumbered["definitions"]["subgraphs"][0]["links"][0]["origin_id"],
        4
    );
    // sg-b: 5 is taken by sg-a and becomes 6, 2 collides with the root and becomes 7 (the string
    // id "7" does not count), and its promoted widget and the instance's proxyWidgets follow.
    assert_eq!(ids(1), [json!(6), json!(7), json!("7")]);
    assert_eq!(
        renumbered["definitions"]["subgraphs"][1]["links"][0],
        json!({"id": 2, "origin_id": 6, "target_id": 7})
    );
    assert_eq!(renumbered["definitions"]["subgraphs"][1]["widgets"][0]["id"], 7);
    assert_eq!(
        renumbered["nodes"][1]["properties"]["proxyWidgets"],
        json!([["7", "seed"]])
    );
    // Nothing collides: no copy.
    assert!(dedupe::deduplicate_subgraph_node_ids(&txt2img_ui()).is_none());
}

#[test]
fn frontend_1_45_sends_no_preview_of_preview_any() {
    let ui = json!({
        "nodes": [
            {"id": 1, "type": "PrimitiveString", "mode": 0, "outputs": [output("STRING", "STRING", &[1])], "widgets_values": ["hi"]},
            {"id": 2, "type": "PreviewAny", "mode": 0, "inputs": [input("source", "*", Some(1))], "widgets_values": [false]}
        ],
        "links": [[1, 1, 0, 2, 0, "STRING"]]
    });
    assert_eq!(
        inputs(&convert(&ui), "2"),
        json!({"source": ["1", 0], "preview": ""})
    );
    assert_eq!(inputs(&convert_1_45(&ui), "2"), json!({"source": ["1", 0]}));
}

#[test]
fn frontend_1_45_keeps_the_type_of_multiline_text_values() {
    let ui =
        json!({"nodes": [{"id": 1, "type": "PrimitiveStringMultiline", "mode": 0, "widgets_values": [8]}]});
    assert_eq!(inputs(&convert(&ui), "1")["value"], "8");
    assert_eq!(inputs(&convert_1_45(&ui), "1")["value"], 8);
    let ui = json!({"nodes": [{"id": 1, "type": "PrimitiveStringMultiline", "mode": 0, "widgets_values": [null]}]});
    assert_eq!(inputs(&convert_1_45(&ui), "1")["value"], "");
}

#[test]
fn frontend_1_45_gives_combos_without_a_value_their_first_option() {
    let mut ui = txt2img_ui();
    node_mut(&mut ui, 3)["widgets_values"] = json!([1, "fixed", 20, 8.0, null, "normal", 1.0]);
    assert_eq!(inputs(&convert(&ui), "3")["sampler_name"], Value::Null);
    let first = match &object_info()
        .node("KSampler")
        .unwrap()
        .input("sampler_name")
        .unwrap()
        .kind
    {
        crate::object_info::InputKind::Combo(Some(choices)) => choices[0].clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(inputs(&convert_1_45(&ui), "3")["sampler_name"], first);
}

/// Definitions in the shapes ComfyUI 0.26 sends, for the widgets frontend 1.45 builds.
fn widgets_1_45_info() -> ObjectInfo {
    ObjectInfo::from_json(&json!({
        "CustomCombo": {"input": {"required": {"choice": ["COMBO", {"multiselect": false, "options": []}]}},
                        "output": ["COMBO", "INT"], "output_name": ["STRING", "INDEX"], "name": "CustomCombo"},
        "ImageCompare": {"input": {"required": {"compare_view": ["IMAGECOMPARE", {"socketless": true}]},
                                   "optional": {"image_a": ["IMAGE", {}], "image_b": ["IMAGE", {}]}},
                         "input_order": {"required": ["compare_view"], "optional": ["image_a", "image_b"]},
                         "output": [], "name": "ImageCompare", "output_node": true},
        "CurveEditor": {"input": {"required": {"curve": ["CURVE", {"default": {"points": [[0, 0], [1, 1]], "interpolation": "monotone_cubic"}, "socketless": true}]}},
                        "output": ["CURVE"], "output_name": ["CURVE"], "name": "CurveEditor"},
        "ImageCropV2": {"input": {"required": {"image": ["IMAGE", {}], "crop_region": ["BOUNDING_BOX", {"default": {"x": 0, "y": 0, "width": 512, "height": 512}, "socketless": true, "component": "ImageCrop"}]}},
                        "input_order": {"required": ["image", "crop_region"]},
                        "output": ["IMAGE"], "output_name": ["IMAGE"], "name": "ImageCropV2"},
        "Preview3D": {"input": {"required": {"model_file": ["STRING,FILE_3D_GLB", {"default": "", "widgetType": "STRING", "multiline": false}]}},
                      "output": [], "name": "Preview3D", "output_node": true},
        "LoadAudio": {"input": {"required": {"audio": [["voice.mp3", "demo/noisy bg.mp3"], {"audio_upload": true}]}},
                      "input_order": {"required": ["audio"]},
                      "output": ["AUDIO"], "output_name": ["AUDIO"], "name": "LoadAudio"},
        "SaveAudioAdvanced": {"input": {"required": {"audio": ["AUDIO", {}], "filename_prefix": ["STRING", {"default": "audio/ComfyUI"}]}},
                              "input_order": {"required": ["audio", "filename_prefix"]},
                              "output": [], "name": "SaveAudioAdvanced", "output_node": true},
        "LoadText": {"input": {"required": {}}, "output": ["STRING"], "output_name": ["STRING"], "name": "LoadText"}
    }))
}

#[test]
fn custom_combo_options_grow_as_frontend_1_45_loads_them() {
    let info = widgets_1_45_info();
    let ui = json!({"nodes": [{"id": 1, "type": "CustomCombo", "mode": 0,
                               "widgets_values": ["B", 0, "A", "B", "", "ignored"]}]});
    let conversion = convert_1_45_with(&ui, &info);
    // option3 is the empty last option: loading stops adding options there.
    assert_eq!(
        inputs(&conversion, "1"),
        json!({"choice": "B", "index": 1, "option1": "A", "option2": "B", "option3": ""})
    );
    let ui = json!({"nodes": [{"id": 1, "type": "CustomCombo", "mode": 0, "widgets_values": ["Z", 0, "A"]}]});
    assert_eq!(inputs(&convert_1_45_with(&ui, &info), "1")["index"], -1);
}

#[test]
fn frontend_1_45_widget_types() {
    let info = widgets_1_45_info();
    let ui = json!({
        "nodes": [
            {"id": 1, "type": "ImageCompare", "mode": 0, "widgets_values": []},
            {"id": 2, "type": "CurveEditor", "mode": 0, "widgets_values": [{"points": [[0, 0], [0.5, 0.7], [1, 1]], "interpolation": "linear"}]},
            {"id": 3, "type": "ImageCropV2", "mode": 0, "widgets_values": [{"x": 10, "y": 0, "width": 64, "height": 64}, 0, 0, 512, 512]},
            {"id": 4, "type": "LoadText", "mode": 0, "outputs": [output("STRING", "STRING", &[1])]},
            {"id": 5, "type": "Preview3D", "mode": 0,
             "inputs": [{"name": "model_file", "type": "STRING,FILE_3D_GLB", "widget": {"name": "model_file"}, "link": 1}],
             "widgets_values": ["", ""]}
        ],
        "links": [[1, 4, 0, 5, 0, "STRING"]]
    });
    let conversion = convert_1_45_with(&ui, &info);
    assert_eq!(
        inputs(&conversion, "1"),
        json!({"compare_view": {"__value__": ["", ""]}})
    );
    assert_eq!(
        inputs(&conversion, "2")["curve"],
        json!({"points": [[0, 0], [0.5, 0.7], [1, 1]], "interpolation": "linear"})
    );
    assert_eq!(
        inputs(&conversion, "3"),
        json!({"crop_region": {"x": 10, "y": 0, "width": 64, "height": 64}})
    );
    // widgetType: the socket type list is drawn as a STRING widget, and its slot keeps the link.
    assert_eq!(inputs(&conversion, "5")["model_file"], json!(["4", 0]));
}

#[test]
fn frontend_1_45_points_audio_players_at_the_loaded_file() {
    let info = widgets_1_45_info();
    let ui = json!({
        "nodes": [
            {"id": 1, "type": "LoadAudio", "mode": 0, "outputs": [output("AUDIO", "AUDIO", &[1])],
             "widgets_values": ["demo/noisy bg.mp3", null, null]},
            {"id": 2, "type": "SaveAudioAdvanced", "mode": 0, "inputs": [input("audio", "AUDIO", Some(1))],
             "widgets_values": ["audio/ComfyUI"]}
        ],
        "links": [[1, 1, 0, 2, 0, "AUDIO"]]
    });
    let conversion = convert_1_45_with(&ui, &info);
    assert_eq!(
        inputs(&conversion, "1")["audioUI"],
        "/api/view?filename=noisy%20bg.mp3&type=input&subfolder=demo&rand=0.5"
    );
    assert_eq!(inputs(&conversion, "1")["audio"], "demo/noisy bg.mp3");
    assert_eq!(inputs(&conversion, "2")["audioUI"], "");
    assert_eq!(inputs(&conversion, "2")["filename_prefix"], "audio/ComfyUI");
}

#[test]
fn a_dynamic_combo_drops_saved_slots_of_options_it_does_not_show() {
    let info = crate::testing::v3_object_info();
    let ui = json!({
        "nodes": [
            {"id": 1, "type": "EmptyImage", "mode": 0, "outputs": [output("IMAGE", "IMAGE", &[1, 2])], "widgets_values": [64, 64]},
            {"id": 2, "type": "ResizeImageMaskNode", "mode": 0,
             "inputs": [input("input", "IMAGE,MASK", Some(1)), input("resize_type.match", "IMAGE,MASK", Some(2))],
             "outputs": [output("resized", "IMAGE", &[])],
             "widgets_values": ["scale by multiplier", 0.5, "nearest-exact"]}
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 2, 1, "IMAGE,MASK"]]
    });
    let conversion = convert_1_45_with(&ui, info);
    let sent = inputs(&conversion, "2");
    assert_eq!(sent["resize_type"], "scale by multiplier");
    assert_eq!(sent["resize_type.multiplier"], 0.5);
    assert!(sent.get("resize_type.match").is_none(), "{sent:#}");
    let dropped = conversion
        .diagnostics
        .iter()
        .find(|diagnostic| diagnostic.input.as_deref() == Some("resize_type.match"))
        .unwrap();
    assert_eq!(dropped.code, "input_disconnected");
}

#[test]
fn subgraphs_are_configured_in_dependency_order_by_frontend_1_45() {
    let outer = json!({
        "id": "sg-outer", "name": "Outer",
        "inputs": [{"id": "x", "name": "image", "type": "IMAGE", "linkIds": [1]}],
        "outputs": [{"id": "y", "name": "IMAGE", "type": "IMAGE", "linkIds": [2]}],
        "nodes": [{"id": 5, "type": "sg-scale", "mode": 0, "inputs": [input("image", "IMAGE", Some(1))],
                   "outputs": [output("IMAGE", "IMAGE", &[2])]}],
        "links": [
            {"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 5, "target_slot": 0, "type": "IMAGE"},
            {"id": 2, "origin_id": 5, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}
        ]
    });
    // The outer definition comes first in the file, but uses the inner one.
    let mut ui = subgraph_ui(
        json!({"id": 19, "type": "sg-outer", "mode": 0, "inputs": [input("image", "IMAGE", Some(30))],
                                     "outputs": [output("IMAGE", "IMAGE", &[31])]}),
    );
    ui["definitions"]["subgraphs"] = json!([outer, scale_subgraph("sg-scale")]);
    let conversion = convert_1_45(&ui);
    assert_eq!(inputs(&conversion, "19:5:1")["image"], json!(["10", 0]));
    assert_eq!(inputs(&conversion, "19:5:1")["scale_by"], 2.0);
    assert_eq!(inputs(&conversion, "20")["images"], json!(["19:5:1", 0]));
}
