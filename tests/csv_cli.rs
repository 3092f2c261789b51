//! CSV/TSV through `relu apply`: the corpus (valid and broken files), conversions to and from
//! `.npy`, and stdin sniffing. Expected values come from `fixtures/csv/expected.json`.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/csv")
}

fn relu(args: &[&str], stdin: Option<Vec<u8>>) -> (i32, Vec<u8>, String) {
    let mut c = Command::cargo_bin("relu").unwrap();
    c.args(args);
    if let Some(s) = stdin {
        c.write_stdin(s);
    }
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    (o.status.code().unwrap_or(-1), o.stdout, err)
}

/// Rows of numbers from CSV text (after an optional header line).
fn rows(text: &str, delim: char, header: bool) -> Vec<Vec<f64>> {
    text.lines()
        .skip(header as usize)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(delim).map(|f| f.trim().trim_matches('"').parse::<f64>().unwrap()).collect())
        .collect()
}

fn expected() -> serde_json::Map<String, Value> {
    serde_json::from_str::<Value>(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn want_relu(e: &Value) -> Vec<Vec<f64>> {
    e["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().map_or(f64::NAN, |v| v.max(0.0))).collect())
        .collect()
}

fn same(a: &[Vec<f64>], b: &[Vec<f64>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p == q || (p.is_nan() && q.is_nan())))
}

#[test]
fn valid_corpus_to_csv_and_npy() {
    let dir = tempfile::tempdir().unwrap();
    for (name, e) in expected() {
        if name.starts_with("invalid/") {
            continue;
        }
        let src = fixtures().join("valid").join(&name);
        let delim = e["delimiter"].as_str().unwrap();
        let ext = Path::new(&name).extension().unwrap().to_str().unwrap();
        let out = dir.path().join(format!("o.{ext}"));
        let mut args = vec!["apply", src.to_str().unwrap(), "-o", out.to_str().unwrap()];
        if delim != "," && delim != "\t" {
            args.extend(["-d", delim]);
        }
        let (code, _, err) = relu(&args, None);
        assert_eq!(code, 0, "{name}: {err}");
        let text = std::fs::read_to_string(&out).unwrap();
        let header = !e["header"].is_null();
        if header {
            let first: Vec<String> = text
                .lines()
                .next()
                .unwrap()
                .split(delim.chars().next().unwrap())
                .map(|s| s.trim().to_string())
                .collect();
            let want: Vec<String> =
                e["header"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
            assert_eq!(first, want, "{name}: header");
        }
        let got = rows(&text, delim.chars().next().unwrap(), header);
        assert!(same(&got, &want_relu(&e)), "{name}: {got:?}");
        // the same table as .npy: (rows, columns) float64
        let npy = dir.path().join("o.npy");
        args[3] = npy.to_str().unwrap();
        let (code, _, err) = relu(&args, None);
        assert_eq!(code, 0, "{name}: {err}");
        let bytes = std::fs::read(&npy).unwrap();
        let h = relu::format::npy::read_header(&mut &bytes[..]).unwrap();
        let want = want_relu(&e);
        assert_eq!(h.shape, vec![want.len() as u64, want[0].len() as u64], "{name}");
        assert_eq!(h.descr, "<f8");
        let vals: Vec<f64> = bytes[h.data_offset as usize..]
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let flat: Vec<f64> = want.concat();
        assert!(same(&[vals], &[flat]), "{name}: npy values");
    }
}

#[test]
fn broken_csv_names_file_and_line_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (name, e) in expected() {
        let Some(file) = name.strip_prefix("invalid/") else { continue };
        let src = fixtures().join("invalid").join(file);
        let out = dir.path().join("o.csv");
        let (code, _, err) = relu(&["apply", src.to_str().unwrap(), "-o", out.to_str().unwrap()], None);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(file), "{name}: {err}");
        let line = e["line"].as_u64().unwrap();
        assert!(err.contains(&format!("line {line}")), "{name}: want line {line}: {err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{name}: output left behind");
    }
}

#[test]
fn errors_name_the_field_and_text() {
    let (code, _, err) = relu(&["apply", "-", "--no-header"], Some(b"1,2,3\n4,x5,6\n".to_vec()));
    assert_eq!(code, 1);
    assert!(err.contains("line 2, field 2") && err.contains("'x5'"), "{err}");
    let (code, _, err) = relu(&["apply", "-"], Some(b"1,2\n3\n".to_vec()));
    assert_eq!(code, 1);
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn npy_to_csv_to_npy_is_exact_and_stdin_is_sniffed() {
    let dir = tempfile::tempdir().unwrap();
    let vals: Vec<f32> = (0..600)
        .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0)
        .chain([f32::MIN_POSITIVE / 8.0, -0.0, 1e30])
        .collect();
    let mut npy = relu::format::npy::write_header(relu::dtype::DType::F32, false, &[201, 3]);
    for v in &vals {
        npy.extend_from_slice(&v.to_le_bytes());
    }
    let src = dir.path().join("x.npy");
    std::fs::write(&src, &npy).unwrap();
    let csv = dir.path().join("x.csv");
    let (code, _, err) = relu(&["apply", src.to_str().unwrap(), "--act", "leaky", "-o", csv.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    let back = dir.path().join("back.npy");
    let (code, _, err) = relu(&["apply", csv.to_str().unwrap(), "--dtype", "f32", "-o", back.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    let b = std::fs::read(&back).unwrap();
    let h = relu::format::npy::read_header(&mut &b[..]).unwrap();
    assert_eq!(h.shape, vec![201, 3]);
    let got: Vec<u32> =
        b[h.data_offset as usize..].chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
    let want: Vec<u32> = vals.iter().map(|&x| relu::act::relu(relu::act::leaky(x, 0.01f32)).to_bits()).collect();
    assert_eq!(got, want);
    // stdin: CSV is sniffed and written back as CSV; .npy is sniffed as .npy
    let (code, out, err) = relu(&["apply", "-"], Some(std::fs::read(&csv).unwrap()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(rows(&String::from_utf8(out).unwrap(), ',', false).len(), 201);
    let (code, out, _) = relu(&["apply", "-"], Some(npy));
    assert_eq!(code, 0);
    assert!(out.starts_with(b"\x93NUMPY"));
    let (code, _, err) = relu(&["apply", "-"], Some(Vec::new()));
    assert_eq!(code, 1, "empty stdin: {err}");
}
