//! Labelled grids: cells in rows and columns with their axis labels drawn in an 8 x 8 bitmap
//! font (font8x8, public domain), for X/Y comparisons of generations. A cell that has no image
//! (its job failed) is drawn grey with a cross.

use font8x8::UnicodeFonts as _;
use image::imageops::{self, FilterType};
use image::{Rgba, RgbaImage};

use crate::{ImagingError, check_size, invalid};

const BACKGROUND: Rgba<u8> = Rgba([255, 255, 255, 255]);
const INK: Rgba<u8> = Rgba([20, 20, 20, 255]);
const MISSING: Rgba<u8> = Rgba([200, 200, 200, 255]);
/// Pixels between cells and around labels.
const GAP: u32 = 4;
/// Most characters of a label drawn (longer ones end in "...").
pub const MAXIMUM_LABEL_CHARACTERS: usize = 40;

/// A grid of `cells` (row by row, `columns` to a row), each scaled to `cell` pixels, with a label
/// over each column and left of each row (either list may be empty).
pub fn labelled_grid(
    cells: &[Option<RgbaImage>],
    columns: usize,
    cell: (u32, u32),
    column_labels: &[String],
    row_labels: &[String],
) -> Result<RgbaImage, ImagingError> {
    if columns == 0 || cells.is_empty() {
        return Err(invalid("a grid needs at least one cell and one column"));
    }
    let rows = cells.len().div_ceil(columns);
    let scale = if cell.0.min(cell.1) >= 256 { 2 } else { 1 };
    let glyph = 8 * scale;
    let label_width = |labels: &[String]| {
        labels
            .iter()
            .map(|label| shown(label).chars().count() as u32)
            .max()
            .unwrap_or(0)
            * glyph
    };
    let left = if row_labels.is_empty() {
        0
    } else {
        label_width(row_labels) + 2 * GAP
    };
    let top = if column_labels.is_empty() {
        0
    } else {
        glyph + 2 * GAP
    };
    let width = u64::from(left) + columns as u64 * u64::from(cell.0 + GAP) + u64::from(GAP);
    let height = u64::from(top) + rows as u64 * u64::from(cell.1 + GAP) + u64::from(GAP);
    let (width, height) = check_size(width, height)?;
    let mut sheet = RgbaImage::from_pixel(width, height, BACKGROUND);
    for (index, image) in cells.iter().enumerate() {
        let (column, row) = ((index % columns) as u32, (index / columns) as u32);
        let x = left + GAP + column * (cell.0 + GAP);
        let y = top + GAP + row * (cell.1 + GAP);
        match image {
            Some(image) => {
                let fitted = imageops::resize(image, cell.0, cell.1, FilterType::Triangle);
                imageops::overlay(&mut sheet, &fitted, i64::from(x), i64::from(y));
            }
            None => draw_missing(&mut sheet, x, y, cell),
        }
    }
    for (column, label) in column_labels.iter().enumerate().take(columns) {
        let x = left + GAP + column as u32 * (cell.0 + GAP);
        let text_width = shown(label).chars().count() as u32 * glyph;
        let centred = x + cell.0.saturating_sub(text_width) / 2;
        draw_text(&mut sheet, centred, GAP, label, scale);
    }
    for (row, label) in row_labels.iter().enumerate().take(rows) {
        let y = top + GAP + row as u32 * (cell.1 + GAP) + cell.1.saturating_sub(glyph) / 2;
        draw_text(&mut sheet, GAP, y, label, scale);
    }
    Ok(sheet)
}

/// The label as drawn: cut to [`MAXIMUM_LABEL_CHARACTERS`].
fn shown(label: &str) -> String {
    if label.chars().count() <= MAXIMUM_LABEL_CHARACTERS {
        return label.to_owned();
    }
    let cut: String = label.chars().take(MAXIMUM_LABEL_CHARACTERS - 3).collect();
    format!("{cut}...")
}

/// Draws `text` with its top-left corner at `x`, `y`; characters the font lacks become `?`.
pub fn draw_text(image: &mut RgbaImage, x: u32, y: u32, text: &str, scale: u32) {
    for (index, character) in shown(text).chars().enumerate() {
        let rows = font8x8::BASIC_FONTS
            .get(character)
            .or_else(|| font8x8::LATIN_FONTS.get(character))
            .or_else(|| font8x8::BASIC_FONTS.get('?'))
            .unwrap_or([0; 8]);
        let origin_x = x + index as u32 * 8 * scale;
        for (row, bits) in rows.iter().enumerate() {
            for column in 0..8u32 {
                if bits & (1 << column) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (px, py) = (origin_x + column * scale + dx, y + row as u32 * scale + dy);
                        if px < image.width() && py < image.height() {
                            image.put_pixel(px, py, INK);
                        }
                    }
                }
            }
        }
    }
}

fn draw_missing(sheet: &mut RgbaImage, x: u32, y: u32, cell: (u32, u32)) {
    for dy in 0..cell.1 {
        for dx in 0..cell.0 {
            // A cross from corner to corner on grey.
            let on_diagonal = (u64::from(dx) * u64::from(cell.1)).abs_diff(u64::from(dy) * u64::from(cell.0))
                <= u64::from(cell.0.max(cell.1))
                || (u64::from(cell.0 - 1 - dx) * u64::from(cell.1))
                    .abs_diff(u64::from(dy) * u64::from(cell.0))
                    <= u64::from(cell.0.max(cell.1));
            let colour = if on_diagonal { INK } else { MISSING };
            if x + dx < sheet.width() && y + dy < sheet.height() {
                sheet.put_pixel(x + dx, y + dy, colour);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_places_cells_and_draws_labels() {
        let red = RgbaImage::from_pixel(10, 10, Rgba([255, 0, 0, 255]));
        let cells = vec![Some(red.clone()), None, Some(red.clone()), Some(red)];
        let labels = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
        let sheet = labelled_grid(
            &cells,
            2,
            (20, 20),
            &labels(&["seed 1", "seed 2"]),
            &labels(&["cfg 4", "cfg 8"]),
        )
        .unwrap();
        // Left: 5 characters x 8 + 8; top: 8 + 8; cells 20 with gaps of 4.
        assert_eq!(sheet.dimensions(), (48 + 4 + 2 * 24, 16 + 4 + 2 * 24));
        let first = (48 + 4 + 10, 16 + 4 + 10);
        assert_eq!(sheet.get_pixel(first.0, first.1).0, [255, 0, 0, 255]);
        let missing = (48 + 4 + 24 + 1, 16 + 4 + 10);
        assert_ne!(sheet.get_pixel(missing.0, missing.1).0, [255, 0, 0, 255]);
        let ink = sheet.pixels().filter(|pixel| **pixel == INK).count();
        assert!(ink > 100, "labels and the missing cell's cross are drawn: {ink}");
        assert!(labelled_grid(&cells, 0, (20, 20), &[], &[]).is_err());
        assert!(matches!(
            labelled_grid(&cells, 2, (16_000, 16_000), &[], &[]),
            Err(ImagingError::TooLarge { .. })
        ));
    }

    #[test]
    fn text_is_drawn_in_the_bitmap_font_and_long_labels_are_cut() {
        let mut canvas = RgbaImage::from_pixel(16, 8, BACKGROUND);
        draw_text(&mut canvas, 0, 0, "|", 1);
        assert!(canvas.pixels().any(|pixel| *pixel == INK));
        assert_eq!(shown(&"x".repeat(100)).chars().count(), MAXIMUM_LABEL_CHARACTERS);
        assert_eq!(shown("short"), "short");
    }
}
