#!/usr/bin/env node
// Runs an ONNX model from coco-export --onnx with ONNX Runtime (onnxruntime-node, CPU)
// on the samples coco-export --onnx-check wrote beside it, and compares with coco's
// own output for them.
//
//   node tools/onnx_check.mjs MODEL.onnx [--tolerance 1e-4]
//
// Reads MODEL.onnx.input.npy and MODEL.onnx.output.npy (float32). Prints the largest
// difference relative to the largest |coco output| and exits 1 when it is above the
// tolerance (default 1e-4). ONNX Runtime comes from tools/fetch_onnxruntime.sh.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "onnxruntime", "package.json"));

function fail(message) {
  console.error("onnx_check: " + message);
  process.exit(1);
}

// A little-endian float32 .npy: { shape, data }.
function readNpy(path) {
  let b;
  try {
    b = readFileSync(path);
  } catch (e) {
    fail(`${path}: ${e.message} (write it with coco-export --onnx-check N)`);
  }
  if (b.toString("latin1", 0, 6) !== "\x93NUMPY") fail(`${path}: not a .npy file`);
  const major = b[6];
  const headerLength = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLength;
  const header = b.toString("latin1", major === 1 ? 10 : 12, start);
  if (!header.includes("'<f4'")) fail(`${path}: expected float32 ('<f4'), header ${header.trim()}`);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(",").filter((s) => s.trim()).map(Number);
  const data = new Float32Array(b.buffer.slice(b.byteOffset + start, b.byteOffset + b.length));
  return { shape, data };
}

const args = process.argv.slice(2);
const model = args[0];
if (!model || model.startsWith("-")) fail("usage: node tools/onnx_check.mjs MODEL.onnx [--tolerance T]");
const t = args.indexOf("--tolerance");
const tolerance = t >= 0 ? Number(args[t + 1]) : 1e-4;

let ort;
try {
  ort = require("onnxruntime-node");
} catch (e) {
  fail("onnxruntime-node is not installed: run tools/fetch_onnxruntime.sh");
}
const input = readNpy(model + ".input.npy");
const want = readNpy(model + ".output.npy");
const session = await ort.InferenceSession.create(model);
const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", input.data, input.shape) };
const result = await session.run(feeds);
const got = result[session.outputNames[0]];
if (got.data.length !== want.data.length)
  fail(`ONNX Runtime gave ${got.dims} (${got.data.length} values), coco ${want.shape} (${want.data.length})`);
let scale = 0, worst = 0;
for (const v of want.data) scale = Math.max(scale, Math.abs(v));
for (let i = 0; i < want.data.length; ++i) worst = Math.max(worst, Math.abs(got.data[i] - want.data[i]));
const relative = worst / Math.max(scale, 1e-30);
console.log(`${model}: ONNX Runtime ${ort.env.versions ? ort.env.versions.common : ""} on ${input.shape} -> ` +
            `${got.dims}; largest difference from coco ${worst.toExponential(2)}, relative ` +
            `${relative.toExponential(2)} (tolerance ${tolerance})`);
process.exit(relative <= tolerance ? 0 : 1);
