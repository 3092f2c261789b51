#!/usr/bin/env bash
# The Slurm array recipe of docs/scaling-out.md on the single-node Slurm that
# scripts/slurm_single_node.sh starts: a small dataset split by a 3-task array job, the tasks'
# statistics merged and checked against one unsharded run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/recipe_common.sh
relu=$PWD/target/release/relu
py=${RELU_PYTHON:-python3}
work=$(mktemp -d /tmp/relu-slurm.XXXXXX)
trap 'rm -rf "$work"' EXIT
make_dataset "$work"
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
check_merge "$work" "slurm recipe: a 3-task array"
