// bitsandbytes' formats against the PyTorch reference quantizer (reference/torch/bnb_ref.py, written from bnb's
// algorithm; test/fixtures/bnb/golden_bnb.safetensors): NF4 and FP4 codes and absmax, double quantization, int8
// rows and every dequantisation, byte for byte and bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LmfError } from '../../src/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { f32ToBf16Bits } from '../../src/tensor/dtype.js';
import {
  dynamicMap,
  fp4Table,
  nf4Table,
  quantize4bit,
  quantizeAbsmax,
  quantizeInt8Rows,
  type FourBitType,
} from '../../src/models/quant/bnb.js';
import { QuantizedMatrix, quantLinear, type DoubleQuantizedAbsmax } from '../../src/tensor/quantized.js';
import { native, NativeDType } from '../../src/native.js';
import { loadModel } from '../../src/models/registry.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { Tensor, withScope } from '../../src/tensor/tensor.js';
import { maxAbsDiff, root } from '../helpers.js';

const golden = SafetensorsFile.open(path.join(root, 'test', 'fixtures', 'bnb', 'golden_bnb.safetensors'));
const f32 = (name: string) => Float32Array.from(golden.readNumbers(name));
const ints = (name: string) => Array.from(golden.readNumbers(name));
const shapes: Record<string, [number, number]> = { big: [300, 70], odd: [7, 9], bf16: [64, 48] };

/** The native dequantisation the quantized matmuls use, over the whole matrix and row by row (the same values). */
function dequantized4(
  packed: Uint8Array,
  absmax: Float32Array | DoubleQuantizedAbsmax,
  type: FourBitType,
  rows: number,
  cols: number,
) {
  const table = type === 'nf4' ? nf4Table : fp4Table;
  const q = new QuantizedMatrix([rows, cols], { kind: type, packed, absmax, blocksize: 64, table }, 'f32');
  const out = new Float32Array(rows * cols);
  q.dequantizeRows(0, rows, out);
  const byRow = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) q.dequantizeRows(r, 1, byRow.subarray(r * cols, (r + 1) * cols));
  sameBits(byRow, out, 'row by row');
  return out;
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const diff = a.findIndex((v, i) => !Object.is(v, b[i]) && !(v === 0 && b[i] === 0));
  assert.equal(diff, -1, `${what}: first difference at ${diff}: ${a[diff]} vs ${b[diff]}`);
}

test('the dynamic 8-bit map equals torch’s create_dynamic_map', () => {
  sameBits(dynamicMap, f32('dynamic_map'), 'dynamic map');
});

for (const [name, [rows, cols]] of Object.entries(shapes)) {
  for (const type of ['nf4', 'fp4'] as FourBitType[]) {
    test(`${name} [${rows}, ${cols}] ${type}: packed codes, absmax and dequantised weights equal the reference`, () => {
      const w = f32(`${name}.w`);
      const q = quantize4bit(w, type);
      assert.deepEqual(Array.from(q.packed), ints(`${name}.${type}.packed`));
      sameBits(q.absmax, f32(`${name}.${type}.absmax`), 'absmax');
      sameBits(dequantized4(q.packed, q.absmax, type, rows, cols), f32(`${name}.${type}.dequant`), 'dequant');
    });
  }

  test(`${name}: quantizing bf16 bits gives the codes of the same values in f32`, () => {
    const bits = Uint16Array.from(f32(`${name}.w`), f32ToBf16Bits);
    const values = new Float32Array(Uint32Array.from(bits, (h) => h << 16).buffer);
    for (const type of ['nf4', 'fp4'] as FourBitType[]) {
      const [a, b] = [quantize4bit(bits, type), quantize4bit(values, type)];
      assert.deepEqual(a.packed, b.packed, type);
      sameBits(a.absmax, b.absmax, `${type} absmax`);
    }
  });

  test(`${name}: double quantization of the NF4 absmax (offset, 8-bit codes, nested absmax) equals the reference`, () => {
    const w = f32(`${name}.w`);
    const q = quantize4bit(w, 'nf4');
    const nested = quantizeAbsmax(q.absmax);
    assert.equal(nested.offset, f32(`${name}.nf4.offset`)[0]);
    assert.deepEqual(Array.from(nested.codes), ints(`${name}.nf4.nested_codes`));
    sameBits(nested.nestedAbsmax, f32(`${name}.nf4.nested_absmax`), 'nested absmax');
    const absmax = { ...nested, map: dynamicMap };
    sameBits(dequantized4(q.packed, absmax, 'nf4', rows, cols), f32(`${name}.nf4.dq_dequant`), 'weights');
  });

  test(`${name}: LLM.int8 rows (fp16 first, round half to even) equal the reference`, () => {
    const w = f32(`${name}.w`);
    const q = quantizeInt8Rows(w, rows, cols);
    assert.deepEqual(Array.from(q.codes), ints(`${name}.int8.codes`));
    sameBits(q.scales, f32(`${name}.int8.scb`), 'SCB');
    const int8 = new QuantizedMatrix([rows, cols], { kind: 'int8', codes: q.codes, scales: q.scales }, 'f32');
    const out = new Float32Array(rows * cols);
    int8.dequantizeRows(0, rows, out);
    sameBits(out, f32(`${name}.int8.dequant`), 'dequant');
    // decoding's few rows read the codes in place (gemvInt8) and must give the dequantised weight's products
    for (const n of [1, 3]) {
      const x = Tensor.from(
        Float32Array.from({ length: n * cols }, (_, i) => Math.sin(i * 0.37)),
        [n, cols],
        'f32',
      );
      const bias = Tensor.from(
        Float32Array.from({ length: rows }, (_, i) => i * 0.01),
        [rows],
        'f32',
      );
      const direct = noGrad(() => quantLinear(x, int8, bias).toArray());
      const viaPanel = new Float32Array(n * rows);
      native.matmul(x.data, out, viaPanel, n, rows, cols, false, true, false, bias.data, NativeDType.f32);
      sameBits(direct, viaPanel, `${n} rows read in place`);
    }
  });
}

for (const quant of ['nf4-tiny', 'fp4-tiny', 'int8-tiny']) {
  test(`a folder saved by bitsandbytes (${quant}) loads, every tensor used, with the reference's logits`, () => {
    const dir = path.join(root, 'test', 'fixtures', 'bnb', quant);
    const gold = SafetensorsFile.open(path.join(dir, 'golden.safetensors'));
    const { model, unused } = loadModel(path.join(dir, 'model'));
    assert.deepEqual(unused, []);
    const ids = Int32Array.from(gold.readNumbers('input_ids'));
    const logits = noGrad(() => withScope(() => model.logits({ ids, batch: 1, seq: ids.length }).toArray()));
    assert.ok(maxAbsDiff(logits, gold.readNumbers('logits')) < 1e-4);
    assert.equal(model.config.raw.quantization_config, undefined, 'what is saved from it is a plain model');
    model.dispose();
    gold.close();
  });
}

test('a damaged quant_state or another quantisation method is named with its tensor and file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmf-bnb-'));
  const source = path.join(root, 'test', 'fixtures', 'bnb', 'nf4-tiny', 'model');
  cpSync(source, dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const marker = Buffer.from('"quant_type": "nf4"');
  const pos = bytes.indexOf(marker, Number(bytes.readBigUInt64LE(0)) + 8);
  assert.ok(pos > 0);
  bytes.write('"quant_type": "nf5"', pos); // same length: the file stays well formed, the state does not
  writeFileSync(file, bytes);
  assert.throws(
    () => loadModel(dir),
    (e: LmfError) =>
      e.code === 'bad_quant_state' &&
      /quant_state\.bitsandbytes__nf4$/.test(e.context.tensor ?? '') &&
      e.context.file === file,
  );
  const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({ ...config, quantization_config: { quant_method: 'gptq' } }),
  );
  assert.throws(() => loadModel(dir), /quant_method "gptq" is not supported/);
});

test('export refuses to merge into a quantized base and names the fix', async () => {
  const { exportModel } = await import('../../src/export/export.js');
  const { loadConfig } = await import('../../src/config/load.js');
  const model = path.join(root, 'test', 'fixtures', 'bnb', 'nf4-tiny', 'model');
  const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'lmf-bnb-export-')), 'merged');
  assert.throws(
    () => exportModel(loadConfig(null, { model_name_or_path: model, export_dir: out })),
    (e: LmfError) =>
      /quantized model cannot be merged/.test(e.message) && /unquantized base/.test(e.context.hint ?? ''),
  );
});

for (const quant of ['nf4-tiny', 'int8-tiny']) {
  test(`QLoRA golden (${quant}): the base kept quantized, LoRA logits, loss and every gradient match PyTorch on the dequantised weights`, async () => {
    const { verifyGolden } = await import('../../src/verify/golden.js');
    const dir = path.join(root, 'test', 'fixtures', 'bnb', quant);
    const report = verifyGolden({
      model: path.join(dir, 'model'),
      golden: path.join(dir, 'golden_lora.safetensors'),
      adapter: path.join(dir, 'lora-adapter'),
      atol: 1e-4,
      gradRtol: 1e-3,
      quantizationBit: quant === 'nf4-tiny' ? 4 : 8,
    });
    assert.ok(report.ok, JSON.stringify(report.tensors.filter((t) => !t.ok)));
    assert.ok(report.tensors.filter((t) => t.name.startsWith('grad.')).length >= 28);
  });
}

test('verify refuses a quantized base without an adapter: it has no weights of its own to compare', async () => {
  const { verifyGolden } = await import('../../src/verify/golden.js');
  const dir = path.join(root, 'test', 'fixtures', 'bnb', 'nf4-tiny');
  const o = { model: path.join(dir, 'model'), atol: 1e-4, gradRtol: 1e-3, quantizationBit: 4 as const };
  assert.throws(
    () => verifyGolden({ ...o, golden: path.join(dir, 'golden_lora.safetensors') }),
    /a quantized base is checked through an adapter/,
  );
});

test('QLoRA trains (quantization_bit 4 and 8, and DoRA on 4): the loss falls, the adapter loads back', async () => {
  const { loadConfig } = await import('../../src/config/load.js');
  const { train } = await import('../../src/train/trainer.js');
  const { loadInference } = await import('../../src/infer/load.js');
  const { makeTinyModelFolder } = await import('../helpers.js');
  const work = mkdtempSync(path.join(os.tmpdir(), 'lmf-qlora-'));
  const base = await makeTinyModelFolder(path.join(work, 'model'));
  for (const [bits, dora] of [
    [4, false],
    [8, false],
    [4, true],
  ] as const) {
    const out = path.join(work, `out-${bits}-${dora}`);
    const c = loadConfig(null, {
      model_name_or_path: base,
      dataset: 'identity',
      dataset_dir: 'data',
      template: 'llama2',
      quantization_bit: bits,
      use_dora: dora,
      learning_rate: 5e-3,
      cutoff_len: 64,
      max_steps: 6,
      logging_steps: 1,
      output_dir: out,
    });
    const { state } = await train(c, { print: () => undefined });
    const losses = state.log_history.map((r) => r.loss!).filter((l) => l !== undefined);
    assert.ok(losses[losses.length - 1] < losses[0], `${bits}-bit, DoRA ${dora}: ${losses.join(', ')}`);
    const m = loadInference({ model: base, adapters: [out] });
    m.model.dispose();
  }
  await assert.rejects(
    train(
      loadConfig(null, {
        model_name_or_path: base,
        dataset: 'identity',
        dataset_dir: 'data',
        template: 'llama2',
        quantization_bit: 4,
        finetuning_type: 'full',
        output_dir: path.join(work, 'full'),
      }),
      { print: () => undefined },
    ),
    /a quantized base can only be trained with LoRA/,
  );
});
