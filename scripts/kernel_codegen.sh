#!/usr/bin/env bash
# The element-wise kernels (`kernel::generic::map` and `convert`, inlined into each level's
# `float`, `int` and `convert`; the histogram's `bin_index`; the counters) must stay plain vector
# loads and stores. LLVM once widened their
# loop over blocks into gathers and scatters on AVX-512, 8-14x slower, with every test still
# passing; this looks at the machine code of the release binary instead.
set -euo pipefail
bin=${1:-target/release/relu}
if [ "$(uname -m)" != x86_64 ] || ! command -v objdump >/dev/null; then
    echo "kernel codegen: skipped (needs x86_64 and objdump)"
    exit 0
fi
objdump -d --no-show-raw-insn "$bin" | awk '
    /^[0-9a-f]+ <.*>:$/ { fn = $2; hot = fn ~ /kernel3x86(6avx512|4avx2)(5float|3int|7convert|9bin_index|11bin_index32|5count|10count_into|9unit_rows|8unit_run)17h/; if (hot) n++ }
    hot && /vgather|vscatter/ { bad[fn]++ }
    END {
        if (n == 0) { print "kernel codegen: no kernel functions found in the binary"; exit 1 }
        for (f in bad) { print "kernel codegen: " bad[f] " gathers/scatters in " f; fail = 1 }
        if (fail) exit 1
        print "kernel codegen: " n " kernel functions, no gathers or scatters"
    }'
