//! Shared test data: the real `/object_info` of ComfyUI 0.3.75 and a small txt2img prompt.

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
