//! Enhancing through the backend: ControlNet preprocessors (core `Canny`, or the
//! comfyui_controlnet_aux pack's nodes where it is installed; a precise answer naming the pack
//! where it is not) and upscaling any image, in passes, with an upscale model or resampling,
//! optionally refined by a low-denoise img2img over tiled VAE nodes; cutting out the foreground
//! (background removal) or what a text names (SAM 3 segmentation) with ComfyUI's own nodes, the
//! node, model file, folder and download named where the backend lacks them.

use comfy_workflow::builders::{Cutout, CutoutMethod, Preprocessor, Refinement, Upscale};
use comfy_workflow::object_info::InputSection;
use comfy_workflow::{InputKind, ObjectInfo};
use serde_json::{Map, Value, json};

use crate::generate::GenerateRequest;
use crate::grids::{GridCell, GridPlan};
use crate::imaging::{ImageSource, RESULTS_SUBFOLDER, ResultPixels, content_name};
use crate::outputs::UploadRequest;
use crate::records::JobContext;
use crate::{BackendEntry, Engine, EngineError};
use comfy_api::SubmittedJob;

/// Each preprocessor a caller names, and the node classes that do it, in order of preference.
pub const PREPROCESSORS: &[(&str, &[&str])] = &[
    ("canny", &["Canny"]),
    (
        "depth",
        &[
            "DepthAnythingV2Preprocessor",
            "MiDaS-DepthMapPreprocessor",
            "Zoe-DepthMapPreprocessor",
        ],
    ),
    ("openpose", &["DWPreprocessor", "OpenposePreprocessor"]),
    ("lineart", &["LineArtPreprocessor"]),
    ("softedge", &["HEDPreprocessor", "PiDiNetPreprocessor"]),
    ("scribble", &["ScribblePreprocessor"]),
    ("normal", &["BAE-NormalMapPreprocessor"]),
    (
        "segmentation",
        &[
            "OneFormer-ADE20K-SemSegPreprocessor",
            "UniFormer-SemSegPreprocessor",
        ],
    ),
    ("tile", &["TilePreprocessor"]),
];

/// The pack every preprocessor but Canny comes from.
const AUX_PACK: &str = "comfyui_controlnet_aux";
const AUX_PACK_URL: &str = "https://github.com/Fannovel16/comfyui_controlnet_aux";

/// The preprocessor node `name` stands for on this backend, its settings from `settings` and
/// the node's own defaults.
pub fn preprocessor(
    info: &ObjectInfo,
    name: &str,
    settings: &Map<String, Value>,
) -> Result<Preprocessor, EngineError> {
    let key = name.trim().to_ascii_lowercase();
    let Some((_, classes)) = PREPROCESSORS.iter().find(|(known, _)| *known == key) else {
        let known: Vec<&str> = PREPROCESSORS.iter().map(|(known, _)| *known).collect();
        return Err(EngineError::bad_input(format!(
            "unknown preprocessor {name:?}; known: {}",
            known.join(", ")
        )));
    };
    let Some((class_type, definition)) = classes
        .iter()
        .find_map(|class| info.node(class).map(|definition| (*class, definition)))
    else {
        return Err(EngineError::bad_input(if key == "canny" {
            "this backend has no Canny node (core since ComfyUI 0.1): update ComfyUI".to_owned()
        } else {
            format!(
                "the {key} preprocessor needs one of {} from the {AUX_PACK} custom-node pack, which this backend lacks; install it with ComfyUI-Manager or `comfy node install {AUX_PACK}` ({AUX_PACK_URL}), restart ComfyUI, or pass a control image already made",
                classes.join(", ")
            )
        }));
    };
    let inputs: Vec<_> = definition
        .settable_inputs()
        .filter(|input| input.section == InputSection::Required)
        .collect();
    let image_input = inputs
        .iter()
        .find(|input| input.type_name() == "IMAGE")
        .map(|input| input.name.clone())
        .ok_or_else(|| EngineError::bad_input(format!("{class_type} takes no image on this backend")))?;
    let widgets: Vec<_> = inputs.iter().filter(|input| input.is_widget()).collect();
    if let Some(unknown) = settings
        .keys()
        .find(|name| !widgets.iter().any(|input| &input.name == *name))
    {
        let names: Vec<&str> = widgets.iter().map(|input| input.name.as_str()).collect();
        return Err(EngineError::bad_input(format!(
            "{class_type} has no setting {unknown:?}; it takes {}",
            names.join(", ")
        )));
    }
    let mut chosen = Vec::new();
    for input in widgets {
        let value = match settings.get(&input.name) {
            Some(value) => value.clone(),
            None => default_of(input.default_value(), &input.kind).ok_or_else(|| {
                EngineError::bad_input(format!("{class_type} needs a value for {}", input.name))
            })?,
        };
        chosen.push((input.name.clone(), value));
    }
    Ok(Preprocessor {
        class_type: class_type.to_owned(),
        image_input,
        settings: chosen,
    })
}

/// A widget's default: the declared one, else a combo's first choice.
fn default_of(declared: Option<&Value>, kind: &InputKind) -> Option<Value> {
    if let Some(value) = declared {
        return Some(value.clone());
    }
    match kind {
        InputKind::Combo(Some(choices)) => choices.first().cloned(),
        _ => None,
    }
}

/// An upscale as a caller asks for it.
#[derive(Debug, Clone)]
pub struct UpscaleRequest {
    pub image: ImageSource,
    pub scale: f64,
    pub passes: u32,
    /// `None` with `method` "model": the backend's first upscale model.
    pub model: Option<String>,
    /// `model` (default) or `pixel`.
    pub method: Option<String>,
    pub filter: Option<String>,
    pub refine: Option<RefineRequest>,
    pub backend: Option<String>,
}

/// The img2img refinement after each pass.
#[derive(Debug, Clone)]
pub struct RefineRequest {
    pub checkpoint: Option<String>,
    pub prompt: String,
    pub negative_prompt: String,
    pub denoise: f64,
    pub steps: u32,
    /// `None`: a random one.
    pub seed: Option<u64>,
    pub tile_size: u32,
}

/// Largest side an upscale may make.
pub const MAXIMUM_UPSCALED_SIDE: u32 = 16_384;
const FILTERS: &[&str] = &["lanczos", "bicubic", "bilinear", "area", "nearest-exact"];

impl Engine {
    /// The preprocessor `name` on `entry` (see [`preprocessor`]).
    pub async fn resolve_preprocessor(
        &self,
        entry: &BackendEntry,
        name: &str,
        settings: &Map<String, Value>,
    ) -> Result<Preprocessor, EngineError> {
        let info = self.object_info(entry, false).await?;
        preprocessor(&info, name, settings)
    }

    /// Stages the image on the backend (unless it is already in its input folder), builds the
    /// passes and queues them.
    pub async fn upscale(
        &self,
        request: UpscaleRequest,
    ) -> Result<(&BackendEntry, SubmittedJob, Value), EngineError> {
        if !(request.scale.is_finite() && (1.0..=8.0).contains(&request.scale)) {
            return Err(EngineError::bad_input(format!(
                "scale must be 1 to 8; got {}",
                request.scale
            )));
        }
        if !(1..=4).contains(&request.passes) {
            return Err(EngineError::bad_input(format!(
                "passes must be 1 to 4; got {}",
                request.passes
            )));
        }
        let filter = request.filter.clone().unwrap_or_else(|| "lanczos".to_owned());
        if !FILTERS.contains(&filter.as_str()) {
            return Err(EngineError::bad_input(format!(
                "filter {filter:?} is none of {}",
                FILTERS.join(", ")
            )));
        }
        let entry = self.pick_backend(request.backend.as_deref())?;
        let (node_value, width, height) = self.stage_image(entry, &request.image).await?;
        let largest = f64::from(width.max(height)) * request.scale;
        if largest > f64::from(MAXIMUM_UPSCALED_SIDE) {
            return Err(EngineError::bad_input(format!(
                "a {width} x {height} image x{} would be {largest:.0} pixels on its longer side, over {MAXIMUM_UPSCALED_SIDE}",
                request.scale
            )));
        }
        let model = match request.method.as_deref().unwrap_or("model") {
            "pixel" => None,
            "model" => Some(self.upscale_model(entry, request.model.as_deref()).await?),
            other => {
                return Err(EngineError::bad_input(format!(
                    "method {other:?} is neither model nor pixel"
                )));
            }
        };
        let refine = match &request.refine {
            Some(refine) => Some(self.refinement(entry, refine).await?),
            None => None,
        };
        let upscale = Upscale {
            image: node_value.clone(),
            width,
            height,
            scale: request.scale,
            passes: request.passes,
            model: model.clone(),
            filter,
            refine,
            filename_prefix: "comfyui-mcp/upscale".to_owned(),
        };
        let sizes = upscale.pass_sizes();
        let parameters = json!({
            "image": node_value, "source_size": [width, height], "scale": request.scale,
            "passes": request.passes, "pass_sizes": sizes, "model": model,
            "filter": upscale.filter, "refine": upscale.refine,
        });
        let context = JobContext {
            workflow: Some("upscale_image".to_owned()),
            model: upscale
                .refine
                .as_ref()
                .map(|refine| refine.checkpoint.clone())
                .or(model),
            prompt_text: upscale
                .refine
                .as_ref()
                .map(|refine| refine.prompt.clone())
                .unwrap_or_default(),
            parameters: parameters.clone(),
            seed: upscale.refine.as_ref().map(|refine| refine.seed),
        };
        let graph = upscale.build();
        let job = self
            .submit(entry, &graph.prompt, comfy_api::SubmitOptions::default(), context)
            .await?;
        Ok((entry, job, parameters))
    }

    /// The value `LoadImage` takes for `source` on `entry`, and the image's size: a file already
    /// in the backend's input folder as it is, anything else uploaded there (named by content).
    async fn stage_image(
        &self,
        entry: &BackendEntry,
        source: &ImageSource,
    ) -> Result<(String, u32, u32), EngineError> {
        let same_backend =
            |backend: &Option<String>| backend.as_deref().is_none_or(|name| name == entry.name);
        if let ImageSource::Backend { backend, file } = source
            && file.kind == "input"
            && same_backend(backend)
        {
            let loaded = self.load_image(source.clone()).await?;
            let value = if file.subfolder.is_empty() {
                file.filename.clone()
            } else {
                format!("{}/{}", file.subfolder, file.filename)
            };
            return Ok((value, loaded.image.width(), loaded.image.height()));
        }
        let loaded = self.load_image(source.clone()).await?;
        let (width, height) = loaded.image.dimensions();
        let (png, _) = self.encode_result(ResultPixels::Color(loaded.image)).await?;
        let uploaded = self
            .upload_image(UploadRequest {
                filename: content_name("source", &png),
                bytes: png,
                subfolder: RESULTS_SUBFOLDER.to_owned(),
                overwrite: true,
                mask_for: None,
                backend: Some(entry.name.clone()),
            })
            .await?;
        Ok((uploaded.node_value, width, height))
    }

    /// The upscale model to use: the one named (checked), else the backend's first.
    async fn upscale_model(&self, entry: &BackendEntry, named: Option<&str>) -> Result<String, EngineError> {
        let info = self.object_info(entry, false).await?;
        let choices = info
            .combo_choices("UpscaleModelLoader", "model_name")
            .unwrap_or_default();
        match named {
            Some(name) if choices.iter().any(|choice| choice == name) => Ok(name.to_owned()),
            Some(name) => Err(EngineError::bad_input(format!(
                "upscale model {name:?} is not in models/upscale_models on {}; it has {}",
                entry.label(),
                if choices.is_empty() { "none".to_owned() } else { choices.join(", ") }
            ))),
            None => choices.into_iter().next().ok_or_else(|| {
                EngineError::bad_input(format!(
                    "{} has no upscale model in models/upscale_models: put one there (for example 4x-UltraSharp or RealESRGAN_x4plus from https://openmodeldb.info) or pass method=pixel",
                    entry.label()
                ))
            }),
        }
    }

    async fn refinement(
        &self,
        entry: &BackendEntry,
        refine: &RefineRequest,
    ) -> Result<Refinement, EngineError> {
        if !(refine.denoise.is_finite() && (0.0..=1.0).contains(&refine.denoise)) {
            return Err(EngineError::bad_input(format!(
                "refine denoise must be 0 to 1; got {}",
                refine.denoise
            )));
        }
        if !(1..=200).contains(&refine.steps) {
            return Err(EngineError::bad_input(format!(
                "refine steps must be 1 to 200; got {}",
                refine.steps
            )));
        }
        if !refine.tile_size.is_multiple_of(64) || !(256..=4096).contains(&refine.tile_size) {
            return Err(EngineError::bad_input(format!(
                "refine tile_size must be a multiple of 64 from 256 to 4096; got {}",
                refine.tile_size
            )));
        }
        let checkpoint = match &refine.checkpoint {
            Some(checkpoint) => checkpoint.clone(),
            None => self.default_checkpoint(entry).await?,
        };
        Ok(Refinement {
            checkpoint,
            prompt: refine.prompt.clone(),
            negative_prompt: refine.negative_prompt.clone(),
            steps: refine.steps,
            cfg: 5.0,
            sampler: "euler".to_owned(),
            scheduler: "normal".to_owned(),
            seed: refine.seed.unwrap_or_else(crate::generate::random_seed),
            denoise: refine.denoise,
            tile_size: refine.tile_size,
        })
    }

    /// Cuts out the foreground (a background-removal model) or what a text names (SAM 3) and
    /// queues it: the cut-out with the rest transparent, and its mask.
    pub async fn cut_out(
        &self,
        request: CutoutRequest,
    ) -> Result<(&BackendEntry, SubmittedJob, Value), EngineError> {
        let entry = self.pick_backend(request.backend.as_deref())?;
        let info = self.object_info(entry, false).await?;
        let method = match request.kind {
            CutoutKind::Background { model } => {
                require_node(entry, &info, "RemoveBackground")?;
                let choices = info
                    .combo_choices("LoadBackgroundRemovalModel", "bg_removal_name")
                    .unwrap_or_default();
                let model = pick_model(entry, &choices, model, BACKGROUND_MODEL)?;
                CutoutMethod::Background { model }
            }
            CutoutKind::Segment {
                prompt,
                checkpoint,
                threshold,
            } => {
                require_node(entry, &info, "SAM3_Detect")?;
                if prompt.trim().is_empty() || prompt.chars().count() > 500 {
                    return Err(EngineError::bad_input(
                        "prompt (what to find) must be 1 to 500 characters",
                    ));
                }
                if !(threshold.is_finite() && (0.0..=1.0).contains(&threshold)) {
                    return Err(EngineError::bad_input(format!(
                        "threshold must be 0 to 1; got {threshold}"
                    )));
                }
                let choices: Vec<String> = info
                    .combo_choices("CheckpointLoaderSimple", "ckpt_name")
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|name| checkpoint.is_some() || name.to_lowercase().contains("sam3"))
                    .collect();
                let checkpoint = pick_model(entry, &choices, checkpoint, SAM3_MODEL)?;
                CutoutMethod::Segment {
                    checkpoint,
                    prompt,
                    threshold,
                }
            }
        };
        let (image, width, height) = self.stage_image(entry, &request.image).await?;
        let cutout = Cutout {
            image: image.clone(),
            method,
            invert: request.invert,
            filename_prefix: "comfyui-mcp/cutout".to_owned(),
        };
        let parameters = json!({"image": image, "size": [width, height], "method": cutout.method, "invert": cutout.invert});
        let (model, prompt_text) = match &cutout.method {
            CutoutMethod::Background { model } => (model.clone(), String::new()),
            CutoutMethod::Segment {
                checkpoint, prompt, ..
            } => (checkpoint.clone(), prompt.clone()),
        };
        let context = JobContext {
            workflow: Some("cut_out".to_owned()),
            model: Some(model),
            prompt_text,
            parameters: parameters.clone(),
            seed: None,
        };
        let graph = cutout.build();
        let job = self
            .submit(entry, &graph.prompt, comfy_api::SubmitOptions::default(), context)
            .await?;
        Ok((entry, job, parameters))
    }
}

impl Engine {
    /// Plans a style applied to existing images: each image staged on the backend, then one
    /// img2img cell per image of `base` (its prompt, style, denoise...), as a grid of one row.
    pub async fn plan_style_transfer(
        &self,
        images: &[ImageSource],
        base: &GenerateRequest,
    ) -> Result<GridPlan, EngineError> {
        if images.is_empty() || images.len() > MAXIMUM_STYLED_IMAGES {
            return Err(EngineError::bad_input(format!(
                "a style transfer takes 1 to {MAXIMUM_STYLED_IMAGES} images; {} given",
                images.len()
            )));
        }
        let Some(style) = &base.style else {
            return Err(EngineError::bad_input(
                "style names the style preset to apply (style_preset lists them)",
            ));
        };
        // A wrong style name is refused before any image is staged.
        self.style(style).await?;
        let entry = self.pick_backend(base.backend.as_deref())?;
        let mut cells = Vec::new();
        for (column, image) in images.iter().enumerate() {
            let (staged, width, height) = self.stage_image(entry, image).await?;
            let mut request = base.clone();
            request.image = Some(staged.clone());
            request.backend = Some(entry.name.clone());
            // img2img keeps the source's size, rounded to the latent grid.
            request.width = Some(i64::from(width / 8 * 8).max(64));
            request.height = Some(i64::from(height / 8 * 8).max(64));
            let mut settings = Map::new();
            settings.insert("image".to_owned(), Value::from(staged));
            cells.push(GridCell {
                column,
                row: 0,
                settings,
                request,
            });
        }
        Ok(GridPlan {
            kind: "style",
            id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            columns: cells.len(),
            column_labels: (1..=cells.len()).map(|index| format!("image {index}")).collect(),
            row_labels: vec![style.clone()],
            cells,
        })
    }
}

/// Most images one style transfer takes.
pub const MAXIMUM_STYLED_IMAGES: usize = 16;

/// What a cut-out keeps.
#[derive(Debug, Clone)]
pub enum CutoutKind {
    /// The foreground, by a background-removal model (`None`: the backend's first).
    Background { model: Option<String> },
    /// What `prompt` names, by SAM 3 (`None`: the backend's checkpoint with "sam3" in its name).
    Segment {
        prompt: String,
        checkpoint: Option<String>,
        threshold: f64,
    },
}

#[derive(Debug, Clone)]
pub struct CutoutRequest {
    pub image: ImageSource,
    pub kind: CutoutKind,
    pub invert: bool,
    pub backend: Option<String>,
}

/// A model a capability needs: its folder, the file ComfyUI's own templates use, where to get it.
struct KnownModel {
    folder: &'static str,
    file: &'static str,
    url: &'static str,
}

/// ComfyUI's template `utility_birefnet_remove_background` names this one.
const BACKGROUND_MODEL: KnownModel = KnownModel {
    folder: "background_removal",
    file: "birefnet.safetensors",
    url: "https://huggingface.co/Comfy-Org/BiRefNet/resolve/main/background_removal/birefnet.safetensors",
};

/// ComfyUI's template `utility_image_segment_sam3` names this one.
const SAM3_MODEL: KnownModel = KnownModel {
    folder: "checkpoints",
    file: "sam3.1_multiplex_fp16.safetensors",
    url: "https://huggingface.co/Comfy-Org/sam3.1/resolve/main/checkpoints/sam3.1_multiplex_fp16.safetensors",
};

/// A core node class that only newer ComfyUI versions have.
fn require_node(entry: &BackendEntry, info: &ObjectInfo, class_type: &str) -> Result<(), EngineError> {
    if info.has_node(class_type) {
        return Ok(());
    }
    Err(EngineError::Missing {
        backend: entry.label(),
        what: format!("node class {class_type}"),
        how_to_fix: format!(
            "{class_type} is a core node of current ComfyUI (0.26 has it; this backend runs {}): update ComfyUI",
            entry
                .comfyui_version()
                .unwrap_or_else(|| "an older version".to_owned())
        ),
    })
}

/// The model named (checked against `choices`), else the first of `choices`, else the precise
/// answer naming the file, its folder and its URL.
fn pick_model(
    entry: &BackendEntry,
    choices: &[String],
    named: Option<String>,
    known: KnownModel,
) -> Result<String, EngineError> {
    match named {
        Some(name) if choices.contains(&name) => Ok(name),
        Some(name) => Err(EngineError::bad_input(format!(
            "{name:?} is not in models/{} on {}; it has {}",
            known.folder,
            entry.label(),
            if choices.is_empty() {
                "none that fits".to_owned()
            } else {
                choices.join(", ")
            }
        ))),
        None => choices.first().cloned().ok_or_else(|| EngineError::Missing {
            backend: entry.label(),
            what: format!("a model in models/{} ({})", known.folder, known.file),
            how_to_fix: format!(
                "download {} from {} into ComfyUI's models/{} folder (ComfyUI's own template uses it)",
                known.file, known.url, known.folder
            ),
        }),
    }
}
