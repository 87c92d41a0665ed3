//! Capabilities by intent: a video or an audio clip from a prompt, through the workflow templates
//! the backend serves. The caller says what it wants (prompt, size, frames, frame rate, seconds,
//! seed, steps); this picks a template that makes that medium from text and that the backend can
//! run (or the one the caller names), maps each wish onto the template's discovered parameters,
//! and hands back the workflow and overrides to run. A wish the template has no place for is an
//! error, never dropped; when nothing can run, the error names the closest template and every
//! file it lacks with its folder and URL.

use comfy_workflow::parameters::{Parameters, discover_parameters};
use serde_json::{Map, Value, json};

use crate::templates::{MAXIMUM_RESULTS, TemplateQuery, TemplateSummary, describe_missing};
use crate::workflows::parameter_options;
use crate::{BackendEntry, Engine, EngineError};

/// What is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Video,
    Audio,
}

impl Medium {
    /// The media type templates declare for what they make.
    fn media_type(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Audio => "audio",
        }
    }
}

/// A request in the medium's words. `None` leaves the template's own value.
#[derive(Debug, Clone, Default)]
pub struct Intent {
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub width: Option<u64>,
    pub height: Option<u64>,
    /// Video frames (the template's latent length).
    pub frames: Option<u64>,
    /// Frames per second, set on every frame-rate input (conditioning and the saved file).
    pub fps: Option<f64>,
    /// Audio length in seconds, set on every `seconds` input.
    pub seconds: Option<f64>,
    pub seed: Option<u64>,
    pub steps: Option<u64>,
    /// A template to use instead of the first runnable one.
    pub template: Option<String>,
    /// Further overrides by parameter name or `NODE_ID.INPUT`; they win over the wishes above.
    pub overrides: Map<String, Value>,
    pub backend: Option<String>,
}

/// A template ready to run for an intent.
pub struct IntentPlan<'engine> {
    pub entry: &'engine BackendEntry,
    pub template: String,
    pub workflow: Value,
    pub overrides: Map<String, Value>,
}

impl Engine {
    /// The template, workflow and overrides that make `intent` in `medium`; refused with every
    /// missing node and file when the backend cannot run it.
    pub async fn plan_intent(&self, medium: Medium, intent: &Intent) -> Result<IntentPlan<'_>, EngineError> {
        let entry = self.pick_backend(intent.backend.as_deref())?;
        let name = match &intent.template {
            Some(name) => name.clone(),
            None => self.choose_template(entry, medium).await?,
        };
        let (entry, workflow, _) = self.template(&name, Some(&entry.name)).await?;
        let prepared = self
            .prepare_workflow(&workflow, Some(&entry.name), &parameter_options())
            .await?;
        let parameters = discover_parameters(&prepared.loaded.prompt, &prepared.info);
        let overrides = intent_overrides(medium, intent, &parameters)
            .map_err(|missing| EngineError::bad_input(format!("template {name} {missing}")))?;
        let (entry, workflow) = self
            .runnable_template(&name, &overrides, Some(&entry.name))
            .await?;
        Ok(IntentPlan {
            entry,
            template: name,
            workflow,
            overrides,
        })
    }

    /// The first template that makes `medium` from text alone and runs on `entry` now; when none
    /// does, an error naming the one that lacks least, with what it lacks.
    async fn choose_template(&self, entry: &BackendEntry, medium: Medium) -> Result<String, EngineError> {
        let query = TemplateQuery {
            media_type: Some(medium.media_type().to_owned()),
            limit: MAXIMUM_RESULTS,
            backend: Some(entry.name.clone()),
            ..TemplateQuery::default()
        };
        let runnable = self
            .search_templates(&TemplateQuery {
                runnable_only: true,
                ..query.clone()
            })
            .await?;
        if let Some(template) = runnable.templates.iter().find(|template| from_text(template)) {
            return Ok(template.name.clone());
        }
        let all = self.search_templates(&query).await?;
        let closest = all
            .templates
            .iter()
            .filter(|template| from_text(template) && template.availability.problem.is_none())
            .min_by_key(|template| {
                template.availability.missing_models.len() + template.availability.missing_nodes.len()
            });
        let kind = medium.media_type();
        Err(match closest {
            Some(template) => EngineError::Missing {
                backend: entry.label(),
                what: format!(
                    "a {kind}-from-text template it can run ({} of its templates make {kind}; the closest is {})",
                    all.matched, template.name
                ),
                how_to_fix: format!(
                    "{}; or name another template (search_templates media_type={kind}) and replace its model files with overrides",
                    describe_missing(&template.availability)
                ),
            },
            None => EngineError::Missing {
                backend: entry.label(),
                what: format!("a template that makes {kind} from text"),
                how_to_fix: "update ComfyUI and its workflow templates (pip install -r requirements.txt)"
                    .to_owned(),
            },
        })
    }
}

/// Makes its medium from a prompt alone: no image, video or audio to load.
fn from_text(template: &TemplateSummary) -> bool {
    !template.api && template.availability.inputs.is_empty()
}

/// The overrides that carry `intent` onto `parameters`, or what the template has no place for.
fn intent_overrides(
    medium: Medium,
    intent: &Intent,
    parameters: &Parameters,
) -> Result<Map<String, Value>, String> {
    let mut overrides = Map::new();
    let mut first = |role: &str, value: Value, wish: &str| match parameters.get(role) {
        Some(_) => {
            overrides.insert(role.to_owned(), value);
            Ok(())
        }
        None => Err(format!(
            "has no {wish} to set (describe_template lists what it takes)"
        )),
    };
    first("prompt", json!(intent.prompt), "prompt")?;
    let wishes = [
        (
            "negative_prompt",
            intent.negative_prompt.as_ref().map(|text| json!(text)),
            "negative prompt",
        ),
        ("width", intent.width.map(|value| json!(value)), "width"),
        ("height", intent.height.map(|value| json!(value)), "height"),
        ("length", intent.frames.map(|value| json!(value)), "frame count"),
        ("seed", intent.seed.map(|value| json!(value)), "seed"),
        ("steps", intent.steps.map(|value| json!(value)), "step count"),
    ];
    for (role, value, wish) in wishes {
        if let Some(value) = value {
            first(role, value, wish)?;
        }
    }
    let every = [
        ("fps", intent.fps, "frame rate"),
        ("seconds", intent.seconds, "duration in seconds"),
    ];
    for (role, value, wish) in every {
        let Some(value) = value else { continue };
        let mut found = false;
        for parameter in parameters
            .parameters
            .iter()
            .filter(|parameter| parameter.role == role)
        {
            let integer = parameter.schema["type"] == "integer";
            let value = if integer {
                json!(value.round() as i64)
            } else {
                json!(value)
            };
            overrides.insert(parameter.name.clone(), value);
            found = true;
        }
        if !found {
            return Err(format!(
                "has no {wish} to set for its {} (describe_template lists what it takes)",
                medium.media_type()
            ));
        }
    }
    overrides.extend(intent.overrides.clone());
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use comfy_workflow::parameters::Parameter;

    use super::*;

    fn parameter(name: &str, role: &str, node_id: &str, input: &str, kind: &str) -> Parameter {
        Parameter {
            name: name.to_owned(),
            role: role.to_owned(),
            node_id: node_id.to_owned(),
            input: input.to_owned(),
            class_type: "Node".to_owned(),
            title: "Node".to_owned(),
            schema: json!({"type": kind}),
        }
    }

    /// A text-to-video template's knobs: a frame rate on the conditioning (FLOAT) and on the
    /// saved file (INT, as CreateVideo has it in 0.3.x).
    fn video_parameters() -> Parameters {
        Parameters {
            parameters: vec![
                parameter("prompt", "prompt", "6", "text", "string"),
                parameter("width", "width", "40", "width", "integer"),
                parameter("length", "length", "40", "length", "integer"),
                parameter("fps", "fps", "69", "frame_rate", "number"),
                parameter("fps_2", "fps", "78", "fps", "integer"),
                parameter("steps", "steps", "3", "steps", "integer"),
            ],
            addresses: Default::default(),
        }
    }

    #[test]
    fn wishes_land_on_the_template_parameters() {
        let intent = Intent {
            prompt: "a fox".to_owned(),
            width: Some(64),
            frames: Some(9),
            fps: Some(7.6),
            steps: Some(2),
            overrides: Map::from_iter([("steps".to_owned(), json!(3))]),
            ..Intent::default()
        };
        let overrides = intent_overrides(Medium::Video, &intent, &video_parameters()).expect("all fit");
        assert_eq!(overrides["prompt"], "a fox");
        assert_eq!(overrides["width"], 64);
        assert_eq!(overrides["length"], 9);
        // Every frame-rate input gets it, as each one's type takes it.
        assert_eq!(overrides["fps"], 7.6);
        assert_eq!(overrides["fps_2"], 8);
        // The caller's own overrides win.
        assert_eq!(overrides["steps"], 3);
    }

    #[test]
    fn a_wish_without_a_place_is_refused() {
        let negative = Intent {
            prompt: "a fox".to_owned(),
            negative_prompt: Some("blur".to_owned()),
            ..Intent::default()
        };
        let error = intent_overrides(Medium::Video, &negative, &video_parameters()).unwrap_err();
        assert!(error.contains("has no negative prompt to set"), "{error}");
        let seconds = Intent {
            prompt: "rain".to_owned(),
            seconds: Some(3.0),
            ..Intent::default()
        };
        let error = intent_overrides(Medium::Audio, &seconds, &video_parameters()).unwrap_err();
        assert!(
            error.contains("has no duration in seconds to set for its audio"),
            "{error}"
        );
        let no_prompt = Parameters {
            parameters: vec![parameter("seed", "seed", "3", "seed", "integer")],
            addresses: Default::default(),
        };
        let error = intent_overrides(Medium::Audio, &seconds, &no_prompt).unwrap_err();
        assert!(error.contains("has no prompt"), "{error}");
    }
}
