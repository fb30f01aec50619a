// ort_bench.js — ONNX Runtime's side of bench/text (same line protocol as bench_text.c).
// Usage: node ort_bench.js MODEL.onnx THREADS   (run from bench/, where npm installed onnxruntime-node)
const ort = require('onnxruntime-node');
const readline = require('readline');

async function main() {
  const [modelPath, threads] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  let seed = 1;
  const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [seqLen, batch, iters] = line.trim().split(/\s+/).map(Number);
    const ids = new BigInt64Array(seqLen * batch);
    const mask = new BigInt64Array(seqLen * batch).fill(1n);
    for (let b = 0; b < batch; b++)
      for (let i = 0; i < seqLen; i++)
        ids[b * seqLen + i] = BigInt(i === 0 ? 2 : i === seqLen - 1 ? 3 : 5 + (rand() % 30000));
    const feeds = {
      input_ids: new ort.Tensor('int64', ids, [batch, seqLen]),
      attention_mask: new ort.Tensor('int64', mask, [batch, seqLen]),
    };
    const start = process.hrtime.bigint();
    for (let it = 0; it < iters; it++) await session.run(feeds);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9 / iters;
    process.stdout.write(seconds.toFixed(9) + '\n');
  }
}
main().catch((e) => { console.error('ort_bench:', e.message); process.exit(1); });
