//! `darkroom-ctl`: the AWS CLI's role for any Darkroom backend (embedded included): put and
//! get objects, send and receive queue messages, show queue depths. Reads the same settings
//! as `darkroom-web` and `darkroom-processor`. Also the one-off `init` (create the bucket and
//! queues, as docker-compose.yml's init service does) and `health` (a container HEALTHCHECK
//! that needs no curl in the image).

use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use darkroom_core::config::{BackendArgs, AWS_HELP};
use darkroom_core::queue::JobQueue;

#[derive(Parser)]
#[command(name = "darkroom-ctl", version, about = "Inspect and feed a Darkroom backend", after_help = AWS_HELP)]
struct Cli {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Which {
    Jobs,
    Replies,
    DeadLetters,
}

#[derive(Subcommand)]
enum Command {
    /// Visible and in-flight messages of every queue.
    Counts,
    /// Send a message body (`-` reads it from standard input); prints each message id once
    /// the queue has it.
    Send {
        #[arg(long, value_enum, default_value = "jobs")]
        queue: Which,
        /// Send the body this many times.
        #[arg(long, default_value_t = 1)]
        count: u32,
        body: String,
    },
    /// Receive messages and print them as JSON lines.
    Receive {
        #[arg(long, value_enum, default_value = "replies")]
        queue: Which,
        #[arg(long, default_value_t = 10)]
        max: u32,
        /// Seconds to wait for the first message (at most 20).
        #[arg(long, default_value_t = 20)]
        wait: u64,
        /// Delete what was received.
        #[arg(long)]
        delete: bool,
    },
    /// Store a file at KEY.
    Put { key: String, file: std::path::PathBuf },
    /// Write the object at KEY to FILE (or standard output).
    Get { key: String, file: Option<std::path::PathBuf> },
    /// Create the bucket and the queues (with the dead-letter redrive) if missing, then exit.
    Init,
    /// GET an HTTP URL on this host and exit 0 on a 2xx answer (a container health check).
    Health {
        /// `http://HOST:PORT/PATH`; default: the web app's /livez on DARKROOM_BIND's port (a queue outage does not make the container unhealthy).
        url: Option<String>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A configuration error is one line (exit status 78), never a backtrace.
        Err(e) => darkroom_core::exit::report_exit(&e),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Health { url } => return health(url.as_deref()),
        Command::Init => {
            let b = cli.backend.connect(true).await.context("cannot create the bucket and queues")?;
            println!("ready: {}", b.description);
            return Ok(());
        }
        _ => {}
    }
    let b = cli.backend.connect(false).await.context("cannot reach the backend")?;
    let pick = |w: Which| -> &std::sync::Arc<dyn JobQueue> {
        match w {
            Which::Jobs => &b.jobs,
            Which::Replies => &b.replies,
            Which::DeadLetters => &b.dead_letters,
        }
    };
    match cli.command {
        Command::Counts => {
            for (name, q) in [("jobs", &b.jobs), ("replies", &b.replies), ("dead-letters", &b.dead_letters)] {
                let c = q.counts().await?;
                println!("{name:<13} {:<30} visible {:>6}  in flight {:>6}", q.name(), c.visible, c.in_flight);
            }
        }
        Command::Send { queue, count, body } => {
            let body = if body == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                body
            };
            for _ in 0..count {
                println!("{}", pick(queue).send(&body).await?);
            }
        }
        Command::Receive { queue, max, wait, delete } => {
            let q = pick(queue);
            for m in q.receive(max, Duration::from_secs(wait)).await? {
                println!(
                    "{}",
                    serde_json::json!({"message_id": m.message_id, "receive_count": m.receive_count, "body": m.body})
                );
                if delete {
                    q.delete(&m.receipt).await?;
                }
            }
        }
        Command::Put { key, file } => {
            let data = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            b.store.put(&key, data.into(), "application/octet-stream").await?;
        }
        Command::Init | Command::Health { .. } => unreachable!("handled before connecting"),
        Command::Get { key, file } => {
            let data = b.store.get(&key).await?;
            match file {
                Some(f) => std::fs::write(&f, &data).with_context(|| format!("write {}", f.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &data)?,
            }
        }
    }
    Ok(())
}

/// One HTTP/1.1 GET with std only (the probe runs every few seconds in every container).
fn health(url: Option<&str>) -> anyhow::Result<()> {
    use std::io::Write;
    let default;
    let url = match url {
        Some(u) => u,
        None => {
            let bind = std::env::var("DARKROOM_BIND").unwrap_or_else(|_| "127.0.0.1:8080".into());
            let port = bind.rsplit(':').next().unwrap_or("8080").to_string();
            default = format!("http://127.0.0.1:{port}/livez");
            &default
        }
    };
    let rest = url.strip_prefix("http://").context("health: only http:// URLs")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)?.next().context("health: no address")?;
    let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .with_context(|| format!("health: cannot connect to {host}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    let status = answer.split_whitespace().nth(1).unwrap_or("");
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    println!("{url}: {status} {body}");
    anyhow::ensure!(status.starts_with('2'), "{url} answered {status:?}");
    Ok(())
}
