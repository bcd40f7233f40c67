//! Multipart bodies with a bound on part headers, which actix-multipart (0.7.2, the newest
//! release) does not have: it buffers a part's header block until it finds the blank line that
//! ends it, however far that is (searching the whole buffer again for every chunk that arrives),
//! and the same for the preamble before the first boundary, for the line after a part and for
//! the closing boundary's line. A header block of gigabytes without an end would cost that much
//! memory and quadratic time.
//!
//! [`Parts`] reads a body through two checks:
//! - a scanner that follows the body's structure (boundary delimiters, header blocks) in
//!   constant memory and stops a header block or a preamble as soon as it passes
//!   [`MAX_PART_HEADER_BYTES`];
//! - a meter, the backstop for whatever the parser's own grammar allows beyond the scanner's
//!   (its quirks are many): every byte goes into the parser through it and every byte of part
//!   content comes out through [`Parts::next_chunk`]; the difference is what the parser holds
//!   (structure, and content it has read but not handed out yet), which may not pass
//!   [`READ_SLACK`] plus [`MAX_PART_HEADER_BYTES`] per part.
//!
//! Either stops the body, and the request is answered `400 part_headers_too_large`. The
//! parser's own limit of 32 headers per part still applies inside the bound.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_multipart::{Field, Multipart};
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, TryStreamExt};

use crate::error::ApiError;

/// Most bytes of one part's header block (and of the text between parts). A browser's part
/// headers are a `Content-Disposition` with the file name and a `Content-Type`: a few hundred
/// bytes.
pub const MAX_PART_HEADER_BYTES: u64 = 16 * 1024;
/// Most parts in one request (an upload has at most 50 files, a recipe and a preset), so the
/// meter's allowance for part headers stays bounded too.
pub const MAX_PARTS: u64 = 64;
/// Content the parser may hold ahead of the handler. One chunk from actix is up to about
/// 256 KiB (its read buffer stops growing past 128 KiB, then doubles once), and the parser
/// pulls everything ready before it hands anything out: two chunks and what was left over, with
/// room to spare. Measured: 440 KiB held while one file part ends and the next begins.
pub const READ_SLACK: u64 = 2 * 1024 * 1024;

/// Bytes in and out of the parser.
#[derive(Debug, Default)]
pub struct Meter {
    fed: Cell<u64>,
    handed_out: Cell<u64>,
    parts: Cell<u64>,
    overflow: Cell<bool>,
}

impl Meter {
    /// What the parser may hold now: a header block for each part seen and the next one.
    fn budget(&self) -> u64 {
        (self.parts.get() + 1) * MAX_PART_HEADER_BYTES + READ_SLACK
    }

    /// Bytes the parser holds now (structure and content not handed out yet).
    pub fn held(&self) -> u64 {
        self.fed.get() - self.handed_out.get().min(self.fed.get())
    }

    pub fn overflowed(&self) -> bool {
        self.overflow.get()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before the first delimiter (bounded).
    Preamble,
    /// Right after a delimiter: `--` closes the body, anything else starts a header block.
    AfterDelimiter,
    /// In a header block, looking for the blank line that ends it (bounded).
    Headers,
    /// In a part's content, looking for the next delimiter.
    Content,
    /// After the closing delimiter.
    Epilogue,
}

/// Follows a multipart body's structure chunk by chunk with a few bytes of memory.
#[derive(Debug)]
struct Scanner {
    /// `\r\n--{boundary}`.
    delimiter: Vec<u8>,
    phase: Phase,
    /// Bytes of the current bounded section so far.
    counted: u64,
    /// The unsearched tail of the previous chunk, shorter than what is searched for.
    carry: Vec<u8>,
    limit: u64,
}

impl Scanner {
    fn new(boundary: &str, limit: u64) -> Scanner {
        // The body may open with the delimiter without its line break: scan as if it had one.
        Scanner {
            delimiter: [b"\r\n--", boundary.as_bytes()].concat(),
            phase: Phase::Preamble,
            counted: 0,
            carry: b"\r\n".to_vec(),
            limit,
        }
    }

    /// Follow `chunk`; `false` once a header block or the preamble passes the limit.
    fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match self.phase {
                Phase::Preamble | Phase::Content => match memchr::memmem::find(rest, &self.delimiter) {
                    Some(i) => {
                        if !self.count(i) {
                            return false;
                        }
                        pos += i + self.delimiter.len();
                        self.phase = Phase::AfterDelimiter;
                    }
                    None => return self.keep(&buf, pos, self.delimiter.len() - 1),
                },
                Phase::AfterDelimiter => {
                    if rest.len() < 2 {
                        return self.keep(&buf, pos, 1);
                    }
                    self.counted = 0;
                    self.phase = if rest.starts_with(b"--") { Phase::Epilogue } else { Phase::Headers };
                }
                Phase::Headers => match memchr::memmem::find(rest, b"\r\n\r\n") {
                    Some(i) => {
                        if !self.count(i + 4) {
                            return false;
                        }
                        pos += i + 4;
                        self.counted = 0;
                        self.phase = Phase::Content;
                    }
                    None => return self.keep(&buf, pos, 3),
                },
                Phase::Epilogue => return true,
            }
        }
    }

    /// Keep up to `tail` unsearched bytes of `buf[pos..]` for the next chunk; count the rest.
    fn keep(&mut self, buf: &[u8], pos: usize, tail: usize) -> bool {
        let from = buf.len().saturating_sub(tail).max(pos);
        self.carry = buf[from..].to_vec();
        self.count(from - pos)
    }

    fn count(&mut self, n: usize) -> bool {
        if matches!(self.phase, Phase::Preamble | Phase::Headers) {
            self.counted += n as u64;
            return self.counted <= self.limit;
        }
        true
    }
}

/// The request body on its way into the parser, scanned and measured.
struct Metered {
    inner: Payload,
    scanner: Option<Scanner>,
    meter: Rc<Meter>,
}

impl Stream for Metered {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.meter.overflow.get() {
            return Poll::Ready(None);
        }
        let item = futures_util::ready!(Pin::new(&mut this.inner).poll_next(cx));
        if let Some(Ok(chunk)) = &item {
            let meter = &this.meter;
            meter.fed.set(meter.fed.get() + chunk.len() as u64);
            let scanned = this.scanner.as_mut().is_none_or(|s| s.feed(chunk));
            if !scanned || meter.held() > meter.budget() {
                meter.overflow.set(true);
                tracing::warn!(
                    fed = meter.fed.get(),
                    handed_out = meter.handed_out.get(),
                    parts = meter.parts.get(),
                    chunk = chunk.len(),
                    scanned,
                    "multipart body refused: part headers (or the text between parts) too large"
                );
                return Poll::Ready(Some(Err(PayloadError::Overflow)));
            }
        }
        Poll::Ready(item)
    }
}

/// A small part as [`Parts::read_small`] read it.
pub enum Small {
    Whole(Bytes),
    /// Longer than the limit: `bytes` were there when reading stopped.
    TooLarge {
        bytes: u64,
    },
}

/// A multipart request body, read part by part under the bound (an extractor, like
/// actix-multipart's `Multipart`).
pub struct Parts {
    multipart: Multipart,
    meter: Rc<Meter>,
}

impl Parts {
    pub fn new(req: &HttpRequest, payload: Payload) -> Parts {
        let meter = Rc::new(Meter::default());
        // Without a boundary the parser refuses the request itself.
        let boundary = req.mime_type().ok().flatten().and_then(|m| m.get_param("boundary").map(|b| b.to_string()));
        let scanner = boundary.map(|b| Scanner::new(&b, MAX_PART_HEADER_BYTES));
        let multipart = Multipart::new(req.headers(), Metered { inner: payload, scanner, meter: meter.clone() });
        Parts { multipart, meter }
    }

    /// The next part, `None` after the last.
    pub async fn next_part(&mut self) -> Result<Option<Field>, ApiError> {
        let field = self.multipart.try_next().await.map_err(|e| self.error(e))?;
        if field.is_some() {
            let parts = self.meter.parts.get() + 1;
            if parts > MAX_PARTS {
                return Err(ApiError::BadUpload(format!(
                    "more than {MAX_PARTS} parts in one request; send `file` parts and one `recipe` part"
                )));
            }
            self.meter.parts.set(parts);
        }
        Ok(field)
    }

    /// The next chunk of `field`'s content, `None` at its end.
    pub async fn next_chunk(&mut self, field: &mut Field) -> Result<Option<Bytes>, ApiError> {
        let chunk = field.try_next().await.map_err(|e| self.error(e))?;
        if let Some(c) = &chunk {
            self.meter.handed_out.set(self.meter.handed_out.get() + c.len() as u64);
        }
        Ok(chunk)
    }

    /// The whole content of a small part (a recipe, a logo) in memory, stopped as soon as it
    /// passes `limit` bytes: the one way the web app reads a part into memory (file parts of
    /// an upload go to disk instead, chunk by chunk, through [`Parts::next_chunk`]).
    pub async fn read_small(&mut self, field: &mut Field, limit: u64) -> Result<Small, ApiError> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.next_chunk(field).await? {
            let bytes = (buf.len() + chunk.len()) as u64;
            if bytes > limit {
                return Ok(Small::TooLarge { bytes });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Small::Whole(buf.freeze()))
    }

    /// The parser's counts (for tests).
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    fn error(&self, e: actix_multipart::MultipartError) -> ApiError {
        if self.meter.overflowed() {
            ApiError::PartHeadersTooLarge { limit: MAX_PART_HEADER_BYTES }
        } else {
            ApiError::BadUpload(e.to_string())
        }
    }
}

impl FromRequest for Parts {
    type Error = Infallible;
    type Future = Ready<Result<Parts, Infallible>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ready(Ok(Parts::new(req, payload.take())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    const CT: &str = "multipart/form-data; boundary=XyZ";

    /// A body as a connection delivers it: a chunk, then nothing more until the reader has
    /// taken it (actix pauses the socket while 32 KiB are unread).
    struct Network {
        chunks: std::vec::IntoIter<Bytes>,
        pause: bool,
    }

    impl Stream for Network {
        type Item = Result<Bytes, PayloadError>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.pause = !self.pause;
            if !self.pause {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(self.chunks.next().map(Ok))
        }
    }

    /// Read every part of `body` (sent in 8 KiB chunks) as a handler would; the parts' names
    /// and contents, or the error, and the most the parser held at any time.
    async fn read(body: Vec<u8>) -> (Result<Vec<(String, Vec<u8>)>, ApiError>, u64) {
        let chunks: Vec<Bytes> = body.chunks(8 * 1024).map(Bytes::copy_from_slice).collect();
        let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(Network { chunks: chunks.into_iter(), pause: false });
        let req = TestRequest::default().insert_header(("content-type", CT)).to_http_request();
        let mut parts = Parts::new(&req, Payload::from(stream));
        let mut most = 0;
        let result = async {
            let mut out = Vec::new();
            while let Some(mut field) = parts.next_part().await? {
                let name = field.name().unwrap_or_default().to_string();
                let mut content = Vec::new();
                while let Some(c) = parts.next_chunk(&mut field).await? {
                    most = most.max(parts.meter().held());
                    content.extend_from_slice(&c);
                }
                out.push((name, content));
            }
            Ok(out)
        }
        .await;
        (result, most.max(parts.meter().held()))
    }

    fn part(name: &str, content: &[u8]) -> Vec<u8> {
        [format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(), content, b"\r\n"]
            .concat()
    }

    fn assert_refused(result: Result<Vec<(String, Vec<u8>)>, ApiError>, what: &str) {
        match result {
            Err(ApiError::PartHeadersTooLarge { .. }) => {}
            other => panic!("{what}: expected part_headers_too_large, got {:?}", other.map(|p| p.len())),
        }
    }

    #[actix_web::test]
    async fn ordinary_bodies_pass_with_the_parser_holding_little() {
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let body =
            [part("recipe", b"{}"), part("file", &big), part("file", b"\r\n\r\n--XyQ-not"), b"--XyZ--\r\n".to_vec()]
                .concat();
        let (result, most) = read(body).await;
        let parts = result.unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].1, big, "content passes unchanged");
        assert_eq!(parts[2].1, b"\r\n\r\n--XyQ-not");
        assert!(most < 64 * 1024, "the parser held at most {most} bytes");
    }

    #[actix_web::test]
    async fn parts_are_counted() {
        let mut body: Vec<u8> = (0..MAX_PARTS).flat_map(|_| part("recipe", b"{}")).collect();
        body.extend(b"--XyZ--\r\n");
        assert_eq!(read(body.clone()).await.0.unwrap().len() as u64, MAX_PARTS);
        let body = [part("recipe", b"{}"), body].concat();
        match read(body).await.0 {
            Err(ApiError::BadUpload(m)) => assert!(m.contains("parts in one request"), "{m}"),
            other => panic!("one part too many: {:?}", other.map(|p| p.len())),
        }
    }

    #[actix_web::test]
    async fn a_megabyte_of_part_header_lines_is_refused_early() {
        let lines: String = (0..10_000).map(|i| format!("X-Pad-{i:05}: {}\r\n", "a".repeat(90))).collect();
        assert!(lines.len() >= 1_000_000);
        let body = [
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n{lines}\r\n").as_bytes(),
            b"x\r\n--XyZ--\r\n",
        ]
        .concat();
        let (result, most) = read(body).await;
        assert_refused(result, "1 MiB of header lines");
        assert!(most <= MAX_PART_HEADER_BYTES + 16 * 1024, "stopped at the header limit: held {most}");
    }

    /// A body of `parts` (headers, content) in the test boundary.
    fn body(parts: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (headers, content) in parts {
            b.extend_from_slice(format!("--XyZ\r\n{headers}\r\n\r\n{content}\r\n").as_bytes());
        }
        b.extend_from_slice(b"--XyZ--\r\n");
        b
    }

    /// Scan `body` in chunks of every size from 1 to 40 bytes; whether all of it passed (the
    /// same for every chunking).
    fn scans(body: &[u8], limit: u64) -> bool {
        let results: Vec<bool> = (1..=40)
            .map(|size| {
                let mut s = Scanner::new("XyZ", limit);
                body.chunks(size).all(|c| s.feed(c))
            })
            .collect();
        assert!(results.iter().all(|r| *r == results[0]), "chunking changes nothing: {results:?}");
        results[0]
    }

    #[test]
    fn the_scanner_passes_ordinary_bodies_whatever_the_chunking() {
        let cd = "Content-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg";
        // Content may hold anything but the delimiter, blank lines included.
        let content = format!("\r\n\r\n--XyQ\r\n{}", "x".repeat(5000));
        assert!(scans(&body(&[(cd, &content), ("Content-Disposition: form-data; name=\"recipe\"", "{}")]), 100));
        // A short preamble; an epilogue (not bounded: the parser never reads it).
        let mut b = b"preamble\r\n".to_vec();
        b.extend(body(&[(cd, "abc")]));
        b.extend(vec![b'e'; 1000]);
        assert!(scans(&b, 100));
    }

    #[test]
    fn the_scanner_stops_a_header_block_or_preamble_over_the_limit() {
        let many = (0..20).map(|i| format!("X-Pad-{i}: {}", "a".repeat(20))).collect::<Vec<_>>().join("\r\n");
        assert!(!scans(&body(&[("Content-Disposition: form-data; name=\"file\"", "x"), (&many, "y")]), 400));
        // The header block with its line breaks: exactly the limit passes, one byte less does not.
        let headers = "Content-Disposition: form-data; name=\"f\"";
        let exact = (headers.len() + 2 + 4) as u64;
        assert!(scans(&body(&[(headers, "x")]), exact));
        assert!(!scans(&body(&[(headers, "x")]), exact - 1));
        // A header block that never ends is stopped as soon as it passes the limit.
        let mut s = Scanner::new("XyZ", 1000);
        assert!(s.feed(b"--XyZ\r\nX-Endless: "));
        let stopped_after = (0..100).position(|_| !s.feed(&[b'a'; 100])).expect("stopped");
        assert!(stopped_after <= 10, "stopped near the limit, after {stopped_after} chunks");
        let mut b = vec![b'p'; 500];
        b.extend(body(&[(headers, "x")]));
        assert!(!scans(&b, 400), "a long preamble");
    }

    #[actix_web::test]
    async fn the_parsers_other_unbounded_reads_are_bounded_too() {
        let endless = vec![b'a'; 4 * 1024 * 1024];
        let cases: Vec<(&str, Vec<u8>)> = vec![
            // A header block that never ends.
            ("endless header", [b"--XyZ\r\nX-A: ".as_slice(), &endless].concat()),
            // A preamble line that never ends.
            ("endless preamble", endless.clone()),
            // An empty header block, then content the parser still reads as headers.
            ("empty headers", [b"--XyZ\r\n\r\n".as_slice(), &endless].concat()),
            // The closing boundary's line that never ends.
            ("endless closing line", [part("recipe", b"{}").as_slice(), b"--XyZ--", &endless].concat()),
            // A part with its own Content-Length, then a line that never ends.
            (
                "part content-length",
                [
                    b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\nContent-Length: 1\r\n\r\nx".as_slice(),
                    &endless,
                ]
                .concat(),
            ),
        ];
        for (what, body) in cases {
            let (result, most) = read(body).await;
            assert_refused(result, what);
            assert!(most <= 2 * MAX_PART_HEADER_BYTES + READ_SLACK + 8 * 1024, "{what}: held {most}");
        }
    }
}
