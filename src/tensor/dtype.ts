/** Element types of tensors and their conversions. bf16 is the upper half of an f32 (stored as Uint16). */
export type DType = 'f32' | 'bf16' | 'i32';

export type Storage<D extends DType = DType> = D extends 'f32'
  ? Float32Array
  : D extends 'bf16'
    ? Uint16Array
    : Int32Array;

export const bytesPerElement: Record<DType, number> = { f32: 4, bf16: 2, i32: 4 };

const f32View = new Float32Array(1);
const u32View = new Uint32Array(f32View.buffer);

/** Round-to-nearest-even f32 -> bf16, NaN stays NaN. */
export function f32ToBf16Bits(x: number): number {
  f32View[0] = x;
  const u = u32View[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE half -> f32 (subnormals, inf and NaN included). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** f32 -> IEEE half with round-to-nearest-even, subnormals, overflow to inf. */
export function f32ToF16Bits(x: number): number {
  f32View[0] = x;
  const u = u32View[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >>> 10;
  return sign | half;
}
