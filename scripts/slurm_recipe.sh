#!/usr/bin/env bash
# The Slurm array recipe of docs/scaling-out.md on the single-node Slurm that
# scripts/slurm_single_node.sh starts: a small dataset split by a 3-task array job, the tasks'
# statistics merged and checked against one unsharded run.
set -euo pipefail
cd "$(dirname "$0")/.."
relu=$PWD/target/release/relu
py=${RELU_PYTHON:-python3}
work=$(mktemp -d /tmp/relu-slurm.XXXXXX)
trap 'rm -rf "$work"' EXIT
for d in a a/b c; do mkdir -p "$work/acts/$d"; done
i=0
for d in a a/b c a c a/b a; do
    cp fixtures/oracle/mlp_healthy_layer1_pre.npy "$work/acts/$d/layer$i.npy"
    i=$((i + 1))
done
"$relu" batch -q --out-dir "$work/whole" --stats "$work/whole.jsonl" "$work/acts"

# the array script, as docs/scaling-out.md gives it (paths made local)
cat > "$work/array.sh" <<SH
#!/bin/bash
#SBATCH --array=0-2
#SBATCH --cpus-per-task=1
#SBATCH --output=$work/slurm-%A_%a.out
$relu batch -q --out-dir $work/out --stats $work/stats-\$SLURM_ARRAY_TASK_ID.jsonl \\
  --shard \$((SLURM_ARRAY_TASK_ID+1))/\$SLURM_ARRAY_TASK_COUNT $work/acts
SH
sbatch --wait "$work/array.sh"
"$relu" merge-stats "$work"/stats-*.jsonl -o "$work/merged.json"
"$relu" merge-stats "$work/whole.jsonl" -o "$work/whole.json"
"$py" - "$work" <<'PY'
import json, os, sys
w = sys.argv[1]
m, u = (json.load(open(f"{w}/{n}.json")) for n in ("merged", "whole"))
for k in ("elements", "zeros", "nan", "min", "max", "negative_inputs", "merged"):
    assert m[k] == u[k], (k, m[k], u[k])
assert m["units"]["active_count"] == u["units"]["active_count"]
assert abs(m["mean"] - u["mean"]) <= 1e-12 * abs(u["mean"])
outs = sorted(os.path.relpath(os.path.join(r, f), f"{w}/out") for r, _, fs in os.walk(f"{w}/out") for f in fs)
want = sorted(os.path.relpath(os.path.join(r, f), f"{w}/acts") for r, _, fs in os.walk(f"{w}/acts") for f in fs)
assert outs == want, (outs, want)
print(f"slurm recipe: a 3-task array over {len(want)} files merges to the unsharded statistics")
PY
