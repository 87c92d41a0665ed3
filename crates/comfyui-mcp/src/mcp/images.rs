//! Image arguments and image results for the tools that work on pixels (the `edit` and
//! `analysis` toolsets) and for `upload_image`: one way to name an image (a library id, a
//! backend's file, base64, a URL, a local path where allowed), one way to read base64 and local
//! files, and one way to answer with a result image (its facts, an inline preview, a link).

use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::render::error_text;
use super::server::ComfyServer;
use comfy_engine::imaging::{ImageSource, ResultImage, SourceImage};
use comfy_engine::local_files;
use comfy_engine::types::{FileRef, OutputFile};

/// An image: exactly one of output_id, filename, data_base64, url, path.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImageArgument {
    /// An outputs-library id (from search_outputs or an earlier result).
    pub output_id: Option<i64>,
    /// A backend file's name, as job outputs or upload_image give it.
    pub filename: Option<String>,
    /// With filename.
    pub subfolder: Option<String>,
    /// With filename: output (default), input or temp.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// With filename.
    pub backend: Option<String>,
    /// The file, base64.
    pub data_base64: Option<String>,
    /// An http(s) URL.
    pub url: Option<String>,
    /// A local file, where allowed.
    pub path: Option<String>,
}

/// Decodes base64, with or without a `data:...;base64,` prefix.
pub(crate) fn decode_base64(data: &str) -> Result<Vec<u8>, CallToolResult> {
    let data = data.split_once("base64,").map_or(data, |(_, data)| data);
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|error| error_text(format!("data_base64 is not valid base64: {error}")))
}

/// A local file's bytes, when this server may read local files.
pub(crate) async fn read_local(server: &ComfyServer, path: &str) -> Result<Vec<u8>, CallToolResult> {
    if !server.local_files_allowed() {
        return Err(error_text(
            "reading local files is disabled on this server (set COMFYUI_MCP_ALLOW_LOCAL_FILES=true to allow it); send data_base64 or url instead",
        ));
    }
    local_files::read_bounded(std::path::Path::new(path), local_files::MAXIMUM_IMAGE_BYTES)
        .await
        .map_err(|error| error_text(error.to_string()))
}

/// Where `argument` (the argument called `what`) says the image is.
pub(crate) async fn source(
    server: &ComfyServer,
    argument: &ImageArgument,
    what: &str,
) -> Result<ImageSource, CallToolResult> {
    let given = [
        argument.output_id.is_some(),
        argument.filename.is_some(),
        argument.data_base64.is_some(),
        argument.url.is_some(),
        argument.path.is_some(),
    ];
    if given.iter().filter(|given| **given).count() != 1 {
        return Err(error_text(format!(
            "{what}: give exactly one of output_id, filename, data_base64, url or path"
        )));
    }
    if argument.filename.is_none()
        && (argument.subfolder.is_some() || argument.kind.is_some() || argument.backend.is_some())
    {
        return Err(error_text(format!(
            "{what}: subfolder, type and backend go with filename"
        )));
    }
    if let Some(id) = argument.output_id {
        return Ok(ImageSource::Library(id));
    }
    if let Some(filename) = &argument.filename {
        return Ok(ImageSource::Backend {
            backend: argument.backend.clone(),
            file: FileRef {
                filename: filename.clone(),
                subfolder: argument.subfolder.clone().unwrap_or_default(),
                kind: argument.kind.clone().unwrap_or_else(|| "output".to_owned()),
            },
        });
    }
    if let Some(data) = &argument.data_base64 {
        return decode_base64(data).map(ImageSource::Bytes);
    }
    if let Some(url) = &argument.url {
        return Ok(ImageSource::Url(url.clone()));
    }
    let path = argument.path.as_deref().unwrap_or_default();
    read_local(server, path).await.map(ImageSource::Bytes)
}

/// Fetches and decodes the image `argument` names.
pub(crate) async fn load(
    server: &ComfyServer,
    argument: &ImageArgument,
    what: &str,
) -> Result<SourceImage, CallToolResult> {
    let source = source(server, argument, what).await?;
    server
        .engine
        .load_image(source)
        .await
        .map_err(|error| error_text(format!("{what}: {error}")))
}

/// [`load`] for an optional argument.
pub(crate) async fn load_optional(
    server: &ComfyServer,
    argument: Option<&ImageArgument>,
    what: &str,
) -> Result<Option<SourceImage>, CallToolResult> {
    match argument {
        Some(argument) => load(server, argument, what).await.map(Some),
        None => Ok(None),
    }
}

/// A result: `summary` as JSON text, then each image's preview and a
/// link to where it was kept.
pub(crate) fn answer<T: Serialize>(summary: &T, images: &[&ResultImage]) -> CallToolResult {
    let value = serde_json::to_value(summary).unwrap_or_default();
    let mut content = vec![ContentBlock::text(
        serde_json::to_string_pretty(&value).unwrap_or_default(),
    )];
    for image in images {
        if let Some(preview) = &image.preview {
            content.push(ContentBlock::image(
                preview.base64.clone(),
                preview.mime_type.clone(),
            ));
        }
        if let Some(kept) = &image.kept {
            let output = OutputFile {
                node_id: String::new(),
                key: "image".to_owned(),
                file: FileRef {
                    filename: kept.filename.clone(),
                    subfolder: kept.subfolder.clone(),
                    kind: kept.kind.clone(),
                },
                animated: false,
            };
            content.push(ContentBlock::resource_link(super::render::resource(
                &kept.backend,
                &kept.url,
                &output,
            )));
        }
    }
    CallToolResult::success(content)
}
