//! One-channel float images and the filters the operations share: luma, a separable Gaussian
//! blur, the exact Euclidean distance transform, greyscale dilation by a disc, the Laplacian.

use image::{GrayImage, RgbaImage};

/// A width x height grid of values, row by row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plane {
    pub width: usize,
    pub height: usize,
    pub values: Vec<f32>,
}

impl Plane {
    pub fn filled(width: usize, height: usize, value: f32) -> Plane {
        Plane {
            width,
            height,
            values: vec![value; width * height],
        }
    }

    /// Luma (ITU-R BT.601 weights, as ComfyUI's and most tools' greyscale), 0..=255.
    pub fn luma(image: &RgbaImage) -> Plane {
        let values = image
            .pixels()
            .map(|pixel| {
                let [red, green, blue, _] = pixel.0;
                0.299 * f32::from(red) + 0.587 * f32::from(green) + 0.114 * f32::from(blue)
            })
            .collect();
        Plane {
            width: image.width() as usize,
            height: image.height() as usize,
            values,
        }
    }

    /// A mask's values, 0..=1.
    pub fn of_mask(mask: &GrayImage) -> Plane {
        Plane {
            width: mask.width() as usize,
            height: mask.height() as usize,
            values: mask
                .as_raw()
                .iter()
                .map(|&value| f32::from(value) / 255.0)
                .collect(),
        }
    }

    /// Values 0..=1 back into a mask, rounded.
    pub fn to_mask(&self) -> GrayImage {
        let bytes = self.values.iter().map(|&value| crate::to_byte(value)).collect();
        GrayImage::from_raw(self.width as u32, self.height as u32, bytes)
            .unwrap_or_else(|| GrayImage::new(self.width as u32, self.height as u32))
    }

    pub fn mean(&self) -> f64 {
        if self.values.is_empty() {
            return 0.0;
        }
        self.values.iter().map(|&value| f64::from(value)).sum::<f64>() / self.values.len() as f64
    }

    /// `self * other`, value by value (same size).
    pub fn times(&self, other: &Plane) -> Plane {
        Plane {
            width: self.width,
            height: self.height,
            values: self
                .values
                .iter()
                .zip(&other.values)
                .map(|(left, right)| left * right)
                .collect(),
        }
    }
}

/// `index` folded into `0..length` by mirroring about the edges, the edge value repeated
/// (`d c b a | a b c d | d c b a`), as SciPy's `reflect` mode does.
fn mirror(index: isize, length: usize) -> usize {
    let length = length as isize;
    let period = 2 * length;
    let folded = index.rem_euclid(period);
    (if folded < length {
        folded
    } else {
        period - 1 - folded
    }) as usize
}

/// A normalised Gaussian kernel of standard deviation `sigma`, cut at `truncate` deviations.
fn gaussian_kernel(sigma: f32, truncate: f32) -> Vec<f32> {
    let radius = (truncate * sigma + 0.5) as isize;
    let weights: Vec<f32> = (-radius..=radius)
        .map(|offset| (-0.5 * (offset as f32 / sigma).powi(2)).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    weights.into_iter().map(|weight| weight / total).collect()
}

/// Kernels longer than this are approximated by three box blurs, whose cost does not grow with
/// the radius (a feather of 512 pixels would otherwise take 3,600 taps a pixel).
const MAXIMUM_TAPS: usize = 63;

/// A Gaussian blur of standard deviation `sigma` (cut at 3.5 deviations, as scikit-image's SSIM
/// window), edges mirrored; `sigma` <= 0 leaves the plane as it is. Past [`MAXIMUM_TAPS`] it is
/// three box blurs of the same variance, in time linear in the pixels.
pub(crate) fn gaussian_blur(plane: &Plane, sigma: f32) -> Plane {
    if sigma <= 0.0 || plane.values.is_empty() {
        return plane.clone();
    }
    let kernel = gaussian_kernel(sigma, 3.5);
    if kernel.len() > MAXIMUM_TAPS {
        return box_blurs(plane, sigma);
    }
    let radius = (kernel.len() / 2) as isize;
    let (width, height) = (plane.width, plane.height);
    let mut across = vec![0.0f32; width * height];
    // Each row mirrored into a padded copy once, so the inner loop is a plain dot product.
    let mut padded = vec![0.0f32; width + 2 * radius as usize];
    for row in 0..height {
        let line = &plane.values[row * width..(row + 1) * width];
        for (index, cell) in padded.iter_mut().enumerate() {
            *cell = line[mirror(index as isize - radius, width)];
        }
        for (column, target) in across[row * width..(row + 1) * width].iter_mut().enumerate() {
            *target = kernel
                .iter()
                .zip(&padded[column..column + kernel.len()])
                .map(|(weight, value)| weight * value)
                .sum();
        }
    }
    let mut values = vec![0.0f32; width * height];
    for row in 0..height {
        for (tap, weight) in kernel.iter().enumerate() {
            let source = mirror(row as isize + tap as isize - radius, height) * width;
            let target = row * width;
            for column in 0..width {
                values[target + column] += weight * across[source + column];
            }
        }
    }
    Plane {
        width,
        height,
        values,
    }
}

/// Three box blurs whose total variance is `sigma` squared (each of half-width r has variance
/// r(r+1)/3), each pass along rows then columns with a running sum, edges mirrored.
fn box_blurs(plane: &Plane, sigma: f32) -> Plane {
    let variance = sigma * sigma / 3.0;
    let half = ((0.25 + 3.0 * variance).sqrt() - 0.5).round().max(1.0) as usize;
    let mut current = plane.clone();
    for _ in 0..3 {
        current = box_pass(&current, half, true);
        current = box_pass(&current, half, false);
    }
    current
}

/// One box blur of half-width `half` along rows (`across`) or columns.
fn box_pass(plane: &Plane, half: usize, across: bool) -> Plane {
    let (width, height) = (plane.width, plane.height);
    let (lines, length) = if across { (height, width) } else { (width, height) };
    let at = |line: usize, index: usize| {
        if across {
            line * width + index
        } else {
            index * width + line
        }
    };
    let mut values = vec![0.0f32; width * height];
    let window = (2 * half + 1) as f32;
    for line in 0..lines {
        let value = |index: isize| f64::from(plane.values[at(line, mirror(index, length))]);
        let mut sum: f64 = (-(half as isize)..=half as isize).map(value).sum();
        for index in 0..length {
            values[at(line, index)] = (sum / f64::from(window)) as f32;
            sum += value(index as isize + half as isize + 1) - value(index as isize - half as isize);
        }
    }
    Plane {
        width,
        height,
        values,
    }
}

/// Squared distance from every cell to the nearest cell where `inside` is true (exact Euclidean,
/// Felzenszwalb and Huttenlocher's two-pass lower envelope); `f32::INFINITY` everywhere when no
/// cell is inside.
pub(crate) fn squared_distances(inside: &[bool], width: usize, height: usize) -> Vec<f32> {
    const FAR: f32 = 1e20;
    let mut grid: Vec<f32> = inside.iter().map(|&is| if is { 0.0 } else { FAR }).collect();
    let longest = width.max(height);
    let mut line = vec![0.0f32; longest];
    let mut out = vec![0.0f32; longest];
    let mut scratch = Envelope::with_capacity(longest);
    for column in 0..width {
        for row in 0..height {
            line[row] = grid[row * width + column];
        }
        scratch.transform(&line[..height], &mut out[..height]);
        for row in 0..height {
            grid[row * width + column] = out[row];
        }
    }
    for row in 0..height {
        let cells = &mut grid[row * width..(row + 1) * width];
        line[..width].copy_from_slice(cells);
        scratch.transform(&line[..width], &mut out[..width]);
        cells.copy_from_slice(&out[..width]);
    }
    for value in &mut grid {
        if *value >= FAR / 2.0 {
            *value = f32::INFINITY;
        }
    }
    grid
}

/// The buffers of the one-dimensional squared distance transform.
struct Envelope {
    parabolas: Vec<usize>,
    boundaries: Vec<f32>,
}

impl Envelope {
    fn with_capacity(length: usize) -> Envelope {
        Envelope {
            parabolas: vec![0; length],
            boundaries: vec![0.0; length + 1],
        }
    }

    /// `out[q] = min over p of (q - p)^2 + f[p]`.
    fn transform(&mut self, f: &[f32], out: &mut [f32]) {
        let length = f.len();
        if length == 0 {
            return;
        }
        let intersection = |p: usize, q: usize| -> f32 {
            let (p_f, q_f) = (p as f32, q as f32);
            ((f[q] + q_f * q_f) - (f[p] + p_f * p_f)) / (2.0 * (q_f - p_f))
        };
        let mut count = 0usize;
        self.parabolas[0] = 0;
        self.boundaries[0] = f32::NEG_INFINITY;
        self.boundaries[1] = f32::INFINITY;
        for q in 1..length {
            let mut crossing = intersection(self.parabolas[count], q);
            while crossing <= self.boundaries[count] {
                if count == 0 {
                    break;
                }
                count -= 1;
                crossing = intersection(self.parabolas[count], q);
            }
            if crossing <= self.boundaries[count] {
                // Only reachable with count 0: the new parabola replaces the first one.
                self.parabolas[0] = q;
                self.boundaries[1] = f32::INFINITY;
                continue;
            }
            count += 1;
            self.parabolas[count] = q;
            self.boundaries[count] = crossing;
            self.boundaries[count + 1] = f32::INFINITY;
        }
        let mut current = 0usize;
        for (q, value) in out.iter_mut().enumerate() {
            while self.boundaries[current + 1] < q as f32 {
                current += 1;
            }
            let p = self.parabolas[current];
            let offset = q as f32 - p as f32;
            *value = offset * offset + f[p];
        }
    }
}

/// Greyscale dilation by a disc of `radius` cells: each cell becomes the largest value within
/// that distance. Rows are scanned with a sliding maximum (van Herk / Gil-Werman), one per
/// distinct half-width of the disc.
pub(crate) fn dilate_disc(plane: &Plane, radius: usize) -> Plane {
    if radius == 0 {
        return plane.clone();
    }
    let (width, height) = (plane.width, plane.height);
    let mut result = Plane::filled(width, height, f32::NEG_INFINITY);
    let mut widened = vec![0.0f32; width];
    let mut scratch = SlidingMaximum::new(width);
    for offset in -(radius as isize)..=(radius as isize) {
        let half = ((radius * radius) as f32 - (offset * offset) as f32)
            .sqrt()
            .floor() as usize;
        for row in 0..height {
            let source = row as isize + offset;
            if source < 0 || source >= height as isize {
                continue;
            }
            let line = &plane.values[source as usize * width..(source as usize + 1) * width];
            scratch.run(line, half, &mut widened);
            let target = &mut result.values[row * width..(row + 1) * width];
            for (cell, value) in target.iter_mut().zip(&widened) {
                *cell = cell.max(*value);
            }
        }
    }
    result
}

/// The buffers of a sliding maximum over a window of `2 * half + 1` cells.
struct SlidingMaximum {
    padded: Vec<f32>,
    forward: Vec<f32>,
    backward: Vec<f32>,
}

impl SlidingMaximum {
    fn new(length: usize) -> SlidingMaximum {
        SlidingMaximum {
            padded: Vec::with_capacity(length),
            forward: Vec::with_capacity(length),
            backward: Vec::with_capacity(length),
        }
    }

    /// `out[i] = max(line[i - half ..= i + half])`, cells past the ends counting as nothing.
    fn run(&mut self, line: &[f32], half: usize, out: &mut [f32]) {
        // Padded by `half` on each side, every window is exactly one block long, so it covers
        // the tail of one block and the head of the next (or exactly one block).
        self.padded.clear();
        self.padded.resize(half, f32::NEG_INFINITY);
        self.padded.extend_from_slice(line);
        self.padded.resize(line.len() + 2 * half, f32::NEG_INFINITY);
        let length = self.padded.len();
        let block = 2 * half + 1;
        self.forward.resize(length, 0.0);
        self.backward.resize(length, 0.0);
        for start in (0..length).step_by(block) {
            let end = (start + block).min(length);
            let mut running = f32::NEG_INFINITY;
            for index in start..end {
                running = running.max(self.padded[index]);
                self.forward[index] = running;
            }
            running = f32::NEG_INFINITY;
            for index in (start..end).rev() {
                running = running.max(self.padded[index]);
                self.backward[index] = running;
            }
        }
        for (index, value) in out.iter_mut().enumerate() {
            *value = self.backward[index].max(self.forward[index + 2 * half]);
        }
    }
}

/// The 4-neighbour Laplacian of a plane, edges mirrored.
pub(crate) fn laplacian(plane: &Plane) -> Plane {
    let (width, height) = (plane.width, plane.height);
    let at = |column: isize, row: isize| plane.values[mirror(row, height) * width + mirror(column, width)];
    let mut values = Vec::with_capacity(width * height);
    for row in 0..height as isize {
        for column in 0..width as isize {
            values.push(
                at(column - 1, row) + at(column + 1, row) + at(column, row - 1) + at(column, row + 1)
                    - 4.0 * at(column, row),
            );
        }
    }
    Plane {
        width,
        height,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirroring_repeats_the_edge_value() {
        let folded: Vec<usize> = (-3..7).map(|index| mirror(index, 4)).collect();
        assert_eq!(folded, [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        assert_eq!(mirror(-9, 2), 0);
    }

    #[test]
    fn a_blur_keeps_a_constant_and_the_total() {
        let constant = Plane::filled(9, 7, 3.0);
        let blurred = gaussian_blur(&constant, 2.0);
        assert!(blurred.values.iter().all(|value| (value - 3.0).abs() < 1e-4));
        let kernel = gaussian_kernel(1.5, 3.5);
        assert_eq!(
            kernel.len(),
            11,
            "scikit-image's SSIM window is 11 wide for sigma 1.5"
        );
        assert!((kernel.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn wide_blurs_keep_constants_and_totals_in_linear_time() {
        let constant = Plane::filled(40, 30, 2.0);
        let blurred = gaussian_blur(&constant, 200.0);
        assert!(blurred.values.iter().all(|value| (value - 2.0).abs() < 1e-3));
        let mut spike = Plane::filled(101, 1, 0.0);
        spike.values[50] = 1.0;
        let spread = gaussian_blur(&spike, 20.0);
        let total: f32 = spread.values.iter().sum();
        assert!((total - 1.0).abs() < 1e-3, "{total}");
        assert!(spread.values[50] > spread.values[20] && spread.values[20] > 0.0);
    }

    #[test]
    fn distances_are_exact_euclidean() {
        let (width, height) = (7, 5);
        let mut inside = vec![false; width * height];
        inside[2 * width + 3] = true;
        inside[0] = true;
        let squared = squared_distances(&inside, width, height);
        for row in 0..height {
            for column in 0..width {
                let to_center = (column as f32 - 3.0).powi(2) + (row as f32 - 2.0).powi(2);
                let to_corner = (column as f32).powi(2) + (row as f32).powi(2);
                assert_eq!(squared[row * width + column], to_center.min(to_corner));
            }
        }
        assert!(
            squared_distances(&[false; 4], 2, 2)
                .iter()
                .all(|value| value.is_infinite())
        );
    }

    #[test]
    fn dilation_by_a_disc_matches_the_definition() {
        let (width, height) = (13, 11);
        let values: Vec<f32> = (0..width * height)
            .map(|index| ((index * 7919) % 101) as f32)
            .collect();
        let plane = Plane {
            width,
            height,
            values,
        };
        for radius in [1usize, 2, 3, 5] {
            let dilated = dilate_disc(&plane, radius);
            for row in 0..height {
                for column in 0..width {
                    let mut expected = f32::NEG_INFINITY;
                    for other_row in 0..height {
                        for other_column in 0..width {
                            let dx = other_column as f32 - column as f32;
                            let dy = other_row as f32 - row as f32;
                            if dx * dx + dy * dy <= (radius * radius) as f32 {
                                expected = expected.max(plane.values[other_row * width + other_column]);
                            }
                        }
                    }
                    assert_eq!(
                        dilated.values[row * width + column],
                        expected,
                        "r {radius} at {column},{row}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_laplacian_of_a_ramp_is_zero_inside() {
        let plane = Plane {
            width: 5,
            height: 5,
            values: (0..25).map(|index| (index % 5) as f32 * 2.0).collect(),
        };
        let result = laplacian(&plane);
        assert_eq!(result.values[2 * 5 + 2], 0.0);
    }
}
