// Decode speed of llama.cpp (node-llama-cpp, CPU) on a GGUF file, measured as `lmf bench --mode generate`
// measures ours: a prompt of random tokens, then tokens one at a time, timed after the first: greedy, or sampled at
// TEMPERATURE with TOP_P and TOP_K (0: none; no min-p), as `--temperature --top-p --top-k` do for ours.
// usage: node bench/llama-cpp-decode.mjs MODEL.gguf [PROMPT_TOKENS] [NEW_TOKENS] [THREADS] [TEMPERATURE TOP_P TOP_K]
import { getLlama } from 'node-llama-cpp';

const [file, promptTokens = '128', newTokens = '128', threads = '2', temperature = '0', topP = '1', topK = '0'] =
  process.argv.slice(2);
const sampled = Number(temperature) > 0;
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath: file });
const context = await model.createContext({
  contextSize: Number(promptTokens) + Number(newTokens) + 8,
  threads: Number(threads),
  batchSize: Number(promptTokens),
});
const sequence = context.getSequence();
let seed = 1;
const vocab = 32000;
const prompt = Array.from(
  { length: Number(promptTokens) },
  () => ((seed = (seed * 48271) % 2147483647) % (vocab - 10)) + 10,
);
let count = 0,
  t0 = 0,
  tPrompt = 0;
const start = performance.now();
// eos is ignored so that every run decodes exactly NEW_TOKENS
const sampling = sampled
  ? { temperature: Number(temperature), topP: Number(topP), topK: Number(topK), minP: 0, seed: 1 }
  : { temperature: 0 };
for await (const _ of sequence.evaluate(prompt, { ...sampling, evaluationPriority: 5 })) {
  count++;
  if (count === 1) {
    tPrompt = performance.now();
  }
  if (count === 2) t0 = performance.now();
  if (count >= Number(newTokens)) break;
}
const decode = (performance.now() - t0) / 1000;
console.log(
  JSON.stringify({
    engine: 'llama.cpp (node-llama-cpp 3.21.1)',
    model: file,
    threads: Number(threads),
    prompt_tokens: Number(promptTokens),
    new_tokens: Number(newTokens),
    prefill_tokens_per_s: Math.round((Number(promptTokens) / ((tPrompt - start) / 1000)) * 10) / 10,
    decode_tokens_per_s: Math.round(((count - 2) / decode) * 10) / 10,
    sampling: sampled ? `temperature ${temperature}, top_p ${topP}, top_k ${topK}` : 'greedy',
  }),
);
await context.dispose();
await model.dispose();
await llama.dispose();
