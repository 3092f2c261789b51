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
