//! Misconfiguration is loud, not silent (issue 13): a missing bucket or queue, no
//! credentials at all or a data folder that cannot be written stop a process with one line
//! saying what is wrong and what to do (exit status 78, no backtrace, no SDK dump), and a
//! misconfigured processor among good ones gives its job back instead of burning it.
//!
//! Real processes on moto (or a data folder), as a deployment would run them; the harness
//! sets RUST_BACKTRACE=1, so a backtrace would show if one were printed.

use std::process::{Command, Stdio};
use std::time::Duration;

use darkroom_e2e::{bin_dir, log_dir, unique, Kind, Proc, TestApp};
use serde_json::Value;

/// sysexits' EX_CONFIG: how a Darkroom binary exits on a configuration error.
const EXIT_CONFIGURATION: i32 = 78;

const RECIPE: &str = r#"{"outputs":[{"name":"web","ops":[{"op":"resize","width":200}],"format":"png"}]}"#;

/// The process's output holds exactly one `Error:` line, containing every one of `says`, and
/// nothing of a backtrace or of the SDK's nested error dump.
fn assert_one_error_line(log: &str, says: &[&str]) -> String {
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("Error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{log}");
    let line = errors[0].to_string();
    for s in says {
        assert!(line.contains(s), "the error line does not say {s:?}: {line}");
    }
    for dump in
        ["stack backtrace", "Stack backtrace", "ProviderChainError", "Attempted:", "DispatchFailure", "Caused by"]
    {
        assert!(!log.contains(dump), "{dump:?} in the output:\n{log}");
    }
    line
}

async fn submit(app: &TestApp, client: &reqwest::Client) -> String {
    let resp = app.upload(client, &["S01_rocket_640x427.jpg"], Some(RECIPE)).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    body["jobs"][0]["id"].as_str().unwrap().to_string()
}

/// Wait for `p` to exit (within `limit`) and return its status code.
async fn exit_code(app: &TestApp, p: &mut Proc, limit: Duration) -> i32 {
    match p.wait_exit(limit).await {
        Some(status) => status.code().unwrap_or(-1),
        None => {
            app.dump_logs();
            panic!("{} still runs after {limit:?}", p.log.display())
        }
    }
}

/// The moto endpoint of `app`.
fn endpoint(app: &TestApp) -> String {
    app.site.moto.as_ref().expect("a moto app").endpoint.clone()
}

#[tokio::test]
async fn a_processor_without_its_bucket_stops_at_start_and_another_does_the_job() {
    let mut app = TestApp::spawn(Kind::Moto, 0).await;
    let client = TestApp::new_client();
    let id = submit(&app, &client).await;

    app.start_processor_with(&[("DARKROOM_BUCKET", "nope")]);
    let started = std::time::Instant::now();
    let mut bad = app.processors.remove(0);
    let code = exit_code(&app, &mut bad, Duration::from_secs(30)).await;
    let log = bad.log_text();
    assert_eq!(code, EXIT_CONFIGURATION, "{log}");
    let line =
        assert_one_error_line(&log, &["S3 bucket `nope` does not exist", "darkroom-ctl init", "DARKROOM_BUCKET"]);
    println!("{line} (after {:.1} s)", started.elapsed().as_secs_f64());
    assert_eq!(app.job(&client, &id).await["state"], "queued", "the job was not touched");

    app.start_processor();
    let events = app.follow(&client, &id).await;
    let last = events.last().unwrap();
    assert_eq!(last["state"], "done", "{events:?}");
    assert_eq!(last["attempts"], 1, "the misconfigured processor never took the job: {last}");
}

#[tokio::test]
async fn a_bucket_gone_while_running_gives_the_job_back_for_another_worker() {
    let mut app = TestApp::spawn(Kind::Moto, 0).await;
    let client = TestApp::new_client();
    let other = unique("gone").to_lowercase();
    let http = reqwest::Client::new();
    let bucket_url = format!("{}/{other}", endpoint(&app));
    assert!(http.put(&bucket_url).send().await.unwrap().status().is_success(), "create bucket {other}");

    // It starts against a bucket that exists, then the bucket goes (deleted, or a policy
    // changed): only a job can find out.
    app.start_processor_with(&[("DARKROOM_BUCKET", &other), ("DARKROOM_CONCURRENCY", "1")]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !app.processors[0].log_text().contains("processor ready") {
        assert!(tokio::time::Instant::now() < deadline, "never ready:\n{}", app.processors[0].log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(http.delete(&bucket_url).send().await.unwrap().status().is_success(), "delete bucket {other}");
    let id = submit(&app, &client).await;

    let mut bad = app.processors.remove(0);
    let code = exit_code(&app, &mut bad, Duration::from_secs(60)).await;
    let log = bad.log_text();
    assert_eq!(code, EXIT_CONFIGURATION, "{log}");
    let line = assert_one_error_line(&log, &[&format!("S3 bucket `{other}` does not exist"), "darkroom-ctl init"]);
    println!("{line}");

    // Given back with a note, not failed: one delivery used, the job is still to do.
    let job = app
        .wait_for_job(&client, &id, Duration::from_secs(10), "retrying with a note", |j| j["state"] == "retrying")
        .await;
    let note =
        job["timeline"].as_array().unwrap().iter().filter_map(|t| t["note"].as_str()).collect::<Vec<_>>().join("\n");
    assert!(
        note.contains("configuration error") && note.contains("given back to the queue for another worker"),
        "{job}"
    );
    println!("timeline note: {note}");
    app.start_processor();
    let events = app.follow(&client, &id).await;
    let last = events.last().unwrap();
    assert_eq!(last["state"], "done", "{events:?}");
    assert_eq!(last["attempts"], 2, "the misconfigured processor used one delivery only: {last}");
}

#[tokio::test]
async fn a_reply_queue_that_does_not_exist_stops_the_processor_and_the_job_is_finished_by_another() {
    let mut app = TestApp::spawn(Kind::Moto, 0).await;
    let client = TestApp::new_client();
    let id = submit(&app, &client).await;
    // A queue URL is not looked up at start: only sending to it finds it missing.
    let nope = format!("{}/123456789012/{}", endpoint(&app), unique("nope"));
    app.start_processor_with(&[("DARKROOM_REPLY_QUEUE", &nope), ("DARKROOM_CONCURRENCY", "1")]);
    let mut bad = app.processors.remove(0);
    let code = exit_code(&app, &mut bad, Duration::from_secs(60)).await;
    let log = bad.log_text();
    assert_eq!(code, EXIT_CONFIGURATION, "{log}");
    let line = assert_one_error_line(&log, &["SQS queue", "does not exist", "darkroom-ctl init"]);
    println!("{line}");

    app.start_processor();
    let events = app.follow(&client, &id).await;
    let last = events.last().unwrap();
    assert_eq!(last["state"], "done", "{events:?}");
    assert_eq!(last["attempts"], 2, "given back after one delivery, not dead-lettered: {last}");
}

/// Run `bin args` with `env` (and nothing of the test's own AWS or Darkroom settings); wait
/// for its exit; its code, its output and how long it took.
async fn run(bin: &str, args: &[&str], env: &[(&str, String)]) -> (i32, String, Duration) {
    let log = log_dir().join(format!("{}.log", unique(bin)));
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(bin_dir().join(bin));
    for (k, _) in std::env::vars() {
        if k.starts_with("DARKROOM_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    let started = std::time::Instant::now();
    let child = cmd
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "info")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc { child, log };
    let status = p.wait_exit(Duration::from_secs(30)).await;
    let text = p.log_text();
    let status = status.unwrap_or_else(|| panic!("{bin} still runs after 30 s:\n{text}"));
    (status.code().unwrap_or(-1), text, started.elapsed())
}

#[tokio::test]
async fn the_web_app_without_its_queues_says_to_run_darkroom_ctl_init() {
    // A fresh moto: no bucket, no queues; the web app without --init creates nothing.
    let app = TestApp::new(Kind::Moto, &[]);
    let mut env: Vec<(&str, String)> = app.envs();
    env.push(("DARKROOM_BIND", "127.0.0.1:0".into()));
    let (code, log, took) = run("darkroom-web", &[], &env).await;
    assert_eq!(code, EXIT_CONFIGURATION, "{log}");
    let line = assert_one_error_line(&log, &["does not exist", "create it with `darkroom-ctl init`"]);
    println!("{line} (after {took:?})");
    assert!(!log.contains("listening on"), "{log}");
    let backend = app.site.args(30, 3);
    let sdk = darkroom_core::aws::local_sdk_config(&endpoint(&app)).await;
    let err = backend.connect_with(&sdk, false).await.err().expect("still nothing created");
    assert!(err.is_missing_resource(), "{err}");
}

#[tokio::test]
async fn no_credentials_at_all_is_one_line_naming_where_they_are_looked_for_in_every_binary() {
    let app = TestApp::new(Kind::Moto, &[]);
    let home = std::env::temp_dir().join(unique("empty-home"));
    std::fs::create_dir_all(&home).unwrap();
    let env: Vec<(&str, String)> = vec![
        ("DARKROOM_BACKEND", "aws".into()),
        ("AWS_ENDPOINT_URL", endpoint(&app)),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("HOME", home.to_string_lossy().into_owned()),
        ("DARKROOM_COOKIE_SECRET", "e2e-cookie-secret-0123456789abcdef0123456789".into()),
        ("DARKROOM_BIND", "127.0.0.1:0".into()),
    ];
    for (bin, args) in [("darkroom-web", &[][..]), ("darkroom-processor", &[][..]), ("darkroom-ctl", &["counts"][..])] {
        let (code, log, took) = run(bin, args, &env).await;
        assert_eq!(code, EXIT_CONFIGURATION, "{bin}:\n{log}");
        let line = assert_one_error_line(
            &log,
            &["no AWS credentials found", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "SSO", "web identity", "instance role"],
        );
        // The processor allows a bucket or queue being created meanwhile a few seconds; the
        // others stop at once.
        assert!(took < Duration::from_secs(15), "{bin} took {took:?}");
        println!("{bin} (exit {code} after {:.1} s): {line}", took.as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test]
async fn a_data_folder_that_cannot_be_written_is_a_configuration_error() {
    // /sys refuses new folders even to root (EPERM, or EROFS where it is mounted read-only).
    let dir = format!("/sys/{}", unique("darkroom"));
    let env: Vec<(&str, String)> = vec![("DARKROOM_BACKEND", "embedded".into()), ("DARKROOM_DATA_DIR", dir.clone())];
    let (code, log, _) = run("darkroom-processor", &[], &env).await;
    assert_eq!(code, EXIT_CONFIGURATION, "{log}");
    let line = assert_one_error_line(&log, &[&format!("data folder {dir} is not writable"), "DARKROOM_DATA_DIR"]);
    println!("{line}");
}

#[tokio::test]
async fn profiles_with_credential_process_and_sso_are_understood() {
    // A fresh moto and a HOME whose ~/.aws/config has a credential_process profile and an SSO
    // one (never logged in). Both providers are built in (aws-config's `credentials-process`
    // and `sso` features): the first works, the second says to log in.
    let app = TestApp::new(Kind::Moto, &[]);
    let home = std::env::temp_dir().join(unique("aws-home"));
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    let helper = home.join("credentials.sh");
    std::fs::write(
        &helper,
        "#!/bin/sh\necho '{\"Version\":1,\"AccessKeyId\":\"test\",\"SecretAccessKey\":\"test\"}'\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(
        home.join(".aws/config"),
        format!(
            "[profile helper]\ncredential_process = {}\nregion = us-east-1\n\n\
             [profile dev]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Darkroom\nregion = us-east-1\n\n\
             [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n",
            helper.display()
        ),
    )
    .unwrap();
    let names = &app.site.names;
    let env = |profile: &str| -> Vec<(&str, String)> {
        vec![
            ("DARKROOM_BACKEND", "aws".into()),
            ("AWS_ENDPOINT_URL", endpoint(&app)),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("HOME", home.to_string_lossy().into_owned()),
            ("AWS_PROFILE", profile.into()),
            ("DARKROOM_BUCKET", names.bucket.clone()),
            ("DARKROOM_JOB_QUEUE", names.jobs.clone()),
            ("DARKROOM_REPLY_QUEUE", names.replies.clone()),
            ("DARKROOM_DEAD_LETTER_QUEUE", names.dead_letters.clone()),
        ]
    };
    let (code, log, _) = run("darkroom-ctl", &["init"], &env("helper")).await;
    assert_eq!(code, 0, "credential_process credentials are used:\n{log}");
    assert!(log.contains("ready: S3 bucket"), "{log}");

    let (code, log, _) = run("darkroom-ctl", &["counts"], &env("dev")).await;
    assert_eq!(code, EXIT_CONFIGURATION, "{log}");
    let line = assert_one_error_line(&log, &["AWS credentials could not be loaded", "SSO", "aws sso login"]);
    assert!(!line.contains("cargo feature"), "the SSO provider is built in: {line}");
    println!("{line}");
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test]
async fn a_missing_cookie_secret_is_one_line_too() {
    let env: Vec<(&str, String)> = vec![("DARKROOM_BACKEND", "aws".into())];
    let (code, log, _) = run("darkroom-web", &["--bind", "127.0.0.1:0"], &env).await;
    assert_eq!(code, EXIT_CONFIGURATION, "{log}");
    let line = assert_one_error_line(&log, &["DARKROOM_COOKIE_SECRET is not set", "openssl rand -hex 32"]);
    println!("{line}");
}

#[tokio::test]
async fn a_misconfigured_processor_among_good_ones_burns_no_job() {
    let mut app = TestApp::spawn(Kind::Moto, 0).await;
    let client = TestApp::new_client();
    let nope = format!("{}/123456789012/{}", endpoint(&app), unique("nope"));
    app.start_processor_with(&[("DARKROOM_REPLY_QUEUE", &nope)]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !app.processors[0].log_text().contains("processor ready") {
        assert!(tokio::time::Instant::now() < deadline, "never ready:\n{}", app.processors[0].log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(submit(&app, &client).await);
    }
    app.start_processor();
    for id in &ids {
        let events = app.follow(&client, id).await;
        let last = events.last().unwrap();
        assert_eq!(last["state"], "done", "{events:?}");
        assert!(last["attempts"].as_u64().unwrap() <= 2, "one delivery at most went to the bad one: {last}");
    }
    let bad = &mut app.processors[0];
    let status = bad.wait_exit(Duration::from_secs(30)).await.expect("the misconfigured processor stopped");
    let log = bad.log_text();
    assert_eq!(status.code(), Some(EXIT_CONFIGURATION), "{log}");
    assert_one_error_line(&log, &["SQS queue", "does not exist"]);
    assert!(app.processors[1].is_running(), "the good processor runs on");
}
