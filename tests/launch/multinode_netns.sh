#!/usr/bin/env bash
# Two nodes as a cluster user runs them: they train as one process does, a killed
# rank ends the job, and a network partition ends the whole job in bounded time.
#
#   multinode_netns.sh COCO_TRAIN
#
# Two network namespaces are the nodes (each with its own hostname, node1 and node2,
# joined by a bridge); Open MPI's rsh agent enters them with a clean environment, as
# ssh would, and launch/mpirun_multinode.sh starts 2 nodes x 1 rank from node1 with
# --comm-timeout 20 (first: 60 iterations compared with one process; then kill -9
# of node2's rank mid-run). Once training runs again, node2's link is detached from the bridge:
# a silent cut (no reset, no carrier loss), like a failed switch port. Every process
# in both namespaces (mpirun, orted, both ranks) must be gone within 60 s, mpirun must
# exit non-zero, and rank 0's message must name the call and the peer it waits on.
# Needs root (CI runs as root) and iproute2. Not root: skipped (exit 77) with a line
# saying so; root on a machine that cannot make the namespaces: fails.
set -euo pipefail
train=${1:?usage: $0 COCO_TRAIN}
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: the multi-node test makes network namespaces; run ctest as root to enable it"
  exit 77
fi
repo="$(cd "$(dirname "$0")/../.." && pwd)"
tag="coco$$"
work=$(mktemp -d)
cleanup() {
  for ns in "$tag-n1" "$tag-n2"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  for i in 1 2; do ip link del "$tag-v$i" 2>/dev/null || true; done
  ip link del "$tag-br" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $1"; echo "--- job output (last 20 lines):"; tail -20 "$work/out.txt" || true; exit 1; }

ip link add "$tag-br" type bridge
ip link set "$tag-br" up
for i in 1 2; do
  ip netns add "$tag-n$i"
  ip link add "$tag-v$i" type veth peer name eth0 netns "$tag-n$i"
  ip link set "$tag-v$i" master "$tag-br" up
  ip -n "$tag-n$i" addr add "10.231.0.$i/24" dev eth0
  ip -n "$tag-n$i" link set eth0 up
  ip -n "$tag-n$i" link set lo up
done
cat > "$work/agent.sh" <<AGENT
#!/bin/sh
host=\$1; shift
case "\$host" in node1|node2) ;; *) echo "agent: unknown host \$host" >&2; exit 1 ;; esac
exec ip netns exec "$tag-n\${host#node}" unshare --uts env -i PATH="\$PATH" HOME="\$HOME" sh -c "hostname \$host; \$*"
AGENT
chmod +x "$work/agent.sh"
printf 'node1 slots=1\nnode2 slots=1\n' > "$work/hosts"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 COCO_TRAIN="$train" OMP_NUM_THREADS=1
config="$repo/examples/tiny_synthetic.prototxt"
# A sanitizer build (.ci/run's last stage) needs its options on every rank: the agent's
# clean environment drops them, so they travel with the launch (-x), as mpirun sends any
# variable a user names.
san_env=()
for name in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
  if [ -n "${!name+set}" ]; then san_env+=(-x "$name"); fi
done
# launch METRICS [coco-train options]: 2 nodes x 1 rank from node1, in the background.
launch() {
  local metrics=$1
  shift
  ip netns exec "$tag-n1" unshare --uts sh -c 'hostname node1; exec "$@"' sh \
    "$repo/launch/mpirun_multinode.sh" "$work/hosts" 2 "$config" --metrics "$metrics" "$@" \
    -- --mca plm_rsh_agent "$work/agent.sh" --mca plm_rsh_no_tree_spawn 1 \
    --mca oob_tcp_if_include 10.231.0.0/24 --mca btl_tcp_if_include 10.231.0.0/24 --mca btl tcp,self "${san_env[@]}" \
    > "$work/out.txt" 2>&1 &
  job=$!
}
# The losses of a metrics file, one per line.
losses() { python3 -c "import json,sys; [print(json.loads(l)['loss']) for l in open(sys.argv[1]) if '\"loss\"' in l]" "$1"; }

# 1. Two nodes train as one process does (same global batch, same seed).
"$train" --config "$config" --max-iter 60 --threads 1 --metrics "$work/one.jsonl" > "$work/one.txt" 2>&1 ||
  { cat "$work/one.txt"; fail "the one-process run failed"; }
launch "$work/two.jsonl" --max-iter 60
wait "$job" || fail "the two-node run failed"
paste <(losses "$work/one.jsonl") <(losses "$work/two.jsonl") | python3 -c "
import sys
rows = [tuple(map(float, l.split())) for l in sys.stdin]
assert len(rows) == 3 and all(len(r) == 2 for r in rows), rows
worst = max(abs(a - b) / abs(a) for a, b in rows)
assert worst < 1e-4, rows
print('two nodes equal one process: %d displayed losses, worst relative difference %.1e' % (len(rows), worst))
" || fail "two nodes do not train as one process"

# 2. kill -9 of the rank on node2 ends the job on both nodes.
rm -f "$work/m.jsonl"
launch "$work/m.jsonl" --max-iter 100000000 --comm-timeout 20
for _ in $(seq 60); do [ -s "$work/m.jsonl" ] && break; sleep 1; done
victim=$(for p in $(ip netns pids "$tag-n2"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = coco-train ] && echo "$p"; done)
[ -n "$victim" ] || fail "no coco-train on node2"
kill -9 $victim
killed=$(date +%s)
for _ in $(seq 30); do
  sleep 1
  [ $(( $(ip netns pids "$tag-n1" | wc -l) + $(ip netns pids "$tag-n2" | wc -l) )) -eq 0 ] && break
done
[ $(( $(ip netns pids "$tag-n1" | wc -l) + $(ip netns pids "$tag-n2" | wc -l) )) -eq 0 ] ||
  fail "processes still alive 30 s after kill -9 of node2's rank"
rc=0
wait "$job" || rc=$?
[ "$rc" -ne 0 ] || fail "mpirun exited 0 after a killed rank"
echo "kill -9 of node2's rank: every process on both nodes gone within $(( $(date +%s) - killed )) s, mpirun exit $rc"

# 3. The cut link.
rm -f "$work/m.jsonl"
launch "$work/m.jsonl" --max-iter 100000000 --comm-timeout 20
for _ in $(seq 60); do
  [ -s "$work/m.jsonl" ] && break
  kill -0 "$job" 2>/dev/null || fail "the job ended before training started"
  sleep 1
done
[ -s "$work/m.jsonl" ] || fail "no training step within 60 s"
sleep 2
[ "$(ip netns pids "$tag-n2" | wc -l)" -ge 1 ] || fail "nothing runs on node2"
ip link set "$tag-v2" nomaster
cut=$(date +%s)
left=1
for _ in $(seq 60); do
  sleep 1
  left=$(( $(ip netns pids "$tag-n1" | wc -l) + $(ip netns pids "$tag-n2" | wc -l) ))
  [ "$left" -eq 0 ] && break
done
took=$(( $(date +%s) - cut ))
[ "$left" -eq 0 ] || fail "$left processes still alive on the two nodes 60 s after the cut"
rc=0
wait "$job" || rc=$?
[ "$rc" -ne 0 ] || fail "mpirun exited 0 after a cut link"
grep -q "has not returned after .* (--comm-timeout).*it waits on rank 1 on node2" "$work/out.txt" ||
  fail "no message naming the call and the peer"
grep "has not returned" "$work/out.txt" | head -2
echo "cut link: every process on both nodes gone $took s after the cut (--comm-timeout 20), mpirun exit $rc"
