// Data-parallel training through Open MPI (mpirun started by `lmf train --nproc`): 2 and 3 ranks log the
// losses of one process with the same global batch (LoRA with dropout, full, ZeRO-1); a rank killed with
// SIGKILL ends the job within seconds naming the rank, and the run resumes on 2 ranks to exactly the
// uninterrupted run's losses; SIGINT to one rank stops every rank at the same step with a checkpoint; ranks
// started with different configs stop at start naming what differs.
//
// Tolerance: 1e-5 relative. One process adds the micro-batches' gradients one after another into one
// buffer; the ranks add their own micro-batches, then the ranks' sums in rank order. Both are f32 sums of the
// same terms in another order (each addition rounds at 6e-8 relative), and five AdamW steps carry that
// difference into the losses at well under 1e-5.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { makeTinyModelFolder, lmfEntry, lmf } from '../helpers.js';

const hasMpi = spawnSync('mpirun', ['--version'], { stdio: 'ignore' }).status === 0;
const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-dp-'));
const modelDir = path.join(work, 'tiny');
await makeTinyModelFolder(modelDir);
const zero = path.join(work, 'ds_z2_config.json');
writeFileSync(zero, JSON.stringify({ zero_optimization: { stage: 2 } }));

/** A config whose global batch is 6 micro-batches of one example (the identity set's 6 rows: one step per epoch). */
function yaml(name: string, extra: string, model = modelDir): string {
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(
    file,
    `model_name_or_path: ${model}\nstage: sft\ndataset: identity\ndataset_dir: data\ntemplate: llama2\ncutoff_len: 96\n` +
      `output_dir: ${path.join(work, name)}\noverwrite_output_dir: true\nper_device_train_batch_size: 1\nseed: 7\n` +
      `logging_steps: 1\n${extra}`,
  );
  return file;
}

const cli = [...lmfEntry()];

function losses(name: string): number[] {
  return readFileSync(path.join(work, name, 'trainer_log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).loss as number);
}

function assertClose(got: number[], want: number[], what: string) {
  assert.equal(got.length, want.length, what);
  got.forEach((g, i) =>
    assert.ok(Math.abs(g - want[i]) <= 1e-5 * Math.abs(want[i]), `${what}: step ${i + 1}: ${g} vs ${want[i]}`),
  );
}

/** The pid of rank `rank` of a job writing to output_dir `name` (mpirun's child, found in /proc). */
function rankPid(name: string, rank: number): number | null {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (args.includes(`${name}.yaml`) && env.includes(`OMPI_COMM_WORLD_RANK=${rank}`)) return Number(pid);
    } catch {
      // the process ended while we looked
    }
  }
  return null;
}

const skip = hasMpi ? false : 'Open MPI (mpirun) is not installed';

for (const [method, extra] of [
  ['lora', 'finetuning_type: lora\nlora_rank: 8\nlora_dropout: 0.1\nlearning_rate: 1.0e-2\nmax_steps: 5\n'],
  ['full', 'finetuning_type: full\nweight_decay: 0.01\nlearning_rate: 3.0e-3\nmax_steps: 5\n'],
] as const) {
  test(
    `${method}: 2 and 3 ranks, and ZeRO-1 on 2, log the losses of one process with the same global batch`,
    { skip },
    () => {
      const one = lmf('train', yaml(`${method}-1`, `${extra}gradient_accumulation_steps: 6\n`));
      assert.equal(one.status, 0, one.stderr);
      const want = losses(`${method}-1`);
      for (const [name, args] of [
        [`${method}-2`, ['--nproc', '2', yaml(`${method}-2`, `${extra}gradient_accumulation_steps: 3\n`)]],
        [`${method}-3`, ['--nproc', '3', yaml(`${method}-3`, `${extra}gradient_accumulation_steps: 2\n`)]],
        [
          `${method}-z`,
          ['--nproc', '2', yaml(`${method}-z`, `${extra}gradient_accumulation_steps: 3\ndeepspeed: ${zero}\n`)],
        ],
      ] as const) {
        const r = lmf('train', ...args);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /data parallel: \d ranks/);
        assertClose(losses(name), want, name);
      }
    },
  );
}

test(
  'a rank killed with SIGKILL ends the job naming it; the run resumes on 2 ranks to the uninterrupted losses',
  { skip },
  async () => {
    const extra =
      'finetuning_type: lora\nlora_rank: 4\nlora_dropout: 0.1\nlearning_rate: 1.0e-2\ngradient_accumulation_steps: 1\nsave_steps: 2\nmax_steps: 40\n' +
      `lr_scheduler_type: cosine\nwarmup_steps: 2\ndeepspeed: ${zero}\n`;
    const whole = lmf('train', '--nproc', '2', yaml('whole', extra));
    assert.equal(whole.status, 0, whole.stderr);
    const want = losses('whole');
    const file = yaml('killed', extra);
    const out = path.join(work, 'killed');
    const ended = await new Promise<{ code: number | null; stderr: string; afterKill: number }>((resolve) => {
      const child = spawn(process.execPath, [...cli, 'train', '--nproc', '2', file], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      let killedAt = 0;
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setInterval(() => {
        const victim = existsSync(path.join(out, 'checkpoint-4')) ? rankPid('killed', 1) : null;
        if (victim) {
          process.kill(victim, 'SIGKILL');
          killedAt = performance.now();
          clearInterval(timer);
        }
      }, 5);
      child.on('exit', (code) => {
        clearInterval(timer);
        resolve({ code, stderr, afterKill: (performance.now() - killedAt) / 1000 });
      });
    });
    assert.notEqual(ended.code, 0, 'the job failed');
    assert.ok(ended.afterKill < 10, `the job ended ${ended.afterKill.toFixed(1)} s after the kill`);
    assert.match(ended.stderr, /process rank 1 .*exited on signal 9/);
    const resumed = lmf('train', '--nproc', '2', file, 'resume_from_checkpoint=true', 'overwrite_output_dir=false');
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resumed from .*checkpoint-\d+ at step \d+/);
    assert.deepEqual(losses('killed'), want);
  },
);

test('SIGINT to one rank stops every rank after the same step, with a checkpoint', { skip }, async () => {
  const file = yaml(
    'interrupted',
    'finetuning_type: lora\nlearning_rate: 1.0e-2\nmax_steps: 2000\ngradient_accumulation_steps: 3\n',
  );
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [...cli, 'train', '--nproc', '2', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const victim = !sent && /step 3\//.test(stderr) ? rankPid('interrupted', 1) : null;
      if (victim) {
        sent = true;
        process.kill(victim, 'SIGINT');
      }
    });
    child.on('exit', (code) => resolve({ code, stderr }));
  });
  assert.equal(result.code, 0, result.stderr);
  const saved = /interrupted by a signal to another rank: checkpoint saved to .*checkpoint-(\d+)/.exec(result.stderr);
  assert.ok(saved, result.stderr);
  const state = JSON.parse(
    readFileSync(path.join(work, 'interrupted', `checkpoint-${saved[1]}`, 'trainer_state.json'), 'utf8'),
  );
  assert.equal(state.global_step, Number(saved[1]));
});

test('ranks started with different configs stop at start, naming what differs and which rank', { skip }, () => {
  const a = yaml('mismatch', 'finetuning_type: lora\nlearning_rate: 1.0e-2\nmax_steps: 2\n');
  const rank = [process.execPath, ...cli, 'train', a];
  const r = spawnSync(
    'mpirun',
    [
      ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []),
      '--oversubscribe',
      '-np',
      '1',
      ...rank,
      ':',
      '-np',
      '1',
      ...rank,
      'learning_rate=2.0e-2',
    ],
    { encoding: 'utf8' },
  );
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /the ranks of this job do not train the same run: config \(rank 1 differs from rank 0\)/);
});

test(
  'rm with an untied head that never gets a gradient: 2 ranks and ZeRO-1 equal one process (the head left alone)',
  { skip },
  async () => {
    // the value head reads the last hidden state, so lm_head gets no gradient; with weight decay, updating it anyway
    // would change the saved model but not the loss: compare the saved heads too
    const untied = await makeTinyModelFolder(path.join(work, 'untied'), { tie_word_embeddings: false });
    const rm = 'finetuning_type: full\nweight_decay: 0.1\nlearning_rate: 1.0e-3\nmax_steps: 3\n';
    const asRm = ['stage=rm', 'dataset=dpo_demo'];
    const one = lmf('train', yaml('rm-1', `${rm}gradient_accumulation_steps: 2\n`, untied), ...asRm);
    assert.equal(one.status, 0, one.stderr);
    const head = (name: string) => SafetensorsFile.open(path.join(work, name, 'model.safetensors'));
    for (const [name, extra] of [
      ['rm-2', 'gradient_accumulation_steps: 1\n'],
      ['rm-z', `gradient_accumulation_steps: 1\ndeepspeed: ${zero}\n`],
    ]) {
      const r = lmf('train', '--nproc', '2', yaml(name, `${rm}${extra}`, untied), ...asRm);
      assert.equal(r.status, 0, r.stderr);
      assertClose(losses(name), losses('rm-1'), name);
      const [a, b] = [head('rm-1'), head(name)];
      const [x, y] = [a.read('lm_head.weight', 'f32'), b.read('lm_head.weight', 'f32')];
      assert.deepEqual(y.data, x.data, `${name}: lm_head as one process leaves it`);
      for (const t of [x, y]) t.dispose();
      a.close();
      b.close();
    }
  },
);
