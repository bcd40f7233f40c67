//! One decode, many outputs: the engine's entry point for a job.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::encode::{encode, Chroma, EncodeOptions, Format};
use crate::{decode::decode, EngineError, Limits, Op};

/// One output a job asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Name of the output, unique within the job (`thumbnail`, `web`, …).
    pub name: String,
    /// Edits applied in order.
    #[serde(default)]
    pub ops: Vec<Op>,
    /// Output format.
    #[serde(default)]
    pub format: Format,
    /// JPEG / lossy WebP quality 1–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// Progressive JPEG.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub progressive: bool,
    /// JPEG chroma subsampling: "4:2:0" (default), "4:2:2", "4:4:4".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chroma_subsampling: Option<Chroma>,
    /// PNG zlib level 0–9 (default 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<u8>,
    /// Lossless WebP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lossless: bool,
    /// Apply the EXIF orientation before the ops (default true).
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub auto_orient: bool,
}

fn yes() -> bool {
    true
}

impl OutputSpec {
    /// An output with default encoding settings.
    pub fn new(name: &str, ops: Vec<Op>, format: Format) -> Self {
        OutputSpec {
            name: name.into(),
            ops,
            format,
            quality: None,
            progressive: false,
            chroma_subsampling: None,
            compression_level: None,
            lossless: false,
            auto_orient: true,
        }
    }

    pub fn encode_options(&self) -> EncodeOptions {
        EncodeOptions {
            quality: self.quality,
            progressive: self.progressive,
            chroma: self.chroma_subsampling,
            compression_level: self.compression_level,
            lossless: self.lossless,
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

/// Decode `input` once and render every output, giving up with [`EngineError::TimeLimit`]
/// once `deadline` has passed (checked between steps).
pub fn process_until(
    input: &[u8],
    outputs: &[OutputSpec],
    limits: &Limits,
    deadline: Option<(Instant, u64)>,
) -> Result<Vec<Rendered>, EngineError> {
    let check = || match deadline {
        Some((at, secs)) if Instant::now() > at => Err(EngineError::TimeLimit(secs)),
        _ => Ok(()),
    };
    let mut oriented = None;
    let mut raw = None;
    let mut rendered = Vec::with_capacity(outputs.len());
    for spec in outputs {
        let slot = if spec.auto_orient { &mut oriented } else { &mut raw };
        if slot.is_none() {
            *slot = Some(decode(input, limits, spec.auto_orient)?);
        }
        let mut img = slot.as_ref().expect("decoded above").clone();
        for op in &spec.ops {
            check()?;
            img = op.apply(img, limits)?;
        }
        check()?;
        limits.check_output(img.width(), img.height())?;
        let bytes = encode(&img, spec.format, &spec.encode_options())?;
        rendered.push(Rendered {
            name: spec.name.clone(),
            format: spec.format,
            width: img.width(),
            height: img.height(),
            bytes,
        });
    }
    Ok(rendered)
}

/// [`process_until`] without a time limit.
pub fn process(input: &[u8], outputs: &[OutputSpec], limits: &Limits) -> Result<Vec<Rendered>, EngineError> {
    process_until(input, outputs, limits, None)
}
