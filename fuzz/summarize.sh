#!/bin/bash
# prints a RUNS.md row per finished log: target | start | end | duration | final libFuzzer line
cd "$(dirname "$0")"
for t in "$@"; do
  l=logs/$t.log
  s=$(head -1 $l | cut -d' ' -f2); e=$(grep '^end ' $l | cut -d' ' -f2)
  last=$(grep -a '^#[0-9]*: cov' $l | tail -1)
  dur=$(grep -a 'INFO: exiting' $l | sed 's/.*time: //')
  echo "| \`$t\` | $s | $e | $dur | \`$last\` |"
done
