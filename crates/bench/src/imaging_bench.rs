//! `comfyui-mcp-imaging-bench`: how fast the native pixel operations (comfy-imaging, what the
//! `edit` and `analysis` tools run) are on a 1024 x 1024 image, one thread, the median of
//! repeated runs of each. The images are made in memory first; decoding and encoding are not
//! timed (they are the `image` crate's, shared with every preview).
//!
//! `comfyui-mcp-imaging-bench [--side 1024] [--repeat 15]`

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use comfy_imaging::{RgbaImage, analyze, blend, color, compare, geometry, mask};

#[derive(Debug, Parser)]
#[command(
    name = "comfyui-mcp-imaging-bench",
    about = "Times the native pixel operations"
)]
struct Arguments {
    /// The side of the square test images
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(16..=8192))]
    side: u32,
    /// Timed runs of each operation; the median is reported
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u16).range(1..))]
    repeat: u16,
}

/// A photograph-like test image: smooth gradients, a disc and hashed noise.
fn test_image(side: u32, seed: u32) -> RgbaImage {
    RgbaImage::from_fn(side, side, |column, row| {
        let noise =
            (column.wrapping_mul(7919) ^ row.wrapping_mul(104_729) ^ seed.wrapping_mul(15_485_863)) % 32;
        let (x, y) = (column as f32 / side as f32 - 0.5, row as f32 / side as f32 - 0.5);
        let disc = if x * x + y * y < 0.09 { 80 } else { 0 };
        let red = (column * 200 / side + noise + disc).min(255) as u8;
        let green = (row * 180 / side + noise) as u8;
        let blue = ((column + row) * 100 / side + noise) as u8;
        image::Rgba([red, green, blue, 255])
    })
}

fn median_of(repeat: u16, mut work: impl FnMut()) -> Duration {
    work();
    let mut times: Vec<Duration> = (0..repeat)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn part(shape: mask::ShapeKind) -> mask::MaskPart {
    mask::MaskPart {
        relative: true,
        ..mask::MaskPart::new(shape)
    }
}

fn run(arguments: &Arguments) -> Result<Vec<(&'static str, Duration)>, comfy_imaging::ImagingError> {
    let side = arguments.side;
    let base = test_image(side, 1);
    let other = test_image(side, 2);
    let repeat = arguments.repeat;
    let ellipse = mask::MaskPart {
        x: Some(0.2),
        y: Some(0.2),
        width: Some(0.6),
        height: Some(0.5),
        ..part(mask::ShapeKind::Ellipse)
    };
    let polygon = mask::MaskPart {
        combine: mask::Combine::Subtract,
        points: Some(vec![[0.5, 0.1], [0.9, 0.8], [0.1, 0.8]]),
        ..part(mask::ShapeKind::Polygon)
    };
    let colour = mask::MaskPart {
        combine: mask::Combine::Add,
        color: Some("#c08040".into()),
        tolerance: Some(0.15),
        ..part(mask::ShapeKind::Color)
    };
    let parts = [ellipse, polygon, colour]
        .iter()
        .map(|written| {
            Ok(mask::Part {
                shape: written.shape(side, side)?,
                combine: written.combine,
                source: Some(&base),
            })
        })
        .collect::<Result<Vec<_>, comfy_imaging::ImagingError>>()?;
    let built = mask::build(side, side, &parts)?;
    let soft = mask::refine(
        &built,
        mask::Refinement {
            feather: 8.0,
            ..Default::default()
        },
    )?;
    let correction = color::Correction {
        white_balance: Some(color::WhiteBalance::GrayWorld),
        auto_levels: Some(0.005),
        levels: Some(color::Levels {
            gamma: 1.2,
            ..Default::default()
        }),
        contrast: 1.1,
        saturation: 1.2,
        ..Default::default()
    };
    let how = blend::Blend {
        mode: blend::BlendMode::Overlay,
        opacity: 0.8,
        offset: (0, 0),
    };
    let resize = geometry::Resize {
        width: Some(side / 2),
        height: None,
        fit: geometry::Fit::Contain,
        filter: geometry::Filter::Lanczos,
    };
    let padding = geometry::Padding {
        left: side / 4,
        right: side / 4,
        top: 0,
        bottom: 0,
    };
    let mut timings = Vec::new();
    let mut time = |name: &'static str, work: &mut dyn FnMut() -> Result<(), comfy_imaging::ImagingError>| {
        let mut failure = None;
        let median = median_of(repeat, || {
            if let Err(error) = work() {
                failure = Some(error);
            }
        });
        match failure {
            Some(error) => Err(error),
            None => {
                timings.push((name, median));
                Ok(())
            }
        }
    };
    time("mask: ellipse - polygon + colour", &mut || {
        mask::build(side, side, &parts).map(drop)
    })?;
    time("mask: grow 16 px (hard)", &mut || {
        mask::refine(
            &built,
            mask::Refinement {
                grow: 16.0,
                ..Default::default()
            },
        )
        .map(drop)
    })?;
    time("mask: grow 8 px (soft)", &mut || {
        mask::refine(
            &soft,
            mask::Refinement {
                grow: 8.0,
                ..Default::default()
            },
        )
        .map(drop)
    })?;
    time("mask: feather 8 px", &mut || {
        mask::refine(
            &built,
            mask::Refinement {
                feather: 8.0,
                ..Default::default()
            },
        )
        .map(drop)
    })?;
    time("blend: overlay, masked", &mut || {
        blend::blend(&base, &other, Some(&soft), how).map(drop)
    })?;
    time("colour: five steps", &mut || {
        color::correct(&base, &correction, None).map(drop)
    })?;
    time("colour: histogram match", &mut || {
        let matching = color::Correction {
            match_histogram: true,
            ..Default::default()
        };
        color::correct(&base, &matching, Some(&other)).map(drop)
    })?;
    time("resize to half, lanczos", &mut || {
        geometry::resize(&base, resize).map(drop)
    })?;
    time("pad for outpainting", &mut || {
        geometry::pad(&base, padding, comfy_imaging::Color::BLACK).map(drop)
    })?;
    time("compare (SSIM, PSNR, hashes)", &mut || {
        compare::compare(&base, &other).map(drop)
    })?;
    time("difference heatmap", &mut || {
        compare::heatmap(&base, &other).map(drop)
    })?;
    time("analyze composition", &mut || {
        analyze::analyze(&base, 5).map(drop)
    })?;
    Ok(timings)
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    match run(&arguments) {
        Ok(timings) => {
            let mut out = std::io::stdout().lock();
            let side = arguments.side;
            let _ = writeln!(out, "| operation on {side} x {side} | median | megapixels/s |");
            let _ = writeln!(out, "|---|---|---|");
            let megapixels = f64::from(side) * f64::from(side) / 1e6;
            for (name, median) in timings {
                let _ = writeln!(
                    out,
                    "| {name} | {:.1} ms | {:.0} |",
                    median.as_secs_f64() * 1000.0,
                    megapixels / median.as_secs_f64()
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("comfyui-mcp-imaging-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
