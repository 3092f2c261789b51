//! relu's `.pt` outputs loaded by PyTorch itself, `torch.load(path, weights_only=True)`: the same
//! structure as the input (dict/OrderedDict/list/tuple types, keys and order, plain leaves, a
//! state dict's `_metadata`, parameters), every tensor torch.relu's bits. Needs a Python with
//! torch in `$RELU_TORCH_PYTHON` (`target/torch-venv/bin/python` is used when it exists); without
//! one the test fails, unless `RELU_SKIP_TORCH=1` says to skip it.

use std::path::{Path, PathBuf};

fn torch_python() -> Option<PathBuf> {
    if std::env::var_os("RELU_SKIP_TORCH").is_some_and(|v| v == "1") {
        eprintln!("pt_interop: skipped (RELU_SKIP_TORCH=1)");
        return None;
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/torch-venv/bin/python");
    let py = match std::env::var_os("RELU_TORCH_PYTHON") {
        Some(p) => PathBuf::from(p),
        None if local.exists() => local,
        None => panic!(
            "the .pt interop test needs a Python with torch: set RELU_TORCH_PYTHON (see scripts/make_pt_fixtures.py \
             for making target/torch-venv), or RELU_SKIP_TORCH=1 to skip it"
        ),
    };
    let ok = std::process::Command::new(&py).args(["-c", "import torch"]).output().is_ok_and(|o| o.status.success());
    assert!(ok, "{} cannot `import torch`", py.display());
    Some(py)
}

const CHECK: &str = r#"
import sys, os, glob, subprocess, torch
BIN, FIX, D = sys.argv[1], sys.argv[2], sys.argv[3]
fails, checked = [], 0
BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}

def same(a, b, path):
    global checked
    # a bool tensor is read as uint8, so its relu is itself as uint8
    if isinstance(b, torch.Tensor):
        w = b.detach().to(torch.uint8) if b.dtype == torch.bool else torch.relu(b.detach())
        if not isinstance(a, torch.Tensor) or type(a) is not type(b) or a.dtype != w.dtype or a.shape != w.shape:
            fails.append(f"{path}: {type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}, want {type(b).__name__} {w.dtype} {w.shape}")
            return
        if isinstance(b, torch.nn.Parameter) and a.requires_grad != b.requires_grad:
            fails.append(f"{path}: requires_grad")
        x, y = a.detach().contiguous().view(-1), w.contiguous().view(-1)
        if a.is_floating_point():
            nan = torch.isnan(x) & torch.isnan(y)
            ok = bool((nan | (x.view(BITS[x.element_size()]) == y.view(BITS[y.element_size()]))).all())
        else:
            ok = torch.equal(x, y)
        if not ok:
            fails.append(f"{path}: values differ")
        checked += 1
        return
    if type(a) is not type(b):
        fails.append(f"{path}: {type(a).__name__}, want {type(b).__name__}")
        return
    if isinstance(b, dict):
        if list(a.keys()) != list(b.keys()):
            fails.append(f"{path}: keys {list(a.keys())} want {list(b.keys())}")
            return
        if getattr(a, "_metadata", None) != getattr(b, "_metadata", None):
            fails.append(f"{path}: _metadata")
        for k in b:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(b, (list, tuple)):
        if len(a) != len(b):
            fails.append(f"{path}: length")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}.{i}")
    elif a != b:
        fails.append(f"{path}: {a!r} want {b!r}")

for f in sorted(glob.glob(f"{FIX}/valid/*.pt")):
    case = os.path.basename(f)[:-3]
    out = f"{D}/{case}.pt"
    p = subprocess.run([BIN, "apply", f, "-o", out], capture_output=True)
    if p.returncode != 0:
        fails.append(f"{case}: relu exit {p.returncode}: {p.stderr.decode()[:200]}")
        continue
    try:
        same(torch.load(out, weights_only=True), torch.load(f, weights_only=True), case)
    except Exception as e:
        fails.append(f"{case}: {e!r}"[:300])
# other inputs into .pt: a .safetensors (a dict of its tensors) and a .npy (a bare tensor)
p = subprocess.run([BIN, "apply", f"{FIX}/valid/nested.pt", "--act", "leaky", "-o", f"{D}/n.safetensors"], capture_output=True)
p = subprocess.run([BIN, "apply", f"{D}/n.safetensors", "--act", "relu", "-o", f"{D}/n.pt"], capture_output=True)
try:
    got = torch.load(f"{D}/n.pt", weights_only=True)
    want = torch.load(f"{FIX}/valid/nested.pt", weights_only=True)
    if list(got) != ["layers.0.pre", "layers.0.post", "layers.1.pre", "7"] or not torch.equal(got["7"], torch.relu(want[7])):
        fails.append(f"safetensors into .pt: {list(got)}")
    checked += 1
except Exception as e:
    fails.append(f"safetensors into .pt: {e!r}")
for f in fails:
    print("FAIL", f)
print(f"checked {checked}")
sys.exit(1 if fails else 0)
"#;

#[test]
fn torch_loads_relus_pt_outputs_with_weights_only() {
    let Some(py) = torch_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("check.py");
    std::fs::write(&script, CHECK).unwrap();
    let fix = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pt");
    let o = std::process::Command::new(&py)
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_relu"))
        .arg(&fix)
        .arg(dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    let n: usize = out.lines().last().and_then(|l| l.strip_prefix("checked ")).unwrap().parse().unwrap();
    assert!(n >= 45, "only {n} tensors checked");
}
