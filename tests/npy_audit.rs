//! The `.npy` header audit: every malformed or unusual header in `fixtures/npy/audit/` (written by
//! `scripts/make_npy_audit.py`, which recorded what `numpy.load(path)` does with each in
//! `expected.json`) through `relu inspect` and `relu stats`.
//!
//! - NumPy accepts, dtype relu processes (`"relu": "accept"`): exit 0, and `inspect --json` reports
//!   NumPy's dtype and shape.
//! - NumPy refuses, or a dtype relu does not process (`"relu": "refuse"`): exit 1, and stderr is
//!   one line, `relu: ` and the file's path (`inspect` adds its `relu: N of M files could not be
//!   read` summary line).
//! - `"inspect": "any"`: `inspect` reads the header only, so it may list a valid header of an
//!   unsupported dtype, and cannot see data that is too short; exit 0, or 1 as above.
//!
//! Never a panic (`common::relu` fails on one).

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};

fn audit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/npy/audit")
}

fn expected() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(audit_dir().join("expected.json")).unwrap();
    match serde_json::from_str(&text).unwrap() {
        Value::Object(m) => m,
        _ => panic!("expected.json is not an object"),
    }
}

/// Why `stderr` is not a proper refusal of `path` by `cmd`, if it is not.
fn bad_refusal(cmd: &str, path: &str, stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let first = lines.first().copied().unwrap_or("");
    if !first.starts_with("relu: ") || !first.contains(path) {
        return Some(format!("stderr does not start with `relu: {path}`: {stderr:?}"));
    }
    let summary_ok = cmd == "inspect" && lines.len() == 2 && lines[1] == "relu: 1 of 1 files could not be read";
    if lines.len() != 1 && !summary_ok {
        return Some(format!("stderr is not one line: {stderr:?}"));
    }
    None
}

fn numpy_said(e: &Value) -> String {
    match e["numpy"].as_str() {
        Some("accept") => match (e.get("dtype"), e.get("shape")) {
            (Some(d), Some(s)) => format!("numpy.load accepts: dtype {d}, shape {s}"),
            _ => format!("numpy.load accepts ({})", e["why"]),
        },
        _ => format!("numpy.load refuses: {}", e["error"].as_str().unwrap_or("?")),
    }
}

#[test]
fn corpus_is_complete() {
    let exp = expected();
    let mut files: Vec<String> = std::fs::read_dir(audit_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".npy"))
        .collect();
    files.sort();
    let listed: Vec<String> = exp.keys().cloned().collect();
    assert_eq!(files, listed, "fixtures/npy/audit and its expected.json differ: rerun scripts/make_npy_audit.py");
    assert!(exp.len() >= 300, "only {} cases", exp.len());
    for (name, e) in &exp {
        assert!(matches!(e["numpy"].as_str(), Some("accept" | "refuse")), "{name}: numpy {}", e["numpy"]);
        assert!(matches!(e["relu"].as_str(), Some("accept" | "refuse")), "{name}: relu {}", e["relu"]);
        if e["numpy"] == "refuse" {
            assert_eq!(e["relu"], "refuse", "{name}: relu must refuse what numpy.load refuses");
        }
    }
}

#[test]
fn relu_accepts_and_refuses_what_numpy_load_does() {
    let exp = expected();
    let mut failures = Vec::new();
    for (name, e) in &exp {
        let path = audit_dir().join(name);
        let p = path.to_str().unwrap();
        let want = e["relu"].as_str().unwrap();
        for cmd in ["inspect", "stats"] {
            let want_cmd =
                if cmd == "inspect" { e.get("inspect").and_then(Value::as_str).unwrap_or(want) } else { want };
            let (code, _, stderr) = common::relu(&[cmd, p], None);
            let problem = match (want_cmd, code) {
                ("accept", 0) | ("any", 0) => None,
                ("accept", _) => Some(format!("exit {code}, want 0: {}", stderr.trim())),
                ("refuse", 0) => Some("exit 0, want a refusal (exit 1)".to_string()),
                ("refuse" | "any", 1) => bad_refusal(cmd, p, &stderr),
                (_, _) => Some(format!("exit {code}: {}", stderr.trim())),
            };
            if let Some(why) = problem {
                failures.push(format!("{name}: relu {cmd}: {why}\n    {} [{}]", numpy_said(e), e["why"]));
            }
        }
        if want == "accept" {
            // The header as relu reads it is the array NumPy returns.
            let (code, out, _) = common::relu(&["inspect", "--json", p], None);
            if code == 0 {
                let got: Value = serde_json::from_slice(&out).unwrap();
                if got["dtype"] != e["dtype_name"] || got["shape"] != e["shape"] {
                    failures.push(format!(
                        "{name}: relu inspect --json: dtype {} shape {}\n    {}",
                        got["dtype"],
                        got["shape"],
                        numpy_said(e)
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements with numpy.load over {} cases:\n{}",
        failures.len(),
        exp.len(),
        failures.join("\n")
    );
}
