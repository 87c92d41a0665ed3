//! How alike two images are, by several measures that answer different questions: SSIM
//! (structure, as people see it), PSNR and mean absolute error (pixel fidelity), the perceptual
//! hash distance (the same picture at another size or compression?), the histogram distance (the
//! same colours, wherever they are), the share of pixels that changed; and a heatmap of where.
//!
//! SSIM is Wang, Bovik, Sheikh and Simoncelli's (2004) on BT.601 luma: an 11 x 11 Gaussian window
//! of sigma 1.5, K1 = 0.01, K2 = 0.03, population covariances, the edges mirrored and a window's
//! radius left out of the mean, which is scikit-image's `structural_similarity(gaussian_weights=
//! True, sigma=1.5, use_sample_covariance=False, data_range=255)`. Alpha is not compared.

use image::{DynamicImage, RgbaImage};
use schemars::JsonSchema;
use serde::Serialize;

use crate::ImagingError;
use crate::planes::{self, Plane};

/// The measures between two images of one size.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Comparison {
    /// Structural similarity, -1..1: 1 is identical, above 0.98 is hard to tell apart, below
    /// about 0.8 is plainly different.
    pub ssim: f64,
    /// Peak signal-to-noise ratio in dB over the colour channels; absent when the pixels are
    /// identical (it is infinite). Above 40 dB is near lossless, 30 to 40 good compression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psnr_db: Option<f64>,
    /// The mean absolute difference of the colour channels, 0..255.
    pub mean_absolute_error: f64,
    /// The share of pixels with a colour channel more than 8 (of 255) apart.
    pub changed_fraction: f64,
    /// Bits (of 64) in which the difference hashes differ: 0 to 5 is the same picture resized or
    /// recompressed, above about 20 another picture.
    pub perceptual_hash_distance: u32,
    /// Hellinger distance between the colour histograms (32 bins a channel), 0 (the same colours
    /// in the same amounts) to 1 (no colour in common).
    pub histogram_distance: f64,
    /// `identical`, `nearly identical` (SSIM >= 0.98), `similar` (>= 0.8) or `different`.
    pub verdict: &'static str,
}

/// The smallest side SSIM's window fits in.
pub const MINIMUM_SIDE: u32 = 11;

const SIGMA: f32 = 1.5;
/// The window's radius at sigma 1.5 cut at 3.5 deviations.
const RADIUS: usize = 5;

/// Compares two images of one size.
pub fn compare(reference: &RgbaImage, candidate: &RgbaImage) -> Result<Comparison, ImagingError> {
    if reference.dimensions() != candidate.dimensions() {
        return Err(ImagingError::SizeMismatch {
            what: "a comparison",
            first: reference.dimensions(),
            second: candidate.dimensions(),
        });
    }
    let ssim = ssim(&Plane::luma(reference), &Plane::luma(candidate))?;
    let (mean_absolute_error, squared, changed) = differences(reference, candidate);
    let identical = squared == 0.0;
    let psnr_db = (!identical).then(|| 10.0 * (255.0f64 * 255.0 / squared).log10());
    let perceptual_hash_distance =
        (rgba_difference_hash(reference) ^ rgba_difference_hash(candidate)).count_ones();
    let verdict = if identical {
        "identical"
    } else if ssim >= 0.98 {
        "nearly identical"
    } else if ssim >= 0.8 {
        "similar"
    } else {
        "different"
    };
    Ok(Comparison {
        ssim,
        psnr_db,
        mean_absolute_error,
        changed_fraction: changed,
        perceptual_hash_distance,
        histogram_distance: histogram_distance(reference, candidate),
        verdict,
    })
}

/// Mean absolute error, mean squared error (both over the colour channels) and the share of
/// pixels that changed by more than 8.
fn differences(first: &RgbaImage, second: &RgbaImage) -> (f64, f64, f64) {
    let (mut absolute, mut squared, mut changed) = (0u64, 0u64, 0u64);
    for (left, right) in first.pixels().zip(second.pixels()) {
        let mut most = 0u8;
        for channel in 0..3 {
            let difference = left.0[channel].abs_diff(right.0[channel]);
            absolute += u64::from(difference);
            squared += u64::from(difference) * u64::from(difference);
            most = most.max(difference);
        }
        changed += u64::from(most > 8);
    }
    let pixels = (u64::from(first.width()) * u64::from(first.height())).max(1) as f64;
    (
        absolute as f64 / (3.0 * pixels),
        squared as f64 / (3.0 * pixels),
        changed as f64 / pixels,
    )
}

/// Mean SSIM of two luma planes (0..255) of one size, at least [`MINIMUM_SIDE`] a side.
pub(crate) fn ssim(first: &Plane, second: &Plane) -> Result<f64, ImagingError> {
    if first.width < MINIMUM_SIDE as usize || first.height < MINIMUM_SIDE as usize {
        return Err(crate::invalid(format!(
            "SSIM needs images of at least {MINIMUM_SIDE} x {MINIMUM_SIDE} pixels; these are {} x {}",
            first.width, first.height
        )));
    }
    let c1 = (0.01f64 * 255.0).powi(2);
    let c2 = (0.03f64 * 255.0).powi(2);
    // Centred first: variances are differences of local means, which in f32 cancel badly at
    // 0..255 squared; about the image's own mean they stay small and exact enough.
    let (offset_first, offset_second) = (first.mean(), second.mean());
    let centred = |plane: &Plane, offset: f64| Plane {
        width: plane.width,
        height: plane.height,
        values: plane
            .values
            .iter()
            .map(|&value| (f64::from(value) - offset) as f32)
            .collect(),
    };
    let (first, second) = (centred(first, offset_first), centred(second, offset_second));
    let mean_first = planes::gaussian_blur(&first, SIGMA);
    let mean_second = planes::gaussian_blur(&second, SIGMA);
    let first_squared = planes::gaussian_blur(&first.times(&first), SIGMA);
    let second_squared = planes::gaussian_blur(&second.times(&second), SIGMA);
    let product = planes::gaussian_blur(&first.times(&second), SIGMA);
    let (width, height) = (first.width, first.height);
    let mut total = 0.0f64;
    let mut count = 0usize;
    for row in RADIUS..height - RADIUS {
        for column in RADIUS..width - RADIUS {
            let index = row * width + column;
            let (local_x, local_y) = (
                f64::from(mean_first.values[index]),
                f64::from(mean_second.values[index]),
            );
            let variance_x = f64::from(first_squared.values[index]) - local_x * local_x;
            let variance_y = f64::from(second_squared.values[index]) - local_y * local_y;
            let covariance = f64::from(product.values[index]) - local_x * local_y;
            let (mu_x, mu_y) = (local_x + offset_first, local_y + offset_second);
            total += ((2.0 * mu_x * mu_y + c1) * (2.0 * covariance + c2))
                / ((mu_x * mu_x + mu_y * mu_y + c1) * (variance_x + variance_y + c2));
            count += 1;
        }
    }
    Ok(total / count as f64)
}

/// The difference hash the outputs library keys similarity on: 64 bits comparing neighbouring
/// pixels of a 9 x 8 greyscale thumbnail, so resized or recompressed copies land within a few
/// bits of each other.
pub fn difference_hash(image: &DynamicImage) -> u64 {
    let small = image
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
    hash
}

/// [`difference_hash`] of an RGBA buffer without copying it whole: the 9 x 8 thumbnail is made
/// from the buffer as `resize_exact` would, and only it is wrapped.
fn rgba_difference_hash(image: &RgbaImage) -> u64 {
    let small = image::imageops::resize(image, 9, 8, image::imageops::FilterType::Triangle);
    difference_hash(&DynamicImage::ImageRgba8(small))
}

const BINS: usize = 32;

/// The mean over the colour channels of the Hellinger distance of their 32-bin histograms.
fn histogram_distance(first: &RgbaImage, second: &RgbaImage) -> f64 {
    let histogram = |image: &RgbaImage| -> [[f64; BINS]; 3] {
        let mut counts = [[0f64; BINS]; 3];
        for pixel in image.pixels() {
            for channel in 0..3 {
                counts[channel][usize::from(pixel.0[channel]) * BINS / 256] += 1.0;
            }
        }
        let total = (u64::from(image.width()) * u64::from(image.height())).max(1) as f64;
        counts.map(|channel| channel.map(|count| count / total))
    };
    let (left, right) = (histogram(first), histogram(second));
    let mut distance = 0.0;
    for channel in 0..3 {
        let coefficient: f64 = left[channel]
            .iter()
            .zip(&right[channel])
            .map(|(p, q)| (p * q).sqrt())
            .sum();
        distance += (1.0 - coefficient.min(1.0)).max(0.0).sqrt();
    }
    distance / 3.0
}

/// Where two images of one size differ: black where they agree, through blue, red and yellow to
/// white where a colour channel is 255 apart (square-root scaled, so small differences show).
pub fn heatmap(first: &RgbaImage, second: &RgbaImage) -> Result<RgbaImage, ImagingError> {
    if first.dimensions() != second.dimensions() {
        return Err(ImagingError::SizeMismatch {
            what: "a difference heatmap",
            first: first.dimensions(),
            second: second.dimensions(),
        });
    }
    let mut map = RgbaImage::new(first.width(), first.height());
    for ((target, left), right) in map.pixels_mut().zip(first.pixels()).zip(second.pixels()) {
        let most = (0..3)
            .map(|channel| left.0[channel].abs_diff(right.0[channel]))
            .max()
            .unwrap_or(0);
        target.0 = ramp((f32::from(most) / 255.0).sqrt());
    }
    Ok(map)
}

/// Black, blue, red, yellow, white at 0, 0.25, 0.5, 0.75, 1.
fn ramp(value: f32) -> [u8; 4] {
    const STOPS: [[f32; 3]; 5] = [
        [0.0, 0.0, 0.0],
        [0.1, 0.1, 0.8],
        [0.85, 0.1, 0.1],
        [1.0, 0.85, 0.0],
        [1.0, 1.0, 1.0],
    ];
    let position = value.clamp(0.0, 1.0) * 4.0;
    let index = (position.floor() as usize).min(3);
    let within = position - index as f32;
    let [low, high] = [STOPS[index], STOPS[index + 1]];
    let channel = |number: usize| crate::to_byte(low[number] + (high[number] - low[number]) * within);
    [channel(0), channel(1), channel(2), 255]
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    /// A deterministic test pattern in integers alone (so Python writes the same one): a
    /// diagonal sawtooth plus a pseudo-random texture.
    pub(crate) fn pattern(width: u32, height: u32, seed: u32) -> RgbaImage {
        RgbaImage::from_fn(width, height, |column, row| {
            let sawtooth = (column * 13 + row * 7) % 64 * 2;
            let noise = (column * 7919 + row * 104_729 + seed * 15_485_863) % 61;
            let value = (sawtooth + noise) as u8;
            Rgba([value, value, value, 255])
        })
    }

    #[test]
    fn identical_images_measure_as_identical() {
        let image = pattern(32, 24, 1);
        let comparison = compare(&image, &image).unwrap();
        assert!((comparison.ssim - 1.0).abs() < 1e-6, "{}", comparison.ssim);
        assert_eq!(comparison.psnr_db, None);
        assert_eq!(comparison.mean_absolute_error, 0.0);
        assert_eq!(comparison.perceptual_hash_distance, 0);
        assert!(comparison.histogram_distance.abs() < 1e-6);
        assert_eq!(comparison.verdict, "identical");
    }

    #[test]
    fn ssim_of_two_flat_images_is_the_luminance_term() {
        // With no variance anywhere SSIM is (2ab + C1) / (a^2 + b^2 + C1) exactly.
        let (a, b) = (100.0f64, 150.0f64);
        let c1 = (0.01f64 * 255.0).powi(2);
        let expected = (2.0 * a * b + c1) / (a * a + b * b + c1);
        let first = Plane::filled(20, 20, a as f32);
        let second = Plane::filled(20, 20, b as f32);
        assert!((ssim(&first, &second).unwrap() - expected).abs() < 1e-6);
        assert!(ssim(&Plane::filled(10, 30, 1.0), &Plane::filled(10, 30, 1.0)).is_err());
    }

    #[test]
    fn ssim_matches_scikit_image_on_a_reference_pair() {
        // scikit-image 0.26.0's structural_similarity(gaussian_weights=True, sigma=1.5,
        // use_sample_covariance=False, data_range=255) of the same two patterns (written out in
        // Python by the same formula) gave these.
        let first = Plane::luma(&pattern(48, 40, 1));
        let second = Plane::luma(&pattern(48, 40, 2));
        let measured = ssim(&first, &second).unwrap();
        assert!((measured - SCIKIT_IMAGE_SSIM).abs() < 1e-4, "{measured}");
    }

    /// See the test above.
    const SCIKIT_IMAGE_SSIM: f64 = 0.737_636_178_802_540_5;

    #[test]
    fn psnr_and_errors_follow_their_definitions() {
        let black = RgbaImage::from_pixel(16, 16, Rgba([0, 0, 0, 255]));
        let mut marked = black.clone();
        marked.put_pixel(0, 0, Rgba([255, 255, 255, 255]));
        let comparison = compare(&black, &marked).unwrap();
        // One pixel of 256 fully off in every channel: MSE 255^2 / 256, so PSNR is 10 log10(256).
        assert!((comparison.psnr_db.unwrap() - 10.0 * 256f64.log10()).abs() < 1e-9);
        assert!((comparison.mean_absolute_error - 255.0 / 256.0).abs() < 1e-9);
        assert!((comparison.changed_fraction - 1.0 / 256.0).abs() < 1e-9);
        let white = RgbaImage::from_pixel(16, 16, Rgba([255, 255, 255, 255]));
        let opposite = compare(&black, &white).unwrap();
        assert!((opposite.histogram_distance - 1.0).abs() < 1e-9);
        assert_eq!(opposite.verdict, "different");
        assert!(compare(&black, &RgbaImage::new(16, 15)).is_err());
    }

    #[test]
    fn the_buffer_hash_is_the_library_hash() {
        let image = pattern(40, 30, 3);
        assert_eq!(
            rgba_difference_hash(&image),
            difference_hash(&DynamicImage::ImageRgba8(image.clone()))
        );
    }

    #[test]
    fn the_heatmap_is_black_where_equal_and_bright_where_not() {
        let black = RgbaImage::from_pixel(2, 1, Rgba([0, 0, 0, 255]));
        let mut other = black.clone();
        other.put_pixel(1, 0, Rgba([255, 0, 0, 255]));
        let map = heatmap(&black, &other).unwrap();
        assert_eq!(map.get_pixel(0, 0).0, [0, 0, 0, 255]);
        assert_eq!(map.get_pixel(1, 0).0, [255, 255, 255, 255]);
    }
}
