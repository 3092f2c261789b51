#!/usr/bin/env python3
"""Checks relu's mean/std against a float64 reference on 10^8 elements (docs/statistics.md).

    python3 scripts/stats_exactness.py target/release/relu [--n 100000000] [--dir /tmp]

The reference: numpy's float64 pairwise sums of the exact f32 values widened to f64, refined with
math.fsum over 1M-element partial sums; the data has mean ~1000 and std ~3, where a naive sum of squares loses digits. Prints the relative errors of mean and std."""
import argparse, json, math, os, subprocess, tempfile
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("--n", type=int, default=100_000_000)
ap.add_argument("--dir", default=tempfile.gettempdir())
args = ap.parse_args()
path = os.path.join(args.dir, f"relu-exact-{args.n}.npy")
rng = np.random.default_rng(7)
if not os.path.exists(path):
    a = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(args.n // 100, 100))
    for i in range(0, a.shape[0], 100_000):
        blk = rng.standard_normal((min(100_000, a.shape[0] - i), 100), dtype=np.float32)
        a[i:i + blk.shape[0]] = blk * 3 + 1000  # an offset makes naive sums of squares lose digits
    a.flush(); del a
x = np.load(path, mmap_mode="r")
step = 1_000_000
flat = x.reshape(-1)
parts = [np.maximum(flat[i:i + step], 0).astype(np.float64) for i in range(0, flat.size, step)]
mean = math.fsum(float(np.sum(p)) for p in parts) / flat.size
m2 = math.fsum(float(np.sum((p - mean) ** 2)) for p in parts)
std = math.sqrt(m2 / flat.size)
for j in ("1", "2"):
    out = subprocess.run([args.bin, "stats", "--json", "--act", "relu", "-j", j, path], capture_output=True, check=True)
    s = json.loads(out.stdout)
    print(f"-j {j}: elements {s['elements']}  mean rel err {abs(s['mean'] - mean) / abs(mean):.2e}  std rel err {abs(s['std'] - std) / std:.2e}")
