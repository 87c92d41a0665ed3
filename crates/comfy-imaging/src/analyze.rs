//! Composition and quality statistics of one image: exposure, contrast, colour, sharpness, the
//! dominant palette and where the visual weight sits against the rule of thirds.
//!
//! Everything but the size is measured on a copy at most [`ANALYSIS_SIDE`] pixels on its longer
//! side, so the cost is bounded whatever the image and the numbers do not drift with resolution.
//! The verdicts are the usual rules of thumb, stated with their thresholds; the numbers are what
//! to rely on.

use image::RgbaImage;
use image::imageops::{self, FilterType};
use schemars::JsonSchema;
use serde::Serialize;

use crate::planes::{self, Plane};
use crate::{Color, ImagingError};

/// The longer side of the copy the statistics are measured on.
pub const ANALYSIS_SIDE: u32 = 1024;
/// The longer side of the copy visual weight is measured on.
const WEIGHT_SIDE: u32 = 256;
/// Most palette colours.
pub const MAXIMUM_PALETTE: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Composition {
    pub width: u32,
    pub height: u32,
    /// Width over height.
    pub aspect_ratio: f64,
    /// `landscape`, `portrait` or `square` (within 2%).
    pub orientation: &'static str,
    pub exposure: Exposure,
    pub contrast: Contrast,
    pub color: ColorStatistics,
    pub sharpness: Sharpness,
    /// The dominant colours, largest share first (k-means in RGB).
    pub palette: Vec<PaletteColor>,
    pub thirds: Thirds,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Exposure {
    /// Mean BT.601 luminance, 0..1.
    pub mean_luminance: f64,
    pub median_luminance: f64,
    /// Share of pixels at or below 5/255: crushed shadows.
    pub shadows_clipped: f64,
    /// Share of pixels at or above 250/255: blown highlights.
    pub highlights_clipped: f64,
    /// `underexposed` (mean below 0.25 or over 20% crushed), `overexposed` (mean above 0.75 or
    /// over 20% blown) or `balanced`.
    pub verdict: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Contrast {
    /// The standard deviation of luminance, 0..0.5.
    pub rms: f64,
    /// The 99th minus the 1st percentile of luminance, 0..1.
    pub dynamic_range: f64,
    /// `low` (rms below 0.1), `high` (above 0.3) or `normal`.
    pub verdict: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ColorStatistics {
    /// Mean HSV saturation, 0..1.
    pub mean_saturation: f64,
    /// Hasler and Suesstrunk's colourfulness M (0 for grey; about 33 moderate, 59 quite, 82
    /// highly, 109 extremely colourful).
    pub colorfulness: f64,
    /// The mean red minus the mean blue, -1..1: above 0 is warm, below cool.
    pub warmth: f64,
    /// `not colorful`, `slightly`, `moderately`, `averagely`, `quite`, `highly` or
    /// `extremely colorful`, by Hasler and Suesstrunk's bands.
    pub verdict: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Sharpness {
    /// The variance of the luminance Laplacian (0..255 scale) on the analysis copy.
    pub laplacian_variance: f64,
    /// `blurry` (below 50), `soft` (below 300) or `sharp`.
    pub verdict: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PaletteColor {
    /// `#rrggbb`.
    pub color: String,
    /// Share of the pixels nearest this colour, 0..1.
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Thirds {
    /// The centroid of visual weight (edge strength), as fractions of width and height.
    pub center_of_interest: [f64; 2],
    /// The rule-of-thirds intersection nearest it.
    pub nearest_power_point: [f64; 2],
    /// How far the centroid is from that point, as a fraction of the diagonal (0 on it).
    pub distance_to_power_point: f64,
    /// Share of the visual weight in the left half (0.5 balanced).
    pub left_weight: f64,
    /// Share of the visual weight in the top half (0.5 balanced).
    pub top_weight: f64,
}

/// Measures `image` with a palette of `palette_size` colours (1..=16).
pub fn analyze(image: &RgbaImage, palette_size: usize) -> Result<Composition, ImagingError> {
    if !(1..=MAXIMUM_PALETTE).contains(&palette_size) {
        return Err(crate::invalid(format!(
            "palette_size must be 1 to {MAXIMUM_PALETTE}; got {palette_size}"
        )));
    }
    let (width, height) = image.dimensions();
    crate::check_size(u64::from(width), u64::from(height))?;
    let copy = at_most(image, ANALYSIS_SIDE);
    let luma = Plane::luma(&copy);
    let ratio = f64::from(width) / f64::from(height);
    Ok(Composition {
        width,
        height,
        aspect_ratio: ratio,
        orientation: if (ratio - 1.0).abs() <= 0.02 {
            "square"
        } else if ratio > 1.0 {
            "landscape"
        } else {
            "portrait"
        },
        exposure: exposure(&luma),
        contrast: contrast(&luma),
        color: color_statistics(&copy),
        sharpness: sharpness(&luma),
        palette: palette(&copy, palette_size),
        thirds: thirds(&Plane::luma(&at_most(&copy, WEIGHT_SIDE))),
    })
}

/// `image`, or a copy shrunk to at most `side` on its longer side.
fn at_most(image: &RgbaImage, side: u32) -> RgbaImage {
    let (width, height) = image.dimensions();
    let longer = width.max(height);
    if longer <= side {
        return image.clone();
    }
    let scale = f64::from(side) / f64::from(longer);
    let new_width = ((f64::from(width) * scale).round() as u32).max(1);
    let new_height = ((f64::from(height) * scale).round() as u32).max(1);
    imageops::resize(image, new_width, new_height, FilterType::Triangle)
}

/// The luminance histogram, 256 bins of the 0..255 scale.
fn luminance_histogram(luma: &Plane) -> [u64; 256] {
    let mut counts = [0u64; 256];
    for &value in &luma.values {
        counts[value.round().clamp(0.0, 255.0) as usize] += 1;
    }
    counts
}

/// The smallest luminance (0..1) at or below which `fraction` of the pixels lie.
fn percentile(counts: &[u64; 256], fraction: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    let wanted = ((total as f64 * fraction).ceil() as u64).max(1);
    let mut seen = 0;
    for (value, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= wanted {
            return value as f64 / 255.0;
        }
    }
    1.0
}

fn exposure(luma: &Plane) -> Exposure {
    let counts = luminance_histogram(luma);
    let total = luma.values.len().max(1) as f64;
    let mean = luma.mean() / 255.0;
    let shadows = counts[..=5].iter().sum::<u64>() as f64 / total;
    let highlights = counts[250..].iter().sum::<u64>() as f64 / total;
    let verdict = if mean < 0.25 || shadows > 0.2 {
        "underexposed"
    } else if mean > 0.75 || highlights > 0.2 {
        "overexposed"
    } else {
        "balanced"
    };
    Exposure {
        mean_luminance: mean,
        median_luminance: percentile(&counts, 0.5),
        shadows_clipped: shadows,
        highlights_clipped: highlights,
        verdict,
    }
}

/// The population variance of a plane's values.
fn variance(plane: &Plane) -> f64 {
    let mean = plane.mean();
    plane
        .values
        .iter()
        .map(|&value| (f64::from(value) - mean).powi(2))
        .sum::<f64>()
        / plane.values.len().max(1) as f64
}

fn contrast(luma: &Plane) -> Contrast {
    let rms = variance(luma).sqrt() / 255.0;
    let counts = luminance_histogram(luma);
    Contrast {
        rms,
        dynamic_range: percentile(&counts, 0.99) - percentile(&counts, 0.01),
        verdict: if rms < 0.1 {
            "low"
        } else if rms > 0.3 {
            "high"
        } else {
            "normal"
        },
    }
}

fn color_statistics(image: &RgbaImage) -> ColorStatistics {
    let count = (u64::from(image.width()) * u64::from(image.height())).max(1) as f64;
    let (mut saturation, mut red_total, mut blue_total) = (0.0f64, 0.0f64, 0.0f64);
    let (mut rg_sum, mut rg_squares, mut yb_sum, mut yb_squares) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for pixel in image.pixels() {
        let [red, green, blue, _] = pixel.0.map(f64::from);
        let (high, low) = (red.max(green).max(blue), red.min(green).min(blue));
        if high > 0.0 {
            saturation += (high - low) / high;
        }
        red_total += red;
        blue_total += blue;
        let rg = red - green;
        let yb = 0.5 * (red + green) - blue;
        rg_sum += rg;
        rg_squares += rg * rg;
        yb_sum += yb;
        yb_squares += yb * yb;
    }
    let (rg_mean, yb_mean) = (rg_sum / count, yb_sum / count);
    let rg_variance = (rg_squares / count - rg_mean * rg_mean).max(0.0);
    let yb_variance = (yb_squares / count - yb_mean * yb_mean).max(0.0);
    let colorfulness =
        (rg_variance + yb_variance).sqrt() + 0.3 * (rg_mean * rg_mean + yb_mean * yb_mean).sqrt();
    let verdict = match colorfulness {
        value if value < 15.0 => "not colorful",
        value if value < 33.0 => "slightly colorful",
        value if value < 45.0 => "moderately colorful",
        value if value < 59.0 => "averagely colorful",
        value if value < 82.0 => "quite colorful",
        value if value < 109.0 => "highly colorful",
        _ => "extremely colorful",
    };
    ColorStatistics {
        mean_saturation: saturation / count,
        colorfulness,
        warmth: (red_total - blue_total) / count / 255.0,
        verdict,
    }
}

fn sharpness(luma: &Plane) -> Sharpness {
    let variance = variance(&planes::laplacian(luma));
    Sharpness {
        laplacian_variance: variance,
        verdict: if variance < 50.0 {
            "blurry"
        } else if variance < 300.0 {
            "soft"
        } else {
            "sharp"
        },
    }
}

/// Most pixels k-means looks at.
const PALETTE_SAMPLES: usize = 16_384;
const PALETTE_ROUNDS: usize = 16;

/// K-means in RGB over an even sample of pixels, started from `size` luminance quantiles (so the
/// same image always gives the same palette); clusters that end empty are dropped.
fn palette(image: &RgbaImage, size: usize) -> Vec<PaletteColor> {
    let pixels: Vec<[f32; 3]> = image
        .pixels()
        .map(|pixel| [0, 1, 2].map(|channel| f32::from(pixel.0[channel])))
        .collect();
    let step = pixels.len().div_ceil(PALETTE_SAMPLES).max(1);
    let mut samples: Vec<[f32; 3]> = pixels.into_iter().step_by(step).collect();
    samples.sort_by(|left, right| luminance(left).total_cmp(&luminance(right)));
    let mut centers: Vec<[f32; 3]> = (0..size)
        .map(|index| samples[((2 * index + 1) * samples.len() / (2 * size)).min(samples.len() - 1)])
        .collect();
    let mut assignment = vec![0usize; samples.len()];
    for _ in 0..PALETTE_ROUNDS {
        for (sample, chosen) in samples.iter().zip(assignment.iter_mut()) {
            *chosen = nearest(&centers, sample);
        }
        let mut sums = vec![[0f64; 4]; centers.len()];
        for (sample, &chosen) in samples.iter().zip(&assignment) {
            for channel in 0..3 {
                sums[chosen][channel] += f64::from(sample[channel]);
            }
            sums[chosen][3] += 1.0;
        }
        for (center, sum) in centers.iter_mut().zip(&sums) {
            if sum[3] > 0.0 {
                *center = [0, 1, 2].map(|channel| (sum[channel] / sum[3]) as f32);
            }
        }
    }
    let mut counts = vec![0usize; centers.len()];
    for sample in &samples {
        counts[nearest(&centers, sample)] += 1;
    }
    let mut found: Vec<PaletteColor> = centers
        .iter()
        .zip(&counts)
        .filter(|(_, count)| **count > 0)
        .map(|(center, count)| PaletteColor {
            color: {
                let [red, green, blue] = center.map(|value| value.round().clamp(0.0, 255.0) as u8);
                Color([red, green, blue, 255]).hex()
            },
            share: *count as f64 / samples.len() as f64,
        })
        .collect();
    found.sort_by(|left, right| right.share.total_cmp(&left.share));
    // Two centres that rounded to one colour are one palette entry.
    let mut merged: Vec<PaletteColor> = Vec::new();
    for entry in found {
        match merged.iter_mut().find(|known| known.color == entry.color) {
            Some(known) => known.share += entry.share,
            None => merged.push(entry),
        }
    }
    merged
}

fn luminance(color: &[f32; 3]) -> f32 {
    0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
}

fn nearest(centers: &[[f32; 3]], sample: &[f32; 3]) -> usize {
    let distance = |center: &[f32; 3]| -> f32 {
        (0..3)
            .map(|channel| (center[channel] - sample[channel]).powi(2))
            .sum()
    };
    centers
        .iter()
        .enumerate()
        .min_by(|(_, left), (_, right)| distance(left).total_cmp(&distance(right)))
        .map_or(0, |(index, _)| index)
}

/// Visual weight as the luminance gradient's magnitude; its centroid and balance.
fn thirds(luma: &Plane) -> Thirds {
    let (width, height) = (luma.width, luma.height);
    let at = |column: usize, row: usize| luma.values[row * width + column];
    let (mut total, mut sum_x, mut sum_y, mut left, mut top) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for row in 0..height {
        for column in 0..width {
            let across = at((column + 1).min(width - 1), row) - at(column.saturating_sub(1), row);
            let down = at(column, (row + 1).min(height - 1)) - at(column, row.saturating_sub(1));
            let weight = f64::from(across.abs() + down.abs());
            let (x, y) = (
                (column as f64 + 0.5) / width as f64,
                (row as f64 + 0.5) / height as f64,
            );
            total += weight;
            sum_x += weight * x;
            sum_y += weight * y;
            if x < 0.5 {
                left += weight;
            }
            if y < 0.5 {
                top += weight;
            }
        }
    }
    let (center, left_weight, top_weight) = if total > 0.0 {
        ([sum_x / total, sum_y / total], left / total, top / total)
    } else {
        ([0.5, 0.5], 0.5, 0.5)
    };
    let points = [
        [1.0 / 3.0, 1.0 / 3.0],
        [2.0 / 3.0, 1.0 / 3.0],
        [1.0 / 3.0, 2.0 / 3.0],
        [2.0 / 3.0, 2.0 / 3.0],
    ];
    let distance =
        |point: &[f64; 2]| ((point[0] - center[0]).powi(2) + (point[1] - center[1]).powi(2)).sqrt();
    let nearest = points
        .iter()
        .min_by(|left, right| distance(left).total_cmp(&distance(right)))
        .copied()
        .unwrap_or([1.0 / 3.0, 1.0 / 3.0]);
    Thirds {
        center_of_interest: center,
        nearest_power_point: nearest,
        distance_to_power_point: distance(&nearest) / 2f64.sqrt(),
        left_weight,
        top_weight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    #[test]
    fn a_flat_grey_image_is_balanced_flat_and_grey() {
        let grey = RgbaImage::from_pixel(64, 32, Rgba([128, 128, 128, 255]));
        let composition = analyze(&grey, 3).unwrap();
        assert_eq!(composition.orientation, "landscape");
        assert!((composition.exposure.mean_luminance - 128.0 / 255.0).abs() < 1e-4);
        assert_eq!(composition.exposure.verdict, "balanced");
        assert_eq!(composition.contrast.verdict, "low");
        assert!(composition.color.colorfulness < 1e-9);
        assert_eq!(composition.color.verdict, "not colorful");
        assert_eq!(composition.sharpness.verdict, "blurry");
        assert_eq!(composition.palette.len(), 1);
        assert_eq!(composition.palette[0].color, "#808080");
        assert_eq!(composition.thirds.center_of_interest, [0.5, 0.5]);
    }

    #[test]
    fn exposure_contrast_and_colour_read_their_extremes() {
        let dark = RgbaImage::from_pixel(20, 20, Rgba([2, 2, 2, 255]));
        assert_eq!(analyze(&dark, 1).unwrap().exposure.verdict, "underexposed");
        let checker = RgbaImage::from_fn(40, 40, |column, row| {
            if (column + row) % 2 == 0 {
                Rgba([0, 0, 0, 255])
            } else {
                Rgba([255, 255, 255, 255])
            }
        });
        let composition = analyze(&checker, 2).unwrap();
        assert_eq!(composition.contrast.verdict, "high");
        assert!((composition.contrast.rms - 0.5).abs() < 1e-6);
        assert_eq!(composition.sharpness.verdict, "sharp");
        let shares: Vec<f64> = composition.palette.iter().map(|entry| entry.share).collect();
        assert_eq!(shares, [0.5, 0.5]);
        // Pure red: rg 255, yb 127.5, no spread: M = 0.3 sqrt(255^2 + 127.5^2).
        let red = RgbaImage::from_pixel(16, 16, Rgba([255, 0, 0, 255]));
        let color = analyze(&red, 1).unwrap().color;
        assert!((color.colorfulness - 0.3 * (255f64.powi(2) + 127.5f64.powi(2)).sqrt()).abs() < 1e-9);
        assert!((color.mean_saturation - 1.0).abs() < 1e-12);
        assert!((color.warmth - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_palette_finds_the_colours_in_their_shares() {
        let image = RgbaImage::from_fn(100, 10, |column, _| match column {
            0..60 => Rgba([200, 30, 30, 255]),
            60..90 => Rgba([20, 40, 180, 255]),
            _ => Rgba([240, 240, 240, 255]),
        });
        let palette = analyze(&image, 3).unwrap().palette;
        let found: Vec<(&str, f64)> = palette
            .iter()
            .map(|entry| (entry.color.as_str(), entry.share))
            .collect();
        assert_eq!(found, [("#c81e1e", 0.6), ("#1428b4", 0.3), ("#f0f0f0", 0.1)]);
        assert!(analyze(&image, 0).is_err());
        assert!(analyze(&image, 17).is_err());
    }

    #[test]
    fn the_center_of_interest_follows_the_subject() {
        // A bright square around the upper-left power point on black.
        let image = RgbaImage::from_fn(300, 300, |column, row| {
            if (80..120).contains(&column) && (80..120).contains(&row) {
                Rgba([255, 255, 255, 255])
            } else {
                Rgba([0, 0, 0, 255])
            }
        });
        let thirds = analyze(&image, 2).unwrap().thirds;
        assert!(
            (thirds.center_of_interest[0] - 1.0 / 3.0).abs() < 0.01,
            "{thirds:?}"
        );
        assert_eq!(thirds.nearest_power_point, [1.0 / 3.0, 1.0 / 3.0]);
        assert!(thirds.distance_to_power_point < 0.01);
        assert!(thirds.left_weight > 0.99 && thirds.top_weight > 0.99);
    }

    #[test]
    fn large_images_are_measured_on_a_bounded_copy() {
        let wide = RgbaImage::from_pixel(4000, 1000, Rgba([90, 90, 90, 255]));
        let composition = analyze(&wide, 2).unwrap();
        assert_eq!((composition.width, composition.height), (4000, 1000));
        assert_eq!(at_most(&wide, ANALYSIS_SIDE).dimensions(), (1024, 256));
    }
}
