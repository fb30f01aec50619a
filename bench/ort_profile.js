// ort_profile.js — ONNX Runtime's own per-node times for one image model, to set beside medvlp's
// per-convolution times (bench/kernels/conv_timer.diff). Not part of bench/run.
//   cd bench && node ort_profile.js out/models/resnet50.onnx [ITERS=200] [BATCH=1] [THREADS=2]
// Runs the model ITERS times with ORT's profiler on (graph optimisations as ort_engine.js sets them)
// and prints each node's median kernel time over the runs after the first 10, in graph order, then
// their sum and the median of the whole run.
const fs = require('fs');
const os = require('os');
const path = require('path');
const ort = require('onnxruntime-node');

const WARMUP = 10;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main() {
  const [modelPath, iters = '200', batch = '1', threads = '2'] = process.argv.slice(2);
  if (!modelPath) {
    console.error('usage: node ort_profile.js MODEL.onnx [ITERS] [BATCH] [THREADS]');
    process.exit(2);
  }
  const prefix = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ortprof-')), 'profile');
  const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionMode: 'sequential', enableProfiling: true, profileFilePrefix: prefix,
  });
  const n = Number(batch);
  const pixels = new Float32Array(n * 3 * 224 * 224).map(() => Math.random() - 0.5);
  const feeds = { pixels: new ort.Tensor('float32', pixels, [n, 3, 224, 224]) };
  for (let i = 0; i < Number(iters); i++) await session.run(feeds);
  session.endProfiling();
  const dir = path.dirname(prefix);
  const file = path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith('.json')));
  const events = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.rmSync(dir, { recursive: true });
  const nodes = new Map();
  for (const e of events)
    if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) {
      if (!nodes.has(e.name)) nodes.set(e.name, { op: e.args.op_name, times: [] });
      nodes.get(e.name).times.push(e.dur);
    }
  let sum = 0;
  for (const [name, node] of nodes) {
    const ms = median(node.times.slice(WARMUP)) / 1000;
    sum += ms;
    console.log(`${node.op.padEnd(18)} ${ms.toFixed(3).padStart(7)} ms  ${name.replace(/_kernel_time$/, '')}`);
  }
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').map((e) => e.dur);
  console.log(`sum of node medians ${sum.toFixed(3)} ms; median run ${(median(runs.slice(WARMUP)) / 1000).toFixed(3)} ms`);
}
main().catch((e) => { console.error('ort_profile:', e.message); process.exit(1); });
