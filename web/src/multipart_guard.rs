//! Multipart bodies with a bound on what the parser may hold, which actix-multipart (0.7.2, the
//! newest release) does not have: it buffers a part's header block until it finds the blank
//! line that ends it, however far that is (searching the whole buffer again for every chunk that
//! arrives), and the same for the preamble before the first boundary, for the line after a part
//! and for the closing boundary's line. A header block of gigabytes without an end would cost
//! that much memory and quadratic time.
//!
//! Rather than second-guess the parser's grammar, [`Parts`] measures it: every byte of the body
//! goes into the parser through a [`Meter`] and every byte of part content comes out through
//! [`Parts::next_chunk`]; the difference is what the parser holds (structure: boundaries and
//! part headers, plus the content it has read but not yet handed out). Once that passes
//! [`MAX_PART_HEADER_BYTES`] per part seen so far plus [`READ_SLACK`], the body fails and the
//! request is answered `400 part_headers_too_large`. The parser's own limit of 32 headers per
//! part still applies inside the bound.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_multipart::{Field, Multipart};
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpRequest};
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};

use crate::error::ApiError;

/// Most bytes of one part's header block (and of the text between parts). A browser's part
/// headers are a `Content-Disposition` with the file name and a `Content-Type`: a few hundred
/// bytes.
pub const MAX_PART_HEADER_BYTES: u64 = 16 * 1024;
/// Content the parser may have read ahead of the handler: what one read of the connection
/// brings (actix pauses the socket at 32 KiB of unread body).
pub const READ_SLACK: u64 = 256 * 1024;

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

/// The request body on its way into the parser, measured.
struct Metered {
    inner: Payload,
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
            if meter.held() > meter.budget() {
                meter.overflow.set(true);
                return Poll::Ready(Some(Err(PayloadError::Overflow)));
            }
        }
        Poll::Ready(item)
    }
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
        let multipart = Multipart::new(req.headers(), Metered { inner: payload, meter: meter.clone() });
        Parts { multipart, meter }
    }

    /// The next part, `None` after the last.
    pub async fn next_part(&mut self) -> Result<Option<Field>, ApiError> {
        let field = self.multipart.try_next().await.map_err(|e| self.error(e))?;
        if field.is_some() {
            self.meter.parts.set(self.meter.parts.get() + 1);
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
        assert!(most <= MAX_PART_HEADER_BYTES + READ_SLACK + 8 * 1024, "held {most}");
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
