//! The `core` toolset: status, models, nodes, generation, workflows, jobs, outputs and uploads.
//! Each tool parses its arguments, calls the engine and renders; nothing else.

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::render::{engine_error, error_text};
use super::server::ComfyServer;
use super::tool::{
    Hints, Structured, ToolDeclaration, ToolOutcome, declare_tool, follow_job, job_answer, wait_limit,
};
use comfy_engine::BackendStatus;
use comfy_engine::generate::{ControlNetRequest, GenerateRequest, HiresFixRequest, LoraRequest};
use comfy_engine::jobs::{JobListing, WaitOutcome};
use comfy_engine::models::{ModelListing, NodeDescription, NodeSearch};
use comfy_engine::outputs::MAXIMUM_PREVIEW_SOURCE_BYTES;
use comfy_engine::outputs::UploadRequest;
use comfy_engine::records::snapshot_from_record;
use comfy_engine::types::{CancelOutcome, FileRef, OutputFile, describe_bytes};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StatusArguments {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListModelsArguments {
    /// Model folder: checkpoints, diffusion_models (or unet), loras, vae, text_encoders (or clip),
    /// controlnet, upscale_models, embeddings... Omit to list folders with file counts.
    folder: Option<String>,
    /// Only files whose name contains this text (case-insensitive).
    contains: Option<String>,
    /// Check whether this exact file exists in `folder`; suggests close names when it does not.
    name: Option<String>,
    /// With `name`: also return the file's safetensors metadata (base model, trigger words...).
    #[serde(default)]
    metadata: bool,
    /// Backend name when several are configured.
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchNodesArguments {
    /// Words that must all appear in the class name, display name, category or description.
    query: String,
    /// Only nodes whose category starts with this (e.g. "sampling", "image/upscaling").
    category: Option<String>,
    /// At most this many results (default 25).
    limit: Option<usize>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DescribeNodeArguments {
    /// Node class, e.g. "KSampler".
    class_type: String,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoraArgument {
    /// LoRA file name as list_models folder="loras" shows it.
    name: String,
    /// Strength on the diffusion model (default 1.0).
    strength: Option<f64>,
    /// Strength on the text encoder (default: same as strength).
    clip_strength: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ControlNetArgument {
    /// ControlNet model from models/controlnet.
    model: String,
    /// Control image from upload_image: already preprocessed (edges, depth, pose...), or a plain
    /// image with preprocessor.
    image: String,
    /// Make the control image from image first: canny (core), or depth, openpose, lineart,
    /// softedge, scribble, normal, segmentation, tile (comfyui_controlnet_aux pack).
    preprocessor: Option<String>,
    /// The preprocessor node's settings by input name (e.g. canny low_threshold, high_threshold);
    /// its defaults otherwise.
    #[serde(default)]
    preprocessor_settings: Map<String, Value>,
    /// Default 1.0.
    strength: Option<f64>,
    /// Fraction of sampling where it starts (default 0).
    start_percent: Option<f64>,
    /// Fraction of sampling where it ends (default 1).
    end_percent: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HiresFixArgument {
    /// Latent upscale factor (default 1.5).
    scale: Option<f64>,
    /// Steps of the second pass (default half the first).
    steps: Option<i64>,
    /// Denoise of the second pass (default 0.5).
    denoise: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GenerateImageArguments {
    /// What the image should show.
    prompt: String,
    /// A style preset for the prompt and settings: photographic, cinematic, anime, digital-art,
    /// watercolor, line-art, pixel-art, 3d-render, analog-film, comic-book, isometric,
    /// fantasy-art, or a saved one (style_preset).
    style: Option<String>,
    /// draft, standard or high: the model family's default steps halved, kept or x1.6.
    quality: Option<String>,
    /// What it should not show.
    negative_prompt: Option<String>,
    /// Pixels, multiple of 8 (default 512).
    width: Option<i64>,
    /// Pixels, multiple of 8 (default 512).
    height: Option<i64>,
    /// Sampling steps (default 20).
    steps: Option<i64>,
    /// Classifier-free guidance scale (default 7).
    cfg: Option<f64>,
    /// Sampler name, e.g. euler, dpmpp_2m (default euler).
    sampler: Option<String>,
    /// Scheduler name, e.g. normal, karras (default normal).
    scheduler: Option<String>,
    /// Seed for reproducible results (default random; the result reports it).
    seed: Option<i128>,
    /// 0..1, below 1 keeps part of the starting latent (default 1).
    denoise: Option<f64>,
    /// Images per run (default 1).
    batch_size: Option<i64>,
    /// Checkpoint file (default: the configured one, else the backend's first).
    checkpoint: Option<String>,
    /// Separate model files instead of a checkpoint (Flux, SD3...): a file from
    /// models/diffusion_models; needs text_encoders and vae.
    diffusion_model: Option<String>,
    /// 1 to 3 files from models/text_encoders (e.g. Flux: t5xxl and clip_l).
    #[serde(default)]
    text_encoders: Vec<String>,
    /// A file from models/vae.
    vae: Option<String>,
    /// stable_diffusion, stable_diffusion_xl, stable_diffusion_3 or flux (default: guessed from the
    /// model name); sets default size, steps, cfg, sampler and scheduler.
    family: Option<String>,
    /// LoRAs applied in order.
    #[serde(default)]
    loras: Vec<LoraArgument>,
    /// Start from this input image (a name from upload_image): image to image (denoise 0.6 by default).
    image: Option<String>,
    /// With image: repaint where this mask image is white, or "alpha" to repaint the image's transparent part.
    mask: Option<String>,
    /// With image: extend it by [left, top, right, bottom] pixels and paint the new area.
    outpaint: Option<[i64; 4]>,
    /// ControlNets applied in order.
    #[serde(default)]
    controlnets: Vec<ControlNetArgument>,
    /// A second pass at a higher resolution.
    hires_fix: Option<HiresFixArgument>,
    /// Upscale the result with this model from models/upscale_models.
    upscale_model: Option<String>,
    /// Output file name prefix (default comfyui-mcp).
    filename_prefix: Option<String>,
    /// Seconds to wait before returning the job id instead (default and maximum: the server's limit).
    wait_seconds: Option<f64>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RunWorkflowArguments {
    /// A workflow in API format (node id -> {class_type, inputs}, as "Export (API)" saves it) or
    /// UI format (with nodes and links, as "Save" writes it; converted like the frontend does).
    workflow: Value,
    /// Overrides keyed by parameter name (prompt, negative_prompt, seed, steps, cfg, width,
    /// checkpoint...; workflow_parameters lists them) or "NODE_ID.INPUT", e.g. {"seed": 42, "6.text": "a red fox"}.
    #[serde(default)]
    overrides: Map<String, Value>,
    wait_seconds: Option<f64>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetJobArguments {
    job_id: String,
    /// Wait up to this many seconds for the job to finish (default 0: report now).
    wait_seconds: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CancelJobArguments {
    job_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListJobsArguments {
    /// At most this many recent jobs per backend (default 20).
    limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetOutputArguments {
    /// File name as a job result lists it.
    filename: String,
    #[serde(default)]
    subfolder: String,
    /// output (default), input or temp.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Largest inline preview in bytes of base64 (default: the server's budget).
    max_preview_bytes: Option<usize>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UploadImageArguments {
    /// The file's bytes, base64 encoded. Give exactly one of data_base64, url, path.
    data_base64: Option<String>,
    /// An http(s) URL to fetch it from (public addresses only unless the operator allows
    /// private ones; at most 256 MiB; the type is read from the bytes).
    url: Option<String>,
    /// A file on the machine running this server (only where local files are allowed).
    path: Option<String>,
    /// Name to store it under (default: the path's or URL's file name, or upload.png).
    filename: Option<String>,
    /// Subfolder of ComfyUI's input folder.
    #[serde(default)]
    subfolder: String,
    /// Replace an existing file of the same name (default false: ComfyUI renames).
    #[serde(default)]
    overwrite: bool,
    /// Store as a mask for this already uploaded image (its alpha channel becomes the mask).
    mask_for: Option<String>,
    backend: Option<String>,
}

/// What `status` answers.
#[derive(Debug, Serialize, JsonSchema)]
struct StatusReport {
    /// This server's version.
    server_version: String,
    backends: Vec<BackendStatus>,
}

/// What `cancel_job` answers.
#[derive(Debug, Serialize, JsonSchema)]
struct CancelReport {
    job_id: String,
    /// dequeued, interrupted, already_finished or unknown.
    #[schemars(with = "String")]
    cancel: CancelOutcome,
    /// The job's status after the cancel.
    status: String,
}

/// What `upload_image` answers.
#[derive(Debug, Serialize, JsonSchema)]
struct UploadReport {
    /// The value for the loader's input (LoadImage's image, LoadVideo's file, LoadAudio's audio).
    name: String,
    /// image, video or audio, read from the bytes.
    media: String,
    filename: String,
    subfolder: String,
    /// input (ComfyUI's input folder).
    #[serde(rename = "type")]
    kind: String,
    backend: String,
    /// How to use it.
    #[serde(rename = "use")]
    usage: String,
}

/// This toolset's tools, each declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[
    declare_tool!(
        "status",
        "Health of every ComfyUI backend: versions, devices with VRAM, RAM, queue, websocket state, latency.",
        Hints::READ_ONLY,
        StatusArguments => StatusReport,
        status,
    ),
    declare_tool!(
        "list_models",
        "List model folders, the files in one folder (with sizes), or check that one file exists (with close-name suggestions and safetensors metadata).",
        Hints::READ_ONLY,
        ListModelsArguments => ModelListing,
        list_models,
    ),
    declare_tool!(
        "search_nodes",
        "Search the backend's node types by words in name, category or description.",
        Hints::READ_ONLY,
        SearchNodesArguments => NodeSearch,
        search_nodes,
    ),
    declare_tool!(
        "describe_node",
        "Inputs (type, default, range, choices) and outputs of one node type.",
        Hints::READ_ONLY,
        DescribeNodeArguments => NodeDescription,
        describe_node,
    ),
    declare_tool!(
        "generate_image",
        "Generate an image: text to image, or from an input image (image to image, inpaint with a mask, outpaint), with LoRAs, ControlNets, hires fix and model upscale, for SD1.x/SDXL/SD3/Flux. Waits (bounded) and returns a preview, a link to the full file and the parameters used, or a job_id to continue with get_job.",
        Hints::CREATES,
        GenerateImageArguments,
        generate_image,
    ),
    declare_tool!(
        "run_workflow",
        "Validate and run a workflow (API or UI format) with optional overrides by parameter name (prompt, seed, steps...) or NODE_ID.INPUT. Waits like generate_image.",
        Hints::CREATES,
        RunWorkflowArguments,
        run_workflow,
    ),
    declare_tool!(
        "get_job",
        "Status, progress and outputs of a job; optionally wait for it to finish.",
        Hints::READ_ONLY,
        GetJobArguments,
        get_job,
    ),
    declare_tool!(
        "cancel_job",
        "Cancel one job: removed from the queue if waiting, interrupted if running. Never touches other jobs.",
        Hints::REMOVES,
        CancelJobArguments => CancelReport,
        cancel_job,
    ),
    declare_tool!(
        "list_jobs",
        "Queues of every backend and recent jobs.",
        Hints::READ_ONLY,
        ListJobsArguments => JobListing,
        list_jobs,
    ),
    declare_tool!(
        "get_output",
        "Fetch an output file: an inline preview within the size budget plus its link and URL.",
        Hints::READ_ONLY,
        GetOutputArguments,
        get_output,
    ),
    declare_tool!(
        "upload_image",
        "Upload an image (or a mask), a video or an audio clip into ComfyUI's input folder, from base64, an http(s) URL or a local path where allowed; returns the name to use in LoadImage, LoadVideo or LoadAudio.",
        Hints::CREATES,
        UploadImageArguments => UploadReport,
        upload_image,
    ),
];

async fn status(
    server: &ComfyServer,
    _arguments: StatusArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<StatusReport> {
    Ok(StatusReport {
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        backends: server.engine.status().await,
    })
}

async fn list_models(
    server: &ComfyServer,
    arguments: ListModelsArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<ModelListing> {
    let engine = &server.engine;
    let mut listing = engine
        .list_models(
            arguments.backend.as_deref(),
            arguments.folder.as_deref(),
            arguments.contains.as_deref(),
            arguments.name.as_deref(),
        )
        .await
        .map_err(|error| engine_error(&error))?;
    if arguments.metadata
        && let (Some(folder), Some(name)) = (&arguments.folder, &arguments.name)
        && let ModelListing::Check {
            available: true,
            metadata,
            ..
        } = &mut listing
    {
        let found = engine
            .model_metadata(arguments.backend.as_deref(), folder, name)
            .await
            .map_err(|error| engine_error(&error))?;
        *metadata = match found {
            Some(Value::Object(found)) => Some(found),
            _ => None,
        };
    }
    Ok(listing)
}

async fn search_nodes(
    server: &ComfyServer,
    arguments: SearchNodesArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<NodeSearch> {
    let limit = arguments.limit.unwrap_or(25).clamp(1, 200);
    server
        .engine
        .search_nodes(
            arguments.backend.as_deref(),
            &arguments.query,
            arguments.category.as_deref(),
            limit,
        )
        .await
        .map_err(|error| engine_error(&error))
}

async fn describe_node(
    server: &ComfyServer,
    arguments: DescribeNodeArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<NodeDescription> {
    server
        .engine
        .describe_node(arguments.backend.as_deref(), &arguments.class_type)
        .await
        .map_err(|error| engine_error(&error))
}

async fn generate_image(
    server: &ComfyServer,
    arguments: GenerateImageArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let limit = wait_limit(server, arguments.wait_seconds, server.engine.config.wait)?;
    let request = GenerateRequest {
        prompt: arguments.prompt,
        negative_prompt: arguments.negative_prompt,
        width: arguments.width,
        height: arguments.height,
        steps: arguments.steps,
        cfg: arguments.cfg,
        sampler: arguments.sampler,
        scheduler: arguments.scheduler,
        seed: arguments.seed,
        denoise: arguments.denoise,
        batch_size: arguments.batch_size,
        checkpoint: arguments.checkpoint,
        diffusion_model: arguments.diffusion_model,
        text_encoders: arguments.text_encoders,
        vae: arguments.vae,
        family: arguments.family,
        loras: arguments
            .loras
            .into_iter()
            .map(|lora| LoraRequest {
                name: lora.name,
                strength: lora.strength,
                clip_strength: lora.clip_strength,
            })
            .collect(),
        image: arguments.image,
        mask: arguments.mask,
        outpaint: arguments.outpaint,
        controlnets: arguments
            .controlnets
            .into_iter()
            .map(|controlnet| ControlNetRequest {
                model: controlnet.model,
                image: controlnet.image,
                strength: controlnet.strength,
                start_percent: controlnet.start_percent,
                end_percent: controlnet.end_percent,
                preprocessor: controlnet.preprocessor,
                preprocessor_settings: controlnet.preprocessor_settings,
            })
            .collect(),
        hires_fix: arguments.hires_fix.map(|hires| HiresFixRequest {
            scale: hires.scale,
            steps: hires.steps,
            denoise: hires.denoise,
        }),
        upscale_model: arguments.upscale_model,
        filename_prefix: arguments.filename_prefix,
        backend: arguments.backend,
        style: arguments.style,
        quality: arguments.quality,
    };
    let engine = &server.engine;
    let (entry, mut job, parameters) = engine
        .generate(&request)
        .await
        .map_err(|error| engine_error(&error))?;
    let outcome = follow_job(server, entry, &mut job.subscription, &limit, &context.ct, context)
        .await
        .map_err(|error| engine_error(&error))?;
    let parameters = serde_json::to_value(&parameters).ok();
    Ok(job_answer(server, entry, &outcome, parameters).await)
}

async fn run_workflow(
    server: &ComfyServer,
    arguments: RunWorkflowArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    super::workflows::run_and_report(
        server,
        "run_workflow",
        &arguments.workflow,
        &arguments.overrides,
        arguments.wait_seconds,
        arguments.backend.as_deref(),
        context,
    )
    .await
}

async fn get_job(
    server: &ComfyServer,
    arguments: GetJobArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let limit = wait_limit(server, arguments.wait_seconds, Duration::ZERO)?;
    let engine = &server.engine;
    // A job that ended is answered from the database: it outlives ComfyUI's history and restarts.
    if let Some(record) = engine.stored_job(&arguments.job_id).await
        && record.state.is_final()
        && let Ok(entry) = engine.pick_backend(record.backend_id.as_deref())
    {
        let outcome = WaitOutcome::Finished(snapshot_from_record(&record));
        let parameters = record
            .request
            .get("parameters")
            .cloned()
            .filter(|value| !value.is_null());
        return Ok(job_answer(server, entry, &outcome, parameters).await);
    }
    let (entry, mut subscription) = engine
        .job(&arguments.job_id)
        .await
        .map_err(|error| engine_error(&error))?;
    // A client cancelling get_job stops the wait, not the job: cancel_job does that.
    let wait_only = tokio_util::sync::CancellationToken::new();
    let outcome = tokio::select! {
        outcome = follow_job(server, entry, &mut subscription, &limit, &wait_only, context) => outcome.map_err(|error| engine_error(&error))?,
        () = context.ct.cancelled() => return Err(error_text("the wait was cancelled; the job goes on")),
    };
    Ok(job_answer(server, entry, &outcome, None).await)
}

async fn cancel_job(
    server: &ComfyServer,
    arguments: CancelJobArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<CancelReport> {
    let (outcome, snapshot) = server
        .engine
        .cancel_job(&arguments.job_id)
        .await
        .map_err(|error| engine_error(&error))?;
    Ok(CancelReport {
        job_id: arguments.job_id,
        cancel: outcome,
        status: snapshot.phase.as_str().to_owned(),
    })
}

async fn list_jobs(
    server: &ComfyServer,
    arguments: ListJobsArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<JobListing> {
    server
        .engine
        .list_jobs(arguments.limit.unwrap_or(20).clamp(1, 500))
        .await
        .map_err(|error| engine_error(&error))
}

async fn get_output(
    server: &ComfyServer,
    arguments: GetOutputArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let file = FileRef {
        filename: arguments.filename,
        subfolder: arguments.subfolder,
        kind: arguments.kind.unwrap_or_else(|| "output".to_owned()),
    };
    let fetched = server
        .engine
        .fetch_output(arguments.backend.as_deref(), file, arguments.max_preview_bytes)
        .await
        .map_err(|error| engine_error(&error))?;
    let media_type = fetched.media_type;
    let mut summary = json!({
        "filename": fetched.file.filename,
        "subfolder": fetched.file.subfolder,
        "type": fetched.file.kind,
        "media_type": media_type,
        "size_bytes": fetched.size_bytes,
        "url": fetched.url,
        "resource_uri": super::render::output_uri(&fetched.backend, &fetched.file),
    });
    if server.download_route {
        // Over HTTP this server streams any file whole, for clients that cannot reach ComfyUI.
        summary["download_path"] = json!(super::render::download_path(&fetched.backend, &fetched.file));
    }
    if let Some(video) = &fetched.video {
        summary["video"] = serde_json::to_value(video).unwrap_or(Value::Null);
    }
    if let Some(model) = &fetched.model {
        summary["model"] = serde_json::to_value(model).unwrap_or(Value::Null);
    }
    if let Some(audio) = &fetched.audio {
        summary["audio"] = serde_json::to_value(audio).unwrap_or(Value::Null);
    }
    let preview = fetched.preview;
    if let Some(preview) = &preview {
        summary["preview"] = json!({"width": preview.width, "height": preview.height, "downscaled": preview.downscaled, "mime_type": preview.mime_type});
        if let Some(frames) = preview.frames {
            summary["preview"]["contact_sheet_of_frames"] = json!(frames);
        }
    } else if fetched.too_large {
        summary["preview"] = json!(format!(
            "no inline preview: the file is over the {} fetched for previews; open the URL",
            describe_bytes(MAXIMUM_PREVIEW_SOURCE_BYTES)
        ));
    } else if media_type.starts_with("image/") {
        summary["preview"] = json!(format!(
            "no inline preview: the file's content does not decode as {media_type} (its name says it is one); read the resource or open the URL"
        ));
    } else if fetched.model.is_some() {
        summary["preview"] = json!(
            "no inline preview for a 3D model (what it holds is under model); open the URL in a glTF viewer"
        );
    } else {
        summary["preview"] =
            json!("no inline preview for this media type; read the resource or open the URL");
    }
    let mut content = vec![ContentBlock::text(
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )];
    if let Some(preview) = preview {
        content.push(ContentBlock::image(preview.base64, preview.mime_type));
    }
    let output = OutputFile {
        node_id: String::new(),
        key: "file".to_owned(),
        file: fetched.file,
        animated: false,
    };
    content.push(ContentBlock::resource_link(super::render::resource(
        &fetched.backend,
        &fetched.url,
        &output,
    )));
    Ok(CallToolResult::success(content))
}

async fn upload_image(
    server: &ComfyServer,
    arguments: UploadImageArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<UploadReport> {
    let (bytes, default_name) = match (&arguments.data_base64, &arguments.url, &arguments.path) {
        (Some(data), None, None) => (super::images::decode_base64(data)?, "upload.png".to_owned()),
        (None, Some(url), None) => {
            let fetched = server
                .engine
                .fetch_input(url)
                .await
                .map_err(|error| engine_error(&error))?;
            let name = fetched.file_name.unwrap_or_else(|| "upload.png".to_owned());
            (fetched.bytes, name)
        }
        (None, None, Some(path)) => {
            let bytes = super::images::read_local(server, path).await?;
            let name = std::path::Path::new(path).file_name().map_or_else(
                || "upload.png".to_owned(),
                |name| name.to_string_lossy().into_owned(),
            );
            (bytes, name)
        }
        _ => return Err(error_text("give exactly one of data_base64, url or path")),
    };
    let uploaded = server
        .engine
        .upload_image(UploadRequest {
            bytes,
            filename: arguments.filename.unwrap_or(default_name),
            subfolder: arguments.subfolder,
            overwrite: arguments.overwrite,
            mask_for: arguments.mask_for,
            backend: arguments.backend,
        })
        .await
        .map_err(|error| engine_error(&error))?;
    let loader = match uploaded.media {
        "video" => "LoadVideo's file",
        "audio" => "LoadAudio's audio",
        _ => "LoadImage's image",
    };
    Ok(UploadReport {
        usage: format!("set {loader} input to {:?}", uploaded.node_value),
        media: uploaded.media.to_owned(),
        name: uploaded.node_value,
        filename: uploaded.filename,
        subfolder: uploaded.subfolder,
        kind: uploaded.kind,
        backend: uploaded.backend,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::tool::conformance::assert_conforms;
    use comfy_engine::jobs::{BackendJobs, HistoryJob, RecordedJob};
    use comfy_engine::models::{FolderSummary, ModelEntry, NodeInput, NodeOutput, NodeSummary, WidgetValue};
    use comfy_engine::types::{HistoryOutcome, JobState};
    use comfy_engine::{DeviceStatus, WebsocketStatus};

    fn websocket(last_error: Option<&str>) -> WebsocketStatus {
        WebsocketStatus {
            connected: last_error.is_none(),
            reconnects: 2,
            last_error: last_error.map(str::to_owned),
            queue_remaining: 0,
        }
    }

    #[test]
    fn status_conforms_to_its_schema() {
        let reachable = BackendStatus {
            name: "local".into(),
            url: "http://127.0.0.1:8188".into(),
            reachable: true,
            error: None,
            latency_ms: Some(1.5),
            comfyui_version: Some("0.3.75".into()),
            python_version: Some("3.12".into()),
            pytorch_version: Some("2.9".into()),
            ram_total: Some(1 << 34),
            ram_free: Some(1 << 33),
            devices: vec![
                DeviceStatus {
                    name: "cuda:0".into(),
                    kind: "cuda".into(),
                    index: Some(0),
                    vram_total: 1 << 33,
                    vram_free: 1 << 32,
                },
                DeviceStatus {
                    name: "cpu".into(),
                    kind: "cpu".into(),
                    index: None,
                    vram_total: 0,
                    vram_free: 0,
                },
            ],
            queue_running: Some(1),
            queue_pending: Some(0),
            websocket: websocket(None),
        };
        let unreachable = BackendStatus::unreachable(
            "remote".into(),
            "http://10.0.0.2:8188".into(),
            "connection refused".into(),
            websocket(Some("refused")),
        );
        assert_conforms(
            TOOLS,
            "status",
            &StatusReport {
                server_version: "1.0.0".into(),
                backends: vec![reachable, unreachable],
            },
        );
    }

    #[test]
    fn model_listings_conform_to_their_schema() {
        let listings = [
            ModelListing::Folders {
                backend: "local".into(),
                folders: vec![FolderSummary {
                    folder: "checkpoints".into(),
                    count: 2,
                }],
            },
            ModelListing::Files {
                backend: "local".into(),
                folder: "loras".into(),
                files: vec![
                    ModelEntry {
                        name: "a.safetensors".into(),
                        size_bytes: Some(10),
                    },
                    ModelEntry {
                        name: "b.pt".into(),
                        size_bytes: None,
                    },
                ],
                total: 2,
            },
        ];
        for listing in &listings {
            assert_conforms(TOOLS, "list_models", listing);
        }
        let found = json!({"ss_base_model_version": "sdxl", "ss_tag_frequency": {"a": 1}});
        for metadata in [None, found.as_object().cloned()] {
            let check = ModelListing::Check {
                backend: "local".into(),
                folder: "checkpoints".into(),
                name: "x.safetensors".into(),
                available: metadata.is_some(),
                suggestions: vec!["y.safetensors".into()],
                metadata,
            };
            assert_conforms(TOOLS, "list_models", &check);
        }
    }

    #[test]
    fn node_search_and_description_conform_to_their_schemas() {
        let search = NodeSearch {
            backend: "local".into(),
            total: 3,
            nodes: vec![
                NodeSummary {
                    class_type: "KSampler".into(),
                    display_name: "KSampler".into(),
                    category: "sampling".into(),
                    custom_node_pack: None,
                    output_node: false,
                    deprecated: false,
                },
                NodeSummary {
                    class_type: "Upscale".into(),
                    display_name: "Upscale".into(),
                    category: "image".into(),
                    custom_node_pack: Some("pack".into()),
                    output_node: true,
                    deprecated: true,
                },
            ],
        };
        assert_conforms(TOOLS, "search_nodes", &search);
        let input = |name: &str| NodeInput {
            name: name.into(),
            kind: "INT".into(),
            required: true,
            link_only: false,
            default: None,
            min: None,
            max: None,
            step: None,
            tooltip: None,
            multiline: None,
            choices: None,
            choices_total: None,
        };
        let description = NodeDescription {
            class_type: "KSampler".into(),
            display_name: "KSampler".into(),
            category: "sampling".into(),
            description: String::new(),
            output_node: false,
            inputs: vec![
                input("model"),
                NodeInput {
                    link_only: true,
                    default: Some(WidgetValue(json!(20))),
                    min: Some(1.into()),
                    max: Some(10000.into()),
                    step: serde_json::Number::from_f64(0.5),
                    tooltip: Some("steps".into()),
                    multiline: Some(false),
                    choices: Some(vec![WidgetValue(json!("euler")), WidgetValue(json!(3))]),
                    choices_total: Some(60),
                    ..input("steps")
                },
            ],
            outputs: vec![NodeOutput {
                index: 0,
                name: "LATENT".into(),
                kind: "LATENT".into(),
                is_list: false,
            }],
            custom_node_pack: Some("pack".into()),
        };
        assert_conforms(TOOLS, "describe_node", &description);
    }

    #[test]
    fn jobs_cancels_and_uploads_conform_to_their_schemas() {
        let listing = JobListing {
            backends: vec![BackendJobs {
                backend: "local".into(),
                running: vec!["a".into()],
                pending: vec!["b".into()],
                recorded_jobs: vec![
                    RecordedJob {
                        job_id: "a".into(),
                        status: JobState::Running,
                        workflow: Some("generate_image".into()),
                        outputs: 0,
                        error: None,
                        created_at_ms: 1,
                    },
                    RecordedJob {
                        job_id: "c".into(),
                        status: JobState::Failed,
                        workflow: None,
                        outputs: 0,
                        error: Some("out of memory".into()),
                        created_at_ms: 0,
                    },
                ],
                comfyui_history: vec![
                    HistoryJob {
                        job_id: "c".into(),
                        outcome: HistoryOutcome::Error,
                        outputs: 0,
                        finished_at_ms: None,
                    },
                    HistoryJob {
                        job_id: "d".into(),
                        outcome: HistoryOutcome::Success,
                        outputs: 2,
                        finished_at_ms: Some(5),
                    },
                ],
            }],
        };
        assert_conforms(TOOLS, "list_jobs", &listing);
        let cancel = CancelReport {
            job_id: "a".into(),
            cancel: CancelOutcome::AlreadyFinished,
            status: "succeeded".into(),
        };
        assert_conforms(TOOLS, "cancel_job", &cancel);
        let upload = UploadReport {
            name: "x/a.png".into(),
            media: "image".into(),
            filename: "a.png".into(),
            subfolder: "x".into(),
            kind: "input".into(),
            backend: "local".into(),
            usage: "set LoadImage's image input to \"x/a.png\"".into(),
        };
        assert_conforms(TOOLS, "upload_image", &upload);
    }
}
