// The board end to end in Debian's Chromium (playwright-core): fill the Train tab for a tiny model and the
// identity dataset, start, watch the chart gain points, reload mid-run and find the job again, see it
// finish, then chat with the result, export it, and switch to Chinese. Screenshots of each tab go to
// test-artifacts/webui/. And the server refuses paths outside its roots and requests from other origins.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { makeTinyModelFolder, lmfEntry } from '../helpers.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-webui-'));
const shots = path.resolve('test-artifacts', 'webui');
const chromiumPath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
let server: ChildProcess;
let url: string;
let browser: Browser;

before(async () => {
  mkdirSync(shots, { recursive: true });
  await makeTinyModelFolder(path.join(work, 'tiny'));
  server = spawn(
    process.execPath,
    [...lmfEntry(), 'webui', '--port', '0', '--model-dir', work, '--board-dir', path.join(work, 'board')],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /Board on (\S+)/.exec(out);
      if (m) resolve(m[1].replace(/\/$/, ''));
    });
    server.once('exit', (code) => reject(new Error(`lmf webui exited with ${code}`)));
  });
  assert.ok(chromiumPath, "Debian's chromium is installed by scripts/test.sh");
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
});

async function fill(page: Page, name: string, value: string): Promise<void> {
  await page.locator(`[name="${name}"]:visible`).first().fill(value);
}

test(
  'train from the page, reattach after a reload, chat with the result, export it, switch language',
  { timeout: 240_000 },
  async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    try {
      await walkThrough(page);
    } catch (err) {
      await page.screenshot({ path: path.join(shots, 'failure.png'), fullPage: true });
      if (errors.length) (err as Error).message += `\npage errors: ${errors.join('\n')}`;
      throw err;
    } finally {
      await page.close();
    }
  },
);

async function walkThrough(page: Page): Promise<void> {
  await page.goto(url);
  await page.screenshot({ path: path.join(shots, '0-first-visit.png'), fullPage: true });
  const tiny = path.join(work, 'tiny');
  await fill(page, 'model_name_or_path', tiny);
  await page
    .getByTestId('model-info')
    .filter({ hasText: 'LLaMA (llama) · 2.1M parameters · float32 · 2 layers' })
    .waitFor();
  await page.locator('select[name="template"]').first().selectOption('llama2');
  await page.locator('input[name="dataset:identity"]').check();
  for (const [name, value] of [
    ['learning_rate', '0.01'],
    ['max_steps', '600'],
    ['per_device_train_batch_size', '2'],
    ['gradient_accumulation_steps', '1'],
    ['cutoff_len', '128'],
    ['logging_steps', '5'],
    ['save_steps', '1000'],
    ['lora_rank', '16'],
    ['lora_alpha', '32'],
    ['output_dir', path.join(work, 'run')],
  ] as const) {
    await fill(page, name, value);
  }
  // QLoRA is one choice in the model bar: it reaches the YAML (then back to no quantization for this run)
  await page.locator('select[name="quantization_bit"]').selectOption('4');
  await page.getByRole('button', { name: 'Preview YAML and command', exact: true }).click();
  await page.locator('.preview pre').filter({ hasText: 'quantization_bit: 4' }).waitFor();
  await page.locator('select[name="quantization_bit"]').selectOption('');
  await page.getByRole('button', { name: 'Preview YAML and command', exact: true }).click();
  await page.locator('.preview pre').filter({ hasText: 'model_name_or_path' }).waitFor();
  assert.doesNotMatch(await page.locator('.preview pre').first().innerText(), /quantization_bit/);
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.waitForFunction(
    () => Number(document.querySelector('.chart')?.getAttribute('data-points') ?? 0) >= 3,
    undefined,
    { timeout: 60_000 },
  );

  await page.reload();
  // every tab but Chat shows the job's panel: read the Train tab's
  const status = (state: string) => page.locator(`[data-panel="train"] .status[data-status="${state}"]`);
  await status('running').waitFor({ timeout: 10_000 });
  assert.equal(
    await page.locator('[name="model_name_or_path"]:visible').inputValue(),
    tiny,
    'the form survives the reload',
  );
  await page.waitForFunction(
    () => Number(document.querySelector('.chart')?.getAttribute('data-points') ?? 0) >= 3,
    undefined,
    { timeout: 30_000 },
  );
  const before = Number(await page.locator('.chart').getAttribute('data-points'));
  await status('finished').waitFor({ timeout: 180_000 });
  const points = Number(await page.locator('.chart').getAttribute('data-points'));
  assert.ok(points > before, `the chart kept growing after the reload (${before} -> ${points})`);
  await page.screenshot({ path: path.join(shots, '1-train.png'), fullPage: true });

  await fill(page, 'model_name_or_path', tiny);
  await fill(page, 'adapter_name_or_path', path.join(work, 'run'));
  await page.locator('select[name="template"]').first().selectOption('llama2');
  await page.locator('[data-tab="chat"]').click();
  await page.getByRole('button', { name: 'Load model', exact: true }).click();
  await page.locator('.loaded[data-loaded="tiny"]').waitFor({ timeout: 30_000 });
  await fill(page, 'max_new_tokens', '24');
  await fill(page, 'message', 'Who are you?');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.waitForFunction(
    () => (document.querySelector('.turn.assistant p')?.textContent ?? '').length > 0,
    undefined,
    { timeout: 30_000 },
  );
  await page.getByRole('button', { name: 'Send', exact: true }).waitFor({ state: 'visible' });
  await page.screenshot({ path: path.join(shots, '2-chat.png'), fullPage: true });

  await page.locator('[data-tab="eval"]').click();
  await page.screenshot({ path: path.join(shots, '3-evaluate-predict.png'), fullPage: true });

  await page.locator('[data-tab="export"]').click();
  await fill(page, 'export_dir', path.join(work, 'exported'));
  await page.getByRole('button', { name: 'Export', exact: true }).click();
  await page
    .locator('[data-panel="export"] .results, [data-panel="export"] .status[data-status="finished"]')
    .first()
    .waitFor();
  await page.waitForFunction(
    () => document.querySelector('[data-panel="export"] .log')?.textContent?.includes('exported to'),
    undefined,
    { timeout: 60_000 },
  );
  assert.ok(existsSync(path.join(work, 'exported', 'model.safetensors')), 'the export wrote the merged model');
  await page.screenshot({ path: path.join(shots, '4-export.png'), fullPage: true });

  await page.locator('select[name="lang"]').selectOption('zh');
  await page.locator('[data-tab="train"]').filter({ hasText: '训练' }).waitFor();
  await page.locator('[data-tab="train"]').click();
  await page.screenshot({ path: path.join(shots, '5-train-zh.png'), fullPage: true });
}

test('paths outside the allowed roots and requests from other origins are refused', async () => {
  const outside = await fetch(`${url}/api/model?path=${encodeURIComponent('/etc')}`);
  assert.equal(outside.status, 403);
  assert.match(((await outside.json()) as { error: string }).error, /outside the folders/);
  const traversal = await fetch(`${url}/api/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      kind: 'train',
      args: {
        model_name_or_path: path.join(work, 'tiny'),
        dataset: ['identity'],
        output_dir: path.join(work, '..', '..', 'etc', 'lmf'),
      },
    }),
  });
  assert.equal(traversal.status, 403);
  const foreign = await fetch(`${url}/api/jobs/abort`, {
    method: 'POST',
    headers: { origin: 'http://evil.example', 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(foreign.status, 403);
  // a page on another name that resolves here (DNS rebinding) sends its own Host header
  const rebinding = await new Promise<number>((resolve, reject) => {
    http
      .get(`${url}/api/info`, { headers: { host: 'evil.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
  assert.equal(rebinding, 403);
  const typo = await fetch(`${url}/api/yaml`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      kind: 'train',
      args: { model_name_or_path: path.join(work, 'tiny'), output_dir: path.join(work, 'x'), learning_rat: 1 },
    }),
  });
  assert.equal(typo.status, 400);
  assert.match(((await typo.json()) as { error: string }).error, /did you mean "learning_rate"/);
});

test("a failed command's own error reaches the page; a token guards a board beyond loopback", async () => {
  const start = await fetch(`${url}/api/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      kind: 'train',
      args: {
        model_name_or_path: path.join(work, 'tiny'),
        dataset: ['no_such_dataset'],
        template: 'llama2',
        output_dir: path.join(work, 'bad'),
      },
    }),
  });
  assert.equal(start.status, 200);
  let state: { job: { status: string; error: string | null } };
  do {
    await new Promise((r) => setTimeout(r, 200));
    state = (await (await fetch(`${url}/api/jobs/current`)).json()) as typeof state;
  } while (state.job.status === 'running');
  assert.equal(state.job.status, 'failed');
  assert.match(state.job.error ?? '', /no_such_dataset/);

  const { buildWebui } = await import('../../src/webui/server.js');
  const app = await buildWebui({
    host: '0.0.0.0',
    port: 7861,
    roots: [],
    token: 'secret-token',
    boardDir: path.join(work, 'board2'),
  });
  const host = { host: '0.0.0.0:7861' };
  assert.equal((await app.inject({ url: '/api/info', headers: host })).statusCode, 401);
  assert.equal((await app.inject({ url: '/api/info', headers: { ...host, 'x-lmf-token': 'wrong' } })).statusCode, 401);
  assert.equal(
    (await app.inject({ url: '/api/info', headers: { ...host, 'x-lmf-token': 'secret-token' } })).statusCode,
    200,
  );
  // beyond loopback the board is reached by the machine's other names; the token, not the Host, guards it
  assert.equal(
    (await app.inject({ url: '/api/info', headers: { host: '192.168.1.5:7861', 'x-lmf-token': 'secret-token' } }))
      .statusCode,
    200,
  );
  const page = await app.inject({ url: '/?token=secret-token', headers: host });
  assert.match(String(page.headers['set-cookie']), /lmf_token=secret-token; HttpOnly; SameSite=Strict/);
  assert.equal(
    (await app.inject({ url: '/api/info', headers: { ...host, cookie: 'lmf_token=secret-token' } })).statusCode,
    200,
  );
  await app.close();
});
