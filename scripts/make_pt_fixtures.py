#!/usr/bin/env python3
"""Makes fixtures/pt/: small .pt files written by PyTorch, the reference arrays of their tensors,
and a hostile set that relu must refuse without running anything.

    python3 -m venv target/torch-venv
    target/torch-venv/bin/pip install torch numpy   # or: --index-url https://download.pytorch.org/whl/cpu
    target/torch-venv/bin/python scripts/make_pt_fixtures.py

Writes (committed, so `cargo test` needs no torch):
  fixtures/pt/valid/CASE.pt        torch.save of each case
  fixtures/pt/ref/CASE__NAME.npy   each tensor as NumPy sees it (bf16: its uint16 bits)
  fixtures/pt/ref/CASE__NAME.relu.npy   torch.relu of it (bf16: bits)
  fixtures/pt/manifest.json        per case: the tensors (name, dtype, shape, strides) in order
  fixtures/pt/invalid/CASE.pt      refused files; manifest["invalid"][CASE] says why
The hostile pickle's __reduce__ calls os.system to create the file named by manifest["pwned"]
in the working directory: the tests run relu on it and check that no such file appears.
"""
import collections
import io
import json
import os
import shutil
import struct
import sys
import zipfile

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "pt")
PWNED = "relu-pt-pwned"


def np_of(t):
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(np.uint16)
    if t.dtype == torch.bool:
        return t.numpy().astype(np.uint8)
    return t.contiguous().numpy()


def flatten(obj, prefix=""):
    if isinstance(obj, torch.Tensor):
        return [(prefix, obj)]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else []
    out = []
    for k, v in items:
        out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def valid_cases():
    g = torch.Generator().manual_seed(24)
    r = lambda *s: torch.randn(*s, generator=g)
    base = r(6, 9)
    shared = r(64)
    lin = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    specials = torch.tensor([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-45, -1e-45, 3.5, -2.25])
    return {
        "bare": r(4, 6),
        "nested": {"layers": [{"pre": r(16, 8), "post": r(16, 8)}, {"pre": r(16, 4)}], "step": 12,
                   "note": "epoch 3", "lr": 0.5, "flags": (True, None), "raw": b"\x00\xffab", 7: r(3)},
        "module_state_dict": lin.state_dict(),
        "parameter": {"p": torch.nn.Parameter(r(4, 4))},
        "list_of_batches": [r(8, 5) for _ in range(3)],
        "tuple_acts": (r(2, 3), r(3, 2)),
        "transposed": {"t": base.t()},
        "sliced": {"s": base[1:5, 2:8], "col": base[:, 3], "step": base[::2, ::3]},
        "shared": {"a": shared[:40].view(5, 8), "b": shared[40:].view(3, 8), "c": shared[:40].view(8, 5).t()},
        "expanded": {"e": r(3).expand(4, 3)},
        "zero_d_and_empty": {"z": torch.tensor(2.5), "e": torch.zeros(0, 7), "n": torch.tensor(-1.0)},
        "specials": {"x": specials, "h": specials.half(), "b": specials.bfloat16(), "d": specials.double()},
        "dtypes": {"f16": r(33).half(), "bf16": r(33).bfloat16(), "f64": r(33).double(),
                   "i8": torch.arange(-16, 17, dtype=torch.int8), "i16": torch.arange(-16, 17, dtype=torch.int16) * 999,
                   "i32": torch.arange(-16, 17, dtype=torch.int32) * 99999,
                   "i64": torch.arange(-16, 17, dtype=torch.int64) * 10**15,
                   "u8": torch.arange(0, 33, dtype=torch.uint8) * 7, "bool": torch.arange(33) % 3 == 0},
    }


def save_refs(case, obj, manifest):
    tensors = []
    for name, t in flatten(obj):
        ref = f"{case}__{name or 'tensor'}"
        np.save(f"{ROOT}/ref/{ref}.npy", np_of(t))
        if t.dtype != torch.bool:
            np.save(f"{ROOT}/ref/{ref}.relu.npy", np_of(torch.relu(t)))
        tensors.append({"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                        "strides": list(t.stride()), "ref": ref})
    manifest["valid"][case] = {"tensors": tensors}


def rewrite_zip(src, dst, change):
    """Copies a zip entry by entry; change(name, bytes) -> (name, bytes, compress_type) or None to drop."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            got = change(info.filename, zin.read(info.filename))
            if got is not None:
                name, data, how = got
                zout.writestr(zipfile.ZipInfo(name), data, compress_type=how)


class Pwn:
    def __reduce__(self):
        return (os.system, (f"echo pwned > {PWNED}",))


class Thing:
    def __init__(self):
        self.w = torch.ones(3)


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    for d in ("valid", "invalid", "ref"):
        os.makedirs(f"{ROOT}/{d}")
    manifest = {"pwned": PWNED, "valid": {}, "invalid": {}}
    for case, obj in valid_cases().items():
        torch.save(obj, f"{ROOT}/valid/{case}.pt")
        save_refs(case, obj, manifest)

    # big-endian: a little-endian file with its byteorder record and storages swapped (torch
    # writes this on a big-endian machine)
    be = {"w": torch.arange(-6.0, 6.0).view(3, 4), "i": torch.arange(-3, 3, dtype=torch.int32)}
    torch.save(be, f"{ROOT}/tmp.pt")
    kinds = {"0": 4, "1": 4}

    def swap(name, data):
        if name.endswith("/byteorder"):
            return name, b"big", zipfile.ZIP_STORED
        leaf = name.rsplit("/data/", 1)
        if len(leaf) == 2 and leaf[1] in kinds:
            n = kinds[leaf[1]]
            data = b"".join(data[i:i + n][::-1] for i in range(0, len(data), n))
        return name, data, zipfile.ZIP_STORED
    rewrite_zip(f"{ROOT}/tmp.pt", f"{ROOT}/valid/big_endian.pt", swap)
    save_refs("big_endian", be, manifest)
    # a valid zip whose entries are deflated (torch writes them stored)
    rewrite_zip(f"{ROOT}/valid/nested.pt", f"{ROOT}/valid/deflated.pt", lambda n, d: (n, d, zipfile.ZIP_DEFLATED))
    save_refs("deflated", torch.load(f"{ROOT}/valid/nested.pt", weights_only=True), manifest)
    os.remove(f"{ROOT}/tmp.pt")

    inv = manifest["invalid"]

    def bad(case, why, obj=None, raw=None, **kw):
        path = f"{ROOT}/invalid/{case}.pt"
        if raw is not None:
            open(path, "wb").write(raw)
        else:
            torch.save(obj, path, **kw)
        inv[case] = why

    bad("malicious_reduce", "a pickle whose __reduce__ calls os.system", {"x": Pwn()})
    bad("class_instance", "a pickled class instance", {"x": Thing()})
    bad("module", "a whole nn.Module (a class)", torch.nn.Linear(2, 2))
    bad("sparse", "a sparse tensor", {"s": torch.eye(4).to_sparse()})
    bad("complex", "a complex tensor", {"c": torch.ones(3, dtype=torch.complex64)})
    bad("quantized", "a quantized tensor", {"q": torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.qint8)})
    try:
        bad("nested_tensor", "a nested tensor", {"n": torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])})
    except Exception as e:  # some builds cannot pickle nested tensors
        print("nested tensor skipped:", e, file=sys.stderr)
    bad("legacy_format", "the legacy non-zip format", {"x": torch.ones(3)}, _use_new_zipfile_serialization=False)
    ts = torch.jit.script(torch.nn.ReLU())
    torch.jit.save(ts, f"{ROOT}/invalid/torchscript.pt")
    inv["torchscript"] = "a TorchScript archive"
    good = open(f"{ROOT}/valid/nested.pt", "rb").read()
    bad("truncated", "a zip cut in half", raw=good[: len(good) // 2])
    bad("not_a_zip", "random bytes with a .pt name", raw=bytes(range(256)) * 4)
    rewrite_zip(f"{ROOT}/valid/nested.pt", f"{ROOT}/invalid/missing_storage.pt",
                lambda n, d: None if n.endswith("/data/1") else (n, d, zipfile.ZIP_STORED))
    inv["missing_storage"] = "data.pkl names a storage record that is absent"
    rewrite_zip(f"{ROOT}/valid/nested.pt", f"{ROOT}/invalid/short_storage.pt",
                lambda n, d: (n, d[:100] if n.endswith("/data/1") else d, zipfile.ZIP_STORED))
    inv["short_storage"] = "a storage record shorter than its tensor"

    def with_pickle(case, why, pkl):
        rewrite_zip(f"{ROOT}/valid/bare.pt", f"{ROOT}/invalid/{case}.pt",
                    lambda n, d: (n, pkl if n.endswith("/data.pkl") else d, zipfile.ZIP_STORED))
        inv[case] = why
    with_pickle("deep_nesting", "a list nested 100,000 deep", b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b".")
    # a list holding itself 40 times over, nested 40 deep: 2^40 paths if walked naively
    laughs = b"\x80\x02]q\x00" + b"".join(b"](" + b"h%c" % i * 2 + b"eq%c" % (i + 1) for i in range(40)) + b"."
    with_pickle("billion_laughs", "a list of the same list, 40 levels deep", laughs)
    with_pickle("eval_global", "STACK_GLOBAL of builtins.eval",
                b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x0dopen('x','w')\x85R.")
    with_pickle("view_past_storage", "a view past its storage",
                b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
                b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x18tQK\x10K\x04K\x06\x86K\x06K\x01\x86\x89)tR.")
    json.dump(manifest, open(f"{ROOT}/manifest.json", "w"), indent=1, sort_keys=True)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"fixtures/pt: {total} bytes")


if __name__ == "__main__":
    main()
