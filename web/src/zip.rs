//! "Download all" as a ZIP file, streamed: each output is streamed from the store in turn
//! ([`ObjectStore::get_stream`]) and written as a stored (uncompressed) entry while its CRC-32
//! is computed, so the web app holds one chunk in memory at a time, whatever the sizes. The
//! outputs are JPEG/PNG/WebP, already compressed: deflating them again would cost CPU for a few
//! bytes.
//!
//! Layout (APPNOTE 6.3.10): each entry is a local header with general-purpose bit 3 set (CRC
//! and sizes are not known before the data has gone by, so they are zero there), the data, then
//! a data descriptor with the real CRC and sizes. Names are UTF-8 with bit 11 (the language
//! encoding flag) set, so `façade 東京-web.jpg` unpacks as such. ZIP64 records are written
//! exactly where a classic field would overflow: an entry of 4 GiB or more gets a ZIP64 extra
//! field in its local header (and so 8-byte sizes in its descriptor) and in its central
//! directory entry; an entry starting past 4 GiB gets its offset there; an archive whose
//! directory starts past 4 GiB (or has 65,535 entries or more) ends with a ZIP64 end of central
//! directory record and locator. Archives without any of that are classic ZIP files that every
//! unzip reads.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Datelike, Timelike, Utc};
use darkroom_core::store::{ByteStream, ObjectStore, Served, StoreError};
use futures_util::{Stream, StreamExt};

/// One file of the archive: its name in the archive and its key in the store.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub key: String,
}

/// Version needed to extract: 2.0 (stored, data descriptors), 4.5 (ZIP64).
const VERSION: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// General purpose flags: bit 3 (sizes and CRC in the data descriptor), bit 11 (UTF-8 names).
const FLAGS: u16 = 0x0008 | 0x0800;
/// A classic 32-bit field that does not hold the value: look in the ZIP64 extra field.
const MAX32: u64 = 0xFFFF_FFFF;
const MAX16: u64 = 0xFFFF;

fn dos_time(t: DateTime<Utc>) -> (u16, u16) {
    let time = ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | (t.second() as u16 / 2);
    let year = (t.year().clamp(1980, 2107) - 1980) as u16;
    let date = (year << 9) | ((t.month() as u16) << 5) | t.day() as u16;
    (time, date)
}

/// An entry written, as the central directory needs it.
struct Written {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// An entry whose data is going by.
struct Current {
    name: String,
    offset: u64,
    expected: u64,
    seen: u64,
    crc: crc32fast::Hasher,
    body: ByteStream,
}

enum Phase {
    Next,
    Data(Box<Current>),
    Done,
}

struct State {
    store: Arc<dyn ObjectStore>,
    entries: std::vec::IntoIter<Entry>,
    written: Vec<Written>,
    offset: u64,
    time: (u16, u16),
    phase: Phase,
}

/// Local header of an entry of `size` bytes (known from the store before its data goes by).
fn local_header(name: &str, size: u64, time: (u16, u16)) -> Bytes {
    let zip64 = size >= MAX32;
    let mut buf = BytesMut::with_capacity(30 + name.len() + 20);
    buf.put_u32_le(0x0403_4b50);
    buf.put_u16_le(if zip64 { VERSION_ZIP64 } else { VERSION });
    buf.put_u16_le(FLAGS);
    buf.put_u16_le(0); // stored
    buf.put_u16_le(time.0);
    buf.put_u16_le(time.1);
    buf.put_u32_le(0); // CRC: in the data descriptor
                       // Sizes: in the data descriptor; 0xFFFFFFFF and a ZIP64 extra field say it has 8-byte ones.
    let marker = if zip64 { MAX32 as u32 } else { 0 };
    buf.put_u32_le(marker);
    buf.put_u32_le(marker);
    buf.put_u16_le(name.len() as u16);
    buf.put_u16_le(if zip64 { 20 } else { 0 });
    buf.put_slice(name.as_bytes());
    if zip64 {
        buf.put_u16_le(0x0001);
        buf.put_u16_le(16);
        buf.put_u64_le(0);
        buf.put_u64_le(0);
    }
    buf.freeze()
}

fn data_descriptor(w: &Written) -> Bytes {
    let mut buf = BytesMut::with_capacity(24);
    buf.put_u32_le(0x0807_4b50);
    buf.put_u32_le(w.crc);
    if w.size >= MAX32 {
        buf.put_u64_le(w.size);
        buf.put_u64_le(w.size);
    } else {
        buf.put_u32_le(w.size as u32);
        buf.put_u32_le(w.size as u32);
    }
    buf.freeze()
}

fn central_directory(written: &[Written], time: (u16, u16), start: u64) -> Bytes {
    let mut buf = BytesMut::new();
    for w in written {
        // The ZIP64 extra field holds, in this order, the values the classic fields cannot.
        let mut extra = BytesMut::new();
        if w.size >= MAX32 {
            extra.put_u64_le(w.size); // uncompressed
            extra.put_u64_le(w.size); // compressed
        }
        if w.offset >= MAX32 {
            extra.put_u64_le(w.offset);
        }
        let zip64 = !extra.is_empty();
        buf.put_u32_le(0x0201_4b50);
        buf.put_u16_le(VERSION_ZIP64); // made by: 4.5
        buf.put_u16_le(if zip64 { VERSION_ZIP64 } else { VERSION });
        buf.put_u16_le(FLAGS);
        buf.put_u16_le(0);
        buf.put_u16_le(time.0);
        buf.put_u16_le(time.1);
        buf.put_u32_le(w.crc);
        buf.put_u32_le(w.size.min(MAX32) as u32);
        buf.put_u32_le(w.size.min(MAX32) as u32);
        buf.put_u16_le(w.name.len() as u16);
        buf.put_u16_le(if zip64 { 4 + extra.len() as u16 } else { 0 });
        buf.put_u16_le(0); // comment
        buf.put_u16_le(0); // disk
        buf.put_u16_le(0); // internal attributes
        buf.put_u32_le(0); // external attributes
        buf.put_u32_le(w.offset.min(MAX32) as u32);
        buf.put_slice(w.name.as_bytes());
        if zip64 {
            buf.put_u16_le(0x0001);
            buf.put_u16_le(extra.len() as u16);
            buf.put_slice(&extra);
        }
    }
    let size = buf.len() as u64;
    let count = written.len() as u64;
    if count >= MAX16 || size >= MAX32 || start >= MAX32 {
        let record = start + size;
        buf.put_u32_le(0x0606_4b50); // ZIP64 end of central directory record
        buf.put_u64_le(44); // its size after this field
        buf.put_u16_le(VERSION_ZIP64);
        buf.put_u16_le(VERSION_ZIP64);
        buf.put_u32_le(0); // this disk
        buf.put_u32_le(0); // disk with the directory
        buf.put_u64_le(count);
        buf.put_u64_le(count);
        buf.put_u64_le(size);
        buf.put_u64_le(start);
        buf.put_u32_le(0x0706_4b50); // its locator
        buf.put_u32_le(0);
        buf.put_u64_le(record);
        buf.put_u32_le(1); // disks
    }
    buf.put_u32_le(0x0605_4b50);
    buf.put_u16_le(0);
    buf.put_u16_le(0);
    buf.put_u16_le(count.min(MAX16) as u16);
    buf.put_u16_le(count.min(MAX16) as u16);
    buf.put_u32_le(size.min(MAX32) as u32);
    buf.put_u32_le(start.min(MAX32) as u32);
    buf.put_u16_le(0);
    buf.freeze()
}

/// One step of the archive: the next chunk, or `None` at its end.
async fn step(s: &mut State) -> Option<Result<Bytes, StoreError>> {
    loop {
        match std::mem::replace(&mut s.phase, Phase::Done) {
            Phase::Done => return None,
            Phase::Next => match s.entries.next() {
                Some(entry) => {
                    let object = match s.store.get_stream(&entry.key, None).await {
                        Ok(o) if o.served == Served::Whole => o,
                        Ok(o) => {
                            let e = StoreError::Rejected(format!(
                                "`{}`: whole object asked, got {:?}",
                                entry.key, o.served
                            ));
                            return Some(Err(e));
                        }
                        Err(e) => return Some(Err(e)),
                    };
                    let header = local_header(&entry.name, object.meta.size, s.time);
                    let current = Current {
                        name: entry.name,
                        offset: s.offset,
                        expected: object.meta.size,
                        seen: 0,
                        crc: crc32fast::Hasher::new(),
                        body: object.body,
                    };
                    s.offset += header.len() as u64;
                    s.phase = Phase::Data(Box::new(current));
                    return Some(Ok(header));
                }
                None => {
                    let dir = central_directory(&s.written, s.time, s.offset);
                    s.offset += dir.len() as u64;
                    return Some(Ok(dir));
                }
            },
            Phase::Data(mut c) => match c.body.next().await {
                Some(Ok(chunk)) => {
                    c.seen += chunk.len() as u64;
                    if c.seen > c.expected {
                        let e = format!("`{}` is longer than the {} bytes the store announced", c.name, c.expected);
                        return Some(Err(StoreError::Unavailable(e)));
                    }
                    c.crc.update(&chunk);
                    s.offset += chunk.len() as u64;
                    s.phase = Phase::Data(c);
                    if chunk.is_empty() {
                        continue;
                    }
                    return Some(Ok(chunk));
                }
                Some(Err(e)) => return Some(Err(e)),
                None if c.seen != c.expected => {
                    let e = format!("`{}` ended at {} of the {} bytes the store announced", c.name, c.seen, c.expected);
                    return Some(Err(StoreError::Unavailable(e)));
                }
                None => {
                    let w = Written { name: c.name, crc: c.crc.finalize(), size: c.seen, offset: c.offset };
                    let descriptor = data_descriptor(&w);
                    s.offset += descriptor.len() as u64;
                    s.written.push(w);
                    s.phase = Phase::Next;
                    return Some(Ok(descriptor));
                }
            },
        }
    }
}

/// The archive of `entries` as a stream of chunks (headers, the store's own chunks of each
/// entry, descriptors, then the directory). A store error mid-way ends the stream with that
/// error (the client sees a broken download, never a corrupt archive that looks whole).
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
        phase: Phase::Next,
    };
    futures_util::stream::unfold(state, |mut s| async move { step(&mut s).await.map(|item| (item, s)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkroom_core::store::{ByteRange, ObjectInfo, ObjectMeta, ObjectStream};
    use std::io::{Read, Seek, SeekFrom, Write};

    async fn collect(store: Arc<dyn ObjectStore>, entries: Vec<Entry>) -> Vec<u8> {
        let mut all = Vec::new();
        let mut s = Box::pin(stream(store, entries, Utc::now()));
        while let Some(chunk) = s.next().await {
            all.extend_from_slice(&chunk.unwrap());
        }
        all
    }

    #[tokio::test]
    async fn stored_zip_opens_with_a_zip_library_and_keeps_utf8_names() {
        let dir = std::env::temp_dir().join(format!("darkroom-zip-test-{}", uuid::Uuid::new_v4().simple()));
        let store: Arc<dyn ObjectStore> = Arc::new(darkroom_core::store::fs::FsStore::open(&dir).unwrap());
        let big: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
        store.put("a/one.jpg", Bytes::from_static(b"first file"), "image/jpeg").await.unwrap();
        store.put("a/two.png", Bytes::from(big.clone()), "image/png").await.unwrap();
        let entries = vec![
            Entry { name: "façade 東京-web.jpg".into(), key: "a/one.jpg".into() },
            Entry { name: "two.png".into(), key: "a/two.png".into() },
        ];
        let all = collect(store, entries).await;
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(u16::from_le_bytes([all[6], all[7]]) & 0x0800, 0x0800, "bit 11: UTF-8 names");
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(all)).expect("a valid archive");
        assert_eq!(zip.len(), 2);
        let mut read = |i: usize| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).expect("reads, CRC checked");
            (f.name().to_string(), f.size(), data)
        };
        assert_eq!(read(0), ("façade 東京-web.jpg".to_string(), 10, b"first file".to_vec()));
        let (name, size, data) = read(1);
        assert_eq!((name.as_str(), size), ("two.png", 700_000));
        assert!(data == big);
    }

    /// A store of zeros: `zeros/{n}` is `n` zero bytes, streamed in 8 MiB chunks of one shared buffer.
    struct Zeros(Bytes);

    const MIB: u64 = 1024 * 1024;

    #[async_trait::async_trait]
    impl ObjectStore for Zeros {
        async fn put(&self, _: &str, _: Bytes, _: &str) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn put_file(&self, _: &str, _: &std::path::Path, _: &str) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
            Ok(Bytes::copy_from_slice(key.as_bytes()))
        }
        async fn head(&self, _: &str) -> Result<Option<ObjectInfo>, StoreError> {
            unreachable!()
        }
        async fn list(&self, _: &str) -> Result<Vec<String>, StoreError> {
            unreachable!()
        }
        async fn delete(&self, _: &str) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn get_stream(&self, key: &str, range: Option<ByteRange>) -> Result<ObjectStream, StoreError> {
            assert!(range.is_none());
            let Some(n) = key.strip_prefix("zeros/") else {
                // Anything else: the key's own bytes (small entries).
                let data = self.get(key).await?;
                let meta = ObjectMeta::of_bytes(&data);
                return Ok(ObjectStream {
                    meta,
                    served: Served::Whole,
                    body: Box::pin(futures_util::stream::iter([Ok(data)])),
                });
            };
            let size: u64 = n.parse().unwrap();
            let chunk = self.0.clone();
            let body = futures_util::stream::unfold(size, move |left| {
                let chunk = chunk.clone();
                async move {
                    (left > 0).then(|| {
                        let n = left.min(chunk.len() as u64);
                        (Ok(chunk.slice(..n as usize)), left - n)
                    })
                }
            });
            let meta = ObjectMeta { size, etag: "\"z\"".into(), content_type: None, last_modified: None };
            Ok(ObjectStream { meta, served: Served::Whole, body: Box::pin(body) })
        }
    }

    /// Past 4 GiB: an entry of 4 GiB + 1 MiB (ZIP64 sizes), an entry after it (ZIP64 offset)
    /// and a directory past 4 GiB (ZIP64 end records), written to a sparse file (zero chunks
    /// are skipped over, so it costs no disk) and opened with the `zip` crate.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn zip_past_4_gib_opens_with_a_zip_library() {
        let started = std::time::Instant::now();
        let zero = Bytes::from(vec![0u8; 8 * MIB as usize]);
        let store: Arc<dyn ObjectStore> = Arc::new(Zeros(zero.clone()));
        let big = 4 * 1024 * MIB + MIB;
        let entries = vec![
            Entry { name: "first.txt".into(), key: "small one".into() },
            Entry { name: "big-東京.bin".into(), key: format!("zeros/{big}") },
            Entry { name: "last.txt".into(), key: "after the big one".into() },
        ];
        let path = std::env::temp_dir().join(format!("darkroom-zip64-{}.zip", uuid::Uuid::new_v4().simple()));
        let mut file = std::fs::File::create(&path).unwrap();
        let mut s = Box::pin(stream(store, entries, Utc::now()));
        let mut total = 0u64;
        while let Some(chunk) = s.next().await {
            let chunk = chunk.unwrap();
            total += chunk.len() as u64;
            // memcmp: fast even unoptimised.
            if chunk.len() > 4096 && chunk[..] == zero[..chunk.len()] {
                file.seek(SeekFrom::Current(chunk.len() as i64)).unwrap();
            } else {
                file.write_all(&chunk).unwrap();
            }
        }
        file.set_len(total).unwrap();
        drop(file);
        let written = started.elapsed();
        assert!(total > big, "{total}");

        let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).expect("a valid ZIP64 archive");
        let names: Vec<_> = zip.file_names().map(str::to_string).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, ["big-東京.bin", "first.txt", "last.txt"]);
        {
            let f = zip.by_name("big-東京.bin").unwrap();
            assert_eq!(f.size(), big, "a size past 4 GiB survives");
            let mut crc = crc32fast::Hasher::new();
            for _ in 0..big / zero.len() as u64 {
                crc.update(&zero);
            }
            crc.update(&zero[..(big % zero.len() as u64) as usize]);
            assert_eq!(f.crc32(), crc.finalize());
        }
        for (name, text) in [("first.txt", "small one"), ("last.txt", "after the big one")] {
            let mut f = zip.by_name(name).unwrap();
            let mut got = String::new();
            f.read_to_string(&mut got).expect("reads, CRC checked");
            assert_eq!(got, text, "{name}");
        }
        let last = zip.by_name("last.txt").unwrap();
        assert!(last.header_start() > MAX32, "the last entry starts past 4 GiB: {}", last.header_start());
        drop(last);
        let on_disk = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&path).unwrap().blocks() * 512
        };
        std::fs::remove_file(&path).unwrap();
        eprintln!(
            "zip64: {total} bytes streamed and written sparsely in {written:?} ({} KiB on disk), checked in {:?} in all",
            on_disk / 1024,
            started.elapsed()
        );
        assert!(on_disk < 64 * MIB, "the test file stays sparse: {on_disk} bytes on disk");
    }
}
