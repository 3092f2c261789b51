#!/bin/bash
# usage: run_one.sh TARGET SECONDS [extra libFuzzer flags]
# Runs one target in libFuzzer's fork mode (one worker) so that it keeps going after a crash,
# timeout or OOM; findings land in artifacts/TARGET/. Log: logs/TARGET.log
t=$1; secs=$2; shift 2
cd "$(dirname "$0")"
mkdir -p logs artifacts/$t
echo "start $(date -u +%FT%TZ)" > logs/$t.log
cargo +nightly fuzz run $t -- -max_total_time=$secs -rss_limit_mb=512 -timeout=10 \
  -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 "$@" >> logs/$t.log 2>&1
echo "end $(date -u +%FT%TZ) rc=$?" >> logs/$t.log
