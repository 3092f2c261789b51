//! `relu hist --format json` against `numpy.histogram` on the values converted to float64: random
//! and adversarial data (values exactly on edges and one ulp either side, edges float64 cannot
//! represent, huge and tiny ranges, subnormals, all-equal data, empty arrays, f16/f32/f64/integer
//! inputs, NaN and ±inf). Counts, outside counts and edges must match bit for bit; ranges NumPy
//! refuses must be refused.
//!
//! Python: `common::python` — `$RELU_PYTHON`, else a venv under `target/` found or made. Without
//! one the tests fail, unless `RELU_SKIP_INTEROP=1` asks explicitly to skip them.

use serde_json::Value;
use std::fs;

mod common;
use common::{python, relu};

const GEN: &str = r#"
import json, struct, sys
import numpy as np

D = sys.argv[1]
rng = np.random.default_rng(77)
np.seterr(all="ignore")
cases = []

def bits(v):
    return struct.unpack("<Q", struct.pack("<d", float(v)))[0]

def case(name, x, bins, rng_=None, act=None):
    path = f"{D}/{name}.npy"
    np.save(path, x)
    v = x.astype(np.float64)
    if act == "relu":
        v = np.where(v < 0, 0.0, v)  # relu keeps NaN and -0
    args = ["hist", path, "--format", "json", "--bins", str(bins)]
    if act:
        args += ["--act", act]
    if rng_ is not None:
        args.append(f"--range={rng_[0]!r}:{rng_[1]!r}")
        lo, hi = rng_
        under, over = int((v < lo).sum()), int((v > hi).sum())
        data = v
    else:
        f = v[np.isfinite(v)]
        lo, hi = (f.min(), f.max()) if f.size else (0.0, 1.0)
        under, over = int((v == -np.inf).sum()), int((v == np.inf).sum())
        data = f
    try:
        counts, edges = np.histogram(data, bins=bins, range=(lo, hi))
        want = {"counts": [int(c) for c in counts], "edges": [bits(e) for e in edges],
                "underflow": under, "overflow": over, "nan": int(np.isnan(v).sum())}
    except ValueError:
        want = None
    cases.append({"name": name, "args": args, "want": want, "explicit": rng_ is not None})

normal = rng.standard_normal(20000)
case("f32_auto", normal.astype(np.float32), 30)
case("f32_relu_auto", normal.astype(np.float32), 17, act="relu")
case("f64_many_bins", normal, 1000)
case("f64_range", normal, 13, (-1.5, 2.25))
e = np.linspace(-2.0, 2.0, 9)
near = np.concatenate([e, np.nextafter(e, -np.inf), np.nextafter(e, np.inf), [np.nan, np.inf, -np.inf, -0.0]])
case("on_edges", near, 8, (-2.0, 2.0))
tenth = np.linspace(0.0, 1.0, 11)
vals = np.concatenate([tenth, np.nextafter(tenth, 2), np.nextafter(tenth, -1), np.arange(0, 1.0001, 0.1), [0.3, 0.7, 0.9]])
case("tenths", vals, 10, (0.0, 1.0))
case("thirds", np.arange(0, 1, 1 / 3.0), 3, (0.0, 1.0))
case("huge", rng.uniform(-1e300, 1e300, 5000), 7, (-1e300, 1e300))
case("tiny_subnormal", np.array([0.0, 5e-324, 1e-310, 2e-310, 2.5e-310, 3e-310, 4e-310]), 5, (1e-310, 3e-310))
case("ulp_range", np.array([1.0, 1.0 + 2**-52, 1.0 + 2**-51, 1.0 + 3 * 2**-52, 1.0 + 4 * 2**-52]), 4, (1.0, 1.0 + 4 * 2**-52))
case("all_equal", np.full(100, 5.0, dtype=np.float32), 6)
case("all_equal_zero", np.zeros(10), 4)
case("empty", np.zeros((0, 3), dtype=np.float32), 5)
case("nan_only", np.array([np.nan, np.inf, -np.inf]), 5)
case("f16", (normal * 3).astype(np.float16), 25)
case("f16_range", (normal * 3).astype(np.float16), 9, (-2.0, 3.0))
case("i16", rng.integers(-300, 300, 5000).astype(np.int16), 11)
case("u8", rng.integers(0, 256, 5000).astype(np.uint8), 16, (0.0, 255.0))
case("i64_big", np.array([2**60, 2**60 + 1, -(2**62), 3, 2**53 + 1], dtype=np.int64), 5)
case("f32_2d", rng.standard_normal((300, 40)).astype(np.float32), 30, (-3.0, 3.0), act="relu")
e32 = np.linspace(-2.2, 3.3, 12).astype(np.float32)
v32 = np.concatenate([e32, np.nextafter(e32, np.float32(-np.inf)), np.nextafter(e32, np.float32(np.inf)),
                      rng.uniform(-3, 4, 3000).astype(np.float32)]).astype(np.float32)
case("f32_near_edges", v32, 11, (-2.2, 3.3))
case("f32_near_edges_many", v32, 997, (-2.2, 3.3))
case("f32_near_edges_auto", v32, 11)
case("f16_near_edges", v32.astype(np.float16), 7, (-2.2, 3.3))
case("f32_offset", (rng.standard_normal(5000) * 1e-3 + 1e4).astype(np.float32), 50)
case("neg_zero_range", np.array([-0.0, 0.0, 1.0]), 2, (-0.0, 1.0))
case("too_many_bins", np.array([1.0]), 3, (1.0, 1.0 + 2**-52))
case("width_overflow", np.array([0.0]), 3, (-1e308, 1e308))
case("auto_width_overflow", np.array([-1e308, 1e308]), 3)
case("auto_equal_huge", np.array([1e20, 1e20]), 3)
json.dump(cases, open(f"{D}/cases.json", "w"))
"#;

#[test]
fn counts_match_numpy_histogram() {
    let Some(py) = python() else {
        eprintln!("SKIPPED: RELU_SKIP_INTEROP=1");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = std::process::Command::new(py).args(["-c", GEN, d]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cases: Vec<Value> = serde_json::from_str(&fs::read_to_string(dir.path().join("cases.json")).unwrap()).unwrap();
    assert!(cases.len() > 20);
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let (code, out, err) = relu(&args, None);
        if c["want"].is_null() {
            // NumPy refuses the range: relu too, as a usage error for --range, a data error otherwise
            let want = if c["explicit"].as_bool().unwrap() { 2 } else { 1 };
            assert_eq!(code, want, "{name}: NumPy refuses this range; relu exited {code}: {err}");
            assert_eq!(err.lines().count(), 1, "{name}: {err}");
            continue;
        }
        assert_eq!(code, 0, "{name}: {err}");
        let j: Value = serde_json::from_slice(out.split(|&b| b == b'\n').next().unwrap()).unwrap();
        let w = &c["want"];
        assert_eq!(j["counts"], w["counts"], "{name}: counts");
        for k in ["underflow", "overflow", "nan"] {
            assert_eq!(j[k], w[k], "{name}: {k}");
        }
        let edges: Vec<u64> = j["edges"].as_array().unwrap().iter().map(|e| e.as_f64().unwrap().to_bits()).collect();
        let want: Vec<u64> = w["edges"].as_array().unwrap().iter().map(|e| e.as_u64().unwrap()).collect();
        assert_eq!(edges, want, "{name}: edges");
    }
}

#[test]
fn svg_parses_as_xml() {
    let Some(py) = python() else {
        eprintln!("SKIPPED: RELU_SKIP_INTEROP=1");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    let mut b = relu::format::npy::write_header(relu::dtype::DType::F32, false, &[200, 4]);
    for i in 0..800 {
        b.extend_from_slice(&((i % 37) as f32 / 9.0 - 2.0).to_le_bytes());
    }
    fs::write(&x, b).unwrap();
    let x = x.to_str().unwrap();
    for view in [&[][..], &["--ridge"][..], &["--active-rate"][..]] {
        let svg = dir.path().join("h.svg");
        let mut args = vec!["hist", x, x, "--act", "relu", "-o", svg.to_str().unwrap()];
        args.extend(view);
        let (code, _, err) = relu(&args, None);
        assert_eq!(code, 0, "{err}");
        let o = std::process::Command::new(py)
            .args([
                "-c",
                "import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); assert d.documentElement.tagName == 'svg'",
                svg.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{view:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}
