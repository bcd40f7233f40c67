//! HEIF headers in pure Rust: is an upload a HEIC photo, and how big is its primary image,
//! read from the container's boxes (`ftyp`, then `meta` → `pitm`, `iprp` → `ipco`/`ipma`, the
//! image's `ispe` size and `irot` rotation) without a decoder.
//!
//! This is what lets the web app refuse HEIC decompression bombs at the door without linking
//! libheif; the engine asks libheif again before it decodes (its `heif` module), so a file that
//! lies here is still held to the limits there. Every read is bounds-checked: a cut-short or
//! malformed header is [`Refusal::Corrupt`], never a panic, and nothing is allocated but a
//! list of the image's property indices.

use crate::limits::Limits;
use crate::refusal::Refusal;

/// Brands that say a HEIF file's images are HEVC, the photos uploads may be: `heic`/`heix`
/// images, `heim`/`heis` multi-layer and scalable images, and `hevc`/`hevx` sequences (whose
/// primary image is still a photo), as phones and cameras write them. A file must list one as
/// its major or a compatible brand.
pub const PHOTO_BRANDS: [&[u8; 4]; 6] = [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"];

/// AV1 brands: AVIF is an output Darkroom writes, not an input it takes (see the engine's
/// `heif` module for why).
pub const AVIF_BRANDS: [&[u8; 4]; 2] = [b"avif", b"avis"];

/// Brands of the HEIF structure only (any codec inside): they make a file HEIF, but alone they
/// are not enough to be decoded (JPEG, VVC, uncompressed… images are refused with a clear error).
pub const STRUCTURAL_BRANDS: [&[u8; 4]; 3] = [b"mif1", b"msf1", b"miaf"];

/// The major brand and the compatible brands of an ISO-BMFF file's `ftyp` box, or `None` when
/// the file does not start with one.
pub fn brands(bytes: &[u8]) -> Option<impl Iterator<Item = &[u8]>> {
    if bytes.len() < 12 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let major = &bytes[8..12];
    // After the major brand: a 4-byte minor version, then the compatible brands.
    let end = size.min(bytes.len());
    let compatible = if end > 16 { &bytes[16..end] } else { &[][..] };
    Some(std::iter::once(major).chain(compatible.chunks_exact(4)))
}

/// Does any of `all` (brands read by [`brands`]) belong to `set`?
pub fn listed(all: &[&[u8]], set: &[&[u8; 4]]) -> bool {
    all.iter().any(|b| set.iter().any(|brand| *b == &brand[..]))
}

/// Is this an ISO-BMFF file with a HEIF brand (HEVC, AV1 or structural)? Such files are
/// probed here, which refuses those without a [`PHOTO_BRANDS`] one with a clear error instead
/// of "not an image".
pub fn sniff(bytes: &[u8]) -> bool {
    brands(bytes).is_some_and(|mut all| {
        all.any(|b| {
            PHOTO_BRANDS.iter().chain(AVIF_BRANDS.iter()).chain(STRUCTURAL_BRANDS.iter()).any(|brand| b == &brand[..])
        })
    })
}

/// Refuse an upload that lists none of the [`PHOTO_BRANDS`] (an AVIF, or a HEIF file whose
/// images use another codec).
pub fn check_brand(bytes: &[u8]) -> Result<(), Refusal> {
    let Some(all) = brands(bytes) else { return Err(Refusal::NotAnImage) };
    let all: Vec<&[u8]> = all.collect();
    if listed(&all, &PHOTO_BRANDS) {
        return Ok(());
    }
    if listed(&all, &AVIF_BRANDS) {
        return Err(Refusal::UnsupportedFormat(
            "AVIF (export the photo as JPEG, PNG, WebP or HEIC and upload that)".into(),
        ));
    }
    let printable = |b: &[u8]| -> String {
        b.iter().map(|&c| if c.is_ascii_graphic() || c == b' ' { c as char } else { '?' }).collect()
    };
    let names: Vec<String> = all.iter().take(8).map(|b| format!("'{}'", printable(b))).collect();
    Err(Refusal::UnsupportedFormat(format!(
        "HEIF ({} brands; Darkroom reads HEIC photos, brands heic, heix, heim, heis, hevc or hevx: export the photo as HEIC, JPEG or PNG)",
        names.join(", ")
    )))
}

/// The displayed size (after the container's rotation) of a HEIC upload's primary image,
/// checked against `limits`: the brand first, then every image size the header declares
/// (the primary image's and any tile's), before anything is decoded.
pub fn dimensions_within(bytes: &[u8], limits: &Limits) -> Result<(u32, u32), Refusal> {
    check_brand(bytes)?;
    let header = Header::read(bytes)?;
    let side = side_limit(limits);
    for &(w, h) in &header.sizes {
        if w > side || h > side {
            return Err(Refusal::Corrupt(format!(
                "the header declares a {w}×{h} image, over the maximum image size of {side} pixels a side"
            )));
        }
        if w > 0 && h > 0 {
            limits.check_dimensions(w, h)?;
        }
    }
    let (w, h) = header.primary_size()?;
    limits.check_dimensions(w, h)?;
    Ok((w, h))
}

/// The widest or tallest image (or grid tile) a HEIF file may declare, whatever the pixel
/// limit: 65536, the most AVIF allows and more than any HEVC grid a camera writes. A smaller
/// pixel limit lowers it: no side of an image within the limit can be longer than the limit.
/// (The engine gives libheif the same limit.)
pub fn side_limit(limits: &Limits) -> u32 {
    limits.max_pixels.clamp(1, 65_536) as u32
}

fn corrupt(what: &str) -> Refusal {
    Refusal::Corrupt(format!("the HEIF header {what}"))
}

/// A box: its type and its payload (after the size and type, and a large size when there is one).
struct Bmff<'a> {
    kind: [u8; 4],
    body: &'a [u8],
}

/// The boxes one after another in `bytes`, or a cut-short one as an error.
fn boxes(mut bytes: &[u8]) -> impl Iterator<Item = Result<Bmff<'_>, Refusal>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        let parsed = next_box(bytes);
        match parsed {
            Ok((b, rest)) => {
                bytes = rest;
                Some(Ok(b))
            }
            Err(e) => {
                bytes = &[];
                Some(Err(e))
            }
        }
    })
}

fn next_box(bytes: &[u8]) -> Result<(Bmff<'_>, &[u8]), Refusal> {
    let short = || corrupt("is cut short (a box runs past the end of the file)");
    let head = bytes.get(..8).ok_or_else(short)?;
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as u64;
    let kind = [head[4], head[5], head[6], head[7]];
    let (start, size) = match size {
        0 => (8, bytes.len() as u64),
        1 => {
            let large = bytes.get(8..16).ok_or_else(short)?;
            (16, u64::from_be_bytes(large.try_into().expect("8 bytes")))
        }
        n => (8, n),
    };
    if size < start as u64 {
        return Err(corrupt("has a box smaller than its own header"));
    }
    let end = usize::try_from(size).map_err(|_| short())?;
    let body = bytes.get(start..end).ok_or_else(short)?;
    Ok((Bmff { kind, body }, &bytes[end..]))
}

fn find<'a>(bytes: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, Refusal> {
    for b in boxes(bytes) {
        let b = b?;
        if &b.kind == kind {
            return Ok(Some(b.body));
        }
    }
    Ok(None)
}

/// A full box's version and the rest of its body (after the 4 bytes of version and flags).
fn full(body: &[u8]) -> Result<(u8, u32, &[u8]), Refusal> {
    let head = body.get(..4).ok_or_else(|| corrupt("has a box cut short"))?;
    Ok((head[0], u32::from_be_bytes([0, head[1], head[2], head[3]]), &body[4..]))
}

/// Reads big-endian numbers off the front of a slice, refusing to run past its end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Refusal> {
        let head = self.0.get(..N).ok_or_else(|| corrupt("has a property list cut short"))?;
        self.0 = &self.0[N..];
        Ok(head.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8, Refusal> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, Refusal> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, Refusal> {
        Ok(u32::from_be_bytes(self.take()?))
    }
}

/// What the `meta` box says about sizes.
struct Header {
    /// Every `ispe` (width, height) in the property container, in its order.
    sizes: Vec<(u32, u32)>,
    /// The primary image's `ispe` and `irot` (quarter turns), when it has them.
    primary: (Option<(u32, u32)>, u8),
}

impl Header {
    fn read(bytes: &[u8]) -> Result<Header, Refusal> {
        let meta = find(bytes, b"meta")?.ok_or_else(|| corrupt("has no `meta` box"))?;
        let (_, _, meta) = full(meta)?;
        let pitm = find(meta, b"pitm")?.ok_or_else(|| corrupt("names no primary image (`pitm`)"))?;
        let (version, _, pitm) = full(pitm)?;
        let mut r = Reader(pitm);
        let primary_id = if version == 0 { r.u16()?.into() } else { r.u32()? };
        let iprp = find(meta, b"iprp")?.ok_or_else(|| corrupt("has no image properties (`iprp`)"))?;
        let ipco = find(iprp, b"ipco")?.ok_or_else(|| corrupt("has no property container (`ipco`)"))?;
        let properties: Vec<Bmff<'_>> = boxes(ipco).collect::<Result<_, _>>()?;
        let mut sizes = Vec::new();
        for p in properties.iter().filter(|p| &p.kind == b"ispe") {
            sizes.push(ispe(p.body)?);
        }
        let mut primary = (None, 0);
        for index in primary_properties(iprp, primary_id)? {
            match properties.get(index.wrapping_sub(1)) {
                Some(p) if &p.kind == b"ispe" => primary.0 = Some(ispe(p.body)?),
                Some(p) if &p.kind == b"irot" => primary.1 = Reader(p.body).u8()? & 3,
                Some(_) => {}
                None if index == 0 => {}
                None => return Err(corrupt("associates a property that does not exist")),
            }
        }
        Ok(Header { sizes, primary })
    }

    /// Width and height as displayed: the primary image's `ispe`, swapped by a quarter turn.
    fn primary_size(&self) -> Result<(u32, u32), Refusal> {
        let (w, h) = self.primary.0.ok_or_else(|| corrupt("gives the primary image no size (`ispe`)"))?;
        Ok(if self.primary.1 % 2 == 1 { (h, w) } else { (w, h) })
    }
}

fn ispe(body: &[u8]) -> Result<(u32, u32), Refusal> {
    let (_, _, body) = full(body)?;
    let mut r = Reader(body);
    Ok((r.u32()?, r.u32()?))
}

/// The 1-based `ipco` indices the `ipma` box associates with item `item`.
fn primary_properties(iprp: &[u8], item: u32) -> Result<Vec<usize>, Refusal> {
    let mut found = Vec::new();
    for ipma in boxes(iprp) {
        let ipma = ipma?;
        if &ipma.kind != b"ipma" {
            continue;
        }
        let (version, flags, body) = full(ipma.body)?;
        let mut r = Reader(body);
        for _ in 0..r.u32()? {
            let id = if version < 1 { r.u16()?.into() } else { r.u32()? };
            for _ in 0..r.u8()? {
                let index = if flags & 1 == 1 { usize::from(r.u16()? & 0x7fff) } else { usize::from(r.u8()? & 0x7f) };
                if id == item {
                    found.push(index);
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::tests::corpus;

    const D06: &str = "D06_storm_1920x1280.heic";

    /// D06 with its `ispe` changed to say `width`×`height`.
    fn declaring(width: u32, height: u32) -> Vec<u8> {
        let mut heic = corpus(D06);
        let at = heic.windows(4).position(|w| w == b"ispe").expect("an ispe box") + 8;
        heic[at..at + 4].copy_from_slice(&width.to_be_bytes());
        heic[at + 4..at + 8].copy_from_slice(&height.to_be_bytes());
        heic
    }

    #[test]
    fn reads_the_corpus_heic() {
        let heic = corpus(D06);
        assert!(sniff(&heic));
        assert_eq!(dimensions_within(&heic, &Limits::default()), Ok((1920, 1280)));
    }

    #[test]
    fn a_rotation_swaps_the_displayed_size() {
        // Put an `irot` of a quarter turn in place of the `pixi` property the image has: same
        // length (16 bytes), same association.
        let mut heic = corpus(D06);
        let at = heic.windows(4).position(|w| w == b"pixi").expect("a pixi box") - 4;
        assert_eq!(&heic[at..at + 4], &16u32.to_be_bytes());
        let irot = [0, 0, 0, 16, b'i', b'r', b'o', b't', 1, 0, 0, 0, 0, 0, 0, 0];
        heic[at..at + 16].copy_from_slice(&irot);
        assert_eq!(dimensions_within(&heic, &Limits::default()), Ok((1280, 1920)));
    }

    #[test]
    fn bombs_are_refused_from_the_header() {
        let l = Limits::default();
        let err = dimensions_within(&declaring(20_000, 20_000), &l).unwrap_err();
        assert_eq!(err, Refusal::TooManyPixels { width: 20_000, height: 20_000, limit: l.max_pixels });
        let tiny = Limits { max_pixels: 3_000, ..l };
        assert!(matches!(dimensions_within(&declaring(60, 60), &tiny), Err(Refusal::TooManyPixels { .. })));
        assert!(
            matches!(dimensions_within(&declaring(3_001, 1), &tiny), Err(Refusal::Corrupt(m)) if m.contains("maximum image size"))
        );
        assert!(matches!(dimensions_within(&declaring(0, 1280), &l), Err(Refusal::Corrupt(_))));
        // A side over the side limit, whatever the pixels: refused as libheif refuses it.
        let err = dimensions_within(&declaring(100_000, 2), &l).unwrap_err();
        assert!(matches!(&err, Refusal::Corrupt(m) if m.contains("maximum image size")), "{err:?}");
        assert_eq!(side_limit(&tiny), 3_000);
    }

    #[test]
    fn every_cut_of_the_header_is_refused_without_a_panic() {
        let heic = corpus(D06);
        let meta_end = heic.windows(4).position(|w| w == b"mdat").expect("an mdat box");
        for len in 12..meta_end - 4 {
            let err = dimensions_within(&heic[..len], &Limits::default());
            assert!(matches!(err, Err(Refusal::Corrupt(_))), "cut at {len}: {err:?}");
        }
        // The header is all the reader needs: the coded image may be missing.
        assert_eq!(dimensions_within(&heic[..meta_end + 4], &Limits::default()), Ok((1920, 1280)));
    }

    #[test]
    fn other_codecs_are_refused_by_brand() {
        let mut avif = corpus(D06);
        avif[8..12].copy_from_slice(b"avif");
        avif[20..24].copy_from_slice(b"avif");
        assert!(sniff(&avif));
        assert!(
            matches!(dimensions_within(&avif, &Limits::default()), Err(Refusal::UnsupportedFormat(m)) if m.starts_with("AVIF"))
        );
        let mut other = corpus(D06);
        other[8..12].copy_from_slice(b"mif1");
        other[20..24].copy_from_slice(b"mif1");
        assert!(
            matches!(dimensions_within(&other, &Limits::default()), Err(Refusal::UnsupportedFormat(m)) if m.starts_with("HEIF"))
        );
        assert!(!sniff(b"\xff\xd8\xff\xe0 not a heif"));
    }
}
