// The native bindings check every buffer against the shape they are given and throw a JavaScript error
// instead of reading or writing past it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../../src/native.js';

test('attention refuses buffers smaller than the shape, missing buffers, mismatched heads and a bf16 flag that is not a boolean', () => {
  const [B, T, H, KV, D] = [1, 8, 4, 2, 16];
  const q = new Float32Array(B * T * H * D),
    kv = new Float32Array(B * T * KV * D),
    out = new Float32Array(B * T * H * D);
  const lse = new Float32Array(B * H * T);
  native.attentionForward(q, kv, kv, out, lse, B, T, T, H, KV, D, 0, null, null, 0.25, 0, 0, false);
  assert.throws(
    () => native.attentionForward(q, kv.subarray(1), kv, out, lse, B, T, T, H, KV, D, 0, null, null, 0.25, 0, 0, false),
    /attention: k is smaller than its sizes/,
  );
  assert.throws(
    () =>
      native.attentionForward(q, kv, kv, out.subarray(0, 10), lse, B, T, T, H, KV, D, 0, null, null, 0.25, 0, 0, false),
    /attention: out is smaller/,
  );
  assert.throws(
    () => native.attentionForward(q, kv, kv, out, lse, B, T, T, H, 3, D, 0, null, null, 0.25, 0, 0, false),
    /heads a multiple of key\/value heads/,
  );
  assert.throws(
    () =>
      native.attentionForward(q, kv, kv, out, lse, B, T, T, H, KV, D, 0, new Int32Array(T), null, 0.25, 0, 0, false),
    /for both queries and keys, or for neither/,
  );
  const g = new Float32Array(q.length);
  assert.throws(
    () =>
      native.attentionBackward(
        q,
        kv,
        kv,
        out,
        g,
        lse.subarray(1),
        g,
        kv,
        kv,
        B,
        T,
        T,
        H,
        KV,
        D,
        0,
        null,
        null,
        0.25,
        0,
        0,
        false,
      ),
    /attention: lse is smaller/,
  );
  assert.throws(
    // a JavaScript caller's 0 for false is refused, not read as whatever the N-API cast makes of it
    () => native.attentionForward(q, kv, kv, out, lse, B, T, T, H, KV, D, 0, null, null, 0.25, 0, 0, 0 as never),
    /attention: argument 17 must be true or false/,
  );
});

test('countNonFinite checks its buffer against n', () => {
  assert.equal(native.countNonFinite(new Float32Array([1, Number.NaN, Number.NEGATIVE_INFINITY, 2]), 4, 0), 2);
  assert.equal(native.countNonFinite(new Uint16Array([0x3f80, 0x7fc0, 0xff80]), 3, 1), 2);
  assert.throws(() => native.countNonFinite(new Float32Array(2), 3, 0), /countNonFinite: x is smaller than its sizes/);
});

test('every other kernel checks its buffers too: norm, rope, element-wise, cross-entropy, AdamW', () => {
  const f = (n: number) => new Float32Array(n);
  assert.throws(
    () => native.rmsnormForward(f(12), f(4), f(11), null, 3, 4, 1e-5),
    /rmsnormForward: out is smaller than its sizes/,
  );
  assert.throws(
    () => native.rmsnormBackward(f(12), f(12), f(4), f(2), f(12), null, 3, 4),
    /rmsnormBackward: rstd is smaller/,
  );
  assert.throws(() => native.rope(f(10), f(4), f(4), 2, 1, 6, 4, false), /rope: x is smaller/);
  assert.throws(() => native.rope(f(12), f(8), f(8), 2, 1, 6, 8, false), /rotaryDim no larger than headDim/);
  assert.throws(() => native.ropeTable(new Int32Array(1), f(3), f(6), f(6), 2, 3), /ropeTable: positions is smaller/);
  assert.throws(() => native.swigluForward(f(4), f(3), f(4), 4), /swigluForward: up is smaller/);
  assert.throws(() => native.axpby(f(4), f(4), f(2), 4, 1, 1), /axpby: out is smaller/);
  assert.throws(() => native.toBf16(f(4), new Uint16Array(3), 4), /toBf16: dst is smaller/);
  assert.throws(() => native.dropout(f(4), f(4), 4, 1.5, 1), /dropout: needs n >= 0 and 0 <= p < 1/);
  assert.throws(
    () => native.embeddingBackward(new Int32Array([5]), f(4), f(8), 1, 4, -1),
    /token id 5 is outside the vocabulary of 2/,
  );
  assert.throws(
    () => native.lmHeadCrossEntropy(f(8), f(12), new Int32Array(2), null, f(1), null, null, 2, 4, 3, 0, 8, 0),
    /lmHeadCrossEntropy: logp is smaller/,
  );
  assert.throws(
    () =>
      native.adamw([f(4)], [f(3)], [f(4)], [f(4)], new Float64Array(1), new Float64Array(1), 0.9, 0.999, 1e-8, 1, 1),
    /adamw: the gradient and moments of parameter 0 are smaller/,
  );
  assert.throws(
    () => native.sumSquares([f(2), new Uint16Array(2) as unknown as Float32Array]),
    /optimizer: arrays\[1\] must be a Float32Array/,
  );
});

test("decodeLayers checks each layer's buffers and names the layer and the buffer", () => {
  const [C, H, KV, D, I, r] = [8, 2, 1, 4, 6, 2];
  const f = (n: number) => new Float32Array(n).fill(0.1);
  const proj = (N: number, K: number, lora = false) => [
    f(N * K),
    null,
    lora ? f(r * K) : null,
    lora ? f(N * r) : null,
    2,
  ];
  const layer = (over: Record<number, unknown> = {}) => {
    // decode_stack.cc's slots: norms, projections ([weight, bias, LoRA A, LoRA B, scale]), caches, rope tables,
    // rotary size, window
    const slots: unknown[] = [f(C), null, f(C), null, null, null];
    slots.push(null, proj(H * D, C, true), proj(KV * D, C), proj(KV * D, C), proj(C, H * D));
    slots.push(null, proj(I, C), proj(I, C), proj(C, I, true));
    slots.push(f(3 * KV * D), f(3 * KV * D), f(D / 2), f(D / 2), D, 0);
    for (const [i, v] of Object.entries(over)) slots[Number(i)] = v;
    return slots as Float32Array[];
  };
  const run = (layers: Float32Array[][], M = 1, cached = 2) =>
    native.decodeLayers(f(M * C), layers, M, cached, C, H, KV, D, I, 1e-6, 0.5, 0, false);
  run([layer(), layer()]);
  const q = (parts: Record<number, unknown>) => {
    const p: unknown[] = proj(H * D, C, true);
    for (const [i, v] of Object.entries(parts)) p[Number(i)] = v;
    return p;
  };
  assert.throws(() => run([layer(), layer({ 15: f(2 * KV * D) })]), /decodeLayers: layer 1 key cache is smaller/);
  assert.throws(
    () => run([layer({ 7: q({ 0: f(H * D * C - 1) }) })]),
    /layer 0 q_proj weight does not match its sizes/,
  );
  assert.throws(() => run([layer({ 7: q({ 0: new Int32Array(H * D * C) }) })]), /q_proj weight must be a Float32Array/);
  assert.throws(() => run([layer({ 7: q({ 1: f(1) }) })]), /layer 0 q_proj bias is smaller than its sizes/);
  assert.throws(() => run([layer({ 7: q({ 2: f(r * C + 1) }) })]), /layer 0 q_proj LoRA A must hold \[rank, in\]/);
  assert.throws(() => run([layer({ 7: q({ 3: f(H * D * r - 1) }) })]), /layer 0 q_proj LoRA B is smaller/);
  assert.throws(() => run([layer({ 7: f(3) })]), /layer 0 q_proj must be an array of weight, bias/);
  const fourBit = [new Uint8Array((H * D * C) / 2), f((H * D * C) / 32), f(16), 32, null, null, 0, 0, null];
  assert.throws(
    () => run([layer({ 7: q({ 0: fourBit }) })]),
    /q_proj 4-bit weight needs a blocksize that is a multiple/,
  );
  assert.throws(() => run([layer({ 7: q({ 0: fourBit.slice(1) }) })]), /q_proj 4-bit weight must hold packed codes/);
  run([layer({ 7: q({ 0: [new Int8Array(H * D * C), f(H * D)] }) })]);
  assert.throws(
    () => run([layer({ 7: q({ 0: [new Int8Array(H * D * C - 1), f(H * D)] }) })]),
    /layer 0 q_proj 8-bit codes is smaller than its sizes/,
  );
  assert.throws(
    () => run([layer({ 7: q({ 0: [new Int8Array(H * D * C), f(H * D - 1)] }) })]),
    /layer 0 q_proj 8-bit scales is smaller than its sizes/,
  );
  assert.throws(() => run([layer({ 19: 3 })]), /layer 0 rotary size must be even/);
  assert.throws(() => run([layer().slice(1)]), /layer 0 array has 20 entries/);
  assert.throws(() => run([layer()], 5, 0), /takes 1 to 4 new tokens/);
});
