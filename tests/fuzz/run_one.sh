#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time from its seed corpus.
#   run_one.sh FUZZER SEED_DIR WORK_DIR SECONDS [libFuzzer flags...]
# New inputs go to WORK_DIR/corpus (the seed folder is only read), findings to
# WORK_DIR/ (crash-*, timeout-*, oom-*, leak-*), the log to WORK_DIR/log. Prints the
# line "execs: N" and exits non-zero on any finding.
set -euo pipefail
fuzzer=$1 seeds=$2 work=$3 seconds=$4
shift 4
mkdir -p "$work/corpus"
# Limits: a slow input (10 s) is a hang; more than 2 GiB resident or one allocation
# over 1 GiB is an unbounded allocation; input files up to 64 KiB.
set +e
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="$work/" "$@" "$work/corpus" "$seeds" >"$work/log" 2>&1
rc=$?
set -e
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$' || echo 0)
echo "execs: $execs ($(basename "$fuzzer"), ${seconds}s, corpus $(ls "$work/corpus" | wc -l) new + $(ls "$seeds" | wc -l) seeds)"
if [ $rc -ne 0 ]; then
  echo "finding (exit $rc); the end of $work/log:"
  tail -n 60 "$work/log"
fi
exit $rc
