//! Masks: white (255) where selected, black where not, soft in between. Made from parts (the
//! image's alpha, a colour or luminance range, a rectangle, ellipse or polygon, the whole frame),
//! each added to, subtracted from, intersected or exclusive-or'ed with what the parts before made;
//! then grown or shrunk, feathered and inverted.
//!
//! ComfyUI's convention is kept where masks meet images: `LoadImage` reads a mask from alpha as
//! `1 - alpha`, so transparent pixels are the ones selected (what inpainting repaints). A mask
//! from alpha reads it that way, and [`as_alpha`] writes one back that way.

use image::{GrayImage, RgbaImage};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::planes::{self, Plane};
use crate::{ImagingError, check_range, invalid};

/// How a part joins what the parts before it made (values 0..1, soft masks included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    // Union: the larger of the two.
    #[default]
    Add,
    // What was selected and is not in this part.
    Subtract,
    // Only what both select: the smaller of the two.
    Intersect,
    // Selected by exactly one of them.
    Xor,
}

/// What a part selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShapeKind {
    // The image's transparency: selected as much as a pixel is transparent (ComfyUI's reading).
    Alpha,
    // Pixels within `tolerance` of `color`.
    Color,
    // Pixels whose luminance (0..1) is within `min`..`max`.
    Luminance,
    // The rectangle `x`, `y`, `width`, `height`.
    Rectangle,
    // The ellipse inscribed in the box `x`, `y`, `width`, `height`.
    Ellipse,
    // The polygon through `points` (even-odd fill).
    Polygon,
    // The whole frame (to subtract from, for example).
    All,
}

/// One part of a mask, as a caller writes it: `shape` says which of the other fields it uses.
// `Image` is however the caller names an image: this crate never reads one itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaskPart<Image = ()> {
    pub shape: ShapeKind,
    /// How this part joins the ones before it (default add; the first part starts from nothing).
    #[serde(default)]
    pub combine: Combine,
    /// For color: the colour to select, #rrggbb.
    #[serde(default)]
    pub color: Option<String>,
    /// For color: the largest distance selected, 0 (that exact colour) to 1 (everything), as a
    /// fraction of the distance from black to white in RGB (default 0.1).
    #[serde(default)]
    pub tolerance: Option<f32>,
    /// For luminance: the lowest luminance selected, 0..1 (default 0).
    #[serde(default)]
    pub min: Option<f32>,
    /// For luminance: the highest luminance selected, 0..1 (default 1).
    #[serde(default)]
    pub max: Option<f32>,
    /// For rectangle and ellipse: the left edge of the box.
    #[serde(default)]
    pub x: Option<f32>,
    /// For rectangle and ellipse: the top edge of the box.
    #[serde(default)]
    pub y: Option<f32>,
    /// For rectangle and ellipse: the box's width.
    #[serde(default)]
    pub width: Option<f32>,
    /// For rectangle and ellipse: the box's height.
    #[serde(default)]
    pub height: Option<f32>,
    /// For polygon: at least three [x, y] corners.
    #[serde(default)]
    pub points: Option<Vec<[f32; 2]>>,
    /// Coordinates are fractions of the image's width and height (0..1) instead of pixels.
    #[serde(default)]
    pub relative: bool,
    /// For alpha, color and luminance: the image whose pixels are read (default: the mask's own
    /// image). An existing black-and-white mask joins as shape luminance with min 0.5.
    #[serde(default, skip_serializing)]
    pub image: Option<Image>,
}

/// A part's shape, checked and in pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Alpha,
    Color {
        color: [u8; 3],
        tolerance: f32,
    },
    Luminance {
        min: f32,
        max: f32,
    },
    Rectangle {
        left: f32,
        top: f32,
        right: f32,
        bottom: f32,
    },
    Ellipse {
        left: f32,
        top: f32,
        right: f32,
        bottom: f32,
    },
    Polygon {
        points: Vec<[f32; 2]>,
    },
    All,
}

impl Shape {
    /// Whether the shape reads the pixels of an image (rather than only its size).
    pub fn reads_pixels(&self) -> bool {
        matches!(self, Shape::Alpha | Shape::Color { .. } | Shape::Luminance { .. })
    }
}

/// Most corners of one polygon.
pub const MAXIMUM_POLYGON_POINTS: usize = 10_000;

impl<Image> MaskPart<Image> {
    /// A part of `shape` with no other field set (combine: add).
    pub fn new(shape: ShapeKind) -> MaskPart<Image> {
        MaskPart {
            shape,
            combine: Combine::Add,
            color: None,
            tolerance: None,
            min: None,
            max: None,
            x: None,
            y: None,
            width: None,
            height: None,
            points: None,
            relative: false,
            image: None,
        }
    }

    /// The checked shape for a `width` x `height` mask, or what is wrong with the part.
    pub fn shape(&self, width: u32, height: u32) -> Result<Shape, ImagingError> {
        let name = self.shape.name();
        let (scale_x, scale_y) = if self.relative {
            (width as f32, height as f32)
        } else {
            (1.0, 1.0)
        };
        let coordinate = |value: Option<f32>, field: &str| -> Result<f32, ImagingError> {
            let value = value.ok_or_else(|| invalid(format!("a {name} part needs {field}")))?;
            if !value.is_finite() || value.abs() > 1e6 {
                return Err(invalid(format!(
                    "{name} {field} must be a finite number of pixels; got {value}"
                )));
            }
            Ok(value)
        };
        let boxed = || -> Result<(f32, f32, f32, f32), ImagingError> {
            let left = coordinate(self.x, "x")? * scale_x;
            let top = coordinate(self.y, "y")? * scale_y;
            let box_width = coordinate(self.width, "width")? * scale_x;
            let box_height = coordinate(self.height, "height")? * scale_y;
            if box_width <= 0.0 || box_height <= 0.0 {
                return Err(invalid(format!(
                    "a {name} part needs a positive width and height; got {box_width} x {box_height}"
                )));
            }
            Ok((left, top, left + box_width, top + box_height))
        };
        Ok(match self.shape {
            ShapeKind::Alpha => Shape::Alpha,
            ShapeKind::All => Shape::All,
            ShapeKind::Color => {
                let text = self
                    .color
                    .as_deref()
                    .ok_or_else(|| invalid("a color part needs color (#rrggbb)"))?;
                let [red, green, blue, _] = crate::Color::parse(text)?.0;
                let tolerance = check_range("tolerance", self.tolerance.unwrap_or(0.1), 0.0..=1.0)?;
                Shape::Color {
                    color: [red, green, blue],
                    tolerance,
                }
            }
            ShapeKind::Luminance => {
                let min = check_range("min", self.min.unwrap_or(0.0), 0.0..=1.0)?;
                let max = check_range("max", self.max.unwrap_or(1.0), 0.0..=1.0)?;
                if min > max {
                    return Err(invalid(format!("luminance min {min} is above max {max}")));
                }
                Shape::Luminance { min, max }
            }
            ShapeKind::Rectangle => {
                let (left, top, right, bottom) = boxed()?;
                Shape::Rectangle {
                    left,
                    top,
                    right,
                    bottom,
                }
            }
            ShapeKind::Ellipse => {
                let (left, top, right, bottom) = boxed()?;
                Shape::Ellipse {
                    left,
                    top,
                    right,
                    bottom,
                }
            }
            ShapeKind::Polygon => {
                let points = self
                    .points
                    .as_ref()
                    .ok_or_else(|| invalid("a polygon part needs points: [[x, y], ...]"))?;
                if points.len() < 3 || points.len() > MAXIMUM_POLYGON_POINTS {
                    return Err(invalid(format!(
                        "a polygon needs 3 to {MAXIMUM_POLYGON_POINTS} points; got {}",
                        points.len()
                    )));
                }
                if points
                    .iter()
                    .flatten()
                    .any(|value| !value.is_finite() || value.abs() > 1e6)
                {
                    return Err(invalid("polygon points must be finite numbers"));
                }
                Shape::Polygon {
                    points: points.iter().map(|[x, y]| [x * scale_x, y * scale_y]).collect(),
                }
            }
        })
    }
}

impl ShapeKind {
    /// The name a caller writes.
    pub fn name(self) -> &'static str {
        match self {
            ShapeKind::Alpha => "alpha",
            ShapeKind::Color => "color",
            ShapeKind::Luminance => "luminance",
            ShapeKind::Rectangle => "rectangle",
            ShapeKind::Ellipse => "ellipse",
            ShapeKind::Polygon => "polygon",
            ShapeKind::All => "all",
        }
    }
}

/// A checked part with the image its pixels come from, when its shape reads pixels.
#[derive(Debug)]
pub struct Part<'a> {
    pub shape: Shape,
    pub combine: Combine,
    pub source: Option<&'a RgbaImage>,
}

/// The mask the parts make, in order, on a `width` x `height` frame that starts empty.
pub fn build(width: u32, height: u32, parts: &[Part<'_>]) -> Result<GrayImage, ImagingError> {
    crate::check_size(u64::from(width), u64::from(height))?;
    if parts.is_empty() {
        return Err(invalid("a mask needs at least one part"));
    }
    let mut mask = Plane::filled(width as usize, height as usize, 0.0);
    for (index, part) in parts.iter().enumerate() {
        let coverage = coverage(&part.shape, width, height, part.source)
            .map_err(|error| invalid(format!("part {}: {error}", index + 1)))?;
        let combine = if index == 0 { Combine::Add } else { part.combine };
        for (value, covered) in mask.values.iter_mut().zip(&coverage.values) {
            *value = match combine {
                Combine::Add => value.max(*covered),
                Combine::Subtract => value.min(1.0 - covered),
                Combine::Intersect => value.min(*covered),
                Combine::Xor => (*value - covered).abs(),
            };
        }
    }
    Ok(mask.to_mask())
}

/// How much of each pixel a shape covers, 0..1.
fn coverage(
    shape: &Shape,
    width: u32,
    height: u32,
    source: Option<&RgbaImage>,
) -> Result<Plane, ImagingError> {
    let pixels = || -> Result<&RgbaImage, ImagingError> {
        let image =
            source.ok_or_else(|| invalid("this shape reads an image's pixels, and none was given"))?;
        if image.dimensions() != (width, height) {
            return Err(ImagingError::SizeMismatch {
                what: "a mask part and the mask",
                first: image.dimensions(),
                second: (width, height),
            });
        }
        Ok(image)
    };
    let (columns, rows) = (width as usize, height as usize);
    let per_pixel = |image: &RgbaImage, select: &dyn Fn([u8; 4]) -> f32| Plane {
        width: columns,
        height: rows,
        values: image.pixels().map(|pixel| select(pixel.0)).collect(),
    };
    Ok(match shape {
        Shape::All => Plane::filled(columns, rows, 1.0),
        Shape::Alpha => per_pixel(pixels()?, &|[_, _, _, alpha]| 1.0 - f32::from(alpha) / 255.0),
        Shape::Color { color, tolerance } => {
            let limit = tolerance * 255.0 * 3f32.sqrt();
            per_pixel(pixels()?, &|[red, green, blue, _]| {
                let distance = [red, green, blue]
                    .iter()
                    .zip(color)
                    .map(|(&have, &want)| (f32::from(have) - f32::from(want)).powi(2))
                    .sum::<f32>()
                    .sqrt();
                if distance <= limit { 1.0 } else { 0.0 }
            })
        }
        Shape::Luminance { min, max } => per_pixel(pixels()?, &|[red, green, blue, _]| {
            let luma = (0.299 * f32::from(red) + 0.587 * f32::from(green) + 0.114 * f32::from(blue)) / 255.0;
            if luma >= min - 1e-6 && luma <= max + 1e-6 {
                1.0
            } else {
                0.0
            }
        }),
        &Shape::Rectangle {
            left,
            top,
            right,
            bottom,
        } => {
            let mut plane = Plane::filled(columns, rows, 0.0);
            for row in 0..rows {
                let vertical = overlap(row as f32, top, bottom);
                if vertical <= 0.0 {
                    continue;
                }
                for column in 0..columns {
                    plane.values[row * columns + column] = vertical * overlap(column as f32, left, right);
                }
            }
            plane
        }
        Shape::Ellipse {
            left,
            top,
            right,
            bottom,
        } => {
            let (center_x, center_y) = ((left + right) / 2.0, (top + bottom) / 2.0);
            let (radius_x, radius_y) = ((right - left) / 2.0, (bottom - top) / 2.0);
            scanlines(columns, rows, |y| {
                let t = (y - center_y) / radius_y;
                if t.abs() >= 1.0 {
                    return Vec::new();
                }
                let half = radius_x * (1.0 - t * t).sqrt();
                vec![center_x - half, center_x + half]
            })
        }
        Shape::Polygon { points } => scanlines(columns, rows, |y| crossings(points, y)),
    })
}

/// How much of the unit cell starting at `cell` lies within `low..high`.
fn overlap(cell: f32, low: f32, high: f32) -> f32 {
    (high.min(cell + 1.0) - low.max(cell)).clamp(0.0, 1.0)
}

/// Sub-rows sampled per pixel row when filling a curved or slanted outline.
const SUBROWS: usize = 4;

/// Fills the spans `spans_at(y)` gives (sorted pairs of x: inside from the first to the second,
/// and so on) on [`SUBROWS`] lines per pixel row, each pixel covered by the exact horizontal
/// length of the spans inside it: anti-aliased edges.
fn scanlines(columns: usize, rows: usize, spans_at: impl Fn(f32) -> Vec<f32>) -> Plane {
    let mut plane = Plane::filled(columns, rows, 0.0);
    let weight = 1.0 / SUBROWS as f32;
    for row in 0..rows {
        let line = &mut plane.values[row * columns..(row + 1) * columns];
        for sub in 0..SUBROWS {
            let y = row as f32 + (sub as f32 + 0.5) * weight;
            let edges = spans_at(y);
            for span in edges.chunks_exact(2) {
                let (start, end) = (span[0].max(0.0), span[1].min(columns as f32));
                if end <= start {
                    continue;
                }
                let first = start.floor() as usize;
                let last = (end.ceil() as usize).min(columns);
                for (column, cell) in line.iter_mut().enumerate().take(last).skip(first) {
                    *cell += weight * overlap(column as f32, start, end);
                }
            }
        }
    }
    for value in &mut plane.values {
        *value = value.min(1.0);
    }
    plane
}

/// Where the horizontal line at `y` crosses the polygon's edges, sorted (even-odd pairs).
fn crossings(points: &[[f32; 2]], y: f32) -> Vec<f32> {
    let mut found = Vec::new();
    for (index, &[x0, y0]) in points.iter().enumerate() {
        let [x1, y1] = points[(index + 1) % points.len()];
        // Half-open in y, so a vertex on the line counts once.
        if (y0 <= y && y < y1) || (y1 <= y && y < y0) {
            found.push(x0 + (y - y0) / (y1 - y0) * (x1 - x0));
        }
    }
    found.sort_by(f32::total_cmp);
    found
}

/// How a mask is finished after its parts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Refinement {
    /// Pixels to grow the selection by (negative: shrink), within a disc.
    pub grow: f32,
    /// Softens the edge over about this many pixels (a Gaussian of sigma `feather / 2`).
    pub feather: f32,
    pub invert: bool,
}

/// Most pixels a mask grows, shrinks or feathers by.
pub const MAXIMUM_RADIUS: f32 = 512.0;

/// Grows or shrinks, then feathers, then inverts.
pub fn refine(mask: &GrayImage, refinement: Refinement) -> Result<GrayImage, ImagingError> {
    let grow = check_range("grow", refinement.grow, -MAXIMUM_RADIUS..=MAXIMUM_RADIUS)?;
    let feather = check_range("feather", refinement.feather, 0.0..=MAXIMUM_RADIUS)?;
    let mut plane = Plane::of_mask(mask);
    if grow > 0.0 {
        plane = grown(&plane, grow);
    } else if grow < 0.0 {
        plane = inverted(&grown(&inverted(&plane), -grow));
    }
    if feather > 0.0 {
        plane = planes::gaussian_blur(&plane, feather / 2.0);
    }
    if refinement.invert {
        plane = inverted(&plane);
    }
    Ok(plane.to_mask())
}

fn inverted(plane: &Plane) -> Plane {
    Plane {
        width: plane.width,
        height: plane.height,
        values: plane.values.iter().map(|value| 1.0 - value).collect(),
    }
}

/// Most cell visits a soft grow may cost (its disc filter visits `2 r + 1` per pixel).
const SOFT_GROW_BUDGET: f64 = 2e9;

/// Dilation by a disc of `radius`: exact Euclidean distance for a hard mask (any radius, in
/// linear time), a greyscale maximum filter for a soft one (its soft edge kept) unless that would
/// pass [`SOFT_GROW_BUDGET`], when the mask is taken at its half-way line and grown exactly.
fn grown(plane: &Plane, radius: f32) -> Plane {
    let hard = plane.values.iter().all(|&value| value == 0.0 || value == 1.0);
    let soft_cost = (2.0 * f64::from(radius.round()) + 1.0) * plane.values.len() as f64;
    if hard || soft_cost > SOFT_GROW_BUDGET {
        let inside: Vec<bool> = plane.values.iter().map(|&value| value >= 0.5).collect();
        let squared = planes::squared_distances(&inside, plane.width, plane.height);
        let limit = radius * radius;
        Plane {
            width: plane.width,
            height: plane.height,
            values: squared
                .into_iter()
                .map(|distance| if distance <= limit { 1.0 } else { 0.0 })
                .collect(),
        }
    } else {
        planes::dilate_disc(plane, radius.round() as usize)
    }
}

/// `image` with `mask` as its transparency, the ComfyUI way: selected pixels become transparent
/// (alpha = 255 - mask), which `LoadImage` reads back as this mask.
pub fn as_alpha(image: &RgbaImage, mask: &GrayImage) -> Result<RgbaImage, ImagingError> {
    if image.dimensions() != mask.dimensions() {
        return Err(ImagingError::SizeMismatch {
            what: "an image and its mask",
            first: image.dimensions(),
            second: mask.dimensions(),
        });
    }
    let mut result = image.clone();
    for (pixel, selected) in result.pixels_mut().zip(mask.pixels()) {
        pixel.0[3] = 255 - selected.0[0];
    }
    Ok(result)
}

/// A mask image read by its luminance: white selects, as a mask PNG is written.
pub fn from_luminance(image: &RgbaImage) -> GrayImage {
    let luma = Plane::luma(image);
    GrayImage::from_raw(
        image.width(),
        image.height(),
        luma.values
            .iter()
            .map(|&value| value.round().clamp(0.0, 255.0) as u8)
            .collect(),
    )
    .unwrap_or_else(|| GrayImage::new(image.width(), image.height()))
}

/// The share of the frame a mask selects, 0..1 (soft values counted by how much).
pub fn selected_fraction(mask: &GrayImage) -> f64 {
    Plane::of_mask(mask).mean()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(shape: ShapeKind) -> MaskPart {
        MaskPart::new(shape)
    }

    fn boxed(shape: ShapeKind, x: f32, y: f32, width: f32, height: f32) -> MaskPart {
        MaskPart {
            x: Some(x),
            y: Some(y),
            width: Some(width),
            height: Some(height),
            ..part(shape)
        }
    }

    fn made(width: u32, height: u32, parts: &[(MaskPart, Option<&RgbaImage>)]) -> GrayImage {
        let checked: Vec<Part<'_>> = parts
            .iter()
            .map(|(written, source)| Part {
                shape: written.shape(width, height).unwrap(),
                combine: written.combine,
                source: *source,
            })
            .collect();
        build(width, height, &checked).unwrap()
    }

    #[test]
    fn a_rectangle_covers_partial_pixels_by_area() {
        let mask = made(4, 3, &[(boxed(ShapeKind::Rectangle, 1.0, 0.5, 2.5, 1.0), None)]);
        let rows: Vec<Vec<u8>> = (0..3)
            .map(|row| (0..4).map(|column| mask.get_pixel(column, row).0[0]).collect())
            .collect();
        assert_eq!(
            rows,
            [vec![0, 128, 128, 64], vec![0, 128, 128, 64], vec![0, 0, 0, 0]]
        );
    }

    #[test]
    fn an_ellipse_covers_about_its_area_with_soft_edges() {
        let mask = made(
            200,
            100,
            &[(boxed(ShapeKind::Ellipse, 20.0, 10.0, 160.0, 80.0), None)],
        );
        let area = std::f64::consts::PI * 80.0 * 40.0;
        let measured = selected_fraction(&mask) * 200.0 * 100.0;
        assert!(
            (measured - area).abs() / area < 0.005,
            "{measured} against {area}"
        );
        assert_eq!(mask.get_pixel(100, 50).0[0], 255);
        assert_eq!(mask.get_pixel(5, 5).0[0], 0);
        assert!(mask.pixels().any(|pixel| pixel.0[0] > 0 && pixel.0[0] < 255));
    }

    #[test]
    fn a_polygon_fills_by_even_odd_and_relative_coordinates_scale() {
        let triangle = MaskPart {
            points: Some(vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
            relative: true,
            ..part(ShapeKind::Polygon)
        };
        let mask = made(100, 100, &[(triangle, None)]);
        let fraction = selected_fraction(&mask);
        assert!((fraction - 0.5).abs() < 0.01, "{fraction}");
        assert_eq!(mask.get_pixel(10, 10).0[0], 255);
        assert_eq!(mask.get_pixel(90, 90).0[0], 0);
    }

    #[test]
    fn parts_combine_in_order() {
        let whole = part(ShapeKind::All);
        let hole = MaskPart {
            combine: Combine::Subtract,
            ..boxed(ShapeKind::Rectangle, 2.0, 2.0, 4.0, 4.0)
        };
        let mask = made(8, 8, &[(whole, None), (hole, None)]);
        assert!((selected_fraction(&mask) - 48.0 / 64.0).abs() < 1e-9);
        let left = boxed(ShapeKind::Rectangle, 0.0, 0.0, 6.0, 8.0);
        let right = MaskPart {
            combine: Combine::Intersect,
            ..boxed(ShapeKind::Rectangle, 4.0, 0.0, 4.0, 8.0)
        };
        assert!((selected_fraction(&made(8, 8, &[(left.clone(), None), (right, None)])) - 0.25).abs() < 1e-9);
        let other = MaskPart {
            combine: Combine::Xor,
            ..boxed(ShapeKind::Rectangle, 4.0, 0.0, 4.0, 8.0)
        };
        assert!((selected_fraction(&made(8, 8, &[(left, None), (other, None)])) - 0.75).abs() < 1e-9);
    }

    #[test]
    fn pixel_parts_read_alpha_colour_and_luminance() {
        let image = RgbaImage::from_fn(4, 1, |column, _| match column {
            0 => image::Rgba([250, 10, 10, 255]),
            1 => image::Rgba([255, 0, 0, 0]),
            2 => image::Rgba([20, 20, 20, 255]),
            _ => image::Rgba([240, 240, 240, 128]),
        });
        let alpha = made(4, 1, &[(part(ShapeKind::Alpha), Some(&image))]);
        assert_eq!(alpha.as_raw(), &[0, 255, 0, 127]);
        let red = MaskPart {
            color: Some("#ff0000".into()),
            tolerance: Some(0.05),
            ..part(ShapeKind::Color)
        };
        assert_eq!(made(4, 1, &[(red, Some(&image))]).as_raw(), &[255, 255, 0, 0]);
        let bright = MaskPart {
            min: Some(0.8),
            ..part(ShapeKind::Luminance)
        };
        assert_eq!(made(4, 1, &[(bright, Some(&image))]).as_raw(), &[0, 0, 0, 255]);
    }

    #[test]
    fn wrong_parts_say_what_is_missing() {
        let error = part(ShapeKind::Rectangle).shape(10, 10).unwrap_err();
        assert!(error.to_string().contains("needs x"), "{error}");
        let error = part(ShapeKind::Color).shape(10, 10).unwrap_err();
        assert!(error.to_string().contains("needs color"), "{error}");
        let reversed = MaskPart {
            min: Some(0.9),
            max: Some(0.1),
            ..part(ShapeKind::Luminance)
        };
        assert!(reversed.shape(10, 10).is_err());
        let flat = boxed(ShapeKind::Ellipse, 0.0, 0.0, 0.0, 3.0);
        assert!(flat.shape(10, 10).is_err());
        let no_pixels = Part {
            shape: Shape::Alpha,
            combine: Combine::Add,
            source: None,
        };
        let error = build(4, 4, &[no_pixels]).unwrap_err();
        assert!(error.to_string().starts_with("part 1:"), "{error}");
        let small = RgbaImage::new(2, 2);
        let mismatched = Part {
            shape: Shape::Alpha,
            combine: Combine::Add,
            source: Some(&small),
        };
        assert!(build(4, 4, &[mismatched]).is_err());
    }

    #[test]
    fn growing_and_shrinking_move_the_edge_by_the_radius() {
        let dot = made(
            21,
            21,
            &[(boxed(ShapeKind::Rectangle, 10.0, 10.0, 1.0, 1.0), None)],
        );
        let grown = refine(
            &dot,
            Refinement {
                grow: 5.0,
                ..Refinement::default()
            },
        )
        .unwrap();
        // A disc of radius 5 holds 81 lattice points.
        assert_eq!(grown.pixels().filter(|pixel| pixel.0[0] == 255).count(), 81);
        let square = made(
            21,
            21,
            &[(boxed(ShapeKind::Rectangle, 5.0, 5.0, 11.0, 11.0), None)],
        );
        let shrunk = refine(
            &square,
            Refinement {
                grow: -2.0,
                ..Refinement::default()
            },
        )
        .unwrap();
        assert_eq!(shrunk.pixels().filter(|pixel| pixel.0[0] == 255).count(), 7 * 7);
        let inverted = refine(
            &square,
            Refinement {
                invert: true,
                ..Refinement::default()
            },
        )
        .unwrap();
        assert_eq!(
            inverted.pixels().filter(|pixel| pixel.0[0] == 255).count(),
            441 - 121
        );
    }

    #[test]
    fn feathering_softens_the_edge_and_keeps_the_middle() {
        let square = made(
            40,
            40,
            &[(boxed(ShapeKind::Rectangle, 10.0, 10.0, 20.0, 20.0), None)],
        );
        let soft = refine(
            &square,
            Refinement {
                feather: 6.0,
                ..Refinement::default()
            },
        )
        .unwrap();
        assert!(soft.get_pixel(20, 20).0[0] >= 254);
        let edge = soft.get_pixel(10, 20).0[0];
        assert!((100..=160).contains(&edge), "{edge}");
        assert!(soft.get_pixel(6, 20).0[0] > 0);
        assert!(
            refine(
                &square,
                Refinement {
                    feather: f32::NAN,
                    ..Refinement::default()
                }
            )
            .is_err()
        );
        assert!(
            refine(
                &square,
                Refinement {
                    grow: 10_000.0,
                    ..Refinement::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn a_mask_written_as_alpha_reads_back_the_comfyui_way() {
        let image = RgbaImage::from_pixel(3, 1, image::Rgba([9, 9, 9, 255]));
        let mask = GrayImage::from_raw(3, 1, vec![0, 128, 255]).unwrap();
        let with_alpha = as_alpha(&image, &mask).unwrap();
        let read = made(3, 1, &[(part(ShapeKind::Alpha), Some(&with_alpha))]);
        assert_eq!(read.as_raw(), mask.as_raw());
    }
}
