//! The `analysis` toolset's native measures: `compare_images` (SSIM, PSNR, perceptual-hash and
//! histogram distances against a reference, with a heatmap of where they differ) and
//! `analyze_image_composition` (exposure, contrast, colour, sharpness, palette, rule of thirds).

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::images::{self, ImageArgument};
use super::render::{engine_error, error_text};
use super::server::ComfyServer;
use super::tool::{Hints, Structured, ToolDeclaration, ToolOutcome, declare_tool};
use comfy_engine::imaging::{Provenance, ResultImage, ResultPixels};
use comfy_engine::types::pixels::analyze::{self, Composition};
use comfy_engine::types::pixels::compare::{self, Comparison};
use comfy_engine::types::pixels::geometry;

/// Most images compared against one reference in one call.
const MAXIMUM_CANDIDATES: usize = 16;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CompareImagesArguments {
    /// The image the others are measured against.
    reference: ImageArgument,
    /// One to 16 images to compare with it.
    images: Vec<ImageArgument>,
    /// Also make a heatmap of where the first image differs (default: true when one image is
    /// compared), kept in the library like any result.
    heatmap: Option<bool>,
    /// Resize an image of another size to the reference's before measuring (default true; when
    /// false such an image is an error).
    #[serde(default = "yes")]
    resize: bool,
    /// Keep the heatmap on this backend.
    backend: Option<String>,
    max_preview_bytes: Option<usize>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AnalyzeCompositionArguments {
    image: ImageArgument,
    /// Colours in the dominant palette, 1..16 (default 5).
    palette_size: Option<usize>,
}

/// One image's measures against the reference.
#[derive(Debug, Serialize)]
struct Measured {
    /// The image, as its argument named it.
    image: String,
    #[serde(flatten)]
    comparison: Comparison,
    /// Its size before it was resized to the reference's, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    resized_from: Option<[u32; 2]>,
}

#[derive(Debug, Serialize)]
struct ComparisonReport {
    reference: String,
    width: u32,
    height: u32,
    /// Most similar first (by SSIM).
    results: Vec<Measured>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heatmap: Option<ResultImage>,
}

/// This toolset's tools, each declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[
    declare_tool!(
        "compare_images",
        "Compare up to 16 images with a reference natively: SSIM (structure), PSNR and mean absolute error (fidelity), perceptual-hash distance (same picture resized or recompressed?), histogram distance (same colours?), the share of changed pixels and a verdict, most similar first; with a heatmap of where the first image differs.",
        Hints::CREATES,
        CompareImagesArguments,
        compare_images,
    ),
    declare_tool!(
        "analyze_image_composition",
        "Measure one image natively: exposure (mean, median, clipped shadows and highlights), contrast (RMS, dynamic range), colour (saturation, colourfulness, warmth), sharpness (Laplacian variance), the dominant palette with shares, and the centre of visual weight against the rule-of-thirds points, each with a stated verdict.",
        Hints::READ_ONLY,
        AnalyzeCompositionArguments => Composition,
        analyze_image_composition,
    ),
];

async fn compare_images(
    server: &ComfyServer,
    arguments: CompareImagesArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    if arguments.images.is_empty() || arguments.images.len() > MAXIMUM_CANDIDATES {
        return Err(error_text(format!(
            "images: give 1 to {MAXIMUM_CANDIDATES} images; got {}",
            arguments.images.len()
        )));
    }
    let loaded = images::load(server, &arguments.reference, "reference").await?;
    let (width, height) = loaded.image.dimensions();
    // Shared, not copied, by every comparison and the heatmap.
    let (reference, origin) = (std::sync::Arc::new(loaded.image), loaded.origin);
    let mut results = Vec::new();
    let mut first_candidate = None;
    let mut backends = vec![origin.backend.clone()];
    for (index, argument) in arguments.images.iter().enumerate() {
        let candidate = images::load(server, argument, &format!("images[{index}]")).await?;
        let original = candidate.image.dimensions();
        let resized = original != (width, height);
        if resized && !arguments.resize {
            return Err(error_text(format!(
                "images[{index}] is {} x {}, the reference {width} x {height}; pass resize=true to measure it resized",
                original.0, original.1
            )));
        }
        let reference_pixels = std::sync::Arc::clone(&reference);
        let pixels = candidate.image;
        let (comparison, compared) = server
            .engine
            .compute(move || {
                let pixels = if resized {
                    let resize = geometry::Resize {
                        width: Some(width),
                        height: Some(height),
                        fit: geometry::Fit::Exact,
                        filter: geometry::Filter::Lanczos,
                    };
                    geometry::resize(&pixels, resize)?
                } else {
                    pixels
                };
                Ok((compare::compare(&reference_pixels, &pixels)?, pixels))
            })
            .await
            .map_err(|error| error_text(format!("images[{index}]: {error}")))?;
        if index == 0 {
            first_candidate = Some((compared, candidate.origin.label.clone()));
            backends.push(candidate.origin.backend.clone());
        }
        results.push(Measured {
            image: candidate.origin.label,
            comparison,
            resized_from: resized.then_some([original.0, original.1]),
        });
    }
    let heatmap = match (
        arguments.heatmap.unwrap_or(arguments.images.len() == 1),
        first_candidate,
    ) {
        (true, Some((candidate, label))) => {
            let reference_pixels = std::sync::Arc::clone(&reference);
            let map = server
                .engine
                .compute(move || compare::heatmap(&reference_pixels, &candidate))
                .await
                .map_err(|error| engine_error(&error))?;
            let provenance = Provenance {
                operation: "difference_heatmap",
                parameters: json!({"ssim": results[0].comparison.ssim}),
                sources: vec![origin.label.clone(), label],
                backend: arguments.backend.clone(),
            };
            Some(
                server
                    .engine
                    .keep_image(
                        ResultPixels::Color(map),
                        provenance,
                        &backends,
                        arguments.max_preview_bytes,
                    )
                    .await
                    .map_err(|error| engine_error(&error))?,
            )
        }
        _ => None,
    };
    results.sort_by(|left, right| right.comparison.ssim.total_cmp(&left.comparison.ssim));
    let report = ComparisonReport {
        reference: origin.label,
        width,
        height,
        results,
        heatmap,
    };
    let shown: Vec<&ResultImage> = report.heatmap.iter().collect();
    Ok(images::answer(&report, &shown))
}

async fn analyze_image_composition(
    server: &ComfyServer,
    arguments: AnalyzeCompositionArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<Composition> {
    let image = images::load(server, &arguments.image, "image").await?;
    let palette_size = arguments.palette_size.unwrap_or(5);
    let pixels = image.image;
    server
        .engine
        .compute(move || analyze::analyze(&pixels, palette_size))
        .await
        .map_err(|error| engine_error(&error))
}
