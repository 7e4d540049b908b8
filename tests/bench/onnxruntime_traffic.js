#!/usr/bin/env node
// ONNX Runtime on the real-traffic mix (traffic_reference.py drives it): the
// official DETR-R50 exported with dynamic height and width, run by
// onnxruntime-node's CPU build on each request's resized shape in the mix's
// order (seeded pixels, no padding). Prints one JSON object: per-request
// seconds and the process's RSS after the first round and at the end.
// With --stdin-rounds it runs one round per line read from stdin instead and
// prints one JSON line per round ({seconds, rss}), so that a driver can
// interleave its rounds with another engine's (traffic_bench.py --beside).
//
//   node onnxruntime_traffic.js MODEL.onnx SHAPES.json [--threads 2] [--rounds 3 | --stdin-rounds]
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

function inputs(height, width, seed) {
  const pixels = new Float32Array(3 * height * width);
  let state = seed >>> 0;
  for (let i = 0; i < pixels.length; ++i) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    pixels[i] = state / 4294967296 * 4 - 2;  // roughly the normalised range
  }
  return {
    pixels: new ort.Tensor('float32', pixels, [1, 3, height, width]),
    mask: new ort.Tensor('bool', new Uint8Array(height * width), [1, height, width]),
  };
}

async function main() {
  const [model, shapesFile] = process.argv.slice(2);
  const shapes = JSON.parse(fs.readFileSync(shapesFile, 'utf8'));
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: option('--threads', 2),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const runRound = async () => {
    const seconds = [];
    for (const [height, width] of shapes) {
      const feeds = inputs(height, width, height * 7919 + width);
      const start = process.hrtime.bigint();
      await session.run(feeds);
      seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
    }
    return seconds;
  };
  if (process.argv.includes('--stdin-rounds')) {
    console.log(JSON.stringify({ready: true}));
    const lines = require('readline').createInterface({input: process.stdin});
    for await (const line of lines) {
      if (line.trim() !== 'round') break;
      const seconds = await runRound();
      console.log(JSON.stringify({seconds, rss: process.memoryUsage().rss}));
    }
    return;
  }
  const rounds = option('--rounds', 3);
  const seconds = [];
  let rssAfterFirstRound = 0;
  for (let round = 0; round < rounds; ++round) {
    for (const [height, width] of shapes) {
      const feeds = inputs(height, width, height * 7919 + width);
      const start = process.hrtime.bigint();
      await session.run(feeds);
      seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
    }
    if (round === 0) rssAfterFirstRound = process.memoryUsage().rss;
  }
  console.log(JSON.stringify({seconds, rss_after_round_1: rssAfterFirstRound, rss_end: process.memoryUsage().rss}));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
