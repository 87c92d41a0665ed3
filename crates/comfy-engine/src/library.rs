//! The outputs library beyond single store calls: search ordered newest first, similarity from an
//! output or from any image's perceptual hash, the metadata ComfyUI embeds in PNG files, an HTML
//! contact sheet with small inline thumbnails, and retention cleanup that also deletes files when
//! the operator configured the backend's local output directory (ComfyUI has no HTTP API for it).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use comfy_api::FileRef;
use comfy_store::{OutputQuery, OutputRecord, RetentionPolicy, SimilarOutput, StoreError};
use futures_util::StreamExt as _;
use image::ImageEncoder as _;
use serde::Serialize;
use serde_json::Value;

use super::png_text::{self, TextChunk};
use super::timestamps::format_rfc3339;
use super::{Engine, EngineError, media};

/// With text and newest-first order, at most this many matches are sorted by date.
pub const NEWEST_FIRST_WINDOW: u32 = 2000;

/// How long one file download for the library may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Store failures as tool errors: a missing output or collection, or a bad name, is the caller's
/// to fix; anything else is the database's.
pub fn library_error(error: StoreError) -> EngineError {
    match error {
        StoreError::OutputNotFound { .. }
        | StoreError::CollectionNotFound { .. }
        | StoreError::InvalidInput { .. } => EngineError::bad_input(error.to_string()),
        other => EngineError::Store { source: other },
    }
}

/// One page of search results.
#[derive(Debug)]
pub struct SearchPage {
    pub outputs: Vec<OutputRecord>,
    /// True when newest-first ordering only saw the first [`NEWEST_FIRST_WINDOW`] matches.
    pub window_full: bool,
}

/// What ComfyUI (or anything else) wrote into a PNG's text chunks.
#[derive(Debug, Serialize)]
pub struct ImageMetadata {
    pub format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The API-format graph that made the image (ComfyUI's `prompt` key).
    pub prompt: Option<Value>,
    /// The UI workflow with positions and widgets (ComfyUI's `workflow` key).
    pub workflow: Option<Value>,
    /// Every other key: its JSON value when the text is JSON, else the text.
    pub other: BTreeMap<String, Value>,
    /// Every chunk in file order: keyword, chunk type, text length.
    pub chunks: Vec<ChunkSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ChunkSummary {
    pub keyword: String,
    pub chunk_type: png_text::TextChunkKind,
    pub characters: usize,
}

/// What happened, or would happen, to one file during cleanup.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    pub output_id: i64,
    pub backend: String,
    pub filename: String,
    pub subfolder: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `deleted`, `would_delete`, `already_missing`, `kept` or `failed`.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The result of a retention cleanup.
#[derive(Debug, Serialize)]
pub struct CleanupOutcome {
    pub dry_run: bool,
    /// Catalog records removed (or, in a dry run, that would be).
    pub records: Vec<OutputRecord>,
    pub files: Vec<FileOutcome>,
}

/// A small JPEG for a contact sheet.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub base64: String,
    pub width: u32,
    pub height: u32,
}

/// Downscales an image so its longest side is at most `longest_side` and encodes it as JPEG, the
/// way [`media::preview`] does for tool results; `None` when the bytes are not a decodable image.
pub fn thumbnail(bytes: &[u8], longest_side: u32) -> Option<Thumbnail> {
    let decoded = media::decode(bytes)?;
    let scaled = decoded.thumbnail(longest_side, longest_side).to_rgb8();
    let mut encoded = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 75)
        .write_image(
            scaled.as_raw(),
            scaled.width(),
            scaled.height(),
            image::ExtendedColorType::Rgb8,
        )
        .ok()?;
    Some(Thumbnail {
        base64: base64::engine::general_purpose::STANDARD.encode(&encoded),
        width: scaled.width(),
        height: scaled.height(),
    })
}

fn format_name(bytes: &[u8]) -> &'static str {
    match image::guess_format(bytes) {
        Ok(image::ImageFormat::Png) => "png",
        Ok(image::ImageFormat::Jpeg) => "jpeg",
        Ok(image::ImageFormat::WebP) => "webp",
        Ok(image::ImageFormat::Gif) => "gif",
        Ok(_) => "other",
        Err(_) => "unknown",
    }
}

/// Reads the text chunks of a PNG and sorts ComfyUI's keys out of them.
pub fn image_metadata(bytes: &[u8]) -> Result<ImageMetadata, EngineError> {
    let chunks =
        png_text::read_text_chunks(bytes).map_err(|error| EngineError::bad_input(error.to_string()))?;
    let (width, height) = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.into_dimensions().ok())
        .map_or((None, None), |(width, height)| (Some(width), Some(height)));
    let mut metadata = ImageMetadata {
        format: format_name(bytes),
        width,
        height,
        prompt: None,
        workflow: None,
        other: BTreeMap::new(),
        chunks: chunks
            .iter()
            .map(|chunk| ChunkSummary {
                keyword: chunk.keyword.clone(),
                chunk_type: chunk.kind,
                characters: chunk.text.chars().count(),
            })
            .collect(),
        notes: Vec::new(),
    };
    for TextChunk { keyword, text, .. } in chunks {
        let parsed = serde_json::from_str::<Value>(&text).ok();
        match keyword.as_str() {
            "prompt" | "workflow" => {
                let value = match parsed {
                    Some(value) => value,
                    None => {
                        metadata
                            .notes
                            .push(format!("the {keyword} chunk is not valid JSON; returned as text"));
                        Value::String(text)
                    }
                };
                if keyword == "prompt" {
                    metadata.prompt = Some(value);
                } else {
                    metadata.workflow = Some(value);
                }
            }
            _ => {
                metadata
                    .other
                    .insert(keyword, parsed.unwrap_or(Value::String(text)));
            }
        }
    }
    if metadata.chunks.is_empty() {
        metadata
            .notes
            .push("this PNG has no text chunks: it was not saved by ComfyUI's SaveImage, or its metadata was stripped".to_owned());
    } else if metadata.prompt.is_none() && metadata.workflow.is_none() {
        metadata
            .notes
            .push("no ComfyUI prompt or workflow key among the text chunks".to_owned());
    }
    Ok(metadata)
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn shorten(text: &str, characters: usize) -> String {
    if text.chars().count() <= characters {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(characters).collect();
        short.push('…');
        short
    }
}

/// The local path of an output file inside `directory`, refusing any name that could leave it.
fn local_output_path(directory: &Path, subfolder: &str, filename: &str) -> Result<PathBuf, String> {
    let relative = Path::new(subfolder).join(filename);
    if filename.is_empty()
        || relative
            .components()
            .any(|component| !matches!(component, Component::Normal(_)))
    {
        return Err(format!(
            "refused: {:?} is not a plain relative file name",
            relative.display().to_string()
        ));
    }
    Ok(directory.join(relative))
}

/// Deletes one file, making sure (after resolving symbolic links) it lies inside `directory`.
fn delete_inside(directory: &Path, path: &Path) -> Result<&'static str, String> {
    let root = directory.canonicalize().map_err(|error| {
        format!(
            "the output directory {} is not usable: {error}",
            directory.display()
        )
    })?;
    let resolved = match path.canonicalize() {
        Ok(resolved) => resolved,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok("already_missing"),
        Err(error) => return Err(error.to_string()),
    };
    if !resolved.starts_with(&root) {
        return Err(format!(
            "refused: {} resolves outside the output directory",
            path.display()
        ));
    }
    if !resolved.is_file() {
        return Err(format!("refused: {} is not a regular file", path.display()));
    }
    fs_err::remove_file(&resolved)
        .map(|()| "deleted")
        .map_err(|error| error.to_string())
}

impl Engine {
    /// One library record.
    pub async fn library_record(&self, id: i64) -> Result<OutputRecord, EngineError> {
        self.store.get_output(id).await.map_err(library_error)
    }

    /// The `/view` URL of a record's file, when its backend is still configured.
    pub fn library_url(&self, record: &OutputRecord) -> Option<String> {
        let entry = self
            .backends
            .iter()
            .find(|entry| entry.name == record.output.file.backend_id)?;
        Some(entry.backend.client().view_url(&file_ref(record)))
    }

    /// Downloads a record's file from its backend (`preview` as ComfyUI's `/view` takes it).
    pub async fn library_file(
        &self,
        record: &OutputRecord,
        preview: Option<&str>,
    ) -> Result<bytes::Bytes, EngineError> {
        let backend_name = &record.output.file.backend_id;
        let entry = self
            .backends
            .iter()
            .find(|entry| &entry.name == backend_name)
            .ok_or_else(|| {
                EngineError::bad_input(format!(
                    "output {} lives on backend {backend_name:?}, which is not configured any more",
                    record.id
                ))
            })?;
        let download = tokio::time::timeout(
            DOWNLOAD_TIMEOUT,
            entry.backend.client().view(
                &file_ref(record),
                preview,
                crate::outputs::MAXIMUM_PREVIEW_SOURCE_BYTES,
            ),
        )
        .await
        .map_err(|_| {
            EngineError::bad_input(format!(
                "{}: the file of output {} did not arrive within {} s",
                entry.label(),
                record.id,
                DOWNLOAD_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|source| entry.error(source))?;
        Ok(download.bytes)
    }

    /// Outputs matching `query`. Newest first when `newest_first` (with text, among the first
    /// [`NEWEST_FIRST_WINDOW`] matches), otherwise by relevance with text.
    pub async fn search_library(
        &self,
        query: OutputQuery,
        newest_first: bool,
    ) -> Result<SearchPage, EngineError> {
        if !newest_first || query.text.as_deref().is_none_or(|text| text.trim().is_empty()) {
            let outputs = self.store.search_outputs(query).await.map_err(library_error)?;
            return Ok(SearchPage {
                outputs,
                window_full: false,
            });
        }
        let offset = usize::try_from(query.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let limit = query
            .limit
            .map_or(usize::MAX, |limit| usize::try_from(limit).unwrap_or(usize::MAX));
        let mut outputs = self
            .store
            .search_outputs(OutputQuery {
                limit: Some(NEWEST_FIRST_WINDOW),
                offset: None,
                ..query
            })
            .await
            .map_err(library_error)?;
        let window_full = outputs.len() >= NEWEST_FIRST_WINDOW as usize;
        outputs.sort_by(|left, right| {
            (right.output.created_at_ms, right.id).cmp(&(left.output.created_at_ms, left.id))
        });
        let outputs = outputs.into_iter().skip(offset).take(limit).collect();
        Ok(SearchPage { outputs, window_full })
    }

    /// Outputs that look like output `id`, nearest first (the output itself has distance 0). An
    /// image indexed without a hash gets one now.
    pub async fn similar_to_output(
        &self,
        id: i64,
        max_distance: u32,
        limit: u32,
    ) -> Result<(u64, Vec<SimilarOutput>), EngineError> {
        let record = self.library_record(id).await?;
        let hash = match record.output.perceptual_hash {
            Some(hash) => hash,
            None if record.output.media_type.starts_with("image/") => {
                let bytes = self.library_file(&record, Some("jpeg;80")).await?;
                let fingerprint = media::fingerprint_off_the_workers(bytes).await.ok_or_else(|| {
                    EngineError::bad_input(format!("output {id}'s file does not decode as an image"))
                })?;
                self.store
                    .set_output_perceptual_hash(id, fingerprint.hash)
                    .await
                    .map_err(library_error)?;
                fingerprint.hash
            }
            None => {
                return Err(EngineError::bad_input(format!(
                    "output {id} is {}, not a still image: it has no perceptual hash",
                    record.output.media_type
                )));
            }
        };
        let similar = self
            .store
            .similar_outputs(hash, max_distance, Some(limit))
            .await
            .map_err(library_error)?;
        Ok((hash, similar))
    }

    /// Outputs that look like an image given as bytes, nearest first.
    pub async fn similar_to_image(
        &self,
        bytes: Vec<u8>,
        max_distance: u32,
        limit: u32,
    ) -> Result<(media::Fingerprint, Vec<SimilarOutput>), EngineError> {
        let fingerprint = media::fingerprint_off_the_workers(bytes.into())
            .await
            .ok_or_else(|| {
                EngineError::bad_input("the data is not an image this server can decode (PNG, JPEG)")
            })?;
        let similar = self
            .store
            .similar_outputs(fingerprint.hash, max_distance, Some(limit))
            .await
            .map_err(library_error)?;
        Ok((fingerprint, similar))
    }

    /// A self-contained HTML page: one figure per record with a thumbnail (a `data:` URL of at most
    /// `thumbnail_side` pixels), its prompt, model, seed, size, tags and a link to the full file.
    pub async fn contact_sheet(&self, records: &[OutputRecord], thumbnail_side: u32, title: &str) -> String {
        // Owned records: a stream of futures borrowing them is not `Send` for every lifetime.
        let thumbnails: Vec<Option<Thumbnail>> = futures_util::stream::iter(records.to_vec())
            .map(|record| async move {
                if !record.output.media_type.starts_with("image/") {
                    return None;
                }
                match self.library_file(&record, Some("jpeg;90")).await {
                    Ok(bytes) => media::off_the_workers(move || thumbnail(&bytes, thumbnail_side))
                        .await
                        .flatten(),
                    Err(error) => {
                        tracing::warn!(output = record.id, %error, "no thumbnail for the contact sheet");
                        None
                    }
                }
            })
            .buffered(4)
            .collect()
            .await;
        let mut html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>\n\
             body {{ font-family: system-ui, sans-serif; margin: 1.5rem; background: #fafafa; color: #222; }}\n\
             .sheet {{ display: grid; grid-template-columns: repeat(auto-fill, minmax({side}px, 1fr)); gap: 1rem; }}\n\
             figure {{ margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .5rem; }}\n\
             figure img, .missing {{ display: block; margin: 0 auto .4rem; max-width: 100%; }}\n\
             .missing {{ width: {side}px; height: {side}px; background: #eee; color: #777; display: flex; align-items: center; justify-content: center; font-size: .8rem; }}\n\
             figcaption {{ font-size: .75rem; line-height: 1.3; overflow-wrap: anywhere; }}\n\
             .meta {{ color: #666; }}\n</style>\n</head>\n<body>\n<h1>{title}</h1>\n<p>{count} outputs, made {made}.</p>\n<div class=\"sheet\">\n",
            title = escape_html(title),
            side = thumbnail_side.max(32),
            count = records.len(),
            made = format_rfc3339(comfy_store::now_ms()),
        );
        for (record, thumbnail) in records.iter().zip(thumbnails) {
            let output = &record.output;
            let alt = escape_html(&shorten(&output.prompt_text, 120));
            let picture = match &thumbnail {
                Some(thumbnail) => format!(
                    "<img src=\"data:image/jpeg;base64,{}\" width=\"{}\" height=\"{}\" alt=\"{alt}\">",
                    thumbnail.base64, thumbnail.width, thumbnail.height
                ),
                None => format!("<div class=\"missing\">{}</div>", escape_html(&output.media_type)),
            };
            let picture = match self.library_url(record) {
                Some(url) => format!("<a href=\"{}\">{picture}</a>", escape_html(&url)),
                None => picture,
            };
            let mut details = vec![format!("#{}", record.id)];
            if let Some(model) = &output.model {
                details.push(escape_html(model));
            }
            if let Some(seed) = output.seed {
                details.push(format!("seed {seed}"));
            }
            if let (Some(width), Some(height)) = (output.width, output.height) {
                details.push(format!("{width}×{height}"));
            }
            details.push(format_rfc3339(output.created_at_ms));
            let mut caption = format!(
                "<div>{}</div><div class=\"meta\">{}</div><div class=\"meta\">{}</div>",
                escape_html(&shorten(&output.prompt_text, 300)),
                details.join(" · "),
                escape_html(&output.file.filename)
            );
            if !record.tags.is_empty() || !record.collections.is_empty() {
                let labels: Vec<String> = record
                    .tags
                    .iter()
                    .map(|tag| format!("#{tag}"))
                    .chain(record.collections.iter().map(|name| format!("[{name}]")))
                    .collect();
                caption.push_str(&format!(
                    "<div class=\"meta\">{}</div>",
                    escape_html(&labels.join(" "))
                ));
            }
            html.push_str(&format!(
                "<figure id=\"output-{}\">{picture}<figcaption>{caption}</figcaption></figure>\n",
                record.id
            ));
        }
        html.push_str("</div>\n</body>\n</html>\n");
        html
    }

    /// The configured local output directory of a backend (`COMFYUI_MCP_OUTPUT_DIR`).
    pub fn output_directory(&self, backend: &str) -> Option<&Path> {
        self.config
            .backends
            .iter()
            .find(|settings| settings.name == backend)
            .and_then(|settings| settings.output_dir.as_deref())
    }

    /// Retention cleanup: removes (or lists, in a dry run) the catalog records the policy selects,
    /// then, when `delete_files` and the record's backend has a configured local output directory,
    /// deletes the files of removed `output`-type records there. Every other file stays, with the
    /// reason in its [`FileOutcome`].
    pub async fn cleanup_library(
        &self,
        policy: RetentionPolicy,
        delete_files: bool,
    ) -> Result<CleanupOutcome, EngineError> {
        let dry_run = policy.dry_run;
        let report = self.store.cleanup_outputs(policy).await.map_err(library_error)?;
        let mut files = Vec::with_capacity(report.outputs.len());
        for record in &report.outputs {
            let file = &record.output.file;
            let mut outcome = FileOutcome {
                output_id: record.id,
                backend: file.backend_id.clone(),
                filename: file.filename.clone(),
                subfolder: file.subfolder.clone(),
                path: None,
                action: "kept",
                reason: None,
            };
            let directory = self.output_directory(&file.backend_id);
            match directory {
                _ if !delete_files => {
                    outcome.reason = Some("delete_files is false".to_owned());
                }
                None => {
                    outcome.reason = Some(format!(
                        "no local output directory is configured for backend {:?} (COMFYUI_MCP_OUTPUT_DIR), and ComfyUI has no HTTP API to delete outputs: the file stays on the backend",
                        file.backend_id
                    ));
                }
                Some(_) if file.file_type != "output" => {
                    outcome.reason = Some(format!(
                        "a {} file, not in the output directory: it stays",
                        file.file_type
                    ));
                }
                Some(directory) => match local_output_path(directory, &file.subfolder, &file.filename) {
                    Err(reason) => {
                        outcome.action = "failed";
                        outcome.reason = Some(reason);
                    }
                    Ok(path) => {
                        outcome.path = Some(path.display().to_string());
                        if dry_run {
                            outcome.action = if path.exists() {
                                "would_delete"
                            } else {
                                "already_missing"
                            };
                        } else {
                            let directory = directory.to_path_buf();
                            let deletion =
                                tokio::task::spawn_blocking(move || delete_inside(&directory, &path)).await;
                            match deletion {
                                Ok(Ok(action)) => outcome.action = action,
                                Ok(Err(reason)) => {
                                    outcome.action = "failed";
                                    outcome.reason = Some(reason);
                                }
                                Err(error) => {
                                    outcome.action = "failed";
                                    outcome.reason = Some(error.to_string());
                                }
                            }
                            if outcome.action == "deleted" {
                                tracing::info!(output = record.id, path = ?outcome.path, "deleted an output file");
                            }
                        }
                    }
                },
            }
            files.push(outcome);
        }
        Ok(CleanupOutcome {
            dry_run,
            records: report.outputs,
            files,
        })
    }
}

fn file_ref(record: &OutputRecord) -> FileRef {
    FileRef {
        filename: record.output.file.filename.clone(),
        subfolder: record.output.file.subfolder.clone(),
        kind: record.output.file.file_type.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_never_leave_the_directory() {
        let directory = Path::new("/srv/comfyui/output");
        assert_eq!(
            local_output_path(directory, "a/b", "x.png").unwrap(),
            Path::new("/srv/comfyui/output/a/b/x.png")
        );
        assert_eq!(
            local_output_path(directory, "", "x.png").unwrap(),
            Path::new("/srv/comfyui/output/x.png")
        );
        for (subfolder, filename) in [
            ("..", "x.png"),
            ("a/../..", "x.png"),
            ("", "../x.png"),
            ("/etc", "passwd"),
            ("", "/etc/passwd"),
            ("", ""),
            ("./a", "x.png"),
        ] {
            assert!(
                local_output_path(directory, subfolder, filename).is_err(),
                "{subfolder:?} {filename:?} was accepted"
            );
        }
    }

    #[test]
    fn deletion_refuses_symbolic_links_out_of_the_directory() {
        let base = std::env::temp_dir().join(format!("comfyui-mcp-library-{}", uuid::Uuid::new_v4()));
        let inside = base.join("output");
        std::fs::create_dir_all(&inside).unwrap();
        let outside = base.join("precious.png");
        std::fs::write(&outside, b"keep me").unwrap();
        std::fs::write(inside.join("old.png"), b"x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, inside.join("link.png")).unwrap();
        assert_eq!(delete_inside(&inside, &inside.join("old.png")), Ok("deleted"));
        assert_eq!(
            delete_inside(&inside, &inside.join("old.png")),
            Ok("already_missing")
        );
        #[cfg(unix)]
        assert!(delete_inside(&inside, &inside.join("link.png")).is_err());
        assert!(outside.exists());
        std::fs::remove_dir_all(&base).ok();
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("abc", 3), "abc");
    }

    #[test]
    fn metadata_sorts_comfyui_keys() {
        let mut bytes = Vec::new();
        image::codecs::png::PngEncoder::new(&mut bytes)
            .write_image(&[0, 0, 0], 1, 1, image::ExtendedColorType::Rgb8)
            .unwrap();
        // Insert tEXt chunks after IHDR (8 signature + 25 IHDR bytes).
        let text_chunk = |keyword: &str, text: &str| {
            let data = [keyword.as_bytes(), b"\0", text.as_bytes()].concat();
            let mut chunk = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
            chunk.extend_from_slice(b"tEXt");
            chunk.extend_from_slice(&data);
            chunk.extend_from_slice(&[0; 4]);
            chunk
        };
        let mut file = bytes[..33].to_vec();
        file.extend(text_chunk("prompt", "{\"3\": {\"class_type\": \"KSampler\"}}"));
        file.extend(text_chunk("workflow", "not json"));
        file.extend(text_chunk("parameters", "steps: 20"));
        file.extend_from_slice(&bytes[33..]);
        let metadata = image_metadata(&file).unwrap();
        assert_eq!(metadata.format, "png");
        assert_eq!((metadata.width, metadata.height), (Some(1), Some(1)));
        assert_eq!(metadata.prompt.as_ref().unwrap()["3"]["class_type"], "KSampler");
        assert_eq!(metadata.workflow, Some(Value::String("not json".to_owned())));
        assert_eq!(metadata.other["parameters"], "steps: 20");
        assert_eq!(metadata.chunks.len(), 3);
        assert_eq!(metadata.notes.len(), 1);
        assert!(image_metadata(b"\xff\xd8\xff\xe0 jpeg").is_err());
    }
}
