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
    while !(10 + dict.len() + 1).is_multiple_of(64) {
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
        assert!(err.contains(&format!("'{}'", s(&x))), "{key}: the object's input: {err}");
        assert!(err.contains(key), "{key}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// An `.npz` of `members` (name, bytes), stored or deflated.
fn npz(members: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    for (name, bytes) in members {
        z.start_file(*name, zip::write::SimpleFileOptions::default().compression_method(method)).unwrap();
        std::io::Write::write_all(&mut z, bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}

#[test]
fn inspect_refuses_what_numpy_load_refuses_for_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let arrays = [
        npy("<f4", "()", &f32s(&[1.5])),
        npy("<f4", "(3,)", &f32s(&[1.0, 2.0, 3.0])),
        npy("<i8", "(2, 2)", &[7u8; 32]),
        npy("|u1", "(5,)", &[1, 2, 3, 4, 5]),
        npy(">f8", "(1, 1)", &[0x40, 0, 0, 0, 0, 0, 0, 0]),
    ];
    for (k, a) in arrays.iter().enumerate() {
        let f = d.join(format!("a{k}.npy"));
        let data_start = a.len()
            - a.len().min(match k {
                0 => 4,
                1 => 12,
                2 => 32,
                3 => 5,
                _ => 8,
            });
        // whole, and with bytes after the data (NumPy ignores them): fine
        for extra in [0usize, 3] {
            let mut b = a.clone();
            b.extend(std::iter::repeat_n(0, extra));
            std::fs::write(&f, &b).unwrap();
            let (code, _, err) = relu(&["inspect", s(&f)], None);
            assert_eq!(code, 0, "{k} +{extra}: {err}");
        }
        // every truncation inside the data: refused, naming the file, from a file and from stdin
        for cut in data_start..a.len() {
            std::fs::write(&f, &a[..cut]).unwrap();
            let (code, out, err) = relu(&["inspect", s(&f)], None);
            assert_eq!(code, 1, "{k} cut at {cut}: {}", String::from_utf8_lossy(&out));
            assert!(err.contains(&format!("{}: truncated", s(&f))), "{err}");
            let (code, _, err) = relu(&["inspect", "-"], Some(a[..cut].to_vec()));
            assert_eq!(code, 1, "stdin {k} cut at {cut}: {err}");
            assert!(err.contains("<stdin>: truncated"), "{err}");
            // a member of an .npz, stored and deflated: its size in the zip directory is too small
            for deflate in [false, true] {
                let z = d.join("z.npz");
                std::fs::write(&z, npz(&[("ok.npy", a.clone()), ("cut.npy", a[..cut].to_vec())], deflate)).unwrap();
                let (code, _, err) = relu(&["inspect", s(&z)], None);
                assert_eq!(code, 1, "npz {k} cut at {cut}: {err}");
                assert!(err.contains(&format!("{}:cut: truncated", s(&z))), "{err}");
            }
        }
    }
    // a header promising 8 TB over no data
    let huge = d.join("huge.npy");
    std::fs::write(&huge, npy("<f8", "(1000000000000,)", &[])).unwrap();
    let (code, _, err) = relu(&["inspect", s(&huge)], None);
    assert_eq!(code, 1);
    assert!(err.contains("8000000000000 data bytes"), "{err}");
    // .safetensors: every truncation, and bytes after the data, refused (as the library does)
    let mut head = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.to_vec();
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let mut st = (head.len() as u64).to_le_bytes().to_vec();
    st.extend(&head);
    st.extend(f32s(&[1.0, -1.0]));
    let f = d.join("t.safetensors");
    std::fs::write(&f, &st).unwrap();
    assert_eq!(relu(&["inspect", s(&f)], None).0, 0);
    for cut in (0..st.len()).chain([st.len() + 1]) {
        let mut b = st.clone();
        b.resize(cut, 0);
        std::fs::write(&f, &b).unwrap();
        let (code, _, err) = relu(&["inspect", s(&f)], None);
        assert_eq!(code, 1, "safetensors cut at {cut}: {err}");
        assert!(err.contains(s(&f)), "{err}");
    }
    // one bad file among good ones: the good ones are still listed, the run fails
    let good = d.join("a1.npy");
    std::fs::write(&good, &arrays[1]).unwrap();
    let (code, out, err) = relu(&["inspect", s(&good), s(&huge)], None);
    assert_eq!(code, 1, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("a1.npy"));
}
