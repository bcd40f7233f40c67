//! The value types of the op vocabulary (fit, gravity, filter, colour, aspect ratio): how they
//! are written in recipes and the little arithmetic that belongs to them (where a gravity places
//! a box).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a resize fits the image into the requested box.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Keep the aspect ratio, fit within the box (the default).
    #[default]
    Inside,
    /// Keep the aspect ratio, cover the box, crop the overflow (by gravity).
    Cover,
    /// Stretch to exactly the box.
    Fill,
    /// Keep the aspect ratio, at least as large as the box.
    Outside,
}

impl Fit {
    pub const ALL: [Fit; 4] = [Fit::Inside, Fit::Cover, Fit::Fill, Fit::Outside];

    pub fn name(self) -> &'static str {
        match self {
            Fit::Inside => "inside",
            Fit::Cover => "cover",
            Fit::Fill => "fill",
            Fit::Outside => "outside",
        }
    }

    /// What the fit does, in a few words (the recipe builder shows it).
    pub fn help(self) -> &'static str {
        match self {
            Fit::Inside => "keep proportions, fit within the box",
            Fit::Cover => "fill the box, crop the overflow",
            Fit::Fill => "stretch to the box",
            Fit::Outside => "keep proportions, at least the box",
        }
    }
}

/// Where a crop or overlay sits: the centre, a compass point, or (crops only) the most
/// detailed region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gravity {
    #[default]
    #[serde(alias = "center")]
    Centre,
    North,
    Northeast,
    East,
    Southeast,
    South,
    Southwest,
    West,
    Northwest,
    /// The region with the most detail (edges), for crops.
    Attention,
}

impl Gravity {
    /// The positions (every gravity but [`Gravity::Attention`], which only crops have).
    pub const PLACES: [Gravity; 9] = [
        Gravity::Centre,
        Gravity::North,
        Gravity::Northeast,
        Gravity::East,
        Gravity::Southeast,
        Gravity::South,
        Gravity::Southwest,
        Gravity::West,
        Gravity::Northwest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Gravity::Centre => "centre",
            Gravity::North => "north",
            Gravity::Northeast => "northeast",
            Gravity::East => "east",
            Gravity::Southeast => "southeast",
            Gravity::South => "south",
            Gravity::Southwest => "southwest",
            Gravity::West => "west",
            Gravity::Northwest => "northwest",
            Gravity::Attention => "attention",
        }
    }

    pub fn is_default(&self) -> bool {
        *self == Gravity::Centre
    }

    /// Offset of a `w`×`h` box inside a `full_w`×`full_h` one.
    pub fn place(self, full_w: u32, full_h: u32, w: u32, h: u32) -> (u32, u32) {
        let (fx, fy) = (full_w.saturating_sub(w), full_h.saturating_sub(h));
        let (ax, ay) = match self {
            Gravity::Centre | Gravity::Attention => (1, 1),
            Gravity::North => (1, 0),
            Gravity::Northeast => (2, 0),
            Gravity::East => (2, 1),
            Gravity::Southeast => (2, 2),
            Gravity::South => (1, 2),
            Gravity::Southwest => (0, 2),
            Gravity::West => (0, 1),
            Gravity::Northwest => (0, 0),
        };
        (fx * ax / 2, fy * ay / 2)
    }
}

/// Resampling filter for resizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    Nearest,
    Bilinear,
    Mitchell,
    Catmullrom,
    #[default]
    Lanczos3,
}

impl Filter {
    /// Every filter, best first (the order the recipe builder lists them in).
    pub const ALL: [Filter; 5] =
        [Filter::Lanczos3, Filter::Catmullrom, Filter::Mitchell, Filter::Bilinear, Filter::Nearest];

    pub fn name(self) -> &'static str {
        match self {
            Filter::Nearest => "nearest",
            Filter::Bilinear => "bilinear",
            Filter::Mitchell => "mitchell",
            Filter::Catmullrom => "catmullrom",
            Filter::Lanczos3 => "lanczos3",
        }
    }

    pub fn is_default(&self) -> bool {
        *self == Filter::Lanczos3
    }
}

/// An sRGB colour with alpha, written `"#rrggbb"` or `"#rrggbbaa"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Color(pub [u8; 4]);

impl Color {
    pub const WHITE: Color = Color([255, 255, 255, 255]);
    pub const BLACK: Color = Color([0, 0, 0, 255]);

    pub fn parse(s: &str) -> Result<Color, String> {
        let hex = s.strip_prefix('#').unwrap_or(s);
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16);
        let bad = || format!("colours are written \"#rrggbb\" or \"#rrggbbaa\", got {s:?}");
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        match hex.len() {
            6 => Ok(Color([byte(0).unwrap(), byte(2).unwrap(), byte(4).unwrap(), 255])),
            8 => Ok(Color([byte(0).unwrap(), byte(2).unwrap(), byte(4).unwrap(), byte(6).unwrap()])),
            _ => Err(bad()),
        }
    }
}

impl Serialize for Color {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let [r, g, b, a] = self.0;
        if a == 255 {
            s.serialize_str(&format!("#{r:02x}{g:02x}{b:02x}"))
        } else {
            s.serialize_str(&format!("#{r:02x}{g:02x}{b:02x}{a:02x}"))
        }
    }
}

impl<'de> Deserialize<'de> for Color {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Color::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `"16:9"` → 16/9.
pub fn parse_aspect(s: &str) -> Result<f64, String> {
    let bad = || format!("aspect is written like \"16:9\" or \"1:1\", got {s:?}");
    let (w, h) = s.split_once(':').ok_or_else(bad)?;
    let w: f64 = w.trim().parse().map_err(|_| bad())?;
    let h: f64 = h.trim().parse().map_err(|_| bad())?;
    if !(w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite() && w / h < 100.0 && h / w < 100.0) {
        return Err(bad());
    }
    Ok(w / h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_and_print() {
        assert_eq!(Color::parse("#ff8000").unwrap(), Color([255, 128, 0, 255]));
        assert_eq!(Color::parse("00000080").unwrap(), Color([0, 0, 0, 128]));
        assert!(Color::parse("#12345").is_err());
        assert!(Color::parse("#gg0000").is_err());
        assert_eq!(serde_json::to_string(&Color([1, 2, 3, 255])).unwrap(), "\"#010203\"");
    }

    #[test]
    fn gravity_places_boxes() {
        assert_eq!(Gravity::Centre.place(100, 50, 20, 10), (40, 20));
        assert_eq!(Gravity::Northwest.place(100, 50, 20, 10), (0, 0));
        assert_eq!(Gravity::Southeast.place(100, 50, 20, 10), (80, 40));
        assert_eq!(Gravity::East.place(100, 50, 20, 10), (80, 20));
    }

    #[test]
    fn names_are_the_wire_names() {
        for f in Fit::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.name());
        }
        for g in Gravity::PLACES.into_iter().chain([Gravity::Attention]) {
            assert_eq!(serde_json::to_value(g).unwrap(), g.name());
        }
        for f in Filter::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.name());
        }
    }

    #[test]
    fn aspects() {
        assert_eq!(parse_aspect("16:9").unwrap(), 16.0 / 9.0);
        assert!(parse_aspect("0:1").is_err());
        assert!(parse_aspect("wide").is_err());
    }
}
