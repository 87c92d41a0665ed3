//! Graph builders for common tasks. One [`Generation`] describes a generation (model family and
//! files, canvas, conditioning, sampling, refinements) and builds an API prompt with titled nodes
//! (titles name the running node in progress messages). Callers validate the result against the
//! backend's `/object_info` before sending it: a builder never guesses what a backend has.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph::{ApiPrompt, Node};

/// Model families whose graphs differ (latent type, guidance, text encoders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    /// Stable Diffusion 1.x / 2.x.
    StableDiffusion,
    StableDiffusionXl,
    StableDiffusion3,
    Flux,
}

/// Sensible starting values per family.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyDefaults {
    pub size: u32,
    pub steps: u32,
    pub cfg: f64,
    pub sampler: &'static str,
    pub scheduler: &'static str,
}

/// Model families that ComfyUI runs but these builders do not build graphs for, by words their
/// file names carry: (word, family name). Checked before the families built here, so `flux2` is
/// not taken for Flux.1, nor `qwen_image` for SD1.x. Their graphs differ in loaders, text encoders,
/// latents or sampling; ComfyUI's own templates build them.
const OTHER_FAMILIES: &[(&str, &str)] = &[
    ("flux2", "Flux.2"),
    ("flux.2", "Flux.2"),
    ("flux-2", "Flux.2"),
    ("flux_2", "Flux.2"),
    ("kontext", "Flux.1 Kontext"),
    ("qwen", "Qwen-Image"),
    ("hidream", "HiDream"),
    ("chroma", "Chroma"),
    ("z-image", "Z-Image"),
    ("z_image", "Z-Image"),
    ("zimage", "Z-Image"),
    ("hunyuan3d", "Hunyuan3D"),
    ("hunyuan", "Hunyuan"),
    ("wan2", "Wan"),
    ("wan_2", "Wan"),
    ("wan-2", "Wan"),
    ("ltx", "LTX-Video"),
    ("mochi", "Mochi"),
    ("cosmos", "Cosmos"),
    ("lumina", "Lumina"),
    ("auraflow", "AuraFlow"),
    ("pixart", "PixArt"),
    ("kolors", "Kolors"),
    ("omnigen", "OmniGen"),
    ("stable_cascade", "Stable Cascade"),
    ("stable-cascade", "Stable Cascade"),
    ("stable_audio", "Stable Audio"),
    ("stable-audio", "Stable Audio"),
    ("ace_step", "ACE-Step"),
    ("ace-step", "ACE-Step"),
    ("svd", "Stable Video Diffusion"),
    ("sv3d", "SV3D"),
    ("zero123", "Stable Zero123"),
];

impl ModelFamily {
    /// The family of a model by its file name: one built here, or `Err` with the name of another
    /// family ComfyUI runs that these builders do not build for (see [`OTHER_FAMILIES`]).
    /// `StableDiffusion` when no word matches.
    pub fn recognize(model_name: &str) -> Result<ModelFamily, &'static str> {
        let name = model_name.to_ascii_lowercase();
        match OTHER_FAMILIES.iter().find(|(word, _)| name.contains(word)) {
            Some((_, family)) => Err(family),
            None => Ok(ModelFamily::guess(model_name)),
        }
    }

    /// A guess from a model file name among the families built here; `StableDiffusion` when
    /// nothing matches.
    pub fn guess(model_name: &str) -> ModelFamily {
        let name = model_name.to_ascii_lowercase();
        if name.contains("flux") {
            ModelFamily::Flux
        } else if name.contains("sd3") || name.contains("sd_3") || name.contains("stable-diffusion-3") {
            ModelFamily::StableDiffusion3
        } else if name.contains("xl") || name.contains("pony") || name.contains("illustrious") {
            ModelFamily::StableDiffusionXl
        } else {
            ModelFamily::StableDiffusion
        }
    }

    pub fn defaults(self) -> FamilyDefaults {
        match self {
            ModelFamily::StableDiffusion => FamilyDefaults {
                size: 512,
                steps: 20,
                cfg: 7.0,
                sampler: "euler",
                scheduler: "normal",
            },
            ModelFamily::StableDiffusionXl => FamilyDefaults {
                size: 1024,
                steps: 25,
                cfg: 6.5,
                sampler: "dpmpp_2m",
                scheduler: "karras",
            },
            ModelFamily::StableDiffusion3 => FamilyDefaults {
                size: 1024,
                steps: 28,
                cfg: 4.5,
                sampler: "dpmpp_2m",
                scheduler: "sgm_uniform",
            },
            ModelFamily::Flux => FamilyDefaults {
                size: 1024,
                steps: 20,
                cfg: 1.0,
                sampler: "euler",
                scheduler: "simple",
            },
        }
    }

    /// The `type` value of ComfyUI's CLIP loaders for this family.
    fn clip_type(self) -> &'static str {
        match self {
            ModelFamily::StableDiffusion => "stable_diffusion",
            ModelFamily::StableDiffusionXl => "sdxl",
            ModelFamily::StableDiffusion3 => "sd3",
            ModelFamily::Flux => "flux",
        }
    }

    fn uses_sd3_latent(self) -> bool {
        matches!(self, ModelFamily::StableDiffusion3 | ModelFamily::Flux)
    }
}

/// Where the model weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ModelSource {
    /// One file with diffusion model, text encoder(s) and VAE (`models/checkpoints`).
    Checkpoint { name: String },
    /// Separate files: a diffusion model (`models/diffusion_models`), one to three text encoders
    /// (`models/text_encoders`) and a VAE (`models/vae`).
    Components {
        diffusion_model: String,
        weight_dtype: String,
        text_encoders: Vec<String>,
        vae: String,
    },
}

/// One LoRA applied to the model and text encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraSpec {
    pub name: String,
    pub strength_model: f64,
    pub strength_clip: f64,
}

/// One ControlNet: a model and its control image from ComfyUI's input folder, already made
/// (edges, depth, pose...) or made from a plain image by `preprocessor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlNetSpec {
    pub model: String,
    pub image: String,
    pub strength: f64,
    pub start_percent: f64,
    pub end_percent: f64,
    #[serde(default)]
    pub preprocessor: Option<Preprocessor>,
}

/// A node that turns a plain image into a control image (core `Canny`, or a preprocessor pack's
/// node): its class, the input the image goes to, and its other settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub class_type: String,
    pub image_input: String,
    pub settings: Vec<(String, Value)>,
}

/// What the sampler starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Canvas {
    /// Text to image.
    Empty {
        width: u32,
        height: u32,
        batch_size: u32,
    },
    /// Image to image: an input image (name in ComfyUI's input folder), re-noised by `denoise`.
    Image { image: String },
    /// Repaint the masked part of an image. `mask` is a mask image (white = repaint); without one,
    /// the image's transparent pixels are repainted.
    Inpaint {
        image: String,
        mask: Option<String>,
        grow_mask_by: u32,
    },
    /// Extend an image outwards by the given pixels and paint the new area.
    Outpaint {
        image: String,
        left: u32,
        top: u32,
        right: u32,
        bottom: u32,
        feathering: u32,
    },
}

/// A second sampling pass at a higher resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiresFix {
    pub scale: f64,
    pub steps: u32,
    pub denoise: f64,
    /// `LatentUpscaleBy` method: nearest-exact, bilinear, area, bicubic, bislerp.
    pub upscale_method: String,
}

/// A full generation request, independent of any backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub family: ModelFamily,
    pub model: ModelSource,
    pub prompt: String,
    pub negative_prompt: String,
    pub canvas: Canvas,
    pub steps: u32,
    pub cfg: f64,
    pub sampler: String,
    pub scheduler: String,
    pub seed: u64,
    pub denoise: f64,
    /// Flux guidance (the `FluxGuidance` node); ignored by other families.
    pub guidance: f64,
    pub loras: Vec<LoraSpec>,
    pub controlnets: Vec<ControlNetSpec>,
    pub hires_fix: Option<HiresFix>,
    /// An upscale model (`models/upscale_models`) applied to the decoded image.
    pub upscale_model: Option<String>,
    pub filename_prefix: String,
}

/// Node ids of the parts of a built graph that callers may want to address.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltGraph {
    pub prompt: ApiPrompt,
    pub sampler_node: String,
    pub output_node: String,
}

type Socket = (String, u32);

fn link(node: Node, name: &str, socket: &Socket) -> Node {
    node.with_link(name, &socket.0, socket.1)
}

impl Generation {
    pub fn build(&self) -> BuiltGraph {
        let mut prompt = ApiPrompt::new();
        let (mut model, mut clip, vae) = self.add_model(&mut prompt);
        for (index, lora) in self.loras.iter().enumerate() {
            let node = prompt.add(
                link(link(Node::new("LoraLoader"), "model", &model), "clip", &clip)
                    .with("lora_name", lora.name.as_str())
                    .with("strength_model", lora.strength_model)
                    .with("strength_clip", lora.strength_clip)
                    .with_title(format!("LoRA {}: {}", index + 1, lora.name)),
            );
            model = (node.clone(), 0);
            clip = (node, 1);
        }
        let positive_text = encode_text(&mut prompt, &clip, &self.prompt, "Positive prompt");
        let negative_text = encode_text(&mut prompt, &clip, &self.negative_prompt, "Negative prompt");
        let (mut positive, mut negative): (Socket, Socket) = (positive_text, negative_text);
        if self.family == ModelFamily::Flux {
            let guided = prompt.add(
                link(Node::new("FluxGuidance"), "conditioning", &positive)
                    .with("guidance", self.guidance)
                    .with_title("Guidance"),
            );
            positive = (guided, 0);
            // Flux runs at cfg 1, where the negative is unused: an empty conditioning keeps it cheap.
            let zero = prompt.add(
                link(Node::new("ConditioningZeroOut"), "conditioning", &negative).with_title("No negative"),
            );
            negative = (zero, 0);
        }
        let latent = self.add_canvas(&mut prompt, &vae);
        for (index, controlnet) in self.controlnets.iter().enumerate() {
            let loader = prompt.add(
                Node::new("ControlNetLoader")
                    .with("control_net_name", controlnet.model.as_str())
                    .with_title(format!("ControlNet {}", index + 1)),
            );
            let mut image = prompt.add(
                Node::new("LoadImage")
                    .with("image", controlnet.image.as_str())
                    .with_title(format!("ControlNet {} image", index + 1)),
            );
            if let Some(preprocessor) = &controlnet.preprocessor {
                let mut node = Node::new(preprocessor.class_type.as_str())
                    .with_link(&preprocessor.image_input, &image, 0)
                    .with_title(format!("ControlNet {} preprocessor", index + 1));
                for (name, value) in &preprocessor.settings {
                    node = node.with(name, value.clone());
                }
                image = prompt.add(node);
            }
            let apply = prompt.add(
                link(
                    link(
                        link(Node::new("ControlNetApplyAdvanced"), "positive", &positive),
                        "negative",
                        &negative,
                    ),
                    "vae",
                    &vae,
                )
                .with_link("control_net", &loader, 0)
                .with_link("image", &image, 0)
                .with("strength", controlnet.strength)
                .with("start_percent", controlnet.start_percent)
                .with("end_percent", controlnet.end_percent)
                .with_title(format!("Apply ControlNet {}", index + 1)),
            );
            positive = (apply.clone(), 0);
            negative = (apply, 1);
        }
        let sampler = self.add_sampler(
            &mut prompt,
            "Sampler",
            &model,
            &positive,
            &negative,
            &latent,
            self.steps,
            self.denoise,
        );
        let mut samples: Socket = (sampler.clone(), 0);
        if let Some(hires) = &self.hires_fix {
            let upscaled = prompt.add(
                link(Node::new("LatentUpscaleBy"), "samples", &samples)
                    .with("upscale_method", hires.upscale_method.as_str())
                    .with("scale_by", hires.scale)
                    .with_title("Hires upscale"),
            );
            let second = self.add_sampler(
                &mut prompt,
                "Hires sampler",
                &model,
                &positive,
                &negative,
                &(upscaled, 0),
                hires.steps,
                hires.denoise,
            );
            samples = (second, 0);
        }
        let decode = prompt.add(
            link(link(Node::new("VAEDecode"), "samples", &samples), "vae", &vae).with_title("VAE decode"),
        );
        let mut image: Socket = (decode, 0);
        if let Some(upscale_model) = &self.upscale_model {
            let loader = prompt.add(
                Node::new("UpscaleModelLoader")
                    .with("model_name", upscale_model.as_str())
                    .with_title("Load upscale model"),
            );
            let upscaled = prompt.add(
                link(Node::new("ImageUpscaleWithModel"), "image", &image)
                    .with_link("upscale_model", &loader, 0)
                    .with_title("Upscale"),
            );
            image = (upscaled, 0);
        }
        let save = add_save_image(&mut prompt, &image, &self.filename_prefix, "Save image");
        BuiltGraph {
            prompt,
            sampler_node: sampler,
            output_node: save,
        }
    }

    /// Loader nodes; returns the model, CLIP and VAE sockets.
    fn add_model(&self, prompt: &mut ApiPrompt) -> (Socket, Socket, Socket) {
        match &self.model {
            ModelSource::Checkpoint { name } => {
                let loader = prompt.add(
                    Node::new("CheckpointLoaderSimple")
                        .with("ckpt_name", name.as_str())
                        .with_title("Load checkpoint"),
                );
                ((loader.clone(), 0), (loader.clone(), 1), (loader, 2))
            }
            ModelSource::Components {
                diffusion_model,
                weight_dtype,
                text_encoders,
                vae,
            } => {
                let unet = prompt.add(
                    Node::new("UNETLoader")
                        .with("unet_name", diffusion_model.as_str())
                        .with("weight_dtype", weight_dtype.as_str())
                        .with_title("Load diffusion model"),
                );
                let clip_type = self.family.clip_type();
                let clip = match text_encoders.as_slice() {
                    [one] => Node::new("CLIPLoader")
                        .with("clip_name", one.as_str())
                        .with("type", clip_type),
                    [first, second] => Node::new("DualCLIPLoader")
                        .with("clip_name1", first.as_str())
                        .with("clip_name2", second.as_str())
                        .with("type", clip_type),
                    encoders => {
                        let name = |index: usize| encoders.get(index).map_or("", String::as_str);
                        Node::new("TripleCLIPLoader")
                            .with("clip_name1", name(0))
                            .with("clip_name2", name(1))
                            .with("clip_name3", name(2))
                    }
                };
                let clip = prompt.add(clip.with_title("Load text encoders"));
                let vae = prompt.add(
                    Node::new("VAELoader")
                        .with("vae_name", vae.as_str())
                        .with_title("Load VAE"),
                );
                ((unet, 0), (clip, 0), (vae, 0))
            }
        }
    }

    /// The starting latent for the canvas.
    fn add_canvas(&self, prompt: &mut ApiPrompt, vae: &Socket) -> Socket {
        match &self.canvas {
            Canvas::Empty {
                width,
                height,
                batch_size,
            } => {
                let class = if self.family.uses_sd3_latent() {
                    "EmptySD3LatentImage"
                } else {
                    "EmptyLatentImage"
                };
                let latent = prompt.add(
                    Node::new(class)
                        .with("width", *width)
                        .with("height", *height)
                        .with("batch_size", *batch_size)
                        .with_title("Empty latent"),
                );
                (latent, 0)
            }
            Canvas::Image { image } => {
                let load = prompt.add(
                    Node::new("LoadImage")
                        .with("image", image.as_str())
                        .with_title("Input image"),
                );
                let encode = prompt.add(
                    link(Node::new("VAEEncode"), "vae", vae)
                        .with_link("pixels", &load, 0)
                        .with_title("Encode image"),
                );
                (encode, 0)
            }
            Canvas::Inpaint {
                image,
                mask,
                grow_mask_by,
            } => {
                let load = prompt.add(
                    Node::new("LoadImage")
                        .with("image", image.as_str())
                        .with_title("Input image"),
                );
                // LoadImage's second output is the mask from the image's transparency.
                let mask_socket: Socket = match mask {
                    Some(mask) => {
                        let mask = prompt.add(
                            Node::new("LoadImageMask")
                                .with("image", mask.as_str())
                                .with("channel", "red")
                                .with_title("Mask"),
                        );
                        (mask, 0)
                    }
                    None => (load.clone(), 1),
                };
                let encode = prompt.add(
                    link(
                        link(Node::new("VAEEncodeForInpaint"), "vae", vae),
                        "mask",
                        &mask_socket,
                    )
                    .with_link("pixels", &load, 0)
                    .with("grow_mask_by", *grow_mask_by)
                    .with_title("Encode for inpainting"),
                );
                (encode, 0)
            }
            Canvas::Outpaint {
                image,
                left,
                top,
                right,
                bottom,
                feathering,
            } => {
                let load = prompt.add(
                    Node::new("LoadImage")
                        .with("image", image.as_str())
                        .with_title("Input image"),
                );
                let pad = prompt.add(
                    Node::new("ImagePadForOutpaint")
                        .with_link("image", &load, 0)
                        .with("left", *left)
                        .with("top", *top)
                        .with("right", *right)
                        .with("bottom", *bottom)
                        .with("feathering", *feathering)
                        .with_title("Pad for outpainting"),
                );
                let encode = prompt.add(
                    link(Node::new("VAEEncodeForInpaint"), "vae", vae)
                        .with_link("pixels", &pad, 0)
                        .with_link("mask", &pad, 1)
                        .with("grow_mask_by", 8)
                        .with_title("Encode for outpainting"),
                );
                (encode, 0)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_sampler(
        &self,
        prompt: &mut ApiPrompt,
        title: &str,
        model: &Socket,
        positive: &Socket,
        negative: &Socket,
        latent: &Socket,
        steps: u32,
        denoise: f64,
    ) -> String {
        let settings = SamplerSettings {
            seed: self.seed,
            steps,
            cfg: self.cfg,
            sampler: &self.sampler,
            scheduler: &self.scheduler,
            denoise,
        };
        add_ksampler(prompt, title, [model, positive, negative, latent], &settings)
    }
}

/// A `KSampler`'s widget values.
struct SamplerSettings<'a> {
    seed: u64,
    steps: u32,
    cfg: f64,
    sampler: &'a str,
    scheduler: &'a str,
    denoise: f64,
}

/// A `KSampler` over `[model, positive, negative, latent]`; its node id.
fn add_ksampler(
    prompt: &mut ApiPrompt,
    title: &str,
    sockets: [&Socket; 4],
    settings: &SamplerSettings<'_>,
) -> String {
    let [model, positive, negative, latent] = sockets;
    prompt.add(
        link(
            link(
                link(link(Node::new("KSampler"), "model", model), "positive", positive),
                "negative",
                negative,
            ),
            "latent_image",
            latent,
        )
        .with("seed", settings.seed)
        .with("steps", settings.steps)
        .with("cfg", settings.cfg)
        .with("sampler_name", settings.sampler)
        .with("scheduler", settings.scheduler)
        .with("denoise", settings.denoise)
        .with_title(title),
    )
}

/// A `SaveImage` of `image`; its node id.
fn add_save_image(prompt: &mut ApiPrompt, image: &Socket, filename_prefix: &str, title: &str) -> String {
    prompt.add(
        link(Node::new("SaveImage"), "images", image)
            .with("filename_prefix", filename_prefix)
            .with_title(title),
    )
}

/// Text to image with a single-file checkpoint: the common case, kept as its own small type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextToImage {
    pub checkpoint: String,
    pub prompt: String,
    pub negative_prompt: String,
    pub width: u32,
    pub height: u32,
    pub batch_size: u32,
    pub steps: u32,
    pub cfg: f64,
    pub sampler: String,
    pub scheduler: String,
    pub seed: u64,
    pub denoise: f64,
    pub loras: Vec<LoraSpec>,
    pub filename_prefix: String,
}

impl TextToImage {
    pub fn generation(&self) -> Generation {
        Generation {
            family: ModelFamily::guess(&self.checkpoint),
            model: ModelSource::Checkpoint {
                name: self.checkpoint.clone(),
            },
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            canvas: Canvas::Empty {
                width: self.width,
                height: self.height,
                batch_size: self.batch_size,
            },
            steps: self.steps,
            cfg: self.cfg,
            sampler: self.sampler.clone(),
            scheduler: self.scheduler.clone(),
            seed: self.seed,
            denoise: self.denoise,
            guidance: 3.5,
            loras: self.loras.clone(),
            controlnets: Vec::new(),
            hires_fix: None,
            upscale_model: None,
            filename_prefix: self.filename_prefix.clone(),
        }
    }

    pub fn build(&self) -> BuiltGraph {
        self.generation().build()
    }
}

/// An image in ComfyUI's input folder made larger in passes: each pass runs the upscale model
/// (when there is one), then resamples to that pass's exact size, then (when asked) repaints
/// details with a low-denoise img2img through tiled VAE nodes, so large images fit in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upscale {
    pub image: String,
    /// The source's size: each pass's exact size is computed from it.
    pub width: u32,
    pub height: u32,
    /// The overall factor; each of the `passes` multiplies by its `passes`-th root.
    pub scale: f64,
    pub passes: u32,
    /// An upscale model (`models/upscale_models`); `None` resamples only.
    pub model: Option<String>,
    /// `ImageScale`'s method: nearest-exact, bilinear, area, bicubic, lanczos.
    pub filter: String,
    pub refine: Option<Refinement>,
    pub filename_prefix: String,
}

/// The img2img pass that follows each upscale pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refinement {
    pub checkpoint: String,
    pub prompt: String,
    pub negative_prompt: String,
    pub steps: u32,
    pub cfg: f64,
    pub sampler: String,
    pub scheduler: String,
    pub seed: u64,
    pub denoise: f64,
    /// The tiled VAE nodes' tile side in pixels (a multiple of 64).
    pub tile_size: u32,
}

impl Upscale {
    /// The size after each pass. With refinement a size is rounded to a multiple of 8, which the
    /// VAE needs.
    pub fn pass_sizes(&self) -> Vec<(u32, u32)> {
        let passes = self.passes.max(1);
        (1..=passes)
            .map(|pass| {
                let factor = self.scale.powf(f64::from(pass) / f64::from(passes));
                let side = |value: u32| {
                    let scaled = (f64::from(value) * factor).round().max(1.0) as u32;
                    if self.refine.is_some() {
                        (scaled.div_ceil(8) * 8).max(8)
                    } else {
                        scaled
                    }
                };
                (side(self.width), side(self.height))
            })
            .collect()
    }

    pub fn build(&self) -> BuiltGraph {
        let mut prompt = ApiPrompt::new();
        let mut image: Socket = (
            prompt.add(
                Node::new("LoadImage")
                    .with("image", self.image.as_str())
                    .with_title("Image"),
            ),
            0,
        );
        let loader = self.model.as_ref().map(|model| {
            prompt.add(
                Node::new("UpscaleModelLoader")
                    .with("model_name", model.as_str())
                    .with_title("Upscale model"),
            )
        });
        let refiner = self
            .refine
            .as_ref()
            .map(|refine| refiner_nodes(&mut prompt, refine));
        let mut sampler_node = String::new();
        for (index, (width, height)) in self.pass_sizes().into_iter().enumerate() {
            let pass = index + 1;
            if let Some(loader) = &loader {
                let upscaled = prompt.add(
                    link(Node::new("ImageUpscaleWithModel"), "image", &image)
                        .with_link("upscale_model", loader, 0)
                        .with_title(format!("Pass {pass}: upscale model")),
                );
                image = (upscaled, 0);
            }
            let resized = prompt.add(
                link(Node::new("ImageScale"), "image", &image)
                    .with("upscale_method", self.filter.as_str())
                    .with("width", width)
                    .with("height", height)
                    .with("crop", "disabled")
                    .with_title(format!("Pass {pass}: {width} x {height}")),
            );
            image = (resized, 0);
            if let (Some(refine), Some(nodes)) = (&self.refine, &refiner) {
                let label = PassLabel {
                    name: &format!("Pass {pass}"),
                    verb: "refine",
                    tile_size: Some(refine.tile_size),
                };
                let (decoded, sampler) = img2img_pass(&mut prompt, refine, nodes, &image, &label);
                image = decoded;
                sampler_node = sampler;
            }
        }
        let output_node = add_save_image(&mut prompt, &image, &self.filename_prefix, "Save");
        BuiltGraph {
            prompt,
            sampler_node,
            output_node,
        }
    }
}

/// What finds the part of an image to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CutoutMethod {
    /// A background-removal model (`models/background_removal`, BiRefNet) through ComfyUI's
    /// `LoadBackgroundRemovalModel` and `RemoveBackground`: the foreground.
    Background { model: String },
    /// SAM 3 (a checkpoint in `models/checkpoints`) finding what `prompt` names, through
    /// `SAM3_Detect` with the checkpoint's own text encoder.
    Segment {
        checkpoint: String,
        prompt: String,
        threshold: f64,
    },
}

/// A part of an image in ComfyUI's input folder kept and the rest made transparent, with
/// ComfyUI's own nodes (0.26 on); saves the cut-out (RGBA) and its mask (white is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cutout {
    pub image: String,
    pub method: CutoutMethod,
    /// Keep the rest instead (the background, or everything but what was found).
    pub invert: bool,
    pub filename_prefix: String,
}

impl Cutout {
    pub fn build(&self) -> BuiltGraph {
        let mut prompt = ApiPrompt::new();
        let image: Socket = (
            prompt.add(
                Node::new("LoadImage")
                    .with("image", self.image.as_str())
                    .with_title("Image"),
            ),
            0,
        );
        let (found, title) = match &self.method {
            CutoutMethod::Background { model } => {
                let loader = prompt.add(
                    Node::new("LoadBackgroundRemovalModel")
                        .with("bg_removal_name", model.as_str())
                        .with_title("Background removal model"),
                );
                let mask = prompt.add(
                    link(Node::new("RemoveBackground"), "image", &image)
                        .with_link("bg_removal_model", &loader, 0)
                        .with_title("Foreground"),
                );
                (mask, "Foreground")
            }
            CutoutMethod::Segment {
                checkpoint,
                prompt: text,
                threshold,
            } => {
                let sam3 = Sam3 {
                    checkpoint,
                    text,
                    threshold: *threshold,
                };
                // One merged, refined mask.
                (add_sam3(&mut prompt, &image, &sam3, 2, false, "Found"), "Found")
            }
        };
        let mut kept: Socket = (found, 0);
        if self.invert {
            kept = (
                prompt.add(link(Node::new("InvertMask"), "mask", &kept).with_title("The rest")),
                0,
            );
        }
        // JoinImageWithAlpha takes ComfyUI's mask convention (white is transparent): the kept
        // part's mask goes in inverted.
        let transparent =
            prompt.add(link(Node::new("InvertMask"), "mask", &kept).with_title("Transparent part"));
        let joined = prompt.add(
            link(Node::new("JoinImageWithAlpha"), "image", &image)
                .with_link("alpha", &transparent, 0)
                .with_title(format!("{title}, background transparent")),
        );
        let output_node = add_save_image(&mut prompt, &(joined, 0), &self.filename_prefix, "Cut-out");
        let mask_image =
            prompt.add(link(Node::new("MaskToImage"), "mask", &kept).with_title("Mask as image"));
        add_save_image(
            &mut prompt,
            &(mask_image, 0),
            &format!("{}-mask", self.filename_prefix),
            "Mask",
        );
        BuiltGraph {
            prompt,
            sampler_node: String::new(),
            output_node,
        }
    }
}

/// What finds things in an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DetectionMethod {
    /// RT-DETR (a model in `models/diffusion_models` loaded by `UNETLoader`) finding the 80 COCO
    /// classes through `RTDETR_detect`; `class_name` "all" or one class.
    Objects {
        model: String,
        threshold: f64,
        class_name: String,
        max_detections: u32,
    },
    /// SAM 3 finding what `prompt` names, as in [`CutoutMethod::Segment`].
    Text {
        checkpoint: String,
        prompt: String,
        threshold: f64,
    },
}

/// Finds objects in an image in ComfyUI's input folder (0.26 on): the boxes shown as text by
/// `PreviewAny` (a JSON list per image of `{x, y, width, height, label?, score}`), and the image
/// with the boxes drawn by `DrawBBoxes`, saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub image: String,
    pub method: DetectionMethod,
    pub filename_prefix: String,
}

/// The title of the node whose text output holds a detection's boxes.
pub const DETECTION_BOXES_TITLE: &str = "Boxes";

impl Detection {
    pub fn build(&self) -> BuiltGraph {
        let mut prompt = ApiPrompt::new();
        let image: Socket = (
            prompt.add(
                Node::new("LoadImage")
                    .with("image", self.image.as_str())
                    .with_title("Image"),
            ),
            0,
        );
        let boxes: Socket = match &self.method {
            DetectionMethod::Objects {
                model,
                threshold,
                class_name,
                max_detections,
            } => {
                let loader = prompt.add(
                    Node::new("UNETLoader")
                        .with("unet_name", model.as_str())
                        .with("weight_dtype", "default")
                        .with_title("RT-DETR"),
                );
                let detector = prompt.add(
                    link(Node::new("RTDETR_detect"), "image", &image)
                        .with_link("model", &loader, 0)
                        .with("threshold", *threshold)
                        .with("class_name", class_name.as_str())
                        .with("max_detections", *max_detections)
                        .with_title("Detect"),
                );
                (detector, 0)
            }
            DetectionMethod::Text {
                checkpoint,
                prompt: text,
                threshold,
            } => {
                let sam3 = Sam3 {
                    checkpoint,
                    text,
                    threshold: *threshold,
                };
                // One box per object found; output 1 is the boxes.
                (add_sam3(&mut prompt, &image, &sam3, 0, true, "Detect"), 1)
            }
        };
        prompt.add(link(Node::new("PreviewAny"), "source", &boxes).with_title(DETECTION_BOXES_TITLE));
        let drawn = prompt.add(
            link(Node::new("DrawBBoxes"), "image", &image)
                .with_link("bboxes", &boxes.0, boxes.1)
                .with_title("Boxes drawn"),
        );
        let output_node = add_save_image(&mut prompt, &(drawn, 0), &self.filename_prefix, "Detections");
        BuiltGraph {
            prompt,
            sampler_node: String::new(),
            output_node,
        }
    }
}

/// A rectangle of an image in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Regions of an image repainted in detail (face restoration the way detailers do it, with core
/// nodes only): each region cropped, scaled so its longer side is `detail_size`, repainted by a
/// low-denoise img2img, scaled back and pasted over the image through a feathered mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionDetail {
    pub image: String,
    pub regions: Vec<Region>,
    pub refine: Refinement,
    /// The longer side each region is repainted at (a multiple of 8).
    pub detail_size: u32,
    pub filename_prefix: String,
}

impl RegionDetail {
    /// The size a region is repainted at: its longer side `detail_size`, both sides multiples of
    /// 8 (the VAE's grid), at least 64.
    pub fn detail_size_of(&self, region: &Region) -> (u32, u32) {
        let longer = region.width.max(region.height).max(1);
        let scale = f64::from(self.detail_size) / f64::from(longer);
        let side = |length: u32| {
            let scaled = (f64::from(length) * scale / 8.0).round() as u32 * 8;
            scaled.max(64)
        };
        (side(region.width), side(region.height))
    }

    pub fn build(&self) -> BuiltGraph {
        let mut prompt = ApiPrompt::new();
        let mut image: Socket = (
            prompt.add(
                Node::new("LoadImage")
                    .with("image", self.image.as_str())
                    .with_title("Image"),
            ),
            0,
        );
        let source = image.clone();
        let nodes = refiner_nodes(&mut prompt, &self.refine);
        let mut sampler_node = String::new();
        for (index, region) in self.regions.iter().enumerate() {
            let number = index + 1;
            let crop = prompt.add(
                link(Node::new("ImageCrop"), "image", &source)
                    .with("width", region.width)
                    .with("height", region.height)
                    .with("x", region.x)
                    .with("y", region.y)
                    .with_title(format!("Region {number}: crop")),
            );
            let (width, height) = self.detail_size_of(region);
            let enlarged = add_scale(
                &mut prompt,
                &(crop, 0),
                (width, height),
                format!("Region {number}: enlarge"),
            );
            let label = PassLabel {
                name: &format!("Region {number}"),
                verb: "repaint",
                tile_size: None,
            };
            let (repainted, sampler) = img2img_pass(&mut prompt, &self.refine, &nodes, &enlarged, &label);
            sampler_node = sampler;
            let restored = add_scale(
                &mut prompt,
                &repainted,
                (region.width, region.height),
                format!("Region {number}: back to size"),
            );
            // The repainted region fades into the image over a sixth of its shorter side.
            let solid = prompt.add(
                Node::new("SolidMask")
                    .with("value", 1.0)
                    .with("width", region.width)
                    .with("height", region.height)
                    .with_title(format!("Region {number}: mask")),
            );
            let feather = (region.width.min(region.height) / 6).max(1);
            let feathered = prompt.add(
                Node::new("FeatherMask")
                    .with_link("mask", &solid, 0)
                    .with("left", feather)
                    .with("top", feather)
                    .with("right", feather)
                    .with("bottom", feather)
                    .with_title(format!("Region {number}: feathered mask")),
            );
            let pasted = prompt.add(
                link(
                    link(Node::new("ImageCompositeMasked"), "destination", &image),
                    "source",
                    &restored,
                )
                .with("x", region.x)
                .with("y", region.y)
                .with("resize_source", false)
                .with_link("mask", &feathered, 0)
                .with_title(format!("Region {number}: paste")),
            );
            image = (pasted, 0);
        }
        let output_node = add_save_image(&mut prompt, &image, &self.filename_prefix, "Restored");
        BuiltGraph {
            prompt,
            sampler_node,
            output_node,
        }
    }
}

/// An `ImageScale` (lanczos) of `image` to `size`.
/// What SAM 3 is asked to find, and with which checkpoint.
struct Sam3<'a> {
    checkpoint: &'a str,
    text: &'a str,
    threshold: f64,
}

/// SAM 3 loaded from its checkpoint and asked for `sam3.text` in `image`; returns the detector's
/// node id (output 0 masks, output 1 boxes).
fn add_sam3(
    prompt: &mut ApiPrompt,
    image: &Socket,
    sam3: &Sam3<'_>,
    refine_iterations: u32,
    individual_masks: bool,
    title: &str,
) -> String {
    let loader = prompt.add(
        Node::new("CheckpointLoaderSimple")
            .with("ckpt_name", sam3.checkpoint)
            .with_title("SAM 3"),
    );
    let condition = prompt.add(
        Node::new("CLIPTextEncode")
            .with("text", sam3.text)
            .with_link("clip", &loader, 1)
            .with_title("What to find"),
    );
    prompt.add(
        link(Node::new("SAM3_Detect"), "image", image)
            .with_link("model", &loader, 0)
            .with_link("conditioning", &condition, 0)
            .with("threshold", sam3.threshold)
            .with("refine_iterations", refine_iterations)
            .with("individual_masks", individual_masks)
            .with_title(title),
    )
}

fn add_scale(prompt: &mut ApiPrompt, image: &Socket, size: (u32, u32), title: String) -> Socket {
    let node = prompt.add(
        link(Node::new("ImageScale"), "image", image)
            .with("upscale_method", "lanczos")
            .with("width", size.0)
            .with("height", size.1)
            .with("crop", "disabled")
            .with_title(title),
    );
    (node, 0)
}

/// The checkpoint and prompts a refinement samples with: (model, vae, positive, negative).
struct RefinerNodes {
    model: Socket,
    vae: Socket,
    positive: Socket,
    negative: Socket,
}

impl Refinement {
    fn sampler_settings(&self) -> SamplerSettings<'_> {
        SamplerSettings {
            seed: self.seed,
            steps: self.steps,
            cfg: self.cfg,
            sampler: &self.sampler,
            scheduler: &self.scheduler,
            denoise: self.denoise,
        }
    }
}

fn refiner_nodes(prompt: &mut ApiPrompt, refine: &Refinement) -> RefinerNodes {
    let checkpoint = prompt.add(
        Node::new("CheckpointLoaderSimple")
            .with("ckpt_name", refine.checkpoint.as_str())
            .with_title("Refiner checkpoint"),
    );
    let clip: Socket = (checkpoint.clone(), 1);
    RefinerNodes {
        positive: encode_text(prompt, &clip, &refine.prompt, "Refiner prompt"),
        negative: encode_text(prompt, &clip, &refine.negative_prompt, "Refiner negative prompt"),
        model: (checkpoint.clone(), 0),
        vae: (checkpoint, 2),
    }
}

/// A `CLIPTextEncode` of `text` with `clip`; its conditioning.
fn encode_text(prompt: &mut ApiPrompt, clip: &Socket, text: &str, title: &str) -> Socket {
    let node = prompt.add(
        link(Node::new("CLIPTextEncode"), "clip", clip)
            .with("text", text)
            .with_title(title),
    );
    (node, 0)
}

/// How one img2img pass is named and whether its VAE nodes are tiled.
struct PassLabel<'a> {
    /// "Region 2" or "Pass 1": the start of each node's title.
    name: &'a str,
    /// What the sampler does: "repaint" or "refine".
    verb: &'a str,
    /// Tile size for `VAEEncodeTiled`/`VAEDecodeTiled`; `None` for the plain nodes.
    tile_size: Option<u32>,
}

/// One low-denoise img2img over `image`: (the decoded image, the sampler).
fn img2img_pass(
    prompt: &mut ApiPrompt,
    refine: &Refinement,
    nodes: &RefinerNodes,
    image: &Socket,
    label: &PassLabel<'_>,
) -> (Socket, String) {
    let vae_node = |plain: &str, tiled: &str| match label.tile_size {
        None => Node::new(plain),
        Some(tile_size) => Node::new(tiled)
            .with("tile_size", tile_size)
            .with("overlap", 64)
            .with("temporal_size", 64)
            .with("temporal_overlap", 8),
    };
    let name = label.name;
    let encoded = prompt.add(
        link(
            link(vae_node("VAEEncode", "VAEEncodeTiled"), "pixels", image),
            "vae",
            &nodes.vae,
        )
        .with_title(format!("{name}: encode")),
    );
    let latent: Socket = (encoded, 0);
    let sampler = add_ksampler(
        prompt,
        &format!("{name}: {}", label.verb),
        [&nodes.model, &nodes.positive, &nodes.negative, &latent],
        &refine.sampler_settings(),
    );
    let decoded = prompt.add(
        link(vae_node("VAEDecode", "VAEDecodeTiled"), "vae", &nodes.vae)
            .with_link("samples", &sampler, 0)
            .with_title(format!("{name}: decode")),
    );
    ((decoded, 0), sampler)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::InputValue;
    use crate::object_info::ObjectInfo;
    use crate::validate::{ValidationOptions, validate};

    fn request() -> TextToImage {
        TextToImage {
            checkpoint: "tiny.ckpt".into(),
            prompt: "a cat".into(),
            negative_prompt: String::new(),
            width: 64,
            height: 64,
            batch_size: 1,
            steps: 4,
            cfg: 7.0,
            sampler: "euler".into(),
            scheduler: "normal".into(),
            seed: u64::MAX,
            denoise: 1.0,
            loras: vec![
                LoraSpec {
                    name: "a.safetensors".into(),
                    strength_model: 0.8,
                    strength_clip: 1.0,
                },
                LoraSpec {
                    name: "b.safetensors".into(),
                    strength_model: 0.5,
                    strength_clip: 0.5,
                },
            ],
            filename_prefix: "test".into(),
        }
    }

    fn fixture() -> ObjectInfo {
        let raw: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/object_info-0.3.75.json"))
                .expect("fixture parses");
        ObjectInfo::from_json(&raw)
    }

    /// Every error is a model or input file the fixture's server does not have: the graph itself
    /// (classes, links, types, ranges) is what ComfyUI expects.
    fn assert_only_missing_files(built: &BuiltGraph) {
        let report = validate(&built.prompt, &fixture(), &ValidationOptions::default());
        for diagnostic in report.errors() {
            let input = diagnostic.input.as_deref().unwrap_or_default();
            let file_input = [
                "ckpt_name",
                "lora_name",
                "unet_name",
                "clip_name",
                "clip_name1",
                "clip_name2",
                "clip_name3",
                "vae_name",
                "control_net_name",
                "model_name",
                "image",
            ]
            .contains(&input);
            assert!(file_input, "unexpected error {diagnostic:?}");
        }
    }

    #[test]
    fn chains_loras_between_loader_and_consumers() {
        let built = request().build();
        let prompt = &built.prompt;
        let sampler = prompt.get(&built.sampler_node).unwrap();
        let InputValue::Link(model) = InputValue::from_json(&sampler.inputs["model"]) else {
            panic!("model is a link")
        };
        let last_lora = prompt.get(&model.node_id).unwrap();
        assert_eq!(last_lora.class_type, "LoraLoader");
        assert_eq!(last_lora.inputs["lora_name"], "b.safetensors");
        let InputValue::Link(previous) = InputValue::from_json(&last_lora.inputs["model"]) else {
            panic!()
        };
        assert_eq!(
            prompt.get(&previous.node_id).unwrap().inputs["lora_name"],
            "a.safetensors"
        );
        assert_eq!(sampler.inputs["seed"], serde_json::json!(u64::MAX));
        assert_eq!(prompt.nodes.len(), 9);
        assert_only_missing_files(&built);
    }

    #[test]
    fn every_canvas_and_refinement_is_a_valid_graph() {
        let base = request().generation();
        let canvases = [
            Canvas::Image {
                image: "in.png".into(),
            },
            Canvas::Inpaint {
                image: "in.png".into(),
                mask: None,
                grow_mask_by: 6,
            },
            Canvas::Inpaint {
                image: "in.png".into(),
                mask: Some("mask.png".into()),
                grow_mask_by: 6,
            },
            Canvas::Outpaint {
                image: "in.png".into(),
                left: 16,
                top: 0,
                right: 16,
                bottom: 0,
                feathering: 8,
            },
        ];
        for canvas in canvases {
            let mut generation = base.clone();
            generation.canvas = canvas.clone();
            generation.denoise = 0.6;
            assert_only_missing_files(&generation.build());
        }
        let mut generation = base.clone();
        generation.controlnets = vec![
            ControlNetSpec {
                model: "a.safetensors".into(),
                image: "edges.png".into(),
                strength: 0.8,
                start_percent: 0.0,
                end_percent: 1.0,
                preprocessor: Some(Preprocessor {
                    class_type: "Canny".into(),
                    image_input: "image".into(),
                    settings: vec![
                        ("low_threshold".into(), serde_json::json!(0.3)),
                        ("high_threshold".into(), serde_json::json!(0.7)),
                    ],
                }),
            },
            ControlNetSpec {
                model: "b.safetensors".into(),
                image: "depth.png".into(),
                strength: 0.5,
                start_percent: 0.0,
                end_percent: 0.7,
                preprocessor: None,
            },
        ];
        generation.hires_fix = Some(HiresFix {
            scale: 1.5,
            steps: 4,
            denoise: 0.5,
            upscale_method: "bislerp".into(),
        });
        generation.upscale_model = Some("x2.safetensors".into());
        let built = generation.build();
        let classes: Vec<&str> = built
            .prompt
            .nodes
            .values()
            .map(|node| node.class_type.as_str())
            .collect();
        assert_eq!(
            classes
                .iter()
                .filter(|class| **class == "ControlNetApplyAdvanced")
                .count(),
            2
        );
        assert_eq!(classes.iter().filter(|class| **class == "KSampler").count(), 2);
        assert!(classes.contains(&"ImageUpscaleWithModel") && classes.contains(&"LatentUpscaleBy"));
        assert_eq!(classes.iter().filter(|class| **class == "Canny").count(), 1);
        assert_only_missing_files(&built);
    }

    #[test]
    fn upscales_run_in_passes_of_exact_sizes() {
        let mut upscale = Upscale {
            image: "photo.png".into(),
            width: 100,
            height: 60,
            scale: 4.0,
            passes: 2,
            model: Some("x2.safetensors".into()),
            filter: "lanczos".into(),
            refine: None,
            filename_prefix: "up".into(),
        };
        assert_eq!(upscale.pass_sizes(), [(200, 120), (400, 240)]);
        let classes = |built: &BuiltGraph| -> Vec<String> {
            built
                .prompt
                .nodes
                .values()
                .map(|node| node.class_type.clone())
                .collect()
        };
        let built = upscale.build();
        let found = classes(&built);
        assert_eq!(
            found
                .iter()
                .filter(|class| *class == "ImageUpscaleWithModel")
                .count(),
            2
        );
        assert_eq!(
            found
                .iter()
                .filter(|class| *class == "UpscaleModelLoader")
                .count(),
            1
        );
        assert_only_missing_files(&built);
        upscale.scale = 1.5;
        upscale.passes = 1;
        upscale.model = None;
        upscale.refine = Some(Refinement {
            checkpoint: "tiny.ckpt".into(),
            prompt: "sharp".into(),
            negative_prompt: String::new(),
            steps: 4,
            cfg: 5.0,
            sampler: "euler".into(),
            scheduler: "normal".into(),
            seed: 1,
            denoise: 0.3,
            tile_size: 512,
        });
        assert_eq!(upscale.pass_sizes(), [(152, 96)], "rounded up to multiples of 8");
        let built = upscale.build();
        let found = classes(&built);
        assert!(found.contains(&"VAEEncodeTiled".to_owned()) && found.contains(&"VAEDecodeTiled".to_owned()));
        assert!(!found.contains(&"ImageUpscaleWithModel".to_owned()));
        assert_eq!(built.prompt.nodes[&built.sampler_node].class_type, "KSampler");
        assert_only_missing_files(&built);
    }

    #[test]
    fn families_build_their_own_graphs() {
        for (family, encoders) in [
            (
                ModelFamily::Flux,
                vec![
                    "t5xxl_fp8.safetensors".to_owned(),
                    "clip_l.safetensors".to_owned(),
                ],
            ),
            (
                ModelFamily::StableDiffusion3,
                vec![
                    "clip_g.safetensors".into(),
                    "clip_l.safetensors".into(),
                    "t5xxl.safetensors".into(),
                ],
            ),
            (
                ModelFamily::StableDiffusionXl,
                vec!["clip_l.safetensors".into(), "clip_g.safetensors".into()],
            ),
        ] {
            let mut generation = request().generation();
            generation.family = family;
            generation.loras.clear();
            generation.model = ModelSource::Components {
                diffusion_model: "model.safetensors".into(),
                weight_dtype: "default".into(),
                text_encoders: encoders,
                vae: "vae.safetensors".into(),
            };
            let built = generation.build();
            let classes: Vec<&str> = built
                .prompt
                .nodes
                .values()
                .map(|node| node.class_type.as_str())
                .collect();
            assert!(classes.contains(&"UNETLoader"));
            assert_eq!(classes.contains(&"FluxGuidance"), family == ModelFamily::Flux);
            assert_eq!(
                classes.contains(&"EmptySD3LatentImage"),
                family != ModelFamily::StableDiffusionXl
            );
            assert_only_missing_files(&built);
        }
        assert_eq!(ModelFamily::guess("flux1-dev-fp8.safetensors"), ModelFamily::Flux);
        assert_eq!(
            ModelFamily::recognize("flux1-dev-fp8.safetensors"),
            Ok(ModelFamily::Flux)
        );
        assert_eq!(
            ModelFamily::recognize("flux2_dev_fp8mixed.safetensors"),
            Err("Flux.2")
        );
        assert_eq!(
            ModelFamily::recognize("qwen_image_fp8_e4m3fn.safetensors"),
            Err("Qwen-Image")
        );
        assert_eq!(
            ModelFamily::recognize("z_image_turbo_bf16.safetensors"),
            Err("Z-Image")
        );
        assert_eq!(
            ModelFamily::recognize("tiny-sd15-micro.ckpt"),
            Ok(ModelFamily::StableDiffusion)
        );
        // Audio and video checkpoints sit in the same folder; none is given an image graph.
        for (name, family) in [
            ("stable-audio-open-1.0.safetensors", "Stable Audio"),
            ("tiny-stable-audio.ckpt", "Stable Audio"),
            ("ace_step_v1_3.5b.safetensors", "ACE-Step"),
            ("svd_xt.safetensors", "Stable Video Diffusion"),
            ("tiny-wan21-t2v.safetensors", "Wan"),
        ] {
            assert_eq!(ModelFamily::recognize(name), Err(family), "{name}");
        }
        assert_eq!(
            ModelFamily::recognize("sd_xl_base_1.0.safetensors"),
            Ok(ModelFamily::StableDiffusionXl)
        );
        assert_eq!(
            ModelFamily::guess("sd_xl_base_1.0.safetensors"),
            ModelFamily::StableDiffusionXl
        );
        assert_eq!(
            ModelFamily::guess("sd3.5_large.safetensors"),
            ModelFamily::StableDiffusion3
        );
        assert_eq!(
            ModelFamily::guess("v1-5-pruned.ckpt"),
            ModelFamily::StableDiffusion
        );
    }

    #[test]
    fn cutouts_keep_the_mask_as_alpha_and_save_both() {
        let classes = |cutout: &Cutout| {
            let mut classes: Vec<String> = cutout
                .build()
                .prompt
                .nodes
                .values()
                .map(|node| node.class_type.clone())
                .collect();
            classes.sort();
            classes
        };
        let background = Cutout {
            image: "in.png".into(),
            method: CutoutMethod::Background {
                model: "birefnet.safetensors".into(),
            },
            invert: false,
            filename_prefix: "cut".into(),
        };
        assert_eq!(
            classes(&background),
            [
                "InvertMask",
                "JoinImageWithAlpha",
                "LoadBackgroundRemovalModel",
                "LoadImage",
                "MaskToImage",
                "RemoveBackground",
                "SaveImage",
                "SaveImage"
            ]
        );
        let segment = Cutout {
            method: CutoutMethod::Segment {
                checkpoint: "sam3.safetensors".into(),
                prompt: "the dog".into(),
                threshold: 0.4,
            },
            invert: true,
            ..background
        };
        let built = segment.build();
        let detect = built
            .prompt
            .nodes
            .values()
            .find(|node| node.class_type == "SAM3_Detect")
            .expect("SAM3_Detect");
        assert_eq!(detect.inputs["threshold"], serde_json::json!(0.4));
        // Inverted: the found part's mask is inverted twice on its way to the alpha, once to
        // keep the rest and once for ComfyUI's mask convention.
        assert_eq!(
            classes(&segment)
                .iter()
                .filter(|class| *class == "InvertMask")
                .count(),
            2
        );
    }

    fn detail() -> RegionDetail {
        RegionDetail {
            image: "in.png".into(),
            regions: vec![
                Region {
                    x: 10,
                    y: 20,
                    width: 100,
                    height: 50,
                },
                Region {
                    x: 0,
                    y: 0,
                    width: 30,
                    height: 30,
                },
            ],
            refine: Refinement {
                checkpoint: "tiny.ckpt".into(),
                prompt: "a face".into(),
                negative_prompt: String::new(),
                steps: 4,
                cfg: 5.0,
                sampler: "euler".into(),
                scheduler: "normal".into(),
                seed: 7,
                denoise: 0.35,
                tile_size: 512,
            },
            detail_size: 512,
            filename_prefix: "detail".into(),
        }
    }

    #[test]
    fn region_detail_repaints_each_region_at_detail_size_and_pastes_it_back() {
        let detail = detail();
        // 100 x 50 to a longer side of 512: 512 x 256; 30 x 30: 512 x 512.
        assert_eq!(detail.detail_size_of(&detail.regions[0]), (512, 256));
        assert_eq!(detail.detail_size_of(&detail.regions[1]), (512, 512));
        let built = detail.build();
        assert_only_missing_files(&built);
        let nodes: Vec<_> = built.prompt.nodes.values().collect();
        let count = |class: &str| nodes.iter().filter(|node| node.class_type == class).count();
        assert_eq!(count("KSampler"), 2);
        assert_eq!(count("ImageCompositeMasked"), 2);
        assert_eq!(count("CheckpointLoaderSimple"), 1);
        let paste = nodes
            .iter()
            .find(|node| node.title() == Some("Region 1: paste"))
            .expect("paste");
        assert_eq!(paste.inputs["x"], serde_json::json!(10));
        assert_eq!(paste.inputs["y"], serde_json::json!(20));
        // The second paste goes over the first one's result, so both regions survive.
        let second = nodes
            .iter()
            .find(|node| node.title() == Some("Region 2: paste"))
            .expect("second paste");
        let destination = second.inputs["destination"][0].as_str().expect("a link");
        assert_eq!(built.prompt.nodes[destination].title(), Some("Region 1: paste"));
    }

    #[test]
    fn detections_show_their_boxes_as_text_and_draw_them() {
        let detection = Detection {
            image: "in.png".into(),
            method: DetectionMethod::Objects {
                model: "rt_detr.safetensors".into(),
                threshold: 0.3,
                class_name: "all".into(),
                max_detections: 20,
            },
            filename_prefix: "found".into(),
        };
        let built = detection.build();
        let preview = built
            .prompt
            .nodes
            .values()
            .find(|node| node.class_type == "PreviewAny")
            .expect("PreviewAny");
        assert_eq!(preview.title(), Some(DETECTION_BOXES_TITLE));
        let text = Detection {
            method: DetectionMethod::Text {
                checkpoint: "sam3.safetensors".into(),
                prompt: "a face".into(),
                threshold: 0.5,
            },
            ..detection
        };
        let built = text.build();
        let preview = built
            .prompt
            .nodes
            .values()
            .find(|node| node.class_type == "PreviewAny")
            .expect("PreviewAny");
        // SAM3_Detect's boxes are its second output.
        assert_eq!(preview.inputs["source"][1], serde_json::json!(1));
    }
}
