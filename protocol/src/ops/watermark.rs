//! The watermark op's parameters, typed: a mark is text or a logo by its type, not by which
//! fields happen to be set.
//!
//! On the wire a watermark stays the flat object it always was
//! (`{"op":"watermark","text":"©","size":40}` or `{"op":"watermark","image":"logos/…","scale":0.2}`):
//! [`WatermarkWire`] is that shape, and [`Watermark`] converts from it, refusing what is neither
//! or both, or a field of the other kind, with the field at fault.

use serde::{Deserialize, Serialize};

use super::values::{Color, Gravity};

/// Overlay a short text or a PNG logo at a gravity position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WatermarkWire", into = "WatermarkWire")]
pub struct Watermark {
    pub mark: Mark,
    pub gravity: Gravity,
    /// 0 (invisible) to 1 (opaque).
    pub opacity: f32,
    /// Distance from the edges in pixels (default: half the text height; 3% of the photo's
    /// shorter side for a logo).
    pub margin: Option<u32>,
}

/// What a watermark draws.
#[derive(Clone, Debug, PartialEq)]
pub enum Mark {
    /// A short text.
    Text {
        text: String,
        /// Text height in pixels (default: 5% of the shorter side).
        size: Option<u32>,
        /// Text colour (default white).
        color: Color,
    },
    /// A PNG logo uploaded earlier.
    Logo {
        /// Key of the logo (`logos/…`); the caller supplies its bytes.
        image: String,
        /// Logo width as a fraction of the photo's width (default: the logo's own size).
        scale: Option<f32>,
    },
}

/// Which kind of mark; the recipe builder's switch between the two sets of fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    Text,
    Logo,
}

impl MarkKind {
    pub fn name(self) -> &'static str {
        match self {
            MarkKind::Text => "text",
            MarkKind::Logo => "logo",
        }
    }
}

impl Mark {
    pub fn kind(&self) -> MarkKind {
        match self {
            Mark::Text { .. } => MarkKind::Text,
            Mark::Logo { .. } => MarkKind::Logo,
        }
    }
}

/// Default position of a watermark.
pub const DEFAULT_GRAVITY: Gravity = Gravity::Southeast;
/// Default opacity of a watermark.
pub const DEFAULT_OPACITY: f32 = 0.5;

/// A watermark as written in recipes and messages: every field of both kinds, flat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default = "default_gravity")]
    pub gravity: Gravity,
    #[serde(default = "default_opacity")]
    pub opacity: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<u32>,
    /// Text colour; a logo ignores it (and writes the default back).
    #[serde(default = "white")]
    pub color: Color,
}

fn default_gravity() -> Gravity {
    DEFAULT_GRAVITY
}
fn default_opacity() -> f32 {
    DEFAULT_OPACITY
}
fn white() -> Color {
    Color::WHITE
}

/// A field of a watermark that does not fit its kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MarkError {
    /// The wire field at fault.
    pub field: &'static str,
    pub message: String,
}

impl TryFrom<WatermarkWire> for Watermark {
    type Error = MarkError;

    fn try_from(w: WatermarkWire) -> Result<Self, MarkError> {
        let bad = |field, message: &str| Err(MarkError { field, message: message.into() });
        let mark = match (w.text, w.image) {
            (Some(_), Some(_)) => return bad("image", "a watermark has either `text` or `image`, not both"),
            (None, None) => {
                return bad("text", "a watermark needs `text` or `image` (the key of an uploaded PNG logo)")
            }
            (Some(text), None) => {
                if w.scale.is_some() {
                    return bad("scale", "scale applies to logo watermarks; text uses size");
                }
                Mark::Text { text, size: w.size, color: w.color }
            }
            (None, Some(image)) => {
                if w.size.is_some() {
                    return bad("size", "size applies to text watermarks; a logo uses scale");
                }
                Mark::Logo { image, scale: w.scale }
            }
        };
        Ok(Watermark { mark, gravity: w.gravity, opacity: w.opacity, margin: w.margin })
    }
}

impl From<Watermark> for WatermarkWire {
    fn from(w: Watermark) -> Self {
        let (text, size, color, image, scale) = match w.mark {
            Mark::Text { text, size, color } => (Some(text), size, color, None, None),
            Mark::Logo { image, scale } => (None, None, Color::WHITE, Some(image), scale),
        };
        WatermarkWire { text, image, gravity: w.gravity, opacity: w.opacity, size, scale, margin: w.margin, color }
    }
}

impl Watermark {
    /// A text watermark with the default position, opacity, size and colour.
    pub fn text(text: &str) -> Self {
        Watermark {
            mark: Mark::Text { text: text.into(), size: None, color: Color::WHITE },
            gravity: DEFAULT_GRAVITY,
            opacity: DEFAULT_OPACITY,
            margin: None,
        }
    }

    /// A logo watermark with the default position, opacity and size.
    pub fn logo(key: &str) -> Self {
        Watermark {
            mark: Mark::Logo { image: key.into(), scale: None },
            gravity: DEFAULT_GRAVITY,
            opacity: DEFAULT_OPACITY,
            margin: None,
        }
    }
}
