//! Where a job's time and memory limits are enforced. The image work of every job runs in a
//! child process (this same binary, see [`child`]) whose address space is capped, and the
//! parent kills the child when the job's time is up or the job is released or lost, and waits
//! for it to end before the job's slot is free again. A hostile photo, a runaway decoder or a
//! segfault in C code takes down one child, never the processor or the other slots.
//!
//! Children are kept between jobs (one per busy slot at most): starting one costs a few
//! milliseconds, which a job of 10 ms would feel; a killed or crashed child is replaced.

pub mod child;
pub mod wire;

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use darkroom_engine::{Limits, OutputSpec, Rendered, Resources};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;

use wire::{Frame, Request};

/// How a job's image work ended badly.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// The engine refused the job (bad input, over a limit).
    #[error("{message}")]
    Engine { code: String, message: String },
    #[error("Processing took longer than the limit of {0} seconds. Ask for fewer outputs or smaller sizes.")]
    TimeLimit(u64),
    #[error("Processing needed more memory than the limit of {} MiB per job. Ask for smaller outputs or upload a smaller photo.", .0 / (1024 * 1024))]
    MemoryLimit(u64),
    /// The child died (a panic, a signal): worth another attempt on another worker.
    #[error("the image engine crashed: {0}")]
    Crashed(String),
    /// The job was released or lost while rendering; the child was stopped.
    #[error("stopped")]
    Stopped,
    /// Storing an output failed.
    #[error(transparent)]
    Store(#[from] darkroom_core::store::StoreError),
}

/// The pool of sandbox children.
pub struct Sandbox {
    exe: PathBuf,
    memory_limit: u64,
    idle: Mutex<Vec<Worker>>,
}

/// One child and its pipes; `stderr` keeps its last lines for a crash report.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_task: tokio::task::JoinHandle<()>,
}

const STDERR_LINES: usize = 20;

impl Sandbox {
    /// Children are `exe --sandbox-child <memory_limit>`; `memory_limit` 0 means no cap.
    pub fn new(exe: PathBuf, memory_limit: u64) -> Arc<Sandbox> {
        Arc::new(Sandbox { exe, memory_limit, idle: Mutex::new(Vec::new()) })
    }

    /// This processor's own binary as the child.
    pub fn for_this_binary(memory_limit: u64) -> std::io::Result<Arc<Sandbox>> {
        Ok(Sandbox::new(std::env::current_exe()?, memory_limit))
    }

    pub fn memory_limit(&self) -> u64 {
        self.memory_limit
    }

    fn spawn(&self) -> Result<Worker, SandboxError> {
        let mut child = Command::new(&self.exe)
            .arg(child::ARG)
            .arg(self.memory_limit.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                SandboxError::Crashed(format!("cannot start the sandbox process {}: {e}", self.exe.display()))
            })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::with_capacity(256 * 1024, child.stdout.take().expect("piped"));
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let tail = stderr.clone();
        let pid = child.id();
        let stderr_task = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(sandbox_pid = pid, "sandbox: {line}");
                let mut t = tail.lock().unwrap();
                if t.len() == STDERR_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        Ok(Worker { child, stdin, stdout, stderr, stderr_task })
    }

    /// Render `outputs` from `input` in a child, handing each encoded output to `store` as it
    /// arrives. Ends the child (kill, then wait) when `time_limit` passes or `stop` turns true,
    /// so when this returns nothing of the job is running any more.
    #[allow(clippy::too_many_arguments)]
    pub async fn render<F, Fut>(
        &self,
        input: &[u8],
        outputs: &[OutputSpec],
        limits: &Limits,
        resources: &Resources,
        time_limit: Duration,
        mut stop: watch::Receiver<bool>,
        mut store: F,
    ) -> Result<(), SandboxError>
    where
        F: FnMut(Rendered) -> Fut,
        Fut: Future<Output = Result<(), darkroom_core::store::StoreError>>,
    {
        // A child that died while idle (the OOM killer, a signal) is replaced, not handed a job.
        let idle =
            self.idle.lock().unwrap().pop().and_then(|mut w| matches!(w.child.try_wait(), Ok(None)).then_some(w));
        let mut worker = match idle {
            Some(w) => w,
            None => self.spawn()?,
        };
        let request = Request {
            outputs: outputs.to_vec(),
            limits: *limits,
            time_limit_secs: time_limit.as_secs().max(1),
            input_len: input.len() as u64,
            resources: resources.iter().map(|(k, v)| (k.clone(), v.len() as u64)).collect(),
        };
        enum Ended {
            Exchange(Result<Frame, Exchange>),
            Deadline,
            Stop,
        }
        let ended = {
            let exchange = async {
                wire::send_request(&mut worker.stdin, &request, input, resources).await.map_err(Exchange::Io)?;
                loop {
                    match wire::read_frame(&mut worker.stdout).await.map_err(Exchange::Io)? {
                        Frame::Output { name, format, width, height, len } => {
                            let bytes = wire::read_bytes(&mut worker.stdout, len).await.map_err(Exchange::Io)?;
                            store(Rendered { name, format, width, height, bytes }).await.map_err(Exchange::Store)?;
                        }
                        last => return Ok(last),
                    }
                }
            };
            tokio::select! {
                r = exchange => Ended::Exchange(r),
                _ = tokio::time::sleep(time_limit) => Ended::Deadline,
                _ = async { if stop.wait_for(|s| *s).await.is_err() { std::future::pending::<()>().await } } => Ended::Stop,
            }
        };
        match ended {
            Ended::Exchange(Ok(Frame::Done)) => {
                self.idle.lock().unwrap().push(worker);
                Ok(())
            }
            Ended::Exchange(Ok(Frame::Failed { code, message })) => {
                self.idle.lock().unwrap().push(worker);
                Err(if code == "time_limit" {
                    SandboxError::TimeLimit(time_limit.as_secs())
                } else {
                    SandboxError::Engine { code, message }
                })
            }
            Ended::Exchange(Ok(Frame::Panicked { message })) => {
                end(worker).await;
                Err(SandboxError::Crashed(message))
            }
            Ended::Exchange(Ok(Frame::Output { .. })) => unreachable!("outputs are handled in the loop"),
            Ended::Exchange(Err(Exchange::Store(e))) => {
                // The child may still be writing outputs nobody reads: start afresh next time.
                end(worker).await;
                Err(SandboxError::Store(e))
            }
            Ended::Exchange(Err(Exchange::Io(e))) => {
                // The child died mid-job: a signal (segfault, abort) or the memory cap.
                let tail = end(worker).await;
                Err(self.classify_death(&tail, &e))
            }
            Ended::Deadline => {
                end(worker).await;
                Err(SandboxError::TimeLimit(time_limit.as_secs()))
            }
            Ended::Stop => {
                end(worker).await;
                Err(SandboxError::Stopped)
            }
        }
    }

    fn classify_death(&self, stderr: &str, io: &std::io::Error) -> SandboxError {
        if self.memory_limit > 0 && stderr.contains("memory allocation of") {
            SandboxError::MemoryLimit(self.memory_limit)
        } else {
            let last = stderr.lines().last().unwrap_or("no message");
            SandboxError::Crashed(format!("the sandbox process died ({io}; {last})"))
        }
    }
}

enum Exchange {
    Io(std::io::Error),
    Store(darkroom_core::store::StoreError),
}

/// Kill a child, wait until it is gone, and return the last lines it wrote to stderr.
async fn end(mut worker: Worker) -> String {
    let _ = worker.child.start_kill();
    let _ = worker.child.wait().await;
    // Its stderr ends with it; let the reader take the last lines.
    let _ = tokio::time::timeout(Duration::from_secs(2), &mut worker.stderr_task).await;
    let tail = worker.stderr.lock().unwrap().iter().cloned().collect::<Vec<_>>().join("\n");
    tail
}
