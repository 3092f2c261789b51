"""Makes fixtures/checkpoints/: a small MLP (32 → 64 → 64 → 64 → 1, ReLU) trained with NumPy for
20 epochs at a learning rate high enough that its hidden layers drift below zero and go sparse.
At six epochs it saves the pre-activations of every hidden layer for 256 inputs, the way a real
run's files come out, in three formats:

    fixtures/checkpoints/epoch_{00,01,02}/layer{1,2,3}.npy   one .npy per layer
    fixtures/checkpoints/epoch_{05,10}/layers.npz            every fifth epoch: one .npz, members
                                                             layer1, layer2, layer3 (deflated)
    fixtures/checkpoints/epoch_20.safetensors                the last: one f32 tensor per layer,
                                                             {"epoch": "20"} as metadata

    python3 scripts/make_checkpoints.py fixtures/checkpoints     # LR=1.0 by default

Deterministic (seeded; only an .npz member's zip timestamp is the time of writing). The README's
recipes read what it writes. Needs numpy and safetensors.
"""
import os
import sys

import numpy as np
from safetensors.numpy import save_file

out = sys.argv[1] if len(sys.argv) > 1 else "fixtures/checkpoints"
rng = np.random.default_rng(7)
n, d, h, depth = 1024, 32, 64, 3
x = rng.standard_normal((n, d)).astype(np.float32)
w_true = rng.standard_normal((d, 1)).astype(np.float32)
y = np.tanh(x @ w_true) + 0.1 * rng.standard_normal((n, 1)).astype(np.float32)

sizes = [d] + [h] * depth + [1]
ws = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
bs = [np.zeros(b, np.float32) for b in sizes[1:]]
lr, batch = float(os.environ.get("LR", "1.0")), 32


def forward(xb):
    """Pre-activations of every layer (the last is the output)."""
    zs, a = [], xb
    for i, (w, b) in enumerate(zip(ws, bs)):
        z = a @ w + b
        zs.append(z)
        a = np.maximum(z, 0) if i < depth else z
    return zs


saves = [0, 1, 2, 5, 10, 20]
for epoch in range(saves[-1] + 1):
    if epoch in saves:
        zs = forward(x[:256])  # 256 samples: small fixtures
        layers = {f"layer{i + 1}": np.ascontiguousarray(zs[i]) for i in range(depth)}
        name = os.path.join(out, f"epoch_{epoch:02d}")
        if epoch == saves[-1]:
            os.makedirs(out, exist_ok=True)
            save_file(layers, name + ".safetensors", metadata={"epoch": str(epoch)})
        elif epoch % 5 == 0 and epoch:
            os.makedirs(name, exist_ok=True)
            np.savez_compressed(os.path.join(name, "layers.npz"), **layers)
        else:
            os.makedirs(name, exist_ok=True)
            for k, z in layers.items():
                np.save(os.path.join(name, f"{k}.npy"), z)
    if epoch == saves[-1]:
        break
    for k in rng.permutation(n // batch):
        xb, yb = x[k * batch:(k + 1) * batch], y[k * batch:(k + 1) * batch]
        zs = forward(xb)
        acts = [xb] + [np.maximum(z, 0) for z in zs[:-1]]
        g = 2 * (zs[-1] - yb) / batch
        grads = []
        for i in reversed(range(len(ws))):
            grads.append((acts[i].T @ g, g.sum(0)))
            if i:
                g = g @ ws[i].T * (zs[i - 1] > 0)
        grads.reverse()
        # clipped by global norm, as training loops do: big steps, no overflow
        norm = np.sqrt(sum(float((gw * gw).sum() + (gb * gb).sum()) for gw, gb in grads))
        step = lr * min(1.0, 1.0 / max(norm, 1e-12))
        for i, (gw, gb) in enumerate(grads):
            ws[i] -= step * gw
            bs[i] -= step * gb
