#!/usr/bin/env bash
# Longer local fuzzing: each target in turn, niced, from its seed corpus plus what
# earlier runs found (kept in BUILD/fuzz-work/<target>/corpus).
#   tools/fuzz.sh BUILD_DIR SECONDS_PER_TARGET [TARGET...]
# BUILD_DIR is a COCO_FUZZ=ON build, e.g.
#   CXX=clang++ cmake -S . -B build-fuzz -DCOCO_WITH_CUDA=OFF -DCOCO_FUZZ=ON \
#     -DCOCO_BUILD_TESTS=OFF -DCOCO_BUILD_BENCHMARKS=OFF && cmake --build build-fuzz -j2
# Prints one line per target with its executions; exits 1 if any target found something.
set -uo pipefail
cd "$(dirname "$0")/.."
build=$1 seconds=$2
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config mnist recordio checkpoint caffemodel)
status=0
mkdir -p "$build/fuzz-work"
: >"$build/fuzz-work/summary.txt"
for t in "${targets[@]}"; do
  work="$build/fuzz-work/$t"
  mkdir -p "$work"
  nice -n 5 tests/fuzz/run_one.sh "$build/tests/fuzz/fuzz_$t" "tests/fuzz/corpus/$t" "$work" "$seconds" >"$work/result" 2>&1
  rc=$?
  cat "$work/result"
  [ "$rc" -eq 0 ] || status=1
  echo "$t: $(head -1 "$work/result")  (exit $rc)" >>"$build/fuzz-work/summary.txt"
done
echo "== summary ($build/fuzz-work/summary.txt)"
cat "$build/fuzz-work/summary.txt"
exit $status
