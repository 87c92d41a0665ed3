//! The `library` toolset: the indexed outputs of every finished job. Search (full text and
//! filters), similar images by perceptual hash, the metadata ComfyUI embeds in PNG files, tags and
//! collections, catalog export (JSON, CSV, HTML contact sheet) and retention cleanup with a dry run.
//! Each tool parses its arguments, calls the engine or the store, and renders.

use base64::Engine as _;
use comfy_engine::types::FileRef;
use comfy_engine::types::{OutputQuery, OutputRecord, RetentionPolicy};
use rmcp::RoleServer;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::render::{engine_error, error_text, json_result, output_uri};
use super::server::ComfyServer;
use super::tool::{Hints, Structured, ToolDeclaration, ToolOutcome, declare_tool};
use comfy_engine::library::{NEWEST_FIRST_WINDOW, image_metadata, library_error};
use comfy_engine::outputs::MAXIMUM_PREVIEW_SOURCE_BYTES;
use comfy_engine::timestamps::{format_rfc3339, parse_time};
use comfy_engine::{local_files, media};

/// Most outputs one cleanup answer lists one by one (counts cover all of them).
const MAXIMUM_LISTED_CLEANUP_OUTPUTS: usize = 200;

/// A point in time: milliseconds since 1970, or text (an age like `7d`, or an RFC 3339 date).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(super) enum TimeArgument {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    Milliseconds(i64),
    /// An age before now (`30m`, `24h`, `7d`, `2w`), an RFC 3339 date (`2025-06-01`) or date-time
    /// (`2025-06-01T12:00:00Z`).
    Text(String),
}

impl TimeArgument {
    pub(super) fn resolve(&self, name: &str, now_ms: i64) -> Result<i64, CallToolResult> {
        match self {
            TimeArgument::Milliseconds(milliseconds) => Ok(*milliseconds),
            TimeArgument::Text(text) => {
                parse_time(text, now_ms).map_err(|reason| error_text(format!("{name}: {reason}")))
            }
        }
    }
}

pub(super) fn optional_time(
    name: &str,
    value: Option<&TimeArgument>,
    now_ms: i64,
) -> Result<Option<i64>, CallToolResult> {
    value.map(|value| value.resolve(name, now_ms)).transpose()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum SearchOrder {
    /// Newest first (default).
    #[default]
    Newest,
    /// Best full-text match first (only differs when `text` is given).
    Relevance,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchOutputsArguments {
    /// Words that must all appear in the prompt or parameters (stemmed: "cats" finds "cat").
    text: Option<String>,
    /// Only outputs of this model (checkpoint file name as generate_image used it).
    model: Option<String>,
    /// Only outputs with this tag.
    tag: Option<String>,
    /// Only outputs in this collection.
    collection: Option<String>,
    /// Only this media type, e.g. image/png, video/mp4.
    media_type: Option<String>,
    /// Only the outputs of this job.
    job_id: Option<String>,
    /// Created at or after this time.
    since: Option<TimeArgument>,
    /// Created before this time.
    until: Option<TimeArgument>,
    /// newest (default) or relevance.
    #[serde(default)]
    order: SearchOrder,
    /// At most this many results (default 20, at most 200).
    limit: Option<u32>,
    /// Skip this many results (paging).
    offset: Option<u32>,
    /// Include each output's generation parameters (default true).
    include_parameters: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FindSimilarImagesArguments {
    /// A library output id (from search_outputs): find images that look like it.
    output_id: Option<i64>,
    /// Or an image's bytes, base64 encoded.
    data_base64: Option<String>,
    /// Or an image file on the machine running this server (only where local files are allowed).
    path: Option<String>,
    /// Largest perceptual-hash distance in bits, 0 (identical) to 64 (default 12; resized or
    /// recompressed copies stay within a few bits).
    max_distance: Option<u32>,
    /// At most this many results (default 10, at most 100).
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ImageMetadataArguments {
    /// A library output id (from search_outputs).
    output_id: Option<i64>,
    /// Or a file on a backend by name, as job results list it.
    filename: Option<String>,
    /// With filename: its subfolder.
    #[serde(default)]
    subfolder: String,
    /// With filename: output (default), input or temp.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// With filename: the backend's name when several are configured.
    backend: Option<String>,
    /// Or the image's bytes, base64 encoded.
    data_base64: Option<String>,
    /// Or an image file on the machine running this server (only where local files are allowed).
    path: Option<String>,
    /// Include the UI workflow JSON (default true; it can be large).
    include_workflow: Option<bool>,
}

/// What `organize_outputs` does: tags and collections of library outputs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum OrganizeOutputsArguments {
    /// Add `tags` to `output_ids`.
    Tag {
        /// Library output ids (from search_outputs).
        output_ids: Vec<i64>,
        /// The tags.
        tags: Vec<String>,
    },
    /// Remove `tags` from `output_ids`.
    Untag {
        /// Library output ids (from search_outputs).
        output_ids: Vec<i64>,
        /// The tags.
        tags: Vec<String>,
    },
    /// Create `collection` (with an optional `description`).
    CreateCollection {
        /// The collection's name.
        collection: String,
        /// What the collection is for.
        description: Option<String>,
    },
    /// Delete `collection`; its outputs stay in the library.
    DeleteCollection {
        /// The collection's name.
        collection: String,
    },
    /// Add `output_ids` to `collection`.
    AddToCollection {
        /// The collection's name.
        collection: String,
        /// Library output ids (from search_outputs).
        output_ids: Vec<i64>,
    },
    /// Remove `output_ids` from `collection`.
    RemoveFromCollection {
        /// The collection's name.
        collection: String,
        /// Library output ids (from search_outputs).
        output_ids: Vec<i64>,
    },
    /// Every collection with its size.
    ListCollections {},
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ExportFormat {
    /// An array of records with URLs and resource URIs.
    Json,
    /// One header line, one line per output.
    Csv,
    /// A self-contained contact sheet with small inline thumbnails.
    Html,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExportCatalogArguments {
    format: ExportFormat,
    /// Write the catalog to this file on the machine running this server (only where local files
    /// are allowed). Without it the catalog is returned inline when it fits the size budget.
    path: Option<String>,
    /// Words that must all appear in the prompt or parameters.
    text: Option<String>,
    model: Option<String>,
    tag: Option<String>,
    collection: Option<String>,
    media_type: Option<String>,
    since: Option<TimeArgument>,
    until: Option<TimeArgument>,
    /// At most this many outputs, newest first or, with text, best match first (default 500 for
    /// json and csv, 100 for html).
    limit: Option<u32>,
    /// html: longest thumbnail side in pixels (default 160, 32 to 512).
    thumbnail_size: Option<u32>,
    /// html: the page title.
    title: Option<String>,
    /// Replace an existing file at `path` (default false: an existing file is an error).
    overwrite: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CleanupOutputsArguments {
    /// Remove outputs created before this time: an age such as 30d (30 days ago), an RFC 3339 date
    /// or date-time, or milliseconds since 1970.
    created_before: TimeArgument,
    /// Keep tagged outputs (default true).
    keep_tagged: Option<bool>,
    /// Keep outputs that are in a collection (default true).
    keep_in_collections: Option<bool>,
    /// Only report what would be removed (default true). Set false to remove.
    dry_run: Option<bool>,
    /// Also delete the files, where the backend's local output directory is configured
    /// (COMFYUI_MCP_OUTPUT_DIR; default true). Without it files always stay.
    delete_files: Option<bool>,
}

/// This toolset's tools, each declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[
    declare_tool!(
        "search_outputs",
        "Search the library of every output this server produced: full text over prompts and parameters, filters by model, tag, collection, media type, job and time; newest first (or by relevance). Each result has its library id, prompt, model, seed, size, tags, the /view URL and a comfyui:// resource URI.",
        Hints::READ_ONLY,
        SearchOutputsArguments => OutputPage,
        search_outputs,
    ),
    declare_tool!(
        "find_similar_images",
        "Library images that look like a given one, nearest first, by 64-bit perceptual hash (Hamming distance in bits). Give a library output_id (the output itself comes first, distance 0), or any image as data_base64 or a local path.",
        Hints::READ_ONLY,
        FindSimilarImagesArguments => SimilarImages,
        find_similar_images,
    ),
    declare_tool!(
        "image_metadata",
        "Read a PNG's text chunks (tEXt, zTXt, iTXt): ComfyUI's embedded API prompt and UI workflow as JSON, plus every other key. The image can be a library output_id, a backend file (filename/subfolder/type), base64 data or a local path.",
        Hints::READ_ONLY,
        ImageMetadataArguments,
        image_metadata_tool,
    ),
    declare_tool!(
        "organize_outputs",
        "Tags and collections of library outputs. action: tag / untag (output_ids, tags), create_collection (collection, description), delete_collection (outputs stay), add_to_collection / remove_from_collection (collection, output_ids), list_collections.",
        Hints::UPDATES,
        OrganizeOutputsArguments,
        organize_outputs,
    ),
    declare_tool!(
        "export_catalog",
        "Export library records matching filters as JSON, CSV or an HTML contact sheet (small inline thumbnails, links to the full files). Written to path where local files are allowed, otherwise returned inline when it fits the size budget.",
        Hints::READ_ONLY,
        ExportCatalogArguments,
        export_catalog,
    ),
    declare_tool!(
        "cleanup_outputs",
        "Retention: remove library records of outputs created before a time, keeping tagged and collected ones by default. A dry run (the default) lists what would go. Files are deleted only where the backend's local output directory is configured (COMFYUI_MCP_OUTPUT_DIR): ComfyUI has no API to delete outputs, so otherwise files stay and the answer says so.",
        Hints::new(false, true, false),
        CleanupOutputsArguments,
        cleanup_outputs,
    ),
];

fn file_ref(record: &OutputRecord) -> FileRef {
    FileRef {
        filename: record.output.file.filename.clone(),
        subfolder: record.output.file.subfolder.clone(),
        kind: record.output.file.file_type.clone(),
    }
}

/// One library record as tools show it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
struct OutputItem {
    /// The library id.
    id: i64,
    /// RFC 3339, UTC.
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<String>,
    prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    media_type: String,
    backend: String,
    filename: String,
    subfolder: String,
    /// output, temp or input.
    #[serde(rename = "type")]
    kind: String,
    /// ComfyUI's /view URL (absent when the backend is no longer configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// The comfyui:// resource with the full file.
    resource_uri: String,
    /// 64-bit perceptual hash, 16 hex digits (images only).
    #[serde(skip_serializing_if = "Option::is_none")]
    perceptual_hash: Option<String>,
    tags: Vec<String>,
    collections: Vec<String>,
    /// The parameters the job ran with, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Map<String, Value>>,
    /// Hamming distance in bits to the query image (find_similar_images only).
    #[serde(skip_serializing_if = "Option::is_none")]
    distance: Option<u32>,
}

fn output_item(server: &ComfyServer, record: &OutputRecord, include_parameters: bool) -> OutputItem {
    let output = &record.output;
    OutputItem {
        id: record.id,
        created_at: format_rfc3339(output.created_at_ms),
        job_id: output.job_id.clone(),
        prompt: output.prompt_text.clone(),
        model: output.model.clone(),
        seed: output.seed,
        width: output.width,
        height: output.height,
        media_type: output.media_type.clone(),
        backend: output.file.backend_id.clone(),
        filename: output.file.filename.clone(),
        subfolder: output.file.subfolder.clone(),
        kind: output.file.file_type.clone(),
        url: server.engine.library_url(record),
        resource_uri: output_uri(&output.file.backend_id, &file_ref(record)),
        perceptual_hash: output.perceptual_hash.map(|hash| format!("{hash:016x}")),
        tags: record.tags.clone(),
        collections: record.collections.clone(),
        parameters: match &output.parameters {
            Value::Object(parameters) if include_parameters => Some(parameters.clone()),
            _ => None,
        },
        distance: None,
    }
}

/// What `search_outputs` answers.
#[derive(Debug, Serialize, JsonSchema)]
struct OutputPage {
    count: usize,
    /// newest or relevance.
    order: String,
    outputs: Vec<OutputItem>,
    /// The offset of the next page, when this one is full.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_offset: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// What `find_similar_images` answers.
#[derive(Debug, Serialize, JsonSchema)]
struct SimilarImages {
    query: SimilarityQuery,
    max_distance: u32,
    count: usize,
    /// Nearest first.
    matches: Vec<OutputItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// The image `find_similar_images` compared with.
#[derive(Debug, Serialize, JsonSchema)]
struct SimilarityQuery {
    /// The library output given.
    #[serde(skip_serializing_if = "Option::is_none")]
    output_id: Option<i64>,
    /// 16 hex digits.
    perceptual_hash: String,
    /// Of an image given as data or path.
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
}

const LOCAL_FILES_DISABLED: &str =
    "local files are disabled on this server (set COMFYUI_MCP_ALLOW_LOCAL_FILES=true to allow them)";

/// Image bytes from base64 or a local path (where allowed); `None` when neither is given.
async fn given_image(
    server: &ComfyServer,
    data_base64: Option<&str>,
    path: Option<&str>,
) -> Result<Option<Vec<u8>>, CallToolResult> {
    match (data_base64, path) {
        (None, None) => Ok(None),
        (Some(data), None) => {
            let data = data.split_once("base64,").map_or(data, |(_, data)| data);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|error| error_text(format!("data_base64 is not valid base64: {error}")))?;
            if bytes.is_empty() {
                return Err(error_text("the image is empty"));
            }
            Ok(Some(bytes))
        }
        (None, Some(path)) => {
            if !server.local_files_allowed() {
                return Err(error_text(format!(
                    "{LOCAL_FILES_DISABLED}; send data_base64 instead"
                )));
            }
            let bytes =
                local_files::read_bounded(std::path::Path::new(path), local_files::MAXIMUM_IMAGE_BYTES)
                    .await
                    .map_err(|error| error_text(error.to_string()))?;
            Ok(Some(bytes))
        }
        (Some(_), Some(_)) => Err(error_text("give data_base64 or path, not both")),
    }
}

async fn search_outputs(
    server: &ComfyServer,
    arguments: SearchOutputsArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<OutputPage> {
    let now = comfy_engine::types::now_ms();
    let limit = arguments.limit.unwrap_or(20).clamp(1, 200);
    let query = OutputQuery {
        text: arguments.text.clone(),
        model: arguments.model,
        media_type: arguments.media_type,
        job_id: arguments.job_id,
        tag: arguments.tag,
        collection: arguments.collection,
        since_ms: optional_time("since", arguments.since.as_ref(), now)?,
        until_ms: optional_time("until", arguments.until.as_ref(), now)?,
        limit: Some(limit),
        offset: arguments.offset,
    };
    let newest_first = matches!(arguments.order, SearchOrder::Newest);
    let page = server
        .engine
        .search_library(query, newest_first)
        .await
        .map_err(|error| engine_error(&error))?;
    let include_parameters = arguments.include_parameters.unwrap_or(true);
    let outputs: Vec<OutputItem> = page
        .outputs
        .iter()
        .map(|record| output_item(server, record, include_parameters))
        .collect();
    let note = if outputs.is_empty() {
        Some(
            "nothing matches; outputs are indexed a moment after their job finishes, and full text needs every word to appear"
                .to_owned(),
        )
    } else if page.window_full {
        Some(format!(
            "more than {NEWEST_FIRST_WINDOW} outputs match the text; newest-first ordering covered the {NEWEST_FIRST_WINDOW} best matches: narrow the search or use order=relevance"
        ))
    } else {
        None
    };
    let order = if !newest_first && arguments.text.is_some() {
        "relevance"
    } else {
        "newest"
    };
    Ok(OutputPage {
        count: outputs.len(),
        order: order.to_owned(),
        next_offset: (outputs.len() == limit as usize).then(|| arguments.offset.unwrap_or(0) + limit),
        outputs,
        note,
    })
}

async fn find_similar_images(
    server: &ComfyServer,
    arguments: FindSimilarImagesArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<SimilarImages> {
    let max_distance = arguments.max_distance.unwrap_or(12);
    if max_distance > 64 {
        return Err(error_text(format!(
            "max_distance is in bits of a 64-bit hash: 0 to 64, got {max_distance}"
        )));
    }
    let limit = arguments.limit.unwrap_or(10).clamp(1, 100);
    let given = given_image(
        server,
        arguments.data_base64.as_deref(),
        arguments.path.as_deref(),
    )
    .await?;
    let engine = &server.engine;
    let (query, similar) = match (arguments.output_id, given) {
        (Some(id), None) => {
            let (hash, similar) = engine
                .similar_to_output(id, max_distance, limit)
                .await
                .map_err(|error| engine_error(&error))?;
            let query = SimilarityQuery {
                output_id: Some(id),
                perceptual_hash: format!("{hash:016x}"),
                width: None,
                height: None,
            };
            (query, similar)
        }
        (None, Some(bytes)) => {
            let (fingerprint, similar) = engine
                .similar_to_image(bytes, max_distance, limit)
                .await
                .map_err(|error| engine_error(&error))?;
            let query = SimilarityQuery {
                output_id: None,
                perceptual_hash: format!("{:016x}", fingerprint.hash),
                width: Some(fingerprint.width),
                height: Some(fingerprint.height),
            };
            (query, similar)
        }
        _ => {
            return Err(error_text("give exactly one of output_id, data_base64 or path"));
        }
    };
    let matches: Vec<OutputItem> = similar
        .iter()
        .map(|found| OutputItem {
            distance: Some(found.distance),
            ..output_item(server, &found.output, false)
        })
        .collect();
    Ok(SimilarImages {
        query,
        max_distance,
        count: matches.len(),
        note: matches.is_empty().then(|| {
            format!("no library image within {max_distance} bits; raise max_distance to see looser matches")
        }),
        matches,
    })
}

async fn image_metadata_tool(
    server: &ComfyServer,
    arguments: ImageMetadataArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let engine = &server.engine;
    let given = given_image(
        server,
        arguments.data_base64.as_deref(),
        arguments.path.as_deref(),
    )
    .await?;
    let (source, bytes) = match (arguments.output_id, &arguments.filename, given) {
        (Some(id), None, None) => {
            let record = engine
                .library_record(id)
                .await
                .map_err(|error| engine_error(&error))?;
            let bytes = engine
                .library_file(&record, None)
                .await
                .map_err(|error| engine_error(&error))?;
            let item = serde_json::to_value(output_item(server, &record, false)).unwrap_or(Value::Null);
            (item, bytes.to_vec())
        }
        (None, Some(filename), None) => {
            let entry = engine
                .pick_backend(arguments.backend.as_deref())
                .map_err(|error| engine_error(&error))?;
            let file = FileRef {
                filename: filename.clone(),
                subfolder: arguments.subfolder.clone(),
                kind: arguments.kind.clone().unwrap_or_else(|| "output".to_owned()),
            };
            let bytes = engine
                .download(entry, &file, MAXIMUM_PREVIEW_SOURCE_BYTES)
                .await
                .map_err(|error| engine_error(&error))?;
            (
                json!({
                    "backend": entry.name,
                    "filename": file.filename,
                    "subfolder": file.subfolder,
                    "type": file.kind,
                    "url": entry.view_url(&file),
                    "resource_uri": output_uri(&entry.name, &file),
                }),
                bytes.to_vec(),
            )
        }
        (None, None, Some(bytes)) => (
            json!(if arguments.path.is_some() {
                "path"
            } else {
                "data_base64"
            }),
            bytes,
        ),
        _ => {
            return Err(error_text(
                "give exactly one image: output_id, filename (with subfolder/type/backend), data_base64 or path",
            ));
        }
    };
    let size_bytes = bytes.len();
    // Inflating text chunks and reading headers is CPU work: off the async workers.
    let mut metadata = media::off_the_workers(move || image_metadata(&bytes))
        .await
        .ok_or_else(|| error_text("the image could not be read (the server is shutting down)"))?
        .map_err(|error| engine_error(&error))?;
    if !arguments.include_workflow.unwrap_or(true) && metadata.workflow.take().is_some() {
        metadata
            .notes
            .push("the workflow was left out (include_workflow=false)".to_owned());
    }
    let mut answer = serde_json::to_value(&metadata).unwrap_or(Value::Null);
    answer["source"] = source;
    answer["size_bytes"] = json!(size_bytes);
    Ok(json_result(&answer))
}

fn require_collection(collection: &str, action: &str) -> Result<String, CallToolResult> {
    match collection.trim() {
        "" => Err(error_text(format!("{action} needs collection"))),
        name => Ok(name.to_owned()),
    }
}

fn require_outputs(output_ids: &[i64], action: &str) -> Result<(), CallToolResult> {
    if output_ids.is_empty() {
        Err(error_text(format!("{action} needs output_ids")))
    } else {
        Ok(())
    }
}

fn require_tags(tags: &[String], action: &str) -> Result<(), CallToolResult> {
    if tags.iter().all(|tag| tag.trim().is_empty()) {
        Err(error_text(format!("{action} needs tags")))
    } else {
        Ok(())
    }
}

fn store_failure(error: comfy_engine::types::StoreError) -> CallToolResult {
    engine_error(&library_error(error))
}

async fn organize_outputs(
    server: &ComfyServer,
    arguments: OrganizeOutputsArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let store = &*server.engine;
    let (mut answer, output_ids) = match arguments {
        OrganizeOutputsArguments::Tag { output_ids, tags } => {
            require_outputs(&output_ids, "tag")?;
            require_tags(&tags, "tag")?;
            store
                .tag_outputs(output_ids.clone(), tags.clone())
                .await
                .map_err(store_failure)?;
            (json!({"action": "tag", "tags": tags}), output_ids)
        }
        OrganizeOutputsArguments::Untag { output_ids, tags } => {
            require_outputs(&output_ids, "untag")?;
            require_tags(&tags, "untag")?;
            for id in &output_ids {
                server
                    .engine
                    .library_record(*id)
                    .await
                    .map_err(|error| engine_error(&error))?;
            }
            let mut removed = 0;
            for id in &output_ids {
                for tag in &tags {
                    if store.untag_output(*id, tag).await.map_err(store_failure)? {
                        removed += 1;
                    }
                }
            }
            (
                json!({"action": "untag", "tags": tags, "removed": removed}),
                output_ids,
            )
        }
        OrganizeOutputsArguments::CreateCollection {
            collection,
            description,
        } => {
            let name = require_collection(&collection, "create_collection")?;
            let created = store
                .create_collection(&name, description)
                .await
                .map_err(store_failure)?;
            (
                json!({"action": "create_collection", "collection": created}),
                Vec::new(),
            )
        }
        OrganizeOutputsArguments::DeleteCollection { collection } => {
            let name = require_collection(&collection, "delete_collection")?;
            store.delete_collection(&name).await.map_err(store_failure)?;
            (
                json!({"action": "delete_collection", "collection": name, "note": "the collection is gone; its outputs stay in the library"}),
                Vec::new(),
            )
        }
        OrganizeOutputsArguments::AddToCollection {
            collection,
            output_ids,
        } => {
            let name = require_collection(&collection, "add_to_collection")?;
            require_outputs(&output_ids, "add_to_collection")?;
            store
                .add_to_collection(&name, output_ids.clone())
                .await
                .map_err(store_failure)?;
            (
                json!({"action": "add_to_collection", "collection": name}),
                output_ids,
            )
        }
        OrganizeOutputsArguments::RemoveFromCollection {
            collection,
            output_ids,
        } => {
            let name = require_collection(&collection, "remove_from_collection")?;
            require_outputs(&output_ids, "remove_from_collection")?;
            let mut removed = 0;
            for id in &output_ids {
                if store
                    .remove_from_collection(&name, *id)
                    .await
                    .map_err(store_failure)?
                {
                    removed += 1;
                }
            }
            (
                json!({"action": "remove_from_collection", "collection": name, "removed": removed}),
                output_ids,
            )
        }
        OrganizeOutputsArguments::ListCollections {} => {
            let collections = store.list_collections().await.map_err(store_failure)?;
            let collections: Vec<Value> = collections
                .iter()
                .map(|collection| {
                    json!({
                        "name": collection.name,
                        "description": collection.description,
                        "outputs": collection.outputs,
                        "created_at": format_rfc3339(collection.created_at_ms),
                    })
                })
                .collect();
            (
                json!({"action": "list_collections", "collections": collections}),
                Vec::new(),
            )
        }
    };
    // Show the outputs as they are now, so the caller sees the change.
    if !output_ids.is_empty() {
        let mut outputs = Vec::new();
        for id in &output_ids {
            let record = server
                .engine
                .library_record(*id)
                .await
                .map_err(|error| engine_error(&error))?;
            outputs.push(json!({"id": record.id, "tags": record.tags, "collections": record.collections}));
        }
        answer["outputs"] = Value::Array(outputs);
    }
    Ok(json_result(&answer))
}

async fn export_catalog(
    server: &ComfyServer,
    arguments: ExportCatalogArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    if arguments.path.is_some() && !server.local_files_allowed() {
        return Err(error_text(format!(
            "{LOCAL_FILES_DISABLED}; leave out path to get the catalog inline"
        )));
    }
    let now = comfy_engine::types::now_ms();
    let (default_limit, maximum_limit) = match arguments.format {
        ExportFormat::Html => (100, 1000),
        ExportFormat::Json | ExportFormat::Csv => (500, 10_000),
    };
    let limit = arguments.limit.unwrap_or(default_limit).clamp(1, maximum_limit);
    let query = OutputQuery {
        text: arguments.text.clone(),
        model: arguments.model.clone(),
        media_type: arguments.media_type.clone(),
        job_id: None,
        tag: arguments.tag.clone(),
        collection: arguments.collection.clone(),
        since_ms: optional_time("since", arguments.since.as_ref(), now)?,
        until_ms: optional_time("until", arguments.until.as_ref(), now)?,
        limit: Some(limit),
        offset: None,
    };
    let engine = &server.engine;
    // Newest first, or by relevance with text: the store's order, which its CSV writer uses too.
    let records = engine
        .search_library(query.clone(), false)
        .await
        .map_err(|error| engine_error(&error))?
        .outputs;
    let (catalog, media_type) = match arguments.format {
        ExportFormat::Json => {
            let items: Vec<OutputItem> = records
                .iter()
                .map(|record| output_item(server, record, true))
                .collect();
            (
                serde_json::to_string_pretty(&items).unwrap_or_default(),
                "application/json",
            )
        }
        ExportFormat::Csv => {
            // The store writes the CSV from the same query, so rows and order match `records`.
            let csv = engine
                .export_catalog(query, comfy_engine::types::CatalogFormat::Csv)
                .await
                .map_err(store_failure)?;
            (csv, "text/csv")
        }
        ExportFormat::Html => {
            let side = arguments.thumbnail_size.unwrap_or(160).clamp(32, 512);
            let title = arguments.title.as_deref().unwrap_or("ComfyUI outputs");
            (engine.contact_sheet(&records, side, title).await, "text/html")
        }
    };
    let format_name = match arguments.format {
        ExportFormat::Json => "json",
        ExportFormat::Csv => "csv",
        ExportFormat::Html => "html",
    };
    let mut summary = json!({
        "format": format_name,
        "media_type": media_type,
        "records": records.len(),
        "bytes": catalog.len(),
    });
    if records.len() == limit as usize {
        summary["note"] = json!(format!(
            "the export stopped at limit {limit}; raise limit (at most {maximum_limit}) or narrow the filters"
        ));
    }
    if let Some(path) = &arguments.path {
        let overwrite = arguments.overwrite.unwrap_or(false);
        local_files::write_atomically(std::path::Path::new(path), catalog.into_bytes(), overwrite)
            .await
            .map_err(|error| error_text(error.to_string()))?;
        summary["path"] = json!(path);
        return Ok(json_result(&summary));
    }
    let budget = engine.config.preview_bytes;
    if catalog.len() > budget {
        return Err(error_text(format!(
            "the {format_name} catalog of {} outputs is {} bytes, over the inline budget of {budget} bytes: give path (where local files are allowed), a smaller limit or narrower filters{}",
            records.len(),
            catalog.len(),
            if matches!(arguments.format, ExportFormat::Html) {
                ", or a smaller thumbnail_size"
            } else {
                ""
            }
        )));
    }
    summary["inline"] = json!(true);
    Ok(CallToolResult::success(vec![
        ContentBlock::text(serde_json::to_string_pretty(&summary).unwrap_or_default()),
        ContentBlock::text(catalog),
    ]))
}

async fn cleanup_outputs(
    server: &ComfyServer,
    arguments: CleanupOutputsArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let now = comfy_engine::types::now_ms();
    let cutoff = arguments.created_before.resolve("created_before", now)?;
    let policy = RetentionPolicy {
        created_before_ms: cutoff,
        keep_tagged: arguments.keep_tagged.unwrap_or(true),
        keep_in_collections: arguments.keep_in_collections.unwrap_or(true),
        dry_run: arguments.dry_run.unwrap_or(true),
    };
    let delete_files = arguments.delete_files.unwrap_or(true);
    let kept_tagged = policy.keep_tagged;
    let kept_collected = policy.keep_in_collections;
    let outcome = server
        .engine
        .cleanup_library(policy, delete_files)
        .await
        .map_err(|error| engine_error(&error))?;
    let count = |action: &str| outcome.files.iter().filter(|file| file.action == action).count();
    let (deleted, would_delete, missing, kept, failed) = (
        count("deleted"),
        count("would_delete"),
        count("already_missing"),
        count("kept"),
        count("failed"),
    );
    let outputs: Vec<Value> = outcome
        .records
        .iter()
        .zip(&outcome.files)
        .take(MAXIMUM_LISTED_CLEANUP_OUTPUTS)
        .map(|(record, file)| {
            json!({
                "id": record.id,
                "created_at": format_rfc3339(record.output.created_at_ms),
                "backend": file.backend,
                "filename": file.filename,
                "subfolder": file.subfolder,
                "prompt": record.output.prompt_text.chars().take(120).collect::<String>(),
                "tags": record.tags,
                "collections": record.collections,
                "file": file.action,
                "file_path": file.path,
                "file_reason": file.reason,
            })
        })
        .collect();
    let mut kept_note = Vec::new();
    if kept_tagged {
        kept_note.push("tagged outputs");
    }
    if kept_collected {
        kept_note.push("outputs in a collection");
    }
    let keeping = if kept_note.is_empty() {
        String::new()
    } else {
        format!(" ({} are kept)", kept_note.join(" and "))
    };
    let records = outcome.records.len();
    let files_staying = kept + failed;
    let explanation = if outcome.dry_run {
        format!(
            "Dry run: nothing was removed. A real run (dry_run=false) would remove {records} catalog record(s) created before {}{keeping}, with their tags and collection memberships, and delete {would_delete} file(s) in the configured output directory; {files_staying} file(s) would stay on their backend (see file_reason){}.",
            format_rfc3339(cutoff),
            if missing > 0 {
                format!("; {missing} file(s) are already missing")
            } else {
                String::new()
            }
        )
    } else {
        format!(
            "Removed {records} catalog record(s) created before {}{keeping}, with their tags and collection memberships. Deleted {deleted} file(s); {files_staying} file(s) stay on their backend (see file_reason){}.",
            format_rfc3339(cutoff),
            if missing > 0 {
                format!("; {missing} file(s) were already missing")
            } else {
                String::new()
            }
        )
    };
    let mut answer = json!({
        "dry_run": outcome.dry_run,
        "created_before": format_rfc3339(cutoff),
        "records": records,
        "files": {
            "deleted": deleted,
            "would_delete": would_delete,
            "already_missing": missing,
            "staying": kept,
            "failed": failed,
        },
        "explanation": explanation,
        "outputs": outputs,
    });
    if records > MAXIMUM_LISTED_CLEANUP_OUTPUTS {
        answer["note"] = json!(format!(
            "only the first {MAXIMUM_LISTED_CLEANUP_OUTPUTS} of {records} outputs are listed"
        ));
    }
    // A failed file deletion is reported, not hidden: the records are gone, the file is not.
    if failed > 0 && !outcome.dry_run {
        answer["warning"] = json!(format!(
            "{failed} file(s) could not be deleted; their records were removed (see file_reason)"
        ));
    }
    Ok(json_result(&answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arguments_take_numbers_and_text() {
        let number: TimeArgument = serde_json::from_value(json!(1_700_000_000_000_i64)).unwrap();
        assert_eq!(number.resolve("since", 0).ok(), Some(1_700_000_000_000));
        let age: TimeArgument = serde_json::from_value(json!("1d")).unwrap();
        assert_eq!(age.resolve("since", 86_400_000).ok(), Some(0));
        let bad: TimeArgument = serde_json::from_value(json!("last tuesday")).unwrap();
        assert!(bad.resolve("since", 0).is_err());
    }

    #[test]
    fn unknown_arguments_are_refused() {
        let refused: Result<SearchOutputsArguments, _> =
            serde_json::from_value(json!({"text": "cat", "colour": "red"}));
        assert!(refused.is_err());
        let refused: Result<OrganizeOutputsArguments, _> = serde_json::from_value(json!({"action": "paint"}));
        assert!(refused.is_err());
    }

    #[test]
    fn every_tool_has_an_object_schema_and_annotations() {
        for tool in TOOLS.iter().map(ToolDeclaration::tool) {
            assert_eq!(
                tool.input_schema.get("type"),
                Some(&json!("object")),
                "{}",
                tool.name
            );
            assert!(tool.annotations.is_some(), "{}", tool.name);
        }
        let cleanup = TOOLS
            .iter()
            .map(ToolDeclaration::tool)
            .find(|tool| tool.name == "cleanup_outputs")
            .unwrap();
        assert_eq!(cleanup.annotations.unwrap().destructive_hint, Some(true));
    }

    #[test]
    fn library_answers_conform_to_their_schemas() {
        use crate::mcp::tool::conformance::assert_conforms;
        let full = OutputItem {
            id: 1,
            created_at: "2026-01-01T00:00:00Z".into(),
            job_id: Some("j".into()),
            prompt: "a fox".into(),
            model: Some("sd15.safetensors".into()),
            seed: Some(42),
            width: Some(64),
            height: Some(64),
            media_type: "image/png".into(),
            backend: "local".into(),
            filename: "a.png".into(),
            subfolder: String::new(),
            kind: "output".into(),
            url: Some("http://127.0.0.1:8188/view?filename=a.png".into()),
            resource_uri: "comfyui://local/output/a.png".into(),
            perceptual_hash: Some("00ff00ff00ff00ff".into()),
            tags: vec!["fox".into()],
            collections: vec!["best".into()],
            parameters: json!({"seed": 42, "steps": 4}).as_object().cloned(),
            distance: Some(3),
        };
        let bare = OutputItem {
            job_id: None,
            model: None,
            seed: None,
            width: None,
            height: None,
            url: None,
            perceptual_hash: None,
            parameters: None,
            distance: None,
            ..full.clone()
        };
        for note in [None, Some("nothing matches".to_owned())] {
            let page = OutputPage {
                count: 2,
                order: "newest".into(),
                outputs: vec![full.clone(), bare.clone()],
                next_offset: note.is_none().then_some(2),
                note: note.clone(),
            };
            assert_conforms(TOOLS, "search_outputs", &page);
            let similar = SimilarImages {
                query: SimilarityQuery {
                    output_id: note.is_none().then_some(1),
                    perceptual_hash: "00ff00ff00ff00ff".into(),
                    width: note.as_ref().map(|_| 64),
                    height: note.as_ref().map(|_| 64),
                },
                max_distance: 12,
                count: 1,
                matches: vec![full.clone()],
                note,
            };
            assert_conforms(TOOLS, "find_similar_images", &similar);
        }
    }
}
