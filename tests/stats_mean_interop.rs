//! The mean against an exact reference (Python integers), for every dtype, across chunks (arrays
//! longer than a chunk), threads (`-j 1`, `-j 3`) and `merge-stats` of shards: at least as exact
//! as NumPy's (`np.mean(x, dtype=np.float64)`), and NumPy's own value where huge values cancel
//! (issue 20: `[1e300, -1e300, 1.7e308, -1.7e308, 3]` gave 3.58e288, NumPy 0.6; int64
//! `[-2**63, 2**63-1, 0, -1]` gave 0.0, NumPy -0.25). Values are as f64, as NumPy converts them.

mod common;

const SCRIPT: &str = r#"
import json
from fractions import Fraction

rng = np.random.default_rng(2020)

def exact(a):
    v = a.astype(np.float64).ravel()
    v = v[np.isfinite(v)]
    s = sum((Fraction(float(x)) for x in v), Fraction(0))
    return float(s / len(v))

def ulp(x):
    return float(np.spacing(np.abs(np.float64(x))))

def stats(path, *extra):
    return json.loads(run("stats", "--json", path, *extra))

def check_mean(name, a, want=None, of_std=0.0, sd=None, agree=True):
    """relu's mean within an ulp of the exact mean, or as close as NumPy's; `of_std`: or within
    that fraction of the std (ordinary float data, summed on the kernel's fast path)"""
    path = f"{D}/{name}.npy"
    np.save(path, a)
    ex = exact(a)
    f = a.astype(np.float64)
    with np.errstate(all="ignore"):
        npm = float(np.mean(f[np.isfinite(f)], dtype=np.float64))
        sd = float(np.std(f[np.isfinite(f)])) if sd is None else sd
    allowed = max(abs(npm - ex) if np.isfinite(npm) else 0.0, ulp(ex), of_std * sd if of_std else 0.0)
    means = []
    for j in ("1", "3"):
        m = stats(path, "-j", j)["mean"]
        means.append(m)
        check(f"{name} -j{j}: mean {m!r}, exact {ex!r}, numpy {npm!r}", abs(m - ex) <= allowed)
        if want is not None:
            check(f"{name} -j{j}: mean {m!r} is NumPy's {want!r}", m == want)
    if of_std == 0.0 and agree:
        check(f"{name}: -j1 and -j3 agree ({means})", means[0] == means[1])
    # shards, merged
    parts = np.array_split(a.ravel(), 3)
    files = []
    for k, p in enumerate(parts):
        sp = f"{D}/{name}_s{k}.npy"
        np.save(sp, p)
        sj = f"{D}/{name}_s{k}.json"
        open(sj, "wb").write(run("stats", "--json", sp))
        files.append(sj)
    m = json.loads(run("merge-stats", *files))["mean"]
    # a shard's mean is rounded once when it is written: what that loses is all a merge may lose
    lost = sum(len(p) * ulp(exact(p)) for p in parts) / a.size + (of_std * sd if of_std else 0.0)
    check(f"{name} merged: mean {m!r}, exact {ex!r}", abs(m - ex) <= lost + ulp(ex))
    kept = all(Fraction(exact(p)) * len(p) == sum(map(Fraction, p.astype(np.float64).tolist())) for p in parts)
    if want is not None and kept:
        check(f"{name} merged: mean {m!r} is NumPy's {want!r}", m == want)

# the issue's two examples, and them at every rotation
ex1 = np.array([1e300, -1e300, 1.7e308, -1.7e308, 3])
ex2 = np.array([-2**63, 2**63 - 1, 0, -1], dtype=np.int64)
for r in range(5):
    check_mean(f"ex1_r{r}", np.roll(ex1, r), want=0.6)
for r in range(4):
    check_mean(f"ex2_r{r}", np.roll(ex2, r), want=-0.25)
check_mean("ex2_u64", np.array([2**64 - 1, 0, 5, 2**63], dtype=np.uint64))

# longer than a chunk (32768 f64 elements): huge values that cancel across chunks and threads,
# among small ones
n = 100_003
small = rng.standard_normal(n)
big = rng.choice([1e300, 1.7e308, 3e200, 1e17], n) * rng.choice([-1, 1], n)
mixed = np.where(rng.random(n) < 0.3, big, small)
mixed = np.concatenate([mixed, -mixed[: n // 2]])  # cancel half of them, in another chunk
check_mean("mixed_f64", mixed)
# the small values are summed on the fast path where a thread starts among them: within 1e-15 of
# their std
check_mean("cancel_f64", np.concatenate([big, small, -big[::-1]]), of_std=1e-15, sd=1.0)
check_mean("int64_extremes", rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64, endpoint=True))
check_mean("uint64_extremes", rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True))
check_mean("int64_small", rng.integers(-1000, 1000, n, dtype=np.int64))
for dt in (np.int8, np.uint8, np.int16, np.int32, np.uint32):
    info = np.iinfo(dt)
    check_mean(f"{np.dtype(dt).name}_full", rng.integers(info.min, info.max, n, dtype=dt, endpoint=True))
# ordinary floats, summed on the kernel's fast path: offset data (NumPy loses digits there, the
# shift keeps them), centred data, and a relu's output (a third zeros), each as exact as NumPy's
# mean or within an ulp of the exact one (threads may round a last bit apart: the shift of a
# chunk is the mean of those before it)
check_mean("f64_offset", 1e8 + rng.standard_normal(n), agree=False)
check_mean("f64_centred", rng.standard_normal(n), agree=False)
check_mean("f32_centred", rng.standard_normal(n).astype(np.float32), agree=False)
check_mean("f32_offset", (1e3 + rng.standard_normal(n)).astype(np.float32), agree=False)
check_mean("f32_relu", np.maximum(rng.standard_normal(n) * 0.5 + 0.2, 0).astype(np.float32), agree=False)
check_mean("f16", rng.standard_normal(n).astype(np.float16), agree=False)
check_mean("f64_wide", rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n), agree=False)
# the README's fixture after relu: NumPy's mean and the exact one agree there
fx = np.maximum(np.load(os.path.join(os.environ["CARGO_MANIFEST_DIR"], "fixtures/oracle/mlp_healthy_layer1_pre.npy")), 0)
check_mean("readme_fixture", fx, want=exact(fx), agree=False)
"#;

#[test]
fn the_mean_is_exact_where_values_cancel_for_every_dtype() {
    let Some(py) = common::python() else { return };
    common::run_py_checks(py, SCRIPT, 110);
}
