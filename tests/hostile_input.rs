//! Inputs and arguments a hostile (or unlucky) user can give, found by reviewing every index,
//! `unwrap` and allocation that a value from outside can reach: each is refused cleanly or
//! handled right, never a panic, an abort or a hang.

use assert_cmd::Command;
use relu::dtype::DType;
use relu::format::npy::write_header;
use std::path::Path;

fn relu_in(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("relu").unwrap();
    c.current_dir(dir).timeout(std::time::Duration::from_secs(60));
    c
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A `.npy` of `values` with `shape`, in Fortran order when `fortran` (values given in file order).
fn npy(path: &Path, shape: &[u64], fortran: bool, values: &[f32]) {
    let mut b = write_header(DType::F32, fortran, shape);
    b.extend(f32_bytes(values));
    std::fs::write(path, b).unwrap();
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fortran-order input and upstream written to `.safetensors` (C order): the upstream must be
/// reordered with the input, element for element.
#[test]
fn a_fortran_upstream_is_reordered_with_its_input() {
    let d = tempfile::tempdir().unwrap();
    let x: Vec<f32> = (-6..6).map(|v| v as f32).collect(); // C order, shape (3, 4)
    let g: Vec<f32> = (0..12).map(|v| v as f32 * 10.0).collect();
    let to_f = |v: &[f32]| -> Vec<f32> { (0..4).flat_map(|c| (0..3).map(move |r| v[r * 4 + c])).collect() };
    std::fs::create_dir(d.path().join("c")).unwrap();
    std::fs::create_dir(d.path().join("f")).unwrap();
    npy(&d.path().join("c/x.npy"), &[3, 4], false, &x);
    npy(&d.path().join("c/g.npy"), &[3, 4], false, &g);
    npy(&d.path().join("f/x.npy"), &[3, 4], true, &to_f(&x));
    npy(&d.path().join("f/g.npy"), &[3, 4], true, &to_f(&g));
    for o in ["c", "f"] {
        relu_in(&d.path().join(o))
            .args(["apply", "x.npy", "--act", "grad", "--upstream", "g.npy", "-o", "y.safetensors"])
            .assert()
            .success();
    }
    let c = std::fs::read(d.path().join("c/y.safetensors")).unwrap();
    let f = std::fs::read(d.path().join("f/y.safetensors")).unwrap();
    assert_eq!(c, f, "the Fortran pair must give the C pair's tensor");
    let want = f32_bytes(&[0., 0., 0., 0., 0., 0., 0., 70., 80., 90., 100., 110.]);
    assert!(c.ends_with(&want));
}

#[test]
fn absurd_bin_and_thread_counts_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    npy(&d.path().join("x.npy"), &[4], false, &[1., 2., 3., 4.]);
    for args in [
        &["hist", "--bins", "18446744073709551615", "--range=0:1", "x.npy"][..],
        &["stats", "--bins", "9223372036854775808", "--range=0:1", "x.npy"],
        &["hist", "--bins", "1048577", "x.npy"],
        &["stats", "-j", "100000000000", "x.npy"],
        &["hist", "-j", "18446744073709551615", "x.npy"],
        &["hist", "--size", "20000x20000", "x.npy", "-o", "x.png"],
    ] {
        let o = relu_in(d.path()).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!d.path().join("x.png").exists());
    }
    // the largest allowed bin count works (and a thread count above the cores is accepted)
    relu_in(d.path()).args(["hist", "--bins", "1048576", "--format", "json", "-j", "64", "x.npy"]).assert().success();
}

/// Data at an odd offset (a header whose length is not a multiple of 4) reaches the histogram
/// and the quantiles' passes through a memory map unaligned: f32 and f64 read where they lie, the
/// other types copied aligned, never cast. Every result equals the aligned file's.
#[test]
fn unaligned_mapped_data_is_counted_like_read_data() {
    let d = tempfile::tempdir().unwrap();
    // a third of the values zeros (the histogram's packing of nonzero values runs)
    let v: Vec<f64> = (0..1000).map(|i| if i % 3 == 0 { 0.0 } else { (i as f64 - 500.0) / 100.0 }).collect();
    type Bytes = fn(f64) -> Vec<u8>;
    let types: [(&str, DType, Bytes); 3] = [
        ("<f4", DType::F32, |x| (x as f32).to_le_bytes().to_vec()),
        ("<f8", DType::F64, |x| x.to_le_bytes().to_vec()),
        ("<f2", DType::F16, |x| relu::act::f32_to_f16(x as f32).to_le_bytes().to_vec()),
    ];
    for (descr, dt, bytes) in types {
        let data: Vec<u8> = v.iter().flat_map(|&x| bytes(x)).collect();
        // a v1 header padded to an odd total length
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1000,), }}");
        let mut h = dict.to_string();
        while (10 + h.len() + 1).is_multiple_of(2) {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        assert_eq!(b.len() % 2, 1);
        b.extend(&data);
        std::fs::write(d.path().join("odd.npy"), &b).unwrap();
        let mut even = write_header(dt, false, &[1000]);
        even.extend(&data);
        std::fs::write(d.path().join("even.npy"), &even).unwrap();
        let run = |args: &[&str], file: &str, mmap: bool| {
            let mut c = relu_in(d.path());
            c.args(args).arg(file);
            if mmap {
                c.env("RELU_READ", "mmap");
            }
            let o = c.output().unwrap();
            assert!(o.status.success(), "{descr} {args:?} {file} mmap={mmap}: {}", stderr(&o));
            let mut j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let o = j.as_object_mut().unwrap();
            o.remove("input");
            o.remove("name");
            j
        };
        let commands: [&[&str]; 3] = [
            &["hist", "--range=-4:4", "--format", "json"],
            &["hist", "--bins", "7", "--format", "json"],
            &["stats", "--json", "--quantiles", "0.1,0.5,0.99"],
        ];
        for args in commands {
            let want = run(args, "even.npy", false);
            assert_eq!(run(args, "odd.npy", true), want, "{descr} {args:?} mapped");
            assert_eq!(run(args, "odd.npy", false), want, "{descr} {args:?} read");
        }
    }
}

#[test]
fn empty_big_endian_slopes_are_refused_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    npy(&d.path().join("x.npy"), &[4], false, &[1., -2., 3., -4.]);
    std::fs::write(
        d.path().join("a.npy"),
        b"\x93NUMPY\x01\x00\x76\x00{'descr': '>f4', 'fortran_order': False, 'shape': (0,), }"
            .iter()
            .copied()
            .chain(std::iter::repeat_n(b' ', 0x76 - 58))
            .chain([b'\n'])
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let o = relu_in(d.path())
        .args(["apply", "x.npy", "--act", "prelu", "--alpha", "a.npy", "-o", "y.npy"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no slopes"), "{}", stderr(&o));
    // big-endian slopes that exist are read right: 0.5 on every channel
    let mut b = write_header(DType::F32, false, &[1]);
    let lt = b.iter().position(|&c| c == b'<').unwrap();
    b[lt] = b'>';
    b.extend(0.5f32.to_be_bytes());
    std::fs::write(d.path().join("a.npy"), b).unwrap();
    relu_in(d.path()).args(["apply", "x.npy", "--act", "prelu", "--alpha", "a.npy", "-o", "y.npy"]).assert().success();
    let y = std::fs::read(d.path().join("y.npy")).unwrap();
    assert!(y.ends_with(&f32_bytes(&[1., -1., 3., -2.])));
}

#[test]
fn merged_counts_that_overflow_are_an_error() {
    let d = tempfile::tempdir().unwrap();
    npy(&d.path().join("x.npy"), &[4], false, &[1., -2., 3., -4.]);
    let o = relu_in(d.path()).args(["stats", "--json", "x.npy"]).output().unwrap();
    assert!(o.status.success());
    let mut j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    j["elements"] = serde_json::json!(u64::MAX - 1);
    std::fs::write(d.path().join("big.json"), serde_json::to_vec(&j).unwrap()).unwrap();
    let o = relu_in(d.path()).args(["merge-stats", "big.json", "big.json"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(stderr(&o).contains("big.json") && stderr(&o).contains("elements"), "{}", stderr(&o));
}

/// An error message to a stderr nobody reads (`2>&1 | head` that has exited) is dropped; the
/// exit status still says what happened.
#[cfg(unix)]
#[test]
fn a_closed_stderr_is_not_a_panic() {
    use assert_cmd::cargo::CommandCargoExt;
    use std::process::{Command, Stdio};
    // through assert_cmd, which runs the binary under the target's runner (qemu for aarch64)
    let mut child = Command::cargo_bin("relu")
        .unwrap()
        .args(["stats", "does-not-exist.npy"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

/// A `.safetensors` header is read, not mapped: refusals are the library's own.
#[test]
fn safetensors_headers_are_checked_without_mapping_the_file() {
    let d = tempfile::tempdir().unwrap();
    let header = br#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let file = |extra: &[u8], data: usize| {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend(header);
        b.extend(extra);
        b.extend(f32_bytes(&[1.0, -1.0])[..data].iter());
        b
    };
    std::fs::write(d.path().join("ok.safetensors"), file(b"", 8)).unwrap();
    relu_in(d.path()).args(["stats", "ok.safetensors"]).assert().success();
    for (name, bytes, why) in [
        ("short.safetensors", file(b"", 4), "incomplete metadata"),
        ("long.safetensors", file(b"", 8).into_iter().chain([0, 0]).collect(), "incomplete metadata"),
        ("huge.safetensors", u64::MAX.to_le_bytes().to_vec(), "too large"),
        ("past.safetensors", 1000u64.to_le_bytes().into_iter().chain(*b"{}").collect(), "header"),
    ] {
        std::fs::write(d.path().join(name), bytes).unwrap();
        let o = relu_in(d.path()).args(["stats", name]).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{name}");
        let e = stderr(&o);
        assert!(e.starts_with(&format!("relu: {name}")) && e.to_lowercase().contains(why), "{name}: {e}");
    }
}

/// `hist -` spools stdin: a `.safetensors` there is recognised (its header length, then `{`),
/// and an error names `<stdin>`, never the spool's temporary path.
#[test]
fn hist_on_stdin_knows_safetensors_and_names_stdin_in_errors() {
    let d = tempfile::tempdir().unwrap();
    let header = br#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header);
    b.extend(f32_bytes(&[1.0, -1.0]));
    relu_in(d.path()).args(["hist", "--format", "json", "-"]).write_stdin(b.clone()).assert().success();
    b.truncate(b.len() - 2);
    let o = relu_in(d.path()).args(["hist", "-"]).write_stdin(b).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("relu: <stdin>") && !stderr(&o).contains("tmp"), "{}", stderr(&o));
}
