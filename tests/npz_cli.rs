//! `.npz` through the binary: every member (stored and deflated archives from NumPy's `savez` and
//! `savez_compressed`), `--member`, stdin, `inspect`, `stats`, and damaged archives. The expected
//! members (`fixtures/npz/relu_*.npy`) were written by NumPy from `np.where(x < 0, 0, x)`, so the
//! outputs are compared byte for byte, headers included.

mod common;

use common::relu;
use std::io::Read;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/npz").join(name)
}

const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "h"];

/// (name, compression, bytes) of every member.
fn members(zip_bytes: &[u8]) -> Vec<(String, zip::CompressionMethod, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut b = Vec::new();
            f.read_to_end(&mut b).unwrap();
            (f.name().to_string(), f.compression(), b)
        })
        .collect()
}

fn check_archive(out: &[u8], input: &Path) {
    let want_methods: Vec<_> = members(&std::fs::read(input).unwrap()).into_iter().map(|m| m.1).collect();
    let got = members(out);
    assert_eq!(got.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(), KEYS.map(|k| format!("{k}.npy")));
    for ((name, method, bytes), want_method) in got.iter().zip(want_methods) {
        assert_eq!(*method, want_method, "{name}: compression kept");
        let want = std::fs::read(fixture(&format!("relu_{name}"))).unwrap();
        assert!(*bytes == want, "{name}: differs from NumPy's");
    }
}

#[test]
fn every_member_of_stored_and_deflated_archives() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["savez.npz", "savez_compressed.npz"] {
        let out = dir.path().join(format!("out_{f}"));
        let (rc, _, err) = relu(&["apply", fixture(f).to_str().unwrap(), "-o", out.to_str().unwrap()], None);
        assert_eq!(rc, 0, "{err}");
        check_archive(&std::fs::read(&out).unwrap(), &fixture(f));
        // stdin to stdout, sniffed by content
        let (rc, so, err) = relu(&["apply", "-"], Some(std::fs::read(fixture(f)).unwrap()));
        assert_eq!(rc, 0, "{err}");
        check_archive(&so, &fixture(f));
    }
}

#[test]
fn one_member_to_npy_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let npz = fixture("savez_compressed.npz");
    for key in KEYS {
        for name in [key.to_string(), format!("{key}.npy")] {
            let out = dir.path().join(format!("{key}.npy"));
            let (rc, _, err) =
                relu(&["apply", npz.to_str().unwrap(), "--member", &name, "-o", out.to_str().unwrap()], None);
            assert_eq!(rc, 0, "{err}");
            assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(fixture(&format!("relu_{key}.npy"))).unwrap());
        }
    }
    // The Fortran-ordered member as CSV rows, in C order.
    let (rc, so, err) = relu(&["apply", npz.to_str().unwrap(), "--member", "c", "--to", "csv"], None);
    assert_eq!(rc, 0, "{err}");
    let rows: Vec<Vec<f64>> =
        String::from_utf8(so).unwrap().lines().map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 3);
    for (i, r) in rows.iter().enumerate() {
        for (j, &v) in r.iter().enumerate() {
            let x = -1.0 + 2.0 * (i * 4 + j) as f64 / 11.0;
            assert!((v - x.max(0.0)).abs() < 1e-15, "({i},{j}) {v} vs {x}");
        }
    }
}

#[test]
fn member_errors() {
    let npz = fixture("savez.npz");
    let (rc, _, err) = relu(&["apply", npz.to_str().unwrap(), "--member", "zz", "--to", "npy"], None);
    assert_eq!(rc, 1);
    assert!(err.contains("no member 'zz'") && err.contains("a, b, c"), "{err}");
    // Several arrays cannot become one .npy or CSV without --member.
    let (rc, _, err) = relu(&["apply", npz.to_str().unwrap(), "--to", "csv"], None);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("--member"), "{err}");
    // --member on a .npy input is a usage error.
    let npy = fixture("relu_a.npy");
    let (rc, _, _) = relu(&["apply", npy.to_str().unwrap(), "--member", "a"], None);
    assert_eq!(rc, 2);
}

#[test]
fn inspect_and_stats_list_every_member() {
    let npz = fixture("savez.npz");
    let p = npz.to_str().unwrap();
    let (rc, so, err) = relu(&["inspect", "--json", p], None);
    assert_eq!(rc, 0, "{err}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8(so).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[2]["input"], format!("{p}:c"));
    assert_eq!(lines[2]["order"], "F");
    assert_eq!(lines[3]["shape"], serde_json::json!([]));
    assert_eq!(lines[5]["dtype"], "float16");

    let (rc, so, err) = relu(&["stats", "--json", "--act", "relu", p], None);
    assert_eq!(rc, 0, "{err}");
    let stats: Vec<serde_json::Value> =
        String::from_utf8(so).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(stats.len(), 6);
    assert_eq!(stats[1]["input"], format!("{p}:b"));
    assert_eq!(stats[1]["elements"], 5);
    assert_eq!(stats[1]["negative_inputs"], 2);
    assert_eq!(stats[1]["zeros"], 3);
    assert_eq!(stats[4]["elements"], 0);
    let (rc, so, _) = relu(&["stats", "--json", "--member", "d", p], None);
    assert_eq!(rc, 0);
    let d: serde_json::Value = serde_json::from_slice(&so).unwrap();
    assert_eq!(d["min"], -4.25);
}

#[test]
fn damaged_archives_fail_cleanly_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("savez.npz")).unwrap();
    // Flip a byte inside member a's data (stored: the data follows its local header as is).
    let mut bad_crc = good.clone();
    let at = good.windows(6).position(|w| w == b"\x93NUMPY").unwrap() + 130;
    bad_crc[at] ^= 0x40;
    let truncated = good[..good.len() / 2].to_vec();
    let garbage = b"PK\x03\x04 this is not a zip archive".to_vec();
    for (name, bytes) in [("crc", bad_crc), ("truncated", truncated), ("garbage", garbage)] {
        let input = dir.path().join(format!("{name}.npz"));
        std::fs::write(&input, bytes).unwrap();
        let out = dir.path().join(format!("{name}_out.npz"));
        let (rc, _, err) = relu(&["apply", input.to_str().unwrap(), "-o", out.to_str().unwrap()], None);
        assert_eq!(rc, 1, "{name}: {err}");
        assert!(err.contains(&format!("{name}.npz")), "{name}: the message names the file: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        assert!(!out.exists(), "{name}: no output left");
    }
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 3, "no temporary files left: {names:?}");
}
