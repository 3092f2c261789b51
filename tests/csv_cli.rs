//! CSV/TSV through `relu apply`: the corpus (valid and broken files), conversions to and from
//! `.npy`, and stdin sniffing. Expected values come from `fixtures/csv/expected.json`.

mod common;

use common::relu;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/csv")
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

/// A deterministic table of awkward numbers: many digits, exponents, signed zeros, subnormals,
/// infinities and NaNs, values beyond the fast conversion (over 2^53, 10^-30), quoted fields, CRLF
/// and quoted newlines, over several 1 MiB blocks.
fn big_table(rows: usize) -> (Vec<u8>, Vec<Vec<f64>>) {
    let pick = |i: usize, j: usize| -> String {
        let k = (i * 31 + j * 17) % 23;
        match k {
            0 => "-0".into(),
            1 => "0.0".into(),
            2 => "nan".into(),
            3 => "-inf".into(),
            4 => "Infinity".into(),
            5 => "4.9e-324".into(),
            6 => "-2.2250738585072014e-308".into(),
            7 => format!("{}", 9007199254740993u64 + i as u64),
            8 => format!("-{}e-30", i + 1),
            9 => format!("\"{}.25\"", i),
            10 => format!(" -{} ", i),
            11 => format!("{:e}", (i as f64 + 0.1) * 1e10),
            _ => format!("{}", ((i * 7919 + j * 104729) % 200_003) as f64 / 997.0 - 100.0),
        }
    };
    let mut text = b"a,\"b\nwith newline\",c\r\n".to_vec();
    let mut want = Vec::new();
    for i in 0..rows {
        let fields: Vec<String> = (0..3).map(|j| pick(i, j)).collect();
        want.push(fields.iter().map(|f| f.trim().trim_matches('"').parse::<f64>().unwrap()).collect());
        text.extend_from_slice(fields.join(",").as_bytes());
        text.extend_from_slice(if i % 2 == 0 { b"\r\n" } else { b"\n" });
    }
    (text, want)
}

fn relu_bits(v: f64) -> u64 {
    relu::act::relu(v).to_bits()
}

#[test]
fn parallel_blocks_match_the_values_for_every_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let (text, want) = big_table(160_000); // about 5 MiB: several blocks
    let src = dir.path().join("big.csv");
    std::fs::write(&src, &text).unwrap();
    let mut outputs = Vec::new();
    for j in ["1", "2", "3"] {
        let (code, out, err) = relu(&["apply", src.to_str().unwrap(), "-j", j], None);
        assert_eq!(code, 0, "{err}");
        outputs.push(out);
        let npy = dir.path().join(format!("big{j}.npy"));
        let (code, _, err) = relu(&["apply", src.to_str().unwrap(), "-j", j, "-o", npy.to_str().unwrap()], None);
        assert_eq!(code, 0, "{err}");
        let b = std::fs::read(&npy).unwrap();
        let h = relu::format::npy::read_header(&mut &b[..]).unwrap();
        assert_eq!(h.shape, vec![want.len() as u64, 3]);
        let got: Vec<u64> =
            b[h.data_offset as usize..].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        let flat: Vec<u64> = want.iter().flatten().map(|&v| relu_bits(v)).collect();
        assert!(got == flat, "-j {j}: .npy values differ");
    }
    assert!(outputs.iter().all(|o| *o == outputs[0]), "output depends on the thread count");
    // CSV → CSV: the header is kept, and every value reads back to relu's bits.
    let text = String::from_utf8(outputs.pop().unwrap()).unwrap();
    assert!(text.starts_with("a,\"b\nwith newline\",c\n"), "{}", &text[..40]);
    let body: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(body.len(), want.len());
    for (i, (line, w)) in body.iter().zip(&want).enumerate() {
        let got: Vec<u64> = line.split(',').map(|f| f.parse::<f64>().unwrap().to_bits()).collect();
        let w: Vec<u64> = w.iter().map(|&v| relu_bits(v)).collect();
        assert_eq!(got, w, "row {i}: {line}");
    }
}

#[test]
fn a_fault_deep_in_the_file_names_its_line_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("x,y\n");
    for i in 0..400_000 {
        text.push_str(&format!("{i},-{i}.5\n"));
    }
    // line 1 is the header, so data row r is on line r + 2
    for (fault, want) in [("12,oops", "field 2"), ("1,2,3", "3 fields"), ("\"7,8", "never closed")] {
        let mut t = text.clone();
        let at = t.match_indices('\n').nth(333_332).unwrap().0 + 1; // start of line 333,334
        t.insert_str(at, &format!("{fault}\n"));
        let src = dir.path().join("deep.csv");
        std::fs::write(&src, t).unwrap();
        for j in ["1", "2"] {
            let out = dir.path().join("out.npy");
            let (code, _, err) = relu(&["apply", src.to_str().unwrap(), "-j", j, "-o", out.to_str().unwrap()], None);
            assert_eq!(code, 1, "{fault}: {err}");
            assert!(err.contains("deep.csv") && err.contains("line 333334") && err.contains(want), "{fault}: {err}");
            assert!(!out.exists());
        }
    }
}

#[test]
fn csv_round_trip_is_exact() {
    // CSV → .npy → CSV → .npy: values survive bit for bit (the text may get shorter).
    let dir = tempfile::tempdir().unwrap();
    let (text, want) = big_table(3000);
    let src = dir.path().join("t.csv");
    std::fs::write(&src, &text).unwrap();
    let a = dir.path().join("a.npy");
    let c = dir.path().join("c.csv");
    let b = dir.path().join("b.npy");
    for (from, to) in [(&src, &a), (&a, &c), (&c, &b)] {
        let (code, _, err) = relu(&["apply", from.to_str().unwrap(), "-o", to.to_str().unwrap()], None);
        assert_eq!(code, 0, "{err}");
    }
    let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(x == y, "CSV → npy → CSV → npy changed values");
    let h = relu::format::npy::read_header(&mut &x[..]).unwrap();
    assert_eq!(h.shape, vec![want.len() as u64, 3]);
}

#[test]
fn stats_of_csv_tables() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("s.csv");
    std::fs::write(&src, "u,v,w\n1,-2,0\n3,-4,-0\nnan,5,-inf\n").unwrap();
    let p = src.to_str().unwrap();
    let (code, out, err) = relu(&["stats", "--json", "--act", "relu", p], None);
    assert_eq!(code, 0, "{err}");
    let j: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(j["shape"], serde_json::json!([3, 3]));
    assert_eq!(j["dtype"], "float64");
    assert_eq!(j["elements"], 9);
    assert_eq!(j["negative_inputs"], 3);
    assert_eq!(j["nan"], 1);
    assert_eq!(j["neginf"], 0); // relu(-inf) = 0
    assert_eq!(j["zeros"], 5);
    assert_eq!(j["max"], 5.0);
    assert_eq!(j["mean"], 9.0 / 8.0);
    assert_eq!(j["units"]["active_count"], serde_json::json!([2, 1, 0]));
    assert_eq!(j["units"]["dead_indices"], serde_json::json!([2]));
    // apply --stats gives the same object, and the array
    let st = dir.path().join("s.json");
    let (code, _, err) =
        relu(&["apply", p, "-o", dir.path().join("o.csv").to_str().unwrap(), "--stats", st.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    let k: Value = serde_json::from_str(&std::fs::read_to_string(&st).unwrap()).unwrap();
    assert_eq!(j, k);
    // statistics do not depend on the thread count
    let (text, _) = big_table(100_000);
    let big = dir.path().join("big.csv");
    std::fs::write(&big, text).unwrap();
    let one = relu(&["stats", "--json", big.to_str().unwrap(), "-j", "1"], None);
    let two = relu(&["stats", "--json", big.to_str().unwrap(), "-j", "2"], None);
    assert_eq!(one.0, 0, "{}", one.2);
    assert_eq!(one.1, two.1);
    // CSV units are columns
    let (code, _, _) = relu(&["stats", p, "--unit-axis", "0"], None);
    assert_eq!(code, 2);
}

#[test]
fn csv_to_tsv_and_back_change_the_delimiter_on_each_side() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("x.csv");
    std::fs::write(&src, "a,\"b,c\",\"say \"\"hi\"\"\"\n1,-2,3\n-4.5,5e-1,nan\n").unwrap();
    let tsv = dir.path().join("x.tsv");
    let (code, _, err) = relu(&["apply", src.to_str().unwrap(), "-o", tsv.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&tsv).unwrap(), "a\t\"b,c\"\t\"say \"\"hi\"\"\"\n1\t0.0\t3\n0.0\t5e-1\tnan\n");
    let back = dir.path().join("back.csv");
    let (code, _, err) = relu(&["apply", tsv.to_str().unwrap(), "-o", back.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "a,\"b,c\",\"say \"\"hi\"\"\"\n1,0.0,3\n0.0,5e-1,nan\n");
    // -d sets both sides
    let (code, out, err) = relu(&["apply", "-", "--from", "csv", "-d", ";"], Some(b"1;-2\n".to_vec()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"1;0.0\n");
}
