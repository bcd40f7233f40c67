//! Spooling: an uploaded file goes to a temporary file on disk as it arrives, never whole
//! into memory, and from there to the store ([`ObjectStore::put_file`]).
//!
//! A [`SpoolWriter`] keeps at most `limit` bytes: past `DARKROOM_MAX_UPLOAD_BYTES` it drops
//! what it wrote and only counts the rest, so the file-too-large answer can name the real size.
//! The temporary file is removed when its [`TempFile`] is dropped: after storing, on every
//! error and when a client disconnects (actix drops the request's future). [`probe`] reads the
//! file's header through a read-only memory map, off the async threads, so the probe touches
//! only the pages it needs.
//!
//! [`ObjectStore::put_file`]: darkroom_core::store::ObjectStore::put_file

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use std::io::Write;

use bytes::Bytes;
use darkroom_protocol::{Limits, Probe, Refusal};

/// Bytes of an upload held in memory on their way to disk (written in one go from there).
const WRITE_BUFFER: usize = 256 * 1024;
/// Name prefix of spooled files (what [`sweep`] removes).
const PREFIX: &str = ".upload-";

/// A temporary file, removed when dropped.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove a spooled upload");
            }
        }
    }
}

/// A file part, received.
#[derive(Debug)]
pub struct Spooled {
    /// The bytes on disk; `None` when the part was over the limit (nothing is kept then).
    pub file: Option<TempFile>,
    /// Bytes the part had, also past the limit.
    pub len: u64,
}

/// Writes one file part to a new temporary file in `dir`, up to `limit` bytes.
///
/// Chunks are kept as they come (reference-counted, not copied) until [`WRITE_BUFFER`] bytes
/// are pending, then written by one blocking task straight from them: the kernel's copy into
/// the page cache is the only one. (A `BufWriter` over `tokio::fs::File` copied every byte twice
/// more, into its buffer and into tokio's; memmove was 4 % of the web app's CPU under the mixed
/// upload load of `load-bench`.)
pub struct SpoolWriter {
    /// The file being written; `None` past the limit (or while a write is under way).
    file: Option<std::fs::File>,
    /// Removes the file when dropped: on every error and when the client hangs up.
    temp: Option<TempFile>,
    pending: Vec<Bytes>,
    pending_len: usize,
    len: u64,
    limit: u64,
}

impl SpoolWriter {
    pub async fn create(dir: &Path, limit: u64) -> io::Result<SpoolWriter> {
        let temp = TempFile { path: dir.join(format!("{PREFIX}{}", uuid::Uuid::new_v4().simple())) };
        let path = temp.path.clone();
        let file = tokio::task::spawn_blocking(move || {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            options.open(&path)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(SpoolWriter { file: Some(file), temp: Some(temp), pending: vec![], pending_len: 0, len: 0, limit })
    }

    /// Append a chunk; past the limit the file is dropped (and removed) and the rest only
    /// counted.
    pub async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        self.len += chunk.len() as u64;
        if self.len > self.limit {
            self.file = None;
            self.temp = None;
            self.pending.clear();
            return Ok(());
        }
        if self.file.is_some() {
            self.pending_len += chunk.len();
            self.pending.push(chunk);
            if self.pending_len >= WRITE_BUFFER {
                self.write_pending().await?;
            }
        }
        Ok(())
    }

    /// Write the pending chunks on a blocking thread.
    async fn write_pending(&mut self) -> io::Result<()> {
        let Some(mut file) = self.file.take() else { return Ok(()) };
        let chunks = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        let file = tokio::task::spawn_blocking(move || {
            write_chunks(&mut file, &chunks)?;
            Ok::<_, io::Error>(file)
        })
        .await
        .map_err(io::Error::other)??;
        self.file = Some(file);
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Write what is pending to disk (the OS) and close the file.
    pub async fn finish(mut self) -> io::Result<Spooled> {
        if self.file.is_none() {
            return Ok(Spooled { file: None, len: self.len });
        }
        self.write_pending().await?;
        drop(self.file.take());
        Ok(Spooled { file: self.temp.take(), len: self.len })
    }
}

/// Write every chunk, in order, with as few system calls as the kernel allows (`writev` of up
/// to 1024 chunks at a time: multipart chunks are often a few KiB each).
fn write_chunks(file: &mut std::fs::File, chunks: &[Bytes]) -> io::Result<()> {
    const IOV_MAX: usize = 1024;
    for group in chunks.chunks(IOV_MAX) {
        let mut slices: Vec<io::IoSlice> = group.iter().map(|c| io::IoSlice::new(c)).collect();
        let mut bufs = &mut slices[..];
        while !bufs.is_empty() {
            match file.write_vectored(bufs) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => io::IoSlice::advance_slices(&mut bufs, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Bytes of a file the probe is shown first: every format's header is there in practice (a
/// JPEG's EXIF and ICC segments come before its frame header).
const PROBE_PREFIX: usize = 1024 * 1024;

/// Probe a spooled file's header against `limits` (blocking: call it through
/// `spawn_blocking`). `Err` only for a file that cannot be read back.
///
/// The probe sees the file's first MiB, and all of it only when that was not enough (a TIFF
/// whose directory is at the end, a header that is damaged): the image crate's JPEG decoder
/// copies all it is given before reading a header, and a probe of the whole mapping would pull
/// every page of it into memory.
pub fn probe(path: &Path, limits: &Limits) -> io::Result<Result<Probe, Refusal>> {
    let map = Mapped::open(path)?;
    let bytes = map.bytes();
    if bytes.len() > PROBE_PREFIX {
        match darkroom_protocol::probe(&bytes[..PROBE_PREFIX], limits) {
            // What the header says does not change with what follows it.
            Ok(probe) => return Ok(Ok(probe)),
            Err(e @ (Refusal::NotAnImage | Refusal::TooManyPixels { .. })) => return Ok(Err(e)),
            Err(_) => {}
        }
    }
    Ok(darkroom_protocol::probe(bytes, limits))
}

/// Remove spooled files untouched for `age` or more from `dir` (what a killed run left).
pub fn sweep(dir: &Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|d| d >= age);
        if old && entry.file_name().to_string_lossy().starts_with(PREFIX) && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %dir.display(), "removed uploads a previous run left behind");
    }
}

/// A whole file mapped read-only: the kernel reads in only the pages that are touched.
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value; nothing else unmaps it.
unsafe impl Send for Mapped {}

impl Mapped {
    fn open(path: &Path) -> io::Result<Mapped> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).map_err(|_| io::Error::other("file too large to map"))?;
        if len == 0 {
            return Ok(Mapped { ptr: std::ptr::null_mut(), len: 0 });
        }
        // SAFETY: a fresh read-only private mapping of a file we opened; the mapping outlives the
        // descriptor by design (POSIX). Spooled files are ours alone (mode 0600, a random name,
        // written completely before this) and nobody truncates them while mapped, so reading
        // the mapping cannot fault.
        let ptr =
            unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapped { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` maps `len` readable bytes until `self` is dropped.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmapping exactly the mapping `open` made, once.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("darkroom-spool-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    /// A 3×2 RGB PNG.
    const PNG: &[u8] = b"\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x03\x00\x00\x00\x02\x08\x02\x00\x00\x00\x12\x16\xf1\x4d\x00\x00\x00\x10\x49\x44\x41\x54\x78\x9c\x63\xf8\xcf\xc0\x00\x41\x0c\x70\x16\x00\x41\xd2\x05\xfb\x87\xf0\xb9\x48\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";

    #[tokio::test]
    async fn a_part_within_the_limit_is_on_disk_until_dropped() {
        let dir = dir();
        let png = PNG.to_vec();
        let mut w = SpoolWriter::create(&dir, png.len() as u64).await.unwrap();
        for chunk in png.chunks(10) {
            w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        let spooled = w.finish().await.unwrap();
        assert_eq!(spooled.len, png.len() as u64);
        let file = spooled.file.expect("kept");
        assert_eq!(std::fs::read(file.path()).unwrap(), png);
        let probe = probe(file.path(), &Limits::default()).unwrap().unwrap();
        assert_eq!((probe.width, probe.height), (3, 2));
        drop(file);
        assert_eq!(files(&dir), 0, "removed when dropped");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Spool `len` patterned bytes in chunks of `chunk` and read the file back.
    async fn spooled_whole_and_in_order(len: usize, chunk: usize) {
        let dir = dir();
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let mut w = SpoolWriter::create(&dir, data.len() as u64).await.unwrap();
        for c in data.chunks(chunk) {
            w.write(Bytes::copy_from_slice(c)).await.unwrap();
        }
        let file = w.finish().await.unwrap().file.expect("kept");
        assert_eq!(std::fs::read(file.path()).unwrap(), data, "{len} bytes in chunks of {chunk}");
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_part_of_several_write_buffers_is_written_whole_and_in_order() {
        spooled_whole_and_in_order(2 * WRITE_BUFFER + 12_345, 7 * 1024 + 3).await;
    }

    #[tokio::test]
    async fn more_tiny_chunks_than_one_writev_takes_are_written_in_order() {
        // 100-byte chunks: one flush of the buffer holds over 2,600 of them (writev takes 1024).
        spooled_whole_and_in_order(WRITE_BUFFER + 5000, 100).await;
    }

    #[tokio::test]
    async fn past_the_limit_nothing_is_kept_and_the_rest_is_counted() {
        let dir = dir();
        let mut w = SpoolWriter::create(&dir, 10_000).await.unwrap();
        for _ in 0..30 {
            w.write(Bytes::from(vec![7u8; 1000])).await.unwrap();
        }
        assert_eq!(files(&dir), 0, "the file goes as soon as the part is over the limit");
        let spooled = w.finish().await.unwrap();
        assert!(spooled.file.is_none());
        assert_eq!(spooled.len, 30_000, "the real size, for the error message");
        // An unfinished writer (a client that went away) leaves nothing either.
        let mut w = SpoolWriter::create(&dir, 10_000).await.unwrap();
        w.write(Bytes::from_static(b"half")).await.unwrap();
        drop(w);
        assert_eq!(files(&dir), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_large_file_is_probed_from_its_first_mib_and_a_header_past_it_from_all_of_it() {
        let dir = dir();
        let path = dir.join("big");
        // An image followed by 5 MiB of anything: its header is in the first MiB.
        std::fs::write(&path, [PNG, &vec![0u8; 5 * 1024 * 1024]].concat()).unwrap();
        let probe = probe(&path, &Limits::default()).unwrap().unwrap();
        assert_eq!((probe.width, probe.height), (3, 2));
        // Not an image: said from the prefix alone.
        std::fs::write(&path, vec![b'x'; 2 * 1024 * 1024]).unwrap();
        assert!(matches!(super::probe(&path, &Limits::default()).unwrap(), Err(Refusal::NotAnImage)));
        // A little-endian TIFF whose directory (3×2, 8-bit grey) sits after 2 MiB of strip data.
        let pad = 2 * 1024 * 1024u32;
        let mut tiff = b"II*\0".to_vec();
        tiff.extend((8 + pad).to_le_bytes());
        tiff.extend(vec![0u8; pad as usize]);
        let entries: [(u16, u16, u32, u32); 8] = [
            (256, 3, 1, 3), // width
            (257, 3, 1, 2), // height
            (258, 3, 1, 8), // bits per sample
            (259, 3, 1, 1), // no compression
            (262, 3, 1, 1), // black is zero
            (273, 4, 1, 8), // strip offset
            (278, 3, 1, 2), // rows per strip
            (279, 4, 1, 6), // strip bytes
        ];
        tiff.extend((entries.len() as u16).to_le_bytes());
        for (tag, kind, count, value) in entries {
            tiff.extend(tag.to_le_bytes());
            tiff.extend(kind.to_le_bytes());
            tiff.extend(count.to_le_bytes());
            tiff.extend(value.to_le_bytes());
        }
        tiff.extend(0u32.to_le_bytes());
        std::fs::write(&path, &tiff).unwrap();
        let probe = super::probe(&path, &Limits::default()).unwrap().unwrap();
        assert_eq!((probe.width, probe.height), (3, 2), "the directory past the first MiB is found");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sweep_removes_only_old_spooled_files() {
        let dir = dir();
        std::fs::write(dir.join(format!("{PREFIX}old")), b"x").unwrap();
        std::fs::write(dir.join("other"), b"x").unwrap();
        sweep(&dir, Duration::from_secs(3600));
        assert_eq!(files(&dir), 2, "young files stay");
        sweep(&dir, Duration::ZERO);
        assert!(!dir.join(format!("{PREFIX}old")).exists());
        assert!(dir.join("other").exists(), "only spooled files are swept");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_file_probes_as_empty() {
        let dir = dir();
        let path = dir.join("empty");
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(probe(&path, &Limits::default()).unwrap(), Err(Refusal::Empty)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
