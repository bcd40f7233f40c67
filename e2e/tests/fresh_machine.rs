//! The README's first command on a fresh machine, in the README's order: a container of plain
//! Debian with only what a new development machine has (a C compiler, git, Python, the Rust
//! toolchain; no pkg-config, no libheif, no libjpeg-turbo) gets a copy of this work tree and
//! runs `scripts/start`. It must come up with the whole product: the engine reports HEIC, AVIF
//! and the libjpeg-turbo paths, and an iPhone photo (HEIC) uploaded through the HTTP API
//! comes back as AVIF and JPEG. Then Ctrl-C stops it, and the engine's build script is shown
//! to notice a library disappearing and coming back (the cached "no libheif" that made
//! `scripts/test` fail after `scripts/start`).
//!
//! Needs a Docker engine and `debian:bookworm-slim` (scripts/container-env, run by scripts/test).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use darkroom_e2e::command::{ok, run};
use darkroom_e2e::{corpus, root};
use serde_json::Value;

struct Machine {
    name: String,
}

impl Machine {
    fn sh(&self, script: &str) -> String {
        ok(Command::new("docker").args(["exec", &self.name, "bash", "-c", script]))
    }
    fn log(&self) -> String {
        String::from_utf8_lossy(&run(Command::new("docker").args(["exec", &self.name, "cat", "/tmp/start.log"])).stdout)
            .into_owned()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let log = self.log();
        let _ = std::fs::write(darkroom_e2e::log_dir().join(format!("{}.log", self.name)), log);
        let _ =
            Command::new("docker").args(["rm", "-f", &self.name]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

fn wait_log(m: &Machine, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let log = m.log();
        if log.contains(needle) {
            return log;
        }
        assert!(Instant::now() < deadline, "{needle:?} not in scripts/start's output within {limit:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_start_on_a_fresh_debian_gives_the_whole_product() {
    let info = run(Command::new("docker").arg("info"));
    assert!(info.status.success(), "no Docker engine answers: run scripts/container-env first (scripts/test does)");

    // A new development machine: Debian with a C compiler, git, Python and the Rust toolchain.
    let base = std::env::var("DARKROOM_RUNTIME_IMAGE").unwrap_or_else(|_| "debian:bookworm-slim".into());
    let image = "darkroom-fresh-machine:test";
    let dockerfile = format!(
        "FROM {base}\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
         ca-certificates gcc libc6-dev make git curl python3 python3-venv python3-pip procps \
         && rm -rf /var/lib/apt/lists/*\n"
    );
    let mut build = Command::new("docker");
    build.args(["build", "-q", "-t", image, "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = build.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), dockerfile.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "build the fresh-machine image: {}", String::from_utf8_lossy(&out.stderr));

    let sysroot = ok(Command::new("rustc").args(["--print", "sysroot"]));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let name = format!("darkroom-fresh-{}", std::process::id());
    let ca = "/etc/ssl/certs/ca-certificates.crt";
    let mut run_args = vec![
        "run".to_string(),
        "-d".into(),
        "--name".into(),
        name.clone(),
        "-p".into(),
        format!("127.0.0.1:{port}:8080"),
        "-v".into(),
        format!("{sysroot}:/opt/rust:ro"),
        "-e".into(),
        "PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "-e".into(),
        "DARKROOM_BIND=0.0.0.0:8080".into(),
    ];
    if Path::new(ca).exists() {
        // This machine's CA bundle: where HTTPS goes through a proxy, crates.io needs it.
        run_args.extend(["-v".into(), format!("{ca}:{ca}:ro")]);
    }
    run_args.extend([image.to_string(), "sleep".into(), "infinity".into()]);
    ok(Command::new("docker").args(&run_args));
    let m = Machine { name: name.clone() };
    assert!(
        m.sh("! command -v pkg-config && ! test -e /usr/include/libheif && ! test -e /usr/include/turbojpeg.h && echo clean")
            .ends_with("clean"),
        "the fresh machine has none of the engine's libraries"
    );

    // This work tree (tracked and new files, as a fresh clone of it would have).
    let files = ok(Command::new("git").args(["ls-files", "-co", "--exclude-standard"]).current_dir(root()));
    let list = darkroom_e2e::log_dir().join(format!("fresh-files-{}", std::process::id()));
    std::fs::write(&list, files).unwrap();
    let tar = darkroom_e2e::log_dir().join(format!("fresh-tree-{}.tar", std::process::id()));
    ok(Command::new("tar").arg("-cf").arg(&tar).arg("-T").arg(&list).current_dir(root()));
    m.sh("mkdir -p /work/darkroom");
    ok(Command::new("docker").args(["cp", tar.to_str().unwrap(), &format!("{name}:/work/tree.tar")]));
    let _ = std::fs::remove_file(&tar);
    let _ = std::fs::remove_file(&list);
    m.sh("cd /work/darkroom && tar -xf /work/tree.tar && rm /work/tree.tar");

    // The README's first command.
    let started = Instant::now();
    ok(Command::new("docker").args([
        "exec",
        "-d",
        &name,
        "bash",
        "-c",
        "cd /work/darkroom && echo $$ >/tmp/start.pid && exec scripts/start >/tmp/start.log 2>&1",
    ]));
    let log = wait_log(&m, "Darkroom is running", Duration::from_secs(1500));
    eprintln!("scripts/start on a fresh machine: running after {:.0} s", started.elapsed().as_secs_f64());
    let engine_line = log.lines().find(|l| l.contains("image engine:")).expect("scripts/start prints the engine");
    eprintln!("{engine_line}");
    assert!(engine_line.contains(r#""missing":[]"#), "the first start has every engine part: {engine_line}");

    // An iPhone photo in, AVIF and JPEG out, through the HTTP API.
    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let base_url = format!("http://127.0.0.1:{port}");
    let recipe = r#"{"outputs":[{"name":"avif","ops":[{"op":"resize","width":800,"height":800}],"format":"avif","quality":60},
                    {"name":"jpeg","ops":[{"op":"resize","width":800,"height":800}],"format":"jpeg","quality":80}]}"#;
    let bytes = std::fs::read(corpus("D06_storm_1920x1280.heic")).unwrap();
    let form = reqwest::multipart::Form::new()
        .text("recipe", recipe.to_string())
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name("D06_storm_1920x1280.heic"));
    let resp = client.post(format!("{base_url}/api/jobs")).multipart(form).send().await.expect("upload");
    assert_eq!(resp.status(), 202, "HEIC upload accepted: {}", resp.text().await.unwrap_or_default());
    let body: Value = resp.json().await.unwrap();
    let id = body["jobs"][0]["id"].as_str().unwrap().to_string();
    let events = darkroom_e2e::follow_at(&client, &base_url, &id).await;
    let last = events.last().unwrap();
    assert_eq!(last["state"], "done", "the HEIC job is done: {events:?}");
    let job: Value = client.get(format!("{base_url}/api/jobs/{id}")).send().await.unwrap().json().await.unwrap();
    let formats: Vec<&str> = job["outputs"].as_array().unwrap().iter().map(|o| o["format"].as_str().unwrap()).collect();
    assert_eq!(formats, ["avif", "jpeg"], "{job}");
    let avif = client.get(format!("{base_url}{}", job["outputs"][0]["url"].as_str().unwrap())).send().await.unwrap();
    let avif = avif.bytes().await.unwrap();
    assert_eq!(&avif[4..12], b"ftypavif", "an AVIF file");

    // Ctrl-C stops everything.
    m.sh("kill -INT $(cat /tmp/start.pid)");
    wait_log(&m, "==> stopped", Duration::from_secs(60));

    // The build script notices a library going away and coming back.
    let info = |m: &Machine| -> Value {
        let out = m.sh("cd /work/darkroom && cargo build --quiet --bins 2>/dev/null && target/debug/darkroom-processor --engine-info");
        serde_json::from_str(out.lines().last().unwrap()).unwrap()
    };
    m.sh("DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq libheif-dev >/dev/null");
    let without = info(&m);
    assert_eq!(without["engine"]["heif_input"], false, "after removing libheif-dev the rebuild has no HEIC: {without}");
    m.sh("cd /work/darkroom && scripts/system-deps");
    let with = info(&m);
    assert_eq!(with["missing"], serde_json::json!([]), "after scripts/system-deps the rebuild has everything: {with}");
    eprintln!("build script: without libheif-dev {without}; with it {with}");
}
