#!/usr/bin/env bash
# Launches coco-train on several nodes with Open MPI.
#
#   launch/mpirun_multinode.sh HOSTFILE NP CONFIG [coco-train options...] [-- mpirun options...]
#
# Every node needs the same build at the same path and the data at the same path
# (or pass --data-root). Snapshots: every rank writes its own shard file beside
# the main checkpoint, so --snapshot-prefix must name a folder every node shares
# (NFS or similar); on node-local disks each node holds only its ranks' shards and
# the checkpoint cannot be resumed. Ranks take contiguous slices of each global
# batch; the local rank picks the GPU. What follows "--" goes to mpirun as it is
# (e.g. -- --mca btl_tcp_if_include eth0 --map-by ppr:8:node).
#
# These variables are forwarded to every rank when they are set (and only then):
#   NCCL_SOCKET_IFNAME  network interface NCCL uses between nodes (e.g. eth0, ib0)
#   NCCL_IB_DISABLE=1   when the nodes have no InfiniBand
#   NCCL_DEBUG=INFO     to see NCCL's choice of transport
#   OMP_NUM_THREADS     CPU threads per rank (coco-train's default otherwise:
#                       the node's cores divided among its ranks)
#   COCO_COMM_TIMEOUT   seconds an MPI call may block before the rank ends
# COCO_TRAIN names the coco-train binary (default: this clone's build/coco-train).
# Open MPI forwards its own OMPI_MCA_* variables itself, e.g.
#   OMPI_MCA_btl_tcp_if_include  the interface Open MPI uses (same idea as NCCL's)
# Running as root (containers) needs OMPI_ALLOW_RUN_AS_ROOT=1 and
# OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.
set -euo pipefail
usage="usage: $0 HOSTFILE NP CONFIG [coco-train options...] [-- mpirun options...]"
hostfile=${1:?$usage}
np=${2:?$usage}
config=${3:?$usage}
shift 3
train_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  train_args+=("$1")
  shift
done
[ $# -gt 0 ] && shift  # the "--"
mpirun_args=("$@")

forward=()
for name in NCCL_SOCKET_IFNAME NCCL_IB_DISABLE NCCL_DEBUG OMP_NUM_THREADS COCO_COMM_TIMEOUT; do
  if [ -n "${!name+set}" ]; then forward+=(-x "$name"); fi
done
here=$(cd "$(dirname "$0")/.." && pwd)
exec mpirun --hostfile "$hostfile" -np "$np" --bind-to none "${forward[@]}" "${mpirun_args[@]}" \
  "${COCO_TRAIN:-$here/build/coco-train}" --config "$config" "${train_args[@]}"
