//! `.safetensors` through the binary: the PyTorch bf16 oracle, the files the `safetensors`
//! library writes and those it refuses, `--member`, stdin, bf16 into `.npy`, and damaged files
//! (every truncation, flipped bytes, a header promising terabytes). Outputs are read back with
//! the `safetensors` crate, the reader the Python library uses.

mod common;

use common::relu;
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/safetensors").join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn bf16(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// bf16 outputs equal, NaN-ness only for NaNs (PyTorch's own NaN bits depend on position).
fn same_bf16(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.chunks(2).zip(want.chunks(2)).enumerate() {
        let (g, w) = (u16::from_le_bytes([g[0], g[1]]), u16::from_le_bytes([w[0], w[1]]));
        if bf16(w).is_nan() {
            assert!(bf16(g).is_nan(), "{what}[{i}]: got {g:#06x}, want a NaN");
        } else {
            assert_eq!(g, w, "{what}[{i}]: got {g:#06x} want {w:#06x}");
        }
    }
}

#[test]
fn pytorch_bf16_oracle() {
    let man: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("oracle/manifest.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (i, c) in man["cases"].as_array().unwrap().iter().enumerate() {
        let input = fixture(&format!("oracle/{}", c["input"].as_str().unwrap()));
        let out = dir.path().join(format!("o{i}.safetensors"));
        let mut args: Vec<String> = vec!["apply".into(), s(&input).into(), "-o".into(), s(&out).into()];
        match c["op"].as_str().unwrap() {
            "relu" => {}
            "leaky" => args.extend(["--act".into(), "leaky".into(), "--slope".into(), c["slope"].to_string()]),
            "prelu" => args.extend([
                "--act".into(),
                "prelu".into(),
                "--alpha".into(),
                s(&fixture(&format!("oracle/{}", c["alpha"].as_str().unwrap()))).into(),
                "--channel-axis".into(),
                c["channel_axis"].to_string(),
            ]),
            "grad" => {
                assert_eq!(c["act"], "relu", "the fixtures hold grad of relu only");
                let up = fixture(&format!("oracle/{}", c["upstream"].as_str().unwrap()));
                args.extend(["--act".into(), "grad".into(), "--upstream".into(), s(&up).into()]);
            }
            op => panic!("unknown op {op}"),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = relu(&args, None);
        assert_eq!(code, 0, "case {i}: {err}");
        let got_bytes = std::fs::read(&out).unwrap();
        let want_bytes = std::fs::read(fixture(&format!("oracle/{}", c["output"].as_str().unwrap()))).unwrap();
        let (got, want) =
            (SafeTensors::deserialize(&got_bytes).unwrap(), SafeTensors::deserialize(&want_bytes).unwrap());
        assert_eq!(got.names().len(), want.names().len(), "case {i}: tensor count");
        for (name, w) in want.tensors() {
            let g = got.tensor(&name).unwrap();
            assert_eq!((g.dtype(), g.shape()), (w.dtype(), w.shape()), "case {i} {name}");
            if w.dtype() == Dtype::BF16 {
                same_bf16(g.data(), w.data(), &format!("case {i} {name}"));
            } else {
                assert!(g.data() == w.data(), "case {i} {name}: bytes differ");
            }
        }
        if c.get("metadata").is_some() {
            let (_, gm) = SafeTensors::read_metadata(&got_bytes).unwrap();
            let (_, wm) = SafeTensors::read_metadata(&want_bytes).unwrap();
            assert_eq!(gm.metadata(), wm.metadata(), "case {i}: __metadata__ kept");
        }
    }
}

/// relu of one tensor's little-endian bytes, by the rules of SPEC §2, element by element.
fn relu_ref(dt: Dtype, b: &[u8]) -> Vec<u8> {
    fn each<const N: usize>(b: &[u8], f: impl Fn([u8; N]) -> [u8; N]) -> Vec<u8> {
        b.chunks(N).flat_map(|c| f(c.try_into().unwrap())).collect()
    }
    match dt {
        Dtype::BF16 => each::<2>(b, |c| if bf16(u16::from_le_bytes(c)) < 0.0 { [0, 0] } else { c }),
        Dtype::F16 => each::<2>(b, |c| {
            let h = u16::from_le_bytes(c);
            let v = half::f16::from_bits(h);
            if v < half::f16::ZERO {
                [0, 0]
            } else if v.is_nan() {
                (h | 0x0200).to_le_bytes()
            } else {
                c
            }
        }),
        Dtype::F32 => each::<4>(b, |c| if f32::from_le_bytes(c) < 0.0 { [0; 4] } else { c }),
        Dtype::F64 => each::<8>(b, |c| if f64::from_le_bytes(c) < 0.0 { [0; 8] } else { c }),
        Dtype::I8 => each::<1>(b, |c| [(c[0] as i8).max(0) as u8]),
        Dtype::I64 => each::<8>(b, |c| i64::from_le_bytes(c).max(0).to_le_bytes()),
        Dtype::U8 => b.to_vec(),
        other => panic!("no reference for {other:?}"),
    }
}

#[test]
fn every_valid_file_round_trips_names_order_metadata() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["empty_tensor", "multi_dtypes", "one_f32", "unicode_names", "zero_d"] {
        let input = fixture(&format!("valid/{f}.safetensors"));
        let out = dir.path().join(format!("{f}.safetensors"));
        let (code, _, err) = relu(&["apply", s(&input), "-o", s(&out)], None);
        assert_eq!(code, 0, "{f}: {err}");
        let (ib, ob) = (std::fs::read(&input).unwrap(), std::fs::read(&out).unwrap());
        let (i, o) = (SafeTensors::deserialize(&ib).unwrap(), SafeTensors::deserialize(&ob).unwrap());
        let (_, im) = SafeTensors::read_metadata(&ib).unwrap();
        let (_, om) = SafeTensors::read_metadata(&ob).unwrap();
        assert_eq!(im.metadata(), om.metadata(), "{f}: metadata");
        // the same names at the same places (equal ranges, of empty tensors, have no order)
        let mut keys = im.offset_keys();
        keys.sort();
        let mut okeys = om.offset_keys();
        okeys.sort();
        assert_eq!(keys, okeys, "{f}: names");
        for k in &keys {
            assert_eq!(im.info(k).unwrap().data_offsets, om.info(k).unwrap().data_offsets, "{f}:{k}: place");
        }
        for (name, t) in i.tensors() {
            let g = o.tensor(&name).unwrap();
            assert_eq!((g.dtype(), g.shape()), (t.dtype(), t.shape()), "{f}:{name}");
            assert_eq!(g.data(), relu_ref(t.dtype(), t.data()), "{f}:{name}");
        }
        // inspect: one line per tensor, FILE:TENSOR
        let (code, so, _) = relu(&["inspect", "--json", s(&input)], None);
        assert_eq!(code, 0);
        let lines: Vec<serde_json::Value> =
            String::from_utf8(so).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), i.len(), "{f}: inspect");
        for l in &lines {
            assert_eq!(l["format"], "safetensors");
            assert!(l["input"].as_str().unwrap().starts_with(&format!("{}:", s(&input))));
        }
    }
}

#[test]
fn refused_files_name_themselves_and_leave_nothing() {
    for f in std::fs::read_dir(fixture("invalid")).unwrap() {
        let f = f.unwrap().path();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.safetensors");
        for cmd in [vec!["apply", s(&f), "-o", s(&out)], vec!["stats", s(&f)], vec!["inspect", s(&f)]] {
            let (code, _, err) = relu(&cmd, None);
            let file_name = f.file_name().unwrap().to_str().unwrap();
            assert_eq!(code, 1, "{cmd:?}: {err}");
            assert!(err.contains(file_name) && !err.contains("panicked"), "{cmd:?}: {err}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{}: output left behind", f.display());
    }
}

#[test]
fn member_stdin_and_bf16_into_npy() {
    let src = fixture("valid/multi_dtypes.safetensors");
    let dir = tempfile::tempdir().unwrap();
    // one tensor to .npy
    let (code, so, err) = relu(&["apply", "--member", "c", s(&src), "--to", "npy"], None);
    assert_eq!(code, 0, "{err}");
    assert!(so.starts_with(b"\x93NUMPY"));
    // several tensors to one .npy: refused, naming them
    let (code, _, err) = relu(&["apply", s(&src), "-o", s(&dir.path().join("x.npy"))], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--member"), "{err}");
    // bf16 into .npy: refused with the way out, nothing written
    let (code, _, err) = relu(&["apply", "--member", "a", s(&src), "-o", s(&dir.path().join("a.npy"))], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--dtype f32"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // widened to f32: exact
    let a32 = dir.path().join("a32.npy");
    let (code, _, err) = relu(&["apply", "--member", "a", "--dtype", "f32", s(&src), "-o", s(&a32)], None);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&src).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let want: Vec<u8> = relu_ref(Dtype::BF16, st.tensor("a").unwrap().data())
        .chunks(2)
        .flat_map(|c| bf16(u16::from_le_bytes([c[0], c[1]])).to_le_bytes())
        .collect();
    let got = std::fs::read(&a32).unwrap();
    assert!(got.ends_with(&want), "f32 data");
    // stdin to stdout: sniffed, spooled, written back
    let (code, so, err) = relu(&["apply", "-", "--to", "safetensors"], Some(bytes.clone()));
    assert_eq!(code, 0, "{err}");
    let o = SafeTensors::deserialize(&so).unwrap();
    for (name, t) in st.tensors() {
        assert_eq!(o.tensor(&name).unwrap().data(), relu_ref(t.dtype(), t.data()), "{name}");
    }
    // f32 .npy → bf16 .safetensors, one tensor named after the file
    let one = dir.path().join("layer.npy");
    let (code, _, err) = relu(&["apply", "--member", "c", "--dtype", "f32", s(&src), "-o", s(&one)], None);
    assert_eq!(code, 0, "{err}");
    let b16 = dir.path().join("layer.safetensors");
    let (code, _, err) = relu(&["apply", s(&one), "--dtype", "bf16", "-o", s(&b16)], None);
    assert_eq!(code, 0, "{err}");
    let ob = std::fs::read(&b16).unwrap();
    let o = SafeTensors::deserialize(&ob).unwrap();
    assert_eq!(o.names(), vec!["layer"]);
    assert_eq!(o.tensor("layer").unwrap().dtype(), Dtype::BF16);
}

#[test]
fn stats_and_hist_give_one_result_per_tensor() {
    let src = fixture("oracle/dump_x.safetensors");
    let (code, so, err) = relu(&["stats", "--json", "--act", "relu", s(&src)], None);
    assert_eq!(code, 0, "{err}");
    let names: Vec<String> = String::from_utf8(so)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["input"].as_str().unwrap().to_string())
        .collect();
    let bytes = std::fs::read(&src).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let want: Vec<String> = meta.offset_keys().iter().map(|k| format!("{}:{k}", s(&src))).collect();
    assert_eq!(names, want);
    let (code, so, err) = relu(&["hist", "--format", "json", "--bins", "4", s(&src)], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8(so).unwrap().lines().count(), want.len());
}

/// Every truncation and a spread of flipped bytes: exit 0 or 1, never a panic, nothing left.
#[test]
fn damaged_files_fail_cleanly() {
    let good = std::fs::read(fixture("valid/multi_dtypes.safetensors")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.safetensors");
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("out.safetensors");
    let mut variants: Vec<Vec<u8>> = (0..good.len()).step_by(7).map(|n| good[..n].to_vec()).collect();
    for i in (0..good.len()).step_by(5) {
        let mut v = good.clone();
        v[i] ^= 0x5a;
        variants.push(v);
    }
    // a header length of a terabyte, and one just past the file
    let mut tera = good.clone();
    tera[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    variants.push(tera);
    for (k, v) in variants.iter().enumerate() {
        std::fs::write(&bad, v).unwrap();
        for cmd in [vec!["apply", s(&bad), "-o", s(&out)], vec!["stats", s(&bad)], vec!["inspect", s(&bad)]] {
            let (code, _, err) = relu(&cmd, None);
            assert!(code == 0 || code == 1, "variant {k} {cmd:?}: exit {code}: {err}");
        }
        let _ = std::fs::remove_file(&out);
        assert_eq!(std::fs::read_dir(outdir.path()).unwrap().count(), 0, "variant {k}: left behind");
    }
}

/// PReLU slopes from a `.safetensors` of one tensor give the oracle's answer, as from `.npy`.
#[test]
fn prelu_slopes_from_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    // the oracle's f32 slopes, as a one-tensor .safetensors written by relu itself
    let alpha = dir.path().join("alpha.safetensors");
    let npy = fixture("oracle/bf16_prelu_nchw_alpha.npy");
    // identity on the slopes: leaky with slope 1 keeps every value; then into .safetensors
    let (code, _, err) = relu(&["apply", "--act", "leaky", "--slope", "1", s(&npy), "-o", s(&alpha)], None);
    assert_eq!(code, 0, "{err}");
    let out = dir.path().join("y.safetensors");
    let x = fixture("oracle/bf16_prelu_nchw_x.safetensors");
    let args = ["apply", "--act", "prelu", "--alpha", s(&alpha), "--channel-axis", "1", s(&x), "-o", s(&out)];
    let (code, _, err) = relu(&args, None);
    assert_eq!(code, 0, "{err}");
    let (gb, wb) =
        (std::fs::read(&out).unwrap(), std::fs::read(fixture("oracle/bf16_prelu_nchw_y.safetensors")).unwrap());
    let (g, w) = (SafeTensors::deserialize(&gb).unwrap(), SafeTensors::deserialize(&wb).unwrap());
    same_bf16(g.tensor("x").unwrap().data(), w.tensor("x").unwrap().data(), "prelu");
    // a file of several tensors is refused, naming the rule
    let (code, _, err) = relu(
        &["apply", "--act", "prelu", "--alpha", s(&fixture("valid/multi_dtypes.safetensors")), s(&x), "-o", s(&out)],
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("only tensor"), "{err}");
}

/// `batch` finds `.safetensors` in a tree and mirrors them, one statistics line per tensor.
#[test]
fn batch_picks_up_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("acts/ckpt1");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(fixture("oracle/dump_x.safetensors"), tree.join("dump.safetensors")).unwrap();
    let out = dir.path().join("out");
    let stats = dir.path().join("stats.jsonl");
    let (code, _, err) =
        relu(&["batch", "--out-dir", s(&out), "--stats", s(&stats), s(&dir.path().join("acts"))], None);
    assert_eq!(code, 0, "{err}");
    let got = std::fs::read(out.join("ckpt1/dump.safetensors")).unwrap();
    let want = std::fs::read(fixture("oracle/dump_relu.safetensors")).unwrap();
    let (g, w) = (SafeTensors::deserialize(&got).unwrap(), SafeTensors::deserialize(&want).unwrap());
    for (name, t) in w.tensors() {
        assert_eq!(g.tensor(&name).unwrap().data(), t.data(), "{name}");
    }
    let lines = std::fs::read_to_string(&stats).unwrap().lines().count();
    assert_eq!(lines, w.len());
}

/// relu on stdin fed `head` then up to 256 MiB of zeros: its exit code, stderr, and how many
/// bytes it took before it stopped reading.
fn endless(args: &[&str], head: Vec<u8>) -> (i32, String, u64) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    // through assert_cmd, which runs the binary under the target's runner (qemu for aarch64)
    let mut child = <Command as assert_cmd::cargo::CommandCargoExt>::cargo_bin("relu")
        .unwrap()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let mut sent = 0u64;
        if w.write_all(&head).is_err() {
            return sent;
        }
        sent += head.len() as u64;
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            if w.write_all(&zeros).is_err() {
                break;
            }
            sent += zeros.len() as u64;
        }
        sent
    });
    let o = child.wait_with_output().unwrap();
    let sent = feeder.join().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned(), sent)
}

/// A stream is checked as its bytes arrive: an endless one is refused at once, not spooled
/// until the disk is full; a valid file with bytes after it is refused at the first extra byte,
/// as the library refuses a file with trailing bytes.
#[test]
fn an_endless_stream_is_refused_without_spooling_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.safetensors");
    let valid = std::fs::read(fixture("valid/multi_dtypes.safetensors")).unwrap();
    for (from, head, says) in [
        ("safetensors", vec![], "invalid JSON"),
        ("safetensors", valid.clone(), "not fully covered"),
        ("npz", vec![], "does not start with a zip header"),
    ] {
        let (code, err, sent) = endless(&["apply", "--from", from, "-", "-o", s(&out)], head);
        assert_eq!(code, 1, "{from}: {err}");
        assert!(err.starts_with("relu: <stdin>: ") && err.contains(says), "{from}: {err}");
        assert!(sent < 64 << 20, "{from}: {sent} bytes read before the refusal");
        assert!(!out.exists());
    }
    // the library's verdict on the same file with one byte more, or one less
    let mut more = valid.clone();
    more.push(0);
    assert!(SafeTensors::deserialize(&more).is_err());
    let (code, _, err) = relu(&["apply", "-", "--to", "safetensors"], Some(more));
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = relu(&["apply", "-", "--to", "safetensors"], Some(valid[..valid.len() - 1].to_vec()));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not fully covered"), "{err}");
}

/// SPEC §1: a safetensors header is the 8-byte length, then optional spaces and `{`. Sniffed as
/// such on stdin (it was taken for CSV).
#[test]
fn a_header_starting_with_spaces_is_sniffed_as_safetensors() {
    let valid = std::fs::read(fixture("valid/multi_dtypes.safetensors")).unwrap();
    let n = u64::from_le_bytes(valid[..8].try_into().unwrap()) as usize;
    let json = std::str::from_utf8(&valid[8..8 + n]).unwrap().trim_end();
    let mut text = format!("    {json}").into_bytes();
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut spaced = (text.len() as u64).to_le_bytes().to_vec();
    spaced.extend_from_slice(&text);
    spaced.extend_from_slice(&valid[8 + n..]);
    let st = SafeTensors::deserialize(&spaced).expect("the library reads it");
    let (code, so, err) = relu(&["apply", "-", "--to", "safetensors"], Some(spaced.clone()));
    assert_eq!(code, 0, "{err}");
    let o = SafeTensors::deserialize(&so).unwrap();
    for (name, t) in st.tensors() {
        assert_eq!(o.tensor(&name).unwrap().data(), relu_ref(t.dtype(), t.data()), "{name}");
    }
}

/// A `.safetensors` of f32 tensors `(name, values)` (the `safetensors` crate's layout).
fn write_f32_safetensors(path: &Path, tensors: &[(&str, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, v) in tensors {
        let start = data.len();
        data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": [v.len()], "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    h.resize(h.len().div_ceil(8) * 8, b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

/// `.npz` members from a `.safetensors` are written by position on all workers (their CRC-32
/// the header's combined with the ranges'): every CRC holds (the `zip` crate checks it as it
/// reads), and each member is the very `.npy` its tensor gives alone.
#[test]
fn npz_members_written_by_all_workers_have_their_crcs() {
    let dir = tempfile::tempdir().unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut values = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / 8e6 - 1.0
            })
            .collect()
    };
    let input = dir.path().join("x.safetensors");
    write_f32_safetensors(&input, &[("big", values(1_234_567)), ("odd", values(7)), ("none", vec![])]);
    for j in ["1", "2", "3"] {
        let out = dir.path().join(format!("y{j}.npz"));
        let (code, _, err) = relu(&["apply", "-j", j, s(&input), "-o", s(&out)], None);
        assert_eq!(code, 0, "{err}");
        let mut z = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
        for name in ["big", "odd", "none"] {
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut z.by_name(&format!("{name}.npy")).unwrap(), &mut got)
                .unwrap_or_else(|e| panic!("-j {j}: {name}: {e}"));
            let alone = dir.path().join(format!("{name}.npy"));
            let (code, _, err) = relu(&["apply", "--member", name, s(&input), "-o", s(&alone)], None);
            assert_eq!(code, 0, "{err}");
            assert!(got == std::fs::read(&alone).unwrap(), "-j {j}: {name}: the member differs");
        }
    }
}
