//! Interop with the Rust ecosystem's `.npy` crate, npyz: relu's outputs read by npyz (every
//! dtype relu writes, C and Fortran order, 0-d and empty arrays), and files npyz writes (either
//! byte order, C and Fortran order) read by relu, with the values checked element by element.

use npyz::{DType, NpyFile, Order, TypeStr, WriterBuilder};
use std::path::Path;

mod common;
use common::relu;

/// Writes `data` with npyz: dtype `ty` (e.g. "<f4", ">f8"), `shape`, `order`.
fn npyz_write<T: npyz::Serialize>(path: &Path, ty: &str, shape: &[u64], order: Order, data: &[T]) {
    let dtype = DType::Plain(ty.parse::<TypeStr>().unwrap());
    let mut w = npyz::WriteOptions::new()
        .dtype(dtype)
        .shape(shape)
        .order(order)
        .writer(std::io::BufWriter::new(std::fs::File::create(path).unwrap()))
        .begin_nd()
        .unwrap();
    w.extend(data.iter()).unwrap();
    w.finish().unwrap();
}

fn npyz_read(path: &Path) -> NpyFile<std::io::Cursor<Vec<u8>>> {
    NpyFile::new(std::io::Cursor::new(std::fs::read(path).unwrap())).unwrap()
}

fn values(n: usize) -> Vec<f64> {
    let edge = [0.0, -0.0, 1.5, -2.5, 1e-310, -1e-310, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 3.0e38];
    (0..n).map(|i| if i < edge.len() { edge[i] } else { ((i * 7919 % 1000) as f64 - 500.0) / 37.0 }).collect()
}

/// PyTorch's relu: negatives to +0; -0 and NaN as they are.
fn relu64(v: f64) -> f64 {
    if v < 0.0 {
        0.0
    } else {
        v
    }
}

#[test]
fn npyz_reads_what_relu_writes() {
    let d = tempfile::tempdir().unwrap();
    let v = values(60);
    // the input: a (3, 4, 5) float64 array in both orders, written by npyz itself
    for order in [Order::C, Order::Fortran] {
        let x = d.path().join("x.npy");
        npyz_write(&x, "<f8", &[3, 4, 5], order, &v);
        for (dtype, ty) in [("f64", "<f8"), ("f32", "<f4"), ("f16", "<f2")] {
            let y = d.path().join(format!("y_{dtype}.npy"));
            let (code, _, err) =
                relu(&["apply", x.to_str().unwrap(), "--dtype", dtype, "-o", y.to_str().unwrap()], None);
            assert_eq!(code, 0, "{err}");
            let f = npyz_read(&y);
            assert_eq!(f.shape(), &[3, 4, 5]);
            assert_eq!(f.order(), order, "the order is kept");
            assert_eq!(f.dtype(), DType::Plain(ty.parse().unwrap()));
            let got: Vec<f64> = match dtype {
                "f64" => f.into_vec::<f64>().unwrap(),
                "f32" => f.into_vec::<f32>().unwrap().into_iter().map(f64::from).collect(),
                _ => f.into_vec::<half::f16>().unwrap().into_iter().map(f64::from).collect(),
            };
            for (i, (&a, &b)) in v.iter().zip(&got).enumerate() {
                // computed in the input's type (f64), then rounded to the output's
                let want = match dtype {
                    "f64" => relu64(a),
                    "f32" => relu64(a) as f32 as f64,
                    _ => f64::from(half::f16::from_f64(relu64(a))),
                };
                assert!(want.to_bits() == b.to_bits() || (want.is_nan() && b.is_nan()), "{dtype} [{i}]: {a} → {b}");
            }
        }
    }
    // integers, 0-d and empty arrays
    let xi = d.path().join("i.npy");
    npyz_write(&xi, "<i4", &[2, 3], Order::C, &[-3i32, 0, 5, i32::MIN, i32::MAX, -1]);
    let yi = d.path().join("yi.npy");
    assert_eq!(relu(&["apply", xi.to_str().unwrap(), "-o", yi.to_str().unwrap()], None).0, 0);
    let f = npyz_read(&yi);
    assert_eq!((f.shape().to_vec(), f.dtype()), (vec![2, 3], DType::Plain("<i4".parse().unwrap())));
    assert_eq!(f.into_vec::<i32>().unwrap(), [0, 0, 5, 0, i32::MAX, 0]);
    for shape in [&[][..], &[0, 7]] {
        let x = d.path().join("s.npy");
        let data: Vec<f32> = if shape.is_empty() { vec![-4.0] } else { vec![] };
        npyz_write(&x, "<f4", shape, Order::C, &data);
        let y = d.path().join("sy.npy");
        assert_eq!(relu(&["apply", x.to_str().unwrap(), "-o", y.to_str().unwrap()], None).0, 0);
        let f = npyz_read(&y);
        assert_eq!(f.shape(), shape);
        let got = f.into_vec::<f32>().unwrap();
        assert_eq!(got, if shape.is_empty() { vec![0.0f32] } else { vec![] });
    }
}

#[test]
fn relu_reads_what_npyz_writes() {
    let d = tempfile::tempdir().unwrap();
    let v = values(24);
    let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    // big-endian and little-endian, C and Fortran: relu's output is native little-endian C or
    // Fortran as the input was, with the same values
    for ty in ["<f4", ">f4"] {
        for order in [Order::C, Order::Fortran] {
            let x = d.path().join("x.npy");
            npyz_write(&x, ty, &[2, 3, 4], order, &v32);
            let y = d.path().join("y.npy");
            let (code, _, err) = relu(&["apply", x.to_str().unwrap(), "-o", y.to_str().unwrap()], None);
            assert_eq!(code, 0, "{ty} {order:?}: {err}");
            let f = npyz_read(&y);
            assert_eq!((f.shape().to_vec(), f.order()), (vec![2, 3, 4], order));
            let got = f.into_vec::<f32>().unwrap();
            for (&a, &b) in v32.iter().zip(&got) {
                let want = relu64(a as f64) as f32;
                assert!(want.to_bits() == b.to_bits() || (want.is_nan() && b.is_nan()), "{ty}: {a} → {b}");
            }
            // and the statistics see the same values
            let (code, out, err) = relu(&["stats", "--json", x.to_str().unwrap()], None);
            assert_eq!(code, 0, "{err}");
            let s: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(s["elements"], 24);
            assert_eq!(s["nan"], 1);
            assert_eq!(s["shape"], serde_json::json!([2, 3, 4]));
        }
    }
    // every integer width npyz writes
    let x = d.path().join("u.npy");
    npyz_write(&x, "<u2", &[4], Order::C, &[0u16, 1, 65535, 7]);
    let (code, out, err) = relu(&["stats", "--json", x.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((s["dtype"].as_str(), s["max"].as_f64(), s["zeros"].as_u64()), (Some("uint16"), Some(65535.0), Some(1)));
    let x = d.path().join("i8.npy");
    npyz_write(&x, ">i8", &[3], Order::C, &[-5i64, i64::MAX, 2]);
    let y = d.path().join("i8y.npy");
    assert_eq!(relu(&["apply", x.to_str().unwrap(), "-o", y.to_str().unwrap()], None).0, 0);
    assert_eq!(npyz_read(&y).into_vec::<i64>().unwrap(), [0, i64::MAX, 2]);
}
