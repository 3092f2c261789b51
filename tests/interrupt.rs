//! Ctrl-C (SIGINT) or SIGTERM while an output file is being written: the temporary file is
//! removed, nothing appears at the target (an older file there stays as it was), and relu dies
//! by the same signal (so a shell loop around it stops, as around `cp`).
#![cfg(unix)]

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
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

#[test]
fn sighup_removes_the_temporary_output() {
    interrupted_write(rustix::process::Signal::HUP);
}

/// relu leaves a signal ignored if it starts ignored (`nohup`, a background job of a script,
/// where CI may run these tests): give the child the default actions, as a terminal would.
pub fn default_signals(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: sigaction is async-signal-safe, fine between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            use nix::sys::signal::{signal, SigHandler, Signal};
            for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
                signal(s, SigHandler::SigDfl).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}

/// Started with SIGINT ignored, relu keeps ignoring it (and still cleans up on SIGTERM).
#[test]
fn a_signal_ignored_at_start_stays_ignored() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relu"));
    default_signals(&mut cmd);
    // SAFETY: as above.
    unsafe {
        cmd.pre_exec(|| {
            use nix::sys::signal::{signal, SigHandler, Signal};
            signal(Signal::SIGINT, SigHandler::SigIgn).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child =
        cmd.args(["apply", "-", "-o", "out.npy"]).current_dir(dir.path()).stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&relu::format::npy::write_header(relu::dtype::DType::F32, false, &[1 << 24])).unwrap();
    stdin.write_all(&vec![0u8; 1 << 20]).unwrap();
    stdin.flush().unwrap();
    wait_for_temporary(dir.path());
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    // time for a SIGINT that was not ignored to end it (its handler removes the file and dies)
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "SIGINT was ignored at start: relu must still run");
    assert!(!temporaries(dir.path()).is_empty(), "the temporary file stays while relu runs");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.signal(), Some(rustix::process::Signal::TERM.as_raw()), "{status:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The temporary output files in `dir`.
fn temporaries(dir: &std::path::Path) -> Vec<String> {
    let names = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
    names.filter(|n| n.ends_with(".relu-tmp")).collect()
}

/// Waits (at most 20 s) until relu has made its temporary output in `dir`: a signal sent before
/// that tests nothing about the cleanup, however long a fixed sleep would have been.
fn wait_for_temporary(dir: &std::path::Path) {
    let start = Instant::now();
    while temporaries(dir).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "no temporary file appeared in {}", dir.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn interrupted_write(signal: rustix::process::Signal) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.npy");
    std::fs::write(&target, b"the old output").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relu"));
    default_signals(&mut cmd);
    let mut child =
        cmd.args(["apply", "-", "-o"]).arg(&target).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // A header for 16M float32 values and only part of the data: relu waits for the rest.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&relu::format::npy::write_header(relu::dtype::DType::F32, false, &[1 << 24])).unwrap();
    stdin.write_all(&vec![0u8; 4 << 20]).unwrap();
    stdin.flush().unwrap();
    wait_for_temporary(dir.path());
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.signal(), Some(signal.as_raw()), "{status:?}");
    assert!(temporaries(dir.path()).is_empty(), "the temporary file is removed");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "left behind: {left:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"the old output");
}
