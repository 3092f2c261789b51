//! `relu stats --json` against NumPy: random arrays (NaN and infinities mixed in, dead units forced
//! by making a unit's inputs negative) are written with `numpy.save` in C and Fortran order, and
//! NumPy computes the reference from the SPEC §4 definitions: relu(x) in float64 over finite values
//! (min, max, mean, population std), the counts, and the per-unit active counts
//! `(x > 0).sum(axis=every other axis)`. The binary's JSON must match: counts, min and max exactly,
//! mean and std to 1e-12 relative.
//!
//! Python: `common::python` — `$RELU_PYTHON`, else a venv under `target/` found or made. Without
//! one the tests fail, unless `RELU_SKIP_INTEROP=1` asks explicitly to skip them.

use assert_cmd::Command;
use serde_json::Value;
use std::fs;
use std::time::Duration;

mod common;
use common::python;

/// Shared by every generator. `case(name, x, args, act, axis, threshold)` saves `x` and its
/// reference; floats go into `cases.json` as their f64 bit patterns, so nothing is lost in decimal.
const PRELUDE: &str = r#"
import json, os, struct, sys
import numpy as np

D = sys.argv[1]
os.makedirs(f"{D}/in", exist_ok=True)
CASES = []
rng = np.random.default_rng(20240817)
np.seterr(all="ignore")


def bits(v):
    return None if v is None else struct.unpack("<Q", struct.pack("<d", float(v)))[0]


def sample(dt, shape, scale=1.0, offset=0.0, special_rate=0.002):
    """Random values of type dt with NaN, +-inf and +-0 mixed in at special_rate."""
    n = int(np.prod(shape, dtype=np.int64))
    v = (rng.standard_normal(n) * scale + offset).astype(dt)
    if special_rate:
        k = max(5, int(n * special_rate))
        where = rng.choice(n, size=min(k, n), replace=False)
        sp = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=dt)
        v[where] = sp[np.arange(where.size) % sp.size]
    return v.reshape(shape)


def kill(x, axis, units, value=-1.0):
    """Makes the given units dead: every input along `axis` at those indices is negative."""
    idx = [slice(None)] * x.ndim
    for u in units:
        idx[axis] = u
        x[tuple(idx)] = value
    return x


def reference(x, act, axis, threshold):
    xf = x.astype(np.float64)
    y = np.where(xf < 0, 0.0, xf) if act == "relu" else xf  # relu: NaN and -0 stay, -inf -> +0
    fin = y[np.isfinite(y)]
    r = dict(elements=int(x.size), zeros=int((y == 0).sum()), negative_inputs=int((xf < 0).sum()),
             nan=int(np.isnan(y).sum()), posinf=int((y == np.inf).sum()), neginf=int((y == -np.inf).sum()),
             finite=int(fin.size))
    if fin.size:
        r.update(min=bits(fin.min()), max=bits(fin.max()), mean=bits(fin.mean()), std=bits(fin.std(ddof=0)))
    else:
        r.update(min=None, max=None, mean=None, std=None)
    r["sparsity"] = bits(r["zeros"] / x.size) if x.size else None
    if x.ndim >= 2:
        ax = axis % x.ndim
        others = tuple(i for i in range(x.ndim) if i != ax)
        active = (xf > 0).sum(axis=others)
        m = x.size // x.shape[ax]
        r["units"] = dict(axis=ax, count=int(x.shape[ax]), elements_per_unit=int(m),
                          active_count=[int(c) for c in active],
                          dead_indices=[int(i) for i in np.flatnonzero(active == 0)],
                          near_dead=int((active / m < threshold).sum()) if m else 0)
    else:
        r["units"] = None
    return r


def layout(x, order):
    return np.asfortranarray(x) if order == "F" else np.ascontiguousarray(x)


def case(name, x, args=(), act="relu", axis=1, threshold=0.01):
    assert not any(c["name"] == name for c in CASES), name
    assert x.ndim < 2 or x.flags.f_contiguous == (name.endswith("_F")), name
    path = f"in/{name}.npy"
    np.save(f"{D}/{path}", x)
    args = list(args)
    if act:
        args = ["--act", act] + args
    CASES.append(dict(name=name, input=path, args=[str(a) for a in args], want=reference(x, act, axis, threshold),
                      threshold=threshold))


def finish():
    with open(f"{D}/cases.json", "w") as f:
        json.dump(CASES, f)
"#;

/// Reads a float key exactly as printed (`str::parse` rounds correctly; serde_json without its
/// `float_roundtrip` feature may not).
fn exact_f64(line: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let at = line.find(&pat).unwrap_or_else(|| panic!("no {key} in {line}")) + pat.len();
    let tok = line[at..].split([',', '}']).next().unwrap().trim();
    (tok != "null").then(|| tok.parse().unwrap_or_else(|e| panic!("{key}: {tok:?}: {e}")))
}

fn from_bits(v: &Value) -> Option<f64> {
    v.as_u64().map(f64::from_bits)
}

fn close(got: f64, want: f64) -> bool {
    got == want || (got - want).abs() <= 1e-12 * want.abs()
}

/// Every difference between relu's JSON line and NumPy's reference, as text.
fn compare(line: &str, want: &Value, threshold: f64) -> Vec<String> {
    let mut bad = Vec::new();
    let got: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return vec![format!("not JSON ({e}): {line}")],
    };
    for k in ["elements", "zeros", "negative_inputs", "nan", "posinf", "neginf", "finite"] {
        if got[k].as_u64() != want[k].as_u64() {
            bad.push(format!("{k}: relu {}, numpy {}", got[k], want[k]));
        }
    }
    for k in ["min", "max", "sparsity"] {
        let (g, w) = (exact_f64(line, k), from_bits(&want[k]));
        if g.map(f64::to_bits) != w.map(f64::to_bits) {
            bad.push(format!("{k}: relu {g:?}, numpy {w:?}"));
        }
    }
    for k in ["mean", "std"] {
        let (g, w) = (exact_f64(line, k), from_bits(&want[k]));
        let ok = match (g, w) {
            (Some(g), Some(w)) => close(g, w),
            (g, w) => g.is_none() && w.is_none(),
        };
        if !ok {
            bad.push(format!("{k}: relu {g:?}, numpy {w:?}"));
        }
    }
    let (gu, wu) = (&got["units"], &want["units"]);
    if wu.is_null() || gu.is_null() {
        if !(wu.is_null() && gu.is_null()) {
            bad.push(format!("units: relu {gu}, numpy {wu}"));
        }
        return bad;
    }
    for k in ["axis", "count", "elements_per_unit", "active_count", "dead_indices", "near_dead"] {
        if gu[k] != wu[k] {
            bad.push(format!("units.{k}: relu {}, numpy {}", gu[k], wu[k]));
        }
    }
    if gu["dead"].as_u64() != Some(wu["dead_indices"].as_array().unwrap().len() as u64) {
        bad.push(format!("units.dead: relu {}, numpy dead_indices {}", gu["dead"], wu["dead_indices"]));
    }
    if gu["threshold"].as_f64() != Some(threshold) {
        bad.push(format!("units.threshold: relu {}, want {threshold}", gu["threshold"]));
    }
    bad
}

/// Generates the cases with `gen` (after [`PRELUDE`]), runs `relu stats --json` on each with every
/// thread count in `threads`, and compares each object with NumPy's reference.
fn suite(name: &str, gen: &str, threads: &[&str]) {
    let Some(py) = python() else {
        eprintln!("SKIPPED stats_interop::{name}: RELU_SKIP_INTEROP=1");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let gen_py = dir.join("gen.py");
    fs::write(&gen_py, format!("{PRELUDE}\n{gen}\nfinish()\n")).unwrap();
    let o = std::process::Command::new(py)
        .arg(&gen_py)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    assert!(
        o.status.success(),
        "generator failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let cases: Vec<Value> = serde_json::from_str(&fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    assert!(!cases.is_empty(), "{name}: no cases");

    let mut failures = Vec::new();
    let mut runs = 0;
    for c in &cases {
        let case = c["name"].as_str().unwrap();
        let input = c["input"].as_str().unwrap();
        let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let threshold = c["threshold"].as_f64().unwrap();
        for j in threads {
            let o = Command::cargo_bin("relu")
                .unwrap()
                .current_dir(dir)
                .timeout(Duration::from_secs(120))
                .args(["stats", "--json", "-j", j])
                .args(&args)
                .arg(input)
                .output()
                .unwrap();
            runs += 1;
            let stderr = String::from_utf8_lossy(&o.stderr);
            let what = format!("{case} (relu stats --json -j {j} {} {input})", args.join(" "));
            if !o.status.success() || stderr.contains("panicked") {
                failures.push(format!("{what}: exit {:?}: {}", o.status.code(), stderr.trim()));
                continue;
            }
            let stdout = String::from_utf8_lossy(&o.stdout);
            let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.len() != 1 {
                failures.push(format!("{what}: want one JSON line, got {stdout}"));
                continue;
            }
            let bad = compare(lines[0], &c["want"], threshold);
            if !bad.is_empty() {
                failures.push(format!("{what}:\n    {}", bad.join("\n    ")));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {runs} runs differ from NumPy:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("stats_interop::{name}: {} cases, {runs} runs", cases.len());
}

#[test]
fn dense_and_conv_layouts_match_numpy() {
    suite(
        "dense_and_conv_layouts_match_numpy",
        r#"
for order in "CF":
    # dense (N, U): unit 3 dead, unit 7 fires rarely (near dead), default axis 1 and axis -1
    x = sample(np.float32, (2000, 16))
    kill(x, 1, [3])
    x[:, 7] = -np.abs(x[:, 7])
    x[:5, 7] = 1.0
    x = layout(x, order)
    case(f"dense_{order}", x)
    case(f"dense_axis_m1_{order}", x, ["--unit-axis", "-1"], axis=-1)
    case(f"dense_axis0_{order}", x, ["--unit-axis", "0"], axis=0)
    case(f"dense_thr_{order}", x, ["--dead-threshold", "0.05"], threshold=0.05)
    # NCHW: channels on axis 1; channel 2 dead
    x = layout(kill(sample(np.float32, (6, 5, 17, 19)), 1, [2]), order)
    case(f"nchw_{order}", x)
    case(f"nchw_axis_m1_{order}", x, ["--unit-axis", "-1"], axis=-1)
    # NHWC: channels last; channels 0 and 4 dead
    x = layout(kill(sample(np.float32, (6, 17, 19, 5)), 3, [0, 4]), order)
    case(f"nhwc_{order}", x, ["--unit-axis", "-1"], axis=-1)
    case(f"nhwc_axis1_{order}", x, ["--unit-axis", "1"], axis=1)
# big-endian data, 1-D, 0-d
x = layout(kill(sample(np.float32, (300, 9)), 1, [8]), "C").astype(">f4")
case("dense_be_C", x)
case("vector", sample(np.float32, (1001,)), axis=0)
case("scalar", np.array(-2.5, dtype=np.float32), axis=0)
"#,
        &["1", "2"],
    );
}

#[test]
fn values_without_act_and_every_float_type_match_numpy() {
    suite(
        "values_without_act_and_every_float_type_match_numpy",
        r#"
for dt in (np.float16, np.float32, np.float64):
    for order in "CF":
        x = layout(kill(sample(dt, (500, 12), scale=3.0, offset=0.5), 1, [1, 10], value=-0.25), order)
        n = np.dtype(dt).name
        case(f"{n}_relu_{order}", x)
        case(f"{n}_none_{order}", x, act=None)
# far from zero: the mean is large next to the std
x = layout(sample(np.float32, (40000, 3), scale=1.0, offset=1e4, special_rate=0), "C")
case("offset_none_C", x, act=None)
# no finite value after relu? relu(-inf) = 0 is finite; only NaN and +inf left
x = np.array([[np.nan, np.inf], [np.nan, np.nan]], dtype=np.float32)
case("no_finite_C", x)
case("no_finite_none_C", x, act=None)
"#,
        &["1", "2"],
    );
}

/// Arrays of many 64K-element chunks, split over one and two worker threads.
#[test]
fn large_arrays_match_numpy_on_one_and_two_threads() {
    suite(
        "large_arrays_match_numpy_on_one_and_two_threads",
        r#"
for order in "CF":
    x = layout(kill(sample(np.float32, (300_000, 4)), 1, [2]), order)
    case(f"dense_300k_{order}", x)
    x = layout(kill(sample(np.float32, (100_003, 7)), 1, [0, 5]), order)
    case(f"dense_odd_{order}", x)
    case(f"dense_odd_axis0_{order}", x, ["--unit-axis", "0"], axis=0)
    x = layout(kill(sample(np.float32, (16, 3, 127, 131)), 1, [1]), order)
    case(f"nchw_big_{order}", x)
    x = layout(kill(sample(np.float32, (16, 127, 131, 3)), 3, [2]), order)
    case(f"nhwc_big_{order}", x, ["--unit-axis", "-1"], axis=-1)
x = layout(kill(sample(np.float16, (200_000, 3), scale=2.0), 1, [1]), "F")
case("f16_big_F", x)
"#,
        &["1", "2"],
    );
}
