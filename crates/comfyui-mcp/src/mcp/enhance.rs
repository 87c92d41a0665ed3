//! The `enhance` toolset: work the backend does on an existing image. `upscale_image` makes any
//! image larger (the library, a backend file, base64, a URL) in one or more passes, with an
//! upscale model or resampling, optionally refining details with a low-denoise img2img;
//! `remove_background` and `segment_image` cut out a subject with ComfyUI's own nodes;
//! `style_transfer` restyles images with a style preset; `detect_objects` finds things as boxes;
//! `face_restore` repaints faces (found by SAM 3, or regions given) in detail.

use rmcp::RoleServer;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::Deserialize;

use super::images::{self, ImageArgument};
use super::render::{engine_error, error_text};
use super::server::ComfyServer;
use super::tool::{
    Hints, ToolDeclaration, ToolOutcome, WaitBound, declare_tool, follow_job, job_answer, job_answer_with,
    wait_limit,
};
use comfy_engine::BackendEntry;
use comfy_engine::enhance::{
    CutoutKind, CutoutRequest, DetectKind, DetectRequest, Detected, RefineRequest, RestoreRequest,
    UpscaleRequest, detections,
};
use comfy_engine::generate::GenerateRequest;
use comfy_engine::grids::{FinishedCell, GridAxis, GridPlan, GridSheet, plan_grid};
use comfy_engine::jobs::WaitOutcome;
use comfy_engine::types::JobPhase;
use comfy_engine::types::SubmittedJob;
use comfy_workflow::builders::Region;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RefineArgument {
    /// What the image shows, to guide the repainted details.
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    negative_prompt: String,
    /// How much each pass repaints, 0..1 (default 0.3: details, not composition).
    denoise: Option<f64>,
    /// Default 12.
    steps: Option<u32>,
    seed: Option<u64>,
    /// A checkpoint for the img2img (default: the server's, else the backend's first).
    checkpoint: Option<String>,
    /// The tiled VAE's tile side, a multiple of 64 (default 512).
    tile_size: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpscaleImageArguments {
    image: ImageArgument,
    /// Overall factor, 1..8 (default 2).
    scale: Option<f64>,
    /// Passes to reach it, 1..4 (default 1): each multiplies by the passes-th root, so x4 in two
    /// passes is x2 twice (progressive upscaling).
    passes: Option<u32>,
    /// model (default: an upscale model from models/upscale_models, then resampled to the exact
    /// size) or pixel (resampling only).
    method: Option<String>,
    /// The upscale model (default: the backend's first).
    model: Option<String>,
    /// Resampling: lanczos (default), bicubic, bilinear, area, nearest-exact.
    filter: Option<String>,
    /// Repaint details after each pass with a low-denoise img2img over tiled VAE nodes.
    refine: Option<RefineArgument>,
    wait_seconds: Option<f64>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AxisArgument {
    /// seed, steps, cfg, sampler, scheduler, denoise, prompt, prompt_replace (the first value is
    /// the text found in the prompt, each value replaces it), negative_prompt, checkpoint, style
    /// or quality.
    parameter: String,
    /// 1 to 16 values.
    values: Vec<AxisValue>,
}

/// One value on an axis: a number or a text.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
enum AxisValue {
    Number(serde_json::Number),
    Text(String),
}

impl From<AxisValue> for Value {
    fn from(value: AxisValue) -> Value {
        match value {
            AxisValue::Number(number) => Value::Number(number),
            AxisValue::Text(text) => Value::String(text),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GenerateGridArguments {
    /// The prompt every cell starts from.
    prompt: String,
    negative_prompt: Option<String>,
    width: Option<i64>,
    height: Option<i64>,
    steps: Option<i64>,
    cfg: Option<f64>,
    sampler: Option<String>,
    scheduler: Option<String>,
    /// The seed of every cell the axes leave it to (default: one random seed for all, so cells
    /// differ only by what is swept).
    seed: Option<u64>,
    checkpoint: Option<String>,
    /// The columns' parameter and values.
    x: AxisArgument,
    /// The rows' parameter and values (at most 64 cells in all).
    y: Option<AxisArgument>,
    /// A third parameter: one block of rows per value, on the same sheet (needs y).
    z: Option<AxisArgument>,
    wait_seconds: Option<f64>,
    backend: Option<String>,
    max_preview_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RemoveBackgroundArguments {
    image: ImageArgument,
    /// A model in models/background_removal (default: the backend's first).
    model: Option<String>,
    /// Keep the background and make the subject transparent.
    #[serde(default)]
    invert: bool,
    wait_seconds: Option<f64>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SegmentImageArguments {
    image: ImageArgument,
    /// What to find ("the dog", "eye:2, window panels:4": at most N of each).
    prompt: String,
    /// A SAM 3 checkpoint (default: the backend's checkpoint with sam3 in its name).
    checkpoint: Option<String>,
    /// Detection confidence, 0..1 (default 0.5).
    threshold: Option<f64>,
    /// Keep everything but what was found.
    #[serde(default)]
    invert: bool,
    wait_seconds: Option<f64>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DetectObjectsArguments {
    image: ImageArgument,
    /// What to find, in words ("the red car", "face"): found by SAM 3 (a sam3 checkpoint).
    /// Without it RT-DETR finds the 80 COCO object classes.
    find: Option<String>,
    /// RT-DETR only: one COCO class ("person", "dog", "cup"...) or all (default).
    class_name: Option<String>,
    /// Confidence a box needs, 0..1 (default 0.5).
    threshold: Option<f64>,
    /// RT-DETR only: most boxes, 1..300 (default 20).
    max_detections: Option<u32>,
    /// The RT-DETR model in models/diffusion_models, or with `find` the SAM 3 checkpoint
    /// (default: the backend's one with rt_detr or sam3 in its name).
    model: Option<String>,
    wait_seconds: Option<f64>,
    backend: Option<String>,
}

/// A rectangle of the image, in pixels from its top left corner.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RegionArgument {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FaceRestoreArguments {
    image: ImageArgument,
    /// The faces (or any parts) to restore, 1 to 8 (detect_objects gives boxes). Without them
    /// SAM 3 finds them first (`find`, default "face").
    regions: Option<Vec<RegionArgument>>,
    /// What SAM 3 looks for when no regions are given (default "face").
    find: Option<String>,
    /// SAM 3's confidence, 0..1 (default 0.5).
    threshold: Option<f64>,
    /// The SAM 3 checkpoint (default: the backend's with sam3 in its name).
    detector: Option<String>,
    /// Context kept around each region, a fraction of its size, 0..1 (default 0.25).
    padding: Option<f64>,
    /// The longer side each region is repainted at, a multiple of 64 (default 512).
    detail_size: Option<u32>,
    /// What the repaint aims for (default: a detailed, natural face).
    prompt: Option<String>,
    negative_prompt: Option<String>,
    /// How much is repainted, 0..1 (default 0.35: the person kept, the details redone).
    denoise: Option<f64>,
    /// Default 20.
    steps: Option<u32>,
    seed: Option<u64>,
    /// The checkpoint that repaints (default: the server's, else the backend's first).
    checkpoint: Option<String>,
    wait_seconds: Option<f64>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StyleTransferArguments {
    /// 1 to 16 images, each restyled on its own (one batch).
    images: Vec<ImageArgument>,
    /// The style preset to apply (built-in or saved; style_preset lists them).
    style: String,
    /// What the images show, put into the style's template (default "the scene").
    prompt: Option<String>,
    negative_prompt: Option<String>,
    /// How much is repainted, 0..1 (default 0.55: the style, with the composition kept).
    denoise: Option<f64>,
    steps: Option<i64>,
    seed: Option<u64>,
    checkpoint: Option<String>,
    wait_seconds: Option<f64>,
    backend: Option<String>,
    max_preview_bytes: Option<usize>,
}

/// One cell of a grid answer.
#[derive(Debug, Serialize)]
pub(crate) struct CellReport {
    column: usize,
    row: usize,
    settings: serde_json::Map<String, Value>,
    /// queued, running, succeeded, failed or cancelled; or refused (it was never queued).
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct GridReport {
    columns: usize,
    rows: usize,
    cells: Vec<CellReport>,
    #[serde(flatten)]
    sheet: GridSheet,
    /// Cells not finished when the wait ended are drawn grey; get_job follows them.
    #[serde(skip_serializing_if = "Option::is_none")]
    unfinished: Option<usize>,
}

/// This toolset's tools, each declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[
    declare_tool!(
        "remove_background",
        "Cut out an image's subject with ComfyUI's background-removal nodes (BiRefNet model in models/background_removal; ComfyUI 0.26): answers the cut-out with the background transparent and the mask. A backend without the nodes or the model gets the exact file, folder and download URL.",
        Hints::CREATES,
        RemoveBackgroundArguments,
        remove_background,
    ),
    declare_tool!(
        "segment_image",
        "Find what a text names in an image with SAM 3 (ComfyUI 0.26's SAM3_Detect, a sam3 checkpoint) and cut it out: the cut-out with the rest transparent and the mask. A backend without the node or the model gets the exact file, folder and download URL.",
        Hints::CREATES,
        SegmentImageArguments,
        segment_image,
    ),
    declare_tool!(
        "detect_objects",
        "Find things in an image as boxes (x, y, width, height in pixels, label, score): the 80 COCO classes by RT-DETR, or what a text names by SAM 3 (ComfyUI 0.26 core nodes). Answers the boxes, best first, and the image with them drawn. A backend without the node or model gets the exact file, folder and download URL.",
        Hints::CREATES,
        DetectObjectsArguments,
        detect_objects,
    ),
    declare_tool!(
        "face_restore",
        "Restore faces (or any regions) in an image: each is cropped with some context, repainted in detail by a low-denoise img2img at a larger size, scaled back and pasted through a feathered mask (core nodes, any checkpoint). Regions come from the call, or SAM 3 finds the faces first. Answers the restored image and the regions used.",
        Hints::CREATES,
        FaceRestoreArguments,
        face_restore,
    ),
    declare_tool!(
        "upscale_image",
        "Upscale any existing image (library id, backend file, base64, URL) on the backend: with an upscale model or by resampling, in one or several progressive passes of exact sizes, each optionally refined by a low-denoise img2img over tiled VAE nodes. Waits (bounded) and returns the result with a preview, or the job id to follow.",
        Hints::CREATES,
        UpscaleImageArguments,
        upscale_image,
    ),
    declare_tool!(
        "style_transfer",
        "Restyle existing images with a style preset (built-in or saved): each image is staged on the backend and repainted by img2img with the style's template, negative prompt and settings, all queued as one batch; answers a sheet of the results (kept in the library) and each image's job. One image or up to 16 (batch style application).",
        Hints::CREATES,
        StyleTransferArguments,
        style_transfer,
    ),
    declare_tool!(
        "generate_grid",
        "Variations and X/Y/Z grids: one generation swept over the values of one to three parameters (seed, steps, cfg, sampler, scheduler, denoise, prompt, prompt search/replace, negative prompt, checkpoint), queued as one batch. Answers an annotated contact sheet (axis labels drawn, kept in the library) and every cell's job; each cell's output is tagged with the grid and its values.",
        Hints::CREATES,
        GenerateGridArguments,
        generate_grid,
    ),
];

async fn upscale_image(
    server: &ComfyServer,
    arguments: UpscaleImageArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let limit = wait_limit(server, arguments.wait_seconds, server.engine.config.wait)?;
    let image = images::source(server, &arguments.image, "image").await?;
    let request = UpscaleRequest {
        image,
        scale: arguments.scale.unwrap_or(2.0),
        passes: arguments.passes.unwrap_or(1),
        model: arguments.model,
        method: arguments.method,
        filter: arguments.filter,
        refine: arguments.refine.map(|refine| RefineRequest {
            checkpoint: refine.checkpoint,
            prompt: refine.prompt,
            negative_prompt: refine.negative_prompt,
            denoise: refine.denoise.unwrap_or(0.3),
            steps: refine.steps.unwrap_or(12),
            seed: refine.seed,
            tile_size: refine.tile_size.unwrap_or(512),
        }),
        backend: arguments.backend,
    };
    let started = server.engine.upscale(request).await;
    answer_job(server, started, &limit, context).await
}

/// Follows a job the engine queued (within the call's wait) and answers it with its parameters.
async fn answer_job(
    server: &ComfyServer,
    started: Result<(&BackendEntry, SubmittedJob, Value), comfy_engine::EngineError>,
    limit: &WaitBound,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let (entry, mut job, parameters) = started.map_err(|error| engine_error(&error))?;
    let outcome = follow_job(server, entry, &mut job.subscription, limit, &context.ct, context)
        .await
        .map_err(|error| engine_error(&error))?;
    Ok(job_answer(server, entry, &outcome, Some(parameters)).await)
}

async fn remove_background(
    server: &ComfyServer,
    arguments: RemoveBackgroundArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let image = images::source(server, &arguments.image, "image").await?;
    let request = CutoutRequest {
        image,
        kind: CutoutKind::Background {
            model: arguments.model,
        },
        invert: arguments.invert,
        backend: arguments.backend,
    };
    cut_out(server, request, arguments.wait_seconds, context).await
}

async fn segment_image(
    server: &ComfyServer,
    arguments: SegmentImageArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let image = images::source(server, &arguments.image, "image").await?;
    let request = CutoutRequest {
        image,
        kind: CutoutKind::Segment {
            prompt: arguments.prompt,
            checkpoint: arguments.checkpoint,
            threshold: arguments.threshold.unwrap_or(0.5),
        },
        invert: arguments.invert,
        backend: arguments.backend,
    };
    cut_out(server, request, arguments.wait_seconds, context).await
}

async fn detect_objects(
    server: &ComfyServer,
    arguments: DetectObjectsArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let limit = wait_limit(server, arguments.wait_seconds, server.engine.config.wait)?;
    let image = images::source(server, &arguments.image, "image").await?;
    let kind = match arguments.find {
        Some(prompt) => {
            if arguments.class_name.is_some() || arguments.max_detections.is_some() {
                return Err(error_text(
                    "class_name and max_detections are RT-DETR's; with find, SAM 3 detects",
                ));
            }
            DetectKind::Text {
                prompt,
                checkpoint: arguments.model,
            }
        }
        None => DetectKind::Objects {
            model: arguments.model,
            class_name: arguments.class_name,
            max_detections: arguments.max_detections.unwrap_or(20),
        },
    };
    let request = DetectRequest {
        image,
        kind,
        threshold: arguments.threshold.unwrap_or(0.5),
        backend: arguments.backend,
    };
    let (outcome, found) = run_detection(server, request, &limit, context).await?;
    let mut findings = serde_json::Map::new();
    if let Some(found) = found {
        findings.insert("count".to_owned(), Value::from(found.len()));
        findings.insert(
            "detections".to_owned(),
            serde_json::to_value(found).unwrap_or_default(),
        );
    }
    Ok(job_answer_with(
        server,
        outcome.entry,
        &outcome.wait,
        Some(outcome.parameters),
        findings,
    )
    .await)
}

/// A detection followed: how its wait ended, on which backend, with what parameters.
struct FollowedDetection<'a> {
    entry: &'a BackendEntry,
    wait: WaitOutcome,
    parameters: Value,
}

/// Queues a detection and follows it; the boxes when it succeeded within the wait.
async fn run_detection<'a>(
    server: &'a ComfyServer,
    request: DetectRequest,
    limit: &WaitBound,
    context: &RequestContext<RoleServer>,
) -> Result<(FollowedDetection<'a>, Option<Vec<Detected>>), CallToolResult> {
    let mut started = server
        .engine
        .detect(request)
        .await
        .map_err(|error| engine_error(&error))?;
    let wait = follow_job(
        server,
        started.entry,
        &mut started.job.subscription,
        limit,
        &context.ct,
        context,
    )
    .await
    .map_err(|error| engine_error(&error))?;
    let found = match &wait {
        WaitOutcome::Finished(snapshot) if snapshot.phase == JobPhase::Succeeded => {
            Some(detections(&snapshot.texts, started.size).map_err(|error| engine_error(&error))?)
        }
        _ => None,
    };
    let followed = FollowedDetection {
        entry: started.entry,
        wait,
        parameters: started.parameters,
    };
    Ok((followed, found))
}

async fn face_restore(
    server: &ComfyServer,
    arguments: FaceRestoreArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let limit = wait_limit(server, arguments.wait_seconds, server.engine.config.wait)?;
    let image = images::source(server, &arguments.image, "image").await?;
    let mut findings = serde_json::Map::new();
    let regions = match arguments.regions {
        Some(regions) => {
            if arguments.find.is_some() || arguments.detector.is_some() || arguments.threshold.is_some() {
                return Err(error_text(
                    "find, detector and threshold choose how faces are found; with regions given nothing is searched",
                ));
            }
            regions
                .into_iter()
                .map(|region| Region {
                    x: region.x,
                    y: region.y,
                    width: region.width,
                    height: region.height,
                })
                .collect()
        }
        None => {
            let request = DetectRequest {
                image: image.clone(),
                kind: DetectKind::Text {
                    prompt: arguments.find.unwrap_or_else(|| "face".to_owned()),
                    checkpoint: arguments.detector,
                },
                threshold: arguments.threshold.unwrap_or(0.5),
                backend: arguments.backend.clone(),
            };
            let (detection, found) = run_detection(server, request, &limit, context).await?;
            let Some(found) = found else {
                // Still running, failed or cancelled: that job's own answer says which.
                return Ok(job_answer(
                    server,
                    detection.entry,
                    &detection.wait,
                    Some(detection.parameters),
                )
                .await);
            };
            if found.is_empty() {
                return Err(error_text(
                    "SAM 3 found no face in the image at this threshold: lower threshold, or give the regions",
                ));
            }
            findings.insert(
                "detection_job_id".to_owned(),
                Value::from(detection.wait.snapshot().prompt_id.clone()),
            );
            found
                .iter()
                .take(comfy_engine::enhance::MAXIMUM_RESTORED_REGIONS)
                .map(Detected::region)
                .collect()
        }
    };
    let request = RestoreRequest {
        image,
        regions,
        padding: arguments.padding.unwrap_or(0.25),
        detail_size: arguments.detail_size.unwrap_or(512),
        refine: RefineRequest {
            checkpoint: arguments.checkpoint,
            prompt: arguments.prompt.unwrap_or_else(|| {
                "a detailed face, sharp eyes, natural skin texture, high quality photo".to_owned()
            }),
            negative_prompt: arguments
                .negative_prompt
                .unwrap_or_else(|| "blurry, deformed, distorted, disfigured face".to_owned()),
            denoise: arguments.denoise.unwrap_or(0.35),
            steps: arguments.steps.unwrap_or(20),
            seed: arguments.seed,
            tile_size: 512,
        },
        backend: arguments.backend,
    };
    let (entry, mut job, parameters) = server
        .engine
        .restore_regions(request)
        .await
        .map_err(|error| engine_error(&error))?;
    let outcome = follow_job(server, entry, &mut job.subscription, &limit, &context.ct, context)
        .await
        .map_err(|error| engine_error(&error))?;
    Ok(job_answer_with(server, entry, &outcome, Some(parameters), findings).await)
}

/// Queues a cut-out and waits for it (bounded).
async fn cut_out(
    server: &ComfyServer,
    request: CutoutRequest,
    wait_seconds: Option<f64>,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let limit = wait_limit(server, wait_seconds, server.engine.config.wait)?;
    let started = server.engine.cut_out(request).await;
    answer_job(server, started, &limit, context).await
}

async fn style_transfer(
    server: &ComfyServer,
    arguments: StyleTransferArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let limit = wait_limit(server, arguments.wait_seconds, server.engine.config.wait)?;
    let mut sources = Vec::new();
    for (index, image) in arguments.images.iter().enumerate() {
        sources.push(images::source(server, image, &format!("images[{index}]")).await?);
    }
    let base = GenerateRequest {
        prompt: arguments.prompt.unwrap_or_else(|| "the scene".to_owned()),
        negative_prompt: arguments.negative_prompt,
        style: Some(arguments.style),
        denoise: Some(arguments.denoise.unwrap_or(0.55)),
        steps: arguments.steps,
        seed: arguments.seed.map(i128::from),
        checkpoint: arguments.checkpoint,
        backend: arguments.backend,
        ..Default::default()
    };
    let plan = server
        .engine
        .plan_style_transfer(&sources, &base)
        .await
        .map_err(|error| engine_error(&error))?;
    run_plan(server, &plan, &limit, arguments.max_preview_bytes, context).await
}

async fn generate_grid(
    server: &ComfyServer,
    arguments: GenerateGridArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let limit = wait_limit(server, arguments.wait_seconds, server.engine.config.wait)?;
    let base = GenerateRequest {
        prompt: arguments.prompt,
        negative_prompt: arguments.negative_prompt,
        width: arguments.width,
        height: arguments.height,
        steps: arguments.steps,
        cfg: arguments.cfg,
        sampler: arguments.sampler,
        scheduler: arguments.scheduler,
        seed: arguments.seed.map(i128::from),
        checkpoint: arguments.checkpoint,
        backend: arguments.backend,
        ..Default::default()
    };
    let axis = |argument: AxisArgument| GridAxis {
        parameter: argument.parameter,
        values: argument.values.into_iter().map(Value::from).collect(),
    };
    let (x, y, z) = (axis(arguments.x), arguments.y.map(axis), arguments.z.map(axis));
    let plan = plan_grid(&base, &x, y.as_ref(), z.as_ref()).map_err(|error| engine_error(&error))?;
    run_plan(server, &plan, &limit, arguments.max_preview_bytes, context).await
}

/// Queues a plan's cells, follows them within the call's wait and answers the labelled sheet
/// (kept in the library) with each cell's job.
async fn run_plan(
    server: &ComfyServer,
    plan: &GridPlan,
    limit: &WaitBound,
    budget: Option<usize>,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let queued = queue_cells(server, plan).await?;
    let (finished, cells, unfinished) = follow_cells(server, plan, queued, limit, context).await?;
    let sheet = server
        .engine
        .assemble_grid(plan, &finished, budget)
        .await
        .map_err(|error| engine_error(&error))?;
    let report = GridReport {
        columns: plan.columns,
        rows: plan.cells.len().div_ceil(plan.columns),
        cells,
        sheet,
        unfinished: (unfinished > 0).then_some(unfinished),
    };
    Ok(images::answer(&report, &[&report.sheet.sheet]))
}

/// A cell's job as it was queued, or why it was not.
pub(crate) type QueuedCell<'a> = Result<(&'a BackendEntry, SubmittedJob), String>;

/// Queues every cell of `plan`. The first cell's refusal is every cell's (the same graph), so
/// nothing more is queued then and the call fails with it.
pub(crate) async fn queue_cells<'a>(
    server: &'a ComfyServer,
    plan: &GridPlan,
) -> Result<Vec<QueuedCell<'a>>, CallToolResult> {
    let mut queued = Vec::new();
    for (index, cell) in plan.cells.iter().enumerate() {
        match server.engine.generate(&cell.request).await {
            Ok((entry, job, _)) => queued.push(Ok((entry, job))),
            Err(error) if index == 0 => return Err(engine_error(&error)),
            Err(error) => queued.push(Err(error.to_string())),
        }
    }
    Ok(queued)
}

/// Follows the queued cells within the call's wait: each finished cell's outputs, a report per
/// cell, and how many were still going when the wait ended.
pub(crate) async fn follow_cells(
    server: &ComfyServer,
    plan: &GridPlan,
    queued: Vec<QueuedCell<'_>>,
    limit: &WaitBound,
    context: &RequestContext<RoleServer>,
) -> Result<(Vec<Option<FinishedCell>>, Vec<CellReport>, usize), CallToolResult> {
    let mut finished = Vec::new();
    let mut cells = Vec::new();
    let mut unfinished = 0;
    for (cell, job) in plan.cells.iter().zip(queued) {
        let mut report = CellReport {
            column: cell.column,
            row: cell.row,
            settings: cell.settings.clone(),
            status: "refused".to_owned(),
            job_id: None,
            error: None,
        };
        let done = match job {
            Err(error) => {
                report.error = Some(error);
                None
            }
            Ok((entry, mut job)) => {
                let outcome = follow_job(server, entry, &mut job.subscription, limit, &context.ct, context)
                    .await
                    .map_err(|error| engine_error(&error))?;
                let snapshot = outcome.snapshot();
                report.status = snapshot.phase.as_str().to_owned();
                report.job_id = Some(snapshot.prompt_id.clone());
                report.error = snapshot.failure.as_ref().map(|failure| failure.message.clone());
                if !snapshot.phase.is_final() {
                    unfinished += 1;
                }
                (snapshot.phase == JobPhase::Succeeded).then(|| FinishedCell {
                    backend: entry.name.clone(),
                    job_id: snapshot.prompt_id.clone(),
                    outputs: snapshot.outputs.clone(),
                })
            }
        };
        finished.push(done);
        cells.push(report);
    }
    Ok((finished, cells, unfinished))
}
