//! Running outside commands from tests (docker, compose, git, tar): the output, or a panic
//! that shows the command and everything it printed.

use std::process::{Command, Output};

/// Run `cmd` to the end and return what it printed, whatever its exit status.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// Run `cmd`, which must succeed; returns its standard output, trimmed.
pub fn ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
