//! The `templates` toolset: ComfyUI's own workflow templates as ready builders for every
//! modality. `search_templates` lists what the backend serves with availability (missing node
//! classes with their pack, missing model files with folder and URL), `describe_template` adds a
//! template's parameters, and `run_template` runs one with overrides by parameter name, exactly
//! like `run_workflow`, after checking that nothing is missing. `generate_video`,
//! `generate_audio` and `edit_image` are the same run asked for by intent: the engine picks a
//! template that does it and maps the prompt, image, size, frames, frame rate or seconds onto it.

use rmcp::RoleServer;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::render::{engine_error, json_result};
use super::server::ComfyServer;
use super::tool::{Hints, Structured, ToolDeclaration, ToolOutcome, declare_tool};
use comfy_engine::intents::{Intent, Medium};
use comfy_engine::templates::{TemplateQuery, TemplateSearch};
use comfy_engine::workflows::{parameter_options, parameters_json};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchTemplatesArguments {
    /// Words that must all appear in the name, title, description, tags or model families.
    words: Option<String>,
    /// What it makes: image, video, audio or 3d.
    media_type: Option<String>,
    /// A tag such as "Text to Image", "Image Edit", "Image to Video", "Text to Audio".
    tag: Option<String>,
    /// A model family such as Flux, Wan, Qwen-Image, LTXV, ACE-Step.
    model: Option<String>,
    /// Only templates this backend can run now (default false).
    #[serde(default)]
    runnable_only: bool,
    /// Include templates that run on Comfy.org's paid API nodes (default false).
    #[serde(default)]
    include_api: bool,
    /// Most templates listed (default 10, at most 50).
    limit: Option<usize>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DescribeTemplateArguments {
    /// The template's name, as search_templates lists it.
    name: String,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RunTemplateArguments {
    /// The template's name, as search_templates lists it.
    name: String,
    /// Overrides keyed by parameter name (prompt, negative_prompt, seed, steps, width, image...;
    /// describe_template lists them) or "NODE_ID.INPUT".
    #[serde(default)]
    overrides: Map<String, Value>,
    wait_seconds: Option<f64>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GenerateVideoArguments {
    /// What the video shows.
    prompt: String,
    /// An image the video starts from: the name upload_image answered. Picks an image-to-video
    /// template (Wan, LTX-Video, Hunyuan, SVD...) instead of a text-to-video one.
    image: Option<String>,
    negative_prompt: Option<String>,
    /// Frame width in pixels (the template's default when left out).
    width: Option<u64>,
    height: Option<u64>,
    /// Number of frames (many video models take 4n+1: 33, 81...).
    frames: Option<u64>,
    /// Frames per second, for the model's conditioning and the saved file.
    fps: Option<f64>,
    seed: Option<u64>,
    steps: Option<u64>,
    /// A template to use (search_templates media_type=video); by default the first that makes
    /// video from text and runs on this backend.
    template: Option<String>,
    /// Further overrides by parameter name or "NODE_ID.INPUT" (describe_template lists them),
    /// e.g. other model files: {"unet": "...", "vae": "..."}.
    #[serde(default)]
    overrides: Map<String, Value>,
    wait_seconds: Option<f64>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GenerateAudioArguments {
    /// What the clip sounds like (music, sound effects...).
    prompt: String,
    negative_prompt: Option<String>,
    /// Length of the clip in seconds.
    seconds: Option<f64>,
    seed: Option<u64>,
    steps: Option<u64>,
    /// A template to use (search_templates media_type=audio); by default the first that makes
    /// audio from text and runs on this backend.
    template: Option<String>,
    /// Further overrides by parameter name or "NODE_ID.INPUT" (describe_template lists them).
    #[serde(default)]
    overrides: Map<String, Value>,
    wait_seconds: Option<f64>,
    backend: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EditImageArguments {
    /// The image to edit: the name upload_image answered (a file in ComfyUI's input folder).
    image: String,
    /// What to change, in words ("make the sky stormy", "remove the car").
    instruction: String,
    negative_prompt: Option<String>,
    width: Option<u64>,
    height: Option<u64>,
    seed: Option<u64>,
    steps: Option<u64>,
    /// A template to use (search_templates tag="Image Edit"); by default the first editing
    /// template that runs on this backend.
    template: Option<String>,
    /// Further overrides by parameter name or "NODE_ID.INPUT" (describe_template lists them).
    #[serde(default)]
    overrides: Map<String, Value>,
    wait_seconds: Option<f64>,
    backend: Option<String>,
}

/// This toolset's tools, each declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[
    declare_tool!(
        "search_templates",
        "Search the official workflow templates the ComfyUI backend serves (image, image editing, video, audio, 3D, every model family) by words, media type, tag or model, each with what it takes in and whether this backend can run it now: missing node classes with their pack, missing model files with folder and download URL.",
        Hints::READ_ONLY,
        SearchTemplatesArguments => TemplateSearch,
        search_templates,
    ),
    declare_tool!(
        "describe_template",
        "One workflow template: its availability and its parameters (prompt, seed, size, images, models...) with JSON Schemas; run_template takes these names as overrides.",
        Hints::READ_ONLY,
        DescribeTemplateArguments,
        describe_template,
    ),
    declare_tool!(
        "run_template",
        "Run a workflow template with overrides by parameter name, validated before it is queued; when the backend lacks a node or model file the answer names each one with its pack, folder and download URL, and nothing is queued.",
        Hints::CREATES,
        RunTemplateArguments,
        run_template,
    ),
    declare_tool!(
        "generate_video",
        "Generate a video from a prompt, or from an image and a prompt, with one of the backend's video templates (Wan, LTX-Video, Hunyuan...): the first that runs here, or the one named; size, frames, fps, seed and steps map onto its parameters. Returns a keyframe contact sheet and a link to the file; when nothing can run, names the closest template and every model file it lacks with folder and download URL.",
        Hints::CREATES,
        GenerateVideoArguments,
        generate_video,
    ),
    declare_tool!(
        "generate_audio",
        "Generate music or sound from a prompt with one of the backend's audio templates (Stable Audio, ACE-Step...): the first that runs here, or the one named; seconds, seed and steps map onto its parameters. Returns a waveform with duration, peak and loudness and a link to the file; when nothing can run, names the closest template and every model file it lacks with folder and download URL.",
        Hints::CREATES,
        GenerateAudioArguments,
        generate_audio,
    ),
    declare_tool!(
        "edit_image",
        "Edit an image by instruction with one of the backend's image-edit templates (Qwen-Image-Edit, Flux Kontext, OmniGen2, HiDream-E1...): the first that runs here, or the one named. Upload the image first (upload_image). When nothing can run, names the closest template and every model file it lacks with folder and download URL.",
        Hints::CREATES,
        EditImageArguments,
        edit_image,
    ),
];

async fn search_templates(
    server: &ComfyServer,
    arguments: SearchTemplatesArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<TemplateSearch> {
    let query = TemplateQuery {
        words: arguments.words,
        media_type: arguments.media_type,
        tag: arguments.tag,
        model: arguments.model,
        runnable_only: arguments.runnable_only,
        include_api: arguments.include_api,
        limit: arguments.limit.unwrap_or(10),
        backend: arguments.backend,
    };
    server
        .engine
        .search_templates(&query)
        .await
        .map_err(|error| engine_error(&error))
}

async fn describe_template(
    server: &ComfyServer,
    arguments: DescribeTemplateArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let engine = &server.engine;
    let (entry, workflow, summary) = engine
        .template(&arguments.name, arguments.backend.as_deref())
        .await
        .map_err(|error| engine_error(&error))?;
    let prepared = engine
        .prepare_workflow(&workflow, Some(&entry.name), &parameter_options())
        .await
        .map_err(|error| engine_error(&error))?;
    let mut result = parameters_json(&prepared.loaded, &prepared.info);
    result["backend"] = json!(entry.name);
    result["template"] = serde_json::to_value(&summary).unwrap_or(Value::Null);
    result["use"] = json!("pass these names (or \"NODE_ID.INPUT\") as run_template overrides");
    Ok(json_result(&result))
}

async fn run_template(
    server: &ComfyServer,
    arguments: RunTemplateArguments,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResult, CallToolResult> {
    let (entry, workflow) = server
        .engine
        .runnable_template(
            &arguments.name,
            &arguments.overrides,
            arguments.backend.as_deref(),
        )
        .await
        .map_err(|error| engine_error(&error))?;
    let label = format!("template {}", arguments.name);
    super::workflows::run_and_report(
        server,
        &label,
        &workflow,
        &arguments.overrides,
        arguments.wait_seconds,
        Some(&entry.name),
        context,
    )
    .await
}

async fn generate_video(
    server: &ComfyServer,
    arguments: GenerateVideoArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let medium = if arguments.image.is_some() {
        Medium::ImageToVideo
    } else {
        Medium::Video
    };
    let intent = Intent {
        prompt: arguments.prompt,
        image: arguments.image,
        negative_prompt: arguments.negative_prompt,
        width: arguments.width,
        height: arguments.height,
        frames: arguments.frames,
        fps: arguments.fps,
        seed: arguments.seed,
        steps: arguments.steps,
        template: arguments.template,
        overrides: arguments.overrides,
        backend: arguments.backend,
        ..Intent::default()
    };
    run_intent(server, medium, &intent, arguments.wait_seconds, context).await
}

async fn generate_audio(
    server: &ComfyServer,
    arguments: GenerateAudioArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let intent = Intent {
        prompt: arguments.prompt,
        negative_prompt: arguments.negative_prompt,
        seconds: arguments.seconds,
        seed: arguments.seed,
        steps: arguments.steps,
        template: arguments.template,
        overrides: arguments.overrides,
        backend: arguments.backend,
        ..Intent::default()
    };
    run_intent(server, Medium::Audio, &intent, arguments.wait_seconds, context).await
}

async fn edit_image(
    server: &ComfyServer,
    arguments: EditImageArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let intent = Intent {
        prompt: arguments.instruction,
        image: Some(arguments.image),
        negative_prompt: arguments.negative_prompt,
        width: arguments.width,
        height: arguments.height,
        seed: arguments.seed,
        steps: arguments.steps,
        template: arguments.template,
        overrides: arguments.overrides,
        backend: arguments.backend,
        ..Intent::default()
    };
    run_intent(
        server,
        Medium::ImageEdit,
        &intent,
        arguments.wait_seconds,
        context,
    )
    .await
}

async fn run_intent(
    server: &ComfyServer,
    medium: Medium,
    intent: &Intent,
    wait_seconds: Option<f64>,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let plan = server
        .engine
        .plan_intent(medium, intent)
        .await
        .map_err(|error| engine_error(&error))?;
    let label = format!("template {}", plan.template);
    super::workflows::run_and_report(
        server,
        &label,
        &plan.workflow,
        &plan.overrides,
        wait_seconds,
        Some(&plan.entry.name),
        context,
    )
    .await
}
