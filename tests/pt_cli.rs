//! `.pt` files (PyTorch's zip format) through the CLI, against the fixtures PyTorch made
//! (`scripts/make_pt_fixtures.py`): names, dtypes and shapes as torch sees them, every tensor's
//! relu'd bits as torch.relu computes them (views, shared storages, big-endian, deflated entries
//! included), structure kept through `.pt` → `.pt`, names kept through `.safetensors`, and the
//! hostile set refused with nothing run and nothing written.

mod common;
use common::relu;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pt")
}

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(root().join("manifest.json")).unwrap()).unwrap()
}

fn valid(case: &str) -> String {
    root().join("valid").join(format!("{case}.pt")).display().to_string()
}

/// A `.npy` file's data bytes in C order (a Fortran-order file's reordered: a transposed view is
/// written as NumPy saves one) and its descr.
fn npy_data(bytes: &[u8]) -> (String, Vec<u8>) {
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let (len, at) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12)
    };
    let header = String::from_utf8_lossy(&bytes[at..at + len]).into_owned();
    let descr = header.split("'descr': '").nth(1).unwrap().split('\'').next().unwrap().to_string();
    let data = &bytes[at + len..];
    if !header.contains("'fortran_order': True") {
        return (descr, data.to_vec());
    }
    let shape: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| d.trim().parse().unwrap())
        .collect();
    let size: usize = descr[2..].parse().unwrap();
    // element i in C order sits at its index's Fortran offset
    let mut c = Vec::with_capacity(data.len());
    for i in 0..shape.iter().product::<usize>() {
        let (mut rest, mut off, mut stride) = (i, 0, 1);
        let idx: Vec<usize> = shape
            .iter()
            .rev()
            .map(|&d| {
                let k = rest % d;
                rest /= d;
                k
            })
            .collect();
        for (k, &d) in idx.iter().rev().zip(&shape) {
            off += k * stride;
            stride *= d;
        }
        c.extend_from_slice(&data[off * size..(off + 1) * size]);
    }
    (descr, c)
}

/// Equal bits, element by element, except that NaN matches any NaN (SPEC §2 pins no NaN bits
/// for half types).
fn same_bits(got: &[u8], want: &[u8], size: usize, float: bool, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let nan = |e: &[u8]| -> bool {
        match size {
            2 => {
                let u = u16::from_le_bytes([e[0], e[1]]);
                // f16 and bf16 alike: an all-ones exponent with a mantissa is NaN in both
                (u & 0x7c00 == 0x7c00 && u & 0x03ff != 0) || (u & 0x7f80 == 0x7f80 && u & 0x7f != 0)
            }
            4 => f32::from_le_bytes(e.try_into().unwrap()).is_nan(),
            8 => f64::from_le_bytes(e.try_into().unwrap()).is_nan(),
            _ => false,
        }
    };
    for (i, (g, w)) in got.chunks(size).zip(want.chunks(size)).enumerate() {
        assert!(g == w || (float && nan(g) && nan(w)), "{what}: element {i}: got {g:?}, want {w:?}");
    }
}

fn tensors(case: &Value) -> Vec<Value> {
    case["tensors"].as_array().unwrap().clone()
}

#[test]
fn inspect_lists_each_tensor_by_path_with_torch_dtype_and_shape() {
    let m = manifest();
    for (case, c) in m["valid"].as_object().unwrap() {
        let src = valid(case);
        let (code, out, err) = relu(&["inspect", "--json", &src], None);
        assert_eq!(code, 0, "{case}: {err}");
        let got: Vec<Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let want = tensors(c);
        assert_eq!(got.len(), want.len(), "{case}");
        for (g, w) in got.iter().zip(&want) {
            let name = w["name"].as_str().unwrap();
            let input = if name.is_empty() { src.clone() } else { format!("{src}:{name}") };
            assert_eq!(g["input"], input.as_str(), "{case}");
            assert_eq!(g["format"], "pt");
            let dtype = match w["dtype"].as_str().unwrap() {
                "bool" => "uint8", // read as uint8 (0 or 1 per byte)
                d => d,
            };
            assert_eq!(g["dtype"], dtype, "{case}:{name}");
            assert_eq!(g["shape"], w["shape"], "{case}:{name}");
            // strides as torch gives them (views: transposed, sliced, expanded), and an order
            // that says whether the tensor is a plain C or F block
            if let Some(st) = w.get("strides") {
                assert_eq!(g["strides"], *st, "{case}:{name}");
                let s: Vec<u64> = st.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
                let shape: Vec<u64> = w["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
                let c = relu::format::pt::is_contiguous(&shape, &s);
                let rev = |v: &[u64]| v.iter().rev().copied().collect::<Vec<u64>>();
                let f = relu::format::pt::is_contiguous(&rev(&shape), &rev(&s));
                let want = if c {
                    "C"
                } else if f {
                    "F"
                } else {
                    "strided"
                };
                assert_eq!(g["order"], want, "{case}:{name}");
            }
        }
    }
    // the table says a view's strides
    let (code, out, err) = relu(&["inspect", &valid("sliced")], None);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("strides (18, 3)"), "{}", String::from_utf8_lossy(&out));
}

/// Every tensor of every fixture, one at a time (`--member`), relu'd into `.npy` (bf16 into
/// `.safetensors`): the bits torch.relu gives.
#[test]
fn every_tensor_relus_to_torchs_bits() {
    let m = manifest();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (case, c) in m["valid"].as_object().unwrap() {
        for t in tensors(c) {
            let (name, dtype) = (t["name"].as_str().unwrap(), t["dtype"].as_str().unwrap());
            let rf = t["ref"].as_str().unwrap();
            let want_file = if dtype == "bool" { format!("{rf}.npy") } else { format!("{rf}.relu.npy") };
            let (descr, want) = npy_data(&std::fs::read(root().join("ref").join(want_file)).unwrap());
            let bf16 = dtype == "bfloat16";
            let out = dir.path().join(if bf16 { "o.safetensors" } else { "o.npy" });
            let out_s = out.display().to_string();
            let (code, _, err) = relu(&["apply", &valid(case), "--member", name, "-o", &out_s], None);
            assert_eq!(code, 0, "{case}:{name}: {err}");
            let bytes = std::fs::read(&out).unwrap();
            let got = if bf16 {
                let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
                bytes[8 + n..].to_vec()
            } else {
                let (d, data) = npy_data(&bytes);
                assert_eq!(d, descr, "{case}:{name}: dtype");
                data
            };
            let size: usize = descr[2..].parse().unwrap();
            same_bits(&got, &want, size, descr.contains('f') || bf16, &format!("{case}:{name}"));
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} tensors checked");
}

/// `.pt` → `.pt`: the same names and shapes in the same order (read back by relu here; the
/// interop test reads them with torch), and each tensor's bits.
#[test]
fn a_pt_output_keeps_every_name_in_order() {
    let m = manifest();
    let dir = tempfile::tempdir().unwrap();
    for (case, c) in m["valid"].as_object().unwrap() {
        let out = dir.path().join(format!("{case}.pt")).display().to_string();
        let (code, _, err) = relu(&["apply", &valid(case), "-o", &out], None);
        assert_eq!(code, 0, "{case}: {err}");
        let (code, so, err) = relu(&["inspect", "--json", &out], None);
        assert_eq!(code, 0, "{case}: {err}");
        let names: Vec<String> = String::from_utf8(so)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["input"].as_str().unwrap().strip_prefix(&out).unwrap().trim_start_matches(':').to_string()
            })
            .collect();
        let want: Vec<String> = tensors(c).iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
        assert_eq!(names, want, "{case}");
        every_crc_holds(&out);
    }
    // the tensors' bits, once more through the written file: relu is idempotent
    let out = dir.path().join("sliced.pt").display().to_string();
    let o = dir.path().join("s.npy").display().to_string();
    let (code, _, err) = relu(&["apply", &out, "--member", "step", "-o", &o], None);
    assert_eq!(code, 0, "{err}");
    let (_, want) = npy_data(&std::fs::read(root().join("ref/sliced__step.relu.npy")).unwrap());
    assert_eq!(npy_data(&std::fs::read(&o).unwrap()).1, want);
}

#[test]
fn pt_to_safetensors_and_back_keeps_names() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("n.safetensors").display().to_string();
    let (code, _, err) = relu(&["apply", &valid("nested"), "-o", &st], None);
    assert_eq!(code, 0, "{err}");
    let pt = dir.path().join("back.pt").display().to_string();
    let (code, _, err) = relu(&["apply", &st, "-o", &pt], None);
    assert_eq!(code, 0, "{err}");
    let (code, so, err) = relu(&["inspect", "--json", &pt], None);
    assert_eq!(code, 0, "{err}");
    let so = String::from_utf8(so).unwrap();
    for n in ["layers.0.pre", "layers.0.post", "layers.1.pre", "7"] {
        assert!(so.contains(&format!("{pt}:{n}\"")), "{n} in {so}");
    }
    // a .npy into a .pt: one bare tensor, named as the file
    let npy = dir.path().join("x.npy").display().to_string();
    let (code, _, err) = relu(&["apply", &valid("bare"), "-o", &npy], None);
    assert_eq!(code, 0, "{err}");
    let pt = dir.path().join("x.pt").display().to_string();
    let (code, _, err) = relu(&["apply", &npy, "-o", &pt], None);
    assert_eq!(code, 0, "{err}");
    let (_, so, _) = relu(&["inspect", "--json", &pt], None);
    let v: Value = serde_json::from_slice(&so).unwrap();
    assert_eq!(v["input"], pt.as_str());
    assert_eq!(v["shape"], serde_json::json!([4, 6]));
}

#[test]
fn stdin_is_sniffed_as_pt() {
    let bytes = std::fs::read(valid("nested")).unwrap();
    let (code, so, err) = relu(&["stats", "--json", "-"], Some(bytes));
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8(so).unwrap().lines().count(), 4);
}

#[test]
fn several_tensors_into_one_npy_ask_for_a_member() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("o.npy").display().to_string();
    let (code, _, err) = relu(&["apply", &valid("nested"), "-o", &o], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--member"), "{err}");
    let (code, _, err) = relu(&["apply", &valid("nested"), "--member", "nope", "-o", &o], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("layers.0.pre"), "the names there are: {err}");
}

/// The hostile set: each refused (exit 1, the file named, one line), nothing written, nothing
/// run: the malicious pickle's `os.system` would create the marker file in the working directory.
#[test]
fn hostile_files_are_refused_and_run_nothing() {
    let m = manifest();
    let marker = m["pwned"].as_str().unwrap();
    let inv = m["invalid"].as_object().unwrap();
    assert!(inv.len() >= 15);
    for (case, why) in inv {
        let src = root().join("invalid").join(format!("{case}.pt"));
        let work = tempfile::tempdir().unwrap();
        for args in [vec!["apply", src.to_str().unwrap(), "-o", "out.pt"], vec!["inspect", src.to_str().unwrap()]] {
            let o =
                assert_cmd::Command::cargo_bin("relu").unwrap().current_dir(work.path()).args(&args).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!err.contains("panicked"), "{case}: {err}");
            assert_eq!(o.status.code(), Some(1), "{case} ({why}): {err}");
            assert!(err.contains(&format!("{case}.pt")), "{case}: the message names the file: {err}");
            if args[0] == "apply" {
                assert_eq!(err.trim().lines().count(), 1, "{case}: {err}");
            }
            let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
            assert!(left.is_empty(), "{case}: left {left:?}");
        }
        assert!(!work.path().join(marker).exists(), "{case}: the pickle ran code");
    }
}

#[test]
fn refusals_say_what_was_refused() {
    let msg = |case: &str| {
        let src = root().join("invalid").join(format!("{case}.pt"));
        relu(&["inspect", src.to_str().unwrap()], None).2
    };
    assert!(msg("malicious_reduce").contains("'posix.system'"));
    assert!(msg("eval_global").contains("'builtins.eval'"));
    assert!(msg("class_instance").contains("Thing"));
    assert!(msg("sparse").contains("sparse"));
    assert!(msg("complex").contains("complex"));
    assert!(msg("quantized").contains("quantized"));
    assert!(msg("legacy_format").contains("legacy"));
    assert!(msg("torchscript").contains("TorchScript"));
    assert!(msg("missing_storage").contains("data/1"));
    assert!(msg("view_past_storage").contains("past its storage"));
}

/// `.pt` → `.npz` keeps the tensors' paths as member names and their relu'd bits (views
/// gathered); `.npz` → `.pt` makes a dict of the members (Fortran order as a view, not copied
/// in another order), which reads back to the same bits.
#[test]
fn pt_to_npz_and_back_keeps_names_and_bits() {
    let m = manifest();
    let dir = tempfile::tempdir().unwrap();
    for case in ["nested", "module_state_dict", "sliced", "transposed", "shared"] {
        let c = &m["valid"][case];
        let npz = dir.path().join(format!("{case}.npz"));
        let (code, _, err) = relu(&["apply", &valid(case), "-o", npz.to_str().unwrap()], None);
        assert_eq!(code, 0, "{case}: {err}");
        let pt = dir.path().join(format!("{case}.pt"));
        let (code, _, err) = relu(&["apply", "--act", "none", npz.to_str().unwrap(), "-o", pt.to_str().unwrap()], None);
        assert_eq!(code, 0, "{case}: {err}");
        for t in tensors(c) {
            let name = t["name"].as_str().unwrap();
            let rf = t["ref"].as_str().unwrap();
            let (descr, want) = npy_data(&std::fs::read(root().join("ref").join(format!("{rf}.relu.npy"))).unwrap());
            let size: usize = descr[2..].parse().unwrap();
            for (from, what) in [(&npz, "npz"), (&pt, "npz → pt")] {
                let (code, so, err) =
                    relu(&["apply", "--act", "none", &format!("{}:{name}", from.display()), "--to", "npy"], None);
                assert_eq!(code, 0, "{case}:{name} ({what}): {err}");
                let (d, got) = npy_data(&so);
                assert_eq!(d, descr, "{case}:{name} ({what})");
                same_bits(&got, &want, size, descr.contains('f'), &format!("{case}:{name} ({what})"));
            }
        }
    }
    // bfloat16 has no NumPy type: refused, naming the way out
    let (code, _, err) = relu(&["apply", &valid("dtypes"), "-o", dir.path().join("d.npz").to_str().unwrap()], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bfloat16") && err.contains("--dtype f32"), "{err}");
    assert!(!dir.path().join("d.npz").exists());
}

/// A transposed matrix is a Fortran-order array over its storage: read in the storage's order
/// (positional reads, as a Fortran `.npy`), written as NumPy saves one (`fortran_order: True`)
/// and as torch keeps one (a `.pt` view with the same strides); its statistics are those of the
/// storage read with the unit axis swapped, to the bit; C-order outputs still get C order.
#[test]
fn a_transposed_view_streams_in_its_storage_order() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("{}:t", valid("transposed"));
    let (_, want) = npy_data(&std::fs::read(root().join("ref/transposed__t.relu.npy")).unwrap());
    // .npy: Fortran order, the same values
    let (code, so, err) = relu(&["apply", &src, "--to", "npy"], None);
    assert_eq!(code, 0, "{err}");
    let text = String::from_utf8_lossy(&so[..128]).into_owned();
    assert!(text.contains("'fortran_order': True, 'shape': (9, 6)"), "{text}");
    same_bits(&npy_data(&so).1, &want, 4, true, "transposed to .npy");
    // .pt: a view with the input's strides
    let pt = dir.path().join("t.pt").display().to_string();
    let (code, _, err) = relu(&["apply", &src, "-o", &pt], None);
    assert_eq!(code, 0, "{err}");
    let (_, so, _) = relu(&["inspect", "--json", &pt], None);
    let v: Value = serde_json::from_slice(&so).unwrap();
    assert_eq!((v["order"].as_str(), &v["strides"]), (Some("F"), &serde_json::json!([1, 9])), "{v}");
    // CSV and .safetensors are C order: the rows of the view
    let (code, so, err) = relu(&["apply", &src, "--to", "csv"], None);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<f32>> =
        String::from_utf8(so).unwrap().lines().map(|l| l.split(',').map(|x| x.parse().unwrap()).collect()).collect();
    let flat: Vec<u8> = rows.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(rows.len(), 9);
    same_bits(&flat, &want, 4, true, "transposed to CSV");
    let st = dir.path().join("t.safetensors").display().to_string();
    let (code, _, err) = relu(&["apply", &src, "-o", &st], None);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&st).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    same_bits(&bytes[8 + n..], &want, 4, true, "transposed to .safetensors");
    // statistics: the view's units on axis 0 are the storage's on axis 1, bit for bit
    let (_, storage) = npy_data(&std::fs::read(root().join("ref/transposed__t.npy")).unwrap());
    let f = dir.path().join("storage.npy");
    let mut npy = b"\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (6, 9), }".to_vec();
    npy.resize(10 + 0x76 - 1, b' ');
    npy.push(b'\n');
    // the storage is the view's Fortran order: its C-order data transposed back
    let mut data = vec![0u8; storage.len()];
    for i in 0..9 {
        for j in 0..6 {
            data[(j * 9 + i) * 4..][..4].copy_from_slice(&storage[(i * 6 + j) * 4..][..4]);
        }
    }
    npy.extend_from_slice(&data);
    std::fs::write(&f, npy).unwrap();
    let stats = |args: &[&str]| {
        let (code, so, err) = relu(args, None);
        assert_eq!(code, 0, "{err}");
        let mut v: Value = serde_json::from_slice(&so).unwrap();
        for k in ["input", "name", "shape"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v["units"].as_object_mut().unwrap().remove("axis");
        v
    };
    let a = stats(&["stats", "--json", "--unit-axis", "0", &src]);
    let b = stats(&["stats", "--json", "--unit-axis", "1", f.to_str().unwrap()]);
    assert_eq!(a, b);
    assert_eq!(a["units"]["count"], 9, "{a}");
}

/// Reads every entry of a zip to its end: the `zip` crate fails on a CRC-32 that does not match.
fn every_crc_holds(path: &str) {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        let name = e.name().to_string();
        std::io::copy(&mut e, &mut std::io::sink()).unwrap_or_else(|err| panic!("{path}: {name}: {err}"));
    }
}

/// A storage written in place by every worker (each range's CRC-32 combined, writes held back to
/// 64 KiB boundaries) holds the same bytes, and the same CRC, as one written in order.
#[test]
fn a_storage_written_by_all_workers_has_its_crc_and_bits() {
    let dir = tempfile::tempdir().unwrap();
    // several chunks per worker and a length that is no multiple of anything
    let n = 1_234_567usize;
    let mut data = Vec::with_capacity(128 + 4 * n);
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n},), }}");
    let header = format!("{header:<117}\n");
    data.extend_from_slice(b"\x93NUMPY\x01\x00");
    data.extend_from_slice(&(header.len() as u16).to_le_bytes());
    data.extend_from_slice(header.as_bytes());
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&((x >> 40) as f32 / 8e6 - 1.0).to_le_bytes());
    }
    let input = dir.path().join("x.npy");
    std::fs::write(&input, &data).unwrap();
    let input = input.display().to_string();
    let npy = dir.path().join("y.npy").display().to_string();
    let (code, _, err) = relu(&["apply", &input, "-o", &npy], None);
    assert_eq!(code, 0, "{err}");
    let want = npy_data(&std::fs::read(&npy).unwrap()).1;
    for j in ["1", "2", "3"] {
        let out = dir.path().join(format!("y{j}.pt")).display().to_string();
        let (code, _, err) = relu(&["apply", "-j", j, &input, "-o", &out], None);
        assert_eq!(code, 0, "{err}");
        every_crc_holds(&out);
        let mut z = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut z.by_name("archive/data/0").unwrap(), &mut got).unwrap();
        assert!(got == want, "-j {j}: the storage's bits differ");
    }
}
