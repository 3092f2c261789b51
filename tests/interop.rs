//! Interop with NumPy: arrays written by `numpy.save` go through the `relu` binary, and
//! `numpy.load(..., allow_pickle=False)` reads the outputs back; each is compared bit for bit with a
//! reference NumPy computes with PyTorch's semantics (SPEC §2).
//!
//! Each test is a suite: a generator script (Python) writes inputs and reference outputs into a
//! temporary directory with a `cases.json` list, this file runs `relu apply` on every case, then a
//! checker script loads every output with NumPy and compares.
//!
//! Python: `common::python` — `$RELU_PYTHON`, else a venv under `target/` found or made (`python3 -m
//! venv`, `pip install numpy pandas safetensors`). Without one the tests fail, unless
//! `RELU_SKIP_INTEROP=1` asks explicitly to skip them.

use assert_cmd::Command;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::time::Duration;

mod common;
use common::python;

/// Shared by every generator: helpers to save inputs, references and cases.
const PRELUDE: &str = r#"
import json, os, sys
import numpy as np

D = sys.argv[1]
os.makedirs(f"{D}/in", exist_ok=True)
os.makedirs(f"{D}/want", exist_ok=True)
CASES = []
rng = np.random.default_rng(20240601)
np.seterr(all="ignore")

UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}
SPECIAL_BITS = {
    # NaNs (quiet, signalling, both signs, payloads), subnormals, +-0, +-inf, +-max, +-1
    2: [0x7E01, 0xFE01, 0x7C01, 0xFC10, 0x7FFF, 0x0001, 0x8001, 0x03FF, 0x83FF, 0x0000, 0x8000,
        0x7C00, 0xFC00, 0x7BFF, 0xFBFF, 0x3C00, 0xBC00],
    4: [0x7FC00001, 0xFFC12345, 0x7F800001, 0xFF800100, 0x7FFFFFFF, 0x00000001, 0x80000001,
        0x007FFFFF, 0x807FFFFF, 0, 0x80000000, 0x7F800000, 0xFF800000, 0x7F7FFFFF, 0xFF7FFFFF,
        0x3F800000, 0xBF800000],
    8: [0x7FF8000000000001, 0xFFF80000DEADBEEF, 0x7FF0000000000001, 0xFFF0000000010000,
        0x7FFFFFFFFFFFFFFF, 0x0000000000000001, 0x8000000000000001, 0x000FFFFFFFFFFFFF,
        0x800FFFFFFFFFFFFF, 0, 0x8000000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
        0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0x3FF0000000000000, 0xBFF0000000000000],
}
FLOATS = (np.float16, np.float32, np.float64)
INTS = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)


def native(a):
    return a.astype(a.dtype.newbyteorder("="), copy=False)


def specials(dt):
    dt = np.dtype(dt)
    return np.array(SPECIAL_BITS[dt.itemsize], dtype=UINT[dt.itemsize]).view(dt)


def sample(dt, shape, scale=3.0, with_specials=True):
    """Random values of type dt, with the special values at the start and in the middle."""
    n = int(np.prod(shape, dtype=np.int64))
    v = (rng.standard_normal(n) * scale).astype(dt)
    if with_specials and n:
        sp = specials(dt)
        k = min(n, len(sp))
        v[:k] = sp[:k]
        if n >= 3 * len(sp):
            v[n // 2:n // 2 + len(sp)] = sp[::-1]
    return v.reshape(shape)


def layout(x, byteorder="=", order="C"):
    """x with the given byte order and memory order (np.save writes fortran_order for 'F')."""
    x = x.astype(x.dtype.newbyteorder(byteorder))
    if order == "F" and x.ndim >= 2:
        return np.asfortranarray(x)
    return np.ascontiguousarray(x)


def tag(x):
    o = {"<": "le", ">": "be", "=": "le", "|": "na"}[x.dtype.byteorder]
    shape = "x".join(map(str, x.shape)) or "scalar"
    f = "F" if x.ndim >= 2 and x.flags.f_contiguous and not x.flags.c_contiguous else "C"
    return f"{x.dtype.name}_{o}_{f}_{shape}"


def save(name, a):
    p = f"in/{name}.npy"
    np.save(f"{D}/{p}", a)
    return p


def case(name, x, args, want, exact_nan=False, stdin=False):
    """relu apply x ARGS must equal want; exact_nan: NaN payloads must match too."""
    assert not any(c["name"] == name for c in CASES), name
    src = save(name, x) if not isinstance(x, str) else x
    w = f"want/{name}.npy"
    np.save(f"{D}/{w}", want)
    CASES.append(dict(name=name, input=src, args=[str(a) for a in args], want=w,
                      output=f"out/{name}.npy", exact_nan=exact_nan, stdin=stdin))


def work_type(dt):
    """f64 for f64 inputs (of either byte order), f32 for f16 and f32."""
    return np.float64 if np.dtype(dt).itemsize == 8 else np.float32


def relu_ref(x):
    x = native(x)
    if x.dtype.kind != "f":
        return np.where(x < 0, 0, x).astype(x.dtype)
    r = np.array(np.where(x < 0, x.dtype.type(0), x))
    if x.dtype == np.float16:  # PyTorch's f16 -> f32 -> f16 round trip leaves NaNs quiet
        u = r.view(np.uint16)
        u[np.isnan(r)] |= 0x0200
    return r


def slopes(alpha, x, axis):
    """PReLU weights: rounded to the input's type, then widened to the working type, broadcast."""
    a = np.asarray(alpha, dtype=np.float64).astype(native(x).dtype).astype(work_type(x.dtype))
    if a.size == 1 or x.ndim == 0:
        return a.reshape(())
    shape = [1] * x.ndim
    shape[axis] = -1
    return a.reshape(shape)


def leaky_ref(x, a):
    """x > 0 ? x : x*a in the working type (f32 for f16), rounded once to x's type."""
    x = native(x)
    w = x.astype(work_type(x.dtype))
    a = a if isinstance(a, np.ndarray) else work_type(x.dtype)(a)
    return np.array(np.where(w > 0, w, w * a)).astype(x.dtype)


def grad_ref(x, g, of, a=None):
    x, g = native(x), native(g)
    if of == "relu":
        return np.array(np.where(x <= 0, g.dtype.type(0), g))
    wt = work_type(x.dtype)
    gw = g.astype(wt)
    a = a if isinstance(a, np.ndarray) else wt(a)
    return np.array(np.where(x > 0, gw, gw * a)).astype(g.dtype)


def finish():
    with open(f"{D}/cases.json", "w") as f:
        json.dump(CASES, f)
"#;

/// Loads every output with NumPy and compares it with its reference.
const CHECK: &str = r#"
import json, sys
import numpy as np

D = sys.argv[1]
cases = json.load(open(f"{D}/cases.json"))
ran = set(json.load(open(f"{D}/ran.json")))
fails = []


def native(a):
    return a.astype(a.dtype.newbyteorder("="), copy=False)


def header(path):
    fmt = np.lib.format
    with open(path, "rb") as f:
        v = fmt.read_magic(f)
        shape, fortran, dtype = (fmt.read_array_header_1_0 if v == (1, 0) else fmt.read_array_header_2_0)(f)
        return v, shape, fortran, dtype, f.tell()


def same_bits(got, want, exact):
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if got.dtype.kind != want.dtype.kind or got.dtype.itemsize != want.dtype.itemsize:
        return f"dtype {got.dtype} != {want.dtype}"
    g = np.ascontiguousarray(native(got)).ravel()
    w = np.ascontiguousarray(native(want)).ravel()
    if g.dtype.kind == "f":
        u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[g.dtype.itemsize]
        gb, wb = g.view(u), w.view(u)
        if exact:
            bad = gb != wb
        else:
            gn, wn = np.isnan(g), np.isnan(w)
            bad = ((gb != wb) & ~wn) | (wn & (~gn | (np.signbit(g) != np.signbit(w))))
    else:
        gb, wb = g, w
        bad = g != w
    if bad.any():
        i = int(np.argmax(bad))
        return (f"{int(bad.sum())} of {g.size} elements differ, first at flat index {i}: "
                f"got {g[i]!r} ({int(gb[i]):#x}) want {w[i]!r} ({int(wb[i]):#x})")
    return None


checked = 0
for c in cases:
    n = c["name"]
    if n not in ran:
        continue
    out = f"{D}/{c['output']}"
    try:
        got = np.load(out, allow_pickle=False)
    except Exception as ex:
        fails.append(f"{n}: numpy cannot load the output: {ex!r}")
        continue
    want = np.load(f"{D}/{c['want']}", allow_pickle=False)
    v, shape, fortran, dtype, off = header(out)
    _, _, in_fortran, _, _ = header(f"{D}/{c['input']}")
    probs = []
    if v != (1, 0):
        probs.append(f"format version {v}, numpy.save writes 1.0")
    if off % 64:
        probs.append(f"data offset {off} is not 64-byte aligned")
    if dtype.byteorder == ">":
        probs.append(f"big-endian output {dtype.str}")
    if fortran != in_fortran:
        probs.append(f"fortran_order {fortran}, the input has {in_fortran}")
    why = same_bits(got, want, c["exact_nan"])
    if why:
        probs.append(why)
    if probs:
        fails.append(f"{n} (relu apply {c['input']} {' '.join(c['args'])}): " + "; ".join(probs))
    checked += 1

for f in fails:
    print("FAIL", f)
print(f"checked {checked}")
sys.exit(1 if fails else 0)
"#;

fn run_python(py: &Path, script: &Path, dir: &Path) -> std::process::Output {
    std::process::Command::new(py)
        .arg(script)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()))
}

/// Generates the cases with `gen` (Python, after [`PRELUDE`]), runs relu on each, checks them all.
fn suite(name: &str, gen: &str) {
    let Some(py) = python() else {
        eprintln!("SKIPPED interop::{name}: RELU_SKIP_INTEROP=1");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir(dir.join("out")).unwrap();
    let gen_py = dir.join("gen.py");
    fs::write(&gen_py, format!("{PRELUDE}\n{gen}\nfinish()\n")).unwrap();
    let o = run_python(py, &gen_py, dir);
    assert!(
        o.status.success(),
        "generator failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let cases: Vec<Value> = serde_json::from_str(&fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    assert!(!cases.is_empty(), "{name}: no cases");

    let mut failures = Vec::new();
    let mut ran = Vec::new();
    for c in &cases {
        let case = c["name"].as_str().unwrap();
        let input = c["input"].as_str().unwrap();
        let output = c["output"].as_str().unwrap();
        let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let mut cmd = Command::cargo_bin("relu").unwrap();
        cmd.current_dir(dir).timeout(Duration::from_secs(60));
        let stdin = c["stdin"].as_bool().unwrap();
        if stdin {
            cmd.args(["apply", "-"]).args(&args).write_stdin(fs::read(dir.join(input)).unwrap());
        } else {
            cmd.args(["apply", input, "-o", output]).args(&args);
        }
        let o = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        if !o.status.success() || stderr.contains("panicked") {
            failures.push(format!(
                "{case}: relu apply {input} {} exited {:?}: {}",
                args.join(" "),
                o.status.code(),
                stderr.trim()
            ));
            continue;
        }
        if stdin {
            fs::write(dir.join(output), &o.stdout).unwrap();
        }
        ran.push(case.to_string());
    }
    fs::write(dir.join("ran.json"), serde_json::to_string(&ran).unwrap()).unwrap();
    let check_py = dir.join("check.py");
    fs::write(&check_py, CHECK).unwrap();
    let o = run_python(py, &check_py, dir);
    let report = String::from_utf8_lossy(&o.stdout);
    let checked = report.lines().last().and_then(|l| l.strip_prefix("checked ")).and_then(|n| n.parse::<usize>().ok());
    assert!(
        failures.is_empty() && o.status.success() && checked == Some(ran.len()),
        "{name}: {} of {} cases failed to run:\n{}\nchecker (exit {:?}):\n{report}{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("interop::{name}: {} cases", cases.len());
}

#[test]
fn relu_on_numpy_floats_every_layout() {
    suite(
        "relu_on_numpy_floats_every_layout",
        r#"
for dt in FLOATS:
    for bo in "<>":
        for order in "CF":
            for shape in [(3, 4, 5), (2, 1, 33), (7,), (), (0, 3), (5, 0), (300,)]:
                x = layout(sample(dt, shape), bo, order)
                name = "relu_" + tag(x)
                if any(c["name"] == name for c in CASES):
                    continue  # 1-D and 0-d arrays have no Fortran variant
                case(name, x, [], relu_ref(x), exact_nan=True)
# stdin -> stdout
for dt in FLOATS:
    x = layout(sample(dt, (4, 17)), ">", "F")
    case("stdin_" + tag(x), x, [], relu_ref(x), exact_nan=True, stdin=True)
"#,
    );
}

#[test]
fn relu_on_numpy_integers() {
    suite(
        "relu_on_numpy_integers",
        r#"
for dt in INTS:
    info = np.iinfo(dt)
    for bo in "<>":
        x = rng.integers(info.min, info.max, size=(5, 7), dtype=dt, endpoint=True)
        x.flat[:4] = [info.min, info.max, 0, -1 if info.min < 0 else 1]
        for order in "CF":
            x2 = layout(x, bo, order)
            if np.dtype(dt).itemsize > 1 or bo == "<":  # one-byte types have no byte order
                case("relu_" + tag(x2), x2, [], relu_ref(x2))
    z = layout(np.array(-3 if np.iinfo(dt).min < 0 else 3, dtype=dt))
    case("relu_" + tag(z), z, [], relu_ref(z))
    e = layout(np.zeros((0, 4), dtype=dt))
    case("relu_" + tag(e), e, [], relu_ref(e))
# integer grad of relu keeps the integer type
x = rng.integers(-50, 50, size=(6, 6), dtype=np.int32)
g = rng.integers(-1000, 1000, size=(6, 6), dtype=np.int32)
gp = save("g_int32", g)
case("grad_int32", x, ["--act", "grad", "--upstream", gp], np.where(x <= 0, 0, g).astype(np.int32))
"#,
    );
}

#[test]
fn leaky_on_numpy_floats() {
    suite(
        "leaky_on_numpy_floats",
        r#"
for dt in FLOATS:
    for bo in "<>":
        for order in "CF":
            for shape in [(3, 4, 5), (), (0, 2), (129,)]:
                x = layout(sample(dt, shape), bo, order)
                base = tag(x)
                if any(c["name"].endswith(base) for c in CASES):
                    continue
                case("leaky0.2_" + base, x, ["--act", "leaky", "--slope", "0.2"], leaky_ref(x, 0.2))
                case("leaky-0.5_" + base, x, ["--act", "leaky", "--slope", "-0.5"], leaky_ref(x, -0.5))
                case("leakydefault_" + base, x, ["--act", "leaky"], leaky_ref(x, 0.01))
# values whose f16 product needs the f32 rounding (PyTorch computes f16 in f32)
h = (rng.standard_normal(4096) * 100).astype(np.float16)
case("leaky_f16_wide", h, ["--act", "leaky", "--slope", "0.1"], leaky_ref(h, 0.1))
"#,
    );
}

#[test]
fn prelu_on_numpy_floats() {
    suite(
        "prelu_on_numpy_floats",
        r#"
al = [0.1, 0.25, 1 / 3]
for dt in FLOATS:
    for bo in "<>":
        for order in "CF":
            x = layout(sample(dt, (2, 3, 4, 5)), bo, order)
            case("prelu_list_" + tag(x), x, ["--act", "prelu", "--alpha", ",".join(map(repr, al))],
                 leaky_ref(x, slopes(al, x, 1)))
    # NHWC: channels on the last axis, slopes from a float64 .npy file
    a5 = np.array([0.5, -0.2, 0.3, 2.0, 1e-3])
    ap = save(f"alpha5_{np.dtype(dt).name}", a5)
    x = layout(sample(dt, (2, 3, 4, 5)), "<", "F")
    case("prelu_nhwc_" + tag(x), x, ["--act", "prelu", "--alpha", ap, "--channel-axis", "-1"],
         leaky_ref(x, slopes(a5, x, 3)))
    # slopes from a big-endian float32 file, channel axis 0
    a3 = np.array([0.7, 0.05, 0.3], dtype=">f4")
    ap3 = save(f"alpha3be_{np.dtype(dt).name}", a3)
    x = layout(sample(dt, (3, 40)), "<", "C")
    case("prelu_axis0_" + tag(x), x, ["--act", "prelu", "--alpha", ap3, "--channel-axis", "0"],
         leaky_ref(x, slopes(a3, x, 0)))
    # one slope for every element: 1-D and 0-d inputs
    for shape in [(50,), ()]:
        x = layout(sample(dt, shape))
        case("prelu_one_" + tag(x), x, ["--act", "prelu", "--alpha", "0.3"], leaky_ref(x, slopes([0.3], x, 0)))
"#,
    );
}

#[test]
fn grad_with_upstream_from_numpy() {
    suite(
        "grad_with_upstream_from_numpy",
        r#"
al = [0.1, 0.25, 1 / 3]
for dt in FLOATS:
    for order in "CF":
        for gbo in "<>":
            x = layout(sample(dt, (2, 3, 4, 5)), "<", order)
            g = layout(sample(dt, (2, 3, 4, 5), scale=10, with_specials=False), gbo, order)
            name = tag(x) + "_g" + gbo.replace("<", "le").replace(">", "be")
            gp = save("up_" + name, g)
            case("grad_relu_" + name, x, ["--act", "grad", "--upstream", gp], grad_ref(x, g, "relu"))
            case("grad_leaky_" + name, x, ["--act", "grad", "--of", "leaky", "--slope", "0.2", "--upstream", gp],
                 grad_ref(x, g, "leaky", 0.2))
            case("grad_prelu_" + name, x, ["--act", "grad", "--of", "prelu", "--alpha", ",".join(map(repr, al)),
                                            "--upstream", gp],
                 grad_ref(x, g, "prelu", slopes(al, x, 1)))
    # without --upstream the gradient is f'(x) itself (upstream of ones)
    x = layout(sample(dt, (64,)))
    ones = np.ones_like(native(x))
    case("grad_relu_ones_" + tag(x), x, ["--act", "grad"], grad_ref(x, ones, "relu"))
    case("grad_leaky_ones_" + tag(x), x, ["--act", "grad", "--of", "leaky", "--slope", "-0.5"],
         grad_ref(x, ones, "leaky", -0.5))
"#,
    );
}

#[test]
fn dtype_conversion_matches_numpy_astype() {
    suite(
        "dtype_conversion_matches_numpy_astype",
        r#"
# f64 values that tell "activation, then round once" from other orders, and f16 rounding edges
edges = np.array([-1e-9, 1e-9, -2e-8, 3e-8, 2.0 ** -25, 2.0 ** -25 * (1 + 2.0 ** -40), -(2.0 ** -25),
                  65519.99, 65520.0, 7e4, -7e4, -65520.0, 1 + 2.0 ** -11, 1 + 2.0 ** -11 + 2.0 ** -40,
                  1 + 2.0 ** -24, 1 + 2.0 ** -24 + 2.0 ** -50, -0.0, np.nan, -np.inf, np.inf, 1e-320])
x64 = np.concatenate([edges, rng.standard_normal(500) * np.logspace(-9, 6, 500)])
for bo in "<>":
    x = layout(x64, bo)
    t = tag(x)
    case("f64_to_f16_relu_" + t, x, ["--dtype", "f16"], relu_ref(x).astype(np.float16))
    case("f64_to_f32_relu_" + t, x, ["--dtype", "f32"], relu_ref(x).astype(np.float32))
    case("f64_to_f16_leaky_" + t, x, ["--dtype", "f16", "--act", "leaky", "--slope", "0.2"],
         leaky_ref(x, 0.2).astype(np.float16))
    case("f64_to_f32_leaky_" + t, x, ["--dtype", "f32", "--act", "leaky", "--slope", "0.3"],
         leaky_ref(x, 0.3).astype(np.float32))
    case("f64_to_f16_prelu_" + t, x, ["--dtype", "f16", "--act", "prelu", "--alpha", "0.3"],
         leaky_ref(x, slopes([0.3], x, 0)).astype(np.float16))
x32 = x64.astype(np.float32)
case("f32_to_f16_relu", x32, ["--dtype", "f16"], relu_ref(x32).astype(np.float16))
case("f32_to_f16_leaky", x32, ["--dtype", "f16", "--act", "leaky", "--slope", "0.3"],
     leaky_ref(x32, 0.3).astype(np.float16))
case("f32_to_f64_relu", x32, ["--dtype", "f64"], relu_ref(x32).astype(np.float64))
x16 = sample(np.float16, (3, 50))
case("f16_to_f32_relu", x16, ["--dtype", "f32"], relu_ref(x16).astype(np.float32))
case("f16_to_f64_leaky", x16, ["--dtype", "f64", "--act", "leaky", "--slope", "0.2"],
     leaky_ref(x16, 0.2).astype(np.float64))
# integers: converted to the float type first
i16 = rng.integers(-30000, 30000, size=(8, 9), dtype=np.int16)
f = i16.astype(np.float32)
case("i16_to_f32_leaky", i16, ["--dtype", "f32", "--act", "leaky", "--slope", "-0.3"],
     np.where(f > 0, f, f * np.float32(-0.3)))
u8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
case("u8_to_f16_relu", u8, ["--dtype", "f16"], u8.astype(np.float16))
i64 = np.array([-(2 ** 62), 2 ** 53 + 1, -1, 0, 1, 2 ** 62], dtype=np.int64)
case("i64_to_f64_relu", i64, ["--dtype", "f64"], np.maximum(i64, 0).astype(np.float64))
"#,
    );
}

/// Arrays spanning many chunks (and, for the f64 ones, more than one 8 MiB read window), with
/// PReLU channel runs that straddle chunk boundaries, through files and through stdin.
#[test]
fn large_arrays_across_chunks() {
    suite(
        "large_arrays_across_chunks",
        r#"
al7 = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1 / 7]
for order in "CF":
    x = layout(sample(np.float32, (3, 7, 123, 123)), "<", order)
    case("prelu_big_" + tag(x), x, ["--act", "prelu", "--alpha", ",".join(map(repr, al7))],
         leaky_ref(x, slopes(al7, x, 1)))
    g = layout(sample(np.float32, (3, 7, 123, 123), with_specials=False), ">", order)
    gp = save("up_big_" + tag(x), g)
    case("grad_prelu_big_" + tag(x), x, ["--act", "grad", "--of", "prelu", "--alpha", ",".join(map(repr, al7)),
                                         "--upstream", gp],
         grad_ref(x, g, "prelu", slopes(al7, x, 1)))
x = layout(sample(np.float64, (1_200_001,)), ">")
case("relu_big_" + tag(x), x, [], relu_ref(x), exact_nan=True)
case("leaky_big_f16_" + tag(x), x, ["--act", "leaky", "--slope", "0.2", "--dtype", "f16"],
     leaky_ref(x, 0.2).astype(np.float16))
h = layout(sample(np.float16, (700, 1001)), "<", "F")
case("f16_to_f64_big_" + tag(h), h, ["--dtype", "f64"], relu_ref(h).astype(np.float64))
case("stdin_relu_big_" + tag(h), h, [], relu_ref(h), exact_nan=True, stdin=True)
case("stdin_relu_big_" + tag(x), x, [], relu_ref(x), exact_nan=True, stdin=True)
i = rng.integers(-2 ** 31, 2 ** 31, size=(600_001,), dtype=np.int64).astype(">i8")
case("relu_big_" + tag(i), i, [], relu_ref(i))
"#,
    );
}
