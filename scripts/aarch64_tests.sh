#!/usr/bin/env bash
# The NEON level, compiled and tested: the kernel property tests, the library's unit tests and the
# CLI tests for aarch64-unknown-linux-gnu, run under qemu-aarch64 (user mode). Needs Debian's
# qemu-user, gcc-aarch64-linux-gnu and libc6-dev-arm64-cross, and `rustup target add
# aarch64-unknown-linux-gnu`. Tests that start relu through assert_cmd go through the runner below;
# the few that start it directly (a pty, signals, rlimits) are Linux-x86 CI's.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# quicker to build than the shipped profile (thin LTO, one codegen unit); same code paths
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
# the property tests' case count: qemu is some ten times slower than the machine
export PROPTEST_CASES=${PROPTEST_CASES:-64}
cargo test --release --no-fail-fast --target aarch64-unknown-linux-gnu --lib --test kernel_props "$@"
# The CLI tests one at a time: a test binary under qemu-user that spawns relu from several test
# threads at once may leave a forked child deadlocked before its exec (a lock another emulated
# thread held at the fork); one such child hung `damaged_files_fail_cleanly` for ten minutes.
cargo test --release --no-fail-fast --target aarch64-unknown-linux-gnu \
    --test cli --test csv_cli --test npz_cli --test stats_cli --test safetensors_cli --test hostile_input "$@" \
    -- --test-threads=1
