//! Numbers that must never come out silently wrong (issue 20): bfloat16 refused where NumPy cannot
//! read it, statistics objects that contradict themselves refused by `merge-stats`, arrays whose
//! length does not match their header refused by `inspect`, and means of values that cancel.

mod common;

use common::relu;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A little-endian `.npy` of `descr` with `shape`, then `data`.
fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    v.extend_from_slice(dict.as_bytes());
    v.extend_from_slice(data);
    v
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The files in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn bf16_is_refused_on_every_road_into_npy_and_npz() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.csv"), "a,b\n1,-2\n3,4\n").unwrap();
    std::fs::write(d.join("x.npy"), npy("<f4", "(2, 2)", &f32s(&[1.0, -2.0, 3.0, 4.0]))).unwrap();
    // an .npz with one stored member
    {
        let f = std::fs::File::create(d.join("z.npz")).unwrap();
        let mut z = zip::ZipWriter::new(f);
        z.start_file(
            "a.npy",
            zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored),
        )
        .unwrap();
        std::io::Write::write_all(&mut z, &std::fs::read(d.join("x.npy")).unwrap()).unwrap();
        z.finish().unwrap();
    }
    std::fs::create_dir(d.join("in")).unwrap();
    std::fs::copy(d.join("x.npy"), d.join("in/x.npy")).unwrap();
    let before = files(d);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["apply".into(), s(&d.join("t.csv")).into(), "-o".into(), s(&d.join("o.npy")).into()], ".npy"),
        (vec!["apply".into(), s(&d.join("t.csv")).into(), "--to".into(), "npy".into()], ".npy"),
        (vec!["apply".into(), s(&d.join("x.npy")).into(), "-o".into(), s(&d.join("o.npy")).into()], ".npy"),
        (vec!["apply".into(), s(&d.join("x.npy")).into(), "--to".into(), "npy".into()], ".npy"),
        (vec!["apply".into(), s(&d.join("z.npz")).into(), "-o".into(), s(&d.join("o.npz")).into()], ".npz"),
        (vec!["apply".into(), s(&d.join("z.npz")).into(), "-o".into(), s(&d.join("o.npy")).into()], ".npy"),
        (vec!["batch".into(), "--out-dir".into(), s(&d.join("out")).into(), s(&d.join("in")).into()], ".npy"),
    ];
    for (args, ext) in cases {
        let mut args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
        args.extend(["--dtype", "bf16"]);
        let (code, out, err) = relu(&args, None);
        assert_ne!(code, 0, "{args:?}: accepted");
        assert!(err.contains(&format!("bfloat16 cannot be written to {ext}")), "{args:?}: {err}");
        assert!(err.contains("--dtype f32"), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: wrote {} bytes to stdout", out.len());
        let left: Vec<String> = files(d).into_iter().filter(|f| f != "out").collect();
        assert_eq!(left, before, "{args:?}: left files behind");
        if args[0] == "apply" {
            assert_eq!(code, 2, "{args:?}: {err}");
        }
    }
    // the ways out work: CSV → f32 .npy, bf16 CSV
    let (code, _, err) = relu(&["apply", s(&d.join("t.csv")), "--dtype", "f32", "-o", s(&d.join("o.npy"))], None);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = relu(&["apply", s(&d.join("t.csv")), "--dtype", "bf16", "--to", "csv"], None);
    assert_eq!((code, String::from_utf8_lossy(&out).into_owned()), (0, "a,b\n1.0,0.0\n3.0,4.0\n".into()), "{err}");
}

#[test]
fn merge_stats_refuses_objects_that_contradict_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = d.join("x.npy");
    std::fs::write(&x, npy("<f4", "(2, 3)", &f32s(&[1.0, -2.0, 0.0, 4.0, f32::NAN, -1.0]))).unwrap();
    let (code, out, err) = relu(&["stats", "--json", s(&x)], None);
    assert_eq!(code, 0, "{err}");
    let good: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let good_line = serde_json::to_string(&good).unwrap();
    // the good object merges with itself
    let ok = d.join("ok.jsonl");
    std::fs::write(&ok, format!("{good_line}\n{good_line}\n")).unwrap();
    let (code, _, err) = relu(&["merge-stats", s(&ok)], None);
    assert_eq!(code, 0, "{err}");
    type Edit = fn(&mut serde_json::Value);
    let cases: Vec<(&str, Edit)> = vec![
        ("'zeros'", |v| v["zeros"] = 100.into()),
        ("'std'", |v| v["std"] = (-1.0).into()),
        ("'mean'", |v| v["mean"] = serde_json::Value::Null),
        ("'min'", |v| v["min"] = 1e9.into()),
        ("'finite'", |v| v["finite"] = 2.into()),
        ("'nan'", |v| v["nan"] = 0.into()),
        ("'negative_inputs'", |v| v["negative_inputs"] = 7.into()),
        ("'min' is -2.0 but 'finite' is 0", |v| {
            v["finite"] = 0.into();
            v["nan"] = 6.into();
            v["zeros"] = 0.into();
        }),
        ("'active_count'", |v| v["units"]["active_count"] = serde_json::json!([1, 1])),
        ("'active_count'", |v| v["units"]["active_count"] = serde_json::json!([1, 1, 9])),
        ("'elements_per_unit'", |v| v["units"]["elements_per_unit"] = 5.into()),
        ("'dead'", |v| v["units"]["dead"] = 3.into()),
        ("'merged'", |v| v["merged"] = 0.into()),
    ];
    for (key, edit) in cases {
        let mut bad = good.clone();
        edit(&mut bad);
        let f = d.join("bad.jsonl");
        // the bad object second, on line 3 (after a blank line)
        std::fs::write(&f, format!("{good_line}\n\n{}\n", serde_json::to_string(&bad).unwrap())).unwrap();
        let (code, out, err) = relu(&["merge-stats", s(&ok), s(&f)], None);
        assert_eq!(code, 1, "{key}: accepted: {}", String::from_utf8_lossy(&out));
        assert!(out.is_empty());
        assert!(err.contains(s(&f)) && err.contains("object 2") && err.contains("line 3"), "{key}: {err}");
        assert!(err.contains(&format!("{:?}", s(&x))), "{key}: the object's input: {err}");
        assert!(err.contains(key), "{key}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
