//! The sandbox's wire format: one request per job down the child's stdin, frames back up its
//! stdout. Each message is a little-endian u32 length and that much JSON; an output frame is
//! followed by the output's bytes (their length is in the frame), so image bytes are never
//! JSON-encoded.

use std::io::{self, Read, Write};

use darkroom_engine::{Format, Limits, OutputSpec, Rendered, Resources};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest JSON header either side accepts (a recipe is a few KiB).
const MAX_HEADER: u32 = 4 * 1024 * 1024;

/// What the child is asked to do: the input's bytes and every resource's follow, in order.
#[derive(Serialize, Deserialize)]
pub struct Request {
    pub outputs: Vec<OutputSpec>,
    pub limits: Limits,
    pub time_limit_secs: u64,
    pub input_len: u64,
    pub resources: Vec<(String, u64)>,
}

/// What the child answers, in order: an `Output` per output as it is encoded, then exactly
/// one of `Done`, `Failed` or `Panicked`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum Frame {
    Output {
        name: String,
        format: Format,
        width: u32,
        height: u32,
        len: u64,
    },
    Done,
    /// The engine refused the job (an [`EngineError`](darkroom_engine::EngineError)).
    Failed {
        code: String,
        message: String,
    },
    /// The engine panicked; the child exits after sending this.
    Panicked {
        message: String,
    },
}

fn header_too_large(len: u32) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sandbox message header of {len} bytes"))
}

// ---- the parent's side (async) ----

pub async fn send_request(
    w: &mut (impl AsyncWrite + Unpin),
    request: &Request,
    input: &[u8],
    resources: &Resources,
) -> io::Result<()> {
    let header = serde_json::to_vec(request).map_err(io::Error::other)?;
    w.write_all(&(header.len() as u32).to_le_bytes()).await?;
    w.write_all(&header).await?;
    w.write_all(input).await?;
    for (key, _) in &request.resources {
        w.write_all(&resources[key]).await?;
    }
    w.flush().await
}

pub async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> io::Result<Frame> {
    let len = r.read_u32_le().await?;
    if len > MAX_HEADER {
        return Err(header_too_large(len));
    }
    let mut header = vec![0; len as usize];
    r.read_exact(&mut header).await?;
    serde_json::from_slice(&header).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub async fn read_bytes(r: &mut (impl AsyncRead + Unpin), len: u64) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; len as usize];
    r.read_exact(&mut bytes).await?;
    Ok(bytes)
}

// ---- the child's side (blocking) ----

/// The next request with its input and resources, or `None` when the parent closed stdin.
pub fn read_request(r: &mut impl Read) -> io::Result<Option<(Request, Vec<u8>, Resources)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(header_too_large(len));
    }
    let mut header = vec![0; len as usize];
    r.read_exact(&mut header)?;
    let request: Request =
        serde_json::from_slice(&header).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut input = vec![0; request.input_len as usize];
    r.read_exact(&mut input)?;
    let mut resources = Resources::new();
    for (key, len) in &request.resources {
        let mut bytes = vec![0; *len as usize];
        r.read_exact(&mut bytes)?;
        resources.insert(key.clone(), bytes);
    }
    Ok(Some((request, input, resources)))
}

pub fn write_frame(w: &mut impl Write, frame: &Frame) -> io::Result<()> {
    let header = serde_json::to_vec(frame).map_err(io::Error::other)?;
    w.write_all(&(header.len() as u32).to_le_bytes())?;
    w.write_all(&header)
}

pub fn write_output(w: &mut impl Write, r: &Rendered) -> io::Result<()> {
    let frame = Frame::Output {
        name: r.name.clone(),
        format: r.format,
        width: r.width,
        height: r.height,
        len: r.bytes.len() as u64,
    };
    write_frame(w, &frame)?;
    w.write_all(&r.bytes)?;
    w.flush()
}
