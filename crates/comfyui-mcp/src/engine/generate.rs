//! Generation requests: checking arguments, building graphs, validating them locally against the
//! backend's node definitions (so a bad request never reaches ComfyUI's queue) and submitting them.

use std::collections::BTreeMap;

use comfy_api::{SubmitOptions, SubmittedJob};
use comfy_workflow::builders::{LoraSpec, TextToImage};
use comfy_workflow::diagnostic::code;
use comfy_workflow::{ApiPrompt, Report, ValidationOptions, validate};
use serde::Serialize;
use serde_json::{Map, Value};

use super::records::JobContext;
use super::{BackendEntry, Engine, EngineError};

/// A text-to-image request; `None` means "use the default".
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
    pub loras: Vec<LoraRequest>,
    pub filename_prefix: Option<String>,
    pub backend: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoraRequest {
    pub name: String,
    pub strength: Option<f64>,
    pub clip_strength: Option<f64>,
}

/// The parameters actually used, echoed back so a result can be reproduced.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationParameters {
    pub checkpoint: String,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    pub steps: u32,
    pub cfg: f64,
    pub sampler: String,
    pub scheduler: String,
    pub denoise: f64,
    pub batch_size: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loras: Vec<LoraSpec>,
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

fn random_seed() -> u64 {
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
    /// Validates `prompt` against `entry`'s node definitions. Model lists are refreshed once before
    /// a model name is declared missing (a file may have been added since they were fetched).
    pub async fn validate_prompt(
        &self,
        entry: &BackendEntry,
        prompt: &ApiPrompt,
    ) -> Result<Report, EngineError> {
        let options = ValidationOptions::default();
        let report = validate(prompt, &*self.object_info(entry, false).await?, &options);
        let stale_models = report.errors().any(|diagnostic| {
            diagnostic.code == code::VALUE_NOT_IN_LIST
                && diagnostic
                    .input
                    .as_deref()
                    .is_some_and(|input| MODEL_INPUTS.contains(&input))
        });
        if stale_models {
            return Ok(validate(prompt, &*self.object_info(entry, true).await?, &options));
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
        let report = self.validate_prompt(entry, prompt).await?;
        if report.has_errors() {
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

    /// Builds, validates and queues a text-to-image graph.
    pub async fn generate(
        &self,
        request: &GenerateRequest,
    ) -> Result<(&BackendEntry, SubmittedJob, GenerationParameters), EngineError> {
        if request.prompt.trim().is_empty() {
            return Err(EngineError::bad_input("prompt must not be empty"));
        }
        let width = in_range("width", request.width.unwrap_or(512), 16, 16_384)?;
        let height = in_range("height", request.height.unwrap_or(512), 16, 16_384)?;
        for (name, value) in [("width", width), ("height", height)] {
            if value % 8 != 0 {
                return Err(EngineError::bad_input(format!(
                    "{name} must be a multiple of 8 (latents are 1/8 of the image), got {value}; try {}",
                    (value / 8).max(2) * 8
                )));
            }
        }
        let steps = in_range("steps", request.steps.unwrap_or(20), 1, 10_000)?;
        let cfg = in_range("cfg", request.cfg.unwrap_or(7.0), 0.0, 100.0)?;
        let denoise = in_range("denoise", request.denoise.unwrap_or(1.0), 0.0, 1.0)?;
        let batch_size = in_range("batch_size", request.batch_size.unwrap_or(1), 1, 64)?;
        let seed = match request.seed {
            Some(seed) => u64::try_from(in_range("seed", seed, 0, i128::from(u64::MAX))?).unwrap_or_default(),
            None => random_seed(),
        };
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
        let entry = self.pick_backend(request.backend.as_deref())?;
        let info = self.object_info(entry, false).await?;
        let checkpoint = match &request.checkpoint {
            Some(name) => name.clone(),
            None => match &self.settings.default_checkpoint {
                Some(name) => name.clone(),
                None => {
                    if !info.has_node("CheckpointLoaderSimple") {
                        return Err(EngineError::Missing {
                            backend: entry.label(),
                            what: "node class CheckpointLoaderSimple".to_owned(),
                            how_to_fix: "this ComfyUI lacks its core loader nodes; update or repair the ComfyUI install".to_owned(),
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
                        how_to_fix: "put a checkpoint file (.safetensors or .ckpt) into ComfyUI's models/checkpoints folder, or pass `checkpoint`; list_models with folder=\"checkpoints\" shows what is there".to_owned(),
                    })?
                }
            },
        };
        let parameters = GenerationParameters {
            checkpoint,
            seed,
            width: u32::try_from(width).unwrap_or(512),
            height: u32::try_from(height).unwrap_or(512),
            steps: u32::try_from(steps).unwrap_or(20),
            cfg,
            sampler: request.sampler.clone().unwrap_or_else(|| "euler".to_owned()),
            scheduler: request.scheduler.clone().unwrap_or_else(|| "normal".to_owned()),
            denoise,
            batch_size: u32::try_from(batch_size).unwrap_or(1),
            loras,
        };
        let graph = TextToImage {
            checkpoint: parameters.checkpoint.clone(),
            prompt: request.prompt.clone(),
            negative_prompt: request.negative_prompt.clone().unwrap_or_default(),
            width: parameters.width,
            height: parameters.height,
            batch_size: parameters.batch_size,
            steps: parameters.steps,
            cfg: parameters.cfg,
            sampler: parameters.sampler.clone(),
            scheduler: parameters.scheduler.clone(),
            seed: parameters.seed,
            denoise: parameters.denoise,
            loras: parameters.loras.clone(),
            filename_prefix: request
                .filename_prefix
                .clone()
                .unwrap_or_else(|| "comfyui-mcp".to_owned()),
        }
        .build();
        let context = JobContext {
            workflow: Some("generate_image".to_owned()),
            model: Some(parameters.checkpoint.clone()),
            prompt_text: request.prompt.clone(),
            parameters: serde_json::to_value(&parameters).unwrap_or(Value::Null),
            seed: Some(parameters.seed),
        };
        let job = self
            .submit(entry, &graph.prompt, SubmitOptions::default(), context)
            .await?;
        Ok((entry, job, parameters))
    }

    /// Applies `node_id.input` overrides to an API-format workflow and queues it.
    pub async fn run_workflow(
        &self,
        workflow: &Value,
        overrides: &Map<String, Value>,
        backend: Option<&str>,
    ) -> Result<(&BackendEntry, SubmittedJob), EngineError> {
        let mut prompt: ApiPrompt = parse_api_workflow(workflow)?;
        for (key, value) in overrides {
            let Some((node_id, input)) = key.split_once('.') else {
                return Err(EngineError::bad_input(format!(
                    "override key {key:?} must be NODE_ID.INPUT, e.g. \"3.seed\""
                )));
            };
            let Some(node) = prompt.get_mut(node_id) else {
                let known: Vec<&str> = prompt.nodes.keys().map(String::as_str).collect();
                return Err(EngineError::bad_input(format!(
                    "override {key:?}: the workflow has no node {node_id:?}; its nodes are {}",
                    known.join(", ")
                )));
            };
            node.inputs.insert(
                input.to_owned(),
                comfy_workflow::InputValue::constant(value.clone()),
            );
        }
        let entry = self.pick_backend(backend)?;
        let context = workflow_context(&prompt, overrides);
        let job = self
            .submit(entry, &prompt, SubmitOptions::default(), context)
            .await?;
        Ok((entry, job))
    }
}

/// What the library records for an arbitrary workflow: its text prompts, model and seed where the
/// graph has the usual nodes.
fn workflow_context(prompt: &ApiPrompt, overrides: &Map<String, Value>) -> JobContext {
    let texts: Vec<&str> = prompt
        .nodes
        .values()
        .filter(|node| node.class_type.starts_with("CLIPTextEncode"))
        .filter_map(|node| node.inputs.get("text").and_then(Value::as_str))
        .collect();
    let model = prompt.nodes.values().find_map(|node| {
        ["ckpt_name", "unet_name"]
            .iter()
            .find_map(|input| node.inputs.get(*input).and_then(Value::as_str))
            .map(str::to_owned)
    });
    let seed = prompt.nodes.values().find_map(|node| {
        ["seed", "noise_seed"]
            .iter()
            .find_map(|input| node.inputs.get(*input).and_then(Value::as_u64))
    });
    JobContext {
        workflow: Some("run_workflow".to_owned()),
        model,
        prompt_text: texts.join("\n"),
        parameters: Value::Object(overrides.clone()),
        seed,
    }
}

/// Reads an API-format workflow, with a clear error for UI-format files and other JSON.
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
