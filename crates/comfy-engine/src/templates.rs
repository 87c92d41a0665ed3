//! ComfyUI's own workflow templates as a catalog: the index each backend serves
//! (`/templates/index.json`), searched by media type, tag, model family and words; for each
//! template what it takes in, the node classes and model files it needs (with the folder and
//! download URL its loaders declare, and the pack a missing node comes from), and whether this
//! backend can run it now. A runnable template is run like any UI workflow, with overrides by
//! parameter name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use comfy_workflow::{ObjectInfo, Requirements, parse_lenient, requirements};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{BackendEntry, Engine, EngineError};

/// Most templates a search returns.
pub const MAXIMUM_RESULTS: usize = 50;

/// Template files fetched at once while a search checks availability.
const CONCURRENT_FETCHES: usize = 4;

/// Loader classes whose presence says what media a template takes in.
const INPUT_KINDS: &[(&str, &str)] = &[
    ("LoadImage", "image"),
    ("LoadImageMask", "mask"),
    ("LoadImageOutput", "image"),
    ("LoadVideo", "video"),
    ("LoadAudio", "audio"),
    ("Load3D", "3d"),
];

/// What a search asks for; every filter is optional and case-insensitive.
#[derive(Debug, Clone, Default)]
pub struct TemplateQuery {
    /// Words that must all appear in the name, title, description, tags or model families.
    pub words: Option<String>,
    /// `image`, `video`, `audio`, `3d`...
    pub media_type: Option<String>,
    /// A tag (`Text to Image`, `Image Edit`, `Image to Video`...), matched as a substring.
    pub tag: Option<String>,
    /// A model family (`Flux`, `Wan`, `Qwen-Image`...), matched as a substring.
    pub model: Option<String>,
    /// Only templates this backend can run now (every template matched is checked).
    pub runnable_only: bool,
    /// Leave in templates that run on Comfy.org's paid API nodes.
    pub include_api: bool,
    pub limit: usize,
    pub backend: Option<String>,
}

/// The answer to a search.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TemplateSearch {
    pub backend: String,
    /// Templates the backend serves.
    pub total: usize,
    /// Templates that matched the filters (before `limit`).
    pub matched: usize,
    pub templates: Vec<TemplateSummary>,
}

/// One template as a search lists it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TemplateSummary {
    /// What `run_template` and `describe_template` take.
    pub name: String,
    pub title: String,
    pub description: String,
    /// What it makes: `image`, `video`, `audio`, `3d`.
    pub media_type: String,
    /// The index category (`Image`, `Video API`, `Getting Started`...).
    pub category: String,
    pub tags: Vec<String>,
    /// Model families it uses, as the index names them.
    pub models: Vec<String>,
    /// Runs on Comfy.org's paid API nodes rather than local models.
    pub api: bool,
    /// Total size of its model files in bytes, when the index says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_comfyui_version: Option<String>,
    pub availability: Availability,
}

/// Whether a backend can run a template now, and what is missing when it cannot.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Availability {
    pub runnable: bool,
    /// Media it takes in besides text (`image`, `mask`, `video`, `audio`, `3d`).
    pub inputs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_nodes: Vec<MissingNode>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_models: Vec<MissingModel>,
    /// Why it cannot run, when that is not a missing node or model (unreadable file, API nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A node class the backend lacks.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MissingNode {
    pub class_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub how_to_get: String,
}

/// A model file the backend lacks, where it goes and where to get it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MissingModel {
    pub name: String,
    /// The folder under ComfyUI's `models/` it belongs in.
    pub directory: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One entry of a backend's template index.
#[derive(Debug, Clone)]
struct IndexEntry {
    name: String,
    title: String,
    description: String,
    media_type: String,
    category: String,
    tags: Vec<String>,
    models: Vec<String>,
    api: bool,
    download_bytes: Option<u64>,
    min_comfyui_version: Option<String>,
}

/// What a template file needs, read once per backend (the files do not change while it runs).
#[derive(Debug)]
struct Needs {
    requirements: Requirements,
    inputs: Vec<String>,
}

/// A backend's template index and the needs of the templates read so far.
#[derive(Debug, Default)]
pub struct TemplateCache {
    index: Mutex<Option<Arc<Vec<IndexEntry>>>>,
    needs: Mutex<HashMap<String, Arc<Needs>>>,
}

impl Engine {
    /// Searches the templates `query.backend` serves; the first `query.limit` matches (or, with
    /// `runnable_only`, every match) are checked against the backend's nodes and models.
    pub async fn search_templates(&self, query: &TemplateQuery) -> Result<TemplateSearch, EngineError> {
        let entry = self.pick_backend(query.backend.as_deref())?;
        let index = self.template_index(entry).await?;
        let matching: Vec<&IndexEntry> = index.iter().filter(|template| matches(template, query)).collect();
        let limit = query.limit.clamp(1, MAXIMUM_RESULTS);
        let info = self.object_info(entry, false).await?;
        let checked = if query.runnable_only {
            matching.as_slice()
        } else {
            &matching[..matching.len().min(limit)]
        };
        let mut needs = Vec::with_capacity(checked.len());
        for chunk in checked.chunks(CONCURRENT_FETCHES) {
            let mut fetches = Vec::with_capacity(chunk.len());
            for template in chunk {
                fetches.push(self.template_needs(entry, &template.name));
            }
            needs.extend(futures_util::future::join_all(fetches).await);
        }
        let mut present = ModelPresence::default();
        let mut templates = Vec::new();
        for (template, needs) in checked.iter().zip(needs) {
            let availability = availability(entry, &info, template, needs, &mut present).await;
            if query.runnable_only && !availability.runnable {
                continue;
            }
            templates.push(summary(template, availability));
            if templates.len() == limit {
                break;
            }
        }
        let matched = if query.runnable_only {
            templates.len()
        } else {
            matching.len()
        };
        Ok(TemplateSearch {
            backend: entry.name.clone(),
            total: index.len(),
            matched,
            templates,
        })
    }

    /// One template's UI workflow and its summary with availability.
    pub async fn template(
        &self,
        name: &str,
        backend: Option<&str>,
    ) -> Result<(&BackendEntry, Value, TemplateSummary), EngineError> {
        let entry = self.pick_backend(backend)?;
        let index = self.template_index(entry).await?;
        let Some(template) = index.iter().find(|template| template.name == name) else {
            let names = index.iter().map(|template| template.name.as_str());
            let candidates = comfy_workflow::suggest::closest_matches(name, names, 3);
            let hint = comfy_workflow::suggest::did_you_mean(&candidates)
                .map_or_else(String::new, |sentence| format!("; {sentence}"));
            return Err(EngineError::bad_input(format!(
                "{} serves no template {name:?} ({} templates; search_templates lists them){hint}",
                entry.label(),
                index.len()
            )));
        };
        let workflow = fetch_template(entry, name).await?;
        let needs = cached_needs(entry, name, workflow.clone()).await;
        let info = self.object_info(entry, false).await?;
        let availability = availability(entry, &info, template, needs, &mut ModelPresence::default()).await;
        Ok((entry, workflow, summary(template, availability)))
    }

    /// A template's workflow when the backend can run it with `overrides`; otherwise an error
    /// naming every missing node (with its pack) and model file (with its folder and URL). A
    /// declared model that the overrides replace (another checkpoint...) is not needed.
    pub async fn runnable_template(
        &self,
        name: &str,
        overrides: &Map<String, Value>,
        backend: Option<&str>,
    ) -> Result<(&BackendEntry, Value), EngineError> {
        let (entry, workflow, summary) = self.template(name, backend).await?;
        let mut availability = summary.availability;
        if !availability.missing_models.is_empty() && availability.missing_nodes.is_empty() {
            let prepared = self
                .prepare_workflow(
                    &workflow,
                    Some(&entry.name),
                    &crate::workflows::parameter_options(),
                )
                .await?;
            let prompt = self
                .overridden_prompt(entry, &prepared.loaded.prompt, prepared.info, overrides)
                .await?;
            let named: BTreeSet<&str> = prompt
                .nodes
                .values()
                .flat_map(|node| node.inputs.values())
                .filter_map(Value::as_str)
                .collect();
            availability
                .missing_models
                .retain(|model| named.contains(model.name.as_str()));
        }
        if availability.missing_models.is_empty()
            && availability.missing_nodes.is_empty()
            && availability.problem.is_none()
        {
            return Ok((entry, workflow));
        }
        Err(EngineError::Missing {
            backend: entry.label(),
            what: format!("what template {name} needs"),
            how_to_fix: describe_missing(&availability),
        })
    }

    async fn template_index(&self, entry: &BackendEntry) -> Result<Arc<Vec<IndexEntry>>, EngineError> {
        if let Some(index) = lock(&entry.templates.index).clone() {
            return Ok(index);
        }
        let text = entry
            .backend
            .client()
            .templates_index_text()
            .await
            .map_err(|source| entry.error(source))?
            .ok_or_else(|| EngineError::Missing {
                backend: entry.label(),
                what: "the workflow templates (GET /templates/index.json answers 404)".to_owned(),
                how_to_fix: "install ComfyUI's template package into its Python environment: pip install -r requirements.txt (comfyui-workflow-templates)".to_owned(),
            })?;
        let raw = parse_lenient(&text).map_err(|error| {
            EngineError::bad_input(format!(
                "{}: /templates/index.json is not JSON: {error}",
                entry.label()
            ))
        })?;
        let index = Arc::new(parse_index(&raw));
        *lock(&entry.templates.index) = Some(index.clone());
        Ok(index)
    }

    async fn template_needs(&self, entry: &BackendEntry, name: &str) -> Result<Arc<Needs>, String> {
        if let Some(needs) = lock(&entry.templates.needs).get(name).cloned() {
            return Ok(needs);
        }
        let workflow = fetch_template(entry, name)
            .await
            .map_err(|error| error.to_string())?;
        cached_needs(entry, name, workflow).await
    }
}

/// What `workflow` (template `name`) needs, read off the async workers and kept for the backend.
async fn cached_needs(entry: &BackendEntry, name: &str, workflow: Value) -> Result<Arc<Needs>, String> {
    if let Some(needs) = lock(&entry.templates.needs).get(name).cloned() {
        return Ok(needs);
    }
    let needs = crate::media::off_the_workers(move || Arc::new(needs_of(&workflow)))
        .await
        .ok_or_else(|| "reading the template failed".to_owned())?;
    lock(&entry.templates.needs).insert(name.to_owned(), needs.clone());
    Ok(needs)
}

async fn fetch_template(entry: &BackendEntry, name: &str) -> Result<Value, EngineError> {
    let text = entry
        .backend
        .client()
        .template_text(name)
        .await
        .map_err(|source| entry.error(source))?
        .ok_or_else(|| {
            EngineError::bad_input(format!(
                "{} lists template {name:?} but does not serve its file",
                entry.label()
            ))
        })?;
    parse_lenient(&text).map_err(|error| {
        EngineError::bad_input(format!("{}: template {name} is not JSON: {error}", entry.label()))
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn needs_of(workflow: &Value) -> Needs {
    let requirements = requirements(workflow);
    let inputs: BTreeSet<String> = requirements
        .nodes
        .iter()
        .filter_map(|node| {
            INPUT_KINDS
                .iter()
                .find(|(class_type, _)| *class_type == node.class_type)
                .map(|(_, kind)| (*kind).to_owned())
        })
        .collect();
    Needs {
        requirements,
        inputs: inputs.into_iter().collect(),
    }
}

/// The index: a list of categories, each with `templates[]`. A template listed in two
/// categories is kept once, in the first.
fn parse_index(raw: &Value) -> Vec<IndexEntry> {
    let text = |value: &Value, key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let texts = |value: &Value, key: &str| -> Vec<String> {
        value
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let mut seen = BTreeSet::new();
    let mut entries = Vec::new();
    for category in raw.as_array().into_iter().flatten() {
        let category_title = text(category, "title");
        let api_category =
            category_title.contains("API") || text(category, "category") == "CLOSED SOURCE MODELS";
        for template in category
            .get("templates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = text(template, "name");
            if name.is_empty() || !seen.insert(name.clone()) {
                continue;
            }
            let open_source = template.get("openSource").and_then(Value::as_bool);
            entries.push(IndexEntry {
                title: text(template, "title"),
                description: text(template, "description"),
                media_type: made_media(template, &text(category, "type")),
                category: category_title.clone(),
                tags: texts(template, "tags"),
                models: texts(template, "models"),
                api: open_source.map_or(api_category || name.starts_with("api_"), |open| !open),
                download_bytes: template
                    .get("size")
                    .and_then(Value::as_u64)
                    .filter(|size| *size > 0),
                min_comfyui_version: template
                    .get("minComfyUIVersion")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                name,
            });
        }
    }
    entries
}

/// What a template makes: its first output's media type where the index has `io` (templates
/// 0.8 on), else its category's type. The template's own `mediaType` is its thumbnail's.
fn made_media(template: &Value, category_type: &str) -> String {
    let output = template
        .pointer("/io/outputs/0/mediaType")
        .and_then(Value::as_str)
        .filter(|media| !media.is_empty());
    let media = output
        .or_else(|| Some(category_type).filter(|media| !media.is_empty()))
        .or_else(|| template.get("mediaType").and_then(Value::as_str))
        .unwrap_or_default();
    media.to_lowercase()
}

fn matches(template: &IndexEntry, query: &TemplateQuery) -> bool {
    let contains = |haystack: &str, needle: &str| haystack.to_lowercase().contains(&needle.to_lowercase());
    if !query.include_api && template.api {
        return false;
    }
    if let Some(media_type) = &query.media_type
        && !template.media_type.eq_ignore_ascii_case(media_type)
    {
        return false;
    }
    if let Some(tag) = &query.tag
        && !template.tags.iter().any(|candidate| contains(candidate, tag))
    {
        return false;
    }
    if let Some(model) = &query.model
        && !template.models.iter().any(|candidate| contains(candidate, model))
        && !contains(&template.name, model)
    {
        return false;
    }
    let Some(words) = &query.words else {
        return true;
    };
    let haystack = format!(
        "{} {} {} {} {}",
        template.name,
        template.title,
        template.description,
        template.tags.join(" "),
        template.models.join(" ")
    )
    .to_lowercase();
    words
        .split_whitespace()
        .all(|word| haystack.contains(&word.to_lowercase()))
}

fn summary(template: &IndexEntry, availability: Availability) -> TemplateSummary {
    TemplateSummary {
        name: template.name.clone(),
        title: template.title.clone(),
        description: template.description.clone(),
        media_type: template.media_type.clone(),
        category: template.category.clone(),
        tags: template.tags.clone(),
        models: template.models.clone(),
        api: template.api,
        download_bytes: template.download_bytes,
        min_comfyui_version: template.min_comfyui_version.clone(),
        availability,
    }
}

/// The files each model folder holds, listed once per search.
#[derive(Default)]
struct ModelPresence {
    folders: BTreeMap<String, Option<BTreeSet<String>>>,
}

impl ModelPresence {
    /// Whether `name` is in `directory` on `entry`; a folder that cannot be listed counts as empty.
    async fn has(&mut self, entry: &BackendEntry, directory: &str, name: &str) -> bool {
        if !self.folders.contains_key(directory) {
            let listed = entry.backend.client().models(directory).await;
            let files = match listed {
                Ok(files) => files.map(|files| files.into_iter().collect()),
                Err(error) => {
                    tracing::warn!(%error, directory, "cannot list a model folder");
                    None
                }
            };
            self.folders.insert(directory.to_owned(), files);
        }
        // ComfyUI lists files below a folder with the platform's separator.
        let windows_name = name.replace('/', "\\");
        self.folders
            .get(directory)
            .and_then(Option::as_ref)
            .is_some_and(|files| files.contains(name) || files.contains(&windows_name))
    }
}

async fn availability(
    entry: &BackendEntry,
    info: &ObjectInfo,
    template: &IndexEntry,
    needs: Result<Arc<Needs>, String>,
    present: &mut ModelPresence,
) -> Availability {
    let needs = match needs {
        Ok(needs) => needs,
        Err(problem) => {
            return Availability {
                runnable: false,
                inputs: Vec::new(),
                missing_nodes: Vec::new(),
                missing_models: Vec::new(),
                problem: Some(problem),
            };
        }
    };
    let version = entry.comfyui_version();
    let missing_nodes: Vec<MissingNode> = needs
        .requirements
        .missing_nodes(info)
        .map(|node| MissingNode {
            how_to_get: how_to_get(node.pack.as_deref(), node.version.as_deref(), version.as_deref()),
            class_type: node.class_type.clone(),
            pack: node.pack.clone(),
            version: node.version.clone(),
        })
        .collect();
    let mut missing_models = Vec::new();
    for model in &needs.requirements.models {
        if !present.has(entry, &model.directory, &model.name).await {
            missing_models.push(MissingModel {
                name: model.name.clone(),
                directory: model.directory.clone(),
                url: model.url.clone(),
            });
        }
    }
    let uses_api_nodes = needs.requirements.nodes.iter().any(|node| {
        info.node(&node.class_type)
            .is_some_and(|definition| definition.api_node)
    });
    let problem = (template.api || uses_api_nodes).then(|| {
        "it runs on Comfy.org's paid API nodes, which need a Comfy.org account's API key; this server does not send one".to_owned()
    });
    Availability {
        runnable: missing_nodes.is_empty() && missing_models.is_empty() && problem.is_none(),
        inputs: needs.inputs.clone(),
        missing_nodes,
        missing_models,
        problem,
    }
}

fn how_to_get(pack: Option<&str>, version: Option<&str>, backend_version: Option<&str>) -> String {
    let running =
        backend_version.map_or_else(String::new, |version| format!(" (this backend runs {version})"));
    match (pack, version) {
        (Some("comfy-core"), Some(version)) => {
            format!("a core node of ComfyUI {version}: update ComfyUI{running}")
        }
        (Some("comfy-core") | None, None) => {
            format!("a core node of a newer ComfyUI, or a custom node: update ComfyUI{running}")
        }
        (None, Some(version)) => format!("a node of version {version}: update ComfyUI{running}"),
        (Some(pack), _) => format!(
            "install the custom-node pack {pack} (ComfyUI-Manager, or `comfy node install {pack}`; https://registry.comfy.org/nodes/{pack}), then restart ComfyUI"
        ),
    }
}

/// Every missing piece in one sentence a person or an agent can act on.
pub(crate) fn describe_missing(availability: &Availability) -> String {
    let mut parts = Vec::new();
    for model in &availability.missing_models {
        let source = model.url.as_deref().map_or_else(
            || "no download URL in the template".to_owned(),
            |url| format!("from {url}"),
        );
        parts.push(format!(
            "model file {} into models/{} ({source})",
            model.name, model.directory
        ));
    }
    for node in &availability.missing_nodes {
        parts.push(format!("node class {}: {}", node.class_type, node.how_to_get));
    }
    if let Some(problem) = &availability.problem {
        parts.push(problem.clone());
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn index() -> Vec<IndexEntry> {
        parse_index(&json!([
            {"moduleName": "default", "title": "Image", "type": "image", "category": "GENERATION TYPE", "templates": [
                {"name": "default", "title": "Image Generation", "mediaType": "image", "description": "Generate images from text prompts.", "tags": ["Text to Image", "Image"], "models": ["SD1.5", "Stability"], "size": 2132625894u64},
                {"name": "video_wan2_2_14B_i2v", "title": "Wan 2.2 14B Image to Video", "mediaType": "image", "io": {"outputs": [{"nodeId": 9, "nodeType": "SaveVideo", "mediaType": "video"}]}, "description": "Animate an image.", "tags": ["Image to Video", "Video"], "models": ["Wan2.2", "Wan"]}
            ]},
            {"title": "Image API", "category": "CLOSED SOURCE MODELS", "templates": [
                {"name": "api_openai_image_1_t2i", "title": "OpenAI: GPT-Image-1", "mediaType": "image", "tags": ["Text to Image", "API"], "models": ["GPT-Image-1"]}
            ]},
            {"title": "Getting Started", "templates": [
                {"name": "default", "title": "again", "mediaType": "image"},
                {"name": "flux_kontext_dev", "title": "Flux Kontext", "mediaType": "image", "tags": ["Image Edit"], "models": ["Flux"], "openSource": true}
            ]}
        ]))
    }

    fn names(query: &TemplateQuery) -> Vec<String> {
        index()
            .iter()
            .filter(|template| matches(template, query))
            .map(|template| template.name.clone())
            .collect()
    }

    #[test]
    fn the_index_is_read_once_per_template_with_api_ones_marked() {
        let index = index();
        let listed: Vec<(&str, bool)> = index
            .iter()
            .map(|template| (template.name.as_str(), template.api))
            .collect();
        assert_eq!(
            listed,
            [
                ("default", false),
                ("video_wan2_2_14B_i2v", false),
                ("api_openai_image_1_t2i", true),
                ("flux_kontext_dev", false)
            ]
        );
        assert_eq!(index[0].download_bytes, Some(2_132_625_894));
        assert_eq!(index[0].category, "Image");
    }

    #[test]
    fn filters_combine_and_ignore_case() {
        let all = TemplateQuery::default();
        assert_eq!(
            names(&all).len(),
            3,
            "API templates are left out unless asked for"
        );
        let with_api = TemplateQuery {
            include_api: true,
            ..TemplateQuery::default()
        };
        assert_eq!(names(&with_api).len(), 4);
        let video = TemplateQuery {
            media_type: Some("VIDEO".to_owned()),
            ..TemplateQuery::default()
        };
        assert_eq!(names(&video), ["video_wan2_2_14B_i2v"]);
        let edit = TemplateQuery {
            tag: Some("image edit".to_owned()),
            model: Some("flux".to_owned()),
            ..TemplateQuery::default()
        };
        assert_eq!(names(&edit), ["flux_kontext_dev"]);
        let words = TemplateQuery {
            words: Some("animate WAN".to_owned()),
            ..TemplateQuery::default()
        };
        assert_eq!(names(&words), ["video_wan2_2_14B_i2v"]);
    }

    #[test]
    fn inputs_come_from_the_loaders() {
        let workflow = json!({"nodes": [
            {"id": 1, "type": "LoadImage", "mode": 0, "properties": {}},
            {"id": 2, "type": "LoadAudio", "mode": 0, "properties": {}},
            {"id": 3, "type": "LoadVideo", "mode": 4, "properties": {}}
        ], "links": []});
        assert_eq!(needs_of(&workflow).inputs, ["audio", "image"]);
    }

    #[test]
    fn the_missing_answer_names_files_folders_urls_and_packs() {
        let availability = Availability {
            runnable: false,
            inputs: Vec::new(),
            missing_nodes: vec![MissingNode {
                class_type: "VHS_VideoCombine".to_owned(),
                pack: Some("comfyui-videohelpersuite".to_owned()),
                version: None,
                how_to_get: how_to_get(Some("comfyui-videohelpersuite"), None, Some("0.3.75")),
            }],
            missing_models: vec![MissingModel {
                name: "wan2.1_vae.safetensors".to_owned(),
                directory: "vae".to_owned(),
                url: Some("https://huggingface.co/x/wan2.1_vae.safetensors".to_owned()),
            }],
            problem: None,
        };
        let text = describe_missing(&availability);
        assert!(text.contains("model file wan2.1_vae.safetensors into models/vae (from https://huggingface.co/x/wan2.1_vae.safetensors)"), "{text}");
        assert!(
            text.contains("registry.comfy.org/nodes/comfyui-videohelpersuite"),
            "{text}"
        );
        assert_eq!(
            how_to_get(Some("comfy-core"), Some("0.3.60"), Some("0.3.50")),
            "a core node of ComfyUI 0.3.60: update ComfyUI (this backend runs 0.3.50)"
        );
    }
}
