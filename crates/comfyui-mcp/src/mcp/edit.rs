//! The `edit` toolset's native pixel tools: masks, blends, colour correction, crop / rotate /
//! flip / resize / pad. They run in this process (no backend computes them); each result is kept
//! in a backend's input folder and the outputs library, so `LoadImage`, inpainting and every
//! later tool can take it by name or `output_id`.

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::images::{self, ImageArgument};
use super::render::{engine_error, error_text};
use super::server::ComfyServer;
use super::tool::{Hints, ToolDeclaration, ToolOutcome, declare_tool};
use comfy_engine::imaging::{Origin, Provenance, ResultImage, ResultPixels};
use comfy_engine::types::pixels::{self, Color, RgbaImage, blend, color, geometry, mask};

/// The output of make_mask.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum MaskOutput {
    // A greyscale PNG, white where selected (LoadImageMask reads it with channel red).
    #[default]
    Mask,
    // The image with the mask as its transparency, selected pixels transparent: what LoadImage
    // hands an inpainting graph as its MASK.
    Alpha,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct MakeMaskArguments {
    /// The image the mask is for: its size, and the pixels of alpha, color and luminance parts.
    image: Option<ImageArgument>,
    /// Without image: the mask's width.
    width: Option<u32>,
    /// Without image: the mask's height.
    height: Option<u32>,
    /// What the mask selects, joined in order (each part's combine: add, subtract, intersect,
    /// xor). Shapes: alpha, color (color, tolerance), luminance (min, max), rectangle and ellipse
    /// (x, y, width, height), polygon (points), all; relative=true takes coordinates as 0..1.
    parts: Vec<mask::MaskPart<ImageArgument>>,
    /// Grow the selection by this many pixels (negative shrinks it).
    #[serde(default)]
    grow: f32,
    /// Soften the edge over this many pixels.
    #[serde(default)]
    feather: f32,
    /// Select the opposite.
    #[serde(default)]
    invert: bool,
    /// mask (default) or alpha (needs image).
    #[serde(default)]
    output: MaskOutput,
    /// Keep the result on this backend (default: the image's, else the default one).
    backend: Option<String>,
    /// Largest inline preview in bytes of base64 (default: the server's budget).
    max_preview_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct BlendImagesArguments {
    /// The image underneath.
    base: ImageArgument,
    /// The image laid over it.
    layer: ImageArgument,
    /// normal (default), multiply, screen, overlay, hard_light, soft_light, darken, lighten,
    /// color_dodge, color_burn, difference, exclusion, add, subtract.
    #[serde(default)]
    mode: blend::BlendMode,
    /// 0..1 (default 1).
    opacity: Option<f32>,
    /// Where the layer shows: a mask image the base's size, white = layer, black = base.
    mask: Option<ImageArgument>,
    /// Keep the layer's own size and put its top-left corner at x, y (default false: the layer
    /// is stretched over the whole base).
    #[serde(default)]
    place: bool,
    #[serde(default)]
    x: i64,
    #[serde(default)]
    y: i64,
    backend: Option<String>,
    max_preview_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ColorCorrectionArguments {
    image: ImageArgument,
    /// gray_world (the average becomes grey), white_patch (the brightest becomes white), or a
    /// #rrggbb colour, sampled from something that should be neutral.
    white_balance: Option<String>,
    /// Match each channel's histogram to this image's (colour grading by example).
    match_histogram_of: Option<ImageArgument>,
    /// Stretch luminance so this fraction clips at each end (0..0.2; 0.005 is typical).
    auto_levels: Option<f32>,
    /// Black point, white point, gamma and output range, each 0..1 (gamma 0.1..10).
    levels: Option<color::Levels>,
    /// Added to every channel, -1..1.
    brightness: Option<f32>,
    /// Around mid-grey: 0 flat, 1 unchanged, 2 double (0..4).
    contrast: Option<f32>,
    /// 0 grey, 1 unchanged, 2 double (0..4).
    saturation: Option<f32>,
    backend: Option<String>,
    max_preview_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TransformImageArguments {
    image: ImageArgument,
    /// First: keep only this rectangle.
    crop: Option<geometry::Crop>,
    /// Then: turn clockwise by 90, 180 or 270 degrees.
    rotate: Option<i64>,
    /// Then: mirror horizontally or vertically.
    flip: Option<geometry::Flip>,
    /// Then: width and/or height, fit (contain default, cover, exact), filter (lanczos default,
    /// bicubic, bilinear, nearest).
    resize: Option<geometry::Resize>,
    /// Last: add pixels on each side (for outpainting: the answer also keeps the mask of the
    /// added border).
    pad: Option<geometry::Padding>,
    /// The padding's colour (default black; transparent for outpainting by alpha).
    pad_color: Option<String>,
    backend: Option<String>,
    max_preview_bytes: Option<usize>,
}

/// What each edit tool answers.
#[derive(Debug, Serialize)]
struct EditReport {
    operation: &'static str,
    #[serde(flatten)]
    result: ResultImage,
    /// For make_mask: the share of the frame selected.
    #[serde(skip_serializing_if = "Option::is_none")]
    selected_fraction: Option<f64>,
    /// For color_correction: what its automatic steps decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    correction: Option<color::CorrectionReport>,
    /// For transform_image with pad: the mask of the added border.
    #[serde(skip_serializing_if = "Option::is_none")]
    outpaint_mask: Option<ResultImage>,
}

impl EditReport {
    fn of(operation: &'static str, result: ResultImage) -> EditReport {
        EditReport {
            operation,
            result,
            selected_fraction: None,
            correction: None,
            outpaint_mask: None,
        }
    }
}

/// This toolset's tools, each declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[
    declare_tool!(
        "make_mask",
        "Make a mask natively (no backend work): from an image's alpha, a colour or luminance range, rectangles, ellipses, polygons or the whole frame, joined by add/subtract/intersect/xor, then grown or shrunk, feathered, inverted. Answers a white-on-black mask (or the image with the mask as alpha, for inpainting), kept in the backend's input folder and the outputs library.",
        Hints::CREATES,
        MakeMaskArguments,
        make_mask,
    ),
    declare_tool!(
        "blend_images",
        "Lay one image over another natively with a blend mode (normal, multiply, screen, overlay, soft light, difference...), an opacity and an optional mask; the layer stretched over the base or placed at x, y. The result is kept in the backend's input folder and the outputs library.",
        Hints::CREATES,
        BlendImagesArguments,
        blend_images,
    ),
    declare_tool!(
        "color_correction",
        "Correct an image's colour natively, in this order: white balance (gray world, white patch or a neutral colour), histogram match to a reference image, auto levels, levels (black/white point, gamma), brightness and contrast, saturation. Answers the result (kept in the backend's input folder and the library) and what the automatic steps chose.",
        Hints::CREATES,
        ColorCorrectionArguments,
        color_correction,
    ),
    declare_tool!(
        "transform_image",
        "Crop, rotate by quarter turns, flip, resize (contain, cover or exact; lanczos, bicubic, bilinear, nearest) and pad an image natively, in that order; padding also answers the mask of the added border for outpainting. Results are kept in the backend's input folder and the outputs library.",
        Hints::CREATES,
        TransformImageArguments,
        transform_image,
    ),
];

/// Where one call's results go: the backend that keeps them and how large their previews may be.
struct Keeper<'a> {
    server: &'a ComfyServer,
    backend: Option<String>,
    budget: Option<usize>,
}

impl Keeper<'_> {
    /// Keeps `pixels` with its provenance and previews it.
    async fn keep(
        &self,
        pixels: ResultPixels,
        operation: &'static str,
        parameters: Value,
        sources: &[Origin],
    ) -> Result<ResultImage, rmcp::model::CallToolResult> {
        let provenance = Provenance {
            operation,
            parameters,
            sources: sources.iter().map(|source| source.label.clone()).collect(),
            backend: self.backend.clone(),
        };
        let backends: Vec<Option<String>> = sources.iter().map(|source| source.backend.clone()).collect();
        self.server
            .engine
            .keep_image(pixels, provenance, &backends, self.budget)
            .await
            .map_err(|error| engine_error(&error))
    }
}

async fn compute<T: Send + 'static>(
    server: &ComfyServer,
    work: impl FnOnce() -> Result<T, pixels::ImagingError> + Send + 'static,
) -> Result<T, rmcp::model::CallToolResult> {
    server
        .engine
        .compute(work)
        .await
        .map_err(|error| engine_error(&error))
}

async fn make_mask(
    server: &ComfyServer,
    arguments: MakeMaskArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let keeper = Keeper {
        server,
        backend: arguments.backend.clone(),
        budget: arguments.max_preview_bytes,
    };
    if arguments.parts.is_empty() {
        return Err(error_text(
            "parts: give at least one part, e.g. {\"shape\": \"rectangle\", \"x\": 0, \"y\": 0, \"width\": 64, \"height\": 64}",
        ));
    }
    if arguments.parts.len() > 64 {
        return Err(error_text(format!(
            "parts: at most 64; got {}",
            arguments.parts.len()
        )));
    }
    let base = images::load_optional(server, arguments.image.as_ref(), "image").await?;
    let (width, height) = match (&base, arguments.width, arguments.height) {
        (Some(base), None, None) => base.image.dimensions(),
        (None, Some(width), Some(height)) => (width, height),
        (Some(_), _, _) => return Err(error_text("give image or width and height, not both")),
        (None, _, _) => {
            return Err(error_text(
                "give image, or width and height for a mask of shapes alone",
            ));
        }
    };
    if matches!(arguments.output, MaskOutput::Alpha) && base.is_none() {
        return Err(error_text(
            "output alpha writes the mask into image's alpha: give image",
        ));
    }
    let mut shapes = Vec::new();
    let mut part_pixels: Vec<Option<RgbaImage>> = Vec::new();
    let mut origins: Vec<Origin> = base.iter().map(|base| base.origin.clone()).collect();
    for (index, part) in arguments.parts.iter().enumerate() {
        let shape = part
            .shape(width, height)
            .map_err(|error| error_text(format!("part {}: {error}", index + 1)))?;
        let what = format!("part {} image", index + 1);
        let source = images::load_optional(server, part.image.as_ref(), &what).await?;
        if shape.reads_pixels() && source.is_none() && base.is_none() {
            return Err(error_text(format!(
                "part {}: a {} part reads pixels; give image (or the part's own image)",
                index + 1,
                part.shape.name()
            )));
        }
        shapes.push((shape, part.combine));
        part_pixels.push(source.map(|source| {
            origins.push(source.origin);
            source.image
        }));
    }
    let parameters = json!({
        "parts": arguments.parts,
        "grow": arguments.grow, "feather": arguments.feather, "invert": arguments.invert,
        "width": width, "height": height,
    });
    let refinement = mask::Refinement {
        grow: arguments.grow,
        feather: arguments.feather,
        invert: arguments.invert,
    };
    let output = arguments.output;
    let base_image = base.map(|base| base.image);
    let (pixels, fraction) = compute(server, move || {
        let parts: Vec<mask::Part<'_>> = shapes
            .into_iter()
            .zip(&part_pixels)
            .map(|((shape, combine), source)| mask::Part {
                shape,
                combine,
                source: source.as_ref().or(base_image.as_ref()),
            })
            .collect();
        let made = mask::refine(&mask::build(width, height, &parts)?, refinement)?;
        let fraction = mask::selected_fraction(&made);
        let pixels = match (output, &base_image) {
            (MaskOutput::Alpha, Some(image)) => ResultPixels::Color(mask::as_alpha(image, &made)?),
            _ => ResultPixels::Mask(made),
        };
        Ok((pixels, fraction))
    })
    .await?;
    let result = keeper.keep(pixels, "make_mask", parameters, &origins).await?;
    let report = EditReport {
        selected_fraction: Some(fraction),
        ..EditReport::of("make_mask", result)
    };
    Ok(images::answer(&report, &[&report.result]))
}

async fn blend_images(
    server: &ComfyServer,
    arguments: BlendImagesArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let keeper = Keeper {
        server,
        backend: arguments.backend.clone(),
        budget: arguments.max_preview_bytes,
    };
    let base = images::load(server, &arguments.base, "base").await?;
    let layer = images::load(server, &arguments.layer, "layer").await?;
    let mask_image = images::load_optional(server, arguments.mask.as_ref(), "mask").await?;
    let how = blend::Blend {
        mode: arguments.mode,
        opacity: arguments.opacity.unwrap_or(1.0),
        offset: if arguments.place {
            (arguments.x, arguments.y)
        } else {
            (0, 0)
        },
    };
    let parameters = json!({
        "mode": arguments.mode, "opacity": how.opacity, "place": arguments.place,
        "x": arguments.x, "y": arguments.y, "masked": mask_image.is_some(),
    });
    let place = arguments.place;
    let mut origins = vec![base.origin, layer.origin];
    let (under, over) = (base.image, layer.image);
    let mask_pixels = mask_image.map(|source| {
        origins.push(source.origin);
        source.image
    });
    let blended = compute(server, move || {
        let over = if place || over.dimensions() == under.dimensions() {
            over
        } else {
            let resize = geometry::Resize {
                width: Some(under.width()),
                height: Some(under.height()),
                fit: geometry::Fit::Exact,
                filter: geometry::Filter::Lanczos,
            };
            geometry::resize(&over, resize)?
        };
        let mask = mask_pixels.map(|image| mask::from_luminance(&image));
        blend::blend(&under, &over, mask.as_ref(), how)
    })
    .await?;
    let result = keeper
        .keep(ResultPixels::Color(blended), "blend_images", parameters, &origins)
        .await?;
    let report = EditReport::of("blend_images", result);
    Ok(images::answer(&report, &[&report.result]))
}

async fn color_correction(
    server: &ComfyServer,
    arguments: ColorCorrectionArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let keeper = Keeper {
        server,
        backend: arguments.backend.clone(),
        budget: arguments.max_preview_bytes,
    };
    let white_balance = arguments
        .white_balance
        .as_deref()
        .map(color::WhiteBalance::parse)
        .transpose()
        .map_err(|error| error_text(error.to_string()))?;
    let correction = color::Correction {
        white_balance,
        match_histogram: arguments.match_histogram_of.is_some(),
        auto_levels: arguments.auto_levels,
        levels: arguments.levels,
        brightness: arguments.brightness.unwrap_or(0.0),
        contrast: arguments.contrast.unwrap_or(1.0),
        saturation: arguments.saturation.unwrap_or(1.0),
    };
    if correction == color::Correction::default() {
        return Err(error_text(
            "nothing to do: give white_balance, match_histogram_of, auto_levels, levels, brightness, contrast or saturation",
        ));
    }
    let image = images::load(server, &arguments.image, "image").await?;
    let reference = images::load_optional(
        server,
        arguments.match_histogram_of.as_ref(),
        "match_histogram_of",
    )
    .await?;
    let parameters = json!({
        "white_balance": arguments.white_balance, "auto_levels": arguments.auto_levels,
        "levels": arguments.levels, "brightness": correction.brightness,
        "contrast": correction.contrast, "saturation": correction.saturation,
        "match_histogram": reference.as_ref().map(|source| source.origin.label.clone()),
    });
    let mut origins = vec![image.origin];
    let pixels = image.image;
    let reference_pixels = reference.map(|source| {
        origins.push(source.origin);
        source.image
    });
    let (corrected, applied) = compute(server, move || {
        color::correct(&pixels, &correction, reference_pixels.as_ref())
    })
    .await?;
    let result = keeper
        .keep(
            ResultPixels::Color(corrected),
            "color_correction",
            parameters,
            &origins,
        )
        .await?;
    let report = EditReport {
        correction: Some(applied),
        ..EditReport::of("color_correction", result)
    };
    Ok(images::answer(&report, &[&report.result]))
}

async fn transform_image(
    server: &ComfyServer,
    arguments: TransformImageArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    // The border's mask is one quarter of the preview budget, the image the rest.
    let budget = arguments
        .max_preview_bytes
        .unwrap_or(server.settings.engine.preview_bytes);
    let keeper = Keeper {
        server,
        backend: arguments.backend.clone(),
        budget: Some(budget - budget / 4),
    };
    let border_keeper = Keeper {
        budget: Some(budget / 4),
        backend: arguments.backend.clone(),
        server,
    };
    let rotation = arguments
        .rotate
        .map(geometry::Rotation::from_degrees)
        .transpose()
        .map_err(|error| error_text(error.to_string()))?
        .flatten();
    let pad_color = arguments
        .pad_color
        .as_deref()
        .map(Color::parse)
        .transpose()
        .map_err(|error| error_text(error.to_string()))?
        .unwrap_or(Color::BLACK);
    if arguments.crop.is_none()
        && rotation.is_none()
        && arguments.flip.is_none()
        && arguments.resize.is_none()
        && arguments.pad.is_none()
    {
        return Err(error_text(
            "nothing to do: give crop, rotate, flip, resize or pad",
        ));
    }
    let image = images::load(server, &arguments.image, "image").await?;
    let parameters = json!({
        "crop": arguments.crop, "rotate": arguments.rotate, "flip": arguments.flip,
        "resize": arguments.resize, "pad": arguments.pad, "pad_color": pad_color.hex(),
    });
    let (crop, flip, resize, pad) = (arguments.crop, arguments.flip, arguments.resize, arguments.pad);
    let (pixels, origins) = (image.image, [image.origin]);
    let (transformed, border) = compute(server, move || {
        let mut current = match crop {
            Some(crop) => geometry::crop(&pixels, crop)?,
            None => pixels,
        };
        if let Some(rotation) = rotation {
            current = geometry::rotate(&current, rotation);
        }
        if let Some(flip) = flip {
            current = geometry::flip(&current, flip);
        }
        if let Some(resize) = resize {
            current = geometry::resize(&current, resize)?;
        }
        match pad {
            Some(padding) => {
                let (padded, border) = geometry::pad(&current, padding, pad_color)?;
                Ok((padded, Some(border)))
            }
            None => Ok((current, None)),
        }
    })
    .await?;
    let result = keeper
        .keep(
            ResultPixels::Color(transformed),
            "transform_image",
            parameters.clone(),
            &origins,
        )
        .await?;
    let outpaint_mask = match border {
        Some(border) => Some(
            border_keeper
                .keep(ResultPixels::Mask(border), "outpaint_mask", parameters, &origins)
                .await?,
        ),
        None => None,
    };
    let report = EditReport {
        outpaint_mask,
        ..EditReport::of("transform_image", result)
    };
    let mut shown = vec![&report.result];
    shown.extend(report.outpaint_mask.iter());
    Ok(images::answer(&report, &shown))
}
