//! Pixel operations and measures, pure: no IO, no async, no backend. Images come in decoded
//! (`image::RgbaImage`, masks as `image::GrayImage`, white = selected) and go out the same way;
//! decoding, encoding and where files live are the engine's business.
//!
//! - [`mask`]: masks from alpha, colour or luminance thresholds and shapes, combined, grown or
//!   shrunk, feathered, inverted.
//! - [`blend`]: one image over another with the W3C compositing blend modes, an opacity and a mask.
//! - [`color`]: white balance, histogram matching, levels, brightness, contrast, saturation.
//! - [`geometry`]: crop, rotate, flip, resize, pad.
//! - [`compare`]: SSIM, PSNR, perceptual-hash and histogram distances, a difference heatmap.
//! - [`sheet`]: labelled grids of cells, text in an 8 x 8 bitmap font.
//! - [`analyze`]: exposure, contrast, colour, sharpness, palette and rule-of-thirds statistics.
//!
//! Every operation that makes an image checks its size against [`MAXIMUM_SIDE`] and
//! [`MAXIMUM_PIXELS`] first, so no argument can ask for an allocation past them.

pub mod analyze;
pub mod blend;
pub mod color;
pub mod compare;
pub mod geometry;
pub mod mask;
pub mod sheet;

mod planes;

pub use image::{GrayImage, RgbaImage};

/// Largest side of an image an operation makes.
pub const MAXIMUM_SIDE: u32 = 16_384;
/// Most pixels of an image an operation makes (64 megapixels: 256 MiB as RGBA).
pub const MAXIMUM_PIXELS: u64 = 64 * 1024 * 1024;

/// Why an operation refused its arguments.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImagingError {
    /// An argument is out of its range or contradicts another.
    #[error("{0}")]
    Invalid(String),
    /// The image asked for would pass [`MAXIMUM_SIDE`] or [`MAXIMUM_PIXELS`].
    #[error(
        "a {width} x {height} image is over the limit of {MAXIMUM_SIDE} pixels a side and {MAXIMUM_PIXELS} pixels in all"
    )]
    TooLarge { width: u64, height: u64 },
    /// Two images that must have one size do not.
    #[error("{what}: the images must be the same size; one is {first:?}, the other {second:?}")]
    SizeMismatch {
        what: &'static str,
        first: (u32, u32),
        second: (u32, u32),
    },
}

pub(crate) fn invalid(message: impl Into<String>) -> ImagingError {
    ImagingError::Invalid(message.into())
}

/// Checks that a `width` x `height` image may be made (and is not empty).
pub fn check_size(width: u64, height: u64) -> Result<(u32, u32), ImagingError> {
    if width == 0 || height == 0 {
        return Err(invalid(format!("a {width} x {height} image has no pixels")));
    }
    if width > u64::from(MAXIMUM_SIDE)
        || height > u64::from(MAXIMUM_SIDE)
        || width.saturating_mul(height) > MAXIMUM_PIXELS
    {
        return Err(ImagingError::TooLarge { width, height });
    }
    // Both are at most MAXIMUM_SIDE here, so they fit.
    Ok((width as u32, height as u32))
}

/// An 8-bit colour with alpha, written `#rrggbb`, `#rrggbbaa` or `#rgb` (the `#` optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color(pub [u8; 4]);

impl Color {
    pub const BLACK: Color = Color([0, 0, 0, 255]);
    pub const TRANSPARENT: Color = Color([0, 0, 0, 0]);

    /// Parses the hexadecimal forms above, or one of a few names (black, white, gray, red,
    /// green, blue, transparent).
    pub fn parse(text: &str) -> Result<Color, ImagingError> {
        let trimmed = text.trim();
        let named = match trimmed.to_ascii_lowercase().as_str() {
            "black" => Some([0, 0, 0, 255]),
            "white" => Some([255, 255, 255, 255]),
            "gray" | "grey" => Some([128, 128, 128, 255]),
            "red" => Some([255, 0, 0, 255]),
            "green" => Some([0, 255, 0, 255]),
            "blue" => Some([0, 0, 255, 255]),
            "transparent" => Some([0, 0, 0, 0]),
            _ => None,
        };
        if let Some(channels) = named {
            return Ok(Color(channels));
        }
        let digits = trimmed.strip_prefix('#').unwrap_or(trimmed);
        let wrong = || {
            invalid(format!(
                "{text:?} is not a colour: write #rrggbb, #rrggbbaa or #rgb (or black, white, gray, red, green, blue, transparent)"
            ))
        };
        if !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(wrong());
        }
        let pair = |index: usize| u8::from_str_radix(&digits[index..index + 2], 16).map_err(|_| wrong());
        match digits.len() {
            3 => {
                let single = |index: usize| {
                    u8::from_str_radix(&digits[index..=index], 16)
                        .map(|value| value * 17)
                        .map_err(|_| wrong())
                };
                Ok(Color([single(0)?, single(1)?, single(2)?, 255]))
            }
            6 => Ok(Color([pair(0)?, pair(2)?, pair(4)?, 255])),
            8 => Ok(Color([pair(0)?, pair(2)?, pair(4)?, pair(6)?])),
            _ => Err(wrong()),
        }
    }

    /// `#rrggbb` (and `aa` when not opaque).
    pub fn hex(self) -> String {
        let [red, green, blue, alpha] = self.0;
        if alpha == 255 {
            format!("#{red:02x}{green:02x}{blue:02x}")
        } else {
            format!("#{red:02x}{green:02x}{blue:02x}{alpha:02x}")
        }
    }
}

/// A value in 0..=1 as a channel byte, rounded.
pub(crate) fn to_byte(value: f32) -> u8 {
    (value.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Checks that a number is finite and within `range`, naming it otherwise.
pub(crate) fn check_range(
    what: &str,
    value: f32,
    range: std::ops::RangeInclusive<f32>,
) -> Result<f32, ImagingError> {
    if value.is_finite() && range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(format!(
            "{what} must be between {} and {}; got {value}",
            range.start(),
            range.end()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_in_every_written_form() {
        assert_eq!(Color::parse("#ff8000").unwrap(), Color([255, 128, 0, 255]));
        assert_eq!(Color::parse("ff800080").unwrap(), Color([255, 128, 0, 128]));
        assert_eq!(Color::parse("#f80").unwrap(), Color([255, 136, 0, 255]));
        assert_eq!(Color::parse(" White ").unwrap(), Color([255, 255, 255, 255]));
        assert_eq!(Color([1, 2, 3, 255]).hex(), "#010203");
        for wrong in ["", "#12345", "#gggggg", "#ééé", "blurple"] {
            assert!(Color::parse(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn sizes_are_bounded_before_anything_is_allocated() {
        assert_eq!(check_size(10, 20).unwrap(), (10, 20));
        assert!(matches!(check_size(0, 5), Err(ImagingError::Invalid(_))));
        assert!(matches!(
            check_size(20_000, 2),
            Err(ImagingError::TooLarge { .. })
        ));
        assert!(matches!(
            check_size(16_384, 16_384),
            Err(ImagingError::TooLarge { .. })
        ));
        assert!(check_range("opacity", f32::NAN, 0.0..=1.0).is_err());
    }
}
