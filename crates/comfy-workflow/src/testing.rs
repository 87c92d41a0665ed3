//! Shared test data: the real `/object_info` of ComfyUI 0.3.75, a small txt2img prompt, and
//! hand-written definitions in the shapes ComfyUI 0.26 sends for V3 dynamic inputs.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::graph::ApiPrompt;
use crate::object_info::ObjectInfo;

/// The fixture parsed once for all tests.
pub(crate) fn object_info() -> &'static ObjectInfo {
    static INFO: OnceLock<ObjectInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let raw: Value = serde_json::from_str(include_str!("../tests/fixtures/object_info-0.3.75.json"))
            .expect("the fixture is valid JSON");
        ObjectInfo::from_json(&raw)
    })
}

/// The SD1.5 txt2img graph of ComfyUI's script examples, with models from the fixture.
pub(crate) fn txt2img_json() -> Value {
    json!({
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 156680208700286u64, "steps": 20, "cfg": 8.0, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "masterpiece best quality girl", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "bad hands", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}}
    })
}

pub(crate) fn txt2img() -> ApiPrompt {
    serde_json::from_value(txt2img_json()).expect("the txt2img prompt parses")
}

/// Minimal definitions, written for these tests, in the shapes ComfyUI 0.26's `/object_info` uses
/// for V3 dynamic inputs: a dynamic combo with nested inputs and a match-type input and output
/// (`ResizeImageMaskNode`), a numbered autogrow (`BatchImagesNode`), match-type switch inputs
/// (`ComfySwitchNode`), a listed autogrow nested in a dynamic combo (`ReferenceImageNode`), and an
/// autogrow of match types (`CreateList`); plus plain producers and consumers to link them.
pub(crate) fn v3_object_info_json() -> Value {
    let v3_combo = |options: Value, default: &str| json!(["COMBO", {"default": default, "multiselect": false, "options": options}]);
    json!({
        "EmptyImage": {
            "input": {"required": {"width": ["INT", {"default": 512, "min": 1, "max": 16384}],
                                   "height": ["INT", {"default": 512, "min": 1, "max": 16384}]}},
            "input_order": {"required": ["width", "height"]},
            "output": ["IMAGE"], "output_name": ["IMAGE"], "output_is_list": [false],
            "name": "EmptyImage", "display_name": "EmptyImage", "python_module": "nodes", "output_node": false
        },
        "EmptyLatentImage": {
            "input": {"required": {"width": ["INT", {"default": 512, "min": 16, "max": 16384, "step": 8}]}},
            "output": ["LATENT"], "output_name": ["LATENT"], "output_is_list": [false],
            "name": "EmptyLatentImage", "display_name": "Empty Latent Image", "output_node": false
        },
        "PreviewImage": {
            "input": {"required": {"images": ["IMAGE", {}]}, "hidden": {"prompt": "PROMPT"}},
            "output": [], "name": "PreviewImage", "display_name": "Preview Image", "output_node": true
        },
        "VAEDecode": {
            "input": {"required": {"samples": ["LATENT", {}], "vae": ["VAE", {}]}},
            "output": ["IMAGE"], "output_name": ["IMAGE"], "name": "VAEDecode", "output_node": false
        },
        "ResizeImageMaskNode": {
            "input": {"required": {
                "input": ["COMFY_MATCHTYPE_V3", {"template": {"template_id": "input_type", "allowed_types": "IMAGE,MASK"}}],
                "resize_type": ["COMFY_DYNAMICCOMBO_V3", {"tooltip": "How to resize", "options": [
                    {"key": "scale dimensions", "inputs": {"required": {
                        "width": ["INT", {"default": 512, "min": 0, "max": 16384, "step": 1}],
                        "height": ["INT", {"default": 512, "min": 0, "max": 16384, "step": 1}],
                        "crop": v3_combo(json!(["disabled", "center"]), "center")}}},
                    {"key": "scale by multiplier", "inputs": {"required": {
                        "multiplier": ["FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01}]}}},
                    {"key": "match size", "inputs": {"required": {
                        "match": ["IMAGE,MASK", {}],
                        "crop": v3_combo(json!(["disabled", "center"]), "center")}}}
                ]}],
                "scale_method": v3_combo(json!(["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]), "area")
            }},
            "input_order": {"required": ["input", "resize_type", "scale_method"]},
            "output": ["COMFY_MATCHTYPE_V3"], "output_name": ["resized"], "output_is_list": [false],
            "output_matchtypes": ["input_type"],
            "name": "ResizeImageMaskNode", "display_name": null, "python_module": "comfy_extras.nodes_post_processing",
            "output_node": false
        },
        "BatchImagesNode": {
            "input": {"required": {"images": ["COMFY_AUTOGROW_V3", {"template": {
                "input": {"required": {"image": ["IMAGE", {}]}}, "prefix": "image", "min": 1, "max": 50}}]}},
            "input_order": {"required": ["images"]},
            "output": ["IMAGE"], "output_name": ["IMAGE"], "output_is_list": [false], "output_matchtypes": null,
            "name": "BatchImagesNode", "display_name": "Batch Images", "output_node": false
        },
        "ComfySwitchNode": {
            "input": {"required": {
                "switch": ["BOOLEAN", {}],
                "on_false": ["COMFY_MATCHTYPE_V3", {"lazy": true, "template": {"template_id": "switch", "allowed_types": "*"}}],
                "on_true": ["COMFY_MATCHTYPE_V3", {"lazy": true, "template": {"template_id": "switch", "allowed_types": "*"}}]}},
            "input_order": {"required": ["switch", "on_false", "on_true"]},
            "output": ["COMFY_MATCHTYPE_V3"], "output_name": ["output"], "output_is_list": [false],
            "output_matchtypes": ["switch"],
            "name": "ComfySwitchNode", "display_name": "If/Else Switch", "output_node": false, "experimental": true
        },
        "ReferenceImageNode": {
            "input": {"required": {
                "model": ["COMFY_DYNAMICCOMBO_V3", {"options": [
                    {"key": "pro", "inputs": {"required": {
                        "width": ["INT", {"default": 1024, "min": 256, "max": 2048, "step": 32}],
                        "images": ["COMFY_AUTOGROW_V3", {"template": {
                            "input": {"required": {"image": ["IMAGE", {}]}},
                            "names": ["image_1", "image_2", "image_3"], "min": 0}}]}}},
                    {"key": "lite", "inputs": {"optional": {
                        "seed": ["INT", {"default": 0, "min": 0, "max": 100}]}}}
                ]}]}},
            "output": ["IMAGE"], "output_name": ["IMAGE"], "output_is_list": [false],
            "name": "ReferenceImageNode", "display_name": "", "output_node": true
        },
        "CreateList": {
            "input": {"required": {"inputs": ["COMFY_AUTOGROW_V3", {"template": {
                "input": {"required": {"input": ["COMFY_MATCHTYPE_V3", {"template": {"template_id": "type", "allowed_types": "*"}}]}},
                "prefix": "input", "min": 1, "max": 10}}]}},
            "output": ["COMFY_MATCHTYPE_V3"], "output_name": ["list"], "output_is_list": [true],
            "output_matchtypes": ["type"], "name": "CreateList", "display_name": "Create List", "output_node": false
        }
    })
}

/// [`v3_object_info_json`] parsed once.
pub(crate) fn v3_object_info() -> &'static ObjectInfo {
    static INFO: OnceLock<ObjectInfo> = OnceLock::new();
    INFO.get_or_init(|| ObjectInfo::from_json(&v3_object_info_json()))
}
