//! Queue benchmark: messages per second through send → receive → delete, and long-poll
//! wake-up latency, for the embedded queue and the SQS-compatible server (moto), side by side
//! in one run. `cargo run --release -p darkroom-bench --bin queue-bench` (see bench/README.md).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use darkroom_core::config::Backend;
use darkroom_core::queue::JobQueue;
use darkroom_e2e::{Kind, Site};

#[derive(Parser)]
struct Args {
    /// Messages per run on the embedded queue.
    #[arg(long, default_value_t = 2000)]
    embedded: usize,
    /// Messages per run on moto (it does ~100 round trips per second).
    #[arg(long, default_value_t = 300)]
    moto: usize,
    /// Long-poll wake-ups to measure per backend.
    #[arg(long, default_value_t = 30)]
    wakes: usize,
    /// Internal: send `n` timestamped messages to QUEUE in DATA_DIR from this (other) process.
    #[arg(long, num_args = 3, value_names = ["DATA_DIR", "QUEUE", "N"], hide = true)]
    ring: Option<Vec<String>>,
}

fn epoch_us() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros()
}

async fn one_by_one(q: &dyn JobQueue, n: usize) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        q.send(&format!("m{i}")).await.unwrap();
        let got = q.receive(1, Duration::from_secs(5)).await.unwrap();
        q.delete(&got[0].receipt).await.unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

async fn batched(q: &dyn JobQueue, n: usize) -> f64 {
    let bodies: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    let t = Instant::now();
    let mut done = 0;
    while done < n {
        q.send_batch(&refs).await.unwrap();
        let mut left = 10;
        while left > 0 {
            let got = q.receive(10, Duration::from_secs(5)).await.unwrap();
            let receipts: Vec<&str> = got.iter().map(|m| m.receipt.as_str()).collect();
            q.delete_batch(&receipts).await.unwrap();
            left -= got.len();
        }
        done += 10;
    }
    done as f64 / t.elapsed().as_secs_f64()
}

/// Wake-up latency: a sender stamps each message with its send time; a long poll that is
/// already waiting notes when it returns.
async fn wake_latencies(site: &Site, b: &Backend, n: usize) -> Vec<f64> {
    let q = b.replies.clone();
    let receiver = tokio::spawn(async move {
        let mut lat = Vec::new();
        while lat.len() < n {
            for m in q.receive(10, Duration::from_secs(20)).await.unwrap() {
                let now = epoch_us();
                let sent: u128 = m.body.parse().unwrap();
                lat.push((now.saturating_sub(sent)) as f64 / 1000.0);
                q.delete(&m.receipt).await.unwrap();
            }
        }
        lat
    });
    match site.kind {
        // Another OS process sends, as the web app and the processors do.
        Kind::Embedded => {
            let status = tokio::process::Command::new(std::env::current_exe().unwrap())
                .args(["--ring", &site.data_dir.to_string_lossy(), &site.names.replies, &n.to_string()])
                .status()
                .await
                .unwrap();
            assert!(status.success());
        }
        Kind::Moto => {
            for _ in 0..n {
                tokio::time::sleep(Duration::from_millis(100)).await;
                b.replies.send(&epoch_us().to_string()).await.unwrap();
            }
        }
    }
    let mut lat = receiver.await.unwrap();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    lat
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(r) = args.ring {
        let db = darkroom_core::queue::embedded::EmbeddedDb::open(std::path::Path::new(&r[0]))?;
        let q = db.ensure(
            &r[1],
            &darkroom_core::queue::embedded::QueueSettings { visibility: Duration::from_secs(30), redrive: None },
        )?;
        for _ in 0..r[2].parse::<usize>()? {
            tokio::time::sleep(Duration::from_millis(100)).await;
            q.send(&epoch_us().to_string()).await?;
        }
        return Ok(());
    }
    println!("| backend | send→receive→delete, 1 at a time (msg/s) | batches of 10 (msg/s) | long-poll wake-up latency median / p95 / max (ms) |");
    println!("|---|---|---|---|");
    for (kind, n) in [(Kind::Embedded, args.embedded), (Kind::Moto, args.moto)] {
        let site = Site::new(kind);
        let b = site.connect(30, 3).await;
        let single = one_by_one(&*b.jobs, n).await;
        let batch = batched(&*b.jobs, n).await;
        let lat = wake_latencies(&site, &b, args.wakes).await;
        let name = match kind {
            Kind::Embedded => "embedded (SQLite, other process sends)",
            Kind::Moto => "moto 5.2.5 (SQS API over HTTP)",
        };
        println!(
            "| {name} | {single:.0} | {batch:.0} | {:.1} / {:.1} / {:.1} |",
            pct(&lat, 0.5),
            pct(&lat, 0.95),
            lat[lat.len() - 1]
        );
    }
    Ok(())
}
