#!/usr/bin/env node
// The ONNX Runtime row of the DETR-R50 forward benchmark: the official
// architecture exported by onnx_export.py, run by onnxruntime-node's CPU
// build with 2 intra-op threads (as the C++ model and PyTorch eager are) on
// the same weights and input. Checks that its outputs match PyTorch's, then
// prints the median of the timed runs.
//
//   node onnxruntime_bench.js EXPORT_DIR [--threads 2] [--runs 5]
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

function floats(file) {
  const bytes = fs.readFileSync(file);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
}

function maxAbsDiff(a, b) {
  let worst = 0;
  for (let i = 0; i < a.length; ++i) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

async function main() {
  const dir = process.argv[2];
  const threads = option('--threads', 2);
  const runs = option('--runs', 5);
  const session = await ort.InferenceSession.create(path.join(dir, 'detr-r50.onnx'), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const mask = fs.readFileSync(path.join(dir, 'mask.u8'));
  const feeds = {
    pixels: new ort.Tensor('float32', floats(path.join(dir, 'pixels.f32')), [1, 3, 800, 1066]),
    mask: new ort.Tensor('bool', Uint8Array.from(mask), [1, 800, 1066]),
  };
  const first = await session.run(feeds);  // warm-up
  const logitsDiff = maxAbsDiff(first.pred_logits.data, floats(path.join(dir, 'logits.f32')));
  const boxesDiff = maxAbsDiff(first.pred_boxes.data, floats(path.join(dir, 'boxes.f32')));
  if (!(logitsDiff < 1e-2 && boxesDiff < 1e-3)) {
    throw new Error(`ONNX Runtime's outputs differ from PyTorch's: logits ${logitsDiff}, boxes ${boxesDiff}`);
  }
  const times = [];
  for (let i = 0; i < runs; ++i) {
    const start = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  console.log(`onnxruntime detr_r50_800x1066/softmax: median ${median.toFixed(0)} ms, min ${times[0].toFixed(0)} ms ` +
              `over ${runs} runs, ${threads} intra-op threads, onnxruntime-node ${require('onnxruntime-node/package.json').version}, ` +
              `outputs within ${logitsDiff.toExponential(1)} (logits) and ${boxesDiff.toExponential(1)} (boxes) of PyTorch's`);
}

main().catch((error) => {
  console.error(`onnxruntime_bench: ${error.message}`);
  process.exit(1);
});
