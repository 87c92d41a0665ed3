//! The `enhance` toolset: work the backend does on an existing image. `upscale_image` makes any
//! image larger (the library, a backend file, base64, a URL) in one or more passes, with an
//! upscale model or resampling, optionally refining details with a low-denoise img2img.

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::Deserialize;

use super::images::{self, ImageArgument};
use super::render::engine_error;
use super::server::ComfyServer;
use super::tool::{Hints, ToolDeclaration, ToolOutcome, declare_tool, follow_job, job_answer, wait_limit};
use comfy_engine::enhance::{RefineRequest, UpscaleRequest};

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

/// This toolset's tools, each declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[declare_tool!(
    "upscale_image",
    "Upscale any existing image (library id, backend file, base64, URL) on the backend: with an upscale model or by resampling, in one or several progressive passes of exact sizes, each optionally refined by a low-denoise img2img over tiled VAE nodes. Waits (bounded) and returns the result with a preview, or the job id to follow.",
    Hints::CREATES,
    UpscaleImageArguments,
    upscale_image,
)];

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
    let (entry, mut job, parameters) = server
        .engine
        .upscale(request)
        .await
        .map_err(|error| engine_error(&error))?;
    let outcome = follow_job(server, entry, &mut job.subscription, &limit, &context.ct, context)
        .await
        .map_err(|error| engine_error(&error))?;
    Ok(job_answer(server, entry, &outcome, Some(parameters)).await)
}
