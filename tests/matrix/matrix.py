#!/usr/bin/env python3
"""The differential matrix (issue 20): relu against a NumPy reference over format pairs and layouts.

Crosses input kind (.npy C/Fortran in both byte orders, an .npz member, .safetensors, CSV, TSV,
stdin) x dtype (f16, bf16 where the format has it, f32, f64, i8, i32, u8) x activation (relu,
leaky, prelu over axes 0, 1 and -1, and the grad of each with an upstream in the other memory
order) x output kind (.npy, .npz, .safetensors, CSV, TSV, stdout) x -j 1/3 x --stats --unit-axis
0/1/-1, over 0-d, empty, 1-D and 4-D shapes with odd extents. The product is too large, so the
cases are drawn with a fixed seed, and every (input kind, output kind) pair and every (memory
order, activation, unit axis) triple is placed first. Each case must give the bits of SPEC §2 (the
reference below follows its rules), the statistics of SPEC §4 as NumPy computes them, or the
documented refusal (its exit code, and no output left behind).

    matrix.py BIN                      run every case; print each failure and "N passed, N failed"
    matrix.py BIN --case 17 --keep D   run one case, leave its files in D (the failure lines say this)
    matrix.py BIN --cases 2000         more cases (the same first ones: the draw is a prefix)

Exit 0 when every case passes (or fails only as KNOWN below says), 1 otherwise.
"""
import argparse
import io
import json
import math
import os
import random
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

np.seterr(all="ignore")

SEED = 20_2020
DEFAULT_CASES = 420

IN_KINDS = ["npy-C<", "npy-C>", "npy-F<", "npy-F>", "npz", "safetensors", "csv", "tsv", "stdin"]
OUT_KINDS = ["npy", "npz", "safetensors", "csv", "tsv", "stdout"]
ACTS = ["relu", "leaky", "prelu0", "prelu1", "prelu-1",
        "grad-relu", "grad-leaky", "grad-prelu0", "grad-prelu1", "grad-prelu-1"]
UNIT_AXES = [0, 1, -1]
DTYPES = ["f16", "bf16", "f32", "f64", "i8", "i32", "u8"]
NP = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "i8": np.int8, "i32": np.int32,
      "u8": np.uint8}
NAMES = {"f16": "float16", "bf16": "bfloat16", "f32": "float32", "f64": "float64", "i8": "int8",
         "i32": "int32", "u8": "uint8"}
ST_DTYPE = {"f16": "F16", "bf16": "BF16", "f32": "F32", "f64": "F64", "i8": "I8", "i32": "I32",
            "u8": "U8"}
ST_BACK = {v: k for k, v in ST_DTYPE.items()}
FLOATS = {"f16", "bf16", "f32", "f64"}

SHAPES = [(), (0,), (1,), (7,), (33,), (3, 5, 1, 7), (1, 3, 3, 5), (5, 3, 7, 9), (3, 7, 5, 3),
          (3, 0, 1, 5), (0, 3, 5, 1)]
BIG_SHAPE = (5, 63, 31, 33)  # several 256 KiB chunks, so -j 3 splits it
CSV_SHAPES = [(1, 1), (7, 5), (33, 3), (1, 9), (5, 1)]
BIG_CSV_SHAPE = (24001, 5)  # over 1 MiB of text: several blocks for the parallel parser

# --- known failures --------------------------------------------------------------------------
# issue 20: fixed on branch i20-num. Delete this block (and its uses) once that branch is merged.
def KNOWN(c, why):
    """A failure that another branch fixes; `why` is the failure's text."""
    return None


def KNOWN_OPEN(c, why):
    """Real bugs found by this matrix and not fixed yet (described in docs/reliability.md)."""
    return None
# ---------------------------------------------------------------------------------------------


# --- bfloat16 as uint16 bits -----------------------------------------------------------------
def bf16_to_f32(u):
    return (np.asarray(u, np.uint16).astype(np.uint32) << 16).view(np.float32)


def to_bf16(v):
    """f64 (or f32) -> bf16 bits, one rounding (nearest, ties to even)."""
    v = np.asarray(v, np.float64)
    out = np.empty(v.shape, np.uint16)
    a = np.abs(v)
    nan = np.isnan(v)
    sub = a < 2.0 ** -126
    with np.errstate(all="ignore"):
        # normal range: round the f64 significand to 8 bits
        b = v.view(np.uint64)
        lsb = (b >> np.uint64(45)) & np.uint64(1)
        r = ((b + np.uint64((1 << 44) - 1) + lsb) & ~np.uint64((1 << 45) - 1)).view(np.float64)
        r = np.where(np.isinf(v), v, r)
        r = np.where(np.abs(r) > float(bf16_to_f32(np.uint16(0x7F7F))), np.copysign(np.inf, v), r)
        # bf16 subnormals: a fixed step of 2^-133
        s = np.rint(v * 2.0 ** 133) * 2.0 ** -133
        s = np.copysign(s, v)
        r = np.where(sub, s, r)
        out[...] = (r.astype(np.float32).view(np.uint32) >> np.uint32(16)).astype(np.uint16)
    out[nan] = 0x7FC0
    return out


class Arr:
    """An array of one of DTYPES: `a` holds numbers, or uint16 bits for bf16."""

    def __init__(self, dt, a):
        self.dt, self.a = dt, np.asarray(a)

    @property
    def shape(self):
        return self.a.shape

    def f64(self):
        if self.dt == "bf16":
            return bf16_to_f32(self.a).astype(np.float64)
        return self.a.astype(np.float64)

    def work(self):
        """The values in the working type of SPEC §2: f32 for f16/bf16/f32, f64 for f64."""
        if self.dt == "bf16":
            return bf16_to_f32(self.a)
        if self.dt in ("f16", "f32"):
            return self.a.astype(np.float32)
        return self.a.astype(np.float64)

    def isnan(self):
        return np.isnan(self.f64())


def from_work(w, dt):
    """Round working-type values to `dt` (once)."""
    if dt == "bf16":
        return Arr(dt, to_bf16(w))
    return Arr(dt, np.asarray(w).astype(NP[dt]))


def convert(x, dt):
    """x (an Arr) -> dt, one rounding (`--dtype`)."""
    if x.dt == dt:
        return x
    if dt == "bf16":
        return Arr(dt, to_bf16(x.f64()))
    if x.dt == "bf16":
        return Arr(dt, bf16_to_f32(x.a).astype(NP[dt]))
    return Arr(dt, x.a.astype(NP[dt]))


# --- values ----------------------------------------------------------------------------------
SPECIAL_BITS = {
    # NaNs (quiet, signalling, both signs, payloads), subnormals, +-0, +-inf, +-max, +-1, tiny
    "f16": [0x7E01, 0xFE01, 0x7C01, 0xFC10, 0x7FFF, 0x0001, 0x8001, 0x03FF, 0x83FF, 0x0000,
            0x8000, 0x7C00, 0xFC00, 0x7BFF, 0xFBFF, 0x3C00, 0xBC00, 0x0400, 0x8400],
    "bf16": [0x7FC1, 0xFFC1, 0x7F81, 0xFF90, 0x0001, 0x8001, 0x007F, 0x807F, 0x0000, 0x8000,
             0x7F80, 0xFF80, 0x7F7F, 0xFF7F, 0x3F80, 0xBF80, 0x0080, 0x8080],
    "f32": [0x7FC00001, 0xFFC12345, 0x7F800001, 0xFF800100, 0x7FFFFFFF, 0x00000001, 0x80000001,
            0x007FFFFF, 0x807FFFFF, 0, 0x80000000, 0x7F800000, 0xFF800000, 0x7F7FFFFF,
            0xFF7FFFFF, 0x3F800000, 0xBF800000, 0x00800000, 0x80800000],
    "f64": [0x7FF8000000000001, 0xFFF80000DEADBEEF, 0x7FF0000000000001, 0xFFF0000000010000,
            0x7FFFFFFFFFFFFFFF, 0x0000000000000001, 0x8000000000000001, 0x000FFFFFFFFFFFFF,
            0x800FFFFFFFFFFFFF, 0, 0x8000000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
            0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0x3FF0000000000000, 0xBFF0000000000000],
}
UBITS = {"f16": np.uint16, "bf16": np.uint16, "f32": np.uint32, "f64": np.uint64}


def sample(rng, dt, shape, huge=False, specials=True):
    n = int(np.prod(shape, dtype=np.int64))
    if dt in FLOATS:
        scale = rng.choice([1e-3, 1.0, 1e3])
        v = rng.standard_normal(n) * scale
        v[rng.random(n) < 0.1] = 0.0  # exact zeros, some of them negative
        v[rng.random(n) < 0.05] *= -0.0
        if dt == "f64" and huge:
            # large values that cancel (issue 20's mean overflow)
            k = rng.random(n) < 0.3
            v[k] = rng.choice([1e300, -1e300, 1.7e308, -1.7e308], k.sum())
        if dt == "bf16":
            a = to_bf16(v)
        else:
            a = v.astype(NP[dt]).view(UBITS[dt])
        if specials and n:
            k = rng.random(n) < 0.12
            a[k] = rng.choice(np.array(SPECIAL_BITS[dt], dtype=UBITS[dt]), k.sum())
        return Arr(dt, a.reshape(shape) if dt == "bf16" else a.view(NP[dt]).reshape(shape))
    info = np.iinfo(NP[dt])
    a = rng.integers(info.min, int(info.max) + 1, n, dtype=np.int64)
    small = rng.random(n) < 0.5
    a[small] = rng.integers(max(info.min, -5), 6, small.sum())
    if n >= 2:
        a[0], a[-1] = info.min, info.max
    return Arr(dt, a.astype(NP[dt]).reshape(shape))


def kill_unit(rng, x, axis):
    """Makes one unit of `axis` never positive (a dead unit)."""
    if x.a.ndim < 2 or x.shape[axis] == 0:
        return
    idx = [slice(None)] * x.a.ndim
    idx[axis] = int(rng.integers(x.shape[axis]))
    idx = tuple(idx)
    f = x.f64()[idx]
    keep = ~(f > 0)
    if x.dt == "bf16":
        x.a[idx] = np.where(keep, x.a[idx], x.a[idx] | np.uint16(0x8000))
    elif x.dt == "u8":
        x.a[idx] = 0
    elif x.dt in FLOATS:
        x.a[idx] = np.where(keep, x.a[idx], -x.a[idx])
    else:
        x.a[idx] = np.where(keep, x.a[idx], -np.abs(np.maximum(x.a[idx], -np.iinfo(NP[x.dt]).max)))


# --- the reference (SPEC §2) -----------------------------------------------------------------
def quiet_f16_nans(y):
    """f16 results pass through f32: a signalling NaN comes out quiet."""
    if y.dt == "f16":
        b = y.a.view(np.uint16).copy()
        b[np.isnan(y.a)] |= 0x0200
        return Arr("f16", b.view(np.float16))
    return y


def channel_slopes(c, t, shape):
    """PReLU slopes broadcast over `shape`, rounded to the input's own type t, in the working type."""
    slopes = Arr("f64", np.array(c["alpha"], np.float64))
    w = convert(slopes, t).work() if t in FLOATS else slopes.work()
    if len(c["alpha"]) == 1:
        return w[0]
    ax = c["channel_axis"] % len(shape)
    view = [1] * len(shape)
    view[ax] = len(c["alpha"])
    return w.reshape(view)


def reference(c, x, g):
    """(values in the input's own type — what the statistics describe —, the output)."""
    act = c["act"]
    t = x.dt
    grad = act.startswith("grad")
    base = act[5:] if grad else act
    if t not in FLOATS:  # integers: relu and its grad only (the others were refused)
        zero = np.zeros((), x.a.dtype)
        y = np.where(x.a <= 0, zero, g.a) if grad else np.where(x.a < 0, zero, x.a)
        return Arr(t, y.astype(x.a.dtype))
    if base == "relu":
        if grad:
            y = Arr(t, np.where(x.f64() <= 0, np.zeros((), g.a.dtype), g.a))
        else:
            y = Arr(t, np.where(x.f64() < 0, np.zeros((), x.a.dtype), x.a))
        return quiet_f16_nans(y)
    xw = x.work()
    wt = xw.dtype.type
    if base == "leaky":
        a = wt(np.float64(c["slope"]))  # read as f64, rounded once to the working type
    else:
        a = channel_slopes(c, t, x.shape)
    v = g.work() if grad else xw
    yw = np.where(xw > 0, v, v * a)
    return quiet_f16_nans(from_work(yw, t))


# --- statistics (SPEC §4), as NumPy computes them, with an exact mean --------------------------
def ref_stats(c, x, y):
    v = y.f64().ravel()
    xin = x.f64()
    fin = v[np.isfinite(v)]
    s = {
        "elements": int(v.size),
        "zeros": int(np.sum(v == 0)),
        "negative_inputs": int(np.sum(xin < 0)),
        "nan": int(np.isnan(v).sum()),
        "posinf": int(np.sum(v == np.inf)),
        "neginf": int(np.sum(v == -np.inf)),
        "finite": int(fin.size),
        "min": float(fin.min()) if fin.size else None,
        "max": float(fin.max()) if fin.size else None,
    }
    if fin.size:
        m = float(np.abs(fin).max())
        k = math.frexp(m)[1] if m > 0 else 0
        f = np.ldexp(fin, -k)  # exact: powers of two (subnormals aside, far below the tolerance)
        mean = math.fsum(f) / fin.size
        s["mean"] = math.ldexp(mean, k)
        s["std"] = math.ldexp(math.sqrt(math.fsum((f - mean) ** 2) / fin.size), k)
        s["_scale"] = math.ldexp(math.sqrt(math.fsum(f * f) / fin.size), k)
    else:
        s["mean"] = s["std"] = None
    ua = c["unit_axis"]
    if xin.ndim < 2:
        s["units"] = None
    else:
        ax = ua % xin.ndim
        other = tuple(i for i in range(xin.ndim) if i != ax)
        active = np.sum(xin > 0, axis=other).astype(int)
        per = xin.size // xin.shape[ax] if xin.shape[ax] else 0  # elements / units
        dead = [i for i, n in enumerate(active) if n == 0] if per else []
        s["units"] = {"axis": ax, "count": xin.shape[ax], "elements_per_unit": per,
                      "active_count": active.tolist(), "dead": len(dead), "dead_indices": dead}
    return s


def compare_stats(want, got):
    """The first difference, as text; None when equal."""
    for k in ("elements", "zeros", "negative_inputs", "nan", "posinf", "neginf", "finite", "min",
              "max"):
        if got.get(k) != want[k]:
            return f"stats {k}: got {got.get(k)!r}, NumPy {want[k]!r}"
    for k in ("mean", "std"):
        w, g = want[k], got.get(k)
        if w is None or g is None:
            if w is not g:
                return f"stats {k}: got {g!r}, NumPy {w!r}"
            continue
        tol = 1e-12 * want["_scale"] + 1e-12 * abs(w)
        if not (isinstance(g, float) or isinstance(g, int)) or not abs(g - w) <= tol:
            return f"stats {k}: got {g!r}, NumPy (exact) {w!r}"
    wu, gu = want["units"], got.get("units")
    if wu is None or gu is None:
        if wu is not gu:
            return f"stats units: got {json.dumps(gu)[:200]}, NumPy {json.dumps(wu)[:200]}"
        return None
    for k, w in wu.items():
        if gu.get(k) != w:
            return f"stats units {k}: got {json.dumps(gu.get(k))[:300]}, NumPy {json.dumps(w)[:300]}"
    return None


# --- files -----------------------------------------------------------------------------------
def npy_bytes(x, order="C", endian="<"):
    """x as numpy.save writes it, in the given memory order and byte order."""
    a = x.a
    dt = a.dtype.newbyteorder(endian) if a.dtype.itemsize > 1 else a.dtype
    a = a.astype(dt).copy(order=order)  # (np.ascontiguousarray makes a 0-d array 1-D)
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def st_bytes(tensors):
    """A .safetensors file of {name: Arr} (by hand: the library has no bfloat16 in NumPy)."""
    header, blobs, off = {}, [], 0
    for name, x in tensors.items():
        raw = x.a.astype(x.a.dtype.newbyteorder("<")).tobytes(order="C")
        header[name] = {"dtype": ST_DTYPE[x.dt], "shape": list(x.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def read_st(data):
    """{name: Arr} of a .safetensors file, checking its layout as the library does."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out, spans = {}, []
    for name, t in header.items():
        if name == "__metadata__":
            continue
        dt = ST_BACK[t["dtype"]]
        b, e = t["data_offsets"]
        spans.append((b, e))
        raw = np.frombuffer(body[b:e], dtype=np.uint16 if dt == "bf16" else np.dtype(NP[dt]).newbyteorder("<"))
        if raw.size != int(np.prod(t["shape"], dtype=np.int64)):
            raise ValueError(f"tensor {name}: {raw.size} elements for shape {t['shape']}")
        out[name] = Arr(dt, raw.astype(raw.dtype.newbyteorder("=")).reshape(t["shape"]))
    spans.sort()
    pos = 0
    for b, e in spans:
        if b != pos:
            raise ValueError("gaps or overlaps between tensors")
        pos = e
    if pos != len(body):
        raise ValueError("data runs past the last tensor")
    return out


def csv_field(v, rng):
    """A CSV spelling of the f64 v, in one of the ways SPEC §3 reads."""
    if math.isnan(v):
        return rng.choice(["nan", "NaN", ""])
    if math.isinf(v):
        return rng.choice(["inf", "Infinity"]) if v > 0 else rng.choice(["-inf", "-Infinity"])
    r = rng.random()
    if r < 0.1:
        return f" {v!r} "
    if r < 0.2:
        return f'"{v!r}"'
    if r < 0.3:
        return f"{v:.17e}"
    return repr(v)


def csv_bytes(x, delim, header, rng, crlf):
    rows = x.f64().reshape(x.shape[0], -1)
    end = "\r\n" if crlf else "\n"
    lines = []
    if header:
        lines.append(delim.join(f"col{i}" for i in range(rows.shape[1])))
    for r in rows:
        line = delim.join(csv_field(float(v), rng) for v in r)
        # a one-field record spelled "" would be a blank line, which CSV readers skip
        lines.append(line if line.strip() else "nan")
    return (end.join(lines) + end).encode()


def read_table(data, delim, header):
    """A CSV/TSV output: (rows of floats, header line or None)."""
    text = data.decode()
    lines = [ln for ln in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    head = None
    if header and lines:
        head = lines.pop(0)
    rows = []
    for ln in lines:
        if ln == "":
            continue
        rows.append([float(f) if f.strip() != "" else math.nan for f in ln.split(delim)])
    return rows, head


# --- cases -----------------------------------------------------------------------------------
def in_format(kind, stdin_fmt):
    if kind == "stdin":
        return stdin_fmt
    return {"npz": "npz", "safetensors": "safetensors", "csv": "csv", "tsv": "tsv"}.get(kind, "npy")


def draw_case(r, i, inkind=None, outkind=None, triple=None):
    """Case i: the dimensions, drawn from r (a random.Random), some of them fixed."""
    c = {"id": i, "seed": r.randrange(2 ** 32)}
    if triple:
        order, act, ua = triple
        kinds = ["npy-F<", "npy-F>", "npz", "stdin"] if order == "F" else \
            ["npy-C<", "npy-C>", "npz", "safetensors", "stdin"]
        inkind = inkind or r.choice(kinds)
    else:
        order, act, ua = None, r.choice(ACTS), r.choice(UNIT_AXES)
    c["in_kind"] = inkind or r.choice(IN_KINDS)
    c["stdin_fmt"] = r.choice(["npy", "npy", "npz", "safetensors", "csv", "tsv"]) \
        if c["in_kind"] == "stdin" else None
    if triple and c["in_kind"] == "stdin" and order == "F":
        c["stdin_fmt"] = r.choice(["npy", "npz"])
    fmt = in_format(c["in_kind"], c["stdin_fmt"])
    c["in_fmt"] = fmt
    if order is None:
        if c["in_kind"].startswith("npy-"):
            order = c["in_kind"][4]
        elif fmt in ("npy", "npz"):
            order = r.choice("CF")
        else:
            order = "C"
    c["order"] = order
    c["endian"] = c["in_kind"][5] if c["in_kind"].startswith("npy-") else r.choice("<>")
    c["out_kind"] = outkind or r.choice(OUT_KINDS)
    if c["out_kind"] == "stdout":
        c["out_fmt"] = r.choice([None, "npy", "csv", "tsv", "npz", "safetensors"])
    else:
        c["out_fmt"] = c["out_kind"]
    c["act"], c["unit_axis"] = act, ua
    # dtype: CSV reads as f64; bf16 only where the format has it
    if fmt in ("csv", "tsv"):
        c["dtype"] = "f64"
    elif fmt == "safetensors":
        c["dtype"] = r.choice(DTYPES)
    else:
        c["dtype"] = r.choice([d for d in DTYPES if d != "bf16"])
    # --dtype: integers with leaky/prelu need one (and are refused without, some of the time)
    grad = act.startswith("grad")
    if c["dtype"] in FLOATS:
        c["dtype_out"] = None if grad or r.random() < 0.6 else r.choice(["f16", "bf16", "f32", "f64"])
    elif act in ("relu", "grad-relu"):
        c["dtype_out"] = None if r.random() < 0.7 else r.choice(["f16", "bf16", "f32", "f64"])
    else:
        c["dtype_out"] = r.choice([None, "f16", "f32", "f64", "f32", "f64"])
    if grad and c["dtype_out"] == "bf16":
        c["dtype_out"] = "f32"
    # shape
    if fmt in ("csv", "tsv"):
        c["shape"] = BIG_CSV_SHAPE if r.random() < 0.02 else r.choice(CSV_SHAPES)
    else:
        c["shape"] = BIG_SHAPE if r.random() < 0.03 else r.choice(SHAPES)
    c["threads"] = r.choice([1, 3])
    c["slope"] = r.choice([-0.5, -0.1, -1.7, 0.01, -3.3e-5])
    if "prelu" in act:
        # one slope per channel, distinct, not exact in binary (so their rounding shows); one
        # slope where the axis is empty or the input has no channel axis (0-d, 1-D)
        ax = int(act.split("prelu")[1])
        nd = len(c["shape"])
        n = c["shape"][ax % nd] if nd >= 2 else 1
        c["channel_axis"] = ax
        if fmt in ("csv", "tsv") and ax % nd == 0:
            n = min(n, 3)  # rows as channels are refused: a short list says so as well
        c["alpha"] = [round((0.05 + 0.37 * k) * (-1 if k % 3 == 0 else 1), 6) for k in range(max(n, 1))]
    c["header"] = fmt in ("csv", "tsv") and r.random() < 0.3
    c["crlf"] = fmt in ("csv", "tsv") and r.random() < 0.2
    c["second_member"] = fmt == "npz" and (c["out_fmt"] or fmt) != "npz" and r.random() < 0.4
    c["huge"] = c["dtype"] == "f64" and r.random() < 0.08
    c["dead"] = r.random() < 0.5
    c["upstream_endian"] = r.choice("<>")
    # the issue asks for the other order; the same order too, so the grad values are checked
    # while the other order is refused (see KNOWN)
    c["upstream_order"] = r.choice(["other", "other", "same"])
    return c


def all_cases(n):
    r = random.Random(SEED)
    cases = []
    for a in IN_KINDS:
        for b in OUT_KINDS:
            cases.append(draw_case(r, len(cases), inkind=a, outkind=b))
    for o in "CF":
        for act in ACTS:
            for ua in UNIT_AXES:
                cases.append(draw_case(r, len(cases), triple=(o, act, ua)))
    while len(cases) < n:
        cases.append(draw_case(r, len(cases)))
    return cases


def describe(c):
    inn = c["in_kind"] + (f"({c['stdin_fmt']},{c['order']})" if c["in_kind"] == "stdin" else "")
    out = c["out_kind"] + (f"({c['out_fmt']})" if c["out_kind"] == "stdout" else "")
    d = c["dtype"] + (f"->{c['dtype_out']}" if c["dtype_out"] else "")
    return f"{inn} {d} {c['act']} -> {out} -j {c['threads']} unit-axis {c['unit_axis']} shape {c['shape']}"


def expected_refusal(c):
    """The documented refusal of this case (exit code, why), or None."""
    fi, fo = c["in_fmt"], c["out_fmt"] or c["in_fmt"]
    grad = c["act"].startswith("grad")
    table_in = fi in ("csv", "tsv")
    if c["dtype"] not in FLOATS and c["dtype_out"] is None and c["act"] not in ("relu", "grad-relu"):
        return 2, "leaky/prelu on integers need --dtype"
    if grad and table_in:
        return 2, "--upstream with CSV input"
    if fo == "npz" and fi not in ("npz", "safetensors"):
        return 2, "an .npz output comes from a container (.npz, .safetensors)"
    if fo == "npz" and grad and fi == "npz":
        return 2, "--upstream with an .npz input and output"
    if table_in and fo == "safetensors":
        return 2, "CSV into .safetensors"
    if grad and fo in ("csv", "tsv"):
        return 2, "--upstream with CSV output"
    if table_in and c["unit_axis"] == 0:
        return 2, "CSV units are its columns"
    if table_in and "prelu" in c["act"] and c["channel_axis"] == 0 and len(c["alpha"]) > 1:
        return 2, "CSV channels are its columns"
    out_dt = c["dtype_out"] or c["dtype"]
    if out_dt == "bf16" and fo in ("npy", "npz"):
        return 2, "bf16 into .npy/.npz"
    return None


def run_case(c, binary, d, keep=False):
    """(ok, known-or-None, message, the command line)."""
    rng = np.random.default_rng(c["seed"])
    pyr = random.Random(c["seed"])
    os.makedirs(d, exist_ok=True)
    shape = tuple(c["shape"])
    x0 = sample(rng, c["dtype"], shape, huge=c["huge"])
    if c["dead"] and len(shape) >= 2:
        kill_unit(rng, x0, c["unit_axis"] % len(shape))
    fi = c["in_fmt"]
    # the input file (and what relu should see: CSV text reads back as f64)
    if fi in ("csv", "tsv"):
        delim = "," if fi == "csv" else "\t"
        data = csv_bytes(x0, delim, c["header"], pyr, c["crlf"])
        ext = fi
    elif fi == "npy":
        data = npy_bytes(x0, c["order"], c["endian"])
        ext = "npy"
    elif fi == "npz":
        ext = "npz"
        members = {"x": npy_bytes(x0, c["order"], c["endian"])}
        if c["second_member"]:
            members["other"] = npy_bytes(Arr("f32", np.ones((2, 3), np.float32)))
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w", pyr.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])) as z:
            for k, v in members.items():
                z.writestr(k + ".npy", v)
        data = b.getvalue()
    else:
        ext = "safetensors"
        data = st_bytes({"x": x0})
    x_seen = x0
    if fi in ("csv", "tsv"):  # the text holds the values exactly, NaN payloads aside
        v = x0.f64()
        x_seen = Arr("f64", np.where(np.isnan(v), np.nan, v))
    inp = os.path.join(d, "in." + ext)  # its stem differs from the member and tensor name "x"
    args = ["apply"]
    stdin = None
    if c["in_kind"] == "stdin":
        stdin = data
        args.append("-")
        if fi == "tsv":
            args += ["--from", "tsv"]
        with open(inp, "wb") as f:  # kept for the repro line
            f.write(data)
    else:
        with open(inp, "wb") as f:
            f.write(data)
        args.append(inp)
    if c["second_member"]:
        args += ["--member", "x"]
    act = c["act"]
    grad = act.startswith("grad")
    base = act[5:] if grad else act
    if grad:
        args += ["--act", "grad", "--of", base.rstrip("-0123456789")]
    else:
        args += ["--act", base.rstrip("-0123456789")]
    if base == "leaky":
        args += ["--slope", repr(c["slope"])]
    if "prelu" in base:
        args += ["--alpha", ",".join(repr(a) for a in c["alpha"]), "--channel-axis", str(c["channel_axis"])]
    # the input relu computes on: --dtype converts integers first
    t = c["dtype"] if fi not in ("csv", "tsv") else "f64"
    if t not in FLOATS and c["dtype_out"]:
        xc = convert(x_seen, c["dtype_out"])
    else:
        xc = x_seen
    if c["dtype_out"]:
        args += ["--dtype", c["dtype_out"]]
    g = None
    if grad:
        g = sample(rng, xc.dt, shape, specials=pyr.random() < 0.5)
        other = "C" if c["order"] == "F" else "F"
        if c["upstream_order"] == "same":
            other = c["order"]
        c["_up_order"] = other
        if g.dt == "bf16":
            up = os.path.join(d, "g.safetensors")
            with open(up, "wb") as f:
                f.write(st_bytes({"x": g}))
        else:
            up = os.path.join(d, "g.npy")
            with open(up, "wb") as f:
                f.write(npy_bytes(g, other, c["upstream_endian"]))
        args += ["--upstream", up]
    stats_path = os.path.join(d, "stats.json")
    args += ["--stats", stats_path, "--unit-axis", str(c["unit_axis"]), "-j", str(c["threads"]), "-q"]
    fo = c["out_fmt"] or fi
    if c["out_kind"] == "stdout":
        out = None
        args += ["-o", "-"]
        if c["out_fmt"]:
            args += ["--to", c["out_fmt"]]
    else:
        out = os.path.join(d, "y." + c["out_kind"])
        args += ["-o", out]
    cmd = [binary] + args
    line = ("cd " + shlex.quote(d) + " && " if keep else "") + " ".join(shlex.quote(a) for a in cmd) + \
        (" < " + shlex.quote(inp) if stdin is not None else "")

    def fail(why):
        return False, KNOWN(c, why) or KNOWN_OPEN(c, why), why, line

    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)
    err = p.stderr.decode(errors="replace").strip()
    if "panicked" in err:
        return fail(f"panic: {err[:300]}")
    refusal = expected_refusal(c)
    if refusal:
        code, why = refusal
        if p.returncode != code:
            return fail(f"expected the refusal '{why}' (exit {code}), got exit {p.returncode} {err[:200]!r}")
        if not err.startswith("relu: "):
            return fail(f"refusal without a message: {err[:200]!r}")
        if out and os.path.exists(out):
            return fail("refused, but an output was left behind")
        return True, None, "", line
    if p.returncode != 0:
        return fail(f"exit {p.returncode}: {err[:300]}")
    if out:
        with open(out, "rb") as f:
            ydata = f.read()
    else:
        ydata = p.stdout

    # the reference: the activation in the input's type; the output rounded to --dtype
    y_in = reference(c, xc, g)
    out_dt = c["dtype_out"] or xc.dt
    y_want = convert(y_in, out_dt)
    converted = out_dt != xc.dt

    # the output, read back
    try:
        if fo in ("csv", "tsv"):
            rows, head = read_table(ydata, "," if fo == "csv" else "\t", c["header"])
            if c["header"] and (head is None or "col0" not in head):
                return fail(f"the input's header is not copied: {head!r}")
            w = y_want.f64()  # 0-d: one value; 1-D: one column; more: (shape[0], rest)
            rows_cols = (1, 1) if w.ndim == 0 else (w.size, 1) if w.ndim == 1 else \
                (w.shape[0], int(np.prod(w.shape[1:], dtype=np.int64)))
            w = w.reshape(rows_cols)
            if w.size == 0:
                if rows:
                    return fail(f"CSV of an empty array holds {rows[:3]}")
                got = None
            else:
                if len(rows) != w.shape[0] or any(len(r) != w.shape[1] for r in rows):
                    return fail(f"CSV shape {len(rows)}x{len(rows[0]) if rows else 0}, want {w.shape}")
                got = np.array(rows, np.float64)
                if out_dt in ("f16", "f32", "bf16"):
                    got = got.astype(np.float32).astype(np.float64)  # f32's shortest text
            if got is not None:
                wn, gn = np.isnan(w), np.isnan(got)
                bad = (wn != gn) | (~wn & (w.view(np.uint64) != got.view(np.uint64)))
                if bad.any():
                    k = tuple(np.argwhere(bad)[0])
                    return fail(f"value at CSV {k}: got {got[k]!r}, want {w[k]!r} "
                                f"({int(bad.sum())} of {bad.size} differ)")
        else:
            if fo == "npy":
                if ydata[:6] != b"\x93NUMPY":
                    return fail(f"not an .npy: {ydata[:40]!r}")
                arr = np.load(io.BytesIO(ydata), allow_pickle=False)
                if out_dt == "bf16":
                    return fail("bf16 written to .npy")
                got = Arr(out_dt, arr) if arr.dtype == np.dtype(NP[out_dt]) else None
                if got is None:
                    return fail(f".npy dtype {arr.dtype}, want {NAMES[out_dt]}")
                if sum(s > 1 for s in shape) > 1 and 0 not in shape:  # an empty array has no order
                    hb = io.BytesIO(ydata)
                    ver = np.lib.format.read_magic(hb)
                    read = np.lib.format.read_array_header_1_0 if ver == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    fort = read(hb)[1]
                    want_f = c["order"] == "F" and fi in ("npy", "npz")
                    if fort != want_f:
                        return fail(f".npy fortran_order {fort}, want {want_f} (the input's order is kept)")
            elif fo == "npz":
                z = np.load(io.BytesIO(ydata), allow_pickle=False)
                if list(z.keys()) != ["x"]:
                    return fail(f".npz members {list(z.keys())}, want ['x']")
                arr = z["x"]
                if arr.dtype != np.dtype(NP[out_dt]):
                    return fail(f".npz dtype {arr.dtype}, want {NAMES[out_dt]}")
                got = Arr(out_dt, arr)
            else:
                ts = read_st(ydata)
                # a .npy gives one tensor named after the file (stdin: "data"); a member keeps its name
                want_name = ("data" if c["in_kind"] == "stdin" else "in") if fi == "npy" else "x"
                if list(ts) != [want_name]:
                    return fail(f".safetensors tensors {list(ts)}, want [{want_name!r}]")
                got = ts[want_name]
                if got.dt != out_dt:
                    return fail(f".safetensors dtype {got.dt}, want {out_dt}")
            if tuple(got.shape) != shape:
                return fail(f"shape {got.shape}, want {shape}")
            wa, ga = y_want.a, got.a
            if out_dt == "bf16":
                wb, gb = wa.view(np.uint16), ga.view(np.uint16)
            else:
                wb, gb = wa.view(UBITS.get(out_dt, wa.dtype)), ga.view(UBITS.get(out_dt, ga.dtype))
            wn, gn = y_want.isnan(), got.isnan()
            # NaN bits are pinned for f16/f32/f64 results in their own type (SPEC §2), not
            # for bf16 nor across a --dtype conversion
            loose = out_dt == "bf16" or converted
            bad = (wn != gn) | (~wn & (wb != gb))
            if not loose:
                bad |= wn & (wb != gb)
            if bad.any():
                k = tuple(np.argwhere(bad)[0])
                fmt_bits = lambda v: hex(int(v)) if out_dt in FLOATS else repr(v)
                return fail(f"value at {k}: got {fmt_bits(gb[k])}, want {fmt_bits(wb[k])} "
                            f"(input {x_seen.a[k]!r}; {int(bad.sum())} of {bad.size} differ)")
    except Exception as e:  # an output NumPy (or this reader) cannot read
        return fail(f"output unreadable: {type(e).__name__}: {e}")

    # statistics
    try:
        with open(stats_path) as f:
            lines = [json.loads(ln) for ln in f if ln.strip()]
    except Exception as e:
        return fail(f"stats unreadable: {e}")
    if len(lines) != 1:
        return fail(f"{len(lines)} statistics objects, want 1")
    st = lines[0]
    want = ref_stats(c, xc, y_in)
    if st.get("shape") != list(shape):
        return fail(f"stats shape {st.get('shape')}, want {list(shape)}")
    why = compare_stats(want, st)
    if why:
        return fail(why)
    return True, None, "", line


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--cases", type=int, default=DEFAULT_CASES)
    ap.add_argument("--case", type=int, action="append", help="run only this case (repeatable)")
    ap.add_argument("--keep", metavar="DIR", help="write the cases' files under DIR and keep them")
    ap.add_argument("--list", action="store_true", help="print the cases and exit")
    o = ap.parse_args()
    binary = os.path.abspath(o.binary)
    cases = all_cases(max(o.cases, 1 + max(o.case or [0])))
    if o.case:
        cases = [cases[i] for i in o.case]
    if o.list:
        for c in cases:
            print(c["id"], describe(c))
        return 0
    root = o.keep or tempfile.mkdtemp(prefix="relu-matrix-")
    me = os.path.relpath(os.path.abspath(__file__))
    passed, failed, known = 0, 0, {}
    try:
        for c in cases:
            d = os.path.join(root, f"case{c['id']}")
            ok, kn, why, line = run_case(c, binary, d, keep=bool(o.keep))
            if ok:
                passed += 1
            elif kn:
                known[kn] = known.get(kn, 0) + 1
            else:
                failed += 1
                print(f"FAIL case {c['id']}: {describe(c)}: {why}")
                print(f"  rerun: {sys.executable} {me} {binary} --case {c['id']} --keep /tmp/m")
                print(f"  relu:  {line}")
            if not o.keep:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        if not o.keep:
            shutil.rmtree(root, ignore_errors=True)
    if known:
        print("known failures (KNOWN: fixed on branch i20-num; KNOWN_OPEN: open): "
              + ", ".join(f"{k} {n}" for k, n in sorted(known.items())))
    print(f"{passed} passed, {failed} failed, {sum(known.values())} known")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
