//! The op vocabulary as data: every op's fields with their kinds, ranges, defaults and labels,
//! served to the browser's recipe builder (`GET /api/ops`) so it draws its forms from the same
//! definition the server validates with.
//!
//! Ranges come from the constants [`validate`](super::validate) checks against, sizes from the
//! [`Limits`] in force, choices from the value types' own lists; a unit test walks every range
//! through [`Op::validate`](super::Op::validate). What is here and not in the wire format is
//! presentation only: labels, a slider's usual span, and `ui_only` switches (crop by aspect or
//! box, watermark text or logo) that pick which fields the builder shows.

use serde::Serialize;
use serde_json::{json, Value};

use super::validate::{
    Range, BLUR_SIGMA, DEGREES, FACTOR, GAMMA, LOGO_SCALE, MAX_MARK_CHARS, OPACITY, SHARPEN_SIGMA, SHARPEN_THRESHOLD,
};
use super::values::{Filter, Fit, Gravity};
use super::watermark::{MarkKind, DEFAULT_GRAVITY, DEFAULT_OPACITY};
use crate::limits::Limits;

/// One op the builder offers.
#[derive(Clone, Debug, Serialize)]
pub struct OpSchema {
    /// The op's wire name (`"op": …`).
    pub op: &'static str,
    pub label: &'static str,
    pub fields: Vec<FieldSchema>,
}

/// One field of an op.
#[derive(Clone, Debug, Serialize)]
pub struct FieldSchema {
    /// The wire name (or, with `ui_only`, the builder's own switch).
    pub name: &'static str,
    pub label: &'static str,
    #[serde(flatten)]
    pub kind: FieldKind,
    /// What a new op starts with (`null`: empty).
    pub default: Value,
    /// May be left empty (the server then picks, e.g. "5% of the photo").
    pub optional: bool,
    /// Left out of the recipe when it equals the default.
    pub omit_default: bool,
    /// Not part of the op: a switch that picks which other fields apply.
    pub ui_only: bool,
    /// Shown (and sent) only when another field of the op has one of some values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
}

/// What a field holds and which values it accepts.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FieldKind {
    /// Whole pixels (`max` absent: no upper bound but the image's own size).
    Int {
        min: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<u32>,
    },
    /// A number the builder shows as a slider over `min`..`slider_max` (or `max`) beside an
    /// exact box that takes up to `max`.
    Float {
        min: f32,
        max: f32,
        #[serde(skip_serializing_if = "Option::is_none")]
        slider_max: Option<f32>,
        step: f32,
        /// Whole numbers only.
        integer: bool,
    },
    /// A plain number box.
    Number {
        min: f32,
        max: f32,
        step: f32,
    },
    /// One of a list.
    Select {
        options: Vec<Choice>,
    },
    /// On or off.
    Check,
    Text {
        max_length: usize,
    },
    /// `#rrggbb`.
    Color,
    /// The key of an uploaded PNG logo (`POST /api/logos`).
    Logo,
}

/// One option of a [`FieldKind::Select`].
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<&'static str>,
}

/// A field applies only when field `field` is one of `one_of` (a missing value counts as that
/// field's default).
#[derive(Clone, Debug, Serialize)]
pub struct When {
    pub field: &'static str,
    pub one_of: Vec<Value>,
}

impl FieldKind {
    /// The accepted span of a number field that has both ends.
    pub fn bounds(&self) -> Option<(f64, f64)> {
        match *self {
            FieldKind::Int { min, max: Some(max) } => Some((min.into(), max.into())),
            FieldKind::Float { min, max, .. } | FieldKind::Number { min, max, .. } => Some((min.into(), max.into())),
            _ => None,
        }
    }

    pub fn is_integer(&self) -> bool {
        matches!(self, FieldKind::Int { .. } | FieldKind::Float { integer: true, .. })
    }
}

fn field(name: &'static str, label: &'static str, kind: FieldKind) -> FieldSchema {
    FieldSchema {
        name,
        label,
        kind,
        default: Value::Null,
        optional: false,
        omit_default: false,
        ui_only: false,
        when: None,
    }
}

impl FieldSchema {
    fn default(mut self, v: Value) -> Self {
        self.default = v;
        self
    }
    fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    fn omit_default(mut self) -> Self {
        self.omit_default = true;
        self
    }
    fn ui_only(mut self) -> Self {
        self.ui_only = true;
        self
    }
    fn when(mut self, field: &'static str, one_of: &[Value]) -> Self {
        self.when = Some(When { field, one_of: one_of.to_vec() });
        self
    }
}

fn slider(range: Range, slider_max: Option<f32>, step: f32) -> FieldKind {
    FieldKind::Float { min: range.min, max: range.max, slider_max, step, integer: false }
}

fn whole(range: Range) -> FieldKind {
    FieldKind::Float { min: range.min, max: range.max, slider_max: None, step: 1.0, integer: true }
}

fn pixels(min: u32, limits: &Limits) -> FieldKind {
    FieldKind::Int { min, max: Some(limits.max_output_dimension) }
}

fn select(options: impl IntoIterator<Item = Choice>) -> FieldKind {
    FieldKind::Select { options: options.into_iter().collect() }
}

fn choice(value: &'static str) -> Choice {
    Choice { value, label: value, help: None }
}

fn gravities(attention: bool) -> FieldKind {
    let extra = attention.then_some(Gravity::Attention);
    select(Gravity::PLACES.into_iter().chain(extra).map(|g| choice(g.name())))
}

/// Aspect ratios the builder offers (a recipe may ask for any `w:h`).
pub const ASPECTS: [&str; 9] = ["1:1", "4:3", "3:2", "16:9", "21:9", "4:5", "2:3", "3:4", "9:16"];

/// Every op, in the order the builder lists them, with sizes bounded by `limits`.
pub fn schema(limits: &Limits) -> Vec<OpSchema> {
    let op = |op, label, fields| OpSchema { op, label, fields };
    let factor =
        |default: f64, label| vec![field("factor", label, slider(FACTOR, Some(3.0), 0.05)).default(json!(default))];
    vec![
        op("resize", "Resize", resize(limits)),
        op("crop", "Crop", crop(limits)),
        op("rotate", "Rotate", rotate()),
        op("flip_horizontal", "Flip left-right", vec![]),
        op("flip_vertical", "Flip top-bottom", vec![]),
        op("grayscale", "Grayscale", vec![]),
        op("sepia", "Sepia", vec![]),
        op("invert", "Invert", vec![]),
        op("brightness", "Brightness", factor(1.2, "Factor (1 = unchanged)")),
        op("contrast", "Contrast", factor(1.2, "Factor (1 = unchanged)")),
        op("saturation", "Saturation", factor(1.3, "Factor (0 = grey, 1 = unchanged)")),
        op("hue", "Hue", vec![field("degrees", "Rotate hues (degrees)", whole(DEGREES)).default(json!(30))]),
        op(
            "gamma",
            "Gamma",
            vec![field("gamma", "Gamma (above 1 brightens mid-tones)", slider(GAMMA, Some(3.0), 0.05))
                .default(json!(1.2))],
        ),
        op(
            "blur",
            "Blur",
            vec![field("sigma", "Radius (sigma, px)", slider(BLUR_SIGMA, Some(20.0), 0.1)).default(json!(2))],
        ),
        op("sharpen", "Sharpen", sharpen()),
        op("watermark", "Watermark", watermark(limits)),
        op(
            "flatten",
            "Flatten transparency",
            vec![field("background", "Background", FieldKind::Color).default(json!("#ffffff"))],
        ),
    ]
}

fn resize(limits: &Limits) -> Vec<FieldSchema> {
    let fits = Fit::ALL.into_iter().map(|f| Choice { value: f.name(), label: f.name(), help: Some(f.help()) });
    vec![
        field("width", "Width (px)", pixels(1, limits)).default(json!(1600)).optional(),
        field("height", "Height (px)", pixels(1, limits)).default(json!(1600)).optional(),
        field("fit", "Fit", select(fits)).default(json!(Fit::default().name())),
        field("gravity", "Keep (gravity)", gravities(true))
            .default(json!(Gravity::default().name()))
            .omit_default()
            .when("fit", &[json!(Fit::Cover.name())]),
        field("enlarge", "Enlarge smaller photos", FieldKind::Check).default(json!(false)).omit_default(),
        field("filter", "Filter", select(Filter::ALL.into_iter().map(|f| choice(f.name()))))
            .default(json!(Filter::default().name()))
            .omit_default(),
    ]
}

fn crop(limits: &Limits) -> Vec<FieldSchema> {
    let modes = [
        Choice { value: "aspect", label: "aspect ratio", help: None },
        Choice { value: "box", label: "pixel box", help: None },
    ];
    let by_aspect = [json!("aspect")];
    let by_box = [json!("box")];
    vec![
        field("_mode", "Crop by", select(modes)).default(json!("aspect")).ui_only(),
        field("aspect", "Aspect", select(ASPECTS.map(choice))).default(json!("16:9")).when("_mode", &by_aspect),
        field("gravity", "Keep (gravity)", gravities(true))
            .default(json!(Gravity::default().name()))
            .omit_default()
            .when("_mode", &by_aspect),
        field("x", "X (px)", FieldKind::Int { min: 0, max: None })
            .default(json!(0))
            .omit_default()
            .when("_mode", &by_box),
        field("y", "Y (px)", FieldKind::Int { min: 0, max: None })
            .default(json!(0))
            .omit_default()
            .when("_mode", &by_box),
        field("width", "Width (px)", pixels(1, limits)).default(json!(800)).when("_mode", &by_box),
        field("height", "Height (px)", pixels(1, limits)).default(json!(600)).when("_mode", &by_box),
    ]
}

fn rotate() -> Vec<FieldSchema> {
    vec![
        field("degrees", "Degrees, clockwise", slider(DEGREES, None, 1.0)).default(json!(90)),
        field("_bg", "Fill uncovered corners with a colour", FieldKind::Check).default(json!(false)).ui_only(),
        field("background", "Corner colour", FieldKind::Color).default(json!("#000000")).when("_bg", &[json!(true)]),
    ]
}

fn sharpen() -> Vec<FieldSchema> {
    vec![
        field("sigma", "Radius (sigma, px)", slider(SHARPEN_SIGMA, Some(10.0), 0.1)).default(json!(1)),
        field("threshold", "Threshold (0–255)", whole(SHARPEN_THRESHOLD)).default(json!(0)).omit_default(),
    ]
}

fn watermark(limits: &Limits) -> Vec<FieldSchema> {
    let kinds = [
        Choice { value: MarkKind::Text.name(), label: "text", help: None },
        Choice { value: MarkKind::Logo.name(), label: "a PNG logo", help: None },
    ];
    let text = [json!(MarkKind::Text.name())];
    let logo = [json!(MarkKind::Logo.name())];
    let scale = FieldKind::Number { min: LOGO_SCALE.min, max: LOGO_SCALE.max, step: 0.01 };
    vec![
        field("_kind", "Mark with", select(kinds)).default(json!(MarkKind::Text.name())).ui_only(),
        field("text", "Text", FieldKind::Text { max_length: MAX_MARK_CHARS })
            .default(json!("© Darkroom"))
            .when("_kind", &text),
        field("image", "Logo (PNG)", FieldKind::Logo).when("_kind", &logo),
        field("gravity", "Position", gravities(false)).default(json!(DEFAULT_GRAVITY.name())),
        field("opacity", "Opacity", slider(OPACITY, None, 0.05)).default(json!(DEFAULT_OPACITY)),
        field("size", "Text height (px, empty: 5% of the photo)", pixels(1, limits)).optional().when("_kind", &text),
        field("scale", "Logo width (fraction of the photo, empty: its own size)", scale)
            .optional()
            .when("_kind", &logo),
        field(
            "margin",
            "Margin (px, empty: automatic)",
            FieldKind::Int { min: 0, max: Some(limits.max_output_dimension) },
        )
        .optional(),
        field("color", "Colour", FieldKind::Color).default(json!("#ffffff")).when("_kind", &text),
    ]
}

impl OpSchema {
    /// The JSON of this op as the builder would first write it, with the switches in `ui`
    /// (name, value) and the rest at their defaults. A logo watermark gets a placeholder key.
    pub fn draft(&self, ui: &[(&str, Value)]) -> Value {
        let value_of = |name: &str| -> Value {
            ui.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| self.fields.iter().find(|f| f.name == name).map(|f| f.default.clone()))
                .unwrap_or(Value::Null)
        };
        let mut out = json!({ "op": self.op });
        for f in &self.fields {
            let applies = f.when.as_ref().is_none_or(|w| w.one_of.contains(&value_of(w.field)));
            if f.ui_only || !applies {
                continue;
            }
            if matches!(f.kind, FieldKind::Logo) {
                out[f.name] = json!("logos/owner/logo.png");
            } else if !f.default.is_null() {
                out[f.name] = f.default.clone();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Op;

    #[test]
    fn the_schema_lists_every_op_once() {
        let schema = schema(&Limits::default());
        let mut names: Vec<&str> = schema.iter().map(|o| o.op).collect();
        names.sort_unstable();
        let mut all = Op::NAMES.to_vec();
        all.sort_unstable();
        assert_eq!(names, all);
    }

    /// A new op with the schema's defaults (the fields that apply when every switch is at its
    /// default) is a valid op: the builder's first draft is never refused.
    #[test]
    fn every_default_op_is_valid() {
        let limits = Limits::default();
        for op in schema(&limits) {
            let json = op.draft(&[]);
            let parsed: Op = serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{json}: {e}"));
            parsed.validate(&limits).unwrap_or_else(|e| panic!("{json}: {e:?}"));
        }
    }

    #[test]
    fn sizes_follow_the_limits() {
        let small = Limits { max_output_dimension: 2000, ..Limits::default() };
        let resize = schema(&small).into_iter().find(|o| o.op == "resize").unwrap();
        assert_eq!(resize.fields[0].kind.bounds(), Some((1.0, 2000.0)));
        let wire = serde_json::to_value(&resize).unwrap();
        assert_eq!(wire["fields"][0]["kind"], "int");
        assert_eq!(wire["fields"][0]["max"], 2000);
    }
}
