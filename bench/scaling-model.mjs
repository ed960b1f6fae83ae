// A modelled scaling table from the measurements scripts/bench-distributed.sh takes (its JSON lines):
// for each of LoRA and full, one rank's compute time per step (1 process x 1 thread), the bytes a rank sent per
// step over the 1 Gbit/s, 1 ms link and the time it waited for the reduction after backward there.
//
// The model (stated in the README): a step on N machines takes compute + exposed communication + the CPU time
// communication takes from compute. The reduction of G gradient bytes (an all-to-all then an all-gather of
// 25 MB buckets) sends B(N) = 2 (N-1)/N G bytes per rank and pays a latency per peer and bucket in each phase:
//   T(N) = B(N) / bandwidth + 2 (N-1) buckets latency
// The overlap with backward hides H seconds of it: the model's T(2) on the link minus the wait observed there.
// The rest of a step's growth is CPU: kappa seconds per byte sent, after taking out what two ranks sharing one
// machine's cores and memory cost each other (the LoRA runs, whose communication is negligible, measure that).
// Over the emulated link kappa includes the TCP stack and the emulator's own copies (an upper bound); over
// shared memory it is the copies and sums alone (a lower bound): the table gives both ends.
//   efficiency(N) = compute / (compute + max(0, T(N) - H) + kappa B(N))
// usage: node bench/scaling-model.mjs bench-results/distributed.jsonl
import { readFileSync } from 'node:fs';

const runs = new Map(
  readFileSync(process.argv[2], 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .map((r) => [r.run, r]),
);
const BUCKET = 25 * 2 ** 20;
const linkRate = 1e9 / 8; // bytes/s
const linkLatency = 1e-3; // one way
const clusterLatency = 25e-6; // assumed one-way latency of a data-centre LAN (switch + kernel TCP)

function commTime(gradBytes, n, bytesPerSecond, latency) {
  const buckets = Math.ceil(gradBytes / BUCKET);
  return ((2 * (n - 1)) / n) * (gradBytes / bytesPerSecond) + 2 * (n - 1) * buckets * latency;
}

const sharing = runs.get('2x1 lora').step_s / runs.get('1x1 lora').step_s;
console.log(`two ranks sharing this machine slow each other by ${sharing.toFixed(3)}x (LoRA, 2x1 vs 1x1)`);
const rows = [];
for (const mode of ['lora', 'full']) {
  const alone = runs.get(`1x1 ${mode}`);
  const link = runs.get(`2x1 ${mode} over 1 Gbit/s`);
  if (!alone || !link) continue;
  const grad = link.trainable_params * 4;
  const predicted = commTime(grad, 2, linkRate, linkLatency);
  const hidden = Math.max(0, predicted - link.sync_wait_s);
  const cpuPerByte = (run, sent) => Math.max(0, run.step_s - run.sync_wait_s - alone.step_s * sharing) / sent;
  const kappaHigh = cpuPerByte(link, link.link_tx_mb_per_step * 2 ** 20);
  const shm = runs.get(`2x1 ${mode}`);
  const kappaLow = shm ? Math.min(kappaHigh, cpuPerByte(shm, shm.comm_mb_per_step * 2 ** 20)) : kappaHigh;
  const measuredEfficiency = alone.step_s / link.step_s;
  console.log(
    `${mode}: gradients ${(grad / 2 ** 20).toFixed(1)} MB; over the link: sent ${link.link_tx_mb_per_step} MB/step ` +
      `(model: ${((((2 * (2 - 1)) / 2) * grad) / 2 ** 20).toFixed(1)}), waited ${link.sync_wait_s} s after backward ` +
      `(model comm ${predicted.toFixed(3)} s, so ${hidden.toFixed(3)} s hidden), step ${link.step_s} s vs ${alone.step_s} s alone ` +
      `(efficiency ${measuredEfficiency.toFixed(3)}); CPU cost of communication ${(kappaLow * 2 ** 20 * 1000).toFixed(2)} (shared memory) to ${(kappaHigh * 2 ** 20 * 1000).toFixed(2)} (link) ms per MB sent`,
  );
  for (const n of [8, 32]) {
    for (const gbit of [10, 25]) {
      const t = commTime(grad, n, (gbit * 1e9) / 8, clusterLatency);
      const exposed = (kappa) => Math.max(0, t - hidden) + (kappa * 2 * (n - 1) * grad) / n;
      const [low, high] = [exposed(kappaLow), exposed(kappaHigh)];
      const range = (f) => (f(low) === f(high) ? f(low) : `${f(low)}–${f(high)}`);
      rows.push({
        mode,
        machines: n,
        gbit,
        comm_s: t.toFixed(3),
        exposed_s: range((e) => e.toFixed(3)),
        step_s: range((e) => (alone.step_s + e).toFixed(2)),
        efficiency: range((e) => (alone.step_s / (alone.step_s + e)).toFixed(3)),
      });
    }
  }
}
console.log('| mode | machines | Gbit/s | comm s/step | exposed + CPU s/step | step s | efficiency |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.mode} | ${r.machines} | ${r.gbit} | ${r.comm_s} | ${r.exposed_s} | ${r.step_s} | ${r.efficiency} |`,
  );
