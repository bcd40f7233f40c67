//! "Download all" as a ZIP file, streamed: each output is read from the store in turn and
//! written as a stored (uncompressed) entry, so the web app holds one output in memory at a
//! time. The outputs are JPEG/PNG/WebP, already compressed: deflating them again would cost
//! CPU for a few bytes.
//!
//! The format is the classic one (no ZIP64: at most 10 outputs per job, each far below 4 GiB),
//! UTF-8 names, sizes and CRC-32 in the local headers (each entry is read whole before it is
//! written, so no data descriptors are needed).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Datelike, Timelike, Utc};
use darkroom_core::store::{ObjectStore, StoreError};
use futures_util::Stream;

/// One file of the archive: its name in the archive and its key in the store.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub key: String,
}

const VERSION: u16 = 20;
const UTF8_NAMES: u16 = 0x0800;

fn dos_time(t: DateTime<Utc>) -> (u16, u16) {
    let time = ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | (t.second() as u16 / 2);
    let year = (t.year().clamp(1980, 2107) - 1980) as u16;
    let date = (year << 9) | ((t.month() as u16) << 5) | t.day() as u16;
    (time, date)
}

struct Written {
    name: String,
    crc: u32,
    size: u32,
    offset: u32,
}

struct State {
    store: Arc<dyn ObjectStore>,
    entries: std::vec::IntoIter<Entry>,
    written: Vec<Written>,
    offset: u64,
    time: (u16, u16),
    finished: bool,
}

fn local_header(buf: &mut BytesMut, w: &Written, time: (u16, u16)) {
    buf.put_u32_le(0x0403_4b50);
    buf.put_u16_le(VERSION);
    buf.put_u16_le(UTF8_NAMES);
    buf.put_u16_le(0); // stored
    buf.put_u16_le(time.0);
    buf.put_u16_le(time.1);
    buf.put_u32_le(w.crc);
    buf.put_u32_le(w.size);
    buf.put_u32_le(w.size);
    buf.put_u16_le(w.name.len() as u16);
    buf.put_u16_le(0);
    buf.put_slice(w.name.as_bytes());
}

fn central_directory(written: &[Written], time: (u16, u16), start: u64) -> Bytes {
    let mut buf = BytesMut::new();
    for w in written {
        buf.put_u32_le(0x0201_4b50);
        buf.put_u16_le(VERSION);
        buf.put_u16_le(VERSION);
        buf.put_u16_le(UTF8_NAMES);
        buf.put_u16_le(0);
        buf.put_u16_le(time.0);
        buf.put_u16_le(time.1);
        buf.put_u32_le(w.crc);
        buf.put_u32_le(w.size);
        buf.put_u32_le(w.size);
        buf.put_u16_le(w.name.len() as u16);
        buf.put_u16_le(0); // extra
        buf.put_u16_le(0); // comment
        buf.put_u16_le(0); // disk
        buf.put_u16_le(0); // internal attributes
        buf.put_u32_le(0); // external attributes
        buf.put_u32_le(w.offset);
        buf.put_slice(w.name.as_bytes());
    }
    let size = buf.len() as u32;
    buf.put_u32_le(0x0605_4b50);
    buf.put_u16_le(0);
    buf.put_u16_le(0);
    buf.put_u16_le(written.len() as u16);
    buf.put_u16_le(written.len() as u16);
    buf.put_u32_le(size);
    buf.put_u32_le(start as u32);
    buf.put_u16_le(0);
    buf.freeze()
}

/// The archive of `entries` as a stream of chunks (one per entry, then the directory). A
/// store error mid-way ends the stream with that error (the client sees a broken download).
pub fn stream(
    store: Arc<dyn ObjectStore>,
    entries: Vec<Entry>,
    modified: DateTime<Utc>,
) -> impl Stream<Item = Result<Bytes, StoreError>> {
    let state = State {
        store,
        entries: entries.into_iter(),
        written: Vec::new(),
        offset: 0,
        time: dos_time(modified),
        finished: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.finished {
            return None;
        }
        match s.entries.next() {
            Some(entry) => {
                let data = match s.store.get(&entry.key).await {
                    Ok(d) => d,
                    Err(e) => {
                        s.finished = true;
                        return Some((Err(e), s));
                    }
                };
                let w = Written {
                    name: entry.name,
                    crc: crc32fast::hash(&data),
                    size: data.len() as u32,
                    offset: s.offset as u32,
                };
                let mut buf = BytesMut::with_capacity(30 + w.name.len() + data.len());
                local_header(&mut buf, &w, s.time);
                buf.put_slice(&data);
                s.offset += buf.len() as u64;
                s.written.push(w);
                Some((Ok(buf.freeze()), s))
            }
            None => {
                s.finished = true;
                let dir = central_directory(&s.written, s.time, s.offset);
                Some((Ok(dir), s))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn stored_zip_has_the_files() {
        let dir = std::env::temp_dir().join(format!("darkroom-zip-test-{}", std::process::id()));
        let store: Arc<dyn ObjectStore> = Arc::new(darkroom_core::store::fs::FsStore::open(&dir).unwrap());
        store.put("a/one.jpg", Bytes::from_static(b"first file"), "image/jpeg").await.unwrap();
        store.put("a/two.png", Bytes::from_static(b"second"), "image/png").await.unwrap();
        let entries = vec![
            Entry { name: "one.jpg".into(), key: "a/one.jpg".into() },
            Entry { name: "two.png".into(), key: "a/two.png".into() },
        ];
        let mut all = Vec::new();
        let mut s = Box::pin(stream(store, entries, Utc::now()));
        while let Some(chunk) = s.next().await {
            all.extend_from_slice(&chunk.unwrap());
        }
        let _ = std::fs::remove_dir_all(&dir);
        // End of central directory: two entries; the first local header names one.jpg.
        let eocd = all.len() - 22;
        assert_eq!(&all[eocd..eocd + 4], &[0x50, 0x4b, 0x05, 0x06]);
        assert_eq!(u16::from_le_bytes([all[eocd + 10], all[eocd + 11]]), 2);
        assert_eq!(&all[30..37], b"one.jpg");
        assert_eq!(&all[37..47], b"first file");
        assert_eq!(u32::from_le_bytes(all[14..18].try_into().unwrap()), crc32fast::hash(b"first file"));
    }
}
