//! `.safetensors` against the Python `safetensors` library (its NumPy flavour): files it writes go
//! through the binary, and what the binary writes is read back by `load_file` and compared bit
//! for bit with `np.where(x < 0, 0, x)`. bf16 (which NumPy cannot name) is checked through the
//! library's raw `deserialize`. Python: `common::python` (CI's venv installs the library).

mod common;

const SCRIPT: &str = r#"
from safetensors.numpy import save_file, load_file
from safetensors import deserialize, safe_open

rng = np.random.default_rng(11)
def floats(shape, dt):
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 3, shape)).astype(dt)
    f = x.reshape(-1)
    f[::37] = -0.0
    if f.size > 5:
        f[5::41] = np.nan
        f[3::43] = -np.inf
    return x

tensors = {
    "layers.0.mlp.act": floats((64, 33), np.float32),
    "layers.0.attn": floats((2, 3, 17), np.float16),
    "norm": floats((100,), np.float64),
    "ids": rng.integers(-50, 50, (40,)).astype(np.int64),
    "mask": rng.integers(0, 255, (9,)).astype(np.uint8),
    "scalar": np.array(-2.5, np.float32),
    "empty": np.zeros((0, 4), np.float32),
}
meta = {"format": "np", "step": "42"}
src = f"{D}/lib.safetensors"
save_file(tensors, src, metadata=meta)
out = f"{D}/out.safetensors"
run("apply", src, "-o", out)
got = load_file(out)
check("names", sorted(got) == sorted(tensors))
for k, v in tensors.items():
    check(f"relu {k}", k in got and same(got[k], relu(v)))
with safe_open(out, framework="numpy") as f:
    check("metadata", f.metadata() == meta)
# stdin → stdout, one tensor out to .npy, and stats per tensor
b = run("apply", "-", "--to", "safetensors", stdin=open(src, "rb").read())
from safetensors.numpy import load
g2 = load(b)
check("stdin", all(same(g2[k], relu(v)) for k, v in tensors.items()))
n = run("apply", "--member", "layers.0.attn", src, "--to", "npy")
import io
check("member to npy", same(np.load(io.BytesIO(n)), relu(tensors["layers.0.attn"])))
lines = run("stats", "--json", src).decode().splitlines()
check("stats per tensor", len(lines) == len(tensors))

# bf16: bits from f32, written by the library's own low-level serializer (NumPy cannot name the
# type), read back raw
from safetensors import serialize, TensorSpec
def bf16_file(path, bits):
    bits = np.ascontiguousarray(bits)
    spec = TensorSpec(dtype="bfloat16", shape=list(bits.shape), data_ptr=bits.ctypes.data, data_len=bits.nbytes)
    open(path, "wb").write(serialize({"x": spec}))
f32 = floats((1000,), np.float32)
bits = (f32.view(np.uint32) >> 16).astype(np.uint16)
bf = f"{D}/bf.safetensors"
bf16_file(bf, bits)
bo = f"{D}/bf_out.safetensors"
run("apply", bf, "-o", bo)
d = dict(deserialize(open(bo, "rb").read()))
x = d["x"]
check("bf16 dtype", x["dtype"] == "BF16" and list(x["shape"]) == [1000])
y = np.frombuffer(bytes(x["data"]), np.uint16)
v = (bits.astype(np.uint32) << 16).view(np.float32)
want = np.where(v < 0, np.uint16(0), bits)
nan = np.isnan(v)
yv = (y.astype(np.uint32) << 16).view(np.float32)
check("bf16 relu", np.array_equal(y[~nan], want[~nan]) and np.isnan(yv[nan]).all())
# --dtype bf16 from f32 rounds once to nearest even, and back through --dtype f32
fo = f"{D}/f32.npy"
np.save(fo, f32)
bo2 = f"{D}/to_bf16.safetensors"
run("apply", fo, "--dtype", "bf16", "-o", bo2)
x = dict(deserialize(open(bo2, "rb").read()))["f32"]
y = np.frombuffer(bytes(x["data"]), np.uint16)
u = relu(f32).view(np.uint32).astype(np.uint64)
rne = ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype(np.uint16)
check("f32 to bf16", x["dtype"] == "BF16" and np.array_equal(y[~np.isnan(f32)], rne[~np.isnan(f32)]))
"#;

#[test]
fn safetensors_interop_with_the_python_library() {
    let Some(py) = common::python() else {
        eprintln!("SKIPPED safetensors_interop: RELU_SKIP_INTEROP=1");
        return;
    };
    let has_lib = std::process::Command::new(py).args(["-c", "import safetensors.numpy"]).output();
    assert!(
        has_lib.is_ok_and(|o| o.status.success()),
        "{} has no `safetensors`: pip install safetensors (or RELU_SKIP_INTEROP=1 to skip)",
        py.display()
    );
    let n = common::run_py_checks(py, SCRIPT, 12);
    eprintln!("safetensors_interop: {n} checks");
}
