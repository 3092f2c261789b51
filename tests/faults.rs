//! Faults survived: a full disk mid-write, an output directory that is missing or read-only, an
//! input that shrinks while it is read (or mapped), two runs writing one output at once, and the mode of a
//! replaced output. Each ends in a clear one-line error (exit 1) or a complete file, never a
//! partial one, and never a temporary file left behind.
#![cfg(target_os = "linux")]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_relu")
}

/// A float32 `.npy` of `n` values, `seed`ing the pattern.
fn save(path: &Path, n: usize, seed: u32) {
    let mut v = relu::format::npy::write_header(relu::dtype::DType::F32, false, &[n as u64]);
    v.reserve(4 * n);
    for i in 0..n as u32 {
        let x = (i.wrapping_mul(2_654_435_761) ^ seed) as i32 as f32 / 1e9;
        v.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(path, v).unwrap();
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("relu-tmp"))
        .collect()
}

#[test]
fn a_full_disk_mid_write_keeps_the_old_output_and_removes_the_temporary() {
    let d = tempfile::tempdir().unwrap();
    save(&d.path().join("x.npy"), 2 << 20, 1);
    std::fs::create_dir(d.path().join("out")).unwrap();
    std::fs::write(d.path().join("table.csv"), "a,b\n".to_string() + &"1.5,-2.25\n".repeat(200_000)).unwrap();
    for (args, target) in [
        (&["apply", "x.npy", "-o", "y.npy"][..], "y.npy"),
        (&["apply", "x.npy", "-o", "y.csv"], "y.csv"),
        (&["apply", "table.csv", "-o", "t.csv"], "t.csv"),
        (&["batch", "--out-dir", "out", "x.npy"], "out/x.npy"),
    ] {
        std::fs::write(d.path().join(target), b"the old output").unwrap();
        let mut c = Command::new(bin());
        c.args(args).current_dir(d.path());
        // SAFETY: a plain syscall between fork and exec. Files may not grow past 1 MiB: as on a
        // full disk, writes fail (relu ignores SIGXFSZ, so they return EFBIG).
        unsafe {
            c.pre_exec(|| {
                let l = rustix::process::Rlimit { current: Some(1 << 20), maximum: Some(1 << 20) };
                rustix::process::setrlimit(rustix::process::Resource::Fsize, l).map_err(std::io::Error::from)
            });
        }
        let o = c.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("relu: ") && err.to_lowercase().contains("too large"), "{args:?}: {err}");
        let batch = args[0] == "batch"; // and its summary lines
        assert_eq!(err.lines().count(), if batch { 3 } else { 1 }, "{err}");
        assert_eq!(std::fs::read(d.path().join(target)).unwrap(), b"the old output", "{args:?}");
        assert!(temporaries(d.path()).is_empty(), "{args:?}: {:?}", temporaries(d.path()));
        assert!(temporaries(&d.path().join("out")).is_empty());
    }
}

#[test]
fn a_missing_or_read_only_output_directory_is_one_clear_error() {
    let d = tempfile::tempdir().unwrap();
    save(&d.path().join("x.npy"), 1000, 1);
    let x = d.path().join("x.npy");
    for (out, says) in [(d.path().join("no/such/dir/y.npy"), "no/such/dir"), ("/proc/relu-y.npy".into(), "/proc")] {
        // the message names the target given, not the temporary file made beside it
        let name = out.display().to_string();
        for flag in ["-o", "--stats"] {
            let o = Command::new(bin()).arg("apply").arg(&x).arg(flag).arg(&out).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{err}");
            assert!(err.contains(says) && err.lines().count() == 1, "{err}");
            assert!(err.contains(&name) && !err.contains("relu-tmp"), "{flag}: {err}");
            assert!(!out.exists());
        }
    }
    assert!(temporaries(d.path()).is_empty());
}

#[test]
fn an_input_that_shrinks_while_read_is_an_error_not_a_short_output() {
    let d = tempfile::tempdir().unwrap();
    let x = d.path().join("x.npy");
    let mut landed = 0;
    for round in 0..6 {
        save(&x, 48 << 20, round);
        // positional reads (a file this size is otherwise mapped: the SIGBUS test below)
        let child = Command::new(bin())
            .args(["apply", "-j", "1", "x.npy", "-o", "y.npy"])
            .env("RELU_READ", "pread")
            .current_dir(d.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // cut the input once the output has begun
        let start = Instant::now();
        while temporaries(d.path()).is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_micros(200));
        }
        std::fs::OpenOptions::new().write(true).open(&x).unwrap().set_len(4096).unwrap();
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.success() {
            continue; // it was done before the cut
        }
        landed += 1;
        assert_eq!(o.status.code(), Some(1), "{err}");
        // the cut is seen by the size check at the start, or by a read that comes up short
        assert!(err.contains("x.npy") && err.contains("truncated") && err.lines().count() == 1, "{err}");
        assert!(!d.path().join("y.npy").exists() && temporaries(d.path()).is_empty());
    }
    assert!(landed > 0, "the input was never cut mid-read");
}

/// A Fortran-order array, for the memory-mapped reader that hands it out in C order.
fn save_fortran(path: &Path, rows: u64, cols: u64) {
    let mut v = relu::format::npy::write_header(relu::dtype::DType::F32, true, &[rows, cols]);
    let n = (rows * cols) as usize;
    v.reserve(4 * n);
    for i in 0..n as u32 {
        v.extend_from_slice(&((i % 1000) as f32 - 500.0).to_le_bytes());
    }
    std::fs::write(path, v).unwrap();
}

/// The memory-mapped readers (a file region of 4 MiB or more; a Fortran-order array written as CSV) lose
/// pages when the file is cut: SIGBUS, which relu turns into the same clean end as an error.
#[test]
fn a_mapped_input_that_shrinks_is_an_error_not_a_crash() {
    let d = tempfile::tempdir().unwrap();
    let x = d.path().join("x.npy");
    let mut landed = 0;
    for round in 0..8 {
        let (args, target): (&[&str], &str) = if round % 2 == 0 {
            save(&x, 48 << 20, round);
            (&["apply", "-j", "1", "x.npy", "-o", "y.npy"], "y.npy")
        } else {
            save_fortran(&x, 3000, 3000);
            (&["apply", "x.npy", "-o", "y.csv"], "y.csv")
        };
        let mut c = Command::new(bin());
        c.args(args).current_dir(d.path()).stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        let start = Instant::now();
        while temporaries(d.path()).is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_millis(20));
        std::fs::OpenOptions::new().write(true).open(&x).unwrap().set_len(4096).unwrap();
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.success() {
            continue; // it was done before the cut
        }
        assert_eq!(o.status.code(), Some(1), "round {round}: {err}");
        assert!(err.starts_with("relu: ") && err.lines().count() == 1, "round {round}: {err}");
        assert!(!d.path().join(target).exists() && temporaries(d.path()).is_empty(), "round {round}");
        if err.contains("SIGBUS") {
            landed += 1;
        }
    }
    assert!(landed > 0, "no mapped page was ever lost mid-read");
}

#[test]
fn two_runs_writing_one_output_leave_one_complete_file() {
    let d = tempfile::tempdir().unwrap();
    save(&d.path().join("a.npy"), 4 << 20, 1);
    save(&d.path().join("b.npy"), 4 << 20, 2);
    let relu_of = |name: &str| {
        let o = Command::new(bin()).args(["apply", name, "-o", "-"]).current_dir(d.path()).output().unwrap();
        assert!(o.status.success());
        o.stdout
    };
    let (ya, yb) = (relu_of("a.npy"), relu_of("b.npy"));
    assert_ne!(ya, yb);
    for _ in 0..5 {
        let run = |name: &str| {
            Command::new(bin()).args(["apply", name, "-o", "y.npy"]).current_dir(d.path()).spawn().unwrap()
        };
        let (a, b) = (run("a.npy"), run("b.npy"));
        for mut c in [a, b] {
            assert!(c.wait().unwrap().success());
        }
        let y = std::fs::read(d.path().join("y.npy")).unwrap();
        assert!(y == ya || y == yb, "a mix of the two runs ({} bytes)", y.len());
        assert!(temporaries(d.path()).is_empty());
    }
}

#[test]
fn a_replaced_output_keeps_its_mode_and_a_new_one_follows_the_umask() {
    let d = tempfile::tempdir().unwrap();
    save(&d.path().join("x.npy"), 1000, 1);
    let y = d.path().join("y.npy");
    std::fs::write(&y, b"old").unwrap();
    std::fs::set_permissions(&y, std::fs::Permissions::from_mode(0o640)).unwrap();
    let ok = |args: &[&str]| assert!(Command::new(bin()).args(args).current_dir(d.path()).status().unwrap().success());
    ok(&["apply", "x.npy", "-o", "y.npy"]);
    assert_eq!(std::fs::metadata(&y).unwrap().permissions().mode() & 0o777, 0o640);
    assert_ne!(std::fs::read(&y).unwrap(), b"old");
    // a new file: 0o666 less the umask (022 here, set for the child)
    let mut c = Command::new(bin());
    c.args(["apply", "x.npy", "-o", "z.npy"]).current_dir(d.path());
    // SAFETY: umask is a plain syscall between fork and exec.
    unsafe {
        c.pre_exec(|| {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
            Ok(())
        });
    }
    assert!(c.status().unwrap().success());
    assert_eq!(std::fs::metadata(d.path().join("z.npy")).unwrap().permissions().mode() & 0o777, 0o644);
}
