//! One image laid over another: the separable blend modes of the W3C "Compositing and Blending"
//! specification, then source-over compositing, with the layer's alpha scaled by an opacity and
//! an optional mask.

use image::{GrayImage, RgbaImage};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ImagingError, check_range};

/// How a layer's colour mixes with the base's where they overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlendMode {
    // The layer's colour.
    #[default]
    Normal,
    // Darkens: base x layer.
    Multiply,
    // Lightens: the inverse of multiplying the inverses.
    Screen,
    // Multiply or screen by the base: contrast up, the base's lights and darks kept.
    Overlay,
    // Multiply or screen by the layer.
    HardLight,
    // A gentle overlay (the W3C formula).
    SoftLight,
    // The darker of the two, per channel.
    Darken,
    // The lighter of the two, per channel.
    Lighten,
    // Brightens the base by the layer.
    ColorDodge,
    // Darkens the base by the layer.
    ColorBurn,
    // |base - layer|.
    Difference,
    // Like difference, lower in contrast.
    Exclusion,
    // base + layer (linear dodge), clipped.
    Add,
    // base - layer, clipped.
    Subtract,
}

impl BlendMode {
    /// The mixed channel of base `b` and layer `s`, both 0..1.
    fn mix(self, b: f32, s: f32) -> f32 {
        match self {
            BlendMode::Normal => s,
            BlendMode::Multiply => b * s,
            BlendMode::Screen => b + s - b * s,
            BlendMode::Overlay => BlendMode::HardLight.mix(s, b),
            BlendMode::HardLight => {
                if s <= 0.5 {
                    b * 2.0 * s
                } else {
                    BlendMode::Screen.mix(b, 2.0 * s - 1.0)
                }
            }
            BlendMode::SoftLight => {
                if s <= 0.5 {
                    b - (1.0 - 2.0 * s) * b * (1.0 - b)
                } else {
                    let d = if b <= 0.25 {
                        ((16.0 * b - 12.0) * b + 4.0) * b
                    } else {
                        b.sqrt()
                    };
                    b + (2.0 * s - 1.0) * (d - b)
                }
            }
            BlendMode::Darken => b.min(s),
            BlendMode::Lighten => b.max(s),
            BlendMode::ColorDodge => {
                if b == 0.0 {
                    0.0
                } else if s >= 1.0 {
                    1.0
                } else {
                    (b / (1.0 - s)).min(1.0)
                }
            }
            BlendMode::ColorBurn => {
                if b >= 1.0 {
                    1.0
                } else if s <= 0.0 {
                    0.0
                } else {
                    1.0 - ((1.0 - b) / s).min(1.0)
                }
            }
            BlendMode::Difference => (b - s).abs(),
            BlendMode::Exclusion => b + s - 2.0 * b * s,
            BlendMode::Add => (b + s).min(1.0),
            BlendMode::Subtract => (b - s).max(0.0),
        }
    }
}

/// How a layer goes over a base.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Blend {
    pub mode: BlendMode,
    /// 0 (the base alone) to 1 (the layer at its own alpha).
    pub opacity: f32,
    /// Where the layer's top-left corner lands on the base, in pixels (may be off the base).
    pub offset: (i64, i64),
}

/// `layer` over `base`: the result has the base's size; where the mask (the base's size) is
/// black the base shows through.
pub fn blend(
    base: &RgbaImage,
    layer: &RgbaImage,
    mask: Option<&GrayImage>,
    how: Blend,
) -> Result<RgbaImage, ImagingError> {
    let opacity = check_range("opacity", how.opacity, 0.0..=1.0)?;
    if let Some(mask) = mask
        && mask.dimensions() != base.dimensions()
    {
        return Err(ImagingError::SizeMismatch {
            what: "a blend's mask and its base",
            first: mask.dimensions(),
            second: base.dimensions(),
        });
    }
    let mut result = base.clone();
    let (offset_x, offset_y) = how.offset;
    for (x, y, pixel) in result.enumerate_pixels_mut() {
        let (layer_x, layer_y) = (i64::from(x) - offset_x, i64::from(y) - offset_y);
        if layer_x < 0
            || layer_y < 0
            || layer_x >= i64::from(layer.width())
            || layer_y >= i64::from(layer.height())
        {
            continue;
        }
        let over = layer.get_pixel(layer_x as u32, layer_y as u32).0;
        let masked = mask.map_or(1.0, |mask| f32::from(mask.get_pixel(x, y).0[0]) / 255.0);
        let source_alpha = f32::from(over[3]) / 255.0 * opacity * masked;
        if source_alpha <= 0.0 {
            continue;
        }
        pixel.0 = composite(pixel.0, over, source_alpha, how.mode);
    }
    Ok(result)
}

/// One pixel: Cs' = (1 - ab) Cs + ab B(Cb, Cs), then source-over.
fn composite(under: [u8; 4], over: [u8; 4], source_alpha: f32, mode: BlendMode) -> [u8; 4] {
    let backdrop_alpha = f32::from(under[3]) / 255.0;
    let alpha = source_alpha + backdrop_alpha * (1.0 - source_alpha);
    let mut out = [0u8; 4];
    for channel in 0..3 {
        let b = f32::from(under[channel]) / 255.0;
        let s = f32::from(over[channel]) / 255.0;
        let mixed = (1.0 - backdrop_alpha) * s + backdrop_alpha * mode.mix(b, s);
        let premultiplied = source_alpha * mixed + backdrop_alpha * b * (1.0 - source_alpha);
        out[channel] = crate::to_byte(if alpha > 0.0 { premultiplied / alpha } else { 0.0 });
    }
    out[3] = crate::to_byte(alpha);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    fn solid(width: u32, height: u32, pixel: [u8; 4]) -> RgbaImage {
        RgbaImage::from_pixel(width, height, Rgba(pixel))
    }

    fn over(base: [u8; 4], layer: [u8; 4], mode: BlendMode, opacity: f32) -> [u8; 4] {
        let how = Blend {
            mode,
            opacity,
            offset: (0, 0),
        };
        blend(&solid(1, 1, base), &solid(1, 1, layer), None, how)
            .unwrap()
            .get_pixel(0, 0)
            .0
    }

    #[test]
    fn modes_give_their_textbook_values() {
        let base = [204, 102, 51, 255];
        let layer = [128, 128, 255, 255];
        let expected = [
            (BlendMode::Normal, [128, 128, 255]),
            (BlendMode::Multiply, [102, 51, 51]),
            (BlendMode::Screen, [230, 179, 255]),
            (BlendMode::Overlay, [204, 102, 102]),
            (BlendMode::Darken, [128, 102, 51]),
            (BlendMode::Lighten, [204, 128, 255]),
            (BlendMode::Difference, [76, 26, 204]),
            (BlendMode::Add, [255, 230, 255]),
            (BlendMode::Subtract, [76, 0, 0]),
            (BlendMode::ColorDodge, [255, 205, 255]),
            (BlendMode::Exclusion, [127, 128, 204]),
        ];
        for (mode, rgb) in expected {
            let got = over(base, layer, mode, 1.0);
            for channel in 0..3 {
                assert!(
                    got[channel].abs_diff(rgb[channel]) <= 1,
                    "{mode:?}: {got:?} against {rgb:?}"
                );
            }
            assert_eq!(got[3], 255);
        }
        // Soft light with a mid-grey layer changes nothing.
        assert_eq!(
            over(base, [128, 128, 128, 255], BlendMode::SoftLight, 1.0)[..3],
            [204, 102, 51]
        );
    }

    #[test]
    fn opacity_and_mask_scale_the_layer() {
        let half = over([0, 0, 0, 255], [255, 255, 255, 255], BlendMode::Normal, 0.5);
        assert_eq!(half, [128, 128, 128, 255]);
        assert_eq!(
            over([10, 20, 30, 255], [255; 4], BlendMode::Normal, 0.0),
            [10, 20, 30, 255]
        );
        let mask = GrayImage::from_raw(2, 1, vec![0, 255]).unwrap();
        let how = Blend {
            mode: BlendMode::Normal,
            opacity: 1.0,
            offset: (0, 0),
        };
        let result = blend(
            &solid(2, 1, [0, 0, 0, 255]),
            &solid(2, 1, [255; 4]),
            Some(&mask),
            how,
        )
        .unwrap();
        assert_eq!(result.as_raw(), &[0, 0, 0, 255, 255, 255, 255, 255]);
        let wrong = GrayImage::new(3, 3);
        assert!(blend(&solid(2, 1, [0; 4]), &solid(2, 1, [0; 4]), Some(&wrong), how).is_err());
        let how = Blend { opacity: 1.5, ..how };
        assert!(blend(&solid(2, 1, [0; 4]), &solid(2, 1, [0; 4]), None, how).is_err());
    }

    #[test]
    fn a_layer_lands_at_its_offset_and_over_transparency() {
        let how = Blend {
            mode: BlendMode::Multiply,
            opacity: 1.0,
            offset: (2, -1),
        };
        let result = blend(
            &solid(4, 2, [0, 0, 0, 0]),
            &solid(3, 3, [200, 100, 50, 255]),
            None,
            how,
        )
        .unwrap();
        // Over a transparent base the layer shows as it is, whatever the mode.
        assert_eq!(result.get_pixel(2, 0).0, [200, 100, 50, 255]);
        assert_eq!(result.get_pixel(3, 1).0, [200, 100, 50, 255]);
        assert_eq!(result.get_pixel(1, 1).0, [0, 0, 0, 0]);
    }
}
