//! End-to-end tests of `relu stats`, `relu apply --stats` and `relu merge-stats` (SPEC §1, §4;
//! docs/statistics.md), no Python needed.
//!
//! Every array is written by the test itself (as `numpy.save` lays it out, C or Fortran order), and
//! every expected number is computed here from the logical (C-order) values in f64: counts exactly,
//! the mean and the population std with compensated sums, per-unit active counts from each
//! element's multi-index. The binary's JSON must match: counts, min and max exactly, mean and std
//! to 1e-12 relative.

use assert_cmd::Command;
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::Duration;

// ------------------------------------------------------------------------------------ running

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "want exit 0; stderr: {}", self.stderr);
        self
    }

    /// The single JSON object on stdout.
    fn json(&self) -> Value {
        self.ok();
        let lines: Vec<&str> = self.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "want one JSON line, got: {}", self.stdout);
        parse_stats(lines[0])
    }

    /// Every JSON object on stdout, one per line.
    fn json_lines(&self) -> Vec<Value> {
        self.stdout.lines().filter(|l| !l.trim().is_empty()).map(parse_stats).collect()
    }
}

/// One statistics object, with its float fields read exactly.
///
/// The float keys are re-read from the text with `str::parse::<f64>`, which rounds correctly, so a
/// test sees exactly the f64 the binary printed whatever the JSON library does.
fn parse_stats(line: &str) -> Value {
    let mut v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let exact = |key: &str| -> Option<Value> {
        let pat = format!("\"{key}\":");
        let at = line.find(&pat)? + pat.len();
        let tok = line[at..].split([',', '}']).next().unwrap().trim();
        Some(if tok == "null" {
            Value::Null
        } else {
            let x: f64 = tok.parse().unwrap_or_else(|e| panic!("{key}: {tok:?}: {e}"));
            serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
        })
    };
    for key in ["sparsity", "min", "max", "mean", "std"] {
        if let Some(x) = exact(key) {
            v[key] = x;
        }
    }
    if v["units"].is_object() {
        if let Some(x) = exact("threshold") {
            v["units"]["threshold"] = x;
        }
    }
    v
}

fn relu<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    relu_in(None, args, None)
}

fn relu_in<I, S>(dir: Option<&Path>, args: I, stdin: Option<Vec<u8>>) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::cargo_bin("relu").expect("the relu binary");
    cmd.args(args).timeout(Duration::from_secs(120));
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    if let Some(s) = stdin {
        cmd.write_stdin(s);
    }
    let o = cmd.output().expect("run relu");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    // A panic is a bug whatever the exit code (SPEC §5).
    assert!(!stderr.contains("panicked"), "relu panicked: {stderr}");
    Run { code: o.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&o.stdout).into_owned(), stderr }
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

fn p(path: &Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_string()
}

// ------------------------------------------------------------------------------------ writing .npy

/// Element types the tests write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    F16,
    F32,
    F64,
    I16,
}

impl Ty {
    fn descr(self) -> &'static str {
        match self {
            Ty::F16 => "<f2",
            Ty::F32 => "<f4",
            Ty::F64 => "<f8",
            Ty::I16 => "<i2",
        }
    }

    fn numpy_name(self) -> &'static str {
        match self {
            Ty::F16 => "float16",
            Ty::F32 => "float32",
            Ty::F64 => "float64",
            Ty::I16 => "int16",
        }
    }

    /// `v` rounded to this type and widened back to f64 (exact for the floats).
    fn round(self, v: f64) -> f64 {
        match self {
            Ty::F16 => half::f16::from_f64(v).to_f64(),
            Ty::F32 => v as f32 as f64,
            Ty::F64 => v,
            Ty::I16 => {
                assert!(v.is_finite() && v == v.trunc(), "int16 value {v}");
                v as i16 as f64
            }
        }
    }

    fn encode(self, v: f64, out: &mut Vec<u8>) {
        match self {
            Ty::F16 => out.extend(half::f16::from_f64(v).to_bits().to_le_bytes()),
            Ty::F32 => out.extend((v as f32).to_le_bytes()),
            Ty::F64 => out.extend(v.to_le_bytes()),
            Ty::I16 => out.extend((v as i16).to_le_bytes()),
        }
    }
}

fn shape_repr(shape: &[usize]) -> String {
    match shape.len() {
        0 => "()".into(),
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// The C-order multi-index of flat index `i`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for k in (0..shape.len()).rev() {
        idx[k] = i % shape[k];
        i /= shape[k];
    }
    idx
}

/// `c` (C order) laid out in Fortran order: element j of the result is the element whose
/// multi-index, first axis fastest, is j.
fn to_fortran(c: &[f64], shape: &[usize]) -> Vec<f64> {
    let n = c.len();
    let mut cstride = vec![1usize; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        cstride[k] = cstride[k + 1] * shape[k + 1];
    }
    (0..n)
        .map(|mut j| {
            let mut ci = 0;
            for k in 0..shape.len() {
                ci += (j % shape[k]) * cstride[k];
                j /= shape[k];
            }
            c[ci]
        })
        .collect()
}

/// Writes `values` (the logical array in C order, already representable in `ty`) as a `.npy` file
/// laid out as numpy.save does, in C or Fortran order.
fn write_npy(path: &Path, ty: Ty, fortran: bool, shape: &[usize], values: &[f64]) {
    assert_eq!(values.len(), shape.iter().product::<usize>(), "{shape:?}");
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': {}, 'shape': {}, }}",
        ty.descr(),
        if fortran { "True" } else { "False" },
        shape_repr(shape)
    );
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    v.extend_from_slice(dict.as_bytes());
    v.resize(total - 1, b' ');
    v.push(b'\n');
    let data = if fortran && shape.len() >= 2 { to_fortran(values, shape) } else { values.to_vec() };
    v.reserve(data.len() * 8);
    for x in data {
        ty.encode(x, &mut v);
    }
    fs::write(path, v).unwrap();
}

// ------------------------------------------------------------------------------------ data

/// SplitMix64: a small deterministic generator, so the data are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (sum of four uniforms, centred and scaled).
    fn normal(&mut self) -> f64 {
        ((0..4).map(|_| self.uniform()).sum::<f64>() - 2.0) * 1.7320508075688772
    }
}

/// `n` values of type `ty`: `scale`·normal + `offset`, with `specials` (NaN, ±inf, ±0) sprinkled in
/// at a rate of about 1/997.
fn random_values(seed: u64, n: usize, ty: Ty, scale: f64, offset: f64, specials: bool) -> Vec<f64> {
    let mut r = Rng(seed);
    let sp = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0];
    (0..n)
        .map(|i| {
            let v = if specials && r.next().is_multiple_of(997) {
                sp[i % sp.len()]
            } else if ty == Ty::I16 {
                (r.normal() * scale + offset).round().clamp(-32768.0, 32767.0)
            } else {
                r.normal() * scale + offset
            };
            ty.round(v)
        })
        .collect()
}

/// Sets every element whose index along `axis` is `unit` to `v` (C-order values).
fn fill_unit(values: &mut [f64], shape: &[usize], axis: usize, unit: usize, v: f64) {
    for (i, x) in values.iter_mut().enumerate() {
        if unravel(i, shape)[axis] == unit {
            *x = v;
        }
    }
}

// ------------------------------------------------------------------------------------ reference

/// Neumaier's compensated sum: the reference sums are accurate to about one rounding.
fn fsum(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in xs {
        let t = s + x;
        if s.abs() >= x.abs() {
            c += (s - t) + x;
        } else {
            c += (x - t) + s;
        }
        s = t;
    }
    s + c
}

#[derive(Debug, Clone, PartialEq)]
struct Reference {
    elements: u64,
    zeros: u64,
    negative: u64,
    nan: u64,
    posinf: u64,
    neginf: u64,
    finite: u64,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    std: Option<f64>,
    /// (axis, active counts) or None for 0-d / 1-D.
    units: Option<(usize, Vec<u64>)>,
}

/// relu on one value: negative (−inf included) → +0, NaN and −0 stay.
fn relu_f(x: f64) -> f64 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

/// SPEC §4 from first principles: `values` are the input in C order; `act_relu` applies relu;
/// `unit_axis` is the resolved axis (ignored for 0-d and 1-D arrays).
fn reference(values: &[f64], shape: &[usize], act_relu: bool, unit_axis: usize) -> Reference {
    let ys: Vec<f64> = values.iter().map(|&x| if act_relu { relu_f(x) } else { x }).collect();
    let fin: Vec<f64> = ys.iter().copied().filter(|v| v.is_finite()).collect();
    let n = fin.len();
    let mean = (n > 0).then(|| fsum(fin.iter().copied()) / n as f64);
    let std = mean.map(|m| (fsum(fin.iter().map(|v| (v - m) * (v - m))) / n as f64).sqrt());
    let units = (shape.len() >= 2).then(|| {
        let mut counts = vec![0u64; shape[unit_axis]];
        for (i, &x) in values.iter().enumerate() {
            if x > 0.0 {
                counts[unravel(i, shape)[unit_axis]] += 1;
            }
        }
        (unit_axis, counts)
    });
    Reference {
        elements: values.len() as u64,
        zeros: ys.iter().filter(|&&v| v == 0.0).count() as u64,
        negative: values.iter().filter(|&&v| v < 0.0).count() as u64,
        nan: ys.iter().filter(|v| v.is_nan()).count() as u64,
        posinf: ys.iter().filter(|&&v| v == f64::INFINITY).count() as u64,
        neginf: ys.iter().filter(|&&v| v == f64::NEG_INFINITY).count() as u64,
        finite: n as u64,
        min: (n > 0).then(|| fin.iter().copied().fold(f64::INFINITY, f64::min)),
        max: (n > 0).then(|| fin.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        mean,
        std,
        units,
    }
}

const REL: f64 = 1e-12;

fn close(got: f64, want: f64, rel: f64) -> bool {
    got == want || (got - want).abs() <= rel * want.abs()
}

fn opt_f64(j: &Value, key: &str) -> Option<f64> {
    let v = &j[key];
    assert!(v.is_null() || v.is_f64() || v.is_u64() || v.is_i64(), "{key}: want a number or null, got {v}");
    v.as_f64()
}

fn u(j: &Value, key: &str) -> u64 {
    j[key].as_u64().unwrap_or_else(|| panic!("{key}: want an unsigned integer, got {} in {j}", j[key]))
}

fn active_count(j: &Value) -> Vec<u64> {
    j["units"]["active_count"]
        .as_array()
        .unwrap_or_else(|| panic!("no units.active_count in {j}"))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

/// The JSON of one array against the reference: every count exactly, min/max exactly, mean/std
/// to `rel`, sparsity, and the units block (axis, count, elements_per_unit, active_count, dead,
/// dead_indices, threshold, near_dead).
fn check(what: &str, j: &Value, r: &Reference, threshold: f64) {
    let counts = |j: &Value| {
        ["elements", "zeros", "negative_inputs", "nan", "posinf", "neginf", "finite"].map(|k| u(j, k)).to_vec()
    };
    assert_eq!(
        counts(j),
        vec![r.elements, r.zeros, r.negative, r.nan, r.posinf, r.neginf, r.finite],
        "{what}: counts [elements, zeros, negative_inputs, nan, posinf, neginf, finite] of {j}"
    );
    let sparsity = opt_f64(j, "sparsity");
    if r.elements == 0 {
        assert_eq!(sparsity, None, "{what}: sparsity of an empty array");
    } else {
        assert_eq!(sparsity, Some(r.zeros as f64 / r.elements as f64), "{what}: sparsity");
    }
    assert_eq!(opt_f64(j, "min"), r.min, "{what}: min");
    assert_eq!(opt_f64(j, "max"), r.max, "{what}: max");
    for (key, want) in [("mean", r.mean), ("std", r.std)] {
        let got = opt_f64(j, key);
        match (got, want) {
            (Some(g), Some(w)) => assert!(close(g, w, REL), "{what}: {key} {g:e}, want {w:e} (rel {:e})", (g - w) / w),
            _ => assert_eq!(got, want, "{what}: {key}"),
        }
    }
    match &r.units {
        None => assert!(j["units"].is_null(), "{what}: want \"units\": null, got {}", j["units"]),
        Some((axis, counts)) => {
            let un = &j["units"];
            assert_eq!(u(un, "axis"), *axis as u64, "{what}: units.axis");
            assert_eq!(u(un, "count"), counts.len() as u64, "{what}: units.count");
            let m = r.elements / counts.len().max(1) as u64;
            assert_eq!(u(un, "elements_per_unit"), m, "{what}: units.elements_per_unit");
            assert_eq!(&active_count(j), counts, "{what}: units.active_count");
            // No elements per unit (an empty array): no evidence, no dead unit.
            let dead: Vec<u64> = (0..counts.len() as u64).filter(|&i| m > 0 && counts[i as usize] == 0).collect();
            assert_eq!(u(un, "dead"), dead.len() as u64, "{what}: units.dead");
            let got_dead: Vec<u64> =
                un["dead_indices"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            assert_eq!(got_dead, dead, "{what}: units.dead_indices");
            assert_eq!(un["threshold"].as_f64(), Some(threshold), "{what}: units.threshold");
            let near = counts.iter().filter(|&&c| m > 0 && (c as f64 / m as f64) < threshold).count() as u64;
            assert_eq!(u(un, "near_dead"), near, "{what}: units.near_dead");
        }
    }
}

/// Two JSON objects of the same data: counts, min/max and active counts exactly, mean and std to
/// 1e-12 relative.
fn assert_same_stats(what: &str, a: &Value, b: &Value) {
    for k in ["elements", "zeros", "negative_inputs", "nan", "posinf", "neginf", "finite"] {
        assert_eq!(u(a, k), u(b, k), "{what}: {k}\n{a}\n{b}");
    }
    for k in ["min", "max", "sparsity"] {
        assert_eq!(opt_f64(a, k), opt_f64(b, k), "{what}: {k}");
    }
    for k in ["mean", "std"] {
        match (opt_f64(a, k), opt_f64(b, k)) {
            (Some(x), Some(y)) => assert!(close(x, y, REL), "{what}: {k} {x:e} vs {y:e}"),
            (x, y) => assert_eq!(x, y, "{what}: {k}"),
        }
    }
    assert_eq!(a["units"].is_null(), b["units"].is_null(), "{what}: units");
    if !a["units"].is_null() {
        assert_eq!(active_count(a), active_count(b), "{what}: active_count");
        for k in ["axis", "count", "dead", "near_dead"] {
            assert_eq!(a["units"][k], b["units"][k], "{what}: units.{k}");
        }
        assert_eq!(a["units"]["dead_indices"], b["units"]["dead_indices"], "{what}: units.dead_indices");
    }
}

/// `relu stats --json ARGS FILE` → the object.
fn stats_json(file: &Path, args: &[&str]) -> Value {
    let mut a = vec!["stats".to_string(), "--json".into()];
    a.extend(args.iter().map(|s| s.to_string()));
    a.push(p(file));
    let j = relu(&a).json();
    assert_eq!(j["input"].as_str(), Some(p(file).as_str()), "input names the path");
    j
}

// ------------------------------------------------------------------------------------ small arrays

/// A (3, 5) f32 array exercising every count: −0 and +0, NaN, ±inf, negatives; unit 2 is dead (its
/// inputs are −1, −0 and NaN); unit 4 has only +inf as active input.
fn small_values() -> (Vec<usize>, Vec<f64>) {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    #[rustfmt::skip]
    let v = vec![
        1.5,   -2.0,  -1.0,  0.25,  -inf,
        -0.0,  3.0,   -0.0,  0.0,   inf,
        0.125, nan,   nan,   -7.5,  -3.0,
    ];
    (vec![3, 5], v)
}

#[test]
fn relu_counts_moments_and_units_of_a_small_array() {
    let tmp = tmpdir();
    let (shape, v) = small_values();
    let x = tmp.path().join("x.npy");
    write_npy(&x, Ty::F32, false, &shape, &v);
    let j = stats_json(&x, &["--act", "relu"]);
    let r = reference(&v, &shape, true, 1);
    // Spelled out, so the reference itself is checked too: relu gives
    // [1.5, 0, 0, .25, 0 | -0, 3, -0, 0, inf | .125, nan, nan, 0, 0]
    assert_eq!((r.zeros, r.negative, r.nan, r.posinf, r.neginf, r.finite), (8, 5, 2, 1, 0, 12));
    assert_eq!(r.units.as_ref().unwrap().1, vec![2, 1, 0, 1, 1]);
    check("relu small", &j, &r, 0.01);
    assert_eq!(j["activation"], "relu");
    assert_eq!(j["dtype"], "float32");
    assert_eq!(j["shape"], serde_json::json!([3, 5]));
    assert_eq!(opt_f64(&j, "min"), Some(0.0));
    assert_eq!(opt_f64(&j, "max"), Some(3.0));
    assert_eq!(opt_f64(&j, "sparsity"), Some(8.0 / 15.0));
    // mean of [1.5, 0, 0, .25, 0, -0, 3, -0, 0, .125, 0, 0] = 4.875 / 12
    assert!(close(opt_f64(&j, "mean").unwrap(), 4.875 / 12.0, REL));
    assert_eq!(j["units"]["dead_indices"], serde_json::json!([2]));
}

/// The sums are shifted by the first *output*, not the first input: relu of a large negative
/// first value is 0, and a grad's outputs follow the upstream, so a shift taken from the input
/// (-1e20 here) cancelled every digit of the sums (mean 0.0 and std 0.0 for [0, 1, 2, 3]).
#[test]
fn the_sums_are_shifted_by_an_output_not_an_input() {
    let tmp = tmpdir();
    let x = tmp.path().join("x.npy");
    write_npy(&x, Ty::F64, false, &[4], &[-1e20, 1.0, 2.0, 3.0]);
    let j = stats_json(&x, &["--act", "relu"]);
    assert_eq!(opt_f64(&j, "mean"), Some(1.5), "{j}");
    assert!(close(opt_f64(&j, "std").unwrap(), 1.25f64.sqrt(), REL), "{j}");
    // grad of relu: the outputs are the upstream's [0, 1, 2, 3], the input is 1e3 times larger
    let (xg, g) = (tmp.path().join("xg.npy"), tmp.path().join("g.npy"));
    write_npy(&xg, Ty::F64, false, &[4], &[-3e3, 1e3, 2e3, 3e3]);
    write_npy(&g, Ty::F64, false, &[4], &[0.1, 1.0 / 3.0, 0.7, 0.9]);
    let out = tmp.path().join("y.npy");
    let r = relu(["apply", &p(&xg), "--act", "grad", "--upstream", &p(&g), "-o", &p(&out), "--stats", "-"]).json();
    let want = [0.0, 1.0 / 3.0, 0.7, 0.9];
    let mean = want.iter().sum::<f64>() / 4.0;
    let std = (want.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 4.0).sqrt();
    assert!(close(opt_f64(&r, "mean").unwrap(), mean, 1e-15), "{r}");
    assert!(close(opt_f64(&r, "std").unwrap(), std, 1e-14), "{r}");
}

#[test]
fn without_act_the_values_are_the_input() {
    let tmp = tmpdir();
    let (shape, v) = small_values();
    let x = tmp.path().join("x.npy");
    write_npy(&x, Ty::F32, false, &shape, &v);
    let j = stats_json(&x, &[]);
    let r = reference(&v, &shape, false, 1);
    assert_eq!((r.zeros, r.neginf, r.min), (3, 1, Some(-7.5)));
    check("no act", &j, &r, 0.01);
    assert!(j["activation"].is_null(), "activation: {}", j["activation"]);
    assert_eq!(opt_f64(&j, "min"), Some(-7.5), "min can be negative without --act");
    assert_eq!(u(&j, "neginf"), 1);
    // "active" is about the input whatever --act is: the same units with and without relu.
    let jr = stats_json(&x, &["--act", "relu"]);
    assert_eq!(active_count(&j), active_count(&jr));
}

#[test]
fn nan_is_neither_active_nor_negative() {
    let tmp = tmpdir();
    let nan = f64::NAN;
    // (2, 3): unit 0 all NaN, unit 1 NaN and +0, unit 2 NaN and 1.
    let v = vec![nan, nan, nan, nan, 0.0, 1.0];
    let x = tmp.path().join("nan.npy");
    write_npy(&x, Ty::F64, false, &[2, 3], &v);
    let j = stats_json(&x, &["--act", "relu"]);
    check("nan", &j, &reference(&v, &[2, 3], true, 1), 0.01);
    assert_eq!(active_count(&j), vec![0, 0, 1]);
    assert_eq!(u(&j, "negative_inputs"), 0);
    assert_eq!(u(&j, "nan"), 4);
    assert_eq!(j["units"]["dead_indices"], serde_json::json!([0, 1]));
}

#[test]
fn all_nan_and_empty_arrays_have_null_moments() {
    let tmp = tmpdir();
    let x = tmp.path().join("nan.npy");
    write_npy(&x, Ty::F32, false, &[4], &[f64::NAN, f64::INFINITY, f64::NAN, f64::NEG_INFINITY]);
    let j = stats_json(&x, &[]);
    for k in ["min", "max", "mean", "std"] {
        assert!(j[k].is_null(), "{k} of no finite value: {}", j[k]);
    }
    assert_eq!((u(&j, "finite"), u(&j, "nan"), u(&j, "posinf"), u(&j, "neginf")), (0, 2, 1, 1));
    // relu(-inf) = +0 is the one finite value
    let j = stats_json(&x, &["--act", "relu"]);
    assert_eq!((u(&j, "finite"), u(&j, "zeros"), u(&j, "neginf")), (1, 1, 0));
    for k in ["min", "max", "mean", "std"] {
        assert_eq!(opt_f64(&j, k), Some(0.0), "{k} of the single value relu(-inf) = +0");
    }

    let e = tmp.path().join("empty.npy");
    write_npy(&e, Ty::F32, false, &[0, 3], &[]);
    let j = stats_json(&e, &["--act", "relu"]);
    check("empty", &j, &reference(&[], &[0, 3], true, 1), 0.01);
    assert!(j["sparsity"].is_null(), "sparsity of an empty array: {}", j["sparsity"]);
}

// ------------------------------------------------------------------------------------ units

/// C-ordered and Fortran-ordered twins of `values` give the reference's units, and the same JSON.
fn check_layouts(name: &str, ty: Ty, shape: &[usize], values: &[f64], args: &[&str], axis: usize) {
    let tmp = tmpdir();
    let c = tmp.path().join(format!("{name}_c.npy"));
    let f = tmp.path().join(format!("{name}_f.npy"));
    write_npy(&c, ty, false, shape, values);
    write_npy(&f, ty, true, shape, values);
    let r = reference(values, shape, true, axis);
    let mut a = vec!["--act", "relu"];
    a.extend_from_slice(args);
    let jc = stats_json(&c, &a);
    let jf = stats_json(&f, &a);
    check(&format!("{name} C order"), &jc, &r, 0.01);
    check(&format!("{name} Fortran order"), &jf, &r, 0.01);
    assert_eq!(active_count(&jc), active_count(&jf), "{name}: C and Fortran twins");
}

#[test]
fn units_dense_default_axis_1() {
    let shape = [6, 4];
    let mut v = random_values(1, 24, Ty::F32, 1.0, 0.0, false);
    fill_unit(&mut v, &shape, 1, 2, -1.0);
    check_layouts("dense", Ty::F32, &shape, &v, &[], 1);
    check_layouts("dense_axis0", Ty::F32, &shape, &v, &["--unit-axis", "0"], 0);
    check_layouts("dense_axis_m1", Ty::F32, &shape, &v, &["--unit-axis", "-1"], 1);
    check_layouts("dense_axis_m2", Ty::F32, &shape, &v, &["--unit-axis", "-2"], 0);
}

#[test]
fn units_nchw_axis_1_and_nhwc_last_axis() {
    let nchw = [3, 5, 4, 6];
    let mut v = random_values(2, nchw.iter().product(), Ty::F32, 1.0, 0.2, true);
    fill_unit(&mut v, &nchw, 1, 3, -0.5);
    check_layouts("nchw", Ty::F32, &nchw, &v, &[], 1);
    check_layouts("nchw_axis2", Ty::F32, &nchw, &v, &["--unit-axis", "2"], 2);

    let nhwc = [3, 4, 6, 5];
    let mut v = random_values(3, nhwc.iter().product(), Ty::F32, 1.0, -0.3, true);
    fill_unit(&mut v, &nhwc, 3, 0, -2.0);
    fill_unit(&mut v, &nhwc, 3, 4, 0.0);
    check_layouts("nhwc", Ty::F32, &nhwc, &v, &["--unit-axis", "-1"], 3);
    check_layouts("nhwc_axis3", Ty::F32, &nhwc, &v, &["--unit-axis", "3"], 3);
}

#[test]
fn one_d_and_zero_d_arrays_have_no_units() {
    let tmp = tmpdir();
    let x = tmp.path().join("v.npy");
    let v = vec![1.0, -1.0, 0.0, 2.5, f64::NAN];
    write_npy(&x, Ty::F32, false, &[5], &v);
    let j = stats_json(&x, &["--act", "relu"]);
    assert!(j["units"].is_null(), "1-D: units {}", j["units"]);
    check("1-D", &j, &reference(&v, &[5], true, 0), 0.01);
    // --unit-axis is about units; a 1-D array has none whatever the axis says.
    let j = stats_json(&x, &["--act", "relu", "--unit-axis", "-1"]);
    assert!(j["units"].is_null());

    let s = tmp.path().join("s.npy");
    write_npy(&s, Ty::F64, false, &[], &[-3.0]);
    let j = stats_json(&s, &["--act", "relu"]);
    assert!(j["units"].is_null(), "0-d: units {}", j["units"]);
    check("0-d", &j, &reference(&[-3.0], &[], true, 0), 0.01);
    assert_eq!(j["shape"], serde_json::json!([]));
}

#[test]
fn unit_axis_out_of_range_is_a_usage_error() {
    let tmp = tmpdir();
    let x = tmp.path().join("x.npy");
    write_npy(&x, Ty::F32, false, &[2, 3], &[1.0; 6]);
    for axis in ["5", "2", "-3"] {
        let r = relu(["stats", "--json", "--unit-axis", axis, &p(&x)]);
        assert_eq!(r.code, 2, "--unit-axis {axis} on 2-D: want exit 2; stderr {}", r.stderr);
        assert!(r.stderr.contains("unit-axis"), "the message names the option: {}", r.stderr);
        assert!(r.stdout.is_empty(), "no output: {}", r.stdout);
    }
}

#[test]
fn dead_and_near_dead_with_threshold() {
    let tmp = tmpdir();
    // (100, 8): units fire 0, 1, 5, 10, 50, 100 times in 100; unit 6 only NaN; unit 7 only ±0.
    let rates = [0usize, 1, 5, 10, 50, 100];
    let (n, units) = (100, 8);
    let mut v = vec![0.0; n * units];
    for row in 0..n {
        for (unit, &k) in rates.iter().enumerate() {
            v[row * units + unit] = if row < k { 1.0 + row as f64 } else { -(row as f64) - 1.0 };
        }
        v[row * units + 6] = f64::NAN;
        v[row * units + 7] = if row % 2 == 0 { 0.0 } else { -0.0 };
    }
    let x = tmp.path().join("d.npy");
    write_npy(&x, Ty::F32, false, &[n, units], &v);
    let r = reference(&v, &[n, units], true, 1);
    assert_eq!(r.units.as_ref().unwrap().1, vec![0, 1, 5, 10, 50, 100, 0, 0]);
    // (threshold, near_dead): a rate below t is near dead; dead units count too.
    for (t, want) in [("0.01", 3), ("0.05", 4), ("0.06", 5), ("0.1", 5), ("0.100001", 6), ("1", 7), ("0", 0)] {
        let j = stats_json(&x, &["--act", "relu", "--dead-threshold", t]);
        check(&format!("threshold {t}"), &j, &r, t.parse().unwrap());
        assert_eq!(u(&j["units"], "near_dead"), want, "threshold {t}");
        assert_eq!(u(&j["units"], "dead"), 3, "threshold {t}");
        assert_eq!(j["units"]["dead_indices"], serde_json::json!([0, 6, 7]));
    }
    // default threshold 0.01
    let j = stats_json(&x, &["--act", "relu"]);
    assert_eq!(j["units"]["threshold"].as_f64(), Some(0.01));
    assert_eq!(u(&j["units"], "near_dead"), 3);
}

// ------------------------------------------------------------------------------------ dtypes

#[test]
fn float16_and_float64_inputs() {
    let tmp = tmpdir();
    for ty in [Ty::F16, Ty::F64] {
        let shape = [40, 7];
        let mut v = random_values(4, 280, ty, 2.0, 0.1, true);
        v[0] = ty.round(0.1); // not exact in binary: widened exactly, not re-rounded
        v[1] = -0.0;
        v[2] = f64::NAN;
        v[3] = f64::INFINITY;
        fill_unit(&mut v, &shape, 1, 5, ty.round(-0.3));
        let x = tmp.path().join(format!("{}.npy", ty.numpy_name()));
        write_npy(&x, ty, false, &shape, &v);
        for act in [true, false] {
            let args: &[&str] = if act { &["--act", "relu"] } else { &[] };
            let j = stats_json(&x, args);
            check(&format!("{} act={act}", ty.numpy_name()), &j, &reference(&v, &shape, act, 1), 0.01);
            assert_eq!(j["dtype"], ty.numpy_name());
        }
    }
    // the exact widened value of an f16
    let x = tmp.path().join("h.npy");
    write_npy(&x, Ty::F16, false, &[2], &[half::f16::from_f64(0.1).to_f64(), half::f16::from_f64(-65504.0).to_f64()]);
    let j = stats_json(&x, &[]);
    assert_eq!(opt_f64(&j, "max"), Some(0.0999755859375));
    assert_eq!(opt_f64(&j, "min"), Some(-65504.0));
}

#[test]
fn int16_inputs_have_exact_statistics() {
    let tmp = tmpdir();
    // (2, 4): relu → [0, 3, 0, 5 | 8, 0, 0, 0]: mean exactly 2, population var (4+1+4+9+36+4+4+4)/8 = 8.25
    let v = vec![-3.0, 3.0, 0.0, 5.0, 8.0, -32768.0, 0.0, -1.0];
    let x = tmp.path().join("i.npy");
    write_npy(&x, Ty::I16, false, &[2, 4], &v);
    let j = stats_json(&x, &["--act", "relu"]);
    check("int16 small", &j, &reference(&v, &[2, 4], true, 1), 0.01);
    assert_eq!(j["dtype"], "int16");
    assert_eq!(opt_f64(&j, "mean"), Some(2.0), "exact mean");
    assert_eq!(opt_f64(&j, "std"), Some(8.25f64.sqrt()));
    assert_eq!(u(&j, "zeros"), 5);
    assert_eq!(active_count(&j), vec![1, 1, 0, 1]);
    let j = stats_json(&x, &[]);
    assert_eq!(opt_f64(&j, "min"), Some(-32768.0));
    assert_eq!(opt_f64(&j, "mean"), Some(-32756.0 / 8.0));
    assert_eq!((u(&j, "nan"), u(&j, "posinf"), u(&j, "finite")), (0, 0, 8));

    // Many chunks (int16: 128K elements a chunk) on one and two threads.
    let shape = [100_000, 3];
    let mut v = random_values(5, 300_000, Ty::I16, 1000.0, 100.0, false);
    fill_unit(&mut v, &shape, 1, 1, -5.0);
    let x = tmp.path().join("big.npy");
    write_npy(&x, Ty::I16, false, &shape, &v);
    let r = reference(&v, &shape, true, 1);
    for j in ["1", "2"] {
        let js = stats_json(&x, &["--act", "relu", "-j", j]);
        check(&format!("int16 big -j {j}"), &js, &r, 0.01);
    }
}

// ------------------------------------------------------------------------------------ several inputs

#[test]
fn several_inputs_give_json_lines_in_order() {
    let tmp = tmpdir();
    let mut files = Vec::new();
    let mut refs = Vec::new();
    for (i, shape) in [vec![5, 3], vec![7], vec![2, 3, 4]].into_iter().enumerate() {
        let n = shape.iter().product();
        let v = random_values(10 + i as u64, n, Ty::F32, 1.0, 0.0, true);
        let f = tmp.path().join(format!("in{i}.npy"));
        write_npy(&f, Ty::F32, false, &shape, &v);
        refs.push(reference(&v, &shape, true, 1));
        files.push(p(&f));
    }
    let mut args = vec!["stats".to_string(), "--json".into(), "--act".into(), "relu".into()];
    args.extend(files.iter().cloned());
    let run = relu(&args);
    run.ok();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 3, "one object per input: {}", run.stdout);
    for ((j, r), f) in lines.iter().zip(&refs).zip(&files) {
        assert_eq!(j["input"].as_str(), Some(f.as_str()));
        check(f, j, r, 0.01);
    }
    // Relative paths are reported as given.
    let run = relu_in(Some(tmp.path()), ["stats", "--json", "in1.npy", "in0.npy"], None);
    let lines = run.json_lines();
    assert_eq!(lines.iter().map(|j| j["input"].as_str().unwrap()).collect::<Vec<_>>(), ["in1.npy", "in0.npy"]);
}

#[test]
fn one_bad_input_among_several_fails_but_the_good_ones_are_printed() {
    let tmp = tmpdir();
    let good1 = tmp.path().join("good1.npy");
    let good2 = tmp.path().join("good2.npy");
    write_npy(&good1, Ty::F32, false, &[2, 2], &[1.0, -1.0, 0.0, 2.0]);
    write_npy(&good2, Ty::F64, false, &[3], &[1.0, 2.0, 3.0]);
    // A truncated file: the header promises 100 floats, the file holds 2.
    let trunc = tmp.path().join("truncated.npy");
    write_npy(&trunc, Ty::F32, false, &[100], &[1.0; 100]);
    let bytes = fs::read(&trunc).unwrap();
    let header_len = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    fs::write(&trunc, &bytes[..header_len + 8]).unwrap();
    let missing = tmp.path().join("missing.npy");
    let notnpy = tmp.path().join("text.npy");
    fs::write(&notnpy, "hello, world\n").unwrap();
    for bad in [&trunc, &missing, &notnpy] {
        let run = relu(["stats", "--json", &p(&good1), &p(bad), &p(&good2)]);
        assert_eq!(run.code, 1, "bad {}: want exit 1, stderr {}", bad.display(), run.stderr);
        let lines = run.json_lines();
        let inputs: Vec<&str> = lines.iter().map(|j| j["input"].as_str().unwrap()).collect();
        assert_eq!(inputs, [p(&good1), p(&good2)], "the good inputs are still printed");
        let name = bad.file_name().unwrap().to_str().unwrap();
        assert!(run.stderr.contains(name), "stderr names {name}: {}", run.stderr);
    }
    // and the table prints them too
    let run = relu(["stats", &p(&good1), &p(&missing), &p(&good2)]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("good1.npy") && run.stdout.contains("good2.npy"), "{}", run.stdout);
}

#[test]
fn human_table_mentions_elements_zeros_and_dead_units() {
    let tmp = tmpdir();
    let x = tmp.path().join("t.npy");
    // (4, 3): 12 elements, unit 1 dead, relu zeros 6
    let v = vec![1.0, -1.0, 2.0, 0.0, -2.0, 3.0, 4.0, -3.0, -1.0, 5.0, 0.0, 6.0];
    write_npy(&x, Ty::F32, false, &[4, 3], &v);
    let run = relu(["stats", "--act", "relu", &p(&x)]);
    run.ok();
    let t = run.stdout.to_lowercase();
    assert!(serde_json::from_str::<Value>(run.stdout.trim()).is_err(), "a table, not JSON: {}", run.stdout);
    for word in ["elements", "zeros", "dead"] {
        assert!(t.contains(word), "table mentions {word}: {}", run.stdout);
    }
    let line = |w: &str| t.lines().find(|l| l.trim_start().starts_with(w)).unwrap_or_else(|| panic!("{w}: {t}"));
    assert!(line("elements").contains("12"), "{t}");
    assert!(line("zeros").contains('6'), "{t}");
    let dead = line("dead");
    assert!(dead.contains('1'), "one dead unit: {t}");
    assert!(t.contains("t.npy"), "the table names the input: {t}");
}

#[test]
fn stdin_gives_the_same_statistics_as_the_file() {
    let tmp = tmpdir();
    let shape = [3000, 5];
    let v = random_values(6, 15_000, Ty::F32, 1.0, 0.0, true);
    let x = tmp.path().join("x.npy");
    write_npy(&x, Ty::F32, false, &shape, &v);
    let file = stats_json(&x, &["--act", "relu"]);
    let run = relu_in(None, ["stats", "--json", "--act", "relu", "-"], Some(fs::read(&x).unwrap()));
    let s = run.json();
    assert_same_stats("stdin vs file", &s, &file);
    check("stdin", &s, &reference(&v, &shape, true, 1), 0.01);
}

// ------------------------------------------------------------------------------------ large arrays, threads

/// One and two threads on arrays of several chunks: the same counts as the reference exactly, the
/// same mean and std to 1e-12.
/// With `act`, unit 1 is made dead and specials are mixed in; without, the values are
/// `offset` + normal, to test the accuracy of the moments far from 0.
#[allow(clippy::too_many_arguments)]
fn large_case(name: &str, ty: Ty, shape: &[usize], fortran: bool, axis_arg: &str, axis: usize, offset: f64, act: bool) {
    let tmp = tmpdir();
    let n: usize = shape.iter().product();
    let mut v = random_values(n as u64 ^ 0x5eed, n, ty, 1.0, offset, act);
    if act {
        fill_unit(&mut v, shape, axis, 1, ty.round(-1.0 - offset.abs()));
    }
    let x = tmp.path().join(format!("{name}.npy"));
    write_npy(&x, ty, fortran, shape, &v);
    let r = reference(&v, shape, act, axis);
    if act {
        assert!(r.units.as_ref().unwrap().1[1] == 0, "unit 1 is dead by construction");
    }
    let mut js = Vec::new();
    for threads in ["1", "2"] {
        let mut args = vec!["--unit-axis", axis_arg, "-j", threads];
        if act {
            args.extend(["--act", "relu"]);
        }
        let j = stats_json(&x, &args);
        check(&format!("{name} -j {threads}"), &j, &r, 0.01);
        js.push(j);
    }
    assert_same_stats(&format!("{name}: -j 1 vs -j 2"), &js[0], &js[1]);
}

#[test]
fn large_dense_f32_one_and_two_threads() {
    // 1.2M f32: about 18 chunks of 64K elements, split over both workers.
    large_case("dense_300k_x4", Ty::F32, &[300_000, 4], false, "1", 1, 0.0, true);
}

#[test]
fn large_dense_odd_unit_count_fortran_and_offset() {
    // Rows that straddle chunk boundaries (65536 % 7 != 0), Fortran order, and values far from 0.
    large_case("dense_odd_c", Ty::F32, &[100_003, 7], false, "1", 1, 0.0, true);
    large_case("dense_odd_f", Ty::F32, &[100_003, 7], true, "-1", 1, 0.0, true);
    large_case("offset_noact", Ty::F32, &[150_001, 3], false, "1", 1, 1e4, false);
}

#[test]
fn large_conv_layouts_one_and_two_threads() {
    // NCHW runs of 111·97 elements, NHWC units fastest, both orders; f16 has 128K-element chunks.
    large_case("nchw_c", Ty::F32, &[20, 3, 111, 97], false, "1", 1, 0.0, true);
    large_case("nchw_f", Ty::F32, &[20, 3, 111, 97], true, "1", 1, 0.0, true);
    large_case("nhwc_c", Ty::F32, &[20, 111, 97, 3], false, "-1", 3, 0.0, true);
    large_case("nhwc_f", Ty::F32, &[20, 111, 97, 3], true, "-1", 3, 0.0, true);
    large_case("nchw_f16_f", Ty::F16, &[10, 5, 123, 119], true, "1", 1, 0.5, true);
    large_case("dense_f64", Ty::F64, &[70_001, 6], false, "1", 1, -0.2, true);
}

// ------------------------------------------------------------------------------------ apply --stats

#[test]
fn apply_stats_equals_stats_of_the_same_pass() {
    let tmp = tmpdir();
    for (name, shape, fortran) in
        [("small", vec![30, 5], false), ("big", vec![200_001, 3], false), ("big_f", vec![50, 4, 77, 71], true)]
    {
        let n: usize = shape.iter().product();
        let mut v = random_values(7 + n as u64, n, Ty::F32, 1.0, 0.0, true);
        fill_unit(&mut v, &shape, 1, 0, -1.0);
        let x = tmp.path().join(format!("{name}.npy"));
        write_npy(&x, Ty::F32, fortran, &shape, &v);
        let want = stats_json(&x, &["--act", "relu"]);
        check(&format!("{name}: stats"), &want, &reference(&v, &shape, true, 1), 0.01);
        for threads in ["1", "2"] {
            let y = tmp.path().join(format!("{name}_y{threads}.npy"));
            let s = tmp.path().join(format!("{name}_s{threads}.json"));
            let run = relu(["apply", &p(&x), "-o", &p(&y), "--stats", &p(&s), "-j", threads]);
            run.ok();
            assert!(run.stdout.is_empty(), "apply -o FILE --stats FILE prints nothing: {}", run.stdout);
            assert!(y.exists(), "{name}: the output is written");
            let text = fs::read_to_string(&s).unwrap();
            let got = parse_stats(text.trim());
            assert_same_stats(&format!("{name} -j {threads}: apply --stats vs stats"), &got, &want);
            assert_eq!(got["activation"], "relu");
            // The output file's own statistics (values as they are) agree with the relu values.
            let of_y = stats_json(&y, &[]);
            for k in ["zeros", "nan", "posinf", "finite", "elements"] {
                assert_eq!(of_y[k], got[k], "{name}: {k} of the output file");
            }
            assert_eq!(opt_f64(&of_y, "min"), opt_f64(&got, "min"));
            assert_eq!(opt_f64(&of_y, "max"), opt_f64(&got, "max"));
        }
    }
}

#[test]
fn apply_stats_dash_goes_to_stdout_only_with_an_output_file() {
    let tmp = tmpdir();
    let x = tmp.path().join("x.npy");
    let v = vec![1.0, -1.0, 0.0, 2.0, f64::NAN, -3.0];
    write_npy(&x, Ty::F32, false, &[3, 2], &v);
    let y = tmp.path().join("y.npy");
    let run = relu(["apply", &p(&x), "-o", &p(&y), "--stats", "-"]);
    let j = run.json();
    check("apply --stats -", &j, &reference(&v, &[3, 2], true, 1), 0.01);
    assert!(fs::read(&y).unwrap().starts_with(b"\x93NUMPY"), "the array went to the file");

    let xs = p(&x);
    for args in [vec!["apply", &xs, "--stats", "-"], vec!["apply", &xs, "-o", "-", "--stats", "-"]] {
        let run = relu(&args);
        assert_eq!(run.code, 2, "{args:?}: --stats - with the array on stdout is a usage error; {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(run.stderr.contains("stats"), "{}", run.stderr);
    }
    // stdin to a file, stats to stdout
    let run = relu_in(None, ["apply", "-", "-o", &p(&y), "--stats", "-"], Some(fs::read(&x).unwrap()));
    check("apply stdin --stats -", &run.json(), &reference(&v, &[3, 2], true, 1), 0.01);
}

// ------------------------------------------------------------------------------------ merge-stats

/// Writes the rows `lo..hi` of a C-ordered (rows, cols) array to `path`.
fn write_rows(path: &Path, ty: Ty, v: &[f64], cols: usize, lo: usize, hi: usize) {
    write_npy(path, ty, false, &[hi - lo, cols], &v[lo * cols..hi * cols]);
}

fn merge(args: &[String]) -> Run {
    let mut a = vec!["merge-stats".to_string()];
    a.extend(args.iter().cloned());
    relu(&a)
}

fn save_stats(x: &Path, json: &Path) {
    let run = relu(["stats", "--json", "--act", "relu", &p(x)]);
    run.ok();
    fs::write(json, &run.stdout).unwrap();
}

#[test]
fn merge_of_three_shards_equals_the_whole() {
    let tmp = tmpdir();
    let (rows, cols) = (150_000, 6);
    let mut v = random_values(8, rows * cols, Ty::F32, 1.5, 0.3, true);
    fill_unit(&mut v, &[rows, cols], 1, 4, -2.0);
    // unit 5 fires only in the last shard: dead in two shards, alive when merged
    for r in 0..rows {
        v[r * cols + 5] = if r == rows - 1 { 1.0 } else { -1.0 };
    }
    let whole = tmp.path().join("whole.npy");
    write_npy(&whole, Ty::F32, false, &[rows, cols], &v);
    let want = stats_json(&whole, &["--act", "relu"]);
    let r = reference(&v, &[rows, cols], true, 1);
    check("whole", &want, &r, 0.01);

    let cuts = [0, 40_000, 97_001, rows];
    let mut jsons = Vec::new();
    let mut shards = Vec::new();
    for s in 0..3 {
        let x = tmp.path().join(format!("shard{s}.npy"));
        write_rows(&x, Ty::F32, &v, cols, cuts[s], cuts[s + 1]);
        let j = tmp.path().join(format!("shard{s}.json"));
        save_stats(&x, &j);
        jsons.push(p(&j));
        shards.push(p(&x));
    }
    // files given separately
    let m = merge(&jsons).json();
    check("merge of 3 files", &m, &r, 0.01);
    assert_same_stats("merge of 3 files vs whole", &m, &want);
    assert_eq!(m["merged"].as_u64(), Some(3), "merged counts the objects: {m}");
    assert_eq!(m["activation"], "relu");
    assert_eq!(u(&m["units"], "elements_per_unit"), rows as u64);
    assert_eq!(m["units"]["dead_indices"], serde_json::json!([4]));

    // one JSON Lines file holding all three (as `relu stats --json a b c` writes it)
    let mut args = vec!["stats".to_string(), "--json".into(), "--act".into(), "relu".into()];
    args.extend(shards.iter().cloned());
    let run = relu(&args);
    run.ok();
    assert_eq!(run.stdout.lines().count(), 3);
    let all = tmp.path().join("all.jsonl");
    fs::write(&all, &run.stdout).unwrap();
    let m2 = merge(&[p(&all)]).json();
    check("merge of one JSON Lines file", &m2, &r, 0.01);
    assert_eq!(m2["merged"].as_u64(), Some(3));

    // merging in another order, and a merge of merges, give the same statistics
    let m3 = merge(&[jsons[2].clone(), jsons[0].clone(), jsons[1].clone()]).json();
    assert_same_stats("merge order", &m3, &want);
    let first_two = tmp.path().join("first_two.json");
    fs::write(&first_two, merge(&jsons[..2]).ok().stdout.clone()).unwrap();
    let m4 = merge(&[p(&first_two), jsons[2].clone()]).json();
    assert_same_stats("merge of a merge", &m4, &want);
    assert_eq!(m4["merged"].as_u64(), Some(3), "a merged object counts its own shards: {m4}");

    // from stdin
    let run = relu_in(None, ["merge-stats", "-"], Some(fs::read(&all).unwrap()));
    assert_same_stats("merge from stdin", &run.json(), &want);
}

#[test]
fn every_split_point_of_a_small_array_merges_to_the_whole() {
    let tmp = tmpdir();
    let (rows, cols) = (10, 4);
    let nan = f64::NAN;
    #[rustfmt::skip]
    let v: Vec<f64> = vec![
        0.5, -1.0, 3.25, nan,
        nan, nan, nan, nan,
        -0.0, -1.0, 2.0, f64::INFINITY,
        1e-3, -1.0, 0.0, 7.0,
        f64::NEG_INFINITY, -1.0, 2.5, -0.5,
        8.0, -1.0, -2.0, 0.75,
        0.0, -1.0, 1e4, -3.0,
        -6.0, -1.0, 0.125, 1.0,
        2.0, -1.0, -0.25, nan,
        3.0, -1.0, 5.5, 0.0,
    ];
    let whole = tmp.path().join("whole.npy");
    write_npy(&whole, Ty::F32, false, &[rows, cols], &v);
    let want = stats_json(&whole, &["--act", "relu"]);
    let r = reference(&v, &[rows, cols], true, 1);
    check("whole", &want, &r, 0.01);
    assert_eq!(r.units.as_ref().unwrap().1[1], 0, "unit 1 is dead");
    for k in 1..rows {
        let a = tmp.path().join(format!("a{k}.npy"));
        let b = tmp.path().join(format!("b{k}.npy"));
        write_rows(&a, Ty::F32, &v, cols, 0, k);
        write_rows(&b, Ty::F32, &v, cols, k, rows);
        let (ja, jb) = (tmp.path().join(format!("a{k}.json")), tmp.path().join(format!("b{k}.json")));
        save_stats(&a, &ja);
        save_stats(&b, &jb);
        let m = merge(&[p(&ja), p(&jb)]).json();
        check(&format!("split at row {k}"), &m, &r, 0.01);
        assert_same_stats(&format!("split at row {k}"), &m, &want);
    }
}

#[test]
fn merging_different_unit_counts_fails() {
    let tmp = tmpdir();
    let a = tmp.path().join("a.npy");
    let b = tmp.path().join("b.npy");
    let c = tmp.path().join("c.npy");
    write_npy(&a, Ty::F32, false, &[3, 4], &[1.0; 12]);
    write_npy(&b, Ty::F32, false, &[3, 5], &[1.0; 15]);
    write_npy(&c, Ty::F32, false, &[12], &[1.0; 12]);
    let (ja, jb, jc) = (tmp.path().join("a.json"), tmp.path().join("b.json"), tmp.path().join("c.json"));
    save_stats(&a, &ja);
    save_stats(&b, &jb);
    save_stats(&c, &jc);
    let out = tmp.path().join("m.json");
    for (x, y) in [(&ja, &jb), (&jb, &ja), (&ja, &jc), (&jc, &ja)] {
        let run = merge(&["-o".into(), p(&out), p(x), p(y)]);
        assert_eq!(run.code, 1, "merging {} and {}: want exit 1; stderr {}", x.display(), y.display(), run.stderr);
        assert!(run.stderr.contains("unit"), "the message says why: {}", run.stderr);
        assert!(run.stdout.trim().is_empty(), "nothing merged on stdout: {}", run.stdout);
        assert!(!out.exists(), "no output file after a failed merge");
    }
    // different thresholds or activations are not mixed either
    let jt = tmp.path().join("t.json");
    let run = relu(["stats", "--json", "--act", "relu", "--dead-threshold", "0.5", &p(&a)]);
    fs::write(&jt, &run.ok().stdout).unwrap();
    assert_eq!(merge(&[p(&ja), p(&jt)]).code, 1, "different dead thresholds");
    let jn = tmp.path().join("n.json");
    fs::write(&jn, &relu(["stats", "--json", &p(&a)]).ok().stdout).unwrap();
    assert_eq!(merge(&[p(&ja), p(&jn)]).code, 1, "relu and no activation");
}

#[test]
fn merge_output_file_and_bad_json() {
    let tmp = tmpdir();
    let a = tmp.path().join("a.npy");
    let v: Vec<f64> = (0..12).map(|i| i as f64 - 5.5).collect();
    write_npy(&a, Ty::F64, false, &[6, 2], &v);
    let ja = tmp.path().join("a.json");
    save_stats(&a, &ja);
    let out = tmp.path().join("merged.json");
    let run = merge(&["-o".into(), p(&out), p(&ja), p(&ja)]);
    run.ok();
    assert!(run.stdout.trim().is_empty(), "-o OUT: nothing on stdout: {}", run.stdout);
    let m = parse_stats(fs::read_to_string(&out).unwrap().trim());
    // the same array twice: counts double, min/max/mean/std unchanged
    let one = parse_stats(fs::read_to_string(&ja).unwrap().trim());
    for k in ["elements", "zeros", "negative_inputs", "finite"] {
        assert_eq!(u(&m, k), 2 * u(&one, k), "{k}");
    }
    assert_eq!(opt_f64(&m, "min"), opt_f64(&one, "min"));
    assert_eq!(opt_f64(&m, "max"), opt_f64(&one, "max"));
    assert!(close(opt_f64(&m, "mean").unwrap(), opt_f64(&one, "mean").unwrap(), REL));
    assert!(close(opt_f64(&m, "std").unwrap(), opt_f64(&one, "std").unwrap(), REL));
    assert_eq!(active_count(&m), active_count(&one).iter().map(|c| 2 * c).collect::<Vec<_>>());
    assert_eq!(m["merged"].as_u64(), Some(2));

    // not JSON: exit 1, the file named
    let bad = tmp.path().join("notes.txt");
    fs::write(&bad, "this is not json\n").unwrap();
    let run = merge(&[p(&ja), p(&bad)]);
    assert_eq!(run.code, 1, "stderr {}", run.stderr);
    assert!(run.stderr.contains("notes.txt"), "the bad file is named: {}", run.stderr);
    // JSON, but not statistics
    let other = tmp.path().join("other.json");
    fs::write(&other, "{\"hello\": 1}\n").unwrap();
    let run = merge(&[p(&ja), p(&other)]);
    assert_eq!(run.code, 1, "stderr {}", run.stderr);
    assert!(run.stderr.contains("other.json"), "{}", run.stderr);
    // a missing file
    let run = merge(&[p(&ja), p(&tmp.path().join("absent.json"))]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("absent.json"), "{}", run.stderr);
    // an empty file: nothing to merge is an error, not an empty object
    let empty = tmp.path().join("empty.json");
    fs::write(&empty, "").unwrap();
    let run = merge(&[p(&empty)]);
    assert_eq!(run.code, 1, "nothing to merge: {}", run.stdout);
}

#[test]
fn merge_of_a_shard_without_finite_values() {
    let tmp = tmpdir();
    let a = tmp.path().join("a.npy");
    let b = tmp.path().join("b.npy");
    write_npy(&a, Ty::F32, false, &[2, 2], &[f64::NAN, f64::INFINITY, f64::NAN, f64::NAN]);
    write_npy(&b, Ty::F32, false, &[2, 2], &[1.0, -2.0, 3.0, 0.5]);
    let (ja, jb) = (tmp.path().join("a.json"), tmp.path().join("b.json"));
    save_stats(&a, &ja);
    save_stats(&b, &jb);
    let all: Vec<f64> = vec![f64::NAN, f64::INFINITY, f64::NAN, f64::NAN, 1.0, -2.0, 3.0, 0.5];
    let r = reference(&all, &[4, 2], true, 1);
    for order in [[p(&ja), p(&jb)], [p(&jb), p(&ja)]] {
        let m = merge(&order).json();
        check("merge with an all-NaN shard", &m, &r, 0.01);
    }
    // two shards with no finite value: still null
    let m = merge(&[p(&ja), p(&ja)]).json();
    assert!(m["mean"].is_null() && m["std"].is_null() && m["min"].is_null(), "{m}");
}

/// merge-stats must read the numbers it merges exactly: a float printed as the shortest decimal
/// that reads back to the same f64 has to read back to that f64, or min/max (and mean/std) drift by
/// an ulp per merge. 1.8862230777740479 is an f32 widened to f64 whose shortest decimal a
/// non-correctly-rounding reader takes one ulp off.
#[test]
fn merge_reads_the_numbers_back_exactly() {
    let tmp = tmpdir();
    let a = tmp.path().join("a.npy");
    let big = f32::from_bits(0x3FF1_6FC2) as f64;
    // values in [-1, 1], then ±big: big is the max
    let mut v: Vec<f64> = (0..64).map(|i| ((i % 17) as f64 - 8.0) / 8.0).collect();
    v[5] = big;
    v[9] = -big;
    write_npy(&a, Ty::F32, false, &[16, 4], &v);
    let ja = tmp.path().join("a.json");
    save_stats(&a, &ja);
    let one = parse_stats(fs::read_to_string(&ja).unwrap().trim());
    let rf = reference(&v, &[16, 4], true, 1);
    check("stats", &one, &rf, 0.01);
    // one object merged alone: the same numbers, bit for bit
    let m1 = merge(&[p(&ja)]).json();
    // the same object twice: min/max exactly, mean/std to rounding
    let m2 = merge(&[p(&ja), p(&ja)]).json();
    for k in ["min", "max", "mean", "std"] {
        let (x, y) = (opt_f64(&one, k).unwrap(), opt_f64(&m1, k).unwrap());
        assert_eq!(x.to_bits(), y.to_bits(), "{k}: merge-stats of one object changed {x:?} into {y:?}");
    }
    for k in ["min", "max"] {
        assert_eq!(opt_f64(&m2, k), opt_f64(&one, k), "{k} of a merge of the object with itself");
    }
    assert_eq!(rf.max, Some(big));
    assert_eq!(opt_f64(&m2, "max"), Some(big));
}

#[test]
fn threshold_must_be_a_fraction_and_usage_errors_stop_every_input() {
    let dir = tmpdir();
    let f = dir.path().join("a.npy");
    write_npy(&f, Ty::F32, false, &[2, 3], &[1.0, -1.0, 0.0, 2.0, 3.0, -4.0]);
    for bad in ["nan", "-0.5", "inf", "x"] {
        let r = relu(["stats", "--json", "--dead-threshold", bad, &p(&f)]);
        assert_eq!(r.code, 2, "--dead-threshold {bad}: {}", r.stderr);
    }
    let r = relu(["stats", "--json", "--unit-axis", "5", &p(&f), &p(&f)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn merged_objects_have_no_single_shape_and_empty_arrays_no_dead_units() {
    let dir = tmpdir();
    let f = dir.path().join("a.npy");
    write_npy(&f, Ty::F32, false, &[2, 3], &[1.0, -1.0, 0.0, 2.0, 3.0, -4.0]);
    let s = dir.path().join("s.json");
    std::fs::write(&s, relu(["stats", "--json", &p(&f)]).ok().stdout.clone()).unwrap();
    let m = relu(["merge-stats", &p(&s), &p(&s)]).json();
    assert_eq!(m["elements"], 12);
    assert!(m["shape"].is_null(), "{m}");
    let e = dir.path().join("e.npy");
    write_npy(&e, Ty::F32, false, &[0, 3], &[]);
    let j = relu(["stats", "--json", &p(&e)]).json();
    assert_eq!(j["units"]["count"], 3);
    assert_eq!(j["units"]["dead"], 0, "{j}");
    assert_eq!(j["units"]["near_dead"], 0, "{j}");
}
