//! Capabilities by intent: a video or an audio clip from a prompt, or an image edited by an
//! instruction, through the workflow templates the backend serves. The caller says what it wants
//! (prompt, image, size, frames, frame rate, seconds, seed, steps); this picks a template that
//! does that (video or audio from text alone; an image in, tagged Image Edit) and that the
//! backend can run (or the one the caller names), maps each wish onto the template's parameters,
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
    /// A video from a prompt alone.
    Video,
    /// A video that starts from an image.
    ImageToVideo,
    Audio,
    /// An image edited by an instruction.
    ImageEdit,
}

impl Medium {
    /// The media type templates declare for what they make.
    fn media_type(self) -> &'static str {
        match self {
            Self::Video | Self::ImageToVideo => "video",
            Self::Audio => "audio",
            Self::ImageEdit => "image",
        }
    }

    /// The index tag the templates for it carry, where the media type is not enough.
    fn tag(self) -> Option<&'static str> {
        (self == Self::ImageEdit).then_some(IMAGE_EDIT_TAG)
    }

    /// What a template for it is called in answers, with its article.
    fn template_kind(self) -> &'static str {
        match self {
            Self::Video => "a video-from-text",
            Self::ImageToVideo => "an image-to-video",
            Self::Audio => "an audio-from-text",
            Self::ImageEdit => "an image-edit",
        }
    }

    /// Whether `template` does this: video or audio from a prompt alone; a video from images
    /// (and masks) only; an edit from an image.
    fn fits(self, template: &TemplateSummary) -> bool {
        let inputs = &template.availability.inputs;
        let takes_an_image = inputs.iter().any(|input| input == "image");
        !template.api
            && match self {
                Self::Video | Self::Audio => inputs.is_empty(),
                Self::ImageToVideo => {
                    takes_an_image && inputs.iter().all(|input| input == "image" || input == "mask")
                }
                Self::ImageEdit => {
                    takes_an_image
                        && template
                            .tags
                            .iter()
                            .any(|tag| tag.eq_ignore_ascii_case(IMAGE_EDIT_TAG))
                }
            }
    }
}

/// The index tag of editing templates (Qwen-Image-Edit, Flux Kontext, OmniGen2...).
const IMAGE_EDIT_TAG: &str = "Image Edit";

/// A request in the medium's words. `None` leaves the template's own value.
#[derive(Debug, Clone, Default)]
pub struct Intent {
    pub prompt: String,
    pub negative_prompt: Option<String>,
    /// The image to edit: a file in the backend's input folder (what upload_image answers).
    pub image: Option<String>,
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
        if let Some(name) = &intent.template {
            let overrides = self
                .template_overrides(entry, medium, intent, name)
                .await?
                .map_err(|missing| EngineError::bad_input(format!("template {name} {missing}")))?;
            return self.planned(entry, name, overrides).await;
        }
        let query = TemplateQuery {
            media_type: Some(medium.media_type().to_owned()),
            tag: medium.tag().map(str::to_owned),
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
        // A runnable template that has no place for a wish (no prompt...) is passed over.
        let mut unfit = Vec::new();
        for template in runnable.templates.iter().filter(|template| medium.fits(template)) {
            match self
                .template_overrides(entry, medium, intent, &template.name)
                .await?
            {
                Ok(overrides) => return self.planned(entry, &template.name, overrides).await,
                Err(missing) => unfit.push(format!("{} {missing}", template.name)),
            }
        }
        let all = self.search_templates(&query).await?;
        Err(nothing_runs(entry, medium, &all.templates, all.matched, &unfit))
    }

    /// The overrides that carry `intent` onto template `name`, or what it has no place for.
    async fn template_overrides(
        &self,
        entry: &BackendEntry,
        medium: Medium,
        intent: &Intent,
        name: &str,
    ) -> Result<Result<Map<String, Value>, String>, EngineError> {
        let (entry, workflow, _) = self.template(name, Some(&entry.name)).await?;
        let prepared = self
            .prepare_workflow(&workflow, Some(&entry.name), &parameter_options())
            .await?;
        let parameters = discover_parameters(&prepared.loaded.prompt, &prepared.info);
        Ok(intent_overrides(medium, intent, &parameters))
    }

    async fn planned(
        &self,
        entry: &BackendEntry,
        name: &str,
        overrides: Map<String, Value>,
    ) -> Result<IntentPlan<'_>, EngineError> {
        let (entry, workflow) = self
            .runnable_template(name, &overrides, Some(&entry.name))
            .await?;
        Ok(IntentPlan {
            entry,
            template: name.to_owned(),
            workflow,
            overrides,
        })
    }
}

/// Why no template can do `medium` on `entry`: the fitting one that lacks least, with what it
/// lacks, and the runnable ones that had no place for a wish.
fn nothing_runs(
    entry: &BackendEntry,
    medium: Medium,
    templates: &[TemplateSummary],
    matched: usize,
    unfit: &[String],
) -> EngineError {
    let closest = templates
        .iter()
        .filter(|template| {
            medium.fits(template)
                && !template.availability.runnable
                && template.availability.problem.is_none()
        })
        .min_by_key(|template| {
            template.availability.missing_models.len() + template.availability.missing_nodes.len()
        });
    let (kind, media_type) = (medium.template_kind(), medium.media_type());
    let passed_over = if unfit.is_empty() {
        String::new()
    } else {
        format!("; runnable but unfit: {}", unfit.join("; "))
    };
    match closest {
        Some(template) => EngineError::Missing {
            backend: entry.label(),
            what: format!(
                "{kind} template it can run ({matched} of its templates make {media_type}{}; the closest is {}{passed_over})",
                medium
                    .tag()
                    .map_or_else(String::new, |tag| format!(" tagged {tag}")),
                template.name
            ),
            how_to_fix: format!(
                "{}; or name another template (search_templates media_type={media_type}) and replace its model files with overrides",
                describe_missing(&template.availability)
            ),
        },
        None => EngineError::Missing {
            backend: entry.label(),
            what: format!("{kind} template{passed_over}"),
            how_to_fix: "update ComfyUI and its workflow templates (pip install -r requirements.txt)"
                .to_owned(),
        },
    }
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
