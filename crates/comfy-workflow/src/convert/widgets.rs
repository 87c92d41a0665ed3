//! The widgets and input slots the ComfyUI frontend (1.32.9) gives a node of a known class
//! (contract section 9.2), rebuilt from its definition the way `litegraphService` and the core
//! extensions build them:
//!
//! - input slots: every socket input first, then one slot per widget input, in `input_order`;
//! - one widget per widget-type input, plus the values the API never sees: the control mode after
//!   seeds (and the mode and a filter list after combos with `control_after_generate`), and upload
//!   buttons after media-upload inputs;
//! - the frontend-only widgets of the core extensions: `audioUI` on audio nodes, 3D viewers and
//!   their buttons, `PreviewAny.preview`, the webcam button. Some are sent to the server as `""`
//!   (or their label), some are saved in `widgets_values` and some are not, which is why values
//!   are positional over exactly this list;
//! - ComfyUI 0.26's V3 dynamic inputs as frontend 1.45.19's `dynamicWidgets` builds them: a
//!   dynamic combo is a combo over its option keys followed by the shown option's widgets (named
//!   `combo.input`), an autogrow starts with slots `0..=min`, a match type is a socket of its
//!   allowed types.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::convert::FrontendGeneration;
use crate::object_info::{
    DYNAMIC_COMBO_TYPE, DynamicOption, InputKind, InputSection, InputSpec, NodeDefinition,
};

/// Save nodes whose `filename_prefix` the frontend runs through placeholder replacement.
pub(crate) const PREFIX_REPLACING_CLASSES: &[&str] = &[
    "SaveImage",
    "SaveVideo",
    "SaveAnimatedWEBP",
    "SaveWEBM",
    "SaveAudio",
    "SaveGLB",
    "SaveAnimatedPNG",
    "CLIPSave",
    "VAESave",
    "ModelSave",
    "LoraSave",
    "SaveLatent",
];

/// Socket type names that have a widget constructor in the frontend (core and core extensions).
const FRONTEND_WIDGET_TYPES: &[&str] = &[
    "MARKDOWN",
    "COLOR",
    "IMAGEUPLOAD",
    "IMAGECOMPARE",
    "CHART",
    "GALLERIA",
    "TEXTAREA",
    "WEBCAM",
    "AUDIO_UI",
    "AUDIOUPLOAD",
    "AUDIO_RECORD",
    "LOAD_3D",
    "PREVIEW_3D",
];

/// Widget constructors frontend 1.45 adds to those of [`FRONTEND_WIDGET_TYPES`].
const FRONTEND_1_45_WIDGET_TYPES: &[&str] = &["BOUNDING_BOX", "PAINTER", "CURVE", "RANGE"];

/// Widget types whose value the browser produces when queueing (a webcam frame, a 3D render, a
/// recording), so a converted value is only a placeholder.
pub const BROWSER_PRODUCED_TYPES: &[&str] = &["LOAD_3D", "WEBCAM", "AUDIO_RECORD"];

/// Classes the `Comfy.AudioWidget` extension gives an `audioUI` player widget.
const AUDIO_UI_CLASSES: &[&str] = &[
    "LoadAudio",
    "SaveAudio",
    "PreviewAudio",
    "SaveAudioMP3",
    "SaveAudioOpus",
];

/// True when the frontend gives this input a widget: a widget kind, a frontend widget type, or a
/// V3 socket type drawn as a widget (`socketless` inputs, or a union with a `widgetType`).
pub fn has_widget(spec: &InputSpec) -> bool {
    match &spec.kind {
        InputKind::Socket(type_name) => {
            FRONTEND_WIDGET_TYPES.contains(&type_name.as_str())
                || ((flag(spec, "socketless") || spec.option("widgetType").is_some_and(Value::is_string))
                    && !flag(spec, "forceInput"))
        }
        _ => spec.is_widget(),
    }
}

/// JavaScript truthiness of an option value (`undefined` when absent).
fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number
            .as_f64()
            .is_some_and(|float| float != 0.0 && !float.is_nan()),
        Some(Value::String(text)) => !text.is_empty(),
        Some(_) => true,
    }
}

fn flag(spec: &InputSpec, key: &str) -> bool {
    spec.option(key).and_then(Value::as_bool) == Some(true)
}

fn number_option(spec: &InputSpec, key: &str) -> Option<f64> {
    spec.option(key).and_then(Value::as_f64)
}

/// How a widget takes a value that is assigned to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setter {
    /// A plain JavaScript property.
    Plain,
    /// A `<textarea>`: the value becomes a string (`null` becomes `""`).
    Text,
    /// A `<textarea>` whose value lives in the widget store (1.45): values are kept as they are,
    /// except that `null` and `undefined` read as the text area's `""` and `"undefined"`.
    TextStore,
    /// A DOM or component widget without a setter: assignments are lost and it reads `""`.
    Ignored,
}

/// What the widget's change callback does when a primitive node pushes a value into it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Callback {
    None,
    /// INT widgets round to their step.
    Int {
        step: f64,
        min: f64,
    },
    /// FLOAT widgets round to `round` (when set) and clamp.
    Float {
        round: Option<f64>,
        precision: Option<f64>,
        min: f64,
        max: f64,
    },
}

/// What `serializeValue` does to the value when the prompt is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Serialize {
    Raw,
    /// `{a|b}` choices and comments (`Comfy.DynamicPrompts`).
    DynamicPrompt,
    /// `%date:...%` and `%Node.widget%` (`Comfy.SaveImageExtraOutput`).
    FilenamePrefix,
    /// Always `undefined` (the webcam's capture button).
    Undefined,
    /// The 3D viewport of the advanced previews (1.45), which the browser captures when queueing:
    /// empty images and the camera of the saved `Camera Config`.
    ViewportState,
    /// `CustomCombo`'s hidden `index` (1.45): the position, among the widgets after it, of the
    /// first whose value is the chosen one (`-1` when none is).
    OptionIndex,
}

/// The widget kinds the primitive node cares about when it copies a target's widget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WidgetType {
    Number,
    Combo,
    /// A curve editor (1.45), whose list values are sent tagged `CURVE`.
    Curve,
    Other,
}

/// The value transform the image-upload extension installs on a media combo.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadTransform {
    /// The combo's value when the upload widget was created, as a string.
    pub initial: String,
    /// `image_folder`: values get ` [output]` appended when it is not `input`.
    pub folder: String,
    pub allow_batch: bool,
}

/// One widget the frontend creates for a node, in creation order.
#[derive(Debug, Clone)]
pub struct WidgetTemplate<'a> {
    pub name: String,
    /// The input this widget edits, for value widgets.
    pub spec: Option<&'a InputSpec>,
    /// The value of a fresh widget (`None` is JavaScript's `undefined`).
    pub default: Option<Value>,
    /// `widget.serialize !== false`: takes a position in `widgets_values`.
    pub persisted: bool,
    /// `options.serialize !== false`: sent in the prompt.
    pub sent: bool,
    pub setter: Setter,
    pub callback: Callback,
    pub serialize: Serialize,
    pub widget_type: WidgetType,
    pub upload: Option<UploadTransform>,
    /// A value widget of a socket type whose value the browser produces.
    pub browser_produced: bool,
}

impl<'a> WidgetTemplate<'a> {
    fn value(spec: &'a InputSpec, default: Option<Value>) -> Self {
        WidgetTemplate {
            name: spec.name.clone(),
            spec: Some(spec),
            default,
            persisted: true,
            sent: true,
            setter: Setter::Plain,
            callback: Callback::None,
            serialize: Serialize::Raw,
            widget_type: WidgetType::Other,
            upload: None,
            browser_produced: false,
        }
    }

    fn extra(name: &str, default: Option<Value>, persisted: bool, sent: bool) -> Self {
        WidgetTemplate {
            name: name.to_owned(),
            spec: None,
            default,
            persisted,
            sent,
            setter: Setter::Plain,
            callback: Callback::None,
            serialize: Serialize::Raw,
            widget_type: WidgetType::Other,
            upload: None,
            browser_produced: false,
        }
    }

    /// A DOM or component widget without a value setter: always `""`.
    fn constant(name: &str, persisted: bool) -> Self {
        WidgetTemplate {
            setter: Setter::Ignored,
            ..WidgetTemplate::extra(name, Some(Value::String(String::new())), persisted, true)
        }
    }
}

/// One input slot the frontend creates for a node, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotTemplate {
    pub name: String,
    pub type_name: String,
    /// Set for the slot of a widget input.
    pub widget: Option<String>,
}

/// An input as the frontend sees the (extension-modified) definition.
#[derive(Debug, Clone)]
struct FrontendInput<'a> {
    name: String,
    /// The V2 input type (`COMBO` for combos).
    type_name: String,
    /// The type whose widget constructor builds its widget: `widgetType` when the definition
    /// gives one (a V3 socket drawn as a widget), else the type.
    widget_type: String,
    spec: Option<&'a InputSpec>,
    force_input: bool,
    /// The required input whose combo an `IMAGEUPLOAD` input uploads into.
    upload_target: Option<&'a InputSpec>,
}

/// The frontend's view of a node class: its input slots and widgets.
#[derive(Debug, Clone)]
pub struct FrontendLayout<'a> {
    pub slots: Vec<SlotTemplate>,
    pub widgets: Vec<WidgetTemplate<'a>>,
    /// `migrateWidgetsValues`: for each input in definition record order that has a widget or is
    /// `forceInput`, whether it is `forceInput` and whether it counts two values.
    pub migration: Vec<(bool, bool)>,
    /// The autogrow inputs the node shows (top level and in shown dynamic combo options): the
    /// frontend adds a slot group whenever the last one is linked, so saved slots named
    /// `<autogrow>.<anything>` stay.
    pub autogrow_groups: Vec<String>,
}

fn v2_type(spec: &InputSpec) -> String {
    match &spec.kind {
        InputKind::Combo(_) => "COMBO".to_owned(),
        // `applyMatchType` gives the socket the template's allowed types.
        InputKind::MatchType(template) => template.allowed_types.clone(),
        _ => spec.type_name().to_owned(),
    }
}

fn frontend_input(spec: &InputSpec) -> FrontendInput<'_> {
    let type_name = v2_type(spec);
    FrontendInput {
        name: spec.name.clone(),
        widget_type: spec
            .option("widgetType")
            .and_then(Value::as_str)
            .map_or_else(|| type_name.clone(), str::to_owned),
        type_name,
        spec: Some(spec),
        force_input: spec.option("forceInput").and_then(Value::as_bool) == Some(true),
        upload_target: None,
    }
}

/// The option of a dynamic combo the frontend shows: the selected value's, or for a fresh widget
/// the first (its value is the first key). The frontend looks the value up as a property name, so
/// it compares as a string; a value that is no key shows no option.
fn shown_option<'a>(
    spec: &InputSpec,
    options: &'a [DynamicOption],
    selections: &Selections<'_>,
) -> Option<&'a DynamicOption> {
    match selections.values.get(&spec.name) {
        None => options.first(),
        Some(value) => {
            let wanted = crate::convert::text::js_string(value);
            options.iter().find(|option| option.key_text() == wanted)
        }
    }
}

fn is_media_upload_combo(spec: &InputSpec) -> bool {
    matches!(spec.kind, InputKind::Combo(_))
        && (flag(spec, "image_upload") || flag(spec, "video_upload") || flag(spec, "animated_image_upload"))
}

/// The inputs in the frontend's order, with the inputs the core extensions add to the definition
/// (`beforeRegisterNodeDef`): appended keys are not in `input_order`, so they come last.
fn frontend_inputs(definition: &NodeDefinition, frontend: FrontendGeneration) -> Vec<FrontendInput<'_>> {
    let mut inputs: Vec<FrontendInput<'_>> = Vec::new();
    for spec in definition.settable_inputs() {
        match &spec.kind {
            // `applyAutogrow` adds groups 0 to `min` (at least one, at most `max`).
            InputKind::Autogrow(autogrow) => inputs.extend(
                autogrow
                    .slots
                    .iter()
                    .take(autogrow.min.saturating_add(1).max(1))
                    .map(frontend_input),
            ),
            _ => inputs.push(frontend_input(spec)),
        }
    }
    let required = || {
        definition
            .inputs
            .iter()
            .filter(|spec| spec.section == InputSection::Required)
    };
    // Comfy.UploadImage
    if let Some(target) = required().find(|spec| is_media_upload_combo(spec)) {
        put(
            &mut inputs,
            FrontendInput {
                name: "upload".to_owned(),
                type_name: "IMAGEUPLOAD".to_owned(),
                widget_type: "IMAGEUPLOAD".to_owned(),
                spec: None,
                force_input: false,
                upload_target: Some(target),
            },
        );
    }
    // Comfy.AudioWidget
    if AUDIO_UI_CLASSES.contains(&definition.class_type.as_str())
        || (frontend.is_v1_45() && definition.class_type == "SaveAudioAdvanced")
    {
        put(&mut inputs, synthetic("audioUI", "AUDIO_UI"));
    }
    // Comfy.UploadAudio
    if required().any(|spec| spec.name == "audio" && flag(spec, "audio_upload")) {
        put(&mut inputs, synthetic("upload", "AUDIOUPLOAD"));
    }
    // Comfy.Preview3D and Comfy.SaveGLB
    if matches!(definition.class_type.as_str(), "Preview3D" | "SaveGLB") {
        put(&mut inputs, synthetic("image", "PREVIEW_3D"));
    }
    inputs
}

/// `required[name] = ...`: replaces a required input of that name in place, else appends.
fn put<'a>(inputs: &mut Vec<FrontendInput<'a>>, added: FrontendInput<'a>) {
    let existing_required = inputs.iter().position(|input| {
        input.name == added.name
            && input
                .spec
                .is_none_or(|spec| spec.section == InputSection::Required)
    });
    match existing_required {
        Some(position) => inputs[position] = added,
        None => inputs.push(added),
    }
}

fn synthetic<'a>(name: &str, type_name: &str) -> FrontendInput<'a> {
    FrontendInput {
        name: name.to_owned(),
        type_name: type_name.to_owned(),
        widget_type: type_name.to_owned(),
        spec: None,
        force_input: false,
        upload_target: None,
    }
}

fn widget_constructor_exists(type_name: &str, frontend: FrontendGeneration) -> bool {
    matches!(
        type_name,
        "INT" | "FLOAT" | "BOOLEAN" | "STRING" | "COMBO" | DYNAMIC_COMBO_TYPE
    ) || FRONTEND_WIDGET_TYPES.contains(&type_name)
        || (frontend.is_v1_45() && FRONTEND_1_45_WIDGET_TYPES.contains(&type_name))
}

/// The control widgets `addValueControlWidgets` adds after a value widget.
fn control_widgets<'a>(spec: &InputSpec, combo: bool) -> Vec<WidgetTemplate<'a>> {
    let name_of = |default_name: &str| match spec.option(default_name) {
        Some(Value::String(name)) => name.clone(),
        _ => match spec.option("control_prefix") {
            Some(prefix) if truthy(Some(prefix)) => {
                format!("{} {default_name}", crate::convert::text::js_string(prefix))
            }
            _ => default_name.to_owned(),
        },
    };
    let mut widgets = vec![WidgetTemplate::extra(
        &name_of("control_after_generate"),
        Some(Value::String("randomize".to_owned())),
        true,
        false,
    )];
    if combo {
        widgets.push(WidgetTemplate::extra(
            &name_of("control_filter_list"),
            Some(Value::String(String::new())),
            true,
            false,
        ));
    }
    widgets
}

/// The widgets the frontend creates for one widget input.
fn input_widgets<'a>(
    definition: &'a NodeDefinition,
    input: &FrontendInput<'a>,
    frontend: FrontendGeneration,
) -> Vec<WidgetTemplate<'a>> {
    if frontend.is_v1_45()
        && let Some(widgets) = input_widgets_1_45(definition, input)
    {
        return widgets;
    }
    match (input.widget_type.as_str(), input.spec) {
        ("INT", Some(spec)) => {
            let mut widget = WidgetTemplate::value(
                spec,
                Some(spec.default_value().cloned().unwrap_or(Value::from(0))),
            );
            widget.widget_type = WidgetType::Number;
            widget.callback = Callback::Int {
                step: number_option(spec, "step").unwrap_or(1.0),
                min: number_option(spec, "min").unwrap_or(0.0),
            };
            let control = match spec.option("control_after_generate") {
                None | Some(Value::Null) => matches!(spec.name.as_str(), "seed" | "noise_seed"),
                value => truthy(value),
            };
            let mut widgets = vec![widget];
            if control {
                widgets.extend(control_widgets(spec, false).into_iter().take(1));
            }
            widgets
        }
        ("FLOAT", Some(spec)) => {
            let mut widget = WidgetTemplate::value(
                spec,
                Some(spec.default_value().cloned().unwrap_or(Value::from(0))),
            );
            widget.widget_type = WidgetType::Number;
            let step = number_option(spec, "step").unwrap_or(0.5);
            let precision = (-step.log10().floor()).max(0.0);
            let own_round = spec.option("round");
            let round = if precision != 0.0 && !truthy(own_round) {
                Some(10f64.powf(-precision))
            } else {
                own_round.and_then(Value::as_f64).filter(|round| *round != 0.0)
            };
            widget.callback = Callback::Float {
                round,
                precision: Some(precision),
                min: number_option(spec, "min").unwrap_or(0.0),
                max: number_option(spec, "max").unwrap_or(2048.0),
            };
            vec![widget]
        }
        ("BOOLEAN", Some(spec)) => vec![WidgetTemplate::value(
            spec,
            Some(spec.default_value().cloned().unwrap_or(Value::Bool(false))),
        )],
        ("STRING", Some(spec)) => {
            let mut widget = WidgetTemplate::value(
                spec,
                Some(
                    spec.default_value()
                        .cloned()
                        .unwrap_or(Value::String(String::new())),
                ),
            );
            if truthy(spec.option("multiline")) && frontend.is_v1_45() {
                widget.setter = Setter::TextStore;
            } else if truthy(spec.option("multiline")) {
                // A <textarea>: its value is always a string.
                widget.setter = Setter::Text;
                if let Some(default) = widget.default.as_ref().filter(|default| !default.is_string()) {
                    widget.default = Some(Value::String(crate::convert::text::js_string(default)));
                }
            }
            if spec.option("dynamicPrompts").and_then(Value::as_bool) == Some(true) {
                widget.serialize = Serialize::DynamicPrompt;
            }
            if spec.name == "filename_prefix"
                && PREFIX_REPLACING_CLASSES.contains(&definition.class_type.as_str())
            {
                widget.serialize = Serialize::FilenamePrefix;
            }
            vec![widget]
        }
        (DYNAMIC_COMBO_TYPE, Some(spec)) => {
            // A COMBO widget over the option keys, built from `[keys, {}]`: no declared default,
            // no control widgets. The shown option's widgets are added by `add_option_inputs`.
            let default = match &spec.kind {
                InputKind::DynamicCombo(options) => options.first().map(|option| option.key.clone()),
                _ => None,
            };
            let mut widget = WidgetTemplate::value(spec, default);
            widget.widget_type = WidgetType::Combo;
            vec![widget]
        }
        ("COMBO", Some(spec)) => {
            let choices = match &spec.kind {
                InputKind::Combo(Some(choices)) => choices.as_slice(),
                _ => &[],
            };
            let remote = spec.option("remote");
            let default = match spec.default_value() {
                Some(default) if truthy(Some(default)) => Some(default.clone()),
                _ => choices
                    .first()
                    .cloned()
                    .or_else(|| remote.is_some().then(|| Value::String("Loading...".to_owned()))),
            };
            let mut widget = WidgetTemplate::value(spec, default);
            widget.widget_type = WidgetType::Combo;
            let mut widgets = vec![widget];
            if remote
                .and_then(|remote| remote.get("refresh_button"))
                .is_some_and(|refresh| truthy(Some(refresh)))
            {
                widgets.push(WidgetTemplate::extra(
                    "refresh",
                    Some(Value::String("refresh".to_owned())),
                    true,
                    true,
                ));
            }
            if truthy(spec.option("control_after_generate")) {
                widgets.extend(control_widgets(spec, true));
            }
            widgets
        }
        ("MARKDOWN" | "COLOR" | "IMAGECOMPARE" | "CHART" | "GALLERIA" | "TEXTAREA", Some(spec)) => {
            let default = match input.widget_type.as_str() {
                "COLOR" => spec
                    .default_value()
                    .filter(|value| truthy(Some(value)))
                    .cloned()
                    .unwrap_or(Value::String("#000000".to_owned())),
                "TEXTAREA" => spec
                    .default_value()
                    .filter(|value| truthy(Some(value)))
                    .cloned()
                    .unwrap_or(Value::String(String::new())),
                _ => spec
                    .default_value()
                    .cloned()
                    .unwrap_or(Value::String(String::new())),
            };
            vec![WidgetTemplate::value(spec, Some(default))]
        }
        ("IMAGEUPLOAD", _) => vec![WidgetTemplate::extra(
            &input.name,
            Some(Value::String("image".to_owned())),
            true,
            false,
        )],
        ("AUDIO_UI", _) => vec![WidgetTemplate::constant("audioUI", false)],
        ("AUDIOUPLOAD", _) => vec![WidgetTemplate::extra(
            &input.name,
            Some(Value::String(String::new())),
            true,
            false,
        )],
        ("AUDIO_RECORD", _) => {
            // `addDOMWidget(inputName, 'audioUI', ...)`: named after the input.
            let mut player = WidgetTemplate::constant(&input.name, true);
            player.spec = input.spec;
            player.browser_produced = true;
            vec![
                player,
                WidgetTemplate::extra(&input.name, Some(Value::String(String::new())), true, false),
            ]
        }
        ("LOAD_3D", _) => {
            let mut viewer = WidgetTemplate::constant("image", true);
            viewer.spec = input.spec;
            viewer.browser_produced = true;
            vec![
                WidgetTemplate::extra(
                    "upload 3d model",
                    Some(Value::String("upload3dmodel".to_owned())),
                    true,
                    true,
                ),
                WidgetTemplate::extra(
                    "upload extra resources",
                    Some(Value::String("uploadExtraResources".to_owned())),
                    true,
                    true,
                ),
                WidgetTemplate::extra("clear", Some(Value::String("clear".to_owned())), true, true),
                viewer,
            ]
        }
        ("PREVIEW_3D", _) => vec![WidgetTemplate::constant("image", true)],
        ("WEBCAM", _) => {
            let mut camera = WidgetTemplate::constant(&input.name, true);
            camera.spec = input.spec;
            camera.browser_produced = true;
            vec![camera]
        }
        _ => Vec::new(),
    }
}

/// The widgets frontend 1.45 builds differently from 1.32, or `None` to build them as 1.32 does.
fn input_widgets_1_45<'a>(
    definition: &'a NodeDefinition,
    input: &FrontendInput<'a>,
) -> Option<Vec<WidgetTemplate<'a>>> {
    let spec = input.spec;
    let declared = || spec.and_then(InputSpec::default_value).cloned();
    let value_widget = |default: Value| {
        let mut widget = match spec {
            Some(spec) => WidgetTemplate::value(spec, Some(default)),
            None => WidgetTemplate::extra(&input.name, Some(default), true, true),
        };
        widget.name = input.name.clone();
        widget
    };
    Some(match input.widget_type.as_str() {
        // `useImageCompareWidget`: the value is a pair of image URLs, and the widget is not saved.
        "IMAGECOMPARE" => {
            let mut widget = value_widget(Value::Array(vec![
                Value::String(String::new()),
                Value::String(String::new()),
            ]));
            widget.persisted = false;
            vec![widget]
        }
        // `useBoundingBoxWidget`: the box, then its four fields as number widgets that are saved
        // but not sent.
        "BOUNDING_BOX" => {
            let default = declared()
                .unwrap_or_else(|| serde_json::json!({"x": 0, "y": 0, "width": 512, "height": 512}));
            let mut widgets = vec![value_widget(default.clone())];
            for field in ["x", "y", "width", "height"] {
                let value = default.get(field).cloned();
                widgets.push(WidgetTemplate::extra(field, value, true, false));
            }
            widgets
        }
        // `useCurveWidget`
        "CURVE" => {
            let mut widget = value_widget(declared().unwrap_or_else(
                || serde_json::json!({"points": [[0, 0], [1, 1]], "interpolation": "monotone_cubic"}),
            ));
            widget.widget_type = WidgetType::Curve;
            vec![widget]
        }
        // `useRangeWidget`
        "RANGE" => vec![value_widget(
            declared().unwrap_or_else(|| serde_json::json!({"min": 0, "max": 1})),
        )],
        // `usePainterWidget`
        "PAINTER" => vec![value_widget(declared().unwrap_or(Value::String(String::new())))],
        // `AUDIO_UI`: a player that is not saved and sends what the widget store holds, `""`
        // until a file is loaded (loading sets the URL of the chosen file).
        // `Comfy.Load3D`'s `LOAD_3D`: the upload and clear buttons only on nodes with a
        // `model_file` widget, then the viewer, named `viewport_state` on the advanced previews.
        "LOAD_3D" => {
            let viewer_name = if matches!(
                definition.class_type.as_str(),
                "Preview3DAdvanced" | "PreviewGaussianSplat" | "PreviewPointCloud"
            ) {
                "viewport_state"
            } else {
                "image"
            };
            let mut viewer = WidgetTemplate::constant(viewer_name, true);
            viewer.spec = input.spec;
            viewer.browser_produced = true;
            if viewer_name == "viewport_state" {
                viewer.serialize = Serialize::ViewportState;
            }
            let has_model_file = definition
                .inputs
                .iter()
                .any(|spec| spec.name == "model_file" && has_widget(spec));
            let mut widgets = Vec::new();
            if has_model_file {
                widgets.push(WidgetTemplate::extra(
                    "upload 3d model",
                    Some(Value::String("upload3dmodel".to_owned())),
                    true,
                    true,
                ));
                widgets.push(WidgetTemplate::extra(
                    "upload extra resources",
                    Some(Value::String("uploadExtraResources".to_owned())),
                    true,
                    true,
                ));
                widgets.push(WidgetTemplate::extra(
                    "clear",
                    Some(Value::String("clear".to_owned())),
                    true,
                    true,
                ));
            }
            widgets.push(viewer);
            widgets
        }
        "AUDIO_UI" => vec![WidgetTemplate::extra(
            "audioUI",
            Some(Value::String(String::new())),
            false,
            true,
        )],
        _ => return None,
    })
}

/// What decides a dynamic combo's widgets: the value each combo shows, by the combo's input name
/// (a combo not listed shows its first option, as a fresh node does), and the saved slot names,
/// whose order is the frontend's order of an option's inputs.
#[derive(Debug, Clone, Default)]
struct Selections<'s> {
    values: BTreeMap<String, Value>,
    slot_order: &'s [String],
    frontend: FrontendGeneration,
}

/// Builds the frontend's slots and widgets for a fresh node of a class.
pub fn frontend_layout(definition: &NodeDefinition) -> FrontendLayout<'_> {
    frontend_layout_for(definition, FrontendGeneration::V1_32)
}

/// [`frontend_layout`] as the given frontend generation builds it.
pub fn frontend_layout_for(definition: &NodeDefinition, frontend: FrontendGeneration) -> FrontendLayout<'_> {
    let selections = Selections {
        frontend,
        ..Selections::default()
    };
    frontend_layout_with(definition, &selections)
}

/// The layout after `LGraphNode.configure` assigns `values` in order to the persisted widgets:
/// setting a dynamic combo replaces the widgets of its option with those of the new one, right
/// after the combo, so the values after it land on the new option's widgets.
///
/// The frontend adds an option's inputs in the order the server lists them, which
/// `/object_info` parsed into a map does not keep; the saved input slots (`slot_names`) do, so
/// inputs found there are ordered by them, the rest by name.
pub fn frontend_layout_for_values<'a>(
    definition: &'a NodeDefinition,
    values: &[Value],
    slot_names: &[String],
) -> FrontendLayout<'a> {
    frontend_layout_for_values_as(definition, values, slot_names, FrontendGeneration::V1_32)
}

/// [`frontend_layout_for_values`] as the given frontend generation builds it.
pub fn frontend_layout_for_values_as<'a>(
    definition: &'a NodeDefinition,
    values: &[Value],
    slot_names: &[String],
    frontend: FrontendGeneration,
) -> FrontendLayout<'a> {
    let mut selections = Selections {
        values: BTreeMap::new(),
        slot_order: slot_names,
        frontend,
    };
    let mut layout = frontend_layout_with(definition, &selections);
    let mut value_index = 0;
    let mut widget_index = 0;
    // Each step consumes a widget; a rebuild only changes widgets after the current one.
    while let (Some(value), Some(widget)) = (values.get(value_index), layout.widgets.get(widget_index)) {
        widget_index += 1;
        if !widget.persisted {
            continue;
        }
        value_index += 1;
        if let Some(spec) = widget.spec
            && matches!(spec.kind, InputKind::DynamicCombo(_))
            && selections.values.get(&spec.name) != Some(value)
        {
            selections.values.insert(spec.name.clone(), value.clone());
            layout = frontend_layout_with(definition, &selections);
        }
    }
    layout
}

/// `dynamicComboWidget`'s `updateWidgets`: the shown option's inputs, required then optional, each
/// through `addNodeInput` (a socket when it has no widget, else its widgets and a widget slot),
/// placed right after the combo; nested combos repeat this one level down.
fn add_option_inputs<'a>(
    definition: &'a NodeDefinition,
    spec: &'a InputSpec,
    selections: &Selections<'_>,
    widgets: &mut Vec<WidgetTemplate<'a>>,
    slots: &mut Vec<SlotTemplate>,
    autogrows: &mut Vec<String>,
) {
    let InputKind::DynamicCombo(options) = &spec.kind else {
        return;
    };
    let Some(option) = shown_option(spec, options, selections) else {
        return;
    };
    for nested in option_input_order(option, selections.slot_order) {
        // `applyAutogrow` on an option input: groups 0 to `min`, as at the top level.
        if let InputKind::Autogrow(autogrow) = &nested.kind {
            autogrows.push(nested.name.clone());
            for slot in autogrow.slots.iter().take(autogrow.min.saturating_add(1).max(1)) {
                let input = frontend_input(slot);
                let widget =
                    widget_constructor_exists(&input.widget_type, selections.frontend) && !input.force_input;
                if widget {
                    widgets.extend(input_widgets(definition, &input, selections.frontend));
                }
                slots.push(SlotTemplate {
                    name: input.name.clone(),
                    type_name: input.type_name.clone(),
                    widget: widget.then(|| input.name.clone()),
                });
            }
            continue;
        }
        let input = frontend_input(nested);
        if !widget_constructor_exists(&input.widget_type, selections.frontend) || input.force_input {
            slots.push(SlotTemplate {
                name: input.name.clone(),
                type_name: input.type_name.clone(),
                widget: None,
            });
            continue;
        }
        widgets.extend(input_widgets(definition, &input, selections.frontend));
        slots.push(SlotTemplate {
            name: input.name.clone(),
            type_name: input.type_name.clone(),
            widget: Some(input.name.clone()),
        });
        add_option_inputs(definition, nested, selections, widgets, slots, autogrows);
    }
}

/// An option's inputs in the frontend's order: required before optional, each in definition
/// order, except that the inputs the saved slots name take the saved order among themselves.
/// The saved slots may name only some (a newer frontend saves only linked widget slots), so the
/// others keep their places.
fn option_input_order<'a>(option: &'a DynamicOption, slot_order: &[String]) -> Vec<&'a InputSpec> {
    let mut ordered: Vec<&InputSpec> = option
        .inputs
        .iter()
        .filter(|nested| nested.section == InputSection::Required)
        .chain(
            option
                .inputs
                .iter()
                .filter(|nested| nested.section != InputSection::Required),
        )
        .collect();
    let saved_position = |spec: &InputSpec| slot_order.iter().position(|name| *name == spec.name);
    let places: Vec<usize> = (0..ordered.len())
        .filter(|index| {
            ordered
                .get(*index)
                .is_some_and(|spec| saved_position(spec).is_some())
        })
        .collect();
    let mut named: Vec<&InputSpec> = places
        .iter()
        .filter_map(|index| ordered.get(*index).copied())
        .collect();
    named.sort_by_key(|spec| saved_position(spec));
    for (place, spec) in places.into_iter().zip(named) {
        if let Some(slot) = ordered.get_mut(place) {
            *slot = spec;
        }
    }
    ordered
}

fn frontend_layout_with<'a>(
    definition: &'a NodeDefinition,
    selections: &Selections<'_>,
) -> FrontendLayout<'a> {
    let frontend = selections.frontend;
    let inputs = frontend_inputs(definition, frontend);
    let mut slots = Vec::new();
    let mut widget_slots = Vec::new();
    let mut widgets: Vec<WidgetTemplate<'_>> = Vec::new();
    let mut autogrow_groups: Vec<String> = definition
        .settable_inputs()
        .filter(|spec| matches!(spec.kind, InputKind::Autogrow(_)))
        .map(|spec| spec.name.clone())
        .collect();
    for input in &inputs {
        if !widget_constructor_exists(&input.widget_type, frontend) || input.force_input {
            slots.push(SlotTemplate {
                name: input.name.clone(),
                type_name: input.type_name.clone(),
                widget: None,
            });
        }
    }
    for input in &inputs {
        if !widget_constructor_exists(&input.widget_type, frontend) || input.force_input {
            continue;
        }
        let created = input_widgets(definition, input, frontend);
        if let Some(target) = input.upload_target
            && let Some(combo) = widgets
                .iter_mut()
                .find(|widget| widget.name == target.name && widget.spec.is_some())
        {
            let folder = target
                .option("image_folder")
                .and_then(Value::as_str)
                .unwrap_or("input")
                .to_owned();
            combo.upload = Some(UploadTransform {
                initial: combo
                    .default
                    .as_ref()
                    .map_or_else(|| "undefined".to_owned(), crate::convert::text::js_string),
                folder,
                allow_batch: truthy(target.option("allow_batch")),
            });
        }
        widgets.extend(created);
        widget_slots.push(SlotTemplate {
            name: input.name.clone(),
            type_name: input.type_name.clone(),
            widget: Some(input.name.clone()),
        });
        if let Some(spec) = input.spec {
            add_option_inputs(
                definition,
                spec,
                selections,
                &mut widgets,
                &mut widget_slots,
                &mut autogrow_groups,
            );
        }
    }
    slots.extend(widget_slots);
    // Widgets the core extensions add when the node is created.
    match definition.class_type.as_str() {
        // 1.45: a markdown and a text preview, neither saved nor sent, and a mode toggle that is
        // saved but not sent.
        "PreviewAny" if frontend.is_v1_45() => {
            widgets.push(WidgetTemplate::extra(
                "preview_markdown",
                Some(Value::String(String::new())),
                false,
                false,
            ));
            widgets.push(WidgetTemplate::extra(
                "preview_text",
                Some(Value::String(String::new())),
                false,
                false,
            ));
            widgets.push(WidgetTemplate::extra(
                "previewMode",
                Some(Value::Bool(false)),
                true,
                false,
            ));
        }
        "PreviewAny" => widgets.push(WidgetTemplate::constant("preview", false)),
        "WebcamCapture" => {
            let mut button = WidgetTemplate::extra(
                "waiting for camera...",
                Some(Value::String("capture".to_owned())),
                true,
                true,
            );
            button.serialize = Serialize::Undefined;
            widgets.push(button);
        }
        _ => {}
    }
    // migrateWidgetsValues looks at the definition record (required then optional keys).
    let names: Vec<&str> = widgets.iter().map(|widget| widget.name.as_str()).collect();
    let migration = definition
        .settable_inputs()
        .filter(|spec| {
            let force = spec.option("forceInput").and_then(Value::as_bool) == Some(true);
            names.contains(&spec.name.as_str()) || force
        })
        .map(|spec| {
            let force = spec.option("forceInput").and_then(Value::as_bool) == Some(true);
            let doubled = truthy(spec.option("control_after_generate"))
                || matches!(spec.name.as_str(), "seed" | "noise_seed");
            (force, doubled)
        })
        .collect();
    FrontendLayout {
        slots,
        widgets,
        migration,
        autogrow_groups,
    }
}

/// `Comfy.CustomWidgets`' `CustomCombo` (1.45): after the combo, a hidden `index` widget (saved,
/// sent, computed) and option widgets `option1`, `option2`...: assigning a truthy value to the last
/// option adds the next one, so loading `values` ends with one option per saved option up to the
/// first empty one after the last filled one.
pub(crate) fn with_custom_combo_options<'a>(
    mut layout: FrontendLayout<'a>,
    values: &[Value],
) -> FrontendLayout<'a> {
    let mut index = WidgetTemplate::extra("index", Some(Value::from(-1)), true, true);
    index.serialize = Serialize::OptionIndex;
    index.setter = Setter::Ignored;
    layout.widgets.push(index);
    let before = layout.widgets.len();
    let mut options = 1;
    for (offset, value) in values.iter().skip(before).enumerate() {
        if offset >= options {
            break;
        }
        if offset + 1 == options && truthy(Some(value)) {
            options += 1;
        }
    }
    for number in 1..=options {
        layout.widgets.push(WidgetTemplate::extra(
            &format!("option{number}"),
            Some(Value::String(String::new())),
            true,
            true,
        ));
    }
    layout
}

/// `migrateWidgetsValues`: when the saved values match the count of the old layout (where
/// `forceInput` inputs still had a widget), the values at their positions are dropped.
pub fn migrate_widgets_values(layout: &FrontendLayout<'_>, values: &[Value]) -> Option<Vec<Value>> {
    let expected: usize = layout
        .migration
        .iter()
        .map(|(_, doubled)| if *doubled { 2 } else { 1 })
        .sum();
    if expected != values.len() || !layout.migration.iter().any(|(force, _)| *force) {
        return None;
    }
    Some(
        values
            .iter()
            .enumerate()
            .filter(|(index, _)| !layout.migration.get(*index).is_some_and(|(force, _)| *force))
            .map(|(_, value)| value.clone())
            .collect(),
    )
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
        InputKind::DynamicCombo(options) => options.first().map_or(Value::Null, |option| option.key.clone()),
        InputKind::String
        | InputKind::Combo(None)
        | InputKind::Socket(_)
        | InputKind::Autogrow(_)
        | InputKind::MatchType(_) => Value::String(String::new()),
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
        InputKind::Combo(_)
        | InputKind::Socket(_)
        | InputKind::DynamicCombo(_)
        | InputKind::Autogrow(_)
        | InputKind::MatchType(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::object_info;

    fn widget_names(class_type: &str) -> Vec<(String, bool, bool)> {
        frontend_layout(object_info().node(class_type).unwrap())
            .widgets
            .iter()
            .map(|widget| (widget.name.clone(), widget.persisted, widget.sent))
            .collect()
    }

    fn owned(list: &[(&str, bool, bool)]) -> Vec<(String, bool, bool)> {
        list.iter()
            .map(|(name, persisted, sent)| ((*name).to_owned(), *persisted, *sent))
            .collect()
    }

    #[test]
    fn ksampler_has_a_seed_control_widget_that_is_saved_but_not_sent() {
        assert_eq!(
            widget_names("KSampler"),
            owned(&[
                ("seed", true, true),
                ("control_after_generate", true, false),
                ("steps", true, true),
                ("cfg", true, true),
                ("sampler_name", true, true),
                ("scheduler", true, true),
                ("denoise", true, true),
            ])
        );
    }

    #[test]
    fn sockets_come_before_widget_slots() {
        let layout = frontend_layout(object_info().node("KSampler").unwrap());
        let names: Vec<&str> = layout.slots.iter().map(|slot| slot.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "model",
                "positive",
                "negative",
                "latent_image",
                "seed",
                "steps",
                "cfg",
                "sampler_name",
                "scheduler",
                "denoise"
            ]
        );
        assert_eq!(layout.slots[4].widget.as_deref(), Some("seed"));
    }

    #[test]
    fn load_image_gets_an_upload_button_and_a_value_transform() {
        assert_eq!(
            widget_names("LoadImage"),
            owned(&[("image", true, true), ("upload", true, false)])
        );
        let layout = frontend_layout(object_info().node("LoadImageOutput").unwrap());
        let combo = &layout.widgets[0];
        assert_eq!(combo.upload.as_ref().unwrap().folder, "output");
        assert_eq!(
            layout
                .widgets
                .iter()
                .map(|widget| widget.name.as_str())
                .collect::<Vec<_>>(),
            ["image", "refresh", "upload"]
        );
    }

    #[test]
    fn audio_nodes_send_an_empty_player_value() {
        // The 0.3.75 fixture has no audio nodes (torchaudio was missing); these are their
        // definitions from a server that has them.
        let load_audio = NodeDefinition::from_json(
            "LoadAudio",
            &serde_json::json!({"input": {"required": {"audio": [["a.wav"], {"audio_upload": true}]}},
                                "input_order": {"required": ["audio"]}}),
        );
        let names: Vec<(String, bool, bool)> = frontend_layout(&load_audio)
            .widgets
            .iter()
            .map(|widget| (widget.name.clone(), widget.persisted, widget.sent))
            .collect();
        assert_eq!(
            names,
            owned(&[
                ("audio", true, true),
                ("audioUI", false, true),
                ("upload", true, false)
            ])
        );
        let record = NodeDefinition::from_json(
            "RecordAudio",
            &serde_json::json!({"input": {"required": {"audio": ["AUDIO_RECORD", {}]}}}),
        );
        let names: Vec<(String, bool, bool)> = frontend_layout(&record)
            .widgets
            .iter()
            .map(|widget| (widget.name.clone(), widget.persisted, widget.sent))
            .collect();
        assert_eq!(names, owned(&[("audio", true, true), ("audio", true, false)]));
    }

    #[test]
    fn three_d_nodes_have_viewer_and_button_widgets() {
        assert_eq!(
            widget_names("Load3D"),
            owned(&[
                ("model_file", true, true),
                ("upload 3d model", true, true),
                ("upload extra resources", true, true),
                ("clear", true, true),
                ("image", true, true),
                ("width", true, true),
                ("height", true, true),
            ])
        );
        assert_eq!(
            widget_names("SaveGLB"),
            owned(&[("filename_prefix", true, true), ("image", true, true)])
        );
        assert_eq!(widget_names("PreviewAny"), owned(&[("preview", false, true)]));
    }

    #[test]
    fn combo_controls_add_a_filter() {
        let definition = object_info().definitions().find(|definition| {
            definition.inputs.iter().any(|spec| {
                matches!(spec.kind, InputKind::Combo(_)) && truthy(spec.option("control_after_generate"))
            })
        });
        if let Some(definition) = definition {
            let layout = frontend_layout(definition);
            let position = layout
                .widgets
                .iter()
                .position(|widget| widget.name == "control_after_generate")
                .unwrap();
            assert_eq!(layout.widgets[position + 1].name, "control_filter_list");
        }
    }

    #[test]
    fn legacy_force_input_values_are_migrated() {
        let definition = object_info().node("RecraftTextToImageNode").unwrap();
        let layout = frontend_layout(definition);
        let persisted = layout.widgets.iter().filter(|widget| widget.persisted).count();
        let expected: usize = layout
            .migration
            .iter()
            .map(|(_, doubled)| if *doubled { 2 } else { 1 })
            .sum();
        let values: Vec<Value> = (0..expected).map(Value::from).collect();
        let migrated = migrate_widgets_values(&layout, &values).unwrap();
        assert_eq!(migrated.len(), expected - 1);
        assert!(persisted >= migrated.len() - 1);
    }
}
