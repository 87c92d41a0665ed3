//! Generation requests: checking arguments, building graphs, validating them locally against the
//! backend's node definitions (so a bad request never reaches ComfyUI's queue) and submitting them.

use std::collections::BTreeMap;

use comfy_api::{SubmitOptions, SubmittedJob};
use comfy_workflow::builders::{
    Canvas, ControlNetSpec, Generation, HiresFix, LoraSpec, ModelFamily, ModelSource,
};
use comfy_workflow::diagnostic::code;
use comfy_workflow::{ApiPrompt, Report, validate};
use serde::Serialize;
use serde_json::Value;

use super::records::JobContext;
use super::{BackendEntry, Engine, EngineError};

/// A generation request; `None` means "use the default" (defaults depend on the model family).
#[derive(Debug, Clone, Default)]
pub struct GenerateRequest {
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub steps: Option<i64>,
    pub cfg: Option<f64>,
    pub sampler: Option<String>,
    pub scheduler: Option<String>,
    pub seed: Option<i128>,
    pub denoise: Option<f64>,
    pub batch_size: Option<i64>,
    pub checkpoint: Option<String>,
    /// Separate model files instead of a checkpoint: diffusion model, text encoders, VAE.
    pub diffusion_model: Option<String>,
    pub text_encoders: Vec<String>,
    pub vae: Option<String>,
    /// `stable_diffusion`, `stable_diffusion_xl`, `stable_diffusion_3` or `flux`; guessed from
    /// the model name when absent.
    pub family: Option<String>,
    pub loras: Vec<LoraRequest>,
    /// An input image (name in ComfyUI's input folder): image to image.
    pub image: Option<String>,
    /// With `image`: repaint where this mask is white; `"alpha"` repaints the image's transparent part.
    pub mask: Option<String>,
    /// With `image`: extend it by `[left, top, right, bottom]` pixels and paint the new area.
    pub outpaint: Option<[i64; 4]>,
    pub controlnets: Vec<ControlNetRequest>,
    pub hires_fix: Option<HiresFixRequest>,
    pub upscale_model: Option<String>,
    pub filename_prefix: Option<String>,
    pub backend: Option<String>,
    /// A style preset (built-in or saved) the prompt and settings are put in.
    pub style: Option<String>,
    /// `draft`, `standard` or `high`: the family's default steps scaled (explicit steps win).
    pub quality: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoraRequest {
    pub name: String,
    pub strength: Option<f64>,
    pub clip_strength: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct ControlNetRequest {
    pub model: String,
    pub image: String,
    pub strength: Option<f64>,
    pub start_percent: Option<f64>,
    pub end_percent: Option<f64>,
    /// Make the control image from `image` first: `canny`, `depth`, `openpose`... (the names
    /// the enhance module's `PREPROCESSORS` lists).
    pub preprocessor: Option<String>,
    /// The preprocessor node's settings by input name (its defaults otherwise).
    pub preprocessor_settings: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct HiresFixRequest {
    pub scale: Option<f64>,
    pub steps: Option<i64>,
    pub denoise: Option<f64>,
}

/// The parameters actually used, echoed back so a result can be reproduced.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationParameters {
    pub family: ModelFamily,
    pub model: ModelSource,
    pub seed: u64,
    pub steps: u32,
    pub cfg: f64,
    pub sampler: String,
    pub scheduler: String,
    pub denoise: f64,
    pub canvas: Canvas,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loras: Vec<LoraSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub controlnets: Vec<ControlNetSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hires_fix: Option<HiresFix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upscale_model: Option<String>,
}

/// A generation request's graph and what it is, before it is queued.
#[derive(Debug, Clone)]
pub struct BuiltGeneration {
    pub graph: ApiPrompt,
    pub parameters: GenerationParameters,
    /// The prompt as the graph has it (a style's template applied).
    pub prompt_text: String,
}

impl GenerationParameters {
    /// The model file that names this generation in the library and metrics.
    pub fn model_name(&self) -> &str {
        match &self.model {
            ModelSource::Checkpoint { name } => name,
            ModelSource::Components { diffusion_model, .. } => diffusion_model,
        }
    }
}

/// Sets `preview_method` in the prompt's `extra_data` (ComfyUI 0.3.75 and 0.26 honour it per prompt),
/// unless the caller set one.
fn ask_for_previews(options: &mut SubmitOptions, method: &str) {
    let extra = options.extra_data.get_or_insert_with(|| serde_json::json!({}));
    if let Some(extra) = extra.as_object_mut() {
        extra
            .entry("preview_method")
            .or_insert_with(|| serde_json::Value::from(method));
    }
}

/// The family of the model by its file name, or a refusal when the name says it is one the
/// builders do not build for (a graph for another family would run wrong, or not at all).
fn model_name(model: &ModelSource) -> &str {
    match model {
        ModelSource::Checkpoint { name } => name,
        ModelSource::Components { diffusion_model, .. } => diffusion_model,
    }
}

impl Engine {
    /// The family `model` is built as, or an error naming the family its name says and the
    /// backend's templates for that family (ComfyUI's own graphs for it), with whether each can
    /// run now.
    async fn family_of(&self, entry: &BackendEntry, model: &ModelSource) -> Result<ModelFamily, EngineError> {
        let name = model_name(model);
        let family = match ModelFamily::recognize(name) {
            Ok(family) => return Ok(family),
            Err(family) => family,
        };
        let templates = self.templates_for_family(entry, family).await;
        let advice = if templates.is_empty() {
            format!("Run a {family} workflow with run_workflow (this backend serves no {family} template)")
        } else {
            format!(
                "This backend's templates for it: {}; describe_template shows what one needs and run_template runs it, generate_video, generate_audio and edit_image pick one by intent (templates toolset)",
                templates.join(", ")
            )
        };
        Err(EngineError::bad_input(format!(
            "{name} looks like a {family} model (by its name); generate_image builds graphs for \
             SD1.x/2.x, SDXL, SD3.x and Flux.1 only, so nothing was queued. {advice}; or pass \
             family (stable_diffusion, stable_diffusion_xl, stable_diffusion_3, flux) if the name \
             misleads"
        )))
    }

    /// Up to three templates whose model families match `family` (by its full name, else its
    /// first word: `LTX-Video` finds `LTXV`), each as "name (runnable)" or "name (missing N
    /// files)"; empty when the backend serves no templates.
    async fn templates_for_family(&self, entry: &BackendEntry, family: &str) -> Vec<String> {
        let first_word = family.split(['-', '.', ' ']).next().unwrap_or(family);
        for model in [family, first_word] {
            let query = crate::templates::TemplateQuery {
                model: Some(model.to_owned()),
                limit: 3,
                backend: Some(entry.name.clone()),
                ..Default::default()
            };
            let Ok(found) = self.search_templates(&query).await else {
                return Vec::new();
            };
            if !found.templates.is_empty() {
                return found.templates.iter().map(describe_template_state).collect();
            }
        }
        Vec::new()
    }
}

fn describe_template_state(template: &crate::templates::TemplateSummary) -> String {
    let availability = &template.availability;
    let state = if availability.runnable {
        "runnable now".to_owned()
    } else if !availability.missing_nodes.is_empty() {
        format!("{} node classes missing", availability.missing_nodes.len())
    } else if !availability.missing_models.is_empty() {
        format!("{} model files missing", availability.missing_models.len())
    } else {
        availability
            .problem
            .clone()
            .unwrap_or_else(|| "cannot run".to_owned())
    };
    format!("{} ({state})", template.name)
}

pub fn parse_family(raw: &str) -> Result<ModelFamily, EngineError> {
    match raw
        .trim()
        .to_ascii_lowercase()
        .replace(['-', ' ', '.'], "_")
        .as_str()
    {
        "stable_diffusion" | "sd" | "sd1" | "sd15" | "sd1_5" | "sd2" => Ok(ModelFamily::StableDiffusion),
        "stable_diffusion_xl" | "sdxl" | "xl" => Ok(ModelFamily::StableDiffusionXl),
        "stable_diffusion_3" | "sd3" | "sd3_5" => Ok(ModelFamily::StableDiffusion3),
        "flux" => Ok(ModelFamily::Flux),
        other => Err(EngineError::bad_input(format!(
            "unknown model family {other:?}; use stable_diffusion, stable_diffusion_xl, stable_diffusion_3 or flux"
        ))),
    }
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: T,
    minimum: T,
    maximum: T,
) -> Result<T, EngineError> {
    if value < minimum || value > maximum {
        return Err(EngineError::bad_input(format!(
            "{name} must be between {minimum} and {maximum}, got {value}"
        )));
    }
    Ok(value)
}

/// `request` in `style`: the prompt in the template, the negative prompts joined, the style's
/// settings where the request has none.
pub fn apply_style(mut request: GenerateRequest, style: &comfy_store::Style) -> GenerateRequest {
    request.prompt = style.prompt.replace("{prompt}", request.prompt.trim());
    request.negative_prompt = match (request.negative_prompt.take(), style.negative_prompt.trim()) {
        (Some(own), "") => Some(own),
        (Some(own), theirs) if !own.trim().is_empty() => Some(format!("{own}, {theirs}")),
        (_, theirs) => Some(theirs.to_owned()),
    };
    let settings = &style.settings;
    let integer = |name: &str| settings.get(name).and_then(Value::as_i64);
    let text = |name: &str| settings.get(name).and_then(Value::as_str).map(str::to_owned);
    request.steps = request.steps.or(integer("steps"));
    request.width = request.width.or(integer("width"));
    request.height = request.height.or(integer("height"));
    request.cfg = request.cfg.or(settings.get("cfg").and_then(Value::as_f64));
    request.sampler = request.sampler.or(text("sampler"));
    request.scheduler = request.scheduler.or(text("scheduler"));
    request
}

/// A seed for a request that names none.
pub fn random_seed() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    // Seeds stay below 2^53 so that every JSON client reads them back exactly.
    u64::from_le_bytes([
        bytes[0],
        bytes[1],
        bytes[2],
        bytes[3],
        bytes[4],
        bytes[5],
        bytes[6] & 0x1f,
        0,
    ])
}

/// Model inputs whose choices are file lists that change when files are added.
const MODEL_INPUTS: &[&str] = &[
    "ckpt_name",
    "lora_name",
    "unet_name",
    "vae_name",
    "clip_name",
    "control_net_name",
    "model_name",
];

impl Engine {
    /// Validates `prompt` against `entry`'s node definitions. A stale cache never rejects a valid
    /// request: on any error, definitions older than [`REVALIDATE_AFTER`] are fetched again and the
    /// graph checked once more (a model or input file may have been added since), and model
    /// errors always refetch once.
    pub async fn validate_prompt(
        &self,
        entry: &BackendEntry,
        prompt: &ApiPrompt,
    ) -> Result<Report, EngineError> {
        let info = self.object_info(entry, false).await?;
        // The checks this backend's version makes (known once its definitions were fetched).
        let report = validate(prompt, &info, &entry.definitions.validation_options());
        let stale_models = report.errors().any(|diagnostic| {
            diagnostic.code == code::VALUE_NOT_IN_LIST
                && diagnostic
                    .input
                    .as_deref()
                    .is_some_and(|input| MODEL_INPUTS.contains(&input))
        });
        let old_cache = entry.object_info_age().is_some_and(|age| age > REVALIDATE_AFTER);
        if stale_models || (report.has_errors() && old_cache) {
            let info = self.object_info(entry, true).await?;
            return Ok(validate(prompt, &info, &entry.definitions.validation_options()));
        }
        Ok(report)
    }

    /// Validates `prompt`, records the job, then queues it on `entry`; returns the live job. The
    /// job id (also ComfyUI's prompt id) is in the store before anything is sent.
    pub async fn submit(
        &self,
        entry: &BackendEntry,
        prompt: &ApiPrompt,
        mut options: SubmitOptions,
        context: JobContext,
    ) -> Result<SubmittedJob, EngineError> {
        check_output_prefixes(prompt)?;
        let report = self.validate_prompt(entry, prompt).await?;
        // A rejection without node errors (no output nodes at all) would reach ComfyUI otherwise.
        if report.has_errors() || !report.is_accepted() {
            return Err(EngineError::Invalid {
                backend: entry.label(),
                report: Box::new(report),
            });
        }
        let titles: BTreeMap<String, String> = prompt
            .nodes
            .iter()
            .map(|(id, node)| {
                (
                    id.clone(),
                    node.title()
                        .map_or_else(|| node.class_type.clone(), str::to_owned),
                )
            })
            .collect();
        let job_id = options
            .prompt_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        options.prompt_id = Some(job_id.clone());
        if let Some(method) = &self.config.preview_method {
            ask_for_previews(&mut options, method);
        }
        let graph = prompt.to_json();
        self.record_new_job(&job_id, &entry.name, &graph, &context)
            .await?;
        match entry.backend.submit(&graph, titles, options).await {
            Ok(job) => {
                let submitted = comfy_store::JobUpdate::Submitted {
                    backend_id: entry.name.clone(),
                    prompt_id: job_id.clone(),
                };
                self.record_update(&job_id, submitted).await;
                self.spawn_recorder(entry.name.clone(), entry.backend.clone(), job_id, context);
                Ok(job)
            }
            Err(source) => {
                self.record_update(
                    &job_id,
                    comfy_store::JobUpdate::Failed {
                        error: source.to_string(),
                    },
                )
                .await;
                Err(entry.error(source))
            }
        }
    }

    /// Builds, validates and queues a generation graph (text to image, image to image, inpaint,
    /// outpaint, ControlNets, LoRAs, hires fix, model upscale) for the model's family.
    pub async fn generate(
        &self,
        request: &GenerateRequest,
    ) -> Result<(&BackendEntry, SubmittedJob, GenerationParameters), EngineError> {
        let (entry, built) = self.build_generation(request).await?;
        let context = JobContext {
            workflow: Some("generate_image".to_owned()),
            model: Some(built.parameters.model_name().to_owned()),
            prompt_text: built.prompt_text,
            parameters: serde_json::to_value(&built.parameters).unwrap_or(Value::Null),
            seed: Some(built.parameters.seed),
        };
        let job = self
            .submit(entry, &built.graph, SubmitOptions::default(), context)
            .await?;
        Ok((entry, job, built.parameters))
    }

    /// The graph a generation request makes, for the backend it would run on (nothing queued,
    /// not yet validated: `submit` validates).
    pub async fn build_generation(
        &self,
        request: &GenerateRequest,
    ) -> Result<(&BackendEntry, BuiltGeneration), EngineError> {
        if request.prompt.trim().is_empty() {
            return Err(EngineError::bad_input("prompt must not be empty"));
        }
        let styled;
        let request = match &request.style {
            Some(name) => {
                let style = self.style(name).await?;
                styled = apply_style(request.clone(), &style);
                &styled
            }
            None => request,
        };
        let entry = self.pick_backend(request.backend.as_deref())?;
        let model = self.model_source(entry, request).await?;
        let family = match &request.family {
            Some(raw) => parse_family(raw)?,
            None => self.family_of(entry, &model).await?,
        };
        let defaults = family.defaults();
        let size = i64::from(defaults.size);
        let width = in_range("width", request.width.unwrap_or(size), 16, 16_384)?;
        let height = in_range("height", request.height.unwrap_or(size), 16, 16_384)?;
        for (name, value) in [("width", width), ("height", height)] {
            if value % 8 != 0 {
                return Err(EngineError::bad_input(format!(
                    "{name} must be a multiple of 8 (latents are 1/8 of the image), got {value}; try {}",
                    (value / 8).max(2) * 8
                )));
            }
        }
        let steps = in_range(
            "steps",
            request.steps.unwrap_or(i64::from(match &request.quality {
                Some(quality) => crate::styles::quality_steps(quality, defaults.steps)?,
                None => defaults.steps,
            })),
            1,
            10_000,
        )?;
        let cfg = in_range("cfg", request.cfg.unwrap_or(defaults.cfg), 0.0, 100.0)?;
        let batch_size = in_range("batch_size", request.batch_size.unwrap_or(1), 1, 64)?;
        let seed = match request.seed {
            Some(seed) => u64::try_from(in_range("seed", seed, 0, i128::from(u64::MAX))?).unwrap_or_default(),
            None => random_seed(),
        };
        let canvas = match (&request.image, &request.mask, &request.outpaint) {
            (None, None, None) => Canvas::Empty {
                width: u32::try_from(width).unwrap_or(512),
                height: u32::try_from(height).unwrap_or(512),
                batch_size: u32::try_from(batch_size).unwrap_or(1),
            },
            (None, _, _) => {
                return Err(EngineError::bad_input(
                    "mask and outpaint need `image` (upload it with upload_image first)",
                ));
            }
            (Some(_), Some(_), Some(_)) => {
                return Err(EngineError::bad_input(
                    "give either mask (inpaint) or outpaint, not both",
                ));
            }
            (Some(image), Some(mask), None) => Canvas::Inpaint {
                image: image.clone(),
                mask: if mask.eq_ignore_ascii_case("alpha") {
                    None
                } else {
                    Some(mask.clone())
                },
                grow_mask_by: 6,
            },
            (Some(image), None, Some([left, top, right, bottom])) => {
                let mut sides = [0u32; 4];
                for (slot, (name, value)) in
                    sides
                        .iter_mut()
                        .zip([("left", left), ("top", top), ("right", right), ("bottom", bottom)])
                {
                    *slot =
                        u32::try_from(in_range(&format!("outpaint {name}"), *value, 0, 4096)?).unwrap_or(0);
                }
                if sides.iter().all(|side| *side == 0) {
                    return Err(EngineError::bad_input(
                        "outpaint needs at least one side above 0 pixels",
                    ));
                }
                Canvas::Outpaint {
                    image: image.clone(),
                    left: sides[0],
                    top: sides[1],
                    right: sides[2],
                    bottom: sides[3],
                    feathering: 8,
                }
            }
            (Some(image), None, None) => Canvas::Image { image: image.clone() },
        };
        let default_denoise = if matches!(canvas, Canvas::Image { .. }) {
            0.6
        } else {
            1.0
        };
        let denoise = in_range("denoise", request.denoise.unwrap_or(default_denoise), 0.0, 1.0)?;
        let mut loras = Vec::new();
        for lora in &request.loras {
            if lora.name.trim().is_empty() {
                return Err(EngineError::bad_input("a LoRA needs a name"));
            }
            let strength = in_range("LoRA strength", lora.strength.unwrap_or(1.0), -100.0, 100.0)?;
            let clip_strength = in_range(
                "LoRA clip_strength",
                lora.clip_strength.unwrap_or(strength),
                -100.0,
                100.0,
            )?;
            loras.push(LoraSpec {
                name: lora.name.clone(),
                strength_model: strength,
                strength_clip: clip_strength,
            });
        }
        let mut controlnets = Vec::new();
        for controlnet in &request.controlnets {
            let start_percent = in_range(
                "ControlNet start_percent",
                controlnet.start_percent.unwrap_or(0.0),
                0.0,
                1.0,
            )?;
            let end_percent = in_range(
                "ControlNet end_percent",
                controlnet.end_percent.unwrap_or(1.0),
                start_percent,
                1.0,
            )?;
            controlnets.push(ControlNetSpec {
                model: controlnet.model.clone(),
                image: controlnet.image.clone(),
                strength: in_range(
                    "ControlNet strength",
                    controlnet.strength.unwrap_or(1.0),
                    0.0,
                    10.0,
                )?,
                start_percent,
                end_percent,
                preprocessor: match &controlnet.preprocessor {
                    Some(name) => Some(
                        self.resolve_preprocessor(entry, name, &controlnet.preprocessor_settings)
                            .await?,
                    ),
                    None => None,
                },
            });
        }
        let hires_fix = match &request.hires_fix {
            None => None,
            Some(hires) => Some(HiresFix {
                scale: in_range("hires_fix scale", hires.scale.unwrap_or(1.5), 1.0, 8.0)?,
                steps: u32::try_from(in_range(
                    "hires_fix steps",
                    hires.steps.unwrap_or((steps / 2).max(1)),
                    1,
                    10_000,
                )?)
                .unwrap_or(10),
                denoise: in_range("hires_fix denoise", hires.denoise.unwrap_or(0.5), 0.0, 1.0)?,
                upscale_method: "bislerp".to_owned(),
            }),
        };
        let parameters = GenerationParameters {
            family,
            model: model.clone(),
            seed,
            steps: u32::try_from(steps).unwrap_or(20),
            cfg,
            sampler: request
                .sampler
                .clone()
                .unwrap_or_else(|| defaults.sampler.to_owned()),
            scheduler: request
                .scheduler
                .clone()
                .unwrap_or_else(|| defaults.scheduler.to_owned()),
            denoise,
            canvas: canvas.clone(),
            loras,
            controlnets,
            hires_fix,
            upscale_model: request.upscale_model.clone(),
        };
        let graph = Generation {
            family,
            model,
            prompt: request.prompt.clone(),
            negative_prompt: request.negative_prompt.clone().unwrap_or_default(),
            canvas,
            steps: parameters.steps,
            cfg,
            sampler: parameters.sampler.clone(),
            scheduler: parameters.scheduler.clone(),
            seed,
            denoise,
            guidance: 3.5,
            loras: parameters.loras.clone(),
            controlnets: parameters.controlnets.clone(),
            hires_fix: parameters.hires_fix.clone(),
            upscale_model: parameters.upscale_model.clone(),
            filename_prefix: request
                .filename_prefix
                .clone()
                .unwrap_or_else(|| "comfyui-mcp".to_owned()),
        }
        .build();
        Ok((
            entry,
            BuiltGeneration {
                graph: graph.prompt,
                parameters,
                prompt_text: request.prompt.clone(),
            },
        ))
    }

    /// The model files of a request: a checkpoint (given, configured, or the backend's first), or
    /// separate files, which need a diffusion model, text encoders and a VAE together.
    async fn model_source(
        &self,
        entry: &BackendEntry,
        request: &GenerateRequest,
    ) -> Result<ModelSource, EngineError> {
        if let Some(diffusion_model) = &request.diffusion_model {
            if request.checkpoint.is_some() {
                return Err(EngineError::bad_input(
                    "give either checkpoint or diffusion_model, not both",
                ));
            }
            let (Some(vae), false) = (&request.vae, request.text_encoders.is_empty()) else {
                return Err(EngineError::bad_input(
                    "diffusion_model needs text_encoders (1 to 3 files from models/text_encoders) and vae (a file from models/vae); list_models shows what the backend has",
                ));
            };
            if request.text_encoders.len() > 3 {
                return Err(EngineError::bad_input("at most 3 text_encoders"));
            }
            return Ok(ModelSource::Components {
                diffusion_model: diffusion_model.clone(),
                weight_dtype: "default".to_owned(),
                text_encoders: request.text_encoders.clone(),
                vae: vae.clone(),
            });
        }
        if let Some(name) = request
            .checkpoint
            .as_ref()
            .or(self.config.default_checkpoint.as_ref())
        {
            return Ok(ModelSource::Checkpoint { name: name.clone() });
        }
        let name = self.default_checkpoint(entry).await?;
        Ok(ModelSource::Checkpoint { name })
    }

    /// The checkpoint a request that names none uses: the configured one, else the backend's
    /// first.
    pub(crate) async fn default_checkpoint(&self, entry: &BackendEntry) -> Result<String, EngineError> {
        if let Some(name) = &self.config.default_checkpoint {
            return Ok(name.clone());
        }
        let info = self.object_info(entry, false).await?;
        if !info.has_node("CheckpointLoaderSimple") {
            return Err(EngineError::Missing {
                backend: entry.label(),
                what: "node class CheckpointLoaderSimple".to_owned(),
                how_to_fix: "this ComfyUI lacks its core loader nodes; update or repair the ComfyUI install"
                    .to_owned(),
            });
        }
        let mut choices = info
            .combo_choices("CheckpointLoaderSimple", "ckpt_name")
            .unwrap_or_default();
        if choices.is_empty() {
            // The list may predate a newly added file.
            let fresh = self.object_info(entry, true).await?;
            choices = fresh
                .combo_choices("CheckpointLoaderSimple", "ckpt_name")
                .unwrap_or_default();
        }
        choices.into_iter().next().ok_or_else(|| EngineError::Missing {
            backend: entry.label(),
            what: "a checkpoint model".to_owned(),
            how_to_fix: "put a checkpoint file (.safetensors or .ckpt) into ComfyUI's models/checkpoints folder, or pass `checkpoint` (or `diffusion_model` with `text_encoders` and `vae`); list_models with folder=\"checkpoints\" shows what is there".to_owned(),
        })
    }
}

/// Reads an API-format workflow, with a clear error for UI-format files and other JSON.
/// Cached definitions younger than this are trusted when a graph fails against them; older ones
/// are fetched again first. Bounds what a stream of invalid requests costs ComfyUI: one fetch per
/// this long per backend.
const REVALIDATE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Longest `filename_prefix` accepted (ComfyUI joins it to its output folder and a counter).
const MAXIMUM_PREFIX_LENGTH: usize = 200;

/// Why a `filename_prefix` could write outside ComfyUI's output folder, if it could.
pub fn unsafe_prefix_reason(prefix: &str) -> Option<&'static str> {
    let windows_drive =
        prefix.len() >= 2 && prefix.as_bytes()[1] == b':' && prefix.as_bytes()[0].is_ascii_alphabetic();
    if prefix.starts_with(['/', '\\']) || windows_drive {
        Some("it is an absolute path")
    } else if prefix.split(['/', '\\']).any(|part| part.trim() == "..") {
        Some("it climbs out of the output folder with '..'")
    } else if prefix.contains('\0') {
        Some("it contains a NUL character")
    } else if prefix.chars().count() > MAXIMUM_PREFIX_LENGTH {
        Some("it is longer than 200 characters")
    } else {
        None
    }
}

/// Refuses, before anything is recorded or queued, an output prefix that points outside ComfyUI's
/// output folder; ComfyUI's own check is the last line, not the only one.
pub fn check_output_prefixes(prompt: &ApiPrompt) -> Result<(), EngineError> {
    for (id, node) in &prompt.nodes {
        let Some(Value::String(prefix)) = node.inputs.get("filename_prefix") else {
            continue;
        };
        if let Some(reason) = unsafe_prefix_reason(prefix) {
            return Err(EngineError::bad_input(format!(
                "node {id} ({}): filename_prefix {prefix:?} is refused because {reason}; use a relative name such as \"ComfyUI\" or \"project/shot\"",
                node.class_type
            )));
        }
    }
    Ok(())
}

pub fn parse_api_workflow(workflow: &Value) -> Result<ApiPrompt, EngineError> {
    let Some(object) = workflow.as_object() else {
        return Err(EngineError::bad_input(
            "the workflow must be a JSON object of node id -> node",
        ));
    };
    if object.contains_key("nodes") && object.contains_key("links") {
        return Err(EngineError::bad_input(
            "this is a UI-format workflow (it has `nodes` and `links`); export it with \"Export (API)\" in ComfyUI, or pass the API format",
        ));
    }
    if let Some(inner) = object.get("prompt").filter(|inner| inner.is_object()) {
        return parse_api_workflow(inner);
    }
    let limit = comfy_workflow::validate::MAXIMUM_GRAPH_NODES;
    if object.len() > limit {
        return Err(EngineError::bad_input(format!(
            "the workflow has {} nodes, more than the {limit} this server validates and queues",
            object.len()
        )));
    }
    for (id, node) in object {
        if node.get("class_type").and_then(Value::as_str).is_none() {
            return Err(EngineError::bad_input(format!(
                "node {id:?} has no class_type: not an API-format workflow"
            )));
        }
    }
    serde_json::from_value(workflow.clone())
        .map_err(|error| EngineError::bad_input(format!("the workflow is not a valid API prompt: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_style_wraps_the_prompt_and_yields_to_the_request() {
        let style = crate::styles::built_in("cinematic").unwrap();
        let request = GenerateRequest {
            prompt: " a lighthouse ".into(),
            negative_prompt: Some("text".into()),
            cfg: Some(3.0),
            ..Default::default()
        };
        let styled = apply_style(request, &style);
        assert!(
            styled.prompt.starts_with("cinematic film still of a lighthouse,"),
            "{}",
            styled.prompt
        );
        assert!(
            styled
                .negative_prompt
                .as_deref()
                .unwrap()
                .starts_with("text, cartoon")
        );
        assert_eq!(styled.cfg, Some(3.0), "the request's own cfg wins");
        let plain = apply_style(
            GenerateRequest {
                prompt: "x".into(),
                ..Default::default()
            },
            &style,
        );
        assert_eq!(plain.cfg, Some(6.5));
    }

    #[test]
    fn output_prefixes_stay_inside_the_output_folder() {
        for bad in [
            "../../x",
            "a/../../b",
            "/etc/x",
            "\\\\server\\share",
            "C:\\temp\\x",
            "..",
            "a\\..\\..\\b",
        ] {
            assert!(unsafe_prefix_reason(bad).is_some(), "{bad:?} was accepted");
        }
        for good in ["ComfyUI", "project/shot_01", "a..b", "%date:yyyy-MM-dd%/img", ""] {
            assert_eq!(unsafe_prefix_reason(good), None, "{good:?} was refused");
        }
        assert!(unsafe_prefix_reason(&"x".repeat(201)).is_some());
        let prompt: ApiPrompt = serde_json::from_value(serde_json::json!({
            "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "../../escape", "images": ["8", 0]}}
        }))
        .unwrap();
        let error = check_output_prefixes(&prompt).unwrap_err().to_string();
        assert!(
            error.contains("node 9 (SaveImage)") && error.contains("'..'"),
            "{error}"
        );
    }
}
