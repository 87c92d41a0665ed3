//! Inline previews: an output image re-encoded small enough for an MCP client's limits (Claude
//! Desktop takes 1 MB per result), always alongside a link to the full file.

use base64::Engine as _;
use image::ImageEncoder;
use image::codecs::jpeg::JpegEncoder;

/// An image ready to inline in a tool result.
#[derive(Debug, Clone)]
pub struct Preview {
    pub base64: String,
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
    /// False when the original file is sent as it is.
    pub downscaled: bool,
}

fn base64_length(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// A preview of at most `budget` base64 bytes, or `None` for media that is not a still image this
/// build can decode.
pub fn preview(bytes: &[u8], mime_type: &str, budget: usize) -> Option<Preview> {
    let passable = matches!(mime_type, "image/png" | "image/jpeg" | "image/webp" | "image/gif");
    if passable && base64_length(bytes.len()) <= budget {
        let (width, height) = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .ok()
            .and_then(|reader| reader.into_dimensions().ok())
            .unwrap_or((0, 0));
        return Some(Preview {
            base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            mime_type: mime_type.to_owned(),
            width,
            height,
            downscaled: false,
        });
    }
    let decoded = image::load_from_memory(bytes).ok()?;
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
    let decoded = image::load_from_memory(bytes).ok()?;
    let small = decoded
        .resize_exact(9, 8, image::imageops::FilterType::Triangle)
        .to_luma8();
    let mut hash = 0u64;
    for row in 0..8 {
        for column in 0..8 {
            let left = small.get_pixel(column, row)[0];
            let right = small.get_pixel(column + 1, row)[0];
            hash = (hash << 1) | u64::from(left > right);
        }
    }
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
