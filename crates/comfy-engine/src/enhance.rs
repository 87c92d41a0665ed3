//! Enhancing through the backend: ControlNet preprocessors (core `Canny`, or the
//! comfyui_controlnet_aux pack's nodes where it is installed; a precise answer naming the pack
//! where it is not) and upscaling any image, in passes, with an upscale model or resampling,
//! optionally refined by a low-denoise img2img over tiled VAE nodes; cutting out the foreground
//! (background removal) or what a text names (SAM 3 segmentation) with ComfyUI's own nodes, the
//! node, model file, folder and download named where the backend lacks them; finding objects
//! (RT-DETR's COCO classes, or what a text names by SAM 3) as boxes; restoring faces (or any
//! regions) by repainting each in detail and pasting it back, with core nodes only.

use comfy_workflow::builders::{
    Cutout, CutoutMethod, Detection, DetectionMethod, Preprocessor, Refinement, Region, RegionDetail, Upscale,
};
use comfy_workflow::object_info::InputSection;
use comfy_workflow::{InputKind, ObjectInfo};
use serde_json::{Map, Value, json};

use crate::generate::GenerateRequest;
use crate::grids::{GridCell, GridPlan};
use crate::imaging::{ImageSource, RESULTS_SUBFOLDER, ResultPixels, content_name};
use crate::outputs::UploadRequest;
use crate::records::JobContext;
use crate::{BackendEntry, Engine, EngineError};
use comfy_api::{OutputText, SubmittedJob};
use serde::{Deserialize, Serialize};

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
                let prompt = checked_find_text(prompt)?;
                if !(threshold.is_finite() && (0.0..=1.0).contains(&threshold)) {
                    return Err(EngineError::bad_input(format!(
                        "threshold must be 0 to 1; got {threshold}"
                    )));
                }
                CutoutMethod::Segment {
                    checkpoint: sam3_checkpoint(entry, &info, checkpoint)?,
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

impl Engine {
    /// Finds objects in an image and queues it: the boxes (read back with [`detections`]) and
    /// the image with the boxes drawn.
    pub async fn detect(&self, request: DetectRequest) -> Result<StartedDetection<'_>, EngineError> {
        let entry = self.pick_backend(request.backend.as_deref())?;
        let info = self.object_info(entry, false).await?;
        let threshold = request.threshold;
        if !(threshold.is_finite() && (0.0..=1.0).contains(&threshold)) {
            return Err(EngineError::bad_input(format!(
                "threshold must be 0 to 1; got {threshold}"
            )));
        }
        let method = match request.kind {
            DetectKind::Objects {
                model,
                class_name,
                max_detections,
            } => {
                require_node(entry, &info, "RTDETR_detect")?;
                if !(1..=MAXIMUM_DETECTIONS).contains(&max_detections) {
                    return Err(EngineError::bad_input(format!(
                        "max_detections must be 1 to {MAXIMUM_DETECTIONS}; got {max_detections}"
                    )));
                }
                let class_name = class_name.unwrap_or_else(|| "all".to_owned());
                let classes = info
                    .combo_choices("RTDETR_detect", "class_name")
                    .unwrap_or_default();
                if !classes.contains(&class_name) {
                    return Err(EngineError::bad_input(format!(
                        "class {class_name:?} is not one RT-DETR knows; it knows {}",
                        classes.join(", ")
                    )));
                }
                let models: Vec<String> = info
                    .combo_choices("UNETLoader", "unet_name")
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|name| model.is_some() || looks_like_rt_detr(name))
                    .collect();
                DetectionMethod::Objects {
                    model: pick_model(entry, &models, model, RT_DETR_MODEL)?,
                    threshold,
                    class_name,
                    max_detections,
                }
            }
            DetectKind::Text { prompt, checkpoint } => {
                require_node(entry, &info, "SAM3_Detect")?;
                DetectionMethod::Text {
                    checkpoint: sam3_checkpoint(entry, &info, checkpoint)?,
                    prompt: checked_find_text(prompt)?,
                    threshold,
                }
            }
        };
        // The detector is named first: without it the drawing node is beside the point.
        require_node(entry, &info, "DrawBBoxes")?;
        let (image, width, height) = self.stage_image(entry, &request.image).await?;
        let detection = Detection {
            image: image.clone(),
            method,
            filename_prefix: "comfyui-mcp/detections".to_owned(),
        };
        let parameters = json!({"image": image, "size": [width, height], "method": detection.method});
        let (model, prompt_text) = match &detection.method {
            DetectionMethod::Objects { model, .. } => (model.clone(), String::new()),
            DetectionMethod::Text {
                checkpoint, prompt, ..
            } => (checkpoint.clone(), prompt.clone()),
        };
        let context = JobContext {
            workflow: Some("detect_objects".to_owned()),
            model: Some(model),
            prompt_text,
            parameters: parameters.clone(),
            seed: None,
        };
        let graph = detection.build();
        let job = self
            .submit(entry, &graph.prompt, comfy_api::SubmitOptions::default(), context)
            .await?;
        Ok(StartedDetection {
            entry,
            job,
            parameters,
            size: (width, height),
        })
    }

    /// Repaints regions of an image in detail and pastes them back (face restoration), and
    /// queues it. Each region is grown by `padding` of its size on every side (context for the
    /// repaint) and kept inside the image.
    pub async fn restore_regions(
        &self,
        request: RestoreRequest,
    ) -> Result<(&BackendEntry, SubmittedJob, Value), EngineError> {
        if request.regions.is_empty() || request.regions.len() > MAXIMUM_RESTORED_REGIONS {
            return Err(EngineError::bad_input(format!(
                "1 to {MAXIMUM_RESTORED_REGIONS} regions are restored at once; {} given",
                request.regions.len()
            )));
        }
        if !(request.padding.is_finite() && (0.0..=1.0).contains(&request.padding)) {
            return Err(EngineError::bad_input(format!(
                "padding must be 0 to 1 (a fraction of each region's size); got {}",
                request.padding
            )));
        }
        if !request.detail_size.is_multiple_of(64) || !(256..=2048).contains(&request.detail_size) {
            return Err(EngineError::bad_input(format!(
                "detail_size must be a multiple of 64 from 256 to 2048; got {}",
                request.detail_size
            )));
        }
        let entry = self.pick_backend(request.backend.as_deref())?;
        let refine = self.refinement(entry, &request.refine).await?;
        let (image, width, height) = self.stage_image(entry, &request.image).await?;
        let regions = request
            .regions
            .iter()
            .map(|region| padded_region(region, request.padding, (width, height)))
            .collect::<Result<Vec<_>, _>>()?;
        let detail = RegionDetail {
            image: image.clone(),
            regions,
            refine,
            detail_size: request.detail_size,
            filename_prefix: "comfyui-mcp/restored".to_owned(),
        };
        let parameters = json!({
            "image": image, "size": [width, height], "regions": detail.regions,
            "detail_size": detail.detail_size, "refine": detail.refine,
        });
        let context = JobContext {
            workflow: Some("face_restore".to_owned()),
            model: Some(detail.refine.checkpoint.clone()),
            prompt_text: detail.refine.prompt.clone(),
            parameters: parameters.clone(),
            seed: Some(detail.refine.seed),
        };
        let graph = detail.build();
        let job = self
            .submit(entry, &graph.prompt, comfy_api::SubmitOptions::default(), context)
            .await?;
        Ok((entry, job, parameters))
    }
}

/// A detection queued: its job, what it was asked, and the image's size.
pub struct StartedDetection<'a> {
    pub entry: &'a BackendEntry,
    pub job: SubmittedJob,
    pub parameters: Value,
    pub size: (u32, u32),
}

/// Most things one detection reports.
pub const MAXIMUM_DETECTIONS: u32 = 300;
/// Most regions one restoration repaints.
pub const MAXIMUM_RESTORED_REGIONS: usize = 8;

/// What a detection looks for.
#[derive(Debug, Clone)]
pub enum DetectKind {
    /// COCO objects by RT-DETR (`model` `None`: the backend's diffusion model with rt_detr in
    /// its name; `class_name` `None`: all classes).
    Objects {
        model: Option<String>,
        class_name: Option<String>,
        max_detections: u32,
    },
    /// What `prompt` names, by SAM 3.
    Text {
        prompt: String,
        checkpoint: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct DetectRequest {
    pub image: ImageSource,
    pub kind: DetectKind,
    pub threshold: f64,
    pub backend: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub image: ImageSource,
    pub regions: Vec<Region>,
    pub padding: f64,
    pub detail_size: u32,
    pub refine: RefineRequest,
    pub backend: Option<String>,
}

/// One thing found, in the image's pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detected {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default)]
    pub score: f64,
}

impl Detected {
    /// The whole pixels it covers.
    pub fn region(&self) -> Region {
        let x = self.x.floor().max(0.0);
        let y = self.y.floor().max(0.0);
        Region {
            x: x as u32,
            y: y as u32,
            width: ((self.x + self.width).ceil() - x).max(1.0) as u32,
            height: ((self.y + self.height).ceil() - y).max(1.0) as u32,
        }
    }
}

/// The boxes a finished detection found in its (first) image, from the text its `PreviewAny`
/// showed: clipped to the image, empty ones dropped, best score first.
pub fn detections(texts: &[OutputText], size: (u32, u32)) -> Result<Vec<Detected>, EngineError> {
    let Some(text) = texts.first() else {
        return Err(EngineError::bad_input(
            "the detection finished without showing its boxes (no text output)",
        ));
    };
    let frames: Vec<Vec<Detected>> = serde_json::from_str(&text.text)
        .or_else(|_| serde_json::from_str::<Vec<Detected>>(&text.text).map(|boxes| vec![boxes]))
        .map_err(|error| {
            EngineError::bad_input(format!(
                "the detection's boxes are not the JSON RTDETR_detect and SAM3_Detect give: {error}"
            ))
        })?;
    let (width, height) = (f64::from(size.0), f64::from(size.1));
    let mut found: Vec<Detected> = frames
        .into_iter()
        .next()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|mut detected| {
            let right = (detected.x + detected.width).min(width);
            let bottom = (detected.y + detected.height).min(height);
            detected.x = detected.x.clamp(0.0, width);
            detected.y = detected.y.clamp(0.0, height);
            detected.width = right - detected.x;
            detected.height = bottom - detected.y;
            let finite = [
                detected.x,
                detected.y,
                detected.width,
                detected.height,
                detected.score,
            ]
            .iter()
            .all(|value| value.is_finite());
            (finite && detected.width >= 1.0 && detected.height >= 1.0).then_some(detected)
        })
        .collect();
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(found)
}

/// `region` grown by `padding` of its size on every side, inside an image of `size`; a region
/// outside the image or under 8 pixels a side is refused.
fn padded_region(region: &Region, padding: f64, size: (u32, u32)) -> Result<Region, EngineError> {
    let (width, height) = size;
    if region.x >= width || region.y >= height || region.width < 8 || region.height < 8 {
        return Err(EngineError::bad_input(format!(
            "region {} x {} at ({}, {}) is not a region of at least 8 x 8 pixels inside the {width} x {height} image",
            region.width, region.height, region.x, region.y
        )));
    }
    let grow = |length: u32| (f64::from(length) * padding).round() as u32;
    let (grow_x, grow_y) = (grow(region.width), grow(region.height));
    let left = region.x.saturating_sub(grow_x);
    let top = region.y.saturating_sub(grow_y);
    let right = region
        .x
        .saturating_add(region.width)
        .saturating_add(grow_x)
        .min(width);
    let bottom = region
        .y
        .saturating_add(region.height)
        .saturating_add(grow_y)
        .min(height);
    Ok(Region {
        x: left,
        y: top,
        width: right - left,
        height: bottom - top,
    })
}

fn looks_like_rt_detr(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace(['-', '_'], "");
    name.contains("rtdetr")
}

/// The SAM 3 checkpoint: the one named, else the backend's checkpoint with sam3 in its name.
fn sam3_checkpoint(
    entry: &BackendEntry,
    info: &ObjectInfo,
    named: Option<String>,
) -> Result<String, EngineError> {
    let choices: Vec<String> = info
        .combo_choices("CheckpointLoaderSimple", "ckpt_name")
        .unwrap_or_default()
        .into_iter()
        .filter(|name| named.is_some() || name.to_lowercase().contains("sam3"))
        .collect();
    pick_model(entry, &choices, named, SAM3_MODEL)
}

fn checked_find_text(prompt: String) -> Result<String, EngineError> {
    if prompt.trim().is_empty() || prompt.chars().count() > 500 {
        return Err(EngineError::bad_input(
            "prompt (what to find) must be 1 to 500 characters",
        ));
    }
    Ok(prompt)
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

/// ComfyUI's own blueprint "Image to Pose Map (SDPose Multi-Person)" names this one.
const RT_DETR_MODEL: KnownModel = KnownModel {
    folder: "diffusion_models",
    file: "rt_detr_v4-x-hgnet_fp16.safetensors",
    url: "https://huggingface.co/Comfy-Org/SDPose/resolve/main/diffusion_models/rt_detr_v4-x-hgnet_fp16.safetensors",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text(text: &str) -> Vec<OutputText> {
        vec![OutputText {
            node_id: "4".to_owned(),
            text: text.to_owned(),
        }]
    }

    #[test]
    fn detections_are_read_from_preview_any_clipped_and_sorted() {
        // PreviewAny json.dumps(indent=4) of RTDETR_detect's list per image.
        let shown = r#"[
    [
        {"x": 10.5, "y": -3.0, "width": 20.0, "height": 10.0, "label": "cat", "score": 0.4},
        {"x": 50.0, "y": 40.0, "width": 30.0, "height": 30.0, "label": "dog", "score": 0.9},
        {"x": 70.0, "y": 70.0, "width": 0.2, "height": 5.0, "label": "cup", "score": 0.8}
    ]
]"#;
        let found = detections(&text(shown), (64, 64)).expect("boxes");
        assert_eq!(found.len(), 2, "the sliver under a pixel is dropped");
        assert_eq!(found[0].label.as_deref(), Some("dog"));
        // Clipped to the 64 x 64 image.
        assert_eq!((found[0].width, found[0].height), (14.0, 24.0));
        assert_eq!((found[1].y, found[1].height), (0.0, 7.0));
        assert_eq!(
            found[1].region(),
            Region {
                x: 10,
                y: 0,
                width: 21,
                height: 7
            }
        );
        assert!(detections(&text("[[]]"), (64, 64)).expect("none").is_empty());
        assert!(detections(&text("not json"), (64, 64)).is_err());
        assert!(detections(&[], (64, 64)).is_err());
    }

    #[test]
    fn regions_grow_by_their_padding_inside_the_image() {
        let region = Region {
            x: 10,
            y: 10,
            width: 20,
            height: 40,
        };
        assert_eq!(
            padded_region(&region, 0.25, (100, 100)).expect("inside"),
            Region {
                x: 5,
                y: 0,
                width: 30,
                height: 60
            }
        );
        assert_eq!(padded_region(&region, 0.0, (100, 100)).expect("inside"), region);
        let outside = Region { x: 100, ..region };
        assert!(padded_region(&outside, 0.1, (100, 100)).is_err());
        let tiny = Region { width: 4, ..region };
        assert!(padded_region(&tiny, 0.1, (100, 100)).is_err());
    }
}
