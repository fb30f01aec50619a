// ort_engine.js — ONNX Runtime's side of bench/run (the line protocol of medvlp_engine.c).
// Usage: node ort_engine.js text|vit_b16|resnet50 MODEL.onnx THREADS   (run from bench/, where npm
// installed onnxruntime-node). Prints the session creation time, then answers "BATCH SEQ_LEN ITERS"
// with mean seconds per batch and "rss" with peak and current RSS in KiB.
const fs = require('fs');
const ort = require('onnxruntime-node');
const readline = require('readline');

function textFeeds(batch, seqLen) {
  let seed = 1;
  const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
  const ids = new BigInt64Array(seqLen * batch);
  const mask = new BigInt64Array(seqLen * batch).fill(1n);
  for (let b = 0; b < batch; b++)
    for (let i = 0; i < seqLen; i++)
      ids[b * seqLen + i] = BigInt(i === 0 ? 2 : i === seqLen - 1 ? 3 : 5 + (rand() % 30000));
  return {
    input_ids: new ort.Tensor('int64', ids, [batch, seqLen]),
    attention_mask: new ort.Tensor('int64', mask, [batch, seqLen]),
  };
}

function imageFeeds(batch) {
  const pixels = new Float32Array(batch * 3 * 224 * 224).map(() => Math.random() - 0.5);
  return { pixels: new ort.Tensor('float32', pixels, [batch, 3, 224, 224]) };
}

async function main() {
  const [kind, modelPath, threads] = process.argv.slice(2);
  const start = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  process.stdout.write((Number(process.hrtime.bigint() - start) / 1e9).toFixed(9) + '\n');
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.startsWith('rss')) {
      const status = fs.readFileSync('/proc/self/status', 'utf8');
      process.stdout.write(status.match(/VmHWM:\s+(\d+)/)[1] + ' ' + status.match(/VmRSS:\s+(\d+)/)[1] + '\n');
      continue;
    }
    const [batch, seqLen, iters] = line.trim().split(/\s+/).map(Number);
    const feeds = kind === 'text' ? textFeeds(batch, seqLen) : imageFeeds(batch);
    const t0 = process.hrtime.bigint();
    for (let it = 0; it < iters; it++) await session.run(feeds);
    process.stdout.write((Number(process.hrtime.bigint() - t0) / 1e9 / iters).toFixed(9) + '\n');
  }
}
main().catch((e) => { console.error('ort_engine:', e.message); process.exit(1); });
