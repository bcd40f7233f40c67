//! What the engine's stages hand each other, in a module that uses none of them: how to write
//! an output ([`EncodeOptions`], read by encode and by the JPEG codecs), what a rendered output
//! is ([`Rendered`], made by the pipeline and by the planar JPEG path) and the extra images a
//! recipe refers to ([`Resources`]). Kept apart so that no two stages import each other.

use std::collections::HashMap;

use crate::{Chroma, Format, OutputSpec};

/// How to write an output.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EncodeOptions {
    /// JPEG and lossy WebP quality 1–100.
    pub quality: Option<u8>,
    /// Progressive JPEG.
    pub progressive: bool,
    /// JPEG chroma subsampling (default 4:2:0).
    pub chroma: Option<Chroma>,
    /// PNG effort 0–9 (default 6).
    pub compression_level: Option<u8>,
    /// Lossless WebP.
    pub lossless: bool,
    /// AVIF encoder speed 0 (slowest, smallest) – 9 (fastest); default
    /// [`DEFAULT_AVIF_SPEED`](crate::encode::DEFAULT_AVIF_SPEED).
    pub speed: Option<u8>,
}

impl From<&OutputSpec> for EncodeOptions {
    /// The encoding settings an output of a recipe asks for.
    fn from(o: &OutputSpec) -> Self {
        EncodeOptions {
            quality: o.quality,
            progressive: o.progressive,
            chroma: o.chroma_subsampling,
            compression_level: o.compression_level,
            lossless: o.lossless,
            speed: o.speed,
        }
    }
}

/// One encoded output.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub name: String,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

/// Extra images a recipe refers to by key (watermark logos), fetched by the caller: key → bytes.
pub type Resources = HashMap<String, Vec<u8>>;
