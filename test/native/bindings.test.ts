// The native bindings check every buffer against the shape they are given and throw a JavaScript error
// instead of reading or writing past it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../../src/native.js';

test('attention refuses buffers smaller than the shape, missing buffers and mismatched heads', () => {
  const [B, T, H, KV, D] = [1, 8, 4, 2, 16];
  const q = new Float32Array(B * T * H * D),
    kv = new Float32Array(B * T * KV * D),
    out = new Float32Array(B * T * H * D);
  const lse = new Float32Array(B * H * T);
  native.attentionForward(q, kv, kv, out, lse, B, T, T, H, KV, D, 0, null, null, 0.25);
  assert.throws(
    () => native.attentionForward(q, kv.subarray(1), kv, out, lse, B, T, T, H, KV, D, 0, null, null, 0.25),
    /attention: k is smaller than its shape/,
  );
  assert.throws(
    () => native.attentionForward(q, kv, kv, out.subarray(0, 10), lse, B, T, T, H, KV, D, 0, null, null, 0.25),
    /attention: out is smaller/,
  );
  assert.throws(
    () => native.attentionForward(q, kv, kv, out, lse, B, T, T, H, 3, D, 0, null, null, 0.25),
    /heads a multiple of key\/value heads/,
  );
  assert.throws(
    () => native.attentionForward(q, kv, kv, out, lse, B, T, T, H, KV, D, 0, new Int32Array(T), null, 0.25),
    /for both queries and keys, or for neither/,
  );
  const g = new Float32Array(q.length);
  assert.throws(
    () =>
      native.attentionBackward(q, kv, kv, out, g, lse.subarray(1), g, kv, kv, B, T, T, H, KV, D, 0, null, null, 0.25),
    /attention: lse is smaller/,
  );
});

test('countNonFinite checks its buffer against n', () => {
  assert.equal(native.countNonFinite(new Float32Array([1, Number.NaN, Number.NEGATIVE_INFINITY, 2]), 4, 0), 2);
  assert.equal(native.countNonFinite(new Uint16Array([0x3f80, 0x7fc0, 0xff80]), 3, 1), 2);
  assert.throws(() => native.countNonFinite(new Float32Array(2), 3, 0), /countNonFinite: x is smaller than n/);
});
