//! Backend enhancement through MCP against the real rig: `upscale_image` of an image sent as
//! base64 (staged in the input folder) and of a library output, with the rig's tiny upscale
//! model, by resampling in progressive passes, and refined by img2img over tiled VAE nodes;
//! `generate_image` with a ControlNet whose control image core Canny makes from a plain picture;
//! `detect_objects` with the rig's random RT-DETR (0.26), `face_restore` of given regions, a z-axis grid;
//! and the precise refusals (a preprocessor pack the rig lacks, an unknown model, bad ranges).
//! Needs `COMFYUI_MCP_TEST_URL`.

mod common;

use base64::Engine as _;
use common::{Harness, all_toolsets, connect_with, is_error, json_of, noise_png, text_of};
use serde_json::{Value, json};

async fn harness() -> Harness {
    connect_with(all_toolsets("enhance", &|_| None)).await
}

/// A noise PNG of `side` with a per-run first byte, so ComfyUI cannot answer from its cache.
fn picture(side: u32) -> String {
    let mut png = noise_png(side);
    let image = image::load_from_memory(&png).expect("a PNG").to_rgb8();
    let mut image = image;
    image.put_pixel(
        0,
        0,
        image::Rgb([(uuid::Uuid::new_v4().as_u128() % 256) as u8, 0, 0]),
    );
    png.clear();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("a PNG");
    base64::engine::general_purpose::STANDARD.encode(png)
}

/// The size of a finished job's first output, read from get_output's preview.
async fn output_size(harness: &Harness, result: &rmcp::model::CallToolResult) -> (u64, u64, Value) {
    assert!(!is_error(result), "{}", text_of(result));
    let summary = json_of(result);
    assert_eq!(summary["status"], "succeeded", "{summary:#}");
    let (_, fetched) = harness.get_output(&summary["outputs"][0], json!({})).await;
    let preview = &fetched["preview"];
    assert_eq!(preview["downscaled"], false, "{fetched:#}");
    (
        preview["width"].as_u64().expect("a width"),
        preview["height"].as_u64().expect("a height"),
        summary,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_upscaled_by_model_by_passes_and_with_refinement() {
    let harness = harness().await;
    let by_model = harness
        .call(
            "upscale_image",
            json!({"image": {"data_base64": picture(48)}, "scale": 2}),
        )
        .await;
    let (width, height, summary) = output_size(&harness, &by_model).await;
    assert_eq!((width, height), (96, 96), "{summary:#}");
    assert!(
        summary["parameters"]["model"]
            .as_str()
            .is_some_and(|model| model.starts_with("tiny-compact-x2")),
        "{summary:#}"
    );

    // The result, taken back from the library, upscaled x4 in two resampling passes.
    // The job's recorder indexes its output as the job ends, a moment after the answer.
    let mut output_id = Value::Null;
    for _ in 0..50 {
        let listed = harness
            .call("search_outputs", json!({"job_id": summary["job_id"]}))
            .await;
        output_id = json_of(&listed)["outputs"][0]["id"].clone();
        if output_id.is_i64() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(output_id.is_i64(), "{summary:#}");
    let progressive = harness
        .call(
            "upscale_image",
            json!({"image": {"output_id": output_id}, "scale": 4, "passes": 2, "method": "pixel", "filter": "bicubic"}),
        )
        .await;
    let (width, height, summary) = output_size(&harness, &progressive).await;
    assert_eq!((width, height), (384, 384), "{summary:#}");
    assert_eq!(
        summary["parameters"]["pass_sizes"],
        json!([[192, 192], [384, 384]])
    );

    // Refined: each pass repainted by the rig's tiny checkpoint through tiled VAE nodes.
    let refined = harness
        .call(
            "upscale_image",
            json!({"image": {"data_base64": picture(40)}, "scale": 1.5, "method": "pixel",
                   "refine": {"prompt": "sharp details", "denoise": 0.3, "steps": 2, "seed": 5}}),
        )
        .await;
    let (width, height, summary) = output_size(&harness, &refined).await;
    assert_eq!(
        (width, height),
        (64, 64),
        "60 rounded up to a multiple of 8: {summary:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controlnet_image_is_made_by_canny_from_a_plain_picture() {
    let harness = harness().await;
    let uploaded = harness
        .call(
            "upload_image",
            json!({"data_base64": picture(64), "filename": "canny-source.png"}),
        )
        .await;
    assert!(!is_error(&uploaded), "{}", text_of(&uploaded));
    let name = json_of(&uploaded)["name"].clone();
    let models = harness.call("list_models", json!({"folder": "controlnet"})).await;
    let controlnet = json_of(&models)["files"][0]["name"].clone();
    assert!(controlnet.is_string(), "{}", text_of(&models));
    let generated = harness
        .call(
            "generate_image",
            json!({"prompt": common::unique_prompt("edges"), "width": 64, "height": 64, "steps": 2,
                   "controlnets": [{"model": controlnet, "image": name, "preprocessor": "canny",
                                    "preprocessor_settings": {"low_threshold": 0.2}}]}),
        )
        .await;
    assert!(!is_error(&generated), "{}", text_of(&generated));
    assert_eq!(
        json_of(&generated)["status"],
        "succeeded",
        "{}",
        text_of(&generated)
    );

    for (preprocessor, settings, expected) in [
        ("depth", json!({}), "comfyui_controlnet_aux"),
        ("sketchy", json!({}), "unknown preprocessor"),
        ("canny", json!({"radius": 3}), "has no setting \"radius\""),
    ] {
        let refused = harness
            .call(
                "generate_image",
                json!({"prompt": "x", "width": 64, "height": 64, "steps": 1,
                       "controlnets": [{"model": controlnet, "image": name, "preprocessor": preprocessor,
                                        "preprocessor_settings": settings}]}),
            )
            .await;
        assert!(is_error(&refused), "{preprocessor}: {}", text_of(&refused));
        assert!(
            text_of(&refused).contains(expected),
            "{preprocessor}: {}",
            text_of(&refused)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upscales_refuse_what_cannot_run_precisely() {
    let harness = harness().await;
    let image = json!({"data_base64": picture(16)});
    for (arguments, expected) in [
        (
            json!({"image": image, "model": "4x-nothing.pth"}),
            "not in models/upscale_models",
        ),
        (json!({"image": image, "scale": 20}), "scale must be 1 to 8"),
        (json!({"image": image, "passes": 9}), "passes must be 1 to 4"),
        (
            json!({"image": image, "method": "magic"}),
            "neither model nor pixel",
        ),
        (json!({"image": image, "filter": "sinc"}), "is none of lanczos"),
        (
            json!({"image": image, "refine": {"tile_size": 100}}),
            "multiple of 64",
        ),
    ] {
        let refused = harness.call("upscale_image", arguments.clone()).await;
        assert!(is_error(&refused), "{arguments}: {}", text_of(&refused));
        assert!(
            text_of(&refused).contains(expected),
            "{arguments}: {}",
            text_of(&refused)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_sweeps_two_parameters_into_a_labelled_sheet_and_tags_its_cells() {
    let harness = harness().await;
    let prompt = common::unique_prompt("a red fox");
    let grid = harness
        .call(
            "generate_grid",
            json!({"prompt": prompt, "width": 64, "height": 64, "steps": 2,
                   "x": {"parameter": "seed", "values": [1, 2, 3]},
                   "y": {"parameter": "prompt_replace", "values": ["red", "grey"]}}),
        )
        .await;
    assert!(!is_error(&grid), "{}", text_of(&grid));
    let report = json_of(&grid);
    assert_eq!(
        (report["columns"].as_u64(), report["rows"].as_u64()),
        (Some(3), Some(2)),
        "{report:#}"
    );
    let cells = report["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 6);
    assert!(
        cells.iter().all(|cell| cell["status"] == "succeeded"),
        "{report:#}"
    );
    assert_eq!(cells[5]["settings"], json!({"seed": 3, "prompt_replace": "grey"}));
    assert_eq!(report["tagged"], 6, "{report:#}");
    // The sheet: 3 x 64 cells with gaps and a label column, kept in the library.
    let sheet = image::load_from_memory(
        &base64::engine::general_purpose::STANDARD
            .decode(common::inline_image(&grid, "image/png"))
            .expect("base64"),
    )
    .expect("the sheet");
    assert!(
        sheet.width() > 3 * 64 && sheet.height() > 2 * 64,
        "{} x {}",
        sheet.width(),
        sheet.height()
    );
    assert!(report["sheet"]["kept"]["output_id"].is_i64(), "{report:#}");

    // Every cell's output carries the grid's tag and its own values.
    let tag = report["tag"].as_str().expect("a tag").to_owned();
    let tagged = harness.call("search_outputs", json!({"tag": tag})).await;
    assert_eq!(
        json_of(&tagged)["outputs"].as_array().map(Vec::len),
        Some(6),
        "{}",
        text_of(&tagged)
    );
    let one = harness
        .call("search_outputs", json!({"tag": "prompt_replace=grey"}))
        .await;
    assert!(
        json_of(&one)["outputs"]
            .as_array()
            .is_some_and(|outputs| outputs.len() >= 3),
        "{}",
        text_of(&one)
    );

    let refused = harness
        .call(
            "generate_grid",
            json!({"prompt": "x", "x": {"parameter": "colour", "values": [1]}}),
        )
        .await;
    assert!(
        text_of(&refused).contains("cannot sweep"),
        "{}",
        text_of(&refused)
    );
}

/// Background removal and SAM 3 segmentation are core nodes of ComfyUI 0.26; the rig has neither
/// model. Both rigs answer precisely, and nothing is queued: 0.3.75 names the node class and says
/// to update, 0.26 names the model file, its folder and the URL ComfyUI's own template gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_outs_name_the_node_or_the_model_they_need() {
    let harness = harness().await;
    let client =
        comfy_api::ComfyClient::new(&test_support::comfyui_url(), Default::default()).expect("client");
    let version = client
        .system_stats()
        .await
        .expect("system_stats")
        .system
        .comfyui_version;
    let current = test_support::is_current_comfyui(&version);
    let image = json!({"data_base64": picture(32)});
    let background = harness.call("remove_background", json!({"image": image})).await;
    let segment = harness
        .call(
            "segment_image",
            json!({"image": image, "prompt": "the red square"}),
        )
        .await;
    for (result, node, file, folder) in [
        (
            &background,
            "RemoveBackground",
            "birefnet.safetensors",
            "models/background_removal",
        ),
        (
            &segment,
            "SAM3_Detect",
            "sam3.1_multiplex_fp16.safetensors",
            "models/checkpoints",
        ),
    ] {
        assert!(is_error(result), "{}", text_of(result));
        let text = text_of(result);
        if current {
            assert!(
                text.contains(file)
                    && text.contains(folder)
                    && text.contains("https://huggingface.co/Comfy-Org/"),
                "{text}"
            );
        } else {
            assert!(
                text.contains(&format!("node class {node}")) && text.contains("update ComfyUI"),
                "{text}"
            );
        }
    }
    let wrong = harness
        .call(
            "segment_image",
            json!({"image": image, "prompt": "x", "threshold": 2.0}),
        )
        .await;
    assert!(is_error(&wrong), "{}", text_of(&wrong));
    let jobs = json_of(&harness.call("list_jobs", json!({})).await);
    assert!(
        jobs["jobs"].as_array().is_none_or(Vec::is_empty),
        "nothing was queued: {jobs:#}"
    );
}

/// `style_transfer` restyles two images of different sizes with a built-in style in one batch:
/// both jobs succeed, the sheet is kept and both outputs are tagged; an unknown style is refused before anything is staged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn style_transfer_restyles_several_images_in_one_batch() {
    let harness = harness().await;
    let styled = harness
        .call(
            "style_transfer",
            json!({"images": [{"data_base64": picture(64)}, {"data_base64": picture(48)}], "style": "watercolor",
                   "prompt": "a house", "steps": 2, "checkpoint": "tiny-sd15-micro.ckpt"}),
        )
        .await;
    assert!(!is_error(&styled), "{}", text_of(&styled));
    let report = json_of(&styled);
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2, "{report:#}");
    assert!(
        cells.iter().all(|cell| cell["status"] == "succeeded"),
        "{report:#}"
    );
    assert_eq!(report["tagged"], 2, "{report:#}");
    let unknown = harness
        .call(
            "style_transfer",
            json!({"images": [{"data_base64": picture(16)}], "style": "no-such-style"}),
        )
        .await;
    assert!(
        is_error(&unknown) && text_of(&unknown).contains("no-such-style"),
        "{}",
        text_of(&unknown)
    );
}

/// The rig's ComfyUI version, and whether it is a current one (0.26 on).
async fn rig_is_current() -> bool {
    let client =
        comfy_api::ComfyClient::new(&test_support::comfyui_url(), Default::default()).expect("client");
    let version = client
        .system_stats()
        .await
        .expect("system_stats")
        .system
        .comfyui_version;
    test_support::is_current_comfyui(&version)
}

/// `detect_objects` with RT-DETR: on 0.26 the rig's random-weight RT-DETR (its own install's
/// models) runs through UNETLoader, RTDETR_detect and DrawBBoxes for real, so the boxes are
/// noise but real: at threshold 0 every box scores, each lies inside the image, is labelled with
/// a COCO class, and the drawn image has the source's size. SAM 3 by text names its model; 0.3.75
/// names the node class to update for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_found_as_boxes_and_drawn() {
    let harness = harness().await;
    let current = rig_is_current().await;
    let image = json!({"data_base64": picture(48)});
    let found = harness
        .call(
            "detect_objects",
            json!({"image": image, "threshold": 0.0, "max_detections": 5}),
        )
        .await;
    if !current {
        let text = text_of(&found);
        assert!(
            is_error(&found) && text.contains("node class RTDETR_detect") && text.contains("update ComfyUI"),
            "{text}"
        );
        return;
    }
    let (width, height, summary) = output_size(&harness, &found).await;
    assert_eq!((width, height), (48, 48), "{summary:#}");
    let detections = summary["detections"].as_array().expect("detections");
    assert_eq!(summary["count"], detections.len());
    assert!(!detections.is_empty() && detections.len() <= 5, "{summary:#}");
    let scores: Vec<f64> = detections
        .iter()
        .map(|box_| box_["score"].as_f64().expect("a score"))
        .collect();
    assert!(
        scores.windows(2).all(|pair| pair[0] >= pair[1]),
        "best first: {scores:?}"
    );
    for found in detections {
        let (x, y) = (found["x"].as_f64().unwrap(), found["y"].as_f64().unwrap());
        let (w, h) = (
            found["width"].as_f64().unwrap(),
            found["height"].as_f64().unwrap(),
        );
        assert!(x >= 0.0 && y >= 0.0 && w >= 1.0 && h >= 1.0, "{found}");
        assert!(x + w <= 48.0 && y + h <= 48.0, "inside the image: {found}");
        assert!(found["label"].is_string(), "{found}");
    }
    // The boxes are also in the job's text outputs (PreviewAny), for get_job later.
    assert!(summary["texts"][0]["text"].is_string(), "{summary:#}");

    let person = harness
        .call(
            "detect_objects",
            json!({"image": image, "threshold": 0.0, "class_name": "person", "max_detections": 3}),
        )
        .await;
    let summary = json_of(&person);
    assert_eq!(summary["status"], "succeeded", "{summary:#}");
    let detections = summary["detections"].as_array().expect("detections");
    assert!(
        detections.iter().all(|found| found["label"] == "person"),
        "{summary:#}"
    );

    for (arguments, expected) in [
        (
            json!({"image": image, "class_name": "unicorn"}),
            "is not one RT-DETR knows",
        ),
        (
            json!({"image": image, "model": "nope.safetensors"}),
            "is not in models/diffusion_models",
        ),
        (
            json!({"image": image, "find": "a face"}),
            "sam3.1_multiplex_fp16.safetensors",
        ),
        (
            json!({"image": image, "find": "a face", "class_name": "person"}),
            "class_name and max_detections are RT-DETR's",
        ),
        (
            json!({"image": image, "max_detections": 0}),
            "max_detections must be 1 to 300",
        ),
    ] {
        let refused = harness.call("detect_objects", arguments).await;
        assert!(
            is_error(&refused) && text_of(&refused).contains(expected),
            "{expected}: {}",
            text_of(&refused)
        );
    }
}

/// `face_restore` with the regions given runs on both rigs with the tiny checkpoint: each region,
/// grown by its padding, is repainted at the detail size and pasted back, so the result keeps the
/// source's size. Without regions SAM 3 must find the faces: its model (0.26) or node (0.3.75)
/// is named. Regions outside the image are refused before anything is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faces_are_restored_in_the_regions_given() {
    let harness = harness().await;
    let current = rig_is_current().await;
    let image = json!({"data_base64": picture(64)});
    let restored = harness
        .call(
            "face_restore",
            json!({"image": image, "steps": 2, "detail_size": 256, "padding": 0.25,
                   "regions": [{"x": 8, "y": 8, "width": 24, "height": 24},
                               {"x": 40, "y": 36, "width": 20, "height": 20}]}),
        )
        .await;
    let (width, height, summary) = output_size(&harness, &restored).await;
    assert_eq!((width, height), (64, 64), "{summary:#}");
    assert_eq!(
        summary["parameters"]["regions"],
        json!([{"x": 2, "y": 2, "width": 36, "height": 36},
               {"x": 35, "y": 31, "width": 29, "height": 30}]),
        "{summary:#}"
    );

    let unfound = harness.call("face_restore", json!({"image": image})).await;
    let text = text_of(&unfound);
    assert!(is_error(&unfound), "{text}");
    if current {
        assert!(text.contains("sam3.1_multiplex_fp16.safetensors"), "{text}");
    } else {
        assert!(text.contains("node class SAM3_Detect"), "{text}");
    }
    let outside = harness
        .call(
            "face_restore",
            json!({"image": image, "regions": [{"x": 64, "y": 0, "width": 16, "height": 16}]}),
        )
        .await;
    assert!(
        text_of(&outside).contains("inside the 64 x 64 image"),
        "{}",
        text_of(&outside)
    );
}

/// A z axis adds a block of rows per value: 2 seeds x 1 cfg x 2 step counts make 4 cells in 2
/// rows, each row labelled with both of its values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_z_axis_adds_a_block_of_rows_per_value() {
    let harness = harness().await;
    let grid = harness
        .call(
            "generate_grid",
            json!({"prompt": common::unique_prompt("a lighthouse"), "width": 64, "height": 64,
                   "x": {"parameter": "seed", "values": [1, 2]},
                   "y": {"parameter": "cfg", "values": [4]},
                   "z": {"parameter": "steps", "values": [1, 2]}}),
        )
        .await;
    assert!(!is_error(&grid), "{}", text_of(&grid));
    let report = json_of(&grid);
    assert_eq!(
        (report["columns"].as_u64(), report["rows"].as_u64()),
        (Some(2), Some(2))
    );
    let cells = report["cells"].as_array().expect("cells");
    assert!(
        cells.iter().all(|cell| cell["status"] == "succeeded"),
        "{report:#}"
    );
    assert_eq!(cells[3]["settings"], json!({"seed": 2, "cfg": 4, "steps": 2}));
}
