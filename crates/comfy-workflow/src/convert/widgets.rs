//! How a node's `widgets_values` line up with its inputs (contract section 9.2).
//!
//! The frontend creates one widget per widget-type input in definition order, plus values the API
//! never sees: the control mode after seeds (one value) and after combos with
//! `control_after_generate` (two), and an `upload` button after media-upload inputs. Values are
//! positional, so the layout has to be rebuilt from the node definition exactly.

use serde_json::Value;

use crate::object_info::{InputKind, InputSection, InputSpec, NodeDefinition};

/// Socket type names the frontend draws as widgets (they hold a value in `widgets_values`).
const FRONTEND_WIDGET_TYPES: &[&str] = &[
    "MARKDOWN",
    "COLOR",
    "IMAGEUPLOAD",
    "IMAGECOMPARE",
    "CHART",
    "TEXTAREA",
    "LOAD_3D",
    "LOAD_3D_ANIMATION",
    "WEBCAM",
    "AUDIO_RECORD",
    "AUDIOUPLOAD",
    "SELECTBUTTON",
    "CURVE",
    "GALLERIA",
];

/// Widget types whose value the browser produces when queueing (a webcam frame, a 3D render), so
/// a saved value is only a placeholder.
pub const BROWSER_PRODUCED_TYPES: &[&str] = &["LOAD_3D", "LOAD_3D_ANIMATION", "WEBCAM", "AUDIO_RECORD"];

/// One position in `widgets_values`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WidgetSlot<'a> {
    /// The value of this input.
    Input(&'a InputSpec),
    /// A value that is never sent (control mode, filter, upload button) or a `forceInput` input's
    /// value in an old layout.
    Skipped,
}

/// True when the frontend gives this input a widget.
pub fn has_widget(spec: &InputSpec) -> bool {
    match &spec.kind {
        InputKind::Socket(type_name) => FRONTEND_WIDGET_TYPES.contains(&type_name.as_str()),
        _ => spec.is_widget(),
    }
}

fn is_forced_socket(spec: &InputSpec) -> bool {
    !matches!(spec.kind, InputKind::Socket(_))
        && spec.option("forceInput").and_then(Value::as_bool) == Some(true)
}

fn truthy(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Null => None,
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => Some(number.as_f64() != Some(0.0)),
        Value::String(text) => Some(!text.is_empty()),
        _ => Some(true),
    }
}

/// How many frontend-only values follow this input's own value.
fn control_values(spec: &InputSpec) -> usize {
    let control = truthy(spec.option("control_after_generate"));
    match spec.kind {
        InputKind::Int => usize::from(control.unwrap_or(matches!(spec.name.as_str(), "seed" | "noise_seed"))),
        InputKind::Combo(_) if control == Some(true) => 2,
        _ => 0,
    }
}

/// A media-upload combo gets an upload button widget at the end of the required inputs.
pub fn has_upload_button(spec: &InputSpec) -> bool {
    let flag = |key: &str| spec.option(key).and_then(Value::as_bool) == Some(true);
    spec.section == InputSection::Required
        && matches!(spec.kind, InputKind::Combo(_))
        && (flag("image_upload")
            || flag("video_upload")
            || flag("animated_image_upload")
            || flag("audio_upload"))
}

/// The widget layout of a node. With `legacy_force_inputs`, `forceInput` inputs keep a slot, as
/// files saved before the frontend migrated them do.
pub fn layout(definition: &NodeDefinition, legacy_force_inputs: bool) -> Vec<WidgetSlot<'_>> {
    let mut slots = Vec::new();
    let mut upload_buttons = 0;
    let mut required_done = false;
    for spec in definition.settable_inputs() {
        if spec.section != InputSection::Required && !required_done {
            required_done = true;
            slots.extend(std::iter::repeat_n(WidgetSlot::Skipped, upload_buttons));
            upload_buttons = 0;
        }
        if is_forced_socket(spec) {
            if legacy_force_inputs {
                slots.push(WidgetSlot::Skipped);
                slots.extend(std::iter::repeat_n(WidgetSlot::Skipped, control_values(spec)));
            }
            continue;
        }
        if !has_widget(spec) {
            continue;
        }
        slots.push(WidgetSlot::Input(spec));
        slots.extend(std::iter::repeat_n(WidgetSlot::Skipped, control_values(spec)));
        if has_upload_button(spec) {
            upload_buttons += 1;
        }
    }
    slots.extend(std::iter::repeat_n(WidgetSlot::Skipped, upload_buttons));
    slots
}

/// The value of each widget input, in definition order; `None` when the file has no value for it.
#[derive(Debug, Clone, Default)]
pub struct MappedWidgets<'a> {
    pub values: Vec<(&'a InputSpec, Option<Value>)>,
    /// Saved values beyond the layout (frontend-only widgets such as 3D viewers add them).
    pub extra_values: Vec<Value>,
    /// True when the old layout with `forceInput` values was recognised and used.
    pub used_legacy_layout: bool,
}

/// Lines `widgets_values` (an array, or an object keyed by input name) up with the inputs.
pub fn map_widgets<'a>(definition: &'a NodeDefinition, widgets_values: &Value) -> MappedWidgets<'a> {
    let current = layout(definition, false);
    match widgets_values {
        Value::Object(entries) => MappedWidgets {
            values: current
                .iter()
                .filter_map(|slot| match slot {
                    WidgetSlot::Input(spec) => Some((*spec, entries.get(&spec.name).cloned())),
                    WidgetSlot::Skipped => None,
                })
                .collect(),
            extra_values: Vec::new(),
            used_legacy_layout: false,
        },
        Value::Array(values) => {
            let legacy = layout(definition, true);
            let use_legacy = values.len() != current.len()
                && values.len() == legacy.len()
                && legacy.len() != current.len();
            let chosen = if use_legacy { &legacy } else { &current };
            let mut mapped: Vec<(&InputSpec, Option<Value>)> = Vec::new();
            for (index, slot) in chosen.iter().enumerate() {
                if let WidgetSlot::Input(spec) = slot {
                    mapped.push((spec, values.get(index).cloned()));
                }
            }
            MappedWidgets {
                values: mapped,
                extra_values: values
                    .get(chosen.len()..)
                    .map(<[Value]>::to_vec)
                    .unwrap_or_default(),
                used_legacy_layout: use_legacy,
            }
        }
        _ => MappedWidgets {
            values: current
                .iter()
                .filter_map(|slot| match slot {
                    WidgetSlot::Input(spec) => Some((*spec, None)),
                    WidgetSlot::Skipped => None,
                })
                .collect(),
            extra_values: Vec::new(),
            used_legacy_layout: false,
        },
    }
}

/// The value a fresh widget has: the declared default, else the first choice, else zero.
pub fn default_widget_value(spec: &InputSpec) -> Value {
    if let Some(default) = spec.default_value() {
        return default.clone();
    }
    match &spec.kind {
        InputKind::Int => Value::from(0),
        InputKind::Float => Value::from(0.0),
        InputKind::Boolean => Value::Bool(false),
        InputKind::Combo(Some(choices)) => choices.first().cloned().unwrap_or(Value::Null),
        InputKind::String | InputKind::Combo(None) | InputKind::Socket(_) => Value::String(String::new()),
    }
}

/// True when `value` is plausible for the input, to catch values shifted by definition drift
/// (`"randomize"` landing in `steps`).
pub fn value_fits(spec: &InputSpec, value: &Value) -> bool {
    match &spec.kind {
        InputKind::Int | InputKind::Float => {
            value.is_number()
                || value
                    .as_str()
                    .is_some_and(|text| text.trim().parse::<f64>().is_ok())
        }
        InputKind::Boolean => value.is_boolean(),
        InputKind::String => value.is_string(),
        InputKind::Combo(_) | InputKind::Socket(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::object_info;
    use serde_json::json;

    fn names(definition: &NodeDefinition, values: Value) -> Vec<(String, Option<Value>)> {
        map_widgets(definition, &values)
            .values
            .into_iter()
            .map(|(spec, value)| (spec.name.clone(), value))
            .collect()
    }

    #[test]
    fn ksampler_skips_the_seed_control_value() {
        let definition = object_info().node("KSampler").unwrap();
        let mapped = names(
            definition,
            json!([5, "randomize", 20, 8.0, "euler", "normal", 1.0]),
        );
        assert_eq!(
            mapped,
            [
                ("seed".to_owned(), Some(json!(5))),
                ("steps".to_owned(), Some(json!(20))),
                ("cfg".to_owned(), Some(json!(8.0))),
                ("sampler_name".to_owned(), Some(json!("euler"))),
                ("scheduler".to_owned(), Some(json!("normal"))),
                ("denoise".to_owned(), Some(json!(1.0))),
            ]
        );
    }

    #[test]
    fn load_image_has_an_upload_value() {
        let definition = object_info().node("LoadImage").unwrap();
        let mapped = map_widgets(definition, &json!(["a.png", "image"]));
        assert_eq!(mapped.values.len(), 1);
        assert!(mapped.extra_values.is_empty());
        assert_eq!(layout(definition, false).len(), 2);
    }

    #[test]
    fn upload_button_comes_after_all_required_inputs() {
        let definition = object_info().node("LoadImageMask").unwrap();
        let mapped = names(definition, json!(["a.png", "alpha", "image"]));
        assert_eq!(mapped[1], ("channel".to_owned(), Some(json!("alpha"))));
    }

    #[test]
    fn primitive_int_control_follows_the_flag() {
        let definition = object_info().node("PrimitiveInt").unwrap();
        assert_eq!(layout(definition, false).len(), 2);
    }

    #[test]
    fn short_values_are_missing_and_long_values_are_extra() {
        let definition = object_info().node("EmptyLatentImage").unwrap();
        let mapped = map_widgets(definition, &json!([512]));
        assert_eq!(mapped.values[1].1, None);
        let mapped = map_widgets(definition, &json!([512, 512, 1, "x"]));
        assert_eq!(mapped.extra_values, [json!("x")]);
    }

    #[test]
    fn object_values_map_by_name() {
        let definition = object_info().node("EmptyLatentImage").unwrap();
        let mapped = names(definition, json!({"height": 768, "width": 640}));
        assert_eq!(mapped[0], ("width".to_owned(), Some(json!(640))));
        assert_eq!(mapped[2], ("batch_size".to_owned(), None));
    }

    #[test]
    fn legacy_force_input_values_are_dropped() {
        let definition = object_info().node("RecraftTextToImageNode").unwrap();
        let current = layout(definition, false).len();
        let legacy = layout(definition, true).len();
        assert_eq!(legacy, current + 1);
        let values: Vec<Value> = (0..legacy).map(|index| json!(index)).collect();
        let mapped = map_widgets(definition, &Value::Array(values));
        assert!(mapped.used_legacy_layout);
        assert!(
            mapped
                .values
                .iter()
                .all(|(spec, _)| spec.name != "negative_prompt")
        );
    }
}
