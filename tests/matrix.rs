//! The differential matrix (issue 20): input kind × dtype × activation × output kind × threads ×
//! unit axis × shape, each case against a NumPy reference of SPEC §2 and §4 or the documented
//! refusal. The cases, the reference and the checks are in `tests/matrix/matrix.py`, which runs the
//! binary once per case and prints each failure as a command that reruns it
//! (docs/reliability.md, "The differential matrix").
//!
//! Python: `common::python` — `$RELU_PYTHON`, else a venv under `target/`; without one the test
//! fails, unless `RELU_SKIP_INTEROP=1` asks explicitly to skip it.

use std::path::Path;
use std::time::Instant;

mod common;

/// At least this many cases must run (the script's default is more): a matrix that silently
/// shrinks would pass while checking nothing.
const MIN_CASES: usize = 400;

#[test]
fn the_matrix_of_formats_dtypes_activations_and_layouts_matches_numpy() {
    let Some(py) = common::python() else {
        eprintln!("RELU_SKIP_INTEROP=1: the matrix is skipped");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/matrix/matrix.py");
    let start = Instant::now();
    let o = std::process::Command::new(py).arg(&script).arg(env!("CARGO_BIN_EXE_relu")).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the matrix failed:\n{out}\n{err}");
    // "N passed, N failed, N known"
    let last = out.lines().last().unwrap_or_default();
    let counts: Vec<usize> = last.split(", ").filter_map(|s| s.split(' ').next()?.parse().ok()).collect();
    assert!(counts.len() == 3 && counts[1] == 0, "unexpected summary: {last}\n{out}");
    assert!(counts[0] + counts[2] >= MIN_CASES, "only {} cases ran: {last}", counts[0] + counts[2]);
    // CI's budget is two minutes on two cores (about 25 s here, with the machine shared)
    eprintln!("{out}matrix: {:.1} s", start.elapsed().as_secs_f64());
}
