#!/usr/bin/env bash
# Launches coco-train on several nodes with Open MPI.
#
#   launch/mpirun_multinode.sh HOSTFILE NP CONFIG [coco-train options...]
#
# Every node needs the same build at the same path and the data at the same path
# (or pass --data-root). Ranks take contiguous slices of each global batch; the
# local rank picks the GPU once the CUDA backend is in. Set these as needed:
#   NCCL_SOCKET_IFNAME  network interface NCCL uses between nodes (e.g. eth0, ib0)
#   NCCL_IB_DISABLE=1   when the nodes have no InfiniBand
#   NCCL_DEBUG=INFO     to see NCCL's choice of transport
#   OMPI_MCA_btl_tcp_if_include  the interface Open MPI itself uses (same idea)
# Running as root (containers) needs OMPI_ALLOW_RUN_AS_ROOT=1 and
# OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.
set -euo pipefail
hostfile=${1:?usage: $0 HOSTFILE NP CONFIG [coco-train options...]}
np=${2:?usage: $0 HOSTFILE NP CONFIG [coco-train options...]}
config=${3:?usage: $0 HOSTFILE NP CONFIG [coco-train options...]}
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
exec mpirun --hostfile "$hostfile" -np "$np" --bind-to none \
  -x NCCL_SOCKET_IFNAME -x NCCL_IB_DISABLE -x NCCL_DEBUG -x OMP_NUM_THREADS \
  "$here/build/coco-train" --config "$config" "$@"
