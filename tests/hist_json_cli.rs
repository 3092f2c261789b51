//! Histogram JSON read back from files (`relu hist --from-stats`, `relu merge-stats`) is checked
//! before anything indexes or draws it: malformed edges and counts are refused in every output
//! format with one line naming the file and the object, exit status 1, and no output file left.
//! Also: inputs that hold no arrays at all, and `COLUMNS` values past any screen.

use assert_cmd::Command;
use relu::hist::HistJson;
use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// What a run of the binary left: exit code (`None`: killed, e.g. by the timeout), stdout, stderr.
struct Run {
    code: Option<i32>,
    out: Vec<u8>,
    err: String,
}

/// Runs `relu ARGS` in `dir` with `env`, killed after 20 s (the infinite-span SVG used to hang).
fn relu_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::cargo_bin("relu").unwrap();
    c.current_dir(dir).args(args).timeout(Duration::from_secs(20)).env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    Run { code: o.status.code(), out: o.stdout, err }
}

/// One statistics object as `relu stats --json` writes it, with `hist` as given.
fn stats_object(input: &str, hist: Value) -> Value {
    json!({
        "input": input, "activation": null, "dtype": "float32", "shape": [3], "elements": 3,
        "zeros": 0, "sparsity": 0.0, "negative_inputs": 0, "nan": 0, "posinf": 0, "neginf": 0,
        "finite": 3, "min": 1.0, "max": 3.0, "mean": 2.0, "std": 0.8, "units": null, "hist": hist
    })
}

fn hist(edges: Value, counts: Value) -> Value {
    json!({"edges": edges, "counts": counts, "underflow": 0, "overflow": 0, "nan": 0})
}

/// Asserts a refusal: exit 1, nothing on stdout, one line on stderr, `relu: FILE: ...` with every
/// one of `says` in it.
fn assert_refused(r: &Run, file: &str, says: &[&str], what: &str) {
    assert_eq!(r.code, Some(1), "{what}: {}", r.err);
    assert!(r.out.is_empty(), "{what}: stdout {:?}", String::from_utf8_lossy(&r.out));
    assert_eq!(r.err.lines().count(), 1, "{what}: {}", r.err);
    assert!(r.err.starts_with(&format!("relu: {file}: ")), "{what}: {}", r.err);
    for s in says {
        assert!(r.err.contains(s), "{what}: {:?} not in {}", s, r.err);
    }
}

/// The malformed histograms: a name, edges, counts, and what the error says.
fn malformed() -> Vec<(&'static str, Value, Value, &'static str)> {
    vec![
        ("empty", json!([]), json!([]), "no edges"),
        ("one_edge", json!([0.0]), json!([]), "1 edge"),
        ("too_few_edges", json!([0.0, 1.0]), json!([1, 2, 3]), "2 edges for 3 counts"),
        ("as_many_edges_as_counts", json!([0.0, 1.0, 2.0]), json!([1, 2, 3]), "3 edges for 3 counts"),
        ("too_many_edges", json!([0.0, 1.0, 2.0]), json!([1]), "3 edges for 1 counts"),
        ("decreasing", json!([1.0, 0.0]), json!([5]), "not strictly increasing"),
        ("equal", json!([0.0, 0.0]), json!([5]), "not strictly increasing"),
        ("decreasing_inside", json!([0.0, 2.0, 1.0, 3.0]), json!([1, 1, 1]), "edge 1 is 2.0 and edge 2 is 1.0"),
        // finite edges whose span overflows float64: plotters looped forever over it
        ("infinite_span", json!([-1e308, 1e308]), json!([5]), "wider than float64"),
        ("infinite_span_inside", json!([-1e308, 0.0, 1e308]), json!([5, 1]), "wider than float64"),
    ]
}

#[test]
fn malformed_histograms_are_refused_in_every_format() {
    let d = tempfile::tempdir().unwrap();
    for (name, edges, counts, says) in malformed() {
        let file = format!("{name}.json");
        fs::write(d.path().join(&file), stats_object("layer1", hist(edges, counts)).to_string()).unwrap();
        for format in ["text", "csv", "json", "svg", "png"] {
            // to a file: refused, and the file is not left behind
            let out = format!("o_{name}.{format}");
            let r = relu_in(d.path(), &["hist", "--from-stats", &file, "--format", format, "-o", &out], &[]);
            let what = format!("{name} {format}");
            assert_refused(&r, &file, &["object 1 ('layer1')", "hist", says], &what);
            assert!(!d.path().join(&out).exists(), "{what}: {out} left behind");
            // to stdout (PNG refuses a terminal only; this is a pipe)
            let r = relu_in(d.path(), &["hist", "--from-stats", &file, "--format", format], &[]);
            assert_refused(&r, &file, &[says], &format!("{what} to stdout"));
        }
        for view in [&["--ridge"][..], &["--log-y"]] {
            let out = format!("o_{name}_view.svg");
            let mut args = vec!["hist", "--from-stats", &file, "-o", &out];
            args.extend_from_slice(view);
            let r = relu_in(d.path(), &args, &[]);
            assert_refused(&r, &file, &[says], &format!("{name} {view:?}"));
            assert!(!d.path().join(&out).exists(), "{name} {view:?}: {out} left behind");
        }
    }
    assert!(fs::read_dir(d.path()).unwrap().all(|e| e.unwrap().path().extension().unwrap() == "json"));
}

#[test]
fn the_bad_object_is_named_among_good_ones() {
    let d = tempfile::tempdir().unwrap();
    let good = stats_object("a", hist(json!([0.0, 1.0]), json!([1])));
    let bad = stats_object("b\nc", hist(json!([0.0, 1.0]), json!([1, 2])));
    fs::write(d.path().join("two.jsonl"), format!("{good}\n{bad}\n")).unwrap();
    let r = relu_in(d.path(), &["hist", "--from-stats", "two.jsonl", "-o", "o.svg"], &[]);
    // the input name is quoted, so even a newline in it keeps the message on one line
    assert_refused(&r, "two.jsonl", &["object 2 ('b\\nc')", "2 edges for 2 counts"], "second object");
    assert!(!d.path().join("o.svg").exists());
    let r = relu_in(d.path(), &["merge-stats", "two.jsonl", "-o", "m.json"], &[]);
    assert_refused(&r, "two.jsonl", &["object 2", "2 edges for 2 counts"], "merge second object");
    assert!(!d.path().join("m.json").exists());
}

#[test]
fn edges_json_cannot_hold_are_refused_as_json() {
    // JSON has no infinity or NaN: 1e400 and null are not numbers relu reads
    let d = tempfile::tempdir().unwrap();
    let obj = stats_object("a", hist(json!([0.0, 1.0]), json!([1]))).to_string();
    for (name, edges) in [("huge", "[0.0,1e400]"), ("null", "[0.0,null]"), ("nan", "[0.0,NaN]")] {
        let file = format!("{name}.json");
        fs::write(d.path().join(&file), obj.replace("[0.0,1.0]", edges)).unwrap();
        let r = relu_in(d.path(), &["hist", "--from-stats", &file, "-o", "o.svg"], &[]);
        assert_refused(&r, &file, &["not relu statistics JSON"], name);
        assert!(!d.path().join("o.svg").exists());
        let r = relu_in(d.path(), &["merge-stats", &file], &[]);
        assert_refused(&r, &file, &["not relu statistics JSON"], name);
    }
}

#[test]
fn non_finite_edges_are_refused_by_the_check() {
    // what JSON cannot carry, the check refuses anyway (for any other caller)
    let h = |edges: Vec<f64>| HistJson {
        counts: vec![1; edges.len().saturating_sub(1)],
        edges,
        underflow: 0,
        overflow: 0,
        nan: 0,
    };
    for edges in [vec![0.0, f64::INFINITY], vec![f64::NEG_INFINITY, 0.0], vec![0.0, f64::NAN, 1.0]] {
        let why = h(edges.clone()).check().unwrap_err();
        assert!(why.contains("finite"), "{edges:?}: {why}");
    }
    assert!(h(vec![-1e308, 1e308]).check().unwrap_err().contains("wider than float64"));
    assert!(h(vec![]).check().is_err());
    assert_eq!(h(vec![0.0, 1.0]).check(), Ok(()));
    assert_eq!(h(vec![0.0, 5e-324]).check(), Ok(()));
    assert_eq!(h(vec![-8e307, 8e307]).check(), Ok(()));
    assert_eq!(h(vec![0.0, 1.0]).span(), Some((0.0, 1.0)));
    assert_eq!(h(vec![]).span(), None);
}

#[test]
fn merge_stats_refuses_malformed_histograms() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("ok.json"), stats_object("ok", hist(json!([0.0, 1.0]), json!([1]))).to_string()).unwrap();
    for (name, edges, counts, says) in malformed() {
        let file = format!("{name}.json");
        fs::write(d.path().join(&file), stats_object("layer1", hist(edges, counts)).to_string()).unwrap();
        // after a good file (it used to panic building the "different edges" message), alone, first
        for args in [
            &["merge-stats", "ok.json", &file, "-o", "m.json"][..],
            &["merge-stats", &file, "-o", "m.json"],
            &["merge-stats", &file, "ok.json", "-o", "m.json"],
        ] {
            let r = relu_in(d.path(), args, &[]);
            assert_refused(&r, &file, &["object 1 ('layer1')", "hist", says], &format!("{args:?}"));
            assert!(!d.path().join("m.json").exists(), "{args:?}: m.json left behind");
        }
        let r = relu_in(d.path(), &["merge-stats", "ok.json", &file], &[]);
        assert_refused(&r, &file, &[says], &format!("{name} to stdout"));
    }
}

#[test]
fn merged_counts_that_overflow_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let big = stats_object("a", hist(json!([0.0, 1.0]), json!([u64::MAX])));
    fs::write(d.path().join("big.json"), big.to_string()).unwrap();
    let r = relu_in(d.path(), &["merge-stats", "big.json", "big.json", "-o", "m.json"], &[]);
    assert_refused(&r, "big.json", &["overflow"], "u64::MAX twice");
    assert!(!d.path().join("m.json").exists());
    // one of them is a histogram, and it draws
    for format in ["text", "csv", "json", "svg", "png"] {
        let out = format!("drawn.{format}");
        let r = relu_in(d.path(), &["hist", "--from-stats", "big.json", "--format", format, "-o", &out], &[]);
        assert_eq!(r.code, Some(0), "{format}: {}", r.err);
        assert!(fs::metadata(d.path().join(&out)).unwrap().len() > 0, "{format}");
    }
    let text = fs::read_to_string(d.path().join("drawn.text")).unwrap();
    assert!(text.contains("18,446,744,073,709,551,615"), "{text}");
}

#[test]
fn extreme_but_valid_ranges_still_draw() {
    // finite edges and a finite span, however wide or narrow: drawn, and promptly
    let d = tempfile::tempdir().unwrap();
    for (name, edges, counts) in [
        ("wide", json!([-8e307, 0.0, 8e307]), json!([3, 4])),
        ("narrow", json!([0.0, 5e-324]), json!([5])),
        ("subnormal", json!([1e-310, 2e-310, 3e-310]), json!([5, 1])),
        ("offset", json!([1e15, 1.0000000000000002e15]), json!([5])),
    ] {
        let file = format!("{name}.json");
        fs::write(d.path().join(&file), stats_object(name, hist(edges, counts)).to_string()).unwrap();
        for (out, view) in
            [("o.svg", None), ("o.png", None), ("r.svg", Some("--ridge")), ("l.png", Some("--log-y")), ("o.csv", None)]
        {
            let mut args = vec!["hist", "--from-stats", &file, "-o", out];
            args.extend(view);
            let r = relu_in(d.path(), &args, &[]);
            assert_eq!(r.code, Some(0), "{name} {out}: {}", r.err);
            assert!(fs::metadata(d.path().join(out)).unwrap().len() > 0, "{name} {out}");
        }
    }
}

/// A safetensors file with no tensors: the header `{}`.
fn empty_safetensors(path: &Path) {
    let mut b = 2u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    fs::write(path, b).unwrap();
}

/// An .npz holding only a directory entry.
fn directories_only_npz(path: &Path) {
    let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
    zip.add_directory("sub/", zip::write::SimpleFileOptions::default()).unwrap();
    zip.finish().unwrap().flush().unwrap();
}

#[test]
fn inputs_without_arrays_are_refused_in_every_format() {
    let d = tempfile::tempdir().unwrap();
    empty_safetensors(&d.path().join("empty.safetensors"));
    directories_only_npz(&d.path().join("dirs.npz"));
    for file in ["empty.safetensors", "dirs.npz"] {
        for format in ["text", "csv", "json", "svg", "png"] {
            for extra in [&["--range=0:1"][..], &[], &["--ridge", "--range=0:1"], &["--active-rate"]] {
                let out = format!("o.{format}");
                let mut args = vec!["hist", file, "--format", format, "-o", &out];
                args.extend_from_slice(extra);
                let r = relu_in(d.path(), &args, &[]);
                let what = format!("{file} {format} {extra:?}");
                assert_refused(&r, file, &["no arrays"], &what);
                assert!(!d.path().join(&out).exists(), "{what}: {out} left behind");
            }
        }
    }
    // from stdin, it is named so
    let mut c = Command::cargo_bin("relu").unwrap();
    let o = c
        .current_dir(d.path())
        .args(["hist", "-", "--from", "safetensors", "--ridge", "--range=0:1", "-o", "r.svg"])
        .write_stdin(fs::read(d.path().join("empty.safetensors")).unwrap())
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let r = Run { code: o.status.code(), out: o.stdout, err: String::from_utf8_lossy(&o.stderr).into_owned() };
    assert_refused(&r, "<stdin>", &["no arrays"], "stdin");
    assert!(!d.path().join("r.svg").exists());
}

#[test]
fn an_empty_input_beside_others_adds_no_panel() {
    let d = tempfile::tempdir().unwrap();
    empty_safetensors(&d.path().join("empty.safetensors"));
    let mut b = relu::format::npy::write_header(relu::dtype::DType::F32, false, &[4]);
    for x in [0.1f32, 0.2, 0.7, 0.9] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    fs::write(d.path().join("x.npy"), b).unwrap();
    let r = relu_in(
        d.path(),
        &["hist", "empty.safetensors", "x.npy", "--range=0:1", "--bins", "2", "--format", "json"],
        &[],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);
    let lines: Vec<Value> =
        String::from_utf8(r.out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["counts"], json!([2, 2]));
    let r = relu_in(d.path(), &["hist", "empty.safetensors", "x.npy", "--ridge", "--range=0:1", "-o", "r.svg"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(fs::read_to_string(d.path().join("r.svg")).unwrap().contains("<svg"));
}

#[test]
fn columns_past_any_screen_are_clamped() {
    let d = tempfile::tempdir().unwrap();
    let mut b = relu::format::npy::write_header(relu::dtype::DType::F32, false, &[64]);
    for i in 0..64 {
        b.extend_from_slice(&((i as f32 - 32.0) / 8.0).to_le_bytes());
    }
    fs::write(d.path().join("small.npy"), b).unwrap();
    let widest = |columns: &str| {
        let r = relu_in(d.path(), &["hist", "--range=-4:4", "--bins", "8", "small.npy"], &[("COLUMNS", columns)]);
        assert_eq!(r.code, Some(0), "COLUMNS={columns}: {}", r.err);
        let text = String::from_utf8(r.out).unwrap();
        assert_eq!(text.lines().count(), 1 + 8 + 1, "COLUMNS={columns}: {text}");
        assert!(text.contains('█'), "COLUMNS={columns}: {text}");
        text.lines().map(|l| l.chars().count()).max().unwrap()
    };
    // past 65,535 the padding panicked; 10^12 aborted allocating; past u64 was ignored
    for huge in ["70000", "1000000000000", "99999999999999999999999"] {
        assert_eq!(widest(huge), 1000, "COLUMNS={huge}");
    }
    assert_eq!(widest("1000"), 1000);
    assert_eq!(widest("100"), 100);
    // nonsense falls back to 80 columns; 0 keeps the narrowest bars
    assert_eq!(widest("wide"), 80);
    assert_eq!(widest("-3"), 80);
    assert!(widest("0") < 80);
}
