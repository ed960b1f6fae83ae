// bitsandbytes' formats against the PyTorch reference quantizer (reference/torch/bnb_ref.py, written from bnb's
// algorithm; test/fixtures/bnb/golden_bnb.safetensors): NF4 and FP4 codes and absmax, double quantization, int8
// rows and every dequantisation, byte for byte and bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import {
  dequantize4bit,
  dequantizeAbsmax,
  dequantizeInt8Rows,
  dynamicMap,
  quantize4bit,
  quantizeAbsmax,
  quantizeInt8Rows,
  type FourBitType,
} from '../../src/models/quant/bnb.js';
import { root } from '../helpers.js';

const golden = SafetensorsFile.open(path.join(root, 'test', 'fixtures', 'bnb', 'golden_bnb.safetensors'));
const f32 = (name: string) => Float32Array.from(golden.readNumbers(name));
const ints = (name: string) => Array.from(golden.readNumbers(name));
const shapes: Record<string, [number, number]> = { big: [300, 70], odd: [7, 9], bf16: [64, 48] };

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
      sameBits(dequantize4bit(q, type, 64, new Float32Array(w.length)), f32(`${name}.${type}.dequant`), 'dequant');
    });
  }

  test(`${name}: double quantization of the NF4 absmax (offset, 8-bit codes, nested absmax) equals the reference`, () => {
    const w = f32(`${name}.w`);
    const q = quantize4bit(w, 'nf4');
    const nested = quantizeAbsmax(q.absmax);
    assert.equal(nested.offset, f32(`${name}.nf4.offset`)[0]);
    assert.deepEqual(Array.from(nested.codes), ints(`${name}.nf4.nested_codes`));
    sameBits(nested.nestedAbsmax, f32(`${name}.nf4.nested_absmax`), 'nested absmax');
    const absmax = dequantizeAbsmax(nested);
    sameBits(
      dequantize4bit({ packed: q.packed, absmax }, 'nf4', 64, new Float32Array(w.length)),
      f32(`${name}.nf4.dq_dequant`),
      'weights',
    );
  });

  test(`${name}: LLM.int8 rows (fp16 first, round half to even) equal the reference`, () => {
    const w = f32(`${name}.w`);
    const q = quantizeInt8Rows(w, rows, cols);
    assert.deepEqual(Array.from(q.codes), ints(`${name}.int8.codes`));
    sameBits(q.scales, f32(`${name}.int8.scb`), 'SCB');
    sameBits(dequantizeInt8Rows(q, rows, cols, new Float32Array(w.length)), f32(`${name}.int8.dequant`), 'dequant');
  });
}
