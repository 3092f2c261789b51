//! Helpers shared by the numpy interop tests.

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
