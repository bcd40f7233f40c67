//! Fault injection: a TCP proxy between Darkroom's processes and the S3/SQS server that can
//! take the server "down" (cut every open connection and refuse new ones) and bring it back,
//! without touching the server itself, whose state survives the outage as a real one would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct ChaosProxy {
    pub endpoint: String,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    cuts: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl ChaosProxy {
    /// Listen on a free local port and forward every connection to `target` (host:port).
    pub async fn start(target: &str) -> ChaosProxy {
        let target: SocketAddr = target.parse().expect("proxy target is host:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the chaos proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let cuts = Arc::new(AtomicU64::new(0));
        let (flag, cut_rx, refused) = (down.clone(), cut.subscribe(), cuts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                if flag.load(Ordering::SeqCst) {
                    refused.fetch_add(1, Ordering::SeqCst);
                    drop(client); // the server is "down": the connection closes at once
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                cut_rx.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.changed() => {} // dropping both ends cuts the connection
                    }
                });
            }
        });
        ChaosProxy { endpoint, down, cut, cuts, task }
    }

    /// Take the server down: cut open connections, refuse new ones until [`up`](Self::up).
    pub fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// Connections refused while down (proof that clients kept trying).
    pub fn refused(&self) -> u64 {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// On moto, put a [`ChaosProxy`] between `app`'s processes and its server (call before
/// starting them: they get the proxy's address). `None` on the embedded backend, where
/// [`begin_outage`] locks the queue database instead.
pub async fn proxy_for(app: &mut crate::TestApp) -> Option<ChaosProxy> {
    let m = app.site.moto.as_ref()?;
    let proxy = ChaosProxy::start(m.endpoint.trim_start_matches("http://")).await;
    app.env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint.clone()));
    Some(proxy)
}

/// Start an outage: the server cut off (moto, through `proxy`), or the embedded queue
/// database under `data_dir` locked, in which case the returned connection holds the lock
/// until it is rolled back or dropped.
pub fn begin_outage(proxy: Option<&ChaosProxy>, data_dir: &std::path::Path) -> Option<rusqlite::Connection> {
    match proxy {
        Some(p) => {
            p.down();
            None
        }
        None => {
            let db = rusqlite::Connection::open(data_dir.join("queues.sqlite3")).unwrap();
            db.execute_batch("BEGIN EXCLUSIVE").unwrap();
            Some(db)
        }
    }
}
