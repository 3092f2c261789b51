//! Helpers shared by the test suites: the Python finder (or maker) for the interop tests, and
//! running the binary for the CLI tests. (Each suite uses some of them.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn imports(python: &Path, modules: &str) -> bool {
    std::process::Command::new(python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// What the interop tests import.
const MODULES: &str = "numpy, pandas, safetensors";

/// The Python for the interop tests, found or made, so that they never pass by skipping:
/// `$RELU_PYTHON` (it must have NumPy); else `target/accept-venv` or `target/test-venv` when they
/// have NumPy, pandas and safetensors; else `target/test-venv` made now (`python3 -m venv`, `pip
/// install numpy pandas safetensors`). `None` only with `RELU_SKIP_INTEROP=1`, the explicit way
/// to skip; anything else that leaves no Python fails the test, saying so.
pub fn python() -> Option<&'static Path> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        if std::env::var_os("RELU_SKIP_INTEROP").is_some_and(|v| v == "1") {
            return None;
        }
        if let Some(p) = std::env::var_os("RELU_PYTHON") {
            let p = PathBuf::from(p);
            assert!(
                imports(&p, "numpy"),
                "RELU_PYTHON={} cannot `import numpy`: fix the environment (or unset RELU_PYTHON)",
                p.display()
            );
            return Some(p);
        }
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        for venv in ["accept-venv", "test-venv"] {
            let py = target.join(venv).join("bin/python");
            if py.exists() && imports(&py, MODULES) {
                return Some(py);
            }
        }
        match make_venv(&target) {
            Ok(py) => Some(py),
            Err(why) => panic!(
                "the interop tests need a Python with {MODULES}, and making one failed: {why}\n\
                 set RELU_PYTHON to a Python that has them, or RELU_SKIP_INTEROP=1 to skip these tests"
            ),
        }
    })
    .as_deref()
}

/// `target/test-venv` with the interop modules, built beside it and renamed into place (so a
/// concurrent or interrupted run never leaves a half-made one there).
fn make_venv(target: &Path) -> Result<PathBuf, String> {
    let run = |cmd: &mut std::process::Command| -> Result<(), String> {
        let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if o.status.success() {
            Ok(())
        } else {
            Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&o.stderr).trim()))
        }
    };
    std::fs::create_dir_all(target).map_err(|e| e.to_string())?;
    let tmp = target.join(format!("test-venv.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!("interop: making {} (python3 -m venv; pip install {MODULES})", target.join("test-venv").display());
    run(std::process::Command::new("python3").args(["-m", "venv"]).arg(&tmp))?;
    let py = tmp.join("bin/python");
    run(std::process::Command::new(&py).args(["-m", "pip", "install", "--quiet", "numpy", "pandas", "safetensors"]))?;
    let dest = target.join("test-venv");
    if std::fs::rename(&tmp, &dest).is_err() {
        let _ = std::fs::remove_dir_all(&tmp); // another run made it first
    }
    let py = dest.join("bin/python");
    if imports(&py, MODULES) {
        Ok(py)
    } else {
        Err(format!("{} cannot import {MODULES}", py.display()))
    }
}

/// The head of a checking script: the binary and a scratch directory from argv, `run` (relu,
/// failing on a non-zero exit), `relu` (NumPy's reference), `same` (dtype, shape and bytes) and
/// `check` (counts, and lists failures).
pub const PY_CHECKS: &str = r#"
import sys, os, subprocess, numpy as np
BIN, D = sys.argv[1], sys.argv[2]
fails, checked = [], 0
def run(*args, stdin=None):
    p = subprocess.run([BIN, *args], input=stdin, capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(f"relu {' '.join(args)}: exit {p.returncode}: {p.stderr.decode()[:300]}")
    return p.stdout
def relu(x):
    return np.where(x < 0, np.zeros((), x.dtype), x).astype(x.dtype)
def same(a, b):
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))
def check(name, ok):
    global checked
    checked += 1
    if not ok:
        fails.append(name)
"#;

/// Runs `body` after [`PY_CHECKS`] with `py`, then reports: every failure, and `checked N`. The
/// test fails on any failure or when fewer than `min` checks ran; returns the count.
pub fn run_py_checks(py: &Path, body: &str, min: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("checks.py");
    let tail =
        "\nfor f in fails:\n    print(\"FAIL\", f)\nprint(f\"checked {checked}\")\nsys.exit(1 if fails else 0)\n";
    std::fs::write(&script, format!("{PY_CHECKS}\n{body}{tail}")).unwrap();
    let o =
        std::process::Command::new(py).arg(&script).arg(env!("CARGO_BIN_EXE_relu")).arg(dir.path()).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    let n: usize = out.lines().last().and_then(|l| l.strip_prefix("checked ")).unwrap().parse().unwrap();
    assert!(n >= min, "only {n} checks ran");
    n
}

/// Runs the binary with `args` (and `stdin`): exit code, stdout, stderr. A panic fails the test.
pub fn relu(args: &[&str], stdin: Option<Vec<u8>>) -> (i32, Vec<u8>, String) {
    let mut c = assert_cmd::Command::cargo_bin("relu").unwrap();
    c.args(args);
    if let Some(s) = stdin {
        c.write_stdin(s);
    }
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    (o.status.code().unwrap_or(-1), o.stdout, err)
}
