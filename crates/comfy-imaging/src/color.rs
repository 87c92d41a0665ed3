//! Colour correction, applied in one fixed order so a request means one thing: white balance,
//! histogram matching to a reference, automatic levels, levels, brightness and contrast,
//! saturation. Alpha is kept as it is.

use image::RgbaImage;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Color, ImagingError, check_range, invalid};

/// How to neutralise a colour cast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WhiteBalance {
    /// The average colour becomes grey.
    GrayWorld,
    /// The brightest colours (the 99th percentile of each channel) become white.
    WhitePatch,
    /// This colour, sampled from something that should be neutral, becomes grey.
    Neutral(Color),
}

impl WhiteBalance {
    /// `gray_world`, `white_patch`, or a colour (`#rrggbb`) that should be neutral.
    pub fn parse(text: &str) -> Result<WhiteBalance, ImagingError> {
        match text.trim() {
            "gray_world" | "grey_world" => Ok(WhiteBalance::GrayWorld),
            "white_patch" => Ok(WhiteBalance::WhitePatch),
            other => Color::parse(other).map(WhiteBalance::Neutral).map_err(|_| {
                invalid(format!(
                    "white_balance {other:?} is none of gray_world, white_patch or a #rrggbb colour that should be neutral"
                ))
            }),
        }
    }
}

/// Input and output ranges with a gamma, as a levels dialog has them; every value 0..1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    /// Input at or below this becomes output_black (default 0).
    #[serde(default)]
    pub input_black: f32,
    /// Input at or above this becomes output_white (default 1).
    #[serde(default = "one")]
    pub input_white: f32,
    /// Midtones: above 1 brightens, below 1 darkens (0.1..10, default 1).
    #[serde(default = "one")]
    pub gamma: f32,
    /// The darkest output (default 0).
    #[serde(default)]
    pub output_black: f32,
    /// The brightest output (default 1).
    #[serde(default = "one")]
    pub output_white: f32,
}

fn one() -> f32 {
    1.0
}

impl Default for Levels {
    fn default() -> Levels {
        Levels {
            input_black: 0.0,
            input_white: 1.0,
            gamma: 1.0,
            output_black: 0.0,
            output_white: 1.0,
        }
    }
}

impl Levels {
    fn check(&self) -> Result<(), ImagingError> {
        for (name, value) in [
            ("input_black", self.input_black),
            ("input_white", self.input_white),
            ("output_black", self.output_black),
            ("output_white", self.output_white),
        ] {
            check_range(name, value, 0.0..=1.0)?;
        }
        check_range("gamma", self.gamma, 0.1..=10.0)?;
        if self.input_white <= self.input_black {
            return Err(invalid(format!(
                "levels input_white {} must be above input_black {}",
                self.input_white, self.input_black
            )));
        }
        Ok(())
    }

    fn apply(&self, value: f32) -> f32 {
        let stretched = ((value - self.input_black) / (self.input_white - self.input_black)).clamp(0.0, 1.0);
        let curved = stretched.powf(1.0 / self.gamma);
        self.output_black + curved * (self.output_white - self.output_black)
    }
}

/// A correction; `None` and neutral values skip their step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Correction {
    pub white_balance: Option<WhiteBalance>,
    /// Match each channel's histogram to the reference image's.
    pub match_histogram: bool,
    /// Stretch so this fraction of pixels clips at each end (0..0.2), on luminance so colours keep.
    pub auto_levels: Option<f32>,
    pub levels: Option<Levels>,
    /// Added to every channel, -1..1.
    pub brightness: f32,
    /// Around mid-grey: 0 flattens, 1 keeps, 2 doubles (0..4).
    pub contrast: f32,
    /// 0 greys, 1 keeps, 2 doubles (0..4).
    pub saturation: f32,
}

impl Default for Correction {
    fn default() -> Correction {
        Correction {
            white_balance: None,
            match_histogram: false,
            auto_levels: None,
            levels: None,
            brightness: 0.0,
            contrast: 1.0,
            saturation: 1.0,
        }
    }
}

/// What the automatic steps decided, so a caller can see and repeat it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct CorrectionReport {
    /// The red, green and blue multipliers white balance used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub white_balance_gains: Option<[f32; 3]>,
    /// The luminance black and white points automatic levels found (0..1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_levels_range: Option<[f32; 2]>,
    /// The steps applied, in order.
    pub steps: Vec<&'static str>,
}

/// Applies `correction` to `image` (`reference` is the histogram to match, when asked for).
pub fn correct(
    image: &RgbaImage,
    correction: &Correction,
    reference: Option<&RgbaImage>,
) -> Result<(RgbaImage, CorrectionReport), ImagingError> {
    let brightness = check_range("brightness", correction.brightness, -1.0..=1.0)?;
    let contrast = check_range("contrast", correction.contrast, 0.0..=4.0)?;
    let saturation = check_range("saturation", correction.saturation, 0.0..=4.0)?;
    if let Some(levels) = &correction.levels {
        levels.check()?;
    }
    let mut report = CorrectionReport::default();
    let mut result = image.clone();
    if let Some(balance) = correction.white_balance {
        let gains = white_balance_gains(&result, balance);
        map_channels(&mut result, |channel, value| value * gains[channel]);
        report.white_balance_gains = Some(gains);
        report.steps.push("white_balance");
    }
    if correction.match_histogram {
        let reference = reference.ok_or_else(|| invalid("histogram matching needs a reference image"))?;
        match_histograms(&mut result, reference);
        report.steps.push("match_histogram");
    }
    if let Some(clip) = correction.auto_levels {
        let clip = check_range("auto_levels", clip, 0.0..=0.2)?;
        let (low, high) = luminance_percentiles(&result, clip);
        if high > low {
            let levels = Levels {
                input_black: low,
                input_white: high,
                ..Levels::default()
            };
            map_channels(&mut result, |_, value| levels.apply(value));
        }
        report.auto_levels_range = Some([low, high]);
        report.steps.push("auto_levels");
    }
    if let Some(levels) = correction.levels {
        map_channels(&mut result, |_, value| levels.apply(value));
        report.steps.push("levels");
    }
    if brightness != 0.0 || contrast != 1.0 {
        map_channels(&mut result, |_, value| {
            (value - 0.5) * contrast + 0.5 + brightness
        });
        report.steps.push("brightness_contrast");
    }
    if saturation != 1.0 {
        for pixel in result.pixels_mut() {
            let [red, green, blue, _] = pixel.0.map(|value| f32::from(value) / 255.0);
            let luma = 0.299 * red + 0.587 * green + 0.114 * blue;
            for (channel, value) in [red, green, blue].into_iter().enumerate() {
                pixel.0[channel] = crate::to_byte(luma + (value - luma) * saturation);
            }
        }
        report.steps.push("saturation");
    }
    Ok((result, report))
}

/// Every colour channel through `map` (channel index, value 0..1 -> value), by lookup table.
fn map_channels(image: &mut RgbaImage, map: impl Fn(usize, f32) -> f32) {
    let tables: [[u8; 256]; 3] = std::array::from_fn(|channel| {
        std::array::from_fn(|value| crate::to_byte(map(channel, value as f32 / 255.0)))
    });
    for pixel in image.pixels_mut() {
        for channel in 0..3 {
            pixel.0[channel] = tables[channel][usize::from(pixel.0[channel])];
        }
    }
}

/// Each colour channel's histogram.
fn histograms(image: &RgbaImage) -> [[u64; 256]; 3] {
    let mut counts = [[0u64; 256]; 3];
    for pixel in image.pixels() {
        for channel in 0..3 {
            counts[channel][usize::from(pixel.0[channel])] += 1;
        }
    }
    counts
}

/// The smallest value at or below which `fraction` of `counts` lies.
fn percentile(counts: &[u64; 256], fraction: f64) -> usize {
    let total: u64 = counts.iter().sum();
    let wanted = (total as f64 * fraction).ceil() as u64;
    let mut seen = 0;
    for (value, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= wanted.max(1) {
            return value;
        }
    }
    255
}

fn white_balance_gains(image: &RgbaImage, balance: WhiteBalance) -> [f32; 3] {
    let counts = histograms(image);
    let pixels = u64::from(image.width()) * u64::from(image.height());
    let references: [f32; 3] = match balance {
        WhiteBalance::GrayWorld => std::array::from_fn(|channel| {
            let sum: u64 = counts[channel]
                .iter()
                .enumerate()
                .map(|(value, count)| value as u64 * count)
                .sum();
            sum as f32 / pixels.max(1) as f32
        }),
        WhiteBalance::WhitePatch => std::array::from_fn(|channel| percentile(&counts[channel], 0.99) as f32),
        WhiteBalance::Neutral(Color([red, green, blue, _])) => [red, green, blue].map(f32::from),
    };
    let target = match balance {
        WhiteBalance::WhitePatch => 255.0,
        _ => references.iter().sum::<f32>() / 3.0,
    };
    // A channel with nothing in it is left alone rather than multiplied without bound.
    references.map(|reference| {
        if reference >= 1.0 {
            (target / reference).min(8.0)
        } else {
            1.0
        }
    })
}

fn match_histograms(image: &mut RgbaImage, reference: &RgbaImage) {
    let source = histograms(image);
    let target = histograms(reference);
    let cumulative = |counts: &[u64; 256]| -> [f64; 256] {
        let total = counts.iter().sum::<u64>().max(1) as f64;
        let mut running = 0u64;
        std::array::from_fn(|value| {
            running += counts[value];
            running as f64 / total
        })
    };
    let tables: [[u8; 256]; 3] = std::array::from_fn(|channel| {
        let from = cumulative(&source[channel]);
        let to = cumulative(&target[channel]);
        std::array::from_fn(|value| {
            let wanted = from[value];
            to.iter().position(|&have| have >= wanted - 1e-12).unwrap_or(255) as u8
        })
    });
    for pixel in image.pixels_mut() {
        for channel in 0..3 {
            pixel.0[channel] = tables[channel][usize::from(pixel.0[channel])];
        }
    }
}

/// The luminance values (0..1) below which `clip` and above which `clip` of the pixels lie.
fn luminance_percentiles(image: &RgbaImage, clip: f32) -> (f32, f32) {
    let mut counts = [0u64; 256];
    for pixel in image.pixels() {
        let [red, green, blue, _] = pixel.0.map(f32::from);
        counts[(0.299 * red + 0.587 * green + 0.114 * blue)
            .round()
            .clamp(0.0, 255.0) as usize] += 1;
    }
    let low = percentile(&counts, f64::from(clip));
    let high = percentile(&counts, 1.0 - f64::from(clip));
    (low as f32 / 255.0, high as f32 / 255.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    fn gradient() -> RgbaImage {
        RgbaImage::from_fn(64, 16, |column, row| {
            let value = (column * 2 + 40) as u8;
            Rgba([value, (value as u32 * 3 / 4) as u8, (row * 4 + 60) as u8, 200])
        })
    }

    fn means(image: &RgbaImage) -> [f64; 3] {
        let pixels = f64::from(image.width() * image.height());
        std::array::from_fn(|channel| {
            image
                .pixels()
                .map(|pixel| f64::from(pixel.0[channel]))
                .sum::<f64>()
                / pixels
        })
    }

    #[test]
    fn gray_world_makes_the_average_neutral_and_keeps_alpha() {
        let correction = Correction {
            white_balance: Some(WhiteBalance::GrayWorld),
            ..Correction::default()
        };
        let (balanced, report) = correct(&gradient(), &correction, None).unwrap();
        let [red, green, blue] = means(&balanced);
        assert!(
            (red - green).abs() < 1.5 && (green - blue).abs() < 1.5,
            "{red} {green} {blue}"
        );
        assert!(balanced.pixels().all(|pixel| pixel.0[3] == 200));
        assert_eq!(report.steps, ["white_balance"]);
        let neutral = WhiteBalance::parse("#806040").unwrap();
        assert_eq!(neutral, WhiteBalance::Neutral(Color([128, 96, 64, 255])));
        assert!(WhiteBalance::parse("daylight").is_err());
    }

    #[test]
    fn levels_map_the_ends_and_bend_the_middle() {
        let levels = Levels {
            input_black: 0.2,
            input_white: 0.8,
            gamma: 2.0,
            ..Levels::default()
        };
        assert_eq!(levels.apply(0.1), 0.0);
        assert_eq!(levels.apply(0.9), 1.0);
        assert!((levels.apply(0.35) - 0.5).abs() < 1e-6, "0.25 to the power 1/2");
        let wrong = Levels {
            input_white: 0.1,
            input_black: 0.5,
            ..Levels::default()
        };
        let correction = Correction {
            levels: Some(wrong),
            ..Correction::default()
        };
        assert!(correct(&gradient(), &correction, None).is_err());
    }

    #[test]
    fn matching_a_histogram_takes_the_reference_distribution() {
        let dark = RgbaImage::from_fn(32, 32, |column, row| {
            let value = ((column + row * 32) / 16) as u8;
            Rgba([value, value, value, 255])
        });
        let bright = RgbaImage::from_fn(16, 16, |column, row| {
            let value = 128 + ((column + row * 16) / 2) as u8;
            Rgba([value, value, value, 255])
        });
        let correction = Correction {
            match_histogram: true,
            ..Correction::default()
        };
        let (matched, _) = correct(&dark, &correction, Some(&bright)).unwrap();
        let mean = means(&matched)[0];
        assert!((mean - means(&bright)[0]).abs() < 1.5, "{mean}");
        assert!(correct(&dark, &correction, None).is_err());
    }

    #[test]
    fn auto_levels_stretch_to_the_full_range() {
        let flat = RgbaImage::from_fn(100, 1, |column, _| {
            let value = 100 + column as u8 / 2;
            Rgba([value, value, value, 255])
        });
        let correction = Correction {
            auto_levels: Some(0.0),
            ..Correction::default()
        };
        let (stretched, report) = correct(&flat, &correction, None).unwrap();
        assert_eq!(stretched.get_pixel(0, 0).0[0], 0);
        assert_eq!(stretched.get_pixel(99, 0).0[0], 255);
        assert_eq!(report.auto_levels_range, Some([100.0 / 255.0, 149.0 / 255.0]));
    }

    #[test]
    fn saturation_zero_is_grey_and_contrast_zero_is_flat() {
        let correction = Correction {
            saturation: 0.0,
            ..Correction::default()
        };
        let (grey, _) = correct(&gradient(), &correction, None).unwrap();
        assert!(
            grey.pixels()
                .all(|pixel| pixel.0[0].abs_diff(pixel.0[1]) <= 1 && pixel.0[1].abs_diff(pixel.0[2]) <= 1)
        );
        let correction = Correction {
            contrast: 0.0,
            brightness: 0.1,
            ..Correction::default()
        };
        let (flat, report) = correct(&gradient(), &correction, None).unwrap();
        assert!(flat.pixels().all(|pixel| pixel.0[..3] == [153, 153, 153]));
        assert_eq!(report.steps, ["brightness_contrast"]);
        let wrong = Correction {
            saturation: -1.0,
            ..Correction::default()
        };
        assert!(correct(&gradient(), &wrong, None).is_err());
    }
}
