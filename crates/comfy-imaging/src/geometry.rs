//! Crop, rotate, flip, resize and pad, each checked against the image and the size limits
//! before any pixel is allocated. Padding also gives the mask of what it added, which is what
//! outpainting repaints.

use image::imageops::{self, FilterType};
use image::{GrayImage, Luma, Rgba, RgbaImage};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Color, ImagingError, check_size, invalid};

/// A rectangle of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// How a resize treats a target whose shape differs from the image's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    // Exactly the size asked for, stretched if need be.
    Exact,
    // As large as fits inside the size asked for, shape kept (the default).
    #[default]
    Contain,
    // Fills the size asked for, shape kept, the overflow cropped evenly.
    Cover,
}

/// The resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    Nearest,
    Bilinear,
    Bicubic,
    // Sharpest, slowest (the default).
    #[default]
    Lanczos,
}

impl Filter {
    fn image_filter(self) -> FilterType {
        match self {
            Filter::Nearest => FilterType::Nearest,
            Filter::Bilinear => FilterType::Triangle,
            Filter::Bicubic => FilterType::CatmullRom,
            Filter::Lanczos => FilterType::Lanczos3,
        }
    }
}

/// A resize: `width`, `height` or both (one alone keeps the shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default)]
    pub fit: Fit,
    #[serde(default)]
    pub filter: Filter,
}

/// Pixels added on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Padding {
    #[serde(default)]
    pub left: u32,
    #[serde(default)]
    pub top: u32,
    #[serde(default)]
    pub right: u32,
    #[serde(default)]
    pub bottom: u32,
}

/// A quarter turn count, clockwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Quarter,
    Half,
    ThreeQuarters,
}

impl Rotation {
    /// 90, 180 or 270 (degrees clockwise); 0 or 360 is none.
    pub fn from_degrees(degrees: i64) -> Result<Option<Rotation>, ImagingError> {
        match degrees.rem_euclid(360) {
            0 => Ok(None),
            90 => Ok(Some(Rotation::Quarter)),
            180 => Ok(Some(Rotation::Half)),
            270 => Ok(Some(Rotation::ThreeQuarters)),
            _ => Err(invalid(format!(
                "rotate takes multiples of 90 degrees; got {degrees}"
            ))),
        }
    }
}

/// A mirror image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Flip {
    // Left and right swap.
    Horizontal,
    // Top and bottom swap.
    Vertical,
}

pub fn crop(image: &RgbaImage, crop: Crop) -> Result<RgbaImage, ImagingError> {
    let (width, height) = image.dimensions();
    let inside = crop.width > 0
        && crop.height > 0
        && u64::from(crop.x) + u64::from(crop.width) <= u64::from(width)
        && u64::from(crop.y) + u64::from(crop.height) <= u64::from(height);
    if !inside {
        return Err(invalid(format!(
            "the crop {} x {} at ({}, {}) is not inside the {width} x {height} image",
            crop.width, crop.height, crop.x, crop.y
        )));
    }
    Ok(imageops::crop_imm(image, crop.x, crop.y, crop.width, crop.height).to_image())
}

pub fn rotate(image: &RgbaImage, rotation: Rotation) -> RgbaImage {
    match rotation {
        Rotation::Quarter => imageops::rotate90(image),
        Rotation::Half => imageops::rotate180(image),
        Rotation::ThreeQuarters => imageops::rotate270(image),
    }
}

pub fn flip(image: &RgbaImage, flip: Flip) -> RgbaImage {
    match flip {
        Flip::Horizontal => imageops::flip_horizontal(image),
        Flip::Vertical => imageops::flip_vertical(image),
    }
}

/// A width and height before they are checked against the limits.
type Size = (u64, u64);

/// The size a resize makes, before and after a cover crop: (scaled width, height), (final).
fn resized_size(from: (u32, u32), resize: Resize) -> Result<(Size, Size), ImagingError> {
    let (width, height) = (f64::from(from.0), f64::from(from.1));
    let scaled = |value: f64| value.round().max(1.0) as u64;
    match (resize.width, resize.height) {
        (None, None) => Err(invalid("resize needs width, height or both")),
        (Some(0), _) | (_, Some(0)) => Err(invalid("resize width and height must be positive")),
        (Some(target), None) => {
            let size = (u64::from(target), scaled(height * f64::from(target) / width));
            Ok((size, size))
        }
        (None, Some(target)) => {
            let size = (scaled(width * f64::from(target) / height), u64::from(target));
            Ok((size, size))
        }
        (Some(target_width), Some(target_height)) => {
            let target = (u64::from(target_width), u64::from(target_height));
            let across = f64::from(target_width) / width;
            let down = f64::from(target_height) / height;
            Ok(match resize.fit {
                Fit::Exact => (target, target),
                Fit::Contain => {
                    let factor = across.min(down);
                    let size = (scaled(width * factor), scaled(height * factor));
                    (size, size)
                }
                Fit::Cover => {
                    let factor = across.max(down);
                    ((scaled(width * factor), scaled(height * factor)), target)
                }
            })
        }
    }
}

pub fn resize(image: &RgbaImage, resize: Resize) -> Result<RgbaImage, ImagingError> {
    let ((scaled_width, scaled_height), (final_width, final_height)) =
        resized_size(image.dimensions(), resize)?;
    let (scaled_width, scaled_height) = check_size(scaled_width, scaled_height)?;
    let (final_width, final_height) = check_size(final_width, final_height)?;
    let scaled = imageops::resize(image, scaled_width, scaled_height, resize.filter.image_filter());
    if (scaled_width, scaled_height) == (final_width, final_height) {
        return Ok(scaled);
    }
    let x = (scaled_width - final_width.min(scaled_width)) / 2;
    let y = (scaled_height - final_height.min(scaled_height)) / 2;
    Ok(imageops::crop_imm(&scaled, x, y, final_width, final_height).to_image())
}

/// `image` with `padding` of `color` around it, and the mask of the added border (white), which
/// an outpainting graph repaints.
pub fn pad(
    image: &RgbaImage,
    padding: Padding,
    color: Color,
) -> Result<(RgbaImage, GrayImage), ImagingError> {
    let width = u64::from(image.width()) + u64::from(padding.left) + u64::from(padding.right);
    let height = u64::from(image.height()) + u64::from(padding.top) + u64::from(padding.bottom);
    let (width, height) = check_size(width, height)?;
    let mut padded = RgbaImage::from_pixel(width, height, Rgba(color.0));
    imageops::replace(
        &mut padded,
        image,
        i64::from(padding.left),
        i64::from(padding.top),
    );
    let mut mask = GrayImage::from_pixel(width, height, Luma([255]));
    let blank = GrayImage::from_pixel(image.width(), image.height(), Luma([0]));
    imageops::replace(&mut mask, &blank, i64::from(padding.left), i64::from(padding.top));
    Ok((padded, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(width: u32, height: u32) -> RgbaImage {
        RgbaImage::from_fn(width, height, |column, row| {
            Rgba([column as u8, row as u8, 0, 255])
        })
    }

    #[test]
    fn a_crop_must_lie_inside_the_image() {
        let cropped = crop(
            &numbered(10, 8),
            Crop {
                x: 2,
                y: 3,
                width: 4,
                height: 5,
            },
        )
        .unwrap();
        assert_eq!(cropped.dimensions(), (4, 5));
        assert_eq!(cropped.get_pixel(0, 0).0, [2, 3, 0, 255]);
        let error = crop(
            &numbered(10, 8),
            Crop {
                x: 8,
                y: 0,
                width: 4,
                height: 1,
            },
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("not inside the 10 x 8 image"),
            "{error}"
        );
        assert!(
            crop(
                &numbered(10, 8),
                Crop {
                    x: 0,
                    y: 0,
                    width: 0,
                    height: 1
                }
            )
            .is_err()
        );
        assert!(
            crop(
                &numbered(10, 8),
                Crop {
                    x: u32::MAX,
                    y: 0,
                    width: 2,
                    height: 1
                }
            )
            .is_err()
        );
    }

    #[test]
    fn resizes_keep_or_fill_the_shape_as_asked() {
        let image = numbered(200, 100);
        let resize_to = |width, height, fit| Resize {
            width,
            height,
            fit,
            filter: Filter::Bilinear,
        };
        assert_eq!(
            resize(&image, resize_to(Some(50), None, Fit::Contain))
                .unwrap()
                .dimensions(),
            (50, 25)
        );
        assert_eq!(
            resize(&image, resize_to(None, Some(10), Fit::Contain))
                .unwrap()
                .dimensions(),
            (20, 10)
        );
        assert_eq!(
            resize(&image, resize_to(Some(64), Some(64), Fit::Contain))
                .unwrap()
                .dimensions(),
            (64, 32)
        );
        assert_eq!(
            resize(&image, resize_to(Some(64), Some(64), Fit::Cover))
                .unwrap()
                .dimensions(),
            (64, 64)
        );
        assert_eq!(
            resize(&image, resize_to(Some(64), Some(64), Fit::Exact))
                .unwrap()
                .dimensions(),
            (64, 64)
        );
        assert!(resize(&image, resize_to(None, None, Fit::Contain)).is_err());
        assert!(matches!(
            resize(&image, resize_to(Some(100_000), None, Fit::Contain)),
            Err(ImagingError::TooLarge { .. })
        ));
    }

    #[test]
    fn padding_adds_a_border_and_its_mask() {
        let padding = Padding {
            left: 2,
            top: 1,
            right: 3,
            bottom: 0,
        };
        let (padded, mask) = pad(&numbered(4, 2), padding, Color::parse("#ff0000").unwrap()).unwrap();
        assert_eq!(padded.dimensions(), (9, 3));
        assert_eq!(padded.get_pixel(0, 0).0, [255, 0, 0, 255]);
        assert_eq!(padded.get_pixel(2, 1).0, [0, 0, 0, 255]);
        assert_eq!(mask.get_pixel(2, 1).0, [0]);
        assert_eq!(mask.get_pixel(6, 1).0, [255]);
        assert_eq!(mask.pixels().filter(|pixel| pixel.0[0] == 255).count(), 27 - 8);
        let huge = Padding {
            left: u32::MAX,
            ..Padding::default()
        };
        assert!(pad(&numbered(4, 2), huge, Color::BLACK).is_err());
    }

    #[test]
    fn rotations_are_quarter_turns() {
        assert_eq!(
            Rotation::from_degrees(-90).unwrap(),
            Some(Rotation::ThreeQuarters)
        );
        assert_eq!(Rotation::from_degrees(360).unwrap(), None);
        assert!(Rotation::from_degrees(45).is_err());
        let turned = rotate(&numbered(3, 2), Rotation::Quarter);
        assert_eq!(turned.dimensions(), (2, 3));
        assert_eq!(turned.get_pixel(1, 0).0, [0, 0, 0, 255]);
        let mirrored = flip(&numbered(3, 2), Flip::Horizontal);
        assert_eq!(mirrored.get_pixel(0, 0).0, [2, 0, 0, 255]);
    }
}
