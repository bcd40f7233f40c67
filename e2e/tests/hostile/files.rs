//! Hostile files straight onto the queue, past the web app's upload checks, as an outside
//! sender could put them: every X* file of the shared corpus and files whose headers lie each
//! get their typed error from the processor, which stays up and small; messages that are not
//! ours (junk, the wrong type, a quarter megabyte of garbage) are left for the dead-letter
//! queue without taking a worker down.

use std::io::Write;
use std::time::Duration;

use darkroom_core::config::Backend;
use darkroom_e2e::{corpus, on_both_backends, procfs, Kind, TestApp};
use darkroom_protocol::keys;
use darkroom_protocol::lifecycle::JobState;

use crate::final_statuses;

const THUMB: &str = r#"[{"name":"thumbnail","ops":[{"op":"resize","width":400,"height":400}],"format":"jpeg"}]"#;

async fn send(backend: &Backend, id: &str, bytes: Vec<u8>) {
    backend.store.put(&keys::original(id), bytes.into(), "application/octet-stream").await.unwrap();
    let message =
        format!(r#"{{"version":1,"type":"job","job_id":"{id}","original_key":"originals/{id}","outputs":{THUMB}}}"#);
    backend.jobs.send(&message).await.unwrap();
}

/// A PNG chunk: length, type, data, CRC.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    c.extend_from_slice(&crc.finalize().to_be_bytes());
    c
}

/// A PNG whose header says 64×64 and whose pixel data inflates to 512 MiB (a zip bomb inside a
/// small image): 500 KiB on disk. The header's size wins: the decoder inflates what 64×64
/// needs and no more.
fn png_inflating_past_its_header() -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&64u32.to_be_bytes());
    ihdr.extend_from_slice(&64u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        z.write_all(&zeros).unwrap();
    }
    let idat = z.finish().unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &idat));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// A real JPEG whose frame header (SOF) claims 60000×60000.
fn jpeg_claiming_60000_square() -> Vec<u8> {
    let mut jpeg = std::fs::read(corpus("S01_rocket_640x427.jpg")).unwrap();
    let sof =
        (0..jpeg.len() - 9).find(|&i| jpeg[i] == 0xFF && matches!(jpeg[i + 1], 0xC0..=0xC2)).expect("a SOF marker");
    // FF Cx, length (2), precision (1), height (2), width (2)
    jpeg[sof + 5..sof + 7].copy_from_slice(&60000u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&60000u16.to_be_bytes());
    jpeg
}

async fn hostile_files_past_the_web_app_get_typed_errors(kind: Kind) {
    let app = TestApp::spawn_with_env(kind, false, 1, &[("DARKROOM_CONCURRENCY", "2")]).await;
    let backend = app.site.connect(30, 3).await;
    // Each case's error code, or "" for a photo that is made at the size its header says.
    let mut cases: Vec<(String, Vec<u8>, &str)> = [
        ("X01_truncated_half.jpg", "corrupt_image"),
        ("X02_text_named.jpg", "not_an_image"),
        ("X03_empty.jpg", "empty_file"),
        ("X04_bomb_20000x20000.png", "too_many_pixels"),
    ]
    .into_iter()
    .map(|(f, code)| (f.to_string(), std::fs::read(corpus(f)).unwrap(), code))
    .collect();
    cases.push(("png-inflating-past-its-header".into(), png_inflating_past_its_header(), ""));
    cases.push(("jpeg-claiming-60000x60000".into(), jpeg_claiming_60000_square(), "too_many_pixels"));
    let ids: Vec<String> = (0..cases.len()).map(|i| format!("hostile-file-{i}")).collect();
    for ((_, bytes, _), id) in cases.iter().zip(&ids) {
        send(&backend, id, bytes.clone()).await;
    }
    // And a good one after them: the processor is still taking jobs.
    send(&backend, "good-after", std::fs::read(corpus("S01_rocket_640x427.jpg")).unwrap()).await;

    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.push("good-after");
    let finals = final_statuses(&backend, &want, Duration::from_secs(120)).await;
    for ((name, _, code), status) in cases.iter().zip(&finals) {
        let s = status;
        if code.is_empty() {
            assert_eq!(s.state, JobState::Done, "{name}: {s:?}");
            assert_eq!((s.outputs[0].width, s.outputs[0].height), (64, 64), "{name}: {s:?}");
            continue;
        }
        assert_eq!(s.state, JobState::Failed, "{name}: {s:?}");
        let e = s.error.as_ref().unwrap();
        assert_eq!(e.code.as_str(), *code, "{name}: {e:?}");
        assert!(e.message.len() > 20, "{name}: the message says what to do: {e:?}");
        assert_eq!(s.attempt, 1, "{name}: a permanent failure is not retried");
    }
    assert_eq!(finals.last().unwrap().state, JobState::Done);
    let mut app = app;
    assert!(app.processors[0].is_running());
    let peak = procfs::peak_rss_kib(app.processors[0].child.id());
    eprintln!("processor peak RSS after the hostile files: {} MiB", peak / 1024);
    assert!(peak < 200 * 1024, "processor peak {peak} KiB");
}

async fn messages_that_are_not_ours_leave_workers_up(kind: Kind) {
    // Deliveries of junk are counted by the queue: with 2 receives it dead-letters them fast.
    let env = [("DARKROOM_VISIBILITY_TIMEOUT", "1"), ("DARKROOM_MAX_RECEIVES", "2")];
    let app = TestApp::spawn_with_env(kind, false, 1, &env).await;
    let backend = app.site.connect(1, 2).await;
    let junk = [
        "not json at all".to_string(),
        r#"{"version":1,"type":"status","job_id":"x"}"#.to_string(),
        r#"{"version":99,"type":"job","job_id":"x","original_key":"originals/x","outputs":[]}"#.to_string(),
        format!(r#"{{"version":1,"type":"job","job_id":"{}"}}"#, "j".repeat(200)),
        "\u{1}\u{2}binary-ish\u{7f}".repeat(20_000), // 240 KB, under SQS's 256 KiB
    ];
    for body in &junk {
        backend.jobs.send(body).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let c = backend.dead_letters.counts().await.unwrap();
        if c.visible + c.in_flight >= junk.len() as u64 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "junk not dead-lettered: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut app = app;
    assert!(app.processors[0].is_running(), "the processor is still up");
    let log = app.processors[0].log_text();
    assert!(log.contains("not a Darkroom job message"), "the processor says why it left them");
    // A real job still goes through.
    send(&backend, "real-1", std::fs::read(corpus("S01_rocket_640x427.jpg")).unwrap()).await;
    let real = final_statuses(&backend, &["real-1"], Duration::from_secs(60)).await.remove(0);
    assert_eq!(real.state, JobState::Done, "{real:?}");
}

on_both_backends!(hostile_files_past_the_web_app_get_typed_errors, messages_that_are_not_ours_leave_workers_up);
