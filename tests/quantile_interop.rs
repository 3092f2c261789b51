//! `relu hist --range=pLO:pHI` against `numpy.percentile` (method "linear") over the finite values
//! as float64, and its counts against `numpy.histogram` with that range: f16, bf16 (safetensors),
//! f32, f64 and integer inputs, ±0, NaN and ±inf (left out), ties, one and two values, empty and
//! all-NaN arrays, several inputs sharing one range, stdin, an activation, mixed ends (`p1:5`),
//! and data whose buckets are too large to gather (the counting passes down to the last bit).
//! Edges must match bit for bit.
//!
//! Python: `common::python` (see `hist_interop.rs`).

use serde_json::Value;
use std::fs;

mod common;
use common::{python, relu};

const GEN: &str = r#"
import json, struct, sys
import numpy as np

D = sys.argv[1]
rng = np.random.default_rng(23)
cases = []

def bits(v):
    return struct.unpack("<Q", struct.pack("<d", float(v)))[0]

def end(e):
    return f"p{e[1]!r}" if e[0] == "p" else repr(e[1])

def case(name, xs, lo, hi, bins=10, act=None, jobs=None, stdin=False, values=None):
    """xs: arrays saved as .npy (or paths already written, with `values` their float64 values)."""
    paths, vals = [], []
    for i, x in enumerate(xs):
        if isinstance(x, str):
            paths.append(x)
            continue
        p = f"{D}/{name}_{i}.npy"
        np.save(p, x)
        paths.append(p)
        vals.append(x.astype(np.float64).ravel())
    if values is not None:
        vals = [values]
    v = np.concatenate(vals) if vals else np.zeros(0)
    if act == "relu":
        v = np.where(v < 0, 0.0, v)
    f = v[np.isfinite(v)]
    qs = [e[1] for e in (lo, hi) if e[0] == "p"]
    if f.size:
        got = list(np.percentile(f, qs)) if qs else []
    else:
        got = []
    def pick(e, none):
        if e[0] != "p":
            return e[1]
        return got.pop(0) if f.size else none
    a, b = pick(lo, 0.0), pick(hi, 1.0)
    # the first input's histogram (each input has its own, over the shared range)
    v = vals[0] if vals else np.zeros(0)
    if act == "relu":
        v = np.where(v < 0, 0.0, v)
    counts, edges = np.histogram(v[np.isfinite(v)], bins=bins, range=(a, b))
    args = ["hist", "--format", "json", "--bins", str(bins), f"--range={end(lo)}:{end(hi)}"]
    if act:
        args += ["--act", act]
    if jobs:
        args += ["-j", str(jobs)]
    args += ["-"] if stdin else paths
    cases.append({"name": name, "args": args, "stdin": paths[0] if stdin else None,
                  "counts": [int(c) for c in counts], "edges": [bits(e) for e in edges],
                  "underflow": int((v < a).sum()), "overflow": int((v > b).sum())})

P = lambda x: ("p", x)
A = lambda x: ("a", x)
normal = rng.standard_normal(100_003)
case("f32", [normal.astype(np.float32)], P(0.5), P(99.5), 17)
case("f32_j3", [normal.astype(np.float32)], P(0.1), P(99.9), 17, jobs=3)
case("f64", [normal * 1e3], P(1), P(99), 30)
case("f16", [(normal * 4).astype(np.float16)], P(2.5), P(97.5), 9)
case("i32", [rng.integers(-1000, 1000, 77_777).astype(np.int32)], P(0.5), P(99.5))
case("u8_ties", [rng.integers(0, 4, 5000).astype(np.uint8)], P(10), P(90), 4)
case("i64_big", [np.array([2**60, 2**60 + 1, -(2**62), 3, 2**53 + 1, 7], dtype=np.int64)], P(20), P(80), 3)
special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, -0.0, 1.5, -2.5, np.nan, 3.25, 0.0])
case("specials", [special], P(0), P(100), 5)
case("specials_mid", [special], P(30), P(70), 5)
case("zeros_signed", [np.array([-0.0, -0.0, -0.0])], P(25), P(75), 2)
case("one", [np.array([3.5], dtype=np.float32)], P(1), P(99), 3)
case("two", [np.array([-4.898619485211566, 5.275492379532281])], P(0), P(50), 3)
case("empty", [np.zeros((0, 4), dtype=np.float32)], P(1), P(99), 4)
case("all_nan", [np.array([np.nan, np.inf])], P(1), P(99), 4)
case("mixed_hi", [normal], P(1), A(5.0), 8)
case("mixed_lo", [normal], A(-5.0), P(99.9), 8)
case("relu", [normal.astype(np.float32)], P(5), P(99), 12, act="relu")
case("several", [normal[:500].astype(np.float32), (normal[500:2000] * 3), rng.integers(-9, 9, 300).astype(np.int16)], P(0.5), P(99.5), 7)
case("stdin", [normal[:3000]], P(2), P(98), 6, stdin=True)
# more equal keys than the passes gather: counted down to the last 16 bits
ties = np.repeat(np.array([1.0, 1.0 + 2**-52, 1.0 + 2**-40, -7.0]), 700_000)
rng.shuffle(ties)
case("big_ties", [ties], P(10), P(60), 5)
# bf16 in a safetensors file: the upper 16 bits of float32
b16 = (rng.standard_normal(4001).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
b16[7] = 0x7FC0  # NaN
b16[9] = 0xFF80  # -inf
head = json.dumps({"x": {"dtype": "BF16", "shape": [4001], "data_offsets": [0, 2 * 4001]}}).encode()
path = f"{D}/bf16.safetensors"
open(path, "wb").write(struct.pack("<Q", len(head)) + head + b16.tobytes())
case("bf16", [path], P(0.5), P(99.5), 11, values=(b16.astype(np.uint32) << 16).view(np.float32).astype(np.float64))
json.dump(cases, open(f"{D}/cases.json", "w"))
"#;

#[test]
fn percentile_ranges_match_numpy() {
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
        let stdin = c["stdin"].as_str().map(|p| fs::read(p).unwrap());
        let (code, out, err) = relu(&args, stdin);
        assert_eq!(code, 0, "{name}: {err}");
        let j: Value = serde_json::from_slice(out.split(|&b| b == b'\n').next().unwrap()).unwrap();
        let edges: Vec<u64> = j["edges"].as_array().unwrap().iter().map(|e| e.as_f64().unwrap().to_bits()).collect();
        let want: Vec<u64> = c["edges"].as_array().unwrap().iter().map(|e| e.as_u64().unwrap()).collect();
        assert_eq!(edges, want, "{name}: edges");
        assert_eq!(j["counts"], c["counts"], "{name}: counts");
        assert_eq!(j["underflow"], c["underflow"], "{name}: underflow");
        assert_eq!(j["overflow"], c["overflow"], "{name}: overflow");
    }
}

#[test]
fn percentile_ranges_refused_where_they_do_not_belong() {
    // statistics merge only with equal edges: a range from the data is refused there
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    let mut b = relu::format::npy::write_header(relu::dtype::DType::F32, false, &[4]);
    for v in [1.0f32, 2.0, 3.0, 4.0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    fs::write(&x, b).unwrap();
    let x = x.to_str().unwrap();
    let (code, _, err) = relu(&["stats", "--bins", "4", "--range=p1:p99", x], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("percentile"), "{err}");
    for bad in ["--range=p101:p2", "--range=p1:px", "--range=p1"] {
        let (code, _, err) = relu(&["hist", bad, x], None);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("range"), "{bad}: {err}");
    }
    // a percentile above the other end: an empty range, a usage error naming --range
    let (code, _, err) = relu(&["hist", "--range=p90:1.5", x], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--range"), "{err}");
}
