//! Files on a backend: downloads, the previews a result carries, single outputs fetched by name,
//! and uploads into ComfyUI's input folder. Front ends get bytes and previews from here and never
//! speak HTTP to ComfyUI themselves.

use bytes::Bytes;
use comfy_api::{ClientError, FileRef, OutputFile, UploadKind};

use crate::audio::{self, AudioFacts};
use crate::gltf::ModelFacts;
use crate::media::{self, Preview};
use crate::video::VideoFacts;
use crate::{BackendEntry, Engine, EngineError};

/// Most files previewed inline in one result; the rest are links.
pub const MAXIMUM_PREVIEWS: usize = 4;

/// Largest file downloaded to make a preview from (image decodes have their own pixel cap).
pub const MAXIMUM_PREVIEW_SOURCE_BYTES: u64 = 64 * 1024 * 1024;

/// One output file fetched by name, with what a front end shows of it.
#[derive(Debug)]
pub struct FetchedOutput {
    pub backend: String,
    pub file: FileRef,
    pub media_type: &'static str,
    /// Its length; `None` when it was too large to fetch and ComfyUI did not say.
    pub size_bytes: Option<u64>,
    /// Where ComfyUI serves it.
    pub url: String,
    /// `None` for media this build does not preview, bytes that do not decode as their name
    /// says, or a file too large to fetch for a preview (`too_large`).
    pub preview: Option<Preview>,
    /// Set when the file is larger than [`MAXIMUM_PREVIEW_SOURCE_BYTES`]: it was not fetched.
    pub too_large: bool,
    /// For audio: what its samples say (the preview is its waveform).
    pub audio: Option<AudioFacts>,
    /// For an MP4 video: what its container says (the preview is a contact sheet of its frames).
    pub video: Option<VideoFacts>,
    /// For a glTF 3D model: what it holds (there is no preview).
    pub model: Option<ModelFacts>,
}

/// An image to store in ComfyUI's input folder.
#[derive(Debug)]
pub struct UploadRequest {
    pub bytes: Vec<u8>,
    pub filename: String,
    pub subfolder: String,
    pub overwrite: bool,
    /// Store as the mask of this already uploaded image ("subfolder/name" or "name").
    pub mask_for: Option<String>,
    pub backend: Option<String>,
}

/// Largest input fetched by URL.
pub const MAXIMUM_INPUT_BYTES: u64 = 256 * 1024 * 1024;

/// An input fetched from a URL, ready to upload.
#[derive(Debug)]
pub struct RemoteInput {
    pub bytes: Vec<u8>,
    /// The last path segment of the URL, when it has one.
    pub file_name: Option<String>,
}

/// Where an upload landed.
#[derive(Debug)]
pub struct Uploaded {
    pub backend: String,
    pub filename: String,
    pub subfolder: String,
    pub kind: String,
    /// `image`, `video` or `audio`, read from the bytes.
    pub media: &'static str,
    /// The value to put in the loader's input (LoadImage's `image`, LoadVideo's `file`...).
    pub node_value: String,
}

/// An audio file's facts and waveform, decoded off the async workers.
async fn audio_preview(bytes: Bytes, filename: &str) -> Option<(AudioFacts, Preview)> {
    let extension = filename
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase());
    media::off_the_workers(move || audio::preview(bytes, extension.as_deref()))
        .await
        .flatten()
}

/// A video's facts and contact sheet within `budget`, decoded off the async workers.
async fn video_preview(bytes: Bytes, budget: usize) -> Option<(VideoFacts, Preview)> {
    media::off_the_workers(move || media::video_preview(&bytes, budget))
        .await
        .flatten()
}

/// Whether a result's file of `media_type` gets a preview: images, audio, and the videos this
/// build decodes (H.264 in MP4); a WebM would be fetched and its budget share spent for nothing.
fn is_previewable(media_type: &str) -> bool {
    media_type.starts_with("image/") || media_type.starts_with("audio/") || media_type == "video/mp4"
}

impl BackendEntry {
    /// Where ComfyUI serves `file` (no request is made).
    pub fn view_url(&self, file: &FileRef) -> String {
        self.backend.client().view_url(file)
    }
}

/// A backend's file as a stream of chunks ([`Engine::stream_output`]).
pub struct OutputStream {
    /// From the file name, as for every output.
    pub media_type: &'static str,
    /// The length ComfyUI announced, when it did.
    pub length: Option<u64>,
    pub body: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, EngineError>> + Send>>,
}

impl Engine {
    /// The bytes of one file on `entry`, at most `limit` of them: a longer file fails with
    /// [`EngineError::TooLarge`] before it is read whole.
    pub async fn download(
        &self,
        entry: &BackendEntry,
        file: &FileRef,
        limit: u64,
    ) -> Result<Bytes, EngineError> {
        match entry.backend.client().view(file, None, limit).await {
            Ok(download) => Ok(download.bytes),
            Err(ClientError::TooLarge { size, limit, .. }) => Err(EngineError::TooLarge {
                what: format!("{} on {}", file.filename, entry.label()),
                size,
                limit,
                url: entry.view_url(file),
            }),
            Err(source) => Err(entry.error(source)),
        }
    }

    /// Previews of a result's first images, audio clips (a waveform) and MP4 videos (a contact
    /// sheet), sharing the configured byte budget. A file that cannot be fetched or decoded gets no
    /// preview (its link still goes out).
    pub async fn result_previews(&self, entry: &BackendEntry, outputs: &[OutputFile]) -> Vec<Preview> {
        let previewable: Vec<&OutputFile> = outputs
            .iter()
            .filter(|output| is_previewable(output.media_type()))
            .take(MAXIMUM_PREVIEWS)
            .collect();
        let mut previews = Vec::new();
        if previewable.is_empty() {
            return previews;
        }
        let per_file = self.config.preview_bytes / previewable.len();
        for output in previewable {
            match self
                .download(entry, &output.file, MAXIMUM_PREVIEW_SOURCE_BYTES)
                .await
            {
                Ok(bytes) => {
                    let mime_type = output.media_type();
                    let preview = if mime_type.starts_with("audio/") {
                        audio_preview(bytes, &output.file.filename)
                            .await
                            .map(|(_, preview)| preview)
                            .filter(|preview| preview.base64.len() <= per_file)
                    } else {
                        media::preview_off_the_workers(bytes, mime_type.to_owned(), per_file).await
                    };
                    previews.extend(preview);
                }
                Err(error) => {
                    tracing::warn!(%error, file = %output.file.filename, "cannot fetch output for a preview")
                }
            }
        }
        previews
    }

    /// One file by name, previewed within `budget` bytes (at most the configured budget).
    pub async fn fetch_output(
        &self,
        backend: Option<&str>,
        file: FileRef,
        budget: Option<usize>,
    ) -> Result<FetchedOutput, EngineError> {
        let entry = self.pick_backend(backend)?;
        let media_type = comfy_api::media_type_for(&file.filename);
        let url = entry.view_url(&file);
        let fetched = |size_bytes, preview, too_large| FetchedOutput {
            backend: entry.name.clone(),
            url: url.clone(),
            file: file.clone(),
            media_type,
            size_bytes,
            preview,
            too_large,
            audio: None,
            video: None,
            model: None,
        };
        let bytes = match self.download(entry, &file, MAXIMUM_PREVIEW_SOURCE_BYTES).await {
            Ok(bytes) => bytes,
            Err(EngineError::TooLarge { size, .. }) => return Ok(fetched(size, None, true)),
            Err(error) => return Err(error),
        };
        let limit = self.config.preview_bytes.max(1024);
        let budget = budget.unwrap_or(limit).clamp(1024, limit);
        let size_bytes = u64::try_from(bytes.len()).ok();
        if media_type.starts_with("audio/") {
            let (audio, preview) = audio_preview(bytes, &file.filename).await.unzip();
            let preview = preview.filter(|preview| preview.base64.len() <= budget);
            return Ok(FetchedOutput {
                audio,
                ..fetched(size_bytes, preview, false)
            });
        }
        if media_type.starts_with("video/") {
            let (video, preview) = video_preview(bytes, budget).await.unzip();
            return Ok(FetchedOutput {
                video,
                ..fetched(size_bytes, preview, false)
            });
        }
        if media_type.starts_with("model/gltf") {
            let model = media::off_the_workers(move || crate::gltf::facts(&bytes))
                .await
                .flatten();
            return Ok(FetchedOutput {
                model,
                ..fetched(size_bytes, None, false)
            });
        }
        let preview = media::preview_off_the_workers(bytes, media_type.to_owned(), budget).await;
        Ok(fetched(size_bytes, preview, false))
    }

    /// A file on `backend` passed on as it arrives, whatever its size, never held whole: what the
    /// HTTP transport's download route serves for files too large to read as a resource.
    pub async fn stream_output(&self, backend: &str, file: &FileRef) -> Result<OutputStream, EngineError> {
        let entry = self.pick_backend(Some(backend))?;
        let stream = entry
            .backend
            .client()
            .view_stream(file)
            .await
            .map_err(|source| entry.error(source))?;
        let label = entry.label();
        let body = futures_util::StreamExt::map(stream.body, move |chunk| {
            chunk.map_err(|source| EngineError::Backend {
                backend: label.clone(),
                source,
            })
        });
        Ok(OutputStream {
            media_type: comfy_api::media_type_for(&file.filename),
            length: stream.length,
            body: Box::pin(body),
        })
    }

    /// The whole file behind an output resource, with its media type; a file over the
    /// configured resource size is refused (with its size and URL) before it is read whole.
    pub async fn read_output(
        &self,
        backend: &str,
        file: &FileRef,
    ) -> Result<(Bytes, &'static str), EngineError> {
        let entry = self.pick_backend(Some(backend))?;
        let bytes = self.download(entry, file, self.config.resource_bytes).await?;
        Ok((bytes, comfy_api::media_type_for(&file.filename)))
    }

    /// The outputs of each backend's most recent jobs (at most `jobs_per_backend` jobs each); a
    /// backend that does not answer is left out.
    pub async fn recent_outputs(&self, jobs_per_backend: usize) -> Vec<(&BackendEntry, OutputFile)> {
        let mut found = Vec::new();
        for entry in self.backends() {
            let Ok(jobs) = entry.backend.jobs().await else {
                continue;
            };
            for job in jobs.into_iter().take(jobs_per_backend) {
                found.extend(job.outputs.into_iter().map(|output| (entry, output)));
            }
        }
        found
    }

    /// Fetches an input named by URL, guarded: only public addresses unless the operator allows
    /// private ones, at most [`MAXIMUM_INPUT_BYTES`].
    pub async fn fetch_input(&self, url: &str) -> Result<RemoteInput, EngineError> {
        let timeouts = comfy_api::Timeouts::default();
        let fetched = comfy_api::remote::fetch_input(
            url,
            MAXIMUM_INPUT_BYTES,
            self.config.allow_private_urls,
            &timeouts,
        )
        .await
        .map_err(|error| EngineError::bad_input(error.to_string()))?;
        Ok(RemoteInput {
            bytes: fetched.bytes,
            file_name: fetched.file_name,
        })
    }

    /// Stores an image (or a mask), a video or an audio clip in the backend's input folder. Its node definitions are
    /// forgotten afterwards: LoadImage's choices list that folder.
    pub async fn upload_image(&self, request: UploadRequest) -> Result<Uploaded, EngineError> {
        if request.bytes.is_empty() {
            return Err(EngineError::bad_input("the image is empty"));
        }
        let Some(media) = media::input_kind(&request.bytes) else {
            return Err(EngineError::bad_input(
                "the data is not an image, video or audio file this server recognises (PNG, JPEG, WebP, GIF; MP4, WebM, MOV, AVI; FLAC, WAV, Ogg, MP3, M4A)",
            ));
        };
        if request.mask_for.is_some() && media != "image" {
            return Err(EngineError::bad_input(format!(
                "a mask must be an image; this is {media}"
            )));
        }
        let entry = self.pick_backend(request.backend.as_deref())?;
        let client = entry.backend.client();
        let uploaded = match &request.mask_for {
            None => {
                client
                    .upload_image(
                        request.bytes,
                        &request.filename,
                        &request.subfolder,
                        UploadKind::Input,
                        request.overwrite,
                    )
                    .await
            }
            Some(original) => {
                let (subfolder, name) = original.rsplit_once('/').unwrap_or(("", original.as_str()));
                let original = FileRef {
                    filename: name.to_owned(),
                    subfolder: subfolder.to_owned(),
                    kind: "input".to_owned(),
                };
                client
                    .upload_mask(request.bytes, &request.filename, &original, request.overwrite)
                    .await
            }
        }
        .map_err(|source| entry.error(source))?;
        entry.forget_object_info();
        Ok(Uploaded {
            media,
            backend: entry.name.clone(),
            node_value: uploaded.node_value(),
            filename: uploaded.name,
            subfolder: uploaded.subfolder,
            kind: uploaded.kind,
        })
    }
}
