# Shared by the scale-out recipe scripts (sourced, not run): a small dataset with one unit
# layout, and the check that merged shard statistics equal one unsharded run.

# make_dataset DIR: the oracle corpus's trained layer, copied under several names and directories.
make_dataset() {
    local i=0 d
    for d in a a/b c; do mkdir -p "$1/acts/$d"; done
    for d in a a/b c a c a/b a; do
        cp fixtures/oracle/mlp_healthy_layer1_pre.npy "$1/acts/$d/layer$i.npy"
        i=$((i + 1))
    done
}

# check_merge DIR LABEL: DIR/merged.json (the shards) against DIR/whole.json (one run), and the
# union of the outputs in DIR/out against the inputs in DIR/acts.
check_merge() {
    "$py" - "$1" "$2" <<'PY'
import json, os, sys
w, label = sys.argv[1], sys.argv[2]
m, u = (json.load(open(f"{w}/{n}.json")) for n in ("merged", "whole"))
for k in ("elements", "zeros", "nan", "min", "max", "negative_inputs", "merged"):
    assert m[k] == u[k], (k, m[k], u[k])
assert m["units"]["active_count"] == u["units"]["active_count"]
assert abs(m["mean"] - u["mean"]) <= 1e-12 * abs(u["mean"]) and abs(m["std"] - u["std"]) <= 1e-12 * u["std"]
outs = sorted(os.path.relpath(os.path.join(r, f), f"{w}/out") for r, _, fs in os.walk(f"{w}/out") for f in fs)
want = sorted(os.path.relpath(os.path.join(r, f), f"{w}/acts") for r, _, fs in os.walk(f"{w}/acts") for f in fs)
assert outs == want, (outs, want)
print(f"{label} over {len(want)} files merges to the unsharded statistics")
PY
}
