#!/usr/bin/env bash
# The GNU parallel recipe of docs/scaling-out.md, run for real: a small dataset split into 3
# shards by 3 parallel jobs, their statistics merged, and checked against one unsharded run.
# Needs GNU parallel (Debian: apt-get install parallel) and a built target/release/relu.
set -euo pipefail
cd "$(dirname "$0")/.."
relu=$PWD/target/release/relu
py=${RELU_PYTHON:-python3}
command -v parallel >/dev/null || { echo "parallel_recipe: GNU parallel is not installed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A dataset of layer dumps with one unit layout: the trained layer of the oracle corpus, copied
# under several names and directories.
for d in a a/b c; do mkdir -p "$work/acts/$d"; done
i=0
for d in a a/b c a c a/b a; do
    cp fixtures/oracle/mlp_healthy_layer1_pre.npy "$work/acts/$d/layer$i.npy"
    i=$((i + 1))
done

"$relu" batch -q --out-dir "$work/whole" --stats "$work/whole.jsonl" "$work/acts"
# the recipe (here on this host only; add --sshlogin for several)
parallel -j3 "$relu" batch -q --out-dir "$work/out" --stats "$work/stats-{}.jsonl" --shard {}/3 "$work/acts" ::: 1 2 3
"$relu" merge-stats "$work"/stats-*.jsonl -o "$work/merged.json"
"$relu" merge-stats "$work/whole.jsonl" -o "$work/whole.json"

"$py" - "$work" <<'PY'
import json, os, sys
w = sys.argv[1]
m, u = (json.load(open(f"{w}/{n}.json")) for n in ("merged", "whole"))
for k in ("elements", "zeros", "nan", "min", "max", "negative_inputs", "merged"):
    assert m[k] == u[k], (k, m[k], u[k])
assert m["units"]["active_count"] == u["units"]["active_count"]
assert abs(m["mean"] - u["mean"]) <= 1e-12 * abs(u["mean"]) and abs(m["std"] - u["std"]) <= 1e-12 * u["std"]
outs = sorted(os.path.relpath(os.path.join(r, f), f"{w}/out") for r, _, fs in os.walk(f"{w}/out") for f in fs)
want = sorted(os.path.relpath(os.path.join(r, f), f"{w}/acts") for r, _, fs in os.walk(f"{w}/acts") for f in fs)
assert outs == want, (outs, want)
print(f"parallel recipe: 3 shards of {len(want)} files merge to the unsharded statistics")
PY
