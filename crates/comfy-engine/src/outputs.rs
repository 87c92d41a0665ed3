//! Files on a backend: downloads, the previews a result carries, single outputs fetched by name,
//! and uploads into ComfyUI's input folder. Front ends get bytes and previews from here and never
//! speak HTTP to ComfyUI themselves.

use bytes::Bytes;
use comfy_api::{FileRef, OutputFile, UploadKind};

use crate::media::{self, Preview};
use crate::{BackendEntry, Engine, EngineError};

/// Most images previewed inline in one result; the rest are links.
pub const MAXIMUM_PREVIEWS: usize = 4;

/// One output file fetched by name, with what a front end shows of it.
#[derive(Debug)]
pub struct FetchedOutput {
    pub backend: String,
    pub file: FileRef,
    pub media_type: &'static str,
    pub size_bytes: usize,
    /// Where ComfyUI serves it.
    pub url: String,
    /// `None` for media this build does not preview, or bytes that do not decode as their name says.
    pub preview: Option<Preview>,
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

/// Where an upload landed.
#[derive(Debug)]
pub struct Uploaded {
    pub backend: String,
    pub filename: String,
    pub subfolder: String,
    pub kind: String,
    /// The value to put in LoadImage's `image` input.
    pub node_value: String,
}

impl BackendEntry {
    /// Where ComfyUI serves `file` (no request is made).
    pub fn view_url(&self, file: &FileRef) -> String {
        self.backend.client().view_url(file)
    }
}

impl Engine {
    /// The bytes of one file on `entry`.
    pub async fn download(&self, entry: &BackendEntry, file: &FileRef) -> Result<Bytes, EngineError> {
        let download = entry
            .backend
            .client()
            .view(file, None)
            .await
            .map_err(|source| entry.error(source))?;
        Ok(download.bytes)
    }

    /// Previews of a result's first images, sharing the configured byte budget. A file that
    /// cannot be fetched or decoded gets no preview (its link still goes out).
    pub async fn result_previews(&self, entry: &BackendEntry, outputs: &[OutputFile]) -> Vec<Preview> {
        let images: Vec<&OutputFile> = outputs
            .iter()
            .filter(|output| output.media_type().starts_with("image/"))
            .take(MAXIMUM_PREVIEWS)
            .collect();
        let mut previews = Vec::new();
        if images.is_empty() {
            return previews;
        }
        let per_image = self.config.preview_bytes / images.len();
        for output in images {
            match self.download(entry, &output.file).await {
                Ok(bytes) => {
                    let mime_type = output.media_type().to_owned();
                    if let Some(preview) = media::preview_off_the_workers(bytes, mime_type, per_image).await {
                        previews.push(preview);
                    }
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
        let bytes = self.download(entry, &file).await?;
        let media_type = comfy_api::media_type_for(&file.filename);
        let limit = self.config.preview_bytes.max(1024);
        let budget = budget.unwrap_or(limit).clamp(1024, limit);
        let size_bytes = bytes.len();
        let preview = media::preview_off_the_workers(bytes, media_type.to_owned(), budget).await;
        Ok(FetchedOutput {
            backend: entry.name.clone(),
            url: entry.view_url(&file),
            file,
            media_type,
            size_bytes,
            preview,
        })
    }

    /// The whole file behind an output resource, with its media type.
    pub async fn read_output(
        &self,
        backend: &str,
        file: &FileRef,
    ) -> Result<(Bytes, &'static str), EngineError> {
        let entry = self.pick_backend(Some(backend))?;
        let bytes = self.download(entry, file).await?;
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

    /// Stores an image (or a mask) in the backend's input folder. Its node definitions are
    /// forgotten afterwards: LoadImage's choices list that folder.
    pub async fn upload_image(&self, request: UploadRequest) -> Result<Uploaded, EngineError> {
        if request.bytes.is_empty() {
            return Err(EngineError::bad_input("the image is empty"));
        }
        if image::guess_format(&request.bytes).is_err() {
            return Err(EngineError::bad_input(
                "the data is not an image this server recognises (PNG, JPEG, WebP, GIF...)",
            ));
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
            backend: entry.name.clone(),
            node_value: uploaded.node_value(),
            filename: uploaded.name,
            subfolder: uploaded.subfolder,
            kind: uploaded.kind,
        })
    }
}
