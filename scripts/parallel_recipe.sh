#!/usr/bin/env bash
# The GNU parallel recipe of docs/scaling-out.md, run for real: a small dataset split into 3
# shards by 3 parallel jobs, their statistics merged, and checked against one unsharded run.
# Needs GNU parallel (Debian: apt-get install parallel) and a built target/release/relu.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/recipe_common.sh
relu=$PWD/target/release/relu
py=${RELU_PYTHON:-python3}
command -v parallel >/dev/null || { echo "parallel_recipe: GNU parallel is not installed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

make_dataset "$work"

"$relu" batch -q --out-dir "$work/whole" --stats "$work/whole.jsonl" "$work/acts"
# the recipe (here on this host only; add --sshlogin for several)
parallel -j3 "$relu" batch -q --out-dir "$work/out" --stats "$work/stats-{}.jsonl" --shard {}/3 "$work/acts" ::: 1 2 3
"$relu" merge-stats "$work"/stats-*.jsonl -o "$work/merged.json"
"$relu" merge-stats "$work/whole.jsonl" -o "$work/whole.json"

check_merge "$work" "parallel recipe: 3 shards"
