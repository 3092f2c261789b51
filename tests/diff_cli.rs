//! `relu diff A B` through the binary (SPEC §7): tensors matched by name across directories and
//! containers (or two single arrays as one pair), the measures against hand-computed values and
//! against NumPy formulas that follow SciPy's references, units that died and revived,
//! `--range`, `--fail-over` (exit 3 after the output), and the usage errors. The files are
//! written here.

mod common;

use common::{python, relu};
use serde_json::Value;
use std::io::Write;
use std::path::Path;

/// `rows × units` f32 values in [-2, 2), deterministic; the units in `dead` never positive.
fn layer(seed: u64, rows: usize, units: usize, dead: &[usize]) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..rows * units)
        .map(|i| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((s >> 33) as f64 / (1u64 << 31) as f64 * 4.0 - 2.0) as f32;
            if dead.contains(&(i % units)) {
                -v.abs() - 0.01
            } else {
                v
            }
        })
        .collect()
}

fn npy_bytes(shape: &[usize], v: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    b
}

fn npz(path: &Path, members: &[(&str, &[usize], &[f32])]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, shape, v) in members {
        z.start_file(format!("{name}.npy"), o).unwrap();
        z.write_all(&npy_bytes(shape, v)).unwrap();
    }
    z.finish().unwrap();
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn objects(so: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(so)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn a_file_against_itself_is_zero_apart() {
    let d = tempfile::tempdir().unwrap();
    let x = d.path().join("x.npy");
    std::fs::write(&x, npy_bytes(&[50, 6], &layer(1, 50, 6, &[2]))).unwrap();
    let (code, so, err) = relu(&["diff", "--json", p(&x), p(&x), "--fail-over", "js=0", "--fail-over", "w1=0"], None);
    assert_eq!(code, 0, "{err}");
    let o = &objects(&so)[0];
    for k in ["w1", "js", "psi", "ks"] {
        assert_eq!(f(&o[k]), 0.0, "{k}");
    }
    assert_eq!(o["name"], "x");
    assert_eq!(o["mean"][0], o["mean"][1]);
    let u = &o["units"];
    assert_eq!(
        (u["newly_dead"].clone(), u["revived"].clone()),
        (Value::from(Vec::<u64>::new()), Value::from(Vec::<u64>::new()))
    );
    assert_eq!(f(&u["max_abs_delta_active_rate"]), 0.0);
    assert_eq!(f(&u["mean_abs_delta_active_rate"]), 0.0);
    assert_eq!(o["exceeds"], Value::from(Vec::<String>::new()));
    assert_eq!(o["edges"].as_array().unwrap().len(), 101, "100 bins by default");
    // the table says the same
    let (code, so, err) = relu(&["diff", p(&x), p(&x)], None);
    assert_eq!(code, 0, "{err}");
    let t = String::from_utf8(so).unwrap();
    let row = t.lines().find(|l| l.starts_with("x ")).unwrap();
    assert!(row.split_whitespace().skip(1).take(4).all(|c| c == "0"), "{t}");
}

#[test]
fn disjoint_distributions_are_as_far_apart_as_they_can_be() {
    // A all at 0, B all at 4: five bins over [0, 4], centres 0.4 ... 3.6
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.npy"), d.path().join("b.npy"));
    std::fs::write(&a, npy_bytes(&[10], &[0.0; 10])).unwrap();
    std::fs::write(&b, npy_bytes(&[4], &[4.0; 4])).unwrap();
    let (code, so, err) = relu(&["diff", "--json", "--bins", "5", p(&a), p(&b)], None);
    assert_eq!(code, 0, "{err}");
    let o = &objects(&so)[0];
    // two single files are one pair, named as A
    assert_eq!(o["name"], "a");
    assert_eq!((o["a"].as_str().unwrap(), o["b"].as_str().unwrap()), (p(&a), p(&b)));
    assert_eq!(f(&o["js"]), 1.0, "one bit");
    assert_eq!(f(&o["ks"]), 1.0);
    // every unit of CDF gap between the first centre and the last, 0.4 and 3.6
    assert!((f(&o["w1"]) - 3.2).abs() < 1e-14, "{}", o["w1"]);
    // PSI: (1 - 1e-6) ln(1e6), twice
    let psi = 2.0 * (1.0 - 1e-6) * (1e6f64).ln();
    assert!((f(&o["psi"]) - psi).abs() <= 1e-13 * psi, "{} {psi}", o["psi"]);
    assert_eq!(o["sparsity"], serde_json::json!([1.0, 0.0]));
    assert_eq!(o["units"], Value::Null, "1-D arrays have no units");
}

#[test]
fn tensors_matched_by_name_across_a_directory_and_a_container() {
    let d = tempfile::tempdir().unwrap();
    let (da, db) = (d.path().join("epoch_1"), d.path().join("epoch_2"));
    std::fs::create_dir_all(da.join("sub")).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let l1a = layer(1, 40, 8, &[1, 3]);
    let l1b = layer(2, 40, 8, &[3, 5, 6]);
    let l2a = layer(3, 30, 4, &[]);
    let l2b: Vec<f32> = layer(4, 30, 4, &[]).iter().map(|x| x * 2.0 + 1.0).collect();
    std::fs::write(da.join("layer1.npy"), npy_bytes(&[40, 8], &l1a)).unwrap();
    std::fs::write(da.join("sub/layer2.npy"), npy_bytes(&[30, 4], &l2a)).unwrap();
    std::fs::write(da.join("only_a.npy"), npy_bytes(&[3], &[1.0, 2.0, 3.0])).unwrap();
    let other = layer(5, 30, 3, &[]);
    npz(
        &db.join("net.npz"),
        &[("layer1", &[40, 8], &l1b), ("sub/layer2", &[30, 4], &l2b), ("only_b", &[30, 3], &other)],
    );
    let (code, so, err) = relu(&["diff", "--json", p(&da), p(&db)], None);
    assert_eq!(code, 0, "{err}");
    let objs = objects(&so);
    let names: Vec<&str> = objs.iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["layer1", "sub/layer2"]);
    // the tensors on one side only are named on stderr
    assert!(err.contains("only in") && err.contains("only_a") && err.contains("only_b"), "{err}");
    let u = &objs[0]["units"];
    assert_eq!(u["newly_dead"], serde_json::json!([5, 6]));
    assert_eq!(u["revived"], serde_json::json!([1]));
    // active rates from the data: the largest change and the mean change
    let rate = |v: &[f32], k: usize| v.iter().skip(k).step_by(8).filter(|&&x| x > 0.0).count() as f64 / 40.0;
    let deltas: Vec<f64> = (0..8).map(|k| (rate(&l1b, k) - rate(&l1a, k)).abs()).collect();
    let max = deltas.iter().cloned().fold(0.0, f64::max);
    assert_eq!(f(&u["max_abs_delta_active_rate"]), max);
    assert_eq!(u["argmax_delta_unit"], deltas.iter().position(|&x| x == max).unwrap());
    assert!((f(&u["mean_abs_delta_active_rate"]) - deltas.iter().sum::<f64>() / 8.0).abs() < 1e-15);
    // the edges span both sides' finite values
    let e = objs[1]["edges"].as_array().unwrap();
    let all = l2a.iter().chain(&l2b).map(|&x| x as f64);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(x), h.max(x)));
    assert_eq!((f(&e[0]), f(&e[100])), (lo, hi));
    assert!(f(&objs[1]["w1"]) > 0.5, "B moved by about one: {}", objs[1]["w1"]);
    // nothing in common is an error that names both sides' tensors
    let lone = d.path().join("lone.npy");
    std::fs::write(&lone, npy_bytes(&[3], &[1.0, 2.0, 3.0])).unwrap();
    let (code, _, err) = relu(&["diff", p(&da), p(&db.join("net.npz"))], None);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = relu(&["diff", p(&lone), p(&db)], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no tensor name in common") && err.contains("only_b"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_fixed_range_counts_only_what_falls_inside() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.npz"), d.path().join("b.npy"));
    npz(&a, &[("x", &[6], &[-5.0, 0.1, 0.2, 0.6, 0.7, f32::NAN])]);
    std::fs::write(&b, npy_bytes(&[5], &[0.1, 0.6, 0.7, 0.8, 9.0])).unwrap();
    let (code, so, err) = relu(&["diff", "--json", "--bins", "2", "--range=0:1", &format!("{}:x", p(&a)), p(&b)], None);
    assert_eq!(code, 0, "{err}");
    let o = &objects(&so)[0];
    assert_eq!(o["name"], "x");
    assert_eq!(o["edges"], serde_json::json!([0.0, 0.5, 1.0]));
    assert_eq!(o["in_range"], serde_json::json!([4, 4]));
    // p = (1/2, 1/2), q = (1/4, 3/4)
    assert_eq!(f(&o["ks"]), 0.25);
    assert_eq!(f(&o["w1"]), 0.125);
}

#[test]
fn fail_over_exits_3_after_printing_everything() {
    let d = tempfile::tempdir().unwrap();
    let (da, db) = (d.path().join("a"), d.path().join("b"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let same = layer(7, 20, 4, &[]);
    for (dir, moved) in [(&da, 0.0f32), (&db, 3.0)] {
        std::fs::write(dir.join("still.npy"), npy_bytes(&[20, 4], &same)).unwrap();
        let v: Vec<f32> = layer(8, 20, 4, &[]).iter().map(|x| x + moved).collect();
        std::fs::write(dir.join("moved.npy"), npy_bytes(&[20, 4], &v)).unwrap();
    }
    let (code, so, err) = relu(&["diff", "--json", p(&da), p(&db), "--fail-over", "ks=0.1"], None);
    assert_eq!(code, 3, "{err}");
    let objs = objects(&so);
    assert_eq!(objs.len(), 2, "every tensor is printed");
    assert_eq!(objs[0]["exceeds"], serde_json::json!(["ks"]));
    assert_eq!(objs[1]["exceeds"], serde_json::json!([]));
    assert!(err.contains("moved") && !err.contains("still") && err.contains("ks"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // a limit nothing passes, and a unit metric
    let (code, _, err) = relu(&["diff", p(&da), p(&db), "--fail-over", "w1=100", "--fail-over", "newly_dead=0"], None);
    assert_eq!(code, 0, "{err}");
    // the table marks the tensor that is over
    let (code, so, _) = relu(&["diff", p(&da), p(&db), "--fail-over", "js=0.5"], None);
    assert_eq!(code, 3);
    let t = String::from_utf8(so).unwrap();
    assert!(t.lines().any(|l| l.starts_with("moved ") && l.trim_end().ends_with("js")), "{t}");
    // -o writes the same JSON and still exits 3
    let out = d.path().join("drift.jsonl");
    let (code, so, err) = relu(&["diff", p(&da), p(&db), "--fail-over", "ks=0.1", "-o", p(&out)], None);
    assert_eq!((code, so.len()), (3, 0), "{err}");
    assert_eq!(objects(&std::fs::read(&out).unwrap()).len(), 2);
}

#[test]
fn usage_errors_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let x = d.path().join("x.npy");
    std::fs::write(&x, npy_bytes(&[3], &[1.0, 2.0, 3.0])).unwrap();
    for args in [
        &["diff", p(&x), p(&x), "--fail-over", "jsd=0.1"][..],
        &["diff", p(&x), p(&x), "--fail-over", "js"],
        &["diff", p(&x), p(&x), "--fail-over", "js=much"],
        &["diff", p(&x), p(&x), "--range=p1:p99"],
        &["diff", p(&x), p(&x), "--range=2:1"],
        &["diff", p(&x), p(&x), "--bins", "0"],
        &["diff", "-", p(&x)],
        &["diff", p(&x)],
    ] {
        let (code, _, err) = relu(args, Some(Vec::new()));
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    let (code, _, err) = relu(&["diff", p(&x), p(&d.path().join("missing.npy"))], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("missing.npy"), "{err}");
}

/// The measures against NumPy formulas that follow SciPy step for step:
/// `wasserstein_distance(centres, centres, cA, cB)` (`_cdf_distance`), `jensenshannon(p, q,
/// base=2) ** 2` (`rel_entr`), PSI with fractions floored at 1e-6, KS at the edges.
const REFERENCE: &str = r#"
import json, sys
import numpy as np
D = sys.argv[1]
rng = np.random.default_rng(25)
cases = {
    "normal": (rng.standard_normal((400, 16)).astype(np.float32), (rng.standard_normal((400, 16)) * 1.5 + 0.3).astype(np.float32), 100),
    "heavy": (rng.standard_t(2, 3000), rng.standard_t(3, 2500) + 0.1, 37),
    "close": (rng.standard_normal(20000).astype(np.float32), rng.standard_normal(20000).astype(np.float32), 64),
}
want = {}
for name, (a, b, bins) in cases.items():
    np.save(f"{D}/A_{name}.npy", a)
    np.save(f"{D}/B_{name}.npy", b)
    fa, fb = a[np.isfinite(a)].astype(np.float64), b[np.isfinite(b)].astype(np.float64)
    lo, hi = min(fa.min(), fb.min()), max(fa.max(), fb.max())
    ca, edges = np.histogram(fa, bins=bins, range=(lo, hi))
    cb, _ = np.histogram(fb, bins=bins, range=(lo, hi))
    ca, cb = ca.astype(np.float64), cb.astype(np.float64)
    cen = (edges[:-1] + edges[1:]) / 2
    Fa, Fb = np.cumsum(ca) / ca.sum(), np.cumsum(cb) / cb.sum()
    w1 = float(np.sum(np.abs(Fa - Fb)[:-1] * np.diff(cen)))
    p, q = ca / ca.sum(), cb / cb.sum()
    m = (p + q) / 2
    rel = lambda x, y: np.where(x > 0, x * np.log(np.where(x > 0, x, 1) / y), 0.0)
    js = float(np.sqrt((np.sum(rel(p, m)) + np.sum(rel(q, m))) / np.log(2) / 2) ** 2)
    pf, qf = np.maximum(p, 1e-6), np.maximum(q, 1e-6)
    psi = float(np.sum((pf - qf) * np.log(pf / qf)))
    ks = float(np.max(np.abs(Fa - Fb)))
    want[name] = {"bins": bins, "edges": [float(e) for e in edges], "w1": w1, "js": js, "psi": psi, "ks": ks,
                  "mean": [float(fa.mean()), float(fb.mean())], "std": [float(fa.std()), float(fb.std())]}
json.dump(want, open(f"{D}/want.json", "w"))
"#;

#[test]
fn measures_match_the_scipy_formulas() {
    let Some(py) = python() else {
        eprintln!("SKIPPED: RELU_SKIP_INTEROP=1");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(py).args(["-c", REFERENCE, p(d.path())]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want: Value = serde_json::from_slice(&std::fs::read(d.path().join("want.json")).unwrap()).unwrap();
    for (name, w) in want.as_object().unwrap() {
        let (a, b) = (d.path().join(format!("A_{name}.npy")), d.path().join(format!("B_{name}.npy")));
        let bins = w["bins"].to_string();
        let (code, so, err) = relu(&["diff", "--json", "--bins", &bins, p(&a), p(&b)], None);
        assert_eq!(code, 0, "{name}: {err}");
        let o = &objects(&so)[0];
        assert_eq!(o["edges"], w["edges"], "{name}: edges");
        for k in ["w1", "js", "psi", "ks"] {
            let (got, want) = (f(&o[k]), f(&w[k]));
            assert!((got - want).abs() <= 1e-12 * want.abs(), "{name}: {k} {got} want {want}");
        }
        for k in ["mean", "std"] {
            for s in 0..2 {
                let (got, want) = (f(&o[k][s]), f(&w[k][s]));
                assert!((got - want).abs() <= 1e-12 * want.abs().max(1e-300), "{name}: {k}[{s}] {got} want {want}");
            }
        }
    }
}

#[test]
fn trend_w1_is_diff_over_the_edges_all_checkpoints_share() {
    // three checkpoints; together their values span exactly [-3, 3]
    let d = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for (k, (shift, end)) in [(0.0f32, -3.0f32), (0.5, 0.0), (1.0, 3.0)].into_iter().enumerate() {
        let dir = d.path().join(format!("epoch_{k}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut v: Vec<f32> = layer(10 + k as u64, 25, 4, &[]).iter().map(|x| x * 0.9 + shift).collect();
        v[0] = end;
        std::fs::write(dir.join("l.npy"), npy_bytes(&[25, 4], &v)).unwrap();
        dirs.push(dir);
    }
    let (code, so, err) = relu(&["trend", "--json", "--metric", "w1", p(&dirs[0]), p(&dirs[1]), p(&dirs[2])], None);
    assert_eq!(code, 0, "{err}");
    let objs = objects(&so);
    assert_eq!(objs.len(), 3);
    assert_eq!(objs[0]["w1_from_previous"], Value::Null, "nothing before the first");
    for k in 1..3 {
        let (code, so, err) =
            relu(&["diff", "--json", "--range=-3:3", p(&dirs[k - 1].join("l.npy")), p(&dirs[k].join("l.npy"))], None);
        assert_eq!(code, 0, "{err}");
        let want = f(&objects(&so)[0]["w1"]);
        assert!(want > 0.1);
        assert_eq!(f(&objs[k]["w1_from_previous"]), want, "checkpoint {k}");
    }
    // without --metric w1 there is no such key; the table shows the metric
    let (_, so, _) = relu(&["trend", "--json", p(&dirs[0]), p(&dirs[1])], None);
    assert!(objects(&so)[1].get("w1_from_previous").is_none());
    let (code, so, err) = relu(&["trend", "--metric", "w1", p(&dirs[0]), p(&dirs[1]), p(&dirs[2])], None);
    assert_eq!(code, 0, "{err}");
    let t = String::from_utf8(so).unwrap();
    assert!(
        t.starts_with("W1 from the previous checkpoint") && t.lines().any(|l| l.starts_with("l ") && l.contains(" -")),
        "{t}"
    );
}
