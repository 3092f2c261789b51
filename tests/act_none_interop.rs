//! `--act none` (apply and batch): formats and element types converted, values untouched. Every
//! array the binary writes is read back by NumPy (or, for `.safetensors`, by its header and bytes)
//! and compared bit for bit with the input — NaN payloads (signalling ones too), −0.0, infinities
//! and subnormals included — across the format pairs relu writes; with `--dtype`, with NumPy's
//! `astype` (one rounding) and, for NaN, the documented rule (sign and top payload bits, quiet).
//! Python: `common::python`.

mod common;

const SCRIPT: &str = r#"
import json, struct

def f32(*bits):
    return np.array(bits, np.uint32).view(np.float32)
# the awkward values: signalling and quiet NaNs with payloads and both signs, ±0, ±inf, subnormals
SPECIAL32 = f32(0x7f800001, 0xffc00123, 0x7fbfffff, 0x7fc00000, 0x80000000, 0x00000000, 0x7f800000,
                0xff800000, 0x00000001, 0x807fffff, 0x3f800000, 0xbf800000, 0x7f7fffff, 0xff7fffff)
SPECIAL16 = np.array([0x7c01, 0xfe55, 0x7dff, 0x8000, 0x0000, 0x7c00, 0xfc00, 0x0001, 0x83ff, 0x3c00,
                      0xbc00, 0x7bff], np.uint16).view(np.float16)
SPECIAL64 = np.array([0x7ff0000000000001, 0xfff8000000000abc, 0x7ff7ffffffffffff, 0x8000000000000000,
                      0, 0x7ff0000000000000, 0xfff0000000000000, 1, 0x800fffffffffffff,
                      0x3ff0000000000000, 0x47efffffe0000000], np.uint64).view(np.float64)
rng = np.random.default_rng(22)
def data(special, dtype, shape):
    with np.errstate(over="ignore"):  # f16 overflows to inf: more awkward values
        x = (rng.standard_normal(int(np.prod(shape))) * 10.0 ** rng.integers(-8, 8, int(np.prod(shape)))).astype(dtype)
    x[: len(special)] = special
    rng.shuffle(x)
    return x.reshape(shape)
arrays = {
    "f16": data(SPECIAL16, np.float16, (37, 5)),
    "f32": data(SPECIAL32, np.float32, (7, 11, 3)),
    "f64": data(SPECIAL64, np.float64, (301,)),
    "f32_fortran": np.asfortranarray(data(SPECIAL32, np.float32, (9, 6))),
    "i8": rng.integers(-128, 128, (40, 3)).astype(np.int8),
    "u16": rng.integers(0, 65536, (17,)).astype(np.uint16),
    "i64": rng.integers(-2**62, 2**62, (5, 4)),
    "scalar": np.array(-0.0, np.float32),
    "empty": np.zeros((0, 3), np.float64),
}

def bits_equal(a, b):
    return same(a, b)
def st_write(path, tensors, meta=None):
    # by hand: NumPy has no bfloat16, and bf16 tensors are given as raw uint16 bits
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, (dt, arr) in tensors.items():
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
def st_read(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        out[name] = (t["dtype"], t["shape"], raw[8 + n + a:8 + n + b])
    return out, meta, list(header)

# --- .npy → .npy, to a file and stdin → stdout, for every dtype: the bytes themselves
for name, x in arrays.items():
    src = f"{D}/{name}.npy"
    np.save(src, x)
    run("apply", "--act", "none", src, "-o", f"{D}/{name}_o.npy")
    check(f"npy -> npy {name}", bits_equal(np.load(f"{D}/{name}_o.npy"), x))
    got = np.load(__import__("io").BytesIO(run("apply", "-a", "none", "-", stdin=open(src, "rb").read())))
    check(f"stdin -> stdout {name}", bits_equal(got, x))
    check(f"fortran order kept {name}", np.load(f"{D}/{name}_o.npy").flags.f_contiguous == x.flags.f_contiguous or x.ndim < 2)

# --- in place: nothing changes
np.save(f"{D}/inplace.npy", arrays["f32"])
before = open(f"{D}/inplace.npy", "rb").read()
run("apply", "--act", "none", "--in-place", f"{D}/inplace.npy")
check("in place leaves every byte", open(f"{D}/inplace.npy", "rb").read() == before)

# --- .npy → .safetensors and back (C order, names, every bit)
for name in ("f16", "f32", "f64", "f32_fortran", "i8", "u16", "i64"):
    x = arrays[name]
    run("apply", "--act", "none", f"{D}/{name}.npy", "-o", f"{D}/{name}.safetensors")
    t, _, _ = st_read(f"{D}/{name}.safetensors")
    (dt, shape, raw), = t.values()
    check(f"npy -> safetensors {name}", tuple(shape) == x.shape and raw == np.ascontiguousarray(x).astype(x.dtype.newbyteorder("<")).tobytes())
    run("apply", "--act", "none", f"{D}/{name}.safetensors", "--member", list(t)[0], "-o", f"{D}/{name}_back.npy")
    check(f"safetensors -> npy {name}", bits_equal(np.load(f"{D}/{name}_back.npy"), np.ascontiguousarray(x)))

# --- .npz → .npz (stored and deflated), members and names kept; one member → .npy
for saver in (np.savez, np.savez_compressed):
    src = f"{D}/all_{saver.__name__}.npz"
    saver(src, **arrays)
    run("apply", "--act", "none", src, "-o", f"{D}/all_o.npz")
    with np.load(f"{D}/all_o.npz") as z:
        check(f"npz names {saver.__name__}", sorted(z.files) == sorted(arrays))
        for name, x in arrays.items():
            check(f"npz -> npz {saver.__name__} {name}", bits_equal(z[name], x))
    run("apply", "--act", "none", src, "--member", "f16", "-o", f"{D}/member.npy")
    check(f"npz member -> npy {saver.__name__}", bits_equal(np.load(f"{D}/member.npy"), arrays["f16"]))

# --- .safetensors (with bf16) → .safetensors: names, order, metadata and every bit kept
bf16 = np.concatenate([np.array([0x7f81, 0xffc1, 0x7fbf, 0x8000, 0x0000, 0x7f80, 0xff80, 0x0001, 0x8080, 0x3f80],
                                np.uint16), rng.integers(0, 65536, 500).astype(np.uint16)])
tensors = {"z_last": ("BF16", bf16.reshape(51, 10)), "a_f16": ("F16", arrays["f16"]), "m_f32": ("F32", arrays["f32"]),
           "f64": ("F64", arrays["f64"]), "ints": ("I32", rng.integers(-9, 9, (6,)).astype(np.int32))}
st_write(f"{D}/in.safetensors", tensors, {"epoch": "20"})
run("apply", "--act", "none", f"{D}/in.safetensors", "-o", f"{D}/out.safetensors")
t, meta, order = st_read(f"{D}/out.safetensors")
check("safetensors order", order == list(tensors))
check("safetensors metadata", meta == {"epoch": "20"})
for name, (dt, arr) in tensors.items():
    check(f"safetensors -> safetensors {name}", t[name][0] == dt and t[name][2] == np.ascontiguousarray(arr).tobytes())

# --- CSV and TSV: text in, the same numbers out (NaN as nan: text has no payload)
x = data(SPECIAL64, np.float64, (60, 4))
np.savetxt(f"{D}/t.csv", x, delimiter=",", fmt="%.17g")
for out in ("csv", "tsv", "npy"):
    run("apply", "--act", "none", f"{D}/t.csv", "-o", f"{D}/t_o.{out}")
    got = np.load(f"{D}/t_o.npy") if out == "npy" else np.loadtxt(f"{D}/t_o.{out}", delimiter="," if out == "csv" else "\t", ndmin=2)
    want = np.loadtxt(f"{D}/t.csv", delimiter=",", ndmin=2)
    nan = np.isnan(want)
    check(f"csv -> {out} values", got.shape == want.shape and np.array_equal(np.isnan(got), nan)
          and bits_equal(np.where(nan, 0.0, got), np.where(nan, 0.0, want)))
    check(f"csv -> {out} -0.0 kept", np.array_equal(np.signbit(got[~nan]), np.signbit(want[~nan])))
# .npy → CSV → .npy: f64 values through text and back, every non-NaN bit
run("apply", "--act", "none", f"{D}/f64.npy", "-o", f"{D}/f64.csv")
run("apply", "--act", "none", f"{D}/f64.csv", "--no-header", "-o", f"{D}/f64_back.npy")
back, x = np.load(f"{D}/f64_back.npy").ravel(), arrays["f64"]
nan = np.isnan(x)
check("npy -> csv -> npy", np.array_equal(np.isnan(back), nan) and bits_equal(back[~nan], x[~nan]))

# --- --dtype: NumPy's astype, one rounding; NaN keeps its sign and top payload bits, quieted
def nan_rule(x, to):
    src = {np.float16: (np.uint16, 10, 16), np.float32: (np.uint32, 23, 32), np.float64: (np.uint64, 52, 64)}
    ui, sm, sb = src[x.dtype.type]
    ut, tm, tb = src[to]
    b = x.view(ui).astype(np.uint64)
    sign = (b >> np.uint64(sb - 1)) & np.uint64(1)
    pay = b & np.uint64((1 << sm) - 1)
    pay = pay >> np.uint64(sm - tm) if sm > tm else pay << np.uint64(tm - sm)
    exp = np.uint64(((1 << (tb - 1 - tm)) - 1) << tm)
    return ((sign << np.uint64(tb - 1)) | exp | np.uint64(1 << (tm - 1)) | pay).astype(ut)
for name, to, flag in (("f32", np.float16, "f16"), ("f64", np.float16, "f16"), ("f64", np.float32, "f32"),
                       ("f32", np.float64, "f64"), ("f16", np.float32, "f32"), ("f16", np.float64, "f64")):
    x = arrays[name]
    run("apply", "--act", "none", "--dtype", flag, f"{D}/{name}.npy", "-o", f"{D}/{name}_{flag}.npy")
    got = np.load(f"{D}/{name}_{flag}.npy")
    nan = np.isnan(x)
    with np.errstate(all="ignore"):
        want = x.astype(to)
    check(f"--dtype {name} -> {flag} values", got.dtype == to and bits_equal(got[~nan], want[~nan]))
    uint = {np.float16: np.uint16, np.float32: np.uint32, np.float64: np.uint64}[to]
    check(f"--dtype {name} -> {flag} NaN rule", np.array_equal(got[nan].view(uint), nan_rule(x[nan], to)))
for name in ("i8", "u16", "i64"):
    run("apply", "--act", "none", "--dtype", "f64", f"{D}/{name}.npy", "-o", f"{D}/{name}_f64.npy")
    check(f"--dtype {name} -> f64", bits_equal(np.load(f"{D}/{name}_f64.npy"), arrays[name].astype(np.float64)))
# bf16 → f32 is exact (bf16 is an f32's upper half); f32 → bf16 rounds to nearest even
run("apply", "--act", "none", "--dtype", "f32", f"{D}/in.safetensors", "--member", "z_last", "-o", f"{D}/bf16_f32.npy")
got, b = np.load(f"{D}/bf16_f32.npy").ravel(), bf16
w = (b.astype(np.uint32) << np.uint32(16)).view(np.float32)
nan = np.isnan(w)
check("--dtype bf16 -> f32 exact", bits_equal(got[~nan], w[~nan]) and np.isnan(got[nan]).all())
run("apply", "--act", "none", "--dtype", "bf16", f"{D}/f32.npy", "-o", f"{D}/f32_bf16.safetensors")
(dt, shape, raw), = st_read(f"{D}/f32_bf16.safetensors")[0].values()
x = arrays["f32"].ravel()
u = x.view(np.uint32).astype(np.uint64)
rne = ((u + np.uint64(0x7fff) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)).astype(np.uint16)
got = np.frombuffer(raw, np.uint16)
nan = np.isnan(x)
check("--dtype f32 -> bf16 rounds to nearest even", dt == "BF16" and np.array_equal(got[~nan], rne[~nan])
      and np.isnan((got[nan].astype(np.uint32) << np.uint32(16)).view(np.float32)).all())

# --- batch --act none: a tree of mixed files mirrored, every output equal to its input
os.makedirs(f"{D}/tree/sub", exist_ok=True)
for name in ("f16", "f32", "f64", "i64"):
    np.save(f"{D}/tree/{name}.npy", arrays[name])
np.savez(f"{D}/tree/sub/pack.npz", **arrays)
st_write(f"{D}/tree/sub/net.safetensors", tensors)
np.savetxt(f"{D}/tree/sub/t.csv", np.load(f"{D}/t_o.npy"), delimiter=",", fmt="%.17g")
run("batch", "-q", "--act", "none", "--out-dir", f"{D}/mirror", "--stats", f"{D}/tree.jsonl", f"{D}/tree")
for name in ("f16", "f32", "f64", "i64"):
    check(f"batch npy {name}", bits_equal(np.load(f"{D}/mirror/{name}.npy"), arrays[name]))
with np.load(f"{D}/mirror/sub/pack.npz") as z:
    check("batch npz", all(bits_equal(z[k], v) for k, v in arrays.items()))
t, _, order = st_read(f"{D}/mirror/sub/net.safetensors")
check("batch safetensors", order == list(tensors) and all(t[k][0] == dt and t[k][2] == a.tobytes() for k, (dt, a) in tensors.items()))
check("batch csv", open(f"{D}/mirror/sub/t.csv").read() == open(f"{D}/tree/sub/t.csv").read())
objs = [json.loads(l) for l in open(f"{D}/tree.jsonl")]
check("batch --act none statistics say activation null", len(objs) > 10 and all(o["activation"] is None for o in objs))
"#;

#[test]
fn act_none_keeps_every_bit_across_formats() {
    let Some(py) = common::python() else {
        eprintln!("skipped: RELU_SKIP_INTEROP=1");
        return;
    };
    common::run_py_checks(py, SCRIPT, 100);
}

/// Flags of a function have nothing to go with under `--act none`: usage errors, exit 2.
#[test]
fn act_none_refuses_function_flags() {
    let x = tempfile::tempdir().unwrap();
    let p = x.path().join("x.npy");
    std::fs::write(&p, relu::format::npy::write_header(relu::dtype::DType::F32, false, &[2])).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.extend_from_slice(&[0u8; 8]);
    std::fs::write(&p, bytes).unwrap();
    let p = p.to_str().unwrap();
    for extra in [&["--slope", "0.1"][..], &["--alpha", "0.1"], &["--upstream", p], &["--of", "leaky"]] {
        let mut args = vec!["apply", "--act", "none", p, "-o", "/dev/null"];
        args.extend_from_slice(extra);
        let (code, _, err) = common::relu(&args, None);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    let (code, out, err) = common::relu(&["apply", "--act", "none", p], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, std::fs::read(p).unwrap());
}
