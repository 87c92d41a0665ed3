//! Every graph builder against the real ComfyUI rig: the SD1.5 variants run to completion with the
//! tiny models (output sizes checked), and the SDXL, SD3 and Flux graphs are accepted by the real
//! server's validation except for the model files this server does not have.

use std::collections::BTreeMap;
use std::time::Duration;

use comfy_api::{
    Backend, BackendOptions, ClientError, ComfyClient, FileRef, JobPhase, SubmitOptions, UploadKind,
};
use comfy_workflow::builders::{
    Canvas, ControlNetSpec, Generation, HiresFix, LoraSpec, ModelFamily, ModelSource, Preprocessor,
    TextToImage,
};
use test_support::comfyui_url;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn rgba_png(side: u32, transparent_left_half: bool) -> Vec<u8> {
    let mut pixels = Vec::new();
    for row in 0..side {
        for column in 0..side {
            let alpha = if transparent_left_half && column < side / 2 {
                0
            } else {
                255
            };
            pixels.extend_from_slice(&[(row * 4) as u8, (column * 4) as u8, 128, alpha]);
        }
    }
    let mut bytes = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut bytes),
        &pixels,
        side,
        side,
        image::ExtendedColorType::Rgba8,
    )
    .expect("PNG");
    bytes
}

async fn upload(client: &ComfyClient, bytes: Vec<u8>, stem: &str) -> String {
    let name = format!("{stem}-{}.png", uuid::Uuid::new_v4());
    client
        .upload_image(bytes, &name, "builders", UploadKind::Input, true)
        .await
        .expect("upload")
        .node_value()
}

fn base(prompt: &str) -> Generation {
    let mut generation = TextToImage {
        checkpoint: "tiny-sd15-micro.ckpt".into(),
        prompt: format!("{prompt} {}", uuid::Uuid::new_v4()),
        negative_prompt: "blurry".into(),
        width: 64,
        height: 64,
        batch_size: 1,
        steps: 3,
        cfg: 7.0,
        sampler: "euler".into(),
        scheduler: "normal".into(),
        seed: 11,
        denoise: 1.0,
        loras: Vec::new(),
        filename_prefix: "builders".into(),
    }
    .generation();
    generation.family = ModelFamily::StableDiffusion;
    generation
}

async fn run(backend: &Backend, generation: &Generation) -> (u32, u32) {
    let built = generation.build();
    let mut job = backend
        .submit(&built.prompt.to_json(), BTreeMap::new(), SubmitOptions::default())
        .await
        .unwrap_or_else(|error| panic!("{error} for {generation:?}"));
    let finished = tokio::time::timeout(Duration::from_secs(120), job.subscription.finished())
        .await
        .expect("finishes in time")
        .expect("a final state");
    assert_eq!(
        finished.phase,
        JobPhase::Succeeded,
        "{:?} for {generation:?}",
        finished.failure
    );
    let output: &FileRef = &finished.outputs.first().expect("an output").file;
    let download = backend.client().view(output, None, 1 << 30).await.expect("view");
    let decoded = image::load_from_memory(&download.bytes).expect("a decodable image");
    (decoded.width(), decoded.height())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd15_builders_run_for_real() {
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let backend = Backend::start(
        &comfyui_url(),
        BackendOptions::default(),
        cancel.clone(),
        &tracker,
    )
    .expect("backend");
    let client = backend.client().clone();
    let picture = upload(&client, rgba_png(64, false), "picture").await;
    let with_hole = upload(&client, rgba_png(64, true), "hole").await;
    let mask = upload(&client, rgba_png(64, true), "mask").await;
    let control = upload(&client, rgba_png(64, false), "control").await;
    let controlnet = client
        .models("controlnet")
        .await
        .expect("models")
        .expect("folder")
        .into_iter()
        .next()
        .expect("a ControlNet in the rig");
    let upscaler = client
        .models("upscale_models")
        .await
        .expect("models")
        .expect("folder")
        .into_iter()
        .next()
        .expect("an upscaler in the rig");
    let lora = client
        .models("loras")
        .await
        .expect("models")
        .expect("folder")
        .into_iter()
        .next()
        .expect("a LoRA in the rig");

    let mut txt2img = base("txt2img");
    txt2img.loras = vec![LoraSpec {
        name: lora,
        strength_model: 0.8,
        strength_clip: 0.8,
    }];
    assert_eq!(run(&backend, &txt2img).await, (64, 64));

    let mut img2img = base("img2img");
    img2img.canvas = Canvas::Image {
        image: picture.clone(),
    };
    img2img.denoise = 0.6;
    assert_eq!(run(&backend, &img2img).await, (64, 64));

    let mut inpaint_alpha = base("inpaint alpha");
    inpaint_alpha.canvas = Canvas::Inpaint {
        image: with_hole,
        mask: None,
        grow_mask_by: 6,
    };
    assert_eq!(run(&backend, &inpaint_alpha).await, (64, 64));

    let mut inpaint_mask = base("inpaint mask");
    inpaint_mask.canvas = Canvas::Inpaint {
        image: picture.clone(),
        mask: Some(mask),
        grow_mask_by: 4,
    };
    assert_eq!(run(&backend, &inpaint_mask).await, (64, 64));

    let mut outpaint = base("outpaint");
    outpaint.canvas = Canvas::Outpaint {
        image: picture.clone(),
        left: 16,
        top: 0,
        right: 16,
        bottom: 8,
        feathering: 8,
    };
    assert_eq!(run(&backend, &outpaint).await, (96, 72));

    let mut controlled = base("controlnet");
    controlled.controlnets = vec![
        ControlNetSpec {
            model: controlnet.clone(),
            image: control.clone(),
            strength: 0.9,
            start_percent: 0.0,
            end_percent: 1.0,
            // Core Canny makes the control image from the plain picture.
            preprocessor: Some(Preprocessor {
                class_type: "Canny".into(),
                image_input: "image".into(),
                settings: vec![
                    ("low_threshold".into(), serde_json::json!(0.2)),
                    ("high_threshold".into(), serde_json::json!(0.6)),
                ],
            }),
        },
        ControlNetSpec {
            model: controlnet,
            image: control,
            strength: 0.4,
            start_percent: 0.2,
            end_percent: 0.8,
            preprocessor: None,
        },
    ];
    assert_eq!(run(&backend, &controlled).await, (64, 64));

    let mut hires = base("hires");
    hires.hires_fix = Some(HiresFix {
        scale: 1.5,
        steps: 2,
        denoise: 0.5,
        upscale_method: "bilinear".into(),
    });
    assert_eq!(run(&backend, &hires).await, (96, 96));

    let mut upscaled = base("upscale");
    upscaled.upscale_model = Some(upscaler);
    assert_eq!(run(&backend, &upscaled).await, (128, 128));

    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_families_fail_only_on_missing_model_files() {
    let client = ComfyClient::new(&comfyui_url(), Default::default()).expect("client");
    let model_inputs = [
        "ckpt_name",
        "unet_name",
        "clip_name",
        "clip_name1",
        "clip_name2",
        "clip_name3",
        "vae_name",
    ];
    let cases = [
        (
            ModelFamily::StableDiffusionXl,
            ModelSource::Checkpoint {
                name: "sd_xl_base_1.0.safetensors".into(),
            },
        ),
        (
            ModelFamily::StableDiffusionXl,
            ModelSource::Components {
                diffusion_model: "sdxl_unet.safetensors".into(),
                weight_dtype: "default".into(),
                text_encoders: vec!["clip_l.safetensors".into(), "clip_g.safetensors".into()],
                vae: "sdxl_vae.safetensors".into(),
            },
        ),
        (
            ModelFamily::StableDiffusion3,
            ModelSource::Checkpoint {
                name: "sd3.5_medium_incl_clips.safetensors".into(),
            },
        ),
        (
            ModelFamily::StableDiffusion3,
            ModelSource::Components {
                diffusion_model: "sd3.5_large.safetensors".into(),
                weight_dtype: "default".into(),
                text_encoders: vec![
                    "clip_g.safetensors".into(),
                    "clip_l.safetensors".into(),
                    "t5xxl_fp16.safetensors".into(),
                ],
                vae: "sd3_vae.safetensors".into(),
            },
        ),
        (
            ModelFamily::Flux,
            ModelSource::Components {
                diffusion_model: "flux1-dev.safetensors".into(),
                weight_dtype: "fp8_e4m3fn".into(),
                text_encoders: vec!["t5xxl_fp8_e4m3fn.safetensors".into(), "clip_l.safetensors".into()],
                vae: "ae.safetensors".into(),
            },
        ),
        (
            ModelFamily::Flux,
            ModelSource::Checkpoint {
                name: "flux1-schnell-fp8.safetensors".into(),
            },
        ),
    ];
    for (family, model) in cases {
        let mut generation = base("family");
        let defaults = family.defaults();
        generation.family = family;
        generation.model = model;
        generation.cfg = defaults.cfg;
        generation.sampler = defaults.sampler.into();
        generation.scheduler = defaults.scheduler.into();
        let request = comfy_api::PromptRequest::new(generation.build().prompt.to_json(), "builders-test");
        match client.queue_prompt(&request).await {
            Err(ClientError::Rejected(rejection)) => {
                assert!(!rejection.node_errors.is_empty(), "{family:?}: {rejection}");
                for (node_id, node) in &rejection.node_errors {
                    for error in &node.errors {
                        let input = error
                            .extra_info
                            .get("input_name")
                            .and_then(|name| name.as_str())
                            .unwrap_or_default();
                        assert!(
                            error.kind == "value_not_in_list" && model_inputs.contains(&input),
                            "{family:?}: node {node_id} ({}) has a non-file error: {error:?}",
                            node.class_type
                        );
                    }
                }
            }
            other => panic!("{family:?}: expected a rejection for missing model files, got {other:?}"),
        }
    }
}
