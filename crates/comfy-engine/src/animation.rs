//! Animated outputs (animated WebP, GIF: what `SaveAnimatedWEBP` and many video nodes write) as
//! one still: a contact sheet of frames taken evenly across the animation, so a client that
//! cannot play it, or a file too large to inline, still shows what moves. Frames are decoded one
//! at a time and only small thumbnails are kept, so a long animation costs time, not memory.
//! The choice of frames, the thumbnails and the tiling are shared with the video sheet.

use std::io::Cursor;

use image::{AnimationDecoder, DynamicImage, GenericImage, ImageDecoder, RgbaImage, imageops};

/// Frames on the sheet, as a square grid.
const SHEET_FRAMES: usize = 9;
const COLUMNS: u32 = 3;
/// Longest side of one frame on the sheet.
const CELL: u32 = 320;
/// Frames decoded at most; the sheet covers the first this many of a longer animation.
const MAXIMUM_FRAMES: usize = 2_000;
/// Largest canvas a frame may have (videos' frames too).
pub(crate) const MAXIMUM_SIDE: u32 = 8_192;

/// A contact sheet of an animated GIF or WebP, with the number of frames decoded; `None` for a
/// still image or anything that does not decode.
pub fn contact_sheet(bytes: &[u8]) -> Option<(DynamicImage, usize)> {
    let format = image::guess_format(bytes).ok()?;
    let (width, height, frames): (u32, u32, image::Frames<'_>) = match format {
        image::ImageFormat::Gif => {
            let decoder = image::codecs::gif::GifDecoder::new(Cursor::new(bytes)).ok()?;
            let (width, height) = decoder.dimensions();
            (width, height, decoder.into_frames())
        }
        image::ImageFormat::WebP => {
            let decoder = image::codecs::webp::WebPDecoder::new(Cursor::new(bytes)).ok()?;
            if !decoder.has_animation() {
                return None;
            }
            let (width, height) = decoder.dimensions();
            (width, height, decoder.into_frames())
        }
        _ => return None,
    };
    if width == 0 || height == 0 || width > MAXIMUM_SIDE || height > MAXIMUM_SIDE {
        return None;
    }
    let (kept, decoded) = sample_frames(frames)?;
    if decoded < 2 {
        return None;
    }
    Some((tile(&kept), decoded))
}

/// Thumbnails of frames spread across the animation: every `stride`-th frame is kept, and when
/// twice the sheet's worth are kept, every other one is dropped and the stride doubles.
fn sample_frames(frames: image::Frames<'_>) -> Option<(Vec<RgbaImage>, usize)> {
    let mut kept: Vec<RgbaImage> = Vec::new();
    let mut stride = 1;
    let mut decoded = 0;
    for frame in frames.take(MAXIMUM_FRAMES) {
        let Ok(frame) = frame else { break };
        if decoded % stride == 0 {
            kept.push(thumbnail(frame.into_buffer()));
            if kept.len() >= 2 * SHEET_FRAMES {
                kept = kept.into_iter().step_by(2).collect();
                stride *= 2;
            }
        }
        decoded += 1;
    }
    if kept.is_empty() {
        return None;
    }
    let chosen = spread(kept.len());
    let kept = kept
        .into_iter()
        .enumerate()
        .filter(|(index, _)| chosen.contains(index))
        .map(|(_, frame)| frame)
        .collect();
    Some((kept, decoded))
}

/// Which of `count` frames go on a sheet: at most [`SHEET_FRAMES`], evenly spaced, the first and
/// the last included, in increasing order.
pub(crate) fn spread(count: usize) -> Vec<usize> {
    let cells = SHEET_FRAMES.min(count);
    if cells < 2 {
        return (0..cells).collect();
    }
    let gaps = cells - 1;
    (0..cells)
        .map(|cell| (cell * (count - 1) + gaps / 2) / gaps)
        .collect()
}

/// `frame` shrunk to fit a cell of the sheet, [`CELL`] on its longest side, proportions kept.
pub(crate) fn thumbnail(frame: RgbaImage) -> RgbaImage {
    let (width, height) = frame.dimensions();
    let longest = width.max(height);
    if longest <= CELL {
        return frame;
    }
    let scaled = |side: u32| (u64::from(side) * u64::from(CELL) / u64::from(longest)).max(1) as u32;
    imageops::thumbnail(&frame, scaled(width), scaled(height))
}

/// The frames in rows of [`COLUMNS`], each centred in a cell as large as the largest of them.
pub(crate) fn tile(frames: &[RgbaImage]) -> DynamicImage {
    let cell_width = frames.iter().map(RgbaImage::width).max().unwrap_or(1);
    let cell_height = frames.iter().map(RgbaImage::height).max().unwrap_or(1);
    let columns = COLUMNS.min(frames.len() as u32).max(1);
    let rows = (frames.len() as u32).div_ceil(columns);
    let gap = 4;
    let mut sheet = RgbaImage::from_pixel(
        columns * cell_width + (columns + 1) * gap,
        rows * cell_height + (rows + 1) * gap,
        image::Rgba([24, 26, 32, 255]),
    );
    for (index, frame) in frames.iter().enumerate() {
        let column = index as u32 % columns;
        let row = index as u32 / columns;
        let x = gap + column * (cell_width + gap) + (cell_width - frame.width()) / 2;
        let y = gap + row * (cell_height + gap) + (cell_height - frame.height()) / 2;
        let _ = sheet.copy_from(frame, x, y);
    }
    DynamicImage::ImageRgba8(sheet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};

    /// A GIF whose frame `i` is a solid grey of level `i * 10`.
    fn grey_ramp_gif(frames: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut bytes);
            for index in 0..frames {
                let level = (index * 10).min(255) as u8;
                let buffer = RgbaImage::from_pixel(40, 24, image::Rgba([level, level, level, 255]));
                encoder
                    .encode_frame(Frame::from_parts(
                        buffer,
                        0,
                        0,
                        Delay::from_numer_denom_ms(100, 1),
                    ))
                    .expect("a frame");
            }
        }
        bytes
    }

    #[test]
    fn frames_are_taken_evenly_across_the_animation() {
        let (sheet, decoded) = contact_sheet(&grey_ramp_gif(25)).expect("an animated GIF");
        assert_eq!(decoded, 25);
        // 9 cells of 40 x 24 in 3 x 3 with 4-pixel gaps.
        assert_eq!((sheet.width(), sheet.height()), (3 * 40 + 16, 3 * 24 + 16));
        let sheet = sheet.to_rgba8();
        let level = |cell: u32| {
            sheet
                .get_pixel(4 + (cell % 3) * 44 + 20, 4 + (cell / 3) * 28 + 12)
                .0[0]
        };
        let levels: Vec<u8> = (0..9).map(level).collect();
        assert_eq!(levels[0], 0, "{levels:?}");
        assert!(
            levels.windows(2).all(|pair| pair[1] > pair[0]),
            "in order: {levels:?}"
        );
        assert!(levels[8] >= 200, "reaches the end: {levels:?}");
    }

    #[test]
    fn the_sheet_spans_first_to_last_and_keeps_proportions() {
        assert_eq!(spread(25), [0, 3, 6, 9, 12, 15, 18, 21, 24]);
        assert_eq!(spread(10), [0, 1, 2, 3, 5, 6, 7, 8, 9]);
        assert_eq!(spread(3), [0, 1, 2]);
        assert_eq!(spread(1), [0]);
        assert!(spread(0).is_empty());
        let wide = thumbnail(RgbaImage::new(1280, 720));
        assert_eq!(wide.dimensions(), (320, 180));
        let small = thumbnail(RgbaImage::new(40, 24));
        assert_eq!(small.dimensions(), (40, 24));
    }

    #[test]
    fn stills_and_garbage_have_no_sheet() {
        assert!(contact_sheet(&grey_ramp_gif(1)).is_none());
        assert!(contact_sheet(b"GIF89a not really").is_none());
        assert!(contact_sheet(b"").is_none());
    }
}
