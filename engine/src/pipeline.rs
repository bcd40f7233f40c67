//! One decode, many outputs: the engine's entry point for a job.

use serde::{Deserialize, Serialize};

use crate::encode::{encode, Format};
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
    /// JPEG quality 1–100 (ignored by lossless formats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// Apply the EXIF orientation before the ops (default true).
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub auto_orient: bool,
}

fn yes() -> bool {
    true
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

/// Decode `input` once and render every output.
pub fn process(input: &[u8], outputs: &[OutputSpec], limits: &Limits) -> Result<Vec<Rendered>, EngineError> {
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
            img = op.apply(img, limits)?;
        }
        let bytes = encode(&img, spec.format, spec.quality)?;
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
