//! Inline previews: an output image re-encoded small enough for an MCP client's limits (Claude
//! Desktop takes 1 MB per result), always alongside a link to the full file.
//!
//! Decoding is CPU-heavy (an 11000 x 11000 PNG takes seconds) and memory-heavy, so every decode
//! has allocation and size limits, and async callers run it through [`off_the_workers`]: on the
//! blocking pool, a bounded number at a time, never on the async workers that answer everyone else.

use base64::Engine as _;
use image::ImageEncoder;
use image::codecs::jpeg::JpegEncoder;

use crate::video::VideoFacts;

/// An image ready to inline in a tool result.
#[derive(Debug, Clone)]
pub struct Preview {
    pub base64: String,
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
    /// False when the original file is sent as it is.
    pub downscaled: bool,
    /// For a contact sheet: how many frames the animation has (as decoded) or the video has (as
    /// its container says).
    pub frames: Option<usize>,
}

/// Decodes running at once; more wait their turn (the machine this targets has two cores).
static DECODERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Largest side of an image this server decodes.
const MAXIMUM_DECODED_SIDE: u32 = 16_384;
/// Most memory one decode may allocate.
const MAXIMUM_DECODE_ALLOCATION: u64 = 512 * 1024 * 1024;

/// Runs CPU-heavy `work` on the blocking pool, at most [`DECODERS`] at a time; `None` when the
/// runtime is shutting down or the work panicked.
pub async fn off_the_workers<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _permit = DECODERS.acquire().await.ok()?;
    tokio::task::spawn_blocking(work).await.ok()
}

/// Decodes an image within the size and allocation limits; `None` when it does not decode.
pub fn decode(bytes: &[u8]) -> Option<image::DynamicImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAXIMUM_DECODED_SIDE);
    limits.max_image_height = Some(MAXIMUM_DECODED_SIDE);
    limits.max_alloc = Some(MAXIMUM_DECODE_ALLOCATION);
    reader.limits(limits);
    reader.decode().ok()
}

/// What kind of media an input file holds, read from its first bytes (never from its name):
/// `image` (anything the image decoders know), `video` (MP4/MOV, WebM/MKV, AVI), `audio`
/// (FLAC, WAV, Ogg/Opus, MP3, M4A); `None` for anything else.
pub fn input_kind(bytes: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Some("audio");
    }
    if at(0, b"RIFF") && at(8, b"AVI ") {
        return Some("video");
    }
    if at(4, b"ftyp") {
        let is_audio = at(8, b"M4A ") || at(8, b"M4B ");
        return Some(if is_audio { "audio" } else { "video" });
    }
    if at(0, &[0x1a, 0x45, 0xdf, 0xa3]) {
        return Some("video");
    }
    if at(0, b"fLaC") || at(0, b"OggS") || at(0, b"ID3") {
        return Some("audio");
    }
    // An MPEG audio frame: eleven set sync bits.
    if bytes.len() >= 2
        && bytes[0] == 0xff
        && (bytes[1] & 0xe0) == 0xe0
        && image::guess_format(bytes).is_err()
    {
        return Some("audio");
    }
    image::guess_format(bytes).is_ok().then_some("image")
}

/// The format `bytes` start with, as a MIME type, when it is one a client can show.
fn sniffed_mime_type(bytes: &[u8]) -> Option<&'static str> {
    match image::guess_format(bytes).ok()? {
        image::ImageFormat::Png => Some("image/png"),
        image::ImageFormat::Jpeg => Some("image/jpeg"),
        image::ImageFormat::WebP => Some("image/webp"),
        image::ImageFormat::Gif => Some("image/gif"),
        _ => None,
    }
}

/// [`preview`] off the async workers.
pub async fn preview_off_the_workers(
    bytes: bytes::Bytes,
    mime_type: String,
    budget: usize,
) -> Option<Preview> {
    off_the_workers(move || preview(&bytes, &mime_type, budget))
        .await
        .flatten()
}

/// [`fingerprint`] off the async workers.
pub async fn fingerprint_off_the_workers(bytes: bytes::Bytes) -> Option<Fingerprint> {
    off_the_workers(move || fingerprint(&bytes)).await.flatten()
}

fn base64_length(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// A preview of at most `budget` base64 bytes, or `None` for media that is not an image this
/// build can decode. The content decides, not the file name: bytes that are not the image their
/// name says are never passed on labelled as one. An animated GIF or WebP that does not fit as it
/// is, and an MP4 (H.264) video, become a contact sheet of their frames.
pub fn preview(bytes: &[u8], mime_type: &str, budget: usize) -> Option<Preview> {
    let sniffed = sniffed_mime_type(bytes);
    if sniffed.is_some_and(|sniffed| sniffed == mime_type) && base64_length(bytes.len()) <= budget {
        let dimensions = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .ok()
            .and_then(|reader| reader.into_dimensions().ok())
            .filter(|&(width, height)| width > 0 && height > 0);
        if let Some((width, height)) = dimensions {
            return Some(Preview {
                base64: base64::engine::general_purpose::STANDARD.encode(bytes),
                mime_type: mime_type.to_owned(),
                width,
                height,
                downscaled: false,
                frames: None,
            });
        }
    }
    if let Some((sheet, frames)) = crate::animation::contact_sheet(bytes) {
        return within_budget(&sheet, budget).map(|preview| Preview {
            frames: Some(frames),
            ..preview
        });
    }
    if let Some((_, preview)) = video_preview(bytes, budget) {
        return Some(preview);
    }
    within_budget(&decode(bytes)?, budget)
}

/// A contact sheet of an MP4's H.264 frames within `budget`, with what the video is; `None` when
/// the bytes are not such a video (they are sniffed, whatever the file is called).
pub fn video_preview(bytes: &[u8], budget: usize) -> Option<(VideoFacts, Preview)> {
    let (sheet, facts) = crate::video::contact_sheet(bytes)?;
    let preview = within_budget(&sheet, budget)?;
    let frames = Some(facts.frames);
    Some((facts, Preview { frames, ..preview }))
}

/// `decoded` as a JPEG of at most `budget` base64 bytes, shrunk until it fits (64 px at least).
fn within_budget(decoded: &image::DynamicImage, budget: usize) -> Option<Preview> {
    let mut longest = decoded.width().max(decoded.height()).min(1536);
    loop {
        let scaled = decoded.thumbnail(longest, longest).to_rgb8();
        let mut encoded = Vec::new();
        JpegEncoder::new_with_quality(&mut encoded, 82)
            .write_image(
                scaled.as_raw(),
                scaled.width(),
                scaled.height(),
                image::ExtendedColorType::Rgb8,
            )
            .ok()?;
        if base64_length(encoded.len()) <= budget || longest <= 64 {
            return Some(Preview {
                base64: base64::engine::general_purpose::STANDARD.encode(&encoded),
                mime_type: "image/jpeg".to_owned(),
                width: scaled.width(),
                height: scaled.height(),
                downscaled: true,
                frames: None,
            })
            .filter(|preview| preview.base64.len() <= budget);
        }
        longest = (longest as f64 * 0.7) as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::png::PngEncoder;

    #[test]
    fn inputs_are_told_apart_by_their_first_bytes() {
        let with = |head: &[u8], tail_at: usize, tail: &[u8]| {
            let mut bytes = head.to_vec();
            bytes.resize(tail_at, 0);
            bytes.extend_from_slice(tail);
            bytes.resize(64, 0);
            bytes
        };
        assert_eq!(input_kind(&noisy_png(4)), Some("image"));
        assert_eq!(input_kind(&with(b"\0\0\0\x20ftyp", 8, b"isom")), Some("video"));
        assert_eq!(input_kind(&with(b"\0\0\0\x20ftyp", 8, b"M4A ")), Some("audio"));
        assert_eq!(
            input_kind(&with(&[0x1a, 0x45, 0xdf, 0xa3], 4, b"")),
            Some("video")
        );
        assert_eq!(input_kind(&with(b"RIFF", 8, b"WAVE")), Some("audio"));
        assert_eq!(input_kind(&with(b"RIFF", 8, b"WEBP")), Some("image"));
        assert_eq!(input_kind(&with(b"fLaC", 4, b"")), Some("audio"));
        assert_eq!(input_kind(&with(b"OggS", 4, b"")), Some("audio"));
        assert_eq!(input_kind(&with(b"ID3", 3, b"")), Some("audio"));
        assert_eq!(input_kind(&with(&[0xff, 0xfb, 0x90], 3, b"")), Some("audio"));
        assert_eq!(input_kind(b"<html><body>not found</body></html>"), None);
        assert_eq!(input_kind(b""), None);
    }

    fn noisy_png(side: u32) -> Vec<u8> {
        let mut state = 12345u32;
        let pixels: Vec<u8> = (0..side * side * 3)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (state >> 16) as u8
            })
            .collect();
        let mut bytes = Vec::new();
        PngEncoder::new(&mut bytes)
            .write_image(&pixels, side, side, image::ExtendedColorType::Rgb8)
            .unwrap();
        bytes
    }

    #[test]
    fn small_images_pass_through() {
        let png = noisy_png(64);
        let preview = preview(&png, "image/png", 700_000).unwrap();
        assert!(!preview.downscaled);
        assert_eq!((preview.width, preview.height), (64, 64));
        assert_eq!(preview.mime_type, "image/png");
    }

    #[test]
    fn large_images_fit_the_budget() {
        let png = noisy_png(1024);
        assert!(base64_length(png.len()) > 200_000);
        let preview = preview(&png, "image/png", 200_000).unwrap();
        assert!(preview.downscaled);
        assert!(preview.base64.len() <= 200_000);
        assert!(preview.width < 1024);
    }

    #[test]
    fn undecodable_media_has_no_preview() {
        assert!(preview(b"not an image", "video/mp4", 1_000).is_none());
    }

    #[test]
    fn bytes_that_are_not_the_named_image_have_no_preview() {
        // A text file saved as .png, and a truncated PNG: neither is passed on as image/png.
        assert!(preview(b"{\"not\": \"a png\"}", "image/png", 700_000).is_none());
        let png = noisy_png(16);
        assert!(preview(&png[..20], "image/png", 700_000).is_none());
        // A JPEG named .png is re-encoded and labelled for what it is.
        let jpeg = preview(&noisy_png(1024), "image/png", 100_000).unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&jpeg.base64)
            .unwrap();
        let relabelled = preview(&decoded, "image/png", 700_000).unwrap();
        assert_eq!(relabelled.mime_type, "image/jpeg");
    }

    /// On a runtime with a single worker, a decode that ran on the worker would hold every other
    /// task until it ended; off the workers, a short timer set after the decode started fires
    /// first. An order, not a time limit.
    #[test]
    fn decoding_leaves_the_async_workers_free() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let png = noisy_png(2048);
        runtime.block_on(async {
            let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let decode_order = order.clone();
            let decode = async move {
                let preview = preview_off_the_workers(png.into(), "image/png".to_owned(), 20_000).await;
                decode_order.lock().unwrap().push("decode");
                preview
            };
            let timer_order = order.clone();
            let timer = async move {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                timer_order.lock().unwrap().push("timer");
            };
            let (preview, ()) = tokio::join!(decode, timer);
            assert!(preview.is_some());
            assert_eq!(*order.lock().unwrap(), ["timer", "decode"]);
        });
    }

    #[test]
    fn oversized_images_are_refused_before_decoding() {
        // A PNG header claiming 100000 x 100000 pixels: refused by the limits, not allocated.
        let mut png = noisy_png(8);
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(decode(&png).is_none());
        assert!(fingerprint(&png).is_none());
    }
}

/// Size and perceptual hash of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub width: u32,
    pub height: u32,
    /// Difference hash: 64 bits comparing neighbouring pixels of a 9x8 greyscale thumbnail, so
    /// resized or recompressed copies land within a few bits of each other.
    pub hash: u64,
}

/// The fingerprint of an encoded image, or `None` when it does not decode.
pub fn fingerprint(bytes: &[u8]) -> Option<Fingerprint> {
    let decoded = decode(bytes)?;
    let hash = comfy_imaging::compare::difference_hash(&decoded);
    Some(Fingerprint {
        width: decoded.width(),
        height: decoded.height(),
        hash,
    })
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;
    use image::codecs::png::PngEncoder;

    fn gradient(side: u32, flip: bool) -> Vec<u8> {
        let pixels: Vec<u8> = (0..side * side)
            .map(|index| {
                let column = index % side;
                let value = (column * 255 / side) as u8;
                if flip { 255 - value } else { value }
            })
            .collect();
        let mut bytes = Vec::new();
        PngEncoder::new(&mut bytes)
            .write_image(&pixels, side, side, image::ExtendedColorType::L8)
            .unwrap();
        bytes
    }

    #[test]
    fn resized_copies_hash_alike_and_opposites_differ() {
        let large = fingerprint(&gradient(256, false)).unwrap();
        let small = fingerprint(&gradient(64, false)).unwrap();
        let flipped = fingerprint(&gradient(256, true)).unwrap();
        assert_eq!((large.width, large.height), (256, 256));
        assert!((large.hash ^ small.hash).count_ones() <= 4);
        assert!((large.hash ^ flipped.hash).count_ones() >= 32);
        assert!(fingerprint(b"nope").is_none());
    }
}
