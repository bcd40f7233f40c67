//! The small preview every job gets besides its outputs, for the gallery's cards (which must
//! never load a full-size output or the original). It is one more output of the same sandbox
//! pass, so it shares the job's decode: the engine decodes once for every output that agrees
//! on orientation and colour profile, and the preview takes those from the job's first output.
//! It is made from the original photo (upright), not from an output: one small resize of the
//! decoded image, whatever the recipe asks for.

use darkroom_engine::{Filter, Fit, Format, Gravity, Op, OutputSpec};
use darkroom_protocol::keys::{PREVIEW_NAME, PREVIEW_SIZE};

/// JPEG quality of a preview: small files for a page of 24 cards, no visible blocks at 320 px.
pub const QUALITY: u8 = 75;

/// The preview's spec for a job that asks for `outputs`: fit within
/// [`PREVIEW_SIZE`]×[`PREVIEW_SIZE`] (never enlarged), JPEG quality [`QUALITY`], progressive
/// off, with the first output's orientation and colour handling (so no second decode).
pub fn spec(outputs: &[OutputSpec]) -> OutputSpec {
    let resize = Op::Resize {
        width: Some(PREVIEW_SIZE),
        height: Some(PREVIEW_SIZE),
        fit: Fit::Inside,
        gravity: Gravity::Centre,
        enlarge: false,
        filter: Filter::default(),
    };
    let mut spec = OutputSpec { quality: Some(QUALITY), ..OutputSpec::new(PREVIEW_NAME, vec![resize], Format::Jpeg) };
    if let Some(first) = outputs.first() {
        spec.auto_orient = first.auto_orient;
        spec.icc = first.icc;
    }
    spec
}

/// The job's outputs followed by its preview: what the sandbox is asked to render.
pub fn with_preview(outputs: &[OutputSpec]) -> Vec<OutputSpec> {
    let mut all = outputs.to_vec();
    all.push(spec(outputs));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkroom_engine::{pipeline, Limits, Resources};

    #[test]
    fn the_preview_is_one_more_output_of_the_same_pass_and_fits_in_320() {
        let input = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/images/j420.jpg")).unwrap();
        let outputs = darkroom_protocol::recipe::preset_outputs("web").unwrap();
        let mut got = Vec::new();
        pipeline::process_each(
            &input,
            &with_preview(&outputs),
            &Limits::default(),
            &Resources::new(),
            None,
            &mut |r| {
                got.push(r);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        let p = got.iter().find(|r| r.name == PREVIEW_NAME).expect("a preview");
        assert!(p.width <= PREVIEW_SIZE && p.height <= PREVIEW_SIZE, "{}x{}", p.width, p.height);
        assert_eq!(p.format, Format::Jpeg);
        assert_eq!(&p.bytes[..2], &[0xFF, 0xD8]);
    }
}
