//! Native image operations: the inputs (an outputs-library id, a backend's file, bytes, a URL)
//! fetched and decoded within the limits, comfy-imaging's pure operations run off the async
//! workers, and each result encoded as PNG, put in a backend's input folder (where `LoadImage`
//! and every later tool can use it) and indexed in the outputs library with what made it.
//!
//! No operation needs a backend to compute; only keeping the result does. Without a reachable
//! backend the result still comes back (inline, within the preview budget) with the reason it
//! was not kept.

use bytes::Bytes;
use comfy_api::FileRef;
use comfy_imaging::{GrayImage, RgbaImage};
use comfy_store::{FileReference, NewOutput};
use image::{DynamicImage, ImageEncoder};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::library::library_error;
use crate::media::{self, Preview};
use crate::outputs::UploadRequest;
use crate::{BackendEntry, Engine, EngineError};

/// The subfolder of ComfyUI's input folder results are kept in.
pub const RESULTS_SUBFOLDER: &str = "comfyui-mcp";

/// Largest input file read for an operation.
pub const MAXIMUM_SOURCE_BYTES: u64 = crate::outputs::MAXIMUM_PREVIEW_SOURCE_BYTES;

/// Where an operation's image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// An outputs-library record.
    Library(i64),
    /// A file on a backend (`None`: the default one).
    Backend { backend: Option<String>, file: FileRef },
    /// Encoded bytes the caller sent (base64, or a local file the front end read).
    Bytes(Vec<u8>),
    /// An http(s) URL, fetched with the same guards as any input by URL.
    Url(String),
}

/// A decoded input and where it came from.
#[derive(Debug)]
pub struct SourceImage {
    pub image: RgbaImage,
    pub origin: Origin,
}

/// Where an input came from: what a result's record says of it (the pixels go their own way).
#[derive(Debug, Clone)]
pub struct Origin {
    /// The backend holding it, when it came from one: results are kept there too.
    pub backend: Option<String>,
    /// How the result's record names it ("output 12", "input/cat.png on local", "a URL"...).
    pub label: String,
}

/// What made a result, for its library record.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The tool or operation (`make_mask`, `blend_images`...).
    pub operation: &'static str,
    /// Its arguments as the record keeps them (searchable in the library).
    pub parameters: Value,
    /// The inputs' labels.
    pub sources: Vec<String>,
    /// Keep it on this backend (else the sources', else the default one).
    pub backend: Option<String>,
}

/// A result image: kept on a backend and in the library, or only returned.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ResultImage {
    pub width: u32,
    pub height: u32,
    /// Where it was kept; absent when it could not be (see `not_kept`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<KeptImage>,
    /// Why it was not kept, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_kept: Option<String>,
    #[serde(skip)]
    pub preview: Option<Preview>,
}

/// A result in a backend's input folder and the library.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct KeptImage {
    /// Its outputs-library id: any image argument takes it as `output_id`.
    pub output_id: i64,
    pub backend: String,
    pub filename: String,
    pub subfolder: String,
    /// Always `input`: ComfyUI's input folder.
    #[serde(rename = "type")]
    pub kind: String,
    /// The value for `LoadImage`'s `image` (and any tool's `image` name).
    pub node_value: String,
    pub url: String,
}

impl Engine {
    /// Fetches and decodes one input.
    pub async fn load_image(&self, source: ImageSource) -> Result<SourceImage, EngineError> {
        let (bytes, backend, label) = match source {
            ImageSource::Library(id) => {
                let record = self.library_record(id).await?;
                if !record.output.media_type.starts_with("image/") {
                    return Err(EngineError::bad_input(format!(
                        "output {id} is {}, not an image",
                        record.output.media_type
                    )));
                }
                let bytes = self.library_file(&record, None).await?;
                (
                    bytes,
                    Some(record.output.file.backend_id.clone()),
                    format!("output {id}"),
                )
            }
            ImageSource::Backend { backend, file } => {
                let entry = self.pick_backend(backend.as_deref())?;
                let bytes = self.download(entry, &file, MAXIMUM_SOURCE_BYTES).await?;
                let path = if file.subfolder.is_empty() {
                    file.filename.clone()
                } else {
                    format!("{}/{}", file.subfolder, file.filename)
                };
                let label = format!("{}/{path} on {}", file.kind, entry.name);
                (bytes, Some(entry.name.clone()), label)
            }
            ImageSource::Bytes(bytes) => (Bytes::from(bytes), None, "the image given".to_owned()),
            ImageSource::Url(url) => {
                let fetched = self.fetch_input(&url).await?;
                (Bytes::from(fetched.bytes), None, url)
            }
        };
        let length = bytes.len();
        let image = media::off_the_workers(move || media::decode(&bytes).map(|image| image.into_rgba8()))
            .await
            .flatten()
            .ok_or_else(|| {
                EngineError::bad_input(format!(
                    "{label} ({length} bytes) does not decode as an image (PNG, JPEG, WebP or GIF) within the {} pixel limit",
                    comfy_imaging::MAXIMUM_SIDE
                ))
            })?;
        Ok(SourceImage {
            image,
            origin: Origin { backend, label },
        })
    }

    /// Runs CPU-heavy `work` off the async workers; an imaging refusal becomes a bad-input error.
    pub async fn compute<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, comfy_imaging::ImagingError> + Send + 'static,
    ) -> Result<T, EngineError> {
        media::off_the_workers(work)
            .await
            .ok_or_else(|| {
                EngineError::bad_input("the image operation did not finish (the server is shutting down)")
            })?
            .map_err(|error| EngineError::bad_input(error.to_string()))
    }

    /// Encodes a result, keeps it (on the provenance's backend, else the first source's, else the
    /// default one) and indexes it; previews it within `budget`.
    pub async fn keep_image(
        &self,
        image: ResultPixels,
        provenance: Provenance,
        source_backends: &[Option<String>],
        budget: Option<usize>,
    ) -> Result<ResultImage, EngineError> {
        let (width, height) = image.dimensions();
        let (png, hash) = self.encode_result(image).await?;
        let png = Bytes::from(png);
        let limit = self.config.preview_bytes.max(1024);
        let budget = budget.unwrap_or(limit).clamp(1024, limit);
        let preview = media::preview_off_the_workers(png.clone(), "image/png".to_owned(), budget).await;
        let backend = provenance
            .backend
            .clone()
            .or_else(|| source_backends.iter().flatten().next().cloned());
        let entry = match self.pick_backend(backend.as_deref()) {
            Ok(entry) => entry,
            Err(error) if provenance.backend.is_some() => return Err(error),
            Err(error) => {
                return Ok(ResultImage {
                    width,
                    height,
                    kept: None,
                    not_kept: Some(format!("no backend to keep it on: {error}")),
                    preview,
                });
            }
        };
        let kept = self
            .keep_png(entry, png, hash, (width, height), &provenance)
            .await?;
        Ok(ResultImage {
            width,
            height,
            kept: Some(kept),
            not_kept: None,
            preview,
        })
    }

    async fn keep_png(
        &self,
        entry: &BackendEntry,
        png: Bytes,
        hash: u64,
        (width, height): (u32, u32),
        provenance: &Provenance,
    ) -> Result<KeptImage, EngineError> {
        let uploaded = self
            .upload_image(UploadRequest {
                filename: content_name(provenance.operation, &png),
                bytes: png.to_vec(),
                subfolder: RESULTS_SUBFOLDER.to_owned(),
                overwrite: true,
                mask_for: None,
                backend: Some(entry.name.clone()),
            })
            .await?;
        let file = FileRef {
            filename: uploaded.filename,
            subfolder: uploaded.subfolder,
            kind: "input".to_owned(),
        };
        let record = self
            .store
            .add_output(NewOutput {
                job_id: None,
                prompt_text: format!("{} of {}", provenance.operation, provenance.sources.join(", ")),
                parameters: serde_json::json!({
                    "operation": provenance.operation,
                    "arguments": provenance.parameters,
                    "sources": provenance.sources,
                }),
                model: None,
                seed: None,
                width: Some(width),
                height: Some(height),
                media_type: "image/png".to_owned(),
                file: FileReference {
                    backend_id: entry.name.clone(),
                    filename: file.filename.clone(),
                    subfolder: file.subfolder.clone(),
                    file_type: file.kind.clone(),
                },
                perceptual_hash: Some(hash),
                created_at_ms: comfy_store::now_ms(),
            })
            .await
            .map_err(library_error)?;
        Ok(KeptImage {
            output_id: record.id,
            backend: entry.name.clone(),
            url: entry.view_url(&file),
            node_value: uploaded.node_value,
            filename: file.filename,
            subfolder: file.subfolder,
            kind: file.kind,
        })
    }
}

impl Engine {
    /// A result as PNG bytes and its difference hash, encoded off the async workers.
    pub async fn encode_result(&self, pixels: ResultPixels) -> Result<(Vec<u8>, u64), EngineError> {
        self.compute(move || encode_png(pixels)).await
    }
}

/// `<operation>-<16 hex digits of SHA-256>.png`: named by content, the same result is one file
/// and uploading it again is harmless.
pub fn content_name(operation: &str, png: &[u8]) -> String {
    let digest = format!("{:x}", sha_of(png));
    format!("{operation}-{}.png", &digest[..16])
}

/// A result's pixels: a colour image or a mask.
#[derive(Debug)]
pub enum ResultPixels {
    Color(RgbaImage),
    Mask(GrayImage),
}

impl ResultPixels {
    pub fn dimensions(&self) -> (u32, u32) {
        match self {
            ResultPixels::Color(image) => image.dimensions(),
            ResultPixels::Mask(mask) => mask.dimensions(),
        }
    }
}

/// PNG bytes (RGB when every pixel is opaque, greyscale for a mask) and the difference hash.
fn encode_png(pixels: ResultPixels) -> Result<(Vec<u8>, u64), comfy_imaging::ImagingError> {
    let dynamic = match pixels {
        ResultPixels::Color(image) if image.pixels().all(|pixel| pixel.0[3] == 255) => {
            DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(image).into_rgb8())
        }
        ResultPixels::Color(image) => DynamicImage::ImageRgba8(image),
        ResultPixels::Mask(mask) => DynamicImage::ImageLuma8(mask),
    };
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            dynamic.as_bytes(),
            dynamic.width(),
            dynamic.height(),
            dynamic.color().into(),
        )
        .map_err(|error| {
            comfy_imaging::ImagingError::Invalid(format!("the result did not encode as PNG: {error}"))
        })?;
    Ok((bytes, comfy_imaging::compare::difference_hash(&dynamic)))
}

fn sha_of(bytes: &[u8]) -> ShaHex {
    use sha2::Digest as _;
    ShaHex(sha2::Sha256::digest(bytes).into())
}

/// A SHA-256 digest written as hexadecimal.
struct ShaHex([u8; 32]);

impl std::fmt::LowerHex for ShaHex {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|byte| write!(formatter, "{byte:02x}"))
    }
}
