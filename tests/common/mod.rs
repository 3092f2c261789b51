//! Helpers shared by the test suites: the Python finder for the interop tests, and running the
//! binary for the CLI tests. (Each suite uses some of them.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn has_numpy(python: &Path) -> bool {
    std::process::Command::new(python)
        .args(["-c", "import numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The Python interpreter with NumPy to use, or None (then the tests skip).
pub fn python() -> Option<&'static Path> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("RELU_PYTHON") {
            let p = PathBuf::from(p);
            assert!(
                has_numpy(&p),
                "RELU_PYTHON={} cannot `import numpy`: fix the environment (or unset RELU_PYTHON)",
                p.display()
            );
            return Some(p);
        }
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/accept-venv/bin/python");
        if venv.exists() && has_numpy(&venv) {
            return Some(venv);
        }
        let sys = PathBuf::from("python3");
        has_numpy(&sys).then_some(sys)
    })
    .as_deref()
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
