#!/usr/bin/env bash
# Installs ONNX Runtime's Node.js package (onnxruntime-node, which carries its CPU
# runtime inside) into tools/onnxruntime/node_modules, for tools/onnx_check.mjs and
# the onnx.* tests. --ignore-scripts: its install script only downloads GPU
# providers. Idempotent; needs npm and the npm registry. Usage: tools/fetch_onnxruntime.sh
set -euo pipefail
cd "$(dirname "$0")/onnxruntime"
if [ -f node_modules/onnxruntime-node/package.json ]; then
  echo "onnxruntime: $(node -p "require('onnxruntime-node/package.json').version") present"
  exit 0
fi
npm install --ignore-scripts --no-audit --no-fund --loglevel=error
echo "onnxruntime: installed $(node -p "require('onnxruntime-node/package.json').version")"
