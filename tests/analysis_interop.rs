//! SPEC §7's statistics read back with NumPy: `stats --quantiles` bit-equal to `numpy.quantile`
//! (f16, bf16, f32, f64, integers; odd sizes, ties, NaN and ±inf left out, containers, threads,
//! an activation, more equal keys than the passes gather); the kurtosis against NumPy's formula
//! for scipy's; per-unit absmax/min/max/mean, outliers and ReDo's dormant units for dense, NCHW
//! and Fortran-ordered arrays, and `--unit-vectors` in its three formats; `merge-stats` of shards
//! against one pass; the refusals.
//!
//! Python: `common::python` (see `hist_interop.rs`).

mod common;
use common::{python, relu, run_py_checks};

const QUANTILES: &str = r#"
import json, struct
rng = np.random.default_rng(25)
QS = [0.0, 0.001, 0.25, 0.5, 0.75, 0.999, 1.0]
QARG = "0,0.001,0.25,0.5,0.75,0.999,1"

def kurt(v):
    m = v.mean()
    m2, m4 = ((v - m) ** 2).mean(), ((v - m) ** 4).mean()
    return m4 / m2 ** 2 - 3.0

def close(a, b, rel=1e-10):
    return a is not None and abs(a - b) <= rel * max(1.0, abs(b))

def stats(*args):
    return [json.loads(l) for l in run("stats", "--json", *args).splitlines()]

def quantiles_case(name, path, values, *extra):
    f = values[np.isfinite(values)].astype(np.float64)
    for j in stats("--quantiles", QARG, *extra, path):
        q = j["quantiles"]
        if f.size == 0:
            check(f"{name}: null quantiles without finite values", all(v is None for v in q.values()))
            check(f"{name}: null kurtosis", j["kurtosis"] is None)
            continue
        want = np.quantile(f, QS)
        got = [q[k] for k in QARG.split(",")]
        check(f"{name}: keys as given", list(q) == QARG.split(","))
        check(f"{name}: quantiles bit-equal {got} vs {list(want)}",
              all(struct.pack("<d", g) == struct.pack("<d", float(w)) for g, w in zip(got, want)))
        if f.size < 2 or f.min() == f.max():
            check(f"{name}: null kurtosis", j["kurtosis"] is None)
        else:
            check(f"{name}: kurtosis {j['kurtosis']} vs {kurt(f)}", close(j["kurtosis"], kurt(f)))

def npy(name, x):
    p = f"{D}/{name}.npy"
    np.save(p, x)
    return p

normal = rng.standard_normal(200_003)
cases = {
    "f32": normal.astype(np.float32),
    "f64_specials": np.concatenate([normal[:7001] * 1e3, [np.nan, np.inf, -np.inf, -0.0, 0.0]]),
    "f16": (normal[:5001] * 3).astype(np.float16),
    "i16": rng.integers(-300, 300, 4099).astype(np.int16),
    "u8_ties": rng.integers(0, 3, 1001).astype(np.uint8),
    "i64_big": np.array([2**60, 2**60 + 1, -(2**62), 3, 2**53 + 1, 7], dtype=np.int64),
    "one": np.array([2.5], dtype=np.float32),
    "two": np.array([-1.0, 4.0]),
    "three_nan": np.array([np.nan, 1.0, np.nan, -3.0, 8.0], dtype=np.float32),
    "constant": np.full(33, 1.25, dtype=np.float32),
    "all_nan": np.array([np.nan, np.inf]),
    "t3_2d": rng.standard_t(3, (3001, 7)).astype(np.float32),
    "sorted": np.sort(normal),
}
for name, x in cases.items():
    quantiles_case(name, npy(name, x), x.ravel())
quantiles_case("f32 -j 3", npy("f32_j", cases["f32"]), cases["f32"], "-j", "3")
quantiles_case("relu", npy("relu", cases["f32"]), np.maximum(cases["f32"], 0), "--act", "relu")
# more equal keys than the passes gather: counted down to the last 16 bits
ties = np.repeat(np.array([1.0, 1.0 + 2**-52, 1.0 + 2**-40, -7.0]), 700_000)
rng.shuffle(ties)
quantiles_case("big ties", npy("ties", ties), ties)
# a container: each member's own passes
np.savez(f"{D}/two.npz", a=cases["f16"], b=cases["i16"])
got = stats("--quantiles", "0.5,0.9", f"{D}/two.npz")
for j, x in zip(got, [cases["f16"], cases["i16"]]):
    want = np.quantile(x.astype(np.float64), [0.5, 0.9])
    check(f"npz {j['name']}: per-member quantiles", [j["quantiles"]["0.5"], j["quantiles"]["0.9"]] == list(want))
check("npz: two objects", len(got) == 2)
# bf16 in a safetensors file: the upper 16 bits of float32
b16 = (normal[:4001].astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
b16[7] = 0x7FC0
head = json.dumps({"x": {"dtype": "BF16", "shape": [4001], "data_offsets": [0, 2 * 4001]}}).encode()
open(f"{D}/bf16.safetensors", "wb").write(struct.pack("<Q", len(head)) + head + b16.tobytes())
quantiles_case("bf16", f"{D}/bf16.safetensors:x", (b16.astype(np.uint32) << 16).view(np.float32).astype(np.float64))
"#;

#[test]
fn quantiles_and_kurtosis_match_numpy() {
    let Some(py) = python() else {
        eprintln!("SKIPPED: RELU_SKIP_INTEROP=1");
        return;
    };
    run_py_checks(py, QUANTILES, 45);
}

const UNITS: &str = r#"
import json
rng = np.random.default_rng(26)

def close(a, b, rel=1e-12):
    return a is not None and abs(a - b) <= rel * max(1.0, abs(b))

def stats(*args):
    return [json.loads(l) for l in run("stats", "--json", *args).splitlines()]

def expect(name, y, axis, tau=0.1, thr=6.0):
    """The per-unit values numpy gives for output y (float64 view of the values) along axis."""
    u = np.moveaxis(y.astype(np.float64), axis, 0).reshape(y.shape[axis], -1)
    fin = np.isfinite(u)
    z = np.where(fin, u, 0.0)
    n = fin.sum(1)
    has = n > 0
    mn = np.where(fin, u, np.inf).min(1)
    mx = np.where(fin, u, -np.inf).max(1)
    mean = np.where(has, z.sum(1) / np.maximum(n, 1), 0)
    mabs = np.where(has, np.abs(z).sum(1) / np.maximum(n, 1), 0)
    absmax = np.maximum(np.abs(mn), np.abs(mx))
    nul = lambda v: [float(a) if h else None for a, h in zip(v, has)]
    s = mabs[has] / mabs[has].mean()
    dormant = [int(i) for i, k in zip(np.flatnonzero(has), s) if k <= tau]
    return {"absmax": nul(absmax), "min": nul(mn), "max": nul(mx), "mean": nul(mean), "mean_abs": nul(mabs),
            "finite_count": [int(v) for v in n], "outliers": [int(i) for i in np.flatnonzero(has & (absmax > thr))],
            "dormant_indices": dormant}

def compare(name, got, want):
    for k in ["absmax", "min", "max", "finite_count", "outliers", "dormant_indices"]:
        check(f"{name}: {k} {got.get(k)} vs {want[k]}", got.get(k) == want[k])
    for k in ["mean", "mean_abs"]:
        ok = all((g is None) == (w is None) and (g is None or close(g, w)) for g, w in zip(got[k], want[k]))
        check(f"{name}: {k}", ok and len(got[k]) == len(want[k]))
    check(f"{name}: dormant count", got["dormant"] == len(want["dormant_indices"]))

dense = rng.standard_normal((500, 12)).astype(np.float32)
dense[:, 3] *= 9.0
dense[:, 7] = np.abs(dense[:, 7]) * 0.001
dense[:, 5] = -np.abs(dense[:, 5])
dense[4, 2] = np.nan
dense[:, 9] = np.nan
np.save(f"{D}/dense.npy", dense)
for j in ["1", "3"]:
    u = stats("--act", "relu", "--dormant-tau", "0.1", "-j", j, f"{D}/dense.npy")[0]["units"]
    compare(f"dense relu -j {j}", u, expect("dense", np.maximum(dense, 0), 1))
u = stats("--dormant-tau", "0.1", "--outlier-threshold", "2.5", f"{D}/dense.npy")[0]["units"]
compare("dense none", u, expect("dense", dense, 1, thr=2.5))
# NCHW: runs of H*W values per channel, and channels last
conv = (rng.standard_normal((6, 5, 7, 3)) * np.array([1, 8, 0.01, 1, 2]).reshape(1, 5, 1, 1)).astype(np.float16)
np.save(f"{D}/conv.npy", conv)
compare("nchw f16", stats("--dormant-tau", "0.1", f"{D}/conv.npy")[0]["units"], expect("conv", conv, 1))
compare("nhwc f16", stats("--unit-axis", "-1", "--dormant-tau", "0.1", f"{D}/conv.npy")[0]["units"], expect("conv", conv, 3))
fort = np.asfortranarray(rng.standard_normal((40, 6)) * 3)
np.save(f"{D}/fort.npy", fort)
compare("fortran f64", stats("--act", "relu", "--dormant-tau", "0.1", f"{D}/fort.npy")[0]["units"], expect("fort", np.maximum(fort, 0), 1))
ints = rng.integers(-20, 20, (300, 5)).astype(np.int32)
np.save(f"{D}/ints.npy", ints)
compare("int32 relu", stats("--act", "relu", "--dormant-tau", "0.1", f"{D}/ints.npy")[0]["units"], expect("ints", np.maximum(ints, 0), 1))
# --unit-vectors: .npy (4, U), .safetensors and .json by name
run("stats", "--act", "relu", "--unit-vectors", f"{D}/uv.npy", f"{D}/dense.npy")
w = expect("dense", np.maximum(dense, 0), 1)
uv = np.load(f"{D}/uv.npy")
nan = lambda v: np.array([np.nan if a is None else a for a in v])
check("uv.npy shape", uv.shape == (4, 12) and uv.dtype == np.float64)
check("uv.npy rows", all(np.array_equal(uv[i], nan(w[k]), equal_nan=True) for i, k in enumerate(["absmax", "min", "max"])))
check("uv.npy mean", np.allclose(uv[3], nan(w["mean"]), rtol=1e-12, equal_nan=True))
from safetensors.numpy import load_file
run("stats", "--act", "relu", "--unit-vectors", f"{D}/uv.safetensors", f"{D}/dense.npy")
st = load_file(f"{D}/uv.safetensors")
check("uv.safetensors names", sorted(st) == ["absmax", "max", "mean", "min"])
check("uv.safetensors absmax", np.array_equal(st["absmax"], uv[0], equal_nan=True))
run("stats", "--act", "relu", "--unit-vectors", f"{D}/uv.json", f"{D}/dense.npy")
js = json.load(open(f"{D}/uv.json"))
check("uv.json", js["absmax"] == w["absmax"] and js["max"] == w["max"])
# merge of shards equals one pass: kurtosis, per-unit values, dormant units
x = rng.standard_t(4, (3000, 8)).astype(np.float32)
x[:, 2] *= 20
np.save(f"{D}/whole.npy", x)
whole = stats("--act", "relu", "--dormant-tau", "0.2", f"{D}/whole.npy")[0]
files = []
for i, part in enumerate(np.array_split(x, 3)):
    np.save(f"{D}/part{i}.npy", part)
    open(f"{D}/part{i}.json", "wb").write(run("stats", "--json", "--act", "relu", "--dormant-tau", "0.2", f"{D}/part{i}.npy"))
    files.append(f"{D}/part{i}.json")
m = json.loads(run("merge-stats", *files))
check(f"merged kurtosis {m['kurtosis']} vs {whole['kurtosis']}", close(m["kurtosis"], whole["kurtosis"], 1e-10))
check("merged m4", close(m["m4"], whole["m4"], 1e-10) and close(m["m3"], whole["m3"], 1e-8))
for k in ["absmax", "min", "max", "finite_count", "outliers", "dormant_indices", "dormant"]:
    check(f"merged units {k}", m["units"][k] == whole["units"][k])
check("merged unit means", all(close(a, b) for a, b in zip(m["units"]["mean"], whole["units"]["mean"])))
"#;

#[test]
fn unit_vectors_outliers_and_dormant_units_match_numpy() {
    let Some(py) = python() else {
        eprintln!("SKIPPED: RELU_SKIP_INTEROP=1");
        return;
    };
    run_py_checks(py, UNITS, 60);
}

#[test]
fn quantiles_merge_to_bounds_and_stdin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let mut parts = Vec::new();
    for (i, vals) in [[-3.0f32, 0.5, 1.0, 2.0], [7.0, -1.0, 0.25, 0.0]].iter().enumerate() {
        let mut b = relu::format::npy::write_header(relu::dtype::DType::F32, false, &[4]);
        vals.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
        std::fs::write(d(&format!("p{i}.npy")), &b).unwrap();
        let (code, out, err) = relu(
            &["stats", "--json", "--quantiles", "0.5", "--bins", "4", "--range=-2:2", &d(&format!("p{i}.npy"))],
            None,
        );
        assert_eq!(code, 0, "{err}");
        std::fs::write(d(&format!("p{i}.json")), &out).unwrap();
        parts.push(d(&format!("p{i}.json")));
    }
    let (code, out, err) = relu(&["merge-stats", &parts[0], &parts[1]], None);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    // the 8 values sorted: -3 -1 0 0.25 0.5 1 2 7; the median 0.375 lies in bins [0, 1) and [0, 1)
    assert_eq!(j["quantile_bounds"]["0.5"], serde_json::json!([0.0, 1.0]), "{j}");
    assert!(j.get("quantiles").is_none(), "{j}");
    // without histograms: dropped, with a note
    let (_, out, _) = relu(&["stats", "--json", "--quantiles", "0.5", &d("p0.npy")], None);
    std::fs::write(d("q.json"), &out).unwrap();
    let (code, out, err) = relu(&["merge-stats", &d("q.json"), &d("q.json")], None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("quantiles") && err.contains("left out"), "{err}");
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(j.get("quantile_bounds").is_none() && j.get("quantiles").is_none(), "{j}");
    // the selection reads the data again: stdin is refused, exit 2
    let (code, _, err) = relu(&["stats", "--quantiles", "0.5", "-"], Some(std::fs::read(d("p0.npy")).unwrap()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--quantiles") && err.contains("<stdin>"), "{err}");
    for bad in ["1.5", "x", "-0.1"] {
        let (code, _, err) = relu(&["stats", "--quantiles", bad, &d("p0.npy")], None);
        assert_eq!(code, 2, "{bad}: {err}");
    }
    // per-unit vectors need units
    let (code, _, err) = relu(&["stats", "--unit-vectors", &d("v.npy"), &d("p0.npy")], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no units"), "{err}");
}
