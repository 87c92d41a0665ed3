//! The native pixel tools (`edit` and `analysis` toolsets) through MCP against the real rig:
//! each result is computed here, kept in ComfyUI's input folder and the outputs library, taken
//! back by `output_id` by the next tool, and loaded by a real `LoadImage` / `LoadImageMask` run.
//! Needs `COMFYUI_MCP_TEST_URL`.

mod common;

use base64::Engine as _;
use common::{Harness, all_toolsets, connect_with, inline_image, is_error, json_of, text_of};
use serde_json::{Value, json};

async fn harness() -> Harness {
    connect_with(all_toolsets("imaging", &|_| None)).await
}

/// A 96 x 64 PNG: red on the left, blue on the right, a transparent 16 x 16 square at (8, 8),
/// with a per-run shade so no earlier run left the same file.
fn test_png(shade: u8) -> String {
    let image = image::RgbaImage::from_fn(96, 64, |column, row| {
        if (8..24).contains(&column) && (8..24).contains(&row) {
            image::Rgba([0, 0, 0, 0])
        } else if column < 48 {
            image::Rgba([230, 20, shade, 255])
        } else {
            image::Rgba([20, 40, 220, 255])
        }
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(image)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("a PNG");
    base64::engine::general_purpose::STANDARD.encode(png)
}

fn decoded(result: &rmcp::model::CallToolResult) -> image::DynamicImage {
    let data = inline_image(result, "image/png");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64");
    image::load_from_memory(&bytes).expect("a PNG preview")
}

fn kept(result: &rmcp::model::CallToolResult) -> Value {
    assert!(!is_error(result), "{}", text_of(result));
    let summary = json_of(result);
    let kept = summary["kept"].clone();
    assert_eq!(kept["type"], "input", "{summary:#}");
    assert!(
        kept["node_value"]
            .as_str()
            .is_some_and(|value| value.starts_with("comfyui-mcp/")),
        "{summary:#}"
    );
    assert!(kept["output_id"].as_i64().is_some(), "{summary:#}");
    kept
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pixel_tools_chain_through_the_library_and_comfyui_loads_their_results() {
    let harness = harness().await;
    let shade = (uuid::Uuid::new_v4().as_u128() % 100) as u8;
    let source = json!({"data_base64": test_png(shade)});

    // A mask of the red half minus the transparent square, grown by 2 pixels.
    let masked = harness
        .call(
            "make_mask",
            json!({
                "image": source,
                "parts": [
                    {"shape": "color", "color": "#e61400", "tolerance": 0.4},
                    {"shape": "alpha", "combine": "subtract"}
                ],
                "grow": 2
            }),
        )
        .await;
    let mask = kept(&masked);
    let fraction = json_of(&masked)["selected_fraction"]
        .as_f64()
        .expect("a fraction");
    // 48 x 64 red minus 16 x 16, then 2 px more into the blue half and the square's edge.
    let exact = (48.0 * 64.0 - 256.0) / (96.0 * 64.0);
    assert!(
        fraction > exact && fraction < exact + 0.06,
        "{fraction} against {exact}"
    );
    let preview = decoded(&masked).to_luma8();
    assert_eq!(preview.dimensions(), (96, 64));
    assert_eq!(preview.get_pixel(30, 40).0, [255]);
    assert_eq!(preview.get_pixel(16, 16).0, [0]);
    assert_eq!(preview.get_pixel(80, 40).0, [0]);

    // The mask, taken back by output_id, limits a white layer to the red half.
    let blended = harness
        .call(
            "blend_images",
            json!({
                "base": source,
                "layer": {"data_base64": test_png(255 - shade)},
                "mode": "screen",
                "mask": {"output_id": mask["output_id"]}
            }),
        )
        .await;
    let blend = kept(&blended);
    let pixels = decoded(&blended).to_rgba8();
    assert_eq!(
        pixels.get_pixel(80, 40).0,
        [20, 40, 220, 255],
        "outside the mask the base shows"
    );

    // Colour correction of the blend (by output_id), measured by the analysis tool.
    let grey = harness
        .call(
            "color_correction",
            json!({"image": {"output_id": blend["output_id"]}, "saturation": 0.0, "auto_levels": 0.0}),
        )
        .await;
    let grey_kept = kept(&grey);
    assert_eq!(
        json_of(&grey)["correction"]["steps"],
        json!(["auto_levels", "saturation"])
    );
    let analysis = harness
        .call(
            "analyze_image_composition",
            json!({"image": {"output_id": grey_kept["output_id"]}, "palette_size": 3}),
        )
        .await;
    assert!(!is_error(&analysis), "{}", text_of(&analysis));
    let composition = json_of(&analysis);
    assert!(
        composition["color"]["colorfulness"].as_f64().unwrap() < 2.0,
        "{composition:#}"
    );
    assert_eq!(composition["orientation"], "landscape");
    assert!(
        analysis.structured_content.is_some(),
        "structured like its output schema"
    );

    // Pad for outpainting: the padded image and the border's mask, both real ComfyUI inputs.
    let padded = harness
        .call(
            "transform_image",
            json!({"image": source, "crop": {"x": 0, "y": 0, "width": 64, "height": 64},
                   "resize": {"width": 32}, "pad": {"left": 16, "right": 16}}),
        )
        .await;
    let padded_kept = kept(&padded);
    let summary = json_of(&padded);
    assert_eq!(
        (summary["width"].as_u64(), summary["height"].as_u64()),
        (Some(64), Some(32))
    );
    let border = summary["outpaint_mask"]["kept"].clone();
    assert!(border["node_value"].is_string(), "{summary:#}");
    let loaded = harness
        .call(
            "run_workflow",
            json!({"workflow": {
                "1": {"class_type": "LoadImage", "inputs": {"image": padded_kept["node_value"]}},
                "2": {"class_type": "LoadImageMask", "inputs": {"image": border["node_value"], "channel": "red"}},
                "3": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 0]}},
                "4": {"class_type": "ImageBlend", "inputs": {"image1": ["1", 0], "image2": ["3", 0], "blend_factor": 0.5, "blend_mode": "normal"}},
                "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "mcp-imaging/loaded"}}
            }}),
        )
        .await;
    assert!(!is_error(&loaded), "{}", text_of(&loaded));
    assert_eq!(json_of(&loaded)["status"], "succeeded", "{}", text_of(&loaded));

    // Compared with the original, the original itself is identical and the grey one is not.
    let compared = harness
        .call(
            "compare_images",
            json!({"reference": source, "images": [{"output_id": grey_kept["output_id"]}, source], "heatmap": true}),
        )
        .await;
    assert!(!is_error(&compared), "{}", text_of(&compared));
    let comparison = json_of(&compared);
    assert_eq!(comparison["results"][0]["verdict"], "identical", "{comparison:#}");
    assert_eq!(comparison["results"][0]["ssim"].as_f64(), Some(1.0));
    assert!(
        comparison["results"][1]["ssim"].as_f64().unwrap() < 0.99,
        "{comparison:#}"
    );
    assert!(
        comparison["heatmap"]["kept"]["output_id"].is_i64(),
        "{comparison:#}"
    );
    decoded(&compared);

    // Every result is in the library, found by what made it.
    let found = harness.call("search_outputs", json!({"text": "make_mask"})).await;
    assert!(
        text_of(&found).contains(&format!("\"id\": {}", mask["output_id"])),
        "{}",
        text_of(&found)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pixel_tools_refuse_bad_arguments_precisely() {
    let harness = harness().await;
    let source = json!({"data_base64": test_png(7)});
    let cases = [
        (
            "make_mask",
            json!({"image": source, "parts": [{"shape": "rectangle", "x": 0, "y": 0, "width": 4}]}),
            "part 1: a rectangle part needs height",
        ),
        (
            "make_mask",
            json!({"parts": [{"shape": "alpha"}], "width": 8, "height": 8}),
            "reads pixels",
        ),
        (
            "make_mask",
            json!({"image": {"data_base64": test_png(7), "output_id": 1}, "parts": [{"shape": "all"}]}),
            "exactly one of",
        ),
        (
            "blend_images",
            json!({"base": source, "layer": source, "opacity": 2.0}),
            "opacity must be between 0 and 1",
        ),
        ("color_correction", json!({"image": source}), "nothing to do"),
        (
            "transform_image",
            json!({"image": source, "crop": {"x": 90, "y": 0, "width": 20, "height": 10}}),
            "not inside the 96 x 64 image",
        ),
        (
            "transform_image",
            json!({"image": source, "resize": {"width": 100000}}),
            "over the limit",
        ),
        (
            "compare_images",
            json!({"reference": source, "images": [{"output_id": 987654321}]}),
            "987654321",
        ),
        (
            "analyze_image_composition",
            json!({"image": {"data_base64": "bm90IGFuIGltYWdl"}}),
            "does not decode as an image",
        ),
    ];
    for (tool, arguments, expected) in cases {
        let result = harness.call(tool, arguments.clone()).await;
        assert!(is_error(&result), "{tool} {arguments}: {}", text_of(&result));
        assert!(
            text_of(&result).contains(expected),
            "{tool}: {} lacks {expected:?}",
            text_of(&result)
        );
    }
}
