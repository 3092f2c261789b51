//! Ctrl-C (SIGINT) or SIGTERM while an output file is being written: the temporary file is
//! removed, nothing appears at the target (an older file there stays as it was), and the exit
//! code is 130.
#![cfg(unix)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigint_removes_the_temporary_output() {
    interrupted_write(rustix::process::Signal::INT);
}

#[test]
fn sigterm_removes_the_temporary_output() {
    interrupted_write(rustix::process::Signal::TERM);
}

fn interrupted_write(signal: rustix::process::Signal) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.npy");
    std::fs::write(&target, b"the old output").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_relu"))
        .args(["apply", "-", "-o"])
        .arg(&target)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A header for 16M float32 values and only part of the data: relu waits for the rest.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&relu::format::npy::write_header(relu::dtype::DType::F32, false, &[1 << 24])).unwrap();
    stdin.write_all(&vec![0u8; 4 << 20]).unwrap();
    stdin.flush().unwrap();
    // Wait until the temporary file exists beside the target.
    let start = Instant::now();
    loop {
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        if names.iter().any(|n| n.to_string_lossy().ends_with(".relu-tmp")) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no temporary file appeared: {names:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.code(), Some(130), "{status:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "left behind: {left:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"the old output");
}
