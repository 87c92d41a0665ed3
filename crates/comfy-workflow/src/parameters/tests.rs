//! Tests for parameter discovery and overrides, against the real 0.3.75 `/object_info` fixture.

use serde_json::{Value, json};

use super::*;
use crate::testing::{object_info, txt2img};

fn discover(prompt: &ApiPrompt) -> Parameters {
    discover_parameters(prompt, object_info())
}

fn prompt_from(raw: Value) -> ApiPrompt {
    serde_json::from_value(raw).unwrap()
}

fn located(parameters: &Parameters, name: &str) -> (String, String) {
    let parameter = parameters
        .get(name)
        .unwrap_or_else(|| panic!("no parameter {name} in {:?}", names(parameters)));
    (parameter.node_id.clone(), parameter.input.clone())
}

fn names(parameters: &Parameters) -> Vec<&str> {
    parameters
        .parameters
        .iter()
        .map(|parameter| parameter.name.as_str())
        .collect()
}

fn at(node_id: &str, input: &str) -> (String, String) {
    (node_id.to_owned(), input.to_owned())
}

#[test]
fn txt2img_knobs_are_found_by_role() {
    let parameters = discover(&txt2img());
    assert_eq!(
        names(&parameters),
        [
            "prompt",
            "negative_prompt",
            "seed",
            "steps",
            "cfg",
            "sampler_name",
            "scheduler",
            "denoise",
            "width",
            "height",
            "batch_size",
            "checkpoint",
            "filename_prefix"
        ]
    );
    assert_eq!(located(&parameters, "prompt"), at("6", "text"));
    assert_eq!(located(&parameters, "negative_prompt"), at("7", "text"));
    assert_eq!(located(&parameters, "seed"), at("3", "seed"));
    assert_eq!(located(&parameters, "width"), at("5", "width"));
    assert_eq!(located(&parameters, "checkpoint"), at("4", "ckpt_name"));
    assert_eq!(
        located(&parameters, "filename_prefix"),
        at("9", "filename_prefix")
    );
}

#[test]
fn schemas_come_from_object_info_with_current_defaults() {
    let parameters = discover(&txt2img());
    let seed = &parameters.get("seed").unwrap().schema;
    assert_eq!(seed["type"], "integer");
    assert_eq!(seed["minimum"], 0);
    assert_eq!(seed["maximum"], json!(18_446_744_073_709_551_615u64));
    assert_eq!(seed["default"], json!(156_680_208_700_286u64));
    assert!(
        seed["description"]
            .as_str()
            .unwrap()
            .starts_with("The random seed")
    );
    let width = &parameters.get("width").unwrap().schema;
    assert_eq!(width["multipleOf"], 8);
    assert_eq!(width["default"], 512);
    let sampler = &parameters.get("sampler_name").unwrap().schema;
    assert_eq!(sampler["type"], "string");
    assert!(sampler["enum"].as_array().unwrap().contains(&json!("euler")));
    let cfg = &parameters.get("cfg").unwrap().schema;
    assert_eq!(cfg["type"], "number");
    assert_eq!(cfg["maximum"], 100.0);
    assert!(cfg.get("multipleOf").is_none());
    let schema = parameters.json_schema();
    assert_eq!(schema["properties"]["prompt"]["type"], "string");
}

fn hires_fix() -> ApiPrompt {
    let mut prompt = txt2img();
    for (id, raw) in [
        (
            "10",
            json!({"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0], "upscale_method": "nearest-exact", "width": 1024, "height": 1024, "crop": "disabled"}}),
        ),
        (
            "11",
            json!({"class_type": "KSampler", "inputs": {"seed": 7, "steps": 10, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.5,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["10", 0]}}),
        ),
    ] {
        prompt.nodes.insert(
            id.to_owned(),
            prompt_from(json!({"x": raw})).nodes.remove("x").unwrap(),
        );
    }
    prompt
        .get_mut("8")
        .unwrap()
        .inputs
        .insert("samples".into(), json!(["11", 0]));
    prompt
}

#[test]
fn repeated_roles_are_numbered_in_node_order() {
    let parameters = discover(&hires_fix());
    assert_eq!(located(&parameters, "seed"), at("3", "seed"));
    assert_eq!(located(&parameters, "seed_2"), at("11", "seed"));
    assert_eq!(located(&parameters, "denoise_2"), at("11", "denoise"));
    // The upscale's width is not a generation size: it has a latent input.
    assert!(parameters.get("width_2").is_none());
    // Both samplers share the same text encoders.
    assert!(parameters.get("prompt_2").is_none());
}

#[test]
fn zeroed_negative_is_not_a_negative_prompt() {
    let mut prompt = txt2img();
    prompt.nodes.insert(
        "7".to_owned(),
        prompt_from(
            json!({"x": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["6", 0]}}}),
        )
        .nodes
        .remove("x")
        .unwrap(),
    );
    let parameters = discover(&prompt);
    assert_eq!(located(&parameters, "prompt"), at("6", "text"));
    assert!(parameters.get("negative_prompt").is_none());
}

#[test]
fn pair_nodes_keep_positive_and_negative_apart() {
    let mut prompt = txt2img();
    let extra = prompt_from(json!({
        "10": {"class_type": "ControlNetApplyAdvanced", "inputs": {"positive": ["6", 0], "negative": ["7", 0],
            "control_net": ["11", 0], "image": ["12", 0], "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}},
        "11": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "x.safetensors"}},
        "12": {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
    }));
    prompt.nodes.extend(extra.nodes);
    let sampler = prompt.get_mut("3").unwrap();
    sampler.inputs.insert("positive".into(), json!(["10", 0]));
    sampler.inputs.insert("negative".into(), json!(["10", 1]));
    let parameters = discover(&prompt);
    assert_eq!(located(&parameters, "prompt"), at("6", "text"));
    assert_eq!(located(&parameters, "negative_prompt"), at("7", "text"));
    assert!(parameters.get("prompt_2").is_none());
    assert_eq!(located(&parameters, "controlnet"), at("11", "control_net_name"));
    assert_eq!(located(&parameters, "controlnet_strength"), at("10", "strength"));
    assert_eq!(located(&parameters, "image"), at("12", "image"));
    let image = &parameters.get("image").unwrap().schema;
    assert!(image.get("enum").is_none(), "uploads make the list open");
}

#[test]
fn custom_sampling_graph_is_understood() {
    let prompt = prompt_from(json!({
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5.safetensors", "clip_name2": "l.safetensors", "type": "flux"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["2", 0]}},
        "4": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["3", 0], "guidance": 3.5}},
        "5": {"class_type": "BasicGuider", "inputs": {"model": ["1", 0], "conditioning": ["4", 0]}},
        "6": {"class_type": "RandomNoise", "inputs": {"noise_seed": 42}},
        "7": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "8": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple", "steps": 4, "denoise": 1.0}},
        "9": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 1}},
        "10": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["6", 0], "guider": ["5", 0], "sampler": ["7", 0], "sigmas": ["8", 0], "latent_image": ["9", 0]}},
        "11": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "12": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["11", 0]}},
        "13": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "flux"}}
    }));
    let parameters = discover(&prompt);
    assert_eq!(located(&parameters, "prompt"), at("3", "text"));
    assert_eq!(located(&parameters, "seed"), at("6", "noise_seed"));
    assert_eq!(located(&parameters, "guidance"), at("4", "guidance"));
    assert_eq!(located(&parameters, "steps"), at("8", "steps"));
    assert_eq!(located(&parameters, "scheduler"), at("8", "scheduler"));
    assert_eq!(located(&parameters, "sampler_name"), at("7", "sampler_name"));
    assert_eq!(located(&parameters, "width"), at("9", "width"));
    assert_eq!(located(&parameters, "unet"), at("1", "unet_name"));
    assert_eq!(located(&parameters, "vae"), at("11", "vae_name"));
    assert_eq!(located(&parameters, "text_encoder_2"), at("2", "clip_name2"));
}

#[test]
fn values_driven_by_primitives_are_set_on_the_primitive() {
    let mut prompt = txt2img();
    prompt.nodes.extend(
        prompt_from(json!({
            "20": {"class_type": "PrimitiveInt", "inputs": {"value": 99}},
            "21": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "from a primitive"}}
        }))
        .nodes,
    );
    prompt
        .get_mut("3")
        .unwrap()
        .inputs
        .insert("seed".into(), json!(["20", 0]));
    prompt
        .get_mut("6")
        .unwrap()
        .inputs
        .insert("text".into(), json!(["21", 0]));
    let parameters = discover(&prompt);
    assert_eq!(located(&parameters, "seed"), at("20", "value"));
    assert_eq!(located(&parameters, "prompt"), at("21", "value"));
    assert_eq!(
        parameters.get("prompt").unwrap().schema["default"],
        "from a primitive"
    );
}

#[test]
fn loras_and_masks_are_found() {
    let mut prompt = txt2img();
    prompt.nodes.extend(
        prompt_from(json!({
            "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": "tiny-sd15-lora.safetensors", "strength_model": 0.7, "strength_clip": 1.0}},
            "11": {"class_type": "LoadImageMask", "inputs": {"image": "example.png", "channel": "alpha"}}
        }))
        .nodes,
    );
    let parameters = discover(&prompt);
    assert_eq!(located(&parameters, "lora"), at("10", "lora_name"));
    assert_eq!(located(&parameters, "lora_strength"), at("10", "strength_model"));
    assert_eq!(parameters.get("lora_strength").unwrap().schema["default"], 0.7);
    assert_eq!(
        located(&parameters, "lora_clip_strength"),
        at("10", "strength_clip")
    );
    assert_eq!(located(&parameters, "mask"), at("11", "image"));
}

#[test]
fn api_nodes_prompts_are_found_directly() {
    let prompt = prompt_from(json!({
        "1": {"class_type": "OpenAIDalle3", "inputs": {"prompt": "a cat", "seed": 0, "quality": "standard", "style": "natural", "size": "1024x1024"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}
    }));
    let parameters = discover(&prompt);
    assert_eq!(located(&parameters, "prompt"), at("1", "prompt"));
    assert_eq!(located(&parameters, "seed"), at("1", "seed"));
}

fn overrides(raw: Value) -> Map<String, Value> {
    raw.as_object().unwrap().clone()
}

#[test]
fn overrides_accept_names_and_addresses() {
    let prompt = txt2img();
    let parameters = discover(&prompt);
    let result = apply_overrides(
        &prompt,
        &parameters,
        &overrides(json!({"prompt": "a dog", "seed": "18446744073709551615", "5.width": 768, "steps": 30.0})),
        object_info(),
    )
    .unwrap();
    assert_eq!(result.get("6").unwrap().inputs["text"], "a dog");
    assert_eq!(
        result.get("3").unwrap().inputs["seed"],
        json!(18_446_744_073_709_551_615u64)
    );
    assert_eq!(result.get("3").unwrap().inputs["steps"], 30);
    assert_eq!(result.get("5").unwrap().inputs["width"], 768);
    // The original is untouched.
    assert_eq!(
        prompt.get("6").unwrap().inputs["text"],
        "masterpiece best quality girl"
    );
}

#[test]
fn unknown_keys_are_rejected_with_a_suggestion() {
    let prompt = txt2img();
    let parameters = discover(&prompt);
    let error =
        apply_overrides(&prompt, &parameters, &overrides(json!({"sed": 1})), object_info()).unwrap_err();
    match &error {
        OverrideError::UnknownKey { candidates, .. } => assert_eq!(candidates[0], "seed"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        error
            .to_string()
            .starts_with("unknown parameter 'sed'; did you mean")
    );
    let error = apply_overrides(
        &prompt,
        &parameters,
        &overrides(json!({"3.stpes": 1})),
        object_info(),
    )
    .unwrap_err();
    assert!(matches!(&error, OverrideError::UnknownKey { candidates, .. } if candidates[0] == "3.steps"));
}

#[test]
fn invalid_values_are_rejected() {
    let prompt = txt2img();
    let parameters = discover(&prompt);
    for bad in [
        json!({"steps": "many"}),
        json!({"steps": 2.5}),
        json!({"cfg": "high"}),
        json!({"prompt": 5}),
        json!({"sampler_name": "eulr"}),
    ] {
        assert!(
            matches!(
                apply_overrides(&prompt, &parameters, &overrides(bad.clone()), object_info()),
                Err(OverrideError::InvalidValue { .. })
            ),
            "{bad}"
        );
    }
    let error = apply_overrides(
        &prompt,
        &parameters,
        &overrides(json!({"sampler_name": "eulr"})),
        object_info(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("did you mean 'euler'"), "{error}");
}

#[test]
fn two_keys_for_one_input_must_agree() {
    let prompt = txt2img();
    let parameters = discover(&prompt);
    assert!(
        apply_overrides(
            &prompt,
            &parameters,
            &overrides(json!({"seed": 1, "3.seed": 1})),
            object_info()
        )
        .is_ok()
    );
    let error = apply_overrides(
        &prompt,
        &parameters,
        &overrides(json!({"seed": 1, "3.seed": 2})),
        object_info(),
    )
    .unwrap_err();
    assert!(matches!(error, OverrideError::Conflict { .. }));
}

#[test]
fn discovered_parameters_override_into_a_valid_prompt() {
    let prompt = hires_fix();
    let parameters = discover(&prompt);
    let result = apply_overrides(
        &prompt,
        &parameters,
        &overrides(json!({"seed": 1, "seed_2": 2, "width": 640, "checkpoint": "tiny-sd15-micro.ckpt"})),
        object_info(),
    )
    .unwrap();
    let report = crate::validate::validate(
        &result,
        object_info(),
        &crate::validate::ValidationOptions::default(),
    );
    assert_eq!(report.outcome(), crate::validate::Outcome::Valid, "{report:#?}");
    assert_eq!(result.get("11").unwrap().inputs["seed"], 2);
}

#[test]
fn nested_v3_inputs_are_addressed_and_typed() {
    let prompt = prompt_from(json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}},
        "2": {"class_type": "ResizeImageMaskNode", "inputs": {"input": ["1", 0],
              "resize_type": "scale by multiplier", "resize_type.multiplier": 0.5, "scale_method": "area"}}
    }));
    let info = crate::testing::v3_object_info();
    let parameters = discover_parameters(&prompt, info);
    let overrides = |raw: Value| raw.as_object().cloned().unwrap();
    let changed = apply_overrides(
        &prompt,
        &parameters,
        &overrides(json!({"2.resize_type.multiplier": "2"})),
        info,
    )
    .unwrap();
    assert_eq!(
        changed.get("2").unwrap().inputs["resize_type.multiplier"],
        json!(2.0)
    );
    // The combo's choices are its option keys.
    let bad = apply_overrides(
        &prompt,
        &parameters,
        &overrides(json!({"2.resize_type": "scale by multiplyer"})),
        info,
    );
    assert!(
        matches!(bad, Err(OverrideError::InvalidValue { candidates, .. }) if candidates[0] == "scale by multiplier")
    );
}

fn resize_prompt() -> ApiPrompt {
    prompt_from(json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}},
        "2": {"class_type": "ResizeImageMaskNode", "inputs": {"input": ["1", 0],
              "resize_type": "scale by multiplier", "resize_type.multiplier": 0.5, "scale_method": "area"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    }))
}

#[test]
fn switching_a_dynamic_combo_brings_the_options_inputs() {
    let info = crate::testing::v3_object_info();
    let prompt = resize_prompt();
    let parameters = discover_parameters(&prompt, info);
    // The other options' inputs are addressable and typed before they are selected.
    assert_eq!(
        parameters
            .resolve("2.resize_type.width")
            .map(|address| &address.kind),
        Some(&ValueKind::Integer)
    );
    let switched = apply_overrides(
        &prompt,
        &parameters,
        &overrides(json!({"2.resize_type": "scale dimensions", "2.resize_type.width": "640"})),
        info,
    )
    .unwrap();
    let inputs = &switched.get("2").unwrap().inputs;
    assert_eq!(inputs["resize_type.width"], json!(640), "set by the override");
    assert_eq!(inputs["resize_type.height"], json!(512), "the option's default");
    assert_eq!(
        inputs["resize_type.crop"],
        json!("center"),
        "the option's default"
    );
    assert!(
        !inputs.contains_key("resize_type.multiplier"),
        "the previous option's input is dropped: {inputs:?}"
    );
    let report = crate::validate::validate(
        &switched,
        info,
        &crate::validate::ValidationOptions {
            check_v3_combos: true,
            ..crate::validate::ValidationOptions::default()
        },
    );
    assert_eq!(report.outcome(), crate::validate::Outcome::Valid, "{report:#?}");
    // Setting the same option again changes nothing else.
    let same = apply_overrides(
        &prompt,
        &parameters,
        &overrides(json!({"2.resize_type": "scale by multiplier"})),
        info,
    )
    .unwrap();
    assert_eq!(same, prompt);
}

#[test]
fn roles_are_found_inside_dynamic_inputs_with_their_schemas() {
    let info = crate::testing::v3_object_info();
    let prompt = prompt_from(json!({
        "1": {"class_type": "ReferenceImageNode", "inputs": {"model": "lite", "model.seed": 7}}
    }));
    let parameters = discover_parameters(&prompt, info);
    assert_eq!(located(&parameters, "seed"), at("1", "model.seed"));
    let seed = parameters.get("seed").unwrap();
    assert_eq!(seed.schema["type"], "integer");
    assert_eq!(seed.schema["maximum"], 100);
    assert_eq!(seed.schema["default"], 7);
    let changed = apply_overrides(&prompt, &parameters, &overrides(json!({"seed": 9})), info).unwrap();
    assert_eq!(changed.get("1").unwrap().inputs["model.seed"], 9);
    // The unselected option's seed is not a parameter; its autogrow slots are addresses.
    let prompt = prompt_from(json!({
        "1": {"class_type": "ReferenceImageNode", "inputs": {"model": "pro", "model.width": 1024}}
    }));
    let parameters = discover_parameters(&prompt, info);
    assert!(parameters.get("seed").is_none(), "{:?}", names(&parameters));
    assert_eq!(
        parameters
            .resolve("1.model.images.image_2")
            .map(|address| &address.kind),
        Some(&ValueKind::Any)
    );
    assert!(
        parameters.resolve("1.model.images").is_none(),
        "an autogrow is not an input"
    );
}

#[test]
fn autogrow_widget_slots_are_typed_addresses() {
    let info = ObjectInfo::from_json(&json!({"AutogrowPrefixTestNode": {
        "input": {"required": {"autogrow": ["COMFY_AUTOGROW_V3", {"template": {
            "input": {"required": {"float": ["FLOAT", {"default": 0.0, "min": -1.0, "max": 1.0}]}},
            "prefix": "float", "min": 1, "max": 3}}]}},
        "output": ["STRING"]}}));
    let prompt = prompt_from(json!({
        "1": {"class_type": "AutogrowPrefixTestNode", "inputs": {"autogrow.float0": 0.5}}
    }));
    let parameters = discover_parameters(&prompt, &info);
    assert_eq!(
        parameters
            .resolve("1.autogrow.float2")
            .map(|address| &address.kind),
        Some(&ValueKind::Number),
        "{:?}",
        parameters.addresses.keys().collect::<Vec<_>>()
    );
    let changed = apply_overrides(
        &prompt,
        &parameters,
        &overrides(json!({"1.autogrow.float2": "0.25"})),
        &info,
    )
    .unwrap();
    let inputs = &changed.get("1").unwrap().inputs;
    assert_eq!(inputs["autogrow.float2"], json!(0.25));
    assert!(
        !inputs.contains_key("autogrow.float1"),
        "slots are not filled in: {inputs:?}"
    );
    let error = apply_overrides(
        &prompt,
        &parameters,
        &overrides(json!({"1.autogrow.float1": "x"})),
        &info,
    );
    assert!(
        matches!(error, Err(OverrideError::InvalidValue { .. })),
        "{error:?}"
    );
}

#[test]
fn video_and_audio_knobs_are_found_by_role() {
    let video = discover(&prompt_from(json!({
        "1": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5.safetensors", "type": "wan"}},
        "2": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 832, "height": 480, "length": 33, "batch_size": 1}},
        "3": {"class_type": "LTXVConditioning", "inputs": {"positive": ["4", 0], "negative": ["4", 0], "frame_rate": 25.0}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["1", 0]}},
        "5": {"class_type": "CreateVideo", "inputs": {"images": ["6", 0], "fps": 16.0}},
    })));
    for name in ["length", "fps", "fps_2", "text_encoder", "text_encoder_type"] {
        assert!(video.get(name).is_some(), "{name} in {:?}", names(&video));
    }
    assert_eq!(located(&video, "text_encoder_type"), at("1", "type"));
    assert_eq!(located(&video, "fps"), at("3", "frame_rate"));
    assert_eq!(located(&video, "fps_2"), at("5", "fps"));

    // The fixture's server had no torchaudio, so ACE-Step's latent stands in for Stable Audio's.
    let audio = discover(&prompt_from(json!({
        "1": {"class_type": "EmptyAceStepLatentAudio", "inputs": {"seconds": 120.0, "batch_size": 1}},
    })));
    assert_eq!(located(&audio, "seconds"), at("1", "seconds"));
    // A `type` input on a node that does not load text encoders is no text encoder type.
    let other = discover(&prompt_from(json!({
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
        "2": {"class_type": "ModelSamplingDiscrete", "inputs": {"model": ["1", 0], "sampling": "eps", "zsnr": false}},
    })));
    assert!(other.get("text_encoder_type").is_none(), "{:?}", names(&other));
}
