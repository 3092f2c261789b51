"""Draws docs/gallery.md's pictures: every view relu draws, on the fixture run
(fixtures/checkpoints/), each beside what matplotlib draws from the same arrays with its defaults.

    python3 -m venv target/gallery-venv
    target/gallery-venv/bin/pip install numpy matplotlib safetensors
    target/gallery-venv/bin/python scripts/make_gallery.py target/release/relu docs/img/gallery

The arrays are read with NumPy and safetensors, not with relu, so the two columns share nothing but
the data. matplotlib gets its defaults (10 bins, min..max, one axes per figure, its default size)
and the least code a user would write; relu gets the command shown in the gallery.
"""
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

relu, out = sys.argv[1], sys.argv[2]
cp = "fixtures/checkpoints"
os.makedirs(out, exist_ok=True)
tmp = os.path.join("target", "gallery-data")
os.makedirs(tmp, exist_ok=True)


def run(*args):
    subprocess.run([relu, *args], check=True)


def checkpoint(e):
    """The three layers' pre-activations at epoch e, whatever format that epoch was saved in."""
    if e <= 2:
        return {f"layer{i}": np.load(f"{cp}/epoch_{e:02d}/layer{i}.npy") for i in (1, 2, 3)}
    if e in (5, 10):
        z = np.load(f"{cp}/epoch_{e:02d}/layers.npz")
        return {k: z[k] for k in z.files}
    return load_file(f"{cp}/epoch_20.safetensors")


epochs = [0, 1, 2, 5, 10, 20]
runs = {e: checkpoint(e) for e in epochs}
last = runs[20]

# 1. a network's layers after ReLU, one panel each
run("hist", "--act", "relu", f"{cp}/epoch_20.safetensors", "-o", f"{out}/panels-relu.png", "--size", "1100x420")
fig, axes = plt.subplots(1, 3)
for ax, (k, v) in zip(axes, sorted(last.items())):
    ax.hist(np.maximum(v, 0).ravel())
    ax.set_title(k)
fig.savefig(f"{out}/panels-mpl.png")
plt.close(fig)

# 2. the same, on a log count axis
run("hist", "--act", "relu", "--log-y", f"{cp}/epoch_20.safetensors", "-o", f"{out}/logy-relu.png", "--size", "1100x420")
fig, axes = plt.subplots(1, 3)
for ax, (k, v) in zip(axes, sorted(last.items())):
    ax.hist(np.maximum(v, 0).ravel(), log=True)
    ax.set_title(k)
fig.savefig(f"{out}/logy-mpl.png")
plt.close(fig)

# 3. one layer over training, as a ridgeline (matplotlib: overlaid histograms, its nearest default)
run(
    "hist", "--ridge", f"{cp}/epoch_00/layer2.npy", f"{cp}/epoch_01/layer2.npy", f"{cp}/epoch_02/layer2.npy",
    f"{cp}/epoch_05/layers.npz:layer2", f"{cp}/epoch_10/layers.npz:layer2", f"{cp}/epoch_20.safetensors:layer2",
    "-o", f"{out}/ridge-relu.png",
)
fig, ax = plt.subplots()
for e in epochs:
    ax.hist(runs[e]["layer2"].ravel(), histtype="step", label=f"epoch {e}")
ax.legend()
fig.savefig(f"{out}/ridge-mpl.png")
plt.close(fig)

# 4. how often each unit fires, the dead apart
run("hist", "--act", "relu", "--active-rate", f"{cp}/epoch_20.safetensors:layer2", "-o", f"{out}/rate-relu.png")
fig, ax = plt.subplots()
ax.hist((last["layer2"] > 0).mean(axis=0))
fig.savefig(f"{out}/rate-mpl.png")
plt.close(fig)

# 5. dead units per layer over training
run("trend", f"{cp}/epoch_00", f"{cp}/epoch_01", f"{cp}/epoch_02", f"{cp}/epoch_05", f"{cp}/epoch_10",
    f"{cp}/epoch_20.safetensors", "-o", f"{out}/trend-relu.png")
fig, ax = plt.subplots()
for k in ("layer1", "layer2", "layer3"):
    ax.plot(epochs, [int((runs[e][k] <= 0).all(axis=0).sum()) for e in epochs], label=k)
ax.legend()
fig.savefig(f"{out}/trend-mpl.png")
plt.close(fig)

# 6. a heavy-tailed layer: the fixture's layer 2 with a few outlier units (as LLM activations have),
# range -385 .. 120 like the new user's run
rng = np.random.default_rng(5)
heavy = last["layer2"].astype(np.float32).copy()
heavy[rng.integers(0, heavy.shape[0], 40), 7] = rng.uniform(-385, -100, 40)
heavy[rng.integers(0, heavy.shape[0], 20), 31] = rng.uniform(40, 120, 20)
np.save(f"{tmp}/heavy.npy", heavy)
run("hist", f"{tmp}/heavy.npy", "-o", f"{out}/heavy-relu.png", "--title", "a layer with outlier units")
fig, ax = plt.subplots()
ax.hist(heavy.ravel())
fig.savefig(f"{out}/heavy-mpl.png")
plt.close(fig)
print(f"gallery: 12 pictures in {out}")
